//===- LowerToLinalg.cpp - Reference lowering of moe ops ------------------===//
//
// Each moe op becomes plain loops (scf.for over tensors with scalar
// arithmetic) or simple linalg ops that compute exactly what the op's
// description states. Clarity over speed: this is the semantics other
// lowerings are checked against. Reductions and softmax run in f32.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/IR/MoEUtils.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Support/RoPE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"

#include <functional>
#include <limits>

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERTOLINALGPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {

using BodyFn = llvm::function_ref<llvm::SmallVector<Value>(
    OpBuilder &, Location, Value, ValueRange)>;

/// Scalar and loop building blocks, bound to one builder and location.
struct Emit {
  OpBuilder &b;
  Location loc;

  Type f32() { return b.getF32Type(); }
  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value f(double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  Value negInf() { return f(-std::numeric_limits<double>::infinity()); }
  Value add(Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubFOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); }
  Value div(Value x, Value y) { return arith::DivFOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return arith::MaximumFOp::create(b, loc, x, y); }
  Value min(Value x, Value y) { return arith::MinimumFOp::create(b, loc, x, y); }
  Value exp(Value x) { return math::ExpOp::create(b, loc, x); }
  Value sigmoid(Value x) {
    return div(f(1.0), add(f(1.0), exp(arith::NegFOp::create(b, loc, x))));
  }
  Value addi(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value muli(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value cmpf(arith::CmpFPredicate p, Value x, Value y) {
    return arith::CmpFOp::create(b, loc, p, x, y);
  }
  Value cmpi(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, loc, p, x, y);
  }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, loc, c, x, y);
  }
  Value toF32(Value x) {
    if (x.getType() == f32())
      return x;
    return arith::ExtFOp::create(b, loc, f32(), x);
  }
  Value fromF32(Value x, Type t) {
    if (t == f32())
      return x;
    return arith::TruncFOp::create(b, loc, t, x);
  }
  Value toIndex(Value x) {
    if (x.getType().isIndex())
      return x;
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), x);
  }
  Value extract(Value t, ValueRange idx) {
    return tensor::ExtractOp::create(b, loc, t, idx);
  }
  Value extractF32(Value t, ValueRange idx) { return toF32(extract(t, idx)); }
  Value insert(Value v, Value t, ValueRange idx) {
    return tensor::InsertOp::create(b, loc, v, t, idx);
  }
  Value dim(Value t, int64_t i) { return tensor::DimOp::create(b, loc, t, i); }
  Value empty(Value like, Type elementType) {
    return tensor::EmptyOp::create(
        b, loc, tensor::getMixedSizes(b, loc, like), elementType);
  }
  Value filled(llvm::ArrayRef<OpFoldResult> sizes, Type t, Value value) {
    Value e = tensor::EmptyOp::create(b, loc, sizes, t);
    return linalg::FillOp::create(b, loc, value, e).getResult(0);
  }
  /// scf.for lb..ub with iteration values; `body` returns the yielded ones.
  ValueRange loop(Value lb, Value ub, ValueRange init, BodyFn body) {
    auto op = scf::ForOp::create(
        b, loc, lb, ub, index(1), init,
        [&](OpBuilder &nb, Location nl, Value iv, ValueRange args) {
          scf::YieldOp::create(nb, nl, body(nb, nl, iv, args));
        });
    return op.getResults();
  }
};

/// Sum over i in [0, n) of f(i), in f32.
Value sumF32(Emit &e, Value n,
             llvm::function_ref<Value(Emit &, Value)> term) {
  return e.loop(e.index(0), n, {e.f(0.0)},
                [&](OpBuilder &nb, Location nl, Value i, ValueRange acc) {
                  Emit s{nb, nl};
                  return llvm::SmallVector<Value>{s.add(acc[0], term(s, i))};
                })[0];
}

/// A new [sizes] tensor of `et` whose element `ivs` is `element(s, ivs)`:
/// a linalg.generic without inputs, every element independent (one thread
/// each on the GPU; reductions inside `element` run serially).
Value generate(Emit &e, llvm::ArrayRef<OpFoldResult> sizes, Type et,
               llvm::function_ref<Value(Emit &, ValueRange)> element) {
  auto rank = static_cast<unsigned>(sizes.size());
  Value init = tensor::EmptyOp::create(e.b, e.loc, sizes, et);
  auto id = AffineMap::getMultiDimIdentityMap(rank, e.b.getContext());
  return linalg::GenericOp::create(
             e.b, e.loc, TypeRange{init.getType()}, ValueRange{},
             ValueRange{init}, llvm::ArrayRef<AffineMap>{id},
             llvm::SmallVector<utils::IteratorType>(
                 rank, utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange) {
               Emit s{nb, nl};
               llvm::SmallVector<Value> ivs;
               for (unsigned i = 0; i < rank; ++i)
                 ivs.push_back(linalg::IndexOp::create(nb, nl, i));
               linalg::YieldOp::create(nb, nl, element(s, ivs));
             })
      .getResult(0);
}

/// Writes `p + S <= L` as a run-time check: writing past the cache is an
/// error, never a write out of bounds.
void assertFits(Emit &e, Value start, Value count, Value capacity,
                llvm::StringRef what) {
  Value end = e.addi(start, count);
  Value fits = e.cmpi(arith::CmpIPredicate::sle, end, capacity);
  Value nonNegative = e.cmpi(arith::CmpIPredicate::sge, start, e.index(0));
  cf::AssertOp::create(e.b, e.loc, arith::AndIOp::create(e.b, e.loc, fits, nonNegative),
                       (what + ": the KV cache is full (or the position is "
                               "negative)")
                           .str());
}

//===----------------------------------------------------------------------===//
// Elementwise and normalisation ops
//===----------------------------------------------------------------------===//

struct LowerEmbedding : OpRewritePattern<EmbeddingOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(EmbeddingOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto resultType = cast<RankedTensorType>(op.getType());
    int64_t rank = resultType.getRank();
    llvm::SmallVector<OpFoldResult> sizes =
        tensor::getMixedSizes(rewriter, loc, op.getIds());
    sizes.push_back(rewriter.getIndexAttr(resultType.getShape().back()));
    Value init = tensor::EmptyOp::create(rewriter, loc, sizes,
                                         resultType.getElementType());
    MLIRContext *ctx = rewriter.getContext();
    auto outMap = AffineMap::getMultiDimIdentityMap(rank, ctx);
    auto idsMap = outMap.getMajorSubMap(rank - 1);
    Value table = op.getTable();
    // The last row: static, or the table's run-time size minus one.
    Value lastRow =
        op.getTable().getType().isDynamicDim(0)
            ? Value(arith::SubIOp::create(
                  rewriter, loc, tensor::DimOp::create(rewriter, loc, table, 0),
                  arith::ConstantIndexOp::create(rewriter, loc, 1)))
            : Value(arith::ConstantIndexOp::create(
                  rewriter, loc, op.getTable().getType().getDimSize(0) - 1));
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{resultType}, ValueRange{op.getIds()},
        ValueRange{init}, llvm::ArrayRef<AffineMap>{idsMap, outMap},
        llvm::SmallVector<utils::IteratorType>(rank,
                                               utils::IteratorType::parallel),
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          Emit s{nb, nl};
          // Out-of-range ids are clamped so that no read leaves the table.
          Value id = s.toIndex(args[0]);
          id = arith::MaxSIOp::create(nb, nl, id, s.index(0));
          id = arith::MinSIOp::create(nb, nl, id, lastRow);
          Value h = linalg::IndexOp::create(nb, nl, rank - 1);
          linalg::YieldOp::create(nb, nl, s.extract(table, {id, h}));
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

struct LowerRMSNorm : OpRewritePattern<RMSNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RMSNormOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Emit e{rewriter, loc};
    auto type = cast<RankedTensorType>(op.getType());
    int64_t rank = type.getRank();
    MLIRContext *ctx = rewriter.getContext();
    Value x = op.getInput();
    auto id = AffineMap::getMultiDimIdentityMap(rank, ctx);
    auto lead = id.getMajorSubMap(rank - 1);
    auto last = id.getMinorSubMap(1);
    llvm::SmallVector<OpFoldResult> leadSizes =
        tensor::getMixedSizes(rewriter, loc, x);
    leadSizes.pop_back();
    Value acc = e.filled(leadSizes, e.f32(), e.f(0.0));
    llvm::SmallVector<utils::IteratorType> reduceIters(
        rank, utils::IteratorType::parallel);
    reduceIters.back() = utils::IteratorType::reduction;
    Value sumSq =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{acc.getType()}, ValueRange{x},
            ValueRange{acc}, llvm::ArrayRef<AffineMap>{id, lead}, reduceIters,
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Emit s{nb, nl};
              Value v = s.toF32(args[0]);
              linalg::YieldOp::create(nb, nl, s.add(args[1], s.mul(v, v)));
            })
            .getResult(0);
    double n = static_cast<double>(type.getShape().back());
    double eps = op.getEpsilon().convertToDouble();
    bool weightInF32 = op.getWeightInF32();
    Type et = type.getElementType();
    Value init = e.empty(x, et);
    Value result =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{type},
            ValueRange{x, sumSq, op.getWeight()}, ValueRange{init},
            llvm::ArrayRef<AffineMap>{id, lead, last, id},
            llvm::SmallVector<utils::IteratorType>(
                rank, utils::IteratorType::parallel),
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Emit s{nb, nl};
              Value mean = s.div(args[1], s.f(n));
              Value inv = math::RsqrtOp::create(nb, nl, s.add(mean, s.f(eps)));
              Value normed = s.mul(s.toF32(args[0]), inv);
              Value r;
              if (weightInF32) {
                r = s.fromF32(s.mul(normed, s.toF32(args[2])), et);
              } else {
                // Cast back to the input type, then multiply (transformers).
                Value w = s.fromF32(s.toF32(args[2]), et);
                r = arith::MulFOp::create(nb, nl, s.fromF32(normed, et), w);
              }
              linalg::YieldOp::create(nb, nl, r);
            })
            .getResult(0);
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// moe.linear: with a norm prologue, the rows' RMS statistics and the
/// normalised rows first, then one GEMM; the epilogue (bias, cast,
/// residual) is one elementwise op. Rounding follows moe.rms_norm and a
/// separate residual addf step by step, so fusing changes no bit.
struct LowerLinear : OpRewritePattern<LinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Emit e{rewriter, loc};
    MLIRContext *ctx = rewriter.getContext();
    Value x = op.getInput(), w = op.getWeight();
    auto resultType = cast<RankedTensorType>(op.getResult().getType());
    Type et = resultType.getElementType();
    Type xt = cast<RankedTensorType>(x.getType()).getElementType();
    int64_t n = cast<RankedTensorType>(w.getType()).getDimSize(0);
    int64_t k = cast<RankedTensorType>(w.getType()).getDimSize(1);
    OpFoldResult tokens = tensor::getMixedSize(rewriter, loc, x, 0);
    Value acc = e.filled({tokens, rewriter.getIndexAttr(n)}, e.f32(), e.f(0.0));
    AffineExpr t, o, r;
    bindDims(ctx, t, o, r);
    auto map = [&](llvm::ArrayRef<AffineExpr> exprs, unsigned dims) {
      return AffineMap::get(dims, 0, exprs, ctx);
    };

    if (Value normWeight = op.getNormWeight()) {
      // Each row's RMS statistics, the normalised rows (moe.rms_norm's
      // arithmetic and rounding, element by element) in f32, then the
      // GEMM: the same sums in the same order as the unfused ops.
      double eps = op.getNormEpsAttr().getValueAsDouble();
      bool weightInF32 = op.getNormWeightInF32();
      Value inv = generate(e, {tokens}, e.f32(), [&](Emit &s, ValueRange ivs) {
        Value sumSq = sumF32(s, s.index(k), [&](Emit &z, Value i) {
          Value v = z.extractF32(x, {ivs[0], i});
          return z.mul(v, v);
        });
        Value mean = s.div(sumSq, s.f(static_cast<double>(k)));
        return math::RsqrtOp::create(s.b, s.loc, s.add(mean, s.f(eps)))
            .getResult();
      });
      Value xn = generate(
          e, {tokens, rewriter.getIndexAttr(k)}, e.f32(),
          [&](Emit &z, ValueRange ivs) {
            Value row = ivs[0], i = ivs[1];
            Value normed =
                z.mul(z.extractF32(x, {row, i}), z.extract(inv, {row}));
            Value nw = z.extractF32(normWeight, {i});
            Value v;
            if (weightInF32) {
              v = z.fromF32(z.mul(normed, nw), xt);
            } else {
              v = arith::MulFOp::create(z.b, z.loc, z.fromF32(normed, xt),
                                        z.fromF32(nw, xt));
            }
            return z.toF32(v);
          });
      acc = createMatmulTransposeB(rewriter, loc, xn, w, acc);
    } else {
      acc = createMatmulTransposeB(rewriter, loc, x, w, acc);
    }

    // The epilogue: bias in f32, the cast, the residual in the result type.
    Value bias = op.getBias(), residual = op.getResidual();
    if (!bias && !residual && et == e.f32()) {
      rewriter.replaceOp(op, acc);
      return success();
    }
    llvm::SmallVector<Value> ins = {acc};
    llvm::SmallVector<AffineMap> maps = {map({t, o}, 2)};
    if (bias) {
      ins.push_back(bias);
      maps.push_back(map({o}, 2));
    }
    maps.push_back(map({t, o}, 2));
    // The sum is written over the residual, so that a residual stream that
    // is not read again is updated in place.
    Value init = residual ? residual : e.empty(acc, et);
    Value result =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{resultType}, ins, ValueRange{init}, maps,
            llvm::ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                                utils::IteratorType::parallel},
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Emit s{nb, nl};
              Value v = args[0];
              if (bias)
                v = s.add(v, s.toF32(args[1]));
              v = s.fromF32(v, et);
              if (residual)
                v = s.fromF32(s.add(s.toF32(v), s.toF32(args.back())), et);
              linalg::YieldOp::create(nb, nl, v);
            })
            .getResult(0);
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// moe.rope's arithmetic on one element, shared by moe.rope and the rope
/// prologue of moe.attention.
struct RopeEmitter {
  Value freqs;
  double attentionFactor;
  bool interleaved;
  int64_t rotated;
  Type et;

  RopeEmitter(Emit &e, RopeAttr rope, RopeStyle style, int64_t rotated,
              Type et)
      : interleaved(style == RopeStyle::Interleaved), rotated(rotated),
        et(et) {
    ::moe::RopeTable table = ::moe::computeRopeTable(rope.getParams(), rotated);
    // transformers builds the table in f32.
    llvm::SmallVector<float> invFreq(table.invFreq.begin(),
                                     table.invFreq.end());
    auto tableType = RankedTensorType::get(
        {static_cast<int64_t>(invFreq.size())}, e.f32());
    freqs = arith::ConstantOp::create(
        e.b, e.loc,
        DenseElementsAttr::get(tableType, llvm::ArrayRef<float>(invFreq)));
    attentionFactor = static_cast<float>(table.attentionFactor);
  }

  /// Element `d` of the head `x[prefix..., :]` rotated for integer
  /// position `pos`, in `et` like moe.rope's result.
  Value rotate(Emit &s, Value x, llvm::ArrayRef<Value> prefix, Value d,
               Value pos) const {
    OpBuilder &nb = s.b;
    Location nl = s.loc;
    int64_t half = rotated / 2;
    Value inRange = s.cmpi(arith::CmpIPredicate::slt, d, s.index(rotated));
    Value pair, partner, negate;
    if (interleaved) {
      pair = arith::DivUIOp::create(nb, nl, d, s.index(2));
      Value odd = s.cmpi(arith::CmpIPredicate::ne,
                         arith::RemUIOp::create(nb, nl, d, s.index(2)),
                         s.index(0));
      partner = s.select(odd, arith::SubIOp::create(nb, nl, d, s.index(1)),
                         s.addi(d, s.index(1)));
      negate = arith::XOrIOp::create(
          nb, nl, odd, arith::ConstantOp::create(nb, nl, nb.getBoolAttr(true)));
    } else {
      negate = s.cmpi(arith::CmpIPredicate::slt, d, s.index(half));
      pair = s.select(negate, d, arith::SubIOp::create(nb, nl, d, s.index(half)));
      partner = s.select(negate, s.addi(d, s.index(half)),
                         arith::SubIOp::create(nb, nl, d, s.index(half)));
    }
    // Elements past the rotated part pass through.
    pair = s.select(inRange, pair, s.index(0));
    partner = s.select(inRange, partner, d);
    Value p = arith::SIToFPOp::create(nb, nl, s.f32(), pos);
    Value angle = s.mul(p, s.extract(freqs, {pair}));
    Value c = s.mul(math::CosOp::create(nb, nl, angle), s.f(attentionFactor));
    Value sn = s.mul(math::SinOp::create(nb, nl, angle), s.f(attentionFactor));
    llvm::SmallVector<Value> at(prefix.begin(), prefix.end());
    at.push_back(d);
    Value self = s.extractF32(x, at);
    at.back() = partner;
    Value other = s.extractF32(x, at);
    Value rot = s.select(negate, arith::NegFOp::create(nb, nl, other), other);
    Value r = s.add(s.mul(self, c), s.mul(rot, sn));
    r = s.select(inRange, r, self);
    return s.fromF32(r, et);
  }
};

struct LowerRope : OpRewritePattern<RopeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RopeOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Emit e{rewriter, loc};
    auto type = cast<RankedTensorType>(op.getType());
    Type et = type.getElementType();
    RopeEmitter rope(e, op.getRope(), op.getStyle(), op.getRotatedDim(), et);
    MLIRContext *ctx = rewriter.getContext();
    auto id = AffineMap::getMultiDimIdentityMap(4, ctx);
    auto posMap = id.getMajorSubMap(2);
    Value x = op.getInput();
    Value result =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{type}, ValueRange{x, op.getPositions()},
            ValueRange{e.empty(x, et)},
            llvm::ArrayRef<AffineMap>{id, posMap, id},
            llvm::SmallVector<utils::IteratorType>(
                4, utils::IteratorType::parallel),
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Emit s{nb, nl};
              Value bi = linalg::IndexOp::create(nb, nl, 0);
              Value si = linalg::IndexOp::create(nb, nl, 1);
              Value hi = linalg::IndexOp::create(nb, nl, 2);
              Value d = linalg::IndexOp::create(nb, nl, 3);
              linalg::YieldOp::create(
                  nb, nl, rope.rotate(s, x, {bi, si, hi}, d, args[1]));
            })
            .getResult(0);
    rewriter.replaceOp(op, result);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// Softmax-weighted average over cache rows j in [lo, hi] (inclusive):
/// `score(j)` gives the logit, `accumulate(j, p, row)` adds p times row j's
/// value to `row` (a [width] f32 tensor). An optional sink logit joins the
/// softmax and is dropped. Returns the averaged row.
Value attend(Emit &e, Value lo, Value hi, Value sink, int64_t width,
             llvm::function_ref<Value(Emit &, Value)> score,
             llvm::function_ref<Value(Emit &, Value, Value, Value)> accumulate) {
  Value end = e.addi(hi, e.index(1));
  Value m = e.loop(lo, end, {sink ? sink : e.negInf()},
                   [&](OpBuilder &nb, Location nl, Value j, ValueRange acc) {
                     Emit s{nb, nl};
                     return llvm::SmallVector<Value>{s.max(acc[0], score(s, j))};
                   })[0];
  Value den = e.loop(lo, end, {sink ? e.exp(e.sub(sink, m)) : e.f(0.0)},
                     [&](OpBuilder &nb, Location nl, Value j, ValueRange acc) {
                       Emit s{nb, nl};
                       Value p = s.exp(s.sub(score(s, j), m));
                       return llvm::SmallVector<Value>{s.add(acc[0], p)};
                     })[0];
  Value row = e.filled({e.b.getIndexAttr(width)}, e.f32(), e.f(0.0));
  return e.loop(lo, end, {row},
                [&](OpBuilder &nb, Location nl, Value j, ValueRange acc) {
                  Emit s{nb, nl};
                  Value p = s.div(s.exp(s.sub(score(s, j), m)), den);
                  return llvm::SmallVector<Value>{accumulate(s, j, p, acc[0])};
                })[0];
}

/// row += p * t[prefix..., 0:width]
Value axpyRow(Emit &e, Value row, Value p, Value t, llvm::ArrayRef<Value> prefix,
              int64_t width, int64_t offset = 0) {
  return e.loop(e.index(0), e.index(width), {row},
                [&](OpBuilder &nb, Location nl, Value d, ValueRange acc) {
                  Emit s{nb, nl};
                  llvm::SmallVector<Value> idx(prefix.begin(), prefix.end());
                  idx.push_back(offset ? s.addi(d, s.index(offset)) : d);
                  Value v = s.extractF32(t, idx);
                  Value cur = s.extract(acc[0], {d});
                  return llvm::SmallVector<Value>{
                      s.insert(s.add(cur, s.mul(p, v)), acc[0], {d})};
                })[0];
}

/// Writes `row` (f32, or index for ids) into out[prefix..., :] converting
/// to out's element type.
Value storeRow(Emit &e, Value out, Value row, llvm::ArrayRef<Value> prefix,
               int64_t width) {
  Type et = cast<RankedTensorType>(out.getType()).getElementType();
  return e.loop(e.index(0), e.index(width), {out},
                [&](OpBuilder &nb, Location nl, Value d, ValueRange acc) {
                  Emit s{nb, nl};
                  llvm::SmallVector<Value> idx(prefix.begin(), prefix.end());
                  idx.push_back(d);
                  Value v = s.extract(row, {d});
                  v = v.getType().isIndex()
                          ? arith::IndexCastOp::create(nb, nl, et, v)
                          : s.fromF32(v, et);
                  return llvm::SmallVector<Value>{s.insert(v, acc[0], idx)};
                })[0];
}

/// An scf.forall over [0, bounds[0]) x ... whose iteration `ivs` computes
/// one row per output: `rows(s, ivs)` returns, for each `outs[n]` (of rank
/// bounds.size() + 1), the [W_n] row stored at outs[n][at..., 0:W_n],
/// where `at` is `ivs` or what `rowAt(s, ivs)` returns (emitted first).
/// The rows (a token's routing, a query head's attention) are independent,
/// so the CUDA target runs one per thread. Returns the updated outputs.
llvm::SmallVector<Value>
forEachRow(Emit &e, llvm::ArrayRef<OpFoldResult> bounds, ValueRange outs,
           llvm::function_ref<llvm::SmallVector<Value>(Emit &, ValueRange)>
               rows,
           llvm::function_ref<llvm::SmallVector<Value>(Emit &, ValueRange)>
               rowAt = nullptr) {
  OpBuilder &b = e.b;
  auto forall =
      scf::ForallOp::create(b, e.loc, bounds, outs, /*mapping=*/std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(forall.getTerminator());
  Emit s{b, e.loc};
  llvm::SmallVector<Value> ivs = forall.getInductionVars();
  llvm::SmallVector<Value> at = rowAt ? rowAt(s, ivs) : ivs;
  llvm::SmallVector<Value> values = rows(s, ivs);
  llvm::SmallVector<OpFoldResult> offsets(at.begin(), at.end());
  offsets.push_back(b.getIndexAttr(0));
  llvm::SmallVector<OpFoldResult> strides(offsets.size(), b.getIndexAttr(1));
  llvm::SmallVector<Value> zeros(ivs.size(), s.index(0));
  llvm::SmallVector<std::pair<Value, llvm::SmallVector<OpFoldResult>>> slices;
  for (auto [shared, row] : llvm::zip(forall.getRegionIterArgs(), values)) {
    // Written through a slice of the shared output, so that bufferization
    // writes the row in place.
    int64_t width = cast<RankedTensorType>(row.getType()).getDimSize(0);
    llvm::SmallVector<OpFoldResult> sizes(ivs.size(), b.getIndexAttr(1));
    sizes.push_back(b.getIndexAttr(width));
    Value slice = tensor::ExtractSliceOp::create(b, e.loc, shared, offsets,
                                                 sizes, strides);
    slices.push_back({storeRow(s, slice, row, zeros, width), sizes});
  }
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  for (auto [slice, shared] : llvm::zip(slices, forall.getRegionIterArgs()))
    tensor::ParallelInsertSliceOp::create(b, e.loc, slice.first, shared,
                                          offsets, slice.second, strides);
  return llvm::SmallVector<Value>(forall.getResults());
}

/// An f32 [width] row whose element i is `element(s, i)`.
Value buildRow(Emit &e, int64_t width,
               llvm::function_ref<Value(Emit &, Value)> element) {
  Value row = e.filled({e.b.getIndexAttr(width)}, e.f32(), e.f(0.0));
  return e.loop(e.index(0), e.index(width), {row},
                [&](OpBuilder &nb, Location nl, Value i, ValueRange a) {
                  Emit x{nb, nl};
                  Value v = x.toF32(element(x, i));
                  return llvm::SmallVector<Value>{x.insert(v, a[0], {i})};
                })[0];
}

/// Appends new rows to KV caches ([B, L, ...]): for every (b, t, inner...)
/// in `bounds` ([B, S, inner...]), `rows(s, ivs)` gives one row per cache,
/// written at cache[b, p + t, inner..., :] where p = cache_position[b],
/// after the run-time check that the S rows fit. One thread per row on the
/// GPU. Rows are read element by element (no insert_slice of the new
/// tensor: MLIR 22's expand-strided-metadata crashes on a subview of an
/// expand_shape with dynamic sizes, which that would become).
llvm::SmallVector<Value>
appendRows(Emit &e, llvm::ArrayRef<OpFoldResult> bounds, ValueRange caches,
           Value pos, llvm::StringRef what,
           llvm::function_ref<llvm::SmallVector<Value>(Emit &, ValueRange)>
               rows) {
  Value seq = getValueOrCreateConstantIndexOp(e.b, e.loc, bounds[1]);
  Value capacity = e.dim(caches[0], 1);
  return forEachRow(e, bounds, caches, rows, [&](Emit &s, ValueRange ivs) {
    Value p = s.toIndex(s.extract(pos, {ivs[0]}));
    assertFits(s, p, seq, capacity, what);
    llvm::SmallVector<Value> at(ivs.begin(), ivs.end());
    at[1] = s.addi(p, ivs[1]);
    return at;
  });
}

/// The (sequence b, new token t, head h) space shared by the attention
/// lowerings: `row(s, b, t, h, abs)` returns query head h's f32 output row,
/// where `abs = cache_position[b] + t` is the token's absolute position;
/// the rows fill `out` ([B, S, heads, W]). One thread per query head on
/// the GPU.
Value forEachQueryHead(
    Emit &e, int64_t heads, Value pos, Value out,
    llvm::function_ref<Value(Emit &, Value, Value, Value, Value)> row) {
  llvm::SmallVector<OpFoldResult> bounds = {
      tensor::getMixedSize(e.b, e.loc, out, 0),
      tensor::getMixedSize(e.b, e.loc, out, 1), e.b.getIndexAttr(heads)};
  return forEachRow(e, bounds, {out},
                    [&](Emit &s, ValueRange ivs) {
                      Value b = ivs[0], t = ivs[1], h = ivs[2];
                      Value abs = s.addi(s.toIndex(s.extract(pos, {b})), t);
                      return llvm::SmallVector<Value>{row(s, b, t, h, abs)};
                    })[0];
}

struct LowerAttention : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Emit e{rewriter, loc};
    auto qType = cast<RankedTensorType>(op.getQuery().getType());
    auto kcType = cast<RankedTensorType>(op.getKeyCache().getType());
    auto vcType = cast<RankedTensorType>(op.getValueCache().getType());
    int64_t hq = qType.getDimSize(2), d = qType.getDimSize(3);
    int64_t hkv = kcType.getDimSize(2), dv = vcType.getDimSize(3);
    int64_t group = hq / hkv;
    int64_t window = op.getSlidingWindowAttr().getInt();
    double scale = op.getScale().convertToDouble();
    Value q = op.getQuery(), pos = op.getCachePosition(), sinks = op.getSinks();

    // The fused rotary embedding: keys are rotated on their way into the
    // cache, each query head once before its scores.
    std::optional<RopeEmitter> rope;
    Value positions = op.getPositions();
    if (positions)
      rope.emplace(e, *op.getRope(), *op.getRopeStyle(), d,
                   cast<RankedTensorType>(op.getKey().getType()).getElementType());

    // 1. Append the new keys and values, one (sequence, token, KV head)
    // per iteration.
    Value key = op.getKey(), value = op.getValue();
    llvm::SmallVector<Value> caches = appendRows(
        e,
        {tensor::getMixedSize(rewriter, loc, key, 0),
         tensor::getMixedSize(rewriter, loc, key, 1),
         rewriter.getIndexAttr(hkv)},
        {op.getKeyCache(), op.getValueCache()}, pos, "moe.attention",
        [&](Emit &s, ValueRange ivs) {
          Value b = ivs[0], t = ivs[1], h = ivs[2];
          Value keyRow = buildRow(s, d, [&](Emit &x, Value i) {
            return rope ? rope->rotate(x, key, {b, t, h}, i,
                                       x.extract(positions, {b, t}))
                        : x.extract(key, {b, t, h, i});
          });
          Value valueRow = buildRow(s, dv, [&](Emit &x, Value i) {
            return x.extract(value, {b, t, h, i});
          });
          return llvm::SmallVector<Value>{keyRow, valueRow};
        });
    Value kc = caches[0], vc = caches[1];

    // 2. Attend, one (sequence, token, head) at a time.
    Value out = tensor::EmptyOp::create(
        rewriter, loc,
        llvm::SmallVector<OpFoldResult>{tensor::getMixedSize(rewriter, loc, q, 0),
                                        tensor::getMixedSize(rewriter, loc, q, 1),
                                        rewriter.getIndexAttr(hq),
                                        rewriter.getIndexAttr(dv)},
        cast<RankedTensorType>(op.getResult().getType()).getElementType());
    Value result = forEachQueryHead(
        e, hq, pos, out,
        [&](Emit &s3, Value b, Value t, Value h, Value abs) {
          OpBuilder &b3 = s3.b;
          Location l3 = s3.loc;
          Value lo = s3.index(0);
          if (window > 0) {
            Value start =
                arith::SubIOp::create(b3, l3, abs, s3.index(window - 1));
            lo = arith::MaxSIOp::create(b3, l3, start, s3.index(0));
          }
          Value kvh = arith::DivUIOp::create(b3, l3, h, s3.index(group));
          Value sink = sinks ? s3.extractF32(sinks, {h}) : Value();
          Value qRow;
          if (rope) {
            Value at = s3.extract(positions, {b, t});
            qRow = buildRow(s3, d, [&](Emit &x, Value i) {
              return rope->rotate(x, q, {b, t, h}, i, at);
            });
          }
          auto score = [&](Emit &s, Value j) {
            Value dot = sumF32(s, s.index(d), [&](Emit &x, Value i) {
              Value qi = qRow ? x.extract(qRow, {i})
                              : x.extractF32(q, {b, t, h, i});
              return x.mul(qi, x.extractF32(kc, {b, j, kvh, i}));
            });
            return s.mul(dot, s.f(scale));
          };
          auto accumulate = [&](Emit &s, Value j, Value pr, Value row) {
            return axpyRow(s, row, pr, vc, {b, j, kvh}, dv);
          };
          return attend(s3, lo, abs, sink, dv, score, accumulate);
        });
    rewriter.replaceOp(op, {result, kc, vc});
    return success();
  }
};

/// The first step of both MLA forms: the new latents and rotated shared
/// keys written to cache rows [p, p + S) of each sequence (with the
/// overflow check). Returns the updated cache.
template <typename OpTy>
Value appendLatents(OpTy op, Emit &e, int64_t r,
                    const std::optional<RopeEmitter> &rope) {
  Value pos = op.getCachePosition(), qn = op.getQNope();
  // One (sequence, token) per iteration: the latent, then k_pe (rotated,
  // as one head, with a rope prologue) in one row of R + Dr.
  Value latent = op.getLatent(), kPe = op.getKPe();
  int64_t dr = cast<RankedTensorType>(kPe.getType()).getDimSize(2);
  return appendRows(
      e,
      {tensor::getMixedSize(e.b, e.loc, qn, 0),
       tensor::getMixedSize(e.b, e.loc, qn, 1)},
      {op.getCache()}, pos, OpTy::getOperationName(),
      [&](Emit &s, ValueRange ivs) {
        Value b = ivs[0], t = ivs[1];
        Value row = s.filled({s.b.getIndexAttr(r + dr)}, s.f32(), s.f(0.0));
        row = s.loop(s.index(0), s.index(r), {row},
                     [&](OpBuilder &nb, Location nl, Value i, ValueRange a) {
                       Emit x{nb, nl};
                       Value v = x.toF32(x.extract(latent, {b, t, i}));
                       return llvm::SmallVector<Value>{x.insert(v, a[0], {i})};
                     })[0];
        row = s.loop(
            s.index(0), s.index(dr), {row},
            [&](OpBuilder &nb, Location nl, Value j, ValueRange a) {
              Emit x{nb, nl};
              Value v = rope ? rope->rotate(x, kPe, {b, t}, j,
                                            x.extract(op.getPositions(), {b, t}))
                             : x.extract(kPe, {b, t, j});
              return llvm::SmallVector<Value>{
                  x.insert(x.toF32(v), a[0], {x.addi(j, x.index(r))})};
            })[0];
        return llvm::SmallVector<Value>{row};
      })[0];
}

/// The rope prologue of an MLA op, if it has one.
template <typename OpTy>
std::optional<RopeEmitter> getMLARope(OpTy op, Emit &e) {
  if (!op.getPositions())
    return std::nullopt;
  int64_t dr = cast<RankedTensorType>(op.getQPe().getType()).getDimSize(3);
  return RopeEmitter(
      e, *op.getRope(), *op.getRopeStyle(), dr,
      cast<RankedTensorType>(op.getQPe().getType()).getElementType());
}

/// q_pe[b, t, h, :] as an f32 [Dr] row, rotated when the op has a rope
/// prologue; returns an accessor (i) -> f32.
template <typename OpTy>
std::function<Value(Emit &, Value)>
qPeRow(OpTy op, Emit &s, const std::optional<RopeEmitter> &rope, Value b,
       Value t, Value h) {
  Value qp = op.getQPe();
  if (!rope)
    return [qp, b, t, h](Emit &x, Value i) {
      return x.extractF32(qp, {b, t, h, i});
    };
  int64_t dr = cast<RankedTensorType>(qp.getType()).getDimSize(3);
  Value at = s.extract(op.getPositions(), {b, t});
  Value row = buildRow(s, dr, [&](Emit &x, Value i) {
    return rope->rotate(x, qp, {b, t, h}, i, at);
  });
  return [row](Emit &x, Value i) { return x.extract(row, {i}); };
}

/// max_b(cache_position[b]) + seq: the end of the longest sequence after
/// this step, the cache rows an MLA op's attention may read.
Value longestEnd(Emit &e, Value pos, Value batch, Value seq) {
  Value longest = e.loop(
      e.index(0), batch, {e.index(0)},
      [&](OpBuilder &nb, Location nl, Value b, ValueRange a) {
        Emit s{nb, nl};
        Value p = s.toIndex(s.extract(pos, {b}));
        return llvm::SmallVector<Value>{arith::MaxSIOp::create(nb, nl, a[0], p)};
      })[0];
  return e.addi(longest, seq);
}

/// An empty result [B, S, N, Dv] for an MLA op.
template <typename OpTy>
Value emptyMLAResult(OpTy op, OpBuilder &b, int64_t n, int64_t dv) {
  Location loc = op.getLoc();
  Value qn = op.getQNope();
  Type et = cast<RankedTensorType>(op.getResult().getType()).getElementType();
  return tensor::EmptyOp::create(
      b, loc,
      llvm::SmallVector<OpFoldResult>{tensor::getMixedSize(b, loc, qn, 0),
                                      tensor::getMixedSize(b, loc, qn, 1),
                                      b.getIndexAttr(n), b.getIndexAttr(dv)},
      et);
}

using WeightFn = llvm::function_ref<Value(Emit &, Value, Value, Value)>;

/// The absorbed MLA form, one query head per iteration: W_UK[n] is
/// [Dn, R] and W_UV[n] is [Dv, R], read through `uk(n, i, c)` /
/// `uv(n, i, c)`; `cache` holds the latents (appendLatents). Returns the
/// [B, S, N, Dv] result.
template <typename OpTy>
Value perHeadMLA(OpTy op, Emit &e, Value cache,
                 const std::optional<RopeEmitter> &rope, WeightFn uk,
                 WeightFn uv, int64_t dv) {
  auto qType = cast<RankedTensorType>(op.getQNope().getType());
  int64_t n = qType.getDimSize(2), dn = qType.getDimSize(3);
  int64_t dr = cast<RankedTensorType>(op.getQPe().getType()).getDimSize(3);
  int64_t r = cast<RankedTensorType>(op.getLatent().getType()).getDimSize(2);
  double scale = op.getScale().convertToDouble();
  Value qn = op.getQNope(), pos = op.getCachePosition();
  Value out = emptyMLAResult(op, e.b, n, dv);
  return forEachQueryHead(
      e, n, pos, out, [&](Emit &s3, Value b, Value t, Value h, Value abs) {
        OpBuilder &b3 = s3.b;
        auto qPe = qPeRow(op, s3, rope, b, t, h);
        // q_lat[c] = sum_i q_nope[i] * W_UK[i, c]
        Value qLat = s3.filled({b3.getIndexAttr(r)}, s3.f32(),
                               s3.f(0.0));
        qLat = s3.loop(
            s3.index(0), s3.index(r), {qLat},
            [&](OpBuilder &b4, Location l4, Value c, ValueRange a) {
              Emit s4{b4, l4};
              Value v = sumF32(s4, s4.index(dn), [&](Emit &x, Value i) {
                return x.mul(x.extractF32(qn, {b, t, h, i}),
                             uk(x, h, i, c));
              });
              return llvm::SmallVector<Value>{
                  s4.insert(v, a[0], {c})};
            })[0];
        auto score = [&](Emit &s, Value j) {
          Value nope = sumF32(s, s.index(r), [&](Emit &x, Value c) {
            return x.mul(x.extract(qLat, {c}),
                         x.extractF32(cache, {b, j, c}));
          });
          Value pe = sumF32(s, s.index(dr), [&](Emit &x, Value i) {
            return x.mul(qPe(x, i),
                         x.extractF32(cache, {b, j, x.addi(i, x.index(r))}));
          });
          return s.mul(s.add(nope, pe), s.f(scale));
        };
        auto accumulate = [&](Emit &s, Value j, Value pr, Value row) {
          return axpyRow(s, row, pr, cache, {b, j}, r);
        };
        Value oLat = attend(s3, s3.index(0), abs, Value(), r, score,
                            accumulate);
        // result[i] = sum_c W_UV[i, c] * o_lat[c]
        Value row = s3.filled({b3.getIndexAttr(dv)}, s3.f32(),
                              s3.f(0.0));
        row = s3.loop(
            s3.index(0), s3.index(dv), {row},
            [&](OpBuilder &b4, Location l4, Value i, ValueRange a) {
              Emit s4{b4, l4};
              Value v = sumF32(s4, s4.index(r), [&](Emit &x, Value c) {
                return x.mul(uv(x, h, i, c), x.extract(oLat, {c}));
              });
              return llvm::SmallVector<Value>{
                  s4.insert(v, a[0], {i})};
            })[0];
        return row;
      });
}

/// Most attention scores ([B, S, N, J] floats) the staged form
/// materialises; past it (long prompts) the per-head form runs.
constexpr int64_t kMaxStagedScores = int64_t(1) << 26;

/// The absorbed MLA form in stages, each a tensor of independent elements
/// (one GPU thread each), where the per-head form gives a decode step one
/// thread per head with everything serial in it:
///   q_lat[b,t,h,c] = sum_i q_nope[b,t,h,i] W_UK[h,i,c]
///   q_rot[b,t,h,i] = q_pe[b,t,h,i], rotated when the op has a rope
///   s[b,t,h,j]     = (q_lat . cache[b,j,:R] + q_rot . cache[b,j,R:])
///                    * scale for j <= abs, else -inf
///   m[b,t,h]       = max_j s;   d[b,t,h] = sum_j exp(s - m)
///   o_lat[b,t,h,c] = sum_{j<=abs} exp(s - m) / d * cache[b,j,c]
///   out[b,t,h,i]   = sum_c W_UV[h,i,c] o_lat[b,t,h,c]
/// J is the longest sequence's end (max_b cache_position[b] + S). The
/// scores are materialised; an scf.if runs the per-head form instead when
/// they would exceed kMaxStagedScores floats. Same sums, same order within
/// each, as the per-head form.
template <typename OpTy>
Value stagedMLA(OpTy op, Emit &e, Value cache,
                const std::optional<RopeEmitter> &rope, WeightFn uk,
                WeightFn uv, int64_t dv) {
  OpBuilder &b0 = e.b;
  Location loc = e.loc;
  auto qType = cast<RankedTensorType>(op.getQNope().getType());
  int64_t n = qType.getDimSize(2), dn = qType.getDimSize(3);
  int64_t dr = cast<RankedTensorType>(op.getQPe().getType()).getDimSize(3);
  int64_t r = cast<RankedTensorType>(op.getLatent().getType()).getDimSize(2);
  double scale = op.getScale().convertToDouble();
  Value qn = op.getQNope(), qp = op.getQPe(), pos = op.getCachePosition();
  Type resultType = op.getResult().getType();
  Type et = cast<RankedTensorType>(resultType).getElementType();
  Value batch = e.dim(qn, 0), seq = e.dim(qn, 1);
  Value rows = longestEnd(e, pos, batch, seq);
  Value scores = e.muli(e.muli(e.muli(batch, seq), e.index(n)), rows);
  Value fits = e.cmpi(arith::CmpIPredicate::ule, scores,
                      e.index(kMaxStagedScores));
  auto check = scf::IfOp::create(b0, loc, TypeRange{resultType}, fits,
                                 /*withElseRegion=*/true);
  auto yieldResult = [&](Emit &s, Value v) {
    if (v.getType() != resultType)
      v = tensor::CastOp::create(s.b, s.loc, resultType, v);
    scf::YieldOp::create(s.b, s.loc, v);
  };
  {
    OpBuilder::InsertionGuard guard(b0);
    b0.setInsertionPointToStart(&check.getElseRegion().front());
    Emit s{b0, loc};
    yieldResult(s, perHeadMLA(op, s, cache, rope, uk, uv, dv));
  }
  OpBuilder::InsertionGuard guard(b0);
  b0.setInsertionPointToStart(&check.getThenRegion().front());
  Emit s{b0, loc};
  OpFoldResult bs = tensor::getMixedSize(b0, loc, qn, 0);
  OpFoldResult ss = tensor::getMixedSize(b0, loc, qn, 1);
  auto heads = [&](int64_t width) {
    return llvm::SmallVector<OpFoldResult>{bs, ss, b0.getIndexAttr(n),
                                           b0.getIndexAttr(width)};
  };
  auto absOf = [&](Emit &x, Value b, Value t) {
    return x.addi(x.toIndex(x.extract(pos, {b})), t);
  };
  Value qLat = generate(s, heads(r), s.f32(), [&](Emit &x, ValueRange iv) {
    return sumF32(x, x.index(dn), [&](Emit &y, Value i) {
      return y.mul(y.extractF32(qn, {iv[0], iv[1], iv[2], i}),
                   uk(y, iv[2], i, iv[3]));
    });
  });
  Value qRot = generate(s, heads(dr), s.f32(), [&](Emit &x, ValueRange iv) {
    if (!rope)
      return x.extractF32(qp, {iv[0], iv[1], iv[2], iv[3]});
    Value at = x.extract(op.getPositions(), {iv[0], iv[1]});
    return x.toF32(rope->rotate(x, qp, {iv[0], iv[1], iv[2]}, iv[3], at));
  });
  llvm::SmallVector<OpFoldResult> scoreSizes = {bs, ss, b0.getIndexAttr(n),
                                                rows};
  Value score = generate(s, scoreSizes, s.f32(), [&](Emit &x, ValueRange iv) {
    Value b = iv[0], t = iv[1], h = iv[2], j = iv[3];
    Value nope = sumF32(x, x.index(r), [&](Emit &y, Value c) {
      return y.mul(y.extract(qLat, {b, t, h, c}),
                   y.extractF32(cache, {b, j, c}));
    });
    Value pe = sumF32(x, x.index(dr), [&](Emit &y, Value i) {
      return y.mul(y.extract(qRot, {b, t, h, i}),
                   y.extractF32(cache, {b, j, y.addi(i, y.index(r))}));
    });
    Value visible = x.cmpi(arith::CmpIPredicate::sle, j, absOf(x, b, t));
    return x.select(visible, x.mul(x.add(nope, pe), x.f(scale)), x.negInf());
  });
  llvm::SmallVector<OpFoldResult> headSizes = {bs, ss, b0.getIndexAttr(n)};
  auto overVisible = [&](Emit &x, ValueRange iv, Value init, BodyFn body) {
    return x.loop(x.index(0), x.addi(absOf(x, iv[0], iv[1]), x.index(1)),
                  {init}, body)[0];
  };
  Value maxScore = generate(s, headSizes, s.f32(), [&](Emit &x, ValueRange iv) {
    return overVisible(x, iv, x.negInf(),
                       [&](OpBuilder &nb, Location nl, Value j, ValueRange a) {
                         Emit y{nb, nl};
                         Value v = y.extract(score, {iv[0], iv[1], iv[2], j});
                         return llvm::SmallVector<Value>{y.max(a[0], v)};
                       });
  });
  auto weight = [&](Emit &y, ValueRange iv, Value j) {
    Value v = y.extract(score, {iv[0], iv[1], iv[2], j});
    return y.exp(y.sub(v, y.extract(maxScore, {iv[0], iv[1], iv[2]})));
  };
  Value den = generate(s, headSizes, s.f32(), [&](Emit &x, ValueRange iv) {
    return overVisible(x, iv, x.f(0.0),
                       [&](OpBuilder &nb, Location nl, Value j, ValueRange a) {
                         Emit y{nb, nl};
                         return llvm::SmallVector<Value>{
                             y.add(a[0], weight(y, iv, j))};
                       });
  });
  Value oLat = generate(s, heads(r), s.f32(), [&](Emit &x, ValueRange iv) {
    Value d = x.extract(den, {iv[0], iv[1], iv[2]});
    return overVisible(
        x, iv, x.f(0.0),
        [&](OpBuilder &nb, Location nl, Value j, ValueRange a) {
          Emit y{nb, nl};
          Value p = y.div(weight(y, iv, j), d);
          Value v = y.extractF32(cache, {iv[0], j, iv[3]});
          return llvm::SmallVector<Value>{y.add(a[0], y.mul(p, v))};
        });
  });
  Value result = generate(s, heads(dv), et, [&](Emit &x, ValueRange iv) {
    Value v = sumF32(x, x.index(r), [&](Emit &y, Value c) {
      return y.mul(uv(y, iv[2], iv[3], c),
                   y.extract(oLat, {iv[0], iv[1], iv[2], c}));
    });
    return x.fromF32(v, et);
  });
  yieldResult(s, result);
  return check.getResult(0);
}

/// The naive form as the checkpoints describe it: every cached latent of
/// the sequence is expanded by kv_b into per-head k_nope and v once, then
/// each query attends over the expanded rows.
struct LowerMLA : OpRewritePattern<MLAOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MLAOp op,
                                PatternRewriter &rewriter) const override {
    Emit e{rewriter, op.getLoc()};
    auto qType = cast<RankedTensorType>(op.getQNope().getType());
    int64_t n = qType.getDimSize(2), dn = qType.getDimSize(3);
    int64_t dr = cast<RankedTensorType>(op.getQPe().getType()).getDimSize(3);
    int64_t r = cast<RankedTensorType>(op.getLatent().getType()).getDimSize(2);
    int64_t dv = cast<RankedTensorType>(op.getResult().getType()).getDimSize(3);
    double scale = op.getScale().convertToDouble();
    Value qn = op.getQNope(), pos = op.getCachePosition();
    Value kvb = op.getKvBWeight();
    Value batch = e.dim(qn, 0), seq = e.dim(qn, 1);
    std::optional<RopeEmitter> rope = getMLARope(op, e);
    Value cache = appendLatents(op, e, r, rope);
    Value out = emptyMLAResult(op, rewriter, n, dv);

    // kv[b, j, h, :] = kv_b[h*(Dn+Dv) : (h+1)*(Dn+Dv)] * latent[b, j] for
    // every cached row j < max_b(cache_position[b]) + S, once per call;
    // rows past a shorter sequence's end are computed and never read.
    Value rows = longestEnd(e, pos, batch, seq);
    Value kv = generate(
        e,
        {tensor::getMixedSize(rewriter, op.getLoc(), qn, 0), rows,
         rewriter.getIndexAttr(n), rewriter.getIndexAttr(dn + dv)},
        e.f32(), [&](Emit &s, ValueRange ivs) {
          Value b = ivs[0], j = ivs[1], h = ivs[2], i = ivs[3];
          Value row = s.addi(s.muli(h, s.index(dn + dv)), i);
          return sumF32(s, s.index(r), [&](Emit &x, Value c) {
            return x.mul(x.extractF32(kvb, {row, c}),
                         x.extractF32(cache, {b, j, c}));
          });
        });
    Value result = forEachQueryHead(
        e, n, pos, out, [&](Emit &s, Value b, Value t, Value h, Value abs) {
          auto qPe = qPeRow(op, s, rope, b, t, h);
          auto score = [&](Emit &x, Value j) {
            Value nope = sumF32(x, x.index(dn), [&](Emit &y, Value i) {
              return y.mul(y.extractF32(qn, {b, t, h, i}),
                           y.extract(kv, {b, j, h, i}));
            });
            Value pe = sumF32(x, x.index(dr), [&](Emit &y, Value i) {
              return y.mul(qPe(y, i),
                           y.extractF32(cache, {b, j, y.addi(i, y.index(r))}));
            });
            return x.mul(x.add(nope, pe), x.f(scale));
          };
          auto accumulate = [&](Emit &x, Value j, Value pr, Value row) {
            return axpyRow(x, row, pr, kv, {b, j, h}, dv, dn);
          };
          return attend(s, s.index(0), abs, Value(), dv, score, accumulate);
        });
    rewriter.replaceOp(op, {result, cache});
    return success();
  }
};

struct LowerMLAAbsorbed : OpRewritePattern<MLAAbsorbedOp> {
  LowerMLAAbsorbed(MLIRContext *ctx, bool staged)
      : OpRewritePattern(ctx), staged(staged) {}
  LogicalResult matchAndRewrite(MLAAbsorbedOp op,
                                PatternRewriter &rewriter) const override {
    Emit e{rewriter, op.getLoc()};
    int64_t dv = cast<RankedTensorType>(op.getResult().getType()).getDimSize(3);
    int64_t r = cast<RankedTensorType>(op.getLatent().getType()).getDimSize(2);
    Value wuk = op.getWUk(), wuv = op.getWUv();
    auto uk = [&](Emit &s, Value n, Value i, Value c) {
      return s.extractF32(wuk, {n, i, c});
    };
    auto uv = [&](Emit &s, Value n, Value i, Value c) {
      return s.extractF32(wuv, {n, i, c});
    };
    std::optional<RopeEmitter> rope = getMLARope(op, e);
    Value cache = appendLatents(op, e, r, rope);
    Value result = staged ? stagedMLA(op, e, cache, rope, uk, uv, dv)
                          : perHeadMLA(op, e, cache, rope, uk, uv, dv);
    rewriter.replaceOp(op, {result, cache});
    return success();
  }

private:
  bool staged;
};

//===----------------------------------------------------------------------===//
// Routing and experts
//===----------------------------------------------------------------------===//

/// The index and value of the largest `value(i)` over i in [0, n) among
/// those with `eligible(i)`; ties go to the lower index.
std::pair<Value, Value>
argmax(Emit &e, int64_t n, llvm::function_ref<Value(Emit &, Value)> value,
       llvm::function_ref<Value(Emit &, Value)> eligible) {
  ValueRange best = e.loop(
      e.index(0), e.index(n), {e.index(-1), e.negInf()},
      [&](OpBuilder &nb, Location nl, Value i, ValueRange acc) {
        Emit s{nb, nl};
        Value v = value(s, i);
        Value none = s.cmpi(arith::CmpIPredicate::slt, acc[0], s.index(0));
        Value better = arith::OrIOp::create(
            nb, nl, none, s.cmpf(arith::CmpFPredicate::OGT, v, acc[1]));
        Value take = arith::AndIOp::create(nb, nl, eligible(s, i), better);
        return llvm::SmallVector<Value>{s.select(take, i, acc[0]),
                                        s.select(take, v, acc[1])};
      });
  return {best[0], best[1]};
}

/// The expert-sorted permutation of moe.fused_route from the `[T, k]` ids:
/// per-expert counts, offsets rounded up to `tile`, then each slot
/// `t * k + j` placed at its expert's cursor (so in increasing order).
std::pair<Value, Value> emitPermutation(Emit &e, Value ids, Value tokens,
                                        int64_t k, int64_t numExperts,
                                        int64_t tile) {
  OpBuilder &b = e.b;
  Type i32 = b.getI32Type();
  auto toI32 = [&](Emit &x, Value v) {
    return arith::IndexCastOp::create(x.b, x.loc, i32, v).getResult();
  };
  Value slotCount = e.muli(tokens, e.index(k));
  Value counts = e.filled({b.getIndexAttr(numExperts)}, b.getIndexType(),
                          e.index(0));
  counts = e.loop(e.index(0), slotCount, {counts},
                  [&](OpBuilder &nb, Location nl, Value slot, ValueRange a) {
                    Emit x{nb, nl};
                    Value t = arith::DivUIOp::create(nb, nl, slot, x.index(k));
                    Value j = arith::RemUIOp::create(nb, nl, slot, x.index(k));
                    Value ex = x.toIndex(x.extract(ids, {t, j}));
                    Value c = x.addi(x.extract(a[0], {ex}), x.index(1));
                    return llvm::SmallVector<Value>{x.insert(c, a[0], {ex})};
                  })[0];
  // offsets[e] = sum over e' < e of roundup(counts[e'], tile).
  Value offsets = tensor::EmptyOp::create(
      b, e.loc, llvm::ArrayRef<int64_t>{numExperts + 1}, i32);
  ValueRange scan = e.loop(
      e.index(0), e.index(numExperts), {offsets, e.index(0)},
      [&](OpBuilder &nb, Location nl, Value ex, ValueRange a) {
        Emit x{nb, nl};
        Value c = x.extract(counts, {ex});
        Value padded = x.muli(
            arith::CeilDivUIOp::create(nb, nl, c, x.index(tile)), x.index(tile));
        return llvm::SmallVector<Value>{x.insert(toI32(x, a[1]), a[0], {ex}),
                                        x.addi(a[1], padded)};
      });
  offsets = e.insert(toI32(e, scan[1]), scan[0], {e.index(numExperts)});
  // sorted_slots has T * k + E * (tile - 1) entries, -1 where unused.
  Value size = e.addi(slotCount, e.index(numExperts * (tile - 1)));
  Value minusOne = arith::ConstantOp::create(b, e.loc, b.getI32IntegerAttr(-1));
  Value slots = e.filled({OpFoldResult(size)}, i32, minusOne);
  Value cursor = e.loop(e.index(0), e.index(numExperts), {counts},
                        [&](OpBuilder &nb, Location nl, Value ex, ValueRange a) {
                          Emit x{nb, nl};
                          Value o = x.toIndex(x.extract(offsets, {ex}));
                          return llvm::SmallVector<Value>{
                              x.insert(o, a[0], {ex})};
                        })[0];
  slots = e.loop(e.index(0), slotCount, {slots, cursor},
                 [&](OpBuilder &nb, Location nl, Value slot, ValueRange a) {
                   Emit x{nb, nl};
                   Value t = arith::DivUIOp::create(nb, nl, slot, x.index(k));
                   Value j = arith::RemUIOp::create(nb, nl, slot, x.index(k));
                   Value ex = x.toIndex(x.extract(ids, {t, j}));
                   Value at = x.extract(a[1], {ex});
                   return llvm::SmallVector<Value>{
                       x.insert(toI32(x, slot), a[0], {at}),
                       x.insert(x.addi(at, x.index(1)), a[1], {ex})};
                 })[0];
  return {offsets, slots};
}

/// moe.route and moe.fused_route: the logits as one linalg.matmul, then
/// each token's selection and weights (independent iterations of an
/// scf.forall); the fused op also builds the expert-sorted permutation.
template <typename OpTy>
LogicalResult lowerRouting(OpTy op, PatternRewriter &rewriter) {
  constexpr bool fused = std::is_same_v<OpTy, FusedRouteOp>;
  Location loc = op.getLoc();
  Emit e{rewriter, loc};
  int64_t numExperts = op.getNumExperts(), k = op.getTopK();
  int64_t nGroup = op.getNGroup(), topkGroup = op.getTopkGroup();
  int64_t groupSize = numExperts / nGroup;
  ScoreFunc scoreFn = op.getScore();
  bool topkFirst = op.getOrder() == RouteOrder::TopKThenSoftmax;
  bool top2 = op.getGroupScore() == GroupScore::Top2Sum;
  Value hidden = op.getHidden(), selBias = op.getSelectionBias(),
        logitBias = op.getLogitBias(), gate = op.getGateWeight();
  Value tokens = e.dim(hidden, 0);
  OpFoldResult tokenCount = tensor::getMixedSize(rewriter, loc, hidden, 0);
  Type hiddenType = cast<RankedTensorType>(hidden.getType()).getElementType();
  bool roundLogits = op.getRoundLogits() && !hiddenType.isF32();

  // logits = hidden * gate^T in f32.
  Value zeros = e.filled({tokenCount, rewriter.getIndexAttr(numExperts)},
                         e.f32(), e.f(0.0));
  Value logits = createMatmulTransposeB(rewriter, loc, hidden, gate, zeros);

  Value ids = tensor::EmptyOp::create(
      rewriter, loc,
      llvm::SmallVector<OpFoldResult>{tokenCount, rewriter.getIndexAttr(k)},
      rewriter.getI32Type());
  Value weights = tensor::EmptyOp::create(
      rewriter, loc,
      llvm::SmallVector<OpFoldResult>{tokenCount, rewriter.getIndexAttr(k)},
      e.f32());
  double eps = op.getRenormEps().convertToDouble();
  double factor = op.getScalingFactor().convertToDouble();
  bool renorm = op.getRenorm() == Renorm::Sum;

  // One token per iteration (a thread on the GPU).
  llvm::SmallVector<Value> results = forEachRow(
      e, {tokenCount}, {ids, weights},
      [&](Emit &s, ValueRange ivs) {
        OpBuilder &nb = s.b;
        Location nl = s.loc;
        Value t = ivs[0];
        auto logit = [&](Emit &x, Value i) {
          Value l = x.extract(logits, {t, i});
          if (logitBias)
            l = x.add(l, x.extractF32(logitBias, {i}));
          if (roundLogits)
            l = x.toF32(x.fromF32(l, hiddenType));
          return l;
        };
        // Softmax statistics over all experts when needed.
        Value maxLogit, sumExp;
        if (scoreFn == ScoreFunc::Softmax && !topkFirst) {
          maxLogit = s.loop(s.index(0), s.index(numExperts), {s.negInf()},
                            [&](OpBuilder &b2, Location l2, Value i,
                                ValueRange a) {
                              Emit x{b2, l2};
                              return llvm::SmallVector<Value>{
                                  x.max(a[0], logit(x, i))};
                            })[0];
          sumExp = sumF32(s, s.index(numExperts), [&](Emit &x, Value i) {
            return x.exp(x.sub(logit(x, i), maxLogit));
          });
        }
        auto score = [&](Emit &x, Value i) -> Value {
          Value l = logit(x, i);
          if (topkFirst)
            return l;
          switch (scoreFn) {
          case ScoreFunc::Softmax:
            return x.div(x.exp(x.sub(l, maxLogit)), sumExp);
          case ScoreFunc::Sigmoid:
            return x.sigmoid(l);
          case ScoreFunc::None:
            return l;
          }
          llvm_unreachable("score function");
        };
        auto selection = [&](Emit &x, Value i) {
          Value v = score(x, i);
          return selBias ? x.add(v, x.extractF32(selBias, {i})) : v;
        };

        // Group-limited selection: keep the best topk_group groups.
        Value keptGroups;
        if (nGroup > 1) {
          Value groupScores = s.filled({nb.getIndexAttr(nGroup)}, s.f32(),
                                       s.f(0.0));
          groupScores = s.loop(
              s.index(0), s.index(nGroup), {groupScores},
              [&](OpBuilder &b2, Location l2, Value g, ValueRange a) {
                Emit x{b2, l2};
                Value base = x.muli(g, x.index(groupSize));
                auto member = [&](Emit &y, Value i) {
                  return selection(y, y.addi(base, i));
                };
                auto [first, firstValue] = argmax(
                    x, groupSize, member, [&](Emit &y, Value) {
                      return arith::ConstantOp::create(y.b, y.loc,
                                                       y.b.getBoolAttr(true))
                          .getResult();
                    });
                Value gs = firstValue;
                if (top2) {
                  Value firstIdx = first;
                  auto [second, secondValue] = argmax(
                      x, groupSize, member, [&](Emit &y, Value i) {
                        return y.cmpi(arith::CmpIPredicate::ne, i, firstIdx);
                      });
                  (void)second;
                  gs = x.add(firstValue, secondValue);
                }
                return llvm::SmallVector<Value>{x.insert(gs, a[0], {g})};
              })[0];
          keptGroups = s.filled({nb.getIndexAttr(nGroup)}, nb.getI1Type(),
                                arith::ConstantOp::create(
                                    nb, nl, nb.getBoolAttr(false)));
          keptGroups = s.loop(
              s.index(0), s.index(topkGroup), {keptGroups},
              [&](OpBuilder &b2, Location l2, Value, ValueRange a) {
                Emit x{b2, l2};
                Value kept = a[0];
                auto [g, gv] = argmax(
                    x, nGroup,
                    [&](Emit &y, Value i) { return y.extract(groupScores, {i}); },
                    [&](Emit &y, Value i) {
                      return arith::XOrIOp::create(
                          y.b, y.loc, y.extract(kept, {i}),
                          arith::ConstantOp::create(y.b, y.loc,
                                                    y.b.getBoolAttr(true)));
                    });
                (void)gv;
                Value yes = arith::ConstantOp::create(b2, l2,
                                                      b2.getBoolAttr(true));
                return llvm::SmallVector<Value>{x.insert(yes, kept, {g})};
              })[0];
        }

        // Top-k by repeated argmax, skipping chosen experts and dropped
        // groups (their scores count as -inf).
        Value chosen = s.filled({nb.getIndexAttr(numExperts)}, nb.getI1Type(),
                                arith::ConstantOp::create(
                                    nb, nl, nb.getBoolAttr(false)));
        Value idRow = s.filled({nb.getIndexAttr(k)}, nb.getIndexType(),
                               s.index(0));
        ValueRange picked = s.loop(
            s.index(0), s.index(k), {chosen, idRow},
            [&](OpBuilder &b2, Location l2, Value j, ValueRange a) {
              Emit x{b2, l2};
              Value chosenNow = a[0];
              auto [best, bestValue] = argmax(
                  x, numExperts, selection, [&](Emit &y, Value i) -> Value {
                    Value free = arith::XOrIOp::create(
                        y.b, y.loc, y.extract(chosenNow, {i}),
                        arith::ConstantOp::create(y.b, y.loc,
                                                  y.b.getBoolAttr(true)));
                    if (!keptGroups)
                      return free;
                    Value g = arith::DivUIOp::create(y.b, y.loc, i,
                                                     y.index(groupSize));
                    return arith::AndIOp::create(y.b, y.loc, free,
                                                 y.extract(keptGroups, {g}));
                  });
              (void)bestValue;
              Value yes = arith::ConstantOp::create(b2, l2,
                                                    b2.getBoolAttr(true));
              return llvm::SmallVector<Value>{
                  x.insert(yes, chosenNow, {best}),
                  x.insert(best, a[1], {j})};
            });
        Value idsRow = picked[1];

        // Weights from the unbiased scores (softmax over the k for
        // top-k-then-softmax), renormalised and scaled.
        Value wRow = s.filled({nb.getIndexAttr(k)}, s.f32(), s.f(0.0));
        Value topMax;
        if (topkFirst)
          topMax = s.loop(s.index(0), s.index(k), {s.negInf()},
                          [&](OpBuilder &b2, Location l2, Value j, ValueRange a) {
                            Emit x{b2, l2};
                            Value v = logit(x, x.extract(idsRow, {j}));
                            return llvm::SmallVector<Value>{x.max(a[0], v)};
                          })[0];
        wRow = s.loop(s.index(0), s.index(k), {wRow},
                      [&](OpBuilder &b2, Location l2, Value j, ValueRange a) {
                        Emit x{b2, l2};
                        Value i = x.extract(idsRow, {j});
                        Value v = topkFirst ? x.exp(x.sub(logit(x, i), topMax))
                                            : score(x, i);
                        return llvm::SmallVector<Value>{x.insert(v, a[0], {j})};
                      })[0];
        Value total = sumF32(s, s.index(k), [&](Emit &x, Value j) {
          return x.extract(wRow, {j});
        });
        wRow = s.loop(
            s.index(0), s.index(k), {wRow},
            [&](OpBuilder &b2, Location l2, Value j, ValueRange a) {
              Emit x{b2, l2};
              Value w = x.extract(a[0], {j});
              if (topkFirst)
                w = x.div(w, total); // Softmax over the k; sums to one.
              if (renorm)
                w = x.div(w, x.add(topkFirst ? x.f(1.0) : total, x.f(eps)));
              w = x.mul(w, x.f(factor));
              return llvm::SmallVector<Value>{x.insert(w, a[0], {j})};
            })[0];
        return llvm::SmallVector<Value>{idsRow, wRow};
      });
  if constexpr (!fused) {
    rewriter.replaceOp(op, {results[0], results[1]});
  } else {
    auto [offsets, slots] = emitPermutation(e, results[0], tokens, k,
                                            numExperts, op.getTile());
    if (slots.getType() != op.getSortedSlots().getType())
      slots = tensor::CastOp::create(rewriter, loc,
                                     op.getSortedSlots().getType(), slots);
    rewriter.replaceOp(op, {results[0], results[1], offsets, slots});
  }
  return success();
}

struct LowerRoute : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RouteOp op,
                                PatternRewriter &rewriter) const override {
    return lowerRouting(op, rewriter);
  }
};

struct LowerFusedRoute : OpRewritePattern<FusedRouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(FusedRouteOp op,
                                PatternRewriter &rewriter) const override {
    return lowerRouting(op, rewriter);
  }
};

/// The operands and attributes moe.experts and moe.grouped_experts share.
struct ExpertFFNs {
  Value x, ids, w, gw, uw, dw, gb, ub, db, sg, su, sd, sgate;
  int64_t numExperts, inter, hidden, k, sharedWidth;
  bool clamped;
  double alpha, limit, beta;

  template <typename OpTy>
  static ExpertFFNs get(OpTy op) {
    ExpertFFNs f;
    f.x = op.getHidden();
    f.ids = op.getExpertIds();
    f.w = op.getExpertWeights();
    f.gw = op.getGateWeight();
    f.uw = op.getUpWeight();
    f.dw = op.getDownWeight();
    f.gb = op.getGateBias();
    f.ub = op.getUpBias();
    f.db = op.getDownBias();
    f.sg = op.getSharedGateWeight();
    f.su = op.getSharedUpWeight();
    f.sd = op.getSharedDownWeight();
    f.sgate = op.getSharedExpertGate();
    auto gateType = cast<RankedTensorType>(f.gw.getType());
    f.numExperts = gateType.getDimSize(0);
    f.inter = gateType.getDimSize(1);
    f.hidden = gateType.getDimSize(2);
    f.k = cast<RankedTensorType>(f.ids.getType()).getDimSize(1);
    f.sharedWidth =
        f.sg ? cast<RankedTensorType>(f.sg.getType()).getDimSize(0) : 0;
    f.clamped = op.getActivation() == Activation::SwiGLUClamped;
    f.alpha = op.getAlpha().convertToDouble();
    f.limit = op.getLimit().convertToDouble();
    f.beta = op.getBeta().convertToDouble();
    return f;
  }

  /// The routed experts use the op's activation; the shared expert is
  /// always a plain SwiGLU FFN.
  Value act(Emit &s, Value g, Value u, bool useClamped) const {
    if (!useClamped)
      return s.mul(s.mul(g, s.sigmoid(g)), u);
    Value gc = s.min(g, s.f(limit));
    Value uc = s.max(s.min(u, s.f(limit)), s.f(-limit));
    Value glu = s.mul(gc, s.sigmoid(s.mul(gc, s.f(alpha))));
    return s.mul(s.add(uc, s.f(beta)), glu);
  }

  /// The shared expert's scale for token t: 1, or sigmoid(shared_gate . x).
  Value sharedScale(Emit &s, Value t) const {
    if (!sgate)
      return s.f(1.0);
    return s.sigmoid(sumF32(s, s.index(hidden), [&](Emit &z, Value h) {
      return z.mul(z.extractF32(sgate, {z.index(0), h}),
                   z.extractF32(x, {t, h}));
    }));
  }

  /// An expert id clamped into [0, E), so that no read leaves the weights.
  Value clampExpert(Emit &y, Value id) const {
    Value ex = y.toIndex(id);
    ex = arith::MaxSIOp::create(y.b, y.loc, ex, y.index(0));
    return arith::MinSIOp::create(y.b, y.loc, ex, y.index(numExperts - 1));
  }
};

/// One FFN's weights, read element by element in f32: gate/up (i, h),
/// down (h, i), and optional biases (row); `width` is its intermediate size.
struct FFNWeights {
  std::function<Value(Emit &, Value, Value)> gate, up, down;
  std::function<Value(Emit &, Value)> gateBias, upBias, downBias;
  int64_t width;
  bool clamped;
};

/// Routed expert `ex` (an index value) of `f`.
FFNWeights routedWeights(const ExpertFFNs &f, Value ex) {
  FFNWeights w;
  w.gate = [&f, ex](Emit &z, Value i, Value h) { return z.extractF32(f.gw, {ex, i, h}); };
  w.up = [&f, ex](Emit &z, Value i, Value h) { return z.extractF32(f.uw, {ex, i, h}); };
  w.down = [&f, ex](Emit &z, Value h, Value i) { return z.extractF32(f.dw, {ex, h, i}); };
  if (f.gb) {
    w.gateBias = [&f, ex](Emit &z, Value i) { return z.extractF32(f.gb, {ex, i}); };
    w.upBias = [&f, ex](Emit &z, Value i) { return z.extractF32(f.ub, {ex, i}); };
    w.downBias = [&f, ex](Emit &z, Value h) { return z.extractF32(f.db, {ex, h}); };
  }
  w.width = f.inter;
  w.clamped = f.clamped;
  return w;
}

/// The shared expert of `f`: a plain SwiGLU FFN without biases.
FFNWeights sharedWeights(const ExpertFFNs &f) {
  FFNWeights w;
  w.gate = [&f](Emit &z, Value i, Value h) { return z.extractF32(f.sg, {i, h}); };
  w.up = [&f](Emit &z, Value i, Value h) { return z.extractF32(f.su, {i, h}); };
  w.down = [&f](Emit &z, Value h, Value i) { return z.extractF32(f.sd, {h, i}); };
  w.width = f.sharedWidth;
  w.clamped = false;
  return w;
}

/// The gather-GEMV form, reading each token's experts' weights directly,
/// in two steps of independent elements: every (token, choice,
/// intermediate) activation of the routed experts (and every (token,
/// intermediate) one of the shared expert), then every (token, hidden)
/// output, summing its experts' down projections in choice order and the
/// shared expert's last, in f32; the result has element type `et`.
Value emitGatherExperts(Emit &e, const ExpertFFNs &f, Type et) {
  OpBuilder &b = e.b;
  Value x = f.x;
  OpFoldResult tokens = tensor::getMixedSize(b, e.loc, x, 0);
  // act(gate_i . x_t, up_i . x_t) of one FFN.
  auto activation = [&](Emit &y, Value t, Value i, const FFNWeights &w) {
    Value g = sumF32(y, y.index(f.hidden), [&](Emit &z, Value h) {
      return z.mul(w.gate(z, i, h), z.extractF32(x, {t, h}));
    });
    Value u = sumF32(y, y.index(f.hidden), [&](Emit &z, Value h) {
      return z.mul(w.up(z, i, h), z.extractF32(x, {t, h}));
    });
    if (w.gateBias) {
      g = y.add(g, w.gateBias(y, i));
      u = y.add(u, w.upBias(y, i));
    }
    return f.act(y, g, u, w.clamped);
  };
  // The down projection of activation row `a(i)` of one FFN, output h.
  auto down = [&](Emit &y, Value h, const FFNWeights &w,
                  llvm::function_ref<Value(Emit &, Value)> a) {
    Value v = sumF32(y, y.index(w.width), [&](Emit &z, Value i) {
      return z.mul(w.down(z, h, i), a(z, i));
    });
    return w.downBias ? y.add(v, w.downBias(y, h)) : v;
  };
  auto expertOf = [&](Emit &y, Value t, Value j) {
    return f.clampExpert(y, y.extract(f.ids, {t, j}));
  };
  Value routed = generate(
      e, {tokens, b.getIndexAttr(f.k), b.getIndexAttr(f.inter)}, e.f32(),
      [&](Emit &s, ValueRange ivs) {
        Value ex = expertOf(s, ivs[0], ivs[1]);
        return activation(s, ivs[0], ivs[2], routedWeights(f, ex));
      });
  Value shared, sharedScale;
  if (f.sg) {
    shared = generate(e, {tokens, b.getIndexAttr(f.sharedWidth)}, e.f32(),
                      [&](Emit &s, ValueRange ivs) {
                        return activation(s, ivs[0], ivs[1], sharedWeights(f));
                      });
    sharedScale = generate(e, {tokens}, e.f32(), [&](Emit &s, ValueRange ivs) {
      return f.sharedScale(s, ivs[0]);
    });
  }
  return generate(
      e, {tokens, b.getIndexAttr(f.hidden)}, et,
      [&](Emit &s, ValueRange ivs) {
        Value t = ivs[0], h = ivs[1];
        Value acc = s.loop(
            s.index(0), s.index(f.k), {s.f(0.0)},
            [&](OpBuilder &b2, Location l2, Value j, ValueRange a) {
              Emit y{b2, l2};
              Value v = down(y, h, routedWeights(f, expertOf(y, t, j)),
                             [&](Emit &z, Value i) {
                               return z.extract(routed, {t, j, i});
                             });
              Value weight = y.extract(f.w, {t, j});
              return llvm::SmallVector<Value>{y.add(a[0], y.mul(weight, v))};
            })[0];
        if (f.sg) {
          Value v = down(s, h, sharedWeights(f), [&](Emit &z, Value i) {
            return z.extract(shared, {t, i});
          });
          acc = s.add(acc, s.mul(s.extract(sharedScale, {t}), v));
        }
        return s.fromF32(acc, et);
      });
}

/// The rows of one tile: for r in [0, tile), the token it reads, the weight
/// its output is scaled by, and whether it is a real row (padding is not).
struct TileRows {
  llvm::SmallVector<Value> token, scale, valid;
};

/// One tile of a grouped GEMM FFN, accumulated into `acc` ([T, H] f32):
/// the gate and up projections share one pass over the weights (each weight
/// element is loaded once and used for all rows of the tile, which are kept
/// in scalars), with the activation as their epilogue; the down projection's
/// epilogue scales each row and adds it into its token's row of `acc`.
Value emitFFNTile(Emit &e, const ExpertFFNs &f, const TileRows &rows,
                  const FFNWeights &w, Value acc) {
  int64_t width = w.width;
  int64_t tile = rows.token.size();
  OpBuilder &b = e.b;
  // act[r, i] for the tile's rows.
  Value act = tensor::EmptyOp::create(
      b, e.loc, llvm::ArrayRef<int64_t>{tile, width}, e.f32());
  act = e.loop(
      e.index(0), e.index(width), {act},
      [&](OpBuilder &b1, Location l1, Value i, ValueRange a) {
        Emit s{b1, l1};
        llvm::SmallVector<Value> init(2 * tile, s.f(0.0));
        ValueRange gu = s.loop(
            s.index(0), s.index(f.hidden), init,
            [&](OpBuilder &b2, Location l2, Value h, ValueRange sums) {
              Emit y{b2, l2};
              Value wg = w.gate(y, i, h), wu = w.up(y, i, h);
              llvm::SmallVector<Value> next;
              for (int64_t r = 0; r < tile; ++r) {
                Value xv = y.extractF32(f.x, {rows.token[r], h});
                next.push_back(y.add(sums[r], y.mul(wg, xv)));
              }
              for (int64_t r = 0; r < tile; ++r) {
                Value xv = y.extractF32(f.x, {rows.token[r], h});
                next.push_back(y.add(sums[tile + r], y.mul(wu, xv)));
              }
              return next;
            });
        Value t = a[0];
        for (int64_t r = 0; r < tile; ++r) {
          Value g = gu[r], u = gu[tile + r];
          if (w.gateBias) {
            g = s.add(g, w.gateBias(s, i));
            u = s.add(u, w.upBias(s, i));
          }
          t = s.insert(f.act(s, g, u, w.clamped), t, {s.index(r), i});
        }
        return llvm::SmallVector<Value>{t};
      })[0];
  return e.loop(
      e.index(0), e.index(f.hidden), {acc},
      [&](OpBuilder &b1, Location l1, Value h, ValueRange a) {
        Emit s{b1, l1};
        llvm::SmallVector<Value> init(tile, s.f(0.0));
        ValueRange sums = s.loop(
            s.index(0), s.index(width), init,
            [&](OpBuilder &b2, Location l2, Value i, ValueRange cur) {
              Emit y{b2, l2};
              Value wd = w.down(y, h, i);
              llvm::SmallVector<Value> next;
              for (int64_t r = 0; r < tile; ++r)
                next.push_back(y.add(
                    cur[r], y.mul(wd, y.extract(act, {y.index(r), i}))));
              return next;
            });
        Value out = a[0];
        for (int64_t r = 0; r < tile; ++r) {
          Value v = sums[r];
          if (w.downBias)
            v = s.add(v, w.downBias(s, h));
          Value old = s.extract(out, {rows.token[r], h});
          Value sum = s.add(old, s.mul(rows.scale[r], v));
          out = s.insert(s.select(rows.valid[r], sum, old), out,
                         {rows.token[r], h});
        }
        return llvm::SmallVector<Value>{out};
      })[0];
}

/// The grouped-GEMM form: each expert's rows of the permutation, a tile at
/// a time, then the shared expert as one more group over every token.
Value emitGroupedExperts(Emit &e, const ExpertFFNs &f, Value offsets,
                         Value slots, int64_t tile, Value out) {
  OpBuilder &b = e.b;
  Value x = f.x, tokens = e.dim(x, 0);
  Value acc = e.filled({tensor::getMixedSize(b, e.loc, x, 0),
                        b.getIndexAttr(f.hidden)},
                       e.f32(), e.f(0.0));
  Value slotCount = e.dim(slots, 0);
  Value routedSlots = e.muli(tokens, e.index(f.k));
  acc = e.loop(
      e.index(0), e.index(f.numExperts), {acc},
      [&](OpBuilder &b1, Location l1, Value ex, ValueRange a1) {
        Emit s{b1, l1};
        // Segment bounds clamped into the slots: a malformed permutation
        // cannot make the loop run past them.
        auto clampToSlots = [&](Value v) -> Value {
          v = arith::MaxSIOp::create(b1, l1, v, s.index(0));
          return arith::MinSIOp::create(b1, l1, v, slotCount);
        };
        Value lo = clampToSlots(s.toIndex(s.extract(offsets, {ex})));
        Value hi = clampToSlots(
            s.toIndex(s.extract(offsets, {s.addi(ex, s.index(1))})));
        auto loop = scf::ForOp::create(
            b1, l1, lo, hi, s.index(tile), ValueRange{a1[0]},
            [&](OpBuilder &b2, Location l2, Value r0, ValueRange a2) {
              Emit y{b2, l2};
              TileRows rows;
              for (int64_t r = 0; r < tile; ++r) {
                // A row is real when it lies inside the segment and the
                // slots, and names a slot of this call's T * k; anything
                // else (padding, or a malformed permutation) reads row 0
                // and adds nothing, so no read leaves its tensor.
                Value at = y.addi(r0, y.index(r));
                Value inSlots = arith::AndIOp::create(
                    b2, l2, y.cmpi(arith::CmpIPredicate::sge, at, y.index(0)),
                    y.cmpi(arith::CmpIPredicate::slt, at, slotCount));
                Value inside = arith::AndIOp::create(
                    b2, l2, inSlots, y.cmpi(arith::CmpIPredicate::slt, at, hi));
                Value slot = y.toIndex(
                    y.extract(slots, {y.select(inSlots, at, y.index(0))}));
                Value named = arith::AndIOp::create(
                    b2, l2, y.cmpi(arith::CmpIPredicate::sge, slot, y.index(0)),
                    y.cmpi(arith::CmpIPredicate::slt, slot, routedSlots));
                Value real = arith::AndIOp::create(b2, l2, inside, named);
                slot = y.select(real, slot, y.index(0));
                Value t = arith::DivUIOp::create(b2, l2, slot, y.index(f.k));
                Value j = arith::RemUIOp::create(b2, l2, slot, y.index(f.k));
                rows.token.push_back(t);
                rows.scale.push_back(
                    y.select(real, y.extract(f.w, {t, j}), y.f(0.0)));
                rows.valid.push_back(real);
              }
              Value next =
                  emitFFNTile(y, f, rows, routedWeights(f, ex), a2[0]);
              scf::YieldOp::create(b2, l2, next);
            });
        return llvm::SmallVector<Value>{loop.getResult(0)};
      })[0];
  if (f.sg) {
    // The shared expert: always selected, every token, weight 1 or its
    // sigmoid gate.
    auto loop = scf::ForOp::create(
        b, e.loc, e.index(0), tokens, e.index(tile), ValueRange{acc},
        [&](OpBuilder &b2, Location l2, Value r0, ValueRange a2) {
          Emit y{b2, l2};
          TileRows rows;
          Value last = y.addi(tokens, y.index(-1));
          for (int64_t r = 0; r < tile; ++r) {
            Value at = y.addi(r0, y.index(r));
            Value inside = y.cmpi(arith::CmpIPredicate::slt, at, tokens);
            Value t = arith::MinSIOp::create(b2, l2, at, last);
            rows.token.push_back(t);
            rows.scale.push_back(f.sharedScale(y, t));
            rows.valid.push_back(inside);
          }
          Value next = emitFFNTile(y, f, rows, sharedWeights(f), a2[0]);
          scf::YieldOp::create(b2, l2, next);
        });
    acc = loop.getResult(0);
  }
  // The f32 accumulator in the hidden states' type.
  Type et = cast<RankedTensorType>(out.getType()).getElementType();
  return e.loop(
      e.index(0), tokens, {out},
      [&](OpBuilder &b1, Location l1, Value t, ValueRange o1) {
        Emit s{b1, l1};
        return llvm::SmallVector<Value>{s.loop(
            s.index(0), s.index(f.hidden), {o1[0]},
            [&](OpBuilder &b2, Location l2, Value h, ValueRange o2) {
              Emit y{b2, l2};
              Value v = y.fromF32(y.extract(acc, {t, h}), et);
              return llvm::SmallVector<Value>{y.insert(v, o2[0], {t, h})};
            })[0]};
      })[0];
}

struct LowerExperts : OpRewritePattern<ExpertsOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ExpertsOp op,
                                PatternRewriter &rewriter) const override {
    Emit e{rewriter, op.getLoc()};
    ExpertFFNs f = ExpertFFNs::get(op);
    Type et = cast<RankedTensorType>(op.getResult().getType()).getElementType();
    rewriter.replaceOp(op, emitGatherExperts(e, f, et));
    return success();
  }
};

/// Chooses the form on the token count at run time: decode steps (few
/// tokens) read each token's experts directly, prefill runs grouped GEMMs.
/// Without grouped GEMMs, the gather form runs every token count.
struct LowerGroupedExperts : OpRewritePattern<GroupedExpertsOp> {
  LowerGroupedExperts(MLIRContext *ctx, bool groupedGEMM)
      : OpRewritePattern(ctx), groupedGEMM(groupedGEMM) {}

  LogicalResult matchAndRewrite(GroupedExpertsOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Emit e{rewriter, loc};
    ExpertFFNs f = ExpertFFNs::get(op);
    Type resultType = op.getResult().getType();
    Type et = cast<RankedTensorType>(resultType).getElementType();
    if (!groupedGEMM) {
      rewriter.replaceOp(op, emitGatherExperts(e, f, et));
      return success();
    }
    Value out = e.empty(f.x, et);
    Value few = e.cmpi(arith::CmpIPredicate::ule, e.dim(f.x, 0),
                       e.index(op.getGemvMaxTokens()));
    auto choice = scf::IfOp::create(
        rewriter, loc, few,
        [&](OpBuilder &b, Location l) {
          Emit s{b, l};
          scf::YieldOp::create(b, l, emitGatherExperts(s, f, et));
        },
        [&](OpBuilder &b, Location l) {
          Emit s{b, l};
          scf::YieldOp::create(
              b, l,
              emitGroupedExperts(s, f, op.getExpertOffsets(),
                                 op.getSortedSlots(), op.getTile(), out));
        });
    rewriter.replaceOp(op, choice.getResult(0));
    return success();
  }

private:
  bool groupedGEMM;
};

struct MoELowerToLinalgPass
    : impl::MoELowerToLinalgPassBase<MoELowerToLinalgPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    ConversionTarget target(*ctx);
    target.addLegalDialect<arith::ArithDialect, cf::ControlFlowDialect,
                           linalg::LinalgDialect, math::MathDialect,
                           scf::SCFDialect, tensor::TensorDialect>();
    target.addIllegalOp<EmbeddingOp, RMSNormOp, LinearOp, RopeOp, AttentionOp, MLAOp,
                        MLAAbsorbedOp, RouteOp, FusedRouteOp, ExpertsOp,
                        GroupedExpertsOp>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(ctx);
    patterns.add<LowerEmbedding, LowerRMSNorm, LowerLinear, LowerRope, LowerAttention,
                 LowerMLA, LowerRoute, LowerFusedRoute, LowerExperts>(ctx);
    patterns.add<LowerGroupedExperts>(ctx, groupedGEMM);
    patterns.add<LowerMLAAbsorbed>(ctx, stagedMLA);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
} // namespace mlir::moe
