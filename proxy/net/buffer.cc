#include "proxy/net/buffer.h"

#include <vector>

namespace meshgate::proxy::buffer_blocks {
namespace {

// Trivially destructible, so still readable while the thread's other thread_locals are
// being destroyed: a buffer freed after the free list (at exit) bypasses it.
thread_local bool free_list_gone = false;

struct FreeList {
  std::vector<std::unique_ptr<char[]>> small, large;
  ~FreeList() { free_list_gone = true; }
};

thread_local FreeList free_list;

std::vector<std::unique_ptr<char[]>>* listOf(size_t size) {
  if (free_list_gone) {
    return nullptr;
  }
  return size == kSmall ? &free_list.small : size == kLarge ? &free_list.large : nullptr;
}

}  // namespace

std::unique_ptr<char[]> take(size_t size) {
  if (auto* list = listOf(size); list && !list->empty()) {
    auto block = std::move(list->back());
    list->pop_back();
    return block;
  }
  // Uninitialised on purpose: zeroing a buffer that is about to be filled is pure cost.
  return std::unique_ptr<char[]>(new char[size]);
}

void give(std::unique_ptr<char[]> block, size_t size) {
  if (!block) {
    return;
  }
  if (auto* list = listOf(size); list && list->size() * size < kBlockCacheBytes) {
    list->push_back(std::move(block));
  }
}

}  // namespace meshgate::proxy::buffer_blocks
