//===- ONNXImporterImpl.h - The ONNX importer's internals -------*- C++ -*-===//
//
// Shared by the importer's sources (not installed): ONNXImporter.cpp (the
// graph walk, values, constants and known integers), ONNXElementwise.cpp
// (broadcasting elementwise ops, comparisons, casts, reductions, softmax),
// ONNXShapeOps.cpp (reshapes, slices, gathers, concatenation and the other
// data-movement ops) and ONNXLayers.cpp (matrix products, normalisations
// and com.microsoft.MoE raising).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_IMPORT_ONNXIMPORTERIMPL_H
#define MOE_LIB_IMPORT_ONNXIMPORTERIMPL_H

#include "moe/Import/ONNXImporter.h"
#include "moe/Import/ONNXModel.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"

#include "onnx/onnx_pb.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/StringMap.h"

#include <optional>
#include <string>
#include <vector>

namespace mlir::moe::onnximport {

struct RaisedMoE;

/// The MLIR element type of an ONNX one, or null.
inline Type elementType(MLIRContext *ctx, int32_t type) {
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

inline const onnx::AttributeProto *findAttr(const onnx::NodeProto &node,
                                     llvm::StringRef name) {
  for (const onnx::AttributeProto &attr : node.attribute())
    if (attr.name() == name)
      return &attr;
  return nullptr;
}

inline int64_t intAttr(const onnx::NodeProto &node, llvm::StringRef name,
                int64_t fallback) {
  const onnx::AttributeProto *attr = findAttr(node, name);
  return attr ? attr->i() : fallback;
}

inline llvm::SmallVector<int64_t> intsAttr(const onnx::NodeProto &node,
                                          llvm::StringRef name) {
  const onnx::AttributeProto *attr = findAttr(node, name);
  return attr ? llvm::SmallVector<int64_t>(attr->ints().begin(),
                                           attr->ints().end())
              : llvm::SmallVector<int64_t>{};
}

inline std::optional<float> floatAttr(const onnx::NodeProto &node,
                               llvm::StringRef name) {
  const onnx::AttributeProto *attr = findAttr(node, name);
  if (!attr)
    return std::nullopt;
  return attr->f();
}

inline std::string stringAttr(const onnx::NodeProto &node, llvm::StringRef name,
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

/// A 0-D or 1-D integer tensor whose elements are known while importing:
/// constants, or sizes of other values (tensor.dim) and arithmetic on
/// them. Exported graphs compute shapes at run time (Shape -> Gather ->
/// Unsqueeze -> Concat -> Reshape); folding those chains into these lets
/// Reshape, Expand, Slice and the rest see static ranks and sizes.
struct KnownInts {
  llvm::SmallVector<OpFoldResult> elems;
  bool scalar = false;
  /// The ONNX element type (i64, i32 or i1).
  Type type;
};

/// The result of importing one node: nullopt, or why it was not imported.
using ImportResult = std::optional<std::string>;

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
  /// The value named `name`: a graph input, a node result, an initializer
  /// (as a moe.weight, created at first use) or known integers (as a
  /// constant or tensor.from_elements, created at first use).
  Value lookup(const std::string &name);
  /// Initializer `name` (rank 2 or 3) with its last two dimensions swapped:
  /// a moe.weight of the model's transposed copy (ONNXModel::transposedCopy),
  /// or, where no copy can be made, a linalg.transpose of the initializer.
  /// Null if `name` is no initializer of that rank.
  Value lookupTransposed(const std::string &name, Location loc);
  /// Input `i` of `node`, or null when absent, empty or of no known type.
  Value input(const onnx::NodeProto &node, int i) {
    return i < node.input_size() && !node.input(i).empty()
               ? lookup(node.input(i))
               : Value();
  }
  /// Imports one node; on failure returns the reason.
  ImportResult importNode(const onnx::NodeProto &node);
  void note(const onnx::NodeProto &node, const std::string &reason);
  llvm::Error fail(const llvm::Twine &message) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   model.path() + ": " + message);
  }

  // --- Known integers (ONNXImporter.cpp) ---------------------------------
  /// The known integers of `name`: folded shape arithmetic, a Constant
  /// node, or a small integer initializer.
  std::optional<KnownInts> knownInts(const std::string &name);
  /// knownInts, or else the elements of a 1-D integer tensor of static
  /// length read at run time (tensor.extract), for sizes that exporters
  /// compute from data (Tile repeats, Expand shapes).
  std::optional<KnownInts> knownOrRuntimeInts(const std::string &name);
  /// knownInts when every element is a constant.
  std::optional<llvm::SmallVector<int64_t>>
  constantInts(const std::string &name);
  /// Records `value` as the known integers of output `name`.
  void setKnown(const std::string &name, KnownInts value) {
    known[name] = std::move(value);
  }
  /// `a op b` on index values, folded when both are constants.
  OpFoldResult foldIndex(Location loc, char op, OpFoldResult a,
                         OpFoldResult b);
  /// A tensor of `type` holding `v` (a constant when every element is).
  Value materialize(Location loc, const KnownInts &v);

  // --- Nodes ---------------------------------------------------------------
  ImportResult importConstant(const onnx::NodeProto &node);
  ImportResult importIdentity(const onnx::NodeProto &node);
  // ONNXElementwise.cpp
  ImportResult importElementwise(const onnx::NodeProto &node);
  ImportResult importKnownArith(const onnx::NodeProto &node);
  ImportResult importClip(const onnx::NodeProto &node);
  ImportResult importCast(const onnx::NodeProto &node);
  ImportResult importSoftmax(const onnx::NodeProto &node);
  ImportResult importReduce(const onnx::NodeProto &node);
  // ONNXShapeOps.cpp
  ImportResult importShape(const onnx::NodeProto &node);
  ImportResult importTranspose(const onnx::NodeProto &node);
  ImportResult importReshape(const onnx::NodeProto &node);
  ImportResult importSqueeze(const onnx::NodeProto &node);
  ImportResult importGather(const onnx::NodeProto &node);
  ImportResult importGatherElements(const onnx::NodeProto &node);
  ImportResult importGatherND(const onnx::NodeProto &node);
  ImportResult importNonZero(const onnx::NodeProto &node);
  ImportResult importScatterND(const onnx::NodeProto &node);
  ImportResult importScatterElements(const onnx::NodeProto &node);
  ImportResult importConcat(const onnx::NodeProto &node);
  ImportResult importSplit(const onnx::NodeProto &node);
  ImportResult importSlice(const onnx::NodeProto &node);
  ImportResult importExpand(const onnx::NodeProto &node);
  ImportResult importTile(const onnx::NodeProto &node);
  ImportResult importConstantOfShape(const onnx::NodeProto &node);
  ImportResult importRange(const onnx::NodeProto &node);
  ImportResult importTrilu(const onnx::NodeProto &node);
  ImportResult importCumSum(const onnx::NodeProto &node);
  ImportResult importOneHot(const onnx::NodeProto &node);
  ImportResult importTopK(const onnx::NodeProto &node);
  // ONNXLayers.cpp
  ImportResult importMatMul(const onnx::NodeProto &node);
  ImportResult importEinsum(const onnx::NodeProto &node);
  ImportResult importBatchMatMul(const onnx::NodeProto &node, Value a,
                                 Value b);
  ImportResult importGemm(const onnx::NodeProto &node);
  ImportResult importSimplifiedLayerNorm(const onnx::NodeProto &node);
  ImportResult importLayerNorm(const onnx::NodeProto &node);
  ImportResult importRotaryEmbedding(const onnx::NodeProto &node);
  ImportResult importAttention(const onnx::NodeProto &node);
  ImportResult importContribAttention(const onnx::NodeProto &node);
  ImportResult importMoE(const onnx::NodeProto &node);
  ImportResult importMoEWith(const onnx::NodeProto &node, llvm::StringRef form,
                             Value fc1, Value fc1Bias, Value fc2,
                             Value fc2Bias, Value fc3, Value fc3Bias,
                             bool quantized);
  ImportResult importMatMulNBits(const onnx::NodeProto &node);
  ImportResult importQMoE(const onnx::NodeProto &node);
  /// How the zero points of dequantize() are stored: one value of the
  /// output type per block; bytes packed like the weights along each row's
  /// blocks (MatMulNBits, block-wise QMoE); or bytes packed along N, one
  /// per row (QMoE without blocks).
  enum class ZeroPoints { Values, PackedBlocks, PackedRows };
  Value dequantize(Location loc, Value q, Value scales, Value zp,
                   ZeroPoints zpLayout, int64_t bits, int64_t block,
                   int64_t kdim, Type et);
  /// A uint8 initializer as an i8 moe.weight reshaped to `shape`, or null
  /// when it is not one or holds another number of bytes.
  Value uint8Weight(Location loc, const std::string &name,
                    llvm::ArrayRef<int64_t> shape);
  // ONNXRaiseMoE.cpp
  /// If `node` (a ReduceSum) ends an exported gathered-weights MoE block,
  /// defines its output as moe.route + moe.experts (or moe.experts alone
  /// when the router is not recognised) and returns true; a block that is
  /// found but cannot be raised is reported and imported as plain ops.
  bool raiseGatheredMoE(const onnx::NodeProto &node);
  /// If `node` (an Add or ScatterND) ends the accumulation of an unrolled
  /// per-expert block (one subgraph per expert, sharing one router), raises
  /// it like raiseGatheredMoE.
  bool raiseUnrolledMoE(const onnx::NodeProto &node);
  /// If `node` (a ReduceSum over experts) ends a dense all-experts block
  /// (every expert on every token, weighted by a dense [T, E] routing
  /// matrix), raises it like raiseGatheredMoE.
  bool raiseDenseMoE(const onnx::NodeProto &node);
  /// The routers, shapes and ops shared by the matchers above: recognises
  /// `m`'s router from its routing weights and defines `node`'s output.
  bool raiseMatchedMoE(const onnx::NodeProto &node, RaisedMoE &m,
                       ONNXMoEBlock &block);
  /// A per-(token, slot) routing factor followed back to the [T, k] weights.
  std::string routingWeightsOf(const std::string &factor);
  /// The (gate, up) of the product SiLU(gate) * up that `name` is, if it is
  /// one (SiLU written as g * Sigmoid(g)).
  std::optional<std::pair<std::string, std::string>>
  matchSiLUProduct(const std::string &name);
  /// The gated product SiLU(h[gate half]) * h[up half] that `name` is, if it
  /// is one: h's name, with which half is the gate.
  std::optional<std::pair<std::string, bool>>
  matchSwiGLU(const std::string &name);
  /// Reports MoE routers (TopK over expert scores whose ids select expert
  /// weights or masks) that no raised block used: the unrolled per-expert
  /// and other forms, which run as plain ops.
  void reportUnraisedRouters();
  /// If `node` (an Add) adds a shared expert (SiLU-gated MLP of the same
  /// tokens, optionally scaled by sigmoid(x w)) to a raised moe.experts,
  /// folds it into the op and returns true.
  bool raiseSharedExpert(const onnx::NodeProto &node);
  /// Each raised moe.experts: the ONNX name of its tokens and its block's
  /// node (as --report names it).
  llvm::DenseMap<Operation *, std::pair<std::string, std::string>>
      raisedExperts;
  /// TopK nodes of raised blocks.
  llvm::SmallPtrSet<const onnx::NodeProto *, 8> raisedRouters;
  /// TopK nodes of blocks found and reported as not raised.
  llvm::SmallPtrSet<const onnx::NodeProto *, 8> reportedRouters;
  /// The nodes reading `name`.
  const llvm::SmallVector<const onnx::NodeProto *> &
  readers(const std::string &name);
  llvm::StringMap<llvm::SmallVector<const onnx::NodeProto *>> readerMap;
  /// The node producing `name` if it is an `op` (and, with `output` >= 0,
  /// that output of it), else null.
  const onnx::NodeProto *producerOf(const std::string &name, llvm::StringRef op,
                                    int output = -1);
  bool isInitializer(const std::string &name) {
    return model.initializers().count(name) != 0;
  }
  /// The 3-D initializer whose slice `e` has the bytes of the 2-D
  /// initializer `slice` (an exporter's folded Gather), if any.
  std::optional<std::string> stackHolding(const std::string &slice, int64_t e);
  /// Whether `name` is a float tensor of zeros: ConstantOfShape's fill, a
  /// splat constant or a small all-zero initializer, maybe broadcast by
  /// Expand.
  bool isZeroTensor(std::string name);
  /// Records `block` as found but not raised, for `why`; returns false.
  bool notRaisedBlock(ONNXMoEBlock &block, const std::string &why);
  /// The node producing `name` and the output index, or null.
  std::pair<const onnx::NodeProto *, int> producer(const std::string &name);
  /// `name` followed back through Reshape/Unsqueeze/Squeeze/Flatten/
  /// Identity/Cast, which do not change which elements a value holds.
  std::string throughViews(const std::string &name);

  // --- Helpers -------------------------------------------------------------
  /// `x` reshaped to `shape`, where a kDynamic size is `dims[i]`.
  Value reshapeTo(Location loc, Value x, llvm::ArrayRef<int64_t> shape,
                  llvm::ArrayRef<OpFoldResult> dims);
  /// One linalg.generic over the numpy broadcast of `operands` (size-1 or
  /// missing leading dimensions broadcast), yielding `body(args)` of
  /// `resultElement`; nullopt-style failure as a reason string.
  llvm::Expected<Value>
  broadcastGeneric(Location loc, ValueRange operands, Type resultElement,
                   llvm::function_ref<Value(OpBuilder &, Location, ValueRange)>
                       body);
  /// Softmax over the last axis (max, sum of exponentials, quotient).
  /// `extra` (optional, x's shape without the last axis) is one more logit
  /// per row that takes part in the normalisation but has no output
  /// (attention sinks).
  Value softmaxLastAxis(Location loc, Value x, Value extra = Value());
  /// The `k` largest (or smallest) values along the last axis, in order,
  /// ties to the lower index, and their int64 indices.
  std::pair<Value, Value> topK(Location loc, Value x, int64_t k, bool largest);
  /// com.microsoft.MoE that cannot become moe ops, as plain tensor ops:
  /// softmax over the logits, top-k, optional renormalisation (ORT's CUDA
  /// routing), then each (token, slot) reads its expert's rows.
  /// `gate` [E, I, H] (and `up` for gated activations), `down` [E, H, I],
  /// optional biases; SwiGLU as ORT defines it (alpha, beta, limit).
  Value plainMoE(Location loc, Value x, Value logits, Value gate,
                 Value gateBias, Value up, Value upBias, Value down,
                 Value downBias, int64_t k, bool normalize,
                 llvm::StringRef activation, float alpha, float beta,
                 std::optional<float> limit, bool topkFirst = false);
  /// A tensor of `sizes` and element type `type` filled with zeros (the
  /// accumulator of a contraction).
  Value zeros(Location loc, llvm::ArrayRef<OpFoldResult> sizes, Type type);
  /// RoPE on x ([B, S, N*D] or [B, N, S, D]): the first `rd` features of
  /// each head rotate (halves, or interleaved pairs) by cos/sin cache rows
  /// at the token's position: position_ids `pos` ([B, S] or a [1] offset
  /// plus s), else `offset` + s, else (no ids, [B, S, rd/2] caches) by
  /// (b, s).
  Value applyRotary(Location loc, Value x, int64_t headDim, int64_t rd,
                    Value cosCache, Value sinCache, Value pos, Value offset,
                    bool interleaved);
  /// A [B, H, P, D] cache followed by [B, H, S, D] new entries.
  Value appendToCache(Location loc, Value past, Value now);
  /// [B, S, heads*D] -> [B, heads, S, D], and back.
  Value splitHeads(Location loc, Value t, int64_t heads);
  Value mergeHeads(Location loc, Value t);
  /// softmax(scale * Q K^T [softcap] + mask) V on [B, heads, S, D]
  /// tensors, query head h reading key/value head h / (Hq / Hkv). `mask`
  /// (optional) is bool (keep) or additive, right-aligned to [B, Hq, Sq,
  /// Skv]; `keyLimit` (optional, [B] integers) masks keys j > limit[b];
  /// `causal` masks keys j > query i + `causalOffset` (an index, 0 when
  /// null: the cached keys before the new queries); `window` > 0 also
  /// masks keys j <= i + causalOffset - window (a sliding window of
  /// `window` keys, the query's own included). `sinks` ([Hq], optional)
  /// adds exp(sinks[h]) to each softmax denominator; `smooth` adds exp(0).
  /// Null when the heads do not fit.
  std::optional<Value> attentionCore(Location loc, Value q4, Value k4,
                                     Value v4, float scale, float softcap,
                                     bool causal, Value mask, Value keyLimit,
                                     Value causalOffset = Value(),
                                     int64_t window = 0, Value sinks = Value(),
                                     bool smooth = false);
  /// A linalg.generic producing a tensor of `type` (sizes `sizes`) whose
  /// element at each index is `body(indices)`.
  Value indexGeneric(Location loc, RankedTensorType type,
                     llvm::ArrayRef<OpFoldResult> sizes,
                     llvm::function_ref<Value(OpBuilder &, Location, ValueRange)>
                         body);

  MLIRContext *ctx;
  const ::moe::ONNXModel &model;
  OpBuilder builder;
  std::vector<ONNXMoEBlock> *blocks;
  Location fileLoc;
  llvm::StringMap<Value> values;
  llvm::StringMap<KnownInts> known;
  llvm::StringMap<std::pair<const onnx::NodeProto *, int>> producers;
  std::vector<Missing> missing;
  llvm::StringMap<size_t> missingIndex;
};

/// Normalises `axis` of a rank-`rank` tensor (negative counts from the
/// end); nullopt when out of range.
inline std::optional<int64_t> normalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    return std::nullopt;
  return axis < 0 ? axis + rank : axis;
}

} // namespace mlir::moe::onnximport

#endif // MOE_LIB_IMPORT_ONNXIMPORTERIMPL_H
