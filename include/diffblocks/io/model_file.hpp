#pragma once
// A model on disk is either a directory with config.json and exactly one *.safetensors file,
// (model.safetensors or diffusion_pytorch_model.safetensors when there are several),
// or a single .safetensors file whose __metadata__["config"] holds the same JSON as a string.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffblocks/core/error.hpp"
#include "diffblocks/core/json.hpp"
#include "diffblocks/io/file.hpp"
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
      throw ConfigError(config_origin + ": '_class_name' must be a string, got " + json_brief(config["_class_name"]));
    return config["_class_name"].get<std::string>();
  }
};

/// Parses config text (config.json, a scheduler config, a single file's embedded config): at
/// most kMaxTextFileBytes, nested at most kMaxJsonDepth deep, no key twice, a JSON object.
inline nlohmann::json parse_config_text(const std::string& text, const std::string& origin) {
  if (text.size() > kMaxTextFileBytes)
    throw ConfigError(origin + ": config is " + std::to_string(text.size()) + " bytes, larger than the cap of " +
                      std::to_string(kMaxTextFileBytes) + " bytes");
  nlohmann::json j = parse_json_checked<ConfigError>(text, origin, "config");
  if (!j.is_object()) throw ConfigError(origin + ": config is not a JSON object");
  return j;
}

/// The files a model path stands for, found without reading them: config.json (empty for a
/// single file, whose config is in its header) and the weights file.
struct ModelPaths {
  bool directory = false;
  std::string config, weights;
};

inline ModelPaths resolve_model_paths(const std::string& path) {
  namespace fs = std::filesystem;
  ModelPaths p;
  std::error_code ec;
  if (path.empty()) throw IoError("empty model path");
  if (!fs::is_directory(path, ec)) {
    if (!fs::exists(path, ec)) throw IoError(path + ": no such file or directory");
    p.weights = path;
    return p;
  }
  p.directory = true;
  const fs::path dir(path);
  p.config = (dir / "config.json").string();
  if (!fs::exists(fs::symlink_status(p.config, ec)))
    throw IoError(path + ": model directory has no config.json");
  std::vector<fs::path> weights;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw IoError(path + ": cannot list the model directory: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw IoError(path + ": cannot list the model directory: " + ec.message());
    // Not only regular files: a FIFO or device named model.safetensors is then refused by name
    // when it is opened (io/file.hpp), instead of "no *.safetensors file".
    if (it->path().extension() == ".safetensors") weights.push_back(it->path());
  }
  if (ec) throw IoError(path + ": cannot list the model directory: " + ec.message());
  if (weights.empty()) throw IoError(path + ": model directory has no *.safetensors file");
  // The conventional names win when other safetensors files sit beside them (inputs, variants).
  for (const char* name : {"model.safetensors", "diffusion_pytorch_model.safetensors"})
    if (fs::exists(fs::symlink_status(dir / name, ec))) weights = {dir / name};
  if (weights.size() > 1)
    throw IoError(path + ": model directory has " + std::to_string(weights.size()) +
                  " *.safetensors files; expected exactly one (sharded checkpoints are not supported)");
  p.weights = weights.front().string();
  return p;
}

/// Loads and validates a model directory or single file.
inline ModelFile load_model_file(const std::string& path) {
  ModelFile m;
  m.path = path;
  const ModelPaths p = resolve_model_paths(path);
  if (p.directory) {
    m.config_origin = p.config;
    std::string text;
    try {
      text = read_text_file(p.config, "config.json");
    } catch (const IoError& e) {
      throw IoError(std::string(e.what()) + " (model directory " + path + " needs a readable config.json)");
    }
    m.config = parse_config_text(text, m.config_origin);
    m.weights = SafeTensors::load(p.weights);
    return m;
  }
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
