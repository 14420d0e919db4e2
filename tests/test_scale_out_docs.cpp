// README "Scale-out": the examples users copy first. The Slurm array is run on a
// real (single-node) Slurm by scripts/slurm-smoke.sh; no Kubernetes cluster is
// available, so the Indexed Job manifest is linted here: it must parse as YAML
// and shard by JOB_COMPLETION_INDEX over `completions`.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"

namespace clipes {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The "## Scale-out" section of README.md, up to the next "## " heading.
std::string scale_out_section() {
  const std::string readme = read_text(test::source_dir() + "/README.md");
  const auto begin = readme.find("\n## Scale-out\n");
  if (begin == std::string::npos) return "";
  const auto end = readme.find("\n## ", begin + 1);
  return readme.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

// The bodies of the ```<lang> fenced blocks of `text`.
std::vector<std::string> fenced_blocks(const std::string& text, const std::string& lang) {
  std::vector<std::string> blocks;
  const std::string open = "```" + lang + "\n";
  size_t pos = 0;
  while ((pos = text.find(open, pos)) != std::string::npos) {
    const size_t body = pos + open.size();
    const size_t close = text.find("\n```", body);
    if (close == std::string::npos) break;
    blocks.push_back(text.substr(body, close - body + 1));
    pos = close + 4;
  }
  return blocks;
}

TEST(ScaleOutDocs, KubernetesManifestIsAnIndexedJobShardedByCompletionIndex) {
  const std::string section = scale_out_section();
  ASSERT_FALSE(section.empty()) << "README.md has no '## Scale-out' section";
  const auto yaml_blocks = fenced_blocks(section, "yaml");
  ASSERT_EQ(yaml_blocks.size(), 1u) << "expected one ```yaml block in README.md's Scale-out section";

  YAML::Node job;
  try {
    job = YAML::Load(yaml_blocks[0]);
  } catch (const YAML::Exception& e) {
    FAIL() << "README.md's Kubernetes manifest is not valid YAML: " << e.what();
  }
  ASSERT_TRUE(job.IsMap());
  EXPECT_EQ(job["apiVersion"].as<std::string>(""), "batch/v1");
  EXPECT_EQ(job["kind"].as<std::string>(""), "Job");
  EXPECT_TRUE(job["metadata"]["name"].IsScalar());

  const YAML::Node spec = job["spec"];
  ASSERT_TRUE(spec.IsMap());
  EXPECT_EQ(spec["completionMode"].as<std::string>(""), "Indexed");
  const int completions = spec["completions"].as<int>(0);
  ASSERT_GE(completions, 1);
  EXPECT_LE(spec["parallelism"].as<int>(completions), completions);
  // Per-index retries and the pod failure policy both require restartPolicy Never.
  EXPECT_EQ(spec["template"]["spec"]["restartPolicy"].as<std::string>(""), "Never");
  if (spec["podFailurePolicy"]) {
    EXPECT_TRUE(spec["podFailurePolicy"]["rules"].IsSequence());
  }

  const YAML::Node containers = spec["template"]["spec"]["containers"];
  ASSERT_TRUE(containers.IsSequence());
  ASSERT_EQ(containers.size(), 1u);
  const YAML::Node command = containers[0]["command"];
  ASSERT_TRUE(command.IsSequence());
  // Kubernetes expands only $(VAR) in `command`: ${JOB_COMPLETION_INDEX} needs a shell.
  ASSERT_EQ(command.size(), 3u);
  EXPECT_EQ(command[0].as<std::string>(), "sh");
  EXPECT_EQ(command[1].as<std::string>(), "-c");
  const std::string line = command[2].as<std::string>();
  EXPECT_NE(line.find("clipes generate "), std::string::npos) << line;
  EXPECT_NE(line.find("--shard ${JOB_COMPLETION_INDEX}/" + std::to_string(completions)), std::string::npos)
      << "the command must shard as --shard ${JOB_COMPLETION_INDEX}/" << completions << ": " << line;

  // Every pod writes the same OUT: it must be a mounted volume.
  const std::regex out_re("--out (\\S+)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(line, m, out_re)) << line;
  const std::string out = m[1];
  bool mounted = false;
  for (const auto& mount : containers[0]["volumeMounts"]) {
    const std::string path = mount["mountPath"].as<std::string>("");
    if (!path.empty() && out.rfind(path, 0) == 0) {
      mounted = true;
      bool declared = false;
      for (const auto& volume : spec["template"]["spec"]["volumes"])
        declared |= volume["name"].as<std::string>("") == mount["name"].as<std::string>("");
      EXPECT_TRUE(declared) << "volume " << mount["name"].as<std::string>("") << " is mounted but not declared";
    }
  }
  EXPECT_TRUE(mounted) << "--out " << out << " is not on a mounted volume";
}

TEST(ScaleOutDocs, SlurmArrayShardsByTaskIdAndIsTheTestedOne) {
  const std::string section = scale_out_section();
  ASSERT_FALSE(section.empty());
  std::string script;
  for (const auto& block : fenced_blocks(section, "bash"))
    if (block.find("#SBATCH") != std::string::npos) script = block;
  ASSERT_FALSE(script.empty()) << "no Slurm job script (```bash with #SBATCH) in the Scale-out section";

  std::smatch m;
  ASSERT_TRUE(std::regex_search(script, m, std::regex("#SBATCH --array=0-(\\d+)\\n"))) << script;
  const int tasks = std::stoi(m[1]) + 1;
  EXPECT_NE(script.find("--shard ${SLURM_ARRAY_TASK_ID}/" + std::to_string(tasks)), std::string::npos)
      << "the array has " << tasks << " tasks: --shard ${SLURM_ARRAY_TASK_ID}/" << tasks << " expected";

  // The smoke test submits this script; its #SBATCH lines other than the array
  // size and the GPU request must be the README's.
  EXPECT_NE(section.find("(scripts/slurm-smoke.sh)"), std::string::npos) << "README must link the smoke test";
  const std::string smoke = read_text(test::source_dir() + "/scripts/slurm-smoke.sh");
  ASSERT_FALSE(smoke.empty()) << "scripts/slurm-smoke.sh is missing";
  std::istringstream lines(script);
  for (std::string l; std::getline(lines, l);) {
    if (l.rfind("#SBATCH ", 0) != 0 || l.rfind("#SBATCH --array=", 0) == 0 || l.rfind("#SBATCH --gres=", 0) == 0)
      continue;
    EXPECT_NE(smoke.find("\n" + l + "\n"), std::string::npos) << "scripts/slurm-smoke.sh lacks '" << l << "'";
  }
  EXPECT_NE(smoke.find("--shard \\${SLURM_ARRAY_TASK_ID}/"), std::string::npos);
}

}  // namespace
}  // namespace clipes
