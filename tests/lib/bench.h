// Benchmark reporting shared by every tests/bench/*_bench.cc: each case is a figure of
// ours against a baseline measured in the same run, written as
// <out>/<name>.json and printed as a table.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace meshgate::test {

struct BenchCase {
  std::string name;    // "tcp_syn_to_vip"
  std::string metric;  // "ns_per_packet"
  std::string unit;    // "ns"
  double ours = 0;
  double baseline = 0;
  std::string baseline_name;  // "xdp_pass floor"
  bool lower_is_better = true;
  std::string note;  // optional: spread, target, how it was measured
};

class BenchReport {
 public:
  explicit BenchReport(std::string name) : name_(std::move(name)) {}
  void add(BenchCase c) { cases_.push_back(std::move(c)); }
  // Writes <dir>/<name>.json (dir from "--out DIR", default "build/bench") and prints the
  // table. Returns the process exit code.
  int finish(int argc, char** argv) const;

 private:
  std::string name_;
  std::vector<BenchCase> cases_;
};

// Wall-clock nanoseconds per call of f(), over `iters` calls in a row.
template <class F>
double nsPerIteration(int iters, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) {
    f();
  }
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / iters;
}

// Median of a sample (copies and partially sorts it). Empty input gives 0.
double median(std::vector<double> v);
// Smallest and largest value of a sample.
double minOf(const std::vector<double>& v);
double maxOf(const std::vector<double>& v);

}  // namespace meshgate::test
