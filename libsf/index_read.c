/* Opening, inspecting and checking an ASMK index file (man/sf-index.5).
 * Searching is in index_search.c, writing in index_write.c. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "index_internal.h"

void sf_index_params_default(sf_index_params *params)
{
    sf_asmk_params_default(&params->asmk);
    params->ma_database = 1;
}

void sf_index_params_from_config(sf_index_params *p, const sf_config *c)
{
    sf_index_params_default(p);
    p->asmk.binary = c->binary;
    p->asmk.use_idf = c->idf;
    p->asmk.alpha = (float)c->alpha;
    p->asmk.similarity_threshold = (float)c->threshold;
    p->ma_database = c->ma_database;
}

void sf_index_codebook_id_of(const sf_codebook *cb, sf_index_codebook_id *id)
{
    id->k = sf_codebook_size(cb);
    id->dim = sf_codebook_dim(cb);
    id->checksum = sf_codebook_checksum(cb);
}

/* ---- Layout helpers ---- */

/* *acc += n * size, failing past limit. */
static int add_part(uint64_t *acc, uint64_t n, uint64_t size, uint64_t limit)
{
    if (size != 0 && n > limit / size)
        return 0;
    uint64_t bytes = n * size;
    if (bytes > limit || *acc > limit - bytes)
        return 0;
    *acc = ix_align(*acc + bytes);
    return *acc <= limit;
}

int ix_seg_layout_compute(int version, uint64_t k, uint64_t n_images, uint64_t n_entries,
                          uint64_t keys_bytes, uint64_t vec_bytes, uint64_t global_dim,
                          uint64_t limit, ix_seg_layout *out)
{
    /* Everything stays far below UINT64_MAX: limit is a file size. */
    if (limit > (UINT64_C(1) << 62) || k >= (UINT64_C(1) << 40))
        return 0;
    uint64_t at = IX_SEG_HEADER;
    out->dir = at;
    if (!add_part(&at, k + 1, version >= 2 ? IX_DIR_ENTRY : IX_DIR_ENTRY_V1, limit))
        return 0;
    out->images = at;
    if (!add_part(&at, n_images, IX_IMAGE_ENTRY, limit))
        return 0;
    out->keys = at;
    if (!add_part(&at, keys_bytes, 1, limit))
        return 0;
    out->ids = at;
    if (!add_part(&at, n_entries, 4, limit))
        return 0;
    out->vecs = at;
    if (!add_part(&at, n_entries, vec_bytes, limit))
        return 0;
    out->global = at;
    if (version >= 3 && !add_part(&at, n_images, 4 * global_dim, limit))
        return 0;
    out->size = at;
    return 1;
}

uint64_t ix_combine_parts(const uint64_t part[3])
{
    unsigned char b[24];
    for (int i = 0; i < 3; i++)
        sf_put_u64(b + 8 * i, part[i]);
    return XXH64(b, sizeof b, 0);
}

float ix_idf(uint64_t n_live, uint64_t count)
{
    if (count == 0)
        return 1.0f;
    double l = log((double)n_live / (double)count);
    return (float)(l * l);
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ---- Parsing ---- */

sf_status ix_parse_header(sf_index *idx, const unsigned char *h, sf_error *err)
{
    const char *name = idx->name;
    if (memcmp(h, IX_MAGIC, 8) != 0)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: not an sf index (bad magic)", name);
    uint32_t version = sf_get_u32(h + 8);
    if (version != IX_VERSION)
        return sf_error_set(err, SF_ERR_VERSION,
                            "%s: index format version %lu (this sf reads version %d)", name,
                            (unsigned long)version, IX_VERSION);
    if (XXH64(h, IX_HEADER_SIZE - 8, 0) != sf_get_u64(h + IX_HEADER_SIZE - 8))
        return sf_error_set(err, SF_ERR_CHECKSUM, "%s: header checksum mismatch", name);
    uint32_t flags = sf_get_u32(h + 16);
    uint32_t ma = sf_get_u32(h + 20);
    uint32_t abits = sf_get_u32(h + 24), tbits = sf_get_u32(h + 28);
    float alpha, threshold;
    memcpy(&alpha, &abits, 4);
    memcpy(&threshold, &tbits, 4);
    uint64_t k = sf_get_u64(h + 32);
    uint32_t dim = sf_get_u32(h + 40);
    uint32_t vec_bytes = sf_get_u32(h + 44);
    if (sf_get_u32(h + 12) != IX_HEADER_SIZE || sf_get_u64(h + 56) != IX_DATA_START ||
        (flags & ~(IX_FLAG_BINARY | IX_FLAG_IDF)) != 0)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: header: unknown layout or flags", name);
    /* Nothing in the file need be k-sized (no segments, no idf): bound it
     * before anyone sizes an allocation or a loop by it. */
    if (k == 0 || k > IX_MAX_WORDS)
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: header: a codebook of %llu words (1..%d)", name,
                            (unsigned long long)k, IX_MAX_WORDS);
    if (dim == 0 || dim > 65536 || ma == 0 || ma > k || ma > 64 || !isfinite(alpha) ||
        isnan(threshold))
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: header: bad parameters (k %llu, dim %lu, ma %lu)", name,
                            (unsigned long long)k, (unsigned long)dim, (unsigned long)ma);
    int binary = (flags & IX_FLAG_BINARY) != 0;
    uint64_t want = binary ? 4 * (uint64_t)sf_asmk_packed_size(dim) : 4 * (uint64_t)dim;
    if (vec_bytes != want)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: header: %lu bytes per vector, expected %llu",
                            name, (unsigned long)vec_bytes, (unsigned long long)want);
    idx->flags = flags;
    idx->params.asmk.binary = binary;
    idx->params.asmk.use_idf = (flags & IX_FLAG_IDF) != 0;
    idx->params.asmk.alpha = alpha;
    idx->params.asmk.similarity_threshold = threshold;
    idx->params.ma_database = (int)ma;
    idx->codebook.k = k;
    idx->codebook.dim = dim;
    idx->codebook.checksum = sf_get_u64(h + 48);
    idx->vec_bytes = vec_bytes;
    return SF_OK;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

sf_status ix_pick_slot(const sf_index *idx, const unsigned char *head, uint64_t file_size,
                       ix_slot_pick *pick, sf_error *err)
{
    int best = -1, valid[2];
    uint64_t best_gen = 0;
    for (int s = 0; s < 2; s++) {
        const unsigned char *p = head + (s ? IX_SLOT1 : IX_SLOT0);
        valid[s] = memcmp(p, IX_SLOT_MAGIC, 8) == 0 &&
                   XXH64(p, IX_SLOT_SIZE - 8, 0) == sf_get_u64(p + IX_SLOT_SIZE - 8);
        if (!valid[s])
            continue;
        uint64_t g = sf_get_u64(p + 8);
        if (best < 0 || g > best_gen) {
            best = s;
            best_gen = g;
        }
    }
    if (best < 0)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: no valid commit slot", idx->name);
    const unsigned char *p = head + (best ? IX_SLOT1 : IX_SLOT0);
    uint64_t off = sf_get_u64(p + 16), size = sf_get_u64(p + 24);
    if (off < IX_DATA_START || off % IX_ALIGN != 0 || size < IX_COMMIT_FIXED)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: commit slot %d: bad commit position",
                            idx->name, best);
    if (off > file_size || size > file_size - off)
        return sf_error_set(err, SF_ERR_TRUNCATED,
                            "%s: the commit record ends at byte %llu, beyond the end of the "
                            "file (%llu bytes)", idx->name, (unsigned long long)(off + size),
                            (unsigned long long)file_size);
    pick->which = best;
    pick->generation = best_gen;
    pick->offset = off;
    pick->size = size;
    pick->checksum = sf_get_u64(p + 32);
    /* A slot never written is all zero; any other invalid one is damage
     * (or a torn write). */
    const unsigned char *o = head + (best ? IX_SLOT0 : IX_SLOT1);
    pick->damaged = !valid[!best] && !all_zero(o, IX_SLOT_SIZE) ? !best : -1;
    pick->damaged_generation = pick->damaged >= 0 ? sf_get_u64(o + 8) : 0;
    return SF_OK;
}

/* The whole segment against the checksum in the commit record. */
static sf_status segment_checksum(const sf_index *idx, size_t i, sf_error *err)
{
    const ix_segment *s = &idx->segs[i];
    const unsigned char *b = s->base;
    uint64_t ids = (uint64_t)((const unsigned char *)s->ids - b), vecs = (uint64_t)(s->vecs - b);
    uint64_t part[3] = {
        XXH64(b, (size_t)ids, 0),
        XXH64(b + ids, (size_t)(vecs - ids), 0),
        XXH64(b + vecs, (size_t)(s->size - vecs), 0),
    };
    if (ix_combine_parts(part) != s->checksum)
        return sf_error_set(err, SF_ERR_CHECKSUM, "%s: segment %zu: checksum mismatch",
                            idx->name, i);
    return SF_OK;
}

static sf_status parse_segment(sf_index *idx, size_t i, const unsigned char *e, uint64_t *slots,
                               sf_error *err)
{
    ix_segment *s = &idx->segs[i];
    s->offset = sf_get_u64(e);
    s->size = sf_get_u64(e + 8);
    s->checksum = sf_get_u64(e + 16);
    s->n_images = sf_get_u64(e + 24);
    s->n_entries = sf_get_u64(e + 32);
    s->slot_base = sf_get_u64(e + 40);
    if (s->offset < IX_DATA_START || s->offset % IX_ALIGN != 0 ||
        s->offset > idx->commit_offset || s->size > idx->commit_offset - s->offset ||
        s->size < IX_SEG_HEADER)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: segment %zu: bad position", idx->name, i);
    if (s->slot_base != *slots || s->n_images > idx->n_slots - *slots)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: segment %zu: image ids do not follow on",
                            idx->name, i);
    *slots += s->n_images;
    if (!ix_segment_bind(s, idx->data + s->offset, idx->codebook.k, idx->vec_bytes))
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: segment %zu: header does not match its sizes", idx->name, i);
    return SF_OK;
}

int ix_segment_bind(ix_segment *s, const unsigned char *h, uint64_t k, uint64_t vec_bytes)
{
    s->base = h;
    s->keys_bytes = sf_get_u64(h + 24);
    uint64_t gdim = 0;
    if (memcmp(h, IX_SEG_MAGIC_V3, 8) == 0) {
        s->version = 3;
        gdim = sf_get_u32(h + 52);
        if (gdim == 0 || gdim > IX_MAX_GLOBAL_DIM)
            return 0;
    } else if (memcmp(h, IX_SEG_MAGIC, 8) == 0)
        s->version = 2;
    else if (memcmp(h, IX_SEG_MAGIC_V1, 8) == 0)
        s->version = 1;
    else
        return 0;
    if (sf_get_u64(h + 8) != s->n_images || sf_get_u64(h + 16) != s->n_entries ||
        sf_get_u64(h + 32) != k || sf_get_u32(h + 40) != vec_bytes)
        return 0;
    ix_seg_layout L;
    if (!ix_seg_layout_compute(s->version, k, s->n_images, s->n_entries, s->keys_bytes,
                               vec_bytes, gdim, s->size, &L) ||
        L.size != s->size)
        return 0;
    if (s->n_images > UINT32_MAX) /* ids in the lists are uint32 */
        return 0;
    s->dir = h + L.dir;
    s->dir_stride = s->version >= 2 ? IX_DIR_ENTRY : IX_DIR_ENTRY_V1;
    s->table_sum = s->version >= 2 ? sf_get_u64(h + 44) : 0;
    s->table_checked = 0;
    s->images = h + L.images;
    s->keys = (const char *)(h + L.keys);
    s->ids = (const uint32_t *)(const void *)(h + L.ids);
    s->vecs = h + L.vecs;
    s->global_dim = gdim;
    s->global_sum = gdim ? sf_get_u64(h + 56) : 0;
    s->global = gdim ? (const float *)(const void *)(h + L.global) : NULL;
    s->global_checked = 0;
    return 1;
}

sf_status ix_parse(sf_index *idx, const unsigned char *data, uint64_t size,
                   const unsigned char *head, sf_error *err)
{
    const char *name = idx->name;
    if (!host_is_little_endian())
        return sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: big-endian hosts are not supported",
                            name);
    if (size < IX_DATA_START)
        return sf_error_set(err, SF_ERR_TRUNCATED, "%s: %llu bytes, too short for an index",
                            name, (unsigned long long)size);
    idx->data = data;
    idx->size = size;
    if (!head)
        head = data;
    sf_status st = ix_parse_header(idx, head, err);
    if (st != SF_OK)
        return st;
    ix_slot_pick pick;
    st = ix_pick_slot(idx, head, size, &pick, err);
    if (st != SF_OK)
        return st;
    idx->generation = pick.generation;
    idx->commit_offset = pick.offset;
    idx->commit_size = pick.size;
    idx->damaged_slot = pick.damaged;
    idx->damaged_generation = pick.damaged_generation;
    idx->file_size = size;
    const unsigned char *c = data + idx->commit_offset;
    const uint64_t csize = idx->commit_size;
    if (XXH64(c, (size_t)csize, 0) != pick.checksum)
        return sf_error_set(err, SF_ERR_CHECKSUM, "%s: commit record checksum mismatch", name);
    uint64_t n_segments = sf_get_u64(c + 16);
    uint32_t cflags = sf_get_u32(c + 40), path_len = sf_get_u32(c + 44);
    idx->n_slots = sf_get_u64(c + 24);
    idx->n_live = sf_get_u64(c + 32);
    idx->features = cflags & IX_COMMIT_HAS_FEATURES ? sf_get_u64(c + 48) : 0;
    if (memcmp(c, IX_COMMIT_MAGIC, 8) != 0 || sf_get_u64(c + 8) != idx->generation ||
        (cflags & ~(IX_COMMIT_HAS_IDF | IX_COMMIT_HAS_FEATURES)) != 0 ||
        ((cflags & IX_COMMIT_HAS_IDF) != 0) != (idx->params.asmk.use_idf != 0) ||
        path_len > IX_MAX_PATH)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: commit record: bad header", name);
    /* The exact size, each count bounded by the record before multiplying. */
    uint64_t need = IX_COMMIT_FIXED + ((path_len + 7u) & ~7u);
    if (need > csize || n_segments > (csize - need) / IX_SEG_ENTRY)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: commit record: %llu segments do not fit",
                            name, (unsigned long long)n_segments);
    uint64_t seg_at = need;
    need += n_segments * IX_SEG_ENTRY;
    if (idx->n_slots > (csize - need) / 8 || idx->n_live > idx->n_slots)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: commit record: %llu images do not fit",
                            name, (unsigned long long)idx->n_slots);
    uint64_t live_at = need;
    need += (idx->n_slots + 63) / 64 * 8;
    uint64_t norm_at = need;
    need += idx->n_slots * 8;
    uint64_t idf_at = need;
    if (cflags & IX_COMMIT_HAS_IDF)
        need += (idx->codebook.k * 4 + 7) & ~UINT64_C(7);
    if (need != csize)
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: commit record: %llu bytes, its contents need %llu", name,
                            (unsigned long long)csize, (unsigned long long)need);

    idx->codebook_path = malloc((size_t)path_len + 1);
    if (!idx->codebook_path)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    memcpy(idx->codebook_path, c + IX_COMMIT_FIXED, path_len);
    idx->codebook_path[path_len] = '\0';
    if (strlen(idx->codebook_path) != path_len)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: commit record: codebook path holds a NUL",
                            name);

    idx->n_segments = (size_t)n_segments;
    idx->segs = calloc(n_segments ? n_segments : 1, sizeof *idx->segs);
    if (!idx->segs)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for %llu segments", name,
                            (unsigned long long)n_segments);
    uint64_t slots = 0;
    for (size_t i = 0; i < idx->n_segments; i++) {
        st = parse_segment(idx, i, c + seg_at + i * IX_SEG_ENTRY, &slots, err);
        /* Layout 1 has no checksums that readers can check piece by piece:
         * all of it is checked before anything trusts it. */
        if (st == SF_OK && idx->segs[i].version < 2)
            st = segment_checksum(idx, i, err);
        if (st != SF_OK)
            return st;
    }
    if (slots != idx->n_slots)
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: commit record: %llu images, its segments hold %llu", name,
                            (unsigned long long)idx->n_slots, (unsigned long long)slots);

    idx->live = (const uint64_t *)(const void *)(c + live_at);
    uint64_t n_words = (idx->n_slots + 63) / 64, count = 0;
    for (uint64_t i = 0; i < n_words; i++)
        count += (uint64_t)__builtin_popcountll(idx->live[i]);
    if (idx->n_slots % 64 && (idx->live[n_words - 1] >> (idx->n_slots % 64)) != 0)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: commit record: stray live bits", name);
    if (count != idx->n_live)
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: commit record: %llu live images, the bitmap has %llu", name,
                            (unsigned long long)idx->n_live, (unsigned long long)count);
    idx->norm = (const double *)(const void *)(c + norm_at);
    idx->idf = (cflags & IX_COMMIT_HAS_IDF) ? (const float *)(const void *)(c + idf_at) : NULL;
    idx->norm_sqrt = malloc(((size_t)idx->n_slots + 1) * sizeof *idx->norm_sqrt);
    if (!idx->norm_sqrt)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for %llu images", name,
                            (unsigned long long)idx->n_slots);
    for (uint64_t i = 0; i < idx->n_slots; i++)
        idx->norm_sqrt[i] = sqrt(idx->norm[i]);
    idx->norm_sqrt[idx->n_slots] = 1.0;
    return SF_OK;
}

void ix_release(sf_index *idx)
{
    if (idx->map)
        munmap(idx->map, idx->map_size);
    free(idx->copy);
    free(idx->name);
    free(idx->codebook_path);
    free(idx->segs);
    free(idx->norm_sqrt);
    memset(idx, 0, sizeof *idx);
}

/* ---- Opening ---- */

static sf_status new_index(const char *name, sf_index **out, sf_error *err)
{
    sf_index *idx = calloc(1, sizeof *idx);
    if (idx)
        idx->name = strdup(name);
    if (!idx || !idx->name) {
        free(idx);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    }
    *out = idx;
    return SF_OK;
}

sf_status sf_index_open(const char *path, sf_index **out, sf_error *err)
{
    *out = NULL;
    sf_index *idx;
    sf_status st = new_index(path, &idx, err);
    if (st != SF_OK)
        return st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        sf_index_close(idx);
        return sf_error_set(err, e == ENOENT ? SF_ERR_NOT_FOUND : SF_ERR_IO, "%s: %s", path,
                            strerror(e));
    }
    /* A writer rewrites one slot while we read: a torn read fails its
     * checksum and the other slot is used; should both look torn (a
     * reader slow enough to span two commits), read again.  A slot that
     * still looks torn after a few reads is damaged (sf_index_check_slots). */
    unsigned char head[IX_DATA_START];
    uint64_t end = 0;
    struct stat sb;
    for (int attempt = 0;; attempt++) {
        ssize_t n = pread(fd, head, sizeof head, 0);
        if (fstat(fd, &sb) != 0 || n < 0) {
            st = sf_error_set(err, SF_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if ((size_t)n < sizeof head) {
            st = sf_error_set(err, SF_ERR_TRUNCATED, "%s: %zd bytes, too short for an index",
                              path, n);
            break;
        }
        ix_slot_pick pick;
        st = ix_parse_header(idx, head, err);
        if (st == SF_OK)
            st = ix_pick_slot(idx, head, (uint64_t)sb.st_size, &pick, err);
        if (st == SF_OK)
            end = pick.offset + pick.size;
        if ((st == SF_OK && pick.damaged < 0) || (st != SF_OK && st != SF_ERR_FORMAT) ||
            attempt == 3)
            break;
        usleep(1000);
    }
    if (st == SF_OK && end > SIZE_MAX)
        st = sf_error_set(err, SF_ERR_TOO_LARGE, "%s: too large to map", path);
    if (st == SF_OK) {
        void *m = mmap(NULL, (size_t)end, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            st = sf_error_set(err, SF_ERR_IO, "%s: mmap: %s", path, strerror(errno));
        } else {
            idx->map = m;
            idx->map_size = (size_t)end;
            /* The slots we read, not the mapping's: a writer may have
             * moved them on since.  What they point to never changes. */
            st = ix_parse(idx, m, end, head, err);
            idx->file_size = (uint64_t)sb.st_size;
        }
    }
    close(fd);
    if (st != SF_OK) {
        sf_index_close(idx);
        return st;
    }
    *out = idx;
    return SF_OK;
}

sf_status sf_index_open_memory(const void *data, size_t size, const char *name,
                               sf_index **out, sf_error *err)
{
    *out = NULL;
    sf_index *idx;
    sf_status st = new_index(name, &idx, err);
    if (st != SF_OK)
        return st;
    /* A copy, aligned as a mapping would be. */
    idx->copy = aligned_alloc(IX_ALIGN, ix_align(size ? size : 1));
    if (!idx->copy) {
        sf_index_close(idx);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for %zu bytes", name, size);
    }
    if (size)
        memcpy(idx->copy, data, size);
    st = ix_parse(idx, idx->copy, size, NULL, err);
    if (st != SF_OK) {
        sf_index_close(idx);
        return st;
    }
    *out = idx;
    return SF_OK;
}

void sf_index_close(sf_index *index)
{
    if (!index)
        return;
    ix_release(index);
    free(index);
}

/* ---- Accessors ---- */

const sf_index_params *sf_index_get_params(const sf_index *index) { return &index->params; }
void sf_index_get_codebook(const sf_index *index, sf_index_codebook_id *out)
{
    *out = index->codebook;
}
const char *sf_index_codebook_path(const sf_index *index) { return index->codebook_path; }
size_t sf_index_n_ids(const sf_index *index) { return (size_t)index->n_slots; }
size_t sf_index_n_images(const sf_index *index) { return (size_t)index->n_live; }

int sf_index_is_live(const sf_index *index, size_t id)
{
    return id < index->n_slots && ix_live(index->live, id);
}

sf_status sf_index_check_codebook(const sf_index *index, const sf_index_codebook_id *cb,
                                  sf_error *err)
{
    const sf_index_codebook_id *own = &index->codebook;
    if (cb->k == own->k && cb->dim == own->dim && cb->checksum == own->checksum)
        return SF_OK;
    return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                        "%s: built with another codebook (%llu x %llu, checksum %016llx; "
                        "given %llu x %llu, checksum %016llx)",
                        index->name, (unsigned long long)own->k, (unsigned long long)own->dim,
                        (unsigned long long)own->checksum, (unsigned long long)cb->k,
                        (unsigned long long)cb->dim, (unsigned long long)cb->checksum);
}

sf_status ix_word_range(const sf_index *idx, const ix_segment *s, uint64_t w, uint64_t *first,
                        uint64_t *end, sf_error *err)
{
    uint64_t a = ix_dir_start(s, w), b = ix_dir_start(s, w + 1);
    if (a > b || b > s->n_entries)
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: segment at byte %llu: list of word %llu is out of bounds",
                            idx->name, (unsigned long long)s->offset, (unsigned long long)w);
    *first = a;
    *end = b;
    return SF_OK;
}

static uint64_t ids_sum_generic(const uint32_t *ids, uint64_t e0, uint64_t e1)
{
    uint64_t sum = 0;
    for (uint64_t e = e0; e < e1; e++)
        sum += ids[e] * ix_weight(e);
    return sum;
}

static uint64_t entries_sum_generic(const uint32_t *ids, const unsigned char *vecs, uint64_t e0,
                                    uint64_t e1, uint64_t vec_bytes)
{
    uint64_t sum = 0;
    if (vec_bytes == 16)
        for (uint64_t e = e0; e < e1; e++) {
            uint64_t v[2];
            memcpy(v, vecs + 16 * e, 16);
            sum += (ids[e] + v[0] + v[1]) * ix_weight(e);
        }
    else
        for (uint64_t e = e0; e < e1; e++)
            sum += (ids[e] + ix_vec_value(vecs + vec_bytes * e, vec_bytes)) * ix_weight(e);
    return sum;
}

#if defined(__x86_64__)
/* Eight entries at a time with AVX-512 (vpmullq: 64-bit products). */
#define AVX512 __attribute__((target("avx512f,avx512dq")))

/* The lanes added modulo 2^64 (_mm512_reduce_add_epi64 adds them as
 * signed values: overflow is undefined there). */
AVX512 static uint64_t lanes_sum(__m512i acc)
{
    uint64_t lane[8], sum = 0;
    _mm512_storeu_si512((void *)lane, acc);
    for (int i = 0; i < 8; i++)
        sum += lane[i];
    return sum;
}

AVX512 static uint64_t ids_sum_avx512(const uint32_t *ids, uint64_t e0, uint64_t e1)
{
    uint64_t e = e0;
    __m512i acc = _mm512_setzero_si512();
    __m512i w = _mm512_set_epi64((long long)ix_weight(e + 7), (long long)ix_weight(e + 6),
                                 (long long)ix_weight(e + 5), (long long)ix_weight(e + 4),
                                 (long long)ix_weight(e + 3), (long long)ix_weight(e + 2),
                                 (long long)ix_weight(e + 1), (long long)ix_weight(e));
    const __m512i step = _mm512_set1_epi64(16);
    for (; e + 8 <= e1; e += 8) {
        __m512i x = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i *)(const void *)(ids + e)));
        acc = _mm512_add_epi64(acc, _mm512_mullo_epi64(x, w));
        w = _mm512_add_epi64(w, step);
    }
    return lanes_sum(acc) + ids_sum_generic(ids, e, e1);
}

/* Both at once for 16-byte vectors: the ids permuted into the vectors'
 * lane order. */
AVX512 static uint64_t entries_sum_avx512(const uint32_t *ids, const unsigned char *vecs,
                                          uint64_t e0, uint64_t e1, uint64_t vec_bytes)
{
    if (vec_bytes != 16)
        return entries_sum_generic(ids, vecs, e0, e1, vec_bytes);
    uint64_t e = e0;
    __m512i acc = _mm512_setzero_si512();
    __m512i w = _mm512_set_epi64((long long)ix_weight(e + 7), (long long)ix_weight(e + 3),
                                 (long long)ix_weight(e + 6), (long long)ix_weight(e + 2),
                                 (long long)ix_weight(e + 5), (long long)ix_weight(e + 1),
                                 (long long)ix_weight(e + 4), (long long)ix_weight(e));
    const __m512i step = _mm512_set1_epi64(16);
    const __m512i order = _mm512_set_epi64(7, 3, 6, 2, 5, 1, 4, 0);
    for (; e + 8 <= e1; e += 8) {
        __m512i a = _mm512_loadu_si512((const void *)(vecs + 16 * e));
        __m512i b = _mm512_loadu_si512((const void *)(vecs + 16 * e + 64));
        __m512i id = _mm512_permutexvar_epi64(
            order, _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i *)(const void *)(ids + e))));
        __m512i x = _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
        acc = _mm512_add_epi64(acc, _mm512_mullo_epi64(_mm512_add_epi64(x, id), w));
        w = _mm512_add_epi64(w, step);
    }
    return lanes_sum(acc) + entries_sum_generic(ids, vecs, e, e1, 16);
}
#endif

typedef struct sum_impl {
    uint64_t (*ids)(const uint32_t *, uint64_t, uint64_t);
    uint64_t (*entries)(const uint32_t *, const unsigned char *, uint64_t, uint64_t, uint64_t);
} sum_impl;

static const sum_impl *pick_sums(void)
{
    static const sum_impl generic = { ids_sum_generic, entries_sum_generic };
#if defined(__x86_64__)
    static const sum_impl avx512 = { ids_sum_avx512, entries_sum_avx512 };
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return &avx512;
#endif
    return &generic;
}

static const sum_impl *sums_impl(void)
{
    static const sum_impl *impl;
    const sum_impl *p = __atomic_load_n(&impl, __ATOMIC_ACQUIRE);
    if (!p) {
        p = pick_sums(); /* the same answer in every thread */
        __atomic_store_n(&impl, p, __ATOMIC_RELEASE);
    }
    return p;
}

uint64_t ix_ids_sum_of(const uint32_t *ids, uint64_t e0, uint64_t e1)
{
    return sums_impl()->ids(ids, e0, e1);
}

uint64_t ix_entries_sum_of(const uint32_t *ids, const unsigned char *vecs, uint64_t e0,
                           uint64_t e1, uint64_t vec_bytes)
{
    return sums_impl()->entries(ids, vecs, e0, e1, vec_bytes);
}

sf_status ix_list_mismatch(const sf_index *idx, const ix_segment *s, uint64_t w, sf_error *err)
{
    return sf_error_set(err, SF_ERR_CHECKSUM,
                        "%s: segment at byte %llu: the list of word %llu does not match its "
                        "checksum (the index is damaged)",
                        idx->name, (unsigned long long)s->offset, (unsigned long long)w);
}

sf_status ix_check_list(const sf_index *idx, const ix_segment *s, uint64_t w, int vectors,
                        sf_error *err)
{
    if (s->version < 2)
        return SF_OK;
    uint64_t a, b;
    sf_status st = ix_word_range(idx, s, w, &a, &b, err);
    if (st != SF_OK)
        return st;
    /* With the ids right, the vectors' sum is the entries' less the ids'. */
    const uint64_t id_sum = ix_dir_id_sum(s, w);
    if (ix_ids_sum(s, a, b) != id_sum ||
        (vectors && ix_entries_sum_of(s->ids, s->vecs, a, b, idx->vec_bytes) !=
                        id_sum + ix_dir_vec_sum(s, w)))
        return ix_list_mismatch(idx, s, w, err);
    return SF_OK;
}

sf_status ix_check_table(const sf_index *idx, const ix_segment *s, sf_error *err)
{
    if (s->version < 2 || __atomic_load_n(&s->table_checked, __ATOMIC_ACQUIRE))
        return SF_OK;
    uint64_t from = (uint64_t)(s->images - s->base);
    uint64_t to = (uint64_t)((const unsigned char *)s->ids - s->base);
    if (XXH64(s->images, (size_t)(to - from), 0) != s->table_sum)
        return sf_error_set(err, SF_ERR_CHECKSUM,
                            "%s: segment at byte %llu: its image table does not match its "
                            "checksum (the index is damaged)",
                            idx->name, (unsigned long long)s->offset);
    /* Lazily set on a const index: the flag belongs to this process's
     * view, not to the file, and checking twice is harmless. */
    __atomic_store_n((int *)&s->table_checked, 1, __ATOMIC_RELEASE);
    return SF_OK;
}

sf_status ix_check_global(const sf_index *idx, const ix_segment *s, sf_error *err)
{
    if (!s->global || __atomic_load_n(&s->global_checked, __ATOMIC_ACQUIRE))
        return SF_OK;
    const unsigned char *g = (const unsigned char *)s->global;
    if (XXH64(g, (size_t)(s->size - (uint64_t)(g - s->base)), 0) != s->global_sum)
        return sf_error_set(err, SF_ERR_CHECKSUM,
                            "%s: segment at byte %llu: its global descriptors do not match "
                            "their checksum (the index is damaged)",
                            idx->name, (unsigned long long)s->offset);
    __atomic_store_n((int *)&s->global_checked, 1, __ATOMIC_RELEASE);
    return SF_OK;
}

const ix_segment *ix_segment_of(const sf_index *idx, uint64_t id)
{
    size_t lo = 0, hi = idx->n_segments;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (idx->segs[mid].slot_base <= id)
            lo = mid;
        else
            hi = mid;
    }
    /* Empty segments share their base with the next one. */
    while (lo < idx->n_segments && id >= idx->segs[lo].slot_base + idx->segs[lo].n_images)
        lo++;
    return lo < idx->n_segments ? &idx->segs[lo] : NULL;
}

sf_status ix_image_entry(const sf_index *idx, const ix_segment *s, uint64_t local,
                         const char **key, uint32_t *key_len, uint32_t *n_vectors,
                         sf_error *err)
{
    sf_status st = ix_check_table(idx, s, err);
    if (st != SF_OK)
        return st;
    const unsigned char *p = s->images + local * IX_IMAGE_ENTRY;
    uint64_t off = sf_get_u64(p);
    uint32_t len = sf_get_u32(p + 8);
    if (len == 0 || len > IX_MAX_KEY || off > s->keys_bytes || len > s->keys_bytes - off)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: image %llu: key out of bounds", idx->name,
                            (unsigned long long)(s->slot_base + local));
    *key = s->keys + off;
    *key_len = len;
    *n_vectors = sf_get_u32(p + 12);
    return SF_OK;
}

sf_status sf_index_get_image(const sf_index *index, size_t id, sf_index_image *out,
                             sf_error *err)
{
    if (id >= index->n_slots)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: image id %zu outside 0..%llu",
                            index->name, id, (unsigned long long)index->n_slots);
    const ix_segment *s = ix_segment_of(index, id);
    if (!s)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: image %zu has no segment", index->name, id);
    const char *key;
    uint32_t len, nv;
    sf_status st = ix_image_entry(index, s, id - s->slot_base, &key, &len, &nv, err);
    if (st != SF_OK)
        return st;
    out->key = key;
    out->key_len = len;
    out->n_vectors = nv;
    out->norm = index->norm[id];
    out->live = ix_live(index->live, id);
    return SF_OK;
}

sf_status sf_index_find(const sf_index *index, const char *key, size_t *id, sf_error *err)
{
    size_t len = strlen(key);
    for (size_t i = 0; i < index->n_segments; i++) {
        const ix_segment *s = &index->segs[i];
        for (uint64_t j = 0; j < s->n_images; j++) {
            if (!ix_live(index->live, s->slot_base + j))
                continue;
            const char *k;
            uint32_t kl, nv;
            sf_status st = ix_image_entry(index, s, j, &k, &kl, &nv, err);
            if (st != SF_OK)
                return st;
            if (kl == len && memcmp(k, key, len) == 0) {
                *id = (size_t)(s->slot_base + j);
                return SF_OK;
            }
        }
    }
    return sf_error_set(err, SF_ERR_NOT_FOUND, "%s: no image '%s'", index->name, key);
}

sf_status sf_index_get_info(const sf_index *index, sf_index_info *out, sf_error *err)
{
    memset(out, 0, sizeof *out);
    out->generation = index->generation;
    out->n_segments = index->n_segments;
    out->n_ids = (size_t)index->n_slots;
    out->n_images = (size_t)index->n_live;
    out->bytes = index->commit_offset + index->commit_size;
    for (size_t i = 0; i < index->n_segments; i++) {
        const ix_segment *s = &index->segs[i];
        sf_status st = ix_check_table(index, s, err);
        if (st != SF_OK)
            return st;
        out->n_entries += s->n_entries;
        for (uint64_t j = 0; j < s->n_images; j++) {
            if (!ix_live(index->live, s->slot_base + j))
                continue;
            out->n_vectors += sf_get_u32(s->images + j * IX_IMAGE_ENTRY + 12);
        }
    }
    /* Without segments nothing k-sized was read from the file. */
    const uint64_t words = index->n_segments ? index->codebook.k : 0;
    for (uint64_t w = 0; w < words; w++) {
        for (size_t i = 0; i < index->n_segments; i++) {
            uint64_t a, b;
            sf_status st = ix_word_range(index, &index->segs[i], w, &a, &b, err);
            if (st != SF_OK)
                return st;
            if (b > a) {
                out->words_used++;
                break;
            }
        }
    }
    return SF_OK;
}

/* ---- Full check ---- */

static int key_cmp(const void *a, const void *b)
{
    const sf_index_image *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static sf_status verify_segment(const sf_index *idx, size_t i, uint32_t *counts, sf_error *err)
{
    const ix_segment *s = &idx->segs[i];
    /* The whole checksum first, then what readers check piece by piece
     * (the table, each list's sums): a file that passes here passes there. */
    sf_status st0 = segment_checksum(idx, i, err);
    if (st0 == SF_OK)
        st0 = ix_check_table(idx, s, err);
    if (st0 == SF_OK)
        st0 = ix_check_global(idx, s, err);
    if (st0 != SF_OK)
        return st0;
    if (ix_dir_start(s, 0) != 0 || ix_dir_start(s, idx->codebook.k) != s->n_entries ||
        (s->version >= 2 &&
         (ix_dir_id_sum(s, idx->codebook.k) != 0 || ix_dir_vec_sum(s, idx->codebook.k) != 0)))
        return sf_error_set(err, SF_ERR_FORMAT, "%s: segment %zu: directory does not cover the "
                            "lists", idx->name, i);
    memset(counts, 0, (size_t)s->n_images * sizeof *counts);
    for (uint64_t w = 0; w < idx->codebook.k; w++) {
        uint64_t a, b;
        sf_status st = ix_word_range(idx, s, w, &a, &b, err);
        if (st == SF_OK)
            st = ix_check_list(idx, s, w, 1, err);
        if (st != SF_OK)
            return st;
        for (uint64_t e = a; e < b; e++) {
            uint32_t id = s->ids[e];
            if (id >= s->n_images || (e > a && id <= s->ids[e - 1]))
                return sf_error_set(err, SF_ERR_FORMAT,
                                    "%s: segment %zu: word %llu: image ids not ascending or "
                                    "out of range", idx->name, i, (unsigned long long)w);
            counts[id]++;
        }
    }
    for (uint64_t j = 0; j < s->n_images; j++) {
        const char *key;
        uint32_t len, nv;
        sf_status st = ix_image_entry(idx, s, j, &key, &len, &nv, err);
        if (st != SF_OK)
            return st;
        if (memchr(key, '\0', len))
            return sf_error_set(err, SF_ERR_FORMAT, "%s: image %llu: key holds a NUL",
                                idx->name, (unsigned long long)(s->slot_base + j));
        if (nv != counts[j])
            return sf_error_set(err, SF_ERR_FORMAT,
                                "%s: image %llu: %lu vectors listed, %lu in the lists",
                                idx->name, (unsigned long long)(s->slot_base + j),
                                (unsigned long)nv, (unsigned long)counts[j]);
    }
    return SF_OK;
}

/* Recompute idf and norms from the lists exactly as a commit does.  Only
 * the norms are kept: the file need not hold anything k-sized. */
static sf_status verify_norms(const sf_index *idx, sf_error *err)
{
    /* Words to visit: none when there are neither lists nor idf. */
    const uint64_t k = idx->n_segments || idx->idf ? idx->codebook.k : 0;
    double *norm = calloc((size_t)idx->n_slots + 1, sizeof *norm);
    sf_status st = SF_OK;
    if (!norm)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", idx->name);
    for (uint64_t w = 0; w < k && st == SF_OK; w++) {
        uint64_t count = 0;
        for (size_t i = 0; i < idx->n_segments && st == SF_OK; i++) {
            const ix_segment *s = &idx->segs[i];
            uint64_t a, b;
            st = ix_word_range(idx, s, w, &a, &b, err);
            for (uint64_t e = a; st == SF_OK && e < b; e++)
                count += (uint64_t)ix_live(idx->live, s->slot_base + s->ids[e]);
        }
        const float idf = idx->params.asmk.use_idf ? ix_idf(idx->n_live, count) : 1.0f;
        if (st == SF_OK && idx->idf && memcmp(&idf, &idx->idf[w], sizeof(float)) != 0)
            st = sf_error_set(err, SF_ERR_FORMAT, "%s: idf of word %llu is %g, its lists give %g",
                              idx->name, (unsigned long long)w, (double)idx->idf[w],
                              (double)idf);
        double add = idx->params.asmk.use_idf ? (double)idf : 1.0;
        for (size_t i = 0; i < idx->n_segments && st == SF_OK; i++) {
            const ix_segment *s = &idx->segs[i];
            uint64_t a, b;
            st = ix_word_range(idx, s, w, &a, &b, err);
            for (uint64_t e = a; st == SF_OK && e < b; e++)
                norm[s->slot_base + s->ids[e]] += add;
        }
    }
    for (uint64_t m = 0; st == SF_OK && m < idx->n_slots; m++)
        if (ix_live(idx->live, m) && memcmp(&norm[m], &idx->norm[m], sizeof(double)) != 0)
            st = sf_error_set(err, SF_ERR_FORMAT, "%s: image %llu: norm %.17g, its lists give "
                              "%.17g", idx->name, (unsigned long long)m, idx->norm[m], norm[m]);
    free(norm);
    return st;
}

sf_status sf_index_check_slots(const sf_index *index, sf_index_slot_state *state,
                               sf_error *err)
{
    sf_index_slot_state s = { .damaged = index->damaged_slot };
    /* Commits are appended: a newer one than that in use lies past its end. */
    s.newer_lost = s.damaged >= 0 &&
                   index->file_size > index->commit_offset + index->commit_size;
    if (s.newer_lost && index->damaged_generation == index->generation + 1)
        s.lost_generation = index->damaged_generation;
    if (state)
        *state = s;
    if (s.damaged < 0)
        return SF_OK;
    if (!s.newer_lost)
        return sf_error_set(err, SF_ERR_CHECKSUM,
                            "%s: commit slot %d is damaged (it held no commit newer than "
                            "generation %llu, the one in use; the next writer clears it)",
                            index->name, s.damaged, (unsigned long long)index->generation);
    char lost[48] = "";
    if (s.lost_generation)
        snprintf(lost, sizeof lost, " (generation %llu?)", (unsigned long long)s.lost_generation);
    return sf_error_set(err, SF_ERR_CHECKSUM,
                        "%s: commit slot %d is damaged: the index is at generation %llu, a "
                        "newer commit%s was lost or never completed", index->name, s.damaged,
                        (unsigned long long)index->generation, lost);
}

sf_status sf_index_verify(const sf_index *index, sf_error *err)
{
    sf_status slots = sf_index_check_slots(index, NULL, err);
    if (slots != SF_OK)
        return slots;
    uint64_t most = 1;
    for (size_t i = 0; i < index->n_segments; i++)
        if (index->segs[i].n_images > most)
            most = index->segs[i].n_images;
    uint32_t *counts = malloc((size_t)most * sizeof *counts);
    sf_index_image *live = malloc(((size_t)index->n_live + 1) * sizeof *live);
    if (!counts || !live) {
        free(counts);
        free(live);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", index->name);
    }
    sf_status st = SF_OK;
    for (size_t i = 0; i < index->n_segments && st == SF_OK; i++)
        st = verify_segment(index, i, counts, err);
    size_t n = 0;
    for (uint64_t m = 0; st == SF_OK && m < index->n_slots; m++)
        if (ix_live(index->live, m))
            st = sf_index_get_image(index, (size_t)m, &live[n++], err);
    if (st == SF_OK) {
        qsort(live, n, sizeof *live, key_cmp);
        for (size_t i = 1; i < n && st == SF_OK; i++)
            if (key_cmp(&live[i - 1], &live[i]) == 0)
                st = sf_error_set(err, SF_ERR_FORMAT, "%s: key " SF_KEY_FMT " is live twice",
                                  index->name, SF_KEY_ARGS(live[i].key, live[i].key_len));
    }
    if (st == SF_OK)
        st = verify_norms(index, err);
    free(counts);
    free(live);
    return st;
}

uint64_t sf_index_features(const sf_index *idx)
{
    return idx->features;
}
