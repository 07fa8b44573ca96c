// Two references to one weight with different shapes.
func.func @conflict() -> (tensor<4x8xf32>, tensor<8x4xf32>) {
  %a = moe.weight "w" : tensor<4x8xf32>
  %b = moe.weight "w" : tensor<8x4xf32>
  return %a, %b : tensor<4x8xf32>, tensor<8x4xf32>
}
