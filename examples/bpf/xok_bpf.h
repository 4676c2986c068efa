/* What a program compiled with `clang -O2 -target bpf -c` may use on Xok: fixed-width
 * types, the helpers its kind offers, and byte-order reads. Programs receive their
 * context in r1 and its length in r2 (the first two arguments); owns UDFs get their
 * output area in r3 (the third). See docs/bpf.md for each kind's layout. */
#ifndef XOK_BPF_H
#define XOK_BPF_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long s64;

/* Put a program in its own section: `xok bpf verify --section NAME`. */
#define PROGRAM(name) __attribute__((section(name), used))

/* Helper 16 (wakeup predicates only): the kernel clock in ticks. */
static u64 (*const clock_ticks)(void) = (void *)16;

static inline u16 be16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static inline u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static inline u64 le64(const u8 *p) { return *(const u64 *)p; }

#endif
