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

/* An unordered pair of different images, strcmp(a, b) < 0; and the same
 * pair as first met: the query, its hit and the hit's score there. */
typedef struct sf_hit_pair {
    const char *a, *b;
    const char *query, *hit;
    double score;
} sf_hit_pair;

/* Each pair of a query and one of its hits, other than itself, once, in
 * the order first met (queries in order, each list in order): the image
 * pairs that 3-D reconstruction tools take.  The keys point into the set
 * and stay valid until it changes; the caller frees *pairs. */
sf_status sf_hit_set_pairs(const sf_hit_set *set, sf_hit_pair **pairs, size_t *n_pairs,
                           sf_error *err);

/* ---- Groups of images ---- */

/* The images of a hit set (its queries, then the other hits, in the order
 * first met) and, for each unordered pair of different images found
 * together, its scores both ways.  Owns copies of the keys. */
typedef struct sf_hit_graph sf_hit_graph;

typedef struct sf_hit_edge {
    size_t a, b;   /* images, a < b */
    double ab, ba; /* the best score of b in a's list, of a in b's; NaN when
                      absent (or when every score there is NaN) */
} sf_hit_edge;

sf_status sf_hit_graph_create(const sf_hit_set *set, sf_hit_graph **out, sf_error *err);
void sf_hit_graph_free(sf_hit_graph *graph);
size_t sf_hit_graph_count(const sf_hit_graph *graph);
/* The key of image i, owned by the graph, or NULL when i is out of range. */
const char *sf_hit_graph_key(const sf_hit_graph *graph, size_t i);
/* Whether image i was a query (its own list was read), so that a score
 * missing from its list means it did not find the other. */
int sf_hit_graph_is_query(const sf_hit_graph *graph, size_t i);
size_t sf_hit_graph_n_edges(const sf_hit_graph *graph);
const sf_hit_edge *sf_hit_graph_edges(const sf_hit_graph *graph);

/* How the two scores of a pair join images.  EITHER: the higher one
 * counts (one image found the other).  MUTUAL: the lower one, and a pair
 * counts only if each image is in the other's list (both found each other;
 * a pair with an image that was no query never is). */
typedef enum sf_group_rule { SF_GROUP_EITHER = 0, SF_GROUP_MUTUAL = 1 } sf_group_rule;

/* The score of a pair under rule: NaN when it has none. */
double sf_hit_edge_score(const sf_hit_edge *edge, sf_group_rule rule);

/* The connected components of the images joined by the pairs whose score
 * under rule is at least threshold: group[i] (an array of
 * sf_hit_graph_count entries) gets image i's component, numbered from 0
 * in the order of their first image; *n_groups their number.  An image
 * joined to none is a component of its own. */
sf_status sf_hit_graph_group(const sf_hit_graph *graph, double threshold, sf_group_rule rule,
                             size_t *group, size_t *n_groups, sf_error *err);

/* ---- Text for other tools ---- */

/* s (NUL-terminated) as one field of RFC 4180 CSV: as it is, or between
 * double quotes, with each quote doubled, when it holds a comma, a quote,
 * CR or LF (or is empty).  Bytes are not checked for an encoding.  The
 * caller frees *out. */
sf_status sf_text_csv_field(const char *s, char **out, sf_error *err);

/* s as a JSON string (RFC 8259), quotes included: ", \ and control
 * characters escaped (\n, \t, ... or \u00XX), the rest as it is.  A JSON
 * string holds Unicode text, so s must be valid UTF-8 (no overlong forms,
 * surrogates or code points past U+10FFFF): otherwise SF_ERR_INVALID_DATA
 * saying at which byte, and nothing is made.  The caller frees *out. */
sf_status sf_text_json_string(const char *s, char **out, sf_error *err);

/* s made fit for a one-line message, in buf (size bytes, NUL-terminated,
 * cut short with "..." when it does not fit): control characters and
 * backslash as \n, \t, \\ ..., bytes that are not UTF-8 as \xHH.
 * Returns buf. */
const char *sf_text_printable(const char *s, char *buf, size_t size);

/* The files of image-pair lists that 3-D reconstruction tools read. */
typedef enum sf_pairs_format {
    SF_PAIRS_COLMAP = 0,  /* COLMAP image_pairs.txt: `name1 name2`, split at
                             spaces, names trimmed, lines from # skipped */
    SF_PAIRS_HLOC = 1,    /* hloc pairs-*.txt: `name0 name1`, split at any
                             Unicode white space by Python's str.split() */
    SF_PAIRS_KAPTURE = 2  /* kapture pairsfile: `query, map, score`, split at
                             commas, fields stripped, lines from # skipped */
} sf_pairs_format;

/* The name of image key in a pairs file of format, written as its field
 * (0 or 1) of a line: key relative to the folder root, or key itself when
 * root is NULL.  A leading "./" of key and root is left out; key must then
 * start with root and a slash (the slashes after it dropped).  *name
 * points into key.  SF_ERR_INVALID_DATA, with the reason, when the name
 * cannot be written so that the tool reads it back: it is not under root,
 * is absolute, leaves it through "..", or holds what the format's grammar
 * splits or trims at (white space; for kapture a comma or white space at
 * either end, for hloc and kapture bytes that are not UTF-8, for the first
 * field of COLMAP and kapture a leading #). */
sf_status sf_pairs_name(sf_pairs_format format, const char *key, const char *root, int field,
                        const char **name, sf_error *err);

#ifdef __cplusplus
}
#endif
#endif
