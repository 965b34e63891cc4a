#pragma once
// The Origin U-Net: Grad-TTS's score estimator GradLogPEstimator2d, extended with emotion and
// prosody channels (see DESIGN.md). A mel batch (B, n_feats, T) is treated as an image
// (B, C, H = n_feats, W = T); the conditioning is concatenated as channels:
//   mu, x, [spk_mlp(spk) repeated over T], [emo_mlp(emo) repeated over T], [psd_i repeated over n_feats].
//
// The levels are built from the block types given as template parameters, so another attention
// or resnet block can be snapped in without touching this file:
//   Attention<T, D>(int dim)                              forward(x) -> same shape, or
//                                                         forward(x, mask (B, 1, 1, W)) to see the padding
//   Resnet<T, D>(int dim, int dim_out, int time_emb_dim)  forward(x, mask, t_emb) -> (B, dim_out, H, W)
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "diffblocks/blocks/block.hpp"
#include "diffblocks/blocks/conv2d.hpp"
#include "diffblocks/core/held_device.hpp"
#include "diffblocks/blocks/downsample.hpp"
#include "diffblocks/blocks/linear_attention.hpp"
#include "diffblocks/blocks/mish_mlp.hpp"
#include "diffblocks/blocks/residual.hpp"
#include "diffblocks/blocks/resnet_block.hpp"
#include "diffblocks/blocks/rezero.hpp"
#include "diffblocks/blocks/sinusoidal_pos_emb.hpp"
#include "diffblocks/blocks/upsample.hpp"
#include "diffblocks/core/params.hpp"
#include "diffblocks/unets/origin_config.hpp"
#include "diffblocks/unets/origin_ops.hpp"

namespace diffblocks {

namespace detail {
/// True when attention block A has forward(x, mask); LinearAttention (Grad-TTS) has not, so the
/// original never masks inside attention, and a mask-aware block is given the mask.
template <class A, class X, class = void>
struct takes_mask : std::false_type {};
template <class A, class X>
struct takes_mask<A, X, std::void_t<decltype(std::declval<const A&>().forward(std::declval<const X&>(),
                                                                                std::declval<const X&>()))>>
    : std::true_type {};
}  // namespace detail

/// Speaker / emotion / prosody inputs of the Origin U-Net. Speakers and emotions are given
/// either as embedded vectors or as integer ids (the latter needs the table in the checkpoint).
template <class T = float, class D = Cpu>
struct OriginConditioning {
  std::optional<Tensor<T, 2, D>> spk;  // (B, spk_emb_dim)
  std::vector<std::int64_t> spk_id;    // (B,)
  std::optional<Tensor<T, 2, D>> emo;  // (B, emo_emb_dim)
  std::vector<std::int64_t> emo_id;    // (B,)
  std::optional<Tensor<T, 3, D>> psd;  // (B, n_psd, T)
};

template <class T = float, class D = Cpu, template <class, class> class Attention = LinearAttention,
          template <class, class> class Resnet = ResnetBlock>
class GradLogPEstimator2d : public DeviceHolder<D> {
 public:
  using scalar_type = T;
  using device_type = D;
  using ResnetT = Resnet<T, D>;
  using AttentionT = Residual<Rezero<Attention<T, D>>>;
  using Conditioning = OriginConditioning<T, D>;
  static constexpr bool attention_takes_mask = detail::takes_mask<Attention<T, D>, Tensor<T, 4, D>>::value;

  struct DownLevel {
    ResnetT resnet1, resnet2;
    AttentionT attn;
    std::optional<Downsample<T, D>> down;  // empty on the last level (Identity)
  };
  struct UpLevel {
    ResnetT resnet1, resnet2;
    AttentionT attn;
    Upsample<T, D> up;
  };

  std::optional<MishMLP<T, D>> spk_mlp, emo_mlp;
  MishMLP<T, D> mlp;
  SinusoidalPosEmb<T, D> time_pos_emb;
  std::vector<DownLevel> downs;
  std::vector<UpLevel> ups;
  std::optional<ResnetT> mid_block1, mid_block2;
  std::optional<AttentionT> mid_attn;
  Block<T, D> final_block;
  Conv2d<T, D> final_conv;
  // Id -> vector tables (`spk_emb.weight`, `emo_emb.weight`); empty unless the checkpoint has them.
  Tensor<T, 2, D> spk_emb, emo_emb;

  explicit GradLogPEstimator2d(const OriginConfig& cfg)
      : mlp(cfg.dim, 4 * cfg.dim, cfg.dim), time_pos_emb(cfg.dim), final_block(cfg.dim, cfg.dim),
        final_conv(cfg.dim, 1, 1), cfg_(cfg) {
    cfg.validate();
    if (cfg.has_spk()) spk_mlp.emplace(cfg.spk_emb_dim, 4 * cfg.spk_emb_dim, cfg.n_feats);
    if (cfg.has_emo()) emo_mlp.emplace(cfg.emo_emb_dim, 4 * cfg.emo_emb_dim, cfg.n_feats);
    std::vector<int> dims{cfg.in_channels()};
    for (int m : cfg.dim_mults) dims.push_back(cfg.dim * m);
    const int L = cfg.levels();
    for (int i = 0; i < L; ++i) {
      const int din = dims[i], dout = dims[i + 1];
      downs.push_back(DownLevel{ResnetT(din, dout, cfg.dim), ResnetT(dout, dout, cfg.dim), AttentionT(dout),
                                std::nullopt});
      if (i + 1 < L) downs.back().down.emplace(dout);
    }
    for (int i = L - 1; i >= 1; --i) {  // reversed(in_out[1:])
      const int din = dims[i], dout = dims[i + 1];
      ups.push_back(UpLevel{ResnetT(2 * dout, din, cfg.dim), ResnetT(din, din, cfg.dim), AttentionT(din),
                            Upsample<T, D>(din)});
    }
    const int mid = dims.back();
    mid_block1.emplace(mid, mid, cfg.dim);
    mid_attn.emplace(mid);
    mid_block2.emplace(mid, mid, cfg.dim);
    spk_emb = ops::zeros<T, 2>(D{}, {0, 0});
    emo_emb = ops::zeros<T, 2>(D{}, {0, 0});
  }

  const OriginConfig& config() const { return cfg_; }

  /// Makes every block's prepared weights now, for this model's device (else at the first
  /// forward); db::invalidate_prepared(model) drops them after an edit of the weights.
  void prepare() {
    const DeviceScope<D> on(this->device());
    ::diffblocks::prepare(*this);
  }

  /// Every parameter under its PyTorch state_dict name, in registration order (spk_emb /
  /// emo_emb tables are not estimator parameters; see load()).
  template <class V>
  void visit(V&& v, const std::string& p = "") {
    if (spk_mlp) spk_mlp->visit(v, p + "spk_mlp.");
    if (emo_mlp) emo_mlp->visit(v, p + "emo_mlp.");
    mlp.visit(v, p + "mlp.");
    for (std::size_t i = 0; i < downs.size(); ++i) {
      const std::string q = p + "downs." + std::to_string(i) + ".";
      downs[i].resnet1.visit(v, q + "0.");
      downs[i].resnet2.visit(v, q + "1.");
      downs[i].attn.visit(v, q + "2.");
      if (downs[i].down) downs[i].down->visit(v, q + "3.");
    }
    for (std::size_t i = 0; i < ups.size(); ++i) {
      const std::string q = p + "ups." + std::to_string(i) + ".";
      ups[i].resnet1.visit(v, q + "0.");
      ups[i].resnet2.visit(v, q + "1.");
      ups[i].attn.visit(v, q + "2.");
      ups[i].up.visit(v, q + "3.");
    }
    mid_block1->visit(v, p + "mid_block1.");
    mid_attn->visit(v, p + "mid_attn.");
    mid_block2->visit(v, p + "mid_block2.");
    final_block.visit(v, p + "final_block.");
    final_conv.visit(v, p + "final_conv.");
  }

  /// Strict load: every parameter must be present with its shape, nothing else may be there
  /// except the optional `spk_emb.weight` / `emo_emb.weight` id tables.
  void load(StateDict& sd) {
    load_table(sd, "spk_emb.weight", cfg_.has_spk(), cfg_.n_spks, cfg_.spk_emb_dim, spk_emb);
    load_table(sd, "emo_emb.weight", cfg_.has_emo(), cfg_.n_emos, cfg_.emo_emb_dim, emo_emb);
    load_state_dict<D>(*this, sd, true);
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 3, D>, Tensor<T, 3, D>, Tensor<T, 3, D>, Tensor<compute_t<T>, 1, D>,
                           Conditioning)
  /// x, mu (B, n_feats, T); mask (B, 1, T) with 1 = valid; t (B,) diffusion time in (0, 1),
  /// float32 for a half model too (compute_t<T>: the time embedding is computed in float32).
  /// Returns the score estimate (B, n_feats, T), exactly 0 on padded frames.
  Tensor<T, 3, D> forward(const Tensor<T, 3, D>& x, const Tensor<T, 3, D>& mask, const Tensor<T, 3, D>& mu,
                          const Tensor<compute_t<T>, 1, D>& t, const Conditioning& cond = {}) const {
    const DeviceScope<D> on(this->device());
    check_inputs(x, mask, mu, t, cond);
    const std::size_t B = x.shape(0), F = x.shape(1), W = x.shape(2);

    // Conditioning planes, in the channel order mu, x, spk, emo, psd.
    Tensor<T, 4, D> h = ops::empty<T, 4>(D{}, {B, std::size_t(cfg_.in_channels()), F, W});
    std::size_t c = 0;
    ops::set_channel_(D{}, h, c++, mu);
    ops::set_channel_(D{}, h, c++, x);
    if (spk_mlp) ops::set_channel_repeat_time_(D{}, h, c++, spk_mlp->forward(embedding(cond.spk, cond.spk_id, spk_emb)));
    if (emo_mlp) ops::set_channel_repeat_time_(D{}, h, c++, emo_mlp->forward(embedding(cond.emo, cond.emo_id, emo_emb)));
    for (int i = 0; i < cfg_.n_psd; ++i) ops::set_channel_repeat_freq_(D{}, h, c++, *cond.psd, std::size_t(i));

    const Tensor<T, 2, D> temb = mlp.forward(time_pos_emb.forward(t, cfg_.pe_scale));
    const Tensor<T, 4, D> mask4 = ops::reshape<T, 4>(D{}, mask, {B, 1, 1, W});

    std::vector<Tensor<T, 4, D>> hiddens, masks{mask4};
    // h is handed on (std::move) wherever it is replaced: a Resnet that takes its input by value
    // masks it in place instead of holding a masked copy next to it.
    for (const auto& level : downs) {
      const Tensor<T, 4, D>& m = masks.back();
      h = level.resnet1.forward(std::move(h), m, temb);
      h = level.resnet2.forward(std::move(h), m, temb);
      h = attend(level.attn, h, m);
      // hiddens[0] is never used, as in the original: not kept (a full-resolution tensor held
      // through the whole forward).
      if (&level != &downs.front()) hiddens.push_back(h);
      ops::mul_mask_(D{}, h, m);  // down(x * m); the last level's Identity is masked too
      if (level.down) h = level.down->forward(h);
      masks.push_back(ops::subsample_time(D{}, m));
    }
    masks.pop_back();
    h = mid_block1->forward(std::move(h), masks.back(), temb);
    h = attend(*mid_attn, h, masks.back());
    h = mid_block2->forward(std::move(h), masks.back(), temb);
    for (const auto& level : ups) {
      const Tensor<T, 4, D> m = masks.back();
      masks.pop_back();
      h = ops::concat_channels(D{}, h, hiddens.back());
      hiddens.pop_back();
      h = level.resnet1.forward(std::move(h), m, temb);
      h = level.resnet2.forward(std::move(h), m, temb);
      h = attend(level.attn, h, m);
      ops::mul_mask_(D{}, h, m);
      h = level.up.forward(h);
    }
    h = final_block.forward(std::move(h), mask4);
    ops::mul_mask_(D{}, h, mask4);
    h = final_conv.forward(h);
    ops::mul_mask_(D{}, h, mask4);
    return ops::reshape<T, 3>(D{}, h, {B, F, W});
  }

 private:
  static Tensor<T, 4, D> attend(const AttentionT& attn, const Tensor<T, 4, D>& h, const Tensor<T, 4, D>& mask) {
    if constexpr (attention_takes_mask) return attn.forward(h, mask);
    else return attn.forward(h);
  }

  void load_table(StateDict& sd, const std::string& key, bool wanted, int rows, int cols, Tensor<T, 2, D>& table) {
    if (!sd.contains(key)) return;
    if (!wanted)
      throw LoadError(sd.file().origin() + ": unexpected key '" + key + "': the config has no " +
                      (key[0] == 's' ? "speaker (n_spks <= 1)" : "emotion (n_emos <= 1)") + " conditioning");
    // Shape first: n_spks = 2^24 next to a [1, 1] table must not allocate 2^24 rows to say so.
    const TensorInfo* t = sd.find(key);
    if (t->shape != Shape{rows, cols})
      throw LoadError(sd.file().origin() + ": key '" + key + "' has shape " + shape_str(t->shape) +
                      " but the model expects " + shape_str(Shape{rows, cols}));
    table = ops::zeros<T, 2>(D{}, {std::size_t(rows), std::size_t(cols)});
    sd.template load_into<D>(key, table);
  }

  /// The (B, emb_dim) vector for spk/emo: given directly, or looked up by id.
  Tensor<T, 2, D> embedding(const std::optional<Tensor<T, 2, D>>& vec, const std::vector<std::int64_t>& ids,
                            const Tensor<T, 2, D>& table) const {
    if (vec) return *vec;
    return ops::gather_rows(D{}, table, ids);
  }

  void check_inputs(const Tensor<T, 3, D>& x, const Tensor<T, 3, D>& mask, const Tensor<T, 3, D>& mu,
                    const Tensor<compute_t<T>, 1, D>& t, const Conditioning& cond) const {
    const std::string who = "GradLogPEstimator2d";
    const std::size_t B = x.shape(0), F = x.shape(1), W = x.shape(2);
    auto bad = [&](const std::string& name, const Shape& got, const std::string& want) {
      throw InputError(who + ": input '" + name + "' has shape " + shape_str(got) + ", expected " + want);
    };
    const std::string bft = "[" + std::to_string(B) + ", " + std::to_string(cfg_.n_feats) + ", " + std::to_string(W) + "]";
    if (F != std::size_t(cfg_.n_feats) || B == 0 || W == 0) bad("x", tensor_shape(x), "[B, n_feats=" + std::to_string(cfg_.n_feats) + ", T]");
    if (tensor_shape(mu) != tensor_shape(x)) bad("mu", tensor_shape(mu), bft + " (like x)");
    if (mask.shape(0) != B || mask.shape(1) != 1 || mask.shape(2) != W)
      bad("mask", tensor_shape(mask), "[" + std::to_string(B) + ", 1, " + std::to_string(W) + "]");
    if (t.shape(0) != B) bad("t", tensor_shape(t), "[" + std::to_string(B) + "]");
    if (W % std::size_t(cfg_.length_multiple()) != 0)
      throw InputError(who + ": T = " + std::to_string(W) + " frames is not divisible by " +
                       std::to_string(cfg_.length_multiple()) + " (2^(levels-1)); pad it with fix_len_compatibility()");
    check_finite(x, "x");
    check_finite(mu, "mu");
    check_finite(mask, "mask");
    check_finite(t, "t");
    check_vector_input(cond.spk, cond.spk_id, cfg_.has_spk(), cfg_.n_spks, cfg_.spk_emb_dim, spk_emb, "spk", B);
    check_vector_input(cond.emo, cond.emo_id, cfg_.has_emo(), cfg_.n_emos, cfg_.emo_emb_dim, emo_emb, "emo", B);
    if (cfg_.n_psd > 0) {
      if (!cond.psd) throw InputError(who + ": missing input 'psd' (the model has n_psd = " + std::to_string(cfg_.n_psd) + ")");
      if (cond.psd->shape(0) != B || cond.psd->shape(1) != std::size_t(cfg_.n_psd) || cond.psd->shape(2) != W)
        bad("psd", tensor_shape(*cond.psd),
            "[" + std::to_string(B) + ", " + std::to_string(cfg_.n_psd) + ", " + std::to_string(W) + "]");
      check_finite(*cond.psd, "psd");
    } else if (cond.psd) {
      throw InputError(who + ": input 'psd' given but the model has no prosody channels (n_psd = 0)");
    }
  }

  void check_vector_input(const std::optional<Tensor<T, 2, D>>& vec, const std::vector<std::int64_t>& ids, bool wanted,
                          int rows, int dim, const Tensor<T, 2, D>& table, const std::string& name, std::size_t B) const {
    const std::string who = "GradLogPEstimator2d";
    const bool given = vec.has_value() || !ids.empty();
    if (!wanted) {
      if (given)  // named as the caller gave it: the vector, or the ids
        throw InputError(who + ": input '" + (vec ? name : name + "_id") + "' given but the model has no " + name +
                         " conditioning (n_" + name + "s <= 1)");
      return;
    }
    if (vec && !ids.empty()) throw InputError(who + ": give either '" + name + "' or '" + name + "_id', not both");
    if (!given) throw InputError(who + ": missing input '" + name + "' or '" + name + "_id'");
    if (vec) {
      if (vec->shape(0) != B || vec->shape(1) != std::size_t(dim))
        throw InputError(who + ": input '" + name + "' has shape " + shape_str(tensor_shape(*vec)) + ", expected [" +
                         std::to_string(B) + ", " + std::to_string(dim) + "]");
      check_finite(*vec, name);
      return;
    }
    if (ids.size() != B)
      throw InputError(who + ": input '" + name + "_id' has " + std::to_string(ids.size()) + " entries, expected " +
                       std::to_string(B));
    if (table.size() == 0)
      throw InputError(who + ": input '" + name + "_id' needs the table '" + name +
                       "_emb.weight' in the checkpoint, which has none; pass '" + name + "' vectors instead");
    for (auto id : ids)
      if (id < 0 || id >= rows)
        throw InputError(who + ": input '" + name + "_id' holds " + std::to_string(id) + ", outside [0, " +
                         std::to_string(rows) + ")");
  }

  template <class S, std::size_t N>
  static void check_finite(const Tensor<S, N, D>& v, const std::string& name) {
    const std::ptrdiff_t i = ops::find_non_finite(D{}, v);
    if (i >= 0)
      throw InputError("GradLogPEstimator2d: input '" + name + "' holds NaN or Inf at flat index " + std::to_string(i) +
                       " (shape " + shape_str(tensor_shape(v)) + ")");
  }

  OriginConfig cfg_;
};

/// Smallest multiple of 2^num_downsamplings_in_unet >= length (Grad-TTS fix_len_compatibility).
inline std::size_t fix_len_compatibility(std::size_t length, int num_downsamplings_in_unet = 2) {
  const std::size_t m = std::size_t(1) << num_downsamplings_in_unet;
  return (length + m - 1) / m * m;
}

/// Zero-pads (or crops) a (B, C, T) tensor along time, e.g. x, mu, mask or psd to
/// fix_len_compatibility(T, levels - 1) frames before a forward pass; padded mask frames are 0,
/// so padded output frames are 0 too. Crop the result back with the same function.
template <class T = float, class D = Cpu>
Tensor<T, 3, D> pad_frames(const Tensor<T, 3, D>& x, std::size_t frames) {
  return ops::resize_time(D{}, x, frames);
}

}  // namespace diffblocks
