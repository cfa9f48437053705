/* se_frame.h: the streaming frame loop. One call per hop of SE_HOP samples:
 *
 *   in (SE_HOP samples) -> analysis buffer (last SE_FFT_SIZE samples, starts as zeros)
 *     -> window -> real FFT -> log-power features -> quantise            (se_dsp, se_quant)
 *     -> model (features + every state in -> mask + every state out)      (se_model_fn)
 *     -> state feedback: copy, or requantise where the scales differ      (se_quant)
 *     -> dequantise mask -> spectrum * mask (real or complex gains) -> inverse FFT -> window
 *     -> overlap-add -> out (SE_HOP samples, one hop late)
 *
 * Call k (from 0) consumes input samples [k*SE_HOP, (k+1)*SE_HOP) and returns output samples
 * [(k-1)*SE_HOP, k*SE_HOP): block k-1 is complete once frame k has been added. The first
 * call's output belongs to the hop before the stream started (the overlap of frame 0 with the
 * zero history); discard it to align output with input.
 *
 * The model is a descriptor (se_model_desc.h: a const struct per model, generated model_desc.c):
 * its tensors' types, scales and zero points and its state pairs are read from it at run time, so
 * one image can run several models, one se_frame_t each. Compile-time, from model_io.h (any model of
 * the image: they share it): the feature settings (SE_FFT_SIZE, SE_HOP, SE_BINS; the DSP tables are
 * generated for them) and the capacities of the state buffers, SE_STATE_CAP8 / SE_STATE_CAP16 values
 * per direction and SE_REQUANT8_CAP int8 requantisation tables (default: that model_io.h's own needs;
 * define them larger, e.g. -DSE_STATE_CAP8=512, for an image with bigger models), and SE_MASK_CAP mask
 * values (-DSE_MASK_CAP=2*SE_BINS beside a complex-mask model). se_init refuses a
 * descriptor that does not fit.
 *
 * Memory: everything lives in se_frame_t (no heap, no globals besides the constant DSP
 * tables). Not reentrant per instance; separate instances are independent.
 */
#ifndef SE_FRAME_H
#define SE_FRAME_H

#include <stdint.h>

#include "model_io.h"
#include "se_dsp.h"
#include "se_model_desc.h"

#if !defined(SE_MODEL_IO_FORMAT) || SE_MODEL_IO_FORMAT < 2
#error "model_io.h is of the older single-type format: regenerate it with sepipe.c_export.model_io_header (sepipe bundle does)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Array lengths of at least 1 (C99 has no empty arrays). */
#define SE_LEN(n) ((n) > 0 ? (n) : 1)
#define SE_MAX2(a, b) ((a) > (b) ? (a) : (b))

/* Mask values: SE_BINS real gains, or 2 * SE_BINS for a complex mask (real parts, then imaginary parts;
 * sepipe.gain). SE_MASK_CAP: the most any model of the image gives (default: model_io.h's own). */
#ifndef SE_MASK_ELEMENTS /* a model_io.h written before complex masks */
#define SE_MASK_ELEMENTS SE_BINS
#endif
#ifndef SE_MASK_CAP
#define SE_MASK_CAP SE_MASK_ELEMENTS
#endif

#ifndef SE_STATE_CAP8 /* int8 state values per direction */
#define SE_STATE_CAP8 SE_MAX2(SE_STATE_IN8_ELEMENTS, SE_STATE_OUT8_ELEMENTS)
#endif
#ifndef SE_STATE_CAP16 /* int16 state values per direction */
#define SE_STATE_CAP16 SE_MAX2(SE_STATE_IN16_ELEMENTS, SE_STATE_OUT16_ELEMENTS)
#endif
#ifndef SE_REQUANT8_CAP /* state pairs requantised int8 -> int8 (a 256-entry table each) */
#define SE_REQUANT8_CAP SE_STATE_REQUANT8
#endif

/* se_init's refusals (0: ready) */
#define SE_INIT_FORMAT (-1)    /* not a descriptor of SE_MODEL_DESC_FORMAT */
#define SE_INIT_FEATURES (-2)  /* other feature settings than this image's model_io.h */
#define SE_INIT_STATES (-3)    /* more states than SE_STATE_CAP8 / SE_STATE_CAP16 / SE_REQUANT8_CAP / SE_MAX_STATES */

/* What the model reads and writes at each frame, each tensor in its own type (the descriptor's
 * `bits`: features and mask are int8_t or int16_t arrays of SE_BINS, a complex mask 2 * SE_BINS, as void *
 * with their bits).
 * States: an int8 buffer and an int16 buffer per direction; pair k's input is at
 * states[k].input_offset of the buffer of its input_bits, its output at output_offset of the buffer
 * of its output_bits (se_state_in / se_state_out give the address). */
typedef struct {
    int16_t features[SE_BINS];                   /* in: quantised features (int8_t or int16_t) */
    int8_t state_in8[SE_LEN(SE_STATE_CAP8)];     /* in: the int8 state inputs */
    int16_t state_in16[SE_LEN(SE_STATE_CAP16)];
    int16_t mask[SE_MASK_CAP];                   /* out: quantised mask (int8_t or int16_t), SE_BINS or 2 x */
    int8_t state_out8[SE_LEN(SE_STATE_CAP8)];    /* out: the int8 state outputs */
    int16_t state_out16[SE_LEN(SE_STATE_CAP16)];
} se_model_io_t;

/* Where pair `p`'s state input / output lives in `io` (an int8_t or int16_t array of p->size). */
void *se_state_in(se_model_io_t *io, const se_state_pair_t *p);
void *se_state_out(se_model_io_t *io, const se_state_pair_t *p);

/* One model Invoke: read io->features and the state inputs, write io->mask and the state outputs.
 * Return 0 on success. (se_model_tflm.h provides one for TensorFlow Lite Micro.) */
typedef int (*se_model_fn)(se_model_io_t *io, void *ctx);

/* The DSP front end and back end of one audio stream, without the model: analysis buffer, FFT,
 * features, then (after a model filled `gain`) mask, inverse FFT and overlap-add. se_frame_t holds one;
 * an early-exit set (se_exit_set.h) holds one for all its models, as the stream is one. */
typedef struct {
    uint32_t frames;                    /* hops processed since the last reset */
    float analysis[SE_FFT_SIZE];        /* the last SE_FFT_SIZE input samples */
    float overlap[SE_HOP];              /* second half of the previous synthesised frame */
    float frame[SE_FFT_SIZE];           /* windowed analysis frame, then synthesised frame */
    float re[SE_BINS];                  /* spectrum of the current frame (masked after the model) */
    float im[SE_BINS];
    float features[SE_BINS];            /* float features of the current frame */
    float gain[SE_MASK_CAP];            /* dequantised mask of the current frame */
    int gain_values;                    /* SE_BINS (real gains) or 2 * SE_BINS (complex) */
    se_real_t work[SE_FFT_SIZE];        /* FFT scratch */
} se_stream_t;

typedef struct {
    const se_model_desc_t *desc;        /* the model this frame loop runs */
    se_model_fn model;
    void *model_ctx;
    se_stream_t stream;                 /* audio buffers and the current frame's spectrum and features */
    se_model_io_t io;
#if SE_REQUANT8_CAP > 0
    int8_t requant_slot[SE_MAX_STATES];      /* pair k's table, or -1 */
    int8_t requant[SE_REQUANT8_CAP][256];    /* int8 -> int8 feedback tables (pairs that need requantising) */
#endif
} se_frame_t;

/* Initialise `s` for the model `desc` (DSP tables, requantisation tables) and reset it. Returns 0, or
 * SE_INIT_* when `desc` does not fit this image (then `s` must not be used). */
int se_init(se_frame_t *s, const se_model_desc_t *desc, se_model_fn model, void *model_ctx);

/* Back to power-up: zero audio history, every state at its input zero point (quantised 0.0). */
void se_reset(se_frame_t *s);

/* Process one hop (see the top of this file). Returns the model's status: on a non-zero
 * status the frame is passed through with a unity mask and the states are left unchanged. */
int se_process_hop(se_frame_t *s, const float in[SE_HOP], float out[SE_HOP]);

/* The state feedback alone: every state output -> its input (copy or requantise). */
void se_feed_back_states(se_frame_t *s);

/* The steps of se_process_hop that do not depend on the model, for loops that run several models on
 * one stream (se_exit_set.c). Whether `desc` fits this image (0, or SE_INIT_*): */
int se_check_desc(const se_model_desc_t *desc);
/* Zero audio history (the DSP tables must be ready: se_dsp_init). */
void se_stream_reset(se_stream_t *st);
/* Slide in one hop, window, FFT, float features (st->features), then quantise them for `desc` into `io`
 * (desc NULL: not quantised). */
void se_stream_analyse(se_stream_t *st, const float in[SE_HOP], const se_model_desc_t *desc, se_model_io_t *io);
/* st->gain from the model's mask (status 0), or unity (the frame passes through). */
void se_stream_gain(se_stream_t *st, int status, const se_model_desc_t *desc, const se_model_io_t *io);
/* Mask the spectrum with st->gain, inverse FFT, window, overlap-add into `out`. */
void se_stream_synthesise(se_stream_t *st, float out[SE_HOP]);

#ifdef __cplusplus
}
#endif

#endif /* SE_FRAME_H */
