/* se_golden_check.h: the checks of the frame loop against a golden-vector folder
 * (pipeline/golden.py), shared by every program that runs them: host_test.c on the build
 * machine, qemu_main.c on the emulated Cortex-M55. One checker, so both apply the same
 * checks and the same tolerances (README.md, "Tolerances").
 *
 *   se_golden_t g;
 *   se_golden_load(&g, &desc, dir);     reads and size-checks every file; exits 2 on a bad folder
 *   failures = se_golden_check(&g);     prints RESULT lines, then PASS or FAIL (n)
 *
 * se_golden_replay is a model that returns TFLite Micro's recorded outputs without checking
 * anything (open loop: there is no TFLite Micro in this stub); qemu_main.c times the frame
 * loop with it.
 */
#ifndef SE_GOLDEN_CHECK_H
#define SE_GOLDEN_CHECK_H

#include "model_io.h"
#include "se_frame.h"

typedef struct {
    void *data;
    long bytes;
} se_blob_t;

typedef struct {
    const se_model_desc_t *desc;  /* the model the golden vectors are of */
    long frames;
    se_blob_t json, audio_in, features, audio_out, in_features, out_mask;
    se_blob_t in_state[SE_MAX_STATES], out_state[SE_MAX_STATES];
} se_golden_t;

/* Read every file of the folder `dir` into `g` and check its size against the model descriptor `desc`
 * (se_model_desc.h); on a missing or mismatched file, print why on stderr and exit(2). */
void se_golden_load(se_golden_t *g, const se_model_desc_t *desc, const char *dir);

/* Run checks (a) to (c) (se_golden_check.c); print RESULT lines and PASS or FAIL (n).
 * Returns the number of failed checks (0 = PASS). */
int se_golden_check(const se_golden_t *g);

/* The replayed model without checks: ctx is a se_golden_cursor_t, t the next frame. */
typedef struct {
    const se_golden_t *g;
    long t;
} se_golden_cursor_t;
int se_golden_replay(se_model_io_t *io, void *ctx);

#endif /* SE_GOLDEN_CHECK_H */
