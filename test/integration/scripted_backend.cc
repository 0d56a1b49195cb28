#include "test/integration/scripted_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <stdexcept>

namespace mesh::integration {
namespace {

constexpr int kMaxHead = 64 * 1024;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Waits until `fd` is readable or the wake pipe fires; false on stop or timeout.
bool waitReadable(int fd, int wake, int timeout_ms) {
  pollfd p[2] = {{fd, POLLIN, 0}, {wake, POLLIN, 0}};
  int r = ::poll(p, 2, timeout_ms);
  return r > 0 && (p[1].revents & POLLIN) == 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR));
}

bool writeAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

void appendLength(std::string& out, uint8_t mask_bit, uint64_t len) {
  if (len < 126) {
    out.push_back(static_cast<char>(mask_bit | len));
  } else if (len <= 0xffff) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len & 0xff));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  }
}

// One frame from the front of `buf`, masked or not; false when incomplete.
bool parseFrame(const std::string& buf, uint8_t* opcode, std::string* payload, size_t* consumed) {
  if (buf.size() < 2) return false;
  const auto* b = reinterpret_cast<const uint8_t*>(buf.data());
  *opcode = b[0] & 0x0f;
  const bool masked = (b[1] & 0x80) != 0;
  uint64_t len = b[1] & 0x7f;
  size_t pos = 2;
  if (len == 126) {
    if (buf.size() < 4) return false;
    len = (uint64_t{b[2]} << 8) | b[3];
    pos = 4;
  } else if (len == 127) {
    if (buf.size() < 10) return false;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | b[2 + i];
    pos = 10;
  }
  uint8_t mask[4] = {0, 0, 0, 0};
  if (masked) {
    if (buf.size() < pos + 4) return false;
    std::copy(b + pos, b + pos + 4, mask);
    pos += 4;
  }
  if (buf.size() - pos < len) return false;
  payload->assign(buf, pos, len);
  if (masked) {
    for (size_t i = 0; i < payload->size(); ++i) (*payload)[i] ^= static_cast<char>(mask[i % 4]);
  }
  *consumed = pos + len;
  return true;
}

std::string serverFrame(uint8_t opcode, const std::string& payload) {
  std::string out;
  out.push_back(static_cast<char>(0x80 | opcode));
  appendLength(out, 0, payload.size());
  out += payload;
  return out;
}

}  // namespace

ScriptedBackend::ScriptedBackend(Handler handler) : handler_(std::move(handler)) {
  if (::pipe(wake_) != 0) throw std::runtime_error("pipe failed");
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    throw std::runtime_error("scripted backend: cannot listen");
  }
  socklen_t len = sizeof(a);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { acceptLoop(); });
}

ScriptedBackend::~ScriptedBackend() {
  stopping_ = true;
  char c = 'x';
  (void)!::write(wake_[1], &c, 1);
  acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
  for (int fd : fds_) ::close(fd);
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void ScriptedBackend::acceptLoop() {
  while (!stopping_) {
    if (!waitReadable(listen_fd_, wake_[0], -1)) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard<std::mutex> l(mu_);
    fds_.push_back(fd);
    workers_.emplace_back([this, fd] { serve(fd); });
  }
}

void ScriptedBackend::serve(int fd) {
  std::string in;
  char buf[16 * 1024];
  auto readMore = [&](int timeout_ms) {
    if (!waitReadable(fd, wake_[0], timeout_ms)) return false;
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    in.append(buf, static_cast<size_t>(n));
    return true;
  };
  for (;;) {
    size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      if (in.size() > kMaxHead || !readMore(30000)) return;  // fd closed by the destructor
    }
    BackendRequest req;
    std::string head = in.substr(0, end);
    in.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    std::string line = head.substr(0, line_end);
    size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 == std::string::npos || sp2 <= sp1) return;
    req.method = line.substr(0, sp1);
    req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string h = head.substr(pos, e - pos);
      size_t colon = h.find(':');
      if (colon != std::string::npos) {
        std::string v = h.substr(colon + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        req.headers[lower(h.substr(0, colon))] = v;
      }
      pos = e + 2;
    }
    // Bodies: Content-Length only (the tests' clients send no chunked bodies here).
    size_t length = req.headers.count("content-length")
                        ? static_cast<size_t>(std::stoul(req.headers["content-length"]))
                        : 0;
    while (in.size() < length) {
      if (!readMore(30000)) return;
    }
    req.body = in.substr(0, length);
    in.erase(0, length);
    ++requests_;
    BackendReply reply = handler_(req);
    if (reply.delay_ms > 0) {
      pollfd p{wake_[0], POLLIN, 0};
      if (::poll(&p, 1, reply.delay_ms) != 0) return;  // stopping
    }
    if (!writeAll(fd, reply.bytes)) return;
    if (reply.websocket_echo) {
      // Echo data frames; answer a close with a close, then end (the proxy sees our FIN).
      for (;;) {
        uint8_t opcode;
        std::string payload;
        size_t used;
        while (!parseFrame(in, &opcode, &payload, &used)) {
          if (!readMore(30000)) {
            ::shutdown(fd, SHUT_WR);
            return;
          }
        }
        in.erase(0, used);
        if (opcode == 0x8) {
          writeAll(fd, serverFrame(0x8, payload));
          ::shutdown(fd, SHUT_WR);
          // Wait for the client's FIN (half-close passed through the proxy) before closing.
          while (readMore(10000)) {
          }
          return;
        }
        if (opcode == 0x9) {
          writeAll(fd, serverFrame(0xA, payload));
        } else if (!writeAll(fd, serverFrame(opcode, payload))) {
          return;
        }
      }
    }
    if (reply.close) {
      ::shutdown(fd, SHUT_WR);
      return;
    }
  }
}

std::string ScriptedBackend::websocketAccept(const std::string& key) {
  std::string in = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  unsigned char out[64];
  int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

BackendReply ScriptedBackend::websocketUpgrade(const BackendRequest& req) {
  BackendReply r;
  r.bytes =
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
      "sec-websocket-accept: " +
      websocketAccept(req.header("sec-websocket-key")) + "\r\n\r\n";
  r.websocket_echo = true;
  return r;
}

std::string websocketClientFrame(uint8_t opcode, const std::string& payload, bool fin) {
  std::string out;
  out.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
  appendLength(out, 0x80, payload.size());
  const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  for (uint8_t m : mask) out.push_back(static_cast<char>(m));
  for (size_t i = 0; i < payload.size(); ++i) {
    out.push_back(static_cast<char>(payload[i] ^ static_cast<char>(mask[i % 4])));
  }
  return out;
}

bool websocketParseFrame(const std::string& buf, uint8_t* opcode, std::string* payload,
                         size_t* consumed) {
  return parseFrame(buf, opcode, payload, consumed);
}

std::string websocketHandshake(const std::string& key, const std::string& host,
                               const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: " + host +
         "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
         "\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

RawClient::RawClient(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
}

RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::send(const std::string& data) { return writeAll(fd_, data); }

void RawClient::shutdownWrite() { ::shutdown(fd_, SHUT_WR); }

bool RawClient::readSome(Millis timeout) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char buf[64 * 1024];
  ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
  if (n <= 0) {
    eof_ = n == 0;
    return false;
  }
  in_.append(buf, static_cast<size_t>(n));
  return true;
}

std::string RawClient::readHead(Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t end;
  while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !readSome(left)) return "";
  }
  std::string head = in_.substr(0, end + 4);
  in_.erase(0, end + 4);
  return head;
}

bool RawClient::readFrame(uint8_t* opcode, std::string* payload, Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t used;
  while (!parseFrame(in_, opcode, payload, &used)) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !readSome(left)) return false;
  }
  in_.erase(0, used);
  return true;
}

bool RawClient::waitEof(Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!eof_) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    if (!readSome(left) && !eof_) return false;
  }
  return in_.empty();
}

}  // namespace mesh::integration
