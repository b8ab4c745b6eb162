#include "agent/host_settings.h"

#include <bpf/bpf.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string_view>

#include "agent/bpf_util.h"
#include "agent/config.h"
#include "meshgate/abi/common.h"

namespace meshgate::agent {
namespace {

std::string procPath(const std::string& sysctl) {
  return "/proc/sys/" + sysctl;
}

bool isForwardingValue(const std::string& v) {
  return v == "0" || v == "1" || v == "2";
}

Result<uint64_t> currentNetns() {
  struct stat st {};
  if (::stat("/proc/self/ns/net", &st) != 0) {
    return failErrno("stat /proc/self/ns/net", errno);
  }
  return static_cast<uint64_t>(st.st_ino);
}

Result<std::string> readSysctl(const std::string& sysctl) {
  errno = 0;
  std::ifstream in(procPath(sysctl));
  std::string v;
  if (!(in >> v)) {
    return failErrno("read " + procPath(sysctl), errno ? errno : EIO);
  }
  return v;
}

Result<void> writeSysctl(const std::string& sysctl, const std::string& value) {
  errno = 0;
  std::ofstream out(procPath(sysctl));
  out << value << "\n";
  out.flush();
  if (!out) {
    return failErrno("write '" + value + "' to " + procPath(sysctl), errno ? errno : EIO);
  }
  return {};
}

// The pinned map, created and pinned on first use when `create`.
Result<UniqueFd> settingsMap(const std::string& pin_root, bool create) {
  const std::string pin = pin_root + "/" MG_MAP_HOST_SETTINGS;
  auto fd = openPinned(pin);
  if (fd) {
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd->get(), &info, &len) != 0) {
      return failErrno("map " + pin + ": info", errno);
    }
    if (info.key_size != sizeof(mg_host_setting_key) ||
        info.value_size != sizeof(mg_host_setting_value)) {
      return fail("map " + pin + " has another layout (" + std::to_string(info.value_size) +
                  "-byte values, this build's are " +
                  std::to_string(sizeof(mg_host_setting_value)) +
                  "): an older build made it; restore its forwarding settings by hand "
                  "(bpftool map dump pinned " +
                  pin + ") and remove it");
    }
    return fd;
  }
  if (!create || fd.error().errnum != ENOENT) {
    return fd;
  }
  const int raw =
      bpf_map_create(BPF_MAP_TYPE_HASH, MG_MAP_HOST_SETTINGS, sizeof(mg_host_setting_key),
                     sizeof(mg_host_setting_value), MG_HOST_SETTINGS_MAX, nullptr);
  if (raw < 0) {
    return failErrno("create map " MG_MAP_HOST_SETTINGS, errno);
  }
  UniqueFd created(raw);
  if (bpf_obj_pin(created.get(), pin.c_str()) != 0) {
    return failErrno("pin " + pin, errno);
  }
  return created;
}

}  // namespace

bool isForwardingSysctl(const std::string& sysctl) {
  std::string_view rest = sysctl;
  if (!rest.starts_with("net/ipv4/conf/") && !rest.starts_with("net/ipv6/conf/")) {
    return false;
  }
  rest.remove_prefix(std::string_view("net/ipv4/conf/").size());
  if (!rest.ends_with("/forwarding")) {
    return false;
  }
  rest.remove_suffix(std::string_view("/forwarding").size());
  return validIfName(rest);
}

Result<bool> changeSysctl(const std::string& pin_root, const std::string& sysctl,
                          const std::string& value) {
  mg_host_setting_key key{};
  if (!isForwardingSysctl(sysctl) || !isForwardingValue(value)) {
    return fail("not a forwarding setting meshgate records: " + sysctl + " = " + value);
  }
  auto before = readSysctl(sysctl);
  if (!before) {
    return std::unexpected(before.error());
  }
  if (*before == value) {
    return false;
  }
  mg_host_setting_value old{};
  if (!isForwardingValue(*before)) {
    return fail("unexpected value of /proc/sys/" + sysctl + ": " + *before);
  }
  auto netns = currentNetns();
  if (!netns) {
    return std::unexpected(netns.error());
  }
  auto map = settingsMap(pin_root, true);
  if (!map) {
    return std::unexpected(map.error());
  }
  std::memcpy(key.sysctl, sysctl.data(), sysctl.size());
  std::memcpy(old.before, before->data(), before->size());
  old.netns_ino = *netns;
  // BPF_NOEXIST: a value recorded by an earlier agent is the host's own; keep it.
  bool recorded = true;
  if (bpf_map_update_elem(map->get(), &key, &old, BPF_NOEXIST) != 0) {
    if (errno != EEXIST) {
      return failErrno("record " + sysctl + " in " MG_MAP_HOST_SETTINGS, errno);
    }
    recorded = false;
  }
  if (auto w = writeSysctl(sysctl, value); !w) {
    if (recorded) {
      bpf_map_delete_elem(map->get(), &key);  // nothing changed: nothing to restore
    }
    return std::unexpected(w.error());
  }
  return true;
}

Result<std::vector<RestoredSetting>> recordedSysctls(const std::string& pin_root) {
  std::vector<RestoredSetting> out;
  auto map = settingsMap(pin_root, false);
  if (!map) {
    if (map.error().errnum == ENOENT) {
      return out;
    }
    return std::unexpected(map.error());
  }
  auto netns = currentNetns();
  if (!netns) {
    return std::unexpected(netns.error());
  }
  const std::string pin = pin_root + "/" MG_MAP_HOST_SETTINGS;
  mg_host_setting_key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(map->get(), prev, &next) == 0) {
    mg_host_setting_value v{};
    if (bpf_map_lookup_elem(map->get(), &next, &v) == 0) {
      RestoredSetting s{std::string(next.sysctl, strnlen(next.sysctl, sizeof(next.sysctl))),
                        std::string(v.before, strnlen(v.before, sizeof(v.before))), ""};
      if (!isForwardingSysctl(s.sysctl) || !isForwardingValue(s.value)) {
        return fail(pin + ": refusing to restore a record that is not a forwarding setting: " +
                    s.sysctl + " = " + s.value);
      }
      if (v.netns_ino != *netns) {
        return fail(pin + ": /proc/sys/" + s.sysctl + " was changed in network namespace " +
                    std::to_string(v.netns_ino) + ", this is " + std::to_string(*netns) +
                    ": run --detach in the agent's namespace (nsenter --net=...)");
      }
      out.push_back(std::move(s));
    }
    key = next;
    prev = &key;
  }
  return out;
}

void restoreSysctls(std::vector<RestoredSetting>& settings) {
  for (auto& s : settings) {
    if (auto w = writeSysctl(s.sysctl, s.value); !w) {
      s.error = w.error().message;
    }
  }
}

}  // namespace meshgate::agent
