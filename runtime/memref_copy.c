/*===- memref_copy.c - Strided copies for compiled code -------------------===*
 *
 * The LLVM lowering of memref.copy between non-contiguous buffers calls
 * `memrefCopy`. MLIR ships it in libmlir_c_runner_utils; the runtime
 * provides its own so that compiled artifacts need nothing from MLIR.
 *
 *===----------------------------------------------------------------------===*/

#include <stdint.h>
#include <string.h>

typedef struct {
  int64_t rank;
  void *descriptor;
} moert_unranked_memref;

/* Descriptor words: allocated, aligned, offset, sizes[rank], strides[rank]. */
static void copy_dim(int64_t elem_size, int64_t rank, int64_t dim,
                     const int64_t *sizes, const int64_t *src_strides,
                     const int64_t *dst_strides, const char *src, char *dst) {
  if (dim == rank) {
    memcpy(dst, src, (size_t)elem_size);
    return;
  }
  for (int64_t i = 0; i < sizes[dim]; ++i)
    copy_dim(elem_size, rank, dim + 1, sizes, src_strides, dst_strides,
             src + i * src_strides[dim] * elem_size,
             dst + i * dst_strides[dim] * elem_size);
}

void memrefCopy(int64_t elem_size, moert_unranked_memref *src,
                moert_unranked_memref *dst) {
  const int64_t *s = (const int64_t *)src->descriptor;
  const int64_t *d = (const int64_t *)dst->descriptor;
  int64_t rank = src->rank;
  const char *src_data = (const char *)(intptr_t)s[1] + s[2] * elem_size;
  char *dst_data = (char *)(intptr_t)d[1] + d[2] * elem_size;
  if (rank == 0) {
    memcpy(dst_data, src_data, (size_t)elem_size);
    return;
  }
  copy_dim(elem_size, rank, 0, s + 3, s + 3 + rank, d + 3 + rank, src_data,
           dst_data);
}
