#include "proxy/upstream/upstream_connector.h"

#include <openssl/ssl.h>

#include <cstring>

#include "core/log.h"

namespace mesh::proxy {

namespace {
boost::asio::ip::tcp::endpoint endpointOf(const Host& host) {
  boost::asio::ip::tcp::endpoint ep;
  std::memcpy(ep.data(), &host.sockaddr, host.sockaddr_len);
  ep.resize(host.sockaddr_len);
  return ep;
}
}  // namespace

UpstreamConnector::UpstreamConnector(Callbacks& callbacks, boost::asio::io_context& io,
                                     stats::ThreadStats& stats, tls::TransportSocket& socket,
                                     const std::string& host_key, const Host& host,
                                     const ClusterInfo& cluster, std::string_view alpn)
    : UpstreamConnector(callbacks, io, stats, socket, host_key, endpointOf(host), cluster, alpn) {}

UpstreamConnector::UpstreamConnector(Callbacks& callbacks, boost::asio::io_context& io,
                                     stats::ThreadStats& stats, tls::TransportSocket& socket,
                                     const std::string& host_key,
                                     const boost::asio::ip::tcp::endpoint& endpoint,
                                     const ClusterInfo& cluster, std::string_view alpn)
    : callbacks_(callbacks),
      stats_(stats),
      socket_(socket),
      host_key_(host_key),
      timer_(io),
      endpoint_(endpoint),
      timeout_(cluster.connect_timeout),
      tls_(cluster.tls),
      ssl_handshake_(cluster.stats.ssl_handshake),
      ssl_error_(cluster.stats.ssl_connection_error),
      connect_timeout_(cluster.stats.cx_connect_timeout),
      alpn_(alpn) {}

void UpstreamConnector::start(Operation op) {
  callbacks_.onConnectorOperationStarted();
  auto done = [this, op](const boost::system::error_code& ec) {
    callbacks_.onConnectorOperationDone(op, ec);  // may delete the owner, and so this
  };
  switch (op) {
    case Operation::kConnect:
      socket_.socket().async_connect(endpoint_, done);
      break;
    case Operation::kTimeout:
      timer_.expires_after(timeout_);
      timer_.async_wait(done);
      break;
    case Operation::kHandshake:
      socket_.asyncHandshake(done);
      break;
  }
}

void UpstreamConnector::bindSource() {
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(source_, ec);
  if (ec || addr.is_v4() != endpoint_.address().is_v4()) return;
  auto& s = socket_.socket();
  s.open(endpoint_.protocol(), ec);
  if (!ec) s.bind(boost::asio::ip::tcp::endpoint(addr, 0), ec);
  if (ec) {
    MESH_LOG("upstream", warn, "cannot bind upstream source {}: {}", source_, ec.message());
    boost::system::error_code ignored;
    s.close(ignored);  // async_connect opens it again, unbound
  }
}

void UpstreamConnector::connect() {
  state_ = State::kConnecting;
  if (!source_.empty()) bindSource();
  start(Operation::kConnect);
  if (timeout_.count() > 0) start(Operation::kTimeout);
}

void UpstreamConnector::cancel() {
  state_ = State::kDone;
  timer_.cancel();
}

void UpstreamConnector::complete(Operation op, const boost::system::error_code& ec) {
  switch (op) {
    case Operation::kConnect:
      onConnect(ec);
      break;
    case Operation::kTimeout:
      if (!ec && state_ == State::kConnecting) {
        timed_out_ = true;
        socket_.close();  // ends the connect or the TLS handshake in progress: it fails
      }
      break;
    case Operation::kHandshake:
      onSecure(ec);
      break;
  }
}

void UpstreamConnector::onConnect(const boost::system::error_code& ec) {
  if (state_ != State::kConnecting) return;
  if (ec || timed_out_) {  // timed out: the connect may have completed just before the close
    timer_.cancel();
    fail();
    return;
  }
  callbacks_.onTcpConnected();
  if (state_ != State::kConnecting) return;  // the owner closed
  boost::system::error_code ignored;
  socket_.socket().set_option(boost::asio::ip::tcp::no_delay(true), ignored);
  if (!tls_) {
    onSecure({});
    return;
  }
  // The connect timeout keeps running: it covers the handshake too. A refused handshake
  // (untrusted chain, no expected SAN) is a connect failure: 503 with flag UF.
  if (!socket_.startTls(tls_->current())) {
    onSecure(boost::asio::error::no_memory);
    return;
  }
  if (!alpn_.empty()) {
    std::string wire(1, static_cast<char>(alpn_.size()));
    wire += alpn_;
    SSL_set_alpn_protos(socket_.ssl(), reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned int>(wire.size()));
  }
  start(Operation::kHandshake);
}

bool UpstreamConnector::alpnSelected() const {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(socket_.ssl(), &p, &len);
  return std::string_view(reinterpret_cast<const char*>(p), len) == alpn_;
}

void UpstreamConnector::onSecure(const boost::system::error_code& ec) {
  timer_.cancel();
  if (state_ != State::kConnecting) return;
  if (ec) {
    if (ssl_error_.valid()) stats_.inc(ssl_error_);
    MESH_LOG("upstream", debug, "TLS to {} failed: {}", host_key_, socket_.tlsError());
    fail();
    return;
  }
  if (tls_) {
    if (!alpn_.empty() && !alpnSelected()) {
      MESH_LOG("upstream", debug, "{} did not agree to {} by ALPN", host_key_, alpn_);
      fail();
      return;
    }
    if (ssl_handshake_.valid()) stats_.inc(ssl_handshake_);
  }
  state_ = State::kDone;
  callbacks_.onTransportReady();
}

void UpstreamConnector::fail() {
  state_ = State::kDone;
  if (timed_out_ && connect_timeout_.valid()) stats_.inc(connect_timeout_);
  callbacks_.onTransportFailed(timed_out_);
}

}  // namespace mesh::proxy
