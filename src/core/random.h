// Fast non-cryptographic randomness for load balancing, sampling, jitter and ids. One generator
// per thread (not thread-safe); tests inject a fixed seed.
#pragma once

#include <cstdint>

namespace mesh {

class Random {
 public:
  virtual ~Random() = default;
  virtual uint64_t next() = 0;
  // Uniform in [0, n); n > 0.
  uint64_t uniform(uint64_t n) {
    // Lemire's multiply-shift: unbiased enough for n far below 2^64.
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  // True with probability percent/100.
  bool chance(double percent) {
    if (percent >= 100.0) return true;
    if (percent <= 0.0) return false;
    return static_cast<double>(next() >> 11) * 0x1.0p-53 * 100.0 < percent;
  }
};

// xoshiro256** seeded through splitmix64.
class FastRandom final : public Random {
 public:
  explicit FastRandom(uint64_t seed);
  // Seeded from std::random_device.
  FastRandom();
  uint64_t next() override {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace mesh
