#include "core/buffer.h"

#include <gtest/gtest.h>

#include <cstring>

namespace mesh {
namespace {

// Writes `s` into the span a read would fill and commits it, as a socket read completion does.
void readInto(char* span, IoBuffer& b, std::string_view s) {
  std::memcpy(span, s.data(), s.size());
  b.commit(s.size());
}

TEST(IoBufferTest, ConsumingEverythingWhileAReadIsInFlightKeepsTheReadsBytes) {
  IoBuffer b(64);
  auto [p, n] = b.prepare(16, 1024);
  ASSERT_GE(n, 16u);
  readInto(p, b, "HEADbody");
  b.consume(4);  // the head is parsed
  // A read is started while the body is still buffered...
  auto [q, m] = b.prepare(16, 1024);
  ASSERT_GE(m, 16u);
  b.consume(4);  // ...then the body is consumed before that read completes.
  readInto(q, b, "NEXT");
  EXPECT_EQ(b.view(), "NEXT");
}

TEST(IoBufferTest, AnEmptyBufferIsReusedFromItsStart) {
  IoBuffer b(16);
  auto [p, n] = b.prepare(8, 16);
  readInto(p, b, "12345678");
  b.consume(8);
  EXPECT_TRUE(b.empty());
  auto [q, m] = b.prepare(16, 16);  // all 16 bytes are free again, without growing
  EXPECT_EQ(m, 16u);
  EXPECT_EQ(b.capacity(), 16u);
  readInto(q, b, "abc");
  EXPECT_EQ(b.view(), "abc");
}

TEST(IoBufferTest, PrepareMovesUnconsumedBytesToTheFrontOrGrows) {
  IoBuffer b(16);
  auto [p, n] = b.prepare(16, 64);
  readInto(p, b, "0123456789abcdef");
  b.consume(10);
  auto [q, m] = b.prepare(8, 64);  // compacts: "abcdef" moves to the front
  EXPECT_GE(m, 8u);
  EXPECT_EQ(b.view(), "abcdef");
  readInto(q, b, "gh");
  EXPECT_EQ(b.view(), "abcdefgh");
  auto [r, k] = b.prepare(32, 64);  // grows
  EXPECT_GE(k, 32u);
  EXPECT_EQ(b.view(), "abcdefgh");
  (void)r;
}

}  // namespace
}  // namespace mesh
