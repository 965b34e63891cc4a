#pragma once
// Loading a U-Net from disk: a model directory or single file (see io/model_file.hpp),
// strict name matching, the optional "decoder.estimator." / "estimator." prefix stripped.
//
// Bounded before allocation: the config is first built on the Meta device (shapes only), and
// every parameter's name and shape is compared with the checkpoint's header. Only a checkpoint
// that holds exactly the config's parameters gets a real model allocated, so a config that
// promises gigabytes next to a tiny weights file fails at once, naming the key and both shapes.
#include <memory>
#include <string>

#include "diffblocks/core/meta.hpp"
#include "diffblocks/io/model_file.hpp"
#include "diffblocks/unets/diffuser.hpp"
#include "diffblocks/unets/origin.hpp"

namespace diffblocks {

namespace detail {

/// Throws LoadError unless `sd` holds exactly the parameters (names and shapes) of the model
/// `cfg` describes, besides the already checked `tables`; allocates no parameter storage.
template <class MetaModel, class Config>
void check_checkpoint_shapes(const Config& cfg, const StateDict& sd, const std::string& config_origin,
                             const std::vector<std::string>& tables) {
  // Blocks hold a few tensors each (a bias may be empty), so 4 per checkpoint key and some
  // slack bound any model the checkpoint could match; a config beyond it stops early.
  const std::size_t limit = 4 * sd.size() + 256;
  const MetaTensorBudget budget(limit, config_origin + ": the config describes a model of more than " +
                                           std::to_string(limit) + " tensors, but " + sd.file().origin() +
                                           " holds " + std::to_string(sd.size()) +
                                           " (check the layer counts and dim_mults / block_out_channels)");
  MetaModel meta(cfg);
  StateDict probe = sd;
  for (const auto& t : tables) probe.mark_used(t);
  meta.visit([&](const std::string& name, auto& tensor) {
    const Shape want = tensor_shape(tensor);
    const TensorInfo* t = sd.find(name);
    if (!t)
      throw LoadError(sd.file().origin() + ": missing key '" + name + "' (the config in " + config_origin +
                      " implies shape " + shape_str(want) + ")");
    if (t->shape != want)
      throw LoadError(sd.file().origin() + ": key '" + name + "' has shape " + shape_str(t->shape) +
                      " but the config in " + config_origin + " implies " + shape_str(want));
    probe.mark_used(name);
  });
  probe.check_all_used();
}

/// An Origin id table (`spk_emb.weight` (n_spks, spk_emb_dim), `emo_emb.weight`), checked
/// before GradLogPEstimator2d::load allocates it; returns its name when present.
inline std::vector<std::string> check_origin_table(const StateDict& sd, const std::string& key, bool wanted, int rows,
                                                   int cols, const std::string& keys, const std::string& origin) {
  const TensorInfo* t = sd.find(key);
  if (!t) return {};
  if (!wanted)
    throw LoadError(sd.file().origin() + ": unexpected key '" + key + "': the config in " + origin + " has no " +
                    (key[0] == 's' ? "speaker (n_spks <= 1)" : "emotion (n_emos <= 1)") + " conditioning");
  const Shape want{rows, cols};
  if (t->shape != want)
    throw LoadError(sd.file().origin() + ": key '" + key + "' has shape " + shape_str(t->shape) + " but " + keys +
                    " in " + origin + " imply " + shape_str(want));
  return {key};
}

}  // namespace detail

/// Loads an Origin (GradLogPEstimator2d) model; throws if the config names another class.
template <class T = float, class D = Cpu>
std::unique_ptr<GradLogPEstimator2d<T, D>> load_origin(const ModelFile& file) {
  const std::string cls = file.class_name();
  if (cls != OriginConfig::class_name)
    throw ConfigError(file.config_origin + ": _class_name is \"" + cls + "\", expected \"GradLogPEstimator2d\"");
  const OriginConfig cfg = OriginConfig::from_json(file.config, file.config_origin);
  StateDict sd(file.weights, detect_prefix(file.weights, {"spk_emb.weight", "emo_emb.weight"}));
  std::vector<std::string> tables = detail::check_origin_table(sd, "spk_emb.weight", cfg.has_spk(), cfg.n_spks,
                                                               cfg.spk_emb_dim, "n_spks, spk_emb_dim", file.config_origin);
  for (auto& t : detail::check_origin_table(sd, "emo_emb.weight", cfg.has_emo(), cfg.n_emos, cfg.emo_emb_dim,
                                            "n_emos, emo_emb_dim", file.config_origin))
    tables.push_back(t);
  detail::check_checkpoint_shapes<GradLogPEstimator2d<float, Meta>>(cfg, sd, file.config_origin, tables);
  auto model = std::make_unique<GradLogPEstimator2d<T, D>>(cfg);
  model->load(sd);
  return model;
}

template <class T = float, class D = Cpu>
std::unique_ptr<GradLogPEstimator2d<T, D>> load_origin(const std::string& path) {
  return load_origin<T, D>(load_model_file(path));
}

/// Loads a Diffuser (UNet2DConditionModel) model, e.g. a diffusers model directory as it is.
template <class T = float, class D = Cpu>
std::unique_ptr<UNet2DConditionModel<T, D>> load_diffuser(const ModelFile& file) {
  const std::string cls = file.class_name();
  if (cls != DiffuserConfig::class_name)
    throw ConfigError(file.config_origin + ": _class_name is \"" + cls + "\", expected \"UNet2DConditionModel\"");
  const DiffuserConfig cfg = DiffuserConfig::from_json(file.config, file.config_origin);
  StateDict sd(file.weights);
  detail::check_checkpoint_shapes<UNet2DConditionModel<float, Meta>>(cfg, sd, file.config_origin, {});
  auto model = std::make_unique<UNet2DConditionModel<T, D>>(cfg);
  model->load(sd);
  return model;
}

template <class T = float, class D = Cpu>
std::unique_ptr<UNet2DConditionModel<T, D>> load_diffuser(const std::string& path) {
  return load_diffuser<T, D>(load_model_file(path));
}

}  // namespace diffblocks
