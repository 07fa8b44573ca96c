//===- OutputFile.h - Writing outputs atomically ----------------*- C++ -*-===//
//
// moec's outputs (artifacts, printed IR) appear complete or not at all: the
// bytes go to a temporary file beside the destination, which a rename puts
// in place only once everything was written. A failed or interrupted run
// leaves the destination as it was (an older file stays intact).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_OUTPUTFILE_H
#define MOE_COMPILER_OUTPUTFILE_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {

/// Writes `path` through `write`: to `path`.tmp-XXXXXXXX (removed on error
/// and on a fatal signal), renamed to `path` on success. "-" writes to
/// standard output, and an existing `path` that is not a regular file (a
/// device such as /dev/null, a pipe) is written in place.
llvm::Error
writeOutputAtomically(llvm::StringRef path,
                      llvm::function_ref<llvm::Error(llvm::raw_pwrite_stream &)>
                          write);

} // namespace mlir::moe

#endif // MOE_COMPILER_OUTPUTFILE_H
