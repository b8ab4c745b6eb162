// The GoogleTest fixture the proxy's integration suites share: a namespace of the test's own
// with an nginx origin, a scratch directory, the real meshgate-proxy started on demand,
// recording backends, and the proxy's counters. At the end of each test the proxy is stopped
// with SIGTERM and must exit 0 (under the sanitizer build: no memory error, no leak).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/lib/proxy_harness.h"

namespace meshgate::test {

class ProxyFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: network namespaces";
    }
    auto ns = NetNs::create("px");
    ASSERT_TRUE(ns) << ns.error().message;
    ns_.emplace(std::move(*ns));
    auto dir = TempDir::create("proxy");
    ASSERT_TRUE(dir) << dir.error().message;
    dir_.emplace(std::move(*dir));
    auto nginx = NginxOrigin::start(*ns_, dir_->path(), freeLoopbackPort(*ns_));
    ASSERT_TRUE(nginx) << nginx.error().message;
    nginx_ = std::move(*nginx);
  }
  void TearDown() override {
    if (proxy_) {
      auto stopped = proxy_->stop();
      EXPECT_TRUE(stopped) << stopped.error().message;
    }
    proxy_.reset();  // before the backends: their connection threads end on its EOFs
    backends_.clear();
  }

  void startProxy(const std::string& config) {
    auto p = ProxyProcess::start(*ns_, dir_->path(), config);
    ASSERT_TRUE(p) << p.error().message;
    proxy_ = std::move(*p);
  }
  RecordingServer& backend(RecordingServer::Handler h) {
    auto s = RecordingServer::start(*ns_, std::move(h));
    EXPECT_TRUE(s) << s.error().message;
    backends_.push_back(std::move(*s));
    return *backends_.back();
  }
  // http://127.0.0.1:<port of listener "web"><path>
  std::string url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(proxy_->port("web")) + path;
  }
  // A counter of /metrics, without the "meshgate_proxy_" prefix.
  uint64_t metric(const std::string& name) {
    auto m = proxy_->metrics();
    EXPECT_TRUE(m) << m.error().message;
    return m ? (*m)["meshgate_proxy_" + name] : 0;
  }

  std::optional<NetNs> ns_;
  std::optional<TempDir> dir_;
  std::unique_ptr<NginxOrigin> nginx_;
  std::vector<std::unique_ptr<RecordingServer>> backends_;
  std::unique_ptr<ProxyProcess> proxy_;
};

}  // namespace meshgate::test
