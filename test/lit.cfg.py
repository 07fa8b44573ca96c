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

if config.moe_enable_gpu_tests:
    config.available_features.add("cuda")
# The libFuzzer targets exist in the sanitizer build (MOE_FUZZ).
if config.moe_fuzz:
    config.available_features.add("fuzz")

tool_dirs = [config.moe_tools_dir, config.llvm_tools_dir]
tools = ["moe-opt", "moec", "moe-run"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
# `not` and `count` at the start of a RUN line are found through PATH.
for directory in (config.llvm_tools_dir, config.moe_tools_dir):
    llvm_config.with_environment("PATH", directory, append_path=True)
