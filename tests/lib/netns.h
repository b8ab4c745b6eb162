// RAII owners of the kernel state integration tests create: network namespaces, veth pairs,
// child cgroups and bpffs directories. Every name is unique (tag, PID, counter), every
// object is move-only and its destructor removes what it made, also after a failed
// assertion, and tolerates it being gone already. Nothing here touches the root namespace's
// interfaces, the root cgroup's attachments or pins outside the object's own directory.
// Netlink work is done by `ip` / `ethtool` / `sysctl` run by argv (tests/lib/process.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "meshgate/result.h"
#include "tests/lib/packet_builder.h"
#include "tests/lib/process.h"

namespace meshgate::test {

// The calling thread's network namespace switched (setns) until destruction. Sockets made
// and libbpf attachments done meanwhile belong to the entered namespace. Per thread only:
// other threads are unaffected; /sys still shows the namespace the process mounted it in.
class ScopedNetnsEnter {
 public:
  static Result<ScopedNetnsEnter> enter(int netns_fd, std::string_view name);

  ScopedNetnsEnter(ScopedNetnsEnter&& other) noexcept;
  ScopedNetnsEnter& operator=(ScopedNetnsEnter&&) = delete;
  ScopedNetnsEnter(const ScopedNetnsEnter&) = delete;
  ScopedNetnsEnter& operator=(const ScopedNetnsEnter&) = delete;
  ~ScopedNetnsEnter();  // switches the thread back

 private:
  explicit ScopedNetnsEnter(int saved_fd) : saved_fd_(saved_fd) {}
  int saved_fd_ = -1;
};

// A named network namespace "mg-<tag>-<pid>-<n>" with `lo` up.
class NetNs {
 public:
  // tag: [A-Za-z0-9_-], short (it also appears in error messages).
  static Result<NetNs> create(std::string_view tag);

  NetNs(NetNs&& other) noexcept : s_(std::exchange(other.s_, {})) {}
  NetNs& operator=(NetNs&& other) noexcept {
    if (this != &other) {
      destroy();
      s_ = std::exchange(other.s_, {});
    }
    return *this;
  }
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;
  // Kills (SIGKILL) and reaps the processes started by spawn(), then deletes the namespace.
  ~NetNs();

  const std::string& name() const { return s_.name; }
  int fd() const { return s_.fd; }

  // Runs argv inside the namespace and returns its output (see runCommand()).
  Result<std::string> run(std::vector<std::string> argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  // Starts a long-lived process inside the namespace, owned by this NetNs (opts.netns is
  // overridden). The pointer stays valid until the NetNs is destroyed.
  Result<Subprocess*> spawn(std::vector<std::string> argv, SpawnOpts opts = {});
  Result<ScopedNetnsEnter> enter() const;

  // `ip addr add CIDR dev DEV` (IPv6: nodad, so the address is usable at once).
  Result<void> addAddress(std::string_view dev, std::string_view cidr) const;
  // `ip route replace DST [via VIA] [dev DEV]`; via or dev may be empty.
  Result<void> addRoute(std::string_view dst_cidr, std::string_view via,
                        std::string_view dev = "") const;
  // A permanent neighbour entry, so tests never wait for ARP / ND.
  Result<void> addNeighbour(std::string_view dev, std::string_view ip, const MacAddr& mac) const;
  // `sysctl -w KEY=VALUE` inside the namespace, e.g. ("net.ipv4.ip_forward", "1").
  Result<void> setSysctl(std::string_view key, std::string_view value) const;
  Result<uint32_t> ifindex(std::string_view dev) const;
  Result<MacAddr> macOf(std::string_view dev) const;

 private:
  struct State {
    std::string name;
    int fd = -1;
    std::vector<std::unique_ptr<Subprocess>> processes;
  };
  explicit NetNs(State s) : s_(std::move(s)) {}
  void destroy();

  State s_;
};

struct VethOpts {
  uint32_t mtu = 1500;
  // ethtool -K: tx checksumming, TSO and GSO off on both ends. Needed when BPF reads or
  // forwards the frames: with tx checksumming on, a veth carries CHECKSUM_PARTIAL frames
  // whose TCP/UDP checksum holds only the pseudo-header sum, and with TSO/GSO on, super-frames
  // larger than the MTU.
  bool disable_offloads = true;
  // GRO on (veth starts with it off). A veth with neither GRO nor an XDP program of its own
  // has no NAPI, and the kernel drops every frame its peer sends it with XDP_TX or
  // XDP_REDIRECT (counted in the sender's `ethtool -S` as rx_queue_0_xdp_tx_errors). XDP
  // runs on each frame before GRO merges anything, so this does not change what XDP sees.
  bool enable_gro = true;
};

// A veth pair "mg<pid % 100000><n>a" / "...b" (at most 15 characters), end A in namespace
// a and end B in namespace b (may be the same namespace), created there directly so the
// names never appear in the root namespace. Addresses assigned, MTU set, both ends up,
// locally administered MACs derived from the names.
class VethPair {
 public:
  // addr_*_cidr: "198.18.0.1/24" or "fd00::1/64"; empty for no address.
  static Result<VethPair> create(const NetNs& a, std::string_view addr_a_cidr, const NetNs& b,
                                 std::string_view addr_b_cidr, VethOpts opts = {});

  VethPair(VethPair&& other) noexcept : s_(std::exchange(other.s_, {})) {}
  VethPair& operator=(VethPair&& other) noexcept {
    if (this != &other) {
      destroy();
      s_ = std::exchange(other.s_, {});
    }
    return *this;
  }
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;
  ~VethPair();  // deletes the pair; nothing to do if a namespace is already gone

  const std::string& nameA() const { return s_.name_a; }
  const std::string& nameB() const { return s_.name_b; }
  uint32_t ifindexA() const { return s_.ifindex_a; }
  uint32_t ifindexB() const { return s_.ifindex_b; }
  const MacAddr& macA() const { return s_.mac_a; }
  const MacAddr& macB() const { return s_.mac_b; }

 private:
  struct State {
    std::string netns_a, netns_b;
    std::string name_a, name_b;  // empty: nothing to delete
    uint32_t ifindex_a = 0, ifindex_b = 0;
    MacAddr mac_a{}, mac_b{};
  };
  VethPair() = default;
  void destroy();

  State s_;
};

// A child cgroup "mg-test-<tag>-<pid>-<n>" directly under the cgroup-v2 mount (found in
// /proc/mounts; /sys/fs/cgroup/unified on meshgate's machines). Attach cgroup BPF programs
// to fd(). The destructor moves the processes still inside back to the cgroup each came
// from (the creator's cgroup for ones it never saw) and removes the directory.
class CgroupScope {
 public:
  static Result<CgroupScope> create(std::string_view tag);

  CgroupScope(CgroupScope&& other) noexcept : s_(std::exchange(other.s_, {})) {}
  CgroupScope& operator=(CgroupScope&& other) noexcept {
    if (this != &other) {
      destroy();
      s_ = std::exchange(other.s_, {});
    }
    return *this;
  }
  CgroupScope(const CgroupScope&) = delete;
  CgroupScope& operator=(const CgroupScope&) = delete;
  ~CgroupScope();

  const std::string& path() const { return s_.path; }
  int fd() const { return s_.fd; }
  // Moves pid (a process of the test: a Subprocess, or getpid()) into the cgroup.
  Result<void> addPid(pid_t pid);
  // The PIDs listed in cgroup.procs.
  Result<std::vector<pid_t>> pids() const;

 private:
  struct State {
    std::string mount;  // the cgroup2 mount point
    std::string path;
    std::string creator_cgroup;  // absolute directory of the creator's cgroup
    int fd = -1;
    std::vector<std::pair<pid_t, std::string>> origins;  // pid -> cgroup directory
  };
  CgroupScope() = default;
  void destroy();

  State s_;
};

// A directory "/sys/fs/bpf/mg-test-<tag>-<pid>-<n>" for the test's pins (bpffs is mounted
// at /sys/fs/bpf first if it is not). The destructor unlinks every pin below it and
// removes the directories.
class BpffsDir {
 public:
  static Result<BpffsDir> create(std::string_view tag);

  BpffsDir(BpffsDir&& other) noexcept : s_(std::exchange(other.s_, {})) {}
  BpffsDir& operator=(BpffsDir&& other) noexcept {
    if (this != &other) {
      destroy();
      s_ = std::exchange(other.s_, {});
    }
    return *this;
  }
  BpffsDir(const BpffsDir&) = delete;
  BpffsDir& operator=(const BpffsDir&) = delete;
  ~BpffsDir();

  const std::string& path() const { return s_.path; }
  std::string pinPath(std::string_view name) const { return s_.path + "/" + std::string(name); }

 private:
  struct State {
    std::string path;
  };
  explicit BpffsDir(State s) : s_(std::move(s)) {}
  void destroy();

  State s_;
};

}  // namespace meshgate::test
