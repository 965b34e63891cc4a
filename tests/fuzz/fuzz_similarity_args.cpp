// libFuzzer target: the text parsers of `diffblocks similarity` (apps/cli/similarity_args.hpp,
// the very code the CLI runs) and, when they succeed, the per-phoneme similarity they feed.
//
// The input is up to six fields separated by NUL bytes:
//   --durations value \0 durations file text \0 --labels value \0 --candidates value \0
//   --phonemes value \0 --metric value
// A --durations value that is not an inline list names a file; its text is the second field
// (parsed as the CLI parses a file's text, without touching the disk). When the options parse,
// phoneme_similarity runs on small deterministic mels (T = the durations' sum when it is in
// [1, 4096], else a few frames, so that the mismatch errors are reached too) and its report is
// rendered as the CLI's JSON. Contract: a diffblocks::Error or success, nothing else.
#include <string>
#include <vector>

#include "../../apps/cli/similarity_args.hpp"
#include "fuzz_common.hpp"

// DBFUZZ_ENTRY renames the entry point so that the tests can include several targets.
#ifndef DBFUZZ_ENTRY
#define DBFUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

extern "C" int DBFUZZ_ENTRY(const std::uint8_t* data, std::size_t size) {
  namespace db = diffblocks;
  namespace cli = diffblocks_cli;
  std::vector<std::string> field(6);
  std::size_t f = 0;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && f + 1 < field.size()) ++f;
    else field[f] += static_cast<char>(data[i]);
  }
  const std::string& durations_arg = field[0];
  try {
    const auto candidates = cli::comma_list("candidates", field[3].empty() ? "a.safetensors" : field[3]);
    std::vector<std::string> labels;
    if (!field[2].empty()) {
      labels = cli::comma_list("labels", field[2]);
    } else {
      for (const auto& p : candidates) labels.push_back(cli::file_stem(p));
    }
    const auto phonemes = cli::phoneme_list(field[4]);
    const bool inline_list = cli::is_inline_durations(durations_arg);
    const auto durations = inline_list ? cli::parse_durations(durations_arg, "--durations", true, durations_arg)
                                       : cli::parse_durations(field[1], "fuzz/durations.txt", false, durations_arg);
    const auto metric = db::eval::parse_metric(field[5].empty() ? "cosine" : field[5]);
    if (candidates.size() > 8 || labels.size() > 8) return 0;  // the parsers were the point

    std::int64_t sum = 0;
    bool overflow = false;
    for (const auto d : durations) overflow = overflow || __builtin_add_overflow(sum, d, &sum);
    const std::size_t frames = !overflow && sum >= 1 && sum <= 4096 ? static_cast<std::size_t>(sum) : 1 + size % 7;
    const std::size_t n_feats = 1 + size % 3;
    auto mel = [&](std::size_t seed) {
      auto m = db::Tensor<float, 2>::from_shape({n_feats, frames});
      for (std::size_t i = 0; i < m.size(); ++i)
        m.data()[i] = static_cast<float>((i * 2654435761u + seed * 97u) % 1000) / 500.0f - 1.0f;
      return m;
    };
    std::vector<db::Tensor<float, 2>> mels;
    for (std::size_t c = 0; c < candidates.size(); ++c) mels.push_back(mel(c + 1));
    const auto report = db::eval::phoneme_similarity(mel(0), mels, labels, phonemes, durations, metric);
    const auto j = db::eval::to_json(report, "fuzz", "", "ref.safetensors", candidates);
    volatile std::size_t n = cli::report_json_text(j).size();
    (void)n;
  } catch (const db::Error& e) {
    dbfuzz::format_error(e);
  }
  return 0;
}
