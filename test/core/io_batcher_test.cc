#include "core/net/io_batcher.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tls/transport_socket.h"
#include "core/turn_clock.h"

namespace mesh::net {
namespace {

using boost::asio::ip::tcp;

// Connected pairs over 127.0.0.1: `out[i]` writes, `in[i]` is its peer.
struct Pairs {
  Pairs(boost::asio::io_context& io, size_t n) {
    tcp::acceptor acceptor(io, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
    for (size_t i = 0; i < n; ++i) {
      out.emplace_back(std::make_unique<tls::TransportSocket>(io));
      out.back()->socket().connect(acceptor.local_endpoint());
      in.emplace_back(acceptor.accept());
    }
  }
  std::vector<std::unique_ptr<tls::TransportSocket>> out;
  std::vector<tcp::socket> in;
};

// Reads exactly n bytes from s (blocking; the data is already in the socket or on its way).
std::string readExactly(tcp::socket& s, size_t n) {
  std::string got(n, '\0');
  boost::system::error_code ec;
  size_t r = boost::asio::read(s, boost::asio::buffer(got), ec);
  got.resize(r);
  return got;
}

// An operation queued by hand: counts its completions.
struct Probe : IoBatcher::Op {
  int calls = 0;
  int result = 1;
  void done(int r) override {
    ++calls;
    result = r;
  }
};

bool batching(boost::asio::io_context& io) { return IoBatcher::of(io.get_executor()) != nullptr; }

TEST(IoBatcherTest, OneTurnsWritesLeaveInOneSubmissionInOrder) {
  boost::asio::io_context io;
  if (!batching(io)) GTEST_SKIP() << "io_uring is not available here";
  Pairs p(io, 10);
  std::vector<std::string> payloads;
  for (size_t i = 0; i < p.out.size(); ++i) payloads.push_back("request " + std::to_string(i));
  std::vector<size_t> written(p.out.size(), 0);
  std::vector<int> order;
  bool inline_completion = false;
  boost::asio::post(io, [&] {
    for (size_t i = 0; i < p.out.size(); ++i) {
      std::vector<boost::asio::const_buffer> bufs{
          boost::asio::buffer(payloads[i].data(), 4),
          boost::asio::buffer(payloads[i].data() + 4, payloads[i].size() - 4)};
      p.out[i]->asyncWrite(bufs, [&, i](const boost::system::error_code& ec, size_t n) {
        EXPECT_FALSE(ec) << ec.message();
        written[i] = n;
        order.push_back(static_cast<int>(i));
      });
    }
    inline_completion = !order.empty();
  });
  io.run();
  EXPECT_FALSE(inline_completion);
  IoBatcher* b = IoBatcher::of(io.get_executor());
  EXPECT_EQ(b->flushes(), 1u);
  EXPECT_EQ(b->submitted(), 10u);
  ASSERT_EQ(order.size(), 10u);
  for (size_t i = 0; i < p.out.size(); ++i) {
    EXPECT_EQ(order[i], static_cast<int>(i));
    EXPECT_EQ(written[i], payloads[i].size());
    EXPECT_EQ(readExactly(p.in[i], payloads[i].size()), payloads[i]);
  }
}

TEST(IoBatcherTest, OneFlushsCompletionsShareOneClockReading) {
  boost::asio::io_context io;
  if (!batching(io)) GTEST_SKIP() << "io_uring is not available here";
  Pairs p(io, 2);
  const std::string payload = "x";
  std::vector<std::chrono::steady_clock::time_point> seen;
  std::chrono::steady_clock::time_point after_flush;
  boost::asio::post(io, [&] {
    for (auto& out : p.out) {
      out->asyncWrite(boost::asio::buffer(payload), [&](const boost::system::error_code&, size_t) {
        seen.push_back(TurnClock::now());
        if (seen.size() == 1) {
          // The first callback outlasts a clock tick; the second still sees the same time.
          for (int i = 0; i < 100000000 && std::chrono::steady_clock::now() <= seen[0]; ++i) {
          }
          boost::asio::post(io, [&] { after_flush = TurnClock::now(); });
        }
      });
    }
  });
  io.run();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], seen[1]);
  EXPECT_GT(after_flush, seen[0]);  // a handler outside the flush reads the clock
}

TEST(IoBatcherTest, AWriteLargerThanTheSocketBufferFinishesOnceThePeerReads) {
  boost::asio::io_context io;
  if (!batching(io)) GTEST_SKIP() << "io_uring is not available here";
  Pairs p(io, 1);
  const size_t kTotal = 8 << 20;  // far past loopback's socket buffers
  std::string payload(kTotal, '\0');
  for (size_t i = 0; i < kTotal; ++i) payload[i] = static_cast<char>(i * 7 % 253);
  size_t written = 0;
  p.out[0]->asyncWrite(boost::asio::buffer(payload),
                       [&](const boost::system::error_code& ec, size_t n) {
                         EXPECT_FALSE(ec) << ec.message();
                         written = n;
                       });
  std::string got(kTotal, '\0');
  size_t have = 0;
  std::function<void()> read = [&] {
    p.in[0].async_read_some(boost::asio::buffer(got.data() + have, kTotal - have),
                            [&](const boost::system::error_code& ec, size_t n) {
                              ASSERT_FALSE(ec) << ec.message();
                              have += n;
                              if (have < kTotal) read();
                            });
  };
  read();
  io.run();
  EXPECT_EQ(written, kTotal);
  EXPECT_EQ(have, kTotal);
  EXPECT_TRUE(got == payload);
}

TEST(IoBatcherTest, CloseSendsAWaitingWriteFirstAndTheHandlerHearsIt) {
  boost::asio::io_context io;
  if (!batching(io)) GTEST_SKIP() << "io_uring is not available here";
  Pairs p(io, 1);
  std::string reply = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
  boost::system::error_code result = boost::asio::error::would_block;
  boost::asio::post(io, [&] {
    p.out[0]->asyncWrite(boost::asio::buffer(reply),
                         [&](const boost::system::error_code& ec, size_t) { result = ec; });
    p.out[0]->close();  // before the turn's flush
  });
  io.run();
  EXPECT_FALSE(result) << result.message();
  EXPECT_EQ(readExactly(p.in[0], reply.size() + 1), reply);  // then EOF
  EXPECT_EQ(IoBatcher::of(io.get_executor())->submitted(), 0u);
}

TEST(IoBatcherTest, ACancelledSendNeitherLeavesNorCompletes) {
  boost::asio::io_context io;
  if (!batching(io)) GTEST_SKIP() << "io_uring is not available here";
  Pairs p(io, 2);
  IoBatcher* b = IoBatcher::of(io.get_executor());
  std::string data = "abc";
  Probe cancelled, kept;
  for (Probe* s : {&cancelled, &kept}) {
    s->iov[0] = {data.data(), data.size()};
    s->iovcnt = 1;
  }
  cancelled.fd = p.out[0]->socket().native_handle();
  kept.fd = p.out[1]->socket().native_handle();
  b->queue(cancelled, io.get_executor());
  b->queue(kept, io.get_executor());
  EXPECT_TRUE(b->queued(cancelled));
  b->cancel(cancelled);
  EXPECT_FALSE(b->queued(cancelled));
  io.run();
  EXPECT_EQ(cancelled.calls, 0);
  EXPECT_EQ(kept.calls, 1);
  EXPECT_EQ(kept.result, 3);
  EXPECT_EQ(b->submitted(), 1u);
  p.out[0]->close();
  EXPECT_EQ(readExactly(p.in[0], 1), "");  // EOF with nothing before it
}

TEST(IoBatcherTest, SocketsAndTheirLoopDestroyedWithAFlushPending) {
  // Under ASan this fails on any use of the freed sockets or the ring.
  int completions = 0;
  {
    boost::asio::io_context io;
    if (!batching(io)) GTEST_SKIP() << "io_uring is not available here";
    std::string data = "never run";  // outlives the sockets, as a write's buffer must
    Pairs p(io, 3);
    for (auto& s : p.out)
      s->asyncWrite(boost::asio::buffer(data),
                    [&](const boost::system::error_code&, size_t) { ++completions; });
  }
  EXPECT_EQ(completions, 0);
}

TEST(IoBatcherTest, EnvironmentTurnsItOff) {
  ::setenv("MESH_IO_BATCH", "0", 1);
  boost::asio::io_context io;
  EXPECT_EQ(IoBatcher::of(io.get_executor()), nullptr);  // read when the loop's batcher is made
  ::unsetenv("MESH_IO_BATCH");
  // Writes then go out through Asio at once.
  Pairs p(io, 1);
  std::string data = "direct";
  size_t written = 0;
  p.out[0]->asyncWrite(boost::asio::buffer(data),
                       [&](const boost::system::error_code& ec, size_t n) {
                         EXPECT_FALSE(ec);
                         written = n;
                       });
  io.run();
  EXPECT_EQ(written, data.size());
  EXPECT_EQ(readExactly(p.in[0], data.size()), data);
}

TEST(IoBatcherTest, AReceiveWithNothingThereIsEagainAtOnce) {
  boost::asio::io_context io;
  if (!batching(io)) GTEST_SKIP() << "io_uring is not available here";
  Pairs p(io, 1);
  IoBatcher* b = IoBatcher::of(io.get_executor());
  char buf[16];
  Probe r;
  r.kind = IoBatcher::Op::Kind::kRecv;
  r.fd = p.in[0].native_handle();
  r.iov[0] = {buf, sizeof buf};
  r.iovcnt = 1;
  b->queue(r, io.get_executor());
  io.run();  // returns: nothing is left in flight in the kernel
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.result, -EAGAIN);
}

// Reads through a TransportSocket: a read that finds nothing waits for the bytes, and data
// with the FIN right behind it (one readiness event for both) is followed by EOF, not a hang.
TEST(IoBatcherTest, ReadsWaitForDataAndSeeTheFinBehindIt) {
  boost::asio::io_context io;
  if (!batching(io)) GTEST_SKIP() << "io_uring is not available here";
  tcp::acceptor acceptor(io, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
  tcp::socket writer(io);
  writer.connect(acceptor.local_endpoint());
  tls::TransportSocket reader(acceptor.accept());
  std::string got;
  char buf[64];
  boost::system::error_code last;
  int reads = 0;
  std::function<void()> read = [&] {
    reader.asyncReadSome(
        boost::asio::buffer(buf), [&](const boost::system::error_code& ec, size_t n) {
          ++reads;
          if (ec) {
            last = ec;
            return;
          }
          got.append(buf, n);
          if (got == "first") {
            // Both at once, before the reader's next receive.
            boost::asio::write(writer, boost::asio::buffer(std::string_view("second")));
            writer.shutdown(tcp::socket::shutdown_send);
          }
          read();
        });
  };
  read();
  boost::asio::post(io, [&] {  // after the first receive found nothing
    boost::asio::write(writer, boost::asio::buffer(std::string_view("first")));
  });
  io.run();
  EXPECT_EQ(got, "firstsecond");
  EXPECT_EQ(last, boost::asio::error::eof);
  EXPECT_EQ(reads, 3);
}

// After a receive that emptied the socket a readiness wait stays armed with no read on it; bytes
// that arrive before the next read must still reach it, and the idle wait must not keep run()
// from returning.
TEST(IoBatcherTest, BytesArrivingBetweenReadsReachTheNextRead) {
  boost::asio::io_context io;
  if (!batching(io)) GTEST_SKIP() << "io_uring is not available here";
  Pairs p(io, 1);
  char buf[16];
  std::string got;
  auto readOnce = [&] {
    p.out[0]->asyncReadSome(boost::asio::buffer(buf),
                            [&](const boost::system::error_code& ec, size_t n) {
                              ASSERT_FALSE(ec) << ec.message();
                              got.append(buf, n);
                            });
  };
  boost::asio::write(p.in[0], boost::asio::buffer(std::string_view("a")));
  readOnce();
  io.run();  // returns although a wait is armed
  io.restart();
  EXPECT_EQ(got, "a");
  // Arrives with no read pending (its readiness event finds the idle wait).
  boost::asio::write(p.in[0], boost::asio::buffer(std::string_view("b")));
  io.poll();
  io.restart();
  readOnce();
  io.run();
  EXPECT_EQ(got, "ab");
  // Same for a FIN.
  p.in[0].shutdown(tcp::socket::shutdown_send);
  io.poll();
  io.restart();
  boost::system::error_code last;
  p.out[0]->asyncReadSome(boost::asio::buffer(buf),
                          [&](const boost::system::error_code& ec, size_t) { last = ec; });
  io.run();
  EXPECT_EQ(last, boost::asio::error::eof);
}

TEST(IoBatcherTest, CancelReadBeforeTheFlushConsumesNothing) {
  boost::asio::io_context io;
  if (!batching(io)) GTEST_SKIP() << "io_uring is not available here";
  Pairs p(io, 1);
  boost::asio::write(p.in[0], boost::asio::buffer(std::string_view("kept")));
  char buf[16];
  boost::system::error_code first = boost::asio::error::would_block;
  p.out[0]->asyncReadSome(boost::asio::buffer(buf),
                          [&](const boost::system::error_code& ec, size_t) { first = ec; });
  p.out[0]->cancelRead();
  io.run();
  io.restart();
  EXPECT_EQ(first, boost::asio::error::operation_aborted);
  size_t n = 0;
  p.out[0]->asyncReadSome(boost::asio::buffer(buf),
                          [&](const boost::system::error_code& ec, size_t got) {
                            EXPECT_FALSE(ec);
                            n = got;
                          });
  io.run();
  EXPECT_EQ(std::string(buf, n), "kept");
}

}  // namespace
}  // namespace mesh::net
