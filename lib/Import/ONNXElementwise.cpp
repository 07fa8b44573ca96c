//===- ONNXElementwise.cpp - Elementwise, cast, softmax, reduce ops -------===//
//
// Broadcasting elementwise ops on float, integer and bool tensors (one
// linalg.generic each), comparisons and Where, Clip, Cast, Softmax and the
// Reduce family. Integer ops whose operands are known integers fold into
// known integers instead (shape arithmetic of exported graphs).
//
//===----------------------------------------------------------------------===//

#include "ONNXImporterImpl.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::onnximport;

namespace {
bool isOneOf(llvm::StringRef op, std::initializer_list<llvm::StringRef> ops) {
  return llvm::is_contained(ops, op);
}

/// The body of a float elementwise op on `args`, or null if `op` has none.
Value floatBody(OpBuilder &b, Location l, llvm::StringRef op,
                const onnx::NodeProto &node, Type et, ValueRange args) {
  auto c = [&](double v) -> Value {
    return arith::ConstantOp::create(b, l, b.getFloatAttr(et, v));
  };
  Value x = args[0];
  if (op == "Add")
    return arith::AddFOp::create(b, l, x, args[1]);
  if (op == "Sub")
    return arith::SubFOp::create(b, l, x, args[1]);
  if (op == "Mul")
    return arith::MulFOp::create(b, l, x, args[1]);
  if (op == "Div")
    return arith::DivFOp::create(b, l, x, args[1]);
  if (op == "Pow") {
    Value e = args[1];
    if (!isa<FloatType>(e.getType()))
      e = arith::SIToFPOp::create(b, l, et, e);
    return math::PowFOp::create(b, l, x, e);
  }
  if (op == "Max")
    return arith::MaximumFOp::create(b, l, x, args[1]);
  if (op == "Min")
    return arith::MinimumFOp::create(b, l, x, args[1]);
  if (op == "Mod")
    return arith::RemFOp::create(b, l, x, args[1]);
  if (op == "Neg")
    return arith::NegFOp::create(b, l, x);
  if (op == "Relu")
    return arith::MaximumFOp::create(b, l, x, c(0));
  if (op == "Exp")
    return math::ExpOp::create(b, l, x);
  if (op == "Log")
    return math::LogOp::create(b, l, x);
  if (op == "Sqrt")
    return math::SqrtOp::create(b, l, x);
  if (op == "Tanh")
    return math::TanhOp::create(b, l, x);
  if (op == "Cos")
    return math::CosOp::create(b, l, x);
  if (op == "Sin")
    return math::SinOp::create(b, l, x);
  if (op == "Abs")
    return math::AbsFOp::create(b, l, x);
  if (op == "Erf")
    return math::ErfOp::create(b, l, x);
  if (op == "Floor")
    return math::FloorOp::create(b, l, x);
  if (op == "Ceil")
    return math::CeilOp::create(b, l, x);
  if (op == "Reciprocal")
    return arith::DivFOp::create(b, l, c(1), x);
  if (op == "Softplus")
    return math::Log1pOp::create(b, l, math::ExpOp::create(b, l, x));
  if (op == "Sigmoid")
    return arith::DivFOp::create(
        b, l, c(1),
        arith::AddFOp::create(
            b, l, c(1),
            math::ExpOp::create(b, l, arith::NegFOp::create(b, l, x))));
  if (op == "IsNaN")
    return arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNO, x, x);
  if (op == "IsInf") {
    bool pos = intAttr(node, "detect_positive", 1) != 0;
    bool neg = intAttr(node, "detect_negative", 1) != 0;
    Value isPos = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, x,
                                        c(INFINITY));
    Value isNeg = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, x,
                                        c(-INFINITY));
    Value no = arith::ConstantOp::create(b, l, b.getBoolAttr(false));
    return arith::OrIOp::create(b, l, pos ? isPos : no, neg ? isNeg : no);
  }
  using P = arith::CmpFPredicate;
  std::optional<P> pred = llvm::StringSwitch<std::optional<P>>(op)
                              .Case("Equal", P::OEQ)
                              .Case("Less", P::OLT)
                              .Case("LessOrEqual", P::OLE)
                              .Case("Greater", P::OGT)
                              .Case("GreaterOrEqual", P::OGE)
                              .Default(std::nullopt);
  if (pred)
    return arith::CmpFOp::create(b, l, *pred, x, args[1]);
  return nullptr;
}

/// The body of an integer (or bool) elementwise op, or null.
Value intBody(OpBuilder &b, Location l, llvm::StringRef op,
              const onnx::NodeProto &node, Type et, ValueRange args) {
  Value x = args[0];
  auto c = [&](int64_t v) -> Value {
    return arith::ConstantOp::create(b, l, b.getIntegerAttr(et, v));
  };
  if (op == "Add")
    return arith::AddIOp::create(b, l, x, args[1]);
  if (op == "Sub")
    return arith::SubIOp::create(b, l, x, args[1]);
  if (op == "Mul")
    return arith::MulIOp::create(b, l, x, args[1]);
  if (op == "Div")
    return arith::DivSIOp::create(b, l, x, args[1]);
  if (op == "Max")
    return arith::MaxSIOp::create(b, l, x, args[1]);
  if (op == "Min")
    return arith::MinSIOp::create(b, l, x, args[1]);
  if (op == "Mod") {
    Value r = arith::RemSIOp::create(b, l, x, args[1]);
    if (intAttr(node, "fmod", 0))
      return r;
    // Python-style: the result takes the divisor's sign.
    Value zero = c(0);
    Value nonzero =
        arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, r, zero);
    Value rNeg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, r, zero);
    Value dNeg =
        arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, args[1], zero);
    Value fix = arith::AndIOp::create(
        b, l, nonzero, arith::XOrIOp::create(b, l, rNeg, dNeg));
    return arith::SelectOp::create(
        b, l, fix, arith::AddIOp::create(b, l, r, args[1]), r);
  }
  if (op == "Neg")
    return arith::SubIOp::create(b, l, c(0), x);
  if (op == "Abs")
    return math::AbsIOp::create(b, l, x);
  if (op == "Relu")
    return arith::MaxSIOp::create(b, l, x, c(0));
  if (op == "Not")
    return arith::XOrIOp::create(b, l, x, c(1));
  if (op == "And")
    return arith::AndIOp::create(b, l, x, args[1]);
  if (op == "Or")
    return arith::OrIOp::create(b, l, x, args[1]);
  if (op == "Xor")
    return arith::XOrIOp::create(b, l, x, args[1]);
  using P = arith::CmpIPredicate;
  std::optional<P> pred = llvm::StringSwitch<std::optional<P>>(op)
                              .Case("Equal", P::eq)
                              .Case("Less", P::slt)
                              .Case("LessOrEqual", P::sle)
                              .Case("Greater", P::sgt)
                              .Case("GreaterOrEqual", P::sge)
                              .Default(std::nullopt);
  if (pred)
    return arith::CmpIOp::create(b, l, *pred, x, args[1]);
  return nullptr;
}
} // namespace

/// Integer ops on known integers fold into known integers: the shape
/// arithmetic of exported graphs. Returns false when it cannot decide
/// (then the op is imported on tensors).
ImportResult Importer::importKnownArith(const onnx::NodeProto &node) {
  const std::string &op = node.op_type();
  llvm::SmallVector<KnownInts> in;
  for (const std::string &name : node.input()) {
    std::optional<KnownInts> k = knownInts(name);
    if (!k)
      return std::string("not known");
    in.push_back(*k);
  }
  size_t n = 1;
  for (const KnownInts &k : in)
    if (k.elems.size() != 1)
      n = k.elems.size();
  for (const KnownInts &k : in)
    if (k.elems.size() != 1 && k.elems.size() != n)
      return std::string("not known");
  auto at = [&](const KnownInts &k, size_t i) {
    return k.elems[k.elems.size() == 1 ? 0 : i];
  };
  KnownInts out;
  out.scalar = llvm::all_of(in, [](const KnownInts &k) { return k.scalar; });
  out.type = in.back().type;
  Location loc = locOf(node);
  bool compare = isOneOf(op, {"Equal", "Less", "Greater", "LessOrEqual",
                              "GreaterOrEqual"});
  if (compare)
    out.type = builder.getI1Type();
  for (size_t i = 0; i < n; ++i) {
    if (op == "Where") {
      std::optional<int64_t> cond = getConstantIntValue(at(in[0], i));
      if (!cond)
        return std::string("not known");
      out.elems.push_back(at(in[*cond ? 1 : 2], i));
      continue;
    }
    if (op == "Neg") {
      out.elems.push_back(
          foldIndex(loc, '-', builder.getIndexAttr(0), at(in[0], i)));
      continue;
    }
    OpFoldResult a = at(in[0], i), b = at(in[1], i);
    if (compare) {
      std::optional<int64_t> x = getConstantIntValue(a),
                             y = getConstantIntValue(b);
      // Sizes are never negative: comparing one with a negative constant
      // (reshape's -1 in torch exports) is decided.
      if (!x && y && *y < 0)
        x = 0;
      if (x && !y && *x < 0)
        y = 0;
      if (!x || !y)
        return std::string("not known");
      bool r = op == "Equal"         ? *x == *y
               : op == "Less"        ? *x < *y
               : op == "Greater"     ? *x > *y
               : op == "LessOrEqual" ? *x <= *y
                                     : *x >= *y;
      if (op == "Equal" && (!getConstantIntValue(a) || !getConstantIntValue(b)))
        r = false;
      out.elems.push_back(builder.getIndexAttr(r));
      continue;
    }
    char c = op == "Add"   ? '+'
             : op == "Sub" ? '-'
             : op == "Mul" ? '*'
             : op == "Div" ? '/'
             : op == "Mod" ? '%'
             : op == "Min" ? '<'
                           : '>';
    out.elems.push_back(foldIndex(loc, c, a, b));
  }
  setKnown(node.output(0), out);
  return std::nullopt;
}

/// Elementwise ops with numpy-style broadcasting, as one linalg.generic: a
/// size-1 (or missing leading) dimension is broadcast; a dynamic dimension
/// must match the others at run time.
ImportResult Importer::importElementwise(const onnx::NodeProto &node) {
  const std::string &op = node.op_type();
  bool unary = isOneOf(op, {"Sigmoid", "Relu", "Neg", "Exp", "Log", "Sqrt",
                            "Reciprocal", "Tanh", "Cos", "Sin", "Abs", "Erf",
                            "Floor", "Ceil", "Softplus", "Not", "IsNaN",
                            "IsInf"});
  int arity = unary ? 1 : op == "Where" ? 3 : 2;
  if (node.input_size() != arity || node.output_size() != 1)
    return llvm::formatv("needs {0} input(s) and 1 output", arity).str();
  if (op == "Add" && (raiseSharedExpert(node) || raiseUnrolledMoE(node)))
    return std::nullopt;
  if (isOneOf(op, {"Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Neg",
                   "Equal", "Less", "Greater", "LessOrEqual",
                   "GreaterOrEqual", "Where"}) &&
      !importKnownArith(node))
    return std::nullopt;
  llvm::SmallVector<Value> operands;
  for (const std::string &name : node.input())
    if (Value v = lookup(name))
      operands.push_back(v);
    else
      return std::string("an input has an unsupported type");
  auto elementOf = [](Value v) {
    return cast<RankedTensorType>(v.getType()).getElementType();
  };
  // The value operands (all but Where's condition) share one type, except
  // Pow's exponent.
  ValueRange data = op == "Where" ? ValueRange(operands).drop_front()
                                  : ValueRange(operands);
  Type et = elementOf(data[0]);
  for (Value v : data.drop_front(op == "Pow" ? 2 : 1))
    if (elementOf(v) != et)
      return std::string("operands differ in element type");
  if (op == "Where" && !elementOf(operands[0]).isInteger(1))
    return std::string("the condition is not bool");
  bool isFloat = isa<FloatType>(et);
  bool isBool = et.isInteger(1);
  if (isOneOf(op, {"Not", "And", "Or", "Xor"}) != isBool && op != "Where" &&
      !(isBool && op == "Equal"))
    return llvm::formatv("{0} of {1} is not imported", op, et).str();
  bool boolResult =
      isOneOf(op, {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
                   "Not", "And", "Or", "Xor", "IsNaN", "IsInf"});
  Type resultElement = boolResult ? builder.getI1Type() : et;
  // Check that the op has a body for this type before building anything.
  {
    OpBuilder probe(ctx);
    Block scratch;
    probe.setInsertionPointToStart(&scratch);
    llvm::SmallVector<Value> args;
    for (Value v : operands)
      args.push_back(scratch.addArgument(elementOf(v), fileLoc));
    Value body = op == "Where" ? args[1]
                 : isFloat
                     ? floatBody(probe, fileLoc, op, node, et, args)
                     : intBody(probe, fileLoc, op, node, et, args);
    if (!body)
      return llvm::formatv("{0} of {1} is not imported", op, et).str();
  }
  llvm::Expected<Value> result = broadcastGeneric(
      locOf(node), operands, resultElement,
      [&](OpBuilder &b, Location l, ValueRange args) -> Value {
        if (op == "Where")
          return arith::SelectOp::create(b, l, args[0], args[1], args[2]);
        return isFloat ? floatBody(b, l, op, node, et, args)
                       : intBody(b, l, op, node, et, args);
      });
  if (!result)
    return llvm::toString(result.takeError());
  values[node.output(0)] = *result;
  return std::nullopt;
}

/// Clip(x, min, max) with optional constant-or-tensor bounds (inputs from
/// opset 11): max(min(x, hi), lo), NaN propagated as onnxruntime does.
ImportResult Importer::importClip(const onnx::NodeProto &node) {
  Value x = input(node, 0);
  if (!x || node.output_size() != 1)
    return std::string("needs an input of a supported type and 1 output");
  Type et = cast<RankedTensorType>(x.getType()).getElementType();
  llvm::SmallVector<Value> operands = {x};
  Value lo = input(node, 1), hi = input(node, 2);
  for (Value bound : {lo, hi})
    if (bound) {
      if (cast<RankedTensorType>(bound.getType()).getElementType() != et)
        return std::string("bounds differ from the input's element type");
      operands.push_back(bound);
    }
  bool isFloat = isa<FloatType>(et);
  llvm::Expected<Value> result = broadcastGeneric(
      locOf(node), operands, et,
      [&](OpBuilder &b, Location l, ValueRange args) -> Value {
        Value v = args[0];
        size_t i = 1;
        if (lo)
          v = isFloat ? Value(arith::MaximumFOp::create(b, l, v, args[i++]))
                      : Value(arith::MaxSIOp::create(b, l, v, args[i++]));
        if (hi)
          v = isFloat ? Value(arith::MinimumFOp::create(b, l, v, args[i]))
                      : Value(arith::MinSIOp::create(b, l, v, args[i]));
        return v;
      });
  if (!result)
    return llvm::toString(result.takeError());
  values[node.output(0)] = *result;
  return std::nullopt;
}

/// Cast between any two of f32, f16, bf16, f64, i64, i32 and bool. Float
/// to integer truncates toward zero; anything to bool is `!= 0`. Known
/// integers cast to an integer type stay known.
ImportResult Importer::importCast(const onnx::NodeProto &node) {
  if (node.input_size() != 1 || node.output_size() != 1)
    return std::string("needs 1 input and 1 output");
  Type to = elementType(ctx, intAttr(node, "to", 0));
  if (!to)
    return std::string("the target type is not supported");
  if (std::optional<KnownInts> k = knownInts(node.input(0));
      k && isa<IntegerType>(to) && !to.isInteger(1)) {
    k->type = to;
    setKnown(node.output(0), *k);
    return std::nullopt;
  }
  Value x = lookup(node.input(0));
  if (!x)
    return std::string("the input has an unsupported type");
  auto type = cast<RankedTensorType>(x.getType());
  Type from = type.getElementType();
  if (from == to) {
    values[node.output(0)] = x;
    return std::nullopt;
  }
  Location loc = locOf(node);
  AffineMap id = builder.getMultiDimIdentityMap(type.getRank());
  Value init = tensor::EmptyOp::create(
      builder, loc, tensor::getMixedSizes(builder, loc, x), to);
  values[node.output(0)] =
      linalg::GenericOp::create(
          builder, loc, TypeRange{type.clone(to)}, ValueRange{x},
          ValueRange{init}, llvm::ArrayRef<AffineMap>{id, id},
          llvm::SmallVector<utils::IteratorType>(type.getRank(),
                                                 utils::IteratorType::parallel),
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value v = args[0], r;
            unsigned fw = from.getIntOrFloatBitWidth(),
                     tw = to.getIntOrFloatBitWidth();
            if (to.isInteger(1)) {
              r = isa<FloatType>(from)
                      ? Value(arith::CmpFOp::create(
                            b, l, arith::CmpFPredicate::UNE, v,
                            arith::ConstantOp::create(
                                b, l, b.getFloatAttr(from, 0.0))))
                      : Value(arith::CmpIOp::create(
                            b, l, arith::CmpIPredicate::ne, v,
                            arith::ConstantOp::create(
                                b, l, b.getIntegerAttr(from, 0))));
            } else if (isa<FloatType>(from) && isa<FloatType>(to)) {
              r = fw < tw ? Value(arith::ExtFOp::create(b, l, to, v))
                          : Value(arith::TruncFOp::create(b, l, to, v));
            } else if (isa<FloatType>(from)) {
              r = arith::FPToSIOp::create(b, l, to, v);
            } else if (isa<FloatType>(to)) {
              r = from.isInteger(1)
                      ? Value(arith::UIToFPOp::create(b, l, to, v))
                      : Value(arith::SIToFPOp::create(b, l, to, v));
            } else if (fw < tw) {
              r = from.isInteger(1) ? Value(arith::ExtUIOp::create(b, l, to, v))
                                    : Value(arith::ExtSIOp::create(b, l, to, v));
            } else {
              r = arith::TruncIOp::create(b, l, to, v);
            }
            linalg::YieldOp::create(b, l, r);
          })
          .getResult(0);
  return std::nullopt;
}

/// Softmax over one axis (opset 13 semantics), in three passes over the
/// last axis (another axis is swapped there and back): the row maximum,
/// the sum of exponentials, the quotient.
ImportResult Importer::importSoftmax(const onnx::NodeProto &node) {
  if (node.input_size() != 1 || node.output_size() != 1)
    return std::string("needs 1 input and 1 output");
  Value x = lookup(node.input(0));
  if (!x)
    return std::string("the input has an unsupported type");
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  std::optional<int64_t> axis =
      normalizeAxis(intAttr(node, "axis", -1), std::max<int64_t>(rank, 1));
  if (!axis)
    return std::string("axis is out of range");
  if (!type.getElementType().isF32() || rank < 1)
    return std::string("only f32 tensors are imported yet");
  Location loc = locOf(node);
  if (*axis == rank - 1) {
    values[node.output(0)] = softmaxLastAxis(loc, x);
    return std::nullopt;
  }
  // Another axis (opset 13 semantics): swap it with the last, and back.
  llvm::SmallVector<int64_t> perm;
  for (int64_t i = 0; i < rank; ++i)
    perm.push_back(i);
  std::swap(perm[*axis], perm.back());
  auto swap = [&](Value t) -> Value {
    llvm::SmallVector<OpFoldResult> sizes;
    for (int64_t p : perm)
      sizes.push_back(tensor::getMixedSize(builder, loc, t, p));
    Value init = tensor::EmptyOp::create(builder, loc, sizes,
                                         type.getElementType());
    return linalg::TransposeOp::create(builder, loc, t, init, perm)
        .getResult()[0];
  };
  values[node.output(0)] = swap(softmaxLastAxis(loc, swap(x)));
  return std::nullopt;
}

Value Importer::softmaxLastAxis(Location loc, Value x, Value extra) {
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
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
  // Not getMajorSubMap(rank - 1): that is a null map for rank 1.
  AffineMap row = AffineMap::get(rank, 0, id.getResults().drop_back(),
                                 builder.getContext());
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
  // The extra logit: in the maximum, and exp(extra - max) starts the sum.
  Value sumInit = fill(0);
  if (extra) {
    AffineMap rowId = builder.getMultiDimIdentityMap(rank - 1);
    auto both = [&](llvm::function_ref<Value(OpBuilder &, Location, Value,
                                             Value)>
                        body) {
      return linalg::GenericOp::create(
                 builder, loc, TypeRange{max.getType()},
                 ValueRange{extra, max}, ValueRange{fill(0)},
                 llvm::ArrayRef<AffineMap>{rowId, rowId, rowId},
                 llvm::SmallVector<utils::IteratorType>(
                     rank - 1, utils::IteratorType::parallel),
                 [&](OpBuilder &b, Location l, ValueRange args) {
                   linalg::YieldOp::create(b, l, body(b, l, args[0], args[1]));
                 })
          .getResult(0);
    };
    max = both([](OpBuilder &b, Location l, Value e, Value m) -> Value {
      return arith::MaximumFOp::create(b, l, e, m);
    });
    sumInit = both([](OpBuilder &b, Location l, Value e, Value m) -> Value {
      return math::ExpOp::create(b, l, arith::SubFOp::create(b, l, e, m));
    });
  }
  Value sum =
      linalg::GenericOp::create(
          builder, loc, TypeRange{max.getType()}, ValueRange{x, max},
          ValueRange{sumInit}, llvm::ArrayRef<AffineMap>{id, row, row}, reduce,
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value e = math::ExpOp::create(
                b, l, arith::SubFOp::create(b, l, args[0], args[1]));
            linalg::YieldOp::create(
                b, l, Value(arith::AddFOp::create(b, l, args[2], e)));
          })
          .getResult(0);
  Value init = tensor::EmptyOp::create(
      builder, loc, tensor::getMixedSizes(builder, loc, x), f32);
  return linalg::GenericOp::create(
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
}

/// ReduceMean/Sum/Max/Min/Prod of a float tensor over constant axes
/// (attribute before opset 18, input from opset 13 for ReduceSum and 18 for
/// the others), keepdims as given; sums accumulate in the element type, as
/// onnxruntime's CPU kernels do for f32.
ImportResult Importer::importReduce(const onnx::NodeProto &node) {
  const std::string &op = node.op_type();
  if (op == "ReduceSum" && (raiseGatheredMoE(node) || raiseDenseMoE(node)))
    return std::nullopt;
  bool mean = op == "ReduceMean";
  Value x = node.input_size() ? lookup(node.input(0)) : Value();
  if (!x || node.output_size() != 1)
    return std::string("needs an input of a supported type and 1 output");
  auto type = cast<RankedTensorType>(x.getType());
  Type et = type.getElementType();
  bool isFloat = isa<FloatType>(et);
  if (et.isInteger(1) || (!isFloat && mean))
    return std::string("only float tensors, and sums, products, maxima and "
                       "minima of integers, are reduced");
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
  // The element count of a mean's reduction, as a float.
  Value count = mean ? arith::ConstantOp::create(
                           builder, loc, builder.getFloatAttr(et, 1.0))
                     : Value();
  for (int64_t i = 0; i < rank; ++i) {
    iters.push_back(reduced[i] ? utils::IteratorType::reduction
                               : utils::IteratorType::parallel);
    if (reduced[i]) {
      if (mean) {
        Value n = arith::UIToFPOp::create(
            builder, loc, et,
            arith::IndexCastUIOp::create(
                builder, loc, builder.getI64Type(),
                tensor::DimOp::create(builder, loc, x, i)));
        count = arith::MulFOp::create(builder, loc, count, n);
      }
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
  Type f32 = et;
  double identity = op == "ReduceMax"    ? -INFINITY
                    : op == "ReduceMin"  ? INFINITY
                    : op == "ReduceProd" ? 1.0
                                         : 0.0;
  TypedAttr identityAttr;
  if (isFloat) {
    identityAttr = builder.getFloatAttr(et, identity);
  } else {
    unsigned width = et.getIntOrFloatBitWidth();
    APInt v = op == "ReduceMax"   ? APInt::getSignedMinValue(width)
              : op == "ReduceMin" ? APInt::getSignedMaxValue(width)
                                  : APInt(width, op == "ReduceProd" ? 1 : 0);
    identityAttr = builder.getIntegerAttr(et, v);
  }
  Value zero = arith::ConstantOp::create(builder, loc, identityAttr);
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
            Value r, x = args[0], acc = args[1];
            if (op == "ReduceMax")
              r = isFloat ? Value(arith::MaximumFOp::create(b, l, x, acc))
                          : Value(arith::MaxSIOp::create(b, l, x, acc));
            else if (op == "ReduceMin")
              r = isFloat ? Value(arith::MinimumFOp::create(b, l, x, acc))
                          : Value(arith::MinSIOp::create(b, l, x, acc));
            else if (op == "ReduceProd")
              r = isFloat ? Value(arith::MulFOp::create(b, l, x, acc))
                          : Value(arith::MulIOp::create(b, l, x, acc));
            else
              r = isFloat ? Value(arith::AddFOp::create(b, l, x, acc))
                          : Value(arith::AddIOp::create(b, l, x, acc));
            linalg::YieldOp::create(b, l, r);
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
