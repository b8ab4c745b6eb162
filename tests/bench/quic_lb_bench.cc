// Benchmarks the QUIC-LB library (include/meshgate/quic_lb.h) per core: encode and decode
// of one CID for each algorithm, against one OpenSSL AES-128-ECB block measured in the
// same run (the unit of cost the encrypted algorithms are made of), interleaved.
#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "meshgate/quic_lb.h"
#include "tests/lib/bench.h"

namespace mt = meshgate::test;
namespace ql = meshgate::quiclb;

namespace {

constexpr int kReps = 9;
constexpr int kOps = 200000;

template <class F>
double nsPerOp(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kOps; i++) {
    f(i);
  }
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / kOps;
}

}  // namespace

int main(int argc, char** argv) {
  const std::array<uint8_t, 16> key = {0x8f, 0x95, 0xf0, 0x92, 0x45, 0x76, 0x5f, 0x80,
                                       0x25, 0x69, 0x34, 0xe5, 0x0c, 0x66, 0x20, 0x7f};
  struct Case {
    const char* name;
    uint8_t sid_len, nonce_len;
    bool keyed;
  };
  const Case cases[] = {{"plaintext_2_6", 2, 6, false},
                        {"single_pass_3_13", 3, 13, true},
                        {"four_pass_3_10", 3, 10, true},
                        {"four_pass_8_9", 8, 9, true}};
  // Baseline: one AES-128-ECB block with OpenSSL's EVP interface, as the library uses it.
  EVP_CIPHER_CTX* aes = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(aes, EVP_aes_128_ecb(), nullptr, key.data(), nullptr);
  EVP_CIPHER_CTX_set_padding(aes, 0);
  uint8_t block[16] = {}, out[32];
  int out_len = 0;
  volatile uint64_t sink = 0;

  mt::BenchReport report("quic_lb_library");
  for (const auto& c : cases) {
    auto cfg = ql::QuicLbConfig::make(0, c.sid_len, c.nonce_len,
                                      c.keyed ? std::optional(key) : std::nullopt);
    auto codec = ql::QuicLbCodec::create(*cfg);
    if (!codec) {
      std::fprintf(stderr, "bench: %s\n", codec.error().message.c_str());
      return 1;
    }
    std::vector<uint8_t> sid(c.sid_len, 0x5a), nonce(c.nonce_len, 0);
    auto cid = codec->encode(sid, nonce, 0);
    std::vector<double> enc, dec, base;
    for (int rep = 0; rep < kReps; rep++) {
      base.push_back(nsPerOp([&](int i) {
        block[0] = static_cast<uint8_t>(i);
        EVP_EncryptUpdate(aes, out, &out_len, block, 16);
        sink = sink + out[0];
      }));
      enc.push_back(nsPerOp([&](int i) {
        nonce[0] = static_cast<uint8_t>(i);
        auto r = codec->encode(sid, nonce, 0);
        sink = sink + (*r)[1];
      }));
      dec.push_back(nsPerOp([&](int i) {
        (*cid)[c.sid_len] = static_cast<uint8_t>(i);
        auto r = codec->decode(*cid);
        sink = sink + (r ? (*r)[0] : 0);
      }));
    }
    char note[200];
    std::snprintf(note, sizeof(note), "median of %d x %d ops; %.1f M ops/s per core; range %.0f-%.0f",
                  kReps, kOps, 1e3 / mt::median(enc), mt::minOf(enc), mt::maxOf(enc));
    report.add({std::string("encode_") + c.name, "ns_per_op", "ns", mt::median(enc),
                mt::median(base), "one OpenSSL AES-128-ECB block", true, note});
    std::snprintf(note, sizeof(note), "median of %d x %d ops; %.1f M ops/s per core; range %.0f-%.0f",
                  kReps, kOps, 1e3 / mt::median(dec), mt::minOf(dec), mt::maxOf(dec));
    report.add({std::string("decode_") + c.name, "ns_per_op", "ns", mt::median(dec),
                mt::median(base), "one OpenSSL AES-128-ECB block", true, note});
  }
  EVP_CIPHER_CTX_free(aes);
  return report.finish(argc, argv);
}
