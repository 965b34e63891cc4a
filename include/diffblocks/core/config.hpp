#pragma once
// Typed access to config.json values with errors that name the key and what was found.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffblocks/core/error.hpp"

namespace diffblocks {
namespace config {

using json = nlohmann::json;

inline std::string where(const std::string& origin, const std::string& key) {
  return origin + ": config key '" + key + "'";
}

/// Integer value; `fallback` when the key is absent or null. Integral floats (e.g. 64.0) pass.
inline long long get_int(const json& j, const std::string& key, long long fallback, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const json& v = j[key];
  if (v.is_number_integer()) return v.get<long long>();
  if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<long long>(v.get<double>())))
    return static_cast<long long>(v.get<double>());
  throw ConfigError(where(origin, key) + " must be an integer, got " + v.dump());
}

inline long long require_int(const json& j, const std::string& key, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) throw ConfigError(where(origin, key) + " is required but missing");
  return get_int(j, key, 0, origin);
}

inline double get_double(const json& j, const std::string& key, double fallback, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) throw ConfigError(where(origin, key) + " must be a number, got " + j[key].dump());
  return j[key].get<double>();
}

inline std::vector<long long> get_int_list(const json& j, const std::string& key, std::vector<long long> fallback,
                                           const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_array()) throw ConfigError(where(origin, key) + " must be a list of integers, got " + j[key].dump());
  std::vector<long long> out;
  for (const auto& v : j[key]) {
    if (!v.is_number_integer())
      throw ConfigError(where(origin, key) + " must be a list of integers, got " + j[key].dump());
    out.push_back(v.get<long long>());
  }
  return out;
}

}  // namespace config
}  // namespace diffblocks
