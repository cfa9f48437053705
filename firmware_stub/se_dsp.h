/* se_dsp.h: the feature extraction and resynthesis of pipeline/features.py, in C99.
 *
 *   window      periodic sqrt-Hann, w[n] = (float)sqrt(0.5 - 0.5 cos(2 pi n / N)), computed in
 *               double and rounded once, like numpy: bit-identical to features.analysis_window
 *   se_rfft     real FFT of N = SE_FFT_SIZE samples (N/2-point complex radix-2 FFT plus the
 *               split step); SE_BINS = N/2 + 1 bins, imaginary parts of bins 0 and N/2 are 0
 *   features    ln(re*re + im*im + SE_LOG_FLOOR) per bin, float32 (two products, two sums, logf)
 *   mask        re *= g, im *= g per bin
 *   se_irfft    inverse real FFT with numpy's irfft scaling (1/N; imaginary parts of bins 0
 *               and N/2 ignored)
 *
 * The FFT arithmetic type se_real_t is float (SE_FFT_DOUBLE=0, the default: what a Cortex-M55
 * with its single-precision FPU runs) or double (SE_FFT_DOUBLE=1: a host diagnostic build
 * whose forward FFT rounds to the same float32 spectrum as numpy's rfft, which isolates the
 * float32 FFT's rounding as the only difference from Python). See README.md, "Tolerances".
 */
#ifndef SE_DSP_H
#define SE_DSP_H

#include "model_io.h"

#ifndef SE_FFT_DOUBLE
#define SE_FFT_DOUBLE 0
#endif

/* 1: the tables are the generated const data of se_dsp_tables.h (gen_dsp_tables.c; every build of
 * the Makefile); 0: se_dsp_init computes them at run time (double cos/sin/sqrt). Same values. */
#ifndef SE_DSP_CONST_TABLES
#define SE_DSP_CONST_TABLES 0
#endif

#if SE_FFT_DOUBLE
typedef double se_real_t;
#else
typedef float se_real_t;
#endif

#if (SE_FFT_SIZE & (SE_FFT_SIZE - 1)) != 0 || SE_FFT_SIZE < 8 || SE_FFT_SIZE > 4096
#error "SE_FFT_SIZE must be a power of two between 8 and 4096"
#endif
#if SE_HOP * 2 != SE_FFT_SIZE || SE_BINS != SE_FFT_SIZE / 2 + 1
#error "the stub needs SE_HOP = SE_FFT_SIZE / 2 and SE_BINS = SE_FFT_SIZE / 2 + 1 (50% overlap)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Fills the window, twiddle and bit-reversal tables (idempotent; call before the rest); nothing
 * to do with SE_DSP_CONST_TABLES. */
void se_dsp_init(void);

/* The analysis and synthesis window (SE_FFT_SIZE values). */
const float *se_window(void);

/* Spectrum of x (SE_FFT_SIZE samples, already windowed); work: 2 * SE_FFT_SIZE / 2 values. */
void se_rfft(const float x[SE_FFT_SIZE], float re[SE_BINS], float im[SE_BINS], se_real_t work[SE_FFT_SIZE]);

/* Inverse of se_rfft (numpy irfft): x gets SE_FFT_SIZE samples. */
void se_irfft(const float re[SE_BINS], const float im[SE_BINS], float x[SE_FFT_SIZE], se_real_t work[SE_FFT_SIZE]);

/* features[k] = logf(re[k]*re[k] + im[k]*im[k] + SE_LOG_FLOOR) */
void se_log_power(const float re[SE_BINS], const float im[SE_BINS], float features[SE_BINS]);

/* re[k] *= gain[k], im[k] *= gain[k] */
void se_apply_mask(float re[SE_BINS], float im[SE_BINS], const float gain[SE_BINS]);

/* A complex gain per bin (sepipe.gain): (re[k] + j im[k]) *= (gain[k] + j gain[SE_BINS + k]), the real
 * parts first, then the imaginary parts, as a model's complex mask head gives them. */
void se_apply_complex_mask(float re[SE_BINS], float im[SE_BINS], const float gain[2 * SE_BINS]);

#ifdef __cplusplus
}
#endif

#endif /* SE_DSP_H */
