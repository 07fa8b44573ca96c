// RUN: moe-opt %s '-pass-pipeline=builtin.module(gpu.module(moe-gpu-math-to-intrinsics))' | FileCheck %s

// Math with exact PTX instructions becomes generic LLVM intrinsics (which
// convert-gpu-to-nvvm leaves alone) instead of libdevice calls; 16-bit
// operands go through f32. Transcendentals are not this pass's.
module attributes {gpu.container_module} {
  gpu.module @moe_kernels {
    // CHECK-LABEL: gpu.func @exact
    // CHECK: llvm.call_intrinsic "llvm.sqrt.f32"(%{{.*}}) : (f32) -> f32
    // CHECK: llvm.call_intrinsic "llvm.fabs.f64"(%{{.*}}) : (f64) -> f64
    // CHECK: llvm.call_intrinsic "llvm.floor.f32"
    // CHECK: llvm.call_intrinsic "llvm.fma.f32"(%{{.*}}, %{{.*}}, %{{.*}}) : (f32, f32, f32) -> f32
    // CHECK: %[[EXT:.*]] = arith.extf %{{.*}} : bf16 to f32
    // CHECK: %[[R:.*]] = llvm.call_intrinsic "llvm.sqrt.f32"(%[[EXT]])
    // CHECK: arith.truncf %[[R]] : f32 to bf16
    // CHECK: math.exp
    gpu.func @exact(%x: f32, %d: f64, %h: bf16, %out: memref<6xf32>, %outd: memref<1xf64>, %outh: memref<1xbf16>) kernel {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c3 = arith.constant 3 : index
      %s = math.sqrt %x : f32
      %a = math.absf %d : f64
      %f = math.floor %x : f32
      %m = math.fma %x, %x, %x : f32
      %hs = math.sqrt %h : bf16
      %e = math.exp %x : f32
      memref.store %s, %out[%c0] : memref<6xf32>
      memref.store %a, %outd[%c0] : memref<1xf64>
      memref.store %f, %out[%c1] : memref<6xf32>
      memref.store %m, %out[%c2] : memref<6xf32>
      memref.store %hs, %outh[%c0] : memref<1xbf16>
      memref.store %e, %out[%c3] : memref<6xf32>
      gpu.return
    }
  }
}
