// Whether this build runs under a sanitizer, for tests that bound a process's memory: the server
// binary they start comes from the same build, so its RSS carries the same overhead. Test-only.
#pragma once

namespace ringmx::testing {

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RINGMX_TESTING_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define RINGMX_TESTING_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(RINGMX_TESTING_ASAN)
#define RINGMX_TESTING_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(RINGMX_TESTING_TSAN)
#define RINGMX_TESTING_TSAN 1
#endif

// How much more resident memory the same work takes in this build: AddressSanitizer adds
// redzones and a quarantine of freed memory (measured about 2.3x for the hostile-client test),
// ThreadSanitizer its shadow memory (about 3.3x there and 5.8x per idle connection).
#if defined(RINGMX_TESTING_TSAN)
inline constexpr int kSanitizerMemoryFactor = 8;
#elif defined(RINGMX_TESTING_ASAN)
inline constexpr int kSanitizerMemoryFactor = 3;
#else
inline constexpr int kSanitizerMemoryFactor = 1;
#endif

}  // namespace ringmx::testing
