// The CLI's CUDA backend (see cuda_backend.hpp): the only nvcc translation unit of the CLI.
#include "cuda_backend.hpp"

#include <chrono>
#include <memory>

#include "diffblocks/cuda.hpp"
#include "diffblocks/unets/load.hpp"
#include "diffblocks/unets/transfer.hpp"

namespace cli_cuda {

using db::Cuda;

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

std::string require_device() {
  db::cuda::require_device();
  return db::cuda::device_description();
}

db::Tensor<float, 3> origin_forward(const db::ModelFile& mf, const db::Tensor<float, 3>& x,
                                    const db::Tensor<float, 3>& mask, const db::Tensor<float, 3>& mu,
                                    const db::Tensor<float, 1>& t, const db::OriginConditioning<float>& cond,
                                    double& seconds) {
  auto model = db::load_origin<float, Cuda>(mf);
  const auto start = std::chrono::steady_clock::now();
  const auto out = model->forward(db::cuda::upload(x), db::cuda::upload(mask), db::cuda::upload(mu),
                                  db::cuda::upload(t), db::to_device(Cuda{}, cond));
  auto host = db::cuda::download(out);
  seconds = seconds_since(start);
  return host;
}

db::Tensor<float, 3> origin_sample(const db::ModelFile& mf, const db::Tensor<float, 3>& z,
                                   const db::Tensor<float, 3>& mask, const db::Tensor<float, 3>& mu,
                                   const db::OriginConditioning<float>& cond, const db::GradTTSSamplerOptions& opt) {
  auto model = db::load_origin<float, Cuda>(mf);
  const auto out = db::reverse_diffusion(*model, db::cuda::upload(z), db::cuda::upload(mask), db::cuda::upload(mu),
                                         opt, db::to_device(Cuda{}, cond));
  return db::cuda::download(out);
}

db::Tensor<float, 4> diffuser_forward(const db::ModelFile& mf, const db::DiffuserInputs<float>& inputs, double& seconds) {
  auto model = db::load_diffuser<float, Cuda>(mf);
  const auto start = std::chrono::steady_clock::now();
  auto host = db::cuda::download(model->forward(db::to_device(Cuda{}, inputs)));
  seconds = seconds_since(start);
  return host;
}

db::Tensor<float, 4> diffuser_sample(const db::ModelFile& mf, const std::string& kind,
                                     const nlohmann::json& scheduler_config, const std::string& origin,
                                     const db::DiffuserInputs<float>& inputs, const db::DiffusersSamplingOptions& opt) {
  auto model = db::load_diffuser<float, Cuda>(mf);
  const auto cfg = db::SchedulerConfig::from_json(scheduler_config, kind, origin);
  std::unique_ptr<db::Scheduler<float, Cuda>> s;
  if (kind == "ddim") s = std::make_unique<db::DDIMScheduler<float, Cuda>>(cfg);
  else if (kind == "ddpm") s = std::make_unique<db::DDPMScheduler<float, Cuda>>(cfg);
  else if (kind == "euler") s = std::make_unique<db::EulerDiscreteScheduler<float, Cuda>>(cfg);
  else throw db::ConfigError("unknown scheduler '" + kind + "'");
  return db::cuda::download(db::diffusers_sample(*model, *s, db::to_device(Cuda{}, inputs), opt));
}

}  // namespace cli_cuda
