//===- model_impl.h - Internals shared by the runtime's sources --*- C++ -*-===//
//
// The loaded-model structure and memref descriptors, shared by model.cpp
// (loading, decoder sessions) and graph.cpp (named-tensor runs). Not
// installed; plain C++, no MLIR or LLVM.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_MODEL_IMPL_H
#define MOE_RUNTIME_MODEL_IMPL_H

#include "moe/Runtime/moert.h"

#include "foreign_code.h"

#include <csetjmp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

/// The compiled code's heap (host_memory.cpp): what CPU code allocates
/// through moert_malloc and moert_aligned_alloc is freed here.
extern "C" void moert_free(void *p);

namespace moert {
namespace cuda {
class Context;
} // namespace cuda

struct Shard {
  std::string path;
  uint64_t headerFingerprint = 0;
  int64_t size = 0;
  void *base = nullptr;
};

struct WeightPart {
  int64_t shard, offset, bytes;
};

struct Weight {
  std::string symbol;
  /// The element type (f32, bf16, f16, f64, i8, ...), if the manifest
  /// records it (artifacts since random weights).
  std::string dtype;
  std::vector<WeightPart> parts;
};

/// A memref descriptor of rank `rank` as the compiled code lays it out:
/// allocated, aligned, offset, sizes[rank], strides[rank].
struct Descriptor {
  std::vector<int64_t> words;
  explicit Descriptor(int64_t rank = 0) : words(3 + 2 * rank, 0) {}
  int64_t rank() const { return (int64_t(words.size()) - 3) / 2; }
  void *allocated() const { return reinterpret_cast<void *>(words[0]); }
  void *aligned() const { return reinterpret_cast<void *>(words[1]); }
  int64_t size(int64_t i) const { return words[3 + i]; }
  static Descriptor contiguous(void *data, const std::vector<int64_t> &shape) {
    Descriptor d(static_cast<int64_t>(shape.size()));
    d.words[0] = d.words[1] = reinterpret_cast<int64_t>(data);
    int64_t stride = 1;
    for (int64_t i = d.rank() - 1; i >= 0; --i) {
      d.words[3 + i] = shape[i];
      d.words[3 + d.rank() + i] = stride;
      stride *= shape[i];
    }
    return d;
  }
};

using PackedFn = void (*)(void **);

/// A graph input or output from the manifest. `dims[i]` is a size, or -1
/// with `dimNames[i]` the symbolic name ("?" when the model gives none).
struct GraphValue {
  std::string name;
  moert_dtype dtype = MOERT_DTYPE_F32;
  std::vector<int64_t> dims;
  std::vector<std::string> dimNames;
};

moert_status fail(moert_status_code code, const std::string &message);

/// Parses "f32", "bool", ... as written by moec; false if unknown.
bool parseDtype(const std::string &text, moert_dtype &out);

/// Host memory this process may still allocate: the least of the kernel's
/// MemAvailable, what the process's cgroup limit leaves, and what
/// MOERT_HOST_MEMORY_LIMIT (bytes, or with a K/M/G/T suffix; a budget for
/// the runtime's large allocations together) leaves of the reservations.
/// `bound` names which of them it is.
/// `budget` false leaves MOERT_HOST_MEMORY_LIMIT out.
moert_status availableHostMemory(uint64_t &bytes, std::string &bound,
                                 bool budget = true);

/// Fails with MOERT_OUT_OF_MEMORY, naming `what` and giving `hint`, when
/// `bytes` exceed availableHostMemory().
moert_status checkHostMemory(uint64_t bytes, const std::string &what,
                             const std::string &hint, bool budget = true);

/// checkHostMemory, then counts `bytes` against MOERT_HOST_MEMORY_LIMIT
/// until releaseHostMemory.
moert_status reserveHostMemory(uint64_t bytes, const std::string &what,
                               const std::string &hint);
void releaseHostMemory(uint64_t bytes);

/// A block of the compiled code's heap (what moert_malloc hands out, and
/// moert_free takes back), or null when the host cannot back `bytes`.
void *heapAllocate(uint64_t bytes);

/// Where moert_malloc jumps when compiled code's allocation fails: set
/// around each call of an entry point (callTrapped), null otherwise.
/// Compiled code has no destructors to skip, so unwinding it by longjmp is
/// safe; what that call had allocated is leaked.
extern thread_local std::jmp_buf *allocationTrap;
/// The error for the allocation that jumped, naming `what` was running.
moert_status allocationFailure(const std::string &what);

/// Calls `fn(args)`, returning allocationFailure(what) if the compiled
/// code runs out of memory, else null.
MOERT_CALLS_FOREIGN_CODE
inline moert_status callTrapped(PackedFn fn, void **args,
                                const std::string &what) {
  std::jmp_buf trap;
  if (setjmp(trap)) {
    allocationTrap = nullptr;
    return allocationFailure(what);
  }
  allocationTrap = &trap;
  fn(args);
  allocationTrap = nullptr;
  return nullptr;
}

/// Runs the entry point `fn` of `model`: callTrapped, and for a model on
/// a CUDA device, with that device current for the compiled code and the
/// first device error (JIT, launch, out of memory) as the result.
moert_status runCode(moert_model model, PackedFn fn, void **args);

/// A buffer of `bytes` the model's code can read: host memory, or for a
/// model on a CUDA device, memory from its pool (managed). Null when the
/// allocation fails.
void *allocateBuffer(moert_model model, uint64_t bytes);
/// Frees a buffer from allocateBuffer or from the model's compiled code.
void releaseBuffer(moert_model model, void *buffer);

} // namespace moert

struct moert_model_s {
  std::string path;
  void *artifactBase = nullptr;
  int64_t artifactSize = 0;
  std::string modelType;
  int64_t vocab = 0, layers = 0, maxSeqLen = 0;
  std::vector<int64_t> cacheRanks;
  /// The KV caches' bytes at capacity (the manifest's cache entries).
  int64_t kvCacheBytes = 0;
  std::vector<moert::Shard> shards;
  std::vector<moert::Weight> weights;
  /// The manifest's 'data' line: the checksum of the embedded tensors.
  uint64_t dataChecksum = 0;
  bool hasDataChecksum = false;
  std::vector<void *> gathered;
  /// Host bytes reserved for `gathered` (reserveHostMemory).
  uint64_t reservedBytes = 0;
  void *library = nullptr;
  int memfd = -1;
  moert::PackedFn prefill = nullptr, decode = nullptr;
  /// Graph artifacts (kind graph): the signature and the entry point.
  bool graph = false;
  std::vector<moert::GraphValue> inputs, outputs;
  moert::PackedFn main = nullptr;
  double loadSeconds = 0;
  /// For an artifact compiled with `moec --target=cuda`: the GPU
  /// architecture its PTX is for (the manifest's `target` entry), and the
  /// device it runs on. Empty and null for a CPU artifact.
  std::string gpuArch;
  std::unique_ptr<moert::cuda::Context> device;
  /// moert_model_load_random: weights drawn from this seed instead of read
  /// from the checkpoint, which is then not opened.
  bool randomWeights = false;
  uint64_t randomSeed = 0;

  ~moert_model_s();
};

#endif // MOE_RUNTIME_MODEL_IMPL_H
