#pragma once
// Whole-file writes that never leave a half-written file behind and never destroy what they
// should not.
//
// The bytes go to a temporary file with a short name (.dbtmp.XXXXXX, so a 255-byte output
// name still fits NAME_MAX) in the target's directory (same filesystem: rename is atomic),
// which replaces the target only once everything was written and synced. A symbolic link as
// the path is followed, as cp does: its target is replaced and the link stays. An existing
// path that is not a regular file (a directory, a device, a FIFO) is refused. A new file gets
// the mode a plain create would (0666 less the umask); a replaced file keeps its mode. On every
// failure the temporary file is removed; install_temp_file_cleanup() makes SIGINT, SIGTERM,
// SIGHUP and SIGQUIT remove it too (the CLI installs it; a library does not take signals).
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <random>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "diffblocks/core/error.hpp"
#include "diffblocks/io/file.hpp"

namespace diffblocks {

namespace detail {

/// Temporary files being written, readable from a signal handler: fixed slots, no allocation,
/// no locks. state: 0 free, 1 claimed (path being written or being released), 2 live.
struct TempFileSlot {
  std::atomic<int> state{0};
  char path[PATH_MAX + 1] = {};
};
constexpr int kTempFileSlots = 16;
inline TempFileSlot g_temp_files[kTempFileSlots];

/// Claims a slot for `path`; -1 when none is free or the path is too long (the write proceeds,
/// only without signal cleanup).
inline int register_temp_file(const std::string& path) {
  if (path.size() > PATH_MAX) return -1;
  for (int i = 0; i < kTempFileSlots; ++i) {
    int expected = 0;
    if (g_temp_files[i].state.compare_exchange_strong(expected, 1)) {
      std::memcpy(g_temp_files[i].path, path.c_str(), path.size() + 1);
      g_temp_files[i].state.store(2);
      return i;
    }
  }
  return -1;
}

inline void release_temp_file(int slot) {
  if (slot < 0) return;
  g_temp_files[slot].state.store(1);
  g_temp_files[slot].path[0] = '\0';
  g_temp_files[slot].state.store(0);
}

/// Async-signal-safe: unlink every live temporary file, then die by the same signal.
inline void temp_file_signal_handler(int sig) {
  const int saved = errno;
  for (auto& slot : g_temp_files)
    if (slot.state.load() == 2) ::unlink(slot.path);
  errno = saved;
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

/// Blocks the cleanup signals while a temporary file is created and registered, and while it
/// is renamed and released, so no signal finds the file on disk but not in the table (or
/// removes the name after the rename made it the output).
class BlockCleanupSignals {
 public:
  BlockCleanupSignals() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&set, s);
    pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~BlockCleanupSignals() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  BlockCleanupSignals(const BlockCleanupSignals&) = delete;
  BlockCleanupSignals& operator=(const BlockCleanupSignals&) = delete;

 private:
  sigset_t old_;
};

/// `path` with symbolic links at its end followed (a dangling link gives the file it would
/// create). Intermediate directories are left to the kernel.
inline std::string follow_symlinks(const std::string& path) {
  std::string p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    std::string target(PATH_MAX + 1, '\0');
    const ssize_t n = ::readlink(p.c_str(), target.data(), target.size());
    if (n < 0 || static_cast<std::size_t>(n) >= target.size()) {
      const int e = n < 0 ? errno : ENAMETOOLONG;
      throw IoError(path + ": cannot read the symbolic link: " + errno_text(e));
    }
    target.resize(static_cast<std::size_t>(n));
    if (target.empty()) throw IoError(path + ": symbolic link with an empty target");
    if (target[0] != '/') {
      const auto slash = p.find_last_of('/');
      if (slash != std::string::npos) target = p.substr(0, slash + 1) + target;
    }
    p = target;
  }
  throw IoError(path + ": too many levels of symbolic links");
}

inline std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace detail

/// Installs the signal handlers that remove unfinished temporary files (see above) for the
/// signals that are not ignored. For programs (the CLI); idempotent.
inline void install_temp_file_cleanup() {
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    struct sigaction old {};
    if (::sigaction(s, nullptr, &old) != 0 || old.sa_handler == SIG_IGN) continue;  // e.g. nohup
    struct sigaction sa {};
    sa.sa_handler = detail::temp_file_signal_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    ::sigaction(s, &sa, nullptr);
  }
}

/// Where write_file_atomically() sends the bytes; every failed write throws IoError.
class FileSink {
 public:
  FileSink(int fd, const std::string& path) : fd_(fd), path_(path) {}
  void write(const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, std::min<std::size_t>(n, std::size_t{1} << 30));
      if (w < 0) {
        if (errno == EINTR) continue;
        const int e = errno;
        throw IoError(path_ + ": write failed: " + detail::errno_text(e));
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }

 private:
  int fd_;
  std::string path_;
};

/// Writes `path` atomically with the bytes `produce` sends to its sink (see the top).
inline void write_file_atomically(const std::string& path, const std::function<void(FileSink&)>& produce) {
  if (path.empty()) throw IoError("empty output path");
  const std::string target = detail::follow_symlinks(path);
  struct stat st {};
  bool replacing = false;
  if (::stat(target.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode))
      throw IoError(path + ": is " + detail::file_kind(st.st_mode) + "; refusing to replace it with the output");
    replacing = true;
  }
  const std::string dir = detail::directory_of(target);

  // The temporary file, removed by the destructor on every path but success.
  struct Temp {
    std::string path;
    int fd = -1, slot = -1;
    bool renamed = false;
    ~Temp() {
      if (fd >= 0) ::close(fd);
      if (path.empty()) return;
      const detail::BlockCleanupSignals blocked;
      if (!renamed) ::unlink(path.c_str());
      detail::release_temp_file(slot);
    }
  } tmp;
  static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}() ^ (std::uint64_t(::getpid()) << 32)};
  for (int attempt = 0; attempt < 100 && tmp.fd < 0; ++attempt) {
    std::string name = dir + "/.dbtmp.";
    for (int i = 0; i < 6; ++i) name += alnum[rng() % (sizeof alnum - 1)];
    const detail::BlockCleanupSignals blocked;
    const int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd >= 0) {
      tmp.fd = fd;
      tmp.path = name;
      tmp.slot = detail::register_temp_file(name);
    } else if (errno != EEXIST) {
      const int e = errno;
      throw IoError(path + ": cannot create a temporary file in " + dir + ": " + detail::errno_text(e));
    }
  }
  if (tmp.fd < 0) throw IoError(path + ": cannot create a temporary file in " + dir + " (100 names taken)");
  auto fail = [&](const std::string& what) {
    const int e = errno;
    throw IoError(path + ": " + what + ": " + detail::errno_text(e));
  };
  if (replacing && ::fchmod(tmp.fd, st.st_mode & 07777) != 0) fail("cannot give the new file the old one's mode");
  FileSink sink(tmp.fd, path);
  produce(sink);
  if (::fsync(tmp.fd) != 0) fail("cannot flush the output to disk");
  const int fd = tmp.fd;
  tmp.fd = -1;
  if (::close(fd) != 0) fail("write failed when closing the file");
  const detail::BlockCleanupSignals blocked;
  if (::rename(tmp.path.c_str(), target.c_str()) != 0) fail("cannot move the finished file into place");
  tmp.renamed = true;
  detail::release_temp_file(tmp.slot);
  tmp.slot = -1;
}

inline void write_file_atomically(const std::string& path, const std::string& contents) {
  write_file_atomically(path, [&](FileSink& out) { out.write(contents.data(), contents.size()); });
}

}  // namespace diffblocks
