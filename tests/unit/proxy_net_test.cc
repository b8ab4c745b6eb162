// The proxy's socket helpers and buffers: addresses print as inet_ntop prints them,
// accepted connections inherit TCP_NODELAY from the listener (so the proxy sets it once
// per listener, not once per connection), and released buffer blocks are reused, bounded.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "proxy/net/buffer.h"
#include "proxy/net/socket.h"
#include "tests/lib/netns.h"

namespace meshgate::proxy {
namespace {

SockAddr v4(uint32_t host_order) {
  SockAddr a;
  a.storage.in4.sin_family = AF_INET;
  a.storage.in4.sin_addr.s_addr = htonl(host_order);
  a.len = sizeof(sockaddr_in);
  return a;
}

std::string ntop(const SockAddr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  const void* src = a.family() == AF_INET ? static_cast<const void*>(&a.storage.in4.sin_addr)
                                          : static_cast<const void*>(&a.storage.in6.sin6_addr);
  inet_ntop(a.family(), src, buf, sizeof buf);
  return buf;
}

TEST(SockAddrIp, PrintsIpv4AsInetNtopDoes) {
  for (uint32_t edge :
       {0u, 1u, 0x7f000001u, 0x0a00ff09u, 0xc6120a64u, 0xffffffffu, 0x00010203u, 0x64646464u}) {
    EXPECT_EQ(v4(edge).ip(), ntop(v4(edge))) << std::hex << edge;
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; i++) {
    const SockAddr a = v4(rng());
    ASSERT_EQ(a.ip(), ntop(a)) << std::hex << ntohl(a.storage.in4.sin_addr.s_addr);
  }
}

TEST(SockAddrIp, PrintsIpv6AsInetNtopDoes) {
  for (const char* text : {"::1", "2001:db8::10", "fe80::1:2:3:4", "::ffff:198.18.0.1"}) {
    SockAddr a;
    a.storage.in6.sin6_family = AF_INET6;
    ASSERT_EQ(inet_pton(AF_INET6, text, &a.storage.in6.sin6_addr), 1) << text;
    a.len = sizeof(sockaddr_in6);
    EXPECT_EQ(a.ip(), ntop(a)) << text;
  }
}

TEST(ListenTcp, AcceptedConnectionsInheritTcpNodelay) {
  auto ns = test::NetNs::create("nodelay");
  ASSERT_TRUE(ns.has_value()) << ns.error().message;
  auto inside = ns->enter();  // sockets made from here on belong to the namespace
  ASSERT_TRUE(inside.has_value()) << inside.error().message;
  auto addr = SockAddr::parse("127.0.0.1", 0);
  ASSERT_TRUE(addr.has_value());
  auto listener = listenTcp(*addr, 8);
  ASSERT_TRUE(listener.has_value()) << listener.error().message;
  auto bound = localAddress(listener->get());
  ASSERT_TRUE(bound.has_value());

  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(client) << std::strerror(errno);
  ASSERT_EQ(::connect(client.get(), bound->get(), bound->len), 0) << std::strerror(errno);
  Fd accepted(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted) << "accept: " << std::strerror(errno);

  int nodelay = 0;
  socklen_t len = sizeof nodelay;
  ASSERT_EQ(::getsockopt(accepted.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
  EXPECT_NE(nodelay, 0) << "the accepted socket has TCP_NODELAY without a setsockopt of its own";
  ASSERT_EQ(::getsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
  EXPECT_EQ(nodelay, 0) << "control: a socket that never asked has Nagle on";
}

TEST(BufferBlocks, ReleasedBlocksAreReusedAndTheCacheIsBounded) {
  const char* first = nullptr;
  {
    Buffer b;
    first = b.reserve(buffer_blocks::kLarge).data();
    b.commit(5);
    b.consume(5);
    b.shrink();  // empty: its block goes to the cache
  }
  Buffer again;
  EXPECT_EQ(again.reserve(buffer_blocks::kLarge).data(), first)
      << "the next buffer of that size takes the cached block";
  again.append(std::string_view("hello"));
  EXPECT_EQ(again.view(), "hello");

  // Release more blocks than the cache holds: it keeps the first kBlockCacheBytes of them
  // and hands them out last in, first out, so the first block taken back is the last one
  // kept, not the last one given.
  const size_t cap = buffer_blocks::kBlockCacheBytes / buffer_blocks::kSmall;
  std::vector<std::unique_ptr<char[]>> drained;  // whatever the cache held before
  for (size_t i = 0; i < cap; i++) {
    drained.push_back(buffer_blocks::take(buffer_blocks::kSmall));
  }
  std::vector<std::unique_ptr<char[]>> blocks;
  std::vector<const char*> addresses;
  for (size_t i = 0; i < cap + 8; i++) {
    blocks.push_back(buffer_blocks::take(buffer_blocks::kSmall));
    addresses.push_back(blocks.back().get());
  }
  for (auto& b : blocks) {
    buffer_blocks::give(std::move(b), buffer_blocks::kSmall);
  }
  std::vector<std::unique_ptr<char[]>> taken;
  for (size_t i = 0; i < cap; i++) {
    taken.push_back(buffer_blocks::take(buffer_blocks::kSmall));
    ASSERT_EQ(taken.back().get(), addresses[cap - 1 - i])
        << "take " << i << ": the cache kept the first " << cap << " blocks given, no more";
  }
}

}  // namespace
}  // namespace meshgate::proxy
