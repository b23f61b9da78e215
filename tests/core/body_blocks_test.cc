// core::BodyBlocks, and the queue encoders over a tail in blocks: the records must be byte for
// byte those of the same tail in one piece (the on-disk format does not depend on how the body
// was held), and must decode and parse as such.
#include "core/body_blocks.h"

#include <stdint.h>

#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

#include "core/queue/log_format.h"
#include "tests/testing/in_blocks.h"

namespace ringmx::core {
namespace {

namespace q = core::queue;

constexpr q::SegmentKey kKey{0x2159454b, 0x9e3779b9};

using ::ringmx::testing::InBlocks;

std::string RandomBytes(std::mt19937& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(BodyBlocksTest, BlocksAreFilledInPlaceAndNeverMoved) {
  BodyBlocks b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.room(), 0u);
  b.AddBlock(4096);
  EXPECT_EQ(b.room(), 4096u);
  EXPECT_GE(b.capacity(), 4096u);
  const char* const first = b.block(0).data();
  const std::string line(100, 'x');
  while (b.room() >= line.size()) b.AppendToLast(line.data(), line.size());
  EXPECT_EQ(b.block(0).data(), first);
  b.AddBlock(8192);
  b.AppendToLast("tail", 4);
  EXPECT_EQ(b.block(0).data(), first);
  EXPECT_EQ(b.block_count(), 2u);
  EXPECT_EQ(b.size(), 40 * line.size() + 4);
  EXPECT_EQ(b.Flatten(), std::string(40 * 100, 'x') + "tail");
  EXPECT_EQ(b.last_block_capacity(), 8192u);
  // A move keeps the heap blocks where they are (the store's iovecs point at them).
  BodyBlocks moved = std::move(b);
  EXPECT_EQ(moved.block(0).data(), first);
  moved.clear();
  EXPECT_EQ(moved.capacity(), 0u);
  EXPECT_EQ(moved.size(), 0u);
}

TEST(BodyBlocksTest, SmallBlocksAreAllocatedExactly) {
  for (size_t n : {size_t{1}, size_t{16}, size_t{17}, size_t{29}, size_t{31}, size_t{4096}}) {
    BodyBlocks b;
    b.AddBlock(n);
    EXPECT_EQ(b.room(), std::max(n, std::string().capacity())) << n;
  }
}

TEST(BodyBlocksTest, AStringIsOneBlockAndViewsSkipEmptyBlocks) {
  BodyBlocks b(std::string("hello\r\n"));
  EXPECT_EQ(b.block_count(), 1u);
  EXPECT_EQ(b.size(), 7u);
  b.AddBlock(64);  // an empty last block
  b.AppendBlock("more\r\n");
  b.AppendBlock("");
  BodyBlocks::Views views = b.views();
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0], "hello\r\n");
  EXPECT_EQ(views[1], "more\r\n");
  b = std::string("x");
  EXPECT_EQ(b.Flatten(), "x");
  EXPECT_EQ(b.size(), 1u);
}

TEST(BodyBlocksTest, RecordsOverBlocksAreByteIdenticalToContiguousOnes) {
  std::mt19937 rng(20261207);
  for (int round = 0; round < 300; ++round) {
    const size_t size = round < 10 ? static_cast<size_t>(round) : rng() % 70000;
    const std::string body = RandomBytes(rng, size);
    const BodyBlocks blocks = InBlocks(body, rng, 1 + rng() % 20000);
    const BodyBlocks::Views views = blocks.views();
    const std::span<const std::string_view> parts(views.data(), views.size());

    q::MessageHeader header;
    header.id = "0123456789AB";
    header.sender = "a@example.test";
    header.recipients = {"b@example.test"};
    header.envelope_json = "{}";
    header.trace_headers = "Received: x\r\n";
    header.fragments = static_cast<uint32_t>(round % 3);
    header.body_size = size + 100 * header.fragments;
    const std::string contiguous = q::EncodeMessagePrefix(header, body, kKey);
    EXPECT_EQ(q::EncodeMessagePrefix(header, parts, kKey), contiguous) << "round " << round;
    const std::string fragment = q::EncodeFragmentPrefix(header.id, 7, body, kKey);
    EXPECT_EQ(q::EncodeFragmentPrefix(header.id, 7, parts, kKey), fragment) << "round " << round;

    // The record as written (prefix, then each block) decodes and parses to the body.
    std::string written = contiguous;
    for (std::string_view part : views) written += part;
    q::Frame frame;
    ASSERT_EQ(q::DecodeFrame(written, kKey, frame), q::FrameResult::kOk);
    absl::StatusOr<q::MessageView> view = q::ParseMessage(frame.payload);
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_TRUE(view->tail == body);
    written = fragment;
    for (std::string_view part : views) written += part;
    ASSERT_EQ(q::DecodeFrame(written, kKey, frame), q::FrameResult::kOk);
    absl::StatusOr<q::FragmentView> piece = q::ParseFragment(frame.payload);
    ASSERT_TRUE(piece.ok()) << piece.status();
    EXPECT_TRUE(piece->bytes == body);
  }
}

}  // namespace
}  // namespace ringmx::core
