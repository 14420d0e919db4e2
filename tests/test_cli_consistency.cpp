// One consistent CLI (issue: a researcher's tool, item 4): version, typo
// suggestions, unknown commands, `clipes classes`.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "test_support.h"

namespace clipes {
namespace {

std::string run_ok(const std::string& args, int expected_code) {
  std::string log;
  EXPECT_EQ(test::run_command(test::clipes_binary() + " " + args, &log), expected_code) << args << "\n" << log;
  return log;
}

TEST(CliConsistency, VersionAsCommandAndFlag) {
  const std::string flag = run_ok("--version", 0);
  const std::string command = run_ok("version", 0);
  EXPECT_EQ(flag.rfind("clipes ", 0), 0u) << flag;
  EXPECT_EQ(command.rfind(flag.substr(0, flag.find('\n')), 0), 0u) << command;
  EXPECT_NE(command.find("libtorch "), std::string::npos) << command;
}

TEST(CliConsistency, UnknownCommandIsExitTwoWithASuggestion) {
  const std::string log = run_ok("genrate --model x", 2);
  EXPECT_NE(log.find("unknown command 'genrate' (did you mean 'generate'?)"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

TEST(CliConsistency, AMisspeltOptionIsNamedWithTheLikelyIntent) {
  const std::string log = run_ok("generate --modle m.pt --vocab v --out o --image i --labels cat", 2);
  EXPECT_NE(log.find("unknown option --modle for 'generate' (did you mean --model?)"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  // Nested commands know their own options.
  const std::string nested = run_ok("prompts rank --vocab v --modell m --dataset d", 2);
  EXPECT_NE(nested.find("did you mean --model?"), std::string::npos) << nested;
  // A missing option with no typo keeps CLI11's own message.
  const std::string missing = run_ok("generate --vocab v --out o --image i --labels cat", 2);
  EXPECT_NE(missing.find("--model is required"), std::string::npos) << missing;
}

TEST(CliConsistency, LimitZeroIsAnErrorEverywhereNeverAll) {
  for (const std::string& args : {std::string("generate --model m --vocab v --out o --image i --labels cat --limit 0"),
                                  std::string("segment --model m --vocab v --out o --image i --limit 0"),
                                  std::string("visualize --out o --limit 0"),
                                  std::string("prompts rank --model m --vocab v --dataset d --limit 0")}) {
    const std::string log = run_ok(args, 2);
    EXPECT_NE(log.find("--limit"), std::string::npos) << args << ": " << log;
    // Issue 26 friction: CLI11's PositiveNumber printed DBL_MAX written out.
    EXPECT_NE(log.find("must be at least 1, got 0"), std::string::npos) << args << ": " << log;
    EXPECT_LT(log.size(), 200u) << args << ": " << log;
  }
}

TEST(CliConsistency, RealValuedOptionsTakeFractionsAndRefuseZeroShortly) {
  // --bg-power is real: α = 0.5 must be accepted (a whole-number check would refuse it).
  // Past the option checks, the run fails on the missing model, not on --bg-power.
  const std::string ok = run_ok("generate --model /nonexistent/m.pt --vocab v --out o --image i --labels cat --bg-power 0.5", 2);
  EXPECT_EQ(ok.find("--bg-power"), std::string::npos) << ok;
  const std::string zero = run_ok("generate --model m --vocab v --out o --image i --labels cat --bg-power 0", 2);
  EXPECT_NE(zero.find("must be a number > 0, got 0"), std::string::npos) << zero;
  EXPECT_LT(zero.size(), 200u) << zero;
}

TEST(CliConsistency, ThreadsAboveTheCoreCountAreClampedWithAWarning) {
  // Issue 26 friction: --threads 1000 was taken as asked (model load 58 s instead of 1 s).
  const std::string log = run_ok("info --model " + test::tiny_clip_path() + " --threads 1000", 0);
  EXPECT_NE(log.find("--threads 1000 is more than the"), std::string::npos) << log;
  EXPECT_NE(log.find("core(s) here; using"), std::string::npos) << log;
}

TEST(CliConsistency, JsonDashIsStdoutInEveryCommandAndFileOtherwise) {
  const std::string dir = test::make_temp_dir("cli-json");
  const std::string model = " --model " + test::tiny_clip_path();
  // info: --json alone, --json - and --json FILE.
  const std::string alone = run_ok("info" + model + " --json", 0);
  EXPECT_EQ(alone.rfind("{", 0), 0u) << alone;
  const std::string dash = run_ok("info --json -" + model, 0);
  EXPECT_EQ(dash, alone);
  run_ok("info" + model + " --json " + dir + "/info.json", 0);
  EXPECT_TRUE(std::filesystem::is_regular_file(dir + "/info.json"));
  // eval: "-" is stdout (JSON only), never a file named "-".
  const std::string gt = test::shared("data/coco-tiny/annotations");
  std::string log;
  ASSERT_EQ(test::run_command("cd " + dir + " && " + test::clipes_binary() + " -q generate" + model + " --vocab " +
                                  test::vocab_path() + " --dataset " + test::shared("data/coco-tiny") +
                                  " --format coco --limit 2 --out " + dir + "/run",
                              &log),
            0)
      << log;
  std::string json;
  test::run_command("cd " + dir + " && " + test::clipes_binary() + " -q eval --pred " + dir + "/run --gt " +
                        test::shared("data/coco-tiny") + " --json -",
                    &json);
  EXPECT_FALSE(std::filesystem::exists(dir + "/-"));
  EXPECT_EQ(json.rfind("{", 0), 0u) << json;
  EXPECT_NE(json.find("\"miou\""), std::string::npos) << json;
}

TEST(CliConsistency, QuietInfoWithAJsonFilePrintsNothing) {
  // Issue 26 friction: `-q info --json PATH` still printed the table.
  const std::string dir = test::make_temp_dir("cli-quiet-info");
  const std::string out = run_ok("-q info --model " + test::tiny_clip_path() + " --json " + dir + "/info.json", 0);
  EXPECT_EQ(out, "") << out;
  EXPECT_TRUE(std::filesystem::is_regular_file(dir + "/info.json"));
  // Without -q the table is still there.
  EXPECT_NE(run_ok("info --model " + test::tiny_clip_path() + " --json " + dir + "/again.json", 0).find("format:"),
            std::string::npos);
}

TEST(CliConsistency, QuietEvalPrintsNoTable) {
  const std::string dir = test::make_temp_dir("cli-quiet");
  std::string log;
  ASSERT_EQ(test::run_command(test::clipes_binary() + " -q generate --model " + test::tiny_clip_path() + " --vocab " +
                                  test::vocab_path() + " --dataset " + test::shared("data/coco-tiny") +
                                  " --format coco --limit 2 --out " + dir + "/run",
                              &log),
            0)
      << log;
  std::string out;
  test::run_command(test::clipes_binary() + " -q eval --pred " + dir + "/run --gt " + test::shared("data/coco-tiny") +
                        " 2>/dev/null",
                    &out);
  EXPECT_EQ(out.find("mIoU"), std::string::npos) << out;
}

TEST(CliConsistency, DryRunChecksEverythingAndWritesNothing) {
  const std::string dir = test::make_temp_dir("cli-dry");
  for (const std::string command : {"generate", "segment"}) {
    const std::string out = dir + "/" + command;
    const std::string log = run_ok("-q " + command + " --model " + test::tiny_clip_path() + " --vocab " +
                                       test::vocab_path() + " --dataset " + test::shared("data/coco-tiny") +
                                       " --format coco --limit 5 --dry-run --out " + out,
                                   0);
    EXPECT_NE(log.find("to compute:         5"), std::string::npos) << log;
    EXPECT_FALSE(std::filesystem::exists(out + "/settings.json")) << command;
    EXPECT_FALSE(std::filesystem::exists(out + "/masks")) << command;
  }
  // A bad option value is still found.
  run_ok("-q segment --model " + test::tiny_clip_path() + " --vocab " + test::vocab_path() + " --dataset " +
             test::shared("data/coco-tiny") + " --format coco --dry-run --templates nosuchfile --out " + dir + "/x",
         2);
}

TEST(CliConsistency, AClassSetTheDatasetDoesNotMatchFailsOnceWithAHint) {
  const std::string dir = test::make_temp_dir("cli-hint");
  std::string log;
  ASSERT_EQ(test::run_command(std::string(CLIPES_TOOL_DIR) + "/make_toy_dataset --out " + dir +
                                  "/val --count 4 --seed 2 --split val",
                              &log),
            0)
      << log;
  const std::string out = run_ok("generate --model " + test::tiny_clip_path() + " --vocab " + test::vocab_path() +
                                     " --dataset " + dir + "/val --format voc --split val --out " + dir + "/out",
                                 2);
  EXPECT_NE(out.find("no image's labels belong to the class set voc"), std::string::npos) << out;
  EXPECT_NE(out.find("pass --classes toy"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

TEST(CliConsistency, ClassifyTakesClassSetsLikeEveryOtherCommand) {
  const std::string json = run_ok("classify --model " + test::tiny_clip_path() + " --vocab " + test::vocab_path() +
                                      " --image " + test::shared("fixtures/parity/coco6/images/000000020992.jpg") +
                                      " --classes voc --json -",
                                  0);
  size_t n = 0;
  for (size_t at = json.find("\"class\""); at != std::string::npos; at = json.find("\"class\"", at + 1)) ++n;
  EXPECT_EQ(n, 20u) << json;  // the 20 VOC classes, not one class called "voc"
  EXPECT_NE(json.find("dining"), std::string::npos) << json;
}

TEST(CliConsistency, ClassesListsAClassSet) {
  const std::string toy = run_ok("classes toy", 0);
  EXPECT_NE(toy.find("8 classes"), std::string::npos) << toy;
  EXPECT_NE(toy.find("crescent  [crescent,moon]"), std::string::npos) << toy;
  EXPECT_NE(toy.find("grass, water"), std::string::npos) << toy;
  const std::string list = run_ok("classes \"background,cat,dog\"", 0);
  EXPECT_NE(list.find("2 classes"), std::string::npos) << list;
  const std::string bad = run_ok("classes nosuchset", 2);
  EXPECT_NE(bad.find("nosuchset"), std::string::npos) << bad;
}

}  // namespace
}  // namespace clipes
