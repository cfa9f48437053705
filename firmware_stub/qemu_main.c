/* qemu_main.c: the golden-vector checks of host_test.c, on the Cortex-M55 of QEMU's mps3-an547,
 * plus the instruction count of the frame loop per hop.
 *
 *   qemu-system-arm -M mps3-an547 -nographic -icount shift=0 \
 *       -semihosting-config enable=on,target=native,arg=qemu_test,arg=<golden dir>[,arg=<json out>] \
 *       -kernel qemu_test.elf                                   (make qemu-test does this)
 *
 * The golden files are read from the host through newlib's semihosting (fopen/fread); the
 * checks and tolerances are se_golden_check.c's, the same as the host test's. The exit status
 * (QEMU's own) is the verdict: 0 PASS, 1 FAIL, 2 a bad golden folder, 3 a CPU fault.
 *
 * Instructions per hop: SysTick under `-icount shift=0` (se_ticks.h: the method and why it is
 * deterministic); per hop, the model call (the replayed outputs, which TFLite Micro's Invoke
 * replaces) is timed apart and left out. qemu-test always passes -icount.
 */
#include <stdint.h>
#include <stdio.h>

#include "se_golden_check.h"
#include "se_ticks.h"

#ifndef SE_DESC
#define SE_DESC se_model_desc
#endif
extern const se_model_desc_t SE_DESC;

typedef struct {
    se_golden_cursor_t cursor;
    uint32_t start;       /* the counter when the current span started */
    uint32_t loop_ticks;  /* ticks of the frame loop in the current hop, the model call left out */
} timed_replay_t;

/* Close the span before the model, run it, open a new span after it. */
static int timed_model(se_model_io_t *io, void *ctx)
{
    timed_replay_t *r = (timed_replay_t *)ctx;
    int status;
    r->loop_ticks += se_ticks_since(r->start);
    status = se_golden_replay(io, &r->cursor);
    r->start = se_ticks_restart();
    return status;
}

/* Run every golden frame through the frame loop; instructions per hop without the model call
 * (two spans per hop, each floor()ed to whole ticks: within 2 ticks below the true count). */
static int time_frame_loop(const se_golden_t *g, double per_tick, FILE *json)
{
    static se_frame_t s;
    static float out[SE_HOP];
    timed_replay_t r = {{g, 0}, 0, 0};
    const float *x = (const float *)g->audio_in.data;
    double total = 0, lowest = 1e30, highest = 0;
    long t;
    if (se_init(&s, g->desc, timed_model, &r) != 0) {
        printf("FAIL se_init refused the model descriptor\n");
        return 1;
    }
    for (t = 0; t < g->frames; ++t) {
        double hop;
        r.loop_ticks = 0;
        r.start = se_ticks_restart();
        if (se_process_hop(&s, &x[t * SE_HOP], out) != 0) {
            printf("FAIL the frame loop's model call failed while timing\n");
            return 1;
        }
        r.loop_ticks += se_ticks_since(r.start);
        hop = (double)r.loop_ticks * per_tick;
        total += hop;
        lowest = hop < lowest ? hop : lowest;
        highest = hop > highest ? hop : highest;
    }
    printf("RESULT frame_loop_instructions_per_hop=%.0f min=%.0f max=%.0f frames=%ld instructions_per_tick=%.4f\n",
           total / (double)g->frames, lowest, highest, g->frames, per_tick);
    if (json != NULL) {
        fprintf(json,
                "{\n  \"frame_loop_instructions_per_hop\": %.0f,\n  \"min\": %.0f,\n  \"max\": %.0f,\n"
                "  \"frames\": %ld,\n  \"model\": \"%s\",\n  \"cpu\": \"cortex-m55\",\n"
                "  \"machine\": \"qemu-system-arm -M mps3-an547 -icount shift=0\",\n"
                "  \"instructions_per_tick\": %.4f,\n"
                "  \"counts\": \"QEMU instructions (not cycles) of se_process_hop without the model call, "
                "mean over the golden frames\"\n}\n",
                total / (double)g->frames, lowest, highest, g->frames, g->desc->name, per_tick);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static se_golden_t golden;
    FILE *json = NULL;
    int failures;
    double per_tick;
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s <golden dir> [<json out>] (semihosting arguments)\n", argc ? argv[0] : "qemu_test");
        return 2;
    }
    per_tick = se_ticks_calibrate();
    se_golden_load(&golden, &SE_DESC, argv[1]);
    failures = se_golden_check(&golden);
    if (argc == 3 && (json = fopen(argv[2], "w")) == NULL) {
        fprintf(stderr, "qemu_test: cannot write %s\n", argv[2]);
        return 2;
    }
    failures += time_frame_loop(&golden, per_tick, json);
    if (json != NULL && fclose(json) != 0) {
        fprintf(stderr, "qemu_test: cannot write %s\n", argv[2]);
        return 2;
    }
    return failures ? 1 : 0;
}
