#pragma once
// Shared by the tests: fixture paths, reading fixture tensors, and the accuracy contract
// max|ours - reference| <= 1e-4 * max(1, max|reference|).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "diffblocks/diffblocks.hpp"

namespace dbt {

namespace db = diffblocks;

inline std::string fixture(const std::string& rel) { return std::string(DIFFBLOCKS_FIXTURES) + "/" + rel; }
inline std::string tmp_path(const std::string& name) { return std::string(DIFFBLOCKS_TEST_TMP) + "/" + name; }

/// A small Origin U-Net (dim 16, two levels, default groups) for the tests that build one from
/// code: n_feats mel channels.
inline db::OriginConfig small_origin_config(int n_feats = 16) {
  db::OriginConfig cfg;
  cfg.dim = 16;
  cfg.dim_mults = {1, 2};
  cfg.n_feats = n_feats;
  return cfg;
}

/// A tensor of rank N from a safetensors file (REQUIREs the rank).
template <std::size_t N>
db::Tensor<float, N> read_tensor(const db::SafeTensors& st, const std::string& name) {
  const auto& info = st.info(name);
  REQUIRE(info.shape.size() == N);
  std::array<std::size_t, N> shape;
  for (std::size_t i = 0; i < N; ++i) shape[i] = static_cast<std::size_t>(info.shape[i]);
  auto t = db::Tensor<float, N>::from_shape(shape);
  st.read_float(info, t.data());
  return t;
}

/// Every tensor of a file as float32 TensorToWrite entries (to edit and write back).
inline std::vector<db::TensorToWrite> read_all(const db::SafeTensors& st) {
  std::vector<db::TensorToWrite> ts;
  for (const auto& info : st.tensors()) {
    db::TensorToWrite t;
    t.name = info.name;
    t.shape = info.shape;
    t.f32.resize(info.numel());
    st.read_float(info, t.f32.data());
    ts.push_back(std::move(t));
  }
  return ts;
}

struct Diff {
  double max_abs_err = 0, max_abs_ref = 0;
  bool within_contract() const { return max_abs_err <= 1e-4 * std::max(1.0, max_abs_ref); }
};

template <class A, class B>
Diff diff(const A& got, const B& want) {
  Diff d;
  auto g = got.begin();
  for (auto w = want.begin(); w != want.end(); ++w, ++g) {
    d.max_abs_ref = std::max(d.max_abs_ref, std::fabs(double(*w)));
    const double e = std::fabs(double(*g) - double(*w));
    d.max_abs_err = std::isnan(e) ? INFINITY : std::max(d.max_abs_err, e);
  }
  return d;
}

/// REQUIREs equal shapes and the accuracy contract.
template <class A, class B>
void require_close(const A& got, const B& want, const std::string& what) {
  INFO(what << ": got shape " << db::shape_str(db::tensor_shape(got)) << ", want "
            << db::shape_str(db::tensor_shape(want)));
  REQUIRE(db::tensor_shape(got) == db::tensor_shape(want));
  const Diff d = diff(got, want);
  INFO(what << ": max|err| = " << d.max_abs_err << ", max|ref| = " << d.max_abs_ref);
  REQUIRE(d.within_contract());
}

/// A float32 reference output that knows which fixture case it is ("blocks/linear/output",
/// "origin_a/out"): the key of its peer error for the half-precision contract
/// (tests/parity/device.hpp's require_close).
template <std::size_t N>
struct Reference : db::Tensor<float, N> {
  std::string key;
  Reference(db::Tensor<float, N> t, std::string k) : db::Tensor<float, N>(std::move(t)), key(std::move(k)) {}
};

/// Tensor `name` of fixture file `file` (relative to tests/fixtures) as the reference output of
/// case `case_key` (tools/reference/make_half_fixtures.py's names: "origin_a", "sample_ode").
template <std::size_t N>
Reference<N> reference(const std::string& file, const std::string& name, const std::string& case_key) {
  return Reference<N>(read_tensor<N>(db::SafeTensors::load(fixture(file)), name), case_key + "/" + name);
}

/// A block fixture: the block's state_dict, `input.*` tensors and `output`, config in metadata.
struct BlockFixture {
  db::SafeTensors st;
  nlohmann::json config;

  std::string case_key;  // "blocks/<name>", "diffusers/blocks/<name>"

  explicit BlockFixture(const std::string& name, const std::string& dir = "blocks")
      : st(db::SafeTensors::load(fixture(dir + "/" + name + ".safetensors"))), case_key(dir + "/" + name) {
    config = nlohmann::json::parse(st.metadata().at("config"));
  }
  template <std::size_t N>
  db::Tensor<float, N> input(const std::string& n) const { return read_tensor<N>(st, "input." + n); }
  template <std::size_t N>
  Reference<N> output(const std::string& name = "output") const {
    return Reference<N>(read_tensor<N>(st, name), case_key + "/" + name);
  }
  int cfg(const char* key) const { return config.at(key).get<int>(); }

  /// Loads every parameter of `m` (on its own device); any other key that is not an
  /// input/output fails the test, so a block that forgets to report a parameter cannot pass.
  template <class M>
  void load(M& m) const {
    db::StateDict sd(st);
    db::load_state_dict<typename M::device_type>(m, sd, false);
    for (const auto& k : sd.unused()) {
      INFO("fixture key not loaded by the block: " << k);
      REQUIRE((k.rfind("input.", 0) == 0 || k.rfind("output", 0) == 0));
    }
  }
};

/// Diffuser forward inputs from a fixture's inputs.safetensors (diffusers' argument names).
inline db::DiffuserInputs<float> read_diffuser_inputs(const db::SafeTensors& in) {
  db::DiffuserInputs<float> d;
  d.sample = read_tensor<4>(in, "sample");
  const auto& ts = in.info("timestep");
  d.timestep = db::Tensor<float, 1>::from_shape({ts.shape.empty() ? 1 : std::size_t(ts.shape[0])});
  in.read_numeric(ts, d.timestep.data());
  if (in.contains("encoder_hidden_states")) d.encoder_hidden_states = read_tensor<3>(in, "encoder_hidden_states");
  if (in.contains("class_labels")) d.class_labels = in.read_int("class_labels");
  if (in.contains("image_embeds")) d.image_embeds = read_tensor<2>(in, "image_embeds");
  if (in.contains("hint")) d.hint = read_tensor<4>(in, "hint");
  if (in.contains("text_embeds")) d.text_embeds = read_tensor<2>(in, "text_embeds");
  if (in.contains("time_ids")) d.time_ids = read_tensor<2>(in, "time_ids");
  return d;
}

/// An Origin fixture: the model (loaded on device D in type T) and the host float32 inputs of
/// its inputs file.
template <class D = db::Cpu, class T = float>
struct OriginCase {
  std::unique_ptr<db::GradLogPEstimator2d<T, D>> model;
  db::Tensor<float, 3> x, mask, mu;
  db::Tensor<float, 1> t;
  db::OriginConditioning<float> cond;
};

template <class D = db::Cpu, class T = float>
OriginCase<D, T> load_origin_case(const std::string& model_path, const std::string& inputs_path) {
  OriginCase<D, T> c;
  c.model = db::load_origin<T, D>(model_path);
  const auto in = db::SafeTensors::load(inputs_path);
  c.x = read_tensor<3>(in, "x");
  c.mask = read_tensor<3>(in, "mask");
  c.mu = read_tensor<3>(in, "mu");
  c.t = read_tensor<1>(in, "t");
  if (in.contains("spk")) c.cond.spk = read_tensor<2>(in, "spk");
  if (in.contains("spk_id")) c.cond.spk_id = in.read_int("spk_id");
  if (in.contains("emo")) c.cond.emo = read_tensor<2>(in, "emo");
  if (in.contains("emo_id")) c.cond.emo_id = in.read_int("emo_id");
  if (in.contains("psd")) c.cond.psd = read_tensor<3>(in, "psd");
  return c;
}

/// The sample_ode fixture: the model on device D in type T and the host inputs z, mask, mu
/// (float32: the sampler's state in every model type).
template <class D = db::Cpu, class T = float>
struct SampleFixture {
  std::unique_ptr<db::GradLogPEstimator2d<T, D>> model;
  db::Tensor<float, 3> z, mask, mu;
  SampleFixture() {
    model = db::load_origin<T, D>(fixture("sample_ode"));
    const auto in = db::SafeTensors::load(fixture("sample_ode/inputs.safetensors"));
    z = read_tensor<3>(in, "z");
    mask = read_tensor<3>(in, "mask");
    mu = read_tensor<3>(in, "mu");
  }
  static db::GradTTSSamplerOptions options(int steps, bool stochastic, std::uint64_t seed) {
    db::GradTTSSamplerOptions opt;
    opt.steps = steps;
    opt.stochastic = stochastic;
    opt.seed = seed;
    return opt;
  }
};

/// The stochastic sampler on a SampleFixture `c` (c.sample(steps, stochastic, seed) -> host
/// tensor): reproducible by seed, another seed or the ODE give other samples, all finite, and
/// item 1's padded frames exactly zero.
template <class Case>
void check_stochastic_sampler(const Case& c) {
  const auto a = c.sample(4, true, 42), b = c.sample(4, true, 42), d = c.sample(4, true, 43), ode = c.sample(4);
  REQUIRE(std::equal(a.begin(), a.end(), b.begin()));
  REQUIRE(diff(a, d).max_abs_err > 1e-3);
  REQUIRE(diff(a, ode).max_abs_err > 1e-3);
  for (float v : a) REQUIRE(std::isfinite(v));
  for (std::size_t f = 0; f < a.shape(1); ++f)
    for (std::size_t w = 0; w < a.shape(2); ++w)
      if (c.mask(1, 0, w) == 0.0f) REQUIRE(a(1, f, w) == 0.0f);
}

/// Rewrites a fixture model with one tensor changed by `edit` (name -> new name/shape/data).
inline std::string rewrite_model(const std::string& src_dir, const std::string& name,
                          const std::function<void(std::vector<db::TensorToWrite>&)>& edit) {
  auto ts = read_all(db::SafeTensors::load(fixture(src_dir + "/model.safetensors")));
  edit(ts);
  const std::string dir = tmp_path(name);
  std::filesystem::create_directories(dir);
  db::save_safetensors(dir + "/model.safetensors", ts);
  std::filesystem::copy_file(fixture(src_dir + "/config.json"), dir + "/config.json",
                             std::filesystem::copy_options::overwrite_existing);
  return dir;
}

}  // namespace dbt
