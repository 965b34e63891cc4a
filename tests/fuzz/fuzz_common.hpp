#pragma once
// Shared by the fuzz targets. The contract under test: whatever bytes a user hands the reader or
// the config parser, the library either succeeds or throws a diffblocks::Error. Anything else
// (a crash, a sanitizer report, another exception type escaping, a hang) is a bug, so the
// targets catch diffblocks::Error only and let everything else reach libFuzzer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

/// How deep the "@[" and "@{" tokens of fuzz_config nest (issue #14's crash was ~90k levels).
constexpr std::size_t kDeepLevels = 100000;

/// The fuzz input as text, with every "@[" replaced by [[[...0...]]] and every "@{" by
/// {"a":{"a":...0}}, each kDeepLevels deep (at most 4 expansions per input).
inline std::string expand_deep(const std::uint8_t* data, std::size_t size) {
  std::string out;
  int expansions = 0;
  for (std::size_t i = 0; i < size; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '@' && i + 1 < size && (data[i + 1] == '[' || data[i + 1] == '{') && expansions < 4) {
      ++expansions;
      const bool array = data[++i] == '[';
      for (std::size_t d = 0; d < kDeepLevels; ++d) out += array ? "[" : "{\"a\":";
      out += '0';
      out.append(kDeepLevels, array ? ']' : '}');
    } else {
      out += c;
    }
  }
  return out;
}

/// Stops the run (a libFuzzer crash) when a contract on printed text is broken.
[[noreturn]] inline void contract_broken(const char* what, const std::string& text) {
  std::fprintf(stderr, "fuzz contract broken: %s: %s\n", what, db::escape_for_message(text.substr(0, 400)).c_str());
  std::abort();
}

/// What the CLI does with an error: prints its message as one line of stderr. Every
/// diffblocks::Error message must already be one line of visible text (control, bidi and
/// invalid UTF-8 bytes escaped when the exception was made), so escaping it again changes nothing.
inline void format_error(const db::Error& e) {
  const std::string what = e.what();
  if (db::escape_for_message(what) != what) contract_broken("an Error message is not escaped", what);
}

/// What `diffblocks info` prints of a model's config (apps/cli/main.cpp, cmd_info): the
/// class, then the normalised config of an Origin model or the file's config of a Diffuser,
/// bounded by json_brief and escaped; each must stay on its line.
inline std::string info_config_text(const db::ModelFile& file) {
  const std::string cls = file.class_name();
  nlohmann::json cfg;
  if (cls == db::OriginConfig::class_name) cfg = db::OriginConfig::from_json(file.config, file.config_origin).to_json();
  else cfg = file.config;
  // json_brief bounds the text (about max_chars, "..." marks a cut); escaping may then grow each
  // byte to at most 4 characters (\xNN), 3-byte code points to 6 (\uNNNN).
  const std::string brief = db::json_brief(cfg, 1 << 16, db::kMaxJsonDepth);
  if (brief.size() > (1 << 16) + 16) contract_broken("info's config text is not bounded", brief);
  const std::string line = db::escape_for_message(brief);
  if (line.find('\n') != std::string::npos) contract_broken("info's config line", line);
  return "class: " + cls + "\nconfig: " + line + "\n";
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
