/* Pairwise search: a query's super-features matched with those of every
 * image of a database in memory; the score is the number of matches. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "search_internal.h"
#include "topk_internal.h"

/* Match the query with every image: lists[i] for image i, and the images
 * with enough matches into kept[0 .. *n_kept), their count as score. */
static sf_status match_all(const sf_search_db *db, const sf_stream_image *query,
                           const sf_record *desc, const sf_search_options *options,
                           sf_match_list *lists, sf_scored *kept, size_t *n_kept, sf_error *err)
{
    const sf_record *tmpl = sf_stream_image_find(query, SF_KIND_LOCAL_INDEX);
    const size_t qn = (size_t)desc->shape[0];
    sf_match_options o = options->match;
    o.a_template = tmpl ? tmpl->data : NULL;
    if (o.same_index && !tmpl && qn > 0 && db->count > 0)
        return sf_error_set(err, SF_ERR_INVALID_DATA,
                            "%s: --same-template needs a local_index record", query->key);
    *n_kept = 0;
    for (size_t i = 0; i < db->count; i++) {
        const sf_search_local *d = &db->local[i];
        o.b_template = d->tmpl;
        /* A database made without need_templates. */
        if (o.same_index && !d->tmpl && qn > 0 && d->n > 0)
            return sf_error_set(err, SF_ERR_INVALID_DATA,
                                "%s: --same-template needs local_index records in the query "
                                "and in %s", query->key, db->keys[i]);
        sf_error why;
        if (sf_match_find(desc->data, qn, d->desc, d->n, db->dim, &o, &lists[i], &why) != SF_OK)
            return sf_search_keyed(err, query->key, &why);
        size_t count = lists[i].count;
        if (count >= options->min_matches && count > 0)
            kept[(*n_kept)++] = (sf_scored){ (double)count, i };
    }
    return SF_OK;
}

sf_status sf_search_pairwise(const sf_search_db *db, const sf_stream_image *query,
                             const sf_search_options *options, sf_search_result *result,
                             sf_error *err)
{
    sf_search_result_reset(result);
    const sf_record *desc = sf_search_db_record(db, SF_SEARCH_PAIRWISE, query, "", err);
    if (!desc)
        return err->status;
    size_t n = db->count ? db->count : 1;
    sf_match_list *lists = calloc(n, sizeof *lists);
    sf_scored *kept = malloc(n * sizeof *kept);
    size_t n_kept = 0;
    sf_status st = lists && kept ? match_all(db, query, desc, options, lists, kept, &n_kept, err)
                                 : sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory",
                                                query->key);
    if (st == SF_OK) {
        /* More matches first, then database order. */
        sf_scored_sort(kept, n_kept);
        size_t keep = options->top_k && options->top_k < n_kept ? options->top_k : n_kept;
        result->pairs = calloc(keep ? keep : 1, sizeof *result->pairs);
        if (!result->pairs)
            st = sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", query->key);
        for (size_t i = 0; i < keep && st == SF_OK; i++) {
            const char *k = db->keys[kept[i].id];
            st = sf_hit_list_append(&result->hits, k, strlen(k), kept[i].score, err);
            if (st == SF_OK) {
                /* Moved: the hit owns them now. */
                result->pairs[i] = lists[kept[i].id];
                memset(&lists[kept[i].id], 0, sizeof *lists);
            }
        }
    }
    for (size_t i = 0; lists && i < db->count; i++)
        sf_match_list_release(&lists[i]);
    free(lists);
    free(kept);
    if (st != SF_OK)
        sf_search_result_reset(result);
    return st;
}

sf_status sf_search_result_pair_records(const sf_search_result *result, size_t hit,
                                        const char *query_key, sf_record *pairs,
                                        sf_record *similarity, int32_t **pairs_data,
                                        float **similarity_copy, sf_error *err)
{
    *pairs_data = NULL;
    *similarity_copy = NULL;
    if (!result->pairs || hit >= result->hits.count)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "search: no matches of hit %zu", hit);
    const sf_match_list *l = &result->pairs[hit];
    int32_t *p = malloc(l->count ? l->count * 2 * sizeof *p : 1);
    float *sim = malloc(l->count ? l->count * sizeof *sim : 1);
    if (!p || !sim) {
        free(p);
        free(sim);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for %zu pairs", query_key,
                            l->count);
    }
    for (size_t j = 0; j < l->count; j++) {
        p[2 * j] = (int32_t)l->a[j];
        p[2 * j + 1] = (int32_t)l->b[j];
    }
    if (l->count)
        memcpy(sim, l->similarity, l->count * sizeof *sim);
    *pairs = (sf_record){ .kind = SF_KIND_MATCH_PAIRS, .dtype = SF_DTYPE_I32, .ndim = 2,
                          .index = (uint32_t)hit, .scale = 1.0, .shape = { l->count, 2 },
                          .key = query_key, .key_len = strlen(query_key), .data = p,
                          .data_size = l->count * 2 * sizeof *p };
    *similarity = *pairs;
    similarity->kind = SF_KIND_MATCH_SIMILARITY;
    similarity->dtype = SF_DTYPE_F32;
    similarity->ndim = 1;
    similarity->shape[1] = 0;
    similarity->data = sim;
    similarity->data_size = l->count * sizeof *sim;
    *pairs_data = p;
    *similarity_copy = sim;
    return SF_OK;
}
