// The agent records and writes back only forwarding sysctls of an interface: whatever the
// pinned record says, --detach cannot be made to write another /proc/sys file.
#include "agent/host_settings.h"

#include <gtest/gtest.h>

namespace meshgate::agent {
namespace {

TEST(HostSettings, OnlyAnInterfaceForwardingSysctlIsOneOfOurs) {
  for (const char* ok : {"net/ipv4/conf/eth0/forwarding", "net/ipv6/conf/veth-lb1/forwarding",
                         "net/ipv4/conf/a23456789012345/forwarding"}) {
    EXPECT_TRUE(isForwardingSysctl(ok)) << ok;
  }
  for (const char* bad :
       {"kernel/core_pattern", "net/ipv4/ip_forward", "net/ipv4/conf//forwarding",
        "net/ipv4/conf/../../../kernel/core_pattern/forwarding", "net/ipv4/conf/../forwarding",
        "net/ipv4/conf/a/b/forwarding", "net/ipv4/conf/a234567890123456/forwarding",
        "net/ipv4/conf/eth0/rp_filter", "net/ipv5/conf/eth0/forwarding",
        "net/ipv4/conf/eth 0/forwarding"}) {
    EXPECT_FALSE(isForwardingSysctl(bad)) << bad;
  }
}

TEST(HostSettings, ChangeRefusesAnythingElseBeforeTouchingIt) {
  auto r = changeSysctl("/nonexistent-pin-root", "kernel/core_pattern", "1");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a forwarding setting"), std::string::npos)
      << r.error().message;
  auto v = changeSysctl("/nonexistent-pin-root", "net/ipv4/conf/lo/forwarding", "|/bin/sh");
  ASSERT_FALSE(v) << "only 0, 1 or 2 are written";
}

}  // namespace
}  // namespace meshgate::agent
