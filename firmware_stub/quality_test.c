/* quality_test.c: the enhancer and the quality predictor in one image (issue 17), against the golden folder of
 * sepipe.quality_predictor.firmware_golden.write_pair_golden:
 *
 *   quality_test <enhancer golden dir> <quality golden dir>
 *
 * 1. The enhancer's own checks (se_golden_check.c, as host_test).
 * 2. The chain: the enhancer's frame loop (se_frame.c) with TFLite Micro's recorded outputs replayed, its
 *    output (the first call's dropped: aligned with the input) fed hop by hop to se_quality.c, whose model
 *    replays the TFLite interpreter's int8 scores. At each prediction the window se_quality.c hands the model
 *    must equal in_windows.bin within SE_QUALITY_LSB steps per value, and the dequantised scores must equal
 *    scores.f32 bit for bit. The same again fed with Python's enhanced audio (audio_out.f32): the feature
 *    stage alone, without the enhancer's own rounding.
 * Exit status 0 PASS, 1 FAIL, 2 a bad golden folder or a descriptor the image cannot run.
 *
 * Built with SE_QUALITY_QEMU=1 (make qemu-quality-test) it also counts the instructions of se_quality_push per
 * hop on QEMU's Cortex-M55 (the model call left out, as qemu_main.c does for the enhancer).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "se_golden_check.h"
#include "se_quality.h"

#ifndef SE_DESC
#define SE_DESC se_model_desc
#endif
#ifndef SE_QUALITY_DESC
#define SE_QUALITY_DESC se_qp_desc
#endif
#ifndef SE_QUALITY_LSB
#define SE_QUALITY_LSB 1 /* firmware_golden.WINDOW_LSB: see README.md, "The quality predictor" */
#endif
#ifndef SE_QUALITY_QEMU
#define SE_QUALITY_QEMU 0
#endif
extern const se_model_desc_t SE_DESC;
extern const se_quality_desc_t SE_QUALITY_DESC;

#if SE_QUALITY_QEMU
#include "se_ticks.h" /* SysTick under `-icount shift=0`, as qemu_main.c */
#endif

typedef struct {
    long windows, frames;                 /* from quality.json */
    const int8_t *in_windows, *out_scores;
    const float *scores, *logmel;
    /* the replayed predictor's findings */
    long next, lsb_hist[3], max_lsb, extra_calls;
    int8_t window[SE_QUALITY_RING_CAP];
#if SE_QUALITY_QEMU
    uint32_t start, ticks;
#endif
} quality_golden_t;

static long json_long(const char *json, const char *key)
{
    char needle[128];
    const char *at;
    snprintf(needle, sizeof(needle), "\"%s\": ", key);
    at = strstr(json, needle);
    if (at == NULL) {
        fprintf(stderr, "quality test: quality.json lacks \"%s\"\n", key);
        exit(2);
    }
    return strtol(at + strlen(needle), NULL, 10);
}

/* A golden file of exactly `bytes` bytes (se_golden_read_blob reads it); exit(2) when its size differs. */
static const void *load(const char *dir, const char *name, long bytes)
{
    const se_blob_t blob = se_golden_read_blob(dir, name);
    if (blob.bytes != bytes) {
        fprintf(stderr, "quality test: %s/%s does not hold %ld bytes: golden folder and descriptor do not match\n",
                dir, name, bytes);
        exit(2);
    }
    return blob.data;
}

/* The predictor model: compare the window with Python's, then return the TFLite interpreter's scores. */
static int replay_predictor(se_quality_io_t *io, const se_quality_desc_t *d, void *ctx)
{
    quality_golden_t *g = (quality_golden_t *)ctx;
    const long values = (long)d->frames * d->mels;
    long i;
#if SE_QUALITY_QEMU
    g->ticks += se_ticks_since(g->start);
#endif
    if (g->next >= g->windows) {
        g->extra_calls++;
        return -1;
    }
    se_quality_window(io, d, g->window);
    for (i = 0; i < values; ++i) {
        const long diff = labs((long)g->window[i] - (long)g->in_windows[g->next * values + i]);
        g->lsb_hist[diff == 0 ? 0 : diff == 1 ? 1 : 2]++;
        g->max_lsb = diff > g->max_lsb ? diff : g->max_lsb;
    }
    memcpy(io->output, g->out_scores + g->next * d->num_targets, (size_t)d->num_targets);
    g->next++;
#if SE_QUALITY_QEMU
    g->start = se_ticks_restart();
#endif
    return 0;
}

/* Feed `hops` hops of enhanced audio to a fresh se_quality_t; check windows and scores. Returns failures. */
static int run_chain(const char *what, quality_golden_t *g, const float *const *hop_of, long hops, uint32_t stride,
                     double tick)
{
    static se_quality_t q;
    const se_quality_desc_t *d = &SE_QUALITY_DESC;
    long h, score_mismatch = 0, predictions = 0;
    double max_logmel_err = 0, instructions = 0;
    int failures = 0, t, status;
    g->next = g->max_lsb = g->extra_calls = 0;
    memset(g->lsb_hist, 0, sizeof(g->lsb_hist));
    status = se_quality_init(&q, d, replay_predictor, g, stride);
    if (status != 0) {
        printf("FAIL se_quality_init refused the predictor descriptor (%d)\n", status);
        return 1;
    }
    for (h = 0; h < hops; ++h) {
        const uint32_t before = q.frames;
        int m;
#if SE_QUALITY_QEMU
        g->ticks = 0;
        g->start = se_ticks_restart();
#endif
        status = se_quality_push(&q, hop_of[h]);
#if SE_QUALITY_QEMU
        g->ticks += se_ticks_since(g->start);
        instructions += (double)g->ticks * tick;
#endif
        if (q.frames != before && (long)q.frames <= g->frames) {
            for (m = 0; m < d->mels; ++m) {
                const double e = fabs((double)q.logmel[m] - (double)g->logmel[(long)(q.frames - 1) * d->mels + m]);
                max_logmel_err = e > max_logmel_err ? e : max_logmel_err;
            }
        }
        if (status < 0) {
            printf("FAIL %s: the predictor call failed at hop %ld\n", what, h);
            return failures + 1;
        }
        if (status == 1) {
            const float *want = g->scores + predictions * d->num_targets;
            for (t = 0; t < d->num_targets; ++t) {
                score_mismatch += memcmp(&q.scores[t], &want[t], sizeof(float)) != 0;
            }
            if (predictions == 0) {
                printf("RESULT %s first_scores", what);
                for (t = 0; t < d->num_targets; ++t) {
                    printf(" %s=%.4f", d->targets[t], (double)q.scores[t]);
                }
                printf("\n");
            }
            predictions++;
        }
    }
    (void)tick;
    (void)instructions;
    printf("RESULT %s predictions=%ld expected=%ld logmel_frames=%lu logmel_max_abs_err=%.3g window_equal=%ld "
           "window_1lsb=%ld window_over_1lsb=%ld window_max_lsb=%ld score_mismatches=%ld\n",
           what, predictions, g->windows, (unsigned long)q.frames, max_logmel_err, g->lsb_hist[0], g->lsb_hist[1], g->lsb_hist[2],
           g->max_lsb, score_mismatch);
#if SE_QUALITY_QEMU
    printf("RESULT %s feature_instructions_per_hop=%.0f feature_instructions_per_window=%.0f hops=%ld stride=%lu\n",
           what, instructions / (double)hops, instructions / (double)hops * (double)stride, hops,
           (unsigned long)stride);
#endif
    if (predictions != g->windows || g->extra_calls) {
        printf("FAIL %s: %ld predictions, the golden folder has %ld\n", what, predictions, g->windows);
        failures++;
    }
    if (g->max_lsb > SE_QUALITY_LSB) {
        printf("FAIL %s: a window value differs from Python's by more than %d step(s)\n", what, SE_QUALITY_LSB);
        failures++;
    }
    if (score_mismatch) {
        printf("FAIL %s: the dequantised scores are not bit-exact with scores.f32\n", what);
        failures++;
    }
    return failures;
}

int main(int argc, char **argv)
{
    static se_golden_t golden;
    static se_frame_t s;
    static quality_golden_t g;
    const se_quality_desc_t *d = &SE_QUALITY_DESC;
    se_golden_cursor_t cursor;
    const float *x, *y, **c_hops, **py_hops;
    float *c_out;
    const char *json;
    long t, values, stride;
    int failures;
    double tick = 0;
    if (argc != 3) {
        fprintf(stderr, "usage: %s <enhancer golden dir> <quality golden dir>\n", argc ? argv[0] : "quality_test");
        return 2;
    }
#if SE_QUALITY_QEMU
    tick = se_ticks_calibrate();
#endif
    printf("== enhancer %s, predictor %s (%u x %u window, %u targets) in one image\n", SE_DESC.name, d->name,
           d->frames, d->mels, d->num_targets);
    se_golden_load(&golden, &SE_DESC, argv[1]);
    failures = se_golden_check(&golden);

    json = (const char *)se_golden_read_blob(argv[2], "quality.json").data;
    if (json_long(json, "frames") != d->frames || json_long(json, "mels") != d->mels) {
        fprintf(stderr, "quality test: quality.json is of another window than the descriptor's %u x %u\n",
                d->frames, d->mels);
        return 2;
    }
    g.windows = json_long(json, "windows");
    g.frames = json_long(json, "logmel_frames");
    stride = json_long(json, "stride");
    values = (long)d->frames * d->mels;
    g.in_windows = (const int8_t *)load(argv[2], "in_windows.bin", g.windows * values);
    g.out_scores = (const int8_t *)load(argv[2], "out_scores.bin", g.windows * d->num_targets);
    g.scores = (const float *)load(argv[2], "scores.f32", g.windows * d->num_targets * (long)sizeof(float));
    g.logmel = (const float *)load(argv[2], "logmel.f32", g.frames * d->mels * (long)sizeof(float));

    /* the enhancer's frame loop on its replayed outputs: the C enhanced audio, call 0's output dropped */
    cursor.g = &golden;
    cursor.t = 0;
    if (se_init(&s, &SE_DESC, se_golden_replay, &cursor) != 0) {
        printf("FAIL se_init refused the enhancer descriptor\n");
        return 2;
    }
    x = (const float *)golden.audio_in.data;
    y = (const float *)golden.audio_out.data;
    c_out = (float *)malloc((size_t)golden.frames * SE_HOP * sizeof(float));
    c_hops = (const float **)malloc((size_t)golden.frames * sizeof(float *));
    py_hops = (const float **)malloc((size_t)golden.frames * sizeof(float *));
    if (c_out == NULL || c_hops == NULL || py_hops == NULL) {
        fprintf(stderr, "quality test: out of memory\n");
        return 2;
    }
    for (t = 0; t < golden.frames; ++t) {
        se_process_hop(&s, &x[t * SE_HOP], &c_out[t * SE_HOP]);
        if (t >= 1) {
            c_hops[t - 1] = &c_out[t * SE_HOP];
            py_hops[t - 1] = &y[(t - 1) * SE_HOP];
        }
    }
    failures += run_chain("chain", &g, c_hops, golden.frames - 1, (uint32_t)stride, tick);
    failures += run_chain("python_audio", &g, py_hops, golden.frames - 1, (uint32_t)stride, tick);
    printf("RESULT ring_bytes=%ld quality_state_bytes=%lu frame_loop_state_bytes=%lu\n", values,
           (unsigned long)sizeof(se_quality_t), (unsigned long)sizeof(se_frame_t));
    printf(failures ? "QUALITY FAIL (%d)\n" : "QUALITY PASS\n", failures);
    return failures ? 1 : 0;
}
