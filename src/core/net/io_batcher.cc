#include "core/net/io_batcher.h"

#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/log.h"
#include "core/turn_clock.h"

namespace mesh::net {

namespace {

constexpr unsigned kRingEntries = 256;

bool batchingWanted() {
  const char* v = std::getenv("MESH_IO_BATCH");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

}  // namespace

struct IoBatcher::Ring {
  io_uring ring{};
};

namespace {

// Whether this kernel completes a MSG_DONTWAIT receive inside the submission when there is
// nothing to read (the flush relies on it: a receive left in flight would outlive its buffer).
bool completesInline(io_uring& ring) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return false;
  char byte;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_recv(sqe, sv[0], &byte, 1, MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, 1);
  bool inline_eagain = false;
  if (io_uring_submit(&ring) == 1) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(&ring, &cqe) == 0) {
      inline_eagain = cqe->res == -EAGAIN;
      io_uring_cqe_seen(&ring, cqe);
    } else {
      // Left in flight: a byte completes it, so the ring is clean before it is dropped.
      (void)!::write(sv[1], "x", 1);
      if (io_uring_wait_cqe(&ring, &cqe) == 0) io_uring_cqe_seen(&ring, cqe);
    }
  }
  ::close(sv[0]);
  ::close(sv[1]);
  return inline_eagain;
}

// Whether a receive that leaves bytes, or only a FIN, behind it says so in its completion (see
// drainSignal()). Over loopback TCP: "ab" then FIN; one byte read must report more (the "b"),
// the next must report more (the FIN), and reading the only byte of an open socket must not.
bool signalsDrain(io_uring& ring) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int cfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int sfd = -1, sfd2 = -1, cfd2 = -1;
  bool ok = false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  auto recvOne = [&](int fd, unsigned* flags) {
    char byte;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv(sqe, fd, &byte, 1, MSG_DONTWAIT);
    io_uring_cqe* cqe = nullptr;
    if (io_uring_submit(&ring) != 1 || io_uring_peek_cqe(&ring, &cqe) != 0) return -1;
    int res = cqe->res;
    *flags = cqe->flags;
    io_uring_cqe_seen(&ring, cqe);
    return res;
  };
  if (lfd >= 0 && cfd >= 0 && ::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::listen(lfd, 2) == 0 && ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) == 0 &&
      ::connect(cfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      (sfd = ::accept(lfd, nullptr, nullptr)) >= 0 &&
      (cfd2 = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
      ::connect(cfd2, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      (sfd2 = ::accept(lfd, nullptr, nullptr)) >= 0 && ::send(cfd, "ab", 2, 0) == 2 &&
      ::shutdown(cfd, SHUT_WR) == 0 && ::send(cfd2, "c", 1, 0) == 1) {
    // Loopback delivers inside send(): the bytes and the FIN are queued already.
    unsigned f1 = 0, f2 = 0, f3 = 0;
    int r1 = recvOne(sfd, &f1);
    int r2 = recvOne(sfd, &f2);
    int r3 = recvOne(sfd2, &f3);
    ok = r1 == 1 && (f1 & IORING_CQE_F_SOCK_NONEMPTY) != 0 && r2 == 1 &&
         (f2 & IORING_CQE_F_SOCK_NONEMPTY) != 0 && r3 == 1 &&
         (f3 & IORING_CQE_F_SOCK_NONEMPTY) == 0;
  }
  for (int fd : {lfd, cfd, sfd, cfd2, sfd2})
    if (fd >= 0) ::close(fd);
  return ok;
}

}  // namespace

boost::asio::execution_context::id IoBatcher::id;

IoBatcher::IoBatcher(boost::asio::execution_context& ctx)
    : boost::asio::execution_context::service(ctx) {
  if (!batchingWanted()) return;
  auto r = std::make_unique<Ring>();
  // A small ring, completions inline (MSG_DONTWAIT): no kernel thread, no registered files.
  int rc = io_uring_queue_init(kRingEntries, &r->ring, 0);
  const char* why = rc != 0 ? std::strerror(-rc) : nullptr;
  if (rc == 0 && !completesInline(r->ring)) {
    io_uring_queue_exit(&r->ring);
    why = "a non-blocking receive did not complete inside the submission";
  }
  if (why != nullptr) {
    static bool said = false;
    if (!said) {
      said = true;
      log::get("net").info("io_uring unavailable ({}): socket I/O is not batched", why);
    }
    return;
  }
  drain_signal_ = signalsDrain(r->ring);
  ring_ = std::move(r);
  queue_.reserve(64);
  running_.reserve(64);
  results_.reserve(64);
}

IoBatcher::~IoBatcher() {
  if (ring_) io_uring_queue_exit(&ring_->ring);
}

void IoBatcher::shutdown() {
  // The io_context is going away with whatever owned the queued sends.
  for (Op* s : queue_)
    if (s != nullptr) s->where_ = 0;
  queue_.clear();
}

IoBatcher* IoBatcher::of(const boost::asio::any_io_executor& ex) {
  auto& ctx = boost::asio::query(ex, boost::asio::execution::context);
  auto& b = boost::asio::use_service<IoBatcher>(ctx);
  return b.ring_ ? &b : nullptr;
}

void IoBatcher::queue(Op& s, const boost::asio::any_io_executor& ex) {
  s.where_ = 1;
  s.slot_ = queue_.size();
  queue_.push_back(&s);
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(ex, [this] { flush(); });
}

void IoBatcher::cancel(Op& s) {
  if (s.where_ == 1) queue_[s.slot_] = nullptr;
  if (s.where_ == 2) running_[s.slot_] = nullptr;
  s.where_ = 0;
}

void IoBatcher::runPlain(size_t i) {
  // io_uring is off after a failure: the same operation, one syscall.
  Op* s = running_[i];
  if (s == nullptr) return;
  ssize_t r;
  if (s->kind == Op::Kind::kRecv) {
    r = ::recv(s->fd, s->iov[0].iov_base, s->iov[0].iov_len, MSG_DONTWAIT);
  } else {
    msghdr msg{};
    msg.msg_iov = s->iov;
    msg.msg_iovlen = static_cast<size_t>(s->iovcnt);
    r = ::sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  results_[i] = r >= 0 ? static_cast<int>(r) : -errno;
  s->more = true;
}

void IoBatcher::flush() {
  flush_posted_ = false;
  running_.swap(queue_);  // what the callbacks below queue goes to the next flush
  queue_.clear();
  results_.assign(running_.size(), -ECANCELED);
  for (size_t i = 0; i < running_.size(); ++i) {
    if (running_[i] == nullptr) continue;
    running_[i]->where_ = 2;  // a callback's cancel() finds it here from now on
    running_[i]->slot_ = i;
  }
  if (!ring_) {
    for (size_t i = 0; i < running_.size(); ++i) runPlain(i);
  }
  size_t next = 0;
  while (ring_ && next < running_.size()) {
    io_uring& ring = ring_->ring;
    unsigned n = 0;
    size_t begin = next;
    for (; next < running_.size() && n < kRingEntries; ++next) {
      Op* s = running_[next];
      if (s == nullptr) continue;
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      if (s->kind == Op::Kind::kRecv) {
        io_uring_prep_recv(sqe, s->fd, s->iov[0].iov_base, s->iov[0].iov_len, MSG_DONTWAIT);
      } else if (s->iovcnt == 1) {
        io_uring_prep_send(sqe, s->fd, s->iov[0].iov_base, s->iov[0].iov_len,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
      } else {
        s->msg_ = {};
        s->msg_.msg_iov = s->iov;
        s->msg_.msg_iovlen = static_cast<size_t>(s->iovcnt);
        io_uring_prep_sendmsg(sqe, s->fd, &s->msg_, MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      io_uring_sqe_set_data64(sqe, next);
      ++n;
    }
    if (n == 0) break;
    ++flushes_;
    submitted_ += n;
    int rc;
    do {
      rc = io_uring_submit(&ring);
    } while (rc == -EINTR);
    unsigned submitted = rc > 0 ? static_cast<unsigned>(rc) : 0;
    // With MSG_DONTWAIT every operation completes inside the submission (done, partly done or
    // EAGAIN; checked when the ring was made), so the completions are already here.
    for (unsigned seen = 0; seen < submitted; ++seen) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_peek_cqe(&ring, &cqe) != 0 && io_uring_wait_cqe(&ring, &cqe) != 0) break;
      size_t i = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
      if (i >= begin && i < next) {
        results_[i] = cqe->res;
        if (running_[i] != nullptr)
          running_[i]->more = !drain_signal_ || (cqe->flags & IORING_CQE_F_SOCK_NONEMPTY) != 0;
      }
      io_uring_cqe_seen(&ring, cqe);
    }
    if (submitted < n) {
      // The kernel took fewer than asked (out of memory): drop the ring, and with it the
      // entries it did not take, so none can run later; they run the plain way.
      log::get("net").warn(
          "io_uring took {} of {} operations ({}): socket I/O is not batched any more", submitted,
          n, rc < 0 ? std::strerror(-rc) : "short");
      io_uring_queue_exit(&ring);
      ring_.reset();
      for (size_t i = begin; i < running_.size(); ++i) {
        if (i >= next || results_[i] == -ECANCELED) runPlain(i);
      }
      break;
    }
  }
  TurnClock::Batch batch;  // the callbacks below share one clock reading (core/turn_clock.h)
  for (size_t i = 0; i < running_.size(); ++i) {
    Op* s = running_[i];
    if (s == nullptr) continue;  // cancelled by an earlier callback
    s->where_ = 0;
    s->done(results_[i]);
  }
  running_.clear();
}

}  // namespace mesh::net
