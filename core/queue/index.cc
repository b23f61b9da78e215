#include "core/queue/index.h"

#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/queue/log_format.h"
#include "core/strings.h"

namespace ringmx::core::queue {

bool QueuedMessage::AllFinal() const {
  return std::all_of(recipients.begin(), recipients.end(),
                     [](const QueuedRecipient& r) { return IsFinal(r.status.state); });
}

void Index::Pin(uint64_t segment) { ++pins_[segment]; }

void Index::Unpin(uint64_t segment) {
  auto it = pins_.find(segment);
  if (it == pins_.end()) return;
  if (--it->second == 0) pins_.erase(it);
}

void Index::Remove(std::string_view id) {
  auto it = messages_.find(Av(id));
  if (it == messages_.end()) return;
  Account(it->second, -1);
  Unpin(it->second.first_segment);
  messages_.erase(it);
}

void Index::Apply(const Frame& frame, const Location& where) {
  switch (frame.type) {
    case RecordType::kFragment:
      if (auto parsed = ParseFragment(frame.payload); parsed.ok()) {
        ApplyFragment(parsed->id, parsed->index, where);
        return;
      }
      break;
    case RecordType::kMessage:
      if (auto parsed = ParseMessage(frame.payload); parsed.ok()) {
        ApplyMessage(parsed->header, where);
        return;
      }
      break;
    case RecordType::kAbort:
      if (auto parsed = ParseAbort(frame.payload); parsed.ok()) {
        ApplyAbort(*parsed);
        return;
      }
      break;
    case RecordType::kRecipientState:
      if (auto parsed = ParseRecipientState(frame.payload); parsed.ok()) {
        ApplyRecipientState(parsed->id, parsed->recipient, std::move(parsed->status));
        return;
      }
      break;
    case RecordType::kMessageOp:
      if (auto parsed = ParseMessageOp(frame.payload); parsed.ok()) {
        ApplyMessageOp(parsed->id, parsed->op);
        return;
      }
      break;
  }
  // A payload that does not parse.
  ++stats_.records;
  ++stats_.malformed;
}

void Index::ApplyFragment(std::string_view id, uint32_t index, const Location& record) {
  ++stats_.records;
  auto [it, inserted] = streaming_.try_emplace(Av(id));
  Pending& pending = it->second;
  if (inserted) {
    pending.first_segment = record.segment;
    Pin(record.segment);
  }
  // Fragments come in index order; a rewritten one replaces the older copy. One past a gap (a
  // fragment lost to damage) is skipped: the index is the record's to choose, so it must not
  // size anything here, and the message then has fewer fragments than its record says, which
  // ReadMessageBytes() reports.
  if (index < pending.fragments.size()) {
    pending.fragments[index] = record;
    return;
  }
  if (index == pending.fragments.size()) {
    pending.fragments.push_back(record);
    return;
  }
  ++stats_.malformed;  // well framed but past a gap
}

void Index::ApplyMessage(const MessageHeader& h, const Location& where) {
  ++stats_.records;
  ++stats_.messages;
  const bool relocated = (h.flags & kMessageFlagRelocated) != 0;
  std::vector<Location> fragments;
  if (auto p = streaming_.find(Av(h.id)); p != streaming_.end()) {
    fragments = std::move(p->second.fragments);
    Unpin(p->second.first_segment);
    streaming_.erase(p);
  }
  uint64_t first = where.segment;
  for (const Location& f : fragments) {
    if (f.size != 0) first = std::min(first, f.segment);
  }
  auto [it, inserted] = messages_.try_emplace(Av(h.id));
  QueuedMessage& m = it->second;
  if (inserted) {
    m.id = std::string(h.id);
    m.received_us = h.received_us;
    m.sender = std::string(h.sender);
    m.bounce = (h.flags & kMessageFlagBounce) != 0;
    m.held = (h.flags & kMessageFlagHeld) != 0;
    m.recipients.resize(h.recipients.size());
    for (size_t i = 0; i < h.recipients.size(); ++i) {
      m.recipients[i].address = std::string(h.recipients[i]);
    }
  } else {
    Account(m, -1);
    Unpin(m.first_segment);
    if (relocated && m.recipients.size() != h.recipients.size()) {
      m.recipients.resize(h.recipients.size());
      for (size_t i = 0; i < h.recipients.size(); ++i) {
        m.recipients[i].address = std::string(h.recipients[i]);
      }
    }
  }
  if (relocated) {
    m.held = h.held;
    // A relocated header carries one state per recipient (ParseMessage() and the encoder check);
    // min() keeps a caller's inconsistent header from indexing past the recipients.
    for (size_t i = 0; i < std::min(h.states.size(), m.recipients.size()); ++i) {
      m.recipients[i].status = h.states[i];
    }
  }
  m.body_size = h.body_size;
  m.record = where;
  m.fragments = std::move(fragments);
  m.first_segment = first;
  Pin(first);
  Account(m, +1);
  if (m.AllFinal()) Remove(h.id);
}

void Index::ApplyAbort(std::string_view id) {
  ++stats_.records;
  auto p = streaming_.find(Av(id));
  if (p == streaming_.end()) {
    ++stats_.orphans;
    return;
  }
  Unpin(p->second.first_segment);
  streaming_.erase(p);
}

void Index::ApplyRecipientState(std::string_view id, uint32_t recipient, RecipientStatus status) {
  ++stats_.records;
  auto it = messages_.find(Av(id));
  if (it == messages_.end()) {
    ++stats_.orphans;
    return;
  }
  QueuedMessage& m = it->second;
  if (recipient >= m.recipients.size()) {
    ++stats_.malformed;  // well framed but inconsistent
    return;
  }
  m.recipients[recipient].status = std::move(status);
  if (m.AllFinal()) Remove(id);
}

void Index::ApplyMessageOp(std::string_view id, MessageOp op) {
  ++stats_.records;
  auto it = messages_.find(Av(id));
  if (it == messages_.end()) {
    ++stats_.orphans;
    return;
  }
  switch (op) {
    case MessageOp::kHold:
      it->second.held = true;
      break;
    case MessageOp::kRelease:
      it->second.held = false;
      break;
    case MessageOp::kDelete:
      Remove(id);
      break;
  }
}

size_t Index::MakeDeferredDue(int64_t now_us) {
  size_t changed = 0;
  for (auto& [id, m] : messages_) {
    for (QueuedRecipient& recipient : m.recipients) {
      if (recipient.status.state != RecipientState::kDeferred) continue;
      if (recipient.status.next_attempt_us <= now_us) continue;
      recipient.status.next_attempt_us = now_us;
      ++changed;
    }
  }
  return changed;
}

void Index::FinishReplay() {
  stats_.incomplete += streaming_.size();
  for (const auto& [id, pending] : streaming_) Unpin(pending.first_segment);
  streaming_.clear();
}

const QueuedMessage* Index::Find(std::string_view id) const {
  auto it = messages_.find(Av(id));
  return it == messages_.end() ? nullptr : &it->second;
}

std::vector<const QueuedMessage*> Index::List() const {
  std::vector<const QueuedMessage*> out;
  out.reserve(messages_.size());
  for (const auto& [id, m] : messages_) out.push_back(&m);
  std::sort(out.begin(), out.end(),
            [](const QueuedMessage* a, const QueuedMessage* b) { return a->id < b->id; });
  return out;
}

uint64_t Index::OldestNeededSegment(uint64_t active) const {
  if (pins_.empty()) return active;
  return std::min(pins_.begin()->first, active);
}

void Index::Account(const QueuedMessage& m, int sign) {
  uint64_t bytes = m.record.size;
  for (const Location& f : m.fragments) bytes += f.size;
  if (sign > 0) {
    live_bytes_ += bytes;
    pinned_bytes_[m.first_segment] += bytes;
    return;
  }
  live_bytes_ -= bytes;
  auto it = pinned_bytes_.find(m.first_segment);
  if (it == pinned_bytes_.end()) return;
  it->second -= bytes;
  if (it->second == 0) pinned_bytes_.erase(it);
}

uint64_t Index::PinnedBytes(uint64_t segment) const {
  auto it = pinned_bytes_.find(segment);
  return it == pinned_bytes_.end() ? 0 : it->second;
}

std::vector<const QueuedMessage*> Index::MessagesFirstIn(uint64_t segment) const {
  std::vector<const QueuedMessage*> out;
  for (const auto& [id, m] : messages_) {
    if (m.first_segment == segment) out.push_back(&m);
  }
  std::sort(out.begin(), out.end(),
            [](const QueuedMessage* a, const QueuedMessage* b) { return a->id < b->id; });
  return out;
}

bool Index::StreamPins(uint64_t segment) const {
  for (const auto& [id, pending] : streaming_) {
    if (pending.first_segment <= segment) return true;
  }
  return false;
}

}  // namespace ringmx::core::queue
