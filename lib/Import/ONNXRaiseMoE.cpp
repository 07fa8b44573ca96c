//===- ONNXRaiseMoE.cpp - Raising exported MoE blocks to moe ops ----------===//
//
// torch.onnx.export (TorchScript and dynamo) of transformers' `batched_mm`
// experts, and onnxruntime-genai's decomposed MoE, write an MoE layer as
//
//   probs = Softmax(x W_r^T);  vals, ids = TopK(probs, k)
//   w     = vals [/ ReduceSum(vals)]                        (renormalise)
//   xr    = repeat_interleave(x, k)                         [T*k, H]
//   h     = MatMul(Gather(W_gu [E, 2I, H], ids), xr)        [T*k, 2I]
//   a     = SiLU(h[:, :I]) * h[:, I:]
//   o     = MatMul(Gather(W_d [E, H, I], ids), a)           [T*k, H]
//   y     = ReduceSum(Reshape(o * w, [T, k, H]), axis 1)
//
// with views (Reshape/Unsqueeze/Squeeze/Flatten) in between and either
// Gather or GatherND for the weights, Split or Slice for the halves,
// Expand or Tile for the repeat. Matching starts at the final ReduceSum,
// after every node before it was imported, so sizes the exporter computes
// at run time are known integers here. The block's output is redefined as
// moe.experts over moe.route (or over the plain router's ids and weights
// when the router is another form, e.g. DeepSeek's group-limited sigmoid);
// the plain ops it replaces become dead and are erased by canonicalization.
//
//===----------------------------------------------------------------------===//

#include "ONNXImporterImpl.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::onnximport;

std::pair<const onnx::NodeProto *, int>
Importer::producer(const std::string &name) {
  auto it = producers.find(name);
  return it == producers.end() ? std::pair<const onnx::NodeProto *, int>{}
                               : it->second;
}

std::string Importer::throughViews(const std::string &name) {
  std::string at = name;
  for (int guard = 0; guard < 64; ++guard) {
    const onnx::NodeProto *node = producer(at).first;
    if (!node || node->input_size() < 1)
      break;
    const std::string &op = node->op_type();
    if (op != "Reshape" && op != "Unsqueeze" && op != "Squeeze" &&
        op != "Flatten" && op != "Identity" && op != "Cast")
      break;
    at = node->input(0);
  }
  return at;
}

namespace {
/// What the matcher found of one block.
struct GatheredMoE {
  std::string x;               ///< tokens [T, H] (the repeat's input)
  std::string ids, vals;       ///< TopK outputs
  const onnx::NodeProto *topk = nullptr;
  std::string weights;         ///< the per-(token, slot) weights, [T, k]
  std::string gateUp, down;    ///< initializers [E, 2I, H], [E, H, I]
  bool gateFirst = true;       ///< SiLU on the first half of gate_up
  // The router, when it is Softmax(x W^T) -> TopK [-> / ReduceSum].
  std::string router;          ///< initializer, [E, H] or [H, E]
  bool routerTransposed = false; ///< stored [H, E] (MatMul form)
  bool renormalize = false;
  bool sigmoid = false;        ///< sigmoid scores (else softmax)
  std::string selectionBias;   ///< initializer added before selection
  int64_t nGroup = 1, topkGroup = 1;
  float scale = 1.0f;          ///< routed_scaling_factor
  float renormEps = 0.0f;      ///< added to the renormalising sum
  std::string routerWhy;       ///< why the router was not recognised
};
} // namespace

bool Importer::raiseGatheredMoE(const onnx::NodeProto &node) {
  auto prod = [&](const std::string &name, llvm::StringRef op,
                  int output = -1) -> const onnx::NodeProto * {
    auto [n, i] = producer(name);
    if (!n || n->op_type() != op || (output >= 0 && i != output))
      return nullptr;
    return n;
  };
  auto isInit = [&](const std::string &name) {
    return model.initializers().count(name) != 0;
  };
  // --- The block's shape: ReduceSum(Reshape(Mul(down-projection, w))) ----
  if (node.input_size() < 1 || node.output_size() != 1)
    return false;
  const onnx::NodeProto *mul = prod(throughViews(node.input(0)), "Mul");
  if (!mul || mul->input_size() != 2)
    return false;
  // One Mul operand is the down projection of gathered weights.
  const onnx::NodeProto *downMM = nullptr;
  std::string weightsName;
  for (int i = 0; i < 2 && !downMM; ++i)
    if ((downMM = prod(throughViews(mul->input(i)), "MatMul")))
      weightsName = mul->input(1 - i);
  if (!downMM)
    return false;
  auto gatheredInit = [&](const std::string &name,
                          std::string &indices) -> std::string {
    auto [g, idx] = producer(name);
    if (!g || g->input_size() != 2 || !isInit(g->input(0)))
      return "";
    if (g->op_type() == "Gather" && intAttr(*g, "axis", 0) == 0) {
      indices = g->input(1);
      return g->input(0);
    }
    if (g->op_type() == "GatherND" && intAttr(*g, "batch_dims", 0) == 0) {
      indices = g->input(1);
      return g->input(0);
    }
    return "";
  };
  GatheredMoE m;
  std::string downIdx, guIdx;
  m.down = gatheredInit(downMM->input(0), downIdx);
  if (m.down.empty())
    return false;
  // From here on it is an MoE block: report what stops raising.
  ONNXMoEBlock block;
  block.node = model.describe(node);
  block.form = "gathered expert weights (torch.onnx.export batched_mm)";
  auto notRaised = [&](const std::string &why) {
    block.reason = why;
    if (blocks)
      blocks->push_back(block);
    return false;
  };
  // The sum is over the k slots of each token: [T, k, H] -> [T, H].
  std::optional<llvm::SmallVector<int64_t>> axes =
      node.input_size() > 1 ? constantInts(node.input(1)) : std::nullopt;
  if (const onnx::AttributeProto *attr = findAttr(node, "axes"))
    axes = llvm::SmallVector<int64_t>(attr->ints().begin(), attr->ints().end());
  Value summed = lookup(node.input(0));
  if (!axes || *axes != llvm::SmallVector<int64_t>{1} ||
      intAttr(node, "keepdims", 1) != 0 || !summed ||
      cast<RankedTensorType>(summed.getType()).getRank() != 3)
    return notRaised("the combine is not a sum over axis 1 of [T, k, H] "
                     "without keepdims");
  // --- The activation: SiLU(first half) * second half ---------------------
  const onnx::NodeProto *prodMul = prod(throughViews(downMM->input(1)), "Mul");
  if (!prodMul)
    return notRaised("the down projection's input is not a gated product");
  std::string gateHalf, upHalf;
  for (int i = 0; i < 2 && gateHalf.empty(); ++i) {
    const onnx::NodeProto *silu = prod(prodMul->input(i), "Mul");
    if (!silu)
      continue;
    for (int j = 0; j < 2; ++j) {
      const onnx::NodeProto *sig = prod(silu->input(j), "Sigmoid");
      if (sig && sig->input(0) == silu->input(1 - j)) {
        gateHalf = silu->input(1 - j);
        upHalf = prodMul->input(1 - i);
      }
    }
  }
  if (gateHalf.empty())
    return notRaised("the activation is not SiLU(gate) * up");
  // Both halves come from one projection h, by Split or Slice.
  std::string h;
  int64_t inter = 0;
  auto half = [&](const std::string &name, int &which) -> std::string {
    auto [n, out] = producer(name);
    if (!n)
      return "";
    if (n->op_type() == "Split" && n->output_size() == 2) {
      which = out;
      return n->input(0);
    }
    if (n->op_type() == "Slice" && n->input_size() >= 3) {
      std::optional<llvm::SmallVector<int64_t>> starts =
          constantInts(n->input(1));
      Value hv = lookup(n->input(0));
      auto type = hv ? cast<RankedTensorType>(hv.getType()) : nullptr;
      if (!starts || starts->size() != 1 || !type ||
          type.isDynamicDim(type.getRank() - 1))
        return "";
      int64_t width = type.getDimSize(type.getRank() - 1);
      which = (*starts)[0] == 0 ? 0 : (*starts)[0] == width / 2 ? 1 : -1;
      return n->input(0);
    }
    return "";
  };
  int gateWhich = -1, upWhich = -1;
  h = half(gateHalf, gateWhich);
  if (h.empty() || h != half(upHalf, upWhich) || gateWhich < 0 ||
      upWhich < 0 || gateWhich == upWhich)
    return notRaised("gate and up are not the two halves of one projection");
  m.gateFirst = gateWhich == 0;
  const onnx::NodeProto *guMM = prod(throughViews(h), "MatMul");
  if (!guMM)
    return notRaised("the gate/up projection is not a MatMul");
  m.gateUp = gatheredInit(guMM->input(0), guIdx);
  if (m.gateUp.empty())
    return notRaised("the gate/up weights are not gathered from an "
                     "initializer");
  // --- The routing: both gathers by one TopK's indices ---------------------
  std::string ids = throughViews(downIdx);
  m.topk = producer(ids).first;
  if (!m.topk || m.topk->op_type() != "TopK" || producer(ids).second != 1 ||
      throughViews(guIdx) != ids)
    return notRaised("the expert indices are not one TopK's indices");
  m.ids = ids;
  m.vals = m.topk->output(0);
  // --- The tokens: repeat_interleave(x, k) -------------------------------
  std::string rep = throughViews(guMM->input(1));
  auto [repNode, repOut] = producer(rep);
  if (!repNode ||
      (repNode->op_type() != "Expand" && repNode->op_type() != "Tile"))
    return notRaised("the tokens are not repeated by Expand or Tile");
  const onnx::NodeProto *unsq = prod(repNode->input(0), "Unsqueeze");
  std::optional<llvm::SmallVector<int64_t>> unsqAxes =
      unsq && unsq->input_size() > 1 ? constantInts(unsq->input(1))
                                     : std::nullopt;
  if (!unsq || !unsqAxes || *unsqAxes != llvm::SmallVector<int64_t>{1})
    return notRaised("the tokens are not repeated token by token");
  m.x = unsq->input(0);
  // The weights: the other Mul operand, followed back to its [T, k] form.
  m.weights = weightsName;
  for (int guard = 0; guard < 8; ++guard) {
    Value v = lookup(m.weights);
    auto t = v ? dyn_cast<RankedTensorType>(v.getType()) : nullptr;
    if (t && t.getRank() == 2 && !t.isDynamicDim(1) &&
        t.getDimSize(1) > 1)
      break;
    const onnx::NodeProto *n = producer(m.weights).first;
    if (!n || (n->op_type() != "Reshape" && n->op_type() != "Unsqueeze" &&
               n->op_type() != "Flatten"))
      break;
    m.weights = n->input(0);
  }
  // --- The router -----------------------------------------------------
  // Softmax form: TopK(Softmax(x W^T)) with the values as weights, maybe
  // renormalised. Sigmoid form (DeepSeek-V3): the weights are the sigmoid
  // scores gathered at the ids, maybe renormalised and scaled; the ids are
  // the TopK of the scores plus a selection bias, after the groups outside
  // the top topk_group (by the sum of each group's top two) are masked.
  std::string weightsSrc = throughViews(m.weights);
  // A scalar float constant (initializer or Constant node), if `name` is.
  auto scalar = [&](const std::string &name) -> std::optional<float> {
    Value v = lookup(name);
    auto c = v ? v.getDefiningOp<arith::ConstantOp>() : nullptr;
    auto dense = c ? dyn_cast<DenseElementsAttr>(c.getValue()) : nullptr;
    if (dense && dense.isSplat() && dense.getElementType().isF32())
      return dense.getSplatValue<float>();
    auto init = model.initializers().find(name);
    if (init != model.initializers().end() &&
        init->second.dataType == onnx::TensorProto::FLOAT &&
        init->second.byteSize == 4 && init->second.inlineData)
      return *static_cast<const float *>(init->second.inlineData);
    return std::nullopt;
  };
  auto renormOf = [&](std::string &src) {
    if (const onnx::NodeProto *div = prod(src, "Div")) {
      // a / sum(a), or a / (sum(a) + eps)
      std::string denominator = div->input(1);
      float eps = 0.0f;
      if (const onnx::NodeProto *add = prod(denominator, "Add"))
        for (int i = 0; i < 2; ++i)
          if (std::optional<float> e = scalar(add->input(i))) {
            eps = *e;
            denominator = add->input(1 - i);
            break;
          }
      const onnx::NodeProto *sum = prod(denominator, "ReduceSum");
      if (sum && sum->input(0) == div->input(0)) {
        m.renormalize = true;
        m.renormEps = eps;
        src = throughViews(div->input(0));
      }
    }
  };
  const onnx::NodeProto *scores = nullptr; // the Softmax or Sigmoid
  if (const onnx::NodeProto *mulScale = prod(weightsSrc, "Mul")) {
    for (int i = 0; i < 2; ++i)
      if (std::optional<float> f = scalar(mulScale->input(i))) {
        m.scale = *f;
        weightsSrc = throughViews(mulScale->input(1 - i));
        break;
      }
  }
  renormOf(weightsSrc);
  if (weightsSrc == m.vals) {
    // Softmax form.
    scores = prod(throughViews(m.topk->input(0)), "Softmax");
    if (!scores || intAttr(*scores, "axis", -1) != -1)
      m.routerWhy = "the scores are not a Softmax over the experts";
  } else if (const onnx::NodeProto *gather =
                 prod(weightsSrc, "GatherElements")) {
    // Sigmoid form: weights = Sigmoid(logits)[ids].
    scores = prod(throughViews(gather->input(0)), "Sigmoid");
    if (!scores || intAttr(*gather, "axis", 0) != 1 ||
        throughViews(gather->input(1)) != m.ids)
      m.routerWhy = "the routing weights are gathered from something other "
                    "than the sigmoid scores at the chosen ids";
    m.sigmoid = true;
    std::string sigmoidOut = gather->input(0);
    // What TopK selects on: the scores (+ bias), maybe with groups masked.
    std::string sel = throughViews(m.topk->input(0));
    std::string choice = sel;
    if (const onnx::NodeProto *where = prod(sel, "Where")) {
      // Follow the condition to the ScatterElements of the kept groups,
      // counting Nots: masked_fill(~keep, fill, scores).
      std::string cond = where->input(0);
      int nots = 0;
      const onnx::NodeProto *scatter = nullptr;
      for (int guard = 0; guard < 16 && !scatter; ++guard) {
        const onnx::NodeProto *n = producer(cond).first;
        if (!n)
          break;
        if (n->op_type() == "ScatterElements")
          scatter = n;
        else if (n->op_type() == "Not")
          ++nots, cond = n->input(0);
        else if (llvm::is_contained({"Cast", "Reshape", "Expand", "Unsqueeze",
                                     "Squeeze", "Identity"},
                                    n->op_type()))
          cond = n->input(0);
        else
          break;
      }
      choice = throughViews(where->input(nots % 2 ? 2 : 1));
      const onnx::NodeProto *groupTopK =
          scatter ? producer(scatter->input(1)).first : nullptr;
      const onnx::NodeProto *groupSum =
          groupTopK && groupTopK->op_type() == "TopK"
              ? producer(throughViews(groupTopK->input(0))).first
              : nullptr;
      const onnx::NodeProto *pairTopK =
          groupSum && groupSum->op_type() == "ReduceSum"
              ? prod(groupSum->input(0), "TopK", 0)
              : nullptr;
      std::optional<llvm::SmallVector<int64_t>> two =
          pairTopK ? constantInts(pairTopK->input(1)) : std::nullopt;
      std::optional<llvm::SmallVector<int64_t>> kGroups =
          groupTopK ? constantInts(groupTopK->input(1)) : std::nullopt;
      Value grouped = pairTopK ? lookup(pairTopK->input(0)) : Value();
      auto gt = grouped ? dyn_cast<RankedTensorType>(grouped.getType())
                        : nullptr;
      if (!scatter || !pairTopK || !two || *two != llvm::SmallVector<int64_t>{2} ||
          !kGroups || kGroups->size() != 1 || !gt || gt.getRank() != 3 ||
          gt.isDynamicDim(1) ||
          throughViews(pairTopK->input(0)) != choice)
        m.routerWhy = "the expert mask is not the top topk_group groups by "
                      "the sum of their top two scores";
      else
        m.nGroup = gt.getDimSize(1), m.topkGroup = (*kGroups)[0];
    }
    // choice = scores [+ selection bias]
    if (const onnx::NodeProto *add = prod(choice, "Add")) {
      for (int i = 0; i < 2; ++i)
        if (throughViews(add->input(i)) == throughViews(sigmoidOut) &&
            isInit(add->input(1 - i)))
          m.selectionBias = add->input(1 - i);
      if (m.selectionBias.empty())
        m.routerWhy = "the selection scores are not the sigmoid scores plus "
                      "a bias initializer";
    } else if (choice != throughViews(sigmoidOut)) {
      m.routerWhy = "TopK does not select on the sigmoid scores";
    }
  } else {
    m.routerWhy = "the routing weights are neither TopK's values nor the "
                  "sigmoid scores at the chosen ids";
  }
  if (m.routerWhy.empty() && (intAttr(*m.topk, "largest", 1) != 1 ||
                              intAttr(*m.topk, "axis", -1) != -1))
    m.routerWhy = "TopK is not the largest over the last axis";
  if (m.routerWhy.empty()) {
    auto [lin, _] = producer(throughViews(scores->input(0)));
    bool gemm = lin && lin->op_type() == "Gemm" && lin->input_size() == 2 &&
                intAttr(*lin, "transB", 0) == 1 &&
                intAttr(*lin, "transA", 0) == 0 &&
                floatAttr(*lin, "alpha").value_or(1.0f) == 1.0f;
    bool matmul = lin && lin->op_type() == "MatMul";
    if ((!gemm && !matmul) || !isInit(lin->input(1)) ||
        throughViews(lin->input(0)) != throughViews(m.x))
      m.routerWhy = "the logits are not x times an initializer";
    else
      m.router = lin->input(1), m.routerTransposed = matmul;
  }

  // --- Shapes -----------------------------------------------------------
  Value x = lookup(m.x), gateUp = lookup(m.gateUp), down = lookup(m.down);
  Value ids64 = lookup(m.ids), weights = lookup(m.weights);
  auto xt = x ? cast<RankedTensorType>(x.getType()) : nullptr;
  auto gut = gateUp ? cast<RankedTensorType>(gateUp.getType()) : nullptr;
  auto dt = down ? cast<RankedTensorType>(down.getType()) : nullptr;
  auto it = ids64 ? cast<RankedTensorType>(ids64.getType()) : nullptr;
  auto wt = weights ? cast<RankedTensorType>(weights.getType()) : nullptr;
  if (!xt || !gut || !dt || !it || !wt || xt.getRank() != 2 ||
      gut.getRank() != 3 || dt.getRank() != 3 || it.getRank() != 2 ||
      wt.getRank() != 2)
    return notRaised("operand ranks are not x [T, H], weights [E, 2I, H] / "
                     "[E, H, I], ids and weights [T, k]");
  int64_t numExperts = gut.getDimSize(0), hidden = xt.getDimSize(1);
  inter = dt.getDimSize(2);
  int64_t k = it.getDimSize(1);
  Type et = xt.getElementType();
  if (ShapedType::isDynamic(hidden) || ShapedType::isDynamic(k) ||
      gut.getDimSize(1) != 2 * inter || gut.getDimSize(2) != hidden ||
      dt.getDimSize(0) != numExperts || dt.getDimSize(1) != hidden ||
      gut.getElementType() != et || dt.getElementType() != et ||
      wt.getDimSize(1) != k || !wt.getElementType().isF32())
    return notRaised(llvm::formatv(
        "shapes do not fit one MoE layer: x {0}, gate_up {1}, down {2}, "
        "ids {3}, weights {4}",
        xt, gut, dt, it, wt));

  // --- Emit ---------------------------------------------------------------
  Location loc = locOf(node);
  auto rows = [&](int64_t first) -> Value {
    return tensor::ExtractSliceOp::create(
        builder, loc, RankedTensorType::get({numExperts, inter, hidden}, et),
        gateUp, ValueRange{}, ValueRange{}, ValueRange{},
        builder.getDenseI64ArrayAttr({0, first, 0}),
        builder.getDenseI64ArrayAttr({numExperts, inter, hidden}),
        builder.getDenseI64ArrayAttr({1, 1, 1}));
  };
  Value gate = rows(m.gateFirst ? 0 : inter);
  Value up = rows(m.gateFirst ? inter : 0);
  auto idsType = RankedTensorType::get({xt.getDimSize(0), k},
                                       builder.getI32Type());
  Value expertIds, expertWeights;
  if (m.routerWhy.empty()) {
    Value router = lookup(m.router);
    auto rt = cast<RankedTensorType>(router.getType());
    if (m.routerTransposed)
      router =
          linalg::TransposeOp::create(
              builder, loc, router,
              tensor::EmptyOp::create(builder, loc,
                                      llvm::ArrayRef<int64_t>{numExperts, hidden},
                                      rt.getElementType()),
              llvm::ArrayRef<int64_t>{1, 0})
              .getResult()[0];
    if (cast<RankedTensorType>(router.getType()).getShape() !=
        llvm::ArrayRef<int64_t>{numExperts, hidden})
      return notRaised(llvm::formatv("the router weight {0} is not [E, H] = "
                                     "[{1}, {2}]",
                                     router.getType(), numExperts, hidden));
    if (numExperts % m.nGroup || m.topkGroup < 1 || m.topkGroup > m.nGroup ||
        k > m.topkGroup * (numExperts / m.nGroup))
      return notRaised(llvm::formatv(
          "the groups do not fit: {0} experts, {1} groups, top {2} groups, "
          "k = {3}",
          numExperts, m.nGroup, m.topkGroup, k));
    Value bias = m.selectionBias.empty() ? Value() : lookup(m.selectionBias);
    if (bias && cast<RankedTensorType>(bias.getType()) !=
                    RankedTensorType::get({numExperts}, builder.getF32Type()))
      return notRaised("the selection bias is not f32 [E]");
    auto route = RouteOp::create(
        builder, loc, idsType,
        RankedTensorType::get({xt.getDimSize(0), k}, builder.getF32Type()), x,
        router, bias, Value(), builder.getI64IntegerAttr(k),
        ScoreFuncAttr::get(ctx, m.sigmoid ? ScoreFunc::Sigmoid
                                          : ScoreFunc::Softmax),
        RouteOrderAttr::get(ctx, RouteOrder::ScoreThenTopK),
        builder.getI64IntegerAttr(m.nGroup),
        builder.getI64IntegerAttr(m.topkGroup),
        GroupScoreAttr::get(ctx, m.nGroup > 1 ? GroupScore::Top2Sum
                                              : GroupScore::Max),
        RenormAttr::get(ctx, m.renormalize ? Renorm::Sum : Renorm::None),
        builder.getF32FloatAttr(m.renormEps), builder.getF32FloatAttr(m.scale));

    expertIds = route.getExpertIds();
    expertWeights = route.getExpertWeights();

  } else {
    // The plain router's ids (int64 -> int32) and weights feed the experts.
    Value init = tensor::EmptyOp::create(
        builder, loc, tensor::getMixedSizes(builder, loc, ids64),
        builder.getI32Type());
    AffineMap id = builder.getMultiDimIdentityMap(2);
    expertIds =
        linalg::GenericOp::create(
            builder, loc, TypeRange{init.getType()}, ValueRange{ids64},
            ValueRange{init}, llvm::ArrayRef<AffineMap>{id, id},
            llvm::SmallVector<utils::IteratorType>(
                2, utils::IteratorType::parallel),
            [&](OpBuilder &b, Location l, ValueRange args) {
              linalg::YieldOp::create(
                  b, l,
                  Value(arith::TruncIOp::create(b, l, b.getI32Type(),
                                                args[0])));
            })
            .getResult(0);
    expertWeights = weights;
    block.raisedTo = "moe.experts (the router stays plain ops: " +
                     m.routerWhy + ")";
  }
  auto experts = ExpertsOp::create(
      builder, loc, x.getType(), x, expertIds, expertWeights, gate, up, down,
      Value(), Value(), Value(), Value(), Value(), Value(), Value(),
      ActivationAttr::get(ctx, Activation::SwiGLU),
      builder.getF32FloatAttr(1.702f), builder.getF32FloatAttr(7.0f),
      builder.getF32FloatAttr(1.0f));
  values[node.output(0)] = experts.getResult();
  raisedRouters.insert(m.topk);
  raisedExperts[experts] = {m.x, block.node};
  block.raised = true;
  if (blocks)
    blocks->push_back(block);
  return true;
}

void Importer::reportUnraisedRouters() {
  if (!blocks)
    return;
  // Who reads each value.
  llvm::StringMap<llvm::SmallVector<const onnx::NodeProto *>> readers;
  for (const onnx::NodeProto *node : model.nodes())
    for (const std::string &in : node->input())
      readers[in].push_back(node);
  for (const onnx::NodeProto *node : model.nodes()) {
    if (node->op_type() != "TopK" || node->output_size() != 2 ||
        raisedRouters.contains(node))
      continue;
    // Router scores: a softmax or sigmoid (possibly biased) over experts.
    const onnx::NodeProto *src = producer(throughViews(node->input(0))).first;
    if (src && src->op_type() == "Add")
      for (const std::string &in : src->input())
        if (const onnx::NodeProto *p = producer(throughViews(in)).first;
            p && p->op_type() == "Sigmoid")
          src = p;
    if (!src || (src->op_type() != "Softmax" && src->op_type() != "Sigmoid"))
      continue;
    Value scores = lookup(node->input(0));
    auto st = scores ? dyn_cast<RankedTensorType>(scores.getType()) : nullptr;
    if (!st || st.getRank() < 1 || st.isDynamicDim(st.getRank() - 1) ||
        st.getDimSize(st.getRank() - 1) > 1024)
      continue;
    // The ids, through views, pick expert weights or build expert masks.
    llvm::SmallVector<std::string> work = {node->output(1)};
    std::string use;
    for (size_t i = 0; i < work.size() && work.size() < 256 && use.empty();
         ++i)
      for (const onnx::NodeProto *r : readers.lookup(work[i])) {
        const std::string &op = r->op_type();
        if (op == "OneHot" || op == "Equal")
          use = op;
        else if ((op == "Gather" || op == "GatherND") && r->input(1) == work[i] &&
                 model.initializers().count(r->input(0)) &&
                 model.initializers().find(r->input(0))->second.shape.size() == 3)
          use = op + " of 3-D weights";
        else if (op == "Reshape" || op == "Unsqueeze" || op == "Squeeze" ||
                 op == "Flatten" || op == "Cast" || op == "Transpose")
          work.push_back(r->output(0));
      }
    if (use.empty())
      continue;
    ONNXMoEBlock block;
    block.node = model.describe(*node);
    block.form = "TopK expert routing (ids used by " + use + ")";
    block.reason = "the experts are not a form that is raised yet (unrolled "
                   "per-expert subgraphs, dense all-experts products, or "
                   "another gathered form); the block runs as plain ops";
    blocks->push_back(block);
  }
}

bool Importer::raiseSharedExpert(const onnx::NodeProto &node) {
  if (node.input_size() != 2 || node.output_size() != 1)
    return false;
  for (int side = 0; side < 2; ++side) {
    Value routed = lookup(node.input(side));
    // The experts' [T, H] result, possibly reshaped back to [B, S, H].
    auto reshape = routed ? routed.getDefiningOp<tensor::ReshapeOp>() : nullptr;
    Value expertsOut = reshape ? reshape.getSource() : routed;
    auto experts = expertsOut ? expertsOut.getDefiningOp<ExpertsOp>() : nullptr;
    if (!experts || !raisedExperts.count(experts) ||
        experts.getSharedGateWeight())
      continue;
    std::string tokens = throughViews(raisedExperts[experts].first);
    Location loc = locOf(node);
    // A projection of the tokens by an initializer, as moe.experts wants
    // shared weights: [out, in]. Gemm(transB = 1) or MatMul([in, out]).
    auto linear = [&](const std::string &name,
                      const std::string &from) -> Value {
      auto [n, idx] = producer(name);
      if (!n || n->input_size() < 2 ||
          !model.initializers().count(n->input(1)) ||
          throughViews(n->input(0)) != from)
        return nullptr;
      if (n->op_type() == "Gemm" && n->input_size() == 2 &&
          intAttr(*n, "transB", 0) == 1 && intAttr(*n, "transA", 0) == 0 &&
          floatAttr(*n, "alpha").value_or(1.0f) == 1.0f)
        return lookup(n->input(1));
      if (n->op_type() == "MatMul") {
        Value w = lookup(n->input(1));
        auto wt = cast<RankedTensorType>(w.getType());
        if (wt.getRank() != 2)
          return nullptr;
        Value init = tensor::EmptyOp::create(
            builder, loc,
            llvm::ArrayRef<int64_t>{wt.getDimSize(1), wt.getDimSize(0)},
            wt.getElementType());
        return linalg::TransposeOp::create(builder, loc, w, init,
                                           llvm::ArrayRef<int64_t>{1, 0})
            .getResult()[0];
      }
      return nullptr;
    };
    // The other operand: [sigmoid(x w_g) *] down(SiLU(gate x) * up x).
    std::string shared = throughViews(node.input(1 - side));
    Value sharedGate;
    auto [mul, _] = producer(shared);
    std::string mlpOut = shared;
    if (mul && mul->op_type() == "Mul")
      for (int i = 0; i < 2 && !sharedGate; ++i) {
        auto [sig, __] = producer(throughViews(mul->input(i)));
        if (sig && sig->op_type() == "Sigmoid")
          if ((sharedGate = linear(throughViews(sig->input(0)), tokens)))
            mlpOut = throughViews(mul->input(1 - i));
      }
    auto [downNode, ___] = producer(mlpOut);
    if (!downNode || downNode->input_size() < 1)
      continue;
    auto [prod, ____] = producer(throughViews(downNode->input(0)));
    if (!prod || prod->op_type() != "Mul")
      continue;
    Value gate, up, down;
    for (int i = 0; i < 2 && !gate; ++i) {
      auto [silu, s1] = producer(prod->input(i));
      if (!silu || silu->op_type() != "Mul")
        continue;
      for (int j = 0; j < 2; ++j) {
        auto [sig, s2] = producer(silu->input(j));
        if (sig && sig->op_type() == "Sigmoid" &&
            sig->input(0) == silu->input(1 - j)) {
          // Projections are built only once all three are recognised.
          auto [gn, g1] = producer(silu->input(1 - j));
          auto [un, u1] = producer(throughViews(prod->input(1 - i)));
          if (!gn || !un)
            continue;
          gate = linear(silu->input(1 - j), tokens);
          up = gate ? linear(throughViews(prod->input(1 - i)), tokens)
                    : Value();
          if (!up)
            gate = nullptr;
        }
      }
    }
    if (!gate)
      continue;
    // The down projection reads the gated product, not the tokens.
    std::string product = throughViews(downNode->input(0));
    down = linear(mlpOut, product);
    if (!down)
      continue;
    auto gt = cast<RankedTensorType>(gate.getType());
    auto dt = cast<RankedTensorType>(down.getType());
    int64_t hidden = cast<RankedTensorType>(expertsOut.getType()).getDimSize(1);
    if (gt != up.getType() || gt.getDimSize(1) != hidden ||
        dt.getDimSize(0) != hidden || dt.getDimSize(1) != gt.getDimSize(0) ||
        (sharedGate &&
         cast<RankedTensorType>(sharedGate.getType()).getShape() !=
             llvm::ArrayRef<int64_t>{1, hidden}) ||
        lookup(node.input(1 - side)).getType() != routed.getType())
      continue;
    auto fused = ExpertsOp::create(
        builder, loc, experts.getType(), experts.getHidden(),
        experts.getExpertIds(), experts.getExpertWeights(),
        experts.getGateWeight(), experts.getUpWeight(),
        experts.getDownWeight(), experts.getGateBias(), experts.getUpBias(),
        experts.getDownBias(), gate, up, down, sharedGate,
        experts.getActivationAttr(), experts.getAlphaAttr(),
        experts.getLimitAttr(), experts.getBetaAttr());
    // Sizes read from the unfused op (the reshape's shape) are the tokens'
    // sizes (the result has the hidden states' type): read them there, so
    // the unfused op becomes dead.
    experts.getResult().replaceUsesWithIf(
        experts.getHidden(),
        [](OpOperand &use) { return isa<tensor::DimOp>(use.getOwner()); });
    values[node.output(0)] =
        reshape ? Value(tensor::ReshapeOp::create(builder, loc, reshape.getType(),
                                                  fused.getResult(),
                                                  reshape.getShape()))
                : fused.getResult();
    raisedExperts[fused] = raisedExperts[experts];
    if (blocks)
      for (ONNXMoEBlock &b : *blocks)
        if (b.raised && b.node == raisedExperts[experts].second)
          b.raisedTo += sharedGate ? ", with the sigmoid-gated shared expert"
                                   : ", with the shared expert";
    return true;
  }
  return false;
}
