// Helpers for proxy unit tests: build a snapshot from YAML text, parse a request from bytes.
#pragma once

#include <memory>
#include <string>

#include "core/config/yaml_proto.h"
#include "core/http/http1_parser.h"
#include "core/stats/store.h"
#include "proxy/config/snapshot_builder.h"
#include "proxy/telemetry/istio_stats.h"
#include "proxy/v1/config.pb.h"

namespace mesh::proxy::testing {

// Everything a snapshot build needs, with a resolver that knows a few fixed names.
struct SnapshotFixture {
  stats::Store store;
  IstioTelemetry telemetry{store};
  int resolves = 0;  // resolver calls so far
  SnapshotContext ctx{store, telemetry, [this](const std::string& host) -> StatusOr<std::vector<std::string>> {
                        ++resolves;
                        if (host == "backend.test") return std::vector<std::string>{"10.0.0.1", "10.0.0.2"};
                        if (host == "one.test") return std::vector<std::string>{"10.0.1.1"};
                        return unavailable("no such host: " + host);
                      }};

  // Loads YAML and builds; the status carries file:line: path: message lines on failure.
  StatusOr<std::shared_ptr<const Snapshot>> build(const std::string& yaml,
                                                  const Snapshot* previous = nullptr) {
    auto bootstrap = std::make_shared<v1::Bootstrap>();
    config::LoadOptions opts;
    opts.file = "proxy.yaml";
    config::LoadResult loaded = config::loadYaml(yaml, bootstrap.get(), opts);
    if (!loaded.ok()) return loaded.errors.toStatus();
    BuildInput in;
    in.config = bootstrap;
    in.source_map = &loaded.source_map;
    in.file = "proxy.yaml";
    in.version = 1;
    in.previous = previous;
    return buildSnapshot(in, ctx);
  }
};

// A parsed request whose views stay valid as long as this object lives.
class ParsedRequest {
 public:
  explicit ParsedRequest(std::string raw) : raw_(std::move(raw)), parser_(http::Http1Parser::Type::kRequest) {
    auto r = parser_.parse(raw_);
    ok_ = r.event == http::Http1Parser::Event::kHead;
  }
  bool ok() const { return ok_; }
  const http::RequestHead& head() const { return parser_.request(); }

 private:
  std::string raw_;
  http::Http1Parser parser_;
  bool ok_ = false;
};

inline std::string get(const std::string& host, const std::string& target,
                       const std::string& extra_headers = "", const std::string& method = "GET") {
  return method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra_headers + "\r\n";
}

}  // namespace mesh::proxy::testing
