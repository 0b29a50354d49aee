/* The pseudo-random generator libsf's seeded work shares (k-means
 * sampling and initialisation, random-weight models): xoshiro256**,
 * seeded through splitmix64.  Each user seeds its own streams, so that
 * the same seed keeps giving the same codebook or model.  Not installed. */
#ifndef SF_RNG_INTERNAL_H
#define SF_RNG_INTERNAL_H

#include <stdint.h>

typedef struct sf_rng {
    uint64_t s[4];
} sf_rng;

static inline uint64_t sf_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The four state words from splitmix64 started at x. */
static inline void sf_rng_from_splitmix(sf_rng *r, uint64_t x)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = sf_splitmix64(&x);
}

static inline uint64_t sf_rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t sf_rng_next(sf_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = sf_rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = sf_rotl64(s[3], 45);
    return result;
}

#endif
