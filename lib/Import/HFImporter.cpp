//===- HFImporter.cpp - Hugging Face checkpoint to the moe dialect --------===//
//
// The model maths follows transformers 5.23 (models/<family>/modeling_*.py):
// pre-norm decoder layers, RMSNorm with the config eps except DeepSeek's
// q_a/kv_a layernorms (transformers' default 1e-6), projections as
// `x * W^T` accumulated in f32, attention with scale head_dim^-0.5 (MLA:
// qk_head_dim^-0.5 times the YaRN mscale^2), logits in f32.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/HFImporter.h"

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Import/HFConfig.h"
#include "moe/Import/SafeTensors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <map>

using namespace mlir;
using namespace mlir::moe;
using ::moe::Checkpoint;
using ::moe::ModelConfig;
using ::moe::ModelFamily;

namespace {

llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

std::string shapeString(llvm::ArrayRef<int64_t> shape) {
  return "[" + llvm::join(llvm::map_range(shape, [](int64_t d) {
                            return std::to_string(d);
                          }),
                          ", ") +
         "]";
}

/// A checkpoint tensor (or a stack of them) as the IR will reference it.
struct WeightRef {
  std::vector<std::string> names; // One name unless stacked.
  bool stacked = false;
  RankedTensorType type;          // Of the (stacked) value.
};

/// The weights of one decoder layer, by role. The roles present and their
/// types make up the layer function's signature.
struct LayerWeights {
  std::vector<std::pair<std::string, WeightRef>> roles;
  void add(llvm::StringRef role, WeightRef ref) {
    roles.emplace_back(role.str(), std::move(ref));
  }
};

/// Builds IR for the maths shared by every family.
class Emitter {
public:
  Emitter(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  Value dim(Value t, int64_t i) { return tensor::DimOp::create(b, loc, t, i); }

  Value zeros(llvm::ArrayRef<OpFoldResult> sizes, Type elementType) {
    Value empty = tensor::EmptyOp::create(b, loc, sizes, elementType);
    Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(elementType));
    return linalg::FillOp::create(b, loc, zero, empty).getResult(0);
  }

  /// Elementwise cast between float element types (no-op when equal).
  Value castTo(Value t, Type elementType) {
    auto type = cast<RankedTensorType>(t.getType());
    if (type.getElementType() == elementType)
      return t;
    auto to = type.clone(elementType);
    if (elementType.getIntOrFloatBitWidth() >
        type.getElementType().getIntOrFloatBitWidth())
      return arith::ExtFOp::create(b, loc, to, t);
    return arith::TruncFOp::create(b, loc, to, t);
  }

  /// `x [T, K] * w[N, K]^T (+ bias[N])`, accumulated in f32, returned in
  /// `resultType`.
  Value linear(Value x, Value w, Value bias, Type resultType) {
    auto wType = cast<RankedTensorType>(w.getType());
    auto xType = cast<RankedTensorType>(x.getType());
    auto type = RankedTensorType::get(
        {xType.getDimSize(0), wType.getDimSize(0)}, resultType);
    return LinearOp::create(b, loc, type, x, w, bias, /*norm_weight=*/Value(),
                            /*residual=*/Value(), /*norm_eps=*/FloatAttr(),
                            /*norm_weight_in_f32=*/UnitAttr());
  }

  /// `silu(gate) * up`, computed in f32, in the inputs' element type.
  Value siluMul(Value gate, Value up) {
    auto type = cast<RankedTensorType>(gate.getType());
    MLIRContext *ctx = b.getContext();
    auto id = AffineMap::getMultiDimIdentityMap(type.getRank(), ctx);
    llvm::SmallVector<utils::IteratorType> iters(type.getRank(),
                                                 utils::IteratorType::parallel);
    Type f32 = b.getF32Type();
    Type et = type.getElementType();
    return linalg::GenericOp::create(
               b, loc, TypeRange{type}, ValueRange{gate, up}, ValueRange{gate},
               llvm::ArrayRef<AffineMap>{id, id, id}, iters,
               [&](OpBuilder &nb, Location nl, ValueRange args) {
                 auto toF32 = [&](Value v) -> Value {
                   return et == f32 ? v : arith::ExtFOp::create(nb, nl, f32, v);
                 };
                 Value g = toF32(args[0]), u = toF32(args[1]);
                 Value negG = arith::NegFOp::create(nb, nl, g);
                 Value e = math::ExpOp::create(nb, nl, negG);
                 Value one = arith::ConstantOp::create(
                     nb, nl, nb.getFloatAttr(f32, 1.0));
                 Value den = arith::AddFOp::create(nb, nl, one, e);
                 Value silu = arith::DivFOp::create(nb, nl, g, den);
                 Value r = arith::MulFOp::create(nb, nl, silu, u);
                 if (et != f32)
                   r = arith::TruncFOp::create(nb, nl, et, r);
                 linalg::YieldOp::create(nb, nl, r);
               })
        .getResult(0);
  }

  /// Clamps every element to [-limit, limit].
  Value clamp(Value x, double limit) {
    auto type = cast<RankedTensorType>(x.getType());
    Type et = type.getElementType();
    MLIRContext *ctx = b.getContext();
    auto id = AffineMap::getMultiDimIdentityMap(type.getRank(), ctx);
    llvm::SmallVector<utils::IteratorType> iters(type.getRank(),
                                                 utils::IteratorType::parallel);
    return linalg::GenericOp::create(
               b, loc, TypeRange{type}, ValueRange{x}, ValueRange{x},
               llvm::ArrayRef<AffineMap>{id, id}, iters,
               [&](OpBuilder &nb, Location nl, ValueRange args) {
                 Value hi = arith::ConstantOp::create(
                     nb, nl, nb.getFloatAttr(et, limit));
                 Value lo = arith::ConstantOp::create(
                     nb, nl, nb.getFloatAttr(et, -limit));
                 Value v = arith::MinimumFOp::create(nb, nl, args[0], hi);
                 v = arith::MaximumFOp::create(nb, nl, v, lo);
                 linalg::YieldOp::create(nb, nl, v);
               })
        .getResult(0);
  }

  Value collapse(Value x, llvm::ArrayRef<ReassociationIndices> groups) {
    return tensor::CollapseShapeOp::create(b, loc, x, groups);
  }

  /// Expands `x` to `shape`, where kDynamic entries take `dynamicSizes` in
  /// order.
  Value expand(Value x, llvm::ArrayRef<int64_t> shape,
               llvm::ArrayRef<ReassociationIndices> groups,
               llvm::ArrayRef<Value> dynamicSizes) {
    auto type = RankedTensorType::get(
        shape, cast<RankedTensorType>(x.getType()).getElementType());
    llvm::SmallVector<OpFoldResult> sizes;
    size_t next = 0;
    for (int64_t d : shape)
      sizes.push_back(ShapedType::isDynamic(d) ? OpFoldResult(dynamicSizes[next++])
                                               : b.getIndexAttr(d));
    // MLIR 22's expand-strided-metadata crashes on an expand_shape that
    // splits one dimension into several dynamic ones ([T] -> [B, S]); a
    // reshape by a shape tensor expresses the same view without it.
    for (const ReassociationIndices &group : groups) {
      if (llvm::count_if(group, [&](int64_t i) {
            return ShapedType::isDynamic(shape[i]);
          }) < 2)
        continue;
      llvm::SmallVector<Value> extents;
      for (OpFoldResult size : sizes)
        extents.push_back(getValueOrCreateConstantIndexOp(b, loc, size));
      Value shapeTensor = tensor::FromElementsOp::create(b, loc, extents);
      return tensor::ReshapeOp::create(b, loc, type, x, shapeTensor);
    }
    return tensor::ExpandShapeOp::create(b, loc, type, x, groups, sizes);
  }

  /// `x[..., offset : offset + size]` along the last dimension.
  Value sliceLast(Value x, int64_t offset, int64_t size) {
    auto type = cast<RankedTensorType>(x.getType());
    int64_t rank = type.getRank();
    llvm::SmallVector<OpFoldResult> offsets(rank, b.getIndexAttr(0));
    llvm::SmallVector<OpFoldResult> sizes, strides(rank, b.getIndexAttr(1));
    for (int64_t i = 0; i < rank; ++i)
      sizes.push_back(type.isDynamicDim(i) ? OpFoldResult(dim(x, i))
                                           : b.getIndexAttr(type.getDimSize(i)));
    offsets.back() = b.getIndexAttr(offset);
    sizes.back() = b.getIndexAttr(size);
    return tensor::ExtractSliceOp::create(b, loc, x, offsets, sizes, strides);
  }

  /// `x[:, offset : offset + size, :]` of a static rank-3 tensor.
  Value sliceMiddle(Value x, int64_t offset, int64_t size) {
    auto type = cast<RankedTensorType>(x.getType());
    llvm::SmallVector<OpFoldResult> offsets = {
        b.getIndexAttr(0), b.getIndexAttr(offset), b.getIndexAttr(0)};
    llvm::SmallVector<OpFoldResult> sizes = {
        b.getIndexAttr(type.getDimSize(0)), b.getIndexAttr(size),
        b.getIndexAttr(type.getDimSize(2))};
    llvm::SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
    return tensor::ExtractSliceOp::create(b, loc, x, offsets, sizes, strides);
  }

  OpBuilder &b;
  Location loc;
};

class Importer {
public:
  Importer(MLIRContext *context, const ModelConfig &config,
           const Checkpoint &checkpoint, int64_t maxSeqLen)
      : ctx(context), cfg(config), ckpt(checkpoint), cacheLen(maxSeqLen),
        builder(context), loc(FileLineColLoc::get(
                              context, config.configPath, 1, 1)) {}

  llvm::Expected<OwningOpRef<ModuleOp>> run();

private:
  // --- Weights -------------------------------------------------------------
  llvm::Expected<Type> elementTypeOf(llvm::StringRef name,
                                     const ::moe::TensorInfo &info);
  llvm::Expected<WeightRef> weight(llvm::StringRef name,
                                   llvm::ArrayRef<int64_t> shape);
  llvm::Expected<WeightRef> stacked(const std::vector<std::string> &names,
                                    llvm::ArrayRef<int64_t> shape);
  bool has(llvm::StringRef name) const {
    return ckpt.lookup(name).has_value();
  }
  llvm::Error collectLayer(int64_t layer, LayerWeights &out);
  llvm::Error collectMoE(const std::string &prefix, LayerWeights &out);
  llvm::Error checkAllPlaced();

  // --- IR ------------------------------------------------------------------
  Value materialize(const WeightRef &ref);
  func::FuncOp layerFunction(int64_t layer, const LayerWeights &weights);
  void emitLayerBody(int64_t layer, Emitter &e, Value h, Value positions,
                     Value start, llvm::ArrayRef<Value> caches,
                     const std::map<std::string, Value> &w,
                     llvm::SmallVectorImpl<Value> &results);
  llvm::SmallVector<Type> cacheTypes(bool stackedOverLayers);
  Type computeType() const { return modelType; }

  MLIRContext *ctx;
  const ModelConfig &cfg;
  const Checkpoint &ckpt;
  int64_t cacheLen;
  OpBuilder builder;
  Location loc;
  Type modelType;
  ModuleOp module;
  llvm::StringSet<> used;
  std::map<std::string, func::FuncOp> layerFuncs;
};

llvm::Expected<Type> Importer::elementTypeOf(llvm::StringRef name,
                                             const ::moe::TensorInfo &info) {
  switch (info.dtype) {
  case ::moe::DType::F32:
    return Type(builder.getF32Type());
  case ::moe::DType::F16:
    return Type(builder.getF16Type());
  case ::moe::DType::BF16:
    return Type(builder.getBF16Type());
  default:
    return makeError(ckpt.lookup(name)->file->path() + ": tensor '" + name +
                     "' has dtype " + ::moe::dtypeName(info.dtype) +
                     "; only F32, F16 and BF16 weights are supported");
  }
}

llvm::Expected<WeightRef> Importer::weight(llvm::StringRef name,
                                           llvm::ArrayRef<int64_t> shape) {
  std::optional<Checkpoint::Location> at = ckpt.lookup(name);
  if (!at)
    return makeError(cfg.configPath + ": the checkpoint has no tensor '" +
                     name + "', which this " +
                     ::moe::modelTypeName(cfg.family) + " config needs");
  const ::moe::TensorInfo &info = *at->tensor;
  if (llvm::ArrayRef<int64_t>(info.shape) != shape)
    return makeError(at->file->path() + ": tensor '" + name + "' has shape " +
                     shapeString(info.shape) + ", but config.json implies " +
                     shapeString(shape));
  llvm::Expected<Type> et = elementTypeOf(name, info);
  if (!et)
    return et.takeError();
  used.insert(name);
  WeightRef ref;
  ref.names = {name.str()};
  ref.type = RankedTensorType::get(shape, *et);
  return ref;
}

llvm::Expected<WeightRef>
Importer::stacked(const std::vector<std::string> &names,
                  llvm::ArrayRef<int64_t> shape) {
  WeightRef ref;
  ref.stacked = true;
  Type et;
  for (const std::string &name : names) {
    llvm::Expected<WeightRef> one = weight(name, shape);
    if (!one)
      return one.takeError();
    if (et && one->type.getElementType() != et)
      return makeError(ckpt.lookup(name)->file->path() + ": tensor '" + name +
                       "' has dtype " +
                       ::moe::dtypeName(ckpt.lookup(name)->tensor->dtype) +
                       ", unlike the other experts of its layer");
    et = one->type.getElementType();
    ref.names.push_back(name);
  }
  llvm::SmallVector<int64_t> full = {static_cast<int64_t>(names.size())};
  full.append(shape.begin(), shape.end());
  ref.type = RankedTensorType::get(full, et);
  return ref;
}

llvm::Error Importer::collectMoE(const std::string &prefix, LayerWeights &out) {
  const ::moe::RouterConfig &r = *cfg.router;
  int64_t h = cfg.hiddenSize, e = r.numExperts, i = cfg.moeIntermediateSize;
  // Mixtral's original names use `block_sparse_moe.` and w1/w3/w2; a file
  // re-saved by transformers v5 without conversion uses `mlp.`.
  std::string moe = prefix + "mlp.";
  const char *gateName = "gate_proj", *upName = "up_proj",
             *downName = "down_proj";
  if (cfg.family == ModelFamily::Mixtral &&
      has(prefix + "block_sparse_moe.gate.weight")) {
    moe = prefix + "block_sparse_moe.";
    gateName = "w1";
    upName = "w3";
    downName = "w2";
  }
  llvm::Expected<WeightRef> router = weight(moe + "gate.weight", {e, h});
  if (!router)
    return router.takeError();
  out.add("moe.router", *router);
  if (r.selectionBias) {
    llvm::Expected<WeightRef> bias =
        weight(moe + "gate.e_score_correction_bias", {e});
    if (!bias)
      return bias.takeError();
    out.add("moe.bias", *bias);
  }
  if (has(moe + "experts.gate_up_proj")) {
    // The fused 3-D layout: gate rows [0, I), up rows [I, 2I).
    llvm::Expected<WeightRef> gateUp =
        weight(moe + "experts.gate_up_proj", {e, 2 * i, h});
    if (!gateUp)
      return gateUp.takeError();
    llvm::Expected<WeightRef> down = weight(moe + "experts.down_proj", {e, h, i});
    if (!down)
      return down.takeError();
    out.add("moe.gate_up", *gateUp);
    out.add("moe.down", *down);
  } else {
    auto names = [&](const char *proj) {
      std::vector<std::string> list;
      for (int64_t x = 0; x < e; ++x)
        list.push_back(moe + "experts." + std::to_string(x) + "." + proj +
                       ".weight");
      return list;
    };
    llvm::Expected<WeightRef> gate = stacked(names(gateName), {i, h});
    if (!gate)
      return gate.takeError();
    llvm::Expected<WeightRef> up = stacked(names(upName), {i, h});
    if (!up)
      return up.takeError();
    llvm::Expected<WeightRef> down = stacked(names(downName), {h, i});
    if (!down)
      return down.takeError();
    out.add("moe.gate", *gate);
    out.add("moe.up", *up);
    out.add("moe.down", *down);
  }
  if (cfg.sharedIntermediateSize > 0) {
    int64_t s = cfg.sharedIntermediateSize;
    std::string shared = moe + (cfg.family == ModelFamily::Qwen2MoE
                                    ? "shared_expert."
                                    : "shared_experts.");
    for (auto [role, proj, shape] :
         {std::make_tuple("moe.shared_gate", "gate_proj",
                          llvm::SmallVector<int64_t>{s, h}),
          std::make_tuple("moe.shared_up", "up_proj",
                          llvm::SmallVector<int64_t>{s, h}),
          std::make_tuple("moe.shared_down", "down_proj",
                          llvm::SmallVector<int64_t>{h, s})}) {
      llvm::Expected<WeightRef> ref =
          weight(shared + proj + ".weight", shape);
      if (!ref)
        return ref.takeError();
      out.add(role, *ref);
    }
    if (cfg.sharedExpertGated) {
      llvm::Expected<WeightRef> gate =
          weight(moe + "shared_expert_gate.weight", {1, h});
      if (!gate)
        return gate.takeError();
      out.add("moe.shared_expert_gate", *gate);
    }
  }
  return llvm::Error::success();
}

llvm::Error Importer::collectLayer(int64_t layer, LayerWeights &out) {
  std::string p = "model.layers." + std::to_string(layer) + ".";
  int64_t h = cfg.hiddenSize;
  auto add = [&](llvm::StringRef role, const std::string &name,
                 llvm::ArrayRef<int64_t> shape) -> llvm::Error {
    llvm::Expected<WeightRef> ref = weight(name, shape);
    if (!ref)
      return ref.takeError();
    out.add(role, *ref);
    return llvm::Error::success();
  };
  if (llvm::Error err = add("attn.norm", p + "input_layernorm.weight", {h}))
    return err;

  std::string a = p + "self_attn.";
  if (cfg.mla) {
    const ::moe::MLAConfig &m = *cfg.mla;
    int64_t n = cfg.numHeads, qk = m.qkNopeHeadDim + m.qkRopeHeadDim;
    if (cfg.qkvBias)
      return makeError(cfg.configPath + ": field 'attention_bias' is true; "
                       "MLA projection biases are not supported yet");
    if (m.qLoraRank > 0) {
      if (llvm::Error err =
              add("mla.q_a", a + "q_a_proj.weight", {m.qLoraRank, h}))
        return err;
      if (llvm::Error err =
              add("mla.q_a_norm", a + "q_a_layernorm.weight", {m.qLoraRank}))
        return err;
      if (llvm::Error err =
              add("mla.q_b", a + "q_b_proj.weight", {n * qk, m.qLoraRank}))
        return err;
    } else if (llvm::Error err = add("mla.q", a + "q_proj.weight", {n * qk, h})) {
      return err;
    }
    if (llvm::Error err = add("mla.kv_a", a + "kv_a_proj_with_mqa.weight",
                              {m.kvLoraRank + m.qkRopeHeadDim, h}))
      return err;
    if (llvm::Error err =
            add("mla.kv_a_norm", a + "kv_a_layernorm.weight", {m.kvLoraRank}))
      return err;
    if (llvm::Error err =
            add("mla.kv_b", a + "kv_b_proj.weight",
                {n * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank}))
      return err;
    if (llvm::Error err =
            add("attn.o", a + "o_proj.weight", {h, n * m.vHeadDim}))
      return err;
  } else {
    int64_t d = cfg.headDim, q = cfg.numHeads * d, kv = cfg.numKVHeads * d;
    for (auto [role, proj, rows] :
         {std::make_tuple("attn.q", "q_proj", q),
          std::make_tuple("attn.k", "k_proj", kv),
          std::make_tuple("attn.v", "v_proj", kv)}) {
      if (llvm::Error err =
              add(role, a + proj + ".weight", {rows, cfg.hiddenSize}))
        return err;
      if (cfg.qkvBias)
        if (llvm::Error err = add(std::string(role) + ".bias",
                                  a + proj + ".bias", {rows}))
          return err;
    }
    if (llvm::Error err = add("attn.o", a + "o_proj.weight", {h, q}))
      return err;
    if (cfg.outputBias)
      if (llvm::Error err = add("attn.o.bias", a + "o_proj.bias", {h}))
        return err;
    if (cfg.qkNorm == ::moe::QKNorm::PerHead) {
      if (llvm::Error err = add("attn.q_norm", a + "q_norm.weight", {d}))
        return err;
      if (llvm::Error err = add("attn.k_norm", a + "k_norm.weight", {d}))
        return err;
    } else if (cfg.qkNorm == ::moe::QKNorm::WholeProj) {
      if (llvm::Error err = add("attn.q_norm", a + "q_norm.weight", {q}))
        return err;
      if (llvm::Error err = add("attn.k_norm", a + "k_norm.weight", {kv}))
        return err;
    }
  }

  if (llvm::Error err =
          add("ffn.norm", p + "post_attention_layernorm.weight", {h}))
    return err;
  if (cfg.moeLayers[layer])
    return collectMoE(p, out);
  int64_t f = cfg.intermediateSize;
  if (llvm::Error err = add("mlp.gate", p + "mlp.gate_proj.weight", {f, h}))
    return err;
  if (llvm::Error err = add("mlp.up", p + "mlp.up_proj.weight", {f, h}))
    return err;
  return add("mlp.down", p + "mlp.down_proj.weight", {h, f});
}

llvm::Error Importer::checkAllPlaced() {
  for (const std::string &name : ckpt.tensorNames()) {
    if (used.contains(name))
      continue;
    // DeepSeek-V3's multi-token-prediction module follows the main layers;
    // transformers ignores it and so do we.
    llvm::StringRef rest = name;
    int64_t layer;
    if (cfg.family == ModelFamily::DeepSeekV3 &&
        rest.consume_front("model.layers.") &&
        !rest.consumeInteger(10, layer) && layer >= cfg.numLayers)
      continue;
    return makeError(ckpt.lookup(name)->file->path() + ": tensor '" + name +
                     "' is not part of a " +
                     ::moe::modelTypeName(cfg.family) +
                     " model with this config.json (unplaced tensors would "
                     "silently change the model)");
  }
  return llvm::Error::success();
}

Value Importer::materialize(const WeightRef &ref) {
  if (ref.stacked)
    return StackedWeightOp::create(builder, loc, ref.type,
                                   builder.getStrArrayAttr(llvm::to_vector(
                                       llvm::map_range(ref.names,
                                                       [](const std::string &s) {
                                                         return llvm::StringRef(s);
                                                       }))));
  return WeightOp::create(builder, loc, ref.type,
                          builder.getStringAttr(ref.names.front()));
}

/// Cache types: MLA keeps one latent cache [B, L, R + Dr]; standard
/// attention keys and values [B, L, Hkv, D]. Stacked over layers they gain
/// a leading layer dimension.
llvm::SmallVector<Type> Importer::cacheTypes(bool stackedOverLayers) {
  llvm::SmallVector<int64_t> lead;
  if (stackedOverLayers)
    lead.push_back(cfg.numLayers);
  lead.append({ShapedType::kDynamic, cacheLen});
  auto make = [&](llvm::ArrayRef<int64_t> tail) -> Type {
    llvm::SmallVector<int64_t> shape = lead;
    shape.append(tail.begin(), tail.end());
    return RankedTensorType::get(shape, computeType());
  };
  if (cfg.mla)
    return {make({cfg.mla->kvLoraRank + cfg.mla->qkRopeHeadDim})};
  return {make({cfg.numKVHeads, cfg.headDim}),
          make({cfg.numKVHeads, cfg.headDim})};
}

func::FuncOp Importer::layerFunction(int64_t layer,
                                     const LayerWeights &weights) {
  // Layers with the same weight roles and types (and the same window) share
  // one function.
  std::string key = (cfg.moeLayers[layer] ? "moe" : "dense") +
                    std::to_string(cfg.slidingWindow[layer]);
  for (const auto &[role, ref] : weights.roles) {
    std::string type;
    llvm::raw_string_ostream os(type);
    os << ref.type;
    key += ";" + role + ":" + type;
  }
  auto it = layerFuncs.find(key);
  if (it != layerFuncs.end())
    return it->second;

  Type ct = computeType();
  auto hType = RankedTensorType::get(
      {ShapedType::kDynamic, ShapedType::kDynamic, cfg.hiddenSize}, ct);
  llvm::SmallVector<Type> args = {
      hType,
      RankedTensorType::get({ShapedType::kDynamic, ShapedType::kDynamic},
                            builder.getI32Type()),
      RankedTensorType::get({ShapedType::kDynamic}, builder.getI32Type())};
  llvm::SmallVector<Type> caches = cacheTypes(/*stackedOverLayers=*/false);
  args.append(caches.begin(), caches.end());
  for (const auto &[role, ref] : weights.roles)
    args.push_back(ref.type);
  llvm::SmallVector<Type> results = {hType};
  results.append(caches.begin(), caches.end());

  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToEnd(module.getBody());
  std::string name = std::string(cfg.moeLayers[layer] ? "layer_moe" : "layer_dense") +
                     (layerFuncs.empty() ? "" : "_" + std::to_string(layerFuncs.size()));
  auto fn = func::FuncOp::create(builder, loc, name,
                                 builder.getFunctionType(args, results));
  fn.setPrivate();
  // Caches and weights arrive as slices of layer-stacked buffers; a fully
  // dynamic layout lets bufferization pass them without copies.
  for (unsigned i = 3; i < args.size(); ++i) {
    auto type = cast<RankedTensorType>(args[i]);
    llvm::SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
    fn.setArgAttr(i, "bufferization.buffer_layout",
                  StridedLayoutAttr::get(ctx, ShapedType::kDynamic, strides));
  }
  Block *body = fn.addEntryBlock();
  builder.setInsertionPointToStart(body);
  std::map<std::string, Value> w;
  size_t first = 3 + caches.size();
  for (auto [index, role] : llvm::enumerate(weights.roles))
    w[role.first] = body->getArgument(first + index);
  Emitter e(builder, loc);
  llvm::SmallVector<Value> out;
  llvm::SmallVector<Value> cacheArgs(body->getArguments().slice(3, caches.size()));
  emitLayerBody(layer, e, body->getArgument(0), body->getArgument(1),
                body->getArgument(2), cacheArgs, w, out);
  func::ReturnOp::create(builder, loc, out);
  layerFuncs[key] = fn;
  return fn;
}

void Importer::emitLayerBody(int64_t layer, Emitter &e, Value h,
                             Value positions, Value start,
                             llvm::ArrayRef<Value> caches,
                             const std::map<std::string, Value> &w,
                             llvm::SmallVectorImpl<Value> &results) {
  OpBuilder &b = builder;
  Type ct = computeType();
  auto get = [&](const char *role) -> Value {
    auto it = w.find(role);
    return it == w.end() ? Value() : it->second;
  };
  auto eps = [&](double v) { return b.getF32FloatAttr(static_cast<float>(v)); };
  auto rmsNorm = [&](Value x, Value weight, double epsilon) -> Value {
    return RMSNormOp::create(b, loc, x.getType(), x, weight, eps(epsilon),
                             /*weight_in_f32=*/UnitAttr());
  };
  Value batch = e.dim(h, 0), seq = e.dim(h, 1);
  int64_t dyn = ShapedType::kDynamic;

  ::moe::RopeParams rp = cfg.rope;
  auto ropeAttr = RopeAttr::get(
      ctx, llvm::APFloat(rp.theta), static_cast<RopeScaling>(rp.kind),
      llvm::APFloat(rp.factor), rp.originalMaxPosition,
      llvm::APFloat(rp.betaFast), llvm::APFloat(rp.betaSlow),
      llvm::APFloat(rp.mscale), llvm::APFloat(rp.mscaleAllDim),
      llvm::APFloat(rp.attentionFactor), rp.truncate,
      llvm::APFloat(rp.lowFreqFactor), llvm::APFloat(rp.highFreqFactor));
  auto rope = [&](Value x, bool interleaved) -> Value {
    return RopeOp::create(
        b, loc, x.getType(), x, positions,
        RopeStyleAttr::get(ctx, interleaved ? RopeStyle::Interleaved
                                            : RopeStyle::HalfSplit),
        ropeAttr, /*rotary_dim=*/IntegerAttr());
  };

  // --- Attention -----------------------------------------------------------
  Value x = rmsNorm(h, get("attn.norm"), cfg.rmsNormEps);
  Value x2 = e.collapse(x, {{0, 1}, {2}});
  Value attnOut;
  llvm::SmallVector<Value> newCaches;
  if (cfg.mla) {
    const ::moe::MLAConfig &m = *cfg.mla;
    int64_t n = cfg.numHeads, qk = m.qkNopeHeadDim + m.qkRopeHeadDim;
    Value q;
    if (Value qa = get("mla.q_a")) {
      Value t = e.linear(x2, qa, nullptr, ct);
      // transformers builds q_a/kv_a layernorms with its default eps.
      t = rmsNorm(t, get("mla.q_a_norm"), 1e-6);
      q = e.linear(t, get("mla.q_b"), nullptr, ct);
    } else {
      q = e.linear(x2, get("mla.q"), nullptr, ct);
    }
    Value q4 = e.expand(q, {dyn, dyn, n, qk}, {{0, 1}, {2, 3}}, {batch, seq});
    Value qNope = e.sliceLast(q4, 0, m.qkNopeHeadDim);
    Value qPe = rope(e.sliceLast(q4, m.qkNopeHeadDim, m.qkRopeHeadDim),
                     m.ropeInterleave);
    Value ckv = e.linear(x2, get("mla.kv_a"), nullptr, ct);
    Value c = rmsNorm(e.sliceLast(ckv, 0, m.kvLoraRank), get("mla.kv_a_norm"),
                      1e-6);
    Value latent = e.expand(c, {dyn, dyn, m.kvLoraRank}, {{0, 1}, {2}},
                            {batch, seq});
    Value kPe4 = e.expand(e.sliceLast(ckv, m.kvLoraRank, m.qkRopeHeadDim),
                          {dyn, dyn, 1, m.qkRopeHeadDim}, {{0, 1}, {2, 3}},
                          {batch, seq});
    Value kPe = e.collapse(rope(kPe4, m.ropeInterleave), {{0}, {1}, {2, 3}});
    double scale = ::moe::getMLASoftmaxScale(qk, cfg.rope);
    auto resultType = RankedTensorType::get({dyn, dyn, n, m.vHeadDim}, ct);
    auto mla = MLAOp::create(b, loc, resultType, caches[0].getType(), qNope,
                             qPe, latent, kPe, get("mla.kv_b"), caches[0],
                             start, /*positions=*/Value(),
                             b.getF32FloatAttr(scale),
                             /*rope_style=*/RopeStyleAttr(), /*rope=*/RopeAttr());
    newCaches.push_back(mla.getNewCache());
    attnOut = e.collapse(mla.getResult(), {{0, 1}, {2, 3}});
  } else {
    int64_t d = cfg.headDim, hq = cfg.numHeads, hkv = cfg.numKVHeads;
    Value q = e.linear(x2, get("attn.q"), get("attn.q.bias"), ct);
    Value k = e.linear(x2, get("attn.k"), get("attn.k.bias"), ct);
    Value v = e.linear(x2, get("attn.v"), get("attn.v.bias"), ct);
    if (cfg.qkNorm == ::moe::QKNorm::WholeProj) {
      q = rmsNorm(q, get("attn.q_norm"), cfg.rmsNormEps);
      k = rmsNorm(k, get("attn.k_norm"), cfg.rmsNormEps);
    }
    if (cfg.clipQKV) {
      q = e.clamp(q, *cfg.clipQKV);
      k = e.clamp(k, *cfg.clipQKV);
      v = e.clamp(v, *cfg.clipQKV);
    }
    Value q4 = e.expand(q, {dyn, dyn, hq, d}, {{0, 1}, {2, 3}}, {batch, seq});
    Value k4 = e.expand(k, {dyn, dyn, hkv, d}, {{0, 1}, {2, 3}}, {batch, seq});
    Value v4 = e.expand(v, {dyn, dyn, hkv, d}, {{0, 1}, {2, 3}}, {batch, seq});
    if (cfg.qkNorm == ::moe::QKNorm::PerHead) {
      q4 = rmsNorm(q4, get("attn.q_norm"), cfg.rmsNormEps);
      k4 = rmsNorm(k4, get("attn.k_norm"), cfg.rmsNormEps);
    }
    q4 = rope(q4, /*interleaved=*/false);
    k4 = rope(k4, /*interleaved=*/false);
    auto attn = AttentionOp::create(
        b, loc, q4.getType(), caches[0].getType(), caches[1].getType(), q4,
        k4, v4, caches[0], caches[1], start, /*sinks=*/Value(),
        /*positions=*/Value(), b.getF32FloatAttr(1.0 / std::sqrt(double(d))),
        b.getI64IntegerAttr(cfg.slidingWindow[layer]),
        /*rope_style=*/RopeStyleAttr(), /*rope=*/RopeAttr());
    newCaches.push_back(attn.getNewKeyCache());
    newCaches.push_back(attn.getNewValueCache());
    attnOut = e.collapse(attn.getResult(), {{0, 1}, {2, 3}});
  }
  Value o = e.linear(attnOut, get("attn.o"), get("attn.o.bias"), ct);
  Value h1 = arith::AddFOp::create(
      b, loc, h,
      e.expand(o, {dyn, dyn, cfg.hiddenSize}, {{0, 1}, {2}}, {batch, seq}));

  // --- Feed-forward --------------------------------------------------------
  Value y = e.collapse(rmsNorm(h1, get("ffn.norm"), cfg.rmsNormEps),
                       {{0, 1}, {2}});
  Value ffn;
  if (cfg.moeLayers[layer]) {
    const ::moe::RouterConfig &r = *cfg.router;
    Value bias = get("moe.bias");
    if (bias)
      bias = e.castTo(bias, b.getF32Type());
    auto idsType = RankedTensorType::get({dyn, r.topK}, b.getI32Type());
    auto weightsType = RankedTensorType::get({dyn, r.topK}, b.getF32Type());
    auto route = RouteOp::create(
        b, loc, idsType, weightsType, y, get("moe.router"), bias,
        /*logit_bias=*/Value(), b.getI64IntegerAttr(r.topK),
        ScoreFuncAttr::get(ctx, r.score == ::moe::RouterConfig::Score::Sigmoid
                                    ? ScoreFunc::Sigmoid
                                    : ScoreFunc::Softmax),
        RouteOrderAttr::get(ctx, RouteOrder::ScoreThenTopK),
        b.getI64IntegerAttr(r.nGroup), b.getI64IntegerAttr(r.topkGroup),
        GroupScoreAttr::get(ctx, r.groupTop2Sum && r.nGroup > 1
                                     ? GroupScore::Top2Sum
                                     : GroupScore::Max),
        RenormAttr::get(ctx, r.renormalize ? Renorm::Sum : Renorm::None),
        b.getF32FloatAttr(static_cast<float>(r.renormEps)),
        b.getF32FloatAttr(static_cast<float>(r.scalingFactor)),
        r.logitsInModelDtype &&
                !cast<RankedTensorType>(y.getType()).getElementType().isF32()
            ? b.getUnitAttr()
            : UnitAttr());
    Value gate = get("moe.gate"), up = get("moe.up");
    if (Value gateUp = get("moe.gate_up")) {
      gate = e.sliceMiddle(gateUp, 0, cfg.moeIntermediateSize);
      up = e.sliceMiddle(gateUp, cfg.moeIntermediateSize,
                         cfg.moeIntermediateSize);
    }
    ffn = ExpertsOp::create(
        b, loc, y.getType(), y, route.getExpertIds(),
        route.getExpertWeights(), gate, up, get("moe.down"), Value(), Value(),
        Value(), get("moe.shared_gate"), get("moe.shared_up"),
        get("moe.shared_down"), get("moe.shared_expert_gate"),
        ActivationAttr::get(ctx, Activation::SwiGLU),
        b.getF32FloatAttr(1.702f), b.getF32FloatAttr(7.0f),
        b.getF32FloatAttr(1.0f));
  } else {
    Value g = e.linear(y, get("mlp.gate"), nullptr, ct);
    Value u = e.linear(y, get("mlp.up"), nullptr, ct);
    ffn = e.linear(e.siluMul(g, u), get("mlp.down"), nullptr, ct);
  }
  Value h2 = arith::AddFOp::create(
      b, loc, h1,
      e.expand(ffn, {dyn, dyn, cfg.hiddenSize}, {{0, 1}, {2}}, {batch, seq}));
  results.push_back(h2);
  results.append(newCaches.begin(), newCaches.end());
}

llvm::Expected<OwningOpRef<ModuleOp>> Importer::run() {
  int64_t h = cfg.hiddenSize, v = cfg.vocabSize;
  OwningOpRef<ModuleOp> owned = ModuleOp::create(loc);
  module = *owned;
  module->setAttr("moe.model_type",
                  builder.getStringAttr(::moe::modelTypeName(cfg.family)));
  builder.setInsertionPointToEnd(module.getBody());

  // Collect and check every weight before building anything.
  llvm::Expected<WeightRef> embed = weight("model.embed_tokens.weight", {v, h});
  if (!embed)
    return embed.takeError();
  modelType = embed->type.getElementType();
  llvm::Expected<WeightRef> finalNorm = weight("model.norm.weight", {h});
  if (!finalNorm)
    return finalNorm.takeError();
  std::optional<WeightRef> lmHead;
  if (!cfg.tieWordEmbeddings || has("lm_head.weight")) {
    llvm::Expected<WeightRef> head = weight("lm_head.weight", {v, h});
    if (!head)
      return head.takeError();
    lmHead = *head;
  }
  std::vector<LayerWeights> layers(cfg.numLayers);
  for (int64_t layer = 0; layer < cfg.numLayers; ++layer)
    if (llvm::Error err = collectLayer(layer, layers[layer]))
      return std::move(err);
  if (llvm::Error err = checkAllPlaced())
    return std::move(err);

  Type ct = computeType();
  Type i32 = builder.getI32Type();
  int64_t dyn = ShapedType::kDynamic;
  auto tokensType = RankedTensorType::get({dyn, dyn}, i32);
  auto startType = RankedTensorType::get({dyn}, i32);
  auto logitsType = RankedTensorType::get({dyn, dyn, v}, builder.getF32Type());
  llvm::SmallVector<Type> caches = cacheTypes(/*stackedOverLayers=*/true);

  // Layer functions first, so the module reads top-down from @forward.
  std::vector<func::FuncOp> layerFns;
  for (int64_t layer = 0; layer < cfg.numLayers; ++layer)
    layerFns.push_back(layerFunction(layer, layers[layer]));

  // @forward(tokens, start, caches...) -> (logits, caches...)
  llvm::SmallVector<Type> fwdArgs = {tokensType, startType};
  fwdArgs.append(caches.begin(), caches.end());
  llvm::SmallVector<Type> fwdResults = {logitsType};
  fwdResults.append(caches.begin(), caches.end());
  builder.setInsertionPointToStart(module.getBody());
  auto forward = func::FuncOp::create(
      builder, loc, "forward", builder.getFunctionType(fwdArgs, fwdResults));
  forward.setPrivate();
  {
    OpBuilder::InsertionGuard guard(builder);
    Block *body = forward.addEntryBlock();
    builder.setInsertionPointToStart(body);
    Emitter e(builder, loc);
    Value tokens = body->getArgument(0), start = body->getArgument(1);
    llvm::SmallVector<Value> cacheVals(body->getArguments().drop_front(2));
    Value batch = e.dim(tokens, 0), seq = e.dim(tokens, 1);

    Value table = materialize(*embed);
    Value hidden = EmbeddingOp::create(
        builder, loc, RankedTensorType::get({dyn, dyn, h}, ct), table, tokens);
    // positions[b, s] = start[b] + s
    MLIRContext *c = ctx;
    AffineExpr bi, si;
    bindDims(c, bi, si);
    Value posInit = tensor::EmptyOp::create(
        builder, loc, llvm::ArrayRef<OpFoldResult>{batch, seq}, i32);
    Value positions =
        linalg::GenericOp::create(
            builder, loc, TypeRange{posInit.getType()}, ValueRange{start},
            ValueRange{posInit},
            llvm::ArrayRef<AffineMap>{AffineMap::get(2, 0, {bi}, c),
                                      AffineMap::get(2, 0, {bi, si}, c)},
            llvm::ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                                utils::IteratorType::parallel},
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value s = linalg::IndexOp::create(nb, nl, 1);
              Value s32 = arith::IndexCastOp::create(nb, nl, nb.getI32Type(), s);
              linalg::YieldOp::create(
                  nb, nl, Value(arith::AddIOp::create(nb, nl, args[0], s32)));
            })
            .getResult(0);

    // Consecutive layers that share a function run in one scf.for over
    // layer-stacked weights, so the program (and its compile time) does not
    // grow with the number of layers.
    llvm::SmallVector<Type> sliceTypes = cacheTypes(false);
    auto cacheSlice = [&](Value stackedCache, OpFoldResult layer,
                          llvm::SmallVectorImpl<OpFoldResult> &offsets,
                          llvm::SmallVectorImpl<OpFoldResult> &sizes,
                          llvm::SmallVectorImpl<OpFoldResult> &strides) {
      auto type = cast<RankedTensorType>(stackedCache.getType());
      offsets.assign(type.getRank(), builder.getIndexAttr(0));
      offsets[0] = layer;
      sizes.clear();
      sizes.push_back(builder.getIndexAttr(1));
      sizes.push_back(OpFoldResult(e.dim(stackedCache, 1)));
      for (int64_t i = 2; i < type.getRank(); ++i)
        sizes.push_back(builder.getIndexAttr(type.getDimSize(i)));
      strides.assign(type.getRank(), builder.getIndexAttr(1));
    };
    // Calls the layer function on layer `layer`'s cache slices.
    auto callLayer = [&](OpBuilder &b, func::FuncOp fn, OpFoldResult layer,
                         Value h, llvm::ArrayRef<Value> stackedCaches,
                         llvm::ArrayRef<Value> weights,
                         llvm::SmallVectorImpl<Value> &newCaches) -> Value {
      llvm::SmallVector<Value> operands = {h, positions, start};
      for (auto [i, stackedCache] : llvm::enumerate(stackedCaches)) {
        llvm::SmallVector<OpFoldResult> offsets, sizes, strides;
        cacheSlice(stackedCache, layer, offsets, sizes, strides);
        operands.push_back(tensor::ExtractSliceOp::create(
            b, loc, cast<RankedTensorType>(sliceTypes[i]), stackedCache,
            offsets, sizes, strides));
      }
      operands.append(weights.begin(), weights.end());
      auto call = func::CallOp::create(b, loc, fn, operands);
      for (auto [i, stackedCache] : llvm::enumerate(stackedCaches)) {
        llvm::SmallVector<OpFoldResult> offsets, sizes, strides;
        cacheSlice(stackedCache, layer, offsets, sizes, strides);
        newCaches.push_back(tensor::InsertSliceOp::create(
            b, loc, call.getResult(1 + i), stackedCache, offsets, sizes,
            strides));
      }
      return call.getResult(0);
    };

    for (int64_t first = 0; first < cfg.numLayers;) {
      int64_t end = first + 1;
      while (end < cfg.numLayers && layerFns[end] == layerFns[first])
        ++end;
      const auto &roles = layers[first].roles;
      if (end - first == 1) {
        llvm::SmallVector<Value> weights, newCaches;
        for (const auto &[role, ref] : roles)
          weights.push_back(materialize(ref));
        hidden = callLayer(builder, layerFns[first],
                           builder.getIndexAttr(first), hidden, cacheVals,
                           weights, newCaches);
        cacheVals = newCaches;
        first = end;
        continue;
      }
      // Each role's weights of layers [first, end) as one stacked value.
      int64_t count = end - first;
      llvm::SmallVector<Value> stacks;
      for (size_t r = 0; r < roles.size(); ++r) {
        const WeightRef &ref = roles[r].second;
        WeightRef all;
        all.stacked = true;
        for (int64_t layer = first; layer < end; ++layer) {
          const WeightRef &other = layers[layer].roles[r].second;
          all.names.insert(all.names.end(), other.names.begin(),
                           other.names.end());
        }
        llvm::SmallVector<int64_t> shape = {
            static_cast<int64_t>(all.names.size())};
        llvm::ArrayRef<int64_t> tail = ref.type.getShape();
        if (ref.stacked)
          tail = tail.drop_front();
        shape.append(tail.begin(), tail.end());
        all.type = RankedTensorType::get(shape, ref.type.getElementType());
        Value stack = materialize(all);
        if (ref.stacked) {
          // [count * E, ...] -> [count, E, ...]
          llvm::SmallVector<int64_t> split = {count};
          split.append(ref.type.getShape().begin(), ref.type.getShape().end());
          llvm::SmallVector<ReassociationIndices> groups = {{0, 1}};
          for (int64_t i = 2; i < static_cast<int64_t>(split.size()); ++i)
            groups.push_back({i});
          stack = e.expand(stack, split, groups, {});
        }
        stacks.push_back(stack);
      }
      llvm::SmallVector<Value> init = {hidden};
      init.append(cacheVals.begin(), cacheVals.end());
      Value lb = arith::ConstantIndexOp::create(builder, loc, first);
      Value ub = arith::ConstantIndexOp::create(builder, loc, end);
      Value one = arith::ConstantIndexOp::create(builder, loc, 1);
      func::FuncOp fn = layerFns[first];
      auto loop = scf::ForOp::create(
          builder, loc, lb, ub, one, init,
          [&](OpBuilder &nb, Location nl, Value layer, ValueRange acc) {
            Value index = arith::SubIOp::create(
                nb, nl, layer, arith::ConstantIndexOp::create(nb, nl, first));
            llvm::SmallVector<Value> weights;
            for (auto [r, stack] : llvm::enumerate(stacks)) {
              auto type = cast<RankedTensorType>(stack.getType());
              auto roleType = roles[r].second.type;
              llvm::SmallVector<OpFoldResult> offsets(type.getRank(),
                                                      nb.getIndexAttr(0));
              offsets[0] = index;
              llvm::SmallVector<OpFoldResult> sizes = {nb.getIndexAttr(1)};
              for (int64_t d : roleType.getShape())
                sizes.push_back(nb.getIndexAttr(d));
              llvm::SmallVector<OpFoldResult> strides(type.getRank(),
                                                      nb.getIndexAttr(1));
              weights.push_back(tensor::ExtractSliceOp::create(
                  nb, nl, roleType, stack, offsets, sizes, strides));
            }
            llvm::SmallVector<Value> newCaches;
            Value h = callLayer(nb, fn, layer, acc[0],
                                llvm::to_vector(acc.drop_front()), weights,
                                newCaches);
            llvm::SmallVector<Value> yield = {h};
            yield.append(newCaches.begin(), newCaches.end());
            scf::YieldOp::create(nb, nl, yield);
          });
      hidden = loop.getResult(0);
      for (size_t i = 0; i < cacheVals.size(); ++i)
        cacheVals[i] = loop.getResult(1 + i);
      first = end;
    }
    Value normed = RMSNormOp::create(
        builder, loc, hidden.getType(), hidden, materialize(*finalNorm),
        builder.getF32FloatAttr(static_cast<float>(cfg.rmsNormEps)), UnitAttr());
    Value head = materialize(lmHead ? *lmHead : *embed);
    Value logits2d = e.linear(e.collapse(normed, {{0, 1}, {2}}), head, nullptr,
                              builder.getF32Type());
    Value logits = e.expand(logits2d, {dyn, dyn, v}, {{0, 1}, {2}},
                            {batch, seq});
    llvm::SmallVector<Value> results = {logits};
    results.append(cacheVals.begin(), cacheVals.end());
    func::ReturnOp::create(builder, loc, results);
  }

  // @prefill(tokens) -> (logits, caches...): empty caches, start 0.
  builder.setInsertionPointToStart(module.getBody());
  auto prefill = func::FuncOp::create(
      builder, loc, "prefill", builder.getFunctionType({tokensType}, fwdResults));
  {
    OpBuilder::InsertionGuard guard(builder);
    Block *body = prefill.addEntryBlock();
    builder.setInsertionPointToStart(body);
    Emitter e(builder, loc);
    Value tokens = body->getArgument(0);
    Value batch = e.dim(tokens, 0);
    llvm::SmallVector<Value> operands = {tokens,
                                         e.zeros({OpFoldResult(batch)}, i32)};
    for (Type t : caches) {
      auto type = cast<RankedTensorType>(t);
      llvm::SmallVector<OpFoldResult> sizes;
      for (int64_t i = 0; i < type.getRank(); ++i)
        sizes.push_back(i == 1 ? OpFoldResult(batch)
                               : builder.getIndexAttr(type.getDimSize(i)));
      operands.push_back(e.zeros(sizes, type.getElementType()));
    }
    auto call = func::CallOp::create(builder, loc, forward, operands);
    func::ReturnOp::create(builder, loc, call.getResults());
  }

  // @decode(tokens [B, 1], positions [B], caches...) -> (logits, caches...)
  auto decodeTokens = RankedTensorType::get({dyn, 1}, i32);
  llvm::SmallVector<Type> decodeArgs = {decodeTokens, startType};
  decodeArgs.append(caches.begin(), caches.end());
  llvm::SmallVector<Type> decodeResults = {
      RankedTensorType::get({dyn, 1, v}, builder.getF32Type())};
  decodeResults.append(caches.begin(), caches.end());
  builder.setInsertionPointAfter(prefill);
  auto decode = func::FuncOp::create(
      builder, loc, "decode",
      builder.getFunctionType(decodeArgs, decodeResults));
  {
    OpBuilder::InsertionGuard guard(builder);
    Block *body = decode.addEntryBlock();
    builder.setInsertionPointToStart(body);
    llvm::SmallVector<Value> operands = {
        tensor::CastOp::create(builder, loc, tokensType, body->getArgument(0))};
    operands.append(body->getArguments().begin() + 1,
                    body->getArguments().end());
    auto call = func::CallOp::create(builder, loc, forward, operands);
    llvm::SmallVector<Value> results = {tensor::CastOp::create(
        builder, loc, decodeResults[0], call.getResult(0))};
    results.append(call.getResults().begin() + 1, call.getResults().end());
    func::ReturnOp::create(builder, loc, results);
  }

  if (failed(verify(module)))
    return makeError(cfg.configPath +
                     ": internal error: the imported module does not verify");
  return std::move(owned);
}

} // namespace

llvm::Expected<OwningOpRef<ModuleOp>>
mlir::moe::importHFCheckpoint(MLIRContext *context, llvm::StringRef directory,
                              const HFImportOptions &options) {
  context->loadDialect<MoEDialect, arith::ArithDialect,
                       bufferization::BufferizationDialect, func::FuncDialect,
                       linalg::LinalgDialect, math::MathDialect,
                       scf::SCFDialect, tensor::TensorDialect>();
  llvm::SmallString<256> configPath(directory);
  llvm::sys::path::append(configPath, "config.json");
  if (!llvm::sys::fs::exists(configPath))
    return makeError(directory + ": is not a Hugging Face checkpoint folder "
                                 "(it has no config.json)");
  llvm::Expected<ModelConfig> config = ::moe::parseHFConfig(configPath);
  if (!config)
    return config.takeError();
  llvm::Expected<std::unique_ptr<Checkpoint>> checkpoint =
      Checkpoint::open(directory);
  if (!checkpoint)
    return checkpoint.takeError();
  int64_t cacheLen = options.maxSeqLen;
  if (cacheLen <= 0)
    cacheLen = std::min<int64_t>(config->maxPositionEmbeddings, 4096);
  std::shared_ptr<Checkpoint> shared = std::move(*checkpoint);
  Importer importer(context, *config, *shared, cacheLen);
  llvm::Expected<OwningOpRef<ModuleOp>> module = importer.run();
  if (module && options.openedCheckpoint)
    *options.openedCheckpoint = shared;
  return module;
}
