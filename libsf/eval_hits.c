/* Evaluating hit lists: their keys matched by name to an answer key, and
 * the numbers of a report. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "sf_eval.h"
#include "strtab_internal.h"

sf_status sf_eval_report_compute(const sf_gnd *gnd, const uint32_t *ranks, size_t n_ranked,
                                 const int *ks, size_t n_ks, sf_eval_report *out,
                                 sf_error *err)
{
    memset(out, 0, sizeof *out);
    if (n_ks > SF_EVAL_MAX_RECALL)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "recall at %zu ranks: at most %d",
                            n_ks, SF_EVAL_MAX_RECALL);
    out->aps = malloc(SF_EVAL_N_PROTOCOLS * (gnd->n_queries ? gnd->n_queries : 1) *
                      sizeof *out->aps);
    if (!out->aps)
        return sf_error_set(err, SF_ERR_NOMEM, "evaluation: out of memory for %zu queries",
                            gnd->n_queries);
    sf_status st =
        sf_eval_revisited_compute(gnd, ranks, n_ranked, &out->summary, out->aps, NULL, err);
    for (int p = 0; p < SF_EVAL_N_PROTOCOLS && st == SF_OK; p++)
        st = sf_eval_revisited_recall(gnd, (sf_eval_protocol)p, ranks, n_ranked, ks, n_ks,
                                      out->recall[p], NULL, err);
    if (st != SF_OK)
        sf_eval_report_release(out);
    return st;
}

void sf_eval_report_release(sf_eval_report *report)
{
    if (!report)
        return;
    free(report->aps);
    report->aps = NULL;
}

/* ---- Names ---- */

struct sf_eval_names {
    const char *const *names;
    sf_strtab table;
};

sf_status sf_eval_names_create(const char *const *names, size_t n, sf_eval_names **out,
                               sf_error *err)
{
    sf_eval_names *t = calloc(1, sizeof *t);
    if (t && sf_strtab_build(&t->table, names, n) != 0) {
        free(t);
        t = NULL;
    }
    *out = t;
    if (!t)
        return sf_error_set(err, SF_ERR_NOMEM, "evaluation: out of memory for %zu names", n);
    t->names = names;
    return SF_OK;
}

void sf_eval_names_free(sf_eval_names *names)
{
    if (!names)
        return;
    sf_strtab_release(&names->table);
    free(names);
}

long sf_eval_names_find(const sf_eval_names *t, const char *key)
{
    size_t len = strlen(key);
    long i = sf_strtab_find(&t->table, t->names, key, len);
    if (i >= 0)
        return i;
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    size_t blen = len - (size_t)(base - key);
    if (base != key && (i = sf_strtab_find(&t->table, t->names, base, blen)) >= 0)
        return i;
    const char *dot = strrchr(base, '.');
    if (dot && dot > base)
        return sf_strtab_find(&t->table, t->names, base, (size_t)(dot - base));
    return -1;
}

/* ---- Rows of database ids ---- */

static sf_eval_hits *hits_alloc(size_t rows, size_t width)
{
    sf_eval_hits *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->width = width;
    e->ranks = malloc((rows ? rows : 1) * width * sizeof *e->ranks);
    e->row_names = malloc((rows ? rows : 1) * sizeof *e->row_names);
    e->no_hits = calloc(rows ? rows : 1, 1);
    if (!e->ranks || !e->row_names || !e->no_hits) {
        sf_eval_hits_free(e);
        return NULL;
    }
    return e;
}

void sf_eval_hits_free(sf_eval_hits *e)
{
    if (!e)
        return;
    free(e->ranks);
    free(e->row_names);
    free(e->no_hits);
    sf_gnd_free(e->made);
    free(e);
}

/* The ids of the hits (NULL: none) by name, then SF_EVAL_NO_ID up to width. */
static void fill_row(const sf_eval_names *db, const sf_hit_list *hits, uint32_t *row,
                     size_t width)
{
    size_t j = 0;
    for (; hits && j < hits->count; j++) {
        long id = sf_eval_names_find(db, hits->keys[j]);
        row[j] = id >= 0 ? (uint32_t)id : SF_EVAL_NO_ID;
    }
    for (; j < width; j++)
        row[j] = SF_EVAL_NO_ID;
}

static void note_unknown(sf_eval_hits *e, const char *key)
{
    if (!e->n_unknown++)
        e->first_unknown = key;
}

sf_status sf_eval_hits_groups(const sf_hit_set *hits, const sf_groups *groups,
                              const char *groups_file, sf_eval_hits **out, sf_error *err)
{
    *out = NULL;
    const size_t n_files = sf_groups_count(groups), n = sf_hit_set_count(hits);
    size_t width = 1, rows = 0;
    for (size_t i = 0; i < n; i++)
        if (sf_hit_set_hits(hits, i)->count > width)
            width = sf_hit_set_hits(hits, i)->count;
    const char **files = malloc((n_files ? n_files : 1) * sizeof *files);
    uint32_t *qids = malloc((n ? n : 1) * sizeof *qids);
    sf_eval_hits *e = hits_alloc(n, width);
    sf_eval_names *db = NULL;
    sf_status st = SF_ERR_NOMEM;
    if (files && qids && e) {
        for (size_t i = 0; i < n_files; i++)
            files[i] = sf_groups_file(groups, i);
        st = sf_eval_names_create(files, n_files, &db, err);
    } else {
        sf_error_set(err, st, "%s: out of memory for %zu queries", groups_file, n);
    }
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        const char *key = sf_hit_set_key(hits, i);
        long f = sf_eval_names_find(db, key);
        if (f < 0) {
            note_unknown(e, key);
            continue;
        }
        qids[rows] = (uint32_t)f;
        e->row_names[rows] = key;
        fill_row(db, sf_hit_set_hits(hits, i), e->ranks + rows * width, width);
        rows++;
    }
    /* Nothing to evaluate: most likely the keys and the answer key name
     * different things. */
    if (st == SF_OK && rows == 0 && n > 0)
        st = sf_error_set(err, SF_ERR_NOT_FOUND, "no query is in %s (the first is %s)",
                          groups_file, e->first_unknown);
    if (st == SF_OK && (st = sf_gnd_from_groups(groups, qids, rows, &e->made, err)) == SF_OK)
        e->gnd = e->made;
    sf_eval_names_free(db);
    free(files);
    free(qids);
    if (st != SF_OK)
        sf_eval_hits_free(e);
    else
        *out = e;
    return st;
}

/* The first id of gnd past the database, reported; SF_OK when none. */
static sf_status check_ids(const sf_gnd *gnd, const char *gnd_file, const sf_eval_list *db,
                           sf_error *err)
{
    for (size_t q = 0; q < gnd->n_queries; q++) {
        const sf_gnd_query *g = &gnd->queries[q];
        const uint32_t *sets[3] = { g->easy, g->hard, g->junk };
        const size_t ns[3] = { g->n_easy, g->n_hard, g->n_junk };
        for (int s = 0; s < 3; s++)
            for (size_t i = 0; i < ns[s]; i++)
                if (sets[s][i] >= db->count)
                    return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                        "%s: query %zu lists image %lu; %s has %zu", gnd_file,
                                        q, (unsigned long)sets[s][i], db->file, db->count);
    }
    return SF_OK;
}

sf_status sf_eval_hits_gnd(const sf_hit_set *hits, const sf_gnd *gnd, const char *gnd_file,
                           const sf_eval_list *db, const sf_eval_list *queries,
                           sf_eval_hits **out, sf_error *err)
{
    *out = NULL;
    const size_t n_q = queries->count, n = sf_hit_set_count(hits);
    if (n_q != gnd->n_queries)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s names %zu queries, %s has %zu",
                            queries->file, n_q, gnd_file, gnd->n_queries);
    sf_status st = check_ids(gnd, gnd_file, db, err);
    if (st != SF_OK)
        return st;
    sf_eval_names *db_names = NULL, *q_names = NULL;
    const sf_hit_list **of_query = calloc(n_q ? n_q : 1, sizeof *of_query);
    sf_eval_hits *e = NULL;
    if (!of_query)
        st = sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", gnd_file);
    if (st == SF_OK)
        st = sf_eval_names_create(db->names, db->count, &db_names, err);
    if (st == SF_OK)
        st = sf_eval_names_create(queries->names, n_q, &q_names, err);
    const char *first_unknown = NULL;
    size_t n_unknown = 0, width = 1;
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        long q = sf_eval_names_find(q_names, sf_hit_set_key(hits, i));
        if (q >= 0)
            of_query[q] = sf_hit_set_hits(hits, i);
        else if (!n_unknown++)
            first_unknown = sf_hit_set_key(hits, i);
    }
    for (size_t q = 0; q < n_q && st == SF_OK; q++)
        if (of_query[q] && of_query[q]->count > width)
            width = of_query[q]->count;
    if (st == SF_OK && !(e = hits_alloc(n_q, width)))
        st = sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", gnd_file);
    for (size_t q = 0; q < n_q && st == SF_OK; q++) {
        fill_row(db_names, of_query[q], e->ranks + q * width, width);
        e->row_names[q] = queries->names[q];
        e->no_hits[q] = !of_query[q];
    }
    if (st == SF_OK) {
        e->gnd = gnd;
        e->n_unknown = n_unknown;
        e->first_unknown = first_unknown;
        *out = e;
    }
    sf_eval_names_free(db_names);
    sf_eval_names_free(q_names);
    free(of_query);
    return st;
}
