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

#if !defined(SE_MODEL_IO_FORMAT) || SE_MODEL_IO_FORMAT < 2
#error "model_io.h is of the older single-type format: regenerate it with sepipe.c_export.model_io_header (sepipe bundle does)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Array lengths of at least 1 (C99 has no empty arrays). */
#define SE_LEN(n) ((n) > 0 ? (n) : 1)

/* What the model reads and writes at each frame, each tensor in its own type (model_io.h).
 * States: an int8 buffer and an int16 buffer per direction; pair k's input is at
 * se_state_pairs[k].input_offset of the buffer of its input_bits, its output at output_offset of
 * the buffer of its output_bits (se_state_in / se_state_out give the address). */
typedef struct {
    se_features_t features[SE_BINS];                  /* in: quantised features */
    int8_t state_in8[SE_LEN(SE_STATE_IN8_ELEMENTS)];  /* in: the int8 state inputs */
    int16_t state_in16[SE_LEN(SE_STATE_IN16_ELEMENTS)];
    se_mask_t mask[SE_BINS];                          /* out: quantised mask */
    int8_t state_out8[SE_LEN(SE_STATE_OUT8_ELEMENTS)]; /* out: the int8 state outputs */
    int16_t state_out16[SE_LEN(SE_STATE_OUT16_ELEMENTS)];
} se_model_io_t;

/* Where pair `p`'s state input / output lives in `io` (an int8_t or int16_t array of p->size). */
void *se_state_in(se_model_io_t *io, const se_state_pair_t *p);
void *se_state_out(se_model_io_t *io, const se_state_pair_t *p);

/* One model Invoke: read io->features and the state inputs, write io->mask and the state outputs.
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
#if SE_STATE_REQUANT8 > 0
    int8_t requant[SE_STATE_TABLE_LEN][256]; /* int8 -> int8 feedback tables (pairs that need requantising) */
#endif
} se_frame_t;

/* Initialise `s` (DSP tables, requantisation tables) and reset it. Returns 0. */
int se_init(se_frame_t *s, se_model_fn model, void *model_ctx);

/* Back to power-up: zero audio history, every state at its input zero point (quantised 0.0). */
void se_reset(se_frame_t *s);

/* Process one hop (see the top of this file). Returns the model's status: on a non-zero
 * status the frame is passed through with a unity mask and the states are left unchanged. */
int se_process_hop(se_frame_t *s, const float in[SE_HOP], float out[SE_HOP]);

/* The state feedback alone: every state output -> its input (copy or requantise). */
void se_feed_back_states(se_frame_t *s);

#ifdef __cplusplus
}
#endif

#endif /* SE_FRAME_H */
