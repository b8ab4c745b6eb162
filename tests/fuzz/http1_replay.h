// Feeds an input to an http1::Parser in pieces and records everything it reports as a list
// of strings, so that runs with different splits can be compared with ==. Shared by
// tests/unit/http1_parser_test.cc and tests/fuzz/http1_parser_fuzz.cc (builds with g++ and
// clang++). EventLog also checks the contract of the event order and of body sizes.
#pragma once

#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http1/parser.h"

namespace meshgate::http1::test {

// Printable form of bytes: \r, \n, \t, \\ and \xNN for the rest outside 0x20..0x7e.
inline std::string escaped(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c > 0x7e) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

inline std::string_view bodyKindName(BodyKind k) {
  switch (k) {
    case BodyKind::kNone:
      return "none";
    case BodyKind::kContentLength:
      return "length";
    case BodyKind::kChunked:
      return "chunked";
    case BodyKind::kUntilClose:
      return "close";
    case BodyKind::kTunnel:
      return "tunnel";
  }
  return "?";
}

inline std::string_view versionName(Version v) {
  return v == Version::kHttp11 ? "1.1" : "1.0";
}

// "head 1.1 GET / body=none keep-alive host=a" for a request; "head 1.1 200 answers=GET ..."
// for a response. Flags in a fixed order, only when set.
inline std::string describe(Mode mode, const MessageHead& h) {
  std::string s = "head ";
  s += versionName(h.version);
  if (mode == Mode::kRequest) {
    s += " " + std::string(h.method_token) + " " + std::string(h.target);
    if (h.method == Method::kOther) {
      s += " (other)";
    }
  } else {
    const std::string_view answers = methodName(h.method);
    s += " " + std::to_string(h.status) + " answers=" + std::string(answers);
  }
  s += " body=" + std::string(bodyKindName(h.body));
  if (h.content_length) {
    s += " cl=" + std::to_string(*h.content_length);
  }
  if (h.chunked) {
    s += " chunked";
  }
  if (h.keep_alive) {
    s += " keep-alive";
  }
  if (h.expect_continue) {
    s += " 100-continue";
  }
  if (h.upgrade) {
    s += " upgrade=" + std::string(h.upgrade_protocol);
  }
  if (h.has_host) {
    s += " host=" + std::string(h.host);  // "host=" for an empty Host
  }
  return s;
}

class EventLog : public Sink {
 public:
  EventLog(Mode mode, Limits limits) : mode_(mode), limits_(limits) {}

  std::vector<std::string> events;
  std::string violation;  // the first broken rule of the event contract, if any

  void note(std::string s) {
    body_open_ = false;
    events.push_back(std::move(s));
  }

  void onMessageBegin() override {
    expect(phase_ == Phase::kIdle, "begin inside a message");
    phase_ = Phase::kStartLine;
    body_bytes_ = 0;
    note("begin");
  }
  void onRequestLine(Method m, std::string_view token, std::string_view target,
                     Version v) override {
    expect(mode_ == Mode::kRequest && phase_ == Phase::kStartLine, "request line out of place");
    expect(methodFromToken(token) == m, "method enum disagrees with its token");
    phase_ = Phase::kHeaders;
    note("request " + std::string(token) + " " + std::string(target) + " " +
         std::string(versionName(v)));
  }
  void onStatusLine(Version v, uint16_t status, std::string_view reason) override {
    expect(mode_ == Mode::kResponse && phase_ == Phase::kStartLine, "status line out of place");
    expect(status >= 100 && status <= 599, "status out of range");
    phase_ = Phase::kHeaders;
    note("status " + std::string(versionName(v)) + " " + std::to_string(status) + " " +
         std::string(reason));
  }
  void onHeader(std::string_view name, std::string_view value) override {
    expect(phase_ == Phase::kHeaders, "header out of place");
    checkField(name, value);
    note("header " + std::string(name) + ": " + escaped(value));
  }
  void onHeadersComplete(const MessageHead& h) override {
    expect(phase_ == Phase::kHeaders, "head out of place");
    expect(h.body != BodyKind::kContentLength || (h.content_length && *h.content_length > 0),
           "length body without a positive Content-Length");
    expect(h.body != BodyKind::kChunked || h.chunked, "chunked body without chunked");
    phase_ = Phase::kBody;
    body_ = h.body;
    content_length_ = h.content_length.value_or(0);
    note(describe(mode_, h));
  }
  void onBody(std::span<const char> data) override {
    expect(phase_ == Phase::kBody, "body out of place");
    expect(!data.empty(), "empty body span");
    expect(body_ == BodyKind::kContentLength || body_ == BodyKind::kChunked ||
               body_ == BodyKind::kUntilClose,
           "body for a message without one");
    body_bytes_ += data.size();
    if (body_ == BodyKind::kContentLength) {
      expect(body_bytes_ <= content_length_, "more body than Content-Length");
    }
    if (limits_.max_body_bytes) {
      expect(body_bytes_ <= *limits_.max_body_bytes, "more body than max_body_bytes");
    }
    if (!body_open_) {
      events.push_back("body ");
    }
    events.back() += escaped(std::string_view(data.data(), data.size()));
    body_open_ = true;
  }
  void onTrailer(std::string_view name, std::string_view value) override {
    expect(phase_ == Phase::kBody && body_ == BodyKind::kChunked, "trailer out of place");
    checkField(name, value);
    note("trailer " + std::string(name) + ": " + escaped(value));
  }
  void onMessageComplete() override {
    expect(phase_ == Phase::kBody, "complete out of place");
    if (body_ == BodyKind::kContentLength) {
      expect(body_bytes_ == content_length_, "Content-Length body cut short");
    }
    phase_ = Phase::kIdle;
    note("complete");
  }

 private:
  enum class Phase { kIdle, kStartLine, kHeaders, kBody };

  void expect(bool ok, const char* rule) {
    if (!ok && violation.empty()) {
      violation = rule;
    }
  }
  void checkField(std::string_view name, std::string_view value) {
    expect(!name.empty(), "empty field name");
    for (char c : value) {
      expect(c != '\r' && c != '\n' && c != '\0', "CR, LF or NUL in a field value");
    }
    expect(value.empty() || (value.front() != ' ' && value.back() != ' '), "untrimmed value");
  }

  const Mode mode_;
  const Limits limits_;
  Phase phase_ = Phase::kIdle;
  BodyKind body_ = BodyKind::kNone;
  uint64_t content_length_ = 0;
  uint64_t body_bytes_ = 0;
  bool body_open_ = false;
};

struct ReplayOptions {
  Mode mode = Mode::kRequest;
  Limits limits;
  std::vector<Method> answers;  // response mode: queued with expectResponseTo()
  bool eof = false;             // call finish() after the last byte
  bool resume = false;          // request mode: resume() after kAwaitingResponse
};

struct Replay {
  std::vector<std::string> events;  // ends with "error ..." when the parser rejected the input
  std::string violation;
};

// Feeds `input` in pieces that end at each offset in `cuts` (ascending, inside the input)
// and at its end. After kTunnel, or kAwaitingResponse without `resume`, the bytes the parser
// left are recorded as "rest ..." and feeding stops.
inline Replay replay(const ReplayOptions& opts, std::string_view input,
                     std::span<const size_t> cuts) {
  EventLog log(opts.mode, opts.limits);
  Parser parser(opts.mode, log, opts.limits);
  for (Method m : opts.answers) {
    parser.expectResponseTo(m);
  }
  auto errorEvent = [&](const ParseError& e) {
    log.note("error " + std::string(e.name()) + " " + std::to_string(e.status) + " @" +
             std::to_string(e.offset));
  };
  size_t from = 0;
  bool stopped = false;
  for (size_t i = 0; i <= cuts.size() && !stopped; ++i) {
    const size_t to = i < cuts.size() ? cuts[i] : input.size();
    while (from < to) {
      auto fed = parser.feed(input.substr(from, to - from));
      if (!fed) {
        errorEvent(fed.error());
        return {std::move(log.events), std::move(log.violation)};
      }
      from += fed->consumed;
      if (fed->progress == Progress::kNeedMore) {
        continue;
      }
      const bool await = fed->progress == Progress::kAwaitingResponse;
      log.note(std::string(await ? "await" : "tunnel") + " @" + std::to_string(parser.offset()));
      if (await && opts.resume) {
        parser.resume();
        log.note("resume");
        continue;
      }
      log.note("rest " + escaped(input.substr(from)));
      stopped = true;
      break;
    }
  }
  if (opts.eof && !stopped) {
    if (auto done = parser.finish(); !done) {
      errorEvent(done.error());
    } else {
      log.note("eof");
    }
  }
  return {std::move(log.events), std::move(log.violation)};
}

}  // namespace meshgate::http1::test
