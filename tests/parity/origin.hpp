#pragma once
// The whole Origin U-Net (GradLogPEstimator2d + emotion/prosody) against PyTorch, on the device
// under test (device.hpp): fixtures a-e, each output within the accuracy contract and exactly
// zero in every padded frame.
#include <optional>
#include <string>

#include "device.hpp"

namespace dbt {
inline namespace DBT_SCALAR_NS {

/// An Origin fixture on the device under test, or nothing where a trimmed checkout lacks its
/// weights (the 15 MB origin_a/b/c models; only devices whose checkout may be trimmed skip).
inline std::optional<OriginCase<Dev, Scalar>> origin_fixture(const std::string& model, const std::string& inputs) {
  const std::string weights = model.find(".safetensors") == std::string::npos ? model + "/model.safetensors" : model;
  if (!fixture_present(fixture(weights))) return std::nullopt;
  return load_origin_case<Dev, Scalar>(fixture(model), fixture(inputs));
}

/// The model's output for the fixture's inputs (and conditioning), on the host.
inline db::Tensor<float, 3> run_origin(const OriginCase<Dev, Scalar>& c) {
  return host(c.model->forward(dev(c.x), dev(c.mask), dev(c.mu), dev_f32(c.t), dev(c.cond)));
}

/// The output against `expected` (a fixture path: "origin_a/expected.safetensors" is case
/// origin_a, "origin_e_expected.safetensors" origin_e), and exactly zero wherever the mask is 0.
inline void check_origin(const OriginCase<Dev, Scalar>& c, const std::string& expected, const std::string& what) {
  const auto out = run_origin(c);
  const std::string case_key = expected.substr(0, expected.find_first_of("/_", expected.find('_') + 1));
  require_close(out, reference<3>(expected, "out", case_key), what);
  for (std::size_t b = 0; b < out.shape(0); ++b)
    for (std::size_t f = 0; f < out.shape(1); ++f)
      for (std::size_t w = 0; w < out.shape(2); ++w)
        if (c.mask(b, 0, w) == 0.0f) REQUIRE(out(b, f, w) == 0.0f);
}

}  // namespace DBT_SCALAR_NS
}  // namespace dbt

TEST_CASE(DBT_NAME_PREFIX "Origin (a): Grad-TTS estimator, 80 mels, padded batch, F16 weights", DBT_DEVICE_TAG "[origin]") {
  DBT_REQUIRE_DEVICE();
  auto c = dbt::origin_fixture("origin_a", "origin_a/inputs.safetensors");
  if (!c) return;
  REQUIRE(diffblocks::parameter_count(*c->model) == 7634887);
  dbt::check_origin(*c, "origin_a/expected.safetensors", "origin_a");
}

TEST_CASE(DBT_NAME_PREFIX "Origin (b): speakers by id and by vector", DBT_DEVICE_TAG "[origin]") {
  DBT_REQUIRE_DEVICE();
  SECTION("spk_id with the spk_emb table") {
    auto c = dbt::origin_fixture("origin_b", "origin_b/inputs.safetensors");
    if (!c) return;
    REQUIRE(diffblocks::parameter_count(*c->model) == 7672727);
    REQUIRE(c->model->spk_emb.shape(0) == 4);
    dbt::check_origin(*c, "origin_b/expected.safetensors", "origin_b ids");
  }
  SECTION("spk vectors") {
    auto c = dbt::origin_fixture("origin_b", "origin_b/inputs_vec.safetensors");
    if (!c) return;
    dbt::check_origin(*c, "origin_b/expected.safetensors", "origin_b vectors");
  }
}

TEST_CASE(DBT_NAME_PREFIX "Origin (c): speaker vector, emotion id (I32) and prosody channels", DBT_DEVICE_TAG "[origin]") {
  DBT_REQUIRE_DEVICE();
  auto c = dbt::origin_fixture("origin_c", "origin_c/inputs.safetensors");
  if (!c) return;
  REQUIRE(c->model->config().in_channels() == 2 + 1 + 1 + 3);
  dbt::check_origin(*c, "origin_c/expected.safetensors", "origin_c");
}

TEST_CASE(DBT_NAME_PREFIX "Origin (d): small odd config (dim 32, mults (1,2), 16 mels, pe_scale 1, BF16)", DBT_DEVICE_TAG "[origin]") {
  DBT_REQUIRE_DEVICE();
  auto c = dbt::origin_fixture("origin_d", "origin_d/inputs.safetensors");
  if (!c) return;
  REQUIRE(diffblocks::parameter_count(*c->model) == 532389);
  dbt::check_origin(*c, "origin_d/expected.safetensors", "origin_d");
}

TEST_CASE(DBT_NAME_PREFIX "Origin (e): single-file model with embedded config and decoder.estimator. prefix", DBT_DEVICE_TAG "[origin][io]") {
  DBT_REQUIRE_DEVICE();
  auto c = dbt::origin_fixture("origin_e.safetensors", "origin_e_inputs.safetensors");
  if (!c) return;
  dbt::check_origin(*c, "origin_e_expected.safetensors", "origin_e");
}
