#include <gtest/gtest.h>

#include <string>

#include "core/tls/client_hello.h"
#include "test/testing/client_hello_builder.h"

namespace mesh::tls {
namespace {

using testing::helloBody;
using testing::otherExtension;
using testing::sniExtension;
using testing::u16;
using testing::u24;

std::string records(const std::string& body, size_t fragment = 16384) {
  return testing::helloRecords(body, fragment);
}

TEST(ClientHelloTest, FindsTheServerNameLowercased) {
  std::string sni;
  std::string hello = records(helloBody(otherExtension() + sniExtension("Reviews.Example.COM")));
  EXPECT_EQ(parseClientHello(hello, &sni), HelloResult::kFound);
  EXPECT_EQ(sni, "reviews.example.com");
}

TEST(ClientHelloTest, EveryPrefixNeedsMore) {
  std::string hello = records(helloBody(sniExtension("a.example")));
  for (size_t n = 0; n < hello.size(); ++n) {
    std::string sni;
    EXPECT_EQ(parseClientHello(std::string_view(hello).substr(0, n), &sni), HelloResult::kNeedMore)
        << n;
  }
}

TEST(ClientHelloTest, HelloSplitOverSeveralRecords) {
  std::string sni;
  std::string hello = records(helloBody(sniExtension("split.example")), 20);
  EXPECT_EQ(parseClientHello(hello, &sni), HelloResult::kFound);
  EXPECT_EQ(sni, "split.example");
}

TEST(ClientHelloTest, NoServerName) {
  std::string sni;
  EXPECT_EQ(parseClientHello(records(helloBody(otherExtension())), &sni), HelloResult::kNoSni);
  EXPECT_EQ(parseClientHello(records(helloBody("", false)), &sni), HelloResult::kNoSni);
}

TEST(ClientHelloTest, OtherProtocolsAndMalformedHellosAreNotTls) {
  std::string sni;
  EXPECT_EQ(parseClientHello("GET / HTTP/1.1\r\n", &sni), HelloResult::kNotTls);
  EXPECT_EQ(parseClientHello("PRI * HTTP/2.0\r\n", &sni), HelloResult::kNotTls);
  // A server hello (type 2) is not a client hello.
  std::string body = helloBody(sniExtension("a.example"));
  std::string hs = std::string(1, '\x02') + u24(body.size()) + body;
  EXPECT_EQ(parseClientHello(std::string("\x16\x03\x01", 3) + u16(hs.size()) + hs, &sni),
            HelloResult::kNotTls);
  // An extension length past the end of the hello.
  std::string bad = helloBody(u16(0) + u16(500) + "xx");
  EXPECT_EQ(parseClientHello(records(bad), &sni), HelloResult::kNotTls);
  // A name with a byte no host name has.
  EXPECT_EQ(parseClientHello(records(helloBody(sniExtension("a b.example"))), &sni),
            HelloResult::kNotTls);
  // An empty record.
  EXPECT_EQ(parseClientHello(std::string("\x16\x03\x01\x00\x00", 5), &sni), HelloResult::kNotTls);
}

TEST(ClientHelloTest, AHelloLongerThanTheLimitIsRefused) {
  std::string sni;
  // A handshake header announcing 70000 bytes: refused at once, without waiting for them.
  std::string head = std::string(1, '\x01') + u24(70000);
  EXPECT_EQ(parseClientHello(std::string("\x16\x03\x01", 3) + u16(head.size()) + head, &sni),
            HelloResult::kNotTls);
  // Records adding up to more than the limit without completing a hello.
  std::string body = helloBody(otherExtension() + u16(0x0015) + u16(60000) +
                               std::string(60000, '\0') + sniExtension("late.example"));
  std::string hs = std::string(1, '\x01') + u24(body.size() + 10000) + body;  // claims more
  std::string many;
  for (size_t i = 0; i < hs.size(); i += 1000) {
    std::string part = hs.substr(i, 1000);
    many += std::string("\x16\x03\x01", 3) + u16(part.size()) + part;
  }
  EXPECT_EQ(parseClientHello(many, &sni), HelloResult::kNotTls);
}

}  // namespace
}  // namespace mesh::tls
