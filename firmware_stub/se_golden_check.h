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

#include <float.h>
#include <math.h>

#include "model_io.h"
#include "se_frame.h"

/* (a) features. Per value, |C feature - Python feature| must stay within
 *
 *     bound = SE_FFT_ERR * sqrt(P_peak / (P + floor)) + SE_LOG_ULPS * ulp(feature) + SE_ABS_ERR
 *
 * P = the bin's power, P_peak = the frame's strongest bin. First term: a float32 radix-2 FFT
 * errs by about log2(N) * FLT_EPSILON of the frame's strongest bins in every bin, i.e. by
 * log2(N) * eps * sqrt(P_peak / P) relative to a weak bin, and ln(P) by twice that (0 in the
 * double build, whose FFT rounds to numpy's float32 spectrum). Second: numpy's float32 log
 * (SIMD) is within 4 ulp; C's logf is within 1. Third: a 1-ulp difference of re or im
 * changes ln(P) by at most 2 * eps. Quantised features may then differ by at most
 * floor(bound / scale) + 1 LSB, and by at most SE_LSB_WELL in "well-conditioned" bins
 * (within SE_WELL_DB of the frame's peak). */
#ifndef SE_FFT_ERR
#if SE_FFT_DOUBLE
#define SE_FFT_ERR 0.0
#else
#define SE_FFT_ERR (2.0 * SE_LOG2_N * FLT_EPSILON)
#endif
#endif
#ifndef SE_LOG_ULPS
#define SE_LOG_ULPS 4.0
#endif
#ifndef SE_ABS_ERR
#define SE_ABS_ERR (4.0 * FLT_EPSILON)
#endif
#ifndef SE_WELL_DB
#define SE_WELL_DB 60.0
#endif
#ifndef SE_LSB_WELL
#define SE_LSB_WELL 1
#endif
/* (c) output audio, absolute (full scale 1.0): a float32 inverse FFT and overlap-add err by
 * ~log2(N) * eps of the frame's amplitude (< 1e-6); 1e-5 is -100 dBFS, a third of a 16-bit LSB. */
#ifndef SE_TOL_AUDIO
#define SE_TOL_AUDIO 1e-5
#endif

#define SE_LOG2_N (log((double)SE_FFT_SIZE) / log(2.0))

/* The error bound and the well-conditioned flag of every bin of one frame (`feat`: Python's features). */
void se_golden_frame_bounds(const float *feat, double *bound, unsigned char *well);

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

/* The file `name` of the folder `dir`, NUL-terminated (text files are strings); exit(2) when unreadable. */
se_blob_t se_golden_read_blob(const char *dir, const char *name);

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
