// Proves that the HTTP/1.1 parser reports the same events and the same error for every input
// whether it arrives whole, split in two at any byte offset, or one byte at a time; that it
// frames bodies, pipelining, keep-alive, upgrades and tunnels as RFC 9112 says; and that it
// rejects each smuggling vector and limit breach with its own error code and status.
#include <gtest/gtest.h>

#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "proxy/http1/parser.h"
#include "tests/fuzz/http1_replay.h"

namespace meshgate::http1 {
namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;
using test::Replay;
using test::ReplayOptions;

constexpr Mode kReq = Mode::kRequest;
constexpr Mode kResp = Mode::kResponse;

// Replays `input` whole, split in two at every offset, and one byte at a time; every run must
// match the whole one and keep the event contract. Returns the whole run.
Replay replayAllSplits(const ReplayOptions& opts, std::string_view input) {
  const Replay whole = test::replay(opts, input, {});
  EXPECT_EQ(whole.violation, "") << "event contract broken, input fed whole";
  for (size_t cut = 1; cut < input.size(); ++cut) {
    const size_t cuts[] = {cut};
    const Replay split = test::replay(opts, input, cuts);
    if (split.events != whole.events || !split.violation.empty()) {
      ADD_FAILURE() << "split at byte " << cut << " differs from the whole feed";
      EXPECT_EQ(split.events, whole.events) << "split at byte " << cut;
      EXPECT_EQ(split.violation, "") << "split at byte " << cut;
      return whole;
    }
  }
  std::vector<size_t> every(input.empty() ? 0 : input.size() - 1);
  std::iota(every.begin(), every.end(), size_t{1});
  const Replay bytes = test::replay(opts, input, every);
  EXPECT_EQ(bytes.events, whole.events) << "one byte at a time differs from the whole feed";
  EXPECT_EQ(bytes.violation, "") << "event contract broken, one byte at a time";
  return whole;
}

// ---- inputs that parse -------------------------------------------------------------------

struct Case {
  std::string name;
  Mode mode = kReq;
  std::string input;
  std::vector<std::string> want;
  Limits limits{};
  std::vector<Method> answers{};
  bool eof = false;
  bool resume = false;
};

const std::string kChunkedPost =
    "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
const std::string kChunkedPostHead = "head 1.1 POST /up body=chunked chunked keep-alive host=a";
const std::vector<std::string> kChunkedPostEvents = {
    "begin", "request POST /up 1.1", "header Host: a", "header Transfer-Encoding: chunked",
    kChunkedPostHead};

std::vector<std::string> chunkedPost(std::vector<std::string> rest) {
  std::vector<std::string> v = kChunkedPostEvents;
  v.insert(v.end(), rest.begin(), rest.end());
  return v;
}

std::vector<Case> validCases() {
  return {
      {.name = "GetWithHeaders",
       .input = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.0\r\n"
                "Accept: */*\r\n\r\n",
       .want = {"begin", "request GET /index.html?q=1 1.1", "header Host: example.com",
                "header User-Agent: curl/8.0", "header Accept: */*",
                "head 1.1 GET /index.html?q=1 body=none keep-alive host=example.com", "complete"}},
      {.name = "PostWithContentLengthBody",
       .input = "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
       .want = {"begin", "request POST /submit 1.1", "header Host: a", "header Content-Length: 11",
                "head 1.1 POST /submit body=length cl=11 keep-alive host=a", "body hello world",
                "complete"}},
      {.name = "ChunkedWithExtensionsAndTrailers",
       .input = kChunkedPost + "5;name=value\r\nhello\r\n6 ; q=\"a \\\"b\" ;x\r\n world\r\n"
                               "0;last\r\nX-Checksum: abc\r\nX-Other:  1 \r\n\r\n",
       .want = chunkedPost(
           {"body hello world", "trailer X-Checksum: abc", "trailer X-Other: 1", "complete"})},
      {.name = "ChunkedWithoutTrailersAndUpperCaseHex",
       .input = kChunkedPost + "A\r\n0123456789\r\n0\r\n\r\n",
       .want = chunkedPost({"body 0123456789", "complete"})},
      {.name = "ThreePipelinedRequests",
       .input = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab"
                "GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
       .want = {"begin", "request GET /1 1.1", "header Host: a",
                "head 1.1 GET /1 body=none keep-alive host=a", "complete", "begin",
                "request POST /2 1.1", "header Host: a", "header Content-Length: 2",
                "head 1.1 POST /2 body=length cl=2 keep-alive host=a", "body ab", "complete",
                "begin", "request GET /3 1.1", "header Host: a", "header Connection: close",
                "head 1.1 GET /3 body=none host=a", "complete"}},
      {.name = "EmptyHostIsAHost",  // RFC 9112 §3.2: valid, and not the same as none
       .input = "GET / HTTP/1.1\r\nHost:\r\n\r\n",
       .want = {"begin", "request GET / 1.1",
                "header Host: ", "head 1.1 GET / body=none keep-alive host=", "complete"}},
      {.name = "Http10DefaultsToClose",
       .input = "GET / HTTP/1.0\r\n\r\n",
       .want = {"begin", "request GET / 1.0", "head 1.0 GET / body=none", "complete"}},
      {.name = "Http10KeepAliveTokenKeepsConnection",
       .input = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
       .want = {"begin", "request GET / 1.0", "header Connection: Keep-Alive",
                "head 1.0 GET / body=none keep-alive", "complete"}},
      {.name = "Http10CloseBeatsKeepAlive",
       .input = "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
       .want = {"begin", "request GET / 1.0", "header Connection: keep-alive",
                "header Connection: close", "head 1.0 GET / body=none", "complete"}},
      {.name = "Http11CloseTokenInCommaList",
       .input = "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, , CLOSE \r\n\r\n",
       .want = {"begin", "request GET / 1.1", "header Host: a", "header Connection: foo, , CLOSE",
                "head 1.1 GET / body=none host=a", "complete"}},
      {.name = "ExpectContinue",
       .input =
           "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\nabc",
       .want = {"begin", "request PUT /f 1.1", "header Host: a", "header Expect: 100-Continue",
                "header Content-Length: 3",
                "head 1.1 PUT /f body=length cl=3 keep-alive 100-continue host=a", "body abc",
                "complete"}},
      {.name = "ExpectContinueIgnoredInHttp10",
       .input = "PUT /f HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
       .want = {"begin", "request PUT /f 1.0", "header Expect: 100-continue",
                "head 1.0 PUT /f body=none", "complete"}},
      {.name = "UpgradeWebsocketPausesBeforeFrames",
       .input = "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                "\x81\x05hello",
       .want = {"begin", "request GET /chat 1.1", "header Host: a", "header Upgrade: websocket",
                "header Connection: Upgrade",
                "head 1.1 GET /chat body=none keep-alive upgrade=websocket host=a", "complete",
                "await @72", "rest \\x81\\x05hello"}},
      {.name = "DeclinedUpgradeResumesHttp",
       .input = "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n"
                "GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
       .want = {"begin", "request GET /chat 1.1", "header Host: a", "header Upgrade: h2c",
                "header Connection: upgrade",
                "head 1.1 GET /chat body=none keep-alive upgrade=h2c host=a", "complete",
                "await @66", "resume", "begin", "request GET /next 1.1", "header Host: a",
                "head 1.1 GET /next body=none keep-alive host=a", "complete"},
       .resume = true},
      {.name = "UpgradeWithoutConnectionOptionIsPlainRequest",
       .input = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\n",
       .want = {"begin", "request GET / 1.1", "header Host: a", "header Upgrade: websocket",
                "head 1.1 GET / body=none keep-alive host=a", "complete", "begin",
                "request GET / 1.1"}},
      {.name = "ConnectPausesBeforeTunnelBytes",
       .input = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01",
       .want = {"begin", "request CONNECT example.com:443 1.1", "header Host: example.com:443",
                "head 1.1 CONNECT example.com:443 body=none keep-alive host=example.com:443",
                "complete", "await @59", "rest \\x16\\x03\\x01"}},
      {.name = "LeadingEmptyLinesSkipped",
       .input = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
       .want = {"begin", "request GET / 1.1", "header Host: a",
                "head 1.1 GET / body=none keep-alive host=a", "complete"}},
      {.name = "AsteriskAbsoluteAndIpv6Targets",
       .input = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"
                "GET http://a/x?y HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
       .want = {"begin", "request OPTIONS * 1.1", "header Host: a",
                "head 1.1 OPTIONS * body=none keep-alive host=a", "complete", "begin",
                "request GET http://a/x?y 1.1", "header Host: [::1]:8080",
                "head 1.1 GET http://a/x?y body=none keep-alive host=[::1]:8080", "complete"}},
      {.name = "NamesCaseInsensitiveValuesTrimmed",
       .input = "POST / HTTP/1.1\r\nHOST:a\r\ncOnTeNt-LeNgTh:\t 2 \t\r\nX-Empty:\r\n"
                "X-Obs: caf\xc3\xa9 au\tlait\r\n\r\nhi",
       .want = {"begin", "request POST / 1.1", "header HOST: a", "header cOnTeNt-LeNgTh: 2",
                "header X-Empty: ", "header X-Obs: caf\\xc3\\xa9 au\\tlait",
                "head 1.1 POST / body=length cl=2 keep-alive host=a", "body hi", "complete"}},
      {.name = "UnknownMethodIsOther",
       .input = "PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n",
       .want = {"begin", "request PURGE /x 1.1", "header Host: a",
                "head 1.1 PURGE /x (other) body=none keep-alive host=a", "complete"}},
      {.name = "LargestContentLengthAccepted",
       .input = "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 009223372036854775807\r\n\r\nx",
       .want = {"begin", "request PUT / 1.1", "header Host: a",
                "header Content-Length: 009223372036854775807",
                "head 1.1 PUT / body=length cl=9223372036854775807 keep-alive host=a", "body x"}},
      {.name = "LargestChunkSizeAccepted",
       .input = kChunkedPost + "7fffffffffffffff\r\nab",
       .want = chunkedPost({"body ab"})},
      {.name = "IncompleteHeadWaitsForMore",
       .input = "GET / HTTP/1.1\r\nHost: a\r\nAcc",
       .want = {"begin", "request GET / 1.1", "header Host: a"}},

      // Responses.
      {.name = "HeadResponseHasNoBody",
       .mode = kResp,
       .input = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
       .want = {"begin", "status 1.1 200 OK", "header Content-Length: 1234",
                "head 1.1 200 answers=HEAD body=none cl=1234 keep-alive", "complete", "begin",
                "status 1.1 200 OK", "header Content-Length: 2",
                "head 1.1 200 answers=GET body=length cl=2 keep-alive", "body ok", "complete"},
       .answers = {Method::kHead, Method::kGet}},
      {.name = "NoContentAndNotModifiedHaveNoBody",
       .mode = kResp,
       .input = "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n"
                "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
       .want = {"begin", "status 1.1 204 No Content",
                "head 1.1 204 answers=GET body=none keep-alive", "complete", "begin",
                "status 1.1 304 Not Modified", "header Content-Length: 10",
                "head 1.1 304 answers=GET body=none cl=10 keep-alive", "complete", "begin",
                "status 1.1 200 OK", "header Content-Length: 0",
                "head 1.1 200 answers=GET body=none cl=0 keep-alive", "complete"}},
      {.name = "InterimResponsesPrecedeFinal",
       .mode = kResp,
       .input = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n",
       .want = {"begin",
                "status 1.1 100 Continue",
                "head 1.1 100 answers=PUT body=none keep-alive",
                "complete",
                "begin",
                "status 1.1 103 Early Hints",
                "header Link: </s.css>",
                "head 1.1 103 answers=PUT body=none keep-alive",
                "complete",
                "begin",
                "status 1.1 200 OK",
                "header Content-Length: 1",
                "head 1.1 200 answers=PUT body=length cl=1 keep-alive",
                "body x",
                "complete",
                "begin",
                "status 1.1 200 OK",
                "header Content-Length: 1",
                "head 1.1 200 answers=HEAD body=none cl=1 keep-alive",
                "complete"},
       .answers = {Method::kPut, Method::kHead}},
      {.name = "SwitchingProtocolsStartsTunnel",
       .mode = kResp,
       .input = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "\r\n\x81\x02hi",
       .want = {"begin", "status 1.1 101 Switching Protocols", "header Upgrade: websocket",
                "header Connection: Upgrade",
                "head 1.1 101 answers=GET body=tunnel upgrade=websocket", "complete", "tunnel @77",
                "rest \\x81\\x02hi"}},
      {.name = "ConnectEstablishedStartsTunnel",
       .mode = kResp,
       .input = "HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03",
       .want = {"begin", "status 1.1 200 Connection Established",
                "head 1.1 200 answers=CONNECT body=tunnel", "complete", "tunnel @39",
                "rest \\x16\\x03"},
       .answers = {Method::kConnect}},
      {.name = "RefusedConnectHasBody",
       .mode = kResp,
       .input = "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\nno",
       .want = {"begin", "status 1.1 407 Proxy Auth", "header Content-Length: 2",
                "head 1.1 407 answers=CONNECT body=length cl=2 keep-alive", "body no", "complete"},
       .answers = {Method::kConnect}},
      {.name = "CloseDelimitedResponseEndsAtEof",
       .mode = kResp,
       .input = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstream until close",
       .want = {"begin", "status 1.1 200 OK", "header Content-Type: text/plain",
                "head 1.1 200 answers=GET body=close", "body stream until close", "complete",
                "eof"},
       .eof = true},
      {.name = "ChunkedResponseWithTrailer",
       .mode = kResp,
       .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n"
                "Server-Timing: db;dur=53\r\n\r\n",
       .want = {"begin", "status 1.1 200 OK", "header Transfer-Encoding: Chunked",
                "head 1.1 200 answers=GET body=chunked chunked keep-alive", "body abc",
                "trailer Server-Timing: db;dur=53", "complete", "eof"},
       .eof = true},
      {.name = "Http10ResponseKeepAliveAndStatusWithoutReason",
       .mode = kResp,
       .input = "HTTP/1.0 200\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"
                "HTTP/1.1 404 \r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
       .want = {"begin", "status 1.0 200 ", "header Connection: keep-alive",
                "header Content-Length: 1", "head 1.0 200 answers=GET body=length cl=1 keep-alive",
                "body x", "complete", "begin", "status 1.1 404 ", "header Content-Length: 0",
                "header Connection: close", "head 1.1 404 answers=GET body=none cl=0", "complete"}},

      // Limits, at the limit exactly (one byte more fails: see the rejection table).
      {.name = "StartLineAtLimit",
       .input = "GET /aaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n",  // 32 bytes with CRLF
       .want = {"begin", "request GET /aaaaaaaaaaaaaaaa 1.1", "header Host: a",
                "head 1.1 GET /aaaaaaaaaaaaaaaa body=none keep-alive host=a", "complete"},
       .limits = {.max_start_line_bytes = 32}},
      {.name = "HeaderCountAtLimit",
       .input = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n",
       .want = {"begin", "request GET / 1.1", "header Host: a", "header A: 1", "header B: 2",
                "head 1.1 GET / body=none keep-alive host=a", "complete"},
       .limits = {.max_header_count = 3}},
      {.name = "HeaderBytesAtLimit",
       .input = "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789\r\n\r\n",  // section: 9+15+2
       .want = {"begin", "request GET / 1.1", "header Host: a", "header X: 0123456789",
                "head 1.1 GET / body=none keep-alive host=a", "complete"},
       .limits = {.max_header_bytes = 26}},
      {.name = "ChunkLineAtLimit",
       .input = kChunkedPost + "2;a=bc\r\nhi\r\n0\r\n\r\n",  // "2;a=bc\r\n" is 8 bytes
       .want = chunkedPost({"body hi", "complete"}),
       .limits = {.max_chunk_line_bytes = 8}},
      {.name = "BodyAtLimit",
       .input = kChunkedPost + "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n",
       .want = chunkedPost({"body abcd", "complete"}),
       .limits = {.max_body_bytes = 4}},
  };
}

class Http1Parses : public ::testing::TestWithParam<Case> {};

TEST_P(Http1Parses, SameEventsWholeSplitAndByteByByte) {
  const Case& c = GetParam();
  const ReplayOptions opts{c.mode, c.limits, c.answers, c.eof, c.resume};
  const Replay got = replayAllSplits(opts, c.input);
  EXPECT_EQ(got.events, c.want) << "events for " << c.name;
}

INSTANTIATE_TEST_SUITE_P(Valid, Http1Parses, ::testing::ValuesIn(validCases()),
                         [](const auto& info) { return info.param.name; });

// ---- inputs that must be rejected --------------------------------------------------------

// Where the error is expected: at a marker's first byte plus delta, at the LF ending the
// head, at the body's start plus delta, or at the end of the input.
struct Where {
  enum Kind { kMarker, kHeadEnd, kBody, kEnd } kind = kMarker;
  std::string marker;
  size_t delta = 0;

  size_t resolve(const std::string& input) const {
    switch (kind) {
      case kMarker:
        return input.find(marker) + delta;
      case kHeadEnd:
        return input.find("\r\n\r\n") + 3;
      case kBody:
        return input.find("\r\n\r\n") + 4 + delta;
      case kEnd:
        break;
    }
    return input.size();
  }
};
Where at(std::string marker, size_t delta = 0) {
  return {Where::kMarker, std::move(marker), delta};
}
const Where kHeadEnd{Where::kHeadEnd};
const Where kEnd{Where::kEnd};
Where body(size_t delta) {
  return {Where::kBody, "", delta};
}

struct BadCase {
  std::string name;
  Mode mode;
  std::string input;
  ErrorCode code;
  uint16_t status;
  Where where;
  Limits limits{};
  std::vector<Method> answers{};
  bool eof = false;
};

std::string get(std::string fields) {
  return "GET / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n";
}
std::string post(std::string fields, std::string rest = "") {
  return "POST / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n" + rest;
}
std::string chunked(std::string body) {
  return kChunkedPost + body;
}

using E = ErrorCode;

std::vector<BadCase> badCases() {
  return {
      // Content-Length and Transfer-Encoding.
      {"ContentLengthWithTransferEncoding", kReq,
       post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
       E::kContentLengthWithTransferEncoding, 400, kHeadEnd},
      {"TransferEncodingWithContentLength", kReq,
       post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"),
       E::kContentLengthWithTransferEncoding, 400, kHeadEnd},
      {"ResponseWithContentLengthAndTransferEncoding", kResp,
       "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       E::kContentLengthWithTransferEncoding, 502, kHeadEnd},
      {"DuplicateContentLengthEqualValues", kReq,
       post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), E::kDuplicateContentLength, 400,
       at("5\r\n\r\n")},
      {"DuplicateContentLengthDifferentValues", kReq,
       post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), E::kDuplicateContentLength,
       400, at("6\r\n")},
      {"ContentLengthNotDigits", kReq, post("Content-Length: 12a\r\n"), E::kInvalidContentLength,
       400, at("12a", 2)},
      {"ContentLengthWithPlusSign", kReq, post("Content-Length: +5\r\n"), E::kInvalidContentLength,
       400, at("+5")},
      {"ContentLengthNegative", kReq, post("Content-Length: -1\r\n"), E::kInvalidContentLength, 400,
       at("-1")},
      {"ContentLengthEmpty", kReq, post("Content-Length: \r\n"), E::kInvalidContentLength, 400,
       at("\r\n\r\n")},
      {"ContentLengthOverflow", kReq, post("Content-Length: 99999999999999999999\r\n"),
       E::kInvalidContentLength, 400, at("99999", 18)},
      {"ContentLengthOf2To63", kReq, post("Content-Length: 9223372036854775808\r\n"),
       E::kInvalidContentLength, 400, at("92233", 18)},
      {"ContentLengthCommaList", kReq, post("Content-Length: 5, 5\r\n", "hello"),
       E::kInvalidContentLength, 400, at(", 5")},
      {"ContentLengthInnerSpace", kReq, post("Content-Length: 1 2\r\n"), E::kInvalidContentLength,
       400, at(" 2\r\n")},
      {"ChunkedNotFinalInRequest", kReq, post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"),
       E::kChunkedNotFinal, 400, kHeadEnd},
      {"OnlyGzipInRequest", kReq, post("Transfer-Encoding: gzip\r\n"), E::kChunkedNotFinal, 400,
       kHeadEnd},
      {"CodingOtherThanChunked", kReq, post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
       E::kUnsupportedTransferCoding, 501, kHeadEnd},
      {"CodingOtherThanChunkedInResponse", kResp,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz", E::kUnsupportedTransferCoding, 502,
       kHeadEnd},
      {"ChunkedTwiceInOneField", kReq, post("Transfer-Encoding: chunked, chunked\r\n"),
       E::kChunkedTwice, 400, kHeadEnd},
      {"ChunkedTwiceAcrossFields", kReq,
       post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), E::kChunkedTwice, 400,
       kHeadEnd},
      {"TransferEncodingEmptyElement", kReq, post("Transfer-Encoding: chunked,\r\n"),
       E::kInvalidTransferEncoding, 400, at(",\r\n", 1)},
      {"TransferEncodingEmpty", kReq, post("Transfer-Encoding: \r\n"), E::kInvalidTransferEncoding,
       400, at("\r\n\r\n")},
      {"TransferEncodingWithParameter", kReq, post("Transfer-Encoding: chunked;q=1\r\n"),
       E::kInvalidTransferEncoding, 400, at("chunked;")},
      {"TransferEncodingInHttp10", kReq,
       "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       E::kTransferEncodingInHttp10, 400, kHeadEnd},
      {"ConnectWithBody", kReq,
       "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 5\r\n\r\nhello",
       E::kConnectWithBody, 400, kHeadEnd},

      // Chunk framing.
      {"ChunkSizeEmpty", kReq, chunked("\r\nhello\r\n0\r\n\r\n"), E::kInvalidChunkSize, 400,
       body(0)},
      {"ChunkSizeNotHex", kReq, chunked("g\r\n"), E::kInvalidChunkSize, 400, body(0)},
      {"ChunkSizeOf2To63", kReq, chunked("8000000000000000\r\n"), E::kInvalidChunkSize, 400,
       body(15)},
      {"ChunkSizeOverflowWithLeadingZeros", kReq, chunked("0ffffffffffffffff\r\n"),
       E::kInvalidChunkSize, 400, body(16)},
      {"ChunkSizeLeadingSpace", kReq, chunked(" 5\r\nhello\r\n0\r\n\r\n"), E::kInvalidChunkSize,
       400, body(0)},
      {"ChunkSizePlusSign", kReq, chunked("+5\r\nhello\r\n0\r\n\r\n"), E::kInvalidChunkSize, 400,
       body(0)},
      {"ChunkSizeMinusSign", kReq, chunked("-5\r\nhello\r\n0\r\n\r\n"), E::kInvalidChunkSize, 400,
       body(0)},
      {"ChunkSizeHexPrefix", kReq, chunked("0x5\r\nhello\r\n0\r\n\r\n"), E::kInvalidChunkSize, 400,
       body(1)},
      {"ChunkSizeTrailingSpace", kReq, chunked("5 \r\nhello\r\n0\r\n\r\n"), E::kInvalidChunkSize,
       400, body(2)},
      {"ChunkExtensionWithoutName", kReq, chunked("5;\r\nhello\r\n"), E::kInvalidChunkExtension,
       400, body(2)},
      {"ChunkExtensionWithoutValue", kReq, chunked("5;a=\r\nhello\r\n"), E::kInvalidChunkExtension,
       400, body(4)},
      {"ChunkExtensionUnterminatedQuote", kReq, chunked("5;a=\"x\r\nhello\r\n"),
       E::kInvalidChunkExtension, 400, body(6)},
      {"ChunkExtensionCtlInQuote", kReq, chunked("5;a=\"\x01\"\r\nhello\r\n"),
       E::kInvalidChunkExtension, 400, body(5)},
      {"ChunkExtensionTrailingGarbage", kReq, chunked("5;a=b c\r\nhello\r\n"),
       E::kInvalidChunkExtension, 400, body(6)},
      {"ChunkDataLongerThanSize", kReq, chunked("5\r\nhelloX\r\n0\r\n\r\n"), E::kMissingChunkCrlf,
       400, body(8)},
      {"BareLfAfterChunkData", kReq, chunked("5\r\nhello\n0\r\n\r\n"), E::kBareLf, 400, body(8)},
      {"BareCrAfterChunkData", kReq, chunked("5\r\nhello\rX0\r\n\r\n"), E::kBareCr, 400, body(8)},
      {"BareLfEndsChunkLine", kReq, chunked("5\nhello\r\n0\r\n\r\n"), E::kBareLf, 400, body(1)},
      {"BareCrInChunkLine", kReq, chunked("5\r;a\r\nhello\r\n"), E::kBareCr, 400, body(1)},
      {"BareLfEndsLastChunk", kReq, chunked("0\n\r\n"), E::kBareLf, 400, body(1)},
      {"ObsFoldInTrailer", kReq, chunked("0\r\nA: b\r\n c\r\n\r\n"), E::kObsFold, 400,
       at(" c\r\n")},

      // Field lines.
      {"ObsFold", kReq, get("X-A: b\r\n folded\r\n"), E::kObsFold, 400, at(" folded")},
      {"ObsFoldWithTab", kReq, get("X-A: b\r\n\tfolded\r\n"), E::kObsFold, 400, at("\tfolded")},
      {"WhitespaceBeforeFirstField", kReq, "GET / HTTP/1.1\r\n Host: a\r\n\r\n", E::kObsFold, 400,
       at(" Host")},
      {"SpaceBeforeColon", kReq, get("Content-Length : 5\r\n"), E::kSpaceBeforeColon, 400,
       at(" : 5")},
      {"TabBeforeColon", kReq, get("Transfer-Encoding\t: chunked\r\n"), E::kSpaceBeforeColon, 400,
       at("\t:")},
      {"NonTokenFieldName", kReq, get("X(Y): z\r\n"), E::kInvalidFieldName, 400, at("(Y")},
      {"EmptyFieldName", kReq, get(": z\r\n"), E::kInvalidFieldName, 400, at(": z")},
      {"FieldLineWithoutColon", kReq, get("NoColon\r\n"), E::kInvalidFieldName, 400,
       at("\r\n\r\n")},
      {"SpaceInsideFieldName", kReq, get("X Y: z\r\n"), E::kInvalidFieldName, 400, at(" Y:")},
      {"CtlInFieldValue", kReq, get("X: a\x01z\r\n"), E::kInvalidFieldValue, 400, at("\x01")},
      {"DelInFieldValue", kReq, get("X: a\x7fz\r\n"), E::kInvalidFieldValue, 400, at("\x7f")},
      {"NulInFieldValue", kReq, get("X: a\0z\r\n"s), E::kInvalidFieldValue, 400, at("\0z"s)},
      {"BareCrInFieldValue", kReq, get("X: a\rb\r\n"), E::kBareCr, 400, at("\rb")},
      {"BareLfEndsField", kReq, "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", E::kBareLf, 400,
       at("\nX")},
      {"BareLfEndsHead", kReq, "GET / HTTP/1.1\r\nHost: a\r\n\n", E::kBareLf, 400, at("\n\n", 1)},
      {"BareCrEndsHead", kReq, "GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n", E::kBareCr, 400, at("\rX")},

      // Request line.
      {"BareLfEndsRequestLine", kReq, "GET / HTTP/1.1\nHost: a\r\n\r\n", E::kBareLf, 400, at("\n")},
      {"BareCrInRequestLine", kReq, "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", E::kBareCr, 400,
       at("\r")},
      {"BareLfBeforeRequestLine", kReq, "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", E::kBareLf, 400,
       at("\n")},
      {"BareCrBeforeRequestLine", kReq, "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", E::kBareCr, 400,
       at("\r")},
      {"InvalidMethodToken", kReq, "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", E::kInvalidMethod, 400,
       at("(")},
      {"EmptyMethod", kReq, " / HTTP/1.1\r\nHost: a\r\n\r\n", E::kInvalidMethod, 400, at(" ")},
      {"TabAfterMethod", kReq, "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", E::kInvalidMethod, 400,
       at("\t")},
      {"SpaceInTarget", kReq, "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", E::kInvalidTarget, 400,
       at(" b")},
      {"CtlInTarget", kReq, "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", E::kInvalidTarget, 400,
       at("\x01")},
      {"DelInTarget", kReq, "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", E::kInvalidTarget, 400,
       at("\x7f")},
      {"NonAsciiInTarget", kReq, "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", E::kInvalidTarget,
       400, at("\xc3")},
      {"DoubleSpaceAfterMethod", kReq, "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", E::kInvalidTarget, 400,
       at(" /")},
      {"RelativeTarget", kReq, "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n", E::kInvalidTarget, 400,
       at("index")},
      {"AsteriskTargetForGet", kReq, "GET * HTTP/1.1\r\nHost: a\r\n\r\n", E::kInvalidTarget, 400,
       at("*")},
      {"ConnectWithoutPort", kReq, "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n",
       E::kInvalidTarget, 400, at("example")},
      {"ConnectWithOriginForm", kReq, "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", E::kInvalidTarget,
       400, at("/x")},
      {"MissingVersion", kReq, "GET /\r\nHost: a\r\n\r\n", E::kInvalidRequestLine, 400, at("\r\n")},
      {"MethodOnly", kReq, "GET\r\nHost: a\r\n\r\n", E::kInvalidRequestLine, 400, at("\r\n")},
      {"Http20Request", kReq, "GET / HTTP/2.0\r\nHost: a\r\n\r\n", E::kVersionNotSupported, 505,
       at("HTTP")},
      {"Http12Request", kReq, "GET / HTTP/1.2\r\nHost: a\r\n\r\n", E::kVersionNotSupported, 505,
       at("HTTP")},
      {"Http09Request", kReq, "GET / HTTP/0.9\r\n\r\n", E::kVersionNotSupported, 505, at("HTTP")},
      {"LowerCaseVersion", kReq, "GET / http/1.1\r\nHost: a\r\n\r\n", E::kInvalidVersion, 400,
       at("http")},
      {"ThreeDigitVersion", kReq, "GET / HTTP/1.10\r\nHost: a\r\n\r\n", E::kInvalidVersion, 400,
       at("HTTP")},

      // Host.
      {"MissingHostInHttp11", kReq, "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", E::kMissingHost, 400,
       kHeadEnd},
      {"DuplicateHost", kReq, get("Host: b\r\n"), E::kDuplicateHost, 400, at("b\r\n")},
      {"HostWithSpace", kReq, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", E::kInvalidHost, 400,
       at("a b")},
      {"HostWithUserinfo", kReq, "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", E::kInvalidHost, 400,
       at("u@a")},
      {"HostWithBadPort", kReq, "GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", E::kInvalidHost, 400,
       at("a:")},

      // Status line.
      {"StatusTwoDigits", kResp, "HTTP/1.1 20 OK\r\n\r\n", E::kInvalidStatus, 502, at("20")},
      {"StatusFourDigits", kResp, "HTTP/1.1 2000 OK\r\n\r\n", E::kInvalidStatus, 502, at("2000")},
      {"StatusNotDigits", kResp, "HTTP/1.1 2x0 OK\r\n\r\n", E::kInvalidStatus, 502, at("2x0")},
      {"StatusBelow100", kResp, "HTTP/1.1 099 Odd\r\n\r\n", E::kInvalidStatus, 502, at("099")},
      {"StatusMissing", kResp, "HTTP/1.1\r\n\r\n", E::kInvalidStatus, 502, at("\r\n")},
      {"ResponseVersion20", kResp, "HTTP/2.0 200 OK\r\n\r\n", E::kVersionNotSupported, 502,
       at("HTTP")},
      {"CtlInReason", kResp, "HTTP/1.1 200 O\x01K\r\n\r\n", E::kInvalidReason, 502, at("\x01")},
      {"BareLfEndsStatusLine", kResp, "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", E::kBareLf, 502,
       at("\n")},

      // Limits, one byte over.
      {"RequestTargetOverLimit",
       kReq,
       "GET /aaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n",
       E::kUriTooLong,
       414,
       at("\r\n", 0),
       {.max_start_line_bytes = 32}},
      {"MethodOverLimit",
       kReq,
       std::string(40, 'A') + " / HTTP/1.1\r\n\r\n",
       E::kMethodTooLong,
       501,
       at("A", 31),
       {.max_start_line_bytes = 32}},
      {"DefaultStartLineLimit", kReq, "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n",
       E::kUriTooLong, 414, at("GET", 8191)},
      {"StatusLineOverLimit",
       kResp,
       "HTTP/1.1 200 " + std::string(40, 'k') + "\r\n\r\n",
       E::kStatusLineTooLong,
       502,
       at("HTTP", 31),
       {.max_start_line_bytes = 32}},
      {"HeaderCountOverLimit",
       kReq,
       get("A: 1\r\nB: 2\r\nC: 3\r\n"),
       E::kTooManyHeaders,
       431,
       at("C: 3"),
       {.max_header_count = 3}},
      {"HeaderBytesOverLimit",
       kReq,
       get("X: 01234567890\r\n"),
       E::kHeadersTooLarge,
       431,
       at("\r\n\r\n", 2),
       {.max_header_bytes = 26}},
      {"TrailerCountOverLimit",
       kReq,
       chunked("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
       E::kTooManyHeaders,
       431,
       at("C: 3"),
       {.max_header_count = 2}},
      {"ChunkLineOverLimit",
       kReq,
       chunked("2;a=bcd\r\nhi\r\n0\r\n\r\n"),
       E::kChunkLineTooLong,
       400,
       body(7),
       {.max_chunk_line_bytes = 8}},
      {"ContentLengthOverBodyLimit",
       kReq,
       post("Content-Length: 5\r\n", "hello"),
       E::kBodyTooLarge,
       413,
       kHeadEnd,
       {.max_body_bytes = 4}},
      {"ChunkedOverBodyLimit",
       kReq,
       chunked("2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
       E::kBodyTooLarge,
       413,
       body(7),
       {.max_body_bytes = 4}},
      {"CloseDelimitedOverBodyLimit",
       kResp,
       "HTTP/1.1 200 OK\r\n\r\nabcde",
       E::kBodyTooLarge,
       502,
       body(4),
       {.max_body_bytes = 4}},

      // End of stream.
      {"EofInsideBody",
       kReq,
       post("Content-Length: 5\r\n", "ab"),
       E::kIncompleteMessage,
       400,
       kEnd,
       {},
       {},
       true},
      {"EofInsideHead",
       kReq,
       "GET / HTTP/1.1\r\nHost",
       E::kIncompleteMessage,
       400,
       kEnd,
       {},
       {},
       true},
      {"EofInsideChunkedResponse",
       kResp,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5",
       E::kIncompleteMessage,
       502,
       kEnd,
       {},
       {},
       true},
  };
}

class Http1Rejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(Http1Rejects, SameErrorWholeSplitAndByteByByte) {
  const BadCase& c = GetParam();
  const ReplayOptions opts{c.mode, c.limits, c.answers, c.eof, false};
  const Replay got = replayAllSplits(opts, c.input);
  ASSERT_FALSE(got.events.empty()) << "no events for " << c.name;
  const std::string want = "error " + std::string(errorName(c.code)) + " " +
                           std::to_string(c.status) + " @" +
                           std::to_string(c.where.resolve(c.input));
  EXPECT_EQ(got.events.back(), want) << "error for " << c.name;
  EXPECT_EQ(requestErrorStatus(c.code), c.mode == kReq ? c.status : requestErrorStatus(c.code))
      << "status table for " << c.name;
}

INSTANTIATE_TEST_SUITE_P(Hostile, Http1Rejects, ::testing::ValuesIn(badCases()),
                         [](const auto& info) { return info.param.name; });

// ---- API contract ------------------------------------------------------------------------

class NullSink : public Sink {};

TEST(Http1Parser, ErrorIsFinalAndRepeated) {
  NullSink sink;
  Parser parser(kReq, sink);
  auto first = parser.feed("GET / HTTP/1.1\r\nHost : a\r\n\r\n"sv);
  ASSERT_FALSE(first.has_value()) << "space before colon must fail";
  auto again = parser.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n"sv);
  ASSERT_FALSE(again.has_value()) << "a failed parser must stay failed";
  EXPECT_EQ(again.error(), first.error()) << "the same error every time";
  auto done = parser.finish();
  ASSERT_FALSE(done.has_value()) << "finish() after an error fails";
  EXPECT_EQ(done.error(), first.error()) << "finish() repeats the error";
}

TEST(Http1Parser, DataAfterEofIsRejected) {
  NullSink sink;
  Parser parser(kReq, sink);
  ASSERT_TRUE(parser.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n"sv).has_value()) << "valid request";
  ASSERT_TRUE(parser.finish().has_value()) << "EOF between messages is clean";
  auto late = parser.feed("GET"sv);
  ASSERT_FALSE(late.has_value()) << "bytes after EOF";
  EXPECT_EQ(late.error().code, ErrorCode::kDataAfterEof) << "error code";
  EXPECT_EQ(late.error().offset, 27u) << "offset of the first byte after EOF";
}

TEST(Http1Parser, TunnelConsumesNothingFurther) {
  NullSink sink;
  Parser parser(kResp, sink);
  auto fed = parser.feed("HTTP/1.1 101 Switching Protocols\r\n\r\nxyz"sv);
  ASSERT_TRUE(fed.has_value()) << "101 parses";
  EXPECT_EQ(fed->progress, Progress::kTunnel) << "101 switches to a tunnel";
  EXPECT_EQ(fed->consumed, 36u) << "the head only";
  auto more = parser.feed("xyz"sv);
  ASSERT_TRUE(more.has_value()) << "feeding a tunnel is no error";
  EXPECT_EQ(more->consumed, 0u) << "tunnel bytes are the caller's";
  EXPECT_EQ(more->progress, Progress::kTunnel) << "still a tunnel";
}

// A proxy serves pipelined requests one at a time: it pauses in onMessageComplete() and
// resumes once the response is out.
class PausingSink : public Sink {
 public:
  Parser* parser = nullptr;
  int completed = 0;
  void onMessageComplete() override {
    completed++;
    parser->pause();
  }
};

TEST(Http1Parser, PauseStopsAtTheMessageBoundaryAndResumeGoesOn) {
  PausingSink sink;
  Parser parser(kReq, sink);
  sink.parser = &parser;
  const std::string two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
  auto fed = parser.feed(std::string_view(two));
  ASSERT_TRUE(fed.has_value()) << "valid requests";
  EXPECT_EQ(fed->progress, Progress::kPaused) << "stopped after the first request";
  EXPECT_EQ(fed->consumed, two.size() / 2) << "exactly the first request consumed";
  EXPECT_EQ(sink.completed, 1) << "one request completed";
  auto again = parser.feed(std::string_view(two).substr(fed->consumed));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->consumed, 0u) << "a paused parser takes nothing";
  parser.resume();
  auto rest = parser.feed(std::string_view(two).substr(fed->consumed));
  ASSERT_TRUE(rest.has_value());
  EXPECT_EQ(rest->consumed, two.size() / 2) << "the second request after resume()";
  EXPECT_EQ(sink.completed, 2);
}

TEST(Http1Parser, ResponseMethodQueueIsBounded) {
  NullSink sink;
  Parser parser(kResp, sink);
  for (size_t i = 0; i < Parser::kMaxPendingRequests; ++i) {
    ASSERT_TRUE(parser.expectResponseTo(Method::kGet)) << "queue slot " << i;
  }
  EXPECT_FALSE(parser.expectResponseTo(Method::kGet)) << "queue full";
}

// The proxy keeps one response parser per client connection and resets it for each
// upstream attempt: reset() must forget everything a previous exchange left behind.
class BodyCountingSink : public Sink {
 public:
  size_t body_bytes = 0;
  int completed = 0;
  void onBody(std::span<const char> data) override { body_bytes += data.size(); }
  void onMessageComplete() override { completed++; }
};

TEST(Http1Parser, ResetForgetsErrorsPausesAndQueuedMethods) {
  BodyCountingSink sink;
  Parser parser(kResp, sink);
  ASSERT_TRUE(parser.expectResponseTo(Method::kHead));
  ASSERT_FALSE(parser.feed("HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\n"sv).has_value())
      << "a failed exchange";
  parser.pause();
  parser.reset();
  ASSERT_TRUE(parser.expectResponseTo(Method::kGet));
  const std::string_view ok = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  auto fed = parser.feed(ok);
  ASSERT_TRUE(fed.has_value()) << "the error is forgotten";
  EXPECT_EQ(fed->consumed, ok.size()) << "not paused";
  EXPECT_EQ(sink.body_bytes, 3u) << "answers the GET queued after reset, not the HEAD before";
  EXPECT_EQ(sink.completed, 1);
  EXPECT_EQ(parser.offset(), ok.size()) << "offsets count from the reset";

  // Reset in the middle of a message (an attempt abandoned for a retry).
  parser.reset();
  ASSERT_TRUE(parser.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"sv).has_value());
  parser.reset();
  auto fresh = parser.feed(ok);
  ASSERT_TRUE(fresh.has_value()) << "a new status line, not the old body";
  EXPECT_EQ(sink.completed, 2);
}

TEST(Http1Parser, ErrorNamesAreUniqueAndStatusesKnown) {
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(ErrorCode::kDataAfterEof); ++i) {
    const auto code = static_cast<ErrorCode>(i);
    const std::string_view name = errorName(code);
    EXPECT_FALSE(name.empty()) << "error " << i << " has a name";
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
    const uint16_t status = requestErrorStatus(code);
    EXPECT_TRUE(status == 400 || status == 413 || status == 414 || status == 431 || status == 501 ||
                status == 505)
        << name << " maps to " << status;
  }
  EXPECT_EQ(errorName(ErrorCode::kDuplicateContentLength), "duplicate_content_length")
      << "names are stable";
}

TEST(Http1Parser, ToErrorSaysWhatAndWhere) {
  const ParseError e{ErrorCode::kBareLf, 400, 17};
  EXPECT_EQ(toError(kReq, e).message, "http1 request: bare_lf at byte 17 (400)")
      << "message for logs";
}

TEST(Http1Parser, MethodNamesRoundTrip) {
  for (Method m : {Method::kGet, Method::kHead, Method::kPost, Method::kPut, Method::kDelete,
                   Method::kConnect, Method::kOptions, Method::kTrace, Method::kPatch}) {
    EXPECT_EQ(methodFromToken(methodName(m)), m) << methodName(m);
  }
  EXPECT_EQ(methodFromToken("get"), Method::kOther) << "methods are case-sensitive";
}

}  // namespace
}  // namespace meshgate::http1
