#pragma once
// Hyper-parameters of the Diffuser U-Net: diffusers 0.25.1 UNet2DConditionModel's constructor
// arguments, read from a diffusers config.json. Missing keys take diffusers' defaults; an
// option this implementation does not support is rejected by name, never ignored.
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "diffblocks/blocks/resnet_block2d.hpp"
#include "diffblocks/core/config.hpp"
#include "diffblocks/core/error.hpp"

namespace diffblocks {

struct DiffuserConfig {
  int in_channels = 4, out_channels = 4;
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  std::vector<std::string> down_block_types{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                            "DownBlock2D"};
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";  // "" = no mid block (config null)
  std::vector<std::string> up_block_types{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                          "CrossAttnUpBlock2D"};
  std::vector<bool> only_cross_attention;  // per down block
  std::vector<int> block_out_channels{320, 640, 1280, 1280};
  std::vector<int> layers_per_block;            // per down block
  int downsample_padding = 1;
  double mid_block_scale_factor = 1.0;
  int norm_num_groups = 32;  // 0 = null: no conv_norm_out / conv_act
  double norm_eps = 1e-5;
  std::vector<int> cross_attention_dim;           // per down block
  std::vector<int> transformer_layers_per_block;  // per down block
  std::vector<int> reverse_transformer_layers_per_block;  // per up block
  int encoder_hid_dim = 0;                        // 0 = null
  std::string encoder_hid_dim_type;               // "" or "text_proj"
  std::vector<int> num_attention_heads;           // per down block (from attention_head_dim!)
  bool use_linear_projection = false;
  int num_class_embeds = 0;                       // 0 = no class embedding
  bool upcast_attention = false;                  // accepted; float32 compute makes it a no-op
  TimeEmbeddingNorm resnet_time_scale_shift = TimeEmbeddingNorm::Default;
  int time_embedding_dim = 0;                     // 0 = 4 * block_out_channels[0]
  int conv_in_kernel = 3, conv_out_kernel = 3;
  int projection_class_embeddings_input_dim = 0;
  std::string addition_embed_type;                // "", "text", "text_time", "image", "image_hint"
  int addition_time_embed_dim = 0;
  int addition_embed_type_num_heads = 64;

  static constexpr const char* class_name = "UNet2DConditionModel";

  int levels() const { return static_cast<int>(block_out_channels.size()); }
  int time_embed_dim() const { return time_embedding_dim > 0 ? time_embedding_dim : 4 * block_out_channels.at(0); }
  static bool is_cross(const std::string& type) { return type.rfind("CrossAttn", 0) == 0; }
  bool uses_cross_attention() const {
    for (const auto& t : down_block_types) if (is_cross(t)) return true;
    for (const auto& t : up_block_types) if (is_cross(t)) return true;
    return !mid_block_type.empty();
  }
  /// Feature width the style sequence must have: encoder_hid_dim when a projection exists.
  int style_dim() const { return encoder_hid_dim > 0 ? encoder_hid_dim : cross_attention_dim.at(0); }

  static DiffuserConfig from_json(const nlohmann::json& j, const std::string& origin = "config") {
    using config::get_int;
    DiffuserConfig c;
    auto fail = [&](const std::string& key, const std::string& why) -> ConfigError {
      return ConfigError(origin + ": config key '" + key + "' " + why);
    };
    auto is_null = [&](const char* key) { return !j.contains(key) || j[key].is_null(); };
    auto get_str = [&](const char* key, const std::string& fallback) {
      if (is_null(key)) return fallback;
      if (!j[key].is_string()) throw fail(key, "must be a string, got " + json_brief(j[key]));
      return j[key].get<std::string>();
    };
    auto get_bool = [&](const char* key, bool fallback) {
      if (is_null(key)) return fallback;
      if (!j[key].is_boolean()) throw fail(key, "must be true or false, got " + json_brief(j[key]));
      return j[key].get<bool>();
    };
    auto str_list = [&](const char* key, const std::vector<std::string>& fallback) {
      if (is_null(key)) return fallback;
      if (!j[key].is_array()) throw fail(key, "must be a list of strings");
      std::vector<std::string> out;
      for (const auto& v : j[key]) {
        if (!v.is_string()) throw fail(key, "must be a list of strings");
        out.push_back(v.get<std::string>());
      }
      return out;
    };
    // An int, or a list with one entry per down block.
    auto per_block = [&](const char* key, long long fallback, std::size_t n) {
      std::vector<int> out;
      if (!is_null(key) && j[key].is_array()) {
        if (j[key].size() != n)
          throw fail(key, "has " + std::to_string(j[key].size()) + " entries but there are " + std::to_string(n) +
                              " down blocks");
        for (const auto& v : j[key]) {
          const auto i = config::as_int(v);
          if (!i) throw fail(key, "entries must be integers (nested lists are not supported), got " + json_brief(v));
          out.push_back(static_cast<int>(*i));
        }
      } else {
        out.assign(n, static_cast<int>(get_int(j, key, fallback, origin)));
      }
      return out;
    };
    // Options whose only supported value is the diffusers default.
    auto require_default = [&](const char* key, const nlohmann::json& supported) {
      if (!j.contains(key)) return;
      const auto& v = j[key];
      if (v == supported) return;
      if (supported.is_null() && v.is_null()) return;
      throw fail(key, "= " + json_brief(v) + " is not supported by diffblocks (supported: " + json_brief(supported) + ")");
    };

    static const std::set<std::string> known{
        "sample_size", "in_channels", "out_channels", "center_input_sample", "flip_sin_to_cos", "freq_shift",
        "down_block_types", "mid_block_type", "up_block_types", "only_cross_attention", "block_out_channels",
        "layers_per_block", "downsample_padding", "mid_block_scale_factor", "dropout", "act_fn", "norm_num_groups",
        "norm_eps", "cross_attention_dim", "transformer_layers_per_block", "reverse_transformer_layers_per_block",
        "encoder_hid_dim", "encoder_hid_dim_type", "attention_head_dim", "num_attention_heads",
        "dual_cross_attention", "use_linear_projection", "class_embed_type", "addition_embed_type",
        "addition_time_embed_dim", "num_class_embeds", "upcast_attention", "resnet_time_scale_shift",
        "resnet_skip_time_act", "resnet_out_scale_factor", "time_embedding_type", "time_embedding_dim",
        "time_embedding_act_fn", "timestep_post_act", "time_cond_proj_dim", "conv_in_kernel", "conv_out_kernel",
        "projection_class_embeddings_input_dim", "attention_type", "class_embeddings_concat",
        "mid_block_only_cross_attention", "cross_attention_norm", "addition_embed_type_num_heads"};
    for (auto it = j.begin(); it != j.end(); ++it)
      if (!it.key().empty() && it.key()[0] != '_' && !known.count(it.key()))
        throw ConfigError(origin + ": unknown config key '" + it.key() + "' for UNet2DConditionModel");

    require_default("dual_cross_attention", false);
    require_default("class_embed_type", nullptr);
    require_default("time_embedding_type", "positional");
    require_default("time_embedding_act_fn", nullptr);
    require_default("timestep_post_act", nullptr);
    require_default("time_cond_proj_dim", nullptr);
    require_default("attention_type", "default");
    require_default("class_embeddings_concat", false);
    require_default("cross_attention_norm", nullptr);
    if (!is_null("num_attention_heads"))
      throw fail("num_attention_heads", "must be null in diffusers 0.25.1 (the head count is attention_head_dim)");
    const std::string act = get_str("act_fn", "silu");
    if (act != "silu" && act != "swish") throw fail("act_fn", "= \"" + act + "\" is not supported (supported: \"silu\")");

    c.in_channels = static_cast<int>(get_int(j, "in_channels", 4, origin));
    c.out_channels = static_cast<int>(get_int(j, "out_channels", 4, origin));
    c.center_input_sample = get_bool("center_input_sample", false);
    c.flip_sin_to_cos = get_bool("flip_sin_to_cos", true);
    c.freq_shift = config::get_double(j, "freq_shift", 0, origin);
    c.down_block_types = str_list("down_block_types", c.down_block_types);
    c.up_block_types = str_list("up_block_types", c.up_block_types);
    c.mid_block_type = j.contains("mid_block_type") && j["mid_block_type"].is_null() ? std::string()
                                                                                        : get_str("mid_block_type", c.mid_block_type);
    std::vector<long long> boc;
    for (int v : c.block_out_channels) boc.push_back(v);
    c.block_out_channels.clear();
    for (long long v : config::get_int_list(j, "block_out_channels", boc, origin)) c.block_out_channels.push_back(static_cast<int>(v));
    const std::size_t n = c.block_out_channels.size();
    if (c.down_block_types.size() != n || c.up_block_types.size() != n)
      throw fail("down_block_types", "and up_block_types must both have one entry per block_out_channels entry (" +
                                         std::to_string(n) + ")");
    for (const auto& t : c.down_block_types)
      if (t != "DownBlock2D" && t != "CrossAttnDownBlock2D")
        throw fail("down_block_types", "entry \"" + t + "\" is not supported (supported: DownBlock2D, CrossAttnDownBlock2D)");
    for (const auto& t : c.up_block_types)
      if (t != "UpBlock2D" && t != "CrossAttnUpBlock2D")
        throw fail("up_block_types", "entry \"" + t + "\" is not supported (supported: UpBlock2D, CrossAttnUpBlock2D)");
    if (!c.mid_block_type.empty() && c.mid_block_type != "UNetMidBlock2DCrossAttn")
      throw fail("mid_block_type", "\"" + c.mid_block_type + "\" is not supported (supported: UNetMidBlock2DCrossAttn, null)");

    if (!is_null("only_cross_attention") && j["only_cross_attention"].is_array()) {
      if (j["only_cross_attention"].size() != n) throw fail("only_cross_attention", "must have one entry per down block");
      for (const auto& v : j["only_cross_attention"]) {
        if (!v.is_boolean()) throw fail("only_cross_attention", "entries must be true or false");
        c.only_cross_attention.push_back(v.get<bool>());
      }
    } else {
      c.only_cross_attention.assign(n, get_bool("only_cross_attention", false));
    }
    c.layers_per_block = per_block("layers_per_block", 2, n);
    c.downsample_padding = static_cast<int>(get_int(j, "downsample_padding", 1, origin));
    c.mid_block_scale_factor = config::get_double(j, "mid_block_scale_factor", 1.0, origin);
    c.norm_num_groups = j.contains("norm_num_groups") && j["norm_num_groups"].is_null()
                            ? 0 : static_cast<int>(get_int(j, "norm_num_groups", 32, origin));
    c.norm_eps = config::get_double(j, "norm_eps", 1e-5, origin);
    c.cross_attention_dim = per_block("cross_attention_dim", 1280, n);
    c.transformer_layers_per_block = per_block("transformer_layers_per_block", 1, n);
    if (!is_null("reverse_transformer_layers_per_block")) {
      c.reverse_transformer_layers_per_block = per_block("reverse_transformer_layers_per_block", 1, n);
    } else {
      c.reverse_transformer_layers_per_block.assign(c.transformer_layers_per_block.rbegin(),
                                                    c.transformer_layers_per_block.rend());
    }
    c.encoder_hid_dim = static_cast<int>(get_int(j, "encoder_hid_dim", 0, origin));
    c.encoder_hid_dim_type = get_str("encoder_hid_dim_type", c.encoder_hid_dim > 0 ? "text_proj" : "");
    if (!c.encoder_hid_dim_type.empty() && c.encoder_hid_dim_type != "text_proj")
      throw fail("encoder_hid_dim_type", "\"" + c.encoder_hid_dim_type + "\" is not supported (supported: \"text_proj\", null)");
    if (c.encoder_hid_dim_type == "text_proj" && c.encoder_hid_dim <= 0)
      throw fail("encoder_hid_dim", "must be set when encoder_hid_dim_type is \"text_proj\"");
    c.num_attention_heads = per_block("attention_head_dim", 8, n);
    c.use_linear_projection = get_bool("use_linear_projection", false);
    c.num_class_embeds = static_cast<int>(get_int(j, "num_class_embeds", 0, origin));
    c.upcast_attention = get_bool("upcast_attention", false);
    c.resnet_time_scale_shift = parse_time_embedding_norm(get_str("resnet_time_scale_shift", "default"), origin);
    c.time_embedding_dim = static_cast<int>(get_int(j, "time_embedding_dim", 0, origin));
    c.conv_in_kernel = static_cast<int>(get_int(j, "conv_in_kernel", 3, origin));
    c.conv_out_kernel = static_cast<int>(get_int(j, "conv_out_kernel", 3, origin));
    c.projection_class_embeddings_input_dim =
        static_cast<int>(get_int(j, "projection_class_embeddings_input_dim", 0, origin));
    c.addition_embed_type = get_str("addition_embed_type", "");
    c.addition_time_embed_dim = static_cast<int>(get_int(j, "addition_time_embed_dim", 0, origin));
    c.addition_embed_type_num_heads = static_cast<int>(get_int(j, "addition_embed_type_num_heads", 64, origin));
    c.validate(origin);
    return c;
  }

  void validate(const std::string& origin = "config") const {
    auto fail = [&](const std::string& key, const std::string& why) {
      throw ConfigError(origin + ": config key '" + key + "' " + why);
    };
    // Upper bounds keep derived sizes (4 * channels, sums of widths) far from int overflow.
    constexpr int kMaxWidth = 1 << 16;
    auto within = [&](const std::string& key, long long v, long long lo, long long hi) {
      if (v < lo || v > hi)
        fail(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
    };
    if (block_out_channels.empty()) fail("block_out_channels", "must not be empty");
    if (levels() > 16) fail("block_out_channels", "has too many levels (" + std::to_string(levels()) + " > 16)");
    // A config built in code must have one entry per level in every per-block list.
    const std::size_t n = block_out_channels.size();
    auto per_level = [&](const std::string& key, std::size_t size) {
      if (size != n)
        fail(key, "has " + std::to_string(size) + " entries but block_out_channels has " + std::to_string(n));
    };
    per_level("down_block_types", down_block_types.size());
    per_level("up_block_types", up_block_types.size());
    per_level("only_cross_attention", only_cross_attention.size());
    per_level("layers_per_block", layers_per_block.size());
    per_level("cross_attention_dim", cross_attention_dim.size());
    per_level("transformer_layers_per_block", transformer_layers_per_block.size());
    per_level("reverse_transformer_layers_per_block", reverse_transformer_layers_per_block.size());
    per_level("attention_head_dim", num_attention_heads.size());
    within("in_channels", in_channels, 1, kMaxWidth);
    within("out_channels", out_channels, 1, kMaxWidth);
    within("norm_num_groups", norm_num_groups, 0, kMaxWidth);
    within("time_embedding_dim", time_embedding_dim, 0, kMaxWidth);
    within("encoder_hid_dim", encoder_hid_dim, 0, kMaxWidth);
    within("num_class_embeds", num_class_embeds, 0, 1 << 24);
    within("projection_class_embeddings_input_dim", projection_class_embeddings_input_dim, 0, 1 << 20);
    within("addition_time_embed_dim", addition_time_embed_dim, 0, kMaxWidth);
    // diffusers pads asymmetrically (F.pad(0, 1, 0, 1)) before the conv when this is 0; only
    // the default is implemented, so anything else is refused rather than computed differently.
    if (downsample_padding != 1)
      fail("downsample_padding", "= " + std::to_string(downsample_padding) + " is not supported (supported: 1)");
    if (!(norm_eps > 0)) fail("norm_eps", "must be positive");
    for (int c : block_out_channels) {
      within("block_out_channels", c, 1, kMaxWidth);
      if (norm_num_groups > 0 && c % norm_num_groups != 0)
        fail("norm_num_groups", std::to_string(norm_num_groups) + " must divide every block_out_channels entry");
    }
    if (norm_num_groups == 0 && resnet_time_scale_shift == TimeEmbeddingNorm::AdaGroup)
      fail("norm_num_groups", "must be set for ada_group resnets");
    if (norm_num_groups == 0 && uses_cross_attention())
      fail("norm_num_groups", "must be set: resnets and transformers need GroupNorm groups");
    for (std::size_t i = 0; i < block_out_channels.size(); ++i) {
      within("layers_per_block", layers_per_block[i], 1, 1024);
      within("transformer_layers_per_block", transformer_layers_per_block[i], 1, 1024);
      within("reverse_transformer_layers_per_block", reverse_transformer_layers_per_block[i], 1, 1024);
      within("cross_attention_dim", cross_attention_dim[i], 1, kMaxWidth);
      if (num_attention_heads[i] <= 0 || block_out_channels[i] % num_attention_heads[i] != 0)
        fail("attention_head_dim", "(the number of heads) " + std::to_string(num_attention_heads[i]) +
                                       " must divide block_out_channels " + std::to_string(block_out_channels[i]));
    }
    if (conv_in_kernel <= 0 || conv_in_kernel > 63 || conv_in_kernel % 2 == 0)
      fail("conv_in_kernel", "must be odd, in [1, 63]");
    if (conv_out_kernel <= 0 || conv_out_kernel > 63 || conv_out_kernel % 2 == 0)
      fail("conv_out_kernel", "must be odd, in [1, 63]");
    if (num_class_embeds < 0) fail("num_class_embeds", "must be >= 0");
    const auto& a = addition_embed_type;
    if (!a.empty() && a != "text" && a != "text_time" && a != "image" && a != "image_hint")
      fail("addition_embed_type", "\"" + a + "\" is not supported (supported: \"text\", \"text_time\", \"image\", "
                                        "\"image_hint\", null)");
    if ((a == "image" || a == "image_hint") && encoder_hid_dim <= 0)
      fail("encoder_hid_dim", "must be set for addition_embed_type \"" + a + "\" (it is the image_embeds width)");
    if (a == "text_time" && (addition_time_embed_dim <= 0 || projection_class_embeddings_input_dim <= 0))
      fail("addition_time_embed_dim", "and projection_class_embeddings_input_dim must be set for \"text_time\"");
    if (a == "text" && (addition_embed_type_num_heads <= 0 || style_dim() % addition_embed_type_num_heads != 0))
      fail("addition_embed_type_num_heads", std::to_string(addition_embed_type_num_heads) +
                                                " must divide the style width " + std::to_string(style_dim()));
    if (encoder_hid_dim > 0)
      for (int d : cross_attention_dim)
        if (d != cross_attention_dim[0]) fail("cross_attention_dim", "must be a single value with encoder_hid_dim");
  }
};

}  // namespace diffblocks
