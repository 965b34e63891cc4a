#pragma once
// A persistent pool for the CPU device. One process-wide pool, sized by set_num_threads().
// parallel_for splits a range into contiguous chunks, one per thread; the calling thread runs
// chunk 0. A call made while the pool is busy (another thread's model, or a nested call from a
// worker) runs serially instead of waiting, so concurrent models never deadlock.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace diffblocks {

class ThreadPool {
 public:
  explicit ThreadPool(int threads) { resize(threads); }
  ~ThreadPool() { stop_workers(); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int threads) {
    std::lock_guard<std::mutex> busy(dispatch_);
    stop_workers();
    threads = std::max(1, threads);
    stop_ = false;
    generation_ = 0;
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  }

  /// Runs f(begin, end) on `chunks` contiguous pieces of [0, n) (chunks <= size()).
  void run(std::ptrdiff_t n, const std::function<void(std::ptrdiff_t, std::ptrdiff_t)>& f) {
    if (n <= 0) return;
    std::unique_lock<std::mutex> busy(dispatch_, std::try_to_lock);
    const int chunks = static_cast<int>(std::min<std::ptrdiff_t>(size(), n));
    if (!busy.owns_lock() || chunks <= 1) {
      f(0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      task_ = &f;
      n_ = n;
      chunks_ = chunks;
      pending_ = chunks - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    std::exception_ptr mine;
    try {
      run_chunk(0);
    } catch (...) {
      mine = std::current_exception();
    }
    spin_while([this] { return pending_.load(std::memory_order_acquire) != 0; });
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    task_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void run_chunk(int c) {
    const std::ptrdiff_t b = n_ * c / chunks_, e = n_ * (c + 1) / chunks_;
    if (b < e) (*task_)(b, e);
  }

  // Waits are spun briefly before blocking: a forward issues hundreds of parallel_for calls
  // back to back, and waking a sleeping thread through the kernel costs tens of microseconds on
  // a VM, during which the caller's half of the work is done and it waits (measured: the main
  // thread idle ~20 % of an Origin forward at T = 128). ~50 us of polling bridges the gaps
  // between calls; a pool idle for longer sleeps as before.
  template <class Busy>
  static void spin_while(Busy busy) {
    for (int i = 0; i < kSpinIterations && busy(); ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#else
      std::this_thread::yield();
#endif
    }
  }
  static constexpr int kSpinIterations = 2000;

  void worker_loop(int index) {
    std::size_t seen = 0;
    for (;;) {
      spin_while([&] { return generation_.load(std::memory_order_acquire) == seen && !stop_.load(); });
      std::unique_lock<std::mutex> lk(m_);
      cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (index >= chunks_) continue;  // fewer chunks than workers this round
      lk.unlock();
      std::exception_ptr err;
      try {
        run_chunk(index);
      } catch (...) {
        err = std::current_exception();
      }
      lk.lock();
      if (err && !error_) error_ = err;
      if (--pending_ == 0) done_cv_.notify_one();
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

  std::vector<std::thread> workers_;
  std::mutex dispatch_;  // one parallel_for at a time
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(std::ptrdiff_t, std::ptrdiff_t)>* task_ = nullptr;
  std::ptrdiff_t n_ = 0;
  int chunks_ = 0;
  // Written under m_; atomic so that the spinning waits may read them without it.
  std::atomic<int> pending_{0};
  std::atomic<std::size_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
};

namespace detail {
inline int default_threads() {
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}
inline ThreadPool& pool() {
  static ThreadPool p(default_threads());
  return p;
}
}  // namespace detail

/// Number of threads the CPU device uses (default: hardware concurrency).
inline void set_num_threads(int n) {
  if (n != detail::pool().size()) detail::pool().resize(n);
}
inline int get_num_threads() { return detail::pool().size(); }

/// f(begin, end) over contiguous pieces of [0, n); pieces run concurrently on the pool.
template <class F>
void parallel_for(std::ptrdiff_t n, F&& f) {
  const std::function<void(std::ptrdiff_t, std::ptrdiff_t)> fn = std::forward<F>(f);
  detail::pool().run(n, fn);
}

}  // namespace diffblocks
