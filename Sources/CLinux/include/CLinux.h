// Linux calls Swift's Glibc module does not export (variadic or too new for it), and the
// atomic operations, futexes and descriptor passing that processes sharing a call channel
// need. Only plain C types appear here: the system headers the definitions need are
// included in CLinux.c, so that this module's view of types such as fd_set never differs
// from Glibc's.
#ifndef XOK_CLINUX_H
#define XOK_CLINUX_H

#include <stdint.h>

/// memfd_create(2): an anonymous file of memory, closed on exec.
int xok_memfd_create(const char *name);

/// A memfd that can be sealed (closed on exec).
int xok_memfd_create_sealable(const char *name);

/// Seals a memfd for readers: it can no longer grow, shrink, be written through write(2)
/// or mapped writable by anyone (mappings made before stay writable), and the seals can no
/// longer change. Returns 0, or -1 with errno.
int xok_seal_for_readers(int fd);

/// Seals a memfd's size: no holder can shrink it (which would make the others' next
/// touch of a mapping fault) or grow it, and the seals can no longer change.
int xok_seal_size(int fd);

/// Makes this process undumpable: processes of the same user can no longer trace it or
/// open its descriptors through /proc (prctl PR_SET_DUMPABLE 0). Returns 0, or -1.
int xok_forbid_tracing(void);

/// A 32-bit word in memory shared with another process, read with acquire ordering.
static inline uint32_t xok_load_acquire(const uint32_t *word) {
    return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

/// A 64-bit word in shared memory, read with acquire ordering.
static inline uint64_t xok_load_acquire_u64(const uint64_t *word) {
    return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

/// Stores with release ordering: what was written before is visible to an acquiring load
/// that sees this value.
static inline void xok_store_release(uint32_t *word, uint32_t value) {
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
}

/// A full barrier: orders a store before a later load (the sleep/wake handshake needs it).
static inline void xok_fence(void) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/// Tells the processor this is a spin-wait loop.
static inline void xok_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Sleeps while `*word == expected`, at most `nanoseconds` (a shared futex: the word may be
/// in memory another process maps). Returns 0, or -1 with errno (EAGAIN: the word had
/// already changed; ETIMEDOUT; EINTR).
int xok_futex_wait(uint32_t *word, uint32_t expected, long nanoseconds);

/// Wakes up to `count` sleepers on `word`. Returns how many woke, or -1 with errno.
int xok_futex_wake(uint32_t *word, int count);

/// Sends `length` bytes on a Unix socket with `count` (at most 4) file descriptors
/// attached (SCM_RIGHTS). Returns what sendmsg returns.
long xok_send_with_fds(int socket, const void *bytes, unsigned long length, const int *fds, int count);

/// Receives up to `length` bytes from a Unix socket and up to `capacity` (at most 4) file
/// descriptors sent with them, made close-on-exec; `*count` says how many came (any
/// beyond `capacity` are closed). Returns what recvmsg returns.
long xok_receive_with_fds(int socket, void *bytes, unsigned long length, int *fds, int capacity, int *count);

/// Accepts a connection on a listening socket, close-on-exec. Returns its descriptor, or
/// -1 with errno.
int xok_accept(int socket);

/// The user and group of the process at the other end of a Unix socket (SO_PEERCRED).
/// Returns 0, or -1 with errno.
int xok_peer_credentials(int socket, unsigned int *uid, unsigned int *gid, int *pid);

/// Keeps the calling thread on one processor (so that two spinning processes do not share
/// one). Returns 0, or -1 with errno.
int xok_pin_to_cpu(int cpu);

#endif
