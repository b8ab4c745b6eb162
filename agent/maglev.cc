#include "agent/maglev.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace meshgate::agent {
namespace {

constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

// Claims are bucketed into at most M / kClaimsPerRound rounds of virtual time.
constexpr uint32_t kClaimsPerRound = 16;

// The fill scans the free slots once kScanFactor * sqrt(M) are left, where a scan of the
// free slots (about 0.6 ns a slot with AVX2) costs less than a walk (about 1 ns a place).
constexpr double kScanFactor = 1.25;

uint64_t fmix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// The first 16 bytes of a key, zero-padded, as two big-endian words: comparing prefixes
// orders keys as comparing the strings does, except that equal prefixes need the strings.
struct KeyRef {
  uint64_t hi;
  uint64_t lo;
  std::string_view key;
  uint32_t index;

  bool operator<(const KeyRef& o) const {
    if (hi != o.hi) {
      return hi < o.hi;
    }
    if (lo != o.lo) {
      return lo < o.lo;
    }
    return key < o.key;
  }
};

KeyRef keyRef(std::string_view key, uint32_t index) {
  unsigned char bytes[16] = {};
  std::memcpy(bytes, key.data(), std::min<size_t>(key.size(), sizeof(bytes)));
  uint64_t hi = 0, lo = 0;
  for (int i = 0; i < 8; i++) {
    hi = hi << 8 | bytes[i];
    lo = lo << 8 | bytes[i + 8];
  }
  return {hi, lo, key, index};
}

// The backends as KeyRefs sorted by key. A least-significant-digit radix sort by the
// 16-byte prefixes, over the byte positions where they differ (the text addresses of one
// network share most of theirs), then the keys that agree on all 16 bytes by the whole
// string. About a third of std::sort's time for 1000 keys.
std::vector<KeyRef> sortedByKey(std::span<const MaglevBackend> backends) {
  const auto n = static_cast<uint32_t>(backends.size());
  std::vector<KeyRef> keys;
  keys.reserve(n);
  uint64_t hi_or = 0, hi_and = UINT64_MAX, lo_or = 0, lo_and = UINT64_MAX;
  for (uint32_t i = 0; i < n; i++) {
    keys.push_back(keyRef(backends[i].key, i));
    hi_or |= keys.back().hi;
    hi_and &= keys.back().hi;
    lo_or |= keys.back().lo;
    lo_and &= keys.back().lo;
  }
  std::vector<KeyRef> spare(n);
  for (int byte = 0; byte < 16; byte++) {  // the least significant byte of lo first
    const bool in_lo = byte < 8;
    const int shift = 8 * (byte % 8);
    if ((((in_lo ? lo_or ^ lo_and : hi_or ^ hi_and) >> shift) & 0xff) == 0) {
      continue;  // the same in every key
    }
    const auto digit = [&](const KeyRef& k) { return ((in_lo ? k.lo : k.hi) >> shift) & 0xff; };
    std::array<uint32_t, 257> next{};
    for (const KeyRef& k : keys) {
      next[digit(k) + 1]++;
    }
    std::partial_sum(next.begin(), next.end(), next.begin());
    for (const KeyRef& k : keys) {
      spare[next[digit(k)]++] = k;
    }
    keys.swap(spare);
  }
  for (uint32_t i = 0; i < n;) {
    uint32_t end = i + 1;
    while (end < n && keys[end].hi == keys[i].hi && keys[end].lo == keys[i].lo) {
      end++;
    }
    if (end - i > 1) {
      std::sort(keys.begin() + i, keys.begin() + end);
    }
    i = end;
  }
  return keys;
}

// The first backend (by position) whose id an earlier one has, and that earlier one, by
// open addressing in a power-of-two table at most half full; nullopt if ids are unique.
std::optional<std::pair<uint32_t, uint32_t>> duplicateId(std::span<const MaglevBackend> backends) {
  const auto n = static_cast<uint32_t>(backends.size());
  const uint32_t capacity = std::bit_ceil(std::max<uint32_t>(2 * n, 16));
  std::vector<uint64_t> slots(capacity, 0);  // (index + 1) << 32 | id; 0 is empty
  for (uint32_t i = 0; i < n; i++) {
    const uint32_t id = backends[i].id;
    uint32_t slot =
        static_cast<uint32_t>((uint64_t{id} * 0x9e3779b97f4a7c15ULL) >> 32) & (capacity - 1);
    while (slots[slot] != 0) {
      if (static_cast<uint32_t>(slots[slot]) == id) {
        return std::pair{static_cast<uint32_t>((slots[slot] >> 32) - 1), i};
      }
      slot = (slot + 1) & (capacity - 1);
    }
    slots[slot] = uint64_t{i + 1} << 32 | id;
  }
  return std::nullopt;
}

// Validates the input and returns the indices of the backends with weight > 0, sorted by key.
Result<std::vector<uint32_t>> activeBackendsByKey(std::span<const MaglevBackend> backends,
                                                  uint32_t table_size) {
  if (table_size > kMaglevMaxTableSize) {
    return fail("maglev: table_size " + std::to_string(table_size) + " exceeds the maximum " +
                std::to_string(kMaglevMaxTableSize));
  }
  if (!isPrime(table_size)) {
    return fail("maglev: table_size " + std::to_string(table_size) + " is not prime");
  }
  const std::vector<KeyRef> by_key = sortedByKey(backends);
  for (size_t i = 1; i < by_key.size(); i++) {
    if (by_key[i - 1].key == by_key[i].key) {
      return fail("maglev: duplicate backend key '" + std::string(by_key[i].key) + "'");
    }
  }
  if (const auto dup = duplicateId(backends)) {
    return fail("maglev: duplicate backend id " + std::to_string(backends[dup->second].id) +
                " (keys '" + backends[dup->first].key + "' and '" + backends[dup->second].key +
                "')");
  }
  std::vector<uint32_t> active;
  active.reserve(by_key.size());
  for (const KeyRef& k : by_key) {
    if (backends[k.index].weight > 0) {
      active.push_back(k.index);
    }
  }
  if (active.size() > table_size) {
    return fail("maglev: table_size " + std::to_string(table_size) + " is smaller than the " +
                std::to_string(active.size()) + " backends with weight > 0");
  }
  return active;
}

// Largest-remainder (Hamilton) apportionment of `seats` by weight, in exact integers: each
// gets floor(seats * w / W), and the seats left over go to the largest remainders, ties to
// the earlier index (the smaller key). Every quota is within 1 of seats * w / W.
std::vector<uint32_t> apportion(const std::vector<uint64_t>& weights, uint32_t seats) {
  const uint64_t total = std::accumulate(weights.begin(), weights.end(), uint64_t{0});
  std::vector<uint32_t> quotas(weights.size());
  std::vector<uint64_t> remainders(weights.size());
  uint64_t given = 0;
  for (size_t i = 0; i < weights.size(); i++) {
    const uint64_t share = uint64_t{seats} * weights[i];  // < 2^20 * 2^32: no overflow
    quotas[i] = static_cast<uint32_t>(share / total);
    remainders[i] = share % total;
    given += quotas[i];
  }
  std::vector<uint32_t> order(weights.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t left = seats - given;  // < weights.size(), since each remainder is < 1 seat
  std::nth_element(order.begin(), order.begin() + left, order.end(), [&](uint32_t a, uint32_t b) {
    return remainders[a] != remainders[b] ? remainders[a] > remainders[b] : a < b;
  });
  for (size_t k = 0; k < left; k++) {
    quotas[order[k]]++;
  }
  return quotas;
}

// The order in which backends claim slots, as indices into `weights`: backend i makes its
// quotas[i] claims at virtual times (k + 1/2) / w_i, k = 0, 1, ..., earliest first, so a
// change to one backend never reorders the claims of the others. Time is cut into rounds of
// 1/P, P a power of two giving at most M / kClaimsPerRound rounds (fine enough that claims
// at different times rarely share a round), and claims in one round go in key order. A
// counting sort by round over claims generated in key order does this in O(M).
void claimOrder(const std::vector<uint64_t>& weights, const std::vector<uint32_t>& quotas,
                std::vector<uint32_t>& start, std::span<uint32_t> order) {
  const auto m = static_cast<uint32_t>(order.size());
  const auto n = static_cast<uint32_t>(weights.size());
  uint32_t last = 0;  // the backend whose last claim comes latest: max (2q - 1) / 2w
  for (uint32_t i = 1; i < n; i++) {
    if ((2 * uint64_t{quotas[i]} - 1) * weights[last] >
        (2 * uint64_t{quotas[last]} - 1) * weights[i]) {
      last = i;
    }
  }
  // Claim k falls in round floor(((2k + 1) P - 1) / 2w); 2k + 1 < 2^21, so P <= 2^40.
  int shift = 40;
  const auto lastRound = [&] {
    return (((2 * uint64_t{quotas[last]} - 1) << shift) - 1) / (2 * weights[last]);
  };
  const uint32_t max_rounds = std::max<uint32_t>(1, m / kClaimsPerRound);
  while (shift > 0 && lastRound() >= max_rounds) {
    shift--;
  }
  // The "- 1" can put another backend's last claim one round after the last one's.
  const auto rounds = static_cast<uint32_t>(lastRound()) + 2;

  // A backend's rounds advance by 2P / 2w per claim: an integer step, a carried remainder.
  // Claims k and k + 1 are computed by two chains, each stepping two claims at a time, so
  // that neither waits for the other's carry.
  const uint64_t two_p = uint64_t{2} << shift;
  const auto forEachRound = [two_p](uint64_t weight, uint32_t quota, auto&& onRound) {
    struct Chain {
      uint64_t round;
      uint64_t rem;  // < period
    };
    const uint64_t period = 2 * weight;
    const auto advance = [period](Chain& c, uint64_t step, uint64_t step_rem) {
      c.rem += step_rem;
      const bool carry = c.rem >= period;
      c.round += step + carry;
      c.rem -= carry ? period : 0;
    };
    Chain even{((two_p >> 1) - 1) / period, ((two_p >> 1) - 1) % period};
    Chain odd = even;
    advance(odd, two_p / period, two_p % period);
    const uint64_t step2 = 2 * two_p / period;
    const uint64_t step2_rem = 2 * two_p % period;
    uint32_t k = quota;
    for (; k >= 2; k -= 2) {
      onRound(static_cast<uint32_t>(even.round));
      onRound(static_cast<uint32_t>(odd.round));
      advance(even, step2, step2_rem);
      advance(odd, step2, step2_rem);
    }
    if (k == 1) {
      onRound(static_cast<uint32_t>(even.round));
    }
  };
  // Claims per round. Backends of equal weight and quota claim in the same rounds, and
  // configs rarely have many distinct weights: each such group is walked once.
  std::vector<uint64_t> groups(n);  // weight << 20 | quota, as quota < 2^20
  for (uint32_t i = 0; i < n; i++) {
    groups[i] = weights[i] << 20 | quotas[i];
  }
  std::sort(groups.begin(), groups.end());
  start.assign(rounds + 1, 0);
  for (uint32_t g = 0; g < n;) {
    uint32_t members = 1;
    while (g + members < n && groups[g + members] == groups[g]) {
      members++;
    }
    forEachRound(groups[g] >> 20, groups[g] & ((1u << 20) - 1),
                 [&](uint32_t round) { start[round + 1] += members; });
    g += members;
  }
  std::partial_sum(start.begin(), start.end(), start.begin());
  for (uint32_t i = 0; i < n; i++) {
    forEachRound(weights[i], quotas[i], [&](uint32_t round) { order[start[round]++] = i; });
  }
}

// (slot + step) mod m for slot, step < m, given back = m - step: no division.
inline uint32_t advance(uint32_t slot, uint32_t step, uint32_t back) {
  return slot >= back ? slot - back : slot + step;
}

// x^-1 mod m for prime m, by the extended Euclidean algorithm.
uint32_t inverseMod(uint32_t x, uint32_t m) {
  int64_t t = 0, new_t = 1;
  uint32_t r = m, new_r = x;
  while (new_r != 0) {
    const uint32_t q = r / new_r;
    t = std::exchange(new_t, t - int64_t{q} * new_t);
    r = std::exchange(new_r, r - q * new_r);
  }
  return static_cast<uint32_t>(t < 0 ? t + m : t);
}

// The index in `slots` (distinct slots below m) of the one with the smallest
// (slot + shift) * inverse mod m: the first free slot of a preference list among the free
// slots, given shift = m - next and inverse = skip^-1 mod m. Requires !slots.empty().
size_t nearestFreeSlotScalar(std::span<const uint32_t> slots, uint32_t shift, uint32_t inverse,
                             uint32_t m) {
  const uint64_t barrett = UINT64_MAX / m;  // x mod m by Barrett reduction, one correction
  uint64_t best_distance = UINT64_MAX;
  size_t best = 0;
  for (size_t f = 0; f < slots.size(); f++) {
    const uint64_t x = uint64_t{slots[f] + shift} * inverse;
    const auto q = static_cast<uint64_t>((static_cast<unsigned __int128>(x) * barrett) >> 64);
    uint64_t distance = x - q * m;
    distance = distance >= m ? distance - m : distance;
    if (distance < best_distance) {
      best_distance = distance;
      best = f;
    }
  }
  return best;
}

#if defined(__x86_64__)
bool cpuHasAvx2() {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return avx2;
}

// distance * 2^21 + index for the four slots at `slots` (see nearestFreeSlotAvx2()).
__attribute__((target("avx2,fma"), always_inline)) inline __m256d distanceKeys(
    const uint32_t* slots, __m256d index, __m256d shift, __m256d inverse, __m256d m, __m256d inv_m,
    __m256d index_bits) {
  const __m256d s = _mm256_cvtepi32_pd(_mm_loadu_si128(reinterpret_cast<const __m128i*>(slots)));
  const __m256d x = _mm256_mul_pd(_mm256_add_pd(s, shift), inverse);
  const __m256d q = _mm256_floor_pd(_mm256_mul_pd(x, inv_m));
  const __m256d r = _mm256_fnmadd_pd(q, m, x);
  const __m256d r_less_m = _mm256_sub_pd(r, m);
  const __m256d distance = _mm256_blendv_pd(r_less_m, r, r_less_m);  // r where r - m < 0
  return _mm256_fmadd_pd(distance, index_bits, index);
}

// Eight slots at a time in doubles, which hold x = (s + shift) * inverse < 2^41 exactly:
// q = floor(x * (1/m)) is the exact quotient except where x is a multiple of m, where it can
// come out one less and leave a remainder of m instead of 0, corrected below. Each distance
// is kept as distance * 2^21 + index (exact, < 2^41; m and the index are below 2^20), so a
// plain minimum finds both. Distances are distinct (slot -> distance is a bijection), so
// the answer is the scalar version's.
__attribute__((target("avx2,fma"))) size_t nearestFreeSlotAvx2(std::span<const uint32_t> slots,
                                                               uint32_t shift, uint32_t inverse,
                                                               uint32_t m) {
  constexpr double kIndexBits = 0x1p21;
  const __m256d vm = _mm256_set1_pd(m);
  const __m256d vinv_m = _mm256_set1_pd(1.0 / m);
  const __m256d vshift = _mm256_set1_pd(shift);
  const __m256d vinverse = _mm256_set1_pd(inverse);
  const __m256d index_bits = _mm256_set1_pd(kIndexBits);
  const __m256d eight = _mm256_set1_pd(8);
  __m256d best_low = _mm256_set1_pd(m * kIndexBits);  // above every key
  __m256d best_high = best_low;
  __m256d index_low = _mm256_setr_pd(0, 1, 2, 3);
  __m256d index_high = _mm256_setr_pd(4, 5, 6, 7);
  size_t f = 0;
  for (; f + 8 <= slots.size(); f += 8) {  // two chains of minima
    best_low = _mm256_min_pd(best_low, distanceKeys(slots.data() + f, index_low, vshift, vinverse,
                                                    vm, vinv_m, index_bits));
    best_high = _mm256_min_pd(best_high, distanceKeys(slots.data() + f + 4, index_high, vshift,
                                                      vinverse, vm, vinv_m, index_bits));
    index_low = _mm256_add_pd(index_low, eight);
    index_high = _mm256_add_pd(index_high, eight);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_min_pd(best_low, best_high));
  double best = std::min({lanes[0], lanes[1], lanes[2], lanes[3]});
  for (; f < slots.size(); f++) {
    const uint64_t distance = uint64_t{slots[f] + shift} * inverse % m;
    best = std::min(best, static_cast<double>(distance) * kIndexBits + static_cast<double>(f));
  }
  return static_cast<size_t>(std::fmod(best, kIndexBits));
}
#endif

// The AVX2 version where the CPU has it: the two give the same answer.
size_t nearestFreeSlot(std::span<const uint32_t> slots, uint32_t shift, uint32_t inverse,
                       uint32_t m) {
#if defined(__x86_64__)
  if (cpuHasAvx2()) {
    return nearestFreeSlotAvx2(slots, shift, inverse, m);
  }
#endif
  return nearestFreeSlotScalar(slots, shift, inverse, m);
}

// A backend's place in its preference list.
struct Walker {
  uint32_t next;  // the next slot of its list not yet looked at
  uint32_t skip;
  uint32_t id;
  uint32_t skip_inverse;  // skip^-1 mod M, 0 until needed
};

// Gives each claim the first free slot of its backend's preference list. There are three
// ways to find it, cheapest by how full the table is; all three give the same slot.
class TableFiller {
 public:
  // `taken` and `free_slots` are working memory, kept by the caller from fill to fill.
  TableFiller(std::vector<Walker> walkers, uint32_t m, std::vector<uint64_t>& taken,
              std::vector<uint32_t>& free_slots)
      : walkers_(std::move(walkers)), m_(m), taken_(taken), free_slots_(free_slots) {
    taken_.assign((m + 63) / 64, 0);
    free_slots_.clear();
  }

  // Every slot of `table` (M of them) is claimed once: the quotas add up to M.
  void fill(std::span<const uint32_t> order, std::span<uint32_t> table) {
    // Below a quarter full the first slot tried is usually free: one probe per step. The
    // last claims would walk about M / (free slots) places: once a few sqrt(M) slots are
    // left, scanning them is cheaper.
    const uint32_t pair_walk_from = m_ / 4;
    const auto scan_slots = static_cast<uint32_t>(kScanFactor * std::sqrt(1.0 * m_));
    const uint32_t scan_from = m_ - std::min(m_, scan_slots);
    uint32_t j = 0;
    for (; j < pair_walk_from; j++) {
      claim(table, walkers_[order[j]], walk(walkers_[order[j]]));
    }
    for (; j < scan_from; j++) {
      claim(table, walkers_[order[j]], pairWalk(walkers_[order[j]]));
    }
    collectFreeSlots();
    for (; j < m_; j++) {
      claim(table, walkers_[order[j]], scan(walkers_[order[j]]));
    }
  }

 private:
  bool taken(uint32_t slot) const { return taken_[slot >> 6] >> (slot & 63) & 1; }

  void claim(std::span<uint32_t> table, Walker& w, uint32_t slot) {
    taken_[slot >> 6] |= uint64_t{1} << (slot & 63);
    table[slot] = w.id;
    w.next = advance(slot, w.skip, m_ - w.skip);
  }

  uint32_t walk(const Walker& w) const {
    const uint32_t back = m_ - w.skip;
    uint32_t slot = w.next;
    while (taken(slot)) {
      slot = advance(slot, w.skip, back);
    }
    return slot;
  }

  // Two independent chains of additions: list positions k, k + 2, ... and k + 1, k + 3, ...
  uint32_t pairWalk(const Walker& w) const {
    const uint32_t skip2 = advance(w.skip, w.skip, m_ - w.skip);
    const uint32_t back2 = m_ - skip2;
    uint32_t even = w.next;
    uint32_t odd = advance(even, w.skip, m_ - w.skip);
    while (taken(even) & taken(odd)) {
      even = advance(even, skip2, back2);
      odd = advance(odd, skip2, back2);
    }
    return taken(even) ? odd : even;
  }

  void collectFreeSlots() {
    for (uint32_t word = 0; word < taken_.size(); word++) {
      for (uint64_t free = ~taken_[word]; free != 0; free &= free - 1) {
        const uint32_t slot = word * 64 + std::countr_zero(free);
        if (slot < m_) {
          free_slots_.push_back(slot);
        }
      }
    }
  }

  // Slot s is (s - next) * skip^-1 mod M places down the list, so the first free slot is
  // the free slot at the smallest such distance.
  uint32_t scan(Walker& w) {
    if (w.skip_inverse == 0) {
      w.skip_inverse = inverseMod(w.skip, m_);
    }
    const size_t best = nearestFreeSlot(free_slots_, m_ - w.next, w.skip_inverse, m_);
    const uint32_t slot = free_slots_[best];
    free_slots_[best] = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }

  std::vector<Walker> walkers_;
  const uint32_t m_;
  std::vector<uint64_t>& taken_;  // a bitmap of slots
  std::vector<uint32_t>& free_slots_;
};

}  // namespace

std::optional<size_t> nearestFreeSlotForTest(std::span<const uint32_t> slots, uint32_t shift,
                                             uint32_t inverse, uint32_t m, bool avx2) {
  if (!avx2) {
    return nearestFreeSlotScalar(slots, shift, inverse, m);
  }
#if defined(__x86_64__)
  if (cpuHasAvx2()) {
    return nearestFreeSlotAvx2(slots, shift, inverse, m);
  }
#endif
  return std::nullopt;
}

uint64_t maglevKeyHash(std::string_view key, uint64_t seed) {
  uint64_t h = kFnvOffsetBasis ^ seed;
  for (const char c : key) {
    h ^= static_cast<uint8_t>(c);
    h *= kFnvPrime;
  }
  return fmix64(h);
}

MaglevPermutation maglevPermutation(std::string_view key, uint32_t table_size) {
  // maglevKeyHash() with both seeds, in one pass over the key.
  uint64_t h1 = kFnvOffsetBasis ^ kMaglevOffsetSeed;
  uint64_t h2 = kFnvOffsetBasis ^ kMaglevSkipSeed;
  for (const char c : key) {
    h1 = (h1 ^ static_cast<uint8_t>(c)) * kFnvPrime;
    h2 = (h2 ^ static_cast<uint8_t>(c)) * kFnvPrime;
  }
  h1 = fmix64(h1);
  h2 = fmix64(h2);
  return {static_cast<uint32_t>(h1 % table_size), static_cast<uint32_t>(h2 % (table_size - 1) + 1)};
}

bool isPrime(uint32_t n) {
  if (n < 4) {
    return n >= 2;
  }
  if (n % 2 == 0) {
    return false;
  }
  for (uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) {
      return false;
    }
  }
  return true;
}

// The fill is the paper's: backends take turns claiming the next free slot of their
// preference list. Two changes make it weighted with exact shares: a backend stops at its
// quota, so shares are exact however the lists collide, and turns follow claimOrder(), so
// heavy and light backends fill at the same relative pace throughout, which keeps a change
// to one backend from reshuffling the others.
Result<std::span<const uint32_t>> MaglevBuilder::build(std::span<const MaglevBackend> backends,
                                                       uint32_t table_size) {
  auto active = activeBackendsByKey(backends, table_size);
  if (!active) {
    return std::unexpected(std::move(active.error()));
  }
  if (active->empty()) {
    return std::span<const uint32_t>{};
  }
  // From here on, only backends with a non-zero quota (weights tiny next to the total
  // may have none), in key order.
  std::vector<uint64_t> all_weights;
  all_weights.reserve(active->size());
  for (const uint32_t i : *active) {
    all_weights.push_back(backends[i].weight);
  }
  const std::vector<uint32_t> all_quotas = apportion(all_weights, table_size);
  std::vector<uint64_t> weights;
  std::vector<uint32_t> quotas;
  std::vector<Walker> walkers;
  for (size_t k = 0; k < active->size(); k++) {
    if (all_quotas[k] > 0) {
      const MaglevBackend& b = backends[(*active)[k]];
      const MaglevPermutation p = maglevPermutation(b.key, table_size);
      weights.push_back(b.weight);
      quotas.push_back(all_quotas[k]);
      walkers.push_back({p.offset, p.skip, b.id, 0});
    }
  }
  // Every entry of both is written below: resizing a buffer already large enough costs nothing.
  order_.resize(table_size);
  table_.resize(table_size);
  const std::span<uint32_t> order(order_.data(), table_size);
  const std::span<uint32_t> table(table_.data(), table_size);
  claimOrder(weights, quotas, round_start_, order);
  TableFiller(std::move(walkers), table_size, taken_, free_slots_).fill(order, table);
  return table;
}

Result<std::vector<uint32_t>> buildMaglevTable(std::span<const MaglevBackend> backends,
                                               uint32_t table_size) {
  MaglevBuilder builder;
  auto table = builder.build(backends, table_size);
  if (!table) {
    return std::unexpected(std::move(table.error()));
  }
  return std::move(builder.table_);  // a fresh builder's: exactly the table, or empty
}

}  // namespace meshgate::agent
