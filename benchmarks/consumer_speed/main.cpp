// Times the Origin U-Net forward (Grad-TTS's decoder size: dim 64, mults (1, 2, 4), 80 mels,
// all frames valid) as a consumer built with default flags runs it: the model and inputs of
// benchmarks/bench_origin.cpp (weights N(0, 0.02), GroupNorm gamma 1 + N(0, 0.02), Rezero g 0.5;
// x, mu ~ N(0, 1), t = 0.5), two untimed warm-up forwards, then the median wall time of --runs.
//
//   consumer_speed [--frames 512] [--batch 1] [--threads 2] [--runs 10]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <diffblocks/unets/origin.hpp>

namespace db = diffblocks;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// bench_common.hpp's randomize(): the same values in the same order.
template <class Module>
void randomize(Module& m) {
  db::Rng rng(1);
  m.visit([&](const std::string& name, auto& t) {
    const bool rezero = name == "g" || ends_with(name, ".g");
    const double mean = ends_with(name, "block.1.weight") ? 1.0 : 0.0;
    for (auto& x : t) x = rezero ? 0.5f : static_cast<float>(mean + 0.02 * rng.normal());
  });
}

int arg(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) try {
  const int frames = arg(argc, argv, "--frames", 512), batch = arg(argc, argv, "--batch", 1);
  const int threads = arg(argc, argv, "--threads", 2), runs = std::max(1, arg(argc, argv, "--runs", 10));
  db::set_num_threads(threads);

  db::OriginConfig cfg;
  cfg.dim = 64;
  cfg.dim_mults = {1, 2, 4};
  cfg.n_feats = 80;
  db::GradLogPEstimator2d<> net(cfg);
  randomize(net);
  const std::size_t B = static_cast<std::size_t>(batch), T = static_cast<std::size_t>(frames);
  auto x = db::ops::empty<float, 3>(db::Cpu{}, {B, 80, T}), mu = x;
  const auto mask = db::ops::full<float, 3>(db::Cpu{}, {B, 1, T}, 1.0f);
  const auto t = db::ops::full<float, 1>(db::Cpu{}, {B}, 0.5f);
  db::Rng rng(11);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  for (auto& v : mu) v = static_cast<float>(rng.normal());

  for (int i = 0; i < 2; ++i) net.forward(x, mask, mu, t);
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const auto y = net.forward(x, mask, mu, t);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    if (y.size() == 0) return 1;
  }
  std::sort(ms.begin(), ms.end());
  std::printf("consumer_speed: Origin forward T=%d B=%d, %d threads, %s kernels: median %.1f ms, min %.1f ms (%d runs)\n",
              frames, batch, db::get_num_threads(), db::ops::cpu::isa_name(), ms[ms.size() / 2], ms.front(), runs);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "consumer_speed: %s\n", e.what());
  return 1;
}
