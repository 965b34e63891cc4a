#pragma once
// Exceptions <-> (status, message) at the backend interface (runtime/abi.h), both ways, so that
// an error thrown inside the CUDA module reaches the program as the class it was thrown as: the
// CLI tells OutOfMemoryError, std::bad_alloc and std::length_error apart, and a later C API
// returns the status as its error code.
#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>

#include "diffblocks/core/error.hpp"
#include "diffblocks/runtime/abi.h"

namespace diffblocks {
namespace runtime {

/// Thrown inside a backend when a host callback reported failure: the host holds the reason.
struct HostAborted {};

/// The status and message of the exception being handled (call only inside a catch block).
inline std::int32_t current_status(std::string& message) {
  try {
    throw;
  } catch (const HostAborted&) {
    message.clear();
    return DIFFBLOCKS_ABORTED;
  } catch (const OutOfMemoryError& e) {  // subclasses before their base
    message = e.what();
    return DIFFBLOCKS_OUT_OF_MEMORY;
  } catch (const IoError& e) {
    message = e.what();
    return DIFFBLOCKS_IO_ERROR;
  } catch (const ConfigError& e) {
    message = e.what();
    return DIFFBLOCKS_CONFIG_ERROR;
  } catch (const LoadError& e) {
    message = e.what();
    return DIFFBLOCKS_LOAD_ERROR;
  } catch (const InputError& e) {
    message = e.what();
    return DIFFBLOCKS_INPUT_ERROR;
  } catch (const CudaError& e) {
    message = e.what();
    return DIFFBLOCKS_CUDA_ERROR;
  } catch (const Error& e) {
    message = e.what();
    return DIFFBLOCKS_ERROR;
  } catch (const std::bad_alloc&) {
    message = "std::bad_alloc";
    return DIFFBLOCKS_BAD_ALLOC;
  } catch (const std::length_error& e) {
    message = e.what();
    return DIFFBLOCKS_LENGTH_ERROR;
  } catch (const std::exception& e) {
    message = e.what();
    return DIFFBLOCKS_OTHER_ERROR;
  } catch (...) {
    message = "unknown exception";
    return DIFFBLOCKS_OTHER_ERROR;
  }
}

/// Throws the exception `status` stands for, with `message` (DIFFBLOCKS_OK: returns).
inline void throw_status(std::int32_t status, const std::string& message) {
  switch (status) {
    case DIFFBLOCKS_OK: return;
    case DIFFBLOCKS_IO_ERROR: throw IoError(message);
    case DIFFBLOCKS_CONFIG_ERROR: throw ConfigError(message);
    case DIFFBLOCKS_LOAD_ERROR: throw LoadError(message);
    case DIFFBLOCKS_INPUT_ERROR: throw InputError(message);
    case DIFFBLOCKS_OUT_OF_MEMORY: throw OutOfMemoryError(message);
    case DIFFBLOCKS_CUDA_ERROR: throw CudaError(message);
    case DIFFBLOCKS_BAD_ALLOC: throw std::bad_alloc();
    case DIFFBLOCKS_LENGTH_ERROR: throw std::length_error(message);
    case DIFFBLOCKS_OTHER_ERROR: throw std::runtime_error(message);
    case DIFFBLOCKS_ERROR: throw Error(message);
    default: throw Error("device backend: unknown status " + std::to_string(status) + ": " + message);
  }
}

/// The exception being handled again, its message prefixed with `prefix` (e.g. "--device cuda: "),
/// of the same class as far as the statuses tell.
[[noreturn]] inline void rethrow_with_prefix(const std::string& prefix) {
  std::string message;
  const std::int32_t status = current_status(message);
  if (status == DIFFBLOCKS_BAD_ALLOC || status == DIFFBLOCKS_ABORTED) throw;
  throw_status(status, prefix + message);
  throw;  // not reached: every other status throws
}

}  // namespace runtime
}  // namespace diffblocks
