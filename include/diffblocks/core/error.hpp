#pragma once
// One exception hierarchy for everything the library reports. Every message names the file,
// key, tensor or shape at fault so that a user can act on it without a debugger.
//
// Messages echo names that come from untrusted files and command lines (tensor names, config
// keys, paths). A name holding a newline, an ANSI escape or a bidi override could forge extra
// log lines or hide what is really wrong, so every message is passed through
// escape_for_message() once, when the exception is made: it is always one line of visible text.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace diffblocks {

namespace detail {

inline void append_hex_escape(std::string& out, const char* prefix, std::uint32_t v, int digits) {
  static const char* hex = "0123456789abcdef";
  out += prefix;
  for (int i = digits - 1; i >= 0; --i) out += hex[(v >> (4 * i)) & 0xf];
}

/// Code points that reorder or hide text on a terminal: bidi embeddings/overrides/isolates and
/// marks, and the Unicode line/paragraph separators.
inline bool is_invisible_control(std::uint32_t cp) {
  return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f ||
         cp == 0x061c || cp == 0x2028 || cp == 0x2029;
}

}  // namespace detail

/// `s` as one line of visible text: C0 controls, DEL and bytes that are not valid UTF-8 become
/// \xNN (\n, \r, \t as such), C1 controls and bidi/isolate/separator code points become \uNNNN;
/// everything else (printable ASCII, other valid UTF-8) is kept. Backslashes are kept as they
/// are, so escaping an already escaped message changes nothing.
inline std::string escape_for_message(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == '\n') out += "\\n";
      else if (c == '\r') out += "\\r";
      else if (c == '\t') out += "\\t";
      else if (c < 0x20 || c == 0x7f) detail::append_hex_escape(out, "\\x", c, 2);
      else out += static_cast<char>(c);
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence (no overlongs, no surrogates, at most U+10FFFF).
    std::size_t len = 0;
    std::uint32_t cp = 0, min = 0;
    if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
    bool ok = len != 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xc0) == 0x80;
      cp = (cp << 6) | (cc & 0x3f);
    }
    ok = ok && cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    if (!ok) {
      detail::append_hex_escape(out, "\\x", c, 2);
      ++i;
      continue;
    }
    if ((cp >= 0x80 && cp <= 0x9f) || detail::is_invisible_control(cp)) detail::append_hex_escape(out, "\\u", cp, 4);
    else out.append(s, i, len);
    i += len;
  }
  return out;
}

/// Base of every exception thrown by diffblocks. The message is escaped (see above).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(escape_for_message(what)) {}
};

/// Unreadable or malformed files (safetensors, config.json, model directories).
class IoError : public Error {
 public:
  using Error::Error;
};

/// A config that is missing a key, has a bad value or names an unsupported option.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// Checkpoint tensors that do not match the model: missing, unexpected or wrongly shaped keys.
class LoadError : public Error {
 public:
  using Error::Error;
};

/// Inputs of the wrong rank, shape or content (NaN/Inf) given to a block or U-Net.
class InputError : public Error {
 public:
  using Error::Error;
};

/// A CUDA runtime or cuBLAS call failed, or no CUDA device could be used. Declared here, not
/// with the CUDA code, so that host code (a program that reaches the GPU through the runtime's
/// CUDA module, runtime/model.hpp) can catch it without CUDA headers.
class CudaError : public Error {
 public:
  using Error::Error;
};

/// An allocation that the system refused; the message names what and how many bytes.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

/// Turns std::bad_alloc / std::length_error thrown by `f` into an OutOfMemoryError naming
/// `what` (e.g. "reading tensor 'x'") and `bytes`, for allocations whose size an input decides.
template <class F>
decltype(auto) naming_allocation(const std::string& what, std::uint64_t bytes, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    throw OutOfMemoryError("out of memory: cannot allocate " + std::to_string(bytes) + " bytes for " + what);
  } catch (const std::length_error&) {
    throw OutOfMemoryError("cannot allocate " + std::to_string(bytes) + " bytes for " + what + " (too large)");
  }
}

}  // namespace diffblocks
