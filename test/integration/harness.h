// Integration-test harness: starts the real binaries (istio-proxy, httpbin) on 127.0.0.1 with
// OS-picked ports, waits for their readiness files, talks HTTP/1.1 to them, and stops every
// process it started, by process id, when the test ends.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mesh::integration {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Where the built binaries are (set by CMake).
std::string binPath(const std::string& name);

// A private directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `content` to `path` atomically (write a sibling, rename over).
void writeFileAtomic(const std::string& path, const std::string& content);
std::string readFile(const std::string& path);

// A child process. Its stdout and stderr go to `log_path`. It dies with the test process
// (PR_SET_PDEATHSIG) and is stopped by pid when this object goes away.
class Process {
 public:
  Process(std::vector<std::string> argv, std::string log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Sends a signal; no-op once the process has been reaped.
  void signal(int sig);
  // Waits for the process to exit; the exit code, or -signal when killed, or nullopt on timeout.
  std::optional<int> wait(milliseconds timeout);
  // SIGTERM, then SIGKILL if it has not exited within `grace`.
  void stop(milliseconds grace = milliseconds(5000));
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

// Waits (inotify, bounded) until `path` exists and is non-empty, failing early when `owner`
// exits. Returns its content, or nullopt with a reason in `error`.
std::optional<std::string> waitForFile(const std::string& path, Process& owner,
                                       milliseconds timeout, std::string* error);

// The same, until the content satisfies `done` (files are replaced atomically, by rename).
std::optional<std::string> waitForFileMatching(const std::string& path, Process& owner,
                                               const std::function<bool(const std::string&)>& done,
                                               milliseconds timeout, std::string* error);

// The string after "key":" in a flat JSON text ("" if absent).
std::string jsonString(const std::string& json, const std::string& key);

// How many times `what` occurs in `text`.
size_t countOf(const std::string& text, const std::string& what);

// The path of a system tool (ip, iptables, curl, setpriv) in the sbin and bin directories; ""
// if it is not installed.
std::string systemTool(const std::string& name);

// Runs a tool (istioctl, ...) to completion, at most 10 s; its exit code (-1 if it did not end)
// and its output (stdout and stderr, kept in `dir`).
std::pair<int, std::string> runTool(const TempDir& dir, std::vector<std::string> argv);

// Polls GET 127.0.0.1:port<path> until a 200 whose body satisfies `pred`, or `timeout`; returns
// the last body. For debug pages and metrics: state with no event a test can block on. Each
// request's round trip paces the loop.
std::string waitForPage(uint16_t port, const std::string& path,
                        const std::function<bool(const std::string&)>& pred,
                        milliseconds timeout = milliseconds(15000));

// The number after "key": in a flat JSON text (the port files are flat enough for this).
std::optional<uint64_t> jsonNumber(const std::string& json, const std::string& key);

struct HttpResponse {
  bool ok = false;    // a complete response arrived
  std::string error;  // why not
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = true;  // the server allows another request on this connection

  // First header with this name (case-insensitive), or "".
  std::string header(const std::string& name) const;
};

// One client connection to 127.0.0.1:port, reusable for keep-alive requests.
class HttpClient {
 public:
  explicit HttpClient(uint16_t port) : port_(port) {}
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends raw request bytes (connecting first when needed) and reads one response.
  HttpResponse roundTrip(const std::string& raw_request, milliseconds timeout,
                         bool head_request = false);
  // GET with a Host and extra header lines ("name: value").
  HttpResponse get(const std::string& path, const std::vector<std::string>& headers = {},
                   const std::string& host = "test.local",
                   milliseconds timeout = milliseconds(5000));
  // True once the server has closed the connection (checked without blocking).
  bool peerClosed();
  void close();

 private:
  bool connect(std::string* error);

  uint16_t port_;
  int fd_ = -1;
  std::string pending_;  // bytes read past the last response
};

// One-shot requests on a new connection.
HttpResponse httpGet(uint16_t port, const std::string& path,
                     const std::vector<std::string>& headers = {},
                     const std::string& host = "test.local",
                     milliseconds timeout = milliseconds(5000));
HttpResponse httpPost(uint16_t port, const std::string& path, const std::string& body = "",
                      milliseconds timeout = milliseconds(5000));
// True when a TCP connect to 127.0.0.1:port is refused (nothing listens).
bool connectRefused(uint16_t port);

// Sum of every sample of `metric` in Prometheus text whose labels contain all `labels`
// (each "name=\"value\"").
double promSum(const std::string& text, const std::string& metric,
               const std::vector<std::string>& labels = {});

// The sample backend, listening on an OS-picked port.
struct Httpbin {
  std::unique_ptr<Process> process;
  uint16_t port = 0;
};
Httpbin startHttpbin(const TempDir& dir, const std::string& instance, const std::string& version,
                     const std::vector<std::string>& extra_args = {});

// istio-proxy with a config file written into `dir`, ports read from its port file.
struct Proxy {
  std::unique_ptr<Process> process;
  std::string config_path;
  std::string port_file;
  uint16_t admin = 0, prometheus = 0, health = 0;
  std::map<std::string, uint16_t> listeners;  // filled for the names passed to startProxy

  // The config version in the port file (rewritten on every applied config).
  uint64_t version() const;
};
Proxy startProxy(const TempDir& dir, const std::string& yaml,
                 const std::vector<std::string>& listener_names, int concurrency = 2);

// The node/admin preamble every test config starts with (all ports 0).
std::string proxyPreamble();

}  // namespace mesh::integration
