#pragma once
// The CLI's CUDA path behind a plain C++ interface: main.cpp (g++) reads and writes host tensors
// and calls these; cuda_backend.cu (nvcc, built when DIFFBLOCKS_CUDA is ON) uploads the inputs
// once, runs the U-Net or the whole sampler on the GPU and downloads the result once.
#include <string>

#include <nlohmann/json.hpp>

#include "diffblocks/io/model_file.hpp"
#include "diffblocks/sampling/diffusers_sampling.hpp"
#include "diffblocks/sampling/gradtts.hpp"

namespace cli_cuda {

namespace db = diffblocks;

/// Throws diffblocks::CudaError "no CUDA device: <why>" unless a GPU can be used; returns its
/// description ("NVIDIA H200, 132 SMs, ...").
std::string require_device();

/// One Origin forward; `seconds` gets the time from the upload to the downloaded result.
db::Tensor<float, 3> origin_forward(const db::ModelFile& mf, const db::Tensor<float, 3>& x,
                                    const db::Tensor<float, 3>& mask, const db::Tensor<float, 3>& mu,
                                    const db::Tensor<float, 1>& t, const db::OriginConditioning<float>& cond,
                                    double& seconds);

/// Grad-TTS reverse diffusion on the GPU (opt.progress is called after every step).
db::Tensor<float, 3> origin_sample(const db::ModelFile& mf, const db::Tensor<float, 3>& z,
                                   const db::Tensor<float, 3>& mask, const db::Tensor<float, 3>& mu,
                                   const db::OriginConditioning<float>& cond, const db::GradTTSSamplerOptions& opt);

/// One Diffuser forward.
db::Tensor<float, 4> diffuser_forward(const db::ModelFile& mf, const db::DiffuserInputs<float>& inputs, double& seconds);

/// The diffusers sampling loop on the GPU with scheduler `kind` (ddim, ddpm, euler) built from
/// `scheduler_config` (a diffusers scheduler_config.json object; `origin` names it in errors).
db::Tensor<float, 4> diffuser_sample(const db::ModelFile& mf, const std::string& kind,
                                     const nlohmann::json& scheduler_config, const std::string& origin,
                                     const db::DiffuserInputs<float>& inputs, const db::DiffusersSamplingOptions& opt);

}  // namespace cli_cuda
