//===- graph.cpp - Running graph artifacts on named tensors ---------------===//
//
// A graph artifact (an ONNX model compiled by moec) exports
// `moe_main_packed(void **args)` over `_mlir_ciface_main`: args[0] points to
// the results (one memref descriptor per output, written by the callee),
// then one descriptor per input. Inputs are checked against the manifest
// before the call, so the code never sees a shape it was not compiled for;
// outputs are copied into dense buffers the caller owns.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/moert.h"
#include "model_impl.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace moert;

bool moert::parseDtype(const std::string &text, moert_dtype &out) {
  for (int d = MOERT_DTYPE_F32; d <= MOERT_DTYPE_BOOL; ++d)
    if (text == moert_dtype_name(static_cast<moert_dtype>(d))) {
      out = static_cast<moert_dtype>(d);
      return true;
    }
  return false;
}

namespace {

/// The sentinel MLIR's LLVM lowering stores as the allocated pointer of a
/// memref.get_global (constant and weight buffers): never to be freed.
const uintptr_t kGlobalSentinel = 0xdeadbeef;

std::string shapeText(const int64_t *dims, int64_t rank) {
  std::string text = "[";
  for (int64_t i = 0; i < rank; ++i)
    text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

moert_status valueInfo(moert_model model,
                       const std::vector<GraphValue> &values, int64_t i,
                       const char *role, const char **name,
                       moert_tensor *out) {
  if (!model->graph)
    return fail(MOERT_INVALID_ARGUMENT,
                model->path + ": not a graph artifact (a decoder: use "
                              "sessions)");
  if (i < 0 || i >= int64_t(values.size()))
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "%s index %lld is out of range (the graph has "
                             "%zu)",
                             role, (long long)i, values.size());
  const GraphValue &v = values[i];
  if (name)
    *name = v.name.c_str();
  if (out) {
    std::memset(out, 0, sizeof(*out));
    out->dtype = v.dtype;
    out->rank = int64_t(v.dims.size());
    for (size_t d = 0; d < v.dims.size(); ++d)
      out->shape[d] = v.dims[d];
  }
  return nullptr;
}

/// Checks `inputs` against the manifest; returns the first problem.
moert_status checkInputs(moert_model model, const moert_tensor *inputs) {
  std::map<std::string, std::pair<int64_t, std::string>> symbolic;
  for (size_t i = 0; i < model->inputs.size(); ++i) {
    const GraphValue &v = model->inputs[i];
    const moert_tensor &t = inputs[i];
    std::string what = "input '" + v.name + "'";
    if (t.dtype != v.dtype)
      return fail(MOERT_INVALID_ARGUMENT,
                  what + " has element type " + moert_dtype_name(t.dtype) +
                      ", the graph takes " + moert_dtype_name(v.dtype));
    if (t.rank != int64_t(v.dims.size()))
      return fail(MOERT_INVALID_ARGUMENT,
                  what + " has rank " + std::to_string(t.rank) +
                      ", the graph takes rank " +
                      std::to_string(v.dims.size()));
    int64_t elements = 1;
    for (int64_t d = 0; d < t.rank; ++d) {
      int64_t size = t.shape[d];
      if (size < 0 || size > (int64_t(1) << 40) ||
          __builtin_mul_overflow(elements, size, &elements) ||
          elements > (int64_t(1) << 40))
        return fail(MOERT_INVALID_ARGUMENT,
                    what + " has a negative or too large shape " +
                        shapeText(t.shape, t.rank));
      if (v.dims[d] >= 0 && size != v.dims[d])
        return fail(MOERT_INVALID_ARGUMENT,
                    what + ": dimension " + std::to_string(d) + " is " +
                        std::to_string(size) + ", the graph was compiled "
                        "for " + std::to_string(v.dims[d]));
      const std::string &dimName = v.dimNames[d];
      if (v.dims[d] >= 0 || dimName == "?")
        continue;
      auto [it, inserted] =
          symbolic.insert({dimName, {size, what + " dimension " +
                                               std::to_string(d)}});
      if (!inserted && it->second.first != size)
        return fail(MOERT_INVALID_ARGUMENT,
                    what + ": dimension " + std::to_string(d) + " ('" +
                        dimName + "') is " + std::to_string(size) + ", but " +
                        it->second.second + " gave it " +
                        std::to_string(it->second.first));
    }
    if (elements > 0 && !t.data)
      return fail(MOERT_INVALID_ARGUMENT, what + " has no data");
  }
  return nullptr;
}

/// Copies the strided memref `d` of `rank` into a new dense buffer.
void *copyDense(const int64_t *d, int64_t rank, int64_t elementSize) {
  const int64_t *sizes = d + 3, *strides = d + 3 + rank;
  int64_t elements = 1;
  for (int64_t i = 0; i < rank; ++i)
    elements *= sizes[i];
  char *out = static_cast<char *>(std::malloc(elements ? elements * elementSize
                                                       : 1));
  if (!out)
    return nullptr;
  const char *base =
      reinterpret_cast<const char *>(d[1]) + d[2] * elementSize;
  std::vector<int64_t> index(rank, 0);
  for (int64_t n = 0; n < elements; ++n) {
    int64_t offset = 0;
    for (int64_t i = 0; i < rank; ++i)
      offset += index[i] * strides[i];
    std::memcpy(out + n * elementSize, base + offset * elementSize,
                elementSize);
    for (int64_t i = rank - 1; i >= 0; --i) {
      if (++index[i] < sizes[i])
        break;
      index[i] = 0;
    }
  }
  return out;
}

} // namespace

extern "C" {

int64_t moert_dtype_size(moert_dtype dtype) {
  switch (dtype) {
  case MOERT_DTYPE_F32:
  case MOERT_DTYPE_I32:
    return 4;
  case MOERT_DTYPE_F16:
  case MOERT_DTYPE_BF16:
    return 2;
  case MOERT_DTYPE_F64:
  case MOERT_DTYPE_I64:
    return 8;
  case MOERT_DTYPE_BOOL:
    return 1;
  }
  return 0;
}

const char *moert_dtype_name(moert_dtype dtype) {
  switch (dtype) {
  case MOERT_DTYPE_F32:
    return "f32";
  case MOERT_DTYPE_F16:
    return "f16";
  case MOERT_DTYPE_BF16:
    return "bf16";
  case MOERT_DTYPE_F64:
    return "f64";
  case MOERT_DTYPE_I64:
    return "i64";
  case MOERT_DTYPE_I32:
    return "i32";
  case MOERT_DTYPE_BOOL:
    return "bool";
  }
  return "?";
}

int moert_model_is_graph(moert_model model) { return model->graph ? 1 : 0; }

int64_t moert_graph_input_count(moert_model model) {
  return int64_t(model->inputs.size());
}

int64_t moert_graph_output_count(moert_model model) {
  return int64_t(model->outputs.size());
}

moert_status moert_graph_input_info(moert_model model, int64_t i,
                                    const char **name, moert_tensor *out) {
  return valueInfo(model, model->inputs, i, "input", name, out);
}

moert_status moert_graph_output_info(moert_model model, int64_t i,
                                     const char **name, moert_tensor *out) {
  return valueInfo(model, model->outputs, i, "output", name, out);
}

const char *moert_graph_dim_name(moert_model model, int output, int64_t i,
                                 int64_t d) {
  const std::vector<GraphValue> &values =
      output ? model->outputs : model->inputs;
  if (i < 0 || i >= int64_t(values.size()) || d < 0 ||
      d >= int64_t(values[i].dims.size()))
    return nullptr;
  const std::string &name = values[i].dimNames[d];
  return name.empty() || name == "?" ? nullptr : name.c_str();
}

moert_status moert_graph_run(moert_model model, const moert_tensor *inputs,
                             moert_tensor *outputs) {
  if (!model->graph)
    return fail(MOERT_INVALID_ARGUMENT,
                model->path + ": not a graph artifact (a decoder: use "
                              "moert_prefill/moert_decode)");
  if (moert_status status = checkInputs(model, inputs))
    return status;

  // Results first (written by the callee), then the inputs.
  std::vector<int64_t> results;
  std::vector<size_t> resultAt;
  for (const GraphValue &v : model->outputs) {
    resultAt.push_back(results.size());
    results.resize(results.size() + 3 + 2 * v.dims.size(), 0);
  }
  // On a CUDA device, the code reads copies of the inputs in device
  // memory; on the host, the caller's buffers.
  std::vector<void *> staged;
  auto releaseStaged = [&] {
    for (void *p : staged)
      releaseBuffer(model, p);
  };
  std::vector<Descriptor> descriptors;
  for (size_t i = 0; i < model->inputs.size(); ++i) {
    void *data = inputs[i].data;
    if (model->device) {
      uint64_t bytes = moert_dtype_size(inputs[i].dtype);
      for (int64_t d = 0; d < inputs[i].rank; ++d)
        bytes *= uint64_t(inputs[i].shape[d]);
      data = allocateBuffer(model, bytes);
      if (!data) {
        releaseStaged();
        return fail(MOERT_OUT_OF_MEMORY,
                    "cannot allocate input '" + model->inputs[i].name +
                        "' on the device");
      }
      staged.push_back(data);
      std::memcpy(data, inputs[i].data, bytes);
    }
    descriptors.push_back(Descriptor::contiguous(
        data, std::vector<int64_t>(inputs[i].shape,
                                   inputs[i].shape + inputs[i].rank)));
  }
  std::vector<void *> pointers = {results.data()};
  for (Descriptor &d : descriptors)
    pointers.push_back(d.words.data());
  std::vector<void *> packed;
  for (void *&p : pointers)
    packed.push_back(&p);
  if (moert_status status = runCode(model, model->main, packed.data())) {
    releaseStaged();
    return status;
  }

  // Copy each output out, then free what the code allocated: never an
  // input (moec marks @main's arguments read-only, but an output may still
  // be one), a global, or one buffer twice.
  std::set<uintptr_t> keep = {0, kGlobalSentinel};
  for (size_t i = 0; i < model->inputs.size(); ++i)
    keep.insert(reinterpret_cast<uintptr_t>(descriptors[i].allocated()));
  moert_status status = nullptr;
  for (size_t o = 0; o < model->outputs.size(); ++o) {
    const GraphValue &v = model->outputs[o];
    const int64_t *d = results.data() + resultAt[o];
    moert_tensor &t = outputs[o];
    std::memset(&t, 0, sizeof(t));
    t.dtype = v.dtype;
    t.rank = int64_t(v.dims.size());
    for (int64_t i = 0; i < t.rank; ++i)
      t.shape[i] = d[3 + i];
    if (!status) {
      t.data = copyDense(d, t.rank, moert_dtype_size(v.dtype));
      if (!t.data)
        status = fail(MOERT_OUT_OF_MEMORY,
                      "cannot allocate output '" + v.name + "' " +
                          shapeText(t.shape, t.rank));
    }
  }
  for (size_t o = 0; o < model->outputs.size(); ++o) {
    auto allocated = static_cast<uintptr_t>(results[resultAt[o]]);
    if (keep.insert(allocated).second)
      releaseBuffer(model, reinterpret_cast<void *>(allocated));
  }
  releaseStaged();
  if (status)
    for (size_t o = 0; o < model->outputs.size(); ++o)
      moert_tensor_release(&outputs[o]);
  return status;
}

void moert_tensor_release(moert_tensor *tensor) {
  if (!tensor)
    return;
  std::free(tensor->data);
  tensor->data = nullptr;
}

} // extern "C"
