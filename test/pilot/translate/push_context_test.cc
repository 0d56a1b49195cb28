#include "pilot/translate/push_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/pilot/translate/test_util.h"

namespace mesh::pilot::translate::testing {
namespace {

using ::testing::ElementsAre;

// An HTTP service `name` in `ns`, exported as `export_to` (a YAML list, "" for none).
std::string service(const std::string& name, const std::string& ns,
                    const std::string& export_to = "") {
  return meshService(name, ns,
                     (export_to.empty() ? "" : "  exportTo: " + export_to + "\n") +
                         "  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: "
                         "[{address: 10.1.1.1}]\n");
}

std::vector<std::string> hosts(const std::vector<const model::Service*>& services) {
  std::vector<std::string> out;
  for (const auto* s : services) out.push_back(s->hostname);
  return out;
}

std::string nameOf(const config::Resource* r) {
  return r == nullptr ? "<none>" : r->namespace_name + "/" + r->name;
}

TEST(HostMatchTest, WildcardsCoverSubdomainsOnly) {
  EXPECT_TRUE(hostMatches("*", "a.b"));
  EXPECT_TRUE(hostMatches("a.b", "a.b"));
  EXPECT_TRUE(hostMatches("*.example.com", "api.example.com"));
  EXPECT_TRUE(hostMatches("*.example.com", "*.api.example.com"));
  EXPECT_FALSE(hostMatches("*.example.com", "example.com"));
  EXPECT_FALSE(hostMatches("api.example.com", "*.example.com"));
  EXPECT_FALSE(hostMatches("a.b", "a.c"));
}

TEST(ExportToTest, IstioSemantics) {
  EXPECT_TRUE(exportedTo({}, "a", "b"));
  EXPECT_TRUE(exportedTo({"*"}, "a", "b"));
  EXPECT_TRUE(exportedTo({"."}, "a", "a"));
  EXPECT_FALSE(exportedTo({"."}, "a", "b"));
  EXPECT_TRUE(exportedTo({"b"}, "a", "b"));
  EXPECT_FALSE(exportedTo({"c"}, "a", "b"));
}

TEST(PushContextTest, ServiceExportToLimitsWhoSeesIt) {
  Mesh mesh({service("private", "a", "[\".\"]") + "---\n" + service("shared", "a", "[b]") +
             "---\n" + service("public", "a")});
  auto& push = mesh.push();
  EXPECT_THAT(hosts(push.visibleServices(proxyIn("a"), nullptr)),
              ElementsAre("private.a.svc.cluster.local", "public.a.svc.cluster.local"));
  EXPECT_THAT(hosts(push.visibleServices(proxyIn("b"), nullptr)),
              ElementsAre("public.a.svc.cluster.local", "shared.a.svc.cluster.local"));
  EXPECT_THAT(hosts(push.visibleServices(proxyIn("c"), nullptr)),
              ElementsAre("public.a.svc.cluster.local"));
}

// The root namespace's default, b's default, and one for b's frontend.
std::string sidecars() {
  return yamlStream(
      {sidecar("default", "istio-system", "  egress: [{hosts: [\"./*\", \"istio-system/*\"]}]\n"),
       sidecar("default", "b", "  egress: [{hosts: [\"*/*\"]}]\n"),
       sidecar("frontend", "b", R"(  workloadSelector: {labels: {app: frontend}}
  egress: [{hosts: ["a/web.a.svc.cluster.local", "~/*"]}]
)")});
}

TEST(PushContextTest, SidecarPrecedenceSelectorThenNamespaceThenRoot) {
  Mesh mesh({sidecars()});
  auto& push = mesh.push();
  EXPECT_EQ(nameOf(push.sidecarFor(proxyIn("b", {{"app", "frontend"}}))), "b/frontend");
  EXPECT_EQ(nameOf(push.sidecarFor(proxyIn("b", {{"app", "other"}}))), "b/default");
  EXPECT_EQ(nameOf(push.sidecarFor(proxyIn("a"))), "istio-system/default");
}

TEST(PushContextTest, SidecarEgressHostsLimitTheServices) {
  Mesh mesh({sidecars(), service("web", "a") + "---\n" + service("db", "a") + "---\n" +
                             service("web", "b") + "---\n" + service("mon", "istio-system")});
  auto& push = mesh.push();
  auto visible = [&](const ProxyIdentity& p) {
    return hosts(push.visibleServices(p, push.sidecarFor(p)));
  };
  // Root default: own namespace and istio-system.
  EXPECT_THAT(visible(proxyIn("a")),
              ElementsAre("db.a.svc.cluster.local", "mon.istio-system.svc.cluster.local",
                          "web.a.svc.cluster.local"));
  // Namespace default "*/*": everything.
  EXPECT_THAT(visible(proxyIn("b")),
              ElementsAre("db.a.svc.cluster.local", "mon.istio-system.svc.cluster.local",
                          "web.a.svc.cluster.local", "web.b.svc.cluster.local"));
  // Selected Sidecar: one host of namespace a ("~/*" imports nothing).
  EXPECT_THAT(visible(proxyIn("b", {{"app", "frontend"}})), ElementsAre("web.a.svc.cluster.local"));
}

TEST(PushContextTest, SidecarAlsoImportsDestinationsOfImportedVirtualServices) {
  Mesh mesh({service("web", "a"), service("web-canary", "c"),
             virtualService("web", "a", R"(  hosts: [web]
  http: [{route: [{destination: {host: web-canary.c.svc.cluster.local}}]}]
)"),
             sidecar("default", "a", "  egress: [{hosts: [\"./*\"]}]\n")});
  auto& push = mesh.push();
  ProxyIdentity p = proxyIn("a");
  EXPECT_THAT(hosts(push.visibleServices(p, push.sidecarFor(p))),
              ElementsAre("web-canary.c.svc.cluster.local", "web.a.svc.cluster.local"));
}

std::string rule(const std::string& name, const std::string& ns, const std::string& host,
                 const std::string& extra = "") {
  return destinationRule(name, ns, "  host: \"" + host + "\"\n" + extra);
}

TEST(PushContextTest, DestinationRuleLookupClientThenServiceThenRootNamespace) {
  Mesh mesh({service("web", "a") + "---\n" + rule("client", "c", "web.a.svc.cluster.local") +
             "---\n" + rule("own", "a", "web") + "---\n" +
             rule("root", "istio-system", "*.a.svc.cluster.local") + "---\n" +
             rule("private", "a", "web.a.svc.cluster.local", "  exportTo: [\".\"]\n")});
  auto& push = mesh.push();
  const model::Service* web = push.findService("web.a.svc.cluster.local", "x");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(nameOf(push.destinationRuleFor(*web, proxyIn("c"))), "c/client");
  // In namespace a, "private" (exported to a only) and "own" both name the host exactly; the
  // first in resource order wins.
  EXPECT_EQ(nameOf(push.destinationRuleFor(*web, proxyIn("a"))), "a/own");
  EXPECT_EQ(nameOf(push.destinationRuleFor(*web, proxyIn("b"))), "a/own");
}

TEST(PushContextTest, DestinationRuleFallsBackToRootWhenTheServiceNamespaceHidesItsRule) {
  Mesh mesh({service("web", "a") + "---\n" + rule("private", "a", "web", "  exportTo: [\".\"]\n") +
             "---\n" + rule("root", "istio-system", "*.a.svc.cluster.local") + "---\n" +
             rule("wild", "istio-system", "*")});
  auto& push = mesh.push();
  const model::Service* web = push.findService("web.a.svc.cluster.local", "x");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(nameOf(push.destinationRuleFor(*web, proxyIn("b"))), "istio-system/root");
  EXPECT_EQ(nameOf(push.destinationRuleFor(*web, proxyIn("a"))), "a/private");
}

TEST(PushContextTest, DestinationRuleWorkloadSelectorAppliesToSelectedClientsOnly) {
  Mesh mesh({service("web", "a") + "---\n" +
             rule("canary-clients", "a", "web",
                  "  workloadSelector: {matchLabels: {canary: \"true\"}}\n")});
  auto& push = mesh.push();
  EXPECT_TRUE(push.dependsOnProxyLabels());
  const model::Service* web = push.findService("web.a.svc.cluster.local", "a");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(nameOf(push.destinationRuleFor(*web, proxyIn("a", {{"canary", "true"}}))),
            "a/canary-clients");
  EXPECT_EQ(nameOf(push.destinationRuleFor(*web, proxyIn("a"))), "<none>");
  // A selector never reaches clients of other namespaces.
  EXPECT_EQ(nameOf(push.destinationRuleFor(*web, proxyIn("b", {{"canary", "true"}}))), "<none>");
}

std::string vs(const std::string& name, const std::string& ns, const std::string& hosts_yaml,
               const std::string& extra = "") {
  return virtualService(
      name, ns,
      "  hosts: " + hosts_yaml + "\n" + extra +
          "  http: [{route: [{destination: {host: web.a.svc.cluster.local}}]}]\n");
}

TEST(PushContextTest, VirtualServiceExactHostBeatsWildcardAndGatewayOnlyRulesAreIgnored) {
  Mesh mesh({service("web", "a") + "---\n" + vs("wild", "a", "[\"*.a.svc.cluster.local\"]") +
             "---\n" + vs("gw", "a", "[web]", "  gateways: [ingress]\n") + "---\n" +
             vs("exact", "a", "[web]") + "---\n" +
             vs("hidden", "c", "[web.a.svc.cluster.local]", "  exportTo: [\".\"]\n")});
  auto& push = mesh.push();
  const model::Service* web = push.findService("web.a.svc.cluster.local", "a");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(nameOf(push.virtualServiceFor(*web, proxyIn("a"), nullptr)), "a/exact");
  // "hidden" is exported to its own namespace: there it competes (first exact host wins).
  EXPECT_EQ(nameOf(push.virtualServiceFor(*web, proxyIn("c"), nullptr)), "a/exact");
}

TEST(PushContextTest, MeshBoundVirtualServiceIsUsed) {
  Mesh mesh({service("web", "a") + "---\n" +
             vs("both", "a", "[web]", "  gateways: [mesh, istio-system/ingress]\n")});
  const model::Service* web = mesh.push().findService("web.a.svc.cluster.local", "a");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(nameOf(mesh.push().virtualServiceFor(*web, proxyIn("a"), nullptr)), "a/both");
}

TEST(PushContextTest, RootNamespaceIsAnOption) {
  PushOptions opts;
  opts.root_namespace = "mesh-root";
  Mesh mesh(
      {
          service("web", "a") + "---\n" + rule("root", "mesh-root", "*") + "---\n" +
              rule("ignored", "istio-system", "*"),
      },
      opts);
  const model::Service* web = mesh.push().findService("web.a.svc.cluster.local", "b");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(nameOf(mesh.push().destinationRuleFor(*web, proxyIn("b"))), "mesh-root/root");
}

TEST(PushContextTest, RulesForOneHostInOneNamespaceAreMerged) {
  Mesh mesh({service("web", "a") + "---\n" +
             rule("subsets-1", "a", "web", "  subsets: [{name: v1, labels: {version: v1}}]\n") +
             "---\n" +
             rule("subsets-2", "a", "web.a.svc.cluster.local",
                  "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
                  "  subsets: [{name: v1, labels: {version: other}}, {name: v2, labels: "
                  "{version: v2}}]\n") +
             "---\n" +
             rule("later-policy", "a", "web",
                  "  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n")});
  const model::Service* web = mesh.push().findService("web.a.svc.cluster.local", "a");
  ASSERT_NE(web, nullptr);
  const config::Resource* r = mesh.push().destinationRuleFor(*web, proxyIn("a"));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->name, "subsets-1");
  const auto& dr = *r->as<networking::DestinationRule>();
  ASSERT_EQ(dr.subsets_size(), 2);
  EXPECT_EQ(dr.subsets(0).labels().at("version"), "v1");  // first definition of v1 wins
  EXPECT_EQ(dr.subsets(1).name(), "v2");
  EXPECT_EQ(dr.traffic_policy().load_balancer().simple(),
            networking::LoadBalancerSettings::RANDOM);  // first policy written
}

}  // namespace
}  // namespace mesh::pilot::translate::testing
