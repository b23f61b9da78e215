#include "smtp/dsn.h"

#include <stdio.h>

#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "smtp/dsn_params.h"
#include "tests/testing/temp_dir.h"

namespace ringmx::smtp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// 2026-03-04 05:06:07 UTC (a Wednesday).
absl::Time At(int64_t seconds_after) { return absl::FromUnixSeconds(1772600767 + seconds_after); }

constexpr std::string_view kMessage =
    "Received: from client.example.org (192.0.2.1)\r\n"
    "\tby mx.example.test (ringmx) with ESMTP id Q1; Wed, 4 Mar 2026 05:06:07 +0000\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.test\r\n"
    "Subject: Hello\r\n"
    "Message-ID: <m1@example.org>\r\n"
    "\r\n"
    "Body line one.\r\n"
    "Body line two.\r\n";

DsnRecipient Failed(std::string address, std::string diagnostic) {
  DsnRecipient r;
  r.address = std::move(address);
  r.action = DsnAction::kFailed;
  r.remote_mta = "mailbox.example.test";
  r.diagnostic = std::move(diagnostic);
  r.last_attempt = At(60);
  return r;
}

DsnRequest BaseRequest() {
  DsnRequest request;
  request.kind = DsnKind::kFailure;
  request.hostname = "mx.example.test";
  request.dsn_id = "D42";
  request.original_id = "Q1";
  request.sender = "alice@example.org";
  request.arrival = At(0);
  request.now = At(61);
  request.message = kMessage;
  request.recipients.push_back(
      Failed("bob@example.test", "550 5.1.1 <bob@example.test>: Recipient address rejected"));
  return request;
}

// Every line ends in CRLF and holds at most 998 octets (RFC 5322 section 2.1.1).
void ExpectWellFormedLines(std::string_view bytes) {
  ASSERT_TRUE(bytes.ends_with("\r\n"));
  size_t start = 0;
  while (start < bytes.size()) {
    const size_t crlf = bytes.find("\r\n", start);
    ASSERT_NE(crlf, std::string_view::npos);
    const std::string_view line = bytes.substr(start, crlf - start);
    EXPECT_LE(line.size(), 998u) << line.substr(0, 60);
    EXPECT_EQ(line.find_first_of("\r\n"), std::string_view::npos) << line.substr(0, 60);
    start = crlf + 2;
  }
}

std::string BoundaryOf(std::string_view bytes) {
  const size_t at = bytes.find("boundary=\"");
  if (at == std::string_view::npos) return "";
  const size_t begin = at + 10;
  return std::string(bytes.substr(begin, bytes.find('"', begin) - begin));
}

// The content of the MIME part whose Content-Type line is `type` (up to the next delimiter).
std::string PartBody(std::string_view bytes, std::string_view type) {
  const std::string boundary = BoundaryOf(bytes);
  const size_t header = bytes.find(absl::StrCat("Content-Type: ", std::string(type), "\r\n"));
  if (header == std::string_view::npos) return "(no such part)";
  const size_t begin = bytes.find("\r\n\r\n", header) + 4;
  const size_t end = bytes.find(absl::StrCat("\r\n--", boundary), begin);
  return std::string(bytes.substr(begin, end - begin));
}

// Parses `bytes` with Python's email package (policy.default) and prints what a reader of the
// report sees: the top type and report-type, the part types, the defects the parser found, the
// per-message fields and one line per recipient block (fields unfolded, "Name=value|...").
std::string ParseWithPython(std::string_view bytes) {
  testing::TempDir dir;
  {
    std::ofstream(dir / "dsn.eml", std::ios::binary).write(bytes.data(), bytes.size());
    std::ofstream script(dir / "check.py");
    script << R"PY(
import email, email.policy, sys
msg = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
print('type', msg.get_content_type())
print('report-type', msg.get_param('report-type'))
print('parts', ','.join(p.get_content_type() for p in msg.iter_parts()))
defects = [str(d) for part in msg.walk() for d in part.defects]
print('defects', len(defects), ';'.join(defects))
def fields(m):
    return '|'.join(k + '=' + ' '.join(str(v).split()) for k, v in m.items())
for part in msg.iter_parts():
    t = part.get_content_type()
    if t == 'message/delivery-status':
        blocks = part.get_payload()
        print('per-message', fields(blocks[0]))
        for block in blocks[1:]:
            print('recipient', fields(block))
    elif t == 'message/rfc822':
        inner = part.get_payload()[0]
        print('original-subject', inner['subject'])
        print('original-body', repr(inner.get_payload(decode=True)))
    elif t == 'text/rfc822-headers':
        print('headers-bytes', len(part.get_payload(decode=True)))
    elif t == 'text/plain':
        print('text-first-line', part.get_content().splitlines()[0])
)PY";
  }
  const std::string command =
      absl::StrCat("/usr/bin/python3 ", dir / "check.py", " ", dir / "dsn.eml", " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "(popen failed)";
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  if (status != 0) absl::StrAppend(&output, "(exit status ", status, ")");
  return output;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(DsnTest, FailureForOneRecipientHasTheExactStructure) {
  const std::optional<DsnMessage> dsn = BuildDsn(BaseRequest());
  ASSERT_TRUE(dsn);
  EXPECT_EQ(dsn->rcpt_to, "alice@example.org");
  EXPECT_FALSE(dsn->body_8bitmime);
  EXPECT_FALSE(dsn->smtputf8);
  EXPECT_THAT(dsn->reported, ElementsAre(0u));
  EXPECT_EQ(dsn->returned, DsnMessage::Returned::kFull);
  ExpectWellFormedLines(dsn->bytes);
  const std::string boundary = BoundaryOf(dsn->bytes);
  EXPECT_EQ(boundary, "=_ringmx_D42_");

  const std::string expected_head = absl::StrCat(
      "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n"
      "To: <alice@example.org>\r\n"
      "Subject: Undelivered Mail Returned to Sender\r\n"
      "Date: Wed, 4 Mar 2026 05:07:08 +0000\r\n"
      "Message-ID: <1772600828000000.D42@mx.example.test>\r\n"
      "Auto-Submitted: auto-replied\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/report; report-type=delivery-status;\r\n"
      "\tboundary=\"=_ringmx_D42_\"\r\n"
      "\r\n"
      "This is a MIME-encapsulated message.\r\n"
      "\r\n"
      "--=_ringmx_D42_\r\n"
      "Content-Description: Notification\r\n"
      "Content-Type: text/plain; charset=us-ascii\r\n"
      "\r\n"
      "This is the mail delivery system at host mx.example.test.\r\n");
  EXPECT_EQ(dsn->bytes.substr(0, expected_head.size()), expected_head);

  EXPECT_EQ(PartBody(dsn->bytes, "message/delivery-status"),
            "Reporting-MTA: dns; mx.example.test\r\n"
            "Arrival-Date: Wed, 4 Mar 2026 05:06:07 +0000\r\n"
            "X-Ringmx-Queue-ID: Q1\r\n"
            "\r\n"
            "Final-Recipient: rfc822; bob@example.test\r\n"
            "Action: failed\r\n"
            "Status: 5.1.1\r\n"
            "Remote-MTA: dns; mailbox.example.test\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.test>: Recipient address\r\n"
            " rejected\r\n"
            "Last-Attempt-Date: Wed, 4 Mar 2026 05:07:07 +0000\r\n");

  const std::string text = PartBody(dsn->bytes, "text/plain; charset=us-ascii");
  EXPECT_THAT(text, HasSubstr("could not be delivered"));
  EXPECT_THAT(text, HasSubstr("A copy of your message is attached below."));
  EXPECT_THAT(text, HasSubstr("<bob@example.test>: host mailbox.example.test said: 550 5.1.1"));

  // The original comes back byte for byte, then the closing delimiter.
  const std::string tail = absl::StrCat(
      "--=_ringmx_D42_\r\n"
      "Content-Description: Undelivered Message\r\n"
      "Content-Type: message/rfc822\r\n"
      "\r\n",
      std::string(kMessage), "\r\n--=_ringmx_D42_--\r\n");
  EXPECT_TRUE(dsn->bytes.ends_with(tail)) << dsn->bytes;

  EXPECT_THAT(
      Lines(ParseWithPython(dsn->bytes)),
      ElementsAre("type multipart/report", "report-type delivery-status",
                  "parts text/plain,message/delivery-status,message/rfc822", "defects 0 ",
                  "text-first-line This is the mail delivery system at host mx.example.test.",
                  "per-message Reporting-MTA=dns; mx.example.test|"
                  "Arrival-Date=Wed, 4 Mar 2026 05:06:07 +0000|X-Ringmx-Queue-ID=Q1",
                  "recipient Final-Recipient=rfc822; bob@example.test|Action=failed|Status=5.1.1|"
                  "Remote-MTA=dns; mailbox.example.test|Diagnostic-Code=smtp; 550 5.1.1 "
                  "<bob@example.test>: Recipient address rejected|"
                  "Last-Attempt-Date=Wed, 4 Mar 2026 05:07:07 +0000",
                  "original-subject Hello",
                  "original-body b'Body line one.\\r\\nBody line two.\\r\\n'"));
}

TEST(DsnTest, FailureForSeveralRecipientsListsOnlyTheFailedOnesWithOrcptAndEnvid) {
  DsnRequest request = BaseRequest();
  request.envid = "QQ314159";
  request.recipients[0].orcpt = DsnOrcpt{"rfc822", "Bob.Original@example.net"};
  DsnRecipient delivered;
  delivered.address = "carol@example.test";
  delivered.action = DsnAction::kDelivered;
  request.recipients.push_back(delivered);
  DsnRecipient expired;
  expired.address = "dave@example.test";
  expired.action = DsnAction::kFailed;
  expired.diagnostic = "connection refused by 192.0.2.9; message expired after 5 days";
  expired.diagnostic_is_smtp = false;
  expired.status = "4.4.1";
  request.recipients.push_back(expired);

  const std::optional<DsnMessage> dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  EXPECT_THAT(dsn->reported, ElementsAre(0u, 2u));
  ExpectWellFormedLines(dsn->bytes);
  EXPECT_THAT(dsn->bytes, Not(HasSubstr("carol")));
  EXPECT_EQ(PartBody(dsn->bytes, "message/delivery-status"),
            "Original-Envelope-Id: QQ314159\r\n"
            "Reporting-MTA: dns; mx.example.test\r\n"
            "Arrival-Date: Wed, 4 Mar 2026 05:06:07 +0000\r\n"
            "X-Ringmx-Queue-ID: Q1\r\n"
            "\r\n"
            "Original-Recipient: rfc822; Bob.Original@example.net\r\n"
            "Final-Recipient: rfc822; bob@example.test\r\n"
            "Action: failed\r\n"
            "Status: 5.1.1\r\n"
            "Remote-MTA: dns; mailbox.example.test\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.test>: Recipient address\r\n"
            " rejected\r\n"
            "Last-Attempt-Date: Wed, 4 Mar 2026 05:07:07 +0000\r\n"
            "\r\n"
            "Final-Recipient: rfc822; dave@example.test\r\n"
            "Action: failed\r\n"
            "Status: 4.4.1\r\n"
            "Diagnostic-Code: X-Ringmx; connection refused by 192.0.2.9; message expired\r\n"
            " after 5 days\r\n");
  const std::string text = PartBody(dsn->bytes, "text/plain; charset=us-ascii");
  EXPECT_THAT(text, HasSubstr("<dave@example.test>: connection refused by 192.0.2.9"));

  const std::vector<std::string> lines = Lines(ParseWithPython(dsn->bytes));
  ASSERT_EQ(lines.size(), 10u) << ParseWithPython(dsn->bytes);
  EXPECT_EQ(lines[3], "defects 0 ");
  EXPECT_EQ(lines[5],
            "per-message Original-Envelope-Id=QQ314159|Reporting-MTA=dns; mx.example.test|"
            "Arrival-Date=Wed, 4 Mar 2026 05:06:07 +0000|X-Ringmx-Queue-ID=Q1");
  EXPECT_THAT(lines[6], StartsWith("recipient Original-Recipient=rfc822; Bob.Original@example.net|"
                                   "Final-Recipient=rfc822; bob@example.test|Action=failed|"));
  EXPECT_EQ(lines[7],
            "recipient Final-Recipient=rfc822; dave@example.test|Action=failed|Status=4.4.1|"
            "Diagnostic-Code=X-Ringmx; connection refused by 192.0.2.9; message expired after 5 "
            "days");
}

TEST(DsnTest, RetChoosesWholeMessageOrHeaders) {
  const std::string headers(kMessage.substr(0, kMessage.find("\r\n\r\n") + 2));
  DsnRequest request = BaseRequest();

  request.ret = DsnRet::kHdrs;
  std::optional<DsnMessage> dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  EXPECT_EQ(dsn->returned, DsnMessage::Returned::kHeaders);
  EXPECT_EQ(PartBody(dsn->bytes, "text/rfc822-headers"), headers);
  EXPECT_THAT(dsn->bytes, Not(HasSubstr("Body line")));
  EXPECT_THAT(dsn->bytes, HasSubstr("Content-Description: Undelivered Message Headers\r\n"));
  EXPECT_THAT(dsn->bytes, HasSubstr("The headers of your message are attached below."));
  std::vector<std::string> lines = Lines(ParseWithPython(dsn->bytes));
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[2], "parts text/plain,message/delivery-status,text/rfc822-headers");
  EXPECT_EQ(lines.back(), absl::StrCat("headers-bytes ", headers.size()));

  // RET=FULL returns the whole message even above the default size limit.
  request.ret = DsnRet::kFull;
  request.full_message_limit = 10;
  dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  EXPECT_EQ(dsn->returned, DsnMessage::Returned::kFull);
  EXPECT_THAT(dsn->bytes, HasSubstr("Content-Type: message/rfc822\r\n\r\nReceived: from"));

  // Without RET: the whole message up to the limit, its headers above it.
  request.ret = DsnRet::kUnspecified;
  request.full_message_limit = kMessage.size();
  dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  EXPECT_EQ(dsn->returned, DsnMessage::Returned::kFull);
  request.full_message_limit = kMessage.size() - 1;
  dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  EXPECT_EQ(dsn->returned, DsnMessage::Returned::kHeaders);
  EXPECT_EQ(kDefaultDsnFullMessageLimit, 128u * 1024u);
}

TEST(DsnTest, NotifySelectsRecipientsAndKinds) {
  auto notify = [](std::string_view value) { return std::get<DsnNotify>(ParseNotify(value)); };
  DsnRequest request = BaseRequest();

  request.recipients[0].notify = notify("NEVER");
  EXPECT_FALSE(BuildDsn(request));
  request.recipients[0].notify = notify("SUCCESS,DELAY");
  EXPECT_FALSE(BuildDsn(request));
  request.recipients[0].notify = notify("FAILURE");
  EXPECT_TRUE(BuildDsn(request));
  request.recipients[0].notify = DsnNotify{};  // absent: FAILURE and DELAY
  EXPECT_TRUE(BuildDsn(request));

  // A delay DSN only for delayed recipients that did not refuse it.
  request.kind = DsnKind::kDelay;
  EXPECT_FALSE(BuildDsn(request));  // the recipient failed: not a delay
  request.recipients[0].action = DsnAction::kDelayed;
  request.recipients[0].diagnostic = "451 4.3.0 try again later";
  request.recipients[0].retry_until = At(5 * 86400);
  request.recipients[0].status = "";
  std::optional<DsnMessage> delay = BuildDsn(request);
  ASSERT_TRUE(delay);
  ExpectWellFormedLines(delay->bytes);
  EXPECT_THAT(delay->bytes, HasSubstr("Subject: Delayed Mail (still being retried)\r\n"));
  EXPECT_EQ(delay->returned, DsnMessage::Returned::kHeaders);  // delay DSNs: headers only
  EXPECT_THAT(delay->bytes, HasSubstr("Action: delayed\r\nStatus: 4.3.0\r\n"));
  EXPECT_THAT(delay->bytes, HasSubstr("Will-Retry-Until: Mon, 9 Mar 2026 05:06:07 +0000\r\n"));
  EXPECT_THAT(delay->bytes, HasSubstr("only a warning"));
  std::vector<std::string> lines = Lines(ParseWithPython(delay->bytes));
  ASSERT_GE(lines.size(), 7u);
  EXPECT_EQ(lines[3], "defects 0 ");
  EXPECT_THAT(lines[6], HasSubstr("|Action=delayed|Status=4.3.0|"));
  EXPECT_THAT(lines[6], HasSubstr("|Will-Retry-Until=Mon, 9 Mar 2026 05:06:07 +0000"));
  request.recipients[0].notify = notify("FAILURE");
  EXPECT_FALSE(BuildDsn(request));

  // Success DSNs only on NOTIFY=SUCCESS, for delivered and relayed recipients.
  request.kind = DsnKind::kSuccess;
  request.recipients[0].action = DsnAction::kDelivered;
  request.recipients[0].diagnostic = "250 2.0.0 <bob@example.test> Saved";
  request.recipients[0].notify = DsnNotify{};
  EXPECT_FALSE(BuildDsn(request));
  request.recipients[0].notify = notify("SUCCESS");
  DsnRecipient relayed;
  relayed.address = "erin@example.test";
  relayed.action = DsnAction::kRelayed;
  relayed.remote_mta = "relay.example.test";
  relayed.notify = notify("SUCCESS,FAILURE");
  request.recipients.push_back(relayed);
  std::optional<DsnMessage> success = BuildDsn(request);
  ASSERT_TRUE(success);
  EXPECT_THAT(success->reported, ElementsAre(0u, 1u));
  EXPECT_THAT(success->bytes, HasSubstr("Subject: Successful Mail Delivery Report\r\n"));
  EXPECT_THAT(success->bytes, HasSubstr("Action: delivered\r\nStatus: 2.0.0\r\n"));
  EXPECT_THAT(success->bytes, HasSubstr("Final-Recipient: rfc822; erin@example.test\r\n"
                                        "Action: relayed\r\nStatus: 2.0.0\r\n"));
  EXPECT_THAT(success->bytes, HasSubstr("<erin@example.test>: passed on to relay.example.test"));
  EXPECT_THAT(success->bytes, Not(HasSubstr("Will-Retry-Until")));
  lines = Lines(ParseWithPython(success->bytes));
  ASSERT_GE(lines.size(), 4u);
  EXPECT_EQ(lines[3], "defects 0 ");
}

TEST(DsnTest, NeverForTheNullSender) {
  DsnRequest request = BaseRequest();
  request.sender = "";
  EXPECT_FALSE(BuildDsn(request));
  request.kind = DsnKind::kSuccess;
  request.recipients[0].action = DsnAction::kDelivered;
  request.recipients[0].notify = std::get<DsnNotify>(ParseNotify("SUCCESS"));
  EXPECT_FALSE(BuildDsn(request));
  // Nor to an address no RCPT TO could carry.
  request.sender = "a\r\nb@example.org";
  EXPECT_FALSE(BuildDsn(request));
}

TEST(DsnTest, BoundaryNeverOccursInTheContent) {
  DsnRequest request = BaseRequest();
  // A sender who guesses the boundary and puts it, followed by every character it could be
  // extended with, into the message.
  std::string message(kMessage);
  message += "--=_ringmx_D42_\r\n";
  message += "--=_ringmx_D42_--\r\n";
  for (char c :
       std::string_view("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")) {
    absl::StrAppend(&message, "--=_ringmx_D42_", std::string(1, c), "\r\n");
    for (char d : std::string_view("0123456789")) {
      absl::StrAppend(&message, "--=_ringmx_D42_", std::string(1, c), std::string(1, d), "\r\n");
    }
  }
  request.message = message;
  const std::optional<DsnMessage> dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  ExpectWellFormedLines(dsn->bytes);
  const std::string boundary = BoundaryOf(dsn->bytes);
  EXPECT_THAT(boundary, StartsWith("=_ringmx_D42_"));
  EXPECT_LE(boundary.size(), 70u);  // RFC 2046 section 5.1.1
  EXPECT_EQ(message.find(boundary), std::string::npos) << boundary;
  // The delimiter occurs exactly four times: three parts and the close.
  size_t count = 0;
  for (size_t at = dsn->bytes.find("--" + boundary); at != std::string::npos;
       at = dsn->bytes.find("--" + boundary, at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 4u);
  const std::vector<std::string> lines = Lines(ParseWithPython(dsn->bytes));
  ASSERT_GE(lines.size(), 9u);
  EXPECT_EQ(lines[2], "parts text/plain,message/delivery-status,message/rfc822");
  EXPECT_EQ(lines[3], "defects 0 ");
  EXPECT_EQ(lines[7], "original-subject Hello");
  EXPECT_THAT(lines[8], HasSubstr("--=_ringmx_D42_--"));  // the fake close is content
}

TEST(DsnTest, LongDiagnosticIsFoldedAndBounded) {
  DsnRequest request = BaseRequest();
  std::string diagnostic = "550-5.7.1 first line of a long reply\r\n550 5.7.1 ";
  diagnostic += std::string(1500, 'x');  // one "word" longer than a line may be
  for (int i = 0; i < 300; ++i) absl::StrAppend(&diagnostic, " word", i);
  request.recipients[0].diagnostic = diagnostic;
  request.recipients[0].remote_mta = std::string(2000, 'h');
  const std::optional<DsnMessage> dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  ExpectWellFormedLines(dsn->bytes);
  const std::string status = PartBody(dsn->bytes, "message/delivery-status");
  EXPECT_THAT(status, HasSubstr("Status: 5.7.1\r\n"));
  EXPECT_THAT(status, HasSubstr("Diagnostic-Code: smtp; 550-5.7.1 first line of a long reply 550"
                                " 5.7.1\r\n " +
                                std::string(900, 'x') + "\r\n " + std::string(600, 'x') +
                                "\r\n word0 word1"));
  EXPECT_THAT(status, HasSubstr("Remote-MTA: dns; " + std::string(252, 'h') + "...\r\n"));
  const std::vector<std::string> lines = Lines(ParseWithPython(dsn->bytes));
  ASSERT_GE(lines.size(), 7u);
  EXPECT_EQ(lines[3], "defects 0 ");
  const size_t at = lines[6].find("|Diagnostic-Code=");
  ASSERT_NE(at, std::string::npos);
  std::string code = lines[6].substr(at + 17);
  code = code.substr(0, code.find('|'));
  EXPECT_THAT(code, StartsWith("smtp; 550-5.7.1 first line of a long reply 550 5.7.1 xxx"));
  EXPECT_TRUE(code.ends_with("...")) << code.substr(code.size() - 20);
  // Bounded: the reply text is cut to kMaxDsnDiagnosticBytes (the cut word gained one space
  // where it was folded).
  EXPECT_LE(code.size(), std::string_view("smtp; ").size() + kMaxDsnDiagnosticBytes + 1);
}

TEST(DsnTest, EightBitOriginalIsAttachedAs8bit) {
  DsnRequest request = BaseRequest();
  const std::string message =
      "From: =?utf-8?q?Ren=C3=A9?= <rene@example.org>\r\n"
      "Subject: caf\xC3\xA9\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "\r\n"
      "Cr\xC3\xA8me br\xC3\xBBl\xC3\xA9\x65.\r\n";
  request.message = message;
  std::optional<DsnMessage> dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  ExpectWellFormedLines(dsn->bytes);
  EXPECT_TRUE(dsn->body_8bitmime);
  EXPECT_FALSE(dsn->smtputf8);
  EXPECT_THAT(dsn->bytes, HasSubstr("\tboundary=\"=_ringmx_D42_\"\r\n"
                                    "Content-Transfer-Encoding: 8bit\r\n\r\n"));
  EXPECT_THAT(dsn->bytes, HasSubstr("Content-Type: message/rfc822\r\n"
                                    "Content-Transfer-Encoding: 8bit\r\n\r\n" +
                                    message + "\r\n--"));
  // The parts ringmx writes stay 7-bit.
  const std::string before_original = dsn->bytes.substr(0, dsn->bytes.find("message/rfc822"));
  for (char c : before_original) EXPECT_LT(static_cast<unsigned char>(c), 0x80);
  std::vector<std::string> lines = Lines(ParseWithPython(dsn->bytes));
  ASSERT_GE(lines.size(), 9u);
  EXPECT_EQ(lines[2], "parts text/plain,message/delivery-status,message/rfc822");
  EXPECT_EQ(lines[3], "defects 0 ");
  EXPECT_EQ(lines[7], "original-subject caf\xC3\xA9");

  // Headers only: the 8-bit header section is marked the same way; a 7-bit one is not.
  request.ret = DsnRet::kHdrs;
  dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  EXPECT_TRUE(dsn->body_8bitmime);
  EXPECT_THAT(dsn->bytes, HasSubstr("Content-Type: text/rfc822-headers\r\n"
                                    "Content-Transfer-Encoding: 8bit\r\n\r\n"));
  request.message = "Subject: plain\r\n\r\nCr\xC3\xA8me\r\n";
  dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  EXPECT_FALSE(dsn->body_8bitmime);
  EXPECT_THAT(dsn->bytes, Not(HasSubstr("8bit")));
}

TEST(DsnTest, InvalidOriginalFallsBackToHeadersOrNothing) {
  DsnRequest request = BaseRequest();
  std::string message(kMessage);
  message += std::string(1200, 'y') + "\r\n";  // a body line over 998 octets
  request.message = message;
  std::optional<DsnMessage> dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  EXPECT_EQ(dsn->returned, DsnMessage::Returned::kHeaders);
  ExpectWellFormedLines(dsn->bytes);

  request.message = "Subject: bare\nLF\r\n\r\nbody\r\n";
  dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  EXPECT_EQ(dsn->returned, DsnMessage::Returned::kNothing);
  ExpectWellFormedLines(dsn->bytes);
  EXPECT_THAT(dsn->bytes, HasSubstr("could not be attached"));
  const std::vector<std::string> lines = Lines(ParseWithPython(dsn->bytes));
  ASSERT_GE(lines.size(), 4u);
  EXPECT_EQ(lines[2], "parts text/plain,message/delivery-status");
  EXPECT_EQ(lines[3], "defects 0 ");
}

TEST(DsnTest, StatusComesFromTheFieldTheReplyOrTheAction) {
  DsnRequest request = BaseRequest();
  request.recipients[0].status = "5.2.2";
  EXPECT_THAT(BuildDsn(request)->bytes, HasSubstr("Status: 5.2.2\r\n"));
  request.recipients[0].status = "5.2";  // malformed: taken from the reply
  EXPECT_THAT(BuildDsn(request)->bytes, HasSubstr("Status: 5.1.1\r\n"));
  request.recipients[0].diagnostic = "554 Transaction failed";  // no enhanced code
  EXPECT_THAT(BuildDsn(request)->bytes, HasSubstr("Status: 5.0.0\r\n"));
  request.recipients[0].diagnostic = "";
  request.recipients[0].remote_mta = "";
  const std::string bytes = BuildDsn(request)->bytes;
  EXPECT_THAT(bytes, HasSubstr("Status: 5.0.0\r\nLast-Attempt-Date:"));
  EXPECT_THAT(bytes, Not(HasSubstr("Diagnostic-Code")));
  EXPECT_THAT(bytes, Not(HasSubstr("Remote-MTA")));
  EXPECT_THAT(bytes, HasSubstr("<bob@example.test>: delivery failed (status 5.0.0)."));
}

TEST(DsnTest, NonAsciiAddressesStaySevenBitInTheReport) {
  DsnRequest request = BaseRequest();
  request.sender = "ren\xC3\xA9@example.org";
  request.recipients[0].address = "j\xC3\xBCrgen+x@b\xC3\xBC\x63her.example";
  request.recipients[0].diagnostic = "550 5.1.1 unknown \xFF user\x01";
  const std::optional<DsnMessage> dsn = BuildDsn(request);
  ASSERT_TRUE(dsn);
  EXPECT_TRUE(dsn->smtputf8);
  EXPECT_FALSE(dsn->body_8bitmime);
  EXPECT_THAT(dsn->bytes, HasSubstr("To: <ren\xC3\xA9@example.org>\r\n"));
  // RFC 6533 utf-8-addr-xtext.
  EXPECT_THAT(dsn->bytes,
              HasSubstr("Final-Recipient: utf-8; j\\x{FC}rgen\\x{2B}x@b\\x{FC}cher.example\r\n"));
  EXPECT_THAT(dsn->bytes, HasSubstr("Diagnostic-Code: smtp; 550 5.1.1 unknown ? user?\r\n"));
  const std::string after_to = dsn->bytes.substr(dsn->bytes.find("Subject:"));
  for (char c : after_to) EXPECT_LT(static_cast<unsigned char>(c), 0x80);
  const std::vector<std::string> lines = Lines(ParseWithPython(dsn->bytes));
  ASSERT_GE(lines.size(), 7u);
  EXPECT_EQ(lines[3], "defects 0 ");
  EXPECT_THAT(lines[6], StartsWith("recipient Final-Recipient=utf-8; "
                                   "j\\x{FC}rgen\\x{2B}x@b\\x{FC}cher.example|Action=failed|"
                                   "Status=5.1.1|"));
}

}  // namespace
}  // namespace ringmx::smtp
