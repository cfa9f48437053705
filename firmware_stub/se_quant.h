/* se_quant.h: quantise, dequantise and requantise exactly like pipeline/interpreters.py.
 *
 *   quantize(x)   = clamp(roundf(x / scale) + zero_point, SE_ACT_MIN, SE_ACT_MAX)
 *   dequantize(q) = (float)(q - zero_point) * scale
 *   requantize(q) = quantize(dequantize(q; from), to)
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

#include "model_io.h"

#ifdef __cplusplus
extern "C" {
#endif

se_act_t se_quantize(float x, float scale, int32_t zero_point);
float se_dequantize(int32_t q, float scale, int32_t zero_point);
se_act_t se_requantize(int32_t q, float from_scale, int32_t from_zero_point, float to_scale, int32_t to_zero_point);

void se_quantize_array(const float *x, se_act_t *q, int n, float scale, int32_t zero_point);
void se_dequantize_array(const se_act_t *q, float *x, int n, float scale, int32_t zero_point);
void se_requantize_array(const se_act_t *from, se_act_t *to, int n, float from_scale, int32_t from_zero_point,
                         float to_scale, int32_t to_zero_point);

#if SE_ACT_BITS == 8
/* int8 only: table[q + 128] == se_requantize(q, ...) for all 256 values of q (what the Python
 * runner uses too): one load per value instead of a division and a roundf. */
void se_requantize_table(int8_t table[256], float from_scale, int32_t from_zero_point, float to_scale,
                         int32_t to_zero_point);
void se_requantize_with_table(const int8_t table[256], const int8_t *from, int8_t *to, int n);
#endif

#ifdef __cplusplus
}
#endif

#endif /* SE_QUANT_H */
