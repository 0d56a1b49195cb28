// Istio's proxy ids: "<type>~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>", as pilot, the
// proxy's metadata exchange and istioctl read them.
#pragma once

#include <string>
#include <string_view>

namespace mesh {

// The pod name in an Istio proxy id (the third part without ".<namespace>"); "" if the id has no
// such part.
std::string podNameFromProxyId(std::string_view id, std::string_view namespace_name);

}  // namespace mesh
