// The C++ error model: fallible calls return Result<T>; the Error says what failed and
// on what, in libbpf's manner: "map 'mg_vips': pin failed: Permission denied".
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace meshgate {

struct Error {
  std::string message;
  int errnum = 0;  // positive errno when a syscall or libbpf call failed, else 0

  // "what: strerror(errnum)".
  static Error fromErrno(std::string what, int errnum) {
    if (errnum < 0) {
      errnum = -errnum;
    }
    return Error{std::move(what) + ": " + std::strerror(errnum), errnum};
  }
};

template <class T>
using Result = std::expected<T, Error>;

// Shorthand for returning an error: `return fail("config: field 'vips[0].port': ...");`
inline std::unexpected<Error> fail(std::string message) {
  return std::unexpected(Error{std::move(message), 0});
}
inline std::unexpected<Error> failErrno(std::string what, int errnum) {
  return std::unexpected(Error::fromErrno(std::move(what), errnum));
}

}  // namespace meshgate
