// diffblocks: run, sample and inspect U-Net models from the command line.
//
//   diffblocks run    --model PATH --inputs IN.safetensors --output OUT.safetensors [--threads N]
//                     [--device cpu|cuda] [--dtype f32|bf16|f16] [--hop-length H] [--sample-rate R]
//   diffblocks sample --model PATH --inputs IN.safetensors --output OUT.safetensors --steps N
//                     [--stochastic] [--scheduler ddim|ddpm|euler] [--scheduler-config FILE]
//                     [--seed S] [--threads N] [--device cpu|cuda] [--dtype f32|bf16|f16]
//                     [--progress auto|bar|lines|none] [--hop-length H] [--sample-rate R]
//   diffblocks info   --model PATH
//   diffblocks --version
//   diffblocks similarity --reference R --candidates A,B,... --durations D --phonemes "..."
//                     --output FILE.json [--labels L1,L2,...] [--title T] [--subtitle S]
//                     [--metric cosine|frame_cosine|l1|mse] [--key NAME]
//
// The model's config names the U-Net: GradLogPEstimator2d (Origin: Grad-TTS reverse diffusion)
// or UNet2DConditionModel (Diffuser: a diffusers scheduler, DDIM by default).
//
// Every error is one line on stderr (control and bidi characters escaped): exit status 2 for a
// usage error (unknown, repeated or conflicting option, missing or bad value), 1 for anything
// else. Before any work, --output is checked: it must not be empty, an existing --output must
// be a regular file, and it must not be any file the command reads (model, inputs, reference,
// candidates, durations, scheduler config: same device and inode, or the same canonical path).
// The output is written atomically (io/atomic_file.hpp), so a failed or interrupted run never
// leaves a half-written file or a temporary file behind.
//
// Models run through the library's run-time entry (diffblocks/runtime.hpp): the program reads
// files, checks options and prints; which device runs the U-Net is a name it hands over. With
// --device cuda the runtime opens the CUDA module (libdiffblocks_cuda.so) at that moment, so the
// CLI links neither cudart nor cuBLAS and starts as small as a CPU-only build.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "diffblocks/diffblocks.hpp"
#include "diffblocks/runtime.hpp"
#include "progress.hpp"
#include "similarity_args.hpp"

namespace db = diffblocks;
namespace rt = diffblocks::runtime;

namespace {

const char* kUsage =
    "usage:\n"
    "  diffblocks run    --model PATH --inputs IN.safetensors --output OUT.safetensors [--threads N]\n"
    "                    [--device cpu|cuda] [--dtype f32|bf16|f16] [--hop-length H] [--sample-rate R]\n"
    "  diffblocks sample --model PATH --inputs IN.safetensors --output OUT.safetensors --steps N\n"
    "                    [--stochastic] [--scheduler ddim|ddpm|euler] [--scheduler-config FILE]\n"
    "                    [--seed S] [--threads N] [--device cpu|cuda] [--dtype f32|bf16|f16]\n"
    "                    [--progress auto|bar|lines|none] [--hop-length H] [--sample-rate R]\n"
    "  diffblocks info   --model PATH\n"
    "  diffblocks --version\n"
    "  diffblocks similarity --reference R.safetensors --candidates A.safetensors,B.safetensors,...\n"
    "                    --durations D --phonemes \"SYM SYM ...\" --output FILE.json [--labels L1,L2,...]\n"
    "                    [--title T] [--subtitle S] [--metric cosine|frame_cosine|l1|mse] [--key NAME]\n"
    "\n"
    "Origin (GradLogPEstimator2d) inputs: run: x, mask, mu, t; sample: z, mask, mu;\n"
    "  optional spk | spk_id, emo | emo_id, psd. --stochastic uses the seeded SDE sampler.\n"
    "Diffuser (UNet2DConditionModel) inputs: sample, timestep (run only), encoder_hidden_states,\n"
    "  optional encoder_attention_mask, class_labels, image_embeds, hint, text_embeds, time_ids.\n"
    "  sample: the first out_channels channels of 'sample' are the starting noise, further\n"
    "  channels (e.g. a speaker plane) are fixed conditioning; scheduler ddim by default.\n"
    "--device cuda: the U-Net (sample: every step) on the GPU; inputs are uploaded once and the\n"
    "  result downloaded once. The stochastic samplers draw other noise on the GPU than on the CPU.\n"
    "similarity: per-phoneme similarity of candidate mels to a reference mel, written as JSON\n"
    "  (plot it with tools/plot_similarity.py). Mels: tensor 'out', the only tensor, or --key;\n"
    "  (n_feats, T) or (1, n_feats, T). --durations: frames per phoneme, inline '5,7,3' or a\n"
    "  text file of integers, summing to T; --phonemes: space-separated symbols, one per\n"
    "  duration; --labels default to the candidate file names; metric cosine (of the segments'\n"
    "  mean spectra) by default.\n"
    "--dtype: the model's type (default f32): bf16 / f16 store weights and activations in half\n"
    "  precision (float32 accumulation; times and the sampler's state stay float32). Weights stored\n"
    "  in another type are rounded at load. The CPU runs all three; cuda f32 only, for now.\n"
    "--threads N: 1 to 4 x the hardware threads, at most 256.\n"
    "Timings: run and sample end with the time to load, read inputs, compute and write, and the\n"
    "  real-time factor (compute time / audio seconds; audio = batch x frames (the output's last\n"
    "  axis) x --hop-length / --sample-rate, default 256 at 22050 Hz as Grad-TTS).\n"
    "--progress: sample's per-step report: a bar redrawn in place (default when stderr is a\n"
    "  terminal), one line per step (default otherwise), or none.\n"
    "Exit status: 0 on success, 1 on an error, 2 on a usage error (bad, unknown, repeated or\n"
    "  conflicting option, missing value). Errors are one line on stderr.\n";

using diffblocks_cli::UsageError;

/// What the command is doing, for an out-of-memory message ("while loading the model M").
std::string g_stage = "starting";

/// Longest value of a text option (labels, phonemes, titles, inline durations).
constexpr std::size_t kMaxOptionBytes = 64 * 1024;

/// Options whose value is free text rather than a path or a number.
const std::set<std::string> kTextOptions{"phonemes", "labels", "title", "subtitle", "candidates", "durations", "key"};

/// Most threads --threads accepts: 4 x the hardware threads, at most 256 (more only thrashes).
int max_threads() {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(std::min(256u, 4 * hw));
}

struct Args {
  std::string command;
  std::map<std::string, std::string> values;
  std::set<std::string> flags;

  bool has(const std::string& k) const { return values.count(k) != 0; }
  const std::string& get(const std::string& k) const {
    auto it = values.find(k);
    if (it == values.end()) throw UsageError("missing option --" + k);
    return it->second;
  }
  long long get_int(const std::string& k, long long lo, long long hi) const {
    const std::string& s = get(k);
    long long v = 0;
    if (!diffblocks_cli::parse_integer(s, v) || v < lo || v > hi)
      throw UsageError("option --" + k + " must be an integer in [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "], got '" + s + "'");
    return v;
  }
};

Args parse_args(int argc, char** argv) {
  if (argc < 2) throw UsageError("missing command (run, sample, info or similarity)");
  if (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help") {
    Args help;
    help.command = "help";
    return help;
  }
  if (std::string(argv[1]) == "--version" || std::string(argv[1]) == "version") {
    if (argc > 2) throw UsageError("--version takes no arguments");
    Args v;
    v.command = "version";
    return v;
  }
  Args a;
  a.command = argv[1];
  static const std::set<std::string> with_value{
      "model",     "inputs",     "output",    "threads",  "steps",    "seed",   "scheduler", "scheduler-config",
      "reference", "candidates", "durations", "phonemes", "labels",   "title",  "subtitle",  "metric",
      "key",       "device",     "dtype",     "hop-length", "sample-rate", "progress"};
  static const std::set<std::string> flags{"stochastic"};
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + s + "'");
    s = s.substr(2);
    if (flags.count(s)) {
      if (!a.flags.insert(s).second) throw UsageError("option --" + s + " given twice");
    } else if (with_value.count(s)) {
      if (i + 1 >= argc) throw UsageError("option --" + s + " needs a value");
      if (a.values.count(s)) throw UsageError("option --" + s + " given twice");
      const std::string v = argv[++i];
      if (kTextOptions.count(s) && v.size() > kMaxOptionBytes)
        throw UsageError("option --" + s + " is " + std::to_string(v.size()) + " bytes, larger than the cap of " +
                         std::to_string(kMaxOptionBytes) + " bytes");
      a.values[s] = v;
    } else {
      throw UsageError("unknown option --" + s);
    }
  }
  return a;
}

/// Writes `out`, refusing a result that holds NaN or Inf: inputs and weights are checked when
/// they are read, so a non-finite output means float32 overflowed inside the model, and a file
/// full of garbage would only move the failure downstream.
void write_out(const std::string& path, rt::HostTensor out) {
  const auto bad = std::find_if(out.f32.begin(), out.f32.end(), [](float v) { return !std::isfinite(v); });
  if (bad != out.f32.end())
    throw db::Error("the result holds NaN or Inf at flat index " + std::to_string(bad - out.f32.begin()) + " (shape " +
                    db::shape_str(out.shape) + "): float32 overflowed inside the model; nothing was written to " + path);
  g_stage = "writing " + path;
  std::vector<db::TensorToWrite> t(1);
  t[0].name = "out";
  t[0].shape = std::move(out.shape);
  t[0].f32 = std::move(out.f32);
  db::save_safetensors(path, t);
}

/// A usage error for an option the command does not take (instead of ignoring it: `info
/// --steps 3` or `run --stochastic` would otherwise look as if they did something).
void only_options(const Args& a, const std::set<std::string>& values, const std::set<std::string>& flags = {}) {
  for (const auto& kv : a.values)
    if (!values.count(kv.first)) throw UsageError("option --" + kv.first + " does not apply to " + a.command);
  for (const auto& f : a.flags)
    if (!flags.count(f)) throw UsageError("option --" + f + " does not apply to " + a.command);
}

/// --dtype's value (f32 when absent), checked before anything is opened.
std::string dtype_option(const Args& a) {
  if (!a.has("dtype")) return "f32";
  const std::string& d = a.get("dtype");
  const auto& names = rt::dtype_names();
  if (std::find(names.begin(), names.end(), d) == names.end())
    throw UsageError("--dtype must be f32, bf16 or f16, got '" + db::escape_for_message(d) + "'");
  return d;
}

void set_threads(const Args& a) {
  if (a.has("threads")) db::set_num_threads(static_cast<int>(a.get_int("threads", 1, max_threads())));
  if (!db::thread_start_failure().empty())  // the work goes on, on fewer threads
    std::cerr << "diffblocks: warning: " << db::escape_for_message(db::thread_start_failure()) << "\n";
}

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

/// --hop-length and --sample-rate (Grad-TTS's 256 and 22050 by default): what a frame is worth
/// in audio, for the real-time factor.
diffblocks_cli::AudioClock audio_clock(const Args& a) {
  diffblocks_cli::AudioClock c;
  if (a.has("hop-length")) c.hop_length = a.get_int("hop-length", 1, 1 << 20);
  if (a.has("sample-rate")) c.sample_rate = a.get_int("sample-rate", 1, 10'000'000);
  return c;
}

/// --progress (auto by default: a bar when stderr is a terminal, lines otherwise).
diffblocks_cli::ProgressMode progress_mode(const Args& a) {
  const std::string v = a.has("progress") ? a.get("progress") : "auto";
  diffblocks_cli::ProgressMode m{};
  if (!diffblocks_cli::parse_progress_mode(v, ::isatty(STDERR_FILENO) == 1, m))
    throw UsageError("--progress must be auto, bar, lines or none, got '" + db::escape_for_message(v) + "'");
  return m;
}

/// The output's batch and frames (its first and last axes) for the real-time factor.
void set_frames(diffblocks_cli::Timings& t, const db::Shape& out) {
  if (out.empty()) return;
  t.batch = out.front();
  t.frames = out.back();
}

// ---- --output: never an input, never a directory or device ----------------------------------

/// The paths a command reads, with the option that named them.
using InputPaths = std::vector<std::pair<std::string, std::string>>;

/// The files behind --model (config.json and the weights of a directory; the file itself).
void add_model_paths(InputPaths& in, const std::string& model) {
  const db::ModelPaths p = db::resolve_model_paths(model);
  if (!p.config.empty()) in.emplace_back("--model (config.json)", p.config);
  in.emplace_back("--model", p.weights);
}

/// Refuses, before any work, an --output that is empty, that exists as anything but a regular
/// file, that lies in a directory that does not exist, or that names the same file as an input:
/// same device and inode for files that exist (hard links, symlinks, ../ paths), the same
/// canonical path otherwise.
void check_output(const std::string& output, const InputPaths& inputs) {
  namespace fs = std::filesystem;
  if (output.empty()) throw UsageError("--output must not be empty");
  const std::string target = db::detail::follow_symlinks(output);
  struct stat out {};
  const bool exists = ::stat(target.c_str(), &out) == 0;
  if (exists && !S_ISREG(out.st_mode))
    throw db::IoError(output + ": --output is " + db::detail::file_kind(out.st_mode) +
                      "; refusing to replace it with the output");
  if (!exists) {
    struct stat dir {};
    const std::string d = db::detail::directory_of(target);
    if (::stat(d.c_str(), &dir) != 0 || !S_ISDIR(dir.st_mode))
      throw db::IoError(output + ": --output's directory " + d + " does not exist");
  }
  std::error_code ec;
  const fs::path out_canon = fs::weakly_canonical(target, ec);
  for (const auto& [option, path] : inputs) {
    struct stat in {};
    bool same = false;
    if (exists && ::stat(path.c_str(), &in) == 0) {
      same = in.st_dev == out.st_dev && in.st_ino == out.st_ino;
    } else {
      std::error_code ec2;
      const fs::path in_canon = fs::weakly_canonical(db::detail::follow_symlinks(path), ec2);
      same = !ec && !ec2 && in_canon == out_canon;
    }
    if (same)
      throw db::IoError(output + ": --output is the same file as " + option + " " + path +
                        "; refusing to overwrite an input");
  }
}

/// --device: "cpu" (default) or "cuda", opened before any file is read (for cuda: the module is
/// loaded and the GPU checked), so a run that cannot use the device fails at once. Its errors
/// name the option: "--device cuda: could not load the CUDA backend ...", "--device cuda: no
/// CUDA device: ...".
rt::Device open_device(const Args& a) {
  const std::string d = a.has("device") ? a.get("device") : "cpu";
  if (!rt::is_device_name(d)) throw UsageError("--device must be cpu or cuda, got '" + d + "'");
  try {
    return rt::Device::open(d);
  } catch (...) {
    rt::rethrow_with_prefix("--device " + d + ": ");
  }
}

/// Opens --inputs (its header only; tensors are read by name later). Called once the model's
/// config has been read and before its weights are: the order in which the CLI reports problems.
void open_inputs(const Args& a, std::optional<rt::SafeTensorsSource>& in) {
  g_stage = "reading the inputs " + a.get("inputs");
  in.emplace(a.get("inputs"));
  g_stage = "loading the model " + a.get("model");
}

int cmd_run(const Args& a) {
  only_options(a, {"model", "inputs", "output", "threads", "device", "dtype", "hop-length", "sample-rate"});
  set_threads(a);
  diffblocks_cli::Timings timings;
  timings.task = "forward";
  timings.clock = audio_clock(a);
  const rt::Device device = open_device(a);
  const std::string output = a.get("output");
  InputPaths paths{{"--inputs", a.get("inputs")}};
  add_model_paths(paths, a.get("model"));
  check_output(output, paths);
  std::optional<rt::SafeTensorsSource> in;
  rt::LoadOptions load;
  load.dtype = dtype_option(a);
  load.on_config = [&](rt::ModelKind) { open_inputs(a, in); };
  g_stage = "loading the model " + a.get("model");
  auto start = Clock::now();
  const rt::Model model = rt::Model::load(a.get("model"), device, load);
  timings.load = seconds_since(start);
  g_stage = "reading the inputs " + a.get("inputs");
  start = Clock::now();
  const rt::Inputs inputs = model.read_inputs(*in, rt::Task::Forward);
  timings.inputs = seconds_since(start);
  g_stage = "running the forward pass";
  rt::Result r = model.forward(inputs);
  timings.compute = r.seconds;
  set_frames(timings, r.out.shape);
  const std::string shape = db::shape_str(r.out.shape);
  start = Clock::now();
  write_out(output, std::move(r.out));
  timings.write = seconds_since(start);
  std::fprintf(stderr, "forward %s in %.3f s (%s) -> %s\n", shape.c_str(), r.seconds, device.description().c_str(),
               db::escape_for_message(output).c_str());
  std::fputs(diffblocks_cli::timings_text(timings).c_str(), stderr);
  return 0;
}

/// The scheduler the options name: kind, its config (JSON text, empty for the defaults) and
/// where the config came from.
struct SchedulerChoice {
  std::string kind, origin, config;
};

SchedulerChoice scheduler_choice(const Args& a) {
  SchedulerChoice c;
  c.kind = a.has("scheduler") ? a.get("scheduler") : "ddim";
  if (c.kind != "ddim" && c.kind != "ddpm" && c.kind != "euler")
    throw UsageError("--scheduler must be ddim, ddpm or euler, got '" + c.kind + "'");
  c.origin = c.kind + " defaults";
  nlohmann::json config = nlohmann::json::object();
  if (a.has("scheduler-config")) {
    c.origin = a.get("scheduler-config");
    c.config = db::read_text_file(c.origin, "scheduler config");
    config = db::parse_config_text(c.config, c.origin);
  }
  (void)db::SchedulerConfig::from_json(config, c.kind, c.origin);  // unsupported options fail here, by name
  return c;
}

int cmd_sample(const Args& a) {
  only_options(a, {"model", "inputs", "output", "threads", "device", "dtype", "steps", "seed", "scheduler",
                   "scheduler-config", "progress", "hop-length", "sample-rate"},
               {"stochastic"});
  set_threads(a);
  diffblocks_cli::Timings timings;
  timings.task = "sample";
  timings.clock = audio_clock(a);
  diffblocks_cli::StepProgress progress(progress_mode(a), stderr);
  const rt::Device device = open_device(a);
  const int steps = static_cast<int>(a.get_int("steps", 1, 100000));
  const std::uint64_t seed = a.has("seed") ? static_cast<std::uint64_t>(a.get_int("seed", 0, (1LL << 62))) : 0;
  const std::string output = a.get("output");
  InputPaths paths{{"--inputs", a.get("inputs")}};
  if (a.has("scheduler-config")) paths.emplace_back("--scheduler-config", a.get("scheduler-config"));
  add_model_paths(paths, a.get("model"));
  check_output(output, paths);
  const bool stochastic = a.flags.count("stochastic") != 0;
  std::optional<rt::SafeTensorsSource> in;
  rt::LoadOptions load;
  load.dtype = dtype_option(a);
  load.on_config = [&](rt::ModelKind kind) {  // options that do not fit the model: before its weights are read
    const bool origin = kind == rt::ModelKind::Origin;
    if (origin && (a.has("scheduler") || a.has("scheduler-config")))
      throw UsageError("--scheduler applies to UNet2DConditionModel models; Grad-TTS models use their own sampler");
    if (!origin && stochastic) throw UsageError("--stochastic applies to Grad-TTS models; use --scheduler ddpm instead");
    if (origin && a.has("seed") && !stochastic) throw UsageError("--seed only applies with --stochastic");
    open_inputs(a, in);
  };
  g_stage = "loading the model " + a.get("model");
  auto start = Clock::now();
  const rt::Model model = rt::Model::load(a.get("model"), device, load);
  timings.load = seconds_since(start);
  rt::SampleOptions opt;
  opt.steps = steps;
  opt.seed = seed;
  opt.progress = [&](int step, int n, double secs) { progress.step(step, n, secs); };
  std::string what;
  if (model.kind() == rt::ModelKind::Origin) {
    opt.stochastic = stochastic;
    what = stochastic ? "Grad-TTS stochastic" : "Grad-TTS ODE";
  } else {
    const SchedulerChoice choice = scheduler_choice(a);
    opt.scheduler = choice.kind;
    opt.scheduler_config = choice.config;
    opt.scheduler_origin = choice.origin;
    what = choice.kind + " scheduler";
  }
  g_stage = "reading the inputs " + a.get("inputs");
  start = Clock::now();
  const rt::Inputs inputs = model.read_inputs(*in, rt::Task::Sample);
  timings.inputs = seconds_since(start);
  g_stage = "sampling";
  rt::Result r;
  try {
    r = model.sample(inputs, opt);
  } catch (...) {
    progress.close();
    throw;
  }
  const double total = progress.total();
  timings.compute = total;
  timings.steps = steps;
  timings.first_step = progress.first();
  set_frames(timings, r.out.shape);
  start = Clock::now();
  write_out(output, std::move(r.out));
  timings.write = seconds_since(start);
  std::fprintf(stderr, "%s sampling, %d steps in %.3f s (%.3f s/step, %s) -> %s\n", what.c_str(), steps, total,
               total / steps, device.description().c_str(), db::escape_for_message(output).c_str());
  std::fputs(diffblocks_cli::timings_text(timings).c_str(), stderr);
  return 0;
}

int cmd_info(const Args& a) {
  only_options(a, {"model"});
  g_stage = "loading the model " + a.get("model");
  const rt::ModelInfo info = rt::Model::load(a.get("model"), "cpu").describe();
  // Names and values come from the file: escaped, and the config bounded, so that every item
  // stays on its line.
  std::cout << "model: " << db::escape_for_message(a.get("model")) << "\n"
            << "class: " << info.class_name << "\n"
            << "config: " << db::escape_for_message(db::json_brief(info.config, 1 << 16, db::kMaxJsonDepth)) << "\n"
            << "parameters: " << info.parameters << "\n";
  // The stored type(s) of the weights, most common first: what --dtype reads without rounding.
  std::map<std::string, std::size_t> by_type;
  for (const auto& t : info.weights) ++by_type[t.dtype];
  std::vector<std::pair<std::string, std::size_t>> types(by_type.begin(), by_type.end());
  std::stable_sort(types.begin(), types.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
  std::cout << "stored dtype:";
  for (std::size_t i = 0; i < types.size(); ++i)
    std::cout << (i ? ", " : " ") << types[i].first << " (" << types[i].second << " tensors)";
  std::cout << "\n";
  std::cout << "tensors (" << info.weights.size() << "):\n";
  for (const auto& t : info.weights)
    std::cout << "  " << db::escape_for_message(t.name) << "\t" << t.dtype << "\t" << db::shape_str(t.shape) << "\n";
  return 0;
}

// ---- similarity: per-phoneme scores of candidate mels against a reference ---------------------

using diffblocks_cli::file_stem;
using diffblocks_cli::is_inline_durations;
using diffblocks_cli::phoneme_list;
using diffblocks_cli::read_durations;
using diffblocks_cli::report_json_text;

/// A comma list from an option; an empty entry ("a,,b") is an error, not silently dropped.
std::vector<std::string> comma_list(const Args& a, const std::string& k) { return diffblocks_cli::comma_list(k, a.get(k)); }

/// A mel from a safetensors file: --key, else tensor 'out' (what run/sample write), else the only
/// tensor; shape (n_feats, T) or (1, n_feats, T).
db::Tensor<float, 2> read_mel(const std::string& path, const std::optional<std::string>& key) {
  g_stage = "reading the mel " + path;
  const auto st = db::SafeTensors::load(path);
  std::string name;
  if (key) {
    if (!st.contains(*key)) throw db::InputError(path + ": no tensor named '" + *key + "' (--key)");
    name = *key;
  } else if (st.contains("out")) {
    name = "out";
  } else if (st.tensors().size() == 1) {
    name = st.tensors()[0].name;
  } else {
    std::string names;
    for (const auto& t : st.tensors()) names += (names.empty() ? "'" : ", '") + t.name + "'";
    throw db::InputError(path + ": holds " + std::to_string(st.tensors().size()) + " tensors (" + names +
                         ") and none is named 'out'; choose one with --key");
  }
  const auto& info = st.info(name);
  const bool ok = info.shape.size() == 2 || (info.shape.size() == 3 && info.shape[0] == 1);
  if (!ok)
    throw db::InputError(path + ": tensor '" + name + "' has shape " + db::shape_str(info.shape) +
                         ", expected a mel (n_feats, T) or (1, n_feats, T)");
  if (info.shape.size() == 2) return db::read_tensor<float, 2>(st, name);
  const db::Tensor<float, 3> mel = db::read_tensor<float, 3>(st, name);
  auto flat = db::Tensor<float, 2>::from_shape({mel.shape(1), mel.shape(2)});
  std::copy(mel.begin(), mel.end(), flat.begin());
  return flat;
}

int cmd_similarity(const Args& a) {
  only_options(a, {"reference", "candidates", "durations", "phonemes", "labels", "title", "subtitle", "metric", "key",
                   "output"});
  const std::string output = a.get("output");
  db::eval::Metric metric;
  try {
    metric = db::eval::parse_metric(a.has("metric") ? a.get("metric") : "cosine");
  } catch (const db::InputError& e) {
    throw UsageError(std::string("--metric: ") + e.what());
  }
  const auto cand_paths = comma_list(a, "candidates");
  InputPaths paths{{"--reference", a.get("reference")}};
  for (const auto& p : cand_paths) paths.emplace_back("--candidates", p);
  if (!is_inline_durations(a.get("durations"))) paths.emplace_back("--durations", a.get("durations"));
  check_output(output, paths);
  std::vector<std::string> labels;
  if (a.has("labels")) {
    labels = comma_list(a, "labels");
    if (labels.size() != cand_paths.size())
      throw UsageError("--labels names " + std::to_string(labels.size()) + " candidates but --candidates gives " +
                       std::to_string(cand_paths.size()));
  } else {
    for (const auto& p : cand_paths) labels.push_back(file_stem(p));
  }
  const std::vector<std::string> phonemes = phoneme_list(a.get("phonemes"));
  if (phonemes.empty()) throw UsageError("--phonemes is empty; give the phoneme symbols separated by spaces");
  const auto durations = read_durations(a.get("durations"));

  std::optional<std::string> key;
  if (a.has("key")) key = a.get("key");
  const auto reference = read_mel(a.get("reference"), key);
  std::vector<db::Tensor<float, 2>> candidates;
  for (const auto& p : cand_paths) candidates.push_back(read_mel(p, key));

  const auto report = db::eval::phoneme_similarity(reference, candidates, labels, phonemes, durations, metric);
  const auto j = db::eval::to_json(report, a.has("title") ? a.get("title") : "Per-phoneme similarity to the reference",
                                   a.has("subtitle") ? a.get("subtitle") : "", a.get("reference"), cand_paths);
  g_stage = "writing " + output;
  db::write_file_atomically(output, report_json_text(j));

  for (const auto& c : report.candidates)
    std::fprintf(stderr, "%s: mean %s %.4f (frame-weighted %.4f), worst phoneme #%zu '%s' %.4f\n",
                 db::escape_for_message(c.label).c_str(), db::eval::metric_name(metric), c.mean,
                 c.frame_weighted_mean, c.worst.index, db::escape_for_message(c.worst.symbol).c_str(), c.worst.score);
  std::fprintf(stderr, "%zu phonemes, %lld frames -> %s\n", report.phonemes.size(),
               static_cast<long long>(report.frames), db::escape_for_message(output).c_str());
  return 0;
}

}  // namespace

/// The one line every failure prints; escaped again here for messages that did not come from
/// a diffblocks::Error (those are escaped already; escaping is idempotent).
int fail(const std::string& message, int status) {
  std::string line = "diffblocks: error: " + db::escape_for_message(message);
  if (status == 2) line += " (see 'diffblocks --help')";
  std::cerr << line << "\n";
  return status;
}

int main(int argc, char** argv) {
  db::install_temp_file_cleanup();  // SIGINT/SIGTERM while writing --output leave no temporary file
  try {
    const Args a = parse_args(argc, argv);
    if (a.command == "run") return cmd_run(a);
    if (a.command == "sample") return cmd_sample(a);
    if (a.command == "info") return cmd_info(a);
    if (a.command == "similarity") return cmd_similarity(a);
    if (a.command == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (a.command == "version") {
      std::cout << "diffblocks " << db::version_string() << "\n";
      std::cout << "cpu kernels: " << db::ops::cpu::isa_report() << "\n";
      return 0;
    }
    throw UsageError("unknown command '" + a.command + "'");
  } catch (const UsageError& e) {
    return fail(e.what(), 2);
  } catch (const db::OutOfMemoryError& e) {
    return fail("while " + g_stage + ": " + e.what(), 1);
  } catch (const std::bad_alloc&) {
    return fail("out of memory while " + g_stage, 1);
  } catch (const std::length_error& e) {
    return fail("allocation too large while " + g_stage + " (" + e.what() + ")", 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  } catch (...) {
    return fail("unknown error while " + g_stage, 1);
  }
}
