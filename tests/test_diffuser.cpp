// The Diffuser U-Net (diffusers 0.25.1 UNet2DConditionModel), its blocks and the schedulers:
// against fixtures written by the real diffusers package (the shared bodies of
// tests/parity/diffuser.hpp, which every device's test binary runs), and the CPU-only checks of
// names, configs, inputs and the TTS helpers.
//
// Also compiled here, since this translation unit already instantiates most CPU ops (build
// time): the op registry on the CPU (tests/parity/ops.hpp: every op of tests/ops/op_cases.hpp
// under every CPU variant of tests/ops/variants.hpp against its plain reference).
#include <fstream>

#include "parity/on_cpu.hpp"
#include "parity/diffuser.hpp"
#include "parity/ops.hpp"

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

// ---- schedulers (the fixtures: tests/parity/diffuser.hpp) --------------------------------

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
