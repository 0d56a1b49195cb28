// istio-proxy: the sidecar. `istio-proxy --config proxy.yaml` (static), or
// `istio-proxy --discovery PILOT [--config local.yaml] --namespace NS --workload NAME ...`
// (listeners, routes and clusters from pilot, pushed live).
// `istio-proxy capture install|remove [flags]`: Istio's capture rules in this network namespace.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "core/log.h"
#include "proxy/capture/capture_rules.h"
#include "proxy/discovery/discovery_client.h"
#include "proxy/server/server.h"

int main(int argc, char** argv) {
  CLI::App app{"istio-proxy: the mesh's sidecar proxy"};
  mesh::proxy::ServerOptions opts;
  std::string log_level = "info";
  double drain_seconds = 10;
  std::string discovery;
  std::string ns, workload, sa, ip, node_id, outbound_bind, interception_mode, cert_dir;
  std::vector<std::string> labels, app_ports;
  app.add_option("-c,--config", opts.config_path,
                 "proxy config file (YAML or JSON); with --discovery it is optional and gives "
                 "the node, admin addresses and telemetry");
  app.add_option("--discovery", discovery,
                 "pilot's discovery address (host:port): listeners, routes and clusters come "
                 "from pilot, pushed live");
  app.add_option("--node-id", node_id,
                 "the node id sent to pilot (default sidecar~IP~WORKLOAD.NS~NS.svc.cluster.local)");
  app.add_option("--namespace", ns, "the workload's namespace");
  app.add_option("--workload", workload, "the workload's name (e.g. reviews-v1)");
  app.add_option("--label", labels, "a workload label KEY=VALUE (repeatable, or comma-separated)")
      ->delimiter(',');
  app.add_option("--service-account", sa, "the workload's service account");
  app.add_option("--ip", ip, "the workload's IP (its endpoints are this proxy's inbound)");
  app.add_option("--app-port", app_ports,
                 "TARGET=APP: the app listens on APP, not on the endpoint's target port "
                 "(repeatable)");
  app.add_option("--outbound-bind", outbound_bind,
                 "bind outbound listeners here instead of 0.0.0.0:<service port>; "
                 "127.0.0.1:0 lets the OS pick each port");
  app.add_option("--interception-mode", interception_mode,
                 "REDIRECT: this workload's traffic is captured (istio-proxy capture install); "
                 "pilot then sends Istio's capture listeners (15001, 15006). NONE: not captured")
      ->check(CLI::IsMember({"REDIRECT", "NONE"}));
  app.add_option("--cert-dir", cert_dir,
                 "the workload's certificates (cert-chain.pem, key.pem, root-cert.pem, as Istio's "
                 "/etc/certs), sent to pilot for mTLS between sidecars");
  app.add_option("--concurrency", opts.concurrency, "worker threads (default: one per core)");
  app.add_option("--port-file", opts.port_file,
                 "write the bound ports as JSON to this file once ready, and again after each "
                 "config change (with --discovery: \"discovery_version\" is pilot's version "
                 "applied, \"\" until the first)");
  app.add_option("--drain-timeout", drain_seconds,
                 "seconds to let in-flight requests finish on SIGTERM or /quitquitquit");
  app.add_option("-l,--log-level", log_level, "trace, debug, info, warning, error, off");
  app.set_version_flag("--version", std::string("istio-proxy ") + MESH_VERSION);

  // Istio's istio-iptables (REDIRECT mode), with its flag names.
  mesh::proxy::CaptureOptions capture_opts;
  bool capture_print = false;
  CLI::App* capture = app.add_subcommand(
      "capture", "install or remove Istio's nat rules (iptables) in this network namespace");
  capture->require_subcommand(1);
  CLI::App* capture_install = capture->add_subcommand(
      "install", "capture TCP: outbound to -p, inbound to -z (replaces an earlier install)");
  CLI::App* capture_remove =
      capture->add_subcommand("remove", "delete the chains and jumps install created");
  for (CLI::App* c : {capture_install}) {
    c->add_option("-p,--envoy-port", capture_opts.proxy_port, "outbound capture port (15001)");
    c->add_option("-z,--inbound-capture-port", capture_opts.inbound_capture_port,
                  "inbound capture port (15006)");
    c->add_option("-u,--proxy-uid", capture_opts.proxy_uid,
                  "uid(s) of the proxy, never captured (1337)");
    c->add_option("-g,--proxy-gid", capture_opts.proxy_gid,
                  "gid(s) of the proxy, never captured (default: the uid)");
    c->add_option("-i,--outbound-ip-ranges-include", capture_opts.include_cidrs,
                  "outbound IPv4 CIDRs captured, comma-separated; * all (default), '' none");
    c->add_option("-x,--outbound-ip-ranges-exclude", capture_opts.exclude_cidrs,
                  "outbound IPv4 CIDRs never captured");
    c->add_option("-b,--inbound-ports", capture_opts.inbound_ports,
                  "inbound ports captured; * all (default), '' none");
    c->add_option("-d,--local-exclude-ports", capture_opts.exclude_inbound_ports,
                  "inbound ports never captured (with -b *)");
    c->add_option("-o,--outbound-ports-exclude", capture_opts.exclude_outbound_ports,
                  "outbound ports never captured");
    c->add_flag("--dry-run", capture_print, "print the iptables-restore input, change nothing");
  }
  CLI11_PARSE(app, argc, argv);
  if (capture->parsed()) {
    if (capture_install->parsed() && capture_print) {
      auto rules = mesh::proxy::captureRules(capture_opts);
      auto rules6 = mesh::proxy::captureRules(capture_opts, mesh::proxy::IpFamily::kIpv6);
      if (!rules.ok() || !rules6.ok()) {
        std::fprintf(stderr, "istio-proxy capture: %s\n", rules.status().message().c_str());
        return 2;
      }
      std::fputs(rules->c_str(), stdout);
      std::fputs("# IPv6 (ip6tables-restore), where the namespace has IPv6:\n", stdout);
      std::fputs(rules6->c_str(), stdout);
      return 0;
    }
    mesh::Status st = capture_install->parsed() ? mesh::proxy::installCapture(capture_opts)
                                                : mesh::proxy::removeCapture();
    if (!st.ok()) {
      std::fprintf(stderr, "istio-proxy capture: %s\n", st.message().c_str());
      return st.code() == mesh::StatusCode::kInvalidArgument ? 2 : 1;
    }
    (void)capture_remove;
    return 0;
  }
  if (opts.config_path.empty() && discovery.empty()) {
    std::fprintf(stderr, "istio-proxy: --config or --discovery is required\n");
    return 2;
  }

  mesh::log::init(log_level);
  opts.drain_timeout = std::chrono::milliseconds(static_cast<int64_t>(drain_seconds * 1000));
  opts.discovery = !discovery.empty();
  mesh::proxy::v1::Node& n = opts.node_overrides;
  n.set_id(node_id);
  n.set_namespace_(ns);
  n.set_workload_name(workload);
  for (const std::string& kv : labels) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "istio-proxy: --label '%s': expected KEY=VALUE\n", kv.c_str());
      return 2;
    }
    (*n.mutable_labels())[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  n.set_service_account(sa);
  n.set_ip(ip);
  for (const std::string& pair : app_ports) {
    unsigned target = 0, port = 0;
    char extra = 0;
    if (std::sscanf(pair.c_str(), "%u=%u%c", &target, &port, &extra) != 2 || target == 0 ||
        target > 65535 || port == 0 || port > 65535) {
      std::fprintf(stderr, "istio-proxy: --app-port '%s': expected TARGET=APP ports\n",
                   pair.c_str());
      return 2;
    }
    (*n.mutable_app_ports())[target] = port;
  }
  n.set_outbound_bind(outbound_bind);
  n.set_interception_mode(interception_mode);
  n.set_cert_dir(cert_dir);

  mesh::proxy::Server server(opts);
  mesh::Status st = server.start();
  if (!st.ok()) {
    std::fprintf(stderr, "istio-proxy: %s\n", st.message().c_str());
    return 1;
  }
  std::unique_ptr<mesh::proxy::DiscoveryClient> client;
  if (opts.discovery) {
    mesh::proxy::DiscoveryClientOptions copts;
    copts.address = discovery;
    copts.node = server.node();
    copts.admin_address = server.adminAddress();
    client = std::make_unique<mesh::proxy::DiscoveryClient>(
        copts,
        [&server](mesh::proxy::DiscoveredConfig config) {
          return server.applyDiscovered(std::move(config));
        },
        [&server](bool connected, std::string detail) {
          server.setDiscoveryState(connected, std::move(detail));
        });
    client->start();
  }
  int rc = server.run();
  if (client) client->stop();
  return rc;
}
