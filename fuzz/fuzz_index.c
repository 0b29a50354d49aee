/* Fuzz target for the index reader: open an index file image from memory,
 * then read everything a program may read (info, every image, a key
 * lookup, the full check, a search with one and two threads, a subset of
 * the scores and the keys through a searcher).  Nothing may
 * crash, hang or allocate more than the input justifies; every failure
 * must come with a message.
 *
 * Checksums would stop almost every mutation at the door, so each input is
 * tried up to three times: as it is; with the header, slot and commit
 * record checksums recomputed, so that the parser behind them gets
 * exercised; and with the segments' checksums and list sums recomputed
 * too, so that the searches get damage that only their own checks of
 * order and bounds can catch. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "index_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require_message(sf_status st, const sf_error *err)
{
    if (st != SF_OK && (err->status != st || err->message[0] == '\0'))
        abort();
}

static int same_score(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Searches must agree: the scores of a subset of the images equal, bit
 * for bit, the full pass's (in an index that passes the full check: the
 * searches trust what that check verifies, such as sorted lists); a live
 * image's key finds an image with it. */
static void check_searcher(const sf_index *idx, const sf_asmk_agg *q, size_t n, int verified)
{
    sf_index_search_options o;
    sf_index_search_options_default(&o);
    sf_index_searcher *s;
    sf_error err;
    const sf_index *one[1] = { idx };
    sf_status st = sf_index_searcher_create(one, 1, &o, &s, &err);
    require_message(st, &err);
    if (st != SF_OK)
        return;
    if (sf_index_searcher_n_ids(s) != n)
        abort();
    size_t m = n < 4096 ? n : 4096;
    double *all = malloc((n + 1) * sizeof *all), *some = malloc((m + 1) * sizeof *some);
    size_t *ids = malloc((m + 1) * sizeof *ids);
    if (!all || !some || !ids)
        abort();
    for (size_t i = 0; i < m; i++)
        ids[i] = m - 1 - i; /* any order */
    st = sf_index_searcher_scores(s, q, all, &err);
    require_message(st, &err);
    sf_status st2 = sf_index_searcher_scores_subset(s, q, ids, m, some, &err);
    require_message(st2, &err);
    if (verified && st == SF_OK && st2 == SF_OK)
        for (size_t i = 0; i < m; i++)
            if (!same_score(all[ids[i]], some[i]))
                abort();
    for (size_t id = 0; id < m; id++) {
        const char *key;
        size_t len, found;
        st = sf_index_searcher_key(s, id, &key, &len, &err);
        require_message(st, &err);
        if (st != SF_OK || !sf_index_is_live(idx, id))
            continue;
        st = sf_index_searcher_find(s, key, len, &found, &err);
        require_message(st, &err);
        const char *key2;
        size_t len2;
        if (st == SF_OK && (sf_index_searcher_key(s, found, &key2, &len2, &err) != SF_OK
                            || len2 != len || memcmp(key, key2, len) != 0))
            abort();
    }
    free(all);
    free(some);
    free(ids);
    sf_index_searcher_free(s);
}

static void exercise(const sf_index *idx, const uint8_t *data, size_t size)
{
    sf_error err;
    sf_index_info info;
    require_message(sf_index_get_info(idx, &info, &err), &err);
    size_t n = sf_index_n_ids(idx);
    for (size_t id = 0; id < n && id < 4096; id++) {
        sf_index_image im;
        sf_status st = sf_index_get_image(idx, id, &im, &err);
        require_message(st, &err);
        if (st == SF_OK && (im.key_len == 0 || im.live != sf_index_is_live(idx, id)))
            abort();
    }
    size_t id;
    require_message(sf_index_find(idx, "ka", &id, &err), &err);
    sf_status verified = sf_index_verify(idx, &err);
    require_message(verified, &err);

    /* A query on the first words (more than the search prefetches ahead),
     * its vectors made of the input's last bytes so that the fuzzer steers
     * the similarities too. */
    sf_index_codebook_id cb;
    sf_index_get_codebook(idx, &cb);
    const sf_index_params *p = sf_index_get_params(idx);
    enum { MAX_WORDS = 12 };
    size_t nq = cb.k < MAX_WORDS ? (size_t)cb.k : MAX_WORDS;
    int32_t words[MAX_WORDS];
    for (size_t i = 0; i < nq; i++)
        words[i] = (int32_t)i;
    size_t vec = p->asmk.binary ? sf_asmk_packed_size((size_t)cb.dim) : (size_t)cb.dim;
    uint32_t *bits = calloc(nq * vec + 1, 4);
    float *vals = calloc(nq * vec + 1, 4);
    double *scores = malloc((n + 1) * sizeof *scores);
    if (!bits || !vals || !scores)
        abort();
    for (size_t i = 0; i < nq * vec && size > 0; i++) {
        uint8_t b = data[size - 1 - i % size];
        bits[i] = b * 0x01010101u;
        vals[i] = (float)(int8_t)b / 64.0f;
    }
    sf_asmk_agg q = { .n = nq, .dim = (size_t)cb.dim, .binary = p->asmk.binary, .words = words,
                      .packed = p->asmk.binary ? bits : NULL,
                      .vectors = p->asmk.binary ? NULL : vals };
    const sf_index *shards[2] = { idx, idx };
    for (int threads = 1; threads <= 2; threads++) {
        sf_index_search_options o;
        sf_index_search_options_default(&o);
        o.threads = threads;
        require_message(sf_index_search_scores(shards, 1, &q, &o, scores, &err), &err);
    }
    sf_index_hit hits[3];
    size_t n_hits;
    sf_index_search_options o;
    sf_index_search_options_default(&o);
    o.allow_local_idf = 1;
    require_message(sf_index_search(shards, 2, &q, &o, 3, hits, &n_hits, &err), &err);
    check_searcher(idx, &q, n, verified == SF_OK);
    free(bits);
    free(vals);
    free(scores);
}

static void try_open(const uint8_t *data, size_t size, const uint8_t *orig)
{
    sf_index *idx;
    sf_error err;
    sf_status st = sf_index_open_memory(data, size, "fuzz", &idx, &err);
    if (st != SF_OK) {
        if (strncmp(err.message, "fuzz: ", 6) != 0)
            abort();
        return;
    }
    exercise(idx, orig, size);
    sf_index_close(idx);
}

/* Recompute the checksums that guard the header, the slots and the
 * commit records they point to. */
static void fix_checksums(uint8_t *d, size_t size)
{
    if (size < IX_DATA_START)
        return;
    sf_put_u64(d + IX_HEADER_SIZE - 8, XXH64(d, IX_HEADER_SIZE - 8, 0));
    for (int s = 0; s < 2; s++) {
        uint8_t *slot = d + (s ? IX_SLOT1 : IX_SLOT0);
        uint64_t off = sf_get_u64(slot + 16), len = sf_get_u64(slot + 24);
        if (off <= size && len <= size - off)
            sf_put_u64(slot + 32, XXH64(d + off, (size_t)len, 0));
        sf_put_u64(slot + IX_SLOT_SIZE - 8, XXH64(slot, IX_SLOT_SIZE - 8, 0));
    }
}

/* Recompute what guards the segments too: each one's table checksum and
 * list sums, and its checksum in the commit record; then the rest again.
 * 0 when the copy does not open, so that there is nothing to fix. */
static int fix_segments(uint8_t *d, size_t size)
{
    sf_index *idx;
    sf_error err;
    if (sf_index_open_memory(d, size, "fuzz", &idx, &err) != SF_OK)
        return 0;
    const unsigned char *base = idx->data;
    const uint64_t k = idx->codebook.k;
    const uint64_t seg_at = idx->commit_offset + IX_COMMIT_FIXED +
                            ((strlen(idx->codebook_path) + 7u) & ~(uint64_t)7u);
    for (size_t i = 0; i < idx->n_segments; i++) {
        ix_segment *s = &idx->segs[i];
        if (s->version >= 2) {
            const unsigned char *ids = (const unsigned char *)s->ids;
            sf_put_u64(d + s->offset + 44, XXH64(s->images, (size_t)(ids - s->images), 0));
            for (uint64_t w = 0; w < k; w++) {
                uint64_t a, b;
                if (ix_word_range(idx, s, w, &a, &b, &err) != SF_OK)
                    continue;
                unsigned char *e = d + (s->dir - base) + IX_DIR_ENTRY * w;
                const uint64_t id_sum = ix_ids_sum(s, a, b);
                sf_put_u64(e + 8, id_sum);
                sf_put_u64(e + 16,
                           ix_entries_sum_of(s->ids, s->vecs, a, b, idx->vec_bytes) - id_sum);
            }
        }
        /* The sums above are in the first part: hash the copy's bytes. */
        const uint8_t *sb = d + s->offset;
        uint64_t at_ids = (uint64_t)((const unsigned char *)s->ids - s->base);
        uint64_t at_vecs = (uint64_t)(s->vecs - s->base);
        uint64_t part[3] = {
            XXH64(sb, (size_t)at_ids, 0),
            XXH64(sb + at_ids, (size_t)(at_vecs - at_ids), 0),
            XXH64(sb + at_vecs, (size_t)(s->size - at_vecs), 0),
        };
        sf_put_u64(d + seg_at + i * IX_SEG_ENTRY + 16, ix_combine_parts(part));
    }
    sf_index_close(idx);
    fix_checksums(d, size);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_open(data, size, data);
    if (size < IX_DATA_START || size > (64u << 20))
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fix_checksums(copy, size);
    try_open(copy, size, data);
    if (fix_segments(copy, size))
        try_open(copy, size, data);
    free(copy);
    return 0;
}
