// safetensors reading/writing: round trips, dtype conversion, and every malformed file the
// format allows, each rejected with an IoError that names the fault.
#include <csignal>
#include <cstring>
#include <fstream>
#include <sys/wait.h>

#include "file_helpers.hpp"
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

TEST_CASE("read_tensor / write_tensors: a tensor by name, its rank and dtype checked", "[io]") {
  auto x = db::Tensor<float, 3>::from_shape({2, 3, 4});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = 0.25f * float(i) - 1.0f;
  auto ids = db::Tensor<std::int64_t, 1>::from_shape({3});
  ids(0) = 4, ids(1) = -1, ids(2) = 9;
  auto h = db::Tensor<db::f16, 2>::from_shape({2, 2});
  for (std::size_t i = 0; i < 4; ++i) h.data()[i] = db::f16::from_bits(static_cast<std::uint16_t>(0x3c00 + 7 * i));
  const std::string path = tmp_path("tensor_io.safetensors");
  db::write_tensors(path, {db::tensor_entry("x", x), db::tensor_entry("ids", ids), db::tensor_entry("h", h)});
  const auto st = db::SafeTensors::load(path);

  const auto x2 = db::read_tensor<float, 3>(st, "x");
  REQUIRE(x2.shape() == x.shape());
  REQUIRE(std::equal(x.begin(), x.end(), x2.begin()));
  const auto ids2 = db::read_tensor<std::int64_t, 1>(st, "ids");
  REQUIRE(std::vector<std::int64_t>(ids2.begin(), ids2.end()) == std::vector<std::int64_t>{4, -1, 9});
  // A half tensor is written as F32 (exact) and read back as f16 with its own bits; as bf16 it
  // is rounded to nearest even.
  const auto h2 = db::read_tensor<db::f16, 2>(st, "h");
  for (std::size_t i = 0; i < 4; ++i) REQUIRE(h2.data()[i].bits == h.data()[i].bits);
  const auto b2 = db::read_tensor<db::bf16, 2>(st, "h");
  for (std::size_t i = 0; i < 4; ++i) REQUIRE(b2.data()[i].bits == db::bf16(float(h.data()[i])).bits);

  REQUIRE_THROWS_AS((db::read_tensor<float, 4>(st, "x")), db::IoError);
  REQUIRE_THROWS_WITH((db::read_tensor<float, 4>(st, "x")),
                      Catch::Contains("tensor_io.safetensors") && Catch::Contains("'x'") &&
                          Catch::Contains("[2, 3, 4] (rank 3), expected rank 4"));
  REQUIRE_THROWS_WITH((db::read_tensor<float, 1>(st, "ids")), Catch::Contains("'ids'") && Catch::Contains("I64"));
  REQUIRE_THROWS_WITH((db::read_tensor<float, 3>(st, "nope")), Catch::Contains("no tensor named 'nope'"));
  REQUIRE_THROWS_WITH((db::read_tensor<std::int64_t, 3>(st, "x")), Catch::Contains("'x'") && Catch::Contains("integer ids"));

  // A finite value beyond f16's range is refused, not turned into infinity.
  auto big = db::Tensor<float, 1>::from_shape({2});
  big(0) = 1.0f, big(1) = 70000.0f;
  const std::string path2 = tmp_path("tensor_io_big.safetensors");
  db::write_tensors(path2, {db::tensor_entry("big", big)});
  const auto st2 = db::SafeTensors::load(path2);
  REQUIRE_THROWS_WITH((db::read_tensor<db::f16, 1>(st2, "big")),
                      Catch::Contains("'big'") && Catch::Contains("flat index 1") && Catch::Contains("65504"));
  REQUIRE(float(db::read_tensor<db::bf16, 1>(st2, "big")(1)) == 70144.0f);  // bf16 has the range
  // Names are distinct.
  REQUIRE_THROWS_WITH(db::write_tensors(path2, {db::tensor_entry("a", big), db::tensor_entry("a", big)}),
                      Catch::Contains("'a' given twice"));
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

// ---- hostile input (issue #14): files, JSON, names, allocation bounds ------------------------

namespace {

/// The message of the diffblocks::Error that `f` throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const db::Error& e) {
    return e.what();
  }
  return "";
}

std::string nested(std::size_t depth, const std::string& inner = "1") {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

/// A header entry for raw_safetensors().
std::string raw_entry(const std::string& name_json, const std::string& dtype, const std::string& shape,
                      std::uint64_t b, std::uint64_t e) {
  return name_json + ":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(b) +
         "," + std::to_string(e) + "]}";
}

std::vector<unsigned char> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("escape_for_message: one line of visible text, idempotent", "[io][hostile]") {
  const std::string raw = std::string("a\nb\rc\td\x1b[31me") + std::string(1, '\0') + "f\x7fg" +
                          "\xc2\x9b" "h\xe2\x80\xae" "i\xe2\x81\xa6" "j\xe2\x80\x8f" "k\xd8\x9c" "l\xff" "m";
  const std::string esc = db::escape_for_message(raw);
  REQUIRE(esc == "a\\nb\\rc\\td\\x1b[31me\\x00f\\x7fg\\u009bh\\u202ei\\u2066j\\u200fk\\u061cl\\xffm");
  REQUIRE(db::escape_for_message(esc) == esc);
  // Ordinary UTF-8 stays as it is.
  REQUIRE(db::escape_for_message("caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x8e\xb5") == "caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x8e\xb5");
  // Every diffblocks::Error is escaped, and a NUL does not cut the message.
  const db::IoError e(std::string("x\0y\nz", 5));
  REQUIRE(std::string(e.what()) == "x\\x00y\\nz");
}

TEST_CASE("tensor names with control, bidi and NUL characters are escaped in messages", "[io][hostile]") {
  const std::string h = "{" + raw_entry("\"x\\n\\u001b[31mFAKE\\u001b[0m\\u202e\\u0000tail\"", "F8", "[1]", 0, 1) + "}";
  const std::string msg = error_of([&] { db::SafeTensors::from_bytes(bytes_of(raw_safetensors(h, "A")), "evil.st"); });
  INFO(msg);
  REQUIRE(msg.find('\n') == std::string::npos);
  REQUIRE(msg.find('\x1b') == std::string::npos);
  REQUIRE(msg.find("x\\n\\x1b[31mFAKE\\x1b[0m\\u202e\\x00tail") != std::string::npos);
  REQUIRE(msg.find("unsupported dtype 'F8'") != std::string::npos);
}

TEST_CASE("json_brief prints deep and long values bounded, without recursion", "[io][hostile]") {
  // 200k levels: nlohmann's parser is iterative, its dump() is not (this used to overflow the
  // stack when an error message printed such a value).
  const auto deep = nlohmann::json::parse(nested(200000));
  const std::string b = db::json_brief(deep);
  REQUIRE(b.size() <= 203);
  REQUIRE(b.rfind("[[[[", 0) == 0);
  REQUIRE(b.find("[...]") != std::string::npos);
  nlohmann::json long_list = nlohmann::json::array();
  for (int i = 0; i < 100000; ++i) long_list.push_back(i);
  const std::string l = db::json_brief(long_list, 50);
  REQUIRE(l.size() == 53);
  REQUIRE(l.substr(l.size() - 3) == "...");
  REQUIRE(db::json_brief(nlohmann::json::parse(R"({"a":[1,{"b":"c"}],"d":null})")) == R"({"a":[1,{"b":"c"}],"d":null})");
}

TEST_CASE("config text: nesting deeper than 64 levels and duplicate keys are refused by name", "[io][hostile]") {
  // 400k levels (under the 1 MiB cap): refused by the bracket scan before nlohmann builds
  // anything that messages could print.
  const std::string deep = R"({"_class_name": )" + nested(400000, "\"x\"") + "}";
  REQUIRE_THROWS_AS(db::parse_config_text(deep, "deep.json"), db::ConfigError);
  REQUIRE_THROWS_WITH(db::parse_config_text(deep, "deep.json"),
                      Catch::Contains("deep.json") && Catch::Contains("nested deeper than 64 levels"));
  REQUIRE_NOTHROW(db::parse_config_text(R"({"a": )" + nested(63) + "}", "ok.json"));
  // Brackets inside strings are text, not nesting.
  REQUIRE_NOTHROW(db::parse_config_text(R"({"a": ")" + std::string(1000, '[') + R"(\"]"})", "str.json"));
  REQUIRE_THROWS_WITH(db::parse_config_text(R"({"dim": 32, "dim_mults": [1], "dim": 64})", "dup.json"),
                      Catch::Contains("dup.json") && Catch::Contains("the key 'dim' twice"));
  REQUIRE_THROWS_WITH(db::parse_config_text(R"({"a": {"b": 1, "b": 2}})", "dup.json"),
                      Catch::Contains("the key 'b' twice (inside 'a')"));
  // The same key in different objects is fine.
  REQUIRE_NOTHROW(db::parse_config_text(R"({"a": {"b": 1}, "c": {"b": 2}})", "ok.json"));
  REQUIRE_THROWS_WITH(db::parse_config_text(std::string(db::kMaxTextFileBytes + 1, ' '), "big.json"),
                      Catch::Contains("larger than the cap of 1048576 bytes"));
}

TEST_CASE("safetensors: duplicate tensor names, deep headers and wrapped byte counts are refused", "[io][hostile]") {
  const std::string dup = "{" + raw_entry("\"a\"", "F32", "[1]", 0, 4) + "," + raw_entry("\"a\"", "F32", "[1]", 4, 8) + "}";
  REQUIRE_THROWS_WITH(db::SafeTensors::from_bytes(bytes_of(raw_safetensors(dup, "12345678")), "dup.st"),
                      Catch::Contains("dup.st") && Catch::Contains("the key 'a' twice"));
  const std::string deep = "{\"__metadata__\":{\"config\":" + nested(100000, "\"x\"") + "}}";
  REQUIRE_THROWS_WITH(db::SafeTensors::from_bytes(bytes_of(raw_safetensors(deep)), "deep.st"),
                      Catch::Contains("nested deeper than 64"));
  // [2^62] x F32 wraps a 64-bit byte count to 0: named as an overflow, not "needs 0 bytes".
  const std::string wrap = "{" + raw_entry("\"w\"", "F32", "[4611686018427387904]", 0, 0) + "}";
  const std::string msg = error_of([&] { db::SafeTensors::from_bytes(bytes_of(raw_safetensors(wrap)), "wrap.st"); });
  REQUIRE(msg.find("'w'") != std::string::npos);
  REQUIRE(msg.find("overflows") != std::string::npos);
  REQUIRE(msg.find("needs 0 bytes") == std::string::npos);
}

TEST_CASE("only regular files are read: FIFOs, directories, devices and procfs are refused", "[io][hostile]") {
  const std::string dir = fresh_dir("hostile_special_files");
  const std::string fifo = make_fifo(dir + "/pipe.safetensors");
  // Opening a FIFO without a writer blocks a plain reader forever; these return at once.
  REQUIRE_THROWS_WITH(db::SafeTensors::load(fifo), Catch::Contains("pipe.safetensors") && Catch::Contains("FIFO"));
  REQUIRE_THROWS_WITH(db::load_model_file(fifo), Catch::Contains("FIFO"));
  REQUIRE_THROWS_WITH(db::read_text_file(fifo, "durations file"), Catch::Contains("FIFO"));
  REQUIRE_THROWS_WITH(db::SafeTensors::load(dir), Catch::Contains("is a directory"));
  REQUIRE_THROWS_WITH(db::SafeTensors::load("/dev/zero"), Catch::Contains("/dev/zero: is a character device"));
  REQUIRE_THROWS_WITH(db::read_text_file("/dev/zero", "scheduler config"), Catch::Contains("character device"));
  REQUIRE_THROWS_WITH(db::read_text_file("/proc/self/maps", "config"), Catch::Contains("procfs"));
  REQUIRE_THROWS_WITH(db::SafeTensors::load("/proc/self/maps"), Catch::Contains("procfs"));

  // In a model directory: config.json as a FIFO, as a link to /dev/zero, as a directory.
  const std::string model = dir + "/model";
  std::filesystem::create_directories(model);
  std::filesystem::copy_file(fixture("origin_d/model.safetensors"), model + "/model.safetensors");
  make_fifo(model + "/config.json");
  REQUIRE_THROWS_WITH(db::load_model_file(model), Catch::Contains("config.json") && Catch::Contains("FIFO"));
  std::filesystem::remove(model + "/config.json");
  std::filesystem::create_symlink("/dev/zero", model + "/config.json");
  REQUIRE_THROWS_WITH(db::load_model_file(model), Catch::Contains("config.json") && Catch::Contains("character device"));
  std::filesystem::remove(model + "/config.json");
  std::filesystem::create_directories(model + "/config.json");
  REQUIRE_THROWS_WITH(db::load_model_file(model), Catch::Contains("config.json: is a directory"));
  // A text file over the cap: refused by size, without reading it (sparse, 2 MiB).
  REQUIRE_THROWS_WITH(db::read_text_file(make_sparse(dir + "/big.txt", 2 << 20), "durations file"),
                      Catch::Contains("big.txt") && Catch::Contains("larger than the cap of 1048576 bytes"));
}

TEST_CASE("safetensors: the header length is checked before anything is read or allocated", "[io][hostile]") {
  const std::string dir = fresh_dir("hostile_sparse");
  // 6 GiB sparse file claiming a 2^63-byte header, and one claiming 200 MiB: both refused
  // at once with little memory (the whole file used to be read first).
  std::string head(8, '\0');
  const std::uint64_t huge = std::uint64_t{1} << 63;
  std::memcpy(head.data(), &huge, 8);
  const std::string a = make_sparse(dir + "/claims_2e63.safetensors", std::uint64_t{6} << 30, head);
  const std::uint64_t big = std::uint64_t{200} << 20;
  std::memcpy(head.data(), &big, 8);
  const std::string b = make_sparse(dir + "/claims_200MiB.safetensors", std::uint64_t{300} << 20, head);
  const long before = reset_peak_rss_kib();
  REQUIRE_THROWS_WITH(db::SafeTensors::load(a), Catch::Contains("header length 9223372036854775808 is beyond the file size"));
  REQUIRE_THROWS_WITH(db::SafeTensors::load(b), Catch::Contains("header length 209715200 exceeds 100 MiB"));
  INFO("peak RSS grew by " << peak_rss_kib() - before << " KiB");
  REQUIRE(peak_rss_kib() - before < 32 * 1024);
}

namespace {

/// A model directory: `config` as config.json, weights written from `tensors` (name -> shape).
std::string model_dir(const std::string& name, const std::string& config,
                      const std::vector<std::pair<std::string, db::Shape>>& tensors) {
  const std::string dir = fresh_dir(name);
  write_text(dir + "/config.json", config);
  std::vector<db::TensorToWrite> ts;
  for (const auto& [n, shape] : tensors) {
    db::TensorToWrite t;
    t.name = n;
    t.shape = shape;
    t.f32.assign(db::checked_numel(shape, n), 0.0f);
    ts.push_back(t);
  }
  db::save_safetensors(dir + "/model.safetensors", ts);
  return dir;
}

/// Copies a fixture model directory with its config edited.
std::string edited_fixture(const std::string& src, const std::string& name,
                           const std::function<void(nlohmann::json&)>& edit) {
  const std::string dir = fresh_dir(name);
  for (const auto& e : std::filesystem::directory_iterator(fixture(src)))
    if (e.path().extension() == ".safetensors" && e.path().filename().string().find("model") != std::string::npos)
      std::filesystem::copy_file(e.path(), dir + "/" + e.path().filename().string());
  auto cfg = nlohmann::json::parse(read_file(fixture(src + "/config.json")));
  edit(cfg);
  write_text(dir + "/config.json", cfg.dump());
  return dir;
}

/// Runs `load` expecting a LoadError holding every needle, with peak RSS growing < 64 MiB.
template <class F>
void require_cheap_load_error(F&& load, const std::vector<std::string>& needles) {
  const long before = reset_peak_rss_kib();
  const std::string msg = error_of(load);
  INFO(msg << "\npeak RSS grew by " << peak_rss_kib() - before << " KiB");
  REQUIRE_FALSE(msg.empty());
  for (const auto& n : needles) REQUIRE(msg.find(n) != std::string::npos);
  REQUIRE(peak_rss_kib() - before < 64 * 1024);
}

}  // namespace

TEST_CASE("model loading checks the checkpoint against the config before allocating", "[io][hostile][memory]") {
  SECTION("dim 4096 next to a tiny weights file") {
    const std::string dir = model_dir("hostile_dim4096", R"({"_class_name":"GradLogPEstimator2d","dim":4096,"dim_mults":[1],"n_feats":64})",
                                      {{"a", {1}}});
    require_cheap_load_error([&] { db::load_origin(dir); }, {"missing key 'mlp.0.weight'", "[16384, 4096]", "config.json"});
  }
  SECTION("n_spks 2^24 with a [1, 1] speaker table") {
    const std::string dir = model_dir("hostile_nspks", R"({"_class_name":"GradLogPEstimator2d","dim":32,"dim_mults":[1,2],"n_feats":16,"n_spks":16777216})",
                                      {{"spk_emb.weight", {1, 1}}});
    require_cheap_load_error([&] { db::load_origin(dir); },
                             {"'spk_emb.weight' has shape [1, 1]", "n_spks, spk_emb_dim", "[16777216, 64]"});
  }
  SECTION("num_class_embeds 2^24 next to a 5-class table") {
    const std::string dir = edited_fixture("diffusers/unet_ada_image", "hostile_classes",
                                           [](nlohmann::json& c) { c["num_class_embeds"] = 16777216; });
    require_cheap_load_error([&] { db::load_diffuser(dir); }, {"'class_embedding.weight' has shape [5, ", "[16777216, "});
  }
  SECTION("16 levels x 1024 layers per block") {
    const std::string dir = edited_fixture("diffusers/unet_default", "hostile_layers", [](nlohmann::json& c) {
      const std::size_t n = c["block_out_channels"].size();
      c["layers_per_block"] = 1024;
      c["transformer_layers_per_block"] = std::vector<int>(n, 1024);
    });
    require_cheap_load_error([&] { db::load_diffuser(dir); }, {"the config describes a model of more than", "tensors"});
  }
  SECTION("a wrong shape is named with both shapes before allocation") {
    const std::string dir = edited_fixture("origin_d", "hostile_origin_dim", [](nlohmann::json& c) { c["dim"] = 4096; });
    require_cheap_load_error([&] { db::load_origin(dir); }, {"'mlp.0.weight' has shape [128, 32]", "implies [16384, 4096]"});
  }
  SECTION("an unexpected key is found before allocation too") {
    const std::string dir = rewrite_model("origin_d", "hostile_extra_key", [](std::vector<db::TensorToWrite>& ts) {
      db::TensorToWrite t;
      t.name = "zz.extra";
      t.shape = {2};
      t.f32 = {1, 2};
      ts.push_back(t);
    });
    REQUIRE_THROWS_WITH(db::load_origin(dir), Catch::Contains("unexpected key 'zz.extra'"));
  }
}

TEST_CASE("loading a model costs its parameters, not a second copy of the file", "[io][hostile][memory]") {
  // ~30M parameters (~120 MB as F32) built on the Meta device, written as a sparse file of
  // zeros (no disk used). Peak RSS while loading: parameter bytes + 10 % + 16 MiB at most
  // (the whole file used to be read into memory first: 2x).
  db::OriginConfig cfg;
  cfg.dim = 128;
  cfg.dim_mults = {1, 2, 4};
  cfg.n_feats = 80;
  db::GradLogPEstimator2d<float, db::Meta> meta(cfg);
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"config", nlohmann::json(cfg.to_json()).dump()}};
  std::uint64_t offset = 0;
  meta.visit([&](const std::string& name, auto& t) {
    const std::uint64_t bytes = t.size() * 4;
    header[name] = {{"dtype", "F32"}, {"shape", db::tensor_shape(t)}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  });
  const std::string h = header.dump();
  const std::string path = fresh_dir("hostile_rss") + "/big.safetensors";
  make_sparse(path, 8 + h.size() + offset, raw_safetensors(h));
  REQUIRE(offset > (std::uint64_t{100} << 20));
  const long before = reset_peak_rss_kib();
  {
    const auto model = db::load_origin(path);
    REQUIRE(db::parameter_count(*model) * 4 == offset);
  }
  const long grew_kib = peak_rss_kib() - before;
  INFO("parameters " << offset / 1024 << " KiB, peak RSS grew by " << grew_kib << " KiB");
  if (!kSanitized) REQUIRE(double(grew_kib) * 1024 <= 1.10 * double(offset) + double(16 << 20));
}

TEST_CASE("out-of-memory and impossible sizes become errors naming the bytes", "[io][hostile][memory]") {
  db::memory::CachingAllocator<float> alloc;
  REQUIRE_THROWS_AS(alloc.allocate(std::size_t{1} << 61), db::OutOfMemoryError);
  REQUIRE_THROWS_WITH(alloc.allocate(std::size_t{1} << 61), Catch::Contains("9223372036854775808 bytes"));
  REQUIRE_THROWS_WITH(alloc.allocate(std::size_t{1} << 63), Catch::Contains("more than the address space"));
  REQUIRE_THROWS_WITH(db::naming_allocation("tensor 'x' of f.st", 12345, []() -> int { throw std::bad_alloc(); }),
                      Catch::Contains("out of memory: cannot allocate 12345 bytes for tensor 'x' of f.st"));
}

TEST_CASE("atomic writes: symlinks followed, modes kept, non-regular targets refused, no temporary left",
          "[io][hostile]") {
  const std::string dir = fresh_dir("hostile_atomic");
  const std::string target = dir + "/target.txt", link = dir + "/link.txt";
  write_text(target, "old");
  ::chmod(target.c_str(), 0640);
  std::filesystem::create_symlink("target.txt", link);
  db::write_file_atomically(link, std::string("new"));
  REQUIRE(std::filesystem::is_symlink(link));
  REQUIRE(read_file(target) == "new");
  struct stat st {};
  REQUIRE(::stat(target.c_str(), &st) == 0);
  REQUIRE((st.st_mode & 07777) == 0640);
  // A new file: 0666 less the umask, like any create.
  const mode_t mask = ::umask(022);
  ::umask(mask);
  db::write_file_atomically(dir + "/fresh.txt", std::string("x"));
  REQUIRE(::stat((dir + "/fresh.txt").c_str(), &st) == 0);
  REQUIRE((st.st_mode & 07777) == (0666 & ~mask));
  // A 255-byte file name (NAME_MAX): the temporary name must not be longer.
  const std::string long_name = dir + "/" + std::string(243, 'o') + ".safetensors";
  REQUIRE_NOTHROW(db::write_file_atomically(long_name, std::string("x")));
  REQUIRE(read_file(long_name) == "x");
  // Directories, devices and FIFOs are never replaced.
  REQUIRE_THROWS_WITH(db::write_file_atomically(dir, std::string("x")), Catch::Contains("is a directory"));
  const std::string dev = make_char_device(dir + "/null");
  if (!dev.empty()) {
    REQUIRE_THROWS_WITH(db::write_file_atomically(dev, std::string("x")), Catch::Contains("character device"));
    struct stat ds {};
    REQUIRE((::lstat(dev.c_str(), &ds) == 0 && S_ISCHR(ds.st_mode)));
  }
  REQUIRE_THROWS_WITH(db::write_file_atomically(make_fifo(dir + "/fifo"), std::string("x")), Catch::Contains("FIFO"));
  REQUIRE_THROWS_WITH(db::write_file_atomically("", std::string("x")), Catch::Contains("empty output path"));
  // A failure while writing keeps the old contents and removes the temporary file.
  REQUIRE_THROWS_AS(db::write_file_atomically(target, [](db::FileSink& out) {
                      out.write("partial", 7);
                      throw db::InputError("interrupted");
                    }),
                    db::InputError);
  REQUIRE(read_file(target) == "new");
  REQUIRE(leftover_temps(dir).empty());
  REQUIRE_THROWS_WITH(db::write_file_atomically(dir + "/no/such/dir/x", std::string("x")),
                      Catch::Contains("cannot create a temporary file in"));
}

TEST_CASE("atomic writes: SIGTERM while writing removes the temporary file", "[io][hostile]") {
  const std::string dir = fresh_dir("hostile_signal");
  const std::string target = dir + "/out.txt";
  write_text(target, "keep");
  for (int sig : {SIGTERM, SIGINT}) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {  // the child dies by the signal in the middle of the write
      db::install_temp_file_cleanup();
      try {
        db::write_file_atomically(target, [&](db::FileSink& out) {
          out.write("half", 4);
          ::kill(::getpid(), sig);
          out.write("never", 5);
        });
      } catch (...) {
      }
      ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == sig);
    REQUIRE(leftover_temps(dir).empty());
    REQUIRE(read_file(target) == "keep");
  }
}
