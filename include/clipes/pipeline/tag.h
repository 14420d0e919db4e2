// tag_images — `clipes tag` over a list of images: TagCLIP tags per image
// (methods/tag_clip.h), no labels needed, on the shared batch machinery
// (pipeline/image_batch.h: resume, shards, failure log, atomic writes).
//
// Outputs under OUT:
//   tags/<stem>.json   {"id", "image", "scores": {class: score}, "tags": [class, ...]}
//                      one file per image, written atomically (what resume checks)
//   tags.jsonl         the same records, one line per image in list order
//   labels.json        {"<image file name>": [tags], ...}: the folder-format labels
//                      file `generate --format folder --labels-file` reads unchanged
// The two summaries are rebuilt from tags/ at the end of every run (also a
// resumed or sharded one: then from whatever images are complete).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "clipes/data/dataset.h"
#include "clipes/io/image_decode.h"
#include "clipes/pipeline/batch_runner.h"

namespace clipes {

class BpeTokenizer;
class ClipModel;
class TagClip;
struct ClassConfig;

// Which word stands for a class in TagCLIP's queries (segment-spec §5 quirk
// d). Official: the class file's tag_name where it has one — TagCLIP's own
// spelling, for COCO motorbike, aeroplane, sofa, pottedplant, diningtable,
// tvmonitor (up to 0.1 on scores) — else the name. ClassNames: the names.
// Tags are written with the names either way; ids and mask values are the same.
enum class TagNames { Official, ClassNames };

// What TagCLIP compares the patches with: one word per class (see TagNames),
// then the class file's background words (TagCLIP's class_names +
// BACKGROUND_CATEGORY). The first classes.classes.size() are the classes.
std::vector<std::string> tag_queries(const ClassConfig& classes, TagNames names = TagNames::Official);
// The class names alone, in class order (what tags are written as).
std::vector<std::string> tag_class_names(const ClassConfig& classes);

struct TagRunOptions {
  BatchOptions batch;
  DecodeLimits decode;
  int max_tokens = 2500;  // cap on the patch grid, as generate's (bigger images run downscaled)
};

struct ImageTags {
  std::string id, image;       // image: the file name the labels file keys on
  std::vector<float> scores;   // per class
  std::vector<std::string> tags;
};

// One image's tags as written in tags/<stem>.json.
std::string tag_record_path(const std::string& out_dir, const std::string& stem);

BatchSummary tag_images(const TagClip& tagger, const std::vector<std::string>& class_names,
                        const std::vector<ImageRecord>& records, const TagRunOptions& options,
                        const std::function<void(const BatchProgress&)>& progress = {});

// The summaries replace OUT/labels.json and OUT/tags.jsonl. Before a run:
// throws clipes::Error when one of them exists but OUT has no tags/ folder —
// a file clipes did not write (e.g. the user's own labels file, with OUT
// being the image folder), which must never be overwritten.
void check_tag_summaries_are_ours(const std::string& out_dir);

// Reads tags/<stem>.json of every record that has one (list order) and writes
// OUT/tags.jsonl and OUT/labels.json atomically. Returns what it read.
std::vector<ImageTags> write_tag_summaries(const std::string& out_dir, const std::vector<ImageRecord>& records,
                                           const std::vector<std::string>& class_names);

// `generate --labels auto`: every record the batch will see (its shard, at
// most its limit, the order the runner uses) gets its predicted tags as labels. tags/<stem>.json is reused when present (a resumed run tags
// nothing twice) and written otherwise. An image that cannot be read keeps no
// labels; generate then records its real error. Returns the tags of the
// records it labelled, list order.
std::vector<ImageTags> predict_labels(const TagClip& tagger, const std::vector<std::string>& class_names,
                                      std::vector<ImageRecord>& records, const BatchOptions& batch,
                                      const DecodeLimits& decode, int max_tokens,
                                      const std::function<void(size_t done, size_t total)>& progress = {});

// `generate --labels auto` end to end: TagCLIP with `clipes tag`'s default
// settings over the class set's queries and `templates`, predict_labels on
// `records`, then tags.jsonl and labels.json as `clipes tag` writes them.
// Returns the tags of the records it labelled.
std::vector<ImageTags> label_records_with_tags(const ClipModel& model, const BpeTokenizer& tokenizer,
                                               const ClassConfig& classes, const std::vector<std::string>& templates,
                                               std::vector<ImageRecord>& records, const BatchOptions& batch,
                                               const DecodeLimits& decode, int max_tokens,
                                               const std::function<void(size_t done, size_t total)>& progress = {});

// Reads a tags.jsonl (tag_images' or another run's): id, scores by class name, tags.
std::vector<ImageTags> read_tags_jsonl(const std::string& path, const std::vector<std::string>& class_names);

}  // namespace clipes
