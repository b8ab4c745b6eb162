#include "agent/bpf_util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <filesystem>
#include <linux/magic.h>

namespace meshgate::agent {
namespace {

constexpr const char* kBpffsMount = "/sys/fs/bpf";

bool onBpffs(const std::string& path) {
  struct statfs st{};
  return ::statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

}  // namespace

Result<void> ensureBpffsDir(const std::string& dir) {
  if (!onBpffs(kBpffsMount)) {
    ::mkdir(kBpffsMount, 0700);
    if (::mount("bpf", kBpffsMount, "bpf", 0, "mode=0700") != 0) {
      return failErrno(std::string("mount bpffs at ") + kBpffsMount, errno);
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return fail("pin directory '" + dir + "': " + ec.message());
  }
  if (!onBpffs(dir)) {
    return fail("pin directory '" + dir + "' is not on a bpf filesystem");
  }
  if (!onBpffs(std::filesystem::path(dir).parent_path().string())) {
    return fail("pin directory '" + dir + "' is a bpffs mount point; use a directory of its "
                "own below it, e.g. " + std::string(kBpffsMount) + "/meshgate");
  }
  return {};
}

Result<UniqueFd> openPinned(const std::string& path) {
  const int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    return failErrno("open pin '" + path + "'", errno);
  }
  return UniqueFd(fd);
}

Result<void> removePinTree(const std::string& dir) {
  // Only ever a directory of meshgate's own below a bpffs mount: never the mount itself
  // (other tools' pins) and never a path outside bpffs.
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    return {};
  }
  const std::string parent = std::filesystem::path(dir).parent_path().string();
  if (!onBpffs(dir) || !onBpffs(parent)) {
    return fail("refusing to remove '" + dir + "': not a directory below a bpf filesystem mount");
  }
  std::filesystem::remove_all(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return fail("remove pins under '" + dir + "': " + ec.message());
  }
  return {};
}

Result<uint32_t> ifindexOf(const std::string& name) {
  const unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) {
    return failErrno("interface '" + name + "'", errno);
  }
  return idx;
}

int possibleCpus() {
  static const int n = libbpf_num_possible_cpus();
  return n;
}

Result<void> mapUpdate(int fd, const void* key, const void* value, const char* map_name,
                       uint64_t flags) {
  if (bpf_map_update_elem(fd, key, value, flags) != 0) {
    return failErrno(std::string("map '") + map_name + "': update", errno);
  }
  return {};
}

Result<uint64_t> sumPerCpuU64(int fd, uint32_t key, const char* map_name) {
  std::vector<uint64_t> values(possibleCpus());
  if (bpf_map_lookup_elem(fd, &key, values.data()) != 0) {
    return failErrno(std::string("map '") + map_name + "': lookup " + std::to_string(key), errno);
  }
  uint64_t sum = 0;
  for (uint64_t v : values) {
    sum += v;
  }
  return sum;
}

}  // namespace meshgate::agent
