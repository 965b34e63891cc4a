// Compile-fail test (tests/CMakeLists.txt): a block's forward takes exactly the tensor types it
// declares (core/exact_arguments.hpp). Before, each misuse below compiled: xtensor converted the
// argument and the call failed at run time with a shape the caller never made, or a double
// tensor was copied to float. Each DIFFBLOCKS_COMPILE_FAIL_<CASE> is one misuse that must fail
// with the library's message; the control (DIFFBLOCKS_COMPILE_FAIL_CONTROL) makes every legal
// form that the catch-all must leave alone, and must compile.
#include <cstddef>
#include <optional>
#include <utility>

#include "diffblocks/blocks/attention.hpp"
#include "diffblocks/blocks/conv2d.hpp"
#include "diffblocks/blocks/group_norm.hpp"
#include "diffblocks/blocks/resnet_block.hpp"
#include "diffblocks/blocks/sinusoidal_pos_emb.hpp"
#include "diffblocks/blocks/upsample2d.hpp"
#include "diffblocks/unets/origin.hpp"

namespace db = diffblocks;

int main() {
  db::GroupNorm<> norm(2, 4);
  db::Tensor<float, 4> x = db::ops::zeros<float, 4>(db::Cpu{}, {1, 4, 2, 3});
  double sum = 0;
#if defined(DIFFBLOCKS_COMPILE_FAIL_CONTROL)
  // Exact lvalues, const or not, and rvalues.
  const db::Tensor<float, 4> cx = x;
  sum += norm.forward(x)(0, 0, 0, 0) + norm.forward(cx)(0, 0, 0, 0);
  sum += norm.forward(db::Tensor<float, 4>(x))(0, 0, 0, 0);
  // Scalars keep their ordinary conversions: int for std::size_t, int for double.
  db::Upsample2D<> up(4);
  sum += up.forward(x, 0, 0)(0, 0, 0, 0);
  db::SinusoidalPosEmb<> pos(8);
  sum += pos.forward(db::ops::zeros<float, 1>(db::Cpu{}, {2}), 1000)(0, 0);
  // A rank-4 mask, a rank-2 time embedding, and an rvalue x the block may reuse.
  db::ResnetBlock<> res(4, 4, 8, 2);
  const db::Tensor<float, 4> mask = db::ops::zeros<float, 4>(db::Cpu{}, {1, 1, 1, 3});
  const db::Tensor<float, 2> t = db::ops::zeros<float, 2>(db::Cpu{}, {1, 8});
  sum += res.forward(x, mask, t)(0, 0, 0, 0) + res.forward(db::Tensor<float, 4>(x), mask, t)(0, 0, 0, 0);
  // A plain Tensor where the method takes std::optional of it, and the optional itself.
  db::Attention<> attn(4, 4, 1, 4);
  const db::Tensor<float, 3> tokens = db::ops::zeros<float, 3>(db::Cpu{}, {1, 5, 4});
  const db::Tensor<float, 2> bias = db::ops::zeros<float, 2>(db::Cpu{}, {1, 5});
  sum += attn.forward(tokens, tokens, bias)(0, 0, 0) + attn.forward(tokens, tokens, std::nullopt)(0, 0, 0);
  sum += attn.forward(tokens)(0, 0, 0);
#elif defined(DIFFBLOCKS_COMPILE_FAIL_RANK)
  // Rank 3 where GroupNorm takes rank 4 (ran as [1, 4, 2, 0] before).
  const db::Tensor<float, 3> x3 = db::ops::zeros<float, 3>(db::Cpu{}, {1, 4, 6});
  sum += norm.forward(x3)(0, 0, 0, 0);
#elif defined(DIFFBLOCKS_COMPILE_FAIL_DTYPE)
  // double where the block is float (was copied to float silently).
  const xt::xtensor<double, 4> xd = xt::zeros<double>({1, 4, 2, 3});
  sum += norm.forward(xd)(0, 0, 0, 0);
#elif defined(DIFFBLOCKS_COMPILE_FAIL_EXPRESSION)
  // An unevaluated xtensor expression (was evaluated into a temporary behind the caller's back).
  db::Conv2d<> conv(4, 4, 3, 1, 1);
  sum += conv.forward(x + x)(0, 0, 0, 0);
#elif defined(DIFFBLOCKS_COMPILE_FAIL_SECOND_ARGUMENT)
  // The tensor at fault is not the first: a rank-3 mask for ResnetBlock's rank-4 one.
  db::ResnetBlock<> res(4, 4, 8, 2);
  const db::Tensor<float, 3> mask3 = db::ops::zeros<float, 3>(db::Cpu{}, {1, 1, 3});
  const db::Tensor<float, 2> t = db::ops::zeros<float, 2>(db::Cpu{}, {1, 8});
  sum += res.forward(x, mask3, t)(0, 0, 0, 0);
#elif defined(DIFFBLOCKS_COMPILE_FAIL_ORIGIN)
  // The U-Net too: t given as the model's rank-3 tensor type instead of (B,) float32.
  db::OriginConfig cfg;
  cfg.dim = 16;
  cfg.dim_mults = {1, 2};
  cfg.n_feats = 16;
  db::GradLogPEstimator2d<> model(cfg);
  const db::Tensor<float, 3> m = db::ops::zeros<float, 3>(db::Cpu{}, {1, 16, 8});
  sum += model.forward(m, m, m, m)(0, 0, 0);
#else
#error "name a case: DIFFBLOCKS_COMPILE_FAIL_CONTROL or DIFFBLOCKS_COMPILE_FAIL_<CASE>"
#endif
  return sum == 0 ? 0 : 1;
}
