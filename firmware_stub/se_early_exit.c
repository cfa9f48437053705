/* se_pick_exit: see se_early_exit.h. */
#include "se_early_exit.h"

int se_pick_exit(const uint32_t *cycles, int count, uint32_t budget)
{
    for (int i = count - 1; i >= 0; --i) {
        if (cycles[i] <= budget) {
            return i + 1;
        }
    }
    return 0;
}
