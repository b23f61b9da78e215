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
  Unpin(it->second.first_segment);
  messages_.erase(it);
}

void Index::Apply(const Frame& frame, const Location& where) {
  ++stats_.records;
  switch (frame.type) {
    case RecordType::kFragment: {
      auto parsed = ParseFragment(frame.payload);
      if (!parsed.ok()) break;
      auto [it, inserted] = streaming_.try_emplace(Av(parsed->id));
      Pending& pending = it->second;
      if (inserted) {
        pending.first_segment = where.segment;
        Pin(where.segment);
      }
      // Fragments come in index order; a rewritten one replaces the older copy. One past a gap (a
      // fragment lost to damage) is skipped: the index is the record's to choose, so it must not
      // size anything here, and the message then has fewer fragments than its record says, which
      // ReadMessageBytes() reports.
      if (parsed->index < pending.fragments.size()) {
        pending.fragments[parsed->index] = where;
        return;
      }
      if (parsed->index == pending.fragments.size()) {
        pending.fragments.push_back(where);
        return;
      }
      break;  // counted as malformed
    }
    case RecordType::kMessage: {
      auto parsed = ParseMessage(frame.payload);
      if (!parsed.ok()) break;
      ++stats_.messages;
      const MessageHeader& h = parsed->header;
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
        m.recipients.resize(h.recipients.size());
        for (size_t i = 0; i < h.recipients.size(); ++i) {
          m.recipients[i].address = std::string(h.recipients[i]);
        }
      } else {
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
        for (size_t i = 0; i < h.states.size(); ++i) m.recipients[i].status = h.states[i];
      }
      m.body_size = h.body_size;
      m.record = where;
      m.fragments = std::move(fragments);
      m.first_segment = first;
      Pin(first);
      if (m.AllFinal()) Remove(h.id);
      return;
    }
    case RecordType::kAbort: {
      auto parsed = ParseAbort(frame.payload);
      if (!parsed.ok()) break;
      auto p = streaming_.find(Av(*parsed));
      if (p == streaming_.end()) {
        ++stats_.orphans;
        return;
      }
      Unpin(p->second.first_segment);
      streaming_.erase(p);
      return;
    }
    case RecordType::kRecipientState: {
      auto parsed = ParseRecipientState(frame.payload);
      if (!parsed.ok()) break;
      auto it = messages_.find(Av(parsed->id));
      if (it == messages_.end()) {
        ++stats_.orphans;
        return;
      }
      QueuedMessage& m = it->second;
      if (parsed->recipient >= m.recipients.size()) break;  // well framed but inconsistent
      m.recipients[parsed->recipient].status = std::move(parsed->status);
      if (m.AllFinal()) Remove(parsed->id);
      return;
    }
    case RecordType::kMessageOp: {
      auto parsed = ParseMessageOp(frame.payload);
      if (!parsed.ok()) break;
      auto it = messages_.find(Av(parsed->id));
      if (it == messages_.end()) {
        ++stats_.orphans;
        return;
      }
      switch (parsed->op) {
        case MessageOp::kHold:
          it->second.held = true;
          break;
        case MessageOp::kRelease:
          it->second.held = false;
          break;
        case MessageOp::kDelete:
          Remove(parsed->id);
          break;
      }
      return;
    }
  }
  // Reached by a payload that does not parse, or one that parses but does not fit what the index
  // holds (a recipient the message lacks, a fragment after a gap).
  ++stats_.malformed;
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

}  // namespace ringmx::core::queue
