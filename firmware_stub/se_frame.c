/* se_frame.c: see se_frame.h. */
#include "se_frame.h"

#include <string.h>

#include "se_quant.h"

void *se_state_in(se_model_io_t *io, const se_state_pair_t *p)
{
    return p->input_bits == 8 ? (void *)&io->state_in8[p->input_offset] : (void *)&io->state_in16[p->input_offset];
}

void *se_state_out(se_model_io_t *io, const se_state_pair_t *p)
{
    return p->output_bits == 8 ? (void *)&io->state_out8[p->output_offset]
                               : (void *)&io->state_out16[p->output_offset];
}

/* Whether `d` fits this image: its feature settings and the state buffers' capacities. */
int se_check_desc(const se_model_desc_t *d)
{
    int k, requant8 = 0;
    if (d == 0 || d->format != SE_MODEL_DESC_FORMAT) {
        return SE_INIT_FORMAT;
    }
    if (d->fft_size != SE_FFT_SIZE || d->hop != SE_HOP || d->bins != SE_BINS || d->features.elements != SE_BINS ||
        (d->mask.elements != SE_BINS && d->mask.elements != 2 * SE_BINS) || d->mask.elements > SE_MASK_CAP) {
        return SE_INIT_FEATURES;
    }
    for (k = 0; k < d->num_states; ++k) {
        const se_state_pair_t *p = &d->states[k];
        requant8 += !p->same_quantization && p->input_bits == 8 && p->output_bits == 8;
    }
    if (d->num_states > SE_MAX_STATES || requant8 > SE_REQUANT8_CAP ||
        SE_MAX2(d->state_in8_elements, d->state_out8_elements) > SE_STATE_CAP8 ||
        SE_MAX2(d->state_in16_elements, d->state_out16_elements) > SE_STATE_CAP16) {
        return SE_INIT_STATES;
    }
    return 0;
}

int se_init(se_frame_t *s, const se_model_desc_t *desc, se_model_fn model, void *model_ctx)
{
    const int status = se_check_desc(desc);
    int k, slot = 0;
    if (status != 0) {
        return status;
    }
    se_dsp_init();
    memset(s, 0, sizeof(*s));
    s->desc = desc;
    s->model = model;
    s->model_ctx = model_ctx;
#if SE_REQUANT8_CAP > 0
    for (k = 0; k < SE_MAX_STATES; ++k) {
        s->requant_slot[k] = -1;
    }
    for (k = 0; k < desc->num_states; ++k) {
        const se_state_pair_t *p = &desc->states[k];
        if (!p->same_quantization && p->input_bits == 8 && p->output_bits == 8) {
            /* output quantisation -> input quantisation */
            se_requantize_table(s->requant[slot], p->output_scale, p->output_zero_point, p->input_scale,
                                p->input_zero_point);
            s->requant_slot[k] = (int8_t)slot++;
        }
    }
#else
    (void)k;
    (void)slot;
#endif
    se_reset(s);
    return 0;
}

void se_stream_reset(se_stream_t *st)
{
    memset(st->analysis, 0, sizeof(st->analysis));
    memset(st->overlap, 0, sizeof(st->overlap));
    st->frames = 0;
}

void se_reset(se_frame_t *s)
{
    int k, i;
    se_stream_reset(&s->stream);
    for (k = 0; k < s->desc->num_states; ++k) {
        const se_state_pair_t *p = &s->desc->states[k];
        void *in = se_state_in(&s->io, p);
        for (i = 0; i < p->size; ++i) {
            se_store_q(in, i, p->input_bits, p->input_zero_point);
        }
    }
}

void se_feed_back_states(se_frame_t *s)
{
    int k;
    for (k = 0; k < s->desc->num_states; ++k) {
        const se_state_pair_t *p = &s->desc->states[k];
        const void *from = se_state_out(&s->io, p);
        void *to = se_state_in(&s->io, p);
        if (p->same_quantization) {
            memcpy(to, from, (size_t)p->size * (p->input_bits / 8u));
        }
#if SE_REQUANT8_CAP > 0
        else if (s->requant_slot[k] >= 0) {
            se_requantize_with_table(s->requant[s->requant_slot[k]], (const int8_t *)from, (int8_t *)to, p->size);
        }
#endif
        else {
            se_requantize_array(from, p->output_bits, to, p->input_bits, p->size, p->output_scale,
                                p->output_zero_point, p->input_scale, p->input_zero_point);
        }
    }
}

void se_stream_analyse(se_stream_t *st, const float in[SE_HOP], const se_model_desc_t *desc, se_model_io_t *io)
{
    const float *w = se_window();
    int n;
    memmove(st->analysis, st->analysis + SE_HOP, (SE_FFT_SIZE - SE_HOP) * sizeof(float));
    memcpy(st->analysis + (SE_FFT_SIZE - SE_HOP), in, SE_HOP * sizeof(float));
    for (n = 0; n < SE_FFT_SIZE; ++n) {
        st->frame[n] = st->analysis[n] * w[n];
    }
    se_rfft(st->frame, st->re, st->im, st->work);
    se_log_power(st->re, st->im, st->features);
    if (desc != 0) { /* none: the frame passes through, no model reads them */
        se_quantize_array(st->features, io->features, SE_BINS, desc->features.scale, desc->features.zero_point,
                          desc->features.bits);
    }
}

void se_stream_gain(se_stream_t *st, int status, const se_model_desc_t *desc, const se_model_io_t *io)
{
    int n;
    if (status == 0) {
        st->gain_values = desc->mask.elements;
        se_dequantize_array(io->mask, desc->mask.bits, st->gain, st->gain_values, desc->mask.scale,
                            desc->mask.zero_point);
    } else {
        st->gain_values = SE_BINS;
        for (n = 0; n < SE_BINS; ++n) {
            st->gain[n] = 1.0f; /* pass the audio through */
        }
    }
}

void se_stream_synthesise(se_stream_t *st, float out[SE_HOP])
{
    const float *w = se_window();
    int n;
#if SE_MASK_CAP >= 2 * SE_BINS /* an image of real masks only has no room for (and no call of) complex gains */
    if (st->gain_values == 2 * SE_BINS) {
        se_apply_complex_mask(st->re, st->im, st->gain);
    } else {
        se_apply_mask(st->re, st->im, st->gain);
    }
#else
    se_apply_mask(st->re, st->im, st->gain);
#endif
    se_irfft(st->re, st->im, st->frame, st->work);
    for (n = 0; n < SE_FFT_SIZE; ++n) {
        st->frame[n] = st->frame[n] * w[n];
    }
    for (n = 0; n < SE_HOP; ++n) {
        out[n] = st->overlap[n] + st->frame[n];
        st->overlap[n] = st->frame[SE_HOP + n];
    }
    st->frames++;
}

int se_process_hop(se_frame_t *s, const float in[SE_HOP], float out[SE_HOP])
{
    int status;
    se_stream_analyse(&s->stream, in, s->desc, &s->io);
    status = s->model(&s->io, s->model_ctx);
    se_stream_gain(&s->stream, status, s->desc, &s->io);
    if (status == 0) {
        se_feed_back_states(s); /* on a failed call the states are kept */
    }
    se_stream_synthesise(&s->stream, out);
    return status;
}
