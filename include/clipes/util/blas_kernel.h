// Which BLAS and oneDNN kernels this process runs, and the OpenBLAS trap.
//
// Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels from the CPU
// model at load time. It does not know newer Intel cores (e.g. family 6
// model 207) and falls back to "Prescott": fp32 matrix products at 27–32
// GFLOP/s instead of ~200, and every clipes run 3× slower. OpenBLAS reads
// OPENBLAS_CORETYPE only when it is loaded, so the fix is to re-execute the
// process once with it set — never when the user (or the machine's admin,
// who may set it to dodge a kernel bug) already set it.
#pragma once
#include <string>

namespace clipes {

struct CpuFeatures {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ...
  int family = 0, model = 0;
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, amx_bf16 = false, amx_tile = false;
  bool has_avx512_core() const { return avx512f && avx512bw && avx512vl && avx512dq; }
  std::string describe() const;  // "GenuineIntel family 6 model 207: AVX2 FMA AVX-512 AVX-512-BF16 AMX"
};

CpuFeatures detect_cpu_features();  // cpuid (x86-64); all false elsewhere

// The kernel OpenBLAS chose ("SkylakeX", "Haswell", "Prescott", ...) and its
// build string, or "" when the BLAS in this process is not OpenBLAS.
std::string openblas_core_name();
std::string openblas_config();

// oneDNN's instruction set in use ("avx512_core_amx", "avx512_core_bf16",
// "avx2", ...), or "" when oneDNN is not loaded.
std::string onednn_isa();

// The OPENBLAS_CORETYPE that fits `cpu` when OpenBLAS chose a generic,
// pre-AVX2 kernel (`core`), else "": SkylakeX on AVX-512 cores, Haswell on
// AVX2+FMA ones. A kernel that already uses AVX2 or better is left alone.
std::string better_openblas_coretype(const std::string& core, const CpuFeatures& cpu);

// When OpenBLAS chose a generic kernel on a capable CPU and neither
// OPENBLAS_CORETYPE nor CLIPES_BLAS_REEXEC is set: sets OPENBLAS_CORETYPE,
// records the original choice in CLIPES_BLAS_REEXEC ("<old>-><new>") and
// re-executes /proc/self/exe with the same arguments. Returns only when
// nothing was to be done or exec failed. CLIPES_NO_BLAS_FIX=1 turns it off.
void reexec_with_better_openblas_kernel();

// One line for logs and `clipes info`: "OpenBLAS 0.3.21 core SkylakeX (set by
// clipes; OpenBLAS chose Prescott); oneDNN ISA avx512_core_amx".
std::string describe_math_kernels();

}  // namespace clipes
