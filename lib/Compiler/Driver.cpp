//===- Driver.cpp - The moec compiler driver ------------------------------===//

#include "moe/Compiler/Driver.h"
#include "moe/Compiler/OutputFile.h"
#include "moe/Compiler/Artifact.h"
#include "moe/Import/SafeTensors.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Import/HFImporter.h"
#include "moe/Import/ONNXImporter.h"
#include "moe/Import/ONNXModel.h"
#include "moe/InitAll.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/BufferizationToMemRef/BufferizationToMemRef.h"
#include "mlir/Conversion/ConvertToLLVM/ToLLVMPass.h"
#include "mlir/Conversion/GPUCommon/GPUCommonPass.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/LinalgToStandard/LinalgToStandard.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::moe;

namespace {
/// The moe optimisation passes in pipeline order, with the lowest -O level
/// that runs each. Fused routing must precede the grouped experts, which
/// read its permutation.
struct OptimizationPass {
  const char *flag;
  unsigned level;
  std::unique_ptr<Pass> (*create)();
};
const OptimizationPass kOptimizationPasses[] = {
    {"moe-fuse-routing", 1, [] { return createMoEFuseRoutingPass(); }},
    {"moe-fuse-experts", 1, [] { return createMoEFuseExpertsPass(); }},
    {"moe-absorb-mla", 2, [] { return createMoEAbsorbMLAPass(); }},
    {"moe-fuse-norm-rope-residual", 2,
     [] { return createMoEFuseNormRopeResidualPass(); }},
};
} // namespace

/// Splits `name{options}` into its two parts.
static std::pair<llvm::StringRef, llvm::StringRef>
splitPassOptions(llvm::StringRef entry) {
  auto [name, rest] = entry.split('{');
  rest = rest.rtrim();
  rest.consume_back("}");
  return {name.trim(), rest};
}

llvm::SmallVector<std::string>
mlir::moe::getMoEOptimizationPasses(const MoEOptimizationOptions &options) {
  llvm::SmallVector<std::string> flags;
  if (options.passes)
    return *options.passes;
  for (const OptimizationPass &pass : kOptimizationPasses)
    if (pass.level <= options.level)
      flags.push_back(pass.flag);
  return flags;
}

/// Adds the selected optimisation passes; reports unknown names and bad
/// options through the returned error.
static llvm::Error addOptimizationPasses(OpPassManager &pm,
                                         const MoEOptimizationOptions &options) {
  if (options.level > 2)
    return llvm::createStringError("-O" + std::to_string(options.level) +
                                   " is not a level (use -O0, -O1 or -O2)");
  for (const std::string &entry : getMoEOptimizationPasses(options)) {
    auto parts = splitPassOptions(entry);
    llvm::StringRef name = parts.first, passOptions = parts.second;
    const OptimizationPass *known =
        llvm::find_if(kOptimizationPasses, [&](const OptimizationPass &pass) {
          return name == pass.flag;
        });
    if (known == std::end(kOptimizationPasses)) {
      std::string list;
      for (const OptimizationPass &pass : kOptimizationPasses)
        list += std::string(list.empty() ? "" : ", ") + pass.flag;
      return llvm::createStringError("--passes: '" + name.str() +
                                     "' is not a moe optimisation pass (" +
                                     list + ")");
    }
    if (passOptions.empty()) {
      pm.addPass(known->create());
      continue;
    }
    const PassInfo *info = PassInfo::lookup(name);
    std::string message;
    if (!info || failed(info->addToPipeline(
                     pm, passOptions, [&](const Twine &msg) {
                       message = msg.str();
                       return failure();
                     })))
      return llvm::createStringError("--passes: '" + entry +
                                     "': bad options: " +
                                     llvm::StringRef(message).trim());
  }
  return llvm::Error::success();
}

llvm::Error
mlir::moe::verifyMoEOptimizationOptions(const MoEOptimizationOptions &options) {
  OpPassManager scratch(ModuleOp::getOperationName());
  return addOptimizationPasses(scratch, options);
}

llvm::ArrayRef<llvm::StringRef> mlir::moe::getSupportedGPUArchs() {
  static const llvm::StringRef kArchs[] = {"sm_90a", "sm_90", "sm_80"};
  return kArchs;
}

/// Runs BF16 arithmetic in f32 (exact for products, as PyTorch rounds
/// them) and turns BF16 conversions into integer ops: LLVM would otherwise
/// call __truncsfbf2, which neither libgcc nor the runtime provides. After
/// linalg becomes loops, so that named ops' bodies are covered.
static void addFloatEmulationPasses(OpPassManager &pm) {
  arith::ArithEmulateUnsupportedFloatsOptions emulate;
  emulate.sourceTypeStrs = {"bf16"};
  emulate.targetTypeStr = "f32";
  pm.addPass(arith::createArithEmulateUnsupportedFloats(emulate));
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
}

/// Loops and memrefs to the LLVM dialect, for code that runs on the host.
static void addHostLoweringPasses(OpPassManager &pm) {
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

/// Math ops that device code computes with MLIR's polynomial
/// approximations rather than libdevice, which would tie compilation to a
/// CUDA toolkit on the compiling machine.
static constexpr const char *kDeviceMathOps[] = {
    "exp",  "exp2", "expm1", "log",  "log2", "log1p", "tanh", "sin",
    "cos",  "erf",  "erfc",  "atan", "atan2", "asin", "acos", "cbrt",
    "rsqrt", "powf"};

/// The CUDA half of the pipeline, from the bufferized program: loop nests
/// become kernels in one gpu.module, which NVPTX compiles to PTX; the host
/// code launches them through the runtime's mgpu* functions.
static void buildCUDACodegenPipeline(OpPassManager &pm, EmitStage stage,
                                     const MoETargetOptions &target) {
  pm.addPass(createConvertLinalgToParallelLoopsPass());
  addFloatEmulationPasses(pm);
  MoEGPUSplitReductionsPassOptions split;
  split.minTripCount = target.splitMinTrips;
  pm.addPass(createMoEGPUSplitReductionsPass(split));
  pm.addPass(createMoEGPULaunchLoopsPass());
  MoEExpandMathPassOptions deviceMath;
  deviceMath.ops.assign(std::begin(kDeviceMathOps), std::end(kDeviceMathOps));
  if (target.kind == MoETargetOptions::Kind::CUDAOnHost) {
    // The kernels, with the device's math, run as host loops.
    pm.addPass(createMoEExpandMathPass(deviceMath));
    pm.addPass(createMoEGPULaunchesToLoopsPass());
    addHostLoweringPasses(pm);
    return;
  }
  pm.addPass(createLowerAffinePass());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createMoEExpandMathPass(deviceMath));
  pm.addNestedPass<gpu::GPUModuleOp>(createMoEGPURelaxSerialKernelsPass());
  // Row slices (subviews) in the kernels, as the host code's.
  pm.addNestedPass<gpu::GPUModuleOp>(memref::createExpandStridedMetadataPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createCanonicalizerPass());
  GpuNVVMAttachTargetOptions nvvm;
  nvvm.chip = target.gpuArch;
  // PTX ISA 8.0 is the first with sm_90a (wgmma); the same version keeps
  // the three targets' PTX comparable.
  nvvm.features = "+ptx80";
  nvvm.optLevel = 3;
  pm.addPass(createGpuNVVMAttachTarget(nvvm));
  pm.addNestedPass<gpu::GPUModuleOp>(createMoEGPUMathToIntrinsicsPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createConvertGpuOpsToNVVMOps());
  pm.addPass(createReconcileUnrealizedCastsPass());
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = "isa";
  pm.addPass(createGpuModuleToBinaryPass(binary));
  if (stage == EmitStage::PTX)
    return;
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createGpuToLLVMConversionPass());
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void mlir::moe::buildMoECompilePipeline(OpPassManager &pm, EmitStage stage,
                                        const MoEOptimizationOptions &options,
                                        const MoETargetOptions &target) {
  pm.addPass(createMoECheckWeightsPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Callers verify the options first (verifyMoEOptimizationOptions).
  llvm::cantFail(addOptimizationPasses(pm, options));
  if (!getMoEOptimizationPasses(options).empty())
    pm.addPass(createCSEPass());
  if (stage == EmitStage::MoE)
    return;
  // The runtime's kernels are CPU code; the CUDA target lowers every op.
  if (!target.placesLoopsOnGPU() && options.usesRuntimeKernels())
    pm.addPass(createMoEUseRuntimeKernelsPass());
  // The grouped-GEMM form's expert and tile loops are serial; on the GPU
  // the gather form's parallel steps serve every token count.
  MoELowerToLinalgPassOptions lowering;
  lowering.groupedGEMM = !target.placesLoopsOnGPU();
  lowering.stagedMLA = target.placesLoopsOnGPU();
  pm.addPass(createMoELowerToLinalgPass(lowering));
  pm.addPass(createMoEExternalizeWeightsPass());
  pm.addNestedPass<func::FuncOp>(createConvertElementwiseToLinalgPass());
  pm.addPass(createCanonicalizerPass());
  if (stage == EmitStage::Linalg)
    return;
  // LLVM and Artifact share the rest. Math ops without an LLVM intrinsic
  // (erf) become polynomials first.
  pm.addPass(createMoEExpandMathPass());
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  // A layer loop may yield a buffer the runtime's kernels filled rather
  // than its own iteration argument.
  bufferize.allowReturnAllocsFromLoops = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  pm.addPass(createConvertBufferizationToMemRefPass());
  // The reference lowering's loops over independent rows, tokens and heads
  // (scf.forall): serial loops on the CPU, threads on the GPU.
  pm.addPass(createForallToParallelLoopPass());
  if (target.placesLoopsOnGPU())
    return buildCUDACodegenPipeline(pm, stage, target);
  pm.addPass(createConvertLinalgToLoopsPass());
  addFloatEmulationPasses(pm);
  // Independent rows and heads on the runtime's threads.
  pm.addPass(createMoECPUParallelLoopsPass());
  addHostLoweringPasses(pm);
}

llvm::Expected<std::string> mlir::moe::getKernelPTX(ModuleOp module) {
  std::string ptx;
  WalkResult walk = module.walk([&](gpu::BinaryOp binary) {
    for (Attribute attr : binary.getObjects()) {
      auto object = dyn_cast<gpu::ObjectAttr>(attr);
      if (!object || object.getFormat() != gpu::CompilationTarget::Assembly)
        return WalkResult::interrupt();
      ptx += object.getObject().getValue();
    }
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return llvm::createStringError("internal error: a gpu.binary holds "
                                   "something other than PTX");
  // Functions the PTX calls but does not define would fail in the JIT;
  // only the driver's own (assert, printf, malloc) may remain.
  for (llvm::StringRef line : llvm::split(ptx, '\n')) {
    if (!line.starts_with(".extern .func"))
      continue;
    llvm::StringRef name = line.rtrim().rsplit(' ').second;
    name = name.take_until([](char c) { return c == '('; });
    if (!llvm::is_contained({"__assertfail", "vprintf", "malloc", "free"},
                            name))
      return llvm::createStringError(
          "internal error: the kernels call '" + name +
          "', which nothing defines (a math op without an approximation?)");
  }
  return ptx;
}

namespace {
/// The element type's name in an artifact manifest, or "" when graph
/// artifacts cannot carry it.
std::string manifestTypeName(Type type) {
  if (type.isInteger(1))
    return "bool";
  // Graph values are moert_dtype values: of the integers, i32 and i64.
  std::string name = getManifestTypeName(type);
  if (!name.empty() && name[0] == 'i' && name != "i32" && name != "i64")
    return "";
  return name;
}

/// Fills the graph part of `info` for an imported ONNX model: @main's
/// inputs and outputs with their ONNX names and dimensions (symbolic names
/// kept, so the runtime can check that inputs agree), and the initializer
/// bytes the artifact embeds.
llvm::Error describeGraph(ModuleOp module, const ::moe::ONNXModel &model,
                          ArtifactInfo &info) {
  auto main = module.lookupSymbol<func::FuncOp>("main");
  std::vector<::moe::ONNXValueInfo> inputs = model.graphInputs();
  std::vector<::moe::ONNXValueInfo> outputs = model.graphOutputs();
  if (!main || main.getNumArguments() != inputs.size() ||
      main.getNumResults() != outputs.size())
    return llvm::createStringError("internal error: @main does not match "
                                   "the graph's inputs and outputs");
  main->setAttr("llvm.emit_c_interface", UnitAttr::get(module.getContext()));
  // The caller's input buffers are read-only: bufferization copies
  // rather than writing into them.
  for (unsigned i = 0; i < main.getNumArguments(); ++i)
    main.setArgAttr(i, "bufferization.writable",
                    BoolAttr::get(module.getContext(), false));
  info.kind = ArtifactInfo::Kind::Graph;
  info.source = llvm::sys::path::filename(model.path()).str();
  auto describe = [](const ::moe::ONNXValueInfo &value, Type type,
                     llvm::StringRef role)
      -> llvm::Expected<ArtifactInfo::GraphValue> {
    auto tensor = cast<RankedTensorType>(type);
    ArtifactInfo::GraphValue v{value.name,
                               manifestTypeName(tensor.getElementType()),
                               {}};
    if (v.dtype.empty())
      return llvm::createStringError(llvm::formatv(
          "graph {0} '{1}' has element type {2}, which artifacts cannot "
          "carry yet",
          role, value.name, tensor.getElementType()));
    if (value.name.empty() ||
        value.name.find_first_of("\t\n\r") != std::string::npos)
      return llvm::createStringError(
          llvm::formatv("graph {0} '{1}': names with tabs or newlines cannot "
                        "be recorded in an artifact",
                        role, value.name));
    for (int64_t i = 0; i < tensor.getRank(); ++i) {
      if (!tensor.isDynamicDim(i)) {
        v.dims.push_back(std::to_string(tensor.getDimSize(i)));
        continue;
      }
      // The model's symbolic name when it gives one the manifest can hold.
      std::string name = i < int64_t(value.dims.size()) ? value.dims[i] : "?";
      bool usable = !name.empty() && !llvm::isDigit(name[0]) &&
                    name.find_first_of(",\t\n\r") == std::string::npos;
      v.dims.push_back(usable ? name : "?");
    }
    return v;
  };
  for (auto [value, type] : llvm::zip(inputs, main.getArgumentTypes())) {
    llvm::Expected<ArtifactInfo::GraphValue> v =
        describe(value, type, "input");
    if (!v)
      return v.takeError();
    info.inputs.push_back(std::move(*v));
  }
  for (auto [value, type] : llvm::zip(outputs, main.getResultTypes())) {
    llvm::Expected<ArtifactInfo::GraphValue> v =
        describe(value, type, "output");
    if (!v)
      return v.takeError();
    info.outputs.push_back(std::move(*v));
  }
  info.tensorBytes = [&model](llvm::StringRef name) {
    return model.initializerBytes(name);
  };
  return llvm::Error::success();
}

struct MoecOptions {
  llvm::cl::OptionCategory category{"moec options"};
  llvm::cl::opt<std::string> input{
      llvm::cl::Positional,
      llvm::cl::desc("<checkpoint folder | model.onnx | input.mlir>"),
      llvm::cl::Required,
      llvm::cl::cat(category)};
  llvm::cl::opt<std::string> output{
      "o", llvm::cl::desc("Output file ('-' for stdout, the default); "
                          "written only if compilation succeeds"),
      llvm::cl::value_desc("file"), llvm::cl::init("-"),
      llvm::cl::cat(category)};
  llvm::cl::opt<EmitStage> emit{
      "emit", llvm::cl::desc("Stage to stop after and print"),
      llvm::cl::init(EmitStage::MoE),
      llvm::cl::values(
          clEnumValN(EmitStage::MoE, "moe",
                     "the program in the moe dialect after weight checks "
                     "and canonicalization"),
          clEnumValN(EmitStage::Linalg, "linalg",
                     "moe ops lowered to linalg/tensor/scf (after the -O "
                     "level's fusions), weights as external globals"),
          clEnumValN(EmitStage::LLVM, "llvm",
                     "the host program in the LLVM dialect (for cuda, "
                     "with the kernels as a gpu.binary)"),
          clEnumValN(EmitStage::Artifact, "artifact",
                     "an artifact for moe-run (needs -o; implied by "
                     "--target with -o)"),
          clEnumValN(EmitStage::PTX, "ptx",
                     "the kernels of --target=cuda as PTX text")),
      llvm::cl::cat(category)};
  llvm::cl::opt<int64_t> maxSeqLen{
      "max-seq-len",
      llvm::cl::desc("KV-cache capacity in tokens for imported checkpoints "
                     "(default: min(max_position_embeddings, 4096))"),
      llvm::cl::init(0), llvm::cl::cat(category)};
  llvm::cl::opt<std::string> target{
      "target",
      llvm::cl::desc("Code generation target: cpu (the host) or cuda "
                     "(NVIDIA GPUs: kernels as PTX, launched by host "
                     "code); cuda-on-host, a testing aid, places loops as "
                     "for cuda but runs the kernels as host loops in a CPU "
                     "artifact. With -o, implies --emit=artifact"),
      llvm::cl::value_desc("cpu|cuda|cuda-on-host"), llvm::cl::init("cpu"),
      llvm::cl::cat(category)};
  llvm::cl::opt<std::string> gpuArch{
      "gpu-arch",
      llvm::cl::desc("For --target=cuda: the GPU the PTX is for, sm_90a "
                     "(H100/H200, the default), sm_90 or sm_80 (A100)"),
      llvm::cl::value_desc("sm_90a|sm_90|sm_80"), llvm::cl::init("sm_90a"),
      llvm::cl::cat(category)};
  llvm::cl::opt<int64_t> gpuSplitMinTrips{
      "gpu-split-min-trips",
      llvm::cl::desc("For --target=cuda and cuda-on-host: split reductions "
                     "of at least this many iterations over a warp's lanes "
                     "(-moe-gpu-split-reductions; default 256). Tests lower "
                     "it so that the tiny fixtures take the split path"),
      llvm::cl::init(256), llvm::cl::Hidden, llvm::cl::cat(category)};
  llvm::cl::opt<bool> embedWeights{
      "embed-weights",
      llvm::cl::desc("Copy the weights into the artifact (default: reference "
                     "the checkpoint shards by path and fingerprint; ONNX "
                     "initializers are always copied)"),
      llvm::cl::init(false), llvm::cl::cat(category)};
  llvm::cl::opt<char> optLevel{
      "O",
      llvm::cl::desc("Optimisation level: -O0 (none: the reference lowering "
                     "of each moe op), -O1 (fused routing and grouped "
                     "expert GEMMs), -O2 (also latent-attention absorption "
                     "and norm/RoPE/residual fusion; the default)"),
      llvm::cl::Prefix, llvm::cl::value_desc("0|1|2"), llvm::cl::init('2'),
      llvm::cl::cat(category)};
  llvm::cl::list<std::string> passes{
      "passes",
      llvm::cl::desc("Run exactly these moe optimisation passes instead of "
                     "the -O level's (comma-separated, e.g. "
                     "--passes=moe-absorb-mla; empty for none)"),
      llvm::cl::CommaSeparated, llvm::cl::value_desc("pass,..."),
      llvm::cl::cat(category)};
  llvm::cl::opt<std::string> cpuKernels{
      "cpu-kernels",
      llvm::cl::desc("How CPU code runs expert FFNs, projections and "
                     "routing: runtime (the runtime's multi-threaded vector "
                     "kernels; the default at -O1 and -O2) or reference "
                     "(the reference lowering; the default at -O0)"),
      llvm::cl::value_desc("runtime|reference"), llvm::cl::init(""),
      llvm::cl::cat(category)};
  llvm::cl::opt<bool> report{
      "report",
      llvm::cl::desc("For an ONNX model, list each MoE block found on "
                     "stderr: raised to moe ops, or not and why"),
      llvm::cl::init(false), llvm::cl::cat(category)};
  llvm::cl::opt<bool> printPipeline{
      "print-pipeline",
      llvm::cl::desc("Print the pass pipeline for --emit and exit"),
      llvm::cl::init(false), llvm::cl::cat(category)};
};
} // namespace

static constexpr const char *kOverview = R"(moec: the MoE compiler driver

Compiles a Mixture-of-Experts model through moec's pipeline. The input is a
Hugging Face checkpoint folder (config.json plus model.safetensors or shards
with model.safetensors.index.json; families deepseek_v3, deepseek_v2,
mixtral, qwen2_moe, qwen3_moe, olmoe, llama, qwen2), an ONNX model (.onnx;
com.microsoft.MoE is raised to moe ops, and the standard ops listed in
docs/architecture.md are imported) or a program in the moe dialect (.mlir).
--emit picks the stage to stop after; an artifact runs with moe-run or the
runtime's C API (a checkpoint's as a decoder, an ONNX model's as a graph on
named input tensors).

Examples:
  moec CKPT                                     # print @prefill/@decode (moe IR)
  moec CKPT --target=cpu -o model.moec          # compile a CPU artifact
  moe-run model.moec --tokens 0,5,99 --generate 16
  moec CKPT --target=cpu --embed-weights -o m.moec  # self-contained artifact
  moec model.onnx --target=cpu -o graph.moec    # an ONNX graph as an artifact
  moe-run graph.moec --input x=x.npy --output-dir out/
  moec CKPT --target=cuda -o model.moec         # PTX (sm_90a) + host code;
  moe-run model.moec --tokens 0,5,99            #   runs on CUDA device 0
  moec CKPT --target=cuda --gpu-arch=sm_80 --emit=ptx -o k.ptx  # the kernels
  moec CKPT --emit=llvm                         # the LLVM-dialect program
  moec CKPT -O0 --target=cpu -o ref.moec        # no fusion: reference kernels
  moec CKPT --passes=moe-absorb-mla             # one optimisation only
  moec model.mlir --print-pipeline              # show the passes that run
  moec CKPT --mlir-print-ir-after-all --mlir-timing  # watch each pass

-O2 (the default) fuses routing into one kernel with the expert-sorted
permutation, runs experts as grouped GEMMs (gather-GEMV for decode) and
uses weight-absorbed latent attention for decode; -O0 runs each imported op
through its reference lowering. Errors name the file, line and op (or tensor
and config field) at fault; nothing is written on failure. More MLIR
options are listed by --help-hidden.
)";

int mlir::moe::moecMain(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  MoecOptions options;
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  registerPassManagerCLOptions();
  registerDefaultTimingManagerCLOptions();
  // The MLIR debugging options users need most are listed by --help too.
  llvm::cl::OptionCategory debugCategory("MLIR debugging options");
  for (llvm::StringRef name :
       {"mlir-print-ir-after-all", "mlir-print-ir-before-all",
        "mlir-print-ir-after-failure", "mlir-timing", "mlir-timing-display"}) {
    auto &registered =
        llvm::cl::getRegisteredOptions();
    if (auto it = registered.find(name); it != registered.end())
      it->second->addCategory(debugCategory);
  }
  llvm::cl::HideUnrelatedOptions(
      {&options.category, &debugCategory, &llvm::getColorCategory()});
  llvm::cl::ParseCommandLineOptions(argc, argv, kOverview);

  MoETargetOptions target;
  if (options.target == "cuda") {
    target.kind = MoETargetOptions::Kind::CUDA;
  } else if (options.target == "cuda-on-host") {
    target.kind = MoETargetOptions::Kind::CUDAOnHost;
  } else if (options.target != "cpu") {
    llvm::errs() << "moec: error: --target=" << options.target
                 << " is not a target (use cpu, cuda or cuda-on-host)\n";
    return 1;
  }
  if (!llvm::is_contained(getSupportedGPUArchs(), options.gpuArch)) {
    llvm::errs() << "moec: error: --gpu-arch=" << options.gpuArch
                 << " is not supported (use "
                 << llvm::join(getSupportedGPUArchs(), ", ") << ")\n";
    return 1;
  }
  target.gpuArch = options.gpuArch;
  if (options.gpuArch.getNumOccurrences() && !target.isCUDA()) {
    llvm::errs() << "moec: error: --gpu-arch needs --target=cuda\n";
    return 1;
  }
  if (options.gpuSplitMinTrips.getNumOccurrences()) {
    if (!target.placesLoopsOnGPU() || options.gpuSplitMinTrips < 1) {
      llvm::errs() << "moec: error: --gpu-split-min-trips needs "
                      "--target=cuda or cuda-on-host and a count >= 1\n";
      return 1;
    }
    target.splitMinTrips = options.gpuSplitMinTrips;
  }
  if (options.emit == EmitStage::PTX && !target.isCUDA()) {
    llvm::errs() << "moec: error: --emit=ptx needs --target=cuda\n";
    return 1;
  }
  if (options.cpuKernels.getNumOccurrences() && target.placesLoopsOnGPU()) {
    llvm::errs() << "moec: error: --cpu-kernels applies to --target=cpu "
                    "only\n";
    return 1;
  }
  if (options.target.getNumOccurrences() &&
      !options.emit.getNumOccurrences() && options.output != "-")
    options.emit = EmitStage::Artifact;

  DialectRegistry registry;
  registerAllMoEDialects(registry);
  registerAllMoEPasses();
  MLIRContext context(registry);
  // Diagnostics point at the source line; echoing the op in generic form
  // after them only adds noise for users.
  context.printOpOnDiagnostic(false);

  MoEOptimizationOptions optimization;
  if (options.optLevel < '0' || options.optLevel > '9') {
    llvm::errs() << "moec: error: -O" << options.optLevel
                 << " is not a level (use -O0, -O1 or -O2)\n";
    return 1;
  }
  optimization.level = options.optLevel - '0';
  if (options.passes.getNumOccurrences()) {
    optimization.passes.emplace();
    for (const std::string &name : options.passes)
      if (!name.empty())
        optimization.passes->push_back(name);
  }
  if (options.cpuKernels == "runtime" || options.cpuKernels == "reference") {
    optimization.runtimeKernels = options.cpuKernels == "runtime";
  } else if (options.cpuKernels.getNumOccurrences()) {
    llvm::errs() << "moec: error: --cpu-kernels=" << options.cpuKernels
                 << " is not a choice (use runtime or reference)\n";
    return 1;
  }
  if (llvm::Error err = verifyMoEOptimizationOptions(optimization)) {
    llvm::errs() << "moec: error: " << llvm::toString(std::move(err)) << "\n";
    return 1;
  }

  PassManager pm(&context);
  buildMoECompilePipeline(pm, options.emit, optimization, target);
  if (options.printPipeline) {
    pm.printAsTextualPipeline(llvm::outs());
    llvm::outs() << "\n";
    return 0;
  }

  std::string errorMessage;
  std::shared_ptr<::moe::Checkpoint> artifactCheckpoint;
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagHandler(sourceMgr, &context);
  OwningOpRef<ModuleOp> module;
  // Kept for the artifact writer, which embeds the initializers.
  std::unique_ptr<::moe::ONNXModel> onnxModel;
  if (StringRef(options.input).ends_with(".onnx")) {
    llvm::Expected<std::unique_ptr<::moe::ONNXModel>> onnx =
        ::moe::ONNXModel::load(options.input);
    if (!onnx) {
      llvm::errs() << "moec: error: " << llvm::toString(onnx.takeError())
                   << "\n";
      return 1;
    }
    onnxModel = std::move(*onnx);
    std::vector<ONNXMoEBlock> blocks;
    llvm::Expected<OwningOpRef<ModuleOp>> imported =
        importONNXModel(&context, *onnxModel, &blocks);
    if (options.report) {
      llvm::errs() << "moec: " << blocks.size() << " MoE block"
                   << (blocks.size() == 1 ? "" : "s") << " found\n";
      for (const ONNXMoEBlock &block : blocks)
        llvm::errs() << "  " << block.form << " " << block.node << ": "
                     << (block.raised ? "raised to " + block.raisedTo
                                      : "not raised: " + block.reason)
                     << "\n";
    }
    if (!imported) {
      llvm::errs() << "moec: error: " << llvm::toString(imported.takeError())
                   << "\n";
      return 1;
    }
    module = std::move(*imported);
  } else if (options.input != "-" &&
             llvm::sys::fs::is_directory(options.input)) {
    HFImportOptions importOptions;
    importOptions.maxSeqLen = options.maxSeqLen;
    importOptions.openedCheckpoint = &artifactCheckpoint;
    llvm::Expected<OwningOpRef<ModuleOp>> imported =
        importHFCheckpoint(&context, options.input, importOptions);
    if (!imported) {
      llvm::errs() << "moec: error: " << llvm::toString(imported.takeError())
                   << "\n";
      return 1;
    }
    module = std::move(*imported);
  } else {
    std::unique_ptr<llvm::MemoryBuffer> file =
        openInputFile(options.input, &errorMessage);
    if (!file) {
      llvm::errs() << "moec: error: " << errorMessage << "\n";
      return 1;
    }
    sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
    module = parseSourceFile<ModuleOp>(sourceMgr, &context);
    if (!module)
      return 1;
  }

  // An artifact needs the C entry points and the facts its manifest
  // records, read from the program before it is lowered.
  ArtifactInfo artifactInfo;
  bool isDirectory =
      options.input != "-" && llvm::sys::fs::is_directory(options.input);
  if (options.emit == EmitStage::Artifact && onnxModel) {
    if (options.output == "-") {
      llvm::errs() << "moec: error: --emit=artifact needs -o FILE\n";
      return 1;
    }
    if (llvm::Error err = describeGraph(*module, *onnxModel, artifactInfo)) {
      llvm::errs() << "moec: error: " << options.input << ": "
                   << llvm::toString(std::move(err)) << "\n";
      return 1;
    }
  } else if (options.emit == EmitStage::Artifact) {
    if (!isDirectory || options.output == "-") {
      llvm::errs() << "moec: error: --emit=artifact needs a checkpoint folder "
                      "as input and -o FILE\n";
      return 1;
    }
    artifactInfo.checkpointDir = options.input;
    artifactInfo.embedWeights = options.embedWeights;
    artifactInfo.checkpoint = artifactCheckpoint;
    {
      // One line: the config re-serialised compactly.
      llvm::SmallString<256> configPath(options.input);
      llvm::sys::path::append(configPath, "config.json");
      auto text = llvm::MemoryBuffer::getFile(configPath);
      if (text) {
        if (llvm::Expected<llvm::json::Value> json =
                llvm::json::parse((*text)->getBuffer()))
          artifactInfo.configJson = llvm::formatv("{0}", *json).str();
        else
          llvm::consumeError(json.takeError());
      }
    }
    auto signature = [](func::FuncOp fn) {
      std::string text;
      llvm::raw_string_ostream os(text);
      os << fn.getFunctionType();
      return text;
    };
    if (auto type = (*module)->getAttrOfType<StringAttr>("moe.model_type"))
      artifactInfo.modelType = type.getValue().str();
    auto prefill = module->lookupSymbol<func::FuncOp>("prefill");
    auto decode = module->lookupSymbol<func::FuncOp>("decode");
    if (!prefill || !decode) {
      llvm::errs() << "moec: error: the program has no @prefill/@decode\n";
      return 1;
    }
    prefill->setAttr("llvm.emit_c_interface", UnitAttr::get(&context));
    decode->setAttr("llvm.emit_c_interface", UnitAttr::get(&context));
    artifactInfo.prefillSignature = signature(prefill);
    artifactInfo.decodeSignature = signature(decode);
    auto logits = cast<RankedTensorType>(prefill.getResultTypes()[0]);
    artifactInfo.vocabSize = logits.getDimSize(2);
    for (Type t : prefill.getResultTypes().drop_front()) {
      auto cache = cast<RankedTensorType>(t);
      artifactInfo.cacheRanks.push_back(cache.getRank());
      artifactInfo.numLayers = cache.getDimSize(0);
      artifactInfo.maxSeqLen = cache.getDimSize(2);
      // Dynamic dimensions are the batch, 1 for a session; saturates at
      // 2^63 - 1 (as the manifest's integers do) rather than wrapping.
      int64_t bytes = llvm::divideCeil(cache.getElementTypeBitWidth(), 8);
      for (int64_t dim : cache.getShape())
        if (!ShapedType::isDynamic(dim) &&
            __builtin_mul_overflow(bytes, dim, &bytes))
          bytes = INT64_MAX;
      artifactInfo.cacheBytes.push_back(bytes);
    }
  }

  if (failed(applyPassManagerCLOptions(pm)))
    return 1;
  DefaultTimingManager tm;
  applyDefaultTimingManagerCLOptions(tm);
  TimingScope timing = tm.getRootScope();
  pm.enableTiming(timing);
  if (failed(pm.run(*module)))
    return 1;
  timing.stop();

  if (options.emit == EmitStage::Artifact) {
    if (target.isCUDA())
      artifactInfo.gpuArch = target.gpuArch;
    if (llvm::Error err =
            writeArtifact(*module, artifactInfo, options.output)) {
      llvm::errs() << "moec: error: " << llvm::toString(std::move(err))
                   << "\n";
      return 1;
    }
    return 0;
  }

  std::string ptx;
  if (options.emit == EmitStage::PTX) {
    llvm::Expected<std::string> text = getKernelPTX(*module);
    if (!text) {
      llvm::errs() << "moec: error: " << llvm::toString(text.takeError())
                   << "\n";
      return 1;
    }
    ptx = std::move(*text);
  }
  // Written only now, and atomically, so that a failed or interrupted run
  // never leaves a partial file behind.
  if (llvm::Error err = writeOutputAtomically(
          options.output, [&](llvm::raw_pwrite_stream &os) {
            if (options.emit == EmitStage::PTX) {
              os << ptx;
              return llvm::Error::success();
            }
            module->print(os);
            os << "\n";
            return llvm::Error::success();
          })) {
    llvm::errs() << "moec: error: " << llvm::toString(std::move(err)) << "\n";
    return 1;
  }
  return 0;
}
