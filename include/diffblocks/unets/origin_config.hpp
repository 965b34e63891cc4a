#pragma once
// Hyper-parameters of the Origin U-Net (Grad-TTS GradLogPEstimator2d + emotion/prosody
// channels). Keys are the PyTorch constructor's argument names; missing keys take the PyTorch
// defaults (n_spks: the original's default None cannot run, 1 = no speaker conditioning).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffblocks/core/config.hpp"
#include "diffblocks/core/error.hpp"

namespace diffblocks {

struct OriginConfig {
  int dim = 64;
  std::vector<int> dim_mults{1, 2, 4};
  int groups = 8;  // stored like the original, which never passes it on: every GroupNorm has 8 groups
  int n_spks = 1;
  int spk_emb_dim = 64;
  int n_feats = 80;
  double pe_scale = 1000.0;
  int n_emos = 1;
  int emo_emb_dim = 64;
  int n_psd = 0;
  double beta_min = 0.05;
  double beta_max = 20.0;

  static constexpr const char* class_name = "GradLogPEstimator2d";
  static constexpr int norm_groups = 8;

  int levels() const { return static_cast<int>(dim_mults.size()); }
  bool has_spk() const { return n_spks > 1; }
  bool has_emo() const { return n_emos > 1; }
  /// Channels of the first resnet: mu, x, [spk], [emo], psd_0..psd_{n_psd-1}.
  int in_channels() const { return 2 + (has_spk() ? 1 : 0) + (has_emo() ? 1 : 0) + n_psd; }
  /// T (and n_feats) must be a multiple of this: the U-Net halves them levels-1 times.
  int length_multiple() const { return 1 << (levels() - 1); }

  /// Throws ConfigError naming the first invalid key.
  void validate(const std::string& origin = "config") const {
    auto fail = [&](const std::string& key, const std::string& why) {
      throw ConfigError(origin + ": config key '" + key + "' " + why);
    };
    // Upper bounds keep every derived size (channels, in_channels(), 4 * emb_dim) far from int
    // overflow; a config beyond them is a typo or a hostile file, not a model.
    constexpr long long kMaxWidth = 1 << 16;
    if (dim <= 0 || dim > kMaxWidth) fail("dim", "must be in [1, 65536], got " + std::to_string(dim));
    if (dim % norm_groups != 0) fail("dim", "must be divisible by 8, got " + std::to_string(dim));
    if (dim_mults.empty()) fail("dim_mults", "must not be empty");
    if (levels() > 16) fail("dim_mults", "has too many levels (" + std::to_string(levels()) + " > 16)");
    for (int m : dim_mults) {
      if (m <= 0) fail("dim_mults", "entries must be positive");
      const long long width = static_cast<long long>(dim) * m;
      if (width > kMaxWidth) fail("dim_mults", "give dim * mult = " + std::to_string(width) + " channels (> 65536)");
      if (width % norm_groups != 0)
        fail("dim", "times every dim_mult must be divisible by 8 (GroupNorm groups), got " + std::to_string(width));
    }
    if (n_feats <= 0 || n_feats > kMaxWidth || n_feats % length_multiple() != 0)
      fail("n_feats", "must be a positive multiple of " + std::to_string(length_multiple()) +
                          " (2^(levels-1)) up to 65536, got " + std::to_string(n_feats));
    if (n_spks > (1 << 24)) fail("n_spks", "must be <= 16777216");
    if (n_emos > (1 << 24)) fail("n_emos", "must be <= 16777216");
    if (n_psd > 4096) fail("n_psd", "must be <= 4096");
    if (has_spk() && spk_emb_dim > kMaxWidth) fail("spk_emb_dim", "must be <= 65536");
    if (has_emo() && emo_emb_dim > kMaxWidth) fail("emo_emb_dim", "must be <= 65536");
    if (n_spks < 0) fail("n_spks", "must be >= 0");
    if (n_emos < 0) fail("n_emos", "must be >= 0");
    if (n_psd < 0) fail("n_psd", "must be >= 0");
    if (has_spk() && spk_emb_dim <= 0) fail("spk_emb_dim", "must be positive");
    if (has_emo() && emo_emb_dim <= 0) fail("emo_emb_dim", "must be positive");
    if (!(beta_max >= beta_min) || beta_min < 0) fail("beta_max", "must be >= beta_min >= 0");
  }

  static OriginConfig from_json(const nlohmann::json& j, const std::string& origin = "config") {
    static const char* known[] = {"dim",    "dim_mults",   "groups", "n_spks",   "spk_emb_dim", "n_feats", "pe_scale",
                                  "n_emos", "emo_emb_dim", "n_psd",  "beta_min", "beta_max"};
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it.key().empty() && it.key()[0] == '_') continue;  // _class_name, _version, ...
      bool ok = false;
      for (const char* k : known) ok = ok || it.key() == k;
      if (!ok) throw ConfigError(origin + ": unknown config key '" + it.key() + "' for GradLogPEstimator2d");
    }
    OriginConfig c;
    c.dim = static_cast<int>(config::require_int(j, "dim", origin));
    c.dim_mults.clear();
    for (long long m : config::get_int_list(j, "dim_mults", {1, 2, 4}, origin)) c.dim_mults.push_back(static_cast<int>(m));
    c.groups = static_cast<int>(config::get_int(j, "groups", 8, origin));
    c.n_spks = static_cast<int>(config::get_int(j, "n_spks", 1, origin));
    c.spk_emb_dim = static_cast<int>(config::get_int(j, "spk_emb_dim", 64, origin));
    c.n_feats = static_cast<int>(config::get_int(j, "n_feats", 80, origin));
    c.pe_scale = config::get_double(j, "pe_scale", 1000.0, origin);
    c.n_emos = static_cast<int>(config::get_int(j, "n_emos", 1, origin));
    c.emo_emb_dim = static_cast<int>(config::get_int(j, "emo_emb_dim", 64, origin));
    c.n_psd = static_cast<int>(config::get_int(j, "n_psd", 0, origin));
    c.beta_min = config::get_double(j, "beta_min", 0.05, origin);
    c.beta_max = config::get_double(j, "beta_max", 20.0, origin);
    c.validate(origin);
    return c;
  }

  nlohmann::json to_json() const {
    return {{"_class_name", class_name}, {"dim", dim},       {"dim_mults", dim_mults},     {"groups", groups},
            {"n_spks", n_spks},          {"spk_emb_dim", spk_emb_dim}, {"n_feats", n_feats}, {"pe_scale", pe_scale},
            {"n_emos", n_emos},          {"emo_emb_dim", emo_emb_dim}, {"n_psd", n_psd},     {"beta_min", beta_min},
            {"beta_max", beta_max}};
  }
};

}  // namespace diffblocks
