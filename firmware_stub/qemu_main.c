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
 * Instructions per hop: under `-icount shift=0` QEMU's virtual clock advances exactly 1 ns per
 * executed instruction, and SysTick (processor clock source) counts that virtual clock at the
 * board's clock frequency. The instructions per SysTick tick are measured here on a loop of a
 * known instruction count (a 2-instruction loop, so no board frequency is assumed); per hop,
 * the model call (the replayed outputs, which TFLite Micro's Invoke replaces) is timed apart
 * and left out. Without -icount the virtual clock follows host time and the figure is
 * meaningless: qemu-test always passes it. (Semihosting SYS_ELAPSED is no help: QEMU 7.2
 * answers it from the host's clock, even under -icount.)
 */
#include <stdint.h>
#include <stdio.h>

#include "se_golden_check.h"

#ifndef SE_DESC
#define SE_DESC se_model_desc
#endif
extern const se_model_desc_t SE_DESC;

#define SE_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SE_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SE_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SE_SYST_MASK 0xFFFFFFu /* a 24-bit down counter */
#define SE_CALIBRATION_LOOPS 1000000u

static void systick_start(void)
{
    SE_SYST_RVR = SE_SYST_MASK;
    SE_SYST_CVR = 0;
    SE_SYST_CSR = 5u; /* enable, processor clock, no interrupt */
}

static uint32_t systick_now(void)
{
    return SE_SYST_CVR;
}

/* ticks from `start` to `end` of the down counter (one wrap at most: < 2^24 ticks apart) */
static uint32_t ticks_between(uint32_t start, uint32_t end)
{
    return (start - end) & SE_SYST_MASK;
}

/* Writing SYST_CVR clears the counter and restarts its tick period at that instruction, so a
 * span timed from a restart is floor(instructions / per_tick) ticks whatever came before: the
 * figure does not depend on the history (e.g. the length of the golden folder's path). */
static uint32_t systick_restart(void)
{
    SE_SYST_CVR = 0;
    return systick_now();
}

/* Instructions per SysTick tick: `subs; bne` run SE_CALIBRATION_LOOPS times. */
static double instructions_per_tick(void)
{
    uint32_t n = SE_CALIBRATION_LOOPS;
    const uint32_t start = systick_restart();
    __asm__ volatile("1:\n\tsubs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    return 2.0 * (double)SE_CALIBRATION_LOOPS / (double)ticks_between(start, systick_now());
}

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
    r->loop_ticks += ticks_between(r->start, systick_now());
    status = se_golden_replay(io, &r->cursor);
    r->start = systick_restart();
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
        r.start = systick_restart();
        if (se_process_hop(&s, &x[t * SE_HOP], out) != 0) {
            printf("FAIL the frame loop's model call failed while timing\n");
            return 1;
        }
        r.loop_ticks += ticks_between(r.start, systick_now());
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
    systick_start();
    per_tick = instructions_per_tick();
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
