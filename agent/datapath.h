// Loading and attaching meshgate's XDP programs, libbpf's lifecycle in RAII form:
// open -> configure (map sizes, pin paths) -> load -> attach. Every map is pinned at
// <pin_root>/<map name> and every XDP attachment is a BPF link pinned at
// <pin_root>/links/<program>-<interface>, so the data path keeps running when the agent
// exits or crashes, and the next agent adopts maps and links instead of replacing them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/bpf_util.h"
#include "meshgate/result.h"

struct bpf_object;

namespace meshgate::agent {

// Which program, from which embedded skeleton.
enum class XdpProgram { kLoadBalancer, kDecap };
const char* programName(XdpProgram p);  // "xdp_lb" / "xdp_decap"

struct LoadOptions {
  std::string pin_root;
  uint32_t conntrack_size = 0;  // xdp_lb only; 0 keeps the compiled-in size
};

// A loaded (verified) program whose maps are pinned. Destroying it closes the agent's
// references only: pinned maps and links keep the data path alive.
class LoadedProgram {
 public:
  static Result<LoadedProgram> load(XdpProgram which, const LoadOptions& opts);

  LoadedProgram(LoadedProgram&&) noexcept;
  LoadedProgram& operator=(LoadedProgram&&) noexcept;
  ~LoadedProgram();

  int progFd() const;
  // fd of xdp_lb's SEC("syscall") program mg_quic_set_key, which installs QUIC-LB keys
  // (LbState::setQuicKeyProgram); -1 for other programs. Valid while this object lives.
  int quicKeyProgFd() const { return quic_key_prog_fd_; }
  XdpProgram which() const { return which_; }

  // Attaches to `ifname` (native mode unless `generic`; native falls back to generic
  // with a logged warning when the driver cannot do it), or, when a link for that
  // interface is already pinned, swaps this program into it atomically. Returns a line
  // describing what happened, for the log.
  Result<std::string> attach(const std::string& ifname, bool generic);

 private:
  LoadedProgram(XdpProgram which, void* skel, bpf_object* obj, int prog_fd,
                std::string pin_root);
  void destroy();

  XdpProgram which_;
  void* skel_ = nullptr;
  bpf_object* obj_ = nullptr;
  int prog_fd_ = -1;
  int quic_key_prog_fd_ = -1;
  std::string pin_root_;
};

// Path of the pinned link of `which` on `ifname`.
std::string linkPinPath(const std::string& pin_root, XdpProgram which,
                        const std::string& ifname);

struct PinnedLink {
  std::string path;
  std::string program;  // "xdp_lb" / "xdp_decap"
  std::string ifname;   // from the pin name
  uint32_t ifindex = 0;  // 0: the interface is gone (link defunct)
  uint32_t prog_id = 0;
};
// Links pinned under <pin_root>/links.
Result<std::vector<PinnedLink>> listPinnedLinks(const std::string& pin_root);

// Unpins the links of `which` on interfaces not in `keep` (detaching them).
Result<void> detachOtherLinks(const std::string& pin_root, XdpProgram which,
                              const std::vector<std::string>& keep);

// Removes every link and map meshgate pinned under pin_root: XDP detaches, maps go away
// once no program holds them. This is `meshgate-agent --detach`.
Result<void> detachEverything(const std::string& pin_root);

}  // namespace meshgate::agent
