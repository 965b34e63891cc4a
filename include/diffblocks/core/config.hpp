#pragma once
// Typed access to config.json values with errors that name the key and what was found.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "diffblocks/core/error.hpp"
#include "diffblocks/core/json.hpp"

namespace diffblocks {
namespace config {

using json = nlohmann::json;

inline std::string where(const std::string& origin, const std::string& key) {
  return origin + ": config key '" + key + "'";
}

/// The integer a JSON value holds, or nullopt. Integral floats (e.g. 64.0) count; every config
/// integer must fit an int (values come from untrusted files: no silent truncation, no UB).
inline std::optional<long long> as_int(const json& v) {
  constexpr long long lo = std::numeric_limits<int>::min(), hi = std::numeric_limits<int>::max();
  if (v.is_number_unsigned()) {
    const auto u = v.get<unsigned long long>();
    if (u > static_cast<unsigned long long>(hi)) return std::nullopt;
    return static_cast<long long>(u);
  }
  if (v.is_number_integer()) {
    const auto i = v.get<long long>();
    if (i < lo || i > hi) return std::nullopt;
    return i;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!(d >= double(lo) && d <= double(hi)) || std::floor(d) != d) return std::nullopt;
    return static_cast<long long>(d);
  }
  return std::nullopt;
}

/// Integer value; `fallback` when the key is absent or null.
inline long long get_int(const json& j, const std::string& key, long long fallback, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const json& v = j[key];
  if (const auto i = as_int(v)) return *i;
  throw ConfigError(where(origin, key) + " must be an integer (within the int range), got " + json_brief(v));
}

inline long long require_int(const json& j, const std::string& key, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) throw ConfigError(where(origin, key) + " is required but missing");
  return get_int(j, key, 0, origin);
}

inline double get_double(const json& j, const std::string& key, double fallback, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) throw ConfigError(where(origin, key) + " must be a number, got " + json_brief(j[key]));
  return j[key].get<double>();
}

inline std::vector<long long> get_int_list(const json& j, const std::string& key, std::vector<long long> fallback,
                                           const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_array()) throw ConfigError(where(origin, key) + " must be a list of integers, got " + json_brief(j[key]));
  std::vector<long long> out;
  for (const auto& v : j[key]) {
    const auto i = as_int(v);
    if (!i) throw ConfigError(where(origin, key) + " must be a list of integers (within the int range), got " + json_brief(j[key]));
    out.push_back(*i);
  }
  return out;
}

}  // namespace config
}  // namespace diffblocks
