// `make demo` runs meshgate-demo, the first thing a new user sees: the real agent, XDP
// programs and TCP traffic across namespaces. This runs it (with fewer connections) and
// checks that it reports what it claims: the table shares follow the weights, the drained
// backend gets no new connection, and it tears down cleanly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <string>

#include "tests/lib/process.h"

namespace meshgate::test {
namespace {

// The row of `backend` in the report table after `title`, or "".
std::string row(const std::string& out, const std::string& title, const std::string& backend) {
  const size_t table = out.find(title);
  if (table == std::string::npos) {
    return "";
  }
  const size_t at = out.find("\n" + backend + " ", table);
  return at == std::string::npos ? "" : out.substr(at + 1, out.find('\n', at + 1) - at - 1);
}

TEST(Demo, ShowsWeightedSharesAndADrainFromThePinnedMaps) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root: network namespaces and XDP";
  }
  // Killed past the deadline, it could not tear down: 120 s is far beyond its 5-10 s.
  auto out = runCommand({builtBinary("meshgate-demo"), "--connections", "120"},
                        {.timeout = std::chrono::seconds(120)});
  ASSERT_TRUE(out) << out.error().message;
  const std::string weighted = "== weights b1:b2:b3 = 1:2:3 ==";
  const std::string drained = "== b3 drained";
  // backend, address, table share, connections, packets, bytes
  const std::regex cols(R"((b\d)\s+(\S+)\s+([0-9.]+)%\s+(\d+)\s+(\d+)\s+(\d+))");
  const char* shares[] = {"16.7", "33.3", "50.0"};
  const char* drained_shares[] = {"33.3", "66.7", "0.0"};
  int total = 0;
  for (int i = 0; i < 3; i++) {
    const std::string b = "b" + std::to_string(i + 1);
    std::smatch m;
    const std::string first = row(*out, weighted, b);
    ASSERT_TRUE(std::regex_search(first, m, cols)) << b << " row: [" << first << "]\n" << *out;
    EXPECT_EQ(m[3], shares[i]) << first;
    EXPECT_GT(std::stoi(m[4]), 0) << "every backend gets connections: " << first;
    total += std::stoi(m[4]);
    const std::string second = row(*out, drained, b);
    ASSERT_TRUE(std::regex_search(second, m, cols)) << b << " row: [" << second << "]\n" << *out;
    EXPECT_EQ(m[3], drained_shares[i]) << second;
    if (i == 2) {
      EXPECT_EQ(m[4], "0") << "no new connection to the drained backend: " << second;
    }
  }
  EXPECT_EQ(total, 120) << *out;
  // Torn down: its pin root (named in its first lines) and its namespaces are gone.
  const std::regex pinned(R"(maps pinned under (\S+) )");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(*out, m, pinned)) << *out;
  EXPECT_FALSE(std::filesystem::exists(m[1].str())) << m[1].str() << " left behind";
  // The pin root is "mg-test-topo-PID-N"; the namespaces are "mg-TAG-PID-N", same PID.
  const std::regex pid_in(R"(mg-test-topo-(\d+)-)");
  std::smatch p;
  const std::string pin = m[1].str();
  ASSERT_TRUE(std::regex_search(pin, p, pid_in)) << pin;
  auto netns = runCommand({"ip", "netns", "list"});
  ASSERT_TRUE(netns) << netns.error().message;
  EXPECT_EQ(netns->find("-" + p[1].str() + "-"), std::string::npos)
      << "namespaces left behind: " << *netns;
}

}  // namespace
}  // namespace meshgate::test
