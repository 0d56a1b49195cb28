// TLS for integration tests: a small blocking TLS client that speaks HTTP/1.1 to a proxy
// listener, and certificates (test/testing/test_certificates.h) written to files.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "test/integration/harness.h"
#include "test/testing/test_certificates.h"

namespace mesh::integration {

using testing::CertifiedKey;
using testing::KeyType;
using testing::TestCa;

struct TlsClientOptions {
  std::string trusted_ca_file;           // verify the server against it; empty: no verification
  std::string cert_file, key_file;       // client certificate (mTLS)
  int min_version = 0, max_version = 0;  // TLS1_2_VERSION, TLS1_3_VERSION; 0: library default
  std::string sni;
  std::vector<std::string> alpn;  // offered, in order
};

// One TLS connection to 127.0.0.1:port. Blocking with a receive timeout; no SIGPIPE.
class TlsClient {
 public:
  explicit TlsClient(TlsClientOptions options);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // Connects and completes the handshake; false with the reason in *error. A server that
  // refuses the client certificate may only say so at the first read under TLS 1.3, so
  // callers that test refusal also send a request.
  bool connect(uint16_t port, std::string* error);
  // Sends a GET with Host and reads one response (ok=false and error on failure or close).
  HttpResponse get(const std::string& path, const std::string& host = "test.local");

  std::string version() const;
  std::string alpn() const;  // the protocol the server picked, or ""
  // The server certificate's serial (hex) and first URI SAN.
  std::string peerSerial() const;
  std::string peerUriSan() const;

 private:
  void close();
  TlsClientOptions options_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  std::string pending_;
};

// Writes a CertifiedKey as `<stem>.crt` and `<stem>.key` (atomically) and returns the paths.
std::pair<std::string, std::string> writeCertifiedKey(const TempDir& dir, const std::string& stem,
                                                      const CertifiedKey& k);

}  // namespace mesh::integration
