#include "tests/lib/bench.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string_view>

namespace meshgate::test {

int BenchReport::finish(int argc, char** argv) const {
  std::string dir = "build/bench";
  for (int i = 1; i + 1 < argc; i++) {
    if (std::string_view(argv[i]) == "--out") {
      dir = argv[i + 1];
    }
  }
  nlohmann::json cases = nlohmann::json::array();
  std::printf("\n%s\n%-34s %-16s %12s %12s %8s  %s\n", name_.c_str(), "case", "metric", "ours",
              "baseline", "ratio", "baseline is");
  for (const auto& c : cases_) {
    const double ratio = c.baseline != 0 ? c.ours / c.baseline : 0;
    cases.push_back({{"case", c.name},
                     {"metric", c.metric},
                     {"unit", c.unit},
                     {"ours", c.ours},
                     {"baseline", c.baseline},
                     {"baseline_name", c.baseline_name},
                     {"ratio", ratio},
                     {"better", c.lower_is_better ? "lower" : "higher"},
                     {"note", c.note}});
    std::printf("%-34s %-16s %10.1f%-2s %10.1f%-2s %7.2fx  %s%s%s\n", c.name.c_str(),
                c.metric.c_str(), c.ours, c.unit.c_str(), c.baseline, c.unit.c_str(), ratio,
                c.baseline_name.c_str(), c.note.empty() ? "" : "; ", c.note.c_str());
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/" + name_ + ".json";
  std::ofstream out(path);
  out << nlohmann::json{{"name", name_}, {"cases", cases}}.dump(2) << "\n";
  if (!out) {
    std::fprintf(stderr, "bench %s: cannot write %s\n", name_.c_str(), path.c_str());
    return 1;
  }
  std::printf("wrote %s\n", path.c_str());
  return 0;
}

double median(std::vector<double> v) {
  if (v.empty()) {
    return 0;
  }
  auto mid = v.begin() + v.size() / 2;
  std::nth_element(v.begin(), mid, v.end());
  if (v.size() % 2 == 1) {
    return *mid;
  }
  const double hi = *mid;
  const double lo = *std::max_element(v.begin(), mid);
  return (lo + hi) / 2;
}

double minOf(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::min_element(v.begin(), v.end());
}

double maxOf(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

}  // namespace meshgate::test
