#include "proxy/upstream/outlier_detection.h"

#include <gtest/gtest.h>

#include "core/random.h"
#include "proxy/upstream/load_balancer.h"

namespace mesh::proxy {
namespace {

// A round-robin cluster of n hosts with outlier detection and fresh health.
ClusterInfo cluster(size_t n, OutlierDetection od) {
  ClusterInfo c;
  c.name = "c";
  od.enabled = true;
  c.outlier = od;
  for (size_t i = 0; i < n; ++i) {
    Host h;
    h.key = "10.0.0." + std::to_string(i + 1) + ":80";
    h.health = std::make_shared<HostHealth>();
    c.hosts.push_back(std::move(h));
  }
  buildLoadBalancerTables(c);
  return c;
}

TEST(OutlierDetectionTest, ConsecutiveFiveHundredsEjectForBaseTimesCount) {
  OutlierDetection od;
  od.consecutive_5xx = 3;
  od.base_ejection = Millis(1000);
  od.max_ejection_percent = 100;
  ClusterInfo c = cluster(2, od);
  EXPECT_FALSE(recordOutcome(c, 0, AttemptOutcome::k5xx, 0));
  EXPECT_FALSE(recordOutcome(c, 0, AttemptOutcome::kGatewayError, 0));
  EXPECT_TRUE(recordOutcome(c, 0, AttemptOutcome::kLocalFailure, 0));
  EXPECT_TRUE(isEjected(c.hosts[0], 999));
  EXPECT_FALSE(isEjected(c.hosts[0], 1000));
  EXPECT_EQ(c.hosts[0].health->reason.load(), HostHealth::kConsecutive5xx);
  // The second ejection lasts twice as long.
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(recordOutcome(c, 0, AttemptOutcome::k5xx, 1000));
  EXPECT_TRUE(recordOutcome(c, 0, AttemptOutcome::k5xx, 1000));
  EXPECT_TRUE(isEjected(c.hosts[0], 2999));
  EXPECT_FALSE(isEjected(c.hosts[0], 3000));
}

TEST(OutlierDetectionTest, SuccessResetsTheCount) {
  OutlierDetection od;
  od.consecutive_5xx = 2;
  od.max_ejection_percent = 100;
  ClusterInfo c = cluster(2, od);
  EXPECT_FALSE(recordOutcome(c, 1, AttemptOutcome::k5xx, 0));
  EXPECT_FALSE(recordOutcome(c, 1, AttemptOutcome::kSuccess, 0));
  EXPECT_FALSE(recordOutcome(c, 1, AttemptOutcome::k5xx, 0));
  EXPECT_FALSE(isEjected(c.hosts[1], 0));
}

TEST(OutlierDetectionTest, GatewayFailuresCountSeparately) {
  OutlierDetection od;
  od.consecutive_5xx = 0;
  od.consecutive_gateway = 2;
  od.max_ejection_percent = 100;
  ClusterInfo c = cluster(2, od);
  EXPECT_FALSE(recordOutcome(c, 0, AttemptOutcome::kGatewayError, 0));
  EXPECT_FALSE(recordOutcome(c, 0, AttemptOutcome::k5xx, 0));  // a 500 breaks the run
  EXPECT_FALSE(recordOutcome(c, 0, AttemptOutcome::kGatewayError, 0));
  EXPECT_TRUE(recordOutcome(c, 0, AttemptOutcome::kLocalFailure, 0));
  EXPECT_EQ(c.hosts[0].health->reason.load(), HostHealth::kConsecutiveGatewayFailure);
}

TEST(OutlierDetectionTest, MaxEjectionPercentKeepsHostsButAlwaysAllowsOne) {
  OutlierDetection od;
  od.consecutive_5xx = 1;
  od.max_ejection_percent = 10;  // 10% of 4 hosts rounds down to 0: one is still allowed
  ClusterInfo c = cluster(4, od);
  EXPECT_TRUE(recordOutcome(c, 0, AttemptOutcome::k5xx, 0));
  EXPECT_FALSE(recordOutcome(c, 1, AttemptOutcome::k5xx, 0));
  EXPECT_FALSE(isEjected(c.hosts[1], 0));
}

TEST(OutlierDetectionTest, LoadBalancerSkipsEjectedHostsUnlessTooFewAreHealthy) {
  OutlierDetection od;
  od.consecutive_5xx = 1;
  od.max_ejection_percent = 100;
  ClusterInfo c = cluster(3, od);
  ASSERT_TRUE(recordOutcome(c, 1, AttemptOutcome::k5xx, 0));
  LbState state;
  FastRandom random(42);
  LbContext ctx;
  ctx.now_ms = 10;
  for (int i = 0; i < 30; ++i) EXPECT_NE(chooseHost(c, state, {}, random, ctx), 1);

  // With minHealthPercent 100, one ejected host of three is too many: every host is used.
  c.outlier.min_health_percent = 100;
  bool saw_ejected = false;
  for (int i = 0; i < 30; ++i) saw_ejected |= chooseHost(c, state, {}, random, ctx) == 1;
  EXPECT_TRUE(saw_ejected);
}

}  // namespace
}  // namespace mesh::proxy
