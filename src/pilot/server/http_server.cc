#include "pilot/server/http_server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <thread>

#include "core/http/http1_parser.h"
#include "core/http/status_codes.h"
#include "core/net/address.h"

namespace mesh::pilot::server {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr size_t kMaxRequestBytes = 64 * 1024;
// A client that has not sent a whole request head by then (or not read the reply) is dropped.
constexpr std::chrono::seconds kConnectionTimeout{10};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, const HttpServer::Handler& handler)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), handler_(handler) {}

  void start() {
    timer_.expires_after(kConnectionTimeout);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return;  // cancelled: the connection finished first
      boost::system::error_code ignored;
      self->socket_.close(ignored);
    });
    read();
  }

 private:
  void read() {
    auto self = shared_from_this();
    size_t old = buf_.size();
    buf_.resize(old + 4096);
    socket_.async_read_some(asio::buffer(buf_.data() + old, 4096),
                            [this, self, old](boost::system::error_code ec, size_t n) {
                              buf_.resize(old + n);
                              if (ec) {
                                timer_.cancel();
                                return;
                              }
                              onData();
                            });
  }

  void onData() {
    auto r = parser_.parse(std::string_view(buf_.data(), buf_.size()));
    if (r.event == http::Http1Parser::Event::kNeedMore) {
      if (buf_.size() > kMaxRequestBytes) {  // drop the connection
        timer_.cancel();
        return;
      }
      read();
      return;
    }
    HttpReply reply;
    if (r.event == http::Http1Parser::Event::kError) {
      reply.status = http::parseErrorStatus(parser_.error());
      reply.body = std::string(http::parseErrorText(parser_.error())) + "\n";
    } else if (parser_.request().method != "GET" && parser_.request().method != "HEAD") {
      reply.status = 405;
      reply.body = "only GET\n";
    } else {
      reply = handler_(parser_.request().path);
    }
    bool head = r.event == http::Http1Parser::Event::kHead && parser_.request().method == "HEAD";
    out_ = "HTTP/1.1 " + std::to_string(reply.status) + " " +
           std::string(http::reasonPhrase(reply.status)) +
           "\r\nContent-Type: " + reply.content_type +
           "\r\nContent-Length: " + std::to_string(reply.body.size()) +
           "\r\nConnection: close\r\n\r\n";
    if (!head) out_ += reply.body;
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(out_), [this, self](boost::system::error_code, size_t) {
      timer_.cancel();
      boost::system::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  const HttpServer::Handler& handler_;
  http::Http1Parser parser_{http::Http1Parser::Type::kRequest};
  std::string buf_;
  std::string out_;
};

}  // namespace

struct HttpServer::Impl {
  explicit Impl(Handler h) : handler(std::move(h)) {}
  Handler handler;
  asio::io_context io{1};
  std::unique_ptr<tcp::acceptor> acceptor;
  std::thread thread;

  void accept() {
    acceptor->async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) std::make_shared<Connection>(std::move(socket), handler)->start();
      accept();
    });
  }
};

HttpServer::HttpServer(Handler handler) : impl_(std::make_unique<Impl>(std::move(handler))) {}

HttpServer::~HttpServer() { stop(); }

StatusOr<uint16_t> HttpServer::start(const std::string& address) {
  auto parsed = net::parseHostPort(address);
  if (!parsed.ok()) return parsed.status();
  boost::system::error_code ec;
  asio::ip::address ip = asio::ip::make_address(parsed->host, ec);
  if (ec) return invalidArgument("http address '" + address + "': not an IP address");
  tcp::endpoint ep(ip, parsed->port);
  auto acceptor = std::make_unique<tcp::acceptor>(impl_->io);
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return unavailable("cannot listen on " + address + ": " + ec.message());
  uint16_t port = acceptor->local_endpoint().port();
  impl_->acceptor = std::move(acceptor);
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
  return port;
}

void HttpServer::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->io.stop();
  impl_->thread.join();
  // The loop's thread is gone: its objects may be touched here.
  boost::system::error_code ignored;
  impl_->acceptor->close(ignored);
}

}  // namespace mesh::pilot::server
