// Grad-TTS reverse diffusion and forward diffusion: against PyTorch (the shared bodies of
// tests/parity/sampler.hpp, which every device's test binary runs), and the CPU's own promises
// (the same bits for any thread count, the noise, the progress callback).
#include "parity/on_cpu.hpp"
#include "parity/sampler.hpp"

using namespace dbt;
using db::Tensor;

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
