/* ASMK against golden/asmk-small: quantisation (ma 1 and 5), aggregation
 * of the first image and query, idf, norms, scores and rankings for the
 * binary, non-binary, idf and partial-index (idfsub_) variants; plus the
 * packing layout and argument checks on hand-made data. */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_asmk.h"
#include "testutil.h"

#define DIM 128
#define K 256
#define N_DB 40
#define N_Q 10

static const char *dir;

/* Packed vectors as the fixtures store them: each uint32 little-endian. */
static void to_bytes(const uint32_t *w, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++)
            out[4 * i + (size_t)b] = (unsigned char)(w[i] >> (8 * b));
}

static double max_rel_f64(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]) / (fabs(b[i]) > 0 ? fabs(b[i]) : 1);
        if (d > m || isnan(d))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

struct inputs {
    float *centroids, *db, *q;
    int64_t *db_ids, *q_ids, *db_words, *q_words;
};

/* Aggregation of db image 0 (ma 1) and query 0 (ma 5) from the fixture
 * words, against the fixture's agg0 / qagg0. */
static void check_aggregation(const sf_asmk_codebook *cb, const struct inputs *in,
                              const char *prefix, int binary)
{
    for (int side = 0; side < 2; side++) {
        const int64_t *ids = side ? in->q_ids : in->db_ids;
        const int64_t *fw = side ? in->q_words : in->db_words;
        const float *desc = side ? in->q : in->db;
        size_t n_all = side ? 2300 : 12000;
        int ma = side ? 5 : 1;
        size_t first, count;
        tu_rows_of(ids, n_all, 0, &first, &count);
        int32_t *words = malloc(count * (size_t)ma * sizeof *words);
        for (size_t i = 0; i < count * (size_t)ma; i++)
            words[i] = (int32_t)fw[first * (size_t)ma + i];
        sf_asmk_agg agg;
        sf_error err;
        sf_error_clear(&err);
        sf_status st = sf_asmk_aggregate(cb, desc + first * DIM, count, words, ma, binary, &agg,
                                         &err);
        CHECK(st == SF_OK, "%saggregate side %d: %s", prefix, side, err.message);

        char name[128];
        size_t n_exp = side ? 111 : 46;
        snprintf(name, sizeof name, "%s%sagg0_words.i64", prefix, side ? "q" : "");
        int64_t *ew = tu_read_array(dir, name, n_exp, 8);
        CHECK(agg.n == n_exp, "%s: %zu aggregated vectors, expected %zu", name, agg.n, n_exp);
        int words_equal = agg.n == n_exp;
        for (size_t i = 0; words_equal && i < n_exp; i++)
            words_equal = agg.words[i] == ew[i];
        CHECK(words_equal, "%s: words differ", name);
        if (agg.n == n_exp && binary) {
            snprintf(name, sizeof name, "%s%sagg0_packed.u8", prefix, side ? "q" : "");
            unsigned char *ep = tu_read_array(dir, name, n_exp * 16, 1);
            unsigned char *got = malloc(n_exp * 16);
            to_bytes(agg.packed, n_exp * 4, got);
            size_t diff = 0;
            for (size_t i = 0; i < n_exp * 16; i++)
                diff += got[i] != ep[i];
            CHECK(diff == 0, "%s: %zu of %zu bytes differ", name, diff, n_exp * 16);
            printf("%s: %zu x 16 bytes, %zu differ\n", name, n_exp, diff);
            free(got);
            free(ep);
        } else if (agg.n == n_exp) {
            snprintf(name, sizeof name, "%s%sagg0.f32", prefix, side ? "q" : "");
            float *ev = tu_read_array(dir, name, n_exp * DIM, 4);
            double rel = tu_rel_error(agg.vectors, ev, n_exp * DIM);
            CHECK(rel <= 1e-6, "%s: relative error %g", name, rel);
            printf("%s: relative error %.3g\n", name, rel);
            free(ev);
        }
        free(ew);
        free(words);
        sf_asmk_agg_release(&agg);
    }
}

static void check_variant(const struct inputs *in, const char *prefix, int binary, int use_idf,
                          int n_indexed)
{
    sf_asmk_params p;
    sf_asmk_params_default(&p);
    p.binary = binary;
    p.use_idf = use_idf;
    sf_asmk_ivf *ivf;
    sf_error err;
    sf_error_clear(&err);
    sf_status st = sf_asmk_ivf_create(in->centroids, K, DIM, &p, &ivf, &err);
    CHECK(st == SF_OK, "%sivf create: %s", prefix, err.message);
    if (st != SF_OK)
        return;
    for (int m = 0; m < n_indexed; m++) {
        size_t first, count;
        tu_rows_of(in->db_ids, 12000, m, &first, &count);
        st = sf_asmk_ivf_add_descriptors(ivf, (uint32_t)m, in->db + first * DIM, count, 1, &err);
        CHECK(st == SF_OK, "%sadd %d: %s", prefix, m, err.message);
    }
    st = sf_asmk_ivf_finalize(ivf, &err);
    CHECK(st == SF_OK, "%sfinalize: %s", prefix, err.message);
    CHECK(sf_asmk_ivf_n_images(ivf) == (size_t)n_indexed, "%sn_images %zu", prefix,
          sf_asmk_ivf_n_images(ivf));

    char name[128];
    snprintf(name, sizeof name, "%sivf_idf.f32", prefix);
    float *eidf = tu_read_array(dir, name, K, 4);
    double idf_rel = tu_rel_error(sf_asmk_ivf_idf(ivf), eidf, K);
    CHECK(idf_rel <= 1e-6, "%s: relative error %g", name, idf_rel);
    snprintf(name, sizeof name, "%sivf_norm_factor.f64", prefix);
    double *enorm = tu_read_array(dir, name, (size_t)n_indexed, 8);
    double norm_rel = max_rel_f64(sf_asmk_ivf_norm_factor(ivf), enorm, (size_t)n_indexed);
    CHECK(norm_rel <= 1e-9, "%s: relative error %g", name, norm_rel);

    snprintf(name, sizeof name, "%sranks.i64", prefix);
    int64_t *eranks = tu_read_array(dir, name, (size_t)N_Q * (size_t)n_indexed, 8);
    snprintf(name, sizeof name, "%sscores.f64", prefix);
    double *escores = tu_read_array(dir, name, (size_t)N_Q * (size_t)n_indexed, 8);

    double *scores = malloc((size_t)n_indexed * sizeof *scores);
    double *by_id = malloc((size_t)n_indexed * sizeof *by_id);
    double *aligned = malloc((size_t)n_indexed * sizeof *aligned);
    uint32_t *order = malloc((size_t)n_indexed * sizeof *order);
    double worst_rel = 0, worst_global = 0;
    int rank_mismatch = 0, tie_swaps = 0;
    for (int q = 0; q < N_Q; q++) {
        size_t first, count;
        tu_rows_of(in->q_ids, 2300, q, &first, &count);
        st = sf_asmk_ivf_search_descriptors(ivf, in->q + first * DIM, count, 5, scores, &err);
        CHECK(st == SF_OK, "%ssearch %d: %s", prefix, q, err.message);
        st = sf_asmk_rank(scores, (size_t)n_indexed, order, &err);
        CHECK(st == SF_OK, "%srank %d: %s", prefix, q, err.message);
        const int64_t *er = eranks + (size_t)q * (size_t)n_indexed;
        const double *es = escores + (size_t)q * (size_t)n_indexed;
        /* The fixture stores scores in rank order: put them back by image id. */
        for (int j = 0; j < n_indexed; j++) {
            by_id[er[j]] = es[j];
            aligned[j] = scores[er[j]];
        }
        double rel = max_rel_f64(aligned, es, (size_t)n_indexed);
        double mb = 0, md = 0;
        for (int j = 0; j < n_indexed; j++) {
            mb = fmax(mb, fabs(es[j]));
            md = fmax(md, fabs(aligned[j] - es[j]));
        }
        worst_rel = fmax(worst_rel, rel);
        worst_global = fmax(worst_global, md / mb);
        for (int j = 0; j < n_indexed; j++) {
            if ((int64_t)order[j] == er[j])
                continue;
            if (by_id[order[j]] == by_id[er[j]])
                tie_swaps++; /* equal reference scores: any order is right */
            else
                rank_mismatch++;
        }
    }
    CHECK(worst_rel <= 1e-5, "%sscores: max elementwise relative error %g", prefix, worst_rel);
    CHECK(rank_mismatch == 0, "%sranks: %d positions differ outside ties", prefix,
          rank_mismatch);
    printf("%-8s idf rel %.3g, norm rel %.3g, scores rel %.3g (elementwise; max|d|/max|b| %.3g), "
           "ranks: %d differ, %d tie swaps\n",
           *prefix ? prefix : "bin", idf_rel, norm_rel, worst_rel, worst_global, rank_mismatch,
           tie_swaps);

    free(scores);
    free(by_id);
    free(aligned);
    free(order);
    free(eranks);
    free(escores);
    free(eidf);
    free(enorm);
    sf_asmk_ivf_free(ivf);
}

static void check_golden(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/asmk-small", tu_golden_dir());
    dir = path;
    struct inputs in;
    in.centroids = tu_read_array(dir, "centroids.f32", K * DIM, 4);
    in.db = tu_read_array(dir, "db_desc.f32", 12000 * DIM, 4);
    in.q = tu_read_array(dir, "q_desc.f32", 2300 * DIM, 4);
    in.db_ids = tu_read_array(dir, "db_imids.i64", 12000, 8);
    in.q_ids = tu_read_array(dir, "q_imids.i64", 2300, 8);
    in.db_words = tu_read_array(dir, "db_words.i64", 12000, 8);
    in.q_words = tu_read_array(dir, "q_words_ma5.i64", 2300 * 5, 8);

    sf_asmk_codebook *cb;
    sf_error err;
    sf_error_clear(&err);
    sf_status st = sf_asmk_codebook_create(in.centroids, K, DIM, &cb, &err);
    CHECK(st == SF_OK, "codebook: %s", err.message);
    if (st != SF_OK)
        exit(tu_finish("test_asmk"));

    int32_t *w1 = malloc(12000 * sizeof *w1);
    st = sf_asmk_codebook_quantize(cb, in.db, 12000, 1, w1, &err);
    CHECK(st == SF_OK, "quantize db: %s", err.message);
    size_t diff1 = 0;
    for (size_t i = 0; i < 12000; i++)
        diff1 += w1[i] != in.db_words[i];
    CHECK(diff1 == 0, "db_words: %zu of 12000 differ", diff1);
    int32_t *w5 = malloc(2300 * 5 * sizeof *w5);
    st = sf_asmk_codebook_quantize(cb, in.q, 2300, 5, w5, &err);
    CHECK(st == SF_OK, "quantize queries: %s", err.message);
    size_t diff5 = 0;
    for (size_t i = 0; i < 2300 * 5; i++)
        diff5 += w5[i] != in.q_words[i];
    CHECK(diff5 == 0, "q_words_ma5: %zu of 11500 differ", diff5);
    printf("quantize: db_words %zu/12000 differ, q_words_ma5 %zu/11500 differ\n", diff1, diff5);
    free(w1);
    free(w5);

    check_aggregation(cb, &in, "", 1);
    check_aggregation(cb, &in, "idf_", 1);
    check_aggregation(cb, &in, "nobin_", 0);
    sf_asmk_codebook_free(cb);

    check_variant(&in, "", 1, 0, N_DB);
    check_variant(&in, "nobin_", 0, 0, N_DB);
    check_variant(&in, "idf_", 1, 1, N_DB);
    /* idfsub_: the index holds db images 0..11 only (manifest: indexed_db_images 12). */
    check_variant(&in, "idfsub_", 1, 1, 12);

    free(in.centroids);
    free(in.db);
    free(in.q);
    free(in.db_ids);
    free(in.q_ids);
    free(in.db_words);
    free(in.q_words);
}

/* Block edges: k not a multiple of the panel width, n not a multiple of
 * the row tiles; against a plain double-precision search.  The data are
 * random enough that no two distances are close. */
static void check_blocks(void)
{
    enum { KB = 150, D = 19, N = 70, MA = 3 };
    float *c = malloc(KB * D * sizeof *c), *x = malloc(N * D * sizeof *x);
    uint32_t seed = 12345;
    for (int i = 0; i < KB * D + N * D; i++) {
        seed = seed * 1664525u + 1013904223u;
        float v = (float)(seed >> 8) / 16777216.0f - 0.5f;
        if (i < KB * D)
            c[i] = v;
        else
            x[i - KB * D] = v;
    }
    sf_asmk_codebook *cb;
    sf_error err;
    sf_error_clear(&err);
    CHECK(sf_asmk_codebook_create(c, KB, D, &cb, &err) == SF_OK, "%s", err.message);
    int32_t words[N * MA];
    CHECK(sf_asmk_codebook_quantize(cb, x, N, MA, words, &err) == SF_OK, "%s", err.message);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int32_t best[MA];
        double bd[MA];
        for (int m = 0; m < MA; m++) {
            best[m] = -1;
            bd[m] = INFINITY;
        }
        for (int j = 0; j < KB; j++) {
            double d = 0;
            for (int t = 0; t < D; t++) {
                double e = (double)x[i * D + t] - c[j * D + t];
                d += e * e;
            }
            for (int m = 0; m < MA; m++)
                if (d < bd[m]) {
                    for (int u = MA - 1; u > m; u--) {
                        bd[u] = bd[u - 1];
                        best[u] = best[u - 1];
                    }
                    bd[m] = d;
                    best[m] = j;
                    break;
                }
        }
        for (int m = 0; m < MA; m++)
            bad += words[i * MA + m] != best[m];
    }
    CHECK(bad == 0, "blocked quantisation: %d of %d words differ from a plain search", bad,
          N * MA);
    sf_asmk_codebook_free(cb);
    free(c);
    free(x);
}

/* The sgemm path at a realistic scale: k = 5003 (several column blocks,
 * a short last one, not a multiple of 8), n = 300 (split across threads by columns on a
 * multi-core machine), ma = 5, against a double-precision brute force.
 * Centroids copied to other indices, across block boundaries, give
 * exactly equal distances, which must come lowest index first; a third of
 * the descriptors lie next to (or on) such a centroid so that its copies
 * are among their nearest. */
enum { RK = 5003, RD = 100, RN = 300, RMA = 5 };

static const int dup_pairs[][2] = { { 7, 2055 },    { 1023, 1024 }, { 2047, 2048 },
                                    { 100, 4999 },  { 500, 3000 },  { 500, 4500 },
                                    { 42, 43 },     { 4095, 4096 }, { 1500, 4990 } };
#define N_DUPS (sizeof dup_pairs / sizeof *dup_pairs)

struct rnd_case {
    float *c, *x;
    int32_t *words;
    const sf_asmk_codebook *cb;
    sf_status st;
};

static void *quantize_in_thread(void *arg)
{
    struct rnd_case *rc = arg;
    sf_error err;
    rc->st = sf_asmk_codebook_quantize(rc->cb, rc->x, RN, RMA, rc->words, &err);
    return NULL;
}

/* The RMA + 1 nearest of row x in double precision, ties to the lower index. */
static void brute_force(const float *c, const float *x, int32_t *best, double *bd)
{
    for (int m = 0; m <= RMA; m++) {
        best[m] = -1;
        bd[m] = INFINITY;
    }
    for (int j = 0; j < RK; j++) {
        double d = 0;
        for (int t = 0; t < RD; t++) {
            double e = (double)x[t] - c[(size_t)j * RD + t];
            d += e * e;
        }
        for (int m = 0; m <= RMA; m++)
            if (d < bd[m]) {
                for (int u = RMA; u > m; u--) {
                    bd[u] = bd[u - 1];
                    best[u] = best[u - 1];
                }
                bd[m] = d;
                best[m] = j;
                break;
            }
    }
}

static void check_random(void)
{
    float *c = malloc((size_t)RK * RD * sizeof *c), *x = malloc((size_t)RN * RD * sizeof *x);
    uint64_t seed = 0x5eed;
    for (size_t i = 0; i < (size_t)RK * RD + (size_t)RN * RD; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        float v = (float)(seed >> 40) / 16777216.0f - 0.5f;
        if (i < (size_t)RK * RD)
            c[i] = v;
        else
            x[i - (size_t)RK * RD] = v;
    }
    for (size_t p = 0; p < N_DUPS; p++)
        memcpy(c + (size_t)dup_pairs[p][1] * RD, c + (size_t)dup_pairs[p][0] * RD,
               RD * sizeof *c);
    /* Rows 0..99 near a duplicated centroid, every tenth exactly on it
     * (distance 0 up to rounding, clamped). */
    for (int i = 0; i < 100; i++) {
        const float *a = c + (size_t)dup_pairs[(size_t)i % N_DUPS][i % 2] * RD;
        for (int t = 0; t < RD; t++)
            x[(size_t)i * RD + t] = i % 10 == 0 ? a[t] : a[t] + 0.01f * x[(size_t)i * RD + t];
    }

    sf_asmk_codebook *cb;
    sf_error err;
    sf_error_clear(&err);
    CHECK(sf_asmk_codebook_create(c, RK, RD, &cb, &err) == SF_OK, "%s", err.message);
    int32_t *words = malloc((size_t)RN * RMA * sizeof *words);
    CHECK(sf_asmk_codebook_quantize(cb, x, RN, RMA, words, &err) == SF_OK, "%s", err.message);

    /* Rows whose reference distances hold a near tie (two different
     * values closer than float32 can tell) may order those two either
     * way: there the words must be near-equal in distance instead. */
    int exact_bad = 0, near_ties = 0, near_bad = 0, dup_rows = 0;
    for (int i = 0; i < RN; i++) {
        int32_t best[RMA + 1];
        double bd[RMA + 1];
        brute_force(c, x + (size_t)i * RD, best, bd);
        int near = 0;
        for (int m = 0; m < RMA; m++) {
            double gap = bd[m + 1] - bd[m];
            near |= gap != 0 && gap <= 1e-5 * (bd[m + 1] + 1e-3);
            dup_rows += gap == 0 && m == 0;
        }
        const int32_t *w = words + (size_t)i * RMA;
        if (!near) {
            for (int m = 0; m < RMA; m++)
                exact_bad += w[m] != best[m];
            continue;
        }
        near_ties++;
        for (int m = 0; m < RMA; m++) {
            double d = 0;
            for (int t = 0; t < RD && w[m] >= 0; t++) {
                double e = (double)x[(size_t)i * RD + t] - c[(size_t)w[m] * RD + t];
                d += e * e;
            }
            near_bad += w[m] < 0 || fabs(d - bd[m]) > 1e-5 * (bd[m] + 1e-3);
        }
    }
    CHECK(exact_bad == 0, "random k=%d: %d of %d words differ from the double reference",
          RK, exact_bad, RN * RMA);
    CHECK(near_bad == 0, "random k=%d: %d words of near-tie rows are off", RK, near_bad);
    CHECK(dup_rows >= 90, "only %d rows have tied nearest words", dup_rows);
    printf("random k=%d n=%d ma=%d: %d words differ, %d rows with exact ties, %d with near "
           "ties\n", RK, RN, RMA, exact_bad, dup_rows, near_ties);

    /* A descriptor gets the same words alone, in small batches (tiny_dots
     * or padded tiles) and in the whole batch. */
    int32_t w1[17 * RMA];
    int alone_bad = 0;
    for (int i = 0; i < 40; i++) {
        CHECK(sf_asmk_codebook_quantize(cb, x + (size_t)i * RD, 1, RMA, w1, &err) == SF_OK, "%s",
              err.message);
        for (int m = 0; m < RMA; m++)
            alone_bad += w1[m] != words[(size_t)i * RMA + m];
    }
    static const int batch[] = { 2, 9, 15, 17 };
    for (size_t b = 0; b < sizeof batch / sizeof *batch; b++) {
        int n = batch[b];
        CHECK(sf_asmk_codebook_quantize(cb, x + 40 * RD, (size_t)n, RMA, w1, &err) == SF_OK,
              "%s", err.message);
        for (int m = 0; m < n * RMA; m++)
            alone_bad += w1[m] != words[40 * RMA + m];
    }
    CHECK(alone_bad == 0, "%d words differ between batch and small calls", alone_bad);

    /* ma 1 is the first of ma 5. */
    int32_t *first = malloc(RN * sizeof *first);
    CHECK(sf_asmk_codebook_quantize(cb, x, RN, 1, first, &err) == SF_OK, "%s", err.message);
    int ma1_bad = 0;
    for (int i = 0; i < RN; i++)
        ma1_bad += first[i] != words[(size_t)i * RMA];
    CHECK(ma1_bad == 0, "ma 1: %d words differ from the first of ma 5", ma1_bad);

    /* Two codebooks quantised at once from two threads, each its own. */
    float *c2 = malloc((size_t)RK * RD * sizeof *c2);
    for (size_t i = 0; i < (size_t)RK * RD; i++)
        c2[i] = -c[(size_t)RK * RD - 1 - i];
    sf_asmk_codebook *cb2;
    CHECK(sf_asmk_codebook_create(c2, RK, RD, &cb2, &err) == SF_OK, "%s", err.message);
    struct rnd_case rc[2] = { { c, x, malloc((size_t)RN * RMA * sizeof(int32_t)), cb, SF_OK },
                              { c2, x, malloc((size_t)RN * RMA * sizeof(int32_t)), cb2, SF_OK } };
    int32_t *want2 = malloc((size_t)RN * RMA * sizeof *want2);
    CHECK(sf_asmk_codebook_quantize(cb2, x, RN, RMA, want2, &err) == SF_OK, "%s", err.message);
    pthread_t th[2];
    int started[2];
    for (int t = 0; t < 2; t++)
        started[t] = pthread_create(&th[t], NULL, quantize_in_thread, &rc[t]) == 0;
    for (int t = 0; t < 2; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            quantize_in_thread(&rc[t]);
    }
    CHECK(rc[0].st == SF_OK && rc[1].st == SF_OK, "threaded quantize failed");
    CHECK(memcmp(rc[0].words, words, (size_t)RN * RMA * sizeof *words) == 0 &&
              memcmp(rc[1].words, want2, (size_t)RN * RMA * sizeof *want2) == 0,
          "concurrent quantisation differs");

    /* A finite descriptor whose squared norm overflows has no finite
     * distance. */
    float huge[RD] = { 0 };
    huge[3] = 1e30f;
    CHECK(sf_asmk_codebook_quantize(cb, huge, 1, 1, w1, &err) == SF_ERR_INVALID_ARGUMENT,
          "overflowing descriptor accepted");
    CHECK(sf_asmk_codebook_quantize(cb, x, 0, RMA, w1, &err) == SF_OK, "n = 0: %s",
          err.message);

    free(rc[0].words);
    free(rc[1].words);
    free(want2);
    sf_asmk_codebook_free(cb2);
    free(c2);
    free(first);
    free(words);
    sf_asmk_codebook_free(cb);
    free(c);
    free(x);
}

/* Layout, ties and errors on hand-made data. */
static void check_small(void)
{
    /* dims 0 and 33 positive in a 40-d vector: bit 31 of word 0, bit 30 of
     * word 1 (the trailing 8 dims sit in the top byte). */
    float v[40] = { 0 };
    v[0] = 1.0f;
    v[33] = 0.5f;
    v[39] = -1.0f;
    v[5] = -0.0f;
    uint32_t packed[2];
    CHECK(sf_asmk_packed_size(40) == 2, "packed size %zu", sf_asmk_packed_size(40));
    sf_asmk_pack_signs(v, 40, packed);
    CHECK(packed[0] == 0x80000000u && packed[1] == 0x40000000u, "packed %08x %08x", packed[0],
          packed[1]);

    /* Two centroids at equal distance: the lower index wins. */
    float cents[3 * 2] = { 1, 0, -1, 0, 0, 5 };
    sf_asmk_codebook *cb;
    sf_error err;
    sf_error_clear(&err);
    CHECK(sf_asmk_codebook_create(cents, 3, 2, &cb, &err) == SF_OK, "%s", err.message);
    float x[2 * 2] = { 0, 0, -0.9f, 0 };
    int32_t words[2 * 3];
    CHECK(sf_asmk_codebook_quantize(cb, x, 2, 3, words, &err) == SF_OK, "%s", err.message);
    CHECK(words[0] == 0 && words[1] == 1 && words[2] == 2, "tie order %d %d %d", words[0],
          words[1], words[2]);
    CHECK(words[3] == 1 && words[4] == 0 && words[5] == 2, "order %d %d %d", words[3], words[4],
          words[5]);
    CHECK(sf_asmk_codebook_quantize(cb, x, 2, 4, words, &err) == SF_ERR_INVALID_ARGUMENT,
          "ma > k accepted");
    float bad[2] = { NAN, 0 };
    CHECK(sf_asmk_codebook_quantize(cb, bad, 1, 1, words, &err) == SF_ERR_INVALID_ARGUMENT,
          "NaN descriptor accepted");

    /* A word listed twice for one descriptor counts once. */
    int32_t dup[2] = { 2, 2 };
    sf_asmk_agg agg;
    CHECK(sf_asmk_aggregate(cb, x + 2, 1, dup, 2, 0, &agg, &err) == SF_OK, "%s", err.message);
    CHECK(agg.n == 1 && agg.words[0] == 2, "dup: %zu words", agg.n);
    if (agg.n == 1) {
        /* residual (-0.9, -5) normalised */
        double nr = sqrt(0.81 + 25.0);
        CHECK(fabs(agg.vectors[0] + 0.9 / nr) < 1e-6 && fabs(agg.vectors[1] + 5 / nr) < 1e-6,
              "dup residual %g %g", agg.vectors[0], agg.vectors[1]);
    }
    sf_asmk_agg_release(&agg);
    sf_asmk_agg_release(&agg); /* released twice: a no-op */
    int32_t out_of_range = 3;
    CHECK(sf_asmk_aggregate(cb, x, 1, &out_of_range, 1, 1, &agg, &err) == SF_ERR_INVALID_ARGUMENT,
          "word 3 accepted");
    sf_asmk_agg_release(&agg);
    sf_asmk_codebook_free(cb);
    sf_asmk_codebook_free(NULL);

    /* Index misuse. */
    sf_asmk_ivf *ivf;
    CHECK(sf_asmk_ivf_create(cents, 3, 2, NULL, &ivf, &err) == SF_OK, "%s", err.message);
    CHECK(sf_asmk_ivf_add_descriptors(ivf, 4, x, 2, 1, &err) == SF_OK, "%s", err.message);
    CHECK(sf_asmk_ivf_add_descriptors(ivf, 4, x, 2, 1, &err) == SF_ERR_INVALID_ARGUMENT,
          "image added twice");
    CHECK(strstr(err.message, "already") != NULL, "message: %s", err.message);
    double scores[5];
    CHECK(sf_asmk_ivf_search_descriptors(ivf, x, 2, 1, scores, &err) == SF_ERR_INVALID_ARGUMENT,
          "search before finalize");
    CHECK(sf_asmk_ivf_finalize(ivf, &err) == SF_OK, "%s", err.message);
    CHECK(sf_asmk_ivf_n_images(ivf) == 5, "n_images %zu", sf_asmk_ivf_n_images(ivf));
    CHECK(sf_asmk_ivf_search_descriptors(ivf, x, 2, 1, scores, &err) == SF_OK, "%s",
          err.message);
    /* The same image: every word matches itself, u = 1: score 1 (per-word
     * values are rounded to float32 on the way). */
    CHECK(fabs(scores[4] - 1.0) < 1e-6 && scores[0] == 0.0, "self score %g, empty %g", scores[4],
          scores[0]);
    const uint32_t *ids;
    const void *vecs;
    size_t count;
    CHECK(sf_asmk_ivf_word(ivf, 0, &ids, &vecs, &count, &err) == SF_OK && count == 1 &&
              ids[0] == 4,
          "word 0 list");
    CHECK(sf_asmk_ivf_word(ivf, 3, &ids, &vecs, &count, &err) == SF_ERR_INVALID_ARGUMENT,
          "word 3 accepted");
    sf_asmk_agg fbin = { 0 };
    int32_t w0 = 0;
    float fv[2] = { 1, 0 };
    fbin.n = 1;
    fbin.dim = 2;
    fbin.binary = 0;
    fbin.words = &w0;
    fbin.vectors = fv;
    CHECK(sf_asmk_ivf_search(ivf, &fbin, scores, &err) == SF_ERR_INVALID_ARGUMENT,
          "float query on a binary index");
    uint32_t pk2[2] = { 0, 0 };
    int32_t unsorted[2] = { 1, 0 };
    sf_asmk_agg bagg = { 0 };
    bagg.n = 2;
    bagg.dim = 2;
    bagg.binary = 1;
    bagg.words = unsorted;
    bagg.packed = pk2;
    CHECK(sf_asmk_ivf_add(ivf, 0, &bagg, &err) == SF_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "ascending") != NULL,
          "unsorted words accepted: %s", err.message);
    sf_asmk_ivf_free(ivf);
    sf_asmk_ivf_free(NULL);

    /* Ranking: descending, ties by id, NaN last. */
    double s[5] = { 0.5, NAN, 0.7, 0.5, 1.0 };
    uint32_t order[5];
    CHECK(sf_asmk_rank(s, 5, order, &err) == SF_OK, "%s", err.message);
    CHECK(order[0] == 4 && order[1] == 2 && order[2] == 0 && order[3] == 3 && order[4] == 1,
          "order %u %u %u %u %u", order[0], order[1], order[2], order[3], order[4]);

    /* The float kernel with a threshold: negative similarities drop out. */
    sf_asmk_params p;
    sf_asmk_params_default(&p);
    float qv[2] = { 1, 0 }, dbv[3 * 2] = { 0.5f, 0.5f, -0.5f, 0.5f, 1, 0 };
    uint32_t dbids[3] = { 0, 1, 1 };
    double ns[2] = { 2, 1 }, acc[2] = { 0, 0 };
    sf_asmk_score_word_float(qv, dbv, dbids, 3, 2, 2.0f, ns, &p, acc);
    CHECK(fabs(acc[0] - 0.125) < 1e-7 && fabs(acc[1] - 2.0) < 1e-7, "kernel %g %g", acc[0],
          acc[1]);
}

int main(void)
{
    check_small();
    check_blocks();
    check_random();
    if (tu_failures) /* do not let a missing fixture turn this into a skip */
        return tu_finish("test_asmk");
    check_golden();
    return tu_finish("test_asmk");
}
