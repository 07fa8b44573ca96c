//===- thread_pool.h - The kernels' worker threads --------------*- C++ -*-===//
//
// One process-wide pool shared by every kernel. A parallel loop hands out
// task indices through an atomic counter; the calling thread works too.
// Workers spin briefly between loops before sleeping, because a decode
// step runs dozens of short loops back to back and a futex wake-up per loop
// would cost more than the work.
//
//===----------------------------------------------------------------------===//

#ifndef MOERT_KERNELS_THREAD_POOL_H
#define MOERT_KERNELS_THREAD_POOL_H

#include <cstdint>

namespace moert::kernels {

/// Threads the kernels use, the caller included (MOERT_NUM_THREADS, else
/// the CPUs this process may run on).
int threadCount();

/// Runs body(context, i) for every i in [0, count), spread over the pool.
/// Returns when all calls have returned. A loop started while another
/// thread's loop is running (two sessions at once) runs on its caller
/// alone rather than waiting.
void parallelFor(int64_t count, void (*body)(void *context, int64_t i),
                 void *context);

/// parallelFor with a callable.
template <typename Fn> void parallelFor(int64_t count, Fn &&fn) {
  parallelFor(
      count,
      [](void *context, int64_t i) { (*static_cast<Fn *>(context))(i); },
      &fn);
}

} // namespace moert::kernels

#endif // MOERT_KERNELS_THREAD_POOL_H
