/* exit_set_timing.c: the instruction counts of exit_set_test.c on QEMU's Cortex-M55 (make qemu-exit-set-test
 * builds it with SE_EXIT_SET_QEMU=1; what is counted: the top of exit_set_test.c). SysTick under
 * `-icount shift=0`: se_ticks.h. */
#include <stdio.h>

#include "exit_set_test.h"
#include "se_ticks.h"

/* Instructions per hop on the emulated M55 (see the top of this file): one span per hop, closed on entry to the
 * model call and reopened on its return, so the model (here the replay stub) is left out. */
static uint32_t span_start, span_ticks;

typedef struct {
    double total, lowest, highest;
    long hops;
} hop_stats_t;

/* se_model_fn for the counts: the exit's recorded outputs in order (cycled when it runs more hops than it did
 * in the golden run), no checks; the counted code does not branch on their values beyond the quantiser's clamps */
static int timed_replay(se_model_io_t *io, void *ctx)
{
    exit_replay_t *r = (exit_replay_t *)ctx;
    span_ticks += se_ticks_since(span_start);
    if (r->rows > 0) {
        write_outputs(io, r, r->row % r->rows);
    }
    r->row++;
    span_start = se_ticks_restart();
    return 0;
}

static void add_hop(hop_stats_t *s, double instructions)
{
    s->total += instructions;
    s->lowest = s->hops == 0 || instructions < s->lowest ? instructions : s->lowest;
    s->highest = s->hops == 0 || instructions > s->highest ? instructions : s->highest;
    s->hops++;
}

/* The set over every hop, from power-up: exit `fixed`'s budget held (0: the pass-through), or the golden budgets
 * (fixed < 0). Counted per hop: se_pick_exit + se_exit_set_process_hop without the model call. */
static hop_stats_t time_set(se_exit_set_t *set, timing_t *tm, int fixed)
{
    hop_stats_t s = {0, 0, 0, 0};
    float out[SE_HOP];
    long t;
    int e;
    se_exit_set_reset(set);
    for (e = 0; e < tm->count; ++e) {
        tm->replays[e].row = 0;
    }
    for (t = 0; t < tm->frames; ++t) {
        const uint32_t budget = fixed < 0 ? tm->budgets[t] : fixed == 0 ? tm->cycles[0] - 1u : tm->cycles[fixed - 1];
        int picked;
        span_ticks = 0;
        span_start = se_ticks_restart();
        picked = se_pick_exit(tm->cycles, tm->count, budget);
        se_exit_set_process_hop(set, picked, &tm->x[t * SE_HOP], out);
        span_ticks += se_ticks_since(span_start);
        add_hop(&s, (double)span_ticks * tm->per_tick);
        tm->picks_off += fixed >= 0 && picked != fixed;
    }
    return s;
}

/* Exit e's model alone in its own frame loop over the same audio: se_process_hop without the model call. */
static hop_stats_t time_single(timing_t *tm, int e)
{
    static se_frame_t frame;
    hop_stats_t s = {0, 0, 0, 0};
    float out[SE_HOP];
    long t;
    tm->replays[e - 1].row = 0;
    if (se_init(&frame, se_image_models[e - 1], timed_replay, &tm->replays[e - 1]) != 0) {
        return s;
    }
    for (t = 0; t < tm->frames; ++t) {
        span_ticks = 0;
        span_start = se_ticks_restart();
        se_process_hop(&frame, &tm->x[t * SE_HOP], out);
        span_ticks += se_ticks_since(span_start);
        add_hop(&s, (double)span_ticks * tm->per_tick);
    }
    return s;
}

static void print_stats(const char *what, const hop_stats_t *s)
{
    printf("RESULT exit_set_instructions %s per_hop=%.0f min=%.0f max=%.0f hops=%ld\n", what,
           s->total / (double)(s->hops ? s->hops : 1), s->lowest, s->highest, s->hops);
}

static void json_stats(FILE *f, const char *key, const hop_stats_t *s, const char *end)
{
    fprintf(f, "    \"%s\": {\"per_hop\": %.0f, \"min\": %.0f, \"max\": %.0f, \"hops\": %ld}%s\n", key,
            s->total / (double)(s->hops ? s->hops : 1), s->lowest, s->highest, s->hops, end);
}

/* Count every exit held, the golden schedule and each exit alone; print RESULT lines, write the JSON (json_path
 * may be 0). Returns the failures (a held budget that picked another exit, or an unwritable JSON). */
int time_exit_set(se_exit_set_t *set, timing_t *tm, unsigned long slot_bytes, const char *json_path)
{
    static hop_stats_t held[SE_EXIT_MAX + 1], alone[SE_EXIT_MAX + 1];
    se_model_fn fns[SE_EXIT_MAX];
    void *ctxs[SE_EXIT_MAX];
    hop_stats_t switching;
    char key[32];
    FILE *f = json_path != 0 ? fopen(json_path, "w") : NULL;
    int written = json_path == 0;
    int e;
    tm->per_tick = se_ticks_calibrate();
    for (e = 0; e < tm->count; ++e) {
        fns[e] = timed_replay;
        ctxs[e] = &tm->replays[e];
    }
    if (se_exit_set_init(set, se_image_models, fns, ctxs, tm->count) != 0) {
        printf("FAIL se_exit_set_init refused the exit models for the counts\n");
        return 1;
    }
    for (e = 0; e <= tm->count; ++e) {
        snprintf(key, sizeof(key), "exit=%d", e);
        held[e] = time_set(set, tm, e);
        print_stats(key, &held[e]);
    }
    switching = time_set(set, tm, -1);
    print_stats("schedule=golden", &switching);
    for (e = 1; e <= tm->count; ++e) {
        snprintf(key, sizeof(key), "alone=%d", e);
        alone[e] = time_single(tm, e);
        print_stats(key, &alone[e]);
    }
    printf("RESULT exit_set_instructions switches=%lu instructions_per_tick=%.4f held_picks_off=%ld "
           "state_slot_bytes=%lu\n", (unsigned long)set->switches, tm->per_tick, tm->picks_off, slot_bytes);
    if (f != NULL) {
        fprintf(f, "{\n  \"exit_set_instructions_per_hop\": {\n");
        for (e = 0; e <= tm->count; ++e) {
            snprintf(key, sizeof(key), "exit_%d", e);
            json_stats(f, key, &held[e], ",");
        }
        json_stats(f, "switching", &switching, "");
        fprintf(f, "  },\n  \"single_model_frame_loop_instructions_per_hop\": {\n");
        for (e = 1; e <= tm->count; ++e) {
            snprintf(key, sizeof(key), "exit_%d", e);
            json_stats(f, key, &alone[e], e < tm->count ? "," : "");
        }
        fprintf(f, "  },\n  \"exits\": %d,\n  \"frames\": %ld,\n  \"switches\": %lu,\n", tm->count, tm->frames,
                (unsigned long)set->switches);
        for (e = 1; e <= tm->count; ++e) {
            fprintf(f, "  \"exit_%d_model\": \"%s\",\n  \"exit_%d_cycles\": %lu,\n", e, se_image_models[e - 1]->name,
                    e, (unsigned long)tm->cycles[e - 1]);
        }
        fprintf(f, "  \"ram\": {\"exit_set_bytes\": %lu, \"state_slot_bytes\": %lu, \"state_slot_capacity_bytes\": %lu, "
                   "\"frame_bytes\": %lu, \"one_frame_per_exit_bytes\": %lu},\n",
                (unsigned long)sizeof(se_exit_set_t), slot_bytes,
                (unsigned long)(sizeof(set->state8) + sizeof(set->state16)), (unsigned long)sizeof(se_frame_t),
                (unsigned long)(tm->count * sizeof(se_frame_t)));
        fprintf(f, "  \"cpu\": \"cortex-m55\",\n  \"machine\": \"qemu-system-arm -M mps3-an547 -icount shift=0\",\n"
                   "  \"instructions_per_tick\": %.4f,\n"
                   "  \"counts\": \"QEMU instructions (not cycles) per hop of se_pick_exit + se_exit_set_process_hop "
                   "(exit_0: passed through; switching: the golden budgets), and of se_process_hop with one exit model "
                   "alone; the model call (the NPU's work, a replay stub here) left out; mean, min and max over the "
                   "golden audio's hops\"\n}\n", tm->per_tick);
        written = fclose(f) == 0;
    }
    if (!written) {
        fprintf(stderr, "exit_set_test: cannot write %s\n", json_path);
        return 1;
    }
    if (tm->picks_off) {
        printf("FAIL a held budget picked another exit (the exits' cycles are not increasing)\n");
    }
    return tm->picks_off != 0;
}
