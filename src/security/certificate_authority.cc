#include "security/certificate_authority.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace mesh::security {

std::string opensslError() {
  char buf[256];
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown";
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* x) const { X509_free(x); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using CertPtr = std::unique_ptr<X509, CertFree>;

KeyPtr newKey(KeyType type) {
  return KeyPtr(type == KeyType::kEcdsaP256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048));
}

template <typename Write>
std::string toPem(Write write) {
  BIO* b = BIO_new(BIO_s_mem());
  if (b == nullptr) return "";
  std::string out;
  if (write(b) == 1) {
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    if (n > 0) out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(b);
  return out;
}

std::string pem(X509* x) {
  return toPem([x](BIO* b) { return PEM_write_bio_X509(b, x); });
}

std::string pem(EVP_PKEY* k) {
  return toPem([k](BIO* b) {
    return PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

bool addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return true;
}

CertPtr newCert(EVP_PKEY* key, const std::string& cn, long serial, std::chrono::hours validity) {
  CertPtr x(X509_new());
  if (!x) return x;
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(validity.count()) * 3600);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("mesh"), -1, -1, 0);
  if (!cn.empty()) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  }
  return x;
}

}  // namespace

StatusOr<std::unique_ptr<CertificateAuthority>> CertificateAuthority::create(
    const std::string& common_name, KeyType type, std::chrono::hours validity) {
  std::unique_ptr<CertificateAuthority> ca(new CertificateAuthority());
  ca->validity_ = validity;
  KeyPtr key = newKey(type);
  if (!key) return internalError("CA key generation: " + opensslError());
  CertPtr cert = newCert(key.get(), common_name, 1, validity);
  if (!cert) return internalError("CA certificate: " + opensslError());
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  if (!addExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !addExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !addExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash") ||
      !X509_sign(cert.get(), key.get(), EVP_sha256())) {
    return internalError("CA certificate: " + opensslError());
  }
  ca->cert_pem_ = pem(cert.get());
  ca->key_ = key.release();
  ca->cert_ = cert.release();
  return ca;
}

CertificateAuthority::~CertificateAuthority() {
  X509_free(cert_);
  EVP_PKEY_free(key_);
}

StatusOr<CertifiedKey> CertificateAuthority::issue(const std::vector<std::string>& sans,
                                                   long serial, KeyType type) const {
  KeyPtr key = newKey(type);
  if (!key) return internalError("key generation: " + opensslError());
  CertPtr x = newCert(key.get(), "", serial, validity_);
  if (!x) return internalError("certificate: " + opensslError());
  X509_set_issuer_name(x.get(), X509_get_subject_name(cert_));
  std::string alt;
  for (const auto& s : sans) {
    if (!alt.empty()) alt += ",";
    alt += (s.starts_with("spiffe://") ? "URI:" : "DNS:") + s;
  }
  bool ok =
      addExtension(x.get(), cert_, NID_basic_constraints, "critical,CA:FALSE") &&
      addExtension(x.get(), cert_, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
      addExtension(x.get(), cert_, NID_ext_key_usage, "serverAuth,clientAuth") &&
      addExtension(x.get(), cert_, NID_authority_key_identifier, "keyid") &&
      (alt.empty() || addExtension(x.get(), cert_, NID_subject_alt_name, "critical," + alt));
  if (!ok) return invalidArgument("certificate extensions (SANs '" + alt + "'): " + opensslError());
  if (!X509_sign(x.get(), key_, EVP_sha256())) return internalError("sign: " + opensslError());
  return CertifiedKey{pem(x.get()), pem(key.get())};
}

std::string spiffeId(const std::string& trust_domain, const std::string& namespace_name,
                     const std::string& service_account) {
  return "spiffe://" + trust_domain + "/ns/" + namespace_name + "/sa/" + service_account;
}

}  // namespace mesh::security
