// The run-time entry (diffblocks/runtime.hpp): models loaded by path on a device named at run
// time give the bits the templates give, inputs are checked by name, errors keep their class
// across the backend interface (the CPU backend crosses the same C table as the CUDA module),
// and the CUDA module is found, checked and refused with messages naming it.
#include <cstdlib>
#include <fstream>

#include "diffblocks/runtime.hpp"
#include "helpers.hpp"
#include "process_helpers.hpp"

using namespace dbt;
namespace rt = diffblocks::runtime;

namespace {

/// The result as a host tensor of rank N (REQUIREs the rank), to compare with the library's.
template <std::size_t N>
db::Tensor<float, N> as_tensor(const rt::HostTensor& h) {
  REQUIRE(h.shape.size() == N);
  std::array<std::size_t, N> shape;
  for (std::size_t i = 0; i < N; ++i) shape[i] = static_cast<std::size_t>(h.shape[i]);
  auto t = db::Tensor<float, N>::from_shape(shape);
  std::copy(h.f32.begin(), h.f32.end(), t.begin());
  return t;
}

template <class A, class B>
bool same_bits(const A& a, const B& b) {
  return db::tensor_shape(a) == db::tensor_shape(b) && std::equal(a.begin(), a.end(), b.begin());
}

/// origin_d with its config edited by `edit`, in the tests' scratch folder.
std::string origin_d_with(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json cfg = db::load_model_file(fixture("origin_d")).config;
  edit(cfg);
  const std::string dir = tmp_path(name);
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << cfg.dump();
  std::filesystem::copy_file(fixture("origin_d/model.safetensors"), dir + "/model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  return dir;
}

rt::TensorMap origin_d_inputs() {
  const auto st = db::SafeTensors::load(fixture("origin_d/inputs.safetensors"));
  rt::TensorMap m("mem");
  for (const auto& t : read_all(st)) m.set(t.name, rt::HostTensor::floats(t.shape, t.f32));
  return m;
}

}  // namespace

TEST_CASE("runtime: forward on the CPU gives the templates' bits", "[runtime]") {
  for (const char* c : {"origin_b", "origin_c"}) {  // speaker ids (I64); vector, emotion id (I32), prosody
    SECTION(c) {
      const auto direct = load_origin_case(fixture(c), fixture(std::string(c) + "/inputs.safetensors"));
      const auto want = direct.model->forward(direct.x, direct.mask, direct.mu, direct.t, direct.cond);
      const auto model = rt::Model::load(fixture(c), "cpu");
      REQUIRE(model.kind() == rt::ModelKind::Origin);
      const rt::Result r = model.forward(rt::SafeTensorsSource(fixture(std::string(c) + "/inputs.safetensors")));
      REQUIRE(same_bits(as_tensor<3>(r.out), want));
      REQUIRE(r.seconds > 0);
    }
  }
  SECTION("Diffuser") {
    const std::string dir = fixture("diffusers/unet_text");
    const auto want = db::load_diffuser(dir)->forward(
        read_diffuser_inputs(db::SafeTensors::load(dir + "/inputs.safetensors")));
    const auto model = rt::Model::load(dir);
    REQUIRE(model.kind() == rt::ModelKind::Diffuser);
    REQUIRE(same_bits(as_tensor<4>(model.forward(rt::SafeTensorsSource(dir + "/inputs.safetensors")).out), want));
  }
}

TEST_CASE("runtime: sampling on the CPU gives the templates' bits", "[runtime][sampler]") {
  SampleFixture<> f;
  const auto model = rt::Model::load(fixture("sample_ode"));
  const rt::SafeTensorsSource in(fixture("sample_ode/inputs.safetensors"));
  for (const bool stochastic : {false, true}) {
    rt::SampleOptions opt;
    opt.steps = 3;
    opt.stochastic = stochastic;
    opt.seed = 7;
    std::vector<int> steps;
    opt.progress = [&](int i, int n, double s) {
      REQUIRE(n == 3);
      REQUIRE(s >= 0);
      steps.push_back(i);
    };
    const auto want = db::reverse_diffusion(*f.model, f.z, f.mask, f.mu, SampleFixture<>::options(3, stochastic, 7));
    REQUIRE(same_bits(as_tensor<3>(model.sample(in, opt).out), want));
    REQUIRE(steps == std::vector<int>{1, 2, 3});
  }
  SECTION("Diffuser, DDIM with a scheduler config, against diffusers") {
    const std::string in_path = fixture("diffusers/sampling/ddim_inputs.safetensors");
    const auto model = rt::Model::load(fixture("diffusers/unet_default"));
    rt::SampleOptions opt;
    opt.steps = 4;
    opt.scheduler = "ddim";
    opt.scheduler_config = "{\"num_train_timesteps\": 1000}";
    opt.scheduler_origin = "test config";
    const auto got = as_tensor<4>(model.sample(rt::SafeTensorsSource(in_path), opt).out);
    require_close(got, read_tensor<4>(db::SafeTensors::load(fixture("diffusers/sampling/ddim_expected.safetensors")), "out"),
                  "runtime ddim");
  }
}

TEST_CASE("runtime: describe", "[runtime]") {
  const auto info = rt::Model::load(fixture("origin_d")).describe();
  const auto direct = db::load_origin(fixture("origin_d"));
  const auto weights = db::SafeTensors::load(fixture("origin_d/model.safetensors"));
  REQUIRE(info.class_name == "GradLogPEstimator2d");
  REQUIRE(info.config == direct->config().to_json());
  REQUIRE(info.parameters == db::parameter_count(*direct));
  REQUIRE(info.weights.size() == weights.tensors().size());
  REQUIRE(info.weights[0].name == weights.tensors()[0].name);
  REQUIRE(info.weights[0].dtype == db::dtype_name(weights.tensors()[0].dtype));
  REQUIRE(info.weights[0].shape == weights.tensors()[0].shape);
  const auto d = rt::Model::load(fixture("diffusers/unet_default")).describe();
  REQUIRE(d.class_name == "UNet2DConditionModel");
  REQUIRE(d.config == db::load_model_file(fixture("diffusers/unet_default")).config);
}

TEST_CASE("runtime: inputs are read by name and checked before the device sees them", "[runtime]") {
  const auto model = rt::Model::load(fixture("origin_d"));
  SECTION("a TensorMap gives what the file gives; ids may be integral floats, floats integers") {
    const auto want = model.forward(rt::SafeTensorsSource(fixture("origin_d/inputs.safetensors"))).out;
    REQUIRE(model.forward(origin_d_inputs()).out.f32 == want.f32);
    rt::TensorMap ids("ids");
    ids.set("v", rt::HostTensor::floats({2}, {3.f, 4.f}));
    REQUIRE(ids.read_ids("v") == std::vector<std::int64_t>{3, 4});
    ids.set("w", rt::HostTensor::ids({2}, {5, 6}));
    std::vector<float> w(2);
    ids.read_floats("w", w.data());
    REQUIRE(w == std::vector<float>{5.f, 6.f});
    ids.set("bad", rt::HostTensor::floats({1}, {1.5f}));
    REQUIRE_THROWS_WITH(ids.read_ids("bad"), "ids: tensor 'bad' must hold integer ids, but element 0 is 1.500000");
  }
  SECTION("a TensorViews is passed to the device where it is, and gives the file's bits") {
    const std::string c = fixture("origin_b");  // x, mask, mu, t (F32) and spk_id (I64)
    const auto st = db::SafeTensors::load(c + "/inputs.safetensors");
    const auto ob = rt::Model::load(c);
    std::map<std::string, std::vector<float>> f;
    const std::vector<std::int64_t> spk = st.read_int("spk_id");
    rt::TensorViews views("views");
    for (const char* name : {"x", "mask", "mu", "t"}) {
      f[name] = st.read_float(name);
      views.set(name, {rt::ElementType::F32, st.info(name).shape, f[name].data()});
    }
    views.set("spk_id", {rt::ElementType::I64, {2}, spk.data()});
    const rt::Inputs in = ob.read_inputs(views, rt::Task::Forward);
    REQUIRE(in.tensors.empty());  // nothing copied
    REQUIRE(in.views.size() == 5);
    for (const auto& [name, v] : in.views)
      REQUIRE(v.data == (name == "spk_id" ? static_cast<const void*>(spk.data()) : f[name].data()));
    const auto want = ob.forward(rt::SafeTensorsSource(c + "/inputs.safetensors")).out;
    REQUIRE(ob.forward(in).out.f32 == want.f32);
    REQUIRE(ob.forward(views).out.f32 == want.f32);
    // The other type is converted (a copy): ids as integral floats, floats as integers.
    const std::vector<float> spk_f(spk.begin(), spk.end());
    views.set("spk_id", {rt::ElementType::F32, {2}, spk_f.data()});
    const std::vector<std::int64_t> t_i{0, 1};
    views.set("t", {rt::ElementType::I64, {2}, t_i.data()});
    const rt::Inputs mixed = ob.read_inputs(views, rt::Task::Forward);
    REQUIRE(mixed.tensors.size() == 2);
    REQUIRE(mixed.views.size() == 3);
    std::vector<float> t_read(2);
    views.read_floats("t", t_read.data());
    REQUIRE(t_read == std::vector<float>{0.f, 1.f});
    REQUIRE(views.read_ids("spk_id") == spk);
    const float half = 0.5f;
    views.set("spk_id", {rt::ElementType::F32, {1}, &half});
    REQUIRE_THROWS_WITH(ob.read_inputs(views, rt::Task::Forward),
                        "views: tensor 'spk_id' must hold integer ids, but element 0 is 0.500000");
    views.set("spk_id", {rt::ElementType::I64, {2, 1}, spk.data()});
    REQUIRE_THROWS_WITH(ob.read_inputs(views, rt::Task::Forward),
                        "views: input 'spk_id' has shape [2, 1], expected rank 1 (B,)");
    REQUIRE_THROWS_AS(views.set("x", {rt::ElementType::F32, {2, 3}, nullptr}), db::InputError);
  }
  SECTION("missing, wrong rank, unexpected, bad ids: the CLI's messages, by the source's name") {
    rt::TensorMap m = origin_d_inputs();
    m.set("spk_ids", rt::HostTensor::ids({2}, {0, 1}));
    REQUIRE_THROWS_AS(model.read_inputs(m, rt::Task::Forward), db::InputError);
    REQUIRE_THROWS_WITH(model.read_inputs(m, rt::Task::Forward), "mem: unexpected input tensor 'spk_ids'");
    REQUIRE_THROWS_WITH(model.read_inputs(m, rt::Task::Sample), "mem: missing input tensor 'z' (B, n_feats, T)");
    m = origin_d_inputs();
    m.set("t", rt::HostTensor::floats({1, 2}, {0.5f, 0.5f}));
    REQUIRE_THROWS_WITH(model.read_inputs(m, rt::Task::Forward),
                        "mem: input 't' has shape [1, 2] (rank 2), expected rank 1 (B,)");
    m = origin_d_inputs();
    m.set("emo_id", rt::HostTensor::ids({1, 2}, {0, 1}));
    REQUIRE_THROWS_WITH(model.read_inputs(m, rt::Task::Forward), "mem: input 'emo_id' has shape [1, 2], expected rank 1 (B,)");
    REQUIRE_THROWS_AS(m.set("x", rt::HostTensor::floats({2, 2}, {1.f})), db::InputError);
  }
  SECTION("inputs read for another task or kind of model are refused") {
    const rt::Inputs in = model.read_inputs(origin_d_inputs(), rt::Task::Forward);
    REQUIRE_THROWS_WITH(model.sample(in, rt::SampleOptions{}),
                        "inputs read for a forward pass on a GradLogPEstimator2d model, given to sample on a "
                        "GradLogPEstimator2d model");
    const auto diffuser = rt::Model::load(fixture("diffusers/unet_default"));
    REQUIRE_THROWS_AS(diffuser.forward(in), db::InputError);
  }
  SECTION("shapes against the config: the U-Net's own InputError") {
    rt::TensorMap m = origin_d_inputs();
    m.set("t", rt::HostTensor::floats({3}, {0.1f, 0.2f, 0.3f}));
    REQUIRE_THROWS_AS(model.forward(m), db::InputError);
  }
}

TEST_CASE("runtime: sample options that do not fit the model", "[runtime]") {
  rt::SampleOptions scheduled;
  scheduled.scheduler = "ddpm";
  REQUIRE_THROWS_WITH(rt::Model::load(fixture("sample_ode")).sample(rt::SafeTensorsSource(fixture("sample_ode/inputs.safetensors")), scheduled),
                      Catch::Contains("a scheduler applies to UNet2DConditionModel models"));
  rt::SampleOptions stochastic;
  stochastic.stochastic = true;
  REQUIRE_THROWS_WITH(rt::Model::load(fixture("diffusers/unet_default"))
                          .sample(rt::SafeTensorsSource(fixture("diffusers/sampling/ddim_inputs.safetensors")), stochastic),
                      Catch::Contains("stochastic sampling applies to GradLogPEstimator2d models"));
  rt::SampleOptions heun;
  heun.scheduler = "heun";
  REQUIRE_THROWS_AS(rt::Model::load(fixture("diffusers/unet_default"))
                        .sample(rt::SafeTensorsSource(fixture("diffusers/sampling/ddim_inputs.safetensors")), heun),
                    db::ConfigError);
}

TEST_CASE("runtime: errors keep their class across the backend interface", "[runtime]") {
  SECTION("every status maps back to its class") {
    auto round_trip = [](auto e) {
      try {
        throw e;
      } catch (...) {
        std::string message;
        const std::int32_t s = rt::current_status(message);
        rt::throw_status(s, message);
      }
    };
    REQUIRE_THROWS_AS(round_trip(db::IoError("a")), db::IoError);
    REQUIRE_THROWS_AS(round_trip(db::ConfigError("a")), db::ConfigError);
    REQUIRE_THROWS_AS(round_trip(db::LoadError("a")), db::LoadError);
    REQUIRE_THROWS_AS(round_trip(db::InputError("a")), db::InputError);
    REQUIRE_THROWS_AS(round_trip(db::OutOfMemoryError("a")), db::OutOfMemoryError);
    REQUIRE_THROWS_AS(round_trip(db::CudaError("a")), db::CudaError);
    REQUIRE_THROWS_AS(round_trip(std::bad_alloc()), std::bad_alloc);
    REQUIRE_THROWS_AS(round_trip(std::length_error("a")), std::length_error);
    REQUIRE_THROWS_WITH(round_trip(db::LoadError("key 'k'")), "key 'k'");
    try {
      round_trip(db::Error("plain"));
      FAIL("no exception");
    } catch (const db::Error& e) {
      REQUIRE(typeid(e) == typeid(db::Error));
    }
  }
  SECTION("from a load on the CPU backend") {
    REQUIRE_THROWS_AS(rt::Model::load(fixture("no_such_model")), db::IoError);
    const std::string bad = origin_d_with("runtime_bad_class", [](nlohmann::json& c) { c["_class_name"] = "Other"; });
    REQUIRE_THROWS_AS(rt::Model::load(bad), db::ConfigError);
    REQUIRE_THROWS_WITH(rt::Model::load(bad), Catch::Contains("_class_name \"Other\" is not supported"));
  }
  SECTION("what a callback throws reaches the caller as it was thrown") {
    struct Stop {
      int step;
    };
    rt::SampleOptions opt;
    opt.steps = 3;
    opt.progress = [](int i, int, double) {
      if (i == 2) throw Stop{i};
    };
    try {
      rt::Model::load(fixture("sample_ode")).sample(rt::SafeTensorsSource(fixture("sample_ode/inputs.safetensors")), opt);
      FAIL("no exception");
    } catch (const Stop& s) {
      REQUIRE(s.step == 2);
    }
    // on_config runs before the weights are read: a model whose weights do not fit its config
    // fails with what on_config threw, not with the LoadError its weights would give.
    const std::string wide = origin_d_with("runtime_wide", [](nlohmann::json& c) { c["dim"] = 64; });
    REQUIRE_THROWS_AS(rt::Model::load(wide), db::LoadError);
    rt::LoadOptions refuse;
    rt::ModelKind seen = rt::ModelKind::Diffuser;
    refuse.on_config = [&](rt::ModelKind k) {
      seen = k;
      throw Stop{0};
    };
    REQUIRE_THROWS_AS(rt::Model::load(wide, "cpu", refuse), Stop);
    REQUIRE(seen == rt::ModelKind::Origin);
  }
}

TEST_CASE("runtime: devices", "[runtime]") {
  REQUIRE_THROWS_WITH(rt::Device::open("tpu"), "unknown device 'tpu' (cpu or cuda)");
  const rt::Device cpu = rt::Device::open("cpu");
  REQUIRE(cpu.name() == "cpu");
  REQUIRE(cpu.description() == std::to_string(db::get_num_threads()) + " threads");
  REQUIRE(rt::Model::load(fixture("origin_d"), cpu).device().name() == "cpu");
}

TEST_CASE("runtime: the CUDA module is found, checked, or refused by name", "[runtime][cuda]") {
  auto refused = [](const std::string& path, const std::string& why) {
    ScopedEnv env(rt::kCudaModuleEnv, path);
    INFO("module " << path);
    try {
      rt::Device::open("cuda");
      FAIL("opened");
    } catch (const db::Error& e) {
      REQUIRE(typeid(e) == typeid(db::Error));
      const std::string m = e.what();
      REQUIRE(m.rfind("could not load the CUDA backend " + path + ": ", 0) == 0);
      REQUIRE(m.find(why) != std::string::npos);
    }
  };
  refused("/nonexistent/libdiffblocks_cuda.so", "cannot open shared object file");
  refused(fixture("origin_d/config.json"), "");  // not an ELF file: dlopen's own words
  refused(DIFFBLOCKS_FAKE_BACKEND_abi999, "built for backend ABI 999, but this program needs ABI " +
                                              std::to_string(DIFFBLOCKS_BACKEND_ABI));
  refused(DIFFBLOCKS_FAKE_BACKEND_not_a_backend, "not a diffblocks backend (no symbol diffblocks_backend_abi)");
#ifdef DIFFBLOCKS_CUDA_MODULE
  // The real module, without a GPU: its CudaError crosses as a CudaError; with one: a model on
  // the GPU within the accuracy contract.
  ScopedEnv env(rt::kCudaModuleEnv, DIFFBLOCKS_CUDA_MODULE);
  rt::Device cuda = rt::Device::open("cpu");
  try {
    cuda = rt::Device::open("cuda");
  } catch (const db::CudaError& e) {
    REQUIRE_THAT(e.what(), Catch::StartsWith("no CUDA device: "));
    return;
  }
  REQUIRE_THAT(cuda.description(), Catch::StartsWith("cuda: "));
  const auto model = rt::Model::load(fixture("origin_d"), cuda);
  require_close(as_tensor<3>(model.forward(rt::SafeTensorsSource(fixture("origin_d/inputs.safetensors"))).out),
                read_tensor<3>(db::SafeTensors::load(fixture("origin_d/expected.safetensors")), "out"), "runtime cuda");
  REQUIRE(model.describe().parameters == db::parameter_count(*db::load_origin(fixture("origin_d"))));
#endif
}
