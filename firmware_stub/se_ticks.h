/* se_ticks.h: instructions counted with SysTick on QEMU's Cortex-M55 (mps3-an547) under `-icount shift=0`, shared
 * by the programs that measure per-hop work there (qemu_main.c, quality_test.c, exit_set_test.c).
 *
 * Under `-icount shift=0` QEMU's virtual clock advances exactly 1 ns per executed instruction, and SysTick
 * (processor clock source) counts that virtual clock at the board's clock frequency. se_ticks_calibrate measures
 * the instructions per tick on a loop of a known instruction count (a 2-instruction loop, so no board frequency
 * is assumed). Writing SYST_CVR clears the counter and restarts its tick period at that instruction, so a span
 * timed from se_ticks_restart() is floor(instructions / per_tick) ticks whatever came before: the figure does not
 * depend on the history (e.g. the length of a golden folder's path). Without -icount the virtual clock follows
 * host time and the figures are meaningless. (Semihosting SYS_ELAPSED is no help: QEMU 7.2 answers it from the
 * host's clock, even under -icount.)
 *
 * The span helpers are static inline so that a timed span holds the same instructions as when each program had
 * its own static copy (the figures did not move when they were shared). Cortex-M only: SysTick's registers. */
#ifndef SE_TICKS_H
#define SE_TICKS_H

#include <stdint.h>

#define SE_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SE_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SE_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SE_SYST_MASK 0xFFFFFFu /* a 24-bit down counter */

static inline uint32_t se_ticks_now(void)
{
    return SE_SYST_CVR;
}

/* ticks from `start` to `end` of the down counter (one wrap at most: < 2^24 ticks apart) */
static inline uint32_t se_ticks_between(uint32_t start, uint32_t end)
{
    return (start - end) & SE_SYST_MASK;
}

/* restart the tick period here; returns the counter to time a span from */
static inline uint32_t se_ticks_restart(void)
{
    SE_SYST_CVR = 0;
    return se_ticks_now();
}

static inline uint32_t se_ticks_since(uint32_t start)
{
    return se_ticks_between(start, se_ticks_now());
}

/* Start SysTick (full reload, processor clock, no interrupt) and return the instructions per tick. */
double se_ticks_calibrate(void);

#endif /* SE_TICKS_H */
