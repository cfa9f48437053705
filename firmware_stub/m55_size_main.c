/* m55_size_main.c: a minimal Cortex-M55 program around the stub, linked (newlib, nosys, with
 * --gc-sections) only so that arm-none-eabi-size reports the whole footprint of the frame
 * loop including what it pulls from libm (logf, roundf). The "model" is a placeholder returning
 * a unity mask; it is not a firmware image. SE_DESC: the model descriptor (se_model_desc.h). */
#include <string.h>

#include "se_frame.h"
#include "se_quant.h"

#ifndef SE_DESC
#define SE_DESC se_model_desc
#endif
extern const se_model_desc_t SE_DESC;

static se_frame_t frame;

static int unity_model(se_model_io_t *io, void *ctx)
{
    const se_model_desc_t *d = (const se_model_desc_t *)ctx;
    int k;
    for (k = 0; k < SE_BINS; ++k) {
        se_store_q(io->mask, k, d->mask.bits, d->mask.bits == 8 ? 127 : 32767);
    }
    for (k = 0; k < d->num_states; ++k) {
        const se_state_pair_t *p = &d->states[k];
        memcpy(se_state_out(io, p), se_state_in(io, p), (size_t)p->size * (p->input_bits / 8u));
    }
    return 0;
}

int main(void)
{
    static float in[SE_HOP], out[SE_HOP];
    if (se_init(&frame, &SE_DESC, unity_model, (void *)&SE_DESC) != 0) {
        return 1;
    }
    for (;;) {
        (void)se_process_hop(&frame, in, out);
    }
}
