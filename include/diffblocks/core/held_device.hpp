#pragma once
// The device a model holds. The U-Nets derive from DeviceHolder: `model.to(device)` sets it,
// and every forward (and the samplers around it) runs with it in effect (DeviceScope), so each
// block inside, and any user block snapped into the U-Net, gets it from `D{}` and passes it to
// its ops. Two models holding two devices run side by side from two threads, each on its own.
#include <type_traits>
#include <utility>

#include "diffblocks/core/device.hpp"

namespace diffblocks {

template <class D>
class DeviceHolder {
 public:
  /// The device this model runs on (at construction: the one in effect, normally the process
  /// default).
  const D& device() const { return device_; }
  /// Runs the model on `d` from the next call on (its prepared weights follow d's settings).
  void to(const D& d) { device_ = d; }

 private:
  D device_{};
};

namespace detail {
template <class M, class = void>
struct has_device : std::false_type {};
template <class M>
struct has_device<M, std::void_t<decltype(std::declval<const M&>().device())>> : std::true_type {};
}  // namespace detail

/// The device model m runs on: m.device() when it holds one, else the device in effect.
template <class D, class M>
D device_of(const M& m) {
  if constexpr (detail::has_device<M>::value) return m.device();
  else return D{};
}

}  // namespace diffblocks
