// A ServiceRegistry built from Kubernetes objects: each v1 Service is a Service named
// <name>.<namespace>.svc.<suffix>, its Endpoints object gives the endpoints (not-ready addresses
// as unhealthy), and the Pods those endpoints point at give labels and service accounts.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/kubernetes.h"
#include "pilot/model/service.h"

namespace mesh::pilot::model {

class KubernetesRegistry : public ServiceRegistry {
 public:
  explicit KubernetesRegistry(std::string domain_suffix = "cluster.local")
      : domain_suffix_(std::move(domain_suffix)) {}

  // Replaces the whole model with what `objects` describe and calls the change callbacks.
  void update(const std::vector<config::KubernetesObject>& objects);

  std::vector<const Service*> services() const override;
  const std::vector<Endpoint>& endpoints(const Service& service) const override;
  void onChange(ChangeCallback callback) override { callbacks_.push_back(std::move(callback)); }

 private:
  struct Entry {
    Service service;
    std::vector<Endpoint> endpoints;
  };
  std::string domain_suffix_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;  // by hostname
  std::vector<ChangeCallback> callbacks_;
};

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
