#pragma once
// Per-phoneme similarity of candidate mels to a reference mel: the numbers behind the TTS
// figure that compares systems (Origin, Diffuser, step counts, ...) phoneme by phoneme.
//
// Inputs: a reference mel (n_feats, T), candidates of the same shape, and the phoneme
// alignment as symbols + durations in frames (summing to T). Phoneme i covers frames
// [start_i, start_i + d_i). Each candidate gets one score per phoneme:
//
//   cosine        cosine similarity of the segment's mean spectra (mean over its frames of the
//                 reference vs. of the candidate). 1 = same spectral shape. Scale-invariant:
//                 2·ref scores 1. The default: robust to frame-level jitter inside a phoneme.
//   frame_cosine  mean over the segment's frames of the per-frame cosine similarity.
//   l1            mean |ref − cand| over the segment's n_feats × d values (0 = identical).
//   mse           mean (ref − cand)² over the same values (0 = identical).
//
// Zero vectors (silence in linear-magnitude mels, zero padding): cosine is undefined there, so
// we define cos(0, 0) = 1 (both silent: identical) and cos(0, v) = cos(v, 0) = 0 for v ≠ 0
// (silence against sound: no shared direction). "Zero" means every component is exactly 0.
// Accumulation is in double; inputs are float.
//
// Summaries per candidate: `mean` (unweighted over phonemes: every phoneme counts the same),
// `frame_weighted_mean` (weights = durations; for l1/mse it equals the whole-utterance l1/mse,
// for frame_cosine the mean over all frames) and `worst` (the least similar phoneme).
//
// Every invalid input throws InputError naming what is wrong (counts, sums, shapes, the
// candidate's label, the position of a NaN/Inf).
//
// JSON (to_json; "reference" and "path" when paths are given, as `diffblocks similarity` does):
//   { "format": "diffblocks-similarity", "version": 1, "title": str, "subtitle": str,
//     "metric": "cosine" | "frame_cosine" | "l1" | "mse", "metric_description": str,
//     "higher_is_better": bool, "n_feats": int, "frames": int,
//     "reference": str (path of the reference mel),
//     "phonemes": [ { "symbol": str, "start": int, "frames": int }, ... ],
//     "candidates": [ { "label": str, "path": str, "scores": [float per phoneme],
//                       "mean": float, "frame_weighted_mean": float,
//                       "worst": { "index": int, "symbol": str, "score": float } }, ... ] }
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffblocks/core/device.hpp"
#include "diffblocks/core/error.hpp"
#include "diffblocks/core/shape.hpp"

namespace diffblocks {
namespace eval {

enum class Metric { Cosine, FrameCosine, L1, MSE };

inline const char* metric_name(Metric m) {
  switch (m) {
    case Metric::Cosine: return "cosine";
    case Metric::FrameCosine: return "frame_cosine";
    case Metric::L1: return "l1";
    case Metric::MSE: return "mse";
  }
  return "?";
}

inline const char* metric_description(Metric m) {
  switch (m) {
    case Metric::Cosine: return "cosine similarity of the segment's mean spectra";
    case Metric::FrameCosine: return "mean per-frame cosine similarity";
    case Metric::L1: return "mean absolute difference (L1)";
    case Metric::MSE: return "mean squared error";
  }
  return "?";
}

inline bool higher_is_better(Metric m) { return m == Metric::Cosine || m == Metric::FrameCosine; }

/// "cosine", "frame_cosine", "l1" or "mse"; anything else is an InputError listing the choices.
inline Metric parse_metric(const std::string& s) {
  for (Metric m : {Metric::Cosine, Metric::FrameCosine, Metric::L1, Metric::MSE})
    if (s == metric_name(m)) return m;
  throw InputError("unknown similarity metric '" + s + "' (choose cosine, frame_cosine, l1 or mse)");
}

/// Cosine similarity of two n-vectors with the zero-vector rule above; clamped to [-1, 1]
/// because rounding can put a parallel pair a hair above 1.
inline double cosine_similarity(const double* a, const double* b, std::size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  const bool a_zero = std::all_of(a, a + n, [](double v) { return v == 0.0; });
  const bool b_zero = std::all_of(b, b + n, [](double v) { return v == 0.0; });
  if (a_zero || b_zero) return a_zero && b_zero ? 1.0 : 0.0;
  // sqrt(aa*bb) rather than sqrt(aa)*sqrt(bb): sqrt(x*x) == x exactly, so a candidate equal to
  // the reference scores exactly 1. Float inputs cannot over- or underflow aa*bb in double.
  return std::clamp(ab / std::sqrt(aa * bb), -1.0, 1.0);
}

/// One phoneme of the alignment: frames [start, start + frames).
struct PhonemeSegment {
  std::string symbol;
  std::int64_t start = 0, frames = 0;
};

/// Checks the alignment against the mel length and lays the segments out end to end.
inline std::vector<PhonemeSegment> make_segments(const std::vector<std::string>& phonemes,
                                                 const std::vector<std::int64_t>& durations, std::int64_t frames) {
  if (phonemes.empty()) throw InputError("no phonemes given");
  if (phonemes.size() != durations.size())
    throw InputError(std::to_string(phonemes.size()) + " phonemes but " + std::to_string(durations.size()) +
                     " durations; each phoneme needs exactly one duration");
  std::vector<PhonemeSegment> segs;
  std::uint64_t sum = 0;
  bool overflow = false;
  for (std::size_t i = 0; i < durations.size(); ++i) {
    if (phonemes[i].empty()) throw InputError("phoneme " + std::to_string(i) + " has an empty symbol");
    if (durations[i] <= 0)
      throw InputError("duration " + std::to_string(i) + " (phoneme '" + phonemes[i] + "') is " +
                       std::to_string(durations[i]) + "; every phoneme needs at least one frame");
    const auto d = static_cast<std::uint64_t>(durations[i]);
    overflow = overflow || d > std::numeric_limits<std::int64_t>::max() - sum;
    if (!overflow) segs.push_back({phonemes[i], static_cast<std::int64_t>(sum), durations[i]});
    sum += overflow ? 0 : d;
  }
  if (overflow) throw InputError("durations sum to more than 2^63 frames but the mels have " + std::to_string(frames));
  if (sum != static_cast<std::uint64_t>(frames))
    throw InputError("durations sum to " + std::to_string(sum) + " frames but the mels have " + std::to_string(frames) +
                     " frames");
  return segs;
}

/// One candidate's score on frames [start, start + len) of two (n_feats, T) mels.
inline double segment_score(const Tensor<float, 2>& ref, const Tensor<float, 2>& cand, std::int64_t start,
                            std::int64_t len, Metric metric) {
  const std::size_t F = ref.shape()[0];
  if (cand.shape() != ref.shape() || F == 0 || start < 0 || len <= 0 ||
      static_cast<std::uint64_t>(start + len) > ref.shape()[1])
    throw InputError("segment_score: frames [" + std::to_string(start) + ", " + std::to_string(start + len) +
                     ") of mels shaped " + shape_str(ref.shape()) + " and " + shape_str(cand.shape()));
  const auto s = static_cast<std::size_t>(start), e = static_cast<std::size_t>(start + len);
  std::vector<double> a(F), b(F);
  switch (metric) {
    case Metric::Cosine:
      for (std::size_t f = 0; f < F; ++f) {
        for (std::size_t t = s; t < e; ++t) {
          a[f] += ref(f, t);
          b[f] += cand(f, t);
        }
        a[f] /= double(len);  // the mean spectrum as documented (cosine itself ignores the scale)
        b[f] /= double(len);
      }
      return cosine_similarity(a.data(), b.data(), F);
    case Metric::FrameCosine: {
      double sum = 0;
      for (std::size_t t = s; t < e; ++t) {
        for (std::size_t f = 0; f < F; ++f) {
          a[f] = ref(f, t);
          b[f] = cand(f, t);
        }
        sum += cosine_similarity(a.data(), b.data(), F);
      }
      return sum / double(len);
    }
    case Metric::L1:
    case Metric::MSE: {
      double sum = 0;
      for (std::size_t f = 0; f < F; ++f)
        for (std::size_t t = s; t < e; ++t) {
          const double d = double(ref(f, t)) - double(cand(f, t));
          sum += metric == Metric::L1 ? std::fabs(d) : d * d;
        }
      return sum / (double(F) * double(len));
    }
  }
  throw InputError("unknown similarity metric");
}

struct WorstPhoneme {
  std::size_t index = 0;
  std::string symbol;
  double score = 0;
};

struct CandidateScores {
  std::string label;
  std::vector<double> scores;  // one per phoneme, in order
  double mean = 0, frame_weighted_mean = 0;
  WorstPhoneme worst;
};

struct SimilarityReport {
  Metric metric = Metric::Cosine;
  std::int64_t n_feats = 0, frames = 0;
  std::vector<PhonemeSegment> phonemes;
  std::vector<CandidateScores> candidates;
};

namespace detail {

inline void check_finite(const Tensor<float, 2>& m, const std::string& what) {
  const std::size_t F = m.shape()[0], T = m.shape()[1];
  for (std::size_t f = 0; f < F; ++f)
    for (std::size_t t = 0; t < T; ++t)
      if (!std::isfinite(m(f, t)))
        throw InputError(what + " holds NaN or Inf at (feature " + std::to_string(f) + ", frame " + std::to_string(t) +
                         ")");
}

}  // namespace detail

/// Scores every candidate against `reference` phoneme by phoneme. `labels` name the candidates
/// (in errors and in the report); empty means "candidate 1", "candidate 2", ...
inline SimilarityReport phoneme_similarity(const Tensor<float, 2>& reference, const std::vector<Tensor<float, 2>>& candidates,
                                           const std::vector<std::string>& labels,
                                           const std::vector<std::string>& phonemes,
                                           const std::vector<std::int64_t>& durations, Metric metric = Metric::Cosine) {
  const std::vector<std::size_t> shape{reference.shape()[0], reference.shape()[1]};
  if (shape[0] == 0 || shape[1] == 0)
    throw InputError("the reference mel is empty (shape " + shape_str(shape) + "); expected (n_feats, T) with both > 0");
  if (candidates.empty()) throw InputError("no candidate mels given");
  if (!labels.empty() && labels.size() != candidates.size())
    throw InputError(std::to_string(labels.size()) + " labels but " + std::to_string(candidates.size()) +
                     " candidates; give one label per candidate");
  SimilarityReport r;
  r.metric = metric;
  r.n_feats = static_cast<std::int64_t>(shape[0]);
  r.frames = static_cast<std::int64_t>(shape[1]);
  detail::check_finite(reference, "the reference mel");
  std::vector<std::string> names(candidates.size());
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    names[c] = labels.empty() ? "candidate " + std::to_string(c + 1) : labels[c];
    const std::vector<std::size_t> cs{candidates[c].shape()[0], candidates[c].shape()[1]};
    if (cs != shape)
      throw InputError("candidate '" + names[c] + "' has shape " + shape_str(cs) + " but the reference has " +
                       shape_str(shape));
    detail::check_finite(candidates[c], "candidate '" + names[c] + "'");
  }
  r.phonemes = make_segments(phonemes, durations, r.frames);

  const bool higher = higher_is_better(metric);
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    CandidateScores cs;
    cs.label = names[c];
    double weighted = 0;
    for (std::size_t i = 0; i < r.phonemes.size(); ++i) {
      const auto& seg = r.phonemes[i];
      const double v = segment_score(reference, candidates[c], seg.start, seg.frames, metric);
      cs.scores.push_back(v);
      cs.mean += v;
      weighted += v * double(seg.frames);
      if (i == 0 || (higher ? v < cs.worst.score : v > cs.worst.score)) cs.worst = {i, seg.symbol, v};
    }
    cs.mean /= double(r.phonemes.size());
    cs.frame_weighted_mean = weighted / double(r.frames);
    r.candidates.push_back(std::move(cs));
  }
  return r;
}

/// The report as the documented JSON (see the top of this file). `reference_path` and
/// `candidate_paths` (one per candidate) are written when given, as the CLI does. ordered_json
/// keeps the documented key order (format first, candidates last) for human readers.
inline nlohmann::ordered_json to_json(const SimilarityReport& r, const std::string& title, const std::string& subtitle,
                                      const std::string& reference_path = "",
                                      const std::vector<std::string>& candidate_paths = {}) {
  if (!candidate_paths.empty() && candidate_paths.size() != r.candidates.size())
    throw InputError(std::to_string(candidate_paths.size()) + " candidate paths for " +
                     std::to_string(r.candidates.size()) + " candidates");
  nlohmann::ordered_json j;
  j["format"] = "diffblocks-similarity";
  j["version"] = 1;
  j["title"] = title;
  j["subtitle"] = subtitle;
  j["metric"] = metric_name(r.metric);
  j["metric_description"] = metric_description(r.metric);
  j["higher_is_better"] = higher_is_better(r.metric);
  j["n_feats"] = r.n_feats;
  j["frames"] = r.frames;
  if (!reference_path.empty()) j["reference"] = reference_path;
  j["phonemes"] = nlohmann::ordered_json::array();
  for (const auto& p : r.phonemes) {
    nlohmann::ordered_json e;
    e["symbol"] = p.symbol;
    e["start"] = p.start;
    e["frames"] = p.frames;
    j["phonemes"].push_back(e);
  }
  j["candidates"] = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < r.candidates.size(); ++i) {
    const auto& c = r.candidates[i];
    nlohmann::ordered_json e, worst;
    e["label"] = c.label;
    if (!candidate_paths.empty()) e["path"] = candidate_paths[i];
    e["scores"] = c.scores;
    e["mean"] = c.mean;
    e["frame_weighted_mean"] = c.frame_weighted_mean;
    worst["index"] = c.worst.index;
    worst["symbol"] = c.worst.symbol;
    worst["score"] = c.worst.score;
    e["worst"] = worst;
    j["candidates"].push_back(e);
  }
  return j;
}

}  // namespace eval
}  // namespace diffblocks
