// RUN: moe-opt %s -moe-gpu-launches-to-loops -split-input-file -verify-diagnostics | FileCheck %s

// A launch becomes loops over grid z, y, x then block z, y, x; ids are the
// induction variables, sizes the launch's operands; per-thread allocas are
// made once, before the nest.
// CHECK-LABEL: func.func @launch
// CHECK-SAME: (%[[X:.*]]: memref<?x64xf32>, %[[N:.*]]: index)
// CHECK: %[[SCRATCH:.*]] = memref.alloca() : memref<4xf32>
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c1
// CHECK: scf.for %[[BY:.*]] = %c0{{.*}} to %[[N]]
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c1
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c1
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c1
// CHECK: scf.for %[[TX:.*]] = %c0{{.*}} to %c64
// CHECK: memref.load %[[X]][%[[BY]], %[[TX]]]
// CHECK: memref.store %{{.*}}, %[[SCRATCH]]
// CHECK-NOT: gpu.
func.func @launch(%x: memref<?x64xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %n, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c64, %sy = %c1, %sz = %c1) {
    %scratch = memref.alloca() : memref<4xf32>
    %v = memref.load %x[%by, %tx] : memref<?x64xf32>
    memref.store %v, %scratch[%c0] : memref<4xf32>
    %w = memref.load %scratch[%c0] : memref<4xf32>
    %d = arith.addf %w, %w : f32
    memref.store %d, %x[%by, %tx] : memref<?x64xf32>
    gpu.terminator
  }
  return
}

// -----

func.func @attributions(%x: memref<4xf32>) {
  %c1 = arith.constant 1 : index
  // expected-error @below {{is not a launch -moe-gpu-launch-loops makes}}
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1)
             workgroup(%shared : memref<4xf32, #gpu.address_space<workgroup>>) {
    gpu.terminator
  }
  return
}
