/* Screened quantisation: the nearest words of descriptors found with an
 * int8 screen (AVX512-VNNI) whose error is bounded, then re-checked in
 * float32 exactly as sf_asmk_codebook_quantize's sgemm path computes
 * distances, so the words are the same bit for bit.  Not installed. */
#ifndef SF_QUANTIZE_INTERNAL_H
#define SF_QUANTIZE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sf_status.h"

/* |x|^2 summed in dimension order, the same float operations everywhere
 * a distance is made (asmk.c and quantize.c). */
static inline float sf_quant_sq_norm(const float *x, size_t dim)
{
    float s = 0.0f;
    for (size_t d = 0; d < dim; d++)
        s += x[d] * x[d];
    return s;
}

/* The codebook in int8, built once with the codebook. */
typedef struct sf_quant_screen sf_quant_screen;

/* NULL where the screen cannot be exact or run: a CPU without
 * AVX512-VNNI, sums that sgemm does not make in dimension order with
 * fused multiply-adds (tiny_exact 0, or dim > 256), or no memory (the
 * sgemm path then serves alone). */
sf_quant_screen *sf_quant_screen_create(const float *centroids, const float *norms, size_t k,
                                        size_t dim, int tiny_exact);
void sf_quant_screen_free(sf_quant_screen *screen);

/* The ma nearest words of each descriptor, ties to the smaller index, as
 * the sgemm path gives them.  SF_ERR_UNSUPPORTED (err untouched) where
 * these descriptors are outside what the screen's bound covers
 * (non-finite values, ma > 32, scales out of range): the caller then runs
 * the sgemm path.  Other errors: out of memory. */
sf_status sf_quant_screen_run(const sf_quant_screen *screen, const float *centroids,
                              const float *norms, const float *desc, size_t n, int ma,
                              int32_t *words, sf_error *err);

#endif
