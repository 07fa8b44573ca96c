# -*- Python -*-
# lit configuration for moec: .mlir tests run through moe-opt, moec and
# moe-run, checked with FileCheck.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOEC"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Unit", "Oracle", "fixtures"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%moe_src_root", config.moe_src_root))
config.substitutions.append(("%moe_obj_root", config.moe_obj_root))
# The fake CUDA driver (test/Unit/CudaDriverStub.c) for the runtime's GPU
# host path on machines without a GPU.
config.substitutions.append(
    ("%cuda_stub", os.path.join(config.moe_obj_root, "lib", "libmoert_cuda_stub.so")))
# Encodes an ONNX model written as a text proto, so that test models are
# readable and reviewable: `%onnx-encode < m.textproto > m.onnx`.
config.substitutions.append(
    ("%onnx-encode",
     f"{config.protoc} --encode=onnx.ModelProto -I{config.onnx_proto_dir} onnx/onnx.proto"))

# The same pieces, for scripts that encode models themselves.
config.substitutions.append(("%protoc", config.protoc))
config.substitutions.append(("%onnx_proto_dir", config.onnx_proto_dir))

llvm_config.use_default_substitutions()
# Variables captured in one CHECK-LABEL block must not leak into the next, and
# every declared prefix must be used.
config.environment["FILECHECK_OPTS"] = "-enable-var-scope --allow-unused-prefixes=false"

# ptxas (CUDA toolkit) assembles the PTX of --target=cuda as the driver's
# JIT would. Found through $MOE_PTXAS, $PATH, $CUDA_HOME or /usr/local/cuda,
# never assumed: without it the tests that need it are reported as
# unsupported (skipped), and this warning says why.
import shutil
ptxas = os.environ.get("MOE_PTXAS") or shutil.which("ptxas")
for root in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
    if not ptxas and root and os.access(os.path.join(root, "bin", "ptxas"), os.X_OK):
        ptxas = os.path.join(root, "bin", "ptxas")
if ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))
else:
    lit_config.warning(
        "ptxas not found (set MOE_PTXAS or install the CUDA toolkit): the "
        "tests that assemble moec's PTX are SKIPPED, not passed")

if config.moe_enable_gpu_tests:
    config.available_features.add("cuda")
# The sanitizer build (MOE_SANITIZE): sweeps whose code the plain build
# already covers and that would take several times as long here opt out.
if config.moe_sanitize:
    config.available_features.add("sanitizers")
# The libFuzzer targets exist in the sanitizer build (MOE_FUZZ).
if config.moe_fuzz:
    config.available_features.add("fuzz")

tool_dirs = [config.moe_tools_dir, config.llvm_tools_dir]
tools = ["moe-opt", "moec", "moe-run"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
# `not` and `count` at the start of a RUN line are found through PATH.
for directory in (config.llvm_tools_dir, config.moe_tools_dir):
    llvm_config.with_environment("PATH", directory, append_path=True)
