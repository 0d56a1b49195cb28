// Certificates made at run time for tests, with OpenSSL's C API: a self-signed CA (ECDSA P-256
// or RSA) issuing leaf certificates with SPIFFE URI SANs and DNS SANs, as PEM text.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>
#include <vector>

namespace mesh::testing {

// The newest OpenSSL error as text ("unknown" when none), and the queue cleared.
std::string opensslError();

enum class KeyType { kEcdsaP256, kRsa2048 };

struct CertifiedKey {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed CA that issues leaf certificates. Serial numbers are given by the test so a
// swapped certificate can be told from the old one.
class TestCa {
 public:
  explicit TestCa(const std::string& common_name, KeyType type = KeyType::kEcdsaP256);
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& certPem() const { return cert_pem_; }
  // A leaf for both server and client use, with these SANs ("spiffe://..." become URI SANs,
  // anything else DNS SANs).
  CertifiedKey issue(const std::vector<std::string>& sans, long serial,
                     KeyType type = KeyType::kEcdsaP256) const;

 private:
  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  std::string cert_pem_;
};

}  // namespace mesh::testing
