//===- Artifact.cpp - Write an artifact for the moec runtime --------------===//
//
// The LLVM-dialect program becomes a shared object: weight globals turn into
// pointer slots the runtime fills (`<symbol>__ptr`), the entry points get
// packed forms (`moe_prefill_packed(void **args)`, ... or `moe_main_packed`
// for a graph), the module is optimised and compiled for the host, and lld
// links it. The artifact is a text manifest (model facts or graph
// signature, shards with fingerprints, weight locations) followed by the
// shared object; see docs/architecture.md.
//
//===----------------------------------------------------------------------===//

#include "moe/Compiler/Artifact.h"
#include "moe/Compiler/OutputFile.h"
#include "moe/Runtime/moert.h"
#include "moe/Support/Checksum.h"

#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Import/SafeTensors.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/ReplaceConstant.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

#include <map>

using namespace mlir;

namespace {

llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

uint64_t fingerprint(llvm::StringRef bytes) {
  return ::moe::checksum(bytes.data(), bytes.size());
}

/// Replaces the external weight global `name` by a pointer slot
/// `name__ptr` that the runtime fills, loading it wherever the global was
/// used.
void indirectGlobal(llvm::Module &module, llvm::GlobalVariable *global) {
  llvm::LLVMContext &ctx = module.getContext();
  auto *ptrType = llvm::PointerType::getUnqual(ctx);
  // The byte size the code reads through the slot, for the runtime to
  // check the manifest against.
  uint64_t bytes =
      module.getDataLayout().getTypeAllocSize(global->getValueType());
  auto *i64 = llvm::Type::getInt64Ty(ctx);
  new llvm::GlobalVariable(module, i64, /*isConstant=*/true,
                           llvm::GlobalValue::ExternalLinkage,
                           llvm::ConstantInt::get(i64, bytes),
                           global->getName() + "__bytes");
  auto *slot = new llvm::GlobalVariable(
      module, ptrType, /*isConstant=*/false, llvm::GlobalValue::ExternalLinkage,
      llvm::ConstantPointerNull::get(ptrType), global->getName() + "__ptr");
  slot->setVisibility(llvm::GlobalValue::DefaultVisibility);
  llvm::convertUsersOfConstantsToInstructions({global});
  for (llvm::Use &use : llvm::make_early_inc_range(global->uses())) {
    auto *user = llvm::cast<llvm::Instruction>(use.getUser());
    llvm::Instruction *insertBefore = user;
    if (auto *phi = llvm::dyn_cast<llvm::PHINode>(user))
      insertBefore = phi->getIncomingBlock(use)->getTerminator();
    auto *load = new llvm::LoadInst(ptrType, slot, global->getName() + ".addr",
                                    insertBefore->getIterator());
    use.set(load);
  }
  global->eraseFromParent();
}

/// The element type of the weight global `symbol` as the manifest names
/// it, or "" if it is not an LLVM global of arrays of such a type.
std::string weightElementType(ModuleOp module, llvm::StringRef symbol) {
  auto global = module.lookupSymbol<LLVM::GlobalOp>(symbol);
  if (!global)
    return "";
  Type type = global.getType();
  while (auto array = dyn_cast<LLVM::LLVMArrayType>(type))
    type = array.getElementType();
  return mlir::moe::getManifestTypeName(type);
}

/// `void <name>(void **args)` calling `callee(*args[0], ..., *args[n-1])`.
void addPackedEntry(llvm::Module &module, llvm::Function *callee,
                    llvm::StringRef name) {
  llvm::LLVMContext &ctx = module.getContext();
  auto *ptrType = llvm::PointerType::getUnqual(ctx);
  auto *fnType = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptrType},
                                         false);
  auto *fn = llvm::Function::Create(fnType, llvm::GlobalValue::ExternalLinkage,
                                    name, module);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", fn));
  llvm::SmallVector<llvm::Value *> args;
  for (auto [i, param] : llvm::enumerate(callee->args())) {
    llvm::Value *slot = b.CreateConstGEP1_64(ptrType, fn->getArg(0), i);
    llvm::Value *argPtr = b.CreateLoad(ptrType, slot);
    args.push_back(b.CreateLoad(param.getType(), argPtr));
  }
  b.CreateCall(callee, args);
  b.CreateRetVoid();
}

} // namespace

std::string mlir::moe::getManifestTypeName(Type type) {
  if (type.isF32())
    return "f32";
  if (type.isBF16())
    return "bf16";
  if (type.isF16())
    return "f16";
  if (type.isF64())
    return "f64";
  if (auto integer = dyn_cast<IntegerType>(type))
    return "i" + std::to_string(integer.getWidth());
  return "";
}

llvm::Error mlir::moe::writeArtifact(ModuleOp module,
                                        const ArtifactInfo &info,
                                        llvm::StringRef outputPath) {
  auto manifest = module->getAttrOfType<DictionaryAttr>("moe.weights");
  if (!manifest)
    return makeError("internal error: no moe.weights manifest");
  // Recorded per weight, so that the runtime can fill a weight with values
  // of its type when it runs without the checkpoint (random weights).
  std::map<std::string, std::string> elementTypes;
  for (NamedAttribute entry : manifest)
    elementTypes[entry.getName().str()] =
        weightElementType(module, entry.getName().getValue());

  // --- LLVM IR --------------------------------------------------------------
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext, "moec");
  if (!llvmModule)
    return makeError("internal error: translation to LLVM IR failed");
  // The host's data layout first: the weight slots record byte sizes.
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return makeError("no code generator for the host: " + error);
  // Constructors (a CUDA artifact loads its PTX in one) go to .init_array,
  // which the dynamic loader runs; it ignores the legacy .ctors.
  llvm::TargetOptions targetOptions;
  targetOptions.UseInitArray = true;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, llvm::sys::getHostCPUName(), "", targetOptions,
      llvm::Reloc::PIC_));
  llvmModule->setDataLayout(machine->createDataLayout());
  llvmModule->setTargetTriple(triple);
  for (NamedAttribute entry : manifest) {
    llvm::GlobalVariable *global =
        llvmModule->getNamedGlobal(entry.getName().getValue());
    if (global)
      indirectGlobal(*llvmModule, global);
  }
  // What the code was built for: the runtime refuses a manifest that says
  // otherwise. Decoder: [1, vocab, max_seq_len, weight slots, caches,
  // cache ranks...]; graph: [2, inputs, outputs, weight slots, then per
  // input and output: rank, dtype, sizes...].
  bool graph = info.kind == ArtifactInfo::Kind::Graph;
  {
    llvm::SmallVector<int64_t> abi;
    if (graph) {
      abi = {2, int64_t(info.inputs.size()), int64_t(info.outputs.size()),
             int64_t(manifest.size())};
      // Per value: rank, element type (moert_dtype), each size (-1 when
      // dynamic), so that an edited manifest cannot make the runtime pass
      // buffers smaller than the code reads.
      static const llvm::StringRef kDtypes[] = {"f32", "f16", "bf16", "f64",
                                                "i64", "i32", "bool"};
      for (const auto *values : {&info.inputs, &info.outputs})
        for (const ArtifactInfo::GraphValue &v : *values) {
          abi.push_back(v.dims.size());
          abi.push_back(llvm::find(kDtypes, v.dtype) - std::begin(kDtypes) + 1);
          for (const std::string &dim : v.dims) {
            int64_t size = -1;
            if (!dim.empty() && llvm::isDigit(dim[0]))
              llvm::to_integer(dim, size);
            abi.push_back(size);
          }
        }
    } else {
      abi = {1, info.vocabSize, info.maxSeqLen, int64_t(manifest.size()),
             int64_t(info.cacheRanks.size())};
      abi.append(info.cacheRanks.begin(), info.cacheRanks.end());
    }
    llvm::LLVMContext &ctx = llvmModule->getContext();
    auto *i64 = llvm::Type::getInt64Ty(ctx);
    llvm::SmallVector<llvm::Constant *> words;
    for (int64_t word : abi)
      words.push_back(llvm::ConstantInt::get(i64, word));
    auto *type = llvm::ArrayType::get(i64, words.size());
    new llvm::GlobalVariable(*llvmModule, type, /*isConstant=*/true,
                             llvm::GlobalValue::ExternalLinkage,
                             llvm::ConstantArray::get(type, words), "moe_abi");
  }
  // The code's heap is the runtime's (moert_malloc, moert_aligned_alloc
  // and moert_free in runtime/host_memory.cpp), which checks large
  // allocations against the host's free memory, turns a failure into an
  // error returned by the entry point instead of a null dereference, and
  // keeps freed blocks for the next decode step. The renamed declarations
  // keep malloc's and free's semantics for the optimiser.
  // CUDA code allocates from the device's pool instead (managed memory,
  // moert_device_* in runtime/gpu_launch.cpp), and frees back to it.
  bool cuda = !info.gpuArch.empty();
  const char *family = cuda ? "moert_device" : "moert";
  if (llvm::Function *fn = llvmModule->getFunction("free");
      fn && fn->isDeclaration()) {
    fn->setName(cuda ? "moert_device_free" : "moert_free");
    fn->addFnAttr(llvm::Attribute::getWithAllocKind(
        llvmModule->getContext(), llvm::AllocFnKind::Free));
    fn->addFnAttr("alloc-family", family);
    fn->addParamAttr(0, llvm::Attribute::AllocatedPointer);
  }
  for (llvm::StringRef name : {"malloc", "aligned_alloc"}) {
    llvm::Function *fn = llvmModule->getFunction(name);
    if (!fn || !fn->isDeclaration())
      continue;
    fn->setName((cuda ? "moert_device_" : "moert_") + name.str());
    llvm::LLVMContext &ctx = llvmModule->getContext();
    fn->addRetAttr(llvm::Attribute::NoAlias);
    fn->addFnAttr(llvm::Attribute::getWithAllocKind(
        ctx, llvm::AllocFnKind::Alloc | llvm::AllocFnKind::Uninitialized |
                 (name == "aligned_alloc" ? llvm::AllocFnKind::Aligned
                                          : llvm::AllocFnKind::Unknown)));
    fn->addFnAttr(llvm::Attribute::getWithAllocSizeArgs(
        ctx, name == "malloc" ? 0 : 1, std::nullopt));
    fn->addFnAttr("alloc-family", family);
    if (name == "aligned_alloc")
      fn->addParamAttr(0, llvm::Attribute::AllocAlign);
  }

  llvm::SmallVector<std::pair<std::string, std::string>> entries;
  llvm::SmallVector<llvm::StringRef> entryNames = {"main"};
  if (!graph)
    entryNames = {"prefill", "decode"};
  for (llvm::StringRef name : entryNames)
    entries.push_back(
        {("moe_" + name + "_packed").str(), ("_mlir_ciface_" + name).str()});
  for (auto &[entryName, funcName] : entries) {
    llvm::Function *callee = llvmModule->getFunction(funcName);
    if (!callee)
      return makeError("internal error: no " + funcName);
    addPackedEntry(*llvmModule, callee, entryName);
  }
  // Only the entry points, the weight slots and the ABI record are
  // exported; everything else is internal, so a host program's symbols can
  // never interpose on the model's functions.
  for (llvm::Function &fn : *llvmModule)
    if (!fn.isDeclaration() &&
        llvm::none_of(entries, [&](const auto &entry) {
          return fn.getName() == entry.first;
        }))
      fn.setLinkage(llvm::GlobalValue::InternalLinkage);

  // --- Object code for the host, then a shared object -----------------------
  if (llvm::Error err = makeOptimizingTransformer(2, 0, machine.get())(
          llvmModule.get()))
    return err;

  llvm::SmallString<128> objectPath, libraryPath;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("moec", "o", objectPath))
    return makeError("cannot create a temporary file: " + ec.message());
  llvm::FileRemover removeObject(objectPath);
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("moec", "so", libraryPath))
    return makeError("cannot create a temporary file: " + ec.message());
  llvm::FileRemover removeLibrary(libraryPath);
  {
    std::error_code ec;
    llvm::raw_fd_ostream object(objectPath, ec);
    if (ec)
      return makeError("cannot write " + objectPath + ": " + ec.message());
    llvm::legacy::PassManager codegen;
    if (machine->addPassesToEmitFile(codegen, object, nullptr,
                                     llvm::CodeGenFileType::ObjectFile))
      return makeError("the host code generator cannot emit objects");
    codegen.run(*llvmModule);
  }
  llvm::ErrorOr<std::string> lld = llvm::sys::findProgramByName("ld.lld-22");
  if (!lld)
    lld = llvm::sys::findProgramByName("ld.lld");
  if (!lld)
    return makeError("cannot find ld.lld-22 to link the artifact (install "
                     "lld-22; scripts/bootstrap.sh does)");
  std::string linkError;
  llvm::SmallVector<llvm::StringRef> linkArgs = {
      *lld, "-shared", "--hash-style=gnu", "-o", libraryPath, objectPath};
  if (llvm::sys::ExecuteAndWait(*lld, linkArgs, std::nullopt, {}, 0, 0,
                                &linkError) != 0)
    return makeError("linking the artifact failed: " + linkError);
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> library =
      llvm::MemoryBuffer::getFile(libraryPath, /*IsText=*/false);
  if (!library)
    return makeError("cannot read the linked code: " +
                     library.getError().message());

  // --- Manifest ---------------------------------------------------------------
  llvm::StringRef code = (*library)->getBuffer();
  std::shared_ptr<::moe::Checkpoint> keepAlive;

  // Each weight slot's tensors: their bytes, and where they are in a
  // checkpoint shard when they are referenced in place.
  struct Part {
    llvm::ArrayRef<uint8_t> bytes;
    size_t shard = 0;
    uint64_t offset = 0;
  };
  struct Shard {
    std::string path;
    uint64_t fingerprint, size;
  };
  std::vector<std::pair<std::string, std::vector<Part>>> weights;
  std::vector<Shard> shards;
  bool embed = info.embedWeights || graph;
  if (graph) {
    if (!info.tensorBytes)
      return makeError("internal error: a graph artifact needs tensor bytes");
    for (NamedAttribute entry : manifest) {
      std::vector<Part> parts;
      for (Attribute name : cast<ArrayAttr>(entry.getValue())) {
        llvm::Expected<llvm::ArrayRef<uint8_t>> bytes =
            info.tensorBytes(cast<StringAttr>(name).getValue());
        if (!bytes)
          return bytes.takeError();
        parts.push_back({*bytes});
      }
      weights.emplace_back(entry.getName().getValue().str(), std::move(parts));
    }
  } else {
    std::shared_ptr<::moe::Checkpoint> checkpoint = info.checkpoint;
    if (!checkpoint) {
      llvm::Expected<std::unique_ptr<::moe::Checkpoint>> opened =
          ::moe::Checkpoint::open(info.checkpointDir);
      if (!opened)
        return opened.takeError();
      checkpoint = std::move(*opened);
    }
    std::map<const ::moe::SafeTensorsFile *, size_t> shardIndex;
    for (const auto &file : checkpoint->files()) {
      llvm::SmallString<256> absolute(file->path());
      llvm::sys::fs::make_absolute(absolute);
      if (!embed &&
          absolute.str().find_first_of("\t\n") != llvm::StringRef::npos)
        return makeError(file->path() +
                         ": paths with tabs or newlines cannot be recorded "
                         "(use --embed-weights)");
      llvm::StringRef start(file->header().data() - 8,
                            8 + file->header().size());
      uint64_t size = 0;
      llvm::sys::fs::file_size(file->path(), size);
      shardIndex[file.get()] = shards.size();
      shards.push_back({absolute.str().str(), fingerprint(start), size});
    }
    for (NamedAttribute entry : manifest) {
      std::vector<Part> parts;
      for (Attribute name : cast<ArrayAttr>(entry.getValue())) {
        auto at = checkpoint->lookup(cast<StringAttr>(name).getValue());
        if (!at)
          return makeError("internal error: weight not in the checkpoint");
        parts.push_back({at->file->data(*at->tensor), shardIndex[at->file],
                         8 + at->file->header().size() + at->tensor->begin});
      }
      weights.emplace_back(entry.getName().getValue().str(), std::move(parts));
    }
    // The checkpoint's mapping outlives the writes below.
    keepAlive = checkpoint;
  }

  // Layout: manifest, padding to `base`, the code, then (with
  // --embed-weights, and always for graphs) every referenced tensor,
  // 64-byte aligned, each distinct tensor once.
  auto alignTo64 = [](uint64_t x) { return (x + 63) & ~uint64_t(63); };
  std::map<const uint8_t *, uint64_t> embeddedAt;
  // Embedded tensors: the checksum of their checksums, in the order of the
  // weight lines (the runtime recomputes it from the artifact at load).
  uint64_t dataSum = 0;
  if (embed) {
    ::moe::PartsChecksum sum;
    for (auto &[symbol, parts] : weights)
      for (const Part &part : parts)
        sum.add(part.bytes.data(), part.bytes.size());
    dataSum = sum.value();
  }
  auto render = [&](uint64_t base, uint64_t &total) -> std::string {
    std::string text =
        "moec-artifact\t" + std::to_string(MOERT_ARTIFACT_FORMAT) + "\n";
    llvm::raw_string_ostream os(text);
    if (!info.gpuArch.empty())
      os << "target\tcuda\t" << info.gpuArch << "\n";
    if (graph) {
      os << "kind\tgraph\n"
         << "source\t" << info.source << "\n";
      for (const auto &[tag, values] :
           {std::pair{"input", &info.inputs}, {"output", &info.outputs}})
        for (const ArtifactInfo::GraphValue &v : *values)
          os << tag << "\t" << v.name << "\t" << v.dtype << "\t"
             << llvm::join(v.dims, ",") << "\n";
    } else {
      os << "model_type\t" << info.modelType << "\n"
         << "vocab\t" << info.vocabSize << "\n"
         << "layers\t" << info.numLayers << "\n"
         << "max_seq_len\t" << info.maxSeqLen << "\n";
      for (auto [rank, bytes] : llvm::zip_equal(info.cacheRanks, info.cacheBytes))
        os << "cache\t" << rank << "\t" << bytes << "\n";
      if (!info.configJson.empty())
        os << "config\t" << info.configJson << "\n";
      os << "signature\tprefill\t" << info.prefillSignature << "\n"
         << "signature\tdecode\t" << info.decodeSignature << "\n";
    }
    uint64_t cursor = alignTo64(base + code.size());
    embeddedAt.clear();
    if (embed) {
      for (auto &[symbol, parts] : weights)
        for (const Part &part : parts)
          if (embeddedAt.emplace(part.bytes.data(), cursor).second)
            cursor = alignTo64(cursor + part.bytes.size());
      total = cursor;
      os << "shard\t@self\t0\t" << total << "\n";
    } else {
      total = base + code.size();
      for (const Shard &shard : shards)
        os << "shard\t" << shard.path << "\t"
           << llvm::format_hex_no_prefix(shard.fingerprint, 16) << "\t"
           << shard.size << "\n";
    }
    for (auto &[symbol, parts] : weights) {
      os << "weight\t" << symbol;
      if (const std::string &type = elementTypes[symbol]; !type.empty())
        os << "\t" << type;
      for (const Part &part : parts) {
        if (embed)
          os << "\t0\t" << embeddedAt[part.bytes.data()];
        else
          os << "\t" << part.shard << "\t" << part.offset;
        os << "\t" << part.bytes.size();
      }
      os << "\n";
    }
    if (embed)
      os << "data\t" << llvm::utohexstr(dataSum, true) << "\n";
    os << "code\t" << base << "\t" << code.size() << "\t"
       << llvm::utohexstr(fingerprint(code), true) << "\n";
    // Last, the checksum of everything above.
    uint64_t manifestSum = fingerprint(text);
    os << "check\t" << llvm::utohexstr(manifestSum, true) << "\nend\n";
    return text;
  };
  // Offsets change the manifest's length only through their digits: render
  // once to measure, leave room for longer numbers, and check.
  std::string head;
  uint64_t base = 0, total = 0;
  for (uint64_t slack = 4096;; slack *= 2) {
    std::string text = render(base, total);
    if (base && text.size() <= base) {
      head = std::move(text);
      break;
    }
    base = (text.size() + text.size() / 8 + slack + 4095) / 4096 * 4096;
  }
  head.resize(base, '\n');

  return writeOutputAtomically(
      outputPath, [&](llvm::raw_pwrite_stream &os) -> llvm::Error {
        os << head << code;
        uint64_t written = base + code.size();
        if (embed) {
          // Tensors in manifest order, each at its recorded offset.
          std::vector<std::pair<uint64_t, Part>> order;
          for (auto &[symbol, parts] : weights)
            for (const Part &part : parts)
              order.push_back({embeddedAt[part.bytes.data()], part});
          llvm::sort(order, [](const auto &a, const auto &b) {
            return a.first < b.first;
          });
          for (auto &[offset, part] : order) {
            if (offset < written)
              continue; // Referenced twice; already written.
            os.write_zeros(offset - written);
            os.write(reinterpret_cast<const char *>(part.bytes.data()),
                     part.bytes.size());
            written = offset + part.bytes.size();
          }
          os.write_zeros(total - written);
        }
        return llvm::Error::success();
      });
}
