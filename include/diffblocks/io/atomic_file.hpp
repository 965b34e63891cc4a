#pragma once
// Whole-file writes that never leave a half-written file behind: the text goes to a temporary
// file in the same directory (same filesystem, so rename is atomic) which replaces `path` only
// once everything was written. A failure keeps whatever was at `path` before.
#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include "diffblocks/core/error.hpp"

namespace diffblocks {

inline void write_file_atomically(const std::string& path, const std::string& contents) {
  std::random_device rd;
  const std::string tmp = path + ".tmp" + std::to_string(rd());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError(path + ": cannot create file");
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      throw IoError(path + ": write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw IoError(path + ": cannot move the finished file into place");
  }
}

}  // namespace diffblocks
