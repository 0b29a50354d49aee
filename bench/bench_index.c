/* Benchmark of the on-disk ASMK index with synthetic data of realistic
 * shape, generated directly in aggregated form (quantising 10^9
 * descriptors against 65536 words would take hours and measure the
 * codebook, not the index).
 *
 *   bench_index build INDEX N [--batch B] [--idf] [--vectors V] [--seed S]
 *       N images of V aggregated vectors (default 800: 1000 descriptors,
 *       ma 1, minus repeated words), added B at a time (one commit each,
 *       default 100000), then compacted.
 *   bench_index query INDEX [--queries Q] [--words W] [--threads T] [--top K]
 *       Q queries (default 20) of W aggregated vectors (default 3000:
 *       1000 descriptors with ma 5, minus repeats); prints ms per query.
 *   bench_index add INDEX N [--vectors V]
 *       The nightly update: lock and open an index, add N more images, commit.
 *   bench_index quantize [--k K] [--no-baseline]
 *       The query side before the index: quantising descriptors of
 *       dimension 128 (1000, 10 and 1 at a time) to their nearest 1 or 5
 *       of K words (default 65536), in ms per 1000 descriptors, by the
 *       sgemm path (old) and the default (new: the int8 screen where the
 *       CPU has AVX512-VNNI) in the same run with their ratio, and
 *       against the scalar quantiser libsf had before (the baseline,
 *       single threaded, about 3 s in all at K = 65536); then 1000
 *       descriptors quantised (ma 5) and aggregated.
 *
 * Visual words follow p(w) ~ 1/(rank + 1000)^0.5 over 65536 words in a
 * shuffled order: an imbalance factor k * sum p^2 of 1.34 (the most used
 * word 4.6 times the mean), the upper end of what k-means codebooks of
 * real descriptors show, so that the long lists of frequent words weigh on
 * the query time as they do in practice (a query visits about
 * words x images x vectors x 1.34 / k entries).  Database and query words
 * are drawn from it; vectors are random bits. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "index_internal.h" /* ix_searcher_skip_checks: links libsf_core */
#include "sf_asmk.h"
#include "sf_index.h"
#include "sf_search.h"
#include "sf_stream.h"

#define K 65536
#define DIM 128
#define NP 4

static uint64_t rng = 1;
static uint64_t next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Walker's alias table over the K words. */
static double alias_prob[K];
static uint32_t alias_other[K];

static double setup_words(void)
{
    static double p[K];
    static uint32_t perm[K];
    double sum = 0, sq = 0;
    for (int w = 0; w < K; w++)
        perm[w] = (uint32_t)w;
    uint64_t keep = rng;
    rng = 12345;
    for (int w = K - 1; w > 0; w--) {
        uint32_t j = (uint32_t)(next() % (uint64_t)(w + 1));
        uint32_t t = perm[w];
        perm[w] = perm[j];
        perm[j] = t;
    }
    rng = keep;
    for (int r = 0; r < K; r++) {
        p[perm[r]] = 1.0 / pow(r + 1000.0, 0.5);
        sum += p[perm[r]];
    }
    static uint32_t small[K], large[K];
    int ns = 0, nl = 0;
    double scaled[K];
    for (int w = 0; w < K; w++) {
        p[w] /= sum;
        sq += p[w] * p[w];
        scaled[w] = p[w] * K;
        if (scaled[w] < 1)
            small[ns++] = (uint32_t)w;
        else
            large[nl++] = (uint32_t)w;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], l = large[--nl];
        alias_prob[s] = scaled[s];
        alias_other[s] = l;
        scaled[l] -= 1 - scaled[s];
        if (scaled[l] < 1)
            small[ns++] = l;
        else
            large[nl++] = l;
    }
    while (nl)
        alias_prob[large[--nl]] = 1;
    while (ns)
        alias_prob[small[--ns]] = 1;
    return K * sq;
}

static uint32_t draw_word(void)
{
    uint64_t r = next();
    uint32_t w = (uint32_t)(r & (K - 1));
    double u = (double)(r >> 16) / (double)(UINT64_C(1) << 48);
    return u < alias_prob[w] ? w : alias_other[w];
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* n distinct words drawn from p, ascending, with random vectors. */
static void make_agg(sf_asmk_agg *a, size_t n, uint32_t *stamp, uint32_t tag)
{
    a->n = n;
    a->dim = DIM;
    a->binary = 1;
    size_t got = 0;
    while (got < n) {
        uint32_t w = draw_word();
        if (stamp[w] == tag)
            continue;
        stamp[w] = tag;
        a->words[got++] = (int32_t)w;
    }
    qsort(a->words, n, sizeof *a->words, cmp_i32);
    for (size_t i = 0; i < n * NP; i += 2) {
        uint64_t r = next();
        a->packed[i] = (uint32_t)r;
        a->packed[i + 1] = (uint32_t)(r >> 32);
    }
}

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

static int flag(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

static int die(const char *what, const sf_error *err)
{
    fprintf(stderr, "bench_index: %s: %s\n", what, err->message);
    return 1;
}

static int build(int argc, char **argv)
{
    const char *path = argv[2];
    long n = atol(argv[3]);
    long batch = atol(opt(argc, argv, "--batch", "100000"));
    size_t vectors = (size_t)atol(opt(argc, argv, "--vectors", "800"));
    rng = (uint64_t)atol(opt(argc, argv, "--seed", "1"));
    double imbalance = setup_words();
    sf_index_params p;
    sf_index_params_default(&p);
    p.asmk.use_idf = flag(argc, argv, "--idf");
    sf_index_codebook_id cb = { K, DIM, 0xbe7c4b00cULL };
    sf_error err;
    unlink(path);
    if (sf_index_create(path, &p, &cb, NULL, &err) != SF_OK)
        return die("create", &err);
    uint32_t *stamp = calloc(K, sizeof *stamp);
    sf_asmk_agg a;
    memset(&a, 0, sizeof a);
    a.words = malloc(vectors * sizeof *a.words);
    a.packed = malloc(vectors * NP * sizeof *a.packed);
    double gen = 0, t0 = now();
    for (long b0 = 0; b0 < n; b0 += batch) {
        sf_index_writer *w;
        if (sf_index_writer_open(path, &cb, NULL, &w, &err) != SF_OK)
            return die("open", &err);
        for (long m = b0; m < n && m < b0 + batch; m++) {
            double g0 = now();
            make_agg(&a, vectors, stamp, (uint32_t)m + 1);
            gen += now() - g0;
            char key[32];
            snprintf(key, sizeof key, "photos/%08ld.jpg", m);
            if (sf_index_writer_add(w, key, &a, NULL, &err) != SF_OK)
                return die("add", &err);
        }
        if (sf_index_writer_commit(w, &err) != SF_OK)
            return die("commit", &err);
        sf_index_writer_free(w);
    }
    double t1 = now();
    sf_index *idx;
    sf_index_info info;
    if (sf_index_open(path, &idx, &err) != SF_OK || sf_index_get_info(idx, &info, &err) != SF_OK)
        return die("open", &err);
    sf_index_close(idx);
    double t2 = now();
    sf_index_writer *w;
    if (sf_index_writer_open(path, NULL, NULL, &w, &err) != SF_OK ||
        sf_index_writer_compact(w, &err) != SF_OK)
        return die("compact", &err);
    sf_index_writer_free(w);
    double t3 = now();
    sf_index_info cinfo;
    if (sf_index_open(path, &idx, &err) != SF_OK || sf_index_get_info(idx, &cinfo, &err) != SF_OK)
        return die("open", &err);
    sf_index_close(idx);
    printf("build: %ld images x %zu vectors (word imbalance %.2f), %s, batches of %ld\n", n,
           vectors, imbalance, p.asmk.use_idf ? "idf" : "no idf", batch);
    printf("build: add+commit %.1f s (%.1f s of it generating data), %zu segments, %llu bytes\n",
           t1 - t0 - gen, gen, info.n_segments, (unsigned long long)info.bytes);
    printf("build: compact %.1f s -> %llu bytes, %.0f bytes per image\n", t3 - t2,
           (unsigned long long)cinfo.bytes, (double)cinfo.bytes / (double)n);
    free(stamp);
    free(a.words);
    free(a.packed);
    return 0;
}

static int add(int argc, char **argv)
{
    const char *path = argv[2];
    long n = atol(argv[3]);
    size_t vectors = (size_t)atol(opt(argc, argv, "--vectors", "800"));
    rng = (uint64_t)time(NULL);
    setup_words();
    sf_index_codebook_id cb = { K, DIM, 0xbe7c4b00cULL };
    sf_error err;
    uint32_t *stamp = calloc(K, sizeof *stamp);
    sf_asmk_agg a;
    memset(&a, 0, sizeof a);
    a.words = malloc(vectors * sizeof *a.words);
    a.packed = malloc(vectors * NP * sizeof *a.packed);
    double gen = 0, t0 = now();
    sf_index_writer *w;
    if (sf_index_writer_open(path, &cb, NULL, &w, &err) != SF_OK)
        return die("open", &err);
    double t1 = now();
    size_t before = sf_index_writer_n_images(w);
    for (long m = 0; m < n; m++) {
        double g0 = now();
        make_agg(&a, vectors, stamp, (uint32_t)m + 1);
        gen += now() - g0;
        char key[48];
        snprintf(key, sizeof key, "nightly/%ld-%08ld.jpg", (long)rng, m);
        if (sf_index_writer_add(w, key, &a, NULL, &err) != SF_OK)
            return die("add", &err);
    }
    double t2 = now();
    if (sf_index_writer_commit(w, &err) != SF_OK)
        return die("commit", &err);
    double t3 = now();
    sf_index_writer_free(w);
    printf("add: %zu images + %ld: writer open %.2f s, staging %.2f s, commit %.2f s\n", before,
           n, t1 - t0, t2 - t1 - gen, t3 - t2);
    free(stamp);
    free(a.words);
    free(a.packed);
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int query(int argc, char **argv)
{
    const char *path = argv[2];
    int nq = atoi(opt(argc, argv, "--queries", "20"));
    size_t words = (size_t)atol(opt(argc, argv, "--words", "3000"));
    int threads = atoi(opt(argc, argv, "--threads", "0"));
    size_t top = (size_t)atol(opt(argc, argv, "--top", "100"));
    rng = 777;
    setup_words();
    sf_error err;
    double t0 = now();
    sf_index *idx;
    if (sf_index_open(path, &idx, &err) != SF_OK)
        return die("open", &err);
    double t_open = now() - t0;
    sf_index_search_options o;
    sf_index_search_options_default(&o);
    o.threads = threads;
    o.tile = (size_t)atol(opt(argc, argv, "--tile", "0"));
    sf_index_searcher *s;
    const sf_index *sh[1] = { idx };
    if (sf_index_searcher_create(sh, 1, &o, &s, &err) != SF_OK)
        return die("searcher", &err);
    uint32_t *stamp = calloc(K, sizeof *stamp);
    sf_asmk_agg a;
    memset(&a, 0, sizeof a);
    a.words = malloc(words * sizeof *a.words);
    a.packed = malloc(words * NP * sizeof *a.packed);
    sf_index_hit *hits = malloc(top * sizeof *hits);
    double *ms = malloc((size_t)nq * sizeof *ms), first = 0;
    int same = flag(argc, argv, "--same"); /* one query again and again: cached lists */
    /* Also time scoring only this many random images with each query, as
     * global-mode re-ranking does. */
    size_t n_sub = (size_t)atol(opt(argc, argv, "--rerank", "0"));
    size_t *sub_ids = malloc((n_sub ? n_sub : 1) * sizeof *sub_ids);
    double *sub_scores = malloc((n_sub ? n_sub : 1) * sizeof *sub_scores);
    double *sub_ms = malloc((size_t)nq * sizeof *sub_ms);
    for (int q = -1; q < nq; q++) {
        if (!same || q < 0)
            make_agg(&a, words, stamp, (uint32_t)q + 2);
        size_t n_hits;
        double q0 = now();
        if (sf_index_searcher_search(s, &a, top, hits, &n_hits, &err) != SF_OK)
            return die("search", &err);
        double t = 1000 * (now() - q0);
        if (q < 0)
            first = t;
        else
            ms[q] = t;
        if (n_sub && q >= 0) {
            for (size_t i = 0; i < n_sub; i++)
                sub_ids[i] = (size_t)(next() % sf_index_n_ids(idx));
            q0 = now();
            if (sf_index_searcher_scores_subset(s, &a, sub_ids, n_sub, sub_scores, &err) != SF_OK)
                return die("subset", &err);
            sub_ms[q] = 1000 * (now() - q0);
        }
    }
    if (n_sub) {
        qsort(sub_ms, (size_t)nq, sizeof *sub_ms, cmp_d);
        printf("rerank: %zu random images scored alone: median %.2f ms, min %.2f ms\n", n_sub,
               sub_ms[nq / 2], sub_ms[0]);
    }
    free(sub_ids);
    free(sub_scores);
    free(sub_ms);
    qsort(ms, (size_t)nq, sizeof *ms, cmp_d);
    double mean = 0;
    for (int q = 0; q < nq; q++)
        mean += ms[q] / nq;
    printf("query: %zu images, open %.1f ms, first query %.1f ms, then over %d queries of %zu "
           "words: median %.2f ms, mean %.2f ms, min %.2f ms (threads %d)\n",
           sf_index_n_images(idx), 1000 * t_open, first, nq, words, ms[nq / 2], mean, ms[0],
           threads);
    sf_index_searcher_free(s);
    sf_index_close(idx);
    free(stamp);
    free(a.words);
    free(a.packed);
    free(hits);
    free(ms);
    return 0;
}

/* What checking lists against their sums costs: each query searched by a
 * searcher that skips the checks, by one that checks each list when it
 * first reads it (a long-running process), and by a fresh one (every list
 * checked: a process's first query), in turns, the order rotating. */
static int checks(int argc, char **argv)
{
    const char *path = argv[2];
    int nq = atoi(opt(argc, argv, "--queries", "20"));
    size_t words = (size_t)atol(opt(argc, argv, "--words", "3000"));
    int threads = atoi(opt(argc, argv, "--threads", "0"));
    const size_t top = 100;
    rng = 777;
    setup_words();
    sf_error err;
    sf_index *idx;
    if (sf_index_open(path, &idx, &err) != SF_OK)
        return die("open", &err);
    sf_index_search_options o;
    sf_index_search_options_default(&o);
    o.threads = threads;
    const sf_index *sh[1] = { idx };
    sf_index_searcher *unchecked, *checked;
    if (sf_index_searcher_create(sh, 1, &o, &unchecked, &err) != SF_OK ||
        sf_index_searcher_create(sh, 1, &o, &checked, &err) != SF_OK)
        return die("searcher", &err);
    ix_searcher_skip_checks(unchecked, 1);
    uint32_t *stamp = calloc(K, sizeof *stamp);
    sf_asmk_agg a;
    memset(&a, 0, sizeof a);
    a.words = malloc(words * sizeof *a.words);
    a.packed = malloc(words * NP * sizeof *a.packed);
    sf_index_hit *hits = malloc(top * sizeof *hits);
    double *ms[3];
    for (int m = 0; m < 3; m++)
        ms[m] = malloc((size_t)nq * sizeof *ms[m]);
    for (int q = -1; q < nq; q++) {
        make_agg(&a, words, stamp, (uint32_t)q + 2);
        sf_index_searcher *cold;
        if (sf_index_searcher_create(sh, 1, &o, &cold, &err) != SF_OK)
            return die("searcher", &err);
        sf_index_searcher *order[3] = { unchecked, checked, cold };
        for (int i = 0; i < 3; i++) { /* who goes first (cache) rotates */
            int m = (i + q + 3) % 3;
            size_t n_hits;
            double q0 = now();
            if (sf_index_searcher_search(order[m], &a, top, hits, &n_hits, &err) != SF_OK)
                return die("search", &err);
            if (q >= 0)
                ms[m][q] = 1000 * (now() - q0);
        }
        sf_index_searcher_free(cold);
    }
    const char *name[3] = { "unchecked", "checked once per searcher", "checked, fresh searcher" };
    double med[3];
    for (int m = 0; m < 3; m++) {
        qsort(ms[m], (size_t)nq, sizeof *ms[m], cmp_d);
        med[m] = ms[m][nq / 2];
        printf("checks: %-27s median %.2f ms, min %.2f ms, ratio %.3f\n", name[m], med[m],
               ms[m][0], med[m] / med[0]);
        free(ms[m]);
    }
    printf("checks: %zu images, %d queries of %zu words, the three in turns (threads %d)\n",
           sf_index_n_images(idx), nq, words, threads);
    sf_index_searcher_free(unchecked);
    sf_index_searcher_free(checked);
    sf_index_close(idx);
    free(stamp);
    free(a.words);
    free(a.packed);
    free(hits);
    return 0;
}

/* The scalar quantiser libsf had before its sgemm one, kept as the
 * baseline the new times are compared with: blocks of 64 descriptors
 * against panels of 64 centroids, each dot product summed in dimension
 * order. */
#define OLD_PANEL 64
#define OLD_ROWS 64

static void old_keep(float *dist, int32_t *ids, int ma, float d, int32_t id)
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

static void old_panel_dots(const float *const x[4], const float *panel, size_t dim,
                           float acc[4][OLD_PANEL])
{
    memset(acc, 0, 4 * OLD_PANEL * sizeof(float));
    for (size_t d = 0; d < dim; d++) {
        const float *c = panel + d * OLD_PANEL;
        const float a0 = x[0][d], a1 = x[1][d], a2 = x[2][d], a3 = x[3][d];
        for (int j = 0; j < OLD_PANEL; j++) {
            acc[0][j] += a0 * c[j];
            acc[1][j] += a1 * c[j];
            acc[2][j] += a2 * c[j];
            acc[3][j] += a3 * c[j];
        }
    }
}

/* Norms and panels are the codebook's, built once (not timed). */
static void old_quantize(const float *panels, const float *norms, size_t k, size_t dim,
                         const float *desc, size_t n, int ma, int32_t *words)
{
    float best[OLD_ROWS * 8], acc[4][OLD_PANEL], xnorm[OLD_ROWS];
    const size_t n_panels = (k + OLD_PANEL - 1) / OLD_PANEL;
    for (size_t r0 = 0; r0 < n; r0 += OLD_ROWS) {
        size_t rows = n - r0 < OLD_ROWS ? n - r0 : OLD_ROWS;
        for (size_t r = 0; r < rows; r++) {
            const float *x = desc + (r0 + r) * dim;
            float s = 0.0f;
            for (size_t d = 0; d < dim; d++)
                s += x[d] * x[d];
            xnorm[r] = s;
            for (int m = 0; m < ma; m++) {
                best[r * (size_t)ma + (size_t)m] = INFINITY;
                words[(r0 + r) * (size_t)ma + (size_t)m] = -1;
            }
        }
        for (size_t p = 0; p < n_panels; p++) {
            const float *panel = panels + p * OLD_PANEL * dim;
            size_t j0 = p * OLD_PANEL;
            size_t cols = k - j0 < OLD_PANEL ? k - j0 : OLD_PANEL;
            for (size_t r = 0; r < rows; r += 4) {
                size_t nr = rows - r < 4 ? rows - r : 4;
                const float *x[4];
                for (size_t i = 0; i < 4; i++)
                    x[i] = desc + (r0 + r + (i < nr ? i : nr - 1)) * dim;
                old_panel_dots(x, panel, dim, acc);
                for (size_t i = 0; i < nr; i++)
                    for (size_t j = 0; j < cols; j++) {
                        float dd = xnorm[r + i] + norms[j0 + j] - 2.0f * acc[i][j];
                        if (dd < 0.0f)
                            dd = 0.0f;
                        old_keep(best + (r + i) * (size_t)ma, words + (r0 + r + i) * (size_t)ma,
                                 ma, dd, (int32_t)(j0 + j));
                    }
            }
        }
    }
}

/* Best of reps runs of the library's quantiser by a method, in seconds. */
static double time_quantize(const sf_asmk_codebook *cb, const float *x, size_t n, int ma,
                            sf_asmk_quant_method method, int32_t *words, int reps)
{
    double best = INFINITY;
    sf_error err;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (sf_asmk_codebook_quantize_with(cb, x, n, ma, method, words, &err) != SF_OK) {
            die("quantize", &err);
            exit(1);
        }
        double t = now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

static int quantize(int argc, char **argv)
{
    size_t k = (size_t)atol(opt(argc, argv, "--k", "65536")), n = 1000;
    int with_old = !flag(argc, argv, "--no-baseline");
    float *c = malloc(k * DIM * sizeof *c), *x = malloc(n * DIM * sizeof *x);
    for (size_t i = 0; i < k * DIM; i++)
        c[i] = (float)((double)(next() >> 11) / 9007199254740992.0 - 0.5);
    for (size_t i = 0; i < n * DIM; i++)
        x[i] = (float)((double)(next() >> 11) / 9007199254740992.0 - 0.5);
    sf_asmk_codebook *cb;
    sf_error err;
    if (sf_asmk_codebook_create(c, k, DIM, &cb, &err) != SF_OK)
        return die("codebook", &err);
    const size_t n_panels = (k + OLD_PANEL - 1) / OLD_PANEL;
    float *panels = calloc(n_panels * OLD_PANEL * DIM, sizeof *panels);
    float *norms = malloc(k * sizeof *norms);
    for (size_t j = 0; j < k; j++) {
        float s = 0.0f;
        for (size_t d = 0; d < DIM; d++) {
            s += c[j * DIM + d] * c[j * DIM + d];
            panels[(j / OLD_PANEL) * OLD_PANEL * DIM + d * OLD_PANEL + j % OLD_PANEL] =
                c[j * DIM + d];
        }
        norms[j] = s;
    }
    int32_t *w_new = malloc(n * 5 * sizeof *w_new), *w_old = malloc(n * 5 * sizeof *w_old);
    int32_t *w_sgemm = malloc(n * 5 * sizeof *w_sgemm);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int32_t probe;
    int screened = sf_asmk_codebook_quantize_with(cb, x, 1, 1, SF_ASMK_QUANT_SCREEN, &probe,
                                                  &err) == SF_OK;
    printf("quantize: descriptors of dimension 128 against %zu words, %ld cores, best of "
           "several runs, in ms per 1000 descriptors; old: sgemm on every word, new: %s\n", k,
           cores, screened ? "int8 screen (AVX512-VNNI) + exact re-check"
                           : "the same (no int8 screen on this CPU)");
    static const size_t sizes[] = { 1000, 10, 1 };
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t m = sizes[si];
        for (int ma = 1; ma <= 5; ma += 4) {
            /* Old and new alternate, so that both see the same machine. */
            double t = INFINITY, t_sgemm = INFINITY;
            for (int rep = 0; rep < 3; rep++) {
                double a = time_quantize(cb, x, m, ma, SF_ASMK_QUANT_SGEMM, w_sgemm,
                                         m < 1000 ? 7 : 1);
                double b = time_quantize(cb, x, m, ma, SF_ASMK_QUANT_AUTO, w_new,
                                         m < 1000 ? 7 : 1);
                t_sgemm = a < t_sgemm ? a : t_sgemm;
                t = b < t ? b : t;
            }
            size_t same = 0;
            for (size_t i = 0; i < m * (size_t)ma; i++)
                same += w_new[i] == w_sgemm[i];
            printf("quantize: %4zu descriptors, ma %d: old %7.1f ms, new %7.1f ms, new/old "
                   "%.3f (%7.2f ms a call); %zu of %zu words the same", m, ma,
                   1e6 * t_sgemm / (double)m, 1e6 * t / (double)m, t / t_sgemm, 1e3 * t,
                   same, m * (size_t)ma);
            if (with_old) {
                double told = INFINITY;
                for (int r = 0; r < (m < 1000 ? 20 : 2); r++) {
                    double t0 = now();
                    old_quantize(panels, norms, k, DIM, x, m, ma, w_old);
                    double t1 = now() - t0;
                    told = t1 < told ? t1 : told;
                }
                size_t diff = 0;
                for (size_t i = 0; i < m * (size_t)ma; i++)
                    diff += w_new[i] != w_old[i];
                printf("; scalar baseline %7.1f ms, scalar/new %5.1f; %zu of %zu words differ",
                       1e6 * told / (double)m, told / t, diff, m * (size_t)ma);
            }
            printf("\n");
        }
    }
    /* What a query costs before its search: best of three. */
    double best = INFINITY;
    size_t n_vectors = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        sf_asmk_agg a;
        if (sf_asmk_quantize_aggregate(cb, x, n, 5, 1, &a, &err) != SF_OK)
            return die("quantize", &err);
        double t = now() - t0;
        best = t < best ? t : best;
        n_vectors = a.n;
        sf_asmk_agg_release(&a);
    }
    printf("quantize: 1000 descriptors, 5 nearest of %zu words, aggregated to %zu vectors: "
           "%.1f ms\n", k, n_vectors, 1000 * best);
    sf_asmk_codebook_free(cb);
    free(panels);
    free(norms);
    free(w_new);
    free(w_old);
    free(w_sgemm);
    free(c);
    free(x);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A normalised random global descriptor. */
static void random_global(float *g, size_t dim)
{
    double n = 0;
    for (size_t t = 0; t < dim; t++) {
        g[t] = (float)((double)(next() >> 11) / 9007199254740992.0 - 0.5);
        n += (double)g[t] * g[t];
    }
    for (size_t t = 0; t < dim; t++)
        g[t] = (float)(g[t] / sqrt(n));
}

/* The global first stage: an index holding N global descriptors (and no
 * lists) against the stream form it replaces, both measured here: reading
 * the stream of N global records into a matrix (what every run of
 * sf-match --global DB does), its scan per query, and the index's scan of
 * its mapped global parts. */
static int global_bench(int argc, char **argv)
{
    const char *path = argv[2];
    size_t n = (size_t)atol(argv[3]);
    size_t dim = (size_t)atol(opt(argc, argv, "--dim", "128"));
    int nq = atoi(opt(argc, argv, "--queries", "20"));
    size_t top = (size_t)atol(opt(argc, argv, "--top", "100"));
    rng = 7;
    char sfs[4200];
    snprintf(sfs, sizeof sfs, "%s.sfs", path);
    sf_error err;
    sf_index_params p;
    sf_index_params_default(&p);
    sf_index_codebook_id cb = { K, DIM, 1 };
    float *g = malloc(dim * sizeof *g);
    FILE *fp = fopen(sfs, "wb");
    sf_index_writer *w = NULL;
    unlink(path);
    if (!g || !fp || sf_index_create(path, &p, &cb, NULL, &err) != SF_OK ||
        sf_index_writer_open(path, &cb, NULL, &w, &err) != SF_OK) {
        fprintf(stderr, "global: setup: %s\n", err.message);
        return 1;
    }
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "img%08zu", i);
        random_global(g, dim);
        sf_asmk_agg agg = { 0, DIM, 1, NULL, NULL, NULL };
        uint64_t shape[1] = { dim };
        sf_record rec;
        sf_record_make(&rec, key, SF_KIND_GLOBAL, SF_DTYPE_F32, 1, shape, g);
        if (sf_index_writer_add_global(w, key, &agg, g, dim, NULL, &err) != SF_OK ||
            sf_stream_write_image(fp, &rec, 1, &err) != SF_OK) {
            fprintf(stderr, "global: %s\n", err.message);
            return 1;
        }
    }
    if (sf_index_writer_commit(w, &err) != SF_OK ||
        sf_stream_write_end(fp, "bench_index", n, &err) != SF_OK || fclose(fp) != 0) {
        fprintf(stderr, "global: %s\n", err.message);
        return 1;
    }
    sf_index_writer_free(w);
    printf("global: %zu images of %zu-d written to the index and a stream in %.1f s\n", n, dim,
           now() - t0);

    /* Queries: random descriptors, each one record of an image. */
    float *qg = malloc((size_t)nq * dim * sizeof *qg);
    sf_record *qrec = malloc((size_t)nq * sizeof *qrec);
    sf_stream_image *qimg = calloc((size_t)nq, sizeof *qimg);
    for (int q = 0; q < nq; q++) {
        uint64_t shape[1] = { dim };
        random_global(qg + (size_t)q * dim, dim);
        sf_record_make(&qrec[q], "query", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, shape,
                       qg + (size_t)q * dim);
        qimg[q].key = "query";
        qimg[q].key_len = 5;
        qimg[q].recs = &qrec[q];
        qimg[q].count = 1;
    }
    sf_search_options so;
    sf_search_options_default(&so);
    so.top_k = top;
    double *ms = malloc((size_t)nq * sizeof *ms);

    /* Baseline: the stream form, as sf-match --global DB runs it. */
    t0 = now();
    sf_search_db *db = NULL;
    sf_stream_reader *r = NULL;
    fp = fopen(sfs, "rb");
    if (!fp || sf_search_db_create(SF_SEARCH_GLOBAL, &so, &db, &err) != SF_OK ||
        sf_stream_reader_create(&r, fp, sfs, &err) != SF_OK) {
        fprintf(stderr, "global: %s\n", err.message);
        return 1;
    }
    const sf_stream_image *img;
    while (sf_stream_read_image(r, &img, &err) == SF_OK && img)
        if (sf_search_db_add(db, img, &err) != SF_OK) {
            fprintf(stderr, "global: %s\n", err.message);
            return 1;
        }
    sf_stream_reader_free(r);
    fclose(fp);
    double load = now() - t0;
    sf_search_result *res = calloc((size_t)nq, sizeof *res);
    for (int q = 0; q < nq; q++) {
        sf_search_result_init(&res[q]);
        t0 = now();
        if (sf_search_global(db, &qimg[q], &so, &res[q], &err) != SF_OK) {
            fprintf(stderr, "global: %s\n", err.message);
            return 1;
        }
        ms[q] = 1e3 * (now() - t0);
    }
    qsort(ms, (size_t)nq, sizeof *ms, cmp_double);
    double base_ms = ms[nq / 2];
    printf("global stream form: load %.0f ms per run (read the stream, build the matrix), "
           "then median %.2f ms per query (%d queries, top %zu)\n",
           1e3 * load, base_ms, nq, top);
    sf_search_db_free(db);

    /* The index: open, first query (checks the global parts), then warm. */
    sf_index *x = NULL;
    sf_search_result ir;
    sf_search_result_init(&ir);
    int same = 1;
    double first = 0, best_ms[2] = { 0, 0 };
    for (int threads = 0; threads <= 1; threads++) {
        sf_index_close(x);
        x = NULL;
        t0 = now();
        if (sf_index_open(path, &x, &err) != SF_OK) {
            fprintf(stderr, "global: %s\n", err.message);
            return 1;
        }
        for (int q = -1; q < nq; q++) {
            double t1 = now();
            int qq = q < 0 ? 0 : q;
            if (sf_search_global_index(x, &qimg[qq], &so, threads, &ir, &err) != SF_OK) {
                fprintf(stderr, "global: %s\n", err.message);
                return 1;
            }
            if (q < 0) {
                if (threads == 0)
                    first = 1e3 * (now() - t0);
                continue;
            }
            ms[q] = 1e3 * (now() - t1);
            /* The rankings must be the stream form's, bit for bit. */
            const sf_hit_list *a = &res[q].hits, *b = &ir.hits;
            if (a->count != b->count)
                same = 0;
            for (size_t i = 0; same && i < a->count; i++)
                if (a->scores[i] != b->scores[i] || strcmp(a->keys[i], b->keys[i]) != 0)
                    same = 0;
        }
        qsort(ms, (size_t)nq, sizeof *ms, cmp_double);
        best_ms[threads] = ms[nq / 2];
    }
    printf("global index: open + first query %.0f ms (checks the global parts once per "
           "process), then median %.2f ms per query (%s threads), %.2f ms (1 thread)\n",
           first, best_ms[0], "default", best_ms[1]);
    printf("global first stage at %zu: index %.2f ms per query vs stream form %.2f ms per "
           "query + %.0f ms per run; scan %.2fx, first query of a run %.1fx; rankings %s\n",
           n, best_ms[0], base_ms, 1e3 * load, base_ms / best_ms[0],
           (1e3 * load + base_ms) / first, same ? "identical" : "DIFFERENT");
    sf_index_close(x);
    sf_search_result_release(&ir);
    for (int q = 0; q < nq; q++)
        sf_search_result_release(&res[q]);
    free(res);
    free(ms);
    free(qg);
    free(qrec);
    free(qimg);
    free(g);
    unlink(sfs);
    unlink(path);
    return same ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "global") == 0)
        return global_bench(argc, argv);
    if (argc >= 4 && strcmp(argv[1], "build") == 0)
        return build(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "checks") == 0)
        return checks(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "query") == 0)
        return query(argc, argv);
    if (argc >= 4 && strcmp(argv[1], "add") == 0)
        return add(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "quantize") == 0)
        return quantize(argc, argv);
    fprintf(stderr, "usage: bench_index build INDEX N [--batch B] [--idf] [--vectors V]\n"
                    "       bench_index query INDEX [--queries Q] [--words W] [--threads T]\n"
                    "                         [--top K] [--same] [--rerank N]\n"
                    "       bench_index checks INDEX [--queries Q] [--words W] [--threads T]\n"
                    "       bench_index add INDEX N [--vectors V]\n"
                    "       bench_index quantize [--k K] [--no-baseline]\n"
                    "       bench_index global INDEX N [--dim D] [--queries Q] [--top K]\n");
    return 2;
}
