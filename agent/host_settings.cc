#include "agent/host_settings.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "agent/bpf_util.h"
#include "meshgate/abi/common.h"

namespace meshgate::agent {
namespace {

std::string procPath(const std::string& sysctl) {
  return "/proc/sys/" + sysctl;
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
  if (fd || !create || fd.error().errnum != ENOENT) {
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

Result<bool> changeSysctl(const std::string& pin_root, const std::string& sysctl,
                          const std::string& value) {
  mg_host_setting_key key{};
  if (sysctl.size() >= sizeof(key.sysctl)) {
    return fail("sysctl name too long to record: " + sysctl);
  }
  auto before = readSysctl(sysctl);
  if (!before) {
    return std::unexpected(before.error());
  }
  if (*before == value) {
    return false;
  }
  mg_host_setting_value old{};
  if (before->size() >= sizeof(old.before)) {
    return fail("value of " + sysctl + " too long to record: " + *before);
  }
  auto map = settingsMap(pin_root, true);
  if (!map) {
    return std::unexpected(map.error());
  }
  std::memcpy(key.sysctl, sysctl.data(), sysctl.size());
  std::memcpy(old.before, before->data(), before->size());
  // BPF_NOEXIST: a value recorded by an earlier agent is the host's own; keep it.
  if (bpf_map_update_elem(map->get(), &key, &old, BPF_NOEXIST) != 0 && errno != EEXIST) {
    return failErrno("record " + sysctl + " in " MG_MAP_HOST_SETTINGS, errno);
  }
  if (auto w = writeSysctl(sysctl, value); !w) {
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
  mg_host_setting_key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(map->get(), prev, &next) == 0) {
    mg_host_setting_value v{};
    if (bpf_map_lookup_elem(map->get(), &next, &v) == 0) {
      out.push_back({std::string(next.sysctl, strnlen(next.sysctl, sizeof(next.sysctl))),
                     std::string(v.before, strnlen(v.before, sizeof(v.before))), ""});
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
