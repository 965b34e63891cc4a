#pragma once
// The program's side of one call into a backend (runtime/abi.h): the diffblocks_host callbacks
// and what they collect (the result, texts, the checkpoint's tensor list, the error). An
// exception thrown by a callback's C++ code (a progress callback, LoadOptions::on_config, an
// allocation) is kept and rethrown by check() once the backend has returned, so that it never
// unwinds through the backend's frames.
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "diffblocks/core/shape.hpp"
#include "diffblocks/runtime/abi.h"
#include "diffblocks/runtime/inputs.hpp"
#include "diffblocks/runtime/status.hpp"
#include "diffblocks/runtime/tensors.hpp"

namespace diffblocks {
namespace runtime {

/// One tensor of the checkpoint file, as stored.
struct WeightInfo {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", ...
  Shape shape;
};

namespace detail {

/// One call's host: pass host() to the backend function, then check() its status.
class HostCall {
 public:
  std::function<void(int, int, double)> progress;
  std::function<void(ModelKind)> on_config;
  HostTensor out;
  std::string texts[3];  // by diffblocks_text
  std::vector<WeightInfo> weights;

  HostCall() {
    host_.ctx = this;
    host_.fail = &fail;
    host_.output = &output;
    host_.progress = &step;
    host_.config_read = &config_read;
    host_.text = &text;
    host_.weight = &weight;
  }
  HostCall(const HostCall&) = delete;
  HostCall& operator=(const HostCall&) = delete;

  const diffblocks_host* host() const { return &host_; }

  /// Throws what the call ended with: first what a callback threw (a text or weight callback
  /// can fail without the backend knowing), then the backend's own error.
  void check(std::int32_t status) const {
    if (pending_) std::rethrow_exception(pending_);
    throw_status(status, message_);
  }

 private:
  template <class F>
  auto keep(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (...) {
      pending_ = std::current_exception();
      return {};
    }
  }
  static HostCall& self(void* ctx) { return *static_cast<HostCall*>(ctx); }

  static void fail(void* ctx, std::int32_t, const char* message) {
    self(ctx).keep([&] { return (self(ctx).message_ = message, 0); });
  }
  static float* output(void* ctx, std::int32_t rank, const std::int64_t* shape) {
    return self(ctx).keep([&]() -> float* {
      HostTensor& o = self(ctx).out;
      o.shape.assign(shape, shape + rank);
      o.f32.resize(checked_numel(o.shape, "the result"));
      static float empty;
      return o.f32.empty() ? &empty : o.f32.data();
    });
  }
  static std::int32_t step(void* ctx, std::int32_t i, std::int32_t n, double seconds) {
    return self(ctx).keep([&]() -> std::int32_t {
      if (self(ctx).progress) self(ctx).progress(i, n, seconds);
      return 0;
    }) || self(ctx).pending_;
  }
  static std::int32_t config_read(void* ctx, std::int32_t kind) {
    return self(ctx).keep([&]() -> std::int32_t {
      if (self(ctx).on_config) self(ctx).on_config(kind == DIFFBLOCKS_ORIGIN ? ModelKind::Origin : ModelKind::Diffuser);
      return 0;
    }) || self(ctx).pending_;
  }
  static void text(void* ctx, std::int32_t what, const char* data, std::size_t size) {
    if (what >= 0 && what < 3) self(ctx).keep([&] { return (self(ctx).texts[what].assign(data, size), 0); });
  }
  static void weight(void* ctx, const char* name, std::size_t name_size, const char* dtype, std::int32_t rank,
                     const std::int64_t* shape) {
    self(ctx).keep([&] {
      self(ctx).weights.push_back({std::string(name, name_size), dtype, Shape(shape, shape + rank)});
      return 0;
    });
  }

  diffblocks_host host_{};
  std::exception_ptr pending_;
  std::string message_;
};

}  // namespace detail
}  // namespace runtime
}  // namespace diffblocks
