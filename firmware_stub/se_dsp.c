/* se_dsp.c: see se_dsp.h. No dependencies beyond <math.h>. */
#include "se_dsp.h"

#include <math.h>
#include <stdint.h>

#define SE_M (SE_FFT_SIZE / 2) /* complex FFT size */

#if SE_DSP_CONST_TABLES
/* The tables as const data (gen_dsp_tables.c; the Makefile generates it for MODEL_IO's FFT
 * size): in flash, nothing computed at start-up, no double-precision libm linked. */
#include "se_dsp_tables.h"

void se_dsp_init(void)
{
}
#else
/* Run-time fallback, for a build without the generated header: the same values, computed once. */
static const double se_pi = 3.14159265358979323846;

static float window_tab[SE_FFT_SIZE];
static se_real_t cos_tab[SE_M]; /* cos(2 pi k / N), k < N/2 */
static se_real_t sin_tab[SE_M]; /* sin(2 pi k / N) */
static uint16_t bitrev_tab[SE_M];
static int tables_ready;

void se_dsp_init(void)
{
    int n, bits = 0;
    if (tables_ready) {
        return;
    }
    for (n = 0; n < SE_FFT_SIZE; ++n) {
        /* numpy: sqrt(0.5 - 0.5 * cos(2.0 * pi * n / N)) in float64, then one rounding to float32 */
        const double hann = 0.5 - 0.5 * cos(2.0 * se_pi * (double)n / (double)SE_FFT_SIZE);
        window_tab[n] = (float)sqrt(hann);
    }
    for (n = 0; n < SE_M; ++n) {
        const double angle = 2.0 * se_pi * (double)n / (double)SE_FFT_SIZE;
        cos_tab[n] = (se_real_t)cos(angle);
        sin_tab[n] = (se_real_t)sin(angle);
    }
    while ((1 << bits) < SE_M) {
        ++bits;
    }
    for (n = 0; n < SE_M; ++n) {
        int b, r = 0;
        for (b = 0; b < bits; ++b) {
            r |= ((n >> b) & 1) << (bits - 1 - b);
        }
        bitrev_tab[n] = (uint16_t)r;
    }
    tables_ready = 1;
}
#endif

const float *se_window(void)
{
    return window_tab;
}

/* In-place forward complex FFT of SE_M points (radix-2, decimation in time, input already in
 * bit-reversed order). W_M^j = W_N^(2j) = cos_tab[2j] - i sin_tab[2j]. */
static void fft_complex(se_real_t *zr, se_real_t *zi)
{
    int len;
    for (len = 2; len <= SE_M; len <<= 1) {
        const int half = len >> 1;
        const int step = 2 * (SE_M / len);
        int start;
        for (start = 0; start < SE_M; start += len) {
            int j;
            for (j = 0; j < half; ++j) {
                const se_real_t c = cos_tab[j * step];
                const se_real_t s = sin_tab[j * step];
                const int a = start + j, b = a + half;
                const se_real_t tr = c * zr[b] + s * zi[b];
                const se_real_t ti = c * zi[b] - s * zr[b];
                zr[b] = zr[a] - tr;
                zi[b] = zi[a] - ti;
                zr[a] = zr[a] + tr;
                zi[a] = zi[a] + ti;
            }
        }
    }
}

void se_rfft(const float x[SE_FFT_SIZE], float re[SE_BINS], float im[SE_BINS], se_real_t work[SE_FFT_SIZE])
{
    se_real_t *zr = work, *zi = work + SE_M;
    int k;
    /* z[n] = x[2n] + i x[2n+1], stored in bit-reversed order */
    for (k = 0; k < SE_M; ++k) {
        const int r = bitrev_tab[k];
        zr[r] = (se_real_t)x[2 * k];
        zi[r] = (se_real_t)x[2 * k + 1];
    }
    fft_complex(zr, zi);
    /* split: X[k] = E[k] + W_N^k O[k], E = (Z[k] + conj Z[M-k]) / 2, O = -i (Z[k] - conj Z[M-k]) / 2 */
    re[0] = (float)(zr[0] + zi[0]);
    im[0] = 0.0f;
    re[SE_M] = (float)(zr[0] - zi[0]);
    im[SE_M] = 0.0f;
    for (k = 1; k < SE_M; ++k) {
        const se_real_t ar = zr[k], ai = zi[k];
        const se_real_t br = zr[SE_M - k], bi = -zi[SE_M - k];
        const se_real_t er = (se_real_t)0.5 * (ar + br), ei = (se_real_t)0.5 * (ai + bi);
        const se_real_t or_ = (se_real_t)0.5 * (ai - bi), oi = (se_real_t)0.5 * (br - ar);
        const se_real_t c = cos_tab[k], s = sin_tab[k];
        re[k] = (float)(er + (c * or_ + s * oi));
        im[k] = (float)(ei + (c * oi - s * or_));
    }
}

void se_irfft(const float re[SE_BINS], const float im[SE_BINS], float x[SE_FFT_SIZE], se_real_t work[SE_FFT_SIZE])
{
    se_real_t *zr = work, *zi = work + SE_M;
    const se_real_t scale = (se_real_t)1.0 / (se_real_t)SE_FFT_SIZE; /* a power of two: exact */
    int k;
    /* Z[k] = E'[k] + i O'[k] with E' = X[k] + conj X[M-k], O' = (X[k] - conj X[M-k]) conj(W_N^k)
     * (twice the true E, O: the factor 2 is folded into the final 1/N). Bins 0 and M are real.
     * The inverse complex FFT is conj(FFT(conj Z)): Z is conjugated on the way in. */
    for (k = 0; k < SE_M; ++k) {
        const se_real_t ar = (se_real_t)re[k], ai = (k == 0) ? (se_real_t)0 : (se_real_t)im[k];
        const se_real_t br = (se_real_t)re[SE_M - k];
        const se_real_t bi = (k == 0) ? (se_real_t)0 : -(se_real_t)im[SE_M - k];
        const se_real_t er = ar + br, ei = ai + bi;
        const se_real_t dr = ar - br, di = ai - bi;
        const se_real_t c = cos_tab[k], s = sin_tab[k];
        /* (dr + i di)(c + i s) */
        const se_real_t or_ = dr * c - di * s, oi = dr * s + di * c;
        const int r = bitrev_tab[k];
        zr[r] = er - oi;       /* Re(E' + i O') */
        zi[r] = -(ei + or_);   /* -Im(E' + i O'): conjugated for the inverse */
    }
    fft_complex(zr, zi);
    for (k = 0; k < SE_M; ++k) {
        x[2 * k] = (float)(zr[k] * scale);
        x[2 * k + 1] = (float)(-zi[k] * scale);
    }
}

void se_log_power(const float re[SE_BINS], const float im[SE_BINS], float features[SE_BINS])
{
    int k;
    for (k = 0; k < SE_BINS; ++k) {
        /* numpy: square(re) + square(im), each rounded to float32, then + float32(floor), log */
        const float rr = re[k] * re[k];
        const float ii = im[k] * im[k];
        const float power = rr + ii;
        features[k] = logf(power + SE_LOG_FLOOR);
    }
}

void se_apply_mask(float re[SE_BINS], float im[SE_BINS], const float gain[SE_BINS])
{
    int k;
    for (k = 0; k < SE_BINS; ++k) {
        re[k] *= gain[k];
        im[k] *= gain[k];
    }
}

void se_apply_complex_mask(float re[SE_BINS], float im[SE_BINS], const float gain[2 * SE_BINS])
{
    int k;
    for (k = 0; k < SE_BINS; ++k) {
        const float a = gain[k], b = gain[SE_BINS + k], x = re[k], y = im[k];
        /* numpy's complex64 product, term for term (the build keeps -ffp-contract=off: no fused multiply-add) */
        re[k] = x * a - y * b;
        im[k] = x * b + y * a;
    }
}
