// The OpenBLAS kernel choice (util/blas_kernel.h): which kernels count as the
// generic fallback, what replaces them, and that the binaries report it.
#include <gtest/gtest.h>

#include <cstdlib>

#include "clipes/util/blas_kernel.h"
#include "test_support.h"

namespace clipes {
namespace {

CpuFeatures avx512_cpu() {
  CpuFeatures f;
  f.avx2 = f.fma = f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = true;
  return f;
}

TEST(BlasKernel, AGenericKernelOnACapableCpuIsReplaced) {
  // Debian 12's OpenBLAS 0.3.21 on Intel family 6 model 207 chose Prescott:
  // 27-32 GFLOP/s fp32 instead of ~200 with SkylakeX.
  EXPECT_EQ(better_openblas_coretype("Prescott", avx512_cpu()), "SkylakeX");
  EXPECT_EQ(better_openblas_coretype("Nehalem", avx512_cpu()), "SkylakeX");
  CpuFeatures avx2 = avx512_cpu();
  avx2.avx512f = avx2.avx512bw = avx2.avx512vl = avx2.avx512dq = false;
  EXPECT_EQ(better_openblas_coretype("Prescott", avx2), "Haswell");
  EXPECT_EQ(better_openblas_coretype("Sandybridge", avx2), "Haswell");
}

TEST(BlasKernel, AGoodKernelOrAnOldCpuIsLeftAlone) {
  EXPECT_EQ(better_openblas_coretype("SkylakeX", avx512_cpu()), "");
  EXPECT_EQ(better_openblas_coretype("Haswell", avx512_cpu()), "");  // AVX2 kernels: a choice, not the trap
  EXPECT_EQ(better_openblas_coretype("Zen", avx512_cpu()), "");
  EXPECT_EQ(better_openblas_coretype("Prescott", CpuFeatures{}), "");  // no AVX2: Prescott is right
}

TEST(BlasKernel, ThisProcessRunsANonGenericKernelAndInfoSaysWhich) {
  const std::string core = openblas_core_name();
  ASSERT_FALSE(core.empty()) << "the tests link OpenBLAS (scripts/setup.sh)";
  // After the test binary's own check (test_support.cpp), no generic kernel
  // may remain on a CPU that can do better.
  EXPECT_EQ(better_openblas_coretype(core, detect_cpu_features()), "") << core;
  std::string out;
  ASSERT_EQ(test::run_command(test::clipes_binary() + " info --random-init vit-b-16", &out), 0) << out;
  EXPECT_NE(out.find("math kernels:   OpenBLAS"), std::string::npos) << out;
  EXPECT_NE(out.find("core "), std::string::npos) << out;
  EXPECT_NE(out.find("oneDNN ISA"), std::string::npos) << out;
}

TEST(BlasKernel, ClipesReexecutesWithTheRightKernelUnlessTheUserChose) {
  // Simulate the trap: force the generic kernel the way a CPU OpenBLAS does
  // not know would get it... but OPENBLAS_CORETYPE set by the user is never
  // overridden, so clipes must report exactly what was asked for.
  std::string out;
  ASSERT_EQ(test::run_command("OPENBLAS_CORETYPE=Prescott " + test::clipes_binary() + " info --random-init vit-b-16",
                              &out),
            0)
      << out;
  EXPECT_NE(out.find("core Prescott (OPENBLAS_CORETYPE=Prescott)"), std::string::npos) << out;
}

TEST(BlasKernel, OnTheTrapClipesRunsAgainWithTheRightKernel) {
  const std::string expected = better_openblas_coretype("Prescott", detect_cpu_features());
  if (expected.empty()) GTEST_SKIP() << "this CPU has no AVX2: Prescott kernels are the right ones";
  std::string out;
  ASSERT_EQ(test::run_command("env -u OPENBLAS_CORETYPE CLIPES_TEST_PRETEND_OPENBLAS_CORE=Prescott " +
                                  test::clipes_binary() + " info --random-init vit-b-16 --json",
                              &out),
            0)
      << out;
  // Re-executed once, with the arguments intact (--json still applies) and
  // OpenBLAS now loaded with the kernel clipes chose.
  EXPECT_NE(out.find("\"blas_core\": \"" + expected + "\""), std::string::npos) << out;
  EXPECT_NE(out.find("set by clipes; OpenBLAS chose Prescott"), std::string::npos) << out;
}

}  // namespace
}  // namespace clipes
