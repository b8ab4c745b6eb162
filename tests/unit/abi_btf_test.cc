// Proves that BPF C (clang-19, as recorded in the BTF of the embedded objects) and C++ lay
// out the ABI of include/meshgate/abi/*.h identically: struct sizes, field offsets and
// sizes, map key/value sizes, and counter arrays as long as their enums.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "meshgate/abi/decap.h"
#include "meshgate/abi/lb.h"
#include "meshgate/abi/quic.h"
#include "xdp_decap.skel.h"
#include "xdp_lb.skel.h"

namespace meshgate::test {
namespace {

using LbSkel = std::unique_ptr<xdp_lb_bpf, decltype(&xdp_lb_bpf__destroy)>;
using DecapSkel = std::unique_ptr<xdp_decap_bpf, decltype(&xdp_decap_bpf__destroy)>;

// Opened, not loaded: the BTF and map definitions come from the embedded ELF, so no
// privilege is needed.
LbSkel openLb() {
  return LbSkel(xdp_lb_bpf__open(), &xdp_lb_bpf__destroy);
}
DecapSkel openDecap() {
  return DecapSkel(xdp_decap_bpf__open(), &xdp_decap_bpf__destroy);
}

struct AbiStruct {
  const char* name;
  size_t size;
};
#define MG_ABI_STRUCT(type) \
  AbiStruct {               \
#type, sizeof(type)     \
  }

// Every struct of include/meshgate/abi/lb.h and abi/quic.h (all used by xdp_lb's maps).
const std::vector<AbiStruct> kLbStructs = {
    MG_ABI_STRUCT(mg_vip_key),         MG_ABI_STRUCT(mg_vip_info),
    MG_ABI_STRUCT(mg_backend),         MG_ABI_STRUCT(mg_flow_key),
    MG_ABI_STRUCT(mg_flow_state),      MG_ABI_STRUCT(mg_frag_key),
    MG_ABI_STRUCT(mg_frag6_key),       MG_ABI_STRUCT(mg_frag_state),
    MG_ABI_STRUCT(mg_lb_globals),      MG_ABI_STRUCT(mg_conn_rate),
    MG_ABI_STRUCT(mg_traffic),         MG_ABI_STRUCT(mg_nexthop),
    MG_ABI_STRUCT(mg_quic_config_key), MG_ABI_STRUCT(mg_quic_config),
    MG_ABI_STRUCT(mg_quic_server_key), MG_ABI_STRUCT(mg_quic_key_args),
    MG_ABI_STRUCT(mg_quic_cid_key),    MG_ABI_STRUCT(mg_quic_cid_entry),
};

struct AbiField {
  const char* type;
  const char* field;
  size_t offset;
  size_t size;
};
#define MG_ABI_FIELD(type, field)                                                     \
  AbiField {                                                                          \
#type, #field, offsetof(type, field), sizeof(static_cast <type*>(nullptr)->field) \
  }

// The fields after padding-sensitive neighbours (u8 runs, u64 after u32s) and the ones the
// agent and tools read by name.
const std::vector<AbiField> kLbFields = {
    MG_ABI_FIELD(mg_vip_key, port),
    MG_ABI_FIELD(mg_vip_key, proto),
    MG_ABI_FIELD(mg_vip_key, family),
    MG_ABI_FIELD(mg_vip_info, flags),
    MG_ABI_FIELD(mg_backend, vip_id),
    MG_ABI_FIELD(mg_backend, gen),
    MG_ABI_FIELD(mg_flow_state, backend_gen),
    MG_ABI_FIELD(mg_flow_state, flags),
    MG_ABI_FIELD(mg_nexthop, max_len),
    MG_ABI_FIELD(mg_quic_server_key, server_id),
    MG_ABI_FIELD(mg_quic_config, algorithm),
    MG_ABI_FIELD(mg_quic_key_args, key),
    MG_ABI_FIELD(mg_quic_key_args, err),
    MG_ABI_FIELD(mg_quic_cid_key, cid),
    MG_ABI_FIELD(mg_quic_cid_entry, server_id),
    MG_ABI_FIELD(mg_backend, family),
    MG_ABI_FIELD(mg_backend, flags),
    MG_ABI_FIELD(mg_flow_key, dst),
    MG_ABI_FIELD(mg_flow_key, sport),
    MG_ABI_FIELD(mg_flow_key, dport),
    MG_ABI_FIELD(mg_flow_key, proto),
    MG_ABI_FIELD(mg_flow_key, family),
    MG_ABI_FIELD(mg_flow_state, vip_id),
    MG_ABI_FIELD(mg_flow_state, atime_ns),
    MG_ABI_FIELD(mg_frag_key, id),
    MG_ABI_FIELD(mg_frag_key, proto),
    MG_ABI_FIELD(mg_frag6_key, dst),
    MG_ABI_FIELD(mg_frag6_key, id),
    MG_ABI_FIELD(mg_frag6_key, proto),
    MG_ABI_FIELD(mg_frag_state, vip_id),
    MG_ABI_FIELD(mg_lb_globals, encap_src6),
    MG_ABI_FIELD(mg_lb_globals, encap_src6_mask),
    MG_ABI_FIELD(mg_lb_globals, hash_seed),
    MG_ABI_FIELD(mg_lb_globals, udp_idle_ns),
    MG_ABI_FIELD(mg_lb_globals, max_conn_rate),
    MG_ABI_FIELD(mg_lb_globals, outer_ttl),
    MG_ABI_FIELD(mg_conn_rate, inserts),
    MG_ABI_FIELD(mg_traffic, bytes),
};

TEST(AbiBtf, EveryLbStructHasTheSameSizeInBpfAsInCxx) {
  LbSkel skel = openLb();
  ASSERT_TRUE(skel) << "xdp_lb_bpf__open: " << std::strerror(errno);
  const struct btf* btf = bpf_object__btf(skel->obj);
  ASSERT_NE(btf, nullptr) << "xdp_lb object carries BTF";
  for (const auto& s : kLbStructs) {
    const int id = btf__find_by_name_kind(btf, s.name, BTF_KIND_STRUCT);
    EXPECT_GT(id, 0) << "struct " << s.name
                     << " is not in xdp_lb's BTF: no map of bpf/lib/maps.h uses it, so its BPF "
                        "layout is unchecked (use it in a map or drop it from the ABI)";
    if (id <= 0) {
      continue;
    }
    EXPECT_EQ(btf__resolve_size(btf, id), static_cast<long long>(s.size))
        << "struct " << s.name << ": BTF size vs sizeof in C++";
  }
}

TEST(AbiBtf, LbStructFieldsHaveTheSameOffsetAndSizeInBpfAsInCxx) {
  LbSkel skel = openLb();
  ASSERT_TRUE(skel) << "xdp_lb_bpf__open: " << std::strerror(errno);
  const struct btf* btf = bpf_object__btf(skel->obj);
  ASSERT_NE(btf, nullptr) << "xdp_lb object carries BTF";
  for (const auto& f : kLbFields) {
    const std::string what = std::string(f.type) + "." + f.field;
    const int id = btf__find_by_name_kind(btf, f.type, BTF_KIND_STRUCT);
    ASSERT_GT(id, 0) << "struct " << f.type << " is not in xdp_lb's BTF";
    const struct btf_type* t = btf__type_by_id(btf, id);
    ASSERT_NE(t, nullptr) << "BTF type of struct " << f.type;
    bool found = false;
    for (int i = 0; i < btf_vlen(t); i++) {
      const struct btf_member* m = btf_members(t) + i;
      if (std::strcmp(btf__name_by_offset(btf, m->name_off), f.field) != 0) {
        continue;
      }
      found = true;
      EXPECT_EQ(btf_member_bitfield_size(t, i), 0u) << what << " is not a bit field";
      EXPECT_EQ(btf_member_bit_offset(t, i), f.offset * 8) << what
                                                           << ": BTF bit offset vs "
                                                              "offsetof * 8";
      EXPECT_EQ(btf__resolve_size(btf, m->type), static_cast<long long>(f.size))
          << what << ": BTF size vs sizeof in C++";
    }
    EXPECT_TRUE(found) << what << ": no such member in the BTF struct";
  }
}

struct MapShape {
  const char* map;
  const struct bpf_map* handle;
  size_t key_size;
  size_t value_size;
};

TEST(AbiBtf, LbMapsUseTheAbiStructsAsKeysAndValues) {
  LbSkel skel = openLb();
  ASSERT_TRUE(skel) << "xdp_lb_bpf__open: " << std::strerror(errno);
  const auto& m = skel->maps;
  const std::vector<MapShape> maps = {
      {MG_MAP_VIPS, m.mg_vips, sizeof(mg_vip_key), sizeof(mg_vip_info)},
      {MG_MAP_VIP_ADDRS, m.mg_vip_addrs, sizeof(mg_vip_key), sizeof(uint32_t)},
      {MG_MAP_BACKENDS, m.mg_backends, sizeof(uint32_t), sizeof(mg_backend)},
      {MG_MAP_CONNTRACK, m.mg_conntrack, sizeof(mg_flow_key), sizeof(mg_flow_state)},
      {MG_MAP_FRAGS, m.mg_frags, sizeof(mg_frag_key), sizeof(mg_frag_state)},
      {MG_MAP_FRAGS6, m.mg_frags6, sizeof(mg_frag6_key), sizeof(mg_frag_state)},
      {MG_MAP_GLOBALS, m.mg_globals, sizeof(uint32_t), sizeof(mg_lb_globals)},
      {MG_MAP_CONN_RATE, m.mg_conn_rate, sizeof(uint32_t), sizeof(mg_conn_rate)},
      {MG_MAP_LB_STATS, m.mg_lb_stats, sizeof(uint32_t), sizeof(uint64_t)},
      {MG_MAP_LB_DROPS, m.mg_lb_drops, sizeof(uint32_t), sizeof(uint64_t)},
      {MG_MAP_VIP_STATS, m.mg_vip_stats, sizeof(uint32_t), sizeof(mg_traffic)},
      {MG_MAP_BACKEND_STATS, m.mg_backend_stats, sizeof(uint32_t), sizeof(mg_traffic)},
      {MG_MAP_QUIC_CID_CACHE, m.mg_quic_cid_cache, sizeof(mg_quic_cid_key),
       sizeof(mg_quic_cid_entry)},
  };
  for (const auto& s : maps) {
    ASSERT_NE(s.handle, nullptr) << "skeleton has map " << s.map;
    EXPECT_STREQ(bpf_map__name(s.handle), s.map) << "ABI map name constant";
    EXPECT_EQ(bpf_map__key_size(s.handle), s.key_size) << "map " << s.map << ": key size";
    EXPECT_EQ(bpf_map__value_size(s.handle), s.value_size) << "map " << s.map << ": value size";
  }
}

TEST(AbiBtf, LbCounterArraysHoldOneEntryPerEnumValue) {
  LbSkel skel = openLb();
  ASSERT_TRUE(skel) << "xdp_lb_bpf__open: " << std::strerror(errno);
  EXPECT_EQ(bpf_map__max_entries(skel->maps.mg_lb_stats), static_cast<uint32_t>(MG_LB_COUNTER_MAX))
      << MG_MAP_LB_STATS " max_entries vs MG_LB_COUNTER_MAX";
  EXPECT_EQ(bpf_map__max_entries(skel->maps.mg_lb_drops), static_cast<uint32_t>(MG_LB_DROP_MAX))
      << MG_MAP_LB_DROPS " max_entries vs MG_LB_DROP_MAX";
}

// While the agent applies a config, mg_vip_addrs holds the old VIPs' addresses and the new
// ones' (LbState::apply writes their union before it removes VIPs): moving every VIP to a
// new address must fit.
TEST(AbiBtf, VipAddressSetHoldsTheOldAndTheNewVipsOfAnApply) {
  LbSkel skel = openLb();
  ASSERT_TRUE(skel) << "xdp_lb_bpf__open: " << std::strerror(errno);
  EXPECT_GE(bpf_map__max_entries(skel->maps.mg_vip_addrs), 2u * MG_MAX_VIPS)
      << MG_MAP_VIP_ADDRS " max_entries vs twice MG_MAX_VIPS";
}

TEST(AbiBtf, DecapCounterArrayHoldsOneEntryPerEnumValue) {
  DecapSkel skel = openDecap();
  ASSERT_TRUE(skel) << "xdp_decap_bpf__open: " << std::strerror(errno);
  const struct bpf_map* stats = skel->maps.mg_decap_stats;
  EXPECT_STREQ(bpf_map__name(stats), MG_MAP_DECAP_STATS) << "ABI map name constant";
  EXPECT_EQ(bpf_map__max_entries(stats), static_cast<uint32_t>(MG_DECAP_COUNTER_MAX))
      << MG_MAP_DECAP_STATS " max_entries vs MG_DECAP_COUNTER_MAX";
  EXPECT_EQ(bpf_map__key_size(stats), sizeof(uint32_t)) << MG_MAP_DECAP_STATS " key size";
  EXPECT_EQ(bpf_map__value_size(stats), sizeof(uint64_t)) << MG_MAP_DECAP_STATS " value size";
}

}  // namespace
}  // namespace meshgate::test
