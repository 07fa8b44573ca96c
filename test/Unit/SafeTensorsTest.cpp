//===- SafeTensorsTest.cpp - The validating safetensors reader ------------===//
//
// Each case builds a file byte by byte and checks that the reader accepts
// exactly what the reference parser (huggingface/safetensors) accepts, with
// a message naming the file and the tensor or field at fault.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/SafeTensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

using namespace llvm;

namespace {

/// A file: 8-byte little-endian header length, header, data.
std::string encode(const std::string &header, const std::string &data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

class SafeTensorsTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(sys::fs::createUniqueDirectory("moe-safetensors", dir));
  }
  void TearDown() override { sys::fs::remove_directories(dir); }

  std::string write(StringRef name, const std::string &bytes) {
    SmallString<256> path(dir);
    sys::path::append(path, name);
    SmallString<256> parent = path;
    sys::path::remove_filename(parent);
    sys::fs::create_directories(parent);
    std::error_code ec;
    raw_fd_ostream os(path, ec);
    EXPECT_FALSE(ec);
    os << bytes;
    return std::string(path);
  }

  /// Opens `bytes` as a file and returns the error message ("" if valid).
  std::string openError(const std::string &bytes) {
    std::string path = write("model.safetensors", bytes);
    auto file = moe::SafeTensorsFile::open(path);
    if (file)
      return "";
    return toString(file.takeError());
  }

  SmallString<128> dir;
};

#define EXPECT_ERROR(bytes, needle)                                            \
  do {                                                                         \
    std::string message = openError(bytes);                                   \
    EXPECT_NE(message.find(needle), std::string::npos)                         \
        << "message: " << message;                                             \
    EXPECT_NE(message.find("model.safetensors: "), std::string::npos)          \
        << "message does not name the file: " << message;                      \
  } while (0)

const char *kTwoTensors =
    R"({"__metadata__":{"format":"pt"},)"
    R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},)"
    R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";

TEST_F(SafeTensorsTest, ReadsTensorsInBufferOrder) {
  std::string data;
  for (int i = 0; i < 22; ++i)
    data.push_back(static_cast<char>(i));
  std::string path = write("model.safetensors", encode(kTwoTensors, data));
  auto file = moe::SafeTensorsFile::open(path);
  ASSERT_TRUE(!!file) << toString(file.takeError());
  ASSERT_EQ((*file)->tensors().size(), 2u);
  EXPECT_EQ((*file)->tensors()[0].name, "a");
  EXPECT_EQ((*file)->tensors()[1].name, "b");
  const moe::TensorInfo *b = (*file)->lookup("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, moe::DType::BF16);
  EXPECT_EQ(b->shape, std::vector<int64_t>{3});
  ArrayRef<uint8_t> bytes = (*file)->data(*b);
  ASSERT_EQ(bytes.size(), 6u);
  EXPECT_EQ(bytes[0], 16);
  EXPECT_EQ(bytes[5], 21);
  EXPECT_EQ((*file)->lookup("missing"), nullptr);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->header(), kTwoTensors);
}

TEST_F(SafeTensorsTest, AcceptsSpacePaddingScalarsAndEmptyTensors) {
  std::string header =
      R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("e":{"dtype":"F16","shape":[0,5],"data_offsets":[4,4]}})";
  header.append(6, ' ');
  EXPECT_EQ(openError(encode(header, "abcd")), "");
  EXPECT_EQ(openError(encode("{}", "")), "");
}

TEST_F(SafeTensorsTest, RejectsNulPadding) {
  std::string header = R"({"s":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  header.push_back('\0');
  EXPECT_ERROR(encode(header, "x"), "header is not valid JSON");
}

TEST_F(SafeTensorsTest, NamesGitLfsPointers) {
  EXPECT_ERROR("version https://git-lfs.github.com/spec/v1\n"
               "oid sha256:0123\nsize 4\n",
               "is a Git LFS pointer file");
}

TEST_F(SafeTensorsTest, RejectsBadHeaderSizes) {
  EXPECT_ERROR("1234", "too small for a safetensors header");
  std::string huge(8, '\0');
  huge[4] = 1; // 2^32 bytes.
  EXPECT_ERROR(huge + "{}", "exceeds the limit of 100000000 bytes");
  std::string past = encode("{}", "");
  past[0] = 50;
  EXPECT_ERROR(past, "runs past the end of the file");
}

TEST_F(SafeTensorsTest, RejectsBadJson) {
  EXPECT_ERROR(encode("[1, 2]", ""), "header does not start with '{'");
  EXPECT_ERROR(encode("{\"a\": ", ""), "header is not valid JSON");
  EXPECT_ERROR(encode(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                      R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                      "xy"),
               "header has a duplicate key 'a'");
  // Keys are compared after unescaping, and in nested objects too.
  EXPECT_ERROR(encode(R"({"t":{"dtype":"U8","dtype":"U8","shape":[1],)"
                      R"("data_offsets":[0,1]}})",
                      "x"),
               "header has a duplicate key 'dtype'");
  EXPECT_ERROR(encode(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                      R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                      "xy"),
               "header has a duplicate key 'a'");
  EXPECT_ERROR(encode(R"({"__metadata__":{"format":1}})", ""),
               "'__metadata__' entry 'format' is not a string");
  EXPECT_ERROR(encode(R"({"__metadata__":[]})", ""),
               "'__metadata__' is not a JSON object");
}

TEST_F(SafeTensorsTest, RejectsBadTensorFields) {
  EXPECT_ERROR(encode(R"({"t":{"dtype":"F12","shape":[1],"data_offsets":[0,1]}})",
                      "x"),
               "tensor 't': unknown 'dtype' \"F12\"");
  EXPECT_ERROR(encode(R"({"t":{"shape":[1],"data_offsets":[0,1]}})", "x"),
               "tensor 't': 'dtype' is missing");
  EXPECT_ERROR(encode(R"({"t":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})",
                      "x"),
               "tensor 't': 'shape' holds a value that is not a size");
  EXPECT_ERROR(encode(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0]}})",
                      "x"),
               "tensor 't': 'data_offsets' is missing or not a [begin, end] pair");
  EXPECT_ERROR(encode(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})",
                      "x"),
               "tensor 't': 'data_offsets' end 0 is before begin 1");
  EXPECT_ERROR(encode(R"({"t":"x"})", ""),
               "tensor 't': header entry is not a JSON object");
}

TEST_F(SafeTensorsTest, ChecksSizeAgainstShapeAndDtype) {
  EXPECT_ERROR(encode(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})",
                      "abcd"),
               "tensor 't': 'data_offsets' span 4 bytes, but shape and dtype "
               "need 8");
  EXPECT_ERROR(
      encode(R"({"t":{"dtype":"F64","shape":[281474976710656,281474976710656],)"
             R"("data_offsets":[0,8]}})",
             "abcdefgh"),
      "tensor 't': 'shape' overflows");
  EXPECT_ERROR(encode(R"({"t":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})",
                      "ab"),
               "tensor 't': 3 elements of F4 do not fill whole bytes");
  // Two F4 values share a byte.
  EXPECT_EQ(openError(encode(
                R"({"t":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}})",
                "ab")),
            "");
}

TEST_F(SafeTensorsTest, RequiresExactTiling) {
  EXPECT_ERROR(encode(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                      R"("b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})",
                      "abcde"),
               "tensor 'b': 'data_offsets' begin 3 leaves a gap after the "
               "previous tensor, which ends at 2");
  EXPECT_ERROR(encode(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                      R"("b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})",
                      "abc"),
               "tensor 'b': 'data_offsets' begin 1 overlaps the previous tensor");
  EXPECT_ERROR(encode(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})",
                      "abc"),
               "tensor 'a': 'data_offsets' begin 1 leaves a gap");
  EXPECT_ERROR(encode(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})",
                      "abc"),
               "tensors cover 2 bytes, but the file holds 3 bytes");
  EXPECT_ERROR(encode(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                      "abc"),
               "tensors cover 4 bytes, but the file holds 3 bytes");
}

//===----------------------------------------------------------------------===//
// Checkpoint folders
//===----------------------------------------------------------------------===//

std::string u8File(const std::string &name, const std::string &bytes) {
  return encode("{\"" + name + "\":{\"dtype\":\"U8\",\"shape\":[" +
                    std::to_string(bytes.size()) + "],\"data_offsets\":[0," +
                    std::to_string(bytes.size()) + "]}}",
                bytes);
}

TEST_F(SafeTensorsTest, CheckpointWithOneFile) {
  write("model.safetensors", u8File("w", "xyz"));
  auto ckpt = moe::Checkpoint::open(dir);
  ASSERT_TRUE(!!ckpt) << toString(ckpt.takeError());
  auto w = (*ckpt)->lookup("w");
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->file->data(*w->tensor).size(), 3u);
  EXPECT_EQ((*ckpt)->tensorNames(), std::vector<std::string>{"w"});
}

TEST_F(SafeTensorsTest, CheckpointWithShards) {
  write("model-00001-of-00002.safetensors", u8File("a", "aa"));
  write("model-00002-of-00002.safetensors", u8File("b", "bbb"));
  write("model.safetensors.index.json",
        R"({"metadata":{"total_size":5},"weight_map":{)"
        R"("a":"model-00001-of-00002.safetensors",)"
        R"("b":"model-00002-of-00002.safetensors"}})");
  auto ckpt = moe::Checkpoint::open(dir);
  ASSERT_TRUE(!!ckpt) << toString(ckpt.takeError());
  EXPECT_EQ((*ckpt)->files().size(), 2u);
  auto b = (*ckpt)->lookup("b");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->file->data(*b->tensor)[0], 'b');
  EXPECT_FALSE((*ckpt)->lookup("c").has_value());
}

std::string checkpointError(const SmallString<128> &dir) {
  auto ckpt = moe::Checkpoint::open(dir);
  return ckpt ? "" : toString(ckpt.takeError());
}

TEST_F(SafeTensorsTest, CheckpointIndexMustMatchShards) {
  write("s1.safetensors", u8File("a", "aa"));
  write("model.safetensors.index.json",
        R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}})");
  EXPECT_NE(checkpointError(dir).find(
                "weight_map puts tensor 'b' in s1.safetensors, which does not "
                "contain it"),
            std::string::npos)
      << checkpointError(dir);

  write("model.safetensors.index.json", R"({"weight_map":{}})");
  write("model.safetensors.index.json",
        R"({"weight_map":{"x":"s2.safetensors"}})");
  write("s2.safetensors",
        encode(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
               R"("y":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
               "xy"));
  EXPECT_NE(checkpointError(dir).find(
                "holds tensor 'y', which the index does not list"),
            std::string::npos)
      << checkpointError(dir);

  write("model.safetensors.index.json",
        R"({"weight_map":{"x":"s2.safetensors","x":"s1.safetensors"}})");
  EXPECT_NE(checkpointError(dir).find("has a duplicate key 'x'"),
            std::string::npos)
      << checkpointError(dir);

  write("model.safetensors.index.json", R"({"weights":{}})");
  EXPECT_NE(checkpointError(dir).find("has no 'weight_map' object"),
            std::string::npos);
}

TEST_F(SafeTensorsTest, CheckpointShardsStayInsideTheFolder) {
  write("inner/model.safetensors.index.json",
        R"({"weight_map":{"a":"../outside.safetensors"}})");
  write("outside.safetensors", u8File("a", "a"));
  SmallString<128> inner(dir);
  sys::path::append(inner, "inner");
  EXPECT_NE(checkpointError(inner).find("which is not a file inside the "
                                        "checkpoint folder"),
            std::string::npos)
      << checkpointError(inner);

  write("inner/model.safetensors.index.json",
        R"({"weight_map":{"a":"/etc/passwd"}})");
  EXPECT_NE(checkpointError(inner).find("not a file inside"), std::string::npos);

  SmallString<128> outside(dir), link(inner);
  sys::path::append(outside, "outside.safetensors");
  sys::path::append(link, "link.safetensors");
  ASSERT_FALSE(sys::fs::create_link(outside, link));
  write("inner/model.safetensors.index.json",
        R"({"weight_map":{"a":"link.safetensors"}})");
  EXPECT_NE(checkpointError(inner).find("resolves outside the checkpoint folder"),
            std::string::npos)
      << checkpointError(inner);
}

TEST_F(SafeTensorsTest, CheckpointNeedsWeights) {
  EXPECT_NE(checkpointError(dir).find(
                "holds neither model.safetensors nor "
                "model.safetensors.index.json"),
            std::string::npos);
}

} // namespace
