// Hostile input through the real binary: every case of the hardening pass
// (README "Bad input") that a user can feed in. Each test names the promise
// it checks; all use the tiny fixture CLIP, so they are quick.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <zlib.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <iostream>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <torch/torch.h>

#include "clipes/model/checkpoint.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/file_checks.h"
#include "clipes/util/strings.h"
#include "test_support.h"

namespace clipes {
namespace {
namespace fs = std::filesystem;

std::string coco6_image(const std::string& stem) {
  return test::shared("fixtures/parity/coco6/images/" + stem + ".jpg");
}

// Single quotes for /bin/sh: any bytes but the quote itself pass unchanged.
std::string q(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string generate_command(const std::string& out) {
  return test::clipes_binary() + " generate --model " + q(test::tiny_clip_path()) + " --vocab " +
         q(test::vocab_path()) + " --out " + q(out);
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

// Runs `command` with stdout and stderr captured separately.
struct Result {
  int code;
  std::string out, err;
};
Result run(const std::string& command, const std::string& dir) {
  const std::string out_file = dir + "/.stdout", err_file = dir + "/.stderr";
  std::string ignored;
  // run_command appends 2>&1; the inner exec redirects first and wins.
  const int code = test::run_command("(exec 2>" + q(err_file) + "; " + command + " >" + q(out_file) + ")", &ignored);
  return {code, read_file(out_file), read_file(err_file)};
}

int count_lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));  // throws if not valid JSON
  return lines;
}

// A folder dataset: `good` copies of a real image and `bad` files of garbage,
// listed in a CSV labels file. Returns the folder.
std::string folder_dataset(const std::string& dir, int good, int bad, const std::string& bad_prefix = "bad") {
  const std::string images = dir + "/images";
  fs::create_directories(images);
  std::string csv = "image,labels\n";
  for (int i = 0; i < good; ++i) {
    fs::copy_file(coco6_image("000000010764"), images + "/good" + std::to_string(i) + ".jpg");
    csv += "good" + std::to_string(i) + ".jpg,person\n";
  }
  for (int i = 0; i < bad; ++i) {
    const std::string name = bad_prefix + std::to_string(i) + ".jpg";
    write_bytes(images + "/" + name, "this is not a JPEG");
    csv += name + ",person\n";
  }
  write_bytes(dir + "/labels.csv", csv);
  return images;
}

// ---- non-UTF-8 file names --------------------------------------------------

const std::string kLatin1 = "caf\xe9";  // "café" in Latin-1: not UTF-8

TEST(Hardening, AFailingImageWithALatin1NameIsRecordedLosslessly) {
  // Before: nlohmann threw type_error 316 in the failure log while workers
  // ran, and the process aborted (exit 134).
  const std::string dir = test::make_temp_dir("latin1-fail");
  const std::string images = folder_dataset(dir, 1, 0);
  write_bytes(images + "/" + kLatin1 + ".jpg", "garbage");
  write_bytes(dir + "/labels.csv", "good0.jpg,person\n" + kLatin1 + ".jpg,person\n");
  const Result r = run(generate_command(dir + "/out") + " --dataset " + q(images) + " --format folder --labels-file " +
                           q(dir + "/labels.csv"),
                       dir);
  EXPECT_EQ(r.code, 0) << r.err;
  const auto lines = read_jsonl(dir + "/out/failures.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["id"], "caf\\xe9");
  EXPECT_EQ(lines[0]["id_hex"], "636166e9");  // the exact bytes, recoverable
  EXPECT_EQ(lines[0]["stage"], "decode");
  EXPECT_TRUE(is_valid_utf8(lines[0]["image"].get<std::string>()));
  const auto run_json = nlohmann::json::parse(read_file(dir + "/out/run.json"));
  EXPECT_EQ(run_json["counts"]["failed"], 1);
}

TEST(Hardening, ASucceedingImageWithALatin1NameWritesRunJson) {
  // Before: exit 2 with nlohmann's raw message and no run.json.
  const std::string dir = test::make_temp_dir("latin1-ok");
  const std::string image = dir + "/" + kLatin1 + ".jpg";
  fs::copy_file(coco6_image("000000010764"), image);
  const Result r = run(generate_command(dir + "/out") + " --image " + q(image) + " --labels person", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/out/masks/" + kLatin1 + ".png"));
  const auto run_json = nlohmann::json::parse(read_file(dir + "/out/run.json"));
  EXPECT_EQ(run_json["input"]["image_hex"], to_hex(image));
}

TEST(Hardening, ClassifyJsonWithALatin1Name) {
  const std::string dir = test::make_temp_dir("latin1-classify");
  const std::string image = dir + "/" + kLatin1 + ".jpg";
  fs::copy_file(coco6_image("000000010764"), image);
  const Result r = run(test::clipes_binary() + " classify --model " + q(test::tiny_clip_path()) + " --vocab " +
                           q(test::vocab_path()) + " --image " + q(image) + " --classes dog,cat --json",
                       dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["image_hex"], to_hex(image));
  EXPECT_EQ(j["predictions"].size(), 2u);
}

// ---- decompression bombs and the memory an accepted image may take ---------

// A valid RGB PNG of width×height zeros, made by streaming zlib over zero rows:
// a few MB on disk for a 30000×30000 image.
std::string zero_png(int width, int height) {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                       static_cast<char>(v)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    const std::string body = type + data;
    const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()));
    return be32(static_cast<uint32_t>(data.size())) + body + be32(static_cast<uint32_t>(crc));
  };
  std::string ihdr = be32(width) + be32(height) + std::string{8, 2, 0, 0, 0};  // 8-bit RGB
  z_stream z{};
  deflateInit(&z, 1);
  const std::vector<Bytef> row(static_cast<size_t>(width) * 3 + 1, 0);  // filter byte + pixels
  std::string idat;
  std::vector<Bytef> buf(1 << 16);
  for (int y = 0; y <= height; ++y) {
    z.next_in = const_cast<Bytef*>(row.data());
    z.avail_in = y < height ? static_cast<uInt>(row.size()) : 0;
    const int flush = y < height ? Z_NO_FLUSH : Z_FINISH;
    do {
      z.next_out = buf.data();
      z.avail_out = static_cast<uInt>(buf.size());
      deflate(&z, flush);
      idat.append(reinterpret_cast<char*>(buf.data()), buf.size() - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) + chunk("IDAT", idat) + chunk("IEND", "");
}

int64_t children_peak_rss_mb() {
  struct rusage usage {};
  getrusage(RUSAGE_CHILDREN, &usage);
  return usage.ru_maxrss / 1024;  // KiB on Linux
}

TEST(Hardening, ADecompressionBombIsRefusedFromItsHeaderAndTheBatchGoesOn) {
  // Before: a 2.6 MB PNG of 30000×30000 zeros drove generate past 15 GB of RSS,
  // and under an address-space limit ended the batch with an allocator message
  // that named no file.
  const std::string dir = test::make_temp_dir("bomb");
  const std::string images = folder_dataset(dir, 1, 0);
  write_bytes(images + "/bomb.png", zero_png(30000, 30000));
  write_bytes(dir + "/labels.csv", "good0.jpg,person\nbomb.png,person\n");
  const Result r = run(generate_command(dir + "/out") + " --dataset " + q(images) + " --format folder --labels-file " +
                           q(dir + "/labels.csv"),
                       dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/out/masks/good0.png"));
  const auto lines = read_jsonl(dir + "/out/failures.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["id"], "bomb");
  EXPECT_NE(lines[0]["reason"].get<std::string>().find("30000×30000"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0]["reason"].get<std::string>().find("--max-pixels"), std::string::npos) << lines[0];
  EXPECT_LT(children_peak_rss_mb(), 3 * 1024);
}

TEST(Hardening, AnImageAtThePixelLimitStaysUnderThreeGigabytes) {
  // The largest image the default --max-pixels accepts (40 MP), two labels:
  // the full-size work (decode, CAMs resized back, mask, confidence, PNG
  // encoding) must stay bounded. The tiny fixture model adds little; the
  // ViT-B/16 trunk is capped by --max-tokens and measured by `clipes bench`.
  const std::string dir = test::make_temp_dir("max-pixels");
  cv::Mat big(5000, 8000, CV_8UC3);
  cv::randu(big, cv::Scalar::all(0), cv::Scalar::all(255));
  cv::GaussianBlur(big, big, cv::Size(31, 31), 0);
  ASSERT_TRUE(cv::imwrite(dir + "/big.jpg", big));
  big.release();
  const Result r = run(generate_command(dir + "/out") + " --image " + q(dir + "/big.jpg") + " --labels person,dog", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/out/masks/big.png"));
  const int64_t peak_mb = children_peak_rss_mb();
  std::cout << "[memory] 8000x5000 (40 MP), 2 labels: generate peak RSS " << peak_mb << " MB\n";
  EXPECT_LT(peak_mb, 3 * 1024);
  // One pixel more than the limit is refused.
  const Result over = run(generate_command(dir + "/out2") + " --image " + q(dir + "/big.jpg") +
                              " --labels person --max-pixels 39999999",
                          dir);
  EXPECT_EQ(over.code, 1);
  EXPECT_NE(over.err.find("over the pixel limit"), std::string::npos) << over.err;
}

// ---- vocabulary files ------------------------------------------------------

TEST(Hardening, ATruncatedVocabularyIsRefused) {
  // Before: Z_BUF_ERROR was ignored, 24,667 of 48,894 merges loaded and
  // "hippopotamus" tokenized wrongly with exit 0.
  const std::string dir = test::make_temp_dir("vocab-cut");
  const std::string full = read_file(test::vocab_path());
  write_bytes(dir + "/cut.txt.gz", full.substr(0, full.size() / 2));
  const Result r = run(test::clipes_binary() + " tokenize --vocab " + q(dir + "/cut.txt.gz") + " hippopotamus", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cut.txt.gz: truncated gzip"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
}

TEST(Hardening, AGzipOfArbitraryTextIsRefused) {
  const std::string dir = test::make_temp_dir("vocab-text");
  ASSERT_EQ(test::run_command("printf 'hello world\\nthis is just text\\n' | gzip -c > " + q(dir + "/text.gz"), nullptr), 0);
  const Result r = run(test::clipes_binary() + " tokenize --vocab " + q(dir + "/text.gz") + " dog", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("not a CLIP BPE vocabulary"), std::string::npos) << r.err;
}

TEST(Hardening, AVocabularyThatDoesNotFitTheModelIsOneLineNamingBoth) {
  // Before: --vocab toy with a real-sized model ran with nonsense; the reverse
  // ended with "index out of range in self".
  const std::string dir = test::make_temp_dir("vocab-model");
  const std::string toy_vocab = test::source_dir() + "/models/toy-vocab.txt.gz";
  const std::string toy_model = test::source_dir() + "/models/toy-clip.pt";
  const Result a = run(test::clipes_binary() + " generate --model " + q(test::tiny_clip_path()) + " --vocab " +
                           q(toy_vocab) + " --out " + q(dir + "/a") + " --image " + q(coco6_image("000000010764")) +
                           " --labels person",
                       dir);
  EXPECT_EQ(a.code, 2);
  const std::string error_line = a.err.substr(a.err.find("clipes: error: "));
  EXPECT_NE(error_line.find("toy-vocab.txt.gz"), std::string::npos) << a.err;
  EXPECT_NE(error_line.find("tiny-clip-a.pt"), std::string::npos) << a.err;
  EXPECT_EQ(count_lines(error_line), 1) << a.err;
  const Result b = run(test::clipes_binary() + " classify --model " + q(toy_model) + " --vocab " +
                           q(test::vocab_path()) + " --image " + q(coco6_image("000000010764")) + " --classes dog,cat",
                       dir);
  EXPECT_EQ(b.code, 2);
  EXPECT_NE(b.err.find("toy-clip.pt"), std::string::npos) << b.err;
  EXPECT_EQ(b.err.find("index out of range"), std::string::npos) << b.err;
}

// ---- folders where files are expected, one class-name rule -----------------

TEST(Hardening, AFolderGivenAsLabelsFileOrListIsAnError) {
  // Before: "0 images listed" and exit 0.
  const std::string dir = test::make_temp_dir("dir-as-file");
  const std::string images = folder_dataset(dir, 1, 0);
  const Result a = run(generate_command(dir + "/out") + " --dataset " + q(images) + " --format folder --labels-file " +
                           q(dir),
                       dir);
  EXPECT_EQ(a.code, 2);
  EXPECT_NE(a.err.find("is a folder, not a file"), std::string::npos) << a.err;
  fs::create_directories(dir + "/voc/JPEGImages");
  const Result b = run(generate_command(dir + "/out") + " --dataset " + q(dir + "/voc") + " --format voc --list " +
                           q(dir),
                       dir);
  EXPECT_EQ(b.code, 2);
  EXPECT_NE(b.err.find("is a folder, not a file"), std::string::npos) << b.err;
}

TEST(Hardening, EvalResolvesBuiltInClassNamesLikeGenerate) {
  // Before: a ./toy folder in the working directory made `eval --classes toy` fail.
  const std::string dir = test::make_temp_dir("class-rule");
  fs::create_directories(dir + "/toy");
  fs::create_directories(dir + "/gt");
  fs::create_directories(dir + "/pred");
  cv::Mat mask(8, 8, CV_8UC1, cv::Scalar(0));
  mask(cv::Rect(0, 0, 4, 4)).setTo(1);
  cv::imwrite(dir + "/gt/a.png", mask);
  cv::imwrite(dir + "/pred/a.png", mask);
  const Result r = run("cd " + q(dir) + " && " + test::clipes_binary() + " eval --pred pred --gt gt --classes toy", dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("mIoU 100.00"), std::string::npos) << r.out;
}

// ---- ids that would escape OUT ---------------------------------------------

TEST(Hardening, VisualizeIdsGoThroughTheSafetyCheck) {
  // Before: --ids ../x wrote OUT/vis/../x.jpg, outside OUT/vis.
  const std::string dir = test::make_temp_dir("vis-ids");
  const std::string out = dir + "/out";
  fs::create_directories(out + "/masks");
  fs::copy_file(coco6_image("000000010764"), dir + "/x.jpg");
  const Result r = run(test::clipes_binary() + " visualize --out " + q(out) + " --images " + q(dir) + " --ids ../x", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unsafe image id '../x'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out + "/x.jpg"));
}

// ---- COCO split -------------------------------------------------------------

TEST(Hardening, GenerateHonoursTheCocoSplit) {
  // Before: with several instances_*.json, generate ignored --split (eval honoured it).
  const std::string dir = test::make_temp_dir("coco-split");
  fs::create_directories(dir + "/annotations");
  fs::create_directories(dir + "/a");
  fs::create_directories(dir + "/b");
  fs::copy_file(coco6_image("000000010764"), dir + "/b/000000010764.jpg");
  const std::string categories = R"("categories": [{"id": 1, "name": "person"}])";
  write_bytes(dir + "/annotations/instances_a.json", R"({"images": [], "annotations": [], )" + categories + "}");
  write_bytes(dir + "/annotations/instances_b.json",
              R"({"images": [{"id": 7, "file_name": "000000010764.jpg", "height": 480, "width": 640}],
                  "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "area": 4,
                                   "bbox": [0, 0, 2, 2], "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]}], )" +
                  categories + "}");
  const Result r = run(generate_command(dir + "/out") + " --dataset " + q(dir) + " --format coco --split b --classes coco", dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/out/masks/000000010764.png")) << r.err;
  const Result missing = run(generate_command(dir + "/out2") + " --dataset " + q(dir) + " --format coco --split c", dir);
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("instances_c.json: no such file"), std::string::npos) << missing.err;
}

// ---- exit codes from the final state of OUT -----------------------------------

TEST(Hardening, ExitCodeIsTheSameOnEveryRerun) {
  // Before: 8 bad + 2 good exited 0 on the first run and 1 on the rerun.
  const std::string dir = test::make_temp_dir("exit-codes");
  const std::string images = folder_dataset(dir, 2, 8);
  const std::string cmd =
      generate_command(dir + "/out") + " --dataset " + q(images) + " --format folder --labels-file " + q(dir + "/labels.csv");
  const Result first = run(cmd, dir);
  const Result second = run(cmd, dir);
  EXPECT_EQ(first.code, 0) << first.err;
  EXPECT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(read_jsonl(dir + "/out/failures.jsonl").size(), 8u);  // the rerun's own record, not lost
  // Nothing producible at all: 1, on every run.
  const std::string dir2 = test::make_temp_dir("exit-codes-none");
  const std::string images2 = folder_dataset(dir2, 0, 3);
  const std::string cmd2 = generate_command(dir2 + "/out") + " --dataset " + q(images2) +
                           " --format folder --labels-file " + q(dir2 + "/labels.csv");
  EXPECT_EQ(run(cmd2, dir2).code, 1);
  EXPECT_EQ(run(cmd2, dir2).code, 1);
}

// ---- a full disk --------------------------------------------------------------

TEST(Hardening, AFullDiskLosesNoFailureRecordAndLeavesNoCamsWithoutAMask) {
  // `ulimit -f` makes every write past the limit fail with EFBIG, as a full
  // disk fails with ENOSPC. Before: exit 0 with 8 of 10 images failed, and an
  // empty failures.jsonl (records lost) when nothing could be written.
  const std::string dir = test::make_temp_dir("full-disk");
  const std::string images = folder_dataset(dir, 3, 0);
  const std::string cmd = generate_command(dir + "/out") + " --dataset " + q(images) +
                          " --format folder --labels-file " + q(dir + "/labels.csv") + " --save-cams";
  fs::create_directories(dir + "/out");
  // 0 blocks, a disk already full: not one byte can be written. That is
  // found before any work (settings.json is written before the model loads):
  // one line naming the file and the real errno, exit 2. stderr goes
  // through run_command's pipe, which the limit does not cover.
  std::string err;
  EXPECT_EQ(test::run_command("ulimit -f 0; " + cmd, &err), 2) << err;
  EXPECT_NE(err.find("settings.json: cannot write: File too large"), std::string::npos) << err;  // not "Success"
  // The failure log itself unwritable (a folder in its place) while every
  // image fails to write (masks/ is a file): every record reaches stderr.
  const std::string out2 = dir + "/out2";
  fs::create_directories(out2 + "/failures.jsonl");
  write_file_atomic(out2 + "/masks", "in the way");
  const std::string cmd2 = generate_command(out2) + " --dataset " + q(images) + " --format folder --labels-file " +
                           q(dir + "/labels.csv");
  EXPECT_EQ(test::run_command(cmd2, &err), 1) << err;
  EXPECT_NE(err.find("cannot write the failure log"), std::string::npos) << err;
  for (int i = 0; i < 3; ++i) EXPECT_NE(err.find("failed: good" + std::to_string(i)), std::string::npos) << err;
  // 8 blocks: the small keys.npy fits, the CAM arrays and masks do not.
  std::string partial_err;
  EXPECT_EQ(test::run_command("ulimit -f 8; " + cmd, &partial_err), 1) << partial_err;
  const auto records = read_jsonl(dir + "/out/failures.jsonl");
  ASSERT_EQ(records.size(), 3u) << partial_err;
  for (const auto& record : records) {
    EXPECT_EQ(record["stage"], "write") << record;
    EXPECT_NE(record["reason"].get<std::string>().find("File too large"), std::string::npos) << record;
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir + "/out/cams", ec)) {
    const std::string name = entry.path().filename().string();
    const std::string stem = name.substr(0, name.rfind('_'));
    EXPECT_TRUE(fs::exists(dir + "/out/masks/" + stem + ".png")) << name << " has no mask";
  }
}

// ---- messages -------------------------------------------------------------------

TEST(Hardening, RenameFailureNamesTheRealErrno) {
  // Before: "cannot rename temporary file: Success" (errno overwritten by the cleanup).
  const std::string dir = test::make_temp_dir("rename");
  fs::create_directories(dir + "/target/child");  // rename over a non-empty folder fails
  try {
    write_file_atomic(dir + "/target", "x");
    FAIL() << "renamed over a folder";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot rename temporary file"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("Success"), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(dir + "/target.tmp-" + std::to_string(::getpid())));
}

TEST(Hardening, ASymlinkLoopIsReportedAsOne) {
  const std::string dir = test::make_temp_dir("loop");
  fs::create_symlink(dir + "/b", dir + "/a");
  fs::create_symlink(dir + "/a", dir + "/b");
  EXPECT_NE(why_not_a_readable_file(dir + "/a").find("symbolic links"), std::string::npos);
  try {
    read_file(dir + "/a");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("symbolic links"), std::string::npos) << e.what();
  }
}

TEST(Hardening, ControlCharactersInPathsKeepErrorsOnOneLine) {
  const std::string dir = test::make_temp_dir("ctrl");
  const Result r = run(generate_command(dir + "/out") + " --image " + q(dir + "/a\nb.jpg") + " --labels person", dir);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("a\\x0ab.jpg"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
}

TEST(Hardening, SingleImageModeSaysWhyOnStderr) {
  const std::string dir = test::make_temp_dir("single-why");
  write_bytes(dir + "/broken.jpg", "\xff\xd8\xff\xe0 not really");
  const Result r = run(generate_command(dir + "/out") + " --image " + q(dir + "/broken.jpg") + " --labels person", dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("broken.jpg: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cannot decode image"), std::string::npos) << r.err;
}

TEST(Hardening, ArgumentErrorsComeBeforeTheModelLoads) {
  // The model path does not exist: an argument error must be reported first.
  const std::string dir = test::make_temp_dir("args-first");
  const std::string image = coco6_image("000000010764");
  const std::string base = test::clipes_binary() + " generate --model " + q(dir + "/no-model.pt") + " --vocab " +
                           q(test::vocab_path()) + " --image " + q(image) + " --labels person";
  const Result shard = run(base + " --out " + q(dir + "/out") + " --shard 5/2", dir);
  EXPECT_EQ(shard.code, 2);
  EXPECT_NE(shard.err.find("--shard 5/2"), std::string::npos) << shard.err;
  write_bytes(dir + "/file", "x");
  const Result out_file = run(base + " --out " + q(dir + "/file"), dir);
  EXPECT_EQ(out_file.code, 2);
  EXPECT_NE(out_file.err.find("is not a folder"), std::string::npos) << out_file.err;
}

// ---- option values ---------------------------------------------------------------

TEST(Hardening, OptionValuesAreChecked) {
  const std::string dir = test::make_temp_dir("values");
  const std::string base = generate_command(dir + "/out") + " --image " + q(coco6_image("000000010764")) + " --labels person";
  for (const std::string bad : {"--ignore-below 3", "--box-threshold 7", "--bg-power -2", "--bg-power 0",
                                "--max-tokens -1", "--max-pixels 0", "--limit -5", "--threads -1"}) {
    SCOPED_TRACE(bad);
    const Result r = run(base + " " + bad, dir);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(bad.substr(0, bad.find(' '))), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(dir + "/out/masks"));
}

// ---- eval and values outside the class set -------------------------------------

// `clipes eval --classes voc` of one 8×8 prediction against one ground truth
// in folders under `dir`; the report is dir/report.json.
Result eval_one_mask(const std::string& dir, const cv::Mat& gt, const cv::Mat& pred) {
  fs::create_directories(dir + "/gt");
  fs::create_directories(dir + "/pred");
  cv::imwrite(dir + "/gt/a.png", gt);
  cv::imwrite(dir + "/pred/a.png", pred);
  return run(test::clipes_binary() + " eval --pred " + q(dir + "/pred") + " --gt " + q(dir + "/gt") +
                 " --classes voc --json " + q(dir + "/report.json"),
             dir);
}

TEST(Hardening, EvalWarnsAboutPredictedValuesOutsideTheClassSet) {
  const std::string dir = test::make_temp_dir("eval-outside");
  cv::Mat gt(8, 8, CV_8UC1, cv::Scalar(0));
  gt(cv::Rect(0, 0, 4, 4)).setTo(1);
  cv::Mat pred = gt.clone();
  pred(cv::Rect(4, 4, 2, 2)).setTo(77);  // no VOC class has value 77
  const Result r = eval_one_mask(dir, gt, pred);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("no class of the set"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_file(dir + "/report.json"));
  ASSERT_EQ(j["predicted_outside_class_set"].size(), 1u);
  EXPECT_EQ(j["predicted_outside_class_set"][0]["value"], 77);
  EXPECT_EQ(j["predicted_outside_class_set"][0]["pixels"], 4);
}

TEST(Hardening, EvalWarnsAboutGroundTruthValuesOutsideTheClassSet) {
  // Issue 26 friction: GT values no class has were ignored without a word.
  const std::string dir = test::make_temp_dir("eval-gt-outside");
  cv::Mat gt(8, 8, CV_8UC1, cv::Scalar(0));
  gt(cv::Rect(0, 0, 4, 4)).setTo(1);
  const cv::Mat pred = gt.clone();
  gt(cv::Rect(4, 4, 3, 2)).setTo(40);   // no VOC class has value 40
  gt(cv::Rect(0, 6, 2, 2)).setTo(255);  // the ignore value: no warning
  const Result r = eval_one_mask(dir, gt, pred);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("the ground truth holds values that are no class of the set"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" 40 (6 px)"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_file(dir + "/report.json"));
  ASSERT_EQ(j["gt_outside_class_set"].size(), 1u);
  EXPECT_EQ(j["gt_outside_class_set"][0]["value"], 40);
  EXPECT_EQ(j["gt_outside_class_set"][0]["pixels"], 6);
}

}  // namespace
}  // namespace clipes

namespace clipes {
namespace {

// ---- any patch size (issue 26 item 7) --------------------------------------------

// tiny-clip-a with conv1 and the position embedding re-made (seeded) for
// `patch` px patches at 224 px, saved as an OpenCLIP state dict: the shape of
// a ViT-B/32 or ViT-L/14 checkpoint at fixture size.
std::string tiny_clip_with_patch(int patch, const std::string& dir) {
  TensorMap t = load_checkpoint(test::tiny_clip_path()).tensors;
  torch::manual_seed(patch);
  const int64_t width = t.at("visual.conv1.weight").size(0), grid = 224 / patch;
  t["visual.conv1.weight"] = torch::randn({width, 3, patch, patch}) * 0.02;
  t["visual.positional_embedding"] = torch::randn({1 + grid * grid, width}) * 0.01;
  const std::string path = dir + "/tiny-p" + std::to_string(patch) + ".pt";
  save_state_dict(path, t);
  return path;
}

TEST(Hardening, ModelsWithOtherPatchSizesTakeImagesOfAnySize) {
  // A /32 model (and a /14 one) was accepted, then an image whose 16-rounded
  // side was not a multiple of 32 failed ("multiples of 32") while others
  // worked: the rounding to the patch was fixed at 16 px.
  const std::string dir = test::make_temp_dir("patch-sizes");
  cv::Mat image(70, 100, CV_8UC3);  // 16-rounded: 80 × 112, a multiple of neither 32 nor 14
  cv::randu(image, cv::Scalar::all(0), cv::Scalar::all(255));
  cv::imwrite(dir + "/odd.png", image);
  for (const int patch : {32, 14}) {
    const std::string model = tiny_clip_with_patch(patch, dir);
    const std::string out = dir + "/out" + std::to_string(patch);
    for (const std::string& input : {dir + "/odd.png", coco6_image("000000010764")}) {
      const Result r = run(test::clipes_binary() + " generate --model " + q(model) + " --activation quick-gelu --vocab " +
                               q(test::vocab_path()) + " --out " + q(out) + " --image " + q(input) + " --labels person",
                           dir);
      EXPECT_EQ(r.code, 0) << patch << " " << input << ": " << r.err;
      const std::string stem = fs::path(input).stem().string();
      const cv::Mat mask = cv::imread(out + "/masks/" + stem + ".png", cv::IMREAD_UNCHANGED);
      const cv::Mat original = cv::imread(input);
      ASSERT_FALSE(mask.empty()) << patch << " " << stem;
      EXPECT_EQ(mask.size(), original.size()) << patch << " " << stem;
    }
  }
}

TEST(Hardening, EveryDecodableImageFormatIsFoundInFoldersAndByVisualize) {
  // Issue 26 friction: segment --format folder skipped .tif/.ppm files it can
  // decode, and visualize looked for .jpg/.jpeg/.png only.
  const std::string dir = test::make_temp_dir("all-formats");
  fs::create_directories(dir + "/images");
  const cv::Mat bgr = cv::imread(coco6_image("000000010764"));
  ASSERT_TRUE(cv::imwrite(dir + "/images/a.tif", bgr));
  ASSERT_TRUE(cv::imwrite(dir + "/images/b.ppm", bgr));
  write_bytes(dir + "/images/notes.txt", "not an image");
  const std::string out = dir + "/out";
  const Result r = run(test::clipes_binary() + " segment --model " + q(test::tiny_clip_path()) + " --vocab " +
                           q(test::vocab_path()) + " --dataset " + q(dir + "/images") + " --format folder --classes " +
                           q("person,other") + " --out " + q(out),
                       dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::is_regular_file(out + "/masks/a.png"));
  EXPECT_TRUE(fs::is_regular_file(out + "/masks/b.png"));
  const Result vis = run(test::clipes_binary() + " visualize --out " + q(out) + " --no-gt", dir);
  EXPECT_EQ(vis.code, 0) << vis.err;
  EXPECT_TRUE(fs::is_regular_file(out + "/vis/a.jpg")) << vis.err;
  EXPECT_TRUE(fs::is_regular_file(out + "/vis/b.jpg")) << vis.err;
}

// A VOC root with two images: `a` labelled person, `b` whose XML has an
// <object> without <name>.
std::string voc_with_a_damaged_xml(const std::string& dir) {
  const std::string root = dir + "/VOC";
  for (const char* sub : {"/JPEGImages", "/Annotations", "/ImageSets/Segmentation"}) fs::create_directories(root + sub);
  for (const char* id : {"a", "b"}) fs::copy_file(coco6_image("000000010764"), root + "/JPEGImages/" + id + ".jpg");
  write_bytes(root + "/Annotations/a.xml", "<annotation><object><name>person</name></object></annotation>");
  write_bytes(root + "/Annotations/b.xml", "<annotation><object><pose>Left</pose></object></annotation>");
  write_bytes(root + "/ImageSets/Segmentation/val.txt", "a\nb\n");
  return root;
}

TEST(Hardening, ADamagedVocAnnotationFailsItsImageNotTheRun) {
  // Issue 26 friction: one <object> without <name> ended the run with exit 2.
  const std::string dir = test::make_temp_dir("voc-damaged-xml");
  const std::string root = voc_with_a_damaged_xml(dir);
  const Result r = run(generate_command(dir + "/out") + " --dataset " + q(root) + " --format voc --split val", dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::is_regular_file(dir + "/out/masks/a.png"));
  EXPECT_FALSE(fs::exists(dir + "/out/masks/b.png"));
  const auto failures = read_jsonl(dir + "/out/failures.jsonl");
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0]["id"], "b");
  EXPECT_NE(failures[0]["reason"].get<std::string>().find("b.xml: an <object> has no <name>"), std::string::npos)
      << failures[0];
  // --dry-run says beforehand that b will fail.
  const Result dry = run(generate_command(dir + "/dry") + " --dataset " + q(root) + " --format voc --split val --dry-run", dir);
  EXPECT_EQ(dry.code, 0) << dry.err;
  EXPECT_NE(dry.out.find("to compute:         1\n  a\n"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("will fail, no labels: 1\n  b\n"), std::string::npos) << dry.out;
}

TEST(Hardening, EveryFailureLineNamesItsImage) {
  // Issue 26 friction: "unknown class "unicorn"" did not say which image.
  const std::string dir = test::make_temp_dir("failure-names-image");
  const std::string images = folder_dataset(dir, 1, 0);
  fs::copy_file(images + "/good0.jpg", images + "/odd.jpg");
  std::ofstream(dir + "/labels.csv", std::ios::app) << "odd.jpg,unicorn\n";
  const Result r = run(generate_command(dir + "/out") + " --dataset " + q(images) + " --format folder --labels-file " +
                           q(dir + "/labels.csv"),
                       dir);
  EXPECT_EQ(r.code, 0) << r.err;
  const auto failures = read_jsonl(dir + "/out/failures.jsonl");
  ASSERT_EQ(failures.size(), 1u);
  const std::string reason = failures[0]["reason"];
  EXPECT_EQ(reason.rfind(images + "/odd.jpg: ", 0), 0u) << reason;
  EXPECT_NE(reason.find("unicorn"), std::string::npos) << reason;
  EXPECT_NE(r.err.find(images + "/odd.jpg: "), std::string::npos) << r.err;
}

TEST(Hardening, AnotherCommandsOutputFolderIsRefusedWithAShortReason) {
  // Issue 26 friction: segment into a generate OUT printed a 1,500-character
  // settings diff, and --force-resume then mixed two numberings under one run.json.
  const std::string dir = test::make_temp_dir("command-change");
  const std::string image = coco6_image("000000010764");
  const Result g = run(generate_command(dir + "/out") + " --image " + q(image) + " --labels person", dir);
  ASSERT_EQ(g.code, 0) << g.err;
  const std::string segment = test::clipes_binary() + " segment --model " + q(test::tiny_clip_path()) + " --vocab " +
                              q(test::vocab_path()) + " --image " + q(image) + " --classes voc --out " + q(dir + "/out");
  for (const std::string& extra : {std::string(""), std::string(" --force-resume")}) {
    const Result r = run(segment + extra, dir);
    EXPECT_EQ(r.code, 2) << extra << ": " << r.err;
    EXPECT_NE(r.err.find("holds the outputs of clipes generate, not of clipes segment"), std::string::npos) << r.err;
    EXPECT_LT(r.err.size(), 400u) << r.err;
  }
  // A long settings difference within one command is summarised.
  const Result other = run(generate_command(dir + "/out") + " --image " + q(image) +
                               " --labels person --classes coco --template " + q(std::string(600, 'x') + " {}"),
                           dir);
  EXPECT_EQ(other.code, 2) << other.err;
  EXPECT_NE(other.err.find("other settings"), std::string::npos) << other.err;
  EXPECT_LT(other.err.size(), 700u) << other.err;
}

TEST(Hardening, CudaOnACpuOnlyBuildIsRefusedBeforeAnythingIsWritten) {
  // Issue 27 item 7: LibTorch's own error came after "loading..." and after
  // settings.json was written.
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is visible: --device cuda is valid here";
  const std::string dir = test::make_temp_dir("cuda-on-cpu");
  const Result r = run(generate_command(dir + "/out") + " --image " + q(coco6_image("000000010764")) +
                           " --labels person --device cuda",
                       dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--device cuda: "), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("loading"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/out/settings.json"));
}

}  // namespace
}  // namespace clipes
