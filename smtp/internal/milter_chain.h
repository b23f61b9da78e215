// The milters of one SMTP session, in the listener's order (docs/milter.md): one
// smtp::milter::Session engine each, and the rule that runs an event through them one after the
// other, as Postfix does: milter 2 gets an event only once milter 1 has answered it and did not
// refuse it. Pure; part of smtp::Session (session_milter.cc), not an API of its own.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/body_blocks.h"
#include "smtp/milter/session.h"
#include "smtp/reply.h"
#include "smtp/session.h"

namespace ringmx::smtp::internal {

// One event for every milter of the chain.
struct MilterEvent {
  enum class Kind : uint8_t {
    kConnect,
    kHelo,
    kMail,
    kRcpt,
    kRejectedRcpt,  // a recipient we refused (milters with SMFIP_RCPT_REJ); their verdicts ignored
    kData,
    kContent,  // a step of the message: the header section, a body piece, the end
    kUnknown,
  };
  Kind kind = Kind::kConnect;
  milter::ConnectInfo connect;    // kConnect
  std::string text;               // kHelo: the name; kMail/kRcpt: "<path>"; kUnknown: the line
  std::vector<std::string> args;  // kMail/kRcpt: ESMTP parameters
  Reply our_reply;                // kRejectedRcpt
  // kContent. The views are the session's and stay valid until the chain is done.
  bool send_headers = false;
  std::string_view headers;
  core::BodyBlocks::Views body;  // the body piece's blocks
  bool end = false;
};

// What the chain decided about an event.
struct MilterOutcome {
  // kContinue when no milter objected; otherwise the first refusal (kReject, kTempfail,
  // kShutdown) or kDiscard, from `milter`, which stopped the event there.
  milter::Verdict::Kind kind = milter::Verdict::Kind::kContinue;
  Reply reply;
  std::string milter;
  // End of message: each milter's changes, in chain order.
  struct Changes {
    std::string milter;
    bool leading_space = false;
    std::vector<milter::Modification> modifications;
  };
  std::vector<Changes> changes;

  bool refused() const {
    return kind == milter::Verdict::Kind::kReject || kind == milter::Verdict::Kind::kTempfail ||
           kind == milter::Verdict::Kind::kShutdown;
  }
};

// Shard-local, owned by the session's state.
class MilterChain {
 public:
  explicit MilterChain(std::vector<milter::SessionConfig> configs);

  size_t size() const { return engines_.size(); }
  const milter::Session& engine(size_t i) const { return *engines_[i]; }
  // Sets a macro on every engine ("" values are values; ClearMacro removes).
  void SetMacro(std::string_view name, const std::string& value);
  void ClearMacro(std::string_view name);

  // Runs `event` through the milters in order, as far as it can go now; busy() while a milter's
  // answer is awaited (OnInput/OnError go on with it). Only when !busy().
  void Start(MilterEvent event, Output& out);
  bool busy() const { return event_.has_value(); }
  // The outcome of the last event, once !busy(); taking it resets it.
  MilterOutcome TakeOutcome();

  // Bytes from milter `i`, or its failure (refused, lost, timed out).
  void OnInput(size_t i, std::string_view bytes, Output& out);
  void OnError(size_t i, std::string_view why, Output& out);

  // A new transaction (MAIL): every milter may see it again.
  void BeginMessage();
  // True when some milter still wants the content of the current message.
  bool WantsContent() const;
  // True when some milter asked for the recipients we refuse (SMFIP_RCPT_REJ).
  bool WantsRejectedRcpts() const;
  // Ends the transaction at the milters (ABORT where one is open). Only when !busy().
  void Abort(Output& out);
  // The session ends: QUIT to every milter that was started, and close. Any time.
  void Quit(Output& out);

 private:
  // Calls the current step's event on engine `index_`.
  void Call(Output& out);
  // Moves an engine's output into the session's Output and acts on its verdict.
  void Collect(size_t i, milter::Output& mo, Output& out);
  // Goes as far as the engines let it.
  void Run(Output& out);
  // The engine `i` takes part in the current event.
  bool Takes(size_t i) const;

  std::vector<std::unique_ptr<milter::Session>> engines_;
  // The `i` macro (the transaction's queue id), also put in the log lines: one id leads from the
  // milters' decisions to the message and delivery lines (docs/logs.md).
  std::string message_id_;
  std::vector<bool> started_;       // Connect() called
  std::vector<bool> message_done_;  // accepted, discarded or refused the current message
  std::optional<MilterEvent> event_;
  size_t index_ = 0;     // the engine the event is at
  int step_ = 0;         // kContent: 0 headers, 1 body, 2 end
  bool called_ = false;  // the current step was called on engine `index_`
  bool decided_ = false;
  MilterOutcome outcome_;
};

}  // namespace ringmx::smtp::internal
