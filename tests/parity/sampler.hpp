#pragma once
// Grad-TTS reverse diffusion (ODE against PyTorch; stochastic: reproducible by seed) and forward
// diffusion, on the device under test (device.hpp).
#include "device.hpp"

namespace dbt {

/// The sample_ode fixture on the device under test; sample() runs the sampler there from the
/// fixture's z, mask and mu and brings the mel back.
struct SampleCase : SampleFixture<Dev> {
  db::Tensor<float, 3> sample(int steps, bool stochastic = false, std::uint64_t seed = 0) const {
    return host(db::reverse_diffusion(*model, dev(z), dev(mask), dev(mu), options(steps, stochastic, seed)));
  }
};

}  // namespace dbt

TEST_CASE("reverse_diffusion (ODE) matches Grad-TTS for 1, 3 and 5 steps", DBT_DEVICE_TAG "[sampler]") {
  DBT_REQUIRE_DEVICE();
  dbt::SampleCase c;
  const auto exp = diffblocks::SafeTensors::load(dbt::fixture("sample_ode/expected.safetensors"));
  dbt::require_close(c.sample(1), dbt::read_tensor<3>(exp, "out_steps_1"), "1 step");
  dbt::require_close(c.sample(3), dbt::read_tensor<3>(exp, "out_steps_3"), "3 steps");
  dbt::require_close(c.sample(5), dbt::read_tensor<3>(exp, "out"), "5 steps");
}

TEST_CASE("stochastic sampler is reproducible by seed", DBT_DEVICE_TAG "[sampler]") {
  DBT_REQUIRE_DEVICE();
  dbt::SampleCase c;
  dbt::check_stochastic_sampler(c);
}

TEST_CASE("forward_diffusion matches Grad-TTS given the same noise", DBT_DEVICE_TAG "[sampler]") {
  DBT_REQUIRE_DEVICE();
  const auto f = diffblocks::SafeTensors::load(dbt::fixture("sample_ode/forward_diffusion.safetensors"));
  const auto cfg = nlohmann::json::parse(f.metadata().at("config"));
  using dbt::dev;
  using dbt::read_tensor;
  const auto xt = diffblocks::forward_diffusion<Dev>(
      dev(read_tensor<3>(f, "x0")), dev(read_tensor<3>(f, "mask")), dev(read_tensor<3>(f, "mu")), dev(read_tensor<1>(f, "t")),
      dev(read_tensor<3>(f, "z")), cfg.at("beta_min").get<double>(), cfg.at("beta_max").get<double>());
  dbt::require_close(dbt::host(xt), read_tensor<3>(f, "xt"), "forward_diffusion");
}

TEST_CASE("a diverging sampler stops with an error naming the step", DBT_DEVICE_TAG "[sampler][errors]") {
  DBT_REQUIRE_DEVICE();
  // The fixture model is random: far from mu its linear attention blows up quadratically.
  dbt::SampleCase c;
  for (auto& v : c.z) v *= 1000.0f;
  diffblocks::GradTTSSamplerOptions opt;
  opt.steps = 20;
  REQUIRE_THROWS_WITH(diffblocks::reverse_diffusion(*c.model, dbt::dev(c.z), dbt::dev(c.mask), dbt::dev(c.mu), opt),
                      Catch::Contains("NaN/Inf at step") && Catch::Contains("diverges"));
}
