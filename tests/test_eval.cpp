// Per-phoneme similarity (eval/similarity.hpp): hand-computed scores on a 2-feature example,
// segment boundaries, summaries, the zero-vector rule and every input error; and the CLI's
// `diffblocks similarity` end to end (JSON output, mel file rules, one-line errors).
#include <cmath>

#include "cli_helpers.hpp"

using namespace dbt;
namespace ev = diffblocks::eval;
using Mel = db::Tensor<float, 2>;
using Catch::Matchers::Contains;

namespace {

// Columns are frames: ref frames (1,0) (1,0) (0,2) (3,4); cand frames (0,1) (1,0) (1,1) (5,3).
Mel ref_mel() { return Mel{{1, 1, 0, 3}, {0, 0, 2, 4}}; }
Mel cand_mel() { return Mel{{0, 1, 1, 5}, {1, 0, 1, 3}}; }

std::vector<double> scores(const Mel& ref, const Mel& cand, const std::vector<std::int64_t>& durations,
                           ev::Metric m) {
  std::vector<std::string> ph;
  for (std::size_t i = 0; i < durations.size(); ++i) ph.push_back("p" + std::to_string(i));
  return ev::phoneme_similarity(ref, {cand}, {}, ph, durations, m).candidates.at(0).scores;
}

void require_scores(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("phoneme " << i << ": got " << got[i] << ", want " << want[i]);
    REQUIRE(std::fabs(got[i] - want[i]) < 1e-12);
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const db::InputError& e) {
    return e.what();
  }
  FAIL("no InputError thrown");
  return "";
}

}  // namespace

TEST_CASE("similarity: a candidate equal to the reference is perfect under every metric", "[eval]") {
  const Mel r = ref_mel();
  // Exactly 1, not 1 - 1 ulp: a figure (and a JSON reader) should see a perfect match as 1.
  REQUIRE(scores(r, r, {2, 2}, ev::Metric::Cosine) == std::vector<double>{1, 1});
  REQUIRE(scores(r, r, {1, 3}, ev::Metric::FrameCosine) == std::vector<double>{1, 1});
  require_scores(scores(r, r, {1, 3}, ev::Metric::L1), {0, 0});
  require_scores(scores(r, r, {1, 3}, ev::Metric::MSE), {0, 0});
}

TEST_CASE("similarity: scaling changes L1/MSE but not cosine", "[eval]") {
  const Mel r = ref_mel();
  const Mel twice = 2.0f * r, negated = -1.0f * r;
  require_scores(scores(r, twice, {2, 2}, ev::Metric::Cosine), {1, 1});
  require_scores(scores(r, twice, {2, 2}, ev::Metric::FrameCosine), {1, 1});
  require_scores(scores(r, negated, {2, 2}, ev::Metric::Cosine), {-1, -1});
  // |2r - r| = |r|: segment a holds 1,1,0,0 and segment b 0,3,2,4.
  require_scores(scores(r, twice, {2, 2}, ev::Metric::L1), {2.0 / 4, 9.0 / 4});
  require_scores(scores(r, twice, {2, 2}, ev::Metric::MSE), {2.0 / 4, 29.0 / 4});
}

TEST_CASE("similarity: hand-computed 2-feature example", "[eval]") {
  const Mel r = ref_mel(), c = cand_mel();
  SECTION("cosine of the segments' mean spectra") {
    // a: mean ref (1, 0), mean cand (0.5, 0.5). b: mean ref (1.5, 3), mean cand (3, 2).
    require_scores(scores(r, c, {2, 2}, ev::Metric::Cosine), {1 / std::sqrt(2.0), 10.5 / std::sqrt(11.25 * 13.0)});
  }
  SECTION("mean per-frame cosine") {
    // a: cos((1,0),(0,1)) = 0, cos((1,0),(1,0)) = 1. b: cos((0,2),(1,1)) = 1/√2, cos((3,4),(5,3)) = 27/(5√34).
    require_scores(scores(r, c, {2, 2}, ev::Metric::FrameCosine),
                   {0.5, (1 / std::sqrt(2.0) + 27 / (5 * std::sqrt(34.0))) / 2});
  }
  SECTION("L1 and MSE") {
    // a: differences 1,0 / 1,0. b: differences 1,2 / 1,1.
    require_scores(scores(r, c, {2, 2}, ev::Metric::L1), {2.0 / 4, 5.0 / 4});
    require_scores(scores(r, c, {2, 2}, ev::Metric::MSE), {2.0 / 4, 7.0 / 4});
  }
}

TEST_CASE("similarity: segment boundaries follow the durations", "[eval]") {
  const Mel r = ref_mel(), c = cand_mel();
  // Moving one boundary by one frame changes both segments' values. [1, 3]: b's means are
  // ref (4/3, 2), cand (7/3, 4/3).
  require_scores(scores(r, c, {1, 3}, ev::Metric::Cosine),
                 {0.0, (4.0 / 3 * 7.0 / 3 + 2.0 * 4.0 / 3) / std::sqrt((16.0 / 9 + 4) * (49.0 / 9 + 16.0 / 9))});
  require_scores(scores(r, c, {1, 3}, ev::Metric::L1), {2.0 / 2, 5.0 / 6});
  require_scores(scores(r, c, {3, 1}, ev::Metric::L1), {4.0 / 6, 3.0 / 2});
  require_scores(scores(r, c, {1, 1, 1, 1}, ev::Metric::FrameCosine),
                 {0, 1, 1 / std::sqrt(2.0), 27 / (5 * std::sqrt(34.0))});
}

TEST_CASE("similarity: summaries, worst phoneme, labels and several candidates", "[eval]") {
  const Mel r = ref_mel(), c = cand_mel();
  const auto rep = ev::phoneme_similarity(r, {c, r}, {"Origin", "Diffuser"}, {"HH", "AH"}, {1, 3}, ev::Metric::L1);
  REQUIRE(rep.n_feats == 2);
  REQUIRE(rep.frames == 4);
  REQUIRE(rep.phonemes.size() == 2);
  REQUIRE(rep.phonemes[1].symbol == "AH");
  REQUIRE(rep.phonemes[1].start == 1);
  REQUIRE(rep.phonemes[1].frames == 3);
  const auto& o = rep.candidates.at(0);
  REQUIRE(o.label == "Origin");
  REQUIRE(o.mean == Approx((1.0 + 5.0 / 6) / 2).epsilon(1e-12));
  // Frame-weighted L1 is the whole utterance's L1: 7 absolute differences of 1 or 2 over 8 values.
  REQUIRE(o.frame_weighted_mean == Approx(7.0 / 8).epsilon(1e-12));
  // L1: lower is better, so the worst phoneme is the largest value.
  REQUIRE(o.worst.index == 0);
  REQUIRE(o.worst.symbol == "HH");
  REQUIRE(o.worst.score == Approx(1.0));
  REQUIRE(rep.candidates.at(1).label == "Diffuser");
  REQUIRE(rep.candidates.at(1).mean == 0.0);

  const auto cos = ev::phoneme_similarity(r, {c}, {}, {"HH", "AH"}, {2, 2});  // cosine by default
  REQUIRE(cos.metric == ev::Metric::Cosine);
  REQUIRE(cos.candidates[0].label == "candidate 1");
  REQUIRE(cos.candidates[0].worst.index == 0);  // 1/√2 < 0.868: higher is better, worst is the min

  auto j = ev::to_json(rep, "T", "S");
  REQUIRE(j.begin().key() == "format");  // the documented order, not alphabetical
  REQUIRE(j["format"] == "diffblocks-similarity");
  REQUIRE_FALSE(j.contains("reference"));
  REQUIRE_FALSE(j["candidates"][0].contains("path"));
  REQUIRE(j["metric"] == "l1");
  REQUIRE(j["higher_is_better"] == false);
  REQUIRE(j["phonemes"][0]["symbol"] == "HH");
  REQUIRE(j["candidates"][0]["scores"][1].get<double>() == Approx(5.0 / 6).epsilon(1e-12));
  REQUIRE(j["candidates"][0]["worst"]["symbol"] == "HH");
  j = ev::to_json(rep, "T", "S", "ref.safetensors", {"a.safetensors", "b.safetensors"});
  REQUIRE(j["reference"] == "ref.safetensors");
  REQUIRE(j["candidates"][1]["path"] == "b.safetensors");
  REQUIRE_THROWS_AS(ev::to_json(rep, "T", "S", "r", {"a"}), db::InputError);
}

TEST_CASE("similarity: zero vectors have a defined cosine", "[eval]") {
  double zero[3] = {0, 0, 0}, v[3] = {1, -2, 0.5}, w[3] = {2, -4, 1};
  REQUIRE(ev::cosine_similarity(zero, zero, 3) == 1.0);
  REQUIRE(ev::cosine_similarity(zero, v, 3) == 0.0);
  REQUIRE(ev::cosine_similarity(v, zero, 3) == 0.0);
  REQUIRE(ev::cosine_similarity(v, w, 3) == 1.0);  // clamped, never 1 + 1 ulp
  double tiny[3] = {1e-40, 1e-45, 0};  // float's smallest subnormals: not zero, no underflow
  REQUIRE(ev::cosine_similarity(tiny, tiny, 3) == 1.0);
  // Silent frames/segments in a mel: both silent = 1, silence against sound = 0.
  const Mel r{{0, 0, 1}, {0, 0, 1}}, c{{0, 3, 1}, {0, 0, 1}};
  require_scores(scores(r, c, {1, 1, 1}, ev::Metric::FrameCosine), {1, 0, 1});
  require_scores(scores(r, c, {1, 1, 1}, ev::Metric::Cosine), {1, 0, 1});
}

TEST_CASE("similarity: the frame-weighted L1 equals the whole-utterance L1 on random mels", "[eval]") {
  db::Rng gen(7);
  Mel r = Mel::from_shape({5, 37}), c = Mel::from_shape({5, 37});
  for (auto& x : r) x = static_cast<float>(gen.normal());
  for (auto& x : c) x = static_cast<float>(gen.normal());
  double l1 = 0;
  for (std::size_t i = 0; i < r.size(); ++i) l1 += std::fabs(double(r.data()[i]) - double(c.data()[i]));
  const std::vector<std::int64_t> d{3, 1, 7, 9, 2, 15};
  const auto rep = ev::phoneme_similarity(r, {c}, {}, {"a", "b", "c", "d", "e", "f"}, d, ev::Metric::L1);
  REQUIRE(rep.candidates[0].frame_weighted_mean == Approx(l1 / r.size()).epsilon(1e-12));
  REQUIRE(rep.candidates[0].mean != Approx(rep.candidates[0].frame_weighted_mean).epsilon(1e-9));
}

TEST_CASE("similarity: input errors name what is wrong", "[eval][errors]") {
  const Mel r = ref_mel(), c = cand_mel();
  const std::vector<std::string> ph{"a", "b"};
  auto run = [&](const Mel& ref, const std::vector<Mel>& cands, const std::vector<std::string>& labels,
                 const std::vector<std::string>& phs, const std::vector<std::int64_t>& d) {
    return error_of([&] { ev::phoneme_similarity(ref, cands, labels, phs, d); });
  };
  REQUIRE_THAT(run(r, {c}, {}, ph, {2, 3}), Contains("durations sum to 5 frames but the mels have 4 frames"));
  REQUIRE_THAT(run(r, {c}, {}, {"a", "b", "c"}, {2, 2}), Contains("3 phonemes but 2 durations"));
  REQUIRE_THAT(run(r, {c}, {}, ph, {0, 4}), Contains("duration 0 (phoneme 'a') is 0"));
  REQUIRE_THAT(run(r, {c}, {}, ph, {5, -1}), Contains("duration 1 (phoneme 'b') is -1"));
  REQUIRE_THAT(run(r, {c}, {}, ph, {INT64_MAX, 1}), Contains("durations sum to more than 2^63 frames"));
  REQUIRE_THAT(run(r, {c}, {}, {}, {}), Contains("no phonemes"));
  REQUIRE_THAT(run(r, {c}, {}, {"a", ""}, {2, 2}), Contains("phoneme 1 has an empty symbol"));
  REQUIRE_THAT(run(r, {}, {}, ph, {2, 2}), Contains("no candidate"));
  REQUIRE_THAT(run(r, {c, c}, {"A"}, ph, {2, 2}), Contains("1 labels but 2 candidates"));
  REQUIRE_THAT(run(r, {c, Mel::from_shape({2, 3})}, {"Origin", "Diffuser"}, ph, {2, 2}),
               Contains("candidate 'Diffuser' has shape [2, 3] but the reference has [2, 4]"));
  REQUIRE_THAT(run(Mel::from_shape({80, 0}), {c}, {}, ph, {2, 2}), Contains("reference mel is empty (shape [80, 0])"));
  Mel bad = c;
  bad(1, 2) = std::nanf("");
  REQUIRE_THAT(run(r, {c, bad}, {"A", "B"}, ph, {2, 2}),
               Contains("candidate 'B' holds NaN or Inf at (feature 1, frame 2)"));
  Mel inf_ref = r;
  inf_ref(0, 3) = INFINITY;
  REQUIRE_THAT(run(inf_ref, {c}, {}, ph, {2, 2}), Contains("reference mel holds NaN or Inf at (feature 0, frame 3)"));
  REQUIRE_THAT(error_of([] { ev::parse_metric("cos"); }), Contains("unknown similarity metric 'cos'"));
  REQUIRE(ev::parse_metric("frame_cosine") == ev::Metric::FrameCosine);
  REQUIRE(ev::segment_score(r, c, 1, 3, ev::Metric::L1) == Approx(5.0 / 6));  // the public building block
  REQUIRE_THAT(error_of([&] { ev::segment_score(r, c, 2, 3, ev::Metric::L1); }), Contains("frames [2, 5)"));
  REQUIRE_THROWS_AS(ev::phoneme_similarity(r, {c}, {}, ph, {1, 1}), db::Error);  // part of the hierarchy
}

#ifdef DIFFBLOCKS_CLI
namespace {

/// Writes tensors {name: (shape, mel values)} to tmp/<file> and returns the path.
std::string write_mels(const std::string& file, const std::vector<std::pair<std::string, db::Shape>>& specs,
                       const std::vector<Mel>& mels) {
  std::vector<db::TensorToWrite> ts;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    db::TensorToWrite t;
    t.name = specs[i].first;
    t.shape = specs[i].second;
    t.f32.assign(mels[i].begin(), mels[i].end());
    ts.push_back(t);
  }
  const std::string path = tmp_path(file);
  db::save_safetensors(path, ts);
  return path;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("CLI similarity writes the per-phoneme JSON", "[cli][eval]") {
  // The reference as run/sample write it ('out', (1, n_feats, T)); candidate a holds a single
  // tensor of another name, rank 2; b holds two tensors, of which 'out' is taken.
  const std::string ref = write_mels("sim_ref.safetensors", {{"out", {1, 2, 4}}}, {ref_mel()});
  const std::string a = write_mels("sim_a.safetensors", {{"mel", {2, 4}}}, {cand_mel()});
  const std::string b = write_mels("sim_b.safetensors", {{"z", {2, 4}}, {"out", {1, 2, 4}}}, {cand_mel(), ref_mel()});
  const std::string out = tmp_path("sim.json");
  std::remove(out.c_str());
  const auto r = cli("similarity --reference " + ref + " --candidates " + a + "," + b +
                     " --durations 1,3 --phonemes 'HH AH' --labels 'Origin,Diffuser' --title 'My title'"
                     " --subtitle 'my subtitle' --metric l1 --output " + out);
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE_THAT(r.err, Contains("Origin: mean l1"));
  const auto j = read_json(out);
  REQUIRE(j["format"] == "diffblocks-similarity");
  REQUIRE(j["title"] == "My title");
  REQUIRE(j["subtitle"] == "my subtitle");
  REQUIRE(j["metric"] == "l1");
  REQUIRE(j["frames"] == 4);
  REQUIRE(j["n_feats"] == 2);
  REQUIRE(j["reference"] == ref);
  REQUIRE(j["phonemes"].size() == 2);
  REQUIRE(j["phonemes"][1] == nlohmann::json({{"symbol", "AH"}, {"start", 1}, {"frames", 3}}));
  REQUIRE(j["candidates"].size() == 2);
  REQUIRE(j["candidates"][0]["label"] == "Origin");
  REQUIRE(j["candidates"][0]["path"] == a);
  REQUIRE(j["candidates"][0]["scores"][0].get<double>() == Approx(1.0).epsilon(1e-12));
  REQUIRE(j["candidates"][0]["scores"][1].get<double>() == Approx(5.0 / 6).epsilon(1e-12));
  REQUIRE(j["candidates"][0]["frame_weighted_mean"].get<double>() == Approx(7.0 / 8).epsilon(1e-12));
  REQUIRE(j["candidates"][1]["scores"] == nlohmann::json({0.0, 0.0}));  // 'out' of b is the reference

  SECTION("durations from a file, --key, default metric and labels") {
    const std::string dfile = tmp_path("sim_durations.txt");
    std::ofstream(dfile) << "2\n  2\n";
    const auto r2 = cli("similarity --reference " + b + " --candidates " + b + " --key z --durations " + dfile +
                        " --phonemes 'HH  AH' --output " + out);
    INFO(r2.err);
    REQUIRE(r2.status == 0);
    const auto j2 = read_json(out);
    REQUIRE(j2["metric"] == "cosine");
    REQUIRE(j2["candidates"][0]["label"] == "sim_b");
    REQUIRE(j2["candidates"][0]["scores"] == nlohmann::json({1.0, 1.0}));
  }
  SECTION("help lists the subcommand") { REQUIRE_THAT(cli("--help").out, Contains("diffblocks similarity --reference")); }
}

TEST_CASE("CLI similarity errors: one line, exit 1 (2 for usage), no output file", "[cli][eval][errors]") {
  const std::string ref = write_mels("sim_err_ref.safetensors", {{"out", {1, 2, 4}}}, {ref_mel()});
  const std::string a = write_mels("sim_err_a.safetensors", {{"out", {2, 4}}}, {cand_mel()});
  const std::string shorter = write_mels("sim_err_short.safetensors", {{"out", {2, 2}}}, {Mel{{1, 2}, {3, 4}}});
  const std::string two = write_mels("sim_err_two.safetensors", {{"x", {2, 4}}, {"y", {2, 4}}}, {ref_mel(), ref_mel()});
  const std::string batch = write_mels("sim_err_batch.safetensors", {{"out", {2, 1, 4}}}, {ref_mel()});
  const std::string out = tmp_path("sim_err.json");
  const std::string base = "similarity --reference " + ref + " --output " + out + " --phonemes 'a b' ";
  require_cli_error(base + "--candidates " + a + " --durations 2,3", "durations sum to 5 frames but the mels have 4 frames", out);
  require_cli_error(base + "--candidates " + a + " --durations 4", "2 phonemes but 1 durations", out);
  require_cli_error(base + "--candidates " + a + " --durations 4,0", "is 0", out);
  require_cli_error(base + "--candidates " + a + "," + shorter + " --labels A,Short --durations 2,2",
                    "candidate 'Short' has shape [2, 2] but the reference has [2, 4]", out);
  require_cli_usage_error(base + "--candidates " + a + " --labels A,B --durations 2,2", "--labels names 2 candidates", out);
  require_cli_error(base + "--candidates " + a + " --durations 2,x2", "2,x2: cannot open durations file", out);
  require_cli_usage_error(base + "--candidates " + a + " --durations 2,,2", "--durations has an empty entry", out);
  require_cli_usage_error(base + "--candidates " + a + " --durations 2,2 --metric cos", "unknown similarity metric 'cos'", out);
  require_cli_error(base + "--candidates " + two + " --durations 2,2", "holds 2 tensors ('x', 'y')", out);
  require_cli_error(base + "--candidates " + a + " --durations 2,2 --key mel", "no tensor named 'mel'", out);
  require_cli_error(base + "--candidates " + batch + " --durations 2,2", "has shape [2, 1, 4], expected a mel", out);
  require_cli_error(base + "--candidates /nonexistent.safetensors --durations 2,2", "/nonexistent.safetensors", out);
  require_cli_usage_error(base + "--candidates " + a + " --durations 2,2 --steps 3", "--steps does not apply to similarity", out);
  require_cli_usage_error("similarity --reference " + ref + " --candidates " + a + " --durations 2,2 --phonemes ' ' --output " + out,
                    "--phonemes is empty", out);
  SECTION("a durations file with a non-integer") {
    const std::string dfile = tmp_path("sim_bad_durations.txt");
    std::ofstream(dfile) << "2 2.5\n";
    require_cli_error(base + "--candidates " + a + " --durations " + dfile, "duration '2.5' is not an integer", out);
  }
  SECTION("an existing output is not clobbered") {
    std::ofstream(out) << "keep me";
    REQUIRE(cli(base + "--candidates " + a + " --durations 9,9").status == 1);
    std::ifstream in(out);
    std::string s;
    std::getline(in, s);
    REQUIRE(s == "keep me");
    std::remove(out.c_str());
  }
}
#endif
