// parse_labels_text: the text half of read_folder_dataset (CSV and JSON),
// including files saved by Excel with a UTF-8 byte-order mark.
#include <gtest/gtest.h>

#include <filesystem>

#include "clipes/data/dataset.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace clipes {
namespace {

using Labels = std::vector<std::string>;
const std::string kBom = "\xEF\xBB\xBF";

TEST(LabelsParser, CsvHeaderCommentsQuotesAndBothSeparators) {
  const auto entries = parse_labels_text(
      "image,labels\n# comment\n\na.jpg,cat;dog\n\"b, c.jpg\",\"bird\" , cat,bird\r\nd\n", "labels.csv");
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].image, "a.jpg");
  EXPECT_EQ(entries[0].labels, (Labels{"cat", "dog"}));
  EXPECT_EQ(entries[1].image, "b, c.jpg");
  EXPECT_EQ(entries[1].labels, (Labels{"bird", "cat"}));
  EXPECT_EQ(entries[2].image, "d");
  EXPECT_TRUE(entries[2].labels.empty());
}

// Regression: Excel's "CSV UTF-8" starts the file with EF BB BF. It used to
// hide the header (read as image "\xEF\xBB\xBFimage") and, without a header,
// stick to the first id.
TEST(LabelsParser, CsvWithUtf8BomKeepsHeaderAndFirstId) {
  const auto with_header = parse_labels_text(kBom + "Image,Labels\r\n2007_000032.jpg,aeroplane;person\r\n", "l.csv");
  ASSERT_EQ(with_header.size(), 1u);
  EXPECT_EQ(with_header[0].image, "2007_000032.jpg");
  EXPECT_EQ(with_header[0].labels, (Labels{"aeroplane", "person"}));

  const auto no_header = parse_labels_text(kBom + "2007_000032,dog\n2007_000033,cat\n", "l.csv");
  ASSERT_EQ(no_header.size(), 2u);
  EXPECT_EQ(no_header[0].image, "2007_000032");
  EXPECT_EQ(no_header[1].image, "2007_000033");
}

TEST(LabelsParser, JsonWithUtf8BomIsDetectedAndParsed) {
  // Not named .json: detection looks at the first character, after the BOM.
  const auto entries = parse_labels_text(kBom + " {\"x.png\": [\"cat\", \" cat \", \"\"], \"y\": \"dog\"}", "labels.txt");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].image, "x.png");
  EXPECT_EQ(entries[0].labels, (Labels{"cat"}));
  EXPECT_EQ(entries[1].image, "y");
  EXPECT_EQ(entries[1].labels, (Labels{"dog"}));
}

TEST(LabelsParser, ErrorsNameTheFile) {
  for (const std::string& bad : {std::string("{\"a\": 3}"), std::string("[1]"), std::string("{\"a\": [1]}"),
                                 std::string("{oops")}) {
    try {
      parse_labels_text(bad, "labels.json");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("labels.json: ", 0), 0u) << e.what();
    }
  }
  // Forced formats override the detection.
  EXPECT_EQ(parse_labels_text("{\"a\": 1}", "x.json", LabelsFormat::Csv).size(), 1u);
  EXPECT_THROW(parse_labels_text("a,b", "x.csv", LabelsFormat::Json), Error);
}

// The same through read_folder_dataset: the BOM no longer reaches the id.
TEST(LabelsParser, FolderDatasetReadsBomCsv) {
  const std::string dir = test::make_temp_dir("labels-bom");
  write_file_atomic(dir + "/a.jpg", "not really a jpeg");
  write_file_atomic(dir + "/labels.csv", kBom + "filename,labels\na.jpg,cat\n");
  const auto records = read_folder_dataset(dir, dir + "/labels.csv");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].id, "a");
  EXPECT_EQ(records[0].image_path, (std::filesystem::path(dir) / "a.jpg").string());
  EXPECT_EQ(records[0].labels, (Labels{"cat"}));
}

}  // namespace
}  // namespace clipes
