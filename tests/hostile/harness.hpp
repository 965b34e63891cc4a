#pragma once
// The hostile-input corpus's machinery (tests/hostile/hostile_cli.cpp holds the cases): scratch
// files (sparse files, FIFOs, sockets, device nodes, links, deep JSON, raw safetensors), running
// the CLI under a wall-clock timeout and an RSS watchdog, and the checks every case gets:
// expected exit status and never a signal, one escaped line on stderr naming what is at fault,
// inputs unchanged, nothing left behind, peak RSS within a bound.
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace hostile {

namespace fs = std::filesystem;

/// A case's inputs could not be prepared (a bug in the corpus, not in the CLI).
struct SetupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- files -----------------------------------------------------------------------------------

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SetupError("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw SetupError("cannot write " + path);
}

inline void copy_file(const std::string& from, const std::string& to) { write_file(to, read_file(from)); }

/// A sparse file of `size` bytes that starts with `prefix` (takes no disk space beyond it).
inline void make_sparse(const std::string& path, std::uint64_t size, const std::string& prefix = "") {
  write_file(path, prefix);
  if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) throw SetupError("truncate " + path + ": " + std::strerror(errno));
}

inline void make_fifo(const std::string& path) {
  if (::mkfifo(path.c_str(), 0644) != 0) throw SetupError("mkfifo " + path + ": " + std::strerror(errno));
}

inline void make_symlink(const std::string& target, const std::string& path) {
  if (::symlink(target.c_str(), path.c_str()) != 0) throw SetupError("symlink " + path + ": " + std::strerror(errno));
}

inline void make_hardlink(const std::string& target, const std::string& path) {
  if (::link(target.c_str(), path.c_str()) != 0) throw SetupError("link " + path + ": " + std::strerror(errno));
}

inline void make_dir(const std::string& path) { fs::create_directories(path); }

/// A listening-less UNIX socket file at `path` (the socket is closed, the file stays).
inline void make_socket(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof(a.sun_path)) throw SetupError("socket path too long: " + path);
  std::strcpy(a.sun_path, path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    throw SetupError("socket " + path + ": " + std::strerror(errno));
  ::close(fd);
}

/// A character device node (major, minor); false where the sandbox forbids mknod.
inline bool make_char_device(const std::string& path, unsigned major, unsigned minor) {
  return ::mknod(path.c_str(), S_IFCHR | 0644, makedev(major, minor)) == 0;
}

inline std::string basename_of(const std::string& p) {
  const auto s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

inline std::string repeat(const std::string& s, std::size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

/// [[[...0...]]] `levels` deep.
inline std::string deep_array(std::size_t levels) { return std::string(levels, '[') + "0" + std::string(levels, ']'); }
/// {"a":{"a":...0}} `levels` deep.
inline std::string deep_object(std::size_t levels) { return repeat("{\"a\":", levels) + "0" + std::string(levels, '}'); }
/// [{"a":[{"a":...0}]}] alternating arrays and objects, `levels` deep in all.
inline std::string deep_mixed(std::size_t levels) {
  std::string open, close;
  for (std::size_t i = 0; i < levels; ++i) {
    open += i % 2 ? "{\"a\":" : "[";
    close += i % 2 ? "}" : "]";
  }
  std::reverse(close.begin(), close.end());
  return open + "0" + close;
}

// ---- safetensors -----------------------------------------------------------------------------

inline std::string le64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

/// A safetensors file from a raw header text (any bytes: duplicates, escapes, deep values).
inline std::string st_pack(std::string header, const std::string& data) {
  while ((header.size() + 8) % 8 != 0) header += ' ';
  return le64(header.size()) + header + data;
}

inline std::string f32_bytes(std::size_t n, float first = 0.25f, float step = 0.125f) {
  std::string s(n * 4, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    const float v = first + step * static_cast<float>(i % 13);
    std::memcpy(&s[4 * i], &v, 4);
  }
  return s;
}

/// A raw header entry: `"NAME":{"dtype":...,"shape":SHAPE,"data_offsets":[B,E]}`; NAME is JSON
/// string content (escapes allowed), SHAPE raw JSON.
inline std::string st_entry(const std::string& name, const std::string& dtype, const std::string& shape, std::uint64_t b,
                            std::uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(b) +
         "," + std::to_string(e) + "]}";
}

/// An existing safetensors file's header (order kept) and data buffer.
struct StParts {
  nlohmann::ordered_json header;
  std::string data;
};

inline StParts st_read(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 8) throw SetupError("not a safetensors file: " + path);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  StParts p;
  p.header = nlohmann::ordered_json::parse(bytes.substr(8, n));
  p.data = bytes.substr(8 + n);
  return p;
}

/// `path`'s tensors plus raw header entries (`raw` is inserted before the header's closing
/// brace, after a comma; `raw_first` right after its opening brace) and extra data appended to
/// the buffer (new entries' offsets start at buffer_size(path)).
inline std::string st_with(const std::string& path, const std::string& raw, const std::string& extra_data,
                           const std::string& raw_first = "") {
  const StParts p = st_read(path);
  std::string h = p.header.dump();
  if (!raw.empty()) h = h.substr(0, h.size() - 1) + "," + raw + "}";
  if (!raw_first.empty()) h = "{" + raw_first + "," + h.substr(1);
  return st_pack(h, p.data + extra_data);
}

inline std::uint64_t buffer_size(const std::string& path) { return st_read(path).data.size(); }

/// A mel file: tensor "out" F32 (n_feats, frames), deterministic values.
inline std::string mel_file(std::size_t n_feats, std::size_t frames, float first = 0.25f) {
  const std::size_t n = n_feats * frames;
  return st_pack("{" + st_entry("out", "F32", "[" + std::to_string(n_feats) + "," + std::to_string(frames) + "]", 0, 4 * n) + "}",
                 f32_bytes(n, first));
}

// ---- configs ---------------------------------------------------------------------------------

/// A config.json text: the fixture's keys in order, `set` values (raw JSON) replacing or
/// appended, then `raw_tail` (e.g. `,"dim":32` for a duplicate key) before the closing brace.
inline std::string config_text_with(const std::string& config_text,
                                    const std::vector<std::pair<std::string, std::string>>& set, const std::string& raw_tail = "") {
  const auto j = nlohmann::ordered_json::parse(config_text);
  std::string out = "{";
  std::set<std::string> used;
  auto emit = [&](const std::string& k, const std::string& v) {
    if (out.size() > 1) out += ",";
    out += nlohmann::json(k).dump() + ":" + v;
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    auto s = std::find_if(set.begin(), set.end(), [&](const auto& kv) { return kv.first == it.key(); });
    if (s != set.end()) {
      emit(it.key(), s->second);
      used.insert(it.key());
    } else {
      emit(it.key(), it.value().dump());
    }
  }
  for (const auto& kv : set)
    if (!used.count(kv.first)) emit(kv.first, kv.second);
  return out + raw_tail + "}";
}

inline std::string config_with(const std::string& fixture_config, const std::vector<std::pair<std::string, std::string>>& set,
                               const std::string& raw_tail = "") {
  return config_text_with(read_file(fixture_config), set, raw_tail);
}

// ---- the state of a scratch tree -------------------------------------------------------------

struct Entry {
  char type = '?';  // f regular, d directory, l symlink, p FIFO, s socket, c/b device, ? other
  std::uint64_t size = 0, ino = 0, hash = 0;
  std::int64_t mtime_ns = 0;
  std::string link;
  std::uint64_t rdev = 0;
  bool operator==(const Entry& o) const {
    return type == o.type && size == o.size && ino == o.ino && hash == o.hash && mtime_ns == o.mtime_ns && link == o.link &&
           rdev == o.rdev;
  }
  bool operator!=(const Entry& o) const { return !(*this == o); }
};
using Snapshot = std::map<std::string, Entry>;

/// FNV-1a of a regular file's bytes (files up to 256 MiB; bigger ones, the corpus's sparse
/// files, are compared by size, inode and mtime).
inline std::uint64_t hash_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  std::uint64_t h = 1469598103934665603ull;
  std::vector<unsigned char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) h = (h ^ buf[i]) * 1099511628211ull;
  }
  ::close(fd);
  return h;
}

inline Entry describe(const std::string& path) {
  Entry e;
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return e;
  switch (st.st_mode & S_IFMT) {
    case S_IFREG: e.type = 'f'; break;
    case S_IFDIR: e.type = 'd'; break;
    case S_IFLNK: e.type = 'l'; break;
    case S_IFIFO: e.type = 'p'; break;
    case S_IFSOCK: e.type = 's'; break;
    case S_IFCHR: e.type = 'c'; break;
    case S_IFBLK: e.type = 'b'; break;
    default: e.type = '?';
  }
  e.ino = st.st_ino;
  e.rdev = st.st_rdev;
  if (e.type == 'f') {
    e.size = static_cast<std::uint64_t>(st.st_size);
    e.mtime_ns = std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    if (e.size <= (std::uint64_t{256} << 20)) e.hash = hash_file(path);
  } else if (e.type == 'l') {
    std::vector<char> buf(4096);
    const ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n > 0) e.link.assign(buf.data(), static_cast<std::size_t>(n));
  }
  return e;
}

/// Everything under `path` (symlinks not followed).
inline void snapshot(const std::string& path, Snapshot& s, int depth = 0) {
  const Entry e = describe(path);
  s[path] = e;
  if (e.type != 'd' || depth > 6) return;
  DIR* d = ::opendir(path.c_str());
  if (!d) return;
  while (const dirent* de = ::readdir(d)) {
    const std::string n = de->d_name;
    if (n == "." || n == "..") continue;
    snapshot(path + "/" + n, s, depth + 1);
  }
  ::closedir(d);
}

/// Printable form of a path or message for the report (control bytes as \xNN).
inline std::string printable(const std::string& s, std::size_t max = 160) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max) return out + "...";
    if (c < 0x20 || c == 0x7f || c >= 0x80) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

/// What changed between two snapshots, except under `allowed` paths.
inline std::vector<std::string> changes(const Snapshot& before, const Snapshot& after, const std::set<std::string>& allowed) {
  std::vector<std::string> out;
  auto is_allowed = [&](const std::string& p) { return allowed.count(p) != 0; };
  for (const auto& kv : after) {
    if (is_allowed(kv.first)) continue;
    const auto it = before.find(kv.first);
    if (it == before.end()) out.push_back("left behind: " + printable(kv.first));
    else if (it->second != kv.second) {
      if (kv.second.type == 'd' && it->second.type == 'd') continue;  // a directory's mtime: its entries are compared
      out.push_back("changed: " + printable(kv.first) + (it->second.type != kv.second.type
                                                              ? std::string(" (was type ") + it->second.type + ", now " + kv.second.type + ")"
                                                              : ""));
    }
  }
  for (const auto& kv : before)
    if (!after.count(kv.first) && !is_allowed(kv.first)) out.push_back("removed: " + printable(kv.first));
  return out;
}

// ---- running one command ---------------------------------------------------------------------

struct RunLimits {
  double timeout_s = 20;
  long rss_cap_kb = 0;   // the watchdog kills the process group above this (0: no watchdog)
  int poll_us = 2000;
  long as_limit_kb = 0;     // RLIMIT_AS of the command (0: none)
  long stack_limit_kb = 0;  // RLIMIT_STACK of the command (0: as ours); new threads' default stack size
  std::string cwd;
  std::string stdout_path, stderr_path;
};

struct RunResult {
  bool hung = false, runaway = false;
  int status = 0;
  long maxrss_kb = 0, polled_rss_kb = 0;
  double secs = 0;
  std::string out, err;
  bool exited() const { return !hung && !runaway && WIFEXITED(status); }
  int code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
  bool signaled() const { return WIFSIGNALED(status); }
};

inline long rss_kb_of(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
  FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  long size = 0, resident = 0;
  const int n = std::fscanf(f, "%ld %ld", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * (::sysconf(_SC_PAGESIZE) / 1024) : 0;
}

/// The environment of the command: ours, with sanitizer reports turned into exit status 86 (an
/// ASan/UBSan/LSan report never passes for the CLI's own exit 1).
inline std::vector<std::string> child_environment() {
  std::vector<std::string> env;
  std::map<std::string, std::string> extra{{"ASAN_OPTIONS", "exitcode=86"}, {"UBSAN_OPTIONS", "exitcode=86"},
                                           {"LSAN_OPTIONS", "exitcode=86"}};
  for (char** e = environ; *e; ++e) {
    std::string s = *e;
    const auto eq = s.find('=');
    const std::string k = s.substr(0, eq);
    auto it = extra.find(k);
    if (it != extra.end()) {
      s += (s.size() > eq + 1 ? ":" : "") + it->second;
      extra.erase(it);
    }
    env.push_back(s);
  }
  for (const auto& kv : extra) env.push_back(kv.first + "=" + kv.second);
  return env;
}

/// Runs argv[0] with `args` in limits.cwd: stdin /dev/null, stdout and stderr to files, its own
/// process group (killed as a whole on timeout or RSS runaway), no core dumps, files up to
/// 1 GiB. `during(pid, elapsed)` is called at every poll while it runs.
inline RunResult run_command(const std::vector<std::string>& argv, const RunLimits& limits,
                             const std::function<void(pid_t, double)>& during = {}) {
  RunResult r;
  std::vector<std::string> env = child_environment();
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  // The child's ru_maxrss also counts what it inherited from us before exec (Linux records the
  // old mm's high-water mark at exec): hand freed memory back first, so that only our small
  // live set adds to the command's own peak.
  ::malloc_trim(0);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) throw SetupError(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) ::signal(s, SIG_DFL);
    rlimit core{0, 0};
    ::setrlimit(RLIMIT_CORE, &core);
    rlimit fsize{rlim_t{1} << 30, rlim_t{1} << 30};
    ::setrlimit(RLIMIT_FSIZE, &fsize);
    if (limits.stack_limit_kb > 0) {
      const rlim_t st = static_cast<rlim_t>(limits.stack_limit_kb) * 1024;
      rlimit lim{st, st};
      ::setrlimit(RLIMIT_STACK, &lim);
    }
    if (limits.as_limit_kb > 0) {
      const rlim_t as = static_cast<rlim_t>(limits.as_limit_kb) * 1024;
      rlimit lim{as, as};
      ::setrlimit(RLIMIT_AS, &lim);
    }
    if (!limits.cwd.empty() && ::chdir(limits.cwd.c_str()) != 0) ::_exit(125);
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(limits.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(limits.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) ::_exit(125);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  rusage ru{};
  for (int polls = 0;; ++polls) {
    int st = 0;
    const pid_t w = ::wait4(pid, &st, WNOHANG, &ru);
    if (w == pid) {
      r.status = st;
      break;
    }
    const double t = elapsed();
    const long rss = rss_kb_of(pid);
    r.polled_rss_kb = std::max(r.polled_rss_kb, rss);
    const bool over_time = t > limits.timeout_s, over_rss = limits.rss_cap_kb > 0 && rss > limits.rss_cap_kb;
    if (over_time || over_rss) {
      ::kill(-pid, SIGKILL);
      ::wait4(pid, &st, 0, &ru);
      r.status = st;
      r.hung = over_time;
      r.runaway = over_rss;
      break;
    }
    if (during) during(pid, t);
    ::usleep(polls < 50 ? 500 : limits.poll_us);
  }
  ::kill(-pid, SIGKILL);  // anything the command left running in its group
  r.secs = elapsed();
  r.maxrss_kb = ru.ru_maxrss;
  auto slurp = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(limits.stdout_path);
  r.err = slurp(limits.stderr_path);
  return r;
}

// ---- message checks --------------------------------------------------------------------------

/// Why `err` is not one escaped line: a raw control byte (C0, DEL), a C1 control (U+0080..9F,
/// which terminals may take for CSI), a bidi override or isolate (U+202A..202E, U+2066..2069),
/// or more than one line. Empty when it is fine.
inline std::string one_line_problem(const std::string& err) {
  if (err.empty()) return "stderr is empty";
  if (err.back() != '\n') return "stderr does not end with a newline";
  const auto nl = err.find('\n');
  if (nl != err.size() - 1) return "stderr has " + std::to_string(std::count(err.begin(), err.end(), '\n')) + " lines";
  for (std::size_t i = 0; i + 1 < err.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(err[i]);
    if (c < 0x20 || c == 0x7f) return "raw control byte \\x" + [&] { char b[4]; std::snprintf(b, 4, "%02x", c); return std::string(b); }() +
                                      " at offset " + std::to_string(i);
    if (c == 0xc2 && i + 1 < err.size()) {
      const unsigned char d = static_cast<unsigned char>(err[i + 1]);
      if (d >= 0x80 && d <= 0x9f) return "raw C1 control U+00" + [&] { char b[4]; std::snprintf(b, 4, "%02X", d); return std::string(b); }();
    }
    if (c == 0xe2 && i + 2 < err.size()) {
      const unsigned char d = static_cast<unsigned char>(err[i + 1]), e = static_cast<unsigned char>(err[i + 2]);
      if ((d == 0x80 && e >= 0xaa && e <= 0xae) || (d == 0x81 && e >= 0xa6 && e <= 0xa9)) return "raw bidi control character";
    }
  }
  return "";
}

/// `needle` is a '|'-separated list of alternatives; true when one occurs in `text`.
inline bool contains_any(const std::string& text, const std::string& needle) {
  std::size_t b = 0;
  for (;;) {
    const auto e = needle.find('|', b);
    const std::string alt = needle.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (!alt.empty() && text.find(alt) != std::string::npos) return true;
    if (e == std::string::npos) return false;
    b = e + 1;
  }
}

inline bool has_sanitizer_report(const std::string& s) {
  return s.find("AddressSanitizer") != std::string::npos || s.find("LeakSanitizer") != std::string::npos ||
         s.find("runtime error:") != std::string::npos || s.find("UndefinedBehaviorSanitizer") != std::string::npos;
}

}  // namespace hostile
