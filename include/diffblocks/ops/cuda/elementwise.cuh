#pragma once
// The Cuda device's element-wise, layout and small ops: the same functions as ops/cpu/ops.hpp
// and ops/cpu/sequence_ops.hpp, in the same float32 order of operations (results agree to
// rounding: nvcc contracts a*b+c into fused multiply-adds, like g++ does with -march=native).
#include <cmath>
#include <cstdint>
#include <vector>

#include "diffblocks/ops/cuda/common.cuh"

namespace diffblocks {
namespace ops {

namespace cuda_detail {

/// Mish as the CPU's mish_range: n = e^x (e^x + 2), mish = x n / (n + 2); x above 20 passes
/// through (torch's softplus threshold).
__device__ inline float mish(float x) {
  if (x > 20.0f) return x;
  const float e = expf(x);
  const float n = e * (e + 2.0f);
  return x * n / (n + 2.0f);
}
__device__ inline float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ inline float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f)); }

}  // namespace cuda_detail

// ---- creation ----------------------------------------------------------------------------------

template <class T, std::size_t N>
Tensor<T, N, Cuda> empty(Cuda, const std::array<std::size_t, N>& shape) {
  return Tensor<T, N, Cuda>(shape);
}

template <class T, std::size_t N>
Tensor<T, N, Cuda> zeros(Cuda, const std::array<std::size_t, N>& shape) {
  Tensor<T, N, Cuda> t(shape);
  if (t.size()) DIFFBLOCKS_CUDA_CHECK(cudaMemsetAsync(t.data(), 0, t.size() * sizeof(T), cuda::stream()));
  return t;
}

template <class T, std::size_t N>
Tensor<T, N, Cuda> full(Cuda, const std::array<std::size_t, N>& shape, T value) {
  Tensor<T, N, Cuda> t(shape);
  T* p = t.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(t.size()), [=] __device__(cuda_detail::index_t i) { p[i] = value; });
  return t;
}

// ---- activations -------------------------------------------------------------------------------

template <class T, std::size_t N>
void mish_(Cuda, Tensor<T, N, Cuda>& x) {
  T* p = x.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(x.size()),
                        [=] __device__(cuda_detail::index_t i) { p[i] = cuda_detail::mish(p[i]); });
}

template <class T, std::size_t N>
void silu_(Cuda, Tensor<T, N, Cuda>& x) {
  T* p = x.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(x.size()),
                        [=] __device__(cuda_detail::index_t i) { p[i] = cuda_detail::silu(p[i]); });
}

template <class T, std::size_t N>
void gelu_(Cuda, Tensor<T, N, Cuda>& x) {
  T* p = x.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(x.size()),
                        [=] __device__(cuda_detail::index_t i) { p[i] = cuda_detail::gelu(p[i]); });
}

/// GEGLU: x (..., 2D) -> (..., D) = a * GELU(gate), a = first half, gate = second half.
template <class T, std::size_t N>
Tensor<T, N, Cuda> geglu(Cuda, const Tensor<T, N, Cuda>& x) {
  static_assert(N >= 2, "geglu: x is (rows..., 2D)");
  const std::size_t R = leading_rows(x.shape()), D = x.shape(N - 1) / 2;
  Tensor<T, N, Cuda> y(with_last(x.shape(), D));
  const T* s = x.data();
  T* d = y.data();
  const cuda_detail::index_t Di = static_cast<cuda_detail::index_t>(D);
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(R), Di, [=] __device__(cuda_detail::index_t r, cuda_detail::index_t j) {
    d[r * Di + j] = s[r * 2 * Di + j] * cuda_detail::gelu(s[r * 2 * Di + Di + j]);
  });
  return y;
}

// ---- masks, biases, arithmetic -------------------------------------------------------------------

/// x[b, c, h, w] *= mask[b, 0, 0, w].
template <class T>
void mul_mask_(Cuda, Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& mask) {
  T* p = x.data();
  const T* m = mask.data();
  const cuda_detail::index_t CH = static_cast<cuda_detail::index_t>(x.shape(1) * x.shape(2)), W = x.shape(3);
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(x.shape(0)) * CH, W,
                              [=] __device__(cuda_detail::index_t r, cuda_detail::index_t w) { p[r * W + w] *= m[(r / CH) * W + w]; });
}

/// y = x * mask[b, 0, 0, w] as a new tensor.
template <class T>
Tensor<T, 4, Cuda> masked_copy(Cuda, const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& mask) {
  Tensor<T, 4, Cuda> y(x.shape());
  const T* s = x.data();
  T* d = y.data();
  const T* m = mask.data();
  const cuda_detail::index_t CH = static_cast<cuda_detail::index_t>(x.shape(1) * x.shape(2)), W = x.shape(3);
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(x.shape(0)) * CH, W, [=] __device__(cuda_detail::index_t r, cuda_detail::index_t w) {
    d[r * W + w] = s[r * W + w] * m[(r / CH) * W + w];
  });
  return y;
}

/// x[b, c, :, :] += bias[b, c].
template <class T>
void add_channel_bias_(Cuda, Tensor<T, 4, Cuda>& x, const Tensor<T, 2, Cuda>& bias) {
  T* p = x.data();
  const T* bv = bias.data();
  const cuda_detail::index_t HW = static_cast<cuda_detail::index_t>(x.shape(2) * x.shape(3));
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(x.shape(0) * x.shape(1)), HW,
                              [=] __device__(cuda_detail::index_t bc, cuda_detail::index_t j) { p[bc * HW + j] += bv[bc]; });
}

/// a += b (same shape).
template <class T, std::size_t N>
void add_(Cuda, Tensor<T, N, Cuda>& a, const Tensor<T, N, Cuda>& b) {
  T* pa = a.data();
  const T* pb = b.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(a.size()), [=] __device__(cuda_detail::index_t i) { pa[i] += pb[i]; });
}

/// x *= g[0], g read on the device (no synchronisation).
template <class T, std::size_t N>
void scale_(Cuda, Tensor<T, N, Cuda>& x, const Tensor<T, 1, Cuda>& g) {
  T* p = x.data();
  const T* gp = g.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(x.size()), [=] __device__(cuda_detail::index_t i) { p[i] *= gp[0]; });
}

template <class T, std::size_t N>
void mul_scalar_(Cuda, Tensor<T, N, Cuda>& x, T s) {
  T* p = x.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(x.size()), [=] __device__(cuda_detail::index_t i) { p[i] *= s; });
}

/// x = x * a + b.
template <class T, std::size_t N>
void affine_(Cuda, Tensor<T, N, Cuda>& x, T a, T b) {
  T* p = x.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(x.size()), [=] __device__(cuda_detail::index_t i) { p[i] = p[i] * a + b; });
}

/// x / d (a division, as torch).
template <class T, std::size_t N>
Tensor<T, N, Cuda> divide(Cuda, const Tensor<T, N, Cuda>& x, T d) {
  Tensor<T, N, Cuda> y(x.shape());
  const T* s = x.data();
  T* o = y.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(x.size()), [=] __device__(cuda_detail::index_t i) { o[i] = s[i] / d; });
  return y;
}

/// diffusers' keep-mask -> additive bias (1 - m) * -10000.
template <class T>
Tensor<T, 2, Cuda> keep_mask_to_bias(Cuda, const Tensor<T, 2, Cuda>& keep) {
  Tensor<T, 2, Cuda> y(keep.shape());
  const T* s = keep.data();
  T* o = y.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(keep.size()),
                        [=] __device__(cuda_detail::index_t i) { o[i] = (T(1) - s[i]) * T(-10000.0); });
  return y;
}

/// x[b, f, t] *= mask[b, 0, t] for (B, F, T) tensors.
template <class T>
void mul_mask3_(Cuda, Tensor<T, 3, Cuda>& x, const Tensor<T, 3, Cuda>& mask) {
  T* p = x.data();
  const T* m = mask.data();
  const cuda_detail::index_t F = x.shape(1), W = x.shape(2);
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(x.shape(0)) * F, W,
                              [=] __device__(cuda_detail::index_t r, cuda_detail::index_t w) { p[r * W + w] *= m[(r / F) * W + w]; });
}

// ---- layout ---------------------------------------------------------------------------------------

/// cat([a, b], dim=1).
template <class T>
Tensor<T, 4, Cuda> concat_channels(Cuda, const Tensor<T, 4, Cuda>& a, const Tensor<T, 4, Cuda>& b) {
  const std::size_t B = a.shape(0), Ca = a.shape(1), Cb = b.shape(1), HW = a.shape(2) * a.shape(3);
  Tensor<T, 4, Cuda> y({B, Ca + Cb, a.shape(2), a.shape(3)});
  cuda_detail::copy_rows(y.data(), (Ca + Cb) * HW, a.data(), Ca * HW, Ca * HW, B);
  cuda_detail::copy_rows(y.data() + Ca * HW, (Ca + Cb) * HW, b.data(), Cb * HW, Cb * HW, B);
  return y;
}

/// x[:, c0:c1].
template <class T>
Tensor<T, 4, Cuda> slice_channels(Cuda, const Tensor<T, 4, Cuda>& x, std::size_t c0, std::size_t c1) {
  const std::size_t B = x.shape(0), C = x.shape(1), HW = x.shape(2) * x.shape(3);
  Tensor<T, 4, Cuda> y({B, c1 - c0, x.shape(2), x.shape(3)});
  cuda_detail::copy_rows(y.data(), (c1 - c0) * HW, x.data() + c0 * HW, C * HW, (c1 - c0) * HW, B);
  return y;
}

/// cat([a, b], dim=-1) for (B, Da) and (B, Db).
template <class T>
Tensor<T, 2, Cuda> concat_cols(Cuda, const Tensor<T, 2, Cuda>& a, const Tensor<T, 2, Cuda>& b) {
  const std::size_t B = a.shape(0), Da = a.shape(1), Db = b.shape(1);
  Tensor<T, 2, Cuda> y({B, Da + Db});
  cuda_detail::copy_rows(y.data(), Da + Db, a.data(), Da, Da, B);
  cuda_detail::copy_rows(y.data() + Da, Da + Db, b.data(), Db, Db, B);
  return y;
}

/// mask[..., ::2] (B, 1, 1, W) -> (B, 1, 1, ceil(W / 2)).
template <class T>
Tensor<T, 4, Cuda> subsample_time(Cuda, const Tensor<T, 4, Cuda>& mask) {
  const std::size_t B = mask.shape(0), W = mask.shape(3), Wo = (W + 1) / 2;
  Tensor<T, 4, Cuda> y({B, 1, 1, Wo});
  const T* s = mask.data();
  T* d = y.data();
  const cuda_detail::index_t Wi = W, Woi = Wo;
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(B), Woi,
                              [=] __device__(cuda_detail::index_t b, cuda_detail::index_t w) { d[b * Woi + w] = s[b * Wi + 2 * w]; });
  return y;
}

/// Same data, new shape (a device copy; the sizes agree, the caller checks).
template <class T, std::size_t M, std::size_t N>
Tensor<T, M, Cuda> reshape(Cuda, const Tensor<T, N, Cuda>& x, const std::array<std::size_t, M>& shape) {
  Tensor<T, M, Cuda> y(shape);
  if (y.size())
    DIFFBLOCKS_CUDA_CHECK(
        cudaMemcpyAsync(y.data(), x.data(), y.size() * sizeof(T), cudaMemcpyDeviceToDevice, cuda::stream()));
  return y;
}

/// x (B, C, T) zero-padded or cropped along time to `frames`.
template <class T>
Tensor<T, 3, Cuda> resize_time(Cuda, const Tensor<T, 3, Cuda>& x, std::size_t frames) {
  Tensor<T, 3, Cuda> y({x.shape(0), x.shape(1), frames});
  const T* s = x.data();
  T* d = y.data();
  const cuda_detail::index_t W = x.shape(2), F = frames;
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(x.shape(0) * x.shape(1)), F,
                              [=] __device__(cuda_detail::index_t r, cuda_detail::index_t t) { d[r * F + t] = t < W ? s[r * W + t] : T(0); });
  return y;
}

/// dst[:, c] = src (B, H, W).
template <class T>
void set_channel_(Cuda, Tensor<T, 4, Cuda>& dst, std::size_t c, const Tensor<T, 3, Cuda>& src) {
  const std::size_t C = dst.shape(1), HW = dst.shape(2) * dst.shape(3);
  cuda_detail::copy_rows(dst.data() + c * HW, C * HW, src.data(), HW, HW, dst.shape(0));
}

/// dst[b, c, h, :] = v[b, h] (a per-row vector repeated over time).
template <class T>
void set_channel_repeat_time_(Cuda, Tensor<T, 4, Cuda>& dst, std::size_t c, const Tensor<T, 2, Cuda>& v) {
  const cuda_detail::index_t C = dst.shape(1), H = dst.shape(2), W = dst.shape(3), ci = c;
  T* d = dst.data();
  const T* s = v.data();
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(dst.shape(0)) * H, W, [=] __device__(cuda_detail::index_t bh, cuda_detail::index_t w) {
    const cuda_detail::index_t b = bh / H, h = bh % H;
    d[((b * C + ci) * H + h) * W + w] = s[b * H + h];
  });
}

/// dst[b, c, :, w] = src[b, i, w] (a frame-level feature repeated over frequency).
template <class T>
void set_channel_repeat_freq_(Cuda, Tensor<T, 4, Cuda>& dst, std::size_t c, const Tensor<T, 3, Cuda>& src,
                              std::size_t i) {
  const cuda_detail::index_t C = dst.shape(1), H = dst.shape(2), W = dst.shape(3), ci = c, n = src.shape(1), ii = i;
  T* d = dst.data();
  const T* s = src.data();
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(dst.shape(0)) * H, W, [=] __device__(cuda_detail::index_t bh, cuda_detail::index_t w) {
    const cuda_detail::index_t b = bh / H, h = bh % H;
    d[((b * C + ci) * H + h) * W + w] = s[(b * n + ii) * W + w];
  });
}

/// out[b] = table[ids[b]] (ids already range-checked): one device copy per row, ids stay on the host.
template <class T>
Tensor<T, 2, Cuda> gather_rows(Cuda, const Tensor<T, 2, Cuda>& table, const std::vector<std::int64_t>& ids) {
  const std::size_t D = table.shape(1);
  Tensor<T, 2, Cuda> y({ids.size(), D});
  for (std::size_t b = 0; b < ids.size(); ++b)
    if (D)
      DIFFBLOCKS_CUDA_CHECK(cudaMemcpyAsync(y.data() + b * D, table.data() + static_cast<std::size_t>(ids[b]) * D,
                                            D * sizeof(T), cudaMemcpyDeviceToDevice, cuda::stream()));
  return y;
}

/// Index of the first NaN/Inf, or -1. Synchronises the current stream (the answer is a host value).
/// While the stream is being captured into a CUDA graph nothing can be read back: the answer is
/// -1 and the check is the capturer's to make (the graph sampler checks the inputs in its eager
/// first step and the sample on the device, see sampling/gradtts_cuda_graph.cuh).
template <class T, std::size_t N>
std::ptrdiff_t find_non_finite(Cuda, const Tensor<T, N, Cuda>& x) {
  if (!x.size()) return -1;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  DIFFBLOCKS_CUDA_CHECK(cudaStreamIsCapturing(cuda::stream(), &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return -1;
  auto found = cuda_detail::scratch<unsigned long long>(1);
  unsigned long long* f = found.data();
  DIFFBLOCKS_CUDA_CHECK(cudaMemsetAsync(f, 0xff, sizeof(unsigned long long), cuda::stream()));
  const T* p = x.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(x.size()), [=] __device__(cuda_detail::index_t i) {
    if (!isfinite(p[i])) atomicMin(f, static_cast<unsigned long long>(i));
  });
  unsigned long long host = 0;
  DIFFBLOCKS_CUDA_CHECK(cudaMemcpyAsync(&host, f, sizeof host, cudaMemcpyDeviceToHost, cuda::stream()));
  cuda::synchronize();
  return host == ~0ull ? std::ptrdiff_t(-1) : static_cast<std::ptrdiff_t>(host);
}

/// The first element, read on the host (synchronises the current stream).
template <class T, std::size_t N>
T first_value(Cuda, const Tensor<T, N, Cuda>& x) {
  T v{};
  DIFFBLOCKS_CUDA_CHECK(cudaMemcpyAsync(&v, x.data(), sizeof(T), cudaMemcpyDeviceToHost, cuda::stream()));
  cuda::synchronize();
  return v;
}

// ---- token sequences ----------------------------------------------------------------------------

namespace cuda_detail {

constexpr int kTile = 32;

/// out[b] = in[b]^T for a batch of (rows x cols) matrices, through a padded shared tile.
template <class T>
__global__ void transpose_kernel(const T* in, T* out, index_t rows, index_t cols) {
  __shared__ T tile[kTile][kTile + 1];
  const index_t b = blockIdx.z;
  in += b * rows * cols;
  out += b * rows * cols;
  const index_t c0 = static_cast<index_t>(blockIdx.x) * kTile, r0 = static_cast<index_t>(blockIdx.y) * kTile;
  for (int k = threadIdx.y; k < kTile; k += blockDim.y) {
    const index_t r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[k][threadIdx.x] = in[r * cols + c];
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += blockDim.y) {
    const index_t c = c0 + k, r = r0 + threadIdx.x;  // out row c, column r
    if (r < rows && c < cols) out[c * rows + r] = tile[threadIdx.x][k];
  }
}

template <class T>
void transpose(const T* in, T* out, std::size_t batch, std::size_t rows, std::size_t cols) {
  if (batch == 0 || rows == 0 || cols == 0) return;
  const dim3 grid(static_cast<unsigned>((cols + kTile - 1) / kTile), static_cast<unsigned>((rows + kTile - 1) / kTile),
                  static_cast<unsigned>(batch));
  launch("transpose_kernel", transpose_kernel<T>, grid, dim3(kTile, 8), 0, in, out, static_cast<index_t>(rows),
         static_cast<index_t>(cols));
}

}  // namespace cuda_detail

/// (B, C, H, W) -> (B, H*W, C).
template <class T>
Tensor<T, 3, Cuda> nchw_to_tokens(Cuda, const Tensor<T, 4, Cuda>& x) {
  const std::size_t B = x.shape(0), C = x.shape(1), N = x.shape(2) * x.shape(3);
  Tensor<T, 3, Cuda> y({B, N, C});
  cuda_detail::transpose(x.data(), y.data(), B, C, N);
  return y;
}

/// (B, H*W, C) -> (B, C, H, W).
template <class T>
Tensor<T, 4, Cuda> tokens_to_nchw(Cuda, const Tensor<T, 3, Cuda>& x, std::size_t H, std::size_t W) {
  const std::size_t B = x.shape(0), N = x.shape(1), C = x.shape(2);
  Tensor<T, 4, Cuda> y({B, C, H, W});
  cuda_detail::transpose(x.data(), y.data(), B, N, C);
  return y;
}

/// Frame mask (B, 1, 1, W) -> keep-mask (B, H*W) over nchw_to_tokens' tokens.
template <class T>
Tensor<T, 2, Cuda> frame_mask_to_tokens(Cuda, const Tensor<T, 4, Cuda>& mask, std::size_t H) {
  const std::size_t B = mask.shape(0), W = mask.shape(3);
  Tensor<T, 2, Cuda> y({B, H * W});
  const T* s = mask.data();
  T* d = y.data();
  const cuda_detail::index_t Wi = W, HW = H * W;
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(B), HW,
                              [=] __device__(cuda_detail::index_t b, cuda_detail::index_t j) { d[b * HW + j] = s[b * Wi + j % Wi]; });
  return y;
}

/// [mean_L(x) + pos, x] along the sequence: (B, L, C) -> (B, L+1, C). The mean is a float32
/// sum in sequence order, as the CPU op (one thread per (b, c)).
template <class T>
Tensor<T, 3, Cuda> prepend_mean_token(Cuda, const Tensor<T, 3, Cuda>& x, const Tensor<T, 2, Cuda>& pos) {
  const std::size_t B = x.shape(0), L = x.shape(1), C = x.shape(2);
  Tensor<T, 3, Cuda> y({B, L + 1, C});
  const T* s = x.data();
  const T* ps = pos.data();
  T* d = y.data();
  const cuda_detail::index_t Li = L, Ci = C;
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(B), Ci, [=] __device__(cuda_detail::index_t b, cuda_detail::index_t c) {
    T sum = 0;
    for (cuda_detail::index_t l = 0; l < Li; ++l) sum += s[(b * Li + l) * Ci + c];
    d[b * (Li + 1) * Ci + c] = sum / static_cast<T>(Li) + ps[c];
  });
  cuda_detail::copy_rows(y.data() + C, (L + 1) * C, x.data(), L * C, L * C, B);
  return y;
}

/// x[:, 0, :] -> (B, C).
template <class T>
Tensor<T, 2, Cuda> first_token(Cuda, const Tensor<T, 3, Cuda>& x) {
  const std::size_t B = x.shape(0), N = x.shape(1), C = x.shape(2);
  Tensor<T, 2, Cuda> y({B, C});
  cuda_detail::copy_rows(y.data(), C, x.data(), N * C, C, B);
  return y;
}

/// Nearest-neighbour resize with torch's rule src = min(floor(dst * (in / out)), in - 1), the
/// scale in float32.
template <class T>
Tensor<T, 4, Cuda> upsample_nearest(Cuda, const Tensor<T, 4, Cuda>& x, std::size_t Ho, std::size_t Wo) {
  const std::size_t B = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
  Tensor<T, 4, Cuda> y({B, C, Ho, Wo});
  if (!y.size()) return y;
  const float sy = static_cast<float>(H) / static_cast<float>(Ho), sx = static_cast<float>(W) / static_cast<float>(Wo);
  const T* s = x.data();
  T* d = y.data();
  const cuda_detail::index_t Hi = H, Wi = W, Hoi = Ho, Woi = Wo;
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(B * C), Hoi * Woi, [=] __device__(cuda_detail::index_t p, cuda_detail::index_t j) {
    const cuda_detail::index_t r = j / Woi, c = j % Woi;
    const cuda_detail::index_t iy = min(static_cast<cuda_detail::index_t>(floorf(static_cast<float>(r) * sy)), Hi - 1);
    const cuda_detail::index_t ix = min(static_cast<cuda_detail::index_t>(floorf(static_cast<float>(c) * sx)), Wi - 1);
    d[p * Hoi * Woi + j] = s[p * Hi * Wi + iy * Wi + ix];
  });
  return y;
}

}  // namespace ops
}  // namespace diffblocks
