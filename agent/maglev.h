// Weighted Maglev lookup tables for the XDP load balancer's control plane. The agent builds
// one table per VIP and writes it into that VIP's ring in `mg_rings`; the data path picks
// slot mg_flow_hash() % M. Every balancer behind the same ECMP group must build the same
// table from the same config, so the result depends only on the (key, id, weight) set.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meshgate/abi/lb.h"
#include "meshgate/result.h"

namespace meshgate::agent {

// Largest table size accepted (the largest prime below 2^20), as the BPF ring allows.
inline constexpr uint32_t kMaglevMaxTableSize = MG_MAX_RING_SIZE;

// The fixed seeds of maglevKeyHash() for a backend's offset and skip. Changing either
// reshuffles every table in the fleet: treat them as part of the wire format.
inline constexpr uint64_t kMaglevOffsetSeed = 0x9e3779b97f4a7c15ULL;
inline constexpr uint64_t kMaglevSkipSeed = 0xc2b2ae3d27d4eb4fULL;

struct MaglevBackend {
  std::string key;  // canonical identity, e.g. "198.18.1.10" or "fd00::10"; the permutation
                    // is derived from it
  uint32_t id;      // the value written into table slots (backend id in the BPF map)
  uint32_t weight;  // 0 = drained: gets no slots
};

// A backend's preference list: its k-th choice is slot (offset + k * skip) mod M. M is
// prime and 1 <= skip < M, so the list visits every slot exactly once.
struct MaglevPermutation {
  uint32_t offset;
  uint32_t skip;
};

// 64-bit hash of the key bytes that is the same on every host, build and run: FNV-1a over
// the bytes starting from (FNV offset basis ^ seed), finished with murmur3's fmix64 so that
// every output bit depends on every input bit. Never std::hash (which may differ by build).
uint64_t maglevKeyHash(std::string_view key, uint64_t seed);

// offset = h1 % M, skip = h2 % (M - 1) + 1 with h1, h2 = maglevKeyHash(key, offset/skip
// seed), as in the Maglev paper. Requires table_size >= 2.
MaglevPermutation maglevPermutation(std::string_view key, uint32_t table_size);

bool isPrime(uint32_t n);

// Builds a Maglev lookup table of `table_size` slots; entry i is the id of the backend that
// owns slot i. Backend i owns exactly q_i slots, the largest-remainder apportionment of
// table_size by weight (ties to the smaller key), so |q_i - table_size * w_i / W| < 1; a
// backend whose weight is tiny next to the total may therefore own no slot. Slots are
// claimed as in the Maglev paper (each claim takes the next free slot of the backend's
// preference list), in virtual-time order so that heavy backends claim proportionally more
// often throughout; removing, adding or reweighting one backend moves few other slots.
// table_size must be prime, >= the number of backends with weight > 0 and
// <= kMaglevMaxTableSize. Keys and ids must each be unique (drained backends included).
// Returns an empty vector when no backend has weight > 0. The result depends only on the
// set of (key, id, weight), not on the order of `backends` nor on the process.
Result<std::vector<uint32_t>> buildMaglevTable(std::span<const MaglevBackend> backends,
                                               uint32_t table_size);

// Builds tables as buildMaglevTable() does, keeping its working memory from one build to the
// next. A build writes two arrays of M entries, the claim order and the table; fresh ones
// cost a page fault per 4 KiB (about 110 at M = 65537, a sixth of the build on this project's
// machines), so a caller that builds many tables, like the agent with one table per VIP,
// keeps a builder. It holds about 8 bytes per slot of the largest table built (8.4 MiB at
// most).
class MaglevBuilder {
 public:
  // The table is valid until the next build().
  Result<std::span<const uint32_t>> build(std::span<const MaglevBackend> backends,
                                          uint32_t table_size);

 private:
  friend Result<std::vector<uint32_t>> buildMaglevTable(std::span<const MaglevBackend>, uint32_t);

  std::vector<uint32_t> table_;
  std::vector<uint32_t> order_;        // claim order: backend indices, one per slot
  std::vector<uint32_t> round_start_;  // counting sort of the claims by round
  std::vector<uint64_t> taken_;        // bitmap of the slots already claimed
  std::vector<uint32_t> free_slots_;   // the last free slots, once few are left
};

// The scan of the last free slots of a build, for tests: the plain version, or with
// `avx2` the AVX2 one (nullopt where the CPU lacks AVX2 or FMA). Both must pick the index in
// `slots` (distinct, below the prime m < 2^20) of the slot at the smallest
// (slot + shift) * inverse mod m.
std::optional<size_t> nearestFreeSlotForTest(std::span<const uint32_t> slots, uint32_t shift,
                                             uint32_t inverse, uint32_t m, bool avx2);

}  // namespace meshgate::agent
