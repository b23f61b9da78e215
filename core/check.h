// RINGMX_CHECK / RINGMX_DCHECK: broken invariants abort with a message (STYLE.md section 4).
// Never check anything a peer or a config file controls.
#pragma once

namespace ringmx::core {
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition);
}  // namespace ringmx::core

#define RINGMX_CHECK(cond) \
  ((cond) ? (void)0 : ::ringmx::core::CheckFailed(__FILE__, __LINE__, #cond))

#ifdef NDEBUG
#define RINGMX_DCHECK(cond) ((void)sizeof(cond))
#else
#define RINGMX_DCHECK(cond) RINGMX_CHECK(cond)
#endif
