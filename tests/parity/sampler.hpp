#pragma once
// Grad-TTS reverse diffusion (ODE against PyTorch; stochastic: reproducible by seed) and forward
// diffusion, on the device under test (device.hpp).
#include "device.hpp"

namespace dbt {
inline namespace DBT_SCALAR_NS {

/// The sample_ode fixture on the device under test; sample() runs the sampler there from the
/// fixture's z, mask and mu and brings the mel back.
struct SampleCase : SampleFixture<Dev, Scalar> {
  db::Tensor<float, 3> sample(int steps, bool stochastic = false, std::uint64_t seed = 0) const {
    return host(db::reverse_diffusion(*model, dev_f32(z), dev_f32(mask), dev_f32(mu), options(steps, stochastic, seed)));
  }
};

}  // namespace DBT_SCALAR_NS
}  // namespace dbt

TEST_CASE(DBT_NAME_PREFIX "reverse_diffusion (ODE) matches Grad-TTS for 1, 3, 5 and 10 steps", DBT_DEVICE_TAG "[sampler]") {
  DBT_REQUIRE_DEVICE();
  dbt::SampleCase c;
  const std::string exp = "sample_ode/expected.safetensors";
  dbt::require_close(c.sample(1), dbt::reference<3>(exp, "out_steps_1", "sample_ode"), "1 step");
  dbt::require_close(c.sample(3), dbt::reference<3>(exp, "out_steps_3", "sample_ode"), "3 steps");
  dbt::require_close(c.sample(5), dbt::reference<3>(exp, "out", "sample_ode"), "5 steps");
  dbt::require_close(c.sample(10), dbt::reference<3>(exp, "out_steps_10", "sample_ode"), "10 steps");
}

TEST_CASE(DBT_NAME_PREFIX "stochastic sampler is reproducible by seed", DBT_DEVICE_TAG "[sampler]") {
  DBT_REQUIRE_DEVICE();
  dbt::SampleCase c;
  if constexpr (std::is_same<Scalar, diffblocks::f16>::value) {
    // The fixture's random estimator, driven by the SDE's noise, makes activations beyond f16's
    // largest value (65504; bf16 and float32 have float32's range): the sampler must stop and
    // say so, naming the type, rather than return garbage or blame the input.
    REQUIRE_THROWS_WITH(c.sample(4, true, 42), Catch::Contains("f16 estimator") && Catch::Contains("65504") &&
                                                   Catch::Contains("step 4/4"));
  } else {
    dbt::check_stochastic_sampler(c);
  }
}

#ifndef DBT_HALF  // float32 arithmetic whatever the model type: the float32 binaries test it
TEST_CASE(DBT_NAME_PREFIX "forward_diffusion matches Grad-TTS given the same noise", DBT_DEVICE_TAG "[sampler]") {
  DBT_REQUIRE_DEVICE();
  const auto f = diffblocks::SafeTensors::load(dbt::fixture("sample_ode/forward_diffusion.safetensors"));
  const auto cfg = nlohmann::json::parse(f.metadata().at("config"));
  using dbt::dev_f32;  // the sampler's arithmetic: float32 in every model type
  using dbt::read_tensor;
  const auto xt = diffblocks::forward_diffusion<Dev>(
      dev_f32(read_tensor<3>(f, "x0")), dev_f32(read_tensor<3>(f, "mask")), dev_f32(read_tensor<3>(f, "mu")),
      dev_f32(read_tensor<1>(f, "t")), dev_f32(read_tensor<3>(f, "z")), cfg.at("beta_min").get<double>(),
      cfg.at("beta_max").get<double>());
  dbt::require_close(dbt::host(xt), read_tensor<3>(f, "xt"), "forward_diffusion");
}

#endif  // DBT_HALF

TEST_CASE(DBT_NAME_PREFIX "a diverging sampler stops with an error naming the step", DBT_DEVICE_TAG "[sampler][errors]") {
  DBT_REQUIRE_DEVICE();
  // The fixture model is random: far from mu its linear attention blows up quadratically.
  dbt::SampleCase c;
  for (auto& v : c.z) v *= 1000.0f;
  diffblocks::GradTTSSamplerOptions opt;
  opt.steps = 20;
  // An f16 model reaches f16's range first, and says so (see the stochastic case above).
  const bool f16 = std::is_same<Scalar, diffblocks::f16>::value;
  REQUIRE_THROWS_WITH(diffblocks::reverse_diffusion(*c.model, dbt::dev_f32(c.z), dbt::dev_f32(c.mask), dbt::dev_f32(c.mu), opt),
                      Catch::Contains("NaN/Inf at step") && Catch::Contains(f16 ? "beyond f16's largest value" : "diverges"));
}
