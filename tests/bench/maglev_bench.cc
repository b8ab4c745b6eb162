// Benchmarks the weighted Maglev table build (agent/maglev.h) for 100 and 1000 backends
// with random weights at M = 65537 against the paper's unweighted populate loop measured
// in the same run (same hash, interleaved), and counts the slots that move when one of
// 1000 backends is removed against the ideal: only that backend's own slots.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "agent/maglev.h"
#include "tests/lib/bench.h"

namespace ma = meshgate::agent;
namespace mt = meshgate::test;

namespace {

constexpr uint32_t kTableSize = 65537;
constexpr int kReps = 21;
constexpr int kRemovals = 15;

std::vector<ma::MaglevBackend> backends(size_t n, bool weighted) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<uint32_t> weight(1, 100);
  std::vector<ma::MaglevBackend> out;
  for (uint32_t i = 0; i < n; i++) {
    out.push_back({"198.18." + std::to_string(2 + i / 250) + "." + std::to_string(1 + i % 250),
                   i + 1, weighted ? weight(rng) : 1});
  }
  std::shuffle(out.begin(), out.end(), rng);  // as a config might list them
  return out;
}

// The populate loop of the Maglev paper (Eisenbud et al., NSDI 2016, Pseudocode 1), written
// plainly as Katran does: each backend in turn takes the next free slot of its list, the
// list computed on the fly as (offset + next * skip) % M. No weights; same hash as ours.
std::vector<uint32_t> classicMaglev(const std::vector<ma::MaglevBackend>& backends, uint32_t m) {
  const size_t n = backends.size();
  std::vector<ma::MaglevPermutation> permutation;
  permutation.reserve(n);
  for (const ma::MaglevBackend& b : backends) {
    permutation.push_back(ma::maglevPermutation(b.key, m));
  }
  std::vector<int64_t> entry(m, -1);
  std::vector<uint32_t> next(n, 0);
  uint32_t filled = 0;
  while (true) {
    for (size_t i = 0; i < n; i++) {
      uint32_t c = static_cast<uint32_t>(
          (permutation[i].offset + uint64_t{next[i]} * permutation[i].skip) % m);
      while (entry[c] >= 0) {
        next[i]++;
        c = static_cast<uint32_t>(
            (permutation[i].offset + uint64_t{next[i]} * permutation[i].skip) % m);
      }
      entry[c] = backends[i].id;
      next[i]++;
      if (++filled == m) {
        std::vector<uint32_t> table(m);
        std::transform(entry.begin(), entry.end(), table.begin(),
                       [](int64_t id) { return static_cast<uint32_t>(id); });
        return table;
      }
    }
  }
}

template <class F>
double timeMs(F&& build, uint64_t& sink) {
  const auto start = std::chrono::steady_clock::now();
  const auto table = build();
  const auto end = std::chrono::steady_clock::now();
  sink += table[table.size() / 2];
  return std::chrono::duration<double, std::milli>(end - start).count();
}

std::string spread(const std::vector<double>& v, const char* unit) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "min-max %.3f-%.3f %s", mt::minOf(v), mt::maxOf(v), unit);
  return buf;
}

// "ours" builds with one MaglevBuilder kept across builds, as the agent does (one for all
// its VIPs); "fresh" is buildMaglevTable(), a new builder per table, whose arrays of M
// entries are new memory each time (page faults), measured in the same run for the note.
void benchBuild(mt::BenchReport& report, size_t n, uint64_t& sink) {
  const std::vector<ma::MaglevBackend> input = backends(n, true);
  ma::MaglevBuilder builder;
  std::vector<double> ours, fresh, classic;
  for (int rep = 0; rep < kReps; rep++) {  // interleaved: A B C A B C
    ours.push_back(timeMs([&] { return *builder.build(input, kTableSize); }, sink));
    fresh.push_back(timeMs([&] { return *ma::buildMaglevTable(input, kTableSize); }, sink));
    classic.push_back(timeMs([&] { return classicMaglev(input, kTableSize); }, sink));
  }
  char fresh_note[96];
  std::snprintf(fresh_note, sizeof(fresh_note), "; a fresh builder per table: median %.3f ms",
                mt::median(fresh));
  report.add({"build_" + std::to_string(n) + "_weighted_backends", "build_ms", "ms",
              mt::median(ours), mt::median(classic), "classic Maglev (paper, unweighted)", true,
              "median of " + std::to_string(kReps) + ", M=65537, weights 1..100, one builder " +
                  "kept across builds as in the agent; ours " + spread(ours, "ms") + ", classic " +
                  spread(classic, "ms") + fresh_note + "; target < 1 ms"});
}

// Slots whose owner differs after removing backend `victim`, over kRemovals victims spread
// over the key space; the ideal is the victim's own slots.
void benchRemoval(mt::BenchReport& report, bool weighted) {
  const std::vector<ma::MaglevBackend> input = backends(1000, weighted);
  const std::vector<uint32_t> before = *ma::buildMaglevTable(input, kTableSize);
  std::vector<double> moved, ideal;
  for (int k = 0; k < kRemovals; k++) {
    const size_t victim = k * input.size() / kRemovals;
    std::vector<ma::MaglevBackend> fewer = input;
    fewer.erase(fewer.begin() + static_cast<ptrdiff_t>(victim));
    const std::vector<uint32_t> after = *ma::buildMaglevTable(fewer, kTableSize);
    double changed = 0;
    for (size_t s = 0; s < before.size(); s++) {
      changed += before[s] != after[s];
    }
    moved.push_back(changed);
    ideal.push_back(
        static_cast<double>(std::count(before.begin(), before.end(), input[victim].id)));
  }
  char note[160];
  std::snprintf(note, sizeof(note),
                "median over %d removals, %s; ours min-max %.0f-%.0f; i.e. %.2f%% of M moved, "
                "%.2f%% beyond the ideal",
                kRemovals, weighted ? "weights 1..100" : "equal weights", mt::minOf(moved),
                mt::maxOf(moved), 100 * mt::median(moved) / kTableSize,
                100 * (mt::median(moved) - mt::median(ideal)) / kTableSize);
  report.add({std::string("remove_1_of_1000_") + (weighted ? "weighted" : "equal"), "slots_moved",
              "slots", mt::median(moved), mt::median(ideal),
              weighted ? "ideal: the removed backend's slots" : "ideal: M/N slots", true, note});
}

}  // namespace

int main(int argc, char** argv) {
  mt::BenchReport report("maglev");
  uint64_t sink = 0;
  benchBuild(report, 100, sink);
  benchBuild(report, 1000, sink);
  benchRemoval(report, false);
  benchRemoval(report, true);
  std::printf("(checksum %llu)\n", static_cast<unsigned long long>(sink));
  return report.finish(argc, argv);
}
