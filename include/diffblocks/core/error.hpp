#pragma once
// One exception hierarchy for everything the library reports. Every message names the file,
// key, tensor or shape at fault so that a user can act on it without a debugger.
#include <stdexcept>
#include <string>

namespace diffblocks {

/// Base of every exception thrown by diffblocks.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
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

}  // namespace diffblocks
