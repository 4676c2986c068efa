/* XN UDFs for a directory-like metadata block (kinds udfOwns, udfSize, udfAcl):
 *
 *   0    magic u64 ("XOKDIR01")   8 owner u64   16 entry count u32   20 reserved
 *   64   63 entries of 64 bytes: block u64, type u32, used u8, name length u8, name[50]
 *
 * owns reports (block, type) for every used entry; size is 64 bytes an entry in use;
 * acl lets only the owner (the credential's first name component) change the block and
 * keeps the owner field unchanged. */
#include "xok_bpf.h"

struct entry { u64 block; u32 type; u8 used; u8 name_length; u8 name[50]; };
struct directory { u64 magic; u64 owner; u32 count; u8 reserved[44]; struct entry entries[63]; };
struct owned { u64 block; u64 type; };

PROGRAM("udf/dir_owns")
u64 dir_owns(const struct directory *d, u64 length, struct owned *out) {
    u64 n = 0;
    for (int i = 0; i < 63; i++) {
        if (!d->entries[i].used) continue;
        out[n].block = d->entries[i].block;
        out[n].type = d->entries[i].type;
        n++;
    }
    return n;
}

PROGRAM("udf/dir_size")
u64 dir_size(const struct directory *d, u64 length) {
    u64 used = 0;
    for (int i = 0; i < 63; i++) used += d->entries[i].used != 0;
    return used * 64;
}

/* The acl context (docs/bpf.md): block before (0), after (4096), change (8192), credential
 * (8216: rights u64, component count u64, components). */
enum { BEFORE = 0, AFTER = 4096, CREDENTIAL = 8216 };

PROGRAM("udf/dir_acl")
u64 dir_acl(const u8 *context, u64 length) {
    u64 owner = le64(context + BEFORE + 8);
    if (le64(context + AFTER + 8) != owner) return 0;
    if (le64(context + CREDENTIAL + 8) < 1) return 0;
    return le64(context + CREDENTIAL + 16) == owner;
}

/* An append-only directory: no entry that was in use may change. Compares the two blocks
 * word by word with a counter that starts negative and counts up to zero. */
PROGRAM("udf/dir_acl_append_only")
u64 dir_acl_append_only(const u8 *context, u64 length) {
    for (s64 i = -63; i < 0; i++) {
        const u8 *old = context + BEFORE + 64 + (i + 63) * 64;
        const u8 *new = context + AFTER + 64 + (i + 63) * 64;
        if (old[12] && (le64(old) != le64(new) || le64(old + 8) != le64(new + 8) || new[12] == 0)) return 0;
    }
    return 1;
}
