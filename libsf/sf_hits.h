/* Search results: the database images found for one query, with their
 * scores.  sf-match writes them as two records (hit_keys, hit_scores) per
 * query; sf-rank reads them back, merges the lists that shards searched on
 * different machines produced for the same query, and ranks them.
 *
 * Keys are NUL-terminated in memory (a stream key never holds a NUL). */
#ifndef SF_HITS_H
#define SF_HITS_H

#include <stddef.h>
#include <stdint.h>

#include "sf_status.h"
#include "sf_stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_hit_list {
    size_t count, cap;
    char **keys;     /* count owned keys */
    double *scores;  /* count scores; higher is better, NaN worst */
} sf_hit_list;

/* An empty list; release it with sf_hit_list_release. */
void sf_hit_list_init(sf_hit_list *list);
void sf_hit_list_release(sf_hit_list *list);
void sf_hit_list_clear(sf_hit_list *list);

/* Append a copy of key (key_len bytes, 1..SF_STREAM_MAX_KEY, no NUL). */
sf_status sf_hit_list_append(sf_hit_list *list, const char *key, size_t key_len, double score,
                             sf_error *err);

/* Append the hits of a pair of records read from a stream: keys is a
 * hit_keys record (u8, one dimension: every key followed by a NUL) and
 * scores a hit_scores record (f64, one dimension) with as many entries.
 * Anything else is SF_ERR_FORMAT naming the record's key. */
sf_status sf_hit_list_append_records(sf_hit_list *list, const sf_record *keys,
                                     const sf_record *scores, sf_error *err);

/* The two records of list for query_key, index 0, flags 0.  Their payloads
 * point into *keys_blob and *scores_copy, which the caller frees. */
sf_status sf_hit_list_to_records(const sf_hit_list *list, const char *query_key,
                                 sf_record *keys, sf_record *scores, char **keys_blob,
                                 double **scores_copy, sf_error *err);

/* Rank the list in place: by descending score, NaN last, equal scores in
 * their present order (so lists appended shard after shard break ties by
 * shard, then by position).  A key listed more than once keeps its best
 * place only.  exclude (may be NULL) drops that key, the query itself.
 * Then only the first top_k are kept (0: all). */
sf_status sf_hit_list_rank(sf_hit_list *list, const char *exclude, size_t top_k, sf_error *err);

/* ---- The queries of one or more hit streams ---- */

/* Each query's key and its hit list, the lists of every input joined, in
 * the order the queries were first met.  Owns its keys and lists. */
typedef struct sf_hit_set sf_hit_set;

sf_status sf_hit_set_create(sf_hit_set **out, sf_error *err);
void sf_hit_set_free(sf_hit_set *set);

/* Append the hits of a pair of records (as sf_hit_list_append_records;
 * its messages name query_key) to query_key's list.  The query joins the
 * set even when its records are refused: it was met, and its list keeps
 * what it had before them. */
sf_status sf_hit_set_add_records(sf_hit_set *set, const char *query_key, const sf_record *keys,
                                 const sf_record *scores, sf_error *err);

/* Rank every list (sf_hit_list_rank), leaving each query out of its own
 * results when exclude_self is set. */
sf_status sf_hit_set_rank(sf_hit_set *set, int exclude_self, size_t top_k, sf_error *err);

/* The queries, 0 .. count - 1 in the order first met: the key and list of
 * query i, owned by the set, or NULL when i is out of range. */
size_t sf_hit_set_count(const sf_hit_set *set);
const char *sf_hit_set_key(const sf_hit_set *set, size_t i);
const sf_hit_list *sf_hit_set_hits(const sf_hit_set *set, size_t i);
/* The index of the query with this key, or -1. */
long sf_hit_set_find(const sf_hit_set *set, const char *key);

/* An unordered pair of different images, strcmp(a, b) < 0. */
typedef struct sf_hit_pair {
    const char *a, *b;
} sf_hit_pair;

/* Each pair of a query and one of its hits, other than itself, once, in
 * the order first met (queries in order, each list in order): the image
 * pairs that 3-D reconstruction tools take.  The keys point into the set
 * and stay valid until it changes; the caller frees *pairs. */
sf_status sf_hit_set_pairs(const sf_hit_set *set, sf_hit_pair **pairs, size_t *n_pairs,
                           sf_error *err);

#ifdef __cplusplus
}
#endif
#endif
