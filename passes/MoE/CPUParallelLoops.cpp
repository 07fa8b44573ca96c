//===- CPUParallelLoops.cpp - Parallel loops on the runtime's threads -----===//
//
// Implements -moe-cpu-parallel-loops. The reference lowering writes its
// independent iterations (a token's routing, a query head's attention, a
// new KV-cache row) as scf.forall, which reaches the CPU pipeline as
// scf.parallel after bufferization. scf-to-cf would run them serially;
// this pass hands each outermost one to the runtime's thread pool, the one
// its kernels share, instead:
//
//  - the loop's body becomes a task function `(ctx, i)` that reads the
//    values the body uses (memref descriptors, scalars) from a context
//    struct and recovers the induction variables from the linear index i;
//  - the loop becomes a store of those values into a stack context and a
//    call of `moert_parallel_for(count, task, ctx)`.
//
// The values cross as LLVM types (a memref as its descriptor struct):
// unrealized casts on both sides cancel once the memref-to-LLVM lowering
// has run.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/RegionUtils.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECPUPARALLELLOOPSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {

constexpr llvm::StringLiteral kParallelFor = "moert_parallel_for";

/// Whether `loop` iterates over [0, n) with step 1 in every dimension, the
/// form scf-forall-to-parallel gives the reference lowering's loops.
bool isZeroBasedUnitStep(scf::ParallelOp loop) {
  for (auto [lb, step] : llvm::zip(loop.getLowerBound(), loop.getStep()))
    if (getConstantIntValue(lb) != 0 || getConstantIntValue(step) != 1)
      return false;
  return true;
}

/// Replaces `loop` by a call of moert_parallel_for on an outlined task
/// named `name` (made unique in `symbols`); fails (leaving the loop) on a
/// value whose type has no LLVM form.
LogicalResult outline(scf::ParallelOp loop, func::FuncOp parent,
                      llvm::StringRef name, SymbolTable &symbols,
                      const LLVMTypeConverter &converter) {
  MLIRContext *ctx = loop.getContext();
  Location loc = loop.getLoc();
  // What the task reads: the body's values from above and the bounds.
  // Constants are cloned into the task instead.
  SetVector<Value> used;
  getUsedValuesDefinedAbove(loop.getRegion(), used);
  used.insert(loop.getUpperBound().begin(), loop.getUpperBound().end());
  SmallVector<Value> fields;
  SmallVector<Type> fieldTypes;
  for (Value value : used) {
    if (value.getDefiningOp<arith::ConstantOp>())
      continue;
    Type type = converter.convertType(value.getType());
    if (!type || !LLVM::isCompatibleType(type))
      return failure();
    fields.push_back(value);
    fieldTypes.push_back(type);
  }
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  Type i64 = IntegerType::get(ctx, 64);
  auto context = LLVM::LLVMStructType::getLiteral(ctx, fieldTypes);
  auto field = [&](OpBuilder &b, Value base, unsigned k) {
    return LLVM::GEPOp::create(
        b, loc, ptr, context, base,
        ArrayRef<LLVM::GEPArg>{0, static_cast<int32_t>(k)});
  };

  // The task: unpack the context, recover the induction variables (the
  // innermost fastest), run the body.
  OpBuilder top(parent);
  auto taskType = FunctionType::get(ctx, {ptr, i64}, {});
  auto task = func::FuncOp::create(top, loc, name, taskType);
  task.setPrivate();
  symbols.insert(task);
  Block *entry = task.addEntryBlock();
  OpBuilder b = OpBuilder::atBlockBegin(entry);
  IRMapping map;
  for (Value value : used)
    if (Operation *constant = value.getDefiningOp<arith::ConstantOp>())
      map.map(value, b.clone(*constant)->getResult(0));
  for (auto [k, value] : llvm::enumerate(fields)) {
    Value loaded = LLVM::LoadOp::create(b, loc, fieldTypes[k],
                                        field(b, entry->getArgument(0), k));
    if (loaded.getType() != value.getType())
      loaded = UnrealizedConversionCastOp::create(b, loc, value.getType(),
                                                  loaded)
                   .getResult(0);
    map.map(value, loaded);
  }
  Value linear = arith::IndexCastOp::create(b, loc, b.getIndexType(),
                                            entry->getArgument(1));
  SmallVector<Value> ivs(loop.getNumLoops());
  for (int64_t d = loop.getNumLoops() - 1; d >= 0; --d) {
    Value extent = map.lookup(loop.getUpperBound()[d]);
    if (d == 0) {
      ivs[d] = linear;
      break;
    }
    ivs[d] = arith::RemUIOp::create(b, loc, linear, extent);
    linear = arith::DivUIOp::create(b, loc, linear, extent);
  }
  map.map(loop.getInductionVars(), ivs);
  for (Operation &op : loop.getBody()->without_terminator())
    b.clone(op, map);
  func::ReturnOp::create(b, loc);

  // The call site: the context lives in the caller's frame (allocated at
  // its entry, so a call inside a loop reuses it).
  OpBuilder c = OpBuilder::atBlockBegin(&parent.getBody().front());
  Value one = LLVM::ConstantOp::create(c, loc, i64, c.getI64IntegerAttr(1));
  Value base = LLVM::AllocaOp::create(c, loc, ptr, context, one);
  c.setInsertionPoint(loop);
  for (auto [k, value] : llvm::enumerate(fields)) {
    Value stored = value;
    if (stored.getType() != fieldTypes[k])
      stored = UnrealizedConversionCastOp::create(c, loc, fieldTypes[k], value)
                   .getResult(0);
    LLVM::StoreOp::create(c, loc, stored, field(c, base, k));
  }
  Value count = arith::ConstantIndexOp::create(c, loc, 1);
  for (Value extent : loop.getUpperBound())
    count = arith::MulIOp::create(c, loc, count, extent);
  count = arith::IndexCastOp::create(c, loc, i64, count);
  Value fn = func::ConstantOp::create(c, loc, taskType,
                                      FlatSymbolRefAttr::get(task));
  Value fnPtr = UnrealizedConversionCastOp::create(c, loc, ptr, fn).getResult(0);
  func::CallOp::create(c, loc, kParallelFor, TypeRange{},
                       ValueRange{count, fnPtr, base});
  loop.erase();
  return success();
}

struct MoECPUParallelLoopsPass
    : impl::MoECPUParallelLoopsPassBase<MoECPUParallelLoopsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    LLVMTypeConverter converter(ctx);
    SymbolTable symbols(module);
    bool outlined = false;
    SmallVector<func::FuncOp> functions(module.getOps<func::FuncOp>());
    for (func::FuncOp fn : functions) {
      if (fn.isExternal())
        continue;
      // Outermost loops only: a nested one runs inside its parent's task.
      SmallVector<scf::ParallelOp> loops;
      fn.walk<WalkOrder::PreOrder>([&](scf::ParallelOp loop) {
        if (loop.getNumResults() == 0 && isZeroBasedUnitStep(loop))
          loops.push_back(loop);
        return WalkResult::skip();
      });
      unsigned index = 0;
      for (scf::ParallelOp loop : loops) {
        std::string name =
            (fn.getSymName() + "_task" + llvm::Twine(index++)).str();
        outlined |= succeeded(outline(loop, fn, name, symbols, converter));
      }
    }
    if (!outlined || symbols.lookup(kParallelFor))
      return;
    auto ptr = LLVM::LLVMPointerType::get(ctx);
    OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
    auto decl = func::FuncOp::create(
        b, module.getLoc(), kParallelFor,
        FunctionType::get(ctx, {IntegerType::get(ctx, 64), ptr, ptr}, {}));
    decl.setPrivate();
  }
};

} // namespace
} // namespace mlir::moe
