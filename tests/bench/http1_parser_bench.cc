// Benchmarks the HTTP/1.1 parser (proxy/http1/parser.h) per core on a typical ~500-byte
// browser GET with 12 header fields, a batch of 16 of them pipelined in one buffer, and a
// chunked response of ~4 KiB, against a plain memmem() scan for "\r\n\r\n" over the same
// bytes measured in the same run, interleaved: the floor for merely finding where heads end.
#include <string.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http1/parser.h"
#include "tests/lib/bench.h"

namespace h1 = meshgate::http1;
namespace mt = meshgate::test;

namespace {

using meshgate::test::nsPerIteration;

constexpr int kReps = 15;
constexpr double kTargetMsPerRep = 20;

const std::string kBrowserGet =
    "GET /catalog/shoes/running?color=blue&size=42&sort=price_asc HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Referer: https://shop.example.com/catalog/shoes\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=4f9d2c1ab7e34d8f; theme=dark; consent=1\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "\r\n";
constexpr int kPipelined = 16;

std::string chunkedResponse() {
  std::string r =
      "HTTP/1.1 200 OK\r\n"
      "Date: Tue, 25 Nov 2025 12:00:00 GMT\r\n"
      "Server: origin/1.0\r\n"
      "Content-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n"
      "Cache-Control: no-store\r\n"
      "Vary: Accept-Encoding\r\n"
      "\r\n";
  for (int i = 0; i < 4; ++i) {
    r += "400\r\n" + std::string(1024, static_cast<char>('a' + i)) + "\r\n";
  }
  return r + "0\r\n\r\n";
}

// What a proxy's sink does at the least: look at every event.
class CountingSink : public h1::Sink {
 public:
  uint64_t messages = 0, headers = 0, body = 0;
  void onHeader(std::string_view, std::string_view) override { ++headers; }
  void onBody(std::span<const char> d) override { body += d.size(); }
  void onMessageComplete() override { ++messages; }
};

// Offsets just past each "\r\n\r\n" in `bytes`, scanning all of it.
uint64_t memmemScan(std::string_view bytes) {
  uint64_t found = 0;
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  while (const void* hit = memmem(p, static_cast<size_t>(end - p), "\r\n\r\n", 4)) {
    p = static_cast<const char*>(hit) + 4;
    found += static_cast<uint64_t>(p - bytes.data());
  }
  return found;
}

struct Measured {
  std::vector<double> ours, base;  // ns per buffer
};

// Interleaves kReps rounds of parsing `bytes` (one buffer per iteration, a parser that lives
// across iterations as on a keep-alive connection) and of the memmem scan.
Measured measure(h1::Mode mode, std::string_view bytes, uint64_t& sink_total) {
  CountingSink sink;
  h1::Parser parser(mode, sink);
  auto parseOnce = [&] {
    if (mode == h1::Mode::kResponse) {
      parser.expectResponseTo(h1::Method::kGet);
    }
    auto fed = parser.feed(bytes);
    if (!fed) {
      std::fprintf(stderr, "bench: parse failed: %s\n",
                   h1::toError(mode, fed.error()).message.c_str());
      std::exit(1);
    }
  };
  volatile uint64_t scan_total = 0;
  auto scanOnce = [&] { scan_total = scan_total + memmemScan(bytes); };
  // Size the loops to ~kTargetMsPerRep each.
  const double probe = nsPerIteration(200, parseOnce);
  const int iters = std::max(1000, static_cast<int>(kTargetMsPerRep * 1e6 / probe));
  Measured m;
  for (int rep = 0; rep < kReps; ++rep) {
    m.ours.push_back(nsPerIteration(iters, parseOnce));
    m.base.push_back(nsPerIteration(iters, scanOnce));
  }
  sink_total += sink.messages + sink.headers + sink.body + scan_total;
  return m;
}

void report(mt::BenchReport& out, const std::string& name, const char* unit_name, int messages,
            size_t bytes, const Measured& m) {
  const double ours = mt::median(m.ours) / messages;
  const double base = mt::median(m.base) / messages;
  const double mb = static_cast<double>(bytes) / messages;  // bytes per message
  char note[256];
  std::snprintf(note, sizeof(note),
                "median of %d; %zu bytes per buffer; ours %.0f MB/s (min-max %.1f-%.1f ns), "
                "memmem %.0f MB/s",
                kReps, bytes, mb / ours * 1e3, mt::minOf(m.ours) / messages,
                mt::maxOf(m.ours) / messages, mb / base * 1e3);
  out.add({name, std::string("ns_per_") + unit_name, "ns", ours, base,
           "memmem \"\\r\\n\\r\\n\" scan of the same bytes", true, note});
}

}  // namespace

int main(int argc, char** argv) {
  std::string pipelined;
  for (int i = 0; i < kPipelined; ++i) {
    pipelined += kBrowserGet;
  }
  const std::string chunked = chunkedResponse();
  uint64_t sink_total = 0;

  mt::BenchReport out("http1_parser");
  report(out, "browser_get_" + std::to_string(kBrowserGet.size()) + "B", "request", 1,
         kBrowserGet.size(), measure(h1::Mode::kRequest, kBrowserGet, sink_total));
  report(out, "pipelined_" + std::to_string(kPipelined) + "_gets", "request", kPipelined,
         pipelined.size(), measure(h1::Mode::kRequest, pipelined, sink_total));
  report(out, "chunked_response_" + std::to_string(chunked.size()) + "B", "response", 1,
         chunked.size(), measure(h1::Mode::kResponse, chunked, sink_total));
  std::printf("(checksum %llu)\n", static_cast<unsigned long long>(sink_total));
  return out.finish(argc, argv);
}
