// QUIC-LB routable connection IDs (draft-ietf-quic-load-balancers-21): servers encode one of
// their server IDs into every CID they issue; the load balancer decodes it back and routes on
// it. Implements the -19+ expand() layout (vectors from drafts <= -18 do not decode) and the
// draft's test vectors with the errata of shared/docs/reference/quic-lb.md §2.6 corrected.
//
// CID layout: first octet || E(server_id || nonce). The first octet holds the config rotation
// in its top 3 bits and, with self_encoded_length, the CID length minus one in its low 5 bits.
// E is the identity without a key, one AES-128-ECB block when server_id_len + nonce_len == 16,
// and the draft's four-pass Feistel network (AES-128-ECB round function) otherwise.
#pragma once

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meshgate/result.h"

struct evp_cipher_ctx_st;  // OpenSSL's EVP_CIPHER_CTX, kept out of this header

namespace meshgate::quiclb {

/// Config rotation 0b111 is reserved: a CID carrying it is always unroutable.
inline constexpr uint8_t kUnroutableConfigRotation = 0b111;
inline constexpr uint8_t kMaxConfigRotation = 6;
inline constexpr uint8_t kMinServerIdLen = 1;
inline constexpr uint8_t kMaxServerIdLen = 15;
inline constexpr uint8_t kMinNonceLen = 4;
inline constexpr uint8_t kMaxNonceLen = 18;
/// server_id_len + nonce_len limit: QUIC v1's 20-octet CID minus the first octet.
inline constexpr uint8_t kMaxPlaintextLen = 19;
inline constexpr size_t kKeyLen = 16;
/// Largest value of the first octet's low bits (self-encoded length or caller's bits).
inline constexpr uint8_t kMaxFirstOctetLowBits = 0x1f;

/// Error::errnum of a failed decode, so that a load balancer can tell the cases apart
/// without parsing messages (the message always says what was wrong with which CID):
/// - kCidTooShort: fewer octets than 1 + server_id_len + nonce_len (or an empty CID);
/// - kCidUnroutable: config rotation 0b111, or not the config's rotation;
/// - any other value (kCidMalformed, EINVAL, EIO): anything else, e.g. an inconsistent
///   self-encoded length, an invalid config or a moved-from codec.
inline constexpr int kCidTooShort = EMSGSIZE;
inline constexpr int kCidUnroutable = EHOSTUNREACH;
inline constexpr int kCidMalformed = EBADMSG;

/// How the server ID and nonce are protected, fixed by the config.
enum class Algorithm {
  kPlaintext,   // no key: CID = first octet || server_id || nonce
  kSinglePass,  // key and server_id_len + nonce_len == 16: one AES-128-ECB block
  kFourPass,    // key and any other length: four-pass Feistel network
};

/// One QUIC-LB configuration, as the configuration agent hands it to servers and LBs.
/// A plain aggregate: build it with make() or check it with validate() before use (the codec
/// and the free functions validate it too).
struct QuicLbConfig {
  uint8_t config_rotation = 0;                      // 0..6; 7 is reserved for unroutable CIDs
  uint8_t server_id_len = 0;                        // 1..15 octets
  uint8_t nonce_len = 0;                            // 4..18 octets; server_id_len + nonce_len <= 19
  std::optional<std::array<uint8_t, kKeyLen>> key;  // AES-128 key; none = plaintext CIDs
  bool self_encoded_length = false;  // encode CID length - 1 in the first octet's low bits

  /// A validated config; the error names the offending field.
  static Result<QuicLbConfig> make(uint8_t config_rotation, uint8_t server_id_len,
                                   uint8_t nonce_len,
                                   std::optional<std::array<uint8_t, kKeyLen>> key = std::nullopt,
                                   bool self_encoded_length = false);

  /// Fails, naming the field, on: config_rotation 7 (reserved for unroutable) or above;
  /// server_id_len outside 1..15; nonce_len outside 4..18; server_id_len + nonce_len > 19.
  Result<void> validate() const;

  /// server_id_len + nonce_len: the octets after the first one.
  size_t plaintextLen() const { return size_t{server_id_len} + nonce_len; }
  /// Length of the CIDs encode() produces (no server-use octets): 1 + plaintextLen().
  size_t cidLen() const { return 1 + plaintextLen(); }
  Algorithm algorithm() const;
};

/// Deleter for the owned OpenSSL cipher contexts (defined with the implementation).
struct CipherCtxDeleter {
  void operator()(evp_cipher_ctx_st* ctx) const;
};

/// Encoder and decoder for one config, owning its AES key schedule (an OpenSSL 3 EVP
/// AES-128-ECB context without padding, plus a decrypt context in single-pass mode). Build
/// one per config and reuse it: the free encode()/decode() rebuild the key schedule per call.
/// Move-only. Not thread-safe (the cipher contexts are mutated per block): use one codec per
/// thread. A moved-from codec fails every call with an error.
class QuicLbCodec {
 public:
  /// Validates `config` and sets up AES when it has a key.
  static Result<QuicLbCodec> create(QuicLbConfig config);

  QuicLbCodec(QuicLbCodec&& other) noexcept;
  QuicLbCodec& operator=(QuicLbCodec&& other) noexcept;
  QuicLbCodec(const QuicLbCodec&) = delete;
  QuicLbCodec& operator=(const QuicLbCodec&) = delete;
  ~QuicLbCodec() = default;

  const QuicLbConfig& config() const { return config_; }

  /// Builds a routable CID of config().cidLen() octets from exactly server_id_len octets of
  /// server ID and nonce_len octets of nonce. The nonce must never repeat under one key and,
  /// without a key, must look random (the draft's nonce rules): that is the caller's job.
  /// First octet = config_rotation << 5 | low bits, where the low bits are
  /// - with self_encoded_length: cidLen() - 1 (`first_octet_low_bits` must then be unset);
  /// - otherwise `first_octet_low_bits` (0..31), or 0 when unset. The draft wants random
  ///   bits unlinkable to earlier CIDs here; the caller supplies them so that encoding stays
  ///   deterministic.
  Result<std::vector<uint8_t>> encode(std::span<const uint8_t> server_id,
                                      std::span<const uint8_t> nonce,
                                      std::optional<uint8_t> first_octet_low_bits = std::nullopt);

  /// Recovers the server ID (server_id_len octets) from a CID: a long header's DCID, or a
  /// short header's bytes from the DCID on (octets after 1 + plaintextLen() are ignored,
  /// like server-use octets). Four-pass CIDs cost three AES blocks when
  /// server_id_len <= nonce_len and four otherwise; single-pass costs one AES decrypt.
  /// Errors (see kCidTooShort and friends for errnum): the CID is shorter than cidLen();
  /// its config rotation is 0b111 or not config_rotation; with self_encoded_length, the
  /// encoded length is below cidLen() (kCidMalformed) or beyond the octets given
  /// (kCidTooShort). A decoded server ID is not checked against any server table.
  Result<std::vector<uint8_t>> decode(std::span<const uint8_t> cid);

 private:
  using CipherCtx = std::unique_ptr<evp_cipher_ctx_st, CipherCtxDeleter>;

  QuicLbCodec(QuicLbConfig config, CipherCtx encrypt, CipherCtx decrypt);
  Result<void> checkUsable() const;

  QuicLbConfig config_;
  CipherCtx encrypt_;    // AES-128-ECB encrypt; null without a key
  CipherCtx decrypt_;    // AES-128-ECB decrypt; set only for Algorithm::kSinglePass
  bool usable_ = false;  // false once moved from
};

/// One-shot QuicLbCodec::create(config)->encode(...).
Result<std::vector<uint8_t>> encode(const QuicLbConfig& config, std::span<const uint8_t> server_id,
                                    std::span<const uint8_t> nonce,
                                    std::optional<uint8_t> first_octet_low_bits = std::nullopt);

/// One-shot QuicLbCodec::create(config)->decode(cid); an invalid config fails with errnum
/// EINVAL (not a verdict on the CID).
Result<std::vector<uint8_t>> decode(const QuicLbConfig& config, std::span<const uint8_t> cid);

/// Parses hex digits (either case, even count, no prefix or separators) into octets; the
/// error says which character or why. "" parses to no octets.
Result<std::vector<uint8_t>> parseHex(std::string_view text);

/// Lower-case hex, two digits per octet, no separators.
std::string toHex(std::span<const uint8_t> bytes);

}  // namespace meshgate::quiclb
