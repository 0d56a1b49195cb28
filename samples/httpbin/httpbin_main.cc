// httpbin: a small HTTP/1.1 backend in the spirit of httpbin.org, for tests and the demo.
// Every response names the instance and version that served it (x-instance, x-version and in
// JSON bodies), so a test can count how traffic was split.
//
//   GET /                 {"instance":..,"version":..}
//   GET /status/{code}    that status
//   GET /delay/{ms}       answers after ms milliseconds (at most 60000)
//   GET /headers          the request headers as JSON
//   ANY /echo             the request body back
//   GET /bytes/{n}        n bytes (at most 100 MB), streamed
//   GET /count            requests served so far by this instance
//   GET /last             the request before this one: method, path, headers, body size
//   GET /close            closes the connection without answering
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio.hpp>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/buffer.h"
#include "core/http/http1_parser.h"
#include "core/http/status_codes.h"
#include "core/net/address.h"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using mesh::http::Http1Parser;

struct Config {
  std::string instance;
  std::string version = "v1";
  int status_override = 0;  // answer every request with this status
};

std::atomic<uint64_t> g_requests{0};
std::mutex g_last_mu;
std::string g_last = "{}";  // the last request other than /last, as JSON

std::string jsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

bool parseNumber(std::string_view s, uint64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const Config& cfg)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        cfg_(cfg),
        parser_(Http1Parser::Type::kRequest) {}

  void start() {
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    read();
  }

 private:
  void read() {
    auto [p, n] = in_.prepare(4096, 1 << 20);
    if (n == 0) return;
    socket_.async_read_some(asio::buffer(p, n),
                            [self = shared_from_this()](boost::system::error_code ec, size_t len) {
                              if (ec) return;
                              self->in_.commit(len);
                              self->process();
                            });
  }

  void process() {
    using Event = Http1Parser::Event;
    for (;;) {
      auto r = parser_.parse(in_.view());
      switch (r.event) {
        case Event::kNeedMore:
          in_.consume(r.consumed);
          read();
          return;
        case Event::kHead: {
          const auto& h = parser_.request();
          method_ = std::string(h.method);
          path_ = std::string(h.path);
          keep_alive_ = h.keep_alive;
          headers_json_ = "{";
          bool first = true;
          for (const auto& f : h.headers) {
            headers_json_ += std::string(first ? "" : ",") + "\"" + jsonEscape(f.name) + "\":\"" +
                             jsonEscape(f.value) + "\"";
            first = false;
          }
          headers_json_ += "}";
          body_.clear();
          in_.consume(r.consumed);
          break;
        }
        case Event::kBody:
          if (body_.size() < (16u << 20)) body_.append(r.data);
          in_.consume(r.consumed);
          break;
        case Event::kMessageComplete:
          in_.consume(r.consumed);
          ++g_requests;
          handle();
          return;
        case Event::kError: {
          std::string msg(mesh::http::parseErrorText(parser_.error()));
          keep_alive_ = false;
          respond(mesh::http::parseErrorStatus(parser_.error()), "text/plain", msg + "\n");
          return;
        }
      }
    }
  }

  std::string identity() const {
    return "\"instance\":\"" + jsonEscape(cfg_.instance) + "\",\"version\":\"" +
           jsonEscape(cfg_.version) + "\"";
  }

  void handle() {
    std::string_view p = path_;
    if (p == "/last") {
      std::lock_guard<std::mutex> l(g_last_mu);
      respond(200, "application/json", g_last + "\n");
      return;
    }
    {
      std::lock_guard<std::mutex> l(g_last_mu);
      g_last = "{" + identity() + ",\"method\":\"" + jsonEscape(method_) + "\",\"path\":\"" +
               jsonEscape(path_) + "\",\"headers\":" + headers_json_ +
               ",\"body_bytes\":" + std::to_string(body_.size()) + "}";
    }
    if (cfg_.status_override != 0) {
      respond(cfg_.status_override, "application/json",
              "{" + identity() + ",\"status\":" + std::to_string(cfg_.status_override) + "}\n");
    } else if (p == "/" || p.empty()) {
      respond(200, "application/json", "{" + identity() + ",\"service\":\"httpbin\"}\n");
    } else if (p.starts_with("/status/")) {
      uint64_t code = 0;
      if (!parseNumber(p.substr(8), &code) || code < 200 || code > 599) {
        respond(400, "text/plain", "bad status\n");
      } else {
        respond(static_cast<int>(code), "application/json",
                "{" + identity() + ",\"status\":" + std::to_string(code) + "}\n");
      }
    } else if (p.starts_with("/delay/")) {
      uint64_t ms = 0;
      if (!parseNumber(p.substr(7), &ms) || ms > 60000) {
        respond(400, "text/plain", "bad delay\n");
        return;
      }
      timer_.expires_after(std::chrono::milliseconds(ms));
      timer_.async_wait([self = shared_from_this(), ms](boost::system::error_code ec) {
        if (ec) return;
        self->respond(200, "application/json",
                      "{" + self->identity() + ",\"delay_ms\":" + std::to_string(ms) + "}\n");
      });
    } else if (p == "/headers") {
      respond(200, "application/json",
              "{" + identity() + ",\"method\":\"" + jsonEscape(method_) +
                  "\",\"headers\":" + headers_json_ + "}\n");
    } else if (p == "/echo") {
      respond(200, "application/octet-stream", body_);
    } else if (p.starts_with("/bytes/")) {
      uint64_t n = 0;
      if (!parseNumber(p.substr(7), &n) || n > (100u << 20)) {
        respond(400, "text/plain", "bad size\n");
        return;
      }
      streamBytes(n);
    } else if (p == "/count") {
      respond(200, "application/json",
              "{" + identity() + ",\"requests\":" + std::to_string(g_requests.load()) + "}\n");
    } else if (p == "/close") {
      boost::system::error_code ec;
      socket_.close(ec);
    } else {
      respond(404, "text/plain", "not found\n");
    }
  }

  std::string head(int status, std::string_view type, uint64_t length) {
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " +
                    std::string(mesh::http::reasonPhrase(status)) + "\r\n";
    h += "content-type: " + std::string(type) + "\r\n";
    h += "content-length: " + std::to_string(length) + "\r\n";
    h += "x-instance: " + cfg_.instance + "\r\nx-version: " + cfg_.version + "\r\n";
    if (!keep_alive_) h += "connection: close\r\n";
    h += "\r\n";
    return h;
  }

  void respond(int status, std::string_view type, const std::string& body) {
    out_ = head(status, type, body.size());
    if (method_ != "HEAD") out_ += body;
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        self->afterResponse(ec);
                      });
  }

  void streamBytes(uint64_t n) {
    out_ = head(200, "application/octet-stream", n);
    remaining_ = method_ == "HEAD" ? 0 : n;
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        if (ec) return;
                        self->streamMore();
                      });
  }

  void streamMore() {
    if (remaining_ == 0) {
      afterResponse({});
      return;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, 64 * 1024));
    chunk_.resize(n);
    for (size_t i = 0; i < n; ++i) chunk_[i] = static_cast<char>('a' + (sent_ + i) % 26);
    sent_ += n;
    remaining_ -= n;
    asio::async_write(socket_, asio::buffer(chunk_),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        if (ec) return;
                        self->streamMore();
                      });
  }

  void afterResponse(boost::system::error_code ec) {
    if (ec) return;
    if (!keep_alive_) {
      boost::system::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    process();  // a pipelined request may already be buffered
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  const Config& cfg_;
  mesh::IoBuffer in_{8192};
  Http1Parser parser_;
  std::string method_, path_, headers_json_, body_, out_, chunk_;
  bool keep_alive_ = true;
  uint64_t remaining_ = 0, sent_ = 0;
};

void acceptLoop(tcp::acceptor& acceptor, const Config& cfg) {
  acceptor.async_accept([&acceptor, &cfg](boost::system::error_code ec, tcp::socket socket) {
    if (!ec) std::make_shared<Session>(std::move(socket), cfg)->start();
    if (acceptor.is_open()) acceptLoop(acceptor, cfg);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"httpbin: sample backend for the mesh"};
  std::string listen = "127.0.0.1:8000";
  std::string port_file;
  unsigned threads = 1;
  Config cfg;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  cfg.instance = std::string(host) + "-" + std::to_string(getpid());
  app.add_option("--listen", listen, "address to listen on (port 0: the OS picks)");
  app.add_option("--instance", cfg.instance, "instance name reported in every response");
  app.add_option("--version", cfg.version, "version reported in every response");
  app.add_option("--status-override", cfg.status_override,
                 "answer every request with this status (a failing endpoint)");
  app.add_option("--port-file", port_file, "write {\"port\": N} here once listening");
  app.add_option("--threads", threads, "worker threads");
  CLI11_PARSE(app, argc, argv);

  auto hp = mesh::net::parseHostPort(listen);
  if (!hp.ok()) {
    std::fprintf(stderr, "httpbin: %s\n", hp.status().message().c_str());
    return 2;
  }
  asio::io_context io;
  tcp::endpoint ep(asio::ip::make_address(hp->host), hp->port);
  tcp::acceptor acceptor(io);
  boost::system::error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(1024, ec);
  if (ec) {
    std::fprintf(stderr, "httpbin: cannot listen on %s: %s\n", listen.c_str(),
                 ec.message().c_str());
    return 1;
  }
  uint16_t port = acceptor.local_endpoint().port();
  acceptLoop(acceptor, cfg);
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](boost::system::error_code, int) { io.stop(); });
  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    {
      std::ofstream f(tmp);
      f << "{\"port\":" << port << "}\n";
    }
    std::rename(tmp.c_str(), port_file.c_str());
  }
  std::fprintf(stderr, "httpbin %s (%s) listening on %s:%u\n", cfg.instance.c_str(),
               cfg.version.c_str(), hp->host.c_str(), port);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  return 0;
}
