#pragma once
// A model on disk is either a directory with config.json and exactly one *.safetensors file,
// (model.safetensors or diffusion_pytorch_model.safetensors when there are several),
// or a single .safetensors file whose __metadata__["config"] holds the same JSON as a string.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "diffblocks/core/error.hpp"
#include "diffblocks/io/safetensors.hpp"

namespace diffblocks {

struct ModelFile {
  std::string path;           // what the user gave
  std::string config_origin;  // file the config came from (for error messages)
  nlohmann::json config;
  SafeTensors weights;

  /// The config's "_class_name"; throws when it is missing or not a string.
  std::string class_name() const {
    if (!config.contains("_class_name"))
      throw ConfigError(config_origin + ": config has no '_class_name' (expected \"GradLogPEstimator2d\" or "
                        "\"UNet2DConditionModel\")");
    if (!config["_class_name"].is_string())
      throw ConfigError(config_origin + ": '_class_name' must be a string, got " + config["_class_name"].dump());
    return config["_class_name"].get<std::string>();
  }
};

inline nlohmann::json parse_config_text(const std::string& text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(origin + ": config is not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw ConfigError(origin + ": config is not a JSON object");
  return j;
}

/// Loads and validates a model directory or single file.
inline ModelFile load_model_file(const std::string& path) {
  namespace fs = std::filesystem;
  ModelFile m;
  m.path = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path dir(path);
    const fs::path cfg = dir / "config.json";
    std::ifstream in(cfg);
    if (!in) throw IoError(path + ": model directory has no readable config.json");
    std::stringstream ss;
    ss << in.rdbuf();
    m.config_origin = cfg.string();
    m.config = parse_config_text(ss.str(), m.config_origin);
    std::vector<fs::path> weights;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && e.path().extension() == ".safetensors") weights.push_back(e.path());
    if (weights.empty()) throw IoError(path + ": model directory has no *.safetensors file");
    // The conventional names win when other safetensors files sit beside them (inputs, variants).
    for (const char* name : {"model.safetensors", "diffusion_pytorch_model.safetensors"})
      if (fs::is_regular_file(dir / name, ec)) weights = {dir / name};
    if (weights.size() > 1)
      throw IoError(path + ": model directory has " + std::to_string(weights.size()) +
                    " *.safetensors files; expected exactly one (sharded checkpoints are not supported)");
    m.weights = SafeTensors::load(weights.front().string());
    return m;
  }
  if (!fs::exists(path, ec)) throw IoError(path + ": no such file or directory");
  m.weights = SafeTensors::load(path);
  m.config_origin = path + " (__metadata__ config)";
  const auto& meta = m.weights.metadata();
  auto it = meta.find("config");
  if (it == meta.end())
    throw ConfigError(path + ": single-file model has no 'config' entry in its __metadata__ (use a directory with "
                      "config.json, or embed the config)");
  m.config = parse_config_text(it->second, m.config_origin);
  return m;
}

/// The prefix to strip so that checkpoint names match the model's: "decoder.estimator." or
/// "estimator." when every key except the `allowed_top_level` ones carries it, else "".
inline std::string detect_prefix(const SafeTensors& weights, const std::vector<std::string>& allowed_top_level) {
  for (const std::string prefix : {"decoder.estimator.", "estimator."}) {
    bool any = false, all = true;
    for (const auto& t : weights.tensors()) {
      if (t.name.compare(0, prefix.size(), prefix) == 0) {
        any = true;
      } else if (std::find(allowed_top_level.begin(), allowed_top_level.end(), t.name) == allowed_top_level.end()) {
        all = false;
        break;
      }
    }
    if (any && all) return prefix;
  }
  return "";
}

}  // namespace diffblocks
