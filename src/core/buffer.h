// A growable contiguous read buffer for one connection direction. Parsers hand out views into
// it; the owner must not call prepare() (which may move bytes) while such views are in use, and
// nothing here copies bytes except that compaction. Reading is paused while views are in flight.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace mesh {

class IoBuffer {
 public:
  explicit IoBuffer(size_t initial_capacity = 16 * 1024) : initial_(initial_capacity) {}

  const char* data() const { return data_.get() + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  std::string_view view() const { return {data(), size()}; }
  size_t capacity() const { return capacity_; }

  // Never moves the write position: a read may be in flight into the span prepare() returned,
  // and its commit() must land where that read wrote. (Rewinding an emptied buffer to offset 0
  // here once made a read that was in flight while a request body was consumed commit stale
  // bytes: the next request on that keep-alive connection was never parsed.)
  void consume(size_t n) { begin_ += n; }

  // Space to read into: at least `min_free` bytes when the buffer may grow to `max_capacity`.
  // Moves unconsumed bytes to the front when that frees enough room. Returns the writable span;
  // its size may be 0 when the buffer is full at max_capacity.
  std::pair<char*, size_t> prepare(size_t min_free, size_t max_capacity) {
    if (!data_) {
      capacity_ = initial_;
      data_ = std::make_unique_for_overwrite<char[]>(capacity_);  // no zero-fill
    }
    if (begin_ == end_) begin_ = end_ = 0;  // empty: reuse the storage from its start
    if (capacity_ - end_ < min_free && begin_ > 0) {
      std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (capacity_ - end_ < min_free && capacity_ < max_capacity) {
      size_t cap = capacity_ * 2;
      while (cap - end_ < min_free) cap *= 2;
      if (cap > max_capacity) cap = max_capacity;
      auto bigger = std::make_unique_for_overwrite<char[]>(cap);
      std::memcpy(bigger.get(), data_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      data_ = std::move(bigger);
      capacity_ = cap;
    }
    return {data_.get() + end_, capacity_ - end_};
  }
  void commit(size_t n) { end_ += n; }

  // Empty again, keeping the storage (a storage grown past the initial capacity is freed). Only
  // when no read is in flight into it.
  void reset() {
    begin_ = end_ = 0;
    if (capacity_ > initial_) {
      data_.reset();
      capacity_ = 0;
    }
  }
  // Frees the storage when nothing is buffered (idle keep-alive connections).
  void release() {
    if (begin_ == end_) {
      data_.reset();
      capacity_ = 0;
      begin_ = end_ = 0;
    }
  }

 private:
  size_t initial_;
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace mesh
