#pragma once
// Deprecated: the process-wide, content-hashed cache of prepared weights is gone. Blocks keep
// their prepared form in a slot (prepared.hpp) and raw op calls prepare for the call only, so
// there is nothing to limit or count here; these shims keep old callers compiling.
#include <cstddef>

#include "diffblocks/ops/cpu/prepared.hpp"

namespace diffblocks {
namespace ops {
namespace cpu {

[[deprecated("no process-wide weight cache any more: blocks keep prepared weights (db::prepared_bytes)")]]
inline void set_weight_cache_limit(std::size_t) {}
[[deprecated("no process-wide weight cache any more")]] inline std::size_t weight_cache_limit() { return 0; }
[[deprecated("no process-wide weight cache any more: see db::prepared_bytes")]]
inline std::size_t weight_cache_bytes() { return 0; }

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
