/* exit_set_test.h: what exit_set_test.c shares with exit_set_timing.c (its instruction counts on QEMU). */
#ifndef EXIT_SET_TEST_H
#define EXIT_SET_TEST_H

#include <stdint.h>

#include "se_exit_set.h"
#include "se_golden_check.h"

extern const se_model_desc_t *const se_image_models[];
extern const int se_image_model_count;

/* one exit's recorded TFLite Micro tensors (sepipe.early_exit_golden: e<n>_in_* / e<n>_out_*) */
typedef struct {
    const se_model_desc_t *desc;
    long rows, row; /* hops this exit ran in the golden run; the next one to replay */
    se_blob_t in_features, out_mask, in_state[SE_MAX_STATES], out_state[SE_MAX_STATES];
} exit_replay_t;

/* exit r's recorded mask and new states of its hop `row` into the model's outputs */
void write_outputs(se_model_io_t *io, const exit_replay_t *r, long row);

typedef struct {
    exit_replay_t *replays; /* replays[e - 1]: exit e */
    int count;
    const uint32_t *cycles, *budgets;
    const float *x;         /* the golden input audio, frames * SE_HOP samples */
    long frames;
    double per_tick;
    long picks_off;         /* hops where a held budget did not pick the exit it was set for */
} timing_t;

/* Count every exit held, the golden schedule and each exit model alone; print RESULT lines and write the JSON
 * (json_path may be 0). Re-initialises `set` with the counting replays. Returns the failures. */
int time_exit_set(se_exit_set_t *set, timing_t *tm, unsigned long slot_bytes, const char *json_path);

#endif /* EXIT_SET_TEST_H */
