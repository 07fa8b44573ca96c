//===- thread_pool.cpp - The kernels' worker threads ----------------------===//

#include "thread_pool.h"

#include "../foreign_code.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include <sched.h>

namespace moert::kernels {
namespace {

class Pool {
public:
  explicit Pool(int threads) {
    for (int i = 1; i < threads; ++i)
      workers.emplace_back([this] { work(); });
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
      generation.fetch_add(1, std::memory_order_release);
    }
    wake.notify_all();
    for (std::thread &worker : workers)
      worker.join();
  }

  int size() const { return int(workers.size()) + 1; }

  // The bodies may be tasks of compiled code.
  MOERT_CALLS_FOREIGN_CODE
  void run(int64_t count, void (*body)(void *, int64_t), void *context) {
    std::unique_lock<std::mutex> busy(callMutex, std::try_to_lock);
    if (!busy.owns_lock() || workers.empty() || count <= 1) {
      for (int64_t i = 0; i < count; ++i)
        body(context, i);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      job = {body, context, count};
      next.store(0, std::memory_order_relaxed);
      finished.store(0, std::memory_order_relaxed);
      generation.fetch_add(1, std::memory_order_release);
    }
    wake.notify_all();
    drain();
    // Every worker takes part in every generation, so the job may be
    // replaced only once all have left it.
    while (finished.load(std::memory_order_acquire) != int(workers.size()))
      std::this_thread::yield();
  }

private:
  struct Job {
    void (*body)(void *, int64_t) = nullptr;
    void *context = nullptr;
    int64_t count = 0;
  };

  MOERT_CALLS_FOREIGN_CODE
  void drain() {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) <
                    job.count;)
      job.body(job.context, i);
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      // Spin for a while (about 50 us) before sleeping.
      uint64_t now = generation.load(std::memory_order_acquire);
      for (int spin = 0; now == seen && spin < 20000; ++spin) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        now = generation.load(std::memory_order_acquire);
      }
      if (now == seen) {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [&] {
          return generation.load(std::memory_order_acquire) != seen;
        });
        now = generation.load(std::memory_order_acquire);
      }
      seen = now;
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (stopping)
          return;
      }
      drain();
      finished.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  std::vector<std::thread> workers;
  std::mutex callMutex; // one loop at a time
  std::mutex mutex;     // guards job and stopping
  std::condition_variable wake;
  std::atomic<uint64_t> generation{0};
  std::atomic<int64_t> next{0};
  std::atomic<int> finished{0};
  Job job;
  bool stopping = false;
};

int defaultThreads() {
  if (const char *text = std::getenv("MOERT_NUM_THREADS")) {
    char *end = nullptr;
    long n = std::strtol(text, &end, 10);
    if (end != text && *end == '\0' && n >= 1 && n <= 1024)
      return int(n);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
    return CPU_COUNT(&set);
  unsigned n = std::thread::hardware_concurrency();
  return n ? int(n) : 1;
}

Pool &pool() {
  // Never destroyed: compiled code may still run kernels from other static
  // destructors or detached threads at exit.
  static Pool *instance = new Pool(defaultThreads());
  return *instance;
}

} // namespace

int threadCount() { return pool().size(); }

void parallelFor(int64_t count, void (*body)(void *, int64_t),
                 void *context) {
  pool().run(count, body, context);
}

} // namespace moert::kernels
