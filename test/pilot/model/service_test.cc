#include "pilot/model/service.h"

#include <gtest/gtest.h>

namespace mesh::pilot::model {
namespace {

TEST(ProtocolTest, InferredFromThePortNamePrefixAsIstioDoes) {
  EXPECT_EQ(protocolFromPortName("http"), Protocol::kHttp);
  EXPECT_EQ(protocolFromPortName("http-web"), Protocol::kHttp);
  EXPECT_EQ(protocolFromPortName("HTTP2-api"), Protocol::kHttp2);
  EXPECT_EQ(protocolFromPortName("grpc"), Protocol::kGrpc);
  EXPECT_EQ(protocolFromPortName("grpc-web"), Protocol::kGrpc);
  EXPECT_EQ(protocolFromPortName("grpc-web-ui"), Protocol::kGrpc);
  EXPECT_EQ(protocolFromPortName("tcp-db"), Protocol::kTcp);
  EXPECT_EQ(protocolFromPortName("tls"), Protocol::kTls);
  EXPECT_EQ(protocolFromPortName("https-admin"), Protocol::kHttps);
  EXPECT_EQ(protocolFromPortName("web"), Protocol::kUnknown);
  EXPECT_EQ(protocolFromPortName("httpx"), Protocol::kUnknown);
  EXPECT_EQ(protocolFromPortName(""), Protocol::kUnknown);
}

TEST(ProtocolTest, AnExplicitProtocolWinsOverTheName) {
  EXPECT_EQ(resolveProtocol("TCP", "http-web"), Protocol::kTcp);
  EXPECT_EQ(resolveProtocol("", "http-web"), Protocol::kHttp);
  EXPECT_EQ(resolveProtocol("GRPC-WEB", ""), Protocol::kGrpc);
  EXPECT_EQ(resolveProtocol("MONGO", "http"), Protocol::kUnknown);
}

TEST(ProtocolTest, HttpFamilyIsServedByTheHttpListener) {
  EXPECT_TRUE(isHttp(Protocol::kHttp));
  EXPECT_TRUE(isHttp(Protocol::kHttp2));
  EXPECT_TRUE(isHttp(Protocol::kGrpc));
  EXPECT_TRUE(isHttp(Protocol::kUnknown));
  EXPECT_FALSE(isHttp(Protocol::kTcp));
  EXPECT_FALSE(isHttp(Protocol::kTls));
  EXPECT_FALSE(isHttp(Protocol::kHttps));
  EXPECT_EQ(protocolName(Protocol::kGrpc), "GRPC");
}

TEST(ServiceTest, ExportToLimitsVisibility) {
  Service s;
  s.namespace_name = "prod";
  EXPECT_TRUE(s.visibleFrom("other"));
  s.export_to = {"."};
  EXPECT_TRUE(s.visibleFrom("prod"));
  EXPECT_FALSE(s.visibleFrom("other"));
  s.export_to = {"*"};
  EXPECT_TRUE(s.visibleFrom("other"));
  s.export_to = {"team-a"};
  EXPECT_TRUE(s.visibleFrom("team-a"));
  EXPECT_FALSE(s.visibleFrom("prod"));
}

TEST(EndpointTest, PortByServicePortNameThenTargetPortThenNumber) {
  ServicePort http{"http", 80, Protocol::kHttp, 0};
  ServicePort admin{"admin", 9000, Protocol::kHttp, 9001};
  Endpoint e;
  e.ports["http"] = 8080;
  EXPECT_EQ(e.portFor(http), 8080u);
  EXPECT_EQ(e.portFor(admin), 9001u);
  Endpoint plain;
  EXPECT_EQ(plain.portFor(http), 80u);
}

TEST(LabelsTest, SelectorIsASubset) {
  EXPECT_TRUE(labelsMatch({}, {{"app", "a"}}));
  EXPECT_TRUE(labelsMatch({{"app", "a"}}, {{"app", "a"}, {"version", "v1"}}));
  EXPECT_FALSE(labelsMatch({{"app", "a"}, {"version", "v2"}}, {{"app", "a"}, {"version", "v1"}}));
  EXPECT_FALSE(labelsMatch({{"app", "a"}}, {}));
}

}  // namespace
}  // namespace mesh::pilot::model
