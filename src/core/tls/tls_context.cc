#include "core/tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace mesh::tls {
namespace {

// The verify callback finds the client options (expected SANs) of the SSL_CTX here.
int optionsIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// PEM files are small; a path to something endless (/dev/zero, a FIFO's writer that never
// stops) is refused instead of read forever.
constexpr size_t kMaxPemFileBytes = 1 << 20;

StatusOr<std::string> readWhole(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return invalidArgument("'" + path + "' is not a regular file");
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return notFound("cannot read '" + path + "': " + std::strerror(errno));
  std::string out;
  char buf[16384];
  while (f.read(buf, sizeof(buf)) || f.gcount() > 0) {
    out.append(buf, static_cast<size_t>(f.gcount()));
    if (out.size() > kMaxPemFileBytes) {
      return invalidArgument("'" + path + "' is larger than " + std::to_string(kMaxPemFileBytes) +
                             " bytes");
    }
  }
  return out;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr memBio(const std::string& s) {
  return BioPtr(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

// Every certificate in a PEM text, in order.
std::vector<X509*> readCertificates(const std::string& pem) {
  std::vector<X509*> out;
  BioPtr bio = memBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.push_back(x);
  ERR_clear_error();  // the read that ends the loop leaves "no start line"
  return out;
}

// Client side: after the chain verified, the leaf must carry one of the expected SANs.
int verifyServer(int preverify_ok, X509_STORE_CTX* store) {
  if (!preverify_ok) return 0;
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* o =
      static_cast<const TlsOptions*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), optionsIndex()));
  if (o == nullptr || o->subject_alt_names.empty()) return 1;
  X509* leaf = X509_STORE_CTX_get_current_cert(store);
  if (matchSubjectAltNames(subjectAltNames(leaf), o->subject_alt_names)) return 1;
  X509_STORE_CTX_set_error(store, X509_V_ERR_SUBJECT_ISSUER_MISMATCH);
  return 0;
}

int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* arg) {
  const auto* wire = static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(wire->data()),
                            static_cast<unsigned int>(wire->size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no common protocol: carry on without ALPN
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::string lastError() {
  unsigned long e = ERR_get_error();
  unsigned long next;
  while ((next = ERR_get_error()) != 0) e = next;
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

StatusOr<TlsMaterial> loadMaterial(const TlsOptions& o) {
  TlsMaterial m;
  std::pair<const std::string*, std::string*> files[] = {
      {&o.certificate_chain, &m.certificate_chain},
      {&o.private_key, &m.private_key},
      {&o.trusted_ca, &m.trusted_ca}};
  for (auto [path, out] : files) {
    if (path->empty()) continue;
    auto content = readWhole(*path);
    if (!content.ok()) return content.status();
    *out = std::move(*content);
  }
  return m;
}

StatusOr<std::shared_ptr<const TlsContext>> TlsContext::create(const TlsOptions& o,
                                                               const TlsMaterial& m) {
  ERR_clear_error();
  std::shared_ptr<TlsContext> c(new TlsContext());
  c->options_ = o;
  c->ctx_ = SSL_CTX_new(o.server ? TLS_server_method() : TLS_client_method());
  if (c->ctx_ == nullptr) return internalError("SSL_CTX_new: " + lastError());
  SSL_CTX* ctx = c->ctx_;
  if (!SSL_CTX_set_min_proto_version(ctx, o.min_version) ||
      !SSL_CTX_set_max_proto_version(ctx, o.max_version) || o.min_version > o.max_version) {
    return invalidArgument("invalid TLS version range");
  }
  // Peers that close without close_notify (most HTTP clients) end the stream like an EOF.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  // Record buffers stay with the connection (no SSL_MODE_RELEASE_BUFFERS): ~34 KiB per idle
  // TLS connection, against a malloc/free pair per read on the hot path.
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // A record is taken from the socket BIO in one read instead of header then body (OpenSSL
  // reads as much as the BIO holds; TransportSocket asks SSL_has_pending before waiting).
  SSL_CTX_set_read_ahead(ctx, 1);

  if (!m.certificate_chain.empty()) {
    std::vector<X509*> chain = readCertificates(m.certificate_chain);
    if (chain.empty()) {
      return invalidArgument("'" + o.certificate_chain + "' holds no PEM certificate");
    }
    int ok = SSL_CTX_use_certificate(ctx, chain[0]);
    ASN1_INTEGER* serial = X509_get_serialNumber(chain[0]);
    if (BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr)) {
      if (char* hex = BN_bn2hex(bn)) {
        c->serial_ = hex;
        OPENSSL_free(hex);
      }
      BN_free(bn);
    }
    X509_free(chain[0]);
    for (size_t i = 1; i < chain.size(); ++i) {
      if (ok) ok = SSL_CTX_add0_chain_cert(ctx, chain[i]);  // takes ownership
      if (!ok) X509_free(chain[i]);
    }
    if (!ok) return invalidArgument("'" + o.certificate_chain + "': " + lastError());
    BioPtr kb = memBio(m.private_key);
    EVP_PKEY* key = PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr);
    if (key == nullptr) {
      return invalidArgument("'" + o.private_key + "' holds no PEM private key: " + lastError());
    }
    ok = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
    if (!ok || !SSL_CTX_check_private_key(ctx)) {
      return invalidArgument("'" + o.private_key + "' does not match the certificate in '" +
                             o.certificate_chain + "': " + lastError());
    }
  }

  if (!m.trusted_ca.empty()) {
    std::vector<X509*> cas = readCertificates(m.trusted_ca);
    if (cas.empty()) return invalidArgument("'" + o.trusted_ca + "' holds no PEM certificate");
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    for (X509* x : cas) {
      X509_STORE_add_cert(store, x);
      sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(x)));
      X509_free(x);
    }
    ERR_clear_error();  // a duplicate CA in the bundle is harmless
    if (o.server) {
      SSL_CTX_set_client_CA_list(ctx, names);
      int mode = SSL_VERIFY_PEER;
      if (o.require_client_certificate) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      SSL_CTX_set_verify(ctx, mode, nullptr);
    } else {
      sk_X509_NAME_pop_free(names, X509_NAME_free);
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verifyServer);
    }
  } else if (!o.server) {
    // No trust anchor: the server is not verified (Istio's SIMPLE without caCertificates).
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  SSL_CTX_set_ex_data(ctx, optionsIndex(), &c->options_);

  if (o.server) {
    static const unsigned char kSessionContext[] = "istio-proxy";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
    if (m.certificate_chain.empty()) return invalidArgument("a server needs a certificate");
    if (!o.alpn.empty()) {
      // Wire format (length-prefixed names), owned by this object for the CTX's life.
      auto* wire = new std::string();
      for (const auto& p : o.alpn) {
        wire->push_back(static_cast<char>(p.size()));
        wire->append(p);
      }
      c->alpn_wire_.reset(wire);
      SSL_CTX_set_alpn_select_cb(ctx, selectAlpn, wire);
    }
  }
  return std::shared_ptr<const TlsContext>(std::move(c));
}

TlsContext::~TlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

SSL* TlsContext::newSsl() const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  if (options_.server) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
    if (!options_.sni.empty()) SSL_set_tlsext_host_name(ssl, options_.sni.c_str());
  }
  return ssl;
}

SubjectAltNames subjectAltNames(X509* cert) {
  SubjectAltNames out;
  if (cert == nullptr) return out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_URI && n->type != GEN_DNS) continue;
    const ASN1_IA5STRING* s = n->type == GEN_URI ? n->d.uniformResourceIdentifier : n->d.dNSName;
    std::string v(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
    (n->type == GEN_URI ? out.uris : out.dns).push_back(std::move(v));
  }
  GENERAL_NAMES_free(names);
  return out;
}

bool matchSubjectAltNames(const SubjectAltNames& sans, const std::vector<std::string>& expected) {
  if (expected.empty()) return true;
  for (const auto& e : expected) {
    for (const auto& u : sans.uris) {
      if (u == e) return true;
    }
    for (const auto& d : sans.dns) {
      if (d == e) return true;
    }
  }
  return false;
}

namespace {
std::string spiffeId(X509* cert) {
  if (cert == nullptr) return {};
  for (auto& u : subjectAltNames(cert).uris) {
    if (u.starts_with("spiffe://")) return std::move(u);
  }
  return {};
}
}  // namespace

std::string peerPrincipal(SSL* ssl) { return spiffeId(SSL_get0_peer_certificate(ssl)); }

std::string localPrincipal(SSL* ssl) { return spiffeId(SSL_get_certificate(ssl)); }

}  // namespace mesh::tls
