//===- ONNXImporter.cpp - ONNX graphs into the moe dialect ----------------===//

#include "moe/Import/ONNXImporter.h"
#include "moe/Import/ONNXModel.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Verifier.h"

#include "onnx/onnx_pb.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <map>

using namespace mlir;
using namespace mlir::moe;

namespace {
/// The MLIR element type of an ONNX one, or null.
Type elementType(MLIRContext *ctx, int32_t type) {
  using T = onnx::TensorProto;
  switch (type) {
  case T::FLOAT:
    return Float32Type::get(ctx);
  case T::FLOAT16:
    return Float16Type::get(ctx);
  case T::BFLOAT16:
    return BFloat16Type::get(ctx);
  case T::DOUBLE:
    return Float64Type::get(ctx);
  case T::INT64:
    return IntegerType::get(ctx, 64);
  case T::INT32:
    return IntegerType::get(ctx, 32);
  case T::BOOL:
    return IntegerType::get(ctx, 1);
  default:
    return nullptr;
  }
}

const onnx::AttributeProto *findAttr(const onnx::NodeProto &node,
                                     llvm::StringRef name) {
  for (const onnx::AttributeProto &attr : node.attribute())
    if (attr.name() == name)
      return &attr;
  return nullptr;
}

int64_t intAttr(const onnx::NodeProto &node, llvm::StringRef name,
                int64_t fallback) {
  const onnx::AttributeProto *attr = findAttr(node, name);
  return attr ? attr->i() : fallback;
}

std::optional<float> floatAttr(const onnx::NodeProto &node,
                               llvm::StringRef name) {
  const onnx::AttributeProto *attr = findAttr(node, name);
  if (!attr)
    return std::nullopt;
  return attr->f();
}

std::string stringAttr(const onnx::NodeProto &node, llvm::StringRef name,
                       llvm::StringRef fallback) {
  const onnx::AttributeProto *attr = findAttr(node, name);
  return attr ? attr->s() : fallback.str();
}

/// Why a node was not imported: "op kind" -> count, first node, reason.
struct Missing {
  std::string kind;
  unsigned count = 0;
  std::string firstNode;
  std::string reason;
};

class Importer {
public:
  Importer(MLIRContext *ctx, const ::moe::ONNXModel &model,
           std::vector<ONNXMoEBlock> *blocks)
      : ctx(ctx), model(model), builder(ctx), blocks(blocks),
        fileLoc(FileLineColLoc::get(ctx, model.path(), 0, 0)) {}

  llvm::Expected<OwningOpRef<ModuleOp>> run();

private:
  Location locOf(const onnx::NodeProto &node) {
    return NameLoc::get(builder.getStringAttr(model.describe(node)), fileLoc);
  }
  /// The value named `name`: a graph input, a node result or an
  /// initializer (as a moe.weight, created at first use).
  Value lookup(const std::string &name);
  /// Imports one node; on failure returns the reason.
  std::optional<std::string> importNode(const onnx::NodeProto &node);
  std::optional<std::string> importMatMul(const onnx::NodeProto &node);
  std::optional<std::string> importElementwise(const onnx::NodeProto &node);
  std::optional<std::string> importSoftmax(const onnx::NodeProto &node);
  std::optional<std::string> importConstant(const onnx::NodeProto &node);
  std::optional<std::string> importTranspose(const onnx::NodeProto &node);
  std::optional<std::string> importReshape(const onnx::NodeProto &node);
  std::optional<std::string> importReduce(const onnx::NodeProto &node);
  std::optional<std::string> importCast(const onnx::NodeProto &node);
  std::optional<std::string> importGather(const onnx::NodeProto &node);
  std::optional<std::string> importGemm(const onnx::NodeProto &node);
  std::optional<std::string> importSqueeze(const onnx::NodeProto &node);
  /// `x` reshaped to `shape`, where a kDynamic size is `dims[i]`.
  Value reshapeTo(Location loc, Value x, llvm::ArrayRef<int64_t> shape,
                  llvm::ArrayRef<OpFoldResult> dims);
  /// The int64 values of a constant input (an initializer or a Constant
  /// node), for shapes and axes.
  std::optional<llvm::SmallVector<int64_t>>
  constantInts(const std::string &name);
  std::optional<std::string>
  importSimplifiedLayerNorm(const onnx::NodeProto &node);
  std::optional<std::string> importMoE(const onnx::NodeProto &node);
  void note(const onnx::NodeProto &node, const std::string &reason);
  llvm::Error fail(const llvm::Twine &message) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   model.path() + ": " + message);
  }

  MLIRContext *ctx;
  const ::moe::ONNXModel &model;
  OpBuilder builder;
  std::vector<ONNXMoEBlock> *blocks;
  Location fileLoc;
  llvm::StringMap<Value> values;
  /// int64 tensors known at import time, by value name.
  llvm::StringMap<llvm::SmallVector<int64_t>> intConstants;
  std::vector<Missing> missing;
  llvm::StringMap<size_t> missingIndex;
};

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
  auto init = model.initializers().find(name);
  if (init == model.initializers().end())
    return nullptr;
  Type element = elementType(ctx, init->second.dataType);
  if (!element)
    return nullptr;
  OpBuilder::InsertionGuard guard(builder);
  // Weights at the top of the function, in first-use order.
  Block *body = builder.getInsertionBlock();
  builder.setInsertionPointToStart(body);
  for (Operation &op : *body)
    if (isa<WeightOp>(op))
      builder.setInsertionPointAfter(&op);
  auto type = RankedTensorType::get(init->second.shape, element);
  Value weight =
      WeightOp::create(builder, fileLoc, type, builder.getStringAttr(name));
  values[name] = weight;
  return weight;
}

std::optional<std::string> Importer::importNode(const onnx::NodeProto &node) {
  using Handler =
      std::optional<std::string> (Importer::*)(const onnx::NodeProto &);
  // (domain, op type) -> importer; "" is the default (ai.onnx) domain.
  static const std::map<std::pair<std::string, std::string>, Handler> handlers =
      [] {
        std::map<std::pair<std::string, std::string>, Handler> table;
        for (const char *op :
             {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sigmoid",
              "Relu", "Neg", "Exp", "Sqrt", "Reciprocal", "Tanh"})
          table[{"", op}] = &Importer::importElementwise;
        table[{"", "MatMul"}] = &Importer::importMatMul;
        table[{"", "Gemm"}] = &Importer::importGemm;
        table[{"", "Constant"}] = &Importer::importConstant;
        table[{"", "Transpose"}] = &Importer::importTranspose;
        table[{"", "Reshape"}] = &Importer::importReshape;
        table[{"", "Squeeze"}] = &Importer::importSqueeze;
        table[{"", "Unsqueeze"}] = &Importer::importSqueeze;
        table[{"", "ReduceMean"}] = &Importer::importReduce;
        table[{"", "ReduceSum"}] = &Importer::importReduce;
        table[{"", "Cast"}] = &Importer::importCast;
        table[{"", "Gather"}] = &Importer::importGather;
        table[{"", "Softmax"}] = &Importer::importSoftmax;
        // onnxruntime registers it in the default domain; some exporters
        // write com.microsoft.
        table[{"", "SimplifiedLayerNormalization"}] =
            &Importer::importSimplifiedLayerNorm;
        table[{"com.microsoft", "SimplifiedLayerNormalization"}] =
            &Importer::importSimplifiedLayerNorm;
        table[{"com.microsoft", "MoE"}] = &Importer::importMoE;
        return table;
      }();
  std::string domain = node.domain() == "ai.onnx" ? "" : node.domain();
  auto it = handlers.find({domain, node.op_type()});
  if (it == handlers.end())
    return std::string("not imported yet");
  return (this->*it->second)(node);
}

std::optional<std::string> Importer::importMatMul(const onnx::NodeProto &node) {
  if (node.input_size() != 2 || node.output_size() != 1)
    return std::string("needs 2 inputs and 1 output");
  Value a = lookup(node.input(0)), b = lookup(node.input(1));
  if (!a || !b)
    return std::string("an input has an unsupported type");
  auto at = cast<RankedTensorType>(a.getType());
  auto bt = cast<RankedTensorType>(b.getType());
  if (at.getRank() < 2 || bt.getRank() != 2 ||
      at.getElementType() != bt.getElementType())
    return std::string("only [..., K] x [K, N] MatMul of one element type "
                       "is imported yet");
  if (at.getRank() > 2) {
    // [..., K] x [K, N]: the leading dims as rows, then split back.
    Location loc = locOf(node);
    llvm::SmallVector<OpFoldResult> lead =
        tensor::getMixedSizes(builder, loc, a);
    lead.pop_back();
    ReassociationIndices rows;
    for (int64_t i = 0; i + 1 < at.getRank(); ++i)
      rows.push_back(i);
    Value flat = tensor::CollapseShapeOp::create(
        builder, loc, a,
        llvm::ArrayRef<ReassociationIndices>{rows, {at.getRank() - 1}});
    Value flatB = b;
    auto ft = cast<RankedTensorType>(flat.getType());
    llvm::SmallVector<OpFoldResult> sizes = {
        tensor::getMixedSize(builder, loc, flat, 0),
        tensor::getMixedSize(builder, loc, flatB, 1)};
    Value empty =
        tensor::EmptyOp::create(builder, loc, sizes, ft.getElementType());
    Value zero = arith::ConstantOp::create(
        builder, loc, builder.getZeroAttr(ft.getElementType()));
    Value init = linalg::FillOp::create(builder, loc, zero, empty).getResult(0);
    Value product = linalg::MatmulOp::create(
                        builder, loc, ValueRange{flat, flatB}, ValueRange{init})
                        .getResult(0);
    llvm::SmallVector<int64_t> shape(at.getShape().drop_back());
    shape.push_back(bt.getDimSize(1));
    lead.push_back(tensor::getMixedSize(builder, loc, flatB, 1));
    values[node.output(0)] = reshapeTo(loc, product, shape, lead);
    return std::nullopt;
  }
  if (!ShapedType::isDynamic(at.getDimSize(1)) &&
      !ShapedType::isDynamic(bt.getDimSize(0)) &&
      at.getDimSize(1) != bt.getDimSize(0))
    return llvm::formatv("inner dimensions differ ({0} and {1})",
                         at.getDimSize(1), bt.getDimSize(0))
        .str();
  Location loc = locOf(node);
  llvm::SmallVector<OpFoldResult> sizes = {
      tensor::getMixedSize(builder, loc, a, 0),
      tensor::getMixedSize(builder, loc, b, 1)};
  Value empty =
      tensor::EmptyOp::create(builder, loc, sizes, at.getElementType());
  Value zero = arith::ConstantOp::create(
      builder, loc, builder.getZeroAttr(at.getElementType()));
  Value init = linalg::FillOp::create(builder, loc, zero, empty).getResult(0);
  values[node.output(0)] =
      linalg::MatmulOp::create(builder, loc, ValueRange{a, b}, ValueRange{init})
          .getResult(0);
  return std::nullopt;
}

/// Float elementwise ops with numpy-style broadcasting, as one
/// linalg.generic: a size-1 (or missing leading) dimension is broadcast; a
/// dynamic dimension must match the others at run time.
std::optional<std::string>
Importer::importElementwise(const onnx::NodeProto &node) {
  const std::string &op = node.op_type();
  bool binary = op == "Add" || op == "Sub" || op == "Mul" || op == "Div" ||
                op == "Pow" || op == "Max" || op == "Min";
  if (node.input_size() != (binary ? 2 : 1) || node.output_size() != 1)
    return llvm::formatv("needs {0} input(s) and 1 output", binary ? 2 : 1)
        .str();
  llvm::SmallVector<Value> operands;
  for (const std::string &name : node.input())
    if (Value v = lookup(name))
      operands.push_back(v);
    else
      return std::string("an input has an unsupported type");
  Type et = cast<RankedTensorType>(operands[0].getType()).getElementType();
  for (Value v : operands)
    if (cast<RankedTensorType>(v.getType()).getElementType() != et ||
        !isa<FloatType>(et))
      return std::string("only float operands of one element type are "
                         "imported yet");

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
          return llvm::formatv("dimension {0} cannot broadcast ({1} vs {2})", d,
                               shape[d], size)
              .str();
        shape[d] = size;
      }
    }
  }
  Location loc = locOf(node);
  llvm::SmallVector<Value> dynamicSizes;
  for (int64_t d = 0; d < rank; ++d)
    if (ShapedType::isDynamic(shape[d]))
      dynamicSizes.push_back(tensor::DimOp::create(
          builder, loc, dynamicSource[d].first, dynamicSource[d].second));
  auto resultType = RankedTensorType::get(shape, et);
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
  auto generic = linalg::GenericOp::create(
      builder, loc, TypeRange{resultType}, operands, ValueRange{init}, maps,
      llvm::SmallVector<utils::IteratorType>(rank,
                                             utils::IteratorType::parallel),
      [&](OpBuilder &b, Location l, ValueRange args) {
        Value x = args[0], r;
        auto one = [&] {
          return arith::ConstantOp::create(b, l, b.getFloatAttr(et, 1.0));
        };
        if (op == "Add")
          r = arith::AddFOp::create(b, l, x, args[1]);
        else if (op == "Sub")
          r = arith::SubFOp::create(b, l, x, args[1]);
        else if (op == "Mul")
          r = arith::MulFOp::create(b, l, x, args[1]);
        else if (op == "Div")
          r = arith::DivFOp::create(b, l, x, args[1]);
        else if (op == "Pow")
          r = math::PowFOp::create(b, l, x, args[1]);
        else if (op == "Max")
          r = arith::MaximumFOp::create(b, l, x, args[1]);
        else if (op == "Min")
          r = arith::MinimumFOp::create(b, l, x, args[1]);
        else if (op == "Neg")
          r = arith::NegFOp::create(b, l, x);
        else if (op == "Relu")
          r = arith::MaximumFOp::create(
              b, l, x,
              arith::ConstantOp::create(b, l, b.getFloatAttr(et, 0.0)));
        else if (op == "Exp")
          r = math::ExpOp::create(b, l, x);
        else if (op == "Sqrt")
          r = math::SqrtOp::create(b, l, x);
        else if (op == "Tanh")
          r = math::TanhOp::create(b, l, x);
        else if (op == "Reciprocal")
          r = arith::DivFOp::create(b, l, one(), x);
        else // Sigmoid
          r = arith::DivFOp::create(
              b, l, one(),
              arith::AddFOp::create(
                  b, l, one(),
                  math::ExpOp::create(b, l, arith::NegFOp::create(b, l, x))));
        linalg::YieldOp::create(b, l, r);
      });
  values[node.output(0)] = generic.getResult(0);
  return std::nullopt;
}

/// Softmax over the last axis (opset 13 semantics), in three passes: the
/// row maximum, the sum of exponentials, the quotient.
std::optional<std::string>
Importer::importSoftmax(const onnx::NodeProto &node) {
  if (node.input_size() != 1 || node.output_size() != 1)
    return std::string("needs 1 input and 1 output");
  Value x = lookup(node.input(0));
  if (!x)
    return std::string("the input has an unsupported type");
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  int64_t axis = intAttr(node, "axis", -1);
  if (axis != -1 && axis != rank - 1)
    return std::string("only the last axis is imported yet");
  if (!type.getElementType().isF32() || rank < 1)
    return std::string("only f32 tensors are imported yet");
  Location loc = locOf(node);
  Type f32 = type.getElementType();
  llvm::SmallVector<OpFoldResult> rowSizes =
      tensor::getMixedSizes(builder, loc, x);
  rowSizes.pop_back();
  auto fill = [&](double value) {
    Value empty = tensor::EmptyOp::create(builder, loc, rowSizes, f32);
    Value c = arith::ConstantOp::create(builder, loc,
                                        builder.getFloatAttr(f32, value));
    return linalg::FillOp::create(builder, loc, c, empty).getResult(0);
  };
  AffineMap id = builder.getMultiDimIdentityMap(rank);
  AffineMap row = id.getMajorSubMap(rank - 1);
  llvm::SmallVector<utils::IteratorType> reduce(rank,
                                                utils::IteratorType::parallel);
  reduce.back() = utils::IteratorType::reduction;
  llvm::SmallVector<utils::IteratorType> parallel(
      rank, utils::IteratorType::parallel);
  Value max =
      linalg::GenericOp::create(
          builder, loc, TypeRange{fill(0).getType()}, ValueRange{x},
          ValueRange{fill(-INFINITY)}, llvm::ArrayRef<AffineMap>{id, row},
          reduce,
          [&](OpBuilder &b, Location l, ValueRange args) {
            linalg::YieldOp::create(
                b, l, Value(arith::MaximumFOp::create(b, l, args[0], args[1])));
          })
          .getResult(0);
  Value sum =
      linalg::GenericOp::create(
          builder, loc, TypeRange{max.getType()}, ValueRange{x, max},
          ValueRange{fill(0)}, llvm::ArrayRef<AffineMap>{id, row, row}, reduce,
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value e = math::ExpOp::create(
                b, l, arith::SubFOp::create(b, l, args[0], args[1]));
            linalg::YieldOp::create(
                b, l, Value(arith::AddFOp::create(b, l, args[2], e)));
          })
          .getResult(0);
  Value init = tensor::EmptyOp::create(
      builder, loc, tensor::getMixedSizes(builder, loc, x), f32);
  values[node.output(0)] =
      linalg::GenericOp::create(
          builder, loc, TypeRange{type}, ValueRange{x, max, sum},
          ValueRange{init}, llvm::ArrayRef<AffineMap>{id, row, row, id},
          parallel,
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value e = math::ExpOp::create(
                b, l, arith::SubFOp::create(b, l, args[0], args[1]));
            linalg::YieldOp::create(
                b, l, Value(arith::DivFOp::create(b, l, e, args[2])));
          })
          .getResult(0);
  return std::nullopt;
}

std::optional<std::string>
Importer::importSimplifiedLayerNorm(const onnx::NodeProto &node) {
  if (node.input_size() < 2 || node.output_size() < 1)
    return std::string("needs input and scale");
  if (node.output_size() > 1)
    return std::string("the optional inv_std_var output is not supported");
  int64_t axis = intAttr(node, "axis", -1);
  Value x = lookup(node.input(0)), scale = lookup(node.input(1));
  if (!x || !scale)
    return std::string("an input has an unsupported type");
  auto xt = cast<RankedTensorType>(x.getType());
  if (axis != -1 && axis != xt.getRank() - 1)
    return std::string("only normalisation over the last axis is supported");
  if (scale.getType() !=
      RankedTensorType::get({xt.getShape().back()}, xt.getElementType()))
    return std::string("scale must be [last dim] of the input's type");
  float eps = floatAttr(node, "epsilon").value_or(1e-5f);
  values[node.output(0)] =
      RMSNormOp::create(builder, locOf(node), x.getType(), x, scale,
                        builder.getF32FloatAttr(eps), UnitAttr());
  return std::nullopt;
}

std::optional<llvm::SmallVector<int64_t>>
Importer::constantInts(const std::string &name) {
  auto known = intConstants.find(name);
  if (known != intConstants.end())
    return known->second;
  auto init = model.initializers().find(name);
  if (init == model.initializers().end() || !init->second.inlineData ||
      init->second.dataType != onnx::TensorProto::INT64)
    return std::nullopt;
  auto *data = static_cast<const int64_t *>(init->second.inlineData);
  llvm::SmallVector<int64_t> result(data, data + init->second.byteSize / 8);
  intConstants[name] = result;
  return result;
}

/// The `count` values of a constant tensor of element type T, from its
/// raw_data or its typed field; nullopt when the sizes disagree.
template <typename T, typename Field>
std::optional<llvm::SmallVector<T>>
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

/// A Constant node's `value` tensor (float or int64, inline) as an
/// arith.constant; int64 values are also remembered for shapes and axes.
std::optional<std::string>
Importer::importConstant(const onnx::NodeProto &node) {
  const onnx::AttributeProto *attr = findAttr(node, "value");
  if (!attr || !attr->has_t() || node.output_size() != 1)
    return std::string("only the 'value' tensor form is imported yet");
  const onnx::TensorProto &t = attr->t();
  llvm::SmallVector<int64_t> shape(t.dims().begin(), t.dims().end());
  // Constants are small; anything else is refused before allocating.
  int64_t count = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(count, d, &count) || count > (1 << 24))
      return std::string("value has a negative or too large shape");
  Location loc = locOf(node);
  if (t.data_type() == onnx::TensorProto::INT64) {
    std::optional<llvm::SmallVector<int64_t>> v =
        decodeValues<int64_t>(t, t.int64_data(), count);
    if (!v)
      return std::string("value's data does not match its shape");
    auto type = RankedTensorType::get(shape, builder.getI64Type());
    values[node.output(0)] = arith::ConstantOp::create(
        builder, loc,
        DenseElementsAttr::get(type, llvm::ArrayRef<int64_t>(*v)));
    intConstants[node.output(0)] = *v;
    return std::nullopt;
  }
  if (t.data_type() == onnx::TensorProto::FLOAT) {
    std::optional<llvm::SmallVector<float>> v =
        decodeValues<float>(t, t.float_data(), count);
    if (!v)
      return std::string("value's data does not match its shape");
    auto type = RankedTensorType::get(shape, builder.getF32Type());
    values[node.output(0)] = arith::ConstantOp::create(
        builder, loc, DenseElementsAttr::get(type, llvm::ArrayRef<float>(*v)));
    return std::nullopt;
  }
  return "value of type " + ::moe::onnxDataTypeName(t.data_type()).str() +
         " is not imported yet";
}

std::optional<std::string>
Importer::importTranspose(const onnx::NodeProto &node) {
  if (node.input_size() != 1 || node.output_size() != 1)
    return std::string("needs 1 input and 1 output");
  Value x = lookup(node.input(0));
  if (!x)
    return std::string("the input has an unsupported type");
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  llvm::SmallVector<int64_t> perm;
  if (const onnx::AttributeProto *attr = findAttr(node, "perm"))
    perm.assign(attr->ints().begin(), attr->ints().end());
  else
    for (int64_t i = rank - 1; i >= 0; --i)
      perm.push_back(i);
  llvm::SmallVector<bool> seen(rank, false);
  if (int64_t(perm.size()) != rank)
    return std::string("perm does not list every dimension");
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[p])
      return std::string("perm is not a permutation");
    seen[p] = true;
  }
  Location loc = locOf(node);
  llvm::SmallVector<OpFoldResult> sizes;
  for (int64_t p : perm)
    sizes.push_back(tensor::getMixedSize(builder, loc, x, p));
  Value init =
      tensor::EmptyOp::create(builder, loc, sizes, type.getElementType());
  values[node.output(0)] =
      linalg::TransposeOp::create(builder, loc, x, init, perm).getResult()[0];
  return std::nullopt;
}

/// Reshape to a shape known at import time (0 copies the input's size,
/// -1 takes what is left), through tensor.reshape.
std::optional<std::string>
Importer::importReshape(const onnx::NodeProto &node) {
  if (node.input_size() != 2 || node.output_size() != 1)
    return std::string("needs data and shape");
  Value x = lookup(node.input(0));
  std::optional<llvm::SmallVector<int64_t>> target =
      constantInts(node.input(1));
  if (!x)
    return std::string("the input has an unsupported type");
  if (!target)
    return std::string("the shape is not a constant (an initializer or a "
                       "Constant node)");
  if (intAttr(node, "allowzero", 0))
    return std::string("allowzero = 1 is not imported yet");
  auto type = cast<RankedTensorType>(x.getType());
  Location loc = locOf(node);
  Type index = builder.getIndexType();
  auto c = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(builder, loc, v);
  };
  Value total = c(1);
  for (int64_t i = 0; i < type.getRank(); ++i)
    total = arith::MulIOp::create(builder, loc, total,
                                  tensor::DimOp::create(builder, loc, x, i));
  llvm::SmallVector<Value> dims;
  llvm::SmallVector<int64_t> shape;
  int64_t inferred = -1;
  Value known = c(1);
  for (auto [i, d] : llvm::enumerate(*target)) {
    if (d == -1) {
      if (inferred >= 0)
        return std::string("the shape has more than one -1");
      inferred = i;
      dims.push_back(Value());
      shape.push_back(ShapedType::kDynamic);
      continue;
    }
    if (d < -1)
      return llvm::formatv("the shape has a negative size ({0})", d).str();
    Value v;
    if (d == 0) {
      if (int64_t(i) >= type.getRank())
        return std::string("a 0 in the shape has no input dimension to copy");
      v = tensor::DimOp::create(builder, loc, x, i);
      shape.push_back(type.getDimSize(i));
    } else {
      v = c(d);
      shape.push_back(d);
    }
    known = arith::MulIOp::create(builder, loc, known, v);
    dims.push_back(v);
  }
  if (inferred >= 0)
    dims[inferred] = arith::DivUIOp::create(builder, loc, total, known);
  auto shapeType = RankedTensorType::get({int64_t(dims.size())}, index);
  Value shapeTensor =
      tensor::FromElementsOp::create(builder, loc, shapeType, dims);
  auto resultType = RankedTensorType::get(shape, type.getElementType());
  values[node.output(0)] =
      tensor::ReshapeOp::create(builder, loc, resultType, x, shapeTensor);
  return std::nullopt;
}

/// ReduceMean/ReduceSum of f32 over constant axes (attribute before opset
/// 18 for ReduceMean, input from opset 13 for ReduceSum and 18 for
/// ReduceMean), keepdims as given.
std::optional<std::string> Importer::importReduce(const onnx::NodeProto &node) {
  bool mean = node.op_type() == "ReduceMean";
  Value x = node.input_size() ? lookup(node.input(0)) : Value();
  if (!x || node.output_size() != 1)
    return std::string("needs an input of a supported type and 1 output");
  auto type = cast<RankedTensorType>(x.getType());
  if (!type.getElementType().isF32())
    return std::string("only f32 tensors are imported yet");
  int64_t rank = type.getRank();
  llvm::SmallVector<int64_t> axes;
  if (const onnx::AttributeProto *attr = findAttr(node, "axes")) {
    axes.assign(attr->ints().begin(), attr->ints().end());
  } else if (node.input_size() > 1 && !node.input(1).empty()) {
    std::optional<llvm::SmallVector<int64_t>> given =
        constantInts(node.input(1));
    if (!given)
      return std::string("the axes are not a constant");
    axes = *given;
  }
  if (axes.empty()) {
    if (intAttr(node, "noop_with_empty_axes", 0))
      return std::string("noop_with_empty_axes is not imported yet");
    for (int64_t i = 0; i < rank; ++i)
      axes.push_back(i);
  }
  llvm::SmallVector<bool> reduced(rank, false);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      return llvm::formatv("axis {0} is out of range", a).str();
    reduced[a < 0 ? a + rank : a] = true;
  }
  bool keep = intAttr(node, "keepdims", 1) != 0;
  Location loc = locOf(node);
  llvm::SmallVector<OpFoldResult> accSizes;
  llvm::SmallVector<int64_t> resultShape;
  llvm::SmallVector<AffineExpr> accExprs;
  llvm::SmallVector<utils::IteratorType> iters;
  Value count =
      arith::ConstantOp::create(builder, loc, builder.getF32FloatAttr(1.0f));
  for (int64_t i = 0; i < rank; ++i) {
    iters.push_back(reduced[i] ? utils::IteratorType::reduction
                               : utils::IteratorType::parallel);
    if (reduced[i]) {
      Value n = arith::UIToFPOp::create(
          builder, loc, builder.getF32Type(),
          arith::IndexCastUIOp::create(
              builder, loc, builder.getI64Type(),
              tensor::DimOp::create(builder, loc, x, i)));
      count = arith::MulFOp::create(builder, loc, count, n);
      if (keep) {
        accSizes.push_back(builder.getIndexAttr(1));
        resultShape.push_back(1);
        accExprs.push_back(builder.getAffineConstantExpr(0));
      }
      continue;
    }
    accSizes.push_back(tensor::getMixedSize(builder, loc, x, i));
    resultShape.push_back(type.getDimSize(i));
    accExprs.push_back(builder.getAffineDimExpr(i));
  }
  Type f32 = builder.getF32Type();
  Value zero =
      arith::ConstantOp::create(builder, loc, builder.getF32FloatAttr(0.0f));
  Value empty = tensor::EmptyOp::create(builder, loc, accSizes, f32);
  Value acc = linalg::FillOp::create(builder, loc, zero, empty).getResult(0);
  auto resultType = RankedTensorType::get(resultShape, f32);
  Value sum =
      linalg::GenericOp::create(
          builder, loc, TypeRange{acc.getType()}, ValueRange{x},
          ValueRange{acc},
          llvm::ArrayRef<AffineMap>{builder.getMultiDimIdentityMap(rank),
                                    AffineMap::get(rank, 0, accExprs, ctx)},
          iters,
          [&](OpBuilder &b, Location l, ValueRange args) {
            linalg::YieldOp::create(
                b, l, Value(arith::AddFOp::create(b, l, args[0], args[1])));
          })
          .getResult(0);
  if (sum.getType() != resultType)
    sum = tensor::CastOp::create(builder, loc, resultType, sum);
  if (mean) {
    int64_t outRank = resultType.getRank();
    AffineMap id = builder.getMultiDimIdentityMap(outRank);
    Value init = tensor::EmptyOp::create(
        builder, loc, tensor::getMixedSizes(builder, loc, sum), f32);
    sum = linalg::GenericOp::create(
              builder, loc, TypeRange{resultType}, ValueRange{sum},
              ValueRange{init}, llvm::ArrayRef<AffineMap>{id, id},
              llvm::SmallVector<utils::IteratorType>(
                  outRank, utils::IteratorType::parallel),
              [&](OpBuilder &b, Location l, ValueRange args) {
                linalg::YieldOp::create(
                    b, l, Value(arith::DivFOp::create(b, l, args[0], count)));
              })
              .getResult(0);
  }
  values[node.output(0)] = sum;
  return std::nullopt;
}

/// Cast between float types (f32, f16, bf16, f64).
std::optional<std::string> Importer::importCast(const onnx::NodeProto &node) {
  if (node.input_size() != 1 || node.output_size() != 1)
    return std::string("needs 1 input and 1 output");
  Value x = lookup(node.input(0));
  Type to = elementType(ctx, intAttr(node, "to", 0));
  if (!x || !to)
    return std::string("the input or target type is not supported");
  auto type = cast<RankedTensorType>(x.getType());
  Type from = type.getElementType();
  if (!isa<FloatType>(from) || !isa<FloatType>(to))
    return std::string("only casts between float types are imported yet");
  Location loc = locOf(node);
  if (from == to) {
    values[node.output(0)] = x;
    return std::nullopt;
  }
  auto resultType = type.clone(to);
  Value init = tensor::EmptyOp::create(
      builder, loc, tensor::getMixedSizes(builder, loc, x), to);
  AffineMap id = builder.getMultiDimIdentityMap(type.getRank());
  values[node.output(0)] =
      linalg::GenericOp::create(
          builder, loc, TypeRange{resultType}, ValueRange{x}, ValueRange{init},
          llvm::ArrayRef<AffineMap>{id, id},
          llvm::SmallVector<utils::IteratorType>(type.getRank(),
                                                 utils::IteratorType::parallel),
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value v = from.getIntOrFloatBitWidth() < to.getIntOrFloatBitWidth()
                          ? Value(arith::ExtFOp::create(b, l, to, args[0]))
                          : Value(arith::TruncFOp::create(b, l, to, args[0]));
            linalg::YieldOp::create(b, l, v);
          })
          .getResult(0);
  return std::nullopt;
}

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

/// Gather along axis 0 of a 2-D float tensor: moe.embedding, after mapping
/// ONNX's negative indices (counted from the end) to positive ones.
std::optional<std::string> Importer::importGather(const onnx::NodeProto &node) {
  if (node.input_size() != 2 || node.output_size() != 1)
    return std::string("needs data and indices");
  Value data = lookup(node.input(0)), ids = lookup(node.input(1));
  if (!data || !ids)
    return std::string("an input has an unsupported type");
  auto dt = cast<RankedTensorType>(data.getType());
  auto it = cast<RankedTensorType>(ids.getType());
  if (intAttr(node, "axis", 0) != 0 || dt.getRank() != 2 ||
      !isa<FloatType>(dt.getElementType()) ||
      !it.getElementType().isSignlessInteger() ||
      (it.getElementType().getIntOrFloatBitWidth() != 32 &&
       it.getElementType().getIntOrFloatBitWidth() != 64))
    return std::string("only axis-0 gathers of rows of a 2-D float tensor by "
                       "int32/int64 indices are imported yet");
  Location loc = locOf(node);
  Type idType = it.getElementType();
  Value rowsIdx = tensor::DimOp::create(builder, loc, data, 0);
  Value rows = arith::IndexCastOp::create(builder, loc, idType, rowsIdx);
  AffineMap id = builder.getMultiDimIdentityMap(it.getRank());
  Value init = tensor::EmptyOp::create(
      builder, loc, tensor::getMixedSizes(builder, loc, ids), idType);
  Value positive =
      linalg::GenericOp::create(
          builder, loc, TypeRange{it}, ValueRange{ids}, ValueRange{init},
          llvm::ArrayRef<AffineMap>{id, id},
          llvm::SmallVector<utils::IteratorType>(it.getRank(),
                                                 utils::IteratorType::parallel),
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value zero =
                arith::ConstantOp::create(b, l, b.getIntegerAttr(idType, 0));
            Value negative = arith::CmpIOp::create(
                b, l, arith::CmpIPredicate::slt, args[0], zero);
            Value shifted = arith::AddIOp::create(b, l, args[0], rows);
            linalg::YieldOp::create(b, l,
                                    Value(arith::SelectOp::create(
                                        b, l, negative, shifted, args[0])));
          })
          .getResult(0);
  llvm::SmallVector<int64_t> shape(it.getShape());
  shape.push_back(dt.getDimSize(1));
  values[node.output(0)] = EmbeddingOp::create(
      builder, loc, RankedTensorType::get(shape, dt.getElementType()), data,
      positive);
  return std::nullopt;
}

/// Squeeze/Unsqueeze with constant axes (the opset-13 input form), as a
/// reshape.
std::optional<std::string>
Importer::importSqueeze(const onnx::NodeProto &node) {
  bool squeeze = node.op_type() == "Squeeze";
  Value x = node.input_size() ? lookup(node.input(0)) : Value();
  if (!x || node.output_size() != 1)
    return std::string("needs an input of a supported type and 1 output");
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  std::optional<llvm::SmallVector<int64_t>> axes;
  if (node.input_size() > 1 && !node.input(1).empty())
    axes = constantInts(node.input(1));
  else if (const onnx::AttributeProto *attr = findAttr(node, "axes"))
    axes = llvm::SmallVector<int64_t>(attr->ints().begin(), attr->ints().end());
  Location loc = locOf(node);
  llvm::SmallVector<int64_t> shape;
  llvm::SmallVector<OpFoldResult> dims;
  if (squeeze) {
    llvm::SmallVector<bool> drop(rank, false);
    if (!axes) {
      for (int64_t i = 0; i < rank; ++i)
        drop[i] = type.getDimSize(i) == 1;
    } else {
      for (int64_t a : *axes) {
        if (a < -rank || a >= rank)
          return llvm::formatv("axis {0} is out of range", a).str();
        int64_t d = a < 0 ? a + rank : a;
        if (type.getDimSize(d) != 1)
          return llvm::formatv("dimension {0} is not statically 1", d).str();
        drop[d] = true;
      }
    }
    for (int64_t i = 0; i < rank; ++i)
      if (!drop[i]) {
        shape.push_back(type.getDimSize(i));
        dims.push_back(tensor::getMixedSize(builder, loc, x, i));
      }
  } else {
    if (!axes)
      return std::string("the axes are not a constant");
    int64_t outRank = rank + int64_t(axes->size());
    llvm::SmallVector<bool> added(outRank, false);
    for (int64_t a : *axes) {
      if (a < -outRank || a >= outRank)
        return llvm::formatv("axis {0} is out of range", a).str();
      added[a < 0 ? a + outRank : a] = true;
    }
    for (int64_t i = 0, j = 0; i < outRank; ++i) {
      if (added[i]) {
        shape.push_back(1);
        dims.push_back(builder.getIndexAttr(1));
      } else {
        shape.push_back(type.getDimSize(j));
        dims.push_back(tensor::getMixedSize(builder, loc, x, j++));
      }
    }
  }
  values[node.output(0)] = reshapeTo(loc, x, shape, dims);
  return std::nullopt;
}

/// Gemm with alpha = beta = 1 and no transposed A: Y = A B' + C, C absent
/// or a row bias ([N] or [1, N]). With transB = 1 (torch.nn.Linear's
/// export) it is moe.linear, so the projection passes see it.
std::optional<std::string> Importer::importGemm(const onnx::NodeProto &node) {
  if (node.input_size() < 2 || node.output_size() != 1)
    return std::string("needs A and B");
  if (intAttr(node, "transA", 0) != 0 ||
      floatAttr(node, "alpha").value_or(1.0f) != 1.0f ||
      floatAttr(node, "beta").value_or(1.0f) != 1.0f)
    return std::string("only alpha = beta = 1 without transA is imported yet");
  bool transB = intAttr(node, "transB", 0) != 0;
  Value a = lookup(node.input(0)), b = lookup(node.input(1));
  Value c = node.input_size() > 2 && !node.input(2).empty()
                ? lookup(node.input(2))
                : Value();
  if (!a || !b || (node.input_size() > 2 && !node.input(2).empty() && !c))
    return std::string("an input has an unsupported type");
  auto at = cast<RankedTensorType>(a.getType());
  auto bt = cast<RankedTensorType>(b.getType());
  Type et = at.getElementType();
  if (at.getRank() != 2 || bt.getRank() != 2 || bt.getElementType() != et ||
      !isa<FloatType>(et))
    return std::string("A and B must be 2-D float tensors of one type");
  int64_t n = bt.getDimSize(transB ? 0 : 1);
  Location loc = locOf(node);
  if (c) {
    auto ct = cast<RankedTensorType>(c.getType());
    bool row =
        ct.getElementType() == et &&
        ((ct.getRank() == 1 && ct.getDimSize(0) == n) ||
         (ct.getRank() == 2 && ct.getDimSize(0) == 1 && ct.getDimSize(1) == n));
    if (!row)
      return std::string("only a [N] or [1, N] C is imported yet");
    if (ct.getRank() == 2)
      c = tensor::CollapseShapeOp::create(
          builder, loc, c, llvm::ArrayRef<ReassociationIndices>{{0, 1}});
  }
  if (!transB) {
    // [K, N] weights: the transpose moe.linear wants, as a linalg op.
    Value init =
        tensor::EmptyOp::create(builder, loc,
                                llvm::SmallVector<OpFoldResult>{
                                    tensor::getMixedSize(builder, loc, b, 1),
                                    tensor::getMixedSize(builder, loc, b, 0)},
                                et);
    b = linalg::TransposeOp::create(builder, loc, b, init,
                                    llvm::ArrayRef<int64_t>{1, 0})
            .getResult()[0];
  }
  auto type = RankedTensorType::get({at.getDimSize(0), n}, et);
  values[node.output(0)] =
      LinearOp::create(builder, loc, type, a, b, c, /*norm_weight=*/Value(),
                       /*residual=*/Value(), /*norm_eps=*/FloatAttr(),
                       /*norm_weight_in_f32=*/UnitAttr());
  return std::nullopt;
}

/// com.microsoft.MoE -> moe.route + moe.experts. The routing follows the
/// op's CUDA kernel: `router_probs` are logits, softmax over all experts,
/// top-k, then optional renormalisation.
std::optional<std::string> Importer::importMoE(const onnx::NodeProto &node) {
  ONNXMoEBlock block;
  block.node = model.describe(node);
  block.form = "com.microsoft.MoE";
  auto notRaised = [&](const std::string &why) -> std::optional<std::string> {
    block.reason = why;
    if (blocks)
      blocks->push_back(block);
    return "MoE block not raised: " + why;
  };
  auto input = [&](int i) -> Value {
    if (i >= node.input_size() || node.input(i).empty())
      return nullptr;
    return lookup(node.input(i));
  };
  if (node.output_size() != 1)
    return notRaised("expects one output");
  std::string activation = stringAttr(node, "activation_type", "relu");
  int64_t k = intAttr(node, "k", 1);
  bool normalize = intAttr(node, "normalize_routing_weights", 0) != 0;
  int64_t fusion = intAttr(node, "swiglu_fusion", 0);
  if (intAttr(node, "use_sparse_mixer", 0))
    return notRaised("use_sparse_mixer (Phi-3.5 SparseMixer routing) has no "
                     "moe.route form");
  Value x = input(0), fc1 = input(2), fc2 = input(4), fc3 = input(6);
  Value fc1Bias = input(3), fc2Bias = input(5), fc3Bias = input(7);
  if (!x || !fc1 || !fc2)
    return notRaised("input, fc1_experts_weights and fc2_experts_weights are "
                     "required");
  auto xt = cast<RankedTensorType>(x.getType());
  if (xt.getRank() != 2)
    return notRaised("only a [T, H] input is raised yet");
  if (!fc1.getDefiningOp<WeightOp>() || !fc2.getDefiningOp<WeightOp>() ||
      (fc3 && !fc3.getDefiningOp<WeightOp>()))
    return notRaised("expert weights must be initializers");

  // The router: router_probs must be MatMul(input, W) with W an [H, E]
  // initializer, so that moe.route computes the logits itself.
  Value probs = input(1);
  auto matmul = probs ? probs.getDefiningOp<linalg::MatmulOp>() : nullptr;
  Value router = matmul ? matmul.getInputs()[1] : Value();
  if (!matmul || matmul.getInputs()[0] != x ||
      !router.getDefiningOp<WeightOp>())
    return notRaised("router_probs is not MatMul(input, initializer)");
  auto routerType = cast<RankedTensorType>(router.getType());
  int64_t hidden = xt.getDimSize(1), numExperts = routerType.getDimSize(1);
  if (k < 1 || k > numExperts)
    return notRaised(
        llvm::formatv("k = {0} is not in [1, {1}]", k, numExperts));

  // Expert weights, [E, I, H] gate/up and [E, H, I] down.
  auto fc1Type = cast<RankedTensorType>(fc1.getType());
  auto fc2Type = cast<RankedTensorType>(fc2.getType());
  if (fc1Type.getRank() != 3 || fc2Type.getRank() != 3)
    return notRaised("expert weights must be 3-D");
  int64_t inter = fc2Type.getDimSize(2);
  int64_t factor = activation == "swiglu" && fusion != 0 ? 2 : 1;
  if (fc2Type.getDimSize(1) != hidden ||
      fc1Type.getDimSize(1) != factor * inter ||
      fc1Type.getDimSize(2) != hidden)
    return notRaised(llvm::formatv(
        "weights are not in the [E, I, H] / [E, H, I] layout (legacy "
        "[E, H, I] fc1 layouts are not raised yet): fc1 {0}, fc2 {1}",
        fc1Type, fc2Type));
  if (fc1Type.getDimSize(0) != numExperts ||
      fc2Type.getDimSize(0) != numExperts)
    return notRaised("the router and the expert weights disagree on the "
                     "number of experts (expert parallelism is not raised)");

  auto hasShape = [](Value v, llvm::ArrayRef<int64_t> shape) {
    return !v || cast<RankedTensorType>(v.getType()).getShape() == shape;
  };
  if (!hasShape(fc1Bias, {numExperts, factor * inter}) ||
      !hasShape(fc2Bias, {numExperts, hidden}) ||
      !hasShape(fc3Bias, {numExperts, inter}) ||
      !hasShape(fc3, {numExperts, inter, hidden}))
    return notRaised(llvm::formatv("a bias or fc3 does not match the expert "
                                   "weights (E = {0}, I = {1}, H = {2})",
                                   numExperts, inter, hidden));
  if (fc1Type.getElementType() != xt.getElementType() ||
      fc2Type.getElementType() != xt.getElementType())
    return notRaised("expert weights and input differ in element type");

  Location loc = locOf(node);
  Type et = fc1Type.getElementType();
  // Rows of fc1 (and its bias): every row (stride 1) or every other.
  auto rows = [&](Value t, int64_t first, int64_t stride) -> Value {
    auto type = cast<RankedTensorType>(t.getType());
    llvm::SmallVector<int64_t> offsets(type.getRank(), 0),
        strides(type.getRank(), 1);
    llvm::SmallVector<int64_t> sizes(type.getShape());
    offsets[1] = first;
    strides[1] = stride;
    sizes[1] = inter;
    auto result = RankedTensorType::get(sizes, type.getElementType());
    return tensor::ExtractSliceOp::create(
        builder, loc, result, t, ValueRange{}, ValueRange{}, ValueRange{},
        builder.getDenseI64ArrayAttr(offsets),
        builder.getDenseI64ArrayAttr(sizes),
        builder.getDenseI64ArrayAttr(strides));
  };
  Value gate, up, gateBias, upBias;
  if (activation == "swiglu" && fusion == 1) {
    gate = rows(fc1, 0, 2); // interleaved g0, u0, g1, u1, ...
    up = rows(fc1, 1, 2);
    if (fc1Bias) {
      gateBias = rows(fc1Bias, 0, 2);
      upBias = rows(fc1Bias, 1, 2);
    }
  } else if (activation == "swiglu" && fusion == 2) {
    gate = rows(fc1, 0, 1); // concatenated [gate; up]
    up = rows(fc1, inter, 1);
    if (fc1Bias) {
      gateBias = rows(fc1Bias, 0, 1);
      upBias = rows(fc1Bias, inter, 1);
    }
  } else if ((activation == "swiglu" || activation == "silu") && fusion == 0 &&
             fc3) {
    gate = fc1; // FC1 gate, FC3 linear
    up = fc3;
    gateBias = fc1Bias;
    upBias = fc3Bias;
  } else {
    return notRaised("activation_type '" + activation + "'" +
                     (fc3 ? "" : " without fc3") +
                     " is not a gated FFN that moe.experts expresses");
  }
  if (cast<RankedTensorType>(up.getType()) !=
      cast<RankedTensorType>(gate.getType()))
    return notRaised("fc3 does not match fc1");

  // Activation parameters: SwiGLU with alpha 1, beta 0 and no limit is
  // moe.experts' plain swiglu; anything else its clamped form.
  float alpha = floatAttr(node, "activation_alpha").value_or(1.0f);
  float beta = floatAttr(node, "activation_beta").value_or(0.0f);
  std::optional<float> limit = floatAttr(node, "swiglu_limit");
  bool plain =
      activation == "silu" || (alpha == 1.0f && beta == 0.0f && !limit);
  // Biases come in threes; a missing one is zero.
  bool anyBias = gateBias || upBias || fc2Bias;
  auto zeros = [&](llvm::ArrayRef<int64_t> shape) -> Value {
    auto type = RankedTensorType::get(shape, et);
    return arith::ConstantOp::create(
        builder, loc, DenseElementsAttr::get(type, builder.getZeroAttr(et)));
  };
  if (anyBias) {
    if (!gateBias)
      gateBias = zeros({numExperts, inter});
    if (!upBias)
      upBias = zeros({numExperts, inter});
    if (!fc2Bias)
      fc2Bias = zeros({numExperts, hidden});
  }

  auto idsType =
      RankedTensorType::get({xt.getDimSize(0), k}, builder.getI32Type());
  auto weightsType =
      RankedTensorType::get({xt.getDimSize(0), k}, builder.getF32Type());
  // moe.route wants the router as [E, H].
  Value routerEH =
      linalg::TransposeOp::create(
          builder, loc, router,
          tensor::EmptyOp::create(builder, loc,
                                  llvm::ArrayRef<int64_t>{numExperts, hidden},
                                  routerType.getElementType()),
          llvm::ArrayRef<int64_t>{1, 0})
          .getResult()[0];
  auto route = RouteOp::create(
      builder, loc, idsType, weightsType, x, routerEH, Value(), Value(),
      builder.getI64IntegerAttr(k), ScoreFuncAttr::get(ctx, ScoreFunc::Softmax),
      RouteOrderAttr::get(ctx, RouteOrder::ScoreThenTopK),
      builder.getI64IntegerAttr(1), builder.getI64IntegerAttr(1),
      GroupScoreAttr::get(ctx, GroupScore::Max),
      RenormAttr::get(ctx, normalize ? Renorm::Sum : Renorm::None),
      builder.getF32FloatAttr(0.0f), builder.getF32FloatAttr(1.0f));
  auto experts = ExpertsOp::create(
      builder, loc, x.getType(), x, route.getExpertIds(),
      route.getExpertWeights(), gate, up, fc2, gateBias, upBias,
      anyBias ? fc2Bias : Value(), Value(), Value(), Value(), Value(),
      ActivationAttr::get(ctx, plain ? Activation::SwiGLU
                                     : Activation::SwiGLUClamped),
      builder.getF32FloatAttr(plain ? 1.702f : alpha),
      builder.getF32FloatAttr(plain ? 7.0f : limit.value_or(FLT_MAX)),
      builder.getF32FloatAttr(plain ? 1.0f : beta));
  values[node.output(0)] = experts.getResult();
  block.raised = true;
  if (blocks)
    blocks->push_back(block);
  return std::nullopt;
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
    if (std::optional<std::string> reason = importNode(*node))
      note(*node, *reason);

  if (!missing.empty()) {
    unsigned nodes = 0;
    for (const Missing &m : missing)
      nodes += m.count;
    std::string text =
        llvm::formatv("{0} of the graph's {1} nodes ({2} op "
                      "kinds) cannot be imported:",
                      nodes, model.nodes().size(), missing.size());
    for (const Missing &m : missing)
      text += llvm::formatv("\n  {0} x{1}, first node {2}: {3}", m.kind,
                            m.count, m.firstNode, m.reason)
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
} // namespace

llvm::Expected<OwningOpRef<ModuleOp>>
mlir::moe::importONNXModel(MLIRContext *context, const ::moe::ONNXModel &model,
                           std::vector<ONNXMoEBlock> *blocks) {
  context->loadDialect<MoEDialect, arith::ArithDialect, func::FuncDialect,
                       linalg::LinalgDialect, math::MathDialect,
                       tensor::TensorDialect>();
  Importer importer(context, model, blocks);
  return importer.run();
}
