#pragma once
// The library version, written only here: CMakeLists.txt reads the three numbers from this file
// for project(VERSION) and the package's version file, and DIFFBLOCKS_VERSION is built from them.
#define DIFFBLOCKS_VERSION_MAJOR 0
#define DIFFBLOCKS_VERSION_MINOR 2
#define DIFFBLOCKS_VERSION_PATCH 0

#define DIFFBLOCKS_DETAIL_STR_(x) #x
#define DIFFBLOCKS_DETAIL_STR(x) DIFFBLOCKS_DETAIL_STR_(x)
/// "MAJOR.MINOR.PATCH"
#define DIFFBLOCKS_VERSION                                                                      \
  DIFFBLOCKS_DETAIL_STR(DIFFBLOCKS_VERSION_MAJOR) "." DIFFBLOCKS_DETAIL_STR(DIFFBLOCKS_VERSION_MINOR) "." \
      DIFFBLOCKS_DETAIL_STR(DIFFBLOCKS_VERSION_PATCH)
/// MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons.
#define DIFFBLOCKS_VERSION_NUMBER \
  (DIFFBLOCKS_VERSION_MAJOR * 10000 + DIFFBLOCKS_VERSION_MINOR * 100 + DIFFBLOCKS_VERSION_PATCH)

namespace diffblocks {

struct Version {
  int major, minor, patch;
};

/// The version of the headers in use (compile-time), e.g. for a program's --version output.
inline constexpr Version version() {
  return {DIFFBLOCKS_VERSION_MAJOR, DIFFBLOCKS_VERSION_MINOR, DIFFBLOCKS_VERSION_PATCH};
}
inline constexpr const char* version_string() { return DIFFBLOCKS_VERSION; }

}  // namespace diffblocks
