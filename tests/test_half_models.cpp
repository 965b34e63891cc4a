// The half-precision models (bf16, f16) against PyTorch's own half precision.
//
// The accuracy contract for the half types (DESIGN.md): the peer is PyTorch run the way users
// run these models in half precision, the float32 model under torch.autocast(dtype), and its
// error is measured against the float32 reference every fixture stores
// (tools/reference/make_half_fixtures.py -> tests/fixtures/half_peer.safetensors). diffblocks in
// the same type must stay within 2x the peer's error, in max |error| and in relative L2 error,
// on every case. Where autocast leaves a computation in float32 (no convolution or matrix
// product in it) the peer error used is the "storage peer"'s instead: the float32 module on
// inputs and weights rounded to the half type, its output rounded once (the least any
// half-storage implementation must lose); the file holds both and the larger is the peer.
#include <cmath>
#include <string>

#include "helpers.hpp"

namespace {

namespace db = diffblocks;
using dbt::read_tensor;

template <class H>
const char* type_name() {
  return std::is_same<H, db::bf16>::value ? "bf16" : "f16";
}

/// The peer's error for `key` (case/output) in type H: {max abs, relative L2}.
template <class H>
std::pair<double, double> peer_error(const std::string& key) {
  static const db::SafeTensors file = db::SafeTensors::load(dbt::fixture("half_peer.safetensors"));
  const std::string name = key + "/" + type_name<H>();
  INFO("peer error " << name);
  REQUIRE(file.contains(name));
  const auto v = file.read_float(name);
  REQUIRE(v.size() == 4);
  // A peer error of 0 would make the contract unmeetable for half storage and hides a broken
  // fixture: the storage peer always rounds, so its error is positive.
  REQUIRE(v[2] > 0.0f);
  REQUIRE(v[3] > 0.0f);
  return {std::max(v[0], v[2]), std::max(v[1], v[3])};
}

/// got (this library in type H, widened) within 2x the peer's error against want (float32 reference).
template <class H, class A, class B>
void require_within_peer(const A& got, const B& want, const std::string& key) {
  REQUIRE(db::tensor_shape(got) == db::tensor_shape(want));
  double max_abs = 0, se = 0, sr = 0;
  auto g = got.begin();
  for (auto w = want.begin(); w != want.end(); ++w, ++g) {
    const double d = double(*g) - double(*w);
    max_abs = std::isnan(d) ? INFINITY : std::max(max_abs, std::fabs(d));
    se += d * d;
    sr += double(*w) * double(*w);
  }
  const double rel = std::sqrt(se / sr);
  const auto [peer_max, peer_rel] = peer_error<H>(key);
  INFO(key << " " << type_name<H>() << ": max|err| " << max_abs << " (peer " << peer_max << "), rel L2 " << rel
           << " (peer " << peer_rel << ")");
  CHECK(max_abs <= 2.0 * peer_max);
  CHECK(rel <= 2.0 * peer_rel);
  // ... and it is a half-precision result, not the float32 one (which would pass trivially).
  CHECK(rel > 1e-5);
}

template <class H, std::size_t N>
db::Tensor<H, N> half(const db::Tensor<float, N>& x) {
  return db::ops::cast<H>(db::Cpu{}, x);
}
template <class H, std::size_t N>
db::Tensor<float, N> wide(const db::Tensor<H, N>& x) {
  return db::ops::cast<float>(db::Cpu{}, x);
}

// ---- Origin ---------------------------------------------------------------------------------------

template <class H>
void check_origin(const std::string& model_path, const std::string& inputs, const std::string& key) {
  auto model = db::load_origin<H>(dbt::fixture(model_path));
  const auto in = db::SafeTensors::load(dbt::fixture(inputs));
  db::OriginConditioning<float> f;
  if (in.contains("spk")) f.spk = read_tensor<2>(in, "spk");
  if (in.contains("spk_id")) f.spk_id = in.read_int("spk_id");
  if (in.contains("emo")) f.emo = read_tensor<2>(in, "emo");
  if (in.contains("emo_id")) f.emo_id = in.read_int("emo_id");
  if (in.contains("psd")) f.psd = read_tensor<3>(in, "psd");
  const auto cond = db::cast_inputs<H>(db::Cpu{}, f);
  const auto mask = read_tensor<3>(in, "mask");
  // t stays float32: the time embedding is computed in float32 (pe_scale 1000 would magnify a
  // rounded t to radians of error).
  const auto out = wide(model->forward(half<H>(read_tensor<3>(in, "x")), half<H>(mask), half<H>(read_tensor<3>(in, "mu")),
                                       read_tensor<1>(in, "t"), cond));
  const std::string dir = model_path.find(".safetensors") == std::string::npos ? model_path + "/" : "origin_e_";
  require_within_peer<H>(out, read_tensor<3>(db::SafeTensors::load(dbt::fixture(dir + "expected.safetensors")), "out"),
                         key);
  for (std::size_t b = 0; b < out.shape(0); ++b)  // padded frames stay exactly zero in half too
    for (std::size_t f = 0; f < out.shape(1); ++f)
      for (std::size_t w = 0; w < out.shape(2); ++w)
        if (mask(b, 0, w) == 0.0f) REQUIRE(out(b, f, w) == 0.0f);
}

template <class H>
void check_origins() {
  check_origin<H>("origin_a", "origin_a/inputs.safetensors", "origin_a/out");
  check_origin<H>("origin_b", "origin_b/inputs.safetensors", "origin_b/out");
  check_origin<H>("origin_b", "origin_b/inputs_vec.safetensors", "origin_b/out");
  check_origin<H>("origin_c", "origin_c/inputs.safetensors", "origin_c/out");
  check_origin<H>("origin_d", "origin_d/inputs.safetensors", "origin_d/out");
  check_origin<H>("origin_e.safetensors", "origin_e_inputs.safetensors", "origin_e/out");
}

// ---- Grad-TTS sampler -----------------------------------------------------------------------------

template <class H>
void check_sampler() {
  auto model = db::load_origin<H>(dbt::fixture("sample_ode"));
  const auto in = db::SafeTensors::load(dbt::fixture("sample_ode/inputs.safetensors"));
  const auto exp = db::SafeTensors::load(dbt::fixture("sample_ode/expected.safetensors"));
  const auto z = read_tensor<3>(in, "z"), mask = read_tensor<3>(in, "mask"), mu = read_tensor<3>(in, "mu");
  for (const auto& [steps, key] : {std::pair<int, const char*>{1, "out_steps_1"}, {3, "out_steps_3"}, {5, "out"}}) {
    db::GradTTSSamplerOptions opt;
    opt.steps = steps;
    // The state is float32 (z, mask, mu and the result); only the estimator runs in H.
    const db::Tensor<float, 3> x0 = db::reverse_diffusion(*model, z, mask, mu, opt);
    require_within_peer<H>(x0, read_tensor<3>(exp, key), std::string("sample_ode/") + key);
  }
}

// ---- Diffuser -------------------------------------------------------------------------------------

template <class H>
void check_diffusers() {
  for (const char* name : {"unet_ada_image", "unet_default", "unet_odd_frames", "unet_image_hint", "unet_text",
                           "unet_text_time", "unet_heads", "unet_only_cross"}) {
    const std::string dir = dbt::fixture(std::string("diffusers/") + name);
    auto model = db::load_diffuser<H>(dir);
    const auto inputs = dbt::read_diffuser_inputs(db::SafeTensors::load(dir + "/inputs.safetensors"));
    const auto want = read_tensor<4>(db::SafeTensors::load(dir + "/expected.safetensors"), "out");
    require_within_peer<H>(wide(model->forward(db::cast_inputs<H>(db::Cpu{}, inputs))), want, std::string("diffusers/") + name + "/out");
  }
}

}  // namespace

TEST_CASE("half: Origin U-Net in bf16 and f16 within 2x PyTorch autocast's error", "[half][origin]") {
  SECTION("bf16") { check_origins<db::bf16>(); }
  SECTION("f16") { check_origins<db::f16>(); }
}

TEST_CASE("half: Grad-TTS ODE sampler with a bf16 and f16 estimator within 2x autocast's error", "[half][sampler]") {
  SECTION("bf16") { check_sampler<db::bf16>(); }
  SECTION("f16") { check_sampler<db::f16>(); }
}

TEST_CASE("half: Diffuser U-Net in bf16 and f16 within 2x PyTorch autocast's error", "[half][diffuser]") {
  SECTION("bf16") { check_diffusers<db::bf16>(); }
  SECTION("f16") { check_diffusers<db::f16>(); }
}

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
