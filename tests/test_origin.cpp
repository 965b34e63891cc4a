// The whole Origin U-Net (GradLogPEstimator2d + emotion/prosody) and its Grad-TTS sampler:
// against PyTorch (the shared bodies of tests/parity/origin.hpp and sampler.hpp, which every
// device's test binary runs), every way a checkpoint, config or input can be wrong, and the
// CPU's own promises (the same bits for any thread count, the noise, the progress callback).
// One translation unit for both: they instantiate the same U-Net.
#include <fstream>

#include "parity/on_cpu.hpp"
#include "parity/origin.hpp"
#include "parity/sampler.hpp"

using namespace dbt;
using db::Tensor;

namespace {

using OriginCase = dbt::OriginCase<>;

OriginCase load_case(const std::string& model_path, const std::string& inputs_path) {
  return load_origin_case(model_path, inputs_path);
}

Tensor<float, 3> run(const OriginCase& c) { return c.model->forward(c.x, c.mask, c.mu, c.t, c.cond); }

void write_config(const std::string& dir, const std::string& text) {
  std::ofstream(dir + "/config.json") << text;
}

}  // namespace

TEST_CASE("pad_frames makes any length usable and leaves valid frames unchanged", "[origin]") {
  auto c = load_case(fixture("origin_d"), fixture("origin_d/inputs.safetensors"));
  // Crop item 0 of the fixture to 21 frames: not a multiple of 2, so it must be padded.
  const std::size_t T = 21, Tp = db::fix_len_compatibility(T, 1);
  REQUIRE(Tp == 22);
  auto x = db::pad_frames(c.x, T), mu = db::pad_frames(c.mu, T), mask = db::pad_frames(c.mask, T);
  REQUIRE_THROWS_AS(c.model->forward(x, mask, mu, c.t), db::InputError);
  auto xp = db::pad_frames(x, Tp), mup = db::pad_frames(mu, Tp), maskp = db::pad_frames(mask, Tp);
  REQUIRE(maskp(0, 0, 21) == 0.0f);
  REQUIRE(xp(1, 3, 20) == x(1, 3, 20));
  const auto out = c.model->forward(xp, maskp, mup, c.t);
  REQUIRE(out.shape(2) == Tp);
  for (std::size_t f = 0; f < out.shape(1); ++f) REQUIRE(out(0, f, 21) == 0.0f);
  REQUIRE(db::pad_frames(out, T).shape(2) == T);
}

TEST_CASE("Origin state_dict names and order follow PyTorch registration", "[origin][params]") {
  db::OriginConfig cfg;
  cfg.dim = 32;
  cfg.dim_mults = {1, 2};
  cfg.n_feats = 16;
  cfg.n_spks = 2;
  db::GradLogPEstimator2d<> m(cfg);
  const auto names = db::parameter_list(m);
  REQUIRE(names.size() == 116 + 4);
  REQUIRE(names.front().first == "spk_mlp.0.weight");
  REQUIRE(names[4].first == "mlp.0.weight");
  // ups are registered before the mid blocks; final_conv last.
  std::size_t ups = 0, mid = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i].first.rfind("ups.", 0) == 0) ups = i;
    if (names[i].first == "mid_block1.mlp.1.weight") mid = i;
  }
  REQUIRE(ups < mid);
  REQUIRE(names.back().first == "final_conv.bias");
  REQUIRE(names.back().second == db::Shape{1});
}

TEST_CASE("Origin loading is strict and names the key at fault", "[origin][errors][io]") {
  SECTION("missing key") {
    auto dir = rewrite_model("origin_d", "missing_key", [](auto& ts) {
      ts.erase(std::remove_if(ts.begin(), ts.end(), [](auto& t) { return t.name == "mid_attn.fn.g"; }), ts.end());
    });
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("missing key 'mid_attn.fn.g'"));
  }
  SECTION("unexpected key") {
    auto dir = rewrite_model("origin_d", "extra_key", [](auto& ts) {
      db::TensorToWrite t;
      t.name = "encoder.proj.weight";
      t.shape = {2};
      t.f32 = {1, 2};
      ts.push_back(t);
    });
    REQUIRE_THROWS_AS(db::load_origin(dir), db::LoadError);
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("unexpected key 'encoder.proj.weight'"));
  }
  SECTION("wrong shape names both shapes") {
    auto dir = rewrite_model("origin_d", "bad_shape", [](auto& ts) {
      for (auto& t : ts)
        if (t.name == "final_conv.weight") {
          t.shape = {1, 16, 1, 1};
          t.f32.resize(16);
        }
    });
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("final_conv.weight") &&
                                                  Catch::Contains("[1, 16, 1, 1]") && Catch::Contains("[1, 32, 1, 1]"));
  }
  SECTION("speaker table without speakers") {
    auto dir = rewrite_model("origin_d", "stray_table", [](auto& ts) {
      db::TensorToWrite t;
      t.name = "spk_emb.weight";
      t.shape = {2, 2};
      t.f32 = {1, 2, 3, 4};
      ts.push_back(t);
    });
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("spk_emb.weight"));
  }
}

TEST_CASE("Origin configs are validated by key", "[origin][errors][config]") {
  const std::string dir = rewrite_model("origin_d", "config_cases", [](auto&) {});
  SECTION("no _class_name") {
    write_config(dir, R"({"dim": 32, "dim_mults": [1, 2], "n_feats": 16})");
    REQUIRE_THROWS_AS(db::load_origin(dir), db::ConfigError);
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("_class_name"));
  }
  SECTION("unknown _class_name") {
    write_config(dir, R"({"_class_name": "Estimator9000", "dim": 32})");
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("Estimator9000"));
  }
  SECTION("not JSON") {
    write_config(dir, "{dim: 32");
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("not valid JSON"));
  }
  SECTION("wrong type") {
    write_config(dir, R"({"_class_name": "GradLogPEstimator2d", "dim": "big"})");
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("'dim'"));
  }
  SECTION("n_feats not divisible by 2^(levels-1)") {
    write_config(dir, R"({"_class_name": "GradLogPEstimator2d", "dim": 32, "dim_mults": [1, 2, 4], "n_feats": 78})");
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("'n_feats'"));
  }
  SECTION("unknown key") {
    write_config(dir, R"({"_class_name": "GradLogPEstimator2d", "dim": 32, "dim_mults": [1, 2], "n_feats": 16, "heads": 3})");
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("'heads'"));
  }
  SECTION("missing dim") {
    write_config(dir, R"({"_class_name": "GradLogPEstimator2d"})");
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("'dim'") && Catch::Contains("missing"));
  }
}

TEST_CASE("Origin rejects bad inputs with clear errors", "[origin][errors]") {
  auto c = load_case(fixture("origin_d"), fixture("origin_d/inputs.safetensors"));
  SECTION("T not divisible by 2^(levels-1)") {
    auto x = Tensor<float, 3>::from_shape({2, 16, 23});
    auto mask = Tensor<float, 3>::from_shape({2, 1, 23});
    x.fill(0.f);
    mask.fill(1.f);
    REQUIRE_THROWS_WITH(c.model->forward(x, mask, x, c.t), Catch::Contains("not divisible by 2"));
    REQUIRE(db::fix_len_compatibility(23, 1) == 24);
    REQUIRE(db::fix_len_compatibility(172) == 172);
    REQUIRE(db::fix_len_compatibility(173) == 176);
  }
  SECTION("wrong n_feats") {
    auto x = Tensor<float, 3>::from_shape({2, 12, 24});
    x.fill(0.f);
    REQUIRE_THROWS_WITH(c.model->forward(x, c.mask, x, c.t), Catch::Contains("'x'") && Catch::Contains("[2, 12, 24]"));
  }
  SECTION("mismatched batch") {
    auto t = Tensor<float, 1>::from_shape({3});
    t.fill(0.5f);
    REQUIRE_THROWS_WITH(c.model->forward(c.x, c.mask, c.mu, t), Catch::Contains("'t'"));
  }
  SECTION("mask length differs") {
    auto mask = Tensor<float, 3>::from_shape({2, 1, 20});
    mask.fill(1.f);
    REQUIRE_THROWS_WITH(c.model->forward(c.x, mask, c.mu, c.t), Catch::Contains("'mask'"));
  }
  SECTION("NaN is reported, not propagated") {
    c.mu(1, 3, 5) = std::nanf("");
    REQUIRE_THROWS_AS(c.model->forward(c.x, c.mask, c.mu, c.t), db::InputError);
    REQUIRE_THROWS_WITH(c.model->forward(c.x, c.mask, c.mu, c.t), Catch::Contains("'mu'") && Catch::Contains("NaN"));
  }
  SECTION("conditioning the model does not have") {
    c.cond.psd = Tensor<float, 3>::from_shape({2, 1, 24});
    REQUIRE_THROWS_WITH(c.model->forward(c.x, c.mask, c.mu, c.t, c.cond), Catch::Contains("'psd'"));
  }
  SECTION("speaker ids for a model without speakers: the error names 'spk_id', as given") {
    c.cond.spk_id = {0, 1};
    REQUIRE_THROWS_WITH(c.model->forward(c.x, c.mask, c.mu, c.t, c.cond),
                        Catch::Contains("input 'spk_id' given but the model has no spk conditioning"));
  }
}

TEST_CASE("Origin speaker/emotion inputs are checked", "[origin][errors]") {
  auto c = load_case(fixture("origin_c"), fixture("origin_c/inputs.safetensors"));
  SECTION("missing speaker") {
    c.cond.spk.reset();
    REQUIRE_THROWS_WITH(run(c), Catch::Contains("missing input 'spk'"));
  }
  SECTION("id out of range") {
    c.cond.emo_id = {0, 5};
    REQUIRE_THROWS_WITH(run(c), Catch::Contains("'emo_id'") && Catch::Contains("outside [0, 5)"));
  }
  SECTION("speaker id without a table") {
    c.cond.spk.reset();
    c.cond.spk_id = {0, 1};
    REQUIRE_THROWS_WITH(run(c), Catch::Contains("spk_emb.weight"));
  }
  SECTION("missing psd") {
    c.cond.psd.reset();
    REQUIRE_THROWS_WITH(run(c), Catch::Contains("missing input 'psd'"));
  }
}

// A user-defined attention block snapped into the U-Net through the template parameter.
template <class T, class D>
struct IdentityAttention {
  using scalar_type = T;
  using device_type = D;
  explicit IdentityAttention(int) {}
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const { return x; }
  template <class V>
  void visit(V&&, const std::string& = "") {}
};

TEST_CASE("The U-Net's attention block is a template parameter", "[origin][compose]") {
  db::OriginConfig cfg;
  cfg.dim = 16;
  cfg.dim_mults = {1, 2};
  cfg.n_feats = 8;
  db::GradLogPEstimator2d<float, db::Cpu, IdentityAttention> m(cfg);
  db::GradLogPEstimator2d<> with_linear(cfg);
  // Residual(Rezero(identity)) = (1 + g) x: only the g scalars remain of the attention layers.
  // Attention layers: downs.0 and ups.0 at 16 channels, downs.1 and mid_attn at 32.
  REQUIRE(db::parameter_count(with_linear) - db::parameter_count(m) ==
          2 * (384 * 16 + 16 * 128 + 16) + 2 * (384 * 32 + 32 * 128 + 32));
  auto x = Tensor<float, 3>::from_shape({1, 8, 8});
  auto mask = Tensor<float, 3>::from_shape({1, 1, 8});
  auto t = Tensor<float, 1>::from_shape({1});
  x.fill(0.5f);
  mask.fill(1.f);
  t.fill(0.3f);
  REQUIRE(m.forward(x, mask, x, t).shape(1) == 8);
}

// ---- the Grad-TTS sampler (the fixtures: tests/parity/sampler.hpp) -------------------------------

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
