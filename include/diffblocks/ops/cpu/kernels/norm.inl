// Kernel source, compiled once per instruction set (see simd.inl's header).
//
// GroupNorm (alone and fused with Grad-TTS's Mish and masks) and LayerNorm.

/// Mean and 1/sqrt(var + eps) of n contiguous values (biased variance, as torch), in one pass
/// over memory: chunks of 2048 values (L1-resident) get a two-pass mean and sum of squared
/// deviations in T (float32: in vector lanes, simd::sum, so a chunk's rounding error stays ~1e-7
/// relative, at twice the speed of widening to double), and the chunks are merged in double
/// with Chan et al.'s pairwise update, which is as stable as a global two-pass computation.
/// src may be stored in a half type S: each chunk is widened to T first.
template <class S, class T = compute_t<S>>
std::pair<double, double> moments(const S* src, std::ptrdiff_t n, double eps) {
  if (n == 0) return {0.0, 1.0 / std::sqrt(eps)};
  constexpr std::ptrdiff_t kChunk = 2048;
  double mean = 0.0, m2 = 0.0;
  std::ptrdiff_t count = 0;
  for (std::ptrdiff_t i = 0; i < n; i += kChunk) {
    const std::ptrdiff_t len = std::min(kChunk, n - i);
    const T* v;
    alignas(64) T wide[std::is_same<S, T>::value ? 1 : kChunk];
    if constexpr (std::is_same<S, T>::value) {
      v = src + i;
    } else {
      half_io::load_row(src + i, wide, len);
      v = wide;
    }
    T cmt, cm2t;
    if constexpr (std::is_same_v<T, float>) {
      cmt = simd::sum(v, len) / static_cast<T>(len);
      cm2t = simd::sum_sq_dev(v, len, cmt);
    } else {
      T s = 0, q = 0;
      for (std::ptrdiff_t j = 0; j < len; ++j) s += v[j];
      cmt = s / static_cast<T>(len);
      for (std::ptrdiff_t j = 0; j < len; ++j) q += (v[j] - cmt) * (v[j] - cmt);
      cm2t = q;
    }
    const double cm = static_cast<double>(cmt), cm2 = static_cast<double>(cm2t);
    const double delta = cm - mean, total = static_cast<double>(count + len);
    mean += delta * static_cast<double>(len) / total;
    m2 += cm2 + delta * delta * static_cast<double>(count) * static_cast<double>(len) / total;
    count += len;
  }
  return {mean, 1.0 / std::sqrt(m2 / static_cast<double>(n) + eps)};
}

/// Applies GroupNorm to x in place over (b, group) slices, then `post(ptr, len, b, c)` to every
/// normalised row of W values (rows are cache-resident when post runs: the fusion point for
/// the activation and the mask). x and src may be stored in a half type S: each row is then
/// normalised and post-processed in T in a row of scratch and rounded once as it is stored.
template <class T, class S, class Post>
void group_norm_apply_(Tensor<S, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma, const Tensor<T, 1, Cpu>& beta,
                       double eps, const S* src_all, Post post) {
  const std::ptrdiff_t B = x.shape(0), C = x.shape(1), HW = static_cast<std::ptrdiff_t>(x.shape(2) * x.shape(3));
  const std::ptrdiff_t W = x.shape(3), cpg = C / groups;
  parallel_for(B * groups, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    memory::Buffer<T> wide(std::is_same<S, T>::value ? 0 : static_cast<std::size_t>(W));
    for (std::ptrdiff_t bg = first; bg < last; ++bg) {
      const std::ptrdiff_t b = bg / groups, g = bg % groups;
      const S* src = src_all + (b * C + g * cpg) * HW;
      S* dst = x.data() + (b * C + g * cpg) * HW;
      const auto [mean, rstd] = moments<S, T>(src, cpg * HW, eps);
      for (std::ptrdiff_t c = 0; c < cpg; ++c) {
        const std::ptrdiff_t ch = g * cpg + c;
        const T scale = static_cast<T>(rstd * (gamma.size() ? static_cast<double>(gamma(ch)) : 1.0));
        const T shift = static_cast<T>((beta.size() ? static_cast<double>(beta(ch)) : 0.0) - mean * rstd *
                                       (gamma.size() ? static_cast<double>(gamma(ch)) : 1.0));
        for (std::ptrdiff_t r = 0; r < HW; r += W) {
          if constexpr (std::is_same<S, T>::value) {
            const T* s = src + c * HW + r;
            T* d = dst + c * HW + r;
            for (std::ptrdiff_t i = 0; i < W; ++i) d[i] = s[i] * scale + shift;
            post(d, W, b, ch);
          } else {
            T* d = wide.data();
            half_io::load_row(src + c * HW + r, d, W);
            for (std::ptrdiff_t i = 0; i < W; ++i) d[i] = d[i] * scale + shift;
            post(d, W, b, ch);
            half_io::store_row(d, dst + c * HW + r, W);
          }
        }
      }
    }
  });
}

/// torch.nn.functional.group_norm: G contiguous channel groups, biased variance over
/// (C/G, H, W), optional per-channel affine. x and the result stored in S (float32 or a half
/// type), gamma and beta in its compute type.
template <class S, class T = compute_t<S>>
Tensor<S, 4, Cpu> group_norm(const Tensor<S, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                             const Tensor<T, 1, Cpu>& beta, double eps) {
  auto y = Tensor<S, 4, Cpu>::from_shape(x.shape());
  group_norm_apply_(y, groups, gamma, beta, eps, x.data(), [](T*, std::ptrdiff_t, std::ptrdiff_t, std::ptrdiff_t) {});
  return y;
}

/// Grad-TTS Block's tail in one pass over each row: x = Mish(GroupNorm(x)) * mask (mask
/// (B, 1, 1, W)), in place. Same result as group_norm, mish_ and mul_mask_ in sequence. x may be
/// stored in a half type S (the rest in its compute type T): then rounded once, at the end.
template <class S, class T = compute_t<S>>
void group_norm_mish_mask_(Tensor<S, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                           const Tensor<T, 1, Cpu>& beta, double eps, const Tensor<T, 4, Cpu>& mask) {
  const std::ptrdiff_t W = x.shape(3);
  group_norm_apply_(x, groups, gamma, beta, eps, x.data(), [&](T* row, std::ptrdiff_t n, std::ptrdiff_t b, std::ptrdiff_t) {
    mish_range(row, n);
    const T* m = mask.data() + b * W;
    for (std::ptrdiff_t i = 0; i < n; ++i) row[i] *= m[i];
  });
}

/// Grad-TTS ResnetBlock's middle in one pass: x = (Mish(GroupNorm(x)) * mask + bias[b, c]) * mask,
/// i.e. block1's output plus the time bias, already masked as block2's convolution reads it.
/// Rounds exactly like the separate ops (multiply, add, multiply in that order); a half x once.
template <class S, class T = compute_t<S>>
void group_norm_mish_mask_bias_mask_(Tensor<S, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                                     const Tensor<T, 1, Cpu>& beta, double eps, const Tensor<T, 4, Cpu>& mask,
                                     const Tensor<T, 2, Cpu>& bias) {
  const std::ptrdiff_t W = x.shape(3), C = x.shape(1);
  group_norm_apply_(x, groups, gamma, beta, eps, x.data(), [&](T* row, std::ptrdiff_t n, std::ptrdiff_t b, std::ptrdiff_t c) {
    mish_range(row, n);
    const T* m = mask.data() + b * W;
    const T bv = bias.data()[b * C + c];
    for (std::ptrdiff_t i = 0; i < n; ++i) row[i] = (row[i] * m[i] + bv) * m[i];
  });
}

/// LayerNorm over the last dimension (biased variance; two passes over each row, the
/// row's moments from moments(), so each sum is short and vectorised). x may be stored in a half
/// type S (the result too): each row is then widened into scratch, normalised there in T and
/// rounded once as it is stored (the float32 result on the widened x, rounded, bit for bit).
template <class S, std::size_t N, class T = compute_t<S>>
Tensor<S, N, Cpu> layer_norm(const Tensor<S, N, Cpu>& x, const Tensor<T, 1, Cpu>& gamma,
                             const Tensor<T, 1, Cpu>& beta, double eps) {
  static_assert(N >= 2, "layer_norm: x is (rows..., D)");
  const std::ptrdiff_t R = static_cast<std::ptrdiff_t>(leading_rows(x.shape())), D = x.shape(N - 1);
  auto y = Tensor<S, N, Cpu>::from_shape(x.shape());
  auto normalise = [&](const T* s, T* d) {  // one row, s may be d
    const auto [mean, rstd] = moments(s, D, eps);
    const T m = static_cast<T>(mean), k = static_cast<T>(rstd);
    if (gamma.size())
      for (std::ptrdiff_t i = 0; i < D; ++i) d[i] = (s[i] - m) * k * gamma.data()[i] + beta.data()[i];
    else
      for (std::ptrdiff_t i = 0; i < D; ++i) d[i] = (s[i] - m) * k;
  };
  parallel_for(R, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    memory::Buffer<T> wide(std::is_same<S, T>::value ? 0 : static_cast<std::size_t>(D));
    for (std::ptrdiff_t r = first; r < last; ++r) {
      if constexpr (std::is_same<S, T>::value) {
        normalise(x.data() + r * D, y.data() + r * D);
      } else {
        half_io::load_row(x.data() + r * D, wide.data(), D);
        normalise(wide.data(), wide.data());
        half_io::store_row(wide.data(), y.data() + r * D, D);
      }
    }
  });
  return y;
}
