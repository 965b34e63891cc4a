#pragma once
// The backend's side of the inputs (runtime/abi.h's diffblocks_tensor views) as the library's
// host types: tensors, OriginConditioning, DiffuserInputs. The runtime has checked names, ranks
// and ids already (runtime/inputs.hpp); a backend checks again what it relies on (presence,
// dtype, rank), since any host may call it.
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "diffblocks/runtime/abi.h"
#include "diffblocks/unets/diffuser.hpp"
#include "diffblocks/unets/origin.hpp"

namespace diffblocks {
namespace runtime {
namespace detail {

/// The inputs of one call, taken by name; a name left over is an error.
class Views {
 public:
  Views(const diffblocks_tensor* p, std::size_t n) : p_(p), n_(n) {}

  bool has(const std::string& name) const { return find(name) != nullptr; }

  template <std::size_t N>
  Tensor<float, N> floats(const std::string& name) {
    const diffblocks_tensor& v = take(name, DIFFBLOCKS_F32, N);
    std::array<std::size_t, N> shape;
    for (std::size_t i = 0; i < N; ++i) shape[i] = static_cast<std::size_t>(v.shape[i]);
    auto t = Tensor<float, N>::from_shape(shape);
    if (t.size()) std::memcpy(t.data(), v.data, t.size() * sizeof(float));
    return t;
  }

  template <std::size_t N>
  std::optional<Tensor<float, N>> optional(const std::string& name) {
    if (!has(name)) return std::nullopt;
    return floats<N>(name);
  }

  std::vector<std::int64_t> ids(const std::string& name) {
    if (!has(name)) return {};
    const diffblocks_tensor& v = take(name, DIFFBLOCKS_I64, 1);
    const auto* p = static_cast<const std::int64_t*>(v.data);
    return std::vector<std::int64_t>(p, p + v.shape[0]);
  }

  void check_all_taken() const {
    for (std::size_t i = 0; i < n_; ++i)
      if (!taken_.count(p_[i].name)) throw InputError(std::string("unexpected input tensor '") + p_[i].name + "'");
  }

 private:
  const diffblocks_tensor* find(const std::string& name) const {
    for (std::size_t i = 0; i < n_; ++i)
      if (name == p_[i].name) return &p_[i];
    return nullptr;
  }

  const diffblocks_tensor& take(const std::string& name, std::int32_t dtype, std::size_t rank) {
    const diffblocks_tensor* v = find(name);
    if (!v) throw InputError("missing input tensor '" + name + "'");
    if (v->dtype != dtype || v->rank != static_cast<std::int32_t>(rank))
      throw InputError("input '" + name + "' is not a rank-" + std::to_string(rank) +
                       (dtype == DIFFBLOCKS_F32 ? " float" : " id") + " tensor");
    taken_.insert(name);
    return *v;
  }

  const diffblocks_tensor* p_;
  std::size_t n_;
  std::set<std::string> taken_;
};

inline OriginConditioning<float> origin_conditioning(Views& v) {
  OriginConditioning<float> c;
  c.spk = v.optional<2>("spk");
  c.spk_id = v.ids("spk_id");
  c.emo = v.optional<2>("emo");
  c.emo_id = v.ids("emo_id");
  c.psd = v.optional<3>("psd");
  return c;
}

inline DiffuserInputs<float> diffuser_inputs(Views& v, bool with_timestep) {
  DiffuserInputs<float> d;
  d.sample = v.floats<4>("sample");
  if (with_timestep) {
    d.timestep = v.floats<1>("timestep");
  } else {  // diffusers_sample sets the timesteps itself
    d.timestep = Tensor<float, 1>::from_shape({1});
    d.timestep.fill(0.f);
  }
  d.encoder_hidden_states = v.optional<3>("encoder_hidden_states");
  d.encoder_attention_mask = v.optional<2>("encoder_attention_mask");
  d.class_labels = v.ids("class_labels");
  d.image_embeds = v.optional<2>("image_embeds");
  d.hint = v.optional<4>("hint");
  d.text_embeds = v.optional<2>("text_embeds");
  d.time_ids = v.optional<2>("time_ids");
  return d;
}

}  // namespace detail
}  // namespace runtime
}  // namespace diffblocks
