#include "proxy/server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <re2/re2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <latch>
#include <set>

#include "core/config/yaml_proto.h"
#include "core/file_util.h"
#include "core/log.h"
#include "core/net/address.h"
#include "proxy/upstream/outlier_detection.h"
#include "proxy/v1/config.pb.h"

namespace mesh::proxy {
namespace {

std::string isoTime(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm;
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string jsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

// One listening socket per worker on the same address, so the kernel spreads connections.
StatusOr<std::vector<int>> bindReusePort(const std::string& address, uint32_t count,
                                         uint16_t* bound_port) {
  auto hp = net::parseHostPort(address);
  if (!hp.ok()) return hp.status();
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, hp->host.c_str(), &v4->sin_addr) == 1) {
    family = AF_INET;
    v4->sin_family = AF_INET;
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, hp->host.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    len = sizeof(sockaddr_in6);
  } else {
    return invalidArgument("not an IP address: '" + hp->host + "'");
  }
  uint16_t port = hp->port;
  std::vector<int> fds;
  auto fail = [&](const char* what) -> Status {
    std::string msg = std::string("cannot ") + what + " " + address + ": " + std::strerror(errno);
    for (int fd : fds) ::close(fd);
    return unavailable(msg);
  };
  for (uint32_t i = 0; i < count; ++i) {
    int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail("create a socket for");
    fds.push_back(fd);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      return fail("set SO_REUSEPORT on");
    }
    if (family == AF_INET) {
      v4->sin_port = htons(port);
    } else {
      v6->sin6_port = htons(port);
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return fail("bind");
    if (::listen(fd, 1024) != 0) return fail("listen on");
    if (port == 0) {
      sockaddr_storage got{};
      socklen_t got_len = sizeof(got);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&got), &got_len);
      port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&got)->sin_port
                                     : reinterpret_cast<sockaddr_in6*>(&got)->sin6_port);
    }
  }
  *bound_port = port;
  return fds;
}

}  // namespace

Server::Server(ServerOptions options)
    : options_(std::move(options)),
      signals_(io_, SIGTERM, SIGINT, SIGHUP),
      drain_timer_(io_),
      main_stats_(store_.createThreadStats()),
      telemetry_(store_),
      ctx_(store_, telemetry_, systemResolve) {
  auto f = stats::registerFamily(store_, "mesh_config_reload_total", stats::MetricType::kCounter,
                                 "Config loads, by result.", {"result"});
  std::string_view ok[] = {"success"};
  std::string_view bad[] = {"rejected"};
  reload_ok_ = store_.series(f, ok);
  reload_failed_ = store_.series(f, bad);
}

Server::~Server() {
  for (auto& w : workers_) {
    w->io().stop();
    w->join();
  }
  resolver_io_.stop();
  if (resolver_thread_.joinable()) resolver_thread_.join();
}

StatusOr<std::shared_ptr<const Snapshot>> Server::loadSnapshot(const v1::Bootstrap* discovered) {
  auto bootstrap = std::make_shared<v1::Bootstrap>();
  config::LoadResult loaded;
  if (!options_.config_path.empty()) {
    config::LoadOptions opts;
    opts.file = options_.config_path;
    loaded = config::loadYamlFile(options_.config_path, bootstrap.get(), opts);
    for (const auto& w : loaded.warnings) MESH_LOG("config", warn, "{}", w.toString());
    if (!loaded.ok()) return loaded.errors.toStatus();
  }
  bootstrap->mutable_node()->MergeFrom(options_.node_overrides);
  if (options_.discovery && bootstrap->node().id().empty()) {
    // Istio's sidecar id: "sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local".
    const v1::Node& n = bootstrap->node();
    std::string ns = n.namespace_().empty() ? "default" : n.namespace_();
    bootstrap->mutable_node()->set_id("sidecar~" + n.ip() + "~" + n.workload_name() + "." + ns +
                                      "~" + ns + ".svc.cluster.local");
  }
  BuildInput in;
  if (discovered != nullptr) {
    // Pilot owns listeners, routes and clusters; the local file keeps node, admin, telemetry.
    // Errors then name fields of pilot's config, which has no lines.
    bootstrap->clear_listeners();
    bootstrap->clear_route_configs();
    bootstrap->clear_clusters();
    bootstrap->mutable_listeners()->CopyFrom(discovered->listeners());
    bootstrap->mutable_route_configs()->CopyFrom(discovered->route_configs());
    bootstrap->mutable_clusters()->CopyFrom(discovered->clusters());
    if (!bootstrap->has_telemetry() && discovered->has_telemetry()) {
      *bootstrap->mutable_telemetry() = discovered->telemetry();
    }
    in.file = "pilot";
  } else {
    in.source_map = &loaded.source_map;
    in.file = options_.config_path;
  }
  in.config = bootstrap;
  in.version = next_version_;
  in.previous = current_.get();
  auto snap = buildSnapshot(in, ctx_);
  if (snap.ok()) ++next_version_;
  return snap;
}

Status Server::start() {
  started_at_ = std::chrono::system_clock::now();
  auto snap = loadSnapshot(nullptr);
  if (!snap.ok()) {
    main_stats_.inc(reload_failed_);
    return snap.status();
  }
  uint32_t n = options_.concurrency;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (uint32_t i = 0; i < n; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, store_, telemetry_));
  }
  for (auto& w : workers_) w->start();

  const Snapshot& s = **snap;
  admin_ = std::make_unique<AdminServer>(io_, "admin");
  prometheus_ = std::make_unique<AdminServer>(io_, "prometheus");
  health_ = std::make_unique<AdminServer>(io_, "health");
  installAdminHandlers();
  auto admin_port = admin_->listen(s.admin_address);
  if (!admin_port.ok()) return admin_port.status();
  admin_port_ = *admin_port;
  auto prom_port = prometheus_->listen(s.prometheus_address);
  if (!prom_port.ok()) return prom_port.status();
  prometheus_port_ = *prom_port;
  auto health_port = health_->listen(s.health_address);
  if (!health_port.ok()) return health_port.status();
  health_port_ = *health_port;

  MESH_RETURN_IF_ERROR(applySnapshot(*snap));
  main_stats_.inc(reload_ok_);
  resolver_thread_ = std::thread([this] {
    auto guard = boost::asio::make_work_guard(resolver_io_);
    resolver_io_.run();
  });
  state_ = State::kLive;
  waitSignal();
  writePortFile();
  if (options_.discovery) {
    MESH_LOG("main", info, "istio-proxy started: {} worker(s), admin on port {}; waiting for pilot",
             workers_.size(), admin_port_);
    return okStatus();
  }
  MESH_LOG("main", info, "istio-proxy ready: {} listener(s), {} worker(s), admin on port {}",
           s.listeners.size(), workers_.size(), admin_port_);
  return okStatus();
}

Status Server::applySnapshot(std::shared_ptr<const Snapshot> snapshot) {
  // Bind what is new before anything changes, so a port conflict rejects the whole config.
  std::vector<std::pair<uint32_t, std::vector<int>>> adds;
  std::map<std::string, BoundListener> next;
  for (size_t i = 0; i < snapshot->listeners.size(); ++i) {
    const ListenerInfo& l = snapshot->listeners[i];
    if (!l.bind_to_port) continue;  // served through a useOriginalDst listener only
    auto it = listeners_.find(l.name);
    if (it != listeners_.end() && it->second.address == l.address) {
      next[l.name] = it->second;
      continue;
    }
    uint16_t port = 0;
    auto fds = bindReusePort(l.address, static_cast<uint32_t>(workers_.size()), &port);
    if (!fds.ok()) {
      for (auto& [slot, list] : adds) {
        for (int fd : list) ::close(fd);
      }
      return unavailable(snapshot->source + ": listeners[" + std::to_string(i) +
                         "].address: " + fds.status().message());
    }
    adds.emplace_back(l.slot, std::move(*fds));
    next[l.name] = BoundListener{l.address, l.slot, port};
  }
  std::vector<uint32_t> removes;
  for (const auto& [name, bl] : listeners_) {
    if (!next.count(name)) removes.push_back(bl.slot);
  }
  publish(snapshot, adds, removes);
  listeners_ = std::move(next);
  current_ = std::move(snapshot);
  scheduleDns();
  return okStatus();
}

void Server::publish(const std::shared_ptr<const Snapshot>& snapshot,
                     const std::vector<std::pair<uint32_t, std::vector<int>>>& adds,
                     const std::vector<uint32_t>& removes) {
  std::latch applied(static_cast<std::ptrdiff_t>(workers_.size()));
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker* w = workers_[i].get();
    std::vector<std::pair<uint32_t, int>> mine;
    for (const auto& [slot, fds] : adds) mine.emplace_back(slot, fds[i]);
    w->post([w, snapshot, mine, removes, &applied] {
      w->applySnapshot(snapshot);
      for (uint32_t slot : removes) w->removeListener(slot);
      for (const auto& [slot, fd] : mine) w->addListener(slot, fd);
      applied.count_down();
    });
  }
  applied.wait();  // every worker serves the new snapshot when this returns
}

Status Server::reload() {
  if (state_ == State::kDraining) return unavailable("draining");
  auto snap = loadSnapshot(discovered_.get());
  Status st = snap.ok() ? applySnapshot(*snap) : snap.status();
  if (!st.ok()) {
    main_stats_.inc(reload_failed_);
    last_error_ = st.message();
    MESH_LOG("config", error, "config rejected, keeping version {}:\n{}",
             current_ ? current_->version : 0, st.message());
    return st;
  }
  main_stats_.inc(reload_ok_);
  last_error_.clear();
  writePortFile();
  MESH_LOG("config", info, "config version {} applied from {}", current_->version,
           current_->source);
  return okStatus();
}

bool Server::ready() const {
  return state_ == State::kLive && (!options_.discovery || discovered_ != nullptr);
}

std::future<Status> Server::applyDiscovered(DiscoveredConfig config) {
  auto done = std::make_shared<std::promise<Status>>();
  std::future<Status> result = done->get_future();
  boost::asio::post(io_, [this, done, config = std::move(config)] {
    done->set_value(applyDiscoveredNow(config));
  });
  return result;
}

Status Server::applyDiscoveredNow(const DiscoveredConfig& config) {
  const std::string& version = config.version;
  if (state_ == State::kDraining) return unavailable("draining");
  auto merged = std::make_shared<const v1::Bootstrap>(mergeAssignments(config));
  auto snap = loadSnapshot(merged.get());
  Status st = snap.ok() ? applySnapshot(*snap) : snap.status();
  if (!st.ok()) {
    main_stats_.inc(reload_failed_);
    last_error_ = "pilot version " + version + ": " + st.message();
    MESH_LOG("config", error, "pilot's config version {} rejected, keeping {}:\n{}", version,
             discovered_version_.empty() ? "the local config" : discovered_version_, st.message());
    return st;
  }
  main_stats_.inc(reload_ok_);
  last_error_.clear();
  const bool first = discovered_ == nullptr;
  const bool only_assignments = !first && discovered_parts_.bootstrap == config.bootstrap;
  discovered_ = std::move(merged);
  discovered_parts_ = config;
  discovered_version_ = version;
  writePortFile();
  if (only_assignments) {
    MESH_LOG("config", info,
             "pilot's endpoints version {} applied (cluster load assignments only): {} "
             "assignment(s), {} cluster(s)",
             version, config.assignments->size(), current_->clusters.size());
  } else {
    MESH_LOG("config", info,
             "pilot's config version {} applied: {} listener(s), {} cluster(s), {} "
             "assignment(s){}",
             version, current_->listeners.size(), current_->clusters.size(),
             config.assignments->size(), first ? "; ready" : "");
  }
  return okStatus();
}

v1::Node Server::node() const { return current_ ? current_->config->node() : v1::Node(); }

std::string Server::adminAddress() const {
  auto hp = net::parseHostPort(current_ ? current_->admin_address : "");
  return hp.ok() ? net::formatHostPort(hp->host, admin_port_) : std::string();
}

void Server::setDiscoveryState(bool connected, std::string detail) {
  boost::asio::post(io_, [this, connected, detail = std::move(detail)]() mutable {
    discovery_connected_ = connected;
    discovery_detail_ = std::move(detail);
  });
}

void Server::writePortFile() {
  if (options_.port_file.empty()) return;
  std::string json = "{\"admin\":" + std::to_string(admin_port_) +
                     ",\"prometheus\":" + std::to_string(prometheus_port_) +
                     ",\"health\":" + std::to_string(health_port_) + ",\"listeners\":{";
  bool first = true;
  for (const auto& [name, bl] : listeners_) {
    if (!first) json += ',';
    first = false;
    json += "\"" + jsonEscape(name) + "\":" + std::to_string(bl.port);
  }
  json += "},\"version\":" + std::to_string(current_ ? current_->version : 0);
  if (options_.discovery)
    json += ",\"discovery_version\":\"" + jsonEscape(discovered_version_) + "\"";
  json += "}\n";
  Status st = writeFileAtomic(options_.port_file, json);
  if (!st.ok()) MESH_LOG("main", error, "port file: {}", st.message());
}

void Server::waitSignal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      MESH_LOG("main", info, "SIGHUP: reloading {}", options_.config_path);
      (void)reload();
    } else {
      MESH_LOG("main", info, "signal {}: draining", sig);
      beginDrain();
    }
    waitSignal();
  });
}

void Server::beginDrain() {
  if (state_ == State::kDraining) return;
  state_ = State::kDraining;
  drains_pending_ = static_cast<uint32_t>(workers_.size());
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->post([this, worker] {
      worker->drain([this] {
        boost::asio::post(io_, [this] {
          if (--drains_pending_ == 0) finishDrain();
        });
      });
    });
  }
  drain_timer_.expires_after(options_.drain_timeout);
  drain_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    MESH_LOG("main", warn, "drain timeout: closing {} worker(s) with requests in flight",
             drains_pending_);
    finishDrain();
  });
}

void Server::finishDrain() {
  if (finished_) return;
  finished_ = true;
  drain_timer_.cancel();
  for (auto& w : workers_) w->io().stop();
  for (auto& w : workers_) w->join();
  admin_->stop();
  prometheus_->stop();
  health_->stop();
  signals_.cancel();
  for (auto& [name, t] : dns_timers_) t->cancel();
  io_.stop();
}

int Server::run() {
  io_.run();
  MESH_LOG("main", info, "istio-proxy exiting");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// DNS

void Server::scheduleDns() {
  std::set<std::string> wanted;
  for (const auto& c : current_->clusters) {
    if (!c->dns) continue;
    wanted.insert(c->name);
    auto& timer = dns_timers_[c->name];
    if (timer) continue;
    timer = std::make_unique<boost::asio::steady_timer>(io_);
    timer->expires_after(c->dns_refresh);
    std::string name = c->name;
    timer->async_wait([this, name](const boost::system::error_code& ec) {
      if (!ec) refreshDns(name);
    });
  }
  for (auto it = dns_timers_.begin(); it != dns_timers_.end();) {
    if (!wanted.count(it->first)) {
      it->second->cancel();
      it = dns_timers_.erase(it);
    } else {
      ++it;
    }
  }
}

void Server::refreshDns(const std::string& cluster) {
  const ClusterInfo* c = current_ ? current_->findCluster(cluster) : nullptr;
  if (c == nullptr || !c->dns || state_ == State::kDraining) return;
  std::vector<std::string> names;
  for (const auto& t : c->dns_targets) names.push_back(t.hostname);
  const Resolver& resolve = ctx_.resolver();
  boost::asio::post(resolver_io_, [this, cluster, names, resolve] {
    std::vector<std::vector<std::string>> addrs;
    for (const auto& n : names) {
      auto r = resolve(n);
      if (!r.ok())
        MESH_LOG("upstream", warn, "DNS refresh for cluster {}: {}", cluster, r.status().message());
      addrs.push_back(r.ok() ? *r : std::vector<std::string>{});
    }
    boost::asio::post(io_, [this, cluster, addrs = std::move(addrs)]() mutable {
      onDnsResult(cluster, std::move(addrs));
    });
  });
}

void Server::onDnsResult(const std::string& cluster, std::vector<std::vector<std::string>> addrs) {
  auto timer = dns_timers_.find(cluster);
  const ClusterInfo* c = current_ ? current_->findCluster(cluster) : nullptr;
  if (c == nullptr || timer == dns_timers_.end() || state_ == State::kDraining) return;
  bool any = false;
  for (const auto& a : addrs) any = any || !a.empty();
  std::vector<Host> hosts = dnsHosts(*c, addrs, ctx_);
  std::vector<std::string> old_keys, new_keys;
  for (const auto& h : c->hosts) old_keys.push_back(h.key);
  for (const auto& h : hosts) new_keys.push_back(h.key);
  // A failed lookup keeps the last good answer, as Envoy does.
  if (any && old_keys != new_keys) {
    auto next = std::make_shared<Snapshot>(*current_);
    next->version = next_version_++;
    next->clusters[next->cluster_index.at(cluster)] = withHosts(*c, std::move(hosts));
    MESH_LOG("upstream", info, "cluster {}: DNS now gives {} host(s)", cluster, new_keys.size());
    publish(next, {}, {});
    current_ = std::move(next);
  }
  timer->second->expires_after(current_->findCluster(cluster)->dns_refresh);
  timer->second->async_wait([this, cluster](const boost::system::error_code& ec) {
    if (!ec) refreshDns(cluster);
  });
}

// ---------------------------------------------------------------------------------------------
// Admin API

void Server::installAdminHandlers() {
  AdminServer& a = *admin_;
  auto text = [](int status, std::string body) {
    return AdminResponse{status, "text/plain; charset=UTF-8", std::move(body)};
  };
  a.addHandler("/", "this help", false,
               [this, text](const AdminRequest&) { return text(200, admin_->helpText()); });
  a.addHandler("/help", "this help", false,
               [this, text](const AdminRequest&) { return text(200, admin_->helpText()); });
  a.addHandler("/stats", "counters, gauges and histograms (?filter=<re2>, ?usedonly)", false,
               [this](const AdminRequest& r) { return handleStats(r); });
  auto prom = [this](const AdminRequest& r) {
    std::string out;
    store_.prometheusText(&out, r.has("usedonly"));
    return AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8", std::move(out)};
  };
  a.addHandler("/stats/prometheus", "stats in Prometheus text format (?usedonly)", false, prom);
  prometheus_->addHandler("/stats/prometheus", "stats in Prometheus text format", false, prom);
  a.addHandler("/config_dump", "the running config as JSON", false,
               [this](const AdminRequest& r) { return handleConfigDump(r); });
  a.addHandler("/clusters", "upstream clusters and hosts (?format=json)", false,
               [this](const AdminRequest& r) { return handleClusters(r); });
  a.addHandler("/listeners", "listeners and their bound addresses", false,
               [this, text](const AdminRequest& r) {
                 std::string out;
                 bool json = r.get("format") == "json";
                 if (json) out = "{\"listener_statuses\":[";
                 bool first = true;
                 for (const auto& [name, bl] : listeners_) {
                   auto hp = net::parseHostPort(bl.address);
                   std::string addr = hp.ok() ? net::formatHostPort(hp->host, bl.port) : bl.address;
                   if (json) {
                     out += std::string(first ? "" : ",") + "{\"name\":\"" + jsonEscape(name) +
                            "\",\"local_address\":\"" + addr + "\"}";
                   } else {
                     out += name + "::" + addr + "\n";
                   }
                   first = false;
                 }
                 if (json) {
                   out += "]}";
                   return AdminResponse{200, "application/json", out};
                 }
                 return text(200, out);
               });
  auto ready_page = [this, text](const AdminRequest&) {
    switch (state_) {
      case State::kLive:
        if (!ready()) return text(503, "WAITING_FOR_PILOT\n");
        return text(200, "LIVE\n");
      case State::kDraining:
        return text(503, "DRAINING\n");
      default:
        return text(503, "PRE_INITIALIZING\n");
    }
  };
  a.addHandler("/ready", "200 when live, 503 otherwise", false, ready_page);
  a.addHandler("/healthz", "liveness: 200 while the process serves", false,
               [text](const AdminRequest&) { return text(200, "OK\n"); });
  health_->addHandler("/healthz/ready", "readiness", false, [this, text](const AdminRequest&) {
    bool ok = ready() && !healthcheck_failed_;
    return text(ok ? 200 : 503, ok ? "LIVE\n" : "NOT READY\n");
  });
  a.addHandler("/server_info", "version, state, uptime and node", false,
               [this](const AdminRequest& r) { return handleServerInfo(r); });
  a.addHandler("/logging", "list or set log levels (?level=debug, ?<logger>=<level>)", true,
               [this](const AdminRequest& r) { return handleLogging(r); });
  a.addHandler("/quitquitquit", "drain and exit", true, [this, text](const AdminRequest&) {
    boost::asio::post(io_, [this] { beginDrain(); });
    return text(200, "OK\n");
  });
  a.addHandler("/reload", "re-read the config file", true, [this, text](const AdminRequest&) {
    Status st = reload();
    if (!st.ok())
      return text(400, "config rejected; still serving version " +
                           std::to_string(current_->version) + ":\n" + st.message() + "\n");
    return text(200, "config version " + std::to_string(current_->version) + " applied\n");
  });
  a.addHandler("/healthcheck/fail", "fail /healthz/ready", true, [this, text](const AdminRequest&) {
    healthcheck_failed_ = true;
    return text(200, "OK\n");
  });
  a.addHandler("/healthcheck/ok", "pass /healthz/ready again", true,
               [this, text](const AdminRequest&) {
                 healthcheck_failed_ = false;
                 return text(200, "OK\n");
               });
  a.addHandler(
      "/memory", "resident and virtual memory of the process", false, [](const AdminRequest&) {
        std::ifstream f("/proc/self/statm");
        uint64_t size = 0, resident = 0;
        f >> size >> resident;
        uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
        return AdminResponse{200, "application/json",
                             "{\"allocated\":\"" + std::to_string(resident * page) +
                                 "\",\"virtual\":\"" + std::to_string(size * page) + "\"}\n"};
      });
}

AdminResponse Server::handleStats(const AdminRequest& r) {
  std::string all;
  store_.plainText(&all, "", r.has("usedonly"));
  std::string filter = r.get("filter");
  if (filter.empty()) return {200, "text/plain; charset=UTF-8", std::move(all)};
  RE2::Options opts;
  opts.set_log_errors(false);
  RE2 re(filter, opts);
  if (!re.ok()) return {400, "text/plain; charset=UTF-8", "invalid filter regex: " + re.error()};
  std::string out;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    if (nl == std::string::npos) nl = all.size();
    std::string_view line(all.data() + pos, nl - pos);
    if (RE2::PartialMatch(re2::StringPiece(line.data(), line.size()), re)) {
      out.append(line);
      out.push_back('\n');
    }
    pos = nl + 1;
  }
  return {200, "text/plain; charset=UTF-8", std::move(out)};
}

AdminResponse Server::handleConfigDump(const AdminRequest&) {
  std::string out = "{\"configs\":[{\"@type\":\"type.googleapis.com/mesh.proxy.v1.Bootstrap\"";
  out += ",\"version_info\":\"" + std::to_string(current_->version) + "\"";
  out += ",\"last_updated\":\"" + isoTime(current_->loaded_at) + "\"";
  out += ",\"source\":\"" + jsonEscape(current_->source) + "\"";
  out += ",\"bootstrap\":" + config::toJson(*current_->config, false);
  out += "}]";
  if (options_.discovery) {
    out += ",\"discovery\":{\"version_info\":\"" + jsonEscape(discovered_version_) +
           "\",\"bootstrap_version_info\":\"" + jsonEscape(discovered_parts_.bootstrap_version) +
           "\",\"assignments_version_info\":\"" +
           jsonEscape(discovered_parts_.assignments_version) +
           "\",\"connected\":" + (discovery_connected_ ? "true" : "false") + ",\"detail\":\"" +
           jsonEscape(discovery_detail_) + "\"}";
  }
  if (!last_error_.empty()) out += ",\"last_rejected_config\":\"" + jsonEscape(last_error_) + "\"";
  out += "}\n";
  return {200, "application/json", std::move(out)};
}

AdminResponse Server::handleClusters(const AdminRequest& r) {
  bool json = r.get("format") == "json";
  std::string out;
  if (json)
    out = "{\"cluster_statuses\":[";
  else
    out = "version_info::" + std::to_string(current_->version) + "\n";
  bool first_cluster = true;
  const int64_t now_ms = outlierNowMs();
  for (const auto& c : current_->clusters) {
    if (json) {
      out += std::string(first_cluster ? "" : ",") + "{\"name\":\"" + jsonEscape(c->name) +
             "\",\"host_statuses\":[";
    }
    first_cluster = false;
    bool first_host = true;
    for (const Host& h : c->hosts) {
      uint64_t cx = store_.counterValue(h.stats.cx_total);
      uint64_t cx_fail = store_.counterValue(h.stats.cx_connect_fail);
      uint64_t rq = store_.counterValue(h.stats.rq_total);
      uint64_t err = store_.counterValue(h.stats.rq_error);
      const bool ejected = isEjected(h, now_ms);
      std::string reason;
      if (ejected) {
        reason = h.health->reason.load() == HostHealth::kConsecutiveGatewayFailure
                     ? "consecutive_gateway_failure"
                     : "consecutive_5xx";
      }
      if (json) {
        out += std::string(first_host ? "" : ",") + "{\"address\":{\"socket_address\":{" +
               "\"address\":\"" + h.address + "\",\"port_value\":" + std::to_string(h.port) +
               "}},\"stats\":[{\"name\":\"cx_total\",\"value\":\"" + std::to_string(cx) +
               "\"},{\"name\":\"cx_connect_fail\",\"value\":\"" + std::to_string(cx_fail) +
               "\"},{\"name\":\"rq_total\",\"value\":\"" + std::to_string(rq) +
               "\"},{\"name\":\"rq_error\",\"value\":\"" + std::to_string(err) +
               "\"}],\"health_status\":{\"eds_health_status\":\"HEALTHY\"" +
               (ejected ? ",\"failed_outlier_check\":true,\"outlier_reason\":\"" + reason + "\""
                        : std::string()) +
               "},\"weight\":" + std::to_string(h.weight) +
               (h.hostname.empty() ? "" : ",\"hostname\":\"" + h.hostname + "\"") + "}";
      } else {
        std::string p = c->name + "::" + h.key + "::";
        out += p + "cx_total::" + std::to_string(cx) + "\n";
        out += p + "cx_connect_fail::" + std::to_string(cx_fail) + "\n";
        out += p + "rq_total::" + std::to_string(rq) + "\n";
        out += p + "rq_error::" + std::to_string(err) + "\n";
        out += p + "health_flags::" + (ejected ? "/failed_outlier_check" : "healthy") + "\n";
        if (ejected) out += p + "outlier_ejection::" + reason + "\n";
        out += p + "weight::" + std::to_string(h.weight) + "\n";
        if (!h.hostname.empty()) out += p + "hostname::" + h.hostname + "\n";
      }
      first_host = false;
    }
    if (json) out += "]}";
  }
  if (json) {
    out += "]}\n";
    return {200, "application/json", std::move(out)};
  }
  return {200, "text/plain; charset=UTF-8", std::move(out)};
}

AdminResponse Server::handleLogging(const AdminRequest& r) {
  std::string err;
  for (const auto& [k, v] : r.params) {
    if (k == "level") {
      if (!log::setLevel("", v)) err += "unknown level '" + v + "'\n";
    } else if (k == "paths") {
      std::string_view list = v;
      while (!list.empty()) {
        size_t comma = list.find(',');
        std::string_view item = list.substr(0, comma);
        size_t colon = item.find(':');
        if (colon == std::string_view::npos ||
            !log::setLevel(item.substr(0, colon), item.substr(colon + 1))) {
          err += "invalid logger setting '" + std::string(item) + "'\n";
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    } else if (!log::setLevel(k, v)) {
      err += "unknown logger or level '" + k + "=" + v + "'\n";
    }
  }
  std::string out = "active loggers:\n";
  for (const auto& [name, level] : log::levels()) out += "  " + name + ": " + level + "\n";
  if (!err.empty()) return {404, "text/plain; charset=UTF-8", err + out};
  return {200, "text/plain; charset=UTF-8", std::move(out)};
}

AdminResponse Server::handleServerInfo(const AdminRequest&) {
  const char* state = ready() ? "LIVE" : state_ == State::kDraining ? "DRAINING" : "INITIALIZING";
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() -
                                                                 started_at_)
                    .count();
  const NodeInfo& n = current_->node;
  std::string out =
      "{\"version\":\"" MESH_VERSION "\",\"state\":\"" + std::string(state) +
      "\",\"uptime_current_epoch\":\"" + std::to_string(uptime) + "s\",\"uptime_all_epochs\":\"" +
      std::to_string(uptime) +
      "s\",\"command_line_options\":{\"concurrency\":" + std::to_string(workers_.size()) +
      ",\"config_path\":\"" + jsonEscape(options_.config_path) + "\"},\"node\":{\"id\":\"" +
      jsonEscape(n.id) + "\",\"workload_name\":\"" + jsonEscape(n.workload_name) +
      "\",\"namespace\":\"" + jsonEscape(n.namespace_) + "\"}}\n";
  return {200, "application/json", std::move(out)};
}

}  // namespace mesh::proxy
