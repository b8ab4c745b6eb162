#include "tests/lib/netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace meshgate::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// One counter for every name this process makes, so names never repeat within a run.
unsigned nextSerial() {
  static std::atomic<unsigned> counter{0};
  return counter.fetch_add(1);
}

Result<void> checkTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 32) {
    return fail("tag '" + std::string(tag) + "': must be 1..32 characters");
  }
  for (char c : tag) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return fail("tag '" + std::string(tag) + "': only [A-Za-z0-9_-] allowed");
    }
  }
  return {};
}

std::string uniqueName(std::string_view prefix, std::string_view tag) {
  return std::string(prefix) + std::string(tag) + "-" + std::to_string(getpid()) + "-" +
         std::to_string(nextSerial());
}

void warn(const std::string& what) {
  std::fprintf(stderr, "meshgate test cleanup: %s\n", what.c_str());
}

Result<void> ignoreOutput(Result<std::string> r) {
  if (!r) {
    return std::unexpected(r.error());
  }
  return {};
}

// "/proc/mounts" -> the mount point of the first filesystem of type fstype.
std::string findMount(std::string_view fstype, std::string_view wanted_dir = "") {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string source, dir, type;
    fields >> source >> dir >> type;
    if (type == fstype && (wanted_dir.empty() || dir == wanted_dir)) {
      return dir;
    }
  }
  return "";
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return failErrno("open '" + path + "'", errno);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<void> writeFile(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return failErrno("open '" + path + "'", errno);
  }
  ssize_t n = write(fd, value.data(), value.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return failErrno("write '" + value + "' to '" + path + "'", n < 0 ? err : EIO);
  }
  return {};
}

// The cgroup-v2 directory of pid, from the "0::/path" line of /proc/<pid>/cgroup.
Result<std::string> cgroupOf(const std::string& mount, pid_t pid) {
  auto text = readFile("/proc/" + std::to_string(pid) + "/cgroup");
  if (!text) {
    return std::unexpected(text.error());
  }
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("0::", 0) == 0) {
      std::string rel = line.substr(3);
      return rel == "/" ? mount : mount + rel;
    }
  }
  return fail("pid " + std::to_string(pid) + " has no cgroup-v2 entry in /proc/pid/cgroup");
}

std::vector<pid_t> parsePids(const std::string& text) {
  std::vector<pid_t> pids;
  std::istringstream in(text);
  pid_t pid;
  while (in >> pid) {
    pids.push_back(pid);
  }
  return pids;
}

}  // namespace

// ---- ScopedNetnsEnter --------------------------------------------------------------------

Result<ScopedNetnsEnter> ScopedNetnsEnter::enter(int netns_fd, std::string_view name) {
  int saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved < 0) {
    return failErrno("open /proc/thread-self/ns/net", errno);
  }
  if (setns(netns_fd, CLONE_NEWNET) != 0) {
    int err = errno;
    close(saved);
    return failErrno("setns into '" + std::string(name) + "'", err);
  }
  return ScopedNetnsEnter(saved);
}

ScopedNetnsEnter::ScopedNetnsEnter(ScopedNetnsEnter&& other) noexcept
    : saved_fd_(std::exchange(other.saved_fd_, -1)) {}

ScopedNetnsEnter::~ScopedNetnsEnter() {
  if (saved_fd_ < 0) {
    return;
  }
  // A thread left in a test namespace would run every later step (attach, bind, route) in
  // the wrong place: stop the test binary rather than carry on.
  if (setns(saved_fd_, CLONE_NEWNET) != 0) {
    std::perror("ScopedNetnsEnter: setns back to the original namespace");
    std::abort();
  }
  close(saved_fd_);
}

// ---- NetNs -------------------------------------------------------------------------------

Result<NetNs> NetNs::create(std::string_view tag) {
  if (auto ok = checkTag(tag); !ok) {
    return std::unexpected(ok.error());
  }
  std::string name = uniqueName("mg-", tag);
  if (auto r = runCommand({"ip", "netns", "add", name}); !r) {
    return std::unexpected(r.error());
  }
  int fd = open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    (void)runCommand({"ip", "netns", "del", name});
    return failErrno("open /run/netns/" + name, err);
  }
  NetNs ns(State{.name = std::move(name), .fd = fd});
  if (auto r = ns.run({"ip", "link", "set", "lo", "up"}); !r) {
    return std::unexpected(r.error());
  }
  return ns;
}

NetNs::~NetNs() {
  destroy();
}

void NetNs::destroy() {
  s_.processes.clear();  // SIGKILL + reap each, so nothing keeps the namespace alive
  if (s_.fd >= 0) {
    close(s_.fd);
    s_.fd = -1;
  }
  if (!s_.name.empty()) {
    if (auto r = runCommand({"ip", "netns", "del", s_.name}); !r) {
      warn(r.error().message);
    }
    s_.name.clear();
  }
}

Result<std::string> NetNs::run(std::vector<std::string> argv,
                               std::chrono::milliseconds timeout) const {
  return runCommand(std::move(argv), RunOpts{.netns = s_.name, .timeout = timeout});
}

Result<Subprocess*> NetNs::spawn(std::vector<std::string> argv, SpawnOpts opts) {
  opts.netns = s_.name;
  auto process = Subprocess::spawn(std::move(argv), std::move(opts));
  if (!process) {
    return std::unexpected(process.error());
  }
  s_.processes.push_back(std::make_unique<Subprocess>(std::move(*process)));
  return s_.processes.back().get();
}

Result<ScopedNetnsEnter> NetNs::enter() const {
  return ScopedNetnsEnter::enter(s_.fd, s_.name);
}

Result<void> NetNs::addAddress(std::string_view dev, std::string_view cidr) const {
  std::vector<std::string> argv = {
      "ip", "-n", s_.name, "addr", "add", std::string(cidr), "dev", std::string(dev)};
  if (cidr.find(':') != std::string_view::npos) {
    argv.push_back("nodad");
  }
  return ignoreOutput(runCommand(std::move(argv)));
}

Result<void> NetNs::addRoute(std::string_view dst_cidr, std::string_view via,
                             std::string_view dev) const {
  std::vector<std::string> argv = {"ip", "-n", s_.name, "route", "replace", std::string(dst_cidr)};
  if (!via.empty()) {
    argv.insert(argv.end(), {"via", std::string(via)});
  }
  if (!dev.empty()) {
    argv.insert(argv.end(), {"dev", std::string(dev)});
  }
  return ignoreOutput(runCommand(std::move(argv)));
}

Result<void> NetNs::addNeighbour(std::string_view dev, std::string_view ip,
                                 const MacAddr& mac) const {
  return ignoreOutput(
      runCommand({"ip", "-n", s_.name, "neigh", "replace", std::string(ip), "lladdr",
                  formatMac(mac), "dev", std::string(dev), "nud", "permanent"}));
}

Result<void> NetNs::setSysctl(std::string_view key, std::string_view value) const {
  return ignoreOutput(run({"sysctl", "-q", "-w", std::string(key) + "=" + std::string(value)}));
}

// Asked inside the namespace with a syscall rather than parsed from `ip link`: iproute2
// prints "Peer netns reference is invalid" noise when another namespace is deleted while it
// resolves the peer's netns name.
Result<uint32_t> NetNs::ifindex(std::string_view dev) const {
  auto inside = enter();
  if (!inside) {
    return std::unexpected(inside.error());
  }
  unsigned index = if_nametoindex(std::string(dev).c_str());
  if (index == 0) {
    return failErrno("netns '" + s_.name + "': ifindex of '" + std::string(dev) + "'", errno);
  }
  return index;
}

Result<MacAddr> NetNs::macOf(std::string_view dev) const {
  auto inside = enter();
  if (!inside) {
    return std::unexpected(inside.error());
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return failErrno("netns '" + s_.name + "': socket", errno);
  }
  ifreq req{};
  std::string name(dev.substr(0, IFNAMSIZ - 1));
  std::copy(name.begin(), name.end(), req.ifr_name);
  int rc = ioctl(fd, SIOCGIFHWADDR, &req);
  int err = errno;
  close(fd);
  if (rc != 0) {
    return failErrno("netns '" + s_.name + "': MAC of '" + name + "'", err);
  }
  MacAddr mac;
  std::copy_n(reinterpret_cast<const uint8_t*>(req.ifr_hwaddr.sa_data), mac.size(), mac.begin());
  return mac;
}

// ---- VethPair ----------------------------------------------------------------------------

Result<VethPair> VethPair::create(const NetNs& a, std::string_view addr_a_cidr, const NetNs& b,
                                  std::string_view addr_b_cidr, VethOpts opts) {
  const unsigned serial = nextSerial();
  const pid_t pid = getpid();
  // IFNAMSIZ is 16: "mg" + 5 + "-" + 6 + "a" = 15 characters at most.
  const std::string base =
      "mg" + std::to_string(pid % 100000) + "-" + std::to_string(serial % 1000000);
  VethPair pair;
  pair.s_.netns_a = a.name();
  pair.s_.netns_b = b.name();
  pair.s_.name_a = base + "a";
  pair.s_.name_b = base + "b";
  auto byte = [](unsigned v) { return static_cast<uint8_t>(v); };
  pair.s_.mac_a = {0x02, byte(pid >> 16), byte(pid >> 8), byte(pid), byte(serial), 0x0a};
  pair.s_.mac_b = pair.s_.mac_a;
  pair.s_.mac_b[5] = 0x0b;
  const std::string mtu = std::to_string(opts.mtu);

  // Both ends are created inside their namespaces: the names never exist in the root one.
  const State& s = pair.s_;
  std::vector<std::string> argv = {
      "ip",  "link", "add",  s.name_a, "netns", s.netns_a, "address", formatMac(s.mac_a),
      "mtu", mtu,    "type", "veth",   "peer"};
  argv.insert(argv.end(),
              {"name", s.name_b, "netns", s.netns_b, "address", formatMac(s.mac_b), "mtu", mtu});
  auto made = runCommand(std::move(argv));
  if (!made) {
    pair.s_.name_a.clear();  // nothing to delete
    return std::unexpected(made.error());
  }

  struct End {
    const NetNs& ns;
    const std::string& dev;
    std::string_view cidr;
    uint32_t& ifindex;
  };
  for (End end : {End{a, pair.s_.name_a, addr_a_cidr, pair.s_.ifindex_a},
                  End{b, pair.s_.name_b, addr_b_cidr, pair.s_.ifindex_b}}) {
    std::vector<std::string> features;
    if (opts.disable_offloads) {
      features.insert(features.end(), {"tx", "off", "tso", "off", "gso", "off"});
    }
    if (opts.enable_gro) {
      features.insert(features.end(), {"gro", "on"});
    }
    if (!features.empty()) {
      features.insert(features.begin(), {"ethtool", "-K", end.dev});
      if (auto r = end.ns.run(std::move(features)); !r) {
        return std::unexpected(r.error());
      }
    }
    if (!end.cidr.empty()) {
      if (auto r = end.ns.addAddress(end.dev, end.cidr); !r) {
        return std::unexpected(r.error());
      }
    }
    auto index = end.ns.ifindex(end.dev);
    if (!index) {
      return std::unexpected(index.error());
    }
    end.ifindex = *index;
  }
  // Up only once both ends are configured, so the link never carries half-set-up traffic.
  for (End end : {End{a, pair.s_.name_a, {}, pair.s_.ifindex_a},
                  End{b, pair.s_.name_b, {}, pair.s_.ifindex_b}}) {
    if (auto r = end.ns.run({"ip", "link", "set", "dev", end.dev, "up"}); !r) {
      return std::unexpected(r.error());
    }
  }
  return pair;
}

VethPair::~VethPair() {
  destroy();
}

void VethPair::destroy() {
  if (s_.name_a.empty()) {
    return;
  }
  // Deleting one end deletes both, and a veth dies with either of its namespaces, so an
  // error here is a leak only if the device is still listed.
  if (fs::exists("/run/netns/" + s_.netns_a)) {
    auto r = runCommand({"ip", "-n", s_.netns_a, "link", "del", "dev", s_.name_a});
    if (!r && runCommand({"ip", "-n", s_.netns_a, "-o", "link", "show", "dev", s_.name_a})) {
      warn(r.error().message);
    }
  }
  s_.name_a.clear();
  s_.name_b.clear();
}

// ---- CgroupScope -------------------------------------------------------------------------

Result<CgroupScope> CgroupScope::create(std::string_view tag) {
  if (auto ok = checkTag(tag); !ok) {
    return std::unexpected(ok.error());
  }
  CgroupScope scope;
  scope.s_.mount = findMount("cgroup2");
  if (scope.s_.mount.empty()) {
    return fail("cgroup: no cgroup2 filesystem in /proc/mounts");
  }
  auto creator = cgroupOf(scope.s_.mount, getpid());
  if (!creator) {
    return std::unexpected(creator.error());
  }
  scope.s_.creator_cgroup = *creator;
  std::string path = scope.s_.mount + "/" + uniqueName("mg-test-", tag);
  if (mkdir(path.c_str(), 0755) != 0) {
    return failErrno("cgroup: mkdir '" + path + "'", errno);
  }
  scope.s_.path = path;
  scope.s_.fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (scope.s_.fd < 0) {
    return failErrno("cgroup: open '" + path + "'", errno);
  }
  return scope;
}

CgroupScope::~CgroupScope() {
  destroy();
}

Result<void> CgroupScope::addPid(pid_t pid) {
  auto origin = cgroupOf(s_.mount, pid);
  if (!origin) {
    return std::unexpected(origin.error());
  }
  if (auto r = writeFile(s_.path + "/cgroup.procs", std::to_string(pid)); !r) {
    return std::unexpected(r.error());
  }
  s_.origins.emplace_back(pid, *origin);
  return {};
}

Result<std::vector<pid_t>> CgroupScope::pids() const {
  auto text = readFile(s_.path + "/cgroup.procs");
  if (!text) {
    return std::unexpected(text.error());
  }
  return parsePids(*text);
}

void CgroupScope::destroy() {
  if (s_.fd >= 0) {
    close(s_.fd);
    s_.fd = -1;
  }
  if (s_.path.empty()) {
    return;
  }
  // Children first (a test may have made nested cgroups), then this one.
  std::vector<std::string> dirs;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(s_.path, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) {
      dirs.push_back(it->path().string());
    }
  }
  dirs.insert(dirs.begin(), s_.path);
  for (auto dir = dirs.rbegin(); dir != dirs.rend(); ++dir) {
    auto text = readFile(*dir + "/cgroup.procs");
    for (pid_t pid : text ? parsePids(*text) : std::vector<pid_t>{}) {
      std::string back = s_.creator_cgroup;
      for (const auto& [known, origin] : s_.origins) {
        if (known == pid) {
          back = origin;
        }
      }
      if (!writeFile(back + "/cgroup.procs", std::to_string(pid)) &&
          !writeFile(s_.creator_cgroup + "/cgroup.procs", std::to_string(pid))) {
        warn("cgroup: could not move pid " + std::to_string(pid) + " out of " + *dir);
      }
    }
    // A just-moved or just-exited task can keep the cgroup populated for a moment.
    const std::string& d = *dir;
    int last_errno = 0;
    auto removed = waitFor(
        [&] {
          last_errno = rmdir(d.c_str()) == 0 ? 0 : errno;
          return last_errno == 0 || last_errno == ENOENT;
        },
        2000ms, "rmdir of cgroup " + d);
    if (!removed) {
      warn(removed.error().message + ": " + std::strerror(last_errno));
    }
  }
  s_.path.clear();
}

// ---- BpffsDir ----------------------------------------------------------------------------

Result<BpffsDir> BpffsDir::create(std::string_view tag) {
  if (auto ok = checkTag(tag); !ok) {
    return std::unexpected(ok.error());
  }
  constexpr const char* kBpffs = "/sys/fs/bpf";
  // Two test binaries mounting at once would stack two bpffs instances, hiding the
  // directory made on the lower one: check and mount under a lock.
  int lock = open("/run/lock/meshgate-test-bpffs.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock >= 0) {
    flock(lock, LOCK_EX);
  }
  int mount_errno = 0;
  if (findMount("bpf", kBpffs).empty() && mount("bpf", kBpffs, "bpf", 0, "mode=0700") != 0) {
    mount_errno = errno;
  }
  if (lock >= 0) {
    close(lock);  // releases the lock
  }
  if (mount_errno != 0) {
    return failErrno(std::string("mount bpffs at ") + kBpffs, mount_errno);
  }
  std::string path = std::string(kBpffs) + "/" + uniqueName("mg-test-", tag);
  if (mkdir(path.c_str(), 0700) != 0) {
    return failErrno("bpffs: mkdir '" + path + "'", errno);
  }
  return BpffsDir(State{.path = std::move(path)});
}

BpffsDir::~BpffsDir() {
  destroy();
}

void BpffsDir::destroy() {
  if (s_.path.empty()) {
    return;
  }
  std::error_code ec;
  fs::remove_all(s_.path, ec);  // unlink() drops a pin, rmdir() a directory
  if (ec) {
    warn("bpffs: remove '" + s_.path + "': " + ec.message());
  }
  s_.path.clear();
}

}  // namespace meshgate::test
