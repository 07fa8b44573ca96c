//===- moe-run.cpp - Runs compiled moec artifacts -------------------------===//
//
// The runner links only the runtime (no MLIR, no LLVM), like any program that
// embeds moec artifacts would.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/moert.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static const char *kUsage = R"(moe-run: run an artifact compiled by moec

Usage: moe-run ARTIFACT --tokens IDS [options]

Prefills the prompt IDS (comma-separated token ids), then generates greedily
and prints the generated ids, space-separated, on one line.

Options:
  --tokens IDS           prompt token ids, e.g. 0,5,99
  --generate N           number of tokens to generate (default 16)
  --dump-logits FILE     write every computed logits row as a float32 .npy
                         array [prompt + N - 1, vocab]: the prompt's rows,
                         then one row per decode step
  --stats                print load time and prefill/decode tokens per second
                         to stderr
  --device=D             where to run: cpu, cuda, or auto (the default: cuda
                         when the artifact has GPU code and a device is
                         present, else cpu). Artifacts carry CPU code only
                         so far, so auto means cpu
  --list-devices         list the CPU and the CUDA devices the driver sees
                         (or why there are none), then exit
  --help                 show this text
  --version              print the runtime version

Example:
  moec path/to/checkpoint --emit=artifact -o model.moec
  moe-run model.moec --tokens 0,5,99,180 --generate 8
)";

namespace {

int fail(const char *format, const char *detail) {
  std::fprintf(stderr, "moe-run: error: ");
  std::fprintf(stderr, format, detail);
  std::fprintf(stderr, "\n");
  return 1;
}

/// Prints the devices: the CPU, then each CUDA device or why there is none.
int listDevices() {
  std::printf("cpu: the host\n");
  int count = 0;
  if (moert_status status = moert_cuda_device_count(&count)) {
    std::printf("cuda: none (%s)\n", moert_status_message(status));
    moert_status_free(status);
    return 0;
  }
  for (int i = 0; i < count; ++i) {
    moert_cuda_device_info info;
    if (moert_status status = moert_cuda_device_info_get(i, &info)) {
      std::printf("cuda:%d: unusable (%s)\n", i, moert_status_message(status));
      moert_status_free(status);
      continue;
    }
    std::printf("cuda:%d: %s, sm_%d%d, %.1f GiB (%.1f GiB free), driver "
                "%d.%d\n",
                i, info.name, info.compute_major, info.compute_minor,
                info.total_memory / 1073741824.0,
                info.free_memory / 1073741824.0, info.driver_version / 1000,
                info.driver_version % 1000 / 10);
  }
  return 0;
}

int failStatus(moert_status status) {
  std::fprintf(stderr, "moe-run: error: %s (%s)\n",
               moert_status_message(status),
               moert_status_code_name(moert_status_get_code(status)));
  moert_status_free(status);
  return 1;
}

bool parseTokens(const char *text, std::vector<int32_t> &out) {
  const char *p = text;
  while (*p) {
    char *end = nullptr;
    errno = 0;
    long v = std::strtol(p, &end, 10);
    if (end == p || errno || v < 0 || v > INT32_MAX)
      return false;
    out.push_back(static_cast<int32_t>(v));
    p = end;
    if (*p == ',')
      ++p;
    else if (*p)
      return false;
  }
  return !out.empty();
}

/// Writes a float32 .npy (format 1.0) of shape [rows, cols].
bool writeNpy(const std::string &path, const std::vector<float> &data,
              int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) +
                       "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string tmp = path + ".tmp";
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f)
    return false;
  unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                             static_cast<unsigned char>(header.size() & 0xff),
                             static_cast<unsigned char>(header.size() >> 8)};
  bool ok = std::fwrite(magic, 1, 10, f) == 10 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(data.data(), sizeof(float), data.size(), f) ==
                data.size();
  ok = (std::fclose(f) == 0) && ok;
  // Renamed into place only when complete: no half-written file.
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

} // namespace

int main(int argc, char **argv) {
  std::string artifact, dumpPath;
  std::vector<int32_t> prompt;
  long generate = 16;
  bool stats = false;
  std::string device = "auto";
  for (int i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    auto value = [&]() -> const char * {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    if (!std::strcmp(arg, "--help") || !std::strcmp(arg, "-h")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!std::strcmp(arg, "--version")) {
      std::printf("moe-run (moert %s)\n", moert_version());
      return 0;
    }
    if (!std::strcmp(arg, "--tokens")) {
      const char *v = value();
      if (!v || !parseTokens(v, prompt))
        return fail("--tokens needs comma-separated non-negative ids, got '%s'",
                    v ? v : "");
    } else if (!std::strcmp(arg, "--generate")) {
      const char *v = value();
      char *end = nullptr;
      errno = 0;
      generate = v ? std::strtol(v, &end, 10) : -1;
      if (!v || *end || errno || generate < 0)
        return fail("--generate needs a non-negative count, got '%s'",
                    v ? v : "");
    } else if (!std::strcmp(arg, "--dump-logits")) {
      const char *v = value();
      if (!v)
        return fail("--dump-logits needs a file name%s", "");
      dumpPath = v;
    } else if (!std::strcmp(arg, "--stats")) {
      stats = true;
    } else if (!std::strncmp(arg, "--device=", 9) ||
               !std::strcmp(arg, "--device")) {
      const char *v = arg[8] == '=' ? arg + 9 : value();
      if (!v || (std::strcmp(v, "cpu") && std::strcmp(v, "cuda") &&
                 std::strcmp(v, "auto")))
        return fail("--device needs cpu, cuda or auto, got '%s'", v ? v : "");
      device = v;
    } else if (!std::strcmp(arg, "--list-devices")) {
      return listDevices();
    } else if (arg[0] == '-' && arg[1] != '\0') {
      return fail("unknown option '%s' (see --help)", arg);
    } else if (!artifact.empty()) {
      return fail("more than one artifact given ('%s')", arg);
    } else {
      artifact = arg;
    }
  }
  if (artifact.empty())
    return fail("no artifact given (see --help)%s", "");
  if (prompt.empty())
    return fail("no prompt given: use --tokens IDS (see --help)%s", "");
  if (device == "cuda") {
    // Say first whether there is a GPU at all, then that the artifact
    // cannot use it.
    int count = 0;
    if (moert_status status = moert_cuda_device_count(&count))
      return failStatus(status);
    return fail("%s has no GPU code (moec --target=cuda is not implemented "
                "yet); run it with --device=cpu",
                artifact.c_str());
  }

  moert_model model = nullptr;
  if (moert_status status = moert_model_load(artifact.c_str(), &model))
    return failStatus(status);
  int64_t vocab = moert_model_vocab_size(model);
  int64_t n = static_cast<int64_t>(prompt.size());
  if (generate > moert_model_max_seq_len(model) - n + 1) {
    std::fprintf(stderr,
                 "moe-run: error: %lld prompt tokens + %ld generated exceed "
                 "the artifact's KV cache of %lld tokens (moec --max-seq-len)\n",
                 (long long)n, generate,
                 (long long)moert_model_max_seq_len(model));
    moert_model_free(model);
    return 1;
  }
  moert_session session = nullptr;
  moert_session_create(model, &session);

  using Clock = std::chrono::steady_clock;
  std::vector<float> rows(n * vocab);
  Clock::time_point t0 = Clock::now();
  if (moert_status status =
          moert_prefill(session, prompt.data(), n, rows.data())) {
    moert_session_free(session);
    moert_model_free(model);
    return failStatus(status);
  }
  Clock::time_point t1 = Clock::now();
  auto argmax = [&](const float *row) {
    int32_t best = 0;
    for (int64_t v = 1; v < vocab; ++v)
      if (row[v] > row[best])
        best = static_cast<int32_t>(v);
    return best;
  };
  std::vector<int32_t> generated;
  if (generate > 0)
    generated.push_back(argmax(rows.data() + (n - 1) * vocab));
  std::vector<float> row(vocab);
  for (long step = 1; step < generate; ++step) {
    if (moert_status status =
            moert_decode(session, generated.back(), row.data())) {
      moert_session_free(session);
      moert_model_free(model);
      return failStatus(status);
    }
    rows.insert(rows.end(), row.begin(), row.end());
    generated.push_back(argmax(row.data()));
  }
  Clock::time_point t2 = Clock::now();

  for (size_t i = 0; i < generated.size(); ++i)
    std::printf("%s%d", i ? " " : "", generated[i]);
  std::printf("\n");
  int rc = 0;
  if (!dumpPath.empty() &&
      !writeNpy(dumpPath, rows, static_cast<int64_t>(rows.size()) / vocab,
                vocab))
    rc = fail("cannot write '%s'", dumpPath.c_str());
  if (stats) {
    double prefillS = std::chrono::duration<double>(t1 - t0).count();
    double decodeS = std::chrono::duration<double>(t2 - t1).count();
    std::fprintf(stderr,
                 "load %.3f s; prefill %lld tokens in %.3f s (%.1f tok/s); "
                 "decode %ld tokens in %.3f s (%.1f tok/s)\n",
                 moert_model_load_seconds(model), (long long)n, prefillS,
                 n / (prefillS > 0 ? prefillS : 1e-9), generate - 1, decodeS,
                 (generate - 1) / (decodeS > 0 ? decodeS : 1e-9));
  }
  moert_session_free(session);
  moert_model_free(model);
  return rc;
}
