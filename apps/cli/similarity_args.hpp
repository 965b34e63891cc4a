#pragma once
// The text parsers of `diffblocks similarity`'s options: comma lists (--candidates, --labels),
// --phonemes, --durations (inline "5,7,3" or a text file), the default label of a candidate, and
// the text of the JSON report the command writes.
// Shared by the CLI (main.cpp) and the fuzz target tests/fuzz/fuzz_similarity_args.cpp, so the
// fuzzer exercises exactly the CLI's parsing.
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "diffblocks/diffblocks.hpp"

namespace diffblocks_cli {

namespace db = diffblocks;

/// A bad command line (unknown or conflicting option, missing value, malformed option value).
struct UsageError : db::Error {
  using db::Error::Error;
};

/// Splits on any of `seps`; empty pieces are kept so that "a,,b" can be reported.
inline std::vector<std::string> split(const std::string& s, const char* seps) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (std::strchr(seps, c)) out.emplace_back();
    else out.back() += c;
  }
  return out;
}

inline std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

/// `s` as a whole integer (no sign-only, no trailing text, in long long's range) into `v`.
inline bool parse_integer(const std::string& s, long long& v) {
  std::size_t used = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    return false;
  }
  return !s.empty() && used == s.size();
}

/// The value of option --`option` as a comma list; an empty entry ("a,,b") is an error, not
/// silently dropped.
inline std::vector<std::string> comma_list(const std::string& option, const std::string& value) {
  std::vector<std::string> v;
  for (const auto& p : split(value, ",")) {
    v.push_back(trim(p));
    if (v.back().empty()) throw UsageError("--" + option + " has an empty entry in '" + value + "'");
  }
  return v;
}

/// --phonemes: space-separated symbols (runs of whitespace are one separator).
inline std::vector<std::string> phoneme_list(const std::string& value) {
  std::vector<std::string> phonemes;
  for (const auto& p : split(value, " \t\r\n"))
    if (!p.empty()) phonemes.push_back(p);
  return phonemes;
}

/// Whether a --durations value is an inline list (only digits, signs, commas and spaces) rather
/// than the path of a file.
inline bool is_inline_durations(const std::string& arg) {
  return !arg.empty() && arg.find_first_not_of("0123456789+-, \t") == std::string::npos;
}

/// Parses durations: `text` is the inline list (`inline_list`) or a file's contents; `where`
/// names it in errors ("--durations" or the file's path), `arg` is the option's value.
inline std::vector<std::int64_t> parse_durations(const std::string& text, const std::string& where, bool inline_list,
                                                 const std::string& arg) {
  std::vector<std::int64_t> d;
  for (const auto& raw : split(text, inline_list ? "," : ", \t\r\n")) {
    const std::string tok = trim(raw);
    if (tok.empty()) {
      if (inline_list) throw UsageError("--durations has an empty entry in '" + arg + "'");
      continue;  // runs of whitespace and the trailing newline of a file
    }
    long long v = 0;
    if (!parse_integer(tok, v)) throw db::InputError(where + ": duration '" + tok + "' is not an integer");
    d.push_back(v);
  }
  if (d.empty()) throw db::InputError(where + ": no durations");
  return d;
}

/// --durations: inline "5,7,3" when the value holds only digits, signs, commas and spaces,
/// otherwise the path of a text file of integers separated by whitespace or commas.
inline std::vector<std::int64_t> read_durations(const std::string& arg) {
  const bool inline_list = is_inline_durations(arg);
  std::string text = arg, where = "--durations";
  if (!inline_list) {
    text = db::read_text_file(arg, "durations file");
    where = arg;
  }
  return parse_durations(text, where, inline_list, arg);
}

/// The default label of a candidate: its file name without directory and extension.
inline std::string file_stem(const std::string& path) {
  const auto slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const auto dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

/// The report as the JSON text `similarity` writes. Labels and paths are the user's bytes:
/// anything that is not UTF-8 becomes U+FFFD in the JSON.
inline std::string report_json_text(const nlohmann::ordered_json& j) {
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace diffblocks_cli
