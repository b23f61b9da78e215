// The stored message as milters see it and as their changes leave it: a small header splitter
// (folded fields kept whole) and ApplyModifications(), which turns a milter's end-of-message
// changes into new message bytes and envelope changes. Pure code (docs/milter.md).
//
// The stored bytes are our Received header first, then the client's message exactly. Milters see
// only the client's message (as with Postfix), so header indexes count the client's fields; our
// Received stays first whatever they insert.
#pragma once

#include <stddef.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/milter/codec.h"

namespace ringmx::smtp::milter {

// One header field of a message: views into the bytes given to SplitHeaders().
struct HeaderField {
  std::string_view name;  // before the ':' (whitespace between name and ':' not included)
  // Everything after the ':' up to the field's last line end, folds included, CR LF kept:
  // "Subject: a\r\n\tb\r\n" has " a\r\n\tb".
  std::string_view raw_value;
  std::string_view raw;  // the whole field, its last line end included (if it had one)
};

struct SplitMessage {
  std::vector<HeaderField> fields;
  // Offset where the header section ends: the empty line (or the first line that is neither a
  // field nor a fold), or the end of the bytes.
  size_t header_end = 0;
  // Offset of the body: after the empty line, or equal to header_end when there is none.
  size_t body_offset = 0;
};

// Splits `message` into its header fields and body (RFC 5322 section 2.2). A field starts with a
// name of printable ASCII other than ':', optional spaces or tabs, then ':'; a line that starts
// with a space or tab continues the field before it. The header section ends at an empty line
// (consumed) or at the first other line (which starts the body). Line ends are LF or CR LF.
SplitMessage SplitHeaders(std::string_view message);

// The client's message inside the stored bytes: everything after the first header field (our
// Received). What a whole stored message shows milters.
std::string_view ClientMessage(std::string_view stored);

// A field value as milters get it (Sendmail's form): folds joined by "\n" without CR, and,
// unless `leading_space` (SMFIP_HDR_LEADSPC), the one space after the ':' dropped.
std::string MilterHeaderValue(std::string_view raw_value, bool leading_space);

// The envelope part of a milter's changes. Addresses are as the milter sent them minus one pair
// of enclosing angle brackets.
struct EnvelopeChanges {
  std::optional<std::string> sender;  // change sender ("" is the null sender)
  std::string sender_args;            // its ESMTP args, "" if none
  struct Recipient {
    std::string address;
    std::string args;  // ESMTP args, "" if none
    friend bool operator==(const Recipient&, const Recipient&) = default;
  };
  std::vector<Recipient> added_recipients;
  std::vector<std::string> deleted_recipients;
  // Quarantine (hold the message, do not deliver it) with the milter's reason.
  std::optional<std::string> quarantine;
};

struct ModifiedMessage {
  std::string bytes;  // the new stored bytes: our Received first, CR LF line ends
  bool bytes_changed = false;
  EnvelopeChanges envelope;
};

// Applies `mods` in order to `stored` (our Received first, then the client's message).
// Header rules, as Postfix's cleanup applies them:
//  - add ('h') appends after the last field;
//  - insert ('i') at index n puts the field after the n-th client field (0: first of the
//    client's, right after our Received; past the end: last);
//  - change ('m') replaces the index-th field of that name (case-insensitive; index 0 counts as
//    1; fields added earlier count), an empty value deletes it; a change of a field that does not
//    exist adds it, a deletion of one that does not exist does nothing.
// Values are written as "Name: value" (or "Name:value" with `leading_space`, SMFIP_HDR_LEADSPC)
// with "\n" folds turned into CR LF; a fold line that does not start with a space or tab gets a
// space, so a value can never end the header section or start a new field. Body replacement
// pieces concatenate; bare LF becomes CR LF and the body ends with CR LF.
ModifiedMessage ApplyModifications(std::string_view stored, std::span<const Modification> mods,
                                   bool leading_space = false);

// The same changes applied to the client's header section alone, as the SMTP session holds it
// while the body streams to the store: `header_section` is the client's fields and the separator
// after them (the empty line, or nothing when the body starts without one), without our Received.
struct ModifiedHeaders {
  // The new header section: fields, then the separator (an empty line whenever `body` is set).
  std::string header_section;
  bool changed = false;             // header_section differs from the input
  std::optional<std::string> body;  // a replacement body ('b'), CR LF line ends
  EnvelopeChanges envelope;
};
ModifiedHeaders ModifyHeaderSection(std::string_view header_section,
                                    std::span<const Modification> mods, bool leading_space = false);

}  // namespace ringmx::smtp::milter
