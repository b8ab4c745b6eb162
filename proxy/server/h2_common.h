// What the HTTP/2 downstream (http2_session) and upstream (h2_upstream) share on top of
// nghttp2: session ownership and header-list conversion.
#pragma once

#include <nghttp2/nghttp2.h>

#include <memory>
#include <string_view>
#include <vector>

#include "proxy/routing/router.h"

namespace meshgate::proxy {

struct Nghttp2SessionDeleter {
  void operator()(nghttp2_session* s) const { nghttp2_session_del(s); }
};
using Nghttp2Session = std::unique_ptr<nghttp2_session, Nghttp2SessionDeleter>;

struct Nghttp2CallbacksDeleter {
  void operator()(nghttp2_session_callbacks* c) const { nghttp2_session_callbacks_del(c); }
};
struct Nghttp2OptionDeleter {
  void operator()(nghttp2_option* o) const { nghttp2_option_del(o); }
};

// A name/value pair for nghttp2 (no copy: the strings must outlive the submit call, which
// copies them). Names must be lower case.
inline nghttp2_nv nv(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

inline void appendNvs(std::vector<nghttp2_nv>& out, const HeaderList& fields) {
  for (const auto& [name, value] : fields) {
    out.push_back(nv(name, value));
  }
}

inline std::string_view view(const uint8_t* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

}  // namespace meshgate::proxy
