/* se_quant.h: quantise, dequantise and requantise exactly like pipeline/runtime/arith.py.
 *
 *   quantize(x)   = clamp(roundf(x / scale) + zero_point, QMIN, QMAX)
 *   dequantize(q) = (float)(q - zero_point) * scale
 *   requantize(q) = quantize(dequantize(q; from), to)
 *
 * QMIN, QMAX are those of the target tensor's type: `bits` 8 (int8_t, -128..127) or 16 (int16_t,
 * -32768..32767). Every tensor of a model has its own type in model_io.h (SE_<TENSOR>_BITS, a
 * state pair's input_bits / output_bits): a mixed-precision model's int8 and int16 tensors live
 * side by side. Arrays are passed as `void *` with their `bits`.
 *
 * Every step is one IEEE float32 operation (a division, not a multiplication by 1/scale;
 * roundf rounds half away from zero like TFLite's TfLiteRound, not half to even), so the
 * results are bit-identical to the Python runners on any IEEE float32 machine, provided the
 * compiler neither contracts a*b+c into an FMA nor reassociates (build with
 * -ffp-contract=off and without -ffast-math; the Makefile does).
 */
#ifndef SE_QUANT_H
#define SE_QUANT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int32_t se_quantize(float x, float scale, int32_t zero_point, int bits);
float se_dequantize(int32_t q, float scale, int32_t zero_point);
int32_t se_requantize(int32_t q, float from_scale, int32_t from_zero_point, float to_scale, int32_t to_zero_point,
                      int to_bits);

/* value i of an int8_t (bits 8) or int16_t (bits 16) array, and its store */
int32_t se_load_q(const void *q, long i, int bits);
void se_store_q(void *q, long i, int bits, int32_t value);

void se_quantize_array(const float *x, void *q, int n, float scale, int32_t zero_point, int bits);
void se_dequantize_array(const void *q, int bits, float *x, int n, float scale, int32_t zero_point);
void se_requantize_array(const void *from, int from_bits, void *to, int to_bits, int n, float from_scale,
                         int32_t from_zero_point, float to_scale, int32_t to_zero_point);

/* int8 to int8: table[q + 128] == se_requantize(q, ..., 8) for all 256 values of q (what the
 * Python runner uses too): one load per value instead of a division and a roundf. */
void se_requantize_table(int8_t table[256], float from_scale, int32_t from_zero_point, float to_scale,
                         int32_t to_zero_point);
void se_requantize_with_table(const int8_t table[256], const int8_t *from, int8_t *to, int n);

#ifdef __cplusplus
}
#endif

#endif /* SE_QUANT_H */
