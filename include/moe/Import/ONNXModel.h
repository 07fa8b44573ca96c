//===- ONNXModel.h - Validating ONNX model loader ---------------*- C++ -*-===//
//
// Reads an ONNX model (ModelProto, protobuf binary) and checks everything the
// importer relies on before any op is looked at: IR version >= 7; the
// default-domain opset in [13, 23] and com.microsoft opset 1; no other
// domain in use; a graph whose every node input is defined (by a graph
// input, an initializer or exactly one node output) and which has no
// cycle; initializers of a known element type whose byte size matches
// their shape (computed with overflow checks), stored inline or in an
// external-data file that stays inside the model's folder (relative
// location, no `..`, no symlink leaving it) with offset and length inside
// that file. Errors name the file and the node, tensor or field at fault.
//
// Only the protobuf message classes of libonnx-dev are used; ONNX's own
// checker is not, so that every diagnostic is ours.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IMPORT_ONNXMODEL_H
#define MOE_IMPORT_ONNXMODEL_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace llvm {
class MemoryBuffer;
} // namespace llvm

namespace onnx {
class ModelProto;
class NodeProto;
} // namespace onnx

namespace moe {

/// Where an initializer's bytes are: inline in the model file (raw_data or
/// a typed repeated field) or in an external-data file.
struct ONNXInitializer {
  std::string name;
  /// TensorProto::DataType.
  int32_t dataType = 0;
  llvm::SmallVector<int64_t> shape;
  /// Bytes of the data in little-endian element layout.
  uint64_t byteSize = 0;
  /// Set for external data: the file (absolute, inside the model's folder)
  /// and the byte offset in it.
  std::string externalFile;
  uint64_t externalOffset = 0;
  /// For inline data already in the element layout (raw_data, or the typed
  /// field that stores this type natively: float_data for FLOAT, ...): the
  /// bytes inside the loaded proto, valid while the model lives. Null for
  /// external data and for types stored widened (FLOAT16 in int32_data).
  const void *inlineData = nullptr;
};

/// A graph input or output as the model declares it.
struct ONNXValueInfo {
  std::string name;
  /// TensorProto::DataType; 0 when the model does not say.
  int32_t dataType = 0;
  /// Each dimension: its size, its symbolic name (dim_param) or "?"; empty
  /// when the model gives no shape.
  llvm::SmallVector<std::string> dims;
};

/// A validated ONNX model.
class ONNXModel {
public:
  /// Opset bounds this importer accepts for the default domain.
  static constexpr int64_t kMinOpset = 13, kMaxOpset = 23;
  static constexpr int64_t kMinIRVersion = 7, kMaxIRVersion = 11;

  /// Loads and validates `path`.
  static llvm::Expected<std::unique_ptr<ONNXModel>> load(llvm::StringRef path);
  /// Validates a serialized model held in memory (the proto keeps its own
  /// copy). External data is looked up beside `path`, which also names the
  /// model in messages.
  static llvm::Expected<std::unique_ptr<ONNXModel>>
  fromBytes(llvm::StringRef bytes, llvm::StringRef path);
  ~ONNXModel();

  const onnx::ModelProto &proto() const { return *model; }
  llvm::StringRef path() const { return filePath; }
  /// The nodes in an order where every node follows its inputs' producers.
  llvm::ArrayRef<const onnx::NodeProto *> nodes() const { return order; }
  const llvm::StringMap<ONNXInitializer> &initializers() const { return inits; }
  /// The opset imported for `domain` ("" and "ai.onnx" are the same), or
  /// 0 when the model imports none.
  int64_t opsetFor(llvm::StringRef domain) const;
  /// A name for `node` in diagnostics: its name, or "#i (OpType)".
  std::string describe(const onnx::NodeProto &node) const;
  /// The graph's inputs that are not initializers, and its outputs.
  std::vector<ONNXValueInfo> graphInputs() const;
  std::vector<ONNXValueInfo> graphOutputs() const;
  /// The bytes of initializer `name`, inline or mapped from its external
  /// file (mapped once, valid while the model lives), or of a copy that
  /// transposedCopy made.
  llvm::Expected<llvm::ArrayRef<uint8_t>>
  initializerBytes(llvm::StringRef name) const;
  /// Initializer `name`, or a copy transposedCopy made; null if neither.
  const ONNXInitializer *initializer(llvm::StringRef name) const;
  /// The name of a copy of initializer `name` (rank 2 or 3) with its last
  /// two dimensions swapped, made on the first call and kept while the
  /// model lives. Exporters store MatMul weights [in, out]; the kernels
  /// read rows contiguous along `in`, and graph artifacts copy their
  /// initializers anyway, so the copy costs nothing at run time where a
  /// transposed view made every decode step stride through the weights.
  /// Fails for data that initializerBytes cannot give and for element
  /// types narrower than a byte.
  llvm::Expected<std::string> transposedCopy(llvm::StringRef name) const;

private:
  ONNXModel();
  std::unique_ptr<onnx::ModelProto> model;
  std::string filePath;
  llvm::SmallVector<const onnx::NodeProto *> order;
  llvm::StringMap<ONNXInitializer> inits;
  llvm::StringMap<int64_t> opsets;
  mutable std::vector<std::unique_ptr<llvm::MemoryBuffer>> mapped;
  /// transposedCopy's copies and their bytes.
  mutable llvm::StringMap<ONNXInitializer> copies;
  mutable std::deque<std::vector<uint8_t>> copyBytes;
};

/// The name of an ONNX element type (TensorProto::DataType), e.g. "FLOAT".
llvm::StringRef onnxDataTypeName(int32_t dataType);

} // namespace moe

#endif // MOE_IMPORT_ONNXMODEL_H
