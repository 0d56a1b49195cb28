// TLS contexts from certificate files (OpenSSL 3): one immutable SSL_CTX per listener or cluster
// TLS config, shared by every worker; each connection makes its SSL from it. Also the peer
// identity rules of the mesh: SPIFFE ids are URI SANs, and a client checks the server's SANs
// against an expected list (Istio's secure naming).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mesh::tls {

// What a listener (server) or cluster (client) TLS config says. File contents are read by
// TlsMaterial::load; paths are kept for reloads and messages.
struct TlsOptions {
  bool server = true;
  std::string certificate_chain;  // PEM file: leaf first; required for a server
  std::string private_key;        // PEM file (RSA or ECDSA); required with certificate_chain
  std::string trusted_ca;         // PEM bundle; verifies the peer when set
  bool require_client_certificate = false;  // server: needs trusted_ca
  std::vector<std::string> alpn;            // server: protocols it accepts, in preference order
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;
  std::string sni;                             // client: server name sent
  std::vector<std::string> subject_alt_names;  // client: one must equal a server URI/DNS SAN
};

// The bytes of the files an options object names; compared to tell whether files changed.
struct TlsMaterial {
  std::string certificate_chain;
  std::string private_key;
  std::string trusted_ca;
  bool operator==(const TlsMaterial&) const = default;
};

// Reads every file `o` names. The error names the file and why (missing, unreadable).
StatusOr<TlsMaterial> loadMaterial(const TlsOptions& o);

class TlsContext {
 public:
  // Builds an SSL_CTX from options and file contents; the error says what is wrong (a PEM that
  // does not parse, a key that does not match the certificate, a bad version range).
  static StatusOr<std::shared_ptr<const TlsContext>> create(const TlsOptions& o,
                                                            const TlsMaterial& m);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A new SSL in accept (server) or connect (client) state; the caller owns it and must keep
  // this context alive as long as the SSL (the verify callback reads the expected SANs).
  SSL* newSsl() const;
  const TlsOptions& options() const { return options_; }
  // The leaf certificate's serial number in hex, for logs and tests.
  const std::string& serial() const { return serial_; }

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  TlsOptions options_;
  std::string serial_;
  std::unique_ptr<std::string> alpn_wire_;
};

// The SANs of a certificate (URI and DNS), in certificate order.
struct SubjectAltNames {
  std::vector<std::string> uris;
  std::vector<std::string> dns;
};
SubjectAltNames subjectAltNames(X509* cert);

// True when one of the certificate's URI or DNS SANs equals one of `expected` exactly (SPIFFE
// ids compare byte for byte; no wildcards). An empty `expected` accepts any certificate.
bool matchSubjectAltNames(const SubjectAltNames& sans, const std::vector<std::string>& expected);

// The peer's SPIFFE id (first URI SAN starting with "spiffe://"), or "" when the peer sent no
// certificate or its certificate has none.
std::string peerPrincipal(SSL* ssl);
// The same for the certificate this side presented ("" when it presented none).
std::string localPrincipal(SSL* ssl);

// The newest OpenSSL error as text, and the queue cleared.
std::string lastError();

}  // namespace mesh::tls
