#pragma once
// A model's inputs by name (DESIGN.md, the CLI's `run` and `sample`), read from a TensorSource
// and checked before they reach a device: every input the task needs is there with its rank,
// ids are integers, and no name is left over (a typo such as 'spk_ids' is an error, not a
// silently ignored input). Shapes against the config are checked by the U-Nets themselves.
//
//   Origin   forward: x, mask, mu (B, F, T), t (B,)      sample: z, mask, mu
//            both: optional spk (B, D) | spk_id (B,), emo | emo_id, psd (B, n_psd, T)
//   Diffuser forward: sample (B, C, H, W), timestep (B,) or scalar     sample: sample
//            both: optional encoder_hidden_states, encoder_attention_mask, class_labels (ids),
//            image_embeds, hint, text_embeds, time_ids
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "diffblocks/runtime/tensors.hpp"

namespace diffblocks {
namespace runtime {

/// The U-Net a model's config names: GradLogPEstimator2d or UNet2DConditionModel.
enum class ModelKind { Origin, Diffuser };

/// What the inputs are for: one forward pass, or a whole sampling run.
enum class Task { Forward, Sample };

/// Checked inputs for one kind of model and one task, in the order they were read: copies in
/// `tensors`, and in `views` those left in the source's memory (TensorSource::view, e.g. a
/// TensorViews of the caller's arrays; valid while that memory is).
struct Inputs {
  ModelKind kind = ModelKind::Origin;
  Task task = Task::Forward;
  std::vector<std::pair<std::string, HostTensor>> tensors;
  std::vector<std::pair<std::string, TensorView>> views;
};

namespace detail {

/// Reads named inputs with rank checks; remembers which names were asked for.
class InputReader {
 public:
  explicit InputReader(const TensorSource& source, Inputs& out) : in_(source), out_(out) {}

  void floats(const std::string& name, std::size_t rank, const char* layout) {
    if (!in_.contains(name))
      throw InputError(in_.origin() + ": missing input tensor '" + name + "' " + layout);
    used_.insert(name);
    Shape shape = in_.shape(name);
    if (shape.size() != rank)
      throw InputError(in_.origin() + ": input '" + name + "' has shape " + shape_str(shape) + " (rank " +
                       std::to_string(shape.size()) + "), expected rank " + std::to_string(rank) + " " + layout);
    read(name, std::move(shape));
  }

  void optional_floats(const std::string& name, std::size_t rank, const char* layout) {
    if (in_.contains(name)) floats(name, rank, layout);
  }

  /// A (B,) vector or a scalar (shape []), as diffusers accepts for `timestep`; a scalar becomes (1,).
  void vector_or_scalar(const std::string& name) {
    if (!in_.contains(name)) throw InputError(in_.origin() + ": missing input tensor '" + name + "' (B,) or scalar");
    if (!in_.shape(name).empty()) return floats(name, 1, "(B,) or scalar");
    used_.insert(name);
    read(name, Shape{1});
  }

  /// Integer ids (B,), when present.
  void optional_ids(const std::string& name) {
    if (!in_.contains(name)) return;
    used_.insert(name);
    const Shape shape = in_.shape(name);
    if (shape.size() != 1)
      throw InputError(in_.origin() + ": input '" + name + "' has shape " + shape_str(shape) +
                       ", expected rank 1 (B,)");
    if (const TensorView* v = in_.view(name); v && v->type == ElementType::I64) {
      out_.views.emplace_back(name, TensorView{ElementType::I64, shape, v->data});
      return;
    }
    std::vector<std::int64_t> ids = in_.read_ids(name);
    Shape n{static_cast<std::int64_t>(ids.size())};  // before the move below: arguments have no order
    out_.tensors.emplace_back(name, HostTensor::ids(std::move(n), std::move(ids)));
  }

  void check_all_used() const {
    for (const auto& name : in_.names())
      if (!used_.count(name)) throw InputError(in_.origin() + ": unexpected input tensor '" + name + "'");
  }

 private:
  void read(const std::string& name, Shape shape) {
    if (const TensorView* v = in_.view(name); v && v->type == ElementType::F32) {  // no copy
      out_.views.emplace_back(name, TensorView{ElementType::F32, std::move(shape), v->data});
      return;
    }
    std::vector<float> data(checked_numel(shape, in_.origin() + ": input '" + name + "'"));
    in_.read_floats(name, data.data());
    out_.tensors.emplace_back(name, HostTensor::floats(std::move(shape), std::move(data)));
  }

  const TensorSource& in_;
  Inputs& out_;
  std::set<std::string> used_;
};

inline void read_origin_conditioning(InputReader& r) {
  r.optional_floats("spk", 2, "(B, spk_emb_dim)");
  r.optional_ids("spk_id");
  r.optional_floats("emo", 2, "(B, emo_emb_dim)");
  r.optional_ids("emo_id");
  r.optional_floats("psd", 3, "(B, n_psd, T)");
}

inline void read_diffuser_conditioning(InputReader& r) {
  r.optional_floats("encoder_hidden_states", 3, "(B, S, D)");
  r.optional_floats("encoder_attention_mask", 2, "(B, S)");
  r.optional_ids("class_labels");
  r.optional_floats("image_embeds", 2, "(B, D)");
  r.optional_floats("hint", 4, "(B, 3, 8H, 8W)");
  r.optional_floats("text_embeds", 2, "(B, D)");
  r.optional_floats("time_ids", 2, "(B, N)");
}

}  // namespace detail

/// The inputs `task` needs on a model of `kind`, read from `source` in a fixed order (so the
/// first problem reported does not depend on the source).
inline Inputs read_inputs(const TensorSource& source, ModelKind kind, Task task) {
  Inputs out;
  out.kind = kind;
  out.task = task;
  detail::InputReader r(source, out);
  if (kind == ModelKind::Origin) {
    r.floats(task == Task::Forward ? "x" : "z", 3, "(B, n_feats, T)");
    r.floats("mask", 3, "(B, 1, T)");
    r.floats("mu", 3, "(B, n_feats, T)");
    if (task == Task::Forward) r.floats("t", 1, "(B,)");
    detail::read_origin_conditioning(r);
  } else {
    r.floats("sample", 4, "(B, C, H, W)");
    if (task == Task::Forward) r.vector_or_scalar("timestep");
    detail::read_diffuser_conditioning(r);
  }
  r.check_all_used();
  return out;
}

}  // namespace runtime
}  // namespace diffblocks
