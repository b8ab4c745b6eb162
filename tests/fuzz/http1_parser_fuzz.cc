// libFuzzer target for proxy/http1/parser.h: runs the request and the response parser over
// the input fed whole, split in two, and (for short inputs) one byte at a time, and aborts
// when the runs disagree or the event contract breaks (events out of order, more body than
// Content-Length or max_body_bytes, CR/LF/NUL in a field value, untrimmed values).
//
// Byte 0 steers the run, the rest is the stream: bits 0..7 scaled to the stream length give
// the split point; bit 0 picks small limits; bit 1 calls finish() at the end; bits 2 and 3
// queue HEAD and CONNECT before a GET for the response parser.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string_view>
#include <vector>

#include "tests/fuzz/http1_replay.h"

namespace {

namespace h1 = meshgate::http1;

constexpr size_t kByteByByteMax = 512;

void check(bool ok, const char* what, const h1::test::Replay& a, const h1::test::Replay& b) {
  if (ok) {
    return;
  }
  std::fprintf(stderr, "http1 fuzz: %s\n", what);
  const size_t n = std::max(a.events.size(), b.events.size());
  for (size_t i = 0; i < n; ++i) {
    std::fprintf(stderr, "  %-60s | %s\n", i < a.events.size() ? a.events[i].c_str() : "",
                 i < b.events.size() ? b.events[i].c_str() : "");
  }
  std::fprintf(stderr, "  violation: '%s' / '%s'\n", a.violation.c_str(), b.violation.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const uint8_t steer = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t cut = steer * input.size() / 255;

  h1::Limits limits;
  if (steer & 1) {
    limits = h1::Limits{.max_start_line_bytes = 64,
                        .max_header_count = 8,
                        .max_header_bytes = 256,
                        .max_chunk_line_bytes = 16,
                        .max_body_bytes = 64};
  }
  std::vector<h1::Method> answers;
  if (steer & 4) {
    answers.push_back(h1::Method::kHead);
  }
  if (steer & 8) {
    answers.push_back(h1::Method::kConnect);
  }
  answers.push_back(h1::Method::kGet);

  std::vector<size_t> cuts;
  if (cut > 0 && cut < input.size()) {
    cuts.push_back(cut);
  }
  std::vector<size_t> every;
  if (input.size() <= kByteByByteMax && input.size() > 1) {
    every.resize(input.size() - 1);
    std::iota(every.begin(), every.end(), size_t{1});
  }

  for (h1::Mode mode : {h1::Mode::kRequest, h1::Mode::kResponse}) {
    const h1::test::ReplayOptions opts{mode, limits, answers, (steer & 2) != 0,
                                       mode == h1::Mode::kRequest};
    const h1::test::Replay whole = h1::test::replay(opts, input, {});
    check(whole.violation.empty(), "event contract broken (whole)", whole, whole);
    const h1::test::Replay split = h1::test::replay(opts, input, cuts);
    check(split.events == whole.events && split.violation.empty(),
          "split feed differs from whole feed", whole, split);
    if (!every.empty()) {
      const h1::test::Replay bytes = h1::test::replay(opts, input, every);
      check(bytes.events == whole.events && bytes.violation.empty(),
            "byte-by-byte feed differs from whole feed", whole, bytes);
    }
  }
  return 0;
}
