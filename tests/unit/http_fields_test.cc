// The field rules both protocols share: which fields are hop-by-hop, which state a
// client's address (an edge listener drops them), which are forwarded when a Connection
// field names them, which methods may be retried, and which paths hold a dot segment
// (refused with 400: routes match the raw path).
#include "proxy/server/http_fields.h"

#include <gtest/gtest.h>

#include <string>

namespace meshgate::proxy {
namespace {

TEST(HttpFields, HopByHopNamesInAnyCase) {
  for (std::string name : {"connection", "keep-alive", "proxy-connection", "te",
                           "transfer-encoding", "upgrade", "http2-settings"}) {
    EXPECT_TRUE(hopByHop(name)) << name;
    for (char& c : name) {
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    EXPECT_TRUE(hopByHop(name)) << name;
  }
}

TEST(HttpFields, OtherNamesAreEndToEnd) {
  // Same lengths as hop-by-hop names, prefixes and extensions of them, and the empty name.
  // Trailer announces end-to-end fields (RFC 9110 §6.6.2); RFC 2616 listed it, as "Trailers".
  for (const char* name :
       {"", "t", "tx", "tee", "trailer", "trailers", "upgrades", "connectio", "connections",
        "keep-alivf", "content-length", "transfer-encodinf", "proxy-connectiom", "http2-settingz",
        "host", "x-forwarded-for", "cookie", "ta", "et"}) {
    EXPECT_FALSE(hopByHop(name)) << name;
  }
}

TEST(HttpFields, ClientAddressFieldsInAnyCase) {
  for (const char* name :
       {"forwarded", "Forwarded", "FORWARDED", "x-real-ip", "X-Real-IP", "X-Client-IP",
        "True-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "X-Cluster-Client-IP"}) {
    EXPECT_TRUE(clientAddressField(name)) << name;
  }
  // X-Forwarded-For has rules of its own (appended or replaced); the rest are not these.
  for (const char* name :
       {"", "x-forwarded-for", "forwarde", "forwardedx", "x-real-ipv", "x-real-iq", "forwarder",
        "x-forwarded-host", "via", "x-client-iq", "true-client-iq", "cf-connecting-iq",
        "fastly-client-iq", "x-cluster-client-iq", "x-forwarded-proto"}) {
    EXPECT_FALSE(clientAddressField(name)) << name;
  }
}

TEST(HttpFields, FieldsNamedByConnectionAreDropped) {
  HeaderList fields = {{"Connection", "keep-alive, X-Secret"},
                       {"X-Secret", "1"},
                       {"Keep-Alive", "timeout=5"},
                       {"Content-Type", "text/plain"},
                       {"TE", "trailers"}};
  const HeaderList out = forwardableFields(std::move(fields), /*lower_case=*/true);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, "content-type");
  EXPECT_EQ(out[0].second, "text/plain");
}

// Content-Length is framing: a Connection field that names it cannot strip it, or the
// message would reach the next hop without its length.
TEST(HttpFields, ConnectionCannotStripContentLength) {
  HeaderList fields = {
      {"Connection", "Content-Length, x-other"}, {"Content-Length", "5"}, {"X-Other", "1"}};
  EXPECT_EQ(namedByConnection(fields), (std::vector<std::string>{"x-other"}));
  const HeaderList out = forwardableFields(std::move(fields), /*lower_case=*/false);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, "Content-Length");
  EXPECT_EQ(out[0].second, "5");
}

// A header section keeps Trailer, which announces the trailer fields; a trailer section
// drops it with the framing and hop-by-hop fields, which mean nothing after the body.
TEST(HttpFields, TrailerIsForwardedInTheHeadButNotInATrailerSection) {
  const HeaderList head = forwardableFields({{"Trailer", "grpc-status"}, {"TE", "trailers"}}, true);
  ASSERT_EQ(head.size(), 1u);
  EXPECT_EQ(head[0], (std::pair<std::string, std::string>{"trailer", "grpc-status"}));
  const HeaderList trailers = forwardableTrailers({{"Trailer", "x"},
                                                   {"Content-Length", "3"},
                                                   {"Transfer-Encoding", "chunked"},
                                                   {"grpc-status", "0"}},
                                                  true);
  ASSERT_EQ(trailers.size(), 1u);
  EXPECT_EQ(trailers[0].first, "grpc-status");
  for (const char* name : {"trailer", "Trailer", "content-length", "te", "connection"}) {
    EXPECT_FALSE(forwardableTrailer(name)) << name;
  }
  EXPECT_TRUE(forwardableTrailer("grpc-message"));
}

TEST(HttpFields, IdempotentMethods) {
  for (const char* m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    EXPECT_TRUE(idempotent(m)) << m;
  }
  for (const char* m : {"POST", "PATCH", "CONNECT", "get", "GETS", "", "DELET"}) {
    EXPECT_FALSE(idempotent(m)) << m;
  }
}

TEST(HttpFields, DotSegments) {
  for (const char* t :
       {"/.", "/..", "/./", "/../", "/a/./b", "/a/../b", "/a/.", "/a/..", "/%2e", "/%2E%2e",
        "/a/%2e%2E/b", "/.%2e/", "/%2e./x", "/a/..?q=1", "/a/.?", "//..", "a/.."}) {
    EXPECT_TRUE(hasDotSegment(t)) << t;
  }
  for (const char* t : {"",       "/",         "/a",    "/.a",    "/..a",   "/...",        "/a./b",
                        "/a../b", "/a/b.",     "/%2",   "/%2e%2", "/%2f..", "/%252e",      "/.../",
                        "/a?/..", "/a?x=/../", "/%2ex", "/....",  "/x.%2e", "/a/%2e%2e%2e"}) {
    EXPECT_FALSE(hasDotSegment(t)) << t;
  }
}

}  // namespace
}  // namespace meshgate::proxy
