// `istioctl validate`: loads Istio config files, validates every object and prints each error
// as "file:line: field: message", like the admission webhook would reject it, but offline.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace mesh::istioctl {

// Validates the files; prints errors and warnings to `err`, and one `"name" (Kind) is valid`
// line per good object to `out`. Returns the exit code: 0 when everything is valid, else 1. An
// unreadable file counts as invalid; a file without Istio objects only warns.
int runValidate(const std::vector<std::string>& files, std::ostream& out, std::ostream& err);

// "istioctl version 0.1.0".
std::string versionString();

}  // namespace mesh::istioctl
