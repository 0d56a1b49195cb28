#include "config/resource.h"

#include <fstream>
#include <sstream>

#include "config/v1/objects.pb.h"

namespace mesh::config {
namespace {

constexpr std::string_view kNetworkingGroup = "networking.istio.io";
constexpr std::string_view kSecurityGroup = "security.istio.io";

struct KindInfo {
  std::string_view name;
  Kind kind;
  std::string_view group = kNetworkingGroup;
};
constexpr KindInfo kKinds[] = {
    {"VirtualService", Kind::kVirtualService},
    {"DestinationRule", Kind::kDestinationRule},
    {"Gateway", Kind::kGateway},
    {"ServiceEntry", Kind::kServiceEntry},
    {"WorkloadEntry", Kind::kWorkloadEntry},
    {"Sidecar", Kind::kSidecar},
    {"PeerAuthentication", Kind::kPeerAuthentication, kSecurityGroup},
};

const KindInfo* findKind(std::string_view name) {
  for (const KindInfo& k : kKinds) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

std::string group(std::string_view api_version) {
  const size_t slash = api_version.find('/');
  return slash == std::string_view::npos ? "" : std::string(api_version.substr(0, slash));
}

// Loads the whole object into its typed envelope and moves the parts into *out.
template <typename Envelope, typename Spec>
bool loadTyped(const YamlDocument& doc, const std::string& file, Resource* out,
               LoadedConfig* loaded) {
  Envelope envelope;
  LoadResult r = loadYaml(doc.text, &envelope,
                          {.file = file,
                           .unknown_fields_are_errors = false,
                           .path_prefix = "",
                           .first_line = doc.first_line});
  for (ValidationError& w : r.warnings) loaded->warnings.push_back(std::move(w));
  out->source_map = std::move(r.source_map);
  if (!r.ok()) {
    loaded->errors.append(r.errors);
    return false;
  }
  const auto& meta = envelope.metadata();
  out->name = meta.name();
  if (!meta.namespace_().empty()) {
    out->namespace_name = meta.namespace_();
    out->namespace_set = true;
  }
  out->labels.insert(meta.labels().begin(), meta.labels().end());
  out->annotations.insert(meta.annotations().begin(), meta.annotations().end());
  out->spec = Spec(std::move(*envelope.mutable_spec()));
  return true;
}

void loadDocument(const YamlDocument& doc, const std::string& file, LoadedConfig* loaded) {
  // First pass: only apiVersion and kind; everything else is ignored here.
  mesh::config::v1::TypeMeta type;
  LoadResult r = loadYaml(doc.text, &type,
                          {.file = file,
                           .unknown_fields_are_errors = false,
                           .path_prefix = "",
                           .first_line = doc.first_line});
  int line = 0;
  for (const char* key : {"apiVersion", "kind"}) {
    const int l = r.source_map.lineOf(key);
    if (l > 0 && (line == 0 || l < line)) line = l;
  }
  if (line == 0) line = doc.first_line;
  if (!r.ok()) {
    loaded->errors.append(r.errors);
    ++loaded->failed_objects;
    return;
  }
  if (type.kind().empty() || type.api_version().empty()) {
    const std::string missing = type.kind().empty() ? "kind" : "apiVersion";
    if (r.source_map.empty()) {  // not a mapping at all
      loaded->errors.add(file, line, "", "expected a Kubernetes object with apiVersion and kind");
    } else {
      loaded->errors.add(file, line, missing, "required field is missing");
    }
    ++loaded->failed_objects;
    return;
  }
  const std::string g = group(type.api_version());
  const KindInfo* info = findKind(type.kind());
  const bool istio_group = g == kNetworkingGroup || g == kSecurityGroup;
  if (!istio_group || info == nullptr || info->group != g) {
    loaded->notes.push_back(
        file + ":" + std::to_string(line) + ": skipped " + type.kind() + " (" + type.api_version() +
        "): " + (istio_group ? "kind not supported yet" : "not an Istio networking resource"));
    return;
  }
  if (g == kSecurityGroup && !isSecurityApiVersion(type.api_version())) {
    loaded->errors.add(file, r.source_map.lineOf("apiVersion"), "apiVersion",
                       "unsupported version '" + type.api_version() +
                           "'; expected security.istio.io/v1beta1 or v1");
    ++loaded->failed_objects;
    return;
  }
  if (g == kNetworkingGroup && !isNetworkingApiVersion(type.api_version())) {
    loaded->errors.add(file, r.source_map.lineOf("apiVersion"), "apiVersion",
                       "unsupported version '" + type.api_version() +
                           "'; expected networking.istio.io/v1alpha3, v1beta1 or v1");
    ++loaded->failed_objects;
    return;
  }

  Resource res;
  res.kind = info->kind;
  res.api_version = type.api_version();
  res.file = file;
  res.line = line;
  bool ok = false;
  switch (info->kind) {
    case Kind::kVirtualService:
      ok = loadTyped<v1::VirtualServiceObject, networking::VirtualService>(doc, file, &res, loaded);
      break;
    case Kind::kDestinationRule:
      ok = loadTyped<v1::DestinationRuleObject, networking::DestinationRule>(doc, file, &res,
                                                                             loaded);
      break;
    case Kind::kGateway:
      ok = loadTyped<v1::GatewayObject, networking::Gateway>(doc, file, &res, loaded);
      break;
    case Kind::kServiceEntry:
      ok = loadTyped<v1::ServiceEntryObject, networking::ServiceEntry>(doc, file, &res, loaded);
      break;
    case Kind::kWorkloadEntry:
      ok = loadTyped<v1::WorkloadEntryObject, networking::WorkloadEntry>(doc, file, &res, loaded);
      break;
    case Kind::kSidecar:
      ok = loadTyped<v1::SidecarObject, networking::Sidecar>(doc, file, &res, loaded);
      break;
    case Kind::kPeerAuthentication:
      ok = loadTyped<v1::PeerAuthenticationObject, security::PeerAuthentication>(doc, file, &res,
                                                                                 loaded);
      break;
  }
  if (ok) {
    loaded->resources.push_back(std::move(res));
  } else {
    ++loaded->failed_objects;
  }
}

}  // namespace

std::string_view kindName(Kind kind) {
  for (const KindInfo& k : kKinds) {
    if (k.kind == kind) return k.name;
  }
  return "Unknown";
}

bool isSecurityApiVersion(std::string_view api_version) {
  return api_version == "security.istio.io/v1beta1" || api_version == "security.istio.io/v1";
}

bool isNetworkingApiVersion(std::string_view api_version) {
  return api_version == "networking.istio.io/v1alpha3" ||
         api_version == "networking.istio.io/v1beta1" || api_version == "networking.istio.io/v1";
}

int Resource::lineOf(std::string_view path) const {
  const int l = source_map.lineOf(path);
  return l > 0 ? l : line;
}

std::string Resource::displayName() const {
  return "\"" + name + "\" (" + std::string(kindName(kind)) + ")";
}

LoadedConfig loadConfigStream(std::string_view text, const std::string& file) {
  LoadedConfig loaded;
  StatusOr<std::vector<YamlDocument>> docs = splitYamlDocuments(text, file);
  if (!docs.ok()) {
    // One "file:line: message" line per broken document; keep them as separate errors.
    std::istringstream lines(docs.status().message());
    std::string l;
    while (std::getline(lines, l)) {
      if (!l.empty()) loaded.errors.add("", 0, "", l);
    }
    return loaded;
  }
  for (const YamlDocument& doc : *docs) loadDocument(doc, file, &loaded);
  return loaded;
}

LoadedConfig loadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadedConfig loaded;
    loaded.errors.add(path, 0, "", "cannot read file");
    return loaded;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return loadConfigStream(buf.str(), path);
}

}  // namespace mesh::config
