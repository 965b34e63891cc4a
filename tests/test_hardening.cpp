// Hardening: the fuzz corpus and regressions replayed, the NaN/Inf policy and concurrent use of
// one loaded model (docs/robustness.md).
//
// The replay runs the fuzz targets' seed corpus and every input the fuzzer ever flagged (crash,
// leak, sanitizer report, foreign exception) through the same entry points, so each regression
// stays fixed in every build — plain, sanitised, any compiler — not only in the libFuzzer build.
#include <filesystem>
#include <atomic>
#include <cstring>
#include <thread>
#include <fstream>
#include <iterator>
#include <vector>

#define DBFUZZ_ENTRY dbfuzz_safetensors_one
#include "fuzz/fuzz_safetensors.cpp"
#undef DBFUZZ_ENTRY
#define DBFUZZ_ENTRY dbfuzz_config_one
#include "fuzz/fuzz_config.cpp"
#undef DBFUZZ_ENTRY
#define DBFUZZ_ENTRY dbfuzz_similarity_args_one
#include "fuzz/fuzz_similarity_args.cpp"
#undef DBFUZZ_ENTRY

#include "cli_helpers.hpp"

using namespace dbt;

namespace {

std::vector<std::filesystem::path> files_under(const std::string& dir) {
  std::vector<std::filesystem::path> out;
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  return out;
}

template <class Entry>
std::size_t replay(const std::string& target, Entry entry) {
  const std::string root = std::string(DIFFBLOCKS_FUZZ_DIR);
  std::size_t n = 0;
  for (const char* kind : {"corpus", "regressions"})
    for (const auto& f : files_under(root + "/" + kind + "/" + target)) {
      INFO("input " << f.string());
      std::ifstream in(f, std::ios::binary);
      const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      // Only diffblocks::Error may be thrown inside; anything escaping fails the test here.
      REQUIRE(entry(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()) == 0);
      ++n;
    }
  return n;
}

}  // namespace

TEST_CASE("fuzz corpus and regressions replay cleanly: safetensors reader and loader") {
  CHECK(replay("safetensors", dbfuzz_safetensors_one) >= 5);
}

TEST_CASE("fuzz corpus and regressions replay cleanly: config parser") {
  CHECK(replay("config", dbfuzz_config_one) >= 5);
}

TEST_CASE("fuzz corpus and regressions replay cleanly: similarity option parsers") {
  CHECK(replay("similarity_args", dbfuzz_similarity_args_one) >= 5);
}

// ---- NaN / Inf policy ----------------------------------------------------------------------

TEST_CASE("NaN/Inf policy: a checkpoint weight that is not finite is refused by key", "[hardening][nan]") {
  for (const float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    const std::string what = std::isnan(bad) ? "NaN" : "Inf";
    const std::string dir = rewrite_model("origin_d", "nan_weight_" + std::to_string(std::signbit(bad)) + what,
                                          [&](std::vector<db::TensorToWrite>& ts) {
                                            for (auto& t : ts)
                                              if (t.name == "downs.0.0.block1.block.0.weight") t.f32[7] = bad;
                                          });
    REQUIRE_THROWS_AS(db::load_origin(dir), db::LoadError);
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("'downs.0.0.block1.block.0.weight'") &&
                                                  Catch::Contains(what) && Catch::Contains("flat index 7"));
  }
}

TEST_CASE("NaN/Inf policy: blocks used alone propagate NaN, they neither hide it nor crash", "[hardening][nan]") {
  // Blocks are the inner loop and do not scan their inputs (the U-Nets and samplers do): a NaN
  // given to one reaches its output, as in PyTorch, instead of being replaced by a number.
  auto x = db::Tensor<float, 4>::from_shape({1, 8, 6, 10});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = std::sin(0.37f * float(i));
  x(0, 3, 2, 4) = std::nanf("");
  db::Conv2d<> conv(8, 8, 3, 1, 1);
  db::init_parameters(conv, 3);
  db::GroupNorm<> norm(4, 8);
  db::Mish<> mish;
  for (const auto& y : {conv.forward(x), norm.forward(x), mish.forward(x)}) {
    REQUIRE(y.shape(1) == 8);
    REQUIRE(std::any_of(y.begin(), y.end(), [](float v) { return std::isnan(v); }));
  }
  // GroupNorm's statistics are per group: the groups without the NaN stay finite.
  const auto g = norm.forward(x);
  for (std::size_t c : {0, 1, 4, 5, 6, 7})
    for (std::size_t i = 0; i < 6; ++i)
      for (std::size_t j = 0; j < 10; ++j) REQUIRE(std::isfinite(g(0, c, i, j)));
}

// ---- one loaded model, many threads ----------------------------------------------------------

namespace {

/// Runs `f(i)` on n threads at once (released together) and returns the results.
template <class R, class F>
std::vector<R> concurrently(int n, F f) {
  std::vector<R> out(n);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  std::vector<std::string> errors(n);
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      ++ready;
      while (ready.load() < n) std::this_thread::yield();
      try {
        out[i] = f(i);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) REQUIRE(e.empty());
  return out;
}

template <class A, class B>
bool same_bits(const A& a, const B& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("thread pool: every index once, errors reach the caller, busy and nested calls run serially",
          "[hardening][threads]") {
  const int before = db::get_num_threads();
  for (int threads : {2, 3, 8}) {
    db::set_num_threads(threads);
    // Many back-to-back calls of every size around the piece count (threads x 4): each index is
    // covered exactly once, by contiguous non-empty pieces.
    for (std::ptrdiff_t n : {1, 2, 7, 12, 31, 32, 33, 1000}) {
      for (int rep = 0; rep < 50; ++rep) {
        std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
        std::atomic<int> bad{0};
        db::parallel_for(n, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
          if (b >= e || b < 0 || e > n) ++bad;
          for (std::ptrdiff_t i = b; i < e; ++i) ++hits[static_cast<std::size_t>(i)];
        });
        int wrong = 0;
        for (const auto& h : hits) wrong += h != 1;
        INFO(threads << " threads, n = " << n);
        REQUIRE(bad == 0);
        REQUIRE(wrong == 0);
      }
    }
    // An exception in any piece is rethrown by parallel_for after all pieces finished; the pool
    // stays usable.
    std::atomic<int> done{0};
    REQUIRE_THROWS_AS(db::parallel_for(100, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
                        done += static_cast<int>(e - b);
                        if (b <= 57 && 57 < e) throw db::InputError("piece with 57");
                      }),
                      db::InputError);
    REQUIRE(done == 100);
    // A nested call (from inside a piece) finds the pool busy and runs on its own thread.
    std::atomic<long> sum{0};
    db::parallel_for(8, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
      for (std::ptrdiff_t i = b; i < e; ++i)
        db::parallel_for(10, [&](std::ptrdiff_t ib, std::ptrdiff_t ie) {
          for (std::ptrdiff_t j = ib; j < ie; ++j) sum += i * 10 + j;
        });
    });
    REQUIRE(sum == 79 * 80 / 2);
  }
  db::set_num_threads(before);
}

TEST_CASE("a loaded Origin model serves concurrent forward and sampling calls", "[hardening][threads]") {
  // forward() is const and keeps no per-call state in the model; the thread pool runs a call that
  // finds it busy on the calling thread, so concurrent calls neither block each other nor change
  // a bit of the result.
  const auto model = db::load_origin(fixture("origin_d"));
  const auto in = db::SafeTensors::load(fixture("origin_d/inputs.safetensors"));
  const auto x = read_tensor<3>(in, "x"), mask = read_tensor<3>(in, "mask"), mu = read_tensor<3>(in, "mu");
  const auto t = read_tensor<1>(in, "t");
  const auto serial = model->forward(x, mask, mu, t);
  const auto want = read_tensor<3>(db::SafeTensors::load(fixture("origin_d/expected.safetensors")), "out");
  require_close(serial, want, "origin_d serial");
  const auto outs = concurrently<db::Tensor<float, 3>>(4, [&](int) { return model->forward(x, mask, mu, t); });
  for (const auto& o : outs) REQUIRE(same_bits(o, serial));

  db::GradTTSSamplerOptions opt;
  opt.steps = 3;
  opt.stochastic = true;
  opt.seed = 11;
  const auto one = db::reverse_diffusion(*model, x, mask, mu, opt);
  const auto many = concurrently<db::Tensor<float, 3>>(3, [&](int) { return db::reverse_diffusion(*model, x, mask, mu, opt); });
  for (const auto& o : many) REQUIRE(same_bits(o, one));
}

TEST_CASE("a loaded Diffuser model serves concurrent forward calls", "[hardening][threads]") {
  const std::string dir = fixture("diffusers/unet_heads");
  const auto model = db::load_diffuser(dir);
  const auto inputs = read_diffuser_inputs(db::SafeTensors::load(dir + "/inputs.safetensors"));
  const auto serial = model->forward(inputs);
  require_close(serial, read_tensor<4>(db::SafeTensors::load(dir + "/expected.safetensors"), "out"), "unet_heads");
  const auto outs = concurrently<db::Tensor<float, 4>>(4, [&](int) { return model->forward(inputs); });
  for (const auto& o : outs) REQUIRE(same_bits(o, serial));
}

#ifdef DIFFBLOCKS_CLI
TEST_CASE("NaN/Inf policy: the CLI refuses to write a result that overflowed", "[hardening][nan][cli]") {
  // Finite inputs and weights can still overflow float32 inside the model; `run` then fails with
  // one line naming the position and leaves nothing at --output.
  const std::string dir = rewrite_model("origin_d", "overflowing_model", [](std::vector<db::TensorToWrite>& ts) {
    for (auto& t : ts)
      if (t.name == "final_conv.weight") std::fill(t.f32.begin(), t.f32.end(), 3.0e38f);
  });
  const std::string out = tmp_path("overflow_out.safetensors");
  require_cli_error("run --model " + dir + " --inputs " + fixture("origin_d/inputs.safetensors") + " --output " + out,
                    "the result holds NaN or Inf at flat index", out);
}
#endif

TEST_CASE("memory probe: outstanding and peak bytes of large buffers", "[hardening][memory]") {
  {
    const db::memory::PeakMemoryProbe probe;
    REQUIRE(probe.live_bytes() == 0);
    {
      auto a = db::Tensor<float, 1>::from_shape({1 << 18});  // 1 MiB
      auto b = db::Tensor<float, 1>::from_shape({1 << 18});
      REQUIRE(probe.live_bytes() >= (std::ptrdiff_t{2} << 20));
      auto small = db::Tensor<float, 1>::from_shape({100});  // below 64 KiB: not counted
      REQUIRE(probe.live_bytes() < (std::ptrdiff_t{2} << 20) + (std::ptrdiff_t{1} << 19));
    }
    REQUIRE(probe.live_bytes() == 0);
    REQUIRE(probe.peak_bytes() >= (std::ptrdiff_t{2} << 20));
  }
  // A forward's working set: a peak while it runs, only its output left when it returns.
  const auto model = db::load_origin(fixture("origin_d"));
  const auto in = db::SafeTensors::load(fixture("origin_d/inputs.safetensors"));
  const auto x = read_tensor<3>(in, "x"), mask = read_tensor<3>(in, "mask"), mu = read_tensor<3>(in, "mu");
  const auto t = read_tensor<1>(in, "t");
  const db::memory::PeakMemoryProbe probe;
  {
    const auto y = model->forward(x, mask, mu, t);
    REQUIRE(probe.peak_bytes() > 4 * std::ptrdiff_t(y.size() * sizeof(float)));
  }
  REQUIRE(probe.live_bytes() == 0);
}
