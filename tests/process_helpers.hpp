#pragma once
// Process-level helpers for tests that run programs or steer them through the environment
// (test_cli.cpp, test_runtime.cpp).
#include <cstdio>
#include <cstdlib>
#include <string>

namespace dbt {

/// Sets an environment variable for one scope (child processes inherit it), then unsets it.
struct ScopedEnv {
  std::string name;
  ScopedEnv(const std::string& n, const std::string& value) : name(n) { ::setenv(n.c_str(), value.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
};

/// What `command` (shell syntax) prints on stdout and stderr.
inline std::string command_output(const std::string& command) {
  std::string out;
  if (FILE* p = ::popen((command + " 2>&1").c_str(), "r")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

}  // namespace dbt
