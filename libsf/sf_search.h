/* Searching for the images that match a query image, as sf-match does,
 * with the results as hit lists (sf_hits.h):
 *
 *   - in index shards, with ASMK (sf_search_index);
 *   - in a database of images held in memory, read from a stream: by
 *     super-feature matching (sf_search_pairwise, for a small set), or by
 *     global descriptor, optionally re-ranking the best candidates with
 *     the ASMK scores of an index (sf_search_global).
 *
 * Queries and database images are whole images of a stream, as
 * sf_stream_read_image returns them (their records already checked).
 * Every ranking is by descending score, then database order. */
#ifndef SF_SEARCH_H
#define SF_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "sf_asmk.h"
#include "sf_hits.h"
#include "sf_index.h"
#include "sf_match.h"
#include "sf_status.h"
#include "sf_stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_search_options {
    size_t top_k;            /* hits per query, best first; 0: all (100) */
    /* ASMK: sf_search_index, and re-ranking in sf_search_global when
     * searcher is set. */
    sf_index_searcher *searcher;      /* NULL: no index */
    const sf_asmk_codebook *codebook; /* the index's */
    int ma;                  /* nearest words per query descriptor (5) */
    int binary;              /* the index's kernel (sf_index_params.asmk) */
    size_t rerank;           /* global: candidates re-ranked (100) */
    /* Pairwise.  With match.same_index the templates are the images'
     * local_index records, which every image then needs. */
    sf_match_options match;  /* the templates in it are not used */
    size_t min_matches;      /* fewer matches (or none) is no hit (1) */
} sf_search_options;

void sf_search_options_default(sf_search_options *options);

/* What one query found.  The search functions replace what it held. */
typedef struct sf_search_result {
    sf_hit_list hits;      /* best first */
    sf_match_list *pairs;  /* pairwise: the matches of each hit (hits.count),
                              else NULL */
    size_t candidates;     /* global with re-ranking: candidates ... */
    size_t not_indexed;    /* ... of which the index does not hold this
                              many: left out */
} sf_search_result;

void sf_search_result_init(sf_search_result *result);
void sf_search_result_release(sf_search_result *result);

/* ASMK search of options->searcher's shards: the query's local_desc
 * quantised to its ma nearest words and aggregated.  Equal scores rank by
 * global id.  A query without local_desc, or of another dimension than the
 * codebook, is SF_ERR_INVALID_DATA; errors name the query's key. */
sf_status sf_search_index(const sf_stream_image *query, const sf_search_options *options,
                          sf_search_result *result, sf_error *err);

/* ---- A database in memory ---- */

typedef enum sf_search_kind {
    SF_SEARCH_PAIRWISE = 1, /* holds local_desc (and local_index when present) */
    SF_SEARCH_GLOBAL = 2    /* holds global */
} sf_search_kind;

/* Images in the order added: their ids 0, 1, ... break ties in rankings. */
typedef struct sf_search_db sf_search_db;

/* An empty database.  options (may be NULL: the defaults) says what its
 * images need: a pairwise one with match.same_index refuses images
 * without local_index. */
sf_status sf_search_db_create(sf_search_kind kind, const sf_search_options *options,
                              sf_search_db **out, sf_error *err);
void sf_search_db_free(sf_search_db *db);

/* Copy what the database holds of img.  An image without it, or of
 * another dimension than the first image added, is SF_ERR_INVALID_DATA
 * naming its key, and is left out. */
sf_status sf_search_db_add(sf_search_db *db, const sf_stream_image *img, sf_error *err);
size_t sf_search_db_count(const sf_search_db *db);
const char *sf_search_db_key(const sf_search_db *db, size_t id);

/* Match the query's super-features (local_desc, and local_index with
 * match.same_index) with those of every image of a pairwise database
 * (sf_match_find).  The score is the number of matches; result->pairs
 * holds them.  A query without local_desc, or of another dimension than
 * the database, is SF_ERR_INVALID_DATA; errors name the query's key. */
sf_status sf_search_pairwise(const sf_search_db *db, const sf_stream_image *query,
                             const sf_search_options *options, sf_search_result *result,
                             sf_error *err);
/* The two records of the matches of pairwise hit `hit` for query_key:
 * match_pairs (i32 M x 2: row in the query's local_desc, row in the
 * database image's) and match_similarity (f32 M), both with index hit.
 * Their payloads point into *pairs_data and *similarity_copy, which the
 * caller frees. */
sf_status sf_search_result_pair_records(const sf_search_result *result, size_t hit,
                                        const char *query_key, sf_record *pairs,
                                        sf_record *similarity, int32_t **pairs_data,
                                        float **similarity_copy, sf_error *err);

/* Rank the images of a global database by the dot product of their global
 * descriptors with the query's.  With options->searcher, the best rerank
 * of them are scored again with the index's ASMK scores (the images found
 * in it by key; sf_index_searcher_scores_subset), and only those the index
 * holds are hits.  A query without global, or of another dimension than
 * the database (an empty database has none: no hits), is
 * SF_ERR_INVALID_DATA, as is one without local_desc to re-rank with;
 * errors name the query's key. */
sf_status sf_search_global(const sf_search_db *db, const sf_stream_image *query,
                           const sf_search_options *options, sf_search_result *result,
                           sf_error *err);

/* The same ranking from the global descriptors an index holds
 * (sf_index_global_search; threads as there): equal to sf_search_global's
 * over a stream database holding the index's live images in id order.
 * With options->searcher, which must search this one index, the first
 * options->rerank candidates are re-ranked with its ASMK scores. */
sf_status sf_search_global_index(const sf_index *index, const sf_stream_image *query,
                                 const sf_search_options *options, int threads,
                                 sf_search_result *result, sf_error *err);

#ifdef __cplusplus
}
#endif
#endif
