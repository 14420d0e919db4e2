// clipes version — the version of clipes and of the libraries it was built
// with (the same line as --version, plus the libraries, for bug reports).
#include <torch/torch.h>
#include <opencv2/core/version.hpp>

#include <iostream>

#include "clipes/util/blas_kernel.h"
#include "command.h"

namespace clipes::cli {
namespace {

const bool registered = register_command({"version", "print the version of clipes and its libraries", [](CLI::App&) {
                                            return []() {
                                              std::cout << "clipes " << CLIPES_VERSION << "\nlibtorch " << TORCH_VERSION
                                                        << "\nopencv " << CV_VERSION << "\nmath kernels "
                                                        << describe_math_kernels() << "\n";
                                              return 0;
                                            };
                                          }});

}  // namespace
}  // namespace clipes::cli
