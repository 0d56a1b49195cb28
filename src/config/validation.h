// Semantic validation of Istio networking resources after they loaded: the rules Istio's
// webhook applies (weights, percentages, durations, exclusive fields, required hosts and ports),
// every violation reported at once with file, line and field path.
#pragma once

#include <vector>

#include "config/resource.h"
#include "core/validation_errors.h"

namespace mesh::config {

struct ValidationReport {
  ValidationErrors errors;
  std::vector<ValidationError> warnings;  // legal but probably not what was meant
  bool ok() const { return errors.empty(); }
};

// Checks one resource on its own.
ValidationReport validateResource(const Resource& resource);

// Checks each resource, then what only a set can show (two objects of the same kind, namespace
// and name). report[i] belongs to resources[i].
std::vector<ValidationReport> validateResources(const std::vector<Resource>& resources);

}  // namespace mesh::config
