#include "proxy/upstream/load_balancer.h"

#include <algorithm>
#include <numeric>

#include "core/hash.h"
#include "proxy/upstream/outlier_detection.h"

namespace mesh::proxy {
namespace {

int pickOnce(const ClusterInfo& c, LbState& state, const std::vector<uint32_t>& active,
             Random& random, const LbContext& ctx) {
  const size_t n = c.hosts.size();
  if (ctx.hash && (c.lb == LbPolicy::kRingHash || c.lb == LbPolicy::kMaglev)) {
    if (c.lb == LbPolicy::kRingHash && !c.ring.empty()) {
      auto it =
          std::lower_bound(c.ring.begin(), c.ring.end(), std::make_pair(*ctx.hash, uint32_t{0}));
      if (it == c.ring.end()) it = c.ring.begin();
      return static_cast<int>(it->second);
    }
    if (c.lb == LbPolicy::kMaglev && !c.maglev.empty()) {
      return static_cast<int>(c.maglev[*ctx.hash % c.maglev.size()]);
    }
  }
  switch (c.lb) {
    case LbPolicy::kRoundRobin: {
      if (c.equal_weights) return static_cast<int>(state.rr_next++ % n);
      // Smooth weighted round robin: every host gains its weight, the richest is picked and
      // pays the total. Spreads picks evenly within each cycle.
      if (state.smooth_current.size() != n) state.smooth_current.assign(n, 0);
      size_t best = 0;
      for (size_t i = 0; i < n; ++i) {
        state.smooth_current[i] += c.hosts[i].weight;
        if (state.smooth_current[i] > state.smooth_current[best]) best = i;
      }
      state.smooth_current[best] -= static_cast<int64_t>(c.total_weight);
      return static_cast<int>(best);
    }
    case LbPolicy::kLeastRequest: {
      // Power of two choices.
      size_t a = random.uniform(n);
      if (n == 1) return 0;
      size_t b = random.uniform(n - 1);
      if (b >= a) ++b;
      uint32_t la = a < active.size() ? active[a] : 0;
      uint32_t lb = b < active.size() ? active[b] : 0;
      if (!c.equal_weights) {
        // Weighted: compare active/weight.
        uint64_t wa = c.hosts[a].weight, wb = c.hosts[b].weight;
        return static_cast<int>((uint64_t{la} + 1) * wb <= (uint64_t{lb} + 1) * wa ? a : b);
      }
      return static_cast<int>(la <= lb ? a : b);
    }
    case LbPolicy::kRandom:
    case LbPolicy::kRingHash:  // no hash key: spread randomly
    case LbPolicy::kMaglev: {
      if (c.equal_weights) return static_cast<int>(random.uniform(n));
      uint64_t r = random.uniform(c.total_weight);
      auto it = std::upper_bound(c.cumulative_weights.begin(), c.cumulative_weights.end(), r);
      return static_cast<int>(it - c.cumulative_weights.begin());
    }
  }
  return 0;
}

}  // namespace

int chooseHost(const ClusterInfo& c, LbState& state, const std::vector<uint32_t>& active,
               Random& random, const LbContext& ctx) {
  if (c.hosts.empty()) return -1;
  int host = pickOnce(c, state, active, random, ctx);
  if (c.outlier.enabled && isEjected(c.hosts[host], ctx.now_ms) && ejectionsApply(c, ctx.now_ms)) {
    // Ejected hosts are skipped; if every pick lands on one, the last pick stands (as Envoy's
    // panic routing uses all hosts when too few are healthy).
    for (size_t attempt = 0; attempt < 2 * c.hosts.size() && isEjected(c.hosts[host], ctx.now_ms);
         ++attempt) {
      LbContext again = ctx;
      if (again.hash) again.hash = *again.hash * 0x9e3779b97f4a7c15ULL + attempt + 7;
      host = pickOnce(c, state, active, random, again);
    }
  }
  if (ctx.avoid_host >= 0 && host == ctx.avoid_host && c.hosts.size() > 1) {
    // Retry host predicate: a few more picks to land elsewhere; hashing policies rehash.
    for (int attempt = 0; attempt < 3 && host == ctx.avoid_host; ++attempt) {
      LbContext again = ctx;
      if (again.hash) again.hash = *again.hash * 0x9e3779b97f4a7c15ULL + attempt + 1;
      host = pickOnce(c, state, active, random, again);
    }
  }
  return host;
}

void buildLoadBalancerTables(ClusterInfo& c) {
  c.total_weight = 0;
  c.equal_weights = true;
  c.cumulative_weights.clear();
  c.ring.clear();
  c.maglev.clear();
  for (const Host& h : c.hosts) {
    c.total_weight += h.weight;
    c.cumulative_weights.push_back(c.total_weight);
    if (h.weight != c.hosts.front().weight) c.equal_weights = false;
  }
  if (c.hosts.empty()) return;

  if (c.lb == LbPolicy::kRingHash) {
    // Points per unit of weight, rounded up to a power of two: the ring has at least
    // ring_min_size points, and adding or removing a host rarely changes the other hosts'
    // points, so their keys stay where they were.
    uint64_t per_unit = 1;
    while (per_unit * c.total_weight < c.ring_min_size) per_unit *= 2;
    std::string key;
    for (uint32_t i = 0; i < c.hosts.size(); ++i) {
      const Host& h = c.hosts[i];
      uint64_t replicas = per_unit * h.weight;
      // Huge weights: scale down so the ring stays bounded (8M points in all).
      constexpr uint64_t kMaxRing = 1u << 23;
      if (c.total_weight > kMaxRing)
        replicas = std::max<uint64_t>(1, h.weight * kMaxRing / c.total_weight);
      for (uint64_t r = 0; r < replicas; ++r) {
        key = h.key;
        key += '_';
        key += std::to_string(r);
        c.ring.emplace_back(hash64(key), i);
      }
    }
    std::sort(c.ring.begin(), c.ring.end());
  } else if (c.lb == LbPolicy::kMaglev) {
    const uint64_t m = c.maglev_size;
    const size_t n = c.hosts.size();
    std::vector<uint64_t> offset(n), skip(n), next(n, 0);
    std::vector<double> credit(n, 0.0);
    uint32_t max_w = 0;
    for (size_t i = 0; i < n; ++i) {
      offset[i] = hash64(c.hosts[i].key, 0) % m;
      skip[i] = hash64(c.hosts[i].key, 1) % (m - 1) + 1;
      max_w = std::max(max_w, c.hosts[i].weight);
    }
    c.maglev.assign(m, UINT32_MAX);
    uint64_t filled = 0;
    while (filled < m) {
      for (size_t i = 0; i < n && filled < m; ++i) {
        credit[i] += static_cast<double>(c.hosts[i].weight) / max_w;
        if (credit[i] < 1.0) continue;
        credit[i] -= 1.0;
        uint64_t slot;
        do {
          slot = (offset[i] + next[i] * skip[i]) % m;
          ++next[i];
        } while (c.maglev[slot] != UINT32_MAX);
        c.maglev[slot] = static_cast<uint32_t>(i);
        ++filled;
      }
    }
  }
}

}  // namespace mesh::proxy
