// The response body of meshgate-quic-server, shared with the tests that check what a client
// downloaded: byte i of every body is bodyByte(i). The period is a prime, so a chunk delivered
// at the wrong offset does not match.
#pragma once

#include <cstddef>
#include <cstdint>

namespace meshgate::quicserver {

inline constexpr size_t kBodyPeriod = 65521;

inline constexpr uint8_t bodyByte(uint64_t i) {
  return static_cast<uint8_t>(((i % kBodyPeriod) * 2654435761u) >> 13);
}

}  // namespace meshgate::quicserver
