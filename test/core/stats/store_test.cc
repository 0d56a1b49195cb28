#include "core/stats/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/stats/buckets.h"

namespace mesh::stats {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

FamilyId mustAdd(StatusOr<FamilyId> id) {
  EXPECT_TRUE(id.ok()) << id.status().toString();
  return id.ok() ? *id : FamilyId{};
}

FamilyId counterFamily(Store& store, std::string name, std::vector<std::string> labels) {
  return mustAdd(store.addCounter(std::move(name), "help", std::move(labels)));
}

FamilySpec spec(std::string name, MetricType type, std::vector<std::string> labels = {},
                std::vector<double> bounds = {}) {
  return {std::move(name), "", type, std::move(labels), std::move(bounds)};
}

StoreOptions options(uint32_t max_series_per_family, uint32_t max_cells = detail::kMaxCells,
                     uint32_t max_label_value_bytes = kDefaultMaxLabelValueBytes) {
  StoreOptions o;
  o.max_series_per_family = max_series_per_family;
  o.max_cells = max_cells;
  o.max_label_value_bytes = max_label_value_bytes;
  return o;
}

std::string prometheus(const Store& store, bool used_only = false) {
  std::string out;
  store.prometheusText(&out, used_only);
  return out;
}

std::string plain(const Store& store, std::string_view filter = "", bool used_only = false) {
  std::string out;
  store.plainText(&out, filter, used_only);
  return out;
}

TEST(StatsStoreTest, SameLabelValuesGiveSameSeries) {
  Store store;
  FamilyId rq = counterFamily(store, "requests_total", {"code", "method"});
  FamilyId other = counterFamily(store, "other_total", {"code", "method"});
  SeriesId a = store.series(rq, {"200", "GET"});
  std::vector<std::string_view> values = {"200", "GET"};
  EXPECT_EQ(store.series(rq, values), a);
  std::string owned = "200";  // different storage, same value
  EXPECT_EQ(store.series(rq, {owned, "GET"}), a);
  EXPECT_NE(store.series(rq, {"200", "POST"}), a);
  EXPECT_NE(store.series(rq, {"2", "00GET"}), store.series(rq, {"200", "GET"}));
  EXPECT_NE(store.series(other, {"200", "GET"}), a);
  EXPECT_TRUE(a.valid());
  EXPECT_FALSE(SeriesId().valid());
}

TEST(StatsStoreTest, FamilyWithoutLabelsHasOneSeries) {
  Store store;
  FamilyId up = mustAdd(store.addGauge("up", ""));
  EXPECT_EQ(store.series(up), store.series(up, {}));
  ThreadStats& t = store.createThreadStats();
  t.add(store.series(up), 1);
  EXPECT_EQ(prometheus(store), "# TYPE up gauge\nup 1\n");
}

TEST(StatsStoreTest, RegisteringTheSameFamilyAgain) {
  Store store;
  FamilyId a = counterFamily(store, "x_total", {"a"});
  StatusOr<FamilyId> again = store.addCounter("x_total", "help", {"a"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, a);
  StatusOr<FamilyId> different = store.addGauge("x_total", "help", {"a"});
  ASSERT_FALSE(different.ok());
  EXPECT_EQ(different.status().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(different.status().message(), HasSubstr("x_total"));
}

TEST(StatsStoreTest, InvalidFamiliesListEveryProblem) {
  Store store;
  StatusOr<FamilyId> bad =
      store.addHistogram("h", "", {"ok", "le", "a-b", "__x", "ok"}, {1, 1, INFINITY});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = bad.status().message();
  EXPECT_THAT(m, HasSubstr("h.label_names[1]: 'le' is reserved"));
  EXPECT_THAT(m, HasSubstr("h.label_names[2]: invalid label name 'a-b'"));
  EXPECT_THAT(m, HasSubstr("h.label_names[3]: invalid label name '__x'"));
  EXPECT_THAT(m, HasSubstr("h.label_names[4]: duplicate label name 'ok'"));
  EXPECT_THAT(m, HasSubstr("h.bucket_bounds[1]: must be greater than the previous bound"));
  EXPECT_THAT(m, HasSubstr("h.bucket_bounds[2]: must be finite"));

  StatusOr<FamilyId> name = store.addCounter("1abc", "");
  EXPECT_THAT(name.status().message(), HasSubstr("invalid metric name '1abc'"));
  StatusOr<FamilyId> no_buckets = store.addFamily(spec("h", MetricType::kHistogram));
  EXPECT_THAT(no_buckets.status().message(), HasSubstr("h.bucket_bounds: need 1 to 64"));
  StatusOr<FamilyId> counter_buckets = store.addFamily(spec("c", MetricType::kCounter, {}, {1}));
  EXPECT_THAT(counter_buckets.status().message(), HasSubstr("only histograms have buckets"));
}

TEST(StatsStoreTest, CountersAndGaugesSumOverThreads) {
  Store store;
  SeriesId c = store.series(counterFamily(store, "c_total", {}));
  SeriesId g = store.series(mustAdd(store.addGauge("g", "")));
  ThreadStats& t1 = store.createThreadStats();
  ThreadStats& t2 = store.createThreadStats();
  t1.inc(c);
  t2.inc(c, 41);
  t1.add(g, 5);
  t2.add(g, -7);
  EXPECT_EQ(store.counterValue(c), 42u);
  EXPECT_EQ(store.gaugeValue(g), -2);
  t1.add(g, std::numeric_limits<int32_t>::min());
  EXPECT_EQ(store.gaugeValue(g), -2 + int64_t{std::numeric_limits<int32_t>::min()});
}

// A value exactly on a bound belongs to that bound's bucket (le = "less or equal").
TEST(StatsStoreTest, HistogramBucketEdges) {
  Store store;
  FamilyId f = mustAdd(store.addHistogram("d", "", {}, {0.5, 1, 3600000}));
  SeriesId h = store.series(f);
  ThreadStats& t = store.createThreadStats();
  t.observe(h, 0.5);                       // <= 0.5
  t.observe(h, -3);                        // <= 0.5
  t.observe(h, std::nextafter(0.5, 1.0));  // <= 1
  t.observe(h, 1);                         // <= 1
  t.observe(h, 3600000);                   // <= 3600000
  t.observe(h, 3600000.5);                 // +Inf
  t.observe(h, INFINITY);                  // +Inf
  t.observe(h, std::nan(""));              // ignored
  HistogramSnapshot s = store.histogram(h);
  EXPECT_EQ(s.bounds, (std::vector<double>{0.5, 1, 3600000}));
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 4, 5, 7}));
  EXPECT_EQ(s.count, 7u);
  EXPECT_EQ(s.sum, INFINITY);
}

TEST(StatsStoreTest, LinearAndBinaryBucketSearchAgree) {
  const double* b = kIstioDurationBucketsMs.data();
  std::vector<double> values = {-1, 0, 0.25, 0.5, 0.75, 1, 1e12, INFINITY, -INFINITY};
  for (double bound : kIstioDurationBucketsMs) {
    values.push_back(bound);
    values.push_back(std::nextafter(bound, -INFINITY));
    values.push_back(std::nextafter(bound, INFINITY));
  }
  for (uint32_t n = 1; n <= kIstioDurationBucketsMs.size(); ++n) {
    for (double v : values) {
      uint32_t want = 0;
      while (want < n && !(v <= b[want])) ++want;
      EXPECT_EQ(detail::bucketIndexLinear(b, n, v), want) << "n=" << n << " v=" << v;
      EXPECT_EQ(detail::bucketIndexBinary(b, n, v), want) << "n=" << n << " v=" << v;
    }
  }
}

TEST(StatsStoreTest, ExactPrometheusText) {
  Store store;
  FamilyId rq = mustAdd(store.addCounter(
      "istio_requests_total", "Total requests.\nBackslash \\ too.", {"reporter", "response_code"}));
  FamilyId active = mustAdd(store.addGauge("active", ""));
  FamilyId dur = mustAdd(store.addHistogram("istio_request_duration_milliseconds", "Duration.",
                                            {"reporter"}, {0.5, 2500, 3600000}));
  FamilyId empty = counterFamily(store, "never_resolved_total", {"a"});
  (void)empty;
  SeriesId rq_dst_200 = store.series(rq, {"destination", "200"});
  SeriesId rq_src_503 = store.series(rq, {"source", "503"});
  SeriesId gauge = store.series(active);
  SeriesId d = store.series(dur, {"destination"});
  ThreadStats& t1 = store.createThreadStats();
  ThreadStats& t2 = store.createThreadStats();
  t1.inc(rq_dst_200, 3);
  t2.inc(rq_dst_200);
  t2.inc(rq_src_503);
  t1.add(gauge, 7);
  t2.add(gauge, -2);
  t1.observe(d, 0.25);
  t2.observe(d, 12.25);
  t2.observe(d, 5000000);
  EXPECT_EQ(prometheus(store),
            "# HELP istio_requests_total Total requests.\\nBackslash \\\\ too.\n"
            "# TYPE istio_requests_total counter\n"
            "istio_requests_total{reporter=\"destination\",response_code=\"200\"} 4\n"
            "istio_requests_total{reporter=\"source\",response_code=\"503\"} 1\n"
            "# TYPE active gauge\n"
            "active 5\n"
            "# HELP istio_request_duration_milliseconds Duration.\n"
            "# TYPE istio_request_duration_milliseconds histogram\n"
            "istio_request_duration_milliseconds_bucket{reporter=\"destination\",le=\"0.5\"} 1\n"
            "istio_request_duration_milliseconds_bucket{reporter=\"destination\",le=\"2500\"} 2\n"
            "istio_request_duration_milliseconds_bucket{reporter=\"destination\",le=\"3600000\"} "
            "2\n"
            "istio_request_duration_milliseconds_bucket{reporter=\"destination\",le=\"+Inf\"} 3\n"
            "istio_request_duration_milliseconds_sum{reporter=\"destination\"} 5000012.5\n"
            "istio_request_duration_milliseconds_count{reporter=\"destination\"} 3\n");
}

TEST(StatsStoreTest, BoundsPrintLikePrometheusClients) {
  Store store;
  FamilyId ok =
      mustAdd(store.addHistogram("h2", "", {}, {-2.5, 1e-7, 0.005, 0.1, 1, 1800000, 1e21}));
  SeriesId s = store.series(ok);
  store.createThreadStats().observe(s, 1e22);
  EXPECT_EQ(prometheus(store),
            "# TYPE h2 histogram\n"
            "h2_bucket{le=\"-2.5\"} 0\n"
            "h2_bucket{le=\"1e-07\"} 0\n"
            "h2_bucket{le=\"0.005\"} 0\n"
            "h2_bucket{le=\"0.1\"} 0\n"
            "h2_bucket{le=\"1\"} 0\n"
            "h2_bucket{le=\"1800000\"} 0\n"
            "h2_bucket{le=\"1e+21\"} 0\n"
            "h2_bucket{le=\"+Inf\"} 1\n"
            "h2_sum 1e+22\n"
            "h2_count 1\n");
}

TEST(StatsStoreTest, LabelValuesAreEscaped) {
  Store store;
  FamilyId f = counterFamily(store, "c_total", {"path"});
  SeriesId s = store.series(f, {"a\\b\"c\nd"});
  store.createThreadStats().inc(s);
  EXPECT_EQ(prometheus(store),
            "# HELP c_total help\n# TYPE c_total counter\n"
            "c_total{path=\"a\\\\b\\\"c\\nd\"} 1\n");
  EXPECT_EQ(plain(store), "c_total{path=\"a\\\\b\\\"c\\nd\"}: 1\n");
}

// A scrape with invalid UTF-8 fails as a whole in Prometheus, so bad bytes never reach the text.
TEST(StatsStoreTest, InvalidUtf8InLabelValuesIsReplaced) {
  Store store;
  FamilyId f = counterFamily(store, "c_total", {"v"});
  SeriesId bad = store.series(f, {"a\xff-b"});
  EXPECT_EQ(store.series(f, {"a\xfe-b"}), bad);       // both become "a\uFFFD-b"
  store.series(f, {"\xc0\xaf"});                      // overlong '/': two bad bytes
  store.series(f, {"\xed\xa0\x80"});                  // surrogate U+D800
  store.series(f, {"caf\xc3\xa9 \xf0\x9f\x98\x80"});  // valid: kept
  store.series(f, {"x\xe2\x82"});                     // truncated sequence
  EXPECT_EQ(plain(store),
            "c_total{v=\"a\xef\xbf\xbd-b\"}: 0\n"
            "c_total{v=\"\xef\xbf\xbd\xef\xbf\xbd\"}: 0\n"
            "c_total{v=\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}: 0\n"
            "c_total{v=\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}: 0\n"
            "c_total{v=\"x\xef\xbf\xbd\xef\xbf\xbd\"}: 0\n");
}

TEST(StatsStoreTest, OverlongLabelValuesGetTheOverflowSeries) {
  Store store(options(kDefaultMaxSeriesPerFamily, detail::kMaxCells, 4));
  FamilyId f = counterFamily(store, "c_total", {"a", "b"});
  SeriesId ok = store.series(f, {"1234", "x"});
  SeriesId over = store.series(f, {"12345", "x"});
  EXPECT_NE(ok, over);
  EXPECT_EQ(store.series(f, {"overflow", "overflow"}), over);
  EXPECT_EQ(store.series(f, {"x", std::string(100000, 'z')}), over);
}

TEST(StatsStoreTest, UsedOnlySkipsSeriesNeverWritten) {
  Store store;
  FamilyId c = counterFamily(store, "c_total", {"k"});
  FamilyId g = mustAdd(store.addGauge("g", "", {"k"}));
  FamilyId h = mustAdd(store.addHistogram("h", "", {"k"}, {1}));
  FamilyId unused = counterFamily(store, "unused_total", {"k"});
  ThreadStats& t = store.createThreadStats();
  t.inc(store.series(c, {"used"}));
  store.series(c, {"idle"});
  t.add(store.series(g, {"back_to_zero"}), 1);
  t.add(store.series(g, {"back_to_zero"}), -1);
  store.series(g, {"idle"});
  store.series(h, {"idle"});
  store.series(unused, {"idle"});
  EXPECT_EQ(prometheus(store, /*used_only=*/true),
            "# HELP c_total help\n# TYPE c_total counter\n"
            "c_total{k=\"used\"} 1\n"
            "# TYPE g gauge\n"
            "g{k=\"back_to_zero\"} 0\n");
  EXPECT_EQ(plain(store, "", /*used_only=*/true),
            "c_total{k=\"used\"}: 1\ng{k=\"back_to_zero\"}: 0\n");
  std::string all = prometheus(store);
  EXPECT_THAT(all, HasSubstr("c_total{k=\"idle\"} 0\n"));
  EXPECT_THAT(all, HasSubstr("g{k=\"idle\"} 0\n"));
  EXPECT_THAT(all, HasSubstr("h_count{k=\"idle\"} 0\n"));
  EXPECT_THAT(all, HasSubstr("unused_total{k=\"idle\"} 0\n"));
}

TEST(StatsStoreTest, PlainTextWithFilter) {
  Store store;
  FamilyId c = counterFamily(store, "rq_total", {"code"});
  FamilyId h = mustAdd(store.addHistogram("rq_duration", "", {"code"}, {1, 10}));
  ThreadStats& t = store.createThreadStats();
  t.inc(store.series(c, {"200"}), 2);
  t.inc(store.series(c, {"503"}));
  t.observe(store.series(h, {"200"}), 2.5);
  t.observe(store.series(h, {"200"}), 10);
  EXPECT_EQ(plain(store),
            "rq_total{code=\"200\"}: 2\n"
            "rq_total{code=\"503\"}: 1\n"
            "rq_duration_count{code=\"200\"}: 2\n"
            "rq_duration_sum{code=\"200\"}: 12.5\n");
  EXPECT_EQ(plain(store, "200"),
            "rq_total{code=\"200\"}: 2\n"
            "rq_duration_count{code=\"200\"}: 2\n"
            "rq_duration_sum{code=\"200\"}: 12.5\n");
  EXPECT_EQ(plain(store, "_sum"), "rq_duration_sum{code=\"200\"}: 12.5\n");
  EXPECT_EQ(plain(store, "nothing"), "");
}

TEST(StatsStoreTest, SeriesBeyondTheCapShareTheOverflowSeries) {
  Store store(options(3));
  FamilyId f = counterFamily(store, "c_total", {"a", "b"});
  FamilyId g = counterFamily(store, "g_total", {"a"});
  SeriesId first = store.series(f, {"1", "x"});
  store.series(f, {"2", "x"});
  store.series(f, {"3", "x"});
  SeriesId over = store.series(f, {"4", "x"});
  EXPECT_EQ(store.series(f, {"5", "x"}), over);
  EXPECT_EQ(store.series(f, {"overflow", "overflow"}), over);
  EXPECT_EQ(store.series(f, {"1", "x"}), first);  // existing series keep working
  EXPECT_NE(store.series(g, {"1"}), over);        // the cap is per family
  ThreadStats& t = store.createThreadStats();
  t.inc(over, 2);
  t.inc(store.series(f, {"6", "y"}));
  EXPECT_EQ(store.counterValue(over), 3u);
  EXPECT_THAT(prometheus(store), HasSubstr("c_total{a=\"3\",b=\"x\"} 0\n"
                                           "c_total{a=\"overflow\",b=\"overflow\"} 3\n"));
  EXPECT_THAT(prometheus(store), Not(HasSubstr("a=\"4\"")));
}

TEST(StatsStoreTest, OverflowValuesBeforeTheCapAreTheOverflowSeries) {
  Store store(options(1));
  FamilyId f = counterFamily(store, "c_total", {"a"});
  SeriesId over = store.series(f, {"overflow"});
  SeriesId one = store.series(f, {"1"});  // the overflow series does not count against the cap
  EXPECT_NE(one, over);
  EXPECT_EQ(store.series(f, {"2"}), over);
}

TEST(StatsStoreTest, RunningOutOfCellsFallsBackToOverflow) {
  // Two histograms of 3 cells fit in 8 cells; their overflow series are reserved first.
  Store store(options(kDefaultMaxSeriesPerFamily, 8));
  FamilyId h = mustAdd(store.addHistogram("h", "", {"k"}, {1}));
  SeriesId a = store.series(h, {"a"});
  SeriesId over = store.series(h, {"b"});
  EXPECT_NE(a, over);
  EXPECT_EQ(store.series(h, {"overflow"}), over);
  StatusOr<FamilyId> full = store.addHistogram("h2", "", {"k"}, {1});
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), HasSubstr("'h2'"));
}

TEST(StatsStoreDeathTest, WrongSeriesTypeCrashes) {
  Store store;
  SeriesId c = store.series(counterFamily(store, "c_total", {}));
  ThreadStats& t = store.createThreadStats();
  EXPECT_DEATH(t.observe(c, 1), "series of type counter used as a histogram");
  EXPECT_DEATH(t.inc(SeriesId()), "default-constructed SeriesId used as a counter");
  EXPECT_DEATH(store.series(FamilyId{}), "unknown FamilyId");
  EXPECT_DEATH(store.series(counterFamily(store, "l_total", {"a"})), "wrong number of label");
}

// Two workers write while a third thread scrapes; workers also create series as they go, so
// chunks are added to every ThreadStats while it is being read. Totals must come out exact.
TEST(StatsStoreTest, MergesAcrossThreadsWhileScraping) {
  Store store;
  FamilyId rq = counterFamily(store, "rq_total", {"worker"});
  FamilyId active = mustAdd(store.addGauge("active", ""));
  FamilyId dur = mustAdd(store.addHistogram("dur", "", {"k"}, kIstioDurationBucketsMs));
  SeriesId shared = store.series(rq, {"shared"});
  SeriesId gauge = store.series(active);
  SeriesId hist = store.series(dur, {"shared"});
  constexpr int kIterations = 2000000;
  constexpr int kNewSeriesEvery = 1000;  // 2000 histogram series per worker: ~20 chunks
  std::atomic<int> running{2};
  auto worker = [&](ThreadStats* t, std::string name) {
    for (int i = 0; i < kIterations; ++i) {
      t->inc(shared);
      t->add(gauge, 1);
      t->observe(hist, i % 7 == 0 ? 0.5 : 20);
      if (i % kNewSeriesEvery == 0) {
        std::string k = name + std::to_string(i);
        t->observe(store.series(dur, {k}), 1);
      }
      t->add(gauge, -1);
    }
    running.fetch_sub(1);
  };
  ThreadStats& t1 = store.createThreadStats();
  ThreadStats& t2 = store.createThreadStats();
  std::thread w1(worker, &t1, "a");
  std::thread w2(worker, &t2, "b");
  uint64_t last = 0;
  int scrapes = 0;
  std::string text;
  while (running.load() > 0 || scrapes == 0) {
    uint64_t now = store.counterValue(shared);
    EXPECT_GE(now, last);  // each thread's cell only grows, so the merged sum never drops
    last = now;
    HistogramSnapshot h = store.histogram(hist);
    EXPECT_EQ(h.cumulative.back(), h.count);
    int64_t g = store.gaugeValue(gauge);
    EXPECT_GE(g, 0);
    EXPECT_LE(g, 2);
    text.clear();
    store.prometheusText(&text);
    ++scrapes;
  }
  w1.join();
  w2.join();
  EXPECT_GT(scrapes, 0);
  EXPECT_EQ(store.counterValue(shared), 2u * kIterations);
  EXPECT_EQ(store.gaugeValue(gauge), 0);
  HistogramSnapshot h = store.histogram(hist);
  uint64_t small = 2 * ((kIterations + 6) / 7);
  EXPECT_EQ(h.count, 2u * kIterations);
  EXPECT_EQ(h.cumulative[0], small);
  EXPECT_EQ(h.cumulative[4], 2u * kIterations);  // 20 <= 25
  EXPECT_EQ(h.sum, 0.5 * small + 20.0 * (2 * kIterations - small));
  EXPECT_EQ(
      store.histogram(store.series(dur, {"b" + std::to_string(kIterations - kNewSeriesEvery)}))
          .count,
      1u);
  text.clear();
  store.prometheusText(&text);
  EXPECT_THAT(text, HasSubstr("rq_total{worker=\"shared\"} 4000000\n"));
  EXPECT_THAT(text, HasSubstr("dur_count{k=\"shared\"} 4000000\n"));
}

}  // namespace
}  // namespace mesh::stats
