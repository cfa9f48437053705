/* host_test.c: the stub against the golden vectors of pipeline/golden.py, on the build machine.
 *
 *   host_test <golden dir>
 *
 * The checks and their tolerances are se_golden_check.c's (shared with qemu_main.c, the same
 * checks on the emulated Cortex-M55). Exit status 0 on PASS, 1 on FAIL, 2 on a bad folder.
 * SE_DESC: the model's descriptor (model_desc.c, or se_desc_from_io.c for a folder without one).
 */
#include <stdio.h>

#include "se_golden_check.h"

#ifndef SE_DESC
#define SE_DESC se_model_desc
#endif
extern const se_model_desc_t SE_DESC;

int main(int argc, char **argv)
{
    static se_golden_t golden;
    if (argc != 2) {
        fprintf(stderr, "usage: %s <golden dir>\n", argv[0]);
        return 2;
    }
    se_golden_load(&golden, &SE_DESC, argv[1]);
    return se_golden_check(&golden) ? 1 : 0;
}
