#include "pilot/translate/traffic_policy.h"

namespace mesh::pilot::translate {
namespace {

namespace v1 = mesh::proxy::v1;

void overlay(const networking::TrafficPolicy& tp, EffectivePolicy* out) {
  if (tp.has_load_balancer()) out->load_balancer = &tp.load_balancer();
  if (tp.has_connection_pool()) out->connection_pool = &tp.connection_pool();
  if (tp.has_outlier_detection()) out->outlier_detection = &tp.outlier_detection();
  if (tp.has_tls()) out->tls = &tp.tls();
}

// The policy for `port`: destination-level categories, replaced by the port's own ones.
void overlayWithPort(const networking::TrafficPolicy& tp, uint32_t port, EffectivePolicy* out) {
  overlay(tp, out);
  for (const auto& pl : tp.port_level_settings()) {
    if (pl.port().number() != port) continue;
    if (pl.has_load_balancer()) out->load_balancer = &pl.load_balancer();
    if (pl.has_connection_pool()) out->connection_pool = &pl.connection_pool();
    if (pl.has_outlier_detection()) out->outlier_detection = &pl.outlier_detection();
    if (pl.has_tls()) out->tls = &pl.tls();
    break;
  }
}

}  // namespace

EffectivePolicy effectivePolicy(const networking::DestinationRule* dr,
                                const networking::Subset* subset, uint32_t port) {
  EffectivePolicy out;
  if (dr != nullptr && dr->has_traffic_policy()) overlayWithPort(dr->traffic_policy(), port, &out);
  if (subset != nullptr && subset->has_traffic_policy()) {
    overlayWithPort(subset->traffic_policy(), port, &out);
  }
  return out;
}

void applyPolicy(const EffectivePolicy& policy, v1::Cluster* cluster, const std::string& where,
                 std::vector<std::string>* warnings) {
  // Istio's default since 1.14 when no rule chooses: least request.
  cluster->set_lb_policy(v1::Cluster::LEAST_REQUEST);
  if (const auto* lb = policy.load_balancer) {
    if (lb->has_consistent_hash()) {
      const auto& ch = lb->consistent_hash();
      if (ch.has_maglev()) {
        cluster->set_lb_policy(v1::Cluster::MAGLEV);
        if (ch.maglev().table_size() != 0) {
          cluster->set_maglev_table_size(ch.maglev().table_size());
        }
      } else {
        cluster->set_lb_policy(v1::Cluster::RING_HASH);
        uint64_t ring =
            ch.has_ring_hash() ? ch.ring_hash().minimum_ring_size() : ch.minimum_ring_size();
        if (ring != 0) cluster->set_ring_hash_minimum_ring_size(ring);
      }
      if (ch.hash_key_case() ==
          networking::LoadBalancerSettings::ConsistentHashLB::kHttpQueryParameterName) {
        warnings->push_back(where +
                            ": consistentHash.httpQueryParameterName is not supported by "
                            "the proxy; requests are spread without a hash key");
      }
    } else {
      switch (lb->simple()) {
        case networking::LoadBalancerSettings::ROUND_ROBIN:
          cluster->set_lb_policy(v1::Cluster::ROUND_ROBIN);
          break;
        case networking::LoadBalancerSettings::RANDOM:
          cluster->set_lb_policy(v1::Cluster::RANDOM);
          break;
        case networking::LoadBalancerSettings::PASSTHROUGH:
          warnings->push_back(where +
                              ": loadBalancer PASSTHROUGH is not supported by the proxy; "
                              "using LEAST_REQUEST");
          break;
        default:  // UNSPECIFIED, LEAST_REQUEST and its alias LEAST_CONN
          break;
      }
    }
    if (lb->has_locality_lb_setting()) {
      warnings->push_back(where + ": localityLbSetting is not translated yet");
    }
  }
  if (const auto* cp = policy.connection_pool) {
    v1::CircuitBreakers cb;
    if (cp->tcp().max_connections() > 0) {
      cb.mutable_max_connections()->set_value(static_cast<uint32_t>(cp->tcp().max_connections()));
    }
    if (cp->http().http1_max_pending_requests() > 0) {
      cb.mutable_max_pending_requests()->set_value(
          static_cast<uint32_t>(cp->http().http1_max_pending_requests()));
    }
    if (cp->http().http2_max_requests() > 0) {
      cb.mutable_max_requests()->set_value(static_cast<uint32_t>(cp->http().http2_max_requests()));
    }
    if (cp->http().max_retries() > 0) {
      cb.mutable_max_retries()->set_value(static_cast<uint32_t>(cp->http().max_retries()));
    }
    if (cb.ByteSizeLong() != 0) *cluster->mutable_circuit_breakers() = cb;
    if (cp->http().max_requests_per_connection() > 0) {
      cluster->set_max_requests_per_connection(
          static_cast<uint32_t>(cp->http().max_requests_per_connection()));
    }
    if (cp->tcp().has_connect_timeout()) {
      *cluster->mutable_connect_timeout() = cp->tcp().connect_timeout();
    }
    if (cp->http().has_idle_timeout()) *cluster->mutable_idle_timeout() = cp->http().idle_timeout();
  }
  if (policy.tls != nullptr && (policy.tls->mode() == networking::ClientTLSSettings::SIMPLE ||
                                policy.tls->mode() == networking::ClientTLSSettings::MUTUAL)) {
    // ISTIO_MUTUAL is the translator's (applyMtls: the proxy's workload certificates).
    warnings->push_back(where + ": tls " +
                        networking::ClientTLSSettings::TLSmode_Name(policy.tls->mode()) +
                        " (TLS origination) is not supported by the proxy yet; plaintext is used");
  }
  if (const auto* od = policy.outlier_detection) {
    v1::OutlierDetection* out = cluster->mutable_outlier_detection();
    if (od->has_consecutive_5xx_errors()) {
      out->mutable_consecutive_5xx()->set_value(od->consecutive_5xx_errors().value());
    } else if (od->consecutive_errors() > 0) {
      // Deprecated consecutiveErrors: Istio now reads it as consecutive 5xx errors.
      out->mutable_consecutive_5xx()->set_value(static_cast<uint32_t>(od->consecutive_errors()));
    }
    if (od->has_consecutive_gateway_errors()) {
      out->mutable_consecutive_gateway_failure()->set_value(
          od->consecutive_gateway_errors().value());
    }
    if (od->has_interval()) *out->mutable_interval() = od->interval();
    if (od->has_base_ejection_time()) *out->mutable_base_ejection_time() = od->base_ejection_time();
    if (od->max_ejection_percent() > 0) {
      out->mutable_max_ejection_percent()->set_value(
          static_cast<uint32_t>(od->max_ejection_percent()));
    }
    if (od->min_health_percent() > 0) {
      out->set_min_health_percent(static_cast<uint32_t>(od->min_health_percent()));
    }
  }
}

std::vector<v1::HashPolicy> hashPolicies(const EffectivePolicy& policy) {
  std::vector<v1::HashPolicy> out;
  const auto* lb = policy.load_balancer;
  if (lb == nullptr || !lb->has_consistent_hash()) return out;
  const auto& ch = lb->consistent_hash();
  using CH = networking::LoadBalancerSettings::ConsistentHashLB;
  v1::HashPolicy hp;
  switch (ch.hash_key_case()) {
    case CH::kHttpHeaderName:
      hp.mutable_header()->set_name(ch.http_header_name());
      break;
    case CH::kHttpCookie:
      hp.mutable_cookie()->set_name(ch.http_cookie().name());
      hp.mutable_cookie()->set_path(ch.http_cookie().path());
      if (ch.http_cookie().has_ttl()) *hp.mutable_cookie()->mutable_ttl() = ch.http_cookie().ttl();
      break;
    case CH::kUseSourceIp:
      if (!ch.use_source_ip()) return out;
      hp.mutable_source_ip();
      break;
    default:
      return out;
  }
  out.push_back(std::move(hp));
  return out;
}

}  // namespace mesh::pilot::translate
