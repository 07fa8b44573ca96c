//===- OutputFile.cpp - Writing outputs atomically ------------------------===//

#include "moe/Compiler/OutputFile.h"

#include "llvm/Support/FileSystem.h"

using namespace llvm;

Error mlir::moe::writeOutputAtomically(
    StringRef path, function_ref<Error(raw_pwrite_stream &)> write) {
  if (path == "-") {
    if (Error err = write(outs()))
      return err;
    outs().flush();
    return Error::success();
  }
  // Devices, pipes and the like (/dev/null, /dev/stdout) are written in
  // place: a rename would replace the device node by a regular file.
  sys::fs::file_status status;
  if (!sys::fs::status(path, status) && sys::fs::exists(status) &&
      status.type() != sys::fs::file_type::regular_file) {
    std::error_code ec;
    raw_fd_ostream os(path, ec, sys::fs::OF_None);
    if (ec)
      return createStringError(inconvertibleErrorCode(),
                               path + ": cannot write: " + ec.message());
    if (Error err = write(os))
      return err;
    os.flush();
    if (os.has_error()) {
      std::string why = os.error().message();
      os.clear_error();
      return createStringError(inconvertibleErrorCode(),
                               path + ": write failed: " + why);
    }
    return Error::success();
  }
  // Beside the destination, so that the rename stays on one file system;
  // TempFile removes it on a fatal signal (SIGINT, SIGTERM, crashes).
  Expected<sys::fs::TempFile> temp = sys::fs::TempFile::create(
      path + ".tmp-%%%%%%%%",
      sys::fs::all_read | sys::fs::all_write);
  if (!temp)
    return createStringError(inconvertibleErrorCode(),
                             path + ": cannot write: " +
                                 toString(temp.takeError()));
  auto failWith = [&](Error err) -> Error {
    consumeError(temp->discard());
    return err;
  };
  {
    raw_fd_ostream os(temp->FD, /*shouldClose=*/false);
    if (Error err = write(os))
      return failWith(std::move(err));
    os.flush();
    if (os.has_error()) {
      std::string why = os.error().message();
      os.clear_error();
      return failWith(createStringError(inconvertibleErrorCode(),
                                        path + ": write failed: " + why));
    }
  }
  if (Error err = temp->keep(path))
    return createStringError(inconvertibleErrorCode(),
                             path + ": cannot put the output in place: " +
                                 toString(std::move(err)));
  return Error::success();
}
