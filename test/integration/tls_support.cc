#include "test/integration/tls_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "core/http/http1_parser.h"

namespace mesh::integration {
using testing::opensslError;

std::pair<std::string, std::string> writeCertifiedKey(const TempDir& dir, const std::string& stem,
                                                      const CertifiedKey& k) {
  std::string crt = dir.file(stem + ".crt"), key = dir.file(stem + ".key");
  writeFileAtomic(crt, k.cert_pem);
  writeFileAtomic(key, k.key_pem);
  return {crt, key};
}

TlsClient::TlsClient(TlsClientOptions options) : options_(std::move(options)) {}

TlsClient::~TlsClient() {
  close();
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

void TlsClient::close() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  ssl_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  pending_.clear();
}

bool TlsClient::connect(uint16_t port, std::string* error) {
  close();
  ERR_clear_error();
  if (ctx_ == nullptr) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (options_.min_version) SSL_CTX_set_min_proto_version(ctx_, options_.min_version);
    if (options_.max_version) SSL_CTX_set_max_proto_version(ctx_, options_.max_version);
    if (!options_.trusted_ca_file.empty()) {
      if (!SSL_CTX_load_verify_locations(ctx_, options_.trusted_ca_file.c_str(), nullptr)) {
        *error = "CA: " + opensslError();
        return false;
      }
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    if (!options_.alpn.empty()) {
      std::string wire;
      for (const auto& p : options_.alpn) wire += static_cast<char>(p.size()) + p;
      SSL_CTX_set_alpn_protos(ctx_, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned int>(wire.size()));
    }
    if (!options_.cert_file.empty() &&
        (!SSL_CTX_use_certificate_chain_file(ctx_, options_.cert_file.c_str()) ||
         !SSL_CTX_use_PrivateKey_file(ctx_, options_.key_file.c_str(), SSL_FILETYPE_PEM))) {
      *error = "client certificate: " + opensslError();
      return false;
    }
  }
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    *error = "connect: " + std::string(std::strerror(errno));
    close();
    return false;
  }
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  if (!options_.sni.empty()) SSL_set_tlsext_host_name(ssl_, options_.sni.c_str());
  if (SSL_connect(ssl_) != 1) {
    long v = SSL_get_verify_result(ssl_);
    *error = "handshake: " +
             (v != X509_V_OK ? std::string(X509_verify_cert_error_string(v)) : opensslError());
    close();
    return false;
  }
  return true;
}

HttpResponse TlsClient::get(const std::string& path, const std::string& host) {
  HttpResponse resp;
  if (ssl_ == nullptr) {
    resp.error = "not connected";
    return resp;
  }
  std::string raw = "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
  if (SSL_write(ssl_, raw.data(), static_cast<int>(raw.size())) <= 0) {
    resp.error = "write: " + opensslError();
    close();
    return resp;
  }
  http::Http1Parser parser(http::Http1Parser::Type::kResponse);
  std::string buf = std::move(pending_);
  pending_.clear();
  size_t pos = 0;
  for (;;) {
    auto r = parser.parse(std::string_view(buf).substr(pos));
    pos += r.consumed;
    switch (r.event) {
      case http::Http1Parser::Event::kHead: {
        const auto& h = parser.response();
        resp.status = h.status;
        resp.keep_alive = h.keep_alive;
        for (const auto& f : h.headers) resp.headers.emplace_back(f.name, f.value);
        continue;
      }
      case http::Http1Parser::Event::kBody:
        resp.body.append(r.data);
        continue;
      case http::Http1Parser::Event::kMessageComplete:
        resp.ok = true;
        pending_ = buf.substr(pos);
        if (!resp.keep_alive) close();
        return resp;
      case http::Http1Parser::Event::kError:
        resp.error = "bad response";
        close();
        return resp;
      case http::Http1Parser::Event::kNeedMore:
        break;
    }
    buf.erase(0, pos);
    pos = 0;
    char chunk[16384];
    int n = SSL_read(ssl_, chunk, sizeof(chunk));
    if (n <= 0) {
      int e = SSL_get_error(ssl_, n);
      resp.error = e == SSL_ERROR_ZERO_RETURN ? "closed by the server"
                                              : "read: " + std::to_string(e) + " " + opensslError();
      close();
      return resp;
    }
    buf.append(chunk, static_cast<size_t>(n));
  }
}

std::string TlsClient::version() const { return ssl_ ? SSL_get_version(ssl_) : ""; }

std::string TlsClient::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  if (ssl_ != nullptr) SSL_get0_alpn_selected(ssl_, &p, &n);
  return p ? std::string(reinterpret_cast<const char*>(p), n) : "";
}

std::string TlsClient::peerSerial() const {
  X509* peer = ssl_ ? SSL_get0_peer_certificate(ssl_) : nullptr;
  if (peer == nullptr) return {};
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(peer), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

std::string TlsClient::peerUriSan() const {
  X509* peer = ssl_ ? SSL_get0_peer_certificate(ssl_) : nullptr;
  if (peer == nullptr) return {};
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr));
  std::string out;
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_URI) {
      out.assign(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)),
          ASN1_STRING_length(n->d.uniformResourceIdentifier));
      break;
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

}  // namespace mesh::integration
