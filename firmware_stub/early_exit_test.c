/* Host test of se_pick_exit against golden cases written by sepipe.early_exit.write_golden:
 * one case a line, `count c1 .. cn budget expected`. Exit status 0 when every case matches. */
#include <inttypes.h>
#include <stdio.h>

#include "se_early_exit.h"

#define MAX_EXITS 16

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASES.txt\n", argv[0]);
        return 2;
    }
    FILE *file = fopen(argv[1], "r");
    if (!file) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    int count, cases = 0, wrong = 0;
    while (fscanf(file, "%d", &count) == 1) {
        uint32_t cycles[MAX_EXITS], budget;
        int expected;
        if (count < 1 || count > MAX_EXITS) {
            fprintf(stderr, "case %d: %d exits (1 to %d)\n", cases + 1, count, MAX_EXITS);
            fclose(file);
            return 2;
        }
        for (int i = 0; i < count; ++i) {
            if (fscanf(file, "%" SCNu32, &cycles[i]) != 1) { fclose(file); return 2; }
        }
        if (fscanf(file, "%" SCNu32 " %d", &budget, &expected) != 2) { fclose(file); return 2; }
        int got = se_pick_exit(cycles, count, budget);
        if (got != expected) {
            fprintf(stderr, "case %d: budget %" PRIu32 ": exit %d, Python %d\n", cases + 1, budget, got, expected);
            ++wrong;
        }
        ++cases;
    }
    fclose(file);
    printf("early_exit_test: %d cases, %d wrong\n", cases, wrong);
    return wrong ? 1 : (cases ? 0 : 2);
}
