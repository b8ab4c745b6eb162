// meshgate-quic-server: a small HTTP/3 server on libngtcp2 + nghttp3 (GnuTLS) whose
// connection IDs are QUIC-LB routable, built with meshgate's QUIC-LB library. It is how a
// QUIC server integrates with meshgate's balancer, and the backend of the migration tests.
//
// The integration is one callback: every CID the server issues (the SCID of its first
// Handshake and every NEW_CONNECTION_ID) comes from QuicLbCodec::encode() with this
// server's --server-id, so the balancer can read the server ID back out of any packet the
// client sends, whatever the client's address is by then. All servers behind one VIP share
// --reset-secret, so any of them can send a valid stateless reset for another's CID.
//
// It serves GET /bytes/N (N bytes of a fixed pattern, see bodyByte()) and GET /migrate/N
// (the same bytes, but past the first half only a trickle of kTrickleBytes per kTrickleGap
// until the client has been validated on a new path: the transfer completes in reasonable
// time only if the client's migrated packets reach this server). The trickle keeps the
// client busy: Debian's ngtcp2 client fires its --change-local-addr timer late when no
// packet arrives at all.
// One thread, one UDP socket, poll(); stdout gets one line per event the tests wait for.
#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "meshgate/quic_lb.h"
#include "tools/quic-server/body.h"

namespace {

using meshgate::Result;
using meshgate::fail;
namespace quiclb = meshgate::quiclb;

volatile std::sig_atomic_t g_stop = 0;

ngtcp2_tstamp now() {
  return static_cast<ngtcp2_tstamp>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// The body bytes (tools/quic-server/body.h), one period plus room for a vector that starts
// near its end, so that any body slice is one contiguous span of this array.
using meshgate::quicserver::bodyByte;
constexpr size_t kPatternLen = meshgate::quicserver::kBodyPeriod;
const std::array<uint8_t, kPatternLen + 4096>& pattern() {
  static const auto p = [] {
    std::array<uint8_t, kPatternLen + 4096> a{};
    for (size_t i = 0; i < a.size(); i++) {
      a[i] = bodyByte(i);
    }
    return a;
  }();
  return p;
}

std::string addrText(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(in->sin_port));
  }
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
  inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(in6->sin6_port));
}

bool sameAddr(const sockaddr* a, const sockaddr* b) {
  if (a->sa_family != b->sa_family) {
    return false;
  }
  if (a->sa_family == AF_INET) {
    auto* x = reinterpret_cast<const sockaddr_in*>(a);
    auto* y = reinterpret_cast<const sockaddr_in*>(b);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  auto* x = reinterpret_cast<const sockaddr_in6*>(a);
  auto* y = reinterpret_cast<const sockaddr_in6*>(b);
  return x->sin6_port == y->sin6_port &&
         std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

void randomBytes(uint8_t* dest, size_t len) {
  gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

struct Options {
  sockaddr_storage listen{};
  socklen_t listen_len = 0;
  std::string cert, key;
  std::optional<quiclb::QuicLbConfig> lb;
  std::vector<uint8_t> server_id;
  std::vector<uint8_t> reset_secret;
  bool verbose = false;
};

class Server;

constexpr uint64_t kTrickleBytes = 1000;
constexpr ngtcp2_duration kTrickleGap = 10 * NGTCP2_MILLISECONDS;

struct Stream {
  int64_t id = -1;
  std::string method, path;
  uint64_t total = 0;    // body length
  uint64_t offered = 0;  // bytes handed to nghttp3 so far
  uint64_t hold_at = 0;  // /migrate: trickle from here until the path changed (0 = never)
  bool held = false;     // blocked in nghttp3 until next_trickle
  ngtcp2_tstamp next_trickle = 0;
};

// One QUIC connection: ngtcp2 + its GnuTLS session + the HTTP/3 layer.
class Connection {
 public:
  Connection(Server& server, const sockaddr* remote, socklen_t remote_len)
      : server_(server), remote_len_(remote_len) {
    std::memcpy(&remote_, remote, remote_len);
  }
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Result<void> init(const ngtcp2_pkt_hd& hd, const ngtcp2_cid& scid);
  // Feeds one datagram; false when the connection is finished and must be removed.
  bool onRead(const uint8_t* data, size_t len, const sockaddr* remote, socklen_t remote_len);
  // Sends what ngtcp2 and nghttp3 have; false when the connection must be removed.
  bool write();
  // Timer expiry; false when the connection must be removed.
  bool onExpiry();
  // The earliest of ngtcp2's timers and the next trickle of a held stream.
  ngtcp2_tstamp expiry() const;
  const std::string& name() const { return name_; }

  // Callbacks (static trampolines below forward to these).
  int onGetNewCid(ngtcp2_cid* cid, uint8_t* token, size_t cidlen);
  int onRemoveCid(const ngtcp2_cid* cid);
  int onRecvStreamData(uint32_t flags, int64_t stream_id, const uint8_t* data, size_t len);
  int onAckedStreamData(int64_t stream_id, uint64_t datalen);
  int onStreamClose(uint32_t flags, int64_t stream_id, uint64_t app_error_code);
  int onRecvTxKey(ngtcp2_crypto_level level);
  int onPathValidation(const ngtcp2_path* path, ngtcp2_path_validation_result res);
  int onHeader(int64_t stream_id, int32_t token, nghttp3_rcbuf* name, nghttp3_rcbuf* value);
  int onEndStream(int64_t stream_id);
  nghttp3_ssize readBody(int64_t stream_id, nghttp3_vec* vec, size_t veccnt, uint32_t* pflags);

  ngtcp2_conn* conn() { return conn_; }
  nghttp3_conn* h3() { return h3_; }
  Stream* stream(int64_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : &it->second;
  }

 private:
  Result<void> setupTls();
  Result<void> setupHttp3();
  Result<ngtcp2_cid> newCid();
  bool closeWithError(int liberr);
  bool sendPacket(const ngtcp2_path& path, const uint8_t* data, size_t len);

  Server& server_;
  sockaddr_storage remote_{};  // the client's first address: a path validated elsewhere is a migration
  socklen_t remote_len_ = 0;
  std::string name_;  // hex of the first SCID, for log lines
  ngtcp2_conn* conn_ = nullptr;
  gnutls_session_t tls_ = nullptr;
  nghttp3_conn* h3_ = nullptr;
  ngtcp2_crypto_conn_ref conn_ref_{};
  std::map<int64_t, Stream> streams_;
  std::vector<std::string> cids_;  // every CID of ours the client may use, for the server's table
  bool migrated_ = false;
};

class Server {
 public:
  explicit Server(Options opts) : opts_(std::move(opts)) {}
  ~Server() {
    conns_.clear();
    if (cred_) {
      gnutls_certificate_free_credentials(cred_);
    }
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  Result<void> start();
  Result<void> run();

  const Options& opts() const { return opts_; }
  int fd() const { return fd_; }
  gnutls_certificate_credentials_t credentials() const { return cred_; }
  const sockaddr* localAddr() const { return reinterpret_cast<const sockaddr*>(&opts_.listen); }
  socklen_t localLen() const { return opts_.listen_len; }

  // A CID for a new connection or NEW_CONNECTION_ID: QUIC-LB encoded with our server ID
  // when a config is set, random otherwise.
  Result<std::vector<uint8_t>> issueCid();
  void statelessResetToken(uint8_t* token, const ngtcp2_cid& cid) const {
    ngtcp2_crypto_generate_stateless_reset_token(token, opts_.reset_secret.data(),
                                                 opts_.reset_secret.size(), &cid);
  }
  void addCid(const std::string& cid, Connection* c) { by_cid_[cid] = c; }
  void removeCid(const std::string& cid) { by_cid_.erase(cid); }
  size_t shortDcidLen() const { return opts_.lb ? opts_.lb->cidLen() : kRandomCidLen; }

  static constexpr size_t kRandomCidLen = 17;

 private:
  void onDatagram(const uint8_t* data, size_t len, const sockaddr* remote, socklen_t remote_len);
  void sendStatelessReset(const ngtcp2_version_cid& vc, size_t pkt_len, const sockaddr* remote,
                          socklen_t remote_len);
  void sendVersionNegotiation(const ngtcp2_version_cid& vc, const sockaddr* remote,
                              socklen_t remote_len);
  void remove(Connection* c);

  Options opts_;
  int fd_ = -1;
  gnutls_certificate_credentials_t cred_ = nullptr;
  std::optional<quiclb::QuicLbCodec> codec_;
  uint64_t nonce_counter_ = 0;
  std::vector<std::unique_ptr<Connection>> conns_;
  std::unordered_map<std::string, Connection*> by_cid_;
};

// ---- ngtcp2 / nghttp3 trampolines ----------------------------------------------------------

Connection* self(void* user_data) { return static_cast<Connection*>(user_data); }

void ngtcp2Log(void*, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

void randCb(uint8_t* dest, size_t destlen, const ngtcp2_rand_ctx*) { randomBytes(dest, destlen); }

int getNewCidCb(ngtcp2_conn*, ngtcp2_cid* cid, uint8_t* token, size_t cidlen, void* ud) {
  return self(ud)->onGetNewCid(cid, token, cidlen);
}
int removeCidCb(ngtcp2_conn*, const ngtcp2_cid* cid, void* ud) { return self(ud)->onRemoveCid(cid); }
int recvStreamDataCb(ngtcp2_conn*, uint32_t flags, int64_t stream_id, uint64_t, const uint8_t* data,
                     size_t len, void* ud, void*) {
  return self(ud)->onRecvStreamData(flags, stream_id, data, len);
}
int ackedStreamDataCb(ngtcp2_conn*, int64_t stream_id, uint64_t, uint64_t datalen, void* ud, void*) {
  return self(ud)->onAckedStreamData(stream_id, datalen);
}
int streamCloseCb(ngtcp2_conn*, uint32_t flags, int64_t stream_id, uint64_t app_error_code, void* ud,
                  void*) {
  return self(ud)->onStreamClose(flags, stream_id, app_error_code);
}
int streamResetCb(ngtcp2_conn*, int64_t stream_id, uint64_t, uint64_t, void* ud, void*) {
  auto* c = self(ud);
  if (c->h3() && nghttp3_conn_shutdown_stream_read(c->h3(), stream_id) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}
int streamStopSendingCb(ngtcp2_conn*, int64_t stream_id, uint64_t, void* ud, void*) {
  auto* c = self(ud);
  if (c->h3() && nghttp3_conn_shutdown_stream_read(c->h3(), stream_id) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}
int extendMaxRemoteStreamsBidiCb(ngtcp2_conn*, uint64_t max_streams, void* ud) {
  auto* c = self(ud);
  if (c->h3()) {
    nghttp3_conn_set_max_client_streams_bidi(c->h3(), max_streams);
  }
  return 0;
}
int extendMaxStreamDataCb(ngtcp2_conn*, int64_t stream_id, uint64_t, void* ud, void*) {
  auto* c = self(ud);
  if (c->h3() && nghttp3_conn_unblock_stream(c->h3(), stream_id) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}
int recvTxKeyCb(ngtcp2_conn*, ngtcp2_crypto_level level, void* ud) {
  return self(ud)->onRecvTxKey(level);
}
int pathValidationCb(ngtcp2_conn*, uint32_t, const ngtcp2_path* path,
                     ngtcp2_path_validation_result res, void* ud) {
  return self(ud)->onPathValidation(path, res);
}

// nghttp3 says which body bytes the client acknowledged. The body points into the static
// pattern, so there is nothing of ours to release.
int h3AckedDataCb(nghttp3_conn*, int64_t, uint64_t, void*, void*) { return 0; }
int h3StreamCloseCb(nghttp3_conn*, int64_t stream_id, uint64_t, void* ud, void*) {
  auto* c = self(ud);
  if (ngtcp2_is_bidi_stream(stream_id)) {
    ngtcp2_conn_extend_max_streams_bidi(c->conn(), 1);
  }
  return 0;
}
int h3DeferredConsumeCb(nghttp3_conn*, int64_t stream_id, size_t consumed, void* ud, void*) {
  auto* c = self(ud);
  ngtcp2_conn_extend_max_stream_offset(c->conn(), stream_id, consumed);
  ngtcp2_conn_extend_max_offset(c->conn(), consumed);
  return 0;
}
int h3RecvDataCb(nghttp3_conn* h3, int64_t stream_id, const uint8_t*, size_t len, void* ud,
                 void* sud) {
  return h3DeferredConsumeCb(h3, stream_id, len, ud, sud);  // request bodies are discarded
}
int h3RecvHeaderCb(nghttp3_conn*, int64_t stream_id, int32_t token, nghttp3_rcbuf* name,
                   nghttp3_rcbuf* value, uint8_t, void* ud, void*) {
  return self(ud)->onHeader(stream_id, token, name, value);
}
int h3EndStreamCb(nghttp3_conn*, int64_t stream_id, void* ud, void*) {
  return self(ud)->onEndStream(stream_id);
}
int h3StopSendingCb(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code, void* ud, void*) {
  auto* c = self(ud);
  if (ngtcp2_conn_shutdown_stream_read(c->conn(), stream_id, app_error_code) != 0) {
    return NGHTTP3_ERR_CALLBACK_FAILURE;
  }
  return 0;
}
int h3ResetStreamCb(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code, void* ud, void*) {
  auto* c = self(ud);
  if (ngtcp2_conn_shutdown_stream_write(c->conn(), stream_id, app_error_code) != 0) {
    return NGHTTP3_ERR_CALLBACK_FAILURE;
  }
  return 0;
}
nghttp3_ssize h3ReadBodyCb(nghttp3_conn*, int64_t stream_id, nghttp3_vec* vec, size_t veccnt,
                           uint32_t* pflags, void* ud, void*) {
  return self(ud)->readBody(stream_id, vec, veccnt, pflags);
}

ngtcp2_conn* connFromRef(ngtcp2_crypto_conn_ref* ref) {
  return static_cast<Connection*>(ref->user_data)->conn();
}

// ---- Connection ------------------------------------------------------------------------------

Connection::~Connection() {
  for (const auto& cid : cids_) {
    server_.removeCid(cid);
  }
  if (h3_) {
    nghttp3_conn_del(h3_);
  }
  if (conn_) {
    ngtcp2_conn_del(conn_);
  }
  if (tls_) {
    gnutls_deinit(tls_);
  }
}

Result<ngtcp2_cid> Connection::newCid() {
  auto bytes = server_.issueCid();
  if (!bytes) {
    return std::unexpected(bytes.error());
  }
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, bytes->data(), bytes->size());
  return cid;
}

Result<void> Connection::init(const ngtcp2_pkt_hd& hd, const ngtcp2_cid& scid) {
  name_ = quiclb::toHex({scid.data, scid.datalen});
  ngtcp2_callbacks cb{};
  cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb.encrypt = ngtcp2_crypto_encrypt_cb;
  cb.decrypt = ngtcp2_crypto_decrypt_cb;
  cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb.recv_stream_data = recvStreamDataCb;
  cb.acked_stream_data_offset = ackedStreamDataCb;
  cb.stream_close = streamCloseCb;
  cb.rand = randCb;
  cb.get_new_connection_id = getNewCidCb;
  cb.remove_connection_id = removeCidCb;
  cb.update_key = ngtcp2_crypto_update_key_cb;
  cb.path_validation = pathValidationCb;
  cb.stream_reset = streamResetCb;
  cb.extend_max_remote_streams_bidi = extendMaxRemoteStreamsBidiCb;
  cb.extend_max_stream_data = extendMaxStreamDataCb;
  cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb.stream_stop_sending = streamStopSendingCb;
  cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb.recv_tx_key = recvTxKeyCb;

  ngtcp2_settings settings;
  ngtcp2_settings_default(&settings);
  settings.initial_ts = now();
  if (server_.opts().verbose) {
    settings.log_printf = ngtcp2Log;
  }

  ngtcp2_transport_params params;
  ngtcp2_transport_params_default(&params);
  params.initial_max_stream_data_bidi_local = 256 * 1024;
  params.initial_max_stream_data_bidi_remote = 256 * 1024;
  params.initial_max_stream_data_uni = 256 * 1024;
  params.initial_max_data = 1024 * 1024;
  params.initial_max_streams_bidi = 100;
  params.initial_max_streams_uni = 3;
  params.max_idle_timeout = 30 * NGTCP2_SECONDS;
  params.active_connection_id_limit = 4;
  params.original_dcid = hd.dcid;
  params.stateless_reset_token_present = 1;
  server_.statelessResetToken(params.stateless_reset_token, scid);

  ngtcp2_path path{
      {const_cast<sockaddr*>(server_.localAddr()), server_.localLen()},
      {reinterpret_cast<sockaddr*>(&remote_), remote_len_},
      nullptr};
  if (int rv = ngtcp2_conn_server_new(&conn_, &hd.scid, &scid, &path, hd.version, &cb, &settings,
                                      &params, nullptr, this);
      rv != 0) {
    return fail(std::string("ngtcp2_conn_server_new: ") + ngtcp2_strerror(rv));
  }
  if (auto r = setupTls(); !r) {
    return r;
  }
  // Packets may carry the client's original DCID until the handshake is done.
  cids_.emplace_back(reinterpret_cast<const char*>(hd.dcid.data), hd.dcid.datalen);
  server_.addCid(cids_.back(), this);
  cids_.emplace_back(reinterpret_cast<const char*>(scid.data), scid.datalen);
  server_.addCid(cids_.back(), this);
  return {};
}

Result<void> Connection::setupTls() {
  if (int rv = gnutls_init(&tls_, GNUTLS_SERVER | GNUTLS_ENABLE_EARLY_DATA |
                                      GNUTLS_NO_END_OF_EARLY_DATA);
      rv != 0) {
    return fail(std::string("gnutls_init: ") + gnutls_strerror(rv));
  }
  const char* err = nullptr;
  if (int rv = gnutls_priority_set_direct(
          tls_,
          "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
          "+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1",
          &err);
      rv != 0) {
    return fail(std::string("gnutls_priority_set_direct: ") + gnutls_strerror(rv));
  }
  if (ngtcp2_crypto_gnutls_configure_server_session(tls_) != 0) {
    return fail("ngtcp2_crypto_gnutls_configure_server_session failed");
  }
  if (int rv = gnutls_credentials_set(tls_, GNUTLS_CRD_CERTIFICATE, server_.credentials());
      rv != 0) {
    return fail(std::string("gnutls_credentials_set: ") + gnutls_strerror(rv));
  }
  gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>("h3")), 2};
  if (int rv = gnutls_alpn_set_protocols(tls_, &alpn, 1, GNUTLS_ALPN_MANDATORY); rv != 0) {
    return fail(std::string("gnutls_alpn_set_protocols: ") + gnutls_strerror(rv));
  }
  conn_ref_.get_conn = connFromRef;
  conn_ref_.user_data = this;
  gnutls_session_set_ptr(tls_, &conn_ref_);
  ngtcp2_conn_set_tls_native_handle(conn_, tls_);
  return {};
}

Result<void> Connection::setupHttp3() {
  nghttp3_callbacks cb{};
  cb.acked_stream_data = h3AckedDataCb;
  cb.stream_close = h3StreamCloseCb;
  cb.recv_data = h3RecvDataCb;
  cb.deferred_consume = h3DeferredConsumeCb;
  cb.recv_header = h3RecvHeaderCb;
  cb.end_stream = h3EndStreamCb;
  cb.stop_sending = h3StopSendingCb;
  cb.reset_stream = h3ResetStreamCb;
  nghttp3_settings settings;
  nghttp3_settings_default(&settings);
  settings.qpack_max_dtable_capacity = 4096;
  settings.qpack_blocked_streams = 100;
  if (int rv = nghttp3_conn_server_new(&h3_, &cb, &settings, nullptr, this); rv != 0) {
    return fail(std::string("nghttp3_conn_server_new: ") + nghttp3_strerror(rv));
  }
  const ngtcp2_transport_params* peer = ngtcp2_conn_get_remote_transport_params(conn_);
  nghttp3_conn_set_max_client_streams_bidi(h3_, peer ? peer->initial_max_streams_bidi : 0);
  int64_t ctrl, enc, dec;
  if (ngtcp2_conn_open_uni_stream(conn_, &ctrl, nullptr) != 0 ||
      nghttp3_conn_bind_control_stream(h3_, ctrl) != 0 ||
      ngtcp2_conn_open_uni_stream(conn_, &enc, nullptr) != 0 ||
      ngtcp2_conn_open_uni_stream(conn_, &dec, nullptr) != 0 ||
      nghttp3_conn_bind_qpack_streams(h3_, enc, dec) != 0) {
    return fail("HTTP/3 control and QPACK streams could not be opened");
  }
  return {};
}

int Connection::onRecvTxKey(ngtcp2_crypto_level level) {
  if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION) {
    return 0;
  }
  if (auto r = setupHttp3(); !r) {
    std::fprintf(stderr, "conn %s: %s\n", name_.c_str(), r.error().message.c_str());
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

int Connection::onGetNewCid(ngtcp2_cid* cid, uint8_t* token, size_t cidlen) {
  auto c = newCid();
  if (!c || c->datalen != cidlen) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  *cid = *c;
  server_.statelessResetToken(token, *cid);
  cids_.emplace_back(reinterpret_cast<const char*>(cid->data), cid->datalen);
  server_.addCid(cids_.back(), this);
  return 0;
}

int Connection::onRemoveCid(const ngtcp2_cid* cid) {
  const std::string key(reinterpret_cast<const char*>(cid->data), cid->datalen);
  server_.removeCid(key);
  std::erase(cids_, key);
  return 0;
}

int Connection::onRecvStreamData(uint32_t flags, int64_t stream_id, const uint8_t* data,
                                 size_t len) {
  if (!h3_) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  const nghttp3_ssize n = nghttp3_conn_read_stream(h3_, stream_id, data, len,
                                                   (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
  if (n < 0) {
    std::fprintf(stderr, "conn %s: nghttp3_conn_read_stream: %s\n", name_.c_str(),
                 nghttp3_strerror(static_cast<int>(n)));
    ngtcp2_connection_close_error ccerr;
    ngtcp2_connection_close_error_set_application_error(
        &ccerr, nghttp3_err_infer_quic_app_error_code(static_cast<int>(n)), nullptr, 0);
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  ngtcp2_conn_extend_max_stream_offset(conn_, stream_id, static_cast<uint64_t>(n));
  ngtcp2_conn_extend_max_offset(conn_, static_cast<uint64_t>(n));
  return 0;
}

int Connection::onAckedStreamData(int64_t stream_id, uint64_t datalen) {
  // ngtcp2 reports QUIC stream bytes acked; nghttp3 frees the frames it buffered.
  if (h3_ && nghttp3_conn_add_ack_offset(h3_, stream_id, datalen) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

int Connection::onStreamClose(uint32_t flags, int64_t stream_id, uint64_t app_error_code) {
  if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) {
    app_error_code = NGHTTP3_H3_NO_ERROR;
  }
  if (auto* s = stream(stream_id)) {
    std::printf("conn %s stream %lld %s %s closed: %llu of %llu body bytes sent\n", name_.c_str(),
                static_cast<long long>(stream_id), s->method.c_str(), s->path.c_str(),
                static_cast<unsigned long long>(s->offered),
                static_cast<unsigned long long>(s->total));
    streams_.erase(stream_id);
  }
  if (h3_) {
    int rv = nghttp3_conn_close_stream(h3_, stream_id, app_error_code);
    if (rv != 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND) {
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
  }
  return 0;
}

int Connection::onPathValidation(const ngtcp2_path* path, ngtcp2_path_validation_result res) {
  if (res != NGTCP2_PATH_VALIDATION_RESULT_SUCCESS) {
    std::printf("conn %s path validation failed for %s\n", name_.c_str(),
                addrText(path->remote.addr).c_str());
    return 0;
  }
  if (sameAddr(path->remote.addr, reinterpret_cast<const sockaddr*>(&remote_))) {
    return 0;
  }
  std::printf("conn %s migrated to %s\n", name_.c_str(), addrText(path->remote.addr).c_str());
  migrated_ = true;
  for (auto& [id, s] : streams_) {
    if (s.held) {
      s.held = false;
      nghttp3_conn_resume_stream(h3_, id);
    }
  }
  return 0;
}

int Connection::onHeader(int64_t stream_id, int32_t token, nghttp3_rcbuf*, nghttp3_rcbuf* value) {
  auto v = nghttp3_rcbuf_get_buf(value);
  auto& s = streams_[stream_id];
  s.id = stream_id;
  if (token == NGHTTP3_QPACK_TOKEN__PATH) {
    s.path.assign(reinterpret_cast<const char*>(v.base), v.len);
  } else if (token == NGHTTP3_QPACK_TOKEN__METHOD) {
    s.method.assign(reinterpret_cast<const char*>(v.base), v.len);
  }
  return 0;
}

int Connection::onEndStream(int64_t stream_id) {
  auto& s = streams_[stream_id];
  s.id = stream_id;
  // Route: /bytes/N and /migrate/N; everything else is 404.
  std::string status = "404";
  uint64_t n = 0;
  bool hold = false;
  for (std::string_view prefix : {"/bytes/", "/migrate/"}) {
    std::string_view p = s.path;
    if (p.starts_with(prefix) && (s.method == "GET" || s.method == "HEAD")) {
      p.remove_prefix(prefix.size());
      auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
      if (ec == std::errc() && end == p.data() + p.size() && n <= (uint64_t{1} << 32)) {
        status = "200";
        hold = prefix == "/migrate/";
      }
    }
  }
  if (status != "200") {
    n = 0;
  }
  s.total = s.method == "HEAD" ? 0 : n;
  s.hold_at = hold ? s.total / 2 : 0;
  const std::string len = std::to_string(n);
  auto nv = [](const char* name, const std::string& value) {
    return nghttp3_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())),
                      std::strlen(name), value.size(), NGHTTP3_NV_FLAG_NONE};
  };
  const std::string server = "meshgate-quic-server";
  const std::string type = "application/octet-stream";
  const nghttp3_nv headers[] = {nv(":status", status), nv("server", server),
                                nv("content-length", len), nv("content-type", type)};
  nghttp3_data_reader dr{h3ReadBodyCb};
  if (nghttp3_conn_submit_response(h3_, stream_id, headers, std::size(headers), &dr) != 0) {
    return NGHTTP3_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

nghttp3_ssize Connection::readBody(int64_t stream_id, nghttp3_vec* vec, size_t veccnt,
                                   uint32_t* pflags) {
  Stream* s = stream(stream_id);
  if (!s) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    return 0;
  }
  uint64_t limit = s->total;
  if (s->hold_at && !migrated_ && s->offered >= s->hold_at) {
    const ngtcp2_tstamp t = now();
    if (t < s->next_trickle) {
      s->held = true;
      return NGHTTP3_ERR_WOULDBLOCK;
    }
    if (s->next_trickle == 0) {
      std::printf("conn %s stream %lld trickling from %llu bytes until the client migrates\n",
                  name_.c_str(), static_cast<long long>(stream_id),
                  static_cast<unsigned long long>(s->offered));
    }
    s->next_trickle = t + kTrickleGap;
    limit = std::min(s->total, s->offered + kTrickleBytes);
  } else if (s->hold_at && !migrated_) {
    limit = s->hold_at;
  }
  size_t i = 0;
  while (i < veccnt && s->offered < limit) {
    const size_t off = s->offered % kPatternLen;
    const uint64_t len = std::min<uint64_t>(limit - s->offered, pattern().size() - off);
    vec[i].base = const_cast<uint8_t*>(pattern().data() + off);
    vec[i].len = static_cast<size_t>(len);
    s->offered += len;
    i++;
  }
  if (s->offered == s->total) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
  }
  return static_cast<nghttp3_ssize>(i);
}

bool Connection::onRead(const uint8_t* data, size_t len, const sockaddr* remote,
                        socklen_t remote_len) {
  ngtcp2_path path{{const_cast<sockaddr*>(server_.localAddr()), server_.localLen()},
                   {const_cast<sockaddr*>(remote), remote_len},
                   nullptr};
  ngtcp2_pkt_info pi{};
  const int rv = ngtcp2_conn_read_pkt(conn_, &path, &pi, data, len, now());
  if (rv == 0) {
    return true;
  }
  if (rv == NGTCP2_ERR_DRAINING) {
    std::printf("conn %s closed by the client\n", name_.c_str());
    return false;
  }
  if (rv == NGTCP2_ERR_DROP_CONN) {
    return false;
  }
  std::fprintf(stderr, "conn %s: ngtcp2_conn_read_pkt: %s\n", name_.c_str(), ngtcp2_strerror(rv));
  return closeWithError(rv);
}

bool Connection::closeWithError(int liberr) {
  if (ngtcp2_conn_is_in_closing_period(conn_) || ngtcp2_conn_is_in_draining_period(conn_)) {
    return false;
  }
  ngtcp2_connection_close_error ccerr;
  ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, liberr, nullptr, 0);
  std::array<uint8_t, NGTCP2_MAX_UDP_PAYLOAD_SIZE> buf;
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  const auto n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, buf.data(), buf.size(),
                                                    &ccerr, now());
  if (n > 0) {
    sendPacket(ps.path, buf.data(), static_cast<size_t>(n));
  }
  return false;
}

bool Connection::sendPacket(const ngtcp2_path& path, const uint8_t* data, size_t len) {
  for (;;) {
    const ssize_t n =
        ::sendto(server_.fd(), data, len, 0, path.remote.addr, path.remote.addrlen);
    if (n >= 0) {
      return true;
    }
    if (errno == EINTR) {
      continue;
    }
    // EAGAIN: the datagram is lost like any other; QUIC retransmits. ECONNREFUSED and friends
    // come from ICMP errors of earlier datagrams and say nothing about this one.
    return errno != EBADF;
  }
}

bool Connection::write() {
  std::array<uint8_t, NGTCP2_MAX_UDP_PAYLOAD_SIZE> buf;
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  const ngtcp2_tstamp ts = now();
  for (;;) {
    int64_t stream_id = -1;
    int fin = 0;
    std::array<nghttp3_vec, 16> vec;
    nghttp3_ssize vcnt = 0;
    if (h3_ && ngtcp2_conn_get_max_data_left(conn_)) {
      vcnt = nghttp3_conn_writev_stream(h3_, &stream_id, &fin, vec.data(), vec.size());
      if (vcnt < 0) {
        std::fprintf(stderr, "conn %s: nghttp3_conn_writev_stream: %s\n", name_.c_str(),
                     nghttp3_strerror(static_cast<int>(vcnt)));
        return closeWithError(NGTCP2_ERR_INTERNAL);
      }
    }
    ngtcp2_ssize datalen = -1;
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
    ngtcp2_pkt_info pi;
    const ngtcp2_ssize n = ngtcp2_conn_writev_stream(
        conn_, &ps.path, &pi, buf.data(), buf.size(), &datalen, flags, stream_id,
        reinterpret_cast<const ngtcp2_vec*>(vec.data()), static_cast<size_t>(vcnt), ts);
    if (n < 0) {
      switch (n) {
        case NGTCP2_ERR_STREAM_DATA_BLOCKED:
          nghttp3_conn_block_stream(h3_, stream_id);
          continue;
        case NGTCP2_ERR_STREAM_SHUT_WR:
          nghttp3_conn_shutdown_stream_write(h3_, stream_id);
          continue;
        case NGTCP2_ERR_WRITE_MORE:
          if (nghttp3_conn_add_write_offset(h3_, stream_id, static_cast<size_t>(datalen)) != 0) {
            return closeWithError(NGTCP2_ERR_INTERNAL);
          }
          continue;
        default:
          std::fprintf(stderr, "conn %s: ngtcp2_conn_writev_stream: %s\n", name_.c_str(),
                       ngtcp2_strerror(static_cast<int>(n)));
          return closeWithError(static_cast<int>(n));
      }
    }
    if (datalen >= 0 &&
        nghttp3_conn_add_write_offset(h3_, stream_id, static_cast<size_t>(datalen)) != 0) {
      return closeWithError(NGTCP2_ERR_INTERNAL);
    }
    if (n == 0) {
      break;
    }
    if (!sendPacket(ps.path, buf.data(), static_cast<size_t>(n))) {
      return false;
    }
  }
  ngtcp2_conn_update_pkt_tx_time(conn_, ts);
  return true;
}

ngtcp2_tstamp Connection::expiry() const {
  ngtcp2_tstamp t = ngtcp2_conn_get_expiry(conn_);
  for (const auto& [id, s] : streams_) {
    if (s.held) {
      t = std::min(t, s.next_trickle);
    }
  }
  return t;
}

bool Connection::onExpiry() {
  const ngtcp2_tstamp t = now();
  for (auto& [id, s] : streams_) {
    if (s.held && s.next_trickle <= t) {
      s.held = false;
      nghttp3_conn_resume_stream(h3_, id);
    }
  }
  if (ngtcp2_conn_get_expiry(conn_) > t) {
    return true;
  }
  const int rv = ngtcp2_conn_handle_expiry(conn_, t);
  if (rv == 0) {
    return true;
  }
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    std::printf("conn %s idle timeout\n", name_.c_str());
    return false;
  }
  return closeWithError(rv);
}

// ---- Server ---------------------------------------------------------------------------------

Result<std::vector<uint8_t>> Server::issueCid() {
  if (!codec_) {
    std::vector<uint8_t> cid(kRandomCidLen);
    randomBytes(cid.data(), cid.size());
    return cid;
  }
  // The draft's nonce rules: under a key, a nonce must never repeat (a counter); in
  // plaintext it must not link CIDs to each other (random bytes).
  std::vector<uint8_t> nonce(opts_.lb->nonce_len);
  if (opts_.lb->key) {
    if (nonce_counter_ == 0) {
      randomBytes(reinterpret_cast<uint8_t*>(&nonce_counter_), sizeof nonce_counter_);
    }
    uint64_t c = ++nonce_counter_;
    for (size_t i = nonce.size(); i-- > 0 && c; c >>= 8) {
      nonce[i] = static_cast<uint8_t>(c);
    }
  } else {
    randomBytes(nonce.data(), nonce.size());
  }
  std::optional<uint8_t> low;
  if (!opts_.lb->self_encoded_length) {
    uint8_t r;
    randomBytes(&r, 1);
    low = r & quiclb::kMaxFirstOctetLowBits;
  }
  return codec_->encode(opts_.server_id, nonce, low);
}

Result<void> Server::start() {
  if (opts_.lb) {
    auto codec = quiclb::QuicLbCodec::create(*opts_.lb);
    if (!codec) {
      return std::unexpected(codec.error());
    }
    codec_.emplace(std::move(*codec));
  }
  if (int rv = gnutls_certificate_allocate_credentials(&cred_); rv != 0) {
    return fail(std::string("gnutls_certificate_allocate_credentials: ") + gnutls_strerror(rv));
  }
  if (int rv = gnutls_certificate_set_x509_key_file(cred_, opts_.cert.c_str(), opts_.key.c_str(),
                                                    GNUTLS_X509_FMT_PEM);
      rv != 0) {
    return fail("--cert " + opts_.cert + " / --key " + opts_.key + ": " + gnutls_strerror(rv));
  }
  fd_ = ::socket(opts_.listen.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    return meshgate::failErrno("socket", errno);
  }
  if (::bind(fd_, localAddr(), localLen()) != 0) {
    return meshgate::failErrno("bind " + addrText(localAddr()), errno);
  }
  std::string lb = "random CIDs (no QUIC-LB config)";
  if (opts_.lb) {
    const char* alg = opts_.lb->algorithm() == quiclb::Algorithm::kPlaintext    ? "plaintext"
                      : opts_.lb->algorithm() == quiclb::Algorithm::kSinglePass ? "single-pass"
                                                                                 : "four-pass";
    lb = "QUIC-LB cr " + std::to_string(opts_.lb->config_rotation) + " server_id " +
         quiclb::toHex(opts_.server_id) + " nonce_len " +
         std::to_string(opts_.lb->nonce_len) + " " + alg;
  }
  std::printf("listening on %s, %s\n", addrText(localAddr()).c_str(), lb.c_str());
  return {};
}

void Server::sendStatelessReset(const ngtcp2_version_cid& vc, size_t pkt_len,
                                const sockaddr* remote, socklen_t remote_len) {
  // RFC 9000 §10.3: smaller than the packet that triggered it, and at least 21 octets.
  constexpr size_t kMin = 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN;
  if (pkt_len <= kMin + 1) {
    return;
  }
  const size_t len = std::min<size_t>(pkt_len - 1, 43);
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, vc.dcid, vc.dcidlen);
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
  statelessResetToken(token, cid);
  std::array<uint8_t, 64> rand{};
  const size_t randlen = len - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
  randomBytes(rand.data(), randlen);
  std::array<uint8_t, 64> buf;
  const auto n =
      ngtcp2_pkt_write_stateless_reset(buf.data(), buf.size(), token, rand.data(), randlen);
  if (n > 0 && ::sendto(fd_, buf.data(), static_cast<size_t>(n), 0, remote, remote_len) >= 0) {
    std::printf("stateless reset to %s for unknown cid %s\n", addrText(remote).c_str(),
                quiclb::toHex({vc.dcid, vc.dcidlen}).c_str());
  }
}

void Server::sendVersionNegotiation(const ngtcp2_version_cid& vc, const sockaddr* remote,
                                    socklen_t remote_len) {
  std::array<uint8_t, 256> buf;
  const uint32_t versions[] = {NGTCP2_PROTO_VER_V1, NGTCP2_PROTO_VER_V2_DRAFT};
  uint8_t unused;
  randomBytes(&unused, 1);
  const auto n = ngtcp2_pkt_write_version_negotiation(buf.data(), buf.size(), unused, vc.scid,
                                                      vc.scidlen, vc.dcid, vc.dcidlen, versions,
                                                      std::size(versions));
  if (n > 0) {
    ::sendto(fd_, buf.data(), static_cast<size_t>(n), 0, remote, remote_len);
  }
}

void Server::remove(Connection* c) {
  std::erase_if(conns_, [c](const auto& p) { return p.get() == c; });
}

void Server::onDatagram(const uint8_t* data, size_t len, const sockaddr* remote,
                        socklen_t remote_len) {
  ngtcp2_version_cid vc;
  const int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, shortDcidLen());
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    sendVersionNegotiation(vc, remote, remote_len);
    return;
  }
  if (rv != 0) {
    return;  // not QUIC, or malformed: nothing to answer
  }
  const std::string dcid(reinterpret_cast<const char*>(vc.dcid), vc.dcidlen);
  if (auto it = by_cid_.find(dcid); it != by_cid_.end()) {
    Connection* c = it->second;
    if (!c->onRead(data, len, remote, remote_len) || !c->write()) {
      remove(c);
    }
    return;
  }
  if (!(data[0] & 0x80)) {
    // A short header for a CID we never issued (or forgot): tell the client its connection
    // is gone. With QUIC-LB off, this is what a migrated client meets on the wrong backend.
    sendStatelessReset(vc, len, remote, remote_len);
    return;
  }
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept(&hd, data, len) != 0) {
    return;  // not an acceptable Initial
  }
  auto scid = issueCid();
  if (!scid) {
    std::fprintf(stderr, "issuing a CID: %s\n", scid.error().message.c_str());
    return;
  }
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, scid->data(), scid->size());
  auto conn = std::make_unique<Connection>(*this, remote, remote_len);
  if (auto r = conn->init(hd, cid); !r) {
    std::fprintf(stderr, "new connection from %s: %s\n", addrText(remote).c_str(),
                 r.error().message.c_str());
    return;
  }
  std::printf("conn %s accepted from %s\n", conn->name().c_str(), addrText(remote).c_str());
  Connection* c = conn.get();
  conns_.push_back(std::move(conn));
  if (!c->onRead(data, len, remote, remote_len) || !c->write()) {
    remove(c);
  }
}

Result<void> Server::run() {
  std::array<uint8_t, 65536> buf;
  while (!g_stop) {
    ngtcp2_tstamp next = UINT64_MAX;
    for (const auto& c : conns_) {
      next = std::min(next, c->expiry());
    }
    int timeout_ms = -1;
    if (next != UINT64_MAX) {
      const ngtcp2_tstamp t = now();
      timeout_ms = next <= t ? 0 : static_cast<int>(std::min<uint64_t>((next - t) / 1000000 + 1, 1000));
    }
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR) {
      return meshgate::failErrno("poll", errno);
    }
    for (int i = 0; i < 64; i++) {
      sockaddr_storage remote{};
      socklen_t remote_len = sizeof remote;
      const ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), 0,
                                   reinterpret_cast<sockaddr*>(&remote), &remote_len);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED) {
          break;
        }
        return meshgate::failErrno("recvfrom", errno);
      }
      onDatagram(buf.data(), static_cast<size_t>(n), reinterpret_cast<sockaddr*>(&remote),
                 remote_len);
    }
    const ngtcp2_tstamp t = now();
    std::vector<Connection*> done;
    for (const auto& c : conns_) {
      if ((c->expiry() <= t && !c->onExpiry()) || !c->write()) {
        done.push_back(c.get());
      }
    }
    for (Connection* c : done) {
      remove(c);
    }
    std::fflush(stdout);
  }
  return {};
}

// ---- command line ----------------------------------------------------------------------------

constexpr const char* kUsage =
    "usage: meshgate-quic-server --listen ADDR:PORT --cert PEM --key PEM\n"
    "           [--cr N --sid-len N --nonce-len N [--lb-key HEX] [--self-encoded-length]\n"
    "            --server-id HEX] [--reset-secret HEX] [--verbose]\n"
    "Serves HTTP/3: GET /bytes/N and GET /migrate/N (second half after the client migrates).\n"
    "With a QUIC-LB config (--cr, --sid-len, --nonce-len, optional --lb-key), every CID it\n"
    "issues carries --server-id, as meshgate's balancer expects (see docs/CONFIG.md).\n";

Result<uint8_t> parseSmall(std::string_view flag, std::string_view v) {
  unsigned n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n > 255) {
    return fail(std::string(flag) + ": '" + std::string(v) + "' is not an integer 0..255");
  }
  return static_cast<uint8_t>(n);
}

Result<std::vector<uint8_t>> parseHexFlag(std::string_view flag, std::string_view v) {
  auto bytes = quiclb::parseHex(v);
  if (!bytes) {
    return fail(std::string(flag) + ": " + bytes.error().message);
  }
  return *bytes;
}

Result<void> parseListen(std::string_view v, Options& o) {
  const auto colon = v.rfind(':');
  if (colon == std::string_view::npos) {
    return fail("--listen: '" + std::string(v) + "' is not ADDR:PORT");
  }
  std::string host(v.substr(0, colon));
  unsigned port = 0;
  auto ps = v.substr(colon + 1);
  auto [end, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
  if (ec != std::errc() || end != ps.data() + ps.size() || port == 0 || port > 65535) {
    return fail("--listen: bad port in '" + std::string(v) + "'");
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto* in4 = reinterpret_cast<sockaddr_in*>(&o.listen);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&o.listen);
  if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(port));
    o.listen_len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    o.listen_len = sizeof(sockaddr_in6);
  } else {
    return fail("--listen: '" + host + "' is not an IPv4 or IPv6 address");
  }
  return {};
}

Result<Options> parseArgs(int argc, char** argv) {
  Options o;
  std::optional<uint8_t> cr, sid_len, nonce_len;
  std::optional<std::vector<uint8_t>> lb_key;
  bool self_encoded = false;
  for (int i = 1; i < argc; i++) {
    const std::string_view a = argv[i];
    auto value = [&]() -> Result<std::string_view> {
      if (i + 1 >= argc) {
        return fail(std::string(a) + ": missing value");
      }
      return std::string_view(argv[++i]);
    };
    Result<void> r;
    if (a == "--verbose") {
      o.verbose = true;
    } else if (a == "--self-encoded-length") {
      self_encoded = true;
    } else if (a == "--listen" || a == "--cert" || a == "--key" || a == "--cr" ||
               a == "--sid-len" || a == "--nonce-len" || a == "--lb-key" || a == "--server-id" ||
               a == "--reset-secret") {
      auto v = value();
      if (!v) {
        return std::unexpected(v.error());
      }
      if (a == "--listen") {
        r = parseListen(*v, o);
      } else if (a == "--cert") {
        o.cert = *v;
      } else if (a == "--key") {
        o.key = *v;
      } else if (a == "--lb-key" || a == "--server-id" || a == "--reset-secret") {
        auto h = parseHexFlag(a, *v);
        if (!h) {
          return std::unexpected(h.error());
        }
        (a == "--lb-key" ? lb_key.emplace() : a == "--server-id" ? o.server_id : o.reset_secret) =
            std::move(*h);
      } else {
        auto n = parseSmall(a, *v);
        if (!n) {
          return std::unexpected(n.error());
        }
        (a == "--cr" ? cr : a == "--sid-len" ? sid_len : nonce_len) = *n;
      }
    } else {
      return fail("unknown argument '" + std::string(a) + "'");
    }
    if (!r) {
      return std::unexpected(r.error());
    }
  }
  if (o.listen_len == 0 || o.cert.empty() || o.key.empty()) {
    return fail("--listen, --cert and --key are required");
  }
  if (cr || sid_len || nonce_len || lb_key || !o.server_id.empty()) {
    if (!cr || !sid_len || !nonce_len || o.server_id.empty()) {
      return fail("a QUIC-LB config needs --cr, --sid-len, --nonce-len and --server-id");
    }
    std::optional<std::array<uint8_t, quiclb::kKeyLen>> key;
    if (lb_key) {
      if (lb_key->size() != quiclb::kKeyLen) {
        return fail("--lb-key: must be 16 octets (32 hex digits), got " +
                    std::to_string(lb_key->size()));
      }
      key.emplace();
      std::copy(lb_key->begin(), lb_key->end(), key->begin());
    }
    auto cfg = quiclb::QuicLbConfig::make(*cr, *sid_len, *nonce_len, key, self_encoded);
    if (!cfg) {
      return std::unexpected(cfg.error());
    }
    if (o.server_id.size() != *sid_len) {
      return fail("--server-id: must be --sid-len (" + std::to_string(*sid_len) + ") octets, got " +
                  std::to_string(o.server_id.size()));
    }
    o.lb = *cfg;
  }
  if (o.reset_secret.empty()) {
    o.reset_secret.resize(32);
    randomBytes(o.reset_secret.data(), o.reset_secret.size());
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  auto opts = parseArgs(argc, argv);
  if (!opts) {
    std::fprintf(stderr, "meshgate-quic-server: %s\n%s", opts.error().message.c_str(), kUsage);
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  struct sigaction sa{};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Server server(std::move(*opts));
  if (auto r = server.start(); !r) {
    std::fprintf(stderr, "meshgate-quic-server: %s\n", r.error().message.c_str());
    return 1;
  }
  if (auto r = server.run(); !r) {
    std::fprintf(stderr, "meshgate-quic-server: %s\n", r.error().message.c_str());
    return 1;
  }
  return 0;
}
