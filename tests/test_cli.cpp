// The diffblocks CLI end to end: run/sample/info on fixtures, and the DESIGN.md error contract
// (one line on stderr, exit status 1, 2 for a usage error, nothing left at --output).
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_helpers.hpp"

using namespace dbt;

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

TEST_CASE("CLI --device: cpu is the default, cuda needs a CUDA build", "[cli]") {
  const std::string out = tmp_path("cli_device.safetensors");
  const std::string base = "run --model " + fixture("origin_d") + " --inputs " + fixture("origin_d/inputs.safetensors") +
                           " --output " + out;
  const auto r = cli(base + " --device cpu");
  INFO(r.err);
  REQUIRE(r.status == 0);
  require_close(read_tensor<3>(db::SafeTensors::load(out), "out"),
                read_tensor<3>(db::SafeTensors::load(fixture("origin_d/expected.safetensors")), "out"), "--device cpu");
  require_cli_usage_error(base + " --device tpu", "--device must be cpu or cuda, got 'tpu'", out);
#ifndef DIFFBLOCKS_CLI_HAS_CUDA
  // The CUDA build's behaviour (no GPU: "no CUDA device: ...") is tested by diffblocks_cuda_tests.
  require_cli_error(base + " --device cuda", "built without CUDA support (configure with -DDIFFBLOCKS_CUDA=ON)", out);
  require_cli_error("sample --device cuda --model " + fixture("sample_ode") + " --inputs " +
                        fixture("sample_ode/inputs.safetensors") + " --steps 2 --output " + out,
                    "built without CUDA support", out);
#endif
}

TEST_CASE("CLI help prints the usage", "[cli]") {
  const auto r = cli("--help");
  REQUIRE(r.status == 0);
  REQUIRE(r.out.find("diffblocks sample --model PATH") != std::string::npos);
}

TEST_CASE("CLI info prints config, parameter count and tensors", "[cli]") {
  const auto r = cli("info --model " + fixture("origin_d"));
  REQUIRE(r.status == 0);
  REQUIRE(r.out.find("GradLogPEstimator2d") != std::string::npos);
  REQUIRE(r.out.find("parameters: 532389") != std::string::npos);
  REQUIRE(r.out.find("final_conv.weight\tBF16\t[1, 32, 1, 1]") != std::string::npos);
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
