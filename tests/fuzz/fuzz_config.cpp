// libFuzzer target: config.json text through the JSON front end, both U-Net config parsers (each
// tried whatever _class_name says, for coverage), model construction for small configs, the
// diffusers scheduler config parser, and everything that prints a config value: the errors that
// quote one (class_name, from_json's range and type checks) and what `diffblocks info` prints.
//
// Deep nesting (issue #14: a value ~90k levels deep parsed fine but overflowed the stack when it
// was printed): the two-byte tokens "@[" and "@{" in the input expand to a value nested
// dbfuzz::kDeepLevels deep ([[[...0...]]] and {"a":{"a":...0}}), so the fuzzer can put such a
// value under any key (_class_name, dim_mults, dual_cross_attention, num_train_timesteps, _note)
// with a few bytes; config.dict holds the tokens. Plain "[[[[" runs reach shallower depths.
#include <memory>
#include <string>

#include "fuzz_common.hpp"

// DBFUZZ_ENTRY renames the entry point so that the tests can include several targets.
#ifndef DBFUZZ_ENTRY
#define DBFUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

extern "C" int DBFUZZ_ENTRY(const std::uint8_t* data, std::size_t size) {
  namespace db = diffblocks;
  db::ModelFile file;
  file.config_origin = "fuzz/config.json";
  try {
    file.config = db::parse_config_text(dbfuzz::expand_deep(data, size), file.config_origin);
  } catch (const db::Error& e) {
    dbfuzz::format_error(e);
    return 0;
  }
  try {
    dbfuzz::build_model(file, /*load=*/false);
  } catch (const db::Error& e) {
    dbfuzz::format_error(e);
  }
  try {
    (void)db::OriginConfig::from_json(file.config, file.config_origin);
  } catch (const db::Error& e) {
    dbfuzz::format_error(e);
  }
  try {
    (void)db::DiffuserConfig::from_json(file.config, file.config_origin);
  } catch (const db::Error& e) {
    dbfuzz::format_error(e);
  }
  // What `diffblocks info` prints of the config (its class, then the config itself).
  try {
    dbfuzz::info_config_text(file);
  } catch (const db::Error& e) {
    dbfuzz::format_error(e);
  }
  // Schedulers: parse, then a short schedule stepped on a 2x2 sample, which reaches every
  // timestep and sigma lookup the config can steer (offsets, spacings, schedules).
  const int steps = 1 + static_cast<int>(size % 12);
  for (const char* kind : {"ddpm", "ddim", "euler"}) {
    try {
      const auto cfg = db::SchedulerConfig::from_json(file.config, kind, file.config_origin);
      std::unique_ptr<db::Scheduler<float>> s;
      if (kind[0] == 'e') s = std::make_unique<db::EulerDiscreteScheduler<float>>(cfg);
      else if (kind[2] == 'p') s = std::make_unique<db::DDPMScheduler<float>>(cfg);
      else s = std::make_unique<db::DDIMScheduler<float>>(cfg);
      s->set_timesteps(steps);
      db::Rng rng(0);
      auto x = db::Tensor<float, 4>::from_shape({1, 1, 2, 2});
      x.fill(0.5f);
      for (double t : s->timesteps()) x = s->step(s->scale_model_input(x, t), t, x, rng);
    } catch (const db::Error& e) {
      dbfuzz::format_error(e);
    }
  }
  return 0;
}
