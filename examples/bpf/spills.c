/* Many values live across calls: r1-r5 do not survive a call and r6-r9 are only four, so
 * the compiler spills the frame's address and the parsed fields to the stack and reloads
 * them. The verifier follows whole-register spills, so the reloaded address is still the
 * frame and the reloaded length still bounds it. */
#include "xok_bpf.h"

static __attribute__((noinline)) u64 mix(u64 a, u64 b) { return (a * 31) ^ b; }

PROGRAM("filter/many_fields")
u64 many_fields(const u8 *frame, u64 length) {
    if (length < 34) return 0;
    u64 a = be16(frame + 12), b = frame[14], c = frame[22], d = frame[23];
    u64 e = be16(frame + 16), f = be16(frame + 18), g = be32(frame + 26), h = be32(frame + 30);
    u64 x = mix(a, b);
    x = mix(x, c);
    x = mix(x, d);
    x = mix(x, e) + frame[length - 1];
    x = mix(x, f);
    x = mix(x, g);
    x = mix(x, h);
    return x & 1 ? length : 0;
}
