//===- SafeTensorsFuzzer.cpp - libFuzzer target for safetensors headers ---===//
//
// Feeds arbitrary bytes to the safetensors parser as if they were a file, and
// reads every byte of every tensor it accepts: AddressSanitizer then checks
// that no accepted offset points outside the buffer.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/SafeTensors.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto buffer = llvm::MemoryBuffer::getMemBufferCopy(
      llvm::StringRef(reinterpret_cast<const char *>(data), size),
      "fuzz.safetensors");
  auto file = moe::SafeTensorsFile::fromBuffer(std::move(buffer),
                                               "fuzz.safetensors");
  if (!file) {
    llvm::consumeError(file.takeError());
    return 0;
  }
  unsigned sum = 0;
  for (const moe::TensorInfo &tensor : (*file)->tensors()) {
    // What the parser promises of every tensor it accepts.
    if (tensor.begin > tensor.end || (*file)->lookup(tensor.name) != &tensor)
      __builtin_trap();
    int64_t elements = tensor.numElements();
    if (elements < 0 || (uint64_t(elements) * moe::dtypeBits(tensor.dtype) + 7) / 8 !=
                            tensor.numBytes())
      __builtin_trap();
    for (uint8_t byte : (*file)->data(tensor))
      sum += byte;
  }
  (void)(*file)->header().size();
  return sum == 0xFFFFFFFFu; // Keeps the reads; always 0 in practice.
}
