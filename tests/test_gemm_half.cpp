// The half-precision GEMM (ops/cpu/gemm_half.hpp) on every path this machine runs, each named
// explicitly (the vdpbf16ps kernel and the widening path of the generic, avx2 and avx512 copies),
// for bf16 and f16, through every entry point, against a double-precision reference computed
// from the same half values.
//
// Error bound. A product of two bf16 (8-bit significands) or two f16 (11-bit) values is exact in
// float32, and with these magnitudes (|x| < 2^4) never under- or overflows. Every path then adds
// the K products and, when accumulating, C's old value in float32, in some order (per lane, per
// pass over K, two products per vdpbf16ps): a summation of n = K + 1 terms, whose error is at most
// gamma(n - 1) * sum |term| with gamma(j) = j u / (1 - j u), u = 2^-24 (Higham, Accuracy and
// Stability, 4.2). That is what check() allows, plus 1e-30 absolute for vdpbf16ps's flushing of
// subnormal results (none occur here). A wrong pair interleaving, a missing zero pad for an odd
// K or a stray read of a stride's padding (which holds NaN, as do the packed buffers before
// packing) is wrong by O(1) or NaN, far outside it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "diffblocks/core/random.hpp"
#include "diffblocks/ops/cpu/attention_bf16.hpp"
#include "diffblocks/ops/cpu/gemm_half.hpp"

namespace db = diffblocks;

namespace {

namespace cpu = db::ops::cpu;
using cpu::HalfGemmPath;

/// Restores the instruction set in use when a test section ends.
struct IsaGuard {
  cpu::Isa saved = cpu::isa();
  ~IsaGuard() { cpu::set_isa(saved); }
};

template <class T>
const char* type_name() {
  return std::is_same<T, db::bf16>::value ? "bf16" : "f16";
}

/// rows x cols values N(0, 1) rounded to T, row stride ld; the stride's padding is NaN.
template <class T>
std::vector<T> random_half(int rows, int cols, int ld, db::Rng& rng) {
  std::vector<T> v(static_cast<std::size_t>(rows) * ld, T(std::nanf("")));
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) v[static_cast<std::size_t>(r) * ld + c] = T(static_cast<float>(rng.normal()));
  return v;
}

/// A packed buffer, NaN before packing (0xffff is a NaN as bf16 and as float): an element the
/// packer leaves unwritten, a zero pad above all, turns the product into NaN.
std::vector<float> nan_buffer(std::size_t bytes) { return std::vector<float>(bytes / 4 + 1, std::nanf("")); }

/// The ways a caller gets A * B (A M x K, B K x N, or Bt = B^T N x K for a Linear).
enum class Entry { Packed, PackedA, Rows, Plain, Tiles };
const char* entry_name(Entry e) {
  switch (e) {
    case Entry::Packed: return "gemm_half_packed";
    case Entry::PackedA: return "gemm_half_packed_a";
    case Entry::Rows: return "gemm_half_rows (B from W = B^T)";
    case Entry::Plain: return "gemm_half";
    case Entry::Tiles: return "gemm_half_packed in column tiles, B written by b_index";
  }
  return "";
}
constexpr Entry kEntries[] = {Entry::Packed, Entry::PackedA, Entry::Rows, Entry::Plain, Entry::Tiles};

template <class T>
struct Problem {
  int M, N, K, lda, ldb, ldbt, ldc;
  std::vector<T> A, B, Bt;
  std::vector<float> C0;  // M x ldc: the old C, and a sentinel in the padding columns
  std::vector<double> ref, mag;  // sum of products (without C0) and sum of |products|

  Problem(int m, int n, int k, db::Rng& rng) : M(m), N(n), K(k), lda(k + 3), ldb(n + 2), ldbt(k + 1), ldc(n + 3) {
    A = random_half<T>(M, K, lda, rng);
    B = random_half<T>(K, N, ldb, rng);
    Bt.assign(static_cast<std::size_t>(N) * ldbt, T(std::nanf("")));
    for (int i = 0; i < K; ++i)
      for (int j = 0; j < N; ++j) Bt[j * ldbt + i] = B[i * ldb + j];
    C0.assign(static_cast<std::size_t>(M) * ldc, 12345.0f);
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) C0[i * ldc + j] = static_cast<float>(rng.normal());
    ref.assign(static_cast<std::size_t>(M) * N, 0.0);
    mag = ref;
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j)
        for (int p = 0; p < K; ++p) {
          const double t = double(float(A[i * lda + p])) * double(float(B[p * ldb + j]));
          ref[i * N + j] += t;
          mag[i * N + j] += std::abs(t);
        }
  }

  /// C after the product through `entry` on `layout`.
  std::vector<float> run(const cpu::HalfGemmLayout& layout, Entry entry, bool accumulate) const {
    std::vector<float> C = C0;
    std::vector<float> ap = nan_buffer(layout.a_bytes(M, K)), bp = nan_buffer(layout.b_bytes(K, N));
    switch (entry) {
      case Entry::Packed:
        cpu::pack_half_a(layout, M, K, A.data(), lda, ap.data());
        cpu::pack_half_b(layout, K, N, B.data(), ldb, bp.data());
        cpu::gemm_half_packed<T>(layout, M, N, K, ap.data(), bp.data(), C.data(), ldc, accumulate);
        break;
      case Entry::PackedA:
        cpu::pack_half_a(layout, M, K, A.data(), lda, ap.data());
        cpu::gemm_half_packed_a(layout, M, N, K, ap.data(), B.data(), ldb, C.data(), ldc, accumulate);
        break;
      case Entry::Rows:
        cpu::pack_half_b_transposed(layout, K, N, Bt.data(), ldbt, bp.data());
        cpu::gemm_half_rows(layout, M, N, K, A.data(), lda, bp.data(), C.data(), ldc, accumulate);
        break;
      case Entry::Plain:
        cpu::gemm_half(M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc, accumulate, layout.path);
        break;
      case Entry::Tiles: {  // as an im2col would: element by element into a zeroed buffer, tiles of columns
        cpu::pack_half_a(layout, M, K, A.data(), lda, ap.data());
        std::memset(bp.data(), 0, layout.b_bytes(K, N));
        for (int p = 0; p < K; ++p)
          for (int j = 0; j < N; ++j) layout.store(bp.data(), layout.b_index(p, j, K), float(B[p * ldb + j]));
        const int tile = 2 * layout.block_cols;
        for (int n0 = 0; n0 < N; n0 += tile) {
          const auto* tile_b = reinterpret_cast<const unsigned char*>(bp.data()) + layout.b_index(0, n0, K) * layout.elem_bytes;
          cpu::gemm_half_packed<T>(layout, M, std::min(tile, N - n0), K, ap.data(), tile_b, C.data() + n0, ldc,
                                   accumulate);
        }
        break;
      }
    }
    return C;
  }

  /// C within the bound of the file comment, and the padding columns untouched.
  void check(const std::vector<float>& C, bool accumulate, const std::string& what) const {
    const double u = std::ldexp(1.0, -24), n = K + 1, gamma = n * u / (1 - n * u);
    int bad = 0;
    double worst = 0;
    std::string first;
    for (int i = 0; i < M; ++i) {
      for (int j = 0; j < N; ++j) {
        const double c0 = accumulate ? C0[i * ldc + j] : 0.0;
        const double want = ref[i * N + j] + c0, tol = gamma * (mag[i * N + j] + std::abs(c0)) + 1e-30;
        const double err = std::abs(double(C[i * ldc + j]) - want);
        worst = std::max(worst, err / tol);
        if (!(err <= tol) && bad++ == 0)
          first = "C[" + std::to_string(i) + "][" + std::to_string(j) + "] = " + std::to_string(C[i * ldc + j]) +
                  ", want " + std::to_string(want) + " +- " + std::to_string(tol);
      }
      for (int j = N; j < ldc; ++j)
        if (C[i * ldc + j] != 12345.0f && bad++ == 0) first = "padding column " + std::to_string(j) + " written";
    }
    INFO(what << ": " << bad << " bad elements, first " << first << "; worst |err| / bound = " << worst);
    REQUIRE(bad == 0);
  }
};

/// Every shape against every path `T` can run here and every entry point, accumulating or not.
template <class T>
void check_all_paths() {
  // M, N, K around the register blocks (panels of 4 / 6 / 8 rows, blocks of 8 / 16 / 32
  // columns), odd K (pairs padded), 1s; then K past one pass of the f32 (256 rows on AVX-512)
  // and the bf16 kernels (512), odd; M past the 32 panels the widening paths' gemm_half_rows
  // widens at a time; K = 0 (C = 0, or kept).
  std::vector<std::array<int, 3>> shapes;
  for (int M : {1, 5, 8, 9, 17})
    for (int N : {1, 7, 16, 31, 33, 70})
      for (int K : {1, 2, 3, 16, 33}) shapes.push_back({M, N, K});
  for (const auto& s : {std::array<int, 3>{13, 40, 1101}, {64, 100, 576}, {9, 33, 513}, {3, 65, 1000}, {24, 96, 255},
                        {300, 9, 20}, {3, 5, 0}, {9, 40, 0}})
    shapes.push_back(s);
  db::Rng rng(2024);
  int ran = 0;
  for (const auto& [M, N, K] : shapes) {
    const Problem<T> pr(M, N, K, rng);
    for (HalfGemmPath path : cpu::kAllHalfGemmPaths) {
      if (!cpu::half_gemm_path_supported<T>(path)) continue;
      const cpu::HalfGemmLayout layout = cpu::half_gemm_layout<T>(path);
      for (Entry e : kEntries)
        for (bool acc : {false, true}) {
          const std::string what = std::string(type_name<T>()) + " " + std::to_string(M) + "x" + std::to_string(N) +
                                   "x" + std::to_string(K) + ", " + cpu::half_gemm_path_name(path) + ", " +
                                   entry_name(e) + (acc ? ", accumulate" : "");
          pr.check(pr.run(layout, e, acc), acc, what);
          ++ran;
        }
    }
  }
  REQUIRE(ran > 0);
}

}  // namespace

TEST_CASE("gemm_half: bf16 products match a double reference on every path", "[gemm_half]") {
  // Where the vdpbf16ps path can run it is among those checked (not silently skipped).
  if (DIFFBLOCKS_CPU_HAS_AVX512_BF16 && cpu::isa_supported(cpu::Isa::Avx512) && cpu::cpu_features().avx512_bf16)
    REQUIRE(cpu::half_gemm_path_supported<db::bf16>(HalfGemmPath::Avx512Bf16));
  check_all_paths<db::bf16>();
}

TEST_CASE("gemm_half: f16 products match a double reference on every path", "[gemm_half]") {
  REQUIRE_FALSE(cpu::half_gemm_path_supported<db::f16>(HalfGemmPath::Avx512Bf16));
  check_all_paths<db::f16>();
}

TEST_CASE("gemm_half: the path follows isa() and AVX512-BF16, other paths are refused", "[gemm_half]") {
  const IsaGuard guard;
  db::Rng rng(7);
  const Problem<db::bf16> pr(19, 45, 67, rng);
  for (cpu::Isa i : cpu::kAllIsas) {
    if (!cpu::isa_supported(i)) continue;
    cpu::set_isa(i);
    const HalfGemmPath want = i == cpu::Isa::Avx512 && cpu::avx512_bf16_supported() ? HalfGemmPath::Avx512Bf16
                                                                                      : static_cast<HalfGemmPath>(i);
    INFO("isa " << cpu::isa_name(i));
    REQUIRE(cpu::half_gemm_path<db::bf16>() == want);
    REQUIRE(cpu::half_gemm_path<db::f16>() == static_cast<HalfGemmPath>(i));
    // The default path is that one: the same bits as naming it.
    std::vector<float> by_default = pr.C0, named = pr.C0;
    cpu::gemm_half(pr.M, pr.N, pr.K, pr.A.data(), pr.lda, pr.B.data(), pr.ldb, by_default.data(), pr.ldc);
    cpu::gemm_half(pr.M, pr.N, pr.K, pr.A.data(), pr.lda, pr.B.data(), pr.ldb, named.data(), pr.ldc, false, want);
    REQUIRE(std::memcmp(by_default.data(), named.data(), named.size() * sizeof(float)) == 0);
  }
  // f16 has no pair path; a path outside this CPU (or build) is a ConfigError, not a crash.
  REQUIRE_THROWS_AS(cpu::half_gemm_layout<db::f16>(HalfGemmPath::Avx512Bf16), db::ConfigError);
  for (HalfGemmPath p : cpu::kAllHalfGemmPaths)
    if (!cpu::half_gemm_path_supported<db::bf16>(p)) REQUIRE_THROWS_AS(cpu::half_gemm_layout<db::bf16>(p), db::ConfigError);
  REQUIRE_THROWS_AS(cpu::half_gemm_layout<db::bf16>(static_cast<HalfGemmPath>(9)), db::ConfigError);
}

TEST_CASE("gemm_half: a_index and b_index are where the packers write", "[gemm_half]") {
  // An im2col writing B through b_index, or a weight written through a_index, gives the packers'
  // bytes exactly, pads included (zero), on every path.
  db::Rng rng(11);
  for (HalfGemmPath path : cpu::kAllHalfGemmPaths) {
    if (!cpu::half_gemm_path_supported<db::bf16>(path)) continue;
    const cpu::HalfGemmLayout layout = cpu::half_gemm_layout<db::bf16>(path);
    for (const auto& [rows, cols] : {std::array<int, 2>{1, 1}, {9, 3}, {13, 40}, {33, 7}}) {
      INFO(cpu::half_gemm_path_name(path) << ", " << rows << " x " << cols);
      const auto X = random_half<db::bf16>(rows, cols, cols + 1, rng);
      std::vector<float> packed = nan_buffer(layout.a_bytes(rows, cols)), by_index(packed.size(), 0.0f);
      cpu::pack_half_a(layout, rows, cols, X.data(), cols + 1, packed.data());
      for (int m = 0; m < rows; ++m)
        for (int k = 0; k < cols; ++k) layout.store(by_index.data(), layout.a_index(m, k, cols), float(X[m * (cols + 1) + k]));
      REQUIRE(std::memcmp(packed.data(), by_index.data(), layout.a_bytes(rows, cols)) == 0);
      // X as B (K = rows, N = cols).
      packed = nan_buffer(layout.b_bytes(rows, cols));
      by_index.assign(packed.size(), 0.0f);
      cpu::pack_half_b(layout, rows, cols, X.data(), cols + 1, packed.data());
      for (int k = 0; k < rows; ++k)
        for (int n = 0; n < cols; ++n) layout.store(by_index.data(), layout.b_index(k, n, rows), float(X[k * (cols + 1) + n]));
      REQUIRE(std::memcmp(packed.data(), by_index.data(), layout.b_bytes(rows, cols)) == 0);
    }
  }
}

// ---- bf16 softmax attention on vdpbf16ps (ops/cpu/attention_bf16.hpp) ------------------------
//
// Error bound, per output element. The scores are float32 sums of exact products (error ~1e-7
// relative: nothing a softmax notices at these magnitudes), exp2 has a relative error below
// 1e-7, and two roundings to bf16 remain (unit roundoff u = 2^-8: 8 significant bits): each
// weight p_j of the value product and the output. So |ours - exact| <= u (sum_j p_j |v_j|) /
// (sum_j p_j) + u |exact| <= 2u w, w the weighted mean of |v| (computed with the reference), plus
// 1e-5 w for the float32 arithmetic. A wrong pair, panel or key block is wrong by O(w), far outside it.
namespace {

struct AttnCase {
  int B, Nq, Nk, heads, dh, dv;
  bool bias;
  float magnitude;  // of q and k: large scores check the running maximum
};

/// The bf16 kernel against softmax attention in double on the same bf16 values.
void check_bf16_attention(const AttnCase& a, db::Rng& rng) {
  using BT = db::bf16;
  auto make = [&](int n, int c, float mag) {
    auto t = db::Tensor<BT, 3, db::Cpu>::from_shape({std::size_t(a.B), std::size_t(n), std::size_t(c)});
    for (auto& x : t) x = BT(mag * static_cast<float>(rng.normal()));
    return t;
  };
  const auto q = make(a.Nq, a.heads * a.dh, a.magnitude), k = make(a.Nk, a.heads * a.dh, a.magnitude),
             v = make(a.Nk, a.heads * a.dv, 1.0f);
  // Bias: item 0 keeps every key; item 1 only its first 17 (or half), the rest -inf; item 2 +-1.
  auto bias = db::Tensor<BT, 2, db::Cpu>::from_shape({a.bias ? std::size_t(a.B) : 0u, a.bias ? std::size_t(a.Nk) : 0u});
  for (int b = 0; b < (a.bias ? a.B : 0); ++b)
    for (int j = 0; j < a.Nk; ++j)
      bias.data()[b * a.Nk + j] = b == 1 && j >= std::min(17, a.Nk / 2 + 1) ? BT(-INFINITY)
                                  : b == 2                                    ? BT(j % 3 == 0 ? 1.0f : -1.0f)
                                                                              : BT(0.0f);
  const float scale = 1.0f / std::sqrt(static_cast<float>(std::max(a.dh, 1)));
  const auto got = cpu::attention_streaming_bf16(q, k, v, a.heads, scale, bias);
  REQUIRE(got.shape(0) == std::size_t(a.B));
  REQUIRE(got.shape(1) == std::size_t(a.Nq));
  REQUIRE(got.shape(2) == std::size_t(a.heads * a.dv));
  const int Cq = a.heads * a.dh, Cv = a.heads * a.dv;
  double worst = 0;
  for (int b = 0; b < a.B; ++b)
    for (int h = 0; h < a.heads; ++h)
      for (int i = 0; i < a.Nq; ++i) {
        std::vector<double> s(a.Nk);
        double mx = -INFINITY;
        for (int j = 0; j < a.Nk; ++j) {
          double dot = 0;
          for (int d = 0; d < a.dh; ++d)
            dot += double(float(q.data()[(b * a.Nq + i) * Cq + h * a.dh + d])) *
                   double(float(k.data()[(b * a.Nk + j) * Cq + h * a.dh + d]));
          s[j] = scale * dot + (a.bias ? double(float(bias.data()[b * a.Nk + j])) : 0.0);
          mx = std::max(mx, s[j]);
        }
        double l = 0;
        for (int j = 0; j < a.Nk; ++j) l += s[j] = std::exp(s[j] - mx);
        for (int e = 0; e < a.dv; ++e) {
          double o = 0, w = 0;
          for (int j = 0; j < a.Nk; ++j) {
            const double vj = double(float(v.data()[(b * a.Nk + j) * Cv + h * a.dv + e]));
            o += s[j] * vj;
            w += s[j] * std::abs(vj);
          }
          o /= l, w /= l;
          const double ours = double(float(got.data()[(b * a.Nq + i) * Cv + h * a.dv + e]));
          const double err = std::abs(ours - o), bound = (std::ldexp(1.0, -7) + 1e-5) * w + 1e-30;
          if (!(err <= bound)) {
            INFO("b " << b << " head " << h << " query " << i << " feature " << e << ": " << ours << " against " << o
                      << " (bound " << bound << ")");
            REQUIRE(err <= bound);
          }
          worst = std::max(worst, err / (w + 1e-30));
        }
      }
  INFO("worst error / weighted mean |v|: " << worst);
  CHECK(worst < std::ldexp(1.0, -7));
}

}  // namespace

TEST_CASE("attention_bf16: the vdpbf16ps kernel matches softmax attention in double", "[gemm_half][attention]") {
  const IsaGuard guard;
  if (!cpu::bf16_attention_native()) {
    // Not on this CPU (or build): refused with a ConfigError, and ops::attention widens instead.
    const auto t = db::Tensor<db::bf16, 3, db::Cpu>::from_shape({1, 4, 8});
    REQUIRE_THROWS_AS(cpu::attention_streaming_bf16(t, t, t, 1, 1.0f, db::Tensor<db::bf16, 2, db::Cpu>::from_shape({0, 0})),
                      db::ConfigError);
    WARN("no AVX512-BF16 here: the bf16 attention kernel is not run");
    return;
  }
  db::Rng rng(21);
  // Query tiles of 64 and key blocks of 64 with tails, odd head sizes (a zero d pad), dv != dh
  // (panels of 8 features), one key, a key block of padded keys only (-inf bias past 17 of 600).
  for (const AttnCase& a : {AttnCase{1, 100, 100, 4, 32, 32, false, 1.0f}, AttnCase{2, 77, 16, 2, 16, 16, true, 1.0f},
                            AttnCase{3, 33, 45, 3, 8, 8, true, 1.0f}, AttnCase{1, 70, 1, 2, 64, 64, false, 1.0f},
                            AttnCase{2, 65, 130, 2, 64, 48, true, 1.0f}, AttnCase{1, 40, 50, 2, 5, 7, false, 1.0f},
                            AttnCase{2, 130, 600, 2, 32, 32, true, 1.0f}, AttnCase{3, 129, 257, 1, 33, 17, true, 3.0f},
                            AttnCase{1, 64, 64, 4, 32, 32, false, 6.0f}}) {
    INFO("B " << a.B << " Nq " << a.Nq << " Nk " << a.Nk << " heads " << a.heads << " dh " << a.dh << " dv " << a.dv
              << (a.bias ? " bias" : "") << " |q|,|k| ~ " << a.magnitude);
    check_bf16_attention(a, rng);
  }
  // No keys: NaN, as the float32 kernel and torch; no queries: an empty result.
  const auto q = db::Tensor<db::bf16, 3, db::Cpu>::from_shape({1, 3, 8});
  const auto none = db::Tensor<db::bf16, 3, db::Cpu>::from_shape({1, 0, 8});
  const auto nobias = db::Tensor<db::bf16, 2, db::Cpu>::from_shape({0, 0});
  const auto nan_out = cpu::attention_streaming_bf16(q, none, none, 2, 0.5f, nobias);
  REQUIRE(nan_out.size() == 24);
  for (const auto& x : nan_out) REQUIRE(std::isnan(float(x)));
  REQUIRE(cpu::attention_streaming_bf16(none, q, q, 2, 0.5f, nobias).size() == 0);
  // On the other copies the kernel is refused, and bf16_attention_native() says so.
  for (cpu::Isa i : cpu::kAllIsas) {
    if (!cpu::isa_supported(i) || i == cpu::Isa::Avx512) continue;
    cpu::set_isa(i);
    REQUIRE_FALSE(cpu::bf16_attention_native());
    REQUIRE_THROWS_AS(cpu::attention_streaming_bf16(q, q, q, 2, 0.5f, nobias), db::ConfigError);
  }
}
