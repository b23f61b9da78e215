// Fuzz target: the SMTP reply parser (smtp/reply.h) and the client engine that reads its replies
// (smtp/client.h). Whatever a next hop sends, the parser gives only well-formed replies, each of
// which is exactly what it consumed (up to the two spellings the parser folds: a bare LF for
// CR LF, "ddd " for "ddd" at the end of a reply) and parses back to itself; the engine reports
// every recipient at most once, all of them before it says the message is done, and never
// crashes.
//
// Input: [flags][stride][the hop's bytes]. flags bit 0: LMTP; bit 1: no pipelining; bit 2: no
// chunking; bits 3-4: TLS none/opportunistic/required; bit 5: an 8-bit message; bit 6: SMTPUTF8;
// bit 7: a probe. The bytes are fed in pieces of (stride % 64) + 1.
#include <stddef.h>
#include <stdint.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "smtp/client.h"
#include "smtp/reply.h"
#include "tests/fuzz/fuzz_input.h"

namespace ringmx::fuzz {
namespace {

// The wire form the parser promises to give back for `consumed`: bare LF -> CR LF, and a last
// line "ddd " -> "ddd".
std::string Normalise(std::string_view consumed) {
  std::string out;
  while (!consumed.empty()) {
    const size_t lf = consumed.find('\n');
    RINGMX_CHECK(lf != std::string_view::npos);
    std::string_view line = consumed.substr(0, lf);
    consumed.remove_prefix(lf + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() == 4 && line[3] == ' ') line.remove_suffix(1);
    out.append(line);
    out.append("\r\n");
  }
  return out;
}

void CheckReply(const smtp::Reply& reply, std::string_view consumed,
                const smtp::ReplyParser::Limits& limits) {
  RINGMX_CHECK(reply.code >= 200 && reply.code <= 599);
  RINGMX_CHECK(!reply.lines.empty() && reply.lines.size() <= limits.max_lines);
  for (const std::string& line : reply.lines) {
    RINGMX_CHECK(line.size() <= limits.max_line_bytes);
    RINGMX_CHECK(line.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
  }
  RINGMX_CHECK(reply.enhanced.empty() || (reply.enhanced[0] == '0' + reply.code / 100 &&
                                          reply.lines[0].rfind(reply.enhanced, 0) == 0));
  const std::string wire = reply.ToWire();
  RINGMX_CHECK(wire == Normalise(consumed));
  smtp::Reply again;
  RINGMX_CHECK(smtp::ParseOneReply(wire, again));
  RINGMX_CHECK(again.code == reply.code && again.lines == reply.lines &&
               again.enhanced == reply.enhanced);
}

void FuzzParser(std::string_view bytes, size_t stride) {
  smtp::ReplyParser::Limits limits;
  limits.max_line_bytes = 600;  // small limits, so that the fuzzer reaches them
  limits.max_lines = 20;
  smtp::ReplyParser parser(limits);
  std::string consumed;  // bytes of the reply in progress
  while (!bytes.empty()) {
    std::string_view piece = bytes.substr(0, stride);
    bytes.remove_prefix(piece.size());
    while (true) {
      const std::string_view before = piece;
      smtp::Reply reply;
      const smtp::ReplyParser::Result r = parser.Parse(piece, reply);
      if (r == smtp::ReplyParser::Result::kError) {
        RINGMX_CHECK(parser.failed() && !parser.error().empty());
        return;
      }
      consumed.append(before.substr(0, before.size() - piece.size()));
      if (r == smtp::ReplyParser::Result::kNeedMore) {
        RINGMX_CHECK(piece.empty());
        break;
      }
      CheckReply(reply, consumed, limits);
      consumed.clear();
    }
  }
}

void FuzzClient(uint8_t flags, std::string_view bytes, size_t stride) {
  smtp::ClientConfig config;
  config.protocol = (flags & 1) ? smtp::ClientProtocol::kLmtp : smtp::ClientProtocol::kSmtp;
  config.helo_name = "mx.example.test";
  config.use_pipelining = (flags & 2) == 0;
  config.use_chunking = (flags & 4) == 0;
  config.tls = static_cast<smtp::ClientTls>(((flags >> 3) & 3) % 3);
  smtp::OutboundMessage message;
  message.sender = "a@example.org";
  message.recipients = {"b@example.test", "c@example.test", "d@example.test"};
  message.body_8bit = (flags & 32) != 0;
  message.smtputf8 = (flags & 64) != 0;
  message.probe = (flags & 128) != 0;
  message.body = {"Subject: x\r\n\r\n.dot\r\n", "end\r\n"};

  smtp::Client client(config);
  smtp::ClientOutput out;
  std::vector<bool> reported(message.recipients.size(), false);
  int messages_done = 0;
  auto check = [&] {
    for (const smtp::RecipientResult& r : out.results) {
      RINGMX_CHECK(r.index < reported.size() && !reported[r.index]);
      reported[r.index] = true;
      RINGMX_CHECK(r.reply.code >= 200 && r.reply.code <= 599);
    }
    if (out.message_done) {
      for (bool b : reported) RINGMX_CHECK(b);
      ++messages_done;
      reported.assign(reported.size(), false);
    }
    RINGMX_CHECK(!(out.start_tls && out.close));
    const bool tls = out.start_tls;
    out.Clear();
    if (tls) client.OnTlsEstablished(out);
  };
  client.Send(message, out);
  check();
  while (!bytes.empty()) {
    std::string_view piece = bytes.substr(0, stride);
    bytes.remove_prefix(piece.size());
    client.OnInput(piece, out);
    check();
    if (client.can_send()) {
      if (messages_done < 3) {
        client.Send(message, out);
      } else {
        client.Quit(out);
      }
      check();
    }
  }
  const bool open = !client.can_send() && client.waiting_for() != smtp::Client::Waiting::kClosed;
  client.OnClosed("end of input", out);
  check();
  if (open) RINGMX_CHECK(client.waiting_for() == smtp::Client::Waiting::kClosed);
  for (bool b : reported) RINGMX_CHECK(!b);  // every message ended with message_done
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ringmx::fuzz::FuzzInput in(data, size);
  const uint8_t flags = in.Byte();
  const size_t stride = (in.Byte() % 64) + 1;
  const std::string_view bytes = in.Rest();
  ringmx::fuzz::FuzzParser(bytes, stride);
  ringmx::fuzz::FuzzClient(flags, bytes, stride);
  return 0;
}
