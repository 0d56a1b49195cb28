// Host names as Istio writes them in config: short names expanded with the namespace of the
// rule ("reviews" in "prod" -> "reviews.prod.svc.cluster.local"), and the syntax checks that
// validation applies to hosts, wildcards and Kubernetes names.
#pragma once

#include <string>
#include <string_view>

namespace mesh::config {

inline constexpr std::string_view kDefaultDomainSuffix = "cluster.local";

// Expands a short name (no dot) to "<host>.<namespace>.svc.<suffix>". Names with a dot, IP
// addresses and wildcards ("*", "*.example.com") are returned unchanged.
std::string expandShortHostName(std::string_view host, std::string_view namespace_name,
                                std::string_view domain_suffix = kDefaultDomainSuffix);

// A DNS name (RFC 1123 labels of up to 63 characters, 255 in all), optionally with a leading
// "*." wildcard label or just "*". Short names ("reviews") pass. Case-insensitive.
bool isWildcardDnsName(std::string_view host);
// The same without wildcards.
bool isDnsName(std::string_view host);
// Kubernetes DNS-1123 label (namespaces, subset names): [a-z0-9]([-a-z0-9]*[a-z0-9])?, <= 63.
bool isDns1123Label(std::string_view s);
// Kubernetes DNS-1123 subdomain (object names): labels joined by dots, <= 253.
bool isDns1123Subdomain(std::string_view s);
// IPv4 or IPv6 literal.
bool isIpAddress(std::string_view s);
// IP address or CIDR block ("10.0.0.0/8", "2001:db8::/32").
bool isIpOrCidr(std::string_view s);
// Kubernetes label key ("app", "example.com/tier") and value (may be empty).
bool isLabelKey(std::string_view s);
bool isLabelValue(std::string_view s);
// HTTP header name: an RFC 7230 token.
bool isHeaderName(std::string_view s);

}  // namespace mesh::config
