// RUN: moe-opt %s -moe-cpu-parallel-loops -split-input-file | FileCheck %s
// RUN: moe-opt %s -moe-cpu-parallel-loops -convert-scf-to-cf -expand-strided-metadata -finalize-memref-to-llvm -convert-to-llvm -reconcile-unrealized-casts -split-input-file | FileCheck %s --check-prefix=LLVM

// The outermost parallel loop becomes a task over the linear index (the
// innermost dimension fastest) and a call of moert_parallel_for on the
// iteration count; what the body uses from above (a memref descriptor, a
// scalar, the bounds) goes through a context struct allocated at the
// caller's entry, constants are cloned, and the nested loop stays in the
// task.
// CHECK-LABEL: func.func private @rows_task0
// CHECK-SAME: (%[[CTX:.+]]: !llvm.ptr, %[[I:.+]]: i64)
// CHECK: %[[C2:.+]] = arith.constant 2 : index
// CHECK: %[[XP:.+]] = llvm.getelementptr %[[CTX]][0, 0]
// CHECK: %[[XD:.+]] = llvm.load %[[XP]] : !llvm.ptr -> !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)>
// CHECK: %[[X:.+]] = builtin.unrealized_conversion_cast %[[XD]] : {{.*}} to memref<?x8xf32>
// CHECK: %[[SP:.+]] = llvm.getelementptr %[[CTX]][0, 1]
// CHECK: %[[S:.+]] = llvm.load %[[SP]] : !llvm.ptr -> f32
// CHECK: %[[LIN:.+]] = arith.index_cast %[[I]] : i64 to index
// CHECK: %[[H:.+]] = arith.remui %[[LIN]], %[[C2]]
// CHECK: %[[R:.+]] = arith.divui %[[LIN]], %[[C2]]
// CHECK: scf.parallel (%{{.+}}) = (%{{.+}}) to (%{{.+}})
// CHECK: memref.load %[[X]][%[[R]], %{{.+}}]
// CHECK: arith.mulf %{{.+}}, %[[S]]
// CHECK: return
// CHECK-LABEL: func.func @rows
// CHECK-SAME: (%[[ARG:.+]]: memref<?x8xf32>, %[[SCALE:.+]]: f32)
// CHECK: %[[CONTEXT:.+]] = llvm.alloca %{{.+}} x !llvm.struct<(struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)>, f32, i64)>
// CHECK: %[[N:.+]] = memref.dim %[[ARG]]
// CHECK: %[[DESC:.+]] = builtin.unrealized_conversion_cast %[[ARG]]
// CHECK: llvm.store %[[DESC]], %{{.+}}
// CHECK: llvm.store %[[SCALE]], %{{.+}}
// CHECK: %[[ROWS:.+]] = arith.muli %{{.+}}, %[[N]]
// CHECK: %[[COUNT:.+]] = arith.muli %[[ROWS]], %{{.+}}
// CHECK: %[[COUNT64:.+]] = arith.index_cast %[[COUNT]] : index to i64
// CHECK: %[[TASK:.+]] = constant @rows_task0
// CHECK: %[[TASKPTR:.+]] = builtin.unrealized_conversion_cast %[[TASK]]
// CHECK: call @moert_parallel_for(%[[COUNT64]], %[[TASKPTR]], %[[CONTEXT]])
// CHECK-NOT: scf.parallel
// CHECK: func.func private @moert_parallel_for(i64, !llvm.ptr, !llvm.ptr)
// After the host lowering the casts are gone.
// LLVM-LABEL: llvm.func @rows
// LLVM-NOT: unrealized_conversion_cast
// LLVM: llvm.mlir.addressof @rows_task0
// LLVM: llvm.call @moert_parallel_for
func.func @rows(%x: memref<?x8xf32>, %s: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %n = memref.dim %x, %c0 : memref<?x8xf32>
  scf.parallel (%r, %h) = (%c0, %c0) to (%n, %c2) step (%c1, %c1) {
    %c4 = arith.constant 4 : index
    %base = arith.muli %h, %c4 : index
    scf.parallel (%k) = (%c0) to (%c4) step (%c1) {
      %col = arith.addi %base, %k : index
      %v = memref.load %x[%r, %col] : memref<?x8xf32>
      %w = arith.mulf %v, %s : f32
      memref.store %w, %x[%r, %col] : memref<?x8xf32>
      scf.reduce
    }
    scf.reduce
  }
  return
}

// -----

// Loops that do not start at zero with unit steps are left to run
// serially, and nothing is declared.
// CHECK-LABEL: func.func @strided
// CHECK: scf.parallel
// CHECK-NOT: moert_parallel_for
// LLVM-LABEL: llvm.func @strided
// LLVM-NOT: moert_parallel_for
func.func @strided(%x: memref<?xf32>, %s: f32) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c0 = arith.constant 0 : index
  %n = memref.dim %x, %c0 : memref<?xf32>
  scf.parallel (%i) = (%c1) to (%n) step (%c2) {
    memref.store %s, %x[%i] : memref<?xf32>
    scf.reduce
  }
  return
}
