//===- ONNXShapeOps.cpp - Data-movement ops of ONNX graphs ----------------===//
//
// Shape, Reshape, Squeeze/Unsqueeze, Transpose, Gather(Elements), Concat,
// Split, Slice, Expand, Tile, ConstantOfShape, Range, Trilu, CumSum, OneHot
// and TopK. Sizes, axes and bounds may come from known integers (folded
// shape arithmetic); data indices from the graph are normalised (negative
// counts from the end) and clamped, so no generated read leaves a tensor.
//
//===----------------------------------------------------------------------===//

#include "ONNXImporterImpl.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include "llvm/Support/FormatVariadic.h"

#include <climits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::onnximport;

namespace {
/// The static size of `v`, or kDynamic.
int64_t staticSize(OpFoldResult v) {
  std::optional<int64_t> c = getConstantIntValue(v);
  return c ? *c : ShapedType::kDynamic;
}

/// `index` (any integer type) as an index in [0, size): negative values
/// count from the end, then the result is clamped.
Value normalizeIndex(OpBuilder &b, Location l, Value index, Value size) {
  Value i = arith::IndexCastOp::create(b, l, b.getIndexType(), index);
  Value zero = arith::ConstantIndexOp::create(b, l, 0);
  Value one = arith::ConstantIndexOp::create(b, l, 1);
  Value negative = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, i, zero);
  i = arith::SelectOp::create(b, l, negative,
                              arith::AddIOp::create(b, l, i, size), i);
  Value last = arith::SubIOp::create(b, l, size, one);
  return arith::MaxSIOp::create(b, l, zero,
                                arith::MinSIOp::create(b, l, i, last));
}
} // namespace

/// Shape(x) (with opset-15 start/end) and Size(x): known integers.
ImportResult Importer::importShape(const onnx::NodeProto &node) {
  if (node.input_size() == 1)
    if (std::optional<KnownInts> k = knownInts(node.input(0))) {
      // The shape of known integers: [] or [n].
      KnownInts v{{}, node.op_type() == "Size", builder.getI64Type()};
      if (!k->scalar || v.scalar)
        v.elems.push_back(builder.getIndexAttr(k->scalar ? 1 : k->elems.size()));
      setKnown(node.output(0), v);
      return std::nullopt;
    }
  Value x = input(node, 0);
  if (!x || node.output_size() != 1)
    return std::string("needs an input of a supported type and 1 output");
  Location loc = locOf(node);
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  KnownInts v{{}, false, builder.getI64Type()};
  if (node.op_type() == "Size") {
    OpFoldResult n = builder.getIndexAttr(1);
    for (int64_t i = 0; i < rank; ++i)
      n = foldIndex(loc, '*', n, tensor::getMixedSize(builder, loc, x, i));
    setKnown(node.output(0), {{n}, true, builder.getI64Type()});
    return std::nullopt;
  }
  auto clampAxis = [&](int64_t a) {
    return std::clamp<int64_t>(a < 0 ? a + rank : a, 0, rank);
  };
  int64_t start = clampAxis(intAttr(node, "start", 0));
  int64_t end = clampAxis(intAttr(node, "end", rank));
  for (int64_t i = start; i < end; ++i)
    v.elems.push_back(tensor::getMixedSize(builder, loc, x, i));
  setKnown(node.output(0), v);
  return std::nullopt;
}

ImportResult Importer::importTranspose(const onnx::NodeProto &node) {
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

/// Reshape to a shape of known integers (0 copies the input's size unless
/// allowzero, -1 takes what is left), and Flatten; through tensor.reshape.
ImportResult Importer::importReshape(const onnx::NodeProto &node) {
  // Known integers reshaped to a list or a scalar stay known.
  if (std::optional<KnownInts> k = knownInts(node.input(0))) {
    std::optional<llvm::SmallVector<int64_t>> target =
        node.op_type() == "Reshape" && node.input_size() == 2
            ? constantInts(node.input(1))
            : std::nullopt;
    if (target && target->size() <= 1 &&
        (target->empty() ? k->elems.size() == 1
                         : (*target)[0] == -1 ||
                               (*target)[0] == int64_t(k->elems.size()))) {
      k->scalar = target->empty();
      setKnown(node.output(0), *k);
      return std::nullopt;
    }
  }
  Value x = input(node, 0);
  if (!x || node.output_size() != 1)
    return std::string("needs data of a supported type and 1 output");
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  Location loc = locOf(node);
  llvm::SmallVector<OpFoldResult> inDims =
      tensor::getMixedSizes(builder, loc, x);
  OpFoldResult total = builder.getIndexAttr(1);
  for (OpFoldResult d : inDims)
    total = foldIndex(loc, '*', total, d);
  llvm::SmallVector<OpFoldResult> dims;
  if (node.op_type() == "Flatten") {
    std::optional<int64_t> axis =
        intAttr(node, "axis", 1) == rank ? std::optional<int64_t>(rank)
                                         : normalizeAxis(intAttr(node, "axis", 1), rank);
    if (!axis)
      return std::string("axis is out of range");
    OpFoldResult outer = builder.getIndexAttr(1);
    for (int64_t i = 0; i < *axis; ++i)
      outer = foldIndex(loc, '*', outer, inDims[i]);
    OpFoldResult inner = builder.getIndexAttr(1);
    for (int64_t i = *axis; i < rank; ++i)
      inner = foldIndex(loc, '*', inner, inDims[i]);
    dims = {outer, inner};
  } else {
    if (node.input_size() != 2)
      return std::string("needs data and shape");
    std::optional<KnownInts> target = knownInts(node.input(1));
    if (!target)
      return std::string("the shape is not known while importing (not a "
                         "constant or a computation on sizes)");
    bool allowZero = intAttr(node, "allowzero", 0) != 0;
    int64_t inferred = -1;
    OpFoldResult knownProduct = builder.getIndexAttr(1);
    for (auto [i, d] : llvm::enumerate(target->elems)) {
      std::optional<int64_t> c = getConstantIntValue(d);
      if (c == -1) {
        if (inferred >= 0)
          return std::string("the shape has more than one -1");
        inferred = i;
        dims.push_back(OpFoldResult());
        continue;
      }
      if (c && *c < -1)
        return llvm::formatv("the shape has a negative size ({0})", *c).str();
      OpFoldResult size = d;
      if (c == 0 && !allowZero) {
        if (int64_t(i) >= rank)
          return std::string("a 0 in the shape has no input dimension to "
                             "copy");
        size = inDims[i];
      }
      knownProduct = foldIndex(loc, '*', knownProduct, size);
      dims.push_back(size);
    }
    if (inferred >= 0)
      dims[inferred] = foldIndex(loc, '/', total, knownProduct);
  }
  llvm::SmallVector<int64_t> shape;
  for (OpFoldResult d : dims)
    shape.push_back(staticSize(d));
  values[node.output(0)] = reshapeTo(loc, x, shape, dims);
  return std::nullopt;
}

/// Squeeze/Unsqueeze with constant axes (the opset-13 input form), as a
/// reshape.
ImportResult Importer::importSqueeze(const onnx::NodeProto &node) {
  bool squeeze = node.op_type() == "Squeeze";
  // A scalar's known integers becoming a 1-element list, and back.
  if (std::optional<KnownInts> k = knownInts(node.input(0));
      k && k->elems.size() == 1 && k->scalar != squeeze) {
    k->scalar = squeeze;
    setKnown(node.output(0), *k);
    return std::nullopt;
  }
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
        // ONNX requires the size to be 1; a dynamic one is taken to be.
        // (Were it not, the reshape would read fewer elements, never more.)
        if (type.getDimSize(d) != 1 && !type.isDynamicDim(d))
          return llvm::formatv("dimension {0} has size {1}, not 1", d,
                               type.getDimSize(d))
              .str();
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
/// Gather of rows of a 2-D float table (an embedding lookup): moe.embedding,
/// after mapping ONNX's negative indices (counted from the end) to positive
/// ones.
static Value gatherRows(OpBuilder &builder, Location loc, Value data,
                        Value ids) {
  auto dt = cast<RankedTensorType>(data.getType());
  auto it = cast<RankedTensorType>(ids.getType());
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
  return EmbeddingOp::create(
      builder, loc, RankedTensorType::get(shape, dt.getElementType()), data,
      positive);
}

/// Gather along `axis`: known integers from known integers; an embedding
/// lookup (rows of a 2-D float table) as moe.embedding; anything else as a
/// linalg.generic that reads data[..., index, ...].
ImportResult Importer::importGather(const onnx::NodeProto &node) {
  if (node.input_size() != 2 || node.output_size() != 1)
    return std::string("needs data and indices");
  std::optional<KnownInts> kd = knownInts(node.input(0));
  std::optional<llvm::SmallVector<int64_t>> ki = constantInts(node.input(1));
  if (kd && !kd->scalar && ki) {
    KnownInts out{{}, knownInts(node.input(1))->scalar, kd->type};
    int64_t n = kd->elems.size();
    for (int64_t i : *ki) {
      if (i < -n || i >= n)
        return llvm::formatv("index {0} is out of range for {1} values", i, n)
            .str();
      out.elems.push_back(kd->elems[i < 0 ? i + n : i]);
    }
    setKnown(node.output(0), out);
    return std::nullopt;
  }
  Value data = lookup(node.input(0)), ids = lookup(node.input(1));
  if (!data || !ids)
    return std::string("an input has an unsupported type");
  auto dt = cast<RankedTensorType>(data.getType());
  auto it = cast<RankedTensorType>(ids.getType());
  if (!isa<IntegerType>(it.getElementType()) ||
      it.getElementType().isInteger(1))
    return std::string("indices must be int32 or int64");
  std::optional<int64_t> axis = normalizeAxis(intAttr(node, "axis", 0),
                                              dt.getRank());
  if (!axis)
    return std::string("axis is out of range");
  Location loc = locOf(node);
  if (*axis == 0 && dt.getRank() == 2 && isa<FloatType>(dt.getElementType())) {
    values[node.output(0)] = gatherRows(builder, loc, data, ids);
    return std::nullopt;
  }
  // out[d0..d(a-1), i..., d(a+1)...] = data[d0.., ids[i...], d(a+1)..]
  llvm::SmallVector<OpFoldResult> sizes;
  llvm::SmallVector<int64_t> shape;
  for (int64_t i = 0; i < *axis; ++i)
    sizes.push_back(tensor::getMixedSize(builder, loc, data, i));
  for (int64_t i = 0; i < it.getRank(); ++i)
    sizes.push_back(tensor::getMixedSize(builder, loc, ids, i));
  for (int64_t i = *axis + 1; i < dt.getRank(); ++i)
    sizes.push_back(tensor::getMixedSize(builder, loc, data, i));
  for (OpFoldResult s : sizes)
    shape.push_back(staticSize(s));
  Value axisSize = tensor::DimOp::create(builder, loc, data, *axis);
  auto type = RankedTensorType::get(shape, dt.getElementType());
  values[node.output(0)] = indexGeneric(
      loc, type, sizes, [&](OpBuilder &b, Location l, ValueRange idx) {
        ValueRange idsIdx = idx.slice(*axis, it.getRank());
        Value id = tensor::ExtractOp::create(b, l, ids, idsIdx);
        llvm::SmallVector<Value> at(idx.take_front(*axis));
        at.push_back(normalizeIndex(b, l, id, axisSize));
        llvm::append_range(at, idx.drop_front(*axis + it.getRank()));
        return tensor::ExtractOp::create(b, l, data, at).getResult();
      });
  return std::nullopt;
}

/// GatherElements: out[i...] = data[i... with axis replaced by ids[i...]].
ImportResult Importer::importGatherElements(const onnx::NodeProto &node) {
  Value data = input(node, 0), ids = input(node, 1);
  if (!data || !ids || node.output_size() != 1)
    return std::string("needs data and indices of supported types");
  auto dt = cast<RankedTensorType>(data.getType());
  auto it = cast<RankedTensorType>(ids.getType());
  if (dt.getRank() != it.getRank())
    return std::string("data and indices differ in rank");
  std::optional<int64_t> axis =
      normalizeAxis(intAttr(node, "axis", 0), dt.getRank());
  if (!axis)
    return std::string("axis is out of range");
  Location loc = locOf(node);
  Value axisSize = tensor::DimOp::create(builder, loc, data, *axis);
  values[node.output(0)] = indexGeneric(
      loc, it.clone(dt.getElementType()), tensor::getMixedSizes(builder, loc, ids),
      [&](OpBuilder &b, Location l, ValueRange idx) {
        llvm::SmallVector<Value> at(idx);
        at[*axis] = normalizeIndex(
            b, l, tensor::ExtractOp::create(b, l, ids, idx), axisSize);
        return tensor::ExtractOp::create(b, l, data, at).getResult();
      });
  return std::nullopt;
}

/// Concat: of known integer lists, known integers; of tensors, a chain of
/// tensor.insert_slice into one tensor.empty.
ImportResult Importer::importConcat(const onnx::NodeProto &node) {
  if (node.input_size() < 1 || node.output_size() != 1)
    return std::string("needs inputs and 1 output");
  llvm::SmallVector<KnownInts> parts;
  for (const std::string &name : node.input())
    if (std::optional<KnownInts> k = knownInts(name); k && !k->scalar)
      parts.push_back(*k);
  if (parts.size() == size_t(node.input_size())) {
    KnownInts out{{}, false, parts[0].type};
    for (const KnownInts &k : parts)
      llvm::append_range(out.elems, k.elems);
    setKnown(node.output(0), out);
    return std::nullopt;
  }
  llvm::SmallVector<Value> inputs;
  for (const std::string &name : node.input())
    if (Value v = lookup(name))
      inputs.push_back(v);
    else
      return std::string("an input has an unsupported type");
  auto first = cast<RankedTensorType>(inputs[0].getType());
  int64_t rank = first.getRank();
  std::optional<int64_t> axis = normalizeAxis(intAttr(node, "axis", 0), rank);
  if (!axis)
    return std::string("axis is out of range");
  for (Value v : inputs) {
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getRank() != rank || t.getElementType() != first.getElementType())
      return std::string("inputs differ in rank or element type");
  }
  Location loc = locOf(node);
  llvm::SmallVector<OpFoldResult> sizes =
      tensor::getMixedSizes(builder, loc, inputs[0]);
  OpFoldResult total = builder.getIndexAttr(0);
  for (Value v : inputs)
    total = foldIndex(loc, '+', total,
                      tensor::getMixedSize(builder, loc, v, *axis));
  sizes[*axis] = total;
  // A static size of any input fixes that dimension.
  for (int64_t d = 0; d < rank; ++d)
    if (d != *axis)
      for (Value v : inputs)
        if (int64_t s = cast<RankedTensorType>(v.getType()).getDimSize(d);
            !ShapedType::isDynamic(s))
          sizes[d] = builder.getIndexAttr(s);
  Value result =
      tensor::EmptyOp::create(builder, loc, sizes, first.getElementType());
  OpFoldResult offset = builder.getIndexAttr(0);
  for (Value v : inputs) {
    llvm::SmallVector<OpFoldResult> offsets(rank, builder.getIndexAttr(0));
    offsets[*axis] = offset;
    llvm::SmallVector<OpFoldResult> vSizes =
        tensor::getMixedSizes(builder, loc, v);
    result = tensor::InsertSliceOp::create(
        builder, loc, v, result, offsets, vSizes,
        llvm::SmallVector<OpFoldResult>(rank, builder.getIndexAttr(1)));
    offset = foldIndex(loc, '+', offset, vSizes[*axis]);
  }
  values[node.output(0)] = result;
  return std::nullopt;
}

/// Split into the given sizes (input from opset 13, attribute before), or
/// into equal parts (the last smaller, opset 18's num_outputs rule).
ImportResult Importer::importSplit(const onnx::NodeProto &node) {
  Value x = input(node, 0);
  if (!x || node.output_size() < 1)
    return std::string("needs an input of a supported type and outputs");
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  std::optional<int64_t> axis = normalizeAxis(intAttr(node, "axis", 0), rank);
  if (!axis)
    return std::string("axis is out of range");
  Location loc = locOf(node);
  OpFoldResult dim = tensor::getMixedSize(builder, loc, x, *axis);
  int64_t n = node.output_size();
  llvm::SmallVector<OpFoldResult> parts;
  if (node.input_size() > 1 && !node.input(1).empty()) {
    std::optional<KnownInts> given = knownInts(node.input(1));
    if (!given)
      return std::string("the split sizes are not known while importing");
    parts = given->elems;
  } else if (const onnx::AttributeProto *attr = findAttr(node, "split")) {
    for (int64_t s : attr->ints())
      parts.push_back(builder.getIndexAttr(s));
  } else {
    // ceil(dim / n) each, the remainder last.
    OpFoldResult each = foldIndex(
        loc, '/', foldIndex(loc, '+', dim, builder.getIndexAttr(n - 1)),
        builder.getIndexAttr(n));
    OpFoldResult used = builder.getIndexAttr(0);
    for (int64_t i = 0; i + 1 < n; ++i) {
      parts.push_back(each);
      used = foldIndex(loc, '+', used, each);
    }
    parts.push_back(foldIndex(loc, '-', dim, used));
  }
  if (int64_t(parts.size()) != n)
    return llvm::formatv("{0} split sizes for {1} outputs", parts.size(), n)
        .str();
  std::optional<int64_t> staticDim = getConstantIntValue(dim);
  OpFoldResult offset = builder.getIndexAttr(0);
  for (int64_t i = 0; i < n; ++i) {
    llvm::SmallVector<OpFoldResult> offsets(rank, builder.getIndexAttr(0));
    llvm::SmallVector<OpFoldResult> sizes =
        tensor::getMixedSizes(builder, loc, x);
    // Sizes that only the run time knows are clamped to what is left of
    // the axis, so a bad split never reads past the tensor.
    OpFoldResult start = offset, size = parts[i];
    if (!staticDim || !getConstantIntValue(size)) {
      start = foldIndex(loc, '<', offset, dim);
      size = foldIndex(loc, '>', builder.getIndexAttr(0),
                       foldIndex(loc, '<', size,
                                 foldIndex(loc, '-', dim, start)));
    }
    offsets[*axis] = start;
    sizes[*axis] = size;
    values[node.output(i)] = tensor::ExtractSliceOp::create(
        builder, loc, x, offsets, sizes,
        llvm::SmallVector<OpFoldResult>(rank, builder.getIndexAttr(1)));
    offset = foldIndex(loc, '+', offset, parts[i]);
  }
  std::optional<int64_t> end = getConstantIntValue(offset);
  if (staticDim && end && *staticDim != *end)
    return llvm::formatv("split sizes add up to {0}, the axis has {1}", *end,
                         *staticDim)
        .str();
  return std::nullopt;
}

/// Slice with known starts/ends/axes/steps (the opset-10+ input form):
/// tensor.extract_slice after ONNX's clamping rules. Negative steps are not
/// imported yet.
ImportResult Importer::importSlice(const onnx::NodeProto &node) {
  if (node.input_size() < 3 || node.output_size() != 1)
    return std::string("needs data, starts and ends (opset 10+)");
  std::optional<KnownInts> starts = knownInts(node.input(1));
  std::optional<KnownInts> ends = knownInts(node.input(2));
  std::optional<llvm::SmallVector<int64_t>> axes, steps;
  if (node.input_size() > 3 && !node.input(3).empty())
    if (!(axes = constantInts(node.input(3))))
      return std::string("the axes are not constants");
  if (node.input_size() > 4 && !node.input(4).empty())
    if (!(steps = constantInts(node.input(4))))
      return std::string("the steps are not constants");
  if (!starts || !ends)
    return std::string("starts or ends are not known while importing");
  size_t n = starts->elems.size();
  if (ends->elems.size() != n || (axes && axes->size() != n) ||
      (steps && steps->size() != n))
    return std::string("starts, ends, axes and steps differ in length");
  Location loc = locOf(node);
  std::optional<KnownInts> kd = knownInts(node.input(0));
  Value x = kd && !kd->scalar ? Value() : input(node, 0);
  if (!x && !(kd && !kd->scalar))
    return std::string("the data has an unsupported type");
  int64_t rank = x ? cast<RankedTensorType>(x.getType()).getRank() : 1;
  llvm::SmallVector<OpFoldResult> offsets(rank, builder.getIndexAttr(0));
  llvm::SmallVector<OpFoldResult> sizes =
      x ? tensor::getMixedSizes(builder, loc, x)
        : llvm::SmallVector<OpFoldResult>{
              builder.getIndexAttr(kd->elems.size())};
  llvm::SmallVector<OpFoldResult> strides(rank, builder.getIndexAttr(1));
  llvm::SmallVector<int64_t> reversed; // axes read backwards (step < 0)
  for (size_t i = 0; i < n; ++i) {
    std::optional<int64_t> axis =
        normalizeAxis(axes ? (*axes)[i] : int64_t(i), rank);
    int64_t step = steps ? (*steps)[i] : 1;
    if (!axis)
      return std::string("an axis is out of range");
    if (step == 0)
      return std::string("a step is 0");
    OpFoldResult dim = sizes[*axis];
    // ONNX: a negative bound counts from the end; then forwards both clamp
    // to [0, dim], backwards (step < 0) start to [0, dim - 1] and end to
    // [-1, dim - 1]. The elements run from start by step while before end.
    bool back = step < 0;
    // (Any stride past the dimension reads one element; INT64_MIN's
    // negation would overflow.)
    int64_t stride = back ? (step == INT64_MIN ? INT64_MAX : -step) : step;
    auto one = builder.getIndexAttr(1), zero = builder.getIndexAttr(0);
    OpFoldResult last = back ? foldIndex(loc, '-', dim, one) : dim;
    auto bound = [&](OpFoldResult b, OpFoldResult low) -> OpFoldResult {
      std::optional<int64_t> c = getConstantIntValue(b);
      if (c && *c >= INT_MAX)
        return last;
      if (c && *c <= -INT_MAX)
        b = low;
      else if (c && *c < 0)
        b = foldIndex(loc, '+', dim, b);
      // min(last, max(low, b)): for an empty dimension read backwards last
      // is -1, below low, and the count must come out 0.
      return foldIndex(loc, '<', last, foldIndex(loc, '>', low, b));
    };
    OpFoldResult start = bound(starts->elems[i], zero);
    OpFoldResult end =
        bound(ends->elems[i], back ? builder.getIndexAttr(-1) : zero);
    // ceil(|end - start| / stride), at least 0.
    OpFoldResult count = foldIndex(
        loc, '>', zero,
        foldIndex(loc, '/',
                  foldIndex(loc, '+',
                            back ? foldIndex(loc, '-', start, end)
                                 : foldIndex(loc, '-', end, start),
                            builder.getIndexAttr(stride - 1)),
                  builder.getIndexAttr(stride)));
    offsets[*axis] = start;
    sizes[*axis] = count;
    strides[*axis] = builder.getIndexAttr(stride);
    if (back) {
      // Read forwards from the last element (start, with nothing to read),
      // then reversed.
      offsets[*axis] = foldIndex(
          loc, '>', zero,
          foldIndex(loc, '-', start,
                    foldIndex(loc, '*', builder.getIndexAttr(stride),
                              foldIndex(loc, '>', zero,
                                        foldIndex(loc, '-', count, one)))));
      reversed.push_back(*axis);
    }
  }
  if (!x) {
    std::optional<int64_t> o = getConstantIntValue(offsets[0]),
                           c = getConstantIntValue(sizes[0]);
    std::optional<int64_t> s = getConstantIntValue(strides[0]);
    if (!o || !c)
      return std::string("a slice of known integers with unknown bounds");
    KnownInts out{{}, false, kd->type};
    for (int64_t i = 0; i < *c; ++i)
      out.elems.push_back(kd->elems[*o + i * *s]);
    if (!reversed.empty())
      std::reverse(out.elems.begin(), out.elems.end());
    setKnown(node.output(0), out);
    return std::nullopt;
  }
  Value slice =
      tensor::ExtractSliceOp::create(builder, loc, x, offsets, sizes, strides);
  if (!reversed.empty()) {
    // out[..., i, ...] = slice[..., n - 1 - i, ...] on each reversed axis.
    auto st = cast<RankedTensorType>(slice.getType());
    llvm::SmallVector<OpFoldResult> dims =
        tensor::getMixedSizes(builder, loc, slice);
    slice = indexGeneric(
        loc, st, dims, [&](OpBuilder &b, Location l, ValueRange idx) -> Value {
          llvm::SmallVector<Value> at(idx);
          for (int64_t axis : reversed) {
            Value n = tensor::DimOp::create(b, l, slice, axis);
            at[axis] = arith::SubIOp::create(
                b, l,
                arith::SubIOp::create(b, l, n,
                                      arith::ConstantIndexOp::create(b, l, 1)),
                idx[axis]);
          }
          return tensor::ExtractOp::create(b, l, slice, at);
        });
  }
  values[node.output(0)] = slice;
  return std::nullopt;
}

/// Expand(x, shape): numpy broadcasting of x to the known shape.
ImportResult Importer::importExpand(const onnx::NodeProto &node) {
  Value x = input(node, 0);
  std::optional<KnownInts> target =
      node.input_size() > 1 ? knownOrRuntimeInts(node.input(1)) : std::nullopt;
  if (!x || !target || node.output_size() != 1)
    return std::string("needs data and a shape (known, or a 1-D integer "
                       "tensor of static length)");
  Location loc = locOf(node);
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = std::max<int64_t>(type.getRank(), target->elems.size());
  llvm::SmallVector<OpFoldResult> sizes;
  llvm::SmallVector<AffineExpr> exprs;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t j = d - (rank - type.getRank());
    int64_t t = d - (rank - int64_t(target->elems.size()));
    OpFoldResult want = t >= 0 ? target->elems[t] : builder.getIndexAttr(1);
    if (j < 0) {
      sizes.push_back(want);
      continue;
    }
    int64_t have = type.getDimSize(j);
    if (have == 1 && getConstantIntValue(want) != 1) {
      sizes.push_back(want);
      exprs.push_back(builder.getAffineConstantExpr(0));
    } else if (!getConstantIntValue(want) && ShapedType::isDynamic(have)) {
      // Both unknown while importing: ONNX broadcasting would need the
      // input's size to decide; only the common case (the target repeats
      // the size, or is 1) is handled, by keeping the input's size.
      sizes.push_back(tensor::getMixedSize(builder, loc, x, j));
      exprs.push_back(builder.getAffineDimExpr(d));
    } else {
      std::optional<int64_t> w = getConstantIntValue(want);
      if (w && *w != 1 && !ShapedType::isDynamic(have) && *w != have)
        return llvm::formatv("dimension {0} of size {1} cannot expand to {2}",
                             j, have, *w)
            .str();
      sizes.push_back(tensor::getMixedSize(builder, loc, x, j));
      exprs.push_back(builder.getAffineDimExpr(d));
    }
  }
  Value init =
      tensor::EmptyOp::create(builder, loc, sizes, type.getElementType());
  values[node.output(0)] =
      linalg::GenericOp::create(
          builder, loc, TypeRange{init.getType()}, ValueRange{x},
          ValueRange{init},
          llvm::ArrayRef<AffineMap>{AffineMap::get(rank, 0, exprs, ctx),
                                    builder.getMultiDimIdentityMap(rank)},
          llvm::SmallVector<utils::IteratorType>(rank,
                                                 utils::IteratorType::parallel),
          [&](OpBuilder &b, Location l, ValueRange args) {
            linalg::YieldOp::create(b, l, args[0]);
          })
          .getResult(0);
  return std::nullopt;
}

/// Tile(x, repeats): out[i] = x[i mod size].
ImportResult Importer::importTile(const onnx::NodeProto &node) {
  Value x = input(node, 0);
  std::optional<KnownInts> repeats =
      node.input_size() > 1 ? knownOrRuntimeInts(node.input(1)) : std::nullopt;
  if (!x || !repeats || node.output_size() != 1)
    return std::string("needs data and repeats (known, or a 1-D integer "
                       "tensor of static length)");
  auto type = cast<RankedTensorType>(x.getType());
  if (int64_t(repeats->elems.size()) != type.getRank())
    return std::string("repeats must list every dimension");
  Location loc = locOf(node);
  llvm::SmallVector<OpFoldResult> inSizes =
      tensor::getMixedSizes(builder, loc, x);
  llvm::SmallVector<OpFoldResult> sizes;
  llvm::SmallVector<int64_t> shape;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    sizes.push_back(foldIndex(loc, '*', inSizes[d], repeats->elems[d]));
    shape.push_back(staticSize(sizes.back()));
  }
  llvm::SmallVector<Value> dims;
  for (OpFoldResult s : inSizes)
    dims.push_back(getValueOrCreateConstantIndexOp(builder, loc, s));
  values[node.output(0)] = indexGeneric(
      loc, RankedTensorType::get(shape, type.getElementType()), sizes,
      [&](OpBuilder &b, Location l, ValueRange idx) {
        llvm::SmallVector<Value> at;
        for (auto [i, d] : llvm::zip(idx, dims))
          at.push_back(arith::RemUIOp::create(b, l, i, d));
        return tensor::ExtractOp::create(b, l, x, at).getResult();
      });
  return std::nullopt;
}

/// ConstantOfShape(shape): a filled tensor (known integers when the value
/// is an integer and the result a short list).
ImportResult Importer::importConstantOfShape(const onnx::NodeProto &node) {
  std::optional<KnownInts> shape =
      node.input_size() == 1 ? knownInts(node.input(0)) : std::nullopt;
  if (!shape || node.output_size() != 1)
    return std::string("the shape is not known while importing");
  Type element = builder.getF32Type();
  Attribute value = builder.getF32FloatAttr(0.0f);
  if (const onnx::AttributeProto *attr = findAttr(node, "value")) {
    const onnx::TensorProto &t = attr->t();
    element = elementType(ctx, t.data_type());
    if (!element)
      return std::string("value has an unsupported type");
    if (isa<FloatType>(element) && element.getIntOrFloatBitWidth() == 16) {
      // bf16 and f16 are stored as their bits: two raw bytes, or in
      // int32_data.
      uint16_t bits = 0;
      if (t.raw_data().size() == 2)
        std::memcpy(&bits, t.raw_data().data(), 2);
      else if (!t.raw_data().empty())
        return std::string("value's raw data is not a single element");
      else if (t.int32_data_size())
        bits = uint16_t(t.int32_data(0));
      value = builder.getFloatAttr(
          element, llvm::APFloat(cast<FloatType>(element).getFloatSemantics(),
                                 llvm::APInt(16, bits)));
    } else if (isa<FloatType>(element)) {
      double v = t.float_data_size()    ? t.float_data(0)
                 : t.double_data_size() ? t.double_data(0)
                                        : 0.0;
      if (t.raw_data().size() == 4 && element.isF32()) {
        float f;
        std::memcpy(&f, t.raw_data().data(), 4);
        v = f;
      } else if (t.raw_data().size() == 8 && element.isF64()) {
        std::memcpy(&v, t.raw_data().data(), 8);
      } else if (!t.raw_data().empty()) {
        return std::string("value's raw data is not a single f32 or f64");
      }
      value = builder.getFloatAttr(element, v);
    } else {
      int64_t v = t.int64_data_size() ? t.int64_data(0)
                  : t.int32_data_size() ? t.int32_data(0)
                                        : 0;
      if (!t.raw_data().empty()) {
        unsigned width = (element.getIntOrFloatBitWidth() + 7) / 8;
        if (t.raw_data().size() != width)
          return std::string("value's raw data is not a single element");
        v = 0;
        std::memcpy(&v, t.raw_data().data(), width);
        if (width == 4)
          v = int32_t(v);
      }
      value = builder.getIntegerAttr(element, v);
    }
  }
  Location loc = locOf(node);
  if (auto i = dyn_cast<IntegerAttr>(value);
      i && !element.isInteger(1) && shape->elems.size() == 1) {
    if (std::optional<int64_t> n = getConstantIntValue(shape->elems[0]);
        n && *n <= 64) {
      KnownInts out{{}, false, element};
      out.elems.assign(*n, builder.getIndexAttr(i.getInt()));
      setKnown(node.output(0), out);
      return std::nullopt;
    }
  }
  Value empty =
      tensor::EmptyOp::create(builder, loc, shape->elems, element);
  Value c = arith::ConstantOp::create(builder, loc, cast<TypedAttr>(value));
  values[node.output(0)] =
      linalg::FillOp::create(builder, loc, c, empty).getResult(0);
  return std::nullopt;
}

/// Range(start, limit, delta) of integers known while importing (delta a
/// constant): known integers when short and constant, else a generic.
ImportResult Importer::importRange(const onnx::NodeProto &node) {
  if (node.input_size() != 3 || node.output_size() != 1)
    return std::string("needs start, limit and delta");
  std::optional<KnownInts> start = knownInts(node.input(0)),
                           limit = knownInts(node.input(1));
  std::optional<llvm::SmallVector<int64_t>> delta = constantInts(node.input(2));
  if (!start || !limit || !delta || start->elems.size() != 1 ||
      limit->elems.size() != 1 || delta->size() != 1 || (*delta)[0] == 0)
    return std::string("only integer ranges with bounds known while "
                       "importing and a constant non-zero delta are "
                       "imported yet");
  Location loc = locOf(node);
  int64_t step = (*delta)[0];
  // max(ceil((limit - start) / delta), 0)
  OpFoldResult span = foldIndex(loc, '-', limit->elems[0], start->elems[0]);
  OpFoldResult count =
      step > 0
          ? foldIndex(loc, '/',
                      foldIndex(loc, '+', span, builder.getIndexAttr(step - 1)),
                      builder.getIndexAttr(step))
          : foldIndex(loc, '/',
                      foldIndex(loc, '-', builder.getIndexAttr(0),
                                foldIndex(loc, '+', span,
                                          builder.getIndexAttr(step + 1))),
                      builder.getIndexAttr(-step));
  count = foldIndex(loc, '>', builder.getIndexAttr(0), count);
  Type element = start->type;
  std::optional<int64_t> n = getConstantIntValue(count);
  std::optional<int64_t> first = getConstantIntValue(start->elems[0]);
  if (n && first && *n <= 64) {
    KnownInts out{{}, false, element};
    for (int64_t i = 0; i < *n; ++i)
      out.elems.push_back(builder.getIndexAttr(*first + i * step));
    setKnown(node.output(0), out);
    return std::nullopt;
  }
  Value origin =
      getValueOrCreateConstantIndexOp(builder, loc, start->elems[0]);
  values[node.output(0)] = indexGeneric(
      loc, RankedTensorType::get({staticSize(count)}, element), {count},
      [&](OpBuilder &b, Location l, ValueRange idx) -> Value {
        Value v = arith::AddIOp::create(
            b, l, origin,
            arith::MulIOp::create(b, l, idx[0],
                                  arith::ConstantIndexOp::create(b, l, step)));
        return arith::IndexCastOp::create(b, l, element, v);
      });
  return std::nullopt;
}

/// Trilu: the upper (or lower) triangle of the last two dimensions from
/// diagonal k, zero elsewhere.
ImportResult Importer::importTrilu(const onnx::NodeProto &node) {
  Value x = input(node, 0);
  if (!x || node.output_size() != 1)
    return std::string("needs an input of a supported type");
  int64_t k = 0;
  if (node.input_size() > 1 && !node.input(1).empty()) {
    std::optional<llvm::SmallVector<int64_t>> given =
        constantInts(node.input(1));
    if (!given || given->size() != 1)
      return std::string("k is not a constant");
    k = (*given)[0];
  }
  bool upper = intAttr(node, "upper", 1) != 0;
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  if (rank < 2)
    return std::string("needs a rank of at least 2");
  Location loc = locOf(node);
  Type et = type.getElementType();
  values[node.output(0)] = indexGeneric(
      loc, type, tensor::getMixedSizes(builder, loc, x),
      [&](OpBuilder &b, Location l, ValueRange idx) -> Value {
        Value diff = arith::SubIOp::create(b, l, idx[rank - 1], idx[rank - 2]);
        Value kv = arith::ConstantIndexOp::create(b, l, k);
        Value keep = arith::CmpIOp::create(
            b, l, upper ? arith::CmpIPredicate::sge : arith::CmpIPredicate::sle,
            diff, kv);
        Value zero = arith::ConstantOp::create(b, l, b.getZeroAttr(et));
        return arith::SelectOp::create(
            b, l, keep, tensor::ExtractOp::create(b, l, x, idx), zero);
      });
  return std::nullopt;
}

/// CumSum along a constant axis (exclusive and reverse as given): each
/// output sums the selected inputs of its line.
ImportResult Importer::importCumSum(const onnx::NodeProto &node) {
  Value x = input(node, 0);
  std::optional<llvm::SmallVector<int64_t>> axisValue =
      node.input_size() > 1 ? constantInts(node.input(1)) : std::nullopt;
  if (!x || !axisValue || axisValue->size() != 1 || node.output_size() != 1)
    return std::string("needs data and a constant axis");
  auto type = cast<RankedTensorType>(x.getType());
  std::optional<int64_t> axis = normalizeAxis((*axisValue)[0], type.getRank());
  if (!axis)
    return std::string("axis is out of range");
  bool exclusive = intAttr(node, "exclusive", 0) != 0;
  bool reverse = intAttr(node, "reverse", 0) != 0;
  Location loc = locOf(node);
  Type et = type.getElementType();
  Value axisSize = tensor::DimOp::create(builder, loc, x, *axis);
  values[node.output(0)] = indexGeneric(
      loc, type, tensor::getMixedSizes(builder, loc, x),
      [&](OpBuilder &b, Location l, ValueRange idx) -> Value {
        Value zero = arith::ConstantOp::create(b, l, b.getZeroAttr(et));
        Value c0 = arith::ConstantIndexOp::create(b, l, 0);
        Value c1 = arith::ConstantIndexOp::create(b, l, 1);
        auto loop = scf::ForOp::create(
            b, l, c0, axisSize, c1, ValueRange{zero},
            [&](OpBuilder &lb, Location ll, Value j, ValueRange acc) {
              using P = arith::CmpIPredicate;
              P pred = reverse ? (exclusive ? P::sgt : P::sge)
                               : (exclusive ? P::slt : P::sle);
              Value take = arith::CmpIOp::create(lb, ll, pred, j, idx[*axis]);
              llvm::SmallVector<Value> at(idx);
              at[*axis] = j;
              Value v = tensor::ExtractOp::create(lb, ll, x, at);
              Value add = isa<FloatType>(et)
                              ? Value(arith::AddFOp::create(lb, ll, acc[0], v))
                              : Value(arith::AddIOp::create(lb, ll, acc[0], v));
              scf::YieldOp::create(
                  lb, ll,
                  ValueRange{arith::SelectOp::create(lb, ll, take, add, acc[0])});
            });
        return loop.getResult(0);
      });
  return std::nullopt;
}

/// OneHot(indices, depth, values): values[1] where the index (negative
/// counts from the end) equals the position along `axis`, values[0]
/// elsewhere.
ImportResult Importer::importOneHot(const onnx::NodeProto &node) {
  Value ids = input(node, 0), vals = input(node, 2);
  std::optional<llvm::SmallVector<int64_t>> depth =
      node.input_size() > 1 ? constantInts(node.input(1)) : std::nullopt;
  if (!ids || !vals || !depth || depth->size() != 1 || (*depth)[0] <= 0 ||
      node.output_size() != 1)
    return std::string("needs indices, a constant positive depth and values");
  auto it = cast<RankedTensorType>(ids.getType());
  auto vt = cast<RankedTensorType>(vals.getType());
  if (vt.getRank() != 1 || vt.getDimSize(0) != 2 ||
      !isa<IntegerType>(it.getElementType()))
    return std::string("values must be [off, on] and indices integers");
  int64_t rank = it.getRank() + 1;
  int64_t axisAttr = intAttr(node, "axis", -1);
  std::optional<int64_t> axis = normalizeAxis(axisAttr, rank);
  if (!axis)
    return std::string("axis is out of range");
  Location loc = locOf(node);
  llvm::SmallVector<OpFoldResult> sizes =
      tensor::getMixedSizes(builder, loc, ids);
  sizes.insert(sizes.begin() + *axis, builder.getIndexAttr((*depth)[0]));
  llvm::SmallVector<int64_t> shape;
  for (OpFoldResult s : sizes)
    shape.push_back(staticSize(s));
  Value c0 = arith::ConstantIndexOp::create(builder, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(builder, loc, 1);
  Value off = tensor::ExtractOp::create(builder, loc, vals, ValueRange{c0});
  Value on = tensor::ExtractOp::create(builder, loc, vals, ValueRange{c1});
  values[node.output(0)] = indexGeneric(
      loc, RankedTensorType::get(shape, vt.getElementType()), sizes,
      [&](OpBuilder &b, Location l, ValueRange idx) -> Value {
        llvm::SmallVector<Value> at(idx);
        at.erase(at.begin() + *axis);
        Value id = arith::IndexCastOp::create(
            b, l, b.getIndexType(), tensor::ExtractOp::create(b, l, ids, at));
        Value d = arith::ConstantIndexOp::create(b, l, (*depth)[0]);
        Value zero = arith::ConstantIndexOp::create(b, l, 0);
        Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, id,
                                          zero);
        id = arith::SelectOp::create(b, l, neg,
                                     arith::AddIOp::create(b, l, id, d), id);
        Value hit = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, id,
                                          idx[*axis]);
        return arith::SelectOp::create(b, l, hit, on, off);
      });
  return std::nullopt;
}

/// TopK along the last axis with a constant k: the k largest (or smallest)
/// values in order, ties to the lower index, and their int64 indices. Each
/// pick is the best element that comes after the previous pick in that
/// order, so no set of taken indices is kept.
ImportResult Importer::importTopK(const onnx::NodeProto &node) {
  Value x = input(node, 0);
  std::optional<llvm::SmallVector<int64_t>> kValue =
      node.input_size() > 1 ? constantInts(node.input(1)) : std::nullopt;
  if (!x || !kValue || kValue->size() != 1 || node.output_size() != 2)
    return std::string("needs data, a constant k and 2 outputs");
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  Type et = type.getElementType();
  if (rank < 1 || !isa<FloatType>(et))
    return std::string("only float tensors of rank >= 1 are imported yet");
  std::optional<int64_t> axis = normalizeAxis(intAttr(node, "axis", -1), rank);
  if (axis != rank - 1)
    return std::string("only the last axis is imported yet");
  int64_t k = (*kValue)[0];
  int64_t n = type.getDimSize(rank - 1);
  if (k < 0 || (!ShapedType::isDynamic(n) && k > n))
    return llvm::formatv("k = {0} is not in [0, {1}]", k, n).str();
  bool largest = intAttr(node, "largest", 1) != 0;
  auto [vals, ids] = topK(locOf(node), x, k, largest);
  values[node.output(0)] = vals;
  values[node.output(1)] = ids;
  return std::nullopt;
}

std::pair<Value, Value> Importer::topK(Location loc, Value x, int64_t k,
                                       bool largest) {
  auto type = cast<RankedTensorType>(x.getType());
  Type et = type.getElementType();
  int64_t n = type.getDimSize(type.getRank() - 1);
  // Rows: every leading index, flattened.
  llvm::SmallVector<OpFoldResult> lead = tensor::getMixedSizes(builder, loc, x);
  OpFoldResult cols = lead.pop_back_val();
  OpFoldResult rows = builder.getIndexAttr(1);
  for (OpFoldResult d : lead)
    rows = foldIndex(loc, '*', rows, d);
  Value flat = reshapeTo(loc, x, {staticSize(rows), n}, {rows, cols});
  Type i64 = builder.getI64Type();
  Value valuesInit = tensor::EmptyOp::create(
      builder, loc, llvm::ArrayRef<OpFoldResult>{rows, builder.getIndexAttr(k)},
      et);
  Value indicesInit = tensor::EmptyOp::create(
      builder, loc, llvm::ArrayRef<OpFoldResult>{rows, builder.getIndexAttr(k)},
      i64);
  Value c0 = arith::ConstantIndexOp::create(builder, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(builder, loc, 1);
  Value kIdx = arith::ConstantIndexOp::create(builder, loc, k);
  Value colsV = getValueOrCreateConstantIndexOp(builder, loc, cols);
  // `a` before `b` in the output order: better value, or equal and lower
  // index.
  auto before = [&](OpBuilder &b, Location l, Value av, Value ai, Value bv,
                    Value bi) -> Value {
    Value better = arith::CmpFOp::create(
        b, l, largest ? arith::CmpFPredicate::OGT : arith::CmpFPredicate::OLT,
        av, bv);
    Value equal =
        arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, av, bv);
    Value lower =
        arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, ai, bi);
    return arith::OrIOp::create(b, l, better,
                                arith::AndIOp::create(b, l, equal, lower));
  };
  // Rows are independent: one scf.forall iteration each (a GPU thread),
  // which picks its k in order into [1, k] slices of the outputs.
  auto rowLoop = scf::ForallOp::create(
      builder, loc, llvm::ArrayRef<OpFoldResult>{rows},
      ValueRange{valuesInit, indicesInit}, /*mapping=*/std::nullopt);
  {
    OpBuilder::InsertionGuard guard(builder);
    builder.setInsertionPoint(rowLoop.getTerminator());
    OpBuilder &b = builder;
    Location l = loc;
    Value r = rowLoop.getInductionVars()[0];
    llvm::SmallVector<OpFoldResult> offsets = {r, b.getIndexAttr(0)};
    llvm::SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1),
                                             b.getIndexAttr(k)};
    llvm::SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
    llvm::SmallVector<Value> outs;
    for (Value shared : rowLoop.getRegionIterArgs())
      outs.push_back(tensor::ExtractSliceOp::create(b, l, shared, offsets,
                                                    sizes, strides));
    Value minusOne = arith::ConstantIndexOp::create(b, l, -1);
    Value zeroV = arith::ConstantOp::create(b, l, b.getZeroAttr(et));
    auto pickLoop = scf::ForOp::create(
        b, l, c0, kIdx, c1, ValueRange{outs[0], outs[1], zeroV, minusOne},
        [&](OpBuilder &pb, Location pl, Value t, ValueRange state) {
          Value prevV = state[2], prevI = state[3];
          Value first =
              arith::CmpIOp::create(pb, pl, arith::CmpIPredicate::eq, t, c0);
          auto scan = scf::ForOp::create(
              pb, pl, c0, colsV, c1, ValueRange{zeroV, minusOne},
              [&](OpBuilder &sb, Location sl, Value j, ValueRange best) {
                Value v =
                    tensor::ExtractOp::create(sb, sl, flat, ValueRange{r, j});
                // Eligible: after the previous pick in the order.
                Value eligible = arith::OrIOp::create(
                    sb, sl, first, before(sb, sl, prevV, prevI, v, j));
                Value none = arith::CmpIOp::create(
                    sb, sl, arith::CmpIPredicate::slt, best[1], c0);
                Value improves = arith::OrIOp::create(
                    sb, sl, none, before(sb, sl, v, j, best[0], best[1]));
                Value take =
                    arith::AndIOp::create(sb, sl, eligible, improves);
                scf::YieldOp::create(
                    sb, sl,
                    ValueRange{
                        arith::SelectOp::create(sb, sl, take, v, best[0]),
                        arith::SelectOp::create(sb, sl, take, j, best[1])});
              });
          Value v = scan.getResult(0), i = scan.getResult(1);
          Value vs = tensor::InsertOp::create(pb, pl, v, state[0],
                                              ValueRange{c0, t});
          Value is = tensor::InsertOp::create(
              pb, pl, arith::IndexCastOp::create(pb, pl, i64, i), state[1],
              ValueRange{c0, t});
          scf::YieldOp::create(pb, pl, ValueRange{vs, is, v, i});
        });
    b.setInsertionPointToStart(rowLoop.getTerminator().getBody());
    for (auto [n, shared] : llvm::enumerate(rowLoop.getRegionIterArgs()))
      tensor::ParallelInsertSliceOp::create(b, l, pickLoop.getResult(n),
                                            shared, offsets, sizes, strides);
  }
  llvm::SmallVector<int64_t> shape(type.getShape());
  shape.back() = k;
  lead.push_back(builder.getIndexAttr(k));
  return {reshapeTo(loc, rowLoop.getResult(0), shape, lead),
          reshapeTo(loc, rowLoop.getResult(1), shape, lead)};
}

/// GatherND (batch_dims = 0): out[i..., j...] = data[indices[i..., :], j...],
/// the index tuple's length a static size.
ImportResult Importer::importGatherND(const onnx::NodeProto &node) {
  Value data = input(node, 0), ids = input(node, 1);
  if (!data || !ids || node.output_size() != 1)
    return std::string("needs data and indices of supported types");
  if (intAttr(node, "batch_dims", 0) != 0)
    return std::string("batch_dims other than 0 is not imported yet");
  auto dt = cast<RankedTensorType>(data.getType());
  auto it = cast<RankedTensorType>(ids.getType());
  int64_t q = it.getRank();
  int64_t k = q ? it.getDimSize(q - 1) : ShapedType::kDynamic;
  if (q < 1 || ShapedType::isDynamic(k) || k > dt.getRank() ||
      !isa<IntegerType>(it.getElementType()))
    return std::string("indices must be integers whose last dimension is a "
                       "static size <= the data's rank");
  Location loc = locOf(node);
  llvm::SmallVector<OpFoldResult> sizes;
  for (int64_t i = 0; i + 1 < q; ++i)
    sizes.push_back(tensor::getMixedSize(builder, loc, ids, i));
  for (int64_t i = k; i < dt.getRank(); ++i)
    sizes.push_back(tensor::getMixedSize(builder, loc, data, i));
  llvm::SmallVector<int64_t> shape;
  for (OpFoldResult s : sizes)
    shape.push_back(staticSize(s));
  llvm::SmallVector<Value> dataDims;
  for (int64_t i = 0; i < k; ++i)
    dataDims.push_back(tensor::DimOp::create(builder, loc, data, i));
  values[node.output(0)] = indexGeneric(
      loc, RankedTensorType::get(shape, dt.getElementType()), sizes,
      [&](OpBuilder &b, Location l, ValueRange idx) {
        llvm::SmallVector<Value> at;
        llvm::SmallVector<Value> tuple(idx.take_front(q - 1));
        tuple.push_back(Value());
        for (int64_t t = 0; t < k; ++t) {
          tuple.back() = arith::ConstantIndexOp::create(b, l, t);
          at.push_back(normalizeIndex(
              b, l, tensor::ExtractOp::create(b, l, ids, tuple), dataDims[t]));
        }
        llvm::append_range(at, idx.drop_front(q - 1));
        return tensor::ExtractOp::create(b, l, data, at).getResult();
      });
  return std::nullopt;
}

namespace {
/// `old` combined with `update` by ONNX's scatter `reduction`.
Value scatterCombine(OpBuilder &b, Location l, llvm::StringRef reduction,
                     Value old, Value update) {
  bool isFloat = isa<FloatType>(update.getType());
  if (reduction == "add")
    return isFloat ? Value(arith::AddFOp::create(b, l, old, update))
                   : Value(arith::AddIOp::create(b, l, old, update));
  if (reduction == "mul")
    return isFloat ? Value(arith::MulFOp::create(b, l, old, update))
                   : Value(arith::MulIOp::create(b, l, old, update));
  if (reduction == "max")
    return isFloat ? Value(arith::MaximumFOp::create(b, l, old, update))
                   : Value(arith::MaxSIOp::create(b, l, old, update));
  if (reduction == "min")
    return isFloat ? Value(arith::MinimumFOp::create(b, l, old, update))
                   : Value(arith::MinSIOp::create(b, l, old, update));
  return update;
}

bool knownReduction(llvm::StringRef r) {
  return r == "none" || r == "add" || r == "mul" || r == "max" || r == "min";
}
} // namespace

/// ScatterND: a copy of data where each index tuple of `indices` selects a
/// slice that is replaced by (or reduced with) the matching slice of
/// `updates`, in index order. Data and updates are viewed as [rows, M]
/// (M the slice size), the tuples linearised into rows.
ImportResult Importer::importScatterND(const onnx::NodeProto &node) {
  Value data = input(node, 0), ids = input(node, 1), updates = input(node, 2);
  if (!data || !ids || !updates || node.output_size() != 1)
    return std::string("needs data, indices and updates of supported types");
  std::string reduction = stringAttr(node, "reduction", "none");
  if (!knownReduction(reduction))
    return "reduction '" + reduction + "' is not imported";
  // index_add_ (dynamo's ScatterND with reduction add) may end an
  // unrolled MoE block.
  if (reduction == "add" && raiseUnrolledMoE(node))
    return std::nullopt;
  auto dt = cast<RankedTensorType>(data.getType());
  auto it = cast<RankedTensorType>(ids.getType());
  auto ut = cast<RankedTensorType>(updates.getType());
  int64_t q = it.getRank(), r = dt.getRank();
  int64_t k = q ? it.getDimSize(q - 1) : ShapedType::kDynamic;
  if (q < 1 || ShapedType::isDynamic(k) || k > r ||
      !isa<IntegerType>(it.getElementType()) ||
      ut.getElementType() != dt.getElementType() ||
      ut.getRank() != q - 1 + r - k)
    return std::string("indices must be integers whose last dimension is a "
                       "static size <= the data's rank, and updates of "
                       "shape indices[:-1] + data[k:]");
  Location loc = locOf(node);
  auto size = [&](Value v, int64_t i) {
    return tensor::getMixedSize(builder, loc, v, i);
  };
  OpFoldResult rows = builder.getIndexAttr(1), slice = builder.getIndexAttr(1),
               tuples = builder.getIndexAttr(1);
  for (int64_t i = 0; i < k; ++i)
    rows = foldIndex(loc, '*', rows, size(data, i));
  for (int64_t i = k; i < r; ++i)
    slice = foldIndex(loc, '*', slice, size(data, i));
  for (int64_t i = 0; i + 1 < q; ++i)
    tuples = foldIndex(loc, '*', tuples, size(ids, i));
  Value data2 = reshapeTo(loc, data, {staticSize(rows), staticSize(slice)},
                          {rows, slice});
  Value ids2 = reshapeTo(loc, ids, {staticSize(tuples), k},
                         {tuples, builder.getIndexAttr(k)});
  Value upd2 = reshapeTo(loc, updates, {staticSize(tuples), staticSize(slice)},
                         {tuples, slice});
  // A copy to write into: the caller's data stays intact.
  Value init = tensor::EmptyOp::create(
      builder, loc, llvm::ArrayRef<OpFoldResult>{rows, slice},
      dt.getElementType());
  Value out = linalg::CopyOp::create(builder, loc, data2, init).getResult(0);
  llvm::SmallVector<Value> dims;
  for (int64_t i = 0; i < k; ++i)
    dims.push_back(tensor::DimOp::create(builder, loc, data, i));
  Value c0 = arith::ConstantIndexOp::create(builder, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(builder, loc, 1);
  Value tuplesV = getValueOrCreateConstantIndexOp(builder, loc, tuples);
  Value sliceV = getValueOrCreateConstantIndexOp(builder, loc, slice);
  auto loop = scf::ForOp::create(
      builder, loc, c0, tuplesV, c1, ValueRange{out},
      [&](OpBuilder &b, Location l, Value n, ValueRange acc) {
        // The tuple's row: sum of normalised components times strides.
        Value row = c0;
        for (int64_t t = 0; t < k; ++t) {
          Value comp = normalizeIndex(
              b, l,
              tensor::ExtractOp::create(
                  b, l, ids2,
                  ValueRange{n, arith::ConstantIndexOp::create(b, l, t)}),
              dims[t]);
          row = arith::AddIOp::create(
              b, l, arith::MulIOp::create(b, l, row, dims[t]), comp);
        }
        auto inner = scf::ForOp::create(
            b, l, c0, sliceV, c1, ValueRange{acc[0]},
            [&](OpBuilder &ib, Location il, Value m, ValueRange cur) {
              Value u =
                  tensor::ExtractOp::create(ib, il, upd2, ValueRange{n, m});
              Value old = tensor::ExtractOp::create(ib, il, cur[0],
                                                    ValueRange{row, m});
              Value v = scatterCombine(ib, il, reduction, old, u);
              scf::YieldOp::create(
                  ib, il,
                  ValueRange{tensor::InsertOp::create(ib, il, v, cur[0],
                                                      ValueRange{row, m})});
            });
        scf::YieldOp::create(b, l, inner.getResults());
      });
  llvm::SmallVector<OpFoldResult> outSizes =
      tensor::getMixedSizes(builder, loc, data);
  values[node.output(0)] =
      reshapeTo(loc, loop.getResult(0), dt.getShape(), outSizes);
  return std::nullopt;
}

/// ScatterElements: a copy of data where element i... of `updates` goes to
/// data[i... with `axis` replaced by indices[i...]] (or is reduced with
/// it), in index order.
ImportResult Importer::importScatterElements(const onnx::NodeProto &node) {
  Value data = input(node, 0), ids = input(node, 1), updates = input(node, 2);
  if (!data || !ids || !updates || node.output_size() != 1)
    return std::string("needs data, indices and updates of supported types");
  std::string reduction = stringAttr(node, "reduction", "none");
  if (!knownReduction(reduction))
    return "reduction '" + reduction + "' is not imported";
  // index_add_ (dynamo's ScatterND with reduction add) may end an
  // unrolled MoE block.
  if (reduction == "add" && raiseUnrolledMoE(node))
    return std::nullopt;
  auto dt = cast<RankedTensorType>(data.getType());
  auto it = cast<RankedTensorType>(ids.getType());
  auto ut = cast<RankedTensorType>(updates.getType());
  int64_t r = dt.getRank();
  if (it.getRank() != r || ut.getRank() != r ||
      ut.getElementType() != dt.getElementType() ||
      !isa<IntegerType>(it.getElementType()))
    return std::string("data, indices and updates must share a rank");
  std::optional<int64_t> axis = normalizeAxis(intAttr(node, "axis", 0), r);
  if (!axis)
    return std::string("axis is out of range");
  Location loc = locOf(node);
  Value init = tensor::EmptyOp::create(
      builder, loc, tensor::getMixedSizes(builder, loc, data),
      dt.getElementType());
  Value out = linalg::CopyOp::create(builder, loc, data, init).getResult(0);
  Value c0 = arith::ConstantIndexOp::create(builder, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(builder, loc, 1);
  Value axisSize = tensor::DimOp::create(builder, loc, data, *axis);
  // One loop per dimension of the indices, the result threaded through.
  std::function<Value(OpBuilder &, Location, int64_t, Value,
                      llvm::SmallVector<Value> &)>
      nest = [&](OpBuilder &b, Location l, int64_t d, Value acc,
                 llvm::SmallVector<Value> &idx) -> Value {
    if (d == r) {
      Value u = tensor::ExtractOp::create(b, l, updates, idx);
      llvm::SmallVector<Value> at(idx);
      at[*axis] = normalizeIndex(b, l, tensor::ExtractOp::create(b, l, ids, idx),
                                 axisSize);
      Value old = tensor::ExtractOp::create(b, l, acc, at);
      return tensor::InsertOp::create(
          b, l, scatterCombine(b, l, reduction, old, u), acc, at);
    }
    Value bound = tensor::DimOp::create(b, l, ids, d);
    auto loop = scf::ForOp::create(
        b, l, c0, bound, c1, ValueRange{acc},
        [&](OpBuilder &lb, Location ll, Value i, ValueRange cur) {
          idx.push_back(i);
          Value next = nest(lb, ll, d + 1, cur[0], idx);
          idx.pop_back();
          scf::YieldOp::create(lb, ll, ValueRange{next});
        });
    return loop.getResult(0);
  };
  llvm::SmallVector<Value> idx;
  values[node.output(0)] = nest(builder, loc, 0, out, idx);
  return std::nullopt;
}

/// NonZero: the int64 [rank, count] coordinates of the non-zero elements in
/// row-major order. Two passes over the flattened input: count, then fill.
ImportResult Importer::importNonZero(const onnx::NodeProto &node) {
  Value x = input(node, 0);
  if (!x || node.output_size() != 1)
    return std::string("needs an input of a supported type");
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  Type et = type.getElementType();
  Location loc = locOf(node);
  llvm::SmallVector<OpFoldResult> dims = tensor::getMixedSizes(builder, loc, x);
  OpFoldResult total = builder.getIndexAttr(1);
  for (OpFoldResult d : dims)
    total = foldIndex(loc, '*', total, d);
  Value flat = reshapeTo(loc, x, {staticSize(total)}, {total});
  Value c0 = arith::ConstantIndexOp::create(builder, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(builder, loc, 1);
  Value n = getValueOrCreateConstantIndexOp(builder, loc, total);
  auto nonZero = [&](OpBuilder &b, Location l, Value i) -> Value {
    Value v = tensor::ExtractOp::create(b, l, flat, ValueRange{i});
    if (isa<FloatType>(et))
      return arith::CmpFOp::create(
          b, l, arith::CmpFPredicate::UNE, v,
          arith::ConstantOp::create(b, l, b.getFloatAttr(et, 0.0)));
    return arith::CmpIOp::create(
        b, l, arith::CmpIPredicate::ne, v,
        arith::ConstantOp::create(b, l, b.getIntegerAttr(et, 0)));
  };
  auto counting = scf::ForOp::create(
      builder, loc, c0, n, c1, ValueRange{c0},
      [&](OpBuilder &b, Location l, Value i, ValueRange acc) {
        Value inc = arith::SelectOp::create(b, l, nonZero(b, l, i), c1, c0);
        scf::YieldOp::create(
            b, l, ValueRange{arith::AddIOp::create(b, l, acc[0], inc)});
      });
  Value count = counting.getResult(0);
  Type i64 = builder.getI64Type();
  Value out = tensor::EmptyOp::create(
      builder, loc,
      llvm::ArrayRef<OpFoldResult>{builder.getIndexAttr(rank), count}, i64);
  llvm::SmallVector<Value> dimValues;
  for (OpFoldResult d : dims)
    dimValues.push_back(getValueOrCreateConstantIndexOp(builder, loc, d));
  auto filling = scf::ForOp::create(
      builder, loc, c0, n, c1, ValueRange{out, c0},
      [&](OpBuilder &b, Location l, Value i, ValueRange acc) {
        auto branch = scf::IfOp::create(
            b, l, nonZero(b, l, i),
            [&](OpBuilder &tb, Location tl) {
              // Row-major coordinates of i, last dimension first.
              Value rest = i, result = acc[0];
              for (int64_t d = rank - 1; d >= 0; --d) {
                Value coord = arith::RemUIOp::create(tb, tl, rest, dimValues[d]);
                rest = arith::DivUIOp::create(tb, tl, rest, dimValues[d]);
                result = tensor::InsertOp::create(
                    tb, tl, arith::IndexCastOp::create(tb, tl, i64, coord),
                    result,
                    ValueRange{arith::ConstantIndexOp::create(tb, tl, d),
                               acc[1]});
              }
              scf::YieldOp::create(
                  tb, tl,
                  ValueRange{result, arith::AddIOp::create(tb, tl, acc[1], c1)});
            },
            [&](OpBuilder &eb, Location el) {
              scf::YieldOp::create(eb, el, acc);
            });
        scf::YieldOp::create(b, l, branch.getResults());
      });
  values[node.output(0)] = filling.getResult(0);
  return std::nullopt;
}
