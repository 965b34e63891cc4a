#pragma once
// The diffusers side on the device under test (device.hpp), against fixtures written by the real
// diffusers 0.25.1 package (tools/reference/make_diffusers_fixtures.py): every block, the
// Diffuser U-Net (UNet2DConditionModel), the DDPM / DDIM / Euler schedulers step for step and
// over a whole loop, and diffusers_sample.
#include <string>
#include <vector>

#include "device.hpp"

namespace dbt {
inline namespace DBT_SCALAR_NS {

inline BlockFixture dblock(const std::string& name) { return BlockFixture(name, "diffusers/blocks"); }

/// A scheduler fixture: recorded steps, the loop of a fake model, and the scheduler's config.
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
  db::Tensor<float, 4> t4(const std::string& n) const { return read_tensor<4>(st, n); }
  /// The diffusers scheduler config alone: the fixture's own keys (the fake model, the noise,
  /// the step count) would be unknown scheduler keys.
  nlohmann::json scheduler_config() const {
    nlohmann::json c = config;
    for (const char* k :
         {"fake_model", "fake_model_a", "fake_model_b", "noise", "noise_seed", "num_inference_steps", "recorded_steps"})
      c.erase(k);
    return c;
  }
};

/// `loop.variance_noise[k]` of shape (steps, B, C, H, W) as one (B, C, H, W) tensor.
inline db::Tensor<float, 4> noise_at(const SchedulerFixture& f, std::size_t k, const std::vector<std::size_t>& shape) {
  const auto all = f.floats("loop.variance_noise");
  auto t = db::Tensor<float, 4>::from_shape({shape[0], shape[1], shape[2], shape[3]});
  std::copy_n(all.data() + k * t.size(), t.size(), t.data());
  return t;
}

/// Steps every recorded step, then the whole loop with the fixture's fake model (evaluated on
/// the host: model_output = a * x + b * pattern, x = the scaled model input).
inline void check_scheduler(db::Scheduler<float, Dev>& s, const SchedulerFixture& f, bool euler, bool ddpm) {
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
    if (euler) require_close(host(s.scale_model_input(dev_f32(f.t4(p + "sample")), t)), f.t4(p + "scaled_input"), p + "scaled_input");
    const db::Tensor<float, 4, Dev> noise = ddpm ? dev_f32(f.t4(p + "variance_noise")) : db::Tensor<float, 4, Dev>{};
    require_close(host(s.step(dev_f32(f.t4(p + "model_output")), t, dev_f32(f.t4(p + "sample")), rng, ddpm ? &noise : nullptr)),
                  f.t4(p + "prev_sample"), p + "prev_sample");
  }
  s.set_timesteps(n);
  const float a = f.config.at("fake_model_a").get<float>(), b = f.config.at("fake_model_b").get<float>();
  const auto pattern = f.t4("loop.pattern");
  db::Tensor<float, 4, Dev> x = dev_f32(f.t4("loop.init"));
  for (std::size_t k = 0; k < s.timesteps().size(); ++k) {
    const double t = s.timesteps()[k];
    const db::Tensor<float, 4> in = host(s.scale_model_input(x, t));
    db::Tensor<float, 4> eps = db::Tensor<float, 4>::from_shape(in.shape());
    for (std::size_t i = 0; i < eps.size(); ++i) eps.data()[i] = a * in.data()[i] + b * pattern.data()[i];
    const db::Tensor<float, 4, Dev> noise =
        ddpm ? dev_f32(noise_at(f, k, {in.shape(0), in.shape(1), in.shape(2), in.shape(3)})) : db::Tensor<float, 4, Dev>{};
    x = s.step(dev_f32(eps), t, x, rng, ddpm ? &noise : nullptr);
  }
  require_close(host(x), f.t4("loop.out"), "loop.out");
}

}  // namespace DBT_SCALAR_NS
}  // namespace dbt

// ---- blocks ------------------------------------------------------------------------------------

TEST_CASE(DBT_NAME_PREFIX "SiLU and exact GELU match torch", DBT_DEVICE_TAG "[diffuser][blocks]") {
  DBT_REQUIRE_DEVICE();
  SECTION("silu") {
    auto f = dbt::dblock("silu");
    dbt::require_close(dbt::host(diffblocks::SiLU<Scalar, Dev>().forward(dbt::dev(f.input<3>("x")))), f.output<3>(), "silu");
  }
  SECTION("gelu") {
    auto f = dbt::dblock("gelu");
    dbt::require_close(dbt::host(diffblocks::GELU<Scalar, Dev>().forward(dbt::dev(f.input<3>("x")))), f.output<3>(), "gelu");
  }
}

TEST_CASE(DBT_NAME_PREFIX "LayerNorm and GroupNorm(eps 1e-6) match torch", DBT_DEVICE_TAG "[diffuser][blocks][norm]") {
  DBT_REQUIRE_DEVICE();
  SECTION("layer_norm") {
    auto f = dbt::dblock("layer_norm");
    diffblocks::LayerNorm<Scalar, Dev> ln(f.cfg("normalized_shape"), f.config.at("eps").get<double>());
    f.load(ln);
    dbt::require_close(dbt::host(ln.forward(dbt::dev(f.input<3>("x")))), f.output<3>(), "layer_norm");
  }
  SECTION("group_norm_eps6") {
    auto f = dbt::dblock("group_norm_eps6");
    diffblocks::GroupNorm<Scalar, Dev> gn(f.cfg("num_groups"), f.cfg("num_channels"), f.config.at("eps").get<double>());
    f.load(gn);
    dbt::require_close(dbt::host(gn.forward(dbt::dev(f.input<4>("x")))), f.output<4>(), "group_norm_eps6");
  }
}

TEST_CASE(DBT_NAME_PREFIX "AdaGroupNorm matches diffusers", DBT_DEVICE_TAG "[diffuser][blocks][norm]") {
  DBT_REQUIRE_DEVICE();
  auto f = dbt::dblock("ada_group_norm");
  diffblocks::AdaGroupNorm<Scalar, Dev> n(f.cfg("embedding_dim"), f.cfg("out_dim"), f.cfg("num_groups"),
                                         f.config.at("eps").get<double>());
  f.load(n);
  dbt::require_close(dbt::host(n.forward(dbt::dev(f.input<4>("x")), dbt::dev(f.input<2>("emb")))), f.output<4>(),
                     "ada_group_norm");
}

TEST_CASE(DBT_NAME_PREFIX "ResnetBlock2D matches diffusers (default and ada_group)", DBT_DEVICE_TAG "[diffuser][blocks]") {
  DBT_REQUIRE_DEVICE();
  for (const char* name :
       {"resnet_block2d_default", "resnet_block2d_default_same", "resnet_block2d_ada_group", "resnet_block2d_ada_group_same"}) {
    SECTION(name) {
      auto f = dbt::dblock(name);
      diffblocks::ResnetBlock2D<Scalar, Dev> rb(f.cfg("in_channels"), f.cfg("out_channels"), f.cfg("temb_channels"),
                                               f.cfg("groups"), f.config.at("eps").get<double>(),
                                               diffblocks::parse_time_embedding_norm(f.config.at("time_embedding_norm"), name),
                                               f.config.at("output_scale_factor").get<double>());
      f.load(rb);
      dbt::require_close(dbt::host(rb.forward(dbt::dev(f.input<4>("input_tensor")), dbt::dev(f.input<2>("temb")))), f.output<4>(),
                         name);
    }
  }
}

TEST_CASE(DBT_NAME_PREFIX "Downsample2D and Upsample2D match diffusers", DBT_DEVICE_TAG "[diffuser][blocks]") {
  DBT_REQUIRE_DEVICE();
  SECTION("downsample2d") {
    auto f = dbt::dblock("downsample2d");
    diffblocks::Downsample2D<Scalar, Dev> d(f.cfg("channels"), -1, f.cfg("padding"));
    f.load(d);
    dbt::require_close(dbt::host(d.forward(dbt::dev(f.input<4>("hidden_states")))), f.output<4>(), "downsample2d");
  }
  SECTION("upsample2d x2") {
    auto f = dbt::dblock("upsample2d");
    diffblocks::Upsample2D<Scalar, Dev> u(f.cfg("channels"));
    f.load(u);
    dbt::require_close(dbt::host(u.forward(dbt::dev(f.input<4>("hidden_states")))), f.output<4>(), "upsample2d");
  }
  SECTION("upsample2d to an explicit odd size") {
    auto f = dbt::dblock("upsample2d_size");
    diffblocks::Upsample2D<Scalar, Dev> u(f.cfg("channels"));
    f.load(u);
    const auto size = f.config.at("output_size");
    dbt::require_close(
        dbt::host(u.forward(dbt::dev(f.input<4>("hidden_states")), size[0].get<std::size_t>(), size[1].get<std::size_t>())),
        f.output<4>(), "upsample2d_size");
  }
}

TEST_CASE(DBT_NAME_PREFIX "Timesteps and TimestepEmbedding match diffusers", DBT_DEVICE_TAG "[diffuser][blocks][embedding]") {
  DBT_REQUIRE_DEVICE();
  for (const char* name : {"timesteps", "timesteps_odd"}) {
    SECTION(name) {
      auto f = dbt::dblock(name);
      diffblocks::Timesteps<Scalar, Dev> ts(f.cfg("num_channels"), f.config.at("flip_sin_to_cos").get<bool>(),
                                           f.config.at("downscale_freq_shift").get<double>());
      dbt::require_close(dbt::host(ts.forward(dbt::dev_f32(f.input<1>("timesteps")))), f.output<2>(), name);
    }
  }
  SECTION("timestep_embedding") {
    auto f = dbt::dblock("timestep_embedding");
    diffblocks::TimestepEmbedding<Scalar, Dev> te(f.cfg("in_channels"), f.cfg("time_embed_dim"));
    f.load(te);
    dbt::require_close(dbt::host(te.forward(dbt::dev(f.input<2>("sample")))), f.output<2>(), "timestep_embedding");
  }
}

TEST_CASE(DBT_NAME_PREFIX "Attention and CrossAttention match diffusers", DBT_DEVICE_TAG "[diffuser][blocks][attention]") {
  DBT_REQUIRE_DEVICE();
  SECTION("self-attention, 4 heads of 8") {
    auto f = dbt::dblock("attention_self");
    diffblocks::Attention<Scalar, Dev> a(f.cfg("query_dim"), 0, f.cfg("heads"), f.cfg("dim_head"),
                                        f.config.at("bias").get<bool>());
    f.load(a);
    dbt::require_close(dbt::host(a.forward(dbt::dev(f.input<3>("hidden_states")))), f.output<3>(), "attention_self");
  }
  SECTION("cross-attention: queries from content, keys/values from style") {
    auto f = dbt::dblock("attention_cross");
    diffblocks::CrossAttention<Scalar, Dev> a(f.cfg("query_dim"), f.cfg("cross_attention_dim"), f.cfg("heads"), f.cfg("dim_head"));
    f.load(a);
    const auto content = f.input<3>("hidden_states"), style = f.input<3>("encoder_hidden_states");
    REQUIRE(style.shape(1) != content.shape(1));
    dbt::require_close(dbt::host(a.forward(dbt::dev(content), dbt::dev(style))), f.output<3>(), "attention_cross");
  }
  SECTION("cross-attention with a padded style sequence") {
    auto f = dbt::dblock("attention_cross_mask");
    diffblocks::CrossAttention<Scalar, Dev> a(f.cfg("query_dim"), f.cfg("cross_attention_dim"), f.cfg("heads"), f.cfg("dim_head"));
    f.load(a);
    dbt::require_close(dbt::host(a.forward(dbt::dev(f.input<3>("hidden_states")), dbt::dev(f.input<3>("encoder_hidden_states")),
                                           dbt::dev(f.input<2>("encoder_attention_mask")))),
                       f.output<3>(), "attention_cross_mask");
  }
}

TEST_CASE(DBT_NAME_PREFIX "FeedForward (GEGLU) matches diffusers", DBT_DEVICE_TAG "[diffuser][blocks]") {
  DBT_REQUIRE_DEVICE();
  auto f = dbt::dblock("feed_forward_geglu");
  diffblocks::FeedForward<Scalar, Dev> ff(f.cfg("dim"));
  f.load(ff);
  dbt::require_close(dbt::host(ff.forward(dbt::dev(f.input<3>("hidden_states")))), f.output<3>(), "feed_forward_geglu");
}

TEST_CASE(DBT_NAME_PREFIX "BasicTransformerBlock matches diffusers", DBT_DEVICE_TAG "[diffuser][blocks][attention]") {
  DBT_REQUIRE_DEVICE();
  for (const char* name : {"basic_transformer_block", "basic_transformer_block_only_cross"}) {
    SECTION(name) {
      auto f = dbt::dblock(name);
      const bool only_cross = f.config.value("only_cross_attention", false);
      diffblocks::BasicTransformerBlock<Scalar, Dev> b(f.cfg("dim"), f.cfg("num_attention_heads"), f.cfg("attention_head_dim"),
                                                      f.cfg("cross_attention_dim"), only_cross);
      f.load(b);
      dbt::require_close(
          dbt::host(b.forward(dbt::dev(f.input<3>("hidden_states")), dbt::dev(f.input<3>("encoder_hidden_states")))),
          f.output<3>(), name);
    }
  }
}

TEST_CASE(DBT_NAME_PREFIX "Transformer2DModel matches diffusers (conv and linear projections, 2 layers)",
          DBT_DEVICE_TAG "[diffuser][blocks][attention]") {
  DBT_REQUIRE_DEVICE();
  for (const char* name : {"transformer2d", "transformer2d_linear", "transformer2d_2layers"}) {
    SECTION(name) {
      auto f = dbt::dblock(name);
      diffblocks::Transformer2DModel<Scalar, Dev> t(
          f.cfg("num_attention_heads"), f.cfg("attention_head_dim"), f.cfg("in_channels"), f.config.value("num_layers", 1),
          f.cfg("cross_attention_dim"), f.cfg("norm_num_groups"), f.config.value("use_linear_projection", false));
      f.load(t);
      dbt::require_close(
          dbt::host(t.forward(dbt::dev(f.input<4>("hidden_states")), dbt::dev(f.input<3>("encoder_hidden_states")))),
          f.output<4>(), name);
    }
  }
}

TEST_CASE(DBT_NAME_PREFIX "Addition embeddings match diffusers (image, image_hint, text)", DBT_DEVICE_TAG "[diffuser][blocks][embedding]") {
  DBT_REQUIRE_DEVICE();
  SECTION("image") {
    auto f = dbt::dblock("image_time_embedding");
    diffblocks::ImageTimeEmbedding<Scalar, Dev> e(f.cfg("image_embed_dim"), f.cfg("time_embed_dim"));
    f.load(e);
    dbt::require_close(dbt::host(e.forward(dbt::dev(f.input<2>("image_embeds")))), f.output<2>(), "image_time_embedding");
  }
  SECTION("image_hint") {
    auto f = dbt::dblock("image_hint_time_embedding");
    diffblocks::ImageHintTimeEmbedding<Scalar, Dev> e(f.cfg("image_embed_dim"), f.cfg("time_embed_dim"));
    f.load(e);
    const auto [aug, hint] = e.forward(dbt::dev(f.input<2>("image_embeds")), dbt::dev(f.input<4>("hint")));
    dbt::require_close(dbt::host(aug), f.output<2>(), "image_hint aug");
    dbt::require_close(dbt::host(hint), f.output<4>("output.hint"), "image_hint hint");
  }
  SECTION("text") {
    auto f = dbt::dblock("text_time_embedding");
    diffblocks::TextTimeEmbedding<Scalar, Dev> e(f.cfg("encoder_dim"), f.cfg("time_embed_dim"), f.cfg("num_heads"));
    f.load(e);
    dbt::require_close(dbt::host(e.forward(dbt::dev(f.input<3>("hidden_states")))), f.output<2>(), "text_time_embedding");
  }
}

// ---- the U-Net ---------------------------------------------------------------------------------

TEST_CASE(DBT_NAME_PREFIX "Diffuser U-Net reproduces diffusers 0.25.1", DBT_DEVICE_TAG "[diffuser][unet]") {
  DBT_REQUIRE_DEVICE();
  for (const char* name : {"unet_ada_image", "unet_default", "unet_odd_frames", "unet_image_hint", "unet_text", "unet_text_time",
                           "unet_heads", "unet_only_cross"}) {
    SECTION(name) {
      const std::string dir = dbt::fixture(std::string("diffusers/") + name);
      auto model = diffblocks::load_diffuser<Scalar, Dev>(dir);
      const auto inputs = dbt::read_diffuser_inputs(diffblocks::SafeTensors::load(dir + "/inputs.safetensors"));
      const auto want = dbt::reference<4>(std::string("diffusers/") + name + "/expected.safetensors", "out",
                                           std::string("diffusers/") + name);
      dbt::require_close(dbt::host(model->forward(dbt::dev(inputs))), want, name);
    }
  }
}

// ---- schedulers and the sampling loop ------------------------------------------------------------

#ifndef DBT_HALF  // float32 arithmetic whatever the model type: the float32 binaries test it

TEST_CASE(DBT_NAME_PREFIX "DDPMScheduler matches diffusers step for step", DBT_DEVICE_TAG "[scheduler]") {
  DBT_REQUIRE_DEVICE();
  dbt::SchedulerFixture f("ddpm");
  diffblocks::DDPMScheduler<float, Dev> s(diffblocks::SchedulerConfig::from_json(f.scheduler_config(), "ddpm", "ddpm fixture"));
  const auto ac = f.floats("alphas_cumprod");
  const auto mine = diffblocks::SchedulerConfig::from_json(f.scheduler_config(), "ddpm", "ddpm fixture").alphas_cumprod();
  for (std::size_t i = 0; i < ac.size(); ++i) REQUIRE(mine[i] == Approx(ac[i]).epsilon(1e-6));
  dbt::check_scheduler(s, f, false, true);
}

TEST_CASE(DBT_NAME_PREFIX "DDIMScheduler (eta 0) matches diffusers step for step", DBT_DEVICE_TAG "[scheduler]") {
  DBT_REQUIRE_DEVICE();
  dbt::SchedulerFixture f("ddim");
  diffblocks::DDIMScheduler<float, Dev> s(diffblocks::SchedulerConfig::from_json(f.scheduler_config(), "ddim", "ddim fixture"));
  dbt::check_scheduler(s, f, false, false);
}

TEST_CASE(DBT_NAME_PREFIX "EulerDiscreteScheduler matches diffusers step for step", DBT_DEVICE_TAG "[scheduler]") {
  DBT_REQUIRE_DEVICE();
  dbt::SchedulerFixture f("euler_discrete");
  diffblocks::EulerDiscreteScheduler<float, Dev> s(
      diffblocks::SchedulerConfig::from_json(f.scheduler_config(), "euler", "euler fixture"));
  s.set_timesteps(f.config.at("num_inference_steps").get<int>());
  const auto sig = f.floats("sigmas");
  REQUIRE(s.sigmas().size() == sig.size());
  for (std::size_t i = 0; i < sig.size(); ++i) REQUIRE(s.sigmas()[i] == Approx(sig[i]).epsilon(1e-6));
  dbt::check_scheduler(s, f, true, false);
}

#endif  // DBT_HALF

TEST_CASE(DBT_NAME_PREFIX "diffusers_sample: DDIM and Euler reproduce the diffusers loop, DDPM is reproducible by seed",
          DBT_DEVICE_TAG "[scheduler]") {
  DBT_REQUIRE_DEVICE();
  auto unet = diffblocks::load_diffuser<Scalar, Dev>(dbt::fixture("diffusers/unet_default"));
  diffblocks::DiffusersSamplingOptions opt;
  opt.steps = 4;
  auto inputs_of = [](const std::string& path) {  // sampling inputs: no timestep
    const auto in = diffblocks::SafeTensors::load(path);
    diffblocks::DiffuserInputs<float> d;
    d.sample = dbt::read_tensor<4>(in, "sample");
    d.timestep = diffblocks::Tensor<float, 1>::from_shape({1});
    d.encoder_hidden_states = dbt::read_tensor<3>(in, "encoder_hidden_states");
    d.class_labels = in.read_int("class_labels");
    return dbt::dev(d);
  };
  const std::string dir = dbt::fixture("diffusers/sampling/");
  {
    diffblocks::DDIMScheduler<float, Dev> s;
    dbt::require_close(dbt::host(diffblocks::diffusers_sample(*unet, s, inputs_of(dir + "ddim_inputs.safetensors"), opt)),
                       dbt::reference<4>("diffusers/sampling/ddim_expected.safetensors", "out", "diffusers/sampling/ddim"),
                       "ddim loop");
  }
  {
    diffblocks::EulerDiscreteScheduler<float, Dev> s;
    dbt::require_close(dbt::host(diffblocks::diffusers_sample(*unet, s, inputs_of(dir + "euler_inputs.safetensors"), opt)),
                       dbt::reference<4>("diffusers/sampling/euler_expected.safetensors", "out", "diffusers/sampling/euler"),
                       "euler loop");
  }
  {
    diffblocks::DDPMScheduler<float, Dev> s1, s2;
    opt.seed = 11;
    const auto a = dbt::host(diffblocks::diffusers_sample(*unet, s1, inputs_of(dir + "ddim_inputs.safetensors"), opt));
    const auto b = dbt::host(diffblocks::diffusers_sample(*unet, s2, inputs_of(dir + "ddim_inputs.safetensors"), opt));
    REQUIRE(std::equal(a.begin(), a.end(), b.begin()));
    for (float v : a) REQUIRE(std::isfinite(v));
  }
}
