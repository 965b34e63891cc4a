// The Diffuser U-Net (diffusers 0.25.1 UNet2DConditionModel) and its blocks against fixtures
// written by the real diffusers package (tools/reference/make_diffusers_fixtures.py).
#include <fstream>

#include "helpers.hpp"

using namespace dbt;
using db::Tensor;

namespace {

/// The configuration of shared/reference/diffusers.md section 3.
nlohmann::json reference_config() {
  return nlohmann::json::parse(R"({
    "_class_name": "UNet2DConditionModel", "in_channels": 2, "out_channels": 1,
    "block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 8,
    "cross_attention_dim": 48, "attention_head_dim": 8, "num_class_embeds": 5,
    "resnet_time_scale_shift": "ada_group",
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "addition_embed_type": "image", "encoder_hid_dim": 48})");
}

}  // namespace

TEST_CASE("Diffuser state_dict matches diffusers' names, order and sizes", "[diffuser][params]") {
  const auto cfg = db::DiffuserConfig::from_json(reference_config());
  db::UNet2DConditionModel<> m(cfg);
  const auto names = db::parameter_list(m);
  REQUIRE(names.size() == 199);
  REQUIRE(db::parameter_count(m) == 1202001);
  REQUIRE(names[0].first == "conv_in.weight");
  REQUIRE(names[6].first == "encoder_hid_proj.weight");
  REQUIRE(names[8].first == "class_embedding.weight");
  REQUIRE(names[9].first == "add_embedding.image_proj.weight");
  REQUIRE(names[13].first == "down_blocks.0.resnets.0.norm1.linear.weight");
  REQUIRE(names[13].second == db::Shape{64, 128});
  REQUIRE(names.back().first == "conv_out.bias");
  std::size_t first_up = 0, first_mid = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!first_up && names[i].first.rfind("up_blocks.", 0) == 0) first_up = i;
    if (!first_mid && names[i].first.rfind("mid_block.", 0) == 0) first_mid = i;
  }
  REQUIRE(first_up < first_mid);
  auto c2 = reference_config();
  c2["resnet_time_scale_shift"] = "default";
  db::UNet2DConditionModel<> d(db::DiffuserConfig::from_json(c2));
  REQUIRE(db::parameter_list(d).size() == 215);
}

TEST_CASE("Diffuser configs: unsupported options are rejected by name", "[diffuser][errors][config]") {
  auto with = [](const char* key, nlohmann::json value) {
    auto c = reference_config();
    c[key] = value;
    return c;
  };
  auto rejects = [](const nlohmann::json& c, const std::string& needle) {
    INFO(c.dump());
    REQUIRE_THROWS_AS(db::DiffuserConfig::from_json(c, "config.json"), db::ConfigError);
    REQUIRE_THROWS_WITH(db::DiffuserConfig::from_json(c, "config.json"), Catch::Contains(needle));
  };
  rejects(with("class_embed_type", "timestep"), "'class_embed_type'");
  rejects(with("addition_embed_type", "text_image"), "text_image");
  rejects(with("resnet_time_scale_shift", "scale_shift"), "scale_shift");
  rejects(with("num_attention_heads", 4), "'num_attention_heads'");
  rejects(with("attention_head_dim", 7), "'attention_head_dim'");
  rejects(with("dual_cross_attention", true), "'dual_cross_attention'");
  rejects(with("time_embedding_type", "fourier"), "'time_embedding_type'");
  rejects(with("down_block_types", {"DownBlock2D", "SimpleCrossAttnDownBlock2D"}), "SimpleCrossAttnDownBlock2D");
  rejects(with("mid_block_type", "UNetMidBlock2DSimpleCrossAttn"), "'mid_block_type'");
  rejects(with("layers_per_block", {1, 2, 3}), "'layers_per_block'");
  rejects(with("norm_num_groups", 7), "'norm_num_groups'");
  rejects(with("frobnicate", 1), "unknown config key 'frobnicate'");
  rejects(with("act_fn", "mish"), "'act_fn'");
  // Accepted: options with no effect in float32 inference, and private keys.
  REQUIRE_NOTHROW(db::DiffuserConfig::from_json(with("upcast_attention", true)));
  REQUIRE_NOTHROW(db::DiffuserConfig::from_json(with("_diffusers_version", "0.25.1")));
  REQUIRE_NOTHROW(db::DiffuserConfig::from_json(with("dropout", 0.1)));
}

TEST_CASE("Diffuser inputs are checked by name", "[diffuser][errors]") {
  db::UNet2DConditionModel<> m(db::DiffuserConfig::from_json(reference_config()));
  db::DiffuserInputs<float> in;
  in.sample = Tensor<float, 4>::from_shape({2, 2, 16, 24});
  in.sample.fill(0.1f);
  in.timestep = Tensor<float, 1>::from_shape({1});
  in.timestep.fill(500.f);
  in.encoder_hidden_states = Tensor<float, 3>::from_shape({2, 7, 48});
  in.encoder_hidden_states->fill(0.2f);
  in.class_labels = {1, 3};
  in.image_embeds = Tensor<float, 2>::from_shape({2, 48});
  in.image_embeds->fill(0.3f);
  REQUIRE(m.forward(in).shape(1) == 1);  // all zero weights, but a complete, valid call
  SECTION("missing class labels") {
    in.class_labels.clear();
    REQUIRE_THROWS_WITH(m.forward(in), Catch::Contains("'class_labels'"));
  }
  SECTION("class label out of range") {
    in.class_labels = {1, 5};
    REQUIRE_THROWS_WITH(m.forward(in), Catch::Contains("class_labels") && Catch::Contains("outside [0, 5)"));
  }
  SECTION("sample channels") {
    in.sample = Tensor<float, 4>::from_shape({2, 3, 16, 24});
    in.sample.fill(0.f);
    REQUIRE_THROWS_WITH(m.forward(in), Catch::Contains("'sample'") && Catch::Contains("[2, 3, 16, 24]"));
  }
  SECTION("style width") {
    in.encoder_hidden_states = Tensor<float, 3>::from_shape({2, 7, 40});
    in.encoder_hidden_states->fill(0.f);
    REQUIRE_THROWS_WITH(m.forward(in), Catch::Contains("'encoder_hidden_states'") && Catch::Contains("48"));
  }
  SECTION("missing added condition") {
    in.image_embeds.reset();
    REQUIRE_THROWS_WITH(m.forward(in), Catch::Contains("missing input 'image_embeds'"));
  }
  SECTION("an added condition the config does not use") {
    in.text_embeds = Tensor<float, 2>::from_shape({2, 4});
    REQUIRE_THROWS_WITH(m.forward(in), Catch::Contains("'text_embeds'"));
  }
  SECTION("NaN") {
    (*in.encoder_hidden_states)(1, 2, 3) = std::nanf("");
    REQUIRE_THROWS_WITH(m.forward(in), Catch::Contains("'encoder_hidden_states' holds NaN"));
  }
  SECTION("timestep batch") {
    in.timestep = Tensor<float, 1>::from_shape({3});
    in.timestep.fill(1.f);
    REQUIRE_THROWS_WITH(m.forward(in), Catch::Contains("'timestep'"));
  }
}

TEST_CASE("TTS conditioning helpers build the Diffuser's inputs", "[diffuser][tts]") {
  auto mel = Tensor<float, 3>::from_shape({2, 4, 6});
  for (std::size_t i = 0; i < mel.size(); ++i) mel.data()[i] = float(i);
  auto spk = Tensor<float, 2>::from_shape({2, 4});
  for (std::size_t i = 0; i < spk.size(); ++i) spk.data()[i] = -float(i);
  const auto plane = db::tts::speaker_plane(spk, 6);
  REQUIRE(plane(1, 2, 5) == spk(1, 2));
  const auto sample = db::tts::make_sample(mel, plane);
  REQUIRE(db::tensor_shape(sample) == db::Shape{2, 2, 4, 6});
  REQUIRE(sample(1, 0, 3, 4) == mel(1, 3, 4));
  REQUIRE(sample(1, 1, 3, 4) == spk(1, 3));

  auto psd = Tensor<float, 3>::from_shape({2, 3, 6});
  auto mask = Tensor<float, 3>::from_shape({2, 1, 6});
  mask.fill(1.f);
  for (std::size_t t = 4; t < 6; ++t) mask(1, 0, t) = 0.f;
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t t = 0; t < 6; ++t) psd(b, c, t) = float(c + (t % 2));
  psd(1, 0, 5) = 100.f;  // padding must not count
  const auto v = db::tts::psd_vector(psd, mask);
  REQUIRE(v(1, 0) == Approx(0.5));
  REQUIRE(v(1, 3) == Approx(0.5));  // std of {0, 1, 0, 1}
  REQUIRE(v(0, 2) == Approx(2.5));
  const auto hint = db::tts::psd_hint(psd, 4);
  REQUIRE(db::tensor_shape(hint) == db::Shape{2, 3, 32, 48});
  REQUIRE(hint(1, 2, 31, 8 * 3 + 7) == psd(1, 2, 3));
  const auto sm = db::tts::style_mask<float>({3, 5}, 5);
  REQUIRE(sm(0, 2) == 1.f);
  REQUIRE(sm(0, 3) == 0.f);
  REQUIRE_THROWS_AS(db::tts::style_mask<float>({6}, 5), db::InputError);
  REQUIRE_THROWS_AS(db::tts::psd_vector(psd, Tensor<float, 3>::from_shape({2, 1, 5})), db::InputError);
}

// ---- blocks against diffusers 0.25.1 -------------------------------------------------------

namespace {
BlockFixture dblock(const std::string& name) { return BlockFixture(name, "diffusers/blocks"); }
}  // namespace

TEST_CASE("SiLU and exact GELU match torch", "[diffuser][blocks]") {
  SECTION("silu") {
    auto f = dblock("silu");
    require_close(db::SiLU<>().forward(f.input<3>("x")), f.output<3>(), "silu");
  }
  SECTION("gelu") {
    auto f = dblock("gelu");
    require_close(db::GELU<>().forward(f.input<3>("x")), f.output<3>(), "gelu");
  }
}

TEST_CASE("LayerNorm and GroupNorm(eps 1e-6) match torch", "[diffuser][blocks][norm]") {
  SECTION("layer_norm") {
    auto f = dblock("layer_norm");
    db::LayerNorm<> ln(f.cfg("normalized_shape"), f.config.at("eps").get<double>());
    f.load(ln);
    require_close(ln.forward(f.input<3>("x")), f.output<3>(), "layer_norm");
  }
  SECTION("group_norm_eps6") {
    auto f = dblock("group_norm_eps6");
    db::GroupNorm<> gn(f.cfg("num_groups"), f.cfg("num_channels"), f.config.at("eps").get<double>());
    f.load(gn);
    require_close(gn.forward(f.input<4>("x")), f.output<4>(), "group_norm_eps6");
  }
}

TEST_CASE("AdaGroupNorm matches diffusers", "[diffuser][blocks][norm]") {
  auto f = dblock("ada_group_norm");
  db::AdaGroupNorm<> n(f.cfg("embedding_dim"), f.cfg("out_dim"), f.cfg("num_groups"), f.config.at("eps").get<double>());
  f.load(n);
  require_close(n.forward(f.input<4>("x"), f.input<2>("emb")), f.output<4>(), "ada_group_norm");
}

TEST_CASE("ResnetBlock2D matches diffusers (default and ada_group)", "[diffuser][blocks]") {
  for (const char* name : {"resnet_block2d_default", "resnet_block2d_default_same", "resnet_block2d_ada_group",
                           "resnet_block2d_ada_group_same"}) {
    SECTION(name) {
      auto f = dblock(name);
      db::ResnetBlock2D<> rb(f.cfg("in_channels"), f.cfg("out_channels"), f.cfg("temb_channels"), f.cfg("groups"),
                             f.config.at("eps").get<double>(),
                             db::parse_time_embedding_norm(f.config.at("time_embedding_norm"), name),
                             f.config.at("output_scale_factor").get<double>());
      f.load(rb);
      require_close(rb.forward(f.input<4>("input_tensor"), f.input<2>("temb")), f.output<4>(), name);
    }
  }
}

TEST_CASE("Downsample2D and Upsample2D match diffusers", "[diffuser][blocks]") {
  SECTION("downsample2d") {
    auto f = dblock("downsample2d");
    db::Downsample2D<> d(f.cfg("channels"), -1, f.cfg("padding"));
    f.load(d);
    require_close(d.forward(f.input<4>("hidden_states")), f.output<4>(), "downsample2d");
  }
  SECTION("upsample2d x2") {
    auto f = dblock("upsample2d");
    db::Upsample2D<> u(f.cfg("channels"));
    f.load(u);
    require_close(u.forward(f.input<4>("hidden_states")), f.output<4>(), "upsample2d");
  }
  SECTION("upsample2d to an explicit odd size") {
    auto f = dblock("upsample2d_size");
    db::Upsample2D<> u(f.cfg("channels"));
    f.load(u);
    const auto size = f.config.at("output_size");
    require_close(u.forward(f.input<4>("hidden_states"), size[0].get<std::size_t>(), size[1].get<std::size_t>()),
                  f.output<4>(), "upsample2d_size");
  }
}

TEST_CASE("Timesteps and TimestepEmbedding match diffusers", "[diffuser][blocks][embedding]") {
  for (const char* name : {"timesteps", "timesteps_odd"}) {
    SECTION(name) {
      auto f = dblock(name);
      db::Timesteps<> ts(f.cfg("num_channels"), f.config.at("flip_sin_to_cos").get<bool>(),
                         f.config.at("downscale_freq_shift").get<double>());
      require_close(ts.forward(f.input<1>("timesteps")), f.output<2>(), name);
    }
  }
  SECTION("timestep_embedding") {
    auto f = dblock("timestep_embedding");
    db::TimestepEmbedding<> te(f.cfg("in_channels"), f.cfg("time_embed_dim"));
    f.load(te);
    require_close(te.forward(f.input<2>("sample")), f.output<2>(), "timestep_embedding");
  }
}

TEST_CASE("Attention and CrossAttention match diffusers", "[diffuser][blocks][attention]") {
  SECTION("self-attention, 4 heads of 8") {
    auto f = dblock("attention_self");
    db::Attention<> a(f.cfg("query_dim"), 0, f.cfg("heads"), f.cfg("dim_head"), f.config.at("bias").get<bool>());
    f.load(a);
    require_close(a.forward(f.input<3>("hidden_states")), f.output<3>(), "attention_self");
  }
  SECTION("cross-attention: queries from content, keys/values from style") {
    auto f = dblock("attention_cross");
    db::CrossAttention<> a(f.cfg("query_dim"), f.cfg("cross_attention_dim"), f.cfg("heads"), f.cfg("dim_head"));
    f.load(a);
    const auto content = f.input<3>("hidden_states"), style = f.input<3>("encoder_hidden_states");
    REQUIRE(style.shape(1) != content.shape(1));
    require_close(a.forward(content, style), f.output<3>(), "attention_cross");
  }
  SECTION("cross-attention with a padded style sequence") {
    auto f = dblock("attention_cross_mask");
    db::CrossAttention<> a(f.cfg("query_dim"), f.cfg("cross_attention_dim"), f.cfg("heads"), f.cfg("dim_head"));
    f.load(a);
    require_close(a.forward(f.input<3>("hidden_states"), f.input<3>("encoder_hidden_states"),
                            f.input<2>("encoder_attention_mask")),
                  f.output<3>(), "attention_cross_mask");
  }
}

TEST_CASE("FeedForward (GEGLU) matches diffusers", "[diffuser][blocks]") {
  auto f = dblock("feed_forward_geglu");
  db::FeedForward<> ff(f.cfg("dim"));
  f.load(ff);
  require_close(ff.forward(f.input<3>("hidden_states")), f.output<3>(), "feed_forward_geglu");
}

TEST_CASE("BasicTransformerBlock matches diffusers", "[diffuser][blocks][attention]") {
  for (const char* name : {"basic_transformer_block", "basic_transformer_block_only_cross"}) {
    SECTION(name) {
      auto f = dblock(name);
      const bool only_cross = f.config.value("only_cross_attention", false);
      db::BasicTransformerBlock<> b(f.cfg("dim"), f.cfg("num_attention_heads"), f.cfg("attention_head_dim"),
                                    f.cfg("cross_attention_dim"), only_cross);
      f.load(b);
      require_close(b.forward(f.input<3>("hidden_states"), f.input<3>("encoder_hidden_states")), f.output<3>(), name);
    }
  }
}

TEST_CASE("Transformer2DModel matches diffusers (conv and linear projections, 2 layers)", "[diffuser][blocks][attention]") {
  for (const char* name : {"transformer2d", "transformer2d_linear", "transformer2d_2layers"}) {
    SECTION(name) {
      auto f = dblock(name);
      db::Transformer2DModel<> t(f.cfg("num_attention_heads"), f.cfg("attention_head_dim"), f.cfg("in_channels"),
                                 f.config.value("num_layers", 1), f.cfg("cross_attention_dim"), f.cfg("norm_num_groups"),
                                 f.config.value("use_linear_projection", false));
      f.load(t);
      require_close(t.forward(f.input<4>("hidden_states"), f.input<3>("encoder_hidden_states")), f.output<4>(), name);
    }
  }
}

TEST_CASE("Addition embeddings match diffusers (image, image_hint, text)", "[diffuser][blocks][embedding]") {
  SECTION("image") {
    auto f = dblock("image_time_embedding");
    db::ImageTimeEmbedding<> e(f.cfg("image_embed_dim"), f.cfg("time_embed_dim"));
    f.load(e);
    require_close(e.forward(f.input<2>("image_embeds")), f.output<2>(), "image_time_embedding");
  }
  SECTION("image_hint") {
    auto f = dblock("image_hint_time_embedding");
    db::ImageHintTimeEmbedding<> e(f.cfg("image_embed_dim"), f.cfg("time_embed_dim"));
    f.load(e);
    const auto [aug, hint] = e.forward(f.input<2>("image_embeds"), f.input<4>("hint"));
    require_close(aug, f.output<2>(), "image_hint aug");
    require_close(hint, f.output<4>("output.hint"), "image_hint hint");
  }
  SECTION("text") {
    auto f = dblock("text_time_embedding");
    db::TextTimeEmbedding<> e(f.cfg("encoder_dim"), f.cfg("time_embed_dim"), f.cfg("num_heads"));
    f.load(e);
    require_close(e.forward(f.input<3>("hidden_states")), f.output<2>(), "text_time_embedding");
  }
}

// ---- whole U-Nets against diffusers 0.25.1 -------------------------------------------------

TEST_CASE("Diffuser U-Net reproduces diffusers 0.25.1", "[diffuser][unet]") {
  for (const char* name : {"unet_ada_image", "unet_default", "unet_odd_frames", "unet_image_hint", "unet_text",
                           "unet_text_time", "unet_heads", "unet_only_cross"}) {
    SECTION(name) {
      const std::string dir = fixture(std::string("diffusers/") + name);
      auto model = db::load_diffuser(dir);
      const auto inputs = read_diffuser_inputs(db::SafeTensors::load(dir + "/inputs.safetensors"));
      const auto want = read_tensor<4>(db::SafeTensors::load(dir + "/expected.safetensors"), "out");
      require_close(model->forward(inputs), want, name);
    }
  }
}

TEST_CASE("Diffuser fixture configs exercise what they claim", "[diffuser][unet]") {
  SECTION("heads != head size") {
    auto m = db::load_diffuser(fixture("diffusers/unet_heads"));
    const auto& attn = m->down_blocks[0].attentions[0].transformer_blocks[0].attn1;
    REQUIRE(attn.heads() == 4);
    REQUIRE(attn.dim_head() == 8);
    REQUIRE(m->down_blocks[0].attentions[0].transformer_blocks.size() == 2);
    REQUIRE(m->down_blocks[0].attentions[0].proj_in_linear.has_value());
  }
  SECTION("odd frame count upsamples to the skip size") {
    const auto in = db::SafeTensors::load(fixture("diffusers/unet_odd_frames/inputs.safetensors"));
    REQUIRE(in.info("sample").shape.back() % 2 == 1);
  }
}

// ---- schedulers against diffusers 0.25.1 ---------------------------------------------------

namespace {

struct SchedulerFixture {
  db::SafeTensors st;
  nlohmann::json config;
  explicit SchedulerFixture(const std::string& name)
      : st(db::SafeTensors::load(fixture("diffusers/schedulers/" + name + ".safetensors"))),
        config(nlohmann::json::parse(st.metadata().at("config"))) {}
  std::vector<float> floats(const std::string& n) const {
    std::vector<float> v(st.info(n).numel());
    st.read_numeric(st.info(n), v.data());
    return v;
  }
  Tensor<float, 4> t4(const std::string& n) const { return read_tensor<4>(st, n); }
  /// The diffusers scheduler config alone: the fixture's own keys (the fake model, the noise,
  /// the step count) would be unknown scheduler keys.
  nlohmann::json scheduler_config() const {
    nlohmann::json c = config;
    for (const char* k : {"fake_model", "fake_model_a", "fake_model_b", "noise", "noise_seed", "num_inference_steps",
                          "recorded_steps"})
      c.erase(k);
    return c;
  }
};

/// `loop.variance_noise[k]` of shape (steps, B, C, H, W) as one (B, C, H, W) tensor.
Tensor<float, 4> noise_at(const SchedulerFixture& f, std::size_t k, const Tensor<float, 4>& like) {
  const auto all = f.floats("loop.variance_noise");
  auto t = Tensor<float, 4>::from_shape(like.shape());
  std::copy_n(all.data() + k * t.size(), t.size(), t.data());
  return t;
}

/// Steps every recorded step, then the whole loop with the fixture's fake model.
void check_scheduler(db::Scheduler<float>& s, const SchedulerFixture& f, bool euler, bool ddpm) {
  const int n = f.config.at("num_inference_steps").get<int>();
  s.set_timesteps(n);
  const auto ts = f.floats("timesteps");
  REQUIRE(s.timesteps().size() == ts.size());
  for (std::size_t i = 0; i < ts.size(); ++i) REQUIRE(s.timesteps()[i] == Approx(ts[i]).epsilon(1e-7));
  REQUIRE(s.init_noise_sigma() == Approx(f.floats("init_noise_sigma")[0]).epsilon(1e-6));
  db::Rng rng(0);
  for (int k : f.config.at("recorded_steps").get<std::vector<int>>()) {
    const std::string p = "step" + std::to_string(k) + ".";
    INFO("recorded step " << k);
    const double t = f.floats(p + "timestep")[0];
    REQUIRE(t == s.timesteps()[k]);
    if (euler) require_close(s.scale_model_input(f.t4(p + "sample"), t), f.t4(p + "scaled_input"), p + "scaled_input");
    const Tensor<float, 4> noise = ddpm ? f.t4(p + "variance_noise") : Tensor<float, 4>{};
    require_close(s.step(f.t4(p + "model_output"), t, f.t4(p + "sample"), rng, ddpm ? &noise : nullptr),
                  f.t4(p + "prev_sample"), p + "prev_sample");
  }
  // The whole loop: model_output = a * x + b * pattern, x = the (scaled) model input.
  s.set_timesteps(n);
  const float a = f.config.at("fake_model_a").get<float>(), b = f.config.at("fake_model_b").get<float>();
  const auto pattern = f.t4("loop.pattern");
  Tensor<float, 4> x = f.t4("loop.init");
  for (std::size_t k = 0; k < s.timesteps().size(); ++k) {
    const double t = s.timesteps()[k];
    const Tensor<float, 4> in = s.scale_model_input(x, t);
    Tensor<float, 4> eps = Tensor<float, 4>::from_shape(in.shape());
    for (std::size_t i = 0; i < eps.size(); ++i) eps.data()[i] = a * in.data()[i] + b * pattern.data()[i];
    const Tensor<float, 4> noise = ddpm ? noise_at(f, k, x) : Tensor<float, 4>{};
    x = s.step(eps, t, x, rng, ddpm ? &noise : nullptr);
  }
  require_close(x, f.t4("loop.out"), "loop.out");
}

}  // namespace

TEST_CASE("DDPMScheduler matches diffusers step for step", "[scheduler]") {
  SchedulerFixture f("ddpm");
  db::DDPMScheduler<> s(db::SchedulerConfig::from_json(f.scheduler_config(), "ddpm", "ddpm fixture"));
  const auto ac = f.floats("alphas_cumprod");
  const auto mine = db::SchedulerConfig::from_json(f.scheduler_config(), "ddpm", "ddpm fixture").alphas_cumprod();
  for (std::size_t i = 0; i < ac.size(); ++i) REQUIRE(mine[i] == Approx(ac[i]).epsilon(1e-6));
  check_scheduler(s, f, false, true);
}

TEST_CASE("DDIMScheduler (eta 0) matches diffusers step for step", "[scheduler]") {
  SchedulerFixture f("ddim");
  db::DDIMScheduler<> s(db::SchedulerConfig::from_json(f.scheduler_config(), "ddim", "ddim fixture"));
  check_scheduler(s, f, false, false);
}

TEST_CASE("EulerDiscreteScheduler matches diffusers step for step", "[scheduler]") {
  SchedulerFixture f("euler_discrete");
  db::EulerDiscreteScheduler<> s(db::SchedulerConfig::from_json(f.scheduler_config(), "euler", "euler fixture"));
  s.set_timesteps(f.config.at("num_inference_steps").get<int>());
  const auto sig = f.floats("sigmas");
  REQUIRE(s.sigmas().size() == sig.size());
  for (std::size_t i = 0; i < sig.size(); ++i) REQUIRE(s.sigmas()[i] == Approx(sig[i]).epsilon(1e-6));
  check_scheduler(s, f, true, false);
}

TEST_CASE("DDPM draws its own noise when none is given, reproducibly", "[scheduler]") {
  db::DDPMScheduler<> s;
  s.set_timesteps(10);
  auto x = Tensor<float, 4>::from_shape({1, 1, 4, 4});
  x.fill(0.3f);
  db::Rng r1(5), r2(5), r3(6);
  const auto a = s.step(x, 500, x, r1), b = s.step(x, 500, x, r2), c = s.step(x, 500, x, r3);
  REQUIRE(std::equal(a.begin(), a.end(), b.begin()));
  REQUIRE_FALSE(std::equal(a.begin(), a.end(), c.begin()));
  REQUIRE_THROWS_AS(s.step(x, 500.5, x, r1), db::InputError);
  auto two = Tensor<float, 4>::from_shape({1, 2, 4, 4});
  two.fill(0.f);
  REQUIRE_THROWS_WITH(s.step(x, 500, two, r1), Catch::Contains("model_output [1, 1, 4, 4]") && Catch::Contains("differ"));
  REQUIRE_THROWS_WITH(db::SchedulerConfig::from_json({{"prediction_type", "v_prediction"}}, "ddim", "cfg"),
                      Catch::Contains("'prediction_type'"));
  REQUIRE_THROWS_WITH(db::SchedulerConfig::from_json({{"use_karras_sigmas", true}}, "euler", "cfg"),
                      Catch::Contains("'use_karras_sigmas'"));
}
