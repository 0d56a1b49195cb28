#include "core/random.h"

#include <random>

namespace mesh {

FastRandom::FastRandom(uint64_t seed) {
  for (auto& s : s_) {
    seed += 0x9e3779b97f4a7c15ULL;
    uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    s = z ^ (z >> 31);
  }
}

FastRandom::FastRandom()
    : FastRandom((static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()) {}

}  // namespace mesh
