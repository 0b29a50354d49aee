/* The on-disk ASMK index: golden parity (binary, float, idf, partial
 * index) and bit-exact equality with the in-memory sf_asmk_ivf; updates
 * (batches, removals, replacement, compaction) against a one-go build;
 * writers killed at every point of the commit sequence and at random,
 * and failed syncs; the writer lock; damaged files and commit slots;
 * header sizes bounded; shards; threads.
 *
 * Also writes test data for tests/index_cli.sh and the fuzz corpus:
 *   test_index --write-codebook K DIM SEED FILE
 *   test_index --write-stream N SEED DIM FILE [FIRST]   synthetic local_desc
 *                                                       records, keys imgFIRST..
 *   test_index --write-stream-global N SEED DIM FILE [FIRST]  with global too
 *   test_index --write-fuzz-corpus DIR
 *   test_index --set-header-k FILE K      rewrite the codebook size an index
 *                                         header claims (and its checksum) */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "index_internal.h"
#include "sf.h"
#include "sf_codebook.h"
#include "sf_index.h"
#include "testutil.h"

#define DIM 128
#define K 256
#define N_DB 40
#define N_Q 10

static char tmpdir[1024];

static void path_in_tmp(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", tmpdir, name);
}

static uint64_t rng_state = 1;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}
static double rnd_unit(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }
static float rnd_normal(void)
{
    double u = rnd_unit() + 1e-12, v = rnd_unit();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* ---- Golden data ---- */

static struct golden {
    int loaded;
    float *centroids, *db, *q;
    int64_t *db_ids, *q_ids;
    sf_index_codebook_id cbid;
    sf_asmk_codebook *cb;
} G;

static void golden_load(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/asmk-small", tu_golden_dir());
    G.centroids = tu_read_array(dir, "centroids.f32", K * DIM, 4);
    G.db = tu_read_array(dir, "db_desc.f32", 12000 * DIM, 4);
    G.q = tu_read_array(dir, "q_desc.f32", 2300 * DIM, 4);
    G.db_ids = tu_read_array(dir, "db_imids.i64", 12000, 8);
    G.q_ids = tu_read_array(dir, "q_imids.i64", 2300, 8);
    G.cbid.k = K;
    G.cbid.dim = DIM;
    G.cbid.checksum = sf_codebook_checksum_data(G.centroids, K, DIM);
    sf_error err;
    if (sf_asmk_codebook_create(G.centroids, K, DIM, &G.cb, &err) != SF_OK) {
        fprintf(stderr, "codebook: %s\n", err.message);
        exit(99);
    }
    G.loaded = 1;
}

static void golden_free(void)
{
    free(G.centroids);
    free(G.db);
    free(G.q);
    free(G.db_ids);
    free(G.q_ids);
    sf_asmk_codebook_free(G.cb);
}

static void db_rows(int m, const float **desc, size_t *n)
{
    size_t first;
    tu_rows_of(G.db_ids, 12000, m, &first, n);
    *desc = G.db + first * DIM;
}

/* The aggregated vectors of query q (ma 5). */
static void query_agg(int q, int binary, sf_asmk_agg *agg)
{
    size_t first, count;
    tu_rows_of(G.q_ids, 2300, q, &first, &count);
    int32_t *words = malloc(count * 5 * sizeof *words);
    sf_error err;
    if (sf_asmk_codebook_quantize(G.cb, G.q + first * DIM, count, 5, words, &err) != SF_OK ||
        sf_asmk_aggregate(G.cb, G.q + first * DIM, count, words, 5, binary, agg, &err) != SF_OK) {
        fprintf(stderr, "query %d: %s\n", q, err.message);
        exit(99);
    }
    free(words);
}

static sf_index_params make_params(int binary, int idf)
{
    sf_index_params p;
    sf_index_params_default(&p);
    p.asmk.binary = binary;
    p.asmk.use_idf = idf;
    return p;
}

static void key_of_img(int m, char *key, size_t size) { snprintf(key, size, "db%02d", m); }

/* Create path (removing an old one) and add images [lo, hi) in one commit. */
static sf_index *build(const char *path, int binary, int idf, int lo, int hi, size_t stage)
{
    sf_error err;
    sf_error_clear(&err);
    unlink(path);
    sf_index_params p = make_params(binary, idf);
    sf_status st = sf_index_create(path, &p, &G.cbid, "centroids.f32", &err);
    CHECK(st == SF_OK, "create %s: %s", path, err.message);
    sf_index_writer_options o;
    sf_index_writer_options_default(&o);
    o.stage_bytes = stage;
    sf_index_writer *w;
    st = sf_index_writer_open(path, &G.cbid, &o, &w, &err);
    CHECK(st == SF_OK, "writer %s: %s", path, err.message);
    if (st != SF_OK)
        return NULL;
    for (int m = lo; m < hi; m++) {
        const float *d;
        size_t n;
        char key[32];
        db_rows(m, &d, &n);
        key_of_img(m, key, sizeof key);
        st = sf_index_writer_add_descriptors(w, G.cb, key, d, n, NULL, &err);
        CHECK(st == SF_OK, "add %s: %s", key, err.message);
    }
    st = sf_index_writer_commit(w, &err);
    CHECK(st == SF_OK, "commit %s: %s", path, err.message);
    sf_index_writer_free(w);
    sf_index *idx = NULL;
    st = sf_index_open(path, &idx, &err);
    CHECK(st == SF_OK, "open %s: %s", path, err.message);
    return idx;
}

/* Scores of query q by image number (from the key), NaN where absent. */
static void scores_by_image(const sf_index *const *shards, size_t n, int q, int binary,
                            int threads, double *out)
{
    sf_index_search_options o;
    sf_index_search_options_default(&o);
    o.threads = threads;
    o.allow_local_idf = 1;
    sf_index_searcher *s;
    sf_error err;
    for (int m = 0; m < N_DB; m++)
        out[m] = NAN;
    if (sf_index_searcher_create(shards, n, &o, &s, &err) != SF_OK) {
        CHECK(0, "searcher: %s", err.message);
        return;
    }
    size_t total = sf_index_searcher_n_ids(s);
    double *sc = malloc((total + 1) * sizeof *sc);
    sf_asmk_agg agg;
    query_agg(q, binary, &agg);
    sf_status st = sf_index_searcher_scores(s, &agg, sc, &err);
    CHECK(st == SF_OK, "search: %s", err.message);
    size_t g = 0;
    for (size_t sh = 0; sh < n; sh++)
        for (size_t id = 0; id < sf_index_n_ids(shards[sh]); id++, g++) {
            sf_index_image im;
            if (sf_index_get_image(shards[sh], id, &im, &err) != SF_OK || !im.live) {
                CHECK(!im.live ? isnan(sc[g]) : 0, "removed id %zu scored %g", id, sc[g]);
                continue;
            }
            int m = atoi(im.key + 2);
            out[m] = sc[g];
        }
    sf_asmk_agg_release(&agg);
    free(sc);
    sf_index_searcher_free(s);
}

static int same_scores(const double *a, const double *b, int n)
{
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* ---- Parity with the fixtures and the in-memory IVF ---- */

static double max_rel(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]) / (fabs(b[i]) > 0 ? fabs(b[i]) : 1);
        m = isnan(d) ? INFINITY : fmax(m, d);
    }
    return m;
}

static void check_parity(const char *prefix, int binary, int idf, int n_indexed)
{
    char path[4096], name[128], dir[4096];
    snprintf(dir, sizeof dir, "%s/asmk-small", tu_golden_dir());
    snprintf(name, sizeof name, "parity-%sindex", prefix);
    path_in_tmp(path, sizeof path, name);
    sf_index *idx = build(path, binary, idf, 0, n_indexed, 0);
    if (!idx)
        return;
    sf_error err;
    CHECK(sf_index_verify(idx, &err) == SF_OK, "%sverify: %s", prefix, err.message);

    sf_asmk_params ap = make_params(binary, idf).asmk;
    sf_asmk_ivf *ivf;
    sf_asmk_ivf_create(G.centroids, K, DIM, &ap, &ivf, &err);
    for (int m = 0; m < n_indexed; m++) {
        const float *d;
        size_t n;
        db_rows(m, &d, &n);
        sf_asmk_ivf_add_descriptors(ivf, (uint32_t)m, d, n, 1, &err);
    }
    sf_asmk_ivf_finalize(ivf, &err);
    /* The stored norms are the IVF's, bit for bit. */
    int norms_equal = 1;
    for (int m = 0; m < n_indexed; m++) {
        sf_index_image im;
        sf_index_get_image(idx, (size_t)m, &im, &err);
        norms_equal &= memcmp(&im.norm, &sf_asmk_ivf_norm_factor(ivf)[m], 8) == 0;
    }
    CHECK(norms_equal, "%snorms differ from the IVF's", prefix);

    snprintf(name, sizeof name, "%sranks.i64", prefix);
    int64_t *eranks = tu_read_array(dir, name, (size_t)N_Q * n_indexed, 8);
    snprintf(name, sizeof name, "%sscores.f64", prefix);
    double *escores = tu_read_array(dir, name, (size_t)N_Q * n_indexed, 8);
    double *sc = malloc((size_t)n_indexed * sizeof *sc), *ref = malloc((size_t)n_indexed * 8);
    double *aligned = malloc((size_t)n_indexed * 8), *by_id = malloc((size_t)n_indexed * 8);
    uint32_t *order = malloc((size_t)n_indexed * 4);
    sf_index_hit *hits = malloc((size_t)n_indexed * sizeof *hits);
    double worst = 0;
    int not_exact = 0, rank_bad = 0, topk_bad = 0;
    const sf_index *shards[1] = { idx };
    for (int q = 0; q < N_Q; q++) {
        sf_asmk_agg agg;
        query_agg(q, binary, &agg);
        for (int t = 1; t <= 4; t++) {
            sf_index_search_options o;
            sf_index_search_options_default(&o);
            o.threads = t <= 3 ? t : 2;
            o.tile = t <= 3 ? 0 : 7;
            sf_status st = sf_index_search_scores(shards, 1, &agg, &o, sc, &err);
            CHECK(st == SF_OK, "%ssearch: %s", prefix, err.message);
            sf_asmk_ivf_search(ivf, &agg, ref, &err);
            not_exact += !same_scores(sc, ref, n_indexed);
        }
        const int64_t *er = eranks + (size_t)q * n_indexed;
        const double *es = escores + (size_t)q * n_indexed;
        for (int j = 0; j < n_indexed; j++) {
            by_id[er[j]] = es[j];
            aligned[j] = sc[er[j]];
        }
        worst = fmax(worst, max_rel(aligned, es, (size_t)n_indexed));
        sf_asmk_rank(sc, (size_t)n_indexed, order, &err);
        for (int j = 0; j < n_indexed; j++)
            if ((int64_t)order[j] != er[j] && by_id[order[j]] != by_id[er[j]])
                rank_bad++;
        /* Top-k is the head of the full ranking. */
        size_t n_hits;
        sf_status st = sf_index_search(shards, 1, &agg, NULL, 7, hits, &n_hits, &err);
        CHECK(st == SF_OK && n_hits == (size_t)(n_indexed < 7 ? n_indexed : 7), "%stop-k: %s",
              prefix, err.message);
        for (size_t j = 0; j < n_hits; j++) {
            char key[32];
            key_of_img((int)order[j], key, sizeof key);
            topk_bad += hits[j].id != order[j] || hits[j].score != sc[order[j]] ||
                        hits[j].key_len != strlen(key) || memcmp(hits[j].key, key, 4) != 0;
        }
        sf_asmk_agg_release(&agg);
    }
    CHECK(worst <= 1e-5, "%sscores: relative error %g against the fixture", prefix, worst);
    CHECK(rank_bad == 0, "%sranks: %d positions differ outside ties", prefix, rank_bad);
    CHECK(not_exact == 0, "%s%d searches differ from sf_asmk_ivf_search", prefix, not_exact);
    CHECK(topk_bad == 0, "%s%d top-k hits differ from the ranking", prefix, topk_bad);
    printf("parity %-7s %2d images: rel %.3g vs fixture, %d inexact vs IVF, %d rank diffs\n",
           *prefix ? prefix : "bin_", n_indexed, worst, not_exact, rank_bad);
    free(sc);
    free(ref);
    free(aligned);
    free(by_id);
    free(order);
    free(hits);
    free(eranks);
    free(escores);
    sf_asmk_ivf_free(ivf);
    sf_index_close(idx);
}

/* ---- Updates ---- */

static sf_index_writer *writer(const char *path)
{
    sf_index_writer *w = NULL;
    sf_error err;
    sf_status st = sf_index_writer_open(path, &G.cbid, NULL, &w, &err);
    CHECK(st == SF_OK, "writer %s: %s", path, err.message);
    return w;
}

static void add_img(sf_index_writer *w, int m, int as, int *replaced)
{
    const float *d;
    size_t n;
    char key[32];
    sf_error err;
    db_rows(m, &d, &n);
    key_of_img(as, key, sizeof key);
    sf_status st = sf_index_writer_add_descriptors(w, G.cb, key, d, n, replaced, &err);
    CHECK(st == SF_OK, "add %s: %s", key, err.message);
}

static void commit(sf_index_writer *w)
{
    sf_error err;
    sf_status st = sf_index_writer_commit(w, &err);
    CHECK(st == SF_OK, "commit: %s", err.message);
}

static sf_index *reopen(const char *path)
{
    sf_index *idx = NULL;
    sf_error err;
    sf_status st = sf_index_open(path, &idx, &err);
    CHECK(st == SF_OK, "open %s: %s", path, err.message);
    if (st == SF_OK)
        CHECK(sf_index_verify(idx, &err) == SF_OK, "verify %s: %s", path, err.message);
    return idx;
}

/* Compare every query's scores with ref (by image number). */
static int differs_from(const sf_index *idx, int binary, const double ref[N_Q][N_DB])
{
    int bad = 0;
    for (int q = 0; q < N_Q; q++) {
        double sc[N_DB];
        const sf_index *sh[1] = { idx };
        scores_by_image(sh, 1, q, binary, 2, sc);
        bad += !same_scores(sc, ref[q], N_DB);
    }
    return bad;
}

static void check_updates(int binary, int idf)
{
    char one[4096], path[4096];
    const char *tag = binary ? (idf ? "bin+idf" : "bin") : "float";
    path_in_tmp(one, sizeof one, "upd-one");
    path_in_tmp(path, sizeof path, "upd");
    sf_error err;

    /* Reference: images 0..39 in one commit. */
    sf_index *ref_idx = build(one, binary, idf, 0, N_DB, 0);
    if (!ref_idx)
        return;
    static double ref[N_Q][N_DB];
    for (int q = 0; q < N_Q; q++) {
        const sf_index *sh[1] = { ref_idx };
        scores_by_image(sh, 1, q, binary, 1, ref[q]);
    }
    sf_index_close(ref_idx);

    /* The same in four batches, one per commit. */
    sf_index *idx = build(path, binary, idf, 0, 10, 0);
    sf_index_close(idx);
    for (int b = 1; b < 4; b++) {
        sf_index_writer *w = writer(path);
        for (int m = 10 * b; m < 10 * b + 10; m++)
            add_img(w, m, m, NULL);
        commit(w);
        sf_index_writer_free(w);
    }
    idx = reopen(path);
    CHECK(differs_from(idx, binary, ref) == 0, "%s: batches differ from one go", tag);
    CHECK(sf_index_n_images(idx) == N_DB, "%s: %zu images", tag, sf_index_n_images(idx));
    sf_index_info info;
    sf_index_get_info(idx, &info, &err);
    CHECK(info.n_segments == 4 && info.generation == 5, "%s: %zu segments, generation %llu", tag,
          info.n_segments, (unsigned long long)info.generation);
    sf_index_close(idx);

    /* Add all but with wrong vectors under some keys, remove some, re-add:
     * a replaced key must end up with the image it was last given. */
    idx = build(path, binary, idf, 0, 0, 0);
    sf_index_close(idx);
    sf_index_writer *w = writer(path);
    for (int m = 0; m < N_DB; m++)
        add_img(w, (m % 5 == 0) ? (m + 1) % N_DB : m, m, NULL); /* db00 gets db01's vectors */
    commit(w);
    for (int m = 0; m < N_DB; m += 3) {
        char key[32];
        key_of_img(m, key, sizeof key);
        CHECK(sf_index_writer_remove(w, key, &err) == SF_OK, "remove %s: %s", key, err.message);
    }
    CHECK(sf_index_writer_remove(w, "db00", &err) == SF_ERR_NOT_FOUND, "removed twice");
    CHECK(sf_index_writer_remove(w, "nope", &err) == SF_ERR_NOT_FOUND, "missing key removed");
    commit(w);
    sf_index_writer_free(w);
    w = writer(path);
    int replaced = 0, n_replaced = 0;
    for (int m = 0; m < N_DB; m++) {
        if (m % 3 == 0 || m % 5 == 0) {
            add_img(w, m, m, &replaced);
            n_replaced += replaced;
        }
    }
    /* Replaced within one batch: staged twice, the second wins. */
    add_img(w, 2, 7, &replaced);
    CHECK(replaced, "%s: a staged key was not replaced", tag);
    add_img(w, 7, 7, &replaced);
    CHECK(replaced, "%s: a staged key was not replaced", tag);
    CHECK(sf_index_writer_n_images(w) == N_DB, "%s: writer counts %zu images", tag,
          sf_index_writer_n_images(w));
    commit(w);
    sf_index_writer_free(w);
    /* Keys 0,5,10.. (m%5==0, not m%3==0) were live with wrong vectors: replaced. */
    int want_replaced = 0;
    for (int m = 0; m < N_DB; m++)
        want_replaced += m % 5 == 0 && m % 3 != 0;
    CHECK(n_replaced == want_replaced, "%s: %d keys replaced, expected %d", tag, n_replaced,
          want_replaced);
    idx = reopen(path);
    CHECK(sf_index_n_images(idx) == N_DB, "%s: %zu images after add-remove-add", tag,
          sf_index_n_images(idx));
    CHECK(differs_from(idx, binary, ref) == 0, "%s: add-remove-add differs from one go", tag);
    size_t id;
    CHECK(sf_index_find(idx, "db07", &id, &err) == SF_OK && sf_index_is_live(idx, id),
          "find db07: %s", err.message);
    sf_index_get_info(idx, &info, &err);
    size_t ids_before = info.n_ids;
    sf_index_close(idx);

    /* Compaction renumbers and changes nothing else. */
    w = writer(path);
    CHECK(sf_index_writer_compact(w, &err) == SF_OK, "%s: compact: %s", tag, err.message);
    /* The writer goes on over the compacted file. */
    add_img(w, 3, 3, &replaced);
    CHECK(replaced, "%s: key lost by compaction", tag);
    commit(w);
    sf_index_writer_free(w);
    idx = reopen(path);
    sf_index_get_info(idx, &info, &err);
    CHECK(info.n_ids == N_DB + 1 && ids_before > N_DB && info.n_segments == 2,
          "%s: after compaction %zu ids (before %zu), %zu segments", tag, info.n_ids, ids_before,
          info.n_segments);
    CHECK(differs_from(idx, binary, ref) == 0, "%s: compaction changed the scores", tag);
    sf_index_close(idx);
    w = writer(path);
    CHECK(sf_index_writer_compact(w, &err) == SF_OK, "%s: compact: %s", tag, err.message);
    sf_index_writer_free(w);
    idx = reopen(path);
    sf_index_get_info(idx, &info, &err);
    CHECK(info.n_ids == N_DB && info.n_segments == 1, "%s: %zu ids, %zu segments", tag,
          info.n_ids, info.n_segments);
    CHECK(differs_from(idx, binary, ref) == 0, "%s: second compaction changed the scores", tag);
    sf_index_close(idx);

    /* Segments written out mid-batch (a tiny staging limit): the same. */
    idx = build(path, binary, idf, 0, N_DB, 4096);
    sf_index_get_info(idx, &info, &err);
    CHECK(info.n_segments > 5, "%s: %zu segments with a tiny staging limit", tag,
          info.n_segments);
    CHECK(sf_index_verify(idx, &err) == SF_OK, "%s: verify: %s", tag, err.message);
    CHECK(differs_from(idx, binary, ref) == 0, "%s: many segments differ from one", tag);
    sf_index_close(idx);
    printf("updates %-7s: batches, add-remove-add, replace, compact, segments: ok\n", tag);
}

/* ---- Shards ---- */

static void check_shards(void)
{
    char a[4096], b[4096], one[4096];
    path_in_tmp(one, sizeof one, "shard-one");
    path_in_tmp(a, sizeof a, "shard-a");
    path_in_tmp(b, sizeof b, "shard-b");
    sf_error err;
    for (int idf = 0; idf <= 1; idf++) {
        sf_index *x = build(one, 1, idf, 0, N_DB, 0);
        sf_index *s1 = build(a, 1, idf, 0, 17, 0);
        sf_index *s2 = build(b, 1, idf, 17, N_DB, 0);
        if (!x || !s1 || !s2)
            return;
        const sf_index *two[2] = { s1, s2 };
        const sf_index *single[1] = { x };
        sf_index_searcher *s;
        sf_status st = sf_index_searcher_create(two, 2, NULL, &s, &err);
        if (idf) {
            CHECK(st == SF_ERR_UNSUPPORTED, "idf shards accepted without allow_local_idf");
        } else {
            CHECK(st == SF_OK, "shards: %s", err.message);
            CHECK(sf_index_searcher_n_ids(s) == N_DB, "shards: %zu ids",
                  sf_index_searcher_n_ids(s));
            sf_index_searcher_free(s);
        }
        int bad = 0;
        for (int q = 0; q < N_Q; q++) {
            double s_one[N_DB], s_two[N_DB];
            scores_by_image(single, 1, q, 1, 1, s_one);
            scores_by_image(two, 2, q, 1, 2, s_two);
            bad += !same_scores(s_one, s_two, N_DB);
            /* Each shard alone scores its images as it does among the others. */
            double s_a[N_DB];
            const sf_index *only[1] = { s2 };
            scores_by_image(only, 1, q, 1, 1, s_a);
            for (int m = 17; m < N_DB; m++)
                bad += memcmp(&s_a[m], &s_two[m], 8) != 0;
        }
        if (idf)
            CHECK(bad > 0, "idf shards unexpectedly equal one index");
        else
            CHECK(bad == 0, "shards differ from one index in %d places", bad);
        /* Hits carry global ids and keys. */
        sf_asmk_agg agg;
        query_agg(0, 1, &agg);
        sf_index_hit hits[N_DB];
        size_t n;
        sf_index_search_options o;
        sf_index_search_options_default(&o);
        o.allow_local_idf = 1;
        st = sf_index_search(two, 2, &agg, &o, N_DB, hits, &n, &err);
        CHECK(st == SF_OK && n == N_DB, "shard search: %s", err.message);
        int ids_ok = 1;
        for (size_t i = 0; i < n; i++) {
            int m = atoi(hits[i].key + 2);
            ids_ok &= hits[i].global_id == (size_t)m &&
                      hits[i].shard == (m < 17 ? 0u : 1u) &&
                      hits[i].id == (size_t)(m < 17 ? m : m - 17);
            if (i)
                ids_ok &= hits[i].score <= hits[i - 1].score;
        }
        CHECK(ids_ok, "shard hits: ids, shards or order wrong");
        sf_asmk_agg_release(&agg);
        sf_index_close(x);
        sf_index_close(s1);
        sf_index_close(s2);
    }
    /* Mixed parameters or codebooks are refused. */
    sf_index *s1 = build(a, 1, 0, 0, 3, 0);
    sf_index *s2 = build(b, 0, 0, 3, 6, 0);
    const sf_index *two[2] = { s1, s2 };
    sf_index_searcher *s;
    CHECK(sf_index_searcher_create(two, 2, NULL, &s, &err) == SF_ERR_INVALID_ARGUMENT,
          "binary and float shards accepted");
    sf_index_close(s1);
    sf_index_close(s2);
    printf("shards: ok\n");
}

/* ---- Scoring a few images, finding keys ---- */

/* Subset scores equal full scores bit for bit, over several segments,
 * removed images and two shards; keys are found in the right shard. */
static void check_subset(int binary, int idf)
{
    char a[4096], b[4096];
    path_in_tmp(a, sizeof a, "subset-a");
    path_in_tmp(b, sizeof b, "subset-b");
    sf_error err;
    /* A small stage makes several segments. */
    sf_index *s1 = build(a, binary, idf, 0, 20, 4096);
    sf_index *s2 = build(b, binary, idf, 20, N_DB, 0);
    if (!s1 || !s2)
        return;
    sf_index_close(s1);
    sf_index_writer *w = writer(a);
    CHECK(w && sf_index_writer_remove(w, "db03", &err) == SF_OK, "remove: %s", err.message);
    int replaced;
    add_img(w, 5, 7, &replaced); /* db07 now holds image 5, in a new segment */
    commit(w);
    sf_index_writer_free(w);
    s1 = reopen(a);
    sf_index_info in;
    CHECK(s1 && sf_index_get_info(s1, &in, &err) == SF_OK && in.n_segments > 2,
          "expected several segments");
    const sf_index *two[2] = { s1, s2 };
    sf_index_search_options o;
    sf_index_search_options_default(&o);
    o.allow_local_idf = 1;
    sf_index_searcher *s;
    if (sf_index_searcher_create(two, 2, &o, &s, &err) != SF_OK) {
        CHECK(0, "searcher: %s", err.message);
        return;
    }
    const size_t total = sf_index_searcher_n_ids(s);
    double *full = malloc(total * sizeof *full), *sub = malloc(2 * total * sizeof *sub);
    size_t *ids = malloc(2 * total * sizeof *ids);
    int bad = 0;
    for (int q = 0; q < N_Q; q++) {
        sf_asmk_agg agg;
        query_agg(q, binary, &agg);
        CHECK(sf_index_searcher_scores(s, &agg, full, &err) == SF_OK, "%s", err.message);
        /* Every id, backwards, then a few again. */
        size_t n = 0;
        for (size_t i = total; i-- > 0;)
            ids[n++] = i;
        for (size_t i = 0; i < total; i += 3)
            ids[n++] = i;
        CHECK(sf_index_searcher_scores_subset(s, &agg, ids, n, sub, &err) == SF_OK, "%s",
              err.message);
        for (size_t i = 0; i < n; i++)
            bad += memcmp(&sub[i], &full[ids[i]], sizeof(double)) != 0;
        /* One or two at a time: long lists next to few candidates are
         * searched, not read through. */
        for (size_t i = 0; i + 1 < total; i += 2) {
            size_t pick[2] = { i + 1, i };
            double got[2];
            CHECK(sf_index_searcher_scores_subset(s, &agg, pick, 1 + (i % 4 == 0), got, &err) ==
                      SF_OK, "%s", err.message);
            bad += memcmp(&got[0], &full[i + 1], sizeof(double)) != 0;
            if (i % 4 == 0)
                bad += memcmp(&got[1], &full[i], sizeof(double)) != 0;
        }
        sf_asmk_agg_release(&agg);
    }
    CHECK(bad == 0, "subset scores (binary %d, idf %d) differ from full scores in %d places",
          binary, idf, bad);
    size_t out_of_range = total;
    sf_asmk_agg q0;
    query_agg(0, binary, &q0);
    CHECK(sf_index_searcher_scores_subset(s, &q0, &out_of_range, 1, sub, &err) ==
              SF_ERR_INVALID_ARGUMENT, "an id beyond the shards was accepted");
    sf_asmk_agg_release(&q0);

    /* Keys: each live image is found at its global id; removed ones not. */
    int key_bad = 0;
    for (size_t g = 0; g < total; g++) {
        const char *k;
        size_t len, found;
        CHECK(sf_index_searcher_key(s, g, &k, &len, &err) == SF_OK, "%s", err.message);
        int live = sf_index_is_live(g < sf_index_n_ids(s1) ? s1 : s2,
                                    g < sf_index_n_ids(s1) ? g : g - sf_index_n_ids(s1));
        sf_status st = sf_index_searcher_find(s, k, len, &found, &err);
        key_bad += live ? !(st == SF_OK && found == g) : (st == SF_OK && found == g);
    }
    size_t found;
    CHECK(key_bad == 0, "find: %d keys not found at their id", key_bad);
    CHECK(sf_index_searcher_find(s, "db03", 4, &found, &err) == SF_ERR_NOT_FOUND,
          "a removed key was found");
    CHECK(sf_index_searcher_find(s, "nope", 4, &found, &err) == SF_ERR_NOT_FOUND,
          "an unknown key was found");
    free(full);
    free(sub);
    free(ids);
    sf_index_searcher_free(s);
    sf_index_close(s1);
    sf_index_close(s2);
    printf("subset (binary %d, idf %d): ok\n", binary, idf);
}

/* ---- Misuse ---- */

static void check_misuse(void)
{
    char path[4096];
    path_in_tmp(path, sizeof path, "misuse");
    sf_index *idx = build(path, 1, 0, 0, 2, 0);
    sf_index_close(idx);
    sf_error err;
    sf_index_params p = make_params(1, 0);
    CHECK(sf_index_create(path, &p, &G.cbid, NULL, &err) == SF_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "exists"),
          "create over an index: %s", err.message);
    sf_index_codebook_id other = G.cbid;
    other.checksum ^= 1;
    sf_index_writer *w;
    CHECK(sf_index_writer_open(path, &other, NULL, &w, &err) == SF_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "codebook"),
          "another codebook accepted: %s", err.message);
    CHECK(sf_index_writer_open(path, NULL, NULL, &w, &err) == SF_OK, "%s", err.message);
    sf_asmk_agg agg;
    memset(&agg, 0, sizeof agg);
    CHECK(sf_index_writer_add(w, "x", &agg, NULL, &err) == SF_ERR_INVALID_ARGUMENT,
          "add without a codebook");
    CHECK(sf_index_writer_remove(w, "db01", &err) == SF_OK, "remove: %s", err.message);
    commit(w);
    sf_index_writer_free(w);
    w = writer(path);
    query_agg(0, 0, &agg); /* float vectors for a binary index */
    CHECK(sf_index_writer_add(w, "x", &agg, NULL, &err) == SF_ERR_INVALID_ARGUMENT,
          "float vectors in a binary index");
    CHECK(sf_index_writer_add(w, "", &agg, NULL, &err) == SF_ERR_INVALID_ARGUMENT, "empty key");
    sf_asmk_agg_release(&agg);
    /* An image without vectors is allowed and scores 0. */
    memset(&agg, 0, sizeof agg);
    agg.dim = DIM;
    agg.binary = 1;
    CHECK(sf_index_writer_add(w, "empty", &agg, NULL, &err) == SF_OK, "%s", err.message);
    commit(w);
    sf_index_writer_free(w);
    idx = reopen(path);
    CHECK(sf_index_n_images(idx) == 2, "%zu images", sf_index_n_images(idx));
    query_agg(0, 1, &agg);
    double sc[8];
    const sf_index *sh[1] = { idx };
    CHECK(sf_index_search_scores(sh, 1, &agg, NULL, sc, &err) == SF_OK, "%s", err.message);
    CHECK(isnan(sc[1]) && sc[2] == 0.0 && sc[0] > 0, "scores %g %g %g", sc[0], sc[1], sc[2]);
    agg.words[0] = K;
    CHECK(sf_index_search_scores(sh, 1, &agg, NULL, sc, &err) == SF_ERR_INVALID_ARGUMENT,
          "query word out of range");
    sf_asmk_agg_release(&agg);
    CHECK(sf_index_check_codebook(idx, &other, &err) == SF_ERR_INVALID_ARGUMENT,
          "check_codebook");
    CHECK(strcmp(sf_index_codebook_path(idx), "centroids.f32") == 0, "codebook path '%s'",
          sf_index_codebook_path(idx));
    sf_index_close(idx);
    CHECK(sf_index_open("/nonexistent/x", &idx, &err) == SF_ERR_NOT_FOUND, "open missing");
    sf_index_close(NULL);
    sf_index_writer_free(NULL);
    sf_index_searcher_free(NULL);
}

/* ---- Images of a stream ---- */

/* An image as sf_stream_read_image gives it: a provenance record when p is
 * not NULL, then the descriptors of database image m as a K x dim
 * local_desc record (dim 0: none). */
typedef struct test_image {
    sf_record recs[2];
    uint64_t fields[SF_PROVENANCE_FIELDS];
    sf_stream_image img;
} test_image;

static const sf_stream_image *make_image(test_image *t, const char *key, const sf_provenance *p,
                                         int m, uint64_t dim)
{
    memset(t, 0, sizeof *t);
    size_t n = 0;
    if (p) {
        sf_provenance_record(&t->recs[n++], p, key, t->fields);
        t->img.has_provenance = 1;
        t->img.provenance = *p;
    }
    if (dim) {
        const float *d;
        size_t rows;
        db_rows(m, &d, &rows);
        sf_record *r = &t->recs[n++];
        r->kind = SF_KIND_LOCAL_DESC;
        r->dtype = SF_DTYPE_F32;
        r->ndim = 2;
        r->shape[0] = rows;
        r->shape[1] = dim;
        r->scale = 1.0;
        r->key = key;
        r->key_len = strlen(key);
        r->data = d;
        r->data_size = rows * dim * 4;
    }
    t->img.key = key;
    t->img.key_len = strlen(key);
    t->img.recs = t->recs;
    t->img.count = n;
    return &t->img;
}

static void check_add_image(void)
{
    char path[4096];
    path_in_tmp(path, sizeof path, "images");
    sf_index_close(build(path, 1, 0, 0, 0, 0));
    sf_index_writer *w = writer(path);
    if (!w)
        return;
    const sf_provenance p1 = { SF_STAGE_LIT, 1, 2, 3, 4, 5 }, p2 = { SF_STAGE_LIT, 1, 2, 3, 9, 5 },
                        fm = { SF_STAGE_EXTRACT, 1, 2, 3, 0, 0 };
    test_image t;
    sf_error err;
    int replaced = -1;
    /* Refused images change nothing, the fingerprint included. */
    CHECK(sf_index_writer_add_image(w, G.cb, make_image(&t, "db00", NULL, 0, DIM), 0, &replaced,
                                    &err) == SF_ERR_MISMATCH &&
              strstr(err.message, "'db00': no provenance record") && replaced == 0,
          "no provenance: %s", err.message);
    CHECK(sf_index_writer_add_image(w, G.cb, make_image(&t, "db00", &fm, 0, DIM), 0, NULL,
                                    &err) == SF_ERR_MISMATCH &&
              strstr(err.message, "the output of sf-extract"), "feature maps: %s", err.message);
    CHECK(sf_index_writer_add_image(w, G.cb, make_image(&t, "db00", &p1, 0, 0), 0, NULL, &err) ==
              SF_ERR_INVALID_ARGUMENT &&
              strcmp(err.message, "no local_desc record (the output of sf-lit)") == 0,
          "no descriptors: %s", err.message);
    CHECK(sf_index_writer_add_image(w, G.cb, make_image(&t, "db00", &p1, 0, DIM / 2), 0, NULL,
                                    &err) == SF_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "local_desc is not a K x 128 float32 array"),
          "another dimension: %s", err.message);
    CHECK(sf_index_writer_n_images(w) == 0 && sf_index_writer_features(w) == 0,
          "refused images staged or recorded something");

    /* The first image added records its fingerprint; the others must match. */
    CHECK(sf_index_writer_add_image(w, G.cb, make_image(&t, "db00", &p1, 0, DIM), 0, &replaced,
                                    &err) == SF_OK && replaced == 0, "add: %s", err.message);
    CHECK(sf_index_writer_features(w) == sf_provenance_features(&p1), "features recorded");
    CHECK(sf_index_writer_add_image(w, G.cb, make_image(&t, "db01", &p2, 1, DIM), 0, NULL,
                                    &err) == SF_ERR_MISMATCH &&
              strstr(err.message, "the index holds features"), "another model: %s", err.message);
    CHECK(sf_index_writer_add_image(w, G.cb, &t.img, 1, NULL, &err) == SF_OK,
          "allow_mismatch: %s", err.message);
    CHECK(sf_index_writer_add_image(w, G.cb, make_image(&t, "db02", NULL, 2, DIM), 1, NULL,
                                    &err) == SF_OK, "allow_mismatch: %s", err.message);
    CHECK(sf_index_writer_add_image(w, G.cb, make_image(&t, "db00", &p1, 3, DIM), 0, &replaced,
                                    &err) == SF_OK && replaced == 1, "replace: %s", err.message);
    CHECK(sf_index_writer_features(w) == sf_provenance_features(&p1), "features kept");
    commit(w);
    sf_index_writer_free(w);
    sf_index *idx = reopen(path);
    if (!idx)
        return;
    size_t id;
    sf_index_image im;
    CHECK(sf_index_n_images(idx) == 3 && sf_index_features(idx) == sf_provenance_features(&p1),
          "%zu images, features %016llx", sf_index_n_images(idx),
          (unsigned long long)sf_index_features(idx));
    CHECK(sf_index_find(idx, "db00", &id, &err) == SF_OK &&
              sf_index_get_image(idx, id, &im, &err) == SF_OK && id == 3,
          "the replacement is live: %s", err.message);
    sf_index_close(idx);
}

/* ---- Crashes ---- */

static size_t live_count(const char *path)
{
    sf_index *idx = reopen(path);
    size_t n = idx ? sf_index_n_images(idx) : (size_t)-1;
    sf_index_close(idx);
    return n;
}

static sf_status open_writer_opt(const char *path, int accept, sf_index_writer **w,
                                 sf_error *err)
{
    sf_index_writer_options o;
    sf_index_writer_options_default(&o);
    o.accept_rollback = accept;
    return sf_index_writer_open(path, &G.cbid, &o, w, err);
}

/* A child adds db images [lo, hi) and commits (or compacts), crashing at
 * point; returns its exit status.  accept: accept_rollback. */
static int crash_child(const char *path, int lo, int hi, int compact, int point, int accept)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", point);
        setenv("SF_INDEX_TEST_CRASH", v, 1);
        sf_index_writer *w;
        sf_error err;
        if (open_writer_opt(path, accept, &w, &err) != SF_OK)
            _exit(3);
        for (int m = lo; m < hi; m++) {
            const float *d;
            size_t n;
            char key[32];
            db_rows(m, &d, &n);
            key_of_img(m, key, sizeof key);
            if (sf_index_writer_add_descriptors(w, G.cb, key, d, n, NULL, &err) != SF_OK)
                _exit(4);
        }
        if (compact == 1 && sf_index_writer_remove(w, "db00", &err) != SF_OK)
            _exit(5);
        sf_status st = compact ? sf_index_writer_compact(w, &err) : sf_index_writer_commit(w, &err);
        _exit(st == SF_OK ? 0 : 6);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void check_crashes(void)
{
    char path[4096];
    path_in_tmp(path, sizeof path, "crash");
    for (int point = 1; point <= 9; point++) {
        sf_index *idx = build(path, 1, 1, 0, 10, 0);
        sf_index_close(idx);
        int rc = crash_child(path, 10, 15, 0, point, 0);
        CHECK(rc == 86, "point %d: the writer exited %d, not at the crash point", point, rc);
        size_t want = point <= 7 ? 10 : 15;
        if (point == 7) {
            /* A torn slot reads as damage that may have lost a commit (a
             * flipped byte would look the same): reported, and the next
             * writer goes on only when told to. */
            sf_index *x = NULL;
            sf_error err;
            sf_index_slot_state s;
            CHECK(sf_index_open(path, &x, &err) == SF_OK, "torn slot: %s", err.message);
            CHECK(x && sf_index_n_images(x) == want && sf_index_verify(x, &err) != SF_OK &&
                      sf_index_check_slots(x, &s, &err) != SF_OK && s.newer_lost,
                  "a torn slot went unreported");
            sf_index_close(x);
            rc = crash_child(path, 20, 22, 0, 0, 0);
            CHECK(rc == 3, "after a torn slot, a writer exited %d", rc);
        } else {
            CHECK(live_count(path) == want, "crash at %d: %zu images, expected %zu", point,
                  live_count(path), want);
        }
        /* The next writer recovers (cuts the tail) and commits. */
        rc = crash_child(path, 20, 22, 0, 0, point == 7);
        CHECK(rc == 0, "after crash %d: writer exited %d", point, rc);
        size_t n = live_count(path);
        CHECK(n == want + 2, "after crash %d: %zu images, expected %zu", point, n, want + 2);
    }
    for (int point = 11; point <= 14; point++) {
        sf_index *idx = build(path, 0, 0, 0, 10, 0);
        sf_index_close(idx);
        int rc = crash_child(path, 10, 12, 1, point, 0);
        CHECK(rc == 86, "compact point %d: the writer exited %d", point, rc);
        /* The commit before compaction completed: 10 + 2 - 1 either way. */
        size_t n = live_count(path);
        CHECK(n == 11, "compact crash at %d: %zu images", point, n);
        sf_index *x = reopen(path);
        sf_index_info info;
        sf_error err;
        sf_index_get_info(x, &info, &err);
        CHECK(info.n_segments == (point <= 13 ? 2u : 1u), "compact crash at %d: %zu segments",
              point, info.n_segments);
        sf_index_close(x);
        rc = crash_child(path, 20, 22, 2, 0, 0);
        CHECK(rc == 0 && live_count(path) == 13, "after compact crash %d: exit %d", point, rc);
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.compact.tmp", path);
        CHECK(access(tmp, F_OK) != 0, "compact crash %d: the temporary file was left", point);
    }
    printf("crash points 1-9, 11-14: index intact\n");

    /* SIGKILL at random moments of a writer that commits batch after
     * batch: every completed commit survives. */
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    int lost = 0, kills = 0;
    for (int round = 0; round < 12; round++) {
        sf_index *idx = build(path, 1, round & 1, 0, 0, 0);
        sf_index_close(idx);
        int fds[2];
        if (pipe(fds) != 0)
            exit(99);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            sf_index_writer *w;
            sf_error err;
            for (int b = 0;; b++) {
                if (sf_index_writer_open(path, &G.cbid, NULL, &w, &err) != SF_OK)
                    _exit(3);
                for (int m = 0; m < 2; m++) {
                    const float *d;
                    size_t n;
                    char key[32];
                    db_rows((2 * b + m) % N_DB, &d, &n);
                    snprintf(key, sizeof key, "k%d", 2 * b + m);
                    sf_index_writer_add_descriptors(w, G.cb, key, d, n, NULL, &err);
                }
                if (sf_index_writer_commit(w, &err) != SF_OK)
                    _exit(6);
                if (write(fds[1], "x", 1) != 1)
                    _exit(7);
                sf_index_writer_free(w);
            }
        }
        close(fds[1]);
        usleep((useconds_t)(5000 + rand() % 60000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        kills += WIFSIGNALED(status);
        char buf[4096];
        ssize_t r;
        size_t done = 0;
        while ((r = read(fds[0], buf, sizeof buf)) > 0)
            done += (size_t)r;
        close(fds[0]);
        size_t n = live_count(path);
        if (n < 2 * done || n > 2 * done + 2) {
            lost++;
            CHECK(0, "kill round %d: %zu images after %zu completed commits", round, n, done);
        }
    }
    CHECK(kills > 0, "no writer was killed");
    printf("SIGKILL: 12 rounds (seed %u), %d killed, %d lost commits\n", seed, kills, lost);
}

/* ---- Lock ---- */

/* A child that waits for the go byte on fd, then opens a writer (which
 * blocks while the parent holds the lock), checks that it sees the
 * parent's last commit (want images: it did wait), optionally adds db
 * image m, and exits 0.  Forked before the parent opens its writer: a
 * child inherits open descriptors and with them the parent's flock. */
static pid_t lock_child(const char *path, int fd, int m, size_t want)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    char c;
    if (read(fd, &c, 1) != 1)
        _exit(9);
    sf_index_writer *w;
    sf_error err;
    if (sf_index_writer_open(path, &G.cbid, NULL, &w, &err) != SF_OK)
        _exit(1);
    if (sf_index_writer_n_images(w) != want)
        _exit(3);
    if (m >= 0) {
        add_img(w, m, m, NULL);
        if (sf_index_writer_commit(w, &err) != SF_OK)
            _exit(2);
    }
    sf_index_writer_free(w);
    _exit(0);
}

static void check_lock(void)
{
    char path[4096];
    path_in_tmp(path, sizeof path, "lock");
    sf_index *idx = build(path, 1, 0, 0, 2, 0);
    sf_index_close(idx);
    int go[2];
    if (pipe(go) != 0)
        exit(99);
    pid_t pid = lock_child(path, go[0], -1, 3);
    sf_index_writer *a = writer(path), *b = NULL;
    sf_error err;
    sf_index_writer_options o;
    sf_index_writer_options_default(&o);
    o.no_wait = 1;
    CHECK(sf_index_writer_open(path, NULL, &o, &b, &err) == SF_ERR_IO &&
              strstr(err.message, "locked"),
          "a second writer was not refused: %s", err.message);
    /* Readers are not blocked. */
    idx = reopen(path);
    sf_index_close(idx);
    if (write(go[1], "x", 1) != 1)
        exit(99);
    usleep(300000);
    add_img(a, 5, 5, NULL);
    commit(a);
    sf_index_writer_free(a);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the second writer did not wait for the first one's commit (status %d)", status);

    /* A waiting writer follows a compaction to the new file. */
    pid = lock_child(path, go[0], 6, 4);
    a = writer(path);
    if (write(go[1], "x", 1) != 1)
        exit(99);
    usleep(200000);
    CHECK(sf_index_writer_compact(a, &err) == SF_OK, "compact: %s", err.message);
    usleep(100000);
    add_img(a, 7, 7, NULL);
    commit(a);
    sf_index_writer_free(a);
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer after compaction: %d", status);
    CHECK(live_count(path) == 5, "after compaction and two writers: %zu images",
          live_count(path));
    close(go[0]);
    close(go[1]);
    printf("lock: ok\n");
}

/* ---- Damaged files ---- */

static unsigned char *read_all(const char *path, size_t *size)
{
    return tu_read_file(NULL, path, size);
}

/* Flip every bit position's byte of data once; count opens that fail
 * without naming the file, flips that go unnoticed (outside `unused`), and
 * opens that fell back to an older commit, silently (verify passing) or
 * not. */
static void flip_all(const unsigned char *data, size_t size, uint64_t gen, int compacted,
                     int *bad, int *silent, int *older, int *silent_rollback)
{
    unsigned char *copy = malloc(size);
    sf_error err;
    for (size_t i = 0; i < size; i++) {
        memcpy(copy, data, size);
        copy[i] ^= (unsigned char)(1u << (i % 8));
        sf_index *idx;
        sf_status st = sf_index_open_memory(copy, size, "flip", &idx, &err);
        /* The slack after each 64-byte slot in its 512-byte sector, and
         * the empty second slot of a compacted file (sf-index(5)). */
        int unused = (i >= 576 && i < 1024) || (i >= 1088 && i < 1536) ||
                     (compacted && i >= 1024);
        if (st == SF_OK) {
            sf_index_info info;
            sf_index_get_info(idx, &info, &err);
            if (info.generation < gen) {
                (*older)++; /* the newest slot was damaged: the older commit is used */
                sf_index_slot_state slots;
                if (sf_index_verify(idx, &err) == SF_OK ||
                    sf_index_check_slots(idx, &slots, &err) == SF_OK || !slots.newer_lost)
                    (*silent_rollback)++;
            } else if (sf_index_verify(idx, &err) == SF_OK && !unused) {
                if (getenv("SF_TEST_DEBUG"))
                    fprintf(stderr, "silent flip at %zu\n", i);
                (*silent)++;
            }
            sf_index_close(idx);
        } else if (strncmp(err.message, "flip: ", 6) != 0) {
            (*bad)++;
        }
    }
    free(copy);
}

static void check_damage(void)
{
    char path[4096];
    path_in_tmp(path, sizeof path, "damage");
    sf_index *idx = build(path, 1, 1, 0, 3, 0);
    sf_index_close(idx);
    sf_index_writer *w = writer(path); /* a second commit: both slots used */
    add_img(w, 3, 3, NULL);
    commit(w);
    sf_index_writer_free(w);
    size_t size;
    unsigned char *data = read_all(path, &size);
    sf_error err;

    int bad = 0;
    for (size_t cut = 0; cut < size; cut += cut < 2048 ? 97 : 1013) {
        sf_status st = sf_index_open_memory(data, cut, "cut", &idx, &err);
        if (st == SF_OK) {
            bad++;
            sf_index_close(idx);
        } else if (strncmp(err.message, "cut: ", 5) != 0) {
            bad++;
        }
    }
    CHECK(bad == 0, "%d truncated files opened or gave unnamed errors", bad);

    /* Two commits: the superseded commit record and slot are not read, but
     * damage to the newest slot falls back to the previous commit. */
    int silent = 0, older = 0, silent_rollback = 0;
    flip_all(data, size, 3, 0, &bad, &silent, &older, &silent_rollback);
    CHECK(bad == 0, "%d damaged files gave unnamed errors", bad);
    CHECK(older > 0 && older <= 64 * 8, "%d flips fell back to the older commit", older);
    CHECK(silent_rollback == 0, "%d of %d fallbacks to the older commit went unreported",
          silent_rollback, older);
    free(data);

    /* Compacted: one commit, every byte that is read is checked. */
    w = writer(path);
    CHECK(sf_index_writer_compact(w, &err) == SF_OK, "compact: %s", err.message);
    sf_index_writer_free(w);
    data = read_all(path, &size);
    int older2 = 0;
    silent = 0;
    flip_all(data, size, 4, 1, &bad, &silent, &older2, &silent_rollback);
    CHECK(bad == 0, "%d damaged files gave unnamed errors", bad);
    CHECK(silent == 0, "%d bit flips went unnoticed", silent);
    CHECK(older2 == 0, "%d flips of a one-commit file fell back", older2);
    printf("damage: every truncation refused; every flip of a %zu-byte index caught; "
           "with two commits %d flips fell back to the previous commit\n", size, older);
    free(data);
}

/* ---- Header sizes, commit slots, durability ---- */

/* Make the header of the index file image d claim k words. */
static void set_header_k(unsigned char *d, uint64_t k)
{
    for (int i = 0; i < 8; i++)
        d[32 + i] = (unsigned char)(k >> (8 * i));
    uint64_t h = XXH64(d, 504, 0);
    for (int i = 0; i < 8; i++)
        d[504 + i] = (unsigned char)(h >> (8 * i));
}

static void write_whole(const char *path, const void *data, size_t size)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) {
        fprintf(stderr, "%s: cannot write\n", path);
        exit(99);
    }
}

static long max_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* An empty index holds nothing k-sized: the k of its header must be bounded
 * before anything is sized by it, and reading one of the largest k allowed
 * must not take memory in proportion to it. */
static void check_header_bounds(void)
{
    char path[4096];
    path_in_tmp(path, sizeof path, "bounds");
    unlink(path);
    sf_index_params p = make_params(1, 0);
    sf_index_codebook_id cb = { 65536, 128, 7 };
    sf_error err;
    CHECK(sf_index_create(path, &p, &cb, "cb", &err) == SF_OK, "create: %s", err.message);
    size_t size;
    unsigned char *d = read_all(path, &size);
    CHECK(size < 2048, "an empty index of 65536 words has %zu bytes", size);

    const uint64_t huge[] = { 1200000000, SF_INDEX_MAX_WORDS + 1 };
    for (size_t i = 0; i < 2; i++) {
        set_header_k(d, huge[i]);
        write_whole(path, d, size);
        sf_index *idx = NULL;
        sf_status st = sf_index_open_memory(d, size, "huge", &idx, &err);
        CHECK(st == SF_ERR_FORMAT && strstr(err.message, "words"),
              "k %llu in memory: status %d (%s)", (unsigned long long)huge[i], st,
              st ? err.message : "opened");
        sf_index_close(idx);
        idx = NULL;
        st = sf_index_open(path, &idx, &err);
        CHECK(st == SF_ERR_FORMAT && strstr(err.message, "words"), "k %llu: status %d (%s)",
              (unsigned long long)huge[i], st, st ? err.message : "opened");
        sf_index_close(idx);
        sf_index_writer *w = NULL;
        st = sf_index_writer_open(path, NULL, NULL, &w, &err);
        CHECK(st == SF_ERR_FORMAT, "k %llu: a writer opened it (%d)", (unsigned long long)huge[i],
              st);
        sf_index_writer_free(w);
    }
    cb.k = SF_INDEX_MAX_WORDS + 1;
    unlink(path);
    CHECK(sf_index_create(path, &p, &cb, "cb", &err) == SF_ERR_INVALID_ARGUMENT,
          "an index for %llu words was created", (unsigned long long)cb.k);

    /* The largest k: checking, info and a writer open take no k-sized
     * memory (64 MiB of idf, as they once did, would show). */
    set_header_k(d, SF_INDEX_MAX_WORDS);
    write_whole(path, d, size);
    long before = max_rss_kb();
    sf_index *idx = NULL;
    sf_index_info info;
    CHECK(sf_index_open(path, &idx, &err) == SF_OK, "k 2^24: %s", err.message);
    if (idx) {
        CHECK(sf_index_verify(idx, &err) == SF_OK, "k 2^24: verify: %s", err.message);
        CHECK(sf_index_get_info(idx, &info, &err) == SF_OK && info.words_used == 0,
              "k 2^24: info: %s", err.message);
    }
    sf_index_close(idx);
    sf_index_writer *w = NULL;
    CHECK(sf_index_writer_open(path, NULL, NULL, &w, &err) == SF_OK, "k 2^24: writer: %s",
          err.message);
    if (w)
        CHECK(sf_index_writer_commit(w, &err) == SF_OK, "k 2^24: commit: %s", err.message);
    sf_index_writer_free(w);
    long grew = max_rss_kb() - before;
    CHECK(grew < 16 * 1024, "an empty index of 2^24 words took %ld KiB", grew);
    free(d);
    printf("header bounds: k beyond %d refused; an empty index of that many words read in "
           "%ld KiB\n", SF_INDEX_MAX_WORDS, grew);
}

static void flip_byte(const char *path, long at)
{
    int fd = open(path, O_RDWR);
    unsigned char b = 0;
    if (fd < 0 || pread(fd, &b, 1, at) != 1) {
        fprintf(stderr, "%s: cannot read\n", path);
        exit(99);
    }
    b ^= 0x10;
    if (pwrite(fd, &b, 1, at) != 1 || close(fd) != 0)
        exit(99);
}

/* A damaged newest slot rolls the index back a commit: said by check, and
 * writers refuse to discard the newer commit unless told to; a damaged
 * older slot loses nothing; a slot never written is not damage. */
static void check_rollback(void)
{
    char path[4096];
    path_in_tmp(path, sizeof path, "rollback");
    sf_index *idx = build(path, 1, 0, 0, 3, 0); /* generation 1 in slot 0, 2 in slot 1 */
    sf_error err;
    sf_index_slot_state s;
    CHECK(sf_index_check_slots(idx, &s, &err) == SF_OK && s.damaged == -1,
          "a fresh index has a damaged slot: %s", err.message);
    sf_index_close(idx);
    unlink(path);
    sf_index_params p = make_params(1, 0);
    CHECK(sf_index_create(path, &p, &G.cbid, "cb", &err) == SF_OK, "create: %s", err.message);
    idx = reopen(path); /* one slot never written */
    CHECK(idx && sf_index_check_slots(idx, &s, &err) == SF_OK, "a new index: %s", err.message);
    sf_index_close(idx);

    for (int older = 0; older <= 1; older++) {
        sf_index_close(build(path, 1, 0, 0, 3, 0));
        sf_index_writer *w = writer(path);
        add_img(w, 3, 3, NULL);
        commit(w); /* generation 3, slot 0 */
        sf_index_writer_free(w);
        struct stat sb;
        stat(path, &sb);
        /* The commit checksum field: the generation still reads 3 or 2. */
        flip_byte(path, (older ? 1024 : 512) + 33);
        idx = NULL;
        CHECK(sf_index_open(path, &idx, &err) == SF_OK, "open: %s", err.message);
        if (!idx)
            continue;
        sf_status st = sf_index_check_slots(idx, &s, &err);
        if (older) {
            CHECK(sf_index_n_images(idx) == 4, "older slot damaged: %zu images",
                  sf_index_n_images(idx));
            CHECK(st == SF_ERR_CHECKSUM && s.damaged == 1 && !s.newer_lost &&
                      strstr(err.message, "commit slot 1 is damaged (it held no commit newer "
                                          "than generation 3"),
                  "older slot damaged: %d %d %d: %s", st, s.damaged, s.newer_lost, err.message);
        } else {
            CHECK(sf_index_n_images(idx) == 3, "rolled back: %zu images",
                  sf_index_n_images(idx));
            CHECK(st == SF_ERR_CHECKSUM && s.damaged == 0 && s.newer_lost &&
                      s.lost_generation == 3 &&
                      strstr(err.message, "commit slot 0 is damaged: the index is at "
                                          "generation 2, a newer commit (generation 3?) was "
                                          "lost"),
                  "rolled back: %d %d %d %llu: %s", st, s.damaged, s.newer_lost,
                  (unsigned long long)s.lost_generation, err.message);
        }
        CHECK(sf_index_verify(idx, &err) == SF_ERR_CHECKSUM, "verify passed a damaged slot");
        sf_index_close(idx);

        /* A writer: refuses to cut off the newer commit, and changes nothing. */
        w = NULL;
        st = open_writer_opt(path, 0, &w, &err);
        if (!older) {
            CHECK(st == SF_ERR_CHECKSUM && strstr(err.message, "--accept-rollback"),
                  "a writer opened a rolled-back index: %d %s", st, st ? err.message : "");
            struct stat sb2;
            stat(path, &sb2);
            CHECK(sb2.st_size == sb.st_size, "the refused writer cut the file");
            sf_index_writer_free(w);
            w = NULL;
            st = open_writer_opt(path, 1, &w, &err);
        }
        CHECK(st == SF_OK, "writer (older %d): %s", older, err.message);
        sf_index_writer_free(w); /* no commit: the damaged slot is cleared all the same */
        idx = reopen(path);
        if (idx) {
            CHECK(sf_index_check_slots(idx, &s, &err) == SF_OK, "after a writer: %s",
                  err.message);
            CHECK(sf_index_n_images(idx) == (older ? 4u : 3u), "after a writer: %zu images",
                  sf_index_n_images(idx));
        }
        sf_index_close(idx);
        w = writer(path);
        add_img(w, 5, 5, NULL);
        commit(w);
        sf_index_writer_free(w);
        CHECK(live_count(path) == (older ? 5u : 4u), "commit after the damage");
    }
    printf("commit slots: rollback reported and refused; damage of the older slot cleared\n");
}

/* A failed sync: before the slot write the index is unchanged; after it,
 * the commit is in place and the writer says it may not be durable. */
static void check_durability(void)
{
    char path[4096];
    path_in_tmp(path, sizeof path, "durable");
    sf_error err;
    for (int point = 5; point <= 8; point += 3) {
        sf_index_close(build(path, 0, 1, 0, 3, 0));
        sf_index_writer *w = writer(path);
        add_img(w, 3, 3, NULL);
        setenv("SF_INDEX_TEST_FAIL", point == 5 ? "5" : "8", 1);
        sf_status st = sf_index_writer_commit(w, &err);
        unsetenv("SF_INDEX_TEST_FAIL");
        CHECK(st == SF_ERR_IO, "sync %d failed, commit gave %d", point, st);
        int nd = sf_index_writer_not_durable(w);
        if (point == 5) {
            CHECK(!nd && !strstr(err.message, "committed"), "sync 5: %d %s", nd, err.message);
            CHECK(live_count(path) == 3, "sync 5 failed: the commit is visible");
        } else {
            CHECK(nd && strstr(err.message, "generation 3 is committed (readers see it) but may "
                                            "not be durable: fdatasync: "),
                  "sync 8: %d %s", nd, err.message);
            CHECK(live_count(path) == 4, "sync 8 failed: the commit is not visible");
        }
        CHECK(sf_index_writer_commit(w, &err) == SF_ERR_IO, "a broken writer committed");
        sf_index_writer_free(w);
        w = writer(path); /* the next writer goes on */
        add_img(w, 5, 5, NULL);
        commit(w);
        sf_index_writer_free(w);
        CHECK(live_count(path) == (point == 5 ? 4u : 5u), "after sync %d failed", point);
    }
    for (int point = 12; point <= 14; point += 2) {
        sf_index_close(build(path, 1, 0, 0, 3, 0));
        sf_index_writer *w = writer(path);
        add_img(w, 3, 3, NULL);
        commit(w); /* two segments */
        setenv("SF_INDEX_TEST_FAIL", point == 12 ? "12" : "14", 1);
        sf_status st = sf_index_writer_compact(w, &err);
        unsetenv("SF_INDEX_TEST_FAIL");
        int nd = sf_index_writer_not_durable(w);
        sf_index_writer_free(w);
        sf_index *idx = reopen(path);
        sf_index_info info;
        if (idx)
            sf_index_get_info(idx, &info, &err);
        sf_index_close(idx);
        CHECK(st == SF_ERR_IO && nd == (point == 14), "compact, sync %d failed: %d %d", point,
              st, nd);
        CHECK(idx && info.n_segments == (point == 14 ? 1u : 2u),
              "compact, sync %d failed: %zu segments", point, idx ? info.n_segments : 0);
    }
    printf("failed syncs: before the slot, unchanged; after it, committed and said so\n");
}

/* ---- Synthetic: threads, many images, float kernel ---- */

/* Random aggregated vectors: n_words distinct ascending words of k. */
static void random_agg(sf_asmk_agg *a, size_t k, size_t dim, int binary, size_t n_words)
{
    memset(a, 0, sizeof *a);
    a->dim = dim;
    a->binary = binary;
    a->words = malloc(n_words * sizeof *a->words);
    size_t np = sf_asmk_packed_size(dim);
    if (binary)
        a->packed = malloc(n_words * np * sizeof *a->packed + 4);
    else
        a->vectors = malloc(n_words * dim * sizeof *a->vectors + 4);
    size_t n = 0;
    for (size_t w = 0; w < k && n < n_words; w++)
        if (rnd() % (k - w) < n_words - n)
            a->words[n++] = (int32_t)w;
    a->n = n;
    for (size_t i = 0; i < n; i++) {
        if (binary) {
            for (size_t t = 0; t < np; t++)
                a->packed[i * np + t] = (uint32_t)rnd();
            if (dim % 32)
                a->packed[i * np + np - 1] &= ~(UINT32_MAX >> (dim % 32));
        } else {
            double s = 0;
            for (size_t d = 0; d < dim; d++) {
                a->vectors[i * dim + d] = rnd_normal();
                s += (double)a->vectors[i * dim + d] * a->vectors[i * dim + d];
            }
            for (size_t d = 0; d < dim; d++)
                a->vectors[i * dim + d] /= (float)sqrt(s);
        }
    }
}

static void check_synthetic(int binary, int idf, size_t dim)
{
    const size_t k = 512, n_img = 3000;
    char path[4096];
    path_in_tmp(path, sizeof path, "synth");
    unlink(path);
    rng_state = 42 + dim + (size_t)idf;
    float *cent = calloc(k * dim, sizeof *cent);
    sf_index_params p = make_params(binary, idf);
    p.asmk.similarity_threshold = binary ? -0.2f : 0.05f;
    p.asmk.alpha = binary ? 3.0f : 2.5f;
    sf_index_codebook_id cb = { k, dim, 7 };
    sf_error err;
    CHECK(sf_index_create(path, &p, &cb, NULL, &err) == SF_OK, "%s", err.message);
    sf_asmk_ivf *ivf;
    sf_asmk_ivf_create(cent, k, dim, &p.asmk, &ivf, &err);
    sf_index_writer_options o;
    sf_index_writer_options_default(&o);
    o.stage_bytes = 1 << 20;
    sf_index_writer *w;
    CHECK(sf_index_writer_open(path, &cb, &o, &w, &err) == SF_OK, "%s", err.message);
    for (size_t m = 0; m < n_img; m++) {
        sf_asmk_agg a;
        random_agg(&a, k, dim, binary, 1 + rnd() % 120);
        char key[32];
        snprintf(key, sizeof key, "s%zu", m);
        CHECK(sf_index_writer_add(w, key, &a, NULL, &err) == SF_OK, "%s", err.message);
        sf_asmk_ivf_add(ivf, (uint32_t)m, &a, &err);
        sf_asmk_agg_release(&a);
        if (m % 1000 == 999)
            commit(w);
    }
    commit(w);
    sf_index_writer_free(w);
    sf_asmk_ivf_finalize(ivf, &err);
    sf_index *idx = reopen(path);
    const sf_index *sh[1] = { idx };
    double *sc = malloc(n_img * sizeof *sc), *ref = malloc(n_img * sizeof *ref);
    int not_exact = 0;
    for (int q = 0; q < 6; q++) {
        sf_asmk_agg a;
        random_agg(&a, k, dim, binary, 50 + rnd() % 300);
        sf_asmk_ivf_search(ivf, &a, ref, &err);
        /* 1, 2 and 3 threads, the default, and small tiles. */
        for (int t = 1; t <= 6; t++) {
            sf_index_search_options so;
            sf_index_search_options_default(&so);
            so.threads = t <= 3 ? t : t == 4 ? 0 : t - 3;
            so.tile = t <= 4 ? 0 : t == 5 ? 1 : 333;
            CHECK(sf_index_search_scores(sh, 1, &a, &so, sc, &err) == SF_OK, "%s", err.message);
            not_exact += !same_scores(sc, ref, (int)n_img);
        }
        /* A few images alone: lists far longer than the candidates are
         * searched from where each image should be, denser ones
         * galloped or read through; the scores must not change. */
        sf_index_searcher *srch;
        /* The kernel's fetching ahead, normally only in tiles larger than
         * this index, whole and in tiles of 333. */
        for (int t = 0; t < 2; t++) {
            sf_index_search_options so;
            sf_index_search_options_default(&so);
            so.tile = t ? 333 : 0;
            CHECK(sf_index_searcher_create(sh, 1, &so, &srch, &err) == SF_OK, "%s", err.message);
            ix_searcher_prefetch_min(srch, 0);
            CHECK(sf_index_searcher_scores(srch, &a, sc, &err) == SF_OK, "%s", err.message);
            not_exact += !same_scores(sc, ref, (int)n_img);
            sf_index_searcher_free(srch);
        }
        CHECK(sf_index_searcher_create(sh, 1, NULL, &srch, &err) == SF_OK, "%s", err.message);
        const size_t sizes[4] = { 1, 7, 60, n_img };
        size_t *ids = malloc(n_img * sizeof *ids);
        for (int z = 0; z < 4 && srch; z++) {
            for (size_t i = 0; i < sizes[z]; i++)
                ids[i] = sizes[z] == n_img ? i : (size_t)(rnd() % n_img);
            CHECK(sf_index_searcher_scores_subset(srch, &a, ids, sizes[z], sc, &err) == SF_OK,
                  "%s", err.message);
            for (size_t i = 0; i < sizes[z]; i++)
                not_exact += memcmp(&sc[i], &ref[ids[i]], sizeof(double)) != 0;
        }
        free(ids);
        sf_index_searcher_free(srch);
        sf_asmk_agg_release(&a);
    }
    CHECK(not_exact == 0, "synthetic %s%s dim %zu: %d searches differ from the IVF",
          binary ? "binary" : "float", idf ? "+idf" : "", dim, not_exact);
    sf_index_info info;
    sf_index_get_info(idx, &info, &err);
    printf("synthetic %s%s dim %zu: %zu images, %zu segments, exact with 1-3 threads, "
           "tiles of 1 and 333 images, fetching ahead, and for 1 to 3000 images alone\n",
           binary ? "binary" : "float", idf ? "+idf" : "", dim, info.n_images, info.n_segments);
    free(sc);
    free(ref);
    free(cent);
    sf_index_close(idx);
    sf_asmk_ivf_free(ivf);
}

/* ---- Data for the shell test and the fuzz corpus ---- */

static float *synthetic_centroids(size_t k, size_t dim, uint64_t seed)
{
    rng_state = seed * 7919 + 1;
    float *c = malloc(k * dim * sizeof *c);
    for (size_t i = 0; i < k * dim; i++)
        c[i] = rnd_normal();
    return c;
}

static int write_codebook(int argc, char **argv)
{
    if (argc != 6)
        return 99;
    size_t k = (size_t)atol(argv[2]), dim = (size_t)atol(argv[3]);
    float *c = synthetic_centroids(k, dim, (uint64_t)atol(argv[4]));
    sf_error err;
    sf_status st = sf_codebook_write(argv[5], c, k, dim, NULL, &err);
    if (st != SF_OK)
        fprintf(stderr, "%s\n", err.message);
    free(c);
    return st == SF_OK ? 0 : 99;
}

/* N images of 20..60 descriptors near random centres of a 64-word
 * codebook made with seed 1 (whatever codebook indexes them); with
 * global set, each with a global descriptor too (their normalised mean). */
static int write_stream(int argc, char **argv, int global)
{
    if (argc != 6 && argc != 7)
        return 99;
    long n = atol(argv[2]), first = argc == 7 ? atol(argv[6]) : 0;
    uint64_t seed = (uint64_t)atol(argv[3]);
    size_t dim = (size_t)atol(argv[4]);
    FILE *fp = fopen(argv[5], "wb");
    if (!fp)
        return 99;
    float *cent = synthetic_centroids(64, dim, 1);
    for (long i = 0; i < n; i++) {
        rng_state = seed * 1000003 + (uint64_t)(first + i);
        size_t count = 20 + rnd() % 41;
        float *d = malloc(count * dim * sizeof *d);
        for (size_t r = 0; r < count; r++) {
            const float *c = cent + (rnd() % 64) * dim;
            for (size_t t = 0; t < dim; t++)
                d[r * dim + t] = c[t] + 0.3f * rnd_normal();
        }
        char key[64];
        snprintf(key, sizeof key, "img%05ld", first + i);
        sf_record rec;
        memset(&rec, 0, sizeof rec);
        rec.kind = SF_KIND_LOCAL_DESC;
        rec.dtype = SF_DTYPE_F32;
        rec.ndim = 2;
        rec.shape[0] = count;
        rec.shape[1] = dim;
        rec.scale = 1.0;
        rec.key = key;
        rec.key_len = strlen(key);
        rec.data = d;
        rec.data_size = count * dim * 4;
        sf_error err;
        /* A strength record first, as sf-lit writes, then the descriptors. */
        float *s = calloc(count, sizeof *s);
        sf_record srec = rec;
        srec.kind = SF_KIND_LOCAL_STRENGTH;
        srec.ndim = 1;
        srec.data = s;
        srec.data_size = count * 4;
        float *g = calloc(dim, sizeof *g);
        double norm = 0.0;
        for (size_t r = 0; r < count; r++)
            for (size_t t = 0; t < dim; t++)
                g[t] += d[r * dim + t];
        for (size_t t = 0; t < dim; t++)
            norm += (double)g[t] * g[t];
        for (size_t t = 0; t < dim; t++)
            g[t] = (float)(g[t] / (sqrt(norm) + 1e-6));
        sf_record grec = srec;
        grec.kind = SF_KIND_GLOBAL;
        grec.shape[0] = dim;
        grec.data = g;
        grec.data_size = dim * 4;
        rec.flags = SF_RECORD_LAST;
        if (tu_write_provenance(fp, key) || sf_stream_write_record(fp, &srec, &err) != SF_OK ||
            (global && sf_stream_write_record(fp, &grec, &err) != SF_OK) ||
            sf_stream_write_record(fp, &rec, &err) != SF_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 99;
        }
        free(g);
        free(s);
        free(d);
    }
    free(cent);
    return tu_close_stream(fp, (uint64_t)n);
}

/* ---- The global stage ---- */

#define GDIM 24
#define GN 60

static float gval(int i, int t) { return (float)sin(0.37 * i + 1.3 * t) + 0.01f * (float)(i % 7); }

/* Images i in [lo, hi) with global descriptors (none with nog), no
 * vectors; stage_bytes small: several segments.  Returns the writer's
 * status of the last add, or of the commit. */
static sf_status gadd(const char *path, int lo, int hi, int nog, size_t gdim, sf_error *err)
{
    sf_index_writer_options o;
    sf_index_writer_options_default(&o);
    o.stage_bytes = 1000;
    sf_index_codebook_id cb = { 16, 8, 42 };
    sf_index_writer *w = NULL;
    sf_status st = sf_index_writer_open(path, &cb, &o, &w, err);
    for (int i = lo; i < hi && st == SF_OK; i++) {
        char key[32];
        snprintf(key, sizeof key, "g%04d", i);
        float g[GDIM + 8];
        for (size_t t = 0; t < gdim; t++)
            g[t] = gval(i, (int)t);
        sf_asmk_agg agg = { 0, 8, 1, NULL, NULL, NULL };
        st = sf_index_writer_add_global(w, key, &agg, nog ? NULL : g, nog ? 0 : gdim, NULL, err);
    }
    if (st == SF_OK)
        st = sf_index_writer_commit(w, err);
    sf_index_writer_free(w);
    return st;
}

/* Every live image's score, brute force in double, against hits. */
static void gcheck_hits(const sf_index *x, const float *q, const sf_index_hit *h, size_t n,
                        const char *what)
{
    for (size_t i = 0; i < n; i++) {
        int id = atoi(h[i].key + 1);
        double d = 0.0;
        for (int t = 0; t < GDIM; t++)
            d += (double)gval(id, t) * q[t];
        CHECK(fabs(d - h[i].score) < 1e-5, "%s: hit %zu (%.*s): %g, brute force %g", what, i,
              (int)h[i].key_len, h[i].key, h[i].score, d);
        CHECK(sf_index_is_live(x, h[i].id), "%s: hit %zu is not live", what, i);
        CHECK(i == 0 || h[i].score < h[i - 1].score ||
                  (h[i].score == h[i - 1].score && h[i].id > h[i - 1].id),
              "%s: hits %zu, %zu out of order", what, i - 1, i);
    }
}

static int same_hits(const sf_index_hit *a, size_t na, const sf_index_hit *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (a[i].key_len != b[i].key_len || memcmp(a[i].key, b[i].key, a[i].key_len) != 0 ||
            memcmp(&a[i].score, &b[i].score, sizeof a[i].score) != 0)
            return 0;
    return 1;
}

/* Hits kept past their index's closing. */
typedef struct gref {
    char key[GN][16];
    double score[GN];
    size_t n;
} gref;

static void gref_keep(gref *r, const sf_index_hit *h, size_t n)
{
    r->n = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(r->key[i], sizeof r->key[i], "%.*s", (int)h[i].key_len, h[i].key);
        r->score[i] = h[i].score;
    }
}

static int same_ref(const gref *r, const sf_index_hit *h, size_t n)
{
    if (n != r->n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (h[i].key_len != strlen(r->key[i]) || memcmp(h[i].key, r->key[i], h[i].key_len) ||
            memcmp(&h[i].score, &r->score[i], sizeof r->score[i]))
            return 0;
    return 1;
}

static void check_global(void)
{
    gref ref;
    char path[4096];
    path_in_tmp(path, sizeof path, "global.six");
    sf_index_params p;
    sf_index_params_default(&p);
    sf_index_codebook_id cb = { 16, 8, 42 };
    sf_error err;
    CHECK(sf_index_create(path, &p, &cb, NULL, &err) == SF_OK, "create: %s", err.message);
    CHECK(gadd(path, 0, GN, 0, GDIM, &err) == SF_OK, "add: %s", err.message);
    sf_index *x = reopen(path);
    sf_index_info info;
    sf_index_get_info(x, &info, &err);
    CHECK(info.n_segments > 2, "%zu segments: want several", info.n_segments);
    size_t missing = 99;
    CHECK(sf_index_global_dim(x, &missing) == GDIM && missing == 0, "global dim %zu, missing %zu",
          sf_index_global_dim(x, NULL), missing);
    const float *row;
    CHECK(sf_index_global_get(x, 17, &row, &err) == SF_OK && row[5] == gval(17, 5),
          "image 17's global descriptor");
    float q[GDIM];
    for (int t = 0; t < GDIM; t++)
        q[t] = gval(1000, t);
    sf_index_hit all[GN], top[GN], two[GN], again[GN];
    size_t na, nt, n2, ng;
    CHECK(sf_index_global_search(x, q, GDIM, 0, 1, all, &na, &err) == SF_OK && na == GN,
          "search all: %zu hits, %s", na, err.message);
    gcheck_hits(x, q, all, na, "all");
    CHECK(sf_index_global_search(x, q, GDIM, 9, 1, top, &nt, &err) == SF_OK && nt == 9 &&
              same_hits(top, nt, all, 9),
          "the top 9 are the first 9 of all");
    CHECK(sf_index_global_search(x, q, GDIM, 0, 2, two, &n2, &err) == SF_OK &&
              same_hits(two, n2, all, na),
          "two threads rank as one");
    CHECK(sf_index_global_search(x, q, GDIM - 1, 0, 1, two, &n2, &err) ==
              SF_ERR_INVALID_ARGUMENT,
          "a query of another dimension is refused");
    CHECK(sf_index_verify(x, &err) == SF_OK, "verify: %s", err.message);
    sf_index_close(x);

    /* Refusals: nothing staged, the stage stays. */
    CHECK(gadd(path, 100, 101, 1, 0, &err) == SF_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "no global descriptor, and every image"),
          "an image without global is refused: %s", err.message);
    CHECK(gadd(path, 100, 101, 0, GDIM - 2, &err) == SF_ERR_INVALID_ARGUMENT,
          "another dimension is refused: %s", err.message);

    /* Removals and compaction. */
    sf_index_writer *w = NULL;
    CHECK(sf_index_writer_open(path, &cb, NULL, &w, &err) == SF_OK, "open: %s", err.message);
    for (int i = 0; i < GN; i += 3) {
        char key[32];
        snprintf(key, sizeof key, "g%04d", i);
        sf_index_writer_remove(w, key, &err);
    }
    CHECK(sf_index_writer_commit(w, &err) == SF_OK, "remove: %s", err.message);
    x = reopen(path);
    CHECK(sf_index_global_search(x, q, GDIM, 0, 2, two, &n2, &err) == SF_OK && n2 == GN - 20,
          "after removals: %zu hits", n2);
    gcheck_hits(x, q, two, n2, "removed");
    size_t j = 0;
    for (size_t i = 0; i < na; i++)
        if (atoi(all[i].key + 1) % 3 != 0)
            CHECK(j < n2 && all[i].score == two[j++].score, "removal changed the order");
    CHECK(sf_index_writer_compact(w, &err) == SF_OK, "compact: %s", err.message);
    sf_index_writer_free(w);
    sf_index *c = reopen(path);
    sf_index_get_info(c, &info, &err);
    CHECK(info.n_segments == 1 && sf_index_global_dim(c, NULL) == GDIM,
          "compacted: %zu segments, global %zu", info.n_segments, sf_index_global_dim(c, NULL));
    CHECK(sf_index_global_search(c, q, GDIM, 0, 0, again, &ng, &err) == SF_OK &&
              same_hits(again, ng, two, n2),
          "compaction keeps the answers");
    CHECK(sf_index_verify(c, &err) == SF_OK, "verify compacted: %s", err.message);
    gref_keep(&ref, again, ng);
    sf_index_close(c);
    sf_index_close(x);

    /* Crash at point 15 (a segment written up to its global part): the
     * previous commit stands, stage and answers intact; the next writer
     * goes on.  And at every compaction point. */
    int points[] = { 15, 2, 3, 11, 12, 13, 14 };
    for (size_t k = 0; k < sizeof points / sizeof *points; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            char v[8];
            snprintf(v, sizeof v, "%d", points[k]);
            setenv("SF_INDEX_TEST_CRASH", v, 1);
            sf_error e;
            if (points[k] >= 11 && points[k] <= 14) {
                sf_index_writer *cw = NULL;
                if (sf_index_writer_open(path, NULL, NULL, &cw, &e) == SF_OK)
                    sf_index_writer_compact(cw, &e);
                _exit(0);
            }
            gadd(path, 200, 230, 0, GDIM, &e);
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 86, "crash %d: exit %d", points[k],
              WEXITSTATUS(status));
        x = reopen(path);
        CHECK(sf_index_n_images(x) == GN - 20 && sf_index_global_dim(x, NULL) == GDIM &&
                  sf_index_global_search(x, q, GDIM, 0, 1, again, &ng, &err) == SF_OK &&
                  same_ref(&ref, again, ng) && sf_index_verify(x, &err) == SF_OK,
              "after crash %d: %zu images, the answers changed or verify fails: %s", points[k],
              sf_index_n_images(x), err.message);
        sf_index_close(x);
    }
    CHECK(gadd(path, 200, 230, 0, GDIM, &err) == SF_OK, "add after crashes: %s", err.message);
    x = reopen(path);
    CHECK(sf_index_n_images(x) == GN - 20 + 30 && sf_index_global_dim(x, NULL) == GDIM,
          "after crashes: %zu images", sf_index_n_images(x));
    sf_index_close(x);

    /* An index whose images have none: no stage until they are gone. */
    path_in_tmp(path, sizeof path, "global_none.six");
    CHECK(sf_index_create(path, &p, &cb, NULL, &err) == SF_OK, "create: %s", err.message);
    CHECK(gadd(path, 0, 5, 1, 0, &err) == SF_OK, "add without: %s", err.message);
    CHECK(gadd(path, 5, 20, 0, GDIM, &err) == SF_OK, "add with: %s", err.message);
    x = reopen(path);
    CHECK(sf_index_global_dim(x, &missing) == 0 && missing == 5, "no stage: %zu missing", missing);
    CHECK(sf_index_global_search(x, q, GDIM, 0, 1, again, &ng, &err) == SF_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "no global stage: 5 of its 20 images"),
          "no stage is refused: %s", err.message);
    sf_index_close(x);
    printf("global stage: exact, kept through removals, compaction and crashes\n");
}

static void save(const char *dir, const char *name, const void *data, size_t size)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "wb");
    if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) {
        fprintf(stderr, "%s: cannot write\n", p);
        exit(99);
    }
}

/* Tiny indexes (k 4, dim 8 or 5): valid ones of each kind and damaged copies. */
static int write_fuzz_corpus(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/fuzz-tmp.%ld", dir, (long)getpid());
    const struct { const char *name; int binary, idf, n, dim; } kinds[] = {
        { "bin", 1, 0, 3, 8 }, { "float", 0, 0, 2, 5 }, { "bin-idf", 1, 1, 3, 8 },
        { "empty", 1, 0, 0, 8 }, { "float-idf", 0, 1, 3, 5 },
    };
    rng_state = 5;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        unlink(path);
        sf_index_params p = make_params(kinds[i].binary, kinds[i].idf);
        sf_index_codebook_id cb = { 4, (uint64_t)kinds[i].dim, 99 };
        sf_error err;
        sf_index_writer *w;
        if (sf_index_create(path, &p, &cb, "cb", &err) != SF_OK ||
            sf_index_writer_open(path, &cb, NULL, &w, &err) != SF_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 99;
        }
        for (int m = 0; m < kinds[i].n; m++) {
            sf_asmk_agg a;
            random_agg(&a, 4, (size_t)kinds[i].dim, kinds[i].binary, 1 + (size_t)m % 4);
            char key[8] = { 'k', (char)('a' + m), 0 };
            sf_index_writer_add(w, key, &a, NULL, &err);
            sf_asmk_agg_release(&a);
            if (m == 1)
                sf_index_writer_commit(w, &err);
        }
        if (kinds[i].n > 1)
            sf_index_writer_remove(w, "ka", &err);
        sf_index_writer_commit(w, &err);
        sf_index_writer_free(w);
        size_t size;
        unsigned char *d = read_all(path, &size);
        char name[64];
        snprintf(name, sizeof name, "%s.six", kinds[i].name);
        save(dir, name, d, size);
        if (i == 0) {
            save(dir, "truncated-header.six", d, 300);
            save(dir, "truncated-commit.six", d, size - 20);
            unsigned char *c = malloc(size);
            memcpy(c, d, size);
            c[1536 + 70] ^= 4;           /* inside the first segment's directory */
            save(dir, "flipped-segment.six", c, size);
            memcpy(c, d, size);
            c[size - 9] ^= 1;            /* the commit record */
            save(dir, "flipped-commit.six", c, size);
            memcpy(c, d, size);
            c[520] ^= 1;                 /* a slot */
            save(dir, "flipped-slot.six", c, size);
            free(c);
        }
        free(d);
    }
    unlink(path);
    return 0;
}

static int set_header_k_of(const char *path, const char *k)
{
    size_t size;
    unsigned char *d = read_all(path, &size);
    if (!d || size < 512)
        return 99;
    set_header_k(d, strtoull(k, NULL, 10));
    write_whole(path, d, size);
    free(d);
    return 0;
}

/* The list sums as sf-index(5) defines them, written out plainly: the
 * fast paths (AVX-512 where the CPU has it, any start and length) must
 * give the same values, and a flipped byte must change them. */
static void check_list_sums(void)
{
    const uint64_t n = 300;
    const uint64_t sizes[] = { 4, 8, 12, 16, 20, 64, 512 };
    uint32_t *ids = malloc(n * sizeof *ids);
    unsigned char *vecs = malloc(n * 512);
    uint64_t x = 12345;
    for (uint64_t i = 0; i < n; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        ids[i] = (uint32_t)(x >> 32);
    }
    for (uint64_t i = 0; i < n * 512; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        vecs[i] = (unsigned char)(x >> 56);
    }
    for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
        const uint64_t vb = sizes[z];
        for (uint64_t e0 = 0; e0 < 20; e0 += 3)
            for (uint64_t e1 = e0; e1 < n; e1 += 1 + e1 / 4) {
                uint64_t id = 0, vec = 0;
                for (uint64_t e = e0; e < e1; e++) {
                    uint64_t v = 0, j = 0;
                    for (; j + 8 <= vb; j += 8) {
                        uint64_t w = 0;
                        for (int b = 7; b >= 0; b--)
                            w = (w << 8) | vecs[vb * e + j + (uint64_t)b];
                        v += w;
                    }
                    if (j < vb)
                        v += (uint64_t)vecs[vb * e + j] | (uint64_t)vecs[vb * e + j + 1] << 8 |
                             (uint64_t)vecs[vb * e + j + 2] << 16 |
                             (uint64_t)vecs[vb * e + j + 3] << 24;
                    id += ids[e] * (2 * e + 1);
                    vec += v * (2 * e + 1);
                }
                CHECK(ix_ids_sum_of(ids, e0, e1) == id, "id sum of [%llu, %llu)",
                      (unsigned long long)e0, (unsigned long long)e1);
                CHECK(ix_entries_sum_of(ids, vecs, e0, e1, vb) == id + vec,
                      "entries sum of [%llu, %llu), %llu bytes", (unsigned long long)e0,
                      (unsigned long long)e1, (unsigned long long)vb);
            }
        /* Every single-byte change in a list shows in its sums. */
        for (uint64_t at = 0; at < 40 * vb; at += 1 + at / 7) {
            uint64_t both = ix_entries_sum_of(ids, vecs, 0, 40, vb);
            vecs[at] ^= (unsigned char)(1u << (at % 8));
            CHECK(ix_entries_sum_of(ids, vecs, 0, 40, vb) != both,
                  "flip at byte %llu (%llu-byte vectors)", (unsigned long long)at,
                  (unsigned long long)vb);
            vecs[at] ^= (unsigned char)(1u << (at % 8));
        }
    }
    free(ids);
    free(vecs);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--set-header-k") == 0)
        return set_header_k_of(argv[2], argv[3]);
    if (argc > 1 && strcmp(argv[1], "--write-codebook") == 0)
        return write_codebook(argc, argv);
    if (argc > 1 && strcmp(argv[1], "--write-stream") == 0)
        return write_stream(argc, argv, 0);
    if (argc > 1 && strcmp(argv[1], "--write-stream-global") == 0)
        return write_stream(argc, argv, 1);
    if (argc == 3 && strcmp(argv[1], "--write-fuzz-corpus") == 0)
        return write_fuzz_corpus(argv[2]);

    const char *base = getenv("top_builddir");
    snprintf(tmpdir, sizeof tmpdir, "%s/tests/tmp/test_index", base ? base : ".");
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", tmpdir, tmpdir);
    if (system(cmd) != 0)
        return 99;

    check_header_bounds(); /* first, while the process is small */
    check_global();
    check_list_sums();
    golden_load();
    check_parity("", 1, 0, N_DB);
    check_parity("nobin_", 0, 0, N_DB);
    check_parity("idf_", 1, 1, N_DB);
    check_parity("idfsub_", 1, 1, 12);
    check_updates(1, 0);
    check_updates(1, 1);
    check_updates(0, 0);
    check_shards();
    check_subset(1, 0);
    check_subset(1, 1);
    check_subset(0, 0);
    check_misuse();
    check_add_image();
    check_lock();
    check_damage();
    check_rollback();
    check_durability();
    check_crashes();
    golden_free();
    check_synthetic(1, 0, 128);
    check_synthetic(1, 1, 40);
    check_synthetic(0, 1, 16);
    return tu_finish("test_index");
}
