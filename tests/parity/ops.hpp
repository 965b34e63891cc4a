#pragma once
// The op registry (tests/ops/op_cases.hpp) on the device under test: every op case against its
// plain reference under every variant of the device (tests/ops/variants.hpp, and for the Cuda
// device tests/cuda/variants.hpp), one table row each.
#include "../ops/check.hpp"
#include "device.hpp"

TEST_CASE(DBT_NAME_PREFIX "every op and variant matches its reference (op registry)", DBT_DEVICE_TAG "[ops]") {
  DBT_REQUIRE_DEVICE();
  dbops::check_registry<Dev>(dbt::device_description());
}
