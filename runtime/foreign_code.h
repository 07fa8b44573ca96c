//===- foreign_code.h - Calls into uninstrumented code ---------*- C++ -*-===//
//
// The runtime calls code that clang did not instrument through function
// pointers: compiled models' entry points and parallel-loop tasks, JIT'd or
// loaded from an artifact. Clang's -fsanitize=function (part of
// -fsanitize=undefined) checks every such call by reading a type signature
// from the 8 bytes before the callee. Compiled code has none, and where the
// callee starts a page whose predecessor is unmapped, the check itself
// faults; CI hit this with a JIT'd task at the start of its code page.
// The CUDA driver's entry points are called the same way; the files that
// call them are built without the check (runtime/CMakeLists.txt).
//
//===----------------------------------------------------------------------===//

#ifndef MOERT_FOREIGN_CODE_H
#define MOERT_FOREIGN_CODE_H

/// Marks a function whose indirect calls may reach uninstrumented code.
#if defined(__clang__)
#define MOERT_CALLS_FOREIGN_CODE __attribute__((no_sanitize("function")))
#else
#define MOERT_CALLS_FOREIGN_CODE
#endif

#endif // MOERT_FOREIGN_CODE_H
