// loadConfigDirectory: which files it reads, and that every error names file, line and field;
// ConfigDirectoryLoader: reloads parse only what changed.
#include "pilot/server/config_directory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace mesh::pilot::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

class ConfigDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pilot-config-dir-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

constexpr char kService[] = R"(apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  ports: [{port: 9080, name: http}]
  selector: {app: reviews}
)";

constexpr char kVirtualService[] = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 70
    - destination: {host: reviews, subset: v3}
      weight: 30
)";

TEST_F(ConfigDirectoryTest, ReadsYamlYmlAndJsonButNotOtherOrHiddenFiles) {
  write("a.yaml", kService);
  write("b.yml", kVirtualService);
  write("c.json",
        R"({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "reviews"}, "spec": {"host": "reviews"}})");
  write("notes.txt", "not config");
  write(".hidden.yaml", "{{{ not even yaml");
  DirectoryConfig c = loadConfigDirectory(dir_.string());
  EXPECT_TRUE(c.ok()) << c.errors.toString();
  EXPECT_THAT(c.files, ElementsAre(path("a.yaml"), path("b.yml"), path("c.json")));
  ASSERT_THAT(c.resources, SizeIs(2));
  EXPECT_EQ(c.resources[0].name, "reviews");
  EXPECT_EQ(c.resources[0].kind, config::Kind::kVirtualService);
  EXPECT_EQ(c.resources[1].kind, config::Kind::kDestinationRule);
  ASSERT_THAT(c.kube_objects, SizeIs(1));
  EXPECT_EQ(c.kube_objects[0].name, "reviews");
}

TEST_F(ConfigDirectoryTest, ValidationErrorsNameFileLineAndField) {
  write("good.yaml", kService);
  std::string bad = kVirtualService;
  bad.replace(bad.find("weight: 30"), 10, "weight: 130");
  write("vs.yaml", bad);
  DirectoryConfig c = loadConfigDirectory(dir_.string());
  ASSERT_FALSE(c.ok());
  bool found = false;
  for (const ValidationError& e : c.errors.errors()) {
    if (e.path == "spec.http[0].route[1].weight") {
      found = true;
      EXPECT_EQ(e.file, path("vs.yaml"));
      EXPECT_EQ(e.line, 11);
      EXPECT_THAT(e.message, HasSubstr("between 0 and 100"));
    }
  }
  EXPECT_TRUE(found) << c.errors.toString();
}

TEST_F(ConfigDirectoryTest, SyntaxErrorIsReportedOnceWithItsFile) {
  write("broken.yaml", "kind: VirtualService\nspec: [unclosed\n");
  DirectoryConfig c = loadConfigDirectory(dir_.string());
  ASSERT_EQ(c.errors.size(), 1u) << c.errors.toString();
  EXPECT_EQ(c.errors.errors()[0].file, path("broken.yaml"));
  EXPECT_GT(c.errors.errors()[0].line, 0) << c.errors.toString();  // yaml-cpp: where it gave up
  EXPECT_THAT(c.errors.errors()[0].message, Not(HasSubstr("broken.yaml"))) << c.errors.toString();
}

TEST_F(ConfigDirectoryTest, LoaderParsesOnlyChangedFilesAndKeepsTheirErrors) {
  write("a-service.yaml", kService);
  std::string bad = kVirtualService;
  bad.replace(bad.find("weight: 30"), 10, "weight: 130");
  write("b-vs.yaml", bad);
  ConfigDirectoryLoader loader({dir_.string()});
  DirectoryConfig first = loader.load();
  EXPECT_EQ(loader.lastParsed(), 2u);
  ASSERT_FALSE(first.ok());

  // Nothing changed: nothing parsed, the same result (errors of the unchanged file included).
  DirectoryConfig again = loader.load();
  EXPECT_EQ(loader.lastParsed(), 0u);
  EXPECT_EQ(again.errors.toString(), first.errors.toString());
  EXPECT_THAT(again.kube_objects, SizeIs(1));
  EXPECT_THAT(again.resources, SizeIs(1));

  // The fixed file alone is parsed again; the result equals a fresh load's.
  write("b-vs.yaml", kVirtualService);
  DirectoryConfig fixed = loader.load();
  EXPECT_EQ(loader.lastParsed(), 1u);
  EXPECT_TRUE(fixed.ok()) << fixed.errors.toString();
  DirectoryConfig fresh = loadConfigDirectory(dir_.string());
  EXPECT_EQ(fixed.files, fresh.files);
  ASSERT_THAT(fixed.resources, SizeIs(1));
  EXPECT_EQ(fixed.resources[0].name, fresh.resources[0].name);
  EXPECT_EQ(fixed.resources[0].line, fresh.resources[0].line);

  // A removed file is gone from the next load.
  std::filesystem::remove(dir_ / "a-service.yaml");
  EXPECT_THAT(loader.load().kube_objects, SizeIs(0));
}

TEST_F(ConfigDirectoryTest, MissingDirectoryIsAnError) {
  DirectoryConfig c = loadConfigDirectory(path("nope"));
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_THAT(c.errors.errors()[0].message, HasSubstr("cannot read config directory"));
}

TEST(ConfigFileNameTest, Extensions) {
  EXPECT_TRUE(isConfigFileName("a.yaml"));
  EXPECT_TRUE(isConfigFileName("a.yml"));
  EXPECT_TRUE(isConfigFileName("a.json"));
  EXPECT_FALSE(isConfigFileName("a.yaml.swp"));
  EXPECT_FALSE(isConfigFileName(".a.yaml"));
  EXPECT_FALSE(isConfigFileName(".yaml"));
}

}  // namespace
}  // namespace mesh::pilot::server
