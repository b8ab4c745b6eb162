#include "tools/meshgatectl/quic_lb_cmd.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "meshgate/quic_lb.h"
#include "meshgate/result.h"

namespace meshgate::ctl {
namespace {

namespace ql = meshgate::quiclb;

constexpr int kExitOk = 0;
constexpr int kExitInternal = 1;
constexpr int kExitUsage = 2;  // bad arguments, and unroutable CIDs on decode

constexpr const char* kUsage =
    "usage: meshgatectl quic-lb encode --cr N --sid-len N --nonce-len N [--key HEX]\n"
    "                                  [--self-encoded-length] --sid HEX --nonce HEX\n"
    "       meshgatectl quic-lb decode --cr N --sid-len N --nonce-len N [--key HEX]\n"
    "                                  [--self-encoded-length] CIDHEX\n"
    "  encode   prints the connection ID in lower-case hex\n"
    "  decode   prints the server ID in hex, or why the CID is unroutable (exit 2)\n"
    "  --cr 0..6, --sid-len 1..15, --nonce-len 4..18, sid-len + nonce-len <= 19\n"
    "  --key    AES-128 key, 32 hex digits; without it CIDs are plaintext\n"
    "  --self-encoded-length  the first octet's low 5 bits hold the CID length - 1\n"
    "    (without it encode leaves them 0)\n"
    "Exit status: 0 done, 2 bad arguments or unroutable CID, 1 internal error.\n";

struct Args {
  std::string command;  // "encode" or "decode"
  std::optional<std::string> cr, sid_len, nonce_len, key, sid, nonce;
  bool self_encoded_length = false;
  std::optional<std::string> cid;  // decode's positional argument
};

// The slot of a flag that takes a value, or null when `flag` is not one for this command.
std::optional<std::string>* valueFlag(Args& args, std::string_view flag) {
  const bool encode = args.command == "encode";
  const std::pair<std::string_view, std::optional<std::string>*> flags[] = {
      {"--cr", &args.cr},
      {"--sid-len", &args.sid_len},
      {"--nonce-len", &args.nonce_len},
      {"--key", &args.key},
      {"--sid", encode ? &args.sid : nullptr},
      {"--nonce", encode ? &args.nonce : nullptr},
  };
  for (const auto& [name, slot] : flags) {
    if (name == flag) {
      return slot;
    }
  }
  return nullptr;
}

Result<Args> parseArgs(int argc, char** argv) {
  Args args;
  args.command = argv[1];
  if (args.command != "encode" && args.command != "decode") {
    return fail("unknown subcommand '" + args.command + "' (encode or decode)");
  }
  for (int i = 2; i < argc; i++) {
    const std::string_view arg = argv[i];
    if (arg == "--self-encoded-length") {
      args.self_encoded_length = true;
    } else if (auto* slot = valueFlag(args, arg)) {
      if (i + 1 >= argc) {
        return fail(std::string(arg) + ": missing value");
      }
      if (*slot) {
        return fail(std::string(arg) + ": given twice");
      }
      *slot = argv[++i];
    } else if (args.command == "decode" && !arg.starts_with("-") && !args.cid) {
      args.cid = std::string(arg);
    } else {
      return fail("unexpected argument '" + std::string(arg) + "' for " + args.command);
    }
  }
  for (auto [flag, value] : {std::pair{"--cr", &args.cr}, std::pair{"--sid-len", &args.sid_len},
                             std::pair{"--nonce-len", &args.nonce_len}}) {
    if (!*value) {
      return fail(std::string(flag) + " is required");
    }
  }
  if (args.command == "encode" && !args.sid) {
    return fail("--sid is required");
  }
  if (args.command == "encode" && !args.nonce) {
    return fail("--nonce is required");
  }
  if (args.command == "decode" && !args.cid) {
    return fail("CIDHEX (the connection ID to decode) is required");
  }
  return args;
}

Result<uint8_t> parseNumber(std::string_view flag, const std::string& text, unsigned lo,
                            unsigned hi, std::string_view note = "") {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return fail(std::string(flag) + ": '" + text + "' is not a number");
  }
  if (value < lo || value > hi) {
    return fail(std::string(flag) + ": " + text + " is out of range " + std::to_string(lo) + ".." +
                std::to_string(hi) + std::string(note));
  }
  return static_cast<uint8_t>(value);
}

Result<std::vector<uint8_t>> parseHexArg(std::string_view name, const std::string& text,
                                         std::optional<size_t> want_len, std::string_view why) {
  auto bytes = ql::parseHex(text);
  if (!bytes) {
    return fail(std::string(name) + ": " + bytes.error().message);
  }
  if (want_len && bytes->size() != *want_len) {
    return fail(std::string(name) + ": " + std::to_string(bytes->size()) + " octets, want " +
                std::to_string(*want_len) + " (" + std::string(why) + ")");
  }
  return bytes;
}

Result<ql::QuicLbConfig> configFromArgs(const Args& args) {
  auto cr = parseNumber("--cr", *args.cr, 0, ql::kMaxConfigRotation,
                        " (7 is reserved for unroutable CIDs)");
  if (!cr) {
    return std::unexpected(cr.error());
  }
  auto sid_len = parseNumber("--sid-len", *args.sid_len, ql::kMinServerIdLen, ql::kMaxServerIdLen);
  if (!sid_len) {
    return std::unexpected(sid_len.error());
  }
  auto nonce_len = parseNumber("--nonce-len", *args.nonce_len, ql::kMinNonceLen, ql::kMaxNonceLen);
  if (!nonce_len) {
    return std::unexpected(nonce_len.error());
  }
  std::optional<std::array<uint8_t, ql::kKeyLen>> key;
  if (args.key) {
    auto bytes = parseHexArg("--key", *args.key, ql::kKeyLen, "AES-128 key");
    if (!bytes) {
      return std::unexpected(bytes.error());
    }
    key.emplace();
    std::copy(bytes->begin(), bytes->end(), key->begin());
  }
  auto config = ql::QuicLbConfig::make(*cr, *sid_len, *nonce_len, key, args.self_encoded_length);
  if (!config) {
    return fail("--sid-len/--nonce-len: " + config.error().message);
  }
  return config;
}

int usageError(const std::string& message) {
  std::fprintf(stderr, "meshgatectl quic-lb: %s\n(meshgatectl quic-lb --help for usage)\n",
               message.c_str());
  return kExitUsage;
}

}  // namespace

int runQuicLbCommand(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  const std::string_view first = argv[1];
  if (first == "-h" || first == "--help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  auto args = parseArgs(argc, argv);
  if (!args) {
    return usageError(args.error().message);
  }
  auto config = configFromArgs(*args);
  if (!config) {
    return usageError(config.error().message);
  }
  auto codec = ql::QuicLbCodec::create(*config);
  if (!codec) {
    std::fprintf(stderr, "meshgatectl: %s\n", codec.error().message.c_str());
    return kExitInternal;
  }

  if (args->command == "encode") {
    auto sid = parseHexArg("--sid", *args->sid, config->server_id_len, "--sid-len");
    if (!sid) {
      return usageError(sid.error().message);
    }
    auto nonce = parseHexArg("--nonce", *args->nonce, config->nonce_len, "--nonce-len");
    if (!nonce) {
      return usageError(nonce.error().message);
    }
    auto cid = codec->encode(*sid, *nonce);
    if (!cid) {
      std::fprintf(stderr, "meshgatectl: %s\n", cid.error().message.c_str());
      return kExitInternal;
    }
    std::printf("%s\n", ql::toHex(*cid).c_str());
    return kExitOk;
  }

  auto cid = parseHexArg("CIDHEX", *args->cid, std::nullopt, "");
  if (!cid) {
    return usageError(cid.error().message);
  }
  auto sid = codec->decode(*cid);
  if (!sid) {
    // Every decode failure, whatever its errnum, means "route this CID by 4-tuple".
    std::fprintf(stderr, "meshgatectl: %s\n", sid.error().message.c_str());
    return kExitUsage;
  }
  std::printf("%s\n", ql::toHex(*sid).c_str());
  return kExitOk;
}

}  // namespace meshgate::ctl
