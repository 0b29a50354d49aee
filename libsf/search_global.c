/* Global search: a brute-force scan of the database's global descriptors,
 * then, with an index, the ASMK re-ranking of the best candidates. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dot_internal.h"
#include "search_internal.h"
#include "topk_internal.h"

/* The best want images for the query vector q into heap, best first. */
static size_t scan(const sf_search_db *db, const float *q, size_t want, sf_scored *heap)
{
    size_t n = 0;
    for (size_t i = 0; i < db->count; i++) {
        sf_scored c = { sf_dot_f32(db->global + i * db->dim, q, db->dim), i };
        sf_topk_offer(heap, &n, want, c);
    }
    sf_topk_sort(heap, n);
    return n;
}

/* Score the n candidates s again with the index's ASMK, those it does not
 * hold NaN (last), and sort them. */
static sf_status rerank(const sf_search_db *db, const sf_stream_image *query,
                        const sf_search_options *options, sf_scored *s, size_t n,
                        sf_search_result *result, sf_error *err)
{
    const sf_record *desc =
        sf_search_query_desc(query, options, "no local_desc record to re-rank with", err);
    if (!desc)
        return err->status;
    sf_asmk_agg agg;
    sf_status st = sf_search_aggregate(query, desc, options, &agg, err);
    if (st != SF_OK)
        return st;
    size_t *ids = malloc((n ? n : 1) * sizeof *ids);
    size_t *where = malloc((n ? n : 1) * sizeof *where);
    double *asmk = malloc((n ? n : 1) * sizeof *asmk);
    size_t found = 0;
    sf_error why;
    if (!ids || !where || !asmk)
        st = sf_error_set(&why, SF_ERR_NOMEM, "out of memory for %zu candidates", n);
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        const char *k = db->keys[s[i].id];
        st = sf_index_searcher_find(options->searcher, k, strlen(k), &ids[found], &why);
        if (st == SF_OK)
            where[found++] = i;
        else if (st == SF_ERR_NOT_FOUND)
            st = SF_OK;
    }
    if (st == SF_OK)
        st = sf_index_searcher_scores_subset(options->searcher, &agg, ids, found, asmk, &why);
    sf_asmk_agg_release(&agg);
    if (st == SF_OK) {
        result->candidates = n;
        result->not_indexed = n - found;
        for (size_t i = 0; i < n; i++)
            s[i].score = NAN;
        for (size_t j = 0; j < found; j++)
            s[where[j]].score = asmk[j];
        sf_scored_sort(s, n);
    }
    free(ids);
    free(where);
    free(asmk);
    return st == SF_OK ? SF_OK : sf_search_keyed(err, query->key, &why);
}

sf_status sf_search_global(const sf_search_db *db, const sf_stream_image *query,
                           const sf_search_options *options, sf_search_result *result,
                           sf_error *err)
{
    sf_search_result_reset(result);
    /* An empty database has no dimension to check against: no hits. */
    const sf_record *g =
        sf_search_db_record(db, SF_SEARCH_GLOBAL, query, " (as the database's)", err);
    if (!g)
        return err->status;
    const int reranking = options->searcher != NULL;
    size_t want = reranking ? options->rerank : options->top_k ? options->top_k : db->count;
    if (want > db->count)
        want = db->count;
    sf_scored *s = malloc((want ? want : 1) * sizeof *s);
    if (!s)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", query->key);
    size_t n = scan(db, g->data, want, s);
    sf_status st = reranking ? rerank(db, query, options, s, n, result, err) : SF_OK;
    size_t keep = options->top_k && options->top_k < n ? options->top_k : n;
    /* Candidates the index does not hold rank last: left out. */
    for (size_t i = 0; i < keep && st == SF_OK && !(reranking && isnan(s[i].score)); i++) {
        const char *k = db->keys[s[i].id];
        st = sf_hit_list_append(&result->hits, k, strlen(k), s[i].score, err);
    }
    free(s);
    if (st != SF_OK)
        sf_search_result_reset(result);
    return st;
}

static int by_id(const void *a, const void *b)
{
    uint64_t x = ((const sf_scored *)a)->id, y = ((const sf_scored *)b)->id;
    return (x > y) - (x < y);
}

sf_status sf_search_global_index(const sf_index *index, const sf_stream_image *query,
                                 const sf_search_options *options, int threads,
                                 sf_search_result *result, sf_error *err)
{
    sf_search_result_reset(result);
    const sf_record *g = sf_stream_image_find(query, SF_KIND_GLOBAL);
    if (!g)
        return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: no global record (sf-lit --global)",
                            query->key);
    if (g->dtype != SF_DTYPE_F32 || g->ndim != 1)
        return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: global is not one float32 vector",
                            query->key);
    const int reranking = options->searcher != NULL;
    const size_t live = sf_index_n_images(index);
    size_t want = reranking ? options->rerank : options->top_k ? options->top_k : live;
    if (want > live)
        want = live;
    sf_index_hit *hits = malloc((want ? want : 1) * sizeof *hits);
    sf_scored *s = malloc((want ? want : 1) * sizeof *s);
    size_t *ids = malloc((want ? want : 1) * sizeof *ids);
    double *asmk = malloc((want ? want : 1) * sizeof *asmk);
    size_t n = 0;
    sf_error why;
    sf_status st = !hits || !s || !ids || !asmk
                       ? sf_error_set(&why, SF_ERR_NOMEM, "out of memory for %zu candidates",
                                      want)
                       : sf_index_global_search(index, g->data, (size_t)g->shape[0], want,
                                                threads, hits, &n, &why);
    if (st == SF_OK && reranking) {
        const sf_record *desc =
            sf_search_query_desc(query, options, "no local_desc record to re-rank with", err);
        sf_asmk_agg agg;
        if (!desc)
            st = err->status;
        else if ((st = sf_search_aggregate(query, desc, options, &agg, err)) == SF_OK) {
            for (size_t i = 0; i < n; i++)
                ids[i] = hits[i].global_id;
            st = sf_index_searcher_scores_subset(options->searcher, &agg, ids, n, asmk, &why);
            sf_asmk_agg_release(&agg);
            if (st != SF_OK)
                st = sf_search_keyed(err, query->key, &why);
        }
        if (st == SF_OK) {
            result->candidates = n;
            /* Equal scores by index id, as the stream form orders them by
             * database position. */
            for (size_t i = 0; i < n; i++)
                s[i] = (sf_scored){ asmk[i], hits[i].global_id };
            sf_scored_sort(s, n);
            /* Back from ids to candidates: ids sorted beside their places. */
            sf_scored *byid = malloc((n ? n : 1) * sizeof *byid);
            if (!byid)
                st = sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", query->key);
            for (size_t i = 0; byid && i < n; i++)
                byid[i] = (sf_scored){ (double)i, hits[i].global_id };
            if (byid)
                qsort(byid, n, sizeof *byid, by_id);
            for (size_t i = 0; byid && i < n; i++) {
                size_t lo = 0, hi = n;
                while (hi - lo > 1) {
                    size_t mid = lo + (hi - lo) / 2;
                    if (byid[mid].id <= s[i].id)
                        lo = mid;
                    else
                        hi = mid;
                }
                s[i].id = (uint64_t)byid[lo].score;
            }
            free(byid);
        }
    } else if (st == SF_OK) {
        for (size_t i = 0; i < n; i++)
            s[i] = (sf_scored){ hits[i].score, i };
    } else {
        st = sf_search_keyed(err, query->key, &why);
    }
    size_t keep = options->top_k && options->top_k < n ? options->top_k : n;
    for (size_t i = 0; i < keep && st == SF_OK; i++) {
        const sf_index_hit *h = &hits[s[i].id];
        st = sf_hit_list_append(&result->hits, h->key, h->key_len, s[i].score, err);
    }
    free(hits);
    free(s);
    free(ids);
    free(asmk);
    if (st != SF_OK)
        sf_search_result_reset(result);
    return st;
}
