/* se_model_desc.h: one model of a firmware image, as data. Fixed (not generated): every model's
 * descriptor is a `const se_model_desc_t` in its own generated model_desc.c (pipeline/c_model_desc.py,
 * `sepipe bundle` writes c/model_desc.c), so one image can hold several models (an early-exit set, an
 * enhancer and a quality predictor) and the frame loop takes the one to run by pointer:
 *
 *   extern const se_model_desc_t se_gru_desc, se_lstm_desc;   // each model_desc.c's, with its own prefix
 *   se_init(&frame_a, &se_gru_desc, model_fn, ctx);
 *   se_init(&frame_b, &se_lstm_desc, model_fn, ctx);
 *
 * What stays compile-time (model_io.h, shared by the models of one image): the feature settings (FFT size,
 * hop, bins: the DSP tables are generated for them) and the state buffer capacities of se_frame_t
 * (SE_STATE_CAP8 / SE_STATE_CAP16, see se_frame.h). se_init refuses a descriptor that does not fit them.
 */
#ifndef SE_MODEL_DESC_H
#define SE_MODEL_DESC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SE_MODEL_DESC_FORMAT 1
#define SE_MAX_STATES 16 /* state pairs a descriptor may have (golden checker tables) */

/* One recurrent state: output `output_position` is fed back to input `input_position` before the next
 * frame; copied when same_quantization, else requantised. The same struct as model_io.h's. */
#ifndef SE_STATE_PAIR_T_DEFINED
#define SE_STATE_PAIR_T_DEFINED
typedef struct {
    const char *input_name;
    const char *output_name;
    uint16_t input_position;
    uint16_t output_position;
    uint16_t size;            /* values */
    uint8_t input_bits;       /* 8: int8_t, 16: int16_t */
    uint8_t output_bits;
    uint16_t input_offset;    /* where it starts in the state buffer of its input type */
    uint16_t output_offset;   /* where it starts in the state buffer of its output type */
    float input_scale;
    int32_t input_zero_point;
    float output_scale;
    int32_t output_zero_point;
    uint8_t same_quantization;
} se_state_pair_t;
#endif

/* One input or output tensor: its position in TFLite Micro's input/output list, type and quantisation. */
typedef struct {
    const char *name;
    uint16_t position;
    uint8_t bits;             /* 8: int8_t, 16: int16_t */
    uint16_t elements;
    float scale;              /* exactly the float32 the Python runners use */
    int32_t zero_point;
} se_tensor_desc_t;

typedef struct {
    uint16_t format;                   /* SE_MODEL_DESC_FORMAT */
    const char *name;                  /* <experiment>_<variant> */
    const char *io_dtype;              /* "int8", "int16" or "mixed" */
    const char *sha256;                /* of model_data's bytes */
    const uint8_t *model_data;         /* the Vela model, 16-byte aligned (model_data.c) */
    const unsigned int *model_len;
    /* the TFLite Micro op resolver (a const tflite::MicroOpResolver *) of model_data: its op types exactly
     * (model_ops.cc); cpu_op_resolver: the uncompiled model's (model/<name>.tflite). NULL in a build
     * without TFLite Micro (SE_WITH_TFLM undefined). */
    const void *(*op_resolver)(void);
    const void *(*cpu_op_resolver)(void);
    uint32_t arena_bytes;              /* recommended tensor arena, CMSIS-NN kernels (reference when underived) */
    uint32_t arena_bytes_reference;    /* the same with the reference kernels */
    uint32_t sample_rate;
    uint16_t fft_size, hop, bins;
    float log_floor;
    uint16_t num_inputs, num_outputs;
    se_tensor_desc_t features;
    se_tensor_desc_t mask;
    uint16_t num_states;
    const se_state_pair_t *states;     /* num_states pairs */
    uint16_t state_in8_elements, state_in16_elements, state_out8_elements, state_out16_elements;
} se_model_desc_t;

#ifdef __cplusplus
}
#endif

#endif /* SE_MODEL_DESC_H */
