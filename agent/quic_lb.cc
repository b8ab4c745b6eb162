#include "meshgate/quic_lb.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace meshgate::quiclb {
namespace {

constexpr size_t kAesBlockLen = 16;
// half_len = ceil(plaintext_len / 2) is at most 10 octets.
constexpr size_t kMaxHalfLen = (kMaxPlaintextLen + 1) / 2;
// CIDs longer than this are shown truncated in error messages (they may be whole packets).
constexpr size_t kMaxShownCidLen = 20;

using CipherCtx = std::unique_ptr<evp_cipher_ctx_st, CipherCtxDeleter>;

std::unexpected<Error> cidError(int errnum, std::span<const uint8_t> cid, std::string what) {
  std::string shown = toHex(cid.first(std::min(cid.size(), kMaxShownCidLen)));
  if (cid.size() > kMaxShownCidLen) {
    shown += "...";
  }
  return std::unexpected(Error{"quic-lb: CID " + shown + " unroutable: " + what, errnum});
}

Result<CipherCtx> newAesCtx(const std::array<uint8_t, kKeyLen>& key, bool encrypt) {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) {
    return fail("quic-lb: EVP_CIPHER_CTX_new failed");
  }
  if (EVP_CipherInit_ex(ctx.get(), EVP_aes_128_ecb(), nullptr, key.data(), nullptr,
                        encrypt ? 1 : 0) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1) {
    return fail("quic-lb: AES-128-ECB key setup failed");
  }
  return ctx;
}

// One AES-128-ECB block in the context's direction. ECB with padding off keeps no state
// between blocks, so one context serves every call.
Result<void> aesBlock(EVP_CIPHER_CTX* ctx, const uint8_t* in, uint8_t* out) {
  int out_len = 0;
  if (EVP_CipherUpdate(ctx, out, &out_len, in, kAesBlockLen) != 1 || out_len != kAesBlockLen) {
    return std::unexpected(Error{"quic-lb: AES-128-ECB block failed", EIO});
  }
  return {};
}

// The two Feistel halves of an n-octet plaintext or ciphertext. For odd n both hold the
// middle octet: left keeps its high nibble, right its low nibble.
class FeistelState {
 public:
  FeistelState(EVP_CIPHER_CTX* ctx, std::span<const uint8_t> text)
      : ctx_(ctx), len_(text.size()), half_len_((text.size() + 1) / 2) {
    std::memcpy(left_.data(), text.data(), half_len_);
    std::memcpy(right_.data(), text.data() + len_ - half_len_, half_len_);
    clearNibbles();
  }

  // Pass p (1..4): odd passes XOR AES(expand(n, p, left)) into right, even ones
  // AES(expand(n, p, right)) into left. XOR makes each pass its own inverse, so decryption
  // runs the same passes in reverse order.
  Result<void> pass(uint8_t p) {
    const bool into_right = (p & 1) != 0;
    const uint8_t* in = into_right ? left_.data() : right_.data();
    uint8_t* target = into_right ? right_.data() : left_.data();
    // expand(len, pass, half) = half || zeros up to octet 14 || len || pass.
    uint8_t block[kAesBlockLen] = {};
    std::memcpy(block, in, half_len_);
    block[kAesBlockLen - 2] = static_cast<uint8_t>(len_);
    block[kAesBlockLen - 1] = p;
    uint8_t out[kAesBlockLen];
    if (auto r = aesBlock(ctx_, block, out); !r) {
      return r;
    }
    for (size_t i = 0; i < half_len_; i++) {
      target[i] ^= out[i];  // truncate(AES output, half_len)
    }
    clearNibbles();
    return {};
  }

  // Left octets that are whole (not the shared middle octet).
  size_t wholeLeftLen() const { return len_ / 2; }
  std::span<const uint8_t> left() const { return {left_.data(), half_len_}; }

  // left || right, merging the shared middle octet when n is odd.
  void join(uint8_t* out) const {
    std::memset(out, 0, len_);
    for (size_t i = 0; i < half_len_; i++) {
      out[i] |= left_[i];
      out[len_ - half_len_ + i] |= right_[i];
    }
  }

 private:
  void clearNibbles() {
    if (len_ & 1) {
      left_[half_len_ - 1] &= 0xf0;
      right_[0] &= 0x0f;
    }
  }

  EVP_CIPHER_CTX* ctx_;
  size_t len_;
  size_t half_len_;
  std::array<uint8_t, kMaxHalfLen> left_{};
  std::array<uint8_t, kMaxHalfLen> right_{};
};

int hexDigit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

}  // namespace

void CipherCtxDeleter::operator()(evp_cipher_ctx_st* ctx) const {
  EVP_CIPHER_CTX_free(ctx);
}

Result<QuicLbConfig> QuicLbConfig::make(uint8_t config_rotation, uint8_t server_id_len,
                                        uint8_t nonce_len,
                                        std::optional<std::array<uint8_t, kKeyLen>> key,
                                        bool self_encoded_length) {
  QuicLbConfig config{config_rotation, server_id_len, nonce_len, key, self_encoded_length};
  if (auto r = config.validate(); !r) {
    return std::unexpected(r.error());
  }
  return config;
}

Result<void> QuicLbConfig::validate() const {
  const std::string prefix = "quic-lb config: ";
  if (config_rotation == kUnroutableConfigRotation) {
    return fail(prefix + "config_rotation 7 (0b111) is reserved for unroutable CIDs (valid 0..6)");
  }
  if (config_rotation > kMaxConfigRotation) {
    return fail(prefix + "config_rotation " + std::to_string(config_rotation) +
                " is out of range 0..6 (3 bits, 7 reserved)");
  }
  if (server_id_len < kMinServerIdLen || server_id_len > kMaxServerIdLen) {
    return fail(prefix + "server_id_len " + std::to_string(server_id_len) +
                " is out of range 1..15");
  }
  if (nonce_len < kMinNonceLen || nonce_len > kMaxNonceLen) {
    return fail(prefix + "nonce_len " + std::to_string(nonce_len) + " is out of range 4..18");
  }
  if (plaintextLen() > kMaxPlaintextLen) {
    return fail(prefix + "server_id_len + nonce_len = " + std::to_string(server_id_len) + " + " +
                std::to_string(nonce_len) + " exceeds 19 (a QUIC v1 CID has at most 20 octets, " +
                "one of them the first octet)");
  }
  return {};
}

Algorithm QuicLbConfig::algorithm() const {
  if (!key) {
    return Algorithm::kPlaintext;
  }
  return plaintextLen() == kAesBlockLen ? Algorithm::kSinglePass : Algorithm::kFourPass;
}

QuicLbCodec::QuicLbCodec(QuicLbConfig config, CipherCtx encrypt, CipherCtx decrypt)
    : config_(std::move(config)),
      encrypt_(std::move(encrypt)),
      decrypt_(std::move(decrypt)),
      usable_(true) {}

QuicLbCodec::QuicLbCodec(QuicLbCodec&& other) noexcept
    : config_(other.config_),
      encrypt_(std::move(other.encrypt_)),
      decrypt_(std::move(other.decrypt_)),
      usable_(std::exchange(other.usable_, false)) {}

QuicLbCodec& QuicLbCodec::operator=(QuicLbCodec&& other) noexcept {
  if (this != &other) {
    config_ = other.config_;
    encrypt_ = std::move(other.encrypt_);
    decrypt_ = std::move(other.decrypt_);
    usable_ = std::exchange(other.usable_, false);
  }
  return *this;
}

Result<QuicLbCodec> QuicLbCodec::create(QuicLbConfig config) {
  if (auto r = config.validate(); !r) {
    return std::unexpected(r.error());
  }
  CipherCtx encrypt, decrypt;
  if (config.key) {
    auto e = newAesCtx(*config.key, true);
    if (!e) {
      return std::unexpected(e.error());
    }
    encrypt = std::move(*e);
    if (config.algorithm() == Algorithm::kSinglePass) {
      auto d = newAesCtx(*config.key, false);
      if (!d) {
        return std::unexpected(d.error());
      }
      decrypt = std::move(*d);
    }
  }
  return QuicLbCodec(std::move(config), std::move(encrypt), std::move(decrypt));
}

Result<void> QuicLbCodec::checkUsable() const {
  if (!usable_) {
    return std::unexpected(Error{"quic-lb: codec used after being moved from", EINVAL});
  }
  return {};
}

Result<std::vector<uint8_t>> QuicLbCodec::encode(std::span<const uint8_t> server_id,
                                                 std::span<const uint8_t> nonce,
                                                 std::optional<uint8_t> first_octet_low_bits) {
  if (auto r = checkUsable(); !r) {
    return std::unexpected(r.error());
  }
  const std::string prefix = "quic-lb encode: ";
  if (server_id.size() != config_.server_id_len) {
    return fail(prefix + "server_id has " + std::to_string(server_id.size()) +
                " octets, config server_id_len is " + std::to_string(config_.server_id_len));
  }
  if (nonce.size() != config_.nonce_len) {
    return fail(prefix + "nonce has " + std::to_string(nonce.size()) +
                " octets, config nonce_len is " + std::to_string(config_.nonce_len));
  }
  if (config_.self_encoded_length && first_octet_low_bits) {
    return fail(prefix + "first_octet_low_bits must be unset with self_encoded_length (the " +
                "low bits hold the CID length)");
  }
  if (first_octet_low_bits.value_or(0) > kMaxFirstOctetLowBits) {
    return fail(prefix + "first_octet_low_bits " + std::to_string(*first_octet_low_bits) +
                " is out of range 0..31");
  }
  const size_t n = config_.plaintextLen();
  const uint8_t low_bits =
      config_.self_encoded_length ? static_cast<uint8_t>(n) : first_octet_low_bits.value_or(0);
  std::vector<uint8_t> cid(config_.cidLen());
  cid[0] = static_cast<uint8_t>(config_.config_rotation << 5 | low_bits);
  uint8_t plaintext[kMaxPlaintextLen];
  std::memcpy(plaintext, server_id.data(), server_id.size());
  std::memcpy(plaintext + server_id.size(), nonce.data(), nonce.size());

  switch (config_.algorithm()) {
    case Algorithm::kPlaintext:
      std::memcpy(cid.data() + 1, plaintext, n);
      break;
    case Algorithm::kSinglePass:
      if (auto r = aesBlock(encrypt_.get(), plaintext, cid.data() + 1); !r) {
        return std::unexpected(r.error());
      }
      break;
    case Algorithm::kFourPass: {
      FeistelState state(encrypt_.get(), {plaintext, n});
      for (uint8_t p = 1; p <= 4; p++) {
        if (auto r = state.pass(p); !r) {
          return std::unexpected(r.error());
        }
      }
      state.join(cid.data() + 1);
      break;
    }
  }
  return cid;
}

Result<std::vector<uint8_t>> QuicLbCodec::decode(std::span<const uint8_t> cid) {
  if (auto r = checkUsable(); !r) {
    return std::unexpected(r.error());
  }
  if (cid.empty()) {
    return cidError(kCidTooShort, cid, "empty");
  }
  const uint8_t rotation = cid[0] >> 5;
  if (rotation == kUnroutableConfigRotation) {
    return cidError(kCidUnroutable, cid, "config rotation 0b111 marks an unroutable CID");
  }
  if (rotation != config_.config_rotation) {
    return cidError(kCidUnroutable, cid,
                    "config rotation " + std::to_string(rotation) + " is not the configured " +
                        std::to_string(config_.config_rotation));
  }
  const size_t need = config_.cidLen();
  if (cid.size() < need) {
    return cidError(kCidTooShort, cid,
                    std::to_string(cid.size()) + " octets, the config needs at least " +
                        std::to_string(need) + " (1 + server_id_len " +
                        std::to_string(config_.server_id_len) + " + nonce_len " +
                        std::to_string(config_.nonce_len) + ")");
  }
  if (config_.self_encoded_length) {
    // The encoded length counts server-use octets too, so it may exceed need, never the
    // octets present (a short header's caller passes at least the whole CID).
    const size_t encoded = size_t{static_cast<uint8_t>(cid[0] & kMaxFirstOctetLowBits)} + 1;
    if (encoded < need) {
      return cidError(kCidMalformed, cid,
                      "self-encoded length " + std::to_string(encoded) +
                          " is shorter than the config's " + std::to_string(need));
    }
    if (encoded > cid.size()) {
      return cidError(kCidTooShort, cid,
                      "self-encoded length " + std::to_string(encoded) + " exceeds the " +
                          std::to_string(cid.size()) + " octets given");
    }
  }

  const size_t n = config_.plaintextLen();
  const size_t sid_len = config_.server_id_len;
  const std::span<const uint8_t> text = cid.subspan(1, n);
  switch (config_.algorithm()) {
    case Algorithm::kPlaintext:
      return std::vector<uint8_t>(text.begin(), text.begin() + sid_len);
    case Algorithm::kSinglePass: {
      uint8_t plaintext[kAesBlockLen];
      if (auto r = aesBlock(decrypt_.get(), text.data(), plaintext); !r) {
        return std::unexpected(r.error());
      }
      return std::vector<uint8_t>(plaintext, plaintext + sid_len);
    }
    case Algorithm::kFourPass: {
      FeistelState state(encrypt_.get(), text);
      for (uint8_t p = 4; p >= 2; p--) {
        if (auto r = state.pass(p); !r) {
          return std::unexpected(r.error());
        }
      }
      // After passes 4, 3, 2 the left half is left_0: when the server ID fits in its whole
      // octets (server_id_len <= nonce_len) the draft's three-pass shortcut applies.
      if (sid_len <= state.wholeLeftLen()) {
        return std::vector<uint8_t>(state.left().begin(), state.left().begin() + sid_len);
      }
      if (auto r = state.pass(1); !r) {
        return std::unexpected(r.error());
      }
      uint8_t plaintext[kMaxPlaintextLen];
      state.join(plaintext);
      return std::vector<uint8_t>(plaintext, plaintext + sid_len);
    }
  }
  return std::unexpected(Error{"quic-lb: unknown algorithm", EINVAL});
}

Result<std::vector<uint8_t>> encode(const QuicLbConfig& config, std::span<const uint8_t> server_id,
                                    std::span<const uint8_t> nonce,
                                    std::optional<uint8_t> first_octet_low_bits) {
  auto codec = QuicLbCodec::create(config);
  if (!codec) {
    return std::unexpected(codec.error());
  }
  return codec->encode(server_id, nonce, first_octet_low_bits);
}

Result<std::vector<uint8_t>> decode(const QuicLbConfig& config, std::span<const uint8_t> cid) {
  auto codec = QuicLbCodec::create(config);
  if (!codec) {
    Error e = codec.error();
    e.errnum = EINVAL;  // an invalid config is "anything else", not a CID verdict
    return std::unexpected(std::move(e));
  }
  return codec->decode(cid);
}

Result<std::vector<uint8_t>> parseHex(std::string_view text) {
  if (text.size() % 2 != 0) {
    return fail("hex '" + std::string(text) + "' has an odd number of digits (" +
                std::to_string(text.size()) + ")");
  }
  std::vector<uint8_t> out(text.size() / 2);
  for (size_t i = 0; i < text.size(); i++) {
    const int d = hexDigit(text[i]);
    if (d < 0) {
      return fail("hex '" + std::string(text) + "' has a non-hex character at offset " +
                  std::to_string(i));
    }
    out[i / 2] = static_cast<uint8_t>(out[i / 2] << 4 | d);
  }
  return out;
}

std::string toHex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

}  // namespace meshgate::quiclb
