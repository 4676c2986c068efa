// The definitions behind CLinux.h, with the system headers they need kept out of the
// module's interface.

#define _GNU_SOURCE
#include "CLinux.h"
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

int xok_memfd_create(const char *name) {
    return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
}

int xok_memfd_create_sealable(const char *name) {
    return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

int xok_seal_for_readers(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
}

int xok_seal_size(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
}

int xok_forbid_tracing(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int xok_futex_wait(uint32_t *word, uint32_t expected, long nanoseconds) {
    struct timespec timeout = { nanoseconds / 1000000000L, nanoseconds % 1000000000L };
    return (int)syscall(SYS_futex, word, FUTEX_WAIT, expected, &timeout, NULL, 0);
}

int xok_futex_wake(uint32_t *word, int count) {
    return (int)syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0);
}

long xok_send_with_fds(int socket, const void *bytes, unsigned long length, const int *fds, int count) {
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

long xok_receive_with_fds(int socket, void *bytes, unsigned long length, int *fds, int capacity, int *count) {
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

int xok_accept(int socket) {
    return accept4(socket, NULL, NULL, SOCK_CLOEXEC);
}

int xok_peer_credentials(int socket, unsigned int *uid, unsigned int *gid, int *pid) {
    struct ucred credentials;
    socklen_t size = sizeof credentials;
    if (getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return -1;
    *uid = credentials.uid;
    *gid = credentials.gid;
    *pid = credentials.pid;
    return 0;
}

int xok_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}
