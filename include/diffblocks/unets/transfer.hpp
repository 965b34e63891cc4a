#pragma once
// Moving U-Net inputs between devices: to_device(db::Cuda{}, inputs) uploads every tensor of an
// OriginConditioning or DiffuserInputs (integer ids stay host vectors), to_device(db::Cpu{}, ...)
// brings them back. Tensors themselves move with the to_device overloads of each device
// (core/params.hpp for Cpu -> Cpu, core/cuda/tensor.hpp for Cpu <-> Cuda).
// cast_inputs<T>(d, inputs) converts float32 inputs for a model of scalar type T (bf16, f16):
// every tensor rounded to T except the times, which every model takes in float32.
#include <optional>

#include "diffblocks/unets/diffuser.hpp"
#include "diffblocks/unets/origin.hpp"

namespace diffblocks {
namespace detail {
template <class T, class D, class X>
auto optional_cast(const D& d, const std::optional<X>& x) -> std::optional<decltype(ops::cast<T>(d, *x))> {
  if (!x) return std::nullopt;
  return ops::cast<T>(d, *x);
}
template <class Dst, class X>
auto optional_to_device(Dst d, const std::optional<X>& x) -> std::optional<decltype(to_device(d, *x))> {
  if (!x) return std::nullopt;
  return to_device(d, *x);
}
}  // namespace detail

/// The Origin U-Net's conditioning on device Dst.
template <class Dst, class T, class Src>
OriginConditioning<T, Dst> to_device(Dst d, const OriginConditioning<T, Src>& c) {
  OriginConditioning<T, Dst> o;
  o.spk = detail::optional_to_device(d, c.spk);
  o.spk_id = c.spk_id;
  o.emo = detail::optional_to_device(d, c.emo);
  o.emo_id = c.emo_id;
  o.psd = detail::optional_to_device(d, c.psd);
  return o;
}

/// The Diffuser U-Net's forward inputs on device Dst.
template <class Dst, class T, class Src>
DiffuserInputs<T, Dst> to_device(Dst d, const DiffuserInputs<T, Src>& in) {
  DiffuserInputs<T, Dst> o;
  o.sample = to_device(d, in.sample);
  o.timestep = to_device(d, in.timestep);
  o.encoder_hidden_states = detail::optional_to_device(d, in.encoder_hidden_states);
  o.encoder_attention_mask = detail::optional_to_device(d, in.encoder_attention_mask);
  o.class_labels = in.class_labels;
  o.image_embeds = detail::optional_to_device(d, in.image_embeds);
  o.hint = detail::optional_to_device(d, in.hint);
  o.text_embeds = detail::optional_to_device(d, in.text_embeds);
  o.time_ids = detail::optional_to_device(d, in.time_ids);
  return o;
}

/// The Origin U-Net's conditioning for a model of scalar type T (ids as they are); of type T
/// already, it is returned as it is (moved from a temporary).
template <class T, class D, class S>
OriginConditioning<T, D> cast_inputs(const D& d, OriginConditioning<S, D> c) {
  if constexpr (std::is_same<S, T>::value) return c;
  OriginConditioning<T, D> o;
  o.spk = detail::optional_cast<T>(d, c.spk);
  o.spk_id = c.spk_id;
  o.emo = detail::optional_cast<T>(d, c.emo);
  o.emo_id = c.emo_id;
  o.psd = detail::optional_cast<T>(d, c.psd);
  return o;
}

/// The Diffuser U-Net's inputs for a model of scalar type T; timestep and time_ids stay float32.
template <class T, class D, class S>
DiffuserInputs<T, D> cast_inputs(const D& d, DiffuserInputs<S, D> in) {
  if constexpr (std::is_same<S, T>::value) return in;
  DiffuserInputs<T, D> o;
  o.sample = ops::cast<T>(d, in.sample);
  o.timestep = in.timestep;
  o.encoder_hidden_states = detail::optional_cast<T>(d, in.encoder_hidden_states);
  o.encoder_attention_mask = detail::optional_cast<T>(d, in.encoder_attention_mask);
  o.class_labels = in.class_labels;
  o.image_embeds = detail::optional_cast<T>(d, in.image_embeds);
  o.hint = detail::optional_cast<T>(d, in.hint);
  o.text_embeds = detail::optional_cast<T>(d, in.text_embeds);
  o.time_ids = in.time_ids;
  return o;
}

}  // namespace diffblocks
