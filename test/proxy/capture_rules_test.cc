#include "proxy/capture/capture_rules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mesh::proxy {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// The part of the default rules that does not depend on the address family: the chains, the
// two redirects, inbound capture with Istio's own ports (and ssh) exempt, the OUTPUT hook.
constexpr const char* kDefaultHead =
    "*nat\n"
    ":ISTIO_INBOUND - [0:0]\n"
    ":ISTIO_IN_REDIRECT - [0:0]\n"
    ":ISTIO_OUTPUT - [0:0]\n"
    ":ISTIO_REDIRECT - [0:0]\n"
    "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006\n"
    "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"
    "-A PREROUTING -p tcp -j ISTIO_INBOUND\n"
    "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN\n"
    "-A ISTIO_INBOUND -p tcp --dport 22 -j RETURN\n"
    "-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN\n"
    "-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN\n"
    "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN\n"
    "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT\n"
    "-A OUTPUT -p tcp -j ISTIO_OUTPUT\n";

// Istio's defaults: everything captured, the proxy's uid and gid 1337 exempt.
TEST(CaptureRulesTest, DefaultsAreIstios) {
  auto rules = captureRules(CaptureOptions{});
  ASSERT_TRUE(rules.ok()) << rules.status().message();
  EXPECT_EQ(*rules, std::string(kDefaultHead) +
                        "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN\n"
                        "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --uid-owner 1337 -j "
                        "ISTIO_IN_REDIRECT\n"
                        "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN\n"
                        "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
                        "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --gid-owner 1337 -j "
                        "ISTIO_IN_REDIRECT\n"
                        "-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN\n"
                        "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN\n"
                        "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
                        "-A ISTIO_OUTPUT -j ISTIO_REDIRECT\n"
                        "COMMIT\n");
}

TEST(CaptureRulesTest, IncludeAndExcludeLists) {
  CaptureOptions o;
  o.proxy_port = 16001;
  o.inbound_capture_port = 16006;
  o.proxy_uid = "1500";
  o.proxy_gid = "1600";
  o.include_cidrs = "10.250.0.0/16, 192.168.1.1";
  o.exclude_cidrs = "10.250.9.0/24";
  o.inbound_ports = "8000,9080";
  o.exclude_inbound_ports = "7000";  // only with -b *: ignored here, as in Istio
  o.exclude_outbound_ports = "3306";
  auto rules = captureRules(o);
  ASSERT_TRUE(rules.ok()) << rules.status().message();
  EXPECT_EQ(*rules,
            "*nat\n"
            ":ISTIO_INBOUND - [0:0]\n"
            ":ISTIO_IN_REDIRECT - [0:0]\n"
            ":ISTIO_OUTPUT - [0:0]\n"
            ":ISTIO_REDIRECT - [0:0]\n"
            "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006\n"
            "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 16001\n"
            "-A PREROUTING -p tcp -j ISTIO_INBOUND\n"
            "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN\n"
            "-A ISTIO_INBOUND -p tcp --dport 8000 -j ISTIO_IN_REDIRECT\n"
            "-A ISTIO_INBOUND -p tcp --dport 9080 -j ISTIO_IN_REDIRECT\n"
            "-A OUTPUT -p tcp -j ISTIO_OUTPUT\n"
            "-A ISTIO_OUTPUT -p tcp --dport 3306 -j RETURN\n"
            "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN\n"
            "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --uid-owner 1500 -j "
            "ISTIO_IN_REDIRECT\n"
            "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1500 -j RETURN\n"
            "-A ISTIO_OUTPUT -m owner --uid-owner 1500 -j RETURN\n"
            "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --gid-owner 1600 -j "
            "ISTIO_IN_REDIRECT\n"
            "-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1600 -j RETURN\n"
            "-A ISTIO_OUTPUT -m owner --gid-owner 1600 -j RETURN\n"
            "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
            "-A ISTIO_OUTPUT -d 10.250.9.0/24 -j RETURN\n"
            "-A ISTIO_OUTPUT -d 10.250.0.0/16 -j ISTIO_REDIRECT\n"
            "-A ISTIO_OUTPUT -d 192.168.1.1 -j ISTIO_REDIRECT\n"
            "COMMIT\n");
}

TEST(CaptureRulesTest, ExcludedInboundPortsAndNoInboundCapture) {
  CaptureOptions o;
  o.exclude_inbound_ports = "7000";
  auto rules = captureRules(o);
  ASSERT_TRUE(rules.ok());
  EXPECT_THAT(*rules, HasSubstr("-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN\n"
                                "-A ISTIO_INBOUND -p tcp --dport 7000 -j RETURN\n"
                                "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT\n"));
  o.inbound_ports = "";
  o.include_cidrs = "";
  rules = captureRules(o);
  ASSERT_TRUE(rules.ok());
  EXPECT_THAT(*rules, ::testing::Not(HasSubstr("PREROUTING")));
  EXPECT_THAT(*rules, ::testing::Not(HasSubstr("--uid-owner 1337 -j ISTIO_IN_REDIRECT")));
  EXPECT_THAT(*rules, ::testing::Not(HasSubstr("-j ISTIO_REDIRECT\n")));
}

TEST(CaptureRulesTest, EveryBadFlagIsNamed) {
  CaptureOptions o;
  o.proxy_uid = "proxy";
  o.include_cidrs = "10.0.0.0/33";
  o.exclude_cidrs = "fd00::/129";
  o.inbound_ports = "80,70000";
  o.exclude_outbound_ports = "x";
  o.proxy_port = 0;
  auto rules = captureRules(o);
  ASSERT_FALSE(rules.ok());
  EXPECT_EQ(rules.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(rules.status().message(),
              AllOf(HasSubstr("-p: must be 1..65535"), HasSubstr("-u: 'proxy' is not a uid"),
                    HasSubstr("-i: '10.0.0.0/33' is not an IP CIDR"),
                    HasSubstr("-x: 'fd00::/129' is not an IP CIDR"),
                    HasSubstr("-b: '70000' is not a port"), HasSubstr("-o: 'x' is not a port")));
}

// ip6tables-restore input: the same chains, IPv6 loopback (::1) and passthrough source (::6),
// and only the IPv6 CIDRs of mixed lists.
TEST(CaptureRulesTest, Ipv6RulesMirrorIpv4) {
  CaptureOptions o;
  auto rules = captureRules(o, IpFamily::kIpv6);
  ASSERT_TRUE(rules.ok()) << rules.status().message();
  EXPECT_EQ(
      *rules,
      std::string(kDefaultHead) +
          "-A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN\n"
          "-A ISTIO_OUTPUT -o lo ! -d ::1/128 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT\n"
          "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN\n"
          "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
          "-A ISTIO_OUTPUT -o lo ! -d ::1/128 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT\n"
          "-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN\n"
          "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN\n"
          "-A ISTIO_OUTPUT -d ::1/128 -j RETURN\n"
          "-A ISTIO_OUTPUT -j ISTIO_REDIRECT\n"
          "COMMIT\n");

  o.include_cidrs = "10.250.0.0/16,fd00:1::/64";
  o.exclude_cidrs = "fd00:1::9/128,10.250.9.0/24";
  auto v6 = captureRules(o, IpFamily::kIpv6);
  auto v4 = captureRules(o, IpFamily::kIpv4);
  ASSERT_TRUE(v6.ok() && v4.ok());
  EXPECT_THAT(*v6, HasSubstr("-A ISTIO_OUTPUT -d fd00:1::9/128 -j RETURN\n"
                             "-A ISTIO_OUTPUT -d fd00:1::/64 -j ISTIO_REDIRECT\n"
                             "COMMIT\n"));
  EXPECT_THAT(*v6, ::testing::Not(HasSubstr("10.250.")));
  EXPECT_THAT(*v4, HasSubstr("-A ISTIO_OUTPUT -d 10.250.9.0/24 -j RETURN\n"
                             "-A ISTIO_OUTPUT -d 10.250.0.0/16 -j ISTIO_REDIRECT\n"
                             "COMMIT\n"));
  EXPECT_THAT(*v4, ::testing::Not(HasSubstr("fd00")));
  // Only IPv4 destinations listed: IPv6 traffic is not redirected at all.
  o.include_cidrs = "10.250.0.0/16";
  v6 = captureRules(o, IpFamily::kIpv6);
  ASSERT_TRUE(v6.ok());
  EXPECT_THAT(*v6, ::testing::Not(HasSubstr("-j ISTIO_REDIRECT\n")));
}

TEST(CaptureRulesTest, RemoveDeletesJumpsThenChains) {
  auto cmds = removeCommands();
  ASSERT_EQ(cmds.size(), 10u);
  EXPECT_EQ(cmds[0], (std::vector<std::string>{"-t", "nat", "-D", "PREROUTING", "-p", "tcp", "-j",
                                               "ISTIO_INBOUND"}));
  EXPECT_EQ(cmds[1], (std::vector<std::string>{"-t", "nat", "-D", "OUTPUT", "-p", "tcp", "-j",
                                               "ISTIO_OUTPUT"}));
  EXPECT_EQ(cmds[9], (std::vector<std::string>{"-t", "nat", "-X", "ISTIO_REDIRECT"}));
}

}  // namespace
}  // namespace mesh::proxy
