// A tiny HTTP/1.1 backend inside the test process, for answers httpbin does not give: a test
// scripts each response (raw bytes, e.g. a trailers-only gRPC reply) from the request it got,
// and an Upgrade request can be answered with 101 and a WebSocket echo (RFC 6455 frames). One
// thread per connection; it listens on 127.0.0.1 with an OS-picked port and stops (joining its
// threads) when destroyed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mesh::integration {

struct BackendRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lowercased; last value wins
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct BackendReply {
  std::string bytes;            // written as is (status line, headers, body)
  int delay_ms = 0;             // written after this long (bounded by the backend's stop)
  bool websocket_echo = false;  // after `bytes` (a 101), echo WebSocket frames until close
  bool close = false;           // close the connection after writing
};

class ScriptedBackend {
 public:
  using Handler = std::function<BackendReply(const BackendRequest&)>;
  explicit ScriptedBackend(Handler handler);
  ~ScriptedBackend();
  ScriptedBackend(const ScriptedBackend&) = delete;
  ScriptedBackend& operator=(const ScriptedBackend&) = delete;

  uint16_t port() const { return port_; }
  // Requests served so far (complete heads read).
  int requests() const { return requests_.load(); }

  // RFC 6455: the Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key.
  static std::string websocketAccept(const std::string& key);
  // A 101 answer to a WebSocket handshake request (with its Sec-WebSocket-Accept).
  static BackendReply websocketUpgrade(const BackendRequest& req);

 private:
  void acceptLoop();
  void serve(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe; written to stop every thread's poll
  uint16_t port_ = 0;
  std::atomic<int> requests_{0};
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<int> fds_;
};

// WebSocket frames as a client sends them (masked, RFC 6455 5.3) and a reader for the server's
// (unmasked) frames: for tests that speak WebSocket through the proxy.
std::string websocketClientFrame(uint8_t opcode, const std::string& payload, bool fin = true);
// Parses one server frame from the front of `buf`; returns false when incomplete. On success
// `consumed` bytes are the frame.
bool websocketParseFrame(const std::string& buf, uint8_t* opcode, std::string* payload,
                         size_t* consumed);

// A WebSocket handshake request for `path` (RFC 6455 4.1).
std::string websocketHandshake(const std::string& key, const std::string& host = "ws.test",
                               const std::string& path = "/chat");

// A blocking client connection to 127.0.0.1:port with bounded reads, for tests that speak
// something other than request/response (WebSocket, half-close) through the proxy.
class RawClient {
 public:
  using Millis = std::chrono::milliseconds;
  explicit RawClient(uint16_t port);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  bool connected() const { return connected_; }

  bool send(const std::string& data);
  void shutdownWrite();
  // Reads once (bounded); false on EOF, error or timeout (eof() says which).
  bool readSome(Millis timeout);
  // The response head (through the blank line), or "" on timeout or EOF.
  std::string readHead(Millis timeout = Millis(5000));
  // One server WebSocket frame.
  bool readFrame(uint8_t* opcode, std::string* payload, Millis timeout = Millis(5000));
  // Waits for the peer's FIN (bounded); true when it came with nothing unread before it.
  bool waitEof(Millis timeout);
  bool eof() const { return eof_; }
  std::string& buffered() { return in_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string in_;
};

}  // namespace mesh::integration
