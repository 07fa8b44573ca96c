//===- MoEUtils.cpp - IR-building helpers shared by moe code --------------===//

#include "moe/Dialect/MoE/IR/MoEUtils.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

using namespace mlir;

Value mlir::moe::createMatmulTransposeB(OpBuilder &b, Location loc, Value x,
                                        Value w, Value init) {
  MLIRContext *ctx = b.getContext();
  AffineExpr m, n, k;
  bindDims(ctx, m, n, k);
  auto maps = b.getAffineMapArrayAttr(
      {AffineMap::get(3, 0, {m, k}, ctx), AffineMap::get(3, 0, {n, k}, ctx),
       AffineMap::get(3, 0, {m, n}, ctx)});
  return linalg::MatmulOp::create(b, loc, TypeRange{init.getType()},
                                  ValueRange{x, w}, ValueRange{init},
                                  {b.getNamedAttr("indexing_maps", maps)})
      .getResult(0);
}
