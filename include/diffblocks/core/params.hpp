#pragma once
// Parameters are plain tensor members of each block, reported by a `visit` method under the
// exact PyTorch state_dict names (stable-diffusion.cpp style), so loading a checkpoint is name
// matching: `block.visit(f, "downs.0.0.")` calls f("downs.0.0.block1.block.0.weight", tensor).
#include <cmath>
#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "diffblocks/core/device.hpp"
#include "diffblocks/core/error.hpp"
#include "diffblocks/core/prepared_walk.hpp"
#include "diffblocks/core/shape.hpp"
#include "diffblocks/io/safetensors.hpp"

namespace diffblocks {

/// Copies host float32 data into a CPU tensor whose shape is already the expected one.
template <class T, std::size_t N>
void assign_from_host(Cpu, Tensor<T, N, Cpu>& dst, const float* src) {
  std::copy(src, src + dst.size(), dst.begin());
}

/// Copies a CPU tensor back to float32 on the host.
template <class T, std::size_t N>
std::vector<float> copy_to_host(Cpu, const Tensor<T, N, Cpu>& src) {
  return std::vector<float>(src.begin(), src.end());
}

/// The same tensor on device Cpu (a copy). Other devices add their own overloads (the Cuda
/// device: Cpu <-> Cuda in core/cuda/tensor.hpp), so inputs move with `to_device(D{}, x)`.
template <class T, std::size_t N>
Tensor<T, N, Cpu> to_device(Cpu, const Tensor<T, N, Cpu>& x) {
  return x;
}

template <class Tn>
Shape tensor_shape(const Tn& t) {
  return Shape(t.shape().begin(), t.shape().end());
}

/// Named tensors of a checkpoint, with an optional prefix stripped, tracking which were used.
class StateDict {
 public:
  StateDict(const SafeTensors& file, const std::string& strip_prefix = "") : file_(&file) {
    for (const auto& t : file.tensors()) {
      std::string name = t.name;
      if (!strip_prefix.empty() && name.compare(0, strip_prefix.size(), strip_prefix) == 0)
        name = name.substr(strip_prefix.size());
      if (!names_.emplace(name, &t).second)
        throw LoadError(file.origin() + ": key '" + name + "' appears twice after stripping prefix '" +
                        strip_prefix + "'");
    }
  }

  /// A StateDict views its file's tensors; made from a temporary it would outlive them (a use
  /// after free). Keep the file in a variable: `auto f = SafeTensors::load(p); StateDict sd(f);`
  /// (tests/compile_fail checks that the temporary does not compile).
  StateDict(const SafeTensors&&, const std::string& = "") = delete;

  const SafeTensors& file() const { return *file_; }
  std::size_t size() const { return names_.size(); }
  bool contains(const std::string& name) const { return names_.count(name) != 0; }
  const TensorInfo* find(const std::string& name) const {
    auto it = names_.find(name);
    return it == names_.end() ? nullptr : it->second;
  }

  /// Loads `name` into `dst`, whose current shape is what the model expects.
  template <class D, class T, std::size_t N>
  void load_into(const std::string& name, Tensor<T, N, D>& dst) {
    const TensorInfo* t = find(name);
    const Shape want = tensor_shape(dst);
    if (!t) throw LoadError(file_->origin() + ": missing key '" + name + "' (expected shape " + shape_str(want) + ")");
    if (t->shape != want)
      throw LoadError(file_->origin() + ": key '" + name + "' has shape " + shape_str(t->shape) +
                      " but the model expects " + shape_str(want));
    // A NaN or Inf weight would turn every output into garbage without a word: refuse it here,
    // where the key and position can still be named.
    auto check_finite = [&](const auto* v, std::size_t n) {  // float32 or half values
      for (std::size_t i = 0; i < n; ++i)
        if (!std::isfinite(float(v[i])))
          throw LoadError(file_->origin() + ": key '" + name + "' holds " + (std::isnan(float(v[i])) ? "NaN" : "Inf") +
                          " at flat index " + std::to_string(i) + " (shape " + shape_str(t->shape) + ")");
    };
    // The weight as float32 on the host, checked (for every destination but a float32 CPU tensor).
    auto read_host = [&] {
      const std::uint64_t n = t->numel();
      auto host = naming_allocation("reading weight '" + name + "' of " + file_->origin(), n * 4,
                                    [&] { return std::vector<float>(n); });
      file_->read_float(*t, host.data());
      check_finite(host.data(), host.size());
      return host;
    };
    if constexpr (std::is_same_v<D, Cpu> && std::is_same_v<T, float>) {
      // Straight into the parameter: loading needs the parameters' memory and nothing more.
      file_->read_float(*t, dst.data());
      check_finite(dst.data(), dst.size());
    } else if constexpr (is_half_v<T>) {
      // The half values on the host: in the parameter itself on the CPU, else in a host buffer
      // of the model's type copied to the device as it is (no float32 copy anywhere).
      std::vector<T> staging;
      T* out = dst.data();
      if constexpr (!std::is_same_v<D, Cpu>) {
        staging = naming_allocation("reading weight '" + name + "' of " + file_->origin(), t->numel() * sizeof(T),
                                    [&] { return std::vector<T>(t->numel()); });
        out = staging.data();
      }
      if (t->dtype == SafeTensors::half_dtype<T>()) {
        // Stored in the model's own type: the bits straight into the parameter.
        file_->read_same_half(*t, out);
        check_finite(out, static_cast<std::size_t>(t->numel()));
      } else {
        // Another dtype (F32 above all): rounded to nearest even, refusing a value the half type
        // cannot hold (f16 overflows from 65520 on).
        const auto host = read_host();
        for (std::size_t i = 0; i < host.size(); ++i) {
          out[i] = T(host[i]);
          if (!std::isfinite(float(out[i])))
            throw LoadError(file_->origin() + ": key '" + name + "' holds " + std::to_string(host[i]) +
                            " at flat index " + std::to_string(i) + ", beyond the range of " +
                            (std::is_same_v<T, bf16> ? "bf16" : "f16 (largest finite 65504)"));
        }
      }
      if constexpr (!std::is_same_v<D, Cpu>) assign_from_host(D{}, dst, static_cast<const T*>(staging.data()));
    } else {
      const auto host = read_host();
      assign_from_host(D{}, dst, host.data());
    }
    used_.insert(name);
  }

  void mark_used(const std::string& name) { used_.insert(name); }

  /// Keys never loaded; strict loading reports these as unexpected.
  std::vector<std::string> unused() const {
    std::vector<std::string> out;
    for (const auto& kv : names_)
      if (!used_.count(kv.first)) out.push_back(kv.first);
    return out;
  }

  /// Throws naming the first unexpected key (and how many there are).
  void check_all_used() const {
    const auto extra = unused();
    if (extra.empty()) return;
    const TensorInfo* t = find(extra.front());
    std::string msg = file_->origin() + ": unexpected key '" + extra.front() + "' with shape " + shape_str(t->shape) +
                      " (not a parameter of this model)";
    if (extra.size() > 1) msg += " and " + std::to_string(extra.size() - 1) + " more";
    throw LoadError(msg);
  }

 private:
  const SafeTensors* file_;
  std::map<std::string, const TensorInfo*> names_;
  std::set<std::string> used_;
};

/// Loads every parameter a module visits; strict = unexpected keys are an error too. Drops the
/// module's prepared weights (they are made again from the loaded ones at the next forward).
template <class D, class Module>
void load_state_dict(Module& module, StateDict& sd, bool strict = true) {
  module.visit([&](const std::string& name, auto& tensor) { sd.template load_into<D>(name, tensor); });
  invalidate_prepared(module);  // new weights: prepared forms of the old ones must not be used
  if (strict) sd.check_all_used();
}

/// Total number of scalar parameters of a module.
template <class Module>
std::size_t parameter_count(Module& module) {
  std::size_t n = 0;
  module.visit([&](const std::string&, auto& tensor) { n += tensor.size(); });
  return n;
}

/// Names and shapes of every parameter, in registration (state_dict) order.
template <class Module>
std::vector<std::pair<std::string, Shape>> parameter_list(Module& module) {
  std::vector<std::pair<std::string, Shape>> out;
  module.visit([&](const std::string& name, auto& tensor) { out.emplace_back(name, tensor_shape(tensor)); });
  return out;
}

}  // namespace diffblocks
