// Several ServiceRegistries (ServiceEntry, Kubernetes, ...) seen as the one service model that
// translation reads, as Istio's aggregate controller joins its platform registries.
#pragma once

#include <map>
#include <vector>

#include "pilot/model/service.h"

namespace mesh::pilot::model {

// Several registries seen as one (Istio's aggregate controller): services of all, in hostname
// order; endpoints from the registry that owns the service. The registries must outlive it, and
// it must outlive their updates (it registers a change callback on each).
class AggregateRegistry : public ServiceRegistry {
 public:
  explicit AggregateRegistry(std::vector<ServiceRegistry*> registries);

  std::vector<const Service*> services() const override;
  const std::vector<Endpoint>& endpoints(const Service& service) const override;
  void onChange(ChangeCallback callback) override;

 private:
  std::vector<ServiceRegistry*> registries_;
  // Which registry owns each service; rebuilt lazily after any registry changes.
  mutable std::map<const Service*, const ServiceRegistry*> owners_;
};

}  // namespace mesh::pilot::model
