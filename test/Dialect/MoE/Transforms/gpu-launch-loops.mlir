// RUN: moe-opt %s -moe-gpu-launch-loops -canonicalize -split-input-file | FileCheck %s
// RUN: moe-opt %s -moe-gpu-launch-loops=threads-per-block=32 -canonicalize -split-input-file | FileCheck %s --check-prefix=T32

// A parallel loop (as linalg becomes) is tiled: the innermost dimension
// over the threads of a block (128 by default, or fewer when the dimension
// is smaller), the tiles, collapsed into one dimension, over grid x (grid y
// and z hold at most 65535 blocks); the kernel is named after its function
// and goes to @moe_kernels.
// CHECK-LABEL: func.func @scale
// CHECK: %[[N:.*]] = memref.dim
// CHECK: gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %[[N]], %{{.*}} = %c1, %{{.*}} = %c1) threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c64, %{{.*}} = %c1, %{{.*}} = %c1)
// CHECK-SAME: module(@moe_kernels) function(@scale_k0)
// CHECK: arith.mulf
// CHECK: gpu.terminator
// CHECK-NOT: SCFToGPU_visited
// CHECK-NOT: scf.parallel
// T32-LABEL: func.func @scale
// T32: %[[N:.*]] = memref.dim
// T32: %[[TILES:.*]] = arith.muli %[[N]], %c2 : index
// T32: gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %[[TILES]], %{{.*}} = %c1, %{{.*}} = %c1) threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c32,
func.func @scale(%x: memref<?x64xf32>, %s: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %n = memref.dim %x, %c0 : memref<?x64xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c64) step (%c1, %c1) {
    %v = memref.load %x[%i, %j] : memref<?x64xf32>
    %r = arith.mulf %v, %s : f32
    memref.store %r, %x[%i, %j] : memref<?x64xf32>
    scf.reduce
  }
  return
}

// -----

// A serial nest runs in one thread; its fixed-size scratch buffer becomes
// a per-thread alloca at the kernel's entry and its dealloc goes. Weights
// (external globals) are read on the host and passed in; constant globals
// are read inside, so that outlining copies them into the device module.
memref.global "public" constant @weight : memref<64xf32>
memref.global "private" constant @table : memref<2xf32> = dense<[1.0, 2.0]>
// CHECK-LABEL: func.func @serial
// CHECK: %[[W:.*]] = memref.get_global @weight
// CHECK: gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c1, %{{.*}} = %c1, %{{.*}} = %c1) threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c1, %{{.*}} = %c1, %{{.*}} = %c1)
// CHECK-SAME: function(@serial_k0)
// CHECK-NEXT: memref.alloca() {alignment = 64 : i64} : memref<4xf32>
// CHECK-NEXT: memref.get_global @table
// CHECK-NOT: memref.alloc(
// CHECK-NOT: memref.dealloc
// CHECK: memref.load %[[W]]
// CHECK: gpu.terminator
func.func @serial(%out: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %n = memref.dim %out, %c0 : memref<?xf32>
  %w = memref.get_global @weight : memref<64xf32>
  %t = memref.get_global @table : memref<2xf32>
  scf.for %i = %c0 to %n step %c1 {
    %scratch = memref.alloc() {alignment = 64 : i64} : memref<4xf32>
    %a = memref.load %w[%i] : memref<64xf32>
    %b = memref.load %t[%c1] : memref<2xf32>
    %s = arith.addf %a, %b : f32
    memref.store %s, %scratch[%c0] : memref<4xf32>
    %v = memref.load %scratch[%c0] : memref<4xf32>
    memref.store %v, %out[%i] : memref<?xf32>
    memref.dealloc %scratch : memref<4xf32>
  }
  return
}

// -----

// A loop that calls a function, or allocates a buffer of run-time size,
// stays on the host; the nests inside it are launched. memref.copy becomes
// a parallel loop, launched like the others.
func.func private @layer(memref<?xf32>)
// CHECK-LABEL: func.func @host_loop
// CHECK: scf.for
// CHECK: func.call @layer(%{{.*}})
// CHECK: gpu.launch
// CHECK-SAME: function(@host_loop_k0)
// CHECK: scf.for
// CHECK: gpu.terminator
// CHECK: %[[TMP:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK: gpu.launch
// CHECK-SAME: function(@host_loop_k1)
// CHECK: memref.load
// CHECK: memref.store %{{.*}}, %[[TMP]]
// CHECK: gpu.terminator
// CHECK-NOT: memref.copy
// CHECK: func.call @layer(%[[TMP]])
// CHECK: memref.dealloc %[[TMP]]
func.func @host_loop(%x: memref<?xf32>, %layers: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %x, %c0 : memref<?xf32>
  scf.for %l = %c0 to %layers step %c1 {
    func.call @layer(%x) : (memref<?xf32>) -> ()
    scf.for %i = %c1 to %n step %c1 {
      %p = arith.subi %i, %c1 : index
      %a = memref.load %x[%p] : memref<?xf32>
      %b = memref.load %x[%i] : memref<?xf32>
      %s = arith.addf %a, %b : f32
      memref.store %s, %x[%i] : memref<?xf32>
    }
    %tmp = memref.alloc(%n) : memref<?xf32>
    memref.copy %x, %tmp : memref<?xf32> to memref<?xf32>
    func.call @layer(%tmp) : (memref<?xf32>) -> ()
    memref.dealloc %tmp : memref<?xf32>
  }
  return
}

// -----

// A loop with results stays on the host (its results are host values);
// nothing inside it can be launched alone.
// CHECK-LABEL: func.func @reduction
// CHECK-NOT: gpu.launch
// CHECK: scf.for
func.func @reduction(%x: memref<?xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %n = memref.dim %x, %c0 : memref<?xf32>
  %sum = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %zero) -> f32 {
    %v = memref.load %x[%i] : memref<?xf32>
    %s = arith.addf %acc, %v : f32
    scf.yield %s : f32
  }
  return %sum : f32
}

// -----

// One row per thread (the reference lowering's scf.forall over rows, once
// bufferized): the loops nested in the row's body, even parallel ones (a
// fill of the row buffer), run serially in the thread, and the row buffer
// is the thread's own alloca.
// CHECK-LABEL: func.func @rows
// CHECK: gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %{{.*}}, %{{.*}} = %c1, %{{.*}} = %c1) threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c128, %{{.*}} = %c1, %{{.*}} = %c1)
// CHECK-SAME: function(@rows_k0)
// CHECK-NEXT: memref.alloca() : memref<8xf32>
// CHECK-NOT: scf.parallel
// CHECK: scf.for
// CHECK: memref.store %{{.*}} : memref<8xf32>
// CHECK: scf.for
// CHECK: memref.load %{{.*}} : memref<8xf32>
// CHECK: gpu.terminator
func.func @rows(%x: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  %n = memref.dim %x, %c0 : memref<?x8xf32>
  scf.parallel (%r) = (%c0) to (%n) step (%c1) {
    %row = memref.alloc() : memref<8xf32>
    scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
      memref.store %zero, %row[%i] : memref<8xf32>
      scf.reduce
    }
    scf.for %i = %c0 to %c8 step %c1 {
      %v = memref.load %row[%i] : memref<8xf32>
      memref.store %v, %x[%r, %i] : memref<?x8xf32>
    }
    memref.dealloc %row : memref<8xf32>
    scf.reduce
  }
  return
}
