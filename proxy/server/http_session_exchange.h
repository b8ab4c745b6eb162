// The state HttpSession keeps per request, shared by its two source files:
// http_session.cc (HTTP/1.1 upstreams) and http_session_h2.cc (HTTP/2 clusters).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proxy/http1/parser.h"
#include "proxy/server/h2_upstream.h"
#include "proxy/server/http_session.h"

namespace meshgate::proxy {

class HttpSession::ResponseSink final : public http1::Sink {
 public:
  explicit ResponseSink(HttpSession& s) : s_(s) {}
  void onStatusLine(http1::Version, uint16_t status, std::string_view reason) override {
    status_ = status;
    reason_ = reason;
    headers_.clear();
    headers_.reserve(16);  // once: no regrowth for the usual head
  }
  void onHeader(std::string_view name, std::string_view value) override {
    headers_.emplace_back(name, value);
  }
  void onHeadersComplete(const http1::MessageHead& head) override { s_.onResponseHead(head); }
  void onBody(std::span<const char> data) override { s_.onResponseBody(data); }
  void onTrailer(std::string_view name, std::string_view value) override {
    s_.onResponseTrailer(name, value);
  }
  void onMessageComplete() override { s_.onResponseComplete(); }

  uint16_t status_ = 0;
  std::string reason_;
  std::vector<std::pair<std::string, std::string>> headers_;

 private:
  HttpSession& s_;
};

// The state of the request being served (one at a time per client connection).
struct HttpSession::Exchange {
  explicit Exchange(HttpSession& s);            // below H2Sink, which it must see complete (clang)
  std::chrono::steady_clock::time_point start;  // when the request line arrived (loop clock)
  // Request, as received.
  http1::Method method = http1::Method::kGet;
  std::string method_token, target;
  http1::Version version = http1::Version::kHttp11;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> connection_tokens;  // named in Connection: also hop-by-hop
  std::string authority;       // of an absolute-form target: the Host the request is routed by
  bool head_complete = false;  // onRequestHead() ran: a request to log, whatever happens
  bool keep_alive = true;
  bool chunked = false;
  bool upgrade = false;
  bool request_done = false;
  uint64_t request_bytes = 0;
  std::string request_trailers;  // re-sent after the last chunk to the upstream
  // Routing.
  const Route* route = nullptr;
  size_t cluster = 0;
  std::optional<size_t> endpoint;
  EndpointLease lease;       // counts this request on its endpoint (least request)
  std::string endpoint_key;  // "ip:port"
  uint32_t attempts = 0;
  // The request as sent upstream, kept while it fits in the buffer so that a failed
  // attempt can be replayed on another endpoint; `replayable` turns false once it does not.
  std::string sent;
  bool replayable = true;
  // Upstream. The response parser is reset for each attempt; it allocates nothing until
  // a response arrives.
  ResponseSink resp_sink;
  http1::Parser resp_parser;
  std::unique_ptr<Connection> up;
  bool up_reused = false;
  bool up_connected = false;
  std::chrono::steady_clock::time_point upstream_start;
  // Response.
  uint16_t status = 0;
  bool head_sent = false;  // response bytes went to the client: no retry, no error page
  bool chunk_out = false;  // re-encoding the body as chunked for the client
  bool close_delimited_out = false;
  bool close_after = false;  // the response said "connection: close": the connection ends here
  bool response_done = false;
  bool upstream_keep_alive = false;
  bool tunnel = false;
  bool logged = false;  // its access-log line is written (logAccess() writes one, once)
  uint64_t response_bytes = 0;
  std::string response_trailers;  // re-sent after the last chunk to the client
  // An HTTP/2 cluster: the request goes out as a stream of the worker's HTTP/2 connection
  // to the endpoint (H2Upstream) instead of bytes on `up`.
  std::unique_ptr<H2Sink> h2_sink;
  std::unique_ptr<H2Upstream> h2;
  RequestHead h2_head;
  HeaderList h2_trailers;
  size_t h2_unconsumed = 0;  // response bytes written to the client, not yet acknowledged
};

// The response of an HTTP/2 upstream, written to the HTTP/1.1 client.
class HttpSession::H2Sink final : public UpstreamSink {
 public:
  explicit H2Sink(HttpSession& s) : s_(s) {}
  void onUpstreamReady() override {}
  // The upstream took some body: feed on what the client sent meanwhile; feedRequest()
  // resumes reading the client only if the upstream now holds less than buffer_bytes.
  void onUpstreamWritable() override { s_.feedRequest(); }
  void onUpstreamHeaders(uint16_t status, HeaderList headers, bool end) override {
    s_.onH2ResponseHead(status, headers, end);
  }
  void onUpstreamData(std::span<const char> data) override { s_.onH2ResponseBody(data); }
  void onUpstreamEnd(HeaderList trailers) override { s_.onH2ResponseEnd(trailers); }
  void onUpstreamFailed(UpstreamFailure f, std::string detail) override {
    s_.onH2Failed(f, detail);
  }

 private:
  HttpSession& s_;
};

inline HttpSession::Exchange::Exchange(HttpSession& s)
    : start(s.worker_.loop().now()),
      resp_sink(s),
      resp_parser(http1::Mode::kResponse, resp_sink,
                  responseHeadLimits(s.snapshot_->config->limits)) {}

}  // namespace meshgate::proxy
