#pragma once
// The CUDA backend is a module opened at run time (libdiffblocks_cuda.so: the CUDA device, cudart
// and cuBLAS), so a program that may use the GPU links none of them: it starts as small as a
// CPU-only build, and on a machine without the CUDA libraries it still runs on the CPU.
//
// Where the module is looked for, first match wins:
//   1. $DIFFBLOCKS_CUDA_BACKEND (a path; when set, nothing else is tried),
//   2. next to the executable (the build tree: build/bin/),
//   3. ../lib beside the executable's directory (an installed program: PREFIX/bin, PREFIX/lib),
//   4. DIFFBLOCKS_CUDA_MODULE_DIR, when the program was compiled with it (the installed CMake
//      package defines it as PREFIX/lib for its consumers),
//   5. the dynamic loader's own search (LD_LIBRARY_PATH, ld.so.cache).
// A module that is found but cannot be used (missing CUDA libraries, not a diffblocks backend,
// another ABI) is an error naming its path and why; nothing after it is tried. A loaded module
// is never closed: the CUDA runtime must not be unloaded under the models and handles it holds.
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "diffblocks/core/error.hpp"
#include "diffblocks/runtime/abi.h"

namespace diffblocks {
namespace runtime {

constexpr const char* kCudaModuleName = "libdiffblocks_cuda.so";
constexpr const char* kCudaModuleEnv = "DIFFBLOCKS_CUDA_BACKEND";

namespace detail {

inline std::string executable_dir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  const std::string exe(buf, static_cast<std::size_t>(n));
  const auto slash = exe.rfind('/');
  return slash == std::string::npos ? "" : exe.substr(0, slash);
}

inline bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

/// Steps 2-4 of the search: the paths to look at, in order.
inline std::vector<std::string> cuda_module_paths() {
  std::vector<std::string> paths;
  const std::string dir = executable_dir();
  if (!dir.empty()) {
    paths.push_back(dir + "/" + kCudaModuleName);
    paths.push_back(dir + "/../lib/" + kCudaModuleName);
  }
#ifdef DIFFBLOCKS_CUDA_MODULE_DIR
  paths.push_back(std::string(DIFFBLOCKS_CUDA_MODULE_DIR) + "/" + kCudaModuleName);
#endif
  return paths;
}

inline std::string dl_error() {
  const char* e = ::dlerror();
  return e ? e : "unknown dlopen error";
}

[[noreturn]] inline void close_and_throw(void* lib, const std::string& message) {
  ::dlclose(lib);
  throw Error(message);
}

/// Opens `path` (a path, or a bare name for the loader's search) and checks it is a CUDA backend
/// of this ABI; throws Error "could not load the CUDA backend <path>: <why>".
inline const diffblocks_backend* open_cuda_module(const std::string& path, const std::string& hint = "") {
  const std::string what = "could not load the CUDA backend " + path + ": ";
  void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) throw Error(what + dl_error() + hint);
  const auto abi = reinterpret_cast<diffblocks_backend_abi_fn>(::dlsym(lib, DIFFBLOCKS_BACKEND_ABI_SYMBOL));
  if (!abi) close_and_throw(lib, what + "not a diffblocks backend (no symbol " + DIFFBLOCKS_BACKEND_ABI_SYMBOL + ")");
  const std::uint32_t version = abi();
  if (version != DIFFBLOCKS_BACKEND_ABI)
    close_and_throw(lib, what + "built for backend ABI " + std::to_string(version) + ", but this program needs ABI " +
                             std::to_string(DIFFBLOCKS_BACKEND_ABI) +
                             " (build the module from the same diffblocks as the program)");
  const auto get = reinterpret_cast<diffblocks_backend_get_fn>(::dlsym(lib, DIFFBLOCKS_BACKEND_GET_SYMBOL));
  const diffblocks_backend* table = get ? get() : nullptr;
  if (!table || table->abi != DIFFBLOCKS_BACKEND_ABI)
    close_and_throw(lib, what + "its backend table is missing or of another ABI");
  if (std::string(table->device) != "cuda")
    close_and_throw(lib, what + "it is the '" + table->device + "' backend, not 'cuda'");
  return table;  // never closed: see the top of this file
}

inline const diffblocks_backend* find_cuda_module() {
  const char* env = std::getenv(kCudaModuleEnv);
  if (env && *env) return open_cuda_module(env);
  std::string searched;
  for (const auto& p : cuda_module_paths()) {
    if (file_exists(p)) return open_cuda_module(p);
    searched += (searched.empty() ? "" : ", ") + p;
  }
  const std::string also = searched.empty() ? "" : "also looked for " + searched + "; ";
  return open_cuda_module(kCudaModuleName, " (" + also + "a build with -DDIFFBLOCKS_CUDA=ON makes it, " + kCudaModuleEnv +
                                               " names another)");
}

}  // namespace detail

/// The CUDA backend: the module the search finds, opened and checked. Searched at every call (a
/// module already loaded is not loaded again: dlopen returns it), so a changed
/// $DIFFBLOCKS_CUDA_BACKEND counts; throws Error naming the module and why it cannot be used.
inline const diffblocks_backend& cuda_backend() { return *detail::find_cuda_module(); }

}  // namespace runtime
}  // namespace diffblocks
