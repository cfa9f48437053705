/* m55_startup.c: bare-metal start-up of the Cortex-M55 of QEMU's mps3-an547 (qemu_main.c's
 * runtime; not a board support package). The vector table, then at reset: the FPU and MVE
 * (Helium) enabled through CPACR before any float code, .data copied and .bss cleared, newlib's
 * semihosting handles opened (so printf and fopen go to the host), the command line fetched
 * from the host (SYS_GET_CMDLINE: QEMU's -semihosting-config arg=... values, space-separated),
 * main called, and its status handed to exit(), which semihosting turns into QEMU's own exit
 * status. Memory: mps3_an547.ld (stack at the top of DDR, heap below it). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start__, __bss_end__;
extern int main(int argc, char **argv);
extern void initialise_monitor_handles(void);
void se_reset_handler(void);

#define SE_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SE_SEMIHOSTING_GET_CMDLINE 0x15
#define SE_MAX_ARGS 8

/* A fault is a failed run: say so and end QEMU with a status no check returns. */
static void se_fault(void)
{
    exit(3);
}

__attribute__((section(".vectors"), used)) static void (*const se_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top, /* initial SP */
    se_reset_handler, se_fault, se_fault,    /* reset, NMI, HardFault */
    se_fault, se_fault, se_fault, se_fault,  /* MemManage, BusFault, UsageFault, SecureFault */
    0, 0, 0, se_fault,                       /* reserved, SVCall */
    se_fault, 0, se_fault, se_fault,         /* DebugMonitor, reserved, PendSV, SysTick */
};

/* newlib's crt0 is not linked (-nostartfiles); its init/fini hooks are empty here. */
void _init(void) {}
void _fini(void) {}

static int se_semihost(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* argv from the host's command line (split at spaces: paths with spaces are not supported). */
static int se_args(char **argv)
{
    static char line[2048];
    struct {
        char *buffer;
        int size;
    } request = {line, (int)sizeof(line)};
    char *p = line;
    int argc = 0;
    if (se_semihost(SE_SEMIHOSTING_GET_CMDLINE, &request) != 0) {
        return 0;
    }
    while (*p != '\0' && argc < SE_MAX_ARGS - 1) {
        while (*p == ' ') {
            *p++ = '\0';
        }
        if (*p == '\0') {
            break;
        }
        argv[argc++] = p;
        while (*p != '\0' && *p != ' ') {
            ++p;
        }
    }
    argv[argc] = 0;
    return argc;
}

void se_reset_handler(void)
{
    static char *argv[SE_MAX_ARGS];
    uint32_t *from = &__data_load, *to = &__data_start;
    /* CP10 and CP11 full access: the FPU and MVE; nothing before this may use a float register */
    SE_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    while (to < &__data_end) {
        *to++ = *from++;
    }
    for (to = &__bss_start__; to < &__bss_end__;) {
        *to++ = 0;
    }
    initialise_monitor_handles();
    exit(main(se_args(argv), argv));
}
