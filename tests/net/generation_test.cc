// The shard-local generation handle (net/generation.h): counted references, and the Snapshot
// freed with the last of them.
#include "net/generation.h"

#include <utility>
#include <vector>

#include "gtest/gtest.h"

#include "core/snapshot.h"

namespace ringmx::net {
namespace {

Runtime MakeRuntime(uint64_t generation) {
  core::Config config;
  config.hostname = "mx.example.test";
  Runtime runtime;
  runtime.snapshot = core::Snapshot::Build(std::move(config), generation);
  return runtime;
}

TEST(GenerationTest, SnapshotLivesUntilTheLastReferenceGoes) {
  const uint64_t before = core::Snapshot::LiveCount();
  GenerationRef current = GenerationRef::Make(MakeRuntime(1));
  EXPECT_EQ(core::Snapshot::LiveCount(), before + 1);
  EXPECT_EQ(current->users(), 1u);
  EXPECT_EQ(current->snapshot().generation, 1u);

  // Two sessions on generation 1.
  GenerationRef session_a = current;
  GenerationRef session_b = current;
  EXPECT_EQ(current->users(), 3u);

  // The shard moves to generation 2; generation 1 lives on with its sessions.
  const Generation* first = &*current;
  current = GenerationRef::Make(MakeRuntime(2));
  EXPECT_EQ(core::Snapshot::LiveCount(), before + 2);
  EXPECT_EQ(first->users(), 2u);
  EXPECT_EQ(session_a->snapshot().generation, 1u);
  EXPECT_EQ(current->snapshot().generation, 2u);

  session_a.Reset();
  EXPECT_EQ(core::Snapshot::LiveCount(), before + 2);
  GenerationRef moved = std::move(session_b);  // a move adds no user
  EXPECT_FALSE(session_b);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(moved->users(), 1u);
  moved.Reset();  // the last session of generation 1 ends
  EXPECT_EQ(core::Snapshot::LiveCount(), before + 1);

  current.Reset();
  EXPECT_EQ(core::Snapshot::LiveCount(), before);
}

TEST(GenerationTest, TheRuntimeIsSharedNotCopiedPerSession) {
  Runtime runtime = MakeRuntime(7);
  const core::Snapshot* snapshot = runtime.snapshot.get();
  GenerationRef current = GenerationRef::Make(std::move(runtime));
  const long shared_before = current->runtime().snapshot.use_count();
  std::vector<GenerationRef> sessions(100, current);
  // No session took a reference of the shared Snapshot: only the shard-local count moved.
  EXPECT_EQ(current->runtime().snapshot.use_count(), shared_before);
  EXPECT_EQ(current->users(), 101u);
  for (const GenerationRef& session : sessions) EXPECT_EQ(&session->snapshot(), snapshot);
}

}  // namespace
}  // namespace ringmx::net
