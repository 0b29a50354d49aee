/* Fuzz target for the index reader: open an index file image from memory,
 * then read everything a program may read (info, every image, a key
 * lookup, the full check, a search with one and two threads).  Nothing may
 * crash, hang or allocate more than the input justifies; every failure
 * must come with a message.
 *
 * Checksums would stop almost every mutation at the door, so each input is
 * tried twice: as it is, and with the header, slot and commit record
 * checksums recomputed so that the parser behind them gets exercised. */
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

static void exercise(const sf_index *idx)
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
    require_message(sf_index_verify(idx, &err), &err);

    /* A query on the first words, with all-zero vectors. */
    sf_index_codebook_id cb;
    sf_index_get_codebook(idx, &cb);
    const sf_index_params *p = sf_index_get_params(idx);
    size_t nq = cb.k < 6 ? (size_t)cb.k : 6;
    int32_t words[6];
    for (size_t i = 0; i < nq; i++)
        words[i] = (int32_t)i;
    size_t vec = p->asmk.binary ? sf_asmk_packed_size((size_t)cb.dim) : (size_t)cb.dim;
    void *zeros = calloc(nq * vec + 1, 4);
    double *scores = malloc((n + 1) * sizeof *scores);
    if (!zeros || !scores)
        abort();
    sf_asmk_agg q = { .n = nq, .dim = (size_t)cb.dim, .binary = p->asmk.binary, .words = words,
                      .packed = p->asmk.binary ? zeros : NULL,
                      .vectors = p->asmk.binary ? NULL : zeros };
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
    free(zeros);
    free(scores);
}

static void try_open(const uint8_t *data, size_t size)
{
    sf_index *idx;
    sf_error err;
    sf_status st = sf_index_open_memory(data, size, "fuzz", &idx, &err);
    if (st != SF_OK) {
        if (strncmp(err.message, "fuzz: ", 6) != 0)
            abort();
        return;
    }
    exercise(idx);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_open(data, size);
    if (size < IX_DATA_START || size > (64u << 20))
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fix_checksums(copy, size);
    try_open(copy, size);
    free(copy);
    return 0;
}
