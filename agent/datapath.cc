#include "agent/datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <utility>

#include "agent/log.h"
#include "meshgate/abi/common.h"
#include "meshgate/abi/decap.h"
#include "meshgate/abi/lb.h"
#include "xdp_decap.skel.h"
#include "xdp_lb.skel.h"

namespace meshgate::agent {
namespace {

constexpr const char* kLinksDir = MG_PIN_LINKS_DIR;

// Maps that hold only counters, sized by an ABI enum: a build that counts one more thing
// has a bigger one. Such a pinned map from another build is replaced (its counts restart
// at zero) instead of failing the load, so that an agent upgrade over running pins works;
// a map that holds state (conntrack, tables, settings) must match or the load fails.
bool countersOnly(std::string_view name) {
  return name == MG_MAP_LB_STATS || name == MG_MAP_LB_DROPS || name == MG_MAP_DECAP_STATS;
}

// Unpins `path` if the map pinned there is not what `map` declares.
Result<void> replaceIfIncompatible(const bpf_map* map, const std::string& path) {
  const int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    return {};  // nothing pinned yet
  }
  bpf_map_info info{};
  uint32_t len = sizeof info;
  const int rc = bpf_obj_get_info_by_fd(fd, &info, &len);
  const int err = errno;
  ::close(fd);
  if (rc != 0) {
    return failErrno("map '" + path + "': info", err);
  }
  if (info.type == bpf_map__type(map) && info.key_size == bpf_map__key_size(map) &&
      info.value_size == bpf_map__value_size(map) &&
      info.max_entries == bpf_map__max_entries(map) && info.map_flags == bpf_map__map_flags(map)) {
    return {};
  }
  if (::unlink(path.c_str()) != 0) {
    return failErrno("replace map '" + path + "'", errno);
  }
  logInfo("map '" + path + "' was pinned by another build (" + std::to_string(info.max_entries) +
          " entries, this build has " + std::to_string(bpf_map__max_entries(map)) +
          "): replaced, its counters restart at zero");
  return {};
}

// Points every non-internal map at <pin_root>/<name>: libbpf then reuses a compatible
// pinned map or creates and pins a new one.
Result<void> pinMaps(bpf_object* obj, const std::string& pin_root) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    if (bpf_map__is_internal(map)) {
      continue;
    }
    const std::string path = pin_root + "/" + bpf_map__name(map);
    if (countersOnly(bpf_map__name(map))) {
      if (auto r = replaceIfIncompatible(map, path); !r) {
        return r;
      }
    }
    if (int err = bpf_map__set_pin_path(map, path.c_str()); err) {
      return failErrno(std::string("map '") + bpf_map__name(map) + "': set pin path", err);
    }
  }
  return {};
}

constexpr const char* kIncompatiblePins =
    ": load (a pinned map whose size or type differs from this build cannot be reused; "
    "`meshgate-agent --detach` clears them)";

Result<uint32_t> linkIfindex(int link_fd, uint32_t* prog_id) {
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(link_fd, &info, &len) != 0) {
    return failErrno("link info", errno);
  }
  if (prog_id) {
    *prog_id = info.prog_id;
  }
  return info.xdp.ifindex;
}

// bpffs refuses names with a dot, which interface names may hold (a VLAN: "eth0.100"): in a
// link's pin name '.' is written "%2e" and '%' "%25". Program names have no '-'.
std::string pinNameOfIfname(std::string_view ifname) {
  std::string out;
  for (const char c : ifname) {
    out += c == '.' ? "%2e" : c == '%' ? "%25" : std::string(1, c);
  }
  return out;
}

std::string ifnameOfPinName(std::string_view name) {
  std::string out;
  for (size_t i = 0; i < name.size(); i++) {
    if (name.substr(i, 3) == "%2e") {
      out += '.';
      i += 2;
    } else if (name.substr(i, 3) == "%25") {
      out += '%';
      i += 2;
    } else {
      out += name[i];
    }
  }
  return out;
}

}  // namespace

const char* programName(XdpProgram p) {
  return p == XdpProgram::kLoadBalancer ? "xdp_lb" : "xdp_decap";
}

std::string linkPinPath(const std::string& pin_root, XdpProgram which, const std::string& ifname) {
  return pin_root + "/" + kLinksDir + "/" + programName(which) + "-" + pinNameOfIfname(ifname);
}

LoadedProgram::LoadedProgram(XdpProgram which, void* skel, bpf_object* obj, int prog_fd,
                             std::string pin_root)
    : which_(which), skel_(skel), obj_(obj), prog_fd_(prog_fd), pin_root_(std::move(pin_root)) {}

LoadedProgram::LoadedProgram(LoadedProgram&& o) noexcept
    : which_(o.which_),
      skel_(std::exchange(o.skel_, nullptr)),
      obj_(std::exchange(o.obj_, nullptr)),
      prog_fd_(std::exchange(o.prog_fd_, -1)),
      quic_key_prog_fd_(std::exchange(o.quic_key_prog_fd_, -1)),
      pin_root_(std::move(o.pin_root_)) {}

LoadedProgram& LoadedProgram::operator=(LoadedProgram&& o) noexcept {
  if (this != &o) {
    destroy();
    which_ = o.which_;
    skel_ = std::exchange(o.skel_, nullptr);
    obj_ = std::exchange(o.obj_, nullptr);
    prog_fd_ = std::exchange(o.prog_fd_, -1);
    quic_key_prog_fd_ = std::exchange(o.quic_key_prog_fd_, -1);
    pin_root_ = std::move(o.pin_root_);
  }
  return *this;
}

LoadedProgram::~LoadedProgram() {
  destroy();
}

void LoadedProgram::destroy() {
  if (!skel_) {
    return;
  }
  if (which_ == XdpProgram::kLoadBalancer) {
    xdp_lb_bpf__destroy(static_cast<xdp_lb_bpf*>(skel_));
  } else {
    xdp_decap_bpf__destroy(static_cast<xdp_decap_bpf*>(skel_));
  }
  skel_ = nullptr;
}

int LoadedProgram::progFd() const {
  return prog_fd_;
}

Result<LoadedProgram> LoadedProgram::load(XdpProgram which, const LoadOptions& opts) {
  if (auto dir = ensureBpffsDir(opts.pin_root + "/" + kLinksDir); !dir) {
    return std::unexpected(dir.error());
  }
  const std::string what = std::string(programName(which));
  if (which == XdpProgram::kLoadBalancer) {
    xdp_lb_bpf* skel = xdp_lb_bpf__open();
    if (!skel) {
      return failErrno(what + ": open", errno);
    }
    LoadedProgram prog(which, skel, skel->obj, -1, opts.pin_root);
    if (opts.conntrack_size != 0) {
      if (int err = bpf_map__set_max_entries(skel->maps.mg_conntrack, opts.conntrack_size)) {
        return failErrno(what + ": map 'mg_conntrack': set size", err);
      }
    }
    if (auto pinned = pinMaps(skel->obj, opts.pin_root); !pinned) {
      return std::unexpected(pinned.error());
    }
    if (int err = xdp_lb_bpf__load(skel); err) {
      return failErrno(what + kIncompatiblePins, err);
    }
    prog.prog_fd_ = bpf_program__fd(skel->progs.xdp_lb);
    prog.quic_key_prog_fd_ = bpf_program__fd(skel->progs.mg_quic_set_key);
    return prog;
  }
  xdp_decap_bpf* skel = xdp_decap_bpf__open();
  if (!skel) {
    return failErrno(what + ": open", errno);
  }
  LoadedProgram prog(which, skel, skel->obj, -1, opts.pin_root);
  if (auto pinned = pinMaps(skel->obj, opts.pin_root); !pinned) {
    return std::unexpected(pinned.error());
  }
  if (int err = xdp_decap_bpf__load(skel); err) {
    return failErrno(what + kIncompatiblePins, err);
  }
  prog.prog_fd_ = bpf_program__fd(skel->progs.xdp_decap);
  return prog;
}

Result<std::string> LoadedProgram::attach(const std::string& ifname, bool generic) {
  const std::string what = std::string(programName(which_)) + " on '" + ifname + "'";
  auto ifindex = ifindexOf(ifname);
  if (!ifindex) {
    return fail(what + ": " + ifindex.error().message);
  }
  const std::string pin = linkPinPath(pin_root_, which_, ifname);

  // Adopt a pinned link that still points at this interface in the wanted mode: swap the
  // program in, atomically. A link in the other mode is replaced (a short detach).
  if (auto existing = openPinned(pin)) {
    auto linked = linkIfindex(existing->get(), nullptr);
    LIBBPF_OPTS(bpf_xdp_query_opts, query);
    const bool queried = bpf_xdp_query(*ifindex, 0, &query) == 0;
    const bool is_generic = queried && query.attach_mode == XDP_ATTACHED_SKB;
    if (linked && *linked == *ifindex && (!queried || is_generic == generic)) {
      if (bpf_link_update(existing->get(), prog_fd_, nullptr) != 0) {
        return failErrno(what + ": replace program in pinned link", errno);
      }
      return what + ": adopted pinned link, program replaced";
    }
    if (linked && *linked == *ifindex) {
      logWarn(what + ": attached in " + (is_generic ? "generic" : "native") +
              " mode, config asks for " + (generic ? "generic" : "native") +
              ": re-attaching (traffic passes to the stack meanwhile)");
    }
    ::unlink(pin.c_str());  // defunct (interface gone) or the wrong mode
    existing->reset();      // the last reference: the old link detaches now
  }

  std::string mode = generic ? "generic" : "native";
  LIBBPF_OPTS(bpf_link_create_opts, opts);
  opts.flags = generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
  int link_fd = bpf_link_create(prog_fd_, *ifindex, BPF_XDP, &opts);
  if (link_fd < 0 && !generic && (errno == EOPNOTSUPP || errno == EINVAL)) {
    // EOPNOTSUPP: the driver has no XDP; EINVAL: it refuses this program or this link's
    // settings (an MTU above what its XDP handles, for one). The kernel's own reason is
    // in its log (dmesg).
    logWarn(what + ": native XDP attach failed (" + std::strerror(errno) +
            (errno == EOPNOTSUPP ? ": the driver has no native XDP"
                                 : ": the driver refuses this program or link setting") +
            "); attaching in generic mode, which is much slower");
    opts.flags = XDP_FLAGS_SKB_MODE;
    mode = "generic (native unsupported)";
    link_fd = bpf_link_create(prog_fd_, *ifindex, BPF_XDP, &opts);
  }
  if (link_fd < 0) {
    return failErrno(what + ": attach", errno);
  }
  UniqueFd link(link_fd);
  if (bpf_obj_pin(link.get(), pin.c_str()) != 0) {
    return failErrno(what + ": pin link at '" + pin + "'", errno);
  }
  return what + ": attached, " + mode + " mode";
}

Result<std::vector<PinnedLink>> listPinnedLinks(const std::string& pin_root) {
  std::vector<PinnedLink> out;
  std::error_code ec;
  const std::string dir = pin_root + "/" + kLinksDir;
  if (!std::filesystem::exists(dir, ec)) {
    return out;
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    PinnedLink l;
    l.path = entry.path().string();
    const std::string name = entry.path().filename().string();
    const auto dash = name.find('-');
    l.program = name.substr(0, dash);
    l.ifname = dash == std::string::npos ? "" : ifnameOfPinName(name.substr(dash + 1));
    if (auto fd = openPinned(l.path)) {
      if (auto idx = linkIfindex(fd->get(), &l.prog_id)) {
        l.ifindex = *idx;
      }
    }
    out.push_back(std::move(l));
  }
  if (ec) {
    return fail("list links in '" + dir + "': " + ec.message());
  }
  return out;
}

Result<void> detachOtherLinks(const std::string& pin_root, XdpProgram which,
                              const std::vector<std::string>& keep) {
  auto links = listPinnedLinks(pin_root);
  if (!links) {
    return std::unexpected(links.error());
  }
  for (const auto& l : *links) {
    if (l.program != programName(which)) {
      continue;
    }
    bool kept = false;
    for (const auto& k : keep) {
      kept = kept || k == l.ifname;
    }
    if (!kept && ::unlink(l.path.c_str()) != 0) {
      return failErrno("detach '" + l.path + "'", errno);
    }
  }
  return {};
}

Result<void> detachEverything(const std::string& pin_root) {
  return removePinTree(pin_root);
}

}  // namespace meshgate::agent
