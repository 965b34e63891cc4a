// The diffblocks CLI end to end: run/sample/info on fixtures, and the DESIGN.md error contract
// (one line on stderr, exit status 1, 2 for a usage error, nothing left at --output).
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "../apps/cli/progress.hpp"
#include "cli_helpers.hpp"
#include "process_helpers.hpp"
#include "diffblocks/runtime.hpp"

using namespace dbt;
namespace rt = diffblocks::runtime;

#ifdef DIFFBLOCKS_CLI

TEST_CASE("CLI run reproduces PyTorch on the fixtures", "[cli]") {
  for (const char* c : {"origin_b", "origin_d"}) {
    SECTION(c) {
      const std::string out = tmp_path(std::string("cli_run_") + c + ".safetensors");
      const auto r = cli(std::string("run --model ") + fixture(c) + " --inputs " + fixture(std::string(c) + "/inputs.safetensors") +
                         " --output " + out + " --threads 2");
      INFO(r.err);
      REQUIRE(r.status == 0);
      const auto got = read_tensor<3>(db::SafeTensors::load(out), "out");
      require_close(got, read_tensor<3>(db::SafeTensors::load(fixture(std::string(c) + "/expected.safetensors")), "out"), c);
    }
  }
}

TEST_CASE("CLI sample reproduces reverse_diffusion(stoc=False)", "[cli][sampler]") {
  const std::string out = tmp_path("cli_sample.safetensors");
  const auto r = cli("sample --model " + fixture("sample_ode") + " --inputs " + fixture("sample_ode/inputs.safetensors") +
                     " --output " + out + " --steps 5");
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE(r.err.find("step 5/5") != std::string::npos);
  require_close(read_tensor<3>(db::SafeTensors::load(out), "out"),
                read_tensor<3>(db::SafeTensors::load(fixture("sample_ode/expected.safetensors")), "out"), "cli sample");
  SECTION("stochastic with a seed is reproducible") {
    const std::string a = tmp_path("cli_sde_a.safetensors"), b = tmp_path("cli_sde_b.safetensors");
    const std::string base = "sample --model " + fixture("sample_ode") + " --inputs " +
                             fixture("sample_ode/inputs.safetensors") + " --steps 3 --stochastic --seed 9 --output ";
    REQUIRE(cli(base + a).status == 0);
    REQUIRE(cli(base + b).status == 0);
    REQUIRE(db::SafeTensors::load(a).read_float("out") == db::SafeTensors::load(b).read_float("out"));
  }
}

TEST_CASE("CLI sample and run report timings and the real-time factor", "[cli]") {
  const std::string out = tmp_path("cli_timings.safetensors");
  const std::string sample = "sample --model " + fixture("sample_ode") + " --inputs " +
                             fixture("sample_ode/inputs.safetensors") + " --steps 5 --output " + out;
  SECTION("sample: Grad-TTS's hop 256 at 22050 Hz by default") {
    const auto r = cli(sample + " --progress lines");
    INFO(r.err);
    REQUIRE(r.status == 0);
    for (const char* s : {"timings:\n", "\n  load ", "\n  inputs ", "\n  sample ", "(5 steps, ", "\n  write ",
                          "\n  total ", "step 1/5: ", "step 5/5: "})
      CHECK(r.err.find(s) != std::string::npos);
    // The output is (2, 16, 24): 2 x 24 frames x 256 / 22050 = 0.557 s of audio.
    CHECK(r.err.find("0.56 s of audio (2 x 24 frames, hop 256 at 22050 Hz)") != std::string::npos);
    CHECK(r.err.find("real-time factor ") != std::string::npos);
  }
  SECTION("--hop-length and --sample-rate: 2 x 24 x 512 / 16000 = 1.536 s") {
    const auto r = cli(sample + " --progress none --hop-length 512 --sample-rate 16000");
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.err.find("1.54 s of audio (2 x 24 frames, hop 512 at 16000 Hz)") != std::string::npos);
    CHECK(r.err.find("step 1/5") == std::string::npos);  // none: no per-step report
  }
  SECTION("--progress bar redraws one line in place") {
    const auto r = cli(sample + " --progress bar");
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.err.find("\r[####") != std::string::npos);
    CHECK(r.err.find("] 5/5  ") != std::string::npos);
    CHECK(r.err.find("step 1/5: ") == std::string::npos);
  }
  SECTION("run: one forward pass") {
    const auto r = cli("run --model " + fixture("origin_d") + " --inputs " + fixture("origin_d/inputs.safetensors") +
                       " --output " + out + " --hop-length 100 --sample-rate 1000");
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.err.find("\n  forward ") != std::string::npos);
    CHECK(r.err.find("one forward pass over ") != std::string::npos);
    CHECK(r.err.find(" frames, hop 100 at 1000 Hz)") != std::string::npos);
  }
  SECTION("bad values are usage errors, before any work") {
    require_cli_usage_error(sample + " --progress fancy", "--progress must be auto, bar, lines or none", out);
    require_cli_usage_error(sample + " --hop-length 0", "option --hop-length must be an integer in [1, ", out);
    require_cli_usage_error(sample + " --sample-rate x", "option --sample-rate must be an integer", out);
    require_cli_usage_error("run --model " + fixture("origin_d") + " --inputs " + fixture("origin_d/inputs.safetensors") +
                                " --output " + out + " --progress bar",
                            "option --progress does not apply to run", out);
  }
}

TEST_CASE("CLI progress bar and timings text", "[cli]") {
  using namespace diffblocks_cli;
  CHECK(progress_bar(4, 10, 0.724) == "[#########...............]  4/10  0.181 s/step  ETA 1.086 s");
  CHECK(progress_bar(10, 10, 1.0) == "[########################] 10/10  0.100 s/step  ETA 0.000 s");
  CHECK(progress_bar(0, 3, 0.0) == "[........................] 0/3  0.000 s/step  ETA 0.000 s");
  ProgressMode m{};
  REQUIRE(parse_progress_mode("auto", true, m));
  CHECK(m == ProgressMode::Bar);
  REQUIRE(parse_progress_mode("auto", false, m));
  CHECK(m == ProgressMode::Lines);
  CHECK_FALSE(parse_progress_mode("Bar", true, m));
  Timings t;
  t.task = "sample";
  t.load = 0.5;
  t.compute = 2.0;
  t.steps = 10;
  t.first_step = 0.3;
  t.batch = 1;
  t.frames = 861;  // 861 x 256 / 22050 = 9.996 s
  const std::string text = timings_text(t);
  INFO(text);
  CHECK(text.find("(10 steps, 0.200 s/step, first 0.300 s)") != std::string::npos);
  CHECK(text.find("\n  total       2.500 s\n") != std::string::npos);
  CHECK(text.find("real-time factor 0.200: sampled 10.00 s of audio (1 x 861 frames") != std::string::npos);
}

TEST_CASE("CLI --device: cpu is the default, cuda opens the CUDA module", "[cli]") {
  const std::string out = tmp_path("cli_device.safetensors");
  const std::string base = "run --model " + fixture("origin_d") + " --inputs " + fixture("origin_d/inputs.safetensors") +
                           " --output " + out;
  const std::string sample = "sample --device cuda --model " + fixture("sample_ode") + " --inputs " +
                             fixture("sample_ode/inputs.safetensors") + " --steps 2 --output " + out;
  const auto r = cli(base + " --device cpu");
  INFO(r.err);
  REQUIRE(r.status == 0);
  require_close(read_tensor<3>(db::SafeTensors::load(out), "out"),
                read_tensor<3>(db::SafeTensors::load(fixture("origin_d/expected.safetensors")), "out"), "--device cpu");
  require_cli_usage_error(base + " --device tpu", "--device must be cpu or cuda, got 'tpu'", out);
  SECTION("a module that cannot be used: one line naming it and why, exit 1, nothing written") {
    auto refused = [&](const std::string& module, const std::string& why) {
      ScopedEnv env("DIFFBLOCKS_CUDA_BACKEND", module);
      const std::string line = "--device cuda: could not load the CUDA backend " + module + ": " + why;
      require_cli_error(base + " --device cuda", line, out);
      require_cli_error(sample, line, out);
    };
    refused("/nonexistent/libdiffblocks_cuda.so", "/nonexistent/libdiffblocks_cuda.so: cannot open shared object file");
    refused(DIFFBLOCKS_FAKE_BACKEND_abi999, "built for backend ABI 999");
    refused(DIFFBLOCKS_FAKE_BACKEND_not_a_backend, "not a diffblocks backend");
  }
#ifdef DIFFBLOCKS_CUDA_MODULE
  SECTION("the module next to the CLI: the GPU is used, or its absence named") {
    bool gpu = true;
    try {
      ScopedEnv env("DIFFBLOCKS_CUDA_BACKEND", DIFFBLOCKS_CUDA_MODULE);
      (void)rt::Device::open("cuda");
    } catch (const db::CudaError&) {
      gpu = false;
    }
    if (!gpu) {
      require_cli_error(base + " --device cuda", "--device cuda: no CUDA device: ", out);
      require_cli_error(sample, "--device cuda: no CUDA device: ", out);
    } else {
      const auto g = cli(base + " --device cuda");
      INFO(g.err);
      REQUIRE(g.status == 0);
      REQUIRE(g.err.find("(cuda: ") != std::string::npos);
    }
  }
#else
  SECTION("a build without the module: where it was looked for, and how to build it") {
    require_cli_error(base + " --device cuda", "--device cuda: could not load the CUDA backend libdiffblocks_cuda.so: ", out);
    require_cli_error(sample, "a build with -DDIFFBLOCKS_CUDA=ON makes it", out);
  }
#endif
}

TEST_CASE("CLI links neither the CUDA runtime nor cuBLAS, the CUDA module does", "[cli]") {
  const std::string cli_libs = command_output("ldd '" + std::string(DIFFBLOCKS_CLI) + "'");
  INFO(cli_libs);
  REQUIRE(cli_libs.find("libc.so") != std::string::npos);  // ldd ran and listed something
  REQUIRE(cli_libs.find("libcudart") == std::string::npos);
  REQUIRE(cli_libs.find("libcublas") == std::string::npos);
#ifdef DIFFBLOCKS_CUDA_MODULE
  const std::string module_libs = command_output("ldd '" + std::string(DIFFBLOCKS_CUDA_MODULE) + "'");
  INFO(module_libs);
  REQUIRE(module_libs.find("libcudart") != std::string::npos);
  REQUIRE(module_libs.find("libcublas") != std::string::npos);
#endif
}

TEST_CASE("CLI help prints the usage", "[cli]") {
  const auto r = cli("--help");
  REQUIRE(r.status == 0);
  REQUIRE(r.out.find("diffblocks sample --model PATH") != std::string::npos);
}

TEST_CASE("CLI --version prints the library's version (../shared/DESIGN.md's CLI)", "[cli]") {
  const auto r = cli("--version");
  REQUIRE(r.status == 0);
  REQUIRE(r.out.rfind(std::string("diffblocks ") + db::version_string() + "\n", 0) == 0);  // then the CPU kernels
  REQUIRE(cli("--version extra").status == 2);
}

TEST_CASE("CLI info prints config, parameter count and tensors", "[cli]") {
  const auto r = cli("info --model " + fixture("origin_d"));
  REQUIRE(r.status == 0);
  REQUIRE(r.out.find("GradLogPEstimator2d") != std::string::npos);
  REQUIRE(r.out.find("parameters: 532389") != std::string::npos);
  REQUIRE(r.out.find("final_conv.weight\tBF16\t[1, 32, 1, 1]") != std::string::npos);
  REQUIRE(r.out.find("stored dtype: BF16 (") != std::string::npos);
}

TEST_CASE("CLI --dtype runs the model in bf16 / f16: the library's half model, bit for bit", "[cli][half]") {
  const std::string out = tmp_path("cli_dtype.safetensors");
  const std::string base = "run --model " + fixture("origin_d") + " --inputs " + fixture("origin_d/inputs.safetensors") +
                           " --output " + out;
  const auto in = db::SafeTensors::load(fixture("origin_d/inputs.safetensors"));
  const auto x = read_tensor<3>(in, "x"), mask = read_tensor<3>(in, "mask"), mu = read_tensor<3>(in, "mu");
  const auto t = read_tensor<1>(in, "t");
  auto expect = [&](auto tag) {
    using H = decltype(tag);
    auto m = db::load_origin<H>(fixture("origin_d"));
    const db::Cpu d;
    return db::ops::cast<float>(d, m->forward(db::ops::cast<H>(d, x), db::ops::cast<H>(d, mask), db::ops::cast<H>(d, mu), t));
  };
  for (const char* dtype : {"bf16", "f16"}) {
    SECTION(dtype) {
      const auto r = cli(base + " --dtype " + dtype);
      INFO(r.err);
      REQUIRE(r.status == 0);
      const auto got = read_tensor<3>(db::SafeTensors::load(out), "out");
      const auto want = std::string(dtype) == "bf16" ? expect(db::bf16{}) : expect(db::f16{});
      REQUIRE(std::equal(got.begin(), got.end(), want.begin()));
      // ... which is not the float32 result.
      const auto f32 = read_tensor<3>(db::SafeTensors::load(fixture("origin_d/expected.safetensors")), "out");
      REQUIRE(diff(got, f32).max_abs_err > 1e-4);
    }
  }
  SECTION("f32 is the default and sample takes --dtype too") {
    REQUIRE(cli(base + " --dtype f32").status == 0);
    const std::string s = "sample --model " + fixture("sample_ode") + " --inputs " + fixture("sample_ode/inputs.safetensors") +
                          " --steps 2 --output " + out;
    const auto r = cli(s + " --dtype bf16");
    INFO(r.err);
    REQUIRE(r.status == 0);
  }
  require_cli_usage_error(base + " --dtype f64", "--dtype must be f32, bf16 or f16, got 'f64'", out);
  require_cli_usage_error("info --model " + fixture("origin_d") + " --dtype bf16", "option --dtype does not apply to info");
}

TEST_CASE("CLI errors: one line, exit 1 (2 for usage), no output file", "[cli][errors]") {
  const std::string out = tmp_path("cli_err.safetensors");
  const std::string model = " --model " + fixture("origin_d");
  const std::string ok_inputs = " --inputs " + fixture("origin_d/inputs.safetensors");
  SECTION("usage") {
    const auto r = cli("frobnicate");
    REQUIRE(r.status == 2);
    REQUIRE(r.err.find("unknown command 'frobnicate'") != std::string::npos);
    REQUIRE(cli("run --model").status == 2);
  }
  SECTION("missing model") { require_cli_error("run --model /nonexistent" + ok_inputs + " --output " + out, "/nonexistent", out); }
  SECTION("missing input tensor") {
    require_cli_error("run" + model + " --inputs " + fixture("origin_e_expected.safetensors") + " --output " + out,
                      "missing input tensor 'x'", out);
  }
  SECTION("input of the wrong kind") {
    // sample inputs (z, no x) given to run
    require_cli_error("run --model " + fixture("sample_ode") + " --inputs " + fixture("sample_ode/inputs.safetensors") +
                          " --output " + out,
                      "'x'", out);
  }
  SECTION("unexpected input tensor (a typo is not ignored)") {
    const std::string path = rewrite_inputs("origin_d/inputs.safetensors", "inputs_with_typo.safetensors", [](auto& ts) {
      db::TensorToWrite typo;
      typo.name = "spk_ids";
      typo.shape = {2};
      typo.is_int = true;
      typo.i64 = {0, 1};
      ts.push_back(typo);
    });
    require_cli_error("run" + model + " --inputs " + path + " --output " + out, "unexpected input tensor 'spk_ids'", out);
  }
  SECTION("input of the wrong rank") {
    const std::string path = rewrite_inputs("origin_d/inputs.safetensors", "inputs_wrong_rank.safetensors", [](auto& ts) {
      for (auto& t : ts)
        if (t.name == "mu") t.shape = {2, 16 * 24};
    });
    require_cli_error("run" + model + " --inputs " + path + " --output " + out, "'mu' has shape [2, 384] (rank 2), expected rank 3", out);
  }
  SECTION("NaN in an input") {
    const std::string path = rewrite_inputs("origin_d/inputs.safetensors", "inputs_with_nan.safetensors", [](auto& ts) {
      for (auto& t : ts)
        if (t.name == "x") t.f32[7] = std::nanf("");
    });
    require_cli_error("run" + model + " --inputs " + path + " --output " + out, "'x' holds NaN", out);
  }
  SECTION("mismatched n_feats between model and inputs") {
    require_cli_error("run --model " + fixture("origin_d") + " --inputs " + fixture("origin_b/inputs.safetensors") +
                          " --output " + out,
                      "n_feats=16", out);
  }
  SECTION("bad steps") {
    require_cli_usage_error("sample --model " + fixture("sample_ode") + " --inputs " +
                                fixture("sample_ode/inputs.safetensors") + " --steps zero --output " + out,
                      "--steps", out);
  }
  SECTION("truncated safetensors model") {
    const std::string dir = tmp_path("cli_truncated_model");
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(fixture("origin_d/config.json"), dir + "/config.json",
                               std::filesystem::copy_options::overwrite_existing);
    {
      std::ifstream in(fixture("origin_d/model.safetensors"), std::ios::binary);
      std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      bytes.resize(bytes.size() / 2);
      std::ofstream(dir + "/model.safetensors", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    require_cli_error("run --model " + dir + ok_inputs + " --output " + out, "model.safetensors", out);
  }
  SECTION("existing output is not clobbered by a failed run") {
    std::ofstream(out) << "keep me";
    const auto r = cli("run --model /nonexistent" + ok_inputs + " --output " + out);
    REQUIRE(r.status == 1);
    std::ifstream in(out);
    std::string s;
    std::getline(in, s);
    REQUIRE(s == "keep me");
    std::remove(out.c_str());
  }
}
#endif

#ifdef DIFFBLOCKS_CLI
TEST_CASE("CLI run on a diffusers model directory reproduces diffusers", "[cli][diffuser]") {
  for (const char* c : {"unet_ada_image", "unet_image_hint", "unet_text_time"}) {
    SECTION(c) {
      const std::string dir = fixture(std::string("diffusers/") + c);
      const std::string out = tmp_path(std::string("cli_") + c + ".safetensors");
      const auto r = cli("run --model " + dir + " --inputs " + dir + "/inputs.safetensors --output " + out);
      INFO(r.err);
      REQUIRE(r.status == 0);
      require_close(read_tensor<4>(db::SafeTensors::load(out), "out"),
                    read_tensor<4>(db::SafeTensors::load(dir + "/expected.safetensors"), "out"), c);
    }
  }
}

TEST_CASE("CLI sample with diffusers schedulers reproduces the diffusers loop", "[cli][diffuser][scheduler]") {
  for (const char* s : {"ddim", "euler"}) {
    SECTION(s) {
      const std::string base = fixture("diffusers/sampling/") + s;
      const std::string out = tmp_path(std::string("cli_sample_") + s + ".safetensors");
      const auto r = cli("sample --model " + fixture("diffusers/unet_default") + " --inputs " + base +
                         "_inputs.safetensors --output " + out + " --steps 4 --scheduler " + s);
      INFO(r.err);
      REQUIRE(r.status == 0);
      REQUIRE(r.err.find("step 4/4") != std::string::npos);
      require_close(read_tensor<4>(db::SafeTensors::load(out), "out"),
                    read_tensor<4>(db::SafeTensors::load(base + "_expected.safetensors"), "out"), s);
    }
  }
  SECTION("ddpm is reproducible by seed") {
    const std::string in = fixture("diffusers/sampling/ddim_inputs.safetensors");
    const std::string a = tmp_path("cli_ddpm_a.safetensors"), b = tmp_path("cli_ddpm_b.safetensors");
    const std::string cmd = "sample --model " + fixture("diffusers/unet_default") + " --inputs " + in +
                            " --steps 3 --scheduler ddpm --seed 4 --output ";
    REQUIRE(cli(cmd + a).status == 0);
    REQUIRE(cli(cmd + b).status == 0);
    REQUIRE(db::SafeTensors::load(a).read_float("out") == db::SafeTensors::load(b).read_float("out"));
  }
  SECTION("errors") {
    const std::string out = tmp_path("cli_diffuser_err.safetensors");
    const std::string in = fixture("diffusers/sampling/ddim_inputs.safetensors");
    require_cli_usage_error("sample --model " + fixture("diffusers/unet_default") + " --inputs " + in +
                                " --steps 3 --scheduler heun --output " + out,
                      "--scheduler must be ddim, ddpm or euler", out);
    require_cli_usage_error("sample --model " + fixture("diffusers/unet_default") + " --inputs " + in +
                                " --steps 3 --stochastic --output " + out,
                      "--stochastic applies to Grad-TTS", out);
    require_cli_usage_error("sample --model " + fixture("sample_ode") + " --inputs " +
                                fixture("sample_ode/inputs.safetensors") + " --steps 3 --scheduler ddim --output " + out,
                      "--scheduler applies to UNet2DConditionModel", out);
    require_cli_error("run --model " + fixture("diffusers/unet_ada_image") + " --inputs " + in + " --output " + out,
                      "missing input tensor 'timestep'", out);
  }
}
#endif

// ---- hostile input (issue #14) ------------------------------------------------------------------

#ifdef DIFFBLOCKS_CLI
#include <thread>

#include "file_helpers.hpp"

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }  // shell quoting of test paths

/// A copy of origin_d as a model directory under `name`.
std::string origin_copy(const std::string& name) {
  const std::string dir = fresh_dir(name);
  std::filesystem::copy_file(fixture("origin_d/config.json"), dir + "/config.json");
  std::filesystem::copy_file(fixture("origin_d/model.safetensors"), dir + "/model.safetensors");
  return dir;
}

/// A mel file for similarity: tensor 'out' (2, 4).
std::string mel_file(const std::string& path) {
  db::TensorToWrite t;
  t.name = "out";
  t.shape = {2, 4};
  t.f32 = {1, 1, 0, 3, 0, 0, 2, 4};
  db::save_safetensors(path, {t});
  return path;
}

const std::string kRunInputs = " --inputs " + fixture("origin_d/inputs.safetensors");

}  // namespace

TEST_CASE("CLI hostile: FIFOs, devices, directories and procfs files as inputs fail at once", "[cli][hostile]") {
  const std::string dir = fresh_dir("cli_hostile_files");
  const std::string out = dir + "/out.safetensors";
  const std::string fifo = make_fifo(dir + "/fifo");
  // Each of these used to block forever on the FIFO (cli() kills a run after 120 s: status 124).
  require_cli_error("run --model " + fifo + kRunInputs + " --output " + out, fifo + ": is a FIFO", out);
  require_cli_error("info --model " + fifo, "FIFO");
  const std::string model = origin_copy("cli_hostile_fifo_config");
  std::filesystem::remove(model + "/config.json");
  make_fifo(model + "/config.json");
  require_cli_error("run --model " + model + kRunInputs + " --output " + out, "config.json: is a FIFO", out);
  require_cli_error("run --model " + fixture("origin_d") + " --inputs " + fifo + " --output " + out, "FIFO", out);
  const std::string mel = mel_file(dir + "/mel.safetensors");
  const std::string sim = "similarity --reference " + mel + " --candidates " + mel + " --phonemes 'a b' --output " +
                          dir + "/sim.json --durations ";
  require_cli_error(sim + fifo, "FIFO", dir + "/sim.json");
  const std::string sample = "sample --model " + fixture("diffusers/unet_default") + " --inputs " +
                             fixture("diffusers/sampling/ddim_inputs.safetensors") + " --steps 2 --output " + out +
                             " --scheduler-config ";
  require_cli_error(sample + fifo, "FIFO", out);
  // Endless and generated files: refused by type, not read until memory runs out.
  require_cli_error(sim + "/dev/zero", "/dev/zero: is a character device", dir + "/sim.json");
  require_cli_error(sample + "/dev/zero", "/dev/zero: is a character device", out);
  std::filesystem::remove(model + "/config.json");
  std::filesystem::create_symlink("/dev/zero", model + "/config.json");
  require_cli_error("info --model " + model, "character device");
  require_cli_error("run --model " + fixture("origin_d") + " --inputs " + dir + " --output " + out, "is a directory", out);
  require_cli_error("run --model " + fixture("origin_d") + " --inputs /proc/self/maps --output " + out, "procfs", out);
  // Text inputs over their cap (sparse: nothing is written to disk).
  require_cli_error(sim + make_sparse(dir + "/durations.txt", 3 << 20), "larger than the cap of 1048576 bytes",
                    dir + "/sim.json");
  require_cli_error(sample + make_sparse(dir + "/scheduler.json", 3 << 20), "larger than the cap", out);
  REQUIRE(leftover_temps(dir).empty());
}

TEST_CASE("CLI hostile: deeply nested JSON is refused in one line, never printed recursively", "[cli][hostile]") {
  const std::string deep = std::string(90000, '[') + std::string(90000, ']');
  const std::string out = tmp_path("cli_deep_out.safetensors");
  for (const char* key : {"_class_name", "dim_mults", "_note"}) {
    const std::string dir = origin_copy(std::string("cli_deep_") + key);
    auto cfg = nlohmann::json::parse(read_file(dir + "/config.json"));
    cfg.erase(key);
    std::string text = cfg.dump();
    text.insert(1, "\"" + std::string(key) + "\": " + deep + ", ");
    write_text(dir + "/config.json", text);
    require_cli_error("info --model " + dir, "config.json: config is nested deeper than 64 levels");
    require_cli_error("run --model " + dir + kRunInputs + " --output " + out, "nested deeper than 64", out);
  }
  const std::string sched = tmp_path("cli_deep_scheduler.json");
  write_text(sched, "{\"num_train_timesteps\": " + deep + "}");
  require_cli_error("sample --model " + fixture("diffusers/unet_default") + " --inputs " +
                        fixture("diffusers/sampling/ddim_inputs.safetensors") + " --steps 2 --output " + out +
                        " --scheduler-config " + sched,
                    "cli_deep_scheduler.json: config is nested deeper than 64 levels", out);
  // Values that are long but legal are cut in messages.
  const std::string dir = origin_copy("cli_long_value");
  std::string list = "[";
  for (int i = 0; i < 20000; ++i) list += std::to_string(i % 7 + 1) + ",";
  write_text(dir + "/config.json", R"({"_class_name": "GradLogPEstimator2d", "dim": 32, "dim_mults": )" + list +
                                       R"("x"], "n_feats": 16})");
  const auto r = cli("info --model " + dir, 120);
  INFO(r.err.substr(0, 400));
  REQUIRE(r.status == 1);
  REQUIRE(r.err.find("'dim_mults' must be a list of integers (within the int range), got [1,2,3,") != std::string::npos);
  REQUIRE(r.err.find('\n') == r.err.size() - 1);
  REQUIRE(r.err.size() < 1000);
}

TEST_CASE("CLI hostile: names with control, bidi and NUL characters are escaped, one line", "[cli][hostile]") {
  const std::string out = tmp_path("cli_names_out.safetensors");
  const std::vector<std::pair<std::string, std::string>> cases{
      {std::string("x\n\x1b[31mFAKE\x1b[0m"), "'x\\n\\x1b[31mFAKE\\x1b[0m'"},
      {std::string("evil\xe2\x80\xaegnp.exe"), "'evil\\u202egnp.exe'"},
      {std::string("spk\0_id after the NUL", 21), "'spk\\x00_id after the NUL'"},
      {std::string("a\rb\x7f\xc2\x85\xe2\x81\xa6"), "'a\\rb\\x7f\\u0085\\u2066'"}};
  int i = 0;
  for (const auto& [name, shown] : cases) {
    const std::string path = rewrite_inputs("origin_d/inputs.safetensors", "names_" + std::to_string(i++) + ".safetensors",
                                            [&](auto& ts) {
                                              db::TensorToWrite t;
                                              t.name = name;
                                              t.shape = {1};
                                              t.f32 = {0};
                                              ts.push_back(t);
                                            });
    require_cli_error("run --model " + fixture("origin_d") + " --inputs " + path + " --output " + out,
                      "unexpected input tensor " + shown, out);
  }
  // A path with a newline and an escape sequence is echoed escaped.
  require_cli_error("info --model " + q(tmp_path("no\nsuch\x1b[2Jmodel")), "no\\nsuch\\x1b[2Jmodel: no such file");
  // info prints a config value holding a bidi override escaped (dump() wrote it raw).
  const std::string model = fresh_dir("cli_names_info");
  std::filesystem::copy_file(fixture("diffusers/unet_default/config.json"), model + "/config.json");
  std::filesystem::copy_file(fixture("diffusers/unet_default/diffusion_pytorch_model.safetensors"),
                             model + "/diffusion_pytorch_model.safetensors");
  std::string cfg = read_file(model + "/config.json");
  cfg.insert(cfg.find('{') + 1, "\"_note\": \"\xe2\x80\xae" "evil\\u001b[2J\",");
  write_text(model + "/config.json", cfg);
  const auto r = cli("info --model " + model, 120);
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE(r.out.find("\xe2\x80\xae") == std::string::npos);
  REQUIRE(r.out.find("\"_note\":\"\\u202eevil\\u001b[2J\"") != std::string::npos);
}

TEST_CASE("CLI hostile: --output never replaces an input, whatever the path says", "[cli][hostile]") {
  const std::string dir = fresh_dir("cli_same_file");
  const std::string inputs = dir + "/inputs.safetensors";
  std::filesystem::copy_file(fixture("origin_d/inputs.safetensors"), inputs);
  const std::string model = origin_copy("cli_same_file_model");
  const std::string single = dir + "/single.safetensors";
  db::save_safetensors(single, read_all(db::SafeTensors::load(model + "/model.safetensors")),
                       {{"config", read_file(model + "/config.json")}});
  std::filesystem::create_symlink(inputs, dir + "/link.safetensors");
  REQUIRE(::link(inputs.c_str(), (dir + "/hard.safetensors").c_str()) == 0);
  std::filesystem::create_directories(dir + "/sub");
  const std::string before_inputs = read_file(inputs), before_single = read_file(single),
                    before_weights = read_file(model + "/model.safetensors"), before_config = read_file(model + "/config.json");
  const std::string run = "run --model " + model + " --inputs " + inputs + " --output ";
  for (const std::string& o : {inputs, dir + "/link.safetensors", dir + "/hard.safetensors", dir + "/sub/../inputs.safetensors",
                               model + "/model.safetensors", model + "/config.json"})
    require_cli_error(run + o, "refusing to overwrite an input");
  require_cli_error("run --model " + single + " --inputs " + inputs + " --output " + single, "is the same file as --model");
  REQUIRE(read_file(inputs) == before_inputs);
  REQUIRE(read_file(single) == before_single);
  REQUIRE(read_file(model + "/model.safetensors") == before_weights);
  REQUIRE(read_file(model + "/config.json") == before_config);

  // similarity: the reference, any candidate, the durations file.
  const std::string ref = mel_file(dir + "/ref.safetensors"), cand = mel_file(dir + "/cand.safetensors");
  const std::string durations = dir + "/durations.txt";
  write_text(durations, "2 2\n");
  const std::string before_ref = read_file(ref);
  const std::string sim = "similarity --reference " + ref + " --candidates " + cand + " --phonemes 'a b' ";
  require_cli_error(sim + "--durations 2,2 --output " + ref, "is the same file as --reference");
  require_cli_error(sim + "--durations 2,2 --output " + cand, "is the same file as --candidates");
  require_cli_error(sim + "--durations " + durations + " --output " + durations, "is the same file as --durations");
  REQUIRE(read_file(ref) == before_ref);
  REQUIRE(read_file(durations) == "2 2\n");
  // sample: the scheduler config.
  const std::string sched = dir + "/scheduler.json";
  write_text(sched, "{}");
  require_cli_error("sample --model " + fixture("diffusers/unet_default") + " --inputs " +
                        fixture("diffusers/sampling/ddim_inputs.safetensors") + " --steps 2 --scheduler-config " +
                        sched + " --output " + sched,
                    "is the same file as --scheduler-config");
  REQUIRE(read_file(sched) == "{}");
  REQUIRE(leftover_temps(dir).empty());
}

TEST_CASE("CLI hostile: --output must be a regular file, long names and symlinks work", "[cli][hostile]") {
  const std::string dir = fresh_dir("cli_output_kinds");
  const std::string run = "run --model " + fixture("origin_d") + kRunInputs + " --output ";
  require_cli_usage_error(run + "''", "--output must not be empty");
  require_cli_error(run + dir, dir + ": --output is a directory");
  REQUIRE(std::filesystem::is_directory(dir));
  const std::string fifo = make_fifo(dir + "/fifo");
  require_cli_error(run + fifo, "--output is a FIFO");
  REQUIRE(std::filesystem::is_fifo(fifo));
  const std::string dev = make_char_device(dir + "/null");
  if (!dev.empty()) {
    require_cli_error(run + dev, "--output is a character device");
    REQUIRE(std::filesystem::is_character_file(dev));
  }
  require_cli_error(run + dir + "/no/such/dir/out.safetensors", "does not exist");
  // A valid 255-byte file name (NAME_MAX).
  const std::string long_name = dir + "/" + std::string(243, 'o') + ".safetensors";
  auto r = cli(run + long_name, 300);
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE(db::SafeTensors::load(long_name).contains("out"));
  // A symlink as --output: its target is replaced (keeping its mode), the link stays.
  const std::string target = dir + "/target.safetensors", link = dir + "/link.safetensors";
  write_text(target, "old");
  ::chmod(target.c_str(), 0600);
  std::filesystem::create_symlink("target.safetensors", link);
  r = cli(run + link, 300);
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE(std::filesystem::is_symlink(link));
  REQUIRE(db::SafeTensors::load(target).contains("out"));
  struct stat st {};
  REQUIRE(::stat(target.c_str(), &st) == 0);
  REQUIRE((st.st_mode & 07777) == 0600);
  REQUIRE(leftover_temps(dir).empty());
}

TEST_CASE("CLI hostile: --threads bound, repeated options and option caps are usage errors", "[cli][hostile]") {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const int bound = static_cast<int>(std::min(256u, 4 * hw));
  const std::string out = tmp_path("cli_threads_out.safetensors");
  const std::string run = "run --model " + fixture("origin_d") + kRunInputs + " --output " + out;
  require_cli_usage_error(run + " --threads " + std::to_string(bound + 1),
                          "--threads must be an integer in [1, " + std::to_string(bound) + "]", out);
  require_cli_usage_error(run + " --threads 1024", "--threads", out);
  require_cli_usage_error(run + " --threads 0", "--threads", out);
  require_cli_usage_error(run + " --output " + out + "2", "option --output given twice", out);
  require_cli_usage_error("run --model", "option --model needs a value");
  const std::string mel = mel_file(tmp_path("cli_caps_mel.safetensors"));
  require_cli_usage_error("similarity --reference " + mel + " --candidates " + mel + " --durations 2,2 --phonemes 'a b' "
                          "--output " + tmp_path("cli_caps.json") + " --labels " + std::string(70000, 'L'),
                          "option --labels is 70000 bytes, larger than the cap of 65536 bytes");
}

TEST_CASE("CLI hostile: duplicate keys and unknown scheduler keys are errors naming the key", "[cli][hostile]") {
  const std::string out = tmp_path("cli_dup_out.safetensors");
  const std::string model = origin_copy("cli_dup_config");
  std::string cfg = read_file(model + "/config.json");
  cfg.insert(cfg.find('{') + 1, R"("dim": 4096, )");
  write_text(model + "/config.json", cfg);
  require_cli_error("run --model " + model + kRunInputs + " --output " + out, "config.json: config has the key 'dim' twice",
                    out);
  // Duplicate tensor names in an inputs file (the last one used to win silently).
  const std::string inputs = tmp_path("cli_dup_inputs.safetensors");
  write_text(inputs, raw_safetensors(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                     R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                     std::string(8, '\0')));
  require_cli_error("run --model " + fixture("origin_d") + " --inputs " + inputs + " --output " + out,
                    "header has the key 't' twice", out);
  const std::string sched = tmp_path("cli_unknown_scheduler.json");
  const std::string sample = "sample --model " + fixture("diffusers/unet_default") + " --inputs " +
                             fixture("diffusers/sampling/ddim_inputs.safetensors") + " --steps 2 --output " + out +
                             " --scheduler-config " + sched;
  write_text(sched, R"({"_class_name": "DDIMScheduler", "beta_strat": 0.001})");
  require_cli_error(sample, "unknown scheduler key 'beta_strat'", out);
  write_text(sched, R"({"num_train_timesteps": 1000, "num_train_timesteps": 10})");
  require_cli_error(sample, "the key 'num_train_timesteps' twice", out);
  // diffusers' own bookkeeping keys stay accepted.
  write_text(sched, R"({"_class_name": "DDIMScheduler", "_diffusers_version": "0.25.1", "steps_offset": 1})");
  const auto r = cli(sample, 600);
  INFO(r.err);
  REQUIRE(r.status == 0);
}

TEST_CASE("CLI hostile: a config that promises more than the weights hold fails fast", "[cli][hostile][memory]") {
  const std::string dir = fresh_dir("cli_dim4096");
  write_text(dir + "/config.json", R"({"_class_name":"GradLogPEstimator2d","dim":4096,"dim_mults":[1],"n_feats":64})");
  db::TensorToWrite t;
  t.name = "a";
  t.shape = {1};
  t.f32 = {0};
  db::save_safetensors(dir + "/model.safetensors", {t});
  const std::string out = tmp_path("cli_dim4096_out.safetensors");
  require_cli_error("info --model " + dir, "missing key 'mlp.0.weight' (the config in");
  require_cli_error("run --model " + dir + kRunInputs + " --output " + out, "implies shape [16384, 4096]", out);
}
#endif
