/* se_quality_desc.h: the quality predictor of a firmware image, as data (issue 17). Fixed, not generated:
 * each predictor is a `const se_quality_desc_t <prefix>_desc` in its generated quality_desc.c
 * (sepipe.quality_predictor.firmware.quality_descriptor_source), beside the enhancer's model_desc.c, so one
 * image holds both and se_quality.c takes the predictor by pointer.
 *
 * The predictor reads a window of `frames` log-mel frames (oldest first, `mels` values each) computed from
 * the enhanced audio: 512-sample periodic-Hann frames every 256 samples, power spectrum, `mels` triangular
 * HTK filters (unit peak), ln(sum + log_floor), then normalised, (x - feature_mean) / feature_std, and
 * quantised with the input tensor's scale and zero point (sepipe.quality_predictor.clips.log_mel and
 * train.load_data). It returns `num_targets` int8 scores in normalised units: score = dequantised *
 * target_std + target_mean, in the order of `targets` (the predictor's config).
 */
#ifndef SE_QUALITY_DESC_H
#define SE_QUALITY_DESC_H

#include <stdint.h>

#include "se_model_desc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SE_QUALITY_DESC_FORMAT 1
#define SE_QUALITY_MAX_TARGETS 8   /* scores a predictor may return */
#define SE_QUALITY_MAX_MELS 128    /* the predictor config's range of `mels` */

/* One mel filter: its non-zero weights are mel_weights[offset .. offset + count), for the bins
 * first_bin .. first_bin + count - 1 (the filter is zero elsewhere, so the sum skips those bins). */
typedef struct {
    uint16_t first_bin;
    uint16_t count;
    uint16_t offset;
} se_mel_band_t;

typedef struct {
    uint16_t format;                   /* SE_QUALITY_DESC_FORMAT */
    const char *name;                  /* <run>_<variant> */
    const char *sha256;                /* of model_data's bytes */
    const uint8_t *model_data;         /* the model bytes, 16-byte aligned (quality_data.c) */
    const unsigned int *model_len;
    const void *(*op_resolver)(void);  /* as se_model_desc_t's: NULL without TFLite Micro */
    const void *(*cpu_op_resolver)(void);
    uint32_t arena_bytes;              /* TFLite Micro arena, whole (0: not measured) */
    uint32_t arena_head_bytes;         /* its non-persistent part (head: activations, scratch) */
    uint32_t arena_tail_bytes;         /* its persistent part (tail: tensor structs, kernel data) */
    uint32_t sample_rate;
    uint16_t fft_size, hop;            /* 512, 256: must equal the enhancer's (se_quality_init checks) */
    float log_floor;                   /* 1e-6 */
    uint16_t frames, mels;             /* the window: frames x mels */
    const float *window;               /* fft_size values: periodic Hann, the float32 numpy computes */
    const se_mel_band_t *bands;        /* mels filters */
    const float *mel_weights;
    float feature_mean, feature_std;   /* the training features' normalisation */
    se_tensor_desc_t input;            /* frames * mels int8 values */
    se_tensor_desc_t output;           /* num_targets int8 values */
    uint16_t num_targets;
    const char *const *targets;        /* e.g. "pesq", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak" */
    const float *target_mean;          /* per target: the training labels' mean and standard deviation */
    const float *target_std;
} se_quality_desc_t;

#ifdef __cplusplus
}
#endif

#endif /* SE_QUALITY_DESC_H */
