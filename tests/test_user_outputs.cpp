// Outputs the user points at (issue 26 items 2 and 8): `--json PATH` keeps a
// FIFO or a symlink what it is, and results that could not be written to
// stdout are a failure, not exit 0.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "clipes/util/atomic_file.h"
#include "test_support.h"

namespace clipes {
namespace {
namespace fs = std::filesystem;

std::string info_cmd() { return test::clipes_binary() + " info --model " + test::tiny_clip_path(); }

TEST(UserOutputs, JsonIntoAFifoOrASymlinkWritesThroughAndKeepsIt) {
  const std::string dir = test::make_temp_dir("user-outputs");
  // A FIFO with a reader: the reader gets the JSON, the FIFO stays a FIFO.
  // Before: the reader hung, the FIFO was replaced by a regular file, exit 0.
  std::string log;
  ASSERT_EQ(test::run_command("cd " + dir + " && mkfifo f && { timeout 60 cat f > got & } && " + info_cmd() +
                                  " --json f && wait",
                              &log),
            0)
      << log;
  struct stat st {};
  ASSERT_EQ(::lstat((dir + "/f").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(read_file(dir + "/got").rfind("{", 0), 0u) << read_file(dir + "/got");
  // A symlink (as /dev/stdout is one): the link stays, its target gets the JSON.
  write_file_atomic(dir + "/target.json", "old");
  fs::create_symlink(dir + "/target.json", dir + "/link.json");
  ASSERT_EQ(test::run_command(info_cmd() + " --json " + dir + "/link.json", &log), 0) << log;
  EXPECT_TRUE(fs::is_symlink(dir + "/link.json"));
  EXPECT_EQ(read_file(dir + "/target.json").rfind("{", 0), 0u);
  // A regular file is still replaced atomically (no temporaries left).
  ASSERT_EQ(test::run_command(info_cmd() + " --json " + dir + "/plain.json", &log), 0) << log;
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST(UserOutputs, ResultsThatCannotBeWrittenToStdoutAreAFailure) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full here";
  std::string log;
  // Before: exit 0 with nothing written.
  EXPECT_EQ(test::run_command("{ " + test::clipes_binary() + " classes voc > /dev/full; }", &log), 1) << log;
  EXPECT_NE(log.find("standard output"), std::string::npos) << log;
  EXPECT_EQ(test::run_command("{ " + info_cmd() + " --json - > /dev/full; }", &log), 1) << log;
  EXPECT_NE(log.find("standard output"), std::string::npos) << log;
  // Written normally: exit 0.
  EXPECT_EQ(test::run_command(test::clipes_binary() + " classes voc > /dev/null", &log), 0) << log;
}

}  // namespace
}  // namespace clipes
