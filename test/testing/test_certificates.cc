#include "test/testing/test_certificates.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <stdexcept>

namespace mesh::testing {
std::string opensslError() {
  char buf[256];
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown";
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

namespace {

EVP_PKEY* newKey(KeyType type) {
  EVP_PKEY* k = type == KeyType::kEcdsaP256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
  if (k == nullptr) throw std::runtime_error("key generation: " + opensslError());
  return k;
}

std::string pem(X509* x) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char* data;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

std::string pem(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("extension " + value + ": " + opensslError());
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509* newCert(EVP_PKEY* key, const std::string& cn, long serial) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("mesh test"), -1, -1, 0);
  if (!cn.empty()) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  }
  return x;
}

}  // namespace

TestCa::TestCa(const std::string& common_name, KeyType type) {
  key_ = newKey(type);
  cert_ = newCert(key_, common_name, 1);
  X509_set_issuer_name(cert_, X509_get_subject_name(cert_));
  addExtension(cert_, cert_, NID_basic_constraints, "critical,CA:TRUE");
  addExtension(cert_, cert_, NID_key_usage, "critical,keyCertSign,cRLSign");
  addExtension(cert_, cert_, NID_subject_key_identifier, "hash");
  if (!X509_sign(cert_, key_, EVP_sha256())) throw std::runtime_error("CA sign: " + opensslError());
  cert_pem_ = pem(cert_);
}

TestCa::~TestCa() {
  X509_free(cert_);
  EVP_PKEY_free(key_);
}

CertifiedKey TestCa::issue(const std::vector<std::string>& sans, long serial, KeyType type) const {
  EVP_PKEY* key = newKey(type);
  X509* x = newCert(key, "", serial);
  X509_set_issuer_name(x, X509_get_subject_name(cert_));
  addExtension(x, cert_, NID_basic_constraints, "critical,CA:FALSE");
  addExtension(x, cert_, NID_key_usage, "critical,digitalSignature,keyEncipherment");
  addExtension(x, cert_, NID_ext_key_usage, "serverAuth,clientAuth");
  addExtension(x, cert_, NID_authority_key_identifier, "keyid");
  std::string alt;
  for (const auto& s : sans) {
    if (!alt.empty()) alt += ",";
    alt += (s.starts_with("spiffe://") ? "URI:" : "DNS:") + s;
  }
  if (!alt.empty()) addExtension(x, cert_, NID_subject_alt_name, "critical," + alt);
  if (!X509_sign(x, key_, EVP_sha256())) throw std::runtime_error("sign: " + opensslError());
  CertifiedKey out{pem(x), pem(key)};
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace mesh::testing
