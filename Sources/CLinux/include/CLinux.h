// Linux calls Swift's Glibc module does not export (variadic or too new for it).
#ifndef XOK_CLINUX_H
#define XOK_CLINUX_H

#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/// memfd_create(2): an anonymous file of memory, closed on exec.
static inline int xok_memfd_create(const char *name) {
    return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
}

#endif
