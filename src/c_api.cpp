// The C API (include/diffblocks/c_api.h) over the runtime (runtime/model.hpp): the one
// translation unit of libdiffblocks_c.so. Every entry point runs its body in guarded(), which
// catches everything and turns it into a code and the thread's last-error message, so that no
// C++ exception crosses into C. Only the diffblocks_* functions are exported (hidden visibility
// and src/c_api.map, which also hides the libstdc++ template instances compiled in here).
#define DIFFBLOCKS_C_BUILDING 1
#include "diffblocks/c_api.h"
// The runtime's internal C table (included by runtime/model.hpp) in the same translation unit:
// the public header must never clash with it (c_api.h, "Names").
#include "diffblocks/runtime/abi.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "diffblocks/core/error.hpp"
#include "diffblocks/core/parallel.hpp"
#include "diffblocks/core/shape.hpp"
#include "diffblocks/io/safetensors.hpp"
#include "diffblocks/io/tensor_io.hpp"
#include "diffblocks/runtime/model.hpp"
#include "diffblocks/unets/diffuser_config.hpp"
#include "diffblocks/version.hpp"

static_assert(int{DIFFBLOCKS_TENSOR_F32} == int{DIFFBLOCKS_F32} && int{DIFFBLOCKS_TENSOR_I64} == int{DIFFBLOCKS_I64},
              "the public tensor types keep the backend table's values");
static_assert(int{DIFFBLOCKS_KIND_ORIGIN} == int{DIFFBLOCKS_ORIGIN} &&
                  int{DIFFBLOCKS_KIND_DIFFUSER} == int{DIFFBLOCKS_DIFFUSER},
              "the public model kinds keep the backend table's values");

namespace db = diffblocks;
namespace rt = diffblocks::runtime;

struct diffblocks_model {
  rt::Model model;
  std::int64_t out_channels = 0;  // Diffuser: the config's out_channels (the output's dimension 1)
};

namespace {

/// A bad argument to the API (DIFFBLOCKS_STATUS_INVALID_ARGUMENT).
struct InvalidArgument : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// The caller's buffer cannot hold the result (DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL).
struct BufferTooSmall : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// Thrown by the progress callback's C++ side to stop a run: runtime::detail::HostCall keeps it,
/// tells the backend to stop (HostAborted), and Model::sample rethrows it here.
struct Cancelled {
  int step, steps;
};

thread_local std::string error_text;
thread_local const char* error_message = "";

void clear_error() noexcept { error_message = ""; }

void set_error(const char* message) noexcept {
  try {
    error_text = message;
    error_message = error_text.c_str();
  } catch (...) {
    error_message = "out of memory (while keeping the error message)";
  }
}

/// The code and message of the exception being handled (call only inside a catch block).
diffblocks_code current_code() noexcept {
  try {
    throw;
  } catch (const InvalidArgument& e) {
    set_error(e.what());
    return DIFFBLOCKS_STATUS_INVALID_ARGUMENT;
  } catch (const BufferTooSmall& e) {
    set_error(e.what());
    return DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL;
  } catch (const Cancelled& c) {
    try {
      set_error(("cancelled by the progress callback at step " + std::to_string(c.step) + "/" +
                 std::to_string(c.steps) + "; nothing was written")
                    .c_str());
    } catch (...) {
      set_error("cancelled by the progress callback");
    }
    return DIFFBLOCKS_STATUS_CANCELLED;
  } catch (...) {
    std::string message;
    std::int32_t status = DIFFBLOCKS_BAD_ALLOC;
    try {
      status = rt::current_status(message);
    } catch (...) {  // copying the message ran out of memory
      message.clear();
    }
    switch (status) {
      case DIFFBLOCKS_ERROR: set_error(message.c_str()); return DIFFBLOCKS_STATUS_ERROR;
      case DIFFBLOCKS_IO_ERROR: set_error(message.c_str()); return DIFFBLOCKS_STATUS_IO_ERROR;
      case DIFFBLOCKS_CONFIG_ERROR: set_error(message.c_str()); return DIFFBLOCKS_STATUS_CONFIG_ERROR;
      case DIFFBLOCKS_LOAD_ERROR: set_error(message.c_str()); return DIFFBLOCKS_STATUS_LOAD_ERROR;
      case DIFFBLOCKS_INPUT_ERROR: set_error(message.c_str()); return DIFFBLOCKS_STATUS_INPUT_ERROR;
      case DIFFBLOCKS_OUT_OF_MEMORY: set_error(message.c_str()); return DIFFBLOCKS_STATUS_OUT_OF_MEMORY;
      case DIFFBLOCKS_CUDA_ERROR: set_error(message.c_str()); return DIFFBLOCKS_STATUS_CUDA_ERROR;
      case DIFFBLOCKS_BAD_ALLOC: set_error("out of memory (std::bad_alloc)"); return DIFFBLOCKS_STATUS_OUT_OF_MEMORY;
      case DIFFBLOCKS_LENGTH_ERROR:
        set_error(message.empty() ? "out of memory (std::length_error)" : message.c_str());
        return DIFFBLOCKS_STATUS_OUT_OF_MEMORY;
      default: set_error(message.empty() ? "internal error" : message.c_str()); return DIFFBLOCKS_STATUS_INTERNAL_ERROR;
    }
  }
}

/// Runs f with the last error cleared; whatever it throws becomes a code and a message.
template <class F>
diffblocks_code guarded(F&& f) noexcept {
  clear_error();
  try {
    f();
    return DIFFBLOCKS_STATUS_OK;
  } catch (...) {
    return current_code();
  }
}

void require(const void* p, const char* what) {
  if (!p) throw InvalidArgument(std::string(what) + " is NULL");
}

/// `s` for a message: control characters escaped, at most 200 bytes.
std::string quoted(const char* s) {
  std::string out = "'";
  for (std::size_t i = 0; s[i] && i < 200; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

/// A caller's tensor, checked: a name, a known type, rank 0..DIFFBLOCKS_MAX_RANK, dimensions
/// >= 0 whose product fits in memory and equals `size`, data unless empty.
db::Shape checked_tensor(const diffblocks_named_tensor& t, const std::string& where) {
  if (!t.name) throw InvalidArgument(where + ": name is NULL");
  const std::string what = where + " (" + quoted(t.name) + ")";
  if (t.dtype != DIFFBLOCKS_TENSOR_F32 && t.dtype != DIFFBLOCKS_TENSOR_I64)
    throw InvalidArgument(what + ": dtype " + std::to_string(t.dtype) +
                          " is neither DIFFBLOCKS_TENSOR_F32 (0) nor DIFFBLOCKS_TENSOR_I64 (1)");
  if (t.rank < 0 || t.rank > DIFFBLOCKS_MAX_RANK)
    throw InvalidArgument(what + ": rank " + std::to_string(t.rank) + " is outside 0.." +
                          std::to_string(DIFFBLOCKS_MAX_RANK));
  if (t.rank > 0 && !t.shape) throw InvalidArgument(what + ": shape is NULL with rank " + std::to_string(t.rank));
  db::Shape shape(t.shape, t.shape + t.rank);
  std::uint64_t n = 1;
  const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() / 16;  // bytes of any copy fit
  for (const std::int64_t d : shape) {
    if (d < 0) throw InvalidArgument(what + ": shape " + db::shape_str(shape) + " has a negative dimension");
    if (d != 0 && n > limit / static_cast<std::uint64_t>(d))
      throw InvalidArgument(what + ": shape " + db::shape_str(shape) + " is too large");
    n *= static_cast<std::uint64_t>(d);
  }
  if (n != t.size)
    throw InvalidArgument(what + ": shape " + db::shape_str(shape) + " has " + std::to_string(n) +
                          " elements but size is " + std::to_string(t.size));
  if (n && !t.data) throw InvalidArgument(what + ": data is NULL with shape " + db::shape_str(shape));
  return shape;
}

/// The caller's tensors as a runtime TensorSource, read in place (no copy until read_inputs).
class CTensors : public rt::TensorSource {
 public:
  CTensors(const diffblocks_named_tensor* t, std::size_t n, std::string origin) : origin_(std::move(origin)) {
    if (!t && n) throw InvalidArgument(origin_ + ": the tensor array is NULL but its count is " + std::to_string(n));
    for (std::size_t i = 0; i < n; ++i) {
      const db::Shape shape = checked_tensor(t[i], origin_ + "[" + std::to_string(i) + "]");
      if (!index_.emplace(t[i].name, entries_.size()).second)
        throw InvalidArgument(origin_ + ": tensor " + quoted(t[i].name) + " is given twice");
      entries_.push_back({&t[i], shape});
    }
  }

  const std::string& origin() const override { return origin_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> v;
    for (const auto& e : entries_) v.push_back(e.t->name);
    return v;
  }
  bool contains(const std::string& name) const override { return index_.count(name) != 0; }
  db::Shape shape(const std::string& name) const override { return at(name).shape; }
  void read_floats(const std::string& name, float* out) const override {
    const diffblocks_named_tensor& t = *at(name).t;
    if (t.dtype == DIFFBLOCKS_TENSOR_F32) {
      if (t.size) std::memcpy(out, t.data, t.size * sizeof(float));
    } else {
      const auto* p = static_cast<const std::int64_t*>(t.data);
      for (std::size_t i = 0; i < t.size; ++i) out[i] = static_cast<float>(p[i]);
    }
  }
  std::vector<std::int64_t> read_ids(const std::string& name) const override {
    const diffblocks_named_tensor& t = *at(name).t;
    if (t.dtype == DIFFBLOCKS_TENSOR_I64) {
      const auto* p = static_cast<const std::int64_t*>(t.data);
      return std::vector<std::int64_t>(p, p + t.size);
    }
    const auto* p = static_cast<const float*>(t.data);
    std::vector<std::int64_t> v(t.size);
    for (std::size_t i = 0; i < t.size; ++i) {
      const float f = p[i];
      if (!std::isfinite(f) || std::floor(f) != f || std::fabs(f) > 9.0e15f)  // as TensorMap::read_ids
        throw db::InputError(origin_ + ": tensor '" + name + "' must hold integer ids, but element " +
                             std::to_string(i) + " is " + std::to_string(f));
      v[i] = static_cast<std::int64_t>(f);
    }
    return v;
  }

 private:
  struct Entry {
    const diffblocks_named_tensor* t;
    db::Shape shape;
  };
  const Entry& at(const std::string& name) const {
    const auto it = index_.find(name);
    if (it == index_.end()) throw db::InputError(origin_ + ": no tensor named '" + name + "'");
    return entries_[it->second];
  }
  std::string origin_;
  std::vector<Entry> entries_;
  std::map<std::string, std::size_t> index_;
};

const rt::HostTensor& input(const rt::Inputs& in, const char* name) {
  for (const auto& [n, t] : in.tensors)
    if (n == name) return t;
  throw db::Error(std::string("internal: no input '") + name + "' after the inputs were checked");
}

/// The result's shape for checked inputs: Origin as x / z, Diffuser (B, out_channels, H, W).
db::Shape predicted_shape(const diffblocks_model& m, const rt::Inputs& in) {
  if (m.model.kind() == rt::ModelKind::Origin) return input(in, in.task == rt::Task::Forward ? "x" : "z").shape;
  db::Shape s = input(in, "sample").shape;
  s.at(1) = m.out_channels;
  return s;
}

std::uint64_t numel(const db::Shape& s) { return db::checked_numel(s, "the result"); }

void report_shape(const db::Shape& s, std::int64_t* shape, std::int32_t* rank) {
  if (s.size() > DIFFBLOCKS_MAX_RANK)
    throw db::Error("internal: a result of rank " + std::to_string(s.size()) + " (more than DIFFBLOCKS_MAX_RANK)");
  if (shape) std::copy(s.begin(), s.end(), shape);
  if (rank) *rank = static_cast<std::int32_t>(s.size());
}

void check_capacity(const db::Shape& s, const void* out, std::size_t capacity, const char* what) {
  const std::uint64_t n = numel(s);
  if (n > capacity || (n && !out))
    throw BufferTooSmall(std::string(what) + " needs " + std::to_string(n) + " elements (shape " + db::shape_str(s) +
                         ") but " + (out ? "the buffer holds " + std::to_string(capacity) : std::string("out is NULL")));
}

rt::Task task_of(std::int32_t task) {
  if (task == DIFFBLOCKS_TASK_FORWARD) return rt::Task::Forward;
  if (task == DIFFBLOCKS_TASK_SAMPLE) return rt::Task::Sample;
  throw InvalidArgument("task " + std::to_string(task) +
                        " is neither DIFFBLOCKS_TASK_FORWARD (0) nor DIFFBLOCKS_TASK_SAMPLE (1)");
}

rt::SampleOptions sample_options(const diffblocks_sampling* o) {
  diffblocks_sampling d;
  diffblocks_sampling_init(&d);
  if (!o) o = &d;
  if (o->steps <= 0) throw InvalidArgument("options->steps must be positive, got " + std::to_string(o->steps));
  rt::SampleOptions r;
  r.steps = o->steps;
  r.stochastic = o->stochastic != 0;
  r.seed = o->seed;
  if (o->scheduler) r.scheduler = o->scheduler;
  if (o->scheduler_config) {
    r.scheduler_config = o->scheduler_config;
    r.scheduler_origin = "options->scheduler_config";
  }
  if (o->progress) {
    const diffblocks_progress_fn f = o->progress;
    void* user = o->progress_user;
    r.progress = [f, user](int step, int steps, double seconds) {
      if (f(user, step, steps, seconds) != 0) throw Cancelled{step, steps};
    };
  }
  return r;
}

/// forward / sample: inputs checked, the result's shape reported and checked against the
/// buffer before the model runs, the result copied only when the whole call succeeded.
diffblocks_code run(const diffblocks_model* model, rt::Task task, const diffblocks_named_tensor* inputs, std::size_t n,
                    const diffblocks_sampling* options, float* out, std::size_t capacity, std::int64_t* out_shape,
                    std::int32_t* out_rank) {
  return guarded([&] {
    require(model, "model");
    const rt::SampleOptions opt = task == rt::Task::Sample ? sample_options(options) : rt::SampleOptions{};
    const CTensors source(inputs, n, "inputs");
    const rt::Inputs in = model->model.read_inputs(source, task);
    const db::Shape predicted = predicted_shape(*model, in);
    report_shape(predicted, out_shape, out_rank);
    check_capacity(predicted, out, capacity, "the result");
    const rt::Result r = task == rt::Task::Forward ? model->model.forward(in) : model->model.sample(in, opt);
    report_shape(r.out.shape, out_shape, out_rank);
    check_capacity(r.out.shape, out, capacity, "the result");
    if (!r.out.f32.empty()) std::memcpy(out, r.out.f32.data(), r.out.f32.size() * sizeof(float));
  });
}

bool floating(db::DType d) { return d == db::DType::F32 || d == db::DType::F64 || d == db::DType::F16 || d == db::DType::BF16; }

/// Tensor `name` of the file at `path` into out (capacity elements), as T (float: any numeric
/// dtype; int64: integers, or floats that are all integral); out untouched when anything fails.
template <class T>
diffblocks_code read_file_tensor(const char* path, const char* name, T* out, size_t capacity, size_t* count) {
  return guarded([&] {
    require(path, "path");
    require(name, "name");
    const db::SafeTensors f = db::SafeTensors::load(path);
    const db::TensorInfo& t = f.info(name);
    if (count) *count = static_cast<std::size_t>(t.numel());
    check_capacity(t.shape, out, capacity, (f.origin() + ": tensor '" + t.name + "'").c_str());
    std::vector<T> v;
    if constexpr (std::is_same<T, float>::value) {
      v.resize(static_cast<std::size_t>(t.numel()));
      f.read_numeric(t, v.data());
    } else {
      v = f.read_int(name);
    }
    std::copy(v.begin(), v.end(), out);
  });
}

}  // namespace

extern "C" {

const char* diffblocks_code_name(diffblocks_code code) {
  switch (code) {
    case DIFFBLOCKS_STATUS_OK: return "DIFFBLOCKS_STATUS_OK";
    case DIFFBLOCKS_STATUS_ERROR: return "DIFFBLOCKS_STATUS_ERROR";
    case DIFFBLOCKS_STATUS_IO_ERROR: return "DIFFBLOCKS_STATUS_IO_ERROR";
    case DIFFBLOCKS_STATUS_CONFIG_ERROR: return "DIFFBLOCKS_STATUS_CONFIG_ERROR";
    case DIFFBLOCKS_STATUS_LOAD_ERROR: return "DIFFBLOCKS_STATUS_LOAD_ERROR";
    case DIFFBLOCKS_STATUS_INPUT_ERROR: return "DIFFBLOCKS_STATUS_INPUT_ERROR";
    case DIFFBLOCKS_STATUS_OUT_OF_MEMORY: return "DIFFBLOCKS_STATUS_OUT_OF_MEMORY";
    case DIFFBLOCKS_STATUS_CUDA_ERROR: return "DIFFBLOCKS_STATUS_CUDA_ERROR";
    case DIFFBLOCKS_STATUS_INVALID_ARGUMENT: return "DIFFBLOCKS_STATUS_INVALID_ARGUMENT";
    case DIFFBLOCKS_STATUS_CANCELLED: return "DIFFBLOCKS_STATUS_CANCELLED";
    case DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL: return "DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL";
    case DIFFBLOCKS_STATUS_INTERNAL_ERROR: return "DIFFBLOCKS_STATUS_INTERNAL_ERROR";
  }
  return "DIFFBLOCKS_STATUS_UNKNOWN";
}

const char* diffblocks_last_error(void) { return error_message; }

const char* diffblocks_version_string(void) { return DIFFBLOCKS_VERSION; }

void diffblocks_version(int* major, int* minor, int* patch) {
  if (major) *major = DIFFBLOCKS_VERSION_MAJOR;
  if (minor) *minor = DIFFBLOCKS_VERSION_MINOR;
  if (patch) *patch = DIFFBLOCKS_VERSION_PATCH;
}

diffblocks_code diffblocks_set_num_threads(int32_t threads) {
  return guarded([&] {
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    const std::int32_t most = static_cast<std::int32_t>(std::min(256u, 4 * hw));
    if (threads < 1 || threads > most)
      throw InvalidArgument("threads " + std::to_string(threads) + " is outside 1.." + std::to_string(most) +
                            " (4 x the hardware threads, at most 256)");
    db::set_num_threads(threads);
  });
}

int32_t diffblocks_get_num_threads(void) {
  std::int32_t n = 1;
  guarded([&] { n = db::get_num_threads(); });
  return n;
}

diffblocks_code diffblocks_load(const char* path, const char* device, const char* dtype, diffblocks_model** model) {
  if (model) *model = nullptr;
  return guarded([&] {
    require(model, "model (where the handle goes)");
    require(path, "path");
    const std::string dev = device ? device : "cpu";
    if (!rt::is_device_name(dev)) throw InvalidArgument("unknown device " + quoted(dev.c_str()) + " (cpu or cuda)");
    rt::LoadOptions lo;
    if (dtype) {
      const auto& names = rt::dtype_names();
      if (std::find(names.begin(), names.end(), std::string(dtype)) == names.end())
        throw InvalidArgument("unknown model type " + quoted(dtype) + " (f32, bf16 or f16)");
      lo.dtype = dtype;
    }
    auto m = std::make_unique<diffblocks_model>(diffblocks_model{rt::Model::load(path, dev, lo), 0});
    if (m->model.kind() == rt::ModelKind::Diffuser)
      m->out_channels = db::DiffuserConfig::from_json(m->model.describe().config, path).out_channels;
    *model = m.release();
  });
}

void diffblocks_free(diffblocks_model* model) {
  clear_error();
  delete model;  // the runtime's release does not throw
}

int32_t diffblocks_kind(const diffblocks_model* model) {
  std::int32_t kind = -1;
  guarded([&] {
    require(model, "model");
    kind = model->model.kind() == rt::ModelKind::Origin ? DIFFBLOCKS_KIND_ORIGIN : DIFFBLOCKS_KIND_DIFFUSER;
  });
  return kind;
}

diffblocks_code diffblocks_output_shape(const diffblocks_model* model, int32_t task, const diffblocks_named_tensor* inputs,
                                        size_t n_inputs, int64_t shape[DIFFBLOCKS_MAX_RANK], int32_t* rank) {
  return guarded([&] {
    require(model, "model");
    require(shape, "shape");
    require(rank, "rank");
    const rt::Task t = task_of(task);
    const CTensors source(inputs, n_inputs, "inputs");
    report_shape(predicted_shape(*model, model->model.read_inputs(source, t)), shape, rank);
  });
}

diffblocks_code diffblocks_forward(const diffblocks_model* model, const diffblocks_named_tensor* inputs, size_t n_inputs,
                                   float* out, size_t capacity, int64_t out_shape[DIFFBLOCKS_MAX_RANK],
                                   int32_t* out_rank) {
  return run(model, rt::Task::Forward, inputs, n_inputs, nullptr, out, capacity, out_shape, out_rank);
}

void diffblocks_sampling_init(diffblocks_sampling* options) {
  clear_error();
  if (!options) return;
  *options = diffblocks_sampling{};
  options->steps = 10;
}

diffblocks_code diffblocks_sample(const diffblocks_model* model, const diffblocks_named_tensor* inputs, size_t n_inputs,
                                  const diffblocks_sampling* options, float* out, size_t capacity,
                                  int64_t out_shape[DIFFBLOCKS_MAX_RANK], int32_t* out_rank) {
  return run(model, rt::Task::Sample, inputs, n_inputs, options, out, capacity, out_shape, out_rank);
}

diffblocks_code diffblocks_tensor_file_shape(const char* path, const char* name, int32_t* dtype,
                                             int64_t shape[DIFFBLOCKS_MAX_RANK], int32_t* rank) {
  return guarded([&] {
    require(path, "path");
    require(name, "name");
    require(shape, "shape");
    require(rank, "rank");
    const db::SafeTensors f = db::SafeTensors::load(path);
    const db::TensorInfo& t = f.info(name);
    if (t.shape.size() > DIFFBLOCKS_MAX_RANK)
      throw db::IoError(f.origin() + ": tensor '" + t.name + "' has shape " + db::shape_str(t.shape) + ", rank above " +
                        std::to_string(DIFFBLOCKS_MAX_RANK));
    if (dtype) *dtype = floating(t.dtype) ? DIFFBLOCKS_TENSOR_F32 : DIFFBLOCKS_TENSOR_I64;
    report_shape(t.shape, shape, rank);
  });
}


diffblocks_code diffblocks_tensor_file_read_f32(const char* path, const char* name, float* out, size_t capacity,
                                                size_t* count) {
  return read_file_tensor(path, name, out, capacity, count);
}

diffblocks_code diffblocks_tensor_file_read_i64(const char* path, const char* name, int64_t* out, size_t capacity,
                                                size_t* count) {
  return read_file_tensor<std::int64_t>(path, name, out, capacity, count);
}

diffblocks_code diffblocks_tensor_file_write(const char* path, const diffblocks_named_tensor* tensors, size_t n_tensors) {
  return guarded([&] {
    require(path, "path");
    if (!tensors && n_tensors)
      throw InvalidArgument(std::string(path) + ": the tensor array is NULL but its count is " +
                            std::to_string(n_tensors));
    std::vector<db::TensorToWrite> entries;
    for (std::size_t i = 0; i < n_tensors; ++i) {
      const diffblocks_named_tensor& t = tensors[i];
      db::TensorToWrite e;
      e.shape = checked_tensor(t, std::string(path) + ": tensors[" + std::to_string(i) + "]");
      e.name = t.name;
      if (t.dtype == DIFFBLOCKS_TENSOR_I64) {
        e.is_int = true;
        const auto* p = static_cast<const std::int64_t*>(t.data);
        e.i64.assign(p, p + t.size);
      } else {
        const auto* p = static_cast<const float*>(t.data);
        e.f32.assign(p, p + t.size);
      }
      entries.push_back(std::move(e));
    }
    db::write_tensors(path, entries);
  });
}

}  // extern "C"
