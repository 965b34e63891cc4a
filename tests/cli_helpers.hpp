#pragma once
// Running the diffblocks CLI from a test (test_cli.cpp, test_eval.cpp): its status, stdout and
// stderr, and the DESIGN.md error contract (one line on stderr, exit 1 or 2 for a usage error,
// nothing at --output).
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.hpp"

#ifdef DIFFBLOCKS_CLI
namespace dbt {

struct CliResult {
  int status;
  std::string out, err;
};

/// Runs the CLI with `args` (shell syntax); a run longer than `timeout_s` is killed and reports
/// status 124, so that a hang fails the test instead of stopping the suite.
inline CliResult cli(const std::string& args, int timeout_s = 900) {
  // Unique capture files: ctest runs test cases in parallel processes.
  static int calls = 0;
  const std::string tag = std::to_string(::getpid()) + "_" + std::to_string(calls++);
  const std::string out = tmp_path("cli_stdout_" + tag + ".txt"), err = tmp_path("cli_stderr_" + tag + ".txt");
  const std::string cmd = "timeout -k 5 " + std::to_string(timeout_s) + " '" + std::string(DIFFBLOCKS_CLI) + "' " + args +
                          " >'" + out + "' 2>'" + err + "' </dev/null";
  const int raw = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  CliResult r{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
  std::remove(out.c_str());
  std::remove(err.c_str());
  return r;
}

inline bool exists(const std::string& p) { return std::ifstream(p).good(); }

/// A copy of a fixture's float inputs with `edit` applied, written to the test's tmp dir.
inline std::string rewrite_inputs(const std::string& fixture_file, const std::string& name,
                                  const std::function<void(std::vector<db::TensorToWrite>&)>& edit) {
  auto ts = read_all(db::SafeTensors::load(fixture(fixture_file)));
  edit(ts);
  const std::string path = tmp_path(name);
  db::save_safetensors(path, ts);
  return path;
}

/// The error contract: exit `status` (1 runtime error, 2 usage error), exactly one line on stderr
/// holding `needle`, nothing at `output`.
inline void require_cli_status(int status, const std::string& args, const std::string& needle,
                               const std::string& output = "") {
  if (!output.empty()) std::remove(output.c_str());
  const auto r = cli(args, 120);
  INFO("args: " << args << "\nstderr: " << r.err);
  REQUIRE(r.status == status);
  REQUIRE(r.err.rfind("diffblocks: error: ", 0) == 0);
  REQUIRE(r.err.find('\n') == r.err.size() - 1);  // exactly one line
  REQUIRE(r.err.find(needle) != std::string::npos);
  if (!output.empty()) REQUIRE_FALSE(exists(output));
}

inline void require_cli_error(const std::string& args, const std::string& needle, const std::string& output = "") {
  require_cli_status(1, args, needle, output);
}

inline void require_cli_usage_error(const std::string& args, const std::string& needle, const std::string& output = "") {
  require_cli_status(2, args, needle, output);
}

}  // namespace dbt
#endif
