#pragma once
// TTS conditioning for the Diffuser U-Net, in the shapes UNet2DConditionModel expects:
//   sample                = [mel | speaker plane] as 2 channels of an (n_feats x T) image
//   class_labels          = emotion ids
//   image_embeds          = a prosody (PSD) vector   (addition_embed_type "image")
//   hint                  = a prosody plane          (addition_embed_type "image_hint")
//   encoder_hidden_states = the style sequence, encoder_attention_mask from its lengths
#include <cstdint>
#include <vector>

#include "diffblocks/core/error.hpp"
#include "diffblocks/core/shape.hpp"
#include "diffblocks/unets/diffuser.hpp"

namespace diffblocks {
namespace tts {

/// (B, F, T) mel and (B, F, T) speaker plane -> sample (B, 2, F, T).
template <class T = float>
Tensor<T, 4> make_sample(const Tensor<T, 3>& mel, const Tensor<T, 3>& speaker_plane) {
  if (tensor_shape(mel) != tensor_shape(speaker_plane))
    throw InputError("make_sample: mel " + shape_str(tensor_shape(mel)) + " and speaker plane " +
                     shape_str(tensor_shape(speaker_plane)) + " differ");
  const std::size_t B = mel.shape(0), F = mel.shape(1), W = mel.shape(2);
  auto s = Tensor<T, 4>::from_shape({B, 2, F, W});
  ops::set_channel_(Cpu{}, s, 0, mel);
  ops::set_channel_(Cpu{}, s, 1, speaker_plane);
  return s;
}

/// A speaker embedding (B, F) repeated over T frames -> (B, F, T), as Grad-TTS's spk channel.
template <class T = float>
Tensor<T, 3> speaker_plane(const Tensor<T, 2>& speaker, std::size_t frames) {
  auto p = Tensor<T, 3>::from_shape({speaker.shape(0), speaker.shape(1), frames});
  for (std::size_t b = 0; b < speaker.shape(0); ++b)
    for (std::size_t f = 0; f < speaker.shape(1); ++f)
      for (std::size_t t = 0; t < frames; ++t) p(b, f, t) = speaker(b, f);
  return p;
}

/// Utterance-level prosody vector for "image" conditioning: per feature, the mean and the
/// standard deviation over the valid frames -> (B, 2 * n_psd) = [means | stds].
template <class T = float>
Tensor<T, 2> psd_vector(const Tensor<T, 3>& psd, const Tensor<T, 3>& mask) {
  const std::size_t B = psd.shape(0), N = psd.shape(1), W = psd.shape(2);
  if (mask.shape(0) != B || mask.shape(1) != 1 || mask.shape(2) != W)
    throw InputError("psd_vector: mask " + shape_str(tensor_shape(mask)) + " does not match psd " +
                     shape_str(tensor_shape(psd)));
  auto v = Tensor<T, 2>::from_shape({B, 2 * N});
  for (std::size_t b = 0; b < B; ++b) {
    double count = 0;
    for (std::size_t t = 0; t < W; ++t) count += mask(b, 0, t);
    if (count <= 0) throw InputError("psd_vector: item " + std::to_string(b) + " has no valid frame");
    for (std::size_t n = 0; n < N; ++n) {
      double s = 0, s2 = 0;
      for (std::size_t t = 0; t < W; ++t) {
        s += mask(b, 0, t) * psd(b, n, t);
        s2 += mask(b, 0, t) * psd(b, n, t) * psd(b, n, t);
      }
      const double mean = s / count;
      v(b, n) = static_cast<T>(mean);
      v(b, N + n) = static_cast<T>(std::sqrt(std::max(0.0, s2 / count - mean * mean)));
    }
  }
  return v;
}

/// Frame-level prosody as an "image_hint" plane: psd (B, 3, T) -> (B, 3, 8 n_feats, 8 T), each
/// frame's value spread over its 8 columns and every frequency row (the hint block expects 3
/// channels at 8x the sample resolution).
template <class T = float>
Tensor<T, 4> psd_hint(const Tensor<T, 3>& psd, std::size_t n_feats) {
  if (psd.shape(1) != 3)
    throw InputError("psd_hint: the hint needs exactly 3 prosody features, got psd " + shape_str(tensor_shape(psd)));
  const std::size_t B = psd.shape(0), W = psd.shape(2), H8 = 8 * n_feats, W8 = 8 * W;
  auto h = Tensor<T, 4>::from_shape({B, 3, H8, W8});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t y = 0; y < H8; ++y)
        for (std::size_t x = 0; x < W8; ++x) h(b, c, y, x) = psd(b, c, x / 8);
  return h;
}

/// Keep-mask (B, S) for a padded style sequence: 1 for the first lengths[b] tokens.
template <class T = float>
Tensor<T, 2> style_mask(const std::vector<std::int64_t>& lengths, std::size_t tokens) {
  auto m = Tensor<T, 2>::from_shape({lengths.size(), tokens});
  for (std::size_t b = 0; b < lengths.size(); ++b) {
    if (lengths[b] <= 0 || std::size_t(lengths[b]) > tokens)
      throw InputError("style_mask: length " + std::to_string(lengths[b]) + " of item " + std::to_string(b) +
                       " is outside [1, " + std::to_string(tokens) + "]");
    for (std::size_t s = 0; s < tokens; ++s) m(b, s) = s < std::size_t(lengths[b]) ? T(1) : T(0);
  }
  return m;
}

}  // namespace tts
}  // namespace diffblocks
