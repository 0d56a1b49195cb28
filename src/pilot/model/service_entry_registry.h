// A ServiceRegistry built from Istio resources: every host of a ServiceEntry becomes a Service,
// its endpoints come from the entry's inline endpoints or from the WorkloadEntries its
// workloadSelector picks (same namespace), as Istio's ServiceEntry controller does.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/resource.h"
#include "pilot/model/service.h"

namespace mesh::pilot::model {

class ServiceEntryRegistry : public ServiceRegistry {
 public:
  // Replaces the whole model with what `resources` describe (other kinds are ignored) and
  // calls the change callbacks. Resources are expected to be validated already; what still
  // cannot be used (a host claimed twice in a namespace) is skipped and named in warnings().
  void update(const std::vector<config::Resource>& resources);

  std::vector<const Service*> services() const override;
  const std::vector<Endpoint>& endpoints(const Service& service) const override;
  void onChange(ChangeCallback callback) override { callbacks_.push_back(std::move(callback)); }

  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct Entry {
    Service service;
    std::vector<Endpoint> endpoints;
  };
  // By "hostname/namespace", so services() comes out sorted.
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  std::vector<ChangeCallback> callbacks_;
  std::vector<std::string> warnings_;
};

}  // namespace mesh::pilot::model
