//===- ArtifactFuzzer.cpp - libFuzzer target for the artifact loader ------===//
//
// Loads arbitrary bytes as a moec artifact through the runtime's C API.
//
// A mutated manifest almost never keeps a valid checksum, which would stop
// every input at the first check. So, like fuzzers of formats with CRCs,
// this target re-signs its input first: it rewrites the hex value on the
// `check` line to the checksum of the bytes before that line. Everything
// after the checksum (entries, offsets, shards, weights) is then reached.
// The code section's fingerprint is not re-signed: a loader that dlopens
// mutated machine code would be fuzzing the dynamic linker, not moec.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/moert.h"
#include "moe/Support/Checksum.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string bytes(reinterpret_cast<const char *>(data), size);
  size_t manifestEnd = bytes.find("\nend\n");
  size_t check = bytes.rfind("\ncheck\t", manifestEnd);
  if (manifestEnd != std::string::npos && check != std::string::npos) {
    size_t value = check + 7, valueEnd = bytes.find('\n', value);
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%" PRIx64,
                  moe::checksum(bytes.data(), check + 1));
    bytes.replace(value, valueEnd - value, hex);
  }

  int fd = memfd_create("moe-artifact-fuzz", MFD_CLOEXEC);
  if (fd < 0 || write(fd, bytes.data(), bytes.size()) != ssize_t(bytes.size()))
    __builtin_trap();
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  moert_model model = nullptr;
  moert_status status = moert_model_load(path.c_str(), &model);
  if (status) {
    // Every refusal has a code and a message.
    if (moert_status_get_code(status) == MOERT_OK ||
        !*moert_status_message(status))
      __builtin_trap();
    moert_status_free(status);
  } else {
    if (moert_model_is_graph(model)) {
      // Run it once on zeros, dimensions fixed at run time set to 1.
      int64_t n = moert_graph_input_count(model);
      std::vector<moert_tensor> inputs(n);
      std::vector<std::vector<char>> buffers(n);
      bool ok = true;
      for (int64_t i = 0; i < n && ok; ++i) {
        const char *name = nullptr;
        moert_tensor &t = inputs[i];
        if (moert_status s = moert_graph_input_info(model, i, &name, &t)) {
          moert_status_free(s);
          ok = false;
          break;
        }
        int64_t elements = 1;
        for (int64_t d = 0; d < t.rank; ++d) {
          if (t.shape[d] < 0)
            t.shape[d] = 1;
          elements *= t.shape[d];
        }
        ok = elements <= (1 << 20);
        buffers[i].assign(ok ? elements * moert_dtype_size(t.dtype) + 1 : 0, 0);
        t.data = buffers[i].data();
      }
      std::vector<moert_tensor> outputs(moert_graph_output_count(model));
      if (ok) {
        if (moert_status s =
                moert_graph_run(model, inputs.data(), outputs.data()))
          moert_status_free(s);
        for (moert_tensor &t : outputs)
          moert_tensor_release(&t);
      }
    } else {
      moert_session session = nullptr;
      if (moert_status s = moert_session_create(model, &session))
        moert_status_free(s);
      moert_session_free(session);
    }
    moert_model_free(model);
  }
  close(fd);
  return 0;
}
