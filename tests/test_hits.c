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
    bad = 0;
    for (size_t i = 0; i < np; i++)
        bad += strcmp(pairs[i].query, sf_hit_set_key(set, i)) != 0 || pairs[i].hit != pairs[i].a;
    CHECK(bad == 0, "%zu pairs do not say their query and hit as first met", bad);
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
    char group[N][24];
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

/* ---- Text for other tools ---- */

static int csv_is(const char *s, const char *want)
{
    char *t;
    sf_error err;
    if (sf_text_csv_field(s, &t, &err) != SF_OK)
        return 0;
    int ok = strcmp(t, want) == 0;
    if (!ok)
        printf("  csv of '%s': got '%s', want '%s'\n", s, t, want);
    free(t);
    return ok;
}

static int json_is(const char *s, const char *want)
{
    char *t = NULL;
    sf_error err;
    sf_status st = sf_text_json_string(s, &t, &err);
    int ok = want ? st == SF_OK && strcmp(t, want) == 0 : st == SF_ERR_INVALID_DATA && !t;
    if (!ok)
        printf("  json of '%s': got '%s' (%s), want '%s'\n", s, st == SF_OK ? t : "",
               st == SF_OK ? "ok" : err.message, want ? want : "refused");
    free(t);
    return ok;
}

/* The name key gets (NULL: refused, and the message holds why). */
static int name_is(sf_pairs_format f, const char *key, const char *root, int field,
                   const char *want, const char *why)
{
    const char *name;
    sf_error err;
    sf_status st = sf_pairs_name(f, key, root, field, &name, &err);
    int ok = want ? st == SF_OK && strcmp(name, want) == 0
                  : st == SF_ERR_INVALID_DATA && !name && strstr(err.message, why);
    if (!ok)
        printf("  format %d, '%s' under '%s': got '%s' (%s), want '%s' (%s)\n", (int)f, key,
               root ? root : "(none)", st == SF_OK ? name : "", st == SF_OK ? "" : err.message,
               want ? want : "refused", why ? why : "");
    return ok;
}

static void check_text(void)
{
    CHECK(csv_is("a.jpg", "a.jpg") && csv_is("", "\"\"") && csv_is("a,b", "\"a,b\"") &&
              csv_is("say \"hi\"", "\"say \"\"hi\"\"\"") && csv_is("a\nb", "\"a\nb\"") &&
              csv_is("a\rb", "\"a\rb\"") && csv_is("a b\t\xff", "a b\t\xff"),
          "CSV fields (RFC 4180)");
    CHECK(json_is("a.jpg", "\"a.jpg\"") && json_is("q\"\\", "\"q\\\"\\\\\"") &&
              json_is("\t\n\r\b\f\x01\x1f", "\"\\t\\n\\r\\b\\f\\u0001\\u001f\"") &&
              json_is("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f",
                      "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\""),
          "JSON strings: escapes, UTF-8 as it is");
    CHECK(json_is("a\xff", NULL) && json_is("\xc3", NULL) && json_is("\xc0\xaf", NULL) &&
              json_is("\xed\xa0\x80", NULL) && json_is("\xf4\x90\x80\x80", NULL) &&
              json_is("\xe2\x82", NULL) && json_is("\x80", NULL),
          "JSON: invalid, overlong, surrogate, past U+10FFFF, cut short: refused");
    sf_error err;
    char *t = NULL;
    CHECK(sf_text_json_string("ok/\xfe.jpg", &t, &err) == SF_ERR_INVALID_DATA &&
              strstr(err.message, "ok/\\xFE.jpg: not valid UTF-8 (byte 4)"),
          "the message names the key printably and the byte: %s", err.message);
    char buf[16], wide[64];
    CHECK(strcmp(sf_text_printable("a\tb\n\\\xff\xc3\xa9", wide, sizeof wide),
                 "a\\tb\\n\\\\\\xFF\xc3\xa9") == 0,
          "printable: '%s'", wide);
    CHECK(strcmp(sf_text_printable("0123456789abcdefghij", buf, sizeof buf), "0123456789ab...") ==
              0 && strlen(buf) < sizeof buf,
          "printable cut short: '%s'", buf);

    const sf_pairs_format C = SF_PAIRS_COLMAP, H = SF_PAIRS_HLOC, K = SF_PAIRS_KAPTURE;
    /* Roots. */
    CHECK(name_is(C, "photos/a.jpg", "photos", 0, "a.jpg", NULL) &&
              name_is(C, "photos/a.jpg", "photos/", 0, "a.jpg", NULL) &&
              name_is(C, "./photos//./sub/a.jpg", "./photos", 0, "sub/a.jpg", NULL) &&
              name_is(C, "/data/p/a.jpg", "/data/p", 1, "a.jpg", NULL) &&
              name_is(C, "/data/p/a.jpg", "/", 1, "data/p/a.jpg", NULL) &&
              name_is(C, "sub/a.jpg", ".", 0, "sub/a.jpg", NULL) &&
              name_is(C, "./sub/a.jpg", NULL, 0, "sub/a.jpg", NULL),
          "names relative to the root");
    CHECK(name_is(C, "photosx/a.jpg", "photos", 0, NULL, "not under the root photos") &&
              name_is(C, "other/a.jpg", "photos", 0, NULL, "not under the root") &&
              name_is(C, "a.jpg", "/", 0, NULL, "not under the root") &&
              name_is(H, "/data/a.jpg", NULL, 0, NULL, "an absolute path") &&
              name_is(C, "photos/", "photos", 0, NULL, "the root folder itself") &&
              name_is(K, "p/../../a.jpg", "p", 0, NULL, "'..'") &&
              name_is(C, "../a.jpg", NULL, 0, NULL, "'..'"),
          "names outside the root refused");
    CHECK(name_is(C, "p/..a.jpg", "p", 0, "..a.jpg", NULL) &&
              name_is(C, "p/a..", "p", 0, "a..", NULL),
          "'..' inside a name is no parent folder");
    /* Grammars. */
    CHECK(name_is(C, "p/a b.jpg", "p", 1, NULL, "holds a space, where COLMAP") &&
              name_is(C, "p/a\tb.jpg", "p", 1, NULL, "white space") &&
              name_is(C, "p/a\nb.jpg", "p", 0, NULL, "white space") &&
              name_is(C, "p/#a.jpg", "p", 0, NULL, "comment") &&
              name_is(C, "p/#a.jpg", "p", 1, "#a.jpg", NULL) &&
              name_is(C, "p/a,\xff.jpg", "p", 0, "a,\xff.jpg", NULL),
          "COLMAP: white space and a leading # refused; commas and bytes kept");
    CHECK(name_is(H, "p/a b.jpg", "p", 1, NULL, "holds a space, where hloc") &&
              name_is(H, "a\xc2\xa0" "b", NULL, 0, NULL, "white space") &&
              name_is(H, "a\xe3\x80\x80" "b", NULL, 0, NULL, "white space") &&
              name_is(H, "a\x1c" "b", NULL, 0, NULL, "white space") &&
              name_is(H, "a\xff", NULL, 0, NULL, "not valid UTF-8 (byte 2)") &&
              name_is(H, "p/a\xff", "p", 0, NULL, "(byte 4)") &&
              name_is(H, "#a,b.jpg", NULL, 0, "#a,b.jpg", NULL) &&
              name_is(H, "caf\xc3\xa9.jpg", NULL, 0, "caf\xc3\xa9.jpg", NULL),
          "hloc: any Unicode white space and non-UTF-8 refused");
    CHECK(name_is(K, "p/a,b.jpg", "p", 1, NULL, "holds a comma") &&
              name_is(K, "p/ a.jpg", "p", 1, NULL, "starts or ends with white space") &&
              name_is(K, "a.jpg\xe2\x80\x83", NULL, 1, NULL, "white space") &&
              name_is(K, "a\nb", NULL, 1, NULL, "line break") &&
              name_is(K, "a b.jpg", NULL, 1, "a b.jpg", NULL) &&
              name_is(K, "#a.jpg", NULL, 0, NULL, "comment") &&
              name_is(K, "#a.jpg", NULL, 1, "#a.jpg", NULL) &&
              name_is(K, "a\xff", NULL, 0, NULL, "UTF-8"),
          "kapture: commas, white space at the ends, line breaks, non-UTF-8 refused");
    const char *name;
    CHECK(sf_pairs_name((sf_pairs_format)7, "a", NULL, 0, &name, &err) ==
              SF_ERR_INVALID_ARGUMENT && sf_pairs_name(C, "a", NULL, 2, &name, &err) ==
              SF_ERR_INVALID_ARGUMENT,
          "unknown format or field");
}

/* ---- Groups ---- */

static sf_hit_set *set_of(const char *const *lines)
{
    /* "query hit score" triples, one list per query in order. */
    sf_hit_set *set;
    sf_error err;
    sf_hit_list l;
    CHECK(sf_hit_set_create(&set, &err) == SF_OK, "%s", err.message);
    sf_hit_list_init(&l);
    for (size_t i = 0; lines[i]; i += 3) {
        sf_hit_list_clear(&l);
        add(&l, lines[i + 1], atof(lines[i + 2]));
        CHECK(add_list(set, lines[i], &l, &err) == SF_OK, "%s", err.message);
    }
    sf_hit_list_release(&l);
    return set;
}

/* The grouping as "a b | c | d e" (groups in order, images in order). */
static int groups_are(const sf_hit_graph *g, double t, sf_group_rule rule, const char *want)
{
    size_t group[32], n_groups;
    sf_error err;
    char got[512] = "";
    if (sf_hit_graph_group(g, t, rule, group, &n_groups, &err) != SF_OK)
        return 0;
    for (size_t k = 0; k < n_groups; k++) {
        if (k)
            strcat(got, " | ");
        int first = 1;
        for (size_t i = 0; i < sf_hit_graph_count(g); i++)
            if (group[i] == k) {
                strcat(got, first ? "" : " ");
                strcat(got, sf_hit_graph_key(g, i));
                first = 0;
            }
    }
    if (strcmp(got, want) != 0) {
        printf("  at %g: got '%s', want '%s'\n", t, got, want);
        return 0;
    }
    return 1;
}

static void check_groups(void)
{
    /* a-b strongly both ways, b-c one way only, c-d both ways weakly, e
     * only a hit (never a query), f alone, self hits ignored. */
    static const char *const lines[] = {
        "a", "b", "0.9", "a", "a", "1", "b", "a", "0.8", "b", "c", "0.6", "c", "d", "0.3",
        "d", "c", "0.4", "d", "e", "0.7", "f", "f", "1", "a", "b", "0.2", NULL,
    };
    sf_hit_set *set = set_of(lines);
    sf_hit_graph *g;
    sf_error err;
    CHECK(sf_hit_graph_create(set, &g, &err) == SF_OK, "%s", err.message);
    CHECK(sf_hit_graph_count(g) == 6 && !strcmp(sf_hit_graph_key(g, 4), "f") &&
              !strcmp(sf_hit_graph_key(g, 5), "e") && !sf_hit_graph_key(g, 6) &&
              sf_hit_graph_is_query(g, 4) && !sf_hit_graph_is_query(g, 5),
          "images: queries first, then the other hits");
    CHECK(sf_hit_graph_n_edges(g) == 4, "%zu pairs", sf_hit_graph_n_edges(g));
    const sf_hit_edge *e = sf_hit_graph_edges(g);
    CHECK(e[0].a == 0 && e[0].b == 1 && e[0].ab == 0.9 && e[0].ba == 0.8, "a-b: the best of "
          "a's two listings of b, and b's of a");
    CHECK(e[1].a == 1 && e[1].b == 2 && e[1].ab == 0.6 && isnan(e[1].ba), "b-c: one way");
    CHECK(sf_hit_edge_score(&e[0], SF_GROUP_EITHER) == 0.9 &&
              sf_hit_edge_score(&e[0], SF_GROUP_MUTUAL) == 0.8 &&
              sf_hit_edge_score(&e[1], SF_GROUP_EITHER) == 0.6 &&
              isnan(sf_hit_edge_score(&e[1], SF_GROUP_MUTUAL)),
          "edge scores under each rule");
    CHECK(groups_are(g, 0.5, SF_GROUP_EITHER, "a b c | d e | f") &&
              groups_are(g, 0.3, SF_GROUP_EITHER, "a b c d e | f") &&
              groups_are(g, 0.85, SF_GROUP_EITHER, "a b | c | d | f | e") &&
              groups_are(g, 2, SF_GROUP_EITHER, "a | b | c | d | f | e") &&
              groups_are(g, 0.5, SF_GROUP_MUTUAL, "a b | c | d | f | e") &&
              groups_are(g, 0.3, SF_GROUP_MUTUAL, "a b | c d | f | e") &&
              groups_are(g, 0.9, SF_GROUP_MUTUAL, "a | b | c | d | f | e"),
          "connected components at thresholds, either and mutual (threshold inclusive)");

    /* Against a key: {a b c} one place, d e another, f single; x is in no
     * list. */
    static const char key_tsv[] = "# key\na\tp\nb\tp\nc\tp\nd\tq\ne\tq\nf\tsingle_f\nx\tp\n";
    sf_groups *key;
    CHECK(sf_groups_parse_tsv(key_tsv, sizeof key_tsv - 1, "key", &key, &err) == SF_OK, "%s",
          err.message);
    size_t group[8], n_groups = 0;
    sf_group_eval ev = { 0 };
    CHECK(sf_hit_graph_group(g, 0.5, SF_GROUP_EITHER, group, &n_groups, &err) == SF_OK &&
              sf_group_evaluate(key, g, group, &ev, &err) == SF_OK, "%s", err.message);
    /* Found: {a b c} 3 pairs, {d e} 1: all correct; true: 3 + 1. */
    CHECK(ev.n_named == 6 && ev.n_unknown == 0 && ev.n_key_missing == 1 && ev.true_pairs == 4 &&
              ev.found_pairs == 4 && ev.correct_pairs == 4 && ev.precision == 1 &&
              ev.recall == 1,
          "perfect at 0.5: %zu named, %llu/%llu/%llu", ev.n_named,
          (unsigned long long)ev.true_pairs, (unsigned long long)ev.found_pairs,
          (unsigned long long)ev.correct_pairs);
    CHECK(sf_hit_graph_group(g, 0.3, SF_GROUP_EITHER, group, &n_groups, &err) == SF_OK &&
              sf_group_evaluate(key, g, group, &ev, &err) == SF_OK, "%s", err.message);
    CHECK(ev.found_pairs == 10 && ev.correct_pairs == 4 && fabs(ev.precision - 0.4) < 1e-12 &&
              ev.recall == 1,
          "one group of five at 0.3: precision 4/10");
    CHECK(sf_hit_graph_group(g, 0.85, SF_GROUP_EITHER, group, &n_groups, &err) == SF_OK &&
              sf_group_evaluate(key, g, group, &ev, &err) == SF_OK, "%s", err.message);
    CHECK(ev.found_pairs == 1 && ev.correct_pairs == 1 && ev.recall == 0.25, "a b at 0.85");
    double *same, *other;
    size_t ns = 0, no = 0;
    uint64_t sm = 0, om = 0;
    CHECK(sf_group_scores(key, g, SF_GROUP_EITHER, &same, &ns, &sm, &other, &no, &om, &err) ==
              SF_OK, "%s", err.message);
    /* True pairs held: a-b 0.9, b-c 0.6, d-e 0.7; a-c missing.  Other: c-d 0.4. */
    CHECK(ns == 3 && same[0] == 0.6 && same[1] == 0.7 && same[2] == 0.9 && sm == 1 &&
              no == 1 && other[0] == 0.4 && om == 0,
          "scores of true and other pairs: %zu (%llu missing), %zu", ns, (unsigned long long)sm,
          no);
    free(same);
    free(other);
    CHECK(sf_group_scores(key, g, SF_GROUP_MUTUAL, &same, &ns, &sm, &other, &no, &om, &err) ==
              SF_OK && ns == 1 && same[0] == 0.8 && sm == 3 && no == 1 && other[0] == 0.3,
          "mutual: pairs that did not find each other have no score");
    free(same);
    free(other);
    sf_groups_free(key);

    /* Images the key does not name are left out and counted. */
    static const char key2[] = "a.jpg\tp\nb\tp\nzz\tr\n";
    CHECK(sf_groups_parse_tsv(key2, sizeof key2 - 1, "key2", &key, &err) == SF_OK, "%s",
          err.message);
    CHECK(sf_hit_graph_group(g, 0.5, SF_GROUP_EITHER, group, &n_groups, &err) == SF_OK &&
              sf_group_evaluate(key, g, group, &ev, &err) == SF_OK && ev.n_named == 1 &&
              ev.n_unknown == 5 && !strcmp(ev.first_unknown, "a") && ev.n_key_missing == 2 &&
              ev.true_pairs == 0 && isnan(ev.recall) && isnan(ev.precision),
          "unnamed images: %zu named, %zu unknown", ev.n_named, ev.n_unknown);
    sf_groups_free(key);
    sf_hit_graph_free(g);
    sf_hit_set_free(set);
    sf_hit_graph_free(NULL);

    /* An empty set: no images, no groups. */
    CHECK(sf_hit_set_create(&set, &err) == SF_OK && sf_hit_graph_create(set, &g, &err) == SF_OK &&
              sf_hit_graph_count(g) == 0 &&
              sf_hit_graph_group(g, 0, SF_GROUP_EITHER, group, &n_groups, &err) == SF_OK &&
              n_groups == 0,
          "empty");
    sf_hit_graph_free(g);
    sf_hit_set_free(set);

    /* Many images in a chain: the pair table grows, components stay right. */
    CHECK(sf_hit_set_create(&set, &err) == SF_OK, "%s", err.message);
    sf_hit_list l;
    sf_hit_list_init(&l);
    char q[32], h[32];
    const size_t n = 3000;
    for (size_t i = 0; i < n; i++) {
        sf_hit_list_clear(&l);
        snprintf(q, sizeof q, "i%zu", i);
        snprintf(h, sizeof h, "i%zu", (i + 1) % n);
        add(&l, h, i % 100 == 99 ? 0.1 : 0.9); /* cut every 100 */
        snprintf(h, sizeof h, "i%zu", (i + 2) % n);
        add(&l, h, 0.05);
        CHECK(add_list(set, q, &l, &err) == SF_OK, "%s", err.message);
    }
    sf_hit_list_release(&l);
    /* (Arguments are evaluated in any order: g first, then its use.) */
    CHECK(sf_hit_graph_create(set, &g, &err) == SF_OK, "%s", err.message);
    CHECK(sf_hit_graph_n_edges(g) == 2 * n, "chain: %zu pairs", sf_hit_graph_n_edges(g));
    size_t *big = malloc(n * sizeof *big);
    size_t wrong = 0;
    CHECK(sf_hit_graph_group(g, 0.5, SF_GROUP_EITHER, big, &n_groups, &err) == SF_OK, "%s",
          err.message);
    CHECK(n_groups == n / 100, "%zu groups of the chain", n_groups);
    for (size_t i = 0; i < n; i++)
        wrong += big[i] != i / 100;
    CHECK(wrong == 0, "%zu images in the wrong group", wrong);
    free(big);
    sf_hit_graph_free(g);
    sf_hit_set_free(set);

    CHECK(sf_groups_check_file("photos/a b,c.jpg", &err) == SF_OK &&
              sf_groups_check_file("a\rb", &err) == SF_OK &&
              sf_groups_check_file("a\tb", &err) == SF_ERR_INVALID_DATA &&
              strstr(err.message, "a\\tb: holds a tab") &&
              sf_groups_check_file("a\nb", &err) == SF_ERR_INVALID_DATA &&
              sf_groups_check_file("#a", &err) == SF_ERR_INVALID_DATA &&
              sf_groups_check_file("", &err) == SF_ERR_INVALID_DATA,
          "file names a groups line can hold");
    const double v[] = { 1, 2, 3, 4, 5 };
    CHECK(sf_quantile_sorted(v, 5, 0) == 1 && sf_quantile_sorted(v, 5, 1) == 5 &&
              sf_quantile_sorted(v, 5, 0.5) == 3 && sf_quantile_sorted(v, 5, 0.125) == 1.5 &&
              sf_quantile_sorted(v, 1, 0.7) == 1 && isnan(sf_quantile_sorted(v, 0, 0.5)),
          "quantiles");
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
    check_text();
    check_groups();
    return tu_finish("test_hits");
}
