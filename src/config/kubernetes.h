// The Kubernetes objects of a YAML stream that pilot's registry needs (v1 Service, Endpoints,
// Pod), loaded into typed envelopes with file and line, beside the Istio resources that
// loadConfigStream reads from the same stream. Every other kind is left to that loader.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/v1/kubernetes.pb.h"
#include "core/config/yaml_proto.h"
#include "core/validation_errors.h"

namespace mesh::config {

struct KubernetesObject {
  using Object = std::variant<v1::KubernetesServiceObject, v1::KubernetesEndpointsObject,
                              v1::KubernetesPodObject>;
  Object object;
  std::string name;
  std::string namespace_name = "default";
  std::string file;
  int line = 0;
  SourceMap source_map;

  template <typename T>
  const T* as() const {
    return std::get_if<T>(&object);
  }
};

struct LoadedKubernetes {
  std::vector<KubernetesObject> objects;  // in stream order
  ValidationErrors errors;
  std::vector<ValidationError> warnings;  // unknown fields
};

// Loads the v1 Services, Endpoints and Pods of a YAML stream; skips everything else silently.
LoadedKubernetes loadKubernetesStream(std::string_view text, const std::string& file);

}  // namespace mesh::config
