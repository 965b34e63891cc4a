#pragma once
// Shared by the fuzz targets. The contract under test: whatever bytes a user hands the reader or
// the config parser, the library either succeeds or throws a diffblocks::Error. Anything else
// (a crash, a sanitizer report, another exception type escaping, a hang) is a bug, so the
// targets catch diffblocks::Error only and let everything else reach libFuzzer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "diffblocks/diffblocks.hpp"

namespace dbfuzz {

namespace db = diffblocks;

/// Models are constructed only when their config is small: the constructor allocates (and
/// zeroes) every parameter, and a legitimately huge config would only measure memory, not
/// find bugs. The limits still reach every code path (levels, speakers, emotions, heads, ...).
inline bool small_enough(const db::OriginConfig& c) {
  int widest = 0;
  for (int m : c.dim_mults) widest = std::max(widest, m);
  return c.dim <= 64 && c.levels() <= 4 && c.dim * widest <= 128 && c.n_feats <= 128 && c.n_spks <= 64 &&
         c.spk_emb_dim <= 128 && c.n_emos <= 64 && c.emo_emb_dim <= 128 && c.n_psd <= 8;
}

inline bool small_enough(const db::DiffuserConfig& c) {
  if (c.levels() > 4 || c.in_channels > 16 || c.out_channels > 16 || c.time_embed_dim() > 512 ||
      c.num_class_embeds > 64 || c.encoder_hid_dim > 128 || c.projection_class_embeddings_input_dim > 512 ||
      c.addition_time_embed_dim > 128 || c.conv_in_kernel > 7 || c.conv_out_kernel > 7)
    return false;
  for (std::size_t i = 0; i < c.block_out_channels.size(); ++i)
    if (c.block_out_channels[i] > 128 || c.layers_per_block[i] > 2 || c.transformer_layers_per_block[i] > 2 ||
        c.reverse_transformer_layers_per_block[i] > 2 || c.cross_attention_dim[i] > 128)
      return false;
  return true;
}

/// Builds (and, given weights, strictly loads) the model a parsed config names.
inline void build_model(const db::ModelFile& file, bool load) {
  const std::string cls = file.class_name();
  if (cls == db::OriginConfig::class_name) {
    const auto cfg = db::OriginConfig::from_json(file.config, file.config_origin);
    if (!small_enough(cfg)) return;
    if (load) {
      db::load_origin(file);
    } else {
      db::GradLogPEstimator2d<float> model(cfg);
      (void)db::parameter_count(model);
    }
  } else if (cls == db::DiffuserConfig::class_name) {
    const auto cfg = db::DiffuserConfig::from_json(file.config, file.config_origin);
    if (!small_enough(cfg)) return;
    if (load) {
      db::load_diffuser(file);
    } else {
      db::UNet2DConditionModel<float> model(cfg);
      (void)db::parameter_count(model);
    }
  }
}

}  // namespace dbfuzz
