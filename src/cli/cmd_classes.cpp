// clipes classes — lists a class set (voc, coco, toy, a class file, or a
// comma list as `segment` reads it): index, the mask value under each
// --label-ids, name, prompt with synonyms, and the background words.
#include <iostream>

#include "clipes/methods/segment_classes.h"
#include "clipes/text/class_config.h"
#include "command.h"

namespace clipes::cli {
namespace {

int run_classes(const std::string& name) {
  const ClassConfig c = name.find(',') != std::string::npos ? class_config_from_list(name) : ClassConfig::resolve(name);
  std::cout << "class set " << c.name << ": " << c.num_classes() << " classes, template \"" << c.default_template
            << "\", box threshold " << c.box_threshold << "\n";
  std::cout << "background words (mask value 0): ";
  for (size_t i = 0; i < c.background.size(); ++i) std::cout << (i ? ", " : "") << c.background[i];
  std::cout << (c.background.empty() ? "(none)\n" : "\n");
  std::cout << "index  consecutive  dataset  name  [prompt]\n";
  for (int i = 0; i < c.num_classes(); ++i) {
    const ClassEntry& e = c.classes[static_cast<size_t>(i)];
    std::cout << i << "\t" << c.label_id(i, ClassConfig::LabelIds::Consecutive) << "\t"
              << c.label_id(i, ClassConfig::LabelIds::Dataset) << "\t" << e.name;
    if (e.prompt != e.name) std::cout << "  [" << e.prompt << "]";
    std::cout << "\n";
  }
  return 0;
}

const bool registered = register_command({"classes", "list a class set: voc, coco, toy, a class file or \"a,b,c\"",
                                          [](CLI::App& sub) {
                                            auto name = std::make_shared<std::string>();
                                            sub.add_option("set", *name, "voc | coco | toy | FILE | \"a,b,c\"")
                                                ->required();
                                            return [name]() { return run_classes(*name); };
                                          }});

}  // namespace
}  // namespace clipes::cli
