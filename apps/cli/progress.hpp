#pragma once
// What `run` and `sample` print while and after they work: per-step progress (a bar redrawn in
// place when stderr is a terminal, one plain line per step otherwise, so logs stay greppable)
// and a timings summary with the real-time factor, in the manner of whisper.cpp's timings.
// Pure formatting, no I/O decisions beyond the FILE* given: tests/test_cli.cpp checks the text.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

namespace diffblocks_cli {

enum class ProgressMode { Bar, Lines, None };

/// --progress's value: "auto" (a bar on a terminal, lines otherwise), "bar", "lines" or "none".
/// Returns false for any other value.
inline bool parse_progress_mode(const std::string& s, bool stderr_is_terminal, ProgressMode& mode) {
  if (s == "auto") mode = stderr_is_terminal ? ProgressMode::Bar : ProgressMode::Lines;
  else if (s == "bar") mode = ProgressMode::Bar;
  else if (s == "lines") mode = ProgressMode::Lines;
  else if (s == "none") mode = ProgressMode::None;
  else return false;
  return true;
}

inline std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 10 ? "%.3f s" : (s < 100 ? "%.2f s" : "%.1f s"), s);
  return buf;
}

/// "[########............]  4/10  0.181 s/step  ETA 1.09 s" (the remaining steps at the mean
/// step time so far).
inline std::string progress_bar(int step, int steps, double elapsed, int width = 24) {
  steps = std::max(steps, 1);
  step = std::min(std::max(step, 0), steps);
  const int filled = static_cast<int>(static_cast<long long>(width) * step / steps);
  const double per_step = step > 0 ? elapsed / step : 0.0;
  std::string line = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
  // "step/steps" right-aligned in the width of "steps/steps", so the bar does not shift.
  const std::string count = std::to_string(step) + "/" + std::to_string(steps);
  line += std::string(2 * std::to_string(steps).size() + 1 - count.size(), ' ') + count;
  char buf[96];
  std::snprintf(buf, sizeof buf, "  %.3f s/step  ETA %s", per_step, format_seconds(per_step * (steps - step)).c_str());
  return line + buf;
}

/// Reports each step as it ends and remembers the times.
class StepProgress {
 public:
  StepProgress(ProgressMode mode, std::FILE* out) : mode_(mode), out_(out) {}

  void step(int step, int steps, double seconds) {
    total_ += seconds;
    if (step == 1) first_ = seconds;
    ++count_;
    if (mode_ == ProgressMode::Lines) {
      std::fprintf(out_, "step %d/%d: %.3f s\n", step, steps, seconds);
    } else if (mode_ == ProgressMode::Bar) {
      // \r and erase-to-end-of-line: the bar is redrawn in place; a newline once it is full.
      std::fprintf(out_, "\r%s\033[K%s", progress_bar(step, steps, total_).c_str(), step == steps ? "\n" : "");
      bar_open_ = step != steps;
    }
    std::fflush(out_);
  }

  /// Ends an unfinished bar's line (a failed run), so the error starts a line of its own.
  void close() {
    if (bar_open_) std::fputc('\n', out_);
    bar_open_ = false;
  }

  double total() const { return total_; }
  double first() const { return first_; }
  int count() const { return count_; }

 private:
  ProgressMode mode_;
  std::FILE* out_;
  double total_ = 0, first_ = 0;
  int count_ = 0;
  bool bar_open_ = false;
};

/// The audio a mel stands for: frames x hop_length / sample_rate (Grad-TTS: 256 at 22 050 Hz).
struct AudioClock {
  long long hop_length = 256;
  long long sample_rate = 22050;
};

/// What the summary reports. `compute` is the forward pass or the whole sampling run; `steps`
/// is 1 for a forward pass.
struct Timings {
  std::string task;  // "forward" or "sample"
  double load = 0, inputs = 0, compute = 0, write = 0;
  int steps = 1;
  double first_step = 0;  // sample: the first step (it allocates what later steps reuse)
  std::int64_t batch = 1, frames = 0;  // the output's batch and last axis (frames per item)
  AudioClock clock;
};

/// Audio seconds of the whole batch (padded frames count: the model computes them too).
inline double audio_seconds(const Timings& t) {
  return static_cast<double>(t.batch) * static_cast<double>(t.frames) * static_cast<double>(t.clock.hop_length) /
         static_cast<double>(t.clock.sample_rate);
}

/// The summary, several lines, each ending in '\n'.
inline std::string timings_text(const Timings& t) {
  char buf[256];
  std::string s = "timings:\n";
  auto row = [&](const char* what, double secs, const std::string& note) {
    std::snprintf(buf, sizeof buf, "  %-8s %10s%s%s\n", what, format_seconds(secs).c_str(), note.empty() ? "" : "  ",
                  note.c_str());
    s += buf;
  };
  row("load", t.load, "");
  row("inputs", t.inputs, "");
  std::string note;
  if (t.task == "sample") {
    std::snprintf(buf, sizeof buf, "(%d steps, %.3f s/step, first %.3f s)", t.steps, t.compute / std::max(t.steps, 1),
                  t.first_step);
    note = buf;
  }
  row(t.task.c_str(), t.compute, note);
  row("write", t.write, "");
  row("total", t.load + t.inputs + t.compute + t.write, "");
  const double audio = audio_seconds(t);
  if (audio > 0) {
    std::snprintf(buf, sizeof buf,
                  "real-time factor %.3f: %s %.2f s of audio (%lld x %lld frames, hop %lld at %lld Hz) in %s\n",
                  t.compute / audio, t.task == "sample" ? "sampled" : "one forward pass over", audio,
                  static_cast<long long>(t.batch), static_cast<long long>(t.frames), t.clock.hop_length,
                  t.clock.sample_rate, format_seconds(t.compute).c_str());
    s += buf;
  }
  return s;
}

}  // namespace diffblocks_cli
