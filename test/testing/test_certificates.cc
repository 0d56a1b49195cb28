#include "test/testing/test_certificates.h"

#include <stdexcept>

namespace mesh::testing {

TestCa::TestCa(const std::string& common_name, KeyType type) {
  auto ca = security::CertificateAuthority::create(common_name, type);
  if (!ca.ok()) throw std::runtime_error(ca.status().message());
  ca_ = std::move(*ca);
}

CertifiedKey TestCa::issue(const std::vector<std::string>& sans, long serial, KeyType type) const {
  auto issued = ca_->issue(sans, serial, type);
  if (!issued.ok()) throw std::runtime_error(issued.status().message());
  return std::move(*issued);
}

}  // namespace mesh::testing
