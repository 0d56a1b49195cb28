#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>

#include "core/net/io_batcher.h"
#include "core/tls/transport_socket.h"
#include "test/testing/test_certificates.h"

namespace mesh::tls {
namespace {

using boost::asio::ip::tcp;
using testing::TestCa;

constexpr char kServerId[] = "spiffe://cluster.local/ns/default/sa/server";
constexpr char kClientId[] = "spiffe://cluster.local/ns/default/sa/client";

// A connected pair of TransportSockets over 127.0.0.1, TLS with mutual certificates.
class TransportSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sk = ca_.issue({kServerId}, 1);
    auto ck = ca_.issue({kClientId}, 2);
    TlsOptions so;
    so.require_client_certificate = true;
    TlsOptions co;
    co.server = false;
    co.subject_alt_names = {kServerId};
    auto s = TlsContext::create(so, {sk.cert_pem, sk.key_pem, ca_.certPem()});
    auto c = TlsContext::create(co, {ck.cert_pem, ck.key_pem, ca_.certPem()});
    ASSERT_TRUE(s.ok() && c.ok());
    tcp::acceptor acceptor(io_, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
    client_.socket().connect(acceptor.local_endpoint());
    server_ = std::make_unique<TransportSocket>(acceptor.accept());
    ASSERT_TRUE(server_->startTls(*s));
    ASSERT_TRUE(client_.startTls(*c));
  }

  // TLS both ways past the socket buffers, then a half-close each way.
  void movesMegabytes();

  // Runs both handshakes to completion.
  void handshake() {
    int done = 0;
    bool inline_completion = true;
    auto check = [&](const boost::system::error_code& ec) {
      EXPECT_FALSE(ec) << ec.message() << " " << server_->tlsError() << client_.tlsError();
      ++done;
    };
    server_->asyncHandshake(check);
    client_.asyncHandshake(check);
    inline_completion = done != 0;
    io_.run();
    io_.restart();
    EXPECT_FALSE(inline_completion);  // never inside the call that started it
    EXPECT_EQ(done, 2);
  }

  TestCa ca_{"root"};
  boost::asio::io_context io_;
  TransportSocket client_{io_};
  std::unique_ptr<TransportSocket> server_;
};

TEST_F(TransportSocketTest, MovesMegabytesBothWaysThenHalfCloses) { movesMegabytes(); }

// The same where the loop does not batch socket I/O (MESH_IO_BATCH=0, or no io_uring): the
// Asio path with OpenSSL writing to the socket directly. The variable is read when the loop's
// batcher is made, in SetUp.
class UnbatchedTransportSocketTest : public TransportSocketTest {
 protected:
  void SetUp() override {
    ::setenv("MESH_IO_BATCH", "0", 1);
    TransportSocketTest::SetUp();
    ::unsetenv("MESH_IO_BATCH");
    ASSERT_EQ(net::IoBatcher::of(io_.get_executor()), nullptr);
  }
};

TEST_F(UnbatchedTransportSocketTest, MovesMegabytesBothWaysThenHalfCloses) { movesMegabytes(); }

void TransportSocketTest::movesMegabytes() {
  handshake();
  EXPECT_EQ(server_->peerPrincipal(), kClientId);
  EXPECT_TRUE(server_->peerCertified());
  EXPECT_EQ(client_.peerPrincipal(), kServerId);
  EXPECT_EQ(client_.version(), "TLSv1.3");

  // 4 MiB each way: far past the socket buffers, so writes wait on writability.
  const size_t kTotal = 4 << 20;
  std::string payload(kTotal, '\0');
  for (size_t i = 0; i < kTotal; ++i) payload[i] = static_cast<char>(i * 131 % 251);
  struct Reader {
    explicit Reader(TransportSocket* socket) : s(socket) {}
    TransportSocket* s;
    std::string got;
    char buf[3000];
    bool eof = false;
    void read() {
      s->asyncReadSome(boost::asio::buffer(buf),
                       [this](const boost::system::error_code& ec, size_t n) {
                         if (ec == boost::asio::error::eof) {
                           eof = true;
                           return;
                         }
                         ASSERT_FALSE(ec) << ec.message() << " " << s->tlsError();
                         got.append(buf, n);
                         read();
                       });
    }
  };
  Reader at_server(server_.get()), at_client(&client_);
  at_server.read();
  at_client.read();
  int writes_done = 0;
  client_.asyncWrite(boost::asio::buffer(payload),
                     [&](const boost::system::error_code& ec, size_t n) {
                       ASSERT_FALSE(ec);
                       EXPECT_EQ(n, kTotal);
                       ++writes_done;
                       client_.shutdownSend();  // close_notify, then FIN: the server reads an EOF
                     });
  std::array<boost::asio::const_buffer, 2> two = {
      boost::asio::buffer(payload.data(), 1000),
      boost::asio::buffer(payload.data() + 1000, kTotal - 1000)};
  server_->asyncWrite(two, [&](const boost::system::error_code& ec, size_t) {
    ASSERT_FALSE(ec);
    ++writes_done;
    server_->shutdownSend();
  });
  io_.run();
  EXPECT_EQ(writes_done, 2);
  EXPECT_TRUE(at_server.eof);
  EXPECT_TRUE(at_client.eof);
  EXPECT_TRUE(at_server.got == payload);
  EXPECT_TRUE(at_client.got == payload);
}

TEST_F(TransportSocketTest, CloseAbortsAPendingReadAndCancelReadEndsIt) {
  handshake();
  char buf[16];
  boost::system::error_code got;
  int calls = 0;
  client_.asyncReadSome(boost::asio::buffer(buf), [&](const boost::system::error_code& ec, size_t) {
    got = ec;
    ++calls;
  });
  client_.cancelRead();
  io_.run();
  io_.restart();
  EXPECT_EQ(got, boost::asio::error::operation_aborted);
  server_->asyncReadSome(boost::asio::buffer(buf),
                         [&](const boost::system::error_code& ec, size_t) {
                           got = ec;
                           ++calls;
                         });
  server_->close();
  io_.run();
  EXPECT_EQ(got, boost::asio::error::operation_aborted);
  EXPECT_EQ(calls, 2);
}

TEST_F(TransportSocketTest, NonTlsBytesFailTheHandshakeWithAReason) {
  // The client side sends plaintext instead of a ClientHello.
  TransportSocket plain(io_);
  tcp::acceptor acceptor(io_, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
  plain.socket().connect(acceptor.local_endpoint());
  TlsOptions so;
  auto sk = ca_.issue({kServerId}, 3);
  auto ctx = TlsContext::create(so, {sk.cert_pem, sk.key_pem, ""});
  ASSERT_TRUE(ctx.ok());
  TransportSocket server(acceptor.accept());
  ASSERT_TRUE(server.startTls(*ctx));
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  plain.asyncWrite(boost::asio::buffer(req), [](const boost::system::error_code&, size_t) {});
  boost::system::error_code got;
  server.asyncHandshake([&](const boost::system::error_code& ec) { got = ec; });
  io_.run();
  EXPECT_TRUE(got);
  EXPECT_FALSE(server.handshakeDone());
  EXPECT_FALSE(server.tlsError().empty());
}

}  // namespace
}  // namespace mesh::tls
