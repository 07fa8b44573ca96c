// moe-opt registers what upstream's GPU lowering needs (dialects, the
// ConvertToLLVM extensions, the NVVM target and the GPU->LLVM IR
// translations): a kernel goes all the way to PTX for the H200 (sm_90).
// The `isa` format needs no CUDA toolkit. sm_90 needs PTX 7.8 or newer.
// RUN: moe-opt %s -gpu-lower-to-nvvm-pipeline="cubin-chip=sm_90 cubin-features=+ptx80 cubin-format=isa" | FileCheck %s

// CHECK: gpu.binary @kernels [#gpu.object<#nvvm.target<chip = "sm_90", features = "+ptx80">
// CHECK-SAME: .target sm_90
// CHECK-SAME: .visible .entry scale(
// CHECK-NOT: unrealized_conversion_cast
// CHECK-LABEL: llvm.func @host
// CHECK: gpu.launch_func @kernels::@scale
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @scale(%buf: memref<128xf32>, %s: f32) kernel {
      %i = gpu.thread_id x
      %v = memref.load %buf[%i] : memref<128xf32>
      %r = arith.mulf %v, %s : f32
      memref.store %r, %buf[%i] : memref<128xf32>
      gpu.return
    }
  }
  func.func @host(%buf: memref<128xf32>, %s: f32) {
    %c1 = arith.constant 1 : index
    %c128 = arith.constant 128 : index
    gpu.launch_func @kernels::@scale blocks in (%c1, %c1, %c1) threads in (%c128, %c1, %c1) args(%buf : memref<128xf32>, %s : f32)
    return
  }
}
