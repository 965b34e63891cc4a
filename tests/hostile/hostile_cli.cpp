// Hostile-input corpus for the diffblocks CLI (issue #14): every case prepares its inputs at test
// time in a scratch directory (sparse files, FIFOs, sockets, device nodes, symlinks and hard
// links, 100k-level JSON, raw safetensors headers with duplicate keys and control characters),
// runs the CLI (stdin /dev/null, its own process group, a wall-clock timeout, an RSS watchdog)
// and checks the Robustness contract (docs/robustness.md):
//
//   - the exit status the case expects (0 success, 1 runtime error, 2 usage error), never a
//     signal (the signal class alone allows the CLI to re-raise SIGINT/SIGTERM after cleanup);
//   - an error is exactly one line on stderr, starting "diffblocks: ", without raw control or
//     bidi characters, naming the file / key / tensor / option at fault (needles: substrings,
//     '|' separates alternatives), and no runtime's own words (bad_alloc, max_size(), ...);
//   - every input unchanged (type, inode, size, mtime, content hash), nothing left behind in the
//     scratch directory (temporary files), the output present and well-formed on success;
//   - peak RSS (wait4's ru_maxrss) within a bound; a watchdog kills a run above 4x it (at most
//     the bound + 1 GiB), so a runaway allocation fails fast without exhausting the machine.
//
// The baseline cases run the same commands on valid inputs and must succeed, so a CLI that
// refuses everything cannot pass; the selftest class runs /bin/sh scripts that break each rule
// and checks that the harness notices.
//
//   diffblocks_hostile --cli build/bin/diffblocks --src . --work build/tests/hostile
//                      [--class deep,hang,...] [--filter TEXT] [--rss-mb 200] [--timeout 20]
//                      [--sanitized] [--list] [--keep] [--verbose]
// Exit status: 0 all selected cases passed, 1 a case failed (or none ran), 77 all were skipped.
// Environment: DIFFBLOCKS_HOSTILE_RSS_MB and DIFFBLOCKS_HOSTILE_TIMEOUT override the defaults
// (the sanitized build relaxes the RSS bound through them or --rss-mb).
#include <sys/inotify.h>

#include <deque>
#include <iostream>
#include <thread>

#include "harness.hpp"

using namespace hostile;

namespace {

struct Options {
  std::string cli, src, work, filter;
  std::set<std::string> classes;
  long rss_mb = 200;
  double timeout_s = 20;
  bool list = false, keep = false, verbose = false;
  bool sanitized = false;  // the CLI runs under ASan: the per-case load bounds give way to --rss-mb
  // Bounds are absolute: the CLI maps no GPU library at start (the CUDA module is opened only for
  // --device cuda, issue #15), so its idle footprint is ~4 MB RSS and < 8 MB of address space,
  // and the baseline and oom classes hold it to that (version_rss_16m, version_as_16m).
} opt;

constexpr std::size_t kDeep = 100000;              // levels of the deep JSON values
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

enum class Out { None, Safetensors, Json, Info };

/// One case's scratch state.
struct Ctx {
  std::string dir;                          // scratch directory, the CLI's working directory
  std::vector<std::string> args;            // the CLI's arguments
  std::string output;                       // --output as given (checked on success)
  std::vector<std::string> watch;           // more paths that must not change
  std::string skip;                         // non-empty: cannot run here, and why
  std::string exe;                          // the program (default: the CLI)
  std::string stderr_path;                  // where the command's stderr goes
  std::function<void(pid_t, double)> during;  // called while it runs (signal cases)
  std::vector<int> fds;                     // closed after the run
  long rss_mb = 0;                          // a bound computed by the setup (load cases)
  long as_limit_mb = 0;                     // the command's address-space limit (oom cases)
  long stack_limit_mb = 0;                  // the command's stack limit (oom cases)
  std::string p(const std::string& name) const { return dir + "/" + name; }
};

struct Case {
  std::string klass, name;
  std::function<void(Ctx&)> setup;
  std::set<int> exits;               // allowed exit statuses
  std::vector<std::string> needles;  // on an error, each must occur in stderr ('|': alternatives)
  std::vector<std::string> forbid;   // must not occur in stderr
  Out out = Out::None;               // what exit 0 must produce
  long rss_mb = 0;                   // 0: the default bound
  double timeout_s = 0;              // 0: the default timeout
  int signal_ok = 0;                 // signal cases: death by this signal is acceptable
  int retries = 0;                   // signal cases: reruns while the command won the race
  std::function<std::string(Ctx&, const RunResult&)> post;  // extra check, "" when fine
};

std::deque<Case> cases;

const std::set<int> ERR{1}, USAGE{2}, REFUSED{1, 2}, OK{0}, OK_OR_ERR{0, 1}, ANY_CLEAN{0, 1, 2};

Case& add(const std::string& klass, const std::string& name, std::set<int> exits, std::vector<std::string> needles,
          std::function<void(Ctx&)> setup) {
  Case c;
  c.klass = klass;
  c.name = name;
  c.exits = std::move(exits);
  c.needles = std::move(needles);
  c.setup = std::move(setup);
  cases.push_back(std::move(c));
  return cases.back();
}

// ---- inputs built from the committed fixtures ------------------------------------------------

std::string fx(const std::string& rel) { return opt.src + "/tests/fixtures/" + rel; }
std::string demo(const std::string& rel) { return opt.src + "/examples/data/" + rel; }

const std::string kOriginInputs = "origin_d/inputs.safetensors";
const std::string kDiffInputs = "diffusers/unet_default/inputs.safetensors";
const std::string kDiffSampleInputs = "diffusers/sampling/ddim_inputs.safetensors";

std::string origin_cfg(const std::vector<std::pair<std::string, std::string>>& set = {}, const std::string& tail = "") {
  return config_with(fx("origin_d/config.json"), set, tail);
}
std::string diff_cfg(const std::vector<std::pair<std::string, std::string>>& set = {}, const std::string& tail = "") {
  return config_with(fx("diffusers/unet_default/config.json"), set, tail);
}

/// A model directory `name` in the scratch dir: `config` (empty: the fixture's) and a copy of
/// origin_d's weights (or `weights` bytes when given).
std::string origin_model(Ctx& c, const std::string& name, const std::string& config = "", const std::string* weights = nullptr) {
  const std::string d = c.p(name);
  make_dir(d);
  write_file(d + "/config.json", config.empty() ? read_file(fx("origin_d/config.json")) : config);
  if (weights) write_file(d + "/model.safetensors", *weights);
  else copy_file(fx("origin_d/model.safetensors"), d + "/model.safetensors");
  return d;
}

std::string diff_model(Ctx& c, const std::string& name, const std::string& config = "") {
  const std::string d = c.p(name);
  make_dir(d);
  write_file(d + "/config.json", config.empty() ? read_file(fx("diffusers/unet_default/config.json")) : config);
  copy_file(fx("diffusers/unet_default/diffusion_pytorch_model.safetensors"), d + "/diffusion_pytorch_model.safetensors");
  return d;
}

void run_args(Ctx& c, const std::string& model, const std::string& inputs, const std::string& output) {
  c.args = {"run", "--model", model, "--inputs", inputs, "--output", output};
  c.output = output;
}

void origin_run(Ctx& c, const std::string& model) { run_args(c, model, fx(kOriginInputs), c.p("out.safetensors")); }
void diff_run(Ctx& c, const std::string& model) { run_args(c, model, fx(kDiffInputs), c.p("out.safetensors")); }

/// sample on the diffusers fixture with a scheduler config file.
void diff_sample_sched(Ctx& c, const std::string& sched_path) {
  c.args = {"sample", "--model", fx("diffusers/unet_default"), "--inputs", fx(kDiffSampleInputs), "--output",
            c.p("out.safetensors"), "--steps", "2", "--scheduler-config", sched_path};
  c.output = c.p("out.safetensors");
}

void info_args(Ctx& c, const std::string& model) { c.args = {"info", "--model", model}; }

/// ref.safetensors and cand.safetensors: mels (4, 10) for similarity.
void mels(Ctx& c) {
  write_file(c.p("ref.safetensors"), mel_file(4, 10, 0.25f));
  write_file(c.p("cand.safetensors"), mel_file(4, 10, 0.5f));
}

/// similarity of cand against ref with durations 4,6 unless overridden.
void sim_args(Ctx& c, const std::string& ref, const std::string& cands, const std::string& durations,
              const std::string& phonemes = "a b", const std::string& output = "") {
  c.output = output.empty() ? c.p("sim.json") : output;
  c.args = {"similarity", "--reference", ref, "--candidates", cands, "--durations", durations, "--phonemes", phonemes,
            "--output", c.output};
}

/// Runs `f` with the working directory set to `dir` (relative socket names stay short).
template <class F>
void in_dir(const std::string& dir, F f) {
  const std::string here = fs::current_path().string();
  fs::current_path(dir);
  try {
    f();
  } catch (...) {
    fs::current_path(here);
    throw;
  }
  fs::current_path(here);
}

/// origin_d inputs plus one raw header entry (with `data` appended to the buffer).
std::string inputs_plus(const std::string& raw_entry_fn_name, const std::string& dtype, const std::string& shape,
                        std::uint64_t bytes) {
  const std::uint64_t b = buffer_size(fx(kOriginInputs));
  return st_with(fx(kOriginInputs), st_entry(raw_entry_fn_name, dtype, shape, b, b + bytes), std::string(bytes, '\0'));
}

// ---- the corpus ------------------------------------------------------------------------------

void add_baseline() {
  // --version and --help: the CLI's idle footprint (a CLI that maps GPU libraries at start,
  // ~215 MB with cuBLAS, fails here)
  add("baseline", "version_rss_16m", OK, {}, [](Ctx& c) {
    c.args = {"--version"};
    c.rss_mb = 16;
  });
  add("baseline", "help_rss_16m", OK, {}, [](Ctx& c) {
    c.args = {"--help"};
    c.rss_mb = 16;
  });
  // run: Origin model directory (origin_d) writes `out`
  add("baseline", "run_origin_dir", OK, {}, [](Ctx& c) { origin_run(c, fx("origin_d")); }).out = Out::Safetensors;
  // run: single-file Origin model (config in __metadata__)
  add("baseline", "run_origin_single_file", OK, {}, [](Ctx& c) {
    run_args(c, fx("origin_e.safetensors"), fx("origin_e_inputs.safetensors"), c.p("out.safetensors"));
  }).out = Out::Safetensors;
  // run: diffusers model directory
  add("baseline", "run_diffusers", OK, {}, [](Ctx& c) { diff_run(c, fx("diffusers/unet_default")); }).out = Out::Safetensors;
  // sample: Grad-TTS ODE, 2 steps
  add("baseline", "sample_origin_ode", OK, {}, [](Ctx& c) {
    c.args = {"sample", "--model", fx("sample_ode"), "--inputs", fx("sample_ode/inputs.safetensors"), "--output",
              c.p("out.safetensors"), "--steps", "2"};
    c.output = c.p("out.safetensors");
  }).out = Out::Safetensors;
  // sample: Grad-TTS stochastic with a seed
  add("baseline", "sample_origin_stochastic", OK, {}, [](Ctx& c) {
    c.args = {"sample", "--model", fx("sample_ode"), "--inputs", fx("sample_ode/inputs.safetensors"), "--output",
              c.p("out.safetensors"), "--steps", "2", "--stochastic", "--seed", "3"};
    c.output = c.p("out.safetensors");
  }).out = Out::Safetensors;
  // sample: diffusers DDIM
  add("baseline", "sample_diffusers_ddim", OK, {}, [](Ctx& c) {
    c.args = {"sample", "--model", fx("diffusers/unet_default"), "--inputs", fx(kDiffSampleInputs), "--output",
              c.p("out.safetensors"), "--steps", "2", "--scheduler", "ddim"};
    c.output = c.p("out.safetensors");
  }).out = Out::Safetensors;
  // sample: diffusers with a small valid scheduler config file
  add("baseline", "sample_diffusers_scheduler_config", OK, {}, [](Ctx& c) {
    write_file(c.p("sched.json"), "{\"num_train_timesteps\": 1000, \"beta_schedule\": \"scaled_linear\"}\n");
    diff_sample_sched(c, c.p("sched.json"));
  }).out = Out::Safetensors;
  // sample: a real diffusers scheduler_config.json (_class_name, _diffusers_version, ...) stays accepted
  add("baseline", "sample_diffusers_real_scheduler_config", OK, {}, [](Ctx& c) {
    diff_sample_sched(c, opt.src + "/tests/fuzz/corpus/config/scheduler_sd.json");
  }).out = Out::Safetensors;
  // info: Origin model
  add("baseline", "info_origin", OK, {}, [](Ctx& c) { info_args(c, fx("origin_d")); }).out = Out::Info;
  // info: diffusers model
  add("baseline", "info_diffusers", OK, {}, [](Ctx& c) { info_args(c, fx("diffusers/unet_default")); }).out = Out::Info;
  // info: single-file model
  add("baseline", "info_single_file", OK, {}, [](Ctx& c) { info_args(c, fx("origin_e.safetensors")); }).out = Out::Info;
  // similarity: inline durations
  add("baseline", "similarity_inline", OK, {}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
  }).out = Out::Json;
  // similarity: durations from a text file, labels, metric
  add("baseline", "similarity_durations_file_labels", OK, {}, [](Ctx& c) {
    mels(c);
    write_file(c.p("durations.txt"), "4\n6\n");
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors") + "," + c.p("ref.safetensors"), c.p("durations.txt"));
    c.args.insert(c.args.end(), {"--labels", "Cand,Self", "--metric", "l1", "--title", "t", "--subtitle", "s"});
  }).out = Out::Json;
  // run with paths relative to the working directory
  add("baseline", "run_relative_paths", OK, {}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    origin_model(c, "model");
    run_args(c, "model", "inputs.safetensors", "out.safetensors");
  }).out = Out::Safetensors;
  // model directory whose config.json and weights are symlinks (a Hugging Face cache snapshot)
  add("baseline", "run_model_dir_of_symlinks", OK, {}, [](Ctx& c) {
    make_dir(c.p("snapshot"));
    make_symlink(fx("origin_d/config.json"), c.p("snapshot/config.json"));
    make_symlink(fx("origin_d/model.safetensors"), c.p("snapshot/model.safetensors"));
    origin_run(c, c.p("snapshot"));
  }).out = Out::Safetensors;
  // the model directory itself given through a symlink
  add("baseline", "run_model_dir_symlink", OK, {}, [](Ctx& c) {
    make_symlink(fx("origin_d"), c.p("model_link"));
    origin_run(c, c.p("model_link"));
  }).out = Out::Safetensors;
  // --threads within the bound (the machine's hardware threads)
  add("baseline", "run_threads_hardware", OK, {}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.insert(c.args.end(), {"--threads", std::to_string(std::max(1u, std::thread::hardware_concurrency()))});
  }).out = Out::Safetensors;
  // --output replaces an existing unrelated regular file
  add("baseline", "run_output_replaces_file", OK, {}, [](Ctx& c) {
    write_file(c.p("out.safetensors"), "old contents\n");
    origin_run(c, fx("origin_d"));
  }).out = Out::Safetensors;
  // an output named like the input but in another directory is not refused
  add("baseline", "run_output_same_name_other_dir", OK, {}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    make_dir(c.p("outdir"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("outdir/inputs.safetensors"));
  }).out = Out::Safetensors;
  // a 255-byte output file name (NAME_MAX) is valid: the temporary name must not exceed it
  add("baseline", "run_output_name_255", OK, {}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.output = c.p(std::string(255 - 12, 'n') + ".safetensors");
    c.args.back() = c.output;
  }).out = Out::Safetensors;
}

void add_deep() {
  // _class_name 100k levels deep: printed into the "must be a string" error (was SIGSEGV)
  add("deep", "class_name_array", ERR, {"config.json"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", origin_cfg({{"_class_name", deep_array(kDeep)}})));
  });
  // _class_name as a deep object, diffusers run
  add("deep", "class_name_object_diffusers", ERR, {"config.json"}, [](Ctx& c) {
    diff_run(c, diff_model(c, "model", diff_cfg({{"_class_name", deep_object(kDeep)}})));
  });
  // dim_mults 100k levels deep (the list-of-integers error dumps it)
  add("deep", "dim_mults", ERR, {"config.json"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", origin_cfg({{"dim_mults", deep_array(kDeep)}})));
  });
  // n_spks: alternating arrays and objects 100k deep
  add("deep", "n_spks_mixed", ERR, {"config.json"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", origin_cfg({{"n_spks", deep_mixed(kDeep)}})));
  });
  // diffusers dual_cross_attention deep
  add("deep", "dual_cross_attention", ERR, {"config.json"}, [](Ctx& c) {
    diff_run(c, diff_model(c, "model", diff_cfg({{"dual_cross_attention", deep_array(kDeep)}})));
  });
  // diffusers down_block_types deep
  add("deep", "down_block_types", ERR, {"config.json"}, [](Ctx& c) {
    diff_run(c, diff_model(c, "model", diff_cfg({{"down_block_types", deep_array(kDeep)}})));
  });
  // diffusers block_out_channels deep, through info
  add("deep", "block_out_channels_info", ERR, {"config.json"}, [](Ctx& c) {
    info_args(c, diff_model(c, "model", diff_cfg({{"block_out_channels", deep_object(kDeep)}})));
  });
  // scheduler config num_train_timesteps deep
  add("deep", "num_train_timesteps", ERR, {"sched.json"}, [](Ctx& c) {
    write_file(c.p("sched.json"), "{\"num_train_timesteps\": " + deep_array(kDeep) + "}");
    diff_sample_sched(c, c.p("sched.json"));
  });
  // scheduler config: an unknown key holding a deep object
  add("deep", "scheduler_unknown_key", ERR, {"sched.json"}, [](Ctx& c) {
    write_file(c.p("sched.json"), "{\"zz_hostile\": " + deep_object(kDeep) + "}");
    diff_sample_sched(c, c.p("sched.json"));
  });
  // an unknown _note key 100k deep, printed by info (diffusers prints the whole config): 0 or a clean error
  add("deep", "note_info_diffusers", OK_OR_ERR, {"config.json"}, [](Ctx& c) {
    info_args(c, diff_model(c, "model", diff_cfg({{"_note", deep_array(kDeep)}})));
  }).out = Out::Info;
  // _note as a deep object in an Origin config, info
  add("deep", "note_info_origin", OK_OR_ERR, {"config.json"}, [](Ctx& c) {
    info_args(c, origin_model(c, "model", origin_cfg({{"_note", deep_object(kDeep)}})));
  }).out = Out::Info;
  // the whole config.json a deep array (not an object)
  add("deep", "config_top_level_array", ERR, {"config.json"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", deep_array(kDeep)));
  });
  // single-file model whose embedded config has a deep _class_name
  add("deep", "embedded_config_class_name", ERR, {"model.safetensors"}, [](Ctx& c) {
    StParts p = st_read(fx("origin_e.safetensors"));
    p.header["__metadata__"]["config"] =
        config_text_with(p.header["__metadata__"]["config"].get<std::string>(), {{"_class_name", deep_array(kDeep)}});
    write_file(c.p("model.safetensors"), st_pack(p.header.dump(), p.data));
    run_args(c, c.p("model.safetensors"), fx("origin_e_inputs.safetensors"), c.p("out.safetensors"));
  });
  // a safetensors header that is one 1M-level array (already refused cleanly: keep it so)
  add("deep", "safetensors_header_1m", ERR, {"inputs.safetensors"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), st_pack(deep_array(1000000), ""));
    origin_run(c, fx("origin_d"));
    c.args[4] = c.p("inputs.safetensors");
  });
  // inputs __metadata__ value 100k deep
  add("deep", "inputs_metadata_value", ERR, {"inputs.safetensors"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), st_with(fx(kOriginInputs), "", "", "\"__metadata__\":{\"k\":" + deep_array(kDeep) + "}"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // an input tensor whose shape is 100k deep
  add("deep", "inputs_tensor_shape", ERR, {"inputs.safetensors"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), st_with(fx(kOriginInputs), st_entry("deep", "F32", deep_array(kDeep), 0, 0), ""));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
}

void add_hang() {
  // a FIFO as --model (single-file path): refused by stat, never opened
  add("hang", "fifo_model", ERR, {"model.safetensors"}, [](Ctx& c) {
    make_fifo(c.p("model.safetensors"));
    origin_run(c, c.p("model.safetensors"));
  });
  // config.json a FIFO inside a model directory
  add("hang", "fifo_config_json", ERR, {"config.json"}, [](Ctx& c) {
    make_dir(c.p("model"));
    make_fifo(c.p("model/config.json"));
    copy_file(fx("origin_d/model.safetensors"), c.p("model/model.safetensors"));
    origin_run(c, c.p("model"));
  });
  // config.json a FIFO, through info
  add("hang", "fifo_config_json_info", ERR, {"config.json"}, [](Ctx& c) {
    make_dir(c.p("model"));
    make_fifo(c.p("model/config.json"));
    copy_file(fx("origin_d/model.safetensors"), c.p("model/model.safetensors"));
    info_args(c, c.p("model"));
  });
  // model.safetensors a FIFO inside a model directory
  add("hang", "fifo_weights", ERR, {"model.safetensors"}, [](Ctx& c) {
    make_dir(c.p("model"));
    copy_file(fx("origin_d/config.json"), c.p("model/config.json"));
    make_fifo(c.p("model/model.safetensors"));
    origin_run(c, c.p("model"));
  });
  // a symlink to a FIFO as --model
  add("hang", "symlink_to_fifo_model", ERR, {"link.safetensors|real.fifo"}, [](Ctx& c) {
    make_fifo(c.p("real.fifo"));
    make_symlink("real.fifo", c.p("link.safetensors"));
    origin_run(c, c.p("link.safetensors"));
  });
  // a FIFO as --inputs
  add("hang", "fifo_inputs", ERR, {"inputs.fifo"}, [](Ctx& c) {
    make_fifo(c.p("inputs.fifo"));
    run_args(c, fx("origin_d"), c.p("inputs.fifo"), c.p("out.safetensors"));
  });
  // a FIFO as --durations
  add("hang", "fifo_durations", ERR, {"durations.txt"}, [](Ctx& c) {
    mels(c);
    make_fifo(c.p("durations.txt"));
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), c.p("durations.txt"));
  });
  // a symlink to a FIFO as --durations
  add("hang", "symlink_to_fifo_durations", ERR, {"durations.txt|d.fifo"}, [](Ctx& c) {
    mels(c);
    make_fifo(c.p("d.fifo"));
    make_symlink(c.p("d.fifo"), c.p("durations.txt"));
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), c.p("durations.txt"));
  });
  // a FIFO as --scheduler-config
  add("hang", "fifo_scheduler_config", ERR, {"sched.json"}, [](Ctx& c) {
    make_fifo(c.p("sched.json"));
    diff_sample_sched(c, c.p("sched.json"));
  });
  // a FIFO as --reference
  add("hang", "fifo_reference", ERR, {"ref.safetensors"}, [](Ctx& c) {
    mels(c);
    fs::remove(c.p("ref.safetensors"));
    make_fifo(c.p("ref.safetensors"));
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
  });
  // a FIFO among --candidates
  add("hang", "fifo_candidate", ERR, {"cand2.safetensors"}, [](Ctx& c) {
    mels(c);
    make_fifo(c.p("cand2.safetensors"));
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors") + "," + c.p("cand2.safetensors"), "4,6");
  });
  // a UNIX socket file as --inputs
  add("hang", "socket_inputs", ERR, {"inputs.sock"}, [](Ctx& c) {
    in_dir(c.dir, [] { make_socket("inputs.sock"); });
    run_args(c, fx("origin_d"), c.p("inputs.sock"), c.p("out.safetensors"));
  });
  // a UNIX socket as config.json
  add("hang", "socket_config_json", ERR, {"config.json"}, [](Ctx& c) {
    make_dir(c.p("model"));
    in_dir(c.p("model"), [] { make_socket("config.json"); });
    copy_file(fx("origin_d/model.safetensors"), c.p("model/model.safetensors"));
    origin_run(c, c.p("model"));
  });
}

void add_unbounded() {
  // --durations /dev/zero (was GBs of RSS, then bad_alloc)
  add("unbounded", "devzero_durations", ERR, {"/dev/zero"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "/dev/zero");
  });
  // --durations: a symlink durations.txt -> /dev/urandom
  add("unbounded", "devurandom_durations_link", ERR, {"durations.txt"}, [](Ctx& c) {
    mels(c);
    make_symlink("/dev/urandom", c.p("durations.txt"));
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), c.p("durations.txt"));
  });
  // --scheduler-config /dev/zero
  add("unbounded", "devzero_scheduler_config", ERR, {"/dev/zero"}, [](Ctx& c) { diff_sample_sched(c, "/dev/zero"); });
  // config.json a symlink to /dev/zero
  add("unbounded", "devzero_config_link", ERR, {"config.json"}, [](Ctx& c) {
    make_dir(c.p("model"));
    make_symlink("/dev/zero", c.p("model/config.json"));
    copy_file(fx("origin_d/model.safetensors"), c.p("model/model.safetensors"));
    origin_run(c, c.p("model"));
  });
  // model.safetensors a symlink to /dev/zero
  add("unbounded", "devzero_weights_link", ERR, {"model.safetensors"}, [](Ctx& c) {
    make_dir(c.p("model"));
    copy_file(fx("origin_d/config.json"), c.p("model/config.json"));
    make_symlink("/dev/zero", c.p("model/model.safetensors"));
    origin_run(c, c.p("model"));
  });
  // --model /dev/zero
  add("unbounded", "devzero_model", ERR, {"/dev/zero"}, [](Ctx& c) { origin_run(c, "/dev/zero"); });
  // info --model /dev/zero
  add("unbounded", "devzero_model_info", ERR, {"/dev/zero"}, [](Ctx& c) { info_args(c, "/dev/zero"); });
  // --inputs /dev/zero
  add("unbounded", "devzero_inputs", ERR, {"/dev/zero"}, [](Ctx& c) {
    run_args(c, fx("origin_d"), "/dev/zero", c.p("out.safetensors"));
  });
  // --inputs /dev/null (an empty character device)
  add("unbounded", "devnull_inputs", ERR, {"/dev/null"}, [](Ctx& c) {
    run_args(c, fx("origin_d"), "/dev/null", c.p("out.safetensors"));
  });
  // --inputs: a character device node (1,5: zero) made in the scratch dir
  add("unbounded", "chardev_inputs", ERR, {"zero.safetensors"}, [](Ctx& c) {
    if (!make_char_device(c.p("zero.safetensors"), 1, 5)) c.skip = "mknod not permitted";
    run_args(c, fx("origin_d"), c.p("zero.safetensors"), c.p("out.safetensors"));
  });
  // --reference /dev/zero
  add("unbounded", "devzero_reference", ERR, {"/dev/zero"}, [](Ctx& c) {
    mels(c);
    sim_args(c, "/dev/zero", c.p("cand.safetensors"), "4,6");
  });
  // --candidates with /dev/zero
  add("unbounded", "devzero_candidate", ERR, {"/dev/zero"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors") + ",/dev/zero", "4,6");
  });
  // --durations /proc/self/status (procfs: size 0 on stat, content unbounded in general)
  add("unbounded", "proc_durations", ERR, {"/proc/self/status"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "/proc/self/status");
  });
  // --scheduler-config /proc/self/environ
  add("unbounded", "proc_scheduler_config", ERR, {"/proc/self/environ"}, [](Ctx& c) {
    diff_sample_sched(c, "/proc/self/environ");
  });
  // --model /proc/self/maps (was: cannot create std::vector larger than max_size())
  add("unbounded", "proc_model", ERR, {"/proc/self/maps"}, [](Ctx& c) { origin_run(c, "/proc/self/maps"); });
  // --inputs /proc/cpuinfo
  add("unbounded", "proc_inputs", ERR, {"/proc/cpuinfo"}, [](Ctx& c) {
    run_args(c, fx("origin_d"), "/proc/cpuinfo", c.p("out.safetensors"));
  });
  // config.json a symlink to /proc/self/maps
  add("unbounded", "proc_config_link", ERR, {"config.json"}, [](Ctx& c) {
    make_dir(c.p("model"));
    make_symlink("/proc/self/maps", c.p("model/config.json"));
    copy_file(fx("origin_d/model.safetensors"), c.p("model/model.safetensors"));
    origin_run(c, c.p("model"));
  });
  // a 1 GiB (sparse) durations file: over the size cap, refused before reading
  add("unbounded", "sparse_durations_1g", ERR, {"durations.txt"}, [](Ctx& c) {
    mels(c);
    make_sparse(c.p("durations.txt"), kGiB, "4\n6\n");
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), c.p("durations.txt"));
  });
  // a 1 GiB (sparse) scheduler config
  add("unbounded", "sparse_scheduler_config_1g", ERR, {"sched.json"}, [](Ctx& c) {
    make_sparse(c.p("sched.json"), kGiB, "{\"num_train_timesteps\": 1000");
    diff_sample_sched(c, c.p("sched.json"));
  });
  // a 1 GiB (sparse) config.json
  add("unbounded", "sparse_config_json_1g", ERR, {"config.json"}, [](Ctx& c) {
    origin_model(c, "model");
    make_sparse(c.p("model/config.json"), kGiB, "{\"_class_name\": \"GradLogPEstimator2d\"");
    origin_run(c, c.p("model"));
  });
  // a 1 GiB (sparse) config.json through info
  add("unbounded", "sparse_config_json_1g_info", ERR, {"config.json"}, [](Ctx& c) {
    origin_model(c, "model");
    make_sparse(c.p("model/config.json"), kGiB, "{");
    info_args(c, c.p("model"));
  });
}

void add_alloc() {
  const std::string huge_len = le64(std::uint64_t{1} << 63);
  // single-file model: 6 GiB sparse file claiming a 2^63-byte header (was: 6.45 GB RSS, 27 s)
  add("alloc", "sparse_6g_header_2p63_model", ERR, {"model.safetensors"}, [huge_len](Ctx& c) {
    make_sparse(c.p("model.safetensors"), 6 * kGiB, huge_len);
    origin_run(c, c.p("model.safetensors"));
  });
  // the same file as --inputs
  add("alloc", "sparse_6g_header_2p63_inputs", ERR, {"inputs.safetensors"}, [huge_len](Ctx& c) {
    make_sparse(c.p("inputs.safetensors"), 6 * kGiB, huge_len);
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // the same file as the weights of a model directory
  add("alloc", "sparse_6g_header_2p63_weights", ERR, {"model.safetensors"}, [huge_len](Ctx& c) {
    make_dir(c.p("model"));
    copy_file(fx("origin_d/config.json"), c.p("model/config.json"));
    make_sparse(c.p("model/model.safetensors"), 6 * kGiB, huge_len);
    origin_run(c, c.p("model"));
  });
  // the same file as --reference
  add("alloc", "sparse_6g_header_2p63_reference", ERR, {"ref.safetensors"}, [huge_len](Ctx& c) {
    mels(c);
    make_sparse(c.p("ref.safetensors"), 6 * kGiB, huge_len);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
  });
  // a header length over the header cap (200 MiB) in a 300 MiB sparse file: refused before reading it
  add("alloc", "header_over_cap_sparse", ERR, {"inputs.safetensors"}, [](Ctx& c) {
    make_sparse(c.p("inputs.safetensors"), 300 << 20, le64(200 << 20) + "{");
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // header length one byte past the end of the file
  add("alloc", "header_len_past_end", ERR, {"inputs.safetensors"}, [](Ctx& c) {
    const std::string good = read_file(fx(kOriginInputs));
    write_file(c.p("inputs.safetensors"), le64(good.size() - 8 + 1) + good.substr(8));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // header length 2^64-1 in a small file
  add("alloc", "header_len_max", ERR, {"model.safetensors"}, [](Ctx& c) {
    write_file(c.p("model.safetensors"), le64(~std::uint64_t{0}) + "{}");
    origin_run(c, c.p("model.safetensors"));
  });
  // config dim 4096 with a 28-byte weights file (was: 5.7 GB allocated, then "missing key")
  add("alloc", "origin_dim4096_28_byte_weights", ERR, {"config.json|model.safetensors"}, [](Ctx& c) {
    const std::string weights = st_pack("{\"__metadata__\":{}}", "");  // 28 bytes
    origin_run(c, origin_model(c, "model", "{\"_class_name\":\"GradLogPEstimator2d\",\"dim\":4096,\"dim_mults\":[1],\"n_feats\":64}",
                               &weights));
  });
  // n_spks 16777216 with a [1,1] spk_emb.weight (was: 4.4 GB zero-filled first)
  add("alloc", "origin_n_spks_16m", ERR, {"config.json|model.safetensors|n_spks|spk_emb"}, [](Ctx& c) {
    const std::string w = fx("origin_d/model.safetensors");
    const std::uint64_t b = buffer_size(w);
    const std::string weights = st_with(w, st_entry("spk_emb.weight", "F32", "[1,1]", b, b + 4), f32_bytes(1));
    origin_run(c, origin_model(c, "model", origin_cfg({{"n_spks", "16777216"}}), &weights));
  });
  // n_emos 16777216 with a [1,1] emo_emb.weight
  add("alloc", "origin_n_emos_16m", ERR, {"config.json|model.safetensors|n_emos|emo_emb"}, [](Ctx& c) {
    const std::string w = fx("origin_d/model.safetensors");
    const std::uint64_t b = buffer_size(w);
    const std::string weights = st_with(w, st_entry("emo_emb.weight", "F32", "[1,1]", b, b + 4), f32_bytes(1));
    origin_run(c, origin_model(c, "model", origin_cfg({{"n_emos", "16777216"}}), &weights));
  });
  // dim 65536 with origin_d's weights (was: "cannot create std::vector larger than max_size()")
  add("alloc", "origin_dim_65536", ERR, {"config.json|model.safetensors|dim"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", origin_cfg({{"dim", "65536"}})));
  });
  // n_feats 2^30
  add("alloc", "origin_n_feats_2p30", ERR, {"config.json|model.safetensors|n_feats"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", origin_cfg({{"n_feats", "1073741824"}})));
  });
  // 16 levels of dim_mults (all 1) against a 2-level checkpoint
  add("alloc", "origin_16_levels", ERR, {"config.json|model.safetensors|dim_mults|downs"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", origin_cfg({{"dim_mults", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]"}})));
  });
  // diffusers num_class_embeds 16777216
  add("alloc", "diffusers_num_class_embeds_16m", ERR,
      {"config.json|diffusion_pytorch_model.safetensors|num_class_embeds|class_embedding"}, [](Ctx& c) {
        diff_run(c, diff_model(c, "model", diff_cfg({{"num_class_embeds", "16777216"}})));
      });
  // diffusers: 16 levels x 1024 layers per block
  add("alloc", "diffusers_16_levels_1024_layers", ERR, {"config.json|diffusion_pytorch_model.safetensors|layers_per_block"},
      [](Ctx& c) {
        std::string down = "[", up = "[", ch = "[";
        for (int i = 0; i < 16; ++i) {
          down += std::string(i ? "," : "") + "\"DownBlock2D\"";
          up += std::string(i ? "," : "") + "\"UpBlock2D\"";
          ch += std::string(i ? "," : "") + "16";
        }
        diff_run(c, diff_model(c, "model", diff_cfg({{"down_block_types", down + "]"}, {"up_block_types", up + "]"},
                                                     {"block_out_channels", ch + "]"}, {"layers_per_block", "1024"},
                                                     {"mid_block_type", "null"}})));
      });
  // diffusers cross_attention_dim 16777216
  add("alloc", "diffusers_cross_attention_dim_16m", ERR,
      {"config.json|diffusion_pytorch_model.safetensors|cross_attention_dim|attn2"}, [](Ctx& c) {
        diff_run(c, diff_model(c, "model", diff_cfg({{"cross_attention_dim", "16777216"}})));
      });
  // diffusers block_out_channels of 2^20
  add("alloc", "diffusers_block_out_channels_1m", ERR,
      {"config.json|diffusion_pytorch_model.safetensors|block_out_channels|conv_in"}, [](Ctx& c) {
        diff_run(c, diff_model(c, "model", diff_cfg({{"block_out_channels", "[1048576, 1048576]"}})));
      });
  // an input of shape [2^62] F32 with empty offsets: the error names the tensor, not a wrapped byte count
  add("alloc", "inputs_shape_2p62", ERR, {"huge_a"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), inputs_plus("huge_a", "F32", "[4611686018427387904]", 0));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  }).forbid = {"needs 0 bytes"};
  // shape [2^32, 2^32]: the element count overflows 64 bits
  add("alloc", "inputs_shape_product_wraps", ERR, {"huge_b"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), inputs_plus("huge_b", "F32", "[4294967296,4294967296]", 0));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  }).forbid = {"needs 0 bytes"};
  // shape [2^61] F64: count x 8 bytes wraps to 0
  add("alloc", "inputs_shape_bytes_wrap", ERR, {"huge_c"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), inputs_plus("huge_c", "F64", "[2305843009213693952]", 0));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  }).forbid = {"needs 0 bytes"};
  // data_offsets 2^40 bytes past a tiny file
  add("alloc", "inputs_offsets_beyond_file", ERR, {"far"}, [](Ctx& c) {
    const std::uint64_t b = buffer_size(fx(kOriginInputs));
    write_file(c.p("inputs.safetensors"),
               st_with(fx(kOriginInputs), st_entry("far", "F32", "[2]", b, b + (std::uint64_t{1} << 40)), ""));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
}

void add_message() {
  // a directory as --inputs (was: cannot create std::vector larger than max_size())
  add("message", "dir_as_inputs", ERR, {"inputs.safetensors"}, [](Ctx& c) {
    make_dir(c.p("inputs.safetensors"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // config.json a directory
  add("message", "config_json_is_dir", ERR, {"config.json"}, [](Ctx& c) {
    make_dir(c.p("model/config.json"));
    copy_file(fx("origin_d/model.safetensors"), c.p("model/model.safetensors"));
    origin_run(c, c.p("model"));
  });
  // a directory as --scheduler-config
  add("message", "dir_as_scheduler_config", ERR, {"sched.json"}, [](Ctx& c) {
    make_dir(c.p("sched.json"));
    diff_sample_sched(c, c.p("sched.json"));
  });
  // a directory as --durations
  add("message", "dir_as_durations", ERR, {"durations.txt"}, [](Ctx& c) {
    mels(c);
    make_dir(c.p("durations.txt"));
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), c.p("durations.txt"));
  });
  // a directory as --reference
  add("message", "dir_as_reference", ERR, {"ref.safetensors"}, [](Ctx& c) {
    write_file(c.p("cand.safetensors"), mel_file(4, 10));
    make_dir(c.p("ref.safetensors"));
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
  });
  // --output '' (was: ": cannot move the finished file into place")
  add("message", "output_empty", REFUSED, {"output"}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.back() = "";
    c.output.clear();
  });
  // an existing directory as --output: refused with the reason
  add("message", "output_existing_dir", ERR, {"outdir", "director"}, [](Ctx& c) {
    make_dir(c.p("outdir"));
    origin_run(c, fx("origin_d"));
    c.args.back() = c.p("outdir");
  });
  // a 256-byte output name: one line naming it and the reason
  add("message", "output_name_256", ERR, {"nnnnnnnnnnnnnnnnnnnn"}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.back() = c.p(std::string(256 - 12, 'n') + ".safetensors");
  });
  // --output in a directory that does not exist
  add("message", "output_missing_parent", ERR, {"no_such_dir"}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.back() = c.p("no_such_dir/out.safetensors");
  });
  // --output below a regular file
  add("message", "output_parent_is_file", ERR, {"plainfile"}, [](Ctx& c) {
    write_file(c.p("plainfile"), "x");
    origin_run(c, fx("origin_d"));
    c.args.back() = c.p("plainfile/out.safetensors");
  });
  // --output in /proc (cannot be created there)
  add("message", "output_under_proc", ERR, {"/proc/diffblocks_hostile_out"}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.back() = "/proc/diffblocks_hostile_out.safetensors";
  });
  // a missing --inputs file
  add("message", "inputs_missing", ERR, {"missing_inputs.safetensors"}, [](Ctx& c) {
    run_args(c, fx("origin_d"), c.p("missing_inputs.safetensors"), c.p("out.safetensors"));
  });
  // a missing --model
  add("message", "model_missing", ERR, {"missing_model"}, [](Ctx& c) { origin_run(c, c.p("missing_model")); });
  // a missing durations file
  add("message", "durations_file_missing", ERR, {"missing_durations.txt"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), c.p("missing_durations.txt"));
  });
  // a durations file with a word in it
  add("message", "durations_not_integer", ERR, {"durations.txt", "bogus"}, [](Ctx& c) {
    mels(c);
    write_file(c.p("durations.txt"), "4 bogus\n");
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), c.p("durations.txt"));
  });
  // truncated inputs file
  add("message", "inputs_truncated", ERR, {"inputs.safetensors"}, [](Ctx& c) {
    const std::string good = read_file(fx(kOriginInputs));
    write_file(c.p("inputs.safetensors"), good.substr(0, good.size() / 2));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // a candidate whose file name is not UTF-8 (fuzz finding: JSON dump threw type_error 316)
  add("message", "candidate_name_not_utf8", OK_OR_ERR, {"cand_"}, [](Ctx& c) {
    mels(c);
    write_file(c.p("cand_\x9e.safetensors"), mel_file(4, 10, 0.5f));
    sim_args(c, c.p("ref.safetensors"), c.p("cand_\x9e.safetensors"), "4,6");
  }).out = Out::Json;
  // a label that is not UTF-8
  add("message", "label_not_utf8", ANY_CLEAN, {"labels"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
    c.args.insert(c.args.end(), {"--labels", "lab\xff\xfe"});
  }).out = Out::Json;
  // a title that is not UTF-8
  add("message", "title_not_utf8", ANY_CLEAN, {"title"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
    c.args.insert(c.args.end(), {"--title", "t\xc3"});
  }).out = Out::Json;
  // a phoneme symbol that is not UTF-8
  add("message", "phoneme_not_utf8", ANY_CLEAN, {"phoneme"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6", "a \x80");
  }).out = Out::Json;
}

void add_usage() {
  // unknown --metric value
  add("usage", "metric_bogus", USAGE, {"bogus"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
    c.args.insert(c.args.end(), {"--metric", "bogus"});
  });
  // --threads 0
  add("usage", "threads_zero", USAGE, {"--threads"}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.insert(c.args.end(), {"--threads", "0"});
  });
  // --threads not a number
  add("usage", "threads_text", USAGE, {"--threads"}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.insert(c.args.end(), {"--threads", "four"});
  });
  // --steps -1
  add("usage", "steps_negative", USAGE, {"--steps"}, [](Ctx& c) {
    c.args = {"sample", "--model", fx("sample_ode"), "--inputs", fx("sample_ode/inputs.safetensors"), "--output",
              c.p("out.safetensors"), "--steps", "-1"};
  });
  // --steps beyond 64 bits
  add("usage", "steps_overflow", USAGE, {"--steps"}, [](Ctx& c) {
    c.args = {"sample", "--model", fx("sample_ode"), "--inputs", fx("sample_ode/inputs.safetensors"), "--output",
              c.p("out.safetensors"), "--steps", "99999999999999999999999"};
  });
  // an unknown option
  add("usage", "unknown_option", USAGE, {"--frobnicate"}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.push_back("--frobnicate");
  });
  // an option without its value
  add("usage", "missing_value", USAGE, {"--output"}, [](Ctx& c) {
    c.args = {"run", "--model", fx("origin_d"), "--inputs", fx(kOriginInputs), "--output"};
  });
  // a required option missing
  add("usage", "missing_output_option", USAGE, {"--output"}, [](Ctx& c) {
    c.args = {"run", "--model", fx("origin_d"), "--inputs", fx(kOriginInputs)};
  });
  // an unknown command
  add("usage", "unknown_command", USAGE, {"frobnicate"}, [](Ctx& c) { c.args = {"frobnicate"}; });
  // no command at all
  add("usage", "no_command", USAGE, {"command"}, [](Ctx& c) { c.args = {}; });
  // --stochastic on a diffusers model (conflicting)
  add("usage", "stochastic_on_diffusers", USAGE, {"--stochastic"}, [](Ctx& c) {
    c.args = {"sample", "--model", fx("diffusers/unet_default"), "--inputs", fx(kDiffSampleInputs), "--output",
              c.p("out.safetensors"), "--steps", "2", "--stochastic"};
  });
  // --scheduler on an Origin model (conflicting)
  add("usage", "scheduler_on_origin", USAGE, {"--scheduler"}, [](Ctx& c) {
    c.args = {"sample", "--model", fx("sample_ode"), "--inputs", fx("sample_ode/inputs.safetensors"), "--output",
              c.p("out.safetensors"), "--steps", "2", "--scheduler", "ddim"};
  });
  // --seed without --stochastic on an Origin model
  add("usage", "seed_without_stochastic", USAGE, {"--seed"}, [](Ctx& c) {
    c.args = {"sample", "--model", fx("sample_ode"), "--inputs", fx("sample_ode/inputs.safetensors"), "--output",
              c.p("out.safetensors"), "--steps", "2", "--seed", "1"};
  });
  // --scheduler heun
  add("usage", "scheduler_unknown", USAGE, {"--scheduler"}, [](Ctx& c) {
    c.args = {"sample", "--model", fx("diffusers/unet_default"), "--inputs", fx(kDiffSampleInputs), "--output",
              c.p("out.safetensors"), "--steps", "2", "--scheduler", "heun"};
  });
  // --device tpu
  add("usage", "device_unknown", USAGE, {"--device"}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.insert(c.args.end(), {"--device", "tpu"});
  });
  // --labels count differs from --candidates
  add("usage", "labels_count_mismatch", USAGE, {"--labels"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
    c.args.insert(c.args.end(), {"--labels", "a,b"});
  });
  // --labels of 60000 empty entries: still one line
  add("usage", "labels_60k_empty_entries", USAGE, {"--labels"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
    c.args.insert(c.args.end(), {"--labels", std::string(60000, ',')});
  });
  // inline --durations with an empty entry
  add("usage", "durations_empty_entry", USAGE, {"--durations"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,,6", "a b c");
  });
  // an option that does not apply to similarity
  add("usage", "similarity_foreign_option", USAGE, {"--model"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
    c.args.insert(c.args.end(), {"--model", fx("origin_d")});
  });
  // an option that does not apply to info
  add("usage", "info_foreign_option", USAGE, {"--steps"}, [](Ctx& c) {
    c.args = {"info", "--model", fx("origin_d"), "--steps", "3"};
  });
  // --threads 1024 on any machine (was: 90 s for a 7 ms forward, load 300)
  add("usage", "threads_1024", USAGE, {"--threads"}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.insert(c.args.end(), {"--threads", "1024"});
  });
  // --threads 257: above any bound at most 256
  add("usage", "threads_257", USAGE, {"--threads"}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.insert(c.args.end(), {"--threads", "257"});
  });
  // --threads 100000 on sample
  add("usage", "threads_100000_sample", USAGE, {"--threads"}, [](Ctx& c) {
    c.args = {"sample", "--model", fx("sample_ode"), "--inputs", fx("sample_ode/inputs.safetensors"), "--output",
              c.p("out.safetensors"), "--steps", "2", "--threads", "100000"};
  });
}

void add_oneline() {
  // an unexpected input tensor named "x\n\e[31mFAKE\e[0m" (was: two lines with the raw escape)
  add("oneline", "tensor_name_ansi_newline", ERR, {"FAKE"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), inputs_plus("x\\n\\u001b[31mFAKE\\u001b[0m", "F32", "[1]", 4));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // a tensor name with a right-to-left override
  add("oneline", "tensor_name_bidi", ERR, {"evil", "gnp"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), inputs_plus("evil\\u202egnp.exe", "F32", "[1]", 4));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // a tensor name with a bidi isolate (U+2066)
  add("oneline", "tensor_name_bidi_isolate", ERR, {"iso", "late"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), inputs_plus("iso\\u2066late", "F32", "[1]", 4));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // a tensor name with a NUL: escaped, not cut
  add("oneline", "tensor_name_nul", ERR, {"NULTAIL"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), inputs_plus("a\\u0000NULTAIL", "F32", "[1]", 4));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // a tensor name with a C1 CSI (U+009B)
  add("oneline", "tensor_name_c1_csi", ERR, {"c1name"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), inputs_plus("c1name\\u009b2J", "F32", "[1]", 4));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // a tensor name with DEL and a carriage return
  add("oneline", "tensor_name_del_cr", ERR, {"delname"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), inputs_plus("delname\\u007f\\rFAKE", "F32", "[1]", 4));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // an unexpected checkpoint key with a newline and a clear-screen escape
  add("oneline", "weights_key_ansi", ERR, {"injected"}, [](Ctx& c) {
    const std::string w = fx("origin_d/model.safetensors");
    const std::uint64_t b = buffer_size(w);
    const std::string weights = st_with(w, st_entry("z\\n\\u001b[2Jinjected", "F32", "[1]", b, b + 4), f32_bytes(1));
    origin_run(c, origin_model(c, "model", "", &weights));
  });
  // an input tensor's dtype with an escape
  add("oneline", "dtype_escape", ERR, {"dtype"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), inputs_plus("odd", "F\\u001b[31m32", "[1]", 4));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // an inputs __metadata__ key with a bidi override whose value is not a string
  add("oneline", "metadata_key_bidi", ERR, {"__metadata__"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), st_with(fx(kOriginInputs), "", "", "\"__metadata__\":{\"k\\u202eevil\":1}"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // a raw ESC byte inside the header JSON (invalid JSON)
  add("oneline", "header_raw_escape_byte", ERR, {"inputs.safetensors"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), st_pack("{\"x\x1b[31m\":1}", ""));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // a missing --model path with a newline
  add("oneline", "model_path_newline", ERR, {"FAKE"}, [](Ctx& c) { origin_run(c, c.p("missing\nFAKE")); });
  // a missing --model path with a right-to-left override
  add("oneline", "model_path_bidi", ERR, {"rtlmodel"}, [](Ctx& c) { origin_run(c, c.p("rtlmodel\xe2\x80\xae.safetensors")); });
  // a missing --inputs path with an escape sequence
  add("oneline", "inputs_path_escape", ERR, {"puts_missing"}, [](Ctx& c) {
    run_args(c, fx("origin_d"), c.p("in\x1b[31mputs_missing.safetensors"), c.p("out.safetensors"));
  });
  // an unknown Origin config key with an escape
  add("oneline", "config_key_escape", ERR, {"zzbad", "keyzz"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", origin_cfg({{"zzbad\x1b[2Jkeyzz", "1"}})));
  });
  // an unknown Origin config key starting with NUL
  add("oneline", "config_key_nul", ERR, {"evilkey"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", origin_cfg({}, ",\"\\u0000evilkey\":1")));
  });
  // _class_name with a newline
  add("oneline", "class_name_newline", ERR, {"FAKECLASS"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", origin_cfg({{"_class_name", "\"Grad\\nFAKECLASS\""}})));
  });
  // a scheduler config key with a newline (unknown keys are refused)
  add("oneline", "scheduler_key_newline", ERR, {"timesteps"}, [](Ctx& c) {
    write_file(c.p("sched.json"), "{\"num_train\\ntimesteps\": 10}");
    diff_sample_sched(c, c.p("sched.json"));
  });
  // --durations naming a missing file with a newline in its name
  add("oneline", "durations_path_newline", REFUSED, {"dur_missing"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), c.p("dur_missing\n4,6"));
  });
  // an unknown option with an escape
  add("oneline", "unknown_option_escape", USAGE, {"--mod"}, [](Ctx& c) {
    c.args = {"run", "--mod\x1b[2Jel", "x"};
  });
  // an unknown command with a newline
  add("oneline", "unknown_command_newline", USAGE, {"FAKECMD"}, [](Ctx& c) { c.args = {"ru\nFAKECMD"}; });
  // similarity --key naming a missing tensor, with a newline
  add("oneline", "key_option_newline", ERR, {"FAKEKEY"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
    c.args.insert(c.args.end(), {"--key", "a\nFAKEKEY"});
  });
  // a phoneme with an escape named by the non-positive-duration error
  add("oneline", "phoneme_escape_in_error", ERR, {"duration|phoneme"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "0,10", "\x1b[2Jp q");
  });
}

void add_data() {
  // run --inputs X --output X (was: the inputs replaced by the output, exit 0)
  add("data", "output_is_inputs", REFUSED, {"inputs.safetensors"}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("inputs.safetensors"));
  });
  // the same file through a ./ prefix (relative paths)
  add("data", "output_dot_prefix", REFUSED, {"inputs.safetensors"}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    run_args(c, fx("origin_d"), "inputs.safetensors", "./inputs.safetensors");
  });
  // the same file through sub/..
  add("data", "output_dotdot", REFUSED, {"inputs.safetensors"}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    make_dir(c.p("sub"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("sub/../inputs.safetensors"));
  });
  // inputs relative, output absolute
  add("data", "output_absolute_inputs_relative", REFUSED, {"inputs.safetensors"}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    run_args(c, fx("origin_d"), "inputs.safetensors", c.p("inputs.safetensors"));
  });
  // --output a symlink to the inputs
  add("data", "output_symlink_to_inputs", REFUSED, {"out.safetensors|inputs.safetensors"}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    make_symlink("inputs.safetensors", c.p("out.safetensors"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // --output a chain of two symlinks to the inputs
  add("data", "output_symlink_chain_to_inputs", REFUSED, {"out.safetensors|inputs.safetensors"}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    make_symlink("inputs.safetensors", c.p("l2"));
    make_symlink("l2", c.p("out.safetensors"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // --output a hard link of the inputs (same device and inode)
  add("data", "output_hardlink_to_inputs", REFUSED, {"out.safetensors|inputs.safetensors"}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    make_hardlink(c.p("inputs.safetensors"), c.p("out.safetensors"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // the inputs given through a symlink, the output the real file
  add("data", "inputs_symlink_output_real", REFUSED, {"inputs.safetensors|link.safetensors"}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    make_symlink("inputs.safetensors", c.p("link.safetensors"));
    run_args(c, fx("origin_d"), c.p("link.safetensors"), c.p("inputs.safetensors"));
  });
  // --output through a directory symlink to the inputs' directory
  add("data", "output_via_dir_symlink", REFUSED, {"inputs.safetensors"}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    make_symlink(".", c.p("alias"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("alias/inputs.safetensors"));
  });
  // --output /proc/self/cwd/inputs.safetensors (the CLI's working directory is the scratch dir)
  add("data", "output_proc_self_cwd", REFUSED, {"inputs.safetensors"}, [](Ctx& c) {
    copy_file(fx(kOriginInputs), c.p("inputs.safetensors"));
    run_args(c, fx("origin_d"), "inputs.safetensors", "/proc/self/cwd/inputs.safetensors");
  });
  // run --model M.safetensors --output M.safetensors (was: the single-file model replaced)
  add("data", "output_is_single_file_model", REFUSED, {"model.safetensors"}, [](Ctx& c) {
    copy_file(fx("origin_e.safetensors"), c.p("model.safetensors"));
    run_args(c, c.p("model.safetensors"), fx("origin_e_inputs.safetensors"), c.p("model.safetensors"));
  });
  // --output a hard link of the single-file model
  add("data", "output_hardlink_to_model", REFUSED, {"model.safetensors|out.safetensors"}, [](Ctx& c) {
    copy_file(fx("origin_e.safetensors"), c.p("model.safetensors"));
    make_hardlink(c.p("model.safetensors"), c.p("out.safetensors"));
    run_args(c, c.p("model.safetensors"), fx("origin_e_inputs.safetensors"), c.p("out.safetensors"));
  });
  // --output the weights file inside the model directory
  add("data", "output_is_model_dir_weights", REFUSED, {"model.safetensors"}, [](Ctx& c) {
    const std::string m = origin_model(c, "model");
    run_args(c, m, fx(kOriginInputs), m + "/model.safetensors");
  });
  // --output the weights file, the model directory given through a symlink
  add("data", "output_is_weights_model_via_symlink", REFUSED, {"model.safetensors"}, [](Ctx& c) {
    const std::string m = origin_model(c, "model");
    make_symlink("model", c.p("mlink"));
    run_args(c, c.p("mlink"), fx(kOriginInputs), m + "/model.safetensors");
  });
  // --output the model directory's config.json
  add("data", "output_is_config_json", REFUSED, {"config.json"}, [](Ctx& c) {
    const std::string m = origin_model(c, "model");
    run_args(c, m, fx(kOriginInputs), m + "/config.json");
  });
  // --output the model directory itself
  add("data", "output_is_model_dir", REFUSED, {"model"}, [](Ctx& c) {
    const std::string m = origin_model(c, "model");
    run_args(c, m, fx(kOriginInputs), m);
  });
  // sample (Origin): --output the inputs
  add("data", "sample_origin_output_is_inputs", REFUSED, {"inputs.safetensors"}, [](Ctx& c) {
    copy_file(fx("sample_ode/inputs.safetensors"), c.p("inputs.safetensors"));
    c.args = {"sample", "--model", fx("sample_ode"), "--inputs", c.p("inputs.safetensors"), "--output",
              c.p("inputs.safetensors"), "--steps", "2"};
  });
  // sample (diffusers): --output the inputs
  add("data", "sample_diffusers_output_is_inputs", REFUSED, {"inputs.safetensors"}, [](Ctx& c) {
    copy_file(fx(kDiffSampleInputs), c.p("inputs.safetensors"));
    c.args = {"sample", "--model", fx("diffusers/unet_default"), "--inputs", c.p("inputs.safetensors"), "--output",
              c.p("inputs.safetensors"), "--steps", "2"};
  });
  // sample: --output the scheduler config
  add("data", "output_is_scheduler_config", REFUSED, {"sched.json"}, [](Ctx& c) {
    write_file(c.p("sched.json"), "{\"num_train_timesteps\": 1000}");
    diff_sample_sched(c, c.p("sched.json"));
    c.args[6] = c.p("sched.json");
  });
  // similarity --reference R --output R (was: the reference replaced by the JSON)
  add("data", "similarity_output_is_reference", REFUSED, {"ref.safetensors"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6", "a b", c.p("ref.safetensors"));
  });
  // similarity: --output one of the candidates
  add("data", "similarity_output_is_candidate", REFUSED, {"cand.safetensors"}, [](Ctx& c) {
    mels(c);
    sim_args(c, c.p("ref.safetensors"), c.p("ref.safetensors") + "," + c.p("cand.safetensors"), "4,6", "a b",
             c.p("cand.safetensors"));
  });
  // similarity: --output a symlink to a candidate
  add("data", "similarity_output_symlink_to_candidate", REFUSED, {"cand.safetensors|sim.json"}, [](Ctx& c) {
    mels(c);
    make_symlink("cand.safetensors", c.p("sim.json"));
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
  });
  // similarity: --output a hard link of the reference
  add("data", "similarity_output_hardlink_to_reference", REFUSED, {"ref.safetensors|sim.json"}, [](Ctx& c) {
    mels(c);
    make_hardlink(c.p("ref.safetensors"), c.p("sim.json"));
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
  });
  // similarity: --output the durations file
  add("data", "similarity_output_is_durations", REFUSED, {"durations.txt"}, [](Ctx& c) {
    mels(c);
    write_file(c.p("durations.txt"), "4 6\n");
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), c.p("durations.txt"), "a b", c.p("durations.txt"));
  });
  // --output a character device node (was: replaced by a regular file)
  add("data", "output_char_device", ERR, {"dev.safetensors"}, [](Ctx& c) {
    if (!make_char_device(c.p("dev.safetensors"), 1, 3)) c.skip = "mknod not permitted";
    origin_run(c, fx("origin_d"));
    c.args.back() = c.p("dev.safetensors");
  });
  // --output a symlink to a character device node
  add("data", "output_symlink_to_char_device", ERR, {"out.safetensors|nulldev"}, [](Ctx& c) {
    if (!make_char_device(c.p("nulldev"), 1, 3)) c.skip = "mknod not permitted";
    make_symlink("nulldev", c.p("out.safetensors"));
    origin_run(c, fx("origin_d"));
  });
  // --output an existing FIFO: refused, never opened
  add("data", "output_fifo", ERR, {"out.safetensors"}, [](Ctx& c) {
    make_fifo(c.p("out.safetensors"));
    origin_run(c, fx("origin_d"));
  });
  // --output an existing socket
  add("data", "output_socket", ERR, {"out.sock"}, [](Ctx& c) {
    in_dir(c.dir, [] { make_socket("out.sock"); });
    origin_run(c, fx("origin_d"));
    c.args.back() = c.p("out.sock");
  });
  // --output a symlink to a regular file: the target is written atomically, the link stays
  auto& link_case = add("data", "output_symlink_to_regular_file", OK, {}, [](Ctx& c) {
    write_file(c.p("target.safetensors"), "old contents\n");
    make_symlink("target.safetensors", c.p("out.safetensors"));
    origin_run(c, fx("origin_d"));
  });
  link_case.out = Out::Safetensors;
  link_case.post = [](Ctx& c, const RunResult&) -> std::string {
    const Entry e = describe(c.p("out.safetensors"));
    if (e.type != 'l' || e.link != "target.safetensors") return "the --output symlink was replaced instead of written through";
    if (describe(c.p("target.safetensors")).type != 'f' || read_file(c.p("target.safetensors")) == "old contents\n")
      return "the symlink's target was not written";
    return "";
  };
  // a failed run keeps an existing --output as it was
  add("data", "failed_run_keeps_output", ERR, {"inputs.safetensors"}, [](Ctx& c) {
    write_file(c.p("out.safetensors"), "keep me\n");
    copy_file(fx("sample_ode/inputs.safetensors"), c.p("inputs.safetensors"));  // no 'x': run fails
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // a run refused for a bad option keeps an existing --output
  add("data", "usage_error_keeps_output", USAGE, {"--threads"}, [](Ctx& c) {
    write_file(c.p("out.safetensors"), "keep me\n");
    origin_run(c, fx("origin_d"));
    c.args.insert(c.args.end(), {"--threads", "zero"});
  });
}

void add_silent() {
  // duplicate tensor name in the inputs header (was: the last wins, the first never validated)
  add("silent", "dup_tensor_inputs", ERR, {"'mu'|\"mu\"|`mu`"}, [](Ctx& c) {
    const std::uint64_t b = buffer_size(fx(kOriginInputs));
    write_file(c.p("inputs.safetensors"),
               st_with(fx(kOriginInputs), st_entry("mu", "F32", "[2,16,24]", b, b + 4 * 768), f32_bytes(768)));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // a bad first entry for 'x' hidden by a later valid one
  add("silent", "dup_tensor_invalid_first", ERR, {"'x'|\"x\"|`x`"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"), st_with(fx(kOriginInputs), "", "", st_entry("x", "F99", "[-1]", 0, 1)));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // the same entry twice, byte for byte
  add("silent", "dup_tensor_identical", ERR, {"'t'|\"t\"|`t`"}, [](Ctx& c) {
    const StParts p = st_read(fx(kOriginInputs));
    const auto& t = p.header["t"];
    const std::string raw = st_entry("t", t["dtype"].get<std::string>(), t["shape"].dump(), t["data_offsets"][0].get<std::uint64_t>(),
                                     t["data_offsets"][1].get<std::uint64_t>());
    write_file(c.p("inputs.safetensors"), st_with(fx(kOriginInputs), raw, ""));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // duplicate tensor name in the weights
  add("silent", "dup_tensor_weights", ERR, {"final_conv.weight"}, [](Ctx& c) {
    const std::string w = fx("origin_d/model.safetensors");
    const std::uint64_t b = buffer_size(w);
    const std::string weights = st_with(w, st_entry("final_conv.weight", "F32", "[1,32,1,1]", b, b + 128), f32_bytes(32));
    origin_run(c, origin_model(c, "model", "", &weights));
  });
  // duplicate tensor name in a similarity reference
  add("silent", "dup_tensor_reference", ERR, {"'out'|\"out\"|`out`"}, [](Ctx& c) {
    write_file(c.p("cand.safetensors"), mel_file(4, 10));
    write_file(c.p("ref.safetensors"),
               st_pack("{" + st_entry("out", "F32", "[4,10]", 0, 160) + "," + st_entry("out", "F32", "[4,10]", 160, 320) + "}",
                       f32_bytes(80)));
    sim_args(c, c.p("ref.safetensors"), c.p("cand.safetensors"), "4,6");
  });
  // duplicate key inside __metadata__
  add("silent", "dup_metadata_key", ERR, {"format_note"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"),
               st_with(fx(kOriginInputs), "", "", "\"__metadata__\":{\"format_note\":\"a\",\"format_note\":\"b\"}"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // two __metadata__ blocks
  add("silent", "dup_metadata_block", ERR, {"__metadata__"}, [](Ctx& c) {
    write_file(c.p("inputs.safetensors"),
               st_with(fx(kOriginInputs), "\"__metadata__\":{\"b\":\"2\"}", "", "\"__metadata__\":{\"a\":\"1\"}"));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // a tensor entry with "dtype" twice
  add("silent", "dup_field_in_entry", ERR, {"dtype"}, [](Ctx& c) {
    const std::uint64_t b = buffer_size(fx(kOriginInputs));
    write_file(c.p("inputs.safetensors"),
               st_with(fx(kOriginInputs),
                       "\"extra\":{\"dtype\":\"I64\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" + std::to_string(b) + "," +
                           std::to_string(b + 4) + "]}",
                       f32_bytes(1)));
    run_args(c, fx("origin_d"), c.p("inputs.safetensors"), c.p("out.safetensors"));
  });
  // config.json with "dim" twice (same value)
  add("silent", "dup_key_config_same_value", ERR, {"'dim'|\"dim\"|`dim`"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", origin_cfg({}, ",\"dim\":32")));
  });
  // config.json with "n_feats" twice (different values)
  add("silent", "dup_key_config_other_value", ERR, {"n_feats"}, [](Ctx& c) {
    origin_run(c, origin_model(c, "model", origin_cfg({}, ",\"n_feats\":80")));
  });
  // a diffusers config.json with "in_channels" twice
  add("silent", "dup_key_diffusers_config", ERR, {"in_channels"}, [](Ctx& c) {
    diff_run(c, diff_model(c, "model", diff_cfg({}, ",\"in_channels\":2")));
  });
  // the embedded config of a single-file model with "groups" twice
  add("silent", "dup_key_embedded_config", ERR, {"groups"}, [](Ctx& c) {
    StParts p = st_read(fx("origin_e.safetensors"));
    p.header["__metadata__"]["config"] =
        config_text_with(p.header["__metadata__"]["config"].get<std::string>(), {}, ",\"groups\": 8");
    write_file(c.p("model.safetensors"), st_pack(p.header.dump(), p.data));
    run_args(c, c.p("model.safetensors"), fx("origin_e_inputs.safetensors"), c.p("out.safetensors"));
  });
  // a scheduler config with num_train_timesteps twice
  add("silent", "dup_key_scheduler", ERR, {"num_train_timesteps"}, [](Ctx& c) {
    write_file(c.p("sched.json"), "{\"num_train_timesteps\": 10, \"num_train_timesteps\": 1000}");
    diff_sample_sched(c, c.p("sched.json"));
  });
  // a scheduler config with a misspelt key (was: silently ignored)
  add("silent", "unknown_key_scheduler_typo", ERR, {"num_train_timestep"}, [](Ctx& c) {
    write_file(c.p("sched.json"), "{\"num_train_timestep\": 1000}");
    diff_sample_sched(c, c.p("sched.json"));
  });
  // a scheduler config with an unknown nested option
  add("silent", "unknown_key_scheduler_nested", ERR, {"extra_option"}, [](Ctx& c) {
    write_file(c.p("sched.json"), "{\"beta_schedule\": \"linear\", \"extra_option\": {\"x\": 1}}");
    diff_sample_sched(c, c.p("sched.json"));
  });
}

/// The parameter bytes of a model's weights as float32 (the sum of the tensors' element counts
/// x 4), from the weights file's header.
std::uint64_t param_bytes(const std::string& weights) {
  const StParts p = st_read(weights);
  std::uint64_t n = 0;
  for (auto it = p.header.begin(); it != p.header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    std::uint64_t e = 1;
    for (const auto& d : it.value()["shape"]) e *= d.get<std::uint64_t>();
    n += e;
  }
  return 4 * n;
}

/// Peak RSS of loading a model: at most the parameter bytes + 10 % + a small constant (10 MiB:
/// the process itself, the header, the config) — the bound for a bounded loader.
long load_bound_mb(const std::string& weights) {
  return static_cast<long>((param_bytes(weights) * 11 / 10) >> 20) + 10;
}

void add_loadrss() {
  // info on the demo decoder (7.6M parameters, BF16 on disk): loading stays within params x 1.1 + 10 MiB
  add("loadrss", "info_demo_model", OK, {}, [](Ctx& c) {
    info_args(c, demo("demo_model"));
    c.rss_mb = load_bound_mb(demo("demo_model/model.safetensors"));
  }).out = Out::Info;
  // info on origin_b (7.7M parameters, F32 on disk)
  add("loadrss", "info_origin_b", OK, {}, [](Ctx& c) {
    info_args(c, fx("origin_b"));
    c.rss_mb = load_bound_mb(fx("origin_b/model.safetensors"));
  }).out = Out::Info;
  // info on a single-file copy of origin_b's weights and config
  add("loadrss", "info_single_file_origin_b", OK, {}, [](Ctx& c) {
    StParts p = st_read(fx("origin_b/model.safetensors"));
    p.header["__metadata__"] = {{"config", read_file(fx("origin_b/config.json"))}};
    write_file(c.p("model.safetensors"), st_pack(p.header.dump(), p.data));
    info_args(c, c.p("model.safetensors"));
    c.rss_mb = load_bound_mb(c.p("model.safetensors"));
  }).out = Out::Info;
}

/// The command under an address-space limit (RLIMIT_AS): allocations fail as on a machine out
/// of memory. ASan reserves terabytes of address space, so these cases cannot run under it.
void limit_address_space(Ctx& c, long mb) {
  c.as_limit_mb = mb;
  if (opt.sanitized) c.skip = "RLIMIT_AS cannot be used under AddressSanitizer";
}

void add_oom() {
  const std::vector<std::string> named{"bytes|thread"};
  // --version in 16 MB of address space: the CLI starts without mapping GPU libraries (~680 MB
  // of address space when it linked cuBLAS); the budgets below leave the CLI itself < 8 MB
  add("oom", "version_as_16m", OK, {}, [](Ctx& c) {
    c.args = {"--version"};
    limit_address_space(c, 16);
  });
  // run origin_b (7.7M parameters) in 30 MB of address space: fails naming the allocation and its size
  add("oom", "run_origin_b_as_30m", ERR, named, [](Ctx& c) {
    run_args(c, fx("origin_b"), fx("origin_b/inputs.safetensors"), c.p("out.safetensors"));
    c.args.insert(c.args.end(), {"--threads", "2"});
    limit_address_space(c, 30);
  });
  // the same in 40 MB (the parameters fit, little else)
  add("oom", "run_origin_b_as_40m", ERR, named, [](Ctx& c) {
    run_args(c, fx("origin_b"), fx("origin_b/inputs.safetensors"), c.p("out.safetensors"));
    c.args.insert(c.args.end(), {"--threads", "2"});
    limit_address_space(c, 40);
  });
  // the same in 45 MB (without --threads 2 the pool's thread stacks are what fails here)
  add("oom", "run_origin_b_as_45m", ERR, named, [](Ctx& c) {
    run_args(c, fx("origin_b"), fx("origin_b/inputs.safetensors"), c.p("out.safetensors"));
    c.args.insert(c.args.end(), {"--threads", "2"});
    limit_address_space(c, 45);
  });
  // info on the demo decoder in 30 MB (was: std::bad_alloc)
  add("oom", "info_demo_as_30m", ERR, named, [](Ctx& c) {
    info_args(c, demo("demo_model"));
    limit_address_space(c, 30);
  });
  // worker threads that cannot get their stacks (1 GiB stacks in 300 MB): an error naming the
  // threads, or the work done on fewer threads (was: "Resource temporarily unavailable")
  add("oom", "threads_cannot_start_run", OK_OR_ERR, {"thread"}, [](Ctx& c) {
    origin_run(c, fx("origin_d"));
    c.args.insert(c.args.end(), {"--threads", "2"});
    c.stack_limit_mb = 1024;
    limit_address_space(c, 300);
  }).out = Out::Safetensors;
  // the same for sample
  add("oom", "threads_cannot_start_sample", OK_OR_ERR, {"thread"}, [](Ctx& c) {
    c.args = {"sample", "--model", fx("sample_ode"), "--inputs", fx("sample_ode/inputs.safetensors"), "--output",
              c.p("out.safetensors"), "--steps", "2"};
    c.output = c.p("out.safetensors");
    c.stack_limit_mb = 1024;
    limit_address_space(c, 300);
  }).out = Out::Safetensors;
  // sample on the demo decoder in 100 MB: fails inside the sampler, naming the allocation (the
  // model loads in less; the sampler needs ~140 MB since the 3x3 Winograd planes of its large
  // kernels are made per call: 150 MB was enough then)
  add("oom", "sample_demo_as_100m", ERR, named, [](Ctx& c) {
    c.args = {"sample", "--model", demo("demo_model"), "--inputs", demo("demo_inputs.safetensors"), "--output",
              c.p("mel.safetensors"), "--steps", "2", "--threads", "2"};
    limit_address_space(c, 100);
  });
}

/// Mels and a durations file for a similarity whose JSON is ~13 MB (30000 one-frame phonemes,
/// within the 64 KiB cap on --phonemes, and 16 candidates), so that writing it takes long
/// enough to be interrupted.
void big_similarity(Ctx& c) {
  const std::size_t frames = 30000;
  write_file(c.p("ref.safetensors"), mel_file(2, frames, 0.25f));
  std::string cands;
  for (int i = 0; i < 16; ++i) {
    const std::string p = c.p("c" + std::to_string(i) + ".safetensors");
    write_file(p, mel_file(2, frames, 0.3f + 0.01f * i));
    cands += (i ? "," : "") + p;
  }
  write_file(c.p("durations.txt"), repeat("1\n", frames));
  std::string phonemes = repeat("a ", frames);
  phonemes.pop_back();
  sim_args(c, c.p("ref.safetensors"), cands, c.p("durations.txt"), phonemes);
}

/// Sends `sig` to the command as soon as a new file appears in the scratch dir (its temporary
/// output), watched with inotify.
void signal_on_new_file(Ctx& c, int sig) {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0 || ::inotify_add_watch(fd, c.dir.c_str(), IN_CREATE) < 0) throw SetupError("inotify");
  c.fds.push_back(fd);
  auto sent = std::make_shared<bool>(false);
  c.during = [fd, sig, sent](pid_t pid, double) {
    if (*sent) return;
    alignas(inotify_event) char buf[4096];
    if (::read(fd, buf, sizeof buf) > 0) {
      ::kill(pid, sig);
      *sent = true;
    }
  };
}

/// Sends `sig` once the command printed its first sampling step (or after 10 s).
void signal_after_first_step(Ctx& c, int sig) {
  auto sent = std::make_shared<bool>(false);
  auto last = std::make_shared<double>(0);
  const std::string err = c.stderr_path;
  c.during = [err, sig, sent, last](pid_t pid, double t) {
    if (*sent || t - *last < 0.02) return;
    *last = t;
    std::ifstream in(err);
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().find("step 1/") != std::string::npos || t > 10) {
      ::kill(pid, sig);
      *sent = true;
    }
  };
}

void add_signal() {
  // SIGTERM while a long sample runs: no output, no temporary, exit 1 or death by SIGTERM
  auto& a = add("signal", "sigterm_during_sample", {1, 128 + SIGTERM}, {}, [](Ctx& c) {
    c.args = {"sample", "--model", demo("demo_model"), "--inputs", demo("demo_inputs.safetensors"), "--output",
              c.p("mel.safetensors"), "--steps", "100000"};
    signal_after_first_step(c, SIGTERM);
  });
  a.signal_ok = SIGTERM;
  a.rss_mb = 1024;
  a.timeout_s = 60;
  // SIGINT while a long sample runs, an older output in place: it stays as it was
  auto& b = add("signal", "sigint_during_sample_keeps_output", {1, 128 + SIGINT}, {}, [](Ctx& c) {
    write_file(c.p("mel.safetensors"), "keep me\n");
    c.args = {"sample", "--model", demo("demo_model"), "--inputs", demo("demo_inputs.safetensors"), "--output",
              c.p("mel.safetensors"), "--steps", "100000"};
    signal_after_first_step(c, SIGINT);
  });
  b.signal_ok = SIGINT;
  b.rss_mb = 1024;
  b.timeout_s = 60;
  // SIGTERM the moment the temporary output appears (killed between write and rename): it is removed
  auto& d = add("signal", "sigterm_while_writing", {1, 128 + SIGTERM}, {}, [](Ctx& c) {
    big_similarity(c);
    signal_on_new_file(c, SIGTERM);
  });
  d.signal_ok = SIGTERM;
  d.rss_mb = 1024;
  d.retries = 4;
  d.timeout_s = 60;
  // SIGINT the moment the temporary output appears, an older output in place: it stays
  auto& e = add("signal", "sigint_while_writing_keeps_output", {1, 128 + SIGINT}, {}, [](Ctx& c) {
    big_similarity(c);
    write_file(c.p("sim.json"), "keep me\n");
    signal_on_new_file(c, SIGINT);
  });
  e.signal_ok = SIGINT;
  e.rss_mb = 1024;
  e.retries = 4;
  e.timeout_s = 60;
}

// ---- self-tests: the harness notices each kind of failure ------------------------------------

struct SelfTest {
  std::string name, script, must_report;
  std::set<int> exits;
  std::vector<std::string> needles;
  Out out = Out::None;
  long rss_mb = 0;
  double timeout_s = 0;
  std::function<void(Ctx&)> setup;
};

SelfTest self_test(std::string name, std::string script, std::string must_report, std::set<int> exits,
                   std::vector<std::string> needles, Out out = Out::None, long rss_mb = 0, double timeout_s = 0,
                   std::function<void(Ctx&)> setup = {}) {
  SelfTest t;
  t.name = std::move(name);
  t.script = std::move(script);
  t.must_report = std::move(must_report);
  t.exits = std::move(exits);
  t.needles = std::move(needles);
  t.out = out;
  t.rss_mb = rss_mb;
  t.timeout_s = timeout_s;
  t.setup = std::move(setup);
  return t;
}

std::vector<SelfTest> self_tests() {
  const std::string e = "printf 'diffblocks: error: ";
  return {
      // death by a signal
      self_test("signal_is_failure", "kill -SEGV $$", "killed by signal", {1}, {}),
      // no exit within the timeout
      self_test("hang_is_failure", "sleep 30", "hang", {1}, {}, Out::None, 0, 0.5),
      // peak RSS above the bound
      self_test("rss_bound", "dd if=/dev/zero of=/dev/null bs=120M count=1 2>/dev/null; " + e + "x\\n' >&2; exit 1", "peak RSS",
                {1}, {"x"}, Out::None, 40),
      // RSS above the watchdog's cap: killed
      self_test("rss_watchdog", "exec dd if=/dev/zero of=/dev/null bs=700M count=4", "RSS runaway", {1}, {},
                Out::None, 40),
      // two lines on stderr
      self_test("two_lines", e + "a\\nb\\n' >&2; exit 1", "lines", {1}, {"a"}),
      // a raw ESC
      self_test("raw_escape", e + "\\033[31mX\\n' >&2; exit 1", "control", {1}, {"X"}),
      // a raw right-to-left override
      self_test("raw_bidi", e + "\\342\\200\\256X\\n' >&2; exit 1", "bidi", {1}, {"X"}),
      // a raw C1 CSI
      self_test("raw_c1", e + "\\302\\233X\\n' >&2; exit 1", "C1", {1}, {"X"}),
      // a message that names nothing the case expects
      self_test("needle_missing", e + "something\\n' >&2; exit 1", "does not name", {1}, {"config.json"}),
      // exit 1 where a usage error (2) is expected
      self_test("wrong_exit", e + "usage\\n' >&2; exit 1", "exit 1", {2}, {"usage"}),
      // the runtime's own words instead of a message
      self_test("runtime_words", e + "std::bad_alloc\\n' >&2; exit 1", "runtime", {1}, {"bad_alloc"}),
      // a sanitizer report
      self_test("sanitizer_text", e + "x\\n==1==ERROR: AddressSanitizer: stack-overflow\\n' >&2; exit 1", "sanitizer", {1}, {"x"}),
      // an input modified
      self_test("input_changed", "echo more >> in.txt; " + e + "in.txt\\n' >&2; exit 1", "changed", {1}, {"in.txt"}, Out::None,
                0, 0, [](Ctx& c) { write_file(c.p("in.txt"), "data\n"); }),
      // a temporary file left behind
      self_test("temporary_left", ": > out.safetensors.tmp123; " + e + "out\\n' >&2; exit 1", "left behind", {1}, {"out"}),
      // success without an output file
      self_test("success_without_output", "exit 0", "no output", {0}, {}, Out::Safetensors),
      // success with a malformed output file
      self_test("success_bad_output", "echo garbage > out.safetensors; exit 0", "not a safetensors", {0}, {}, Out::Safetensors),
  };
}

// ---- running and checking one case -----------------------------------------------------------

const std::vector<std::string> kRuntimeWords{"bad_alloc", "max_size()", "_M_", "basic_string::", "stoll", "type_error",
                                             "what():", "vector::"};

std::string absolute(const Ctx& c, const std::string& p) {
  if (p.empty()) return p;
  return fs::path(p).is_absolute() ? fs::path(p).lexically_normal().string() : (fs::path(c.dir) / p).lexically_normal().string();
}

std::string check_output(const Ctx& c, Out kind, const RunResult& r) {
  if (kind == Out::Info) return r.out.find("parameters:") == std::string::npos ? "info printed no 'parameters:' line" : "";
  if (kind == Out::None) return "";
  const std::string path = absolute(c, c.output);
  struct stat st{};
  if (path.empty() || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return "exit 0 but no output file at --output";
  const std::string bytes = read_file(path);
  if (kind == Out::Json)
    return bytes.find("\"format\": \"diffblocks-similarity\"") != std::string::npos && bytes.size() > 2 &&
                   bytes.substr(bytes.size() - 2) == "}\n"
               ? ""
               : "the output is not a complete similarity JSON";
  std::uint64_t n = 0;
  for (int i = 0; i < 8 && i < int(bytes.size()); ++i) n |= std::uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (bytes.size() < 10 || n > bytes.size() - 8 || bytes[8] != '{' || bytes.substr(8, n).find("\"out\"") == std::string::npos)
    return "the output is not a safetensors file with tensor 'out'";
  return "";
}

struct Verdict {
  std::vector<std::string> problems;
  RunResult r;
  bool skipped = false;
  std::string skip;
};

/// Runs one case (the CLI, or /bin/sh for a self-test) and applies every check.
Verdict execute(const std::string& klass, const std::string& name, const std::function<void(Ctx&)>& setup,
                const std::set<int>& exits, const std::vector<std::string>& needles, const std::vector<std::string>& forbid,
                Out out, long rss_mb, double timeout_s, int signal_ok,
                const std::function<std::string(Ctx&, const RunResult&)>& post, const std::string& exe) {
  Verdict v;
  Ctx c;
  c.dir = opt.work + "/" + klass + "/" + name;
  const std::string logs = opt.work + "/" + klass + "/_logs";
  std::error_code ec;
  fs::remove_all(c.dir, ec);
  fs::create_directories(c.dir);
  fs::create_directories(logs);
  c.exe = exe;
  c.stderr_path = logs + "/" + name + ".stderr";
  try {
    setup(c);
  } catch (const std::exception& e) {
    v.problems.push_back(std::string("setup failed: ") + e.what());
    return v;
  }
  if (!c.skip.empty()) {
    v.skipped = true;
    v.skip = c.skip;
    return v;
  }
  // Inputs from the source tree (fixtures) are watched too; /dev, /proc are not files of ours.
  for (const auto& a : c.args)
    if (a.rfind(opt.src + "/", 0) == 0 && describe(a).type != '?') c.watch.push_back(a);
  Snapshot before, after;
  snapshot(c.dir, before);
  for (const auto& w : c.watch) snapshot(w, before);

  const long bound_mb = c.rss_mb && !opt.sanitized ? c.rss_mb : rss_mb ? rss_mb : opt.rss_mb;
  RunLimits lim;
  lim.timeout_s = timeout_s > 0 ? timeout_s : opt.timeout_s;
  lim.rss_cap_kb = std::min(4 * bound_mb, bound_mb + 1024) * 1024;  // the watchdog: 4x, at most +1 GiB
  lim.cwd = c.dir;
  lim.stdout_path = logs + "/" + name + ".stdout";
  lim.stderr_path = c.stderr_path;
  if (c.during) lim.poll_us = 200;
  lim.as_limit_kb = c.as_limit_mb * 1024;
  lim.stack_limit_kb = c.stack_limit_mb * 1024;
  std::vector<std::string> argv{c.exe.empty() ? opt.cli : c.exe};
  argv.insert(argv.end(), c.args.begin(), c.args.end());
  v.r = run_command(argv, lim, c.during);
  for (int fd : c.fds) ::close(fd);
  const RunResult& r = v.r;
  auto& P = v.problems;

  if (r.hung) P.push_back("hang: killed after " + std::to_string(int(lim.timeout_s)) + " s");
  if (r.runaway)
    P.push_back("RSS runaway: killed above " + std::to_string(lim.rss_cap_kb / 1024) + " MB (bound " + std::to_string(bound_mb) + " MB)");
  const bool by_allowed_signal = signal_ok && r.signaled() && WTERMSIG(r.status) == signal_ok;
  if (!r.hung && !r.runaway && r.signaled() && !by_allowed_signal)
    P.push_back("killed by signal " + std::to_string(WTERMSIG(r.status)) + " (" + strsignal(WTERMSIG(r.status)) + ")");
  const bool exited = r.exited();
  const int code = r.code();
  if (exited && code == 86) P.push_back("sanitizer report (exit 86)");
  if (exited && !exits.count(code)) {
    std::string want;
    for (int e : exits) want += (want.empty() ? "" : " or ") + std::to_string(e);
    P.push_back("exit " + std::to_string(code) + ", expected " + want);
  }
  if (has_sanitizer_report(r.err)) P.push_back("sanitizer report on stderr");
  if (exited && code != 0 && !signal_ok) {
    const std::string line = one_line_problem(r.err);
    if (!line.empty()) P.push_back("not one line: " + line);
    if (r.err.rfind("diffblocks: ", 0) != 0) P.push_back("stderr does not start with 'diffblocks: '");
    for (const auto& n : needles)
      if (!contains_any(r.err, n)) P.push_back("the message does not name '" + printable(n) + "'");
    for (const auto& f : kRuntimeWords)
      if (r.err.find(f) != std::string::npos) P.push_back("the message shows the runtime's words '" + f + "'");
    for (const auto& f : forbid)
      if (r.err.find(f) != std::string::npos) P.push_back("the message says '" + f + "'");
  }
  if (exited && code == 0) {
    const std::string o = check_output(c, out, r);
    if (!o.empty()) P.push_back(o);
  }
  if (r.maxrss_kb > bound_mb * 1024 && !r.runaway)
    P.push_back("peak RSS " + std::to_string(r.maxrss_kb / 1024) + " MB > bound " + std::to_string(bound_mb) + " MB");

  // Inputs unchanged, nothing left behind; on success only the output (or a symlink's target) changes.
  snapshot(c.dir, after);
  for (const auto& w : c.watch) snapshot(w, after);
  std::set<std::string> allowed;
  if (exited && code == 0 && !c.output.empty()) {
    const std::string o = absolute(c, c.output);
    allowed.insert(o);
    const Entry link = describe(o);  // a symlink as --output: its target is written
    if (link.type == 'l') allowed.insert((fs::path(o).parent_path() / link.link).lexically_normal().string());
    const auto real = fs::weakly_canonical(o, ec);
    if (!ec) allowed.insert(real.string());
  }
  for (const auto& ch : changes(before, after, allowed)) P.push_back(ch);
  if (post) {
    const std::string p = post(c, r);
    if (!p.empty()) P.push_back(p);
  }
  if (P.empty() && !opt.keep) fs::remove_all(c.dir, ec);
  return v;
}

std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return printable(nl == std::string::npos ? s : s.substr(0, nl), 200);
}

struct Tally {
  int pass = 0, fail = 0, skip = 0;
};

bool selected(const std::string& klass, const std::string& name) {
  if (!opt.classes.empty() && !opt.classes.count(klass)) return false;
  return opt.filter.empty() || (klass + "/" + name).find(opt.filter) != std::string::npos;
}

void report(const std::string& id, const Verdict& v, std::map<std::string, Tally>& tally, const std::string& klass,
            const std::string& note = "") {
  if (v.skipped) {
    ++tally[klass].skip;
    std::printf("SKIP  %s: %s\n", id.c_str(), v.skip.c_str());
  } else if (v.problems.empty()) {
    ++tally[klass].pass;
    std::printf("PASS  %s (%.2f s, %ld MB)%s\n", id.c_str(), v.r.secs, v.r.maxrss_kb / 1024, note.c_str());
    if (opt.verbose) std::printf("      exit %d, stderr: %s\n", v.r.code(), first_line(v.r.err).c_str());
  } else {
    ++tally[klass].fail;
    std::string why;
    for (const auto& p : v.problems) why += (why.empty() ? "" : "; ") + p;
    std::printf("FAIL  %s: %s\n      exit %s, %.2f s, %ld MB, stderr: %s\n", id.c_str(), why.c_str(),
                v.r.signaled() ? ("signal " + std::to_string(WTERMSIG(v.r.status))).c_str()
                               : std::to_string(v.r.code()).c_str(),
                v.r.secs, v.r.maxrss_kb / 1024, first_line(v.r.err).c_str());
  }
  std::fflush(stdout);
}

int usage_error(const std::string& what) {
  std::fprintf(stderr, "diffblocks_hostile: %s\nusage: diffblocks_hostile --cli PATH --src DIR --work DIR [--class A,B] "
                       "[--filter TEXT] [--rss-mb N] [--timeout S] [--sanitized] [--list] [--keep] [--verbose]\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* e = std::getenv("DIFFBLOCKS_HOSTILE_RSS_MB")) opt.rss_mb = std::atol(e);
  if (const char* e = std::getenv("DIFFBLOCKS_HOSTILE_TIMEOUT")) opt.timeout_s = std::atof(e);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--cli") opt.cli = value();
      else if (a == "--src") opt.src = value();
      else if (a == "--work") opt.work = value();
      else if (a == "--filter") opt.filter = value();
      else if (a == "--rss-mb") opt.rss_mb = std::stol(value());
      else if (a == "--timeout") opt.timeout_s = std::stod(value());
      else if (a == "--list") opt.list = true;
      else if (a == "--keep") opt.keep = true;
      else if (a == "--verbose") opt.verbose = true;
      else if (a == "--sanitized") opt.sanitized = true;
      else if (a == "--class") {
        std::stringstream ss(value());
        for (std::string k; std::getline(ss, k, ',');) opt.classes.insert(k);
      } else return usage_error("unknown argument " + a);
    } catch (const std::exception& e) {
      return usage_error(e.what());
    }
  }
  if (opt.src.empty() || opt.work.empty() || (opt.cli.empty() && !opt.list)) return usage_error("--cli, --src and --work are required");
  auto clean = [](const std::string& p) {
    std::string s = fs::absolute(p).lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
  };
  opt.src = clean(opt.src);
  opt.work = clean(opt.work);
  if (!opt.cli.empty()) opt.cli = fs::absolute(opt.cli).string();
  ::signal(SIGPIPE, SIG_IGN);
  // Big setup buffers (fixtures read whole) go to mmap and back to the system when freed, so
  // that a forked command does not inherit them in its RSS (see run_command).
  ::mallopt(M_MMAP_THRESHOLD, 256 * 1024);

  add_baseline();
  add_deep();
  add_hang();
  add_unbounded();
  add_alloc();
  add_message();
  add_usage();
  add_oneline();
  add_data();
  add_silent();
  add_loadrss();
  add_oom();
  add_signal();

  const auto tests = self_tests();
  if (opt.list) {
    for (const auto& t : tests) std::printf("selftest/%s\n", t.name.c_str());
    for (const auto& c : cases) std::printf("%s/%s\n", c.klass.c_str(), c.name.c_str());
    return 0;
  }
  std::map<std::string, Tally> tally;
  const auto start = std::chrono::steady_clock::now();
  // The harness first proves it notices each kind of failure (a /bin/sh script breaking a rule).
  for (const auto& t : tests) {
    if (!selected("selftest", t.name)) continue;
    const std::string script = t.script;
    auto setup = [&t, script](Ctx& c) {
      if (t.setup) t.setup(c);
      c.args = {"-c", script};
      c.output = "out.safetensors";
    };
    Verdict v = execute("selftest", t.name, setup, t.exits, t.needles, {}, t.out, t.rss_mb, t.timeout_s, 0, {}, "/bin/sh");
    const bool noticed = std::any_of(v.problems.begin(), v.problems.end(),
                                     [&](const std::string& p) { return p.find(t.must_report) != std::string::npos; });
    Verdict shown = v;
    shown.problems.clear();
    if (!noticed) {
      std::string got;
      for (const auto& p : v.problems) got += (got.empty() ? "" : "; ") + p;
      shown.problems.push_back("the harness did not report '" + t.must_report + "' (it reported: " + (got.empty() ? "nothing" : got) + ")");
    }
    report("selftest/" + t.name, shown, tally, "selftest");
  }
  for (const auto& cs : cases) {
    if (!selected(cs.klass, cs.name)) continue;
    const std::string id = cs.klass + "/" + cs.name;
    Verdict v;
    std::string note;
    for (int attempt = 0;; ++attempt) {
      v = execute(cs.klass, cs.name, cs.setup, cs.exits, cs.needles, cs.forbid, cs.out, cs.rss_mb, cs.timeout_s, cs.signal_ok,
                  cs.post, "");
      // A signal case whose command finished before the signal arrived did not test anything: again.
      const bool raced = cs.signal_ok && v.problems.size() == 1 && v.r.exited() && v.r.code() == 0;
      if (!raced) break;
      if (attempt >= cs.retries) {
        v.problems = {"the command always finished before the signal arrived (" + std::to_string(attempt + 1) + " tries)"};
        break;
      }
      note = " (after " + std::to_string(attempt + 1) + " lost races)";
    }
    report(id, v, tally, cs.klass, note);
  }
  Tally total;
  std::printf("\nclass         pass  fail  skip\n");
  for (const auto& kv : tally) {
    std::printf("%-12s %5d %5d %5d\n", kv.first.c_str(), kv.second.pass, kv.second.fail, kv.second.skip);
    total.pass += kv.second.pass;
    total.fail += kv.second.fail;
    total.skip += kv.second.skip;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  rusage self{};
  ::getrusage(RUSAGE_SELF, &self);
  std::printf("hostile corpus: %d cases, %d passed, %d failed, %d skipped in %.1f s (RSS bound %ld MB, timeout %.0f s; "
              "the driver's own peak RSS %ld MB)\n",
              total.pass + total.fail + total.skip, total.pass, total.fail, total.skip, secs, opt.rss_mb, opt.timeout_s,
              self.ru_maxrss / 1024);
  if (total.fail == 0 && total.pass == 0 && total.skip > 0) return 77;  // all skipped: ctest's SKIP_RETURN_CODE
  return total.fail == 0 && total.pass > 0 ? 0 : 1;
}
