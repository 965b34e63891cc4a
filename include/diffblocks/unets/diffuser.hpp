#pragma once
// The Diffuser U-Net: diffusers 0.25.1 UNet2DConditionModel for the block types DownBlock2D,
// CrossAttnDownBlock2D, UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D and UpBlock2D, with
// "default" or "ada_group" resnets, a class embedding, every addition embedding except
// "text_image", and encoder_hid_proj. TTS reading: sample = (mel, speaker plane) channels,
// class label = emotion, added condition = prosody, encoder_hidden_states = style sequence.
#include <optional>
#include <string>
#include <vector>

#include "diffblocks/blocks/attention.hpp"
#include "diffblocks/blocks/conv2d.hpp"
#include "diffblocks/blocks/downsample2d.hpp"
#include "diffblocks/blocks/embedding.hpp"
#include "diffblocks/blocks/group_norm.hpp"
#include "diffblocks/blocks/image_hint_time_embedding.hpp"
#include "diffblocks/blocks/image_time_embedding.hpp"
#include "diffblocks/blocks/linear.hpp"
#include "diffblocks/blocks/resnet_block2d.hpp"
#include "diffblocks/blocks/text_time_embedding.hpp"
#include "diffblocks/blocks/timestep_embedding.hpp"
#include "diffblocks/blocks/timesteps.hpp"
#include "diffblocks/blocks/transformer2d.hpp"
#include "diffblocks/blocks/upsample2d.hpp"
#include "diffblocks/core/held_device.hpp"
#include "diffblocks/core/params.hpp"
#include "diffblocks/unets/diffuser_config.hpp"

namespace diffblocks {

/// Forward inputs, named like diffusers' forward arguments and added_cond_kwargs.
template <class T = float, class D = Cpu>
struct DiffuserInputs {
  Tensor<T, 4, D> sample;                              // (B, C, H, W)
  Tensor<compute_t<T>, 1, D> timestep;                 // (B,) or (1,) broadcast to B; float32 for half models
  std::optional<Tensor<T, 3, D>> encoder_hidden_states;  // (B, S, style_dim)
  std::optional<Tensor<T, 2, D>> encoder_attention_mask; // (B, S), 1 = keep
  std::vector<std::int64_t> class_labels;              // (B,)
  std::optional<Tensor<T, 2, D>> image_embeds;         // "image" / "image_hint"
  std::optional<Tensor<T, 4, D>> hint;                 // "image_hint": (B, 3, 8H, 8W)
  std::optional<Tensor<T, 2, D>> text_embeds;          // "text_time"
  std::optional<Tensor<compute_t<T>, 2, D>> time_ids;  // "text_time"; float32 for half models (sinusoids)
};

template <class T = float, class D = Cpu>
class UNet2DConditionModel : public DeviceHolder<D> {
 public:
  using scalar_type = T;
  using device_type = D;
  using Inputs = DiffuserInputs<T, D>;

  /// DownBlock2D / CrossAttnDownBlock2D / UpBlock2D / CrossAttnUpBlock2D / UNetMidBlock2DCrossAttn:
  /// resnets, optional transformers (one per resnet; the mid block's sit between its resnets),
  /// and an optional down/up sampler.
  struct UnetBlock {
    std::vector<ResnetBlock2D<T, D>> resnets;
    std::vector<Transformer2DModel<T, D>> attentions;
    std::optional<Downsample2D<T, D>> downsampler;
    std::optional<Upsample2D<T, D>> upsampler;

    template <class V>
    void visit(V&& v, const std::string& p) {
      for (std::size_t i = 0; i < attentions.size(); ++i) attentions[i].visit(v, p + "attentions." + std::to_string(i) + ".");
      for (std::size_t i = 0; i < resnets.size(); ++i) resnets[i].visit(v, p + "resnets." + std::to_string(i) + ".");
      if (downsampler) downsampler->visit(v, p + "downsamplers.0.");
      if (upsampler) upsampler->visit(v, p + "upsamplers.0.");
    }
  };

  Conv2d<T, D> conv_in;
  Timesteps<T, D> time_proj;
  TimestepEmbedding<T, D> time_embedding;
  std::optional<Linear<T, D>> encoder_hid_proj;
  std::optional<Embedding<T, D>> class_embedding;
  std::optional<ImageTimeEmbedding<T, D>> add_embedding_image;
  std::optional<ImageHintTimeEmbedding<T, D>> add_embedding_image_hint;
  std::optional<TextTimeEmbedding<T, D>> add_embedding_text;
  std::optional<Timesteps<T, D>> add_time_proj;
  std::optional<TimestepEmbedding<T, D>> add_embedding_text_time;
  std::vector<UnetBlock> down_blocks, up_blocks;
  std::optional<UnetBlock> mid_block;
  std::optional<GroupNorm<T, D>> conv_norm_out;
  Conv2d<T, D> conv_out;

  explicit UNet2DConditionModel(const DiffuserConfig& cfg)
      : conv_in(cfg.in_channels, cfg.block_out_channels.at(0), cfg.conv_in_kernel, 1, (cfg.conv_in_kernel - 1) / 2),
        time_proj(cfg.block_out_channels.at(0), cfg.flip_sin_to_cos, cfg.freq_shift),
        time_embedding(cfg.block_out_channels.at(0), cfg.time_embed_dim()),
        conv_out(cfg.block_out_channels.at(0), cfg.out_channels, cfg.conv_out_kernel, 1, (cfg.conv_out_kernel - 1) / 2),
        cfg_(cfg) {
    cfg.validate();
    const int temb = cfg.time_embed_dim(), G = cfg.norm_num_groups, L = cfg.levels();
    const double eps = cfg.norm_eps;
    if (cfg.encoder_hid_dim > 0) encoder_hid_proj.emplace(cfg.encoder_hid_dim, cfg.cross_attention_dim[0]);
    if (cfg.num_class_embeds > 0) class_embedding.emplace(cfg.num_class_embeds, temb);
    const std::string& add = cfg.addition_embed_type;
    if (add == "image") add_embedding_image.emplace(cfg.encoder_hid_dim, temb);
    if (add == "image_hint") add_embedding_image_hint.emplace(cfg.encoder_hid_dim, temb);
    if (add == "text") add_embedding_text.emplace(cfg.style_dim(), temb, cfg.addition_embed_type_num_heads);
    if (add == "text_time") {
      add_time_proj.emplace(cfg.addition_time_embed_dim, cfg.flip_sin_to_cos, cfg.freq_shift);
      add_embedding_text_time.emplace(cfg.projection_class_embeddings_input_dim, temb);
    }
    auto transformer = [&](int channels, int heads, int layers, int cross_dim, bool only_cross) {
      return Transformer2DModel<T, D>(heads, channels / heads, channels, layers, cross_dim, G,
                                      cfg.use_linear_projection, only_cross);
    };

    int out_ch = cfg.block_out_channels[0];
    for (int i = 0; i < L; ++i) {
      const int in_ch = out_ch;
      out_ch = cfg.block_out_channels[i];
      UnetBlock b;
      for (int j = 0; j < cfg.layers_per_block[i]; ++j) {
        b.resnets.emplace_back(j == 0 ? in_ch : out_ch, out_ch, temb, G, eps, cfg.resnet_time_scale_shift);
        if (DiffuserConfig::is_cross(cfg.down_block_types[i]))
          b.attentions.push_back(transformer(out_ch, cfg.num_attention_heads[i], cfg.transformer_layers_per_block[i],
                                             cfg.cross_attention_dim[i], cfg.only_cross_attention[i]));
      }
      if (i + 1 < L) b.downsampler.emplace(out_ch, out_ch, cfg.downsample_padding);
      down_blocks.push_back(std::move(b));
    }
    const int top = cfg.block_out_channels.back();
    if (!cfg.mid_block_type.empty()) {
      UnetBlock m;
      m.resnets.emplace_back(top, top, temb, G, eps, cfg.resnet_time_scale_shift, cfg.mid_block_scale_factor);
      m.attentions.push_back(transformer(top, cfg.num_attention_heads.back(), cfg.transformer_layers_per_block.back(),
                                         cfg.cross_attention_dim.back(), false));
      m.resnets.emplace_back(top, top, temb, G, eps, cfg.resnet_time_scale_shift, cfg.mid_block_scale_factor);
      mid_block = std::move(m);
    }
    const auto rev = [](std::vector<int> v) { return std::vector<int>(v.rbegin(), v.rend()); };
    const auto r_ch = rev(cfg.block_out_channels), r_layers = rev(cfg.layers_per_block),
               r_heads = rev(cfg.num_attention_heads), r_cross = rev(cfg.cross_attention_dim);
    std::vector<bool> r_only(cfg.only_cross_attention.rbegin(), cfg.only_cross_attention.rend());
    int prev = r_ch[0];
    for (int i = 0; i < L; ++i) {
      const int out = r_ch[i], in = r_ch[std::min(i + 1, L - 1)];
      const int layers = r_layers[i] + 1;
      UnetBlock b;
      for (int j = 0; j < layers; ++j) {
        const int res_in = (j == 0 ? prev : out) + (j == layers - 1 ? in : out);
        b.resnets.emplace_back(res_in, out, temb, G, eps, cfg.resnet_time_scale_shift);
        if (DiffuserConfig::is_cross(cfg.up_block_types[i]))
          b.attentions.push_back(transformer(out, r_heads[i], cfg.reverse_transformer_layers_per_block[i], r_cross[i],
                                             r_only[i]));
      }
      if (i + 1 < L) b.upsampler.emplace(out, out);
      up_blocks.push_back(std::move(b));
      prev = out;
    }
    if (G > 0) conv_norm_out.emplace(G, cfg.block_out_channels[0], eps);
  }

  const DiffuserConfig& config() const { return cfg_; }

  /// Makes every block's prepared weights now, for this model's device (else at the first
  /// forward); db::invalidate_prepared(model) drops them after an edit of the weights.
  void prepare() {
    const DeviceScope<D> on(this->device());
    ::diffblocks::prepare(*this);
  }

  /// Every parameter under its diffusers state_dict name, in registration order.
  template <class V>
  void visit(V&& v, const std::string& p = "") {
    conv_in.visit(v, p + "conv_in.");
    time_embedding.visit(v, p + "time_embedding.");
    if (encoder_hid_proj) encoder_hid_proj->visit(v, p + "encoder_hid_proj.");
    if (class_embedding) class_embedding->visit(v, p + "class_embedding.");
    if (add_embedding_image) add_embedding_image->visit(v, p + "add_embedding.");
    if (add_embedding_image_hint) add_embedding_image_hint->visit(v, p + "add_embedding.");
    if (add_embedding_text) add_embedding_text->visit(v, p + "add_embedding.");
    if (add_embedding_text_time) add_embedding_text_time->visit(v, p + "add_embedding.");
    for (std::size_t i = 0; i < down_blocks.size(); ++i) down_blocks[i].visit(v, p + "down_blocks." + std::to_string(i) + ".");
    for (std::size_t i = 0; i < up_blocks.size(); ++i) up_blocks[i].visit(v, p + "up_blocks." + std::to_string(i) + ".");
    if (mid_block) mid_block->visit(v, p + "mid_block.");
    if (conv_norm_out) conv_norm_out->visit(v, p + "conv_norm_out.");
    conv_out.visit(v, p + "conv_out.");
  }

  void load(StateDict& sd) { load_state_dict<D>(*this, sd, true); }

  /// One forward pass; returns the model output (B, out_channels, H, W).
  Tensor<T, 4, D> forward(const Inputs& in) const {
    const DeviceScope<D> on(this->device());
    check_inputs(in);
    const std::size_t B = in.sample.shape(0);
    using C = compute_t<T>;
    const Tensor<C, 1, D> timesteps = in.timestep.shape(0) == B ? in.timestep : ops::full<C, 1>(D{}, {B}, ops::first_value(D{}, in.timestep));

    // Time, class and addition embeddings.
    Tensor<T, 2, D> emb = time_embedding.forward(time_proj.forward(timesteps));
    if (class_embedding) ops::add_(D{}, emb, class_embedding->forward(in.class_labels, "class_labels"));
    Tensor<T, 4, D> sample = in.sample;
    if (cfg_.center_input_sample) ops::affine_(D{}, sample, T(2), T(-1));
    if (add_embedding_image) ops::add_(D{}, emb, add_embedding_image->forward(*in.image_embeds));
    if (add_embedding_image_hint) {
      auto [aug, hint] = add_embedding_image_hint->forward(*in.image_embeds, *in.hint);
      ops::add_(D{}, emb, aug);
      sample = ops::concat_channels(D{}, sample, hint);
    }
    if (add_embedding_text) ops::add_(D{}, emb, add_embedding_text->forward(*in.encoder_hidden_states));
    if (add_embedding_text_time) {
      const Tensor<compute_t<T>, 1, D> ids = ops::reshape<compute_t<T>, 1>(D{}, *in.time_ids, {in.time_ids->size()});
      const Tensor<T, 2, D> te = add_time_proj->forward(ids);
      const Tensor<T, 2, D> te_flat = ops::reshape<T, 2>(D{}, te, {B, te.size() / B});
      ops::add_(D{}, emb, add_embedding_text_time->forward(ops::concat_cols(D{}, *in.text_embeds, te_flat)));
    }

    // The style sequence every cross-attention sees.
    std::optional<Tensor<T, 3, D>> enc = in.encoder_hidden_states;
    if (enc && encoder_hid_proj) enc = encoder_hid_proj->forward(*enc);
    std::optional<Tensor<T, 2, D>> mask_bias;
    if (in.encoder_attention_mask) mask_bias = ops::keep_mask_to_bias(D{}, *in.encoder_attention_mask);
    const Tensor<T, 3, D> no_enc = ops::zeros<T, 3>(D{}, {B, 0, 0});
    const Tensor<T, 3, D>& ctx = enc ? *enc : no_enc;

    // Upsample to the skip's size when a spatial size is not a multiple of 2^num_upsamplers.
    const std::size_t up_factor = std::size_t(1) << (up_blocks.size() - 1);
    const bool forward_upsample_size = sample.shape(2) % up_factor != 0 || sample.shape(3) % up_factor != 0;

    Tensor<T, 4, D> h = conv_in.forward(sample);
    std::vector<Tensor<T, 4, D>> skips{h};
    for (const auto& b : down_blocks) {
      for (std::size_t j = 0; j < b.resnets.size(); ++j) {
        h = b.resnets[j].forward(h, emb);
        if (!b.attentions.empty()) h = b.attentions[j].forward(h, ctx, mask_bias);
        skips.push_back(h);
      }
      if (b.downsampler) {
        h = b.downsampler->forward(h);
        skips.push_back(h);
      }
    }
    if (mid_block) {
      h = mid_block->resnets[0].forward(h, emb);
      h = mid_block->attentions[0].forward(h, ctx, mask_bias);
      h = mid_block->resnets[1].forward(h, emb);
    }
    for (const auto& b : up_blocks) {
      for (std::size_t j = 0; j < b.resnets.size(); ++j) {
        h = ops::concat_channels(D{}, h, skips.back());
        skips.pop_back();
        h = b.resnets[j].forward(h, emb);
        if (!b.attentions.empty()) h = b.attentions[j].forward(h, ctx, mask_bias);
      }
      if (b.upsampler) {
        const std::size_t oh = forward_upsample_size ? skips.back().shape(2) : 2 * h.shape(2);
        const std::size_t ow = forward_upsample_size ? skips.back().shape(3) : 2 * h.shape(3);
        h = b.upsampler->forward(h, oh, ow);
      }
    }
    if (conv_norm_out) {
      h = conv_norm_out->forward(h);
      ops::silu_(D{}, h);
    }
    return conv_out.forward(h);
  }

 private:
  void check_inputs(const Inputs& in) const {
    const std::string who = "UNet2DConditionModel";
    auto fail = [&](const std::string& msg) { throw InputError(who + ": " + msg); };
    auto shape_of = [](const auto& t) { return shape_str(tensor_shape(t)); };
    const std::size_t B = in.sample.shape(0);
    const bool hint = add_embedding_image_hint.has_value();
    const std::size_t want_c = std::size_t(cfg_.in_channels) - (hint ? 4 : 0);
    if (B == 0 || in.sample.shape(1) != want_c || in.sample.shape(2) == 0 || in.sample.shape(3) == 0)
      fail("input 'sample' has shape " + shape_of(in.sample) + ", expected [B, " + std::to_string(want_c) + ", H, W]" +
           (hint ? " (in_channels minus the 4 hint channels)" : ""));
    if (in.timestep.shape(0) != B && in.timestep.shape(0) != 1)
      fail("input 'timestep' has shape " + shape_of(in.timestep) + ", expected [" + std::to_string(B) + "] or a scalar");
    check_finite(in.sample, "sample");
    check_finite(in.timestep, "timestep");
    const bool needs_enc = cfg_.uses_cross_attention() || add_embedding_text.has_value();
    if (needs_enc && !in.encoder_hidden_states) fail("missing input 'encoder_hidden_states' (the style sequence)");
    if (in.encoder_hidden_states) {
      const auto& e = *in.encoder_hidden_states;
      if (e.shape(0) != B || e.shape(1) == 0 || e.shape(2) != std::size_t(cfg_.style_dim()))
        fail("input 'encoder_hidden_states' has shape " + shape_of(e) + ", expected [" + std::to_string(B) + ", S, " +
             std::to_string(cfg_.style_dim()) + "]");
      check_finite(e, "encoder_hidden_states");
      if (in.encoder_attention_mask) {
        const auto& m = *in.encoder_attention_mask;
        if (m.shape(0) != B || m.shape(1) != e.shape(1))
          fail("input 'encoder_attention_mask' has shape " + shape_of(m) + ", expected [" + std::to_string(B) + ", " +
               std::to_string(e.shape(1)) + "]");
        check_finite(m, "encoder_attention_mask");
      }
    } else if (in.encoder_attention_mask) {
      fail("input 'encoder_attention_mask' given without 'encoder_hidden_states'");
    }
    if (class_embedding) {
      if (in.class_labels.empty()) fail("missing input 'class_labels' (the config has num_class_embeds)");
      if (in.class_labels.size() != B)
        fail("input 'class_labels' has " + std::to_string(in.class_labels.size()) + " entries, expected " + std::to_string(B));
    } else if (!in.class_labels.empty()) {
      fail("input 'class_labels' given but the config has no class embedding (num_class_embeds)");
    }
    const bool want_image = add_embedding_image || add_embedding_image_hint;
    check_vec(in.image_embeds, "image_embeds", want_image, std::size_t(cfg_.encoder_hid_dim), B);
    const bool want_tt = add_embedding_text_time.has_value();
    check_vec(in.text_embeds, "text_embeds", want_tt, 0, B);
    check_vec(in.time_ids, "time_ids", want_tt, 0, B);
    if (want_tt) {
      const std::size_t width = in.text_embeds->shape(1) + in.time_ids->shape(1) * std::size_t(cfg_.addition_time_embed_dim);
      if (width != std::size_t(cfg_.projection_class_embeddings_input_dim))
        fail("'text_embeds' " + shape_of(*in.text_embeds) + " and 'time_ids' " + shape_of(*in.time_ids) + " give " +
             std::to_string(width) + " features, but projection_class_embeddings_input_dim is " +
             std::to_string(cfg_.projection_class_embeddings_input_dim));
    }
    if (hint) {
      if (!in.hint) fail("missing input 'hint' (addition_embed_type \"image_hint\")");
      const auto& hh = *in.hint;
      if (hh.shape(0) != B || hh.shape(1) != 3 || hh.shape(2) != 8 * in.sample.shape(2) || hh.shape(3) != 8 * in.sample.shape(3))
        fail("input 'hint' has shape " + shape_of(hh) + ", expected [" + std::to_string(B) + ", 3, " +
             std::to_string(8 * in.sample.shape(2)) + ", " + std::to_string(8 * in.sample.shape(3)) + "] (8x the sample)");
      check_finite(hh, "hint");
    } else if (in.hint) {
      fail("input 'hint' given but addition_embed_type is not \"image_hint\"");
    }
  }

  template <class S>
  void check_vec(const std::optional<Tensor<S, 2, D>>& v, const std::string& name, bool wanted, std::size_t width,
                 std::size_t B) const {
    if (!wanted) {
      if (v) throw InputError("UNet2DConditionModel: input '" + name + "' given but the config's addition_embed_type (\"" +
                              cfg_.addition_embed_type + "\") does not use it");
      return;
    }
    if (!v) throw InputError("UNet2DConditionModel: missing input '" + name + "' (addition_embed_type \"" +
                             cfg_.addition_embed_type + "\")");
    if (v->shape(0) != B || (width && v->shape(1) != width))
      throw InputError("UNet2DConditionModel: input '" + name + "' has shape " + shape_str(tensor_shape(*v)) +
                       ", expected [" + std::to_string(B) + ", " + (width ? std::to_string(width) : std::string("D")) + "]");
    check_finite(*v, name);
  }

  template <class S, std::size_t N>
  static void check_finite(const Tensor<S, N, D>& v, const std::string& name) {
    const std::ptrdiff_t i = ops::find_non_finite(D{}, v);
    if (i >= 0)
      throw InputError("UNet2DConditionModel: input '" + name + "' holds NaN or Inf at flat index " + std::to_string(i) +
                       " (shape " + shape_str(tensor_shape(v)) + ")");
  }

  DiffuserConfig cfg_;
};

}  // namespace diffblocks
