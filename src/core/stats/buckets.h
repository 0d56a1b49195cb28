// Histogram bucket bounds used by the mesh's standard (istio_*) metrics. Current Istio uses
// Envoy's default bounds for every istio_* histogram, milliseconds and bytes alike.
#pragma once

#include <array>

namespace mesh::stats {

// Finite upper bounds ("le") of istio_request_duration_milliseconds; +Inf is implicit.
inline constexpr std::array<double, 19> kIstioDurationBucketsMs = {
    0.5,  1,    5,     10,    25,    50,     100,    250,     500,    1000,
    2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};

// Finite upper bounds of istio_request_bytes and istio_response_bytes: the same Envoy defaults.
inline constexpr std::array<double, 19> kIstioBytesBuckets = kIstioDurationBucketsMs;

}  // namespace mesh::stats
