/* se_exit_set.c: see se_exit_set.h. */
#include "se_exit_set.h"

#include <string.h>

#include "se_quant.h"

/* The slot of the state named `name`, added when new; -1 when its size or type disagrees with an earlier
 * exit's, or the slots are full. */
static int slot_for(se_exit_set_t *set, const se_state_pair_t *p, int *used8, int *used16)
{
    int s;
    for (s = 0; s < set->num_slots; ++s) {
        if (strcmp(set->slots[s].name, p->input_name) == 0) {
            return set->slots[s].size == p->size && set->slots[s].bits == p->input_bits ? s : -1;
        }
    }
    if (set->num_slots >= SE_MAX_STATES || p->input_bits != p->output_bits) {
        return -1; /* a slot holds one type: the state's input and output type must agree */
    }
    if (p->input_bits == 8 ? *used8 + p->size > SE_EXIT_SLOT_CAP8 : *used16 + p->size > SE_EXIT_SLOT_CAP16) {
        return -1;
    }
    se_exit_slot_t *slot = &set->slots[set->num_slots];
    slot->name = p->input_name;
    slot->size = p->size;
    slot->bits = p->input_bits;
    slot->offset = (uint16_t)(p->input_bits == 8 ? *used8 : *used16);
    slot->scale = p->input_scale;           /* its first holder's input quantisation until an exit writes it */
    slot->zero_point = p->input_zero_point;
    *(p->input_bits == 8 ? used8 : used16) += p->size;
    return set->num_slots++;
}

static void *slot_data(se_exit_set_t *set, const se_exit_slot_t *slot)
{
    return slot->bits == 8 ? (void *)&set->state8[slot->offset] : (void *)&set->state16[slot->offset];
}

/* The int8 feedback table of pair p (built when its quantisation is new), or -1: no table needed, or none left. */
static int8_t table_for(se_exit_set_t *set, const se_state_pair_t *p)
{
#if SE_EXIT_REQUANT8_CAP > 0
    int t;
    if (p->same_quantization || p->input_bits != 8 || p->output_bits != 8) {
        return -1;
    }
    for (t = 0; t < set->num_requant; ++t) {
        const se_state_pair_t *q = set->requant_pair[t];
        if (q->output_scale == p->output_scale && q->output_zero_point == p->output_zero_point &&
            q->input_scale == p->input_scale && q->input_zero_point == p->input_zero_point) {
            return (int8_t)t;
        }
    }
    if (set->num_requant >= SE_EXIT_REQUANT8_CAP) {
        return -1;
    }
    se_requantize_table(set->requant[set->num_requant], p->output_scale, p->output_zero_point, p->input_scale,
                        p->input_zero_point);
    set->requant_pair[set->num_requant] = p;
    return (int8_t)set->num_requant++;
#else
    (void)set;
    (void)p;
    return -1;
#endif
}

int se_exit_set_init(se_exit_set_t *set, const se_model_desc_t *const *descs, const se_model_fn *models,
                     void *const *ctxs, int count)
{
    int e, k, used8 = 0, used16 = 0;
    if (count < 1 || count > SE_EXIT_MAX) {
        return SE_EXIT_INIT_COUNT;
    }
    se_dsp_init();
    memset(set, 0, sizeof(*set));
    for (e = 0; e < count; ++e) {
        const int status = se_check_desc(descs[e]);
        if (status != 0) {
            return status;
        }
        set->exits[e].desc = descs[e];
        set->exits[e].model = models[e];
        set->exits[e].ctx = ctxs[e];
        for (k = 0; k < descs[e]->num_states; ++k) {
            const int s = slot_for(set, &descs[e]->states[k], &used8, &used16);
            if (s < 0) {
                return SE_EXIT_INIT_SLOTS;
            }
            set->exits[e].slot_of[k] = (int8_t)s;
            set->exits[e].requant_of[k] = table_for(set, &descs[e]->states[k]);
        }
    }
    set->count = count;
    se_exit_set_reset(set);
    return 0;
}

/* The state pair of the first exit that holds slot s (every slot has one: se_exit_set_init made it for one). */
static const se_state_pair_t *first_holder(const se_exit_set_t *set, int s)
{
    int e, k;
    for (e = 0; e < set->count; ++e) {
        for (k = 0; k < set->exits[e].desc->num_states; ++k) {
            if (set->exits[e].slot_of[k] == s) {
                return &set->exits[e].desc->states[k];
            }
        }
    }
    return 0;
}

void se_exit_set_reset(se_exit_set_t *set)
{
    int s, i;
    se_stream_reset(&set->stream);
    for (s = 0; s < set->num_slots; ++s) { /* the quantised 0.0 of the slot's first holder */
        const se_state_pair_t *p = first_holder(set, s);
        set->slots[s].scale = p->input_scale;
        set->slots[s].zero_point = p->input_zero_point;
        for (i = 0; i < set->slots[s].size; ++i) {
            se_store_q(slot_data(set, &set->slots[s]), i, set->slots[s].bits, set->slots[s].zero_point);
        }
    }
    set->last_exit = 0;
    set->switches = 0;
}

/* Exit model m's state inputs from the slots: a copy, or requantised where the slot's values are in another
 * quantisation than m's input (the Python switcher's quantize(dequantize(q))). */
static void load_states(se_exit_set_t *set, const se_exit_model_t *m)
{
    int k;
    for (k = 0; k < m->desc->num_states; ++k) {
        const se_state_pair_t *p = &m->desc->states[k];
        const se_exit_slot_t *slot = &set->slots[m->slot_of[k]];
        void *to = se_state_in(&set->io, p);
        if (slot->scale == p->input_scale && slot->zero_point == p->input_zero_point) {
            memcpy(to, slot_data(set, slot), (size_t)p->size * (p->input_bits / 8u));
        } else {
            se_requantize_array(slot_data(set, slot), slot->bits, to, p->input_bits, p->size, slot->scale,
                                slot->zero_point, p->input_scale, p->input_zero_point);
        }
    }
}

/* Exit model m's new states into its slots, fed back to its input quantisation as se_frame.c does (its table,
 * else the float path: the same values); the
 * slots of the layers m does not hold are left as they are (frozen). */
static void store_states(se_exit_set_t *set, const se_exit_model_t *m)
{
    int k;
    for (k = 0; k < m->desc->num_states; ++k) {
        const se_state_pair_t *p = &m->desc->states[k];
        se_exit_slot_t *slot = &set->slots[m->slot_of[k]];
        const void *from = se_state_out(&set->io, p);
        if (p->same_quantization) {
            memcpy(slot_data(set, slot), from, (size_t)p->size * (p->input_bits / 8u));
        }
#if SE_EXIT_REQUANT8_CAP > 0
        else if (m->requant_of[k] >= 0) {
            se_requantize_with_table(set->requant[m->requant_of[k]], (const int8_t *)from,
                                     (int8_t *)slot_data(set, slot), p->size);
        }
#endif
        else {
            se_requantize_array(from, p->output_bits, slot_data(set, slot), p->input_bits, p->size, p->output_scale,
                                p->output_zero_point, p->input_scale, p->input_zero_point);
        }
        slot->scale = p->input_scale;
        slot->zero_point = p->input_zero_point;
    }
}

int se_exit_set_process_hop(se_exit_set_t *set, int exit_number, const float in[SE_HOP], float out[SE_HOP])
{
    const se_exit_model_t *m = exit_number >= 1 && exit_number <= set->count ? &set->exits[exit_number - 1] : 0;
    int status = exit_number == 0 ? 1 : SE_EXIT_BAD_EXIT; /* no model: pass through */

    se_stream_analyse(&set->stream, in, m != 0 ? m->desc : 0, &set->io);
    if (m != 0) {
        load_states(set, m);
        status = m->model(&set->io, m->ctx);
        if (status == 0) {
            store_states(set, m);
        }
    }
    se_stream_gain(&set->stream, status, m != 0 ? m->desc : 0, &set->io);
    se_stream_synthesise(&set->stream, out);
    set->switches += exit_number != set->last_exit && set->stream.frames > 1;
    set->last_exit = exit_number;
    return exit_number == 0 ? 0 : status;
}
