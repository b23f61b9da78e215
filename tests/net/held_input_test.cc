// HeldInput (net/held_input.h) on a real ring: receive buffers filled by the kernel are kept out of
// the ring while their bytes wait, within the per-connection and shard-wide caps, copied beyond
// them, and given back once consumed or when the holder goes away.
#include "net/held_input.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "net/buffer_ring.h"
#include "net/reactor.h"

namespace ringmx::net {
namespace {

constexpr uint16_t kGroup = 7;
constexpr uint32_t kBufferBytes = 4096;

class Completions final : public CompletionHandler {
 public:
  void OnCompletion(const io_uring_cqe& cqe) override { cqes.push_back(cqe); }
  std::vector<io_uring_cqe> cqes;
};

class HeldInputTest : public ::testing::Test {
 protected:
  // A ring of `count` buffers (so count / 4 may be held shard-wide).
  void Init(uint32_t count) {
    absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::Create(64);
    ASSERT_TRUE(reactor.ok()) << reactor.status();
    reactor_ = std::move(reactor).value();
    absl::StatusOr<std::unique_ptr<BufferRing>> ring =
        BufferRing::Create(reactor_->ring(), kGroup, count, kBufferBytes);
    ASSERT_TRUE(ring.ok()) << ring.status();
    ring_ = std::move(ring).value();
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
  }
  void TearDown() override {
    if (fds_[0] >= 0) close(fds_[0]);
    if (fds_[1] >= 0) close(fds_[1]);
  }

  // One receive of `data` through the socket pair into a buffer the kernel picks from the ring.
  // Returns the completion (res < 0: no buffer was free, and `data` stays in the socket).
  io_uring_cqe Receive(std::string_view data) {
    if (!data.empty()) {
      EXPECT_EQ(write(fds_[1], data.data(), data.size()), static_cast<ssize_t>(data.size()));
    }
    Completions done;
    io_uring_sqe* sqe = reactor_->Prepare(&done);
    io_uring_prep_recv(sqe, fds_[0], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
    for (int i = 0; i < 100 && done.cqes.empty(); ++i) {
      EXPECT_TRUE(reactor_->RunOnce(absl::Seconds(1)).ok());
    }
    EXPECT_EQ(done.cqes.size(), 1u);
    return done.cqes.empty() ? io_uring_cqe{} : done.cqes.front();
  }
  static uint16_t BufferOf(const io_uring_cqe& cqe) {
    EXPECT_TRUE(cqe.flags & IORING_CQE_F_BUFFER);
    return static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  }
  std::string_view View(const io_uring_cqe& cqe) {
    return ring_->View(BufferOf(cqe), static_cast<uint32_t>(cqe.res));
  }
  // Everything `held` holds, oldest first, consumed in steps of at most `step` bytes.
  static std::string Drain(HeldInput& held, size_t step) {
    std::string all;
    for (int guard = 0; guard < 100000 && !held.empty(); ++guard) {
      const std::string_view front = held.Front();
      const size_t n = std::min(step, front.size());
      all.append(front.substr(0, n));
      held.Consume(n);
    }
    return all;
  }

  std::unique_ptr<Reactor> reactor_;
  std::unique_ptr<BufferRing> ring_;
  int fds_[2] = {-1, -1};
};

TEST_F(HeldInputTest, KeepsTheBufferInPlaceAndReturnsItOnceConsumed) {
  Init(8);
  const io_uring_cqe cqe = Receive("DATA-BYTES-0123456789");
  ASSERT_GT(cqe.res, 0);
  const std::string_view bytes = View(cqe);
  HeldInput held(*ring_);
  // The session took "DATA-"; the rest waits where the kernel put it.
  EXPECT_TRUE(held.Hold(bytes.substr(5), BufferOf(cqe)));
  EXPECT_EQ(ring_->held(), 1u);
  EXPECT_EQ(held.buffers(), 1u);
  EXPECT_EQ(held.Front().data(), bytes.data() + 5);  // not copied
  EXPECT_EQ(held.size(), bytes.size() - 5);
  held.Consume(6);
  EXPECT_EQ(held.Front(), "0123456789");
  EXPECT_EQ(ring_->held(), 1u);  // bytes of it still wait
  held.Consume(10);
  EXPECT_TRUE(held.empty());
  EXPECT_EQ(ring_->held(), 0u);
  EXPECT_EQ(held.held_in_place_bytes(), bytes.size() - 5);
  EXPECT_EQ(held.copied_bytes(), 0u);
}

TEST_F(HeldInputTest, CopiesBytesThatAreNotInTheBuffer) {
  Init(8);
  const io_uring_cqe cqe = Receive("abc");
  ASSERT_GT(cqe.res, 0);
  HeldInput held(*ring_);
  const std::string plaintext = "decrypted elsewhere";  // e.g. OpenSSL's plaintext
  EXPECT_FALSE(held.Hold(plaintext, BufferOf(cqe)));
  EXPECT_FALSE(held.Hold("more", std::nullopt));
  ring_->Recycle(BufferOf(cqe));  // not held: the caller gives it back
  EXPECT_EQ(ring_->held(), 0u);
  EXPECT_EQ(held.buffers(), 0u);
  EXPECT_NE(held.Front().data(), plaintext.data());
  EXPECT_EQ(held.copied_bytes(), plaintext.size() + 4);
  EXPECT_EQ(Drain(held, 5), "decrypted elsewheremore");
}

TEST_F(HeldInputTest, PastThePerConnectionCapBytesAreCopiedAndOrderIsKept) {
  Init(256);  // 64 may be held shard-wide: the per-connection cap (32) is the one that bites
  HeldInput held(*ring_);
  std::string expected;
  for (size_t i = 0; i < HeldInput::kMaxBuffers + 3; ++i) {
    const std::string data = std::string(100 + i, static_cast<char>('a' + i));
    const io_uring_cqe cqe = Receive(data);
    ASSERT_EQ(cqe.res, static_cast<int>(data.size()));
    const bool kept = held.Hold(View(cqe), BufferOf(cqe));
    EXPECT_EQ(kept, i < HeldInput::kMaxBuffers) << i;
    if (!kept) ring_->Recycle(BufferOf(cqe));
    expected += data;
  }
  EXPECT_EQ(held.buffers(), HeldInput::kMaxBuffers);
  EXPECT_EQ(ring_->held(), HeldInput::kMaxBuffers);
  EXPECT_EQ(held.size(), expected.size());
  EXPECT_EQ(Drain(held, 37), expected);
  EXPECT_EQ(ring_->held(), 0u);
}

TEST_F(HeldInputTest, ConnectionsTogetherNeverTakeMoreThanAQuarterOfTheRing) {
  Init(16);  // at most 4 held shard-wide
  ASSERT_EQ(ring_->max_held(), 4u);
  std::vector<std::unique_ptr<HeldInput>> connections;
  size_t kept = 0;
  for (int i = 0; i < 6; ++i) {
    connections.push_back(std::make_unique<HeldInput>(*ring_));
    const io_uring_cqe cqe = Receive("held bytes");
    ASSERT_GT(cqe.res, 0);
    if (connections.back()->Hold(View(cqe), BufferOf(cqe))) {
      ++kept;
    } else {
      ring_->Recycle(BufferOf(cqe));
    }
  }
  EXPECT_EQ(kept, 4u);
  EXPECT_EQ(ring_->held(), 4u);
  // The other 12 buffers are still the kernel's: 12 receives in a row get one each (none given
  // back meanwhile), the 13th finds none. A held buffer is never handed out again.
  std::vector<uint16_t> taken;
  for (int i = 0; i < 12; ++i) {
    const io_uring_cqe cqe = Receive("x");
    ASSERT_GT(cqe.res, 0) << i;
    taken.push_back(BufferOf(cqe));
  }
  EXPECT_EQ(Receive("y").res, -ENOBUFS);
  for (uint16_t id : taken) ring_->Recycle(id);
  // Connections that go away (closed while holding) give their buffers back.
  connections.clear();
  EXPECT_EQ(ring_->held(), 0u);
  for (int i = 0; i < 16; ++i) {
    const io_uring_cqe cqe = Receive(i == 0 ? "" : "z");  // the first reads the "y" left over
    ASSERT_GT(cqe.res, 0) << i;
    taken.push_back(BufferOf(cqe));
  }
  EXPECT_EQ(Receive("w").res, -ENOBUFS);
}

TEST_F(HeldInputTest, ClearGivesEveryBufferBack) {
  Init(8);
  HeldInput held(*ring_);
  for (int i = 0; i < 2; ++i) {
    const io_uring_cqe cqe = Receive("some body bytes");
    ASSERT_GT(cqe.res, 0);
    EXPECT_TRUE(held.Hold(View(cqe), BufferOf(cqe)));
  }
  EXPECT_FALSE(held.Hold("copied", std::nullopt));
  EXPECT_EQ(ring_->held(), 2u);
  held.Clear();
  EXPECT_TRUE(held.empty());
  EXPECT_EQ(held.size(), 0u);
  EXPECT_EQ(ring_->held(), 0u);
  EXPECT_EQ(held.buffers(), 0u);
}

TEST_F(HeldInputTest, OneBufferIsHeldOnceEvenIfTwoOfItsPiecesWait) {
  Init(8);
  const io_uring_cqe cqe = Receive("first-second");
  ASSERT_GT(cqe.res, 0);
  const std::string_view bytes = View(cqe);
  HeldInput held(*ring_);
  EXPECT_TRUE(held.Hold(bytes.substr(0, 6), BufferOf(cqe)));
  EXPECT_FALSE(held.Hold(bytes.substr(6), BufferOf(cqe)));  // copied: one reference per buffer
  EXPECT_EQ(ring_->held(), 1u);
  EXPECT_EQ(Drain(held, 4), "first-second");
  EXPECT_EQ(ring_->held(), 0u);
}

}  // namespace
}  // namespace ringmx::net
