// Worker threads for checks that must not run on a shard's thread (DESIGN.md section 6b): a
// password hash costs milliseconds of CPU, which on a shard would stall every other session of
// it. A job runs on one of a few threads and answers through the shard's Mailbox; it never
// touches shard state. Jobs not yet started can be cancelled (the client went away).
#pragma once

#include <stdint.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"

namespace ringmx::net {

// Thread-safe. Used by every shard; a lock on the AUTH path only (never per message or per
// connection).
class CheckWorkers {
 public:
  // Starts `threads` (at least 1) threads named ringmx-check<i>.
  explicit CheckWorkers(int threads);
  // Stops the threads once the job each is running ends; jobs not started are dropped.
  ~CheckWorkers();
  CheckWorkers(const CheckWorkers&) = delete;
  CheckWorkers& operator=(const CheckWorkers&) = delete;

  // Queues `job`; returns its ticket (never 0) for Cancel().
  uint64_t Submit(std::function<void()> job);
  // Drops the job if it has not started; a running or finished job is left alone (its answer is
  // dropped by the shard, which no longer knows the connection).
  void Cancel(uint64_t ticket);

  // The default number of threads: half the CPUs the process may use, at least 1, so that the
  // shards keep their cores while sessions authenticate.
  static int DefaultThreads();

 private:
  struct Job {
    uint64_t ticket = 0;
    std::function<void()> run;
  };
  void Loop(int index);

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace ringmx::net
