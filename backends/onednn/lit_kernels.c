/* LIT's vector kernels: LayerNorm, softmax and scaling, in AVX2 + FMA
 * (onednn_score checks for them). */
#include "config.h"

#include <math.h>
#include <string.h>

#include "onednn_internal.h"

#define LN_EPS 1e-5f

KERNEL static inline __m256 exp256(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    /* Taylor to r^6: |r| <= ln2/2 keeps the error near 1e-7. */
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

KERNEL static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Columns of 8 locations as one vector, the last one partial. */
KERNEL static inline __m256 load_part(const float *p, int n)
{
    if (n == 8)
        return _mm256_loadu_ps(p);
    float t[8] = { 0 };
    memcpy(t, p, sizeof(float) * (size_t)n);
    return _mm256_loadu_ps(t);
}

KERNEL static inline void store_part(float *p, __m256 v, int n)
{
    if (n == 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    float t[8];
    _mm256_storeu_ps(t, v);
    memcpy(p, t, sizeof(float) * (size_t)n);
}

/* Mean and 1/sqrt(var + eps) of each column of x (c x l, one column per
 * location), over its c rows: 8 columns at a time, so that each pass is a
 * sweep down the rows. */
KERNEL void ln_stats(const float *x, int c, int l, float *mean, float *rstd)
{
    const __m256 inv_c = _mm256_set1_ps(1.0f / (float)c);
    for (int j = 0; j < l; j += 8) {
        int n = l - j < 8 ? l - j : 8;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        int i = 0;
        for (; i + 1 < c; i += 2) {
            s0 = _mm256_add_ps(s0, load_part(x + (size_t)i * l + j, n));
            s1 = _mm256_add_ps(s1, load_part(x + (size_t)(i + 1) * l + j, n));
        }
        if (i < c)
            s0 = _mm256_add_ps(s0, load_part(x + (size_t)i * l + j, n));
        __m256 mu = _mm256_mul_ps(_mm256_add_ps(s0, s1), inv_c);
        __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
        for (i = 0; i + 1 < c; i += 2) {
            __m256 d0 = _mm256_sub_ps(load_part(x + (size_t)i * l + j, n), mu);
            __m256 d1 = _mm256_sub_ps(load_part(x + (size_t)(i + 1) * l + j, n), mu);
            v0 = _mm256_fmadd_ps(d0, d0, v0);
            v1 = _mm256_fmadd_ps(d1, d1, v1);
        }
        if (i < c) {
            __m256 d0 = _mm256_sub_ps(load_part(x + (size_t)i * l + j, n), mu);
            v0 = _mm256_fmadd_ps(d0, d0, v0);
        }
        __m256 var = _mm256_mul_ps(_mm256_add_ps(v0, v1), inv_c);
        __m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f),
                                 _mm256_sqrt_ps(_mm256_add_ps(var, _mm256_set1_ps(LN_EPS))));
        store_part(mean + j, mu, n);
        store_part(rstd + j, r, n);
    }
}

/* y = LayerNorm over the rows of x (c x l) given ln_stats, g and b per row. */
KERNEL void ln_apply(const float *x, int c, int l, const float *mean, const float *rstd,
                     const float *g, const float *b, float *y)
{
    for (int i = 0; i < c; i++) {
        const float *xr = x + (size_t)i * l;
        float *yr = y + (size_t)i * l;
        __m256 vg = _mm256_set1_ps(g[i]), vb = _mm256_set1_ps(b[i]);
        int j = 0;
        for (; j + 8 <= l; j += 8) {
            __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + j), _mm256_loadu_ps(mean + j)),
                                     _mm256_loadu_ps(rstd + j));
            _mm256_storeu_ps(yr + j, _mm256_fmadd_ps(v, vg, vb));
        }
        for (; j < l; j++)
            yr[j] = (xr[j] - mean[j]) * rstd[j] * g[i] + b[i];
    }
}

/* y = LayerNorm of each of the rows of x (rows x d). */
KERNEL void ln_rows(const float *x, int rows, int d, const float *g, const float *b, float *y)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *yr = y + (size_t)r * d;
        __m256 s = _mm256_setzero_ps();
        int i = 0;
        for (; i + 8 <= d; i += 8)
            s = _mm256_add_ps(s, _mm256_loadu_ps(xr + i));
        float mu = hsum256(s);
        for (; i < d; i++)
            mu += xr[i];
        mu /= (float)d;
        __m256 vm = _mm256_set1_ps(mu), v = _mm256_setzero_ps();
        for (i = 0; i + 8 <= d; i += 8) {
            __m256 t = _mm256_sub_ps(_mm256_loadu_ps(xr + i), vm);
            v = _mm256_fmadd_ps(t, t, v);
        }
        float var = hsum256(v);
        for (; i < d; i++)
            var += (xr[i] - mu) * (xr[i] - mu);
        float rstd = 1.0f / sqrtf(var / (float)d + LN_EPS);
        __m256 vr = _mm256_set1_ps(rstd);
        for (i = 0; i + 8 <= d; i += 8) {
            __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), vm), vr);
            _mm256_storeu_ps(yr + i, _mm256_fmadd_ps(t, _mm256_loadu_ps(g + i), _mm256_loadu_ps(b + i)));
        }
        for (; i < d; i++)
            yr[i] = (xr[i] - mu) * rstd * g[i] + b[i];
    }
}

/* a (n x l): softmax down each column (over the n templates), + 1e-8;
 * rowsum[r] = the sum of row r (over locations).  att (optional) receives
 * the result too.  With fold, a holds G and the logits are
 * rstd_l (G[r][l] - mean_l qg_r) + qb_r; on return a holds the result times
 * rstd_l and m[r] = sum_l a[r][l] mean_l.  acc: 2n vectors of scratch. */
KERNEL void softmax_columns(float *a, int n, int l, const lnfold *fold, float *att,
                            double *rowsum, double *m, __m256 *acc)
{
    __m256 *acc_s = acc, *acc_m = acc + n;
    for (int r = 0; r < n; r++)
        rowsum[r] = m[r] = 0;
    /* 64 columns at a time: n x 64 floats stay in L2 across the passes. */
    for (int j0 = 0; j0 < l; j0 += 64) {
        int jn = l - j0 < 64 ? l - j0 : 64;
        for (int r = 0; r < n; r++)
            acc_s[r] = acc_m[r] = _mm256_setzero_ps();
        for (int j = j0; j < j0 + jn; j += 8) {
            int k = j0 + jn - j < 8 ? j0 + jn - j : 8;
            /* Lanes past the last column count for nothing. */
            __m256 valid = _mm256_cmp_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7),
                                         _mm256_set1_ps((float)k), _CMP_LT_OQ);
            __m256 vr = _mm256_setzero_ps(), vmu = _mm256_setzero_ps();
            if (fold) {
                vr = load_part(fold->rstd + j, k);
                vmu = load_part(fold->mean + j, k);
            }
            __m256 mx = _mm256_set1_ps(-INFINITY);
            for (int r = 0; r < n; r++) {
                float *p = a + (size_t)r * l + j;
                __m256 v = load_part(p, k);
                if (fold) {
                    v = _mm256_fnmadd_ps(vmu, _mm256_set1_ps(fold->qg[r]), v);
                    v = _mm256_fmadd_ps(vr, v, _mm256_set1_ps(fold->qb[r]));
                    store_part(p, v, k);
                }
                mx = _mm256_max_ps(mx, v);
            }
            __m256 sum = _mm256_setzero_ps();
            for (int r = 0; r < n; r++) {
                float *p = a + (size_t)r * l + j;
                __m256 e = exp256(_mm256_sub_ps(load_part(p, k), mx));
                sum = _mm256_add_ps(sum, e);
                store_part(p, e, k);
            }
            __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), sum);
            for (int r = 0; r < n; r++) {
                float *p = a + (size_t)r * l + j;
                __m256 v = _mm256_fmadd_ps(load_part(p, k), inv, _mm256_set1_ps(1e-8f));
                if (att)
                    store_part(att + (size_t)r * l + j, v, k);
                v = _mm256_and_ps(v, valid);
                acc_s[r] = _mm256_add_ps(acc_s[r], v);
                if (fold) {
                    v = _mm256_mul_ps(v, vr);
                    acc_m[r] = _mm256_fmadd_ps(v, vmu, acc_m[r]);
                }
                store_part(p, v, k);
            }
        }
        for (int r = 0; r < n; r++) {
            rowsum[r] += hsum256(acc_s[r]);
            if (fold)
                m[r] += hsum256(acc_m[r]);
        }
    }
}

/* dst = a (n x l) with row r divided by rowsum[r]. */
KERNEL void scale_rows(const float *a, int n, int l, const double *rowsum, float *dst)
{
    for (int r = 0; r < n; r++) {
        __m256 inv = _mm256_set1_ps((float)(1.0 / rowsum[r]));
        const float *p = a + (size_t)r * l;
        float *q = dst + (size_t)r * l;
        int j = 0;
        for (; j + 8 <= l; j += 8)
            _mm256_storeu_ps(q + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), inv));
        for (; j < l; j++)
            q[j] = p[j] * (float)(1.0 / rowsum[r]);
    }
}
