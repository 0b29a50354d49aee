/* Blocked -2 x c^T through oneDNN's sgemm on libsf's worker threads, for
 * ASMK quantisation and k-means assignment (gemm_internal.h). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "gemm_internal.h"
#include "sf_internal.h"

/* oneDNN runs its sgemm on OpenMP here (libgomp comes with libdnnl).
 * Weak: a oneDNN on another runtime leaves them NULL and nothing is set. */
extern void omp_set_num_threads(int n) __attribute__((weak));
extern int omp_get_max_threads(void) __attribute__((weak));

/* Each worker runs its sgemm calls single-threaded, so that the cores are
 * shared between tiles, not oversubscribed.  Returns what to restore. */
static int sgemm_single_begin(void)
{
    int prev = omp_get_max_threads && omp_set_num_threads ? omp_get_max_threads() : 0;
    if (prev > 1)
        omp_set_num_threads(1);
    return prev;
}

static void sgemm_single_end(int prev)
{
    if (prev > 1)
        omp_set_num_threads(prev); /* matters for the caller's own thread */
}

/* prod = -2 x c^T: x m x dim, c cols x dim, prod m x cols.  The doubling
 * is exact, so callers' (|x|^2 + |c|^2) + prod rounds like
 * (|x|^2 + |c|^2) - 2 x.c. */
static dnnl_status_t sgemm_tile(const float *x, size_t m, const float *c, size_t cols,
                                size_t dim, float *prod)
{
    return dnnl_sgemm('N', 'T', (dnnl_dim_t)m, (dnnl_dim_t)cols, (dnnl_dim_t)dim, -2.0f, x,
                      (dnnl_dim_t)dim, c, (dnnl_dim_t)dim, 0.0f, prod, (dnnl_dim_t)cols);
}

/* Below SF_GEMM_MIN_ROWS rows, sgemm's cost is its copy of the centroids
 * into its own layout, not the arithmetic: tiny_dots does the same
 * products straight from the centroids, up to 8 rows at a time (rows in
 * vector lanes), three times faster.  It sums in dimension order with
 * fused multiply-adds, like oneDNN's kernels; whether they agree bit for
 * bit is checked per set of centroids (sf_gemm_tiny_exact), and sgemm on
 * padded rows is used where they do not. */
#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_TINY_DOTS 1

/* out[r * ldo + j] = -2 x_r.c_j for r < rows (<= 8), j < cols; xt holds the
 * rows transposed, dim x 8, unused lanes 0. */
__attribute__((target("avx2,fma"))) static void tiny_dots(const float *xt, size_t rows,
                                                          const float *c, size_t cols,
                                                          size_t dim, float *out, size_t ldo)
{
    const __m256 m2 = _mm256_set1_ps(-2.0f);
    float t[8][8];
    size_t j = 0;
    for (; j + 8 <= cols; j += 8) {
        const float *c0 = c + j * dim;
        /* The 8 centroids are read in 8 interleaved streams, which the
         * hardware prefetcher does not follow: fetch the next 8 (one
         * contiguous run) meanwhile. */
        const float *next = j + 16 <= cols ? c0 + 8 * dim : c0;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
               a7 = a0;
        for (size_t d = 0; d < dim; d++) {
            __m256 xv = _mm256_loadu_ps(xt + d * 8);
            _mm_prefetch((const char *)(next + d * 8), _MM_HINT_T0);
            a0 = _mm256_fmadd_ps(xv, _mm256_broadcast_ss(c0 + d), a0);
            a1 = _mm256_fmadd_ps(xv, _mm256_broadcast_ss(c0 + dim + d), a1);
            a2 = _mm256_fmadd_ps(xv, _mm256_broadcast_ss(c0 + 2 * dim + d), a2);
            a3 = _mm256_fmadd_ps(xv, _mm256_broadcast_ss(c0 + 3 * dim + d), a3);
            a4 = _mm256_fmadd_ps(xv, _mm256_broadcast_ss(c0 + 4 * dim + d), a4);
            a5 = _mm256_fmadd_ps(xv, _mm256_broadcast_ss(c0 + 5 * dim + d), a5);
            a6 = _mm256_fmadd_ps(xv, _mm256_broadcast_ss(c0 + 6 * dim + d), a6);
            a7 = _mm256_fmadd_ps(xv, _mm256_broadcast_ss(c0 + 7 * dim + d), a7);
        }
        _mm256_storeu_ps(t[0], _mm256_mul_ps(a0, m2));
        _mm256_storeu_ps(t[1], _mm256_mul_ps(a1, m2));
        _mm256_storeu_ps(t[2], _mm256_mul_ps(a2, m2));
        _mm256_storeu_ps(t[3], _mm256_mul_ps(a3, m2));
        _mm256_storeu_ps(t[4], _mm256_mul_ps(a4, m2));
        _mm256_storeu_ps(t[5], _mm256_mul_ps(a5, m2));
        _mm256_storeu_ps(t[6], _mm256_mul_ps(a6, m2));
        _mm256_storeu_ps(t[7], _mm256_mul_ps(a7, m2));
        for (size_t r = 0; r < rows; r++)
            for (size_t u = 0; u < 8; u++)
                out[r * ldo + j + u] = t[u][r];
    }
    for (; j < cols; j++) {
        __m256 a = _mm256_setzero_ps();
        for (size_t d = 0; d < dim; d++)
            a = _mm256_fmadd_ps(_mm256_loadu_ps(xt + d * 8),
                                _mm256_broadcast_ss(c + j * dim + d), a);
        _mm256_storeu_ps(t[0], _mm256_mul_ps(a, m2));
        for (size_t r = 0; r < rows; r++)
            out[r * ldo + j] = t[0][r];
    }
}

/* Rows x (at most 8, row-major) into xt, dim x 8, zero-padded lanes. */
static void transpose8(const float *x, size_t rows, size_t dim, float *xt)
{
    memset(xt, 0, dim * 8 * sizeof(float));
    for (size_t r = 0; r < rows; r++)
        for (size_t d = 0; d < dim; d++)
            xt[d * 8 + r] = x[r * dim + d];
}

/* On SF_GEMM_MIN_ROWS rows made of the centroids against up to 64 of
 * them.  Where summation orders differ, most of the products differ in
 * their last bits, so this cannot pass by chance. */
int sf_gemm_tiny_exact(const float *c, size_t k, size_t dim)
{
    if (k < 2 || !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return 0;
    const size_t rows = SF_GEMM_MIN_ROWS, cols = k < 64 ? k : 64;
    float *x = malloc(rows * dim * sizeof *x);
    float *xt = malloc(dim * 8 * sizeof *xt);
    float *ref = malloc(rows * cols * sizeof *ref);
    float *got = malloc(rows * cols * sizeof *got);
    int ok = x && xt && ref && got;
    if (ok) {
        /* Row r: centroid r rotated by r dimensions, so no product is a
         * plain square. */
        for (size_t r = 0; r < rows; r++)
            for (size_t d = 0; d < dim; d++)
                x[r * dim + d] = c[(r % k) * dim + (d + r) % dim];
        int prev = sgemm_single_begin();
        ok = sgemm_tile(x, rows, c, cols, dim, ref) == dnnl_success;
        sgemm_single_end(prev);
        for (size_t r0 = 0; ok && r0 < rows; r0 += 8) {
            transpose8(x + r0 * dim, 8, dim, xt);
            tiny_dots(xt, 8, c, cols, dim, got + r0 * cols, cols);
        }
        ok = ok && memcmp(ref, got, rows * cols * sizeof *ref) == 0;
    }
    free(x);
    free(xt);
    free(ref);
    free(got);
    return ok;
}
#else
int sf_gemm_tiny_exact(const float *c, size_t k, size_t dim)
{
    (void)c;
    (void)k;
    (void)dim;
    return 0;
}
#endif

typedef struct worker {
    const sf_gemm_tiles *t;
    size_t stride;        /* worker i runs units i, i + stride, ... */
    float *prod;          /* one tile */
    float *pad;           /* SF_GEMM_MIN_ROWS x dim: a short row block, padded or transposed */
    dnnl_status_t status;
} worker;

static size_t row_blocks(const sf_gemm_tiles *t)
{
    return (t->n + t->row_block - 1) / t->row_block;
}

static dnnl_status_t run_unit(const sf_gemm_tiles *t, size_t u, worker *w)
{
    const size_t dim = t->dim;
    const size_t rb = u / t->parts, part = u % t->parts;
    const size_t r0 = rb * t->row_block;
    const size_t rows = t->n - r0 < t->row_block ? t->n - r0 : t->row_block;
    const float *x = t->x + r0 * dim;
    size_t m = rows;
    const int is_short = t->pad_short && rows < SF_GEMM_MIN_ROWS;
    const int tiny = is_short && t->tiny;
#ifdef HAVE_TINY_DOTS
    if (tiny)
        for (size_t r = 0; r < rows; r += 8)
            transpose8(x + r * dim, rows - r < 8 ? rows - r : 8, dim, w->pad + r * dim);
#endif
    if (is_short && !tiny) {
        memcpy(w->pad, x, rows * dim * sizeof(float));
        memset(w->pad + rows * dim, 0, (SF_GEMM_MIN_ROWS - rows) * dim * sizeof(float));
        x = w->pad;
        m = SF_GEMM_MIN_ROWS;
    }
    if (t->begin)
        t->begin(t->ctx, r0, rows, part);
    const size_t b0 = part * t->col_blocks / t->parts;
    const size_t b1 = (part + 1) * t->col_blocks / t->parts;
    for (size_t b = b0; b < b1; b++) {
        const size_t c0 = b * t->col_block;
        const size_t cols = (b + 1 == t->col_blocks ? t->k : c0 + t->col_block) - c0;
        const float *c = t->c + c0 * dim;
        if (tiny) {
#ifdef HAVE_TINY_DOTS
            for (size_t r = 0; r < rows; r += 8)
                tiny_dots(w->pad + r * dim, rows - r < 8 ? rows - r : 8, c, cols, dim,
                          w->prod + r * cols, cols);
#endif
        } else {
            dnnl_status_t s = sgemm_tile(x, m, c, cols, dim, w->prod);
            if (s != dnnl_success)
                return s;
        }
        t->tile(t->ctx, r0, rows, part, c0, cols, w->prod);
    }
    if (t->end)
        t->end(t->ctx, r0, rows, part);
    return dnnl_success;
}

static void worker_main(void *ctx, size_t index)
{
    worker *w = (worker *)ctx + index;
    const size_t units = row_blocks(w->t) * w->t->parts;
    int prev = sgemm_single_begin();
    w->status = dnnl_success;
    for (size_t u = index; u < units && w->status == dnnl_success; u += w->stride)
        w->status = run_unit(w->t, u, w);
    sgemm_single_end(prev);
}

sf_status sf_gemm_tiles_run(const sf_gemm_tiles *t, sf_error *err)
{
    if (t->n == 0)
        return SF_OK;
    const size_t n_rb = row_blocks(t), units = n_rb * t->parts;
    size_t nt = t->threads > 1 ? (size_t)t->threads : 1;
    if (nt > units)
        nt = units;
    const size_t last_rows = t->n - (n_rb - 1) * t->row_block;
    const size_t last_cols = t->k - (t->col_blocks - 1) * t->col_block;
    size_t max_rows = t->n < t->row_block ? t->n : t->row_block;
    if (t->pad_short && max_rows < SF_GEMM_MIN_ROWS)
        max_rows = SF_GEMM_MIN_ROWS;
    const size_t max_cols =
        t->col_blocks > 1 && last_cols < t->col_block ? t->col_block : last_cols;
    const int need_pad = t->pad_short && last_rows < SF_GEMM_MIN_ROWS;
    const size_t prod_floats = sf_mul_size(max_rows, max_cols);
    if (!prod_floats || prod_floats > SIZE_MAX / sizeof(float))
        return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: %zu x %zu tiles", t->what, max_rows,
                            max_cols);

    worker *w = calloc(nt, sizeof *w);
    if (!w)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", t->what);
    sf_status st = SF_OK;
    for (size_t i = 0; st == SF_OK && i < nt; i++) {
        w[i].t = t;
        w[i].stride = nt;
        w[i].prod = malloc(prod_floats * sizeof(float));
        w[i].pad = need_pad ? malloc(SF_GEMM_MIN_ROWS * t->dim * sizeof(float)) : NULL;
        if (!w[i].prod || (need_pad && !w[i].pad))
            st = sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for %zu x %zu", t->what,
                              max_rows, max_cols);
    }
    if (st == SF_OK) {
        sf_threads_run(nt, worker_main, w);
        for (size_t i = 0; i < nt && st == SF_OK; i++)
            if (w[i].status != dnnl_success)
                st = sf_error_set(err, SF_ERR_BACKEND, "%s: oneDNN sgemm failed (status %d)",
                                  t->what, (int)w[i].status);
    }
    for (size_t i = 0; i < nt; i++) {
        free(w[i].prod);
        free(w[i].pad);
    }
    free(w);
    return st;
}
