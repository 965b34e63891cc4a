// The Diffuser U-Net (diffusers UNet2DConditionModel) as a TTS decoder: load a diffusers model
// directory as it is, then condition one forward pass on
//   speaker  -> a plane next to the mel in `sample`            (tts::speaker_plane, make_sample)
//   emotion  -> class_labels, when the config has num_class_embeds
//   prosody  -> image_embeds = per-feature mean/std of the PSD tracks (tts::psd_vector), and
//               for "image_hint" models also the frame-level hint plane (tts::psd_hint)
//   style    -> encoder_hidden_states, a padded sequence with its keep-mask (tts::style_mask)
// and finish with a few DDIM steps from noise. Usage:
//   diffuser_tts MODEL_DIR [STEPS]
// e.g. diffuser_tts tests/fixtures/diffusers/unet_ada_image 3. The fixture models are tiny and
// untrained, so the numbers show shapes and plumbing, not audio. Exits 1 on any failure.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "diffblocks/core/random.hpp"
#include "diffblocks/sampling/diffusers_sampling.hpp"
#include "diffblocks/unets/diffuser_tts.hpp"
#include "diffblocks/unets/load.hpp"

namespace db = diffblocks;
using db::Tensor;

template <std::size_t N>
static Tensor<float, N> randn(const std::array<std::size_t, N>& shape, db::Rng& rng) {
  auto t = Tensor<float, N>::from_shape(shape);
  for (auto& v : t) v = float(rng.normal());
  return t;
}

static void print_stats(const char* what, const Tensor<float, 4>& y) {
  double s = 0, s2 = 0, mx = 0;
  for (float v : y) {
    if (!std::isfinite(v)) throw db::Error(std::string(what) + ": output holds NaN/Inf");
    s += v, s2 += double(v) * v, mx = std::max(mx, double(std::fabs(v)));
  }
  const double n = double(y.size()), mean = s / n;
  std::printf("%s: %s, mean %+.4f, std %.4f, max|.| %.4f\n", what, db::shape_str(db::tensor_shape(y)).c_str(), mean,
              std::sqrt(std::max(0.0, s2 / n - mean * mean)), mx);
}

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [STEPS]\n", argv[0]);
    return 1;
  }
  const int steps = argc > 2 ? std::atoi(argv[2]) : 3;
  db::set_num_threads(2);
  const auto model = db::load_diffuser(argv[1]);  // config.json + diffusion_pytorch_model.safetensors
  const db::DiffuserConfig& cfg = model->config();
  std::printf("%s: %zu levels, addition_embed_type \"%s\", %d emotion classes, style width %d\n", argv[1],
              cfg.block_out_channels.size(), cfg.addition_embed_type.c_str(), cfg.num_class_embeds, cfg.style_dim());

  // A batch of two utterances: 16 mel bins x 24 frames (the U-Net halves both once per level).
  const std::size_t B = 2, F = 16, T = 24, S = 6;
  db::Rng rng(42);
  db::DiffuserInputs<float> in;
  const auto mel = randn<3>({B, F, T}, rng);       // the noisy mel x_t
  const auto speaker = randn<2>({B, F}, rng);      // a speaker embedding per utterance
  in.sample = db::tts::make_sample(mel, db::tts::speaker_plane(speaker, T));
  in.timestep = {500.f, 500.f};
  if (cfg.num_class_embeds > 0) in.class_labels = {1 % cfg.num_class_embeds, 3 % cfg.num_class_embeds};

  // Prosody: n_psd frame-level tracks (pitch, energy, ...); the utterance vector [means | stds]
  // must have the model's image_embeds width, so n_psd = encoder_hid_dim / 2.
  const auto& add = cfg.addition_embed_type;
  if (add == "image" || add == "image_hint") {
    const std::size_t n_psd = std::size_t(cfg.encoder_hid_dim / 2);
    auto mask = Tensor<float, 3>::from_shape({B, 1, T});
    mask.fill(1.f);
    const auto psd = randn<3>({B, n_psd, T}, rng);
    in.image_embeds = db::tts::psd_vector(psd, mask);
    if (add == "image_hint") {  // the hint block takes 3 frame-level tracks at 8x the resolution
      auto tracks = Tensor<float, 3>::from_shape({B, 3, T});
      for (std::size_t b = 0; b < B; ++b)
        for (std::size_t k = 0; k < 3; ++k)
          for (std::size_t t = 0; t < T; ++t) tracks(b, k, t) = psd(b, k, t);
      in.hint = db::tts::psd_hint(tracks, F);
    }
  }

  // Style: S tokens for utterance 0, 4 real + 2 padding for utterance 1.
  in.encoder_hidden_states = randn<3>({B, S, std::size_t(cfg.style_dim())}, rng);
  in.encoder_attention_mask = db::tts::style_mask<float>({std::int64_t(S), 4}, S);

  auto shape = [](const auto& t) { return db::shape_str(db::tensor_shape(t)); };
  std::printf("conditioning: sample %s (mel + speaker plane)", shape(in.sample).c_str());
  if (!in.class_labels.empty())
    std::printf(", emotion ids %lld %lld", (long long)in.class_labels[0], (long long)in.class_labels[1]);
  if (in.image_embeds) std::printf(", prosody vector %s", shape(*in.image_embeds).c_str());
  if (in.hint) std::printf(", prosody hint %s", shape(*in.hint).c_str());
  std::printf(", style %s with lengths %zu and 4\n", shape(*in.encoder_hidden_states).c_str(), S);

  const Tensor<float, 4> eps = model->forward(in);
  print_stats("forward", eps);
  if (eps.shape(0) != B || eps.shape(1) != std::size_t(cfg.out_channels) || eps.shape(2) != F || eps.shape(3) != T)
    throw db::Error("forward: unexpected output shape");

  // Emotion matters: the same inputs with the classes swapped give another output.
  if (cfg.num_class_embeds > 1) {
    auto swapped = in;
    std::swap(swapped.class_labels[0], swapped.class_labels[1]);
    const auto other = model->forward(swapped);
    double d = 0;
    for (std::size_t i = 0; i < eps.size(); ++i) d = std::max(d, double(std::fabs(eps.data()[i] - other.data()[i])));
    std::printf("emotion classes swapped: max change %.4f\n", d);
    if (d == 0) throw db::Error("class_labels had no effect");
  }

  // Sampling: `sample` = noise for the out_channels mel channel(s), then the speaker plane, which
  // stays fixed; DDIM with diffusers' default scheduler config (clip_sample: values in [-1, 1]).
  if (steps > 0) {
    db::DDIMScheduler<float> ddim;
    db::DiffusersSamplingOptions opt;
    opt.steps = steps;
    opt.progress = [](int i, int n, double s) { std::printf("  ddim step %d/%d %.3f s\n", i, n, s); };
    in.sample = db::tts::make_sample(randn<3>({B, F, T}, rng), db::tts::speaker_plane(speaker, T));
    print_stats("sampled mel", db::diffusers_sample(*model, ddim, in, opt));
  }
  std::printf("diffuser_tts: OK\n");
  return 0;
} catch (const db::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
