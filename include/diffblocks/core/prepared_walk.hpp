#pragma once
// prepare / invalidate_prepared / prepared_bytes on any block or model: they walk the block tree
// through the blocks' own `visit` (which every block forwards to its children unchanged), and
// the blocks that keep prepared weights (Conv2d, ConvTranspose2d) offer themselves to the walk
// (detail::offer_prepared in their visit). No second tree-walking method per block.
//
//   model.conv.weight(0, 0, 1, 1) += 0.1f;   // an edit after the first forward ...
//   db::invalidate_prepared(model);          // ... is seen from the next call on
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

namespace diffblocks {
namespace detail {

struct PreparedWalkTag {};

/// A parameter visitor that ignores the parameters and calls f(block) on every block that
/// keeps prepared weights.
template <class F>
struct PreparedWalk : PreparedWalkTag {
  F f;
  explicit PreparedWalk(F fn) : f(std::move(fn)) {}
  template <class Tensor>
  void operator()(const std::string&, Tensor&) const {}
  template <class Block>
  void block(Block& b) {
    f(b);
  }
};

/// Whether visitor type V is the prepared-weights walk.
template <class V>
struct is_prepared_walk : std::is_base_of<PreparedWalkTag, std::decay_t<V>> {};

/// Called by a block that keeps prepared weights from its visit(v, ...).
template <class V, class Block>
void offer_prepared(V& v, Block& b) {
  if constexpr (is_prepared_walk<V>::value) v.block(b);
}

template <class Module, class F>
void walk_prepared(Module& m, F f) {
  PreparedWalk<F> w(std::move(f));
  m.visit(w);
}

}  // namespace detail

/// Drops every prepared form in the block tree: the next call prepares from the weights as
/// they are then. Call it after editing weights in place; loading a state dict does it itself.
template <class Module>
void invalidate_prepared(Module& m) {
  detail::walk_prepared(m, [](auto& b) { b.invalidate_prepared(); });
}

/// Makes every prepared form now, for the device in effect (a model's own prepare() installs
/// its device), instead of at the first forward.
template <class Module>
void prepare(Module& m) {
  detail::walk_prepared(m, [](auto& b) { b.prepare(); });
}

/// Bytes of prepared weights the block tree holds.
template <class Module>
std::size_t prepared_bytes(Module& m) {
  std::size_t n = 0;
  detail::walk_prepared(m, [&](auto& b) { n += b.prepared_bytes(); });
  return n;
}

}  // namespace diffblocks
