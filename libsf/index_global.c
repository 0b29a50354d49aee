/* The index's global stage: the global descriptors its segments hold
 * (layout 3, man sf-index(5)), ranked in place by an exact fp32 scan. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "dot_internal.h"
#include "index_internal.h"
#include "topk_internal.h"

/* Live images of ids [a, b). */
static uint64_t live_in(const sf_index *idx, uint64_t a, uint64_t b)
{
    uint64_t n = 0;
    for (uint64_t i = a; i < b;) {
        if ((i & 63) == 0 && b - i >= 64) {
            n += (uint64_t)__builtin_popcountll(idx->live[i >> 6]);
            i += 64;
        } else {
            n += (uint64_t)ix_live(idx->live, i);
            i++;
        }
    }
    return n;
}

uint64_t ix_global_held(const sf_index *idx, uint64_t *missing)
{
    uint64_t dim = 0, miss = 0;
    for (size_t i = 0; i < idx->n_segments; i++) {
        const ix_segment *s = &idx->segs[i];
        uint64_t live = live_in(idx, s->slot_base, s->slot_base + s->n_images);
        if (!live)
            continue;
        if (!s->global)
            miss += live;
        else if (!dim)
            dim = s->global_dim;
    }
    *missing = miss;
    return dim;
}

/* The global dimension, 0 if none; *missing: live images without one;
 * *mixed: segments with live images disagree on the dimension. */
static size_t stage_of(const sf_index *idx, size_t *missing, int *mixed)
{
    uint64_t dim = 0, miss = 0;
    *mixed = 0;
    for (size_t i = 0; i < idx->n_segments; i++) {
        const ix_segment *s = &idx->segs[i];
        uint64_t live = live_in(idx, s->slot_base, s->slot_base + s->n_images);
        if (!live)
            continue;
        if (!s->global)
            miss += live;
        else if (dim && s->global_dim != dim)
            *mixed = 1;
        else
            dim = s->global_dim;
    }
    if (missing)
        *missing = (size_t)miss;
    return miss || *mixed ? 0 : (size_t)dim;
}

size_t sf_index_global_dim(const sf_index *idx, size_t *missing)
{
    int mixed;
    return stage_of(idx, missing, &mixed);
}

sf_status sf_index_global_get(const sf_index *idx, size_t id, const float **out, sf_error *err)
{
    *out = NULL;
    if (id >= idx->n_slots)
        return sf_error_set(err, SF_ERR_NOT_FOUND, "%s: no image %zu", idx->name, id);
    const ix_segment *s = ix_segment_of(idx, id);
    if (!s->global)
        return sf_error_set(err, SF_ERR_NOT_FOUND, "%s: image %zu has no global descriptor",
                            idx->name, id);
    sf_status st = ix_check_global(idx, s, err);
    if (st == SF_OK)
        *out = s->global + (id - s->slot_base) * s->global_dim;
    return st;
}

/* One thread's share: ids [a, b), its best want into heap. */
typedef struct gjob {
    const sf_index *idx;
    const float *q;
    size_t dim, want;
    uint64_t a, b;
    sf_scored *heap;
    size_t n;
} gjob;

static void scan_job(void *ctx, size_t t)
{
    gjob *j = (gjob *)ctx + t;
    const sf_index *idx = j->idx;
    j->n = 0;
    for (size_t i = 0; i < idx->n_segments; i++) {
        const ix_segment *s = &idx->segs[i];
        uint64_t lo = s->slot_base > j->a ? s->slot_base : j->a;
        uint64_t hi = s->slot_base + s->n_images < j->b ? s->slot_base + s->n_images : j->b;
        if (lo >= hi || !s->global)
            continue;
        const float *g = s->global + (lo - s->slot_base) * j->dim;
        for (uint64_t id = lo; id < hi; id++, g += j->dim) {
            if (!ix_live(idx->live, id))
                continue;
            sf_scored c = { sf_dot_f32(g, j->q, j->dim), id };
            sf_topk_offer(j->heap, &j->n, j->want, c);
        }
    }
}

sf_status sf_index_global_search(const sf_index *idx, const float *query, size_t dim,
                                 size_t top_k, int threads, sf_index_hit *hits, size_t *n_hits,
                                 sf_error *err)
{
    *n_hits = 0;
    size_t missing;
    int mixed;
    const size_t gdim = stage_of(idx, &missing, &mixed);
    if (idx->n_live == 0)
        return SF_OK;
    if (mixed)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: segments hold global descriptors of "
                            "different dimensions", idx->name);
    if (gdim == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: no global stage: %zu of its %llu images were added without a "
                            "global record (sf-lit --global)", idx->name, missing,
                            (unsigned long long)idx->n_live);
    if (dim != gdim)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "global is not one float32 vector of %zu (as the index's)", gdim);
    /* Nothing unchecked is scored: each global part is checked whole,
     * once per process, before its first scan. */
    for (size_t i = 0; i < idx->n_segments; i++) {
        const ix_segment *s = &idx->segs[i];
        if (s->global && live_in(idx, s->slot_base, s->slot_base + s->n_images)) {
            sf_status st = ix_check_global(idx, s, err);
            if (st != SF_OK)
                return st;
        }
    }
    size_t want = top_k && top_k < idx->n_live ? top_k : (size_t)idx->n_live;
    /* Threads pay only over tens of MB of descriptors (starting them
     * costs about a millisecond on a busy machine). */
    int nt = sf_threads_resolve(threads);
    if (threads == 0 && (uint64_t)idx->n_live * gdim < (UINT64_C(1) << 23))
        nt = 1;
    if ((uint64_t)nt > idx->n_slots)
        nt = (int)idx->n_slots;
    if (nt < 1)
        nt = 1;
    gjob *jobs = calloc((size_t)nt, sizeof *jobs);
    sf_scored *heap = jobs ? malloc(sf_mul_size((size_t)nt, want) * sizeof *heap) : NULL;
    if (!jobs || !heap) {
        free(jobs);
        free(heap);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for %zu candidates",
                            idx->name, want);
    }
    for (int t = 0; t < nt; t++) {
        gjob *j = &jobs[t];
        j->idx = idx;
        j->q = query;
        j->dim = gdim;
        j->want = want;
        j->a = idx->n_slots * (uint64_t)t / (uint64_t)nt;
        j->b = idx->n_slots * (uint64_t)(t + 1) / (uint64_t)nt;
        j->heap = heap + (size_t)t * want;
    }
    if (nt > 1)
        sf_threads_run((size_t)nt, scan_job, jobs);
    else
        scan_job(jobs, 0);
    /* The best want of the threads' best: the same set one scan keeps,
     * since the order is total. */
    size_t n = jobs[0].n;
    for (int t = 1; t < nt; t++) {
        memmove(heap + n, jobs[t].heap, jobs[t].n * sizeof *heap);
        n += jobs[t].n;
    }
    free(jobs);
    sf_scored_sort(heap, n);
    if (n > want)
        n = want;
    sf_status st = SF_OK;
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        const ix_segment *s = ix_segment_of(idx, heap[i].id);
        const char *key;
        uint32_t len, nv;
        st = ix_image_entry(idx, s, heap[i].id - s->slot_base, &key, &len, &nv, err);
        hits[i].shard = 0;
        hits[i].id = hits[i].global_id = (size_t)heap[i].id;
        hits[i].score = heap[i].score;
        hits[i].key = key;
        hits[i].key_len = len;
    }
    free(heap);
    if (st == SF_OK)
        *n_hits = n;
    return st;
}
