/* Search options and results, and the ASMK search of index shards. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

void sf_search_options_default(sf_search_options *options)
{
    memset(options, 0, sizeof *options);
    options->top_k = 100;
    options->ma = 5;
    options->rerank = 100;
    sf_match_options_default(&options->match);
    options->min_matches = 1;
}

void sf_search_result_init(sf_search_result *result)
{
    memset(result, 0, sizeof *result);
    sf_hit_list_init(&result->hits);
}

void sf_search_result_reset(sf_search_result *result)
{
    for (size_t i = 0; result->pairs && i < result->hits.count; i++)
        sf_match_list_release(&result->pairs[i]);
    free(result->pairs);
    result->pairs = NULL;
    sf_hit_list_clear(&result->hits);
    result->candidates = result->not_indexed = 0;
}

void sf_search_result_release(sf_search_result *result)
{
    if (!result)
        return;
    sf_search_result_reset(result);
    sf_hit_list_release(&result->hits);
}

sf_status sf_search_keyed(sf_error *err, const char *key, const sf_error *why)
{
    return sf_error_set(err, why->status, "%s: %s", key, why->message);
}

const sf_record *sf_search_query_desc(const sf_stream_image *query,
                                      const sf_search_options *options, const char *missing,
                                      sf_error *err)
{
    if (!options->searcher || !options->codebook) {
        sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "search: no index or no codebook");
        return NULL;
    }
    const sf_record *desc = sf_stream_image_find(query, SF_KIND_LOCAL_DESC);
    size_t dim = sf_asmk_codebook_dim(options->codebook);
    if (!desc)
        sf_error_set(err, SF_ERR_INVALID_DATA, "%s: %s", query->key, missing);
    else if (desc->shape[1] != dim)
        sf_error_set(err, SF_ERR_INVALID_DATA,
                     "%s: local_desc is not one K x %zu float32 array (made for another "
                     "codebook?)", query->key, dim);
    else
        return desc;
    return NULL;
}

sf_status sf_search_aggregate(const sf_stream_image *query, const sf_record *desc,
                              const sf_search_options *options, sf_asmk_agg *agg, sf_error *err)
{
    sf_error why;
    if (sf_asmk_quantize_aggregate(options->codebook, desc->data, (size_t)desc->shape[0],
                                   options->ma, options->binary, agg, &why) == SF_OK)
        return SF_OK;
    sf_asmk_agg_release(agg);
    return sf_search_keyed(err, query->key, &why);
}

sf_status sf_search_index(const sf_stream_image *query, const sf_search_options *options,
                          sf_search_result *result, sf_error *err)
{
    sf_search_result_reset(result);
    const sf_record *desc =
        sf_search_query_desc(query, options, "no local_desc record (the output of sf-lit)", err);
    if (!desc)
        return err->status;
    /* Nothing to match with: every image would score 0, none is a hit. */
    if (desc->shape[0] == 0)
        return SF_OK;
    sf_asmk_agg agg;
    sf_status st = sf_search_aggregate(query, desc, options, &agg, err);
    if (st != SF_OK)
        return st;
    size_t n_ids = sf_index_searcher_n_ids(options->searcher);
    size_t want = options->top_k == 0 || options->top_k > n_ids ? n_ids : options->top_k;
    sf_index_hit *hits = malloc((want ? want : 1) * sizeof *hits);
    size_t n = 0;
    sf_error why;
    st = hits ? sf_index_searcher_search(options->searcher, &agg, want, hits, &n, &why)
              : sf_error_set(&why, SF_ERR_NOMEM, "out of memory for %zu hits", want);
    sf_asmk_agg_release(&agg);
    for (size_t i = 0; i < n && st == SF_OK; i++)
        st = sf_hit_list_append(&result->hits, hits[i].key, hits[i].key_len, hits[i].score,
                                &why);
    free(hits);
    if (st != SF_OK) {
        sf_search_result_reset(result);
        return sf_search_keyed(err, query->key, &why);
    }
    return SF_OK;
}
