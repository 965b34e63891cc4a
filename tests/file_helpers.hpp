#pragma once
// Hostile files made at test time (FIFOs, sparse files, raw safetensors headers a JSON library
// would refuse to write) and the process's resident memory, for the issue #14 tests.
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <vector>

#include "helpers.hpp"

namespace dbt {

/// A fresh directory under the test tmp dir (removed first if it exists).
inline std::string fresh_dir(const std::string& name) {
  const std::string d = tmp_path(name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string make_fifo(const std::string& path) {
  ::unlink(path.c_str());
  REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
  return path;
}

/// A character device like /dev/null at `path` (tests never aim writes at the real /dev/null:
/// a bug would replace it for the whole machine); "" where mknod is not permitted.
inline std::string make_char_device(const std::string& path) {
  ::unlink(path.c_str());
  if (::mknod(path.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
    WARN("mknod not permitted here: the character-device case is skipped");
    return "";
  }
  return path;
}

/// A file of `size` bytes that starts with `head` and is a hole after it (no disk used).
inline std::string make_sparse(const std::string& path, std::uint64_t size, const std::string& head = "") {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, head.data(), head.size()) == static_cast<ssize_t>(head.size()));
  REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
  ::close(fd);
  return path;
}

/// A safetensors file from raw header text (duplicate keys, NULs in names, ...) and data bytes.
inline std::string raw_safetensors(const std::string& header, const std::string& data = "") {
  std::string bytes(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  return bytes + header + data;
}

/// Entries of `dir` whose name starts with ".dbtmp." (the atomic writer's temporary files).
inline std::vector<std::string> leftover_temps(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().rfind(".dbtmp.", 0) == 0) out.push_back(e.path().string());
  return out;
}

/// VmRSS / VmHWM of this process in KiB (Linux).
inline long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  return -1;
}

/// Resets the peak RSS to the current RSS (Linux >= 4.0) and returns the current RSS in KiB;
/// peak_rss_kib() afterwards is the peak since this call.
inline long reset_peak_rss_kib() {
  std::ofstream("/proc/self/clear_refs") << "5";
  return status_kib("VmRSS:");
}
inline long peak_rss_kib() { return status_kib("VmHWM:"); }

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;  // shadow memory and redzones: RSS bounds do not apply
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

}  // namespace dbt
