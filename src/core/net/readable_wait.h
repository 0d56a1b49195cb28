// asyncWaitReadable(reactor, socket, handler): handler(ec) once the socket is readable again,
// costing no syscall to start. For a caller that has just seen EAGAIN from a non-blocking receive
// (the IoBatcher's), so the next data to arrive makes a fresh edge on Asio's edge-triggered epoll.
//
// Asio's own async_wait(wait_read) re-arms the descriptor with epoll_ctl(EPOLL_CTL_MOD) each
// time (it cannot know the caller saw EAGAIN), which cost as much as the EAGAIN receive it was
// meant to save: 2.0 epoll_ctl per HTTP/1.1 request (`strace -c`). This queues a reactor
// operation through Asio's "speculative" path instead, which adds it without touching epoll;
// the operation declines the speculative attempt and completes on the next readiness event.
// It completes with operation_aborted when the socket is cancelled or closed, as Asio's own.
//
// This uses Asio's detail API (the epoll reactor of Boost 1.81, Debian 12's): the reactor
// service, a socket's per-descriptor data, reactor_op. Built only for that reactor.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <utility>

#if !defined(BOOST_ASIO_HAS_EPOLL) || defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#error "readable_wait.h is written for Asio's epoll reactor"
#endif

#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/scheduler.hpp>

namespace mesh::net {

namespace readable_wait_detail {

// Set while our own start_op call runs: the only time the reactor asks an operation to try at
// once, which for a readiness wait means "declined".
inline thread_local bool starting = false;

template <typename Handler>
class WaitOp : public boost::asio::detail::reactor_op {
 public:
  explicit WaitOp(Handler&& h)
      : reactor_op(boost::system::error_code(), &WaitOp::doPerform, &WaitOp::doComplete),
        handler_(std::move(h)) {}

  static status doPerform(reactor_op*) { return starting ? not_done : done; }

  static void doComplete(void* owner, boost::asio::detail::operation* base,
                         const boost::system::error_code&, std::size_t) {
    auto* op = static_cast<WaitOp*>(base);
    Handler h(std::move(op->handler_));
    boost::system::error_code ec = op->ec_;
    op->~WaitOp();
    boost::asio::recycling_allocator<WaitOp>().deallocate(op, 1);
    if (owner != nullptr) h(ec);  // null: the loop is being destroyed
  }

 private:
  Handler handler_;
};

// Reaches the socket's implementation (a protected member of basic_socket).
struct SocketAccess : boost::asio::ip::tcp::socket {
  static auto& impl(boost::asio::ip::tcp::socket& s) { return s.*(&SocketAccess::impl_); }
};

}  // namespace readable_wait_detail

using Reactor = boost::asio::detail::epoll_reactor;

// The reactor of the loop behind `ex` (a service lookup: keep it).
inline Reactor& reactorOf(const boost::asio::any_io_executor& ex) {
  return boost::asio::use_service<Reactor>(boost::asio::query(ex, boost::asio::execution::context));
}

// The loop's run queue, whose count of outstanding work keeps io_context::run() going. A wait
// that nobody is reading on yet should not count (a test's run() would never return): the
// caller takes it off with work_finished() and gives it back with work_started() before the
// wait completes or is dropped, since the completion counts one down again.
using Scheduler = boost::asio::detail::scheduler;
inline Scheduler& schedulerOf(const boost::asio::any_io_executor& ex) {
  return boost::asio::use_service<Scheduler>(
      boost::asio::query(ex, boost::asio::execution::context));
}

// `reactor` is reactorOf(socket.get_executor()). Counts as outstanding work, as an Asio read.
template <typename Handler>
void asyncWaitReadable(Reactor& reactor, boost::asio::ip::tcp::socket& socket, Handler&& handler) {
  using Op = readable_wait_detail::WaitOp<std::decay_t<Handler>>;
  auto& impl = readable_wait_detail::SocketAccess::impl(socket);
  Op* op = boost::asio::recycling_allocator<Op>().allocate(1);
  new (op) Op(std::decay_t<Handler>(std::forward<Handler>(handler)));
  readable_wait_detail::starting = true;
  reactor.start_op(Reactor::read_op, socket.native_handle(),
                   impl.get_implementation().reactor_data_, op, /*is_continuation=*/false,
                   /*allow_speculative=*/true);
  readable_wait_detail::starting = false;
}

}  // namespace mesh::net
