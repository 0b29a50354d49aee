/* Retrieval evaluation: the revisited Oxford/Paris protocol (spec section
 * 8: AP with the trapezoid rule, mP@k, Easy/Medium/Hard) and recall@k for
 * a `file<TAB>group` answer key; the hit lists of sf-match matched by name
 * to an answer key.  Rankings are query-major: row q lists database ids
 * for query q, best first. */
#ifndef SF_EVAL_H
#define SF_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "sf_hits.h"
#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- One ranking ---- */

/* AP and precision at each ks[i] of one ranking of n_ranked database ids.
 * Ids in ignored are removed from the ranking first; an id in both lists
 * counts as a positive and shifts only the positives after it (as the
 * reference does).  AP: for the j-th positive (0-based) at 0-based rank r,
 * ((r ? j/r : 1) + (j+1)/(r+1)) / (2 n_pos), n_pos = distinct positives,
 * ranked or not.  P@k: the fraction of positives among the first
 * min(k, position of the last ranked positive, 1-based) results.  With no
 * positive ranked, AP and P@k are 0; with no positives at all they are NaN.
 * pk may be NULL when n_ks is 0. */
sf_status sf_eval_ranking(const uint32_t *ranking, size_t n_ranked, const uint32_t *positives,
                          size_t n_positives, const uint32_t *ignored, size_t n_ignored,
                          const int *ks, size_t n_ks, double *ap, double *pk, sf_error *err);

/* ---- Revisited Oxford / Paris ---- */

typedef enum sf_eval_protocol {
    SF_EVAL_EASY = 0,   /* positives easy, ignored junk + hard */
    SF_EVAL_MEDIUM = 1, /* positives easy + hard, ignored junk */
    SF_EVAL_HARD = 2    /* positives hard, ignored junk + easy */
} sf_eval_protocol;
#define SF_EVAL_N_PROTOCOLS 3
/* mP@k is reported for k = 1, 5, 10, as in the official evaluation. */
#define SF_EVAL_N_KAPPAS 3
extern const int sf_eval_kappas[SF_EVAL_N_KAPPAS];

typedef struct sf_gnd_query {
    uint32_t *easy, *hard, *junk; /* database ids */
    size_t n_easy, n_hard, n_junk;
    int has_bbx;                  /* bbx holds the query box x1, y1, x2, y2 */
    double bbx[4];
} sf_gnd_query;

/* Ground truth: one entry per query, owned by the handle. */
typedef struct sf_gnd {
    size_t n_queries;
    sf_gnd_query *queries;
} sf_gnd;

/* A YAML list with one mapping per query: `easy`, `hard` and `junk`, each
 * a list of database ids (required; `[]` or null when empty), and an
 * optional `bbx` of four numbers.  Errors give the name, line and reason. */
sf_status sf_gnd_load_yaml(const char *path, sf_gnd **out, sf_error *err);
/* The same from memory; name is used in messages. */
sf_status sf_gnd_parse_yaml(const void *data, size_t size, const char *name, sf_gnd **out,
                            sf_error *err);
void sf_gnd_free(sf_gnd *gnd);

typedef struct sf_eval_revisited {
    double map[SF_EVAL_N_PROTOCOLS];                   /* NaN when no query has positives */
    double mpk[SF_EVAL_N_PROTOCOLS][SF_EVAL_N_KAPPAS];
    size_t n_scored[SF_EVAL_N_PROTOCOLS];              /* queries with positives */
} sf_eval_revisited;

/* Evaluate ranks (gnd->n_queries x n_ranked, query-major).  aps
 * (3 x n_queries, protocol-major) and pks (3 x n_queries x 3) are
 * optional per-query outputs; queries without positives get NaN there and
 * are left out of the means. */
sf_status sf_eval_revisited_compute(const sf_gnd *gnd, const uint32_t *ranks, size_t n_ranked,
                                    sf_eval_revisited *out, double *aps, double *pks,
                                    sf_error *err);

/* Recall@k of ranks (gnd->n_queries x n_ranked) under one protocol:
 * recall[i] is the fraction of the queries with positives whose first
 * positive, once the protocol's ignored ids are removed, is among the
 * first ks[i] results (NaN when no query has positives).  Rankings may
 * hold ids of no database image (SF_EVAL_NO_ID, e.g. padding after a
 * short result list): they are results that are never positive. */
#define SF_EVAL_NO_ID UINT32_MAX
sf_status sf_eval_revisited_recall(const sf_gnd *gnd, sf_eval_protocol protocol,
                                   const uint32_t *ranks, size_t n_ranked, const int *ks,
                                   size_t n_ks, double *recall, size_t *n_counted,
                                   sf_error *err);

/* ---- Groups: `file<TAB>group` answer keys ---- */

typedef struct sf_groups sf_groups;

/* One `file<TAB>group` per line; empty lines and lines starting with '#'
 * are skipped, a trailing CR is dropped.  A group named `single_*` has no
 * partner.  Files must be unique. */
sf_status sf_groups_load_tsv(const char *path, sf_groups **out, sf_error *err);
sf_status sf_groups_parse_tsv(const void *data, size_t size, const char *name, sf_groups **out,
                              sf_error *err);
void sf_groups_free(sf_groups *groups);
size_t sf_groups_count(const sf_groups *groups);
const char *sf_groups_file(const sf_groups *groups, size_t i);
const char *sf_groups_group(const sf_groups *groups, size_t i);
/* Index of file (exact match), or -1. */
long sf_groups_find(const sf_groups *groups, const char *file);

/* The groups as a revisited ground truth, the files being both the
 * database (id = line order) and the queries: query r is file
 * query_ids[r] (query_ids NULL: n_queries must be the number of files and
 * query r is file r).  Its positives (easy) are the other files of its
 * group and the file itself is junk (never a result of itself); a file in
 * a `single_*` group or alone in its group has no positives.  Under the
 * Medium and Easy protocols this is plain AP over the group. */
sf_status sf_gnd_from_groups(const sf_groups *groups, const uint32_t *query_ids,
                             size_t n_queries, sf_gnd **out, sf_error *err);

/* Recall@k over the files as both database (index = line order) and
 * queries.  Row r of ranks (n_rows x n_ranked) ranks the database for
 * query file query_ids[r] (query_ids NULL: row r is file r).  The query
 * is removed from its own ranking; its positives are the other files of
 * its group.  Queries in a `single_*` group, or alone in theirs, are left
 * out.  recall[i] is the fraction of counted queries with a positive in
 * the first ks[i] results (NaN when none is counted); *n_counted may be
 * NULL. */
sf_status sf_eval_recall(const sf_groups *groups, const uint32_t *ranks, size_t n_rows,
                         size_t n_ranked, const uint32_t *query_ids, const int *ks, size_t n_ks,
                         double *recall, size_t *n_counted, sf_error *err);

/* ---- Reports ---- */

#define SF_EVAL_MAX_RECALL 16

/* What a report of rankings shows. */
typedef struct sf_eval_report {
    sf_eval_revisited summary;
    double *aps; /* owned: AP of query q under protocol p at aps[p * n_queries + q] */
    double recall[SF_EVAL_N_PROTOCOLS][SF_EVAL_MAX_RECALL]; /* [p][i]: at the i-th k */
} sf_eval_report;

/* The summary (sf_eval_revisited_compute), every query's AP, and recall at
 * each of the n_ks (at most SF_EVAL_MAX_RECALL) ranks ks under each
 * protocol (sf_eval_revisited_recall), of ranks (gnd->n_queries x
 * n_ranked).  Release *out with sf_eval_report_release. */
sf_status sf_eval_report_compute(const sf_gnd *gnd, const uint32_t *ranks, size_t n_ranked,
                                 const int *ks, size_t n_ks, sf_eval_report *out,
                                 sf_error *err);
void sf_eval_report_release(sf_eval_report *report);

/* ---- Hit lists (sf_hits.h) against an answer key ---- */

/* Keys name the entries of an answer key by path or by file name: a key
 * names names[i] if it equals it, else if its last path component does,
 * else if that without its extension does; so `photos/graf1.png` names
 * `graf1.png` and `jpg/all_souls_000013.jpg` `all_souls_000013`.  Of
 * equal names, the first. */
typedef struct sf_eval_names sf_eval_names;

/* names is borrowed: it must outlive the table. */
sf_status sf_eval_names_create(const char *const *names, size_t n, sf_eval_names **out,
                               sf_error *err);
void sf_eval_names_free(sf_eval_names *names);
/* The index of the name that key names, or -1. */
long sf_eval_names_find(const sf_eval_names *names, const char *key);

/* The lines of a list file (line i names id i), and the file, for messages. */
typedef struct sf_eval_list {
    const char *const *names;
    size_t count;
    const char *file;
} sf_eval_list;

/* The ranked lists of a hit set as rows of database ids, with the ground
 * truth of the rows.  Names are borrowed from the set and the lists. */
typedef struct sf_eval_hits {
    const sf_gnd *gnd;         /* row r is query r of gnd */
    uint32_t *ranks;           /* gnd->n_queries x width: each hit's id by name,
                                  SF_EVAL_NO_ID where the database has no such
                                  name, and as padding */
    size_t width;
    const char **row_names;    /* row r's query: its key in the set (groups) or
                                  its line in the query list (gnd) */
    unsigned char *no_hits;    /* 1: the set has no list for row r (AP 0) */
    size_t n_unknown;          /* queries of the set the key does not name: left out */
    const char *first_unknown; /* the first of them; NULL when none */
    sf_gnd *made;              /* the ground truth made from groups, owned */
} sf_eval_hits;

/* With groups as both the database and the queries: a row for each query
 * of the set that groups names, in the set's order; it is ignored in its
 * own ranking.  SF_ERR_NOT_FOUND when the set has queries and groups names
 * none of them.  groups_file names groups in messages. */
sf_status sf_eval_hits_groups(const sf_hit_set *hits, const sf_groups *groups,
                              const char *groups_file, sf_eval_hits **out, sf_error *err);

/* With a revisited ground truth, db naming its database ids and queries
 * its queries: a row for each query of gnd, ranked by the set's list of
 * the last query that names it.  SF_ERR_INVALID_ARGUMENT when the lists
 * do not fit gnd (another number of queries, an id past the database). */
sf_status sf_eval_hits_gnd(const sf_hit_set *hits, const sf_gnd *gnd, const char *gnd_file,
                           const sf_eval_list *db, const sf_eval_list *queries,
                           sf_eval_hits **out, sf_error *err);
void sf_eval_hits_free(sf_eval_hits *e);

/* ---- Groups of images (sf_hit_graph) against an answer key ---- */

/* A grouping of the images of graph (group[i] for image i, as
 * sf_hit_graph_group makes) scored by pairs against the answer key: the
 * images the key names (sf_eval_names) take part, two of them being a true
 * pair when the key puts them in one group other than single_*. */
typedef struct sf_group_eval {
    size_t n_named;           /* images of the graph that the key names */
    size_t n_unknown;         /* images it does not name: left out */
    const char *first_unknown; /* the first of them (borrowed), or NULL */
    size_t n_key_missing;     /* files of the key no image names */
    uint64_t true_pairs;      /* pairs the key puts together */
    uint64_t found_pairs;     /* pairs the grouping puts together */
    uint64_t correct_pairs;   /* both */
    double precision, recall; /* correct / found, correct / true; NaN on 0 / 0 */
} sf_group_eval;

sf_status sf_group_evaluate(const sf_groups *key, const sf_hit_graph *graph,
                            const size_t *group, sf_group_eval *out, sf_error *err);

/* The scores under rule of the pairs of named images the graph holds, true
 * pairs in *same (ascending, *n_same) and the others in *other (ascending,
 * *n_other); pairs without a score under rule are left out and counted in
 * *same_missing (true pairs, including those the graph does not hold at
 * all) and *other_missing.  The caller frees *same and *other. */
sf_status sf_group_scores(const sf_groups *key, const sf_hit_graph *graph, sf_group_rule rule,
                          double **same, size_t *n_same, uint64_t *same_missing,
                          double **other, size_t *n_other, uint64_t *other_missing,
                          sf_error *err);

/* Whether file can be the first field of a `file<TAB>group` line that
 * sf_groups_parse_tsv reads back as it is: SF_ERR_INVALID_DATA, with the
 * reason, when it is empty, holds a tab or a line feed, or starts with #. */
sf_status sf_groups_check_file(const char *file, sf_error *err);

/* The p-quantile (0 <= p <= 1) of n ascending values, interpolating
 * linearly between the two nearest; NaN when n is 0. */
double sf_quantile_sorted(const double *sorted, size_t n, double p);

#ifdef __cplusplus
}
#endif
#endif
