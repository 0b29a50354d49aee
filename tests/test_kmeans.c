/* k-means, the training-set sampler and the codebook file, on synthetic
 * data: recovery of well-separated blobs, monotone inertia, determinism
 * (per seed, across thread counts), empty clusters, the blocked distances
 * against a plain double-precision search, and the file's round trip and
 * corruptions.
 *
 * `test_kmeans --write-stream FILE [IMAGES [ROWS [DIM [CENTRES [SIGMA]]]]]
 * [noscale] [huge]` writes a feature stream of synthetic local_desc (and
 * local_scale) records for the shell tests and the bench of sf-codebook;
 * `huge` scales the descriptors up to 3e38, finite values whose squared
 * norms overflow float32. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Inline: the test re-seals a header without linking libxxhash itself. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "sf.h"
#include "testutil.h"

/* A small deterministic generator for the data (not the library's). */
static uint64_t lcg_state;

static void lcg_seed(uint64_t s)
{
    lcg_state = s * 2862933555777941757ULL + 3037000493ULL;
}

static double uniform(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) * (1.0 / 9007199254740992.0);
}

static double gaussian(void)
{
    double u = uniform(), v = uniform();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static float *alloc_floats(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(99);
    }
    return p;
}

/* n points around `blobs` centres (uniform in [-10, 10]^d, Gaussian spread
 * sigma), blob of point i = i % blobs.  centres: blobs x d. */
static float *make_blobs(size_t n, size_t d, size_t blobs, double sigma, float *centres)
{
    for (size_t b = 0; b < blobs * d; b++)
        centres[b] = (float)(20.0 * uniform() - 10.0);
    float *x = alloc_floats(n * d);
    for (size_t i = 0; i < n; i++)
        for (size_t t = 0; t < d; t++)
            x[i * d + t] = centres[(i % blobs) * d + t] + (float)(sigma * gaussian());
    return x;
}

static double dist2(const float *a, const float *b, size_t d)
{
    double s = 0;
    for (size_t t = 0; t < d; t++) {
        double e = (double)a[t] - b[t];
        s += e * e;
    }
    return s;
}

/* Largest over the points of the distance to the nearest centroid. */
static double worst_nearest(const float *pts, size_t np, const float *c, size_t k, size_t d)
{
    double worst = 0;
    for (size_t i = 0; i < np; i++) {
        double best = INFINITY;
        for (size_t j = 0; j < k; j++) {
            double e = dist2(pts + i * d, c + j * d, d);
            best = e < best ? e : best;
        }
        worst = best > worst ? best : worst;
    }
    return sqrt(worst);
}

static int all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

typedef struct trace {
    double inertia[64];
    int calls, last;
} trace;

static void record_progress(void *ctx, int iteration, double inertia)
{
    trace *t = ctx;
    if (t->calls < 64)
        t->inertia[t->calls] = inertia;
    t->calls++;
    t->last = iteration;
}

/* ---- k-means ---- */

static void test_blobs(void)
{
    enum { D = 24, BLOBS = 6, K = 24, N = 6000 };
    float centres[BLOBS * D];
    lcg_seed(1);
    float *x = make_blobs(N, D, BLOBS, 0.05, centres);
    float *c = alloc_floats((size_t)K * D);
    sf_error err;
    double inertia = -1;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        sf_status st = sf_kmeans_train(x, N, D, K, 15, seed, NULL, c, &inertia, &err);
        CHECK(st == SF_OK, "blobs seed %llu: %s", (unsigned long long)seed, err.message);
        /* Every true centre has a centroid near it, and every centroid
         * sits in a blob: within a few sigma, where blobs are ~50 apart. */
        double miss = worst_nearest(centres, BLOBS, c, K, D);
        double stray = worst_nearest(c, K, centres, BLOBS, D);
        CHECK(miss < 0.3, "seed %llu: a true centre is %g from the nearest centroid",
              (unsigned long long)seed, miss);
        CHECK(stray < 0.5, "seed %llu: a centroid is %g from every true centre",
              (unsigned long long)seed, stray);
        CHECK(inertia > 0 && inertia < 1.2 * N * D * 0.05 * 0.05,
              "seed %llu: inertia %g, the noise alone gives about %g", (unsigned long long)seed,
              inertia, (double)N * D * 0.05 * 0.05);
    }
    /* k = the number of blobs: an exact recovery when the seeds fall in
     * every blob.  Try seeds until one does (deterministic: the first
     * good one is always the same). */
    int recovered = 0;
    for (uint64_t seed = 0; seed < 50 && !recovered; seed++) {
        sf_status st = sf_kmeans_train(x, N, D, BLOBS, 10, seed, NULL, c, &inertia, &err);
        CHECK(st == SF_OK, "%s", err.message);
        recovered = worst_nearest(centres, BLOBS, c, BLOBS, D) < 0.01;
    }
    CHECK(recovered, "no seed of 50 recovers the %d blob centres with k = %d", BLOBS, BLOBS);
    free(x);
    free(c);
}

static void test_monotone_and_deterministic(void)
{
    enum { D = 8, K = 60, N = 5000, IT = 15 };
    lcg_seed(2);
    float *x = alloc_floats((size_t)N * D);
    for (size_t i = 0; i < (size_t)N * D; i++)
        x[i] = (float)uniform();
    float *c1 = alloc_floats((size_t)K * D), *c2 = alloc_floats((size_t)K * D);
    sf_error err;
    trace tr = { 0 };
    sf_kmeans_options opt = { .threads = 1, .progress = record_progress, .progress_ctx = &tr };
    double in1 = -1, in2 = -2;
    CHECK(sf_kmeans_train(x, N, D, K, IT, 42, &opt, c1, &in1, &err) == SF_OK, "%s",
          err.message);
    CHECK(tr.calls == IT + 1 && tr.last == IT, "progress called %d times, last iteration %d",
          tr.calls, tr.last);
    CHECK(tr.calls > 0 && tr.inertia[tr.calls - 1] == in1,
          "the last progress call reports the final inertia");
    int increases = 0;
    for (int i = 1; i < tr.calls && i < 64; i++)
        if (tr.inertia[i] > tr.inertia[i - 1] * (1 + 1e-7))
            increases++;
    CHECK(increases == 0, "inertia increased %d times", increases);
    CHECK(tr.inertia[IT] < 0.8 * tr.inertia[0], "inertia %g -> %g: Lloyd did little",
          tr.inertia[0], tr.inertia[IT]);

    /* Same seed: the same bytes, whatever the thread count. */
    for (int threads = 1; threads <= 3; threads++) {
        sf_kmeans_options o = { .threads = threads };
        CHECK(sf_kmeans_train(x, N, D, K, IT, 42, &o, c2, &in2, &err) == SF_OK, "%s",
              err.message);
        CHECK(memcmp(c1, c2, sizeof(float) * K * D) == 0 && in1 == in2,
              "seed 42 with %d threads gives other centroids (inertia %.17g vs %.17g)", threads,
              in2, in1);
    }
    CHECK(sf_kmeans_train(x, N, D, K, IT, 43, NULL, c2, &in2, &err) == SF_OK, "%s", err.message);
    CHECK(memcmp(c1, c2, sizeof(float) * K * D) != 0, "seeds 42 and 43 give the same centroids");

    /* Zero iterations: the seeds are k distinct rows of x. */
    CHECK(sf_kmeans_train(x, N, D, K, 0, 42, NULL, c2, &in2, &err) == SF_OK, "%s", err.message);
    int rows_ok = 1, distinct = 1;
    for (size_t j = 0; j < K; j++) {
        int found = 0;
        for (size_t i = 0; i < N && !found; i++)
            found = memcmp(c2 + j * D, x + i * D, sizeof(float) * D) == 0;
        rows_ok &= found;
        for (size_t j2 = 0; j2 < j; j2++)
            distinct &= memcmp(c2 + j * D, c2 + j2 * D, sizeof(float) * D) != 0;
    }
    CHECK(rows_ok, "initial centroids are rows of the data");
    CHECK(distinct, "initial centroids are distinct rows");
    free(x);
    free(c1);
    free(c2);
}

static void test_empty_clusters(void)
{
    sf_error err;
    double inertia;
    /* 32 distinct points, each twice, and k = 32: random seeds repeat some
     * points and miss others, so clusters go empty; only splitting lets
     * every point get its centroid. */
    enum { D = 6, P = 32, N = 2 * P, K = 32 };
    lcg_seed(3);
    float pts[P * D], x[N * D], c[K * D];
    for (size_t i = 0; i < P * D; i++)
        pts[i] = (float)(uniform() * 4 - 2);
    for (size_t i = 0; i < N; i++)
        memcpy(x + i * D, pts + (i % P) * D, sizeof(float) * D);
    int exercised = 0;
    for (uint64_t seed = 0; seed < 5; seed++) {
        trace tr = { 0 };
        sf_kmeans_options opt = { .progress = record_progress, .progress_ctx = &tr };
        CHECK(sf_kmeans_train(x, N, D, K, 20, seed, &opt, c, &inertia, &err) == SF_OK, "%s",
              err.message);
        exercised += tr.inertia[0] > 0; /* some point had no seed of its own */
        CHECK(all_finite(c, K * D), "seed %llu: non-finite centroids", (unsigned long long)seed);
        double miss = worst_nearest(pts, P, c, K, D);
        CHECK(miss < 1e-3, "seed %llu: a point is %g from every centroid (initial inertia %g, "
                           "final %g)", (unsigned long long)seed, miss, tr.inertia[0], inertia);
        CHECK(inertia < 1e-3, "seed %llu: final inertia %g", (unsigned long long)seed, inertia);
    }
    CHECK(exercised >= 3, "only %d of 5 seeds started with empty clusters", exercised);

    /* k = n with 10 points each twice: 10 clusters must stay empty (no
     * cluster can be split); the centroids stay finite. */
    enum { P2 = 10, N2 = 20 };
    float x2[N2 * D], c2[N2 * D];
    for (size_t i = 0; i < N2; i++)
        memcpy(x2 + i * D, pts + (i % P2) * D, sizeof(float) * D);
    CHECK(sf_kmeans_train(x2, N2, D, N2, 5, 7, NULL, c2, &inertia, &err) == SF_OK, "%s",
          err.message);
    CHECK(all_finite(c2, N2 * D), "k = n with duplicates: non-finite centroids");
    CHECK(worst_nearest(pts, P2, c2, N2, D) < 1e-6 && inertia < 1e-4,
          "k = n with duplicates: points left out (inertia %g)", inertia);

    /* All rows equal. */
    float same[12 * D], c3[5 * D];
    for (size_t i = 0; i < 12; i++)
        memcpy(same + i * D, pts, sizeof(float) * D);
    CHECK(sf_kmeans_train(same, 12, D, 5, 3, 1, NULL, c3, &inertia, &err) == SF_OK, "%s",
          err.message);
    CHECK(all_finite(c3, 5 * D) && worst_nearest(c3, 5, pts, 1, D) < 1e-6,
          "identical rows: centroids moved away");
}

static void test_arguments(void)
{
    float x[8] = { 0, 1, 2, 3, 4, 5, 6, 7 }, c[8];
    sf_error err;
    CHECK(sf_kmeans_train(x, 4, 2, 5, 3, 0, NULL, c, NULL, &err) == SF_ERR_INVALID_ARGUMENT,
          "k > n is refused");
    CHECK(strstr(err.message, "4 training vectors for 5 centroids") != NULL, "message: %s",
          err.message);
    CHECK(sf_kmeans_train(x, 4, 2, 0, 3, 0, NULL, c, NULL, &err) == SF_ERR_INVALID_ARGUMENT,
          "k = 0 is refused");
    CHECK(sf_kmeans_train(x, 4, 0, 2, 3, 0, NULL, c, NULL, &err) == SF_ERR_INVALID_ARGUMENT,
          "d = 0 is refused");
    CHECK(sf_kmeans_train(x, 4, 2, 2, -1, 0, NULL, c, NULL, &err) == SF_ERR_INVALID_ARGUMENT,
          "negative iterations are refused");
    x[5] = NAN;
    CHECK(sf_kmeans_train(x, 4, 2, 2, 3, 0, NULL, c, NULL, &err) == SF_ERR_INVALID_ARGUMENT,
          "NaN data is refused");
    x[5] = 5;
    CHECK(sf_kmeans_train(x, 4, 2, 4, 3, 0, NULL, c, NULL, &err) == SF_OK, "k = n: %s",
          err.message);
}

/* The blocked float32 sgemm search against a plain double one.  Sizes span
 * several row and centroid blocks, with partial ones, and an odd d. */
static void test_blocked_distances(void)
{
    enum { N = 2600, K = 4500, D = 37 };
    lcg_seed(4);
    float *x = alloc_floats((size_t)N * D), *c = alloc_floats((size_t)K * D);
    for (size_t i = 0; i < (size_t)N * D; i++)
        x[i] = (float)(2 * uniform() - 1);
    for (size_t i = 0; i < (size_t)K * D; i++)
        c[i] = (float)(2 * uniform() - 1);
    int32_t *a1 = malloc(N * sizeof *a1), *a3 = malloc(N * sizeof *a3);
    float *d1 = alloc_floats(N), *d3 = alloc_floats(N);
    sf_error err;
    CHECK(sf_kmeans_assign(x, N, D, c, K, 1, a1, d1, &err) == SF_OK, "%s", err.message);
    CHECK(sf_kmeans_assign(x, N, D, c, K, 3, a3, d3, &err) == SF_OK, "%s", err.message);
    CHECK(memcmp(a1, a3, N * sizeof *a1) == 0 && memcmp(d1, d3, N * sizeof *d1) == 0,
          "1 and 3 threads disagree");
    size_t differ = 0, bad = 0;
    double worst_dist = 0;
    for (size_t i = 0; i < N; i++) {
        double best = INFINITY;
        size_t at = 0;
        for (size_t j = 0; j < K; j++) {
            double e = dist2(x + i * D, c + j * D, D);
            if (e < best) {
                best = e;
                at = j;
            }
        }
        double rel = fabs(d1[i] - best) / (best > 1 ? best : 1);
        worst_dist = rel > worst_dist ? rel : worst_dist;
        if ((size_t)a1[i] != at) {
            differ++;
            /* Allowed only for a tie within float32 rounding. */
            double other = dist2(x + i * D, c + (size_t)a1[i] * D, D);
            if (a1[i] < 0 || a1[i] >= K || other - best > 1e-5 * (best > 1 ? best : 1))
                bad++;
        }
    }
    CHECK(bad == 0, "%zu of %d rows have a wrong nearest centroid", bad, N);
    CHECK(differ <= 2, "%zu rows differ from double precision, all near-ties", differ);
    CHECK(worst_dist < 1e-5, "distances differ from double precision by %g relative",
          worst_dist);
    printf("blocked distances: %zu of %d argmins differ from double precision (near-ties); "
           "worst distance error %.2g relative\n", differ, N, worst_dist);

    /* Equal centroids: the lower index wins. */
    float two[2 * D];
    memcpy(two, c, sizeof(float) * D);
    memcpy(two + D, c, sizeof(float) * D);
    CHECK(sf_kmeans_assign(x, 10, D, two, 2, 1, a1, NULL, &err) == SF_OK, "%s", err.message);
    int low = 1;
    for (int i = 0; i < 10; i++)
        low &= a1[i] == 0;
    CHECK(low, "ties go to the lower index");
    free(x);
    free(c);
    free(a1);
    free(a3);
    free(d1);
    free(d3);
}

/* ---- Sampler ---- */

static void test_sampler(void)
{
    enum { D = 3, TOTAL = 100000, MAX = 1000 };
    float *rows = alloc_floats((size_t)TOTAL * D);
    for (size_t i = 0; i < TOTAL; i++)
        for (size_t t = 0; t < D; t++)
            rows[i * D + t] = (float)i;
    sf_kmeans_sampler *s, *s2;
    sf_error err;
    size_t n;
    CHECK(sf_kmeans_sampler_create(MAX, D, 5, &s, &err) == SF_OK, "%s", err.message);
    CHECK(sf_kmeans_sampler_add(s, rows, 700, &err) == SF_OK, "%s", err.message);
    const float *got = sf_kmeans_sampler_rows(s, &n);
    CHECK(n == 700 && memcmp(got, rows, 700 * D * sizeof(float)) == 0,
          "below the limit every row is kept in order");
    CHECK(sf_kmeans_sampler_add(s, rows + 700 * D, TOTAL - 700, &err) == SF_OK, "%s",
          err.message);
    got = sf_kmeans_sampler_rows(s, &n);
    CHECK(n == MAX && sf_kmeans_sampler_seen(s) == TOTAL, "%zu rows kept of %llu", n,
          (unsigned long long)sf_kmeans_sampler_seen(s));
    double mean = 0;
    size_t first_half = 0;
    int whole = 1;
    unsigned char *hit = calloc(TOTAL, 1);
    int dup = 0;
    for (size_t i = 0; i < n; i++) {
        float v = got[i * D];
        whole &= got[i * D + 1] == v && got[i * D + 2] == v && v >= 0 && v < TOTAL;
        mean += v / (double)n;
        first_half += v < TOTAL / 2;
        if (v >= 0 && v < TOTAL) {
            dup |= hit[(size_t)v];
            hit[(size_t)v] = 1;
        }
    }
    free(hit);
    CHECK(whole && !dup, "sampled rows are whole input rows, each once");
    CHECK(fabs(mean - TOTAL / 2.0) < 0.05 * TOTAL, "mean sampled position %g of %d", mean,
          TOTAL);
    CHECK(first_half > 420 && first_half < 580, "%zu of %d from the first half", first_half,
          MAX);

    /* The same rows in other chunks, same seed: the same sample. */
    CHECK(sf_kmeans_sampler_create(MAX, D, 5, &s2, &err) == SF_OK, "%s", err.message);
    for (size_t i = 0; i < TOTAL; i += 333)
        sf_kmeans_sampler_add(s2, rows + i * D, TOTAL - i < 333 ? TOTAL - i : 333, &err);
    size_t n2;
    const float *got2 = sf_kmeans_sampler_rows(s2, &n2);
    CHECK(n2 == n && memcmp(got, got2, n * D * sizeof(float)) == 0,
          "chunking changes the sample");
    sf_kmeans_sampler_free(s2);
    CHECK(sf_kmeans_sampler_create(MAX, D, 6, &s2, &err) == SF_OK, "%s", err.message);
    sf_kmeans_sampler_add(s2, rows, TOTAL, &err);
    got2 = sf_kmeans_sampler_rows(s2, &n2);
    CHECK(memcmp(got, got2, n * D * sizeof(float)) != 0, "seeds 5 and 6 give the same sample");
    CHECK(sf_kmeans_sampler_dim(s2) == D, "dim");
    sf_kmeans_sampler_free(s2);
    sf_kmeans_sampler_free(s);
    sf_kmeans_sampler_free(NULL);
    CHECK(sf_kmeans_sampler_create(0, D, 5, &s, &err) == SF_ERR_INVALID_ARGUMENT && !s,
          "an empty sample is refused");
    free(rows);
}

/* An image of the stream as sf-lit writes it: rows x d local_desc, and
 * local_scale when scales is not NULL. */
typedef struct test_image {
    sf_record recs[2];
    sf_stream_image img;
} test_image;

static const sf_stream_image *make_image(test_image *t, const char *key, const float *desc,
                                         size_t rows, size_t d, const float *scales)
{
    memset(t, 0, sizeof *t);
    sf_record *r = &t->recs[0];
    *r = (sf_record){ .kind = SF_KIND_LOCAL_DESC, .dtype = SF_DTYPE_F32, .ndim = 2,
                      .shape = { rows, d }, .key = key, .key_len = strlen(key), .data = desc,
                      .data_size = rows * d * sizeof(float), .scale = 1 };
    t->img.count = 1;
    if (scales) {
        t->recs[1] = *r;
        r = &t->recs[1];
        r->kind = SF_KIND_LOCAL_SCALE;
        r->ndim = 1;
        r->shape[1] = 0;
        r->data = scales;
        r->data_size = rows * sizeof(float);
        t->img.count = 2;
    }
    t->img.key = key;
    t->img.key_len = strlen(key);
    t->img.recs = t->recs;
    return &t->img;
}

/* Images into the sampler: which rows, the scale filter, the dimension
 * set by the first image, and each refusal naming the image. */
static void test_sampler_images(void)
{
    enum { D = 4, ROWS = 6, IMAGES = 50, MAX = 40 };
    /* Scales as sf-lit stores them, with the float32 error of typed ones. */
    const float scales[ROWS] = { 1.0f, 0.5f, 1.0004f, 0.9995f, 2.0f, 1.0f };
    const int kept[ROWS] = { 1, 0, 1, 1, 0, 1 };
    float *desc = alloc_floats((size_t)IMAGES * ROWS * D);
    float *want = alloc_floats((size_t)IMAGES * ROWS * D);
    size_t n_want = 0;
    for (size_t i = 0; i < (size_t)IMAGES * ROWS; i++) {
        for (size_t t = 0; t < D; t++)
            desc[i * D + t] = (float)(i * D + t);
        if (kept[i % ROWS])
            memcpy(want + D * n_want++, desc + i * D, D * sizeof(float));
    }
    sf_kmeans_sampler *s, *all, *ref;
    sf_error err;
    test_image ti;
    CHECK(sf_kmeans_sampler_create(MAX, 0, 9, &s, &err) == SF_OK, "d = 0: %s", err.message);
    CHECK(sf_kmeans_sampler_dim(s) == 0, "no dimension before an image");
    CHECK(sf_kmeans_sampler_add(s, desc, 1, &err) == SF_ERR_INVALID_ARGUMENT,
          "rows taken before the dimension is known");
    CHECK(sf_kmeans_sampler_create(MAX, 0, 9, &all, &err) == SF_OK, "%s", err.message);
    CHECK(sf_kmeans_sampler_create(MAX, D, 9, &ref, &err) == SF_OK, "%s", err.message);
    /* An image without descriptors offers nothing and sets nothing. */
    sf_stream_image none = { .key = "none", .key_len = 4 };
    CHECK(sf_kmeans_sampler_add_image(s, &none, 1, &err) == SF_OK &&
              sf_kmeans_sampler_dim(s) == 0 && sf_kmeans_sampler_seen(s) == 0,
          "an image without local_desc");
    for (int im = 0; im < IMAGES; im++) {
        const float *rows = desc + (size_t)im * ROWS * D;
        CHECK(sf_kmeans_sampler_add_image(s, make_image(&ti, "a", rows, ROWS, D, scales), 1,
                                          &err) == SF_OK, "%s", err.message);
        CHECK(sf_kmeans_sampler_add_image(all, make_image(&ti, "b", rows, ROWS, D, NULL), 0,
                                          &err) == SF_OK, "%s", err.message);
    }
    CHECK(sf_kmeans_sampler_dim(s) == D, "the first image sets d");
    /* The filtered images sample as their kept rows alone. */
    sf_kmeans_sampler_add(ref, want, n_want, &err);
    size_t n, n_ref;
    const float *got = sf_kmeans_sampler_rows(s, &n);
    const float *exp = sf_kmeans_sampler_rows(ref, &n_ref);
    CHECK(sf_kmeans_sampler_seen(s) == n_want && n == MAX && n_ref == MAX &&
              memcmp(got, exp, (size_t)MAX * D * sizeof(float)) == 0,
          "--scale 1: %llu rows seen, %zu wanted; not the sample of the kept rows",
          (unsigned long long)sf_kmeans_sampler_seen(s), n_want);
    CHECK(sf_kmeans_sampler_seen(all) == (uint64_t)IMAGES * ROWS, "scale 0: every row");
    sf_kmeans_sampler_free(all);
    sf_kmeans_sampler_free(ref);

    /* Refusals name the image and add nothing. */
    uint64_t seen = sf_kmeans_sampler_seen(s);
    CHECK(sf_kmeans_sampler_add_image(s, make_image(&ti, "d3", desc, 8, 3, NULL), 0, &err) ==
              SF_ERR_MISMATCH, "another dimension accepted");
    CHECK(strcmp(err.message, "d3: descriptors of dimension 3, the first ones had 4") == 0,
          "%s", err.message);
    CHECK(sf_kmeans_sampler_add_image(s, make_image(&ti, "plain", desc, ROWS, D, NULL), 1,
                                      &err) == SF_ERR_INVALID_DATA, "a filter without scales");
    CHECK(strcmp(err.message, "plain: no local_scale record to filter the descriptors by "
                              "--scale") == 0, "%s", err.message);
    make_image(&ti, "short", desc, ROWS, D, scales);
    ti.recs[1].shape[0] = ROWS - 1;
    ti.recs[1].data_size -= sizeof(float);
    CHECK(sf_kmeans_sampler_add_image(s, &ti.img, 1, &err) == SF_ERR_INVALID_DATA &&
              strcmp(err.message, "short: 5 local_scale values for 6 local_desc rows") == 0,
          "scales of another length: %s", err.message);
    make_image(&ti, "f64", desc, ROWS / 2, D, NULL);
    ti.recs[0].dtype = SF_DTYPE_F64;
    CHECK(sf_kmeans_sampler_add_image(s, &ti.img, 0, &err) == SF_ERR_INVALID_DATA &&
              strcmp(err.message, "f64: local_desc is not a float32 K x d array") == 0,
          "float64 descriptors: %s", err.message);
    CHECK(sf_kmeans_sampler_seen(s) == seen, "a refused image added rows");
    sf_kmeans_sampler_free(s);

    /* The first image's dimension is bounded. */
    CHECK(sf_kmeans_sampler_create(MAX, 0, 9, &s, &err) == SF_OK, "%s", err.message);
    make_image(&ti, "wide", NULL, 0, 0, NULL);
    ti.recs[0].shape[1] = (1 << 20) + 1;
    CHECK(sf_kmeans_sampler_add_image(s, &ti.img, 0, &err) == SF_ERR_TOO_LARGE &&
              sf_kmeans_sampler_dim(s) == 0, "dimension 2^20 + 1 accepted");
    CHECK(strcmp(err.message, "wide: descriptors of dimension 1048577") == 0, "%s",
          err.message);
    sf_kmeans_sampler_free(s);
    free(desc);
    free(want);
}

/* ---- Codebook file ---- */

/* Finite values whose squares overflow float32 (3e38) make every float32
 * distance infinite: k-means refuses them instead of reporting an
 * infinite inertia and centroids no index can use. */
static void test_overflow(void)
{
    enum { N = 64, D = 16, K = 4 };
    float centres[K * D], c[K * D];
    float *x = make_blobs(N, D, K, 0.1, centres);
    double inertia = 0;
    sf_error err;
    int32_t assign[N];
    float dist[N];
    /* Every row huge, as in a stream of 3e38 descriptors. */
    float *huge = alloc_floats(N * D);
    for (size_t i = 0; i < N * D; i++)
        huge[i] = 3e38f * (float)(0.5 + 0.5 * uniform());
    CHECK(sf_kmeans_train(huge, N, D, K, 3, 0, NULL, c, &inertia, &err) == SF_ERR_INVALID_DATA &&
          strstr(err.message, "overflows"), "3e38 rows: %s", err.message);
    /* One row among ordinary ones. */
    x[5 * D + 3] = 3e38f;
    CHECK(sf_kmeans_train(x, N, D, K, 3, 0, NULL, c, &inertia, &err) == SF_ERR_INVALID_DATA &&
          strstr(err.message, "vector 5"), "one huge row: %s", err.message);
    x[5 * D + 3] = 1.0f;
    /* Values below the limit train to a finite inertia. */
    for (size_t i = 0; i < N * D; i++)
        huge[i] = 1e17f * (float)(0.5 + 0.5 * uniform());
    CHECK(sf_kmeans_train(huge, N, D, K, 3, 0, NULL, c, &inertia, &err) == SF_OK &&
          isfinite(inertia) && all_finite(c, K * D), "1e17 rows: %s", err.message);

    /* Assignment: a centroid whose norm overflows, rows whose distances do. */
    CHECK(sf_kmeans_train(x, N, D, K, 3, 0, NULL, c, &inertia, &err) == SF_OK, "%s",
          err.message);
    float saved = c[D + 2];
    c[D + 2] = 3e38f;
    CHECK(sf_kmeans_assign(x, N, D, c, K, 1, assign, dist, &err) == SF_ERR_INVALID_DATA &&
          strstr(err.message, "centroid 1"), "huge centroid: %s", err.message);
    c[D + 2] = saved;
    CHECK(sf_kmeans_assign(x, N, D, c, K, 1, assign, dist, &err) == SF_OK, "%s", err.message);
    x[7 * D] = 3e38f;
    CHECK(sf_kmeans_assign(x, N, D, c, K, 1, assign, dist, &err) == SF_ERR_INVALID_DATA &&
          strstr(err.message, "vector 7"), "huge row, with distances: %s", err.message);
    free(huge);
    free(x);
}

static char tmpdir[4096];

static void write_bytes(const char *path, const void *data, size_t size)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) {
        perror(path);
        exit(99);
    }
}

static sf_status load_bytes(const unsigned char *data, size_t size, sf_error *err)
{
    sf_codebook *cb = NULL;
    sf_status st = sf_codebook_load_buffer(data, size, "cb", &cb, err);
    CHECK((st == SF_OK) == (cb != NULL), "a codebook is returned exactly on success");
    sf_codebook_free(cb);
    return st;
}

static void test_codebook_file(void)
{
    enum { K = 7, D = 5 };
    float c[K * D];
    lcg_seed(5);
    for (size_t i = 0; i < K * D; i++)
        c[i] = (float)gaussian();
    char path[4200];
    snprintf(path, sizeof path, "%s/cb.sfcb", tmpdir);
    sf_codebook_training tr = { .seed = 99, .samples = 123456, .iterations = 10,
                                .inertia = 4321.5 };
    sf_error err;
    CHECK(sf_codebook_write(path, c, K, D, &tr, &err) == SF_OK, "%s", err.message);
    sf_codebook *cb = NULL;
    CHECK(sf_codebook_load(path, &cb, &err) == SF_OK, "%s", err.message);
    if (cb) {
        CHECK(sf_codebook_size(cb) == K && sf_codebook_dim(cb) == D, "k, d");
        CHECK(memcmp(sf_codebook_centroids(cb), c, sizeof c) == 0, "centroids round trip");
        CHECK(((uintptr_t)sf_codebook_centroids(cb) & 63) == 0, "centroids 64-byte aligned");
        CHECK(sf_codebook_checksum(cb) == sf_codebook_checksum_data(c, K, D), "checksum");
        const sf_codebook_training *t = sf_codebook_get_training(cb);
        CHECK(t->seed == 99 && t->samples == 123456 && t->iterations == 10 &&
              t->inertia == 4321.5, "training info round trip");
    }
    sf_codebook_free(cb);
    sf_codebook_free(NULL);

    size_t size;
    unsigned char *file = tu_read_file(NULL, path, &size);
    CHECK(size == SF_CODEBOOK_HEADER_SIZE + sizeof c, "file size %zu", size);
    CHECK(memcmp(file, "SFCODEBK", 8) == 0, "magic");
    CHECK(load_bytes(file, size, &err) == SF_OK, "buffer load: %s", err.message);

    /* Replaced atomically: rewriting leaves no temporary file behind. */
    c[0] += 1;
    CHECK(sf_codebook_write(path, c, K, D, NULL, &err) == SF_OK, "%s", err.message);
    CHECK(sf_codebook_load(path, &cb, &err) == SF_OK && sf_codebook_centroids(cb)[0] == c[0] &&
          sf_codebook_get_training(cb)->samples == 0, "rewrite: %s", err.message);
    sf_codebook_free(cb);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "test \"$(ls '%s' | wc -l)\" -eq 1", tmpdir);
    CHECK(system(cmd) == 0, "a temporary file was left in %s", tmpdir);

    unsigned char *bad = malloc(size + 1);
    /* Bad magic. */
    memcpy(bad, file, size);
    bad[3] ^= 0x20;
    CHECK(load_bytes(bad, size, &err) == SF_ERR_FORMAT && strstr(err.message, "magic"),
          "bad magic: %s", err.message);
    CHECK(load_bytes((const unsigned char *)"#SF-REC\n", 8, &err) == SF_ERR_FORMAT,
          "a stream is not a codebook: %s", err.message);
    /* Unknown version. */
    memcpy(bad, file, size);
    bad[8] = 2;
    CHECK(load_bytes(bad, size, &err) == SF_ERR_VERSION && strstr(err.message, "version 2"),
          "version 2: %s", err.message);
    /* Truncated anywhere. */
    size_t cuts[] = { 0, 4, 8, 11, 64, 127, 128, 129, size - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        sf_status st = load_bytes(file, cuts[i], &err);
        CHECK(st == SF_ERR_TRUNCATED, "cut at %zu: status %d: %s", cuts[i], (int)st,
              err.message);
    }
    /* A byte too many. */
    memcpy(bad, file, size);
    bad[size] = 0;
    CHECK(load_bytes(bad, size + 1, &err) == SF_ERR_FORMAT && strstr(err.message, "should be"),
          "trailing byte: %s", err.message);
    /* A flipped bit in the header or the data. */
    memcpy(bad, file, size);
    bad[17] ^= 1; /* k */
    CHECK(load_bytes(bad, size, &err) == SF_ERR_CHECKSUM && strstr(err.message, "header"),
          "flipped k: %s", err.message);
    memcpy(bad, file, size);
    bad[SF_CODEBOOK_HEADER_SIZE + 9] ^= 0x10;
    CHECK(load_bytes(bad, size, &err) == SF_ERR_CHECKSUM && strstr(err.message, "centroid"),
          "flipped data: %s", err.message);
    /* Every single flipped byte is caught. */
    size_t missed = 0;
    for (size_t i = 0; i < size; i++) {
        memcpy(bad, file, size);
        bad[i] ^= 0xff;
        missed += load_bytes(bad, size, &err) == SF_OK;
    }
    CHECK(missed == 0, "%zu of %zu flipped bytes went unnoticed", missed, size);
    /* Header fields that agree with a valid header checksum are still
     * checked against each other. */
    memcpy(bad, file, size);
    bad[32] ^= 4; /* data size */
    uint64_t h = XXH64(bad, 120, 0); /* re-sealed, as a buggy writer would */
    for (int b = 0; b < 8; b++)
        bad[120 + b] = (unsigned char)(h >> (8 * b));
    CHECK(load_bytes(bad, size, &err) == SF_ERR_FORMAT, "inconsistent data size: %s",
          err.message);

    /* Files. */
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/none.sfcb", tmpdir);
    CHECK(sf_codebook_load(missing, &cb, &err) == SF_ERR_NOT_FOUND && !cb &&
          strstr(err.message, missing), "missing file: %s", err.message);
    snprintf(missing, sizeof missing, "%s/cut.sfcb", tmpdir);
    write_bytes(missing, file, size - 3);
    CHECK(sf_codebook_load(missing, &cb, &err) == SF_ERR_TRUNCATED && strstr(err.message, missing),
          "truncated file: %s", err.message);
    CHECK(sf_codebook_load(tmpdir, &cb, &err) == SF_ERR_IO, "a directory: %s", err.message);
    unlink(missing);

    /* Writing checks its input. */
    c[3] = NAN;
    CHECK(sf_codebook_write(path, c, K, D, NULL, &err) == SF_ERR_INVALID_ARGUMENT,
          "NaN centroids are refused");
    c[3] = 3e38f; /* finite, but no float32 distance to it is */
    CHECK(sf_codebook_write(path, c, K, D, NULL, &err) == SF_ERR_INVALID_ARGUMENT &&
          strstr(err.message, "centroid 0: its squared norm overflows"),
          "a centroid of 3e38 is refused: %s", err.message);
    c[3] = 0;
    sf_codebook_training inf = { .inertia = INFINITY };
    CHECK(sf_codebook_write(path, c, K, D, &inf, &err) == SF_ERR_INVALID_ARGUMENT &&
          strstr(err.message, "inertia"), "an infinite inertia is refused: %s", err.message);

    /* Files made elsewhere, with valid checksums: centroids too large for
     * float32 distances, a NaN, an infinite inertia. */
    float v[] = { 3e38f, NAN };
    for (int i = 0; i < 2; i++) {
        memcpy(bad, file, size);
        memcpy(bad + SF_CODEBOOK_HEADER_SIZE + 4 * D + 4, &v[i], 4); /* centroid 1 */
        uint64_t sum = XXH64(bad + SF_CODEBOOK_HEADER_SIZE, size - SF_CODEBOOK_HEADER_SIZE, 0);
        for (int b = 0; b < 8; b++)
            bad[40 + b] = (unsigned char)(sum >> (8 * b));
        uint64_t hs = XXH64(bad, 120, 0);
        for (int b = 0; b < 8; b++)
            bad[120 + b] = (unsigned char)(hs >> (8 * b));
        CHECK(load_bytes(bad, size, &err) == SF_ERR_FORMAT && strstr(err.message, "centroid 1"),
              "a sealed file with centroid value %g: %s", v[i], err.message);
    }
    memcpy(bad, file, size);
    double dinf = INFINITY;
    memcpy(bad + 64, &dinf, 8);
    uint64_t hs = XXH64(bad, 120, 0);
    for (int b = 0; b < 8; b++)
        bad[120 + b] = (unsigned char)(hs >> (8 * b));
    CHECK(load_bytes(bad, size, &err) == SF_ERR_FORMAT && strstr(err.message, "inertia"),
          "a sealed file with an infinite inertia: %s", err.message);
    CHECK(sf_codebook_write(path, c, 0, D, NULL, &err) == SF_ERR_INVALID_ARGUMENT,
          "k = 0 is refused");
    snprintf(missing, sizeof missing, "%s/no/such/dir/cb", tmpdir);
    CHECK(sf_codebook_write(missing, c, K, D, NULL, &err) == SF_ERR_IO &&
          strstr(err.message, "No such file"), "unwritable path: %s", err.message);
    unlink(path);
    free(bad);
    free(file);
}

/* ---- Stream writer for the shell tests and the bench ---- */

static int write_stream(int argc, char **argv)
{
    const char *path = argv[2];
    /* IMAGES ROWS DIM CENTRES SIGMA, then maybe "noscale" or "huge", anywhere. */
    double num[5] = { 40, 100, 16, 8, 0.1 };
    int n_num = 0, scales = 1, huge = 0, ok = 1;
    for (int i = 3; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "noscale") == 0) {
            scales = 0;
            continue;
        }
        if (strcmp(argv[i], "huge") == 0) {
            huge = 1;
            continue;
        }
        if (n_num == 5) {
            ok = 0;
            break;
        }
        num[n_num++] = strtod(argv[i], &end);
        if (end == argv[i] || *end)
            ok = 0;
    }
    long images = (long)num[0], rows = (long)num[1], d = (long)num[2];
    long n_centres = (long)num[3];
    double sigma = num[4];
    FILE *fp = strcmp(path, "-") == 0 ? stdout : fopen(path, "wb");
    if (!fp || !ok || images < 0 || rows < 0 || d < 1 || n_centres < 1 || !(sigma >= 0)) {
        fprintf(stderr, "test_kmeans --write-stream FILE [IMAGES [ROWS [DIM [CENTRES "
                        "[SIGMA]]]]] [noscale] [huge]\n");
        return 99;
    }
    /* Descriptors around centres uniform in [0, 10]^d, taken in turn, with
     * a Gaussian spread sigma; the first half of each image's rows come
     * from scale 1, the others from scale 0.5. */
    float *centres = alloc_floats((size_t)n_centres * (size_t)d);
    lcg_seed(6);
    for (long i = 0; i < n_centres * d; i++)
        centres[i] = (float)(10 * uniform());
    float *desc = alloc_floats((size_t)(rows ? rows : 1) * (size_t)d);
    float *sc = alloc_floats((size_t)(rows ? rows : 1));
    sf_error err;
    for (long im = 0; im < images; im++) {
        char key[64];
        snprintf(key, sizeof key, "image%03ld.jpg", im);
        for (long r = 0; r < rows; r++) {
            long ctr = (im * rows + r) % n_centres;
            for (long t = 0; t < d; t++) {
                double v = centres[ctr * d + t] + sigma * gaussian();
                /* huge: within 3e38, still finite as float32 */
                desc[r * d + t] = huge ? (float)fmax(-3e38, fmin(3e38, v * 3e37)) : (float)v;
            }
            sc[r] = r < rows / 2 ? 1.0f : 0.5f;
        }
        sf_record rec = { .kind = SF_KIND_LOCAL_DESC, .dtype = SF_DTYPE_F32, .ndim = 2,
                          .scale = 1.0, .key = key, .key_len = strlen(key), .data = desc };
        rec.shape[0] = (uint64_t)rows;
        rec.shape[1] = (uint64_t)d;
        rec.data_size = (uint64_t)rows * (uint64_t)d * 4;
        rec.flags = scales ? 0 : SF_RECORD_LAST;
        if (tu_write_provenance(fp, key) || sf_stream_write_record(fp, &rec, &err) != SF_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 99;
        }
        if (scales) {
            rec.kind = SF_KIND_LOCAL_SCALE;
            rec.ndim = 1;
            rec.shape[1] = 0;
            rec.data = sc;
            rec.data_size = (uint64_t)rows * 4;
            rec.flags = SF_RECORD_LAST;
            if (sf_stream_write_record(fp, &rec, &err) != SF_OK) {
                fprintf(stderr, "%s\n", err.message);
                return 99;
            }
        }
    }
    free(centres);
    free(desc);
    free(sc);
    if (tu_close_stream(fp, (uint64_t)images)) {
        perror(path);
        return 99;
    }
    return 0;
}

/* The codebook size the data supports: the default rule and the refusal. */
static void test_codebook_sizes(void)
{
    static const struct { uint64_t n; size_t k; } rule[] = {
        { 0, 0 }, { 1, 1 }, { 63, 1 }, { 64, 2 }, { 127, 2 }, { 128, 4 },
        { 1000, 16 }, { 67000, 2048 }, { 343000, 8192 }, { 2097151, 32768 },
        { 2097152, 65536 }, { UINT64_C(1) << 40, 65536 },
    };
    for (size_t i = 0; i < sizeof rule / sizeof rule[0]; i++) {
        size_t k = sf_codebook_default_size(rule[i].n);
        CHECK(k == rule[i].k, "default size for %llu: %zu, expected %zu",
              (unsigned long long)rule[i].n, k, rule[i].k);
        /* The default always trains. */
        if (rule[i].n) {
            sf_error err;
            CHECK(sf_codebook_check_size(k, rule[i].n, &err) == SF_OK, "%s", err.message);
        }
    }
    sf_error err;
    CHECK(sf_codebook_max_size(1000) == 1000, "max 1000");
    CHECK(sf_codebook_max_size(UINT64_C(1) << 40) == SF_INDEX_MAX_WORDS, "max capped");
    CHECK(sf_codebook_check_size(1000, 1000, &err) == SF_OK, "k == n trains");
    CHECK(sf_codebook_check_size(1001, 1000, &err) == SF_ERR_INVALID_ARGUMENT, "k > n");
    CHECK(strstr(err.message, "the largest codebook they can train has 1000 words") &&
          strstr(err.message, "the default for them is 16"), "message: %s", err.message);
    CHECK(sf_codebook_check_size(65536, 0, &err) == SF_ERR_INVALID_ARGUMENT, "n == 0");
    CHECK(sf_codebook_check_size(0, 10, &err) == SF_ERR_INVALID_ARGUMENT, "k == 0");
    CHECK(sf_codebook_check_size((size_t)SF_INDEX_MAX_WORDS + 1, UINT64_C(1) << 40, &err) ==
              SF_ERR_INVALID_ARGUMENT, "k beyond the index");
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--write-stream") == 0)
        return write_stream(argc, argv);
    const char *base = getenv("top_builddir");
    snprintf(tmpdir, sizeof tmpdir, "%s/tests/tmp/test_kmeans.XXXXXX", base ? base : ".");
    char mk[4300];
    snprintf(mk, sizeof mk, "mkdir -p '%s/tests/tmp'", base ? base : ".");
    if (system(mk) != 0 || !mkdtemp(tmpdir)) {
        perror(tmpdir);
        return 99;
    }
    test_arguments();
    test_blocked_distances();
    test_blobs();
    test_monotone_and_deterministic();
    test_empty_clusters();
    test_sampler();
    test_sampler_images();
    test_overflow();
    test_codebook_file();
    test_codebook_sizes();
    rmdir(tmpdir);
    return tu_finish("test_kmeans");
}
