#include "clipes/data/toy_world.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>

#include "clipes/util/error.h"

namespace clipes {

const std::vector<std::string>& toy_class_names() {
  static const std::vector<std::string> names = {"circle", "square", "triangle", "star",
                                                 "ring",   "cross",  "heart",    "crescent"};
  return names;
}

const std::vector<std::vector<std::string>>& toy_class_words() {
  // Synonyms exist for half the classes, for the joint-vs-average synonym
  // ablation (spec §4); single words so every caption word is one BPE token.
  static const std::vector<std::vector<std::string>> words = {
      {"circle", "disc"}, {"square"}, {"triangle"}, {"star"}, {"ring", "donut"},
      {"cross", "plus"},  {"heart"},  {"crescent", "moon"}};
  return words;
}

const std::vector<std::string>& toy_background_names() {
  static const std::vector<std::string> names = {"grass", "water", "sand", "brick wall", "sky"};
  return names;
}

uint64_t toy_sample_seed(uint64_t seed, uint64_t index) {
  // SplitMix64 of a combination: cheap, and good enough to decorrelate
  // consecutive indices.
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

namespace {

constexpr double kPi = 3.14159265358979323846;
using Rgb3 = cv::Vec3b;

class Random {
 public:
  explicit Random(uint64_t seed) : gen_(seed) {}
  // Uniform in [a, b). std::uniform_real_distribution's output is not pinned
  // down by the standard; this is, so datasets match across standard libraries.
  double uniform(double a, double b) { return a + (b - a) * (static_cast<double>(gen_() >> 11) * 0x1.0p-53); }
  int integer(int a, int b) {  // inclusive
    return a + static_cast<int>(static_cast<uint64_t>(gen_()) % static_cast<uint64_t>(b - a + 1));
  }
  bool chance(double p) { return uniform(0, 1) < p; }
  uint64_t next() { return gen_(); }

 private:
  std::mt19937_64 gen_;
};

uchar clamp8(double v) { return static_cast<uchar>(std::clamp(std::lround(v), 0L, 255L)); }

Rgb3 jitter(Random& r, std::array<int, 3> base, int amount) {
  const double shift = r.uniform(-amount, amount);  // shared brightness shift
  return {clamp8(base[0] + shift + r.uniform(-amount, amount) * 0.5),
          clamp8(base[1] + shift + r.uniform(-amount, amount) * 0.5),
          clamp8(base[2] + shift + r.uniform(-amount, amount) * 0.5)};
}

Rgb3 mix(const Rgb3& a, const Rgb3& b, double t) {
  return {clamp8(a[0] + (b[0] - a[0]) * t), clamp8(a[1] + (b[1] - a[1]) * t), clamp8(a[2] + (b[2] - a[2]) * t)};
}

// Uniform noise in [lo, hi) at a coarse scale, smoothly upsampled: blotches.
cv::Mat smooth_noise(cv::RNG& rng, cv::Size size, int cell, double lo, double hi) {
  cv::Mat small(std::max(2, size.height / cell + 2), std::max(2, size.width / cell + 2), CV_32F);
  rng.fill(small, cv::RNG::UNIFORM, lo, hi);
  cv::Mat big;
  cv::resize(small, big, cv::Size(small.cols * cell, small.rows * cell), 0, 0, cv::INTER_CUBIC);
  return big(cv::Rect(0, 0, size.width, size.height)).clone();
}

// ---------------------------------------------------------------- backgrounds
void paint_background(int kind, Random& r, cv::RNG& rng, cv::Mat& img) {
  const int h = img.rows, w = img.cols;
  switch (kind) {
    case 0: {  // grass: mottled green with many short blade strokes
      const Rgb3 base = jitter(r, {70, 140, 50}, 15);
      cv::Mat blotch = smooth_noise(rng, img.size(), 24, -25, 25);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const double b = blotch.at<float>(y, x);
          img.at<Rgb3>(y, x) = {clamp8(base[0] + b * 0.6), clamp8(base[1] + b), clamp8(base[2] + b * 0.4)};
        }
      const int blades = w * h / 60;
      for (int i = 0; i < blades; ++i) {
        const int x = r.integer(0, w - 1), y = r.integer(0, h - 1), len = r.integer(4, 10);
        const double lean = r.uniform(-0.4, 0.4), tone = r.uniform(-45, 45);
        const cv::Scalar c(base[0] + tone * 0.6, base[1] + tone, base[2] + tone * 0.3);
        cv::line(img, {x, y}, {x + static_cast<int>(lean * len), y - len}, c, 1, cv::LINE_8);
      }
      break;
    }
    case 1: {  // water: blue-teal with wavy horizontal ripples
      const Rgb3 base = jitter(r, {40, 110, 160}, 15);
      const double period = r.uniform(10, 18), wobble = r.uniform(20, 40), amp = r.uniform(3, 7);
      const double phase = r.uniform(0, 2 * kPi);
      cv::Mat blotch = smooth_noise(rng, img.size(), 32, -12, 12);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const double wave = std::sin(2 * kPi * (y + amp * std::sin(2 * kPi * x / (wobble * 3) + phase)) / period);
          const double v = 28 * wave + blotch.at<float>(y, x);
          img.at<Rgb3>(y, x) = {clamp8(base[0] + v * 0.8), clamp8(base[1] + v), clamp8(base[2] + v * 0.9)};
        }
      break;
    }
    case 2: {  // sand: pale beige, fine grain speckle over soft dunes
      const Rgb3 base = jitter(r, {215, 190, 140}, 12);
      cv::Mat grain(h, w, CV_32F);
      rng.fill(grain, cv::RNG::UNIFORM, -22, 22);
      const double period = r.uniform(50, 90), phase = r.uniform(0, 2 * kPi), tilt = r.uniform(-0.5, 0.5);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const double v = grain.at<float>(y, x) + 12 * std::sin(2 * kPi * (y + tilt * x) / period + phase);
          img.at<Rgb3>(y, x) = {clamp8(base[0] + v), clamp8(base[1] + v), clamp8(base[2] + v * 0.8)};
        }
      break;
    }
    case 3: {  // brick wall: staggered red-brown bricks, grey mortar
      const Rgb3 brick = jitter(r, {150, 65, 45}, 15), mortar = jitter(r, {185, 180, 170}, 10);
      const int bh = r.integer(12, 18), bw = bh * 2 + r.integer(0, 8), joint = 2;
      cv::Mat grain(h, w, CV_32F);
      rng.fill(grain, cv::RNG::UNIFORM, -10, 10);
      const int ox = r.integer(0, bw), oy = r.integer(0, bh);
      for (int y = 0; y < h; ++y) {
        const int row = (y + oy) / bh, in_y = (y + oy) % bh;
        for (int x = 0; x < w; ++x) {
          const int shifted = x + ox + (row % 2) * bw / 2, col = shifted / bw, in_x = shifted % bw;
          Rgb3 c = mortar;
          if (in_y >= joint && in_x >= joint) {
            // One tone per brick, from a hash of its grid cell.
            const double tone = static_cast<double>(toy_sample_seed(row * 7919 + col, 17) % 41) - 20;
            c = {clamp8(brick[0] + tone), clamp8(brick[1] + tone * 0.5), clamp8(brick[2] + tone * 0.4)};
          }
          const double g = grain.at<float>(y, x);
          img.at<Rgb3>(y, x) = {clamp8(c[0] + g), clamp8(c[1] + g), clamp8(c[2] + g)};
        }
      }
      break;
    }
    default: {  // sky: vertical blue gradient with soft white clouds
      const Rgb3 top = jitter(r, {95, 150, 225}, 12), bottom = jitter(r, {175, 205, 240}, 10);
      for (int y = 0; y < h; ++y) {
        const Rgb3 c = mix(top, bottom, static_cast<double>(y) / std::max(1, h - 1));
        img.row(y).setTo(cv::Scalar(c[0], c[1], c[2]));
      }
      cv::Mat clouds = cv::Mat::zeros(h, w, CV_32F);
      const int n = r.integer(3, 7);
      for (int i = 0; i < n; ++i) {
        const cv::Point c(r.integer(0, w - 1), r.integer(0, h - 1));
        const cv::Size axes(r.integer(w / 10, w / 4), r.integer(h / 20, h / 9));
        cv::ellipse(clouds, c, axes, 0, 0, 360, cv::Scalar(1.0), cv::FILLED);
      }
      cv::GaussianBlur(clouds, clouds, cv::Size(0, 0), 6);
      cv::Mat grain(h, w, CV_32F);
      rng.fill(grain, cv::RNG::UNIFORM, -4, 4);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const double a = std::min(1.0f, clouds.at<float>(y, x) * 1.3f);
          const Rgb3 c = mix(img.at<Rgb3>(y, x), Rgb3(250, 250, 252), a);
          const double g = grain.at<float>(y, x);
          img.at<Rgb3>(y, x) = {clamp8(c[0] + g), clamp8(c[1] + g), clamp8(c[2] + g)};
        }
      break;
    }
  }
}

// ---------------------------------------------------------------- shapes
struct Placement {
  double cx, cy, radius, angle;
};

std::vector<cv::Point> polygon(const Placement& p, const std::vector<cv::Point2d>& unit) {
  std::vector<cv::Point> pts;
  const double c = std::cos(p.angle), s = std::sin(p.angle);
  for (const auto& q : unit)
    pts.emplace_back(static_cast<int>(std::lround(p.cx + p.radius * (q.x * c - q.y * s))),
                     static_cast<int>(std::lround(p.cy + p.radius * (q.x * s + q.y * c))));
  return pts;
}

std::vector<cv::Point2d> regular(int n, double r, double start) {
  std::vector<cv::Point2d> pts;
  for (int i = 0; i < n; ++i) pts.emplace_back(r * std::cos(start + 2 * kPi * i / n), r * std::sin(start + 2 * kPi * i / n));
  return pts;
}

void fill(cv::Mat& m, const std::vector<cv::Point>& pts) {
  cv::fillPoly(m, std::vector<std::vector<cv::Point>>{pts}, cv::Scalar(255), cv::LINE_8);
}

// The object's silhouette as a 0/255 mask the size of the image.
cv::Mat draw_shape(int cls, const Placement& p, cv::Size size) {
  cv::Mat m = cv::Mat::zeros(size, CV_8UC1);
  const cv::Point c(static_cast<int>(std::lround(p.cx)), static_cast<int>(std::lround(p.cy)));
  const int r = static_cast<int>(std::lround(p.radius));
  switch (cls) {
    case 0: cv::circle(m, c, r, cv::Scalar(255), cv::FILLED, cv::LINE_8); break;
    case 1: fill(m, polygon(p, regular(4, 0.95, kPi / 4))); break;
    case 2: fill(m, polygon(p, regular(3, 1.05, -kPi / 2))); break;
    case 3: {
      std::vector<cv::Point2d> star;
      for (int i = 0; i < 10; ++i) {
        const double rr = i % 2 ? 0.45 : 1.05, a = -kPi / 2 + kPi * i / 5;
        star.emplace_back(rr * std::cos(a), rr * std::sin(a));
      }
      fill(m, polygon(p, star));
      break;
    }
    case 4:
      cv::circle(m, c, r, cv::Scalar(255), cv::FILLED, cv::LINE_8);
      cv::circle(m, c, static_cast<int>(std::lround(p.radius * 0.55)), cv::Scalar(0), cv::FILLED, cv::LINE_8);
      break;
    case 5: {
      const double a = 0.95, b = 0.32;  // arm length, half arm width
      fill(m, polygon(p, {{-b, -a}, {b, -a}, {b, -b}, {a, -b}, {a, b}, {b, b}, {b, a}, {-b, a}, {-b, b}, {-a, b}, {-a, -b}, {-b, -b}}));
      break;
    }
    case 6: {
      std::vector<cv::Point2d> heart;
      for (int i = 0; i < 64; ++i) {
        const double t = 2 * kPi * i / 64, s = std::sin(t);
        heart.emplace_back(16 * s * s * s / 16.0,
                           -(13 * std::cos(t) - 5 * std::cos(2 * t) - 2 * std::cos(3 * t) - std::cos(4 * t) + 2.5) / 16.0);
      }
      fill(m, polygon(p, heart));
      break;
    }
    default: {
      cv::circle(m, c, r, cv::Scalar(255), cv::FILLED, cv::LINE_8);
      const cv::Point bite(static_cast<int>(std::lround(p.cx + 0.5 * p.radius * std::cos(p.angle))),
                           static_cast<int>(std::lround(p.cy + 0.5 * p.radius * std::sin(p.angle))));
      cv::circle(m, bite, static_cast<int>(std::lround(p.radius * 0.85)), cv::Scalar(0), cv::FILLED, cv::LINE_8);
      break;
    }
  }
  return m;
}

// ---------------------------------------------------------------- textures
// Each class has its own pattern and colour family (with jitter), painted in
// the object's own rotated frame, so the pattern turns with the object.
void paint_object(int cls, const Placement& p, const cv::Mat& shape, Random& r, cv::RNG& rng, cv::Mat& img) {
  static const std::array<std::array<int, 3>, 8> primary = {{
      {215, 40, 40},   // circle: red, solid with shading
      {40, 70, 210},   // square: blue checker
      {240, 205, 30},  // triangle: yellow stripes
      {140, 50, 190},  // star: purple with dots
      {245, 140, 30},  // ring: orange diagonal stripes
      {40, 205, 215},  // cross: cyan with a grid
      {235, 90, 170},  // heart: pink zigzag
      {50, 50, 55},    // crescent: charcoal with speckles
  }};
  static const std::array<std::array<int, 3>, 8> secondary = {{
      {120, 10, 15}, {10, 20, 90}, {90, 55, 10}, {235, 225, 240},
      {250, 235, 200}, {10, 80, 90}, {250, 225, 235}, {225, 225, 215},
  }};
  const Rgb3 a = jitter(r, primary[cls], 18), b = jitter(r, secondary[cls], 14);
  const double scale = p.radius, tex_angle = r.uniform(-0.3, 0.3);
  const double cs = std::cos(p.angle + tex_angle), sn = std::sin(p.angle + tex_angle);
  const double phase = r.uniform(0, 1);
  const cv::Rect box = cv::boundingRect(shape);
  cv::Mat speckle;
  if (cls == 7) {
    speckle.create(box.size(), CV_32F);
    rng.fill(speckle, cv::RNG::UNIFORM, 0, 1);
  }
  for (int y = box.y; y < box.y + box.height; ++y)
    for (int x = box.x; x < box.x + box.width; ++x) {
      if (!shape.at<uchar>(y, x)) continue;
      const double dx = x - p.cx, dy = y - p.cy;
      const double u = (dx * cs + dy * sn) / scale, v = (-dx * sn + dy * cs) / scale;  // object frame, ~[-1, 1]
      Rgb3 c;
      switch (cls) {
        case 0: c = mix(a, b, std::clamp(std::hypot(u + 0.3, v + 0.3) * 0.45, 0.0, 1.0)); break;
        case 1: c = (static_cast<int>(std::floor(u * 2.2 + 8 + phase)) + static_cast<int>(std::floor(v * 2.2 + 8))) % 2 ? a : b; break;
        case 2: c = static_cast<int>(std::floor(v * 3.5 + 8 + phase)) % 2 ? a : b; break;
        case 3: {
          const double fu = u * 3.2 + phase - std::floor(u * 3.2 + phase) - 0.5, fv = v * 3.2 - std::floor(v * 3.2) - 0.5;
          c = std::hypot(fu, fv) < 0.28 ? b : a;
          break;
        }
        case 4: c = static_cast<int>(std::floor((u + v) * 3.0 + 8 + phase)) % 2 ? a : b; break;
        case 5: {
          const double fu = u * 3 + phase - std::floor(u * 3 + phase), fv = v * 3 - std::floor(v * 3);
          c = (fu < 0.2 || fv < 0.2) ? b : a;
          break;
        }
        case 6: {
          const double tri = std::abs((u * 3 - std::floor(u * 3)) - 0.5);  // zigzag offset
          c = static_cast<int>(std::floor((v + tri * 0.6) * 4 + 8 + phase)) % 2 ? a : b;
          break;
        }
        default: c = speckle.at<float>(y - box.y, x - box.x) < 0.12 ? b : a; break;
      }
      img.at<Rgb3>(y, x) = c;
    }
}

std::string with_article(const std::string& word) {
  const bool vowel = std::string("aeiou").find(word[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + word;
}

std::string make_caption(Random& r, const std::vector<int>& draw_order, int background, bool name_background,
                         const ToyWorldOptions& o) {
  std::vector<int> order = draw_order;
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[r.integer(0, static_cast<int>(i) - 1)]);
  std::vector<std::string> names;
  for (int cls : order) {
    const auto& words = toy_class_words()[cls];
    const bool synonym = words.size() > 1 && r.chance(o.caption_synonym_prob);
    names.push_back(with_article(synonym ? words[r.integer(1, static_cast<int>(words.size()) - 1)] : words[0]));
  }
  std::string objects = names[0];
  for (size_t i = 1; i < names.size(); ++i) objects += (i + 1 == names.size() ? " and " : ", ") + names[i];
  static const char* const prefixes[] = {"a photo of ", "a picture of ", "there is ", ""};
  std::string caption = prefixes[r.integer(0, 3)] + objects;
  if (name_background) {
    static const char* const places[] = {" on grass", " on water", " on sand", " on a brick wall", " in the sky"};
    caption += places[background];
  }
  return caption + ".";
}

}  // namespace

ToySample render_toy_sample(uint64_t seed, uint64_t index, const ToyWorldOptions& o) {
  if (o.min_size < 32 || o.max_size < o.min_size || o.min_objects < 1 || o.max_objects < o.min_objects ||
      o.max_objects > static_cast<int>(toy_class_names().size()))
    throw Error("toy world: invalid options (sizes " + std::to_string(o.min_size) + ".." + std::to_string(o.max_size) +
                ", objects " + std::to_string(o.min_objects) + ".." + std::to_string(o.max_objects) + ")");
  const uint64_t s = toy_sample_seed(seed, index);
  Random r(s);
  cv::RNG rng(toy_sample_seed(s, 1));
  ToySample out;
  const int w = r.integer(o.min_size, o.max_size), h = r.integer(o.min_size, o.max_size);
  const int n_classes = static_cast<int>(toy_class_names().size());
  out.background = r.integer(0, static_cast<int>(toy_background_names().size()) - 1);
  out.rgb.create(h, w, CV_8UC3);
  paint_background(out.background, r, rng, out.rgb);

  // Layout: distinct classes; retry until every object keeps a fair share of
  // its area after occlusion (so every label has pixels worth finding).
  const int wanted = r.integer(o.min_objects, o.max_objects);
  std::vector<int> classes;
  std::vector<Placement> places;
  std::vector<cv::Mat> shapes;
  cv::Mat label_map;
  for (int attempt = 0;; ++attempt) {
    const int count = attempt < 30 ? wanted : 1;  // give up on crowding, keep one object
    std::vector<int> pool(n_classes);
    for (int i = 0; i < n_classes; ++i) pool[i] = i;
    classes.clear(), places.clear(), shapes.clear();
    label_map = cv::Mat::zeros(h, w, CV_8UC1);
    const double short_side = std::min(w, h);
    for (int k = 0; k < count; ++k) {
      const int pick = r.integer(k, n_classes - 1);
      std::swap(pool[k], pool[pick]);
      const int cls = pool[k];
      Placement p;
      p.radius = short_side * r.uniform(0.17, 0.36) * (count == 1 ? 1.15 : 1.0);
      p.cx = r.uniform(0.65 * p.radius, w - 0.65 * p.radius);
      p.cy = r.uniform(0.65 * p.radius, h - 0.65 * p.radius);
      p.angle = cls == 6 ? r.uniform(-0.35, 0.35) : r.uniform(0, 2 * kPi);  // hearts stay roughly upright
      cv::Mat shape = draw_shape(cls, p, label_map.size());
      label_map.setTo(cls + 1, shape);
      classes.push_back(cls), places.push_back(p), shapes.push_back(shape);
    }
    bool ok = true;
    for (size_t k = 0; k < classes.size() && ok; ++k) {
      const double area = cv::countNonZero(shapes[k]);
      const double visible = cv::countNonZero(label_map == classes[k] + 1);
      ok = area > 0 && visible >= 0.4 * area && visible >= 0.02 * w * h;
    }
    if (ok) break;
  }
  for (size_t k = 0; k < classes.size(); ++k) paint_object(classes[k], places[k], shapes[k], r, rng, out.rgb);

  out.labels = classes;
  std::sort(out.labels.begin(), out.labels.end());
  out.mask = label_map;
  if (o.ignore_band > 0) {
    // Pixels whose neighbourhood holds more than one label: a band straddling
    // every outline, about ignore_band pixels wide.
    const int k = o.ignore_band + 1;
    const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_RECT, cv::Size(k, k));
    cv::Mat hi, lo;
    cv::dilate(label_map, hi, kernel, cv::Point(-1, -1), 1, cv::BORDER_REPLICATE);
    cv::erode(label_map, lo, kernel, cv::Point(-1, -1), 1, cv::BORDER_REPLICATE);
    out.mask = label_map.clone();
    out.mask.setTo(255, hi != lo);
  }
  out.caption_names_background = r.chance(o.caption_background_prob);
  out.caption = make_caption(r, classes, out.background, out.caption_names_background, o);
  return out;
}

}  // namespace clipes
