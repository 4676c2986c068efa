/* XN UDFs for an indirect block: 512 little-endian u64 block numbers, 0 for a hole. It
 * owns each nonzero one as a data block (type 2). */
#include "xok_bpf.h"

struct owned { u64 block; u64 type; };

PROGRAM("udf/indirect_owns")
u64 indirect_owns(const u64 *pointers, u64 length, struct owned *out) {
    u64 n = 0;
    for (int i = 0; i < 512; i++) {
        u64 block = pointers[i];
        if (block == 0) continue;
        out[n].block = block;
        out[n].type = 2;
        n++;
    }
    return n;
}

PROGRAM("udf/indirect_size")
u64 indirect_size(const u64 *pointers, u64 length) {
    u64 last = 0;
    for (u64 i = 0; i < 512; i++)
        if (pointers[i]) last = i + 1;
    return last * 4096;
}

/* A file's size from its inode-like header: a 48-bit length at byte 16, big-endian, kept
 * in a local array that the compiler spills to the stack and reloads. */
PROGRAM("udf/header_size")
u64 header_size(const u8 *block, u64 length) {
    u8 digits[6];
    for (int i = 0; i < 6; i++) digits[i] = block[16 + i];
    u64 size = 0;
    for (int i = 0; i < 6; i++) size = size << 8 | digits[i];
    return size;
}
