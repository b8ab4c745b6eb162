// The HTTP/1.1 message parser of meshgate-proxy (RFC 9112): pure, push-style and resumable
// at any byte boundary. The caller feeds bytes as they arrive; the parser reports what it
// recognised to a Sink. Between feeds it keeps the head (or chunk or trailer line) being read
// in one buffer, bounded by Limits; body bytes are never copied.
//
// Strict by design: anything a backend could frame differently from us is rejected, never
// repaired. In particular a message is rejected for
// - both Content-Length and Transfer-Encoding; Content-Length that is not 1*DIGIT fitting in
//   63 bits (sign, empty, comma list, overflow); Content-Length sent twice, even with equal
//   values (RFC 9110 allows merging equal copies, but a hop that keeps the first while another
//   keeps the last is how desyncs start, and no honest client sends two);
// - Transfer-Encoding in HTTP/1.0, with an empty list element or a parameter, naming chunked
//   twice, whose last coding is not chunked in a request (400), or naming any coding other
//   than chunked (501: the proxy decodes none);
// - obs-fold, a bare CR or a bare LF anywhere in the head or the chunk framing, whitespace
//   between a field name and its colon, a field name that is not a token, a CTL (but HTAB)
//   or DEL in a field value;
// - a method that is not a token, a request-target with SP, CTL, DEL or non-ASCII bytes or in
//   the wrong form for its method, a version other than exactly HTTP/1.1 or HTTP/1.0 (505 for
//   a well-formed other one), an HTTP/1.1 request without Host, more than one Host, a Host
//   that is not uri-host[:port]; a status code that is not three digits in 100..599;
// - a chunk size that is empty, not hex, signed, preceded by whitespace or 2^63 or more, and
//   a malformed chunk extension (extensions are otherwise skipped).
// Leniencies, all harmless to framing: empty lines before a request-line are skipped
// (RFC 9112 §2.2), a status-line may end right after the code, list elements of Connection
// and Expect may be empty.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "meshgate/result.h"

namespace meshgate::http1 {

enum class Mode : uint8_t { kRequest, kResponse };

/// The methods the proxy treats specially, and kOther for any other valid token (methods are
/// case-sensitive: "get" is kOther).
enum class Method : uint8_t {
  kOther,
  kGet,
  kHead,
  kPost,
  kPut,
  kDelete,
  kConnect,
  kOptions,
  kTrace,
  kPatch
};
std::string_view methodName(Method m);  // "GET"; "" for kOther
Method methodFromToken(std::string_view token);

enum class Version : uint8_t { kHttp10, kHttp11 };

/// How the body of a message is delimited (RFC 9112 §6.3).
enum class BodyKind : uint8_t {
  kNone,           // no body: a request without Content-Length or Transfer-Encoding,
                   // Content-Length: 0, 1xx/204/304, a response to HEAD
  kContentLength,  // exactly content_length bytes
  kChunked,        // chunked transfer coding; trailers follow the last chunk
  kUntilClose,     // a response read until the connection closes (caller calls finish())
  kTunnel,         // 101 or a 2xx answer to CONNECT: the bytes after the head are not HTTP
};

/// What the proxy needs to know about a message once its head is parsed. Every view points
/// into the parser's buffer and is valid only during Sink::onHeadersComplete().
struct MessageHead {
  Method method = Method::kOther;  // request: its method; response: the method it answers
  std::string_view method_token;   // request only: the method as sent
  std::string_view target;         // request only
  Version version = Version::kHttp11;
  uint16_t status = 0;      // response only
  std::string_view reason;  // response only
  std::optional<uint64_t> content_length;
  bool chunked = false;  // Transfer-Encoding: chunked (the only coding accepted)
  BodyKind body = BodyKind::kNone;
  // Whether the connection may carry another message after this one: HTTP/1.1 unless
  // "Connection: close", HTTP/1.0 only with "Connection: keep-alive" (and no close); never
  // after a close-delimited body or a tunnel.
  bool keep_alive = false;
  bool expect_continue = false;  // HTTP/1.1 request with "Expect: 100-continue"
  // Request: HTTP/1.1 with an Upgrade field and the "upgrade" connection option.
  // Response: status 101.
  bool upgrade = false;
  std::string_view upgrade_protocol;  // the first Upgrade field's value, e.g. "websocket"
  std::string_view host;              // request: the Host value (empty when absent)
  bool has_host = false;              // request: a Host field came (its value may be empty)
};

/// Every way a message can be rejected: X(enum name, stable name, status for a request).
/// A bad response is answered 502 whatever its code (ParseError::status).
#define MESHGATE_HTTP1_ERRORS(X)                                                      \
  X(kBareCr, "bare_cr", 400)                                                          \
  X(kBareLf, "bare_lf", 400)                                                          \
  X(kInvalidMethod, "invalid_method", 400)                                            \
  X(kMethodTooLong, "method_too_long", 501)                                           \
  X(kInvalidRequestLine, "invalid_request_line", 400)                                 \
  X(kInvalidTarget, "invalid_target", 400)                                            \
  X(kUriTooLong, "uri_too_long", 414)                                                 \
  X(kInvalidVersion, "invalid_version", 400)                                          \
  X(kVersionNotSupported, "version_not_supported", 505)                               \
  X(kInvalidStatus, "invalid_status", 400)                                            \
  X(kInvalidReason, "invalid_reason", 400)                                            \
  X(kStatusLineTooLong, "status_line_too_long", 400)                                  \
  X(kObsFold, "obs_fold", 400)                                                        \
  X(kSpaceBeforeColon, "space_before_colon", 400)                                     \
  X(kInvalidFieldName, "invalid_field_name", 400)                                     \
  X(kInvalidFieldValue, "invalid_field_value", 400)                                   \
  X(kTooManyHeaders, "too_many_headers", 431)                                         \
  X(kHeadersTooLarge, "headers_too_large", 431)                                       \
  X(kMissingHost, "missing_host", 400)                                                \
  X(kDuplicateHost, "duplicate_host", 400)                                            \
  X(kInvalidHost, "invalid_host", 400)                                                \
  X(kInvalidContentLength, "invalid_content_length", 400)                             \
  X(kDuplicateContentLength, "duplicate_content_length", 400)                         \
  X(kContentLengthWithTransferEncoding, "content_length_with_transfer_encoding", 400) \
  X(kInvalidTransferEncoding, "invalid_transfer_encoding", 400)                       \
  X(kTransferEncodingInHttp10, "transfer_encoding_in_http10", 400)                    \
  X(kChunkedTwice, "chunked_twice", 400)                                              \
  X(kChunkedNotFinal, "chunked_not_final", 400)                                       \
  X(kUnsupportedTransferCoding, "unsupported_transfer_coding", 501)                   \
  X(kConnectWithBody, "connect_with_body", 400)                                       \
  X(kInvalidChunkSize, "invalid_chunk_size", 400)                                     \
  X(kInvalidChunkExtension, "invalid_chunk_extension", 400)                           \
  X(kChunkLineTooLong, "chunk_line_too_long", 400)                                    \
  X(kMissingChunkCrlf, "missing_chunk_crlf", 400)                                     \
  X(kBodyTooLarge, "body_too_large", 413)                                             \
  X(kIncompleteMessage, "incomplete_message", 400)                                    \
  X(kDataAfterEof, "data_after_eof", 400)

enum class ErrorCode : uint8_t {
#define MESHGATE_HTTP1_ERROR_ENUM(code, name, status) code,
  MESHGATE_HTTP1_ERRORS(MESHGATE_HTTP1_ERROR_ENUM)
#undef MESHGATE_HTTP1_ERROR_ENUM
};

std::string_view errorName(ErrorCode code);   // "bare_cr"
uint16_t requestErrorStatus(ErrorCode code);  // 400, 413, 414, 431, 501 or 505

struct ParseError {
  ErrorCode code = ErrorCode::kBareCr;
  uint16_t status = 400;  // what the proxy answers: requestErrorStatus(code), 502 for responses
  uint64_t offset = 0;    // stream offset (bytes since the parser was made) of the offending byte

  std::string_view name() const { return errorName(code); }
  bool operator==(const ParseError&) const = default;
};

/// For logs and the control plane: "http1 request: duplicate_content_length at byte 57".
Error toError(Mode mode, const ParseError& e);

/// Resource bounds; exceeding a head limit is 431 (414 for a request-line, 501 when the
/// method alone is that long), a body limit 413.
struct Limits {
  uint32_t max_start_line_bytes = 8192;    // request-line or status-line, CRLF included
  uint32_t max_header_count = 100;         // field lines of the header (or trailer) section
  uint32_t max_header_bytes = 32768;       // header (or trailer) section, CRLFs included
  uint32_t max_chunk_line_bytes = 4096;    // chunk size, extensions and CRLF
  std::optional<uint64_t> max_body_bytes;  // decoded body bytes per message; none = no limit
};

/// Receives what the parser recognises, in stream order. Views are valid only during the
/// call. Body spans point into the bytes being fed; a body may arrive in any number of
/// spans. Callbacks must not call back into the parser, except expectResponseTo().
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void onMessageBegin() {}
  virtual void onRequestLine(Method /*method*/, std::string_view /*method_token*/,
                             std::string_view /*target*/, Version /*version*/) {}
  virtual void onStatusLine(Version /*version*/, uint16_t /*status*/, std::string_view /*reason*/) {
  }
  virtual void onHeader(std::string_view /*name*/, std::string_view /*value*/) {}
  virtual void onHeadersComplete(const MessageHead& /*head*/) {}
  virtual void onBody(std::span<const char> /*data*/) {}
  // Trailer fields are passed on as sent: none of them (Content-Length, Host, ...) changes
  // framing or the head; a proxy that merges them into a head must filter them.
  virtual void onTrailer(std::string_view /*name*/, std::string_view /*value*/) {}
  virtual void onMessageComplete() {}
};

/// Why feed() returned.
enum class Progress : uint8_t {
  kNeedMore,  // every byte was consumed; feed more, or finish() at EOF
  // Request mode: a CONNECT or upgrade request just completed. The bytes from `consumed` on
  // are not parsed: they belong to a tunnel if the response accepts (2xx to CONNECT, 101),
  // else call resume() and feed them again.
  kAwaitingResponse,
  // Response mode: a 101 or a 2xx to CONNECT just completed; the bytes from `consumed` on,
  // and all later ones, belong to the tunnel. The parser is done.
  kTunnel,
  // pause() was called: the bytes from `consumed` on are not parsed yet. Call resume() and
  // feed them again to go on.
  kPaused,
};

struct Fed {
  size_t consumed = 0;
  Progress progress = Progress::kNeedMore;
};

class Parser {
 public:
  /// How many request methods expectResponseTo() can queue.
  static constexpr size_t kMaxPendingRequests = 32;

  Parser(Mode mode, Sink& sink, Limits limits = {});
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  /// Parses `data` (pipelined messages included), calling the sink as it goes. An error is
  /// final: the connection must be closed, and every later call returns the same error.
  /// (A std::string or std::string_view converts; a string literal would bring its NUL.)
  std::expected<Fed, ParseError> feed(std::span<const char> data);

  /// End of stream: completes a close-delimited response; an error when a message is cut
  /// short (kIncompleteMessage). Later feeds fail with kDataAfterEof.
  std::expected<void, ParseError> finish();

  /// Request mode, after Progress::kAwaitingResponse: the response declined the switch, so
  /// the next bytes are HTTP again. No effect in any other state.
  void resume();
  /// Stops feed() at the next step, with Progress::kPaused; callable from the sink (a
  /// proxy pauses in onMessageComplete() to serve pipelined requests one at a time, or in
  /// onHeadersComplete() to drop a response it will retry elsewhere). resume() undoes it.
  void pause() { paused_ = true; }

  /// Back to the state of a new parser for a new stream (errors, queued methods and pauses
  /// forgotten), keeping the memory it has: a proxy reuses one response parser for the
  /// exchanges of a client connection, whichever pooled upstream connection each one takes.
  void reset();

  /// Response mode: the method of the next request whose response is to come, in order.
  /// A response to HEAD has no body; a 2xx to CONNECT is a tunnel. With the queue empty a
  /// response is taken to answer a GET. False when kMaxPendingRequests are already queued.
  bool expectResponseTo(Method method);

  /// Stream offset of the next byte to be fed.
  uint64_t offset() const { return offset_; }

 private:
  enum class State : uint8_t;
  struct Slice {
    uint32_t pos = 0;
    uint32_t len = 0;
  };

  bool onIdleByte(char c, uint64_t at);
  bool lineTooLong(uint32_t budget);
  bool takeLine(const char*& p, const char* end, uint64_t p_at, uint32_t budget, bool& complete);
  bool parseRequestLine(std::string_view line);
  bool parseStatusLine(std::string_view line);
  bool parseFieldLine(std::string_view line, bool trailer);
  bool interpretHeader(std::string_view name, std::string_view value, uint64_t value_at);
  bool parseChunkLine(std::string_view line);
  bool finishHead(uint64_t at);
  bool headFraming(uint64_t at);
  void completeMessage();
  void resetMessage();
  std::string_view view(Slice s) const { return std::string_view(buf_.data() + s.pos, s.len); }
  Slice sliceOf(std::string_view v) const;
  bool reject(ErrorCode code, uint64_t at);

  const Mode mode_;
  Sink& sink_;
  const Limits limits_;
  State state_;
  ParseError error_;
  uint64_t offset_ = 0;  // stream offset of the next byte

  // The current line (the whole head until it is complete); grows to the largest head seen,
  // at most max_start_line_bytes + max_header_bytes.
  std::string buf_;
  size_t line_begin_ = 0;     // where the current line starts in buf_
  uint64_t line_offset_ = 0;  // stream offset of its first byte

  // The message being parsed.
  uint32_t section_bytes_ = 0;  // header or trailer section so far
  uint32_t field_count_ = 0;
  uint64_t remaining_ = 0;   // Content-Length body or chunk data left
  uint64_t body_bytes_ = 0;  // decoded body so far, for max_body_bytes
  Method method_ = Method::kOther;
  Version version_ = Version::kHttp11;
  uint16_t status_ = 0;
  Slice method_token_, target_, reason_, host_, upgrade_;
  std::optional<uint64_t> content_length_;
  bool has_host_ = false;
  bool has_upgrade_ = false;
  bool has_te_ = false;
  bool te_unsupported_ = false;
  bool te_last_chunked_ = false;
  uint8_t te_chunked_count_ = 0;
  bool conn_close_ = false;
  bool conn_keep_alive_ = false;
  bool conn_upgrade_ = false;
  bool expect_continue_ = false;
  BodyKind body_ = BodyKind::kNone;
  bool paused_ = false;       // pause(): feed() stops before the next step
  bool pause_after_ = false;  // request: CONNECT or upgrade; response: tunnel

  // Response mode: methods of requests awaiting their response (a ring).
  std::array<Method, kMaxPendingRequests> pending_{};
  size_t pending_head_ = 0;
  size_t pending_count_ = 0;
};

}  // namespace meshgate::http1
