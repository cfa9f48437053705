/* Run-time exit choice of a multi-exit model (issue 16), the same rule as sepipe.early_exit.pick_exit.
 *
 * Each exit is its own model (its .tflite holds the trunk up to the exit and only those layers' states).
 * Per hop, firmware picks the deepest exit whose Vela cycles fit what the hop has left, runs that model,
 * and copies back only the states it returned: the states of the layers it skipped stay as they were
 * (frozen) and a deeper exit resumes from them later. */
#ifndef SE_EARLY_EXIT_H
#define SE_EARLY_EXIT_H

#include <stdint.h>

/* The deepest exit (1-based) with cycles[i] <= budget, scanning from the deepest (cycles need not rise
 * with depth); 0 when none fits (the caller passes the frame through, gain 1). cycles[i] is exit i + 1's. */
int se_pick_exit(const uint32_t *cycles, int count, uint32_t budget);

#endif
