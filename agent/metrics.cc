#include "agent/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

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
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd.get(), 16) != 0) {
    return failErrno("metrics.listen: " + address, errno);
  }
  return MetricsServer(std::move(fd), pin_root);
}

void MetricsServer::pollFds(std::vector<pollfd>& fds) const {
  fds.push_back({fd_.get(), POLLIN, 0});
  for (const Client& c : clients_) {
    fds.push_back({c.fd.get(), static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
  }
}

int MetricsServer::msUntilDeadline(Clock::time_point now) const {
  int ms = -1;
  for (const Client& c : clients_) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(c.deadline - now).count();
    const int until = static_cast<int>(std::max<int64_t>(0, left));
    ms = ms < 0 ? until : std::min(ms, until);
  }
  return ms;
}

void MetricsServer::handle(const std::vector<pollfd>& fds, size_t first, Clock::time_point now,
                           const std::function<std::string()>& render) {
  // fds[first + 1 + i] is clients_[i] as pollFds() listed them; new clients come after.
  std::vector<bool> done(clients_.size(), false);
  for (size_t i = 0; i < clients_.size() && first + 1 + i < fds.size(); i++) {
    if (fds[first + 1 + i].revents != 0) {
      done[i] = !serve(clients_[i], render);
    }
    done[i] = done[i] || now >= clients_[i].deadline;
  }
  for (size_t i = clients_.size(); i-- > 0;) {
    if (done[i]) {
      clients_.erase(clients_.begin() + static_cast<ptrdiff_t>(i));
    }
  }
  if (first < fds.size() && (fds[first].revents & POLLIN)) {
    accept(now);
  }
}

void MetricsServer::accept(Clock::time_point now) {
  for (;;) {
    UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!conn.valid()) {
      return;  // EAGAIN: none left (or an error on one connection: it is gone)
    }
    if (clients_.size() >= kMaxClients) {
      continue;  // closed: the busy answer a scraper retries later
    }
    clients_.push_back(Client{std::move(conn), now + kClientTime, {}, {}, 0});
  }
}

bool MetricsServer::serve(Client& c, const std::function<std::string()>& render) {
  if (c.out.empty()) {
    char buf[1024];
    const ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if ((n == 0 && c.in.empty()) || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      return false;
    }
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
    }
    // Answered once the head is complete, or once the client sent all it will (`echo GET
    // /metrics | nc` ends with the request line).
    if (n != 0 && c.in.find("\r\n\r\n") == std::string::npos &&
        c.in.find("\n\n") == std::string::npos && c.in.size() < 1024) {
      return true;  // the rest of the head is still to come
    }
    c.out = answer(c.in, render);
  }
  const ssize_t n =
      ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0) {
    return errno == EAGAIN || errno == EINTR;
  }
  c.sent += static_cast<size_t>(n);
  return c.sent < c.out.size();
}

std::string MetricsServer::answer(std::string_view request,
                                  const std::function<std::string()>& render) const {
  std::string status = "200 OK", body;
  if (!request.starts_with("GET /metrics")) {
    status = "404 Not Found";
    body = "try /metrics\n";
  } else if (auto text = renderPrometheus(pin_root_)) {
    body = std::move(*text) + render();
  } else {
    status = "503 Service Unavailable";
    body = text.error().message + "\n";
  }
  return "HTTP/1.1 " + status + "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

}  // namespace meshgate::agent
