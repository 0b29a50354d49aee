/* Hit lists (sf_hits.h): ranking, merging shard lists, their records,
 * the set of every query's list and its image pairs;
 * and the groups answer key as a revisited ground truth (sf_eval.h),
 * checked against the independent sf_eval_recall and sf_eval_ranking.
 *
 *   test_hits --write-odd DIR   streams with odd records for
 *                               tests/match_rank_cli.sh
 *   test_hits --hits-from-text OUT  a hit stream from lines of
 *                               `query TAB key TAB score` on stdin, keys
 *                               with \t \n \r \\ and \xHH escapes (any
 *                               bytes), for tests/rank_formats.sh */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_eval.h"
#include "sf_hits.h"
#include "testutil.h"

static void add(sf_hit_list *l, const char *key, double score)
{
    sf_error err;
    CHECK(sf_hit_list_append(l, key, strlen(key), score, &err) == SF_OK, "%s", err.message);
}

static int list_is(const sf_hit_list *l, const char *want)
{
    char got[512] = "";
    for (size_t i = 0; i < l->count; i++) {
        strcat(got, l->keys[i]);
        strcat(got, i + 1 < l->count ? " " : "");
    }
    if (strcmp(got, want) != 0) {
        printf("  got '%s', want '%s'\n", got, want);
        return 0;
    }
    return 1;
}

static void check_rank(void)
{
    sf_hit_list l;
    sf_error err;
    sf_hit_list_init(&l);
    /* Two shards' lists for one query, appended in shard order. */
    add(&l, "a", 0.5);
    add(&l, "b", NAN);
    add(&l, "c", 0.9);
    add(&l, "d", 0.5);
    add(&l, "e", 0.7); /* shard 2 */
    add(&l, "f", 0.5);
    add(&l, "c", 0.2); /* a worse copy of c */
    add(&l, "q", 0.8);
    CHECK(sf_hit_list_rank(&l, NULL, 0, &err) == SF_OK, "%s", err.message);
    CHECK(list_is(&l, "c q e a d f b"), "rank: ties by position, NaN last, copies dropped");
    CHECK(l.scores[0] == 0.9 && l.scores[3] == 0.5 && isnan(l.scores[6]), "scores follow");
    CHECK(sf_hit_list_rank(&l, "q", 3, &err) == SF_OK, "%s", err.message);
    CHECK(list_is(&l, "c e a"), "exclude the query, then the top 3");
    sf_hit_list_clear(&l);
    CHECK(sf_hit_list_rank(&l, "x", 5, &err) == SF_OK && l.count == 0, "empty list");
    /* A copy that ranks better than the first listing wins. */
    add(&l, "x", 0.1);
    add(&l, "y", 0.3);
    add(&l, "x", 0.6);
    CHECK(sf_hit_list_rank(&l, NULL, 0, &err) == SF_OK, "%s", err.message);
    CHECK(list_is(&l, "x y") && l.scores[0] == 0.6, "best copy kept");
    CHECK(sf_hit_list_append(&l, "a\0b", 3, 1.0, &err) == SF_ERR_INVALID_ARGUMENT,
          "a key with a NUL accepted");
    CHECK(sf_hit_list_append(&l, "", 0, 1.0, &err) == SF_ERR_INVALID_ARGUMENT,
          "an empty key accepted");
    sf_hit_list_release(&l);
    sf_hit_list_release(&l); /* twice is harmless */
}

static void expect_bad_records(const char *blob, size_t size, uint64_t n_scores,
                               const char *want)
{
    double scores[4] = { 1, 2, 3, 4 };
    sf_record k = { .kind = SF_KIND_HIT_KEYS, .dtype = SF_DTYPE_U8, .ndim = 1,
                    .shape = { size }, .key = "q", .key_len = 1, .data = blob,
                    .data_size = size };
    sf_record s = { .kind = SF_KIND_HIT_SCORES, .dtype = SF_DTYPE_F64, .ndim = 1,
                    .shape = { n_scores }, .key = "q", .key_len = 1, .data = scores,
                    .data_size = n_scores * 8 };
    sf_hit_list l;
    sf_hit_list_init(&l);
    sf_error err;
    sf_status st = sf_hit_list_append_records(&l, &k, &s, &err);
    CHECK(st == SF_ERR_FORMAT && strstr(err.message, want), "bad records: got %d '%s', want '%s'",
          st, st ? err.message : "", want);
    sf_hit_list_release(&l);
}

static void check_records(void)
{
    sf_hit_list l, back;
    sf_error err;
    sf_hit_list_init(&l);
    sf_hit_list_init(&back);
    add(&l, "photos/one.jpg", 0.25);
    add(&l, "two", -1.5);
    add(&l, "three", 1e300);
    sf_record k, s;
    char *blob;
    double *sc;
    CHECK(sf_hit_list_to_records(&l, "query.jpg", &k, &s, &blob, &sc, &err) == SF_OK, "%s",
          err.message);
    CHECK(k.kind == SF_KIND_HIT_KEYS && k.shape[0] == 25 && !memcmp(blob, "photos/one.jpg\0two\0", 19),
          "hit_keys layout");
    CHECK(sf_record_validate(&k, &err) == SF_OK && sf_record_validate(&s, &err) == SF_OK,
          "records invalid: %s", err.message);
    /* Through a stream and back. */
    FILE *fp = tmpfile();
    CHECK(fp && sf_stream_write_record(fp, &k, &err) == SF_OK &&
              sf_stream_write_record(fp, &s, &err) == SF_OK, "write");
    rewind(fp);
    sf_stream_reader *r;
    const sf_record *rec;
    CHECK(sf_stream_reader_create(&r, fp, "t", &err) == SF_OK, "reader");
    sf_record kk = { 0 };
    void *kdata = NULL;
    CHECK(sf_stream_read_record(r, &rec, &err) == SF_OK && rec, "read keys");
    kk = *rec;
    kdata = malloc(rec->data_size);
    memcpy(kdata, rec->data, rec->data_size);
    kk.data = kdata;
    CHECK(sf_stream_read_record(r, &rec, &err) == SF_OK && rec, "read scores");
    CHECK(sf_hit_list_append_records(&back, &kk, rec, &err) == SF_OK, "%s", err.message);
    CHECK(back.count == 3 && !strcmp(back.keys[0], "photos/one.jpg") &&
              !strcmp(back.keys[2], "three") && back.scores[1] == -1.5 &&
              back.scores[2] == 1e300,
          "round trip");
    free(kdata);
    sf_stream_reader_free(r);
    fclose(fp);
    free(blob);
    free(sc);
    /* An empty list is two empty records. */
    sf_hit_list_clear(&l);
    CHECK(sf_hit_list_to_records(&l, "q", &k, &s, &blob, &sc, &err) == SF_OK &&
              k.data_size == 0 && s.shape[0] == 0 && sf_record_validate(&k, &err) == SF_OK,
          "empty records");
    free(blob);
    free(sc);
    sf_hit_list_release(&l);
    sf_hit_list_release(&back);

    expect_bad_records("a\0b", 3, 2, "does not end with a NUL");
    expect_bad_records("a\0b\0", 4, 3, "2 hit keys for 3 scores");
    expect_bad_records("a\0\0", 3, 2, "hit 1 has an empty or too long key");
    double one = 1;
    sf_record k2 = { .kind = SF_KIND_HIT_KEYS, .dtype = SF_DTYPE_I32, .ndim = 1,
                     .shape = { 1 }, .key = "q", .key_len = 1, .data = "a\0\0", .data_size = 4 };
    sf_record s2 = { .kind = SF_KIND_HIT_SCORES, .dtype = SF_DTYPE_F64, .ndim = 1,
                     .shape = { 1 }, .key = "q", .key_len = 1, .data = &one, .data_size = 8 };
    sf_hit_list_init(&l);
    CHECK(sf_hit_list_append_records(&l, &k2, &s2, &err) == SF_ERR_FORMAT, "i32 keys accepted");
    k2.dtype = SF_DTYPE_U8;
    s2.dtype = SF_DTYPE_F32;
    CHECK(sf_hit_list_append_records(&l, &k2, &s2, &err) == SF_ERR_FORMAT, "f32 scores accepted");
    /* Records whose payload size disagrees with their shape (made by a
     * caller, not read from a stream) are refused, not read past. */
    s2.dtype = SF_DTYPE_F64;
    k2.data = "a";
    k2.shape[0] = 2;
    k2.data_size = 2;
    CHECK(sf_hit_list_append_records(&l, &k2, &s2, &err) == SF_OK && l.count == 1, "good pair");
    s2.shape[0] = 3;
    CHECK(sf_hit_list_append_records(&l, &k2, &s2, &err) == SF_ERR_FORMAT &&
              strstr(err.message, "sizes do not match"), "3 scores in 8 bytes accepted");
    s2.shape[0] = 1;
    k2.shape[0] = 4;
    CHECK(sf_hit_list_append_records(&l, &k2, &s2, &err) == SF_ERR_FORMAT,
          "4 key bytes in 2 accepted");
    CHECK(l.count == 1, "a refused pair added hits");
    sf_hit_list_release(&l);
}

/* Add list l (as the records sf-match writes) to query q of set. */
static sf_status add_list(sf_hit_set *set, const char *q, const sf_hit_list *l, sf_error *err)
{
    sf_record k, s;
    char *blob;
    double *sc;
    CHECK(sf_hit_list_to_records(l, "ignored", &k, &s, &blob, &sc, err) == SF_OK, "records");
    sf_status st = sf_hit_set_add_records(set, q, &k, &s, err);
    free(blob);
    free(sc);
    return st;
}

static void check_hit_set(void)
{
    sf_hit_set *set;
    sf_hit_list l;
    sf_error err;
    char key[32];
    sf_hit_list_init(&l);
    CHECK(sf_hit_set_create(&set, &err) == SF_OK, "%s", err.message);
    /* Many queries: the table grows while keeping the order first met. */
    const size_t n = 5000;
    for (size_t i = 0; i < n; i++) {
        sf_hit_list_clear(&l);
        snprintf(key, sizeof key, "db/%zu", i % 7);
        add(&l, key, (double)i);
        snprintf(key, sizeof key, "q%zu", (i * 7919) % n);
        CHECK(add_list(set, key, &l, &err) == SF_OK, "%s", err.message);
    }
    for (size_t i = 0; i < n; i++) /* the same queries again, from a second input */
        CHECK(add_list(set, sf_hit_set_key(set, i), sf_hit_set_hits(set, i), &err) == SF_OK,
              "%s", err.message);
    CHECK(sf_hit_set_count(set) == n, "%zu queries", sf_hit_set_count(set));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "q%zu", (i * 7919) % n);
        bad += strcmp(sf_hit_set_key(set, i), key) != 0 || sf_hit_set_find(set, key) != (long)i ||
               sf_hit_set_hits(set, i)->count != 2;
    }
    CHECK(bad == 0, "%zu queries out of order, lost or not merged", bad);
    CHECK(sf_hit_set_find(set, "q") == -1 && sf_hit_set_find(set, "q50000") == -1 &&
              !sf_hit_set_key(set, n) && !sf_hit_set_hits(set, n),
          "unknown queries found");
    /* Each query's two copies of its hit make one pair. */
    sf_hit_pair *pairs;
    size_t np;
    CHECK(sf_hit_set_pairs(set, &pairs, &np, &err) == SF_OK && np == n, "%zu pairs", np);
    bad = 0;
    for (size_t i = 0; i < np; i++)
        bad += strncmp(pairs[i].a, "db/", 3) != 0 || strcmp(pairs[i].b, sf_hit_set_key(set, i));
    CHECK(bad == 0, "%zu pairs are not (hit, query) in query order", bad);
    free(pairs);
    sf_hit_set_free(set);

    /* One query from two inputs: the lists join, input after input. */
    CHECK(sf_hit_set_create(&set, &err) == SF_OK, "%s", err.message);
    sf_hit_list_clear(&l);
    add(&l, "a", 0.5);
    add(&l, "q", 0.9);
    add(&l, "b", 0.7);
    CHECK(add_list(set, "q", &l, &err) == SF_OK, "%s", err.message);
    sf_hit_list_clear(&l);
    add(&l, "c", 0.7);
    add(&l, "a", 0.8);
    CHECK(add_list(set, "p", &l, &err) == SF_OK && add_list(set, "q", &l, &err) == SF_OK, "%s",
          err.message);
    CHECK(sf_hit_set_count(set) == 2 && list_is(sf_hit_set_hits(set, 0), "a q b c a"),
          "merged in input order");
    /* A refused pair names its query and leaves its list as it was; a new
     * query joins the set all the same. */
    sf_record k, s;
    char *blob;
    double *sc;
    CHECK(sf_hit_list_to_records(&l, "x", &k, &s, &blob, &sc, &err) == SF_OK, "records");
    s.shape[0] = 1;
    s.data_size = 8;
    CHECK(sf_hit_set_add_records(set, "q", &k, &s, &err) == SF_ERR_FORMAT &&
              !strcmp(err.message, "q: 2 hit keys for 1 scores"),
          "bad records: %s", err.message);
    CHECK(sf_hit_set_add_records(set, "r", &k, &s, &err) == SF_ERR_FORMAT, "bad records");
    CHECK(list_is(sf_hit_set_hits(set, 0), "a q b c a") && sf_hit_set_count(set) == 3 &&
              sf_hit_set_hits(set, 2)->count == 0,
          "refused records changed the set");
    free(blob);
    free(sc);
    CHECK(sf_hit_set_rank(set, 1, 0, &err) == SF_OK, "%s", err.message);
    CHECK(list_is(sf_hit_set_hits(set, 0), "a b c"), "ranked, best copy, self excluded");
    CHECK(list_is(sf_hit_set_hits(set, 1), "a c"), "p ranked");
    /* Pairs: each unordered pair once, in the order first met. */
    sf_hit_list_clear(&l);
    add(&l, "p", 0.1);
    add(&l, "r", 0.2);
    CHECK(add_list(set, "r", &l, &err) == SF_OK, "%s", err.message);
    sf_hit_list_clear(&l);
    add(&l, "q", 0.3); /* a-q and a-p again, met the other way round */
    add(&l, "p", 0.2);
    CHECK(add_list(set, "a", &l, &err) == SF_OK, "%s", err.message);
    CHECK(sf_hit_set_rank(set, 0, 2, &err) == SF_OK, "%s", err.message);
    CHECK(sf_hit_set_pairs(set, &pairs, &np, &err) == SF_OK, "%s", err.message);
    char got[128] = "";
    for (size_t i = 0; i < np; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s-%s ", pairs[i].a, pairs[i].b);
    CHECK(!strcmp(got, "a-q b-q a-p c-p p-r "), "pairs '%s'", got);
    free(pairs);
    sf_hit_set_free(set);
    sf_hit_set_free(NULL);
    sf_hit_list_release(&l);
}

static uint64_t state = 7;
static uint32_t rnd(uint32_t n)
{
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)((state >> 33) % n);
}

/* Groups as ground truth: by hand on a small key, then against
 * sf_eval_recall and sf_eval_ranking on random rankings. */
static void check_groups_gnd(void)
{
    const char *tsv = "a\tg1\nb\tg1\nc\tg1\nd\tg2\ne\tg2\nf\tsingle_f\ng\tg3\n";
    sf_groups *g;
    sf_error err;
    CHECK(sf_groups_parse_tsv(tsv, strlen(tsv), "g.tsv", &g, &err) == SF_OK, "%s", err.message);
    if (!g)
        return;
    sf_gnd *gnd;
    CHECK(sf_gnd_from_groups(g, NULL, 7, &gnd, &err) == SF_OK, "%s", err.message);
    CHECK(gnd->queries[0].n_easy == 2 && gnd->queries[0].easy[0] == 1 &&
              gnd->queries[0].easy[1] == 2 && gnd->queries[0].n_junk == 1 &&
              gnd->queries[0].junk[0] == 0 && gnd->queries[3].n_easy == 1 &&
              gnd->queries[5].n_easy == 0 && gnd->queries[6].n_easy == 0,
          "groups gnd contents");
    /* Query a: ranking a(self, ignored) d b X c -> positives at 1 and 3
     * after removing a: AP = (1/1... by the trapezoid rule. */
    uint32_t rank_a[5] = { 0, 3, 1, SF_EVAL_NO_ID, 2 };
    double ap, pk[1];
    int k1 = 1;
    uint32_t pos[2] = { 1, 2 }, ign[1] = { 0 };
    CHECK(sf_eval_ranking(rank_a, 5, pos, 2, ign, 1, &k1, 1, &ap, pk, &err) == SF_OK, "%s",
          err.message);
    /* positives at 0-based ranks 1 and 3: ((0/1 + 1/2) + (1/3 + 2/4)) / 4 */
    CHECK(fabs(ap - (0.5 + 1.0 / 3 + 0.5) / 4) < 1e-15, "AP with a NO_ID result: %g", ap);
    sf_gnd_free(gnd);

    /* Random full rankings: recall from the gnd equals sf_eval_recall. */
    enum { N = 7, R = 7 };
    uint32_t ranks[N * R];
    int ks[4] = { 1, 2, 3, 6 };
    int bad = 0;
    for (int trial = 0; trial < 200; trial++) {
        for (int q = 0; q < N; q++) {
            uint32_t *row = ranks + q * R;
            for (int i = 0; i < R; i++)
                row[i] = (uint32_t)i;
            for (int i = R - 1; i > 0; i--) {
                uint32_t j = rnd((uint32_t)i + 1), t = row[i];
                row[i] = row[j];
                row[j] = t;
            }
        }
        double r1[4], r2[4];
        size_t c1, c2;
        CHECK(sf_gnd_from_groups(g, NULL, N, &gnd, &err) == SF_OK, "%s", err.message);
        CHECK(sf_eval_revisited_recall(gnd, SF_EVAL_MEDIUM, ranks, R, ks, 4, r1, &c1, &err) ==
                  SF_OK, "%s", err.message);
        CHECK(sf_eval_recall(g, ranks, N, R, NULL, ks, 4, r2, &c2, &err) == SF_OK, "%s",
              err.message);
        bad += c1 != c2 || memcmp(r1, r2, sizeof r1) != 0;
        sf_eval_revisited res;
        CHECK(sf_eval_revisited_compute(gnd, ranks, R, &res, NULL, NULL, &err) == SF_OK, "%s",
              err.message);
        bad += res.n_scored[SF_EVAL_MEDIUM] != 5 || !isnan(res.map[SF_EVAL_HARD]) ||
               res.map[SF_EVAL_EASY] != res.map[SF_EVAL_MEDIUM];
        sf_gnd_free(gnd);
    }
    CHECK(bad == 0, "groups gnd disagrees with sf_eval_recall in %d trials", bad);
    /* A subset of queries. */
    uint32_t qids[2] = { 6, 3 };
    CHECK(sf_gnd_from_groups(g, qids, 2, &gnd, &err) == SF_OK && gnd->n_queries == 2 &&
              gnd->queries[1].easy[0] == 4 && gnd->queries[1].junk[0] == 3,
          "subset gnd");
    sf_gnd_free(gnd);
    qids[0] = 7;
    CHECK(sf_gnd_from_groups(g, qids, 2, &gnd, &err) == SF_ERR_INVALID_ARGUMENT,
          "query beyond the files accepted");
    CHECK(sf_gnd_from_groups(g, NULL, 6, &gnd, &err) == SF_ERR_INVALID_ARGUMENT,
          "6 queries for 7 files accepted");
    sf_groups_free(g);
}

/* sf_gnd_from_groups on a larger random key against a direct reading of
 * its definition: every other file of the group, ascending; none for
 * single_* groups; the query as junk. */
static void check_groups_random(void)
{
    enum { N = 400 };
    char *tsv = malloc(N * 32), *p = tsv;
    char group[N][16];
    for (int i = 0; i < N; i++) {
        uint32_t r = rnd(60);
        if (r < 5)
            snprintf(group[i], sizeof group[i], "single_%d", i);
        else
            snprintf(group[i], sizeof group[i], "g%u", r % 47);
        p += sprintf(p, "f%d\t%s\n", (i * 7919) % 100003, group[i]);
    }
    sf_groups *g;
    sf_error err;
    CHECK(sf_groups_parse_tsv(tsv, (size_t)(p - tsv), "r.tsv", &g, &err) == SF_OK, "%s",
          err.message);
    free(tsv);
    if (!g)
        return;
    uint32_t qids[N / 2];
    for (int r = 0; r < N / 2; r++)
        qids[r] = rnd(N);
    for (int pass = 0; pass < 2; pass++) {
        const size_t nq = pass ? N / 2 : N;
        sf_gnd *gnd;
        CHECK(sf_gnd_from_groups(g, pass ? qids : NULL, nq, &gnd, &err) == SF_OK, "%s",
              err.message);
        if (!gnd)
            break;
        int bad = 0;
        for (size_t r = 0; r < nq; r++) {
            const size_t qf = pass ? qids[r] : r;
            const sf_gnd_query *q = &gnd->queries[r];
            size_t m = 0;
            for (size_t i = 0; i < N; i++)
                if (i != qf && strcmp(group[i], group[qf]) == 0 &&
                    strncmp(group[qf], "single_", 7) != 0) {
                    bad += m >= q->n_easy || q->easy[m] != i;
                    m++;
                }
            bad += m != q->n_easy || q->n_hard != 0 || q->n_junk != 1 || q->junk[0] != qf;
        }
        CHECK(bad == 0, "random groups gnd (pass %d): %d differences", pass, bad);
        sf_gnd_free(gnd);
    }
    sf_groups_free(g);
}

/* ---- Streams with odd records, for tests/match_rank_cli.sh ---- */

/* Images begun and ended in the stream being written. */
static int in_image;
static uint64_t images_put;

static int put(FILE *fp, const char *key, int kind, int dtype, unsigned ndim, uint64_t d0,
               uint64_t d1, const void *data, int last)
{
    if (!in_image && tu_write_provenance(fp, key))
        return 1;
    in_image = !last;
    images_put += last != 0;
    sf_record r = { .kind = (uint16_t)kind, .flags = last ? SF_RECORD_LAST : 0,
                    .dtype = (uint8_t)dtype, .ndim = (uint8_t)ndim, .scale = 1.0,
                    .shape = { d0, d1 }, .key = key, .key_len = strlen(key), .data = data };
    r.data_size = sf_shape_count(r.shape, ndim) * sf_dtype_size(dtype);
    sf_error err;
    if (sf_stream_write_record(fp, &r, &err) != SF_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    return 0;
}

/* Unit rows of dim 16 from a seed. */
static void rows(float *x, size_t n, uint64_t seed)
{
    state = seed;
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t d = 0; d < 16; d++) {
            x[i * 16 + d] = (float)rnd(2001) / 1000.0f - 1.0f;
            s += x[i * 16 + d] * x[i * 16 + d];
        }
        for (size_t d = 0; d < 16; d++)
            x[i * 16 + d] /= (float)sqrt(s);
    }
}

static FILE *open_in(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        perror(path);
    return fp;
}

/* zero.sfs: a query of 0 x 16 descriptors, first in its stream.
 * nodim.sfs: an image of 3 x 0 descriptors.  nan.sfs: 2 x 16 with a NaN.
 * tmpl.sfs: t1 (4 rows, 4 templates), t2 (4 rows, 3 templates), t3 (3, 3).
 * gdb.sfs: globals of 0, 4, 4 and 3 floats (g0..g3); gq.sfs: a 4-float query. */
static int write_odd(const char *dir)
{
    float x[4 * 16], g[4] = { 1, 0, 0, 0 }, gq[4] = { 0.6f, 0.8f, 0, 0 };
    const int32_t t4[4] = { 0, 1, 2, 3 };
    int rc = 0;
    FILE *fp;
    if (!(fp = open_in(dir, "zero.sfs")))
        return 99;
    rc |= put(fp, "zero", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, 0, 16, x, 1);
    rc |= tu_close_stream(fp, images_put);
    images_put = 0;
    if (!(fp = open_in(dir, "nodim.sfs")))
        return 99;
    rc |= put(fp, "nodim", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, 3, 0, x, 1);
    rc |= tu_close_stream(fp, images_put);
    images_put = 0;
    if (!(fp = open_in(dir, "nan.sfs")))
        return 99;
    rows(x, 2, 3);
    x[5] = NAN;
    rc |= put(fp, "nan", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, 2, 16, x, 1);
    rc |= tu_close_stream(fp, images_put);
    images_put = 0;
    if (!(fp = open_in(dir, "tmpl.sfs")))
        return 99;
    const char *keys[3] = { "t1", "t2", "t3" };
    const uint64_t n[3] = { 4, 4, 3 }, nt[3] = { 4, 3, 3 };
    for (int i = 0; i < 3; i++) {
        rows(x, n[i], 10 + (uint64_t)i);
        rc |= put(fp, keys[i], SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, n[i], 16, x, 0);
        rc |= put(fp, keys[i], SF_KIND_LOCAL_INDEX, SF_DTYPE_I32, 1, nt[i], 0, t4, 1);
    }
    rc |= tu_close_stream(fp, images_put);
    images_put = 0;
    if (!(fp = open_in(dir, "gdb.sfs")))
        return 99;
    rc |= put(fp, "g0", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, 0, 0, g, 1);
    rc |= put(fp, "g1", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, 4, 0, g, 1);
    g[0] = 0;
    g[1] = 1;
    rc |= put(fp, "g2", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, 4, 0, g, 1);
    rc |= put(fp, "g3", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, 3, 0, g, 1);
    rc |= tu_close_stream(fp, images_put);
    images_put = 0;
    if (!(fp = open_in(dir, "gq.sfs")))
        return 99;
    rc |= put(fp, "q", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, 4, 0, gq, 1);
    rc |= tu_close_stream(fp, images_put);
    images_put = 0;
    return rc ? 99 : 0;
}

/* s with \t \n \r \\ and \xHH decoded, in place. */
static void unescape(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p != '\\' || !p[1]) {
            *w++ = *p;
            continue;
        }
        p++;
        if (*p == 't')
            *w++ = '\t';
        else if (*p == 'n')
            *w++ = '\n';
        else if (*p == 'r')
            *w++ = '\r';
        else if (*p == 'x' && p[1] && p[2]) {
            char hex[3] = { p[1], p[2], 0 };
            *w++ = (char)strtol(hex, NULL, 16);
            p += 2;
        } else
            *w++ = *p;
    }
    *w = '\0';
}

/* The lines of one query, consecutive, make its two hit records. */
static int hits_from_text(const char *out)
{
    FILE *fp = fopen(out, "wb");
    if (!fp) {
        perror(out);
        return 99;
    }
    char line[4096], query[4096] = "";
    sf_hit_list l;
    sf_hit_list_init(&l);
    int rc = 0, more = 1;
    while (more && !rc) {
        more = fgets(line, sizeof line, stdin) != NULL;
        char *tab1 = more ? strchr(line, '\t') : NULL, *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (more && !tab2) {
            fprintf(stderr, "hits-from-text: not query<TAB>key<TAB>score: %s", line);
            rc = 99;
            break;
        }
        if (more) {
            *tab1 = *tab2 = '\0';
            unescape(line);
            unescape(tab1 + 1);
        }
        if ((!more || strcmp(line, query) != 0) && query[0]) {
            sf_record kr, sr;
            char *blob;
            double *sc;
            sf_error err;
            if (sf_hit_list_to_records(&l, query, &kr, &sr, &blob, &sc, &err) != SF_OK)
                return 99;
            rc |= put(fp, query, SF_KIND_HIT_KEYS, SF_DTYPE_U8, 1, kr.shape[0], 0, blob, 0);
            rc |= put(fp, query, SF_KIND_HIT_SCORES, SF_DTYPE_F64, 1, sr.shape[0], 0, sc, 1);
            free(blob);
            free(sc);
            sf_hit_list_clear(&l);
        }
        if (more) {
            sf_error err;
            snprintf(query, sizeof query, "%s", line);
            if (sf_hit_list_append(&l, tab1 + 1, strlen(tab1 + 1), strtod(tab2 + 1, NULL),
                                   &err) != SF_OK) {
                fprintf(stderr, "hits-from-text: %s\n", err.message);
                rc = 99;
            }
        }
    }
    sf_hit_list_release(&l);
    rc |= tu_close_stream(fp, images_put);
    return rc ? 99 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--hits-from-text") == 0)
        return hits_from_text(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--write-odd") == 0)
        return write_odd(argv[2]);
    check_rank();
    check_records();
    check_hit_set();
    check_groups_gnd();
    check_groups_random();
    return tu_finish("test_hits");
}
