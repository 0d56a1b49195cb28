// Certificates made at run time for tests: security::CertificateAuthority (a self-signed CA,
// ECDSA P-256 or RSA, issuing leaf certificates with SPIFFE URI SANs and DNS SANs, as PEM text)
// with a constructor and issue() that throw on failure, which a test turns into a failure.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "security/certificate_authority.h"

namespace mesh::testing {

using security::CertifiedKey;
using security::KeyType;
using security::opensslError;

// Serial numbers are given by the test so a swapped certificate can be told from the old one.
class TestCa {
 public:
  explicit TestCa(const std::string& common_name, KeyType type = KeyType::kEcdsaP256);

  const std::string& certPem() const { return ca_->certPem(); }
  // A leaf for both server and client use, with these SANs ("spiffe://..." become URI SANs,
  // anything else DNS SANs).
  CertifiedKey issue(const std::vector<std::string>& sans, long serial,
                     KeyType type = KeyType::kEcdsaP256) const;

 private:
  std::unique_ptr<security::CertificateAuthority> ca_;
};

}  // namespace mesh::testing
