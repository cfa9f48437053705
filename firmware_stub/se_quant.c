/* se_quant.c: see se_quant.h. */
#include "se_quant.h"

#include <math.h>

int32_t se_quantize(float x, float scale, int32_t zero_point, int bits)
{
    const int32_t qmin = bits == 8 ? INT8_MIN : INT16_MIN;
    const int32_t qmax = bits == 8 ? INT8_MAX : INT16_MAX;
    /* float32 division then roundf (half away from zero), as Python's quantize(). */
    const float r = roundf(x / scale);
    /* Clamp before converting: r + zero_point can be far outside int32 (or NaN). The bounds
     * are small integers, exact in float, so this equals clamping r + zero_point. */
    const float lo = (float)(qmin - zero_point);
    const float hi = (float)(qmax - zero_point);
    if (!(r >= lo)) {
        return qmin;
    }
    if (r > hi) {
        return qmax;
    }
    return (int32_t)r + zero_point;
}

float se_dequantize(int32_t q, float scale, int32_t zero_point)
{
    return (float)(q - zero_point) * scale;
}

int32_t se_requantize(int32_t q, float from_scale, int32_t from_zero_point, float to_scale, int32_t to_zero_point,
                      int to_bits)
{
    return se_quantize(se_dequantize(q, from_scale, from_zero_point), to_scale, to_zero_point, to_bits);
}

int32_t se_load_q(const void *q, long i, int bits)
{
    return bits == 8 ? (int32_t)((const int8_t *)q)[i] : (int32_t)((const int16_t *)q)[i];
}

void se_store_q(void *q, long i, int bits, int32_t value)
{
    if (bits == 8) {
        ((int8_t *)q)[i] = (int8_t)value;
    } else {
        ((int16_t *)q)[i] = (int16_t)value;
    }
}

/* The per-hop arrays: one loop per type, so that each inlines se_quantize for a constant type. */
void se_quantize_array(const float *x, void *q, int n, float scale, int32_t zero_point, int bits)
{
    int i;
    if (bits == 8) {
        int8_t *out = (int8_t *)q;
        for (i = 0; i < n; ++i) {
            out[i] = (int8_t)se_quantize(x[i], scale, zero_point, 8);
        }
    } else {
        int16_t *out = (int16_t *)q;
        for (i = 0; i < n; ++i) {
            out[i] = (int16_t)se_quantize(x[i], scale, zero_point, 16);
        }
    }
}

void se_dequantize_array(const void *q, int bits, float *x, int n, float scale, int32_t zero_point)
{
    int i;
    if (bits == 8) {
        const int8_t *in = (const int8_t *)q;
        for (i = 0; i < n; ++i) {
            x[i] = se_dequantize(in[i], scale, zero_point);
        }
    } else {
        const int16_t *in = (const int16_t *)q;
        for (i = 0; i < n; ++i) {
            x[i] = se_dequantize(in[i], scale, zero_point);
        }
    }
}

void se_requantize_array(const void *from, int from_bits, void *to, int to_bits, int n, float from_scale,
                         int32_t from_zero_point, float to_scale, int32_t to_zero_point)
{
    int i;
    for (i = 0; i < n; ++i) {
        se_store_q(to, i, to_bits, se_requantize(se_load_q(from, i, from_bits), from_scale, from_zero_point,
                                                 to_scale, to_zero_point, to_bits));
    }
}

void se_requantize_table(int8_t table[256], float from_scale, int32_t from_zero_point, float to_scale,
                         int32_t to_zero_point)
{
    int q;
    for (q = -128; q < 128; ++q) {
        table[q + 128] = (int8_t)se_requantize(q, from_scale, from_zero_point, to_scale, to_zero_point, 8);
    }
}

void se_requantize_with_table(const int8_t table[256], const int8_t *from, int8_t *to, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        to[i] = table[from[i] + 128];
    }
}
