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

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR INPUTS.safetensors [STEPS]\n", argv[0]);
    return 1;
  }
  db::set_num_threads(2);
  auto model = db::load_origin(argv[1]);  // config.json + model.safetensors, strict
  const auto inputs = db::SafeTensors::load(argv[2]);
  const auto z = db::read_tensor<float, 3>(inputs, "z"), mu = db::read_tensor<float, 3>(inputs, "mu");
  const auto mask = db::read_tensor<float, 3>(inputs, "mask");

  db::GradTTSSamplerOptions opt;
  opt.steps = argc > 3 ? std::atoi(argv[3]) : 10;
  opt.progress = [](int step, int steps, double secs) { std::printf("step %d/%d %.3f s\n", step, steps, secs); };
  const db::Tensor<float, 3> mel = db::reverse_diffusion(*model, z, mask, mu, opt);

  db::write_tensors("mel.safetensors", {db::tensor_entry("mel", mel)});
  std::printf("wrote mel.safetensors %s\n", db::shape_str(db::tensor_shape(mel)).c_str());
  return 0;
} catch (const db::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
