// Loading half-precision models (bf16, f16): weights of the model's own type bit for bit, others
// rounded to nearest even, values beyond the type's range refused. The models themselves are
// tested against PyTorch's autocast by the shared block / U-Net / sampler tests compiled for
// each half type (test_half_bf16.cpp, test_half_f16.cpp).
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "helpers.hpp"

namespace db = diffblocks;

TEST_CASE("half: F32 weights round to nearest even at load, F16 and BF16 load bit for bit", "[half][io]") {
  // origin_a stores F16 weights, origin_d BF16 ones.
  const auto st_a = db::SafeTensors::load(dbt::fixture("origin_a/model.safetensors"));
  auto a16 = db::load_origin<db::f16>(dbt::fixture("origin_a"));
  const auto& info = st_a.info("final_conv.weight");
  REQUIRE(info.dtype == db::DType::F16);
  std::vector<unsigned char> raw(info.end - info.begin);
  st_a.read_raw(info, raw.data());
  REQUIRE(std::memcmp(raw.data(), a16->final_conv.weight.data(), raw.size()) == 0);
  // The same model in bf16: every value is the float32 value rounded to nearest even.
  auto ab = db::load_origin<db::bf16>(dbt::fixture("origin_a"));
  const auto f = st_a.read_float("final_conv.weight");
  for (std::size_t i = 0; i < f.size(); ++i) REQUIRE(ab->final_conv.weight.data()[i].bits == db::float_to_bf16_bits(f[i]));
}

TEST_CASE("half: an F32 weight beyond f16's range is refused naming the key", "[half][io][errors]") {
  auto all = dbt::read_all(db::SafeTensors::load(dbt::fixture("origin_d/model.safetensors")));
  for (auto& t : all)
    if (t.name == "final_conv.weight") t.f32[3] = 70000.0f;  // > 65504: Inf in f16, fine in bf16
  const std::string dir = dbt::tmp_path("half_overflow");
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(dbt::fixture("origin_d/config.json"), dir + "/config.json",
                             std::filesystem::copy_options::overwrite_existing);
  db::save_safetensors(dir + "/model.safetensors", all);
  REQUIRE_THROWS_WITH(db::load_origin<db::f16>(dir), Catch::Contains("final_conv.weight") && Catch::Contains("flat index 3") &&
                                                         Catch::Contains("f16"));
  REQUIRE_NOTHROW(db::load_origin<db::bf16>(dir));
}
