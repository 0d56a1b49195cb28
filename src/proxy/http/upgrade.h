// HTTP/1.1 Upgrade (RFC 9110 7.8) through the proxy, WebSocket (RFC 6455) above all: which
// requests may ask the upstream to switch protocols, and the hop-by-hop fields that carry the
// ask and the answer across the proxy. Istio allows WebSocket upgrades on every HTTP route
// (Envoy's upgrade_configs: websocket); other tokens pass too, except h2c, which would switch
// the proxy's own hop to HTTP/2 and is dropped as Envoy does. The tunnel itself (bytes both
// ways after a 101) is HttpConnection's, in http_upgrade.cc.
#pragma once

#include <string>
#include <string_view>

#include "core/http/http1_parser.h"

namespace mesh::proxy::upgrade {

// The request asks for an upgrade the proxy forwards: Connection: upgrade with an Upgrade
// field (the parser's `upgrade`), not h2c, not gRPC, and no request body (a body would have to
// be complete before the tunnel starts; such requests are forwarded without the upgrade).
bool forwardable(const http::RequestHead& req, bool is_grpc);

// Appends "connection: upgrade" and "upgrade: <value>" (CRLF-terminated) for the upstream
// request or the 101 towards the client, with the Upgrade value of `headers`.
void appendUpgradeFields(std::string& out, const http::HeaderList& headers);

}  // namespace mesh::proxy::upgrade
