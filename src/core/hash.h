// A stable 64-bit hash (same value on every run and machine) for consistent hashing: ring hash
// and Maglev tables must agree across proxies and restarts, which std::hash does not promise.
#pragma once

#include <cstdint>
#include <string_view>

namespace mesh {

uint64_t hash64(std::string_view data, uint64_t seed = 0);

}  // namespace mesh
