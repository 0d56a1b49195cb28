#include "core/net/send_batcher.h"

#include <liburing.h>

#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/log.h"

namespace mesh::net {

namespace {

constexpr unsigned kRingEntries = 256;

bool batchingWanted() {
  const char* v = std::getenv("MESH_SEND_BATCH");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

}  // namespace

struct SendBatcher::Ring {
  io_uring ring{};
};

boost::asio::execution_context::id SendBatcher::id;

SendBatcher::SendBatcher(boost::asio::execution_context& ctx)
    : boost::asio::execution_context::service(ctx) {
  static const bool wanted = batchingWanted();
  if (!wanted) return;
  auto r = std::make_unique<Ring>();
  // A small ring, completions inline (MSG_DONTWAIT): no kernel thread, no registered files.
  int rc = io_uring_queue_init(kRingEntries, &r->ring, 0);
  if (rc != 0) {
    static bool said = false;
    if (!said) {
      said = true;
      log::get("net").info("io_uring unavailable ({}): sends are not batched", std::strerror(-rc));
    }
    return;
  }
  ring_ = std::move(r);
  queue_.reserve(64);
  running_.reserve(64);
  results_.reserve(64);
}

SendBatcher::~SendBatcher() {
  if (ring_) io_uring_queue_exit(&ring_->ring);
}

void SendBatcher::shutdown() {
  // The io_context is going away with whatever owned the queued sends.
  for (Send* s : queue_)
    if (s != nullptr) s->where_ = 0;
  queue_.clear();
}

SendBatcher* SendBatcher::of(const boost::asio::any_io_executor& ex) {
  auto& ctx = boost::asio::query(ex, boost::asio::execution::context);
  auto& b = boost::asio::use_service<SendBatcher>(ctx);
  return b.ring_ ? &b : nullptr;
}

void SendBatcher::queue(Send& s, const boost::asio::any_io_executor& ex) {
  s.where_ = 1;
  s.slot_ = queue_.size();
  queue_.push_back(&s);
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(ex, [this] { flush(); });
}

void SendBatcher::cancel(Send& s) {
  if (s.where_ == 1) queue_[s.slot_] = nullptr;
  if (s.where_ == 2) running_[s.slot_] = nullptr;
  s.where_ = 0;
}

void SendBatcher::flush() {
  flush_posted_ = false;
  running_.swap(queue_);  // sends queued by the callbacks below go to the next flush
  queue_.clear();
  results_.assign(running_.size(), -ECANCELED);
  if (!ring_) results_.assign(running_.size(), -EAGAIN);
  size_t next = 0;
  while (ring_ && next < running_.size()) {
    io_uring& ring = ring_->ring;
    unsigned n = 0;
    size_t begin = next;
    for (; next < running_.size() && n < kRingEntries; ++next) {
      Send* s = running_[next];
      if (s == nullptr) continue;
      s->where_ = 2;
      s->slot_ = next;
      s->msg_ = {};
      s->msg_.msg_iov = s->iov;
      s->msg_.msg_iovlen = static_cast<size_t>(s->iovcnt);
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_sendmsg(sqe, s->fd, &s->msg_, MSG_NOSIGNAL | MSG_DONTWAIT);
      io_uring_sqe_set_data64(sqe, next);
      ++n;
    }
    if (n == 0) break;
    ++flushes_;
    sends_ += n;
    int rc;
    do {
      rc = io_uring_submit(&ring);
    } while (rc == -EINTR);
    unsigned submitted = rc > 0 ? static_cast<unsigned>(rc) : 0;
    // With MSG_DONTWAIT every send completes inside the submission (sent, partly sent or
    // EAGAIN), so the completions are already here; the wait is for form.
    for (unsigned seen = 0; seen < submitted; ++seen) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_peek_cqe(&ring, &cqe) != 0 && io_uring_wait_cqe(&ring, &cqe) != 0) break;
      size_t i = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
      if (i >= begin && i < next) results_[i] = cqe->res;
      io_uring_cqe_seen(&ring, cqe);
    }
    if (submitted < n) {
      // The kernel took fewer than asked (out of memory): drop the ring, and with it the
      // entries it did not take, so none can leave later; their owners send through Asio.
      log::get("net").warn("io_uring submit took {} of {} sends ({}): sends are not batched any more",
                       submitted, n, rc < 0 ? std::strerror(-rc) : "short");
      for (size_t i = begin; i < next; ++i)
        if (results_[i] == -ECANCELED) results_[i] = -EAGAIN;
      for (size_t i = next; i < running_.size(); ++i) results_[i] = -EAGAIN;
      io_uring_queue_exit(&ring);
      ring_.reset();
      break;
    }
  }
  for (size_t i = 0; i < running_.size(); ++i) {
    Send* s = running_[i];
    if (s == nullptr) continue;  // cancelled by an earlier callback
    s->where_ = 0;
    s->sent(results_[i]);
  }
  running_.clear();
}

}  // namespace mesh::net
