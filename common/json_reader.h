// Reading typed configuration out of JSON, shared by the agent's and the proxy's config
// parsers: every error names the file and the field's path ("meshgate.json:
// vips[1].backends[0].weight: must be an integer 0..1000000, got -1"), unknown and
// duplicate keys are errors, and the first error wins.
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "meshgate/result.h"

namespace meshgate {

using Json = nlohmann::json;

// A value as the user wrote it, shortened for error messages.
std::string jsonShown(const Json& v);
std::string jsonChildPath(const std::string& parent, std::string_view key);  // "a.b"
std::string jsonIndexPath(const std::string& parent, size_t i);              // "a[3]"

// Parses a document; a syntax error or a duplicated key (json::parse keeps the last value
// silently) is an error prefixed with `source`.
Result<Json> parseJsonDocument(std::string_view text, const std::string& source);
// The whole file, or an error naming it.
Result<std::string> readTextFile(const std::string& path);

// A JSON object and its path in the document ("vips[1].backends[0]").
struct JsonNode {
  const Json& obj;
  std::string path;

  const Json* find(std::string_view key) const {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }
  std::string field(std::string_view key) const { return jsonChildPath(path, key); }
};

// Typed field readers. Each records the first error and returns a default, so a parser
// walks the whole document without early returns and reports firstError() at the end.
class JsonReader {
 public:
  explicit JsonReader(std::string source) : source_(std::move(source)) {}

  void error(const std::string& path, const std::string& problem);
  const std::optional<std::string>& firstError() const { return error_; }
  const std::string& source() const { return source_; }

  // True when `node` is an object whose keys are all in `allowed`.
  bool checkObject(const Json& node, const std::string& path,
                   std::initializer_list<std::string_view> allowed);
  // An optional integer field in min..max.
  uint64_t integer(const JsonNode& n, std::string_view key, uint64_t dflt, uint64_t min,
                   uint64_t max);
  bool boolean(const JsonNode& n, std::string_view key, bool dflt);
  std::optional<std::string> string(const JsonNode& n, std::string_view key, bool required);
  // An optional array field; null when absent or not an array (error recorded).
  const Json* array(const JsonNode& n, std::string_view key);
  // An optional object section of the root; null when absent, or invalid (error recorded).
  const Json* section(const JsonNode& root, std::string_view key,
                      std::initializer_list<std::string_view> allowed);

 private:
  std::string source_;
  std::optional<std::string> error_;
};

}  // namespace meshgate
