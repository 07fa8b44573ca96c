//===- FuzzerOptions.cpp - Sanitizer defaults of the fuzz targets ---------===//
//
// Linked into every fuzz target (add_moe_fuzzer). LLVM and MLIR are not
// built with AddressSanitizer but poison the free space of their
// allocators; the sanitizer would read that as misuse. ASAN_OPTIONS in the
// environment still overrides these.
//
//===----------------------------------------------------------------------===//

extern "C" const char *__asan_default_options() {
  return "allow_user_poisoning=0:detect_leaks=1";
}
