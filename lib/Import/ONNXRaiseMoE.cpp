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

#include <array>
#include <cstring>
#include <map>

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

const onnx::NodeProto *Importer::producerOf(const std::string &name,
                                            llvm::StringRef op, int output) {
  auto [n, i] = producer(name);
  if (!n || n->op_type() != op || (output >= 0 && i != output))
    return nullptr;
  return n;
}

std::optional<std::string> Importer::stackHolding(const std::string &slice,
                                                   int64_t e) {
  auto it = model.initializers().find(slice);
  if (it == model.initializers().end() || it->second.shape.size() != 2)
    return std::nullopt;
  llvm::Expected<llvm::ArrayRef<uint8_t>> bytes =
      model.initializerBytes(slice);
  if (!bytes) {
    llvm::consumeError(bytes.takeError());
    return std::nullopt;
  }
  for (const auto &[name, init] : model.initializers()) {
    if (init.shape.size() != 3 || init.dataType != it->second.dataType ||
        init.shape[1] != it->second.shape[0] ||
        init.shape[2] != it->second.shape[1] || e < 0 || e >= init.shape[0])
      continue;
    llvm::Expected<llvm::ArrayRef<uint8_t>> all =
        model.initializerBytes(name);
    if (!all) {
      llvm::consumeError(all.takeError());
      continue;
    }
    size_t size = bytes->size();
    if (all->size() == size * init.shape[0] &&
        std::memcmp(all->data() + size * e, bytes->data(), size) == 0)
      return name.str();
  }
  return std::nullopt;
}

bool Importer::isZeroTensor(std::string name) {
  for (auto [n, _] = producer(name); n && n->op_type() == "Expand";
       std::tie(n, _) = producer(name))
    name = n->input(0);
  auto init = model.initializers().find(name);
  if (init != model.initializers().end())
    return init->second.inlineData && init->second.byteSize <= 64 &&
           llvm::all_of(llvm::ArrayRef(static_cast<const uint8_t *>(
                                           init->second.inlineData),
                                       init->second.byteSize),
                        [](uint8_t b) { return b == 0; });
  Value v = lookup(name);
  if (auto fill = v ? v.getDefiningOp<linalg::FillOp>() : nullptr)
    v = fill.getInputs()[0];
  auto c = v ? v.getDefiningOp<arith::ConstantOp>() : nullptr;
  if (auto f = c ? dyn_cast<FloatAttr>(c.getValue()) : nullptr)
    return f.getValue().isZero();
  auto dense = c ? dyn_cast<DenseFPElementsAttr>(c.getValue()) : nullptr;
  return dense && dense.isSplat() && dense.getSplatValue<APFloat>().isZero();
}

bool Importer::notRaisedBlock(ONNXMoEBlock &block, const std::string &why) {
  block.reason = why;
  if (blocks)
    blocks->push_back(block);
  return false;
}

std::optional<std::pair<std::string, std::string>>
Importer::matchSiLUProduct(const std::string &name) {
  auto [prodMul, _] = producer(name);
  if (!prodMul || prodMul->op_type() != "Mul" || prodMul->input_size() != 2)
    return std::nullopt;
  // SiLU(g) = g * Sigmoid(g), times the other factor.
  for (int i = 0; i < 2; ++i) {
    auto [silu, s] = producer(prodMul->input(i));
    if (!silu || silu->op_type() != "Mul" || silu->input_size() != 2)
      continue;
    for (int j = 0; j < 2; ++j) {
      auto [sig, t] = producer(silu->input(j));
      if (sig && sig->op_type() == "Sigmoid" &&
          sig->input(0) == silu->input(1 - j))
        return std::make_pair(silu->input(1 - j), prodMul->input(1 - i));
    }
  }
  return std::nullopt;
}

std::optional<std::pair<std::string, bool>>
Importer::matchSwiGLU(const std::string &name) {
  std::optional<std::pair<std::string, std::string>> factors =
      matchSiLUProduct(name);
  if (!factors)
    return std::nullopt;
  auto [gateHalf, upHalf] = *factors;
  // Both halves come from one projection h, by a two-way Split or by two
  // Slices of the last axis, [0, W/2) and [W/2, W).
  auto half = [&](const std::string &value, int &which) -> std::string {
    auto [n, out] = producer(value);
    if (!n)
      return "";
    Value hv = lookup(n->input(0));
    auto type = hv ? dyn_cast<RankedTensorType>(hv.getType()) : nullptr;
    if (!type || type.getRank() < 1 || type.isDynamicDim(type.getRank() - 1))
      return "";
    int64_t rank = type.getRank(), width = type.getDimSize(rank - 1);
    if (n->op_type() == "Split" && n->output_size() == 2) {
      int64_t axis = intAttr(*n, "axis", 0);
      std::optional<llvm::SmallVector<int64_t>> sizes =
          n->input_size() > 1 ? constantInts(n->input(1)) : std::nullopt;
      if ((axis != -1 && axis != rank - 1) ||
          (sizes && (*sizes)[0] != (*sizes)[1]) || width % 2)
        return "";
      which = out;
      return n->input(0);
    }
    if (n->op_type() == "Slice" && n->input_size() >= 4) {
      std::optional<llvm::SmallVector<int64_t>> starts =
          constantInts(n->input(1));
      std::optional<llvm::SmallVector<int64_t>> ends =
          constantInts(n->input(2));
      std::optional<llvm::SmallVector<int64_t>> axes =
          constantInts(n->input(3));
      std::optional<llvm::SmallVector<int64_t>> steps =
          n->input_size() > 4 ? constantInts(n->input(4))
                              : llvm::SmallVector<int64_t>{1};
      if (!starts || !ends || !axes || !steps || starts->size() != 1 ||
          ends->size() != 1 || axes->size() != 1 || (*steps)[0] != 1 ||
          ((*axes)[0] != -1 && (*axes)[0] != rank - 1) || width % 2)
        return "";
      int64_t begin = (*starts)[0], stop = std::min((*ends)[0], width);
      which = begin == 0 && stop == width / 2       ? 0
              : begin == width / 2 && stop == width ? 1
                                                     : -1;
      return n->input(0);
    }
    return "";
  };
  int gateWhich = -1, upWhich = -1;
  std::string h = half(gateHalf, gateWhich);
  if (h.empty() || h != half(upHalf, upWhich) || gateWhich < 0 ||
      upWhich < 0 || gateWhich == upWhich)
    return std::nullopt;
  return std::make_pair(h, gateWhich == 0);
}

namespace mlir::moe::onnximport {
/// What a matcher found of one exported MoE block.
struct RaisedMoE {
  std::string x;               ///< tokens [T, H] (the repeat's input)
  std::string ids, vals;       ///< TopK outputs
  const onnx::NodeProto *topk = nullptr;
  std::string weights;         ///< the per-(token, slot) weights, [T, k]
  std::string gateUp, down;    ///< initializers [E, 2I, H], [E, H, I]
  Value gateUpValue, downValue; ///< or stacks built from per-expert ones
  Value gateValue, upValue;     ///< or separate gate and up stacks
  bool gateFirst = true;       ///< SiLU on the first half of gate_up
  // The router, when it is Softmax(x W^T) -> TopK [-> / ReduceSum].
  std::string router;          ///< initializer, [E, H] or [H, E]
  bool routerTransposed = false; ///< stored [H, E] (MatMul form)
  std::string logits;            ///< the router projection's output
  bool renormalize = false;
  bool sigmoid = false;        ///< sigmoid scores (else softmax)
  std::string selectionBias;   ///< initializer added before selection
  int64_t nGroup = 1, topkGroup = 1;
  float scale = 1.0f;          ///< routed_scaling_factor
  float renormEps = 0.0f;      ///< added to the renormalising sum
  std::string routerWhy;       ///< why the router was not recognised
};
} // namespace mlir::moe::onnximport

bool Importer::raiseGatheredMoE(const onnx::NodeProto &node) {
  // --- The block's shape: ReduceSum(Reshape(Mul(down-projection, w))) ----
  if (node.input_size() < 1 || node.output_size() != 1)
    return false;
  const onnx::NodeProto *mul = producerOf(throughViews(node.input(0)), "Mul");
  if (!mul || mul->input_size() != 2)
    return false;
  // One Mul operand is the down projection of gathered weights.
  const onnx::NodeProto *downMM = nullptr;
  std::string weightsName;
  for (int i = 0; i < 2 && !downMM; ++i)
    if ((downMM = producerOf(throughViews(mul->input(i)), "MatMul")))
      weightsName = mul->input(1 - i);
  if (!downMM)
    return false;
  auto gatheredInit = [&](const std::string &name,
                          std::string &indices) -> std::string {
    auto [g, idx] = producer(name);
    if (!g || g->input_size() != 2 || !isInitializer(g->input(0)))
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
  RaisedMoE m;
  std::string downIdx, guIdx;
  m.down = gatheredInit(downMM->input(0), downIdx);
  if (m.down.empty())
    return false;
  // From here on it is an MoE block: report what stops raising.
  ONNXMoEBlock block;
  block.node = model.describe(node);
  block.form = "gathered expert weights (torch.onnx.export batched_mm)";
  auto notRaised = [&](const std::string &why) {
    return notRaisedBlock(block, why);
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
  std::optional<std::pair<std::string, bool>> glu =
      matchSwiGLU(throughViews(downMM->input(1)));
  if (!glu)
    return notRaised("the down projection's input is not SiLU(gate) * up, "
                     "the two halves of one projection");
  std::string h = glu->first;
  m.gateFirst = glu->second;
  const onnx::NodeProto *guMM = producerOf(throughViews(h), "MatMul");
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
  const onnx::NodeProto *unsq = producerOf(repNode->input(0), "Unsqueeze");
  std::optional<llvm::SmallVector<int64_t>> unsqAxes =
      unsq && unsq->input_size() > 1 ? constantInts(unsq->input(1))
                                     : std::nullopt;
  if (!unsq || !unsqAxes || *unsqAxes != llvm::SmallVector<int64_t>{1})
    return notRaised("the tokens are not repeated token by token");
  m.x = unsq->input(0);
  // The weights: the other Mul operand, followed back to its [T, k] form.
  m.weights = routingWeightsOf(weightsName);
  return raiseMatchedMoE(node, m, block);
}

std::string Importer::routingWeightsOf(const std::string &factor) {
  std::string at = factor;
  for (int guard = 0; guard < 16; ++guard) {
    Value v = lookup(at);
    auto t = v ? dyn_cast<RankedTensorType>(v.getType()) : nullptr;
    if (t && t.getRank() == 2 && !t.isDynamicDim(1) && t.getDimSize(1) > 1)
      break;
    const onnx::NodeProto *n = producer(at).first;
    // Gathers pick (token, slot) entries of the weights: the unrolled form
    // reads w[token_idx, top_k_pos] from the flattened [T * k] weights.
    if (!n || !llvm::is_contained({"Reshape", "Unsqueeze", "Flatten",
                                   "Gather", "GatherND", "Expand", "Cast"},
                                  n->op_type()))
      break;
    at = n->input(0);
  }
  return at;
}

bool Importer::raiseMatchedMoE(const onnx::NodeProto &node, RaisedMoE &m,
                               ONNXMoEBlock &block) {
  auto notRaised = [&](const std::string &why) {
    return notRaisedBlock(block, why);
  };
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
    if (const onnx::NodeProto *div = producerOf(src, "Div")) {
      // a / sum(a), or a / (sum(a) + eps)
      std::string denominator = div->input(1);
      float eps = 0.0f;
      if (const onnx::NodeProto *add = producerOf(denominator, "Add"))
        for (int i = 0; i < 2; ++i)
          if (std::optional<float> e = scalar(add->input(i))) {
            eps = *e;
            denominator = add->input(1 - i);
            break;
          }
      const onnx::NodeProto *sum = producerOf(denominator, "ReduceSum");
      if (sum && sum->input(0) == div->input(0)) {
        m.renormalize = true;
        m.renormEps = eps;
        src = throughViews(div->input(0));
      }
    }
  };
  const onnx::NodeProto *scores = nullptr; // the Softmax or Sigmoid
  if (const onnx::NodeProto *mulScale = producerOf(weightsSrc, "Mul")) {
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
    scores = producerOf(throughViews(m.topk->input(0)), "Softmax");
    if (!scores || intAttr(*scores, "axis", -1) != -1)
      m.routerWhy = "the scores are not a Softmax over the experts";
  } else if (const onnx::NodeProto *gather =
                 producerOf(weightsSrc, "GatherElements")) {
    // Sigmoid form: weights = Sigmoid(logits)[ids].
    scores = producerOf(throughViews(gather->input(0)), "Sigmoid");
    if (!scores || intAttr(*gather, "axis", 0) != 1 ||
        throughViews(gather->input(1)) != m.ids)
      m.routerWhy = "the routing weights are gathered from something other "
                    "than the sigmoid scores at the chosen ids";
    m.sigmoid = true;
    std::string sigmoidOut = gather->input(0);
    // What TopK selects on: the scores (+ bias), maybe with groups masked.
    std::string sel = throughViews(m.topk->input(0));
    std::string choice = sel;
    if (const onnx::NodeProto *where = producerOf(sel, "Where")) {
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
              ? producerOf(groupSum->input(0), "TopK", 0)
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
    if (const onnx::NodeProto *add = producerOf(choice, "Add")) {
      for (int i = 0; i < 2; ++i)
        if (throughViews(add->input(i)) == throughViews(sigmoidOut) &&
            isInitializer(add->input(1 - i)))
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
    if ((!gemm && !matmul) || !isInitializer(lin->input(1)) ||
        throughViews(lin->input(0)) != throughViews(m.x))
      m.routerWhy = "the logits are not x times an initializer";
    else
      m.router = lin->input(1), m.routerTransposed = matmul,
      m.logits = lin->output(0);
  }

  // --- Shapes -----------------------------------------------------------
  Value x = lookup(m.x);
  // Separate gate and up stacks, or one [E, 2I, H] stack of both.
  bool separate = m.gateValue && m.upValue;
  Value gateUp = separate         ? m.gateValue
                 : m.gateUpValue ? m.gateUpValue
                                 : lookup(m.gateUp);
  Value down = m.downValue ? m.downValue : lookup(m.down);
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
  int64_t inter = dt.getDimSize(2);
  int64_t k = it.getDimSize(1);
  Type et = xt.getElementType();
  if (ShapedType::isDynamic(hidden) || ShapedType::isDynamic(k) ||
      gut.getDimSize(1) != (separate ? inter : 2 * inter) ||
      gut.getDimSize(2) != hidden ||
      (separate && m.upValue.getType() != gut) ||
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
  Value gate = separate ? m.gateValue : rows(m.gateFirst ? 0 : inter);
  Value up = separate ? m.upValue : rows(m.gateFirst ? inter : 0);
  auto idsType = RankedTensorType::get({xt.getDimSize(0), k},
                                       builder.getI32Type());
  Value expertIds, expertWeights;
  if (m.routerWhy.empty()) {
    Value router = lookup(m.router);
    if (m.routerTransposed &&
        cast<RankedTensorType>(router.getType()).getRank() == 2)
      router = lookupTransposed(m.router, loc);
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
    Value logits = lookup(m.logits);
    bool roundLogits =
        logits &&
        !cast<RankedTensorType>(logits.getType()).getElementType().isF32();
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
        builder.getF32FloatAttr(m.renormEps), builder.getF32FloatAttr(m.scale),
        // Logits the graph computes in bf16/f16 are rounded (DeepSeek's
        // exports cast to f32 first).
        roundLogits ? builder.getUnitAttr() : UnitAttr());

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
  for (const onnx::NodeProto *node : model.nodes()) {
    if (node->op_type() != "TopK" || node->output_size() != 2 ||
        raisedRouters.contains(node) || reportedRouters.contains(node))
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
      for (const onnx::NodeProto *r : readers(work[i])) {
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
        if (cast<RankedTensorType>(w.getType()).getRank() != 2)
          return nullptr;
        return lookupTransposed(n->input(1), loc);
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

//===----------------------------------------------------------------------===//
// Unrolled per-expert subgraphs
//===----------------------------------------------------------------------===//
//
// transformers' eager experts (and optimum's patched loops) run
//
//   for e in experts:
//     pos, tok = torch.where(expert_mask[e])          # slots routed to e
//     y = down_e(SiLU(gate_e(x[tok])) * up_e(x[tok])) * w[tok, pos]
//     out.index_add_(0, tok, y)
//
// which the tracer unrolls: one subgraph per expert, with weights gathered
// from the [E, 2I, H] / [E, H, I] stacks at e, and index_add_ written as
// acc + ScatterElements(zeros, tok, y) (TorchScript) or
// ScatterND(acc, tok, y, reduction = add). Matching starts at the last
// accumulation and walks the chain back to the zeros it starts from. Each
// step must read the same tokens, routing weights and TopK, and together
// the steps must cover every expert once; the block is then exactly
// moe.experts over that router. The loop over only the experts that were
// hit (transformers' `expert_hit`) is unrolled with expert e at the i-th
// of the hit experts: when the trace hit every expert that is e = i, and
// raising makes the graph right for inputs that hit fewer. When the trace
// hit fewer, subgraphs are missing and the block cannot be raised.

namespace {
/// One index_add_ of the chain.
struct AccumulateStep {
  std::string acc;     ///< what is added to
  std::string tokens;  ///< the 1-D token indices
  std::string updates; ///< the rows added
};
} // namespace

const llvm::SmallVector<const onnx::NodeProto *> &
Importer::readers(const std::string &name) {
  if (readerMap.empty())
    for (const onnx::NodeProto *node : model.nodes())
      for (const std::string &in : node->input())
        readerMap[in].push_back(node);
  static const llvm::SmallVector<const onnx::NodeProto *> none;
  auto it = readerMap.find(name);
  return it == readerMap.end() ? none : it->second;
}

bool Importer::raiseUnrolledMoE(const onnx::NodeProto &node) {
  // The step `n` is, if it is one.
  auto stepOf = [&](const onnx::NodeProto *n) -> std::optional<AccumulateStep> {
    if (!n || n->output_size() != 1)
      return std::nullopt;
    auto scatterRows = [&](const onnx::NodeProto *s) {
      return s->input_size() == 3 &&
             ((s->op_type() == "ScatterElements" &&
               intAttr(*s, "axis", 0) == 0) ||
              s->op_type() == "ScatterND");
    };
    if (n->op_type() == "Add" && n->input_size() == 2) {
      for (int i = 0; i < 2; ++i) {
        auto [s, _] = producer(n->input(i));
        if (s && scatterRows(s) &&
            stringAttr(*s, "reduction", "none") == "none" &&
            isZeroTensor(s->input(0)))
          return AccumulateStep{n->input(1 - i), s->input(1), s->input(2)};
      }
      return std::nullopt;
    }
    if (scatterRows(n) && stringAttr(*n, "reduction", "none") == "add")
      return AccumulateStep{n->input(0), n->input(1), n->input(2)};
    return std::nullopt;
  };
  std::optional<AccumulateStep> last = stepOf(&node);
  if (!last)
    return false;
  // Only the chain's last step raises it. Readers are not imported yet, so
  // this looks at their form only.
  for (const onnx::NodeProto *r : readers(node.output(0))) {
    if (llvm::is_contained({"ScatterND", "ScatterElements"}, r->op_type()) &&
        r->input(0) == node.output(0) &&
        stringAttr(*r, "reduction", "none") == "add")
      return false;
    if (r->op_type() == "Add" && r->input_size() == 2)
      for (const std::string &in : r->input())
        if (auto [s, _] = producer(in);
            in != node.output(0) && s &&
            llvm::is_contained({"ScatterND", "ScatterElements"},
                               s->op_type()))
          return false;
  }
  llvm::SmallVector<AccumulateStep> steps = {*last};
  while (steps.size() < 4096) {
    std::optional<AccumulateStep> prev = stepOf(producer(steps.back().acc).first);
    if (!prev)
      break;
    steps.push_back(*prev);
  }
  if (steps.size() < 2 || !isZeroTensor(steps.back().acc))
    return false;
  std::reverse(steps.begin(), steps.end());

  RaisedMoE m;
  ONNXMoEBlock block;
  block.node = model.describe(node);
  block.form = llvm::formatv("unrolled per-expert subgraphs ({0} index_add_ "
                             "steps; torch.onnx.export of eager experts)",
                             steps.size());
  auto notRaised = [&](const std::string &why) {
    if (m.topk)
      reportedRouters.insert(m.topk);
    return notRaisedBlock(block, why);
  };
  auto stripped = [&](std::string name,
                      std::initializer_list<llvm::StringRef> ops) {
    for (int guard = 0; guard < 16; ++guard) {
      auto [n, _] = producer(name);
      if (!n || n->input_size() < 1 || !llvm::is_contained(ops, n->op_type()))
        break;
      name = n->input(0);
    }
    return name;
  };
  auto ints = [&](const std::string &name) -> std::optional<int64_t> {
    std::optional<llvm::SmallVector<int64_t>> c = constantInts(name);
    if (!c || c->size() != 1)
      return std::nullopt;
    return (*c)[0];
  };
  // Column `col` of NonZero(mask)^T (torch.where's pos and tok), taken by a
  // two-way Split or a one-column Slice: the NonZero node, or null.
  auto nonzeroColumn = [&](const std::string &name,
                           int &col) -> const onnx::NodeProto * {
    auto [n, out] = producer(stripped(name, {"Squeeze"}));
    if (!n || n->input_size() < 1)
      return nullptr;
    if (n->op_type() == "Split" && n->output_size() == 2 &&
        llvm::is_contained({1, -1}, intAttr(*n, "axis", 0))) {
      col = out;
    } else if (n->op_type() == "Slice" && n->input_size() >= 4) {
      std::optional<int64_t> begin = ints(n->input(1)),
                             end = ints(n->input(2)), axis = ints(n->input(3));
      if (!begin || !end || !axis || *end != *begin + 1 ||
          (*axis != 1 && *axis != -1) || *begin < 0 || *begin > 1)
        return nullptr;
      col = *begin;
    } else {
      return nullptr;
    }
    auto [t, _] = producer(n->input(0));
    if (!t || t->op_type() != "Transpose" ||
        intsAttr(*t, "perm") != llvm::SmallVector<int64_t>{1, 0})
      return nullptr;
    auto [nz, __] = producer(t->input(0));
    return nz && nz->op_type() == "NonZero" ? nz : nullptr;
  };
  // Rows `tok` of a [T, H] value: Gather(axis 0) or GatherND of [n, 1].
  auto gatheredRows = [&](const std::string &name,
                          std::string &tok) -> std::string {
    auto [g, _] = producer(name);
    if (g && g->op_type() == "Gather" && intAttr(*g, "axis", 0) == 0) {
      tok = stripped(g->input(1), {"Unsqueeze", "Reshape", "Cast"});
      return g->input(0);
    }
    if (g && g->op_type() == "GatherND" && intAttr(*g, "batch_dims", 0) == 0) {
      tok = stripped(g->input(1), {"Unsqueeze", "Reshape", "Cast"});
      return g->input(0);
    }
    return "";
  };
  // One expert's projection `name` = input x W_e. W_e is a weight stack
  // gathered at the expert, or one 2-D initializer per expert, [out, in]
  // (Linear's layout: Gemm transB = 1, or MatMul of its Transpose) or
  // [in, out] (what TorchScript's constant folding leaves for MatMul).
  struct Projection {
    std::string input;  ///< what is projected
    std::string weight; ///< the stack or the 2-D initializer
    std::string index;  ///< the stack's gather index (empty for 2-D)
    bool inOut = false; ///< a 2-D initializer stored [in, out]
    int64_t folded = -1; ///< a 2-D copy of slice `folded` of the stack
  };
  auto projection = [&](const std::string &name) -> std::optional<Projection> {
    auto [mm, _] = producer(name);
    if (!mm || mm->input_size() < 2)
      return std::nullopt;
    bool transB;
    if (mm->op_type() == "MatMul") {
      transB = false;
    } else if (mm->op_type() == "Gemm" && mm->input_size() == 2 &&
               intAttr(*mm, "transA", 0) == 0 &&
               floatAttr(*mm, "alpha").value_or(1.0f) == 1.0f) {
      transB = intAttr(*mm, "transB", 0) == 1;
    } else {
      return std::nullopt;
    }
    Projection p{mm->input(0), "", "", false};
    std::string b = mm->input(1);
    if (!transB) {
      // MatMul(a, B): B = W^T, by a Transpose or stored so.
      auto [t, __] = producer(b);
      if (t && t->op_type() == "Transpose" &&
          intsAttr(*t, "perm") == llvm::SmallVector<int64_t>{1, 0}) {
        b = t->input(0);
      } else if (model.initializers().count(b) &&
                 model.initializers().find(b)->second.shape.size() == 2) {
        p.weight = b;
        p.inOut = true;
        return p;
      } else {
        return std::nullopt;
      }
    }
    auto [g, ___] = producer(b);
    if (g && g->op_type() == "Gather" && intAttr(*g, "axis", 0) == 0 &&
        model.initializers().count(g->input(0)) &&
        model.initializers().find(g->input(0))->second.shape.size() == 3) {
      p.weight = g->input(0);
      p.index = g->input(1);
      return p;
    }
    if (model.initializers().count(b) &&
        model.initializers().find(b)->second.shape.size() == 2) {
      p.weight = b;
      return p;
    }
    return std::nullopt;
  };
  // Which expert an index value is: a constant, or the j-th of a Split of
  // the hit-expert list into `count` parts.
  auto expertIndex = [&](const std::string &name, int64_t &count)
      -> std::optional<int64_t> {
    if (std::optional<int64_t> c = ints(name))
      return c;
    std::string at = name;
    for (int guard = 0; guard < 8; ++guard) {
      auto [n, out] = producer(at);
      if (!n)
        return std::nullopt;
      if (n->op_type() == "Split") {
        count = n->output_size();
        return out;
      }
      if (n->op_type() == "Gather") {
        if (ints(n->input(1)) != 0)
          return std::nullopt;
      } else if (!llvm::is_contained({"Squeeze", "Reshape", "Unsqueeze"},
                                     n->op_type())) {
        return std::nullopt;
      }
      at = n->input(0);
    }
    return std::nullopt;
  };
  // The mask NonZero reads: one_hot(ids)^T [E, k, T] at e, with one_hot an
  // OneHot or Cast(Equal(Unsqueeze(ids), arange(E))) (token second); or
  // ids == e [T, k] (token first). Sets the ids, the mask's expert index
  // and the NonZero column that holds tokens.
  auto maskOf = [&](const onnx::NodeProto *nonzero, std::string &ids,
                    std::string &index, int &tokenColumn) {
    auto [mask, _] = producer(stripped(nonzero->input(0), {"Cast"}));
    if (mask && mask->op_type() == "Gather" && intAttr(*mask, "axis", 0) == 0) {
      auto [t, __] = producer(mask->input(0));
      if (!t || t->op_type() != "Transpose" ||
          intsAttr(*t, "perm") != llvm::SmallVector<int64_t>{2, 1, 0})
        return false;
      auto [oh, ___] = producer(stripped(t->input(0), {"Cast"}));
      if (oh && oh->op_type() == "OneHot") {
        ids = throughViews(oh->input(0));
      } else if (oh && oh->op_type() == "Equal") {
        for (int i = 0; i < 2 && ids.empty(); ++i) {
          std::optional<llvm::SmallVector<int64_t>> range =
              constantInts(oh->input(1 - i));
          bool arange = range && !range->empty();
          for (int64_t j = 0; arange && j < (int64_t)range->size(); ++j)
            arange = (*range)[j] == j;
          if (arange)
            ids = throughViews(oh->input(i));
        }
      }
      index = mask->input(1);
      tokenColumn = 1;
      return !ids.empty();
    }
    if (mask && mask->op_type() == "Equal") {
      for (int i = 0; i < 2 && ids.empty(); ++i)
        if (ints(mask->input(1 - i))) {
          ids = throughViews(mask->input(i));
          index = mask->input(1 - i);
        }
      tokenColumn = 0;
      return !ids.empty();
    }
    return false;
  };

  // Per expert (by id): the 2-D gate/up and down initializers, when the
  // export has one per expert.
  llvm::SmallVector<int64_t> experts;
  std::map<int64_t, std::array<std::string, 3>> perExpert;
  // Per role (gate or gate/up, up, down), from the first step: whether it
  // is a stack gathered at each expert (named names0) or 2-D initializers,
  // and their layout.
  std::array<std::string, 3> names0;
  std::array<bool, 3> roleStack = {false, false, false};
  std::array<bool, 3> roleInOut = {false, false, false};
  bool separate = false;
  int64_t splitCount = -1;
  for (const AccumulateStep &step : steps) {
    std::string tokens =
        stripped(step.tokens, {"Expand", "Unsqueeze", "Reshape", "Cast"});
    // tok, pos = torch.where(mask_e)
    int tokCol = -1, tokenColumn = -1;
    const onnx::NodeProto *nonzero = nonzeroColumn(tokens, tokCol);
    std::string stepIds, maskIndex;
    if (!nonzero || !maskOf(nonzero, stepIds, maskIndex, tokenColumn) ||
        tokCol != tokenColumn)
      return notRaised("an expert's rows are not the token column of "
                       "torch.where(one_hot(ids)[e]) or torch.where(ids == e)");
    if (!m.topk) {
      auto [topk, out] = producer(stepIds);
      if (!topk || topk->op_type() != "TopK" || out != 1)
        return notRaised("the expert masks are not built from TopK's ids");
      m.topk = topk;
      m.ids = stepIds;
      m.vals = topk->output(0);
    } else if (stepIds != m.ids) {
      return notRaised("the per-expert subgraphs do not share one router");
    }
    int64_t count = -1;
    std::optional<int64_t> e = expertIndex(maskIndex, count);
    if (!e)
      return notRaised("an expert's mask is not for an expert known while "
                       "importing");
    if (count >= 0)
      splitCount = count;
    // y * w[tok, pos]
    std::string updates = stripped(step.updates, {"Expand", "Cast", "Reshape"});
    auto [mul, _] = producer(updates);
    std::optional<Projection> down;
    std::string factor;
    for (int i = 0; mul && mul->op_type() == "Mul" && i < 2 && !down; ++i)
      if ((down = projection(throughViews(mul->input(i)))))
        factor = mul->input(1 - i);
    // SiLU(gate) * up: halves of one projection, or two projections
    // (transformers v4's gate_proj and up_proj).
    std::optional<std::pair<std::string, bool>> glu =
        down ? matchSwiGLU(throughViews(down->input)) : std::nullopt;
    std::optional<Projection> gateUp =
        glu ? projection(throughViews(glu->first)) : std::nullopt;
    std::optional<Projection> up;
    if (down && !gateUp)
      if (std::optional<std::pair<std::string, std::string>> factors =
              matchSiLUProduct(throughViews(down->input))) {
        gateUp = projection(throughViews(factors->first));
        up = gateUp ? projection(throughViews(factors->second))
                    : std::nullopt;
        if (!up)
          gateUp.reset();
      }
    if (!down || !gateUp)
      return notRaised("an index_add_ step does not add down(SiLU(gate) * "
                       "up) of expert weights times a routing weight");
    // Each weight of the step: its stack gathered at the mask's expert, or
    // a 2-D initializer (each role keeps one form and layout over steps).
    std::array<Projection *, 3> roles = {&*gateUp, up ? &*up : nullptr,
                                         &*down};
    bool consistent = true;
    for (int r = 0; r < 3; ++r) {
      Projection *p = roles[r];
      if (!p)
        continue;
      // Exporters' optimizers fold some Gather(stack, e) into 2-D copies
      // (onnxscript does): where the role is a stack, such a copy is read
      // as the stack whose slice e holds the same bytes.
      if (p->index.empty() && !p->inOut && roleStack[r] &&
          stackHolding(p->weight, *e) == names0[r]) {
        p->weight = names0[r];
        p->folded = *e;
      }
      bool isStack = !p->index.empty() || p->folded >= 0;
      // The first steps' 2-D weights may be the folded copies of the stack
      // this one reads.
      if (isStack && !experts.empty() && !roleStack[r] && !roleInOut[r] &&
          llvm::all_of(perExpert, [&](auto &entry) {
            return stackHolding(entry.second[r], entry.first) == p->weight;
          })) {
        roleStack[r] = true;
        names0[r] = p->weight;
      }
      if (experts.empty()) {
        roleStack[r] = isStack;
        roleInOut[r] = p->inOut;
        names0[r] = p->weight;
      }
      consistent &= isStack == roleStack[r];
      if (isStack)
        consistent &= p->weight == names0[r] &&
                      (p->folded == *e || expertIndex(p->index, count) == e);
      else
        consistent &= p->inOut == roleInOut[r];
      for (int q = 0; q < r; ++q)
        consistent &= !roles[q] || roles[q]->weight != p->weight;
    }
    if (!consistent)
      return notRaised("an expert's weights are not its mask's expert's "
                       "slices of the stacks the other experts read, or "
                       "distinct 2-D initializers of one layout");
    std::string rowTokens, upTokens;
    std::string x = gatheredRows(gateUp->input, rowTokens);
    if (x.empty() || rowTokens != tokens ||
        (up && (gatheredRows(up->input, upTokens) != x || upTokens != tokens)))
      return notRaised("an expert's tokens are not the rows it adds to");
    std::string weights = routingWeightsOf(factor);
    std::array<std::string, 3> names = {gateUp->weight,
                                        up ? up->weight : "", down->weight};
    if (experts.empty()) {
      m.x = x;
      m.gateFirst = !glu || glu->second;
      m.weights = weights;
      m.gateUp = gateUp->weight;
      m.down = down->weight;
      separate = up.has_value();
    } else if (x != m.x || (glu && glu->second != m.gateFirst) ||
               separate != up.has_value() || weights != m.weights) {
      return notRaised("the per-expert subgraphs do not share one token "
                       "set and routing weights");
    }
    if (!perExpert.emplace(*e, names).second)
      return notRaised(llvm::formatv("expert {0} has two subgraphs", *e));
    experts.push_back(*e);
  }
  // The number of experts: a stack's, or the mask's one_hot depth.
  int64_t numExperts = -1;
  if (llvm::is_contained(roleStack, true)) {
    int r = llvm::find(roleStack, true) - roleStack.begin();
    Value w = lookup(names0[r]);
    numExperts = w ? cast<RankedTensorType>(w.getType()).getDimSize(0) : -1;
  } else {
    Value scores = lookup(m.topk->input(0));
    auto st = scores ? dyn_cast<RankedTensorType>(scores.getType()) : nullptr;
    if (st && st.getRank() >= 1)
      numExperts = st.getDimSize(st.getRank() - 1);
  }
  if (splitCount >= 0 && splitCount != numExperts)
    return notRaised(llvm::formatv(
        "the export loops over the {0} experts its example input hit, of "
        "{1}: the graph holds no subgraph for the others",
        splitCount, numExperts));
  llvm::SmallVector<int64_t> sorted(experts);
  llvm::sort(sorted);
  for (int64_t i = 0; i < (int64_t)sorted.size(); ++i)
    if (sorted.size() != (size_t)numExperts || sorted[i] != i)
      return notRaised(llvm::formatv(
          "the {0} subgraphs do not cover each of the {1} experts once",
          sorted.size(), numExperts));
  // The weights as [E, out, in]: the stacks, or the per-expert
  // initializers stacked in expert order (and transposed if [in, out]).
  Location loc = locOf(node);
  auto stack = [&](int which) -> Value {
    if (roleStack[which])
      return lookup(names0[which]);
    std::vector<llvm::StringRef> names;
    for (auto &[e, perWeight] : perExpert)
      names.push_back(perWeight[which]);
    Value first = lookup(names.front().str());
    auto t = first ? dyn_cast<RankedTensorType>(first.getType()) : nullptr;
    if (!t)
      return nullptr;
    for (llvm::StringRef name : names)
      if (Value v = lookup(name.str()); !v || v.getType() != t)
        return nullptr;
    Value stacked = StackedWeightOp::create(
        builder, loc,
        RankedTensorType::get({numExperts, t.getDimSize(0), t.getDimSize(1)},
                              t.getElementType()),
        builder.getStrArrayAttr(names));
    if (!roleInOut[which])
      return stacked;
    Value init = tensor::EmptyOp::create(
        builder, loc,
        llvm::ArrayRef<int64_t>{numExperts, t.getDimSize(1), t.getDimSize(0)},
        t.getElementType());
    return linalg::TransposeOp::create(builder, loc, stacked, init,
                                       llvm::ArrayRef<int64_t>{0, 2, 1})
        .getResult()[0];
  };
  if (separate) {
    m.gateValue = stack(0);
    m.upValue = stack(1);
  } else {
    m.gateUpValue = stack(0);
  }
  m.downValue = stack(2);
  if ((separate ? !m.gateValue || !m.upValue : !m.gateUpValue) ||
      !m.downValue)
    return notRaised("the experts' 2-D initializers differ in shape or type");
  return raiseMatchedMoE(node, m, block);
}

//===----------------------------------------------------------------------===//
// Dense all-experts products
//===----------------------------------------------------------------------===//
//
// optimum-onnx's GPT-OSS patch runs every expert on every token and weights
// the results by the dense routing matrix:
//
//   R  = zeros[T, E].scatter(1, ids, w)                 (ScatterElements)
//   xr = x.repeat(E, 1).view(E, T, H)                   (Tile or Expand)
//   h  = bmm(xr, W_gu^T);  a = SiLU(h[..., :I]) * h[..., I:]
//   y  = sum_e bmm(a, W_d^T)[e] * R^T[e, :, None]       (ReduceSum axis 0)
//
// Rows of R are zero outside each token's k experts, so this is moe.experts
// over the same ids and weights at k/E of the work. The [E, in, out] stacks
// that MatMul wants (TorchScript folds the transposes into initializers) are
// transposed back to [E, out, in].

bool Importer::raiseDenseMoE(const onnx::NodeProto &node) {
  if (node.input_size() < 1 || node.output_size() != 1)
    return false;
  std::optional<llvm::SmallVector<int64_t>> axes =
      node.input_size() > 1 ? constantInts(node.input(1)) : std::nullopt;
  if (const onnx::AttributeProto *attr = findAttr(node, "axes"))
    axes = llvm::SmallVector<int64_t>(attr->ints().begin(), attr->ints().end());
  if (!axes || *axes != llvm::SmallVector<int64_t>{0} ||
      intAttr(node, "keepdims", 1) != 0)
    return false;
  auto [mul, _] = producer(throughViews(node.input(0)));
  if (!mul || mul->op_type() != "Mul" || mul->input_size() != 2)
    return false;
  // An [E, T, out] product of an [E, ., .] initializer: the initializer and
  // whether it is stored [E, in, out] (else a Transpose of [E, out, in]).
  auto stackProduct = [&](const std::string &name, std::string &input,
                          bool &inOut) -> std::string {
    auto [mm, __] = producer(name);
    if (!mm || mm->op_type() != "MatMul")
      return "";
    input = mm->input(0);
    std::string b = mm->input(1);
    auto [t, ___] = producer(b);
    if (t && t->op_type() == "Transpose" &&
        intsAttr(*t, "perm") == llvm::SmallVector<int64_t>{0, 2, 1}) {
      b = t->input(0);
      inOut = false;
    } else {
      inOut = true;
    }
    auto init = model.initializers().find(b);
    return init != model.initializers().end() && init->second.shape.size() == 3
               ? b
               : "";
  };
  std::string act, gateUp, down;
  bool downInOut = false, gateUpInOut = false;
  std::string routingView;
  for (int i = 0; i < 2 && down.empty(); ++i)
    if (!(down = stackProduct(throughViews(mul->input(i)), act, downInOut))
             .empty())
      routingView = mul->input(1 - i);
  if (down.empty())
    return false;
  // R^T viewed as [E, T, 1], broadcast over the hidden size.
  std::string routing = throughViews(routingView);
  Value rv = lookup(routingView);
  auto rvt = rv ? dyn_cast<RankedTensorType>(rv.getType()) : nullptr;
  if (!rvt || rvt.getRank() != 3 || rvt.getDimSize(2) != 1)
    return false;
  // R^T: the dense routing matrix, transposed.
  auto [rt, __] = producer(routing);
  auto [scatter, ___] =
      rt && rt->op_type() == "Transpose" &&
              intsAttr(*rt, "perm") == llvm::SmallVector<int64_t>{1, 0}
          ? producer(rt->input(0))
          : std::pair<const onnx::NodeProto *, int>{};
  if (!scatter || scatter->op_type() != "ScatterElements" ||
      intAttr(*scatter, "axis", 0) != 1 ||
      stringAttr(*scatter, "reduction", "none") != "none")
    return false;
  // From here on it is an MoE block: report what stops raising.
  RaisedMoE m;
  ONNXMoEBlock block;
  block.node = model.describe(node);
  block.form = "dense all-experts products (every expert on every token, "
               "weighted by the dense routing matrix)";
  auto notRaised = [&](const std::string &why) {
    if (m.topk)
      reportedRouters.insert(m.topk);
    return notRaisedBlock(block, why);
  };
  auto [topk, idsOut] = producer(throughViews(scatter->input(1)));
  if (!topk || topk->op_type() != "TopK" || idsOut != 1)
    return notRaised("the routing matrix is not scattered at TopK's ids");
  m.topk = topk;
  m.ids = topk->output(1);
  m.vals = topk->output(0);
  m.weights = routingWeightsOf(scatter->input(2));
  if (!isZeroTensor(scatter->input(0)))
    return notRaised("the routing matrix is not scattered into zeros");
  std::optional<std::pair<std::string, bool>> glu =
      matchSwiGLU(throughViews(act));
  std::string repeated;
  if (!glu ||
      (gateUp = stackProduct(throughViews(glu->first), repeated, gateUpInOut))
          .empty())
    return notRaised("the experts are not down(SiLU(gate) * up) by batched "
                     "MatMuls with [E, ., .] initializers");
  m.gateFirst = glu->second;
  // xr: every token once per expert.
  std::string tiled = throughViews(repeated);
  auto [rep, ____] = producer(tiled);
  if (rep && rep->op_type() == "Tile") {
    std::optional<llvm::SmallVector<int64_t>> reps =
        constantInts(rep->input(1));
    Value gu = lookup(gateUp);
    int64_t e = gu ? cast<RankedTensorType>(gu.getType()).getDimSize(0) : -1;
    // [E * T, H] viewed as [E, T, H]: block e is x.
    Value viewed = lookup(repeated);
    auto vt = viewed ? dyn_cast<RankedTensorType>(viewed.getType()) : nullptr;
    if (!reps || reps->size() != 2 || (*reps)[0] != e || (*reps)[1] != 1 ||
        !vt || vt.getRank() != 3 || vt.getDimSize(0) != e)
      return notRaised("the tokens are not tiled once per expert");
    m.x = rep->input(0);
    if (auto [ex, _5] = producer(m.x); ex && ex->op_type() == "Expand")
      m.x = ex->input(0); // a broadcast to its own shape
  } else if (rep && rep->op_type() == "Expand") {
    // Unsqueeze(x, 0) broadcast to [E, T, H]
    auto [unsq, _6] = producer(rep->input(0));
    if (!unsq || unsq->op_type() != "Unsqueeze" || unsq->input_size() < 2 ||
        constantInts(unsq->input(1)) != llvm::SmallVector<int64_t>{0})
      return notRaised("the tokens are not repeated once per expert");
    m.x = unsq->input(0);
  } else {
    return notRaised("the tokens are not repeated once per expert");
  }
  Value x = lookup(m.x);
  auto xt = x ? dyn_cast<RankedTensorType>(x.getType()) : nullptr;
  Value summed = lookup(node.input(0));
  auto st = summed ? dyn_cast<RankedTensorType>(summed.getType()) : nullptr;
  if (!xt || xt.getRank() != 2 || !st || st.getRank() != 3)
    return notRaised("the tokens are not [T, H] or the products not "
                     "[E, T, H]");
  Location loc = locOf(node);
  auto outIn = [&](const std::string &name, bool inOut) -> Value {
    return inOut ? lookupTransposed(name, loc) : lookup(name);
  };
  m.gateUp = gateUp;
  m.down = down;
  m.gateUpValue = outIn(gateUp, gateUpInOut);
  m.downValue = outIn(down, downInOut);
  return raiseMatchedMoE(node, m, block);
}
