// Kernel source, compiled once per instruction set (see simd.inl's header).

/// W^T (W: out x in, row-major) laid out in the packed GEMM's column blocks, written to wt
/// (packed::packed_b_size(in, out) values); threads take whole blocks.
template <class T>
void pack_linear_weight(const T* w, int out, int in, T* wt) {
  constexpr int NC = packed::block_cols<T>();
  parallel_for((out + NC - 1) / NC, [&](std::ptrdiff_t b0, std::ptrdiff_t b1) {
    const int n0 = static_cast<int>(b0) * NC, n1 = std::min(out, static_cast<int>(b1) * NC);
    packed::pack_b_transposed<T>(in, n1 - n0, w + static_cast<std::ptrdiff_t>(n0) * in, in, 0, in,
                                 wt + static_cast<std::ptrdiff_t>(n0) * in);
  });
}

/// Values of prepare_linear's form.
template <class T>
std::ptrdiff_t prepared_linear_size(int out, int in) {
  return packed::packed_b_size<T>(in, out);
}

/// The prepared form of a Linear weight (out, in): its packed W^T, what linear() takes.
template <class T>
memory::WeightBuffer<T> prepare_linear(const T* w, int out, int in) {
  memory::WeightBuffer<T> wt(static_cast<std::size_t>(packed::packed_b_size<T>(in, out)));
  pack_linear_weight(w, out, in, wt.data());
  return wt;
}

/// y (..., out) = x (..., in) W^T + b, W (out, in), over every row of x (a rank-3 x is a batch
/// of token sequences; nothing is reshaped or copied).
///
/// Token-wise projections (a transformer's rows are its ~10k tokens; from kLinearPackFrom rows
/// on) are split over the threads in blocks of rows, each multiplied in place
/// (packed::gemm_rows_packed_b) against W^T in the packed column blocks: `wt`, the weight's
/// prepare_linear form (kept by the Linear block), or, when null, packed here for this call. A
/// few rows (time embeddings, the style sequence) stay one serial gemm_bt on w itself.
template <class T, std::size_t N>
Tensor<T, N, Cpu> linear(const Tensor<T, N, Cpu>& x, const Tensor<T, 2, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                         const T* wt = nullptr) {
  static_assert(N >= 2, "linear: x is (rows..., in)");
  const int B = static_cast<int>(leading_rows(x.shape())), in = static_cast<int>(x.shape(N - 1));
  const int out = static_cast<int>(w.shape(0));
  auto y = Tensor<T, N, Cpu>::from_shape(with_last(x.shape(), w.shape(0)));
  auto add_bias = [&](T* yr, int rows) {
    if (bias.size())
      for (int r = 0; r < rows; ++r)
        for (int o = 0; o < out; ++o) yr[static_cast<std::ptrdiff_t>(r) * out + o] += bias.data()[o];
  };
  constexpr int kRowBlock = 128;  // rows per task: 16 panels on AVX-512
  if (B >= kLinearPackFrom && in > 0 && out > 0) {
    memory::Buffer<T> own;
    if (!wt) {
      own.resize(static_cast<std::size_t>(packed::packed_b_size<T>(in, out)));
      pack_linear_weight(w.data(), out, in, own.data());
      wt = own.data();
    }
    parallel_for((B + kRowBlock - 1) / kRowBlock, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
      for (std::ptrdiff_t blk = first; blk < last; ++blk) {  // a block's rows stay cached over W^T
        const std::ptrdiff_t r0 = blk * kRowBlock;
        const int nr = static_cast<int>(std::min<std::ptrdiff_t>(kRowBlock, B - r0));
        T* yr = y.data() + r0 * out;
        packed::gemm_rows_packed_b<T>(nr, out, in, x.data() + r0 * in, in, wt, yr, out);
        add_bias(yr, nr);
      }
    });
    return y;
  }
  gemm_bt<T>(B, out, in, x.data(), in, w.data(), in, y.data(), out);
  add_bias(y.data(), B);
  return y;
}
