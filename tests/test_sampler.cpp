// Grad-TTS reverse diffusion (ODE against PyTorch; stochastic: reproducible by seed) and
// forward diffusion.
#include "helpers.hpp"

using namespace dbt;
using db::Tensor;

namespace {
struct SampleCase : SampleFixture<> {
  Tensor<float, 3> sample(int steps, bool stochastic = false, std::uint64_t seed = 0) const {
    return db::reverse_diffusion(*model, z, mask, mu, options(steps, stochastic, seed));
  }
};
}  // namespace

TEST_CASE("reverse_diffusion (ODE) matches Grad-TTS for 1, 3 and 5 steps", "[sampler]") {
  SampleCase c;
  const auto exp = db::SafeTensors::load(fixture("sample_ode/expected.safetensors"));
  require_close(c.sample(1), read_tensor<3>(exp, "out_steps_1"), "1 step");
  require_close(c.sample(3), read_tensor<3>(exp, "out_steps_3"), "3 steps");
  require_close(c.sample(5), read_tensor<3>(exp, "out"), "5 steps");
}

TEST_CASE("Origin forward and sampler are bit-identical across calls and thread counts", "[sampler][threads]") {
  // Buffers are reused between calls (caching allocator) and split differently between threads;
  // neither may change a single bit of the result.
  SampleCase c;
  const int before = db::get_num_threads();
  std::vector<Tensor<float, 3>> runs;
  for (int threads : {1, 3, 3, 2}) {
    db::set_num_threads(threads);
    runs.push_back(c.sample(3, true, 7));
  }
  db::set_num_threads(before);
  for (std::size_t i = 1; i < runs.size(); ++i) REQUIRE(std::equal(runs[0].begin(), runs[0].end(), runs[i].begin()));
}

TEST_CASE("stochastic sampler is reproducible by seed", "[sampler]") {
  SampleCase c;
  check_stochastic_sampler(c);
}

TEST_CASE("the sampler noise is standard normal", "[sampler]") {
  db::Rng rng(1);
  double s = 0, s2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double v = rng.normal();
    s += v;
    s2 += v * v;
  }
  REQUIRE(std::fabs(s / n) < 0.01);
  REQUIRE(std::fabs(s2 / n - 1.0) < 0.02);
}

TEST_CASE("sampler progress callback and argument checks", "[sampler]") {
  SampleCase c;
  db::GradTTSSamplerOptions opt;
  opt.steps = 3;
  std::vector<int> seen;
  opt.progress = [&](int step, int steps, double secs) {
    REQUIRE(steps == 3);
    REQUIRE(secs >= 0);
    seen.push_back(step);
  };
  db::reverse_diffusion(*c.model, c.z, c.mask, c.mu, opt);
  REQUIRE(seen == std::vector<int>{1, 2, 3});
  opt.steps = 0;
  REQUIRE_THROWS_AS(db::reverse_diffusion(*c.model, c.z, c.mask, c.mu, opt), db::InputError);
}

TEST_CASE("forward_diffusion matches Grad-TTS given the same noise", "[sampler]") {
  const auto f = db::SafeTensors::load(fixture("sample_ode/forward_diffusion.safetensors"));
  const auto cfg = nlohmann::json::parse(f.metadata().at("config"));
  const auto x0 = read_tensor<3>(f, "x0"), mask = read_tensor<3>(f, "mask"), mu = read_tensor<3>(f, "mu"),
             z = read_tensor<3>(f, "z");
  const auto t = read_tensor<1>(f, "t");
  auto xt = db::forward_diffusion(x0, mask, mu, t, z, cfg.at("beta_min").get<double>(), cfg.at("beta_max").get<double>());
  require_close(xt, read_tensor<3>(f, "xt"), "forward_diffusion");
}

TEST_CASE("a diverging sampler stops with an error naming the step", "[sampler][errors]") {
  // The fixture model is random: far from mu its linear attention blows up quadratically.
  SampleCase c;
  for (auto& v : c.z) v *= 1000.0f;
  db::GradTTSSamplerOptions opt;
  opt.steps = 20;
  REQUIRE_THROWS_WITH(db::reverse_diffusion(*c.model, c.z, c.mask, c.mu, opt),
                      Catch::Contains("NaN/Inf at step") && Catch::Contains("diverges"));
}
