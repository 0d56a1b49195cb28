#include "core/stats/store.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <deque>
#include <utility>

#include "core/log.h"
#include "core/validation_errors.h"

namespace mesh::stats {
namespace {

std::string_view typeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: the same without ':'.
bool isName(std::string_view s, bool allow_colon) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when there is none (stray
// continuation byte, truncated or overlong sequence, surrogate, beyond U+10FFFF).
size_t utf8SequenceLength(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xe0) == 0xc0) {
    n = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  static constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kSmallest[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

// Sets *out to s with every byte that starts no valid UTF-8 sequence replaced by U+FFFD and
// returns true; returns false without copying when s is valid already (the common case).
bool repairUtf8(std::string_view s, std::string* out) {
  size_t i = 0;
  while (i < s.size()) {
    size_t n = utf8SequenceLength(s, i);
    if (n == 0) break;
    i += n;
  }
  if (i == s.size()) return false;
  out->assign(s.substr(0, i));
  while (i < s.size()) {
    size_t n = utf8SequenceLength(s, i);
    if (n == 0) {
      out->append("\xef\xbf\xbd");
      ++i;
    } else {
      out->append(s.substr(i, n));
      i += n;
    }
  }
  return true;
}

// The text format escapes backslash and newline in HELP text, and also double quote in label
// values.
void appendEscaped(std::string* out, std::string_view v, bool escape_quote) {
  for (char c : v) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '"' && escape_quote) {
      out->append("\\\"");
    } else {
      out->push_back(c);
    }
  }
}

template <typename Int>
void appendInt(std::string* out, Int v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

// Shortest text that parses back to v, in plain decimal (3600000, 0.5) for magnitudes in
// [1e-6, 1e21) as Prometheus client libraries print bucket bounds, else in exponent form (1e+21).
// Specials as the text format spells them: +Inf, -Inf, NaN.
void appendDouble(std::string* out, double v) {
  if (std::isnan(v)) {
    out->append("NaN");
    return;
  }
  if (std::isinf(v)) {
    out->append(v > 0 ? "+Inf" : "-Inf");
    return;
  }
  if (v == 0) {
    out->push_back('0');  // also for -0
    return;
  }
  char buf[400];  // fixed notation of a value below 1e21 needs < 30 chars; exponent form < 25
  double mag = std::fabs(v);
  auto fmt = (mag >= 1e-6 && mag < 1e21) ? std::chars_format::fixed : std::chars_format::general;
  auto r = std::to_chars(buf, buf + sizeof(buf), v, fmt);
  out->append(buf, r.ptr);
}

// Interning key: each value as a 4-byte length then its bytes, so no two lists collide.
std::string seriesKey(std::span<const std::string_view> values) {
  std::string key;
  size_t total = 0;
  for (auto v : values) total += 4 + v.size();
  key.reserve(total);
  for (auto v : values) {
    uint32_t n = static_cast<uint32_t>(v.size());
    char len[4];
    std::memcpy(len, &n, 4);
    key.append(len, 4);
    key.append(v);
  }
  return key;
}

}  // namespace

namespace detail {

void wrongSeriesType(uint8_t actual, MetricType expected) {
  std::string msg =
      actual == kInvalidSeriesType
          ? std::string("default-constructed SeriesId")
          : "series of type " + std::string(typeName(static_cast<MetricType>(actual)));
  msg += " used as a ";
  msg += typeName(expected);
  releaseAssertFailed("series type matches the method", msg.c_str(), __FILE__, __LINE__);
}

uint64_t readCell(const ThreadStats& thread, uint32_t cell) {
  return thread.chunks_[cell >> kChunkShift]
      .load(std::memory_order_acquire)
      ->cells[cell & kChunkMask]
      .load(std::memory_order_relaxed);
}

}  // namespace detail

struct Store::Series {
  std::string labels;  // escaped `a="x",b="y"`; empty for a family without labels
  SeriesId id;
};

struct Store::Family {
  FamilySpec spec;
  std::vector<std::string> le;  // bucket_bounds as printed in le="..."
  uint32_t cells_per_series = 1;
  std::deque<Series> series;  // creation order; deque keeps addresses stable
  std::unordered_map<std::string, const Series*> by_key;
  uint32_t regular_series = 0;       // series counted against the cap (all but the overflow one)
  uint32_t overflow_cell = 0;        // reserved at registration so overflow never needs room
  const Series* overflow = nullptr;  // created the first time it is handed out
  bool overflow_warned = false;

  SeriesId makeId(uint32_t cell) const {
    SeriesId id;
    id.cell_ = cell;
    id.type_ = static_cast<uint8_t>(spec.type);
    if (spec.type == MetricType::kHistogram) {
      id.bounds_ = spec.bucket_bounds.data();
      id.num_bounds_ = static_cast<uint16_t>(spec.bucket_bounds.size());
    }
    return id;
  }

  const Series& addSeries(std::span<const std::string_view> values, uint32_t cell) {
    Series& s = series.emplace_back();
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) s.labels.push_back(',');
      s.labels.append(spec.label_names[i]);
      s.labels.append("=\"");
      appendEscaped(&s.labels, values[i], /*escape_quote=*/true);
      s.labels.push_back('"');
    }
    s.id = makeId(cell);
    return s;
  }
};

// What a scrape reads, copied under the mutex so rendering runs without it.
struct Store::Snapshot {
  std::vector<const ThreadStats*> threads;
  std::vector<const Family*> families;
  std::vector<size_t> family_end;  // series of families[i] end at series[family_end[i]]
  std::vector<const Series*> series;
};

ThreadStats::~ThreadStats() {
  for (auto& chunk : chunks_) delete chunk.load(std::memory_order_relaxed);
}

Store::Store(StoreOptions options) : options_(options) {
  MESH_RELEASE_ASSERT(options_.max_cells <= detail::kMaxCells, "StoreOptions.max_cells too big");
  MESH_RELEASE_ASSERT(options_.max_series_per_family >= 1, "StoreOptions.max_series_per_family");
}

Store::~Store() = default;

bool Store::allocateCells(uint32_t n, uint32_t* first) {
  uint32_t cell = next_cell_;
  if ((cell & detail::kChunkMask) + n > detail::kChunkCells) {
    cell = (cell | detail::kChunkMask) + 1;  // start of the next chunk
  }
  if (cell > options_.max_cells || options_.max_cells - cell < n) return false;
  uint32_t chunks_needed = ((cell + n - 1) >> detail::kChunkShift) + 1;
  for (; allocated_chunks_ < chunks_needed; ++allocated_chunks_) {
    for (auto& t : threads_) {
      t->chunks_[allocated_chunks_].store(new detail::Chunk(), std::memory_order_release);
    }
  }
  next_cell_ = cell + n;
  *first = cell;
  return true;
}

StatusOr<FamilyId> Store::addFamily(FamilySpec spec) {
  ValidationErrors errors;
  const std::string& name = spec.name;
  if (!isName(name, /*allow_colon=*/true)) {
    errors.add("", 0, "name", "invalid metric name '" + name + "'");
  }
  for (size_t i = 0; i < spec.label_names.size(); ++i) {
    const std::string& l = spec.label_names[i];
    std::string path = name + ".label_names[" + std::to_string(i) + "]";
    if (!isName(l, /*allow_colon=*/false) || l.starts_with("__")) {
      errors.add("", 0, path, "invalid label name '" + l + "'");
    } else if (spec.type == MetricType::kHistogram && l == "le") {
      errors.add("", 0, path, "'le' is reserved for histogram buckets");
    } else if (std::find(spec.label_names.begin(), spec.label_names.begin() + i, l) !=
               spec.label_names.begin() + i) {
      errors.add("", 0, path, "duplicate label name '" + l + "'");
    }
  }
  const auto& bounds = spec.bucket_bounds;
  if (spec.type == MetricType::kHistogram) {
    if (bounds.empty() || bounds.size() > kMaxBucketBounds) {
      errors.add("", 0, name + ".bucket_bounds",
                 "need 1 to " + std::to_string(kMaxBucketBounds) + " finite bounds");
    }
    for (size_t i = 0; i < bounds.size(); ++i) {
      std::string path = name + ".bucket_bounds[" + std::to_string(i) + "]";
      if (!std::isfinite(bounds[i])) {
        errors.add("", 0, path, "must be finite");
      } else if (i > 0 && !(bounds[i] > bounds[i - 1])) {
        errors.add("", 0, path, "must be greater than the previous bound");
      }
    }
  } else if (!bounds.empty()) {
    errors.add("", 0, name + ".bucket_bounds", "only histograms have buckets");
  }
  if (!errors.empty()) return errors.toStatus();

  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = family_by_name_.find(name); it != family_by_name_.end()) {
    const FamilySpec& old = families_[it->second]->spec;
    if (old.help == spec.help && old.type == spec.type && old.label_names == spec.label_names &&
        old.bucket_bounds == spec.bucket_bounds) {
      return FamilyId{it->second};
    }
    return Status(StatusCode::kAlreadyExists,
                  "metric family '" + name + "' is already registered with another definition");
  }
  auto family = std::make_unique<Family>();
  family->cells_per_series =
      spec.type == MetricType::kHistogram ? static_cast<uint32_t>(bounds.size()) + 2 : 1;
  if (!allocateCells(family->cells_per_series, &family->overflow_cell)) {
    return Status(StatusCode::kResourceExhausted,
                  "no stats cells left for metric family '" + name + "'");
  }
  for (double b : bounds) {
    std::string s;
    appendDouble(&s, b);
    family->le.push_back(std::move(s));
  }
  family->spec = std::move(spec);
  uint32_t index = static_cast<uint32_t>(families_.size());
  family_by_name_.emplace(family->spec.name, index);
  families_.push_back(std::move(family));
  return FamilyId{index};
}

const Store::Series& Store::overflowSeries(Family& family) {
  if (family.overflow == nullptr) {
    std::vector<std::string_view> values(family.spec.label_names.size(), kOverflowLabelValue);
    family.overflow = &family.addSeries(values, family.overflow_cell);
    family.by_key.emplace(seriesKey(values), family.overflow);
  }
  return *family.overflow;
}

SeriesId Store::series(FamilyId family_id, std::span<const std::string_view> label_values) {
  std::lock_guard<std::mutex> lock(mu_);
  MESH_RELEASE_ASSERT(family_id.index < families_.size(), "unknown FamilyId");
  Family& family = *families_[family_id.index];
  MESH_RELEASE_ASSERT(label_values.size() == family.spec.label_names.size(),
                      "wrong number of label values for the family");
  std::vector<std::string_view> values(label_values.begin(), label_values.end());
  std::vector<std::string> repaired;
  repaired.reserve(values.size());  // never reallocates: values may point into it
  bool too_long = false;
  for (std::string_view& v : values) {
    too_long |= v.size() > options_.max_label_value_bytes;
    std::string fixed;
    if (repairUtf8(v, &fixed)) v = repaired.emplace_back(std::move(fixed));
  }
  std::string key = seriesKey(values);
  if (auto it = family.by_key.find(key); it != family.by_key.end()) return it->second->id;
  // The overflow series owns the all-"overflow" combination (for a family without labels: its
  // only series), so that combination never prints twice.
  bool is_overflow_values = std::all_of(
      values.begin(), values.end(), [](std::string_view v) { return v == kOverflowLabelValue; });
  if (is_overflow_values) return overflowSeries(family).id;
  uint32_t cell = 0;
  if (too_long || family.regular_series >= options_.max_series_per_family ||
      !allocateCells(family.cells_per_series, &cell)) {
    if (!family.overflow_warned) {
      family.overflow_warned = true;
      MESH_LOG("stats", warn,
               "metric family '{}': {}; this and later such label combinations are counted in "
               "its series with every label set to \"overflow\"",
               family.spec.name,
               too_long ? "label value longer than " +
                              std::to_string(options_.max_label_value_bytes) + " bytes"
                        : "series limit (" + std::to_string(options_.max_series_per_family) +
                              ") or stats memory reached");
    }
    return overflowSeries(family).id;
  }
  const Series& s = family.addSeries(values, cell);
  family.by_key.emplace(std::move(key), &s);
  ++family.regular_series;
  return s.id;
}

ThreadStats& Store::createThreadStats() {
  std::lock_guard<std::mutex> lock(mu_);
  auto t = std::unique_ptr<ThreadStats>(new ThreadStats());
  for (uint32_t i = 0; i < allocated_chunks_; ++i) {
    t->chunks_[i].store(new detail::Chunk(), std::memory_order_release);
  }
  threads_.push_back(std::move(t));
  return *threads_.back();
}

void Store::checkSeries(SeriesId id, MetricType type) const {
  if (id.type_ != static_cast<uint8_t>(type)) detail::wrongSeriesType(id.type_, type);
  MESH_RELEASE_ASSERT(id.cell_ < next_cell_, "SeriesId from another Store");
}

namespace {

struct GaugeValue {
  int64_t value = 0;
  bool used = false;
};

// See ThreadStats::add for the cell encoding.
template <typename Threads>
GaugeValue readGauge(const Threads& threads, uint32_t cell) {
  GaugeValue g;
  for (const auto& t : threads) {
    uint64_t c = detail::readCell(*t, cell);
    g.value += static_cast<int64_t>(c) >> 1;
    g.used |= (c & 1) != 0;
  }
  return g;
}

// Merged cells of one series, as a scrape reads them.
struct SeriesValue {
  uint64_t counter = 0;
  GaugeValue gauge;
  std::vector<uint64_t> buckets;  // histograms: per-bucket (not cumulative) counts, +Inf last
  uint64_t count = 0;
  double sum = 0;

  bool used(MetricType type) const {
    switch (type) {
      case MetricType::kCounter:
        return counter != 0;
      case MetricType::kGauge:
        return gauge.used;
      case MetricType::kHistogram:
        return count != 0;
    }
    return false;
  }
};

template <typename Threads>
void readSeries(const Threads& threads, MetricType type, uint32_t cell, uint32_t num_bounds,
                SeriesValue* v) {
  switch (type) {
    case MetricType::kCounter:
      v->counter = 0;
      for (const auto& t : threads) v->counter += detail::readCell(*t, cell);
      return;
    case MetricType::kGauge:
      v->gauge = readGauge(threads, cell);
      return;
    case MetricType::kHistogram:
      v->buckets.assign(num_bounds + 1, 0);
      v->sum = 0;
      for (const auto& t : threads) {
        for (uint32_t i = 0; i <= num_bounds; ++i) v->buckets[i] += detail::readCell(*t, cell + i);
        v->sum += std::bit_cast<double>(detail::readCell(*t, cell + num_bounds + 1));
      }
      v->count = 0;
      for (uint64_t b : v->buckets) v->count += b;
      return;
  }
}

}  // namespace

uint64_t Store::counterValue(SeriesId counter) const {
  std::lock_guard<std::mutex> lock(mu_);
  checkSeries(counter, MetricType::kCounter);
  SeriesValue v;
  readSeries(threads_, MetricType::kCounter, counter.cell_, 0, &v);
  return v.counter;
}

int64_t Store::gaugeValue(SeriesId gauge) const {
  std::lock_guard<std::mutex> lock(mu_);
  checkSeries(gauge, MetricType::kGauge);
  return readGauge(threads_, gauge.cell_).value;
}

HistogramSnapshot Store::histogram(SeriesId histogram) const {
  std::lock_guard<std::mutex> lock(mu_);
  checkSeries(histogram, MetricType::kHistogram);
  SeriesValue v;
  readSeries(threads_, MetricType::kHistogram, histogram.cell_, histogram.num_bounds_, &v);
  HistogramSnapshot h;
  h.bounds.assign(histogram.bounds_, histogram.bounds_ + histogram.num_bounds_);
  h.cumulative = std::move(v.buckets);
  for (size_t i = 1; i < h.cumulative.size(); ++i) h.cumulative[i] += h.cumulative[i - 1];
  h.count = v.count;
  h.sum = v.sum;
  return h;
}

Store::Snapshot Store::snapshot() const {
  Snapshot s;
  std::lock_guard<std::mutex> lock(mu_);
  s.threads.reserve(threads_.size());
  for (const auto& t : threads_) s.threads.push_back(t.get());
  s.families.reserve(families_.size());
  for (const auto& f : families_) {
    s.families.push_back(f.get());
    for (const Series& series : f->series) s.series.push_back(&series);
    s.family_end.push_back(s.series.size());
  }
  return s;
}

namespace {

// "name_suffix{labels}", or "name_suffix" without labels.
void appendSeriesName(std::string* out, std::string_view name, std::string_view suffix,
                      std::string_view labels) {
  out->append(name);
  out->append(suffix);
  if (!labels.empty()) {
    out->push_back('{');
    out->append(labels);
    out->push_back('}');
  }
}

}  // namespace

template <typename Fn>
void Store::forEachSeries(bool used_only, Fn&& fn) const {
  Snapshot snap = snapshot();
  SeriesValue v;
  size_t begin = 0;
  for (size_t f = 0; f < snap.families.size(); ++f) {
    const Family& family = *snap.families[f];
    for (size_t s = begin; s < snap.family_end[f]; ++s) {
      const Series& series = *snap.series[s];
      readSeries(snap.threads, family.spec.type, series.id.cell_, series.id.num_bounds_, &v);
      if (used_only && !v.used(family.spec.type)) continue;
      fn(family, series, v);
    }
    begin = snap.family_end[f];
  }
}

void Store::prometheusText(std::string* out, bool used_only) const {
  const Family* current = nullptr;
  forEachSeries(used_only, [&](const Family& family, const Series& series, const SeriesValue& v) {
    const std::string& name = family.spec.name;
    MetricType type = family.spec.type;
    if (&family != current) {  // the header comes with the family's first printed series
      current = &family;
      if (!family.spec.help.empty()) {
        out->append("# HELP ").append(name).push_back(' ');
        appendEscaped(out, family.spec.help, /*escape_quote=*/false);
        out->push_back('\n');
      }
      out->append("# TYPE ").append(name).push_back(' ');
      out->append(typeName(type)).push_back('\n');
    }
    if (type == MetricType::kHistogram) {
      uint64_t cumulative = 0;
      for (size_t b = 0; b < v.buckets.size(); ++b) {
        cumulative += v.buckets[b];
        out->append(name).append("_bucket{").append(series.labels);
        if (!series.labels.empty()) out->push_back(',');
        out->append("le=\"");
        out->append(b < family.le.size() ? std::string_view(family.le[b]) : "+Inf");
        out->append("\"} ");
        appendInt(out, cumulative);
        out->push_back('\n');
      }
      appendSeriesName(out, name, "_sum", series.labels);
      out->push_back(' ');
      appendDouble(out, v.sum);
      out->push_back('\n');
      appendSeriesName(out, name, "_count", series.labels);
      out->push_back(' ');
      appendInt(out, v.count);
    } else {
      appendSeriesName(out, name, "", series.labels);
      out->push_back(' ');
      if (type == MetricType::kCounter) {
        appendInt(out, v.counter);
      } else {
        appendInt(out, v.gauge.value);
      }
    }
    out->push_back('\n');
  });
}

void Store::plainText(std::string* out, std::string_view filter_substring, bool used_only) const {
  std::string line_name;
  // Appends "name_suffix{labels}: " and returns true when that name passes the filter.
  auto startLine = [&](std::string_view name, std::string_view suffix, std::string_view labels) {
    line_name.clear();
    appendSeriesName(&line_name, name, suffix, labels);
    if (!filter_substring.empty() && line_name.find(filter_substring) == std::string::npos) {
      return false;
    }
    out->append(line_name).append(": ");
    return true;
  };
  forEachSeries(used_only, [&](const Family& family, const Series& series, const SeriesValue& v) {
    const std::string& name = family.spec.name;
    switch (family.spec.type) {
      case MetricType::kCounter:
        if (startLine(name, "", series.labels)) {
          appendInt(out, v.counter);
          out->push_back('\n');
        }
        break;
      case MetricType::kGauge:
        if (startLine(name, "", series.labels)) {
          appendInt(out, v.gauge.value);
          out->push_back('\n');
        }
        break;
      case MetricType::kHistogram:
        if (startLine(name, "_count", series.labels)) {
          appendInt(out, v.count);
          out->push_back('\n');
        }
        if (startLine(name, "_sum", series.labels)) {
          appendDouble(out, v.sum);
          out->push_back('\n');
        }
        break;
    }
  });
}

FamilyId registerFamily(Store& store, std::string name, MetricType type, std::string help,
                        std::vector<std::string> label_names, std::vector<double> bucket_bounds) {
  FamilySpec spec;
  spec.name = std::move(name);
  spec.help = std::move(help);
  spec.type = type;
  spec.label_names = std::move(label_names);
  spec.bucket_bounds = std::move(bucket_bounds);
  StatusOr<FamilyId> id = store.addFamily(std::move(spec));
  MESH_RELEASE_ASSERT(id.ok(), id.status().message().c_str());
  return *id;
}

}  // namespace mesh::stats
