// RUN: moe-opt %s -moe-gpu-split-reductions=unroll=1 -canonicalize -split-input-file | FileCheck %s
// RUN: moe-opt %s -moe-gpu-split-reductions -canonicalize -split-input-file | FileCheck %s --check-prefix=UNROLL
// RUN: moe-opt %s "-moe-gpu-split-reductions=max-partials=1024 unroll=1" -canonicalize -split-input-file | FileCheck %s --check-prefix=SMALL
// RUN: not moe-opt %s -moe-gpu-split-reductions=lanes=1 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: moe-gpu-split-reductions needs lanes >= 2

// A matrix-vector product as linalg's loops leave it, accumulating in
// memory: the accumulator becomes an iter_args value, then the reduction
// is split. 256 outputs x 32 lanes: lane l of output n sums k = l, l + 32,
// ... (512 / 32 = 16 iterations j, at k = l + 32 j) into partials[n][0][l];
// the original loop adds output n's 32 partial sums to y[m, n] in lane
// order.
// CHECK-LABEL: func.func @matvec
// CHECK-DAG: %[[C8192:.*]] = arith.constant 8192 : index
// CHECK-DAG: %[[C32:.*]] = arith.constant 32 : index
// CHECK-DAG: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[P:.*]] = memref.alloc() : memref<256x1x32xf32>
// CHECK: scf.parallel (%[[T:.*]]) = (%c0) to (%[[C8192]]) step (%c1) {
// CHECK:   %[[LANE:.*]] = arith.remui %[[T]], %[[C32]]
// CHECK:   %[[OUT:.*]] = arith.divui %[[T]], %[[C32]]
// CHECK:   %[[N:.*]] = arith.remui %[[OUT]], %c256
// CHECK:   %[[S:.*]] = scf.for %[[J:.*]] = %c0 to %c16 step %c1 iter_args(%[[A:.*]] = %[[ZERO]]) -> (f32) {
// CHECK:     %[[OFF:.*]] = arith.muli %[[J]], %[[C32]]
// CHECK:     %[[K:.*]] = arith.addi %[[LANE]], %[[OFF]]
// CHECK:     memref.load %{{.*}}[%c0, %[[K]]]
// CHECK:     memref.load %{{.*}}[%[[N]], %[[K]]]
// CHECK:     arith.mulf
// CHECK:     arith.addf %[[A]]
// CHECK:   memref.store %[[S]], %[[P]][%[[OUT]], %c0, %[[LANE]]]
// (canonicalize drops the unit dimension m)
// CHECK: scf.parallel (%[[N2:.*]]) = (%c0) to (%c256)
// CHECK:   %[[INIT:.*]] = memref.load %[[Y:.*]][%c0, %[[N2]]]
// CHECK:   %[[SUM:.*]] = scf.for %[[L:.*]] = %c0 to %[[C32]] step %c1 iter_args(%[[B:.*]] = %[[INIT]]) -> (f32) {
// CHECK:     %[[V:.*]] = memref.load %[[P]][%[[N2]], %c0, %[[L]]]
// CHECK:     arith.addf %[[B]], %[[V]]
// CHECK:   memref.store %[[SUM]], %[[Y]][%c0, %[[N2]]]
// CHECK: memref.dealloc %[[P]]
// By default each lane's loop is unrolled 8 times (8 loads of the weight
// row in flight per thread), its sum in the same order.
// UNROLL-LABEL: func.func @matvec
// UNROLL: scf.for %{{.*}} = %c0 to %c16 step %c8
// UNROLL-COUNT-8: memref.load %{{.*}} : memref<256x512xf32>
// UNROLL: scf.yield
// The partial sums of 256 outputs (8192 floats) exceed max-partials=1024:
// the loop is not split, but still accumulates in a register.
// SMALL-LABEL: func.func @matvec
// SMALL-NOT: memref.alloc
// SMALL: scf.parallel
// SMALL: %[[INIT:.*]] = memref.load
// SMALL: %[[R:.*]] = scf.for %{{.*}} = %c0 to %c512 step %c1 iter_args(%{{.*}} = %[[INIT]]) -> (f32)
// SMALL: memref.store %[[R]]
func.func @matvec(%x: memref<1x512xf32>, %w: memref<256x512xf32>, %y: memref<1x256xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %c512 = arith.constant 512 : index
  scf.parallel (%m, %n) = (%c0, %c0) to (%c1, %c256) step (%c1, %c1) {
    scf.for %k = %c0 to %c512 step %c1 {
      %a = memref.load %x[%m, %k] : memref<1x512xf32>
      %b = memref.load %w[%n, %k] : memref<256x512xf32>
      %c = memref.load %y[%m, %n] : memref<1x256xf32>
      %p = arith.mulf %a, %b : f32
      %s = arith.addf %c, %p : f32
      memref.store %s, %y[%m, %n] : memref<1x256xf32>
    }
    scf.reduce
  }
  return
}

// -----

// Rows known at run time (an RMS norm's): the split form runs when the
// partial sums fit (rows <= max-partials / 32), the original loop
// otherwise. The epilogue after the reduction stays in the second loop.
// CHECK-LABEL: func.func @rows
// CHECK-DAG: %[[LIMIT:.*]] = arith.constant 262144 : index
// CHECK: %[[ROWS:.*]] = memref.dim
// CHECK: %[[FITS:.*]] = arith.cmpi ule, %[[ROWS]], %[[LIMIT]]
// CHECK: scf.if %[[FITS]] {
// CHECK:   %[[P:.*]] = memref.alloc(%[[ROWS]]) : memref<?x1x32xf32>
// CHECK:   scf.parallel
// CHECK:     scf.for %{{.*}} = %c0 to %c16 step %c1
// CHECK:     memref.store %{{.*}}, %[[P]]
// CHECK:   scf.parallel
// CHECK:     %[[SUM:.*]] = scf.for %{{.*}} = %c0 to %c32 step %c1
// CHECK:     math.rsqrt %[[SUM]]
// CHECK:   memref.dealloc %[[P]]
// CHECK: } else {
// CHECK:   scf.parallel
// CHECK:     %[[R:.*]] = scf.for %{{.*}} = %c0 to %c512 step %c1
// CHECK:     math.rsqrt %[[R]]
// CHECK-NOT: memref.alloc
// CHECK: return
func.func @rows(%x: memref<?x512xf32>, %out: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c512 = arith.constant 512 : index
  %zero = arith.constant 0.0 : f32
  %n = memref.dim %x, %c0 : memref<?x512xf32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %r = scf.for %k = %c0 to %c512 step %c1 iter_args(%a = %zero) -> (f32) {
      %v = memref.load %x[%i, %k] : memref<?x512xf32>
      %sq = arith.mulf %v, %v : f32
      %s = arith.addf %a, %sq : f32
      scf.yield %s : f32
    }
    %rs = math.rsqrt %r : f32
    memref.store %rs, %out[%i] : memref<?xf32>
    scf.reduce
  }
  return
}

// -----

// Two reductions in one body (an expert's gate and up rows): one buffer,
// the reduction index in the middle.
// UNROLL-LABEL: func.func @gate_up
// CHECK-LABEL: func.func @gate_up
// CHECK: %[[P:.*]] = memref.alloc() : memref<64x2x32xf32>
// CHECK: scf.parallel
// CHECK:   %[[G:.*]] = scf.for
// CHECK:   memref.store %[[G]], %[[P]][%{{.*}}, %c0, %{{.*}}]
// CHECK:   %[[U:.*]] = scf.for
// CHECK:   memref.store %[[U]], %[[P]][%{{.*}}, %c1, %{{.*}}]
// CHECK: scf.parallel
// CHECK:   %[[GS:.*]] = scf.for
// CHECK:     memref.load %[[P]][%{{.*}}, %c0, %{{.*}}]
// CHECK:   %[[US:.*]] = scf.for
// CHECK:     memref.load %[[P]][%{{.*}}, %c1, %{{.*}}]
// CHECK:   arith.mulf %[[GS]], %[[US]]
func.func @gate_up(%x: memref<512xf32>, %g: memref<64x512xf32>, %u: memref<64x512xf32>, %out: memref<64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c512 = arith.constant 512 : index
  %zero = arith.constant 0.0 : f32
  scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
    %gs = scf.for %k = %c0 to %c512 step %c1 iter_args(%a = %zero) -> (f32) {
      %v = memref.load %x[%k] : memref<512xf32>
      %w = memref.load %g[%j, %k] : memref<64x512xf32>
      %p = arith.mulf %v, %w : f32
      %s = arith.addf %a, %p : f32
      scf.yield %s : f32
    }
    %us = scf.for %k = %c0 to %c512 step %c1 iter_args(%a = %zero) -> (f32) {
      %v = memref.load %x[%k] : memref<512xf32>
      %w = memref.load %u[%j, %k] : memref<64x512xf32>
      %p = arith.mulf %v, %w : f32
      %s = arith.addf %p, %a : f32
      scf.yield %s : f32
    }
    %h = arith.mulf %gs, %us : f32
    memref.store %h, %out[%j] : memref<64xf32>
    scf.reduce
  }
  return
}

// -----

// A sum over experts of a routing weight times a row's dot product (the
// experts' down projection): the lanes share out the dot products, each
// lane runs the loop over the experts; the weights distribute over the
// lanes' shares.
// CHECK-LABEL: func.func @down
// CHECK: %[[P:.*]] = memref.alloc() : memref<64x1x32xf32>
// CHECK: scf.parallel (%{{.*}}) = (%c0) to (%c2048)
// CHECK:   %[[LANE:.*]] = arith.remui
// CHECK:   %[[S:.*]] = scf.for %[[E:.*]] = %c0 to %c8 step %c1 iter_args(%[[ACC:.*]] = %[[ZERO:.*]]) -> (f32) {
// CHECK:     %[[DOT:.*]] = scf.for %{{.*}} = %c0 to %c16 step %c1 iter_args(%{{.*}} = %[[ZERO]]) -> (f32) {
// CHECK:     %[[G:.*]] = memref.load %{{.*}}[%[[E]]] : memref<8xf32>
// CHECK:     %[[T:.*]] = arith.mulf %[[G]], %[[DOT]]
// CHECK:     arith.addf %[[ACC]], %[[T]]
// CHECK:   memref.store %[[S]], %[[P]]
// CHECK: scf.parallel (%{{.*}}) = (%c0) to (%c64)
// CHECK:   scf.for %{{.*}} = %c0 to %c32 step %c1
// CHECK: memref.dealloc %[[P]]
func.func @down(%h: memref<8x512xf32>, %w: memref<8x64x512xf32>, %r: memref<8xf32>, %out: memref<64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %c512 = arith.constant 512 : index
  %zero = arith.constant 0.0 : f32
  scf.parallel (%n) = (%c0) to (%c64) step (%c1) {
    %y = scf.for %e = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> (f32) {
      %dot = scf.for %k = %c0 to %c512 step %c1 iter_args(%a = %zero) -> (f32) {
        %x = memref.load %h[%e, %k] : memref<8x512xf32>
        %v = memref.load %w[%e, %n, %k] : memref<8x64x512xf32>
        %p = arith.mulf %x, %v : f32
        %s = arith.addf %a, %p : f32
        scf.yield %s : f32
      }
      %g = memref.load %r[%e] : memref<8xf32>
      %t = arith.mulf %g, %dot : f32
      %s2 = arith.addf %acc, %t : f32
      scf.yield %s2 : f32
    }
    memref.store %y, %out[%n] : memref<64xf32>
    scf.reduce
  }
  return
}

// -----

// Left alone: a reduction shorter than min-trip-count (256); a body that
// writes memory before its reduction; a parallel loop inside a serial nest
// that -moe-gpu-launch-loops launches whole on one thread.
// CHECK-LABEL: func.func @short
// CHECK-NOT: memref.alloc
// CHECK: return
func.func @short(%x: memref<64x128xf32>, %out: memref<64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c128 = arith.constant 128 : index
  %zero = arith.constant 0.0 : f32
  scf.parallel (%i) = (%c0) to (%c64) step (%c1) {
    %r = scf.for %k = %c0 to %c128 step %c1 iter_args(%a = %zero) -> (f32) {
      %v = memref.load %x[%i, %k] : memref<64x128xf32>
      %s = arith.addf %a, %v : f32
      scf.yield %s : f32
    }
    memref.store %r, %out[%i] : memref<64xf32>
    scf.reduce
  }
  return
}
// CHECK-LABEL: func.func @writes_first
// CHECK-NOT: memref.alloc
// CHECK: return
func.func @writes_first(%x: memref<64x512xf32>, %out: memref<64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c512 = arith.constant 512 : index
  %zero = arith.constant 0.0 : f32
  scf.parallel (%i) = (%c0) to (%c64) step (%c1) {
    memref.store %zero, %x[%i, %c0] : memref<64x512xf32>
    %r = scf.for %k = %c0 to %c512 step %c1 iter_args(%a = %zero) -> (f32) {
      %v = memref.load %x[%i, %k] : memref<64x512xf32>
      %s = arith.addf %a, %v : f32
      scf.yield %s : f32
    }
    memref.store %r, %out[%i] : memref<64xf32>
    scf.reduce
  }
  return
}
// CHECK-LABEL: func.func @in_serial_nest
// CHECK-NOT: memref.alloc
// CHECK: return
func.func @in_serial_nest(%x: memref<4x64x512xf32>, %out: memref<4x64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c64 = arith.constant 64 : index
  %c512 = arith.constant 512 : index
  %zero = arith.constant 0.0 : f32
  scf.for %e = %c0 to %c4 step %c1 {
    scf.parallel (%i) = (%c0) to (%c64) step (%c1) {
      %r = scf.for %k = %c0 to %c512 step %c1 iter_args(%a = %zero) -> (f32) {
        %v = memref.load %x[%e, %i, %k] : memref<4x64x512xf32>
        %s = arith.addf %a, %v : f32
        scf.yield %s : f32
      }
      memref.store %r, %out[%e, %i] : memref<4x64xf32>
      scf.reduce
    }
  }
  return
}
