/* The one fp32 dot product of the global searches: the stream form
 * (search_global.c) and the index's global stage (index_global.c) compute
 * it with this same code, in the same order, so that their scores agree
 * bit for bit. */
#ifndef SF_DOT_INTERNAL_H
#define SF_DOT_INTERNAL_H

#include <stddef.h>

/* Sixteen partial sums that the compiler keeps in vector registers. */
static inline float sf_dot_f32(const float *a, const float *b, size_t n)
{
    float acc[16] = { 0 };
    size_t d = 0;
    for (; d + 16 <= n; d += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += a[d + l] * b[d + l];
    float s = 0.0f;
    for (int l = 0; l < 16; l++)
        s += acc[l];
    for (; d < n; d++)
        s += a[d] * b[d];
    return s;
}

#endif
