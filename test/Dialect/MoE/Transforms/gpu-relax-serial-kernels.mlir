// RUN: moe-opt %s '-pass-pipeline=builtin.module(gpu.module(moe-gpu-relax-serial-kernels))' | FileCheck %s

// One-thread kernels lose their block-size bound (PTX .maxntid 1, 1, 1,
// under which ptxas spills); wider kernels and plain functions keep theirs.
module attributes {gpu.container_module} {
  gpu.module @moe_kernels {
    // CHECK-LABEL: gpu.func @serial
    // CHECK-NOT: known_block_size
    // CHECK-SAME: known_grid_size = array<i32: 1, 1, 1>
    gpu.func @serial(%x: memref<4xf32>) kernel attributes {known_block_size = array<i32: 1, 1, 1>, known_grid_size = array<i32: 1, 1, 1>} {
      gpu.return
    }
    // CHECK-LABEL: gpu.func @wide
    // CHECK-SAME: known_block_size = array<i32: 128, 1, 1>
    gpu.func @wide(%x: memref<4xf32>) kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
      gpu.return
    }
  }
}
