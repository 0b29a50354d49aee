/* The searches of sf_search.h against brute force: the global top k with
 * many ties, pairwise match counts and their order, re-ranking with an
 * index's own scores, and what a database refuses. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf.h"
#include "testutil.h"

#define N_IMG 300  /* global database */
#define GDIM 20    /* 16 + a tail: both loops of the dot product */
#define N_LOCAL 24 /* images with local descriptors too */
#define DIM 8
#define MAX_ROWS 12
#define K_WORDS 8

typedef struct image {
    char key[16];
    float desc[MAX_ROWS * DIM];
    int32_t tmpl[MAX_ROWS];
    size_t n;
    float global[GDIM];
    sf_record recs[3];
    sf_stream_image img;
} image;

static image imgs[N_IMG];
static image query;

static uint64_t rng = 7;
/* Quarters in [-0.5, 0.5]: every dot product of GDIM of them is exact in
 * float32, so brute force in double gives the same scores, ties included. */
static float rnd_quarter(void) { return (float)((int)(tu_rnd(&rng) % 5) - 2) / 4.0f; }

static sf_record record(const image *im, int kind, int dtype, unsigned ndim, uint64_t d0,
                        uint64_t d1, const void *data, size_t elem)
{
    sf_record r = { .kind = (uint16_t)kind, .dtype = (uint8_t)dtype, .ndim = (uint8_t)ndim,
                    .scale = 1.0, .shape = { d0, d1 }, .key = im->key,
                    .key_len = strlen(im->key), .data = data };
    r.data_size = d0 * (ndim == 2 ? d1 : 1) * elem;
    return r;
}

/* im as sf_stream_read_image would return it, with the records asked for. */
static const sf_stream_image *as_stream(image *im, int desc, int tmpl, int global)
{
    size_t n = 0;
    if (desc)
        im->recs[n++] = record(im, SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, im->n, DIM, im->desc,
                               sizeof(float));
    if (tmpl)
        im->recs[n++] = record(im, SF_KIND_LOCAL_INDEX, SF_DTYPE_I32, 1, im->n, 0, im->tmpl,
                               sizeof(int32_t));
    if (global)
        im->recs[n++] = record(im, SF_KIND_GLOBAL, SF_DTYPE_F32, 1, GDIM, 0, im->global,
                               sizeof(float));
    im->img = (sf_stream_image){ .key = im->key, .key_len = strlen(im->key), .recs = im->recs,
                                 .count = n };
    return &im->img;
}

static void make_images(void)
{
    for (size_t i = 0; i < N_IMG; i++) {
        image *im = &imgs[i];
        snprintf(im->key, sizeof im->key, "img%03zu", i);
        for (size_t d = 0; d < GDIM; d++)
            im->global[d] = i % 7 == 3 ? imgs[i - 3].global[d] : i % 29 == 5 ? 0.0f
                                                                            : rnd_quarter();
        im->n = 3 + i % (MAX_ROWS - 3);
        for (size_t j = 0; j < im->n; j++) {
            im->tmpl[j] = (int32_t)(j % 3);
            for (size_t d = 0; d < DIM; d++)
                im->desc[j * DIM + d] = tu_rnd_normal(&rng);
        }
    }
    /* Images 7 and 13 hold image 2's descriptors: equal match counts. */
    imgs[7].n = imgs[13].n = imgs[2].n;
    memcpy(imgs[7].desc, imgs[2].desc, sizeof imgs[2].desc);
    memcpy(imgs[13].desc, imgs[2].desc, sizeof imgs[2].desc);
    /* The query: rows of images 2, 5 and 11, and rows of its own. */
    snprintf(query.key, sizeof query.key, "query");
    const size_t from[][2] = { { 2, 0 }, { 2, 1 }, { 2, 2 }, { 5, 0 }, { 5, 3 },
                               { 11, 1 }, { 11, 2 }, { 11, 4 }, { 11, 5 } };
    for (size_t j = 0; j < MAX_ROWS; j++) {
        for (size_t d = 0; d < DIM; d++)
            query.desc[j * DIM + d] = j < 9 ? imgs[from[j][0]].desc[from[j][1] * DIM + d] +
                                                  0.01f * tu_rnd_normal(&rng)
                                            : tu_rnd_normal(&rng);
        query.tmpl[j] = (int32_t)(j % 3);
    }
    query.n = MAX_ROWS;
    for (size_t d = 0; d < GDIM; d++)
        query.global[d] = rnd_quarter();
}

typedef struct ref {
    double score;
    size_t id;
} ref;

/* Higher score first, then database order: written out again here. */
static int ref_order(const void *a, const void *b)
{
    const ref *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static size_t ties_in(const ref *r, size_t n)
{
    size_t t = 0;
    for (size_t i = 1; i < n; i++)
        t += r[i].score == r[i - 1].score;
    return t;
}

/* hits are want[0 .. n) by key and score. */
static int hits_are(const sf_hit_list *hits, const ref *want, size_t n)
{
    if (hits->count != n) {
        printf("  %zu hits, want %zu\n", hits->count, n);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(hits->keys[i], imgs[want[i].id].key) != 0 || hits->scores[i] != want[i].score) {
            printf("  hit %zu: %s %g, want %s %g\n", i, hits->keys[i], hits->scores[i],
                   imgs[want[i].id].key, want[i].score);
            return 0;
        }
    return 1;
}

/* The first n images by global score against the query, brute force. */
static void global_ranking(ref *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t d = 0; d < GDIM; d++)
            s += (double)imgs[i].global[d] * query.global[d];
        out[i] = (ref){ s, i };
    }
    qsort(out, n, sizeof *out, ref_order);
}

/* A database of the first n images: their local_desc and local_index, or
 * their global. */
static sf_search_db *make_db(sf_search_kind kind, const sf_search_options *o, size_t n)
{
    sf_search_db *db;
    sf_error err;
    const int local = kind == SF_SEARCH_PAIRWISE;
    CHECK(sf_search_db_create(kind, o, &db, &err) == SF_OK, "%s", err.message);
    for (size_t i = 0; i < n; i++)
        CHECK(sf_search_db_add(db, as_stream(&imgs[i], local, local, !local), &err) == SF_OK,
              "%s", err.message);
    return db;
}

static void check_global(void)
{
    sf_error err;
    sf_search_db *db = make_db(SF_SEARCH_GLOBAL, NULL, N_IMG);
    CHECK(sf_search_db_count(db) == N_IMG, "count");
    ref want[N_IMG];
    global_ranking(want, N_IMG);
    CHECK(ties_in(want, 20) > 3 && ties_in(want, N_IMG) > 100, "the data has ties");
    sf_search_options o;
    sf_search_options_default(&o);
    sf_search_result r;
    sf_search_result_init(&r);
    const size_t ks[] = { 1, 2, 5, 17, 100, N_IMG - 1, N_IMG, N_IMG + 1, 0 };
    for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
        o.top_k = ks[t];
        sf_status st = sf_search_global(db, as_stream(&query, 0, 0, 1), &o, &r, &err);
        CHECK(st == SF_OK, "%s", err.message);
        size_t n = ks[t] == 0 || ks[t] > N_IMG ? N_IMG : ks[t];
        CHECK(hits_are(&r.hits, want, n), "global top %zu", ks[t]);
        CHECK(r.pairs == NULL && r.not_indexed == 0, "global: no pairs, no index");
    }

    /* What the database and a search refuse. */
    image odd = imgs[0];
    snprintf(odd.key, sizeof odd.key, "odd");
    CHECK(sf_search_db_add(db, as_stream(&odd, 1, 0, 0), &err) == SF_ERR_INVALID_DATA &&
              strcmp(err.message, "odd: no global record (sf-lit --global)") == 0,
          "no global: %s", err.message);
    sf_stream_image *short_global = (sf_stream_image *)as_stream(&odd, 0, 0, 1);
    odd.recs[0].shape[0] = GDIM - 1;
    odd.recs[0].data_size = (GDIM - 1) * sizeof(float);
    CHECK(sf_search_db_add(db, short_global, &err) == SF_ERR_INVALID_DATA &&
              strcmp(err.message, "odd: global is not one float32 vector of 20") == 0,
          "another dimension: %s", err.message);
    CHECK(sf_search_db_count(db) == N_IMG, "refused images are left out");
    CHECK(sf_search_global(db, short_global, &o, &r, &err) == SF_ERR_INVALID_DATA &&
              strstr(err.message, "(as the database's)") && r.hits.count == 0,
          "a query of another dimension: %s", err.message);
    CHECK(sf_search_pairwise(db, as_stream(&query, 1, 0, 0), &o, &r, &err) ==
              SF_ERR_INVALID_ARGUMENT,
          "pairwise search of a global database");
    sf_search_db_free(db);

    db = make_db(SF_SEARCH_GLOBAL, NULL, 0);
    CHECK(sf_search_global(db, short_global, &o, &r, &err) == SF_OK && r.hits.count == 0,
          "an empty database: no hits, whatever the dimension");
    sf_search_db_free(db);
    sf_search_db_free(NULL);
    sf_search_result_release(&r);
}

static int same_list(const sf_match_list *a, const sf_match_list *b)
{
    return a->count == b->count && !memcmp(a->a, b->a, a->count * sizeof *a->a) &&
           !memcmp(a->b, b->b, a->count * sizeof *a->b) &&
           !memcmp(a->similarity, b->similarity, a->count * sizeof *a->similarity);
}

/* Every order of min_matches and top_k against sf_match_find, image by
 * image. */
static void check_pairwise_with(const sf_search_options *base)
{
    sf_error err;
    sf_search_db *db = make_db(SF_SEARCH_PAIRWISE, base, N_LOCAL);
    sf_match_list lists[N_LOCAL];
    ref counts[N_LOCAL];
    for (size_t i = 0; i < N_LOCAL; i++) {
        sf_match_options mo = base->match;
        mo.a_template = query.tmpl;
        mo.b_template = imgs[i].tmpl;
        CHECK(sf_match_find(query.desc, query.n, imgs[i].desc, imgs[i].n, DIM, &mo, &lists[i],
                            &err) == SF_OK,
              "%s", err.message);
        counts[i] = (ref){ (double)lists[i].count, i };
    }
    qsort(counts, N_LOCAL, sizeof *counts, ref_order);
    CHECK(counts[0].score >= 3 && ties_in(counts, N_LOCAL) >= 2, "the data has ties");
    sf_search_result r;
    sf_search_result_init(&r);
    const size_t mins[] = { 1, 2, 3 }, ks[] = { 0, 1, 4 };
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 3; b++) {
            sf_search_options o = *base;
            o.min_matches = mins[a];
            o.top_k = ks[b];
            size_t n = 0;
            while (n < N_LOCAL && counts[n].score >= (double)mins[a] && counts[n].score > 0)
                n++;
            if (ks[b] && ks[b] < n)
                n = ks[b];
            sf_status st = sf_search_pairwise(db, as_stream(&query, 1, 1, 0), &o, &r, &err);
            CHECK(st == SF_OK, "%s", err.message);
            CHECK(hits_are(&r.hits, counts, n), "pairwise, at least %zu matches, top %zu",
                  mins[a], ks[b]);
            for (size_t i = 0; i < r.hits.count && i < n; i++)
                CHECK(same_list(&r.pairs[i], &lists[counts[i].id]), "the matches of hit %zu",
                      i);
        }
    /* The records of the first hit's matches. */
    sf_record pr, sr;
    int32_t *pairs;
    float *sim;
    CHECK(sf_search_result_pair_records(&r, 0, "query", &pr, &sr, &pairs, &sim, &err) == SF_OK,
          "%s", err.message);
    const sf_match_list *l = &r.pairs[0];
    CHECK(sf_record_validate(&pr, &err) == SF_OK && sf_record_validate(&sr, &err) == SF_OK,
          "%s", err.message);
    CHECK(pr.kind == SF_KIND_MATCH_PAIRS && pr.shape[0] == l->count && pr.shape[1] == 2 &&
              pairs[1] == (int32_t)l->b[0] && sr.kind == SF_KIND_MATCH_SIMILARITY &&
              sr.shape[0] == l->count && sim[0] == l->similarity[0],
          "pair records");
    free(pairs);
    free(sim);
    CHECK(sf_search_result_pair_records(&r, r.hits.count, "query", &pr, &sr, &pairs, &sim,
                                        &err) == SF_ERR_INVALID_ARGUMENT,
          "no such hit");
    for (size_t i = 0; i < N_LOCAL; i++)
        sf_match_list_release(&lists[i]);
    sf_search_result_release(&r);
    sf_search_db_free(db);
}

static void check_pairwise(void)
{
    sf_search_options o;
    sf_search_options_default(&o);
    check_pairwise_with(&o);
    o.match.same_index = 1;
    check_pairwise_with(&o);

    /* With templates every image needs its local_index. */
    sf_error err;
    sf_search_db *db;
    CHECK(sf_search_db_create(SF_SEARCH_PAIRWISE, &o, &db, &err) == SF_OK, "%s", err.message);
    CHECK(sf_search_db_add(db, as_stream(&imgs[2], 1, 0, 0), &err) == SF_ERR_INVALID_DATA &&
              strcmp(err.message, "img002: --same-template needs a local_index record") == 0,
          "a database image without templates: %s", err.message);
    CHECK(sf_search_db_add(db, as_stream(&imgs[2], 1, 1, 0), &err) == SF_OK, "%s",
          err.message);
    sf_search_result r;
    sf_search_result_init(&r);
    CHECK(sf_search_pairwise(db, as_stream(&query, 1, 0, 0), &o, &r, &err) ==
                  SF_ERR_INVALID_DATA &&
              strcmp(err.message, "query: --same-template needs a local_index record") == 0,
          "a query without templates: %s", err.message);
    CHECK(sf_search_pairwise(db, as_stream(&query, 0, 0, 1), &o, &r, &err) ==
                  SF_ERR_INVALID_DATA &&
              strcmp(err.message, "query: no local_desc record (the output of sf-lit)") == 0,
          "a query without local_desc: %s", err.message);
    CHECK(sf_search_global(db, as_stream(&query, 0, 0, 1), &o, &r, &err) ==
              SF_ERR_INVALID_ARGUMENT,
          "global search of a pairwise database");
    sf_search_result_release(&r);
    sf_search_db_free(db);
}

/* Re-ranking and index search against the index's own scores.  The index
 * holds the even images only. */
static void check_rerank(const char *dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/rerank.six", dir);
    unlink(path);
    float centroids[K_WORDS * DIM];
    for (size_t i = 0; i < K_WORDS * DIM; i++)
        centroids[i] = tu_rnd_normal(&rng);
    sf_error err;
    sf_asmk_codebook *acb;
    CHECK(sf_asmk_codebook_create(centroids, K_WORDS, DIM, &acb, &err) == SF_OK, "%s",
          err.message);
    sf_index_params params;
    sf_index_params_default(&params);
    sf_index_codebook_id id = { K_WORDS, DIM, 42 };
    sf_index_writer *w;
    CHECK(sf_index_create(path, &params, &id, NULL, &err) == SF_OK &&
              sf_index_writer_open(path, &id, NULL, &w, &err) == SF_OK,
          "%s", err.message);
    for (size_t i = 0; i < N_LOCAL; i += 2)
        CHECK(sf_index_writer_add_descriptors(w, acb, imgs[i].key, imgs[i].desc, imgs[i].n,
                                              NULL, &err) == SF_OK,
              "%s", err.message);
    CHECK(sf_index_writer_commit(w, &err) == SF_OK, "%s", err.message);
    sf_index_writer_free(w);
    sf_index *idx;
    sf_index_searcher *s;
    CHECK(sf_index_open(path, &idx, &err) == SF_OK &&
              sf_index_searcher_create((const sf_index *const *)&idx, 1, NULL, &s, &err) ==
                  SF_OK,
          "%s", err.message);

    sf_search_options o;
    sf_search_options_default(&o);
    o.searcher = s;
    o.codebook = acb;
    o.ma = 3;
    o.binary = params.asmk.binary;
    sf_asmk_agg agg;
    double all[N_LOCAL];
    CHECK(sf_asmk_quantize_aggregate(acb, query.desc, query.n, o.ma, o.binary, &agg, &err) ==
                  SF_OK &&
              sf_index_searcher_scores(s, &agg, all, &err) == SF_OK,
          "%s", err.message);
    sf_asmk_agg_release(&agg);

    /* The global ranking of the database, then its first 11 by ASMK. */
    sf_search_db *db = make_db(SF_SEARCH_GLOBAL, NULL, N_LOCAL);
    ref cand[N_LOCAL];
    global_ranking(cand, N_LOCAL);
    o.rerank = 11;
    ref want[N_LOCAL];
    size_t n = 0;
    for (size_t i = 0; i < o.rerank; i++) {
        size_t gid;
        const char *k = imgs[cand[i].id].key;
        if (sf_index_searcher_find(s, k, strlen(k), &gid, &err) == SF_OK)
            want[n++] = (ref){ all[gid], cand[i].id };
    }
    qsort(want, n, sizeof *want, ref_order);
    CHECK(n > 0 && n < o.rerank, "some candidates are not in the index");
    sf_search_result r;
    sf_search_result_init(&r);
    const size_t ks[] = { 0, 3 };
    for (size_t t = 0; t < 2; t++) {
        o.top_k = ks[t];
        CHECK(sf_search_global(db, as_stream(&query, 1, 0, 1), &o, &r, &err) == SF_OK, "%s",
              err.message);
        CHECK(hits_are(&r.hits, want, ks[t] && ks[t] < n ? ks[t] : n), "re-ranked, top %zu",
              ks[t]);
        CHECK(r.candidates == o.rerank && r.not_indexed == o.rerank - n,
              "%zu candidates, %zu not indexed", r.candidates, r.not_indexed);
    }
    CHECK(sf_search_global(db, as_stream(&query, 0, 0, 1), &o, &r, &err) ==
                  SF_ERR_INVALID_DATA &&
              strcmp(err.message, "query: no local_desc record to re-rank with") == 0,
          "nothing to re-rank with: %s", err.message);

    /* Index search: every indexed image, by ASMK score then id. */
    n = 0;
    for (size_t i = 0; i < N_LOCAL; i += 2)
        want[n++] = (ref){ all[i / 2], i };
    qsort(want, n, sizeof *want, ref_order);
    for (size_t t = 0; t < 2; t++) {
        o.top_k = ks[t];
        CHECK(sf_search_index(as_stream(&query, 1, 0, 0), &o, &r, &err) == SF_OK, "%s",
              err.message);
        CHECK(hits_are(&r.hits, want, ks[t] ? ks[t] : n), "index search, top %zu", ks[t]);
    }
    image wide = query;
    sf_stream_image *bad = (sf_stream_image *)as_stream(&wide, 1, 0, 0);
    wide.recs[0].shape[0] = 1;
    wide.recs[0].shape[1] = DIM + 1;
    CHECK(sf_search_index(bad, &o, &r, &err) == SF_ERR_INVALID_DATA &&
              strcmp(err.message, "query: local_desc is not one K x 8 float32 array (made for "
                                  "another codebook?)") == 0,
          "a query of another dimension: %s", err.message);

    sf_search_result_release(&r);
    sf_search_db_free(db);
    sf_index_searcher_free(s);
    sf_index_close(idx);
    sf_asmk_codebook_free(acb);
}

int main(void)
{
    const char *base = getenv("top_builddir");
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/tests/tmp", base ? base : ".");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return 99;
    strcat(dir, "/test_search");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return 99;
    make_images();
    check_global();
    check_pairwise();
    check_rerank(dir);
    return tu_finish("test_search");
}
