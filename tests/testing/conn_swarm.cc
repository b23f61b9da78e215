#include "tests/testing/conn_swarm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ringmx::testing {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr int kMaxIov = 64;
constexpr int kMaxEvents = 1024;

std::string ErrnoText(const char* what, int err) { return absl::StrCat(what, ": ", strerror(err)); }

// Moves every complete reply at the front of `in` to `replies` (as TakeReply() does, with the
// same parser, but erasing what it took once: a read may bring thousands of pipelined replies).
// Returns how many.
size_t TakeReplies(std::string& in, std::vector<SmtpReply>& replies) {
  size_t start = 0;
  size_t taken = 0;
  int code = -1;
  while (const size_t length = ReplyLength(std::string_view(in).substr(start), code)) {
    SmtpReply& reply = replies.emplace_back();
    reply.text.assign(in, start, length);
    reply.code = code;
    start += length;
    ++taken;
  }
  in.erase(0, start);
  return taken;
}

}  // namespace

SwarmStep SwarmStep::Send(std::string bytes, uint64_t repeat) {
  SwarmStep s;
  s.kind = Kind::kSend;
  s.bytes = std::move(bytes);
  s.repeat = repeat;
  return s;
}

SwarmStep SwarmStep::Trickle(std::string bytes, absl::Duration interval) {
  SwarmStep s;
  s.kind = Kind::kTrickle;
  s.bytes = std::move(bytes);
  s.interval = interval;
  return s;
}

SwarmStep SwarmStep::AwaitReplies(size_t total) {
  SwarmStep s;
  s.kind = Kind::kAwaitReplies;
  s.replies = total;
  return s;
}

SwarmStep SwarmStep::AwaitClose() {
  SwarmStep s;
  s.kind = Kind::kAwaitClose;
  return s;
}

SwarmStep SwarmStep::StopReading() {
  SwarmStep s;
  s.kind = Kind::kStopReading;
  return s;
}

bool SwarmConn::Done() const { return opened && (closed || step >= steps.size()); }

const SmtpReply* SwarmConn::FindReply(int code) const {
  for (const SmtpReply& r : replies) {
    if (r.code == code) return &r;
  }
  return nullptr;
}

ConnSwarm::ConnSwarm(uint16_t port) : port_(port), epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {}

ConnSwarm::~ConnSwarm() {
  for (SwarmConn& c : conns_) {
    if (c.fd >= 0) close(c.fd);
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

uint64_t ConnSwarm::RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

uint64_t ConnSwarm::RaiseFileLimitTo(uint64_t needed, uint64_t wanted, std::string* error) {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    *error = ErrnoText("getrlimit(RLIMIT_NOFILE)", errno);
    return 0;
  }
  std::string hard_problem;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted) {
    rlim_t target = wanted;
    uint64_t nr_open = 0;
    std::ifstream in("/proc/sys/fs/nr_open");
    if (in >> nr_open && nr_open < target) target = nr_open;
    if (target > limit.rlim_max) {
      const rlimit raised = {target, target};
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
        limit = raised;
      } else {
        hard_problem =
            absl::StrCat("; raising the hard limit to ", target, " failed (", strerror(errno),
                         "): that takes root with CAP_SYS_RESOURCE; or raise the hard "
                         "limit before the test");
      }
    } else {
      hard_problem = absl::StrCat("; /proc/sys/fs/nr_open is ", nr_open);
    }
  }
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur < needed) {
    *error = absl::StrCat("RLIMIT_NOFILE is ", limit.rlim_cur, " (hard ", limit.rlim_max,
                          "), below the ", needed, " needed", hard_problem);
  }
  return limit.rlim_cur;
}

size_t ConnSwarm::Add(std::string label, std::vector<SwarmStep> steps) {
  SwarmConn& c = conns_.emplace_back();
  c.label = std::move(label);
  c.steps = std::move(steps);
  return conns_.size() - 1;
}

void ConnSwarm::Append(size_t index, std::vector<SwarmStep> steps) {
  SwarmConn& c = conns_[index];
  for (SwarmStep& s : steps) c.steps.push_back(std::move(s));
  Recount(c);
  if (c.opened && !c.closed) Advance(index, absl::Now());
}

void ConnSwarm::Recount(SwarmConn& c) {
  const bool unanswered = c.opened && !c.closed && c.replies.empty();
  if (unanswered != c.counted_unanswered) {
    c.counted_unanswered = unanswered;
    unanswered ? ++unanswered_ : --unanswered_;
  }
  const bool done = c.Done();
  if (done != c.counted_done) {
    c.counted_done = done;
    done ? ++done_ : --done_;
  }
}

void ConnSwarm::Open(size_t index) {
  SwarmConn& c = conns_[index];
  c.opened = true;
  c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    MarkClosed(c, /*reset=*/true, ErrnoText("socket", errno));
    return;
  }
  const int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    c.connected = true;
  } else if (errno != EINPROGRESS) {
    MarkClosed(c, /*reset=*/true, ErrnoText("connect", errno));
    return;
  }
  epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN | EPOLLOUT;  // EPOLLOUT reports the end of a non-blocking connect
  ev.data.u64 = index;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    MarkClosed(c, /*reset=*/true, ErrnoText("epoll_ctl", errno));
    return;
  }
  c.want_write = true;
  Recount(c);
}

void ConnSwarm::MarkClosed(SwarmConn& c, bool reset, std::string error) {
  if (c.closed) return;
  c.closed = true;
  c.reset = reset;
  if (c.error.empty()) c.error = std::move(error);
  if (c.fd >= 0) {
    close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
  }
  Recount(c);
}

void ConnSwarm::UpdateInterest(size_t index) {
  SwarmConn& c = conns_[index];
  if (c.fd < 0) return;
  epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = (c.reading ? EPOLLIN : 0u) | (c.want_write || !c.connected ? EPOLLOUT : 0u);
  ev.data.u64 = index;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void ConnSwarm::ReadAvailable(SwarmConn& c, absl::Time now) {
  char buf[kReadChunk];
  while (c.fd >= 0) {
    const ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      if (TakeReplies(c.in, c.replies) > 0) c.last_reply_at = now;
      continue;
    }
    if (n == 0) {
      MarkClosed(c, /*reset=*/false, "");
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    MarkClosed(c, /*reset=*/true, ErrnoText("recv", errno));
    return;
  }
}

void ConnSwarm::OnEvent(size_t index, uint32_t events, absl::Time now) {
  SwarmConn& c = conns_[index];
  if (c.fd < 0) return;
  if (!c.connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      MarkClosed(c, /*reset=*/true, ErrnoText("connect", err));
      return;
    }
    c.connected = true;
  }
  if (c.reading && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
    ReadAvailable(c, now);
  } else if (!c.reading && (events & (EPOLLERR | EPOLLHUP))) {
    MarkClosed(c, /*reset=*/true, "hang-up while not reading");
    return;
  }
  Advance(index, now);
}

void ConnSwarm::Advance(size_t index, absl::Time now) {
  SwarmConn& c = conns_[index];
  if (c.closed || !c.connected) {
    Recount(c);
    return;
  }
  bool want_write = false;
  while (c.step < c.steps.size()) {
    SwarmStep& s = c.steps[c.step];
    if (!c.replies.empty() && c.replies.back().code == 421 &&
        s.kind != SwarmStep::Kind::kAwaitClose) {
      // The server is closing: send nothing more, only wait for the close if asked to.
      ++c.step;
      c.send_offset = 0;
      continue;
    }
    bool advance = false;
    switch (s.kind) {
      case SwarmStep::Kind::kSend: {
        const uint64_t total = s.bytes.size() * s.repeat;
        while (c.send_offset < total) {
          iovec iov[kMaxIov];
          int n_iov = 0;
          uint64_t offset = c.send_offset;
          while (n_iov < kMaxIov && offset < total) {
            const size_t within = static_cast<size_t>(offset % s.bytes.size());
            iov[n_iov].iov_base = s.bytes.data() + within;
            iov[n_iov].iov_len = s.bytes.size() - within;
            offset += iov[n_iov].iov_len;
            ++n_iov;
          }
          msghdr msg;
          memset(&msg, 0, sizeof(msg));
          msg.msg_iov = iov;
          msg.msg_iovlen = static_cast<size_t>(n_iov);
          const ssize_t sent = sendmsg(c.fd, &msg, MSG_NOSIGNAL);
          if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            MarkClosed(c, /*reset=*/true, ErrnoText("send", errno));
            return;
          }
          c.send_offset += static_cast<uint64_t>(sent);
          c.bytes_sent += static_cast<uint64_t>(sent);
        }
        if (c.send_offset < total) {
          want_write = true;
        } else {
          advance = true;
        }
        break;
      }
      case SwarmStep::Kind::kTrickle:
        if (c.send_offset >= s.bytes.size()) {
          advance = true;
          break;
        }
        if (now < c.next_send) {
          trickling_.push_back(index);
          break;
        }
        {
          const ssize_t sent =
              send(c.fd, s.bytes.data() + c.send_offset, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
          if (sent < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
              want_write = true;
              break;
            }
            MarkClosed(c, /*reset=*/true, ErrnoText("send", errno));
            return;
          }
          ++c.send_offset;
          ++c.bytes_sent;
          c.next_send = now + s.interval;
          if (c.send_offset >= s.bytes.size()) {
            advance = true;
          } else {
            trickling_.push_back(index);
          }
        }
        break;
      case SwarmStep::Kind::kAwaitReplies:
        advance = c.replies.size() >= s.replies;
        break;
      case SwarmStep::Kind::kAwaitClose:
        break;
      case SwarmStep::Kind::kStopReading:
        c.reading = false;
        UpdateInterest(index);
        advance = true;
        break;
    }
    if (!advance) break;
    ++c.step;
    c.send_offset = 0;
    c.next_send = absl::InfinitePast();
  }
  if (want_write != c.want_write) {
    c.want_write = want_write;
    UpdateInterest(index);
  }
  Recount(c);
}

bool ConnSwarm::Run(absl::Time deadline, size_t max_unanswered,
                    const std::function<bool()>& on_tick, absl::Duration tick) {
  epoll_event events[kMaxEvents];
  absl::Time next_tick = absl::Now() + tick;
  while (true) {
    absl::Time now = absl::Now();
    while (next_to_open_ < conns_.size() && unanswered_ < std::max<size_t>(max_unanswered, 1)) {
      Open(next_to_open_++);
    }
    const bool all_done = next_to_open_ == conns_.size() && done_ == conns_.size();
    if (all_done && !on_tick) return true;
    if (now >= deadline) return false;
    absl::Time wake = std::min(deadline, now + absl::Milliseconds(100));
    if (on_tick) wake = std::min(wake, next_tick);
    for (size_t index : trickling_) wake = std::min(wake, conns_[index].next_send);
    // Rounded up: a timeout truncated to whole milliseconds would return at once for the last
    // fraction of every wait and spin the loop, taking a core's worth of CPU from the server
    // under test that shares the machine.
    const int timeout_ms = static_cast<int>(std::max<int64_t>(
        0, absl::ToInt64Milliseconds(absl::Ceil(wake - now, absl::Milliseconds(1)))));
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
    now = absl::Now();
    for (int i = 0; i < n; ++i) {
      OnEvent(static_cast<size_t>(events[i].data.u64), events[i].events, now);
    }
    if (!trickling_.empty()) {
      std::vector<size_t> due;
      due.swap(trickling_);
      std::sort(due.begin(), due.end());
      due.erase(std::unique(due.begin(), due.end()), due.end());
      for (size_t index : due) {
        if (conns_[index].next_send <= now) {
          Advance(index, now);
        } else if (!conns_[index].closed) {
          trickling_.push_back(index);
        }
      }
    }
    if (on_tick && now >= next_tick) {
      if (!on_tick()) return next_to_open_ == conns_.size() && done_ == conns_.size();
      now = absl::Now();
      next_tick = now + tick;
    }
  }
}

void ConnSwarm::CloseDone() {
  for (SwarmConn& c : conns_) {
    if (c.Done() && c.fd >= 0) {
      close(c.fd);
      c.fd = -1;
    }
  }
}

}  // namespace ringmx::testing
