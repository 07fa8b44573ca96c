//===- RuntimeStatusTest.cpp - The runtime's errors-as-values contract ----===//

#include "moe/Runtime/moert.h"

#include <gtest/gtest.h>

#include <string>

namespace {

TEST(RuntimeStatus, OkIsNull) {
  EXPECT_EQ(moert_status_make(MOERT_OK, "ignored %d", 1), nullptr);
  EXPECT_EQ(moert_status_get_code(nullptr), MOERT_OK);
  EXPECT_STREQ(moert_status_message(nullptr), "");
  moert_status_free(nullptr);
}

TEST(RuntimeStatus, CarriesCodeAndFormattedMessage) {
  moert_status s =
      moert_status_make(MOERT_FORMAT_ERROR, "%s: tensor '%s' has %d dims",
                        "model.safetensors", "lm_head.weight", 3);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(moert_status_get_code(s), MOERT_FORMAT_ERROR);
  EXPECT_STREQ(moert_status_message(s),
               "model.safetensors: tensor 'lm_head.weight' has 3 dims");
  EXPECT_STREQ(moert_status_code_name(moert_status_get_code(s)),
               "format error");
  moert_status_free(s);
}

TEST(RuntimeStatus, LongMessagesAreNotTruncated) {
  std::string longName(5000, 'x');
  moert_status s = moert_status_make(MOERT_NOT_FOUND, "%s", longName.c_str());
  EXPECT_EQ(std::string(moert_status_message(s)), longName);
  moert_status_free(s);
}

TEST(RuntimeStatus, VersionMatchesHeader) {
  EXPECT_EQ(std::string(moert_version()),
            std::to_string(MOERT_VERSION_MAJOR) + "." +
                std::to_string(MOERT_VERSION_MINOR));
}

} // namespace
