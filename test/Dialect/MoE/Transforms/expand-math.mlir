// RUN: moe-opt %s -moe-expand-math | FileCheck %s

// erf becomes a piecewise rational polynomial (fma chains, which LLVM
// lowers), with no math.erf left for the LLVM translation.
// CHECK-LABEL: func.func @erf_f32
// CHECK-NOT: math.erf
// CHECK: math.fma
// CHECK-NOT: math.erf
// CHECK: return
func.func @erf_f32(%x: f32) -> f32 {
  %y = math.erf %x : f32
  return %y : f32
}

// f16 goes through f32.
// CHECK-LABEL: func.func @erf_f16
// CHECK: arith.extf %{{.*}} : f16 to f32
// CHECK-NOT: math.erf
// CHECK: math.fma
// CHECK-NOT: math.erf
// CHECK: arith.truncf %{{.*}} : f32 to f16
func.func @erf_f16(%x: f16) -> f16 {
  %y = math.erf %x : f16
  return %y : f16
}

// Ops LLVM has intrinsics for are left alone.
// CHECK-LABEL: func.func @exp_kept
// CHECK: math.exp
func.func @exp_kept(%x: f32) -> f32 {
  %y = math.exp %x : f32
  return %y : f32
}

// With an op list (as the CUDA target runs it on device code): exp, rsqrt
// and powf are approximated or expanded too, so PTX needs no libdevice.
// RUN: moe-opt %s '-moe-expand-math=ops=exp,rsqrt,powf,log' | FileCheck %s --check-prefix=DEVICE
// DEVICE-LABEL: func.func @exp_kept
// DEVICE-NOT: math.exp
// DEVICE: return
// DEVICE-LABEL: func.func @device_ops
// DEVICE-NOT: math.rsqrt
// DEVICE-NOT: math.powf
// DEVICE: math.sqrt
// DEVICE-NOT: math.rsqrt
// DEVICE-NOT: math.powf
// DEVICE-NOT: math.exp
// DEVICE: return
func.func @device_ops(%x: f32, %y: f32) -> (f32, f32) {
  %r = math.rsqrt %x : f32
  %p = math.powf %x, %y : f32
  return %r, %p : f32, f32
}

// pow keeps its domain: exp(y * log|x|), negated for negative x and odd
// integer y, NaN for negative x and other y, 1 for y = 0 (upstream's
// expansion is NaN for every negative x). A constant exponent of 2 is a
// product.
// DEVICE-LABEL: func.func @powf_domain
// DEVICE: %[[ABS:.*]] = math.absf %arg0
// DEVICE: math.roundeven %arg1
// DEVICE: arith.cmpf olt, %arg0
// DEVICE: arith.negf
// DEVICE: arith.constant 0x7FC00000 : f32
// DEVICE: arith.constant 1.000000e+00 : f32
// DEVICE: %[[SQ:.*]] = arith.mulf %arg0, %arg0 : f32
// DEVICE: return %{{.*}}, %[[SQ]]
func.func @powf_domain(%x: f32, %y: f32) -> (f32, f32) {
  %two = arith.constant 2.0 : f32
  %p = math.powf %x, %y : f32
  %s = math.powf %x, %two : f32
  return %p, %s : f32, f32
}
