#pragma once
// Loading a U-Net from disk: a model directory or single file (see io/model_file.hpp),
// strict name matching, the optional "decoder.estimator." / "estimator." prefix stripped.
#include <memory>
#include <string>

#include "diffblocks/io/model_file.hpp"
#include "diffblocks/unets/diffuser.hpp"
#include "diffblocks/unets/origin.hpp"

namespace diffblocks {

/// Loads an Origin (GradLogPEstimator2d) model; throws if the config names another class.
template <class T = float, class D = Cpu>
std::unique_ptr<GradLogPEstimator2d<T, D>> load_origin(const ModelFile& file) {
  const std::string cls = file.class_name();
  if (cls != OriginConfig::class_name)
    throw ConfigError(file.config_origin + ": _class_name is \"" + cls + "\", expected \"GradLogPEstimator2d\"");
  const OriginConfig cfg = OriginConfig::from_json(file.config, file.config_origin);
  auto model = std::make_unique<GradLogPEstimator2d<T, D>>(cfg);
  StateDict sd(file.weights, detect_prefix(file.weights, {"spk_emb.weight", "emo_emb.weight"}));
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
  auto model = std::make_unique<UNet2DConditionModel<T, D>>(cfg);
  StateDict sd(file.weights);
  model->load(sd);
  return model;
}

template <class T = float, class D = Cpu>
std::unique_ptr<UNet2DConditionModel<T, D>> load_diffuser(const std::string& path) {
  return load_diffuser<T, D>(load_model_file(path));
}

}  // namespace diffblocks
