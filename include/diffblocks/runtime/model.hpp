#pragma once
// The run-time entry: a model loaded by path on a device named at run time, behind one type.
//
//   auto model = db::runtime::Model::load("models/grad-tts", "cuda");   // or "cpu"
//   db::runtime::SafeTensorsSource in("inputs.safetensors");           // or a TensorMap
//   db::runtime::SampleOptions opt;
//   opt.steps = 10;
//   db::runtime::HostTensor mel = model.sample(in, opt).out;
//
// The model file's config picks the U-Net (Origin or Diffuser); the device picks the backend:
// "cpu" runs in the program (DeviceBackend<Cpu>), "cuda" in the CUDA module opened on first use
// (runtime/cuda_module.hpp). Both are reached through the same C table (runtime/abi.h), so the
// program has no per-device code and no CUDA dependency. Everything is a value: host tensors in,
// host tensors out, errors as the diffblocks::Error subclasses the backend threw.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "diffblocks/runtime/abi.h"
#include "diffblocks/runtime/cuda_module.hpp"
#include "diffblocks/runtime/device_backend.hpp"
#include "diffblocks/runtime/host_call.hpp"
#include "diffblocks/runtime/inputs.hpp"
#include "diffblocks/runtime/status.hpp"
#include "diffblocks/runtime/tensors.hpp"

namespace diffblocks {
namespace runtime {

/// The device names Device::open accepts.
inline const std::vector<std::string>& device_names() {
  static const std::vector<std::string> names{"cpu", "cuda"};
  return names;
}

inline bool is_device_name(const std::string& name) {
  for (const auto& n : device_names())
    if (n == name) return true;
  return false;
}

/// The model types Model::load accepts ("f32", "bf16", "f16"): parameters and activations in
/// that type, float32 accumulation, times and sampler state float32 (core/half.hpp).
inline const std::vector<std::string>& dtype_names() { return detail::model_dtype_names(); }

/// DIFFBLOCKS_MODEL_* for a name of dtype_names(); InputError naming the choices otherwise.
inline std::int32_t model_dtype(const std::string& name) {
  for (std::size_t i = 0; i < dtype_names().size(); ++i)
    if (dtype_names()[i] == name) return static_cast<std::int32_t>(i);
  throw InputError("unknown model type '" + name + "' (f32, bf16 or f16)");
}

struct LoadOptions {
  /// The model's scalar type (dtype_names()). Weights stored in another type are converted at
  /// load (round to nearest even); stored in this one they are read as they are.
  std::string dtype = "f32";
  /// Called once the config names the U-Net, before any weight is read; what it throws ends the
  /// load and reaches the caller (e.g. a command refusing options that do not fit the model).
  std::function<void(ModelKind)> on_config;
};

struct SampleOptions {
  int steps = 10;
  bool stochastic = false;  // Origin: Grad-TTS's stochastic sampler
  std::uint64_t seed = 0;   // its noise, or DDPM's
  std::string scheduler;    // Diffuser: "ddim" (when empty), "ddpm" or "euler"
  std::string scheduler_config;  // Diffuser: diffusers scheduler config JSON text; empty: defaults
  std::string scheduler_origin;  // names the config in messages (e.g. its path)
  /// After every step: (step from 1, steps, seconds the step took).
  std::function<void(int, int, double)> progress;
};

struct ModelInfo {
  std::string class_name;  // "GradLogPEstimator2d" or "UNet2DConditionModel"
  nlohmann::json config;   // Origin: every key with its value in use; Diffuser: as in the file
  std::uint64_t parameters = 0;
  std::vector<WeightInfo> weights;
};

struct Result {
  HostTensor out;
  double seconds = 0;  // forward: inputs on the device .. result on the host; sample: the whole call
};

namespace detail {

/// C views of checked inputs (valid while `in` lives, and the memory of its borrowed views).
inline std::vector<diffblocks_tensor> views(const Inputs& in) {
  std::vector<diffblocks_tensor> v;
  for (const auto& [name, t] : in.tensors) {
    const bool f = t.type == ElementType::F32;
    v.push_back({name.c_str(), f ? DIFFBLOCKS_F32 : DIFFBLOCKS_I64, static_cast<std::int32_t>(t.shape.size()),
                 t.shape.data(), f ? static_cast<const void*>(t.f32.data()) : static_cast<const void*>(t.i64.data())});
  }
  for (const auto& [name, t] : in.views)
    v.push_back({name.c_str(), t.type == ElementType::F32 ? DIFFBLOCKS_F32 : DIFFBLOCKS_I64,
                 static_cast<std::int32_t>(t.shape.size()), t.shape.data(), t.data});
  return v;
}

inline const char* kind_name(ModelKind k) { return k == ModelKind::Origin ? "GradLogPEstimator2d" : "UNet2DConditionModel"; }

}  // namespace detail

/// A device, ready: for "cuda" the module is open and a GPU is there.
class Device {
 public:
  /// Throws InputError for a name not in device_names(), Error when the CUDA module cannot be
  /// opened (naming it and why), CudaError "no CUDA device: ..." without a usable GPU.
  static Device open(const std::string& name) {
    if (!is_device_name(name)) throw InputError("unknown device '" + name + "' (cpu or cuda)");
    const diffblocks_backend& b = name == "cpu" ? *DeviceBackend<Cpu>::table() : cuda_backend();
    detail::HostCall call;
    call.check(b.open(call.host()));
    return Device(name, b);
  }

  const std::string& name() const { return name_; }
  /// "2 threads" (the CPU's, at the time of the call) or "cuda: NVIDIA H200, 132 SMs, ...".
  std::string description() const {
    detail::HostCall call;
    call.check(backend_->describe_device(call.host()));
    return call.texts[DIFFBLOCKS_TEXT_DEVICE];
  }
  const diffblocks_backend& backend() const { return *backend_; }

 private:
  Device(std::string name, const diffblocks_backend& b) : name_(std::move(name)), backend_(&b) {}
  std::string name_;
  const diffblocks_backend* backend_;
};

/// A loaded model. Copies share it; any number of threads may call forward/sample at once.
class Model {
 public:
  static Model load(const std::string& path, const Device& device, const LoadOptions& options = {}) {
    const std::int32_t dtype = model_dtype(options.dtype);
    detail::HostCall call;
    call.on_config = options.on_config;
    void* handle = nullptr;
    std::int32_t kind = 0;
    call.check(device.backend().load(path.c_str(), dtype, call.host(), &handle, &kind));
    return Model(device, std::make_shared<Handle>(device.backend(), handle),
                 kind == DIFFBLOCKS_ORIGIN ? ModelKind::Origin : ModelKind::Diffuser);
  }
  static Model load(const std::string& path, const std::string& device = "cpu", const LoadOptions& options = {}) {
    return load(path, Device::open(device), options);
  }

  ModelKind kind() const { return kind_; }
  const Device& device() const { return device_; }

  ModelInfo describe() const {
    detail::HostCall call;
    ModelInfo info;
    call.check(device_.backend().describe(handle_->model, call.host(), &info.parameters));
    info.class_name = call.texts[DIFFBLOCKS_TEXT_CLASS];
    info.config = nlohmann::json::parse(call.texts[DIFFBLOCKS_TEXT_CONFIG]);
    info.weights = std::move(call.weights);
    return info;
  }

  /// The inputs `task` needs on this model, checked (runtime/inputs.hpp).
  Inputs read_inputs(const TensorSource& source, Task task) const { return runtime::read_inputs(source, kind_, task); }

  /// One forward pass; `out` is the U-Net's output.
  Result forward(const Inputs& in) const {
    check_inputs(in, Task::Forward);
    const auto v = detail::views(in);
    detail::HostCall call;
    Result r;
    call.check(device_.backend().forward(handle_->model, v.data(), v.size(), call.host(), &r.seconds));
    r.out = std::move(call.out);
    return r;
  }
  Result forward(const TensorSource& source) const { return forward(read_inputs(source, Task::Forward)); }

  /// Origin: Grad-TTS reverse diffusion from z; Diffuser: the scheduler's loop from `sample`.
  Result sample(const Inputs& in, const SampleOptions& options) const {
    check_inputs(in, Task::Sample);
    check_options(options);
    const auto v = detail::views(in);
    diffblocks_sample_options o{};
    o.steps = options.steps;
    o.stochastic = options.stochastic;
    o.seed = options.seed;
    o.scheduler = options.scheduler.empty() ? "ddim" : options.scheduler.c_str();
    o.scheduler_config = options.scheduler_config.data();
    o.scheduler_config_size = options.scheduler_config.size();
    o.scheduler_origin = options.scheduler_origin.empty() ? nullptr : options.scheduler_origin.c_str();
    detail::HostCall call;
    call.progress = options.progress;
    const auto start = std::chrono::steady_clock::now();
    call.check(device_.backend().sample(handle_->model, v.data(), v.size(), &o, call.host()));
    Result r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.out = std::move(call.out);
    return r;
  }
  Result sample(const TensorSource& source, const SampleOptions& options) const {
    return sample(read_inputs(source, Task::Sample), options);
  }

 private:
  struct Handle {
    Handle(const diffblocks_backend& b, void* m) : backend(&b), model(m) {}
    ~Handle() { backend->release(model); }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    const diffblocks_backend* backend;
    void* model;
  };

  Model(Device device, std::shared_ptr<Handle> handle, ModelKind kind)
      : device_(std::move(device)), handle_(std::move(handle)), kind_(kind) {}

  void check_inputs(const Inputs& in, Task task) const {
    if (in.kind != kind_ || in.task != task)
      throw InputError(std::string("inputs read for ") + (in.task == Task::Forward ? "a forward pass" : "sampling") +
                       " on a " + detail::kind_name(in.kind) + " model, given to " +
                       (task == Task::Forward ? "forward" : "sample") + " on a " + detail::kind_name(kind_) + " model");
  }

  void check_options(const SampleOptions& o) const {
    if (kind_ == ModelKind::Origin && (!o.scheduler.empty() || !o.scheduler_config.empty()))
      throw InputError("a scheduler applies to UNet2DConditionModel models; GradLogPEstimator2d models use the "
                       "Grad-TTS sampler");
    if (kind_ == ModelKind::Diffuser && o.stochastic)
      throw InputError("stochastic sampling applies to GradLogPEstimator2d models; use the ddpm scheduler instead");
  }

  Device device_;
  std::shared_ptr<Handle> handle_;
  ModelKind kind_;
};

}  // namespace runtime
}  // namespace diffblocks
