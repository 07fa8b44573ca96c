//===- MoEOps.cpp - moe dialect operations --------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Support/RoPE.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/CheckedArithmetic.h"

#include <cmath>
#include <optional>

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Shape checking shared by the verifiers
//===----------------------------------------------------------------------===//

namespace {
/// Checks operand and result shapes against symbolic layouts such as
/// `[B, S, Hq, D]`. The first static size seen for a symbol binds it; a later
/// static size that differs is reported naming both places. Integer literals
/// in a layout require that exact size. Dynamic sizes match anything.
class ShapeChecker {
public:
  explicit ShapeChecker(Operation *op) : op(op) {}

  /// Binds `sym` to a size known from an attribute, described by `origin`.
  void bind(StringRef sym, int64_t size, StringRef origin) {
    assert(!bound.count(sym) && "symbol bound twice");
    bound[sym] = {size, origin.str()};
  }

  /// The static size bound to `sym`, if any.
  std::optional<int64_t> get(StringRef sym) const {
    auto it = bound.find(sym);
    if (it == bound.end())
      return std::nullopt;
    return it->second.first;
  }

  LogicalResult check(StringRef name, Type type,
                      ArrayRef<StringRef> layout) {
    auto shaped = cast<RankedTensorType>(type);
    if (shaped.getRank() != static_cast<int64_t>(layout.size()))
      return op->emitOpError()
             << "'" << name << "' must have rank " << layout.size() << " ["
             << llvm::join(layout, ", ") << "], got " << type;
    for (auto [i, sym] : llvm::enumerate(layout)) {
      int64_t size = shaped.getDimSize(i);
      if (ShapedType::isDynamic(size))
        continue;
      int64_t literal;
      if (!sym.getAsInteger(10, literal)) {
        if (size != literal)
          return op->emitOpError() << "'" << name << "' dim " << i
                                   << " must be " << literal << ", got "
                                   << size;
        continue;
      }
      auto it = bound.find(sym);
      if (it == bound.end()) {
        bound[sym] = {size, llvm::formatv("'{0}' dim {1}", name, i).str()};
        continue;
      }
      if (it->second.first != size)
        return op->emitOpError()
               << "'" << name << "' dim " << i << " (" << sym << ") is "
               << size << ", but " << it->second.second << " gives " << sym
               << " = " << it->second.first;
    }
    return success();
  }

private:
  Operation *op;
  llvm::StringMap<std::pair<int64_t, std::string>> bound;
};
} // namespace

static bool isPositiveFinite(double value) {
  return value > 0.0 && std::isfinite(value);
}

static bool isNonNegativeFinite(double value) {
  return value >= 0.0 && std::isfinite(value);
}

static LogicalResult checkSameElementType(Operation *op, StringRef name,
                                          Type type, StringRef refName,
                                          Type refType) {
  Type elem = getElementTypeOrSelf(type);
  Type refElem = getElementTypeOrSelf(refType);
  if (elem != refElem)
    return op->emitOpError() << "'" << name << "' element type " << elem
                             << " must equal the element type of '" << refName
                             << "' (" << refElem << ")";
  return success();
}

static LogicalResult checkScale(Operation *op, APFloat scale) {
  if (!isPositiveFinite(scale.convertToDouble()))
    return op->emitOpError()
           << "'scale' must be a positive finite number, got "
           << scale.convertToDouble();
  return success();
}

// New tokens must fit the cache: S <= L when both are static.
static LogicalResult checkCacheCapacity(Operation *op,
                                        const ShapeChecker &shapes) {
  std::optional<int64_t> s = shapes.get("S"), l = shapes.get("L");
  if (s && l && *l < *s)
    return op->emitOpError() << "cache capacity L = " << *l
                             << " is smaller than the S = " << *s
                             << " new tokens";
  return success();
}

//===----------------------------------------------------------------------===//
// WeightOp
//===----------------------------------------------------------------------===//

LogicalResult WeightOp::verify() {
  if (getName().empty())
    return emitOpError("'name' must not be empty");
  return success();
}

void WeightOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), "w");
}

//===----------------------------------------------------------------------===//
// StackedWeightOp
//===----------------------------------------------------------------------===//

RankedTensorType StackedWeightOp::getElementTensorType() {
  auto type = cast<RankedTensorType>(getType());
  return RankedTensorType::get(type.getShape().drop_front(),
                               type.getElementType());
}

LogicalResult StackedWeightOp::verify() {
  auto type = cast<RankedTensorType>(getType());
  if (type.getRank() < 1)
    return emitOpError("result must have a leading dimension that indexes "
                       "'names'");
  if (type.getDimSize(0) != static_cast<int64_t>(getNames().size()))
    return emitOpError() << "result dim 0 (" << type.getDimSize(0)
                         << ") must equal the number of names ("
                         << getNames().size() << ")";
  for (auto [i, name] : llvm::enumerate(getNames()))
    if (cast<StringAttr>(name).getValue().empty())
      return emitOpError() << "'names' entry " << i << " is empty";
  return success();
}

void StackedWeightOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), "w");
}

//===----------------------------------------------------------------------===//
// EmbeddingOp
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  ShapeChecker shapes(*this);
  if (failed(shapes.check("table", getTable().getType(), {"V", "H"})))
    return failure();
  auto idsType = getIds().getType();
  auto resultType = getResult().getType();
  if (resultType.getRank() != idsType.getRank() + 1)
    return emitOpError() << "'result' must have the rank of 'ids' plus one ("
                         << idsType.getRank() + 1 << "), got "
                         << resultType.getRank();
  SmallVector<std::string> names;
  for (int64_t i = 0; i < idsType.getRank(); ++i)
    names.push_back("d" + std::to_string(i));
  names.push_back("H");
  SmallVector<StringRef> layout(names.begin(), names.end());
  if (failed(shapes.check("ids", idsType,
                          ArrayRef<StringRef>(layout).drop_back())) ||
      failed(shapes.check("result", resultType, layout)))
    return failure();
  return checkSameElementType(*this, "result", resultType, "table",
                              getTable().getType());
}

//===----------------------------------------------------------------------===//
// RMSNormOp
//===----------------------------------------------------------------------===//

LogicalResult RMSNormOp::verify() {
  auto inputType = getInput().getType();
  if (inputType.getRank() < 1)
    return emitOpError("'input' must have rank >= 1");
  ShapeChecker shapes(*this);
  int64_t innermost = inputType.getShape().back();
  if (!ShapedType::isDynamic(innermost))
    shapes.bind("D", innermost, "the innermost dim of 'input'");
  if (failed(shapes.check("weight", getWeight().getType(), {"D"})))
    return failure();
  if (!isNonNegativeFinite(getEpsilon().convertToDouble()))
    return emitOpError() << "'epsilon' must be a non-negative finite number, "
                            "got "
                         << getEpsilon().convertToDouble();
  return success();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::verify() {
  ShapeChecker shapes(*this);
  if (failed(shapes.check("input", getInput().getType(), {"T", "K"})) ||
      failed(shapes.check("weight", getWeight().getType(), {"N", "K"})) ||
      failed(shapes.check("result", getResult().getType(), {"T", "N"})))
    return failure();
  if (getBias() && failed(shapes.check("bias", getBias().getType(), {"N"})))
    return failure();
  if (Value residual = getResidual()) {
    if (failed(shapes.check("residual", residual.getType(), {"T", "N"})) ||
        failed(checkSameElementType(*this, "residual", residual.getType(),
                                    "result", getResult().getType())))
      return failure();
  }
  if (Value norm = getNormWeight()) {
    if (failed(shapes.check("norm_weight", norm.getType(), {"K"})))
      return failure();
    if (!getNormEpsAttr())
      return emitOpError("'norm_weight' needs 'norm_eps'");
    if (!isNonNegativeFinite(getNormEpsAttr().getValueAsDouble()))
      return emitOpError() << "'norm_eps' must be a non-negative finite "
                              "number, got "
                           << getNormEpsAttr().getValueAsDouble();
    return success();
  }
  if (getNormEpsAttr() || getNormWeightInF32())
    return emitOpError("'norm_eps' and 'norm_weight_in_f32' need "
                       "'norm_weight'");
  return success();
}

//===----------------------------------------------------------------------===//
// RopeOp
//===----------------------------------------------------------------------===//

int64_t RopeOp::getRotatedDim() {
  if (std::optional<int64_t> dim = getRotaryDim())
    return *dim;
  return getInput().getType().getShape().back();
}

LogicalResult RopeOp::verify() {
  ShapeChecker shapes(*this);
  if (failed(shapes.check("input", getInput().getType(),
                          {"B", "S", "heads", "D"})) ||
      failed(shapes.check("positions", getPositions().getType(), {"B", "S"})))
    return failure();
  int64_t headDim = getInput().getType().getShape().back();
  if (ShapedType::isDynamic(headDim))
    return emitOpError("'input' head dim (dim 3) must be static");
  int64_t rotated = getRotatedDim();
  if (rotated <= 0 || rotated % 2 != 0 || rotated > headDim)
    return emitOpError() << "rotated dim " << rotated
                         << " must be positive, even and at most the head "
                            "dim "
                         << headDim
                         << (getRotaryDim() ? " (set by 'rotary_dim')" : "");
  return success();
}

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

int64_t RouteOp::getNumExperts() {
  return getGateWeight().getType().getDimSize(0);
}

/// The checks shared by moe.route and moe.fused_route, which have the same
/// operands and attributes.
template <typename OpTy>
static LogicalResult verifyRouting(OpTy op, ShapeChecker &shapes) {
  if (failed(shapes.check("hidden", op.getHidden().getType(), {"T", "H"})) ||
      failed(shapes.check("gate_weight", op.getGateWeight().getType(),
                          {"E", "H"})))
    return failure();
  std::optional<int64_t> numExperts = shapes.get("E");
  if (!numExperts)
    return op.emitOpError("'gate_weight' must have a static number of experts "
                       "(dim 0)");
  int64_t e = *numExperts;
  if (op.getSelectionBias() &&
      failed(shapes.check("selection_bias", op.getSelectionBias().getType(),
                          {"E"})))
    return failure();
  if (op.getLogitBias() &&
      failed(shapes.check("logit_bias", op.getLogitBias().getType(), {"E"})))
    return failure();

  int64_t topK = op.getTopK();
  if (topK < 1 || topK > e)
    return op.emitOpError() << "'top_k' (" << topK << ") must be in [1, E = " << e
                         << "]";
  shapes.bind("k", topK, "'top_k'");
  if (failed(shapes.check("expert_ids", op.getExpertIds().getType(),
                          {"T", "k"})) ||
      failed(shapes.check("expert_weights", op.getExpertWeights().getType(),
                          {"T", "k"})))
    return failure();

  int64_t nGroup = op.getNGroup(), topkGroup = op.getTopkGroup();
  if (nGroup < 1)
    return op.emitOpError() << "'n_group' (" << nGroup << ") must be positive";
  if (e % nGroup != 0)
    return op.emitOpError() << "'n_group' (" << nGroup
                         << ") must divide the number of experts (" << e
                         << ")";
  if (topkGroup < 1 || topkGroup > nGroup)
    return op.emitOpError() << "'topk_group' (" << topkGroup
                         << ") must be in [1, n_group = " << nGroup << "]";
  int64_t groupSize = e / nGroup;
  if (nGroup > 1 && topK > topkGroup * groupSize)
    return op.emitOpError() << "'top_k' (" << topK << ") exceeds the "
                         << topkGroup * groupSize << " experts of the "
                         << topkGroup << " groups kept by 'topk_group'";
  // With one group, group_score is irrelevant (canonicalized to max).
  if (op.getGroupScore() == GroupScore::Top2Sum && nGroup > 1 && groupSize < 2)
    return op.emitOpError() << "'group_score' top2_sum needs at least 2 "
                            "experts per group, got "
                         << groupSize;

  if (op.getOrder() == RouteOrder::TopKThenSoftmax) {
    if (op.getScore() != ScoreFunc::None)
      return op.emitOpError("'order' topk_then_softmax selects on raw logits, so "
                         "'score' must be none");
    if (nGroup > 1)
      return op.emitOpError("'order' topk_then_softmax does not support "
                         "group-limited selection ('n_group' > 1)");
    if (op.getSelectionBias())
      return op.emitOpError("'selection_bias' is not supported with 'order' "
                         "topk_then_softmax");
  }
  if (!isNonNegativeFinite(op.getRenormEps().convertToDouble()))
    return op.emitOpError() << "'renorm_eps' must be a non-negative finite "
                            "number, got "
                         << op.getRenormEps().convertToDouble();
  if (!isPositiveFinite(op.getScalingFactor().convertToDouble()))
    return op.emitOpError() << "'scaling_factor' must be a positive finite "
                            "number, got "
                         << op.getScalingFactor().convertToDouble();
  return success();
}

LogicalResult RouteOp::verify() {
  ShapeChecker shapes(*this);
  return verifyRouting(*this, shapes);
}

int64_t FusedRouteOp::getNumExperts() {
  return getGateWeight().getType().getDimSize(0);
}

LogicalResult FusedRouteOp::verify() {
  ShapeChecker shapes(*this);
  if (failed(verifyRouting(*this, shapes)))
    return failure();
  auto tile = static_cast<int64_t>(getTile());
  if (tile < 1)
    return emitOpError() << "'tile' (" << tile << ") must be positive";
  int64_t e = getNumExperts();
  if (failed(shapes.check("expert_offsets", getExpertOffsets().getType(),
                          {std::to_string(e + 1)})) ||
      failed(shapes.check("sorted_slots", getSortedSlots().getType(),
                          {"P"})))
    return failure();
  // P = T * k + E * (tile - 1) when T is known.
  std::optional<int64_t> t = shapes.get("T"), p = shapes.get("P");
  int64_t k = static_cast<int64_t>(getTopK());
  if (t && p && *p != *t * k + e * (tile - 1))
    return emitOpError() << "'sorted_slots' must have T * k + E * (tile - 1)"
                            " = "
                         << *t * k + e * (tile - 1) << " entries, got " << *p;
  return success();
}

namespace {
/// Group-limited selection that keeps every group masks nothing: it is plain
/// top-k selection. A group score without groups is likewise meaningless;
/// both become the canonical `n_group = topk_group = 1, group_score = max`.
struct DropTrivialGroupLimit : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RouteOp op,
                                PatternRewriter &rewriter) const override {
    bool allKept = op.getNGroup() > 1 && op.getTopkGroup() == op.getNGroup();
    bool stray = op.getNGroup() == 1 && op.getGroupScore() != GroupScore::Max;
    if (!allKept && !stray)
      return rewriter.notifyMatchFailure(op, "some groups are dropped");
    rewriter.modifyOpInPlace(op, [&] {
      op.setNGroup(1);
      op.setTopkGroup(1);
      op.setGroupScore(GroupScore::Max);
    });
    return success();
  }
};

/// A softmax over the selected logits already sums to one; dividing by the
/// sum again (without an epsilon) changes nothing.
struct DropRedundantRenorm : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RouteOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getOrder() != RouteOrder::TopKThenSoftmax ||
        op.getRenorm() != Renorm::Sum || !op.getRenormEps().isZero())
      return rewriter.notifyMatchFailure(op, "renormalisation is not a no-op");
    rewriter.modifyOpInPlace(op, [&] { op.setRenorm(Renorm::None); });
    return success();
  }
};
} // namespace

void RouteOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                          MLIRContext *context) {
  results.add<DropTrivialGroupLimit, DropRedundantRenorm>(context);
}

//===----------------------------------------------------------------------===//
// ExpertsOp
//===----------------------------------------------------------------------===//

/// The checks shared by moe.experts and moe.grouped_experts.
template <typename OpTy>
static LogicalResult verifyExpertFFNs(OpTy op, ShapeChecker &shapes) {
  if (failed(shapes.check("hidden", op.getHidden().getType(), {"T", "H"})) ||
      failed(shapes.check("expert_ids", op.getExpertIds().getType(),
                          {"T", "k"})) ||
      failed(shapes.check("expert_weights", op.getExpertWeights().getType(),
                          {"T", "k"})) ||
      failed(shapes.check("gate_weight", op.getGateWeight().getType(),
                          {"E", "I", "H"})) ||
      failed(shapes.check("up_weight", op.getUpWeight().getType(),
                          {"E", "I", "H"})) ||
      failed(shapes.check("down_weight", op.getDownWeight().getType(),
                          {"E", "H", "I"})))
    return failure();

  unsigned numBiases = (op.getGateBias() ? 1 : 0) + (op.getUpBias() ? 1 : 0) +
                       (op.getDownBias() ? 1 : 0);
  if (numBiases != 0 && numBiases != 3)
    return op.emitOpError("expert biases need 'gate_bias', 'up_bias' and "
                       "'down_bias' together");
  if (numBiases == 3 &&
      (failed(shapes.check("gate_bias", op.getGateBias().getType(),
                           {"E", "I"})) ||
       failed(shapes.check("up_bias", op.getUpBias().getType(), {"E", "I"})) ||
       failed(shapes.check("down_bias", op.getDownBias().getType(),
                           {"E", "H"}))))
    return failure();

  unsigned numShared = (op.getSharedGateWeight() ? 1 : 0) +
                       (op.getSharedUpWeight() ? 1 : 0) +
                       (op.getSharedDownWeight() ? 1 : 0);
  if (numShared != 0 && numShared != 3)
    return op.emitOpError("a shared expert needs 'shared_gate_weight', "
                       "'shared_up_weight' and 'shared_down_weight' together");
  if (numShared == 3 &&
      (failed(shapes.check("shared_gate_weight",
                           op.getSharedGateWeight().getType(), {"Is", "H"})) ||
       failed(shapes.check("shared_up_weight", op.getSharedUpWeight().getType(),
                           {"Is", "H"})) ||
       failed(shapes.check("shared_down_weight",
                           op.getSharedDownWeight().getType(), {"H", "Is"}))))
    return failure();
  if (op.getSharedExpertGate()) {
    if (numShared == 0)
      return op.emitOpError("'shared_expert_gate' needs a shared expert");
    if (failed(shapes.check("shared_expert_gate",
                            op.getSharedExpertGate().getType(), {"1", "H"})))
      return failure();
  }

  double alpha = op.getAlpha().convertToDouble();
  double limit = op.getLimit().convertToDouble();
  double beta = op.getBeta().convertToDouble();
  if (op.getActivation() == Activation::SwiGLU) {
    if (alpha != 1.702f || limit != 7.0 || beta != 1.0)
      return op.emitOpError("'alpha', 'limit' and 'beta' only apply to "
                         "activation swiglu_clamped");
    return success();
  }
  if (!isPositiveFinite(alpha))
    return op.emitOpError() << "'alpha' must be a positive finite number, got "
                         << alpha;
  if (!isPositiveFinite(limit))
    return op.emitOpError() << "'limit' must be a positive finite number, got "
                         << limit;
  if (!std::isfinite(beta))
    return op.emitOpError() << "'beta' must be finite, got " << beta;
  return success();
}

LogicalResult ExpertsOp::verify() {
  ShapeChecker shapes(*this);
  return verifyExpertFFNs(*this, shapes);
}

LogicalResult GroupedExpertsOp::verify() {
  ShapeChecker shapes(*this);
  if (failed(verifyExpertFFNs(*this, shapes)))
    return failure();
  // I64Attr accessors are unsigned; the attributes are signed.
  auto tile = static_cast<int64_t>(getTile());
  auto gemvMaxTokens = static_cast<int64_t>(getGemvMaxTokens());
  if (tile < 1)
    return emitOpError() << "'tile' (" << tile << ") must be positive";
  if (gemvMaxTokens < 0)
    return emitOpError() << "'gemv_max_tokens' (" << gemvMaxTokens
                         << ") must be non-negative";
  int64_t e = getGateWeight().getType().getDimSize(0);
  return failure(
      failed(shapes.check("expert_offsets", getExpertOffsets().getType(),
                          {ShapedType::isDynamic(e) ? std::string("E+1")
                                                    : std::to_string(e + 1)})) ||
      failed(shapes.check("sorted_slots", getSortedSlots().getType(), {"P"})));
}

/// The fused rotary embedding of moe.attention and the MLA ops: positions,
/// style and table come together; positions are [B, S]; `dimName` (the
/// rotated head dim) is even.
template <typename OpTy>
static LogicalResult verifyRopePrologue(OpTy op, ShapeChecker &shapes,
                                        StringRef dimName) {
  unsigned parts = (op.getPositions() ? 1 : 0) +
                   (op.getRopeStyleAttr() ? 1 : 0) + (op.getRopeAttr() ? 1 : 0);
  if (parts != 0 && parts != 3)
    return op.emitOpError("a fused rotary embedding needs 'positions', "
                          "'rope_style' and 'rope' together");
  if (!op.getPositions())
    return success();
  if (failed(shapes.check("positions", op.getPositions().getType(),
                          {"B", "S"})))
    return failure();
  std::optional<int64_t> d = shapes.get(dimName);
  if (d && *d % 2 != 0)
    return op.emitOpError() << "a fused rotary embedding needs an even head "
                               "dim, got "
                            << dimName << " = " << *d;
  return success();
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::verify() {
  ShapeChecker shapes(*this);
  if (failed(shapes.check("query", getQuery().getType(),
                          {"B", "S", "Hq", "D"})) ||
      failed(shapes.check("key", getKey().getType(),
                          {"B", "S", "Hkv", "D"})) ||
      failed(shapes.check("value", getValue().getType(),
                          {"B", "S", "Hkv", "Dv"})) ||
      failed(shapes.check("key_cache", getKeyCache().getType(),
                          {"B", "L", "Hkv", "D"})) ||
      failed(shapes.check("value_cache", getValueCache().getType(),
                          {"B", "L", "Hkv", "Dv"})) ||
      failed(shapes.check("cache_position", getCachePosition().getType(),
                          {"B"})) ||
      failed(shapes.check("result", getResult().getType(),
                          {"B", "S", "Hq", "Dv"})))
    return failure();
  if (getSinks() &&
      failed(shapes.check("sinks", getSinks().getType(), {"Hq"})))
    return failure();
  std::optional<int64_t> hq = shapes.get("Hq"), hkv = shapes.get("Hkv");
  if (hkv && *hkv == 0)
    return emitOpError("KV heads (Hkv) must be positive");
  if (hq && hkv && *hq % *hkv != 0)
    return emitOpError() << "query heads (Hq = " << *hq
                         << ") must be a multiple of the KV heads (Hkv = "
                         << *hkv << ")";
  if (failed(checkCacheCapacity(*this, shapes)) ||
      failed(checkSameElementType(*this, "key_cache", getKeyCache().getType(),
                                  "key", getKey().getType())) ||
      failed(checkSameElementType(*this, "value_cache",
                                  getValueCache().getType(), "value",
                                  getValue().getType())) ||
      failed(checkSameElementType(*this, "result", getResult().getType(),
                                  "query", getQuery().getType())) ||
      failed(checkScale(*this, getScale())))
    return failure();
  // Read the attribute signed: the generated getter returns it unsigned.
  int64_t window = getSlidingWindowAttr().getInt();
  if (window < 0)
    return emitOpError() << "'sliding_window' must be non-negative, got "
                         << window;
  if (failed(verifyRopePrologue(*this, shapes, "D")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// MLAOp, MLAAbsorbedOp
//===----------------------------------------------------------------------===//

/// Checks what the naive and absorbed forms share; leaves the bound sizes in
/// `shapes` for the form-specific weight checks.
template <typename OpTy>
static LogicalResult verifyMLACommon(OpTy op, ShapeChecker &shapes) {
  if (failed(shapes.check("q_nope", op.getQNope().getType(),
                          {"B", "S", "N", "Dn"})) ||
      failed(shapes.check("q_pe", op.getQPe().getType(),
                          {"B", "S", "N", "Dr"})) ||
      failed(shapes.check("latent", op.getLatent().getType(),
                          {"B", "S", "R"})) ||
      failed(shapes.check("k_pe", op.getKPe().getType(), {"B", "S", "Dr"})) ||
      failed(shapes.check("cache", op.getCache().getType(),
                          {"B", "L", "C"})) ||
      failed(shapes.check("cache_position", op.getCachePosition().getType(),
                          {"B"})) ||
      failed(shapes.check("result", op.getResult().getType(),
                          {"B", "S", "N", "Dv"})))
    return failure();
  std::optional<int64_t> r = shapes.get("R"), dr = shapes.get("Dr"),
                         c = shapes.get("C");
  if (r && dr && c && llvm::checkedAdd(*r, *dr) != c)
    return op.emitOpError() << "'cache' dim 2 is " << *c
                            << ", but a latent cache row holds kv_lora_rank "
                               "+ qk_rope_head_dim = "
                            << *r << " + " << *dr;
  if (failed(checkCacheCapacity(op, shapes)) ||
      failed(checkSameElementType(op, "cache", op.getCache().getType(),
                                  "latent", op.getLatent().getType())) ||
      failed(checkSameElementType(op, "result", op.getResult().getType(),
                                  "q_nope", op.getQNope().getType())) ||
      failed(verifyRopePrologue(op, shapes, "Dr")))
    return failure();
  return checkScale(op, op.getScale());
}

LogicalResult MLAOp::verify() {
  ShapeChecker shapes(*this);
  if (failed(verifyMLACommon(*this, shapes)) ||
      failed(shapes.check("kv_b_weight", getKvBWeight().getType(),
                          {"KVB", "R"})))
    return failure();
  std::optional<int64_t> n = shapes.get("N"), dn = shapes.get("Dn"),
                         dv = shapes.get("Dv"), rows = shapes.get("KVB");
  if (!n || !dn || !dv || !rows)
    return success();
  std::optional<int64_t> headRows = llvm::checkedAdd(*dn, *dv);
  std::optional<int64_t> expected =
      headRows ? llvm::checkedMul(*n, *headRows) : std::nullopt;
  if (expected != rows)
    return emitOpError() << "'kv_b_weight' dim 0 is " << *rows
                         << ", but heads * (qk_nope_head_dim + v_head_dim) = "
                         << *n << " * (" << *dn << " + " << *dv << ")";
  return success();
}

LogicalResult MLAAbsorbedOp::verify() {
  ShapeChecker shapes(*this);
  if (failed(verifyMLACommon(*this, shapes)) ||
      failed(shapes.check("w_uk", getWUk().getType(), {"N", "Dn", "R"})) ||
      failed(shapes.check("w_uv", getWUv().getType(), {"N", "Dv", "R"})))
    return failure();
  return success();
}

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
