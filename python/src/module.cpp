// diffblocks._core: the Python binding of the run-time entry (runtime/model.hpp), the tensor
// files (io/safetensors.hpp) and the per-phoneme similarity (eval/similarity.hpp). One
// translation unit on purpose (build time). The Python package (python/diffblocks/__init__.py)
// wraps it: it converts what is not float32 / int64 C-contiguous before it reaches this module,
// which takes only those and borrows them (runtime::TensorViews: no copy on the way in).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <exception>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "diffblocks/core/parallel.hpp"
#include "diffblocks/eval/similarity.hpp"
#include "diffblocks/io/safetensors.hpp"
#include "diffblocks/runtime/model.hpp"
#include "diffblocks/version.hpp"

namespace nb = nanobind;
namespace db = diffblocks;
namespace rt = diffblocks::runtime;

namespace {

// The Python exception classes (made in NB_MODULE, kept for the process's life).
PyObject* exc_error = nullptr;
PyObject* exc_io = nullptr;
PyObject* exc_config = nullptr;
PyObject* exc_load = nullptr;
PyObject* exc_input = nullptr;
PyObject* exc_cuda = nullptr;
PyObject* exc_oom = nullptr;
PyObject* exc_cancelled = nullptr;

/// Thrown by the progress callback when the Python callable returned a true value: the
/// runtime keeps it (host_call.hpp), stops the run, and rethrows it here.
struct Cancelled : std::exception {
  std::string message;
  explicit Cancelled(std::string m) : message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

using AnyArray = nb::ndarray<nb::ro, nb::device::cpu>;

/// The arrays of an input dict as views (the dict's arrays stay referenced by the caller for
/// the call). Only float32 / int64 C-contiguous CPU arrays: the Python side converts the rest.
struct BorrowedInputs {
  rt::TensorViews source{"inputs"};
  std::vector<AnyArray> keep;  // the references the views rely on
};

bool c_contiguous(const AnyArray& a) {
  if (a.size() == 0) return true;  // no element to address (NumPy's strides may be anything)
  std::int64_t expect = 1;
  for (std::size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expect) return false;
    expect *= static_cast<std::int64_t>(a.shape(i));
  }
  return true;
}

void borrow_inputs(const nb::dict& inputs, BorrowedInputs& b) {
  for (auto [key, value] : inputs) {
    const std::string name = nb::cast<std::string>(key);
    AnyArray a;
    if (!nb::try_cast(value, a, false))
      throw nb::type_error(("input '" + db::escape_for_message(name) + "' is not a CPU array").c_str());
    rt::TensorView v;
    if (a.dtype() == nb::dtype<float>()) v.type = rt::ElementType::F32;
    else if (a.dtype() == nb::dtype<std::int64_t>()) v.type = rt::ElementType::I64;
    else throw nb::type_error(("input '" + db::escape_for_message(name) + "' must be float32 or int64").c_str());
    if (!c_contiguous(a))
      throw nb::type_error(("input '" + db::escape_for_message(name) + "' must be C-contiguous").c_str());
    for (std::size_t i = 0; i < a.ndim(); ++i) v.shape.push_back(static_cast<std::int64_t>(a.shape(i)));
    v.data = a.data();
    b.source.set(name, std::move(v));
    b.keep.push_back(std::move(a));
  }
}

/// A result as a NumPy array owning the runtime's buffer (no second copy).
nb::object to_numpy(rt::HostTensor&& t) {
  auto* data = new std::vector<float>(std::move(t.f32));
  nb::capsule owner(data, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
  std::vector<std::size_t> shape(t.shape.begin(), t.shape.end());
  return nb::ndarray<nb::numpy, float>(data->data(), shape.size(), shape.data(), owner).cast();
}

template <class T>
nb::object vector_to_numpy(std::vector<T>&& v, const db::Shape& s) {
  auto* data = new std::vector<T>(std::move(v));
  nb::capsule owner(data, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  std::vector<std::size_t> shape(s.begin(), s.end());
  return nb::ndarray<nb::numpy, T>(data->data(), shape.size(), shape.data(), owner).cast();
}

rt::Task task_of(const std::string& task) {
  if (task == "forward") return rt::Task::Forward;
  if (task == "sample") return rt::Task::Sample;
  throw nb::value_error("task must be 'forward' or 'sample'");
}

/// A loaded model (runtime::Model): any thread may call forward / sample at once; the GIL is
/// released while they compute.
class PyModel {
 public:
  PyModel(const std::string& path, const std::string& device, const std::string& dtype) : dtype_(dtype) {
    rt::LoadOptions o;
    o.dtype = dtype;
    nb::gil_scoped_release release;
    model_ = std::make_unique<rt::Model>(rt::Model::load(path, device, o));
  }

  std::string kind() const { return rt::detail::kind_name(model_->kind()); }
  std::string device() const { return model_->device().name(); }
  const std::string& dtype() const { return dtype_; }

  /// (class name, config JSON text, parameter count, [(name, dtype, shape)] of the checkpoint)
  std::tuple<std::string, std::string, std::uint64_t, std::vector<std::tuple<std::string, std::string, db::Shape>>>
  describe() const {
    const rt::ModelInfo info = model_->describe();
    std::vector<std::tuple<std::string, std::string, db::Shape>> w;
    for (const auto& t : info.weights) w.emplace_back(t.name, t.dtype, t.shape);
    return {info.class_name, info.config.dump(), info.parameters, std::move(w)};
  }

  nb::object forward(const nb::dict& inputs) const {
    BorrowedInputs b;
    borrow_inputs(inputs, b);
    rt::Result r;
    {
      nb::gil_scoped_release release;
      r = model_->forward(b.source);
    }
    return to_numpy(std::move(r.out));
  }

  nb::object sample(const nb::dict& inputs, int steps, bool stochastic, std::uint64_t seed, const std::string& scheduler,
                    const std::string& scheduler_config, nb::object progress) const {
    if (steps < 1) throw db::InputError("steps must be at least 1, got " + std::to_string(steps));
    BorrowedInputs b;
    borrow_inputs(inputs, b);
    rt::SampleOptions o;
    o.steps = steps;
    o.stochastic = stochastic;
    o.seed = seed;
    o.scheduler = scheduler;
    o.scheduler_config = scheduler_config;
    o.scheduler_origin = "scheduler_config";
    // Called from the computing thread without the GIL: take it, call, check for Ctrl-C.
    o.progress = [&progress](int step, int n, double seconds) {
      nb::gil_scoped_acquire gil;
      bool stop = false;
      if (!progress.is_none()) {
        const nb::object r = progress(step, n, seconds);
        const int truth = PyObject_IsTrue(r.ptr());
        if (truth < 0) throw nb::python_error();
        stop = truth != 0;
      }
      if (PyErr_CheckSignals() != 0) throw nb::python_error();
      if (stop)
        throw Cancelled("sampling stopped by the progress callback after step " + std::to_string(step) + " of " +
                        std::to_string(n));
    };
    rt::Result r;
    {
      nb::gil_scoped_release release;
      r = model_->sample(b.source, o);
    }
    return to_numpy(std::move(r.out));
  }

  /// Test hook: name -> address of each input the runtime hands to the device for `task`, as
  /// forward / sample would (an array's own address where it is borrowed, not copied).
  std::map<std::string, std::uintptr_t> input_addresses(const std::string& task, const nb::dict& inputs) const {
    BorrowedInputs b;
    borrow_inputs(inputs, b);
    const rt::Inputs in = model_->read_inputs(b.source, task_of(task));
    std::map<std::string, std::uintptr_t> out;
    for (const auto& t : rt::detail::views(in)) out[t.name] = reinterpret_cast<std::uintptr_t>(t.data);
    return out;
  }

 private:
  std::unique_ptr<rt::Model> model_;
  std::string dtype_;
};

nb::dict read_tensors(const std::string& path) {
  db::SafeTensors st;
  {
    nb::gil_scoped_release release;
    st = db::SafeTensors::load(path);
  }
  nb::dict out;
  for (const auto& t : st.tensors()) {
    const bool is_float = t.dtype == db::DType::F32 || t.dtype == db::DType::F64 || t.dtype == db::DType::F16 ||
                          t.dtype == db::DType::BF16;
    if (is_float) {
      std::vector<float> v(static_cast<std::size_t>(t.numel()));
      st.read_float(t, v.data());
      out[t.name.c_str()] = vector_to_numpy(std::move(v), t.shape);
    } else {
      out[t.name.c_str()] = vector_to_numpy(st.read_int(t.name), t.shape);
    }
  }
  return out;
}

std::map<std::string, std::string> read_metadata(const std::string& path) { return db::SafeTensors::load(path).metadata(); }

void write_tensors(const std::string& path, const nb::dict& tensors, const std::map<std::string, std::string>& metadata) {
  std::vector<db::TensorToWrite> entries;
  for (auto [key, value] : tensors) {
    db::TensorToWrite e;
    e.name = nb::cast<std::string>(key);
    AnyArray a;
    if (!nb::try_cast(value, a, false) || !c_contiguous(a))
      throw nb::type_error(("tensor '" + db::escape_for_message(e.name) + "' is not a C-contiguous CPU array").c_str());
    for (std::size_t i = 0; i < a.ndim(); ++i) e.shape.push_back(static_cast<std::int64_t>(a.shape(i)));
    if (a.dtype() == nb::dtype<float>()) {
      const auto* p = static_cast<const float*>(a.data());
      e.f32.assign(p, p + a.size());
    } else if (a.dtype() == nb::dtype<std::int64_t>()) {
      const auto* p = static_cast<const std::int64_t*>(a.data());
      e.i64.assign(p, p + a.size());
      e.is_int = true;
    } else {
      throw nb::type_error(("tensor '" + db::escape_for_message(e.name) + "' must be float32 or int64").c_str());
    }
    entries.push_back(std::move(e));
  }
  nb::gil_scoped_release release;
  db::save_safetensors(path, entries, metadata);
}

db::Tensor<float, 2> mel(const AnyArray& a, const std::string& what) {
  if (a.dtype() != nb::dtype<float>() || !c_contiguous(a) || a.ndim() != 2)
    throw nb::type_error((what + " must be a C-contiguous float32 (n_feats, T) array").c_str());
  auto m = db::Tensor<float, 2>::from_shape({a.shape(0), a.shape(1)});
  std::copy(static_cast<const float*>(a.data()), static_cast<const float*>(a.data()) + a.size(), m.data());
  return m;
}

/// The report as the JSON text `diffblocks similarity` writes (without paths).
std::string similarity(const AnyArray& reference, const std::vector<AnyArray>& candidates,
                       const std::vector<std::string>& labels, const std::vector<std::string>& phonemes,
                       const std::vector<std::int64_t>& durations, const std::string& metric, const std::string& title,
                       const std::string& subtitle) {
  const db::eval::Metric m = db::eval::parse_metric(metric);
  const auto ref = mel(reference, "reference");
  std::vector<db::Tensor<float, 2>> cands;
  for (std::size_t i = 0; i < candidates.size(); ++i)
    cands.push_back(mel(candidates[i], "candidate " + std::to_string(i + 1)));
  nb::gil_scoped_release release;
  const auto report = db::eval::phoneme_similarity(ref, cands, labels, phonemes, durations, m);
  return db::eval::to_json(report, title, subtitle).dump();
}

void set_num_threads(int n) {
  if (n < 1) throw db::InputError("the thread count must be at least 1, got " + std::to_string(n));
  db::set_num_threads(n);
}

PyObject* new_exception(nb::module_& m, const char* name, PyObject* base, const char* doc) {
  const std::string qualified = std::string("diffblocks.") + name;
  PyObject* e = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, base, nullptr);
  if (!e) throw nb::python_error();
  m.attr(name) = nb::handle(e);
  return e;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "diffblocks' compiled core; use the diffblocks package.";
  m.attr("__version__") = DIFFBLOCKS_VERSION;

  exc_error = new_exception(m, "Error", PyExc_RuntimeError, "Base of every error diffblocks reports (diffblocks::Error).");
  exc_io = new_exception(m, "IoError", exc_error, "An unreadable or malformed file (safetensors, config.json, model directory).");
  exc_config = new_exception(m, "ConfigError", exc_error, "A config with a missing key, a bad value or an unsupported option.");
  exc_load = new_exception(m, "LoadError", exc_error, "Checkpoint tensors that do not match the model (missing, unexpected, wrong shape).");
  exc_input = new_exception(m, "InputError", exc_error, "Inputs or options of the wrong name, rank, shape or content.");
  exc_cuda = new_exception(m, "CudaError", exc_error, "A CUDA call failed, or no CUDA device could be used.");
  exc_oom = new_exception(m, "OutOfMemoryError", exc_error, "An allocation the system refused.");
  exc_cancelled = new_exception(m, "Cancelled", exc_error, "Sampling stopped because the progress callback returned a true value.");

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Cancelled& e) {
      PyErr_SetString(exc_cancelled, e.what());
    } catch (const db::OutOfMemoryError& e) {
      PyErr_SetString(exc_oom, e.what());
    } catch (const db::IoError& e) {
      PyErr_SetString(exc_io, e.what());
    } catch (const db::ConfigError& e) {
      PyErr_SetString(exc_config, e.what());
    } catch (const db::LoadError& e) {
      PyErr_SetString(exc_load, e.what());
    } catch (const db::InputError& e) {
      PyErr_SetString(exc_input, e.what());
    } catch (const db::CudaError& e) {
      PyErr_SetString(exc_cuda, e.what());
    } catch (const db::Error& e) {
      PyErr_SetString(exc_error, e.what());
    }
  });

  m.def("set_num_threads", &set_num_threads, nb::arg("n"));
  m.def("get_num_threads", [] { return db::get_num_threads(); });
  m.def("devices", [] { return rt::device_names(); });
  m.def("dtypes", [] { return rt::dtype_names(); });

  nb::class_<PyModel>(m, "Model")
      .def(nb::init<const std::string&, const std::string&, const std::string&>(), nb::arg("path"),
           nb::arg("device") = "cpu", nb::arg("dtype") = "f32")
      .def_prop_ro("kind", &PyModel::kind)
      .def_prop_ro("device", &PyModel::device)
      .def_prop_ro("dtype", &PyModel::dtype)
      .def("describe", &PyModel::describe)
      .def("forward", &PyModel::forward, nb::arg("inputs"))
      .def("sample", &PyModel::sample, nb::arg("inputs"), nb::arg("steps"), nb::arg("stochastic"), nb::arg("seed"),
           nb::arg("scheduler"), nb::arg("scheduler_config"), nb::arg("progress").none())
      .def("_input_addresses", &PyModel::input_addresses, nb::arg("task"), nb::arg("inputs"));

  m.def("read_tensors", &read_tensors, nb::arg("path"));
  m.def("read_metadata", &read_metadata, nb::arg("path"));
  m.def("write_tensors", &write_tensors, nb::arg("path"), nb::arg("tensors"), nb::arg("metadata"));
  m.def("similarity", &similarity, nb::arg("reference"), nb::arg("candidates"), nb::arg("labels"),
        nb::arg("phonemes"), nb::arg("durations"), nb::arg("metric"), nb::arg("title"), nb::arg("subtitle"));
}
