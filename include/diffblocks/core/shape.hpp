#pragma once
// Shape helpers shared by every device: printing shapes in error messages and checked products.
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "diffblocks/core/error.hpp"

namespace diffblocks {

using Shape = std::vector<std::int64_t>;

/// "[2, 80, 96]" — the form every error message uses for a shape.
template <class Container>
std::string shape_str(const Container& shape) {
  std::ostringstream os;
  os << '[';
  bool first = true;
  for (auto d : shape) {
    if (!first) os << ", ";
    os << static_cast<long long>(d);
    first = false;
  }
  os << ']';
  return os.str();
}

/// Product of the dimensions; throws instead of overflowing (shapes come from untrusted files).
inline std::uint64_t checked_numel(const Shape& shape, const std::string& what) {
  std::uint64_t n = 1;
  for (auto d : shape) {
    if (d < 0) throw IoError(what + ": negative dimension in shape " + shape_str(shape));
    const auto ud = static_cast<std::uint64_t>(d);
    if (ud != 0 && n > std::numeric_limits<std::uint64_t>::max() / ud)
      throw IoError(what + ": shape " + shape_str(shape) + " overflows");
    n *= ud;
  }
  return n;
}

}  // namespace diffblocks
