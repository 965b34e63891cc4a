#pragma once
// A device policy behind the backend interface (runtime/abi.h). One implementation for every
// device: DeviceBackend<Cpu> is compiled into the program (runtime/model.hpp), DeviceBackend<Cuda>
// into the CUDA module (apps/cuda_module/diffblocks_cuda.cu, nvcc), so both devices load, check
// and run models with the same code and differ only in DeviceTraits and the tensors' device.
//
// Inputs arrive as host views (the runtime has checked names and ranks, runtime/inputs.hpp;
// runtime/views.hpp turns them into the library's inputs); the backend moves them to its device,
// runs, and writes the result into the buffer host->output gives. Every entry point catches
// everything and reports it through host->fail.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>
#include <type_traits>
#include <utility>

#include "diffblocks/core/parallel.hpp"
#include "diffblocks/io/model_file.hpp"
#include "diffblocks/runtime/abi.h"
#include "diffblocks/runtime/status.hpp"
#include "diffblocks/runtime/views.hpp"
#include "diffblocks/sampling/diffusers_sampling.hpp"
#include "diffblocks/sampling/gradtts.hpp"
#include "diffblocks/sampling/schedulers.hpp"
#include "diffblocks/unets/load.hpp"
#include "diffblocks/unets/transfer.hpp"
#include "diffblocks/version.hpp"

namespace diffblocks {
namespace runtime {

/// What differs between devices besides where tensors live.
template <class D>
struct DeviceTraits;

template <>
struct DeviceTraits<Cpu> {
  static constexpr bool halves = true;  // runs bf16 / f16 models (f32: every device)
  static void require() {}
  static std::string description() { return std::to_string(get_num_threads()) + " threads"; }
};

#ifdef DIFFBLOCKS_HAS_CUDA  // diffblocks/cuda.hpp was included (nvcc)
template <>
struct DeviceTraits<Cuda> {
  static constexpr bool halves = true;  // bf16 / f16 models: ops/cuda/half_ops.cuh
  static void require() { cuda::require_device(); }  // CudaError "no CUDA device: <driver's reason>"
  static std::string description() { return "cuda: " + cuda::device_description(); }
};
#endif

namespace detail {

/// Host tensors or inputs on device D: on the CPU the host objects themselves (moved), on
/// another device a copy there.
template <class D, class X>
auto to_dev(X&& host) {
  if constexpr (std::is_same_v<D, Cpu>) return std::decay_t<X>(std::move(host));
  else return to_device(D{}, host);
}

/// A result of device D on the host.
template <class D, class X>
auto to_host(X&& t) {
  if constexpr (std::is_same_v<D, Cpu>) return std::decay_t<X>(std::move(t));
  else return to_device(Cpu{}, t);
}

/// The model types' names, indexed by DIFFBLOCKS_MODEL_* (runtime::dtype_names()).
inline const std::vector<std::string>& model_dtype_names() {
  static const std::vector<std::string> names{"f32", "bf16", "f16"};
  return names;
}
inline const char* model_dtype_name(std::int32_t dtype) {
  const auto& n = model_dtype_names();
  return dtype >= 0 && static_cast<std::size_t>(dtype) < n.size() ? n[static_cast<std::size_t>(dtype)].c_str() : "(unknown)";
}

/// Whether device D runs models of type `dtype`: float32 everywhere, the half types where
/// DeviceTraits<D>::halves.
template <class D>
bool runs_model_dtype(std::int32_t dtype) {
  return dtype == DIFFBLOCKS_MODEL_F32 ||
         (DeviceTraits<D>::halves && (dtype == DIFFBLOCKS_MODEL_BF16 || dtype == DIFFBLOCKS_MODEL_F16));
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// The model's kind from its config's _class_name; another class is an error naming it.
inline std::int32_t model_kind(const ModelFile& mf) {
  const std::string cls = mf.class_name();
  if (cls == OriginConfig::class_name) return DIFFBLOCKS_ORIGIN;
  if (cls == DiffuserConfig::class_name) return DIFFBLOCKS_DIFFUSER;
  throw ConfigError(mf.config_origin + ": _class_name \"" + cls +
                    "\" is not supported (supported: \"GradLogPEstimator2d\", \"UNet2DConditionModel\")");
}

template <class D>
std::unique_ptr<Scheduler<float, D>> make_scheduler(const diffblocks_sample_options& o) {
  const std::string kind = o.scheduler ? o.scheduler : "ddim";
  const std::string origin = o.scheduler_origin ? o.scheduler_origin : kind + " defaults";
  const nlohmann::json j = o.scheduler_config_size
                               ? parse_config_text(std::string(o.scheduler_config, o.scheduler_config_size), origin)
                               : nlohmann::json::object();
  const SchedulerConfig cfg = SchedulerConfig::from_json(j, kind, origin);
  if (kind == "ddim") return std::make_unique<DDIMScheduler<float, D>>(cfg);
  if (kind == "ddpm") return std::make_unique<DDPMScheduler<float, D>>(cfg);
  if (kind == "euler") return std::make_unique<EulerDiscreteScheduler<float, D>>(cfg);
  throw ConfigError("unknown scheduler '" + kind + "' (ddim, ddpm or euler)");
}

/// An f16 model's forward output with NaN/Inf: f16 overflowed (inputs and weights were checked
/// finite when read, and the same model in float32 / bf16 has float32's range).
template <class T, std::size_t N>
void check_f16_output(const Tensor<float, N>& out) {
  if constexpr (std::is_same<T, f16>::value) {
    const std::ptrdiff_t i = ops::find_non_finite(Cpu{}, out);
    if (i >= 0)
      throw Error("the f16 model's output holds NaN/Inf at flat index " + std::to_string(i) +
                  ": an activation went beyond f16's largest value (65504); run the model in bf16 or f32");
  }
}

/// Copies `t` into the buffer the host gives for it.
template <std::size_t N>
void emit(const diffblocks_host* host, const Tensor<float, N>& t) {
  std::int64_t shape[N];
  for (std::size_t i = 0; i < N; ++i) shape[i] = static_cast<std::int64_t>(t.shape(i));
  float* dst = host->output ? host->output(host->ctx, static_cast<std::int32_t>(N), shape) : nullptr;
  if (!dst) throw HostAborted{};
  if (t.size()) std::memcpy(dst, t.data(), t.size() * sizeof(float));
}

/// Runs `f`, turning whatever it throws into a status reported through host->fail.
template <class F>
std::int32_t guarded(const diffblocks_host* host, F&& f) noexcept {
  try {
    f();
    return DIFFBLOCKS_OK;
  } catch (...) {
    std::string message;
    std::int32_t status = DIFFBLOCKS_BAD_ALLOC;
    try {
      status = current_status(message);
    } catch (...) {  // copying the message ran out of memory
    }
    if (status != DIFFBLOCKS_ABORTED && host && host->fail) host->fail(host->ctx, status, message.c_str());
    return status;
  }
}

}  // namespace detail

/// The backend table of device D.
template <class D>
struct DeviceBackend {
  /// One U-Net in scalar type T.
  template <class T>
  struct Typed {
    std::unique_ptr<GradLogPEstimator2d<T, D>> origin;
    std::unique_ptr<UNet2DConditionModel<T, D>> diffuser;
  };
  /// The half types' slots exist only where the device runs them (never instantiated else).
  struct NoModel {};
  template <class T>
  using Slot = std::conditional_t<DeviceTraits<D>::halves, Typed<T>, NoModel>;
  struct Model {
    ModelFile file;  // kept for describe (config, the checkpoint's tensor list)
    std::int32_t dtype = DIFFBLOCKS_MODEL_F32;  // one that detail::runs_model_dtype<D>
    Typed<float> f32;
    Slot<bf16> b16;
    Slot<f16> h16;
    /// f(typed) on the type the model was loaded as.
    template <class F>
    decltype(auto) visit(F&& f) const {
      return visit_typed(*this, f);
    }
    template <class F>
    decltype(auto) visit(F&& f) {
      return visit_typed(*this, f);
    }

   private:
    template <class M, class F>
    static decltype(auto) visit_typed(M& m, F& f) {  // M: Model or const Model
      if constexpr (DeviceTraits<D>::halves) {
        if (m.dtype == DIFFBLOCKS_MODEL_BF16) return f(m.b16);
        if (m.dtype == DIFFBLOCKS_MODEL_F16) return f(m.h16);
      }
      return f(m.f32);
    }
  };

  static const diffblocks_backend* table() {
    static const diffblocks_backend t{DIFFBLOCKS_BACKEND_ABI, D::name, DIFFBLOCKS_VERSION, &open, &describe_device,
                                      &load, &release, &describe, &forward, &sample};
    return &t;
  }

  static std::int32_t open(const diffblocks_host* host) {
    return detail::guarded(host, [] { DeviceTraits<D>::require(); });
  }

  static std::int32_t describe_device(const diffblocks_host* host) {
    return detail::guarded(host, [&] {
      const std::string d = DeviceTraits<D>::description();
      if (host->text) host->text(host->ctx, DIFFBLOCKS_TEXT_DEVICE, d.data(), d.size());
    });
  }

  static std::int32_t load(const char* path, std::int32_t dtype, const diffblocks_host* host, void** out,
                           std::int32_t* kind) {
    return detail::guarded(host, [&] {
      if (!detail::runs_model_dtype<D>(dtype))
        throw InputError(std::string("model type ") + detail::model_dtype_name(dtype) + " is not supported on device " +
                         D::name + (detail::runs_model_dtype<Cpu>(dtype) ? " yet (the CPU runs it)" : ""));
      auto m = std::make_unique<Model>();
      m->dtype = dtype;
      m->file = load_model_file(path);
      *kind = detail::model_kind(m->file);
      if (host->config_read && host->config_read(host->ctx, *kind)) throw HostAborted{};
      m->visit([&](auto& typed) {
        using T = typename std::decay_t<decltype(*typed.origin)>::scalar_type;
        if (*kind == DIFFBLOCKS_ORIGIN) typed.origin = load_origin<T, D>(m->file);
        else typed.diffuser = load_diffuser<T, D>(m->file);
      });
      *out = m.release();
    });
  }

  static void release(void* model) { delete static_cast<Model*>(model); }

  static std::int32_t describe(void* model, const diffblocks_host* host, std::uint64_t* parameters) {
    return detail::guarded(host, [&] {
      auto& m = *static_cast<Model*>(model);
      const std::string cls = m.file.class_name();
      m.visit([&](auto& typed) {
        *parameters = typed.origin ? parameter_count(*typed.origin) : parameter_count(*typed.diffuser);
      });
      const std::string config = m.visit([&](auto& typed) {
        return typed.origin ? typed.origin->config().to_json().dump() : m.file.config.dump();
      });
      if (host->text) {
        host->text(host->ctx, DIFFBLOCKS_TEXT_CLASS, cls.data(), cls.size());
        host->text(host->ctx, DIFFBLOCKS_TEXT_CONFIG, config.data(), config.size());
      }
      if (host->weight)
        for (const auto& t : m.file.weights.tensors())
          host->weight(host->ctx, t.name.data(), t.name.size(), dtype_name(t.dtype), static_cast<std::int32_t>(t.shape.size()),
                       t.shape.data());
    });
  }

  static std::int32_t forward(void* model, const diffblocks_tensor* inputs, std::size_t n, const diffblocks_host* host,
                              double* seconds) {
    return detail::guarded(host, [&] {
      const auto& m = *static_cast<const Model*>(model);
      detail::Views v(inputs, n);
      m.visit([&](const auto& typed) {
        using T = typename std::decay_t<decltype(*typed.origin)>::scalar_type;
        if (typed.origin) {
          auto x = v.floats<3>("x"), mask = v.floats<3>("mask"), mu = v.floats<3>("mu");
          auto t = v.floats<1>("t");
          auto cond = detail::origin_conditioning(v);
          v.check_all_taken();
          const auto start = std::chrono::steady_clock::now();  // inputs to the device .. result on the host
          const D d{};
          auto out = detail::to_host<D>(ops::to_type<float>(
              d, typed.origin->forward(ops::to_type<T>(d, detail::to_dev<D>(std::move(x))),
                                       ops::to_type<T>(d, detail::to_dev<D>(std::move(mask))),
                                       ops::to_type<T>(d, detail::to_dev<D>(std::move(mu))), detail::to_dev<D>(std::move(t)),
                                       cast_inputs<T>(d, detail::to_dev<D>(std::move(cond))))));
          *seconds = detail::seconds_since(start);
          detail::check_f16_output<T>(out);
          detail::emit(host, out);
        } else {
          auto in = detail::diffuser_inputs(v, true);
          v.check_all_taken();
          const auto start = std::chrono::steady_clock::now();
          const D d{};
          auto out = detail::to_host<D>(
              ops::to_type<float>(d, typed.diffuser->forward(cast_inputs<T>(d, detail::to_dev<D>(std::move(in))))));
          *seconds = detail::seconds_since(start);
          detail::check_f16_output<T>(out);
          detail::emit(host, out);
        }
      });
    });
  }

  static std::int32_t sample(void* model, const diffblocks_tensor* inputs, std::size_t n,
                             const diffblocks_sample_options* o, const diffblocks_host* host) {
    return detail::guarded(host, [&] {
      const auto& m = *static_cast<const Model*>(model);
      detail::Views v(inputs, n);
      auto progress = [host](int step, int steps, double s) {
        if (host->progress && host->progress(host->ctx, step, steps, s)) throw HostAborted{};
      };
      m.visit([&](const auto& typed) {
        using T = typename std::decay_t<decltype(*typed.origin)>::scalar_type;
        const D d{};
        if (typed.origin) {
          // The sampler's state (z, mask, mu and the result) is float32 in every model type.
          auto z = v.floats<3>("z"), mask = v.floats<3>("mask"), mu = v.floats<3>("mu");
          auto cond = detail::origin_conditioning(v);
          v.check_all_taken();
          GradTTSSamplerOptions opt;
          opt.steps = o->steps;
          opt.stochastic = o->stochastic != 0;
          opt.seed = o->seed;
          opt.progress = progress;
          detail::emit(host, detail::to_host<D>(reverse_diffusion(
                                 *typed.origin, detail::to_dev<D>(std::move(z)), detail::to_dev<D>(std::move(mask)),
                                 detail::to_dev<D>(std::move(mu)), opt, cast_inputs<T>(d, detail::to_dev<D>(std::move(cond))))));
        } else {
          auto in = detail::diffuser_inputs(v, false);
          v.check_all_taken();
          auto scheduler = detail::make_scheduler<D>(*o);
          DiffusersSamplingOptions opt;
          opt.steps = o->steps;
          opt.seed = o->seed;
          opt.progress = progress;
          detail::emit(host, detail::to_host<D>(diffusers_sample(*typed.diffuser, *scheduler,
                                                              cast_inputs<T>(d, detail::to_dev<D>(std::move(in))), opt)));
        }
      });
    });
  }
};

}  // namespace runtime
}  // namespace diffblocks
