#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_internal.h"
#include "quantize_internal.h"
#include "sf_asmk.h"
#include "sf_internal.h"

/* Quantisation tiles: the dot products of a block of descriptors with a
 * block of centroids come from one sgemm call into a per-thread buffer
 * (2 MiB), read back from cache while the nearest words are picked out of
 * it.  Taller blocks make sgemm faster (it repacks the centroids for every
 * call); 512 x 1024 was the fastest on a 2-core Zen 4.
 *
 * Blocks are never given fewer than SF_GEMM_MIN_ROWS rows (short ones are
 * padded, or go to the exact small kernel) nor SF_GEMM_MIN_COLS columns (a
 * short last column block joins the one before it), so that a descriptor
 * gets the same distances, and words, alone or among thousands, whatever
 * the thread count (gemm_internal.h). */
#ifndef Q_ROW_BLOCK
#define Q_ROW_BLOCK 512
#endif
#ifndef Q_COL_BLOCK
#define Q_COL_BLOCK 1024
#endif
/* Multiply-adds worth a thread of their own: about 0.1 ms of sgemm, a
 * few times what starting the thread costs. */
#define Q_THREAD_WORK 8e6

struct sf_asmk_codebook {
    size_t k, dim;
    float *centroids; /* k x dim */
    float *norms;     /* |c|^2, k, summed in dimension order */
    int tiny_ok;      /* sf_gemm_tiny_exact */
    sf_quant_screen *screen; /* NULL: sgemm only (quantize_internal.h) */
};

struct ivf_list {
    uint32_t *image_ids;
    unsigned char *vecs; /* count x vec_bytes */
    size_t count, cap;
};

struct sf_asmk_ivf {
    sf_asmk_codebook *codebook;
    sf_asmk_params params;
    size_t vec_bytes;      /* one stored vector */
    struct ivf_list *lists; /* one per visual word */
    float *idf;            /* k */
    size_t n_images;       /* largest added id + 1 */
    size_t image_cap;
    unsigned char *added;  /* per image: 1 once added */
    double *norm;          /* per image, after finalize */
    double *norm_sqrt;
    int finalized;
};

void sf_asmk_params_default(sf_asmk_params *params)
{
    params->binary = 1;
    params->use_idf = 0;
    params->similarity_threshold = 0.0f;
    params->alpha = 3.0f;
}

/* ---- Codebook ---- */

sf_status sf_asmk_codebook_create(const float *centroids, size_t k, size_t dim,
                                  sf_asmk_codebook **out, sf_error *err)
{
    *out = NULL;
    if (k == 0 || dim == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "codebook: %zu centroids of dimension %zu", k, dim);
    if (k > INT32_MAX)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "codebook: %zu centroids (at most %d)", k,
                            INT32_MAX);
    size_t total = sf_mul_size(k, dim);
    if (!total || total > SIZE_MAX / sizeof(float))
        return sf_error_set(err, SF_ERR_TOO_LARGE, "codebook: %zu x %zu is too large", k, dim);
    for (size_t i = 0; i < total; i++)
        if (!isfinite(centroids[i]))
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                "codebook: centroid %zu, dimension %zu is not finite", i / dim,
                                i % dim);

    sf_asmk_codebook *cb = calloc(1, sizeof *cb);
    if (!cb)
        return sf_error_set(err, SF_ERR_NOMEM, "codebook: out of memory");
    cb->k = k;
    cb->dim = dim;
    cb->centroids = malloc(total * sizeof(float));
    cb->norms = malloc(k * sizeof(float));
    if (!cb->centroids || !cb->norms) {
        sf_asmk_codebook_free(cb);
        return sf_error_set(err, SF_ERR_NOMEM, "codebook: out of memory for %zu x %zu", k, dim);
    }
    memcpy(cb->centroids, centroids, total * sizeof(float));
    for (size_t j = 0; j < k; j++)
        cb->norms[j] = sf_quant_sq_norm(centroids + j * dim, dim);
    cb->tiny_ok = sf_gemm_tiny_exact(cb->centroids, k, dim);
    cb->screen = sf_quant_screen_create(cb->centroids, cb->norms, k, dim, cb->tiny_ok);
    *out = cb;
    return SF_OK;
}

void sf_asmk_codebook_free(sf_asmk_codebook *codebook)
{
    if (!codebook)
        return;
    free(codebook->centroids);
    free(codebook->norms);
    sf_quant_screen_free(codebook->screen);
    free(codebook);
}

size_t sf_asmk_codebook_size(const sf_asmk_codebook *codebook) { return codebook->k; }
size_t sf_asmk_codebook_dim(const sf_asmk_codebook *codebook) { return codebook->dim; }
const float *sf_asmk_codebook_centroids(const sf_asmk_codebook *codebook)
{
    return codebook->centroids;
}

/* ---- Quantisation ---- */

/* Keep the ma smallest distances, ascending.  Centroids arrive in
 * ascending index order and only a strictly smaller distance moves an
 * entry, so equal distances stay ordered by index. */
static void keep_nearest(float *dist, int32_t *ids, int ma, float d, int32_t id)
{
    if (!(d < dist[ma - 1]))
        return;
    int p = ma - 1;
    while (p > 0 && d < dist[p - 1]) {
        dist[p] = dist[p - 1];
        ids[p] = ids[p - 1];
        p--;
    }
    dist[p] = d;
    ids[p] = id;
}

/* Offer one row's distances to columns j0.. j0 + cols - 1 to its list:
 * (xn + cn[j]) + ip[j] clamped at 0, where ip holds -2 x.c, the same
 * float32 operations as (|x|^2 + |c|^2) - 2 x.c.  Only a distance below
 * the list's last can enter it, so whole vectors are compared with that
 * first and the few that pass go through keep_nearest in column order.
 * (An unclamped distance below the bound is a necessary condition for the
 * clamped one; NaN never passes.) */
#define DEFINE_ROW_SCAN(name, lanes, attr)                                                   \
    attr static void name(const float *ip, const float *cn, float xn, size_t cols,          \
                          int32_t j0, float *bd, int32_t *bi, int ma)                       \
    {                                                                                        \
        typedef float vf __attribute__((vector_size(4 * (lanes))));                         \
        typedef int32_t vi __attribute__((vector_size(4 * (lanes))));                       \
        vf vxn;                                                                              \
        for (int l = 0; l < (lanes); l++)                                                    \
            vxn[l] = xn;                                                                     \
        size_t j = 0;                                                                        \
        for (; j + (lanes) <= cols; j += (lanes)) {                                          \
            vf a, b, bound;                                                                  \
            memcpy(&a, cn + j, sizeof a);                                                    \
            memcpy(&b, ip + j, sizeof b);                                                    \
            vf d = (vxn + a) + b;                                                            \
            for (int l = 0; l < (lanes); l++)                                                \
                bound[l] = bd[ma - 1];                                                       \
            vi m = d < bound;                                                                \
            int32_t any = 0;                                                                 \
            for (int l = 0; l < (lanes); l++)                                                \
                any |= m[l];                                                                 \
            if (any)                                                                         \
                for (int l = 0; l < (lanes); l++)                                            \
                    keep_nearest(bd, bi, ma, d[l] < 0.0f ? 0.0f : d[l],                      \
                                 j0 + (int32_t)j + l);                                       \
        }                                                                                    \
        for (; j < cols; j++) {                                                              \
            float d = (xn + cn[j]) + ip[j];                                                  \
            keep_nearest(bd, bi, ma, d < 0.0f ? 0.0f : d, j0 + (int32_t)j);                  \
        }                                                                                    \
    }

/* 16-byte vectors suit every target; x86-64 with AVX2 gets 32-byte ones
 * (wider vectors compiled for a narrower target are slower than scalar). */
DEFINE_ROW_SCAN(row_scan_4, 4, )
#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_SCAN_AVX2 1
DEFINE_ROW_SCAN(row_scan_avx2, 8, __attribute__((target("avx2"))))
#endif

typedef void (*row_scan_fn)(const float *ip, const float *cn, float xn, size_t cols, int32_t j0,
                            float *bd, int32_t *bi, int ma);

static row_scan_fn pick_row_scan(void)
{
#ifdef HAVE_SCAN_AVX2
    if (__builtin_cpu_supports("avx2"))
        return row_scan_avx2;
#endif
    return row_scan_4;
}

/* The work is cut into units: a row block against a part (a range of
 * column blocks).  Each unit keeps, per row, its own list of the ma
 * nearest in bd/bi; the parts' lists are merged at the end.  A row's
 * distances do not depend on how the units fall, only on the tiles. */
typedef struct quant_job {
    const sf_asmk_codebook *cb;
    const float *xnorm; /* |x|^2, n */
    size_t parts;
    int ma;
    float *bd;          /* (n x parts) lists of ma distances */
    int32_t *bi;        /* and their centroids */
    row_scan_fn scan;
} quant_job;

static void quant_begin(void *ctx, size_t r0, size_t rows, size_t part)
{
    const quant_job *job = ctx;
    const size_t ma = (size_t)job->ma;
    for (size_t r = 0; r < rows; r++) {
        size_t at = ((r0 + r) * job->parts + part) * ma;
        for (size_t i = 0; i < ma; i++) {
            job->bd[at + i] = INFINITY;
            job->bi[at + i] = -1;
        }
    }
}

/* prod = -2 x c^T, so (|x|^2 + |c|^2) + prod rounds like
 * (|x|^2 + |c|^2) - 2 x.c */
static void quant_tile(void *ctx, size_t r0, size_t rows, size_t part, size_t c0, size_t cols,
                       const float *prod)
{
    const quant_job *job = ctx;
    const size_t ma = (size_t)job->ma;
    for (size_t r = 0; r < rows; r++) {
        size_t at = ((r0 + r) * job->parts + part) * ma;
        job->scan(prod + r * cols, job->cb->norms + c0, job->xnorm[r0 + r], cols, (int32_t)c0,
                  job->bd + at, job->bi + at, job->ma);
    }
}

/* Merge a row's per-part lists, each ascending by (distance, index), into
 * its ma nearest: the same as one list kept over all columns in order. */
static void merge_parts(const float *bd, const int32_t *bi, size_t parts, int ma, size_t *head,
                        int32_t *words)
{
    for (size_t p = 0; p < parts; p++)
        head[p] = 0;
    for (int m = 0; m < ma; m++) {
        size_t best = parts;
        for (size_t p = 0; p < parts; p++) {
            size_t h = p * (size_t)ma + head[p];
            if (head[p] == (size_t)ma || bi[h] < 0)
                continue;
            if (best == parts) {
                best = p;
                continue;
            }
            size_t hb = best * (size_t)ma + head[best];
            if (bd[h] < bd[hb] || (bd[h] == bd[hb] && bi[h] < bi[hb]))
                best = p;
        }
        if (best == parts) {
            words[m] = -1;
            continue;
        }
        words[m] = bi[best * (size_t)ma + head[best]];
        head[best]++;
    }
}

static size_t gcd_size(size_t a, size_t b)
{
    while (b) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static sf_status quantize_sgemm(const sf_asmk_codebook *cb, const float *desc, size_t n,
                                int ma, int32_t *words, sf_error *err)
{
    const size_t dim = cb->dim, k = cb->k;

    quant_job job = { .cb = cb, .ma = ma, .scan = pick_row_scan() };
    sf_gemm_tiles t = {
        .x = desc, .c = cb->centroids, .n = n, .k = k, .dim = dim,
        .col_block = Q_COL_BLOCK, .pad_short = 1, .tiny = cb->tiny_ok, .what = "quantize",
        .ctx = &job, .begin = quant_begin, .tile = quant_tile,
    };
    /* Threads: as many as the work is worth, up to one per core. */
    double work = (double)(n < SF_GEMM_MIN_ROWS ? SF_GEMM_MIN_ROWS : n) * (double)k * (double)dim;
    size_t want = (size_t)sf_threads_resolve(0);
    if ((double)want > work / Q_THREAD_WORK)
        want = work / Q_THREAD_WORK >= 1.0 ? (size_t)(work / Q_THREAD_WORK) : 1;
    /* Row blocks of equal size, as tall as allowed: sgemm is fastest on
     * tall blocks.  To give every thread the same share, the columns are
     * split into parts so that the units are a multiple of the threads
     * (splitting columns costs only a merge; thinner row blocks would
     * slow the sgemm). */
    size_t n_rb = (n + Q_ROW_BLOCK - 1) / Q_ROW_BLOCK;
    t.row_block = (n + n_rb - 1) / n_rb;
    n_rb = (n + t.row_block - 1) / t.row_block; /* none left empty */
    t.col_blocks = (k + Q_COL_BLOCK - SF_GEMM_MIN_COLS) / Q_COL_BLOCK;
    if (t.col_blocks == 0)
        t.col_blocks = 1;
    t.parts = want / gcd_size(n_rb, want);
    if (t.parts > t.col_blocks)
        t.parts = t.col_blocks;
    t.threads = (int)want;
    job.parts = t.parts;

    size_t lists = sf_mul_size(sf_mul_size(n, t.parts), (size_t)ma);
    if (!lists || !sf_mul_size(n, dim) || lists > SIZE_MAX / sizeof(float))
        return sf_error_set(err, SF_ERR_TOO_LARGE, "quantize: %zu descriptors x %d words", n,
                            ma);
    float *xnorm = malloc(n * sizeof *xnorm);
    job.bd = malloc(lists * sizeof *job.bd);
    /* One part: the lists are the answer. */
    int32_t *bi_own = t.parts > 1 ? malloc(lists * sizeof *bi_own) : NULL;
    job.bi = t.parts > 1 ? bi_own : words;
    size_t *head = t.parts > 1 ? malloc(t.parts * sizeof *head) : NULL;
    sf_status st = SF_OK;
    if (!xnorm || !job.bd || !job.bi || (t.parts > 1 && !head))
        st = sf_error_set(err, SF_ERR_NOMEM, "quantize: out of memory");
    if (st == SF_OK) {
        for (size_t r = 0; r < n; r++)
            xnorm[r] = sf_quant_sq_norm(desc + r * dim, dim);
        job.xnorm = xnorm;
        st = sf_gemm_tiles_run(&t, err);
    }
    if (st == SF_OK && t.parts > 1)
        for (size_t r = 0; r < n; r++)
            merge_parts(job.bd + r * t.parts * (size_t)ma, job.bi + r * t.parts * (size_t)ma,
                        t.parts, ma, head, words + r * (size_t)ma);
    if (st == SF_OK)
        for (size_t r = 0; r < n; r++)
            if (words[r * (size_t)ma + (size_t)ma - 1] < 0) {
                st = sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                  "quantize: descriptor %zu has non-finite distances", r);
                break;
            }
    free(head);
    free(bi_own);
    free(job.bd);
    free(xnorm);
    return st;
}

sf_status sf_asmk_codebook_quantize_with(const sf_asmk_codebook *cb, const float *desc,
                                         size_t n, int ma, sf_asmk_quant_method method,
                                         int32_t *words, sf_error *err)
{
    if (ma < 1 || (size_t)ma > cb->k)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "quantize: %d nearest words asked of a %zu-word codebook", ma, cb->k);
    if (method != SF_ASMK_QUANT_AUTO && method != SF_ASMK_QUANT_SGEMM &&
        method != SF_ASMK_QUANT_SCREEN)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "quantize: method %d",
                            (int)method);
    if (method == SF_ASMK_QUANT_SCREEN && !cb->screen)
        return sf_error_set(err, SF_ERR_UNSUPPORTED,
                            "quantize: no int8 screen here (it needs AVX512-VNNI, and sgemm "
                            "sums in dimension order up to 256 dimensions)");
    if (n == 0)
        return SF_OK;
    if (method != SF_ASMK_QUANT_SGEMM && cb->screen) {
        sf_status st = sf_quant_screen_run(cb->screen, cb->centroids, cb->norms, desc, n, ma,
                                           words, err);
        if (st != SF_ERR_UNSUPPORTED)
            return st;
    }
    return quantize_sgemm(cb, desc, n, ma, words, err);
}

sf_status sf_asmk_codebook_quantize(const sf_asmk_codebook *cb, const float *desc, size_t n,
                                    int ma, int32_t *words, sf_error *err)
{
    return sf_asmk_codebook_quantize_with(cb, desc, n, ma, SF_ASMK_QUANT_AUTO, words, err);
}

/* ---- Aggregation ---- */

size_t sf_asmk_packed_size(size_t dim)
{
    return (dim + 31) / 32;
}

void sf_asmk_pack_signs(const float *v, size_t dim, uint32_t *out)
{
    size_t n = sf_asmk_packed_size(dim);
    for (size_t t = 0; t < n; t++) {
        uint32_t w = 0;
        for (size_t b = 0; b < 32; b++) {
            size_t i = t * 32 + b;
            if (i < dim && v[i] > 0.0f)
                w |= UINT32_C(1) << (31 - b);
        }
        out[t] = w;
    }
}

void sf_asmk_agg_release(sf_asmk_agg *agg)
{
    if (!agg)
        return;
    free(agg->words);
    free(agg->packed);
    free(agg->vectors);
    memset(agg, 0, sizeof *agg);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

sf_status sf_asmk_aggregate(const sf_asmk_codebook *cb, const float *desc, size_t n,
                            const int32_t *words, int ma, int binary, sf_asmk_agg *out,
                            sf_error *err)
{
    memset(out, 0, sizeof *out);
    out->dim = cb->dim;
    out->binary = binary != 0;
    if (ma < 1)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "aggregate: %d words per descriptor",
                            ma);
    if (n > UINT32_MAX)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "aggregate: %zu descriptors in one image", n);
    size_t n_pairs = sf_mul_size(n, (size_t)ma);
    if (n == 0)
        return SF_OK;
    if (!n_pairs || n_pairs > SIZE_MAX / sizeof(uint64_t))
        return sf_error_set(err, SF_ERR_TOO_LARGE, "aggregate: %zu x %d assignments", n, ma);

    /* (word, descriptor) pairs sorted by word, then by descriptor: each
     * word's residuals are then summed in descriptor order. */
    uint64_t *pairs = malloc(n_pairs * sizeof *pairs);
    float *acc = malloc(cb->dim * sizeof *acc);
    if (!pairs || !acc) {
        free(pairs);
        free(acc);
        return sf_error_set(err, SF_ERR_NOMEM, "aggregate: out of memory");
    }
    for (size_t i = 0; i < n_pairs; i++) {
        int32_t w = words[i];
        if (w < 0 || (size_t)w >= cb->k) {
            free(pairs);
            free(acc);
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                "aggregate: descriptor %zu has word %ld outside 0..%zu",
                                i / (size_t)ma, (long)w, cb->k - 1);
        }
        pairs[i] = ((uint64_t)(uint32_t)w << 32) | (uint64_t)(i / (size_t)ma);
    }
    qsort(pairs, n_pairs, sizeof *pairs, cmp_u64);
    size_t n_words = 0;
    for (size_t i = 0; i < n_pairs; i++)
        n_words += i == 0 || (pairs[i] >> 32) != (pairs[i - 1] >> 32);

    const size_t dim = cb->dim;
    const size_t np = sf_asmk_packed_size(dim);
    out->words = malloc(n_words * sizeof *out->words);
    if (out->binary)
        out->packed = malloc(sf_mul_size(n_words, np) * sizeof *out->packed);
    else
        out->vectors = malloc(sf_mul_size(n_words, dim) * sizeof *out->vectors);
    if (!out->words || (out->binary ? !out->packed : !out->vectors)) {
        free(pairs);
        free(acc);
        sf_asmk_agg_release(out);
        return sf_error_set(err, SF_ERR_NOMEM, "aggregate: out of memory for %zu words",
                            n_words);
    }

    size_t row = 0;
    for (size_t i = 0; i < n_pairs;) {
        uint32_t w = (uint32_t)(pairs[i] >> 32);
        const float *c = cb->centroids + (size_t)w * dim;
        memset(acc, 0, dim * sizeof *acc);
        for (; i < n_pairs && (uint32_t)(pairs[i] >> 32) == w; i++) {
            if (i > 0 && pairs[i] == pairs[i - 1])
                continue; /* the same word twice for one descriptor */
            const float *x = desc + (size_t)(uint32_t)pairs[i] * dim;
            for (size_t d = 0; d < dim; d++)
                acc[d] += x[d] - c[d];
        }
        out->words[row] = (int32_t)w;
        if (out->binary) {
            sf_asmk_pack_signs(acc, dim, out->packed + row * np);
        } else {
            double s = 0.0;
            for (size_t d = 0; d < dim; d++)
                s += (double)acc[d] * acc[d];
            /* float32 like the reference: (|R| + 1e-6) rounded, then divided */
            float norm = (float)sqrt(s) + 1e-6f;
            float *v = out->vectors + row * dim;
            for (size_t d = 0; d < dim; d++)
                v[d] = acc[d] / norm;
        }
        row++;
    }
    out->n = n_words;
    free(pairs);
    free(acc);
    return SF_OK;
}

/* ---- Scoring kernels ---- */

/* Everything per word in float32, then divided by sqrt(norm) in float64
 * and rounded back, as the reference's in-place numpy division does. */
static inline void add_score(double *scores, const double *norm_sqrt, uint32_t m, float u,
                             float idf, const sf_asmk_params *params)
{
    if (!(u >= params->similarity_threshold))
        return;
    float s = powf(u, params->alpha) * idf;
    scores[m] += (double)(float)((double)s / norm_sqrt[m]);
}

void sf_asmk_score_word_binary(const uint32_t *qvec, const uint32_t *vecs,
                               const uint32_t *image_ids, size_t count, size_t n_u32,
                               float idf, const double *norm_sqrt,
                               const sf_asmk_params *params, double *scores)
{
    const float bits = (float)(32 * n_u32);
    for (size_t e = 0; e < count; e++) {
        const uint32_t *v = vecs + e * n_u32;
        unsigned h = 0;
        size_t t = 0;
        for (; t + 1 < n_u32; t += 2) {
            uint64_t x = ((uint64_t)(qvec[t] ^ v[t]) << 32) | (qvec[t + 1] ^ v[t + 1]);
            h += (unsigned)__builtin_popcountll(x);
        }
        if (t < n_u32)
            h += (unsigned)__builtin_popcount(qvec[t] ^ v[t]);
        float u = 1.0f - 2.0f * ((float)h / bits);
        add_score(scores, norm_sqrt, image_ids[e], u, idf, params);
    }
}

void sf_asmk_score_word_float(const float *qvec, const float *vecs, const uint32_t *image_ids,
                              size_t count, size_t dim, float idf, const double *norm_sqrt,
                              const sf_asmk_params *params, double *scores)
{
    for (size_t e = 0; e < count; e++) {
        const float *v = vecs + e * dim;
        float u = 0.0f;
        for (size_t d = 0; d < dim; d++)
            u += qvec[d] * v[d];
        add_score(scores, norm_sqrt, image_ids[e], u, idf, params);
    }
}

/* ---- Inverted file ---- */

sf_status sf_asmk_ivf_create(const float *centroids, size_t k, size_t dim,
                             const sf_asmk_params *params, sf_asmk_ivf **out, sf_error *err)
{
    *out = NULL;
    sf_asmk_params p;
    if (params)
        p = *params;
    else
        sf_asmk_params_default(&p);
    if (!isfinite(p.alpha) || isnan(p.similarity_threshold))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "ivf: alpha %g and threshold %g must be numbers", (double)p.alpha,
                            (double)p.similarity_threshold);
    p.binary = p.binary != 0;
    p.use_idf = p.use_idf != 0;

    sf_asmk_ivf *ivf = calloc(1, sizeof *ivf);
    if (!ivf)
        return sf_error_set(err, SF_ERR_NOMEM, "ivf: out of memory");
    sf_status st = sf_asmk_codebook_create(centroids, k, dim, &ivf->codebook, err);
    if (st != SF_OK) {
        free(ivf);
        return st;
    }
    ivf->params = p;
    ivf->vec_bytes = p.binary ? sf_asmk_packed_size(dim) * sizeof(uint32_t) : dim * sizeof(float);
    ivf->lists = calloc(k, sizeof *ivf->lists);
    ivf->idf = malloc(k * sizeof *ivf->idf);
    if (!ivf->lists || !ivf->idf) {
        sf_asmk_ivf_free(ivf);
        return sf_error_set(err, SF_ERR_NOMEM, "ivf: out of memory for %zu words", k);
    }
    for (size_t w = 0; w < k; w++)
        ivf->idf[w] = 1.0f;
    ivf->finalized = 1; /* an empty index is ready to search */
    *out = ivf;
    return SF_OK;
}

void sf_asmk_ivf_free(sf_asmk_ivf *ivf)
{
    if (!ivf)
        return;
    if (ivf->lists)
        for (size_t w = 0; w < ivf->codebook->k; w++) {
            free(ivf->lists[w].image_ids);
            free(ivf->lists[w].vecs);
        }
    sf_asmk_codebook_free(ivf->codebook);
    free(ivf->lists);
    free(ivf->idf);
    free(ivf->added);
    free(ivf->norm);
    free(ivf->norm_sqrt);
    free(ivf);
}

const sf_asmk_codebook *sf_asmk_ivf_codebook(const sf_asmk_ivf *ivf) { return ivf->codebook; }
const sf_asmk_params *sf_asmk_ivf_params(const sf_asmk_ivf *ivf) { return &ivf->params; }
size_t sf_asmk_ivf_n_images(const sf_asmk_ivf *ivf) { return ivf->n_images; }
const float *sf_asmk_ivf_idf(const sf_asmk_ivf *ivf) { return ivf->idf; }
const double *sf_asmk_ivf_norm_factor(const sf_asmk_ivf *ivf) { return ivf->norm; }

/* Room for one more entry in a word's list.  On failure the list is
 * unchanged (an enlarged id array alone is harmless). */
static int list_reserve(struct ivf_list *l, size_t vec_bytes)
{
    if (l->count < l->cap)
        return 1;
    size_t c = l->cap ? l->cap * 2 : 4;
    if (c > SIZE_MAX / vec_bytes || c > SIZE_MAX / sizeof(uint32_t))
        return 0;
    uint32_t *ids = realloc(l->image_ids, c * sizeof *ids);
    if (!ids)
        return 0;
    l->image_ids = ids;
    unsigned char *v = realloc(l->vecs, c * vec_bytes);
    if (!v)
        return 0;
    l->vecs = v;
    l->cap = c;
    return 1;
}

/* Per-image arrays cover ids 0..need-1. */
static int grow_images(sf_asmk_ivf *ivf, size_t need)
{
    if (need <= ivf->image_cap)
        return 1;
    size_t c = ivf->image_cap ? ivf->image_cap : 16;
    while (c < need)
        c = c > SIZE_MAX / 2 ? need : c * 2;
    if (c > SIZE_MAX / sizeof(double))
        return 0;
    unsigned char *a = realloc(ivf->added, c);
    if (!a)
        return 0;
    ivf->added = a;
    memset(a + ivf->image_cap, 0, c - ivf->image_cap);
    double *nm = realloc(ivf->norm, c * sizeof *nm);
    if (!nm)
        return 0;
    ivf->norm = nm;
    double *ns = realloc(ivf->norm_sqrt, c * sizeof *ns);
    if (!ns)
        return 0;
    ivf->norm_sqrt = ns;
    for (size_t i = ivf->image_cap; i < c; i++)
        nm[i] = ns[i] = 0.0;
    ivf->image_cap = c;
    return 1;
}

static sf_status check_agg(const sf_asmk_ivf *ivf, const sf_asmk_agg *agg, const char *what,
                           sf_error *err)
{
    if (agg->n == 0)
        return SF_OK;
    if (agg->dim != ivf->codebook->dim || (agg->binary != 0) != ivf->params.binary)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: %s vectors of dimension %zu given to a %s index of dimension %zu",
                            what, agg->binary ? "binary" : "float", agg->dim,
                            ivf->params.binary ? "binary" : "float", ivf->codebook->dim);
    for (size_t i = 0; i < agg->n; i++)
        if (agg->words[i] < 0 || (size_t)agg->words[i] >= ivf->codebook->k)
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                "%s: vector %zu has word %ld outside 0..%zu", what, i,
                                (long)agg->words[i], ivf->codebook->k - 1);
    return SF_OK;
}

sf_status sf_asmk_ivf_add(sf_asmk_ivf *ivf, uint32_t image_id, const sf_asmk_agg *agg,
                          sf_error *err)
{
    if (image_id == UINT32_MAX)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "ivf: image id %lu is too large",
                            (unsigned long)image_id);
    sf_status st = check_agg(ivf, agg, "ivf add", err);
    if (st != SF_OK)
        return st;
    if (image_id < ivf->n_images && ivf->added[image_id])
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "ivf: image %lu was already added",
                            (unsigned long)image_id);
    /* One entry per (image, word): idf counts images through list lengths. */
    for (size_t i = 1; i < agg->n; i++)
        if (agg->words[i] <= agg->words[i - 1])
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                "ivf: image %lu: words must be strictly ascending (%ld after %ld)",
                                (unsigned long)image_id, (long)agg->words[i],
                                (long)agg->words[i - 1]);
    /* Reserve everything first so that a failure leaves the index as it was. */
    if (!grow_images(ivf, (size_t)image_id + 1))
        return sf_error_set(err, SF_ERR_NOMEM, "ivf: out of memory for image %lu",
                            (unsigned long)image_id);
    for (size_t i = 0; i < agg->n; i++)
        if (!list_reserve(&ivf->lists[agg->words[i]], ivf->vec_bytes))
            return sf_error_set(err, SF_ERR_NOMEM, "ivf: out of memory for image %lu",
                                (unsigned long)image_id);
    for (size_t i = 0; i < agg->n; i++) {
        struct ivf_list *l = &ivf->lists[agg->words[i]];
        const void *src = agg->binary
                              ? (const void *)(agg->packed + i * sf_asmk_packed_size(agg->dim))
                              : (const void *)(agg->vectors + i * agg->dim);
        l->image_ids[l->count] = image_id;
        memcpy(l->vecs + l->count * ivf->vec_bytes, src, ivf->vec_bytes);
        l->count++;
    }
    ivf->added[image_id] = 1;
    if ((size_t)image_id + 1 > ivf->n_images)
        ivf->n_images = (size_t)image_id + 1;
    ivf->finalized = 0;
    return SF_OK;
}

sf_status sf_asmk_quantize_aggregate(const sf_asmk_codebook *cb, const float *desc, size_t n,
                                     int ma, int binary, sf_asmk_agg *out, sf_error *err)
{
    memset(out, 0, sizeof *out);
    if (ma < 1)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "quantize: %d words per descriptor", ma);
    size_t total = sf_mul_size(n, (size_t)ma);
    if (n != 0 && total == 0)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "quantize: %zu descriptors", n);
    int32_t *words = malloc((total ? total : 1) * sizeof *words);
    if (!words)
        return sf_error_set(err, SF_ERR_NOMEM, "quantize: out of memory for %zu descriptors", n);
    sf_status st = sf_asmk_codebook_quantize(cb, desc, n, ma, words, err);
    if (st == SF_OK)
        st = sf_asmk_aggregate(cb, desc, n, words, ma, binary, out, err);
    free(words);
    return st;
}

sf_status sf_asmk_ivf_add_descriptors(sf_asmk_ivf *ivf, uint32_t image_id, const float *desc,
                                      size_t n, int ma, sf_error *err)
{
    sf_asmk_agg agg;
    sf_status st = sf_asmk_quantize_aggregate(ivf->codebook, desc, n, ma, ivf->params.binary,
                                              &agg, err);
    if (st == SF_OK)
        st = sf_asmk_ivf_add(ivf, image_id, &agg, err);
    sf_asmk_agg_release(&agg);
    return st;
}

sf_status sf_asmk_ivf_finalize(sf_asmk_ivf *ivf, sf_error *err)
{
    (void)err;
    const size_t k = ivf->codebook->k;
    for (size_t w = 0; w < k; w++) {
        size_t c = ivf->lists[w].count;
        if (ivf->params.use_idf && c > 0) {
            double l = log((double)ivf->n_images / (double)c);
            ivf->idf[w] = (float)(l * l);
        } else {
            ivf->idf[w] = 1.0f;
        }
    }
    for (size_t m = 0; m < ivf->n_images; m++)
        ivf->norm[m] = 0.0;
    for (size_t w = 0; w < k; w++) {
        const struct ivf_list *l = &ivf->lists[w];
        double add = ivf->params.use_idf ? (double)ivf->idf[w] : 1.0;
        for (size_t e = 0; e < l->count; e++)
            ivf->norm[l->image_ids[e]] += add;
    }
    for (size_t m = 0; m < ivf->n_images; m++)
        ivf->norm_sqrt[m] = sqrt(ivf->norm[m]);
    ivf->finalized = 1;
    return SF_OK;
}

sf_status sf_asmk_ivf_word(const sf_asmk_ivf *ivf, size_t word, const uint32_t **image_ids,
                           const void **vecs, size_t *count, sf_error *err)
{
    if (word >= ivf->codebook->k)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "ivf: word %zu outside 0..%zu", word,
                            ivf->codebook->k - 1);
    const struct ivf_list *l = &ivf->lists[word];
    *image_ids = l->image_ids;
    *vecs = l->vecs;
    *count = l->count;
    return SF_OK;
}

sf_status sf_asmk_ivf_search(const sf_asmk_ivf *ivf, const sf_asmk_agg *query, double *scores,
                             sf_error *err)
{
    if (!ivf->finalized)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "ivf: images were added since the last sf_asmk_ivf_finalize");
    sf_status st = check_agg(ivf, query, "ivf search", err);
    if (st != SF_OK)
        return st;
    for (size_t m = 0; m < ivf->n_images; m++)
        scores[m] = 0.0;
    const size_t np = sf_asmk_packed_size(ivf->codebook->dim);
    double q_norm = 0.0;
    for (size_t i = 0; i < query->n; i++) {
        size_t w = (size_t)query->words[i];
        const struct ivf_list *l = &ivf->lists[w];
        q_norm += ivf->idf[w];
        if (l->count == 0)
            continue;
        if (ivf->params.binary)
            sf_asmk_score_word_binary(query->packed + i * np, (const uint32_t *)l->vecs,
                                      l->image_ids, l->count, np, ivf->idf[w], ivf->norm_sqrt,
                                      &ivf->params, scores);
        else
            sf_asmk_score_word_float(query->vectors + i * query->dim, (const float *)l->vecs,
                                     l->image_ids, l->count, query->dim, ivf->idf[w],
                                     ivf->norm_sqrt, &ivf->params, scores);
    }
    if (q_norm > 0.0) {
        double s = sqrt(q_norm);
        for (size_t m = 0; m < ivf->n_images; m++)
            scores[m] /= s;
    }
    return SF_OK;
}

sf_status sf_asmk_ivf_search_descriptors(const sf_asmk_ivf *ivf, const float *desc, size_t n,
                                         int ma, double *scores, sf_error *err)
{
    sf_asmk_agg agg;
    sf_status st = sf_asmk_quantize_aggregate(ivf->codebook, desc, n, ma, ivf->params.binary,
                                              &agg, err);
    if (st == SF_OK)
        st = sf_asmk_ivf_search(ivf, &agg, scores, err);
    sf_asmk_agg_release(&agg);
    return st;
}

/* ---- Ranking ---- */

struct scored {
    double score;
    uint32_t id;
};

static int cmp_scored(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    int xn = isnan(x->score), yn = isnan(y->score);
    if (xn != yn)
        return xn - yn;
    if (!xn && x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

sf_status sf_asmk_rank(const double *scores, size_t n, uint32_t *order, sf_error *err)
{
    if (n > (size_t)UINT32_MAX + 1)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "rank: %zu scores", n);
    if (n == 0)
        return SF_OK;
    struct scored *s = malloc(n * sizeof *s);
    if (!s)
        return sf_error_set(err, SF_ERR_NOMEM, "rank: out of memory for %zu scores", n);
    for (size_t i = 0; i < n; i++) {
        s[i].score = scores[i];
        s[i].id = (uint32_t)i;
    }
    qsort(s, n, sizeof *s, cmp_scored);
    for (size_t i = 0; i < n; i++)
        order[i] = s[i].id;
    free(s);
    return SF_OK;
}
