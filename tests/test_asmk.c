/* ASMK against golden/asmk-small: quantisation (ma 1 and 5), aggregation
 * of the first image and query, idf, norms, scores and rankings for the
 * binary, non-binary, idf and partial-index (idfsub_) variants; plus the
 * packing layout and argument checks on hand-made data. */
#include "config.h"

#include <math.h>
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

/* A fixture array of exactly count elements of elem bytes. */
static void *load(const char *name, size_t count, size_t elem)
{
    size_t size;
    void *p = tu_read_file(dir, name, &size);
    if (size != count * elem) {
        fprintf(stderr, "%s/%s: %zu bytes, expected %zu\n", dir, name, size, count * elem);
        exit(99);
    }
    return p;
}

/* Rows [*first, *first + *count) of image id in a contiguous id column. */
static void rows_of(const int64_t *ids, size_t n, int64_t id, size_t *first, size_t *count)
{
    size_t i = 0;
    while (i < n && ids[i] != id)
        i++;
    *first = i;
    while (i < n && ids[i] == id)
        i++;
    *count = i - *first;
}

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
        rows_of(ids, n_all, 0, &first, &count);
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
        int64_t *ew = load(name, n_exp, 8);
        CHECK(agg.n == n_exp, "%s: %zu aggregated vectors, expected %zu", name, agg.n, n_exp);
        int words_equal = agg.n == n_exp;
        for (size_t i = 0; words_equal && i < n_exp; i++)
            words_equal = agg.words[i] == ew[i];
        CHECK(words_equal, "%s: words differ", name);
        if (agg.n == n_exp && binary) {
            snprintf(name, sizeof name, "%s%sagg0_packed.u8", prefix, side ? "q" : "");
            unsigned char *ep = load(name, n_exp * 16, 1);
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
            float *ev = load(name, n_exp * DIM, 4);
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
        rows_of(in->db_ids, 12000, m, &first, &count);
        st = sf_asmk_ivf_add_descriptors(ivf, (uint32_t)m, in->db + first * DIM, count, 1, &err);
        CHECK(st == SF_OK, "%sadd %d: %s", prefix, m, err.message);
    }
    st = sf_asmk_ivf_finalize(ivf, &err);
    CHECK(st == SF_OK, "%sfinalize: %s", prefix, err.message);
    CHECK(sf_asmk_ivf_n_images(ivf) == (size_t)n_indexed, "%sn_images %zu", prefix,
          sf_asmk_ivf_n_images(ivf));

    char name[128];
    snprintf(name, sizeof name, "%sivf_idf.f32", prefix);
    float *eidf = load(name, K, 4);
    double idf_rel = tu_rel_error(sf_asmk_ivf_idf(ivf), eidf, K);
    CHECK(idf_rel <= 1e-6, "%s: relative error %g", name, idf_rel);
    snprintf(name, sizeof name, "%sivf_norm_factor.f64", prefix);
    double *enorm = load(name, (size_t)n_indexed, 8);
    double norm_rel = max_rel_f64(sf_asmk_ivf_norm_factor(ivf), enorm, (size_t)n_indexed);
    CHECK(norm_rel <= 1e-9, "%s: relative error %g", name, norm_rel);

    snprintf(name, sizeof name, "%sranks.i64", prefix);
    int64_t *eranks = load(name, (size_t)N_Q * (size_t)n_indexed, 8);
    snprintf(name, sizeof name, "%sscores.f64", prefix);
    double *escores = load(name, (size_t)N_Q * (size_t)n_indexed, 8);

    double *scores = malloc((size_t)n_indexed * sizeof *scores);
    double *by_id = malloc((size_t)n_indexed * sizeof *by_id);
    double *aligned = malloc((size_t)n_indexed * sizeof *aligned);
    uint32_t *order = malloc((size_t)n_indexed * sizeof *order);
    double worst_rel = 0, worst_global = 0;
    int rank_mismatch = 0, tie_swaps = 0;
    for (int q = 0; q < N_Q; q++) {
        size_t first, count;
        rows_of(in->q_ids, 2300, q, &first, &count);
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
    in.centroids = load("centroids.f32", K * DIM, 4);
    in.db = load("db_desc.f32", 12000 * DIM, 4);
    in.q = load("q_desc.f32", 2300 * DIM, 4);
    in.db_ids = load("db_imids.i64", 12000, 8);
    in.q_ids = load("q_imids.i64", 2300, 8);
    in.db_words = load("db_words.i64", 12000, 8);
    in.q_words = load("q_words_ma5.i64", 2300 * 5, 8);

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
    if (tu_failures) /* do not let a missing fixture turn this into a skip */
        return tu_finish("test_asmk");
    check_golden();
    return tu_finish("test_asmk");
}
