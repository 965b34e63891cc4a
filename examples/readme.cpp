#include <cstdio>
#include <diffblocks/diffblocks.hpp>
namespace db = diffblocks;

int main() {
  db::set_num_threads(2);
  // The decoder: config.json + model.safetensors, every weight matched by its state_dict name.
  auto decoder = db::load_origin("examples/data/demo_model");

  // From your text encoder: mu (B, 80, T), mask (B, 1, T); z = mu + noise / temperature.
  const auto in = db::SafeTensors::load("examples/data/demo_inputs.safetensors");
  const auto z = db::read_tensor<float, 3>(in, "z");  // rank and dtype checked, by name
  const auto mask = db::read_tensor<float, 3>(in, "mask");
  const auto mu = db::read_tensor<float, 3>(in, "mu");

  db::GradTTSSamplerOptions opt;
  opt.steps = 10;
  opt.progress = [](int step, int n, double s) { std::printf("step %d/%d %.3f s\n", step, n, s); };
  const db::Tensor<float, 3> mel = db::reverse_diffusion(*decoder, z, mask, mu, opt);
  db::write_tensors("mel.safetensors", {db::tensor_entry("mel", mel)});  // atomically
  std::printf("mel %s -> mel.safetensors; now your vocoder\n", db::shape_str(db::tensor_shape(mel)).c_str());

  // One block on its own, with PyTorch's semantics and parameter names (.weight, .bias).
  db::GroupNorm<> norm(8, 64);
  const db::Tensor<float, 4> y = norm.forward(db::Tensor<float, 4>::from_shape({1, 64, 80, 172}));

  // Another attention block in the same U-Net: a template argument.
  db::GradLogPEstimator2d<float, db::Cpu, db::SoftmaxSelfAttention> variant(decoder->config());
  return y.size() == 0;
}
