#include "proxy/admin/admin_server.h"

#include <boost/asio/write.hpp>

#include "core/buffer.h"
#include "core/http/http1_parser.h"
#include "core/http/status_codes.h"
#include "core/log.h"
#include "core/net/address.h"

namespace mesh::proxy {

bool AdminRequest::has(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return true;
  }
  return false;
}

std::string AdminRequest::get(std::string_view name, std::string_view fallback) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return std::string(fallback);
}

std::string urlDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// One admin client connection: read a request, answer it, repeat while keep-alive.
class AdminServer::Connection : public std::enable_shared_from_this<AdminServer::Connection> {
 public:
  Connection(AdminServer& server, boost::asio::ip::tcp::socket socket)
      : server_(server),
        alive_(server.alive_),
        socket_(std::move(socket)),
        parser_(http::Http1Parser::Type::kRequest) {}

  void start() { read(); }

 private:
  void read() {
    auto [p, n] = in_.prepare(4096, 1 << 20);
    if (n == 0) return;
    socket_.async_read_some(boost::asio::buffer(p, n),
                            [self = shared_from_this()](const boost::system::error_code& ec,
                                                        size_t len) { self->onRead(ec, len); });
  }

  void onRead(const boost::system::error_code& ec, size_t n) {
    if (ec || !*alive_) return;
    in_.commit(n);
    using Event = http::Http1Parser::Event;
    for (;;) {
      auto r = parser_.parse(in_.view());
      switch (r.event) {
        case Event::kNeedMore:
          in_.consume(r.consumed);
          read();
          return;
        case Event::kHead: {
          const auto& h = parser_.request();
          req_ = AdminRequest();
          req_.method = std::string(h.method);
          req_.path = std::string(h.path);
          req_.raw_query = std::string(h.query);
          keep_alive_ = h.keep_alive;
          std::string_view q = h.query;
          while (!q.empty()) {
            size_t amp = q.find('&');
            std::string_view pair = q.substr(0, amp);
            size_t eq = pair.find('=');
            if (!pair.empty()) {
              req_.params.emplace_back(urlDecode(pair.substr(0, eq)),
                                       eq == std::string_view::npos
                                           ? std::string()
                                           : urlDecode(pair.substr(eq + 1)));
            }
            if (amp == std::string_view::npos) break;
            q.remove_prefix(amp + 1);
          }
          in_.consume(r.consumed);
          break;
        }
        case Event::kBody:
          if (req_.body.size() + r.data.size() > (1 << 20)) {
            respond({413, "text/plain", "request body too large\n"}, false);
            return;
          }
          req_.body.append(r.data);
          in_.consume(r.consumed);
          break;
        case Event::kMessageComplete:
          in_.consume(r.consumed);
          respond(server_.dispatch(req_), keep_alive_);
          return;
        case Event::kError: {
          std::string msg(http::parseErrorText(parser_.error()));
          respond({http::parseErrorStatus(parser_.error()), "text/plain", msg + "\n"}, false);
          return;
        }
      }
    }
  }

  void respond(const AdminResponse& resp, bool keep_alive) {
    out_ = "HTTP/1.1 " + std::to_string(resp.status) + " " +
           std::string(http::reasonPhrase(resp.status)) + "\r\ncontent-type: " +
           resp.content_type + "\r\ncontent-length: " + std::to_string(resp.body.size()) +
           "\r\ncache-control: no-cache, max-age=0\r\nx-content-type-options: nosniff\r\n" +
           (keep_alive ? "" : "connection: close\r\n") + "\r\n";
    out_ += resp.body;
    boost::asio::async_write(socket_, boost::asio::buffer(out_),
                             [self = shared_from_this(), keep_alive](
                                 const boost::system::error_code& ec, size_t) {
                               if (ec || !keep_alive || !*self->alive_) {
                                 boost::system::error_code ignored;
                                 self->socket_.close(ignored);
                                 return;
                               }
                               self->onRead({}, 0);  // there may be a pipelined request
                             });
  }

  AdminServer& server_;
  std::shared_ptr<bool> alive_;
  boost::asio::ip::tcp::socket socket_;
  IoBuffer in_{4096};
  http::Http1Parser parser_;
  AdminRequest req_;
  bool keep_alive_ = true;
  std::string out_;
};

AdminServer::AdminServer(boost::asio::io_context& io, std::string name)
    : io_(io), name_(std::move(name)) {}

AdminServer::~AdminServer() {
  *alive_ = false;
  stop();
}

void AdminServer::addHandler(std::string path, std::string help, bool mutating,
                             Handler handler) {
  handlers_[std::move(path)] = Entry{std::move(help), mutating, std::move(handler)};
}

std::string AdminServer::helpText() const {
  std::string out = "admin commands are:\n";
  for (const auto& [path, e] : handlers_) {
    out += "  " + path + ": " + e.help + "\n";
  }
  return out;
}

StatusOr<uint16_t> AdminServer::listen(const std::string& address) {
  auto hp = net::parseHostPort(address);
  if (!hp.ok()) return hp.status();
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(hp->host, ec);
  if (ec) return invalidArgument("invalid address '" + address + "'");
  boost::asio::ip::tcp::endpoint ep(ip, hp->port);
  auto acc = std::make_unique<boost::asio::ip::tcp::acceptor>(io_);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(boost::asio::socket_base::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(128, ec);
  if (ec) return unavailable(name_ + ": cannot listen on " + address + ": " + ec.message());
  uint16_t port = acc->local_endpoint().port();
  acceptor_ = std::move(acc);
  accept();
  return port;
}

void AdminServer::accept() {
  acceptor_->async_accept([this, alive = alive_](const boost::system::error_code& ec,
                                                 boost::asio::ip::tcp::socket socket) {
    if (!*alive || !acceptor_ || !acceptor_->is_open()) return;
    if (!ec) std::make_shared<Connection>(*this, std::move(socket))->start();
    accept();
  });
}

void AdminServer::stop() {
  if (acceptor_) {
    boost::system::error_code ignored;
    acceptor_->close(ignored);
  }
}

AdminResponse AdminServer::dispatch(const AdminRequest& req) const {
  auto it = handlers_.find(req.path);
  if (it == handlers_.end()) {
    return {404, "text/plain; charset=UTF-8", "invalid path. " + helpText()};
  }
  if (it->second.mutating && req.method != "POST") {
    return {400, "text/plain; charset=UTF-8", "This endpoint requires POST.\n"};
  }
  return it->second.handler(req);
}

}  // namespace mesh::proxy
