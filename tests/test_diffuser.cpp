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

TEST_CASE("schedulers instantiate", "[scheduler]") {
  db::DDPMScheduler<> ddpm;
  db::DDIMScheduler<> ddim;
  db::EulerDiscreteScheduler<> euler;
  ddpm.set_timesteps(10);
  ddim.set_timesteps(10);
  euler.set_timesteps(10);
  REQUIRE(ddpm.timesteps().front() == 900);
  REQUIRE(euler.timesteps().front() == 999);
}
