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

}  // namespace mesh::pilot::model
