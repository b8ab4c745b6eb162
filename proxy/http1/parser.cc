#include "proxy/http1/parser.h"

#include <algorithm>
#include <cstring>

#include "proxy/http1/grammar.h"

namespace meshgate::http1 {

// Lines (start line, field lines, chunk lines) are collected whole in buf_ and parsed once
// their CRLF has arrived, so a line split across feeds parses exactly like an unsplit one;
// body bytes are handed straight from the caller's span. Byte-level states are only the
// idle gap between messages and the CRLF after chunk data.
enum class Parser::State : uint8_t {
  kIdle,              // before a message
  kIdleCr,            // request mode: a CR of an empty line before the request-line
  kStartLine,         // request-line or status-line
  kFieldLine,         // header section
  kBody,              // Content-Length body: remaining_ bytes left
  kChunkLine,         // chunk size and extensions
  kChunkData,         // remaining_ bytes of chunk data left
  kChunkCr,           // the CR after chunk data
  kChunkLf,           // the LF after chunk data
  kTrailerLine,       // trailer section
  kUntilClose,        // close-delimited response body
  kAwaitingResponse,  // request mode: after CONNECT or an upgrade request, until resume()
  kTunnel,            // response mode: after 101 or a 2xx to CONNECT; final
  kEnd,               // after finish()
  kFailed,            // after an error; final
};

namespace {

using grammar::is;
using grammar::isDigit;
using grammar::isWs;
using grammar::kFieldChar;
using grammar::kTchar;
using grammar::kVchar;
using grammar::skipWs;
using grammar::tokenEnd;

constexpr uint16_t kBadGateway = 502;
constexpr size_t kInitialBufferBytes = 1024;

}  // namespace

std::string_view methodName(Method m) {
  switch (m) {
    case Method::kGet:
      return "GET";
    case Method::kHead:
      return "HEAD";
    case Method::kPost:
      return "POST";
    case Method::kPut:
      return "PUT";
    case Method::kDelete:
      return "DELETE";
    case Method::kConnect:
      return "CONNECT";
    case Method::kOptions:
      return "OPTIONS";
    case Method::kTrace:
      return "TRACE";
    case Method::kPatch:
      return "PATCH";
    case Method::kOther:
      break;
  }
  return "";
}

Method methodFromToken(std::string_view token) {
  for (Method m : {Method::kGet, Method::kHead, Method::kPost, Method::kPut, Method::kDelete,
                   Method::kConnect, Method::kOptions, Method::kTrace, Method::kPatch}) {
    if (token == methodName(m)) {
      return m;
    }
  }
  return Method::kOther;
}

std::string_view errorName(ErrorCode code) {
  switch (code) {
#define MESHGATE_HTTP1_ERROR_NAME(c, name, status) \
  case ErrorCode::c:                               \
    return name;
    MESHGATE_HTTP1_ERRORS(MESHGATE_HTTP1_ERROR_NAME)
#undef MESHGATE_HTTP1_ERROR_NAME
  }
  return "unknown";
}

uint16_t requestErrorStatus(ErrorCode code) {
  switch (code) {
#define MESHGATE_HTTP1_ERROR_STATUS(c, name, status) \
  case ErrorCode::c:                                 \
    return status;
    MESHGATE_HTTP1_ERRORS(MESHGATE_HTTP1_ERROR_STATUS)
#undef MESHGATE_HTTP1_ERROR_STATUS
  }
  return 400;
}

Error toError(Mode mode, const ParseError& e) {
  return Error{std::string(mode == Mode::kRequest ? "http1 request: " : "http1 response: ") +
                   std::string(e.name()) + " at byte " + std::to_string(e.offset) + " (" +
                   std::to_string(e.status) + ")",
               0};
}

Parser::Parser(Mode mode, Sink& sink, Limits limits)
    : mode_(mode), sink_(sink), limits_(limits), state_(State::kIdle) {}

bool Parser::expectResponseTo(Method method) {
  if (pending_count_ == pending_.size()) {
    return false;
  }
  pending_[(pending_head_ + pending_count_) % pending_.size()] = method;
  ++pending_count_;
  return true;
}

void Parser::reset() {
  resetMessage();
  state_ = State::kIdle;
  error_ = ParseError{};
  offset_ = 0;
  line_offset_ = 0;
  paused_ = false;
  pending_head_ = 0;
  pending_count_ = 0;
}

void Parser::resume() {
  paused_ = false;
  if (state_ == State::kAwaitingResponse) {
    state_ = State::kIdle;
  }
}

bool Parser::reject(ErrorCode code, uint64_t at) {
  error_ = ParseError{code, mode_ == Mode::kRequest ? requestErrorStatus(code) : kBadGateway, at};
  state_ = State::kFailed;
  return false;
}

Parser::Slice Parser::sliceOf(std::string_view v) const {
  return Slice{static_cast<uint32_t>(v.data() - buf_.data()), static_cast<uint32_t>(v.size())};
}

std::expected<Fed, ParseError> Parser::feed(std::span<const char> data) {
  const char* const begin = data.data();
  const char* const end = begin + data.size();
  const char* p = begin;
  const uint64_t base = offset_;
  auto at = [&](const char* q) { return base + static_cast<uint64_t>(q - begin); };
  auto stop = [&](Progress progress) -> std::expected<Fed, ParseError> {
    offset_ = at(p);
    return Fed{static_cast<size_t>(p - begin), progress};
  };
  auto failed = [&]() -> std::expected<Fed, ParseError> {
    offset_ = at(p);
    return std::unexpected(error_);
  };

  if (state_ == State::kEnd && p < end) {
    reject(ErrorCode::kDataAfterEof, offset_);
  }
  while (p < end) {
    if (paused_ && state_ != State::kFailed) {
      return stop(Progress::kPaused);
    }
    switch (state_) {
      case State::kIdle:
      case State::kIdleCr:
        if (!onIdleByte(*p, at(p))) {
          return failed();
        }
        if (state_ != State::kStartLine) {
          ++p;
        } else {
          line_offset_ = at(p);
        }
        break;

      case State::kStartLine:
      case State::kFieldLine:
      case State::kChunkLine:
      case State::kTrailerLine: {
        uint32_t budget = limits_.max_chunk_line_bytes;
        if (state_ == State::kStartLine) {
          budget = limits_.max_start_line_bytes;
        } else if (state_ != State::kChunkLine) {
          budget = limits_.max_header_bytes - section_bytes_;
        }
        bool complete = false;
        if (!takeLine(p, end, at(p), budget, complete)) {
          return failed();
        }
        if (!complete) {
          break;
        }
        const std::string_view line(buf_.data() + line_begin_, buf_.size() - line_begin_);
        const uint64_t next_line_at = at(p);
        bool ok = true;
        switch (state_) {
          case State::kStartLine:
            ok = mode_ == Mode::kRequest ? parseRequestLine(line) : parseStatusLine(line);
            if (ok) {
              state_ = State::kFieldLine;
            }
            break;
          case State::kFieldLine:
          case State::kTrailerLine: {
            const bool trailer = state_ == State::kTrailerLine;
            if (line.empty()) {
              ok = trailer ? (completeMessage(), true) : finishHead(next_line_at - 1);
              break;
            }
            if (++field_count_ > limits_.max_header_count) {
              ok = reject(ErrorCode::kTooManyHeaders, line_offset_);
              break;
            }
            section_bytes_ += static_cast<uint32_t>(line.size() + 2);
            ok = parseFieldLine(line, trailer);
            break;
          }
          case State::kChunkLine:
            ok = parseChunkLine(line);
            break;
          default:
            break;
        }
        if (!ok) {
          // Only CRLF ends a line, and no grammar here admits a CR elsewhere: a line holding
          // one fails, and the bare CR is what is reported.
          const void* cr = std::memchr(line.data(), '\r', line.size());
          if (cr != nullptr) {
            error_.code = ErrorCode::kBareCr;
            error_.status = mode_ == Mode::kRequest ? requestErrorStatus(error_.code) : kBadGateway;
            error_.offset = line_offset_ + (static_cast<const char*>(cr) - line.data());
          }
          return failed();
        }
        // The head stays in buf_ until it is complete; chunk and trailer lines do not.
        if (state_ == State::kFieldLine) {
          line_begin_ = buf_.size();
        } else {
          buf_.clear();
          line_begin_ = 0;
        }
        line_offset_ = next_line_at;
        break;
      }

      case State::kBody:
      case State::kChunkData: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, end - p));
        sink_.onBody(std::span<const char>(p, n));
        p += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          if (state_ == State::kBody) {
            completeMessage();
          } else {
            state_ = State::kChunkCr;
          }
        }
        break;
      }

      case State::kChunkCr:
        if (*p != '\r') {
          reject(*p == '\n' ? ErrorCode::kBareLf : ErrorCode::kMissingChunkCrlf, at(p));
          return failed();
        }
        ++p;
        state_ = State::kChunkLf;
        break;

      case State::kChunkLf:
        if (*p != '\n') {
          reject(ErrorCode::kBareCr, at(p) - 1);
          return failed();
        }
        ++p;
        state_ = State::kChunkLine;
        buf_.clear();
        line_begin_ = 0;
        line_offset_ = at(p);
        break;

      case State::kUntilClose: {
        size_t n = static_cast<size_t>(end - p);
        bool too_large = false;
        if (limits_.max_body_bytes && n > *limits_.max_body_bytes - body_bytes_) {
          n = static_cast<size_t>(*limits_.max_body_bytes - body_bytes_);
          too_large = true;
        }
        if (n > 0) {
          sink_.onBody(std::span<const char>(p, n));
        }
        p += n;
        body_bytes_ += n;
        if (too_large) {
          reject(ErrorCode::kBodyTooLarge, at(p));
          return failed();
        }
        break;
      }

      case State::kAwaitingResponse:
        return stop(Progress::kAwaitingResponse);
      case State::kTunnel:
        return stop(Progress::kTunnel);
      case State::kEnd:
      case State::kFailed:
        return failed();
    }
  }
  if (state_ == State::kFailed) {
    return failed();
  }
  return stop(state_ == State::kAwaitingResponse ? Progress::kAwaitingResponse
              : state_ == State::kTunnel         ? Progress::kTunnel
                                                 : Progress::kNeedMore);
}

std::expected<void, ParseError> Parser::finish() {
  switch (state_) {
    case State::kFailed:
      return std::unexpected(error_);
    case State::kUntilClose:
      sink_.onMessageComplete();
      resetMessage();
      break;
    case State::kIdle:
    case State::kAwaitingResponse:
    case State::kTunnel:
    case State::kEnd:
      break;
    default:
      reject(ErrorCode::kIncompleteMessage, offset_);
      return std::unexpected(error_);
  }
  state_ = State::kEnd;
  return {};
}

// Between messages. Request mode skips empty lines (RFC 9112 §2.2); any other byte starts a
// message and is left for the start line.
bool Parser::onIdleByte(char c, uint64_t at) {
  if (state_ == State::kIdleCr) {
    if (c != '\n') {
      return reject(ErrorCode::kBareCr, at - 1);
    }
    state_ = State::kIdle;
    return true;
  }
  if (mode_ == Mode::kRequest && c == '\r') {
    state_ = State::kIdleCr;
    return true;
  }
  if (mode_ == Mode::kRequest && c == '\n') {
    return reject(ErrorCode::kBareLf, at);
  }
  resetMessage();
  if (buf_.capacity() < kInitialBufferBytes) {
    buf_.reserve(kInitialBufferBytes);  // with the first message: a parser never fed costs none
  }
  state_ = State::kStartLine;
  sink_.onMessageBegin();
  return true;
}

// Moves the bytes of the current line from [p, end) into buf_. The line, CRLF included, may
// not exceed `budget` bytes. Once its LF arrives, `complete` is set and buf_ holds the line
// from line_begin_ without its CRLF.
bool Parser::takeLine(const char*& p, const char* end, uint64_t p_at, uint32_t budget,
                      bool& complete) {
  const char* lf = static_cast<const char*>(std::memchr(p, '\n', end - p));
  const size_t n = static_cast<size_t>((lf != nullptr ? lf : end) - p);
  const size_t have = buf_.size() - line_begin_;
  // Without its LF the line still needs at least one byte: it cannot fit once it holds
  // `budget` bytes, whether or not the LF has been seen.
  if (have + n + 1 > budget) {
    buf_.append(p, budget > have ? budget - have : 0);
    p += budget > have ? budget - have : 0;
    return lineTooLong(budget);
  }
  buf_.append(p, n);
  if (lf == nullptr) {
    p = end;
    return true;
  }
  p = lf + 1;
  if (buf_.size() == line_begin_ || buf_.back() != '\r') {
    return reject(ErrorCode::kBareLf, p_at + n);
  }
  buf_.pop_back();
  complete = true;
  return true;
}

// The line reached its budget without an LF. buf_ holds its first `budget` bytes.
bool Parser::lineTooLong(uint32_t budget) {
  const uint64_t at = line_offset_ + (budget > 0 ? budget - 1 : 0);
  switch (state_) {
    case State::kStartLine: {
      if (mode_ == Mode::kResponse) {
        return reject(ErrorCode::kStatusLineTooLong, at);
      }
      // Tell a long method (501) from a long target (414) by what the prefix holds.
      const std::string_view line(buf_.data() + line_begin_, buf_.size() - line_begin_);
      const size_t i = tokenEnd(line, 0);
      if (i == line.size()) {
        return reject(ErrorCode::kMethodTooLong, at);
      }
      if (i == 0 || line[i] != ' ') {
        return reject(ErrorCode::kInvalidMethod, line_offset_ + i);
      }
      return reject(ErrorCode::kUriTooLong, at);
    }
    case State::kChunkLine:
      return reject(ErrorCode::kChunkLineTooLong, at);
    default:
      return reject(ErrorCode::kHeadersTooLarge, at);
  }
}

// request-line = method SP request-target SP HTTP-version
bool Parser::parseRequestLine(std::string_view line) {
  const uint64_t at = line_offset_;
  const size_t method_end = tokenEnd(line, 0);
  if (method_end == line.size()) {
    return reject(ErrorCode::kInvalidRequestLine, at + line.size());
  }
  if (method_end == 0 || line[method_end] != ' ') {
    return reject(ErrorCode::kInvalidMethod, at + method_end);
  }
  const size_t last_sp = line.rfind(' ');
  if (last_sp == method_end) {
    return reject(ErrorCode::kInvalidRequestLine, at + line.size());
  }
  const std::string_view target = line.substr(method_end + 1, last_sp - method_end - 1);
  if (target.empty()) {
    return reject(ErrorCode::kInvalidTarget, at + method_end + 1);
  }
  for (size_t i = 0; i < target.size(); ++i) {
    if (!is(target[i], kVchar)) {
      return reject(ErrorCode::kInvalidTarget, at + method_end + 1 + i);
    }
  }
  const auto version = grammar::version(line.substr(last_sp + 1));
  if (!version) {
    return reject(version.error().code, at + last_sp + 1);
  }
  version_ = *version;
  const std::string_view token = line.substr(0, method_end);
  method_ = methodFromToken(token);
  if (!grammar::validTargetForm(method_, target)) {
    return reject(ErrorCode::kInvalidTarget, at + method_end + 1);
  }
  method_token_ = sliceOf(token);
  target_ = sliceOf(target);
  sink_.onRequestLine(method_, token, target, version_);
  return true;
}

// status-line = HTTP-version SP status-code SP [ reason-phrase ]; the last SP may be missing.
bool Parser::parseStatusLine(std::string_view line) {
  const uint64_t at = line_offset_;
  const size_t sp = std::min(line.find(' '), line.size());
  const auto version = grammar::version(line.substr(0, sp));
  if (!version) {
    return reject(version.error().code, at);
  }
  version_ = *version;
  const size_t code_at = sp + 1;
  if (line.size() < code_at + 3 || !isDigit(line[code_at]) || !isDigit(line[code_at + 1]) ||
      !isDigit(line[code_at + 2]) || (line.size() > code_at + 3 && line[code_at + 3] != ' ')) {
    return reject(ErrorCode::kInvalidStatus, at + std::min(code_at, line.size()));
  }
  status_ = static_cast<uint16_t>((line[code_at] - '0') * 100 + (line[code_at + 1] - '0') * 10 +
                                  (line[code_at + 2] - '0'));
  if (status_ < 100 || status_ > 599) {
    return reject(ErrorCode::kInvalidStatus, at + code_at);
  }
  const std::string_view reason = line.substr(std::min(code_at + 4, line.size()));
  for (size_t i = 0; i < reason.size(); ++i) {
    if (!is(reason[i], kFieldChar)) {
      return reject(ErrorCode::kInvalidReason, at + code_at + 4 + i);
    }
  }
  reason_ = sliceOf(reason);
  sink_.onStatusLine(version_, status_, reason);
  return true;
}

// field-line = field-name ":" OWS field-value OWS
bool Parser::parseFieldLine(std::string_view line, bool trailer) {
  const uint64_t at = line_offset_;
  if (isWs(line[0])) {
    return reject(ErrorCode::kObsFold, at);
  }
  const size_t colon = tokenEnd(line, 0);
  if (colon == line.size() || line[colon] != ':' || colon == 0) {
    if (colon < line.size() && isWs(line[colon])) {
      const size_t next = skipWs(line, colon);
      if (next < line.size() && line[next] == ':') {
        return reject(ErrorCode::kSpaceBeforeColon, at + colon);
      }
    }
    return reject(ErrorCode::kInvalidFieldName, at + colon);
  }
  size_t b = colon + 1;
  size_t e = line.size();
  if (const size_t bad = grammar::fieldValueEnd(line, b); bad != e) {
    return reject(ErrorCode::kInvalidFieldValue, at + bad);
  }
  b = skipWs(line, b);
  while (e > b && isWs(line[e - 1])) {
    --e;
  }
  const std::string_view name = line.substr(0, colon);
  const std::string_view value = line.substr(b, e - b);
  if (trailer) {
    sink_.onTrailer(name, value);
    return true;
  }
  if (!interpretHeader(name, value, at + b)) {
    return false;
  }
  sink_.onHeader(name, value);
  return true;
}

// The fields that decide framing, routing and the connection's fate.
bool Parser::interpretHeader(std::string_view name, std::string_view value, uint64_t at) {
  switch (name.size()) {
    case 4:
      if (mode_ == Mode::kRequest && grammar::iequals(name, "host")) {
        if (has_host_) {
          return reject(ErrorCode::kDuplicateHost, at);
        }
        if (!grammar::validAuthority(value, false)) {
          return reject(ErrorCode::kInvalidHost, at);
        }
        has_host_ = true;
        host_ = sliceOf(value);
      }
      return true;
    case 6:
      if (grammar::iequals(name, "expect")) {
        grammar::forEachListElement(value, [&](std::string_view e, size_t) {
          expect_continue_ |= grammar::iequals(e, "100-continue");
          return true;
        });
      }
      return true;
    case 7:
      if (!has_upgrade_ && grammar::iequals(name, "upgrade")) {
        has_upgrade_ = true;
        upgrade_ = sliceOf(value);
      }
      return true;
    case 10:
      if (grammar::iequals(name, "connection")) {
        grammar::forEachListElement(value, [&](std::string_view e, size_t) {
          conn_close_ |= grammar::iequals(e, "close");
          conn_keep_alive_ |= grammar::iequals(e, "keep-alive");
          conn_upgrade_ |= grammar::iequals(e, "upgrade");
          return true;
        });
      }
      return true;
    case 14:
      if (grammar::iequals(name, "content-length")) {
        if (content_length_) {
          return reject(ErrorCode::kDuplicateContentLength, at);
        }
        const auto length = grammar::contentLength(value);
        if (!length) {
          return reject(ErrorCode::kInvalidContentLength, at + length.error());
        }
        content_length_ = *length;
      }
      return true;
    case 17:
      if (grammar::iequals(name, "transfer-encoding")) {
        has_te_ = true;
        size_t bad = std::string_view::npos;
        grammar::forEachListElement(value, [&](std::string_view e, size_t pos) {
          if (e.empty() || tokenEnd(e, 0) != e.size()) {
            bad = pos;
            return false;
          }
          const bool chunked = grammar::iequals(e, "chunked");
          te_chunked_count_ += chunked && te_chunked_count_ < 2;
          te_unsupported_ |= !chunked;
          te_last_chunked_ = chunked;
          return true;
        });
        if (bad != std::string_view::npos) {
          return reject(ErrorCode::kInvalidTransferEncoding, at + bad);
        }
      }
      return true;
    default:
      return true;
  }
}

// The empty line ending the header section (its LF at `at`): decide the framing, report
// the head, and move on to the body.
bool Parser::finishHead(uint64_t at) {
  if (!headFraming(at)) {
    return false;
  }
  MessageHead head;
  head.method = method_;
  head.version = version_;
  head.content_length = content_length_;
  head.chunked = has_te_;
  head.body = body_;
  head.upgrade_protocol = view(upgrade_);
  if (mode_ == Mode::kRequest) {
    const bool v11 = version_ == Version::kHttp11;
    head.method_token = view(method_token_);
    head.target = view(target_);
    head.host = view(host_);
    head.has_host = has_host_;
    head.keep_alive = v11 ? !conn_close_ : conn_keep_alive_ && !conn_close_;
    head.expect_continue = v11 && expect_continue_;
    head.upgrade = v11 && has_upgrade_ && conn_upgrade_;
    pause_after_ = method_ == Method::kConnect || head.upgrade;
  } else {
    head.status = status_;
    head.reason = view(reason_);
    head.upgrade = status_ == 101;
    const bool delimited = body_ != BodyKind::kUntilClose && body_ != BodyKind::kTunnel;
    head.keep_alive =
        delimited &&
        (version_ == Version::kHttp11 ? !conn_close_ : conn_keep_alive_ && !conn_close_);
    pause_after_ = body_ == BodyKind::kTunnel;
  }
  sink_.onHeadersComplete(head);
  switch (body_) {
    case BodyKind::kContentLength:
      remaining_ = *content_length_;
      state_ = State::kBody;
      break;
    case BodyKind::kChunked:
      state_ = State::kChunkLine;
      break;
    case BodyKind::kUntilClose:
      state_ = State::kUntilClose;
      break;
    case BodyKind::kNone:
    case BodyKind::kTunnel:
      completeMessage();
      break;
  }
  return true;
}

// Checks the framing fields against each other, in a fixed order, and sets body_.
bool Parser::headFraming(uint64_t at) {
  if (has_te_ && version_ == Version::kHttp10) {
    return reject(ErrorCode::kTransferEncodingInHttp10, at);
  }
  if (has_te_ && content_length_) {
    return reject(ErrorCode::kContentLengthWithTransferEncoding, at);
  }
  if (te_chunked_count_ > 1) {
    return reject(ErrorCode::kChunkedTwice, at);
  }
  if (has_te_ && mode_ == Mode::kRequest && !te_last_chunked_) {
    return reject(ErrorCode::kChunkedNotFinal, at);
  }
  if (te_unsupported_) {
    return reject(ErrorCode::kUnsupportedTransferCoding, at);
  }
  // From here a Transfer-Encoding is exactly "chunked".
  const uint64_t length = content_length_.value_or(0);
  if (mode_ == Mode::kRequest) {
    if (version_ == Version::kHttp11 && !has_host_) {
      return reject(ErrorCode::kMissingHost, at);
    }
    if (method_ == Method::kConnect && (has_te_ || length > 0)) {
      return reject(ErrorCode::kConnectWithBody, at);
    }
    body_ = has_te_ ? BodyKind::kChunked : length > 0 ? BodyKind::kContentLength : BodyKind::kNone;
  } else {
    const bool interim = status_ < 200 && status_ != 101;
    method_ = pending_count_ > 0 ? pending_[pending_head_] : Method::kGet;
    if (!interim && pending_count_ > 0) {
      pending_head_ = (pending_head_ + 1) % pending_.size();
      --pending_count_;
    }
    if (status_ == 101 || (method_ == Method::kConnect && status_ / 100 == 2)) {
      body_ = BodyKind::kTunnel;
    } else if (interim || status_ == 204 || status_ == 304 || method_ == Method::kHead) {
      body_ = BodyKind::kNone;
    } else if (has_te_) {
      body_ = BodyKind::kChunked;
    } else if (content_length_) {
      body_ = length > 0 ? BodyKind::kContentLength : BodyKind::kNone;
    } else {
      body_ = BodyKind::kUntilClose;
    }
  }
  if (body_ == BodyKind::kContentLength && limits_.max_body_bytes &&
      length > *limits_.max_body_bytes) {
    return reject(ErrorCode::kBodyTooLarge, at);
  }
  return true;
}

// A chunk line: its size, or the end of the chunked body (size 0) and trailers next.
bool Parser::parseChunkLine(std::string_view line) {
  const uint64_t at = line_offset_;
  const auto parsed = grammar::chunkSize(line);
  if (!parsed) {
    return reject(parsed.error().code, at + parsed.error().index);
  }
  const uint64_t size = *parsed;
  if (size == 0) {
    state_ = State::kTrailerLine;
    section_bytes_ = 0;
    field_count_ = 0;
    return true;
  }
  if (limits_.max_body_bytes && size > *limits_.max_body_bytes - body_bytes_) {
    return reject(ErrorCode::kBodyTooLarge, at);
  }
  body_bytes_ = std::min(body_bytes_ + size, grammar::kMaxLength);  // both below 2^63
  remaining_ = size;
  state_ = State::kChunkData;
  return true;
}

void Parser::completeMessage() {
  const bool pause = pause_after_;
  sink_.onMessageComplete();
  resetMessage();
  state_ = !pause                    ? State::kIdle
           : mode_ == Mode::kRequest ? State::kAwaitingResponse
                                     : State::kTunnel;
}

void Parser::resetMessage() {
  buf_.clear();
  line_begin_ = 0;
  section_bytes_ = 0;
  field_count_ = 0;
  remaining_ = 0;
  body_bytes_ = 0;
  method_ = Method::kOther;
  version_ = Version::kHttp11;
  status_ = 0;
  method_token_ = target_ = reason_ = host_ = upgrade_ = Slice{};
  content_length_.reset();
  has_host_ = has_upgrade_ = has_te_ = te_unsupported_ = te_last_chunked_ = false;
  te_chunked_count_ = 0;
  conn_close_ = conn_keep_alive_ = conn_upgrade_ = expect_continue_ = false;
  body_ = BodyKind::kNone;
  pause_after_ = false;
}

}  // namespace meshgate::http1
