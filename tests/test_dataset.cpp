// Dataset readers: a tiny VOC tree built here, folder label files, coco-tiny,
// and ids that would escape the output folder.
#include <gtest/gtest.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>

#include "clipes/data/dataset.h"
#include "clipes/data/safe_path.h"
#include "clipes/io/indexed_png.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace clipes {
namespace {

using Labels = std::vector<std::string>;

std::string voc_xml(const std::vector<std::string>& objects) {
  std::string xml = "<annotation><folder>VOC2012</folder><filename>x.jpg</filename>";
  for (const auto& name : objects)
    xml += "<object><name>" + name + "</name><difficult>0</difficult><part><name>head</name></part></object>";
  return xml + "</annotation>\n";
}

// A 3-image VOC tree: one with XML, one with only a SegmentationClass mask,
// one with only a SegmentationClassAug mask (stored as .png image).
std::string make_voc_tree() {
  const std::string root = test::make_temp_dir("voc");
  cv::Mat image(4, 6, CV_8UC3, cv::Scalar(10, 20, 30));
  fs::create_directories(root + "/JPEGImages");
  cv::imwrite(root + "/JPEGImages/2007_000001.jpg", image);
  cv::imwrite(root + "/JPEGImages/2007_000002.jpg", image);
  cv::imwrite(root + "/JPEGImages/2007_000003.png", image);
  write_file_atomic(root + "/Annotations/2007_000001.xml", voc_xml({"person", "dog", "person", "aeroplane"}));
  cv::Mat mask(4, 6, CV_8UC1, cv::Scalar(0));
  mask.at<uint8_t>(0, 0) = 15;  // person
  mask.at<uint8_t>(1, 1) = 255;
  mask.at<uint8_t>(2, 2) = 8;   // cat
  write_indexed_png(root + "/SegmentationClass/2007_000002.png", mask);
  cv::Mat aug(4, 6, CV_8UC1, cv::Scalar(0));
  aug.at<uint8_t>(3, 5) = 20;  // tvmonitor
  write_indexed_png(root + "/SegmentationClassAug/2007_000003.png", aug);
  write_file_atomic(root + "/ImageSets/Segmentation/train.txt", "2007_000001\n2007_000002\r\n\n2007_000003\n");
  write_file_atomic(root + "/ImageSets/Segmentation/val.txt", "2007_000002\n");
  return root;
}

TEST(SafeStem, AcceptsPlainStemsRejectsTraversal) {
  EXPECT_EQ(safe_stem("2007_000032", "list.txt"), "2007_000032");
  EXPECT_EQ(safe_stem("000000532481", "x"), "000000532481");
  EXPECT_EQ(safe_stem("a b.c", "x"), "a b.c");
  for (const std::string& bad : std::vector<std::string>{"", "..", ".", "../x", "/abs", "a/b", "a\\b", ".hidden", std::string("a\0b", 3), "a\nb"}) {
    try {
      safe_stem(bad, "ids.txt");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("ids.txt: unsafe image id '", 0), 0u) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
}

TEST(IdList, TraversalIdsInAListAreRejected) {
  const std::string dir = test::make_temp_dir("idlist");
  write_file_atomic(dir + "/ok.txt", "a 1\n\n b\na\n");
  EXPECT_EQ(read_id_list(dir + "/ok.txt"), (Labels{"a", "b"}));
  for (const std::string bad : {"../x", "/abs", "a/b"}) {
    write_file_atomic(dir + "/bad.txt", "fine\n" + bad + "\n");
    try {
      read_id_list(dir + "/bad.txt");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(dir + "/bad.txt: unsafe image id '" + bad + "'"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(read_id_list(dir + "/missing.txt"), Error);
}

TEST(VocDataset, LabelsFromXmlAndMasks) {
  const std::string root = make_voc_tree();
  const auto records = read_voc_dataset(root);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].id, "2007_000001");
  EXPECT_EQ(records[0].image_path, root + "/JPEGImages/2007_000001.jpg");
  // XML: object names only (not part names), VOC class order, no duplicates.
  EXPECT_EQ(records[0].labels, (Labels{"aeroplane", "dog", "person"}));
  // Mask values 8 and 15; 255 and 0 are not classes.
  EXPECT_EQ(records[1].labels, (Labels{"cat", "person"}));
  EXPECT_EQ(records[2].image_path, root + "/JPEGImages/2007_000003.png");
  EXPECT_EQ(records[2].labels, (Labels{"tvmonitor"}));

  VocOptions xml_only;
  xml_only.label_source = VocOptions::LabelSource::Annotations;
  const auto from_xml = read_voc_dataset(root, xml_only);
  EXPECT_EQ(from_xml[0].labels, records[0].labels);
  EXPECT_TRUE(from_xml[1].labels.empty());

  VocOptions masks_only;
  masks_only.label_source = VocOptions::LabelSource::SegmentationMasks;
  EXPECT_TRUE(read_voc_dataset(root, masks_only)[0].labels.empty());
}

TEST(VocDataset, SplitAndListFile) {
  const std::string root = make_voc_tree();
  VocOptions val;
  val.split = "val";
  const auto records = read_voc_dataset(root, val);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].id, "2007_000002");

  write_file_atomic(root + "/mine.txt", "2007_000003\n2007_000001\n");
  VocOptions listed;
  listed.list_file = root + "/mine.txt";
  const auto mine = read_voc_dataset(root, listed);
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].id, "2007_000003");
  EXPECT_EQ(mine[1].id, "2007_000001");

  VocOptions missing;
  missing.split = "nope";
  try {
    read_voc_dataset(root, missing);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ImageSets/Segmentation/nope.txt"), std::string::npos) << e.what();
  }
}

TEST(VocDataset, BadXmlAndBadMaskValuesNameTheFileAndFailOnlyTheirImage) {
  // A damaged annotation is that image's failure (its label_error), not the
  // end of the listing (issue 26 friction: one <object> without <name> ended the run).
  const std::string root = make_voc_tree();
  write_file_atomic(root + "/Annotations/2007_000001.xml", "<annotation><object><name>dog</name>");
  auto record_of = [&](const std::string& id) {
    for (const auto& r : read_voc_dataset(root))
      if (r.id == id) return r;
    ADD_FAILURE() << id << " not listed";
    return ImageRecord{};
  };
  const ImageRecord bad_xml = record_of("2007_000001");
  EXPECT_TRUE(bad_xml.labels.empty());
  EXPECT_NE(bad_xml.label_error.find("2007_000001.xml"), std::string::npos) << bad_xml.label_error;
  fs::remove(root + "/Annotations/2007_000001.xml");
  cv::Mat mask(2, 2, CV_8UC1, cv::Scalar(30));
  write_indexed_png(root + "/SegmentationClass/2007_000001.png", mask);
  const ImageRecord bad_mask = record_of("2007_000001");
  EXPECT_NE(bad_mask.label_error.find("2007_000001.png: mask value 30"), std::string::npos) << bad_mask.label_error;
}

TEST(FolderDataset, CsvInBothStyles) {
  const std::string dir = test::make_temp_dir("folder-csv");
  cv::Mat image(4, 4, CV_8UC3, cv::Scalar(1, 2, 3));
  cv::imwrite(dir + "/a.jpg", image);
  cv::imwrite(dir + "/b.png", image);
  cv::imwrite(dir + "/c.jpg", image);
  write_file_atomic(dir + "/labels.csv",
                    "image,labels\n"
                    "a.jpg,cat;dog\n"
                    "# a comment\n"
                    "b, person , \"potted plant\",cat;cat\n"
                    "c\n");
  const auto records = read_folder_dataset(dir, dir + "/labels.csv");
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].id, "a");
  EXPECT_EQ(records[0].image_path, dir + "/a.jpg");
  EXPECT_EQ(records[0].labels, (Labels{"cat", "dog"}));
  EXPECT_EQ(records[1].id, "b");
  EXPECT_EQ(records[1].image_path, dir + "/b.png");
  EXPECT_EQ(records[1].labels, (Labels{"person", "potted plant", "cat"}));
  EXPECT_EQ(records[2].image_path, dir + "/c.jpg");
  EXPECT_TRUE(records[2].labels.empty());

  write_file_atomic(dir + "/dup.csv", "a,cat\na.jpg,dog\n");
  EXPECT_THROW(read_folder_dataset(dir, dir + "/dup.csv"), Error);
  write_file_atomic(dir + "/escape.csv", "../a.jpg,cat\n");
  EXPECT_THROW(read_folder_dataset(dir, dir + "/escape.csv"), Error);
}

TEST(FolderDataset, JsonKeepsFileOrder) {
  const std::string dir = test::make_temp_dir("folder-json");
  cv::Mat image(4, 4, CV_8UC3, cv::Scalar(1, 2, 3));
  cv::imwrite(dir + "/zebra.jpg", image);
  cv::imwrite(dir + "/apple.jpeg", image);
  write_file_atomic(dir + "/labels.json", R"({"zebra.jpg": ["zebra", "grass"], "apple": "apple"})");
  const auto records = read_folder_dataset(dir, dir + "/labels.json");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].id, "zebra");
  EXPECT_EQ(records[0].labels, (Labels{"zebra", "grass"}));
  EXPECT_EQ(records[1].id, "apple");
  EXPECT_EQ(records[1].image_path, dir + "/apple.jpeg");
  EXPECT_EQ(records[1].labels, (Labels{"apple"}));
  write_file_atomic(dir + "/bad.json", R"({"a": [1]})");
  EXPECT_THROW(read_folder_dataset(dir, dir + "/bad.json"), Error);
}

TEST(CocoDataset, CocoTinyHas80LabelledImages) {
  const std::string root = test::shared("data/coco-tiny");
  const auto records = read_coco_dataset(root);
  ASSERT_EQ(records.size(), 80u);
  for (const auto& r : records) {
    EXPECT_EQ(r.image_path, root + "/val2017/" + r.id + ".jpg");
    EXPECT_TRUE(fs::exists(r.image_path)) << r.image_path;
    EXPECT_FALSE(r.labels.empty()) << r.id;
    for (const auto& label : r.labels) {
      bool known = false;
      for (const auto& [id, name] : coco_categories()) known |= name == label;
      EXPECT_TRUE(known) << label;
    }
  }
  // The json path directly gives the same records.
  const auto direct = read_coco_dataset(root + "/annotations/instances_val2017.json");
  ASSERT_EQ(direct.size(), 80u);
  EXPECT_EQ(direct[5].labels, records[5].labels);
  EXPECT_EQ(direct[5].image_path, records[5].image_path);
}

}  // namespace
}  // namespace clipes
