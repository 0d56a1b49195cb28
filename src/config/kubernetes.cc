#include "config/kubernetes.h"

#include "config/v1/objects.pb.h"

namespace mesh::config {
namespace {

template <typename Envelope>
void loadTyped(const YamlDocument& doc, const std::string& file, int line, LoadedKubernetes* out) {
  Envelope envelope;
  LoadResult r = loadYaml(doc.text, &envelope,
                          {.file = file,
                           .unknown_fields_are_errors = false,
                           .path_prefix = "",
                           .first_line = doc.first_line});
  for (ValidationError& w : r.warnings) out->warnings.push_back(std::move(w));
  if (!r.ok()) {
    out->errors.append(r.errors);
    return;
  }
  KubernetesObject obj;
  obj.name = envelope.metadata().name();
  if (!envelope.metadata().namespace_().empty()) {
    obj.namespace_name = envelope.metadata().namespace_();
  }
  obj.file = file;
  obj.line = line;
  obj.source_map = std::move(r.source_map);
  obj.object = std::move(envelope);
  out->objects.push_back(std::move(obj));
}

}  // namespace

LoadedKubernetes loadKubernetesStream(std::string_view text, const std::string& file) {
  LoadedKubernetes out;
  auto docs = splitYamlDocuments(text, file);
  if (!docs.ok()) {
    out.errors.add(file, 0, "", docs.status().message());
    return out;
  }
  for (const YamlDocument& doc : *docs) {
    v1::TypeMeta type;
    LoadResult r = loadYaml(doc.text, &type,
                            {.file = file,
                             .unknown_fields_are_errors = false,
                             .path_prefix = "",
                             .first_line = doc.first_line});
    // Broken documents are reported by loadConfigStream; here they are only not ours.
    if (!r.ok() || type.api_version() != "v1") continue;
    int line = r.source_map.lineOf("kind");
    if (line == 0) line = doc.first_line;
    if (type.kind() == "Service") {
      loadTyped<v1::KubernetesServiceObject>(doc, file, line, &out);
    } else if (type.kind() == "Endpoints") {
      loadTyped<v1::KubernetesEndpointsObject>(doc, file, line, &out);
    } else if (type.kind() == "Pod") {
      loadTyped<v1::KubernetesPodObject>(doc, file, line, &out);
    }
  }
  return out;
}

}  // namespace mesh::config
