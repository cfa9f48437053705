/* se_quant.c: see se_quant.h. */
#include "se_quant.h"

#include <math.h>

se_act_t se_quantize(float x, float scale, int32_t zero_point)
{
    /* float32 division then roundf (half away from zero), as Python's quantize(). */
    const float r = roundf(x / scale);
    /* Clamp before converting: r + zero_point can be far outside int32 (or NaN). The bounds
     * are small integers, exact in float, so this equals clamping r + zero_point. */
    const float lo = (float)(SE_ACT_MIN - zero_point);
    const float hi = (float)(SE_ACT_MAX - zero_point);
    if (!(r >= lo)) {
        return (se_act_t)SE_ACT_MIN;
    }
    if (r > hi) {
        return (se_act_t)SE_ACT_MAX;
    }
    return (se_act_t)((int32_t)r + zero_point);
}

float se_dequantize(int32_t q, float scale, int32_t zero_point)
{
    return (float)(q - zero_point) * scale;
}

se_act_t se_requantize(int32_t q, float from_scale, int32_t from_zero_point, float to_scale, int32_t to_zero_point)
{
    return se_quantize(se_dequantize(q, from_scale, from_zero_point), to_scale, to_zero_point);
}

void se_quantize_array(const float *x, se_act_t *q, int n, float scale, int32_t zero_point)
{
    int i;
    for (i = 0; i < n; ++i) {
        q[i] = se_quantize(x[i], scale, zero_point);
    }
}

void se_dequantize_array(const se_act_t *q, float *x, int n, float scale, int32_t zero_point)
{
    int i;
    for (i = 0; i < n; ++i) {
        x[i] = se_dequantize(q[i], scale, zero_point);
    }
}

void se_requantize_array(const se_act_t *from, se_act_t *to, int n, float from_scale, int32_t from_zero_point,
                         float to_scale, int32_t to_zero_point)
{
    int i;
    for (i = 0; i < n; ++i) {
        to[i] = se_requantize(from[i], from_scale, from_zero_point, to_scale, to_zero_point);
    }
}

#if SE_ACT_BITS == 8
void se_requantize_table(int8_t table[256], float from_scale, int32_t from_zero_point, float to_scale,
                         int32_t to_zero_point)
{
    int q;
    for (q = -128; q < 128; ++q) {
        table[q + 128] = se_requantize(q, from_scale, from_zero_point, to_scale, to_zero_point);
    }
}

void se_requantize_with_table(const int8_t table[256], const int8_t *from, int8_t *to, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        to[i] = table[from[i] + 128];
    }
}
#endif
