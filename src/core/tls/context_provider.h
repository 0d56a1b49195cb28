// Certificates that change at runtime. A ContextProvider holds the current TLS context of one
// listener or cluster config and builds a new one when its files change; connections take the
// context at handshake time, so new handshakes use new material while existing connections keep
// theirs (an SSL holds its SSL_CTX). The ContextRegistry watches the files' directories with
// inotify and reloads every live provider when something in them changes (an atomic rename, a
// Kubernetes-style symlink swap, a rewrite).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "core/tls/tls_context.h"

namespace mesh::tls {

class ContextProvider {
 public:
  // Reads the files and builds the first context; the error says which file and what is wrong.
  static StatusOr<std::shared_ptr<ContextProvider>> create(TlsOptions options);

  // Thread-safe; one lock and a reference count per handshake.
  std::shared_ptr<const TlsContext> current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ctx_;
  }
  const TlsOptions& options() const { return options_; }

  // Re-reads the files. Unchanged: nothing happens (false). Changed and valid: the new context
  // is used from now on (true). Invalid (e.g. a key written before its certificate): the error,
  // and the current context stays.
  StatusOr<bool> reload();

 private:
  explicit ContextProvider(TlsOptions o) : options_(std::move(o)) {}
  const TlsOptions options_;
  mutable std::mutex mu_;
  std::shared_ptr<const TlsContext> ctx_;
  TlsMaterial material_;
};

class ContextRegistry {
 public:
  ContextRegistry() = default;
  // Stops the watching thread.
  ~ContextRegistry();
  ContextRegistry(const ContextRegistry&) = delete;
  ContextRegistry& operator=(const ContextRegistry&) = delete;

  // Watches the provider's file directories from now on, for as long as the provider lives.
  // Starts the watching thread on first use. Thread-safe.
  void add(const std::shared_ptr<ContextProvider>& provider);
  // Reloads every live provider now (what a file event does). Thread-safe.
  void reloadAll();
  // Successful swaps so far.
  uint64_t swaps() const { return swaps_.load(std::memory_order_relaxed); }

 private:
  void watch(const std::string& dir);
  void run();

  std::mutex mu_;
  std::vector<std::weak_ptr<ContextProvider>> providers_;
  std::set<std::string> dirs_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
  std::atomic<uint64_t> swaps_{0};
};

}  // namespace mesh::tls
