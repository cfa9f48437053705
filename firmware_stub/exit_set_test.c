/* exit_set_test.c: an early-exit set (se_exit_set.c) against the golden vectors of sepipe.early_exit_golden, on
 * the build machine or on QEMU's Cortex-M55:
 *
 *   exit_set_test <golden dir> [<json out>]     (the JSON: only when built with SE_EXIT_SET_QEMU=1)
 *
 * The image's models (se_image_models[], exit 1 first: `make exit-set-test MODELS=...` lists them) run as one
 * se_exit_set_t over the golden audio. As in host_test.c the model calls replay TFLite Micro's recorded outputs
 * (open loop: no TFLite Micro here), one replay per exit. Checks:
 *   (1) se_pick_exit on each hop's cycle budget picks the exit Python's pick_exit picked;
 *   (2) each hop's model gets the features TFLite Micro got (within the host test's bounds, se_golden_check.h)
 *       and the states it got bit for bit: the shared slots, with the skipped layers' states frozen;
 *   (3) every recorded hop of every exit is consumed, no more;
 *   (4) the output audio matches Python's within SE_TOL_AUDIO.
 * Prints RESULT lines (with the RAM of the set against one se_frame_t per exit), then PASS or FAIL (n).
 * Exit status 0 PASS, 1 FAIL, 2 a bad golden folder.
 *
 * Built with SE_EXIT_SET_QEMU=1 (make qemu-exit-set-test) it also counts, on QEMU's Cortex-M55 under
 * `-icount shift=0` (se_ticks.h), the instructions per hop of what the M55 runs per hop of the set: se_pick_exit
 * on the hop's budget and se_exit_set_process_hop (DSP analysis and features, quantisation for the exit, its
 * states in from the shared slots and out again, mask dequantisation and gain, synthesis), with the model call
 * left out (the NPU's work; here the replay of TFLite Micro's recorded outputs, without the checks). Per exit
 * held fixed (the budget at that exit's cycles, exit 0: under exit 1's, the pass-through), over the golden
 * switching schedule, and, for comparison on the same audio, each exit model alone in its own se_frame_t
 * (se_process_hop, as qemu_main.c counts it: no se_pick_exit, no shared slots). RESULT lines and the JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "se_exit_set.h"
#include "se_golden_check.h"
#include "se_quant.h"

#include "exit_set_test.h"

#ifndef SE_EXIT_SET_QEMU
#define SE_EXIT_SET_QEMU 0
#endif


/* the checks' tallies, shared by every exit's replay */
static const double *bound;
static const unsigned char *well;
static long lsb_hist[3], lsb_over_bound, lsb_well_over, state_mismatch, overrun;

static void bad_folder(const char *what, const char *name)
{
    fprintf(stderr, "exit set check: %s %s: the golden vectors and this image's exit models do not match\n", what, name);
    exit(2);
}

static void expect_json(const char *json, const char *key, const char *value)
{
    char needle[640];
    snprintf(needle, sizeof(needle), "\"%s\": %s", key, value);
    if (strstr(json, needle) == NULL) {
        bad_folder("exit_set.json lacks", needle);
    }
}

static se_blob_t read_sized(const char *dir, const char *name, long bytes)
{
    se_blob_t b = se_golden_read_blob(dir, name);
    if (b.bytes != bytes) {
        bad_folder("wrong size:", name);
    }
    return b;
}

static void compare_features(const se_model_io_t *io, const exit_replay_t *r)
{
    const int bits = r->desc->features.bits;
    long k;
    for (k = 0; k < SE_BINS; ++k) {
        const long d = labs((long)se_load_q(io->features, k, bits) -
                            (long)se_load_q(r->in_features.data, r->row * SE_BINS + k, bits));
        lsb_hist[d == 0 ? 0 : d == 1 ? 1 : 2]++;
        lsb_over_bound += (double)d > floor(bound[k] / (double)r->desc->features.scale) + 1.0;
        lsb_well_over += well[k] && d > SE_LSB_WELL;
    }
}

/* exit r's recorded mask and new states of its hop `row` into the model's outputs */
void write_outputs(se_model_io_t *io, const exit_replay_t *r, long row)
{
    const se_model_desc_t *d = r->desc;
    long k;
    for (k = 0; k < d->num_states; ++k) {
        const se_state_pair_t *p = &d->states[k];
        const size_t out_bytes = (size_t)p->size * (p->output_bits / 8u);
        memcpy(se_state_out(io, p), (const char *)r->out_state[k].data + (size_t)row * out_bytes, out_bytes);
    }
    memcpy(io->mask, (const char *)r->out_mask.data + (size_t)row * SE_BINS * (d->mask.bits / 8u),
           (size_t)SE_BINS * (d->mask.bits / 8u));
}

/* se_model_fn: check what the set handed this exit's model, then return TFLite Micro's recorded outputs. */
static int replay(se_model_io_t *io, void *ctx)
{
    exit_replay_t *r = (exit_replay_t *)ctx;
    const se_model_desc_t *d = r->desc;
    long k, i;
    if (r->row >= r->rows) {
        overrun++;
        return -1;
    }
    compare_features(io, r);
    for (k = 0; k < d->num_states; ++k) {
        const se_state_pair_t *p = &d->states[k];
        for (i = 0; i < p->size; ++i) {
            state_mismatch += se_load_q(se_state_in(io, p), i, p->input_bits) !=
                              se_load_q(r->in_state[k].data, r->row * p->size + i, p->input_bits);
        }
    }
    write_outputs(io, r, r->row);
    r->row++;
    return 0;
}

/* exit e's recorded tensors: e<e>_in_<name>.bin / e<e>_out_<name>.bin, one row per hop it ran */
static void load_exit(exit_replay_t *r, const char *dir, int e, const se_model_desc_t *d, long rows)
{
    char name[300];
    int k;
    r->desc = d;
    r->rows = rows;
    snprintf(name, sizeof(name), "e%d_in_%s.bin", e, d->features.name);
    r->in_features = read_sized(dir, name, rows * SE_BINS * (d->features.bits / 8));
    snprintf(name, sizeof(name), "e%d_out_%s.bin", e, d->mask.name);
    r->out_mask = read_sized(dir, name, rows * SE_BINS * (d->mask.bits / 8));
    for (k = 0; k < d->num_states; ++k) {
        const se_state_pair_t *p = &d->states[k];
        snprintf(name, sizeof(name), "e%d_in_%s.bin", e, p->input_name);
        r->in_state[k] = read_sized(dir, name, rows * p->size * (p->input_bits / 8));
        snprintf(name, sizeof(name), "e%d_out_%s.bin", e, p->output_name);
        r->out_state[k] = read_sized(dir, name, rows * p->size * (p->output_bits / 8));
    }
}

int main(int argc, char **argv)
{
    static se_exit_set_t set;
    static exit_replay_t replays[SE_EXIT_MAX];
    static double bounds[SE_BINS];
    static unsigned char wells[SE_BINS];
    const int count = se_image_model_count;
    se_model_fn fns[SE_EXIT_MAX];
    void *ctxs[SE_EXIT_MAX];
    char text[300];
    long frames, t, i, pick_mismatch = 0, unused = 0, hops[SE_EXIT_MAX + 1] = {0};
    double max_err_audio = 0, max_over_bound = 0;
    int e, failures = 0;

    if (argc < 2 || argc > 2 + SE_EXIT_SET_QEMU || count < 1 || count > SE_EXIT_MAX) {
        fprintf(stderr, "usage: %s <golden dir of sepipe.early_exit_golden>%s (1 to %d exit models linked)\n", argv[0],
                SE_EXIT_SET_QEMU ? " [<json out>]" : "", SE_EXIT_MAX);
        return 2;
    }
    const char *dir = argv[1];
    const char *json = (const char *)se_golden_read_blob(dir, "exit_set.json").data;
    snprintf(text, sizeof(text), "%d", SE_FFT_SIZE);
    expect_json(json, "fft_size", text);
    snprintf(text, sizeof(text), "%d", SE_HOP);
    expect_json(json, "hop", text);
    snprintf(text, sizeof(text), "%d", count);
    expect_json(json, "exit_count", text);
    expect_json(json, "skipped", "\"freeze\"");
    for (e = 1; e <= count; ++e) {
        char key[64];
        snprintf(key, sizeof(key), "exit_%d_model", e);
        snprintf(text, sizeof(text), "\"%s\"", se_image_models[e - 1]->name);
        expect_json(json, key, text);
    }
    se_blob_t features = se_golden_read_blob(dir, "features.f32");
    frames = features.bytes / (long)(SE_BINS * sizeof(float));
    if (frames < 2) {
        bad_folder("too few frames in", "features.f32");
    }
    const float *feat_py = (const float *)features.data;
    const float *x = (const float *)read_sized(dir, "audio_in.f32", frames * SE_HOP * 4).data;
    const float *y_py = (const float *)read_sized(dir, "audio_out.f32", (frames - 1) * SE_HOP * 4).data;
    const uint32_t *budgets = (const uint32_t *)read_sized(dir, "budgets.u32", frames * 4).data;
    const int32_t *schedule = (const int32_t *)read_sized(dir, "schedule.i32", frames * 4).data;
    const uint32_t *cycles = (const uint32_t *)read_sized(dir, "cycles.u32", count * 4).data;
    for (t = 0; t < frames; ++t) {
        if (schedule[t] < 0 || schedule[t] > count) {
            bad_folder("an exit out of range in", "schedule.i32");
        }
        hops[schedule[t]]++;
    }
    for (e = 0; e < count; ++e) {
        load_exit(&replays[e], dir, e + 1, se_image_models[e], hops[e + 1]);
        fns[e] = replay;
        ctxs[e] = &replays[e];
    }
    if (se_exit_set_init(&set, se_image_models, fns, ctxs, count) != 0) {
        printf("FAIL se_exit_set_init refused the exit models (feature settings, state names or capacities)\nFAIL (1)\n");
        return 1;
    }
    bound = bounds;
    well = wells;
    for (t = 0; t < frames; ++t) {
        float out[SE_HOP];
        pick_mismatch += se_pick_exit(cycles, count, budgets[t]) != schedule[t];
        se_golden_frame_bounds(&feat_py[t * SE_BINS], bounds, wells);
        if (se_exit_set_process_hop(&set, schedule[t], &x[t * SE_HOP], out) != 0) {
            break; /* a replay past its recorded hops: counted as an overrun */
        }
        for (i = 0; i < SE_BINS; ++i) {
            const double err = fabs((double)set.stream.features[i] - (double)feat_py[t * SE_BINS + i]) / bounds[i];
            max_over_bound = err > max_over_bound ? err : max_over_bound;
        }
        for (i = 0; t >= 1 && i < SE_HOP; ++i) { /* call t returns output block t - 1 */
            const double err = fabs((double)out[i] - (double)y_py[(t - 1) * SE_HOP + i]);
            max_err_audio = err > max_err_audio ? err : max_err_audio;
        }
    }
    for (e = 0; e < count; ++e) {
        unused += replays[e].rows - replays[e].row;
    }
    printf("RESULT exits=%d frames=%ld slots=%d passed_through=%ld switches=%lu", count, frames, set.num_slots, hops[0],
           (unsigned long)set.switches);
    for (e = 1; e <= count; ++e) {
        printf(" exit%d_hops=%ld", e, hops[e]);
    }
    printf("\nRESULT pick_mismatches=%ld state_mismatches=%ld replay_overruns=%ld replay_unused=%ld\n", pick_mismatch,
           state_mismatch, overrun, unused);
    printf("RESULT qfeatures_equal=%ld qfeatures_1lsb=%ld qfeatures_over_1lsb=%ld qfeatures_over_bound=%ld "
           "qfeatures_well_over=%ld features_err_over_bound=%.3g\n",
           lsb_hist[0], lsb_hist[1], lsb_hist[2], lsb_over_bound, lsb_well_over, max_over_bound);
    printf("RESULT audio_max_abs_err=%.3g tolerance=%g\n", max_err_audio, (double)SE_TOL_AUDIO);
    printf("RESULT ram exit_set_bytes=%lu frame_bytes=%lu one_frame_per_exit_bytes=%lu stream_bytes=%lu "
           "model_io_bytes=%lu\n",
           (unsigned long)sizeof(se_exit_set_t), (unsigned long)sizeof(se_frame_t),
           (unsigned long)(count * sizeof(se_frame_t)), (unsigned long)sizeof(se_stream_t),
           (unsigned long)sizeof(se_model_io_t));
    unsigned long slot_bytes = 0;
    for (i = 0; i < set.num_slots; ++i) {
        slot_bytes += (unsigned long)set.slots[i].size * (set.slots[i].bits / 8u);
    }
    printf("RESULT ram state_slot_bytes=%lu state_slot_capacity_bytes=%lu\n", slot_bytes,
           (unsigned long)(sizeof(set.state8) + sizeof(set.state16)));
#if SE_EXIT_SET_QEMU
    {
        timing_t tm = {replays, count, cycles, budgets, x, frames, 0, 0};
        failures += time_exit_set(&set, &tm, slot_bytes, argc == 3 ? argv[2] : 0);
    }
#endif
    if (pick_mismatch) { printf("FAIL se_pick_exit differs from Python's pick_exit\n"); failures++; }
    if (state_mismatch) { printf("FAIL a model was handed states that differ from TFLite Micro's inputs\n"); failures++; }
    if (overrun || unused) { printf("FAIL the set ran an exit on other hops than the golden run\n"); failures++; }
    if (lsb_over_bound || lsb_well_over || !(max_over_bound <= 1.0)) {
        printf("FAIL features differ from Python's by more than the host test's bounds\n");
        failures++;
    }
    if (!(max_err_audio <= SE_TOL_AUDIO)) { printf("FAIL output audio differs by more than SE_TOL_AUDIO\n"); failures++; }
    printf(failures ? "FAIL (%d)\n" : "PASS\n", failures);
    return failures ? 1 : 0;
}
