#include "istioctl/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace mesh::istioctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string testdata(const std::string& name) {
  return std::string(MESH_TESTDATA_DIR) + "/" + name;
}

// Writes text to a fresh temporary file and returns its path.
std::string writeTemp(const std::string& text) {
  char path[] = "/tmp/istioctl_test_XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(IstioctlValidateTest, BadFileReportsEveryErrorWithFileLineAndField) {
  const std::string file = testdata("bad-reviews.yaml");
  std::ostringstream out, err;
  EXPECT_EQ(runValidate({file}, out, err), 1);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(),
            file +
                ":10: spec.http[0].route: weights of the destinations must add up to 100, got "
                "160\n" +
                file + ":14: spec.http[0].route[0].weight: must be between 0 and 100\n" + file +
                ":15: spec.http[0].route[1].destination.host: required\n" + file +
                ":19: spec.http[0].retries.attempts: must not be negative\n"
                "Warning: " +
                file + ":20: spec.http[0]: unknown field 'timeoutt' (did you mean 'timeout'?)\n" +
                "Note: " + file +
                ":22: skipped Service (v1): not an Istio networking resource\n"
                "Error: 4 errors in 1 file\n");
}

TEST(IstioctlValidateTest, GoodObjectsAreListedAsValid) {
  const std::string file = writeTemp(R"(apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: gw}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
)");
  std::ostringstream out, err;
  EXPECT_EQ(runValidate({file}, out, err), 0);
  EXPECT_EQ(out.str(), "\"reviews\" (DestinationRule) is valid\n\"gw\" (Gateway) is valid\n");
  EXPECT_EQ(err.str(), "");
  std::remove(file.c_str());
}

TEST(IstioctlValidateTest, OneBadObjectDoesNotHideTheGoodOnes) {
  const std::string good = writeTemp(
      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\n"
      "spec: {host: a}\n");
  const std::string bad = writeTemp(
      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: b}\n"
      "spec: {}\n");
  std::ostringstream out, err;
  EXPECT_EQ(runValidate({good, bad}, out, err), 1);
  EXPECT_EQ(out.str(), "\"a\" (DestinationRule) is valid\n");
  EXPECT_THAT(err.str(), HasSubstr(bad + ":4: spec.host: required\n"));
  EXPECT_THAT(err.str(), HasSubstr("Error: 1 error in 1 file\n"));
  std::remove(good.c_str());
  std::remove(bad.c_str());
}

TEST(IstioctlValidateTest, MissingFileIsAnError) {
  std::ostringstream out, err;
  EXPECT_EQ(runValidate({"/nonexistent.yaml"}, out, err), 1);
  EXPECT_EQ(err.str(), "/nonexistent.yaml: cannot read file\nError: 1 error in 1 file\n");
}

TEST(IstioctlValidateTest, FileWithoutIstioObjectsOnlyWarns) {
  const std::string file = writeTemp("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
  std::ostringstream out, err;
  EXPECT_EQ(runValidate({file}, out, err), 0);
  EXPECT_THAT(err.str(), HasSubstr("no Istio networking objects found"));
  EXPECT_THAT(err.str(), Not(HasSubstr("Error")));
  std::remove(file.c_str());
}

TEST(IstioctlValidateTest, Version) { EXPECT_EQ(versionString(), "istioctl version 0.1.0"); }

}  // namespace
}  // namespace mesh::istioctl
