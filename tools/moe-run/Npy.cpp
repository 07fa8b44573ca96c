//===- Npy.cpp - NumPy .npy files for moe-run -----------------------------===//

#include "Npy.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace moerun;

namespace {

/// The .npy type string of `dtype`.
const char *descrOf(moert_dtype dtype) {
  switch (dtype) {
  case MOERT_DTYPE_F32:
    return "<f4";
  case MOERT_DTYPE_F16:
    return "<f2";
  case MOERT_DTYPE_BF16:
    return "<u2";
  case MOERT_DTYPE_F64:
    return "<f8";
  case MOERT_DTYPE_I64:
    return "<i8";
  case MOERT_DTYPE_I32:
    return "<i4";
  case MOERT_DTYPE_BOOL:
    return "|b1";
  }
  return "";
}

/// The value of `key` in the header dict, up to the next top-level comma
/// or closing brace; empty if absent.
std::string field(const std::string &header, const std::string &key) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos)
    return "";
  at = header.find(':', at);
  if (at == std::string::npos)
    return "";
  size_t end = at + 1;
  int depth = 0;
  for (; end < header.size(); ++end) {
    char c = header[end];
    if (c == '(')
      ++depth;
    else if (c == ')')
      --depth;
    else if ((c == ',' || c == '}') && depth == 0)
      break;
  }
  std::string value = header.substr(at + 1, end - at - 1);
  size_t first = value.find_first_not_of(" \t");
  size_t last = value.find_last_not_of(" \t");
  return first == std::string::npos ? ""
                                    : value.substr(first, last - first + 1);
}

} // namespace

bool moerun::readNpy(const std::string &path, moert_dtype want, NpyArray &out,
                     std::string &error) {
  auto bad = [&](const std::string &why) {
    error = path + ": " + why;
    return false;
  };
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return bad(std::string("cannot open: ") + std::strerror(errno));
  std::vector<char> bytes;
  char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0)
    bytes.insert(bytes.end(), chunk, chunk + n);
  std::fclose(f);
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    return bad("not a .npy file");
  unsigned major = static_cast<unsigned char>(bytes[6]);
  size_t headerLength, start;
  auto byte = [&](size_t i) {
    return size_t(static_cast<unsigned char>(bytes[i]));
  };
  if (major == 1) {
    headerLength = byte(8) | byte(9) << 8;
    start = 10;
  } else if ((major == 2 || major == 3) && bytes.size() >= 12) {
    headerLength = byte(8) | byte(9) << 8 | byte(10) << 16 | byte(11) << 24;
    start = 12;
  } else {
    return bad(".npy format version " + std::to_string(major) +
               " is not supported");
  }
  if (headerLength > bytes.size() - start)
    return bad("truncated .npy header");
  std::string header(bytes.data() + start, headerLength);
  std::string descr = field(header, "descr");
  std::string order = field(header, "fortran_order");
  std::string shape = field(header, "shape");
  if (descr.size() < 2 || shape.size() < 2 || shape.front() != '(' ||
      shape.back() != ')')
    return bad("malformed .npy header");
  descr = descr.substr(1, descr.size() - 2);
  if (order != "False")
    return bad("Fortran-order arrays are not supported (save a C-order "
               "copy: numpy.ascontiguousarray)");
  // '=' is native order, little-endian on the hosts we run on.
  if (descr.size() == 3 && descr[0] == '=')
    descr[0] = '<';
  if (descr == "|u1" && want == MOERT_DTYPE_BOOL)
    descr = "|b1";
  bool found = false;
  for (int d = MOERT_DTYPE_F32; d <= MOERT_DTYPE_BOOL; ++d)
    if (descr == descrOf(static_cast<moert_dtype>(d))) {
      out.dtype = static_cast<moert_dtype>(d);
      found = true;
    }
  if (descr == "<u2" || descr == "|V2" || descr == "<V2")
    out.dtype = MOERT_DTYPE_BF16, found = want == MOERT_DTYPE_BF16;
  if (!found)
    return bad("element type '" + descr + "' is not supported (f32, f16, " +
               "f64, i64, i32, bool; bf16 as raw '<u2')");
  out.shape.clear();
  int64_t elements = 1;
  std::string dims = shape.substr(1, shape.size() - 2);
  size_t at = 0;
  while (at < dims.size()) {
    size_t comma = dims.find(',', at);
    std::string dim = dims.substr(at, comma == std::string::npos
                                          ? std::string::npos
                                          : comma - at);
    at = comma == std::string::npos ? dims.size() : comma + 1;
    size_t first = dim.find_first_not_of(' ');
    if (first == std::string::npos)
      continue;
    char *end = nullptr;
    errno = 0;
    long long v = std::strtoll(dim.c_str() + first, &end, 10);
    while (end && (*end == ' ' || *end == 'L'))
      ++end;
    if (errno || !end || *end || v < 0 ||
        __builtin_mul_overflow(elements, int64_t(v), &elements))
      return bad("malformed shape " + shape);
    out.shape.push_back(v);
  }
  size_t dataStart = start + headerLength;
  int64_t want_bytes = 0;
  if (__builtin_mul_overflow(elements, moert_dtype_size(out.dtype),
                             &want_bytes) ||
      uint64_t(want_bytes) != bytes.size() - dataStart)
    return bad("holds " + std::to_string(bytes.size() - dataStart) +
               " data bytes, its shape " + shape + " needs " +
               std::to_string(want_bytes));
  out.data.assign(bytes.begin() + dataStart, bytes.end());
  return true;
}

bool moerun::writeNpy(const std::string &path, moert_dtype dtype,
                      const std::vector<int64_t> &shape, const void *bytes,
                      std::string &error) {
  std::string dims;
  int64_t elements = 1;
  for (int64_t d : shape) {
    dims += std::to_string(d) + ", ";
    elements *= d;
  }
  if (shape.size() > 1)
    dims.resize(dims.size() - 2);
  else if (shape.size() == 1)
    dims.pop_back();
  std::string header = std::string("{'descr': '") + descrOf(dtype) +
                       "', 'fortran_order': False, 'shape': (" + dims +
                       "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string tmp = path + ".tmp";
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) {
    error = tmp + ": cannot write: " + std::strerror(errno);
    return false;
  }
  unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                             static_cast<unsigned char>(header.size() & 0xff),
                             static_cast<unsigned char>(header.size() >> 8)};
  size_t size = size_t(elements) * moert_dtype_size(dtype);
  bool ok = std::fwrite(magic, 1, 10, f) == 10 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            (size == 0 || std::fwrite(bytes, 1, size, f) == size);
  ok = (std::fclose(f) == 0) && ok;
  // Renamed into place only when complete: no half-written file.
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = path + ": write failed: " + std::strerror(errno);
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}
