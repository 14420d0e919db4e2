#include "test_support.h"

#include "clipes/util/blas_kernel.h"
#include "clipes/util/error.h"
#include "clipes/util/option_error.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>

namespace clipes::test {

// The tests run under the BLAS kernel clipes itself would choose: on a CPU
// OpenBLAS does not know, the test binary re-executes with OPENBLAS_CORETYPE
// set, exactly as the clipes binary does (util/blas_kernel.h), so parity is
// checked under the kernel users get.
namespace {
const bool blas_kernel_checked = [] {
  reexec_with_better_openblas_kernel();
  return true;
}();
// Library messages name settings by key (util/option_error.h); the tests
// read them as `clipes` shows them. test_option_error.cpp checks the keys bare.
const bool cli_option_spelling = [] {
  set_option_spelling(long_option_spelling);
  return true;
}();
}  // namespace

std::string make_temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() /
                       ("clipes-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

int run_command(const std::string& command, std::string* output) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace clipes::test
