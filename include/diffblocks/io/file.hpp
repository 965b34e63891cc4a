#pragma once
// Reading files named by users, safely: only regular files on a real filesystem are read.
//
// A FIFO would block the reader forever, /dev/zero never ends, a directory or a procfs file
// reports a size that means nothing. So a path is stat'ed before it is opened (opening some
// devices has side effects), opened with O_NONBLOCK (a FIFO swapped in after the stat cannot
// block the open) and the opened descriptor is fstat'ed again (what is read is what was
// checked). Text files are read with a size cap, at most cap + 1 bytes; binary files are read
// by offset (pread) and every short read is an error, so a file that shrinks while it is read
// fails cleanly.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <unistd.h>
#include <utility>

#include "diffblocks/core/error.hpp"

namespace diffblocks {

/// Size caps of the text files the library and the CLI read (config.json, a scheduler config,
/// a durations file): real ones are a few KiB.
constexpr std::uint64_t kMaxTextFileBytes = std::uint64_t{1} << 20;  // 1 MiB

namespace detail {

inline std::string errno_text(int e) { return std::strerror(e); }

/// "a directory", "a FIFO", ... for a file type that is not a regular file.
inline const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

/// procfs and sysfs files are generated on read and report size 0 (or 4096): never model data.
inline const char* pseudo_filesystem(int fd) {
  struct statfs fs {};
  if (fstatfs(fd, &fs) != 0) return nullptr;
  switch (static_cast<unsigned long>(fs.f_type)) {
    case 0x9fa0UL: return "procfs";
    case 0x62656572UL: return "sysfs";
    case 0x64626720UL: return "debugfs";
    case 0x74726163UL: return "tracefs";
    default: return nullptr;
  }
}

}  // namespace detail

/// An open regular file (closed on destruction) and its size at open time.
class RegularFile {
 public:
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;
  ~RegularFile() {
    if (fd_ >= 0) ::close(fd_);
  }

  /// Opens `path` for reading; `what` ("safetensors file", "config") names it in errors.
  /// Throws IoError unless it is a regular file on a real filesystem.
  static std::shared_ptr<RegularFile> open(const std::string& path, const std::string& what) {
    if (path.empty()) throw IoError("empty path given for the " + what);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      const int e = errno;
      throw IoError(path + ": cannot open " + what + ": " + detail::errno_text(e));
    }
    if (!S_ISREG(st.st_mode)) throw IoError(path + ": is " + detail::file_kind(st.st_mode) + ", expected a " + what);
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      const int e = errno;
      throw IoError(path + ": cannot open " + what + ": " + detail::errno_text(e));
    }
    std::shared_ptr<RegularFile> f(new RegularFile(fd, path));
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      throw IoError(path + ": cannot stat " + what + ": " + detail::errno_text(e));
    }
    if (!S_ISREG(st.st_mode)) throw IoError(path + ": is " + detail::file_kind(st.st_mode) + ", expected a " + what);
    if (const char* fs = detail::pseudo_filesystem(fd))
      throw IoError(path + ": is a " + std::string(fs) + " file, expected a " + what + " on disk");
    f->size_ = static_cast<std::uint64_t>(st.st_size);
    return f;
  }

  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }
  int fd() const { return fd_; }

  /// Reads exactly `n` bytes at `offset` into `dst`; a short read (the file shrank) is an error.
  void read_at(std::uint64_t offset, void* dst, std::uint64_t n) const {
    auto* p = static_cast<unsigned char*>(dst);
    while (n > 0) {
      const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(n, std::uint64_t{1} << 30));
      const ssize_t got = ::pread(fd_, p, chunk, static_cast<off_t>(offset));
      if (got < 0) {
        if (errno == EINTR) continue;
        const int e = errno;
        throw IoError(path_ + ": read failed at byte " + std::to_string(offset) + ": " + detail::errno_text(e));
      }
      if (got == 0)
        throw IoError(path_ + ": file ended at byte " + std::to_string(offset) + " (it was " +
                      std::to_string(size_) + " bytes when opened; changed while being read?)");
      p += got;
      offset += static_cast<std::uint64_t>(got);
      n -= static_cast<std::uint64_t>(got);
    }
  }

 private:
  RegularFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
  std::uint64_t size_ = 0;
};

/// The whole text of a regular file of at most `cap` bytes; IoError naming the path and the cap
/// otherwise. Reads at most cap + 1 bytes whatever the file claims.
inline std::string read_text_file(const std::string& path, const std::string& what,
                                  std::uint64_t cap = kMaxTextFileBytes) {
  const auto f = RegularFile::open(path, what);
  auto too_big = [&](const std::string& size) {
    return IoError(path + ": " + what + " is " + size + " bytes, larger than the cap of " + std::to_string(cap) +
                   " bytes");
  };
  if (f->size() > cap) throw too_big(std::to_string(f->size()));
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t got = ::read(f->fd(), buf, sizeof buf);
    if (got < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      throw IoError(path + ": cannot read " + what + ": " + detail::errno_text(e));
    }
    if (got == 0) break;
    text.append(buf, static_cast<std::size_t>(got));
    if (text.size() > cap) throw too_big("more than " + std::to_string(cap));  // grew since the stat
  }
  return text;
}

}  // namespace diffblocks
