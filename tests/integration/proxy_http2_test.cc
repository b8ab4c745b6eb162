// meshgate-proxy speaking HTTP/2, end to end in a namespace of the test's own: real HTTP/2
// clients (curl, h2load, a python3-h2 probe, grpcio) through the real binary to nginx over
// HTTP/1.1, to a recording backend, and to a real gRPC server over HTTP/2. Byte-exact bodies
// both ways, multiplexing, flow control against a slow reader, trailers both ways, gRPC
// status trailers, the error statuses, and the rapid-reset and CONTINUATION-flood defences.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/lib/proxy_fixture.h"

namespace meshgate::test {
namespace {

using nlohmann::json;

const std::string kPython = "/usr/bin/python3";  // Debian's, with python3-h2 and grpcio

std::string endpoint(uint16_t port) {
  return R"({"address": "127.0.0.1", "port": )" + std::to_string(port) + "}";
}

// Listener "web" routes /meshgate.test.* to the HTTP/2 cluster "grpc" (when given) and the
// rest to the HTTP/1.1 cluster "be".
std::string config(const std::string& be, const std::string& grpc = "",
                   const std::string& extra = "") {
  std::string routes = R"([{"match": {"path": {"prefix": "/"}}, "cluster": "be"}])";
  std::string clusters = R"([{"name": "be", "endpoints": [)" + be + "]}";
  if (!grpc.empty()) {
    routes = R"([{"match": {"path": {"prefix": "/meshgate.test."}}, "cluster": "grpc"},)" +
             routes.substr(1);
    clusters += R"(, {"name": "grpc", "protocol": "http2", "endpoints": [)" + grpc + "]}";
  }
  return R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": )" +
         routes + "}], \"clusters\": " + clusters +
         R"(], "admin": {"address": "127.0.0.1", "port": 0})" + extra + "}";
}

// One JSON value per line of `text` (an access log).
std::vector<json> jsonLines(const std::string& text) {
  std::vector<json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(json::parse(line));
  }
  return lines;
}

// Reads a request head, then closes the connection without answering.
RecordingServer::Handler closeAfterHead() {
  return [](int fd, RecordingServer& self) {
    if (!readHead(fd, self)) {
      return;
    }
    ::shutdown(fd, SHUT_RDWR);
  };
}

// Reads a request head, writes `answer`, then closes the connection.
RecordingServer::Handler answerThenClose(std::string answer) {
  return [answer](int fd, RecordingServer& self) {
    if (!readHead(fd, self)) {
      return;
    }
    EXPECT_EQ(::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(answer.size()));
    ::shutdown(fd, SHUT_RDWR);
  };
}

// 200 with Content-Length 100000 and 1000 bytes of it: a response cut in the middle of its
// body.
RecordingServer::Handler cutMidBody() {
  return answerThenClose("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" +
                         std::string(1000, 'c'));
}

// 200 with a body delimited by the connection's close (no Content-Length, no chunking).
RecordingServer::Handler closeDelimited(const std::string& body) {
  return answerThenClose("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body);
}

class ProxyHttp2Test : public ProxyFixture {
 protected:
  // A real gRPC server (grpcio) named `name`; returns its port.
  uint16_t grpcServer(const std::string& name) {
    auto p = ns_->spawn({kPython, sourceFile("tests/integration/h2/grpc_echo.py"), "server",
                         "--port", "0", "--name", name},
                        {.capture_output = true});
    EXPECT_TRUE(p) << p.error().message;
    if (!p) {
      return 0;
    }
    auto line = (*p)->readLine(std::chrono::seconds(20));  // "READY <port>"
    EXPECT_TRUE(line && line->starts_with("READY ")) << (line ? *line : line.error().message);
    return line && line->starts_with("READY ") ? static_cast<uint16_t>(std::stoi(line->substr(6)))
                                               : 0;
  }
  // nghttpd (Debian's nghttp2-server): an HTTP/2-only (h2c) origin serving `dir`, echoing
  // POST and PUT bodies; returns its port.
  uint16_t nghttpd(const std::string& dir) {
    const uint16_t port = freeLoopbackPort(*ns_);
    auto p = ns_->spawn({"nghttpd", "--no-tls", "--echo-upload", "-d", dir, std::to_string(port)},
                        {.output_path = dir_->path() + "/nghttpd.log"});
    EXPECT_TRUE(p) << p.error().message;
    auto up = waitFor(
        [&] {
          auto fd = connectLoopback(*ns_, port);
          if (fd) {
            ::close(*fd);
          }
          return fd.has_value();
        },
        std::chrono::seconds(10), "nghttpd listening");
    EXPECT_TRUE(up) << up.error().message;
    return port;
  }
  // tests/integration/h2/h2_backend.py: an HTTP/2 origin with scripted misbehaviour.
  uint16_t h2Backend(std::vector<std::string> args) {
    std::vector<std::string> argv = {kPython, sourceFile("tests/integration/h2/h2_backend.py"),
                                     "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = ns_->spawn(argv, {.capture_output = true});
    EXPECT_TRUE(p) << p.error().message;
    if (!p) {
      return 0;
    }
    auto line = (*p)->readLine(std::chrono::seconds(20));
    EXPECT_TRUE(line && line->starts_with("READY ")) << (line ? *line : line.error().message);
    return line && line->starts_with("READY ") ? static_cast<uint16_t>(std::stoi(line->substr(6)))
                                               : 0;
  }
  // An edge listener (x_forwarded_for "replace") in front of an HTTP/2 backend that logs
  // the fields it got to `log`.
  void startEdgeToH2Backend(const std::string& log) {
    const uint16_t be = h2Backend({"--log", log});
    ASSERT_NE(be, 0);
    startProxy(R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0,
                    "x_forwarded_for": "replace", "routes": [{"cluster": "h2"}]}],
                   "clusters": [{"name": "h2", "protocol": "http2", "endpoints": [)" +
               endpoint(be) + "]}]}");
  }
  std::string h2ClusterConfig(uint16_t port) {
    return R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": [{"cluster": "h2"}]}],
               "clusters": [{"name": "h2", "protocol": "http2", "endpoints": [)" +
           endpoint(port) + R"(]}], "admin": {"address": "127.0.0.1", "port": 0}})";
  }
  json grpcCall(const std::string& method, const std::string& data, int count = 1) {
    auto out = ns_->run({kPython, sourceFile("tests/integration/h2/grpc_echo.py"), "client",
                         "--target", "127.0.0.1:" + std::to_string(proxy_->port("web")), "--method",
                         method, "--data", data, "--count", std::to_string(count)});
    EXPECT_TRUE(out) << out.error().message;
    return out ? json::parse(*out) : json();
  }
  json probe(std::vector<std::string> args) {
    std::vector<std::string> argv = {kPython, sourceFile("tests/integration/h2/h2_probe.py")};
    argv.push_back(args.front());
    argv.insert(argv.end(), {"--port", std::to_string(proxy_->port("web"))});
    argv.insert(argv.end(), args.begin() + 1, args.end());
    auto out = ns_->run(argv, std::chrono::seconds(60));
    EXPECT_TRUE(out) << out.error().message;
    if (!out) {
      return json();
    }
    auto j = json::parse(*out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << *out;
    return j;
  }
  Result<std::string> curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "30", "--http2-prior-knowledge"};
    argv.insert(argv.end(), args.begin(), args.end());
    return ns_->run(argv);
  }
  // Whether the proxy still serves HTTP/2 (after an attack on another connection).
  void expectStillServing() {
    auto r = curl({"-o", "/dev/null", "-w", "%{http_version} %{http_code}", url("/small")});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, "2 200");
  }
};

TEST_F(ProxyHttp2Test, ServesH2cPriorKnowledgeByteExactFromAnHttp1Origin) {
  startProxy(config(endpoint(nginx_->port())));
  const std::string out = dir_->path() + "/got";
  auto r = curl({"-o", out, "-w", "%{http_version} %{http_code}", url("/file64m")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "2 200");
  auto same = runCommand({"cmp", out, nginx_->root() + "/file64m"});
  EXPECT_TRUE(same) << same.error().message;
  EXPECT_EQ(metric("h2_downstream_cx"), 1u);
  // The same listener still speaks HTTP/1.1 to clients that do.
  auto h1 = ns_->run(
      {"curl", "-sS", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", url("/small")});
  ASSERT_TRUE(h1) << h1.error().message;
  EXPECT_EQ(*h1, "1.1 200");
}

TEST_F(ProxyHttp2Test, MultiplexesStreamsUpToTheAdvertisedLimit) {
  startProxy(config(endpoint(nginx_->port()), "", R"(, "limits": {"max_concurrent_streams": 50})"));
  const json j = probe({"multiplex", "--path", "/small", "--streams", "300"});
  EXPECT_EQ(j["statuses"]["200"], 300) << j.dump();
  EXPECT_EQ(j["peak_concurrent"], 50) << "the client is held to SETTINGS_MAX_CONCURRENT_STREAMS";
  EXPECT_EQ(j["body_sha256s"].size(), 1u) << j.dump();
  EXPECT_FALSE(j["flow_control_violation"].get<bool>());
  // Streams reuse the pooled HTTP/1.1 upstream connections: at most one per stream in
  // flight is ever opened.
  EXPECT_LE(metric("upstream_cx_connect"), 50u);
  EXPECT_GE(metric("upstream_cx_reused"), 250u);

  auto load = ns_->run({"h2load", "-n", "4000", "-c", "4", "-m", "20", url("/small")});
  ASSERT_TRUE(load) << load.error().message;
  EXPECT_NE(load->find("4000 succeeded, 0 failed, 0 errored"), std::string::npos) << *load;
  EXPECT_NE(load->find("status codes: 4000 2xx"), std::string::npos) << *load;
}

TEST_F(ProxyHttp2Test, RespectsTheClientsFlowControlWindowOnALargeResponse) {
  startProxy(config(endpoint(nginx_->port())));
  std::string body(2 << 20, '\0');
  for (size_t i = 0; i < body.size(); i++) {
    body[i] = static_cast<char>(i * 7 % 253);
  }
  ASSERT_TRUE(writeTextFile(nginx_->root() + "/two_mib", body));
  auto sha = runCommand({"sha256sum", nginx_->root() + "/two_mib"});
  ASSERT_TRUE(sha) << sha.error().message;

  const json j = probe({"get", "--path", "/two_mib", "--window", "4096"});
  EXPECT_EQ(j["status"], 200) << j.dump();
  EXPECT_EQ(j["body_bytes"], body.size());
  EXPECT_EQ(j["body_sha256"], sha->substr(0, 64));
  EXPECT_FALSE(j["flow_control_violation"].get<bool>()) << j.dump();
  EXPECT_LE(j["max_data_frame"].get<int>(), 4096) << "a DATA frame larger than the window";
}

// An edge listener replaces a client's X-Forwarded-For, and drops its Forwarded and
// X-Real-IP, over HTTP/2 as over HTTP/1.1.
TEST_F(ProxyHttp2Test, AnEdgeListenerReplacesTheClientsXForwardedFor) {
  RecordingServer& be = backend(RecordingServer::answerWholeRequests());
  startProxy(R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0,
                  "x_forwarded_for": "replace", "routes": [{"cluster": "be"}]}],
                 "clusters": [{"name": "be", "endpoints": [)" +
             endpoint(be.port()) + "]}]}");
  const json j = probe({"get", "--path", "/", "--header", "x-forwarded-for:6.6.6.6", "--header",
                        "forwarded:for=8.8.8.8", "--header", "x-real-ip:9.9.9.9"});
  EXPECT_EQ(j["status"], 200) << j.dump();
  const std::string got = be.received();
  EXPECT_NE(got.find("x-forwarded-for: 127.0.0.1\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("6.6.6.6"), std::string::npos) << got;
  EXPECT_EQ(got.find("8.8.8.8"), std::string::npos) << "Forwarded: " << got;
  EXPECT_EQ(got.find("9.9.9.9"), std::string::npos) << "X-Real-IP: " << got;
}

TEST_F(ProxyHttp2Test, StreamsRequestBodiesAndTrailersToAnHttp1BackendChunked) {
  RecordingServer& be = backend(RecordingServer::answerWholeRequests());
  startProxy(config(endpoint(be.port())));
  const json j = probe({"post", "--path", "/upload", "--body-bytes", "300000", "--trailer",
                        "x-checksum=abc", "--header", "trailer:x-checksum"});
  EXPECT_EQ(j["status"], 200) << j.dump();
  EXPECT_EQ(j["sent_bytes"], 300000);

  const std::string got = be.received();
  const size_t head_end = got.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << got.substr(0, 500);
  const std::string head = got.substr(0, head_end + 2);
  EXPECT_TRUE(head.starts_with("POST /upload HTTP/1.1\r\n")) << head;
  EXPECT_NE(head.find("transfer-encoding: chunked\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("x-forwarded-for: 127.0.0.1\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("trailer: x-checksum\r\n"), std::string::npos) << "announced: " << head;
  const auto [body, trailers] = dechunk(std::string_view(got).substr(head_end + 4));
  ASSERT_EQ(body.size(), 300000u);
  for (size_t i = 0; i < body.size(); i++) {
    ASSERT_EQ(static_cast<uint8_t>(body[i]), i % 251) << "body byte " << i;
  }
  EXPECT_EQ(trailers, "x-checksum: abc\r\n\r\n");
}

TEST_F(ProxyHttp2Test, ForwardsContentLengthBodiesAsContentLength) {
  RecordingServer& be = backend(RecordingServer::answerWholeRequests());
  startProxy(config(endpoint(be.port())));
  const json j = probe({"post", "--path", "/cl", "--body-bytes", "70000", "--content-length",
                        "--header", "trailer:x-checksum"});
  EXPECT_EQ(j["status"], 200) << j.dump();
  const std::string got = be.received();
  EXPECT_NE(got.find("content-length: 70000\r\n"), std::string::npos) << got.substr(0, 400);
  EXPECT_EQ(got.substr(0, got.find("\r\n\r\n")).find("trailer"), std::string::npos)
      << "a body framed by length carries no trailer section: " << got.substr(0, 400);
  EXPECT_EQ(got.find("transfer-encoding"), std::string::npos) << got.substr(0, 400);
  EXPECT_EQ(got.size() - got.find("\r\n\r\n") - 4, 70000u);
}

// An HTTP/1.1 origin may end its body by closing the connection: the HTTP/2 client's stream
// then ends there, with the whole body (it used to wait until the idle timeout cancelled it).
TEST_F(ProxyHttp2Test, EndsTheStreamWhereAnHttp1OriginClosesItsBody) {
  RecordingServer& be = backend(closeDelimited(std::string(5000, 'd')));
  startProxy(config(endpoint(be.port())));
  auto r = curl({"-m", "5", "-o", "-", "-w", " %{http_version} %{http_code}", url("/closedelim")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, std::string(5000, 'd') + " 2 200");
  EXPECT_EQ(metric("upstream_rsp_reset"), 0u);
}

TEST_F(ProxyHttp2Test, PassesGrpcCallsStreamsAndStatusTrailersThroughAnHttp2Cluster) {
  const uint16_t grpc = grpcServer("alpha");
  ASSERT_NE(grpc, 0);
  startProxy(config(endpoint(nginx_->port()), endpoint(grpc)));

  json j = grpcCall("Unary", "hello");
  EXPECT_EQ(j["code"], "OK") << j.dump();
  EXPECT_EQ(j["responses"], json::array({"alpha:hello"}));

  j = grpcCall("ServerStream", "200", 200);
  EXPECT_EQ(j["code"], "OK") << j.dump();
  ASSERT_EQ(j["responses"].size(), 200u);
  EXPECT_EQ(j["responses"][199], "alpha:199");

  j = grpcCall("ClientStream", std::string(1000, 'x'), 50);
  EXPECT_EQ(j["code"], "OK") << j.dump();
  EXPECT_EQ(j["responses"], json::array({"50000"}));

  // Megabytes each way: both flow-control windows (client side and upstream side) must
  // keep moving.
  j = grpcCall("ClientStream", std::string(100000, 'y'), 40);
  EXPECT_EQ(j["code"], "OK") << j.dump().substr(0, 300);
  EXPECT_EQ(j["responses"], json::array({"4000000"}));
  j = grpcCall("ServerStream", "20000", 20000);
  EXPECT_EQ(j["code"], "OK") << j.dump().substr(0, 300);
  ASSERT_EQ(j["responses"].size(), 20000u);
  EXPECT_EQ(j["responses"][19999], "alpha:19999");

  // A failing call is a trailers-only response: grpc-status, grpc-message and custom
  // trailing metadata must all reach the client.
  j = grpcCall("Fail", "9:precondition broken");
  EXPECT_EQ(j["code"], "FAILED_PRECONDITION") << j.dump();
  EXPECT_EQ(j["details"], "precondition broken");
  EXPECT_EQ(j["trailing_metadata"],
            json::array({json::array({"x-meshgate-test", "trailer-value"})}));

  EXPECT_EQ(metric("h2_upstream_cx"), 1u) << "every call shares one upstream connection";
}

TEST_F(ProxyHttp2Test, AnswersErrorsWithMeaningfulStatuses) {
  const uint16_t dead = freeLoopbackPort(*ns_);
  startProxy(config(endpoint(dead), "",
                    R"(, "limits": {"max_header_bytes": 2048, "max_body_bytes": 1000})"));
  json j = probe({"get", "--path", "/x"});
  EXPECT_EQ(j["status"], 503) << j.dump();
  const std::string page = j["body_head"];
  EXPECT_TRUE(page.starts_with("503 Service Unavailable: cannot connect to the upstream")) << page;
  EXPECT_EQ(page.find(std::to_string(dead)), std::string::npos)
      << "the client is not told the upstream's address: " << page;
  j = probe({"get", "--path", "/a/../admin"});
  EXPECT_EQ(j["status"], 400) << j.dump();
  j = probe({"get", "--path", "/x", "--header", "x-big:" + std::string(4000, 'v')});
  EXPECT_EQ(j["status"], 431) << j.dump();
  j = probe({"post", "--path", "/x", "--body-bytes", "5000", "--content-length"});
  EXPECT_EQ(j["status"], 413) << j.dump();
  EXPECT_EQ(metric("response_5xx"), 1u);
  EXPECT_EQ(metric("response_4xx"), 3u);
  EXPECT_EQ(metric("downstream_rq_bad"), 3u);
}

// Each way an upstream fails, for HTTP/1.1 and HTTP/2 clients of HTTP/1.1 and HTTP/2
// clusters: a reply that is not the protocol (502), silence (504 after the route timeout),
// and a connection cut in the middle of the body, which can only cut the client's response
// after what came (HTTP/1.1: the connection closes short of its Content-Length; HTTP/2: the
// DATA, then RST_STREAM).
TEST_F(ProxyHttp2Test, UpstreamFailuresGetTheRightAnswerWhateverTheProtocolOnEitherSide) {
  struct Case {
    std::string name;
    uint16_t port;
    const char* protocol;
  };
  const std::vector<Case> cases = {
      {"h1-garbage", backend(RecordingServer::respond("garbage\r\n\r\n")).port(), "http1"},
      {"h1-silent", backend(RecordingServer::silent()).port(), "http1"},
      {"h1-cut", backend(cutMidBody()).port(), "http1"},
      {"h2-garbage", h2Backend({"--garbage"}), "http2"},
      {"h2-silent", h2Backend({"--silent"}), "http2"},
      {"h2-cut", h2Backend({"--cut-body"}), "http2"},
  };
  std::string routes, clusters;
  for (const Case& c : cases) {
    ASSERT_NE(c.port, 0) << c.name;
    routes += std::string(routes.empty() ? "" : ", ") + R"({"match": {"path": {"prefix": "/)" +
              c.name + R"("}}, "cluster": ")" + c.name + R"(", "timeout_ms": 300})";
    clusters += std::string(clusters.empty() ? "" : ", ") + R"({"name": ")" + c.name +
                R"(", "protocol": ")" + c.protocol + R"(", "endpoints": [)" + endpoint(c.port) +
                "]}";
  }
  startProxy(R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": [)" +
             routes + R"(]}], "clusters": [)" + clusters +
             R"(], "admin": {"address": "127.0.0.1", "port": 0}})");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto h1 =
        rawExchange(*ns_, proxy_->port("web"), "GET /" + c.name + " HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_TRUE(h1) << h1.error().message;
    const json h2 = probe({"get", "--path", "/" + c.name});
    if (c.name.ends_with("garbage")) {
      EXPECT_EQ(statusOf(*h1), 502) << *h1;
      EXPECT_EQ(h2["status"], 502) << h2.dump();
    } else if (c.name.ends_with("silent")) {
      EXPECT_EQ(statusOf(*h1), 504) << *h1;
      EXPECT_EQ(h2["status"], 504) << h2.dump();
    } else {
      EXPECT_EQ(statusOf(*h1), 200) << *h1;
      const size_t head = h1->find("\r\n\r\n");
      ASSERT_NE(head, std::string::npos);
      EXPECT_EQ(h1->size() - head - 4, 1000u) << "the body as far as it came, then the close";
      // As over HTTP/1.1: the head and the body as far as it came, then the reset.
      EXPECT_EQ(h2["status"], 200) << h2.dump();
      EXPECT_EQ(h2["body_bytes"], 1000) << h2.dump();
      EXPECT_EQ(h2["reset"], "INTERNAL_ERROR") << h2.dump();
    }
  }
  EXPECT_EQ(metric("upstream_rq_timeout"), 4u);
  // Per bad HTTP/1.1 response, per HTTP/2 connection ended for a protocol error (each
  // request here opened its own).
  EXPECT_EQ(metric("upstream_rsp_bad"), 4u);
  // The four cut responses, and the two requests on the broken HTTP/2 connections: its
  // streams fail as reset (an idempotent request would be retried where retries allow).
  EXPECT_EQ(metric("upstream_rsp_reset"), 6u);
  EXPECT_EQ(metric("response_5xx"), 8u);
  EXPECT_EQ(metric("h2_streams_reset_by_client"), 0u) << "the cut streams were reset by us";
  EXPECT_EQ(metric("h2_streams_idle_timeout"), 0u) << "and at once, not at the idle timeout";
}

// The smuggling battery for HTTP/2 clients of an HTTP/1.1 cluster: every field an HTTP/2
// request could carry that would read differently once written as HTTP/1.1 (framing
// fields, CR, LF or NUL in a value, a bad name, a request line broken by the pseudo-fields)
// is refused, and the backend, which records every byte it gets, never sees the request.
TEST_F(ProxyHttp2Test, RequestsThatWouldReadDifferentlyAsHttp11AreRefusedBeforeTheBackend) {
  auto& rec = backend(RecordingServer::respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  startProxy(config(endpoint(rec.port())));
  const std::vector<std::string> base = {":method=GET", ":scheme=http", ":authority=a", ":path=/x"};
  struct Case {
    std::string what;
    std::vector<std::string> fields;  // replacing or added to `base`
    std::optional<std::string> data;
  };
  const std::string smuggled = "GET /smuggled HTTP/1.1\\r\\nhost: a\\r\\n\\r\\n";
  const std::vector<Case> cases = {
      {"control", {":path=/control", "x-fine=1"}, std::nullopt},  // the probe's request works
      // Its head may go out before the DATA that overruns it arrives (bodies stream), on the
      // connection the control request left in the pool.
      {"content-length shorter than the data",
       {":method=POST", "content-length=5"},
       std::string(50, 'x')},
      {"control", {":path=/control", "x-fine=1"}, std::nullopt},
      {"transfer-encoding", {":method=POST", "transfer-encoding=chunked"}, "0\r\n\r\n" + smuggled},
      {"two content-lengths", {":method=POST", "content-length=5", "content-length=6"}, "12345"},
      {"CRLF in a value", {"x-a=1\\r\\nx-injected: 1"}, std::nullopt},
      {"LF in a value", {"x-a=1\\nx-injected: 1"}, std::nullopt},
      {"NUL in a value", {"x-a=1\\x00x"}, std::nullopt},
      {"upper case name", {"X-Upper=1"}, std::nullopt},
      {"space in a name", {"x bad=1"}, std::nullopt},
      {"colon in a name", {"x:bad=1"}, std::nullopt},
      {"connection-specific field", {"connection=keep-alive"}, std::nullopt},
      {"keep-alive field", {"keep-alive=timeout=5"}, std::nullopt},
      {"upgrade field", {"upgrade=websocket"}, std::nullopt},
      {"space in :path", {":path=/a " + smuggled}, std::nullopt},
      {"CRLF in :path", {":path=/a\\r\\nx-injected: 1"}, std::nullopt},
      {"space in :method", {":method=GET /x"}, std::nullopt},
      {"CRLF in :authority", {":authority=a\\r\\nx-injected: 1"}, std::nullopt},
      {"no :path", {":path="}, std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<std::string> fields = base;
    for (const std::string& f : c.fields) {
      const std::string name = f.substr(0, f.find('=', 1));
      auto same = std::find_if(fields.begin(), fields.end(), [&](const std::string& b) {
        return name.starts_with(":") && b.starts_with(name + "=");
      });
      if (same != fields.end()) {
        *same = f;
      } else {
        fields.push_back(f);
      }
    }
    std::vector<std::string> args = {"raw-request"};
    for (const std::string& f : fields) {
      args.insert(args.end(), {"--field", f});
    }
    if (c.data) {
      args.insert(args.end(), {"--data", *c.data});
    }
    const json j = probe(args);
    if (c.what == "control") {
      EXPECT_EQ(j["status"], 200) << j.dump();
    } else {
      EXPECT_TRUE(j["reset"] == "PROTOCOL_ERROR" || j["status"] == 400) << j.dump();
    }
  }
  // The backend got the two control requests and, depending on timing, the head of the
  // POST whose DATA overran its content-length. Not a byte of that body followed it, and
  // its connection was closed, never pooled again: reused, it would have taken "GET /c"
  // of the next request as the POST's body.
  std::string got = rec.received();
  const size_t post = got.find("POST /x HTTP/1.1\r\n");
  const bool post_seen = post != std::string::npos;
  if (post_seen) {
    const size_t post_end = got.find("\r\n\r\n", post) + 4;
    EXPECT_NE(got.substr(post, post_end - post).find("content-length: 5\r\n"), std::string::npos)
        << got;
    got.erase(post, post_end - post);
  }
  const size_t first_end = got.find("\r\n\r\n") + 4;
  EXPECT_TRUE(got.starts_with("GET /control HTTP/1.1\r\n")) << got;
  EXPECT_EQ(got.substr(first_end), got.substr(0, first_end))
      << "the second control, alone: " << got;
  EXPECT_EQ(rec.connections(), post_seen ? 2 : 1) << got;
  EXPECT_EQ(got.find("smuggled"), std::string::npos) << got;
  EXPECT_EQ(got.find("injected"), std::string::npos) << got;
}

TEST_F(ProxyHttp2Test, ClosesARapidResetConnectionWithoutTouchingUpstreams) {
  startProxy(config(endpoint(nginx_->port())));
  const json j = probe({"rapid-reset", "--path", "/small", "--streams", "5000", "--timeout", "2"});
  EXPECT_TRUE(j["closed"].get<bool>()) << j.dump();
  EXPECT_EQ(j["goaway"], "ENHANCE_YOUR_CALM") << j.dump();
  EXPECT_LT(j["streams_sent"].get<int>(), 5000) << "the connection was cut before the end";
  EXPECT_GE(metric("h2_streams_reset_early"), 200u);
  EXPECT_LE(metric("upstream_cx_connect"), 5u) << "reset streams must not cost upstream work";
  EXPECT_EQ(metric("h2_downstream_protocol_error"), 1u);
  expectStillServing();
}

// The same attack from stream id 2^30 + 1 on: a client may skip ids, so the share of
// reset streams is taken of the requests opened, not of the highest id.
TEST_F(ProxyHttp2Test, ClosesARapidResetConnectionThatSkipsStreamIds) {
  startProxy(config(endpoint(nginx_->port())));
  const json j = probe({"rapid-reset", "--path", "/small", "--streams", "5000", "--timeout", "2",
                        "--first-stream-id", "1073741825"});
  EXPECT_TRUE(j["closed"].get<bool>()) << j.dump();
  EXPECT_EQ(j["goaway"], "ENHANCE_YOUR_CALM") << j.dump();
  EXPECT_EQ(metric("h2_downstream_protocol_error"), 1u) << "our check, not nghttp2's backstop";
  EXPECT_LE(metric("upstream_cx_connect"), 5u);
  expectStillServing();
}

TEST_F(ProxyHttp2Test, ClosesAContinuationFlood) {
  startProxy(config(endpoint(nginx_->port())));
  const json j = probe({"continuation-flood", "--frames", "10000", "--timeout", "2"});
  EXPECT_TRUE(j["closed"].get<bool>()) << j.dump();
  EXPECT_LT(j["frames_sent"].get<int>(), 10000) << j.dump();
  EXPECT_EQ(metric("h2_downstream_protocol_error"), 1u);
  EXPECT_EQ(metric("upstream_cx_connect"), 0u);
  expectStillServing();
}

TEST_F(ProxyHttp2Test, BridgesHttp1ClientsToAnHttp2OnlyCluster) {
  const std::string www = dir_->path() + "/h2www";
  std::filesystem::create_directories(www);
  std::string file(2 << 20, '\0');
  for (size_t i = 0; i < file.size(); i++) {
    file[i] = static_cast<char>(i * 13 % 241);
  }
  ASSERT_TRUE(writeTextFile(www + "/f", file));
  const uint16_t h2 = nghttpd(www);
  startProxy(
      R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": [{"cluster": "h2"}]}],
                 "clusters": [{"name": "h2", "protocol": "http2", "endpoints": [)" +
      endpoint(h2) + R"(]}], "admin": {"address": "127.0.0.1", "port": 0}})");

  // Three HTTP/1.1 downloads on one keep-alive client connection, byte-exact.
  const std::string got = dir_->path() + "/got";
  std::vector<std::string> args = {"curl", "-sS", "--max-time",
                                   "30",   "-w",  "%{http_version} %{http_code}\n"};
  for (int i = 0; i < 3; i++) {
    args.insert(args.end(), {"-o", got + std::to_string(i), url("/f")});
  }
  auto r = ns_->run(args);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "1.1 200\n1.1 200\n1.1 200\n");
  for (int i = 0; i < 3; i++) {
    auto same = runCommand({"cmp", got + std::to_string(i), www + "/f"});
    EXPECT_TRUE(same) << same.error().message;
  }
  // A chunked HTTP/1.1 upload, echoed back by the HTTP/2 origin.
  ASSERT_TRUE(writeTextFile(dir_->path() + "/up", file.substr(0, 1 << 20)));
  r = ns_->run({"curl", "-sS", "--max-time", "30", "-H", "Transfer-Encoding: chunked",
                "--data-binary", "@" + dir_->path() + "/up", "-o", got + "up", "-w", "%{http_code}",
                url("/f")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "200");
  auto same = runCommand({"cmp", got + "up", dir_->path() + "/up"});
  EXPECT_TRUE(same) << same.error().message;
  // An HTTP/2 client through the same cluster.
  const json j = probe({"get", "--path", "/f"});
  EXPECT_EQ(j["status"], 200) << j.dump();
  EXPECT_EQ(j["body_bytes"], file.size());

  EXPECT_EQ(metric("h2_upstream_cx"), 1u) << "every request shares one HTTP/2 connection";
  EXPECT_EQ(metric("upstream_cx_reused"), 4u);
  EXPECT_EQ(metric("response_2xx"), 5u);
}

// Regressions found by review: each of these failed before its fix.

TEST_F(ProxyHttp2Test, GivesBackTheConnectionWindowOfStreamsResetWithTheirBody) {
  RecordingServer& be = backend(RecordingServer::answerWholeRequests());
  startProxy(config(endpoint(be.port())));
  // 120 x 60,000 bytes is more than the connection window (100 streams x 64 KiB): if the
  // reset streams' bytes were never credited back, the upload below would stall.
  const json j = probe({"reset-with-body", "--path", "/r", "--rounds", "120", "--timeout", "3"});
  ASSERT_TRUE(j["upload"].is_object()) << j.dump();
  EXPECT_EQ(j["upload"]["status"], 200) << j.dump();
  EXPECT_EQ(j["upload"]["sent_bytes"], 200000);
}

// An upstream stream cut by RST_STREAM after part of its body leaves bytes that reached
// the proxy and were never passed on as consumed: they must go back to the upstream
// connection's window, which every stream to that endpoint shares. 300 cuts of 60,000
// bytes pass the proxy's 16 MiB connection window: were they kept, the backend (which
// sends no more than the windows let it) would cut the later ones short of their bytes.
// The margin relies on the backend's 100 concurrent streams (python-h2's default): nghttp2
// sends the window back once half of it (8 MiB) is consumed, so more than about 140
// streams of 60,000 bytes in flight at once could find it short even with every byte
// given back.
TEST_F(ProxyHttp2Test, CutUpstreamStreamsGiveBackTheSharedConnectionWindow) {
  const uint16_t be = h2Backend({"--reset-body", "60000"});
  ASSERT_NE(be, 0);
  startProxy(h2ClusterConfig(be));
  const json j = probe({"multiplex", "--path", "/reset", "--streams", "300"});
  EXPECT_EQ(j["statuses"]["200"], 300) << j.dump();
  EXPECT_EQ(j["resets"]["INTERNAL_ERROR"], 300) << j.dump();
  EXPECT_EQ(j["total_body_bytes"], 300 * 60000) << j.dump();
  const json ok = probe({"get", "--path", "/ok"});
  EXPECT_EQ(ok["status"], 200) << ok.dump();
  EXPECT_EQ(metric("upstream_rsp_reset"), 300u);
  EXPECT_EQ(metric("h2_upstream_cx"), 1u) << "every stream shared one upstream connection";
}

TEST_F(ProxyHttp2Test, NeverForwardsARequestAnsweredBeforeItWasRouted) {
  RecordingServer& be = backend(RecordingServer::answerWholeRequests());
  startProxy(config(endpoint(be.port()), "", R"(, "limits": {"max_body_bytes": 1000})"));
  // Head and an oversized body in one read: 413 before the stream is routed, and then the
  // stream must not be routed at all.
  const json j = probe({"early-data", "--path", "/early", "--body-bytes", "5000"});
  EXPECT_EQ(j["status"], 413) << j.dump();
  EXPECT_EQ(metric("upstream_cx_connect") + metric("upstream_cx_reused"), 0u);
  EXPECT_EQ(metric("downstream_rq_bad"), 1u);
}

TEST_F(ProxyHttp2Test, BoundsWhatAnHpackBombCosts) {
  startProxy(config(endpoint(nginx_->port())));
  const pid_t pid = proxy_->process().pid();
  const uint64_t before = rssKib(pid);
  const json j = probe({"hpack-bomb", "--path", "/small", "--timeout", "2"});
  EXPECT_EQ(j["status"], 431) << j.dump();
  const uint64_t after = rssKib(pid);
  EXPECT_LT(after - std::min(after, before), 32u * 1024)
      << "KiB of RSS grown by a 150 KB header block";
  expectStillServing();
}

TEST_F(ProxyHttp2Test, RetriesARequestWhoseBodyTurnsOutEmptyToTheEnd) {
  RecordingServer& slam = backend(closeAfterHead());
  RecordingServer& good = backend(RecordingServer::answerWholeRequests());
  startProxy(
      R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": [{"cluster": "be", "retries": 1, "timeout_ms": 3000}]}],
                 "clusters": [{"name": "be", "endpoints": [)" +
      endpoint(slam.port()) + ", " + endpoint(good.port()) +
      R"(]}], "admin": {"address": "127.0.0.1", "port": 0}})");
  // Round robin: one of the two requests meets the closing endpoint first and is retried.
  for (int i = 0; i < 2; i++) {
    const json j = probe({"empty-body", "--path", "/put" + std::to_string(i)});
    EXPECT_EQ(j["status"], 200) << j.dump();
  }
  EXPECT_EQ(metric("upstream_rq_retry"), 1u);
  EXPECT_NE(good.received().find("\r\n0\r\n\r\n"), std::string::npos)
      << "the retried request's body must be terminated: " << good.received();
}

TEST_F(ProxyHttp2Test, WritesOneAccessLogLinePerRequestOfEitherVersion) {
  const std::string log = dir_->path() + "/access.log";
  startProxy(config(endpoint(nginx_->port()), "", R"(, "access_log": ")" + log + "\""));
  auto h1 = ns_->run({"curl", "-sS", "-o", "/dev/null", url("/small")});
  ASSERT_TRUE(h1) << h1.error().message;
  json j = probe({"get", "--path", "/small"});
  EXPECT_EQ(j["status"], 200) << j.dump();
  j = probe({"post", "--path", "/small", "--body-bytes", "1000", "--content-length"});
  EXPECT_EQ(j["status"], 405) << j.dump();  // nginx serves files to GET only

  auto text = runCommand({"cat", log});
  ASSERT_TRUE(text) << text.error().message;
  const std::vector<json> lines = jsonLines(*text);
  ASSERT_EQ(lines.size(), 3u) << *text;
  const std::string upstream = "127.0.0.1:" + std::to_string(nginx_->port());
  EXPECT_EQ(lines[0]["protocol"], "HTTP/1.1");
  EXPECT_EQ(lines[1]["protocol"], "HTTP/2");
  EXPECT_EQ(lines[2]["protocol"], "HTTP/2");
  for (const auto& l : lines) {
    EXPECT_EQ(l["upstream"], upstream) << l.dump();
    EXPECT_EQ(l["cluster"], "be") << l.dump();
    EXPECT_EQ(l["attempts"], 1) << l.dump();
    EXPECT_GE(l["duration_us"].get<int64_t>(), l["upstream_us"].get<int64_t>()) << l.dump();
  }
  EXPECT_EQ(lines[0]["status"], 200);
  EXPECT_EQ(lines[0]["response_body_bytes"], 100);
  EXPECT_EQ(lines[1]["method"], "GET");
  EXPECT_EQ(lines[1]["target"], "/small");
  EXPECT_EQ(lines[1]["response_body_bytes"], 100);
  EXPECT_EQ(lines[2]["method"], "POST");
  EXPECT_EQ(lines[2]["status"], 405);
  EXPECT_EQ(lines[2]["request_body_bytes"], 1000);
}

// A response the upstream cuts is a request too: one line each, HTTP/1.1 and HTTP/2, with the
// status the client got and the bytes that reached it, and a 2xx counted.
TEST_F(ProxyHttp2Test, WritesAnAccessLogLineForACutResponseOfEitherVersion) {
  const std::string log = dir_->path() + "/access.log";
  RecordingServer& be = backend(cutMidBody());
  startProxy(config(endpoint(be.port()), "", R"(, "access_log": ")" + log + "\""));
  auto h1 = rawExchange(*ns_, proxy_->port("web"), "GET /cut1 HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(h1) << h1.error().message;
  EXPECT_EQ(statusOf(*h1), 200) << h1->substr(0, 200);
  probe({"get", "--path", "/cut2"});
  ASSERT_TRUE(proxy_->process().running());

  auto text = runCommand({"cat", log});
  ASSERT_TRUE(text) << text.error().message;
  const std::vector<json> lines = jsonLines(*text);
  ASSERT_EQ(lines.size(), 2u) << *text;
  EXPECT_EQ(lines[0]["protocol"], "HTTP/1.1");
  EXPECT_EQ(lines[0]["target"], "/cut1");
  EXPECT_EQ(lines[0]["status"], 200);
  EXPECT_EQ(lines[0]["response_body_bytes"], 1000);
  EXPECT_EQ(lines[1]["protocol"], "HTTP/2");
  EXPECT_EQ(lines[1]["target"], "/cut2");
  EXPECT_EQ(metric("downstream_rq_total"), 2u);
  EXPECT_EQ(metric("response_2xx"), 2u) << "each client got a 200 head";
  EXPECT_EQ(metric("upstream_rsp_reset"), 2u);
}

// REFUSED_STREAM means the origin did not process the request: it goes to another attempt
// whatever the route's retries (here 0), from an HTTP/2 client and from an HTTP/1.1 one.
TEST_F(ProxyHttp2Test, RetriesAStreamTheUpstreamRefusedForAnHttp2Client) {
  const uint16_t be = h2Backend({"--refuse-first", "1"});
  ASSERT_NE(be, 0);
  startProxy(h2ClusterConfig(be));
  const json j = probe({"get", "--path", "/h2"});
  EXPECT_EQ(j["status"], 200) << j.dump();
  EXPECT_EQ(metric("h2_upstream_streams_refused"), 1u);
  EXPECT_EQ(metric("upstream_rq_retry"), 1u);
}

TEST_F(ProxyHttp2Test, RetriesAStreamTheUpstreamRefusedForAnHttp1Client) {
  const uint16_t be = h2Backend({"--refuse-first", "1"});
  ASSERT_NE(be, 0);
  startProxy(h2ClusterConfig(be));
  auto h1 = ns_->run({"curl", "-sS", "-w", " %{http_code}", url("/h1")});
  ASSERT_TRUE(h1) << h1.error().message;
  EXPECT_EQ(*h1, "h2-backend 200");
  EXPECT_EQ(metric("h2_upstream_streams_refused"), 1u);
  EXPECT_EQ(metric("upstream_rq_retry"), 1u);
}

std::string withRetries(std::string config, int retries) {
  const std::string route = R"("cluster": "h2")";
  config.replace(config.find(route), route.size(),
                 route + R"(, "retries": )" + std::to_string(retries));
  return config;
}

// A 502/503 is retried for clients of either HTTP version, as the route's `retries` says;
// with no retries left, it reaches the client.
TEST_F(ProxyHttp2Test, RetriesA503ForAnHttp2Client) {
  const uint16_t be = h2Backend({"--fail-first", "1"});
  ASSERT_NE(be, 0);
  startProxy(withRetries(h2ClusterConfig(be), 1));
  const json j = probe({"get", "--path", "/h2"});
  EXPECT_EQ(j["status"], 200) << j.dump();
  EXPECT_EQ(metric("upstream_rq_retry"), 1u);
}

TEST_F(ProxyHttp2Test, RetriesA503ForAnHttp1ClientOfAnHttp2Cluster) {
  const uint16_t be = h2Backend({"--fail-first", "1"});
  ASSERT_NE(be, 0);
  startProxy(withRetries(h2ClusterConfig(be), 1));
  auto h1 = ns_->run({"curl", "-sS", "-w", " %{http_code}", url("/h1")});
  ASSERT_TRUE(h1) << h1.error().message;
  EXPECT_EQ(*h1, "h2-backend 200");
  EXPECT_EQ(metric("upstream_rq_retry"), 1u);
}

TEST_F(ProxyHttp2Test, PassesA503OnWhenNoRetryIsLeft) {
  const uint16_t be = h2Backend({"--fail-first", "2"});
  ASSERT_NE(be, 0);
  startProxy(withRetries(h2ClusterConfig(be), 1));
  const json j = probe({"get", "--path", "/h2"});
  EXPECT_EQ(j["status"], 503) << "two attempts, two 503s: " << j.dump();
  EXPECT_EQ(metric("upstream_rq_retry"), 1u);
}

// A request with a body is retried too, as long as the proxy kept all of the body it sent
// (at most buffer_bytes): the next attempt gets the whole body again. The backend echoes the
// body it received, so the answer shows what the second attempt got.
TEST_F(ProxyHttp2Test, RetriesA503WithItsBodyForAnHttp2Client) {
  const uint16_t be = h2Backend({"--fail-first", "1"});
  ASSERT_NE(be, 0);
  startProxy(withRetries(h2ClusterConfig(be), 1));
  const json j = probe({"post", "--method", "PUT", "--path", "/put", "--body-bytes", "30000"});
  EXPECT_EQ(j["status"], 200) << j.dump();
  EXPECT_EQ(j["body_bytes"], 30000) << j.dump();
  EXPECT_EQ(j["body_sha256"], j["sent_sha256"]) << "the retry got the whole body: " << j.dump();
  EXPECT_EQ(metric("upstream_rq_retry"), 1u);
}

TEST_F(ProxyHttp2Test, RetriesA503WithItsBodyForAnHttp1ClientOfAnHttp2Cluster) {
  const uint16_t be = h2Backend({"--fail-first", "1"});
  ASSERT_NE(be, 0);
  startProxy(withRetries(h2ClusterConfig(be), 1));
  std::string body;
  for (int i = 0; i < 30000; i++) {
    body += static_cast<char>('a' + i % 26);
  }
  const std::string file = dir_->path() + "/put.body";
  ASSERT_TRUE(writeTextFile(file, body));
  auto h1 = ns_->run({"curl", "-sS", "-X", "PUT", "-H", "Expect:", "--data-binary", "@" + file,
                      "-w", " %{http_code}", url("/put")});
  ASSERT_TRUE(h1) << h1.error().message;
  EXPECT_EQ(*h1, body + " 200") << "the retry got the whole body";
  EXPECT_EQ(metric("upstream_rq_retry"), 1u);
}

// An HTTP/2 client's PUT to an HTTP/1.1 cluster whose first endpoint answers 503 as soon as
// it has the head, maybe while the body is still on its way: the retry sends the other
// endpoint the body taken so far, then the rest, each byte once.
TEST_F(ProxyHttp2Test, RetriesAnEarly503WithTheWholeBodyToAnHttp1Cluster) {
  RecordingServer& refuse = backend(
      RecordingServer::respond("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"));
  RecordingServer& good = backend(RecordingServer::answerWholeRequests());
  startProxy(
      R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": [{"cluster": "be", "retries": 1}]}],
                 "clusters": [{"name": "be", "endpoints": [)" +
      endpoint(refuse.port()) + ", " + endpoint(good.port()) +
      R"(]}], "admin": {"address": "127.0.0.1", "port": 0}})");
  // Round robin: one of the two requests meets the 503 first and is retried.
  constexpr int kBody = 30000;  // within buffer_bytes (64 KiB): always kept
  for (int i = 0; i < 2; i++) {
    const json j = probe({"post", "--method", "PUT", "--path", "/put", "--body-bytes",
                          std::to_string(kBody), "--content-length"});
    EXPECT_EQ(j["status"], 200) << j.dump();
  }
  EXPECT_EQ(metric("upstream_rq_retry"), 1u);
  // The good endpoint got two whole requests, each with the probe's body (byte k is k % 251).
  const std::string got = good.received();
  size_t at = 0;
  for (int i = 0; i < 2; i++) {
    const size_t head_end = got.find("\r\n\r\n", at);
    ASSERT_NE(head_end, std::string::npos) << "request " << i;
    ASSERT_TRUE(std::string_view(got).substr(at).starts_with("PUT /put HTTP/1.1\r\n"));
    ASSERT_GE(got.size(), head_end + 4 + kBody) << "request " << i << " lacks body bytes";
    for (int k = 0; k < kBody; k++) {
      ASSERT_EQ(static_cast<uint8_t>(got[head_end + 4 + k]), k % 251)
          << "request " << i << " body byte " << k;
    }
    at = head_end + 4 + kBody;
  }
  EXPECT_EQ(at, got.size()) << "nothing more: no byte was sent twice";
}

// A refused stream with a body, from an HTTP/1.1 client: the free attempt gets the body.
TEST_F(ProxyHttp2Test, RetriesARefusedStreamWithItsBodyForAnHttp1Client) {
  const uint16_t be = h2Backend({"--refuse-first", "1"});
  ASSERT_NE(be, 0);
  startProxy(h2ClusterConfig(be));
  const std::string body(20000, 'r');
  const std::string file = dir_->path() + "/refused.body";
  ASSERT_TRUE(writeTextFile(file, body));
  auto h1 = ns_->run({"curl", "-sS", "-X", "PUT", "-H", "Expect:", "--data-binary", "@" + file,
                      "-w", " %{http_code}", url("/put")});
  ASSERT_TRUE(h1) << h1.error().message;
  EXPECT_EQ(*h1, body + " 200");
  EXPECT_EQ(metric("h2_upstream_streams_refused"), 1u);
  EXPECT_EQ(metric("upstream_rq_retry"), 1u);
}

// A body larger than buffer_bytes is not kept, so its 503 reaches the client, and the retry
// that was due is counted as one that could not be made.
TEST_F(ProxyHttp2Test, ABodyLargerThanTheBufferIsNotRetried) {
  const uint16_t be = h2Backend({"--fail-first", "2"});
  ASSERT_NE(be, 0);
  std::string config = withRetries(h2ClusterConfig(be), 1);
  config.insert(config.rfind('}'), R"(, "limits": {"buffer_bytes": 16384})");
  startProxy(config);
  const json j = probe({"post", "--method", "PUT", "--path", "/put", "--body-bytes", "100000"});
  EXPECT_EQ(j["status"], 503) << j.dump();
  std::string body(100000, 'b');
  const std::string file = dir_->path() + "/big.body";
  ASSERT_TRUE(writeTextFile(file, body));
  auto h1 = ns_->run({"curl", "-sS", "-o", "/dev/null", "-X", "PUT", "-H",
                      "Expect:", "--data-binary", "@" + file, "-w", "%{http_code}", url("/put")});
  ASSERT_TRUE(h1) << h1.error().message;
  EXPECT_EQ(*h1, "503");
  EXPECT_EQ(metric("upstream_rq_retry"), 0u);
  EXPECT_EQ(metric("upstream_rq_retry_unreplayable"), 2u) << "both retries were due";
}

// An HTTP/1.1 upload to an HTTP/2 cluster whose stream window stays shut: once a buffer of
// body waits for the window, the proxy stops reading the client (review finding: it read
// on and held the whole upload).
TEST_F(ProxyHttp2Test, AnUploadToAStalledHttp2UpstreamStopsReadingTheClient) {
  const uint16_t be = h2Backend({"--hold-body"});
  ASSERT_NE(be, 0);
  std::string config = h2ClusterConfig(be);
  config.insert(config.rfind('}'), R"(, "limits": {"buffer_bytes": 65536})");
  startProxy(config);
  const uint64_t rss_before = rssKib(proxy_->process().pid());
  auto client = connectLoopback(*ns_, proxy_->port("web"));
  ASSERT_TRUE(client) << client.error().message;
  const int fd = *client;
  constexpr size_t kUpload = size_t{64} << 20;
  const std::string head =
      "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(kUpload) + "\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  std::atomic<uint64_t> sent{0};
  std::thread sender([fd, &sent] {
    const std::string chunk(65536, 'u');
    while (sent < kUpload) {
      const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return;  // the test shut the socket down
      }
      sent += static_cast<uint64_t>(n);
    }
  });
  // What the proxy has read of the body: what we sent, less what sits in our socket
  // (unacknowledged) and in the proxy's (unread). It stalls once the proxy stops reading:
  // wait until our send queue holds megabytes and the sender has not moved between two
  // looks; without back-pressure the proxy reads on and takes the whole upload.
  const std::string port = std::to_string(proxy_->port("web"));
  uint64_t taken = 0, last_sent = UINT64_MAX;
  auto stalled = waitFor(
      [&] {
        const uint64_t now_sent = sent.load();
        auto out = ns_->run({"ss", "-tnH", "state", "established",
                             "( sport = :" + port + " or dport = :" + port + " )"});
        std::istringstream in(out ? *out : "");
        uint64_t recvq = 0, sendq = 0, proxy_unread = 0, ours_unacked = 0;
        std::string local, peer;
        while (in >> recvq >> sendq >> local >> peer) {
          if (local.ends_with(":" + port)) {
            proxy_unread += recvq;  // the proxy's socket from us
          } else {
            ours_unacked += sendq;  // ours to the proxy
          }
        }
        const bool still = now_sent == std::exchange(last_sent, now_sent);
        taken = now_sent - std::min(now_sent, ours_unacked + proxy_unread);
        return still && ours_unacked > 1024 * 1024;
      },
      std::chrono::seconds(20), "the upload to stall with our send queue full");
  const uint64_t rss_stalled = rssKib(proxy_->process().pid());
  ::shutdown(fd, SHUT_RDWR);
  sender.join();
  ::close(fd);
  ASSERT_TRUE(stalled) << stalled.error().message;
  EXPECT_LT(taken, uint64_t{2} << 20) << "bytes of body the proxy read: a few buffers";
  EXPECT_GT(rss_stalled, 0u) << "the proxy is alive";
  EXPECT_LT(rss_stalled, rss_before + 8192) << "KiB: the proxy holds a few buffers";
}

// ... and for an HTTP/2 client of an HTTP/2 cluster.
TEST_F(ProxyHttp2Test, AnEdgeListenerDropsClientAddressFieldsOnTheWayFromHttp2ToHttp2) {
  const std::string log = dir_->path() + "/h2backend.log";
  ASSERT_NO_FATAL_FAILURE(startEdgeToH2Backend(log));
  const json j = probe({"get", "--path", "/x", "--header", "x-forwarded-for:6.6.6.6", "--header",
                        "forwarded:for=8.8.8.8", "--header", "x-real-ip:9.9.9.9"});
  EXPECT_EQ(j["status"], 200) << j.dump();
  auto text = runCommand({"cat", log});
  ASSERT_TRUE(text) << text.error().message;
  EXPECT_NE(text->find("xff 1 1 127.0.0.1\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("forwarded 1 1 - -\n"), std::string::npos) << *text;
}

// "replace" holds for an HTTP/1.1 client routed to an HTTP/2 cluster too (review finding:
// that path appended the client's own X-Forwarded-For).
TEST_F(ProxyHttp2Test, AnEdgeListenerReplacesXForwardedForOnTheWayToAnHttp2Cluster) {
  const std::string log = dir_->path() + "/h2backend.log";
  ASSERT_NO_FATAL_FAILURE(startEdgeToH2Backend(log));
  auto r = rawExchange(*ns_, proxy_->port("web"),
                       "GET /x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\n"
                       "Forwarded: for=8.8.8.8\r\nX-Real-IP: 9.9.9.9\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(statusOf(*r), 200) << *r;
  auto text = runCommand({"cat", log});
  ASSERT_TRUE(text) << text.error().message;
  EXPECT_NE(text->find("xff 1 1 127.0.0.1\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("forwarded 1 1 - -\n"), std::string::npos) << *text;
  EXPECT_EQ(text->find("6.6.6.6"), std::string::npos) << *text;
}

TEST_F(ProxyHttp2Test, ResetsTheUpstreamStreamOfAnUploadTheClientAbandons) {
  const std::string log = dir_->path() + "/h2backend.log";
  const uint16_t be = h2Backend({"--early-response", "--log", log});
  ASSERT_NE(be, 0);
  startProxy(h2ClusterConfig(be));
  // The origin answers before the request body ends; then the client gives the stream up.
  // The proxy must pass that on (RST_STREAM CANCEL), not leave the upstream stream open.
  const json j = probe({"abandon-upload", "--path", "/up"});
  EXPECT_EQ(j["status"], 200) << j.dump();
  EXPECT_EQ(j["body_bytes"], 5);
  EXPECT_EQ(j["after"]["status"], 200) << j.dump();
  auto reset = waitFor(
      [&] {
        auto text = runCommand({"cat", log});
        return text && text->find("rst 1 1 8\n") != std::string::npos;  // CANCEL = 8
      },
      std::chrono::seconds(10), "the origin to see RST_STREAM(CANCEL) on stream 1");
  EXPECT_TRUE(reset) << reset.error().message;
  EXPECT_EQ(metric("h2_upstream_cx"), 1u);
}

TEST_F(ProxyHttp2Test, OpensANewUpstreamConnectionAfterGoaway) {
  const uint16_t be = h2Backend({"--goaway-after", "2"});
  ASSERT_NE(be, 0);
  startProxy(h2ClusterConfig(be));
  std::vector<std::string> args = {"curl", "-sS", "-w", "%{http_code} "};
  for (int i = 0; i < 5; i++) {
    args.insert(args.end(), {"-o", "/dev/null", url("/" + std::to_string(i))});
  }
  auto r = ns_->run(args);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "200 200 200 200 200 ");
  EXPECT_EQ(metric("h2_upstream_cx"), 3u) << "two requests per upstream connection";
  EXPECT_EQ(metric("response_5xx"), 0u);
}

}  // namespace
}  // namespace meshgate::test
