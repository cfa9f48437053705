/* se_quality.c: see se_quality.h. */
#include "se_quality.h"

#include <math.h>
#include <string.h>

#include "se_quant.h"

void se_quality_window(const se_quality_io_t *io, const se_quality_desc_t *desc, int8_t *dst)
{
    const int mels = desc->mels, older = desc->frames - io->first;
    memcpy(dst, io->ring + (long)io->first * mels, (size_t)older * (size_t)mels);
    memcpy(dst + (long)older * mels, io->ring, (size_t)io->first * (size_t)mels);
}

static int se_quality_check(const se_quality_desc_t *d, uint32_t stride)
{
    if (d == 0 || d->format != SE_QUALITY_DESC_FORMAT) {
        return SE_QUALITY_INIT_FORMAT;
    }
    if (d->fft_size != SE_FFT_SIZE || d->hop != SE_HOP) {
        return SE_QUALITY_INIT_FRAMING;
    }
    if ((long)d->frames * d->mels > SE_QUALITY_RING_CAP || d->frames < 1 || d->mels < 1 ||
        d->mels > SE_QUALITY_MAX_MELS || d->num_targets < 1 || d->num_targets > SE_QUALITY_MAX_TARGETS ||
        d->input.elements != d->frames * d->mels || d->output.elements != d->num_targets || d->input.bits != 8 ||
        d->output.bits != 8) {
        return SE_QUALITY_INIT_SIZE;
    }
    return stride == 0 ? SE_QUALITY_INIT_STRIDE : 0;
}

int se_quality_init(se_quality_t *q, const se_quality_desc_t *desc, se_quality_fn model, void *model_ctx,
                    uint32_t stride)
{
    const int status = se_quality_check(desc, stride);
    if (status != 0) {
        return status;
    }
    se_dsp_init();
    memset(q, 0, sizeof(*q));
    q->desc = desc;
    q->model = model;
    q->model_ctx = model_ctx;
    q->stride = stride;
    se_quality_reset(q);
    return 0;
}

void se_quality_reset(se_quality_t *q)
{
    q->hops = q->frames = q->predictions = 0;
    q->head = 0;
    memset(q->scores, 0, sizeof(q->scores));
    memset(q->previous, 0, sizeof(q->previous));
    memset(q->ring, 0, sizeof(q->ring));
}

/* One log-mel frame of the previous and the new hop into the ring, in clips.log_mel's order of operations:
 * float32 window product, power re*re + im*im, mel sums over each filter's non-zero bins, + floor, logf;
 * then train.load_data's normalisation and the input tensor's quantisation. */
static void se_quality_frame(se_quality_t *q, const float in[SE_HOP])
{
    const se_quality_desc_t *d = q->desc;
    int8_t *row = q->ring + (long)q->head * d->mels;
    int n, m;
    for (n = 0; n < SE_HOP; ++n) {
        q->frame[n] = q->previous[n] * d->window[n];
        q->frame[SE_HOP + n] = in[n] * d->window[SE_HOP + n];
    }
    se_rfft(q->frame, q->re, q->im, q->work);
    for (n = 0; n < SE_BINS; ++n) {
        const float rr = q->re[n] * q->re[n];
        const float ii = q->im[n] * q->im[n];
        q->re[n] = rr + ii;
    }
    for (m = 0; m < d->mels; ++m) {
        const se_mel_band_t *b = &d->bands[m];
        const float *w = d->mel_weights + b->offset;
        const float *p = q->re + b->first_bin;
        float sum = 0.0f, x;
        int j;
        for (j = 0; j < b->count; ++j) {
            sum += p[j] * w[j];
        }
        q->logmel[m] = logf(sum + d->log_floor);
        x = (q->logmel[m] - d->feature_mean) / d->feature_std;
        row[m] = (int8_t)se_quantize(x, d->input.scale, d->input.zero_point, 8);
    }
    q->head = q->head + 1 == d->frames ? 0 : q->head + 1;
    q->frames++;
}

int se_quality_push(se_quality_t *q, const float in[SE_HOP])
{
    const se_quality_desc_t *d = q->desc;
    int t, status;
    if (q->hops++ > 0) {
        se_quality_frame(q, in);
    }
    memcpy(q->previous, in, sizeof(q->previous));
    /* window j holds frames j * stride .. j * stride + frames - 1: due when its last frame arrives */
    if (q->frames < d->frames || (q->frames - d->frames) % q->stride != 0) {
        return 0;
    }
    q->io.ring = q->ring;
    q->io.first = q->head; /* the ring is full: the next row to write is the oldest */
    status = q->model(&q->io, d, q->model_ctx);
    if (status != 0) {
        return status > 0 ? -status : status;
    }
    for (t = 0; t < d->num_targets; ++t) {
        const float y = se_dequantize(q->io.output[t], d->output.scale, d->output.zero_point);
        const float scaled = y * d->target_std[t];
        q->scores[t] = scaled + d->target_mean[t];
    }
    q->predictions++;
    return 1;
}
