// Proves that the test-support kernel helpers build working topologies and leave nothing
// behind: namespaces joined by a veth carry ping and TCP, cgroups and bpffs directories
// are created and removed, BPF_PROG_TEST_RUN wrappers report verdicts, and child processes
// are owned and reaped.
#include "tests/lib/netns.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "tests/lib/bpf_run.h"
#include "tests/lib/packet_builder.h"
#include "tests/lib/process.h"

namespace meshgate::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

#define SKIP_UNLESS_ROOT()                                                          \
  if (geteuid() != 0) {                                                             \
    GTEST_SKIP() << "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to make namespaces"; \
  }

// Unwraps a Result in a test body, failing the test with the error message.
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                  \
  auto lhs##_result = (expr);                                            \
  ASSERT_TRUE(lhs##_result.has_value()) << lhs##_result.error().message; \
  auto lhs = std::move(*lhs##_result)

#define ASSERT_OK(expr)                                              \
  do {                                                               \
    auto ok_result = (expr);                                         \
    ASSERT_TRUE(ok_result.has_value()) << ok_result.error().message; \
  } while (0)

bool linkExists(const std::string& netns, const std::string& dev) {
  return runCommand({"ip", "-n", netns, "link", "show", "dev", dev}).has_value();
}

// The value of "name: N" in `ethtool -S` output, or -1.
long ethtoolCounter(const std::string& stats, const std::string& name) {
  size_t at = stats.find(" " + name + ": ");
  return at == std::string::npos ? -1 : std::stol(stats.substr(at + name.size() + 3));
}

ino_t netnsInode(const char* path) {
  struct stat st {};
  return stat(path, &st) == 0 ? st.st_ino : 0;
}

// A socket with 2 s send/receive timeouts, so a broken path fails instead of hanging.
int tcpSocket() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{.tv_sec = 2, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

sockaddr_in v4Addr(const char* ip, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, ip, &sa.sin_addr);
  return sa;
}

TEST(NetNs, VethPairCarriesPingBothFamilies) {
  SKIP_UNLESS_ROOT();
  ASSERT_OK_AND_ASSIGN(a, NetNs::create("ping-a"));
  ASSERT_OK_AND_ASSIGN(b, NetNs::create("ping-b"));
  ASSERT_OK_AND_ASSIGN(veth, VethPair::create(a, "198.18.0.1/24", b, "198.18.0.2/24"));
  ASSERT_OK(a.addAddress(veth.nameA(), "fd00::1/64"));
  ASSERT_OK(b.addAddress(veth.nameB(), "fd00::2/64"));

  auto v4 = a.run({"ping", "-c", "1", "-W", "2", "198.18.0.2"});
  EXPECT_TRUE(v4.has_value()) << "IPv4 ping from a to b: " << v4.error().message;
  auto v6 = b.run({"ping", "-6", "-c", "1", "-W", "2", "fd00::1"});
  EXPECT_TRUE(v6.has_value()) << "IPv6 ping from b to a: " << v6.error().message;
}

TEST(NetNs, VethPairCarriesTcpToServerSpawnedInNamespace) {
  SKIP_UNLESS_ROOT();
  ASSERT_OK_AND_ASSIGN(client_ns, NetNs::create("tcp-c"));
  ASSERT_OK_AND_ASSIGN(server_ns, NetNs::create("tcp-s"));
  ASSERT_OK_AND_ASSIGN(veth,
                       VethPair::create(client_ns, "198.18.0.1/24", server_ns, "198.18.0.2/24"));

  // One-shot upper-casing echo server on port 0; it prints the port it got.
  ASSERT_OK_AND_ASSIGN(server, server_ns.spawn({"python3", "-c",
                                                "import socket\n"
                                                "s = socket.socket()\n"
                                                "s.bind(('198.18.0.2', 0))\n"
                                                "s.listen(1)\n"
                                                "print(s.getsockname()[1], flush=True)\n"
                                                "c, _ = s.accept()\n"
                                                "c.sendall(c.recv(100).upper())\n"},
                                               {.capture_output = true}));
  ASSERT_OK_AND_ASSIGN(port_line, server->readLine(5s));
  const uint16_t port = static_cast<uint16_t>(std::stoi(port_line));

  ASSERT_OK_AND_ASSIGN(inside, client_ns.enter());
  int fd = tcpSocket();  // created in client_ns, stays there after leaving
  ASSERT_GE(fd, 0) << "socket: " << std::strerror(errno);
  sockaddr_in dst = v4Addr("198.18.0.2", port);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)), 0)
      << "connect to 198.18.0.2:" << port << ": " << std::strerror(errno);
  ASSERT_EQ(send(fd, "hello", 5, 0), 5) << "send: " << std::strerror(errno);
  char reply[16] = {};
  EXPECT_EQ(recv(fd, reply, sizeof(reply), MSG_WAITALL), 5) << "recv: " << std::strerror(errno);
  EXPECT_STREQ(reply, "HELLO") << "the server's reply crossed the veth";
  close(fd);

  ASSERT_OK_AND_ASSIGN(status, server->wait(5s));
  EXPECT_EQ(status, 0) << "server exit status";
}

TEST(NetNs, ScopedEnterSwitchesOnlyTheCallingThreadUntilDestroyed) {
  SKIP_UNLESS_ROOT();
  ASSERT_OK_AND_ASSIGN(ns, NetNs::create("enter"));
  const ino_t host = netnsInode("/proc/thread-self/ns/net");
  const ino_t target = netnsInode(("/run/netns/" + ns.name()).c_str());
  ASSERT_NE(host, target) << "a new namespace has its own inode";
  std::promise<void> entered;
  ino_t existing_thread = 0;
  std::thread other([&, go = entered.get_future()] {
    go.wait();
    existing_thread = netnsInode("/proc/thread-self/ns/net");
  });
  {
    ASSERT_OK_AND_ASSIGN(inside, ns.enter());
    EXPECT_EQ(netnsInode("/proc/thread-self/ns/net"), target) << "thread is in the namespace";
    ino_t spawned_thread = 0;
    std::thread([&] { spawned_thread = netnsInode("/proc/thread-self/ns/net"); }).join();
    EXPECT_EQ(spawned_thread, target) << "a thread started while inside inherits it";
    entered.set_value();
    other.join();
  }
  EXPECT_EQ(existing_thread, host) << "a thread that existed before stays outside";
  EXPECT_EQ(netnsInode("/proc/thread-self/ns/net"), host) << "thread is back after the scope";
}

TEST(NetNs, VethPairHasShortNamesAddressesAndTxOffloadsOff) {
  SKIP_UNLESS_ROOT();
  ASSERT_OK_AND_ASSIGN(a, NetNs::create("veth-a"));
  ASSERT_OK_AND_ASSIGN(b, NetNs::create("veth-b"));
  ASSERT_OK_AND_ASSIGN(veth, VethPair::create(a, "198.18.0.1/24", b, "fd00::2/64", {.mtu = 1400}));
  EXPECT_LE(veth.nameA().size(), 15u) << veth.nameA() << " fits IFNAMSIZ";
  EXPECT_LE(veth.nameB().size(), 15u) << veth.nameB() << " fits IFNAMSIZ";
  EXPECT_EQ(a.ifindex(veth.nameA()).value_or(0), veth.ifindexA()) << "ifindex of end A";
  EXPECT_EQ(b.ifindex(veth.nameB()).value_or(0), veth.ifindexB()) << "ifindex of end B";
  EXPECT_EQ(formatMac(a.macOf(veth.nameA()).value_or(MacAddr{})), formatMac(veth.macA()))
      << "MAC of end A";
  EXPECT_EQ(formatMac(b.macOf(veth.nameB()).value_or(MacAddr{})), formatMac(veth.macB()))
      << "MAC of end B";
  EXPECT_FALSE(linkExists("", veth.nameA())) << "the veth never appears in the root namespace";

  ASSERT_OK_AND_ASSIGN(link, b.run({"ip", "-o", "link", "show", "dev", veth.nameB()}));
  EXPECT_NE(link.find("mtu 1400"), std::string::npos) << link;
  EXPECT_NE(link.find("state UP"), std::string::npos) << link;
  ASSERT_OK_AND_ASSIGN(addr, b.run({"ip", "-6", "addr", "show", "dev", veth.nameB()}));
  size_t global = addr.find("fd00::2/64");
  ASSERT_NE(global, std::string::npos) << addr;
  std::string line = addr.substr(global, addr.find('\n', global) - global);
  EXPECT_EQ(line.find("tentative"), std::string::npos) << "nodad: usable at once: " << line;

  ASSERT_OK_AND_ASSIGN(features, a.run({"ethtool", "-k", veth.nameA()}));
  for (const char* want : {"tx-checksumming: off", "tcp-segmentation-offload: off",
                           "generic-segmentation-offload: off", "generic-receive-offload: on"}) {
    EXPECT_NE(features.find(want), std::string::npos) << want << " in\n" << features;
  }
}

// Regression for VethOpts::enable_gro: with GRO off (the veth default) and no XDP program on
// the receiving end, the kernel drops XDP_TX frames (rx_queue_0_xdp_tx_errors).
TEST(NetNs, XdpTxOnVethEndReachesThePeer) {
  SKIP_UNLESS_ROOT();
  ASSERT_OK_AND_ASSIGN(a, NetNs::create("xdptx-a"));
  ASSERT_OK_AND_ASSIGN(b, NetNs::create("xdptx-b"));
  ASSERT_OK_AND_ASSIGN(veth, VethPair::create(a, "198.18.0.1/24", b, "198.18.0.2/24"));
  ASSERT_OK(b.addNeighbour(veth.nameB(), "198.18.0.1", veth.macA()));
  const bpf_insn xdp_tx[] = {{BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, XDP_TX},
                             {BPF_JMP | BPF_EXIT, 0, 0, 0, 0}};
  int prog = bpf_prog_load(BPF_PROG_TYPE_XDP, "mg_tx", "GPL", xdp_tx, 2, nullptr);
  ASSERT_GE(prog, 0) << "load: " << std::strerror(errno);
  {
    ASSERT_OK_AND_ASSIGN(inside, a.enter());
    int err = bpf_xdp_attach(static_cast<int>(veth.ifindexA()), prog, XDP_FLAGS_DRV_MODE, nullptr);
    close(prog);  // the attachment keeps the program; it goes with the veth
    ASSERT_EQ(err, 0) << "native XDP attach: " << std::strerror(-err);
  }
  {
    ASSERT_OK_AND_ASSIGN(inside, b.enter());
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    sockaddr_in dst = v4Addr("198.18.0.1", 9);
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)), 1)
          << std::strerror(errno);
    }
    close(fd);
  }
  // IPv6 router solicitations and MLD reports from b bounce too: count all frames.
  std::string stats;
  auto sent = waitFor(
      [&] {
        stats = a.run({"ethtool", "-S", veth.nameA()}).value_or("");
        return ethtoolCounter(stats, "rx_queue_0_xdp_tx") >= 3;
      },
      2s, "3 frames sent back by XDP_TX");
  EXPECT_TRUE(sent.has_value()) << sent.error().message << "\n" << stats;
  EXPECT_EQ(ethtoolCounter(stats, "rx_queue_0_xdp_tx_errors"), 0) << stats;
}

TEST(NetNs, StaticNeighbourRouteAndSysctlApplyInsideTheNamespace) {
  SKIP_UNLESS_ROOT();
  ASSERT_OK_AND_ASSIGN(a, NetNs::create("nbr-a"));
  ASSERT_OK_AND_ASSIGN(b, NetNs::create("nbr-b"));
  ASSERT_OK_AND_ASSIGN(veth, VethPair::create(a, "198.18.0.1/24", b, "198.18.0.2/24"));
  ASSERT_OK(a.addNeighbour(veth.nameA(), "198.18.0.2", veth.macB()));
  ASSERT_OK(a.addRoute("198.19.0.0/24", "198.18.0.2"));
  ASSERT_OK(a.setSysctl("net.ipv4.ip_forward", "1"));

  ASSERT_OK_AND_ASSIGN(neigh, a.run({"ip", "neigh", "show", "198.18.0.2"}));
  EXPECT_NE(neigh.find("PERMANENT"), std::string::npos) << neigh;
  EXPECT_NE(neigh.find(formatMac(veth.macB())), std::string::npos) << neigh;
  ASSERT_OK_AND_ASSIGN(route, a.run({"ip", "route", "show", "198.19.0.0/24"}));
  EXPECT_NE(route.find("via 198.18.0.2"), std::string::npos) << route;
  ASSERT_OK_AND_ASSIGN(fwd, a.run({"sysctl", "-n", "net.ipv4.ip_forward"}));
  EXPECT_EQ(fwd, "1\n") << "ip_forward inside the namespace";
  ASSERT_OK_AND_ASSIGN(other, b.run({"sysctl", "-n", "net.ipv4.ip_forward"}));
  EXPECT_EQ(other, "0\n") << "another namespace is unaffected";
}

TEST(NetNs, DestructorsRemoveNamespacesVethsAndSpawnedProcesses) {
  SKIP_UNLESS_ROOT();
  std::string ns_a, ns_b, veth_a;
  pid_t sleeper = -1;
  {
    ASSERT_OK_AND_ASSIGN(a, NetNs::create("gone-a"));
    ASSERT_OK_AND_ASSIGN(b, NetNs::create("gone-b"));
    ns_a = a.name();
    ns_b = b.name();
    {
      ASSERT_OK_AND_ASSIGN(veth, VethPair::create(a, "198.18.0.1/24", b, "198.18.0.2/24"));
      veth_a = veth.nameA();
      ASSERT_TRUE(linkExists(ns_a, veth_a)) << "veth exists while owned";
    }
    EXPECT_FALSE(linkExists(ns_a, veth_a)) << "VethPair destructor deleted " << veth_a;
    ASSERT_OK_AND_ASSIGN(proc, a.spawn({"sleep", "600"}));
    sleeper = proc->pid();
    ASSERT_TRUE(fs::exists("/run/netns/" + ns_a)) << ns_a << " exists while owned";
    // And a veth outliving its namespaces must not complain or leak.
    auto late = VethPair::create(a, "", b, "");
    ASSERT_TRUE(late.has_value()) << late.error().message;
    VethPair outliving = std::move(*late);
    a = NetNs::create("gone-c").value();  // move-assign: the old namespace is deleted now
    EXPECT_FALSE(fs::exists("/run/netns/" + ns_a)) << "move-assignment deleted " << ns_a;
    EXPECT_EQ(kill(sleeper, 0), -1) << "process spawned in the namespace was killed";
  }
  EXPECT_FALSE(fs::exists("/run/netns/" + ns_b)) << ns_b << " deleted";
  ASSERT_OK_AND_ASSIGN(list, runCommand({"ip", "netns", "list"}));
  EXPECT_EQ(list.find(ns_a), std::string::npos) << list;
  EXPECT_EQ(list.find(ns_b), std::string::npos) << list;
  EXPECT_FALSE(linkExists("", veth_a)) << "no veth left in the root namespace";
}

TEST(CgroupScope, HoldsAddedProcessAndRemovesItselfAfterMovingItBack) {
  SKIP_UNLESS_ROOT();
  ASSERT_OK_AND_ASSIGN(sleeper, Subprocess::spawn({"sleep", "600"}));
  const std::string own = std::to_string(sleeper.pid());
  std::string path;
  {
    ASSERT_OK_AND_ASSIGN(cg, CgroupScope::create("procs"));
    path = cg.path();
    ASSERT_TRUE(fs::is_directory(path)) << path << " created";
    ASSERT_GE(cg.fd(), 0) << "directory fd for BPF attach";
    ASSERT_OK(cg.addPid(sleeper.pid()));
    ASSERT_OK_AND_ASSIGN(pids, cg.pids());
    EXPECT_EQ(pids, std::vector<pid_t>{sleeper.pid()}) << "cgroup.procs lists the child";
    std::ifstream cgroup_file("/proc/" + own + "/cgroup");
    std::string text((std::istreambuf_iterator<char>(cgroup_file)), {});
    EXPECT_NE(text.find(fs::path(path).filename().string()), std::string::npos) << text;
  }
  EXPECT_FALSE(fs::exists(path)) << path << " removed while its process still ran";
  EXPECT_EQ(kill(sleeper.pid(), 0), 0) << "the process itself is untouched";
}

TEST(BpffsDir, RemovesPinsAndSubdirectories) {
  SKIP_UNLESS_ROOT();
  std::string path;
  {
    ASSERT_OK_AND_ASSIGN(dir, BpffsDir::create("pins"));
    path = dir.path();
    ASSERT_TRUE(fs::is_directory(path)) << path;
    int map_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "mg_test", 4, 4, 1, nullptr);
    ASSERT_GE(map_fd, 0) << "bpf_map_create: " << std::strerror(errno);
    ASSERT_EQ(bpf_obj_pin(map_fd, dir.pinPath("map").c_str()), 0) << std::strerror(errno);
    ASSERT_EQ(mkdir(dir.pinPath("sub").c_str(), 0700), 0) << std::strerror(errno);
    ASSERT_EQ(bpf_obj_pin(map_fd, (dir.pinPath("sub") + "/map").c_str()), 0)
        << std::strerror(errno);
    close(map_fd);
  }
  EXPECT_FALSE(fs::exists(path)) << path << " and its pins removed";
}

// Loads a program from raw instructions: no ELF object needed to test the runners.
int loadProgram(bpf_prog_type type, const std::vector<bpf_insn>& insns) {
  return bpf_prog_load(type, "mg_test", "GPL", insns.data(), insns.size(), nullptr);
}

constexpr bpf_insn movR0(int32_t imm) {
  return {BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, imm};
}
constexpr bpf_insn kExit = {BPF_JMP | BPF_EXIT, 0, 0, 0, 0};

TEST(BpfRun, RunXdpReturnsVerdictAndUnchangedPacket) {
  SKIP_UNLESS_ROOT();
  int fd = loadProgram(BPF_PROG_TYPE_XDP, {movR0(XDP_TX), kExit});
  ASSERT_GE(fd, 0) << "load: " << std::strerror(errno);
  auto in = PacketBuilder()
                .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                .ipv4("198.18.0.1", "198.18.0.2")
                .udp(1, 2)
                .build();
  auto run = runXdp(fd, in);
  close(fd);
  ASSERT_TRUE(run.has_value()) << run.error().message;
  EXPECT_STREQ(xdpActionName(run->retval), "XDP_TX") << "verdict";
  EXPECT_EQ(run->out, in) << describeDiff(in, run->out);
}

TEST(BpfRun, RunXdpPassesIngressIfindexOfVethInNamespace) {
  SKIP_UNLESS_ROOT();
  ASSERT_OK_AND_ASSIGN(a, NetNs::create("xdprun"));
  ASSERT_OK_AND_ASSIGN(veth, VethPair::create(a, "", a, ""));
  // r0 = ctx->ingress_ifindex
  int fd =
      loadProgram(BPF_PROG_TYPE_XDP,
                  {{BPF_LDX | BPF_MEM | BPF_W, 0, 1, offsetof(xdp_md, ingress_ifindex), 0}, kExit});
  ASSERT_GE(fd, 0) << "load: " << std::strerror(errno);
  auto in = PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02").payload("x").build();
  Result<XdpRunResult> run = fail("not run");
  {
    auto inside = a.enter();  // the ifindex is looked up in the caller's namespace
    ASSERT_TRUE(inside.has_value()) << inside.error().message;
    run = runXdp(fd, in, {.ingress_ifindex = veth.ifindexB()});
  }
  auto outside = runXdp(fd, in, {.ingress_ifindex = 999999});
  close(fd);
  ASSERT_TRUE(run.has_value()) << run.error().message;
  EXPECT_EQ(run->retval, veth.ifindexB()) << "program saw the veth's ifindex";
  EXPECT_FALSE(outside.has_value()) << "an ifindex unknown in the namespace is an error";
}

TEST(BpfRun, RunTcReportsActionAndMarkSetByProgram) {
  SKIP_UNLESS_ROOT();
  // skb->mark = 7; return TC_ACT_SHOT
  int fd = loadProgram(
      BPF_PROG_TYPE_SCHED_CLS,
      {{BPF_ST | BPF_MEM | BPF_W, 1, 0, offsetof(__sk_buff, mark), 7}, movR0(2), kExit});
  ASSERT_GE(fd, 0) << "load: " << std::strerror(errno);
  auto in = PacketBuilder()
                .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                .ipv4("198.18.0.1", "198.18.0.2")
                .tcp(1, 2, {.flags = kTcpSyn})
                .build();
  auto run = runTc(fd, in, {.mark = 1});
  auto too_short = runTc(fd, truncated(in, 10));
  close(fd);
  ASSERT_TRUE(run.has_value()) << run.error().message;
  EXPECT_STREQ(tcActionName(run->retval), "TC_ACT_SHOT") << "verdict";
  EXPECT_EQ(run->mark, 7u) << "mark written by the program";
  EXPECT_EQ(run->out, in) << describeDiff(in, run->out);
  EXPECT_FALSE(too_short.has_value()) << "the kernel rejects input shorter than Ethernet";
}

TEST(Process, RunCommandErrorNamesCommandStatusAndOutput) {
  auto ok = runCommand({"sh", "-c", "echo out; echo err >&2"});
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(*ok, "out\nerr\n") << "stdout and stderr captured";
  auto bad = runCommand({"sh", "-c", "echo why; exit 3"});
  ASSERT_FALSE(bad.has_value()) << "exit status 3 is an error";
  EXPECT_NE(
      bad.error().message.find("'sh -c 'echo why; exit 3'' exited with status 3; output: why"),
      std::string::npos)
      << bad.error().message;
  auto missing = runCommand({"mg-no-such-command"});
  EXPECT_FALSE(missing.has_value()) << "a missing program is an error";
  auto slow = runCommand({"sleep", "10"}, {.timeout = 100ms});
  ASSERT_FALSE(slow.has_value()) << "timeout";
  EXPECT_NE(slow.error().message.find("did not finish within 100 ms"), std::string::npos)
      << slow.error().message;
}

TEST(Process, SubprocessIsKilledAndReapedByDestructor) {
  pid_t pid = -1;
  {
    ASSERT_OK_AND_ASSIGN(child, Subprocess::spawn({"sleep", "600"}));
    pid = child.pid();
    EXPECT_EQ(kill(pid, 0), 0) << "running while owned";
    auto early = child.wait(20ms);
    EXPECT_FALSE(early.has_value()) << "wait with a deadline returns while it still runs";
  }
  EXPECT_EQ(kill(pid, 0), -1) << "killed and reaped (no zombie left)";

  ASSERT_OK_AND_ASSIGN(term, Subprocess::spawn({"sleep", "600"}));
  ASSERT_OK(term.kill(SIGTERM));
  ASSERT_OK(waitFor([&] { return !term.running(); }, 5s, "sleep to exit on SIGTERM"));
  ASSERT_OK_AND_ASSIGN(status, term.wait());
  EXPECT_EQ(status, 128 + SIGTERM) << "signal reported as 128 + signo, also after running()";
}

TEST(Process, WaitForReturnsWhenConditionHoldsAndNamesWhatTimedOut) {
  int polls = 0;
  auto ok = waitFor([&] { return ++polls == 3; }, 2s, "third poll");
  EXPECT_TRUE(ok.has_value()) << ok.error().message;
  auto late = waitFor([] { return false; }, 30ms, "the backend counter to reach 1");
  ASSERT_FALSE(late.has_value()) << "never true";
  EXPECT_EQ(late.error().message,
            "timed out after 30 ms waiting for the backend counter to reach 1")
      << "message names what was awaited";
}

}  // namespace
}  // namespace meshgate::test
