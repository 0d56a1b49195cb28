#include "core/config/yaml_proto.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

namespace mesh::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;

// Guards against hostile input: nesting deeper than any real config, and alias expansion
// ("billion laughs"), since an alias is walked once per use.
constexpr int kMaxDepth = 100;
constexpr size_t kMaxValues = 1'000'000;

// --- yaml-cpp boundary -------------------------------------------------------------------------

// The one place where yaml-cpp's exceptions are caught: runs fn and turns a YAML::Exception into
// an error at the line of the exception's mark.
template <typename Fn>
std::optional<ValidationError> runYaml(const std::string& file, int first_line, Fn&& fn) {
  try {
    fn();
    return std::nullopt;
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() ? 0 : first_line + e.mark.line;
    return ValidationError{file, line, "", "invalid YAML: " + e.msg};
  }
}

// yaml-cpp 0.7 (Debian 12) loops forever in LoadAll, allocating a null document per turn, when a
// document holds a token no node can start with (a stray ',' at the top level: upstream issue
// jbeder/yaml-cpp#1040, fixed after 0.8). A first pass through the event parser notices a
// document that starts where the previous one did, i.e. consumed nothing, and throws instead.
class ProgressCheck : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (started_ && mark.pos == last_start_) {
      throw YAML::ParserException(mark, "unexpected token here");
    }
    started_ = true;
    last_start_ = mark.pos;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  bool started_ = false;
  int last_start_ = 0;
};

// YAML::LoadAll that cannot hang on the input above. Throws YAML::Exception like LoadAll.
std::vector<YAML::Node> loadAllDocuments(const std::string& text) {
  {
    std::istringstream in(text);
    YAML::Parser parser(in);
    ProgressCheck check;
    while (parser.HandleNextDocument(check)) {
    }
  }
  return YAML::LoadAll(text);
}

// --- small text helpers --------------------------------------------------------------------------

// A scalar as shown in an error: quoted, long values cut.
std::string quote(std::string_view s) {
  constexpr size_t kMax = 48;
  std::string out = "'";
  for (char c : s.substr(0, kMax)) {
    if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  if (s.size() > kMax) out += "...";
  out += '\'';
  return out;
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return quote(n.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "null";
  }
}

bool isQuotedOrStr(const YAML::Node& n) {
  return n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str";
}

// yaml-cpp reads "<<: *base" as an ordinary key; silently storing it would drop the merge.
bool isMergeKey(const YAML::Node& key) { return key.Scalar() == "<<" && !isQuotedOrStr(key); }
constexpr const char* kMergeKeyError = "YAML merge keys ('<<') are not supported";

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// Lower case without underscores: "Connect_Timeout" and "connectTimeout" compare equal.
std::string foldName(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '_') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// " (did you mean 'connectTimeout'?)" for a near miss, else "".
std::string suggestField(const Descriptor* d, std::string_view key) {
  const std::string folded = foldName(key);
  const FieldDescriptor* best = nullptr;
  size_t best_distance = 3;  // only near misses
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const size_t distance = editDistance(folded, foldName(f->name()));
    if (distance < best_distance && distance * 2 <= folded.size()) {
      best = f;
      best_distance = distance;
    }
  }
  return best ? " (did you mean '" + best->json_name() + "'?)" : "";
}

// --- scalar parsing ------------------------------------------------------------------------------

// Decimal, 0x hex or 0o octal, with an optional sign. False if malformed or over 64 bits.
bool parseInteger(std::string_view s, bool* negative, uint64_t* magnitude, bool* overflow) {
  *negative = false;
  *overflow = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    *negative = s[0] == '-';
    s.remove_prefix(1);
  }
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  } else if (s.size() > 2 && s[0] == '0' && s[1] == 'o') {
    base = 8;
    s.remove_prefix(2);
  }
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *magnitude, base);
  if (end != s.data() + s.size()) return false;
  if (ec == std::errc::result_out_of_range) *overflow = true;
  return ec == std::errc() || *overflow;
}

// A number in YAML or JSON spelling, including .inf / .nan and Infinity / NaN.
std::optional<double> parseDouble(std::string_view s) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf" || s == "Infinity") return kInf;
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF" || s == "-Infinity") return -kInf;
  if (s == ".nan" || s == ".NaN" || s == ".NAN" || s == "NaN") {
    return std::numeric_limits<double>::quiet_NaN();
  }
  // from_chars takes neither '+' nor YAML's spellings, but does take "inf" and "nan": only
  // numbers that start with a digit or '.' get to it.
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  const std::string_view unsigned_part = !s.empty() && s[0] == '-' ? s.substr(1) : s;
  if (unsigned_part.empty() ||
      !(std::isdigit(static_cast<unsigned char>(unsigned_part[0])) || unsigned_part[0] == '.')) {
    return std::nullopt;
  }
  double d = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return d;
}

std::optional<bool> parseBool(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

// Standard or URL-safe alphabet, padding optional, line breaks ignored (as protobuf's JSON
// mapping, plus block scalars).
bool decodeBase64(std::string_view in, std::string* out) {
  uint32_t bits = 0;
  int nbits = 0;
  size_t padding = 0;
  size_t symbols = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+' || c == '-') {
      v = 62;
    } else if (c == '/' || c == '_') {
      v = 63;
    } else if (c == '=') {
      ++padding;
      continue;
    } else if (c == '\n' || c == '\r' || c == ' ') {
      continue;
    } else {
      return false;
    }
    if (padding > 0) return false;  // data after padding
    ++symbols;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out->push_back(static_cast<char>((bits >> nbits) & 0xff));
    }
  }
  if (symbols % 4 == 1 || padding > 2) return false;
  if (padding > 0 && (symbols + padding) % 4 != 0) return false;
  return true;
}

// Nanoseconds per unit; two-letter units first so that "ms" is not read as "m".
constexpr std::pair<std::string_view, uint64_t> kDurationUnits[] = {
    {"ns", 1},         {"us", 1'000},        {"\xC2\xB5s", 1'000},  // "µs"
    {"ms", 1'000'000}, {"s", 1'000'000'000}, {"m", 60'000'000'000}, {"h", 3'600'000'000'000},
};

// Go-style durations: "1.5s", "250ms", "2h45m", "100us", "10ns"; a bare number is seconds.
// Returns an error message, or "" with *seconds and *nanos set.
std::string parseDuration(std::string_view s, int64_t* seconds, int32_t* nanos) {
  using U128 = unsigned __int128;
  constexpr U128 kNanosPerSecond = 1'000'000'000;
  // google.protobuf.Duration's range: about 10,000 years.
  constexpr U128 kMaxNanos = U128{315'576'000'000} * kNanosPerSecond + 999'999'999;
  const std::string malformed =
      "invalid duration " + quote(s) + "; expected e.g. '1.5s', '250ms', '2h45m'";
  if (!s.empty() && s[0] == '-') return "duration must not be negative, got " + quote(s);
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return malformed;
  const bool bare = s.find_first_not_of("0123456789.") == std::string_view::npos;
  U128 total = 0;
  std::string_view rest = s;
  while (!rest.empty()) {
    const size_t int_len = std::min(rest.find_first_not_of("0123456789"), rest.size());
    std::string_view int_part = rest.substr(0, int_len);
    rest.remove_prefix(int_len);
    std::string_view frac_part;
    if (!rest.empty() && rest[0] == '.') {
      rest.remove_prefix(1);
      const size_t frac_len = std::min(rest.find_first_not_of("0123456789"), rest.size());
      frac_part = rest.substr(0, std::min<size_t>(frac_len, 18));  // finer than 1ns is dropped
      rest.remove_prefix(frac_len);
    }
    if (int_part.empty() && frac_part.empty()) return malformed;
    uint64_t unit = 0;  // nanoseconds
    if (bare) {
      if (!rest.empty()) return malformed;  // "1.2.3"
      unit = 1'000'000'000;
    } else {
      for (const auto& [name, ns] : kDurationUnits) {
        if (rest.substr(0, name.size()) == name) {
          unit = ns;
          rest.remove_prefix(name.size());
          break;
        }
      }
      if (unit == 0) return malformed;
    }
    if (int_part.size() > 19) return "duration " + quote(s) + " is out of range";
    uint64_t whole = 0;
    std::from_chars(int_part.data(), int_part.data() + int_part.size(), whole);  // "" leaves 0
    uint64_t frac = 0;
    U128 scale = 1;
    if (!frac_part.empty()) {
      std::from_chars(frac_part.data(), frac_part.data() + frac_part.size(), frac);
      for (size_t i = 0; i < frac_part.size(); ++i) scale *= 10;
    }
    total += U128{whole} * unit + U128{frac} * unit / scale;
    if (total > kMaxNanos) return "duration " + quote(s) + " is out of range";
  }
  *seconds = static_cast<int64_t>(total / kNanosPerSecond);
  *nanos = static_cast<int32_t>(total % kNanosPerSecond);
  return "";
}

// What a scalar field wants, for "expected ..., got ..." messages.
std::string expectedKind(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
      return "an integer";
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "an unsigned integer";
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return "a number";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "true or false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return "a value of " + f->enum_type()->name();
    case FieldDescriptor::CPPTYPE_STRING:
      return f->type() == FieldDescriptor::TYPE_BYTES ? "base64 bytes" : "a string";
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "a mapping";
  }
  return "a value";
}

// One converted scalar, ready to be set or added through reflection.
struct Scalar {
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  bool b = false;
  int enum_number = 0;
  std::string s;
};

void storeScalar(Message* m, const FieldDescriptor* f, const Scalar& v) {
  const Reflection* r = m->GetReflection();
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      rep ? r->AddInt32(m, f, static_cast<int32_t>(v.i))
          : r->SetInt32(m, f, static_cast<int32_t>(v.i));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      rep ? r->AddInt64(m, f, v.i) : r->SetInt64(m, f, v.i);
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      rep ? r->AddUInt32(m, f, static_cast<uint32_t>(v.u))
          : r->SetUInt32(m, f, static_cast<uint32_t>(v.u));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      rep ? r->AddUInt64(m, f, v.u) : r->SetUInt64(m, f, v.u);
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      rep ? r->AddDouble(m, f, v.d) : r->SetDouble(m, f, v.d);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      rep ? r->AddFloat(m, f, static_cast<float>(v.d)) : r->SetFloat(m, f, static_cast<float>(v.d));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      rep ? r->AddBool(m, f, v.b) : r->SetBool(m, f, v.b);
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      rep ? r->AddEnumValue(m, f, v.enum_number) : r->SetEnumValue(m, f, v.enum_number);
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      rep ? r->AddString(m, f, v.s) : r->SetString(m, f, v.s);
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      MESH_RELEASE_ASSERT(false, "storeScalar called for a message field");
  }
}

// --- the loader ----------------------------------------------------------------------------------

// Where a value sits: the path as written (for errors) and the same path spelled with json_names
// (also recorded in the SourceMap, for code that builds paths from descriptors).
struct Path {
  std::string written;
  std::string canonical;

  static std::string join(const std::string& base, std::string_view key) {
    return base.empty() ? std::string(key) : base + "." + std::string(key);
  }
  Path field(std::string_view key, std::string_view json_name) const {
    return {join(written, key), join(canonical, json_name)};
  }
  Path index(size_t i) const {
    const std::string suffix = "[" + std::to_string(i) + "]";
    return {written + suffix, canonical + suffix};
  }
  Path mapKey(std::string_view key) const {
    const std::string suffix = "[" + std::string(key) + "]";
    return {written + suffix, canonical + suffix};
  }
};

class Loader {
 public:
  Loader(const LoadOptions& opts, LoadResult* result) : opts_(opts), result_(*result) {}

  void loadDocuments(const std::vector<YAML::Node>& docs, Message* msg) {
    const YAML::Node* root = nullptr;
    for (const YAML::Node& doc : docs) {
      if (doc.IsNull()) continue;  // "---" with nothing after it
      if (root != nullptr) {
        fail(lineOf(doc), Path{}, "expected a single YAML document, found another one here");
        return;
      }
      root = &doc;
    }
    if (root == nullptr) return;
    const Path path{opts_.path_prefix, opts_.path_prefix};
    if (!path.written.empty()) record(path, lineOf(*root));
    loadMessage(*root, lineOf(*root), path, msg);
  }

 private:
  // Mark() is 0-based.
  int lineOf(const YAML::Node& n) const { return opts_.first_line + n.Mark().line; }

  void fail(int line, const Path& p, std::string message) {
    result_.errors.add(opts_.file, line, p.written, std::move(message));
  }

  void record(const Path& p, int line) {
    result_.source_map.set(p.written, line);
    if (p.canonical != p.written) result_.source_map.set(p.canonical, line);
  }

  // Counts one more value; false (after one error) once the document is too large.
  bool countValue(int line, const Path& p) {
    if (++values_ <= kMaxValues) return true;
    if (values_ == kMaxValues + 1) {
      fail(line, p,
           "document too large: more than " + std::to_string(kMaxValues) +
               " values (alias expansion?)");
    }
    return false;
  }

  // A message from a node; the node is null only for google.protobuf.Value (null_value).
  void loadMessage(const YAML::Node& n, int line, const Path& p, Message* m) {
    if (!countValue(line, p)) return;
    if (depth_ >= kMaxDepth) {
      fail(line, p, "nested deeper than " + std::to_string(kMaxDepth) + " levels");
      return;
    }
    ++depth_;
    const Descriptor* d = m->GetDescriptor();
    switch (d->well_known_type()) {
      case Descriptor::WELLKNOWNTYPE_DURATION:
        loadDuration(n, line, p, m);
        break;
      case Descriptor::WELLKNOWNTYPE_TIMESTAMP:
        loadTimestamp(n, line, p, m);
        break;
      case Descriptor::WELLKNOWNTYPE_DOUBLEVALUE:
      case Descriptor::WELLKNOWNTYPE_FLOATVALUE:
      case Descriptor::WELLKNOWNTYPE_INT64VALUE:
      case Descriptor::WELLKNOWNTYPE_UINT64VALUE:
      case Descriptor::WELLKNOWNTYPE_INT32VALUE:
      case Descriptor::WELLKNOWNTYPE_UINT32VALUE:
      case Descriptor::WELLKNOWNTYPE_STRINGVALUE:
      case Descriptor::WELLKNOWNTYPE_BYTESVALUE:
      case Descriptor::WELLKNOWNTYPE_BOOLVALUE: {
        const FieldDescriptor* value = d->FindFieldByNumber(1);
        Scalar v;
        if (parseScalar(value, n, line, p, &v)) storeScalar(m, value, v);
        break;
      }
      case Descriptor::WELLKNOWNTYPE_STRUCT:
        // Struct.fields is map<string, Value>; its keys read as fields: "spec.http[0]".
        loadMap(n, line, p, d->FindFieldByNumber(1), m, /*keys_as_fields=*/true);
        break;
      case Descriptor::WELLKNOWNTYPE_LISTVALUE:
        loadRepeated(n, line, p, d->FindFieldByNumber(1), m);
        break;
      case Descriptor::WELLKNOWNTYPE_VALUE:
        loadValue(n, line, p, m);
        break;
      case Descriptor::WELLKNOWNTYPE_ANY:
        fail(line, p, "google.protobuf.Any is not supported in YAML config");
        break;
      default:
        loadFields(n, line, p, m);
        break;
    }
    --depth_;
  }

  // A plain message from a mapping, key by key.
  void loadFields(const YAML::Node& n, int line, const Path& p, Message* m) {
    if (!n.IsMap()) {
      fail(line, p, "expected a mapping, got " + describe(n));
      return;
    }
    const Descriptor* d = m->GetDescriptor();
    std::vector<std::pair<const FieldDescriptor*, std::string>> seen;        // field, key
    std::vector<std::pair<const OneofDescriptor*, std::string>> oneofs_set;  // oneof, key
    for (const auto& kv : n) {  // by value: it->first would dangle
      const YAML::Node& key = kv.first;
      const YAML::Node& value = kv.second;
      const int key_line = lineOf(key);
      if (!key.IsScalar()) {
        fail(key_line, p, "field names must be plain strings, got " + describe(key));
        continue;
      }
      if (isMergeKey(key)) {
        fail(key_line, p, kMergeKeyError);
        continue;
      }
      const std::string& name = key.Scalar();
      const FieldDescriptor* f = findField(d, name);
      if (f == nullptr) {
        ValidationError e{opts_.file, key_line, p.written,
                          "unknown field " + quote(name) + suggestField(d, name)};
        if (opts_.unknown_fields_are_errors) {
          result_.errors.add(std::move(e));
        } else {
          result_.warnings.push_back(std::move(e));
        }
        continue;
      }
      auto dup = std::find_if(seen.begin(), seen.end(), [&](auto& s) { return s.first == f; });
      if (dup != seen.end()) {
        fail(key_line, p,
             dup->second == name ? "duplicate field " + quote(name)
                                 : "duplicate field " + quote(name) + " (already set as " +
                                       quote(dup->second) + ")");
        continue;
      }
      seen.emplace_back(f, name);
      const Path fp = p.field(name, f->json_name());
      record(fp, key_line);
      if (value.IsNull()) continue;  // leaves the field unset
      if (const OneofDescriptor* oneof = f->real_containing_oneof()) {
        auto other = std::find_if(oneofs_set.begin(), oneofs_set.end(),
                                  [&](auto& s) { return s.first == oneof; });
        if (other != oneofs_set.end()) {
          fail(key_line, p,
               "fields " + quote(other->second) + " and " + quote(name) + " are both in oneof " +
                   quote(oneof->name()) + "; set only one");
          continue;
        }
        oneofs_set.emplace_back(oneof, name);
      }
      loadField(value, lineOf(value), fp, f, m);
    }
  }

  static const FieldDescriptor* findField(const Descriptor* d, const std::string& name) {
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (f->json_name() == name || f->name() == name) return f;
    }
    return nullptr;
  }

  // A non-null value for field f of m.
  void loadField(const YAML::Node& n, int line, const Path& p, const FieldDescriptor* f,
                 Message* m) {
    if (f->is_map()) {
      loadMap(n, line, p, f, m, /*keys_as_fields=*/false);
    } else if (f->is_repeated()) {
      loadRepeated(n, line, p, f, m);
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      loadMessage(n, line, p, m->GetReflection()->MutableMessage(m, f));
    } else {
      Scalar v;
      if (parseScalar(f, n, line, p, &v)) storeScalar(m, f, v);
    }
  }

  static bool isValueMessage(const FieldDescriptor* f) {
    return f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
           f->message_type()->well_known_type() == Descriptor::WELLKNOWNTYPE_VALUE;
  }

  void loadRepeated(const YAML::Node& n, int line, const Path& p, const FieldDescriptor* f,
                    Message* m) {
    if (!n.IsSequence()) {
      fail(line, p, "expected a list, got " + describe(n));
      return;
    }
    const Reflection* r = m->GetReflection();
    size_t i = 0;
    for (const YAML::Node& elem : n) {
      const Path ep = p.index(i++);
      const int elem_line = lineOf(elem);
      if (!countValue(elem_line, ep)) return;
      record(ep, elem_line);
      if (elem.IsNull() && !isValueMessage(f)) {
        fail(elem_line, ep, "null is not allowed in a list");
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        loadMessage(elem, elem_line, ep, r->AddMessage(m, f));
      } else {
        Scalar v;
        if (parseScalar(f, elem, elem_line, ep, &v)) storeScalar(m, f, v);
      }
    }
  }

  // A map field from a mapping. Map keys read as "labels[app]", or as fields ("metadata.app")
  // for Struct, whose keys are the field names of free-form config.
  void loadMap(const YAML::Node& n, int line, const Path& p, const FieldDescriptor* f, Message* m,
               bool keys_as_fields) {
    if (!n.IsMap()) {
      fail(line, p, "expected a mapping, got " + describe(n));
      return;
    }
    const FieldDescriptor* key_f = f->message_type()->map_key();
    const FieldDescriptor* value_f = f->message_type()->map_value();
    std::set<std::string> seen;
    for (const auto& kv : n) {  // by value: it->first would dangle
      const YAML::Node& key = kv.first;
      const YAML::Node& value = kv.second;
      const int key_line = lineOf(key);
      if (!key.IsScalar()) {
        fail(key_line, p, "map keys must be scalars, got " + describe(key));
        continue;
      }
      if (isMergeKey(key)) {
        fail(key_line, p, kMergeKeyError);
        continue;
      }
      const std::string& key_text = key.Scalar();
      const Path ep = keys_as_fields ? p.field(key_text, key_text) : p.mapKey(key_text);
      if (!countValue(key_line, ep)) return;
      if (!seen.insert(key_text).second) {
        fail(key_line, p, "duplicate key " + quote(key_text));
        continue;
      }
      record(ep, key_line);
      Scalar k;
      if (!parseScalar(key_f, key, key_line, ep, &k)) continue;
      Message* entry = m->GetReflection()->AddMessage(m, f);
      storeScalar(entry, key_f, k);
      if (value.IsNull() && !isValueMessage(value_f)) continue;  // the value's default
      const int value_line = value.IsNull() ? key_line : lineOf(value);
      if (value_f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        loadMessage(value, value_line, ep, entry->GetReflection()->MutableMessage(entry, value_f));
      } else {
        Scalar v;
        if (parseScalar(value_f, value, value_line, ep, &v)) storeScalar(entry, value_f, v);
      }
    }
  }

  // google.protobuf.Value from any YAML: plain scalars are typed as YAML's core schema does
  // (true/false, numbers), quoted ones are strings.
  void loadValue(const YAML::Node& n, int line, const Path& p, Message* m) {
    const Descriptor* d = m->GetDescriptor();
    const Reflection* r = m->GetReflection();
    switch (n.Type()) {
      case YAML::NodeType::Map:
        loadMessage(n, line, p, r->MutableMessage(m, d->FindFieldByName("struct_value")));
        return;
      case YAML::NodeType::Sequence:
        loadMessage(n, line, p, r->MutableMessage(m, d->FindFieldByName("list_value")));
        return;
      case YAML::NodeType::Scalar:
        break;
      default:
        r->SetEnumValue(m, d->FindFieldByName("null_value"), 0);
        return;
    }
    const std::string& s = n.Scalar();
    if (!isQuotedOrStr(n)) {
      if (std::optional<bool> b = parseBool(s)) {
        r->SetBool(m, d->FindFieldByName("bool_value"), *b);
        return;
      }
      bool negative;
      uint64_t magnitude;
      bool overflow;
      std::optional<double> number;
      if (parseInteger(s, &negative, &magnitude, &overflow) && !overflow) {
        number = static_cast<double>(magnitude) * (negative ? -1 : 1);  // hex, octal too
      } else {
        number = parseDouble(s);
      }
      if (number && !std::isfinite(*number)) {
        fail(line, p, "number " + quote(s) + " cannot be represented in JSON; quote it");
        return;
      }
      if (number) {
        r->SetDouble(m, d->FindFieldByName("number_value"), *number);
        return;
      }
    }
    r->SetString(m, d->FindFieldByName("string_value"), s);
  }

  void loadDuration(const YAML::Node& n, int line, const Path& p, Message* m) {
    if (!n.IsScalar()) {
      fail(line, p, "expected a duration such as '1.5s', got " + describe(n));
      return;
    }
    int64_t seconds = 0;
    int32_t nanos = 0;
    std::string error = parseDuration(n.Scalar(), &seconds, &nanos);
    if (!error.empty()) {
      fail(line, p, std::move(error));
      return;
    }
    setSecondsNanos(m, seconds, nanos);
  }

  void loadTimestamp(const YAML::Node& n, int line, const Path& p, Message* m) {
    google::protobuf::Timestamp ts;
    if (!n.IsScalar() || !google::protobuf::util::TimeUtil::FromString(n.Scalar(), &ts)) {
      fail(line, p, "expected an RFC 3339 time such as '2024-01-31T12:00:00Z', got " + describe(n));
      return;
    }
    setSecondsNanos(m, ts.seconds(), ts.nanos());
  }

  // Duration and Timestamp, through reflection: m may be a dynamic message.
  static void setSecondsNanos(Message* m, int64_t seconds, int32_t nanos) {
    const Descriptor* d = m->GetDescriptor();
    m->GetReflection()->SetInt64(m, d->FindFieldByNumber(1), seconds);
    m->GetReflection()->SetInt32(m, d->FindFieldByNumber(2), nanos);
  }

  // Converts a scalar node for field f (or a map key / value field); false after an error.
  bool parseScalar(const FieldDescriptor* f, const YAML::Node& n, int line, const Path& p,
                   Scalar* out) {
    if (!n.IsScalar()) {
      fail(line, p, "expected " + expectedKind(f) + ", got " + describe(n));
      return false;
    }
    const std::string& s = n.Scalar();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64:
        return parseIntegerField(f, s, line, p, out);
      case FieldDescriptor::CPPTYPE_FLOAT:
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        std::optional<double> d = parseDouble(s);
        if (!d) {
          fail(line, p, "expected a number, got " + quote(s));
          return false;
        }
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT && std::isfinite(*d) &&
            std::fabs(*d) > std::numeric_limits<float>::max()) {
          fail(line, p, quote(s) + " is out of range for float");
          return false;
        }
        out->d = *d;
        return true;
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        std::optional<bool> b = parseBool(s);
        if (!b) {
          fail(line, p, "expected true or false, got " + quote(s));
          return false;
        }
        out->b = *b;
        return true;
      }
      case FieldDescriptor::CPPTYPE_ENUM:
        return parseEnum(f, s, line, p, out);
      case FieldDescriptor::CPPTYPE_STRING:
        if (f->type() == FieldDescriptor::TYPE_BYTES) {
          if (!decodeBase64(s, &out->s)) {
            fail(line, p, "expected base64 bytes, got " + quote(s));
            return false;
          }
          return true;
        }
        out->s = s;
        return true;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        MESH_RELEASE_ASSERT(false, "parseScalar called for a message field");
    }
    return false;
  }

  bool parseIntegerField(const FieldDescriptor* f, const std::string& s, int line, const Path& p,
                         Scalar* out) {
    const bool is_unsigned = f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32 ||
                             f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
    const bool is_64 = f->cpp_type() == FieldDescriptor::CPPTYPE_INT64 ||
                       f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
    bool negative;
    uint64_t magnitude;
    bool overflow;
    if (!parseInteger(s, &negative, &magnitude, &overflow)) {
      fail(line, p, "expected " + expectedKind(f) + ", got " + quote(s));
      return false;
    }
    const std::string type = f->type_name();
    if (is_unsigned) {
      if (negative && (magnitude != 0 || overflow)) {
        fail(line, p, "expected an unsigned integer, got a negative value " + quote(s));
        return false;
      }
      const uint64_t max =
          is_64 ? std::numeric_limits<uint64_t>::max() : std::numeric_limits<uint32_t>::max();
      if (overflow || magnitude > max) {
        fail(line, p,
             quote(s) + " is out of range for " + type + " (max " + std::to_string(max) + ")");
        return false;
      }
      out->u = magnitude;
      return true;
    }
    const int64_t min =
        is_64 ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int32_t>::min();
    const int64_t max =
        is_64 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int32_t>::max();
    // Magnitudes are compared unsigned: |min| = max + 1.
    const uint64_t limit = negative ? static_cast<uint64_t>(max) + 1 : static_cast<uint64_t>(max);
    if (overflow || magnitude > limit) {
      fail(line, p,
           quote(s) + " is out of range for " + type + " (" + std::to_string(min) + " to " +
               std::to_string(max) + ")");
      return false;
    }
    out->i = negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
    return true;
  }

  bool parseEnum(const FieldDescriptor* f, const std::string& s, int line, const Path& p,
                 Scalar* out) {
    const auto* e = f->enum_type();
    const EnumValueDescriptor* v = e->FindValueByName(s);
    bool negative;
    uint64_t magnitude;
    bool overflow;
    if (v == nullptr && parseInteger(s, &negative, &magnitude, &overflow) && !overflow &&
        magnitude <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
      v = e->FindValueByNumber(static_cast<int>(magnitude) * (negative ? -1 : 1));
    }
    if (v == nullptr) {
      std::string allowed;
      for (int i = 0; i < e->value_count(); ++i) {
        allowed += (i == 0 ? "" : ", ") + e->value(i)->name();
      }
      fail(line, p, "unknown value " + quote(s) + "; expected one of " + allowed);
      return false;
    }
    out->enum_number = v->number();
    return true;
  }

  const LoadOptions& opts_;
  LoadResult& result_;
  int depth_ = 0;
  size_t values_ = 0;
};

// --- document splitting --------------------------------------------------------------------------

// "---" or "..." at column 0, alone or followed by a space, tab or line break.
bool isMarker(std::string_view line, std::string_view marker) {
  if (line.substr(0, 3) != marker) return false;
  return line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r' ||
         line[3] == '\n';
}

// True if the line holds YAML content: not blank, not a comment, not a directive.
bool hasContent(std::string_view line) {
  if (!line.empty() && line[0] == '%') return false;
  const size_t first = line.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && line[first] != '#';
}

// The whole file, or an error message ("No such file or directory").
std::string readFile(const std::string& path, std::string* out) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return std::strerror(EISDIR);
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::strerror(errno != 0 ? errno : EIO);
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) return std::strerror(EIO);
  return "";
}

}  // namespace

void SourceMap::set(std::string path, int line) { lines_[std::move(path)] = line; }

int SourceMap::lineOf(std::string_view path) const {
  // Try the path, then each shorter prefix that ends before a '.' or '['.
  for (size_t end = path.size();;) {
    auto it = lines_.find(path.substr(0, end));
    if (it != lines_.end()) return it->second;
    if (end == 0) return 0;
    end = path.find_last_of(".[", end - 1);
    if (end == std::string_view::npos) return 0;
  }
}

LoadResult loadYaml(std::string_view text, Message* msg, const LoadOptions& opts) {
  LoadResult result;
  msg->Clear();
  Loader loader(opts, &result);
  std::optional<ValidationError> error = runYaml(opts.file, opts.first_line, [&] {
    const std::vector<YAML::Node> docs = loadAllDocuments(std::string(text));
    loader.loadDocuments(docs, msg);
  });
  if (error) result.errors.add(std::move(*error));
  return result;
}

LoadResult loadYamlFile(const std::string& path, Message* msg, LoadOptions opts) {
  if (opts.file.empty()) opts.file = path;
  std::string text;
  std::string error = readFile(path, &text);
  if (!error.empty()) {
    LoadResult result;
    msg->Clear();
    result.errors.add(opts.file, 0, "", "cannot read file: " + error);
    return result;
  }
  return loadYaml(text, msg, opts);
}

StatusOr<std::vector<YamlDocument>> splitYamlDocuments(std::string_view text,
                                                       const std::string& file) {
  std::vector<YamlDocument> docs;
  YamlDocument current{"", 1};
  bool current_has_content = false;
  auto flush = [&](int next_first_line) {
    if (current_has_content) docs.push_back(std::move(current));
    current = YamlDocument{"", next_first_line};
    current_has_content = false;
  };
  int line_number = 1;
  for (size_t pos = 0; pos < text.size(); ++line_number) {
    const size_t eol = text.find('\n', pos);
    const size_t end = eol == std::string_view::npos ? text.size() : eol + 1;
    const std::string_view line = text.substr(pos, end - pos);
    pos = end;
    if (isMarker(line, "---")) {
      flush(line_number);
      current_has_content = hasContent(line.substr(3));
      current.text.append(line);
    } else if (isMarker(line, "...")) {
      current.text.append(line);
      flush(line_number + 1);
    } else {
      current_has_content = current_has_content || hasContent(line);
      current.text.append(line);
    }
  }
  flush(line_number);

  ValidationErrors errors;
  for (const YamlDocument& doc : docs) {
    std::optional<ValidationError> error =
        runYaml(file, doc.first_line, [&] { loadAllDocuments(doc.text); });
    if (error) errors.add(std::move(*error));
  }
  if (!errors.empty()) return errors.toStatus();
  return docs;
}

std::string toJson(const Message& msg, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  std::string out;
  const auto status = google::protobuf::util::MessageToJsonString(msg, &out, options);
  if (status.ok()) return out;
  std::string escaped;
  for (char c : status.ToString()) {
    if (c == '"' || c == '\\') {
      escaped += '\\';
      escaped += c;
    } else if (static_cast<unsigned char>(c) >= 0x20) {
      escaped += c;
    }
  }
  return "{\"error\": \"" + escaped + "\"}";
}

}  // namespace mesh::config
