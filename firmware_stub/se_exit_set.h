/* se_exit_set.h: an early-exit set on one audio stream (issue 16). Every exit of a multi-exit model is its own
 * model in the image (exit n: the trunk up to exit n and its head, the states of its layers only), and one hop
 * runs one of them, chosen per hop (se_pick_exit, se_early_exit.h: the deepest exit whose Vela cycles fit the
 * hop's budget):
 *
 *   in ─► one DSP front end (se_stream_t: analysis buffer, FFT, features) ─► quantise for exit e
 *      ─► exit e's model: features + its states, read from the shared state slots ─► mask, new states
 *      ─► new states back into the slots of e's layers; the other slots untouched (frozen)
 *      ─► mask ─► one inverse FFT and overlap-add ─► out
 *
 * One state slot per recurrent state (per GRU layer), shared by every exit model that holds it: exits are
 * matched to slots by the state input's name (rnn_1_h is the same layer's state in every exit). A slot skipped
 * by a hop keeps its values, and a deeper exit resumes from them: sepipe.early_exit.ExitSwitcher's "freeze".
 * Exit 0 passes the frame through (gain 1) and changes no state, as a failed model call does.
 *
 * Quantisation at a switch: a slot's values stay in the input quantisation of the exit that wrote them last;
 * an exit whose state input is quantised otherwise gets them requantised (quantize(dequantize(q))), exactly the
 * Python switcher's float round trip. The exits of one joint model have identical state quantisation (measured;
 * sepipe.early_exit_golden checks it), so a switch is a plain copy.
 *
 *   static se_exit_set_t set;
 *   const se_model_desc_t *const descs[] = {&se_exit1_desc, &se_exit2_desc, &se_exit3_desc, &se_exit4_desc};
 *   const se_model_fn fns[] = {invoke, invoke, invoke, invoke};
 *   void *const ctxs[] = {tflm1, tflm2, tflm3, tflm4};
 *   se_exit_set_init(&set, descs, fns, ctxs, 4);
 *   for (;;) {   every 16 ms
 *       int exit = se_pick_exit(exit_cycles, 4, cycles_left_this_hop);
 *       se_exit_set_process_hop(&set, exit, in, out);
 *   }
 *
 * Memory: one se_stream_t and one se_model_io_t for the whole set (only one model runs per hop) plus the slots;
 * no heap. Capacities: SE_EXIT_MAX models, SE_EXIT_SLOT_CAP8 / SE_EXIT_SLOT_CAP16 state values in all slots
 * together (default: the image's SE_STATE_CAP8 / SE_STATE_CAP16, which fits a set whose deepest exit holds
 * every state), SE_EXIT_REQUANT8_CAP int8 feedback tables (default SE_REQUANT8_CAP: the deepest exit's needs;
 * exits that share a state's quantisation share its table, as the exits of one joint model do). An int8 state
 * whose output and input quantisation differ is fed back through its table as se_frame.c does (a lookup per
 * value; the float path costs ~25 instructions per value on the M55); past the capacity, by the float path,
 * bit-identical.
 */
#ifndef SE_EXIT_SET_H
#define SE_EXIT_SET_H

#include <stdint.h>

#include "se_early_exit.h"
#include "se_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef SE_EXIT_MAX
#define SE_EXIT_MAX 8
#endif
#ifndef SE_EXIT_SLOT_CAP8
#define SE_EXIT_SLOT_CAP8 SE_STATE_CAP8
#endif
#ifndef SE_EXIT_SLOT_CAP16
#define SE_EXIT_SLOT_CAP16 SE_STATE_CAP16
#endif
#ifndef SE_EXIT_REQUANT8_CAP /* distinct int8 -> int8 state feedback quantisations (a 256-entry table each) */
#define SE_EXIT_REQUANT8_CAP SE_REQUANT8_CAP
#endif

/* se_exit_set_init's refusals besides se_init's SE_INIT_* (0: ready) */
#define SE_EXIT_INIT_COUNT (-4) /* no model, or more than SE_EXIT_MAX */
#define SE_EXIT_INIT_SLOTS (-5) /* one state name with two sizes or types, or the slots exceed their capacity */
/* se_exit_set_process_hop's status for an exit outside 0..count (the frame passes through) */
#define SE_EXIT_BAD_EXIT (-6)

/* One shared state: the layer's state input name, where its values live, and their quantisation now. */
typedef struct {
    const char *name;
    uint16_t size;
    uint8_t bits;         /* 8: in state8, 16: in state16 */
    uint16_t offset;
    float scale;          /* the input quantisation of the exit that wrote the slot last */
    int32_t zero_point;
} se_exit_slot_t;

typedef struct {
    const se_model_desc_t *desc;
    se_model_fn model;
    void *ctx;
    int8_t slot_of[SE_MAX_STATES]; /* state pair k of this model -> its slot */
    int8_t requant_of[SE_MAX_STATES]; /* pair k's int8 feedback table, or -1 (a copy, or the float path) */
} se_exit_model_t;

typedef struct {
    int count;                            /* exits 1..count */
    se_exit_model_t exits[SE_EXIT_MAX];   /* exits[n - 1] is exit n */
    int num_slots;
    se_exit_slot_t slots[SE_MAX_STATES];
    int8_t state8[SE_LEN(SE_EXIT_SLOT_CAP8)];
    int16_t state16[SE_LEN(SE_EXIT_SLOT_CAP16)];
#if SE_EXIT_REQUANT8_CAP > 0
    int num_requant;
    const se_state_pair_t *requant_pair[SE_EXIT_REQUANT8_CAP]; /* the quantisation table t was built for */
    int8_t requant[SE_EXIT_REQUANT8_CAP][256]; /* int8 feedback tables, one per distinct quantisation */
#endif
    se_stream_t stream;                   /* the one audio stream */
    se_model_io_t io;                     /* the hop's model reads and writes here */
    int last_exit;                        /* the previous hop's exit (0: none yet or passed through) */
    uint32_t switches;                    /* hops whose exit differed from the previous hop's */
} se_exit_set_t;

/* Set up `set` for `count` exit models (descs[i] is exit i + 1, run by models[i] with ctxs[i]), map their states
 * to shared slots by name, and reset. Returns 0, SE_INIT_* (a descriptor that does not fit the image) or
 * SE_EXIT_INIT_*; then `set` must not be used. */
int se_exit_set_init(se_exit_set_t *set, const se_model_desc_t *const *descs, const se_model_fn *models,
                     void *const *ctxs, int count);

/* Back to power-up: zero audio history, every slot at its first holder's input zero point. */
void se_exit_set_reset(se_exit_set_t *set);

/* One hop with exit `exit_number` (1..count; 0 passes the frame through). Returns the model's status (0), or
 * SE_EXIT_BAD_EXIT; on a non-zero status the frame passes through and no state changes. */
int se_exit_set_process_hop(se_exit_set_t *set, int exit_number, const float in[SE_HOP], float out[SE_HOP]);

#ifdef __cplusplus
}
#endif

#endif /* SE_EXIT_SET_H */
