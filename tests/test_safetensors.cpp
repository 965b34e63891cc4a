// safetensors reading/writing: round trips, dtype conversion, and every malformed file the
// format allows, each rejected with an IoError that names the fault.
#include <cstring>
#include <fstream>

#include "helpers.hpp"

using namespace dbt;
using json = nlohmann::json;

namespace {

std::vector<unsigned char> make_file(const json& header, std::size_t buffer_bytes, long long header_len = -1) {
  const std::string h = header.dump();
  const std::uint64_t n = header_len < 0 ? h.size() : static_cast<std::uint64_t>(header_len);
  std::vector<unsigned char> bytes(8);
  std::memcpy(bytes.data(), &n, 8);
  bytes.insert(bytes.end(), h.begin(), h.end());
  for (std::size_t i = 0; i < buffer_bytes; ++i) bytes.push_back(static_cast<unsigned char>(i));
  return bytes;
}

json entry(const char* dtype, std::vector<long long> shape, std::uint64_t b, std::uint64_t e) {
  return {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {b, e}}};
}

void require_io_error(const std::vector<unsigned char>& bytes, const std::string& needle) {
  INFO("expecting an IoError containing: " << needle);
  REQUIRE_THROWS_AS(db::SafeTensors::from_bytes(bytes, "bad.safetensors"), db::IoError);
  REQUIRE_THROWS_WITH(db::SafeTensors::from_bytes(bytes, "bad.safetensors"),
                      Catch::Contains("bad.safetensors") && Catch::Contains(needle));
}

}  // namespace

TEST_CASE("safetensors round trip of float and integer tensors with metadata", "[io]") {
  db::TensorToWrite a, b;
  a.name = "a";
  a.shape = {2, 3};
  a.f32 = {1, -2, 3.5f, 4, 5, 6};
  b.name = "ids";
  b.shape = {3};
  b.is_int = true;
  b.i64 = {0, 7, -2};
  const std::string path = tmp_path("roundtrip.safetensors");
  db::save_safetensors(path, {a, b}, {{"config", "{\"x\": 1}"}});
  const auto st = db::SafeTensors::load(path);
  REQUIRE(st.metadata().at("config") == "{\"x\": 1}");
  REQUIRE(st.read_float("a") == a.f32);
  REQUIRE(st.read_int("ids") == b.i64);
  REQUIRE(st.info("a").shape == db::Shape{2, 3});
  REQUIRE_THROWS_WITH(st.read_float("ids"), Catch::Contains("'ids'") && Catch::Contains("I64"));
  REQUIRE_THROWS_WITH(st.info("nope"), Catch::Contains("'nope'"));
}

TEST_CASE("F16 and BF16 convert exactly to float32", "[io]") {
  // 1.0, -2.0, 65504 (max half), 2^-24 (smallest subnormal half), +inf
  const std::uint16_t half[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00};
  const std::uint16_t bf16[] = {0x3f80, 0xc000, 0x4049, 0x0000, 0xff80};
  json h = {{"h", entry("F16", {5}, 0, 10)}, {"b", entry("BF16", {5}, 10, 20)}};
  auto bytes = make_file(h, 0);
  bytes.insert(bytes.end(), reinterpret_cast<const unsigned char*>(half), reinterpret_cast<const unsigned char*>(half) + 10);
  bytes.insert(bytes.end(), reinterpret_cast<const unsigned char*>(bf16), reinterpret_cast<const unsigned char*>(bf16) + 10);
  const auto st = db::SafeTensors::from_bytes(bytes, "mem");
  const auto hv = st.read_float("h");
  REQUIRE(hv[0] == 1.0f);
  REQUIRE(hv[1] == -2.0f);
  REQUIRE(hv[2] == 65504.0f);
  REQUIRE(hv[3] == std::ldexp(1.0f, -24));
  REQUIRE(std::isinf(hv[4]));
  const auto bv = st.read_float("b");
  REQUIRE(bv[0] == 1.0f);
  REQUIRE(bv[1] == -2.0f);
  REQUIRE(bv[2] == 3.140625f);
  REQUIRE(bv[3] == 0.0f);
  REQUIRE(std::isinf(bv[4]));
}

TEST_CASE("integer ids may be stored as I32 or integral F32, not fractional", "[io]") {
  json h = {{"i", entry("I32", {2}, 0, 8)}, {"f", entry("F32", {2}, 8, 16)}};
  auto bytes = make_file(h, 0);
  const std::int32_t iv[] = {3, -1};
  const float fv[] = {2.0f, 0.5f};
  bytes.insert(bytes.end(), reinterpret_cast<const unsigned char*>(iv), reinterpret_cast<const unsigned char*>(iv) + 8);
  bytes.insert(bytes.end(), reinterpret_cast<const unsigned char*>(fv), reinterpret_cast<const unsigned char*>(fv) + 8);
  const auto st = db::SafeTensors::from_bytes(bytes, "mem");
  REQUIRE(st.read_int("i") == std::vector<std::int64_t>{3, -1});
  REQUIRE_THROWS_WITH(st.read_int("f"), Catch::Contains("integer ids"));
}

TEST_CASE("malformed safetensors files are rejected with the fault named", "[io][errors]") {
  const json good = {{"a", entry("F32", {2}, 0, 8)}};
  SECTION("valid baseline") { REQUIRE_NOTHROW(db::SafeTensors::from_bytes(make_file(good, 8), "ok")); }
  SECTION("truncated below the header length field") {
    require_io_error({1, 2, 3}, "truncated");
  }
  SECTION("header length beyond the file") { require_io_error(make_file(good, 8, 1 << 20), "beyond the file size"); }
  SECTION("truncated data buffer") {
    auto bytes = make_file(good, 8);
    bytes.resize(bytes.size() - 3);
    require_io_error(bytes, "out of range");
  }
  SECTION("header not JSON") {
    auto bytes = make_file(good, 8);
    bytes[9] = '#';
    require_io_error(bytes, "not valid JSON");
  }
  SECTION("header not an object") { require_io_error(make_file(json::array({1, 2}), 0), "not a JSON object"); }
  SECTION("offsets out of range") {
    require_io_error(make_file({{"a", entry("F32", {2}, 0, 8)}, {"b", entry("F32", {2}, 8, 16)}}, 12),
                     "out of range");
  }
  SECTION("overlapping tensors") {
    require_io_error(make_file({{"a", entry("F32", {2}, 0, 8)}, {"b", entry("F32", {2}, 4, 12)}}, 12), "overlaps");
  }
  SECTION("hole in the buffer") {
    require_io_error(make_file({{"a", entry("F32", {1}, 0, 4)}, {"b", entry("F32", {1}, 8, 12)}}, 12), "hole");
  }
  SECTION("trailing bytes") { require_io_error(make_file(good, 12), "trailing bytes"); }
  SECTION("unsupported dtype") {
    require_io_error(make_file({{"a", entry("F8_E4M3", {8}, 0, 8)}}, 8), "unsupported dtype 'F8_E4M3'");
  }
  SECTION("shape x dtype disagrees with the byte span") {
    require_io_error(make_file({{"a", entry("F32", {3}, 0, 8)}}, 8), "needs 12 bytes");
  }
  SECTION("begin after end") {
    require_io_error(make_file({{"a", entry("F32", {0}, 8, 0)}}, 8), "begin > end");
  }
  SECTION("negative shape") {
    json h = {{"a", {{"dtype", "F32"}, {"shape", {-1}}, {"data_offsets", {0, 4}}}}};
    require_io_error(make_file(h, 4), "non-negative");
  }
  SECTION("missing dtype") {
    json h = {{"a", {{"shape", {1}}, {"data_offsets", {0, 4}}}}};
    require_io_error(make_file(h, 4), "'dtype'");
  }
  SECTION("non-string metadata") {
    json h = good;
    h["__metadata__"] = {{"config", 3}};
    require_io_error(make_file(h, 8), "__metadata__");
  }
  SECTION("shape overflow") {
    json h = {{"a", entry("F32", {1LL << 40, 1LL << 40}, 0, 8)}};
    require_io_error(make_file(h, 8), "overflows");
  }
}

TEST_CASE("save_safetensors leaves no partial file on failure", "[io][errors]") {
  db::TensorToWrite t;
  t.name = "a";
  t.shape = {4};
  t.f32 = {1, 2};  // too few values
  const std::string path = tmp_path("never_written.safetensors");
  std::remove(path.c_str());
  REQUIRE_THROWS_AS(db::save_safetensors(path, {t}), db::IoError);
  REQUIRE_FALSE(std::ifstream(path).good());
  REQUIRE_THROWS_AS(db::save_safetensors(tmp_path("no/such/dir/x.safetensors"), {}), db::IoError);
}

TEST_CASE("model files: directory and single file, with clear errors", "[io][errors]") {
  REQUIRE_THROWS_WITH(db::load_model_file(tmp_path("does_not_exist")), Catch::Contains("no such file"));
  // A single file without a config in its metadata.
  REQUIRE_THROWS_WITH(db::load_model_file(fixture("origin_e_inputs.safetensors")),
                      Catch::Contains("no 'config' entry"));
  const std::string empty_dir = tmp_path("empty_model_dir");
  std::filesystem::remove_all(empty_dir);
  std::filesystem::create_directories(empty_dir);
  REQUIRE_THROWS_WITH(db::load_model_file(empty_dir), Catch::Contains("config.json"));
  std::ofstream(empty_dir + "/config.json") << R"({"_class_name": "GradLogPEstimator2d", "dim": 8})";
  REQUIRE_THROWS_WITH(db::load_model_file(empty_dir), Catch::Contains("no *.safetensors"));
}
