//===- ONNXOracleTest.cpp - Imported ONNX models vs onnxruntime -----------===//
//
// For every fixture in test/fixtures/onnx (made by
// scripts/fixtures/make_onnx_fixtures.py): import model.onnx (its
// com.microsoft.MoE raised to moe.route + moe.experts), compile @main for
// the CPU through moec's pipeline at -O0 and at -O2, JIT it, bind each
// weight to its initializer's bytes, run it on input.npy and compare with
// onnxruntime's output (expected.npy) within 1e-4 x max|expected| (f32).
//
// This is the ONNX path's numerical check until ONNX artifacts exist.
//
//===----------------------------------------------------------------------===//

#include "moe/Compiler/Driver.h"
#include "moe/Import/ONNXImporter.h"
#include "moe/Import/ONNXModel.h"
#include "moe/InitAll.h"

#include "OracleUtils.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/CRunnerUtils.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/TargetSelect.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>

using namespace mlir;

namespace {

using ::moe::test::Npy;
using ::moe::test::readNpy;

std::string fixturePath(llvm::StringRef name, llvm::StringRef file) {
  llvm::SmallString<256> path(MOE_ONNX_FIXTURES_DIR);
  llvm::sys::path::append(path, name, file);
  return std::string(path);
}

/// Imports, compiles at `level`, binds and runs one fixture on `input`;
/// returns the output or records a gtest failure naming the stage.
std::optional<std::vector<float>> run(llvm::StringRef name, unsigned level,
                                      const Npy &input,
                                      llvm::ArrayRef<int64_t> outShape) {
  auto model = ::moe::ONNXModel::load(fixturePath(name, "model.onnx"));
  if (!model) {
    ADD_FAILURE() << "load: " << llvm::toString(model.takeError());
    return std::nullopt;
  }
  DialectRegistry registry;
  mlir::moe::registerAllMoEDialects(registry);
  registerAllToLLVMIRTranslations(registry);
  MLIRContext context(registry);
  std::vector<mlir::moe::ONNXMoEBlock> blocks;
  auto imported = mlir::moe::importONNXModel(&context, **model, &blocks);
  if (!imported) {
    ADD_FAILURE() << "import: " << llvm::toString(imported.takeError());
    return std::nullopt;
  }
  // The moe_* fixtures are one MoE layer each; the others have none.
  EXPECT_EQ(blocks.size(), name.starts_with("moe_") ? 1u : 0u);
  for (const mlir::moe::ONNXMoEBlock &block : blocks)
    EXPECT_TRUE(block.raised) << block.node << ": " << block.reason;
  ModuleOp module = **imported;
  module.lookupSymbol<func::FuncOp>("main")->setAttr("llvm.emit_c_interface",
                                                     UnitAttr::get(&context));

  mlir::moe::MoEOptimizationOptions options;
  options.level = level;
  llvm::Expected<DictionaryAttr> manifest =
      ::moe::test::lowerForJIT(module, options);
  if (!manifest) {
    ADD_FAILURE() << llvm::toString(manifest.takeError());
    return std::nullopt;
  }
  std::vector<std::pair<std::string, void *>> symbols;
  for (NamedAttribute entry : *manifest) {
    auto names = cast<ArrayAttr>(entry.getValue());
    llvm::StringRef tensor = cast<StringAttr>(names[0]).getValue();
    llvm::Expected<llvm::ArrayRef<uint8_t>> bytes =
        (*model)->initializerBytes(tensor);
    if (names.size() != 1 || !bytes) {
      ADD_FAILURE() << "weight '" << tensor.str() << "': "
                    << (bytes ? "stacked" : llvm::toString(bytes.takeError()));
      return std::nullopt;
    }
    symbols.emplace_back(entry.getName().getValue().str(),
                         const_cast<uint8_t *>(bytes->data()));
  }

  auto engine = ::moe::test::createEngine(module, symbols);
  if (!engine) {
    ADD_FAILURE() << "JIT: " << llvm::toString(engine.takeError());
    return std::nullopt;
  }

  std::vector<float> x = input.data;
  int64_t t = input.shape[0], h = input.shape[1];
  StridedMemRefType<float, 2> in{x.data(), x.data(), 0, {t, h}, {h, 1}};
  StridedMemRefType<float, 2> out{};
  void *inP = &in, *outP = &out;
  llvm::SmallVector<void *> args = {&outP, &inP};
  if (llvm::Error err = (*engine)->invokePacked("_mlir_ciface_main", args)) {
    ADD_FAILURE() << "run: " << llvm::toString(std::move(err));
    return std::nullopt;
  }
  // The output is 2-D like onnxruntime's.
  int64_t rows = outShape[0], cols = outShape[1];
  if (out.sizes[0] != rows || out.sizes[1] != cols) {
    ADD_FAILURE() << "output shape " << out.sizes[0] << "x" << out.sizes[1]
                  << ", onnxruntime's " << rows << "x" << cols;
    return std::nullopt;
  }
  std::vector<float> y(rows * cols, NAN);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      y[i * cols + j] =
          out.data[out.offset + i * out.strides[0] + j * out.strides[1]];
  std::free(out.basePtr);
  return y;
}

class ONNXOracle
    : public ::testing::TestWithParam<std::tuple<const char *, unsigned>> {
protected:
  static void SetUpTestSuite() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  }
};

TEST_P(ONNXOracle, MatchesOnnxruntime) {
  auto [name, level] = GetParam();
  std::optional<Npy> input = readNpy(fixturePath(name, "input.npy"));
  std::optional<Npy> expected = readNpy(fixturePath(name, "expected.npy"));
  ASSERT_TRUE(input && expected) << "fixture " << name << " is incomplete";
  ASSERT_EQ(input->shape.size(), 2u);
  ASSERT_EQ(expected->shape.size(), 2u);
  std::optional<std::vector<float>> y =
      run(name, level, *input, expected->shape);
  ASSERT_TRUE(y);
  float scale = 0, error = 0;
  for (size_t i = 0; i < y->size(); ++i) {
    scale = std::max(scale, std::fabs(expected->data[i]));
    error = std::max(error, std::fabs((*y)[i] - expected->data[i]));
  }
  EXPECT_LE(error, 1e-4f * scale)
      << name << " at -O" << level << ": max error " << error
      << " against max|expected| " << scale;
  std::printf("%s -O%u: max error %.3g = %.3g x max|expected|\n", name, level,
              error, error / scale);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, ONNXOracle,
    ::testing::Combine(::testing::Values("moe_gptoss", "moe_plain_top1",
                                         "moe_top3", "ops_mix",
                                         "norm_and_shapes", "gather_batched",
                                         "gemm_linear"),
                       ::testing::Values(0u, 2u)),
    [](const auto &info) {
      return std::string(std::get<0>(info.param)) + "_O" +
             std::to_string(std::get<1>(info.param));
    });

} // namespace
