// LD_PRELOAD shim for bench/queue/copy_count.py: counts the bytes a process passes to memcpy,
// memmove and mempcpy (and their _chk forms), per size class, and writes the totals to the file
// named by $MEMCPY_COUNT_OUT every 100 ms and at exit. It counts calls that go through the PLT
// (the program, libstdc++, mimalloc, OpenSSL, ...), not copies a compiler inlined (small constant
// sizes) and not glibc's own internal calls. A bench tool: never linked into ringmx.
//
//   cc -O2 -shared -fPIC -o memcpy_count.so bench/queue/memcpy_count.c -lpthread
//   MEMCPY_COUNT_OUT=/tmp/counts LD_PRELOAD=./memcpy_count.so ringmx serve ...
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// Size classes: [0, 64), [64, 4 KiB), [4 KiB, 64 KiB), [64 KiB, 256 KiB), [256 KiB, inf).
enum { kClasses = 5, kKinds = 2 };  // kind 0: memcpy/mempcpy, 1: memmove
static const char* const kClassNames[kClasses] = {"lt64", "lt4k", "lt64k", "lt256k", "ge256k"};
static const char* const kKindNames[kKinds] = {"memcpy", "memmove"};
static _Atomic uint64_t g_bytes[kKinds][kClasses];
static _Atomic uint64_t g_calls[kKinds][kClasses];

static inline int ClassOf(size_t n) {
  if (n < 64) return 0;
  if (n < 4096) return 1;
  if (n < 65536) return 2;
  if (n < 262144) return 3;
  return 4;
}

static inline void Count(int kind, size_t n) {
  const int c = ClassOf(n);
  atomic_fetch_add_explicit(&g_bytes[kind][c], n, memory_order_relaxed);
  atomic_fetch_add_explicit(&g_calls[kind][c], 1, memory_order_relaxed);
}

// The copies themselves, without calling back into memcpy: rep movsb forward (fast on CPUs with
// ERMS), a byte loop backward for an overlapping memmove to a higher address.
static inline void CopyForward(void* dst, const void* src, size_t n) {
  __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

static inline void CopyBackward(unsigned char* dst, const unsigned char* src, size_t n) {
  while (n > 0) {
    --n;
    dst[n] = src[n];
  }
}

void* memcpy(void* dst, const void* src, size_t n) {
  Count(0, n);
  CopyForward(dst, src, n);
  return dst;
}

void* mempcpy(void* dst, const void* src, size_t n) {
  Count(0, n);
  CopyForward(dst, src, n);
  return (char*)dst + n;
}

void* __mempcpy(void* dst, const void* src, size_t n) { return mempcpy(dst, src, n); }

void* memmove(void* dst, const void* src, size_t n) {
  Count(1, n);
  if ((uintptr_t)dst - (uintptr_t)src >= n) {  // dst below src, or no overlap
    CopyForward(dst, src, n);
  } else {
    CopyBackward((unsigned char*)dst, (const unsigned char*)src, n);
  }
  return dst;
}

void* __memcpy_chk(void* dst, const void* src, size_t n, size_t dst_len) {
  if (n > dst_len) abort();
  return memcpy(dst, src, n);
}

void* __memmove_chk(void* dst, const void* src, size_t n, size_t dst_len) {
  if (n > dst_len) abort();
  return memmove(dst, src, n);
}

void* __mempcpy_chk(void* dst, const void* src, size_t n, size_t dst_len) {
  if (n > dst_len) abort();
  return mempcpy(dst, src, n);
}

// Formats the totals by hand (no stdio: it would copy through the functions above) and replaces
// the output file atomically.
static char* PutStr(char* p, const char* s) {
  while (*s) *p++ = *s++;
  return p;
}

static char* PutU64(char* p, uint64_t v) {
  char tmp[24];
  int i = 0;
  do {
    tmp[i++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (i > 0) *p++ = tmp[--i];
  return p;
}

static void Dump(void) {
  const char* path = getenv("MEMCPY_COUNT_OUT");
  if (path == NULL || path[0] == '\0') return;
  char buf[2048];
  char* p = buf;
  for (int k = 0; k < kKinds; ++k) {
    for (int c = 0; c < kClasses; ++c) {
      p = PutStr(p, kKindNames[k]);
      *p++ = ' ';
      p = PutStr(p, kClassNames[c]);
      *p++ = ' ';
      p = PutU64(p, atomic_load_explicit(&g_calls[k][c], memory_order_relaxed));
      *p++ = ' ';
      p = PutU64(p, atomic_load_explicit(&g_bytes[k][c], memory_order_relaxed));
      *p++ = '\n';
    }
  }
  char tmp_path[4096];
  char* t = PutStr(tmp_path, path);
  t = PutStr(t, ".tmp");
  *t = '\0';
  const int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const ssize_t want = p - buf;
  const ssize_t wrote = write(fd, buf, (size_t)want);
  close(fd);
  if (wrote == want) rename(tmp_path, path);
}

static void* DumpLoop(void* arg) {
  (void)arg;
  for (;;) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    Dump();
  }
  return NULL;
}

__attribute__((constructor)) static void Start(void) {
  pthread_t thread;
  if (pthread_create(&thread, NULL, DumpLoop, NULL) == 0) pthread_detach(thread);
}

__attribute__((destructor)) static void Stop(void) { Dump(); }
