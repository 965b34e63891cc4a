#pragma once
// Shared by the block headers: allocation of zeroed parameters and input checks whose
// messages name the block and both shapes.
#include <array>
#include <cstddef>
#include <string>

#include "diffblocks/core/device.hpp"
#include "diffblocks/core/error.hpp"
#include "diffblocks/core/params.hpp"
#include "diffblocks/core/shape.hpp"
#include "diffblocks/ops/ops.hpp"

namespace diffblocks {
namespace detail {

inline std::string join(const std::string& prefix, const char* name) { return prefix + name; }

template <class Tn>
void check_dim(const char* block, const char* what, const Tn& x, std::size_t axis, std::size_t expected) {
  if (x.shape(axis) != expected)
    throw InputError(std::string(block) + ": " + what + " has shape " + shape_str(tensor_shape(x)) + ", expected " +
                     std::to_string(expected) + " at axis " + std::to_string(axis));
}

template <class Tn>
void check_mask(const char* block, const Tn& x, const Tn& mask) {
  if (mask.shape(0) != x.shape(0) || mask.shape(1) != 1 || mask.shape(2) != 1 || mask.shape(3) != x.shape(3))
    throw InputError(std::string(block) + ": mask has shape " + shape_str(tensor_shape(mask)) +
                     ", expected [B, 1, 1, W] for input " + shape_str(tensor_shape(x)));
}

inline void check_positive(const char* block, const char* what, long long v) {
  if (v <= 0) throw ConfigError(std::string(block) + ": " + what + " must be positive, got " + std::to_string(v));
}

}  // namespace detail
}  // namespace diffblocks
