#include "core/tls/context_provider.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>

#include "core/log.h"

namespace mesh::tls {

StatusOr<std::shared_ptr<ContextProvider>> ContextProvider::create(TlsOptions options) {
  std::shared_ptr<ContextProvider> p(new ContextProvider(std::move(options)));
  auto material = loadMaterial(p->options_);
  if (!material.ok()) return material.status();
  auto ctx = TlsContext::create(p->options_, *material);
  if (!ctx.ok()) return ctx.status();
  p->ctx_ = std::move(*ctx);
  p->material_ = std::move(*material);
  return p;
}

StatusOr<bool> ContextProvider::reload() {
  auto material = loadMaterial(options_);
  if (!material.ok()) return material.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (*material == material_) return false;
  }
  // Built outside the lock: handshakes on the workers keep taking the current context.
  auto ctx = TlsContext::create(options_, *material);
  if (!ctx.ok()) return ctx.status();
  std::lock_guard<std::mutex> lock(mu_);
  ctx_ = std::move(*ctx);
  material_ = std::move(*material);
  return true;
}

ContextRegistry::~ContextRegistry() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    ssize_t n = ::write(stop_fd_, &one, sizeof(one));
    (void)n;
    thread_.join();
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void ContextRegistry::add(const std::shared_ptr<ContextProvider>& provider) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(providers_, [](const auto& w) { return w.expired(); });
  providers_.push_back(provider);
  const TlsOptions& o = provider->options();
  for (const std::string* f : {&o.certificate_chain, &o.private_key, &o.trusted_ca}) {
    if (f->empty()) continue;
    size_t slash = f->rfind('/');
    watch(slash == std::string::npos ? "." : slash == 0 ? "/" : f->substr(0, slash));
  }
}

// Called with mu_ held.
void ContextRegistry::watch(const std::string& dir) {
  if (dirs_.count(dir)) return;
  if (inotify_fd_ < 0) {
    inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (inotify_fd_ < 0 || stop_fd_ < 0) {
      MESH_LOG("main", warn, "inotify: {}; certificate files are not watched",
               std::strerror(errno));
      return;
    }
    thread_ = std::thread([this] { run(); });
  }
  int wd = ::inotify_add_watch(inotify_fd_, dir.c_str(),
                               IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE);
  if (wd < 0) {
    MESH_LOG("main", warn, "cannot watch '{}' for certificate changes: {}", dir,
             std::strerror(errno));
    return;
  }
  dirs_.insert(dir);
}

void ContextRegistry::reloadAll() {
  std::vector<std::shared_ptr<ContextProvider>> live;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& w : providers_) {
      if (auto p = w.lock()) live.push_back(std::move(p));
    }
  }
  for (const auto& p : live) {
    auto r = p->reload();
    const TlsOptions& o = p->options();
    if (!r.ok()) {
      // Often transient: the certificate and key are replaced one after the other.
      MESH_LOG("main", warn, "TLS material {} not reloaded: {}", o.certificate_chain,
               r.status().message());
    } else if (*r) {
      swaps_.fetch_add(1, std::memory_order_relaxed);
      MESH_LOG("main", info, "TLS material reloaded: {} (serial {})",
               o.certificate_chain.empty() ? o.trusted_ca : o.certificate_chain,
               p->current()->serial());
    }
  }
}

void ContextRegistry::run() {
  alignas(inotify_event) char buf[4096];
  for (;;) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    bool any = false;
    while (::read(inotify_fd_, buf, sizeof(buf)) > 0) any = true;
    if (any) reloadAll();
  }
}

}  // namespace mesh::tls
