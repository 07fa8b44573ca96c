//===- moe-run.cpp - Runs compiled moec artifacts -------------------------===//
//
// The runner links only the runtime (no MLIR, no LLVM), like any program that
// embeds moec artifacts would.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/moert.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

static const char *kUsage = R"(moe-run: run an artifact compiled by moec

Usage: moe-run [options] ARTIFACT

Options:
  --help       show this text
  --version    print the runtime version

Status: this build of the runtime has no artifact loader yet; it arrives with
the CPU backend. moe-run checks that ARTIFACT is readable and then reports
that it cannot run it (exit code 2); it never pretends to have run it.
)";

int main(int argc, char **argv) {
  std::string artifact;
  for (int i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    if (!std::strcmp(arg, "--help") || !std::strcmp(arg, "-h")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!std::strcmp(arg, "--version")) {
      std::printf("moe-run (moert %s)\n", moert_version());
      return 0;
    }
    if (arg[0] == '-' && arg[1] != '\0') {
      std::fprintf(stderr,
                   "moe-run: error: unknown option '%s' (see --help)\n", arg);
      return 1;
    }
    if (!artifact.empty()) {
      std::fprintf(stderr, "moe-run: error: more than one artifact given "
                           "('%s' and '%s')\n",
                   artifact.c_str(), arg);
      return 1;
    }
    artifact = arg;
  }
  if (artifact.empty()) {
    std::fprintf(stderr, "moe-run: error: no artifact given (see --help)\n");
    return 1;
  }

  moert_status status = nullptr;
  if (FILE *f = std::fopen(artifact.c_str(), "rb"))
    std::fclose(f);
  else
    status = moert_status_make(MOERT_NOT_FOUND, "%s: cannot open: %s",
                               artifact.c_str(), std::strerror(errno));
  if (!status)
    status = moert_status_make(MOERT_UNIMPLEMENTED,
                               "%s: this runtime cannot load artifacts yet",
                               artifact.c_str());
  std::fprintf(stderr, "moe-run: error: %s (%s)\n",
               moert_status_message(status),
               moert_status_code_name(moert_status_get_code(status)));
  int code = moert_status_get_code(status) == MOERT_UNIMPLEMENTED ? 2 : 1;
  moert_status_free(status);
  return code;
}
