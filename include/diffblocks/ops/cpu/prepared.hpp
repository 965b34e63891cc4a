#pragma once
// Prepared weights kept with a block (Conv2d, ConvTranspose2d, Linear): the Winograd-transformed
// or GEMM-packed form of its weight, made once at its first run (or by prepare()) and used by
// every later call without looking at the weight again. Raw op calls (no block, no slot) prepare
// for the call only.
//
// The form depends on the kernels' copy (panels of 8 rows on AVX-512, 6 on AVX2, 4 on the
// baseline) and on the algorithm (Winograd or im2col), so it records both; a call that needs
// another form makes it and replaces the old one: a block holds one form, never one per
// algorithm (both for every 3x3 kernel would be 5x the weights).
//
// Thread safety: concurrent calls on the same block may both make a missing form; one wins, both
// results are identical. A copy of a block starts without a form (its weights may then be edited
// apart from the original's).
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>

#include "diffblocks/core/allocator.hpp"
#include "diffblocks/core/cpu_context.hpp"
#include "diffblocks/ops/cpu/isa.hpp"

namespace diffblocks {
namespace ops {
namespace cpu {

namespace detail {
inline std::atomic<std::size_t>& prepared_bytes_counter() {
  static std::atomic<std::size_t> n{0};
  return n;
}
}  // namespace detail

/// Bytes of prepared weights held by all blocks of the process now.
inline std::size_t prepared_weight_bytes() { return detail::prepared_bytes_counter().load(); }

/// Kinds of prepared weights.
enum WeightKind : int {
  kWinogradKernels = 0,      ///< Winograd-transformed 3x3 kernels, packed (kernels/winograd.inl)
  kPackedConv = 1,           ///< a conv2d weight packed for the patch GEMM (kernels/conv.inl)
  kPackedConvTranspose = 2,  ///< every phase of a transposed convolution's weight, packed
  kPackedLinear = 3,         ///< a Linear's W^T in the packed GEMM's column blocks (kernels/linear.inl)
  kWinogradTaps = 4,         ///< a 3x3 weight's 9 taps in the Winograd planes' packed layout (the
                             ///< weight's size), from which each call makes the planes (WeightPreparation::Auto)
  kPackedHalfLinear = 5,     ///< a half Linear's W^T in the half GEMM's layout (gemm_half.hpp: bf16
                             ///< pairs on the vdpbf16ps path, float32 on the widening ones)
};

/// Rows of x from which linear() multiplies by a packed W^T (kernels/linear.inl), and so from
/// which a Linear's prepared form is used; fewer rows read the weight as it is.
constexpr std::ptrdiff_t kLinearPackFrom = 128;

/// Bytes of Winograd planes (36 per 3x3 kernel, 4x the weight) from which WeightPreparation::Auto
/// keeps a convolution's taps form instead (kWinogradTaps: the weight's size) and makes the
/// planes at every call: 4 MiB, 3x3 kernels of about 170 x 170 channels and more (the Origin
/// U-Net's 256-channel convolutions at its lowest level and middle, 3/4 of its Winograd bytes).
constexpr std::size_t kWinogradTapsFrom = std::size_t{4} << 20;

/// What a prepared form is: the kernels' copy and the kind of data.
struct PreparedKey {
  Isa isa;
  int kind;
  bool operator==(const PreparedKey& o) const { return isa == o.isa && kind == o.kind; }
};

/// Whether a block keeps its prepared form under policy `p` (Keep and Auto), or makes it for
/// each call (PerCall).
inline bool keeps_prepared(WeightPreparation p) { return p != WeightPreparation::PerCall; }

/// One prepared form; counted in prepared_weight_bytes() while it lives.
template <class T>
struct PreparedForm {
  PreparedKey key;
  memory::WeightBuffer<T> data;
  PreparedForm(PreparedKey k, memory::WeightBuffer<T> d) : key(k), data(std::move(d)) {
    detail::prepared_bytes_counter() += bytes();
  }
  ~PreparedForm() { detail::prepared_bytes_counter() -= bytes(); }
  PreparedForm(const PreparedForm&) = delete;
  PreparedForm& operator=(const PreparedForm&) = delete;
  std::size_t bytes() const { return data.size() * sizeof(T); }
};

/// The prepared form one call uses: a slot's kept form, or one made for this call alone in
/// scratch from the caching allocator (its block is reused by the next call's form or by
/// activations, so a per-call form costs neither fresh pages nor memory held between calls).
template <class T>
struct PreparedUse {
  std::shared_ptr<const PreparedForm<T>> kept;
  memory::Buffer<T> own;
  const T* data() const { return kept ? kept->data.data() : own.data(); }
};

/// A block's slot for its prepared form.
template <class T>
class PreparedSlot {
 public:
  using Form = PreparedForm<T>;
  PreparedSlot() = default;
  PreparedSlot(const PreparedSlot&) {}
  PreparedSlot& operator=(const PreparedSlot&) {
    reset();
    return *this;
  }

  /// The form for `key`, made by make() (returning a WeightBuffer<T>) when missing or of
  /// another key. `made` is set when this call made it.
  template <class Make>
  std::shared_ptr<const Form> get(PreparedKey key, Make&& make, bool* made = nullptr) {
    {
      std::lock_guard<std::mutex> lk(m_);
      if (form_ && form_->key == key) return form_;
    }
    auto f = std::make_shared<const Form>(key, make());  // outside the lock: may be slow
    if (made) *made = true;
    std::lock_guard<std::mutex> lk(m_);
    form_ = f;
    return f;
  }
  /// Drops the form: the next call prepares the weights afresh.
  void reset() {
    std::shared_ptr<const Form> old;
    std::lock_guard<std::mutex> lk(m_);
    old.swap(form_);
  }
  /// Bytes of the form held (0 when none).
  std::size_t bytes() const {
    std::lock_guard<std::mutex> lk(m_);
    return form_ ? form_->bytes() : 0;
  }

 private:
  mutable std::mutex m_;
  std::shared_ptr<const Form> form_;
};

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
