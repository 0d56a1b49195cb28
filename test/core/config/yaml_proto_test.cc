#include "core/config/yaml_proto.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testdata/test_config.pb.h"

namespace mesh::config {
namespace {

using test::Color;
using test::TestConfig;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// The YAML below starts on the line after R"( so that "# 3" comments give the real line numbers.
std::string_view yaml(std::string_view raw) {
  if (!raw.empty() && raw[0] == '\n') raw.remove_prefix(1);
  return raw;
}

LoadResult load(std::string_view raw, TestConfig* msg, LoadOptions opts = {}) {
  if (opts.file.empty()) opts.file = "t.yaml";
  return loadYaml(yaml(raw), msg, opts);
}

std::vector<std::string> errorLines(const LoadResult& r) {
  std::vector<std::string> out;
  for (const ValidationError& e : r.errors.errors()) out.push_back(e.toString());
  return out;
}

std::vector<std::string> warningLines(const LoadResult& r) {
  std::vector<std::string> out;
  for (const ValidationError& e : r.warnings) out.push_back(e.toString());
  return out;
}

TEST(YamlProtoTest, ScalarsOfEveryType) {
  TestConfig c;
  LoadResult r = load(R"(
scalars:
  str: 8080
  flag: True
  i32: -2147483648
  i64: -9223372036854775808
  u32: 4294967295
  u64: 18446744073709551615
  s32: -7
  s64: 0x7fffffffffffffff
  f32: 0o17
  f64: "42"
  sf32: +5
  sf64: -6
  real32: 1.5
  real64: -2.5e-3
  raw: aGVsbG8=
  color: GREEN
)",
                      &c);
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  const test::Scalars& s = c.scalars();
  EXPECT_EQ(s.str(), "8080");
  EXPECT_TRUE(s.flag());
  EXPECT_EQ(s.i32(), -2147483647 - 1);
  EXPECT_EQ(s.i64(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(s.u32(), 4294967295u);
  EXPECT_EQ(s.u64(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(s.s32(), -7);
  EXPECT_EQ(s.s64(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(s.f32(), 15u);
  EXPECT_EQ(s.f64(), 42u);
  EXPECT_EQ(s.sf32(), 5);
  EXPECT_EQ(s.sf64(), -6);
  EXPECT_FLOAT_EQ(s.real32(), 1.5f);
  EXPECT_DOUBLE_EQ(s.real64(), -0.0025);
  EXPECT_EQ(s.raw(), "hello");
  EXPECT_EQ(s.color(), test::GREEN);
}

TEST(YamlProtoTest, EnumByNumberBytesUrlSafeAndSpecialFloats) {
  TestConfig c;
  LoadResult r = load(R"(
scalars: {color: 1, raw: "-_8", real64: .inf, real32: -.inf}
)",
                      &c);
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  EXPECT_EQ(c.scalars().color(), test::RED);
  EXPECT_EQ(c.scalars().raw(), "\xfb\xff");
  EXPECT_EQ(c.scalars().real64(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(c.scalars().real32(), -std::numeric_limits<float>::infinity());
}

TEST(YamlProtoTest, KeysAreJsonNameOrProtoName) {
  TestConfig c;
  LoadResult r = load(R"(
target_name: a
customName: b
bool_value: true
int32Value: 3
)",
                      &c);
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  EXPECT_EQ(c.target_name(), "a");
  EXPECT_EQ(c.renamed(), "b");
  EXPECT_TRUE(c.bool_value().value());
  EXPECT_EQ(c.int32_value().value(), 3);

  // A custom json_name replaces the lowerCamelCase one.
  r = load("targetName: a\nrenamed: b\n", &c);
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  EXPECT_EQ(c.renamed(), "b");
  r = load("target_any: true\n", &c);
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  EXPECT_EQ(c.target_case(), TestConfig::kTargetAny);
}

TEST(YamlProtoTest, ScalarErrorsAreAllReportedWithLineAndPath) {
  TestConfig c;
  LoadResult r = load(R"(
scalars:             # 1
  u32: abc           # 2
  u64: -1            # 3
  f32: 4294967296    # 4
  i32: 2147483648    # 5
  i64: 1.5           # 6
  sf64: -9223372036854775809  # 7
  flag: yes          # 8
  real32: 1e40       # 9
  real64: fast       # 10
  color: PURPLE      # 11
  raw: "not base64!" # 12
  str: [a]           # 13
  s32: "-2147483649" # 14
  u32: 5             # 15
)",
                      &c);
  EXPECT_THAT(
      errorLines(r),
      ElementsAre(
          "t.yaml:2: scalars.u32: expected an unsigned integer, got 'abc'",
          "t.yaml:3: scalars.u64: expected an unsigned integer, got a negative value '-1'",
          "t.yaml:4: scalars.f32: '4294967296' is out of range for fixed32 (max 4294967295)",
          "t.yaml:5: scalars.i32: '2147483648' is out of range for int32 (-2147483648 to "
          "2147483647)",
          "t.yaml:6: scalars.i64: expected an integer, got '1.5'",
          "t.yaml:7: scalars.sf64: '-9223372036854775809' is out of range for sfixed64 "
          "(-9223372036854775808 to 9223372036854775807)",
          "t.yaml:8: scalars.flag: expected true or false, got 'yes'",
          "t.yaml:9: scalars.real32: '1e40' is out of range for float",
          "t.yaml:10: scalars.real64: expected a number, got 'fast'",
          "t.yaml:11: scalars.color: unknown value 'PURPLE'; expected one of "
          "COLOR_UNSPECIFIED, RED, GREEN",
          "t.yaml:12: scalars.raw: expected base64 bytes, got 'not base64!'",
          "t.yaml:13: scalars.str: expected a string, got a list",
          "t.yaml:14: scalars.s32: '-2147483649' is out of range for sint32 (-2147483648 "
          "to 2147483647)",
          "t.yaml:15: scalars: duplicate field 'u32'"));
}

TEST(YamlProtoTest, UnknownEnumNumberIsAnError) {
  TestConfig c;
  LoadResult r = load("colors: [RED, 7, 2]\n", &c);
  EXPECT_THAT(errorLines(r), ElementsAre("t.yaml:1: colors[1]: unknown value '7'; expected one "
                                         "of COLOR_UNSPECIFIED, RED, GREEN"));
}

TEST(YamlProtoTest, ListsMapsAndNestedMessages) {
  TestConfig c;
  LoadResult r = load(R"(
tags: [a, b]
ports:
- 80
- 443
items:
- name: x
  children: [{name: y, port: 1}]
- {name: z}
labels: {app: reviews, version: v1, empty: }
inners:
  first: {name: one, port: 1}
  second:
byPort: {80: http, 443: https}
inner: {name: solo}
)",
                      &c);
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  EXPECT_THAT(c.tags(), ElementsAre("a", "b"));
  EXPECT_THAT(c.ports(), ElementsAre(80u, 443u));
  ASSERT_EQ(c.items_size(), 2);
  EXPECT_EQ(c.items(0).children(0).name(), "y");
  EXPECT_EQ(c.items(0).children(0).port(), 1u);
  EXPECT_EQ(c.items(1).name(), "z");
  EXPECT_THAT(c.labels(), UnorderedElementsAre(Pair("app", "reviews"), Pair("version", "v1"),
                                               Pair("empty", "")));
  ASSERT_EQ(c.inners().size(), 2u);
  EXPECT_EQ(c.inners().at("first").name(), "one");
  EXPECT_EQ(c.inners().at("second").name(), "");
  EXPECT_THAT(c.by_port(), UnorderedElementsAre(Pair(80u, "http"), Pair(443u, "https")));
  EXPECT_EQ(c.inner().name(), "solo");
}

TEST(YamlProtoTest, WrongShapesAreErrorsAndLoadingContinues) {
  TestConfig c;
  LoadResult r = load(R"(
tags: a                 # 1
labels: [a]             # 2
inner: 5                # 3
items:                  # 4
- name: ok              # 5
- [1]                   # 6
- null                  # 7
- name: also ok         # 8
byPort: {http: 80}      # 9
inners: {a: {port: x}}  # 10
scalars: {str: fine}    # 11
)",
                      &c);
  EXPECT_THAT(errorLines(r),
              ElementsAre("t.yaml:1: tags: expected a list, got 'a'",
                          "t.yaml:2: labels: expected a mapping, got a list",
                          "t.yaml:3: inner: expected a mapping, got '5'",
                          "t.yaml:6: items[1]: expected a mapping, got a list",
                          "t.yaml:7: items[2]: null is not allowed in a list",
                          "t.yaml:9: byPort[http]: expected an unsigned integer, got 'http'",
                          "t.yaml:10: inners[a].port: expected an unsigned integer, got 'x'"));
  // Everything that was right is still loaded.
  EXPECT_EQ(c.items(0).name(), "ok");
  EXPECT_EQ(c.items(c.items_size() - 1).name(), "also ok");
  EXPECT_EQ(c.scalars().str(), "fine");
}

TEST(YamlProtoTest, NullLeavesFieldsUnset) {
  TestConfig c;
  LoadResult r = load(R"(
inner:
timeout: ~
scalars: null
boolValue:
targetName:
targetAny: true
)",
                      &c);
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  EXPECT_FALSE(c.has_inner());
  EXPECT_FALSE(c.has_timeout());
  EXPECT_FALSE(c.has_scalars());
  EXPECT_FALSE(c.has_bool_value());
  // A null member does not count as set, so the oneof takes the other one.
  EXPECT_EQ(c.target_case(), TestConfig::kTargetAny);
}

TEST(YamlProtoTest, OneofWithTwoMembersNamesBoth) {
  TestConfig c;
  LoadResult r = load(R"(
targetName: a
inner: {name: x}
targetInner: {name: b}
)",
                      &c);
  EXPECT_THAT(errorLines(r),
              ElementsAre("t.yaml:3: fields 'targetName' and 'targetInner' are both in oneof "
                          "'target'; set only one"));
}

TEST(YamlProtoTest, DuplicateFieldsAndKeys) {
  TestConfig c;
  LoadResult r = load(R"(
target_name: a
targetName: b
labels:
  app: x
  app: y
)",
                      &c);
  EXPECT_THAT(errorLines(r),
              ElementsAre("t.yaml:2: duplicate field 'targetName' (already set as 'target_name')",
                          "t.yaml:5: labels: duplicate key 'app'"));
}

TEST(YamlProtoTest, UnknownFieldsAreErrorsOrWarnings) {
  constexpr std::string_view kText = R"(
inner:
  name: x
  nmae: y
  fooBar: 1
connect_timout: 1s
)";
  TestConfig c;
  LoadResult r = load(kText, &c);
  EXPECT_THAT(errorLines(r),
              ElementsAre("t.yaml:3: inner: unknown field 'nmae' (did you mean 'name'?)",
                          "t.yaml:4: inner: unknown field 'fooBar'",
                          "t.yaml:5: unknown field 'connect_timout'"));
  EXPECT_THAT(r.warnings, IsEmpty());

  r = load(kText, &c, {.file = "t.yaml", .unknown_fields_are_errors = false});
  EXPECT_TRUE(r.ok()) << r.errors.toString();
  EXPECT_THAT(warningLines(r), ElementsAre(HasSubstr("t.yaml:3: inner: unknown field 'nmae'"),
                                           "t.yaml:4: inner: unknown field 'fooBar'",
                                           "t.yaml:5: unknown field 'connect_timout'"));
  EXPECT_EQ(c.inner().name(), "x");
}

TEST(YamlProtoTest, Durations) {
  struct Case {
    std::string text;
    int64_t seconds;
    int32_t nanos;
  };
  const Case cases[] = {
      {"1.5s", 1, 500'000'000},
      {"250ms", 0, 250'000'000},
      {"1m", 60, 0},
      {"1h", 3600, 0},
      {"2h45m", 9900, 0},
      {"100us", 0, 100'000},
      {"10ns", 0, 10},
      {"3", 3, 0},
      {"0.25", 0, 250'000'000},
      {"0", 0, 0},
      {"1m0.5s", 60, 500'000'000},
      {"\"5\xC2\xB5s\"", 0, 5000},
  };
  for (const Case& tc : cases) {
    TestConfig c;
    LoadResult r = load("timeout: " + tc.text + "\n", &c);
    ASSERT_TRUE(r.ok()) << tc.text << ": " << r.errors.toString();
    EXPECT_EQ(c.timeout().seconds(), tc.seconds) << tc.text;
    EXPECT_EQ(c.timeout().nanos(), tc.nanos) << tc.text;
  }
}

TEST(YamlProtoTest, BadDurations) {
  TestConfig c;
  LoadResult r = load(R"(
timeout: -1s
backoffs:
- 5x
- 1.2.3
- ms
- 400000000000s
- {seconds: 1}
- ""
)",
                      &c);
  EXPECT_THAT(
      errorLines(r),
      ElementsAre("t.yaml:1: timeout: duration must not be negative, got '-1s'",
                  "t.yaml:3: backoffs[0]: invalid duration '5x'; expected e.g. '1.5s', '250ms', "
                  "'2h45m'",
                  "t.yaml:4: backoffs[1]: invalid duration '1.2.3'; expected e.g. '1.5s', "
                  "'250ms', '2h45m'",
                  "t.yaml:5: backoffs[2]: invalid duration 'ms'; expected e.g. '1.5s', '250ms', "
                  "'2h45m'",
                  "t.yaml:6: backoffs[3]: duration '400000000000s' is out of range",
                  "t.yaml:7: backoffs[4]: expected a duration such as '1.5s', got a mapping",
                  "t.yaml:8: backoffs[5]: invalid duration ''; expected e.g. '1.5s', '250ms', "
                  "'2h45m'"));
}

TEST(YamlProtoTest, WrappersFromPlainScalars) {
  TestConfig c;
  LoadResult r = load(R"(
boolValue: false
uint32Value: 7
int32Value: -7
uint64Value: 18446744073709551615
int64Value: -9
doubleValue: 0.5
floatValue: 2.5
stringValue: hi
)",
                      &c);
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  EXPECT_TRUE(c.has_bool_value());
  EXPECT_FALSE(c.bool_value().value());
  EXPECT_EQ(c.uint32_value().value(), 7u);
  EXPECT_EQ(c.int32_value().value(), -7);
  EXPECT_EQ(c.uint64_value().value(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(c.int64_value().value(), -9);
  EXPECT_DOUBLE_EQ(c.double_value().value(), 0.5);
  EXPECT_FLOAT_EQ(c.float_value().value(), 2.5f);
  EXPECT_EQ(c.string_value().value(), "hi");

  r = load("uint32Value: -1\nboolValue: {value: true}\n", &c);
  EXPECT_THAT(errorLines(r),
              ElementsAre("t.yaml:1: uint32Value: expected an unsigned integer, got a negative "
                          "value '-1'",
                          "t.yaml:2: boolValue: expected true or false, got a mapping"));
}

TEST(YamlProtoTest, StructValueAndListValueFromArbitraryYaml) {
  TestConfig c;
  LoadResult r = load(R"(
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
      weight: 25
    retries: {attempts: 3, perTryTimeout: 2s}
    mirror: null
    enabled: true
    version: "1.10"
value: 3
list: [a, 1, false, ~, {k: v}, [x]]
)",
                      &c);
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  const auto& http = c.spec().fields().at("http").list_value().values(0).struct_value().fields();
  const auto& route = http.at("route").list_value().values(0).struct_value().fields();
  EXPECT_EQ(route.at("destination").struct_value().fields().at("subset").string_value(), "v2");
  EXPECT_EQ(route.at("weight").number_value(), 25);
  EXPECT_EQ(http.at("retries").struct_value().fields().at("perTryTimeout").string_value(), "2s");
  EXPECT_TRUE(http.at("mirror").has_null_value());
  EXPECT_TRUE(http.at("enabled").bool_value());
  EXPECT_EQ(http.at("version").string_value(), "1.10");  // quoted stays a string
  EXPECT_EQ(c.value().number_value(), 3);
  ASSERT_EQ(c.list().values_size(), 6);
  EXPECT_EQ(c.list().values(0).string_value(), "a");
  EXPECT_EQ(c.list().values(1).number_value(), 1);
  EXPECT_FALSE(c.list().values(2).bool_value());
  EXPECT_EQ(c.list().values(2).kind_case(), google::protobuf::Value::kBoolValue);
  EXPECT_TRUE(c.list().values(3).has_null_value());
  EXPECT_EQ(c.list().values(4).struct_value().fields().at("k").string_value(), "v");
  EXPECT_EQ(c.list().values(5).list_value().values(0).string_value(), "x");

  // Struct keys read as fields, so Istio-style paths find their lines.
  EXPECT_EQ(r.source_map.lineOf("spec.http[0].route[0].weight"), 6);
  EXPECT_EQ(r.source_map.lineOf("spec.http[0].retries.attempts"), 7);

  r = load("spec: [a]\nvalue: {n: .nan}\n", &c);
  EXPECT_THAT(errorLines(r),
              ElementsAre("t.yaml:1: spec: expected a mapping, got a list",
                          "t.yaml:2: value.n: number '.nan' cannot be represented in JSON; quote "
                          "it"));
}

TEST(YamlProtoTest, Timestamps) {
  TestConfig c;
  LoadResult r = load("created: 2024-01-31T12:00:01.5Z\n", &c);
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  EXPECT_EQ(c.created().seconds(), 1706702401);
  EXPECT_EQ(c.created().nanos(), 500'000'000);
  r = load("created: yesterday\n", &c);
  EXPECT_THAT(errorLines(r), ElementsAre("t.yaml:1: created: expected an RFC 3339 time such as "
                                         "'2024-01-31T12:00:00Z', got 'yesterday'"));
}

TEST(YamlProtoTest, SourceMapRecordsEveryFieldWithFallbackToPrefix) {
  TestConfig c;
  LoadResult r = load(R"(
items:
- name: a
  children:
  - name: b
    port: 8
labels:
  app: x
target_inner:
  name: t
)",
                      &c);
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  const SourceMap& m = r.source_map;
  EXPECT_EQ(m.lineOf("items"), 1);
  EXPECT_EQ(m.lineOf("items[0]"), 2);
  EXPECT_EQ(m.lineOf("items[0].name"), 2);
  EXPECT_EQ(m.lineOf("items[0].children[0].port"), 5);
  EXPECT_EQ(m.lineOf("labels[app]"), 7);
  // Unknown paths fall back to the longest known prefix.
  EXPECT_EQ(m.lineOf("items[0].children[0].children[3].name"), 4);
  EXPECT_EQ(m.lineOf("labels[other]"), 6);
  EXPECT_EQ(m.lineOf("nothing.here"), 0);
  EXPECT_EQ(m.lineOf(""), 0);
  // Written as snake_case: found under both spellings.
  EXPECT_EQ(m.lineOf("target_inner.name"), 9);
  EXPECT_EQ(m.lineOf("targetInner.name"), 9);
}

TEST(YamlProtoTest, PathPrefixAndFirstLine) {
  TestConfig c;
  LoadResult r = load("inner:\n  port: -1\n", &c,
                      {.file = "vs.yaml", .path_prefix = "spec", .first_line = 10});
  EXPECT_THAT(errorLines(r), ElementsAre("vs.yaml:11: spec.inner.port: expected an unsigned "
                                         "integer, got a negative value '-1'"));
  EXPECT_EQ(r.source_map.lineOf("spec"), 10);
  EXPECT_EQ(r.source_map.lineOf("spec.inner.port"), 11);
}

TEST(YamlProtoTest, DocumentShapeAndSyntaxErrors) {
  TestConfig c;
  EXPECT_THAT(errorLines(load("- a\n- b\n", &c)),
              ElementsAre("t.yaml:1: expected a mapping, got a list"));
  EXPECT_THAT(errorLines(load("tags: [a]\n---\ntags: [b]\n", &c)),
              ElementsAre("t.yaml:3: expected a single YAML document, found another one here"));
  EXPECT_THAT(errorLines(load("tags: [a\ninner: {}\n", &c)),
              ElementsAre("t.yaml:2: invalid YAML: end of sequence flow not found"));
  EXPECT_THAT(errorLines(load("inner:\n  name: a\n port: 1\n", &c)),
              ElementsAre(HasSubstr("t.yaml:3: invalid YAML: ")));
  EXPECT_THAT(errorLines(load("base: &b {name: x}\ninner:\n  <<: *b\nspec:\n  <<: *b\n", &c)),
              ElementsAre("t.yaml:1: unknown field 'base'",
                          "t.yaml:3: inner: YAML merge keys ('<<') are not supported",
                          "t.yaml:5: spec: YAML merge keys ('<<') are not supported"));
  // Quoted, it is just a key.
  ASSERT_TRUE(load("labels: {'<<': x}\n", &c).ok());
  EXPECT_EQ(c.labels().at("<<"), "x");
}

TEST(YamlProtoTest, EmptyTextAndTrailingMarkerLoadEmptyMessage) {
  TestConfig c;
  c.set_target_name("stale");
  EXPECT_TRUE(load("", &c).ok());
  EXPECT_EQ(c.target_case(), TestConfig::TARGET_NOT_SET);  // cleared first
  EXPECT_TRUE(load("# nothing\n", &c).ok());
  LoadResult r = load("tags: [a]\n---\n", &c);
  EXPECT_TRUE(r.ok()) << r.errors.toString();
  EXPECT_THAT(c.tags(), ElementsAre("a"));
}

TEST(YamlProtoTest, JsonIsYaml) {
  TestConfig c;
  LoadResult r = load(R"(
{
  "inner": {"name": "x", "port": 80},
  "timeout": "1.5s",
  "labels": {"app": "r"},
  "ports": [1, "two"]
}
)",
                      &c);
  EXPECT_THAT(errorLines(r), ElementsAre("t.yaml:5: ports[1]: expected an unsigned integer, got "
                                         "'two'"));
  EXPECT_EQ(c.inner().port(), 80u);
  EXPECT_EQ(c.timeout().nanos(), 500'000'000);
}

TEST(YamlProtoTest, HostileInputIsBounded) {
  // Each alias level multiplies the values walked by ten.
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 6; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) bomb += (j ? ", " : "") + prev;
    bomb += "]\n";
  }
  bomb += "list: *a6\n";  // 10^7 values
  TestConfig c;
  LoadResult r = loadYaml(bomb, &c, {.file = "t.yaml", .unknown_fields_are_errors = false});
  EXPECT_THAT(errorLines(r),
              ElementsAre(HasSubstr("document too large: more than 1000000 values")));

  std::string deep = "inner: ";
  for (int i = 0; i < 150; ++i) deep += "{children: [";
  for (int i = 0; i < 150; ++i) deep += "]}";
  r = loadYaml(deep, &c, {.file = "t.yaml"});
  EXPECT_THAT(errorLines(r), ElementsAre(HasSubstr("nested deeper than 100 levels")));
}

// yaml-cpp 0.7's LoadAll never returns (and eats memory) on a stray ',' where a node should
// start; found by istio_config_fuzz.
TEST(YamlProtoTest, StrayCommaIsAnErrorNotAHang) {
  TestConfig c;
  LoadResult r = loadYaml("name: a\n---\n,\n", &c, {.file = "t.yaml"});
  EXPECT_THAT(errorLines(r), ElementsAre("t.yaml:3: invalid YAML: unexpected token here"));
  r = loadYaml(",x", &c, {.file = "t.yaml"});
  EXPECT_THAT(errorLines(r), ElementsAre("t.yaml:1: invalid YAML: unexpected token here"));
  StatusOr<std::vector<YamlDocument>> docs = splitYamlDocuments("a: 1\n---\n,\n", "s.yaml");
  ASSERT_FALSE(docs.ok());
  EXPECT_EQ(docs.status().message(), "s.yaml:3: invalid YAML: unexpected token here");
}

TEST(YamlProtoTest, LoadYamlFileReportsUnreadableFile) {
  TestConfig c;
  LoadResult r = loadYamlFile("/nonexistent/proxy.yaml", &c, {});
  EXPECT_THAT(errorLines(r), ElementsAre("/nonexistent/proxy.yaml: cannot read file: No such file "
                                         "or directory"));
  r = loadYamlFile(MESH_TESTDATA_DIR, &c, {.file = "testdata"});
  EXPECT_THAT(errorLines(r), ElementsAre("testdata: cannot read file: Is a directory"));
}

TEST(YamlProtoTest, ToJsonUsesJsonNames) {
  TestConfig c;
  ASSERT_TRUE(load("target_name: a\ntimeout: 250ms\nlabels: {app: r}\n", &c).ok());
  EXPECT_EQ(toJson(c, false), R"({"labels":{"app":"r"},"targetName":"a","timeout":"0.250s"})");
  EXPECT_THAT(toJson(c, true), HasSubstr("\n \"targetName\": \"a\",\n"));

  // Round trip: the JSON loads back into the same message.
  TestConfig back;
  ASSERT_TRUE(loadYaml(toJson(c, true), &back, {}).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(c, back));
}

}  // namespace
}  // namespace mesh::config
