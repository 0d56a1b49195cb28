// What the router holds while one request is upstream: the HTTP/1.1 connection it has to itself
// (UpstreamConnection), or one stream of a multiplexed HTTP/2 connection (Http2Upstream). Either
// way the router writes an HTTP/1.1 request and is called back (UpstreamCallbacks) with the
// response, so retries, timeouts and the relay are the same code for both.
#pragma once

#include "core/tls/transport_socket.h"

namespace mesh::proxy {

struct BufferList;

class UpstreamRequest {
 public:
  virtual ~UpstreamRequest() = default;
  // HTTP/1.1 request bytes (head, body slices, end); onUpstreamWriteComplete follows.
  virtual void write(const BufferList& bufs) = 0;
  // After onUpstreamBody returned true: the body slice may be reused, deliver more.
  virtual void continueReading() = 0;
  // After onUpstreamComplete: done; `reusable` says whether both messages ended cleanly.
  virtual void release(bool reusable) = 0;
  // Drops the request; no further callbacks.
  virtual void abort() = 0;
  // The request asks for an HTTP/1.1 Upgrade: a 101 answer turns the connection into a byte
  // tunnel (HTTP/1.1 connections only; an HTTP/2 stream never answers 101, so the request is an
  // ordinary one there).
  virtual void setUpgradeRequested(bool) {}
  // Tunnel: passes the client's half-close on.
  virtual void shutdownSend() {}
  // The connection's transport (TLS state, the server's principal) once connected; null if
  // there is none (yet).
  virtual const tls::TransportSocket* transport() const = 0;
};

}  // namespace mesh::proxy
