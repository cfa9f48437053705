/* host_test.c: the stub against the golden vectors of pipeline/golden.py, on the build machine.
 *
 *   host_test <golden dir>
 *
 * The checks and their tolerances are se_golden_check.c's (shared with qemu_main.c, the same
 * checks on the emulated Cortex-M55). Exit status 0 on PASS, 1 on FAIL, 2 on a bad folder.
 */
#include <stdio.h>

#include "se_golden_check.h"

int main(int argc, char **argv)
{
    static se_golden_t golden;
    if (argc != 2) {
        fprintf(stderr, "usage: %s <golden dir>\n", argv[0]);
        return 2;
    }
    se_golden_load(&golden, argv[1]);
    return se_golden_check(&golden) ? 1 : 0;
}
