#include "proxy/server/http_fields.h"

#include <charconv>

#include "proxy/http1/grammar.h"

namespace meshgate::proxy {

using http1::grammar::iequals;

bool hopByHop(std::string_view name) {
  for (std::string_view h : {"connection", "keep-alive", "proxy-connection", "te",
                             "transfer-encoding", "upgrade", "trailer", "http2-settings"}) {
    if (iequals(name, h)) {
      return true;
    }
  }
  return false;
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
  for (std::string_view m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
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
  std::string path;
  for (size_t i = 0; i < target.size() && target[i] != '?'; i++) {
    if (target[i] == '%' && i + 2 < target.size() && target[i + 1] == '2' &&
        (target[i + 2] == 'e' || target[i + 2] == 'E')) {
      path += '.';
      i += 2;
    } else {
      path += target[i];
    }
  }
  for (size_t pos = 0; (pos = path.find("/.", pos)) != std::string::npos; pos++) {
    const std::string_view rest = std::string_view(path).substr(pos + 2);
    if (rest.empty() || rest[0] == '/' ||
        (rest[0] == '.' && (rest.size() == 1 || rest[1] == '/'))) {
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

}  // namespace meshgate::proxy
