/* se_model_tflm.h: the model call of the frame loop on TensorFlow Lite Micro (with the
 * Ethos-U custom operator when built with the Ethos-U driver). C-callable; the
 * implementation (se_model_tflm.cc) is C++17 and is compiled only when the Makefile gets
 * TFLM_ROOT and ETHOSU_DRIVER.
 *
 *   static uint8_t arena[ARENA_BYTES] __attribute__((aligned(16)));
 *   se_ethosu_init(NPU_BASE, NULL, 0);                 // once, before the first Invoke
 *   se_model_tflm_init(se_model, arena, sizeof(arena)); // se_model: pipeline.c_export array
 *   se_init(&frame, se_model_tflm_invoke, NULL);
 *   ... se_process_hop(&frame, in, out) every hop ...
 *   // NPU interrupt handler: se_ethosu_irq_handler();
 */
#ifndef SE_MODEL_TFLM_H
#define SE_MODEL_TFLM_H

#include <stddef.h>
#include <stdint.h>

#include "se_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes of se_model_tflm_init (0: ready). */
#define SE_TFLM_OK 0
#define SE_TFLM_BAD_SCHEMA (-1)     /* not a TFLite flatbuffer of the schema TFLM was built for */
#define SE_TFLM_OP_RESOLVER (-2)    /* an operator could not be registered */
#define SE_TFLM_ALLOCATE (-3)       /* AllocateTensors failed: arena too small, or an unknown operator */
#define SE_TFLM_IO_MISMATCH (-4)    /* the model's inputs/outputs differ from model_io.h */
#define SE_TFLM_NOT_READY (-5)      /* invoke before a successful init */
#define SE_TFLM_INVOKE (-6)         /* Invoke failed */

/* Build the interpreter on `model_data` (16-byte aligned, e.g. pipeline.c_export's array) in
 * `arena` (16-byte aligned) and check every input and output against model_io.h: position,
 * type (each tensor's own: SE_<TENSOR>_BITS, a pair's input_bits / output_bits), size, scale
 * and zero point. Returns SE_TFLM_OK or an error code. */
int se_model_tflm_init(const void *model_data, uint8_t *arena, size_t arena_bytes);

/* se_model_fn for se_init: copy features and states in, Invoke, copy mask and states out. */
int se_model_tflm_invoke(se_model_io_t *io, void *ctx);

/* Arena bytes the interpreter actually uses (after a successful init): size the arena with it. */
size_t se_model_tflm_arena_used(void);

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
