/* se_ticks.c: see se_ticks.h. */
#include "se_ticks.h"

#define SE_CALIBRATION_LOOPS 1000000u

static void systick_start(void)
{
    SE_SYST_RVR = SE_SYST_MASK;
    SE_SYST_CVR = 0;
    SE_SYST_CSR = 5u; /* enable, processor clock, no interrupt */
}

/* Instructions per SysTick tick: `subs; bne` run SE_CALIBRATION_LOOPS times. */
double se_ticks_calibrate(void)
{
    uint32_t n = SE_CALIBRATION_LOOPS;
    uint32_t start;
    systick_start();
    start = se_ticks_restart();
    __asm__ volatile("1:\n\tsubs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    return 2.0 * (double)SE_CALIBRATION_LOOPS / (double)se_ticks_since(start);
}
