/* Evaluation against golden/map-small (revisited Oxford: per-query AP and
 * P@k for Easy/Medium/Hard, mAP and mP@k), hand-made rankings with known
 * answers, recall@k on a small group file, loader errors, and hit lists
 * matched by name to an answer key. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_eval.h"
#include "testutil.h"

#define NQ 6
#define NDB 50

static int same(double a, double b, double tol)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return fabs(a - b) <= tol;
}

static void check_golden(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/map-small", tu_golden_dir());
    char path[4200];
    snprintf(path, sizeof path, "%s/gnd.yaml", dir);
    sf_gnd *gnd;
    sf_error err;
    sf_error_clear(&err);
    sf_status st = sf_gnd_load_yaml(path, &gnd, &err);
    CHECK(st == SF_OK, "gnd: %s", err.message);
    if (st != SF_OK)
        return;
    CHECK(gnd->n_queries == NQ, "%zu queries", gnd->n_queries);
    CHECK(gnd->queries[0].n_easy == 5 && gnd->queries[0].easy[1] == 47 &&
              gnd->queries[0].n_hard == 3 && gnd->queries[0].n_junk == 2 &&
              gnd->queries[0].junk[1] == 13 && !gnd->queries[0].has_bbx,
          "query 0 as read");
    CHECK(gnd->queries[1].n_easy == 0 && gnd->queries[3].n_hard == 0, "empty lists");

    /* ranks.i64 is database x queries (column q ranks query q, cirtorch's
     * layout); the library takes one row per query. */
    size_t size;
    int64_t *r64 = tu_read_file(dir, "ranks.i64", &size);
    CHECK(size == NDB * NQ * 8, "ranks.i64: %zu bytes", size);
    uint32_t ranks[NQ * NDB];
    for (int q = 0; q < NQ; q++)
        for (int i = 0; i < NDB; i++)
            ranks[q * NDB + i] = (uint32_t)r64[i * NQ + q];
    free(r64);

    sf_eval_revisited res;
    double aps[3 * NQ], pks[3 * NQ * 3];
    st = sf_eval_revisited_compute(gnd, ranks, NDB, &res, aps, pks, &err);
    CHECK(st == SF_OK, "evaluate: %s", err.message);

    static const char *const names[3] = { "easy", "medium", "hard" };
    double worst_ap = 0, worst_pk = 0;
    for (int p = 0; p < 3; p++) {
        char name[64];
        snprintf(name, sizeof name, "ap_%s.f64", names[p]);
        double *eap = tu_read_file(dir, name, &size);
        CHECK(size == NQ * 8, "%s: %zu bytes", name, size);
        for (int q = 0; q < NQ; q++) {
            CHECK(same(aps[p * NQ + q], eap[q], 1e-9), "%s query %d: %.17g, expected %.17g", name,
                  q, aps[p * NQ + q], eap[q]);
            if (!isnan(eap[q]))
                worst_ap = fmax(worst_ap, fabs(aps[p * NQ + q] - eap[q]));
        }
        free(eap);
        snprintf(name, sizeof name, "pk_%s.f64", names[p]);
        double *epk = tu_read_file(dir, name, &size);
        CHECK(size == NQ * 3 * 8, "%s: %zu bytes", name, size);
        for (int i = 0; i < NQ * 3; i++) {
            CHECK(same(pks[p * NQ * 3 + i], epk[i], 1e-9), "%s query %d k#%d: %.17g, expected %.17g",
                  name, i / 3, i % 3, pks[p * NQ * 3 + i], epk[i]);
            if (!isnan(epk[i]))
                worst_pk = fmax(worst_pk, fabs(pks[p * NQ * 3 + i] - epk[i]));
        }
        free(epk);
    }

    /* results: in map-small/manifest.yaml */
    static const double emap[3] = { 0.380238842416933, 0.3579799968436887, 0.10582192725405748 };
    static const double empk[3][3] = {
        { 0.6, 0.27999999999999997, 0.30857142857142855 },
        { 0.5, 0.3666666666666667, 0.3333333333333333 },
        { 0.0, 0.16, 0.12000000000000002 },
    };
    static const size_t escored[3] = { 5, 6, 5 }; /* q1 has no easy, q3 no hard (manifest notes) */
    double worst_mean = 0;
    for (int p = 0; p < 3; p++) {
        CHECK(same(res.map[p], emap[p], 1e-9), "mAP %s %.17g, expected %.17g", names[p],
              res.map[p], emap[p]);
        worst_mean = fmax(worst_mean, fabs(res.map[p] - emap[p]));
        for (int k = 0; k < 3; k++) {
            CHECK(same(res.mpk[p][k], empk[p][k], 1e-9), "mP@%d %s %.17g, expected %.17g",
                  sf_eval_kappas[k], names[p], res.mpk[p][k], empk[p][k]);
            worst_mean = fmax(worst_mean, fabs(res.mpk[p][k] - empk[p][k]));
        }
        CHECK(res.n_scored[p] == escored[p], "%s: %zu queries scored", names[p], res.n_scored[p]);
    }
    printf("map-small: max |diff| per-query AP %.3g, P@k %.3g, means %.3g\n", worst_ap, worst_pk,
           worst_mean);
    printf("map-small: mAP E %.4f M %.4f H %.4f\n", res.map[0], res.map[1], res.map[2]);
    sf_gnd_free(gnd);
}

static void check_ranking(void)
{
    sf_error err;
    sf_error_clear(&err);
    double ap, pk[3];
    static const int ks[3] = { 1, 5, 10 };

    /* Positives 7 and 9 at ranks 1 and 3: AP = ((1/1... trapezoids:
     * j=0,r=1: (0 + 1/2)/2; j=1,r=3: (1/3 + 2/4)/2; over 2 positives. */
    uint32_t r1[6] = { 1, 7, 2, 9, 3, 4 };
    uint32_t p1[2] = { 9, 7 };
    CHECK(sf_eval_ranking(r1, 6, p1, 2, NULL, 0, ks, 3, &ap, pk, &err) == SF_OK, "%s",
          err.message);
    double eap = ((0.0 + 0.5) / 2 + (1.0 / 3 + 0.5) / 2) / 2;
    CHECK(fabs(ap - eap) < 1e-15, "ap %.17g, expected %.17g", ap, eap);
    /* k = 10 with the last positive at position 4: 2 of 4 */
    CHECK(pk[0] == 0.0 && fabs(pk[1] - 0.5) < 1e-15 && fabs(pk[2] - 0.5) < 1e-15,
          "pk %g %g %g", pk[0], pk[1], pk[2]);

    /* Ignoring 1 and 2 moves the positives to ranks 0 and 1: AP 1, P@k 1. */
    uint32_t ig[2] = { 2, 1 };
    CHECK(sf_eval_ranking(r1, 6, p1, 2, ig, 2, ks, 3, &ap, pk, &err) == SF_OK, "%s", err.message);
    CHECK(ap == 1.0 && pk[0] == 1.0 && pk[1] == 1.0 && pk[2] == 1.0, "ignored: ap %g pk %g %g %g",
          ap, pk[0], pk[1], pk[2]);

    /* An id both positive and ignored counts as a positive and shifts the
     * positives after it only (cirtorch's junk shift). */
    uint32_t r2[3] = { 5, 6, 7 };
    uint32_t p2[2] = { 6, 7 }, i2[1] = { 6 };
    CHECK(sf_eval_ranking(r2, 3, p2, 2, i2, 1, ks, 1, &ap, pk, &err) == SF_OK, "%s", err.message);
    /* 6 at rank 1 (nothing ignored before it), 7 at rank 2 - 1 = 1 */
    eap = ((0.0 + 0.5) / 2 + (1.0 + 1.0) / 2) / 2;
    CHECK(fabs(ap - eap) < 1e-15, "overlap ap %.17g, expected %.17g", ap, eap);

    /* A positive missing from the ranking still counts in n_pos. */
    uint32_t p3[2] = { 1, 100 };
    CHECK(sf_eval_ranking(r1, 6, p3, 2, NULL, 0, ks, 3, &ap, pk, &err) == SF_OK, "%s",
          err.message);
    CHECK(ap == 0.5 && pk[0] == 1.0 && pk[2] == 1.0, "partial ap %g pk %g", ap, pk[0]);
    /* None ranked: 0; none at all: NaN. */
    uint32_t p4[1] = { 100 };
    CHECK(sf_eval_ranking(r1, 6, p4, 1, NULL, 0, ks, 3, &ap, pk, &err) == SF_OK && ap == 0.0 &&
              pk[1] == 0.0,
          "none ranked: ap %g", ap);
    CHECK(sf_eval_ranking(r1, 6, NULL, 0, NULL, 0, ks, 3, &ap, pk, &err) == SF_OK && isnan(ap) &&
              isnan(pk[0]),
          "no positives: ap %g", ap);
    int bad_k = 0;
    CHECK(sf_eval_ranking(r1, 6, p1, 2, NULL, 0, &bad_k, 1, &ap, pk, &err) ==
              SF_ERR_INVALID_ARGUMENT,
          "k = 0 accepted");
}

static void expect_gnd_error(const char *text, const char *want)
{
    sf_gnd *gnd = NULL;
    sf_error err;
    sf_error_clear(&err);
    sf_status st = sf_gnd_parse_yaml(text, strlen(text), "g.yaml", &gnd, &err);
    CHECK(st == SF_ERR_FORMAT && gnd == NULL && strstr(err.message, want) != NULL,
          "status %d, message '%s', wanted '%s'", st, err.message, want);
    sf_gnd_free(gnd);
}

static void check_gnd_parser(void)
{
    const char *ok = "# comment\n"
                     "- easy: [3, 1]\n"
                     "  hard:\n"
                     "    - 2\n"
                     "  junk:\n"
                     "  bbx: [1.5, 2, 30, 40]\n"
                     "- {easy: [], hard: [0], junk: [4]}\n";
    sf_gnd *gnd;
    sf_error err;
    sf_error_clear(&err);
    CHECK(sf_gnd_parse_yaml(ok, strlen(ok), "ok.yaml", &gnd, &err) == SF_OK, "%s", err.message);
    if (gnd) {
        CHECK(gnd->n_queries == 2, "%zu queries", gnd->n_queries);
        const sf_gnd_query *q = &gnd->queries[0];
        CHECK(q->n_easy == 2 && q->easy[0] == 3 && q->n_hard == 1 && q->hard[0] == 2 &&
                  q->n_junk == 0 && q->has_bbx && q->bbx[0] == 1.5 && q->bbx[3] == 40,
              "query 0 parsed");
        CHECK(gnd->queries[1].n_hard == 1 && gnd->queries[1].junk[0] == 4 &&
                  !gnd->queries[1].has_bbx,
              "query 1 parsed");
        sf_gnd_free(gnd);
    }
    sf_gnd_free(NULL);

    expect_gnd_error("- easy: [1, x]\n  hard: []\n  junk: []\n",
                     "g.yaml:1: query 0: 'easy' holds 'x', not a database id");
    expect_gnd_error("- easy: [1]\n  hard: []\n  junk: []\n- easy: [-2]\n  hard: []\n  junk: []\n",
                     "g.yaml:4: query 1: 'easy' holds '-2'");
    expect_gnd_error("- easy: [1]\n  hard: []\n", "g.yaml:1: query 0: 'junk' is missing");
    expect_gnd_error("- easy: [1]\n  hard: []\n  junk: []\n  jnuk: []\n",
                     "g.yaml:4: query 0: unknown key 'jnuk'");
    expect_gnd_error("- easy: [1]\n  easy: [2]\n", "g.yaml:2: query 0: duplicate key 'easy'");
    expect_gnd_error("- easy: 3\n  hard: []\n  junk: []\n",
                     "query 0: 'easy' must be a list of database ids, got '3'");
    expect_gnd_error("easy: [1]\n", "g.yaml:1: expected a list of queries");
    expect_gnd_error("- [1, 2]\n", "g.yaml:1: query 0: expected a mapping");
    expect_gnd_error("- easy: [1, 2\n  hard: []\n", "g.yaml:");
    expect_gnd_error("", "g.yaml: empty");
    expect_gnd_error("- easy: [1]\n  hard: []\n  junk: []\n  bbx: [1, 2, 3]\n",
                     "'bbx' has 3 values, expected 4");
    expect_gnd_error("- easy: &a [1]\n  hard: *a\n  junk: []\n", "g.yaml:2: aliases");
    expect_gnd_error("- easy: [99999999999]\n  hard: []\n  junk: []\n", "not a database id");

    sf_error_clear(&err);
    CHECK(sf_gnd_load_yaml("/nonexistent/gnd.yaml", &gnd, &err) == SF_ERR_NOT_FOUND &&
              strstr(err.message, "/nonexistent/gnd.yaml") != NULL,
          "missing file: %s", err.message);
}

static void expect_tsv_error(const char *text, const char *want)
{
    sf_groups *g = NULL;
    sf_error err;
    sf_error_clear(&err);
    sf_status st = sf_groups_parse_tsv(text, strlen(text), "g.tsv", &g, &err);
    CHECK(st == SF_ERR_FORMAT && g == NULL && strstr(err.message, want) != NULL,
          "status %d, message '%s', wanted '%s'", st, err.message, want);
    sf_groups_free(g);
}

static void check_groups(void)
{
    /* a,b in g1; c,d in g2; e single; f alone in its group.  Files 4 and 5
     * are left out as queries but stay in the database. */
    const char *tsv = "# file\tgroup\n"
                      "a.jpg\tg1\n"
                      "b.jpg\tg1\r\n"
                      "\n"
                      "c.jpg\tg2\n"
                      "d.jpg\tg2\n"
                      "e.jpg\tsingle_e\n"
                      "f.jpg\tlonely";
    sf_groups *g;
    sf_error err;
    sf_error_clear(&err);
    CHECK(sf_groups_parse_tsv(tsv, strlen(tsv), "t.tsv", &g, &err) == SF_OK, "%s", err.message);
    if (!g)
        return;
    CHECK(sf_groups_count(g) == 6, "%zu files", sf_groups_count(g));
    CHECK(strcmp(sf_groups_group(g, 1), "g1") == 0, "CR kept: '%s'", sf_groups_group(g, 1));
    CHECK(sf_groups_find(g, "d.jpg") == 3 && sf_groups_find(g, "x") == -1, "find");

    uint32_t ranks[6 * 6] = {
        0, 4, 2, 1, 3, 5, /* a: self dropped, b third */
        0, 1, 2, 3, 4, 5, /* b: a first */
        2, 3, 0, 1, 4, 5, /* c: self dropped, d first */
        5, 4, 0, 1, 2, 3, /* d: c fifth */
        0, 1, 2, 3, 4, 5, /* e: single_, left out */
        0, 1, 2, 3, 4, 5, /* f: no partner, left out */
    };
    static const int ks[3] = { 1, 3, 5 };
    double recall[3];
    size_t counted = 0;
    CHECK(sf_eval_recall(g, ranks, 6, 6, NULL, ks, 3, recall, &counted, &err) == SF_OK, "%s",
          err.message);
    CHECK(counted == 4 && recall[0] == 0.5 && recall[1] == 0.75 && recall[2] == 1.0,
          "recall %zu: %g %g %g", counted, recall[0], recall[1], recall[2]);
    /* Rows for a subset of queries. */
    uint32_t qids[2] = { 3, 0 };
    uint32_t sub[2 * 6];
    memcpy(sub, ranks + 3 * 6, sizeof(uint32_t) * 6);
    memcpy(sub + 6, ranks, sizeof(uint32_t) * 6);
    CHECK(sf_eval_recall(g, sub, 2, 6, qids, ks, 3, recall, &counted, &err) == SF_OK, "%s",
          err.message);
    CHECK(counted == 2 && recall[0] == 0.0 && recall[1] == 0.5 && recall[2] == 1.0,
          "subset recall %zu: %g %g %g", counted, recall[0], recall[1], recall[2]);
    ranks[3] = 6;
    CHECK(sf_eval_recall(g, ranks, 6, 6, NULL, ks, 3, recall, &counted, &err) ==
              SF_ERR_INVALID_ARGUMENT,
          "id 6 accepted");
    sf_groups_free(g);
    sf_groups_free(NULL);

    expect_tsv_error("a\tg\nb g\n", "g.tsv:2: expected file<TAB>group, found no tab");
    expect_tsv_error("a\tg\tx\n", "g.tsv:1: expected file<TAB>group, found more than one tab");
    expect_tsv_error("a\t\n", "g.tsv:1: empty group name");
    expect_tsv_error("\tg\n", "g.tsv:1: empty file name");
    expect_tsv_error("a\tg\nb\tg\n\na\th\n", "g.tsv:4: file 'a' is listed twice (first at line 1)");
    expect_tsv_error("# nothing\n", "g.tsv: no file<TAB>group lines");
}

static void check_names(void)
{
    const char *const names[] = { "graf1.png", "all_souls_000013", "a/b.c", "x", "x", "y.tar" };
    static const struct {
        const char *key;
        long want;
    } cases[] = {
        { "graf1.png", 0 }, { "photos/graf1.png", 0 }, { "jpg/all_souls_000013.jpg", 1 },
        { "all_souls_000013.jpg", 1 }, { "a/b.c", 2 }, { "z/a/b.c", -1 }, { "x", 3 },
        { "d/x.png", 3 }, { "y.tar.gz", 5 }, { ".x", -1 }, { "graf1", -1 }, { "", -1 },
        { "x/", -1 },
    };
    sf_eval_names *t;
    sf_error err;
    CHECK(sf_eval_names_create(names, 6, &t, &err) == SF_OK, "%s", err.message);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long got = sf_eval_names_find(t, cases[i].key);
        CHECK(got == cases[i].want, "'%s' names %ld, not %ld", cases[i].key, got, cases[i].want);
    }
    sf_eval_names_free(t);
    sf_eval_names_free(NULL);
}

/* Query q's hits: the space-separated keys, best first. */
static void add_hits(sf_hit_set *set, const char *q, const char *keys)
{
    sf_hit_list l;
    sf_record k, s;
    char *blob, key[64];
    double *sc;
    sf_error err;
    sf_hit_list_init(&l);
    for (const char *p = keys; *p;) {
        size_t n = strcspn(p, " ");
        memcpy(key, p, n);
        key[n] = '\0';
        CHECK(sf_hit_list_append(&l, key, n, 1.0 / (double)(l.count + 1), &err) == SF_OK, "%s",
              err.message);
        p += n + (p[n] == ' ');
    }
    CHECK(sf_hit_list_to_records(&l, q, &k, &s, &blob, &sc, &err) == SF_OK &&
              sf_hit_set_add_records(set, q, &k, &s, &err) == SF_OK,
          "%s", err.message);
    free(blob);
    free(sc);
    sf_hit_list_release(&l);
}

static int row_is(const sf_eval_hits *e, size_t r, const uint32_t *want)
{
    return memcmp(e->ranks + r * e->width, want, e->width * sizeof *want) == 0;
}

static void check_hits_groups(void)
{
    const char *tsv = "a.jpg\tg1\nb.jpg\tg1\nc.jpg\tg2\nd.jpg\tg2\n";
    const uint32_t NO = SF_EVAL_NO_ID;
    sf_groups *g;
    sf_hit_set *set;
    sf_eval_hits *e;
    sf_error err;
    CHECK(sf_groups_parse_tsv(tsv, strlen(tsv), "g.tsv", &g, &err) == SF_OK, "%s", err.message);
    CHECK(sf_hit_set_create(&set, &err) == SF_OK, "%s", err.message);
    add_hits(set, "other", "a.jpg");
    CHECK(sf_eval_hits_groups(set, g, "g.tsv", &e, &err) == SF_ERR_NOT_FOUND && !e &&
              !strcmp(err.message, "no query is in g.tsv (the first is other)"),
          "no query: %s", err.message);
    add_hits(set, "img/a.jpg", "a.jpg b.jpg zz.jpg");
    add_hits(set, "img/c.jpg", "photos/d.jpg c");
    CHECK(sf_eval_hits_groups(set, g, "g.tsv", &e, &err) == SF_OK, "%s", err.message);
    if (!e)
        return;
    static const uint32_t row0[3] = { 0, 1, NO }, row1[3] = { 3, NO, NO };
    CHECK(e->gnd->n_queries == 2 && e->width == 3 && row_is(e, 0, row0) && row_is(e, 1, row1),
          "rows by name");
    CHECK(!strcmp(e->row_names[0], "img/a.jpg") && !strcmp(e->row_names[1], "img/c.jpg") &&
              e->n_unknown == 1 && !strcmp(e->first_unknown, "other") && !e->no_hits[1],
          "row names, unknown queries");
    CHECK(e->gnd->queries[1].n_easy == 1 && e->gnd->queries[1].easy[0] == 3 &&
              e->gnd->queries[1].junk[0] == 2,
          "the ground truth of row 1");
    static const int ks[2] = { 1, 2 };
    sf_eval_report rep;
    CHECK(sf_eval_report_compute(e->gnd, e->ranks, e->width, ks, 2, &rep, &err) == SF_OK, "%s",
          err.message);
    CHECK(rep.summary.n_scored[SF_EVAL_MEDIUM] == 2 && rep.summary.map[SF_EVAL_MEDIUM] == 1.0 &&
              rep.aps[SF_EVAL_MEDIUM * 2 + 1] == 1.0 && rep.recall[SF_EVAL_MEDIUM][0] == 1.0,
          "report");
    sf_eval_report_release(&rep);
    sf_eval_hits_free(e);
    sf_hit_set_free(set);
    /* No queries at all: an empty report, no error. */
    CHECK(sf_hit_set_create(&set, &err) == SF_OK, "%s", err.message);
    CHECK(sf_eval_hits_groups(set, g, "g.tsv", &e, &err) == SF_OK && e->gnd->n_queries == 0 &&
              e->n_unknown == 0,
          "empty set: %s", err.message);
    sf_eval_hits_free(e);
    sf_eval_hits_free(NULL);
    sf_hit_set_free(set);
    sf_groups_free(g);
}

static void check_hits_gnd(void)
{
    const char *yaml = "- {easy: [1], hard: [], junk: [0]}\n"
                       "- {easy: [2], hard: [0], junk: []}\n";
    const char *const db_names[] = { "d0", "d1", "d2" }, *const q_names[] = { "qa", "qb", "qc" };
    const uint32_t NO = SF_EVAL_NO_ID;
    sf_eval_list db = { db_names, 3, "db.txt" }, queries = { q_names, 2, "q.txt" };
    sf_gnd *gnd;
    sf_hit_set *set;
    sf_eval_hits *e;
    sf_error err;
    CHECK(sf_gnd_parse_yaml(yaml, strlen(yaml), "g.yaml", &gnd, &err) == SF_OK, "%s",
          err.message);
    if (!gnd)
        return;
    CHECK(sf_hit_set_create(&set, &err) == SF_OK, "%s", err.message);
    add_hits(set, "x/qa.jpg", "d1 d0");
    add_hits(set, "unknown", "d1");
    add_hits(set, "qa", "d0 x/d2.png d3 d1"); /* the last query named qa wins */
    CHECK(sf_eval_hits_gnd(set, gnd, "g.yaml", &db, &queries, &e, &err) == SF_OK, "%s",
          err.message);
    if (!e)
        return;
    static const uint32_t row0[4] = { 0, 2, NO, 1 }, row1[4] = { NO, NO, NO, NO };
    CHECK(e->gnd == gnd && e->width == 4 && row_is(e, 0, row0) && row_is(e, 1, row1),
          "rows by name");
    CHECK(!e->no_hits[0] && e->no_hits[1] && !strcmp(e->row_names[1], "qb") &&
              e->n_unknown == 1 && !strcmp(e->first_unknown, "unknown"),
          "queries without hits, unknown queries");
    /* The report is that of the library's own measures. */
    static const int ks[3] = { 1, 2, 3 };
    sf_eval_report rep;
    sf_eval_revisited res;
    double aps[6], recall[3];
    CHECK(sf_eval_report_compute(gnd, e->ranks, e->width, ks, 3, &rep, &err) == SF_OK &&
              sf_eval_revisited_compute(gnd, e->ranks, e->width, &res, aps, NULL, &err) == SF_OK,
          "%s", err.message);
    CHECK(!memcmp(&res, &rep.summary, sizeof res) && !memcmp(aps, rep.aps, sizeof aps),
          "summary and APs");
    for (int p = 0; p < SF_EVAL_N_PROTOCOLS; p++) {
        CHECK(sf_eval_revisited_recall(gnd, (sf_eval_protocol)p, e->ranks, e->width, ks, 3,
                                       recall, NULL, &err) == SF_OK,
              "%s", err.message);
        CHECK(!memcmp(recall, rep.recall[p], sizeof recall), "recall, protocol %d", p);
    }
    sf_eval_report_release(&rep);
    sf_eval_report_release(&rep); /* twice is harmless */
    static const int many[SF_EVAL_MAX_RECALL + 1] = { 1 };
    CHECK(sf_eval_report_compute(gnd, e->ranks, e->width, many, SF_EVAL_MAX_RECALL + 1, &rep,
                                 &err) == SF_ERR_INVALID_ARGUMENT,
          "17 recall ranks accepted");
    sf_eval_hits_free(e);
    /* Lists that do not fit the ground truth. */
    queries.count = 3;
    CHECK(sf_eval_hits_gnd(set, gnd, "g.yaml", &db, &queries, &e, &err) ==
                  SF_ERR_INVALID_ARGUMENT && !e &&
              !strcmp(err.message, "q.txt names 3 queries, g.yaml has 2"),
          "query list: %s", err.message);
    queries.count = 2;
    db.count = 2;
    CHECK(sf_eval_hits_gnd(set, gnd, "g.yaml", &db, &queries, &e, &err) ==
                  SF_ERR_INVALID_ARGUMENT && !e &&
              !strcmp(err.message, "g.yaml: query 1 lists image 2; db.txt has 2"),
          "database list: %s", err.message);
    sf_hit_set_free(set);
    sf_gnd_free(gnd);
}

/* The answer key of shared/datasets, when present: it must load. */
static void check_dataset_tsv(void)
{
    const char *srcdir = getenv("top_srcdir");
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/images/groups.tsv", srcdir ? srcdir : ".");
    sf_groups *g;
    sf_error err;
    sf_error_clear(&err);
    sf_status st = sf_groups_load_tsv(path, &g, &err);
    if (st == SF_ERR_NOT_FOUND)
        return;
    CHECK(st == SF_OK && sf_groups_count(g) > 0, "%s", err.message);
    sf_groups_free(g);
}

int main(void)
{
    check_ranking();
    check_gnd_parser();
    check_groups();
    check_names();
    check_hits_groups();
    check_hits_gnd();
    check_dataset_tsv();
    if (tu_failures) /* do not let a missing fixture turn this into a skip */
        return tu_finish("test_eval");
    check_golden();
    return tu_finish("test_eval");
}
