// A shard's hold on one published config generation (DESIGN.md section 2). The Server hands each
// shard the new Runtime through its mailbox; the shard wraps it in a Generation it alone uses, and
// every connection it accepts takes a GenerationRef to the shard's current one. Counting those
// references is a plain increment on the shard's own thread: accepting a connection touches no
// atomic and no cache line another shard writes. When the last reference goes (the shard moved to
// a newer generation and the last session of this one ended), the Generation is deleted and with
// it the shard's one reference to the shared Runtime (its Snapshot and TLS contexts), which frees
// them once every shard has let go.
#pragma once

#include <stdint.h>

#include <utility>

#include "core/snapshot.h"
#include "net/runtime.h"

namespace ringmx::net {

class GenerationRef;

// Shard-local: never touched by two threads.
class Generation {
 public:
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  const Runtime& runtime() const { return runtime_; }
  const core::Snapshot& snapshot() const { return *runtime_.snapshot; }
  // The references held now (the shard's, if current, and one per session started on it).
  uint64_t users() const { return users_; }

 private:
  friend class GenerationRef;
  explicit Generation(Runtime runtime) : runtime_(std::move(runtime)) {}
  ~Generation() = default;

  const Runtime runtime_;
  uint64_t users_ = 0;  // not atomic: shard-local
};

// A counted reference to a Generation; copy on the owning shard's thread only.
class GenerationRef {
 public:
  GenerationRef() = default;
  // A new generation holding `runtime`, with this as its first reference.
  static GenerationRef Make(Runtime runtime) {
    return GenerationRef(new Generation(std::move(runtime)));
  }

  GenerationRef(const GenerationRef& other) : generation_(other.generation_) {
    if (generation_ != nullptr) ++generation_->users_;
  }
  GenerationRef(GenerationRef&& other) noexcept
      : generation_(std::exchange(other.generation_, nullptr)) {}
  GenerationRef& operator=(GenerationRef other) noexcept {
    std::swap(generation_, other.generation_);
    return *this;
  }
  ~GenerationRef() { Reset(); }

  void Reset() {
    Generation* generation = std::exchange(generation_, nullptr);
    if (generation != nullptr && --generation->users_ == 0) delete generation;
  }

  explicit operator bool() const { return generation_ != nullptr; }
  const Generation& operator*() const { return *generation_; }
  const Generation* operator->() const { return generation_; }

 private:
  explicit GenerationRef(Generation* generation) : generation_(generation) {
    ++generation_->users_;
  }
  Generation* generation_ = nullptr;
};

}  // namespace ringmx::net
