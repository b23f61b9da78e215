// The milter protocol, version 6 (Sendmail's libmilter, as spoken by Postfix's smtpd_milters),
// from the MTA's side: encoders for every command we send and an incremental decoder of the
// milter's replies. Pure code: no sockets, no clock. smtp/milter/session.h runs the stages on top
// of it; net/ moves the bytes (DESIGN.md section 6b, docs/milter.md).
//
// On the wire every packet is a 4-byte length in network byte order (counting the command byte
// and the data), one command byte, then the data. Strings are NUL-terminated; numbers are 32-bit
// (16-bit for the CONNECT port) in network byte order.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "smtp/reply.h"

namespace ringmx::smtp::milter {

inline constexpr uint32_t kProtocolVersion = 6;
// The largest packet (command byte + data) we accept from a milter: twice libmilter's default
// maximum data size (65535), as the issue asks. A length above it is an error, not a wait.
inline constexpr size_t kMaxReplyPacketBytes = 131070;
// The largest BODY chunk we send (libmilter's MILTER_CHUNK_SIZE).
inline constexpr size_t kMaxBodyChunkBytes = 65535;

// Commands the MTA sends (SMFIC_*).
namespace cmd {
inline constexpr char kAbort = 'A';
inline constexpr char kBody = 'B';
inline constexpr char kConnect = 'C';
inline constexpr char kMacro = 'D';
inline constexpr char kEob = 'E';
inline constexpr char kHelo = 'H';
inline constexpr char kQuitNc = 'K';
inline constexpr char kHeader = 'L';
inline constexpr char kMail = 'M';
inline constexpr char kEoh = 'N';
inline constexpr char kOptNeg = 'O';
inline constexpr char kQuit = 'Q';
inline constexpr char kRcpt = 'R';
inline constexpr char kData = 'T';
inline constexpr char kUnknown = 'U';
}  // namespace cmd

// Actions a milter may ask for in OPTNEG (SMFIF_*).
namespace action {
inline constexpr uint32_t kAddHeaders = 0x001;
inline constexpr uint32_t kChangeBody = 0x002;
inline constexpr uint32_t kAddRcpt = 0x004;
inline constexpr uint32_t kDeleteRcpt = 0x008;
inline constexpr uint32_t kChangeHeaders = 0x010;
inline constexpr uint32_t kQuarantine = 0x020;
inline constexpr uint32_t kChangeFrom = 0x040;
inline constexpr uint32_t kAddRcptWithArgs = 0x080;
inline constexpr uint32_t kSetSymList = 0x100;
inline constexpr uint32_t kAll = 0x1FF;
}  // namespace action

// Protocol flags of OPTNEG (SMFIP_*): stages the milter does not want (kNo*), stages it will not
// answer (kNr*), and extensions.
namespace proto {
inline constexpr uint32_t kNoConnect = 0x00000001;
inline constexpr uint32_t kNoHelo = 0x00000002;
inline constexpr uint32_t kNoMail = 0x00000004;
inline constexpr uint32_t kNoRcpt = 0x00000008;
inline constexpr uint32_t kNoBody = 0x00000010;
inline constexpr uint32_t kNoHeaders = 0x00000020;
inline constexpr uint32_t kNoEoh = 0x00000040;
inline constexpr uint32_t kNrHeader = 0x00000080;  // SMFIP_NR_HDR, also SMFIP_NOHREPL
inline constexpr uint32_t kNoUnknown = 0x00000100;
inline constexpr uint32_t kNoData = 0x00000200;
inline constexpr uint32_t kSkip = 0x00000400;     // the MTA understands SMFIR_SKIP
inline constexpr uint32_t kRcptRej = 0x00000800;  // send rejected recipients too
inline constexpr uint32_t kNrConnect = 0x00001000;
inline constexpr uint32_t kNrHelo = 0x00002000;
inline constexpr uint32_t kNrMail = 0x00004000;
inline constexpr uint32_t kNrRcpt = 0x00008000;
inline constexpr uint32_t kNrData = 0x00010000;
inline constexpr uint32_t kNrUnknown = 0x00020000;
inline constexpr uint32_t kNrEoh = 0x00040000;
inline constexpr uint32_t kNrBody = 0x00080000;
inline constexpr uint32_t kHeaderLeadingSpace = 0x00100000;  // SMFIP_HDR_LEADSPC
// libmilter's larger data sizes (SMFIP_MDS_256K, SMFIP_MDS_1M): never offered, and ignored when
// a milter sets them (Postfix does the same).
inline constexpr uint32_t kMaxDataSizeBits = 0x30000000;
// Everything of version 6 that we offer.
inline constexpr uint32_t kAllV6 = 0x001FFFFF;
}  // namespace proto

// Macro stages of OPTNEG's symbol lists (SMFIM_*).
enum class MacroStage : uint32_t {
  kConnect = 0,
  kHelo = 1,
  kMail = 2,
  kRcpt = 3,
  kData = 4,
  kEom = 5,
  kEoh = 6,
};
inline constexpr size_t kMacroStages = 7;

struct Macro {
  std::string name;  // as the list names it: "j", "{daemon_name}"
  std::string value;
};

// CONNECT's address family (SMFIA_*).
enum class Family : char { kUnknown = 'U', kUnix = 'L', kInet = '4', kInet6 = '6' };

// ---------------------------------------------------------------------------------------------
// Encoders. Each appends exactly one packet to `out`. A string argument is cut at its first NUL
// (the protocol cannot carry one inside a string); `data` of AppendBody is sent as it is.

void AppendOptNeg(uint32_t version, uint32_t actions, uint32_t protocol, std::string& out);
// SMFIC_MACRO: `command` is the command the macros belong to ('C', 'H', 'M', 'R', 'T', 'N', 'E').
void AppendMacros(char command, std::span<const Macro> macros, std::string& out);
// `port` and `address` are left out for kUnknown, as Postfix does; kUnix sends port 0 and the
// socket path (or "") as `address`.
void AppendConnect(std::string_view hostname, Family family, uint16_t port,
                   std::string_view address, std::string& out);
void AppendHelo(std::string_view helo, std::string& out);
// `path` as sent in the command, with its angle brackets ("<a@example.org>", "<>"); `args` the
// ESMTP parameters, one per string ("SIZE=120").
void AppendMail(std::string_view path, std::span<const std::string> args, std::string& out);
void AppendRcpt(std::string_view path, std::span<const std::string> args, std::string& out);
void AppendData(std::string& out);
// `value` in Sendmail's form: folded lines joined by "\n" (no CR).
void AppendHeader(std::string_view name, std::string_view value, std::string& out);
void AppendEoh(std::string& out);
// One BODY packet; `data` must be at most kMaxBodyChunkBytes (RINGMX_CHECK: a caller bug).
void AppendBody(std::string_view data, std::string& out);
void AppendEob(std::string& out);
void AppendAbort(std::string& out);
void AppendQuit(std::string& out);
void AppendQuitNc(std::string& out);
void AppendUnknown(std::string_view command_line, std::string& out);

// ---------------------------------------------------------------------------------------------
// Replies.

// One change a milter asks for at end of message (applied by ApplyModifications(),
// smtp/milter/modify.h).
struct Modification {
  enum class Kind : uint8_t {
    kAddHeader,        // 'h': `name`, `value`
    kInsertHeader,     // 'i': `index`, `name`, `value`
    kChangeHeader,     // 'm': `index` (1-based among fields named `name`), `value` ("" deletes)
    kChangeSender,     // 'e': `name` = the new sender, `value` = ESMTP args ("" if none)
    kAddRecipient,     // '+' or '2': `name` = the address, `value` = ESMTP args ("" if none)
    kDeleteRecipient,  // '-': `name` = the address
    kReplaceBody,      // 'b': `value` = a piece of the new body (pieces concatenate)
    kQuarantine,       // 'q': `value` = the reason
  };
  Kind kind = Kind::kAddHeader;
  uint32_t index = 0;
  std::string name;
  std::string value;

  friend bool operator==(const Modification&, const Modification&) = default;
};

struct OptNegReply {
  uint32_t version = 0;
  uint32_t actions = 0;
  uint32_t protocol = 0;
  // The milter's own macro lists per MacroStage (the OPTNEG tail, SMFIR_SETSYMLIST's list), as
  // sent: names separated by spaces. Unset for a stage the milter did not list.
  std::optional<std::string> macros[kMacroStages];
};

struct MilterReply {
  enum class Kind : uint8_t {
    kAccept,        // 'a'
    kContinue,      // 'c'
    kReject,        // 'r'
    kTempfail,      // 't'
    kDiscard,       // 'd'
    kReplyCode,     // 'y': `reply`
    kShutdown,      // '4': 421, close the SMTP connection
    kProgress,      // 'p'
    kSkip,          // 's'
    kOptNeg,        // 'O': `optneg`
    kModification,  // 'h' 'i' 'm' 'e' '+' '2' '-' 'b' 'q': `modification`
  };
  Kind kind = Kind::kContinue;
  char command = 0;  // the command byte as received
  Reply reply;       // kReplyCode: a 4yz or 5yz reply, one or more lines
  OptNegReply optneg;
  Modification modification;
};

// Decodes the data of one packet whose command byte is `command`. kInvalidArgument with what was
// wrong: an unknown command, missing or extra data, a string without its NUL, a bad reply code.
absl::StatusOr<MilterReply> DecodeReply(char command, std::string_view data);

// Incremental decoder of a milter's reply stream. Bytes may arrive split anywhere. After an
// error it stays failed: the stream cannot be trusted any more. Memory is bounded by one packet
// (kMaxReplyPacketBytes). Owned by one milter connection; shard-local.
class ReplyDecoder {
 public:
  // Consumes bytes from the front of `input` up to the end of the next complete packet and
  // returns it decoded; nullopt when no packet completes (all of `input` consumed). Any error
  // (a length of 0 or above kMaxReplyPacketBytes, or a bad packet) is kInvalidArgument, sticky.
  absl::StatusOr<std::optional<MilterReply>> Next(std::string_view& input);

  bool failed() const { return !error_.ok(); }
  // True while a packet has begun but is not complete.
  bool mid_packet() const { return !buffer_.empty(); }

 private:
  std::string buffer_;  // the packet so far: length bytes, then command and data
  absl::Status error_;
};

}  // namespace ringmx::smtp::milter
