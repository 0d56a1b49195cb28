// Cost of the stats hot path (ThreadStats::inc/add/observe) in ns per call, the two bucket
// searches side by side, and a full Prometheus scrape for scale.
//   build/bin/stats_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/stats/buckets.h"
#include "core/stats/store.h"

namespace mesh::stats {
namespace {

// Request durations in ms, log-uniform over 0.1 ms .. 10 s: every bucket up to 10000 is hit, in
// an order the branch predictor cannot learn.
std::vector<double> durations() {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> exp10(-1, 4);
  std::vector<double> v(4096);
  for (double& d : v) d = std::pow(10, exp10(rng));
  return v;
}

FamilyId counterFamily(Store& store) { return *store.addCounter("rq_total", "", {"route"}); }

FamilyId durationFamily(Store& store) {
  return *store.addHistogram("rq_duration_milliseconds", "", {"route"}, kIstioDurationBucketsMs);
}

std::vector<SeriesId> manySeries(Store& store, FamilyId family, int n) {
  std::vector<SeriesId> ids;
  for (int i = 0; i < n; ++i) ids.push_back(store.series(family, {std::to_string(i)}));
  return ids;
}

void BM_CounterInc(benchmark::State& state) {
  Store store;
  SeriesId id = store.series(counterFamily(store), {"r"});
  ThreadStats& t = store.createThreadStats();
  for (auto _ : state) {
    benchmark::DoNotOptimize(id);
    t.inc(id);
  }
  benchmark::DoNotOptimize(store.counterValue(id));
}
BENCHMARK(BM_CounterInc);

// 1000 series round robin: the cells of one call are rarely in L1.
void BM_CounterIncManySeries(benchmark::State& state) {
  Store store;
  std::vector<SeriesId> ids = manySeries(store, counterFamily(store), 1000);
  ThreadStats& t = store.createThreadStats();
  size_t i = 0;
  for (auto _ : state) {
    t.inc(ids[i]);
    i = i + 1 == ids.size() ? 0 : i + 1;
  }
}
BENCHMARK(BM_CounterIncManySeries);

void BM_GaugeAdd(benchmark::State& state) {
  Store store;
  SeriesId id = store.series(*store.addGauge("active", ""));
  ThreadStats& t = store.createThreadStats();
  int64_t delta = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(delta);
    t.add(id, delta);
  }
}
BENCHMARK(BM_GaugeAdd);

void BM_HistogramObserveSameValue(benchmark::State& state) {
  Store store;
  SeriesId id = store.series(durationFamily(store), {"r"});
  ThreadStats& t = store.createThreadStats();
  double v = 12;
  for (auto _ : state) {
    benchmark::DoNotOptimize(v);
    t.observe(id, v);
  }
}
BENCHMARK(BM_HistogramObserveSameValue);

void BM_HistogramObserveSpread(benchmark::State& state) {
  Store store;
  SeriesId id = store.series(durationFamily(store), {"r"});
  ThreadStats& t = store.createThreadStats();
  std::vector<double> values = durations();
  size_t i = 0;
  for (auto _ : state) {
    t.observe(id, values[i]);
    i = (i + 1) & (values.size() - 1);
  }
}
BENCHMARK(BM_HistogramObserveSpread);

void BM_HistogramObserveManySeries(benchmark::State& state) {
  Store store;
  std::vector<SeriesId> ids = manySeries(store, durationFamily(store), 1000);
  ThreadStats& t = store.createThreadStats();
  std::vector<double> values = durations();
  size_t i = 0, j = 0;
  for (auto _ : state) {
    t.observe(ids[j], values[i]);
    i = (i + 1) & (values.size() - 1);
    j = j + 1 == ids.size() ? 0 : j + 1;
  }
}
BENCHMARK(BM_HistogramObserveManySeries);

template <uint32_t (*Search)(const double*, uint32_t, double)>
void BM_BucketSearch(benchmark::State& state) {
  std::vector<double> values = durations();
  if (state.range(0) == 0) values.assign(values.size(), 12);  // one value: predictable
  const double* bounds = kIstioDurationBucketsMs.data();
  uint32_t n = kIstioDurationBucketsMs.size();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(Search(bounds, n, values[i]));
    i = (i + 1) & (values.size() - 1);
  }
}
BENCHMARK(BM_BucketSearch<detail::bucketIndexLinear>)->Name("BM_BucketLinear")->Arg(0)->Arg(1);
BENCHMARK(BM_BucketSearch<detail::bucketIndexBinary>)->Name("BM_BucketBinary")->Arg(0)->Arg(1);

// One scrape of 1000 counter and 1000 histogram series written by 4 threads.
void BM_PrometheusText(benchmark::State& state) {
  Store store;
  std::vector<SeriesId> counters = manySeries(store, counterFamily(store), 1000);
  std::vector<SeriesId> hists = manySeries(store, durationFamily(store), 1000);
  for (int w = 0; w < 4; ++w) {
    ThreadStats& t = store.createThreadStats();
    for (size_t i = 0; i < counters.size(); ++i) {
      t.inc(counters[i]);
      t.observe(hists[i], static_cast<double>(i));
    }
  }
  std::string out;
  for (auto _ : state) {
    out.clear();
    store.prometheusText(&out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_PrometheusText)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace mesh::stats

BENCHMARK_MAIN();
