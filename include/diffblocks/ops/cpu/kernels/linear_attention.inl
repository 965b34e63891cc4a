// Kernel source, compiled once per instruction set (see simd.inl's header).
//
// Grad-TTS LinearAttention: the attention core alone (linear_attention) and the whole block
// with its 1x1 convolutions folded together (linear_attention_block).

namespace detail {
/// dst[0..n) = softmax(src[0..n)) (max-subtracted, normaliser summed in double); src may be dst.
/// Grad-TTS LinearAttention's softmax of k over all positions.
template <class T>
void softmax_positions(const T* src, T* dst, std::ptrdiff_t n) {
  if (n <= 0) return;
  const T mx = *std::max_element(src, src + n);
  double total = 0;
  for (std::ptrdiff_t i = 0; i < n; ++i) total += dst[i] = std::exp(src[i] - mx);
  const T scale = static_cast<T>(1.0 / total);
  for (std::ptrdiff_t i = 0; i < n; ++i) dst[i] *= scale;
}

/// The float version on simd::exp: the sum is kept per vector lane in float over runs of 256
/// values and the runs are added in double (a scalar exp and a double cast of every value took
/// a quarter of a 64-channel LinearAttention).
inline void softmax_positions(const float* src, float* dst, std::ptrdiff_t n) {
  namespace v = simd;
  constexpr std::ptrdiff_t L = v::kFloats, kRun = 256;
  if (n <= 0) return;
  const std::ptrdiff_t nv = n / L * L;
  float mx = -std::numeric_limits<float>::infinity();
  if (nv) {
    v::vf m = v::load(src);
    for (std::ptrdiff_t i = L; i < nv; i += L) m = v::max(m, v::load(src + i));
    for (int l = 0; l < L; ++l) mx = std::max(mx, m[l]);
  }
  for (std::ptrdiff_t i = nv; i < n; ++i) mx = std::max(mx, src[i]);
  const v::vf vmx = v::splat(mx);
  double total = 0;
  for (std::ptrdiff_t i = 0; i < nv;) {
    v::vf acc{};
    for (const std::ptrdiff_t end = std::min(nv, i + kRun); i < end; i += L) {
      const v::vf e = v::exp(v::load(src + i) - vmx);
      v::store(dst + i, e);
      acc += e;
    }
    float run = 0;
    for (int l = 0; l < L; ++l) run += acc[l];
    total += run;
  }
  for (std::ptrdiff_t i = nv; i < n; ++i) total += dst[i] = std::exp(src[i] - mx);
  const float scale = static_cast<float>(1.0 / total);
  v::transform(dst, n, [&](v::vf x) { return x * v::splat(scale); });
}
}  // namespace detail

/// Grad-TTS linear attention core. qkv (B, 3*heads*dh, H, W), channel = which*heads*dh + head*dh + c.
/// k is softmaxed over all H*W positions; context = k v^T (dh x dh); out = context^T q.
/// Returns (B, heads*dh, H, W). No mask and no 1/sqrt(d) scale, as in the original.
template <class T>
Tensor<T, 4, Cpu> linear_attention(const Tensor<T, 4, Cpu>& qkv, int heads, int dim_head) {
  const std::ptrdiff_t B = qkv.shape(0), N = static_cast<std::ptrdiff_t>(qkv.shape(2) * qkv.shape(3));
  const std::ptrdiff_t hidden = static_cast<std::ptrdiff_t>(heads) * dim_head;
  auto out = Tensor<T, 4, Cpu>::from_shape({qkv.shape(0), static_cast<std::size_t>(hidden), qkv.shape(2), qkv.shape(3)});
  parallel_for(B * heads, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    memory::Buffer<T> ksm(static_cast<std::size_t>(dim_head) * N), ctx(static_cast<std::size_t>(dim_head) * dim_head);
    for (std::ptrdiff_t bh = first; bh < last; ++bh) {
      const std::ptrdiff_t b = bh / heads, h = bh % heads;
      const T* base = qkv.data() + b * 3 * hidden * N;
      const T* q = base + (h * dim_head) * N;
      const T* k = base + (hidden + h * dim_head) * N;
      const T* v = base + (2 * hidden + h * dim_head) * N;
      for (int d = 0; d < dim_head; ++d) detail::softmax_positions(k + d * N, ksm.data() + d * N, N);
      // context[d, e] = sum_n k[d, n] v[e, n]
      gemm_bt<T>(dim_head, dim_head, static_cast<int>(N), ksm.data(), N, v, N, ctx.data(), dim_head);
      // out[e, n] = sum_d context[d, e] q[d, n]
      T* o = out.data() + (b * hidden + h * dim_head) * N;
      gemm_at<T>(dim_head, static_cast<int>(N), dim_head, ctx.data(), dim_head, q, N, o, N);
    }
  });
  return out;
}

/// The whole Grad-TTS LinearAttention block, to_out(linear_attention(to_qkv(x))), computed with
/// the same mathematics in fewer operations. The attention is linear in q and v, so with
/// k~ = softmax_n(W_k x) (per row, over all positions) and per head h
///   context_h = k~_h v_h^T = (k~_h x^T) W_v,h^T                        (dh x dh)
///   y = sum_h W_out,h context_h^T W_q,h x + b = Mix x + b,  Mix = sum_h W_out,h context_h^T W_q,h
/// neither q nor v is ever formed over the positions: per position it costs the k projection,
/// the k~ x^T product and one C x C mix, instead of the q, k, v projections, the two attention
/// products and to_out (2x fewer multiply-adds at C = 64, 1.5x at 128; the 1x1 convolutions
/// around the attention were ~25 % of an Origin forward's work after Winograd). It also never
/// holds the 3 x hidden-channel qkv tensor. x (B, C, H, W); w_qkv (3*heads*dh, C, 1, 1) with
/// channel = which*heads*dh + head*dh + c; w_out (C_out, heads*dh, 1, 1); b_out (C_out) or empty.
///
/// x and y may be stored in a half type S (the weights and everything computed are T): x is then
/// widened a chunk of positions (or a panel of rows) at a time into each thread's scratch and y
/// rounded as it is stored, so neither has a float32 copy; at the Origin's top level that copy
/// and y's were the peak of a half model's forward (4 x the half tensor).
template <class S, class T = compute_t<S>>
Tensor<S, 4, Cpu> linear_attention_block(const Tensor<S, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w_qkv,
                                         const Tensor<T, 4, Cpu>& w_out, const Tensor<T, 1, Cpu>& b_out, int heads,
                                         int dim_head) {
  constexpr bool kStored = !std::is_same<S, T>::value;
  const int B = static_cast<int>(x.shape(0)), C = static_cast<int>(x.shape(1));
  const int H = static_cast<int>(x.shape(2)), W = static_cast<int>(x.shape(3));
  const int hidden = heads * dim_head, Cout = static_cast<int>(w_out.shape(0));
  const std::ptrdiff_t N = static_cast<std::ptrdiff_t>(H) * W;
  auto y = Tensor<S, 4, Cpu>::from_shape({x.shape(0), static_cast<std::size_t>(Cout), x.shape(2), x.shape(3)});
  if (B == 0 || N == 0) return y;
  const T* wq = w_qkv.data();
  const T* wk = wq + static_cast<std::ptrdiff_t>(hidden) * C;
  const T* wv = wk + static_cast<std::ptrdiff_t>(hidden) * C;
  // k~ is made and used in chunks of kc rows (one packed column block), so neither the whole
  // k~ (hidden x N: twice x at Grad-TTS's 128 hidden channels over 64) nor a packed x^T is ever
  // held: at T = 512 they were 30 of the 50 MiB an Origin forward held at its peak, here.
  const int kc = std::min(hidden, packed::block_cols<T>());
  memory::Buffer<T> ksm(static_cast<std::size_t>(kc) * N), P(static_cast<std::size_t>(hidden) * C),
      PT(static_cast<std::size_t>(C) * hidden), mix(static_cast<std::size_t>(Cout) * C),
      ctx(static_cast<std::size_t>(dim_head) * dim_head), g(static_cast<std::size_t>(dim_head) * C),
      kt(static_cast<std::size_t>(packed::packed_b_size<T>(static_cast<int>(N), kc)));
  constexpr int R = packed::kPanelRows;
  // A stored (half) x: f(xc, scratch, p0, n) on chunks of n positions from p0, shared out over the
  // threads, xc the chunk widened (C x n) and `scratch` extra x n values of the thread's own.
  auto chunks = [&](const S* xb, int extra, auto&& f) {
    const std::ptrdiff_t n_max = std::clamp<std::ptrdiff_t>((std::ptrdiff_t{1} << 18) / (C + extra), 64, N);
    parallel_for((N + n_max - 1) / n_max, [&](std::ptrdiff_t j0, std::ptrdiff_t j1) {
      memory::Buffer<T> xc(static_cast<std::size_t>(C) * n_max), sc(static_cast<std::size_t>(extra) * n_max);
      for (std::ptrdiff_t j = j0; j < j1; ++j) {
        const std::ptrdiff_t p0 = j * n_max, n = std::min(n_max, N - p0);
        for (int c = 0; c < C; ++c) half_io::load_row(xb + c * N + p0, xc.data() + c * n, n);
        f(xc.data(), sc.data(), p0, n);
      }
    });
  };
  memory::Buffer<T> wpack;  // a stored x: the weight of a chunked 1x1 product, packed once
  for (int b = 0; b < B; ++b) {
    const S* xb = x.data() + static_cast<std::ptrdiff_t>(b) * C * N;
    for (int r0 = 0; r0 < hidden; r0 += kc) {
      const int nr = std::min(kc, hidden - r0);
      // k = W_k x for rows [r0, r0 + nr), then softmax over the positions of every row, in place.
      if constexpr (kStored) {
        wpack.resize(static_cast<std::size_t>(packed::packed_size(nr, C)));
        packed::pack_a(nr, C, wk + static_cast<std::ptrdiff_t>(r0) * C, C, wpack.data());
        chunks(xb, 0, [&](const T* xc, T*, std::ptrdiff_t p0, std::ptrdiff_t n) {
          patch_gemm_packed<T>(xc, 1, C, 1, static_cast<int>(n), wpack.data(), nr, nullptr,
                               pointwise_grid(1, static_cast<int>(n)), ksm.data() + p0, N);
        });
      } else {
        pointwise_conv<T>(xb, 1, C, H, W, wk + static_cast<std::ptrdiff_t>(r0) * C, nr, nullptr, ksm.data(), false);
      }
      parallel_for(nr, [&](std::ptrdiff_t q0, std::ptrdiff_t q1) {
        for (std::ptrdiff_t r = q0; r < q1; ++r) detail::softmax_positions(ksm.data() + r * N, ksm.data() + r * N, N);
      });
      // P^T[:, r0 : r0 + nr] = x k~^T (C x nr), the positions the long reduction, on the packed
      // kernel: k~^T packed (threads take runs of positions), then each thread multiplies its
      // own panels of x's rows, read in place, into it. Each element sums its N products in the
      // same order as k~ x^T would: the result is P's, bit for bit.
      parallel_for((N + 255) / 256, [&](std::ptrdiff_t c0, std::ptrdiff_t c1) {
        packed::pack_b_transposed<T>(static_cast<int>(N), nr, ksm.data(), N, static_cast<int>(c0 * 256),
                                     static_cast<int>(std::min(N, c1 * 256)), kt.data());
      });
      parallel_for((C + R - 1) / R, [&](std::ptrdiff_t p0, std::ptrdiff_t p1) {
        const int m0 = static_cast<int>(p0) * R, m1 = std::min(C, static_cast<int>(p1) * R);
        if constexpr (kStored) {
          // A panel of R rows at a time, in runs of kRun positions widened (the packed k~^T's rows
          // of a run are contiguous: nr <= one column block), the run's products accumulated.
          constexpr std::ptrdiff_t kRun = 4096, NC = packed::block_cols<T>();
          memory::Buffer<T> rows(static_cast<std::size_t>(R * std::min(kRun, N)));
          for (int m = m0; m < m1; m += R) {
            const int nm = std::min(R, m1 - m);
            for (std::ptrdiff_t k0 = 0; k0 < N; k0 += kRun) {
              const std::ptrdiff_t kn = std::min(kRun, N - k0);
              for (int i = 0; i < nm; ++i)
                half_io::load_row(xb + static_cast<std::ptrdiff_t>(m + i) * N + k0, rows.data() + i * kn, kn);
              packed::gemm_rows_packed_b<T>(nm, nr, static_cast<int>(kn), rows.data(), kn, kt.data() + k0 * NC,
                                            PT.data() + static_cast<std::ptrdiff_t>(m) * hidden + r0, hidden, k0 > 0);
            }
          }
        } else {
          packed::gemm_rows_packed_b<T>(m1 - m0, nr, static_cast<int>(N), xb + static_cast<std::ptrdiff_t>(m0) * N, N,
                                        kt.data(), PT.data() + static_cast<std::ptrdiff_t>(m0) * hidden + r0, hidden);
        }
      });
    }
    for (int h = 0; h < hidden; ++h)
      for (int c = 0; c < C; ++c) P[static_cast<std::size_t>(h) * C + c] = PT[static_cast<std::size_t>(c) * hidden + h];
    // Mix = sum_h W_out,h context_h^T W_q,h (C_out x C: small products, serial).
    std::fill(mix.begin(), mix.end(), T(0));
    for (int h = 0; h < heads; ++h) {
      // context_h[d][e] = sum_c P[h*dh + d][c] W_v[h*dh + e][c]
      gemm_bt<T>(dim_head, dim_head, C, P.data() + h * dim_head * C, C, wv + h * dim_head * C, C, ctx.data(),
                      dim_head);
      // g = context_h^T W_q,h (dh x C)
      gemm_at<T>(dim_head, C, dim_head, ctx.data(), dim_head, wq + h * dim_head * C, C, g.data(), C);
      // Mix += W_out[:, h*dh : (h+1)*dh] g
      gemm<T>(Cout, C, dim_head, w_out.data() + h * dim_head, hidden, g.data(), C, mix.data(), C,
                   /*accumulate=*/true);
    }
    const T* bias = b_out.size() ? b_out.data() : nullptr;
    S* yb = y.data() + static_cast<std::ptrdiff_t>(b) * Cout * N;
    if constexpr (kStored) {
      wpack.resize(static_cast<std::size_t>(packed::packed_size(Cout, C)));
      packed::pack_a(Cout, C, mix.data(), C, wpack.data());
      chunks(xb, Cout, [&](const T* xc, T* yc, std::ptrdiff_t p0, std::ptrdiff_t n) {
        patch_gemm_packed<T>(xc, 1, C, 1, static_cast<int>(n), wpack.data(), Cout, bias, pointwise_grid(1, static_cast<int>(n)),
                             yc, n);
        for (int c = 0; c < Cout; ++c) half_io::store_row(yc + c * n, yb + c * N + p0, n);
      });
    } else {
      pointwise_conv<T>(xb, 1, C, H, W, mix.data(), Cout, bias, yb, false);
    }
  }
  return y;
}

