// The device you can hold (#15 item 3): a Cpu device value carries its own context (threads,
// conv and attention algorithms, weight preparation), models run on the device they hold, two
// models with different devices run concurrently with the results they give alone, and blocks
// keep their prepared weights until invalidated.
#include <catch2/catch.hpp>

#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "diffblocks/diffblocks.hpp"
#include "helpers.hpp"

namespace db = diffblocks;
using db::Tensor;
using dbt::Diff;
using dbt::diff;
using dbt::fixture;

namespace {

using SoftmaxOrigin = db::GradLogPEstimator2d<float, db::Cpu, db::SoftmaxSelfAttention>;

/// N(0, 0.1) weights (GroupNorm scales around 1, Rezero g = 0.5), the same for every seed use.
template <class Model>
void fill(Model& m, std::uint64_t seed = 3) {
  db::Rng rng(seed);
  m.visit([&](const std::string& name, auto& t) {
    const bool g = name == "g" || name.size() > 2 && name.compare(name.size() - 2, 2, ".g") == 0;
    for (auto& v : t) v = g ? 0.5f : static_cast<float>(0.1 * rng.normal());
  });
}

struct Inputs {
  Tensor<float, 3> x, mask, mu;
  Tensor<float, 1> t;
  explicit Inputs(std::size_t frames) {
    db::Rng rng(9);
    x = Tensor<float, 3>::from_shape({1, 16, frames});
    mu = x;
    for (auto& v : x) v = float(rng.normal());
    for (auto& v : mu) v = float(rng.normal());
    mask = db::ops::full<float, 3>(db::Cpu{}, {1, 1, frames}, 1.0f);
    for (std::size_t i = frames - 8; i < frames; ++i) mask(0, 0, i) = 0.0f;  // some padding
    t = db::ops::full<float, 1>(db::Cpu{}, {1}, 0.4f);
  }
};

bool same_bits(const Tensor<float, 3>& a, const Tensor<float, 3>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("a Cpu device value carries its own context, Cpu{} is the process default", "[device]") {
  const int before = db::get_num_threads();
  db::Cpu one(db::CpuOptions{1, db::ops::cpu::ConvAlgorithm::Im2col, db::ops::AttentionAlgorithm::Naive});
  db::Cpu two(db::CpuOptions{2, db::ops::cpu::ConvAlgorithm::Auto, db::ops::AttentionAlgorithm::Streaming});
  REQUIRE(one.threads() == 1);
  REQUIRE(two.threads() == 2);
  REQUIRE(one != two);
  REQUIRE(db::Cpu{} == db::Cpu::process_default());
  REQUIRE(db::Cpu{}.context().conv_algorithm() == db::ops::cpu::ConvAlgorithm::Auto);

  // The old global setters set the default context only.
  db::set_num_threads(3);
  REQUIRE(db::get_num_threads() == 3);
  REQUIRE(db::Cpu{}.threads() == 3);
  REQUIRE(one.threads() == 1);
  REQUIRE(two.threads() == 2);
  db::set_num_threads(before);

  // In a scope, Cpu{} and the thread count are the scope's device's; the copy shares the context.
  {
    const db::DeviceScope<db::Cpu> on(one);
    REQUIRE(db::Cpu{} == one);
    REQUIRE(db::get_num_threads() == 1);
    std::set<std::thread::id> ids;
    std::mutex m;
    db::parallel_for(64, [&](std::ptrdiff_t, std::ptrdiff_t) {
      std::lock_guard<std::mutex> lk(m);
      ids.insert(std::this_thread::get_id());
    });
    REQUIRE(ids == std::set<std::thread::id>{std::this_thread::get_id()});  // a one-thread pool
  }
  REQUIRE(db::Cpu{} == db::Cpu::process_default());

  // A nested parallel_for on a worker stays on the worker's pool (its context is installed there).
  {
    const db::DeviceScope<db::Cpu> on(two);
    std::atomic<int> wrong{0};
    db::parallel_for(8, [&](std::ptrdiff_t, std::ptrdiff_t) {
      if (&db::current_cpu_context() != &two.context()) ++wrong;
    });
    REQUIRE(wrong.load() == 0);
  }
}

TEST_CASE("two models with different devices run concurrently and each gives its solo result", "[device]") {
  const db::OriginConfig cfg = dbt::small_origin_config();
  SoftmaxOrigin a(cfg), b(cfg);
  fill(a);
  fill(b);
  db::Cpu da(db::CpuOptions{1, db::ops::cpu::ConvAlgorithm::Im2col, db::ops::AttentionAlgorithm::Naive});
  db::Cpu dbb(db::CpuOptions{2, db::ops::cpu::ConvAlgorithm::Auto, db::ops::AttentionAlgorithm::Streaming});
  a.to(da);
  b.to(dbb);
  REQUIRE(a.device() == da);
  const Inputs in(64);

  const auto ya = a.forward(in.x, in.mask, in.mu, in.t);
  const auto yb = b.forward(in.x, in.mask, in.mu, in.t);
  // The settings took effect, each on its own context only.
  const db::CpuCounters& ca = da.context().counters();
  const db::CpuCounters& cb = dbb.context().counters();
  REQUIRE(ca.im2col_convs.load() > 0);
  REQUIRE(ca.winograd_convs.load() == 0);
  REQUIRE(ca.naive_attention.load() > 0);
  REQUIRE(ca.streaming_attention.load() == 0);
  REQUIRE(cb.winograd_convs.load() > 0);
  REQUIRE(cb.streaming_attention.load() > 0);
  REQUIRE(cb.naive_attention.load() == 0);
  // Different algorithms, the same function (to rounding).
  const Diff d = diff(ya, yb);
  REQUIRE(d.max_abs_err <= 1e-4 * std::max(1.0, d.max_abs_ref));
  REQUIRE_FALSE(same_bits(ya, yb));  // and really other kernels

  // Concurrently, from two threads: every result is bit for bit the solo one.
  std::atomic<int> mismatches{0};
  auto loop = [&](const SoftmaxOrigin& m, const Tensor<float, 3>& want) {
    for (int i = 0; i < 4; ++i)
      if (!same_bits(m.forward(in.x, in.mask, in.mu, in.t), want)) ++mismatches;
  };
  std::thread ta(loop, std::cref(a), std::cref(ya)), tb(loop, std::cref(b), std::cref(yb));
  ta.join();
  tb.join();
  REQUIRE(mismatches.load() == 0);

  // The sampler runs its steps on the model's device too.
  const std::uint64_t before = ca.im2col_convs.load();
  db::GradTTSSamplerOptions opt;
  opt.steps = 2;
  (void)db::reverse_diffusion(a, in.x, in.mask, in.mu, opt);
  REQUIRE(ca.im2col_convs.load() > before);
}

TEST_CASE("prepared weights are made once and kept with the blocks", "[device][prepared]") {
  db::Cpu dev(db::CpuOptions{2});
  db::GradLogPEstimator2d<> m(dbt::small_origin_config());
  fill(m);
  m.to(dev);
  REQUIRE(db::prepared_bytes(m) == 0);
  m.prepare();
  const std::uint64_t made = dev.context().counters().weight_preparations.load();
  REQUIRE(made > 0);
  const std::size_t bytes = db::prepared_bytes(m), params = db::parameter_count(m) * sizeof(float);
  REQUIRE(bytes > 0);
  REQUIRE(bytes <= 5 * params);
  const Inputs in(64);
  const auto y0 = m.forward(in.x, in.mask, in.mu, in.t);
  (void)m.forward(in.x, in.mask, in.mu, in.t);
  REQUIRE(dev.context().counters().weight_preparations.load() == made);  // nothing prepared again
  REQUIRE(db::prepared_bytes(m) == bytes);

  // Another algorithm replaces the forms (one per block, never both).
  dev.context().set_conv_algorithm(db::ops::cpu::ConvAlgorithm::Im2col);
  const auto y1 = m.forward(in.x, in.mask, in.mu, in.t);
  REQUIRE(db::prepared_bytes(m) < bytes);
  const Diff d = diff(y1, y0);
  REQUIRE(d.max_abs_err <= 1e-4 * std::max(1.0, d.max_abs_ref));

  // PerCall keeps nothing.
  dev.context().set_weight_preparation(db::WeightPreparation::PerCall);
  const auto y2 = m.forward(in.x, in.mask, in.mu, in.t);
  REQUIRE(db::prepared_bytes(m) == 0);
  REQUIRE(same_bits(y2, y1));
}

TEST_CASE("Auto keeps a large 3x3 kernel as its taps and makes the Winograd planes per call (same bits)",
          "[device][prepared]") {
  // 36 * 192 * 192 * 4 bytes = 5.3 MB of planes: past kWinogradTapsFrom, so Auto keeps the taps.
  db::Conv2d<float> conv(192, 192, 3, 1, 1);
  db::Rng rng(7);
  for (auto& v : conv.weight) v = float(rng.normal() * 0.05);
  for (auto& v : conv.bias) v = float(rng.normal());
  const std::size_t weight_bytes = conv.weight.size() * sizeof(float);
  // One batch item: one shared band, the planes made next to their GEMMs; two: made whole.
  for (std::size_t batch : {1, 2}) {
    auto x = Tensor<float, 4>::from_shape({batch, 192, 8, 20});
    for (auto& v : x) v = float(rng.normal());
    auto run = [&](db::WeightPreparation w, std::size_t* held) {
      db::CpuOptions o;
      o.threads = 2;
      o.weights = w;
      const db::Cpu dev(o);
      const db::DeviceScope<db::Cpu> on(dev);
      db::invalidate_prepared(conv);
      const auto y = conv.forward(x);  // makes the form, then uses it
      const auto again = conv.forward(x);
      REQUIRE(std::memcmp(y.data(), again.data(), y.size() * sizeof(float)) == 0);
      *held = db::prepared_bytes(conv);
      REQUIRE(dev.context().counters().winograd_convs.load() == 2);
      return y;
    };
    std::size_t keep_bytes = 0, auto_bytes = 0, per_call_bytes = 0;
    const auto keep = run(db::WeightPreparation::Keep, &keep_bytes);
    const auto autom = run(db::WeightPreparation::Auto, &auto_bytes);
    const auto per_call = run(db::WeightPreparation::PerCall, &per_call_bytes);
    REQUIRE(keep_bytes == 4 * weight_bytes);  // 36 planes for 9 taps; 192 rows: whole panels on every instruction set
    REQUIRE(auto_bytes == weight_bytes);
    REQUIRE(per_call_bytes == 0);
    REQUIRE(std::memcmp(autom.data(), keep.data(), keep.size() * sizeof(float)) == 0);
    REQUIRE(std::memcmp(per_call.data(), keep.data(), keep.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("an edited weight is used after invalidate_prepared, and not before", "[device][prepared]") {
  const db::OriginConfig cfg = dbt::small_origin_config();
  db::GradLogPEstimator2d<> m(cfg), fresh(cfg);
  fill(m);
  const Inputs in(64);
  const auto y0 = m.forward(in.x, in.mask, in.mu, in.t);  // prepares every conv

  // Edit a Winograd conv, a 1x1 residual conv and a transposed conv in place.
  for (auto& v : m.final_block.conv.weight) v *= -1.5f;
  for (auto& v : m.downs[0].resnet1.res_conv->weight) v += 0.05f;
  for (auto& v : m.ups[0].up.conv.weight) v *= 0.5f;
  // Documented: without invalidate_prepared() the forms of the old weights stay in use.
  REQUIRE(same_bits(m.forward(in.x, in.mask, in.mu, in.t), y0));

  db::invalidate_prepared(m);
  REQUIRE(db::prepared_bytes(m) == 0);
  std::vector<std::vector<float>> values;
  m.visit([&](const std::string&, auto& t) { values.emplace_back(t.begin(), t.end()); });
  std::size_t i = 0;
  fresh.visit([&](const std::string&, auto& t) { std::copy(values[i].begin(), values[i].end(), t.begin()), ++i; });
  const auto want = fresh.forward(in.x, in.mask, in.mu, in.t);
  const auto got = m.forward(in.x, in.mask, in.mu, in.t);
  REQUIRE(same_bits(got, want));
  REQUIRE_FALSE(same_bits(got, y0));
}

TEST_CASE("loading a state dict drops the prepared weights of the old ones", "[device][prepared]") {
  auto loaded = db::load_origin(fixture("origin_a"));
  db::GradLogPEstimator2d<> m(loaded->config());
  fill(m);
  const std::size_t T = 64;
  Inputs in(T);
  in.x = Tensor<float, 3>::from_shape({std::size_t(1), std::size_t(loaded->config().n_feats), T});
  in.mu = in.x;
  db::Rng rng(2);
  for (auto& v : in.x) v = float(rng.normal());
  for (auto& v : in.mu) v = float(rng.normal());
  (void)m.forward(in.x, in.mask, in.mu, in.t);  // prepared from the random weights
  REQUIRE(db::prepared_bytes(m) > 0);
  const db::ModelFile file = db::load_model_file(fixture("origin_a"));
  db::StateDict sd(file.weights, db::detect_prefix(file.weights, {"spk_emb.weight", "emo_emb.weight"}));
  m.load(sd);
  REQUIRE(db::prepared_bytes(m) == 0);
  REQUIRE(same_bits(m.forward(in.x, in.mask, in.mu, in.t), loaded->forward(in.x, in.mask, in.mu, in.t)));
}

TEST_CASE("Linear keeps its packed W^T: counted, used until invalidated, then the new weights", "[device][prepared]") {
  db::Linear<float> lin(48, 40), fresh(48, 40);
  db::Rng rng(21);
  for (auto& v : lin.weight) v = float(rng.normal() * 0.2);
  for (auto& v : lin.bias) v = float(rng.normal());
  auto x = Tensor<float, 3>::from_shape({2, 100, 48});  // 200 token rows: the packed path
  for (auto& v : x) v = float(rng.normal());
  auto small = Tensor<float, 2>::from_shape({3, 48});  // 3 rows read the weight as it is
  for (auto& v : small) v = float(rng.normal());

  REQUIRE(db::prepared_bytes(lin) == 0);
  (void)lin.forward(small);
  REQUIRE(db::prepared_bytes(lin) == 0);  // few rows never make the form
  db::prepare(lin);
  const std::size_t bytes = db::prepared_bytes(lin);
  REQUIRE(bytes >= lin.weight.size() * sizeof(float));
  const auto y0 = lin.forward(x);
  REQUIRE(db::prepared_bytes(lin) == bytes);

  // An edit is not seen by the packed path until invalidate_prepared(), then it is, exactly.
  for (auto& v : lin.weight) v = -2.0f * v + 0.01f;
  const auto stale = lin.forward(x);
  REQUIRE(std::memcmp(stale.data(), y0.data(), y0.size() * sizeof(float)) == 0);
  db::invalidate_prepared(lin);
  REQUIRE(db::prepared_bytes(lin) == 0);
  std::copy(lin.weight.begin(), lin.weight.end(), fresh.weight.begin());
  std::copy(lin.bias.begin(), lin.bias.end(), fresh.bias.begin());
  const auto y1 = lin.forward(x), want = fresh.forward(x);
  REQUIRE(std::memcmp(y1.data(), want.data(), want.size() * sizeof(float)) == 0);
  REQUIRE(std::memcmp(y1.data(), y0.data(), y0.size() * sizeof(float)) != 0);
  REQUIRE(db::prepared_bytes(lin) == bytes);  // made again at the token-wise call

  // Against the definition, the kept form and the per-call packing alike.
  double worst = 0;
  for (std::size_t r = 0; r < 200; ++r)
    for (std::size_t o = 0; o < 40; ++o) {
      double s = lin.bias(o);
      for (std::size_t i = 0; i < 48; ++i) s += double(x.data()[r * 48 + i]) * lin.weight(o, i);
      worst = std::max(worst, std::abs(s - y1.data()[r * 40 + o]));
    }
  REQUIRE(worst <= 1e-5);
}

TEST_CASE("prepared_bytes counts the Linear blocks inside a model", "[device][prepared]") {
  db::ResnetBlock<float> rb(16, 32, 24);
  REQUIRE(db::prepared_bytes(rb) == 0);
  db::prepare(rb);
  const std::size_t all = db::prepared_bytes(rb);
  REQUIRE(rb.mlp.prepared_bytes() >= rb.mlp.weight.size() * sizeof(float));
  REQUIRE(all == rb.mlp.prepared_bytes() + rb.block1.conv.prepared_bytes() + rb.block2.conv.prepared_bytes() +
                     rb.res_conv->prepared_bytes());
  db::invalidate_prepared(rb);
  REQUIRE(db::prepared_bytes(rb) == 0);
}

TEST_CASE("an Origin forward holds at most 8 full-resolution activations at once", "[device][memory]") {
  // dim 16 and LinearAttention's 128 hidden channels: the whole softmaxed k alone would be 8
  // activations (it was held, with a packed copy of x, until k~ was made in chunks); the level
  // tensors of ResnetBlock and the scratch of the convolutions stay well below the bound too.
  db::OriginConfig cfg;
  cfg.dim = 16;
  cfg.dim_mults = {1, 2};
  cfg.n_feats = 80;
  db::GradLogPEstimator2d<> m(cfg);
  fill(m);
  const std::size_t T = 512;
  db::Rng rng(5);
  auto x = Tensor<float, 3>::from_shape({1, 80, T}), mu = x;
  for (auto& v : x) v = float(rng.normal());
  for (auto& v : mu) v = float(rng.normal());
  const auto mask = db::ops::full<float, 3>(db::Cpu{}, {1, 1, T}, 1.0f);
  const auto t = db::ops::full<float, 1>(db::Cpu{}, {1}, 0.5f);
  (void)m.forward(x, mask, mu, t);  // prepares the weights (held apart, not counted below)
  const double activation = 16.0 * 80 * T * sizeof(float);
  const db::memory::PeakMemoryProbe probe;
  (void)m.forward(x, mask, mu, t);
  INFO("peak " << probe.peak_bytes() << " bytes = " << double(probe.peak_bytes()) / activation << " activations");
  REQUIRE(double(probe.peak_bytes()) <= 8 * activation);
}
