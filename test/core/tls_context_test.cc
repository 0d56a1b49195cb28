#include "core/tls/tls_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/tls/context_provider.h"
#include "test/testing/test_certificates.h"

namespace mesh::tls {
namespace {

using ::testing::HasSubstr;
using testing::KeyType;
using testing::TestCa;

constexpr char kServerId[] = "spiffe://cluster.local/ns/default/sa/server";
constexpr char kClientId[] = "spiffe://cluster.local/ns/default/sa/client";

TEST(SubjectAltNameTest, MatchesUriOrDnsExactly) {
  SubjectAltNames sans{{kServerId}, {"server.test"}};
  EXPECT_TRUE(matchSubjectAltNames(sans, {kServerId}));
  EXPECT_TRUE(matchSubjectAltNames(sans, {"other", "server.test"}));
  EXPECT_TRUE(matchSubjectAltNames(sans, {}));  // nothing expected: any certificate
  EXPECT_FALSE(matchSubjectAltNames(sans, {kClientId}));
  // No prefix, suffix, case folding or wildcard: SPIFFE ids compare byte for byte.
  EXPECT_FALSE(matchSubjectAltNames(sans, {"spiffe://cluster.local/ns/default/sa/serv"}));
  EXPECT_FALSE(matchSubjectAltNames(sans, {std::string(kServerId) + "2"}));
  EXPECT_FALSE(matchSubjectAltNames(sans, {"SPIFFE://cluster.local/ns/default/sa/server"}));
  EXPECT_FALSE(matchSubjectAltNames(sans, {"*.test"}));
  EXPECT_FALSE(matchSubjectAltNames(SubjectAltNames{}, {kServerId}));
}

X509* parse(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  return x;
}

TEST(SubjectAltNameTest, ReadsUriAndDnsNamesFromACertificate) {
  TestCa ca("root");
  X509* x = parse(ca.issue({kServerId, "server.test", "spiffe://other/ns/a/sa/b"}, 7).cert_pem);
  ASSERT_NE(x, nullptr);
  SubjectAltNames sans = subjectAltNames(x);
  EXPECT_THAT(sans.uris, ::testing::ElementsAre(kServerId, "spiffe://other/ns/a/sa/b"));
  EXPECT_THAT(sans.dns, ::testing::ElementsAre("server.test"));
  X509_free(x);
}

// Runs a handshake between two SSLs in memory; true when both sides finished.
bool handshake(SSL* client, SSL* server) {
  BIO *a, *b;
  BIO_new_bio_pair(&a, 0, &b, 0);
  SSL_set_bio(client, a, a);
  SSL_set_bio(server, b, b);
  for (int i = 0; i < 20; ++i) {
    int c = SSL_do_handshake(client);
    int s = SSL_do_handshake(server);
    if (c == 1 && s == 1) return true;
    auto stuck = [](SSL* ssl, int r) {
      int e = SSL_get_error(ssl, r);
      return r != 1 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
    };
    if (stuck(client, c) || stuck(server, s)) return false;
  }
  return false;
}

class TlsContextTest : public ::testing::Test {
 protected:
  TlsOptions serverOptions(bool mutual) {
    TlsOptions o;
    o.server = true;
    o.require_client_certificate = mutual;
    return o;
  }
  TlsMaterial serverMaterial(bool mutual, KeyType type = KeyType::kEcdsaP256) {
    auto k = ca_.issue({kServerId}, 100, type);
    return {k.cert_pem, k.key_pem, mutual ? ca_.certPem() : ""};
  }
  std::shared_ptr<const TlsContext> make(const TlsOptions& o, const TlsMaterial& m) {
    auto c = TlsContext::create(o, m);
    EXPECT_TRUE(c.ok()) << c.status().toString();
    return c.ok() ? *c : nullptr;
  }
  TlsOptions clientOptions(std::vector<std::string> sans) {
    TlsOptions o;
    o.server = false;
    o.subject_alt_names = std::move(sans);
    return o;
  }
  TlsMaterial clientMaterial(const TestCa& issuer) {
    auto k = issuer.issue({kClientId}, 200);
    return {k.cert_pem, k.key_pem, ca_.certPem()};
  }

  TestCa ca_{"root"};
};

TEST_F(TlsContextTest, ClientChecksTheServerSanAndServerSeesTheClientIdentity) {
  for (KeyType type : {KeyType::kEcdsaP256, KeyType::kRsa2048}) {
    auto server = make(serverOptions(true), serverMaterial(true, type));
    auto client = make(clientOptions({kServerId}), clientMaterial(ca_));
    ASSERT_TRUE(server && client);
    SSL* c = client->newSsl();
    SSL* s = server->newSsl();
    EXPECT_TRUE(handshake(c, s));
    EXPECT_EQ(peerPrincipal(s), kClientId);
    EXPECT_EQ(peerPrincipal(c), kServerId);
    SSL_free(c);
    SSL_free(s);
  }
}

TEST_F(TlsContextTest, WrongSanOrUntrustedClientFailsTheHandshake) {
  auto server = make(serverOptions(true), serverMaterial(true));
  {
    auto client =
        make(clientOptions({"spiffe://cluster.local/ns/default/sa/other"}), clientMaterial(ca_));
    SSL* c = client->newSsl();
    SSL* s = server->newSsl();
    EXPECT_FALSE(handshake(c, s));
    EXPECT_EQ(SSL_get_verify_result(c), X509_V_ERR_SUBJECT_ISSUER_MISMATCH);
    SSL_free(c);
    SSL_free(s);
  }
  {
    TestCa other("other root");
    auto client = make(clientOptions({kServerId}), clientMaterial(other));
    SSL* c = client->newSsl();
    SSL* s = server->newSsl();
    // TLS 1.3: the client finishes before the server has checked it; the server must not.
    handshake(c, s);
    EXPECT_NE(SSL_is_init_finished(s), 1);
    SSL_free(c);
    SSL_free(s);
  }
}

TEST_F(TlsContextTest, BadMaterialIsAnErrorThatSaysWhy) {
  TlsOptions o = serverOptions(false);
  o.certificate_chain = "/certs/server.crt";
  o.private_key = "/certs/server.key";
  TlsMaterial m = serverMaterial(false);
  TlsMaterial wrong_key = m;
  wrong_key.private_key = ca_.issue({kServerId}, 5).key_pem;
  auto r = TlsContext::create(o, wrong_key);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("'/certs/server.key' does not match"));
  TlsMaterial garbage = m;
  garbage.certificate_chain = "not a certificate";
  r = TlsContext::create(o, garbage);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("'/certs/server.crt' holds no PEM certificate"));

  o.certificate_chain = "/nonexistent/server.crt";
  auto loaded = loadMaterial(o);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(loaded.status().message(), HasSubstr("cannot read '/nonexistent/server.crt'"));
}

TEST_F(TlsContextTest, ProviderSwapsOnlyForValidChangedFiles) {
  std::string dir = ::testing::TempDir() + "/tls_provider_test";
  std::filesystem::create_directories(dir);
  auto write = [](const std::string& path, const std::string& s) { std::ofstream(path) << s; };
  auto first = ca_.issue({kServerId}, 100);
  TlsOptions o = serverOptions(false);
  o.certificate_chain = dir + "/tls.crt";
  o.private_key = dir + "/tls.key";
  write(o.certificate_chain, first.cert_pem);
  write(o.private_key, first.key_pem);
  auto p = ContextProvider::create(o);
  ASSERT_TRUE(p.ok()) << p.status().toString();
  auto before = (*p)->current();
  EXPECT_EQ(before->serial(), "64");
  auto r = (*p)->reload();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);  // unchanged
  auto next = ca_.issue({kServerId}, 101);
  write(o.certificate_chain, next.cert_pem);  // the key is still the old one
  r = (*p)->reload();
  EXPECT_FALSE(r.ok());
  EXPECT_EQ((*p)->current(), before);
  write(o.private_key, next.key_pem);
  r = (*p)->reload();
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_TRUE(*r);
  EXPECT_EQ((*p)->current()->serial(), "65");
  EXPECT_EQ(before->serial(), "64");  // whoever holds the old context keeps it
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mesh::tls
