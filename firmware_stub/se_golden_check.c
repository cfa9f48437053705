/* se_golden_check.c: the stub against the golden vectors of pipeline/golden.py, shared by
 * host_test.c (the x86 host) and qemu_main.c (the Cortex-M55 on QEMU): see se_golden_check.h.
 *
 * The golden folder and model_io.h (compiled in) must come from the same model. Checks:
 *   (a) features: the C float features of every frame against features.f32, and the C
 *       quantised features against in_features.bin (what TFLite Micro got);
 *   (b) state feedback: for every pair and frame t, requantising out_<state>[t] (what TFLite
 *       Micro returned) gives in_<state>[t+1] (what it got next) bit-exactly, and
 *       in_<state>[0] is the zero point;
 *   (c) the frame loop, with a "model" that replays TFLite Micro's recorded outputs: the states
 *       it is handed equal in_<state>[t] bit-exactly at every frame, and the output audio
 *       matches audio_out.f32.
 * Prints one "RESULT key=value" line per figure, then PASS or FAIL; exit status 0 on PASS.
 * Tolerances: see README.md ("Tolerances"); they can be overridden with -D at build time.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_io.h"
#include "se_dsp.h"
#include "se_frame.h"
#include "se_quant.h"
#include "se_golden_check.h"

/* The tolerances (SE_FFT_ERR, SE_LOG_ULPS, SE_ABS_ERR, SE_WELL_DB, SE_LSB_WELL, SE_TOL_AUDIO): se_golden_check.h. */


static int failures;

static void fail(const char *what)
{
    printf("FAIL %s\n", what);
    failures++;
}

se_blob_t se_golden_read_blob(const char *dir, const char *name)
{
    char path[4096];
    se_blob_t b = {NULL, 0};
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "golden check: cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    b.bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc(b.bytes > 0 ? (size_t)b.bytes : 1);
    if (b.data == NULL || (b.bytes > 0 && fread(b.data, 1, (size_t)b.bytes, f) != (size_t)b.bytes)) {
        fprintf(stderr, "golden check: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    b.data = realloc(b.data, (size_t)b.bytes + 1);
    ((char *)b.data)[b.bytes] = '\0'; /* text files are strings */
    return b;
}

static void expect_size(const char *name, se_blob_t b, long bytes)
{
    if (b.bytes != bytes) {
        fprintf(stderr, "golden check: %s has %ld bytes, expected %ld: golden vectors and the model descriptor do not match\n",
                name, b.bytes, bytes);
        exit(2);
    }
}

/* golden.json is written by Python's json.dumps(indent=2): `"key": value` */
static void expect_json(const char *json, const char *key, const char *value)
{
    char needle[256];
    snprintf(needle, sizeof(needle), "\"%s\": %s", key, value);
    if (strstr(json, needle) == NULL) {
        fprintf(stderr, "golden check: golden.json lacks %s: golden vectors and the model descriptor do not match\n", needle);
        exit(2);
    }
}

/* ------------------------------------------------------------------ the replayed model */

typedef struct {
    long frames, t;
    const se_model_desc_t *desc;
    const void *in_features;    /* int8_t or int16_t, desc->features.bits */
    const void *out_mask;       /* desc->mask.bits */
    const void *in_state[SE_MAX_STATES], *out_state[SE_MAX_STATES]; /* each pair: its own types */
    const double *bound;        /* per bin of the current frame: the feature error bound */
    const unsigned char *well;  /* per bin of the current frame: 1 = well-conditioned */
    long lsb_hist[3];           /* quantised features: equal, 1 LSB apart, more */
    long lsb_over_bound;        /* more than floor(bound / scale) + 1 LSB apart */
    long lsb_well_over;         /* more than SE_LSB_WELL apart in well-conditioned bins */
    long max_lsb, max_lsb_well;
    long state_mismatch;        /* states handed to the model != in_<state>[t] */
} replay_t;

static int replay_model(se_model_io_t *io, void *ctx)
{
    replay_t *r = (replay_t *)ctx;
    long t = r->t, k, i;
    if (t >= r->frames) {
        return -1;
    }
    const se_model_desc_t *desc = r->desc;
    const int fbits = desc->features.bits;
    for (k = 0; k < SE_BINS; ++k) {
        const long d = labs((long)se_load_q(io->features, k, fbits) - (long)se_load_q(r->in_features, t * SE_BINS + k, fbits));
        r->lsb_hist[d == 0 ? 0 : d == 1 ? 1 : 2]++;
        if (d > r->max_lsb) {
            r->max_lsb = d;
        }
        if ((double)d > floor(r->bound[k] / (double)desc->features.scale) + 1.0) {
            r->lsb_over_bound++;
        }
        if (r->well[k]) {
            if (d > r->max_lsb_well) {
                r->max_lsb_well = d;
            }
            if (d > SE_LSB_WELL) {
                r->lsb_well_over++;
            }
        }
    }
    for (k = 0; k < desc->num_states; ++k) {
        const se_state_pair_t *p = &desc->states[k];
        const void *in = se_state_in(io, p);
        for (i = 0; i < p->size; ++i) {
            if (se_load_q(in, i, p->input_bits) != se_load_q(r->in_state[k], t * p->size + i, p->input_bits)) {
                r->state_mismatch++;
            }
        }
        memcpy(se_state_out(io, p), (const char *)r->out_state[k] + t * p->size * (p->output_bits / 8),
               (size_t)p->size * (p->output_bits / 8u));
    }
    memcpy(io->mask, (const char *)r->out_mask + (size_t)(t * desc->mask.elements * (desc->mask.bits / 8)),
           (size_t)desc->mask.elements * (desc->mask.bits / 8u));
    r->t++;
    return 0;
}

void se_golden_frame_bounds(const float *feat, double *bound, unsigned char *well)
{
    float top = feat[0];
    int k;
    for (k = 1; k < SE_BINS; ++k) {
        if (feat[k] > top) {
            top = feat[k];
        }
    }
    for (k = 0; k < SE_BINS; ++k) {
        const float f = fabsf(feat[k]);
        const double ulp = (double)(nextafterf(f, INFINITY) - f);
        /* feat = ln(P + floor): sqrt(P_peak / (P + floor)) = exp((top - feat) / 2) */
        bound[k] = SE_FFT_ERR * exp(0.5 * ((double)top - (double)feat[k])) + SE_LOG_ULPS * ulp + SE_ABS_ERR;
        well[k] = (double)(top - feat[k]) <= SE_WELL_DB * log(10.0) / 10.0;
    }
}

void se_golden_load(se_golden_t *g, const se_model_desc_t *desc, const char *dir)
{
    char text[300];
    long frames, k;
    const uint16_t probe = 1;

    if (*(const uint8_t *)&probe != 1) {
        fprintf(stderr, "golden check: the golden files are little-endian; this machine is not\n");
        exit(2);
    }
    memset(g, 0, sizeof(*g));
    g->desc = desc;
    g->json = se_golden_read_blob(dir, "golden.json");
    snprintf(text, sizeof(text), "%d", SE_FFT_SIZE);
    expect_json((const char *)g->json.data, "fft_size", text);
    snprintf(text, sizeof(text), "%d", SE_HOP);
    expect_json((const char *)g->json.data, "hop", text);
    snprintf(text, sizeof(text), "%d", SE_BINS);
    expect_json((const char *)g->json.data, "bins", text);
    snprintf(text, sizeof(text), "\"%s\"", desc->io_dtype);
    expect_json((const char *)g->json.data, "activation_dtype", text);
    expect_json((const char *)g->json.data, "window", "\"sqrt_hann_periodic\"");

    g->features = se_golden_read_blob(dir, "features.f32");
    frames = g->features.bytes / (long)(SE_BINS * sizeof(float));
    if (frames < 2) {
        fprintf(stderr, "golden check: features.f32 holds %ld frames; need at least 2\n", frames);
        exit(2);
    }
    g->frames = frames;
    expect_size("features.f32", g->features, frames * SE_BINS * (long)sizeof(float));
    g->audio_in = se_golden_read_blob(dir, "audio_in.f32");
    expect_size("audio_in.f32", g->audio_in, frames * SE_HOP * (long)sizeof(float));
    g->audio_out = se_golden_read_blob(dir, "audio_out.f32");
    expect_size("audio_out.f32", g->audio_out, (frames - 1) * SE_HOP * (long)sizeof(float));
    snprintf(text, sizeof(text), "in_%s.bin", desc->features.name);
    g->in_features = se_golden_read_blob(dir, text);
    expect_size(text, g->in_features, frames * SE_BINS * (long)(desc->features.bits / 8));
    snprintf(text, sizeof(text), "out_%s.bin", desc->mask.name);
    g->out_mask = se_golden_read_blob(dir, text);
    expect_size(text, g->out_mask, frames * desc->mask.elements * (long)(desc->mask.bits / 8));
    if (desc->num_states > SE_MAX_STATES) {
        fprintf(stderr, "golden check: the model has %d state pairs; SE_MAX_STATES is %d\n", desc->num_states,
                SE_MAX_STATES);
        exit(2);
    }
    for (k = 0; k < desc->num_states; ++k) {
        char name[256];
        const se_state_pair_t *p = &desc->states[k];
        snprintf(name, sizeof(name), "in_%s.bin", p->input_name);
        g->in_state[k] = se_golden_read_blob(dir, name);
        expect_size(name, g->in_state[k], frames * p->size * (long)(p->input_bits / 8));
        snprintf(name, sizeof(name), "out_%s.bin", p->output_name);
        g->out_state[k] = se_golden_read_blob(dir, name);
        expect_size(name, g->out_state[k], frames * p->size * (long)(p->output_bits / 8));
    }
}

int se_golden_replay(se_model_io_t *io, void *ctx)
{
    se_golden_cursor_t *c = (se_golden_cursor_t *)ctx;
    const long t = c->t;
    long k;
    if (t >= c->g->frames) {
        return -1;
    }
    const se_model_desc_t *desc = c->g->desc;
    const size_t mask_bytes = (size_t)desc->mask.elements * (desc->mask.bits / 8u);
    for (k = 0; k < desc->num_states; ++k) {
        const se_state_pair_t *p = &desc->states[k];
        const size_t bytes = (size_t)p->size * (p->output_bits / 8u);
        memcpy(se_state_out(io, p), (const char *)c->g->out_state[k].data + (size_t)t * bytes, bytes);
    }
    memcpy(io->mask, (const char *)c->g->out_mask.data + (size_t)t * mask_bytes, mask_bytes);
    c->t++;
    return 0;
}

/* SE_ACT_BITS of format 1: the one activation type's bits, 0 for a mixed model */
static int act_bits(const char *io_dtype)
{
    return strcmp(io_dtype, "int8") == 0 ? 8 : strcmp(io_dtype, "int16") == 0 ? 16 : 0;
}

int se_golden_check(const se_golden_t *g)
{
    static se_frame_t s;
    replay_t r;
    const float *x, *feat_py, *y_py;
    unsigned char well[SE_BINS];
    double bound[SE_BINS];
    const long frames = g->frames;
    long t, k, i;
    double max_err_all = 0, max_err_well = 0, max_over_bound = 0, max_ulp = 0, max_err_audio = 0, sum_sq_audio = 0;
    long well_count = 0, feedback_mismatch = 0, zero_mismatch = 0, feedback_compared = 0;
    const se_model_desc_t *desc = g->desc;

    failures = 0;
    x = (const float *)g->audio_in.data;
    feat_py = (const float *)g->features.data;
    y_py = (const float *)g->audio_out.data;
    printf("RESULT model=%s io=%s act_bits=%d features_bits=%d mask_bits=%d fft=%s frames=%ld states=%d\n",
           desc->name, desc->io_dtype, act_bits(desc->io_dtype),
           desc->features.bits, desc->mask.bits, SE_FFT_DOUBLE ? "double" : "float32", frames, desc->num_states);

    /* (b) state feedback on TFLite Micro's own outputs */
    for (k = 0; k < desc->num_states; ++k) {
        const se_state_pair_t *p = &desc->states[k];
        const void *in = g->in_state[k].data, *out = g->out_state[k].data;
        for (i = 0; i < p->size; ++i) {
            zero_mismatch += se_load_q(in, i, p->input_bits) != p->input_zero_point;
        }
        for (t = 0; t + 1 < frames; ++t) { /* what the frame loop's feedback computes, value by value */
            for (i = 0; i < p->size; ++i) {
                const int32_t q = se_load_q(out, t * p->size + i, p->output_bits);
                const int32_t next = p->same_quantization ? q : se_requantize(q, p->output_scale, p->output_zero_point,
                                                                             p->input_scale, p->input_zero_point,
                                                                             p->input_bits);
                feedback_mismatch += next != se_load_q(in, (t + 1) * p->size + i, p->input_bits);
            }
            feedback_compared += p->size;
        }
        if (!p->same_quantization && p->input_bits == 8 && p->output_bits == 8) {
            int8_t table[256]; /* the table form (se_frame.c) equals the formula for all 256 values */
            int q;
            se_requantize_table(table, p->output_scale, p->output_zero_point, p->input_scale, p->input_zero_point);
            for (q = -128; q < 128; ++q) {
                feedback_mismatch += table[q + 128] != se_requantize(q, p->output_scale, p->output_zero_point,
                                                                     p->input_scale, p->input_zero_point, 8);
            }
        }
        printf("RESULT state=%s<-%s same_quantization=%d bits=%d<-%d\n", p->input_name, p->output_name,
               p->same_quantization, p->input_bits, p->output_bits);
    }
    printf("RESULT state_feedback_compared=%ld state_feedback_mismatches=%ld state_zero_point_mismatches=%ld\n",
           feedback_compared, feedback_mismatch, zero_mismatch);
    if (feedback_mismatch || zero_mismatch) {
        fail("state feedback is not bit-exact with TFLite Micro's inputs");
    }

    /* (a) + (c): the frame loop with the replayed model */
    memset(&r, 0, sizeof(r));
    r.frames = frames;
    r.desc = desc;
    r.in_features = g->in_features.data;
    r.out_mask = g->out_mask.data;
    for (k = 0; k < desc->num_states; ++k) {
        r.in_state[k] = g->in_state[k].data;
        r.out_state[k] = g->out_state[k].data;
    }
    r.bound = bound;
    r.well = well;
    if (se_init(&s, desc, replay_model, &r) != 0) {
        fail("se_init refused the model descriptor (feature settings or state capacities of this image)");
        printf("FAIL (%d)\n", failures);
        return failures;
    }
    for (t = 0; t < frames; ++t) {
        float out[SE_HOP];
        se_golden_frame_bounds(&feat_py[t * SE_BINS], bound, well);
        if (se_process_hop(&s, &x[t * SE_HOP], out) != 0) {
            fail("the frame loop's model call failed");
            break;
        }
        for (k = 0; k < SE_BINS; ++k) {
            const float py = feat_py[t * SE_BINS + k];
            const double e = fabs((double)s.stream.features[k] - (double)py);
            const double ulp = e / (double)(nextafterf(fabsf(py), INFINITY) - fabsf(py));
            max_err_all = e > max_err_all ? e : max_err_all;
            max_ulp = ulp > max_ulp ? ulp : max_ulp;
            max_over_bound = e / bound[k] > max_over_bound ? e / bound[k] : max_over_bound;
            if (well[k]) {
                well_count++;
                max_err_well = e > max_err_well ? e : max_err_well;
            }
        }
        if (t >= 1) { /* call t returns output block t-1 */
            for (i = 0; i < SE_HOP; ++i) {
                const double e = fabs((double)out[i] - (double)y_py[(t - 1) * SE_HOP + i]);
                max_err_audio = e > max_err_audio ? e : max_err_audio;
                sum_sq_audio += e * e;
            }
        }
    }
    printf("RESULT features_max_abs_err=%.3g features_max_ulp=%.0f features_err_over_bound=%.3g "
           "features_well_max_abs_err=%.3g well_db=%g well_fraction=%.4f\n",
           max_err_all, max_ulp, max_over_bound, max_err_well, (double)SE_WELL_DB,
           (double)well_count / (double)(frames * SE_BINS));
    printf("RESULT qfeatures_equal=%ld qfeatures_1lsb=%ld qfeatures_over_1lsb=%ld qfeatures_max_lsb=%ld "
           "qfeatures_well_max_lsb=%ld qfeatures_1lsb_fraction=%.3g qfeatures_over_bound=%ld\n",
           r.lsb_hist[0], r.lsb_hist[1], r.lsb_hist[2], r.max_lsb, r.max_lsb_well,
           (double)r.lsb_hist[1] / (double)(frames * SE_BINS), r.lsb_over_bound);
    printf("RESULT loop_state_mismatches=%ld\n", r.state_mismatch);
    printf("RESULT audio_max_abs_err=%.3g audio_rms_err=%.3g\n", max_err_audio,
           sqrt(sum_sq_audio / (double)((frames - 1) * SE_HOP)));
    printf("RESULT tolerance fft_err=%.3g log_ulps=%g abs_err=%.3g lsb_well=%d well_db=%g audio=%g\n",
           (double)SE_FFT_ERR, (double)SE_LOG_ULPS, (double)SE_ABS_ERR, SE_LSB_WELL, (double)SE_WELL_DB,
           (double)SE_TOL_AUDIO);
    if (!(max_over_bound <= 1.0)) {
        fail("a feature differs from Python's by more than its bound (see SE_FFT_ERR)");
    }
    if (r.lsb_over_bound) {
        fail("a quantised feature differs by more than floor(bound / scale) + 1 LSB");
    }
    if (r.lsb_well_over) {
        fail("a quantised feature in a well-conditioned bin differs by more than SE_LSB_WELL");
    }
    if (r.state_mismatch) {
        fail("the frame loop handed the model states that differ from TFLite Micro's inputs");
    }
    if (!(max_err_audio <= SE_TOL_AUDIO)) {
        fail("output audio differs by more than SE_TOL_AUDIO");
    }
    printf(failures ? "FAIL (%d)\n" : "PASS\n", failures);
    return failures;
}
