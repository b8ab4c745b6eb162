// Small RAII owners and wrappers around libbpf and bpffs, converting negative errno to
// Result at this boundary.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "meshgate/result.h"

namespace meshgate::agent {

// Owns a file descriptor; move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset(std::exchange(o.fd_, -1));
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Mounts bpffs at /sys/fs/bpf when nothing is mounted there, then creates `dir` (and its
// parents), which must lie on a bpffs.
Result<void> ensureBpffsDir(const std::string& dir);

// bpf_obj_get(path), with the path in the error.
Result<UniqueFd> openPinned(const std::string& path);

// Removes a pin directory tree (pins and sub-directories). Missing is not an error.
Result<void> removePinTree(const std::string& dir);

// Interface index of `name` in the caller's network namespace.
Result<uint32_t> ifindexOf(const std::string& name);

// Number of possible CPUs: the width of per-CPU map values.
int possibleCpus();

// Writes value to key in an ARRAY/HASH map; the error names the map.
Result<void> mapUpdate(int fd, const void* key, const void* value, const char* map_name,
                       uint64_t flags = 0);
// Sums a per-CPU __u64 array entry over all CPUs.
Result<uint64_t> sumPerCpuU64(int fd, uint32_t key, const char* map_name);

}  // namespace meshgate::agent
