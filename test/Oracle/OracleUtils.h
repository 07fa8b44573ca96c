//===- OracleUtils.h - Shared pieces of the JIT oracle tests ----*- C++ -*-===//
//
// The oracle tests compare with arrays that Python wrote with numpy.save,
// and JIT the compiled program with its weights bound by symbol.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TEST_ORACLE_ORACLEUTILS_H
#define MOE_TEST_ORACLE_ORACLEUTILS_H

#include "moe/Compiler/Driver.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"

#include <functional>
#include <utility>

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstring>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace moe::test {

/// A float32 .npy array (format v1, little-endian, C order).
struct Npy {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

inline std::optional<Npy> readNpy(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return std::nullopt;
  llvm::StringRef bytes = (*buffer)->getBuffer();
  if (!bytes.starts_with("\x93NUMPY") || bytes.size() < 10)
    return std::nullopt;
  size_t headerLen = uint8_t(bytes[8]) | (uint8_t(bytes[9]) << 8);
  std::string header = bytes.substr(10, headerLen).str();
  if (header.find("'<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos)
    return std::nullopt;
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'shape': \\(([0-9, ]*)\\)")))
    return std::nullopt;
  Npy out;
  int64_t count = 1;
  // The shape text must outlive the split's StringRefs.
  std::string dims = m[1].str();
  for (llvm::StringRef dim : llvm::split(llvm::StringRef(dims), ',')) {
    dim = dim.trim();
    if (dim.empty())
      continue;
    int64_t v;
    if (dim.getAsInteger(10, v))
      return std::nullopt;
    out.shape.push_back(v);
    count *= v;
  }
  llvm::StringRef payload = bytes.substr(10 + headerLen);
  if (payload.size() != size_t(count) * 4)
    return std::nullopt;
  out.data.resize(count);
  std::memcpy(out.data.data(), payload.data(), payload.size());
  return out;
}

/// Lowers `module` through moec's CPU pipeline (`--emit=llvm`, with the
/// moe optimisations of `options`) and returns its weight manifest.
inline llvm::Expected<mlir::DictionaryAttr>
lowerForJIT(mlir::ModuleOp module,
            const mlir::moe::MoEOptimizationOptions &options = {}) {
  mlir::PassManager pm(module.getContext());
  mlir::moe::buildMoECompilePipeline(pm, mlir::moe::EmitStage::LLVM, options);
  if (mlir::failed(pm.run(module)))
    return llvm::createStringError("the CPU pipeline failed");
  auto manifest = module->getAttrOfType<mlir::DictionaryAttr>("moe.weights");
  if (!manifest)
    return llvm::createStringError("no moe.weights manifest");
  return manifest;
}

/// JITs `module` (optimised at O2, with MLIR's C runner utilities for
/// strided copies and the moec runtime for its CPU kernels) and binds each
/// external weight symbol to its address.
inline llvm::Expected<std::unique_ptr<mlir::ExecutionEngine>>
createEngine(mlir::ModuleOp module,
             const std::vector<std::pair<std::string, void *>> &symbols) {
  std::function<llvm::Error(llvm::Module *)> optimize =
      mlir::makeOptimizingTransformer(/*optLevel=*/2, /*sizeLevel=*/0, nullptr);
  mlir::ExecutionEngineOptions options;
  options.transformer = optimize;
  llvm::SmallVector<llvm::StringRef> libs = {MOE_C_RUNNER_UTILS,
                                             MOE_RUNTIME_LIBRARY};
  options.sharedLibPaths = libs;
  auto engine = mlir::ExecutionEngine::create(module, options);
  if (!engine)
    return engine.takeError();
  (*engine)->registerSymbols([&](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap map;
    for (const auto &[name, address] : symbols)
      map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                             llvm::JITSymbolFlags::Exported};
    return map;
  });
  return engine;
}

} // namespace moe::test

#endif // MOE_TEST_ORACLE_ORACLEUTILS_H
