//===- SafeTensors.h - Validating safetensors reader ------------*- C++ -*-===//
//
// Reads Hugging Face safetensors files and sharded checkpoints. A file is
// memory-mapped read-only and its header is checked exactly as the reference
// parser does (huggingface/safetensors, `Metadata::validate`) before any
// tensor data is touched: header size cap and bounds, valid UTF-8 JSON
// object, no duplicate keys, a string-map `__metadata__`, known dtypes,
// offsets that tile the byte buffer exactly (sorted, contiguous,
// non-overlapping, covering it to the last byte), and byte sizes equal to
// numel x dtype width computed with overflow checks. A Git LFS pointer file
// is recognised and named as such. Tensor data is never copied.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IMPORT_SAFETENSORS_H
#define MOE_IMPORT_SAFETENSORS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace moe {

/// The safetensors dtypes (safetensors/src/tensor.rs, `Dtype`).
enum class DType {
  BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ,
  F8_E5M2FNUZ, I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64,
};

/// Parses a dtype name such as "BF16".
std::optional<DType> parseDType(llvm::StringRef name);
/// The name of `dtype` as written in headers.
llvm::StringRef dtypeName(DType dtype);
/// The width of one element in bits (4 and 6 for the sub-byte floats).
unsigned dtypeBits(DType dtype);

/// One tensor of a safetensors file. Offsets are relative to the start of
/// the byte buffer (after the header), end one past the last byte.
struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;

  int64_t numElements() const;
  uint64_t numBytes() const { return end - begin; }
};

/// A validated, memory-mapped safetensors file.
class SafeTensorsFile {
public:
  /// The reference parser's header cap (MAX_HEADER_SIZE).
  static constexpr uint64_t kMaxHeaderSize = 100'000'000;

  /// Maps and validates `path`. Errors name the file and, where one is at
  /// fault, the tensor and field.
  static llvm::Expected<std::unique_ptr<SafeTensorsFile>>
  open(llvm::StringRef path, uint64_t maxHeaderSize = kMaxHeaderSize);

  /// Validates an in-memory buffer; `path` is only used in messages.
  static llvm::Expected<std::unique_ptr<SafeTensorsFile>>
  fromBuffer(std::unique_ptr<llvm::MemoryBuffer> buffer, llvm::StringRef path,
             uint64_t maxHeaderSize = kMaxHeaderSize);

  llvm::StringRef path() const { return filePath; }
  /// Tensors in byte-buffer order.
  llvm::ArrayRef<TensorInfo> tensors() const { return tensorList; }
  /// The tensor called `name`, or null.
  const TensorInfo *lookup(llvm::StringRef name) const;
  /// The tensor's bytes inside the mapping (not aligned in general).
  llvm::ArrayRef<uint8_t> data(const TensorInfo &tensor) const;
  /// The raw JSON header (including any trailing space padding), e.g. to
  /// fingerprint the file without reading the weights.
  llvm::StringRef header() const { return headerText; }
  /// `__metadata__`, if present.
  const std::map<std::string, std::string> &metadata() const {
    return metadataMap;
  }

private:
  SafeTensorsFile() = default;

  std::string filePath;
  std::unique_ptr<llvm::MemoryBuffer> buffer;
  llvm::StringRef headerText;
  const uint8_t *dataStart = nullptr;
  std::vector<TensorInfo> tensorList;
  llvm::StringMap<size_t> byName;
  std::map<std::string, std::string> metadataMap;
};

/// A checkpoint folder: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json` (tensor -> shard from its `weight_map`;
/// shard names are never guessed).
class Checkpoint {
public:
  static llvm::Expected<std::unique_ptr<Checkpoint>>
  open(llvm::StringRef directory);

  /// Where a tensor lives.
  struct Location {
    const SafeTensorsFile *file;
    const TensorInfo *tensor;
  };
  /// The tensor called `name`, or std::nullopt.
  std::optional<Location> lookup(llvm::StringRef name) const;
  /// Every tensor name, sorted.
  std::vector<std::string> tensorNames() const;
  llvm::ArrayRef<std::unique_ptr<SafeTensorsFile>> files() const {
    return shardFiles;
  }

private:
  Checkpoint() = default;

  std::vector<std::unique_ptr<SafeTensorsFile>> shardFiles;
  llvm::StringMap<Location> byName;
};

} // namespace moe

#endif // MOE_IMPORT_SAFETENSORS_H
