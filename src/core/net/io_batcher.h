// The sends and receives that the handlers of one turn of an event loop start are made together,
// in one io_uring submission posted behind those handlers, instead of one syscall each.
//
// Why: with client, proxy and upstream sharing a core, every send wakes the peer, and the peer
// preempted the sender on its way back from the syscall: 0.47 involuntary context switches of
// the proxy per HTTP/1.1 request (`/proc/PID/task/*/status`, h2load --h1 -c64), the woken peer
// finding one request where a batch was about to come. One submission per turn wakes each peer
// once, after all of the turn's sends are in its socket. Receives ride along: the read that a
// handler starts after consuming a message (usually EAGAIN) costs no syscall of its own.
//
// Every operation is issued with MSG_DONTWAIT, so io_uring completes it inside the submission
// (done, partly done, or EAGAIN): when the submit call returns the completion queue holds every
// result and nothing is in flight, so no buffer or descriptor outlives a flush and closing needs
// no cancellation in the kernel. A caller that got EAGAIN waits for readiness (Asio's reactor)
// and queues again.
//
// One batcher per io_context (an Asio service), used only from the thread that runs it. Off
// where io_uring cannot be set up (an old kernel, a sysctl, a seccomp filter) or when the
// environment has MESH_IO_BATCH=0: of() then returns null and callers use Asio directly.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <cstddef>
#include <memory>
#include <vector>

namespace mesh::net {

class IoBatcher : public boost::asio::execution_context::service {
 public:
  static constexpr int kMaxIov = 8;

  // What a caller queues: it owns this, keeps it (and the bytes iov points at) alive and
  // unmoved while queued, and hears the result once through done().
  class Op {
   public:
    enum class Kind { kSend, kRecv };
    virtual ~Op() = default;
    // Bytes moved (a send may move fewer than asked; a receive 0 at end of stream) or -errno;
    // -EAGAIN when the socket had no room or nothing to read.
    virtual void done(int result) = 0;

    Kind kind = Kind::kSend;
    int fd = -1;
    // Set with a receive's result: the socket may hold more (data, or a FIN behind it). False
    // only where drainSignal(): then the next read can wait for readiness without a receive.
    bool more = true;
    iovec iov[kMaxIov] = {};  // a receive uses iov[0]
    int iovcnt = 0;

   private:
    friend class IoBatcher;
    msghdr msg_ = {};
    int where_ = 0;  // 0 not queued, 1 in queue_, 2 in the flush running now
    size_t slot_ = 0;
  };

  static boost::asio::execution_context::id id;

  explicit IoBatcher(boost::asio::execution_context& ctx);
  ~IoBatcher() override;
  IoBatcher(const IoBatcher&) = delete;
  IoBatcher& operator=(const IoBatcher&) = delete;

  // The batcher of the io_context behind `ex`, or null when batching is off there.
  static IoBatcher* of(const boost::asio::any_io_executor& ex);

  // Queues `op` (not queued already) for the flush after the handlers that are ready now; `ex`
  // is where that flush runs. op.done() is called from the flush, never from here.
  void queue(Op& op, const boost::asio::any_io_executor& ex);
  // `op` no longer waits: a send may or may not have left, done() will not be called.
  void cancel(Op& op);
  bool queued(const Op& op) const { return op.where_ != 0; }
  // Whether a receive's `more` is exact: the kernel flags a socket left with data or a pending
  // FIN (IORING_CQE_F_SOCK_NONEMPTY from TCP's inq hint, Linux 6.0+), checked when the ring was
  // made. Without it a read after a short one must try a receive (usually EAGAIN) first.
  bool drainSignal() const { return drain_signal_; }

  // Counters for tests: flushes that submitted something, and operations submitted.
  size_t flushes() const { return flushes_; }
  size_t submitted() const { return submitted_; }

 private:
  struct Ring;
  void shutdown() override;
  void flush();
  void runPlain(size_t i);

  std::unique_ptr<Ring> ring_;  // null: off
  std::vector<Op*> queue_;
  std::vector<Op*> running_;
  std::vector<int> results_;
  bool flush_posted_ = false;
  bool drain_signal_ = false;

  size_t flushes_ = 0;
  size_t submitted_ = 0;
};

}  // namespace mesh::net
