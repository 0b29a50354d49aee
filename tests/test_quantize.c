/* The int8-screened quantiser (SF_ASMK_QUANT_SCREEN) against the sgemm
 * path word for word: random data of several shapes and scales, and
 * planted near-ties (duplicated words, words one bit apart, descriptors
 * equidistant to several words or lying on them), in batches of every
 * size.  Skipped (77) on a CPU without AVX512-VNNI. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_asmk.h"
#include "testutil.h"

static uint64_t seed = 0x9a17;
static float urand(void) /* [-0.5, 0.5) */
{
    seed = seed * 6364136223846793005u + 1442695040888963407u;
    return (float)(seed >> 40) / 16777216.0f - 0.5f;
}

/* Both methods on n descriptors at once and in uneven batches; returns the
 * words that differ (and counts a failure when any do). */
static size_t compare(const char *what, const sf_asmk_codebook *cb, const float *x, size_t n,
                      int ma)
{
    const size_t dim = sf_asmk_codebook_dim(cb);
    int32_t *want = malloc(n * (size_t)ma * sizeof *want);
    int32_t *got = malloc(n * (size_t)ma * sizeof *got);
    sf_error err;
    sf_error_clear(&err);
    CHECK(sf_asmk_codebook_quantize_with(cb, x, n, ma, SF_ASMK_QUANT_SGEMM, want, &err) ==
              SF_OK,
          "%s: sgemm: %s", what, err.message);
    CHECK(sf_asmk_codebook_quantize_with(cb, x, n, ma, SF_ASMK_QUANT_SCREEN, got, &err) ==
              SF_OK,
          "%s: screen: %s", what, err.message);
    size_t diff = 0;
    for (size_t i = 0; i < n * (size_t)ma; i++)
        diff += got[i] != want[i];
    /* Batches of 1, 7, 13, ... descriptors: other scales, other row groups. */
    static const size_t steps[] = { 1, 7, 13, 100 };
    for (size_t s = 0; s < sizeof steps / sizeof *steps; s++)
        for (size_t i = 0; i < n; i += steps[s]) {
            size_t m = n - i < steps[s] ? n - i : steps[s];
            if (s == 0 && i >= 40)
                break; /* one at a time: the first 40 are enough */
            CHECK(sf_asmk_codebook_quantize_with(cb, x + i * dim, m, ma, SF_ASMK_QUANT_SCREEN,
                                                 got, &err) == SF_OK,
                  "%s: screen, batch of %zu: %s", what, m, err.message);
            for (size_t j = 0; j < m * (size_t)ma; j++)
                diff += got[j] != want[i * (size_t)ma + j];
        }
    CHECK(diff == 0, "%s, ma %d: %zu words differ from sgemm's", what, ma, diff);
    printf("%s, ma %d: %zu descriptors, %zu words differ\n", what, ma, n, diff);
    free(want);
    free(got);
    return diff;
}

static void check_random(size_t k, size_t dim, size_t n, float cscale, float xscale)
{
    float *c = malloc(k * dim * sizeof *c), *x = malloc(n * dim * sizeof *x);
    for (size_t i = 0; i < k * dim; i++)
        c[i] = cscale * urand();
    for (size_t i = 0; i < n * dim; i++)
        x[i] = xscale * urand();
    sf_asmk_codebook *cb;
    sf_error err;
    CHECK(sf_asmk_codebook_create(c, k, dim, &cb, &err) == SF_OK, "%s", err.message);
    char what[100];
    snprintf(what, sizeof what, "random k %zu dim %zu scales %g/%g", k, dim, cscale, xscale);
    compare(what, cb, x, n, 1);
    compare(what, cb, x, n, 5);
    if (k >= 32)
        compare(what, cb, x, n, 32);
    sf_asmk_codebook_free(cb);
    free(c);
    free(x);
}

/* Near-ties: a codebook with exact copies of words (at indices in other
 * tiles and blocks of the screen), copies with one coordinate one bit up
 * or down, and words placed symmetrically about descriptors; descriptors
 * on words (distance 0, or negative before the clamp), at the midpoint of
 * two words, and at equal distance from several. */
static void check_ties(void)
{
    enum { K = 6000, D = 128, N = 600 };
    float *c = malloc((size_t)K * D * sizeof *c), *x = malloc((size_t)N * D * sizeof *x);
    for (size_t i = 0; i < (size_t)K * D; i++)
        c[i] = urand();
    /* Copies: word j for j in [3000, 3600) is word (j * 7) % 1500, exactly
     * or with one dimension moved by one ulp. */
    for (size_t j = 3000; j < 3600; j++) {
        size_t src = (j * 7) % 1500;
        memcpy(c + j * D, c + src * D, D * sizeof *c);
        if (j % 3 == 1)
            c[j * D + j % D] = nextafterf(c[j * D + j % D], 1.0f);
        else if (j % 3 == 2)
            c[j * D + j % D] = nextafterf(c[j * D + j % D], -1.0f);
    }
    /* Descriptors 0..99: on word (i * 7) % 1500 (copied above), so its
     * copies tie with it; 100..199 a little off it; 200..299 the midpoint
     * of a word and its one-bit copy. */
    for (size_t i = 0; i < 300; i++) {
        size_t j = 3000 + (i % 200) * 3;
        const float *a = c + ((j * 7) % 1500) * D;
        for (size_t t = 0; t < D; t++) {
            float v = a[t];
            if (i >= 100 && i < 200)
                v += 1e-3f * urand();
            else if (i >= 200)
                v = 0.5f * (a[t] + c[(j + 1) * D + t]);
            x[i * D + t] = v;
        }
    }
    /* Descriptors 300..449: words 4000 + 8 m + u (u < 8) are the descriptor
     * with dimension u moved by +-r: eight words at one distance r^2 in
     * exact arithmetic, nearer than any other word. */
    for (size_t i = 300; i < 450; i++) {
        for (size_t t = 0; t < D; t++)
            x[i * D + t] = urand();
        size_t m = i - 300;
        float r = 0.25f + 0.001f * (float)(m % 7);
        for (size_t u = 0; u < 8; u++) {
            float *w = c + (4000 + 8 * m + u) * D;
            memcpy(w, x + i * D, D * sizeof *w);
            w[u] += (u % 2 ? r : -r);
        }
    }
    /* The rest: plain random descriptors. */
    for (size_t i = 450; i < N; i++)
        for (size_t t = 0; t < D; t++)
            x[i * D + t] = urand();
    sf_asmk_codebook *cb;
    sf_error err;
    CHECK(sf_asmk_codebook_create(c, K, D, &cb, &err) == SF_OK, "%s", err.message);
    compare("near-ties", cb, x, N, 1);
    compare("near-ties", cb, x, N, 5);
    compare("near-ties", cb, x, N, 32);

    /* The ties are real: the sgemm path gives descriptor 0's word and its
     * exact copy, lower index first, and descriptors 300.. their 8 words. */
    int32_t w[8];
    CHECK(sf_asmk_codebook_quantize_with(cb, x, 1, 2, SF_ASMK_QUANT_SGEMM, w, &err) == SF_OK,
          "%s", err.message);
    CHECK(w[0] == 0 && w[1] == 3000, "descriptor 0: words %d %d, want 0 3000", w[0], w[1]);
    CHECK(sf_asmk_codebook_quantize_with(cb, x + 300 * D, 1, 8, SF_ASMK_QUANT_SCREEN, w,
                                         &err) == SF_OK,
          "%s", err.message);
    int in_set = 0;
    for (int u = 0; u < 8; u++)
        in_set += w[u] >= 4000 && w[u] < 4008;
    CHECK(in_set == 8, "descriptor 300: %d of its 8 equidistant words", in_set);
    sf_asmk_codebook_free(cb);
    free(c);
    free(x);
}

int main(void)
{
    /* Probe: does this machine have the screen? */
    float c1[4 * 16], x1[16];
    for (int i = 0; i < 4 * 16; i++)
        c1[i] = urand();
    for (int i = 0; i < 16; i++)
        x1[i] = urand();
    sf_asmk_codebook *cb;
    sf_error err;
    CHECK(sf_asmk_codebook_create(c1, 4, 16, &cb, &err) == SF_OK, "%s", err.message);
    int32_t w;
    sf_status st = sf_asmk_codebook_quantize_with(cb, x1, 1, 1, SF_ASMK_QUANT_SCREEN, &w, &err);
    sf_asmk_codebook_free(cb);
    if (st == SF_ERR_UNSUPPORTED) {
        printf("SKIP: %s\n", err.message);
        return 77;
    }
    CHECK(st == SF_OK, "%s", err.message);

    check_random(65536 + 5, 128, 1000, 1.0f, 1.0f); /* the benchmark's shape */
    check_random(4099, 128, 300, 0.05f, 3.0f);      /* descriptors far larger */
    check_random(333, 37, 200, 100.0f, 1e-3f);      /* dim not a multiple of 4 */
    check_random(50, 256, 100, 1.0f, 1.0f);
    check_ties();
    return tu_finish("test_quantize");
}
