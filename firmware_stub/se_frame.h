/* se_frame.h: the streaming frame loop. One call per hop of SE_HOP samples:
 *
 *   in (SE_HOP samples) -> analysis buffer (last SE_FFT_SIZE samples, starts as zeros)
 *     -> window -> real FFT -> log-power features -> quantise            (se_dsp, se_quant)
 *     -> model (features + every state in -> mask + every state out)      (se_model_fn)
 *     -> state feedback: copy, or requantise where the scales differ      (se_quant)
 *     -> dequantise mask -> spectrum * mask -> inverse FFT -> window
 *     -> overlap-add -> out (SE_HOP samples, one hop late)
 *
 * Call k (from 0) consumes input samples [k*SE_HOP, (k+1)*SE_HOP) and returns output samples
 * [(k-1)*SE_HOP, k*SE_HOP): block k-1 is complete once frame k has been added. The first
 * call's output belongs to the hop before the stream started (the overlap of frame 0 with the
 * zero history); discard it to align output with input.
 *
 * Memory: everything lives in se_frame_t (no heap, no globals besides the constant DSP
 * tables filled by se_dsp_init). Not reentrant per instance; separate instances are independent.
 */
#ifndef SE_FRAME_H
#define SE_FRAME_H

#include <stdint.h>

#include "model_io.h"
#include "se_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SE_STATE_BUFFER_LEN (SE_STATE_ELEMENTS > 0 ? SE_STATE_ELEMENTS : 1)

/* What the model reads and writes at each frame. States are concatenated in se_state_pairs
 * order: pair k occupies [se_state_pairs[k].offset, + se_state_pairs[k].size). */
typedef struct {
    se_act_t features[SE_BINS];               /* in: quantised features */
    se_act_t state_in[SE_STATE_BUFFER_LEN];   /* in: every state input */
    se_act_t mask[SE_BINS];                   /* out: quantised mask */
    se_act_t state_out[SE_STATE_BUFFER_LEN];  /* out: every state output */
} se_model_io_t;

/* One model Invoke: read io->features and io->state_in, write io->mask and io->state_out.
 * Return 0 on success. (se_model_tflm.h provides one for TensorFlow Lite Micro.) */
typedef int (*se_model_fn)(se_model_io_t *io, void *ctx);

typedef struct {
    se_model_fn model;
    void *model_ctx;
    uint32_t frames;                    /* frames processed since se_init / se_reset */
    float analysis[SE_FFT_SIZE];        /* the last SE_FFT_SIZE input samples */
    float overlap[SE_HOP];              /* second half of the previous synthesised frame */
    float frame[SE_FFT_SIZE];           /* windowed analysis frame, then synthesised frame */
    float re[SE_BINS];                  /* spectrum of the current frame (masked after the model) */
    float im[SE_BINS];
    float features[SE_BINS];            /* float features of the current frame */
    float gain[SE_BINS];                /* dequantised mask of the current frame */
    se_real_t work[SE_FFT_SIZE];        /* FFT scratch */
    se_model_io_t io;
#if SE_ACT_BITS == 8
    int8_t requant[SE_STATE_TABLE_LEN][256]; /* int8 feedback tables (pairs that need requantising) */
#endif
} se_frame_t;

/* Initialise `s` (DSP tables, requantisation tables) and reset it. Returns 0. */
int se_init(se_frame_t *s, se_model_fn model, void *model_ctx);

/* Back to power-up: zero audio history, every state at its input zero point (quantised 0.0). */
void se_reset(se_frame_t *s);

/* Process one hop (see the top of this file). Returns the model's status: on a non-zero
 * status the frame is passed through with a unity mask and the states are left unchanged. */
int se_process_hop(se_frame_t *s, const float in[SE_HOP], float out[SE_HOP]);

/* The state feedback alone: io->state_out -> io->state_in for every pair (copy or requantise). */
void se_feed_back_states(se_frame_t *s);

#ifdef __cplusplus
}
#endif

#endif /* SE_FRAME_H */
