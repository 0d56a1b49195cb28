// A self-signed certificate authority that issues workload certificates with SPIFFE URI SANs,
// as Istio's CA (citadel) does, made at run time with OpenSSL's C API. `istioctl local up
// --netns` makes one per run (the mesh's root) and one certificate per workload; tests use it
// through test/testing/test_certificates.h.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace mesh::security {

// The newest OpenSSL error as text ("unknown" when none), and the queue cleared.
std::string opensslError();

enum class KeyType { kEcdsaP256, kRsa2048 };

struct CertifiedKey {
  std::string cert_pem;
  std::string key_pem;
};

// Not thread-safe; immutable after create().
class CertificateAuthority {
 public:
  // A new key and a self-signed CA certificate valid for `validity` (from an hour ago).
  static StatusOr<std::unique_ptr<CertificateAuthority>> create(
      const std::string& common_name, KeyType type = KeyType::kEcdsaP256,
      std::chrono::hours validity = std::chrono::hours(24));
  ~CertificateAuthority();
  CertificateAuthority(const CertificateAuthority&) = delete;
  CertificateAuthority& operator=(const CertificateAuthority&) = delete;

  const std::string& certPem() const { return cert_pem_; }
  // A leaf for both server and client use with these SANs ("spiffe://..." become URI SANs,
  // anything else DNS SANs) and serial number, valid as long as the CA.
  StatusOr<CertifiedKey> issue(const std::vector<std::string>& sans, long serial,
                               KeyType type = KeyType::kEcdsaP256) const;

 private:
  CertificateAuthority() = default;

  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  std::string cert_pem_;
  std::chrono::hours validity_{24};
};

// Istio's workload identity: "spiffe://<trust domain>/ns/<namespace>/sa/<service account>".
std::string spiffeId(const std::string& trust_domain, const std::string& namespace_name,
                     const std::string& service_account);

}  // namespace mesh::security
