// Load a converted Grad-TTS decoder and synthesise a mel with the reverse-diffusion sampler
// (Euler ODE): the README's API example.
//   synthesize MODEL_DIR INPUTS.safetensors [STEPS]      (STEPS defaults to 10)
//   e.g. build/bin/synthesize examples/data/demo_model examples/data/demo_inputs.safetensors 10
// MODEL_DIR: config.json + model.safetensors (tools/convert_gradtts.py writes one from a
// Grad-TTS .pt). INPUTS holds z (B, n_feats, T), mu (B, n_feats, T) and mask (B, 1, T), as the
// CLI's `sample` command expects; T must be a multiple of 2^(levels-1) (db::pad_frames).
// Prints "step i/N <seconds>" after every step (GradTTSSamplerOptions::progress) and writes
// mel.safetensors (tensor "mel") to the working directory.
#include <cstdio>

#include "diffblocks/diffblocks.hpp"

namespace db = diffblocks;

static db::Tensor<float, 3> read3(const db::SafeTensors& file, const std::string& name) {
  const auto& info = file.info(name);
  auto t = db::Tensor<float, 3>::from_shape({std::size_t(info.shape.at(0)), std::size_t(info.shape.at(1)),
                                             std::size_t(info.shape.at(2))});
  file.read_float(info, t.data());
  return t;
}

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR INPUTS.safetensors [STEPS]\n", argv[0]);
    return 1;
  }
  db::set_num_threads(2);
  auto model = db::load_origin(argv[1]);  // config.json + model.safetensors, strict
  const auto inputs = db::SafeTensors::load(argv[2]);
  const auto z = read3(inputs, "z"), mu = read3(inputs, "mu"), mask = read3(inputs, "mask");

  db::GradTTSSamplerOptions opt;
  opt.steps = argc > 3 ? std::atoi(argv[3]) : 10;
  opt.progress = [](int step, int steps, double secs) { std::printf("step %d/%d %.3f s\n", step, steps, secs); };
  const db::Tensor<float, 3> mel = db::reverse_diffusion(*model, z, mask, mu, opt);

  db::TensorToWrite out;
  out.name = "mel";
  out.shape = db::tensor_shape(mel);
  out.f32.assign(mel.begin(), mel.end());
  db::save_safetensors("mel.safetensors", {out});
  std::printf("wrote mel.safetensors %s\n", db::shape_str(out.shape).c_str());
  return 0;
} catch (const db::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
