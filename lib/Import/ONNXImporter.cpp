//===- ONNXImporter.cpp - ONNX graphs into the moe dialect ----------------===//
//
// The graph walk: graph inputs become @main's arguments, nodes are imported
// in dependency order through a (domain, op type) table, initializers
// become moe.weight references at first use. Integer tensors that can be
// known while importing (constants, shapes and arithmetic on them) are
// tracked as KnownInts and materialised only when a consumer needs a
// tensor. Unsupported nodes are collected and reported together.
//
//===----------------------------------------------------------------------===//

#include "ONNXImporterImpl.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Verifier.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"

#include "onnx/defs/schema.h"

#include <cstring>
#include <map>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::onnximport;

void Importer::note(const onnx::NodeProto &node, const std::string &reason) {
  std::string domain = node.domain().empty() || node.domain() == "ai.onnx"
                           ? "ai.onnx"
                           : node.domain();
  std::string kind = llvm::formatv("{0} ({1} opset {2})", node.op_type(),
                                   domain, model.opsetFor(node.domain()));
  auto [it, inserted] = missingIndex.insert({kind, missing.size()});
  if (inserted)
    missing.push_back({kind, 0, model.describe(node), reason});
  ++missing[it->second].count;
}

Value Importer::lookup(const std::string &name) {
  auto it = values.find(name);
  if (it != values.end())
    return it->second;
  auto knownIt = known.find(name);
  if (knownIt != known.end()) {
    Value v = materialize(fileLoc, knownIt->second);
    values[name] = v;
    return v;
  }
  const ::moe::ONNXInitializer *init = model.initializer(name);
  if (!init)
    return nullptr;
  Type element = elementType(ctx, init->dataType);
  if (!element)
    return nullptr;
  OpBuilder::InsertionGuard guard(builder);
  // Weights at the top of the function, in first-use order.
  Block *body = builder.getInsertionBlock();
  builder.setInsertionPointToStart(body);
  for (Operation &op : *body)
    if (isa<WeightOp>(op))
      builder.setInsertionPointAfter(&op);
  auto type = RankedTensorType::get(init->shape, element);
  Value weight =
      WeightOp::create(builder, fileLoc, type, builder.getStringAttr(name));
  values[name] = weight;
  return weight;
}

Value Importer::lookupTransposed(const std::string &name, Location loc) {
  llvm::Expected<std::string> copy = model.transposedCopy(name);
  if (copy)
    return lookup(*copy);
  llvm::consumeError(copy.takeError());
  Value w = lookup(name);
  auto wt = w ? dyn_cast<RankedTensorType>(w.getType()) : nullptr;
  if (!wt || wt.getRank() < 2 || wt.getRank() > 3)
    return nullptr;
  llvm::SmallVector<int64_t> perm =
      wt.getRank() == 2 ? llvm::SmallVector<int64_t>{1, 0}
                        : llvm::SmallVector<int64_t>{0, 2, 1};
  llvm::SmallVector<int64_t> shape;
  for (int64_t d : perm)
    shape.push_back(wt.getDimSize(d));
  Value init =
      tensor::EmptyOp::create(builder, loc, shape, wt.getElementType());
  return linalg::TransposeOp::create(builder, loc, w, init, perm)
      .getResult()[0];
}

/// Checks that `node` has at least the inputs and outputs its operator
/// requires, so that the handlers may read those (and output 0) directly;
/// optional ones they read only after checking the count. Standard
/// operators are checked against ONNX's schemas: Debian's libonnx knows
/// opsets up to 17, and the required inputs of the operators imported here
/// have not grown since, so its schema at min(opset, 17) gives the floor. Operators it does not
/// know (onnxruntime's contrib operators, opset 23's newcomers) use their
/// documented required inputs.
static ImportResult checkArity(const onnx::NodeProto &node,
                               const std::string &domain, int64_t opset) {
  int minIn = 0, minOut = 1;
  const onnx::OpSchema *schema =
      domain.empty() ? onnx::OpSchemaRegistry::Schema(node.op_type(),
                                                      int(opset), "")
                     : nullptr;
  if (schema) {
    minIn = schema->min_input();
    minOut = std::max(1, schema->min_output());
  } else {
    static const std::map<std::pair<std::string, std::string>, int> required =
        {{{"", "RMSNormalization"}, 2},
         {{"", "RotaryEmbedding"}, 3},
         {{"", "Attention"}, 3},
         {{"", "SimplifiedLayerNormalization"}, 2},
         {{"com.microsoft", "SimplifiedLayerNormalization"}, 2},
         {{"com.microsoft", "SkipSimplifiedLayerNormalization"}, 3},
         {{"com.microsoft", "RotaryEmbedding"}, 4},
         {{"com.microsoft", "MoE"}, 5},
         {{"com.microsoft", "QMoE"}, 7},
         {{"com.microsoft", "MatMulNBits"}, 3},
         {{"com.microsoft", "GroupQueryAttention"}, 7},
         {{"com.microsoft", "MultiHeadAttention"}, 1}};
    auto it = required.find({domain, node.op_type()});
    if (it != required.end())
      minIn = it->second;
  }
  if (node.input_size() < minIn)
    return llvm::formatv("has {0} input{1}; the operator needs {2}",
                         node.input_size(), node.input_size() == 1 ? "" : "s",
                         minIn)
        .str();
  if (node.output_size() < minOut)
    return llvm::formatv("has {0} output{1}; the operator gives {2}",
                         node.output_size(),
                         node.output_size() == 1 ? "" : "s", minOut)
        .str();
  return std::nullopt;
}

ImportResult Importer::importNode(const onnx::NodeProto &node) {
  using Handler = ImportResult (Importer::*)(const onnx::NodeProto &);
  // (domain, op type) -> importer; "" is the default (ai.onnx) domain.
  static const std::map<std::pair<std::string, std::string>, Handler> handlers =
      [] {
        std::map<std::pair<std::string, std::string>, Handler> table;
        for (const char *op :
             {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod",
              "Sigmoid", "Relu", "Neg", "Exp", "Log", "Sqrt", "Reciprocal",
              "Tanh", "Cos", "Sin", "Abs", "Erf", "Floor", "Ceil", "Softplus",
              "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
              "Not", "And", "Or", "Xor", "Where", "IsNaN", "IsInf"})
          table[{"", op}] = &Importer::importElementwise;
        for (const char *op : {"ReduceMean", "ReduceSum", "ReduceMax",
                               "ReduceMin", "ReduceProd"})
          table[{"", op}] = &Importer::importReduce;
        table[{"", "Clip"}] = &Importer::importClip;
        table[{"", "Cast"}] = &Importer::importCast;
        table[{"", "Softmax"}] = &Importer::importSoftmax;
        table[{"", "Constant"}] = &Importer::importConstant;
        table[{"", "Identity"}] = &Importer::importIdentity;
        table[{"", "Shape"}] = &Importer::importShape;
        table[{"", "Size"}] = &Importer::importShape;
        table[{"", "Transpose"}] = &Importer::importTranspose;
        table[{"", "Reshape"}] = &Importer::importReshape;
        table[{"", "Flatten"}] = &Importer::importReshape;
        table[{"", "Squeeze"}] = &Importer::importSqueeze;
        table[{"", "Unsqueeze"}] = &Importer::importSqueeze;
        table[{"", "Gather"}] = &Importer::importGather;
        table[{"", "GatherElements"}] = &Importer::importGatherElements;
        table[{"", "GatherND"}] = &Importer::importGatherND;
        table[{"", "NonZero"}] = &Importer::importNonZero;
        table[{"", "ScatterND"}] = &Importer::importScatterND;
        table[{"", "ScatterElements"}] = &Importer::importScatterElements;
        table[{"", "Concat"}] = &Importer::importConcat;
        table[{"", "Split"}] = &Importer::importSplit;
        table[{"", "Slice"}] = &Importer::importSlice;
        table[{"", "Expand"}] = &Importer::importExpand;
        table[{"", "Tile"}] = &Importer::importTile;
        table[{"", "ConstantOfShape"}] = &Importer::importConstantOfShape;
        table[{"", "Range"}] = &Importer::importRange;
        table[{"", "Trilu"}] = &Importer::importTrilu;
        table[{"", "CumSum"}] = &Importer::importCumSum;
        table[{"", "OneHot"}] = &Importer::importOneHot;
        table[{"", "TopK"}] = &Importer::importTopK;
        table[{"", "MatMul"}] = &Importer::importMatMul;
        table[{"", "Gemm"}] = &Importer::importGemm;
        table[{"", "Einsum"}] = &Importer::importEinsum;
        table[{"", "LayerNormalization"}] = &Importer::importLayerNorm;
        table[{"", "RotaryEmbedding"}] = &Importer::importRotaryEmbedding;
        table[{"", "Attention"}] = &Importer::importAttention;
        table[{"com.microsoft", "RotaryEmbedding"}] =
            &Importer::importRotaryEmbedding;
        table[{"", "RMSNormalization"}] = &Importer::importSimplifiedLayerNorm;
        // onnxruntime registers it in the default domain; some exporters
        // write com.microsoft.
        table[{"", "SimplifiedLayerNormalization"}] =
            &Importer::importSimplifiedLayerNorm;
        table[{"com.microsoft", "SimplifiedLayerNormalization"}] =
            &Importer::importSimplifiedLayerNorm;
        table[{"com.microsoft", "SkipSimplifiedLayerNormalization"}] =
            &Importer::importSimplifiedLayerNorm;
        table[{"com.microsoft", "MoE"}] = &Importer::importMoE;
        table[{"com.microsoft", "MatMulNBits"}] = &Importer::importMatMulNBits;
        table[{"com.microsoft", "QMoE"}] = &Importer::importQMoE;
        table[{"com.microsoft", "GroupQueryAttention"}] =
            &Importer::importContribAttention;
        table[{"com.microsoft", "MultiHeadAttention"}] =
            &Importer::importContribAttention;
        return table;
      }();
  std::string domain = node.domain() == "ai.onnx" ? "" : node.domain();
  auto it = handlers.find({domain, node.op_type()});
  if (it == handlers.end())
    return std::string("not imported yet");
  if (ImportResult bad =
          checkArity(node, domain, model.opsetFor(node.domain())))
    return bad;
  return (this->*it->second)(node);
}

//===----------------------------------------------------------------------===//
// Known integers
//===----------------------------------------------------------------------===//

std::optional<KnownInts> Importer::knownInts(const std::string &name) {
  auto it = known.find(name);
  if (it != known.end())
    return it->second;
  auto init = model.initializers().find(name);
  if (init == model.initializers().end() || !init->second.inlineData ||
      init->second.shape.size() > 1 || init->second.byteSize > 8 * 64)
    return std::nullopt;
  int32_t dataType = init->second.dataType;
  if (dataType != onnx::TensorProto::INT64 &&
      dataType != onnx::TensorProto::INT32)
    return std::nullopt;
  KnownInts v;
  v.scalar = init->second.shape.empty();
  v.type = elementType(ctx, dataType);
  unsigned width = dataType == onnx::TensorProto::INT64 ? 8 : 4;
  const char *data = static_cast<const char *>(init->second.inlineData);
  for (uint64_t i = 0; i < init->second.byteSize / width; ++i) {
    int64_t x = 0;
    if (width == 8) {
      std::memcpy(&x, data + 8 * i, 8);
    } else {
      int32_t y;
      std::memcpy(&y, data + 4 * i, 4);
      x = y;
    }
    v.elems.push_back(builder.getIndexAttr(x));
  }
  known[name] = v;
  return v;
}

std::optional<KnownInts>
Importer::knownOrRuntimeInts(const std::string &name) {
  if (std::optional<KnownInts> k = knownInts(name))
    return k;
  Value v = lookup(name);
  auto type = v ? dyn_cast<RankedTensorType>(v.getType()) : nullptr;
  if (!type || type.getRank() != 1 || type.isDynamicDim(0) ||
      type.getDimSize(0) > 64 || !isa<IntegerType>(type.getElementType()) ||
      type.getElementType().isInteger(1))
    return std::nullopt;
  KnownInts k{{}, false, type.getElementType()};
  for (int64_t i = 0; i < type.getDimSize(0); ++i) {
    Value at = arith::ConstantIndexOp::create(builder, fileLoc, i);
    Value e = tensor::ExtractOp::create(builder, fileLoc, v, ValueRange{at});
    k.elems.push_back(
        arith::IndexCastOp::create(builder, fileLoc, builder.getIndexType(), e)
            .getResult());
  }
  return k;
}

std::optional<llvm::SmallVector<int64_t>>
Importer::constantInts(const std::string &name) {
  std::optional<KnownInts> v = knownInts(name);
  if (!v)
    return std::nullopt;
  llvm::SmallVector<int64_t> result;
  for (OpFoldResult e : v->elems) {
    std::optional<int64_t> c = getConstantIntValue(e);
    if (!c)
      return std::nullopt;
    result.push_back(*c);
  }
  return result;
}

OpFoldResult Importer::foldIndex(Location loc, char op, OpFoldResult a,
                                 OpFoldResult b) {
  std::optional<int64_t> x = getConstantIntValue(a), y = getConstantIntValue(b);
  if (x && y) {
    // Constants from a hostile model can overflow: those are left to the
    // emitted (wrapping) arith op rather than folded with undefined
    // behaviour here.
    int64_t r;
    bool divisible = *y != 0 && !(*x == INT64_MIN && *y == -1);
    switch (op) {
    case '+':
      if (!__builtin_add_overflow(*x, *y, &r))
        return builder.getIndexAttr(r);
      break;
    case '-':
      if (!__builtin_sub_overflow(*x, *y, &r))
        return builder.getIndexAttr(r);
      break;
    case '*':
      if (!__builtin_mul_overflow(*x, *y, &r))
        return builder.getIndexAttr(r);
      break;
    case '/':
      if (divisible)
        return builder.getIndexAttr(*x / *y);
      break;
    case '%':
      if (divisible)
        return builder.getIndexAttr(*x % *y);
      break;
    case '<':
      return builder.getIndexAttr(std::min(*x, *y));
    case '>':
      return builder.getIndexAttr(std::max(*x, *y));
    }
  }
  // Identities that keep sizes symbolic: x * 1, x + 0, x / 1.
  if ((op == '*' || op == '/') && y == 1)
    return a;
  if (op == '*' && x == 1)
    return b;
  if ((op == '+' || op == '-') && y == 0)
    return a;
  if (op == '+' && x == 0)
    return b;
  Value l = getValueOrCreateConstantIndexOp(builder, loc, a);
  Value r = getValueOrCreateConstantIndexOp(builder, loc, b);
  switch (op) {
  case '+':
    return arith::AddIOp::create(builder, loc, l, r).getResult();
  case '-':
    return arith::SubIOp::create(builder, loc, l, r).getResult();
  case '*':
    return arith::MulIOp::create(builder, loc, l, r).getResult();
  case '/':
    return arith::DivSIOp::create(builder, loc, l, r).getResult();
  case '%':
    return arith::RemSIOp::create(builder, loc, l, r).getResult();
  case '<':
    return arith::MinSIOp::create(builder, loc, l, r).getResult();
  default:
    return arith::MaxSIOp::create(builder, loc, l, r).getResult();
  }
}

Value Importer::materialize(Location loc, const KnownInts &v) {
  llvm::SmallVector<int64_t> shape;
  if (!v.scalar)
    shape.push_back(v.elems.size());
  auto type = RankedTensorType::get(shape, v.type);
  llvm::SmallVector<Attribute> constants;
  for (OpFoldResult e : v.elems)
    if (std::optional<int64_t> c = getConstantIntValue(e))
      constants.push_back(builder.getIntegerAttr(v.type, *c));
  if (constants.size() == v.elems.size())
    return arith::ConstantOp::create(builder, loc,
                                     DenseElementsAttr::get(type, constants));
  llvm::SmallVector<Value> elems;
  for (OpFoldResult e : v.elems)
    elems.push_back(arith::IndexCastOp::create(
        builder, loc, v.type, getValueOrCreateConstantIndexOp(builder, loc, e)));
  return tensor::FromElementsOp::create(builder, loc, type, elems);
}

/// The `count` values of a constant tensor of element type T, from its
/// raw_data or its typed field; nullopt when the sizes disagree.
template <typename T, typename Field>
static std::optional<llvm::SmallVector<T>>
decodeValues(const onnx::TensorProto &t, const Field &typed, int64_t count) {
  llvm::SmallVector<T> v;
  if (!t.raw_data().empty()) {
    if (t.raw_data().size() != size_t(count) * sizeof(T))
      return std::nullopt;
    v.resize(count);
    std::memcpy(v.data(), t.raw_data().data(), t.raw_data().size());
  } else {
    v.assign(typed.begin(), typed.end());
  }
  if (int64_t(v.size()) != count)
    return std::nullopt;
  return v;
}

/// A Constant node: its `value` tensor (float, integer or bool, inline) or
/// the value_float(s)/value_int(s) forms; integer values are also known
/// integers, for shapes and axes.
ImportResult Importer::importConstant(const onnx::NodeProto &node) {
  if (node.output_size() != 1)
    return std::string("needs 1 output");
  Location loc = locOf(node);
  const std::string &out = node.output(0);
  if (const onnx::AttributeProto *attr = findAttr(node, "value_int")) {
    setKnown(out, {{builder.getIndexAttr(attr->i())}, true,
                   builder.getI64Type()});
    return std::nullopt;
  }
  if (const onnx::AttributeProto *attr = findAttr(node, "value_ints")) {
    KnownInts v{{}, false, builder.getI64Type()};
    for (int64_t x : attr->ints())
      v.elems.push_back(builder.getIndexAttr(x));
    setKnown(out, v);
    return std::nullopt;
  }
  if (const onnx::AttributeProto *attr = findAttr(node, "value_float")) {
    values[out] = arith::ConstantOp::create(
        builder, loc,
        DenseElementsAttr::get(RankedTensorType::get({}, builder.getF32Type()),
                               attr->f()));
    return std::nullopt;
  }
  if (const onnx::AttributeProto *attr = findAttr(node, "value_floats")) {
    llvm::SmallVector<float> v(attr->floats().begin(), attr->floats().end());
    values[out] = arith::ConstantOp::create(
        builder, loc,
        DenseElementsAttr::get(
            RankedTensorType::get({int64_t(v.size())}, builder.getF32Type()),
            llvm::ArrayRef<float>(v)));
    return std::nullopt;
  }
  const onnx::AttributeProto *attr = findAttr(node, "value");
  if (!attr || !attr->has_t())
    return std::string("only the value, value_float(s) and value_int(s) "
                       "forms are imported yet");
  const onnx::TensorProto &t = attr->t();
  llvm::SmallVector<int64_t> shape(t.dims().begin(), t.dims().end());
  // Constants are small; anything else is refused before allocating.
  int64_t count = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(count, d, &count) || count > (1 << 24))
      return std::string("value has a negative or too large shape");
  using T = onnx::TensorProto;
  Type element = elementType(ctx, t.data_type());
  if (!element)
    return "value of type " + ::moe::onnxDataTypeName(t.data_type()).str() +
           " is not imported yet";
  auto type = RankedTensorType::get(shape, element);
  DenseElementsAttr data;
  auto bad = std::string("value's data does not match its shape");
  switch (t.data_type()) {
  case T::INT64: {
    auto v = decodeValues<int64_t>(t, t.int64_data(), count);
    if (!v)
      return bad;
    data = DenseElementsAttr::get(type, llvm::ArrayRef<int64_t>(*v));
    if (shape.size() <= 1 && count <= 64) {
      KnownInts k{{}, shape.empty(), element};
      for (int64_t x : *v)
        k.elems.push_back(builder.getIndexAttr(x));
      setKnown(node.output(0), k);
      return std::nullopt;
    }
    break;
  }
  case T::INT32: {
    auto v = decodeValues<int32_t>(t, t.int32_data(), count);
    if (!v)
      return bad;
    data = DenseElementsAttr::get(type, llvm::ArrayRef<int32_t>(*v));
    break;
  }
  case T::BOOL: {
    // Stored as bytes in raw_data, or widened in int32_data.
    llvm::SmallVector<bool> b;
    if (!t.raw_data().empty()) {
      if (int64_t(t.raw_data().size()) != count)
        return bad;
      for (char c : t.raw_data())
        b.push_back(c != 0);
    } else {
      if (t.int32_data_size() != count)
        return bad;
      for (int32_t x : t.int32_data())
        b.push_back(x != 0);
    }
    data = DenseElementsAttr::get(type, llvm::ArrayRef<bool>(b));
    break;
  }
  case T::FLOAT: {
    auto v = decodeValues<float>(t, t.float_data(), count);
    if (!v)
      return bad;
    data = DenseElementsAttr::get(type, llvm::ArrayRef<float>(*v));
    break;
  }
  case T::DOUBLE: {
    auto v = decodeValues<double>(t, t.double_data(), count);
    if (!v)
      return bad;
    data = DenseElementsAttr::get(type, llvm::ArrayRef<double>(*v));
    break;
  }
  default:
    return "value of type " + ::moe::onnxDataTypeName(t.data_type()).str() +
           " is not imported yet";
  }
  values[node.output(0)] = arith::ConstantOp::create(builder, loc, data);
  return std::nullopt;
}

ImportResult Importer::importIdentity(const onnx::NodeProto &node) {
  if (node.input_size() != 1 || node.output_size() != 1)
    return std::string("needs 1 input and 1 output");
  if (std::optional<KnownInts> k = knownInts(node.input(0))) {
    setKnown(node.output(0), *k);
    return std::nullopt;
  }
  Value x = lookup(node.input(0));
  if (!x)
    return std::string("the input has an unsupported type");
  values[node.output(0)] = x;
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

Value Importer::reshapeTo(Location loc, Value x, llvm::ArrayRef<int64_t> shape,
                          llvm::ArrayRef<OpFoldResult> dims) {
  llvm::SmallVector<Value> sizes;
  for (OpFoldResult d : dims)
    sizes.push_back(getValueOrCreateConstantIndexOp(builder, loc, d));
  auto shapeType =
      RankedTensorType::get({int64_t(sizes.size())}, builder.getIndexType());
  Value shapeTensor =
      tensor::FromElementsOp::create(builder, loc, shapeType, sizes);
  auto type = RankedTensorType::get(
      shape, cast<RankedTensorType>(x.getType()).getElementType());
  return tensor::ReshapeOp::create(builder, loc, type, x, shapeTensor);
}

llvm::Expected<Value> Importer::broadcastGeneric(
    Location loc, ValueRange operands, Type resultElement,
    llvm::function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
  // The broadcast result shape, right-aligned.
  int64_t rank = 0;
  for (Value v : operands)
    rank = std::max(rank, cast<RankedTensorType>(v.getType()).getRank());
  llvm::SmallVector<int64_t> shape(rank, 1);
  llvm::SmallVector<std::pair<Value, int64_t>> dynamicSource(rank);
  for (Value v : operands) {
    auto type = cast<RankedTensorType>(v.getType());
    for (int64_t j = 0; j < type.getRank(); ++j) {
      int64_t d = j + rank - type.getRank(), size = type.getDimSize(j);
      if (ShapedType::isDynamic(size)) {
        if (shape[d] == 1) {
          shape[d] = ShapedType::kDynamic;
          dynamicSource[d] = {v, j};
        }
      } else if (size != 1) {
        if (!ShapedType::isDynamic(shape[d]) && shape[d] != 1 &&
            shape[d] != size)
          return llvm::createStringError(llvm::formatv(
              "dimension {0} cannot broadcast ({1} vs {2})", d, shape[d],
              size));
        shape[d] = size;
      }
    }
  }
  llvm::SmallVector<Value> dynamicSizes;
  for (int64_t d = 0; d < rank; ++d)
    if (ShapedType::isDynamic(shape[d]))
      dynamicSizes.push_back(tensor::DimOp::create(
          builder, loc, dynamicSource[d].first, dynamicSource[d].second));
  auto resultType = RankedTensorType::get(shape, resultElement);
  Value init = tensor::EmptyOp::create(builder, loc, resultType, dynamicSizes);
  llvm::SmallVector<AffineMap> maps;
  for (Value v : operands) {
    auto type = cast<RankedTensorType>(v.getType());
    llvm::SmallVector<AffineExpr> exprs;
    for (int64_t j = 0; j < type.getRank(); ++j) {
      int64_t d = j + rank - type.getRank();
      bool broadcast = type.getDimSize(j) == 1 && shape[d] != 1;
      exprs.push_back(broadcast ? builder.getAffineConstantExpr(0)
                                : builder.getAffineDimExpr(d));
    }
    maps.push_back(AffineMap::get(rank, 0, exprs, ctx));
  }
  maps.push_back(builder.getMultiDimIdentityMap(rank));
  return linalg::GenericOp::create(
             builder, loc, TypeRange{resultType}, operands, ValueRange{init},
             maps,
             llvm::SmallVector<utils::IteratorType>(
                 rank, utils::IteratorType::parallel),
             [&](OpBuilder &b, Location l, ValueRange args) {
               linalg::YieldOp::create(b, l, body(b, l, args.drop_back()));
             })
      .getResult(0);
}

Value Importer::zeros(Location loc, llvm::ArrayRef<OpFoldResult> sizes,
                      Type type) {
  Value empty = tensor::EmptyOp::create(builder, loc, sizes, type);
  Value zero = arith::ConstantOp::create(builder, loc, builder.getZeroAttr(type));
  return linalg::FillOp::create(builder, loc, zero, empty).getResult(0);
}

Value Importer::indexGeneric(
    Location loc, RankedTensorType type, llvm::ArrayRef<OpFoldResult> sizes,
    llvm::function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
  int64_t rank = type.getRank();
  Value init =
      tensor::EmptyOp::create(builder, loc, sizes, type.getElementType());
  return linalg::GenericOp::create(
             builder, loc, TypeRange{init.getType()}, ValueRange{},
             ValueRange{init}, builder.getMultiDimIdentityMap(rank),
             llvm::SmallVector<utils::IteratorType>(
                 rank, utils::IteratorType::parallel),
             [&](OpBuilder &b, Location l, ValueRange) {
               llvm::SmallVector<Value> indices;
               for (int64_t i = 0; i < rank; ++i)
                 indices.push_back(linalg::IndexOp::create(b, l, i));
               linalg::YieldOp::create(b, l, body(b, l, indices));
             })
      .getResult(0);
}

llvm::Expected<OwningOpRef<ModuleOp>> Importer::run() {
  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);
  const onnx::GraphProto &graph = model.proto().graph();
  llvm::SmallVector<Type> inputTypes;
  llvm::SmallVector<std::string> inputNames;
  for (const onnx::ValueInfoProto &input : graph.input()) {
    if (model.initializers().count(input.name()))
      continue; // Old exporters list initializers as inputs too.
    const onnx::TypeProto &type = input.type();
    if (!type.has_tensor_type() || !type.tensor_type().has_shape())
      return fail("graph input '" + input.name() +
                  "' is not a tensor of known rank");
    Type element = elementType(ctx, type.tensor_type().elem_type());
    if (!element)
      return fail("graph input '" + input.name() + "' has element type " +
                  ::moe::onnxDataTypeName(type.tensor_type().elem_type()) +
                  ", which is not supported");
    llvm::SmallVector<int64_t> shape;
    for (const onnx::TensorShapeProto::Dimension &dim :
         type.tensor_type().shape().dim())
      shape.push_back(dim.has_dim_value() && dim.dim_value() >= 0
                          ? dim.dim_value()
                          : ShapedType::kDynamic);
    inputTypes.push_back(RankedTensorType::get(shape, element));
    inputNames.push_back(input.name());
  }

  builder.setInsertionPointToEnd(module->getBody());
  auto fn = func::FuncOp::create(builder, fileLoc, "main",
                                 builder.getFunctionType(inputTypes, {}));
  Block *body = fn.addEntryBlock();
  builder.setInsertionPointToStart(body);
  for (auto [name, arg] : llvm::zip(inputNames, body->getArguments()))
    values[name] = arg;

  for (const onnx::NodeProto *node : model.nodes())
    for (auto [i, out] : llvm::enumerate(node->output()))
      producers[out] = {node, int(i)};

  // A node that reads the output of a node that failed is not attempted:
  // only the failures themselves are reported, and how many nodes wait on
  // them.
  llvm::StringSet<> unavailable;
  unsigned dependent = 0;
  for (const onnx::NodeProto *node : model.nodes()) {
    bool blocked = llvm::any_of(node->input(), [&](const std::string &name) {
      return unavailable.contains(name);
    });
    std::optional<std::string> reason;
    if (blocked)
      ++dependent;
    else
      reason = importNode(*node);
    if (reason)
      note(*node, *reason);
    if (blocked || reason)
      for (const std::string &out : node->output())
        unavailable.insert(out);
  }

  reportUnraisedRouters();
  if (!missing.empty()) {
    unsigned nodes = 0;
    for (const Missing &m : missing)
      nodes += m.count;
    std::string text =
        llvm::formatv("{0} of the graph's {1} node{2} ({3} op kind{4}) "
                      "cannot be imported:",
                      nodes, model.nodes().size(),
                      model.nodes().size() == 1 ? "" : "s", missing.size(),
                      missing.size() == 1 ? "" : "s");
    for (const Missing &m : missing)
      text += llvm::formatv("\n  {0} x{1}, first node {2}: {3}", m.kind,
                            m.count, m.firstNode, m.reason)
                  .str();
    if (dependent)
      text += llvm::formatv("\n  ({0} more node{1} depend{2} on these and "
                            "{3} not attempted)",
                            dependent, dependent == 1 ? "" : "s",
                            dependent == 1 ? "s" : "",
                            dependent == 1 ? "was" : "were")
                  .str();
    return fail(text);
  }

  llvm::SmallVector<Value> results;
  for (const onnx::ValueInfoProto &output : graph.output()) {
    Value v = lookup(output.name());
    if (!v)
      return fail("graph output '" + output.name() + "' has no value");
    results.push_back(v);
  }
  func::ReturnOp::create(builder, fileLoc, results);
  fn.setFunctionType(
      builder.getFunctionType(inputTypes, ValueRange(results).getTypes()));
  if (failed(verify(*module)))
    return fail("the imported program does not verify (see above)");
  return module;
}

llvm::Expected<OwningOpRef<ModuleOp>>
mlir::moe::importONNXModel(MLIRContext *context, const ::moe::ONNXModel &model,
                           std::vector<ONNXMoEBlock> *blocks) {
  context->loadDialect<MoEDialect, arith::ArithDialect, func::FuncDialect,
                       linalg::LinalgDialect, math::MathDialect,
                       scf::SCFDialect, tensor::TensorDialect>();
  Importer importer(context, model, blocks);
  return importer.run();
}

