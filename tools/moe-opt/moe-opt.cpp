//===- moe-opt.cpp - Pass developers' driver ------------------------------===//
//
// mlir-opt with the moe dialect and passes: parses .mlir, runs the passes
// named on the command line, prints the result. The tool of lit tests.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::moe::registerAllMoEDialects(registry);
  mlir::moe::registerAllMoEPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv,
      "moe-opt: run moe and upstream MLIR passes on a .mlir file\n\n"
      "  moe-opt in.mlir -canonicalize            # one pass\n"
      "  moe-opt in.mlir -pass-pipeline='builtin.module(moe-check-weights)'\n"
      "  moe-opt in.mlir -split-input-file -verify-diagnostics\n",
      registry));
}
