#pragma once
// The Meta device holds no data: its tensors are shapes only. A model constructed on Meta
// reports every parameter's name and shape through `visit` without allocating parameter
// storage, so loading can compare a checkpoint's header with what a config implies before the
// real model allocates anything (a 28-byte weights file must not cost gigabytes because its
// config.json says dim = 4096). Only construction and visit are meant for Meta; forward is not.
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "diffblocks/core/error.hpp"

namespace diffblocks {

namespace detail {
/// Meta tensors a thread may still create (see MetaTensorBudget), and what to say when none is
/// left: an absurd layer count must stop the shape-only model early, not after 16M blocks.
struct MetaTensorCounter {
  std::size_t left = std::numeric_limits<std::size_t>::max();
  std::string message;
};
inline thread_local MetaTensorCounter meta_tensor_counter;
}  // namespace detail

/// While alive, at most `limit` Meta tensors may be created on this thread; one more throws
/// LoadError(message).
class MetaTensorBudget {
 public:
  MetaTensorBudget(std::size_t limit, std::string message) : saved_(detail::meta_tensor_counter) {
    detail::meta_tensor_counter.left = limit;
    detail::meta_tensor_counter.message = std::move(message);
  }
  ~MetaTensorBudget() { detail::meta_tensor_counter = std::move(saved_); }
  MetaTensorBudget(const MetaTensorBudget&) = delete;
  MetaTensorBudget& operator=(const MetaTensorBudget&) = delete;

 private:
  detail::MetaTensorCounter saved_;
};

/// A tensor's shape without its data (the interface blocks use while constructing).
template <class T, std::size_t N>
class MetaTensor {
 public:
  using value_type = T;
  using shape_type = std::array<std::size_t, N>;
  MetaTensor() = default;

  static MetaTensor from_shape(const shape_type& shape) {
    auto& c = detail::meta_tensor_counter;
    if (c.left == 0) throw LoadError(c.message);
    --c.left;
    MetaTensor t;
    t.shape_ = shape;
    return t;
  }
  const shape_type& shape() const { return shape_; }
  std::size_t shape(std::size_t i) const { return shape_[i]; }
  static constexpr std::size_t dimension() { return N; }
  /// Elements the real tensor would hold (saturates instead of wrapping).
  std::size_t size() const {
    std::size_t n = 1;
    for (std::size_t d : shape_) {
      if (d != 0 && n > std::numeric_limits<std::size_t>::max() / d) return std::numeric_limits<std::size_t>::max();
      n *= d;
    }
    return n;
  }

 private:
  shape_type shape_{};
};

struct Meta {
  template <class T, std::size_t N>
  using tensor = MetaTensor<T, N>;
  static constexpr const char* name = "meta";
};

namespace ops {
template <class T, std::size_t N>
MetaTensor<T, N> empty(Meta, const std::array<std::size_t, N>& shape) {
  return MetaTensor<T, N>::from_shape(shape);
}
template <class T, std::size_t N>
MetaTensor<T, N> zeros(Meta, const std::array<std::size_t, N>& shape) {
  return MetaTensor<T, N>::from_shape(shape);
}
template <class T, std::size_t N>
MetaTensor<T, N> full(Meta, const std::array<std::size_t, N>& shape, T) {
  return MetaTensor<T, N>::from_shape(shape);
}
}  // namespace ops

}  // namespace diffblocks
