//===- SafeTensors.cpp - Validating safetensors reader --------------------===//

#include "moe/Import/SafeTensors.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"

#include <algorithm>

using namespace llvm;

namespace moe {

static Error fail(StringRef path, const Twine &message) {
  return createStringError(inconvertibleErrorCode(), path + ": " + message);
}

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

namespace {
struct DTypeEntry {
  DType dtype;
  const char *name;
  unsigned bits;
};
} // namespace

static constexpr DTypeEntry kDTypes[] = {
    {DType::BOOL, "BOOL", 8},         {DType::F4, "F4", 4},
    {DType::F6_E2M3, "F6_E2M3", 6},   {DType::F6_E3M2, "F6_E3M2", 6},
    {DType::U8, "U8", 8},             {DType::I8, "I8", 8},
    {DType::F8_E5M2, "F8_E5M2", 8},   {DType::F8_E4M3, "F8_E4M3", 8},
    {DType::F8_E8M0, "F8_E8M0", 8},   {DType::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8},
    {DType::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8}, {DType::I16, "I16", 16},
    {DType::U16, "U16", 16},          {DType::F16, "F16", 16},
    {DType::BF16, "BF16", 16},        {DType::I32, "I32", 32},
    {DType::U32, "U32", 32},          {DType::F32, "F32", 32},
    {DType::C64, "C64", 64},          {DType::F64, "F64", 64},
    {DType::I64, "I64", 64},          {DType::U64, "U64", 64},
};

std::optional<DType> parseDType(StringRef name) {
  for (const DTypeEntry &entry : kDTypes)
    if (name == entry.name)
      return entry.dtype;
  return std::nullopt;
}

StringRef dtypeName(DType dtype) {
  return kDTypes[static_cast<unsigned>(dtype)].name;
}

unsigned dtypeBits(DType dtype) {
  return kDTypes[static_cast<unsigned>(dtype)].bits;
}

int64_t TensorInfo::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d; // Validated not to overflow when the file was opened.
  return n;
}

//===----------------------------------------------------------------------===//
// SafeTensorsFile
//===----------------------------------------------------------------------===//

/// LLVM's JSON parser keeps the last of duplicated keys; safetensors forbids
/// them (a second entry could redirect a tensor). Scans already-valid JSON
/// and returns the first key repeated within one object.
static std::optional<std::string> findDuplicateKey(StringRef text) {
  std::vector<std::optional<StringSet<>>> scopes; // nullopt: an array.
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '{') {
      scopes.emplace_back(StringSet<>());
    } else if (c == '[') {
      scopes.emplace_back(std::nullopt);
    } else if (c == '}' || c == ']') {
      scopes.pop_back();
    } else if (c == '"') {
      size_t end = i + 1;
      while (end < text.size() && text[end] != '"')
        end += text[end] == '\\' ? 2 : 1;
      if (end >= text.size())
        break;
      StringRef literal = text.slice(i, end + 1);
      i = end;
      // In valid JSON only an object key is followed by ':'.
      size_t next = text.find_first_not_of(" \t\r\n", end + 1);
      if (scopes.empty() || !scopes.back() || next == StringRef::npos ||
          text[next] != ':')
        continue;
      Expected<json::Value> key = json::parse(literal); // Decodes escapes.
      if (!key) {
        consumeError(key.takeError());
        continue;
      }
      std::string name = key->getAsString()->str();
      if (!scopes.back()->insert(name).second)
        return name;
    }
  }
  return std::nullopt;
}

static constexpr StringLiteral kLfsPointerPrefix =
    "version https://git-lfs.github.com/spec/";

// A JSON number as a size: a non-negative integer within 48 bits (the
// format's schema bound, which keeps every product below checked in range).
static std::optional<uint64_t> getSize(const json::Value &value) {
  std::optional<int64_t> n = value.getAsInteger();
  if (!n || *n < 0 || *n > (int64_t(1) << 48))
    return std::nullopt;
  return static_cast<uint64_t>(*n);
}

static Expected<TensorInfo> parseTensor(StringRef path, StringRef name,
                                        const json::Value &value) {
  auto bad = [&](const Twine &what) {
    return fail(path, "tensor '" + name + "': " + what);
  };
  const json::Object *entry = value.getAsObject();
  if (!entry)
    return bad("header entry is not a JSON object");

  TensorInfo info;
  info.name = name.str();
  std::optional<StringRef> dtype = entry->getString("dtype");
  if (!dtype)
    return bad("'dtype' is missing or not a string");
  std::optional<DType> parsed = parseDType(*dtype);
  if (!parsed)
    return bad("unknown 'dtype' \"" + *dtype + "\"");
  info.dtype = *parsed;

  const json::Array *shape = entry->getArray("shape");
  if (!shape)
    return bad("'shape' is missing or not an array");
  for (const json::Value &dim : *shape) {
    std::optional<uint64_t> size = getSize(dim);
    if (!size)
      return bad("'shape' holds a value that is not a size (a non-negative "
                 "integer below 2^48)");
    info.shape.push_back(static_cast<int64_t>(*size));
  }

  const json::Array *offsets = entry->getArray("data_offsets");
  if (!offsets || offsets->size() != 2)
    return bad("'data_offsets' is missing or not a [begin, end] pair");
  std::optional<uint64_t> begin = getSize((*offsets)[0]);
  std::optional<uint64_t> end = getSize((*offsets)[1]);
  if (!begin || !end)
    return bad("'data_offsets' holds a value that is not a size");
  if (*end < *begin)
    return bad("'data_offsets' end " + Twine(*end) + " is before begin " +
               Twine(*begin));
  info.begin = *begin;
  info.end = *end;

  // Byte size = numel x bits / 8, each step overflow-checked.
  std::optional<int64_t> numel = 1;
  for (int64_t dim : info.shape)
    if (numel)
      numel = checkedMul(*numel, dim);
  std::optional<int64_t> bits =
      numel ? checkedMul(*numel, int64_t(dtypeBits(info.dtype))) : std::nullopt;
  if (!bits)
    return bad("'shape' overflows when multiplied out");
  if (*bits % 8 != 0)
    return bad(Twine(*numel) + " elements of " + dtypeName(info.dtype) +
               " do not fill whole bytes");
  if (info.numBytes() != static_cast<uint64_t>(*bits / 8))
    return bad("'data_offsets' span " + Twine(info.numBytes()) +
               " bytes, but shape and dtype need " + Twine(*bits / 8));
  return info;
}

Expected<std::unique_ptr<SafeTensorsFile>>
SafeTensorsFile::open(StringRef path, uint64_t maxHeaderSize) {
  // Large files are mapped (read-only, private), never read into memory.
  ErrorOr<std::unique_ptr<MemoryBuffer>> buffer = MemoryBuffer::getFile(
      path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fail(path, "cannot open: " + buffer.getError().message());
  return fromBuffer(std::move(*buffer), path, maxHeaderSize);
}

Expected<std::unique_ptr<SafeTensorsFile>>
SafeTensorsFile::fromBuffer(std::unique_ptr<MemoryBuffer> buffer,
                            StringRef path, uint64_t maxHeaderSize) {
  StringRef bytes = buffer->getBuffer();
  if (bytes.starts_with(kLfsPointerPrefix))
    return fail(path, "is a Git LFS pointer file, not the tensor data; fetch "
                      "the real file (git lfs pull)");
  if (bytes.size() < 8)
    return fail(path, "is " + Twine(bytes.size()) +
                          " bytes long, too small for a safetensors header");
  uint64_t headerSize =
      support::endian::read64le(reinterpret_cast<const uint8_t *>(bytes.data()));
  if (headerSize > maxHeaderSize)
    return fail(path, "header size " + Twine(headerSize) +
                          " exceeds the limit of " + Twine(maxHeaderSize) +
                          " bytes (a truncated or non-safetensors file?)");
  if (headerSize > bytes.size() - 8)
    return fail(path, "header size " + Twine(headerSize) +
                          " runs past the end of the file (" +
                          Twine(bytes.size()) + " bytes)");
  StringRef headerText = bytes.substr(8, headerSize);
  if (!headerText.starts_with("{"))
    return fail(path, "header does not start with '{'");

  Expected<json::Value> header = json::parse(headerText.rtrim(' '));
  if (!header)
    return fail(path, "header is not valid JSON: " +
                          toString(header.takeError()));
  const json::Object *object = header->getAsObject();
  if (!object)
    return fail(path, "header is not a JSON object");
  if (std::optional<std::string> key = findDuplicateKey(headerText))
    return fail(path, "header has a duplicate key '" + *key + "'");

  auto file = std::unique_ptr<SafeTensorsFile>(new SafeTensorsFile());
  file->filePath = path.str();
  file->headerText = headerText;
  for (const auto &[key, value] : *object) {
    if (key == "__metadata__") {
      const json::Object *metadata = value.getAsObject();
      if (!metadata)
        return fail(path, "'__metadata__' is not a JSON object");
      for (const auto &[metaKey, metaValue] : *metadata) {
        std::optional<StringRef> text = metaValue.getAsString();
        if (!text)
          return fail(path, "'__metadata__' entry '" + metaKey.str() +
                                "' is not a string");
        file->metadataMap[metaKey.str()] = text->str();
      }
      continue;
    }
    Expected<TensorInfo> tensor = parseTensor(path, key.str(), value);
    if (!tensor)
      return tensor.takeError();
    file->tensorList.push_back(std::move(*tensor));
  }

  // Older writers did not sort; the reference parser sorts by offset, then
  // requires the tensors to tile the buffer: no gap, no overlap.
  llvm::sort(file->tensorList, [](const TensorInfo &a, const TensorInfo &b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t expectedBegin = 0;
  for (const TensorInfo &tensor : file->tensorList) {
    if (tensor.begin != expectedBegin)
      return fail(path, "tensor '" + tensor.name + "': 'data_offsets' begin " +
                            Twine(tensor.begin) +
                            (tensor.begin < expectedBegin
                                 ? " overlaps the previous tensor, which ends "
                                   "at "
                                 : " leaves a gap after the previous tensor, "
                                   "which ends at ") +
                            Twine(expectedBegin));
    expectedBegin = tensor.end;
  }
  uint64_t dataSize = bytes.size() - 8 - headerSize;
  if (expectedBegin != dataSize)
    return fail(path, "tensors cover " + Twine(expectedBegin) +
                          " bytes, but the file holds " + Twine(dataSize) +
                          " bytes of tensor data (truncated or trailing "
                          "data)");

  for (auto [index, tensor] : llvm::enumerate(file->tensorList))
    file->byName[tensor.name] = index;
  file->dataStart =
      reinterpret_cast<const uint8_t *>(bytes.data()) + 8 + headerSize;
  file->buffer = std::move(buffer);
  return file;
}

const TensorInfo *SafeTensorsFile::lookup(StringRef name) const {
  auto it = byName.find(name);
  return it == byName.end() ? nullptr : &tensorList[it->second];
}

ArrayRef<uint8_t> SafeTensorsFile::data(const TensorInfo &tensor) const {
  return ArrayRef<uint8_t>(dataStart + tensor.begin, tensor.numBytes());
}

//===----------------------------------------------------------------------===//
// Checkpoint
//===----------------------------------------------------------------------===//

// A shard named by the index must be a file inside the checkpoint folder:
// relative, without `..`, and not a link that leads out of it.
static Expected<std::string> resolveShard(StringRef indexPath,
                                          StringRef directory,
                                          StringRef shard) {
  if (shard.empty() || sys::path::is_absolute(shard) ||
      llvm::is_contained(
          llvm::make_range(sys::path::begin(shard), sys::path::end(shard)),
          ".."))
    return fail(indexPath, "weight_map names shard \"" + shard +
                               "\", which is not a file inside the "
                               "checkpoint folder");
  SmallString<256> full(directory);
  sys::path::append(full, shard);
  SmallString<256> realDir, realShard;
  if (sys::fs::real_path(directory, realDir))
    return fail(directory, "cannot resolve the checkpoint folder");
  if (std::error_code ec = sys::fs::real_path(full, realShard))
    return fail(indexPath, "shard \"" + shard + "\" cannot be opened: " +
                               ec.message());
  StringRef inside = realShard.str();
  if (!inside.starts_with(realDir.str()) ||
      !sys::path::is_separator(inside[realDir.size()]))
    return fail(indexPath, "shard \"" + shard +
                               "\" resolves outside the checkpoint folder");
  return std::string(full.str());
}

Expected<std::unique_ptr<Checkpoint>> Checkpoint::open(StringRef directory) {
  if (!sys::fs::is_directory(directory))
    return fail(directory, "is not a checkpoint folder");
  auto checkpoint = std::unique_ptr<Checkpoint>(new Checkpoint());

  SmallString<256> indexPath(directory);
  sys::path::append(indexPath, "model.safetensors.index.json");
  if (!sys::fs::exists(indexPath)) {
    SmallString<256> single(directory);
    sys::path::append(single, "model.safetensors");
    if (!sys::fs::exists(single))
      return fail(directory, "holds neither model.safetensors nor "
                             "model.safetensors.index.json");
    Expected<std::unique_ptr<SafeTensorsFile>> file =
        SafeTensorsFile::open(single);
    if (!file)
      return file.takeError();
    for (const TensorInfo &tensor : (*file)->tensors())
      checkpoint->byName[tensor.name] = {file->get(), &tensor};
    checkpoint->shardFiles.push_back(std::move(*file));
    return checkpoint;
  }

  ErrorOr<std::unique_ptr<MemoryBuffer>> indexText =
      MemoryBuffer::getFile(indexPath, /*IsText=*/true);
  if (!indexText)
    return fail(indexPath, "cannot open: " + indexText.getError().message());
  Expected<json::Value> index = json::parse((*indexText)->getBuffer());
  if (!index)
    return fail(indexPath, "is not valid JSON: " + toString(index.takeError()));
  if (std::optional<std::string> key =
          findDuplicateKey((*indexText)->getBuffer()))
    return fail(indexPath, "has a duplicate key '" + *key + "'");
  const json::Object *root = index->getAsObject();
  const json::Object *weightMap = root ? root->getObject("weight_map") : nullptr;
  if (!weightMap)
    return fail(indexPath, "has no 'weight_map' object");

  // Open each shard once, in name order for deterministic diagnostics.
  std::map<std::string, std::vector<std::string>> tensorsByShard;
  for (const auto &[tensor, shard] : *weightMap) {
    std::optional<StringRef> shardName = shard.getAsString();
    if (!shardName)
      return fail(indexPath, "weight_map entry '" + tensor.str() +
                                 "' is not a file name");
    tensorsByShard[shardName->str()].push_back(tensor.str());
  }
  for (auto &[shard, tensors] : tensorsByShard) {
    Expected<std::string> shardPath = resolveShard(indexPath, directory, shard);
    if (!shardPath)
      return shardPath.takeError();
    Expected<std::unique_ptr<SafeTensorsFile>> file =
        SafeTensorsFile::open(*shardPath);
    if (!file)
      return file.takeError();
    llvm::StringSet<> listed;
    for (const std::string &name : tensors) {
      const TensorInfo *info = (*file)->lookup(name);
      if (!info)
        return fail(indexPath, "weight_map puts tensor '" + name + "' in " +
                                   shard + ", which does not contain it");
      listed.insert(name);
      checkpoint->byName[name] = {file->get(), info};
    }
    for (const TensorInfo &tensor : (*file)->tensors())
      if (!listed.contains(tensor.name))
        return fail(*shardPath, "holds tensor '" + tensor.name +
                                    "', which the index does not list for "
                                    "this shard");
    checkpoint->shardFiles.push_back(std::move(*file));
  }
  return checkpoint;
}

std::optional<Checkpoint::Location>
Checkpoint::lookup(StringRef name) const {
  auto it = byName.find(name);
  if (it == byName.end())
    return std::nullopt;
  return it->second;
}

std::vector<std::string> Checkpoint::tensorNames() const {
  std::vector<std::string> names;
  for (const auto &entry : byName)
    names.push_back(entry.getKey().str());
  llvm::sort(names);
  return names;
}

} // namespace moe
