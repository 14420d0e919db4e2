// util/option_error.h: the library names a setting by its key; the front end
// decides how users read it. Nothing in the library spells a CLI flag.
#include <gtest/gtest.h>

#include <string>

#include "clipes/pipeline/batch_runner.h"
#include "clipes/util/error.h"
#include "clipes/util/option_error.h"

namespace clipes {
namespace {

std::string shard_error() {
  try {
    ShardSpec::parse("5/2");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(OptionError, KeysAreBareForALibraryCallerAndFlagsUnderTheCliSpelling) {
  // The test binary runs with the CLI's spelling installed (test_support.cpp).
  EXPECT_EQ(shard_error(), "--shard 5/2: need 0 <= i < N");
  set_option_spelling({});
  EXPECT_EQ(shard_error(), "shard 5/2: need 0 <= i < N");
  EXPECT_EQ(render_option_keys("pass " + option_key("labels_file") + " or " + option_key("max_pixels")),
            "pass labels_file or max_pixels");
  set_option_spelling(long_option_spelling);
  EXPECT_EQ(render_option_keys("pass " + option_key("labels_file") + " or " + option_key("max_pixels")),
            "pass --labels-file or --max-pixels");
  // An unpaired mark is left as it is rather than eating the message.
  EXPECT_EQ(render_option_keys("a \x1f" "b"), "a \x1f" "b");
}

}  // namespace
}  // namespace clipes
