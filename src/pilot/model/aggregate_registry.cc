#include "pilot/model/aggregate_registry.h"

#include <algorithm>

namespace mesh::pilot::model {

AggregateRegistry::AggregateRegistry(std::vector<ServiceRegistry*> registries)
    : registries_(std::move(registries)) {
  for (ServiceRegistry* r : registries_) r->onChange([this] { owners_.clear(); });
}

std::vector<const Service*> AggregateRegistry::services() const {
  std::vector<const Service*> out;
  for (const ServiceRegistry* r : registries_) {
    auto s = r->services();
    out.insert(out.end(), s.begin(), s.end());
  }
  std::stable_sort(out.begin(), out.end(), [](const Service* a, const Service* b) {
    return a->hostname != b->hostname ? a->hostname < b->hostname
                                      : a->namespace_name < b->namespace_name;
  });
  return out;
}

const std::vector<Endpoint>& AggregateRegistry::endpoints(const Service& service) const {
  static const std::vector<Endpoint> kNone;
  if (owners_.empty()) {
    for (const ServiceRegistry* r : registries_) {
      for (const Service* s : r->services()) owners_[s] = r;
    }
  }
  auto it = owners_.find(&service);
  return it == owners_.end() ? kNone : it->second->endpoints(service);
}

void AggregateRegistry::onChange(ChangeCallback callback) {
  for (ServiceRegistry* r : registries_) r->onChange(callback);
}

}  // namespace mesh::pilot::model
