//===- Npy.h - NumPy .npy files for moe-run ---------------------*- C++ -*-===//
//
// Reads and writes the .npy format (versions 1.0 to 3.0, little-endian,
// C order) for the element types the runtime knows. bf16 has no NumPy
// type: it is read from and written as raw 16-bit words ('<u2').
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TOOLS_MOE_RUN_NPY_H
#define MOE_TOOLS_MOE_RUN_NPY_H

#include "moe/Runtime/moert.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moerun {

struct NpyArray {
  moert_dtype dtype = MOERT_DTYPE_F32;
  std::vector<int64_t> shape;
  std::vector<char> data;
};

/// Reads `path`; `want` resolves the one ambiguity ('<u2' is bf16 only
/// when the graph input is bf16). On failure returns false and sets
/// `error` to a one-line reason naming the file.
bool readNpy(const std::string &path, moert_dtype want, NpyArray &out,
             std::string &error);

/// Writes `bytes` of element type `dtype` and `shape` to `path` through a
/// temporary file renamed into place, so no half-written file is left.
bool writeNpy(const std::string &path, moert_dtype dtype,
              const std::vector<int64_t> &shape, const void *bytes,
              std::string &error);

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_NPY_H
