#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <set>
#include <fstream>
#include <map>
#include <sstream>

#include "clipes/text/class_config.h"
#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;

namespace {

const std::vector<std::string> kVocBackground = {
    "ground", "land",     "grass", "tree",  "building", "wall", "sky",    "lake",  "water",
    "river",  "sea",      "railway", "railroad", "keyboard", "helmet", "cloud", "house", "mountain",
    "ocean",  "road",     "rock",  "street", "valley", "bridge", "sign"};

}  // namespace

TEST(ClassConfig, BuiltinVocMatchesTheSpec) {
  const ClassConfig voc = ClassConfig::resolve("voc");
  EXPECT_EQ(voc.name, "voc");
  EXPECT_EQ(voc.default_template, "a clean origami {}.");
  EXPECT_DOUBLE_EQ(voc.box_threshold, 0.4);
  const std::vector<std::string> prompts = {
      "aeroplane", "bicycle", "bird avian", "boat", "bottle", "bus", "car", "cat", "chair seat", "cow",
      "diningtable", "dog", "horse", "motorbike", "person with clothes,people,human", "pottedplant", "sheep",
      "sofa", "train", "tvmonitor screen"};
  ASSERT_EQ(voc.num_classes(), 20);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(voc.classes[i].prompt, prompts[i]) << i;
    EXPECT_EQ(voc.label_id(i, ClassConfig::LabelIds::Dataset), i + 1);
    EXPECT_EQ(voc.label_id(i), i + 1);
  }
  EXPECT_EQ(voc.classes[14].name, "person");
  EXPECT_EQ(voc.background, kVocBackground);
}

TEST(ClassConfig, BuiltinCocoMatchesTheSpecAndTheOfficialCategories) {
  const ClassConfig coco = ClassConfig::resolve("coco");
  EXPECT_DOUBLE_EQ(coco.box_threshold, 0.7);
  EXPECT_EQ(coco.default_template, "a clean origami {}.");
  ASSERT_EQ(coco.num_classes(), 80);
  std::vector<std::string> bg23;
  for (const auto& w : kVocBackground)
    if (w != "keyboard" && w != "sign") bg23.push_back(w);
  EXPECT_EQ(coco.background, bg23);

  // Names and ids are COCO's own: compare with the categories of a real annotation file.
  const auto ann = nlohmann::json::parse(read_file(test::shared("data/coco-tiny/annotations/instances_val2017.json")));
  const auto& cats = ann.at("categories");
  ASSERT_EQ(cats.size(), 80u);
  for (int i = 0; i < 80; ++i) {
    EXPECT_EQ(coco.classes[i].name, cats[i].at("name").get<std::string>()) << i;
    EXPECT_EQ(coco.label_id(i, ClassConfig::LabelIds::Dataset), cats[i].at("id").get<int>()) << i;
    EXPECT_EQ(coco.label_id(i), i + 1);
  }

  const std::map<std::string, std::string> replaced = {
      {"person", "person with clothes,people,human"}, {"bird", "bird avian"}, {"backpack", "backpack,bag"},
      {"umbrella", "umbrella,parasol"}, {"handbag", "handbag,purse"}, {"tie", "necktie"},
      {"snowboard", "sknowboard"}, {"baseball glove", "glove"}, {"spoon", "dessertspoon"},
      {"chair", "chair seat"}, {"tv", "tvmonitor screen"}, {"remote", "remote control"},
      {"hair drier", "hairdrier,blowdrier"}, {"motorcycle", "motorbike"}, {"airplane", "aeroplane"},
      {"couch", "sofa"}, {"potted plant", "pottedplant"}, {"dining table", "diningtable"}};
  int changed = 0;
  for (const auto& c : coco.classes) {
    const auto it = replaced.find(c.name);
    EXPECT_EQ(c.prompt, it == replaced.end() ? c.name : it->second) << c.name;
    changed += c.prompt != c.name;
  }
  EXPECT_EQ(changed, static_cast<int>(replaced.size()));
}

TEST(ClassConfig, ResolveLabelsCaseInsensitiveAliasesAndDuplicates) {
  const ClassConfig coco = ClassConfig::resolve("coco");
  // VOC-style names (the coco6 fixture's labels) are aliases of the COCO names.
  const std::vector<int> idx = coco.resolve_labels({"chair", "diningtable", "Dining Table", "PERSON", "chair"});
  EXPECT_EQ(idx, (std::vector<int>{56, 60, 0}));
  EXPECT_EQ(coco.label_id(60, ClassConfig::LabelIds::Dataset), 67);
  EXPECT_EQ(coco.resolve_labels({"motorbike", "aeroplane", "sofa", "pottedplant", "tvmonitor"}),
            (std::vector<int>{3, 4, 57, 58, 62}));
  const ClassConfig voc = ClassConfig::resolve("voc");
  EXPECT_EQ(voc.resolve_labels({"person", "bicycle"}), (std::vector<int>{14, 1}));
  EXPECT_EQ(voc.resolve_labels({"dining table", "diningtable"}), (std::vector<int>{10}));
  // The prompts' synonyms name their class too (issue 27: the toy file lists
  // "crescent,moon" and "circle,disc", and --labels moon was refused).
  const ClassConfig toy = ClassConfig::resolve("toy");
  EXPECT_EQ(toy.resolve_labels({"moon", "Disc", "crescent"}), (std::vector<int>{7, 0}));
  EXPECT_EQ(toy.resolve_labels({"donut"}), (std::vector<int>{4}));
}

TEST(ClassConfig, UnknownLabelListsValidNames) {
  const ClassConfig voc = ClassConfig::resolve("voc");
  const std::string msg = test::error_of([&] { voc.resolve_labels({"person", "unicorn"}); });
  EXPECT_NE(msg.find("unicorn"), std::string::npos) << msg;
  EXPECT_NE(msg.find("aeroplane"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tvmonitor"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  EXPECT_THROW(voc.label_id(20), Error);
}

TEST(ClassConfig, ParseDefaultsAndSynonyms) {
  const ClassConfig c = ClassConfig::parse(
      R"({"classes": [{"name": "cat"}, {"name": "person", "prompt": "person with clothes,people,human", "id": 15,
          "aliases": ["people"]}]})",
      "/some/where/mine.json");
  EXPECT_EQ(c.name, "mine");  // the file stem when "name" is absent
  EXPECT_EQ(c.default_template, "a clean origami {}.");
  EXPECT_DOUBLE_EQ(c.box_threshold, 0.4);
  EXPECT_TRUE(c.background.empty());
  EXPECT_EQ(c.classes[0].prompt, "cat");
  EXPECT_EQ(c.classes[0].id, 1);
  EXPECT_EQ(c.classes[1].id, 15);
  EXPECT_EQ(c.resolve_labels({"People"}), (std::vector<int>{1}));
  EXPECT_EQ(ClassConfig::split_synonyms(c.classes[1].prompt),
            (std::vector<std::string>{"person with clothes", "people", "human"}));
  EXPECT_EQ(ClassConfig::split_synonyms("a,b , c,,"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ClassConfig::split_synonyms("bird avian"), (std::vector<std::string>{"bird avian"}));
}

TEST(ClassConfig, ParseErrorsNameFileAndKey) {
  auto msg = test::error_of([] { ClassConfig::parse(R"({"classes": [{"name": "a", "id": "x"}]})", "f.json"); });
  EXPECT_EQ(msg.rfind("f.json: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("classes[0].id"), std::string::npos) << msg;
  msg = test::error_of([] { ClassConfig::parse(R"({"classes": [{"name": "a"}], "box_threshold": 2})", "f.json"); });
  EXPECT_NE(msg.find("box_threshold"), std::string::npos) << msg;
  msg = test::error_of([] { ClassConfig::parse(R"({"clases": []})", "f.json"); });
  EXPECT_NE(msg.find("clases"), std::string::npos) << msg;
  msg = test::error_of([] { ClassConfig::parse(R"({"classes": [{"name": "a"}, {"name": "b", "aliases": ["A"]}]})", "f.json"); });
  EXPECT_NE(msg.find("already used"), std::string::npos) << msg;
  msg = test::error_of([] { ClassConfig::parse("{not json", "f.json"); });
  EXPECT_EQ(msg.rfind("f.json: invalid JSON", 0), 0u) << msg;
  msg = test::error_of([] { ClassConfig::parse(R"({"template": "no placeholder", "classes": [{"name": "a"}]})", "f.json"); });
  EXPECT_NE(msg.find("template"), std::string::npos) << msg;
  msg = test::error_of([] { ClassConfig::load("/nonexistent/x.json"); });
  EXPECT_NE(msg.find("/nonexistent/x.json"), std::string::npos) << msg;
}

TEST(ClassConfig, ANumberTooLargeForADoubleIsAParseError) {
  // Found by fuzz_class_file: nlohmann throws out_of_range (not parse_error)
  // for 1e309, which escaped the parser as a foreign exception.
  const auto msg = test::error_of([] { ClassConfig::parse(R"({"box_threshold": 1e309, "classes": [{"name": "a"}]})", "f.json"); });
  EXPECT_EQ(msg.rfind("f.json: invalid JSON", 0), 0u) << msg;
}

TEST(ClassConfig, AClassNamedTwiceIsRefused) {
  // Issue 26 friction: two entries "cat" were accepted (the check compared the
  // owner's name with itself), giving one class two mask values.
  auto msg = test::error_of([] { ClassConfig::parse(R"({"classes": [{"name": "cat"}, {"name": "dog"}, {"name": "Cat "}]})", "f.json"); });
  EXPECT_EQ(msg.rfind("f.json: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("classes[2].name"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"cat\" (classes[0])"), std::string::npos) << msg;
  // An alias that repeats its own class's name stays harmless.
  EXPECT_EQ(ClassConfig::parse(R"({"classes": [{"name": "cat", "aliases": ["CAT"]}]})", "f.json").num_classes(), 1);
}

TEST(ClassConfig, AClassFileOfMoreThan254ClassesIsRefused) {
  // 300 classes from a file used to reach segment's 256-entry value table and
  // corrupt the heap; 255 wrote its last class as 255, the ignore value.
  auto many = [](int n) {
    std::string text = R"({"name": "many", "classes": [)";
    for (int i = 0; i < n; ++i) text += std::string(i ? "," : "") + R"({"name": "c)" + std::to_string(i) + "\"}";
    return text + "]}";
  };
  EXPECT_EQ(ClassConfig::parse(many(254), "many.json").num_classes(), 254);
  for (int n : {255, 300}) {
    try {
      ClassConfig::parse(many(n), "many.json");
      ADD_FAILURE() << n << " classes accepted";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("many.json"), std::string::npos) << m;
      EXPECT_NE(m.find("a mask PNG holds at most 254 classes"), std::string::npos) << m;
    }
  }
  // Through the CLI: one line, exit 2, before any model is loaded.
  const std::string dir = test::make_temp_dir("classes-300");
  write_file_atomic(dir + "/big300.json", many(300));
  std::string log;
  EXPECT_EQ(test::run_command(test::clipes_binary() + " segment --model " + test::tiny_clip_path() + " --vocab " +
                                  test::vocab_path() + " --image " +
                                  test::shared("fixtures/parity/coco6/images/000000020992.jpg") + " --classes " + dir +
                                  "/big300.json --method maskclip --out " + dir + "/out",
                              &log),
            2)
      << log;
  EXPECT_NE(log.find("at most 254 classes"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

TEST(ClassConfig, ResolveFilesAndPromptsDirOverride) {
  const std::string dir = test::make_temp_dir("class_config");
  write_file_atomic(dir + "/pets.json", R"({"name": "pets", "box_threshold": 0.5, "classes": [{"name": "cat"}]})");
  EXPECT_EQ(ClassConfig::resolve(dir + "/pets.json").name, "pets");
  EXPECT_NE(test::error_of([] { ClassConfig::resolve("no_such_set"); }).find("voc"), std::string::npos);
  setenv("CLIPES_PROMPTS_DIR", dir.c_str(), 1);
  EXPECT_EQ(ClassConfig::prompts_dir(), dir);
  EXPECT_DOUBLE_EQ(ClassConfig::resolve("pets").box_threshold, 0.5);
  unsetenv("CLIPES_PROMPTS_DIR");
  EXPECT_EQ(ClassConfig::prompts_dir(), test::source_dir() + "/prompts");
}

TEST(ClassConfig, TemplatesFileHasTheImageNetTemplatesAndOrigami) {
  std::ifstream in(ClassConfig::prompts_dir() + "/templates.txt");
  ASSERT_TRUE(in.good());
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 81u);
  for (const auto& l : lines) EXPECT_NE(l.find("{}"), std::string::npos) << l;
  EXPECT_EQ(lines.front(), "a bad photo of a {}.");
  EXPECT_EQ(lines.back(), "a clean origami {}.");
  EXPECT_EQ(std::set<std::string>(lines.begin(), lines.end()).size(), 81u);
}
