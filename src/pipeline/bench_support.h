// Helpers the stage benchmarks share (pipeline/benchmark.cpp for CLIP-ES,
// pipeline/lseg_benchmark.cpp for LSeg): clock, statistics, peak RSS and a
// photo-like synthetic JPEG. Private to src/pipeline.
#pragma once
#include <opencv2/core.hpp>

#include <chrono>
#include <vector>

namespace clipes::bench {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t);
double mean(const std::vector<double>& v);
double median(std::vector<double> v);
double peak_rss_mb();  // of the whole process so far (getrusage)

// A photo-like test image: smooth colour gradients plus noise, so JPEG decode
// costs what a real photo costs (a flat image would decode unrealistically fast).
std::vector<uchar> synthetic_jpeg(int height, int width);

}  // namespace clipes::bench
