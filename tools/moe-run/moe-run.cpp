//===- moe-run.cpp - Runs compiled moec artifacts -------------------------===//
//
// The runner links only the runtime (no MLIR, no LLVM), like any program that
// embeds moec artifacts would.
//
//===----------------------------------------------------------------------===//

#include "Npy.h"

#include "moe/Runtime/moert.h"
#include "moe/Runtime/moert_kernels.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <sys/stat.h>

static const char *kUsage = R"(moe-run: run an artifact compiled by moec

Usage: moe-run DECODER_ARTIFACT --tokens IDS [options]
       moe-run GRAPH_ARTIFACT --input NAME=FILE.npy ... --output-dir DIR

A decoder artifact (compiled from a checkpoint folder) prefills the prompt
IDS (comma-separated token ids), then generates greedily and prints the
generated ids, space-separated, on one line.

A graph artifact (compiled from an ONNX model) runs once on the named input
tensors and writes each graph output to DIR/NAME.npy, the ONNX output name
with characters other than letters, digits, '.', '_' and '-' replaced by
'_'. It prints one line per output: name, element type, shape, file.

Decoder options:
  --tokens IDS           prompt token ids, e.g. 0,5,99
  --generate N           number of tokens to generate (default 16)
  --dump-logits FILE     write every computed logits row as a float32 .npy
                         array [prompt + N - 1, vocab]: the prompt's rows,
                         then one row per decode step
  --random-weights SEED  run without the checkpoint (not even opened): each
                         weight uniform in [-0.02, 0.02] in its element
                         type, the same for the same SEED. With an artifact
                         compiled from a header-only checkpoint, runs and
                         times any config at full size without its weights

Graph options:
  --input NAME=FILE.npy  the value of graph input NAME (repeat for each
                         input; element type and rank must match, see
                         --signature). bf16 is read as raw '<u2' words
  --output-dir DIR       where the outputs go (created if missing)
  --signature            print the graph's inputs and outputs and exit
  --repeat N             after the first run (whose outputs are written),
                         run N more times on the same inputs and print the
                         times (min, median, mean) to stderr: a benchmark
                         with the load and the first-run warm-up left out
  --cold                 with --repeat: before each timed run, read a
                         256 MiB buffer on every thread of the runtime's
                         pool so that no weight is left in any core's
                         caches (a memory-bound step then reads them all
                         from DRAM, as a model too big for the caches does)

Common options:
  --stats                print load and run times (for decoders, tokens
                         per second, and how often decode steps after the
                         first called the system allocator: the runtime
                         reuses freed buffers, so normally 0) to stderr
  --device=D             where to run: cpu, cuda, or auto (the default):
                         where the artifact's code runs. moec --target=cuda
                         artifacts run on CUDA device $MOERT_CUDA_DEVICE
                         (default 0), others on the CPU; cpu or cuda only
                         checks that the artifact matches. With
                         $MOERT_CUDA_PROFILE=1, each kernel's launches and
                         time are printed to stderr at exit
  --list-devices         list the CPU and the CUDA devices the driver sees
                         (or why there are none), then exit
  --help                 show this text
  --version              print the runtime version, and the instruction set
                         and thread count of its CPU kernels

CPU kernels: $MOERT_NUM_THREADS threads (default: one per CPU this process
may run on), and the best vector code the CPU has, at most $MOERT_ISA's:
avx512bf16 (AVX-512 with bf16 dot products, used for bf16 models'
prompts), avx512, avx2 or generic (portable). avx512bf16-emulated, a test
aid, runs the AVX-512 code in portable instructions on any CPU.

Examples:
  moec path/to/checkpoint --emit=artifact -o model.moec
  moe-run model.moec --tokens 0,5,99,180 --generate 8
  moec model.onnx --target=cpu -o graph.moec
  moe-run graph.moec --signature
  moe-run graph.moec --input input_ids=ids.npy --output-dir out/
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

/// "[T, 16]": sizes, with a dimension fixed at run time shown by its
/// symbolic name when `model` gives one for graph value (`output`, `i`).
std::string shapeText(const moert_tensor &t, moert_model model = nullptr,
                      int output = 0, int64_t i = 0) {
  std::string text = "[";
  for (int64_t d = 0; d < t.rank; ++d) {
    const char *name =
        model ? moert_graph_dim_name(model, output, i, d) : nullptr;
    text += (d ? ", " : "") + (t.shape[d] >= 0 ? std::to_string(t.shape[d])
                               : name          ? std::string(name)
                                               : std::string("?"));
  }
  return text + "]";
}

/// A file name for graph output `name`: letters, digits, '.', '_' and '-'
/// kept, anything else '_'; never hidden, never empty.
std::string fileNameFor(const std::string &name) {
  std::string file;
  for (char c : name)
    file += std::isalnum(static_cast<unsigned char>(c)) || c == '.' ||
                    c == '_' || c == '-'
                ? c
                : '_';
  if (file.empty() || file[0] == '.')
    file.insert(file.begin(), '_');
  return file;
}

/// Prints the graph's inputs and outputs, one per line.
void printSignature(moert_model model) {
  for (bool inputs : {true, false}) {
    int64_t n = inputs ? moert_graph_input_count(model)
                       : moert_graph_output_count(model);
    for (int64_t i = 0; i < n; ++i) {
      const char *name = nullptr;
      moert_tensor info;
      moert_status status = inputs
                                ? moert_graph_input_info(model, i, &name, &info)
                                : moert_graph_output_info(model, i, &name, &info);
      moert_status_free(status);
      std::printf("%s %s: %s %s\n", inputs ? "input" : "output", name,
                  moert_dtype_name(info.dtype),
                  shapeText(info, model, !inputs, i).c_str());
    }
  }
}

using Clock = std::chrono::steady_clock;

/// What --cold does before each timed run: the kernels' threads each read
/// a share of `buffer`, one load per cache line. Reads, because between two
/// uses of a layer's weights a model reads its other layers' weights: a
/// written buffer would leave dirty lines that the timed run pays to write
/// back. Through the pool, because one thread leaves the other cores'
/// private caches warm and the pool's threads asleep (about 0.15 ms to wake
/// on this project's VMs), where in a model the previous kernel of the step
/// has just run on them.
void evictCaches(const std::vector<char> &buffer) {
  constexpr int64_t kParts = 64;
  struct Shares {
    const char *data;
    size_t bytes;
    uint64_t sums[kParts];
  } shares{buffer.data(), buffer.size(), {}};
  moert_parallel_for(
      kParts,
      [](void *context, int64_t part) {
        auto *s = static_cast<Shares *>(context);
        size_t share = s->bytes / kParts;
        const char *p = s->data + part * share;
        uint64_t sum = 0;
        for (size_t i = 0; i + sizeof(uint64_t) <= share; i += 64) {
          uint64_t word;
          std::memcpy(&word, p + i, sizeof word);
          sum += word;
        }
        s->sums[part] = sum;
      },
      &shares);
  // Keeps the reads: the sums are observable.
  static volatile uint64_t sink;
  for (uint64_t sum : shares.sums)
    sink = sink + sum;
}

/// Runs a graph artifact: reads the named inputs, runs once, writes the
/// outputs. Returns the exit code.
int runGraph(moert_model model, const std::map<std::string, std::string> &given,
             const std::string &outputDir, bool stats, long repeat,
             bool cold) {
  int64_t numInputs = moert_graph_input_count(model);
  std::vector<moerun::NpyArray> arrays(numInputs);
  std::vector<moert_tensor> inputs(numInputs);
  std::set<std::string> known;
  for (int64_t i = 0; i < numInputs; ++i) {
    const char *name = nullptr;
    moert_tensor info;
    moert_status_free(moert_graph_input_info(model, i, &name, &info));
    known.insert(name);
    auto it = given.find(name);
    if (it == given.end()) {
      std::fprintf(stderr,
                   "moe-run: error: graph input '%s' (%s %s) is not given: "
                   "use --input %s=FILE.npy\n",
                   name, moert_dtype_name(info.dtype),
                   shapeText(info, model, 0, i).c_str(), name);
      return 1;
    }
    std::string error;
    if (!moerun::readNpy(it->second, info.dtype, arrays[i], error))
      return fail("%s", error.c_str());
    moert_tensor &t = inputs[i];
    t.dtype = arrays[i].dtype;
    t.rank = int64_t(arrays[i].shape.size());
    if (t.rank > MOERT_MAX_RANK)
      return fail("%s: rank above 8", it->second.c_str());
    for (int64_t d = 0; d < t.rank; ++d)
      t.shape[d] = arrays[i].shape[d];
    t.data = arrays[i].data.data();
  }
  for (const auto &[name, file] : given)
    if (!known.count(name)) {
      std::string names;
      for (const std::string &k : known)
        names += (names.empty() ? "'" : ", '") + k + "'";
      std::fprintf(stderr,
                   "moe-run: error: --input %s=%s: the graph has no input "
                   "'%s' (its inputs: %s)\n",
                   name.c_str(), file.c_str(), name.c_str(), names.c_str());
      return 1;
    }

  int64_t numOutputs = moert_graph_output_count(model);
  std::vector<moert_tensor> outputs(numOutputs);
  Clock::time_point t0 = Clock::now();
  if (moert_status status =
          moert_graph_run(model, inputs.data(), outputs.data()))
    return failStatus(status);
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  int rc = 0;
  if (mkdir(outputDir.c_str(), 0777) != 0 && errno != EEXIST)
    rc = fail("cannot create '%s'", outputDir.c_str());
  std::set<std::string> used;
  for (int64_t o = 0; o < numOutputs && rc == 0; ++o) {
    const char *name = nullptr;
    moert_status_free(moert_graph_output_info(model, o, &name, nullptr));
    // Two names that sanitise alike get the output's index appended.
    std::string file = fileNameFor(name);
    if (!used.insert(file).second) {
      file += "_" + std::to_string(o);
      used.insert(file);
    }
    std::string path = outputDir + "/" + file + ".npy";
    std::vector<int64_t> shape(outputs[o].shape,
                               outputs[o].shape + outputs[o].rank);
    std::string error;
    if (!moerun::writeNpy(path, outputs[o].dtype, shape, outputs[o].data,
                          error)) {
      rc = fail("%s", error.c_str());
      break;
    }
    std::printf("%s: %s %s -> %s\n", name, moert_dtype_name(outputs[o].dtype),
                shapeText(outputs[o]).c_str(), path.c_str());
  }
  for (moert_tensor &t : outputs)
    moert_tensor_release(&t);
  if (stats)
    std::fprintf(stderr, "load %.3f s; run %.6f s\n",
                 moert_model_load_seconds(model), seconds);
  if (rc != 0 || repeat <= 0)
    return rc;
  std::vector<double> times;
  std::vector<char> evict(cold ? size_t(256) << 20 : 0, 1);
  for (long r = 0; r < repeat; ++r) {
    if (cold)
      evictCaches(evict);
    Clock::time_point start = Clock::now();
    if (moert_status status =
            moert_graph_run(model, inputs.data(), outputs.data()))
      return failStatus(status);
    times.push_back(
        std::chrono::duration<double>(Clock::now() - start).count());
    for (moert_tensor &t : outputs)
      moert_tensor_release(&t);
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  double mean = 0;
  for (double t : times)
    mean += t / double(times.size());
  std::fprintf(stderr, "repeat: %ld runs; min %.6f s; median %.6f s; mean "
                       "%.6f s\n",
               repeat, sorted.front(), sorted[sorted.size() / 2], mean);
  return rc;
}

} // namespace

int main(int argc, char **argv) {
  std::string artifact, dumpPath;
  bool randomWeights = false;
  uint64_t randomSeed = 0;
  std::vector<int32_t> prompt;
  long generate = 16;
  bool stats = false;
  long repeat = 0;
  bool cold = false;
  std::string device = "auto";
  std::map<std::string, std::string> inputs;
  std::string outputDir;
  bool signature = false;
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
      std::printf("moe-run (moert %s; CPU kernels: %s, %d threads)\n",
                  moert_version(), moert_kernels_isa(),
                  moert_kernels_threads());
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
    } else if (!std::strcmp(arg, "--random-weights")) {
      const char *v = value();
      char *end = nullptr;
      errno = 0;
      unsigned long long seed = v ? std::strtoull(v, &end, 10) : 0;
      if (!v || !*v || *end || errno || *v == '-')
        return fail("--random-weights needs a seed (a non-negative integer), "
                    "got '%s'",
                    v ? v : "");
      randomSeed = seed;
      randomWeights = true;
    } else if (!std::strcmp(arg, "--input")) {
      const char *v = value();
      const char *eq = v ? std::strchr(v, '=') : nullptr;
      if (!eq || eq == v || !eq[1])
        return fail("--input needs NAME=FILE.npy, got '%s'", v ? v : "");
      if (!inputs.emplace(std::string(v, eq), eq + 1).second)
        return fail("--input '%s' is given twice", std::string(v, eq).c_str());
    } else if (!std::strcmp(arg, "--output-dir")) {
      const char *v = value();
      if (!v || !*v)
        return fail("--output-dir needs a folder%s", "");
      outputDir = v;
    } else if (!std::strcmp(arg, "--signature")) {
      signature = true;
    } else if (!std::strcmp(arg, "--repeat")) {
      const char *v = value();
      char *end = nullptr;
      errno = 0;
      repeat = v ? std::strtol(v, &end, 10) : -1;
      if (!v || *end || errno || repeat < 0 || repeat > 1000000)
        return fail("--repeat needs a count in [0, 1000000], got '%s'",
                    v ? v : "");
    } else if (!std::strcmp(arg, "--cold")) {
      cold = true;
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
  if (device == "cuda") {
    // Say first whether there is a GPU at all.
    int count = 0;
    if (moert_status status = moert_cuda_device_count(&count))
      return failStatus(status);
  }

  moert_model model = nullptr;
  if (moert_status status =
          randomWeights
              ? moert_model_load_random(artifact.c_str(), randomSeed, &model)
              : moert_model_load(artifact.c_str(), &model))
    return failStatus(status);
  // The code decides where it runs; an explicit --device must agree.
  const char *arch = moert_model_gpu_arch(model);
  if (device == "cuda" && !*arch) {
    moert_model_free(model);
    return fail("%s has no GPU code: compile it with moec --target=cuda, or "
                "run it with --device=cpu",
                artifact.c_str());
  }
  if (device == "cpu" && *arch) {
    std::string what = artifact + " holds CUDA code (" + arch + ")";
    moert_model_free(model);
    return fail("%s: --device=cpu needs an artifact compiled with moec "
                "--target=cpu",
                what.c_str());
  }
  if (moert_model_is_graph(model)) {
    int rc = 0;
    if (signature)
      printSignature(model);
    else if (!prompt.empty() || !dumpPath.empty())
      rc = fail("%s is a graph artifact: give --input NAME=FILE.npy and "
                "--output-dir DIR, not --tokens (see --signature)",
                artifact.c_str());
    else if (outputDir.empty())
      rc = fail("no --output-dir given for the graph's outputs%s", "");
    else
      rc = runGraph(model, inputs, outputDir, stats, repeat, cold);
    moert_model_free(model);
    return rc;
  }
  if (signature || !inputs.empty() || !outputDir.empty()) {
    moert_model_free(model);
    return fail("%s is a decoder artifact: it takes --tokens IDS, not "
                "--input, --output-dir or --signature",
                artifact.c_str());
  }
  if (prompt.empty()) {
    moert_model_free(model);
    return fail("no prompt given: use --tokens IDS (see --help)%s", "");
  }
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
  if (moert_status status = moert_session_create(model, &session)) {
    moert_model_free(model);
    return failStatus(status);
  }

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
  // System allocations of the compiled code's heap from the second decode
  // step on (the first one meets the decode-sized buffers for the first
  // time).
  uint64_t heapBefore = 0;
  for (long step = 1; step < generate; ++step) {
    if (step == 2)
      heapBefore = moert_heap_system_allocations();
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
  uint64_t heapAllocations =
      generate > 2 ? moert_heap_system_allocations() - heapBefore : 0;

  for (size_t i = 0; i < generated.size(); ++i)
    std::printf("%s%d", i ? " " : "", generated[i]);
  std::printf("\n");
  int rc = 0;
  std::string error;
  if (!dumpPath.empty() &&
      !moerun::writeNpy(dumpPath, MOERT_DTYPE_F32,
                        {static_cast<int64_t>(rows.size()) / vocab, vocab},
                        rows.data(), error))
    rc = fail("%s", error.c_str());
  if (stats) {
    double prefillS = std::chrono::duration<double>(t1 - t0).count();
    double decodeS = std::chrono::duration<double>(t2 - t1).count();
    std::fprintf(stderr,
                 "load %.3f s; prefill %lld tokens in %.3f s (%.1f tok/s); "
                 "decode %ld tokens in %.3f s (%.1f tok/s)\n",
                 moert_model_load_seconds(model), (long long)n, prefillS,
                 n / (prefillS > 0 ? prefillS : 1e-9), generate - 1, decodeS,
                 (generate - 1) / (decodeS > 0 ? decodeS : 1e-9));
    if (generate > 2)
      std::fprintf(stderr,
                   "heap: %llu system allocations in decode steps 2-%ld\n",
                   (unsigned long long)heapAllocations, generate - 1);
  }
  moert_session_free(session);
  moert_model_free(model);
  return rc;
}
