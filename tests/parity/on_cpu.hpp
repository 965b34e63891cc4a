#pragma once
// The CPU test binary's device for the shared test bodies (see device.hpp).
#include <string>

#include "../helpers.hpp"

namespace dbt {
using Dev = db::Cpu;
inline bool device_ready() { return true; }
inline bool fixture_may_be_missing() { return false; }
inline std::string device_description() { return "CPU, " + std::to_string(db::get_num_threads()) + " threads"; }
}  // namespace dbt

#ifndef DBT_DEVICE_TAG
#define DBT_DEVICE_TAG ""
#endif
#include "device.hpp"
