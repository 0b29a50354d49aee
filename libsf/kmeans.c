#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_internal.h"
#include "rng_internal.h"
#include "sf_internal.h"
#include "sf_kmeans.h"

/* Distance tiles: ROW_BLOCK rows against COL_BLOCK centroids per sgemm
 * call (gemm_internal.h), one ROW_BLOCK x COL_BLOCK float buffer per
 * thread.  The row blocks are fixed whatever the thread count, so every
 * row's result is too. */
#ifndef ROW_BLOCK
#define ROW_BLOCK 1024
#endif
#ifndef COL_BLOCK
#define COL_BLOCK 2048
#endif

/* Relative push that separates the two halves of a split cluster. */
#define SPLIT_EPS (1.0 / 1024.0)

static int resolve_threads(int threads)
{
    return sf_threads_resolve(threads);
}

/* ---- Random numbers (rng_internal.h) ---- */

typedef sf_rng rng;

/* stream tells apart the generators derived from one user seed. */
static void rng_seed(rng *r, uint64_t seed, uint64_t stream)
{
    sf_rng_from_splitmix(r, seed ^ (stream * UINT64_C(0xd1b54a32d192ed03)));
}

/* Uniform in [0, bound), bound > 0, without modulo bias (Lemire's
 * multiply-and-reject). */
static uint64_t rng_below(rng *r, uint64_t bound)
{
    unsigned __int128 m = (unsigned __int128)sf_rng_next(r) * bound;
    uint64_t low = (uint64_t)m;
    if (low < bound) {
        uint64_t threshold = -bound % bound;
        while (low < threshold) {
            m = (unsigned __int128)sf_rng_next(r) * bound;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* ---- Initialisation: k distinct positions out of n ---- */

/* A partial Fisher-Yates shuffle of 0..n-1 that stores only the displaced
 * positions, in an open-addressing table: O(k) memory whatever n is. */
typedef struct swap_map {
    size_t *keys, *vals;
    size_t mask;
} swap_map;

static size_t map_slot(const swap_map *m, size_t key)
{
    size_t h = (size_t)((uint64_t)key * UINT64_C(0x9e3779b97f4a7c15) >> 17) & m->mask;
    while (m->keys[h] != SIZE_MAX && m->keys[h] != key)
        h = (h + 1) & m->mask;
    return h;
}

static size_t map_get(const swap_map *m, size_t key)
{
    size_t h = map_slot(m, key);
    return m->keys[h] == key ? m->vals[h] : key;
}

static void map_put(swap_map *m, size_t key, size_t val)
{
    size_t h = map_slot(m, key);
    m->keys[h] = key;
    m->vals[h] = val;
}

static sf_status pick_distinct(size_t n, size_t k, uint64_t seed, size_t *out, sf_error *err)
{
    size_t cap = 16;
    while (cap < 4 * k)
        cap *= 2;
    swap_map m = { malloc(cap * sizeof(size_t)), malloc(cap * sizeof(size_t)), cap - 1 };
    if (!m.keys || !m.vals) {
        free(m.keys);
        free(m.vals);
        return sf_error_set(err, SF_ERR_NOMEM, "k-means: out of memory");
    }
    memset(m.keys, 0xff, cap * sizeof(size_t));
    rng r;
    rng_seed(&r, seed, 1);
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)rng_below(&r, (uint64_t)(n - i));
        size_t vi = map_get(&m, i), vj = map_get(&m, j);
        out[i] = vj;
        map_put(&m, j, vi);
    }
    free(m.keys);
    free(m.vals);
    return SF_OK;
}

/* ---- Assignment: blocked sgemm and argmin ---- */

/* Smallest cn[j] + ip[j] of a row and its first index.  Each vector lane
 * keeps the first minimum of its columns; merging the lanes by (value,
 * index) and then the tail in order gives exactly what a plain loop
 * gives, so every variant below returns the same answer.  The argmin is
 * about a fifth of the sgemm's time when scalar, a twentieth in vectors. */
#define DEFINE_ROW_ARGMIN(name, lanes, attr)                                                \
    attr static size_t name(const float *ip, const float *cn, size_t cols, float *value)    \
    {                                                                                        \
        typedef float vf __attribute__((vector_size(4 * (lanes))));                         \
        typedef int32_t vi __attribute__((vector_size(4 * (lanes))));                       \
        float best = INFINITY;                                                               \
        size_t at = 0, j = 0;                                                                \
        if (cols >= (lanes)) {                                                               \
            vf vmin;                                                                         \
            vi vidx, cur, step;                                                              \
            for (int l = 0; l < (lanes); l++) {                                              \
                vmin[l] = INFINITY;                                                          \
                vidx[l] = 0;                                                                 \
                cur[l] = l;                                                                  \
                step[l] = (lanes);                                                           \
            }                                                                                \
            for (; j + (lanes) <= cols; j += (lanes)) {                                      \
                vf a, b;                                                                     \
                memcpy(&a, cn + j, sizeof a);                                                \
                memcpy(&b, ip + j, sizeof b);                                                \
                vf v = a + b;                                                                \
                vi m = v < vmin;                                                             \
                vmin = (vf)(((vi)v & m) | ((vi)vmin & ~m));                                  \
                vidx = (cur & m) | (vidx & ~m);                                              \
                cur += step;                                                                 \
            }                                                                                \
            for (int l = 0; l < (lanes); l++)                                                \
                if (vmin[l] < best || (vmin[l] == best && (size_t)vidx[l] < at)) {           \
                    best = vmin[l];                                                          \
                    at = (size_t)vidx[l];                                                    \
                }                                                                            \
        }                                                                                    \
        for (; j < cols; j++) {                                                              \
            float v = cn[j] + ip[j];                                                         \
            if (v < best) {                                                                  \
                best = v;                                                                    \
                at = j;                                                                      \
            }                                                                                \
        }                                                                                    \
        *value = best;                                                                       \
        return at;                                                                           \
    }

/* 16-byte vectors suit every target; x86-64 with AVX2 gets 32-byte ones
 * (wider vectors compiled for a narrower target are slower than scalar). */
DEFINE_ROW_ARGMIN(row_argmin_4, 4, )
#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_ARGMIN_AVX2 1
DEFINE_ROW_ARGMIN(row_argmin_avx2, 8, __attribute__((target("avx2"))))
#endif

typedef size_t (*row_argmin_fn)(const float *ip, const float *cn, size_t cols, float *value);

static row_argmin_fn pick_row_argmin(void)
{
#ifdef HAVE_ARGMIN_AVX2
    if (__builtin_cpu_supports("avx2"))
        return row_argmin_avx2;
#endif
    return row_argmin_4;
}

typedef struct assign_job {
    const float *x;
    size_t d;
    const float *cnorm; /* |c|^2, k */
    int32_t *assign;
    float *best;        /* per row: the smallest |c|^2 - 2 x.c so far */
    float *dist;
    row_argmin_fn row_argmin;
} assign_job;

static void assign_begin(void *ctx, size_t r0, size_t rows, size_t part)
{
    const assign_job *job = ctx;
    for (size_t r = r0; r < r0 + rows; r++) {
        job->best[r] = INFINITY;
        job->assign[r] = 0;
    }
}

/* prod = -2 x c^T */
static void assign_tile(void *ctx, size_t r0, size_t rows, size_t part, size_t c0, size_t cols,
                        const float *prod)
{
    const assign_job *job = ctx;
    for (size_t r = 0; r < rows; r++) {
        float v;
        size_t j = job->row_argmin(prod + r * cols, job->cnorm + c0, cols, &v);
        if (v < job->best[r0 + r]) { /* strict: an earlier block wins ties */
            job->best[r0 + r] = v;
            job->assign[r0 + r] = (int32_t)(c0 + j);
        }
    }
}

static void assign_end(void *ctx, size_t r0, size_t rows, size_t part)
{
    const assign_job *job = ctx;
    const size_t d = job->d;
    if (!job->dist)
        return;
    for (size_t r = r0; r < r0 + rows; r++) {
        const float *xr = job->x + r * d;
        float xn = 0.0f;
        for (size_t i = 0; i < d; i++)
            xn += xr[i] * xr[i];
        float dd = xn + job->best[r];
        /* Rounding can make a distance slightly negative; an overflow
         * (inf, -inf, NaN) is kept for assign_all to find. */
        job->dist[r] = isfinite(dd) && dd < 0.0f ? 0.0f : dd;
    }
}

/* Distances are float32: values whose squares overflow it (beyond about
 * 1.8e19) make them infinite or NaN and the nearest centroid meaningless,
 * so they are refused where they appear instead of passed on. */
static sf_status check_distances(const float *best, const float *dist, size_t n,
                                 sf_error *err)
{
    for (size_t r = 0; r < n; r++)
        if (!isfinite(best[r]) || (dist && !isfinite(dist[r])))
            return sf_error_set(err, SF_ERR_INVALID_DATA,
                                "k-means: vector %zu: its distance to the nearest centroid "
                                "overflows float32 (values too large)", r);
    return SF_OK;
}

/* Nearest centroid of every row; cnorm holds |c|^2. */
static sf_status assign_all(const float *x, size_t n, size_t d, const float *c,
                            const float *cnorm, size_t k, int threads, int32_t *assign,
                            float *dist, sf_error *err)
{
    assign_job job = { x, d, cnorm, assign, malloc(n * sizeof(float)), dist, pick_row_argmin() };
    if (!job.best)
        return sf_error_set(err, SF_ERR_NOMEM, "k-means: out of memory");
    const sf_gemm_tiles t = {
        .x = x, .c = c, .n = n, .k = k, .dim = d,
        .row_block = ROW_BLOCK, .col_block = COL_BLOCK,
        .col_blocks = (k + COL_BLOCK - 1) / COL_BLOCK, .parts = 1,
        .threads = resolve_threads(threads), .what = "k-means",
        .ctx = &job, .begin = assign_begin, .tile = assign_tile, .end = assign_end,
    };
    sf_status st = sf_gemm_tiles_run(&t, err);
    if (st == SF_OK)
        st = check_distances(job.best, dist, n, err);
    free(job.best);
    return st;
}

/* |c|^2 of every centroid; one that overflows float32 is refused, as no
 * distance to it could be computed. */
static sf_status centroid_norms(const float *c, size_t k, size_t d, float *cnorm, sf_error *err)
{
    for (size_t j = 0; j < k; j++) {
        double s = 0.0;
        for (size_t i = 0; i < d; i++)
            s += (double)c[j * d + i] * c[j * d + i];
        cnorm[j] = (float)s;
        if (!isfinite(cnorm[j]))
            return sf_error_set(err, SF_ERR_INVALID_DATA,
                                "k-means: centroid %zu: its squared norm overflows float32 "
                                "(values too large)", j);
    }
    return SF_OK;
}

static sf_status check_finite(const float *v, size_t count, const char *what, sf_status status,
                              sf_error *err)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite(v[i]))
            return sf_error_set(err, status, "k-means: %s value %zu is not finite", what, i);
    return SF_OK;
}

/* Training vectors are finite and so are their squared norms in float32,
 * which every distance to them includes. */
static sf_status check_rows(const float *x, size_t n, size_t d, sf_error *err)
{
    sf_status st = check_finite(x, n * d, "training", SF_ERR_INVALID_ARGUMENT, err);
    for (size_t r = 0; r < n && st == SF_OK; r++) {
        double s = 0.0;
        for (size_t i = 0; i < d; i++)
            s += (double)x[r * d + i] * x[r * d + i];
        if (!isfinite((float)s))
            st = sf_error_set(err, SF_ERR_INVALID_DATA,
                              "k-means: training vector %zu: its squared norm overflows "
                              "float32 (values too large)", r);
    }
    return st;
}

sf_status sf_kmeans_assign(const float *x, size_t n, size_t d, const float *centroids,
                           size_t k, int threads, int32_t *assign, float *dist, sf_error *err)
{
    if (d == 0 || k == 0 || k > INT32_MAX)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "k-means: %zu centroids of dimension %zu", k, d);
    if (n == 0)
        return SF_OK;
    size_t nd = sf_mul_size(n, d), kd = sf_mul_size(k, d);
    if (!nd || !kd)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "k-means: sizes overflow");
    sf_status st = check_finite(x, nd, "data", SF_ERR_INVALID_ARGUMENT, err);
    if (st == SF_OK)
        st = check_finite(centroids, kd, "centroid", SF_ERR_INVALID_ARGUMENT, err);
    if (st != SF_OK)
        return st;
    float *cnorm = malloc(k * sizeof(float));
    if (!cnorm)
        return sf_error_set(err, SF_ERR_NOMEM, "k-means: out of memory");
    st = centroid_norms(centroids, k, d, cnorm, err);
    if (st == SF_OK)
        st = assign_all(x, n, d, centroids, cnorm, k, threads, assign, dist, err);
    free(cnorm);
    return st;
}

/* ---- Update: means in double, by ranges of clusters ---- */

typedef struct update_job {
    const float *x;
    size_t n, d, k;
    const int32_t *assign;
    const float *dist;
    double *sums;   /* k x d */
    size_t *counts; /* k */
    size_t *far;    /* k: the row farthest from its old centroid, first on ties */
    float *far_dist;
    float *c;       /* k x d, updated for non-empty clusters */
    int n_threads;
} update_job;

/* Each thread owns a range of clusters and scans the rows in order, so the
 * sums do not depend on the number of threads. */
static void update_range(void *ctx, size_t index)
{
    const update_job *job = ctx;
    const size_t d = job->d;
    size_t lo = job->k * index / (size_t)job->n_threads;
    size_t hi = job->k * (index + 1) / (size_t)job->n_threads;
    memset(job->sums + lo * d, 0, (hi - lo) * d * sizeof(double));
    for (size_t j = lo; j < hi; j++) {
        job->counts[j] = 0;
        job->far[j] = SIZE_MAX;
        job->far_dist[j] = -1.0f;
    }
    for (size_t i = 0; i < job->n; i++) {
        size_t a = (size_t)job->assign[i];
        if (a < lo || a >= hi)
            continue;
        double *s = job->sums + a * d;
        const float *xi = job->x + i * d;
        for (size_t t = 0; t < d; t++)
            s[t] += xi[t];
        job->counts[a]++;
        if (job->dist[i] > job->far_dist[a]) {
            job->far_dist[a] = job->dist[i];
            job->far[a] = i;
        }
    }
    for (size_t j = lo; j < hi; j++) {
        if (job->counts[j] == 0)
            continue;
        double inv = 1.0 / (double)job->counts[j];
        for (size_t t = 0; t < d; t++)
            job->c[j * d + t] = (float)(job->sums[j * d + t] * inv);
    }
}

static void update_all(update_job *job, int threads)
{
    int nt = resolve_threads(threads);
    if ((size_t)nt > job->k)
        nt = (int)job->k;
    job->n_threads = nt;
    sf_threads_run((size_t)nt, update_range, job);
}

/* ---- Empty clusters ---- */

/* Cluster indices by descending count, ties by index (a merge sort: qsort
 * has no context pointer for the counts). */
static void sort_by_count(size_t *idx, size_t *tmp, size_t n, const size_t *counts)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_by_count(idx, tmp, h, counts);
    sort_by_count(idx + h, tmp, n - h, counts);
    size_t i = 0, j = h, o = 0;
    while (i < h && j < n) {
        size_t a = idx[i], b = idx[j];
        int take_b = counts[b] > counts[a] || (counts[b] == counts[a] && b < a);
        tmp[o++] = take_b ? idx[j++] : idx[i++];
    }
    while (i < h)
        tmp[o++] = idx[i++];
    while (j < n)
        tmp[o++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

/* Give every empty cluster (in index order) half of a big one: the largest
 * clusters donate first, each at most once per iteration.  The donor's
 * centroid c and the new one become c - e and c + e, with e = (f - c)/1024
 * where f is the donor's farthest row: the hyperplane through c across that
 * direction then splits the donor's rows, f on the new side and, as c is
 * their mean, at least one row on the other.  A donor needs two rows and
 * a farthest row away from its centroid; empty clusters left over keep
 * their centroid and are retried at the next iteration.  Returns the
 * number of clusters re-seeded. */
static size_t split_clusters(const float *x, size_t d, size_t k, float *c, const size_t *counts,
                             const size_t *far, size_t *order, size_t *tmp)
{
    size_t n_empty = 0;
    for (size_t j = 0; j < k; j++)
        n_empty += counts[j] == 0;
    if (n_empty == 0)
        return 0;
    for (size_t j = 0; j < k; j++)
        order[j] = j;
    sort_by_count(order, tmp, k, counts);
    size_t next = 0, done = 0;
    for (size_t e = 0; e < k; e++) {
        if (counts[e] != 0)
            continue;
        size_t donor = SIZE_MAX;
        while (next < k && counts[order[next]] >= 2) {
            size_t cand = order[next++];
            const float *f = x + far[cand] * d, *cc = c + cand * d;
            int moved = 0;
            for (size_t t = 0; t < d && !moved; t++)
                moved = f[t] != cc[t];
            if (moved) {
                donor = cand;
                break;
            }
        }
        if (donor == SIZE_MAX)
            break;
        float *cd = c + donor * d, *ce = c + e * d;
        const float *f = x + far[donor] * d;
        for (size_t t = 0; t < d; t++) {
            double base = cd[t], push = ((double)f[t] - base) * SPLIT_EPS;
            ce[t] = (float)(base + push);
            cd[t] = (float)(base - push);
        }
        done++;
    }
    return done;
}

/* ---- Training ---- */

sf_status sf_kmeans_train(const float *x, size_t n, size_t d, size_t k, int iterations,
                          uint64_t seed, const sf_kmeans_options *opt, float *centroids,
                          double *inertia, sf_error *err)
{
    static const sf_kmeans_options defaults = { 0, NULL, NULL };
    if (!opt)
        opt = &defaults;
    if (d == 0 || k == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "k-means: %zu centroids of dimension %zu", k, d);
    if (k > INT32_MAX)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "k-means: %zu centroids (at most %d)", k,
                            INT32_MAX);
    if (n < k)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "k-means: %zu training vectors for %zu centroids; "
                            "at least as many vectors as centroids are needed", n, k);
    if (iterations < 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "k-means: %d iterations", iterations);
    size_t nd = sf_mul_size(n, d), kd = sf_mul_size(k, d);
    if (!nd || !kd || !sf_mul_size(kd, sizeof(double)) || !sf_mul_size(n, sizeof(float)))
        return sf_error_set(err, SF_ERR_TOO_LARGE, "k-means: %zu x %zu is too large", n, d);
    sf_status st = check_rows(x, n, d, err);
    if (st != SF_OK)
        return st;

    int32_t *assign = malloc(n * sizeof *assign);
    float *dist = malloc(n * sizeof *dist);
    float *cnorm = malloc(k * sizeof *cnorm);
    double *sums = malloc(kd * sizeof *sums);
    size_t *counts = malloc(k * sizeof *counts);
    size_t *far = malloc(k * sizeof *far);
    float *far_dist = malloc(k * sizeof *far_dist);
    size_t *order = malloc(k * sizeof *order);
    size_t *tmp = malloc(k * sizeof *tmp);
    if (!assign || !dist || !cnorm || !sums || !counts || !far || !far_dist || !order || !tmp) {
        st = sf_error_set(err, SF_ERR_NOMEM, "k-means: out of memory for %zu vectors and %zu "
                                             "centroids", n, k);
        goto done;
    }

    st = pick_distinct(n, k, seed, order, err);
    if (st != SF_OK)
        goto done;
    for (size_t j = 0; j < k; j++)
        memcpy(centroids + j * d, x + order[j] * d, d * sizeof(float));

    update_job up = { x, n, d, k, assign, dist, sums, counts, far, far_dist, centroids, 0 };
    double total = 0.0;
    for (int it = 0;; it++) {
        st = centroid_norms(centroids, k, d, cnorm, err);
        if (st == SF_OK)
            st = assign_all(x, n, d, centroids, cnorm, k, opt->threads, assign, dist, err);
        if (st != SF_OK)
            goto done;
        total = 0.0;
        for (size_t i = 0; i < n; i++)
            total += dist[i];
        if (!isfinite(total)) {
            st = sf_error_set(err, SF_ERR_INVALID_DATA, "k-means: the inertia overflows");
            goto done;
        }
        if (opt->progress)
            opt->progress(opt->progress_ctx, it, total);
        if (it == iterations)
            break;
        update_all(&up, opt->threads);
        split_clusters(x, d, k, centroids, counts, far, order, tmp);
    }
    if (inertia)
        *inertia = total;

done:
    free(assign);
    free(dist);
    free(cnorm);
    free(sums);
    free(counts);
    free(far);
    free(far_dist);
    free(order);
    free(tmp);
    return st;
}

/* ---- Reservoir sampling ---- */

struct sf_kmeans_sampler {
    size_t max_rows, d;
    float *rows;
    size_t n, cap; /* rows held, rows allocated */
    uint64_t seen;
    rng r;
};

static sf_status sampler_set_dim(sf_kmeans_sampler *s, size_t d, sf_error *err)
{
    if (d && !sf_mul_size(sf_mul_size(s->max_rows, d), sizeof(float)))
        return sf_error_set(err, SF_ERR_TOO_LARGE, "sampler: %zu rows of dimension %zu",
                            s->max_rows, d);
    s->d = d;
    return SF_OK;
}

sf_status sf_kmeans_sampler_create(size_t max_rows, size_t d, uint64_t seed,
                                   sf_kmeans_sampler **out, sf_error *err)
{
    *out = NULL;
    if (max_rows == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "sampler: %zu rows of dimension %zu", max_rows, d);
    sf_kmeans_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return sf_error_set(err, SF_ERR_NOMEM, "sampler: out of memory");
    s->max_rows = max_rows;
    rng_seed(&s->r, seed, 2);
    sf_status st = sampler_set_dim(s, d, err);
    if (st != SF_OK) {
        free(s);
        return st;
    }
    *out = s;
    return SF_OK;
}

void sf_kmeans_sampler_free(sf_kmeans_sampler *s)
{
    if (!s)
        return;
    free(s->rows);
    free(s);
}

static sf_status sampler_grow(sf_kmeans_sampler *s, size_t want, sf_error *err)
{
    size_t cap = s->cap ? s->cap : 1024;
    while (cap < want)
        cap = cap > s->max_rows / 2 ? s->max_rows : 2 * cap;
    if (cap > s->max_rows)
        cap = s->max_rows;
    float *rows = realloc(s->rows, cap * s->d * sizeof(float));
    if (!rows)
        return sf_error_set(err, SF_ERR_NOMEM, "sampler: out of memory for %zu rows of "
                                               "dimension %zu", cap, s->d);
    s->rows = rows;
    s->cap = cap;
    return SF_OK;
}

sf_status sf_kmeans_sampler_add(sf_kmeans_sampler *s, const float *rows, size_t n,
                                sf_error *err)
{
    const size_t d = s->d;
    if (d == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "sampler: no dimension yet");
    /* Rows that fit are kept as they come. */
    size_t fill = s->max_rows - s->n < n ? s->max_rows - s->n : n;
    if (fill) {
        if (s->n + fill > s->cap) {
            sf_status st = sampler_grow(s, s->n + fill, err);
            if (st != SF_OK)
                return st;
        }
        memcpy(s->rows + s->n * d, rows, fill * d * sizeof(float));
        s->n += fill;
        s->seen += fill;
    }
    /* Then row number `seen` (0-based) replaces a random slot with
     * probability max_rows / (seen + 1). */
    for (size_t i = fill; i < n; i++) {
        uint64_t j = rng_below(&s->r, s->seen + 1);
        if (j < s->max_rows)
            memcpy(s->rows + (size_t)j * d, rows + i * d, d * sizeof(float));
        s->seen++;
    }
    return SF_OK;
}

/* Descriptors of a larger dimension are taken for damage: FIRe's are 128. */
#define SAMPLER_MAX_DIM (UINT64_C(1) << 20)

static int keep_scale(float value, double scale)
{
    return fabs(value - scale) <= SF_KMEANS_SCALE_TOLERANCE * scale;
}

sf_status sf_kmeans_sampler_add_image(sf_kmeans_sampler *s, const sf_stream_image *img,
                                      double scale, sf_error *err)
{
    const char *key = img->key;
    const sf_record *desc = sf_stream_image_find(img, SF_KIND_LOCAL_DESC);
    if (!desc)
        return SF_OK;
    if (desc->dtype != SF_DTYPE_F32 || desc->ndim != 2 || desc->shape[1] == 0)
        return sf_error_set(err, SF_ERR_INVALID_DATA,
                            "%s: local_desc is not a float32 K x d array", key);
    uint64_t d = desc->shape[1];
    if (s->d == 0) {
        if (d > SAMPLER_MAX_DIM)
            return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: descriptors of dimension %llu",
                                key, (unsigned long long)d);
        sf_status st = sampler_set_dim(s, (size_t)d, err);
        if (st != SF_OK)
            return st;
    }
    if (d != s->d)
        return sf_error_set(err, SF_ERR_MISMATCH,
                            "%s: descriptors of dimension %llu, the first ones had %zu", key,
                            (unsigned long long)d, s->d);
    const float *rows = desc->data;
    size_t n = (size_t)desc->shape[0];
    if (!(scale > 0) || n == 0)
        return n ? sf_kmeans_sampler_add(s, rows, n, err) : SF_OK;

    const sf_record *scales = sf_stream_image_find(img, SF_KIND_LOCAL_SCALE);
    if (!scales)
        return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: no local_scale record to filter "
                                                      "the descriptors by --scale", key);
    if (scales->dtype != SF_DTYPE_F32 || scales->ndim != 1)
        return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: local_scale is not a float32 vector",
                            key);
    if (scales->shape[0] != n)
        return sf_error_set(err, SF_ERR_INVALID_DATA,
                            "%s: %llu local_scale values for %zu local_desc rows", key,
                            (unsigned long long)scales->shape[0], n);
    /* Each run of kept rows in one call: the sampler takes rows one by one,
     * so this samples as the kept rows alone would. */
    const float *v = scales->data;
    for (size_t i = 0; i < n;) {
        while (i < n && !keep_scale(v[i], scale))
            i++;
        size_t first = i;
        while (i < n && keep_scale(v[i], scale))
            i++;
        if (i > first) {
            sf_status st = sf_kmeans_sampler_add(s, rows + first * s->d, i - first, err);
            if (st != SF_OK)
                return st;
        }
    }
    return SF_OK;
}

const float *sf_kmeans_sampler_rows(const sf_kmeans_sampler *s, size_t *n)
{
    *n = s->n;
    return s->rows;
}

size_t sf_kmeans_sampler_dim(const sf_kmeans_sampler *s)
{
    return s->d;
}

uint64_t sf_kmeans_sampler_seen(const sf_kmeans_sampler *s)
{
    return s->seen;
}
