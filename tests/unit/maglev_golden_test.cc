// Pins the tables buildMaglevTable() builds: every balancer of a fleet must build the same
// table from the same config, and so must the next version of the agent, or an upgrade
// reshuffles established flows across the fleet. A fixed set of random configurations
// (sizes, backend counts, five weight shapes, three key shapes) is built and each table's
// FNV-1a digest compared with the one recorded when the tables were first pinned. An
// optimisation of agent/maglev.cc must keep every digest; a deliberate change of the
// algorithm must say so here, and in the release notes, with the new digests.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "agent/maglev.h"

namespace meshgate::agent {
namespace {

enum class Weights { kUniform, kEqual, kPowersOfTwo, kHugeRatios, kOneGiant };

uint32_t drawWeight(std::mt19937_64& rng, Weights mode, size_t index) {
  switch (mode) {
    case Weights::kUniform:  // 1..100, a fifth drained
      return rng() % 5 == 0 ? 0 : static_cast<uint32_t>(1 + rng() % 100);
    case Weights::kEqual:  // every claim round is a tie broken by key order
      return 1;
    case Weights::kPowersOfTwo:  // claims of different backends often at the same time
      return uint32_t{1} << (rng() % 32);
    case Weights::kHugeRatios: {  // log-uniform, some drained: many get no slot
      if (rng() % 10 == 0) {
        return 0;
      }
      const uint64_t bits = 1 + rng() % 32;
      return static_cast<uint32_t>(std::max<uint64_t>(1, rng() & ((uint64_t{1} << bits) - 1)));
    }
    case Weights::kOneGiant:
      return index == 0 ? UINT32_MAX : static_cast<uint32_t>(1 + rng() % 1000);
  }
  return 1;
}

// Unique keys: IPv4 text, IPv6 text sharing a long prefix, raw bytes with NULs. Shuffled
// with a Fisher-Yates of our own (std::shuffle's algorithm is the library's choice).
std::vector<MaglevBackend> randomBackends(std::mt19937_64& rng, size_t n, Weights mode) {
  std::vector<MaglevBackend> out;
  std::set<std::string> keys;
  const auto first_id = static_cast<uint32_t>(rng() % 100000);
  while (keys.size() < n) {
    const size_t i = keys.size();
    std::string key;
    switch (rng() % 3) {
      case 0:
        key = "10." + std::to_string(rng() % 256) + "." + std::to_string(rng() % 256) + "." +
              std::to_string(rng() % 256);
        break;
      case 1:
        key = "fd00:1234:5678:9abc::" + std::to_string(rng() % 100000);
        break;
      default:
        key.resize(rng() % 21);
        for (char& c : key) {
          c = static_cast<char>(rng() % 4 == 0 ? 0 : rng());
        }
    }
    if (keys.insert(key).second) {
      out.push_back({key, first_id + static_cast<uint32_t>(i) * 7, drawWeight(rng, mode, i)});
    }
  }
  for (size_t i = out.size(); i > 1; i--) {
    std::swap(out[i - 1], out[rng() % i]);
  }
  return out;
}

uint64_t digest(const std::vector<uint32_t>& table) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const uint32_t v : table) {
    for (int b = 0; b < 4; b++) {
      h = (h ^ ((v >> (8 * b)) & 0xff)) * 0x100000001b3ULL;
    }
  }
  return h;
}

struct Pinned {
  uint32_t table_size;
  uint64_t digest;  // 0: the build is refused (e.g. more backends than slots)
};

// Recorded from agent/maglev.cc as of 2026-11-26 (the tables since the first weighted
// Maglev). Config i uses weights shape i % 5 and the i-th draw of the seed-42 generator.
constexpr Pinned kPinned[] = {
#include "maglev_golden_digests.inc"
};

TEST(MaglevGolden, EveryPinnedTableIsBuiltBitForBit) {
  std::mt19937_64 rng(42);
  constexpr Weights kShapes[] = {Weights::kUniform, Weights::kEqual, Weights::kPowersOfTwo,
                                 Weights::kHugeRatios, Weights::kOneGiant};
  std::string recorded;
  for (size_t i = 0; i < std::size(kPinned); i++) {
    const uint32_t m = kPinned[i].table_size;
    const size_t max_backends = std::min<size_t>(2000, m + 2);  // a few refused ones too
    const double log_n = std::log(static_cast<double>(max_backends)) * (rng() % 1001) / 1000.0;
    const size_t n = std::max<size_t>(1, static_cast<size_t>(std::exp(log_n)));
    const auto backends = randomBackends(rng, n, kShapes[i % std::size(kShapes)]);
    auto table = buildMaglevTable(backends, m);
    const uint64_t got = table ? digest(*table) : 0;
    char line[64];
    std::snprintf(line, sizeof line, "    {%u, 0x%016llxULL},\n", m,
                  static_cast<unsigned long long>(got));
    recorded += line;
    EXPECT_EQ(got, kPinned[i].digest)
        << "config " << i << " (M = " << m << ", " << n << " backends) builds a different table"
        << (table ? "" : ": " + table.error().message);
  }
  if (::testing::Test::HasFailure()) {
    std::printf("the digests this build records:\n%s", recorded.c_str());
  }
}

}  // namespace
}  // namespace meshgate::agent
