#pragma once
// Block variants on the device under test (device.hpp): SoftmaxSelfAttention, the alternative
// to Grad-TTS's LinearAttention in the Origin U-Net, against softmax attention written out in
// double, with and without the padding mask.
#include <vector>

#include "device.hpp"

namespace dbt {
inline namespace DBT_SCALAR_NS {

inline db::Tensor<float, 4> random4(std::size_t B, std::size_t C, std::size_t H, std::size_t W, std::uint64_t seed) {
  db::Rng rng(seed);
  auto x = db::Tensor<float, 4>::from_shape({B, C, H, W});
  for (auto& v : x) v = float(rng.normal());
  return x;
}

inline db::Tensor<float, 4> frame_mask(const std::vector<std::size_t>& lengths, std::size_t W) {
  auto m = db::Tensor<float, 4>::from_shape({lengths.size(), 1, 1, W});
  for (std::size_t b = 0; b < lengths.size(); ++b)
    for (std::size_t w = 0; w < W; ++w) m(b, 0, 0, w) = w < lengths[b] ? 1.f : 0.f;
  return m;
}

// softmax(q k^T / sqrt(dh)) v per head over the positions (y, x) with x < length[b], then to_out;
// written from the definition with nested loops in double.
inline db::Tensor<float, 4> softmax_self_attention_reference(db::SoftmaxSelfAttention<>& a, const db::Tensor<float, 4>& x,
                                                             const std::vector<std::size_t>& len) {
  const std::size_t B = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3), N = H * W;
  const std::size_t heads = a.heads(), dh = a.dim_head(), inner = heads * dh;
  const auto& wq = a.attn.to_q.weight;
  const auto& wk = a.attn.to_k.weight;
  const auto& wv = a.attn.to_v.weight;
  const auto& wo = a.attn.to_out.weight;
  const auto& bo = a.attn.to_out.bias;
  auto y = db::Tensor<float, 4>::from_shape({B, C, H, W});
  for (std::size_t b = 0; b < B; ++b) {
    std::vector<double> q(N * inner, 0), k(N * inner, 0), v(N * inner, 0), o(N * inner, 0);
    for (std::size_t n = 0; n < N; ++n)
      for (std::size_t j = 0; j < inner; ++j)
        for (std::size_t c = 0; c < C; ++c) {
          const double xv = x(b, c, n / W, n % W);
          q[n * inner + j] += wq(j, c) * xv;
          k[n * inner + j] += wk(j, c) * xv;
          v[n * inner + j] += wv(j, c) * xv;
        }
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t i = 0; i < N; ++i) {
        std::vector<double> p(N, 0);
        double mx = -1e300, sum = 0;
        for (std::size_t j = 0; j < N; ++j) {
          if (j % W >= len[b]) continue;
          for (std::size_t e = 0; e < dh; ++e) p[j] += q[i * inner + h * dh + e] * k[j * inner + h * dh + e];
          p[j] /= std::sqrt(double(dh));
          mx = std::max(mx, p[j]);
        }
        for (std::size_t j = 0; j < N; ++j) sum += (j % W < len[b]) ? std::exp(p[j] - mx) : 0.0;
        for (std::size_t j = 0; j < N; ++j) {
          if (j % W >= len[b]) continue;
          const double w = std::exp(p[j] - mx) / sum;
          for (std::size_t e = 0; e < dh; ++e) o[i * inner + h * dh + e] += w * v[j * inner + h * dh + e];
        }
      }
    for (std::size_t n = 0; n < N; ++n)
      for (std::size_t c = 0; c < C; ++c) {
        double s = bo(c);
        for (std::size_t j = 0; j < inner; ++j) s += wo(c, j) * o[n * inner + j];
        y(b, c, n / W, n % W) = (n % W < len[b]) ? float(s) : 0.f;
      }
  }
  return y;
}

}  // namespace DBT_SCALAR_NS
}  // namespace dbt

TEST_CASE(DBT_NAME_PREFIX "SoftmaxSelfAttention equals softmax attention written out", DBT_DEVICE_TAG "[variants]") {
  DBT_REQUIRE_DEVICE();
  // The reference reads the weights of a CPU twin; the device's module gets the same values.
  struct Shape {
    int dim, heads, dim_head;
    std::size_t B, H, W;
    std::vector<std::size_t> valid;
    double init;  // 0: init_parameters; else N(0, init^2) weights
  };
  for (const Shape& s : {Shape{8, 2, 4, 2, 3, 5, {5, 3}, 0.0}, Shape{16, 4, 32, 2, 4, 24, {24, 15}, 0.2}}) {
    SECTION("dim " + std::to_string(s.dim) + ", " + std::to_string(s.heads) + " heads of " + std::to_string(s.dim_head)) {
      diffblocks::SoftmaxSelfAttention<> a(s.dim, s.heads, s.dim_head);
      if (s.init == 0.0) {
        diffblocks::init_parameters(a, 3);
      } else {
        diffblocks::Rng rng(3);
        a.visit([&](const std::string&, auto& t) {
          for (auto& v : t) v = static_cast<float>(s.init * rng.normal());
        });
      }
      diffblocks::SoftmaxSelfAttention<float, Dev> d(s.dim, s.heads, s.dim_head);
      dbt::copy_parameters(a, d);
      const auto x = dbt::random4(s.B, std::size_t(s.dim), s.H, s.W, s.init == 0.0 ? 11 : 4);
      const std::vector<std::size_t> all(s.B, s.W);
      dbt::require_close(dbt::host(d.forward(dbt::dev(x), dbt::dev(dbt::frame_mask(s.valid, s.W)))),
                         dbt::softmax_self_attention_reference(a, x, s.valid), "with a padding mask");
      // Without a mask every position is attended.
      dbt::require_close(dbt::host(d.forward(dbt::dev(x))), dbt::softmax_self_attention_reference(a, x, all), "unmasked");
      // Wrong channels or mask shape are input errors.
      REQUIRE_THROWS_AS(d.forward(dbt::dev(dbt::random4(1, std::size_t(s.dim) / 2, s.H, s.W, 1))), diffblocks::InputError);
      REQUIRE_THROWS_AS(d.forward(dbt::dev(x), dbt::dev(dbt::frame_mask(s.valid, s.W - 1))), diffblocks::InputError);
    }
  }
}
