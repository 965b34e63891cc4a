// The whole library in one of the consumer's translation units: the umbrella header and a small
// Origin and Diffuser forward, so that every CPU kernel is instantiated where the consumer's
// warning flags (-Wall -Wextra -Werror; run_consumer.cmake adds -march=native in one mode) see
// it, and the forwards run on the copy of the kernels this CPU picks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <diffblocks/diffblocks.hpp>

namespace db = diffblocks;

namespace {

template <class M>
void fill(M& m) {
  db::Rng rng(1);
  m.visit([&](const std::string&, auto& t) {
    for (auto& v : t) v = static_cast<float>(0.1 * rng.normal());
  });
}

template <class Tn>
bool finite(const Tn& y) {
  for (float v : y)
    if (!std::isfinite(v)) return false;
  return y.size() > 0;
}

}  // namespace

/// What a user's program does with a trained checkpoint: load it, read the inputs with
/// read_tensor, run, compare with PyTorch's output at the accuracy contract. "" when it holds.
std::string check_fixture(const std::string& fixtures) {
  const std::string dir = fixtures + "/origin_b";  // 4 speakers by id, a padded batch
  const auto model = db::load_origin(dir);
  const auto in = db::SafeTensors::load(dir + "/inputs.safetensors");
  db::OriginConditioning<float> cond;
  const auto ids = db::read_tensor<std::int64_t, 1>(in, "spk_id");
  cond.spk_id.assign(ids.begin(), ids.end());
  const auto y = model->forward(db::read_tensor<float, 3>(in, "x"), db::read_tensor<float, 3>(in, "mask"),
                                db::read_tensor<float, 3>(in, "mu"), db::read_tensor<float, 1>(in, "t"), cond);
  const auto ref = db::read_tensor<float, 3>(db::SafeTensors::load(dir + "/expected.safetensors"), "out");
  if (y.shape() != ref.shape()) return "origin_b: shape differs from PyTorch's";
  double err = 0, peak = 1;
  for (std::size_t i = 0; i < y.size(); ++i) {
    err = std::max(err, std::fabs(double(y.data()[i]) - double(ref.data()[i])));
    peak = std::max(peak, std::fabs(double(ref.data()[i])));
  }
  if (!(err <= 1e-4 * peak)) return "origin_b: max abs error " + std::to_string(err) + " against PyTorch";
  return "";
}

/// "Origin and Diffuser forwards OK on the <isa> kernels", or what went wrong.
std::string run_forwards() {
  if (std::string(CONSUMER_FIXTURES).size()) {
    const std::string problem = check_fixture(CONSUMER_FIXTURES);
    if (!problem.empty()) return problem;
  }
  db::OriginConfig cfg;
  cfg.dim = 16;
  cfg.dim_mults = {1, 2};
  cfg.n_feats = 16;
  cfg.groups = 4;
  db::GradLogPEstimator2d<> origin(cfg);
  fill(origin);
  const auto x = db::ops::full<float, 3>(db::Cpu{}, {1, 16, 24}, 0.5f);
  const auto mask = db::ops::full<float, 3>(db::Cpu{}, {1, 1, 24}, 1.0f);
  const auto t = db::ops::full<float, 1>(db::Cpu{}, {1}, 0.5f);
  if (!finite(origin.forward(x, mask, x, t))) return "Origin forward: not finite";

  const auto config = db::DiffuserConfig::from_json(nlohmann::json::parse(R"({
    "_class_name": "UNet2DConditionModel", "in_channels": 2, "out_channels": 1,
    "block_out_channels": [32, 64], "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "norm_num_groups": 8, "cross_attention_dim": 16, "attention_head_dim": 2})"));
  db::UNet2DConditionModel<> diffuser(config);
  fill(diffuser);
  db::DiffuserInputs<float> in;
  in.sample = db::ops::full<float, 4>(db::Cpu{}, {1, 2, 16, 16}, 0.5f);
  in.timestep = db::ops::full<float, 1>(db::Cpu{}, {1}, 10.0f);
  in.encoder_hidden_states = db::ops::full<float, 3>(db::Cpu{}, {1, 4, 16}, 0.25f);
  if (!finite(diffuser.forward(in))) return "Diffuser forward: not finite";
  return std::string(std::string(CONSUMER_FIXTURES).empty() ? "" : "origin_b matches PyTorch, ") +
         "Origin and Diffuser forwards OK on the " + db::ops::cpu::isa_name() + " kernels";
}
