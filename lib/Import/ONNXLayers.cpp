//===- ONNXLayers.cpp - Products, normalisations and MoE raising ----------===//
//
// MatMul (2-D weights as linalg.matmul, batched products as one
// contraction), Gemm (moe.linear for torch.nn.Linear's form), the
// normalisations (RMS forms as moe.rms_norm, LayerNormalization as
// generics) and com.microsoft.MoE raised to moe.route + moe.experts.
//
//===----------------------------------------------------------------------===//

#include "ONNXImporterImpl.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include "llvm/Support/FormatVariadic.h"

#include "llvm/ADT/SmallSet.h"

#include <cfloat>
#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::onnximport;

ImportResult Importer::importMatMul(const onnx::NodeProto &node) {
  if (node.input_size() != 2 || node.output_size() != 1)
    return std::string("needs 2 inputs and 1 output");
  Value a = lookup(node.input(0)), b = lookup(node.input(1));
  if (!a || !b)
    return std::string("an input has an unsupported type");
  auto at = cast<RankedTensorType>(a.getType());
  auto bt = cast<RankedTensorType>(b.getType());
  if (at.getRank() < 2 || bt.getRank() < 2 ||
      at.getElementType() != bt.getElementType() ||
      !isa<FloatType>(at.getElementType()))
    return std::string("only float MatMul of rank >= 2 operands of one "
                       "element type is imported yet");
  if (bt.getRank() > 2)
    return importBatchMatMul(node, a, b);
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
    Value init = zeros(loc, sizes, ft.getElementType());
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
  Value init = zeros(loc, sizes, at.getElementType());
  values[node.output(0)] =
      linalg::MatmulOp::create(builder, loc, ValueRange{a, b}, ValueRange{init})
          .getResult(0);
  return std::nullopt;
}

/// [..., M, K] x [..., K, N] with numpy-broadcast batch dimensions: one
/// linalg.generic contraction (batch..., m, n, k), f32 accumulation in the
/// element type as onnxruntime's CPU kernel does for f32.
ImportResult Importer::importBatchMatMul(const onnx::NodeProto &node, Value a,
                                         Value b) {
  auto at = cast<RankedTensorType>(a.getType());
  auto bt = cast<RankedTensorType>(b.getType());
  int64_t batch = std::max(at.getRank(), bt.getRank()) - 2;
  int64_t dims = batch + 3; // batch..., m, n, k
  Location loc = locOf(node);
  llvm::SmallVector<OpFoldResult> sizes;
  llvm::SmallVector<AffineExpr> aExprs, bExprs, outExprs;
  for (int64_t d = 0; d < batch; ++d) {
    int64_t ja = d - (batch - (at.getRank() - 2));
    int64_t jb = d - (batch - (bt.getRank() - 2));
    int64_t sa = ja >= 0 ? at.getDimSize(ja) : 1;
    int64_t sb = jb >= 0 ? bt.getDimSize(jb) : 1;
    if (sa != 1 && sb != 1 && !ShapedType::isDynamic(sa) &&
        !ShapedType::isDynamic(sb) && sa != sb)
      return llvm::formatv("batch dimension {0} cannot broadcast ({1} vs {2})",
                           d, sa, sb)
          .str();
    // The result size comes from an operand whose size is not 1.
    if (sa != 1)
      sizes.push_back(tensor::getMixedSize(builder, loc, a, ja));
    else if (sb != 1)
      sizes.push_back(tensor::getMixedSize(builder, loc, b, jb));
    else
      sizes.push_back(builder.getIndexAttr(1));
    auto expr = [&](int64_t j, int64_t size, int64_t other) -> AffineExpr {
      if (j < 0)
        return nullptr;
      return size == 1 && other != 1 ? builder.getAffineConstantExpr(0)
                                     : builder.getAffineDimExpr(d);
    };
    if (AffineExpr e = expr(ja, sa, sb))
      aExprs.push_back(e);
    if (AffineExpr e = expr(jb, sb, sa))
      bExprs.push_back(e);
    outExprs.push_back(builder.getAffineDimExpr(d));
  }
  AffineExpr m = builder.getAffineDimExpr(batch),
             n = builder.getAffineDimExpr(batch + 1),
             k = builder.getAffineDimExpr(batch + 2);
  aExprs.append({m, k});
  bExprs.append({k, n});
  outExprs.append({m, n});
  int64_t ka = at.getDimSize(at.getRank() - 1), kb = bt.getDimSize(bt.getRank() - 2);
  if (!ShapedType::isDynamic(ka) && !ShapedType::isDynamic(kb) && ka != kb)
    return llvm::formatv("inner dimensions differ ({0} and {1})", ka, kb).str();
  sizes.push_back(tensor::getMixedSize(builder, loc, a, at.getRank() - 2));
  sizes.push_back(tensor::getMixedSize(builder, loc, b, bt.getRank() - 1));
  Type et = at.getElementType();
  Value init = zeros(loc, sizes, et);
  llvm::SmallVector<utils::IteratorType> iters(dims,
                                               utils::IteratorType::parallel);
  iters.back() = utils::IteratorType::reduction;
  values[node.output(0)] =
      linalg::GenericOp::create(
          builder, loc, TypeRange{init.getType()}, ValueRange{a, b},
          ValueRange{init},
          llvm::ArrayRef<AffineMap>{AffineMap::get(dims, 0, aExprs, ctx),
                                    AffineMap::get(dims, 0, bExprs, ctx),
                                    AffineMap::get(dims, 0, outExprs, ctx)},
          iters,
          [&](OpBuilder &bb, Location l, ValueRange args) {
            Value p = arith::MulFOp::create(bb, l, args[0], args[1]);
            linalg::YieldOp::create(bb, l,
                                    Value(arith::AddFOp::create(bb, l, args[2], p)));
          })
          .getResult(0);
  return std::nullopt;
}

/// SimplifiedLayerNormalization (onnxruntime), RMSNormalization (opset 23)
/// and SkipSimplifiedLayerNormalization (com.microsoft: the norm of input +
/// skip (+ bias), whose sum is also output 3): moe.rms_norm over the last
/// axis.
ImportResult Importer::importSimplifiedLayerNorm(const onnx::NodeProto &node) {
  bool skip = node.op_type() == "SkipSimplifiedLayerNormalization";
  int scaleAt = skip ? 2 : 1;
  if (node.input_size() <= scaleAt || node.output_size() < 1)
    return std::string("needs input and scale");
  for (int i = 1; i < node.output_size(); ++i)
    if (!node.output(i).empty() && !(skip && i == 3))
      return llvm::formatv("optional output {0} (statistics) is not "
                           "supported",
                           i)
          .str();
  int64_t axis = intAttr(node, "axis", -1);
  Value x = input(node, 0), scale = input(node, scaleAt);
  if (!x || !scale)
    return std::string("an input has an unsupported type");
  Location loc = locOf(node);
  if (skip) {
    llvm::SmallVector<Value> terms = {x, input(node, 1)};
    if (Value bias = input(node, 3))
      terms.push_back(bias);
    if (!terms[1])
      return std::string("the skip input has an unsupported type");
    for (Value term : llvm::drop_begin(terms)) {
      llvm::Expected<Value> sum = broadcastGeneric(
          loc, {x, term}, cast<RankedTensorType>(x.getType()).getElementType(),
          [](OpBuilder &b, Location l, ValueRange args) -> Value {
            return arith::AddFOp::create(b, l, args[0], args[1]);
          });
      if (!sum)
        return llvm::toString(sum.takeError());
      x = *sum;
    }
    if (node.output_size() > 3 && !node.output(3).empty())
      values[node.output(3)] = x;
  }
  auto xt = cast<RankedTensorType>(x.getType());
  if (axis != -1 && axis != xt.getRank() - 1)
    return std::string("only normalisation over the last axis is supported");
  if (scale.getType() !=
      RankedTensorType::get({xt.getShape().back()}, xt.getElementType()))
    return std::string("scale must be [last dim] of the input's type");
  float eps = floatAttr(node, "epsilon").value_or(1e-5f);
  values[node.output(0)] =
      RMSNormOp::create(builder, loc, x.getType(), x, scale,
                        builder.getF32FloatAttr(eps), UnitAttr());
  return std::nullopt;
}

/// LayerNormalization over the last axis: (x - mean) / sqrt(var + eps) *
/// scale (+ bias), statistics in the element type.
ImportResult Importer::importLayerNorm(const onnx::NodeProto &node) {
  Value x = input(node, 0), scale = input(node, 1), bias = input(node, 2);
  if (!x || !scale || node.output_size() < 1)
    return std::string("needs input and scale of supported types");
  for (int i = 1; i < node.output_size(); ++i)
    if (!node.output(i).empty())
      return std::string("the optional Mean/InvStdDev outputs are not "
                         "supported");
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  Type et = type.getElementType();
  if (!isa<FloatType>(et) || rank < 1)
    return std::string("only float tensors are normalised");
  std::optional<int64_t> axis = normalizeAxis(intAttr(node, "axis", -1), rank);
  if (axis != rank - 1)
    return std::string("only normalisation over the last axis is imported "
                       "yet");
  float eps = floatAttr(node, "epsilon").value_or(1e-5f);
  Location loc = locOf(node);
  AffineMap id = builder.getMultiDimIdentityMap(rank);
  // Not getMajorSubMap(rank - 1): that is a null map for rank 1.
  AffineMap row = AffineMap::get(rank, 0, id.getResults().drop_back(),
                                 builder.getContext());
  AffineMap last = AffineMap::get(rank, 0, builder.getAffineDimExpr(rank - 1));
  llvm::SmallVector<utils::IteratorType> reduce(rank,
                                                utils::IteratorType::parallel);
  reduce.back() = utils::IteratorType::reduction;
  llvm::SmallVector<OpFoldResult> rowSizes =
      tensor::getMixedSizes(builder, loc, x);
  OpFoldResult width = rowSizes.pop_back_val();
  Value n = arith::UIToFPOp::create(
      builder, loc, et,
      arith::IndexCastUIOp::create(
          builder, loc, builder.getI64Type(),
          getValueOrCreateConstantIndexOp(builder, loc, width)));
  auto rowSum = [&](ValueRange inputs, llvm::ArrayRef<AffineMap> maps,
                    auto term) {
    llvm::SmallVector<AffineMap> all(maps);
    all.push_back(row);
    Value acc = zeros(loc, rowSizes, et);
    return linalg::GenericOp::create(
               builder, loc, TypeRange{acc.getType()}, inputs,
               ValueRange{acc}, all, reduce,
               [&](OpBuilder &b, Location l, ValueRange args) {
                 linalg::YieldOp::create(
                     b, l,
                     Value(arith::AddFOp::create(b, l, args.back(),
                                                 term(b, l, args))));
               })
        .getResult(0);
  };
  Value sum = rowSum(ValueRange{x}, {id},
                     [](OpBuilder &, Location, ValueRange args) {
                       return args[0];
                     });
  Value sq = rowSum(ValueRange{x, sum}, {id, row},
                    [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                      Value d = arith::SubFOp::create(
                          b, l, args[0],
                          arith::DivFOp::create(b, l, args[1], n));
                      return arith::MulFOp::create(b, l, d, d);
                    });
  llvm::SmallVector<Value> ins = {x, sum, sq, scale};
  llvm::SmallVector<AffineMap> maps = {id, row, row, last};
  if (bias) {
    ins.push_back(bias);
    maps.push_back(last);
  }
  maps.push_back(id);
  Value init = tensor::EmptyOp::create(
      builder, loc, tensor::getMixedSizes(builder, loc, x), et);
  values[node.output(0)] =
      linalg::GenericOp::create(
          builder, loc, TypeRange{type}, ins, ValueRange{init}, maps,
          llvm::SmallVector<utils::IteratorType>(rank,
                                                 utils::IteratorType::parallel),
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value mean = arith::DivFOp::create(b, l, args[1], n);
            Value var = arith::DivFOp::create(b, l, args[2], n);
            Value inv = math::RsqrtOp::create(
                b, l,
                arith::AddFOp::create(
                    b, l, var,
                    arith::ConstantOp::create(b, l, b.getFloatAttr(et, eps))));
            Value y = arith::MulFOp::create(
                b, l,
                arith::MulFOp::create(
                    b, l, arith::SubFOp::create(b, l, args[0], mean), inv),
                args[3]);
            if (bias)
              y = arith::AddFOp::create(b, l, y, args[4]);
            linalg::YieldOp::create(b, l, y);
          })
          .getResult(0);
  return std::nullopt;
}

/// Gemm: Y = alpha * A' B' + beta * C (' = transposed as asked, C
/// broadcast). The product is moe.linear, so the projection passes see it;
/// with alpha = beta = 1 and a row bias C (torch.nn.Linear's export) C is
/// its bias.
ImportResult Importer::importGemm(const onnx::NodeProto &node) {
  if (node.input_size() < 2 || node.output_size() != 1)
    return std::string("needs A and B");
  bool transA = intAttr(node, "transA", 0) != 0;
  float alpha = floatAttr(node, "alpha").value_or(1.0f);
  float beta = floatAttr(node, "beta").value_or(1.0f);
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
  auto transposed = [&](Value m) -> Value {
    Value init = tensor::EmptyOp::create(
        builder, loc,
        llvm::SmallVector<OpFoldResult>{tensor::getMixedSize(builder, loc, m, 1),
                                        tensor::getMixedSize(builder, loc, m, 0)},
        et);
    return linalg::TransposeOp::create(builder, loc, m, init,
                                       llvm::ArrayRef<int64_t>{1, 0})
        .getResult()[0];
  };
  if (transA) {
    a = transposed(a);
    at = cast<RankedTensorType>(a.getType());
  }
  // The common form (torch.nn.Linear: alpha = beta = 1, C a row bias)
  // keeps C as moe.linear's bias; any other C is added after, broadcast,
  // as beta * C, and the product scaled by alpha.
  Value addend;
  if (c) {
    auto ct = cast<RankedTensorType>(c.getType());
    bool row =
        ct.getElementType() == et &&
        ((ct.getRank() == 1 && ct.getDimSize(0) == n) ||
         (ct.getRank() == 2 && ct.getDimSize(0) == 1 && ct.getDimSize(1) == n));
    if (ct.getElementType() != et || ct.getRank() > 2)
      return std::string("C must be of A's type and rank <= 2");
    if (!row || alpha != 1.0f || beta != 1.0f) {
      addend = c;
      c = nullptr;
    } else if (ct.getRank() == 2) {
      c = tensor::CollapseShapeOp::create(
          builder, loc, c, llvm::ArrayRef<ReassociationIndices>{{0, 1}});
    }
  }
  // [K, N] weights: the transpose moe.linear wants, as a linalg op.
  if (!transB)
    b = transposed(b);
  auto type = RankedTensorType::get({at.getDimSize(0), n}, et);
  Value product =
      LinearOp::create(builder, loc, type, a, b, c, /*norm_weight=*/Value(),
                       /*residual=*/Value(), /*norm_eps=*/FloatAttr(),
                       /*norm_weight_in_f32=*/UnitAttr());
  if (alpha != 1.0f || addend) {
    llvm::SmallVector<Value> operands = {product};
    if (addend)
      operands.push_back(addend);
    llvm::Expected<Value> scaled = broadcastGeneric(
        loc, operands, et, [&](OpBuilder &bb, Location l, ValueRange args) {
          auto cst = [&](float v) -> Value {
            return arith::ConstantOp::create(bb, l, bb.getFloatAttr(et, v));
          };
          Value y = arith::MulFOp::create(bb, l, args[0], cst(alpha));
          if (args.size() > 1)
            y = arith::AddFOp::create(
                bb, l, y, arith::MulFOp::create(bb, l, args[1], cst(beta)));
          return y;
        });
    if (!scaled)
      return llvm::toString(scaled.takeError());
    product = *scaled;
  }
  values[node.output(0)] = product;
  return std::nullopt;
}
/// com.microsoft.MoE -> moe.route + moe.experts. The routing follows the
/// op's CUDA kernel: `router_probs` are logits, softmax over all experts,
/// top-k, then optional renormalisation.
ImportResult Importer::importMoE(const onnx::NodeProto &node) {
  return importMoEWith(node, "com.microsoft.MoE", input(node, 2),
                       input(node, 3), input(node, 4), input(node, 5),
                       input(node, 6), input(node, 7), /*quantized=*/false);
}

/// com.microsoft.MoE with the given expert weights and biases (QMoE passes
/// its dequantised weights, `quantized`: onnxruntime's CPU QMoE routes top-k
/// of the logits, then softmax over the k, where MoE takes the softmax over
/// all experts first; equal when the weights are renormalised).
ImportResult Importer::importMoEWith(const onnx::NodeProto &node,
                                     llvm::StringRef form, Value fc1,
                                     Value fc1Bias, Value fc2, Value fc2Bias,
                                     Value fc3, Value fc3Bias, bool quantized) {
  ONNXMoEBlock block;
  block.node = model.describe(node);
  block.form = form.str();
  auto notRaised = [&](const std::string &why) -> ImportResult {
    block.reason = why;
    if (blocks)
      blocks->push_back(block);
    return "MoE block not raised: " + why;
  };
  auto input = [&](int i) { return this->input(node, i); };
  if (node.output_size() != 1)
    return notRaised("expects one output");
  std::string activation = stringAttr(node, "activation_type", "relu");
  int64_t k = intAttr(node, "k", 1);
  bool normalize = intAttr(node, "normalize_routing_weights", 0) != 0;
  int64_t fusion = intAttr(node, "swiglu_fusion", 0);
  if (intAttr(node, "use_sparse_mixer", 0))
    return notRaised("use_sparse_mixer (Phi-3.5 SparseMixer routing) has no "
                     "moe.route form");
  Value x = input(0);
  if (!x || !fc1 || !fc2)
    return notRaised("input, fc1_experts_weights and fc2_experts_weights are "
                     "required");
  auto xt = cast<RankedTensorType>(x.getType());
  if (xt.getRank() != 2)
    return notRaised("only a [T, H] input is imported yet");
  Value probs = input(1);
  if (!probs || cast<RankedTensorType>(probs.getType()).getRank() != 2)
    return notRaised("router_probs must be [T, E] logits");
  // Why the block cannot become moe ops; it then runs as plain tensor ops.
  std::string plainWhy;
  if (!quantized &&
      (!fc1.getDefiningOp<WeightOp>() || !fc2.getDefiningOp<WeightOp>() ||
       (fc3 && !fc3.getDefiningOp<WeightOp>())))
    plainWhy = "expert weights are not initializers";

  // The router: router_probs must be MatMul(input, W) with W an [H, E]
  // initializer, so that moe.route computes the logits itself.
  auto matmul = probs.getDefiningOp<linalg::MatmulOp>();
  Value router = matmul ? matmul.getInputs()[1] : Value();
  if (!matmul || matmul.getInputs()[0] != x ||
      !router.getDefiningOp<WeightOp>())
    plainWhy = "router_probs is not MatMul(input, initializer)";
  int64_t hidden = xt.getDimSize(1);
  int64_t numExperts = cast<RankedTensorType>(probs.getType()).getDimSize(1);
  if (ShapedType::isDynamic(numExperts) || k < 1 || k > numExperts)
    return notRaised(
        llvm::formatv("k = {0} is not in [1, {1}]", k, numExperts));

  // Expert weights, [E, I, H] gate/up and [E, H, I] down. The legacy
  // shapes ([E, H, I] fc1/fc3, [E, I, H] fc2; detected by ORT's rule in
  // moe_helper.h: fc2's dim 1 is not H, or, for fused SwiGLU with I = H,
  // fc1's dim 1 is H) label the same bytes column-major per expert:
  // onnxruntime's kernels read them as the current layout, and so do we
  // (a reshape, not a transpose; checked by the moe_*_legacy fixtures).
  auto fc1Type = cast<RankedTensorType>(fc1.getType());
  auto fc2Type = cast<RankedTensorType>(fc2.getType());
  if (fc1Type.getRank() != 3 || fc2Type.getRank() != 3 ||
      (fc3 && cast<RankedTensorType>(fc3.getType()).getRank() != 3))
    return notRaised("expert weights must be 3-D");
  bool fused = activation == "swiglu" && fusion != 0;
  bool legacy = !quantized && (fc2Type.getDimSize(1) != hidden ||
                                (fused && fc2Type.getDimSize(2) == hidden &&
                                 fc1Type.getDimSize(1) == hidden));
  if (legacy) {
    auto swapLast = [&](Value w) -> Value {
      if (!w)
        return w;
      auto t = cast<RankedTensorType>(w.getType());
      llvm::SmallVector<int64_t> shape = {t.getDimSize(0), t.getDimSize(2),
                                          t.getDimSize(1)};
      llvm::SmallVector<OpFoldResult> dims;
      for (int64_t d : shape)
        dims.push_back(builder.getIndexAttr(d));
      return reshapeTo(locOf(node), w, shape, dims);
    };
    fc1 = swapLast(fc1);
    fc2 = swapLast(fc2);
    fc3 = swapLast(fc3);
    fc1Type = cast<RankedTensorType>(fc1.getType());
    fc2Type = cast<RankedTensorType>(fc2.getType());
    block.form += " (legacy weight layout)";
  }
  int64_t inter = fc2Type.getDimSize(2);
  int64_t factor = fused ? 2 : 1;
  if (fc2Type.getDimSize(1) != hidden ||
      fc1Type.getDimSize(1) != factor * inter ||
      fc1Type.getDimSize(2) != hidden)
    return notRaised(llvm::formatv(
        "weights fit neither the [E, I, H] / [E, H, I] layout nor the "
        "legacy one: fc1 {0}, fc2 {1}",
        fc1Type, fc2Type));
  if (fc1Type.getDimSize(0) != numExperts ||
      fc2Type.getDimSize(0) != numExperts)
    return notRaised("router_probs and the expert weights disagree on the "
                     "number of experts (expert parallelism is not "
                     "supported)");

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
  } else if (llvm::is_contained({"relu", "gelu", "silu", "identity"},
                                activation) &&
             !fc3) {
    // Ungated: act(fc1 x) only; moe.experts is gated, so plain ops.
    gate = fc1;
    gateBias = fc1Bias;
    plainWhy = "activation_type '" + activation +
               "' is not a gated FFN that moe.experts expresses";
  } else {
    return notRaised("activation_type '" + activation + "' with swiglu_fusion " +
                     std::to_string(fusion) + (fc3 ? " and" : " and no") +
                     " fc3 is not a combination the op defines");
  }
  if (up && cast<RankedTensorType>(up.getType()) !=
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

  if (!plainWhy.empty()) {
    values[node.output(0)] =
        plainMoE(loc, x, probs, gate, gateBias, up, upBias, fc2, fc2Bias, k,
                 normalize, activation, alpha, beta, limit, quantized);
    block.reason = plainWhy + "; it runs as plain tensor ops";
    if (blocks)
      blocks->push_back(block);
    return std::nullopt;
  }
  auto idsType =
      RankedTensorType::get({xt.getDimSize(0), k}, builder.getI32Type());
  auto weightsType =
      RankedTensorType::get({xt.getDimSize(0), k}, builder.getF32Type());
  // moe.route wants the router as [E, H].
  auto routerType = cast<RankedTensorType>(router.getType());
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
      builder.getI64IntegerAttr(k),
      ScoreFuncAttr::get(ctx, quantized ? ScoreFunc::None : ScoreFunc::Softmax),
      RouteOrderAttr::get(ctx, quantized ? RouteOrder::TopKThenSoftmax
                                         : RouteOrder::ScoreThenTopK),
      builder.getI64IntegerAttr(1), builder.getI64IntegerAttr(1),
      GroupScoreAttr::get(ctx, GroupScore::Max),
      RenormAttr::get(ctx, normalize && !quantized ? Renorm::Sum
                                                   : Renorm::None),
      builder.getF32FloatAttr(0.0f), builder.getF32FloatAttr(1.0f),
      // router_probs is the MatMul's result, in the input's type.
      xt.getElementType().isF32() ? UnitAttr() : builder.getUnitAttr());
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

Value Importer::plainMoE(Location loc, Value x, Value logits, Value gate,
                         Value gateBias, Value up, Value upBias, Value down,
                         Value downBias, int64_t k, bool normalize,
                         llvm::StringRef activation, float alpha, float beta,
                         std::optional<float> limit, bool topkFirst) {
  auto xt = cast<RankedTensorType>(x.getType());
  Type et = xt.getElementType();
  auto gt = cast<RankedTensorType>(gate.getType());
  int64_t numExperts = gt.getDimSize(0), inter = gt.getDimSize(1),
          hidden = gt.getDimSize(2);
  // Routing as ORT's kernels: softmax over all experts, top-k, optional
  // renormalisation of the k weights (MoE), or top-k of the logits and
  // softmax over those k (CPU QMoE).
  std::pair<Value, Value> routed =
      topkFirst ? topK(loc, logits, k, true)
                : topK(loc, softmaxLastAxis(loc, logits), k, true);
  Value weights = routed.first, ids = routed.second;
  if (topkFirst) {
    weights = softmaxLastAxis(loc, weights);
    normalize = false;
  }
  Type wt = cast<RankedTensorType>(weights.getType()).getElementType();
  OpFoldResult tokens = tensor::getMixedSize(builder, loc, x, 0);
  OpFoldResult kSize = builder.getIndexAttr(k);
  auto par = utils::IteratorType::parallel, red = utils::IteratorType::reduction;
  auto d = [&](unsigned i) { return builder.getAffineDimExpr(i); };
  auto map = [&](unsigned dims, llvm::ArrayRef<AffineExpr> exprs) {
    return AffineMap::get(dims, 0, exprs, ctx);
  };
  if (normalize) {
    Value sum =
        linalg::GenericOp::create(
            builder, loc, TypeRange{zeros(loc, {tokens}, wt).getType()},
            ValueRange{weights}, ValueRange{zeros(loc, {tokens}, wt)},
            llvm::ArrayRef<AffineMap>{map(2, {d(0), d(1)}), map(2, {d(0)})},
            llvm::ArrayRef<utils::IteratorType>{par, red},
            [&](OpBuilder &b, Location l, ValueRange args) {
              linalg::YieldOp::create(
                  b, l, Value(arith::AddFOp::create(b, l, args[0], args[1])));
            })
            .getResult(0);
    weights = linalg::GenericOp::create(
                  builder, loc, TypeRange{weights.getType()},
                  ValueRange{weights, sum},
                  ValueRange{tensor::EmptyOp::create(
                      builder, loc, llvm::ArrayRef<OpFoldResult>{tokens, kSize},
                      wt)},
                  llvm::ArrayRef<AffineMap>{map(2, {d(0), d(1)}),
                                            map(2, {d(0)}),
                                            map(2, {d(0), d(1)})},
                  llvm::ArrayRef<utils::IteratorType>{par, par},
                  [&](OpBuilder &b, Location l, ValueRange args) {
                    linalg::YieldOp::create(
                        b, l,
                        Value(arith::DivFOp::create(b, l, args[0], args[1])));
                  })
                  .getResult(0);
  }
  // The expert of slot (t, j), clamped into [0, E).
  auto expertOf = [&](OpBuilder &b, Location l, Value id) -> Value {
    Value e = arith::IndexCastOp::create(b, l, b.getIndexType(), id);
    Value zero = arith::ConstantIndexOp::create(b, l, 0);
    Value last = arith::ConstantIndexOp::create(b, l, numExperts - 1);
    return arith::MaxSIOp::create(b, l, zero,
                                  arith::MinSIOp::create(b, l, e, last));
  };
  // out[t, j, o] = sum_r W[e(t, j), o, r] in[..., r]: the expert rows
  // gathered per (token, slot), for gate/up (in = x[t, r]) and down
  // (in = act[t, j, r]).
  auto project = [&](Value w, Value in, AffineMap inMap,
                     int64_t rows) -> Value {
    Value acc = zeros(loc, {tokens, kSize, builder.getIndexAttr(rows)}, et);
    return linalg::GenericOp::create(
               builder, loc, TypeRange{acc.getType()}, ValueRange{in, ids},
               ValueRange{acc},
               llvm::ArrayRef<AffineMap>{inMap, map(4, {d(0), d(1)}),
                                         map(4, {d(0), d(1), d(2)})},
               llvm::ArrayRef<utils::IteratorType>{par, par, par, red},
               [&](OpBuilder &b, Location l, ValueRange args) {
                 Value e = expertOf(b, l, args[1]);
                 Value v = tensor::ExtractOp::create(
                     b, l, w,
                     ValueRange{e, linalg::IndexOp::create(b, l, 2),
                                linalg::IndexOp::create(b, l, 3)});
                 linalg::YieldOp::create(
                     b, l,
                     Value(arith::AddFOp::create(
                         b, l, args[2],
                         arith::MulFOp::create(b, l, v, args[0]))));
               })
        .getResult(0);
  };
  AffineMap tokenMap = map(4, {d(0), d(3)});
  Value g = project(gate, x, tokenMap, inter);
  Value u = up ? project(up, x, tokenMap, inter) : Value();
  // The activation, with the biases, per (t, j, i).
  llvm::SmallVector<Value> ins = {g, ids};
  if (u)
    ins.push_back(u);
  Value actInit = tensor::EmptyOp::create(
      builder, loc,
      llvm::ArrayRef<OpFoldResult>{tokens, kSize, builder.getIndexAttr(inter)},
      et);
  llvm::SmallVector<AffineMap> actMaps = {map(3, {d(0), d(1), d(2)}),
                                          map(3, {d(0), d(1)})};
  if (u)
    actMaps.push_back(map(3, {d(0), d(1), d(2)}));
  actMaps.push_back(map(3, {d(0), d(1), d(2)}));
  Value act =
      linalg::GenericOp::create(
          builder, loc, TypeRange{actInit.getType()}, ins, ValueRange{actInit},
          actMaps, llvm::ArrayRef<utils::IteratorType>{par, par, par},
          [&](OpBuilder &b, Location l, ValueRange args) {
            auto c = [&](double v) -> Value {
              return arith::ConstantOp::create(b, l, b.getFloatAttr(et, v));
            };
            Value e = expertOf(b, l, args[1]);
            Value i = linalg::IndexOp::create(b, l, 2);
            Value gv = args[0];
            if (gateBias)
              gv = arith::AddFOp::create(
                  b, l, gv,
                  tensor::ExtractOp::create(b, l, gateBias, ValueRange{e, i}));
            auto sigmoid = [&](Value v) -> Value {
              return arith::DivFOp::create(
                  b, l, c(1),
                  arith::AddFOp::create(
                      b, l, c(1),
                      math::ExpOp::create(b, l, arith::NegFOp::create(b, l, v))));
            };
            Value r;
            if (u) {
              Value uv = args[2];
              if (upBias)
                uv = arith::AddFOp::create(
                    b, l, uv,
                    tensor::ExtractOp::create(b, l, upBias, ValueRange{e, i}));
              if (limit) {
                gv = arith::MinimumFOp::create(b, l, gv, c(*limit));
                uv = arith::MaximumFOp::create(
                    b, l, c(-*limit), arith::MinimumFOp::create(b, l, uv, c(*limit)));
              }
              Value gated = arith::MulFOp::create(
                  b, l, gv, sigmoid(arith::MulFOp::create(b, l, gv, c(alpha))));
              r = arith::MulFOp::create(b, l, gated,
                                        arith::AddFOp::create(b, l, uv, c(beta)));
            } else if (activation == "relu") {
              r = arith::MaximumFOp::create(b, l, gv, c(0));
            } else if (activation == "gelu") {
              // The tanh approximation, as onnxruntime's MoE kernels.
              Value cube = arith::MulFOp::create(
                  b, l, gv, arith::MulFOp::create(b, l, gv, gv));
              Value inner = arith::MulFOp::create(
                  b, l, c(std::sqrt(2.0 / M_PI)),
                  arith::AddFOp::create(
                      b, l, gv, arith::MulFOp::create(b, l, c(0.044715), cube)));
              r = arith::MulFOp::create(
                  b, l, arith::MulFOp::create(b, l, c(0.5), gv),
                  arith::AddFOp::create(b, l, c(1),
                                        math::TanhOp::create(b, l, inner)));
            } else if (activation == "silu") {
              r = arith::MulFOp::create(b, l, gv, sigmoid(gv));
            } else {
              r = gv;
            }
            linalg::YieldOp::create(b, l, r);
          })
          .getResult(0);
  // o[t, j, h] = sum_i down[e, h, i] act[t, j, i] (+ bias); y = sum_j w o.
  Value o = project(down, act, map(4, {d(0), d(1), d(3)}), hidden);
  Value yAcc = zeros(loc, {tokens, builder.getIndexAttr(hidden)}, et);
  return linalg::GenericOp::create(
             builder, loc, TypeRange{yAcc.getType()},
             ValueRange{o, weights, ids}, ValueRange{yAcc},
             llvm::ArrayRef<AffineMap>{map(3, {d(0), d(2), d(1)}),
                                       map(3, {d(0), d(2)}),
                                       map(3, {d(0), d(2)}),
                                       map(3, {d(0), d(1)})},
             llvm::ArrayRef<utils::IteratorType>{par, par, red},
             [&](OpBuilder &b, Location l, ValueRange args) {
               Value v = args[0];
               if (downBias)
                 v = arith::AddFOp::create(
                     b, l, v,
                     tensor::ExtractOp::create(
                         b, l, downBias,
                         ValueRange{expertOf(b, l, args[2]),
                                    linalg::IndexOp::create(b, l, 1)}));
               Value w = args[1];
               if (w.getType() != et)
                 w = arith::TruncFOp::create(b, l, et, w);
               linalg::YieldOp::create(
                   b, l,
                   Value(arith::AddFOp::create(
                       b, l, args[3], arith::MulFOp::create(b, l, w, v))));
             })
      .getResult(0);
}

/// RotaryEmbedding, opset 23 (X, cos, sin[, position_ids]) and
/// com.microsoft (input, position_ids, cos, sin): x is [B, S, N*D] (with
/// num_heads) or [B, N, S, D]; the first rotary_embedding_dim (default D)
/// features of each head rotate in halves or, interleaved, in pairs, by
/// cos/sin rows picked by position (position_ids [B, S], a [1] offset, or
/// no ids with [B, S, rd/2] caches); the rest pass through. Checked
/// against onnxruntime by the rope_ops fixture.
ImportResult Importer::importRotaryEmbedding(const onnx::NodeProto &node) {
  bool contrib = node.domain() == "com.microsoft";
  Value x = input(node, 0);
  Value pos = input(node, contrib ? 1 : 3);
  Value cosCache = input(node, contrib ? 2 : 1);
  Value sinCache = input(node, contrib ? 3 : 2);
  if (!x || !cosCache || !sinCache || node.output_size() != 1)
    return std::string("needs the input and the cos and sin caches");
  if (intAttr(node, "is_packed_batching", 0))
    return std::string("is_packed_batching is not imported");
  if (floatAttr(node, "scale").value_or(1.0f) != 1.0f)
    return std::string("a scale other than 1 is not imported");
  auto xt = cast<RankedTensorType>(x.getType());
  auto ct = cast<RankedTensorType>(cosCache.getType());
  Type et = xt.getElementType();
  int64_t rank = xt.getRank();
  if ((rank != 3 && rank != 4) || ct != sinCache.getType() ||
      ct.getElementType() != et || ct.isDynamicDim(ct.getRank() - 1))
    return std::string("x must be [B, S, N*D] or [B, N, S, D] and the caches "
                       "of one static type");
  int64_t half = ct.getDimSize(ct.getRank() - 1);
  int64_t rd = intAttr(node, "rotary_embedding_dim", 0);
  int64_t heads = intAttr(node, "num_heads", 0);
  int64_t width = xt.getDimSize(rank - 1);
  if (ShapedType::isDynamic(width))
    return std::string("the feature dimension must be static");
  int64_t headDim = width;
  if (rank == 3) {
    if (heads <= 0 && rd == 0)
      heads = width / (2 * half);
    if (heads <= 0 || width % heads)
      return std::string("num_heads does not divide the hidden size");
    headDim = width / heads;
  }
  if (rd == 0)
    rd = headDim;
  if (rd != 2 * half || rd > headDim)
    return llvm::formatv("the caches hold {0} frequencies, rotary dim {1} of "
                         "head size {2} needs {1}/2",
                         half, rd, headDim)
        .str();
  if (pos) {
    auto pt = cast<RankedTensorType>(pos.getType());
    if (!isa<IntegerType>(pt.getElementType()) || pt.getRank() > 2 ||
        (pt.getRank() == 1 && pt.getDimSize(0) != 1))
      return std::string("position_ids must be [B, S] or a [1] offset");
    if (ct.getRank() != 2)
      return std::string("with position_ids the caches are [max_seq, rd/2]");
  } else if (ct.getRank() != 3) {
    return std::string("without position_ids the caches are [B, S, rd/2]");
  }
  values[node.output(0)] =
      applyRotary(locOf(node), x, headDim, rd, cosCache, sinCache, pos,
                  Value(), intAttr(node, "interleaved", 0) != 0);
  return std::nullopt;
}

Value Importer::applyRotary(Location loc, Value x, int64_t headDim, int64_t rd,
                            Value cosCache, Value sinCache, Value pos,
                            Value offset, bool interleaved) {
  auto xt = cast<RankedTensorType>(x.getType());
  auto ct = cast<RankedTensorType>(cosCache.getType());
  int64_t rank = xt.getRank();
  int64_t half = rd / 2;
  Value maxPos = ct.getRank() == 2
                     ? Value(tensor::DimOp::create(builder, loc, cosCache, 0))
                     : Value();
  return indexGeneric(
      loc, xt, tensor::getMixedSizes(builder, loc, x),
      [&](OpBuilder &b, Location l, ValueRange idx) -> Value {
        auto c = [&](int64_t v) -> Value {
          return arith::ConstantIndexOp::create(b, l, v);
        };
        using P = arith::CmpIPredicate;
        Value batch = idx[0], seq = rank == 3 ? idx[1] : idx[2];
        Value last = idx[rank - 1];
        Value d = rank == 3 ? Value(arith::RemUIOp::create(b, l, last,
                                                           c(headDim)))
                            : last;
        Value headBase = arith::SubIOp::create(b, l, last, d);
        Value rotated = arith::CmpIOp::create(b, l, P::ult, d, c(rd));
        // Frequency i and partner feature; the sign of the partner's term.
        Value i, partner, first;
        if (interleaved) {
          i = arith::DivUIOp::create(b, l, d, c(2));
          first = arith::CmpIOp::create(
              b, l, P::eq, arith::RemUIOp::create(b, l, d, c(2)), c(0));
          partner = arith::SelectOp::create(
              b, l, first, arith::AddIOp::create(b, l, d, c(1)),
              arith::SubIOp::create(b, l, d, c(1)));
        } else {
          first = arith::CmpIOp::create(b, l, P::ult, d, c(half));
          i = arith::SelectOp::create(b, l, first, d,
                                      arith::SubIOp::create(b, l, d, c(half)));
          partner = arith::SelectOp::create(
              b, l, first, arith::AddIOp::create(b, l, d, c(half)), i);
        }
        // Pass-through features read in bounds: frequency 0, themselves.
        i = arith::SelectOp::create(b, l, rotated, i, c(0));
        partner = arith::SelectOp::create(b, l, rotated, partner, d);
        llvm::SmallVector<Value> at(idx);
        at[rank - 1] = arith::AddIOp::create(b, l, headBase, partner);
        Value xv = tensor::ExtractOp::create(b, l, x, idx);
        Value xp = tensor::ExtractOp::create(b, l, x, at);
        llvm::SmallVector<Value> cacheAt;
        if (pos || offset) {
          auto pt = pos ? cast<RankedTensorType>(pos.getType()) : nullptr;
          Value p;
          if (!pos) {
            p = arith::AddIOp::create(b, l, offset, seq);
          } else if (pt.getRank() == 2) {
            p = tensor::ExtractOp::create(b, l, pos, ValueRange{batch, seq});
            p = arith::IndexCastOp::create(b, l, b.getIndexType(), p);
          } else {
            p = arith::IndexCastOp::create(
                b, l, b.getIndexType(),
                tensor::ExtractOp::create(b, l, pos, ValueRange{c(0)}));
            p = arith::AddIOp::create(b, l, p, seq);
          }
          // Clamped into the cache.
          p = arith::MaxSIOp::create(
              b, l, c(0),
              arith::MinSIOp::create(b, l, p,
                                     arith::SubIOp::create(b, l, maxPos, c(1))));
          cacheAt = {p, i};
        } else {
          // [B, S, rd/2] caches: clamped, so a longer input never reads
          // past them.
          auto clampTo = [&](Value v, int64_t dim) -> Value {
            Value n = tensor::DimOp::create(b, l, cosCache, dim);
            return arith::MinSIOp::create(
                b, l, v, arith::SubIOp::create(b, l, n, c(1)));
          };
          cacheAt = {clampTo(batch, 0), clampTo(seq, 1), i};
        }
        Value cv = tensor::ExtractOp::create(b, l, cosCache, cacheAt);
        Value sv = tensor::ExtractOp::create(b, l, sinCache, cacheAt);
        Value term = arith::MulFOp::create(b, l, xp, sv);
        term = arith::SelectOp::create(b, l, first,
                                       arith::NegFOp::create(b, l, term), term);
        Value out = arith::AddFOp::create(
            b, l, arith::MulFOp::create(b, l, xv, cv), term);
        return arith::SelectOp::create(b, l, rotated, out, xv);
      });
}

/// Attention (opset 23): softmax(scale * Q K^T [softcap]
/// + mask) V over [B, heads, S, D] tensors (or their [B, S, heads*D] forms
/// with q_num_heads/kv_num_heads), query head h reading key/value head
/// h / (q_heads / kv_heads); attn_mask bool (keep) or float (added),
/// broadcast to [B, heads, Sq, Skv]; is_causal masks key j > query i + P.
/// With past_key/past_value (P cached positions) the keys and values are
/// the cache then the new ones; that is also present_key/present_value.
ImportResult Importer::importAttention(const onnx::NodeProto &node) {
  Value q = input(node, 0), k = input(node, 1), v = input(node, 2);
  Value mask = input(node, 3);
  if (!q || !k || !v || node.output_size() < 1)
    return std::string("needs Q, K and V of supported types");
  Value pastKey = input(node, 4), pastValue = input(node, 5);
  if (bool(pastKey) != bool(pastValue))
    return std::string("past_key and past_value come together");
  if (node.input_size() > 6 && !node.input(6).empty())
    return std::string("nonpad_kv_seqlen is not imported yet");
  if (node.output_size() > 3 && !node.output(3).empty())
    return std::string("the qk_matmul_output output is not supported");
  auto qt = cast<RankedTensorType>(q.getType());
  auto kt = cast<RankedTensorType>(k.getType());
  auto vt = cast<RankedTensorType>(v.getType());
  Type et = qt.getElementType();
  int64_t rank = qt.getRank();
  if (!et.isF32() || kt.getElementType() != et || vt.getElementType() != et ||
      (rank != 3 && rank != 4) || kt.getRank() != rank || vt.getRank() != rank)
    return std::string("Q, K and V must be f32 tensors of rank 3 or 4");
  Location loc = locOf(node);
  int64_t qHeads = intAttr(node, "q_num_heads", 0),
          kvHeads = intAttr(node, "kv_num_heads", 0);
  if (rank == 3 && (qHeads <= 0 || kvHeads <= 0 ||
                    qt.isDynamicDim(2) || qt.getDimSize(2) % qHeads ||
                    kt.isDynamicDim(2) || kt.getDimSize(2) % kvHeads ||
                    vt.isDynamicDim(2) || vt.getDimSize(2) % kvHeads))
    return std::string("3-D inputs need q_num_heads and kv_num_heads that "
                       "divide their widths");
  Value q4 = rank == 4 ? q : splitHeads(loc, q, qHeads);
  Value k4 = rank == 4 ? k : splitHeads(loc, k, kvHeads);
  Value v4 = rank == 4 ? v : splitHeads(loc, v, kvHeads);
  if (mask) {
    auto mt = cast<RankedTensorType>(mask.getType());
    if (mt.getRank() > 4 || (!mt.getElementType().isInteger(1) &&
                             mt.getElementType() != et))
      return std::string("attn_mask must be bool or the inputs' float type, "
                         "of rank <= 4");
  }
  int64_t headDim = cast<RankedTensorType>(q4.getType()).getDimSize(3);
  Value causalOffset;
  if (pastKey) {
    // [B, Hkv, P, D] caches: keys are the cache then the new ones (also the
    // present outputs); new query i sits at P + i (bottom-right causal
    // alignment, as onnxruntime 1.32 computes it).
    auto pk = cast<RankedTensorType>(pastKey.getType());
    auto pv = cast<RankedTensorType>(pastValue.getType());
    auto k4t = cast<RankedTensorType>(k4.getType());
    auto v4t = cast<RankedTensorType>(v4.getType());
    if (pk.getRank() != 4 || pv.getRank() != 4 || pk.getElementType() != et ||
        pv.getElementType() != et || pk.getDimSize(1) != k4t.getDimSize(1) ||
        pk.getDimSize(3) != k4t.getDimSize(3) ||
        pv.getDimSize(1) != v4t.getDimSize(1) ||
        pv.getDimSize(3) != v4t.getDimSize(3))
      return std::string("past_key/past_value must be [B, kv heads, P, head "
                         "size] like the new keys and values");
    causalOffset = tensor::DimOp::create(builder, loc, pastKey, 2);
    k4 = appendToCache(loc, pastKey, k4);
    v4 = appendToCache(loc, pastValue, v4);
  }
  float scale = floatAttr(node, "scale").value_or(
      1.0f / std::sqrt(float(headDim)));
  std::optional<Value> out =
      attentionCore(loc, q4, k4, v4, scale,
                    floatAttr(node, "softcap").value_or(0.0f),
                    intAttr(node, "is_causal", 0) != 0, mask, Value(),
                    causalOffset);
  if (!out)
    return std::string("head counts must be static, the query heads a "
                       "multiple of the key/value heads, and Q and K of one "
                       "head size");
  values[node.output(0)] = rank == 3 ? mergeHeads(loc, *out) : *out;
  if (node.output_size() > 1 && !node.output(1).empty())
    values[node.output(1)] = k4;
  if (node.output_size() > 2 && !node.output(2).empty())
    values[node.output(2)] = v4;
  return std::nullopt;
}

Value Importer::appendToCache(Location loc, Value past, Value now) {
  llvm::SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(builder, loc, now);
  OpFoldResult cached = tensor::getMixedSize(builder, loc, past, 2);
  sizes[2] = foldIndex(loc, '+', cached, sizes[2]);
  Value out = tensor::EmptyOp::create(
      builder, loc, sizes, cast<RankedTensorType>(now.getType()).getElementType());
  llvm::SmallVector<OpFoldResult> ones(4, builder.getIndexAttr(1));
  llvm::SmallVector<OpFoldResult> at(4, builder.getIndexAttr(0));
  out = tensor::InsertSliceOp::create(builder, loc, past, out, at,
                                      tensor::getMixedSizes(builder, loc, past),
                                      ones);
  at[2] = cached;
  return tensor::InsertSliceOp::create(builder, loc, now, out, at,
                                       tensor::getMixedSizes(builder, loc, now),
                                       ones);
}

Value Importer::splitHeads(Location loc, Value t, int64_t heads) {
  auto tt = cast<RankedTensorType>(t.getType());
  int64_t width = tt.getDimSize(2);
  llvm::SmallVector<OpFoldResult> dims = {
      tensor::getMixedSize(builder, loc, t, 0),
      tensor::getMixedSize(builder, loc, t, 1), builder.getIndexAttr(heads),
      builder.getIndexAttr(width / heads)};
  Value split = reshapeTo(
      loc, t, {tt.getDimSize(0), tt.getDimSize(1), heads, width / heads}, dims);
  Value init = tensor::EmptyOp::create(
      builder, loc,
      llvm::SmallVector<OpFoldResult>{dims[0], dims[2], dims[1], dims[3]},
      tt.getElementType());
  return linalg::TransposeOp::create(builder, loc, split, init,
                                     llvm::ArrayRef<int64_t>{0, 2, 1, 3})
      .getResult()[0];
}

Value Importer::mergeHeads(Location loc, Value t) {
  auto tt = cast<RankedTensorType>(t.getType());
  llvm::SmallVector<OpFoldResult> dims = tensor::getMixedSizes(builder, loc, t);
  Value init = tensor::EmptyOp::create(
      builder, loc,
      llvm::SmallVector<OpFoldResult>{dims[0], dims[2], dims[1], dims[3]},
      tt.getElementType());
  Value moved = linalg::TransposeOp::create(builder, loc, t, init,
                                            llvm::ArrayRef<int64_t>{0, 2, 1, 3})
                    .getResult()[0];
  int64_t heads = tt.getDimSize(1), dv = tt.getDimSize(3);
  return reshapeTo(loc, moved,
                   {tt.getDimSize(0), tt.getDimSize(2),
                    ShapedType::isDynamic(dv) || ShapedType::isDynamic(heads)
                        ? ShapedType::kDynamic
                        : heads * dv},
                   {dims[0], dims[2], foldIndex(loc, '*', dims[1], dims[3])});
}

std::optional<Value> Importer::attentionCore(Location loc, Value q4, Value k4,
                                             Value v4, float scale,
                                             float softcap, bool causal,
                                             Value mask, Value keyLimit,
                                             Value causalOffset,
                                             int64_t window, Value sinks,
                                             bool smooth) {
  auto q4t = cast<RankedTensorType>(q4.getType());
  auto k4t = cast<RankedTensorType>(k4.getType());
  auto v4t = cast<RankedTensorType>(v4.getType());
  Type et = q4t.getElementType();
  int64_t qHeads = q4t.getDimSize(1), kvHeads = k4t.getDimSize(1);
  int64_t headDim = q4t.getDimSize(3);
  if (ShapedType::isDynamic(qHeads) || ShapedType::isDynamic(kvHeads) ||
      kvHeads <= 0 || qHeads % kvHeads || v4t.getDimSize(1) != kvHeads ||
      ShapedType::isDynamic(headDim) || k4t.getDimSize(3) != headDim)
    return std::nullopt;
  int64_t group = qHeads / kvHeads;
  auto d = [&](unsigned i) { return builder.getAffineDimExpr(i); };
  auto map = [&](unsigned n, llvm::ArrayRef<AffineExpr> e) {
    return AffineMap::get(n, 0, e, ctx);
  };
  auto par = utils::IteratorType::parallel, red = utils::IteratorType::reduction;
  OpFoldResult batch = tensor::getMixedSize(builder, loc, q4, 0);
  OpFoldResult sq = tensor::getMixedSize(builder, loc, q4, 2);
  OpFoldResult skv = tensor::getMixedSize(builder, loc, k4, 2);
  OpFoldResult dv = tensor::getMixedSize(builder, loc, v4, 3);
  AffineExpr kvHead = d(1).floorDiv(group);
  // out[b, h, i, j] = sum_r lhs[b, h, i, r] rhs[b, h / group, <rhsMap>], the
  // iteration space (b, h, i, j, r).
  auto contract = [&](Value lhs, Value rhs, AffineMap rhsMap,
                      OpFoldResult cols) -> Value {
    Value acc = zeros(loc, {batch, builder.getIndexAttr(qHeads), sq, cols}, et);
    return linalg::GenericOp::create(
               builder, loc, TypeRange{acc.getType()}, ValueRange{lhs, rhs},
               ValueRange{acc},
               llvm::ArrayRef<AffineMap>{map(5, {d(0), d(1), d(2), d(4)}),
                                         rhsMap,
                                         map(5, {d(0), d(1), d(2), d(3)})},
               llvm::ArrayRef<utils::IteratorType>{par, par, par, par, red},
               [&](OpBuilder &b, Location l, ValueRange args) {
                 linalg::YieldOp::create(
                     b, l,
                     Value(arith::AddFOp::create(
                         b, l, args[2],
                         arith::MulFOp::create(b, l, args[0], args[1]))));
               })
        .getResult(0);
  };
  // scores[b, h, i, j] = sum_e Q[b, h, i, e] K[b, h / group, j, e]
  Value scores =
      contract(q4, k4, map(5, {d(0), kvHead, d(3), d(4)}), skv);
  // Scale, softcap, mask, causality.
  llvm::SmallVector<Value> ins = {scores};
  llvm::SmallVector<AffineMap> maps = {map(4, {d(0), d(1), d(2), d(3)})};
  if (mask) {
    auto mt = cast<RankedTensorType>(mask.getType());
    llvm::SmallVector<AffineExpr> exprs;
    for (int64_t i = 0; i < mt.getRank(); ++i) {
      int64_t dim = i + 4 - mt.getRank();
      exprs.push_back(mt.getDimSize(i) == 1 ? builder.getAffineConstantExpr(0)
                                            : d(dim));
    }
    ins.push_back(mask);
    maps.push_back(map(4, exprs));
  }
  if (keyLimit) {
    ins.push_back(keyLimit);
    maps.push_back(map(4, {d(0)}));
  }
  maps.push_back(map(4, {d(0), d(1), d(2), d(3)}));
  Value maskedInit = tensor::EmptyOp::create(
      builder, loc,
      llvm::ArrayRef<OpFoldResult>{batch, builder.getIndexAttr(qHeads), sq, skv},
      et);
  Value masked =
      linalg::GenericOp::create(
          builder, loc, TypeRange{maskedInit.getType()}, ins,
          ValueRange{maskedInit}, maps,
          llvm::ArrayRef<utils::IteratorType>{par, par, par, par},
          [&](OpBuilder &b, Location l, ValueRange args) {
            auto c = [&](double x) -> Value {
              return arith::ConstantOp::create(b, l, b.getFloatAttr(et, x));
            };
            Value s = arith::MulFOp::create(b, l, args[0], c(scale));
            if (softcap > 0)
              s = arith::MulFOp::create(
                  b, l, c(softcap),
                  math::TanhOp::create(
                      b, l, arith::DivFOp::create(b, l, s, c(softcap))));
            if (mask) {
              Value m = args[1];
              s = m.getType().isInteger(1)
                      ? Value(arith::SelectOp::create(b, l, m, s, c(-INFINITY)))
                      : Value(arith::AddFOp::create(b, l, s, m));
            }
            Value j = linalg::IndexOp::create(b, l, 3);
            if (keyLimit) {
              // Keys past the sequence's last valid position are masked.
              Value limit = arith::IndexCastOp::create(
                  b, l, b.getIndexType(), args[mask ? 2 : 1]);
              Value beyond = arith::CmpIOp::create(
                  b, l, arith::CmpIPredicate::sgt, j, limit);
              s = arith::SelectOp::create(b, l, beyond, c(-INFINITY), s);
            }
            if (causal || window > 0) {
              Value i = linalg::IndexOp::create(b, l, 2);
              if (causalOffset)
                i = arith::AddIOp::create(b, l, i, causalOffset);
              if (causal) {
                Value future = arith::CmpIOp::create(
                    b, l, arith::CmpIPredicate::ugt, j, i);
                s = arith::SelectOp::create(b, l, future, c(-INFINITY), s);
              }
              if (window > 0) {
                // j + window <= i: left of the window.
                Value shifted = arith::AddIOp::create(
                    b, l, j, arith::ConstantIndexOp::create(b, l, window));
                Value old = arith::CmpIOp::create(
                    b, l, arith::CmpIPredicate::ule, shifted, i);
                s = arith::SelectOp::create(b, l, old, c(-INFINITY), s);
              }
            }
            linalg::YieldOp::create(b, l, s);
          })
          .getResult(0);
  // Sinks: one more logit per (b, h, i) row, sinks[h] (or 0 for smooth).
  Value extra;
  if (sinks || smooth) {
    auto rowType = RankedTensorType::get(
        {q4t.getDimSize(0), qHeads, q4t.getDimSize(2)}, et);
    extra = indexGeneric(
        loc, rowType, {batch, builder.getIndexAttr(qHeads), sq},
        [&](OpBuilder &b, Location l, ValueRange idx) -> Value {
          if (!sinks)
            return arith::ConstantOp::create(b, l, b.getFloatAttr(et, 0.0));
          return tensor::ExtractOp::create(b, l, sinks, ValueRange{idx[1]});
        });
  }
  Value probs = softmaxLastAxis(loc, masked, extra);
  // out[b, h, i, e] = sum_j P[b, h, i, j] V[b, h / group, j, e]
  return contract(probs, v4, map(5, {d(0), kvHead, d(4), d(3)}), dv);
}

/// Einsum with an explicit output ("bij,bjk->bik"; letters only, no
/// ellipsis, no repeated letter within one operand): one linalg.generic
/// whose iteration space is the equation's letters, summing the letters
/// missing from the output. Sizes of one letter must agree.
ImportResult Importer::importEinsum(const onnx::NodeProto &node) {
  std::string eq = stringAttr(node, "equation", "");
  eq.erase(llvm::remove_if(eq, [](char c) { return c == ' '; }), eq.end());
  size_t arrow = eq.find("->");
  if (arrow == std::string::npos || eq.find("...") != std::string::npos)
    return std::string("only equations with an explicit output and no "
                       "ellipsis are imported yet");
  llvm::SmallVector<llvm::StringRef> terms;
  llvm::StringRef(eq).substr(0, arrow).split(terms, ',');
  llvm::StringRef outTerm = llvm::StringRef(eq).substr(arrow + 2);
  if (int64_t(terms.size()) != node.input_size() || node.output_size() != 1)
    return std::string("the equation's operands do not match the inputs");
  // Letters in order of first appearance: outputs first (parallel), then
  // the summed ones.
  std::string letters(outTerm);
  for (llvm::StringRef t : terms)
    for (char c : t)
      if (letters.find(c) == std::string::npos)
        letters += c;
  for (char c : letters)
    if (!llvm::isAlpha(c))
      return std::string("the equation has a character that is not a letter");
  auto unique = [](llvm::StringRef t) {
    return llvm::SmallSet<char, 8>(t.begin(), t.end()).size() == t.size();
  };
  if (!unique(outTerm))
    return std::string("the output repeats a letter");
  Location loc = locOf(node);
  llvm::SmallVector<Value> operands;
  llvm::SmallVector<AffineMap> maps;
  llvm::DenseMap<char, OpFoldResult> sizes;
  Type et;
  for (auto [i, t] : llvm::enumerate(terms)) {
    Value v = input(node, i);
    if (!v)
      return std::string("an input has an unsupported type");
    auto vt = cast<RankedTensorType>(v.getType());
    if (!unique(t) || vt.getRank() != int64_t(t.size()))
      return llvm::formatv("operand {0} ('{1}') does not match its rank {2} "
                           "or repeats a letter (diagonals are not imported)",
                           i, t, vt.getRank())
          .str();
    if (!et)
      et = vt.getElementType();
    if (vt.getElementType() != et || !isa<FloatType>(et))
      return std::string("operands must be floats of one type");
    llvm::SmallVector<AffineExpr> exprs;
    for (auto [j, c] : llvm::enumerate(t)) {
      exprs.push_back(builder.getAffineDimExpr(letters.find(c)));
      int64_t have = vt.getDimSize(j);
      auto [it, inserted] =
          sizes.insert({c, tensor::getMixedSize(builder, loc, v, j)});
      std::optional<int64_t> known = getConstantIntValue(it->second);
      if (!inserted && !ShapedType::isDynamic(have) && known && *known != have)
        return llvm::formatv("letter '{0}' has sizes {1} and {2}", c, *known,
                             have)
            .str();
      if (!inserted && !known && !ShapedType::isDynamic(have))
        it->second = builder.getIndexAttr(have);
    }
    operands.push_back(v);
    maps.push_back(AffineMap::get(letters.size(), 0, exprs, ctx));
  }
  llvm::SmallVector<OpFoldResult> outSizes;
  llvm::SmallVector<AffineExpr> outExprs;
  for (char c : outTerm) {
    if (!sizes.count(c))
      return llvm::formatv("output letter '{0}' is in no operand", c).str();
    outSizes.push_back(sizes[c]);
    outExprs.push_back(builder.getAffineDimExpr(letters.find(c)));
  }
  maps.push_back(AffineMap::get(letters.size(), 0, outExprs, ctx));
  llvm::SmallVector<utils::IteratorType> iters(letters.size(),
                                               utils::IteratorType::parallel);
  for (size_t i = outTerm.size(); i < letters.size(); ++i)
    iters[i] = utils::IteratorType::reduction;
  Value init = zeros(loc, outSizes, et);
  values[node.output(0)] =
      linalg::GenericOp::create(
          builder, loc, TypeRange{init.getType()}, operands, ValueRange{init},
          maps, iters,
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value p = args[0];
            for (Value a : args.drop_front().drop_back())
              p = arith::MulFOp::create(b, l, p, a);
            linalg::YieldOp::create(
                b, l, Value(arith::AddFOp::create(b, l, args.back(), p)));
          })
          .getResult(0);
  return std::nullopt;
}

/// com.microsoft GroupQueryAttention and MultiHeadAttention on [B, S,
/// heads*D] query/key/value: GroupQueryAttention is causal and masks keys
/// past seqlens_k[b] (the last valid position, so right padding is
/// honoured); with past_key/past_value [B, Hkv, P, D] the keys are the
/// cache then the new ones (that is also present_key/value) and query i
/// sits at position P + i (for both ops). MultiHeadAttention takes an
/// additive attention_bias and `unidirectional`. Packed QKV, rotary inside
/// MultiHeadAttention, sliding windows and the other optional inputs are
/// refused with a reason.
ImportResult Importer::importContribAttention(const onnx::NodeProto &node) {
  bool gqa = node.op_type() == "GroupQueryAttention";
  Value q = input(node, 0), k = input(node, 1), v = input(node, 2);
  int64_t heads = intAttr(node, "num_heads", 0);
  int64_t kvHeads = gqa ? intAttr(node, "kv_num_heads", 0) : heads;
  if (gqa && q && !k && !v) {
    // Packed QKV: [B, S, (heads + 2 kv_heads) * D], query first.
    auto pt = cast<RankedTensorType>(q.getType());
    int64_t width = pt.getRank() == 3 ? pt.getDimSize(2) : ShapedType::kDynamic;
    if (heads <= 0 || kvHeads <= 0 || ShapedType::isDynamic(width) ||
        width % (heads + 2 * kvHeads))
      return std::string("packed QKV must be [B, S, (num_heads + 2 * "
                         "kv_num_heads) * head size]");
    int64_t headDim = width / (heads + 2 * kvHeads);
    Location loc = locOf(node);
    Value packed = q;
    auto part = [&](int64_t first, int64_t size) -> Value {
      llvm::SmallVector<OpFoldResult> offsets = {
          builder.getIndexAttr(0), builder.getIndexAttr(0),
          builder.getIndexAttr(first * headDim)};
      llvm::SmallVector<OpFoldResult> sizes =
          tensor::getMixedSizes(builder, loc, packed);
      sizes[2] = builder.getIndexAttr(size * headDim);
      return tensor::ExtractSliceOp::create(
          builder, loc, packed, offsets, sizes,
          llvm::SmallVector<OpFoldResult>(3, builder.getIndexAttr(1)));
    };
    q = part(0, heads);
    k = part(heads, kvHeads);
    v = part(heads + kvHeads, kvHeads);
  }
  if (!q || !k || !v)
    return std::string("needs query, key and value, or packed QKV");
  int pastAt = gqa ? 3 : 6;
  Value pastKey = input(node, pastAt), pastValue = input(node, pastAt + 1);
  if (bool(pastKey) != bool(pastValue))
    return std::string("past_key and past_value come together");
  // onnxruntime reads the cache differently when the present outputs are
  // omitted; only the form with both is imported.
  if (pastKey && (node.output_size() < 3 || node.output(1).empty() ||
                  node.output(2).empty()))
    return std::string("a KV cache without the present_key/present_value "
                       "outputs is not imported");
  Value keyLimit, bias, sinks;
  int64_t window = 0;
  if (gqa) {
    keyLimit = input(node, 5);
    if (!keyLimit)
      return std::string("seqlens_k is required");
    bool rotary = intAttr(node, "do_rotary", 0) != 0;
    if (!rotary && (input(node, 7) || input(node, 8)))
      return std::string("cos/sin caches without do_rotary are not "
                         "imported");
    if (input(node, 9) && !rotary)
      return std::string("position_ids without do_rotary is not imported");
    for (int i = 12; i < node.input_size(); ++i)
      if (!node.input(i).empty())
        return llvm::formatv("optional input {0} (quantised-cache scales or "
                             "q/k norms) is not imported yet",
                             i)
            .str();
    bias = input(node, 10);
    sinks = input(node, 11);
    if (sinks) {
      auto st = cast<RankedTensorType>(sinks.getType());
      if (st.getRank() != 1 || st.getDimSize(0) != heads ||
          st.getElementType() != cast<RankedTensorType>(q.getType())
                                     .getElementType())
        return std::string("head_sink must be [num_heads] of the query's "
                           "type");
    }
    window = intAttr(node, "local_window_size", -1);
    if (window == 0 || window < -1)
      return llvm::formatv("local_window_size = {0} (-1 or a positive "
                           "number of keys)",
                           window)
          .str();
    if (window < 0)
      window = 0;
    if (intAttr(node, "qk_output", 0))
      return std::string("qk_output is not imported yet");
  } else {
    if ((node.input_size() > 8 && !node.input(8).empty()) ||
        (node.input_size() > 9 && !node.input(9).empty()))
      return std::string("past_sequence_length and cache_indirection (beam "
                         "search) are not imported yet");
    bias = input(node, 5);
  }
  for (int i = 3; i < node.output_size(); ++i)
    if (!node.output(i).empty())
      return std::string("the qk output is not supported");
  auto qt = cast<RankedTensorType>(q.getType());
  auto kt = cast<RankedTensorType>(k.getType());
  auto vt = cast<RankedTensorType>(v.getType());
  if (!qt.getElementType().isF32() || qt.getRank() != 3 || kt.getRank() != 3 ||
      vt.getRank() != 3 || kt.getElementType() != qt.getElementType() ||
      vt.getElementType() != qt.getElementType())
    return std::string("query, key and value must be f32 [B, S, heads*D]");
  if (heads <= 0 || kvHeads <= 0 || qt.isDynamicDim(2) ||
      qt.getDimSize(2) % heads || kt.isDynamicDim(2) ||
      kt.getDimSize(2) % kvHeads || vt.isDynamicDim(2) ||
      vt.getDimSize(2) % kvHeads)
    return std::string("num_heads/kv_num_heads must divide the widths");
  if (bias) {
    auto bt = cast<RankedTensorType>(bias.getType());
    if (bt.getElementType() != qt.getElementType() || bt.getRank() > 4)
      return std::string("attention_bias must be f32 of rank <= 4");
  }
  Location loc = locOf(node);
  int64_t headDim = qt.getDimSize(2) / heads;
  if (!gqa) {
    // MultiHeadAttention's projection bias [Dq + Dk + Dv], added to q, k, v.
    if (Value projBias = input(node, 3)) {
      auto bt = cast<RankedTensorType>(projBias.getType());
      int64_t dq = qt.getDimSize(2), dk = kt.getDimSize(2),
              dv = vt.getDimSize(2);
      if (bt.getRank() != 1 || bt.getElementType() != qt.getElementType() ||
          bt.getDimSize(0) != dq + dk + dv)
        return llvm::formatv("bias must be [{0}] (query, key and value "
                             "widths) of the inputs' type",
                             dq + dk + dv)
            .str();
      auto add = [&](Value t, int64_t first, int64_t width) -> Value {
        Value part = tensor::ExtractSliceOp::create(
            builder, loc, RankedTensorType::get({width}, bt.getElementType()),
            projBias, ValueRange{}, ValueRange{}, ValueRange{},
            builder.getDenseI64ArrayAttr({first}),
            builder.getDenseI64ArrayAttr({width}),
            builder.getDenseI64ArrayAttr({1}));
        llvm::Expected<Value> sum = broadcastGeneric(
            loc, {t, part}, qt.getElementType(),
            [](OpBuilder &b, Location l, ValueRange args) -> Value {
              return arith::AddFOp::create(b, l, args[0], args[1]);
            });
        if (!sum) {
          llvm::consumeError(sum.takeError());
          return nullptr;
        }
        return *sum;
      };
      q = add(q, 0, dq);
      k = add(k, dq, dk);
      v = add(v, dq + dk, dv);
      if (!q || !k || !v)
        return std::string("bias does not broadcast over the inputs");
    }
    // key_padding_mask: [B] key lengths (keys j >= len[b] masked), or
    // [B, T] flags (0 masked), added as mask_filter_value.
    if (Value padding = input(node, 4)) {
      auto pt = cast<RankedTensorType>(padding.getType());
      if (!pt.getElementType().isInteger(32) || pt.getRank() < 1 ||
          pt.getRank() > 2)
        return std::string("key_padding_mask must be int32 [B] or [B, T] "
                           "(other forms are not imported)");
      if (pt.getRank() == 1) {
        llvm::Expected<Value> last = broadcastGeneric(
            loc, {padding}, pt.getElementType(),
            [](OpBuilder &b, Location l, ValueRange args) -> Value {
              return arith::SubIOp::create(
                  b, l, args[0],
                  arith::ConstantOp::create(b, l, b.getI32IntegerAttr(1)));
            });
        if (!last)
          return llvm::toString(last.takeError());
        keyLimit = *last;
      } else {
        float filter = floatAttr(node, "mask_filter_value").value_or(-10000.0f);
        // [B, T] -> [B, 1, 1, T], additive.
        Value flags = tensor::ExpandShapeOp::create(
            builder, loc,
            RankedTensorType::get({pt.getDimSize(0), 1, 1, pt.getDimSize(1)},
                                  pt.getElementType()),
            padding, llvm::ArrayRef<ReassociationIndices>{{0, 1, 2}, {3}});
        llvm::SmallVector<Value> operands = {flags};
        if (bias)
          operands.push_back(bias);
        llvm::Expected<Value> mask = broadcastGeneric(
            loc, operands, qt.getElementType(),
            [&](OpBuilder &b, Location l, ValueRange args) -> Value {
              Value keep = arith::CmpIOp::create(
                  b, l, arith::CmpIPredicate::ne, args[0],
                  arith::ConstantOp::create(b, l, b.getI32IntegerAttr(0)));
              Value add = arith::SelectOp::create(
                  b, l, keep,
                  arith::ConstantOp::create(
                      b, l, b.getFloatAttr(qt.getElementType(), 0.0)),
                  arith::ConstantOp::create(
                      b, l, b.getFloatAttr(qt.getElementType(), filter)));
              return args.size() > 1
                         ? Value(arith::AddFOp::create(b, l, add, args[1]))
                         : add;
            });
        if (!mask) {
          llvm::consumeError(mask.takeError());
          return std::string("key_padding_mask and attention_bias do not "
                             "broadcast together");
        }
        bias = *mask;
      }
    }
  }
  // Rotary inside GroupQueryAttention: q and k rotate at positions P + s
  // (P cached positions) by [max_seq, rd/2] caches.
  if (gqa && intAttr(node, "do_rotary", 0)) {
    Value cosCache = input(node, 7), sinCache = input(node, 8);
    auto ct = cosCache ? cast<RankedTensorType>(cosCache.getType()) : nullptr;
    if (!ct || !sinCache || sinCache.getType() != ct || ct.getRank() != 2 ||
        ct.getElementType() != qt.getElementType() || ct.isDynamicDim(1) ||
        2 * ct.getDimSize(1) > headDim ||
        kt.getDimSize(2) / kvHeads != headDim)
      return std::string("do_rotary needs [max_seq, rd/2] cos/sin caches of "
                         "the inputs' type, rd at most the head size");
    Value offset =
        pastKey ? Value(tensor::DimOp::create(builder, loc, pastKey, 2))
                : Value(arith::ConstantIndexOp::create(builder, loc, 0));
    bool interleaved = intAttr(node, "rotary_interleaved", 0) != 0;
    int64_t rd = 2 * ct.getDimSize(1);
    // position_ids [B, S], when given, are the rotary positions.
    Value pos = input(node, 9);
    if (pos) {
      auto pt = cast<RankedTensorType>(pos.getType());
      if (pt.getRank() != 2 || !isa<IntegerType>(pt.getElementType()))
        return std::string("position_ids must be integer [B, S]");
    }
    q = applyRotary(loc, q, headDim, rd, cosCache, sinCache, pos, offset,
                    interleaved);
    k = applyRotary(loc, k, headDim, rd, cosCache, sinCache, pos, offset,
                    interleaved);
  }
  Value q4 = splitHeads(loc, q, heads), k4 = splitHeads(loc, k, kvHeads),
        v4 = splitHeads(loc, v, kvHeads);
  Value causalOffset;
  if (pastKey) {
    // The cache [B, Hkv, P, D] then the new keys: present = concat, and the
    // new queries sit at positions P + i.
    auto pk = cast<RankedTensorType>(pastKey.getType());
    auto pv = cast<RankedTensorType>(pastValue.getType());
    auto v4t = cast<RankedTensorType>(v4.getType());
    auto fits = [&](RankedTensorType t, int64_t width) {
      return t.getRank() == 4 && t.getElementType() == qt.getElementType() &&
             t.getDimSize(1) == kvHeads && t.getDimSize(3) == width;
    };
    if (!fits(pk, headDim) || !fits(pv, v4t.getDimSize(3)))
      return std::string("past_key/past_value must be [B, kv_num_heads, P, "
                         "head size] of the inputs' type (the shared-buffer "
                         "form is not imported)");
    causalOffset = tensor::DimOp::create(builder, loc, pastKey, 2);
    k4 = appendToCache(loc, pastKey, k4);
    v4 = appendToCache(loc, pastValue, v4);
  }
  float scale =
      floatAttr(node, "scale").value_or(0.0f) != 0.0f
          ? *floatAttr(node, "scale")
          : 1.0f / std::sqrt(float(headDim));
  bool causal = gqa || intAttr(node, "unidirectional", 0) != 0;
  std::optional<Value> out = attentionCore(
      loc, q4, k4, v4, scale, gqa ? floatAttr(node, "softcap").value_or(0.0f) : 0.0f,
      causal, bias, keyLimit, causalOffset, window, sinks,
      gqa && intAttr(node, "smooth_softmax", 0) != 0);
  if (!out)
    return std::string("the query heads must be a multiple of the key/value "
                       "heads, with one head size");
  values[node.output(0)] = mergeHeads(loc, *out);
  if (node.output_size() > 1 && !node.output(1).empty())
    values[node.output(1)] = k4;
  if (node.output_size() > 2 && !node.output(2).empty())
    values[node.output(2)] = v4;
  return std::nullopt;
}

/// W[..., n, k] = (q[..., n, k] - zp) * scale[..., n, k / block] for the
/// `bits`-bit unsigned integers q packed 8 / bits per byte, low bits first,
/// along the last axis of `q` ([..., N, ceil(K * bits / 8)] i8; K <= what
/// the bytes hold), and `scales` [..., N, ceil(K / block)] of type `et`.
/// The zero point is 2^(bits-1) without `zp`, else per `zpLayout`.
Value Importer::dequantize(Location loc, Value q, Value scales, Value zp,
                           ZeroPoints zpLayout, int64_t bits, int64_t block,
                           int64_t kdim, Type et) {
  auto qt = cast<RankedTensorType>(q.getType());
  unsigned rank = qt.getRank();
  int64_t per = 8 / bits;
  llvm::SmallVector<AffineExpr> lead;
  for (unsigned i = 0; i + 2 < rank; ++i)
    lead.push_back(getAffineDimExpr(i, ctx));
  AffineExpr n = getAffineDimExpr(rank - 2, ctx),
             k = getAffineDimExpr(rank - 1, ctx);
  auto map = [&](llvm::ArrayRef<AffineExpr> tail) {
    llvm::SmallVector<AffineExpr> exprs(lead);
    exprs.append(tail.begin(), tail.end());
    return AffineMap::get(rank, 0, exprs, ctx);
  };
  llvm::SmallVector<AffineMap> maps = {map({n, k.floorDiv(per)}),
                                       map({n, k.floorDiv(block)})};
  llvm::SmallVector<Value> ins = {q, scales};
  if (zp) {
    maps.push_back(zpLayout == ZeroPoints::Values ? map({n, k.floorDiv(block)})
                   : zpLayout == ZeroPoints::PackedBlocks
                       ? map({n, k.floorDiv(block).floorDiv(per)})
                       : map({n.floorDiv(per)}));
    ins.push_back(zp);
  }
  maps.push_back(AffineMap::getMultiDimIdentityMap(rank, ctx));
  llvm::SmallVector<int64_t> shape(qt.getShape());
  shape.back() = kdim;
  Value init = tensor::EmptyOp::create(builder, loc, shape, et);
  return linalg::GenericOp::create(
             builder, loc, TypeRange{init.getType()}, ins, ValueRange{init},
             maps,
             llvm::SmallVector<utils::IteratorType>(
                 rank, utils::IteratorType::parallel),
             [&](OpBuilder &b, Location l, ValueRange args) {
               Type i32 = b.getI32Type();
               auto cst = [&](int64_t v) -> Value {
                 return arith::ConstantOp::create(b, l, b.getI32IntegerAttr(v));
               };
               auto index = [&](unsigned dim) -> Value {
                 return arith::IndexCastOp::create(
                     b, l, i32, linalg::IndexOp::create(b, l, dim));
               };
               // The value in slot `slot` of `byte`.
               auto field = [&](Value byte, Value slot) -> Value {
                 Value wide = arith::ExtUIOp::create(b, l, i32, byte);
                 Value shift = arith::MulIOp::create(b, l, slot, cst(bits));
                 return arith::UIToFPOp::create(
                     b, l, et,
                     arith::AndIOp::create(
                         b, l, arith::ShRUIOp::create(b, l, wide, shift),
                         cst((1 << bits) - 1)));
               };
               Value kIdx = index(rank - 1);
               Value qf = field(args[0], arith::RemUIOp::create(b, l, kIdx,
                                                                 cst(per)));
               Value zf;
               if (!zp)
                 zf = arith::ConstantOp::create(
                     b, l, b.getFloatAttr(et, double(1 << (bits - 1))));
               else if (zpLayout == ZeroPoints::Values)
                 zf = args[2];
               else if (zpLayout == ZeroPoints::PackedBlocks)
                 zf = field(args[2],
                            arith::RemUIOp::create(
                                b, l,
                                arith::DivUIOp::create(b, l, kIdx, cst(block)),
                                cst(per)));
               else
                 zf = field(args[2], arith::RemUIOp::create(
                                         b, l, index(rank - 2), cst(per)));
               linalg::YieldOp::create(
                   b, l,
                   Value(arith::MulFOp::create(
                       b, l, arith::SubFOp::create(b, l, qf, zf), args[1])));
             })
      .getResult(0);
}

Value Importer::uint8Weight(Location loc, const std::string &name,
                            llvm::ArrayRef<int64_t> shape) {
  auto init = model.initializers().find(name);
  if (init == model.initializers().end() ||
      init->second.dataType != onnx::TensorProto::UINT8)
    return nullptr;
  int64_t count = 1, want = 1;
  for (int64_t d : init->second.shape)
    count *= d;
  for (int64_t d : shape)
    want *= d;
  if (count != want)
    return nullptr;
  Value w = WeightOp::create(
      builder, loc,
      RankedTensorType::get(init->second.shape, builder.getI8Type()),
      builder.getStringAttr(name));
  if (llvm::ArrayRef(init->second.shape) == shape)
    return w;
  return reshapeTo(loc, w, shape,
                   getAsIndexOpFoldResult(ctx, llvm::to_vector(shape)));
}

/// com.microsoft.MatMulNBits (onnxruntime-genai's int4/int8 weight-only
/// projections): Y = A x W^T (+ bias), W [N, K] stored as `bits`-bit
/// unsigned integers in blocks of `block_size` along K, each block with a
/// scale and a zero point (default 2^(bits-1)):
///
///   W[n, k] = (q[n, k] - zp[n, k / bs]) * scale[n, k / bs]
///
/// B is [N, blocks, bs * bits / 8] bytes, 8 / bits values per byte from
/// the low bits up; packed zero points are [N * ceil(blocks * bits / 8)]
/// bytes, packed the same way per row, or unpacked in A's type. W is
/// dequantised by one linalg.generic and the product is moe.linear.
ImportResult Importer::importMatMulNBits(const onnx::NodeProto &node) {
  if (node.input_size() < 3 || node.output_size() != 1)
    return std::string("needs A, B and scales");
  int64_t kdim = intAttr(node, "K", -1), ndim = intAttr(node, "N", -1);
  int64_t bits = intAttr(node, "bits", 4), bs = intAttr(node, "block_size", -1);
  if (kdim < 1 || ndim < 1)
    return std::string("attributes K and N must be positive");
  if (bits != 2 && bits != 4 && bits != 8)
    return llvm::formatv("bits = {0}: only 2, 4 and 8 are imported", bits).str();
  if (bs < 16 || (bs & (bs - 1)))
    return llvm::formatv("block_size = {0} is not a power of two >= 16", bs)
        .str();
  if (node.input_size() > 4 && !node.input(4).empty())
    return std::string("g_idx (act-order) is not imported");
  Value a = lookup(node.input(0));
  auto at = a ? dyn_cast<RankedTensorType>(a.getType()) : nullptr;
  if (!at || !isa<FloatType>(at.getElementType()) || at.getRank() < 2 ||
      at.getDimSize(at.getRank() - 1) != kdim)
    return llvm::formatv("A must be a float tensor [..., K = {0}]", kdim).str();
  Type et = at.getElementType();
  int64_t blocks = (kdim + bs - 1) / bs, blob = bs * bits / 8,
          zpCols = (blocks * bits + 7) / 8;
  Location loc = locOf(node);
  // The blocks of a row are contiguous: B is [N, blocks * blob] bytes.
  Value b = uint8Weight(loc, node.input(1), {ndim, blocks * blob});
  if (!b)
    return llvm::formatv("B must be a uint8 initializer of N x blocks x "
                         "block_size * bits / 8 = {0} x {1} x {2} bytes",
                         ndim, blocks, blob)
        .str();
  // Scales (and unpacked zero points): [N * blocks] or [N, blocks] in A's
  // type.
  auto perBlock = [&](const std::string &name) -> Value {
    Value v = lookup(name);
    auto t = v ? dyn_cast<RankedTensorType>(v.getType()) : nullptr;
    if (!t || t.getElementType() != et || !t.hasStaticShape() ||
        t.getNumElements() != ndim * blocks)
      return nullptr;
    return reshapeTo(loc, v, {ndim, blocks},
                     getAsIndexOpFoldResult(ctx, {ndim, blocks}));
  };
  Value scales = perBlock(node.input(2));
  if (!scales)
    return llvm::formatv("scales must be N x blocks = {0} x {1} values of "
                         "A's type",
                         ndim, blocks)
        .str();
  Value zp;
  ZeroPoints zpLayout = ZeroPoints::Values;
  if (node.input_size() > 3 && !node.input(3).empty()) {
    auto init = model.initializers().find(node.input(3));
    bool packed = init != model.initializers().end() &&
                  init->second.dataType == onnx::TensorProto::UINT8;
    zpLayout = packed ? ZeroPoints::PackedBlocks : ZeroPoints::Values;
    zp = packed ? uint8Weight(loc, node.input(3), {ndim, zpCols})
                : perBlock(node.input(3));
    if (!zp)
      return llvm::formatv("zero_points must be N x ceil(blocks * bits / 8) "
                           "= {0} x {1} uint8 bytes, or N x blocks values of "
                           "A's type",
                           ndim, zpCols)
          .str();
  }
  Value bias;
  if (node.input_size() > 5 && !node.input(5).empty()) {
    bias = lookup(node.input(5));
    auto t = bias ? dyn_cast<RankedTensorType>(bias.getType()) : nullptr;
    if (!t || t.getElementType() != et || t.getShape() != llvm::ArrayRef(ndim))
      return llvm::formatv("bias must be [N = {0}] of A's type", ndim).str();
  }
  Value w = dequantize(loc, b, scales, zp, zpLayout, bits, bs, kdim, et);

  // Y = A W^T (+ bias), over the rows of A's leading dims.
  llvm::SmallVector<OpFoldResult> lead = tensor::getMixedSizes(builder, loc, a);
  lead.pop_back();
  Value rows = a;
  if (at.getRank() > 2) {
    ReassociationIndices leading;
    for (int64_t i = 0; i + 1 < at.getRank(); ++i)
      leading.push_back(i);
    rows = tensor::CollapseShapeOp::create(
        builder, loc, a,
        llvm::ArrayRef<ReassociationIndices>{leading, {at.getRank() - 1}});
  }
  auto rt = cast<RankedTensorType>(rows.getType());
  Value product = LinearOp::create(
      builder, loc, RankedTensorType::get({rt.getDimSize(0), ndim}, et), rows,
      w, bias, /*norm_weight=*/Value(), /*residual=*/Value(),
      /*norm_eps=*/FloatAttr(), /*norm_weight_in_f32=*/UnitAttr());
  llvm::SmallVector<int64_t> shape(at.getShape().drop_back());
  shape.push_back(ndim);
  lead.push_back(builder.getIndexAttr(ndim));
  values[node.output(0)] =
      at.getRank() > 2 ? reshapeTo(loc, product, shape, lead) : product;
  return std::nullopt;
}

/// com.microsoft.QMoE with integer weights (onnxruntime-genai's int4/int8
/// MoE): each of fc1/fc2/fc3 is [E, N, K * bits / 8] bytes, rows packed
/// like MatMulNBits', with scales [E, N] (one per output row) or
/// [E, N, K / block_size] and optional zero points packed along N
/// ([E, ceil(N * bits / 8)]) or along each row's blocks. The weights are
/// dequantised to the input's type and the block is imported as MoE,
/// routed as onnxruntime's CPU kernel does (top-k of the logits, softmax
/// over the k).
ImportResult Importer::importQMoE(const onnx::NodeProto &node) {
  auto refuse = [&](const std::string &why) -> ImportResult {
    if (blocks) {
      ONNXMoEBlock block;
      block.node = model.describe(node);
      block.form = "com.microsoft.QMoE";
      block.reason = why;
      blocks->push_back(block);
    }
    return "QMoE not imported: " + why;
  };
  std::string quant = stringAttr(node, "quant_type", "int");
  if (quant != "int")
    return refuse("quant_type '" + quant +
                  "' (only integer weights are imported)");
  if (intAttr(node, "weights_prepacked", -1) == 1)
    return refuse("weights_prepacked = 1 (provider-specific layouts are not "
                  "read; export with weights_prepacked = 0)");
  if (intAttr(node, "swiglu_limit_after_activation", 0))
    return refuse("swiglu_limit_after_activation = 1");
  for (int i = 14; i < node.input_size(); ++i)
    if (!node.input(i).empty())
      return refuse(i == 14 ? "router_weights (separate selection and "
                              "mixing scores) is not imported"
                            : "global or activation scales are not imported");
  Value x = input(node, 0);
  auto xt = x ? dyn_cast<RankedTensorType>(x.getType()) : nullptr;
  if (!xt || !isa<FloatType>(xt.getElementType()) || xt.getRank() != 2 ||
      xt.isDynamicDim(1))
    return refuse("only a float [T, H] input is imported");
  Type et = xt.getElementType();
  int64_t bits = intAttr(node, "expert_weight_bits", 4);
  int64_t block = intAttr(node, "block_size", 0);
  if (block > 0 && (block < 16 || (block & (block - 1))))
    return refuse(llvm::formatv("block_size = {0} is not a power of two >= 16",
                                block));
  Location loc = locOf(node);
  // fc`which` (1, 2, 3) from its bytes, scales and zero points; `kdim` is
  // what each row holds (H for fc1/fc3, I for fc2), from the bytes.
  std::string why;
  auto weights = [&](int which, int bytesAt, int scalesAt,
                     int zpAt) -> Value {
    if (bytesAt >= node.input_size() || node.input(bytesAt).empty())
      return nullptr;
    std::string name = "fc" + std::to_string(which);
    int64_t b = intAttr(node, name + "_expert_weight_bits", bits);
    if (b != 2 && b != 4 && b != 8) {
      why = llvm::formatv("{0}: {1}-bit weights (only 2, 4 and 8 are "
                          "imported)",
                          name, b);
      return nullptr;
    }
    auto init = model.initializers().find(node.input(bytesAt));
    if (init == model.initializers().end() ||
        init->second.dataType != onnx::TensorProto::UINT8 ||
        init->second.shape.size() != 3) {
      why = name + "_experts_weights is not a 3-D uint8 initializer";
      return nullptr;
    }
    llvm::ArrayRef<int64_t> shape = init->second.shape;
    int64_t e = shape[0], n = shape[1], kdim = shape[2] * 8 / b;
    int64_t perRow = block > 0 ? kdim / block : 1;
    if (block > 0 && kdim % block) {
      why = llvm::formatv("{0}: K = {1} is not a multiple of block_size {2}",
                          name, kdim, block);
      return nullptr;
    }
    Value q = uint8Weight(loc, node.input(bytesAt), shape);
    Value scales = input(node, scalesAt);
    auto st = scales ? dyn_cast<RankedTensorType>(scales.getType()) : nullptr;
    if (!st || st.getElementType() != et || !st.hasStaticShape() ||
        st.getNumElements() != e * n * perRow) {
      why = llvm::formatv("{0}_scales must be {1} x {2}{3} values of the "
                          "input's type",
                          name, e, n,
                          block > 0 ? " x " + std::to_string(perRow) : "");
      return nullptr;
    }
    scales = reshapeTo(loc, scales, {e, n, perRow},
                       getAsIndexOpFoldResult(ctx, {e, n, perRow}));
    Value zp;
    ZeroPoints layout =
        block > 0 ? ZeroPoints::PackedBlocks : ZeroPoints::PackedRows;
    if (zpAt < node.input_size() && !node.input(zpAt).empty()) {
      llvm::SmallVector<int64_t> zpShape =
          block > 0 ? llvm::SmallVector<int64_t>{e, n, (perRow * b + 7) / 8}
                    : llvm::SmallVector<int64_t>{e, (n * b + 7) / 8};
      zp = uint8Weight(loc, node.input(zpAt), zpShape);
      if (!zp) {
        why = name + "_zero_points is not a uint8 initializer of " +
              llvm::join(llvm::map_range(zpShape,
                                         [](int64_t d) {
                                           return std::to_string(d);
                                         }),
                         " x ") +
              " bytes";
        return nullptr;
      }
    }
    return dequantize(loc, q, scales, zp, layout, b,
                      block > 0 ? block : kdim, kdim, et);
  };
  Value fc1 = weights(1, 2, 3, 11);
  if (!fc1 && why.empty())
    why = "fc1_experts_weights is required";
  Value fc2 = why.empty() ? weights(2, 5, 6, 12) : Value();
  if (!fc2 && why.empty())
    why = "fc2_experts_weights is required";
  Value fc3 = why.empty() ? weights(3, 8, 9, 13) : Value();
  if (!why.empty())
    return refuse(why);
  return importMoEWith(node, "com.microsoft.QMoE", fc1, input(node, 4), fc2,
                       input(node, 7), fc3, input(node, 10),
                       /*quantized=*/true);
}
