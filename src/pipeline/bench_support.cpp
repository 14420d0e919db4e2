#include "bench_support.h"

#include <sys/resource.h>

#include <algorithm>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

namespace clipes::bench {

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double mean(const std::vector<double>& v) { return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports KiB
}

std::vector<uchar> synthetic_jpeg(int height, int width) {
  cv::Mat img(height, width, CV_8UC3);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> noise(-20, 20);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      auto& p = img.at<cv::Vec3b>(y, x);
      p[0] = cv::saturate_cast<uchar>(255.0 * x / width + noise(rng));
      p[1] = cv::saturate_cast<uchar>(255.0 * y / height + noise(rng));
      p[2] = cv::saturate_cast<uchar>(128 + noise(rng));
    }
  cv::circle(img, {width / 2, height / 2}, std::min(width, height) / 4, {30, 200, 60}, -1);
  std::vector<uchar> bytes;
  cv::imencode(".jpg", img, bytes, {cv::IMWRITE_JPEG_QUALITY, 90});
  return bytes;
}


}  // namespace clipes::bench
