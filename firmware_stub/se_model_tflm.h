/* se_model_tflm.h: the model call of the frame loop on TensorFlow Lite Micro (with the
 * Ethos-U custom operator when built with the Ethos-U driver), for any model descriptor
 * (se_model_desc.h): its bytes, its generated op resolver (model_ops.cc: exactly its op types)
 * and its tensors come from the descriptor, so one image runs several models, each in its own
 * interpreter (up to SE_TFLM_MAX_MODELS). C-callable; the implementation (se_model_tflm.cc) is
 * C++17 and is compiled only when the Makefile gets TFLM_ROOT and ETHOSU_DRIVER.
 *
 *   static uint8_t arena[se_model_desc.arena_bytes] __attribute__((aligned(16)));  // CMSIS-NN figure
 *   se_ethosu_init(NPU_BASE, NULL, 0);                         // once, before the first Invoke
 *   se_tflm_t *m = se_model_tflm_init(&se_model_desc, arena, sizeof(arena), &status);
 *   se_init(&frame, &se_model_desc, se_model_tflm_invoke, m);
 *   ... se_process_hop(&frame, in, out) every hop ...
 *   // NPU interrupt handler: se_ethosu_irq_handler();
 */
#ifndef SE_MODEL_TFLM_H
#define SE_MODEL_TFLM_H

#include <stddef.h>
#include <stdint.h>

#include "se_frame.h"
#include "se_model_desc.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef SE_TFLM_MAX_MODELS
#define SE_TFLM_MAX_MODELS 2 /* interpreters held at once (static storage, no heap) */
#endif

/* Error codes of se_model_tflm_init (0: ready). */
#define SE_TFLM_OK 0
#define SE_TFLM_BAD_SCHEMA (-1)     /* not a TFLite flatbuffer of the schema TFLM was built for */
#define SE_TFLM_OP_RESOLVER (-2)    /* the descriptor has no op resolver, or an operator could not be registered */
#define SE_TFLM_ALLOCATE (-3)       /* AllocateTensors failed: arena too small, or an unknown operator */
#define SE_TFLM_IO_MISMATCH (-4)    /* the model's inputs/outputs differ from the descriptor */
#define SE_TFLM_NOT_READY (-5)      /* invoke before a successful init */
#define SE_TFLM_INVOKE (-6)         /* Invoke failed */
#define SE_TFLM_NO_SLOT (-7)        /* SE_TFLM_MAX_MODELS interpreters exist already */

typedef struct se_tflm se_tflm_t;

/* Build an interpreter for `desc` (its model_data, 16-byte aligned, and its op_resolver) in `arena`
 * (16-byte aligned; desc->arena_bytes is the recommended size for CMSIS-NN kernels) and check every
 * input and output against the descriptor: position, type (each tensor's own bits), size, scale and
 * zero point. Returns the model's handle (the ctx of se_model_tflm_invoke), or NULL with *status set. */
se_tflm_t *se_model_tflm_init(const se_model_desc_t *desc, uint8_t *arena, size_t arena_bytes, int *status);

/* se_model_fn for se_init (ctx: the handle): copy features and states in, Invoke, copy mask and states out. */
int se_model_tflm_invoke(se_model_io_t *io, void *ctx);

/* Arena bytes the interpreter actually uses (after a successful init): size the arena with it. */
size_t se_model_tflm_arena_used(const se_tflm_t *model);

#ifdef SE_WITH_ETHOSU
/* Initialise the Ethos-U driver (ethosu_init): NPU register base address, optional fast
 * memory (U65/U85 spilling; NULL, 0 otherwise). Secure and privileged mode. 0 on success. */
int se_ethosu_init(void *npu_base_address, const void *fast_memory, size_t fast_memory_bytes);

/* Call from the NPU's interrupt handler. */
void se_ethosu_irq_handler(void);
#endif

#ifdef __cplusplus
}
#endif

#endif /* SE_MODEL_TFLM_H */
