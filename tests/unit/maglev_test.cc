// Proves that weighted Maglev tables give every backend its exact weighted share, move few
// slots when one backend is removed, added or reweighted, and come out the same whatever
// the input order and in whichever process they are built.
#include "agent/maglev.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace meshgate::agent {
namespace {

constexpr uint32_t kTableSize = 65537;

// n backends with weight 1, ids from first_id, keys "198.18.a.b" in id order.
std::vector<MaglevBackend> equalBackends(size_t n, uint32_t first_id = 1) {
  std::vector<MaglevBackend> out;
  for (uint32_t i = 0; i < n; i++) {
    const uint32_t id = first_id + i;
    out.push_back({"198.18." + std::to_string(id / 250) + "." + std::to_string(id % 250), id, 1});
  }
  return out;
}

std::vector<MaglevBackend> randomWeightBackends(size_t n, uint32_t max_weight, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<uint32_t> weight(1, max_weight);
  std::vector<MaglevBackend> out = equalBackends(n);
  for (MaglevBackend& b : out) {
    b.weight = weight(rng);
  }
  return out;
}

std::vector<uint32_t> mustBuild(const std::vector<MaglevBackend>& backends, uint32_t size) {
  auto table = buildMaglevTable(backends, size);
  EXPECT_TRUE(table.has_value()) << "build failed: " << table.error().message;
  return table.value_or(std::vector<uint32_t>{});
}

std::map<uint32_t, uint32_t> slotsPerId(const std::vector<uint32_t>& table) {
  std::map<uint32_t, uint32_t> counts;
  for (const uint32_t id : table) {
    counts[id]++;
  }
  return counts;
}

// Checks each backend's slot count against table_size * w / W: always within 1 slot, and
// within 1% where the ideal is at least 100 slots.
void expectWeightedShares(const std::vector<MaglevBackend>& backends, uint32_t size) {
  const std::vector<uint32_t> table = mustBuild(backends, size);
  ASSERT_EQ(table.size(), size) << "one entry per slot";
  std::map<uint32_t, uint32_t> counts = slotsPerId(table);
  const double total = std::accumulate(backends.begin(), backends.end(), 0.0,
                                       [](double sum, const auto& b) { return sum + b.weight; });
  for (const MaglevBackend& b : backends) {
    const double ideal = size * (b.weight / total);
    const double got = counts[b.id];
    EXPECT_LT(std::abs(got - ideal), 1.0)
        << b.key << " (weight " << b.weight << "): " << got << " slots, ideal " << ideal;
    if (ideal >= 100) {
      EXPECT_LE(std::abs(got - ideal) / ideal, 0.01)
          << b.key << " (weight " << b.weight << "): " << got << " slots, ideal " << ideal;
    }
  }
  size_t owned = 0;
  for (const MaglevBackend& b : backends) {
    owned += counts[b.id];
  }
  EXPECT_EQ(owned, size) << "every slot names one of the backends";
}

TEST(Maglev, IsPrimeAgreesWithTrialDivision) {
  for (uint32_t n = 0; n < 5000; n++) {
    bool prime = n >= 2;
    for (uint32_t d = 2; d * d <= n; d++) {
      prime = prime && n % d != 0;
    }
    EXPECT_EQ(isPrime(n), prime) << "n = " << n;
  }
  EXPECT_TRUE(isPrime(65537)) << "the default table size";
  EXPECT_TRUE(isPrime(kMaglevMaxTableSize)) << "the largest table size";
  EXPECT_FALSE(isPrime(65535)) << "3 * 5 * 17 * 257";
  EXPECT_FALSE(isPrime(4294967291u - 2)) << "4294967289 = 3 * 1431655763";
  EXPECT_TRUE(isPrime(4294967291u)) << "the largest 32-bit prime, without overflow";
}

TEST(Maglev, PreferenceListsVisitEverySlotOnce) {
  for (const uint32_t size : {2u, 3u, 13u, 101u, 4099u}) {
    for (const std::string key : {"198.18.1.10", "198.18.1.11", "fd00::10", ""}) {
      const MaglevPermutation p = maglevPermutation(key, size);
      ASSERT_LT(p.offset, size) << key << " in " << size;
      ASSERT_GE(p.skip, 1u) << key << " in " << size;
      ASSERT_LT(p.skip, size) << key << " in " << size;
      std::vector<bool> seen(size, false);
      for (uint64_t k = 0; k < size; k++) {
        seen[(p.offset + k * p.skip) % size] = true;
      }
      EXPECT_EQ(std::count(seen.begin(), seen.end(), true), size)
          << key << " in " << size << ": list is not a permutation";
    }
  }
}

// Fixed values: the hash is part of the fleet's contract (every balancer must derive the
// same lists), so a change here must be deliberate.
TEST(Maglev, KeyHashIsFixedAcrossHostsAndBuilds) {
  EXPECT_EQ(maglevKeyHash("198.18.1.10", kMaglevOffsetSeed), 0x1d2c91c135ba5f88ULL)
      << "offset hash of an IPv4 key changed";
  EXPECT_EQ(maglevKeyHash("198.18.1.10", kMaglevSkipSeed), 0x3e238dd84143b4acULL)
      << "skip hash of an IPv4 key changed";
  EXPECT_EQ(maglevKeyHash("fd00::10", kMaglevOffsetSeed), 0xd6c34a5b49c57d36ULL)
      << "offset hash of an IPv6 key changed";
  EXPECT_NE(maglevKeyHash("198.18.1.10", kMaglevOffsetSeed),
            maglevKeyHash("198.18.1.10", kMaglevSkipSeed))
      << "the two seeds must give independent hashes";
  // maglevPermutation() hashes with both seeds in one pass: the same hashes.
  for (const char* key : {"198.18.1.10", "fd00::10", "", "fd00:1234:5678:9abc::99999"}) {
    const MaglevPermutation p = maglevPermutation(key, kTableSize);
    EXPECT_EQ(p.offset, maglevKeyHash(key, kMaglevOffsetSeed) % kTableSize) << key;
    EXPECT_EQ(p.skip, maglevKeyHash(key, kMaglevSkipSeed) % (kTableSize - 1) + 1) << key;
  }
}

TEST(Maglev, EqualWeightsGiveEachBackendWithinOneSlotOfItsShare) {
  for (const size_t n : {1u, 3u, 10u, 100u, 1000u}) {
    const std::vector<uint32_t> table = mustBuild(equalBackends(n), kTableSize);
    const std::map<uint32_t, uint32_t> counts = slotsPerId(table);
    ASSERT_EQ(counts.size(), n) << "every backend gets slots, n = " << n;
    for (const auto& [id, count] : counts) {
      EXPECT_LE(count, kTableSize / n + 1) << "id " << id << ", n = " << n;
      EXPECT_GE(count, kTableSize / n) << "id " << id << ", n = " << n;
    }
  }
}

TEST(Maglev, SharesFollowWeightsOneTwoThree) {
  std::vector<MaglevBackend> backends = equalBackends(3);
  for (uint32_t i = 0; i < 3; i++) {
    backends[i].weight = i + 1;
  }
  expectWeightedShares(backends, kTableSize);
  expectWeightedShares(backends, 13);
}

TEST(Maglev, SharesFollowRandomWeightsWithinOnePercent) {
  expectWeightedShares(randomWeightBackends(10, 100, 1), kTableSize);
  expectWeightedShares(randomWeightBackends(1000, 100, 2), kTableSize);
  expectWeightedShares(randomWeightBackends(100, 1000000, 3), 4099);
  expectWeightedShares(randomWeightBackends(300, 4000000000u, 4), kMaglevMaxTableSize);
}

TEST(Maglev, SharesAreExactInTinyTables) {
  for (const uint32_t size : {2u, 3u, 5u, 7u, 11u}) {
    for (size_t n = 1; n <= size; n++) {
      expectWeightedShares(randomWeightBackends(n, 5, static_cast<uint32_t>(size * 100 + n)), size);
    }
  }
}

TEST(Maglev, DrainedBackendsGetNoSlotsAndChangeNothing) {
  std::vector<MaglevBackend> backends = randomWeightBackends(50, 100, 5);
  std::vector<MaglevBackend> with_drained = backends;
  with_drained.push_back({"198.18.9.1", 9001, 0});
  with_drained.insert(with_drained.begin(), {"198.18.0.0", 9002, 0});
  const std::vector<uint32_t> table = mustBuild(with_drained, kTableSize);
  const std::map<uint32_t, uint32_t> counts = slotsPerId(table);
  EXPECT_EQ(counts.count(9001), 0u) << "a drained backend owns slots";
  EXPECT_EQ(counts.count(9002), 0u) << "a drained backend owns slots";
  EXPECT_EQ(table, mustBuild(backends, kTableSize)) << "drained backends changed the table";
}

TEST(Maglev, NoActiveBackendGivesAnEmptyTable) {
  auto none = buildMaglevTable({}, kTableSize);
  ASSERT_TRUE(none.has_value()) << "no backends is not an error: " << none.error().message;
  EXPECT_TRUE(none->empty()) << "no backends, no table";
  std::vector<MaglevBackend> drained = equalBackends(3);
  for (MaglevBackend& b : drained) {
    b.weight = 0;
  }
  auto all_drained = buildMaglevTable(drained, kTableSize);
  ASSERT_TRUE(all_drained.has_value()) << "all drained is not an error";
  EXPECT_TRUE(all_drained->empty()) << "all drained, no table";
}

TEST(Maglev, RejectsBadTableSizesNamingTheSize) {
  const std::vector<MaglevBackend> ten = equalBackends(10);
  const auto expectError = [&](uint32_t size, const std::string& what) {
    auto table = buildMaglevTable(ten, size);
    ASSERT_FALSE(table.has_value()) << "table_size " << size << " accepted";
    EXPECT_NE(table.error().message.find(what), std::string::npos)
        << "table_size " << size << ": " << table.error().message;
    EXPECT_NE(table.error().message.find(std::to_string(size)), std::string::npos)
        << "the error does not name the size: " << table.error().message;
  };
  expectError(0, "not prime");
  expectError(1, "not prime");
  expectError(65536, "not prime");
  expectError(1048583, "exceeds the maximum");  // prime, just above kMaglevMaxTableSize
  expectError(7, "smaller than the 10 backends");

  std::vector<MaglevBackend> seven_active = equalBackends(10);
  seven_active[0].weight = seven_active[1].weight = seven_active[2].weight = 0;
  EXPECT_TRUE(buildMaglevTable(seven_active, 7).has_value())
      << "drained backends must not count against the table size";
}

TEST(Maglev, RejectsDuplicateKeysAndIdsNamingThem) {
  std::vector<MaglevBackend> same_key = equalBackends(5);
  same_key[3].key = same_key[1].key;
  auto key_error = buildMaglevTable(same_key, kTableSize);
  ASSERT_FALSE(key_error.has_value()) << "duplicate key accepted";
  EXPECT_NE(key_error.error().message.find("duplicate backend key '" + same_key[1].key + "'"),
            std::string::npos)
      << key_error.error().message;

  std::vector<MaglevBackend> same_id = equalBackends(5);
  same_id[4].id = same_id[0].id;
  same_id[4].weight = 0;  // drained backends still need their own id
  auto id_error = buildMaglevTable(same_id, kTableSize);
  ASSERT_FALSE(id_error.has_value()) << "duplicate id accepted";
  EXPECT_NE(id_error.error().message.find("duplicate backend id " + std::to_string(same_id[0].id)),
            std::string::npos)
      << id_error.error().message;
}

TEST(Maglev, SameTableForAnyInputOrder) {
  const std::vector<MaglevBackend> backends = randomWeightBackends(200, 100, 6);
  const std::vector<uint32_t> reference = mustBuild(backends, kTableSize);
  for (const uint32_t seed : {1u, 2u, 3u, 4u}) {
    std::vector<MaglevBackend> shuffled = backends;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(seed));
    EXPECT_EQ(mustBuild(shuffled, kTableSize), reference) << "shuffle seed " << seed;
  }
  std::vector<MaglevBackend> reversed(backends.rbegin(), backends.rend());
  EXPECT_EQ(mustBuild(reversed, kTableSize), reference) << "reversed input";
}

// Keys are sorted by their first 16 bytes, then by the whole key where those agree: long
// IPv6 keys of one prefix, and keys that differ only by trailing NULs, must come out in
// one order whatever the input order.
TEST(Maglev, SameTableForAnyInputOrderWithKeysSharingTheirFirst16Bytes) {
  std::vector<MaglevBackend> backends;
  for (uint32_t i = 0; i < 300; i++) {
    backends.push_back({"fd00:1234:5678:9abc::" + std::to_string(i * 37 % 1000), i + 1, 1 + i % 7});
  }
  backends.push_back({std::string("fd00:1234:5678:9", 16), 1001, 3});
  backends.push_back({std::string("fd00:1234:5678:9\0", 17), 1002, 3});
  backends.push_back({std::string("fd00:1234:5678:9\0\0", 18), 1003, 3});
  const std::vector<uint32_t> reference = mustBuild(backends, kTableSize);
  for (const uint32_t seed : {1u, 2u, 3u}) {
    std::vector<MaglevBackend> shuffled = backends;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(seed));
    EXPECT_EQ(mustBuild(shuffled, kTableSize), reference) << "shuffle seed " << seed;
  }
}

// The last free slots are found by the distance of each along the preference list; the
// AVX2 version (where the CPU has it) must pick what the scalar one and a plain search do,
// including a slot at distance 0, whose product is a multiple of M (for M = 103 and 479,
// among others, x * (1/M) in doubles comes out just under the quotient for some multiples).
TEST(Maglev, NearestFreeSlotAgreesWithAPlainSearch) {
  std::mt19937 rng(11);
  bool with_avx2 = false;
  for (const uint32_t m : {7u, 103u, 479u, 65537u, 1048573u}) {
    for (int round = 0; round < 200; round++) {
      std::vector<uint32_t> slots;
      std::vector<bool> used(m, false);
      const uint32_t count = 1 + rng() % std::min<uint32_t>(m, 300);
      while (slots.size() < count) {
        const uint32_t s = rng() % m;
        if (!used[s]) {
          used[s] = true;
          slots.push_back(s);
        }
      }
      const uint32_t skip = 1 + rng() % (m - 1);
      uint32_t next = rng() % m;
      if (round % 4 == 0) {
        next = slots[rng() % slots.size()];  // a free slot at distance 0
      }
      uint32_t inverse = 1;  // skip^(m-2) mod m, m prime
      for (uint64_t base = skip, e = m - 2; e > 0; e >>= 1, base = base * base % m) {
        if (e & 1) {
          inverse = static_cast<uint32_t>(inverse * base % m);
        }
      }
      ASSERT_EQ(uint64_t{skip} * inverse % m, 1u);
      uint32_t first_free = next;  // walk the list itself
      while (!used[first_free]) {
        first_free = static_cast<uint32_t>((uint64_t{first_free} + skip) % m);
      }
      const auto expected =
          static_cast<size_t>(std::find(slots.begin(), slots.end(), first_free) - slots.begin());
      const uint32_t shift = m - next;
      EXPECT_EQ(nearestFreeSlotForTest(slots, shift, inverse, m, false), expected)
          << "m " << m << " round " << round << ", plain";
      const std::optional<size_t> avx2 = nearestFreeSlotForTest(slots, shift, inverse, m, true);
      if (avx2) {
        EXPECT_EQ(*avx2, expected) << "m " << m << " round " << round << ", AVX2";
      }
      with_avx2 |= avx2.has_value();
    }
  }
  if (!with_avx2) {
    GTEST_SKIP() << "this CPU has no AVX2 and FMA: only the plain scan was checked";
  }
}

// One builder kept across builds (as the agent keeps one for all its VIPs) gives each
// table exactly as a fresh build does, whatever came before: a larger table, a smaller
// one, a rejected input, a set with no active backend, the same input twice.
TEST(Maglev, BuilderKeptAcrossBuildsGivesWhatAFreshBuildGives) {
  struct Case {
    std::vector<MaglevBackend> backends;
    uint32_t size;
  };
  std::vector<MaglevBackend> drained = equalBackends(5);
  for (MaglevBackend& b : drained) {
    b.weight = 0;
  }
  std::vector<MaglevBackend> duplicate = equalBackends(3);
  duplicate[2].key = duplicate[0].key;
  const std::vector<Case> cases = {
      {randomWeightBackends(1000, 100, 1), kTableSize},
      {randomWeightBackends(10, 5, 2), 251},  // smaller: stale slots past 251 must not show
      {randomWeightBackends(300, 100, 3), 131071},
      {duplicate, kTableSize},
      {drained, kTableSize},
      {randomWeightBackends(300, 100, 3), 131071},
      {equalBackends(997), 997},  // one slot each: the scan of the last free slots only
      {randomWeightBackends(1000, 100, 1), kTableSize},
  };
  MaglevBuilder builder;
  for (size_t i = 0; i < cases.size(); i++) {
    const auto fresh = buildMaglevTable(cases[i].backends, cases[i].size);
    const auto kept = builder.build(cases[i].backends, cases[i].size);
    ASSERT_EQ(fresh.has_value(), kept.has_value()) << "case " << i;
    if (!fresh) {
      EXPECT_EQ(fresh.error().message, kept.error().message) << "case " << i;
      continue;
    }
    EXPECT_TRUE(std::equal(fresh->begin(), fresh->end(), kept->begin(), kept->end()))
        << "case " << i << ": " << fresh->size() << " slots fresh, " << kept->size() << " kept";
  }
}

// The child has its own heap (churned on purpose) and builds from reversed input; the
// table comes back over a pipe and must match the parent's byte for byte.
TEST(Maglev, SameTableInAChildProcess) {
  const std::vector<MaglevBackend> backends = randomWeightBackends(300, 100, 7);
  const std::vector<uint32_t> parent = mustBuild(backends, kTableSize);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0) << "pipe failed";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0) << "fork failed";
  if (pid == 0) {
    close(fds[0]);
    std::vector<std::string> churn;
    for (int i = 0; i < 1000; i++) {
      churn.emplace_back(static_cast<size_t>(17 * i % 613), 'x');
    }
    const std::vector<MaglevBackend> reversed(backends.rbegin(), backends.rend());
    auto table = buildMaglevTable(reversed, kTableSize);
    const size_t bytes = table ? table->size() * sizeof(uint32_t) : 0;
    const auto* data = table ? reinterpret_cast<const char*>(table->data()) : nullptr;
    size_t sent = 0;
    while (sent < bytes) {
      const ssize_t n = write(fds[1], data + sent, bytes - sent);
      if (n <= 0) {
        _exit(1);
      }
      sent += static_cast<size_t>(n);
    }
    _exit(table ? 0 : 2);
  }
  close(fds[1]);
  std::vector<uint32_t> child(kTableSize);
  size_t got = 0;
  const size_t bytes = child.size() * sizeof(uint32_t);
  while (got < bytes) {
    const ssize_t n = read(fds[0], reinterpret_cast<char*>(child.data()) + got, bytes - got);
    if (n <= 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid) << "waitpid failed";
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child failed: " << status;
  ASSERT_EQ(got, bytes) << "short table from the child";
  EXPECT_EQ(child, parent) << "the child built a different table";
}

// Slots whose owner changed, not counting slots that the changed backend lost or gained
// (those must move), as a fraction of the table.
double otherSlotsMoved(const std::vector<uint32_t>& before, const std::vector<uint32_t>& after,
                       uint32_t changed_id) {
  size_t moved = 0;
  for (size_t s = 0; s < before.size(); s++) {
    moved += before[s] != after[s] && before[s] != changed_id && after[s] != changed_id;
  }
  return static_cast<double>(moved) / before.size();
}

constexpr double kMaxOtherSlotsMoved = 0.02;

class MaglevDisruption : public ::testing::TestWithParam<size_t> {};

TEST_P(MaglevDisruption, RemovingOneBackendMovesAtMostTwoPercentOfOtherSlots) {
  const std::vector<MaglevBackend> backends = equalBackends(GetParam());
  const std::vector<uint32_t> before = mustBuild(backends, kTableSize);
  for (const size_t victim : {size_t{0}, backends.size() / 2, backends.size() - 1}) {
    std::vector<MaglevBackend> fewer = backends;
    fewer.erase(fewer.begin() + static_cast<ptrdiff_t>(victim));
    const std::vector<uint32_t> after = mustBuild(fewer, kTableSize);
    const uint32_t id = backends[victim].id;
    EXPECT_EQ(std::count(after.begin(), after.end(), id), 0) << "removed id " << id << " kept";
    EXPECT_LE(otherSlotsMoved(before, after, id), kMaxOtherSlotsMoved)
        << "removing id " << id << " of " << backends.size();
  }
}

TEST_P(MaglevDisruption, AddingOneBackendMovesAtMostTwoPercentOfOtherSlots) {
  const std::vector<MaglevBackend> backends = equalBackends(GetParam());
  const std::vector<uint32_t> before = mustBuild(backends, kTableSize);
  std::vector<MaglevBackend> more = backends;
  more.push_back({"198.18.200.1", 50001, 1});
  const std::vector<uint32_t> after = mustBuild(more, kTableSize);
  EXPECT_GE(std::count(after.begin(), after.end(), 50001u), kTableSize / (GetParam() + 1))
      << "the new backend did not get its share";
  EXPECT_LE(otherSlotsMoved(before, after, 50001), kMaxOtherSlotsMoved)
      << "adding one to " << backends.size();
}

TEST_P(MaglevDisruption, ChangingOneWeightMovesAtMostTwoPercentOfOtherSlots) {
  const std::vector<MaglevBackend> backends = equalBackends(GetParam());
  const std::vector<uint32_t> before = mustBuild(backends, kTableSize);
  std::vector<MaglevBackend> reweighted = backends;
  reweighted[backends.size() / 3].weight = 2;
  const uint32_t id = reweighted[backends.size() / 3].id;
  const std::vector<uint32_t> after = mustBuild(reweighted, kTableSize);
  EXPECT_GT(std::count(after.begin(), after.end(), id),
            std::count(before.begin(), before.end(), id))
      << "doubling a weight did not add slots";
  EXPECT_LE(otherSlotsMoved(before, after, id), kMaxOtherSlotsMoved)
      << "doubling the weight of id " << id << " of " << backends.size();
}

INSTANTIATE_TEST_SUITE_P(Backends, MaglevDisruption, ::testing::Values(10, 100, 1000));

TEST(Maglev, ChangesToRandomlyWeightedBackendsMoveAtMostTwoPercentOfOtherSlots) {
  const std::vector<MaglevBackend> backends = randomWeightBackends(1000, 100, 8);
  const std::vector<uint32_t> before = mustBuild(backends, kTableSize);
  std::vector<MaglevBackend> fewer = backends;
  fewer.erase(fewer.begin() + 500);
  EXPECT_LE(otherSlotsMoved(before, mustBuild(fewer, kTableSize), backends[500].id),
            kMaxOtherSlotsMoved)
      << "removing one of 1000";
  std::vector<MaglevBackend> more = backends;
  more.push_back({"198.18.200.1", 50001, 100});
  EXPECT_LE(otherSlotsMoved(before, mustBuild(more, kTableSize), 50001), kMaxOtherSlotsMoved)
      << "adding one with the top weight";
  std::vector<MaglevBackend> reweighted = backends;
  reweighted[250].weight = reweighted[250].weight * 3;
  EXPECT_LE(otherSlotsMoved(before, mustBuild(reweighted, kTableSize), backends[250].id),
            kMaxOtherSlotsMoved)
      << "tripling one weight";
}

}  // namespace
}  // namespace meshgate::agent
