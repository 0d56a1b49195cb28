// Writes the seed corpus of http2_upstream_fuzz (test/fuzz/corpus/http2_upstream) with the
// frame helpers of test/testing/h2_frames.h. Not a test: run it by hand after changing a seed,
//   build/fuzz/http2_upstream_seeds test/fuzz/corpus/http2_upstream
// and commit the files. Each seed: the mode byte and read size of http2_upstream_fuzz.cc, then
// what the server sends after its SETTINGS.
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "test/testing/h2_frames.h"

namespace h2 = mesh::testing::h2;
using Fields = std::vector<std::pair<std::string, std::string>>;

namespace {

constexpr uint8_t kPushPromise = 5;
constexpr uint8_t kPriority = 2;

std::string headers(uint32_t id, const Fields& f, bool end_stream) {
  return h2::frame(h2::kHeaders, h2::kEndHeaders | (end_stream ? h2::kEndStream : 0), id,
                   h2::headerBlock(f));
}
std::string data(uint32_t id, std::string_view body, bool end_stream) {
  return h2::frame(h2::kData, end_stream ? h2::kEndStream : 0, id, body);
}
std::string goaway(uint32_t last, uint32_t code) {
  std::string p;
  h2::put32(p, last);
  h2::put32(p, code);
  return h2::frame(h2::kGoaway, 0, 0, p);
}
// mode: bits 0-1 requests-1, bits 2-5 HEAD per request, bit 6 the router holds body slices.
std::string seed(uint8_t mode, uint8_t piece, const std::string& server) {
  std::string out;
  out.push_back(static_cast<char>(mode));
  out.push_back(static_cast<char>(piece));
  return out + server;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const Fields ok = {{":status", "200"}, {"content-type", "text/plain"}};
  const Fields ok5 = {{":status", "200"}, {"content-length", "5"}};
  std::vector<std::pair<std::string, std::string>> seeds;
  seeds.emplace_back("get_length", seed(0, 255, headers(1, ok5, false) + data(1, "hello", true)));
  seeds.emplace_back(
      "trailers",
      seed(0, 255,
           headers(1, {{":status", "200"}, {"content-type", "application/grpc"}}, false) +
               data(1, std::string("\0\0\0\0\0", 5), false) +
               headers(1, {{"grpc-status", "0"}, {"grpc-message", "ok"}}, true)));
  seeds.emplace_back(
      "interim_1xx",
      seed(0, 255,
           headers(1, {{":status", "100"}}, false) +
               headers(1, {{":status", "103"}, {"link", "</a>; rel=preload"}}, false) +
               headers(1, ok, false) + data(1, "body", true)));
  seeds.emplace_back("headers_only", seed(0, 255, headers(1, {{":status", "204"}}, true)));
  seeds.emplace_back(
      "head_request",
      seed(4, 255, headers(1, {{":status", "200"}, {"content-length", "1000"}}, true)));
  seeds.emplace_back("odd_pseudo",
                     seed(1, 255,
                          headers(1, {{":status", "200"}, {":path", "/x"}}, true) +
                              headers(3, {{":status", "000"}, {"X-Upper", "v"}}, true)));
  seeds.emplace_back("status_000", seed(0, 255, headers(1, {{":status", "000"}}, true)));
  seeds.emplace_back("status_999",
                     seed(1, 255,
                          headers(1, {{":status", "099"}}, false) + data(1, "x", true) +
                              headers(3, {{":status", "999"}}, true)));
  seeds.emplace_back("pseudo_in_trailers", seed(0, 255,
                                                headers(1, ok, false) + data(1, "a", false) +
                                                    headers(1, {{":status", "200"}}, true)));
  seeds.emplace_back("data_beyond_length",
                     seed(0, 255, headers(1, ok5, false) + data(1, "hello, world", true)));
  seeds.emplace_back("rst_mid_body", seed(0, 255,
                                          headers(1, ok, false) + data(1, "partial", false) +
                                              h2::rstStream(1, h2::kCancel)));
  seeds.emplace_back("rst_no_error_before_end",
                     seed(0, 255, headers(1, ok, false) + h2::rstStream(1, h2::kNoError)));
  seeds.emplace_back(
      "goaway_below_active",
      seed(1, 255, headers(1, ok, false) + goaway(1, h2::kNoError) + data(1, "x", true)));
  seeds.emplace_back("goaway_zero_error", seed(3, 255, goaway(0, h2::kEnhanceYourCalm)));
  seeds.emplace_back("window_update_overflow",
                     seed(0, 255,
                          h2::windowUpdate(0, 0x7fffffff) + h2::windowUpdate(1, 0x7fffffff) +
                              headers(1, ok, true)));
  seeds.emplace_back("window_update_zero", seed(0, 255, h2::windowUpdate(1, 0)));
  {
    std::string p;
    h2::put32(p, 2);
    p += h2::headerBlock(
        {{":method", "GET"}, {":scheme", "http"}, {":path", "/pushed"}, {":authority", "up.test"}});
    seeds.emplace_back("push_promise",
                       seed(0, 255, h2::frame(kPushPromise, h2::kEndHeaders, 1, p)));
  }
  {
    std::string block = h2::headerBlock({{":status", "200"}, {"x-long", std::string(300, 'v')}});
    seeds.emplace_back(
        "continuation",
        seed(0, 255,
             h2::frame(h2::kHeaders, 0, 1, block.substr(0, 100)) +
                 h2::frame(h2::kContinuation, 0, 1, block.substr(100, 100)) +
                 h2::frame(h2::kContinuation, h2::kEndHeaders, 1, block.substr(200)) +
                 data(1, "ok", true)));
    seeds.emplace_back(
        "continuation_interleaved",
        seed(0, 255,
             h2::frame(h2::kHeaders, 0, 1, block.substr(0, 100)) + h2::ping(1) +
                 h2::frame(h2::kContinuation, h2::kEndHeaders, 1, block.substr(100))));
  }
  seeds.emplace_back(
      "interleaved_split",
      seed(0x43, 0,
           headers(3, ok, false) + headers(1, ok5, false) + data(3, "three", false) +
               data(1, "hel", false) + h2::ping(7) + data(1, "lo", true) + headers(5, ok, false) +
               data(5, "", true) + data(3, "", true) + headers(7, {{":status", "404"}}, true)));
  seeds.emplace_back(
      "fill_window_held",
      seed(0x40, 255,
           headers(1, ok, false) + data(1, std::string(16384, 'a'), false) +
               data(1, std::string(16384, 'b'), false) + data(1, std::string(16384, 'c'), false) +
               data(1, std::string(16383, 'd'), false) + data(1, "e", true)));
  seeds.emplace_back(
      "data_on_idle_and_zero",
      seed(0, 255, data(9, "x", false) + data(0, "y", false) + headers(1, ok, true)));
  {
    std::string prio;
    h2::put32(prio, 0);
    prio.push_back(15);
    seeds.emplace_back(
        "priority_ping_settings",
        seed(0, 255,
             h2::frame(kPriority, 0, 1, prio) + h2::ping(3) +
                 h2::settings({{3, 1}, {4, 1 << 20}, {5, 1 << 14}}) + headers(1, ok, true)));
  }
  seeds.emplace_back("headers_on_even_stream", seed(0, 255, headers(2, ok, true)));
  for (const auto& [name, bytes] : seeds) {
    std::ofstream f(std::string(argv[1]) + "/" + name, std::ios::binary);
    f << bytes;
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", name.c_str());
      return 1;
    }
  }
  return 0;
}
