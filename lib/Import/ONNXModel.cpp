//===- ONNXModel.cpp - Validating ONNX model loader -----------------------===//

#include "moe/Import/ONNXModel.h"

#include "onnx/onnx_pb.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <climits>
#include <deque>

using namespace moe;
using llvm::StringRef;
using llvm::Twine;

namespace {
llvm::Error fail(StringRef path, const Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 path + ": " + message);
}

/// The byte width of the element types an initializer may have; 0 for the
/// others (strings, complex, 4- and 8-bit floats).
unsigned elementBytes(int32_t type) {
  using T = onnx::TensorProto;
  switch (type) {
  case T::UINT8:
  case T::INT8:
  case T::BOOL:
    return 1;
  case T::UINT16:
  case T::INT16:
  case T::FLOAT16:
  case T::BFLOAT16:
    return 2;
  case T::FLOAT:
  case T::INT32:
  case T::UINT32:
    return 4;
  case T::INT64:
  case T::UINT64:
  case T::DOUBLE:
    return 8;
  default:
    return 0;
  }
}

/// "" and "ai.onnx" are the same domain.
StringRef normalizeDomain(StringRef domain) {
  return domain == "ai.onnx" ? StringRef() : domain;
}

StringRef printableDomain(StringRef domain) {
  return domain.empty() ? StringRef("ai.onnx") : domain;
}

/// Checks an external-data location and returns the file it names, which
/// must stay inside `dir` (the model's folder, already a real path).
llvm::Expected<std::string> resolveExternal(StringRef modelPath, StringRef dir,
                                            StringRef tensor,
                                            StringRef location) {
  auto bad = [&](const Twine &why) {
    return fail(modelPath, "initializer '" + tensor +
                               "' external data location '" + location + "' " +
                               why);
  };
  if (location.empty())
    return bad("is empty");
  if (llvm::sys::path::is_absolute(location) || location.starts_with("/") ||
      location.starts_with("\\"))
    return bad("is absolute; it must be relative to the model's folder");
  for (StringRef part : llvm::make_range(llvm::sys::path::begin(location),
                                         llvm::sys::path::end(location)))
    if (part == "..")
      return bad("contains '..'; it must stay inside the model's folder");
  llvm::SmallString<256> full(dir);
  llvm::sys::path::append(full, location);
  llvm::SmallString<256> real;
  if (llvm::sys::fs::real_path(full, real))
    return bad("does not name a readable file");
  llvm::SmallString<256> prefix(dir);
  llvm::sys::path::append(prefix, "");
  if (!StringRef(real).starts_with(prefix))
    return bad("leaves the model's folder through a symbolic link");
  if (!llvm::sys::fs::is_regular_file(real))
    return bad("is not a regular file");
  return std::string(real);
}

/// Parses a decimal external-data field.
std::optional<uint64_t> parseSize(StringRef text) {
  uint64_t value;
  if (text.empty() || text.getAsInteger(10, value))
    return std::nullopt;
  return value;
}
} // namespace

StringRef moe::onnxDataTypeName(int32_t dataType) {
  if (!onnx::TensorProto_DataType_IsValid(dataType))
    return "<invalid>";
  const std::string &name = onnx::TensorProto_DataType_Name(
      static_cast<onnx::TensorProto_DataType>(dataType));
  return name;
}

ONNXModel::ONNXModel() : model(std::make_unique<onnx::ModelProto>()) {}
ONNXModel::~ONNXModel() = default;

int64_t ONNXModel::opsetFor(StringRef domain) const {
  auto it = opsets.find(normalizeDomain(domain));
  return it == opsets.end() ? 0 : it->second;
}

std::string ONNXModel::describe(const onnx::NodeProto &node) const {
  if (!node.name().empty())
    return "'" + node.name() + "' (" + node.op_type() + ")";
  const auto &all = model->graph().node();
  for (int i = 0; i < all.size(); ++i)
    if (&all.Get(i) == &node)
      return "#" + std::to_string(i) + " (" + node.op_type() + ")";
  return "(" + node.op_type() + ")";
}

llvm::Expected<std::unique_ptr<ONNXModel>> ONNXModel::load(StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fail(path, "cannot read: " + buffer.getError().message());
  return fromBytes((*buffer)->getBuffer(), path);
}

llvm::Expected<std::unique_ptr<ONNXModel>>
ONNXModel::fromBytes(StringRef bytes, StringRef path) {
  std::unique_ptr<ONNXModel> result(new ONNXModel());
  result->filePath = path.str();
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    return fail(path, "is larger than 2 GiB, the protobuf limit; store the "
                      "weights as external data");
  onnx::ModelProto &model = *result->model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return fail(path, "is not an ONNX model (the protobuf does not parse)");
  if (!model.has_graph())
    return fail(path, "is not an ONNX model (no graph)");

  // --- Versions --------------------------------------------------------
  if (model.ir_version() < kMinIRVersion || model.ir_version() > kMaxIRVersion)
    return fail(path, llvm::formatv("ir_version {0} is not supported (need "
                                    "{1} to {2})",
                                    model.ir_version(), kMinIRVersion,
                                    kMaxIRVersion));
  for (const onnx::OperatorSetIdProto &opset : model.opset_import()) {
    StringRef domain = normalizeDomain(opset.domain());
    if (!result->opsets.insert({domain, opset.version()}).second)
      return fail(path, "opset_import lists domain '" +
                            printableDomain(domain) + "' twice");
    if (domain.empty() &&
        (opset.version() < kMinOpset || opset.version() > kMaxOpset))
      return fail(path, llvm::formatv("default-domain opset {0} is not "
                                      "supported (need {1} to {2})",
                                      opset.version(), kMinOpset, kMaxOpset));
    if (domain == "com.microsoft" && opset.version() != 1)
      return fail(path, llvm::formatv("com.microsoft opset {0} is not "
                                      "supported (need 1)",
                                      opset.version()));
  }

  const onnx::GraphProto &graph = model.graph();
  if (graph.sparse_initializer_size() != 0)
    return fail(path, "sparse initializers are not supported ('" +
                          graph.sparse_initializer(0).values().name() + "')");

  // --- Initializers ----------------------------------------------------
  llvm::SmallString<256> dir(path);
  llvm::sys::path::remove_filename(dir);
  if (dir.empty())
    dir = ".";
  llvm::SmallString<256> realDir;
  if (llvm::sys::fs::real_path(dir, realDir))
    return fail(path, "cannot resolve the model's folder");

  for (const onnx::TensorProto &tensor : graph.initializer()) {
    const std::string &name = tensor.name();
    auto bad = [&](const Twine &why) {
      return fail(path, "initializer '" + name + "' " + why);
    };
    if (name.empty())
      return fail(path, "an initializer has no name");
    if (result->inits.count(name))
      return bad("is defined twice");
    ONNXInitializer init;
    init.name = name;
    init.dataType = tensor.data_type();
    unsigned width = elementBytes(init.dataType);
    if (!width)
      return bad("has element type " + onnxDataTypeName(init.dataType) +
                 ", which is not supported");
    uint64_t count = 1;
    for (int64_t dim : tensor.dims()) {
      if (dim < 0)
        return bad(llvm::formatv("has a negative dimension ({0})", dim));
      init.shape.push_back(dim);
      if (__builtin_mul_overflow(count, static_cast<uint64_t>(dim), &count))
        return bad("has a shape whose element count overflows");
    }
    if (__builtin_mul_overflow(count, uint64_t(width), &init.byteSize) ||
        init.byteSize > (uint64_t(1) << 48))
      return bad("has a shape whose byte size overflows");
    if (tensor.has_segment())
      return bad("is segmented, which is not supported");

    if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
      if (!tensor.raw_data().empty())
        return bad("has both external and inline data");
      std::string location;
      std::optional<uint64_t> offset = 0, length;
      for (const onnx::StringStringEntryProto &entry : tensor.external_data()) {
        if (entry.key() == "location") {
          location = entry.value();
        } else if (entry.key() == "offset") {
          offset = parseSize(entry.value());
          if (!offset)
            return bad("has external data offset '" + entry.value() +
                       "', not a non-negative integer");
        } else if (entry.key() == "length") {
          length = parseSize(entry.value());
          if (!length)
            return bad("has external data length '" + entry.value() +
                       "', not a non-negative integer");
        } else if (entry.key() != "checksum") {
          return bad("has unknown external data key '" + entry.key() + "'");
        }
      }
      llvm::Expected<std::string> file =
          resolveExternal(path, realDir, name, location);
      if (!file)
        return file.takeError();
      uint64_t fileSize = 0;
      if (llvm::sys::fs::file_size(*file, fileSize))
        return bad("external data file '" + location + "' cannot be read");
      if (length && *length != init.byteSize)
        return bad(llvm::formatv("has external data length {0}, but its "
                                 "shape and type need {1} bytes",
                                 *length, init.byteSize));
      uint64_t end;
      if (__builtin_add_overflow(*offset, init.byteSize, &end) ||
          end > fileSize)
        return bad(llvm::formatv("external data [{0}, +{1}) lies past the end "
                                 "of '{2}' ({3} bytes)",
                                 *offset, init.byteSize, location, fileSize));
      init.externalFile = *file;
      init.externalOffset = *offset;
    } else {
      uint64_t stored;
      StringRef field = "raw_data";
      if (!tensor.raw_data().empty() || count == 0) {
        stored = tensor.raw_data().size();
        if (stored != init.byteSize)
          return bad(llvm::formatv("has {0} bytes of raw_data, but its shape "
                                   "and type need {1}",
                                   stored, init.byteSize));
        init.inlineData = tensor.raw_data().data();
      } else {
        if (tensor.float_data_size()) {
          field = "float_data";
          stored = tensor.float_data_size();
        } else if (tensor.int32_data_size()) {
          field = "int32_data";
          stored = tensor.int32_data_size();
        } else if (tensor.int64_data_size()) {
          field = "int64_data";
          stored = tensor.int64_data_size();
        } else if (tensor.double_data_size()) {
          field = "double_data";
          stored = tensor.double_data_size();
        } else if (tensor.uint64_data_size()) {
          field = "uint64_data";
          stored = tensor.uint64_data_size();
        } else {
          return bad("has no data");
        }
        if (stored != count)
          return bad(llvm::formatv("has {0} values in {1}, but its shape "
                                   "needs {2}",
                                   stored, field, count));
        using T = onnx::TensorProto;
        if (init.dataType == T::FLOAT && tensor.float_data_size())
          init.inlineData = tensor.float_data().data();
        else if (init.dataType == T::INT32 && tensor.int32_data_size())
          init.inlineData = tensor.int32_data().data();
        else if (init.dataType == T::INT64 && tensor.int64_data_size())
          init.inlineData = tensor.int64_data().data();
        else if (init.dataType == T::DOUBLE && tensor.double_data_size())
          init.inlineData = tensor.double_data().data();
      }
    }
    result->inits[name] = std::move(init);
  }

  // --- Values and topology ----------------------------------------------
  // Who defines each value: -1 a graph input or initializer, else a node.
  llvm::StringMap<int> producer;
  for (const auto &entry : result->inits)
    producer[entry.getKey()] = -1;
  for (const onnx::ValueInfoProto &input : graph.input()) {
    if (input.name().empty())
      return fail(path, "a graph input has no name");
    producer[input.name()] = -1;
  }
  const auto &nodes = graph.node();
  for (int i = 0; i < nodes.size(); ++i) {
    const onnx::NodeProto &node = nodes.Get(i);
    StringRef domain = normalizeDomain(node.domain());
    if (!result->opsets.count(domain))
      return fail(path, "node " + result->describe(node) + " uses domain '" +
                            printableDomain(domain) +
                            "', which opset_import does not list");
    for (const std::string &output : node.output()) {
      if (output.empty())
        continue;
      auto [it, inserted] = producer.insert({output, i});
      if (!inserted) {
        std::string by =
            it->second < 0 ? std::string("a graph input or initializer")
                           : "node " + result->describe(nodes.Get(it->second));
        return fail(path, "node " + result->describe(node) + " output '" +
                              output + "' is already defined by " + by);
      }
    }
  }
  // Kahn's algorithm over node-to-node edges; inputs must all be defined.
  std::vector<unsigned> pending(nodes.size(), 0);
  std::vector<llvm::SmallVector<int>> users(nodes.size());
  for (int i = 0; i < nodes.size(); ++i) {
    const onnx::NodeProto &node = nodes.Get(i);
    for (const std::string &input : node.input()) {
      if (input.empty())
        continue; // An omitted optional input.
      auto it = producer.find(input);
      if (it == producer.end())
        return fail(path, "node " + result->describe(node) + " input '" +
                              input +
                              "' is not defined by any node, graph input or "
                              "initializer");
      if (it->second >= 0) {
        ++pending[i];
        users[it->second].push_back(i);
      }
    }
  }
  std::deque<int> ready;
  for (int i = 0; i < nodes.size(); ++i)
    if (pending[i] == 0)
      ready.push_back(i);
  while (!ready.empty()) {
    int i = ready.front();
    ready.pop_front();
    result->order.push_back(&nodes.Get(i));
    for (int user : users[i])
      if (--pending[user] == 0)
        ready.push_back(user);
  }
  if (result->order.size() != static_cast<size_t>(nodes.size())) {
    // Walk back from an unordered node through unordered producers until a
    // node repeats: the nodes from its first visit on form a cycle.
    int at = 0;
    while (pending[at] == 0)
      ++at;
    llvm::SmallVector<int> walk;
    llvm::DenseMap<int, unsigned> seen;
    while (!seen.count(at)) {
      seen[at] = walk.size();
      walk.push_back(at);
      for (const std::string &input : nodes.Get(at).input()) {
        auto it = input.empty() ? producer.end() : producer.find(input);
        if (it != producer.end() && it->second >= 0 &&
            pending[it->second] != 0) {
          at = it->second;
          break;
        }
      }
    }
    std::string cycle;
    for (unsigned i = seen[at]; i < walk.size(); ++i)
      cycle +=
          (i == seen[at] ? "" : " <- ") + result->describe(nodes.Get(walk[i]));
    return fail(path, "the graph has a cycle: " + cycle);
  }
  for (const onnx::ValueInfoProto &output : graph.output())
    if (!producer.count(output.name()))
      return fail(path, "graph output '" + output.name() +
                            "' is not defined by any node, graph input or "
                            "initializer");
  return result;
}

static std::vector<ONNXValueInfo>
valueInfos(const google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> &list,
           const llvm::StringMap<ONNXInitializer> &skip) {
  std::vector<ONNXValueInfo> result;
  for (const onnx::ValueInfoProto &value : list) {
    if (skip.count(value.name()))
      continue; // Old exporters list initializers as inputs too.
    ONNXValueInfo info;
    info.name = value.name();
    if (value.type().has_tensor_type()) {
      const onnx::TypeProto::Tensor &tensor = value.type().tensor_type();
      info.dataType = tensor.elem_type();
      for (const onnx::TensorShapeProto::Dimension &dim : tensor.shape().dim())
        info.dims.push_back(dim.has_dim_value() && dim.dim_value() >= 0
                                ? std::to_string(dim.dim_value())
                            : dim.has_dim_param() && !dim.dim_param().empty()
                                ? dim.dim_param()
                                : "?");
    }
    result.push_back(std::move(info));
  }
  return result;
}

std::vector<ONNXValueInfo> ONNXModel::graphInputs() const {
  return valueInfos(model->graph().input(), inits);
}

std::vector<ONNXValueInfo> ONNXModel::graphOutputs() const {
  return valueInfos(model->graph().output(), {});
}

llvm::Expected<llvm::ArrayRef<uint8_t>>
ONNXModel::initializerBytes(StringRef name) const {
  const ONNXInitializer *found = initializer(name);
  if (!found)
    return fail(filePath, "no initializer '" + name + "'");
  const ONNXInitializer &init = *found;
  if (init.inlineData)
    return llvm::ArrayRef<uint8_t>(
        static_cast<const uint8_t *>(init.inlineData), init.byteSize);
  if (init.externalFile.empty())
    return fail(filePath, "initializer '" + name + "' stores " +
                              onnxDataTypeName(init.dataType) +
                              " widened in a typed field; only raw_data and "
                              "native fields can be read yet");
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> slice =
      llvm::MemoryBuffer::getFileSlice(init.externalFile, init.byteSize,
                                       init.externalOffset,
                                       /*IsVolatile=*/false);
  if (!slice)
    return fail(filePath, "initializer '" + name + "': cannot read '" +
                              init.externalFile +
                              "': " + slice.getError().message());
  mapped.push_back(std::move(*slice));
  return llvm::ArrayRef<uint8_t>(
      reinterpret_cast<const uint8_t *>(mapped.back()->getBufferStart()),
      init.byteSize);
}

const ONNXInitializer *ONNXModel::initializer(StringRef name) const {
  auto it = inits.find(name);
  if (it != inits.end())
    return &it->second;
  auto copy = copies.find(name);
  return copy == copies.end() ? nullptr : &copy->second;
}

/// dst[o][c][r] = src[o][r][c] for elements of type T.
template <typename T>
static void swapLastTwo(const uint8_t *src, uint8_t *dst, int64_t outer,
                        int64_t rows, int64_t cols) {
  const T *in = reinterpret_cast<const T *>(src);
  T *out = reinterpret_cast<T *>(dst);
  for (int64_t o = 0; o < outer; ++o, in += rows * cols, out += rows * cols)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        out[c * rows + r] = in[r * cols + c];
}

llvm::Expected<std::string> ONNXModel::transposedCopy(StringRef name) const {
  // A name no initializer has (ONNX allows any string).
  std::string copyName = ("transposed:" + name).str();
  while (inits.count(copyName))
    copyName.insert(0, "~");
  if (copies.count(copyName))
    return copyName;
  const ONNXInitializer *init = initializer(name);
  if (!init)
    return fail(filePath, "no initializer '" + name + "'");
  const size_t rank = init->shape.size();
  int64_t count = 1;
  for (int64_t d : init->shape)
    count *= d;
  if (rank < 2 || rank > 3 || count <= 0 || init->byteSize % count)
    return fail(filePath, "initializer '" + name +
                              "' cannot be stored transposed (rank " +
                              llvm::Twine(rank) + ")");
  using Swap = void (*)(const uint8_t *, uint8_t *, int64_t, int64_t, int64_t);
  const uint64_t element = init->byteSize / count;
  Swap swap = element == 1   ? swapLastTwo<uint8_t>
              : element == 2 ? swapLastTwo<uint16_t>
              : element == 4 ? swapLastTwo<uint32_t>
              : element == 8 ? swapLastTwo<uint64_t>
                             : nullptr;
  if (!swap)
    return fail(filePath, "initializer '" + name + "': " +
                              llvm::Twine(element) +
                              "-byte elements cannot be stored transposed");
  llvm::Expected<llvm::ArrayRef<uint8_t>> bytes = initializerBytes(name);
  if (!bytes)
    return bytes.takeError();
  const int64_t rows = init->shape[rank - 2], cols = init->shape[rank - 1];
  std::vector<uint8_t> &out = copyBytes.emplace_back(bytes->size());
  swap(bytes->data(), out.data(), count / (rows * cols), rows, cols);
  ONNXInitializer copy = *init;
  copy.name = copyName;
  std::swap(copy.shape[rank - 2], copy.shape[rank - 1]);
  copy.externalFile.clear();
  copy.externalOffset = 0;
  copy.inlineData = out.data();
  copies[copyName] = std::move(copy);
  return copyName;
}
