#pragma once
// A persistent pool of worker threads for the CPU device; each CPU context (cpu_context.hpp)
// owns one. parallel_for (parallel.hpp) splits a range into contiguous pieces (a few per thread) that the calling thread
// and the workers claim one at a time. A call made while the pool is busy (another thread's
// model, or a nested call from a worker) runs serially instead of waiting, so concurrent models
// never deadlock.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <string>
#include <utility>
#include <vector>

namespace diffblocks {

class ThreadPool {
 public:
  /// `on_worker_start` runs first on every worker thread (the owning context installs itself
  /// there, so a nested parallel_for from a worker stays on this pool).
  explicit ThreadPool(int threads, std::function<void()> on_worker_start = {})
      : on_worker_start_(std::move(on_worker_start)) {
    resize(threads);
  }
  ~ThreadPool() { stop_workers(); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  /// Asks for `threads` threads (the caller counts as one). A worker the system refuses to start
  /// (no memory for its stack, a process limit) is not an error: the pool runs with the workers
  /// it got, size() says how many, and start_failure() says why the others are missing.
  void resize(int threads) {
    std::lock_guard<std::mutex> busy(dispatch_);
    stop_workers();
    threads = std::max(1, threads);
    stop_ = false;
    start_failure_.clear();
    for (int i = 1; i < threads; ++i) {
      try {
        workers_.emplace_back([this] { worker_loop(); });
      } catch (const std::exception& e) {  // std::system_error (EAGAIN), std::bad_alloc
        start_failure_ = "could start only " + std::to_string(i) + " of " + std::to_string(threads) +
                         " threads (" + e.what() + ")";
        break;
      }
    }
  }

  /// Why the last resize() got fewer threads than asked for ("" if it got them all).
  const std::string& start_failure() const { return start_failure_; }

  /// Runs f(begin, end) over contiguous pieces of [0, n) that cover it exactly once, on the
  /// calling thread and the workers.
  ///
  /// The range is cut into up to kPiecesPerThread pieces per thread, and threads claim pieces
  /// one at a time, so a thread the OS descheduled (a shared or virtual machine) leaves its share
  /// to the others instead of holding everyone at the end of the call. The caller waits for
  /// every piece to complete, not for every worker to wake: a late worker finds nothing left.
  void run(std::ptrdiff_t n, const std::function<void(std::ptrdiff_t, std::ptrdiff_t)>& f) {
    if (n <= 0) return;
    std::unique_lock<std::mutex> busy(dispatch_, std::try_to_lock);
    const std::ptrdiff_t pieces = std::min<std::ptrdiff_t>(n, std::ptrdiff_t{size()} * kPiecesPerThread);
    if (!busy.owns_lock() || size() == 1 || pieces <= 1) {
      f(0, n);
      return;
    }
    task_ = &f;
    n_ = n;
    completed_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    {
      std::lock_guard<std::mutex> lk(m_);
      // Publishing the claim state (a new generation, `pieces` pieces, none claimed) releases
      // the fields above to whoever claims a piece.
      generation_ = (generation_ + 1) & kGenMask;
      claim_.store(pack(generation_, static_cast<std::uint64_t>(pieces), 0), std::memory_order_release);
    }
    cv_.notify_all();
    work();
    spin_while([&] { return completed_.load(std::memory_order_acquire) != pieces; });
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [&] { return completed_.load(std::memory_order_acquire) == pieces; });
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static constexpr int kPiecesPerThread = 4;
  // claim_ = generation (24 bits) | pieces (20) | next unclaimed piece (20). A thread claims a
  // piece by a compare-exchange on the whole word, so the claim succeeds only while that call
  // is current: a worker that read the state of an earlier call cannot take a piece of a later
  // one, and never reads a call's fields before it owns one of its pieces.
  static constexpr int kCountBits = 20;
  static constexpr std::uint64_t kCountMask = (std::uint64_t{1} << kCountBits) - 1;
  static constexpr std::uint64_t kGenMask = (std::uint64_t{1} << 24) - 1;
  static std::uint64_t pack(std::uint64_t gen, std::uint64_t pieces, std::uint64_t next) {
    return (gen << (2 * kCountBits)) | (pieces << kCountBits) | next;
  }
  static std::uint64_t generation_of(std::uint64_t s) { return s >> (2 * kCountBits); }

  /// Claims and runs pieces of the current call until none is left.
  void work() {
    std::uint64_t s = claim_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint64_t next = s & kCountMask, pieces = (s >> kCountBits) & kCountMask;
      if (next >= pieces) return;
      if (!claim_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      // The piece is ours and not complete, so its call is still waiting: task_ and n_ are its.
      const std::ptrdiff_t p = static_cast<std::ptrdiff_t>(next), np = static_cast<std::ptrdiff_t>(pieces);
      const std::ptrdiff_t b = n_ * p / np, e = n_ * (p + 1) / np;
      try {
        if (b < e) (*task_)(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
      }
      if (completed_.fetch_add(1, std::memory_order_acq_rel) + 1 == np) {
        std::lock_guard<std::mutex> lk(m_);
        done_cv_.notify_one();
      }
      s = claim_.load(std::memory_order_acquire);
    }
  }

  // Waits are spun before blocking: a forward issues hundreds of parallel_for calls back to
  // back, with serial work between some of them, and waking a sleeping thread through the kernel
  // costs tens of microseconds on a VM, during which the caller's half of the work is done and
  // it waits (measured: the main thread idle ~20 % of an Origin forward at T = 128). Polling
  // for up to a millisecond bridges those gaps; a pool idle for longer sleeps. The limit is
  // time, not a count of pauses, because a pause takes ~10 cycles on some CPUs and ~140 on
  // others (a count of 2000 spun for ~10-150 us; at T = 128 on Sapphire Rapids that was 10 %
  // slower than 1 ms).
  template <class Busy>
  static void spin_while(Busy busy) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    for (int i = 1; busy(); ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#else
      std::this_thread::yield();
#endif
      if (i % 64 == 0 && std::chrono::steady_clock::now() >= until) return;
    }
  }
  static constexpr int kSpinMicros = 1000;

  void worker_loop() {
    if (on_worker_start_) on_worker_start_();
    std::uint64_t seen = generation_of(claim_.load(std::memory_order_acquire));
    auto published = [&] { return generation_of(claim_.load(std::memory_order_acquire)) != seen; };
    for (;;) {
      spin_while([&] { return !published() && !stop_.load(); });
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || published(); });
        if (stop_) return;
        seen = generation_of(claim_.load(std::memory_order_acquire));
      }
      work();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::function<void()> on_worker_start_;
  std::vector<std::thread> workers_;
  std::string start_failure_;
  std::mutex dispatch_;  // one parallel_for at a time
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  // The current call: written by the caller before it publishes claim_, read by claimers.
  const std::function<void(std::ptrdiff_t, std::ptrdiff_t)>* task_ = nullptr;
  std::ptrdiff_t n_ = 0;
  std::uint64_t generation_ = 0;  // the caller's count (under dispatch_)
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<std::ptrdiff_t> completed_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
};

}  // namespace diffblocks
