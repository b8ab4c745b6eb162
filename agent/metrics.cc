#include "agent/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>

#include "agent/lb_maps.h"
#include "agent/net_addr.h"
#include "meshgate/abi/decap.h"

namespace meshgate::agent {
namespace {

void line(std::string& out, const std::string& metric, const std::string& labels, uint64_t v) {
  out += metric + "{" + labels + "} " + std::to_string(v) + "\n";
}

}  // namespace

Result<std::string> renderPrometheus(const std::string& pin_root) {
  auto maps = LbMaps::openPinned(pin_root);
  if (!maps) {
    return std::unexpected(maps.error());
  }
  std::string out;
  auto counters = readLbCounters(maps->lb_stats.get());
  auto drops = readLbDrops(maps->lb_drops.get());
  auto vips = readVips(maps->vips.get());
  auto backends = readLiveBackends(maps->backends.get());
  if (!counters || !drops || !vips || !backends) {
    return fail("metrics: cannot read the pinned maps under '" + pin_root + "'");
  }
  out += "# HELP meshgate_lb_events_total xdp_lb events (mg_lb_stats)\n";
  out += "# TYPE meshgate_lb_events_total counter\n";
  for (const auto& c : *counters) {
    line(out, "meshgate_lb_events_total", "event=\"" + c.name + "\"", c.value);
  }
  out += "# HELP meshgate_lb_drops_total xdp_lb drops by reason (mg_lb_drops)\n";
  out += "# TYPE meshgate_lb_drops_total counter\n";
  for (const auto& d : *drops) {
    line(out, "meshgate_lb_drops_total", "reason=\"" + d.name + "\"", d.value);
  }
  out += "# TYPE meshgate_vip_packets_total counter\n# TYPE meshgate_vip_bytes_total counter\n";
  std::vector<std::string> vip_names(MG_MAX_VIPS);
  for (const auto& v : *vips) {
    vip_names[v.info.vip_id] = vipKeyName(v.key);
    auto t = readTraffic(maps->vip_stats.get(), v.info.vip_id, MG_MAP_VIP_STATS);
    if (t) {
      const std::string l = "vip=\"" + vip_names[v.info.vip_id] + "\"";
      line(out, "meshgate_vip_packets_total", l, t->packets);
      line(out, "meshgate_vip_bytes_total", l, t->bytes);
    }
  }
  out += "# TYPE meshgate_backend_packets_total counter\n";
  out += "# TYPE meshgate_backend_bytes_total counter\n";
  for (const auto& b : *backends) {
    auto t = readTraffic(maps->backend_stats.get(), b.id, MG_MAP_BACKEND_STATS);
    if (t) {
      const std::string vip = b.backend.vip_id < MG_MAX_VIPS ? vip_names[b.backend.vip_id] : "";
      const std::string l =
          "vip=\"" + vip + "\",backend=\"" + addressText(b.backend.addr, b.backend.family) + "\"";
      line(out, "meshgate_backend_packets_total", l, t->packets);
      line(out, "meshgate_backend_bytes_total", l, t->bytes);
    }
  }
  if (auto decap = openPinned(pin_root + "/" MG_MAP_DECAP_STATS)) {
    if (auto counters = readDecapCounters(decap->get())) {
      out += "# TYPE meshgate_decap_events_total counter\n";
      for (const auto& c : *counters) {
        line(out, "meshgate_decap_events_total", "event=\"" + c.name + "\"", c.value);
      }
    }
  }
  return out;
}

Result<MetricsServer> MetricsServer::listen(const std::string& address,
                                            const std::string& pin_root) {
  auto parsed = SockAddr::parse(address);
  if (!parsed) {
    return fail("metrics.listen: " + parsed.error().message);
  }
  sockaddr_storage ss{};
  socklen_t len;
  if (parsed->addr.isV6()) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(parsed->port);
    std::memcpy(&s6->sin6_addr, parsed->addr.words.data(), 16);
    len = sizeof(*s6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(parsed->port);
    s4->sin_addr.s_addr = parsed->addr.words[0];
    len = sizeof(*s4);
  }
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd.get(), 16) != 0) {
    return failErrno("metrics.listen: " + address, errno);
  }
  return MetricsServer(std::move(fd), pin_root);
}

void MetricsServer::serveOne(const std::string& extra) {
  UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn.valid()) {
    return;
  }
  timeval tv{1, 0};
  ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(conn.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  char req[1024];
  const ssize_t n = ::recv(conn.get(), req, sizeof(req) - 1, 0);
  if (n <= 0) {
    return;
  }
  req[n] = 0;
  std::string status = "200 OK", body;
  if (std::strncmp(req, "GET /metrics", 12) != 0) {
    status = "404 Not Found";
    body = "try /metrics\n";
  } else if (auto text = renderPrometheus(pin_root_)) {
    body = std::move(*text) + extra;
  } else {
    status = "503 Service Unavailable";
    body = text.error().message + "\n";
  }
  const std::string resp = "HTTP/1.1 " + status +
                           "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  ::send(conn.get(), resp.data(), resp.size(), MSG_NOSIGNAL);
}

}  // namespace meshgate::agent
