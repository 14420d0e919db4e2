// write_file_atomic leftovers: what a SIGKILLed writer leaves and who may sweep it.
#include <gtest/gtest.h>

#include <filesystem>

#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {
namespace fs = std::filesystem;

TEST(RemoveStaleTemporaries, RemovesOnlyLeftoversOfTheGivenTargets) {
  const std::string dir = test::make_temp_dir("stale-tmp");
  write_file_atomic(dir + "/masks/a.png", "A");
  for (const char* name : {"a.png.tmp-123", "b.png.tmp-77", "a.png.tmp-", "a.png.tmp-12x", "c.png.tmp-5"})
    write_file_atomic(dir + "/masks/" + name, "partial");
  write_file_atomic(dir + "/cams/a_cam.npy.tmp-9", "partial");

  const size_t removed = remove_stale_temporaries(
      {dir + "/masks/a.png", dir + "/masks/b.png", dir + "/cams/a_cam.npy", dir + "/nofolder/a.png"});
  EXPECT_EQ(removed, 3u);
  EXPECT_TRUE(fs::exists(dir + "/masks/a.png"));           // the output itself stays
  EXPECT_FALSE(fs::exists(dir + "/masks/a.png.tmp-123"));
  EXPECT_FALSE(fs::exists(dir + "/masks/b.png.tmp-77"));
  EXPECT_FALSE(fs::exists(dir + "/cams/a_cam.npy.tmp-9"));
  EXPECT_TRUE(fs::exists(dir + "/masks/c.png.tmp-5"));     // not ours (another shard's image)
  EXPECT_TRUE(fs::exists(dir + "/masks/a.png.tmp-"));      // not write_file_atomic's pattern
  EXPECT_TRUE(fs::exists(dir + "/masks/a.png.tmp-12x"));
}

}  // namespace
}  // namespace clipes
