// A contiguous byte queue for one direction of one connection: bytes are appended at the
// back and consumed from the front. It grows on demand and the owner bounds it: whoever
// fills a buffer checks size() against its limit and stops reading its source (backpressure)
// until the buffer drains.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

namespace meshgate::proxy {

// Storage blocks of the sizes a buffer starts with (4 KiB for output, 16 KiB for a read)
// wait on a small per-thread free list when released, so that a pooled upstream connection
// can give its buffers back while idle and the next request takes them again without a
// trip through malloc. The list is bounded (kBlockCacheBytes per size per thread).
namespace buffer_blocks {
inline constexpr size_t kSmall = 4096;
inline constexpr size_t kLarge = 16384;
inline constexpr size_t kBlockCacheBytes = 1 << 20;
// A cached block of `size` bytes, or a new one.
std::unique_ptr<char[]> take(size_t size);
// Keeps `block` (of `size` bytes) for a later take() when its size is cached and the list
// has room; frees it otherwise.
void give(std::unique_ptr<char[]> block, size_t size);
}  // namespace buffer_blocks

class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept
      : storage_(std::move(o.storage_)),
        capacity_(std::exchange(o.capacity_, 0)),
        begin_(std::exchange(o.begin_, 0)),
        end_(std::exchange(o.end_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      buffer_blocks::give(std::move(storage_), capacity_);
      storage_ = std::move(o.storage_);
      capacity_ = std::exchange(o.capacity_, 0);
      begin_ = std::exchange(o.begin_, 0);
      end_ = std::exchange(o.end_, 0);
    }
    return *this;
  }
  ~Buffer() { buffer_blocks::give(std::move(storage_), capacity_); }

  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  std::span<const char> data() const { return {storage_.get() + begin_, size()}; }
  std::string_view view() const { return {storage_.get() + begin_, size()}; }

  void append(std::string_view bytes) {
    std::memcpy(reserve(bytes.size()).data(), bytes.data(), bytes.size());
    commit(bytes.size());
  }
  void append(std::span<const char> bytes) { append(std::string_view(bytes.data(), bytes.size())); }
  void append(const char* s) { append(std::string_view(s)); }
  void append(const std::string& s) { append(std::string_view(s)); }

  // Room for at least `n` more bytes at the back; fill it, then commit() what was written.
  std::span<char> reserve(size_t n) {
    if (capacity_ - end_ < n) {
      makeRoom(n);
    }
    return {storage_.get() + end_, capacity_ - end_};
  }
  void commit(size_t n) { end_ += n; }

  void consume(size_t n) {
    begin_ += std::min(n, size());
    if (begin_ == end_) {
      begin_ = end_ = 0;
    }
  }
  void clear() { begin_ = end_ = 0; }
  // Releases the memory of an empty buffer (an idle keep-alive connection keeps none).
  void shrink() {
    if (empty()) {
      buffer_blocks::give(std::move(storage_), capacity_);
      capacity_ = 0;
    }
  }

 private:
  void makeRoom(size_t n) {
    const size_t used = size();
    if (begin_ > 0 && capacity_ - used >= n) {
      std::memmove(storage_.get(), storage_.get() + begin_, used);  // compact in place
    } else {
      const size_t cap = std::max(capacity_ * 2, used + std::max<size_t>(n, 4096));
      std::unique_ptr<char[]> bigger = buffer_blocks::take(cap);
      if (used) {
        std::memcpy(bigger.get(), storage_.get() + begin_, used);
      }
      buffer_blocks::give(std::exchange(storage_, std::move(bigger)), capacity_);
      capacity_ = cap;
    }
    begin_ = 0;
    end_ = used;
  }

  std::unique_ptr<char[]> storage_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace meshgate::proxy
