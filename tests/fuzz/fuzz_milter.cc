// Fuzz target: the milter reply decoder and the milter engine (smtp/milter/codec.h,
// smtp/milter/session.h, smtp/milter/message.h). Whatever a milter sends:
//  - the decoder gives the same replies and the same error whether the bytes come whole or in
//    pieces, every reply well-formed (reply codes 4yz/5yz, header names without ':' or spaces);
//  - the engine answers every event exactly once (at once or after input), never while nothing
//    is pending, gives changes only at end of message, closes when it fails, and the changes it
//    collects apply to the stored message with our Received header still first.
//
// Input: [flags][stride][the milter's bytes]. flags bits 0-1: default_action (tempfail, accept,
// reject); bit 2: a large body (two BODY chunks). The bytes are fed in pieces of
// (stride % 64) + 1.
#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "smtp/milter/codec.h"
#include "smtp/milter/message.h"
#include "smtp/milter/session.h"
#include "tests/fuzz/fuzz_input.h"

namespace ringmx::fuzz {
namespace {

using namespace smtp::milter;

void CheckReply(const MilterReply& r) {
  switch (r.kind) {
    case MilterReply::Kind::kReplyCode:
      RINGMX_CHECK(r.reply.code >= 400 && r.reply.code <= 599 && !r.reply.lines.empty());
      break;
    case MilterReply::Kind::kModification: {
      const Modification& m = r.modification;
      if (m.kind == Modification::Kind::kAddHeader || m.kind == Modification::Kind::kInsertHeader ||
          m.kind == Modification::Kind::kChangeHeader) {
        RINGMX_CHECK(!m.name.empty());
        for (char c : m.name) RINGMX_CHECK(c > ' ' && c < 0x7F && c != ':');
        RINGMX_CHECK(m.value.find('\0') == std::string::npos);
      }
      break;
    }
    default:
      break;
  }
}

// Decodes `bytes` in pieces of `stride`; returns the command bytes of the replies and the error.
std::pair<std::string, std::string> Decode(std::string_view bytes, size_t stride) {
  ReplyDecoder decoder;
  std::string commands;
  while (!bytes.empty()) {
    std::string_view piece = bytes.substr(0, stride);
    bytes.remove_prefix(piece.size());
    while (!piece.empty()) {
      absl::StatusOr<std::optional<MilterReply>> r = decoder.Next(piece);
      if (!r.ok()) {
        RINGMX_CHECK(decoder.failed() && !r.status().message().empty());
        return {commands, std::string(r.status().message())};
      }
      if (!r->has_value()) {
        RINGMX_CHECK(piece.empty());
        break;
      }
      CheckReply(**r);
      commands.push_back((*r)->command);
    }
  }
  return {commands, ""};
}

constexpr std::string_view kReceived = "Received: from c (192.0.2.1)\r\n\tby mx; id Q1\r\n";

void FuzzSession(uint8_t flags, std::string_view bytes, size_t stride) {
  SessionConfig config;
  config.name = "fuzz";
  config.default_action = static_cast<DefaultAction>((flags & 3) % 3);
  Session session(config);
  session.SetMacro("j", "mx.example.test");
  session.SetMacro("i", "Q1");
  std::string stored(kReceived);
  stored += "From: a@example.org\r\nSubject: x\r\n\tfolded\r\n\r\n";
  stored += (flags & 4) ? std::string(kMaxBodyChunkBytes + 100, 'b') : "body\r\n";
  const std::string_view client = ClientMessage(stored);
  RINGMX_CHECK(client.size() + kReceived.size() == stored.size());
  const SplitMessage client_split = SplitHeaders(client);
  const std::string_view header_section = client.substr(0, client_split.body_offset);
  const std::string_view body = client.substr(client_split.body_offset);
  // Between ContentHeaders and ContentEnd's verdict a milter may decide the message early.
  bool in_content = false;

  Output out;
  int step = 0;
  bool owed = false;  // an event's verdict has not come yet
  const std::vector<std::string> args = {"SIZE=10"};
  smtp::Reply refused;
  refused.code = 550;
  refused.enhanced = "5.1.1";
  refused.lines = {"5.1.1 unknown"};

  const auto check = [&] {
    if (out.verdict) {
      RINGMX_CHECK(owed || in_content);
      owed = false;
      in_content = false;
      const Verdict& v = *out.verdict;
      if (v.kind == Verdict::Kind::kReject) RINGMX_CHECK(v.reply.code >= 500);
      if (v.kind == Verdict::Kind::kTempfail)
        RINGMX_CHECK(v.reply.code >= 400 && v.reply.code < 500);
      if (v.kind == Verdict::Kind::kShutdown) RINGMX_CHECK(v.reply.code == 421);
      if (v.stage != Stage::kContent) RINGMX_CHECK(v.modifications.empty());
      if (!v.modifications.empty()) {
        ModifiedMessage m =
            ApplyModifications(stored, v.modifications, session.header_leading_space());
        RINGMX_CHECK(m.bytes.starts_with(kReceived));
        const SplitMessage split = SplitHeaders(m.bytes);
        RINGMX_CHECK(!split.fields.empty() && split.fields[0].raw == kReceived);
      }
    }
    if (out.close) RINGMX_CHECK(session.finished());
    if (session.finished()) RINGMX_CHECK(session.idle());
    out.Clear();
  };
  // Runs the next event of the script when the engine can take one.
  const auto next_event = [&] {
    while (!owed && session.idle() && step < 14) {
      owed = true;
      switch (step++) {
        case 0:
          session.Connect(ConnectInfo{"c.example.org", Family::kInet, 1234, "192.0.2.1"}, out);
          break;
        case 1:
          session.Helo("c.example.org", out);
          break;
        case 2:
          session.Mail("<a@example.org>", args, out);
          break;
        case 3:
          session.RejectedRcpt("<x@example.test>", {}, refused, out);
          break;
        case 4:
          session.Rcpt("<b@example.test>", {}, out);
          break;
        case 5:
          session.Data(out);
          break;
        case 6:
          owed = false;
          in_content = true;
          session.ContentHeaders(header_section, out);
          break;
        case 7:
          owed = false;
          session.ContentBody(body, out);
          break;
        case 8:
          session.ContentEnd(out);
          break;
        case 9:
          session.Unknown("XFOO", out);
          break;
        case 10:
          session.Mail("<>", {}, out);
          break;
        case 11:
          owed = false;
          session.Abort(out);
          break;
        case 12:
          session.Mail("<c@example.org>", {}, out);
          break;
        case 13:
          owed = false;
          session.Quit(out);
          break;
      }
      check();
    }
  };
  next_event();
  while (!bytes.empty()) {
    std::string_view piece = bytes.substr(0, stride);
    bytes.remove_prefix(piece.size());
    session.OnInput(piece, out);
    check();
    next_event();
  }
  if (owed) {
    session.OnError("end of input", out);
    RINGMX_CHECK(out.verdict.has_value() && out.verdict->failed);
    check();
  }
  RINGMX_CHECK(!owed);
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ringmx::fuzz::FuzzInput in(data, size);
  const uint8_t flags = in.Byte();
  const size_t stride = (in.Byte() % 64) + 1;
  const std::string_view bytes = in.Rest();
  const auto whole = ringmx::fuzz::Decode(bytes, bytes.size() + 1);
  const auto pieces = ringmx::fuzz::Decode(bytes, stride);
  RINGMX_CHECK(whole == pieces);
  ringmx::fuzz::FuzzSession(flags, bytes, stride);
  return 0;
}
