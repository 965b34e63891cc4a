#pragma once
// Host tensors as the runtime takes and returns them: plain values (a shape and a vector), and a
// source of named tensors read on demand. Values, not the library's xtensor types, so that a C
// API or a Python binding can hand over and take back plain buffers.
//
// A TensorSource is read lazily, by name: a model's inputs are checked (names, ranks) before a
// tensor's data is read, and a tensor no input asks for is never read (a hostile file may hold a
// huge one). SafeTensorsSource reads a safetensors file as the CLI's --inputs; TensorMap holds
// tensors already in memory.
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
    std::vector<std::int64_t> v(t.f32.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      const float f = t.f32[i];
      if (!std::isfinite(f) || std::floor(f) != f || std::fabs(f) > 9.0e15f)  // as SafeTensors::read_int
        throw InputError(origin_ + ": tensor '" + name + "' must hold integer ids, but element " + std::to_string(i) +
                         " is " + std::to_string(f));
      v[i] = static_cast<std::int64_t>(f);
    }
    return v;
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

}  // namespace runtime
}  // namespace diffblocks
