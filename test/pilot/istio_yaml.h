// Istio config as YAML text, for pilot's tests (registry and translation alike). Every document
// repeats the same lines (apiVersion, kind, metadata, spec:); these write them once, so a test
// spells out only the part of the spec it is about, in the YAML an Istio user writes.
#pragma once

#include <initializer_list>
#include <string>

namespace mesh::pilot::testing {

// One document. `spec` is what stands under `spec:`: block lines indented by two spaces
// ("  host: web\n") or a single flow mapping ("{address: 10.0.0.1}"). An empty `ns` leaves the
// namespace out, so the loader's default applies.
inline std::string istioDoc(const std::string& api_version, const std::string& kind,
                            const std::string& name, const std::string& ns,
                            const std::string& spec) {
  std::string doc = "apiVersion: " + api_version + "\nkind: " + kind + "\nmetadata: {name: " + name;
  if (!ns.empty()) doc += ", namespace: " + ns;
  doc += "}\nspec:";
  if (spec.starts_with('{')) {
    doc += " " + spec;
    if (!spec.ends_with('\n')) doc += "\n";
  } else {
    doc += "\n" + spec;
  }
  return doc;
}

inline std::string networkingDoc(const std::string& kind, const std::string& name,
                                 const std::string& ns, const std::string& spec) {
  return istioDoc("networking.istio.io/v1", kind, name, ns, spec);
}

inline std::string serviceEntry(const std::string& name, const std::string& ns,
                                const std::string& spec) {
  return networkingDoc("ServiceEntry", name, ns, spec);
}

// A ServiceEntry for a service of the mesh, the way the tests model Kubernetes services: host
// name.ns.svc.cluster.local, MESH_INTERNAL, STATIC; `rest` is the remaining spec (ports,
// endpoints, addresses, workloadSelector...).
inline std::string meshService(const std::string& name, const std::string& ns,
                               const std::string& rest) {
  return serviceEntry(name, ns,
                      "  hosts: [" + name + "." + ns +
                          ".svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n" +
                          rest);
}

inline std::string workloadEntry(const std::string& name, const std::string& ns,
                                 const std::string& spec) {
  return networkingDoc("WorkloadEntry", name, ns, spec);
}

inline std::string destinationRule(const std::string& name, const std::string& ns,
                                   const std::string& spec) {
  return networkingDoc("DestinationRule", name, ns, spec);
}

inline std::string virtualService(const std::string& name, const std::string& ns,
                                  const std::string& spec) {
  return networkingDoc("VirtualService", name, ns, spec);
}

inline std::string sidecar(const std::string& name, const std::string& ns,
                           const std::string& spec) {
  return networkingDoc("Sidecar", name, ns, spec);
}

// security.istio.io/`version` (v1 or v1beta1: both are served).
inline std::string peerAuthentication(const std::string& name, const std::string& ns,
                                      const std::string& spec, const std::string& version = "v1") {
  return istioDoc("security.istio.io/" + version, "PeerAuthentication", name, ns, spec);
}

// Documents as one YAML stream.
inline std::string yamlStream(std::initializer_list<std::string> docs) {
  std::string out;
  for (const std::string& doc : docs) {
    if (!out.empty()) out += "---\n";
    out += doc;
  }
  return out;
}

}  // namespace mesh::pilot::testing
