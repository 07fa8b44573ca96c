//===- model.cpp - Loading and running moec artifacts ---------------------===//
//
// Plain C++ and POSIX: no MLIR, no LLVM. An artifact is a text manifest
// followed by a shared object (see docs/architecture.md, "Artifact
// format"). Loading checks the manifest, maps every checkpoint shard
// read-only and checks its header fingerprint, loads the code from memory
// (memfd + dlopen) and points each weight symbol at the tensor's bytes.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/moert.h"
#include "moe/Support/Checksum.h"
#include "cuda.h"
#include "model_impl.h"
#include "kernels/thread_pool.h"

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace moert;

moert_status moert::fail(moert_status_code code, const std::string &message) {
  return moert_status_make(code, "%s", message.c_str());
}

extern "C" uint64_t moert_fingerprint(const void *data, uint64_t size) {
  // The function moec uses when writing the manifest.
  return moe::checksum(data, size);
}

namespace {

using Clock = std::chrono::steady_clock;

// Bounds on manifest numbers: large enough for any model, small enough that
// no product of them overflows.
constexpr int64_t kMaxExtent = int64_t(1) << 30;
constexpr int64_t kMaxRank = 8;

std::vector<std::string> splitTabs(const std::string &line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, '\t'))
    fields.push_back(field);
  return fields;
}

/// Bits per element of a weight element type name, 0 if unknown.
int weightTypeBits(const std::string &name) {
  if (name == "f32")
    return 32;
  if (name == "bf16" || name == "f16")
    return 16;
  if (name == "f64")
    return 64;
  if (name.size() >= 2 && name[0] == 'i' &&
      name.find_first_not_of("0123456789", 1) == std::string::npos &&
      name.size() <= 3) {
    int bits = std::atoi(name.c_str() + 1);
    return bits >= 1 && bits <= 64 ? bits : 0;
  }
  return 0;
}

bool parseInt(const std::string &text, int64_t &out) {
  if (text.empty())
    return false;
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno || *end)
    return false;
  out = v;
  return true;
}

} // namespace

moert_status moert::runCode(moert_model model, PackedFn fn, void **args) {
  if (!model->device)
    return callTrapped(fn, args, model->path);
  cuda::DeviceScope scope(model->device.get());
  moert_status trapped = callTrapped(fn, args, model->path);
  // A device error (a failed launch, the pool out of memory) explains
  // more than the host-side unwinding it caused.
  if (moert_status error = scope.takeError()) {
    moert_status_free(trapped);
    return error;
  }
  return trapped;
}

void *moert::allocateBuffer(moert_model model, uint64_t bytes) {
  if (!model->device)
    return heapAllocate(bytes);
  cuda::CUdeviceptr ptr = 0;
  if (moert_status status = model->device->allocate(bytes, &ptr)) {
    moert_status_free(status);
    return nullptr;
  }
  return reinterpret_cast<void *>(ptr);
}

void moert::releaseBuffer(moert_model model, void *buffer) {
  if (!model->device)
    moert_free(buffer);
  else if (buffer)
    model->device->release(reinterpret_cast<cuda::CUdeviceptr>(buffer));
}

moert_model_s::~moert_model_s() {
  releaseHostMemory(reservedBytes);
  if (library) {
    // A CUDA artifact unloads its module in a destructor, on its device.
    moert::cuda::DeviceScope scope(device.get());
    dlclose(library);
  }
  if (memfd >= 0)
    close(memfd);
  for (Shard &s : shards)
    if (s.base && s.base != artifactBase)
      munmap(s.base, s.size);
  if (artifactBase)
    munmap(artifactBase, artifactSize);
  for (void *p : gathered)
    std::free(p);
}

struct moert_session_s {
  moert_model model = nullptr;
  std::vector<Descriptor> caches;
  int64_t position = 0;
  /// Host bytes reserved for the caches (reserveHostMemory).
  uint64_t reservedBytes = 0;
  ~moert_session_s() {
    for (Descriptor &d : caches)
      releaseBuffer(model, d.allocated());
    releaseHostMemory(reservedBytes);
  }
};

namespace {


moert_status parseManifest(moert_model model, const std::string &bytes,
                           int64_t &codeOffset, int64_t &codeSize,
                           uint64_t &codeFingerprint) {
  const std::string &path = model->path;
  std::istringstream in(bytes);
  std::string line;
  if (!std::getline(in, line) || line.rfind("moec-artifact\t", 0) != 0)
    return fail(MOERT_FORMAT_ERROR, path + ": not a moec artifact");
  const std::string format = std::to_string(MOERT_ARTIFACT_FORMAT);
  if (line != "moec-artifact\t" + format)
    return fail(MOERT_FORMAT_ERROR,
                path + ": artifact format " + line.substr(14) +
                    ", but this runtime reads format " + format +
                    "; recompile the model with this moec");
  bool ended = false, checked = false;
  int lineNo = 1;
  size_t lineStart = line.size() + 1;
  while (std::getline(in, line)) {
    ++lineNo;
    size_t start = lineStart;
    lineStart += line.size() + 1;
    if (line == "end") {
      ended = true;
      break;
    }
    if (checked)
      return fail(MOERT_FORMAT_ERROR, path + ": manifest line " +
                                          std::to_string(lineNo) +
                                          ": entries after 'check'");
    std::vector<std::string> f = splitTabs(line);
    auto bad = [&](const char *what) {
      return fail(MOERT_FORMAT_ERROR, path + ": manifest line " +
                                          std::to_string(lineNo) + ": " + what);
    };
    if (f.empty())
      return bad("empty line");
    int64_t a = 0, b = 0;
    if (f[0] == "kind" && f.size() == 2 && f[1] == "graph") {
      model->graph = true;
    } else if (f[0] == "source" && f.size() == 2) {
      // The compiled model file, for people.
    } else if ((f[0] == "input" || f[0] == "output") &&
               (f.size() == 3 || f.size() == 4)) {
      // NAME, element type, comma-separated dims (sizes or symbolic
      // names); no dims field for a scalar.
      GraphValue v;
      v.name = f[1];
      if (v.name.empty() || !parseDtype(f[2], v.dtype))
        return bad("bad graph input or output");
      std::istringstream dims(f.size() == 4 ? f[3] : "");
      std::string dim;
      while (std::getline(dims, dim, ',')) {
        int64_t size = -1;
        if (dim.empty() || (std::isdigit(static_cast<unsigned char>(dim[0])) &&
                            (!parseInt(dim, size) || size > kMaxExtent)))
          return bad("bad dimension");
        v.dims.push_back(size);
        v.dimNames.push_back(size < 0 ? dim : "");
      }
      if (v.dims.size() > size_t(MOERT_MAX_RANK))
        return bad("rank above MOERT_MAX_RANK");
      (f[0] == "input" ? model->inputs : model->outputs).push_back(v);
    } else if (f[0] == "target" && f.size() == 3 && f[1] == "cuda" &&
               !f[2].empty()) {
      // Compiled with moec --target=cuda: PTX for this architecture.
      model->gpuArch = f[2];
    } else if (f[0] == "model_type" && f.size() == 2) {
      model->modelType = f[1];
    } else if (f[0] == "vocab" && f.size() == 2 && parseInt(f[1], a) && a > 0 &&
               a <= kMaxExtent) {
      model->vocab = a;
    } else if (f[0] == "layers" && f.size() == 2 && parseInt(f[1], a) && a > 0 &&
               a <= kMaxExtent) {
      model->layers = a;
    } else if (f[0] == "max_seq_len" && f.size() == 2 && parseInt(f[1], a) &&
               a > 0 && a <= kMaxExtent) {
      model->maxSeqLen = a;
    } else if (f[0] == "code" && f.size() == 4 && parseInt(f[1], a) &&
               parseInt(f[2], b) && a > 0 && b > 0) {
      codeOffset = a;
      codeSize = b;
      codeFingerprint = std::strtoull(f[3].c_str(), nullptr, 16);
    } else if (f[0] == "check" && f.size() == 2) {
      // The checksum of every manifest byte before this line.
      if (moe::checksum(bytes.data(), start) !=
          std::strtoull(f[1].c_str(), nullptr, 16))
        return fail(MOERT_FORMAT_ERROR,
                    path + ": the manifest is corrupt or was edited "
                           "(checksum mismatch); recompile with moec");
      checked = true;
    } else if (f[0] == "data" && f.size() == 2) {
      model->dataChecksum = std::strtoull(f[1].c_str(), nullptr, 16);
      model->hasDataChecksum = true;
    } else if ((f[0] == "config" && f.size() == 2) ||
               (f[0] == "signature" && f.size() == 3)) {
      // Recorded for people and tools; the runtime needs nothing from them.
    } else if (f[0] == "cache" && f.size() == 3 && parseInt(f[1], a) && a > 0 &&
               a <= kMaxRank && parseInt(f[2], b) && b >= 0) {
      // RANK, bytes at capacity.
      model->cacheRanks.push_back(a);
      if (__builtin_add_overflow(model->kvCacheBytes, b, &model->kvCacheBytes))
        model->kvCacheBytes = INT64_MAX;
    } else if (f[0] == "shard" && f.size() == 4 && parseInt(f[3], a) && a >= 8) {
      Shard s;
      s.path = f[1];
      s.headerFingerprint = std::strtoull(f[2].c_str(), nullptr, 16);
      s.size = a;
      model->shards.push_back(s);
    } else if (f[0] == "weight" && f.size() >= 5 &&
               ((f.size() - 2) % 3 == 0 || (f.size() - 3) % 3 == 0)) {
      // SYMBOL [DTYPE] {SHARD OFFSET BYTES}+
      Weight w;
      w.symbol = f[1];
      size_t first = 2;
      if ((f.size() - 3) % 3 == 0) {
        w.dtype = f[2];
        first = 3;
        if (weightTypeBits(w.dtype) == 0)
          return bad("unknown weight element type");
      }
      for (size_t i = first; i + 2 < f.size(); i += 3) {
        WeightPart part;
        if (!parseInt(f[i], part.shard) || !parseInt(f[i + 1], part.offset) ||
            !parseInt(f[i + 2], part.bytes) || part.shard < 0 ||
            part.shard >= int64_t(model->shards.size()) || part.offset < 0 ||
            part.bytes < 0 || part.bytes > model->shards[part.shard].size ||
            part.offset > model->shards[part.shard].size - part.bytes)
          return bad("weight entry out of range");
        w.parts.push_back(part);
      }
      model->weights.push_back(std::move(w));
    } else {
      return bad("unknown or malformed entry");
    }
  }
  if (!ended)
    return fail(MOERT_FORMAT_ERROR, path + ": truncated manifest (no 'end')");
  if (!checked)
    return fail(MOERT_FORMAT_ERROR,
                path + ": the manifest has no checksum ('check')");
  bool complete = model->graph
                      ? codeSize && !model->outputs.empty() && !model->vocab &&
                            model->cacheRanks.empty()
                      : model->vocab && model->layers && model->maxSeqLen &&
                            codeSize && !model->cacheRanks.empty() &&
                            model->inputs.empty() && model->outputs.empty();
  if (!complete)
    return fail(MOERT_FORMAT_ERROR,
                path + ": manifest lacks required entries (or mixes "
                       "decoder and graph entries)");
  return nullptr;
}

moert_status mapShards(moert_model model) {
  for (Shard &s : model->shards) {
    if (s.path == "@self") {
      // Weights embedded in the artifact (moec --embed-weights).
      s.base = model->artifactBase;
      if (s.size != model->artifactSize)
        return fail(MOERT_FORMAT_ERROR,
                    model->path + ": embedded weights do not match the file "
                                  "size (truncated artifact?)");
      continue;
    }
    int fd = open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return fail(MOERT_NOT_FOUND,
                  s.path + ": cannot open the checkpoint shard this artifact "
                           "was compiled against (" +
                      std::strerror(errno) +
                      "); was the checkpoint moved? recompile with moec");
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size != s.size) {
      close(fd);
      return fail(MOERT_FORMAT_ERROR,
                  s.path + ": the checkpoint shard changed since the artifact "
                           "was compiled (size differs); recompile with moec");
    }
    void *base = mmap(nullptr, s.size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED)
      return fail(MOERT_IO_ERROR, s.path + ": cannot map: " + std::strerror(errno));
    s.base = base;
    uint64_t headerSize = 0;
    std::memcpy(&headerSize, base, 8); // Little-endian hosts only (x86-64).
    if (headerSize > uint64_t(s.size) - 8 ||
        moert_fingerprint(base, 8 + headerSize) != s.headerFingerprint)
      return fail(MOERT_FORMAT_ERROR,
                  s.path + ": the checkpoint shard changed since the artifact "
                           "was compiled (header fingerprint differs); "
                           "recompile with moec");
  }
  return nullptr;
}

/// Fills `bytes` bytes of weight `w`, starting `offset` bytes into it, with
/// the values moert_model_load_random promises: uniform in [-0.02, 0.02] in
/// the weight's float type (random bits for integer types), each element a
/// function of the seed, the weight's symbol and its index only.
void fillRandom(const Weight &w, uint64_t seed, char *dst, uint64_t offset,
                uint64_t bytes) {
  uint64_t key = seed * 0x9E3779B97F4A7C15ull;
  for (char c : w.symbol)
    key = (key ^ uint8_t(c)) * 0x100000001B3ull;
  auto draw = [key](uint64_t index) {
    uint64_t z = key + (index + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  // A uniform float in [-0.02, 0.02) from the top 24 bits.
  auto uniform = [](uint64_t bits) {
    return (float(bits >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * 0.02f;
  };
  int size = weightTypeBits(w.dtype) / 8;
  enum class Float { F32, F64, BF16, F16, None };
  Float kind = w.dtype == "f32"    ? Float::F32
               : w.dtype == "f64"  ? Float::F64
               : w.dtype == "bf16" ? Float::BF16
               : w.dtype == "f16"  ? Float::F16
                                   : Float::None;
  if (kind != Float::None) {
    for (uint64_t at = offset - offset % size; at < offset + bytes; at += size) {
      float v = uniform(draw(at / size));
      unsigned char element[8];
      switch (kind) {
      case Float::F32:
        std::memcpy(element, &v, 4);
        break;
      case Float::F64: {
        double d = v;
        std::memcpy(element, &d, 8);
        break;
      }
      case Float::BF16: {
        uint32_t b;
        std::memcpy(&b, &v, 4);
        uint16_t h = uint16_t((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
        std::memcpy(element, &h, 2);
        break;
      }
      case Float::F16:
      case Float::None: {
        // |v| <= 0.02: a normal f16 or a subnormal, never inf or NaN.
        uint32_t b;
        std::memcpy(&b, &v, 4);
        uint16_t sign = uint16_t((b >> 16) & 0x8000);
        int exponent = int((b >> 23) & 0xFF) - 127 + 15;
        uint32_t mantissa = b & 0x7FFFFF;
        uint16_t h;
        if (exponent <= -10) {
          h = sign; // Below half the smallest subnormal.
        } else if (exponent <= 0) {
          h = sign | uint16_t((mantissa | 0x800000) >> (14 - exponent));
        } else {
          h = sign | uint16_t(exponent << 10) | uint16_t(mantissa >> 13);
        }
        std::memcpy(element, &h, 2);
        break;
      }
      }
      if (at >= offset && at + size <= offset + bytes) {
        std::memcpy(dst + (at - offset), element, size);
        continue;
      }
      // An element cut by the range's ends: only its bytes inside.
      for (int k = 0; k < size; ++k)
        if (at + k >= offset && at + k < offset + bytes)
          dst[at + k - offset] = char(element[k]);
    }
    return;
  }
  for (uint64_t at = offset; at < offset + bytes; ++at)
    dst[at - offset] = char(draw(at / 8) >> (8 * (at % 8)));
}

moert_status bindWeights(moert_model model) {
  Clock::time_point start = Clock::now();
  bool reported = false;
  if (model->randomWeights)
    for (const Weight &w : model->weights)
      if (w.dtype.empty())
        return fail(MOERT_FORMAT_ERROR,
                    model->path + ": weight " + w.symbol +
                        " has no recorded element type, which random "
                        "weights need; recompile with this moec");
  // Embedded tensors must hash to what moec recorded: the checksum of the
  // parts' checksums, in manifest order.
  bool embedded = false;
  for (const Shard &s : model->shards)
    embedded |= s.path == "@self";
  if (embedded != model->hasDataChecksum && !model->randomWeights)
    return fail(MOERT_FORMAT_ERROR,
                model->path + ": embedded weights without a 'data' checksum, "
                              "or one without embedded weights");
  if (embedded && !model->randomWeights) {
    moe::PartsChecksum sum;
    for (const Weight &w : model->weights)
      for (const WeightPart &p : w.parts)
        sum.add(static_cast<char *>(model->shards[p.shard].base) + p.offset,
                p.bytes);
    if (sum.value() != model->dataChecksum)
      return fail(MOERT_FORMAT_ERROR,
                  model->path + ": the embedded weights are corrupt "
                                "(checksum mismatch)");
  }
  // Expert stacks split across tensors are gathered into one buffer each.
  uint64_t gatheredBytes = 0;
  for (const Weight &w : model->weights)
    if ((w.parts.size() > 1 || model->randomWeights) && !model->device)
      for (const WeightPart &p : w.parts)
        gatheredBytes += p.bytes;
  if (model->device) {
    // The whole footprint must fit before minutes of uploads start.
    uint64_t bytes = model->kvCacheBytes;
    for (const Weight &w : model->weights)
      for (const WeightPart &p : w.parts)
        bytes += p.bytes;
    if (moert_status status = model->device->checkFits(
            bytes, model->path + ": the weights and KV cache"))
      return status;
  }
  if (moert_status status = reserveHostMemory(
          gatheredBytes,
          model->path + (model->randomWeights
                             ? ": the random weights"
                             : ": gathering weights stored as separate "
                               "tensors (per layer or per expert) into "
                               "stacks"),
          "free memory first"))
    return status;
  model->reservedBytes = gatheredBytes;
  for (size_t i = 0; i < model->weights.size(); ++i) {
    const Weight &w = model->weights[i];
    void *address;
    auto at = [&](const WeightPart &p) {
      return static_cast<char *>(model->shards[p.shard].base) + p.offset;
    };
    int64_t total = 0;
    for (const WeightPart &p : w.parts)
      total += p.bytes;
    // A weight is read in place from the mapped checkpoint unless it lives
    // on a device (a block of the model's pool), is drawn at random, or is
    // a stack of experts stored as separate tensors (a host buffer the
    // model owns).
    char *buffer = nullptr;
    if (model->device) {
      cuda::CUdeviceptr block = 0;
      if (moert_status status = model->device->allocate(total, &block))
        return status;
      buffer = reinterpret_cast<char *>(block);
    } else if (model->randomWeights || w.parts.size() > 1) {
      buffer = static_cast<char *>(std::malloc(total ? total : 1));
      if (!buffer)
        return fail(MOERT_OUT_OF_MEMORY, "cannot allocate " +
                                             std::to_string(total) +
                                             " bytes for " + w.symbol);
      model->gathered.push_back(buffer);
    }
    auto put = [&](int64_t offset, const void *src, int64_t n) {
      if (model->device)
        return model->device->uploadStaged(
            reinterpret_cast<cuda::CUdeviceptr>(buffer) + offset, src, n);
      std::memcpy(buffer + offset, src, n);
      return moert_status(nullptr);
    };
    if (model->randomWeights) {
      // Drawn in slices, each put in place (uploaded, for a device).
      std::vector<char> slice(std::min<int64_t>(total, int64_t(64) << 20));
      for (int64_t offset = 0; offset < total; offset += int64_t(slice.size())) {
        int64_t n = std::min<int64_t>(int64_t(slice.size()), total - offset);
        // 1 MiB pieces on all cores: an element's value depends on its
        // index only, so the split changes nothing (a full-size layer
        // draws tens of GB).
        constexpr int64_t piece = int64_t(1) << 20;
        moert::kernels::parallelFor((n + piece - 1) / piece, [&](int64_t i) {
          int64_t at = i * piece;
          fillRandom(w, model->randomSeed, slice.data() + at, offset + at,
                     std::min(piece, n - at));
        });
        if (moert_status status = put(offset, slice.data(), n))
          return status;
      }
    } else if (buffer) {
      int64_t offset = 0;
      for (const WeightPart &p : w.parts) {
        if (moert_status status = put(offset, at(p), p.bytes))
          return status;
        offset += p.bytes;
      }
    }
    address = buffer ? buffer : at(w.parts[0]);
    std::string pointerName = w.symbol + "__ptr";
    std::string bytesName = w.symbol + "__bytes";
    void **slot = reinterpret_cast<void **>(dlsym(model->library, pointerName.c_str()));
    const int64_t *expected =
        static_cast<const int64_t *>(dlsym(model->library, bytesName.c_str()));
    if (!slot || !expected)
      return fail(MOERT_FORMAT_ERROR, model->path + ": the code has no slot '" +
                                          pointerName + "'");
    if (total != *expected)
      return fail(MOERT_FORMAT_ERROR,
                  model->path + ": weight " + w.symbol + " has " +
                      std::to_string(total) + " bytes, the code reads " +
                      std::to_string(*expected));
    if (*slot)
      return fail(MOERT_FORMAT_ERROR,
                  model->path + ": weight " + w.symbol + " is listed twice");
    *slot = address;
    double elapsed =
        std::chrono::duration<double>(Clock::now() - start).count();
    if (elapsed > 1.0 && (!reported || i + 1 == model->weights.size() ||
                          i % 64 == 0)) {
      reported = true;
      std::fprintf(stderr, "\rmoert: %s weights %zu/%zu",
                   model->device ? "uploading" : "binding", i + 1,
                   model->weights.size());
      if (i + 1 == model->weights.size())
        std::fputc('\n', stderr);
    }
  }
  return nullptr;
}

/// For a CUDA artifact: opens the driver and the device
/// ($MOERT_CUDA_DEVICE, default 0) and checks that it runs the PTX's
/// architecture.
moert_status setUpDevice(moert_model model) {
  std::shared_ptr<cuda::Driver> driver;
  if (moert_status status = cuda::Driver::open(nullptr, &driver)) {
    // The driver layer's hint (--device=cpu) does not apply to an
    // artifact that holds only GPU code.
    std::string reason = moert_status_message(status);
    const std::string hint = "; run on the CPU with --device=cpu";
    if (reason.size() > hint.size() &&
        reason.compare(reason.size() - hint.size(), hint.size(), hint) == 0)
      reason.resize(reason.size() - hint.size());
    std::string message = model->path + ": compiled for CUDA (" +
                          model->gpuArch + "), but " + reason +
                          "; for the CPU, compile with moec --target=cpu";
    moert_status_code code = moert_status_get_code(status);
    moert_status_free(status);
    return fail(code, message);
  }
  int64_t ordinal = 0;
  if (const char *text = std::getenv("MOERT_CUDA_DEVICE"))
    if (!parseInt(text, ordinal) || ordinal < 0 || ordinal > 1024)
      return fail(MOERT_INVALID_ARGUMENT,
                  std::string("MOERT_CUDA_DEVICE=") + text +
                      " is not a device number");
  if (moert_status status = cuda::Context::create(
          driver, int(ordinal), &model->device, /*managed=*/true))
    return status;
  int major = 0, minor = 0;
  if (moert_status status = model->device->computeCapability(&major, &minor))
    return status;
  // sm_XY runs on compute capability X.Y and later; the architecture-
  // specific sm_90a only on 9.0.
  int arch = 0;
  bool specific = !model->gpuArch.empty() && model->gpuArch.back() == 'a';
  std::string digits = model->gpuArch.substr(
      3, model->gpuArch.size() - 3 - (specific ? 1 : 0));
  int64_t number = 0;
  if (model->gpuArch.rfind("sm_", 0) != 0 || !parseInt(digits, number) ||
      number < 10 || number > 999)
    return fail(MOERT_FORMAT_ERROR, model->path + ": unknown GPU target '" +
                                        model->gpuArch + "'");
  arch = int(number);
  int device = major * 10 + minor;
  if (specific ? device != arch : device < arch)
    return fail(MOERT_INVALID_ARGUMENT,
                model->path + ": compiled for " + model->gpuArch +
                    ", which CUDA device " + std::to_string(ordinal) +
                    " (compute capability " + std::to_string(major) + "." +
                    std::to_string(minor) +
                    ") cannot run; recompile with moec --gpu-arch");
  return nullptr;
}

moert_status loadCode(moert_model model, int64_t offset, int64_t size,
                      uint64_t fingerprint) {
  if (offset > model->artifactSize || size > model->artifactSize - offset)
    return fail(MOERT_FORMAT_ERROR,
                model->path + ": code section does not match the file size "
                              "(truncated artifact?)");
  const char *code = static_cast<const char *>(model->artifactBase) + offset;
  if (moert_fingerprint(code, size) != fingerprint)
    return fail(MOERT_FORMAT_ERROR,
                model->path + ": code section is corrupt (fingerprint "
                              "mismatch)");
  // Load the shared object from memory: no file left behind.
  model->memfd = memfd_create("moec-code", MFD_CLOEXEC);
  if (model->memfd < 0)
    return fail(MOERT_IO_ERROR, std::string("memfd_create: ") + std::strerror(errno));
  if (write(model->memfd, code, size) != size)
    return fail(MOERT_IO_ERROR, std::string("writing code: ") + std::strerror(errno));
  std::string fdPath = "/proc/self/fd/" + std::to_string(model->memfd);
  {
    // A CUDA artifact's constructor JIT-compiles its PTX on the device.
    cuda::DeviceScope scope(model->device.get());
    model->library = dlopen(fdPath.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!model->library)
      return fail(MOERT_FORMAT_ERROR,
                  model->path + ": cannot load the code: " + dlerror());
    if (model->device)
      if (moert_status status = scope.takeError()) {
        std::string message =
            model->path + ": loading the kernels: " +
            moert_status_message(status);
        moert_status_code code = moert_status_get_code(status);
        moert_status_free(status);
        return fail(code, message);
      }
  }
  auto entry = [&](const char *name) {
    return reinterpret_cast<PackedFn>(dlsym(model->library, name));
  };
  const int64_t *abi =
      static_cast<const int64_t *>(dlsym(model->library, "moe_abi"));
  // The manifest must describe the code it ships with (see moe_abi in
  // docs/architecture.md).
  std::vector<int64_t> expected;
  if (model->graph) {
    model->main = entry("moe_main_packed");
    expected = {2, int64_t(model->inputs.size()),
                int64_t(model->outputs.size()),
                int64_t(model->weights.size())};
    for (const auto *values : {&model->inputs, &model->outputs})
      for (const GraphValue &v : *values) {
        expected.push_back(int64_t(v.dims.size()));
        expected.push_back(int64_t(v.dtype));
        expected.insert(expected.end(), v.dims.begin(), v.dims.end());
      }
  } else {
    model->prefill = entry("moe_prefill_packed");
    model->decode = entry("moe_decode_packed");
    expected = {1, model->vocab, model->maxSeqLen,
                int64_t(model->weights.size()),
                int64_t(model->cacheRanks.size())};
    expected.insert(expected.end(), model->cacheRanks.begin(),
                    model->cacheRanks.end());
  }
  if (!abi || (model->graph ? !model->main
                            : !model->prefill || !model->decode))
    return fail(MOERT_FORMAT_ERROR,
                model->path + ": the code lacks its entry points (a "
                              "decoder's code under a graph manifest, or "
                              "the reverse?)");
  for (size_t i = 0; i < expected.size(); ++i)
    if (abi[i] != expected[i])
      return fail(MOERT_FORMAT_ERROR,
                  model->path + ": the manifest does not match its code "
                                "(kind, signature, vocab, cache or weight "
                                "counts differ)");
  return nullptr;
}

/// A session's caches are allocated at capacity by the compiled code,
/// which cannot report a failed allocation: check first. A new session
/// reserves them; a prefill only checks that the machine still has them.
moert_status checkKVCache(moert_model model, bool reserve) {
  std::string what = model->path + ": the KV cache for " +
                     std::to_string(model->maxSeqLen) + " tokens";
  const char *hint = "compile with a smaller moec --max-seq-len, or free memory";
  if (model->device)
    return model->device->checkFits(model->kvCacheBytes, what);
  // The budget (MOERT_HOST_MEMORY_LIMIT) already counts the session's
  // reservation; the machine may have less than when it was made.
  return reserve ? reserveHostMemory(model->kvCacheBytes, what, hint)
                 : checkHostMemory(model->kvCacheBytes, what, hint,
                                   /*budget=*/false);
}

} // namespace

extern "C" {

static moert_status loadModel(const char *path, bool randomWeights,
                              uint64_t seed, moert_model *out);

moert_status moert_model_load(const char *path, moert_model *out) {
  return loadModel(path, false, 0, out);
}

moert_status moert_model_load_random(const char *path, uint64_t seed,
                                     moert_model *out) {
  return loadModel(path, true, seed, out);
}

static moert_status loadModel(const char *path, bool randomWeights,
                              uint64_t seed, moert_model *out) {
  *out = nullptr;
  Clock::time_point start = Clock::now();
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return moert_status_make(MOERT_NOT_FOUND, "%s: cannot open: %s", path,
                             std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size == 0) {
    close(fd);
    return moert_status_make(MOERT_FORMAT_ERROR,
                             "%s: not a moec artifact (empty file)", path);
  }
  // Compiled code calls memrefCopy, which this library defines; make it
  // visible even when the host loaded us with RTLD_LOCAL.
  Dl_info self;
  if (dladdr(reinterpret_cast<void *>(&moert_model_load), &self) &&
      self.dli_fname)
    dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
  auto *model = new moert_model_s();
  model->path = path;
  model->artifactSize = st.st_size;
  model->artifactBase =
      mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (model->artifactBase == MAP_FAILED) {
    model->artifactBase = nullptr;
    delete model;
    return moert_status_make(MOERT_IO_ERROR, "%s: cannot map: %s", path,
                             std::strerror(errno));
  }
  // The manifest ends at the first "\nend\n".
  const char *text = static_cast<const char *>(model->artifactBase);
  std::string_view view(text, st.st_size);
  size_t endAt = view.find("\nend\n");
  std::string bytes(text, endAt == std::string_view::npos
                              ? std::min<size_t>(st.st_size, 1 << 20)
                              : endAt + 5);
  int64_t codeOffset = 0, codeSize = 0;
  uint64_t codeFingerprint = 0;
  moert_status status =
      parseManifest(model, bytes, codeOffset, codeSize, codeFingerprint);
  if (!status && codeOffset < int64_t(bytes.size()))
    status = fail(MOERT_FORMAT_ERROR,
                  model->path + ": code section overlaps the manifest");
  model->randomWeights = randomWeights;
  model->randomSeed = seed;
  if (!status && randomWeights && model->graph)
    status = fail(MOERT_INVALID_ARGUMENT,
                  model->path + ": a graph artifact embeds its initializers "
                                "(shapes among them); random weights are for "
                                "decoders");
  if (!status && !model->gpuArch.empty())
    status = setUpDevice(model);
  if (!status)
    status = loadCode(model, codeOffset, codeSize, codeFingerprint);
  // Random weights never touch the checkpoint, which may not be here.
  if (!status && !randomWeights)
    status = mapShards(model);
  if (!status)
    status = bindWeights(model);
  if (status) {
    delete model;
    return status;
  }
  model->loadSeconds = std::chrono::duration<double>(Clock::now() - start).count();
  *out = model;
  return nullptr;
}

void moert_model_free(moert_model model) { delete model; }

int64_t moert_model_vocab_size(moert_model model) { return model->vocab; }
const char *moert_model_gpu_arch(moert_model model) {
  return model->gpuArch.c_str();
}
int64_t moert_model_max_seq_len(moert_model model) { return model->maxSeqLen; }
double moert_model_load_seconds(moert_model model) { return model->loadSeconds; }

int64_t moert_model_kv_cache_bytes(moert_model model) {
  return model->kvCacheBytes;
}

moert_status moert_session_create(moert_model model, moert_session *out) {
  *out = nullptr;
  if (model->graph)
    return fail(MOERT_INVALID_ARGUMENT,
                model->path + ": a graph artifact has no sessions; run it "
                              "with moert_graph_run");
  if (moert_status status = checkKVCache(model, /*reserve=*/true))
    return status;
  auto *session = new moert_session_s();
  session->model = model;
  // A device's KV cache is checked against the device, not reserved on
  // the host.
  session->reservedBytes = model->device ? 0 : model->kvCacheBytes;
  *out = session;
  return nullptr;
}

void moert_session_free(moert_session session) { delete session; }

/// Calls an entry point whose results are the logits [1, n, V] and the
/// caches; `inputs` are the argument descriptors after the result struct.
static moert_status callEntry(moert_session session, PackedFn fn,
                              std::vector<Descriptor> &inputs, int64_t n,
                              float *logits) {
  moert_model model = session->model;
  std::vector<int64_t> results;
  Descriptor logitsDesc(3);
  results.insert(results.end(), logitsDesc.words.begin(), logitsDesc.words.end());
  for (int64_t rank : model->cacheRanks) {
    Descriptor d(rank);
    results.insert(results.end(), d.words.begin(), d.words.end());
  }
  std::vector<void *> pointers = {results.data()};
  for (Descriptor &d : inputs)
    pointers.push_back(d.words.data());
  std::vector<void *> packed;
  for (void *&p : pointers)
    packed.push_back(&p);
  if (moert_status status = runCode(model, fn, packed.data()))
    return status;

  // Unpack: copy the logits out, keep the caches, free what is replaced.
  size_t at = 0;
  auto take = [&](int64_t rank) {
    Descriptor d(rank);
    std::copy(results.begin() + at, results.begin() + at + d.words.size(),
              d.words.begin());
    at += d.words.size();
    return d;
  };
  Descriptor out = take(3);
  int64_t vocab = model->vocab;
  std::vector<Descriptor> caches;
  for (int64_t rank : model->cacheRanks)
    caches.push_back(take(rank));
  // Free the replaced caches: every old buffer the new ones do not reuse.
  for (Descriptor &old : session->caches) {
    bool reused = false;
    for (Descriptor &now : caches)
      reused |= now.allocated() == old.allocated();
    if (!reused)
      releaseBuffer(model, old.allocated());
  }
  session->caches = std::move(caches);
  bool contiguous = out.size(0) == 1 && out.size(1) == n && out.size(2) == vocab &&
                    out.words[6] == n * vocab && out.words[7] == vocab &&
                    out.words[8] == 1;
  if (contiguous && logits) {
    const float *src = static_cast<const float *>(out.aligned()) + out.words[2];
    std::memcpy(logits, src, sizeof(float) * n * vocab);
  }
  releaseBuffer(model, out.allocated());
  if (!contiguous)
    return moert_status_make(MOERT_INTERNAL,
                             "the code returned logits of an unexpected shape");
  return nullptr;
}

moert_status moert_prefill(moert_session session, const int32_t *tokens,
                           int64_t n, float *logits) {
  if (!session || !tokens)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "moert_prefill: no session or no tokens");
  moert_model model = session->model;
  if (n <= 0 || n > model->maxSeqLen)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "prefill of %lld tokens: the artifact holds 1 to "
                             "%lld (moec --max-seq-len)",
                             (long long)n, (long long)model->maxSeqLen);
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= model->vocab)
      return moert_status_make(MOERT_INVALID_ARGUMENT,
                               "token %d at position %lld is outside the "
                               "vocabulary [0, %lld)",
                               tokens[i], (long long)i, (long long)model->vocab);
  for (Descriptor &d : session->caches)
    releaseBuffer(model, d.allocated());
  session->caches.clear();
  // Prefill allocates the caches at capacity; memory may have shrunk
  // since the session was created.
  if (moert_status status = checkKVCache(model, /*reserve=*/false))
    return status;
  // The code reads its inputs from where it can (the device, for CUDA).
  auto *copy = static_cast<int32_t *>(allocateBuffer(model, n * sizeof(int32_t)));
  if (!copy)
    return fail(MOERT_OUT_OF_MEMORY, "cannot allocate the prompt's tokens");
  std::memcpy(copy, tokens, n * sizeof(int32_t));
  std::vector<Descriptor> inputs = {Descriptor::contiguous(copy, {1, n})};
  moert_status status = callEntry(session, model->prefill, inputs, n, logits);
  releaseBuffer(model, copy);
  session->position = n;
  return status;
}

moert_status moert_decode(moert_session session, int32_t token, float *logits) {
  if (!session)
    return moert_status_make(MOERT_INVALID_ARGUMENT, "moert_decode: no session");
  moert_model model = session->model;
  if (session->caches.empty())
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "decode before prefill: nothing is cached");
  if (session->position >= model->maxSeqLen)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "the KV cache is full (%lld tokens; compile with "
                             "a larger moec --max-seq-len)",
                             (long long)model->maxSeqLen);
  if (token < 0 || token >= model->vocab)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "token %d is outside the vocabulary [0, %lld)",
                             token, (long long)model->vocab);
  // The token and its position, where the code can read them.
  auto *scalars = static_cast<int32_t *>(allocateBuffer(model, 2 * sizeof(int32_t)));
  if (!scalars)
    return fail(MOERT_OUT_OF_MEMORY, "cannot allocate the decode inputs");
  scalars[0] = token;
  scalars[1] = static_cast<int32_t>(session->position);
  std::vector<Descriptor> inputs = {Descriptor::contiguous(scalars, {1, 1}),
                                    Descriptor::contiguous(scalars + 1, {1})};
  for (Descriptor &d : session->caches)
    inputs.push_back(d);
  moert_status status = callEntry(session, model->decode, inputs, 1, logits);
  releaseBuffer(model, scalars);
  ++session->position;
  return status;
}

} // extern "C"
