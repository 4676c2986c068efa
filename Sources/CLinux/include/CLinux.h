// Linux calls Swift's Glibc module does not export (variadic or too new for it), and the
// atomic operations and futexes a call channel shared between processes needs.
#ifndef XOK_CLINUX_H
#define XOK_CLINUX_H

#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/// memfd_create(2): an anonymous file of memory, closed on exec.
static inline int xok_memfd_create(const char *name) {
    return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
}

/// A memfd that can be sealed (closed on exec).
static inline int xok_memfd_create_sealable(const char *name) {
    return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/// Seals a memfd for readers: it can no longer grow, shrink, be written through write(2)
/// or mapped writable by anyone (mappings made before stay writable), and the seals can no
/// longer change. Returns 0, or -1 with errno.
static inline int xok_seal_for_readers(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
}

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
static inline int xok_futex_wait(uint32_t *word, uint32_t expected, long nanoseconds) {
    struct timespec timeout = { nanoseconds / 1000000000L, nanoseconds % 1000000000L };
    return (int)syscall(SYS_futex, word, FUTEX_WAIT, expected, &timeout, NULL, 0);
}

/// Wakes up to `count` sleepers on `word`. Returns how many woke, or -1 with errno.
static inline int xok_futex_wake(uint32_t *word, int count) {
    return (int)syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0);
}

/// Sends `length` bytes on a Unix socket with `count` (at most 4) file descriptors
/// attached (SCM_RIGHTS). Returns what sendmsg returns.
static inline long xok_send_with_fds(int socket, const void *bytes, unsigned long length, const int *fds, int count) {
    if (count < 0 || count > 4) return -1;
    union { struct cmsghdr header; char space[CMSG_SPACE(4 * sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    struct iovec vector = { (void *)bytes, length };
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    if (count > 0) {
        message.msg_control = control.space;
        message.msg_controllen = CMSG_SPACE(count * sizeof(int));
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(count * sizeof(int));
        memcpy(CMSG_DATA(header), fds, count * sizeof(int));
    }
    return sendmsg(socket, &message, MSG_NOSIGNAL);
}

/// Receives up to `length` bytes from a Unix socket and up to `capacity` (at most 4) file
/// descriptors sent with them, made close-on-exec; `*count` says how many came (any
/// beyond `capacity` are closed). Returns what recvmsg returns.
static inline long xok_receive_with_fds(int socket, void *bytes, unsigned long length, int *fds, int capacity, int *count) {
    union { struct cmsghdr header; char space[CMSG_SPACE(8 * sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    struct iovec vector = { bytes, length };
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control.space;
    message.msg_controllen = sizeof control.space;
    *count = 0;
    long received = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (received < 0) return received;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&message); h != NULL; h = CMSG_NXTHDR(&message, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
        int n = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int passed[8];
        if (n > 8) n = 8;
        memcpy(passed, CMSG_DATA(h), n * sizeof(int));
        for (int i = 0; i < n; i++) {
            if (*count < capacity && *count < 4) fds[(*count)++] = passed[i]; else close(passed[i]);
        }
    }
    return received;
}

/// Accepts a connection on a listening socket, close-on-exec. Returns its descriptor, or
/// -1 with errno.
static inline int xok_accept(int socket) {
    return accept4(socket, NULL, NULL, SOCK_CLOEXEC);
}

/// The user and group of the process at the other end of a Unix socket (SO_PEERCRED).
/// Returns 0, or -1 with errno.
static inline int xok_peer_credentials(int socket, unsigned int *uid, unsigned int *gid, int *pid) {
    struct ucred credentials;
    socklen_t size = sizeof credentials;
    if (getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return -1;
    *uid = credentials.uid;
    *gid = credentials.gid;
    *pid = credentials.pid;
    return 0;
}

/// Keeps the calling thread on one processor (so that two spinning processes do not share
/// one). Returns 0, or -1 with errno.
static inline int xok_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

#endif
