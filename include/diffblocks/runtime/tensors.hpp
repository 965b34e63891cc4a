#pragma once
// Host tensors as the runtime takes and returns them: plain values (a shape and a vector), and a
// source of named tensors read on demand. Values, not the library's xtensor types, so that a C
// API or a Python binding can hand over and take back plain buffers.
//
// A TensorSource is read lazily, by name: a model's inputs are checked (names, ranks) before a
// tensor's data is read, and a tensor no input asks for is never read (a hostile file may hold a
// huge one). SafeTensorsSource reads a safetensors file as the CLI's --inputs; TensorMap holds
// tensors already in memory; TensorViews borrows the caller's memory (e.g. NumPy arrays) and is
// passed to the device without a copy (TensorSource::view).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "diffblocks/core/error.hpp"
#include "diffblocks/core/shape.hpp"
#include "diffblocks/io/safetensors.hpp"

namespace diffblocks {
namespace runtime {

enum class ElementType { F32, I64 };

/// A row-major host tensor: floats (F32) or integer ids (I64), in `f32` or `i64`.
struct HostTensor {
  ElementType type = ElementType::F32;
  Shape shape;
  std::vector<float> f32;
  std::vector<std::int64_t> i64;

  static HostTensor floats(Shape shape, std::vector<float> data) {
    HostTensor t;
    t.shape = std::move(shape);
    t.f32 = std::move(data);
    return t;
  }
  static HostTensor ids(Shape shape, std::vector<std::int64_t> data) {
    HostTensor t;
    t.type = ElementType::I64;
    t.shape = std::move(shape);
    t.i64 = std::move(data);
    return t;
  }
};

/// A tensor in the caller's memory, borrowed for one call: row-major and contiguous, float32
/// (F32) or int64 (I64) values at `data` (may be null when the shape has no elements), valid and
/// unchanged while the call runs.
struct TensorView {
  ElementType type = ElementType::F32;
  Shape shape;
  const void* data = nullptr;
};

namespace detail {

/// Integer ids from float values, refusing one that is not integral (as SafeTensors::read_int).
inline std::vector<std::int64_t> ids_from_floats(const float* f, std::size_t n, const std::string& what) {
  std::vector<std::int64_t> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(f[i]) || std::floor(f[i]) != f[i] || std::fabs(f[i]) > 9.0e15f)
      throw InputError(what + " must hold integer ids, but element " + std::to_string(i) + " is " +
                       std::to_string(f[i]));
    v[i] = static_cast<std::int64_t>(f[i]);
  }
  return v;
}

}  // namespace detail

/// Named tensors, read on demand.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  /// Names the source in error messages (the CLI: the --inputs path).
  virtual const std::string& origin() const = 0;
  virtual std::vector<std::string> names() const = 0;
  virtual bool contains(const std::string& name) const = 0;
  /// The shape of a tensor the source contains.
  virtual Shape shape(const std::string& name) const = 0;
  /// Any numeric tensor as float32 into `out` (its element count of them).
  virtual void read_floats(const std::string& name, float* out) const = 0;
  /// Integer ids: an integer tensor, or a float tensor whose values are all integral.
  virtual std::vector<std::int64_t> read_ids(const std::string& name) const = 0;
  /// The tensor as memory the source borrows (row-major, contiguous, F32 or I64), when it has
  /// it so: read_inputs then passes that memory on to the device as it is, with no copy, when its
  /// type is the one the input needs (F32 for floats, I64 for ids). nullptr: read it.
  virtual const TensorView* view(const std::string& /*name*/) const { return nullptr; }
};

/// A safetensors file (F32/F16/BF16/F64 floats, any integer type for ids).
class SafeTensorsSource : public TensorSource {
 public:
  explicit SafeTensorsSource(const std::string& path) : file_(SafeTensors::load(path)), origin_(path) {}

  const std::string& origin() const override { return origin_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (const auto& t : file_.tensors()) n.push_back(t.name);
    return n;
  }
  bool contains(const std::string& name) const override { return file_.contains(name); }
  Shape shape(const std::string& name) const override { return file_.info(name).shape; }
  void read_floats(const std::string& name, float* out) const override { file_.read_numeric(file_.info(name), out); }
  std::vector<std::int64_t> read_ids(const std::string& name) const override { return file_.read_int(name); }

 private:
  SafeTensors file_;
  std::string origin_;
};

/// Tensors in memory, by name.
class TensorMap : public TensorSource {
 public:
  explicit TensorMap(std::string origin = "inputs") : origin_(std::move(origin)) {}

  /// Adds or replaces `name`; throws InputError when the data does not fill the shape.
  TensorMap& set(const std::string& name, HostTensor t) {
    const std::uint64_t n = checked_numel(t.shape, origin_ + ": tensor '" + name + "'");
    const std::size_t have = t.type == ElementType::F32 ? t.f32.size() : t.i64.size();
    if (have != n)
      throw InputError(origin_ + ": tensor '" + name + "' has shape " + shape_str(t.shape) + " (" + std::to_string(n) +
                       " elements) but holds " + std::to_string(have));
    tensors_[name] = std::move(t);
    return *this;
  }

  const std::string& origin() const override { return origin_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (const auto& kv : tensors_) n.push_back(kv.first);
    return n;
  }
  bool contains(const std::string& name) const override { return tensors_.count(name) != 0; }
  Shape shape(const std::string& name) const override { return at(name).shape; }
  void read_floats(const std::string& name, float* out) const override {
    const HostTensor& t = at(name);
    if (t.type == ElementType::F32) std::copy(t.f32.begin(), t.f32.end(), out);
    else for (std::size_t i = 0; i < t.i64.size(); ++i) out[i] = static_cast<float>(t.i64[i]);
  }
  std::vector<std::int64_t> read_ids(const std::string& name) const override {
    const HostTensor& t = at(name);
    if (t.type == ElementType::I64) return t.i64;
    return detail::ids_from_floats(t.f32.data(), t.f32.size(), origin_ + ": tensor '" + name + "'");
  }

 private:
  const HostTensor& at(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) throw InputError(origin_ + ": no tensor named '" + name + "'");
    return it->second;
  }

  std::string origin_;
  std::map<std::string, HostTensor> tensors_;
};

/// Tensors in the caller's memory, by name, borrowed: a model's forward / sample given this
/// source passes F32 tensors (and I64 ids) to the device where they are, without copying them
/// (the Python binding's NumPy arrays). The memory must stay valid and unchanged until the call
/// returns. A tensor of the other type is converted when read, as TensorMap does.
class TensorViews : public TensorSource {
 public:
  explicit TensorViews(std::string origin = "inputs") : origin_(std::move(origin)) {}

  /// Adds or replaces `name`; throws InputError for a shape whose element count overflows, or
  /// for null data with elements.
  TensorViews& set(const std::string& name, TensorView v) {
    const std::uint64_t n = checked_numel(v.shape, origin_ + ": tensor '" + name + "'");
    if (n != 0 && v.data == nullptr) throw InputError(origin_ + ": tensor '" + name + "' has no data");
    views_[name] = std::move(v);
    return *this;
  }

  const std::string& origin() const override { return origin_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (const auto& kv : views_) n.push_back(kv.first);
    return n;
  }
  bool contains(const std::string& name) const override { return views_.count(name) != 0; }
  Shape shape(const std::string& name) const override { return at(name).shape; }
  void read_floats(const std::string& name, float* out) const override {
    const TensorView& v = at(name);
    const std::size_t n = numel(v);
    if (v.type == ElementType::F32) std::copy(static_cast<const float*>(v.data), static_cast<const float*>(v.data) + n, out);
    else for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<const std::int64_t*>(v.data)[i]);
  }
  std::vector<std::int64_t> read_ids(const std::string& name) const override {
    const TensorView& v = at(name);
    const std::size_t n = numel(v);
    if (v.type == ElementType::I64) {
      const auto* p = static_cast<const std::int64_t*>(v.data);
      return std::vector<std::int64_t>(p, p + n);
    }
    return detail::ids_from_floats(static_cast<const float*>(v.data), n, origin_ + ": tensor '" + name + "'");
  }
  const TensorView* view(const std::string& name) const override { return &at(name); }

 private:
  static std::size_t numel(const TensorView& v) { return static_cast<std::size_t>(checked_numel(v.shape, "view")); }
  const TensorView& at(const std::string& name) const {
    const auto it = views_.find(name);
    if (it == views_.end()) throw InputError(origin_ + ": no tensor named '" + name + "'");
    return it->second;
  }

  std::string origin_;
  std::map<std::string, TensorView> views_;
};

}  // namespace runtime
}  // namespace diffblocks
