// meshgate-proxy end to end, in a namespace of the test's own: real clients (curl, raw
// sockets) through the real binary to nginx and to a recording backend. Keep-alive and
// pipelining, byte-exact bodies both ways, the error statuses, the smuggling battery (the
// backend never sees a rejected request), TCP half-close, WebSocket upgrade tunnelling,
// reload, retries and consistent hashing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>

#include "tests/lib/proxy_fixture.h"

namespace meshgate::test {
namespace {

std::string endpoint(uint16_t port) {
  return R"({"address": "127.0.0.1", "port": )" + std::to_string(port) + "}";
}

// A config with one HTTP listener "web" (and optionally more text) routing everything to
// cluster "be".
std::string httpConfig(const std::string& endpoints, const std::string& route_extra = "",
                       const std::string& extra = "", const std::string& cluster_extra = "") {
  return R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": [{"cluster": "be")" +
         route_extra + R"(}]}], "clusters": [{"name": "be", "endpoints": [)" + endpoints + "]" +
         cluster_extra + R"(}], "admin": {"address": "127.0.0.1", "port": 0})" + extra + "}";
}

class ProxyHttpTest : public ProxyFixture {
 protected:
  Result<std::string> curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "20"};
    argv.insert(argv.end(), args.begin(), args.end());
    return ns_->run(argv);
  }
  std::string raw(const std::string& request, bool half_close = false) {
    auto r = rawExchange(*ns_, proxy_->port("web"), request, half_close);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : "";
  }
};

TEST_F(ProxyHttpTest, KeepsClientAndUpstreamConnectionsAliveAcrossRequests) {
  startProxy(httpConfig(endpoint(nginx_->port())));
  std::vector<std::string> args = {"-w", "%{http_code} %{num_connects}\\n"};
  for (int i = 0; i < 50; i++) {
    args.insert(args.end(), {"-o", "/dev/null", url(i % 2 ? "/small" : "/echo")});
  }
  auto out = curl(args);
  ASSERT_TRUE(out) << out.error().message;
  std::istringstream lines(*out);
  std::string code;
  int connects = 0, n = 0, total_connects = 0;
  while (lines >> code >> connects) {
    EXPECT_EQ(code, "200");
    total_connects += connects;
    n++;
  }
  EXPECT_EQ(n, 50);
  EXPECT_EQ(total_connects, 1) << "curl kept one client connection";
  EXPECT_EQ(metric("downstream_rq_total"), 50u);
  EXPECT_EQ(metric("upstream_cx_connect"), 1u) << "one upstream connection, reused";
  EXPECT_EQ(metric("upstream_cx_reused"), 49u);
}

TEST_F(ProxyHttpTest, StreamsA64MiBResponseByteExact) {
  startProxy(httpConfig(endpoint(nginx_->port()), "", R"(, "limits": {"buffer_bytes": 65536})"));
  const std::string out = dir_->path() + "/got";
  auto r = curl({"-o", out, "-w", "%{http_code}", url("/file64m")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "200");
  auto same = runCommand({"cmp", out, nginx_->root() + "/file64m"});
  EXPECT_TRUE(same) << same.error().message;
}

TEST_F(ProxyHttpTest, StreamsRequestBodiesByteExactWithContentLengthAndChunked) {
  auto& sink = backend(RecordingServer::answerWholeRequests());
  startProxy(httpConfig(endpoint(sink.port()), "", R"(, "limits": {"buffer_bytes": 16384})"));
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); i++) {
    data[i] = static_cast<char>((i * 7 + (i >> 13)) % 256);
  }
  const std::string file = dir_->path() + "/upload";
  std::ofstream(file, std::ios::binary) << data;

  auto r = curl({"--data-binary", "@" + file, url("/up")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "ok");
  std::string got = sink.received();
  ASSERT_NE(got.find("\r\n\r\n"), std::string::npos);
  EXPECT_EQ(got.substr(got.find("\r\n\r\n") + 4), data) << "Content-Length body byte-exact";

  const size_t before = got.size();
  r = curl({"-H", "Transfer-Encoding: chunked", "--data-binary", "@" + file, url("/up")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "ok");
  got = sink.received().substr(before);
  const auto head_end = got.find("\r\n\r\n");
  EXPECT_NE(got.substr(0, head_end).find("transfer-encoding: chunked"), std::string::npos);
  EXPECT_EQ(dechunk(std::string_view(got).substr(head_end + 4)).body, data)
      << "chunked body byte-exact";
}

TEST_F(ProxyHttpTest, AnswersPipelinedRequestsInOrder) {
  startProxy(httpConfig(endpoint(nginx_->port())));
  const std::string out =
      raw("GET /echo?1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?2 HTTP/1.1\r\nHost: a\r\n\r\n"
          "GET /echo?3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  const auto p1 = out.find("GET /echo?1\n"), p2 = out.find("GET /echo?2\n"),
             p3 = out.find("GET /echo?3\n");
  ASSERT_NE(p1, std::string::npos) << out;
  ASSERT_NE(p2, std::string::npos) << out;
  ASSERT_NE(p3, std::string::npos) << out;
  EXPECT_LT(p1, p2);
  EXPECT_LT(p2, p3);
}

// The response parser is one per client connection, reset for each request: a HEAD's
// answer (a Content-Length, no body) must not make it read the next GET's body as a new
// response, nor a GET's make it wait for a HEAD's body.
TEST_F(ProxyHttpTest, AlternatesHeadAndGetOnOneConnection) {
  startProxy(httpConfig(endpoint(nginx_->port())));
  const std::string out =
      raw("HEAD /small HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n"
          "HEAD /small HTTP/1.1\r\nHost: a\r\n\r\n"
          "GET /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  std::vector<std::string> bodies;
  size_t at = 0;
  while ((at = out.find("HTTP/1.1 ", at)) != std::string::npos) {
    const size_t head_end = out.find("\r\n\r\n", at);
    ASSERT_NE(head_end, std::string::npos) << out;
    std::string head = out.substr(at, head_end - at);
    std::transform(head.begin(), head.end(), head.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    EXPECT_NE(head.find("content-length: 100"), std::string::npos)
        << "each head states the length of /small: " << head;
    const size_t next = out.find("HTTP/1.1 ", head_end);
    bodies.push_back(
        out.substr(head_end + 4, (next == std::string::npos ? out.size() : next) - head_end - 4));
    at = head_end;
  }
  ASSERT_EQ(bodies.size(), 4u) << out;
  EXPECT_EQ(bodies[0], "") << "HEAD: no body";
  EXPECT_EQ(bodies[1], std::string(100, 'a')) << "GET after HEAD: the whole body";
  EXPECT_EQ(bodies[2], "") << "HEAD after GET: no body";
  EXPECT_EQ(bodies[3], std::string(100, 'a'));
  EXPECT_EQ(metric("upstream_cx_connect"), 1u) << "one upstream connection for all four";
}

TEST_F(ProxyHttpTest, ErrorStatusesMeanSomething) {
  auto& garbage = backend(RecordingServer::respond("garbage\r\n\r\n"));
  auto& silent = backend(RecordingServer::silent());
  const uint16_t closed = freeLoopbackPort(*ns_);
  const std::string cfg =
      R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": [
          {"match": {"path": {"prefix": "/echo"}}, "cluster": "ok"},
          {"match": {"path": {"prefix": "/refused"}}, "cluster": "refused"},
          {"match": {"path": {"prefix": "/garbage"}}, "cluster": "garbage"},
          {"match": {"path": {"prefix": "/silent"}}, "cluster": "silent", "timeout_ms": 300}]}],
        "clusters": [{"name": "ok", "endpoints": [)" +
      endpoint(nginx_->port()) + R"(]},
                     {"name": "refused", "endpoints": [)" +
      endpoint(closed) + R"(]},
                     {"name": "garbage", "endpoints": [)" +
      endpoint(garbage.port()) + R"(]},
                     {"name": "silent", "endpoints": [)" +
      endpoint(silent.port()) + R"(]}],
        "limits": {"header_timeout_ms": 300, "max_body_bytes": 1000, "max_headers": 20},
        "admin": {"address": "127.0.0.1", "port": 0}})";
  startProxy(cfg);
  EXPECT_EQ(statusOf(raw("GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n")), 404);
  const std::string refused = raw("GET /refused HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(statusOf(refused), 503);
  EXPECT_TRUE(
      refused.ends_with("\r\n\r\n503 Service Unavailable: cannot connect to the upstream\n"))
      << refused;
  EXPECT_EQ(refused.find(std::to_string(closed)), std::string::npos)
      << "the client is not told the upstream's address: " << refused;
  EXPECT_EQ(statusOf(raw("GET /garbage HTTP/1.1\r\nHost: a\r\n\r\n")), 502);
  EXPECT_EQ(statusOf(raw("GET /silent HTTP/1.1\r\nHost: a\r\n\r\n")), 504);
  EXPECT_EQ(statusOf(raw("GET /echo HTTP/1.1\r\nHost: a\r\n")), 408) << "head never completed";
  EXPECT_EQ(statusOf(raw("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n" +
                         std::string(2000, 'x'))),
            413);
  std::string many = "GET /echo HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 30; i++) {
    many += "X-" + std::to_string(i) + ": v\r\n";
  }
  EXPECT_EQ(statusOf(raw(many + "\r\n")), 431);
  EXPECT_EQ(statusOf(raw("GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")), 200)
      << "the proxy still serves after all that";
  EXPECT_EQ(metric("upstream_rq_timeout"), 1u);
  EXPECT_EQ(metric("upstream_rsp_bad"), 1u);
  EXPECT_GE(metric("upstream_cx_connect_fail"), 1u);
  EXPECT_EQ(metric("downstream_rq_timeout"), 1u);
}

// After an error page the proxy closes, but it keeps reading (and discarding) what the
// client is still sending: closing with unread bytes would send a reset that can destroy
// the error page in flight, and the client could not even finish sending.
TEST_F(ProxyHttpTest, AnErrorPageReachesAClientStillSendingItsBody) {
  startProxy(httpConfig(endpoint(nginx_->port()), "", R"(, "limits": {"max_body_bytes": 1000})"));
  const std::string body(4 << 20, 'x');
  auto out = rawExchange(*ns_, proxy_->port("web"),
                         "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(statusOf(*out), 413) << out->substr(0, 200);
}

TEST_F(ProxyHttpTest, SmugglingAttemptsAreRejectedAndNeverReachTheBackend) {
  auto& rec = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  startProxy(httpConfig(endpoint(rec.port())));
  struct Case {
    const char* name;
    std::string request;
    int status;
  };
  const std::vector<Case> cases = {
      {"CL and TE",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: "
       "chunked\r\n\r\n0\r\n\r\n",
       400},
      {"duplicate CL",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400},
      {"equal duplicate CL",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400},
      {"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd", 400},
      {"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd", 400},
      {"bad chunk size",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
       400},
      {"chunk size overflow",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
       400},
      {"TE without chunked last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
       400},
      {"TE gzip, chunked",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
      {"TE chunked twice",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400},
      {"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400},
      {"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"non-token name", "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", 400},
      {"missing host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"HTTP/2.0 line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
  };
  for (const auto& c : cases) {
    const std::string out = raw(c.request);
    EXPECT_EQ(statusOf(out), c.status) << c.name << ": " << out.substr(0, 120);
  }
  // A request rejected in its head never leaves the proxy. One rejected in its body (bad
  // chunk size) may have had its head forwarded already, then the upstream connection is
  // closed mid-request: the backend can never read a complete request from it. In no case
  // does a hostile byte reach the backend.
  const std::string got = rec.received();
  for (const char* hostile : {"zz\r\n", "ffffffffffffffffff", "gzip", "Content-Length", ", chunked",
                              " c\r\n", "Host :", "X(A)", "HTTP/2.0", "Host: b", "\rX: y"}) {
    EXPECT_EQ(got.find(hostile), std::string::npos) << "forwarded '" << hostile << "':\n" << got;
  }
  EXPECT_EQ(got.find("\r\n0\r\n\r\n"), std::string::npos) << "no complete chunked request";
  EXPECT_EQ(metric("downstream_rq_bad"), cases.size());
}

TEST_F(ProxyHttpTest, TcpListenerKeepsHalfClose) {
  auto& echo = backend(RecordingServer::echo());
  startProxy(
      R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "protocol": "tcp", "cluster": "be"}],
                 "clusters": [{"name": "be", "endpoints": [)" +
      endpoint(echo.port()) + "]}]}");
  const std::string payload(200000, 'z');
  EXPECT_EQ(raw(payload, /*half_close=*/true), payload)
      << "the client's FIN reached the backend after the last byte, and the backend's came back";
  EXPECT_EQ(echo.received(), payload);
}

TEST_F(ProxyHttpTest, IdleTcpSessionsAndPooledConnectionsExpire) {
  auto& echo = backend(RecordingServer::echo());
  startProxy(
      R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "protocol": "tcp", "cluster": "be"},
                               {"name": "http", "address": "127.0.0.1", "port": 0, "routes": [{"cluster": "ng"}]}],
                 "clusters": [{"name": "be", "endpoints": [)" +
      endpoint(echo.port()) + R"(]},
                              {"name": "ng", "endpoints": [)" +
      endpoint(nginx_->port()) + R"(]}],
                 "limits": {"idle_timeout_ms": 300}})");
  // A TCP session where nobody sends anything is closed by the proxy.
  auto out = rawExchange(*ns_, proxy_->port("web"), "", false, std::chrono::seconds(5));
  ASSERT_TRUE(out) << "the proxy closed the idle pipe: " << out.error().message;
  EXPECT_EQ(*out, "");
  // A pooled upstream connection unused for the idle timeout is closed too.
  auto r = curl({"http://127.0.0.1:" + std::to_string(proxy_->port("http")) + "/echo"});
  ASSERT_TRUE(r) << r.error().message;
  const std::string dport = "dport = :" + std::to_string(nginx_->port());
  auto closed = waitFor(
      [&] {
        auto ss = ns_->run({"ss", "-tnH", "state", "established", "( " + dport + " )"});
        return ss && ss->empty();
      },
      std::chrono::seconds(5), "the pooled connection to nginx to be closed");
  EXPECT_TRUE(closed) << closed.error().message;
}

TEST_F(ProxyHttpTest, TunnelsAWebSocketUpgrade) {
  auto& ws = backend(RecordingServer::upgradeEcho());
  startProxy(httpConfig(endpoint(ws.port())));
  const std::string out = raw(
      "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframes",
      /*half_close=*/true);
  EXPECT_EQ(statusOf(out), 101) << out;
  EXPECT_TRUE(out.ends_with("\r\n\r\nframes")) << "bytes after the 101 are tunnelled: " << out;
  EXPECT_NE(ws.received().find("upgrade: websocket"), std::string::npos) << ws.received();
}

// A server that speaks first (a greeting in the same segment as its 101): the bytes after
// the head belong to the tunnel, not to a next HTTP response.
TEST_F(ProxyHttpTest, TunnelsBytesThatArriveWithTheSwitchingProtocolsHead) {
  auto& ws = backend(RecordingServer::upgradeEcho("hello"));
  startProxy(httpConfig(endpoint(ws.port())));
  const std::string out = raw(
      "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframes",
      /*half_close=*/true);
  EXPECT_EQ(statusOf(out), 101) << out;
  EXPECT_TRUE(out.ends_with("\r\n\r\nhelloframes"))
      << "the greeting, then the client's bytes echoed through the tunnel: " << out;
}

// A CONNECT whose server speaks first (an SSH banner in the segment of its 200): the banner,
// and every byte the client sends after its CONNECT, belong to the tunnel, never to a next
// HTTP exchange.
TEST_F(ProxyHttpTest, TunnelsBytesThatArriveWithTheHeadOfAConnectsAnswer) {
  auto& srv = backend(RecordingServer::connectEcho("SSH-2.0-banner\r\n"));
  startProxy(httpConfig(endpoint(srv.port())));
  const std::string inside = "GET /inside HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string out =
      raw("CONNECT backend.example:22 HTTP/1.1\r\nHost: backend.example:22\r\n\r\n" + inside,
          /*half_close=*/true);
  EXPECT_EQ(statusOf(out), 200) << out;
  EXPECT_TRUE(out.ends_with("\r\n\r\nSSH-2.0-banner\r\n" + inside))
      << "the banner, then the client's bytes echoed through the tunnel: " << out;
  EXPECT_EQ(metric("downstream_rq_total"), 1u) << "the tunnel's bytes were not a request";
  EXPECT_EQ(srv.connections(), 1);
}

// "h2c smuggling": a backend that accepted a forwarded Upgrade: h2c would turn the client's
// connection into an HTTP/2 tunnel that no route or filter sees. The proxy drops the
// upgrade and serves the request as HTTP/1.1.
const std::string kH2cUpgradeRequest =
    "GET /small HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";

TEST_F(ProxyHttpTest, NeverForwardsAnH2cUpgrade) {
  auto& ws = backend(RecordingServer::upgradeEcho());  // switches to anything it is offered
  startProxy(httpConfig(endpoint(ws.port())));
  const std::string out = raw(kH2cUpgradeRequest + "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", true);
  std::string got = ws.received();
  std::transform(got.begin(), got.end(), got.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  EXPECT_EQ(got.find("upgrade"), std::string::npos) << "no Upgrade reached the backend: " << got;
  EXPECT_EQ(got.find("http2-settings"), std::string::npos) << got;
  EXPECT_NE(statusOf(out), 101) << "no tunnel was opened: " << out;
  EXPECT_EQ(metric("downstream_rq_h2c_upgrade_dropped"), 1u);
}

TEST_F(ProxyHttpTest, ServesAnH2cUpgradeRequestAsHttp11AndGoesOn) {
  startProxy(httpConfig(endpoint(nginx_->port())));
  const std::string out =
      raw(kH2cUpgradeRequest + "GET /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  size_t responses = 0;
  for (size_t at = 0; (at = out.find("HTTP/1.1 200 ", at)) != std::string::npos; at++) {
    responses++;
  }
  EXPECT_EQ(responses, 2u) << "both requests answered, the second parsed as HTTP: " << out;
  EXPECT_TRUE(out.ends_with(std::string(100, 'a'))) << out;
}

TEST_F(ProxyHttpTest, ForwardsOneHundredContinueBeforeTheBody) {
  // The backend answers 100 to the head, then reads the 5-byte body, then answers 200.
  auto& rec = backend([](int fd, RecordingServer& self) {
    std::string got;
    char buf[4096];
    bool continued = false;
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        return;
      }
      got.append(buf, static_cast<size_t>(n));
      self.record(std::string_view(buf, static_cast<size_t>(n)));
      const auto head_end = got.find("\r\n\r\n");
      if (head_end == std::string::npos) {
        continue;
      }
      if (!continued) {
        continued = true;
        const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
        ::send(fd, cont.data(), cont.size(), MSG_NOSIGNAL);
      }
      if (got.size() >= head_end + 4 + 5) {
        const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone";
        ::send(fd, resp.data(), resp.size(), MSG_NOSIGNAL);
        got.clear();
        continued = false;
      }
    }
  });
  startProxy(httpConfig(endpoint(rec.port())));
  auto r = curl({"-v", "-H", "Expect: 100-continue", "--data-binary", "hello", url("/up")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_NE(r->find("< HTTP/1.1 100 Continue"), std::string::npos) << *r;
  EXPECT_TRUE(r->ends_with("done")) << *r;
  const std::string got = rec.received();
  EXPECT_NE(got.find("Expect: 100-continue"), std::string::npos) << got;
  EXPECT_TRUE(got.ends_with("\r\n\r\nhello")) << got;
}

// Reads one response whose body has a Content-Length from blocking `fd`; empty on EOF or
// on the socket's receive timeout.
std::string readOneResponse(int fd) {
  std::string got;
  char buf[4096];
  for (;;) {
    const size_t head_end = got.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      std::string head = got.substr(0, head_end);
      std::transform(head.begin(), head.end(), head.begin(), ::tolower);
      const size_t cl = head.find("content-length: ");
      if (cl != std::string::npos &&
          got.size() >= head_end + 4 + std::stoul(head.substr(cl + 16))) {
        return got;
      }
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      return {};
    }
    got.append(buf, static_cast<size_t>(n));
  }
}

// Out of descriptors, accept() fails and the connection stays in the listen queue. The
// listener is edge-triggered, so no new event comes for it: the proxy must try again by
// itself, and serve the connection once a descriptor is free, without waiting for another
// client to connect.
TEST_F(ProxyHttpTest, AConnectionQueuedWhileOutOfDescriptorsIsServedOnceOneIsFree) {
  // Under the sanitizer build: UBSan's vptr check asks the kernel whether it may read the
  // object, through a pipe it opens for the purpose, and with no descriptor left it takes
  // every object for unreadable and reports a bad vptr. That check is off for this proxy
  // only (ASan's own checks stay on); the release binary ignores the variable.
  const std::string suppressions = dir_->path() + "/ubsan-vptr.supp";
  ASSERT_TRUE(writeTextFile(suppressions, "vptr:*\n"));
  const char* ubsan = std::getenv("UBSAN_OPTIONS");
  const std::string saved = ubsan ? ubsan : "";
  ::setenv("UBSAN_OPTIONS",
           (saved + (saved.empty() ? "" : ":") + "suppressions=" + suppressions).c_str(), 1);
  startProxy(httpConfig(endpoint(nginx_->port())));
  if (ubsan) {
    ::setenv("UBSAN_OPTIONS", saved.c_str(), 1);
  } else {
    ::unsetenv("UBSAN_OPTIONS");
  }
  const pid_t pid = proxy_->process().pid();
  // Leave the proxy exactly `spare` free descriptor numbers below its limit.
  std::vector<int> open_fds;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    open_fds.push_back(std::stoi(e.path().filename()));
  }
  const int spare = 3;
  const int max_fd = *std::max_element(open_fds.begin(), open_fds.end());
  const int free_below_max = max_fd + 1 - static_cast<int>(open_fds.size());  // holes
  const rlimit rl{static_cast<rlim_t>(max_fd + 1 + spare), static_cast<rlim_t>(max_fd + 1 + spare)};
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &rl, nullptr), 0) << std::strerror(errno);
  // The first request opens one upstream connection, which the others reuse.
  const int holders = free_below_max + spare - 1;

  // `holders` keep-alive clients, each answered: the proxy now holds every descriptor it
  // may.
  const std::string req = "GET /small HTTP/1.1\r\nHost: a\r\n\r\n";
  std::vector<int> held;
  for (int i = 0; i < holders; i++) {
    auto c = connectLoopback(*ns_, proxy_->port("web"));
    ASSERT_TRUE(c) << c.error().message;
    held.push_back(*c);
    ASSERT_EQ(::send(*c, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
    ASSERT_EQ(statusOf(readOneResponse(*c)), 200) << "holder " << i;
  }
  // One more: accepted by the kernel, not by the proxy.
  auto late = connectLoopback(*ns_, proxy_->port("web"));
  ASSERT_TRUE(late) << late.error().message;
  const timeval tv{5, 0};
  ASSERT_EQ(::setsockopt(*late, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
  ASSERT_EQ(::send(*late, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  // Free two descriptors (one for `late`, one for the metrics request below); no new
  // connection arrives before `late` is answered.
  ::close(held.back());
  held.pop_back();
  ::close(held.back());
  held.pop_back();
  EXPECT_EQ(statusOf(readOneResponse(*late)), 200) << "the queued connection was never accepted";
  ::close(*late);
  EXPECT_GE(metric("downstream_cx_accept_fail"), 1u) << "the proxy ran out of descriptors";
  for (const int fd : held) {
    ::close(fd);
  }
}

TEST_F(ProxyHttpTest, ClosesAtOnceForAClientThatAskedToCloseAndSentNothingMore) {
  startProxy(httpConfig(endpoint(nginx_->port())));
  auto client = connectLoopback(*ns_, proxy_->port("web"));
  ASSERT_TRUE(client) << client.error().message;
  const int fd = *client;
  const std::string req = "GET /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(statusOf(got), 200);
  // Our socket stays open: nothing is left to drain from it, so the proxy closes its side
  // fully now instead of lingering (up to 5 s) for our FIN.
  auto closed = waitFor([&] { return metric("downstream_cx_active") == 0; },
                        std::chrono::seconds(2), "the proxy to close the connection");
  EXPECT_TRUE(closed) << closed.error().message;
  ::close(fd);
}

TEST_F(ProxyHttpTest, ASlowClientMakesTheProxyStopReadingTheUpstream) {
  startProxy(httpConfig(endpoint(nginx_->port()), "", R"(, "limits": {"buffer_bytes": 65536})"));
  const uint64_t rss_before = rssKib(proxy_->process().pid());
  // A client that asks for 64 MiB and reads nothing (small receive buffer).
  auto client = connectLoopback(*ns_, proxy_->port("web"), 4096);
  ASSERT_TRUE(client) << client.error().message;
  const int fd = *client;
  const std::string req = "GET /file64m HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  // Backpressure has reached the origin when nginx's socket to the proxy holds unsent
  // bytes: the proxy stopped reading its upstream.
  const std::string sport = "sport = :" + std::to_string(nginx_->port());
  auto stalled = waitFor(
      [&] {
        auto out = ns_->run({"ss", "-tnH", "state", "established", "( " + sport + " )"});
        std::istringstream in(out ? *out : "");
        uint64_t recvq = 0, sendq = 0;
        return in >> recvq >> sendq && sendq > 1024 * 1024;
      },
      std::chrono::seconds(20), "nginx's send queue to the proxy filling up");
  ASSERT_TRUE(stalled) << stalled.error().message;
  const uint64_t rss_stalled = rssKib(proxy_->process().pid());
  EXPECT_LT(rss_stalled, rss_before + 4096)
      << "the proxy buffers at most a few buffers, not the file";
  // Reading resumes the flow: every byte arrives.
  uint64_t total = 0;
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    total += static_cast<uint64_t>(n);
  }
  ::close(fd);
  EXPECT_GT(total, uint64_t{64} << 20) << "head and all 64 MiB of body";
}

TEST_F(ProxyHttpTest, AnUpstreamResetMidResponseCutsTheResponseAndTheProxyGoesOn) {
  // The backend promises 1000 bytes and sends 10; once the client has them, it resets.
  std::promise<void> client_has_them;
  std::shared_future<void> go = client_has_them.get_future().share();
  auto& rec = backend([go](int fd, RecordingServer&) {
    char buf[4096];
    if (::recv(fd, buf, sizeof buf, 0) <= 0) {
      return;
    }
    const std::string part = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789";
    ::send(fd, part.data(), part.size(), MSG_NOSIGNAL);
    go.wait();
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);  // close() sends RST
  });
  startProxy(httpConfig(endpoint(rec.port())));
  auto client = connectLoopback(*ns_, proxy_->port("web"));
  ASSERT_TRUE(client) << client.error().message;
  const int fd = *client;
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  std::string out;
  char buf[4096];
  while (!out.ends_with("0123456789")) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << "the head and the first 10 bytes arrive: " << out;
    out.append(buf, static_cast<size_t>(n));
  }
  client_has_them.set_value();
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  EXPECT_EQ(statusOf(out), 200);
  EXPECT_TRUE(out.ends_with("\r\n\r\n0123456789")) << "nothing after the cut: " << out;
  EXPECT_EQ(metric("upstream_rsp_reset"), 1u);
  EXPECT_EQ(metric("downstream_cx_active"), 0u)
      << "the cut client connection was released, and the proxy still answers";
}

// The upstream resets after reading the head while the client still sends the body. When
// the reset meets the proxy's own write of more body (it depends on timing: a review
// reproduced it about once in 200 rounds), that write used to report the failure inside
// the caller and crash the proxy; failures are now reported from the loop. Either way the
// client gets a 502, and a POST that reached the upstream is not replayed.
TEST_F(ProxyHttpTest, AnUpstreamResetDuringAnUploadGivesA502AndNoCrash) {
  std::promise<void> reset_done;
  std::shared_future<void> done = reset_done.get_future().share();
  auto reset_promise = std::make_shared<std::promise<void>>(std::move(reset_done));
  auto& rec = backend([reset_promise](int fd, RecordingServer&) {
    char buf[4096];
    std::string got;
    while (got.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        return;
      }
      got.append(buf, static_cast<size_t>(n));
    }
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    reset_promise->set_value();  // the server's close() after this handler sends the RST
  });
  startProxy(httpConfig(endpoint(rec.port())));
  auto client = connectLoopback(*ns_, proxy_->port("web"));
  ASSERT_TRUE(client) << client.error().message;
  const int fd = *client;
  const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nxxxx";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  done.wait();
  const std::string more(64 * 1024, 'y');
  for (int i = 0; i < 4; i++) {
    if (::send(fd, more.data(), more.size(), MSG_NOSIGNAL) < 0) {
      break;  // the proxy already answered and closed: fine
    }
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  EXPECT_EQ(statusOf(out), 502) << out.substr(0, 200);
  EXPECT_TRUE(proxy_->process().running()) << "the proxy survived";
  EXPECT_EQ(metric("upstream_rq_retry"), 0u) << "a POST that reached the upstream is not replayed";
}

// "Connection: content-length" must not strip the framing: the proxy restates it
// (review finding: the body used to reach the backend as a second request).
TEST_F(ProxyHttpTest, ConnectionTokensCannotStripTheFraming) {
  auto& rec = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  startProxy(httpConfig(endpoint(rec.port())));
  const std::string body = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string out =
      raw("POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length, close\r\n"
          "Content-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(statusOf(out), 200) << out;
  const std::string got = rec.received();
  EXPECT_NE(got.find("content-length: " + std::to_string(body.size()) + "\r\n\r\n" + body),
            std::string::npos)
      << "the body travels as the body of the POST:\n"
      << got;
}

// Trailer announces end-to-end fields (RFC 9110 §6.6.2): a chunked request keeps it with its
// trailer section; a request framed by Content-Length has no trailer section, so it loses
// it; and a client that names it in Connection makes it hop-by-hop.
TEST_F(ProxyHttpTest, ARequestsTrailerFieldGoesWhereItsTrailerSectionCanGo) {
  auto& rec = backend(RecordingServer::answerWholeRequests());
  startProxy(httpConfig(endpoint(rec.port())));
  // What the backend received of the request whose line starts with `line`, up to the next.
  auto request = [&](const std::string& line) {
    const std::string got = rec.received();
    const size_t at = got.find(line);
    if (at == std::string::npos) {
      return std::string();
    }
    const size_t next = got.find("POST /", at + 1);
    return got.substr(at, next == std::string::npos ? std::string::npos : next - at);
  };
  std::string out =
      raw("POST /chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTrailer: x-sum\r\n"
          "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 294\r\n\r\n");
  EXPECT_EQ(statusOf(out), 200) << out.substr(0, 200);
  std::string got = request("POST /chunked");
  ASSERT_FALSE(got.empty()) << rec.received();
  EXPECT_NE(got.find("\r\nTrailer: x-sum\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("\r\n0\r\nx-sum: 294\r\n\r\n"), std::string::npos)
      << "its trailer section: " << got;

  out =
      raw("POST /length HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTrailer: x-sum\r\n"
          "Content-Length: 3\r\n\r\nabc");
  EXPECT_EQ(statusOf(out), 200) << out.substr(0, 200);
  got = request("POST /length");
  ASSERT_FALSE(got.empty()) << rec.received();
  EXPECT_NE(got.find("content-length: 3\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("railer:"), std::string::npos) << "no trailer section to announce: " << got;

  out =
      raw("POST /named HTTP/1.1\r\nHost: a\r\nConnection: trailer, close\r\nTrailer: x-sum\r\n"
          "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(statusOf(out), 200) << out.substr(0, 200);
  got = request("POST /named");
  ASSERT_FALSE(got.empty()) << rec.received();
  EXPECT_EQ(got.find("railer:"), std::string::npos) << "named by Connection: " << got;
}

// An upload larger than the buffer, arriving while the upstream connection is still being
// set up (review finding: the client stayed paused until the route timeout).
TEST_F(ProxyHttpTest, AnUploadLargerThanTheBufferGoesThrough) {
  auto& sink = backend(RecordingServer::answerWholeRequests());
  startProxy(httpConfig(endpoint(sink.port()), R"(, "timeout_ms": 10000)",
                        R"(, "limits": {"buffer_bytes": 4096})"));
  const std::string body(200000, 'x');
  const std::string out =
      raw("POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(statusOf(out), 200) << out.substr(0, 200);
  EXPECT_TRUE(out.ends_with("ok"));
}

// After an error page the session ends as soon as the client closes (review finding: a
// buffer underflow made it miss the FIN and linger the full 5 s).
TEST_F(ProxyHttpTest, AnErrorPageSessionEndsWhenTheClientCloses) {
  startProxy(httpConfig(endpoint(nginx_->port()), R"(, "match": {"path": {"prefix": "/only"}})"));
  EXPECT_EQ(statusOf(raw("GET / HTTP/1.1\r\nHost: a\r\n\r\n")), 404);
  auto gone = waitFor([&] { return metric("downstream_cx_active") == 0; }, std::chrono::seconds(3),
                      "the 404 session to end after the client closed");
  EXPECT_TRUE(gone) << gone.error().message;
}

// An absolute-form target names its host, which wins over Host (RFC 9112 §3.2.2): the
// request is routed by it and forwarded in origin-form with it as Host.
TEST_F(ProxyHttpTest, RoutesAnAbsoluteFormTargetByItsAuthority) {
  auto& admin =
      backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nadmin"));
  auto& pub =
      backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npublic"));
  startProxy(R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": [
                   {"match": {"host": "admin.test"}, "cluster": "admin"},
                   {"cluster": "public"}]}],
                 "clusters": [{"name": "admin", "endpoints": [)" +
             endpoint(admin.port()) + R"(]},
                              {"name": "public", "endpoints": [)" +
             endpoint(pub.port()) + "]}]}");
  const std::string out = raw(
      "GET http://admin.test/panel?x=1 HTTP/1.1\r\nHost: www.test\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(out.ends_with("admin")) << out;
  const std::string got = admin.received();
  EXPECT_TRUE(got.starts_with("GET /panel?x=1 HTTP/1.1\r\n")) << got;
  EXPECT_NE(got.find("host: admin.test\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("www.test"), std::string::npos) << "the client's Host is replaced: " << got;
}

// A route's regex runs against whatever a client sends, up to the header limit (64 KiB):
// matching must take time linear in the input and bounded stack. libstdc++'s std::regex,
// used before, recursed per input byte and crashed the proxy on a 30 KB value.
TEST_F(ProxyHttpTest, RegexRoutesSurviveValuesAsLongAsTheHeaderLimit) {
  auto& bots = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbot"));
  auto& rest =
      backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nrest"));
  startProxy(R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": [
                   {"match": {"headers": [{"name": "user-agent", "regex": ".*bot.*"}]}, "cluster": "bots"},
                   {"match": {"path": {"regex": "/(a|aa)*b"}}, "cluster": "bots"},
                   {"cluster": "rest"}]}],
                 "clusters": [{"name": "bots", "endpoints": [)" +
             endpoint(bots.port()) + R"(]},
                              {"name": "rest", "endpoints": [)" +
             endpoint(rest.port()) + "]}]}");
  const std::string filler(60000, 'x');
  EXPECT_TRUE(
      raw("GET / HTTP/1.1\r\nHost: t\r\nUser-Agent: " + filler + "bot\r\nConnection: close\r\n\r\n")
          .ends_with("\r\n\r\nbot"));
  EXPECT_TRUE(
      raw("GET / HTTP/1.1\r\nHost: t\r\nUser-Agent: " + filler + "\r\nConnection: close\r\n\r\n")
          .ends_with("\r\n\r\nrest"));
  // Exponential for a backtracking matcher; RE2 answers in one pass.
  EXPECT_TRUE(
      raw("GET /" + std::string(4000, 'a') + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
          .ends_with("\r\n\r\nrest"));
}

// X-Forwarded-For: a listener behind a trusted hop appends the client's address to what
// it sent (and passes Forwarded and X-Real-IP on); an edge listener ("replace") sends only
// the address it saw and drops Forwarded and X-Real-IP, so a client cannot hand the
// backend an address of its choosing.
TEST_F(ProxyHttpTest, XForwardedForIsAppendedOrReplacedAsTheListenerSays) {
  auto& be = backend(RecordingServer::answerWholeRequests());
  startProxy(R"({"listeners": [
                   {"name": "web", "address": "127.0.0.1", "port": 0, "routes": [{"cluster": "be"}]},
                   {"name": "edge", "address": "127.0.0.1", "port": 0, "x_forwarded_for": "replace",
                    "routes": [{"cluster": "be"}]}],
                 "clusters": [{"name": "be", "endpoints": [)" +
             endpoint(be.port()) + "]}]}");
  const std::string spoof =
      "GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\nx-forwarded-for: 7.7.7.7\r\n"
      "Forwarded: for=8.8.8.8\r\nX-Real-IP: 9.9.9.9\r\nTrue-Client-IP: 5.5.5.5\r\n"
      "Connection: close\r\n\r\n";
  ASSERT_EQ(statusOf(raw(spoof)), 200);
  auto edge = rawExchange(*ns_, proxy_->port("edge"), spoof);
  ASSERT_TRUE(edge) << edge.error().message;
  ASSERT_EQ(statusOf(*edge), 200);
  const std::string got = be.received();
  EXPECT_NE(got.find("x-forwarded-for: 6.6.6.6, 7.7.7.7, 127.0.0.1\r\n"), std::string::npos)
      << "append: every field the client sent, in order, then its address: " << got;
  const size_t second = got.find("GET / HTTP/1.1", 1);
  ASSERT_NE(second, std::string::npos) << got;
  const std::string web_head = got.substr(0, second);
  EXPECT_NE(web_head.find("Forwarded: for=8.8.8.8\r\n"), std::string::npos) << web_head;
  EXPECT_NE(web_head.find("X-Real-IP: 9.9.9.9\r\n"), std::string::npos) << web_head;
  EXPECT_NE(web_head.find("True-Client-IP: 5.5.5.5\r\n"), std::string::npos) << web_head;
  const std::string edge_head = got.substr(second);
  EXPECT_EQ(edge_head.find("8.8.8.8"), std::string::npos)
      << "replace drops Forwarded: " << edge_head;
  EXPECT_EQ(edge_head.find("9.9.9.9"), std::string::npos)
      << "replace drops X-Real-IP: " << edge_head;
  EXPECT_EQ(edge_head.find("5.5.5.5"), std::string::npos) << "and True-Client-IP: " << edge_head;
  EXPECT_NE(edge_head.find("x-forwarded-for: 127.0.0.1\r\n"), std::string::npos) << edge_head;
  EXPECT_EQ(edge_head.find("6.6.6.6"), std::string::npos) << "replace: " << edge_head;
  EXPECT_EQ(edge_head.find("7.7.7.7"), std::string::npos) << "replace: " << edge_head;
}

// A connection accepted before a reload keeps its snapshot; its requests still rotate over
// the endpoints (review finding: they all went to the first one).
TEST_F(ProxyHttpTest, AConnectionFromBeforeAReloadStillRotatesOverEndpoints) {
  auto& a = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"));
  auto& b = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB"));
  const std::string eps = endpoint(a.port()) + ", " + endpoint(b.port());
  startProxy(httpConfig(eps));
  auto client = connectLoopback(*ns_, proxy_->port("web"));
  ASSERT_TRUE(client) << client.error().message;
  const int fd = *client;
  // One request and its one-byte body.
  auto ask = [&]() -> std::string {
    const std::string req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    EXPECT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    std::string got;
    char c;
    while (got.find("\r\n\r\n") == std::string::npos || got.size() < got.find("\r\n\r\n") + 5) {
      if (::recv(fd, &c, 1, 0) != 1) {
        ADD_FAILURE() << "connection closed: " << got;
        return "";
      }
      got += c;
    }
    return got.substr(got.size() - 1);
  };
  ask();  // the connection is now established on the first snapshot
  auto line = proxy_->reload(httpConfig(eps, R"(, "timeout_ms": 20000)"));
  ASSERT_TRUE(line) << line.error().message;
  ASSERT_NE(line->find("reloaded"), std::string::npos) << *line;
  std::string seen;
  for (int i = 0; i < 4; i++) {
    seen += ask();
  }
  ::close(fd);
  EXPECT_TRUE(seen == "ABAB" || seen == "BABA") << "requests rotate: " << seen;
}

TEST_F(ProxyHttpTest, DropsResponseFieldsTheUpstreamNamedInConnection) {
  auto& rec = backend(RecordingServer::respond(
      "HTTP/1.1 200 OK\r\nConnection: x-internal\r\nX-Internal: secret\r\nX-Public: ok\r\n"
      "Content-Length: 0\r\n\r\n"));
  startProxy(httpConfig(endpoint(rec.port())));
  const std::string out = raw("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(statusOf(out), 200);
  EXPECT_EQ(out.find("secret"), std::string::npos) << out;
  EXPECT_NE(out.find("X-Public: ok"), std::string::npos) << out;
}

// The response side of ConnectionTokensCannotStripTheFraming: an upstream's
// "Connection: content-length" must not leave its response without a length, which a
// keep-alive client could not tell from the next response.
TEST_F(ProxyHttpTest, AnUpstreamsConnectionTokensCannotStripItsFraming) {
  auto& rec = backend(RecordingServer::respond(
      "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello"));
  startProxy(httpConfig(endpoint(rec.port())));
  const std::string out = raw("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(statusOf(out), 200) << out;
  EXPECT_NE(out.find("\r\nContent-Length: 5\r\n"), std::string::npos) << out;
  EXPECT_TRUE(out.ends_with("\r\n\r\nhello")) << out;
}

// An HTTP/1.0 request may come without Host; the HTTP/1.1 request the proxy sends may not
// (an origin such as nginx answers 400): it names the address the client connected to.
TEST_F(ProxyHttpTest, AnHttp10RequestWithoutHostGoesUpstreamWithOne) {
  auto& rec = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  startProxy(httpConfig(endpoint(rec.port())));
  EXPECT_EQ(statusOf(raw("GET /old HTTP/1.0\r\n\r\n")), 200);
  const std::string got = rec.received();
  EXPECT_NE(got.find("GET /old HTTP/1.1\r\nhost: 127.0.0.1:" + std::to_string(proxy_->port("web")) +
                     "\r\n"),
            std::string::npos)
      << got;
}

// The configured header limits hold for responses too: an origin's 120 Set-Cookie fields
// pass with max_headers 200 (the parser's own default, 100, used to give a 502).
TEST_F(ProxyHttpTest, ResponseHeadsAreHeldToTheConfiguredHeaderLimits) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n";
  for (int i = 0; i < 120; i++) {
    head += "Set-Cookie: c" + std::to_string(i) + "=v\r\n";
  }
  auto& rec = backend(RecordingServer::respond(head + "\r\n"));
  startProxy(httpConfig(endpoint(rec.port()), "", R"(, "limits": {"max_headers": 200})"));
  const std::string out = raw("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(statusOf(out), 200) << out.substr(0, 300);
  EXPECT_NE(out.find("Set-Cookie: c119=v\r\n"), std::string::npos) << out.substr(0, 300);
  // And a lower limit holds too: the same response is then a bad gateway.
  auto line =
      proxy_->reload(httpConfig(endpoint(rec.port()), "", R"(, "limits": {"max_headers": 50})"));
  ASSERT_TRUE(line) << line.error().message;
  ASSERT_NE(line->find("reloaded"), std::string::npos) << *line;
  EXPECT_EQ(statusOf(raw("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")), 502);
  EXPECT_EQ(metric("upstream_rsp_bad"), 1u);
}

// An origin that answers before the request's body has all arrived: the connection cannot go
// on (the rest of the body is not a next request), and the response says so.
TEST_F(ProxyHttpTest, AnAnswerBeforeTheWholeUploadSaysTheConnectionCloses) {
  auto& rec = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  startProxy(httpConfig(endpoint(rec.port())));
  const std::string out =
      raw("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n0123456789");
  EXPECT_EQ(statusOf(out), 200) << out;
  EXPECT_NE(out.find("\r\nconnection: close\r\n"), std::string::npos) << out;
  EXPECT_TRUE(out.ends_with("\r\n\r\nok")) << out;
}

// An origin that sends its head first and then reads the body to answer it (an echo, a
// streamed upload): the body the client sends after that head still reaches the origin.
TEST_F(ProxyHttpTest, ABodySentAfterTheResponseHeadStillReachesTheOrigin) {
  auto& rec = backend([](int fd, RecordingServer& self) {
    if (!readHead(fd, self)) {
      return;
    }
    writeAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
    std::string body;
    char buf[64];
    while (body.size() < 10) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        return;
      }
      body.append(buf, static_cast<size_t>(n));
    }
    writeAll(fd, body);
  });
  startProxy(httpConfig(endpoint(rec.port())));
  auto client = connectLoopback(*ns_, proxy_->port("web"));
  ASSERT_TRUE(client) << client.error().message;
  const int fd = *client;
  const std::string head = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  std::string out;
  char buf[4096];
  while (out.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << "the response head arrives first: " << out;
    out.append(buf, static_cast<size_t>(n));
  }
  ASSERT_EQ(::send(fd, "0123456789", 10, 0), 10);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n;
  while (!out.ends_with("0123456789") && (n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  EXPECT_EQ(statusOf(out), 200) << out;
  EXPECT_TRUE(out.ends_with("\r\n\r\n0123456789")) << "the body came back: " << out;
  EXPECT_NE(out.find("\r\nconnection: close\r\n"), std::string::npos) << out;
}

// An empty Host is valid (RFC 9112 §3.2) and goes upstream as it came: never a second one.
TEST_F(ProxyHttpTest, AnEmptyHostGoesUpstreamAlone) {
  auto& rec = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  startProxy(httpConfig(endpoint(rec.port())));
  EXPECT_EQ(statusOf(raw("GET /h HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n")), 200);
  const std::string got = rec.received();
  const std::string head = got.substr(0, got.find("\r\n\r\n"));
  std::string lower = head;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t hosts = 0;
  for (size_t at = 0; (at = lower.find("\r\nhost:", at)) != std::string::npos; at++) {
    hosts++;
  }
  EXPECT_EQ(hosts, 1u) << head;
}

TEST_F(ProxyHttpTest, RejectsDotSegmentsThatRoutesCouldNotSee) {
  auto& rec = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  startProxy(httpConfig(endpoint(rec.port()), R"(, "match": {"path": {"prefix": "/public/"}})"));
  EXPECT_EQ(statusOf(raw("GET /public/a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")), 200);
  for (const char* t : {"/public/../admin", "/public/%2e%2e/admin", "/public/./x", "/public/.."}) {
    EXPECT_EQ(statusOf(raw(std::string("GET ") + t + " HTTP/1.1\r\nHost: a\r\n\r\n")), 400) << t;
  }
  EXPECT_EQ(statusOf(raw("GET /public/..x/.y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")),
            200)
      << "dots inside a segment are fine";
  EXPECT_EQ(rec.received().find(".."), rec.received().find("..x")) << rec.received();
}

TEST_F(ProxyHttpTest, AnUnaskedSwitchOfProtocolsIsABadGateway) {
  auto& ws = backend(RecordingServer::upgradeEcho());
  startProxy(httpConfig(endpoint(ws.port())));
  const std::string out = raw("GET /plain HTTP/1.1\r\nHost: a\r\n\r\nnot-a-tunnel");
  EXPECT_EQ(statusOf(out), 502) << out;
  EXPECT_EQ(metric("upstream_rsp_bad"), 1u);
}

TEST_F(ProxyHttpTest, ReloadRejectsABadConfigNamingTheFieldAndAppliesAGoodOne) {
  auto& other =
      backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew"));
  startProxy(httpConfig(endpoint(nginx_->port())));
  auto line = proxy_->reload(httpConfig(endpoint(nginx_->port()), R"(, "retries": 99)"));
  ASSERT_TRUE(line) << line.error().message;
  EXPECT_NE(line->find("reload rejected"), std::string::npos) << *line;
  EXPECT_NE(line->find("listeners[0].routes[0].retries"), std::string::npos) << *line;
  auto r = curl({url("/echo")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "GET /echo\n") << "the running config stays";
  line = proxy_->reload(httpConfig(endpoint(other.port())));
  ASSERT_TRUE(line) << line.error().message;
  EXPECT_NE(line->find("reloaded"), std::string::npos) << *line;
  r = curl({url("/echo")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "new");
}

// With two workers each has its own SO_REUSEPORT socket, and the kernel spreads
// connections over both: a worker that did not accept would leave about half of 64 clients
// unanswered. A reload reaches both: no connection after it is served by the old routes.
// The admin endpoint (worker 0 only) counts the requests of both.
TEST_F(ProxyHttpTest, TwoWorkersServeEveryConnectionAndBothTakeAReload) {
  auto& one = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"));
  auto& two = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"));
  const auto config = [&](uint16_t port) {
    return httpConfig(endpoint(port), "", R"(, "workers": 2)");
  };
  startProxy(config(one.port()));
  const uint16_t port = proxy_->port("web");
  auto listening = ns_->run({"ss", "-Hltn", "sport = :" + std::to_string(port)});
  ASSERT_TRUE(listening) << listening.error().message;
  EXPECT_EQ(std::count(listening->begin(), listening->end(), '\n'), 2) << *listening;

  // Opens 64 connections first, then sends a request on each: all are open at once.
  const auto bodies = [&] {
    std::vector<int> fds;
    for (int i = 0; i < 64; i++) {
      auto c = connectLoopback(*ns_, port);
      EXPECT_TRUE(c) << c.error().message;
      if (c) {
        const timeval tv{5, 0};
        ::setsockopt(*c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        fds.push_back(*c);
      }
    }
    const std::string req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for (const int fd : fds) {
      EXPECT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
    }
    std::map<std::string, int> seen;
    bool timed_out = false;  // then the others had as long: one more millisecond each
    for (const int fd : fds) {
      if (timed_out) {
        const timeval short_tv{0, 1000};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &short_tv, sizeof short_tv);
      }
      const std::string r = readOneResponse(fd);
      timed_out = timed_out || r.empty();
      seen[r.empty() ? "(no answer)" : r.substr(r.size() - 3)]++;
      ::close(fd);
    }
    return seen;
  };
  EXPECT_EQ(bodies(), (std::map<std::string, int>{{"one", 64}}));
  auto line = proxy_->reload(config(two.port()));
  ASSERT_TRUE(line) << line.error().message;
  EXPECT_NE(line->find("reloaded"), std::string::npos) << *line;
  EXPECT_EQ(bodies(), (std::map<std::string, int>{{"two", 64}}));
  EXPECT_EQ(metric("downstream_rq_total"), 128u);
}

// Fields that hold sockets or threads change only on restart: a reload that changes one is
// rejected naming it, and the proxy goes on serving with its running config.
TEST_F(ProxyHttpTest, ReloadRejectsARestartOnlyChangeNamingTheField) {
  const std::string base = httpConfig(endpoint(nginx_->port()));
  startProxy(base);
  const auto rejected = [&](const std::string& config, const std::string& field) {
    auto line = proxy_->reload(config);
    ASSERT_TRUE(line) << line.error().message;
    EXPECT_NE(line->find("reload rejected"), std::string::npos) << *line;
    EXPECT_NE(line->find(field), std::string::npos) << *line;
  };
  const auto replaced = [](std::string text, const std::string& from, const std::string& to) {
    return text.replace(text.find(from), from.size(), to);
  };
  const std::string admin_moved =
      replaced(base, R"("port": 0})", R"("port": )" + std::to_string(freeLoopbackPort(*ns_)) + "}");
  rejected(admin_moved, "admin changes only on restart");
  rejected(httpConfig(endpoint(nginx_->port()), "", R"(, "workers": 2)"),
           "workers changes only on restart");
  const std::string second_listener = replaced(
      base, R"(], "clusters")",
      R"(, {"name": "more", "address": "127.0.0.1", "port": 0, "routes": [{"cluster": "be"}]}], "clusters")");
  rejected(second_listener, "listeners[1] ('more')");
  auto r = curl({url("/echo")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "GET /echo\n") << "the running config stays";
  EXPECT_GE(metric("downstream_rq_total"), 1u) << "on the admin endpoint it started with";
}

// A server that answers and then resets the connection (it closes with bytes of ours
// unread, or with SO_LINGER 0): its whole response is in our receive queue ahead of the
// reset, and reaches the client. Reading the error first would turn it into a 502.
TEST_F(ProxyHttpTest, AResponseFollowedByAResetStillReachesTheClient) {
  auto& rec = backend([](int fd, RecordingServer& self) {
    if (!readHead(fd, self)) {
      return;
    }
    const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    EXPECT_EQ(::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(answer.size()));
    const linger reset{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    ::shutdown(fd, SHUT_RD);  // the fd is closed by the server's thread: an RST, not a FIN
  });
  startProxy(httpConfig(endpoint(rec.port())));
  for (int i = 0; i < 50; i++) {
    const std::string out = raw("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(statusOf(out), 200) << out;
    EXPECT_TRUE(out.ends_with("\r\n\r\nhello")) << out;
  }
  EXPECT_EQ(metric("response_2xx"), 50u);
}

// A client that resets while the proxy has stopped reading it (its upload waits for an
// upstream that takes nothing) is gone: the session ends at once, not at the route timeout.
TEST_F(ProxyHttpTest, AClientThatResetsWhileItsUploadIsHeldBackIsLetGoAtOnce) {
  // Reads nothing until the proxy closes or the test ends (a FIN queued behind data the
  // backend never takes would not arrive).
  auto release = std::make_shared<std::atomic<bool>>(false);
  struct ReleaseAtEnd {
    std::shared_ptr<std::atomic<bool>> r;
    ~ReleaseAtEnd() { *r = true; }
  } release_at_end{release};
  auto& stalled = backend([release](int fd, RecordingServer&) {
    while (!*release) {
      pollfd p{fd, POLLRDHUP, 0};
      if (::poll(&p, 1, 50) > 0) {
        return;
      }
    }
  });
  startProxy(httpConfig(endpoint(stalled.port()), R"(, "timeout_ms": 60000)"));
  auto c = connectLoopback(*ns_, proxy_->port("web"));
  ASSERT_TRUE(c) << c.error().message;
  const int fd = *c;
  const std::string head = "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1073741824\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  // Send until nothing more is taken: the proxy has stopped reading us.
  const std::string chunk(65536, 'u');
  size_t sent = 0;
  for (;;) {
    const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 500) == 0) {
        break;  // half a second without room: held back
      }
      continue;
    }
    ASSERT_GT(n, 0) << std::strerror(errno);
    sent += static_cast<size_t>(n);
    ASSERT_LT(sent, size_t{256} << 20) << "the proxy never stopped reading the upload";
  }
  EXPECT_EQ(metric("downstream_cx_active"), 1u);
  const linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(fd);
  auto gone = waitFor([&] { return metric("downstream_cx_active") == 0; }, std::chrono::seconds(5),
                      "the session of the reset client to end");
  EXPECT_TRUE(gone) << gone.error().message;
  EXPECT_EQ(metric("upstream_rq_timeout"), 0u) << "not by the route timeout";
}

TEST_F(ProxyHttpTest, RetriesOnAnotherEndpointWhenOneRefuses) {
  startProxy(httpConfig(endpoint(freeLoopbackPort(*ns_)) + ", " + endpoint(nginx_->port()),
                        R"(, "retries": 1)"));
  for (int i = 0; i < 10; i++) {
    auto r = curl({"-w", " %{http_code}", url("/echo")});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, "GET /echo\n 200");
  }
  EXPECT_GE(metric("upstream_rq_retry"), 1u);
  EXPECT_GE(metric("upstream_cx_connect_fail"), 1u);
}

// A 502/503 is retried on another endpoint for idempotent methods only (docs/CONFIG.md):
// a POST the server may have acted on is answered with the 503.
TEST_F(ProxyHttpTest, RetriesA503ForIdempotentMethodsOnly) {
  auto& busy = backend(RecordingServer::respond(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"));
  startProxy(
      httpConfig(endpoint(busy.port()) + ", " + endpoint(nginx_->port()), R"(, "retries": 1)"));
  for (int i = 0; i < 6; i++) {
    auto r = curl({"-w", " %{http_code}", url("/echo")});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, "GET /echo\n 200") << "a GET that met the 503 was retried";
  }
  const uint64_t get_retries = metric("upstream_rq_retry");
  EXPECT_GE(get_retries, 1u) << "round robin sent some GETs to the busy endpoint first";
  int unavailable = 0;
  for (int i = 0; i < 6; i++) {
    auto r = curl({"-w", " %{http_code}", "-d", "x=1", url("/echo")});
    ASSERT_TRUE(r) << r.error().message;
    unavailable += r->ends_with(" 503");
  }
  EXPECT_GE(unavailable, 1) << "round robin sent some POSTs to the busy endpoint";
  EXPECT_EQ(metric("upstream_rq_retry"), get_retries) << "no POST was retried";
}

TEST_F(ProxyHttpTest, ConsistentHashPinsEachUserToOneEndpoint) {
  auto& a = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"));
  auto& b = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB"));
  startProxy(httpConfig(endpoint(a.port()) + ", " + endpoint(b.port()), "", "",
                        R"(, "lb_policy": "consistent_hash", "hash_on": {"cookie": "uid"})"));
  std::set<std::string> seen;
  for (int u = 0; u < 12; u++) {
    std::string first;
    for (int i = 0; i < 3; i++) {
      auto r = curl({"-b", "uid=user" + std::to_string(u), url("/")});
      ASSERT_TRUE(r) << r.error().message;
      if (i == 0) {
        first = *r;
      }
      EXPECT_EQ(*r, first) << "user" << u << " stays on one endpoint";
    }
    seen.insert(first);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"A", "B"})) << "users spread over both endpoints";
}

}  // namespace
}  // namespace meshgate::test
