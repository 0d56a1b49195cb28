// Sends that the handlers of one turn of an event loop start leave together, in one io_uring
// submission posted behind them, instead of one sendmsg each.
//
// Why: with client, proxy and upstream sharing a core, every send wakes the peer, and the peer
// preempts the sender on its way back from the syscall: measured 0.47 involuntary context
// switches of the proxy per HTTP/1.1 request (`/proc/PID/task/*/status`, h2load --h1 -c64),
// and the woken peer then finds one request where a batch was about to come. One submission
// per turn wakes each peer once, after all the turn's sends are in its socket.
//
// Every send is issued with MSG_DONTWAIT, so io_uring completes it inside the submission: the
// completion queue holds every result when the submit call returns and nothing is in flight
// afterwards (no buffer or descriptor outlives a flush). A send that could not go out whole
// reports the bytes it sent; the caller finishes with a readiness wait (Asio) as before.
//
// One batcher per io_context (an Asio service), used only from the thread that runs it. Off
// where io_uring cannot be set up (an old kernel, a sysctl, a seccomp filter) or when the
// environment has MESH_SEND_BATCH=0: of() then returns null and callers send at once.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <cstddef>
#include <memory>
#include <vector>

namespace mesh::net {

class SendBatcher : public boost::asio::execution_context::service {
 public:
  static constexpr int kMaxIov = 8;

  // What a caller queues: it owns this, keeps it (and the bytes iov points at) alive and
  // unmoved while queued, and hears the result once through sent().
  class Send {
   public:
    virtual ~Send() = default;
    // The bytes written (maybe fewer than asked) or -errno; -EAGAIN when none fit.
    virtual void sent(int result) = 0;

    int fd = -1;
    iovec iov[kMaxIov] = {};
    int iovcnt = 0;

   private:
    friend class SendBatcher;
    msghdr msg_ = {};
    int where_ = 0;  // 0 not queued, 1 in queue_, 2 in the flush running now
    size_t slot_ = 0;
  };

  static boost::asio::execution_context::id id;

  explicit SendBatcher(boost::asio::execution_context& ctx);
  ~SendBatcher() override;
  SendBatcher(const SendBatcher&) = delete;
  SendBatcher& operator=(const SendBatcher&) = delete;

  // The batcher of the io_context behind `ex`, or null when batching is off there.
  static SendBatcher* of(const boost::asio::any_io_executor& ex);

  // Queues `s` (not queued already) for the flush after the handlers that are ready now; `ex`
  // is where that flush runs. s.sent() is called from the flush, never from here.
  void queue(Send& s, const boost::asio::any_io_executor& ex);
  // `s` no longer waits: its bytes may or may not have left, sent() will not be called.
  void cancel(Send& s);
  bool queued(const Send& s) const { return s.where_ != 0; }

  // Counters for tests: flushes that submitted something, and sends submitted.
  size_t flushes() const { return flushes_; }
  size_t sends() const { return sends_; }

 private:
  struct Ring;
  void shutdown() override;
  void flush();

  std::unique_ptr<Ring> ring_;  // null: off
  std::vector<Send*> queue_;
  std::vector<Send*> running_;
  std::vector<int> results_;
  bool flush_posted_ = false;
  size_t flushes_ = 0;
  size_t sends_ = 0;
};

}  // namespace mesh::net
