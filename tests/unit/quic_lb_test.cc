// Proves that the QUIC-LB codec reproduces every draft-21 test vector (errata corrected) and
// round-trips random CIDs of every allowed length with and without a key, that invalid configs
// and unroutable CIDs fail with errors a load balancer can tell apart, and that
// `meshgatectl quic-lb` encodes and decodes the same way from the command line.
#include "meshgate/quic_lb.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "tests/lib/process.h"

namespace meshgate::quiclb {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Bytes = std::vector<uint8_t>;

// A copy of ../shared/data/quic-lb-vectors.json (the draft's test vectors) kept in the repo,
// so the test does not depend on where shared/ sits.
constexpr const char* kVectorsPath = "tests/data/quic-lb-vectors.json";
constexpr std::array<uint8_t, kKeyLen> kKey = {0x8f, 0x95, 0xf0, 0x92, 0x45, 0x76, 0x5f, 0x80,
                                               0x25, 0x69, 0x34, 0xe5, 0x0c, 0x66, 0x20, 0x7f};
constexpr uint32_t kSeed = 0x51c1b;  // fixed: a failing round trip reproduces exactly

fs::path testBinaryDir() {
  return fs::read_symlink("/proc/self/exe").parent_path();
}

// The first ancestor of the test binary's directory (the repo root) holding kVectorsPath.
Result<json> loadVectors() {
  std::error_code ec;
  for (fs::path dir = testBinaryDir(); !dir.empty(); dir = dir.parent_path()) {
    const fs::path candidate = dir / kVectorsPath;
    if (fs::is_regular_file(candidate, ec)) {
      std::ifstream in(candidate);
      json doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (doc.is_discarded() || !doc.contains("vectors")) {
        return fail(candidate.string() + ": not valid JSON with a 'vectors' array");
      }
      return doc;
    }
    if (dir == dir.root_path()) {
      break;
    }
  }
  return fail(std::string("test vectors not found: no ancestor of ") + testBinaryDir().string() +
              " holds " + kVectorsPath);
}

const Result<json>& vectors() {
  static const Result<json> doc = loadVectors();
  return doc;
}

Bytes hex(const std::string& text) {
  auto bytes = parseHex(text);
  EXPECT_TRUE(bytes.has_value()) << "bad hex in test data '" << text << "'";
  return bytes.value_or(Bytes{});
}

// A vector's or negative case's config; key null means plaintext.
QuicLbConfig configOf(const json& v, bool self_encoded_length) {
  std::optional<std::array<uint8_t, kKeyLen>> key;
  if (v.contains("key") && v["key"].is_string()) {
    const Bytes k = hex(v["key"].get<std::string>());
    EXPECT_EQ(k.size(), kKeyLen) << "key length in test data";
    key.emplace();
    std::copy_n(k.begin(), std::min(k.size(), kKeyLen), key->begin());
  }
  return QuicLbConfig{v.value("cr_bits", uint8_t{0}), v.value("sid_len", uint8_t{0}),
                      v.value("nonce_len", uint8_t{0}), key, self_encoded_length};
}

QuicLbConfig mustMake(uint8_t cr, uint8_t sid_len, uint8_t nonce_len, bool keyed = false,
                      bool self_encoded_length = false) {
  auto config = QuicLbConfig::make(cr, sid_len, nonce_len,
                                   keyed ? std::optional(kKey) : std::nullopt, self_encoded_length);
  EXPECT_TRUE(config.has_value()) << "config rejected: " << config.error().message;
  return config.value_or(QuicLbConfig{});
}

TEST(QuicLbVectors, EncodesAndDecodesEveryDraftVectorWithErrataCorrected) {
  const auto& doc = vectors();
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  ASSERT_GE((*doc)["vectors"].size(), 7u) << "expected P1, P2, E1-E4 and the worked example";
  for (const json& v : (*doc)["vectors"]) {
    SCOPED_TRACE(v.value("id", "?"));
    // "In all cases, the server is configured to encode the CID length."
    const QuicLbConfig config = configOf(v, /*self_encoded_length=*/true);
    const Bytes sid = hex(v["server_id"]), nonce = hex(v["nonce"]), cid = hex(v["cid"]);
    auto encoded = encode(config, sid, nonce);
    ASSERT_TRUE(encoded.has_value()) << "encode failed: " << encoded.error().message;
    EXPECT_EQ(toHex(*encoded), toHex(cid)) << "encoded CID differs from the vector";
    auto decoded = decode(config, cid);
    ASSERT_TRUE(decoded.has_value()) << "decode failed: " << decoded.error().message;
    EXPECT_EQ(toHex(*decoded), toHex(sid)) << "decoded server ID differs from the vector";
  }
}

TEST(QuicLbVectors, AsPrintedErroneousVectorsDoNotDecodeToTheirServerId) {
  const auto& doc = vectors();
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  int errata = 0;
  for (const json& v : (*doc)["vectors"]) {
    if (!v.contains("as_printed_in_draft")) {
      continue;
    }
    SCOPED_TRACE(v.value("id", "?"));
    errata++;
    const json& printed = v["as_printed_in_draft"];
    if (printed.contains("nonce")) {
      EXPECT_FALSE(parseHex(printed["nonce"].get<std::string>()).has_value())
          << "the printed nonce has an odd digit count and must not parse";
    }
    const Bytes printed_cid = hex(printed["cid"]);
    auto strict = decode(configOf(v, true), printed_cid);
    EXPECT_FALSE(strict.has_value())
        << "printed CID decoded with the row's config to " << toHex(strict.value_or(Bytes{}));
    auto lenient = decode(configOf(v, false), printed_cid);
    EXPECT_FALSE(lenient.has_value() && *lenient == hex(v["server_id"]))
        << "printed CID yields the server ID although its first octet is wrong";
  }
  EXPECT_EQ(errata, 2) << "the reference corrects exactly P2 and E4";

  // E4 as printed was generated with config rotation 0: under cr 0 it decodes.
  QuicLbConfig e4 = mustMake(0, 9, 9, true, true);
  auto sid = decode(e4, hex("125779c9cc86beb3a3a4a3ca96fce4bfe0cdbc"));
  ASSERT_TRUE(sid.has_value()) << "E4 as printed under cr 0: " << sid.error().message;
  EXPECT_EQ(toHex(*sid), "ed793a51d49b8f5fab") << "E4 server ID under cr 0";
}

TEST(QuicLbVectors, LegacyDraft18FourPassCidsDoNotDecodeButSinglePassOnesDo) {
  const auto& doc = vectors();
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  const json& legacy = (*doc)["legacy_vectors_draft15_to_18"];
  ASSERT_TRUE(legacy.contains("vectors")) << "legacy vectors missing from the JSON";
  for (json v : legacy["vectors"]) {
    v["key"] = legacy["key"];
    const QuicLbConfig config = configOf(v, true);
    SCOPED_TRACE("legacy sid_len " + std::to_string(config.server_id_len));
    auto sid = decode(config, hex(v["cid"]));
    ASSERT_TRUE(sid.has_value()) << "legacy CID must still be routable: " << sid.error().message;
    if (config.algorithm() == Algorithm::kSinglePass) {
      EXPECT_EQ(toHex(*sid), v["server_id"]) << "single pass did not change in draft -19";
    } else {
      EXPECT_NE(toHex(*sid), v["server_id"]) << "four-pass must use the -19 expand() layout";
    }
  }
}

TEST(QuicLbVectors, NegativeCasesFromTheReferenceAreUnroutableOrRoutableAsStated) {
  const auto& doc = vectors();
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  const json& cases = (*doc)["negative_cases"]["cases"];
  ASSERT_GE(cases.size(), 4u) << "negative cases missing from the JSON";
  for (const json& c : cases) {
    const std::string expect = c.value("expect", "");
    SCOPED_TRACE(expect);
    // The cases do not self-encode the length (one has first octet 0x00 and is routable).
    auto sid = decode(configOf(c["config"], false), hex(c["cid"]));
    const std::string routable = "routable, sid=";
    if (expect.starts_with(routable)) {
      ASSERT_TRUE(sid.has_value()) << "expected routable: " << sid.error().message;
      const std::string rest = expect.substr(routable.size());
      EXPECT_EQ(toHex(*sid), rest.substr(0, rest.find(' '))) << "server ID";
    } else {
      ASSERT_TRUE(expect.starts_with("unroutable")) << "unknown expectation in test data";
      ASSERT_FALSE(sid.has_value()) << "expected unroutable, decoded " << toHex(*sid);
      EXPECT_TRUE(sid.error().errnum == kCidTooShort || sid.error().errnum == kCidUnroutable)
          << "errnum " << sid.error().errnum << " for: " << sid.error().message;
    }
  }
}

TEST(QuicLbCodec, RoundTripsRandomCidsForEveryAllowedLengthWithAndWithoutKey) {
  std::mt19937 rng(kSeed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::set<Algorithm> seen;
  int combinations = 0;
  for (uint8_t sid_len = kMinServerIdLen; sid_len <= kMaxServerIdLen; sid_len++) {
    for (uint8_t nonce_len = kMinNonceLen; sid_len + nonce_len <= kMaxPlaintextLen; nonce_len++) {
      for (const bool keyed : {false, true}) {
        for (const bool self_encoded : {false, true}) {
          SCOPED_TRACE("sid_len " + std::to_string(sid_len) + " nonce_len " +
                       std::to_string(nonce_len) + (keyed ? " keyed" : " plaintext") +
                       (self_encoded ? " self-encoded" : ""));
          combinations++;
          QuicLbConfig config = mustMake(combinations % 7, sid_len, nonce_len, false, self_encoded);
          if (keyed) {
            config.key.emplace();
            std::generate(config.key->begin(), config.key->end(),
                          [&] { return static_cast<uint8_t>(byte(rng)); });
          }
          seen.insert(config.algorithm());
          auto codec = QuicLbCodec::create(config);
          ASSERT_TRUE(codec.has_value()) << "create: " << codec.error().message;
          std::set<Bytes> cids;
          for (int sample = 0; sample < 16; sample++) {
            Bytes sid(sid_len), nonce(nonce_len);
            auto random = [&] { return static_cast<uint8_t>(byte(rng)); };
            std::generate(sid.begin(), sid.end(), random);
            std::generate(nonce.begin(), nonce.end(), random);
            nonce[0] = static_cast<uint8_t>(sample);  // distinct inputs: CIDs must differ
            const uint8_t low = static_cast<uint8_t>(byte(rng) & kMaxFirstOctetLowBits);
            auto cid = codec->encode(sid, nonce, self_encoded ? std::nullopt : std::optional(low));
            ASSERT_TRUE(cid.has_value()) << "encode: " << cid.error().message;
            ASSERT_EQ(cid->size(), config.cidLen()) << "CID length";
            EXPECT_EQ((*cid)[0] >> 5, config.config_rotation) << "config rotation bits";
            EXPECT_EQ(size_t{(*cid)[0]} & 0x1f, self_encoded ? config.cidLen() - 1 : size_t{low})
                << "first octet low bits";
            Bytes plaintext = sid;
            plaintext.insert(plaintext.end(), nonce.begin(), nonce.end());
            EXPECT_EQ(Bytes(cid->begin() + 1, cid->end()) == plaintext, !keyed)
                << "CID body must be the plaintext exactly when there is no key";
            EXPECT_TRUE(cids.insert(*cid).second) << "two inputs gave CID " << toHex(*cid);
            auto decoded = codec->decode(*cid);
            ASSERT_TRUE(decoded.has_value())
                << "decode " << toHex(*cid) << ": " << decoded.error().message;
            EXPECT_EQ(toHex(*decoded), toHex(sid)) << "round trip of CID " << toHex(*cid);
          }
        }
      }
    }
  }
  EXPECT_EQ(combinations, 120 * 4) << "sid_len 1..15 x nonce_len 4..(19 - sid_len), x2 x2";
  EXPECT_EQ(seen.size(), 3u) << "plaintext, single-pass and four-pass all exercised";
}

TEST(QuicLbCodec, DecodeIgnoresServerUseOctetsAfterTheCid) {
  auto codec = QuicLbCodec::create(mustMake(2, 10, 5, true, false));
  ASSERT_TRUE(codec.has_value()) << codec.error().message;
  const Bytes sid = hex("ed793a51d49b8f5fab65");
  auto cid = codec->encode(sid, hex("ee080dbf48"));
  ASSERT_TRUE(cid.has_value()) << cid.error().message;
  cid->insert(cid->end(), {0xaa, 0xbb, 0xcc});
  auto decoded = codec->decode(*cid);
  ASSERT_TRUE(decoded.has_value()) << "trailing octets: " << decoded.error().message;
  EXPECT_EQ(*decoded, sid) << "server ID with trailing server-use octets";
}

TEST(QuicLbCodec, DecodeErrorsTellTooShortFromUnroutableFromMalformed) {
  auto codec = QuicLbCodec::create(mustMake(1, 3, 4, true, true));
  ASSERT_TRUE(codec.has_value()) << codec.error().message;
  auto good = codec->encode(hex("ed793a"), hex("ee080dbf"));
  ASSERT_TRUE(good.has_value()) << good.error().message;
  const Bytes cid = *good;  // first octet 0x27: cr 1, length 8
  struct Row {
    const char* what;
    Bytes cid;
    int errnum;
    const char* says;
  } rows[] = {
      {"empty", {}, kCidTooShort, "empty"},
      {"one octet short", Bytes(cid.begin(), cid.end() - 1), kCidTooShort, "needs at least 8"},
      {"rotation 0b111",
       [&] {
         Bytes c = cid;
         c[0] |= 0xe0;
         return c;
       }(),
       kCidUnroutable, "0b111"},
      {"other rotation",
       [&] {
         Bytes c = cid;
         c[0] = 0x47;
         return c;
       }(),
       kCidUnroutable, "rotation 2 is not the configured 1"},
      {"length below config",
       [&] {
         Bytes c = cid;
         c[0] = 0x25;
         return c;
       }(),
       kCidMalformed, "self-encoded length 6"},
      {"length beyond octets",
       [&] {
         Bytes c = cid;
         c[0] = 0x33;
         return c;
       }(),
       kCidTooShort, "self-encoded length 20 exceeds"},
  };
  for (const Row& row : rows) {
    auto sid = codec->decode(row.cid);
    ASSERT_FALSE(sid.has_value()) << row.what << ": decoded " << toHex(*sid);
    EXPECT_EQ(sid.error().errnum, row.errnum) << row.what << ": " << sid.error().message;
    EXPECT_NE(sid.error().message.find(row.says), std::string::npos)
        << row.what << ": message lacks '" << row.says << "': " << sid.error().message;
  }
}

TEST(QuicLbConfig, RejectsInvalidConfigsNamingTheField) {
  struct Row {
    uint8_t cr, sid_len, nonce_len;
    const char* field;
  } rows[] = {
      {7, 3, 4, "config_rotation 7"},
      {8, 3, 4, "config_rotation 8"},
      {0, 0, 4, "server_id_len 0"},
      {0, 16, 4, "server_id_len 16"},
      {0, 3, 3, "nonce_len 3"},
      {0, 1, 19, "nonce_len 19"},
      {0, 15, 5, "server_id_len + nonce_len"},
      {0, 10, 10, "server_id_len + nonce_len"},
  };
  for (const Row& row : rows) {
    auto config = QuicLbConfig::make(row.cr, row.sid_len, row.nonce_len);
    ASSERT_FALSE(config.has_value()) << "accepted config expected to fail on " << row.field;
    EXPECT_NE(config.error().message.find(row.field), std::string::npos)
        << "error does not name '" << row.field << "': " << config.error().message;
    QuicLbConfig by_hand{row.cr, row.sid_len, row.nonce_len, kKey, false};
    EXPECT_FALSE(QuicLbCodec::create(by_hand).has_value()) << "codec built for " << row.field;
    auto sid = decode(by_hand, Bytes(20, 0));
    ASSERT_FALSE(sid.has_value()) << "decode with invalid config " << row.field;
    EXPECT_EQ(sid.error().errnum, EINVAL) << "invalid config is not a CID verdict";
  }
  for (auto [cr, sid_len, nonce_len] :
       {std::tuple{6, 15, 4}, std::tuple{0, 1, 18}, std::tuple{0, 1, 4}}) {
    auto config = QuicLbConfig::make(cr, sid_len, nonce_len, kKey, true);
    EXPECT_TRUE(config.has_value()) << "boundary config rejected: " << config.error().message;
  }
}

TEST(QuicLbCodec, EncodeRejectsWrongLengthInputsAndBadLowBits) {
  auto codec = QuicLbCodec::create(mustMake(0, 3, 4, true, false));
  ASSERT_TRUE(codec.has_value()) << codec.error().message;
  auto short_sid = codec->encode(hex("ed79"), hex("ee080dbf"));
  ASSERT_FALSE(short_sid.has_value()) << "2-octet server ID accepted";
  EXPECT_NE(short_sid.error().message.find("server_id"), std::string::npos)
      << short_sid.error().message;
  auto long_nonce = codec->encode(hex("ed793a"), hex("ee080dbf00"));
  ASSERT_FALSE(long_nonce.has_value()) << "5-octet nonce accepted";
  EXPECT_NE(long_nonce.error().message.find("nonce"), std::string::npos)
      << long_nonce.error().message;
  EXPECT_FALSE(codec->encode(hex("ed793a"), hex("ee080dbf"), 32).has_value())
      << "low bits 32 do not fit in 5 bits";
  auto self = QuicLbCodec::create(mustMake(0, 3, 4, false, true));
  ASSERT_TRUE(self.has_value()) << self.error().message;
  EXPECT_FALSE(self->encode(hex("ed793a"), hex("ee080dbf"), 1).has_value())
      << "low bits given although they hold the self-encoded length";
}

TEST(QuicLbCodec, EncodeTakesFirstOctetLowBitsFromCallerOrZero) {
  auto codec = QuicLbCodec::create(mustMake(5, 3, 4));
  ASSERT_TRUE(codec.has_value()) << codec.error().message;
  auto with_bits = codec->encode(hex("c4605e"), hex("4504cc4f"), 0x15);
  ASSERT_TRUE(with_bits.has_value()) << with_bits.error().message;
  EXPECT_EQ(toHex(*with_bits), "b5c4605e4504cc4f") << "cr 5 << 5 | 0x15, then sid || nonce";
  auto zero = codec->encode(hex("c4605e"), hex("4504cc4f"));
  ASSERT_TRUE(zero.has_value()) << zero.error().message;
  EXPECT_EQ((*zero)[0], 0xa0) << "unset low bits are zero";
}

TEST(QuicLbCodec, MovedCodecKeepsWorkingAndMovedFromCodecFails) {
  auto created = QuicLbCodec::create(mustMake(2, 8, 8, true, true));
  ASSERT_TRUE(created.has_value()) << created.error().message;
  QuicLbCodec codec = std::move(*created);
  auto cid = codec.encode(hex("ed793a51d49b8f5f"), hex("ee080dbf48c0d1e5"));
  ASSERT_TRUE(cid.has_value()) << cid.error().message;
  EXPECT_EQ(toHex(*cid), "504dd2d05a7b0de9b2b9907afb5ecf8cc3") << "E3 after a move";
  EXPECT_FALSE(created->decode(*cid).has_value()) << "moved-from codec still decodes";
}

TEST(QuicLbHex, ParsesEitherCaseAndRejectsOddOrNonHexText) {
  auto bytes = parseHex("00aBfF");
  ASSERT_TRUE(bytes.has_value()) << bytes.error().message;
  EXPECT_EQ(*bytes, (Bytes{0x00, 0xab, 0xff})) << "mixed-case hex";
  EXPECT_EQ(toHex(*bytes), "00abff") << "lower-case output";
  EXPECT_TRUE(parseHex("").value_or(Bytes{1}).empty()) << "empty text is no octets";
  EXPECT_FALSE(parseHex("abc").has_value()) << "odd digit count accepted";
  EXPECT_FALSE(parseHex("0x00").has_value()) << "prefix accepted";
  EXPECT_FALSE(parseHex("0 ").has_value()) << "space accepted";
}

// ---- meshgatectl quic-lb ----------------------------------------------------------------

struct CtlRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs build/bin/meshgatectl (found from build/tests/unit) with `args` after "quic-lb".
Result<CtlRun> runCtl(std::vector<std::string> args) {
  const fs::path ctl = (testBinaryDir() / "../../bin/meshgatectl").lexically_normal();
  if (!fs::exists(ctl)) {
    return fail(ctl.string() + " not found: build it with make build/bin/meshgatectl");
  }
  args.insert(args.begin(), {ctl.string(), "quic-lb"});
  auto child = test::Subprocess::spawn(args, {.capture_output = true});
  if (!child) {
    return std::unexpected(child.error());
  }
  auto output = child->readAll(std::chrono::seconds(10));
  if (!output) {
    return std::unexpected(output.error());
  }
  auto code = child->wait(std::chrono::seconds(10));
  if (!code) {
    return std::unexpected(code.error());
  }
  return CtlRun{*code, *output};
}

// Draft vector E2's config: four-pass with server_id_len > nonce_len.
std::vector<std::string> e2ConfigArgs() {
  return {"--cr",  "1",           "--sid-len",
          "10",    "--nonce-len", "5",
          "--key", toHex(kKey),   "--self-encoded-length"};
}

TEST(QuicLbCli, EncodeThenDecodeGivesBackTheServerId) {
  const std::vector<std::string> config = e2ConfigArgs();
  std::vector<std::string> enc = {"encode"};
  enc.insert(enc.end(), config.begin(), config.end());
  enc.insert(enc.end(), {"--sid", "ED793A51D49B8F5FAB65", "--nonce", "ee080dbf48"});
  auto encoded = runCtl(enc);
  ASSERT_TRUE(encoded.has_value()) << encoded.error().message;
  ASSERT_EQ(encoded->exit_code, 0) << "encode: " << encoded->output;
  EXPECT_EQ(encoded->output, "2fcc381bc74cb4fbad2823a3d1f8fed2\n") << "E2 CID, lower-case";

  std::vector<std::string> dec = {"decode"};
  dec.insert(dec.end(), config.begin(), config.end());
  dec.push_back(encoded->output.substr(0, encoded->output.size() - 1));
  auto decoded = runCtl(dec);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
  ASSERT_EQ(decoded->exit_code, 0) << "decode: " << decoded->output;
  EXPECT_EQ(decoded->output, "ed793a51d49b8f5fab65\n") << "server ID after the round trip";
}

TEST(QuicLbCli, DecodeOfUnroutableCidExitsTwoSayingWhy) {
  auto run =
      runCtl({"decode", "--cr", "1", "--sid-len", "3", "--nonce-len", "4", "e001020304050607"});
  ASSERT_TRUE(run.has_value()) << run.error().message;
  EXPECT_EQ(run->exit_code, 2) << "unroutable CID: " << run->output;
  EXPECT_NE(run->output.find("0b111"), std::string::npos) << "reason missing: " << run->output;
}

TEST(QuicLbCli, BadArgumentsExitTwoNamingTheArgument) {
  struct Row {
    std::vector<std::string> args;
    const char* names;
  } rows[] = {
      {{"encode", "--sid-len", "3", "--nonce-len", "4", "--sid", "00", "--nonce", "00"}, "--cr"},
      {{"decode", "--cr", "0", "--sid-len", "3", "--nonce-len", "4", "--bogus", "00"}, "--bogus"},
      {{"decode", "--cr", "9", "--sid-len", "3", "--nonce-len", "4", "00"}, "--cr"},
      {{"decode", "--cr", "0", "--sid-len", "3", "--nonce-len", "19", "00"}, "--nonce-len"},
      {{"decode", "--cr", "0", "--sid-len", "3", "--nonce-len", "4", "0g"}, "CIDHEX"},
      {{"encode", "--cr", "0", "--sid-len", "3", "--nonce-len", "4", "--sid", "zz0102", "--nonce",
        "00010203"},
       "--sid"},
      {{"encode", "--cr", "0", "--sid-len", "3", "--nonce-len", "4", "--key", "00", "--sid",
        "000102", "--nonce", "00010203"},
       "--key"},
  };
  for (const Row& row : rows) {
    const std::string cmd = test::commandLine(row.args);
    auto run = runCtl(row.args);
    ASSERT_TRUE(run.has_value()) << cmd << ": " << run.error().message;
    EXPECT_EQ(run->exit_code, 2) << cmd << ": " << run->output;
    EXPECT_NE(run->output.find(row.names), std::string::npos)
        << cmd << ": message does not name " << row.names << ": " << run->output;
  }
}

}  // namespace
}  // namespace meshgate::quiclb
