// A small blocking SMTP client for end-to-end tests: connect, send raw bytes, read whole replies
// (multi-line aware) with a deadline. Test-only.
#pragma once

#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace ringmx::testing {

struct SmtpReply {
  int code = -1;     // -1: connection closed or deadline passed before a whole reply arrived
  std::string text;  // every line of the reply, CRLF included
  // The enhanced status code of the last line ("2.0.0"), or "" if none.
  std::string Enhanced() const;
};

// Moves the first complete reply (all its lines) out of `buffer` into `reply`. False, leaving both
// untouched, if `buffer` does not hold a whole reply yet.
bool TakeReply(std::string& buffer, SmtpReply& reply);
// The length of the first complete reply at the front of `bytes`, its code in `code` (-1 for a
// malformed reply, which then ends at the end of the line where it went wrong); 0 if `bytes` does
// not hold a whole reply yet. Both use smtp::ReplyParser, the one reply parser of the tree.
size_t ReplyLength(std::string_view bytes, int& code);

class SmtpClient {
 public:
  // Connects to host (an IPv4 or IPv6 literal) and port, from `source` (a literal of the same
  // family, e.g. "127.0.0.2") when not empty. nullptr on failure.
  static std::unique_ptr<SmtpClient> Connect(const std::string& host, uint16_t port,
                                             const std::string& source = "");
  ~SmtpClient();

  bool Send(std::string_view bytes);
  // Reads one reply; waits at most `timeout`.
  SmtpReply ReadReply(absl::Duration timeout = absl::Seconds(10));
  // Sends `line` + CRLF and reads the reply.
  SmtpReply Command(std::string_view line, absl::Duration timeout = absl::Seconds(10));
  // Reads until the server closes the connection or `timeout` passes. True if it closed.
  // Everything read meanwhile is appended to `*rest` when given.
  bool WaitClosed(absl::Duration timeout, std::string* rest = nullptr);
  // A whole session up to the 250 after the data: EHLO, MAIL, RCPT..., DATA, `data`, ".".
  // `data` must already be dot-stuffed and end in CRLF. Returns the final reply.
  SmtpReply SendMail(const std::string& from, const std::vector<std::string>& rcpts,
                     std::string_view data, bool ehlo = true);
  // Bytes buffered but not yet returned as a reply.
  const std::string& pending() const { return buffer_; }
  int fd() const { return fd_; }

 private:
  explicit SmtpClient(int fd) : fd_(fd) {}
  // Reads more bytes into buffer_; false on EOF, error or deadline.
  bool Fill(absl::Time deadline);
  int fd_;
  bool eof_ = false;  // the server closed the connection
  std::string buffer_;
};

}  // namespace ringmx::testing
