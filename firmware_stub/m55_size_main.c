/* m55_size_main.c: a minimal Cortex-M55 program around the stub, linked (newlib, nosys, with
 * --gc-sections) only so that arm-none-eabi-size reports the whole footprint of the frame
 * loop including what it pulls from libm (logf, roundf; cos, sin, sqrt at init). The "model"
 * is a placeholder returning a unity mask; it is not a firmware image. */
#include <string.h>

#include "se_frame.h"

static se_frame_t frame;

static int unity_model(se_model_io_t *io, void *ctx)
{
    int k;
    (void)ctx;
    for (k = 0; k < SE_BINS; ++k) {
        io->mask[k] = (se_mask_t)SE_MASK_MAX;
    }
    for (k = 0; k < SE_NUM_STATES; ++k) {
        const se_state_pair_t *p = &se_state_pairs[k];
        memcpy(se_state_out(io, p), se_state_in(io, p), (size_t)p->size * (p->input_bits / 8u));
    }
    return 0;
}

int main(void)
{
    static float in[SE_HOP], out[SE_HOP];
    se_init(&frame, unity_model, 0);
    for (;;) {
        (void)se_process_hop(&frame, in, out);
    }
}
