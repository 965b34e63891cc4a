#pragma once
// One tensor of a safetensors file as a Tensor<T, N> (read_tensor), and tensors written to a
// file (write_tensors with tensor_entry): what every program around the library needs, with
// errors that name the file, the tensor and what was expected.
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "diffblocks/core/device.hpp"
#include "diffblocks/core/error.hpp"
#include "diffblocks/core/half.hpp"
#include "diffblocks/core/shape.hpp"
#include "diffblocks/io/safetensors.hpp"

namespace diffblocks {

/// Tensor `name` of `file` as a Tensor<T, N> on the CPU. T is float (any floating dtype: F16 /
/// BF16 exactly, F64 rounded), db::bf16 or db::f16 (the same dtype bit for bit, another floating
/// dtype rounded to nearest even; a finite value beyond f16's range is refused), or std::int64_t
/// (any integer dtype, or floats that are all integral). Throws IoError naming the file and the
/// tensor when it is missing, has another rank, or has a dtype that does not convert to T.
template <class T, std::size_t N>
Tensor<T, N, Cpu> read_tensor(const SafeTensors& file, const std::string& name) {
  static_assert(std::is_same<T, float>::value || is_half_v<T> || std::is_same<T, std::int64_t>::value,
                "read_tensor reads float, db::bf16, db::f16 or std::int64_t tensors");
  const TensorInfo& t = file.info(name);
  const std::string what = file.origin() + ": tensor '" + name + "'";
  if (t.shape.size() != N)
    throw IoError(what + " has shape " + shape_str(t.shape) + " (rank " + std::to_string(t.shape.size()) +
                  "), expected rank " + std::to_string(N));
  std::array<std::size_t, N> shape{};
  for (std::size_t i = 0; i < N; ++i) shape[i] = static_cast<std::size_t>(t.shape[i]);
  const std::uint64_t n = t.numel();
  // The header's shapes were checked against the data when the file was opened: n values of
  // this dtype are in it, so the allocation is what the file justifies (2x for F16 -> float).
  auto y = naming_allocation("reading " + what, n * sizeof(T), [&] { return Tensor<T, N, Cpu>::from_shape(shape); });
  if constexpr (std::is_same<T, float>::value) {
    file.read_float(t, y.data());
  } else if constexpr (std::is_same<T, std::int64_t>::value) {
    const std::vector<std::int64_t> v = file.read_int(name);
    std::copy(v.begin(), v.end(), y.data());
  } else if (t.dtype == SafeTensors::half_dtype<T>()) {
    file.read_same_half(t, y.data());
  } else {
    std::vector<float> f(static_cast<std::size_t>(n));
    file.read_float(t, f.data());
    for (std::uint64_t i = 0; i < n; ++i) {
      y.data()[i] = T(f[i]);
      if (std::isfinite(f[i]) && !std::isfinite(static_cast<float>(y.data()[i])))
        throw IoError(what + " (" + dtype_name(t.dtype) + ") holds " + std::to_string(f[i]) + " at flat index " +
                      std::to_string(i) + ", beyond f16's range (65504)");
    }
  }
  return y;
}

/// An entry for write_tensors: `t` under `name`, stored as F32 (a float or half tensor; half
/// values widen exactly) or I64 (an integer tensor).
template <class T, std::size_t N>
TensorToWrite tensor_entry(const std::string& name, const Tensor<T, N, Cpu>& t) {
  static_assert(std::is_same<T, float>::value || is_half_v<T> || std::is_integral<T>::value,
                "tensor_entry writes float, half or integer tensors");
  TensorToWrite e;
  e.name = name;
  e.shape.assign(t.shape().begin(), t.shape().end());
  if constexpr (std::is_integral<T>::value) {
    e.is_int = true;
    e.i64.assign(t.begin(), t.end());
  } else {
    e.f32.resize(t.size());
    for (std::size_t i = 0; i < t.size(); ++i) e.f32[i] = static_cast<float>(t.data()[i]);
  }
  return e;
}

/// Writes the entries (tensor_entry) to `path` atomically: a failure leaves no half file and
/// never replaces what was there (save_safetensors). Names must be distinct.
inline void write_tensors(const std::string& path, const std::vector<TensorToWrite>& entries,
                          const std::map<std::string, std::string>& metadata = {}) {
  save_safetensors(path, entries, metadata);
}

}  // namespace diffblocks
