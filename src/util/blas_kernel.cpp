#include "clipes/util/blas_kernel.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace clipes {

std::string CpuFeatures::describe() const {
  std::string s = vendor + " family " + std::to_string(family) + " model " + std::to_string(model) + ":";
  if (avx2) s += " AVX2";
  if (fma) s += " FMA";
  if (has_avx512_core()) s += " AVX-512";
  if (avx512_bf16) s += " AVX-512-BF16";
  if (amx_tile && amx_bf16) s += " AMX";
  return s;
}

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;
  __get_cpuid(1, &a, &b, &c, &d);
  const unsigned base_family = (a >> 8) & 0xF, ext_family = (a >> 20) & 0xFF;
  const unsigned base_model = (a >> 4) & 0xF, ext_model = (a >> 16) & 0xF;
  f.family = static_cast<int>(base_family == 0xF ? base_family + ext_family : base_family);
  f.model = static_cast<int>(base_family == 0x6 || base_family == 0xF ? (ext_model << 4) + base_model : base_model);
  f.fma = (c >> 12) & 1;
  const bool osxsave = (c >> 27) & 1;
  // The OS must save the wide registers too (XCR0), or the instructions fault.
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  }
  const bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xE6) == 0xE6;
  const bool tiles = (xcr0 & 0x60000) == 0x60000;
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    f.avx2 = ymm && ((b >> 5) & 1);
    f.avx512f = zmm && ((b >> 16) & 1);
    f.avx512dq = zmm && ((b >> 17) & 1);
    f.avx512bw = zmm && ((b >> 30) & 1);
    f.avx512vl = zmm && ((b >> 31) & 1);
    f.amx_bf16 = tiles && ((d >> 22) & 1);
    f.amx_tile = tiles && ((d >> 24) & 1);
    __get_cpuid_count(7, 1, &a, &b, &c, &d);
    f.avx512_bf16 = zmm && ((a >> 5) & 1);
  }
  f.fma = f.fma && ymm;
#endif
  return f;
}

namespace {

template <class Fn>
Fn find_symbol(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, name));
}

}  // namespace

std::string openblas_core_name() {
  auto fn = find_symbol<char* (*)()>("openblas_get_corename");
  const char* s = fn ? fn() : nullptr;
  return s ? s : "";
}

std::string openblas_config() {
  auto fn = find_symbol<char* (*)()>("openblas_get_config");
  const char* s = fn ? fn() : nullptr;
  return s ? s : "";
}

std::string onednn_isa() {
  // dnnl_cpu_isa_t values of oneDNN 2.x (dnnl_types.h): bit sets of features.
  auto fn = find_symbol<int (*)()>("dnnl_get_effective_cpu_isa");
  if (!fn) return "";
  const int isa = fn();
  const char* name = nullptr;
  switch (isa) {
    case 0x0: name = "all"; break;
    case 0x1: name = "sse41"; break;
    case 0x3: name = "avx"; break;
    case 0x7: name = "avx2"; break;
    case 0xf: name = "avx512_mic"; break;
    case 0x1f: name = "avx512_mic_4ops"; break;
    case 0x27: name = "avx512_core"; break;
    case 0x67: name = "avx512_core_vnni"; break;
    case 0xe7: name = "avx512_core_bf16"; break;
    case 0x3e7: name = "avx512_core_amx"; break;
    case 0x407: name = "avx2_vnni"; break;
    default: break;
  }
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%x", isa);
  return name ? std::string(name) + " (" + hex + ")" : std::string("isa ") + hex;
}

std::string better_openblas_coretype(const std::string& core, const CpuFeatures& cpu) {
  // OpenBLAS's x86-64 kernels that predate AVX2 (DYNAMIC_ARCH core names).
  static const char* const kGeneric[] = {"Prescott", "Core2",      "Penryn",  "Dunnington", "Nehalem",
                                         "Atom",     "Sandybridge", "Opteron", "Opteron(SSE3)", "Barcelona",
                                         "Bobcat",   "Bulldozer",  "Piledriver", "Steamroller", "Excavator",
                                         "Katmai",   "Coppermine", "Northwood", "Banias", "generic"};
  bool generic = false;
  for (const char* g : kGeneric)
    if (core == g) generic = true;
  if (!generic) return "";
  if (cpu.has_avx512_core()) return "SkylakeX";
  if (cpu.avx2 && cpu.fma) return "Haswell";
  return "";
}

void reexec_with_better_openblas_kernel() {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("CLIPES_BLAS_REEXEC")) return;
  if (const char* off = std::getenv("CLIPES_NO_BLAS_FIX"); off && *off && std::strcmp(off, "0") != 0) return;
  // CLIPES_TEST_PRETEND_OPENBLAS_CORE lets the tests walk this path on a CPU
  // that OpenBLAS does recognise (there is no other way to make it guess wrong).
  const char* pretend = std::getenv("CLIPES_TEST_PRETEND_OPENBLAS_CORE");
  const std::string core = pretend && *pretend ? pretend : openblas_core_name();
  if (core.empty()) return;
  const std::string better = better_openblas_coretype(core, detect_cpu_features());
  if (better.empty()) return;
  // The same arguments, byte for byte, from the kernel's copy.
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t pos = 0; pos < cmdline.size();) {
    const size_t end = cmdline.find('\0', pos);
    args.push_back(cmdline.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  if (args.empty()) return;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::setenv("OPENBLAS_CORETYPE", better.c_str(), 1);
  ::setenv("CLIPES_BLAS_REEXEC", (core + "->" + better).c_str(), 1);
  ::execv("/proc/self/exe", argv.data());
  // exec failed: run on as we are, with the environment as it was.
  ::unsetenv("OPENBLAS_CORETYPE");
}

std::string describe_math_kernels() {
  std::string s;
  const std::string core = openblas_core_name();
  if (core.empty()) {
    s = "BLAS is not OpenBLAS";
  } else {
    const std::string config = openblas_config();
    const std::string version = config.rfind("OpenBLAS ", 0) == 0 ? config.substr(0, config.find(' ', 9)) : "OpenBLAS";
    s = version + " core " + core;
    if (const char* fix = std::getenv("CLIPES_BLAS_REEXEC"))
      s += " (set by clipes; OpenBLAS chose " + std::string(fix).substr(0, std::string(fix).find("->")) + ")";
    else if (std::getenv("OPENBLAS_CORETYPE"))
      s += " (OPENBLAS_CORETYPE=" + std::string(std::getenv("OPENBLAS_CORETYPE")) + ")";
  }
  const std::string isa = onednn_isa();
  s += "; oneDNN ISA " + (isa.empty() ? std::string("n/a") : isa);
  return s;
}

}  // namespace clipes
