// One downstream connection on a TCP proxy listener: picks a cluster by weight and a host by the
// cluster's load balancer, connects (UpstreamConnector: the cluster's connect timeout, TLS
// origination), and relays bytes both ways. A half-close is passed on; the connection ends when
// both directions are done, on an error, or after the idle timeout. A connect that fails or
// times out closes the client's connection with flag UF, with no retry and no other cluster.
// Istio's TCP metrics (opened, closed, bytes each way) are recorded per connection.
//
// Lifetime: owned by itself, like HttpConnection; deleted once closed with no I/O outstanding.
#pragma once

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "core/tls/transport_socket.h"
#include "proxy/telemetry/istio_stats.h"
#include "proxy/upstream/upstream_connector.h"

namespace mesh::proxy {

class Worker;
struct SnapshotHolder;
struct ClusterRuntime;
struct ListenerInfo;

class TcpProxyConnection final : private UpstreamConnector::Callbacks {
 public:
  // A TLS socket arrives before its handshake, which this connection runs first.
  // `original_dst`: where a captured connection was going (see Listener.useOriginalDst); an
  // ORIGINAL_DST cluster connects there.
  TcpProxyConnection(Worker& worker, tls::TransportSocket socket, uint32_t listener_slot,
                     std::optional<boost::asio::ip::tcp::endpoint> original_dst = std::nullopt);
  void start();

 private:
  // One direction of the relay: reads from `from`, writes what it read to `to`.
  struct Pipe {
    std::unique_ptr<char[]> buf;
    bool reading = false;
    bool writing = false;
    bool done = false;  // EOF seen and passed on
    uint64_t bytes = 0;
  };
  struct Guard;

  // After the downstream TLS handshake (or at once): detection, SNI, or straight to a cluster.
  void begin();
  // The connection's destination port is one of the listener's serverFirstPorts.
  bool serverFirst() const;
  // TLS passthrough: reads the ClientHello's server name, then picks the cluster.
  void sniff();
  void onSniffRead(const boost::system::error_code& ec, size_t n);
  void pickCluster(std::string_view sni);
  void countConnection();
  void handOffToHttp();
  void connectUpstream();
  // Starts connector_, from the cluster's upstream bind address if it has one.
  void startConnector();

  // UpstreamConnector::Callbacks (a private base: std::optional cannot convert to it itself)
  UpstreamConnector::Callbacks& callbacks() { return *this; }
  void onConnectorOperationStarted() override { ++pending_; }
  void onConnectorOperationDone(UpstreamConnector::Operation op,
                                const boost::system::error_code& ec) override;
  void onTcpConnected() override;
  void onTransportReady() override;
  void onTransportFailed(bool timed_out) override;

  void startRelay();
  void pump(tls::TransportSocket& from, tls::TransportSocket& to, Pipe& p);
  void armIdleTimer();
  void close(uint32_t flags);
  void record(bool closing);
  RequestKey telemetryKey() const;

  Worker& worker_;
  tls::TransportSocket downstream_;
  tls::TransportSocket upstream_;
  // Over (m)TLS to the upstream: this proxy's and the upstream's SPIFFE ids (as telemetry
  // workload ids; 0 = none), for the source reporter's principals.
  uint32_t own_principal_ = 0;
  uint32_t upstream_principal_ = 0;
  std::optional<UpstreamConnector> connector_;  // once the cluster is picked
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer detect_timer_;
  uint32_t slot_;
  std::optional<boost::asio::ip::tcp::endpoint> original_dst_;
  SnapshotHolder* holder_ = nullptr;
  const ListenerInfo* listener_ = nullptr;
  ClusterRuntime* cluster_ = nullptr;
  int host_ = -1;
  Pipe up_;              // client -> upstream
  Pipe down_;            // upstream -> client
  std::string sniffed_;  // bytes read while looking for the server name; sent upstream first
  bool sniffing_ = false;
  bool detecting_ = false;  // choosing between HTTP and TCP
  bool detect_timed_out_ = false;
  bool counted_ = false;     // counted as a TCP connection of the listener
  bool handed_off_ = false;  // the socket went to an HttpConnection
  bool tcp_connected_ = false;  // the upstream TCP connect succeeded (TLS may still fail)
  std::chrono::steady_clock::time_point sniff_deadline_;
  uint32_t flags_ = 0;
  uint32_t peer_workload_ = 0;  // mTLS: the client's SPIFFE id as a telemetry workload
  bool mutual_tls_ = false;     // the client proved a certificate
  uint32_t pending_ = 0;
  uint32_t depth_ = 0;
  bool closed_ = false;
  bool opened_recorded_ = false;
  std::chrono::steady_clock::time_point last_activity_;
  static constexpr size_t kBufferSize = 16 * 1024;
  static constexpr std::chrono::seconds kSniffTimeout{5};
  static constexpr std::chrono::seconds kHandshakeTimeout{10};  // a TLS client that stalls
};

}  // namespace mesh::proxy
