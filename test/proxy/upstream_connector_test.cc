// The connect path both upstream connections share (UpstreamConnector), against real sockets on
// 127.0.0.1: what the integration tests cannot reach: the connect timeout (during the TCP
// connect and during the TLS handshake), an ALPN protocol the server did not select, the
// source address, and the owner closing while operations are in flight.
#include "proxy/upstream/upstream_connector.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/stats/store.h"
#include "core/tls/context_provider.h"
#include "core/tls/tls_context.h"
#include "core/tls/transport_socket.h"
#include "test/testing/test_certificates.h"

namespace mesh::proxy {
namespace {

using boost::asio::ip::tcp;
using Operation = UpstreamConnector::Operation;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Stands in for the connection that owns the connector: counts the operations in flight as its
// own (a real owner's pending_) and records what the connector reported.
struct Owner : UpstreamConnector::Callbacks {
  void onConnectorOperationStarted() override { ++pending; }
  void onConnectorOperationDone(Operation op, const boost::system::error_code& ec) override {
    --pending;
    done.push_back(op);
    connector->complete(op, ec);
  }
  void onTcpConnected() override {
    ++tcp_connected;
    if (close_on_tcp_connected) {
      connector->cancel();
      socket->close();
    }
  }
  void onTransportReady() override { ++ready; }
  void onTransportFailed(bool t) override {
    ++failed;
    timed_out = t;
  }

  UpstreamConnector* connector = nullptr;
  tls::TransportSocket* socket = nullptr;
  bool close_on_tcp_connected = false;
  int tcp_connected = 0;
  int pending = 0;
  int ready = 0;
  int failed = 0;
  bool timed_out = false;
  std::vector<Operation> done;
};

class UpstreamConnectorTest : public ::testing::Test {
 protected:
  UpstreamConnectorTest() {
    cluster_.stats.ssl_handshake = store_.series(*store_.addCounter("ssl_handshake", ""));
    cluster_.stats.ssl_connection_error =
        store_.series(*store_.addCounter("ssl_connection_error", ""));
    cluster_.stats.cx_connect_timeout =
        store_.series(*store_.addCounter("upstream_cx_connect_timeout", ""));
    owner_.socket = &socket_;
    cluster_.connect_timeout = milliseconds(30000);
  }

  // The cluster originates TLS with no verification (nothing in these tests is about trust).
  void clientTls() {
    tls::TlsOptions o;
    o.server = false;
    auto p = tls::ContextProvider::create(o);
    ASSERT_TRUE(p.ok()) << p.status().toString();
    cluster_.tls = *p;
  }

  // Starts connecting to `ep`; nothing completes inside connect().
  void start(const tcp::endpoint& ep, std::string_view alpn = {}, std::string_view source = {}) {
    Host host;
    std::memcpy(&host.sockaddr, ep.data(), ep.size());
    host.sockaddr_len = static_cast<socklen_t>(ep.size());
    connector_ = std::make_unique<UpstreamConnector>(owner_, io_, stats_, socket_, key_, host,
                                                     cluster_, alpn);
    owner_.connector = connector_.get();
    if (!source.empty()) connector_->setSourceAddress(source);
    connector_->connect();
    EXPECT_GT(owner_.pending, 0);
    EXPECT_EQ(owner_.ready + owner_.failed, 0);
  }

  // Runs the loop until nothing is left in flight (bounded well below the 30 s timeout, so a
  // connect timer left running shows as an operation still pending).
  void run() {
    auto t0 = steady_clock::now();
    io_.run_for(std::chrono::seconds(20));
    elapsed_ = std::chrono::duration_cast<milliseconds>(steady_clock::now() - t0);
    EXPECT_EQ(owner_.pending, 0);
  }

  // Connects with a 300 ms timeout to `ep`, where the connect or the handshake never ends.
  void expectTimeout(const tcp::endpoint& ep) {
    cluster_.connect_timeout = milliseconds(300);
    start(ep);
    run();
    EXPECT_EQ(owner_.ready, 0);
    EXPECT_EQ(owner_.failed, 1);
    EXPECT_TRUE(owner_.timed_out);
    EXPECT_GE(elapsed_, milliseconds(300));
    EXPECT_EQ(counter(cluster_.stats.cx_connect_timeout), 1u);
  }

  uint64_t counter(stats::SeriesId id) const { return store_.counterValue(id); }

  stats::Store store_;
  stats::ThreadStats& stats_ = store_.createThreadStats();
  boost::asio::io_context io_;
  tls::TransportSocket socket_{io_};
  const std::string key_ = "127.0.0.1:test";
  ClusterInfo cluster_;
  Owner owner_;
  std::unique_ptr<UpstreamConnector> connector_;
  milliseconds elapsed_{0};
};

tcp::endpoint loopback(uint16_t port) { return {boost::asio::ip::address_v4::loopback(), port}; }

TEST_F(UpstreamConnectorTest, PlaintextIsReadyWithNoDelayAndTheTimerCancelled) {
  tcp::acceptor acceptor(io_, loopback(0));  // the kernel completes the connect; no accept
  start(acceptor.local_endpoint());
  run();
  EXPECT_EQ(owner_.ready, 1);
  EXPECT_EQ(owner_.failed, 0);
  EXPECT_EQ(owner_.done, (std::vector<Operation>{Operation::kConnect, Operation::kTimeout}));
  tcp::no_delay nd;
  socket_.socket().get_option(nd);
  EXPECT_TRUE(nd.value());
  EXPECT_FALSE(socket_.secure());
  EXPECT_EQ(counter(cluster_.stats.ssl_handshake), 0u);
  EXPECT_EQ(counter(cluster_.stats.ssl_connection_error), 0u);
  EXPECT_EQ(counter(cluster_.stats.cx_connect_timeout), 0u);
  EXPECT_EQ(owner_.tcp_connected, 1);
}

TEST_F(UpstreamConnectorTest, RefusedConnectFailsAtOnceAndNotAsATimeout) {
  uint16_t port;
  {
    tcp::acceptor closed(io_, loopback(0));
    port = closed.local_endpoint().port();
  }
  start(loopback(port));
  run();
  EXPECT_EQ(owner_.ready, 0);
  EXPECT_EQ(owner_.failed, 1);
  EXPECT_FALSE(owner_.timed_out);
  EXPECT_LT(elapsed_, milliseconds(10000));
  EXPECT_EQ(counter(cluster_.stats.cx_connect_timeout), 0u);
  EXPECT_EQ(owner_.tcp_connected, 0);
}

// A listener whose accept queue is full drops further SYNs: the connect hangs until the timeout.
TEST_F(UpstreamConnectorTest, TcpConnectTimeout) {
  tcp::acceptor acceptor(io_);
  acceptor.open(tcp::v4());
  acceptor.bind(loopback(0));
  acceptor.listen(0);  // room for one established connection, never accepted
  tcp::socket filler(io_);
  filler.connect(acceptor.local_endpoint());
  // A second filler in case the queue holds one more: a non-blocking connect, not waited for
  // (Asio's connect() would wait for it even on a non-blocking socket).
  tcp::socket dropped(io_);
  dropped.open(tcp::v4());
  dropped.non_blocking(true);
  tcp::endpoint ep = acceptor.local_endpoint();
  (void)::connect(dropped.native_handle(), ep.data(), static_cast<socklen_t>(ep.size()));
  expectTimeout(acceptor.local_endpoint());
  EXPECT_EQ(owner_.done, (std::vector<Operation>{Operation::kTimeout, Operation::kConnect}));
  EXPECT_EQ(counter(cluster_.stats.ssl_connection_error), 0u);  // plaintext: no TLS to fail
  EXPECT_EQ(owner_.tcp_connected, 0);
}

// The timeout covers the handshake: a server that takes the connection and never answers the
// ClientHello is a timed-out connect, and a failed TLS connection.
TEST_F(UpstreamConnectorTest, TlsHandshakeTimeout) {
  clientTls();
  tcp::acceptor acceptor(io_, loopback(0));  // never accepts, never answers
  expectTimeout(acceptor.local_endpoint());
  EXPECT_EQ(owner_.done, (std::vector<Operation>{Operation::kConnect, Operation::kTimeout,
                                                 Operation::kHandshake}));
  EXPECT_EQ(counter(cluster_.stats.ssl_connection_error), 1u);
  EXPECT_EQ(counter(cluster_.stats.ssl_handshake), 0u);
  EXPECT_EQ(owner_.tcp_connected, 1);  // the TCP connect itself succeeded
}

// A TLS server that accepts the connection, with the ALPN protocols it agrees to.
class TlsServer {
 public:
  TlsServer(boost::asio::io_context& io, std::vector<std::string> alpn)
      : acceptor_(io, loopback(0)) {
    auto key = ca_.issue({"server.test"}, 1);
    tls::TlsOptions o;
    o.alpn = std::move(alpn);
    auto ctx = tls::TlsContext::create(o, {key.cert_pem, key.key_pem, ""});
    EXPECT_TRUE(ctx.ok()) << ctx.status().toString();
    if (!ctx.ok()) return;
    acceptor_.async_accept([this, c = *ctx](const boost::system::error_code& ec, tcp::socket s) {
      if (ec) return;
      socket_ = std::make_unique<tls::TransportSocket>(std::move(s));
      if (!socket_->startTls(c)) return;
      socket_->asyncHandshake([](const boost::system::error_code&) {});
    });
  }
  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

 private:
  testing::TestCa ca_{"root"};
  tcp::acceptor acceptor_;
  std::unique_ptr<tls::TransportSocket> socket_;
};

TEST_F(UpstreamConnectorTest, TlsWithTheAlpnProtocolSelectedIsReady) {
  clientTls();
  TlsServer server(io_, {"h2", "http/1.1"});
  start(server.endpoint(), "h2");
  run();
  EXPECT_EQ(owner_.ready, 1);
  EXPECT_EQ(owner_.failed, 0);
  EXPECT_TRUE(socket_.secure());
  EXPECT_EQ(counter(cluster_.stats.ssl_handshake), 1u);
  EXPECT_EQ(counter(cluster_.stats.ssl_connection_error), 0u);
}

// A server that does not agree to h2 completes the handshake, but the connection cannot be
// used: a connect failure (not a timeout), and not a successful TLS connection.
TEST_F(UpstreamConnectorTest, TlsWithoutTheAlpnProtocolFails) {
  clientTls();
  TlsServer server(io_, {"http/1.1"});
  start(server.endpoint(), "h2");
  run();
  EXPECT_EQ(owner_.ready, 0);
  EXPECT_EQ(owner_.failed, 1);
  EXPECT_FALSE(owner_.timed_out);
  EXPECT_EQ(counter(cluster_.stats.ssl_handshake), 0u);
  EXPECT_EQ(counter(cluster_.stats.ssl_connection_error), 0u);
}

// The TCP proxy's upstreamBindAddress: the connection leaves from the given address (127.0.0.6,
// as for Istio's InboundPassthroughCluster; all of 127/8 is this host's).
TEST_F(UpstreamConnectorTest, ConnectsFromTheSourceAddress) {
  tcp::acceptor acceptor(io_, loopback(0));
  start(acceptor.local_endpoint(), {}, "127.0.0.6");
  run();
  EXPECT_EQ(owner_.ready, 1);
  tcp::socket accepted = acceptor.accept();
  EXPECT_EQ(accepted.remote_endpoint().address().to_string(), "127.0.0.6");
}

// A source of the other family than the destination is not used: the kernel picks.
TEST_F(UpstreamConnectorTest, SourceOfTheOtherFamilyIsNotUsed) {
  tcp::acceptor acceptor(io_, loopback(0));
  start(acceptor.local_endpoint(), {}, "::1");
  run();
  EXPECT_EQ(owner_.ready, 1);
  EXPECT_EQ(socket_.socket().local_endpoint().address().to_string(), "127.0.0.1");
}

// The owner closes when told the TCP connect succeeded: no handshake starts, nothing more is
// reported, and every operation still completes through the owner.
TEST_F(UpstreamConnectorTest, OwnerClosingOnTcpConnectedStopsTheConnector) {
  clientTls();
  owner_.close_on_tcp_connected = true;
  tcp::acceptor acceptor(io_, loopback(0));
  start(acceptor.local_endpoint());
  run();
  EXPECT_EQ(owner_.tcp_connected, 1);
  EXPECT_EQ(owner_.ready + owner_.failed, 0);
  EXPECT_EQ(owner_.done, (std::vector<Operation>{Operation::kConnect, Operation::kTimeout}));
  EXPECT_EQ(counter(cluster_.stats.ssl_connection_error), 0u);
}

// The owner closes while the connect and the timer are in flight: both still complete through
// the owner (its pending count goes back to 0) and nothing is reported.
TEST_F(UpstreamConnectorTest, CancelledConnectReportsNothing) {
  tcp::acceptor acceptor(io_, loopback(0));
  start(acceptor.local_endpoint());
  EXPECT_EQ(owner_.pending, 2);
  connector_->cancel();
  socket_.close();
  run();
  EXPECT_EQ(owner_.ready + owner_.failed, 0);
  EXPECT_EQ(owner_.done.size(), 2u);
}

}  // namespace
}  // namespace mesh::proxy
