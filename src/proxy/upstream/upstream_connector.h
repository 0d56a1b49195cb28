// Establishes the transport of one upstream connection, for the HTTP/1.1 connection and the
// pooled HTTP/2 connection alike: the TCP connect under the cluster's connect timeout, then
// TCP_NODELAY, then TLS origination with the cluster's context when it has one (the timeout
// covers the handshake, and a refused handshake is a connect failure), and the cluster's
// ssl_handshake / ssl_connection_error / upstream_cx_connect_timeout counters. The owner keeps
// the socket and uses it once the transport is ready. The TCP proxy's connections use it too,
// with a local address to connect from.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/stats/store.h"
#include "core/tls/context_provider.h"
#include "core/tls/transport_socket.h"
#include "proxy/upstream/cluster_info.h"

namespace mesh::proxy {

class UpstreamConnector {
 public:
  // The asynchronous operations the connector runs for its owner.
  enum class Operation : uint8_t { kConnect, kTimeout, kHandshake };

  // Implemented by the owner (the connection); everything runs on the owner's thread.
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // The connector's operations count as the owner's own outstanding operations, so the owner
    // is not deleted while one is in flight. onConnectorOperationStarted() counts one in; its
    // completion calls onConnectorOperationDone(op, ec), which must count it out and then call
    // complete(op, ec) under the owner's lifetime guard (that call may end in one of the two
    // callbacks below, and the owner may delete itself once the guard goes).
    virtual void onConnectorOperationStarted() = 0;
    virtual void onConnectorOperationDone(Operation op, const boost::system::error_code& ec) = 0;
    // The TCP connect succeeded; the TLS handshake, if any, comes next. The owner may close
    // here (then nothing else is reported). The TCP proxy reports outlier-detection success
    // at this point.
    virtual void onTcpConnected() {}
    // The transport is established (and secured, with TLS): the socket is the owner's to use.
    // Called at most once, from complete().
    virtual void onTransportReady() = 0;
    // Terminal: the connect or the handshake failed, the peer did not agree to the ALPN
    // protocol, or the connect timeout fired (timed_out; the connector has counted the
    // cluster's upstream_cx_connect_timeout). Called at most once, from complete().
    virtual void onTransportFailed(bool timed_out) = 0;
  };

  // `socket` and `host_key` (the host in logs) must outlive the connector. `alpn`, when not
  // empty, is the one protocol offered by ALPN over TLS, and a handshake that did not select it
  // is a failure (HTTP/2 over TLS: "h2").
  UpstreamConnector(Callbacks& callbacks, boost::asio::io_context& io, stats::ThreadStats& stats,
                    tls::TransportSocket& socket, const std::string& host_key, const Host& host,
                    const ClusterInfo& cluster, std::string_view alpn = {});
  // To an address that is not one of the cluster's hosts: an ORIGINAL_DST connection's own
  // destination.
  UpstreamConnector(Callbacks& callbacks, boost::asio::io_context& io, stats::ThreadStats& stats,
                    tls::TransportSocket& socket, const std::string& host_key,
                    const boost::asio::ip::tcp::endpoint& endpoint, const ClusterInfo& cluster,
                    std::string_view alpn = {});

  // Before connect(): the local IP to connect from, any port (Istio's upstream_bind_config,
  // 127.0.0.6 for the InboundPassthroughCluster). An address of the other family than the
  // destination is not used, and one that cannot be bound is logged and not used: the kernel
  // picks, as with none.
  void setSourceAddress(std::string_view ip) { source_ = ip; }

  // Starts connecting (once); onTransportReady or onTransportFailed follows.
  void connect();
  // The owner closed: no callback from now on (operations in flight still complete through
  // onConnectorOperationDone). The owner closes the socket itself.
  void cancel();
  // The completion of an operation, as described at Callbacks::onConnectorOperationDone.
  void complete(Operation op, const boost::system::error_code& ec);

  // Whether the cluster originates TLS.
  bool originatesTls() const { return tls_ != nullptr; }

 private:
  enum class State : uint8_t { kIdle, kConnecting, kDone };

  void start(Operation op);
  void bindSource();
  void onConnect(const boost::system::error_code& ec);
  void onSecure(const boost::system::error_code& ec);
  bool alpnSelected() const;
  void fail();

  Callbacks& callbacks_;
  stats::ThreadStats& stats_;
  tls::TransportSocket& socket_;
  const std::string& host_key_;
  boost::asio::steady_timer timer_;
  boost::asio::ip::tcp::endpoint endpoint_;
  const Millis timeout_;
  const std::shared_ptr<tls::ContextProvider> tls_;  // null for plaintext
  const stats::SeriesId ssl_handshake_, ssl_error_, connect_timeout_;
  const std::string alpn_;
  std::string source_;
  State state_ = State::kIdle;
  bool timed_out_ = false;
};

}  // namespace mesh::proxy
