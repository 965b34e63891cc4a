// Attention variants, the micro-benchmarking use of the library (llm.c style: every variant is
// validated against a scalar double-precision reference before it is timed, and reports its
// FLOP/s and bytes so linear vs quadratic scaling is visible).
//
// Variants (batch 1, the library's thread pool), each in float32, bf16 and f16:
//   linear     Grad-TTS LinearAttention's core (ops::linear_attention): k softmaxed over the N
//              positions, context = k v^T, out = context^T q. O(N d^2).
//   naive      softmax attention, full score rows per 64-query tile (ops::attention_naive). O(N S d).
//   streaming  softmax attention with the online softmax over 256-key blocks
//              (ops::attention_streaming): the score matrix is never materialised. O(N S d).
// Cases:
//   self/<variant>/N:<tokens>/dh:<head size>    queries = keys = values = N tokens, 4 heads
//   cross/<variant>/N:<content>/S:<style>/dh:64 N content queries, S style keys/values, 4 heads
//                                                (TTS CrossAttention: content queries, style K/V)
// The dtype axis: `<kind>/<variant>_bf16/...` and `_f16` run the same case on q, k, v rounded to
// the type (bench_common.hpp's dtype_case; the half ops widen, run the float32 kernel and round
// the output once, which the label names). The check's tolerance grows by the type's unit
// roundoff (that one rounding), the reference is computed from the rounded inputs.
// Counters: GFLOP/s and GFLOP (2 MACs of QK^T and PV, or of the two LinearAttention einsums;
// exp not counted), GB/s of compulsory traffic (q, k, v read, out written once, in the type's
// bytes), and for naive `score_MB`, the float32 score rows it writes and reads back (what
// streaming avoids).
//
//   build/bin/bench_attention [--threads=N] [--benchmark_filter=REGEX] ...
#include <cmath>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace {

namespace db = diffblocks;
using db::Tensor;

constexpr int kHeads = 4;

/// (1, n, c) N(0, 1) values in type S.
template <class S>
Tensor<S, 3> tokens(std::size_t n, std::size_t c, std::uint64_t seed) {
  db::Rng rng(seed);
  auto x = db::ops::empty<float, 3>(db::Cpu{}, {1, n, c});
  bench::fill_normal(x, rng, 1.0);
  return bench::as<S>(std::move(x));
}

/// The validation's tolerance in type S: the float32 kernels' 1e-4, plus the output's one
/// rounding to S (relative to max(1, |out|), as the error is measured).
template <class S>
constexpr double tolerance() {
  return 1e-4 + bench::unit_roundoff<S>();
}

/// Fails the benchmark when the validation error is above tolerance<S>(); true when it passed.
template <class S>
bool validated(benchmark::State& state, double err) {
  if (err <= tolerance<S>()) return true;
  state.SkipWithError(("validation against the double reference failed: error " + std::to_string(err) +
                       ", tolerance " + std::to_string(tolerance<S>()))
                          .c_str());
  return false;
}

/// max |got - ref| / max(1, |ref|) over `rows` query rows spread over [0, Nq), from the
/// definition in double. Checking a sample of rows keeps validation O(rows * S * d) at 16k tokens.
template <class X>
double softmax_error(const X& q, const X& k, const X& v, float scale, const X& got, int rows = 16) {
  const std::size_t Nq = q.shape(1), Nk = k.shape(1), dh = q.shape(2) / kHeads, dv = v.shape(2) / kHeads;
  double err = 0;
  std::vector<double> s(Nk);
  for (int r = 0; r < rows; ++r) {
    const std::size_t i = (Nq - 1) * r / std::max(1, rows - 1);
    for (int h = 0; h < kHeads; ++h) {
      double mx = -1e300, sum = 0;
      for (std::size_t j = 0; j < Nk; ++j) {
        double d = 0;
        for (std::size_t c = 0; c < dh; ++c) d += double(q(0, i, h * dh + c)) * double(k(0, j, h * dh + c));
        mx = std::max(mx, s[j] = scale * d);
      }
      for (std::size_t j = 0; j < Nk; ++j) sum += (s[j] = std::exp(s[j] - mx));
      for (std::size_t e = 0; e < dv; ++e) {
        double o = 0;
        for (std::size_t j = 0; j < Nk; ++j) o += s[j] * double(v(0, j, h * dv + e));
        o /= sum;
        err = std::max(err, std::fabs(double(got(0, i, h * dv + e)) - o) / std::max(1.0, std::fabs(o)));
      }
    }
  }
  return err;
}

/// The same check for Grad-TTS LinearAttention on qkv (1, 3*heads*dh, 1, N).
template <class X>
double linear_error(const X& qkv, int dh, const X& got, int rows = 16) {
  const std::size_t N = qkv.shape(3), hidden = std::size_t(kHeads) * dh;
  auto at = [&](std::size_t ch, std::size_t n) { return double(qkv(0, ch, 0, n)); };
  double err = 0;
  for (int h = 0; h < kHeads; ++h) {
    std::vector<double> ctx(std::size_t(dh) * dh, 0.0);  // ctx[d][e] = sum_n softmax_n(k_d) v_e
    for (int d = 0; d < dh; ++d) {
      const std::size_t kc = hidden + h * dh + d;
      double mx = -1e300, sum = 0;
      for (std::size_t n = 0; n < N; ++n) mx = std::max(mx, at(kc, n));
      for (std::size_t n = 0; n < N; ++n) sum += std::exp(at(kc, n) - mx);
      for (std::size_t n = 0; n < N; ++n) {
        const double p = std::exp(at(kc, n) - mx) / sum;
        for (int e = 0; e < dh; ++e) ctx[d * dh + e] += p * at(2 * hidden + h * dh + e, n);
      }
    }
    for (int r = 0; r < rows; ++r) {
      const std::size_t n = (N - 1) * r / std::max(1, rows - 1);
      for (int e = 0; e < dh; ++e) {
        double o = 0;
        for (int d = 0; d < dh; ++d) o += ctx[d * dh + e] * at(h * dh + d, n);
        err = std::max(err, std::fabs(double(got(0, h * dh + e, 0, n)) - o) / std::max(1.0, std::fabs(o)));
      }
    }
  }
  return err;
}

enum class Variant { Naive, Streaming };

/// softmax attention of Nq queries over Nk keys (self-attention when Nq == Nk), in type S.
template <class S>
void softmax_case(benchmark::State& state, Variant variant, std::size_t nq, std::size_t nk, int dh) {
  const std::size_t c = std::size_t(kHeads) * dh;
  const auto q = tokens<S>(nq, c, 1), k = tokens<S>(nk, c, 2), v = tokens<S>(nk, c, 3);
  const Tensor<S, 2> none = db::ops::zeros<S, 2>(db::Cpu{}, {0, 0});
  const float scale = 1.0f / std::sqrt(float(dh));
  auto run = [&] {
    return variant == Variant::Naive ? db::ops::attention_naive(db::Cpu{}, q, k, v, kHeads, scale, none)
                                     : db::ops::attention_streaming(db::Cpu{}, q, k, v, kHeads, scale, none);
  };
  const double err = softmax_error(q, k, v, scale, run());  // also the warm-up
  if (!validated<S>(state, err)) return;
  for (auto _ : state) {
    auto y = run();
    benchmark::DoNotOptimize(y.data());
  }
  bench::set_flops(state, 2.0 * kHeads * double(nq) * double(nk) * (2.0 * dh));
  bench::set_bytes(state, double(sizeof(S)) * (2.0 * nq * c + 2.0 * nk * c));
  state.counters["max_rel_err"] = err;
  if (variant == Variant::Naive) state.counters["score_MB"] = 2.0 * 4.0 * kHeads * double(nq) * double(nk) * 1e-6;
}

/// Grad-TTS LinearAttention's core over n positions, in type S.
template <class S>
void linear_case(benchmark::State& state, std::size_t n, int dh) {
  const int hidden = kHeads * dh;
  db::Rng rng(4);
  auto qkvf = db::ops::empty<float, 4>(db::Cpu{}, {1, std::size_t(3 * hidden), 1, n});
  bench::fill_normal(qkvf, rng, 1.0);
  const auto qkv = bench::as<S>(std::move(qkvf));
  const double err = linear_error(qkv, dh, db::ops::linear_attention(db::Cpu{}, qkv, kHeads, dh));
  if (!validated<S>(state, err)) return;
  for (auto _ : state) {
    auto y = db::ops::linear_attention(db::Cpu{}, qkv, kHeads, dh);
    benchmark::DoNotOptimize(y.data());
  }
  bench::set_flops(state, 2.0 * kHeads * double(n) * (2.0 * dh * dh));
  bench::set_bytes(state, double(sizeof(S)) * (3.0 * hidden * n + hidden * double(n)));
  state.counters["max_rel_err"] = err;
}

/// Registers `<kind>/<variant>[_bf16|_f16]<shape>` in float32, bf16 and f16: run(state, dt)
/// times the case in the scalar type of the tag `dt` (bench::Dtype<S>).
template <class Fn>
void add(const std::string& kind, const std::string& variant, const std::string& shape, Fn run) {
  bench::register_dtypes(kind + "/" + variant, shape, run,
                         [](benchmark::internal::Benchmark* b) { b->Unit(benchmark::kMillisecond)->MinTime(0.2); });
}

void register_all() {
  const std::vector<std::size_t> lengths{64, 256, 1024, 4096, 16384};
  for (int dh : {32, 64, 128})
    for (std::size_t n : lengths) {
      const std::string shape = "/N:" + std::to_string(n) + "/dh:" + std::to_string(dh);
      add("self", "linear", shape, [=](benchmark::State& s, auto dt) { linear_case<typename decltype(dt)::type>(s, n, dh); });
      if (dh == 128 && n > 4096) continue;  // 1.1 TFLOP per call: minutes, and nothing new to see
      for (auto [label, v] : {std::pair{"naive", Variant::Naive}, std::pair{"streaming", Variant::Streaming}})
        add("self", label, shape,
            [=](benchmark::State& s, auto dt) { softmax_case<typename decltype(dt)::type>(s, v, n, n, dh); });
    }
  // Content queries over a style sequence: the TTS shape (16 style tokens, N = 80 mel bins x T
  // frames at the U-Net's first level) and a long-style sweep where the score rows outgrow L2.
  std::vector<std::pair<std::size_t, std::size_t>> cross;  // (content N, style S)
  for (std::size_t n : {1280u, 10240u, 40960u}) cross.emplace_back(n, 16);
  for (std::size_t sl : lengths) cross.emplace_back(1024, sl);
  for (auto [n, sl] : cross)
    for (auto [label, v] : {std::pair{"naive", Variant::Naive}, std::pair{"streaming", Variant::Streaming}})
      add("cross", label, "/N:" + std::to_string(n) + "/S:" + std::to_string(sl) + "/dh:64",
          [=, n = n, sl = sl](benchmark::State& s, auto dt) { softmax_case<typename decltype(dt)::type>(s, v, n, sl, 64); });
}

}  // namespace

int main(int argc, char** argv) { return bench::run_main(argc, argv, register_all); }
