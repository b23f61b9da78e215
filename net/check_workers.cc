#include "net/check_workers.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ringmx::net {

CheckWorkers::CheckWorkers(int threads) {
  threads = std::max(threads, 1);
  threads_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { Loop(i); });
}

CheckWorkers::~CheckWorkers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

uint64_t CheckWorkers::Submit(std::function<void()> job) {
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ticket = ++next_ticket_;
    queue_.push_back(Job{ticket, std::move(job)});
  }
  wake_.notify_one();
  return ticket;
}

void CheckWorkers::Cancel(uint64_t ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [ticket](const Job& job) { return job.ticket == ticket; });
  if (it != queue_.end()) queue_.erase(it);
}

int CheckWorkers::DefaultThreads() {
  cpu_set_t set;
  int cpus = 1;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
  return std::max(1, cpus / 2);
}

void CheckWorkers::Loop(int index) {
  const std::string name = absl::StrCat("ringmx-check", index);
  pthread_setname_np(pthread_self(), name.c_str());
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job.run();
  }
}

}  // namespace ringmx::net
