/* se_quality.h: the quality predictor after the enhancer (issue 17). One call per hop of enhanced audio:
 *
 *   enhanced hop (SE_HOP samples) -> last 512 samples -> x periodic Hann -> real FFT (se_dsp's)
 *     -> power re*re + im*im -> mel filters (sparse sums) -> ln(sum + log_floor)
 *     -> (x - feature_mean) / feature_std -> quantise -> one row of the ring (frames x mels int8)
 *   every `stride` frames once the ring is full: model(window) -> int8 scores
 *     -> dequantise -> * target_std + target_mean -> scores[] (the descriptor's targets, in order)
 *
 * The framing is the predictor's own (sepipe.quality_predictor.clips.log_mel): a 512-sample Hann frame
 * every 256 samples of the enhanced stream, frame i = samples [256 i, 256 i + 512). Its hop must equal the
 * enhancer's SE_HOP (se_quality_init checks), so each enhancer hop adds exactly one log-mel frame; the first
 * hop only fills the history. Feed the enhancer's output aligned with its input: drop se_process_hop's first
 * output (the hop before the stream), as for playback.
 *
 * Memory: the ring (frames * mels int8: 6,200 B for the trained predictor's 155 x 40) and ~7 KB of float
 * scratch live in se_quality_t, outside any tensor arena, so the enhancer and the predictor can share the
 * arena's non-persistent part (README.md, "The quality predictor"). The model is a function pointer like the
 * enhancer's: it reads the window with se_quality_window (into its input tensor) and writes io->output.
 */
#ifndef SE_QUALITY_H
#define SE_QUALITY_H

#include <stdint.h>

#include "model_io.h"
#include "se_dsp.h"
#include "se_quality_desc.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef SE_QUALITY_RING_CAP /* int8 values of the window: frames * mels (default: 155 x 40) */
#define SE_QUALITY_RING_CAP (155 * 40)
#endif

/* se_quality_init's refusals (0: ready) */
#define SE_QUALITY_INIT_FORMAT (-1)   /* not a descriptor of SE_QUALITY_DESC_FORMAT */
#define SE_QUALITY_INIT_FRAMING (-2)  /* FFT size or hop other than the enhancer's (SE_FFT_SIZE, SE_HOP) */
#define SE_QUALITY_INIT_SIZE (-3)     /* window over SE_QUALITY_RING_CAP, too many mels or targets, not int8 */
#define SE_QUALITY_INIT_STRIDE (-4)   /* stride 0 */

/* What the predictor model reads and writes at each prediction. */
typedef struct {
    const int8_t *ring;                     /* frames rows of mels values, ring order */
    int first;                              /* the ring row of the oldest frame */
    int8_t output[SE_QUALITY_MAX_TARGETS];  /* out: the quantised scores */
} se_quality_io_t;

/* One predictor Invoke: read the window (se_quality_window), write io->output; 0 on success. */
typedef int (*se_quality_fn)(se_quality_io_t *io, const se_quality_desc_t *desc, void *ctx);

/* The window in time order, oldest frame first: frames * mels values into dst (e.g. the input tensor). */
void se_quality_window(const se_quality_io_t *io, const se_quality_desc_t *desc, int8_t *dst);

typedef struct {
    const se_quality_desc_t *desc;
    se_quality_fn model;
    void *model_ctx;
    uint32_t stride;                        /* frames between predictions */
    uint32_t hops;                          /* hops pushed since init / reset */
    uint32_t frames;                        /* log-mel frames computed */
    uint32_t predictions;
    int head;                               /* the ring row the next frame goes to */
    float scores[SE_QUALITY_MAX_TARGETS];   /* the latest prediction, in score units */
    float previous[SE_HOP];                 /* the previous hop of enhanced audio */
    float frame[SE_FFT_SIZE];               /* the windowed frame */
    float re[SE_BINS];                      /* spectrum, then power */
    float im[SE_BINS];
    float logmel[SE_QUALITY_MAX_MELS];      /* float log-mel of the latest frame (diagnostics, tests) */
    se_real_t work[SE_FFT_SIZE];            /* FFT scratch */
    int8_t ring[SE_QUALITY_RING_CAP];
    se_quality_io_t io;
} se_quality_t;

/* Initialise `q` for the predictor `desc`, predicting every `stride` frames once the window is full (stride
 * = desc->frames: back-to-back windows). Returns 0, or SE_QUALITY_INIT_* (then `q` must not be used). */
int se_quality_init(se_quality_t *q, const se_quality_desc_t *desc, se_quality_fn model, void *model_ctx,
                    uint32_t stride);

/* Back to power-up: no history, an empty window, no scores. */
void se_quality_reset(se_quality_t *q);

/* One hop of enhanced audio. Returns 1 when a new prediction is in q->scores, 0 when none was due, or the
 * model's non-zero status as a negative number (the scores are then unchanged). */
int se_quality_push(se_quality_t *q, const float in[SE_HOP]);

#ifdef __cplusplus
}
#endif

#endif /* SE_QUALITY_H */
