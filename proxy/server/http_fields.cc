#include "proxy/server/http_fields.h"

#include <charconv>

#include "proxy/http1/grammar.h"

namespace meshgate::proxy {

using http1::grammar::iequals;

bool hopByHop(std::string_view name) {
  // By length first: most fields are none of these, and most differ in length from all.
  switch (name.size()) {
    case 2:
      return iequals(name, "te");
    case 7:
      return iequals(name, "upgrade");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 14:
      return iequals(name, "http2-settings");
    case 16:
      return iequals(name, "proxy-connection");
    case 17:
      return iequals(name, "transfer-encoding");
    default:
      return false;
  }
}

bool clientAddressField(std::string_view name) {
  // By length first, as hopByHop(): most fields are none of these.
  switch (name.size()) {
    case 9:
      return iequals(name, "forwarded") || iequals(name, "x-real-ip");
    case 11:
      return iequals(name, "x-client-ip");
    case 14:
      return iequals(name, "true-client-ip");
    case 16:
      return iequals(name, "cf-connecting-ip") || iequals(name, "fastly-client-ip");
    case 19:
      return iequals(name, "x-cluster-client-ip");
    default:
      return false;
  }
}

std::string lowerCase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = http1::grammar::lower(c);
  }
  return out;
}

void appendChunkHeader(Buffer& out, size_t n) {
  char hex[24];
  auto [end, ec] = std::to_chars(hex, hex + sizeof hex - 2, n, 16);
  *end++ = '\r';
  *end++ = '\n';
  out.append(std::string_view(hex, static_cast<size_t>(end - hex)));
}

void appendStatusLine(Buffer& out, uint16_t status, std::string_view reason) {
  char line[16] = "HTTP/1.1 ";
  char* end = std::to_chars(line + 9, line + sizeof line, status).ptr;
  *end++ = ' ';
  out.append(std::string_view(line, static_cast<size_t>(end - line)));
  out.append(reason);
  out.append("\r\n");
}

bool idempotent(std::string_view method) {
  using namespace std::literals;
  for (std::string_view m : {"GET"sv, "HEAD"sv, "OPTIONS"sv, "TRACE"sv, "PUT"sv, "DELETE"sv}) {
    if (method == m) {
      return true;
    }
  }
  return false;
}

std::string_view reasonPhrase(uint16_t status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "";  // the reason phrase is optional (RFC 9112 §4)
  }
}

bool hasDotSegment(std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  // After each '/': one or two dots ('.' or "%2e"), then the end or another '/'.
  for (size_t slash = path.find('/'); slash != std::string_view::npos;
       slash = path.find('/', slash + 1)) {
    size_t i = slash + 1;
    int dots = 0;
    while (dots < 3 && i < path.size()) {
      if (path[i] == '.') {
        i += 1;
      } else if (path[i] == '%' && i + 2 < path.size() && path[i + 1] == '2' &&
                 (path[i + 2] == 'e' || path[i + 2] == 'E')) {
        i += 3;
      } else {
        break;
      }
      dots++;
    }
    if ((dots == 1 || dots == 2) && (i == path.size() || path[i] == '/')) {
      return true;
    }
  }
  return false;
}

HeaderList forwardableFields(HeaderList fields, bool lower_case) {
  const std::vector<std::string> named = namedByConnection(fields);
  size_t kept = 0;
  for (auto& field : fields) {
    if (!forwardable(field.first, named)) {
      continue;
    }
    if (lower_case) {
      for (char& c : field.first) {
        c = http1::grammar::lower(c);
      }
    }
    if (&fields[kept] != &field) {
      fields[kept] = std::move(field);
    }
    kept++;
  }
  fields.resize(kept);
  return fields;
}

bool forwardableTrailer(std::string_view name) {
  return !hopByHop(name) && !iequals(name, "content-length") && !announcesTrailers(name);
}

HeaderList forwardableTrailers(HeaderList fields, bool lower_case) {
  fields = forwardableFields(std::move(fields), lower_case);
  std::erase_if(fields, [](const auto& f) { return !forwardableTrailer(f.first); });
  return fields;
}

}  // namespace meshgate::proxy
