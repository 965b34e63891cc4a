// Kernel source, compiled once per instruction set (see simd.inl's header).
//
// Element-wise activations over contiguous ranges (float32 on the simd helpers, other types
// scalar), and their whole-tensor forms, split over the pool from 16 K values on.

/// Mish over a contiguous range. With n = e^x (e^x + 2), tanh(log(1 + e^x)) = n / (n + 2), so
/// one exp and one reciprocal replace exp + log1p + tanh; above 20 torch's softplus returns x
/// and tanh(x) is 1 in float32, so mish(x) = x there (and n would overflow). float32 runs on
/// simd::exp and simd::reciprocal (relative error ~3e-7).
template <class T>
void mish_range(T* p, std::ptrdiff_t n) {
  if constexpr (std::is_same_v<T, float>) {
    // [&], not []: a lambda without captures also converts to a function pointer, through a
    // thunk that GCC 12 compiles outside the target region (-Wpsabi: a vector return there).
    simd::transform(p, n, [&](simd::vf x) {
      const simd::vf lim = simd::splat(20.0f);
      const simd::vf e = simd::exp(x > lim ? lim : x);
      const simd::vf m = e * (e + simd::splat(2.0f));
      const simd::vf y = x * m * simd::reciprocal(m + simd::splat(2.0f));
      return x > lim ? x : y;
    });
  } else {
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      const T x = p[i], e = std::exp(std::min(x, T(20))), m = e * (e + T(2));
      p[i] = x > T(20) ? x : x * m / (m + T(2));
    }
  }
}

/// SiLU x * sigmoid(x) = x / (1 + e^-x) over a contiguous range (float32: simd::exp and
/// simd::reciprocal).
template <class T>
void silu_range(T* p, std::ptrdiff_t n) {
  if constexpr (std::is_same_v<T, float>) {
    simd::transform(p, n, [&](simd::vf x) { return x * simd::reciprocal(simd::splat(1.0f) + simd::exp(-x)); });
  } else {
    for (std::ptrdiff_t i = 0; i < n; ++i) p[i] = p[i] / (T(1) + std::exp(-p[i]));
  }
}

/// Exact GELU: 0.5 x (1 + erf(x / sqrt 2)).
template <class T>
inline T gelu_scalar(T x) {
  return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
}

inline simd::vf gelu_vec(simd::vf x) {
  return simd::splat(0.5f) * x * (simd::splat(1.0f) + simd::erf(x * simd::splat(0.70710678118654752440f)));
}

/// GELU over a contiguous range (float32: simd::erf, absolute error < 3e-7).
template <class T>
void gelu_range(T* p, std::ptrdiff_t n) {
  if constexpr (std::is_same_v<T, float>)
    simd::transform(p, n, gelu_vec);
  else
    for (std::ptrdiff_t i = 0; i < n; ++i) p[i] = gelu_scalar(p[i]);
}

/// f(range) over n values in place, on the pool from 16 K values on (below, not worth waking it).
/// Values stored in a half type S go through range (a float32 one) in runs widened into scratch
/// and rounded once on the way back (float_runs, elementwise.inl): no float32 copy of the tensor.
template <class S, class F>
void activation_(S* p, std::ptrdiff_t n, F range) {
  auto on = [&](S* q, std::ptrdiff_t m) {
    if constexpr (is_half_v<S>)
      float_runs(q, q, m, [&](float* v, std::ptrdiff_t len, std::ptrdiff_t) { range(v, len); });
    else
      range(q, m);
  };
  if (n < (1 << 14)) return on(p, n);
  parallel_for(n, [&](std::ptrdiff_t b, std::ptrdiff_t e) { on(p + b, e - b); });
}

template <class S, std::size_t N>
void mish_(Tensor<S, N, Cpu>& x) {
  activation_(x.data(), static_cast<std::ptrdiff_t>(x.size()), mish_range<compute_t<S>>);
}
template <class S, std::size_t N>
void silu_(Tensor<S, N, Cpu>& x) {
  activation_(x.data(), static_cast<std::ptrdiff_t>(x.size()), silu_range<compute_t<S>>);
}
template <class S, std::size_t N>
void gelu_(Tensor<S, N, Cpu>& x) {
  activation_(x.data(), static_cast<std::ptrdiff_t>(x.size()), gelu_range<compute_t<S>>);
}

/// GEGLU: x (..., 2D) -> (..., D) = a * GELU(gate) with a = first half, gate = second half; rows in
/// parallel, each row's gate through gelu_range and then multiplied by a. In a half type S the
/// row goes in runs of 512: gate and a widened into float32 scratch, the product rounded once as
/// it is stored (the float32 result on the widened input, rounded once, bit for bit).
template <class S, std::size_t N>
Tensor<S, N, Cpu> geglu(const Tensor<S, N, Cpu>& x) {
  static_assert(N >= 2, "geglu: x is (rows..., 2D)");
  const std::ptrdiff_t R = static_cast<std::ptrdiff_t>(leading_rows(x.shape())), D = x.shape(N - 1) / 2;
  auto y = Tensor<S, N, Cpu>::from_shape(with_last(x.shape(), x.shape(N - 1) / 2));
  parallel_for(R, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    for (std::ptrdiff_t r = first; r < last; ++r) {
      const S* a = x.data() + r * 2 * D;
      S* yr = y.data() + r * D;
      if constexpr (is_half_v<S>) {
        constexpr std::ptrdiff_t kRun = 512;
        alignas(64) float g[kRun], av[kRun];
        for (std::ptrdiff_t d0 = 0; d0 < D; d0 += kRun) {
          const std::ptrdiff_t len = std::min(kRun, D - d0);
          half_io::load_row(a + D + d0, g, len);
          gelu_range(g, len);
          half_io::load_row(a + d0, av, len);
          for (std::ptrdiff_t d = 0; d < len; ++d) g[d] *= av[d];
          half_io::store_row(g, yr + d0, len);
        }
      } else {
        std::copy(a + D, a + 2 * D, yr);
        gelu_range(yr, D);
        for (std::ptrdiff_t d = 0; d < D; ++d) yr[d] *= a[d];
      }
    }
  });
  return y;
}
