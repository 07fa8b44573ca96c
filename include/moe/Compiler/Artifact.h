//===- Artifact.h - Artifacts for the moec runtime ----------*- C++ -*-===//
//
// Writes the one-file artifact `moe-run` and the runtime C API load: a text
// manifest followed by a shared object for the host (which, for CUDA,
// embeds the kernels' PTX and launches them through the runtime). The format is
// described in docs/architecture.md ("Artifact format").
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_ARTIFACT_H
#define MOE_COMPILER_ARTIFACT_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace moe {
class Checkpoint;
} // namespace moe

namespace mlir::moe {

struct ArtifactInfo {
  /// A decoder (@prefill and @decode over KV caches, from a checkpoint) or
  /// a graph (@main of an imported ONNX model, run on named tensors).
  enum class Kind { Decoder, Graph };
  Kind kind = Kind::Decoder;

  /// A graph input or output: its ONNX name, element type ("f32", "i64",
  /// "bool", ...) and dimensions, each a size, a symbolic name (ONNX
  /// dim_param) or "?".
  struct GraphValue {
    std::string name, dtype;
    std::vector<std::string> dims;
  };
  std::vector<GraphValue> inputs, outputs;
  /// For graphs: the model file (recorded for people) and the bytes of
  /// each initializer by name. Graph weights are always embedded.
  std::string source;
  std::function<llvm::Expected<llvm::ArrayRef<uint8_t>>(llvm::StringRef)>
      tensorBytes;

  std::string checkpointDir;
  std::string modelType;
  int64_t vocabSize = 0;
  int64_t numLayers = 0;
  int64_t maxSeqLen = 0;
  /// Rank of each KV-cache tensor, in @prefill's result order, and its
  /// bytes at capacity (max_seq_len tokens, batch 1): the runtime checks
  /// that much host memory is free before a session allocates it.
  std::vector<int64_t> cacheRanks;
  std::vector<int64_t> cacheBytes;
  /// Copy the weights into the artifact instead of referencing the shards.
  bool embedWeights = false;
  /// The checkpoint as the importer opened it (opened again if null).
  std::shared_ptr<::moe::Checkpoint> checkpoint;
  /// Recorded in the manifest: config.json (compact) and the entry points'
  /// signatures.
  std::string configJson;
  std::string prefillSignature, decodeSignature;
  /// For code compiled with --target=cuda: the GPU architecture of its
  /// PTX (sm_90a, ...), recorded as the manifest's `target` entry. Empty
  /// for CPU code.
  std::string gpuArch;
};

/// The name of an element type in artifact manifests: f32, bf16, f16, f64
/// or iN; "" for any other type.
std::string getManifestTypeName(Type type);

/// Compiles `module` (in the LLVM dialect, with @prefill and @decode, or
/// @main for a graph, carrying llvm.emit_c_interface and a moe.weights
/// manifest; for CUDA, with its kernels as a gpu.binary of PTX) for the
/// host and writes the artifact to `outputPath`; nothing is written on
/// error.
llvm::Error writeArtifact(ModuleOp module, const ArtifactInfo &info,
                             llvm::StringRef outputPath);

} // namespace mlir::moe

#endif // MOE_COMPILER_ARTIFACT_H
