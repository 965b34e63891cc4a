// bf16 and f16 (core/half.hpp): every 16-bit pattern decodes exactly and encodes back to
// itself; float32 -> half rounds to the nearest value, ties to even, checked against a
// reference that knows nothing of bit tricks (it compares distances in double to the two
// neighbouring half values) over 2^22 float32 patterns spread over the whole range plus the
// edge cases (ties, subnormals, overflow, NaN).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "diffblocks/core/half.hpp"

namespace db = diffblocks;

namespace {

float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

/// The non-negative finite values of a 16-bit format in increasing order, then +inf.
template <class Decode>
std::vector<double> ladder(std::uint16_t inf_bits, Decode decode) {
  std::vector<double> v;
  for (std::uint32_t b = 0; b <= inf_bits; ++b) v.push_back(static_cast<double>(decode(static_cast<std::uint16_t>(b))));
  return v;
}

/// Nearest-even rounding of |x| onto the ladder (last entry = inf; `limit` = where rounding
/// reaches infinity: the midpoint between the largest finite value and the next power step).
std::uint16_t round_reference(double ax, const std::vector<double>& values, double limit) {
  if (ax >= limit) return static_cast<std::uint16_t>(values.size() - 1);
  std::size_t lo = 0, hi = values.size() - 2;  // values[hi] = largest finite
  while (hi - lo > 1) {
    const std::size_t mid = (lo + hi) / 2;
    (values[mid] <= ax ? lo : hi) = mid;
  }
  if (values[hi] <= ax) lo = hi;
  if (values[lo] == ax || lo == values.size() - 2) return static_cast<std::uint16_t>(lo);
  const double dl = ax - values[lo], du = values[lo + 1] - ax;
  if (dl < du) return static_cast<std::uint16_t>(lo);
  if (du < dl) return static_cast<std::uint16_t>(lo + 1);
  return static_cast<std::uint16_t>(lo % 2 == 0 ? lo : lo + 1);  // a tie: the even bit pattern
}

template <class Encode>
void check_rounding(Encode encode, const std::vector<double>& values, double limit, const char* what) {
  auto check = [&](std::uint32_t b) {
    const float x = from_bits(b);
    if (std::isnan(x)) return;
    const std::uint16_t want = static_cast<std::uint16_t>(round_reference(std::fabs(double(x)), values, limit) |
                                                          (std::signbit(x) ? 0x8000u : 0u));
    const std::uint16_t got = encode(x);
    if (got != want) FAIL(what << ": " << x << " (bits " << b << ") gives " << got << ", expected " << want);
  };
  for (std::uint32_t b = 0; b < (1u << 22); ++b) check(b * 1024u + (b & 1023u));  // the whole range, varied low bits
  // Around every half value: the value, the float on each side, and the exact midpoints.
  for (std::size_t i = 0; i + 2 < values.size(); ++i) {
    const float v = static_cast<float>(values[i]), mid = static_cast<float>((values[i] + values[i + 1]) / 2);
    for (float f : {v, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f), -mid})
      check([&] {
        std::uint32_t b;
        std::memcpy(&b, &f, 4);
        return b;
      }());
  }
}

}  // namespace

TEST_CASE("f16 and bf16: every pattern decodes exactly and encodes back to itself", "[half]") {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const float f = db::f16_bits_to_float(h), g = db::bf16_bits_to_float(h);
    if (std::isnan(f)) {
      REQUIRE(std::isnan(float(db::f16(f))));
    } else {
      REQUIRE(db::float_to_f16_bits(f) == h);
    }
    if (std::isnan(g)) {
      REQUIRE(std::isnan(float(db::bf16(g))));
    } else {
      REQUIRE(db::float_to_bf16_bits(g) == h);
    }
  }
  REQUIRE(db::f16_bits_to_float(0x3c00) == 1.0f);
  REQUIRE(db::f16_bits_to_float(0x7bff) == 65504.0f);
  REQUIRE(db::f16_bits_to_float(0x0001) == std::ldexp(1.0f, -24));
  REQUIRE(db::bf16_bits_to_float(0x3f80) == 1.0f);
}

TEST_CASE("float32 -> f16 rounds to nearest even, subnormals and overflow included", "[half]") {
  const auto values = ladder(0x7c00, db::f16_bits_to_float);
  check_rounding(db::float_to_f16_bits, values, 65520.0, "f16");
  REQUIRE(db::float_to_f16_bits(65519.996f) == 0x7bff);
  REQUIRE(db::float_to_f16_bits(65520.0f) == 0x7c00);
  REQUIRE(db::float_to_f16_bits(std::ldexp(1.0f, -25)) == 0x0000);  // a tie with 0 and 2^-24: even
  REQUIRE(db::float_to_f16_bits(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  REQUIRE(db::float_to_f16_bits(-std::numeric_limits<float>::infinity()) == 0xfc00);
  REQUIRE(std::isnan(db::f16_bits_to_float(db::float_to_f16_bits(std::nanf("")))));
}

TEST_CASE("float32 -> bf16 rounds to nearest even, overflow included", "[half]") {
  const auto values = ladder(0x7f80, db::bf16_bits_to_float);
  // Rounding reaches infinity at the midpoint between the largest bf16 and 2^128.
  const double limit = (values[values.size() - 2] + std::ldexp(1.0, 128)) / 2;
  check_rounding(db::float_to_bf16_bits, values, limit, "bf16");
  REQUIRE(db::float_to_bf16_bits(std::numeric_limits<float>::max()) == 0x7f80);
  REQUIRE(db::float_to_bf16_bits(1.00390625f) == 0x3f80);  // 1 + 2^-8: a tie, to even (1.0)
  REQUIRE(db::float_to_bf16_bits(1.01171875f) == 0x3f82);  // 1 + 3 * 2^-8: a tie, to even (1 + 2^-6)
  const std::uint16_t nan = db::float_to_bf16_bits(from_bits(0x7f800001u));  // a signalling NaN
  REQUIRE(std::isnan(db::bf16_bits_to_float(nan)));  // stays NaN (truncation would give inf)
}
