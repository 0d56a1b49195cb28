#include "test/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/http/http1_parser.h"

namespace mesh::integration {
namespace {

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

bool lowerEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

}  // namespace

std::string binPath(const std::string& name) { return std::string(MESH_BIN_DIR) + "/" + name; }

TempDir::TempDir() {
  char tmpl[] = "/tmp/mesh-it.XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void writeFileAtomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << content;
    if (!f) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("rename " + tmp);
}

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// ---- Process ----

Process::Process(std::vector<std::string> argv, std::string log_path)
    : log_path_(std::move(log_path)) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
}

Process::~Process() { stop(); }

bool Process::running() {
  if (exit_code_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return false;
  }
  return true;
}

void Process::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

std::optional<int> Process::wait(milliseconds timeout) {
  // A pidfd becomes readable when the child exits.
  auto deadline = Clock::now() + timeout;
  if (!running()) return exit_code_;
  int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  while (running()) {
    int left = remainingMs(deadline);
    if (left == 0) break;
    pollfd p{pfd, POLLIN, 0};
    if (pfd < 0 || ::poll(&p, 1, left) < 0) ::poll(nullptr, 0, std::min(left, 10));
  }
  if (pfd >= 0) ::close(pfd);
  return exit_code_;
}

void Process::stop(milliseconds grace) {
  if (pid_ <= 0 || !running()) return;
  ::kill(pid_, SIGTERM);
  if (!wait(grace)) {
    ::kill(pid_, SIGKILL);
    wait(milliseconds(5000));
  }
}

std::string Process::log() const { return readFile(log_path_); }

std::optional<std::string> waitForFile(const std::string& path, Process& owner,
                                       milliseconds timeout, std::string* error) {
  return waitForFileMatching(
      path, owner, [](const std::string& c) { return !c.empty(); }, timeout, error);
}

std::optional<std::string> waitForFileMatching(const std::string& path, Process& owner,
                                               const std::function<bool(const std::string&)>& done,
                                               milliseconds timeout, std::string* error) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  int in = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (in >= 0) ::inotify_add_watch(in, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
  auto deadline = Clock::now() + timeout;
  std::optional<std::string> result;
  for (;;) {
    std::string content = readFile(path);
    if (done(content)) {
      result = content;
      break;
    }
    if (!owner.running()) {
      *error = "process exited before writing " + path + " as expected (it holds '" + content +
               "'); its log:\n" + owner.log();
      break;
    }
    if (Clock::now() >= deadline) {
      *error =
          "timed out waiting for " + path + " (it holds '" + content + "'); log:\n" + owner.log();
      break;
    }
    // Wake on any change in the directory, or every 50 ms to notice the process dying.
    pollfd p{in, POLLIN, 0};
    if (::poll(&p, in >= 0 ? 1 : 0, std::min(50, remainingMs(deadline) + 1)) > 0) {
      char buf[4096];
      while (::read(in, buf, sizeof(buf)) > 0) {
      }
    }
  }
  if (in >= 0) ::close(in);
  return result;
}

std::string jsonString(const std::string& json, const std::string& key) {
  std::string needle = "\"" + key + "\":\"";
  size_t pos = json.find(needle);
  if (pos == std::string::npos) return "";
  pos += needle.size();
  return json.substr(pos, json.find('"', pos) - pos);
}

size_t countOf(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

std::string systemTool(const std::string& name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    std::string p = std::string(dir) + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::pair<int, std::string> runTool(const TempDir& dir, std::vector<std::string> argv) {
  static std::atomic<int> runs{0};
  Process p(std::move(argv), dir.file("tool." + std::to_string(++runs) + ".out"));
  std::optional<int> rc = p.wait(milliseconds(10000));
  return {rc.value_or(-1), p.log()};
}

std::string waitForPage(uint16_t port, const std::string& path,
                        const std::function<bool(const std::string&)>& pred, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string body;
  while (Clock::now() < deadline) {
    HttpResponse r = httpGet(port, path);
    body = r.body;
    if (r.ok && r.status == 200 && pred(body)) return body;
  }
  return body;
}

std::optional<uint64_t> jsonNumber(const std::string& json, const std::string& key) {
  std::string needle = "\"" + key + "\":";
  size_t pos = json.find(needle);
  if (pos == std::string::npos) return std::nullopt;
  pos += needle.size();
  while (pos < json.size() && json[pos] == ' ') ++pos;
  uint64_t v = 0;
  bool any = false;
  while (pos < json.size() && std::isdigit(static_cast<unsigned char>(json[pos]))) {
    v = v * 10 + static_cast<uint64_t>(json[pos++] - '0');
    any = true;
  }
  if (!any) return std::nullopt;
  return v;
}

// ---- HTTP ----

std::string HttpResponse::header(const std::string& name) const {
  for (const auto& [n, v] : headers) {
    if (lowerEquals(n, name)) return v;
  }
  return "";
}

HttpClient::~HttpClient() { close(); }

void HttpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  pending_.clear();
}

bool HttpClient::connect(std::string* error) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    *error = "socket: " + std::string(std::strerror(errno));
    return false;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    *error = "connect: " + std::string(std::strerror(errno));
    close();
    return false;
  }
  return true;
}

bool HttpClient::peerClosed() {
  if (fd_ < 0) return true;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  char c;
  ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN);
}

HttpResponse HttpClient::roundTrip(const std::string& raw, milliseconds timeout, bool head) {
  HttpResponse resp;
  auto deadline = Clock::now() + timeout;
  if (fd_ >= 0 && peerClosed()) close();
  if (fd_ < 0 && !connect(&resp.error)) return resp;
  size_t off = 0;
  while (off < raw.size()) {
    ssize_t n = ::send(fd_, raw.data() + off, raw.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      resp.error = "send: " + std::string(std::strerror(errno));
      close();
      return resp;
    }
    off += static_cast<size_t>(n);
  }
  http::Http1Parser parser(http::Http1Parser::Type::kResponse);
  parser.setRequestWasHead(head);
  std::string buf = std::move(pending_);
  pending_.clear();
  size_t pos = 0;
  bool eof = false;
  for (;;) {
    http::Http1Parser::Result r =
        eof ? parser.finish(buf.size() - pos) : parser.parse(std::string_view(buf).substr(pos));
    if (!eof) pos += r.consumed;
    switch (r.event) {
      case http::Http1Parser::Event::kHead: {
        const auto& h = parser.response();
        // 1xx interim responses are skipped.
        if (h.status >= 100 && h.status < 200 && h.status != 101) continue;
        resp.status = h.status;
        resp.keep_alive = h.keep_alive;
        for (const auto& f : h.headers) resp.headers.emplace_back(f.name, f.value);
        continue;
      }
      case http::Http1Parser::Event::kBody:
        resp.body.append(r.data);
        continue;
      case http::Http1Parser::Event::kMessageComplete:
        resp.ok = true;
        if (!eof) pending_ = buf.substr(pos);
        if (eof || !resp.keep_alive) close();
        return resp;
      case http::Http1Parser::Event::kError:
        resp.error = "bad response: " + std::string(http::parseErrorText(parser.error()));
        close();
        return resp;
      case http::Http1Parser::Event::kNeedMore:
        break;
    }
    if (eof) {
      resp.error = "connection closed before a complete response";
      close();
      return resp;
    }
    // Compact what has been consumed, then read more.
    buf.erase(0, pos);
    pos = 0;
    pollfd p{fd_, POLLIN, 0};
    int left = remainingMs(deadline);
    if (left == 0 || ::poll(&p, 1, left) <= 0) {
      resp.error = "timed out waiting for the response";
      close();
      return resp;
    }
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0) {
      resp.error = "recv: " + std::string(std::strerror(errno));
      close();
      return resp;
    }
    if (n == 0) {
      eof = true;
      continue;
    }
    buf.append(chunk, static_cast<size_t>(n));
  }
}

HttpResponse HttpClient::get(const std::string& path, const std::vector<std::string>& headers,
                             const std::string& host, milliseconds timeout) {
  std::string raw = "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n";
  for (const auto& h : headers) raw += h + "\r\n";
  raw += "\r\n";
  return roundTrip(raw, timeout);
}

HttpResponse httpGet(uint16_t port, const std::string& path,
                     const std::vector<std::string>& headers, const std::string& host,
                     milliseconds timeout) {
  HttpClient c(port);
  std::vector<std::string> h = headers;
  h.push_back("Connection: close");
  return c.get(path, h, host, timeout);
}

HttpResponse httpPost(uint16_t port, const std::string& path, const std::string& body,
                      milliseconds timeout) {
  HttpClient c(port);
  std::string raw = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return c.roundTrip(raw, timeout);
}

bool connectRefused(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::close(fd);
  return rc != 0 && err == ECONNREFUSED;
}

double promSum(const std::string& text, const std::string& metric,
               const std::vector<std::string>& labels) {
  double sum = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, metric.size(), metric) != 0) continue;
    char next = line.size() > metric.size() ? line[metric.size()] : '\0';
    if (next != '{' && next != ' ') continue;
    bool all = true;
    for (const auto& l : labels) {
      if (line.find(l) == std::string::npos) {
        all = false;
        break;
      }
    }
    if (!all) continue;
    size_t sp = line.rfind(' ');
    sum += std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return sum;
}

// ---- The binaries ----

Httpbin startHttpbin(const TempDir& dir, const std::string& instance, const std::string& version,
                     const std::vector<std::string>& extra_args) {
  Httpbin hb;
  std::string port_file = dir.file(instance + ".port");
  std::vector<std::string> argv = {binPath("httpbin"), "--listen",  "127.0.0.1:0", "--instance",
                                   instance,           "--version", version,       "--port-file",
                                   port_file};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  hb.process = std::make_unique<Process>(argv, dir.file(instance + ".log"));
  std::string error;
  auto content = waitForFile(port_file, *hb.process, milliseconds(10000), &error);
  if (!content) throw std::runtime_error("httpbin " + instance + ": " + error);
  auto port = jsonNumber(*content, "port");
  if (!port) throw std::runtime_error("httpbin " + instance + ": bad port file " + *content);
  hb.port = static_cast<uint16_t>(*port);
  return hb;
}

uint64_t Proxy::version() const { return jsonNumber(readFile(port_file), "version").value_or(0); }

Proxy startProxy(const TempDir& dir, const std::string& yaml,
                 const std::vector<std::string>& listener_names, int concurrency) {
  Proxy p;
  p.config_path = dir.file("proxy.yaml");
  p.port_file = dir.file("proxy.ports");
  writeFileAtomic(p.config_path, yaml);
  std::vector<std::string> argv = {binPath("istio-proxy"),
                                   "--config",
                                   p.config_path,
                                   "--port-file",
                                   p.port_file,
                                   "--concurrency",
                                   std::to_string(concurrency)};
  p.process = std::make_unique<Process>(argv, dir.file("istio-proxy.log"));
  std::string error;
  auto content = waitForFile(p.port_file, *p.process, milliseconds(10000), &error);
  if (!content) throw std::runtime_error("istio-proxy: " + error);
  auto num = [&](const std::string& key) {
    auto v = jsonNumber(*content, key);
    if (!v) throw std::runtime_error("istio-proxy port file lacks " + key + ": " + *content);
    return static_cast<uint16_t>(*v);
  };
  p.admin = num("admin");
  p.prometheus = num("prometheus");
  p.health = num("health");
  for (const auto& name : listener_names) p.listeners[name] = num(name);
  return p;
}

std::string proxyPreamble() {
  return R"(node:
  id: sidecar~127.0.0.1~client-v1.default~default.svc.cluster.local
  workloadName: client-v1
  namespace: default
  labels: {app: client, version: v1}
  serviceAccount: client
admin: {address: "127.0.0.1:0", prometheusAddress: "127.0.0.1:0", healthAddress: "127.0.0.1:0"}
)";
}

}  // namespace mesh::integration
