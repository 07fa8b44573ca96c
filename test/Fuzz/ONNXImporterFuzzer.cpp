//===- ONNXImporterFuzzer.cpp - libFuzzer target for the ONNX importer ----===//
//
// Treats arbitrary bytes as a serialized onnx.ModelProto: validates it, then
// imports it into the moe dialect and verifies the result. Diagnostics are
// dropped; only crashes, sanitizer reports and leaks are findings.
//
// External data resolves inside a scratch folder holding one 4 KiB file,
// `weights.bin`, so that offsets, lengths and path escapes are exercised too.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/ONNXImporter.h"
#include "moe/Import/ONNXModel.h"
#include "moe/InitAll.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace {
std::string scratchFolder() {
  llvm::SmallString<128> dir;
  if (llvm::sys::fs::createUniqueDirectory("moe-onnx-fuzz", dir))
    __builtin_trap();
  llvm::SmallString<128> weights(dir);
  llvm::sys::path::append(weights, "weights.bin");
  std::error_code ec;
  llvm::raw_fd_ostream out(weights, ec);
  for (int i = 0; i < 4096; ++i)
    out << char(i * 31);
  llvm::SmallString<128> model(dir);
  llvm::sys::path::append(model, "model.onnx");
  return std::string(model);
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string modelPath = scratchFolder();
  auto model = moe::ONNXModel::fromBytes(
      llvm::StringRef(reinterpret_cast<const char *>(data), size), modelPath);
  if (!model) {
    llvm::consumeError(model.takeError());
    return 0;
  }
  // A fresh context per input: attributes and types interned by one input
  // must not make the next look like a leak or slowly fill memory.
  mlir::DialectRegistry registry;
  mlir::moe::registerAllMoEDialects(registry);
  mlir::MLIRContext context(registry);
  mlir::ScopedDiagnosticHandler quiet(&context,
                                      [](mlir::Diagnostic &) { return mlir::success(); });
  std::vector<mlir::moe::ONNXMoEBlock> blocks;
  auto module = mlir::moe::importONNXModel(&context, **model, &blocks);
  if (!module) {
    llvm::consumeError(module.takeError());
    return 0;
  }
  (void)mlir::verify(**module);
  return 0;
}
