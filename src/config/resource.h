// Istio's networking config as typed resources: a YAML stream of Kubernetes-style objects
// ({apiVersion, kind, metadata, spec}) loaded into one struct per object, each keeping the file
// and lines it came from so that validation can point at the offending field.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/config/yaml_proto.h"
#include "core/status.h"
#include "core/validation_errors.h"
#include "istio/networking/v1alpha3/destination_rule.pb.h"
#include "istio/networking/v1alpha3/gateway.pb.h"
#include "istio/networking/v1alpha3/service_entry.pb.h"
#include "istio/networking/v1alpha3/sidecar.pb.h"
#include "istio/networking/v1alpha3/virtual_service.pb.h"
#include "istio/networking/v1alpha3/workload_entry.pb.h"
#include "istio/security/v1beta1/peer_authentication.pb.h"

namespace mesh::config {

namespace networking = ::istio::networking::v1alpha3;
namespace security = ::istio::security::v1beta1;

enum class Kind {
  kVirtualService,
  kDestinationRule,
  kGateway,
  kServiceEntry,
  kWorkloadEntry,
  kSidecar,
  kPeerAuthentication,  // security.istio.io
};

// "VirtualService", ... as written in `kind:`.
std::string_view kindName(Kind kind);

// The namespace of an object whose metadata names none (as kubectl without -n).
inline constexpr std::string_view kDefaultNamespace = "default";

// One Istio networking object. `spec` holds the message matching `kind`.
struct Resource {
  using Spec =
      std::variant<networking::VirtualService, networking::DestinationRule, networking::Gateway,
                   networking::ServiceEntry, networking::WorkloadEntry, networking::Sidecar,
                   security::PeerAuthentication>;

  Kind kind = Kind::kVirtualService;
  std::string api_version;  // "networking.istio.io/v1beta1"
  std::string name;
  std::string namespace_name = std::string(kDefaultNamespace);
  bool namespace_set = false;  // metadata.namespace was written
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  Spec spec;

  std::string file;
  int line = 0;          // first line of the object (its apiVersion or kind key)
  SourceMap source_map;  // "spec.http[0].route[1].weight" -> line

  // The spec as T, or nullptr if this resource is of another kind.
  template <typename T>
  const T* as() const {
    return std::get_if<T>(&spec);
  }
  // Line of a field path ("spec.hosts"); falls back to the closest written parent, then to the
  // object's first line.
  int lineOf(std::string_view path) const;
  // `"reviews" (VirtualService)`, as istioctl names objects.
  std::string displayName() const;
};

struct LoadedConfig {
  std::vector<Resource> resources;  // in stream order; only objects that loaded without errors
  ValidationErrors errors;          // YAML syntax, wrong types, missing kind, bad apiVersion
  std::vector<ValidationError> warnings;  // unknown fields (Istio's schema is open-ended)
  // Objects of other kinds (a Kubernetes Service, a Deployment) that were skipped, one
  // "file:line: message" line each.
  std::vector<std::string> notes;
  // Number of objects of a known kind that failed to load (their errors are in `errors`).
  int failed_objects = 0;
};

// Loads every document of a YAML stream ("---" separated). Never throws; problems are collected.
LoadedConfig loadConfigStream(std::string_view text, const std::string& file);
// Reads a file and loads it; an unreadable file is one error.
LoadedConfig loadConfigFile(const std::string& path);

// "networking.istio.io/v1alpha3", "networking.istio.io/v1beta1" and "networking.istio.io/v1".
bool isNetworkingApiVersion(std::string_view api_version);
// "security.istio.io/v1beta1" and "security.istio.io/v1".
bool isSecurityApiVersion(std::string_view api_version);

}  // namespace mesh::config
