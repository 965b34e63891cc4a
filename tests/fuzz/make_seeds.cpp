// Writes the safetensors seed corpus: tiny single-file models (config in __metadata__, every
// parameter present) for each conditioning path of both U-Nets, plus a plain inputs file with
// integer and half-precision tensors. Seeds that load successfully let the fuzzer start from
// deep inside the loader instead of rediscovering the format. Usage: make_seeds OUT_DIR
#include <cstdio>
#include <string>

#include "diffblocks/diffblocks.hpp"

namespace db = diffblocks;

template <class Model>
void write_model(const std::string& path, Model& model, const nlohmann::json& config) {
  db::init_parameters(model, 1);
  std::vector<db::TensorToWrite> ts;
  model.visit([&](const std::string& name, auto& t) {
    db::TensorToWrite w;
    w.name = name;
    w.shape = db::tensor_shape(t);
    w.f32.assign(t.begin(), t.end());
    ts.push_back(std::move(w));
  });
  db::save_safetensors(path, ts, {{"config", config.dump()}});
  std::printf("%s: %zu tensors\n", path.c_str(), ts.size());
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
    return 1;
  }
  const std::string out = argv[1];
  try {
    {  // Origin: plain Grad-TTS, and with speaker, emotion and prosody channels.
      db::OriginConfig c;
      c.dim = 8;
      c.dim_mults = {1, 2};
      c.n_feats = 8;
      db::GradLogPEstimator2d<float> plain(c);
      write_model(out + "/origin_plain.safetensors", plain, c.to_json());
      c.n_spks = 3;
      c.spk_emb_dim = 4;
      c.n_emos = 2;
      c.emo_emb_dim = 4;
      c.n_psd = 2;
      db::GradLogPEstimator2d<float> cond(c);
      write_model(out + "/origin_conditioned.safetensors", cond, c.to_json());
    }
    {  // Diffuser: one cross-attention level, class embedding, "image" addition, ada_group.
      nlohmann::json j = {{"_class_name", "UNet2DConditionModel"},
                          {"in_channels", 2},
                          {"out_channels", 1},
                          {"block_out_channels", {8}},
                          {"down_block_types", {"CrossAttnDownBlock2D"}},
                          {"up_block_types", {"CrossAttnUpBlock2D"}},
                          {"layers_per_block", 1},
                          {"norm_num_groups", 4},
                          {"attention_head_dim", 2},
                          {"cross_attention_dim", 8},
                          {"num_class_embeds", 3}};
      db::UNet2DConditionModel<float> a(db::DiffuserConfig::from_json(j));
      write_model(out + "/diffuser_class.safetensors", a, j);
      j["resnet_time_scale_shift"] = "ada_group";
      j["addition_embed_type"] = "image";
      j["encoder_hid_dim"] = 6;
      j["down_block_types"] = {"DownBlock2D"};
      j["up_block_types"] = {"UpBlock2D"};
      db::UNet2DConditionModel<float> b(db::DiffuserConfig::from_json(j));
      write_model(out + "/diffuser_ada_image.safetensors", b, j);
    }
    {  // An inputs file: float, integer and an empty tensor, no config.
      db::TensorToWrite x{"x", {1, 8, 4}, std::vector<float>(32, 0.5f), {}, false};
      db::TensorToWrite ids{"spk_id", {2}, {}, {0, 2}, true};
      db::TensorToWrite empty{"empty", {0, 3}, {}, {}, false};
      db::save_safetensors(out + "/inputs.safetensors", {x, ids, empty}, {{"note", "seed"}});
    }
  } catch (const db::Error& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
