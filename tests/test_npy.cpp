#include <gtest/gtest.h>
#include <torch/torch.h>

#include "clipes/io/npy.h"
#include "clipes/util/error.h"
#include "test_support.h"

using namespace clipes;

TEST(Npy, ReadsReferenceFixture) {
  const at::Tensor keys = read_npy(test::shared("fixtures/parity/coco6/expected/000000005001_keys.npy"));
  EXPECT_EQ(keys.scalar_type(), at::kLong);
  ASSERT_EQ(keys.dim(), 1);
  EXPECT_EQ(keys.size(0), 2);  // person, bicycle
  const at::Tensor cam = read_npy(test::shared("fixtures/parity/coco6/expected/000000005001_cam.npy"));
  EXPECT_EQ(cam.scalar_type(), at::kHalf);
  EXPECT_EQ(cam.dim(), 3);
}

TEST(Npy, RoundTripsEveryDtype) {
  const std::string dir = test::make_temp_dir("npy");
  for (auto type : {at::kHalf, at::kFloat, at::kDouble, at::kLong, at::kInt, at::kByte}) {
    const at::Tensor t = (torch::rand({3, 5, 2}) * 100).to(type);
    write_npy(dir + "/a.npy", t);
    const at::Tensor back = read_npy(dir + "/a.npy");
    EXPECT_EQ(back.scalar_type(), type);
    EXPECT_TRUE(torch::equal(back, t));
  }
  const at::Tensor v = torch::arange(7);
  write_npy(dir + "/v.npy", v);
  EXPECT_TRUE(torch::equal(read_npy(dir + "/v.npy"), v));
}

TEST(Npy, RejectsGarbageWithFileName) {
  const std::string dir = test::make_temp_dir("npybad");
  const std::string p = dir + "/bad.npy";
  FILE* f = std::fopen(p.c_str(), "wb");
  std::fputs("hello", f);
  std::fclose(f);
  try {
    read_npy(p);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.npy"), std::string::npos);
  }
}
