/* Wakeup predicates (kind wakeupPredicate): r1 = a window of exposed kernel state and
 * readable memory, r2 = its length, which each predicate checks before it reads (a short
 * window wakes it). No loops; every path at most 4096 instructions. Nonzero wakes the
 * environment. */
#include "xok_bpf.h"

/* Wake when the word at byte 64 (say, a message count) is nonzero. */
PROGRAM("predicate/message_waiting")
u64 message_waiting(const u8 *window, u64 length) {
    if (length < 72) return 1;
    return le64(window + 64) != 0;
}

/* Wake when a counter (byte 0) reaches a target (byte 8). */
PROGRAM("predicate/counter_reached")
u64 counter_reached(const u8 *window, u64 length) {
    if (length < 16) return 1;
    return le64(window) >= le64(window + 8);
}

/* Wake when the clock passes the deadline stored at byte 16. */
PROGRAM("predicate/deadline")
u64 deadline(const u8 *window, u64 length) {
    if (length < 24) return 1;
    return clock_ticks() >= le64(window + 16);
}

/* Wake when any of eight block states (one byte each from 128) is 2 ("valid"): a
 * function called from eight places, each call counted toward the bound. */
static __attribute__((noinline)) u64 is_valid(u64 state) { return state == 2; }

PROGRAM("predicate/any_block_valid")
u64 any_block_valid(const u8 *window, u64 length) {
    if (length < 136) return 1;
    return is_valid(window[128]) | is_valid(window[129]) | is_valid(window[130]) | is_valid(window[131])
         | is_valid(window[132]) | is_valid(window[133]) | is_valid(window[134]) | is_valid(window[135]);
}
