/* Shared by the search_*.c files: the in-memory database and the ASMK
 * steps that index search and re-ranking both take. */
#ifndef SF_SEARCH_INTERNAL_H
#define SF_SEARCH_INTERNAL_H

#include "sf_internal.h"
#include "sf_search.h"

/* One image of a pairwise database. */
typedef struct sf_search_local {
    float *desc;     /* n x dim local descriptors */
    int32_t *tmpl;   /* n templates, or NULL */
    size_t n;
} sf_search_local;

struct sf_search_db {
    sf_search_kind kind;
    int need_templates;
    size_t count, cap;
    size_t dim;              /* of local_desc rows or of global; 0 while empty */
    char **keys;             /* count owned keys */
    sf_search_local *local;  /* pairwise: count images */
    float *global;           /* global: count x dim, contiguous for the scan */
};

/* The record of img that db compares, local_desc or global, when it has
 * db's dimension; else NULL with err set (tail ends the message about
 * another dimension).  A db of another kind than kind (0: any) is
 * SF_ERR_INVALID_ARGUMENT. */
const sf_record *sf_search_db_record(const sf_search_db *db, sf_search_kind kind,
                                     const sf_stream_image *img, const char *tail,
                                     sf_error *err);

/* Empty result: hits cleared, pairs released. */
void sf_search_result_reset(sf_search_result *result);

/* Set err to "KEY: why", returning why's status. */
sf_status sf_search_keyed(sf_error *err, const char *key, const sf_error *why);

/* The query's local_desc for options' codebook; else NULL with err set
 * (missing: what the message says when there is none). */
const sf_record *sf_search_query_desc(const sf_stream_image *query,
                                      const sf_search_options *options, const char *missing,
                                      sf_error *err);
/* Quantise and aggregate desc (the query's) as options' index wants; the
 * caller releases *agg after a success only. */
sf_status sf_search_aggregate(const sf_stream_image *query, const sf_record *desc,
                              const sf_search_options *options, sf_asmk_agg *agg, sf_error *err);

#endif
