#include "common/json_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <vector>

namespace meshgate {
namespace {

using json = Json;

constexpr size_t kMaxShownValueLen = 40;

// A SAX pass that reports the first duplicated key with its path: json::parse keeps the
// last value silently. (A json::parse callback could do this too, but nlohmann's callback
// parser is quadratic in array length.) Runs after json::parse accepted the syntax.
class DuplicateKeyFinder : public nlohmann::json_sax<json> {
 public:
  const std::optional<std::string>& firstDuplicate() const { return first_duplicate_; }

  bool null() override { return elementDone(); }
  bool boolean(bool) override { return elementDone(); }
  bool number_integer(number_integer_t) override { return elementDone(); }
  bool number_unsigned(number_unsigned_t) override { return elementDone(); }
  bool number_float(number_float_t, const string_t&) override { return elementDone(); }
  bool string(string_t&) override { return elementDone(); }
  bool binary(binary_t&) override { return elementDone(); }
  bool start_object(std::size_t) override { return push(false); }
  bool start_array(std::size_t) override { return push(true); }
  bool end_object() override { return pop(); }
  bool end_array() override { return pop(); }
  bool key(string_t& k) override {
    Frame& f = stack_.back();
    f.key = k;
    if (!f.seen.insert(k).second && !first_duplicate_) {
      first_duplicate_ = path();
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  struct Frame {
    bool is_array;
    std::string key;  // objects: the current key
    size_t index;     // arrays: the current element
    std::set<std::string> seen;
  };

  bool push(bool is_array) {
    stack_.push_back(Frame{is_array, {}, 0, {}});
    return true;
  }
  bool pop() {
    stack_.pop_back();
    return elementDone();
  }
  bool elementDone() {
    if (!stack_.empty() && stack_.back().is_array) {
      ++stack_.back().index;
    }
    return true;
  }
  std::string path() const {
    std::string p;
    for (const Frame& f : stack_) {
      p = f.is_array ? jsonIndexPath(p, f.index) : jsonChildPath(p, f.key);
    }
    return p;
  }

  std::vector<Frame> stack_;
  std::optional<std::string> first_duplicate_;
};

}  // namespace

std::string jsonShown(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > kMaxShownValueLen) {
    s.resize(kMaxShownValueLen);
    s += "...";
  }
  return s;
}

std::string jsonChildPath(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string jsonIndexPath(const std::string& parent, size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

// Linux dev_valid_name(), and printable ASCII only.
void JsonReader::error(const std::string& path, const std::string& problem) {
  if (!error_) {
    error_ = source_ + ": " + (path.empty() ? "" : path + ": ") + problem;
  }
}

bool JsonReader::checkObject(const Json& node, const std::string& path,
                             std::initializer_list<std::string_view> allowed) {
  if (!node.is_object()) {
    error(path, "must be an object, got " + jsonShown(node));
    return false;
  }
  for (const auto& [key, value] : node.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string expected;
      for (std::string_view a : allowed) {
        expected += (expected.empty() ? "" : ", ") + std::string(a);
      }
      error(jsonChildPath(path, key), "unknown field (expected one of: " + expected + ")");
      return false;
    }
  }
  return true;
}

uint64_t JsonReader::integer(const JsonNode& n, std::string_view key, uint64_t dflt, uint64_t min,
                             uint64_t max) {
  const Json* v = n.find(key);
  if (v == nullptr) {
    return dflt;
  }
  // nlohmann stores a non-negative JSON integer as unsigned; negatives are signed and
  // 1.0 or 1e3 are floats: all of those are out of every range here.
  const uint64_t value = v->is_number_unsigned() ? v->get<uint64_t>() : 0;
  if (!v->is_number_unsigned() || value < min || value > max) {
    error(n.field(key), "must be an integer " + std::to_string(min) + ".." + std::to_string(max) +
                            ", got " + jsonShown(*v));
    return dflt;
  }
  return value;
}

bool JsonReader::boolean(const JsonNode& n, std::string_view key, bool dflt) {
  const Json* v = n.find(key);
  if (v == nullptr) {
    return dflt;
  }
  if (!v->is_boolean()) {
    error(n.field(key), "must be true or false, got " + jsonShown(*v));
    return dflt;
  }
  return v->get<bool>();
}

std::optional<std::string> JsonReader::string(const JsonNode& n, std::string_view key,
                                              bool required) {
  const Json* v = n.find(key);
  if (v == nullptr && required) {
    error(n.field(key), "missing required field");
  } else if (v != nullptr && !v->is_string()) {
    error(n.field(key), "must be a string, got " + jsonShown(*v));
  } else if (v != nullptr) {
    return v->get<std::string>();
  }
  return std::nullopt;
}

const Json* JsonReader::array(const JsonNode& n, std::string_view key) {
  const Json* v = n.find(key);
  if (v != nullptr && !v->is_array()) {
    error(n.field(key), "must be an array, got " + jsonShown(*v));
    return nullptr;
  }
  return v;
}

const Json* JsonReader::section(const JsonNode& root, std::string_view key,
                                std::initializer_list<std::string_view> allowed) {
  const Json* v = root.find(key);
  return v != nullptr && checkObject(*v, jsonChildPath(root.path, key), allowed) ? v : nullptr;
}

Result<Json> parseJsonDocument(std::string_view text, const std::string& source) {
  // nlohmann reports errors by exception; they stop here.
  try {
    Json root = Json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/true,
                            /*ignore_comments=*/false);
    DuplicateKeyFinder dups;
    Json::sax_parse(text, &dups);
    if (dups.firstDuplicate()) {
      return fail(source + ": " + *dups.firstDuplicate() + ": duplicate key");
    }
    return root;
  } catch (const Json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 2, column 7: ..." -> drop the tag.
    std::string_view what = e.what();
    if (auto tag_end = what.find("] "); tag_end != std::string_view::npos) {
      what.remove_prefix(tag_end + 2);
    }
    return fail(source + ": " + std::string(what));
  } catch (const std::exception& e) {
    return fail(source + ": " + e.what());
  }
}

Result<std::string> readTextFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return failErrno(path + ": cannot read", errno);
  }
  std::string text;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) != 0) {
    if (n < 0 && errno != EINTR) {
      const int err = errno;
      ::close(fd);
      return failErrno(path + ": cannot read", err);
    }
    text.append(buf, static_cast<size_t>(std::max<ssize_t>(n, 0)));
  }
  ::close(fd);
  return text;
}

}  // namespace meshgate
