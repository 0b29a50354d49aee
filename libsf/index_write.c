/* Creating and updating an ASMK index file (man/sf-index.5).
 *
 * Commit protocol: new segments and a new commit record are appended past
 * the end of the last commit and fdatasync'ed; only then is the commit
 * slot that does not hold the current commit overwritten (64 bytes with
 * their own checksum) and synced.  Until that write is complete the old
 * slot is the newest valid one, so a writer killed at any point leaves the
 * previous commit in force; the bytes it appended are cut off by the next
 * writer.  Compaction writes a whole new file and renames it over the
 * index.  Writers exclude each other with flock on the index file. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "index_internal.h"

#define DEFAULT_STAGE_BYTES ((size_t)256 << 20)
#define WRITE_BUFFER (1u << 20)

/* Test hook: with SF_INDEX_TEST_CRASH=N in the environment the writer
 * _exit()s at point N of the commit sequence (tests/test_index.c kills it
 * at every point and checks what a reader then sees).  Points:
 *   1 commit starts                       2 segment half written
 *   3 segments written, not synced        4 commit record half written
 *   5 commit record written, not synced   6 synced, slot not yet written
 *   7 slot half written (torn)            8 slot written, not synced
 *   9 commit complete
 *  11 compact: new file half written     12 new file written, not synced
 *  13 synced, not renamed                14 renamed, directory not synced
 *  15 segment written up to its global part */
static int crash_wanted(int point)
{
    const char *e = getenv("SF_INDEX_TEST_CRASH");
    return e && atoi(e) == point;
}

static void crash_point(int point)
{
    if (crash_wanted(point))
        _exit(86);
}

/* Test hook: with SF_INDEX_TEST_FAIL=N the sync that follows crash point N
 * (5, 8, 12 or 14) fails with EIO instead of running, as a disk error
 * would make it. */
static int sync_fails(int point)
{
    const char *e = getenv("SF_INDEX_TEST_FAIL");
    if (!e || atoi(e) != point)
        return 0;
    errno = EIO;
    return 1;
}

/* ---- Low-level output ---- */

static sf_status pwrite_all(int fd, const void *buf, size_t n, uint64_t off, const char *name,
                            sf_error *err)
{
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return sf_error_set(err, SF_ERR_IO, "%s: write at byte %llu: %s", name,
                                (unsigned long long)off, k < 0 ? strerror(errno) : "no progress");
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return SF_OK;
}

/* point: the crash point it follows, for sync_fails (0: none). */
static sf_status sync_fd(int fd, const char *name, int point, sf_error *err)
{
    if (sync_fails(point) || fdatasync(fd) != 0)
        return sf_error_set(err, SF_ERR_IO, "%s: fdatasync: %s", name, strerror(errno));
    return SF_OK;
}

/* Make a rename or link in the directory of path durable. */
static sf_status sync_dir(const char *path, int point, sf_error *err)
{
    char *dir = strdup(path);
    if (!dir)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    sf_status st = SF_OK;
    if (fd < 0 || sync_fails(point) || fsync(fd) != 0)
        st = sf_error_set(err, SF_ERR_IO, "%s: fsync of the directory: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return st;
}

/* Buffered sequential writer that hashes what it writes. */
typedef struct bw {
    int fd;
    const char *name;
    uint64_t pos; /* file offset of buf[0] */
    unsigned char *buf;
    size_t len;
    XXH64_state_t hash;
    sf_status st;
    sf_error *err;
} bw;

static void bw_init(bw *b, int fd, const char *name, uint64_t pos, unsigned char *buf,
                    sf_error *err)
{
    b->fd = fd;
    b->name = name;
    b->pos = pos;
    b->buf = buf;
    b->len = 0;
    b->st = SF_OK;
    b->err = err;
    XXH64_reset(&b->hash, 0);
}

static void bw_flush(bw *b)
{
    if (b->st == SF_OK && b->len)
        b->st = pwrite_all(b->fd, b->buf, b->len, b->pos, b->name, b->err);
    b->pos += b->len;
    b->len = 0;
}

static void bw_write(bw *b, const void *data, size_t n)
{
    const unsigned char *p = data;
    XXH64_update(&b->hash, p, n);
    while (n > 0) {
        size_t room = WRITE_BUFFER - b->len, c = n < room ? n : room;
        memcpy(b->buf + b->len, p, c);
        b->len += c;
        p += c;
        n -= c;
        if (b->len == WRITE_BUFFER)
            bw_flush(b);
    }
}

static void bw_u64(bw *b, uint64_t v)
{
    unsigned char t[8];
    sf_put_u64(t, v);
    bw_write(b, t, 8);
}

/* Zeros up to the next IX_ALIGN boundary of the file. */
static void bw_pad(bw *b)
{
    static const unsigned char zero[IX_ALIGN];
    uint64_t at = b->pos + b->len;
    bw_write(b, zero, (size_t)(ix_align(at) - at));
}

static void image_entry(unsigned char *t, uint64_t key_off, uint32_t key_len, uint32_t n_vectors)
{
    sf_put_u64(t, key_off);
    sf_put_u32(t + 8, key_len);
    sf_put_u32(t + 12, n_vectors);
}

/* What a segment's header carries besides its sizes: the list directory
 * start[0 .. k] (the entry count is start[k]), each list's sums and the
 * checksum of its image table; man sf-index(5). */
typedef struct seg_sums {
    uint64_t *id, *vec; /* k each */
    XXH64_state_t table; /* fed with the image table and keys as stored */
    uint64_t table_bytes;
} seg_sums;

static int seg_sums_init(seg_sums *x, uint64_t k)
{
    x->id = calloc((size_t)k + 1, sizeof *x->id);
    x->vec = calloc((size_t)k + 1, sizeof *x->vec);
    XXH64_reset(&x->table, 0);
    x->table_bytes = 0;
    return x->id && x->vec;
}

static void seg_sums_free(seg_sums *x)
{
    free(x->id);
    free(x->vec);
}

static void seg_sums_table(seg_sums *x, const void *data, size_t n)
{
    XXH64_update(&x->table, data, n);
    x->table_bytes += n;
}

/* The zeros that pad the table part up to IX_ALIGN (it starts aligned). */
static void seg_sums_table_pad(seg_sums *x)
{
    static const unsigned char zero[IX_ALIGN];
    seg_sums_table(x, zero, (size_t)(ix_align(x->table_bytes) - x->table_bytes));
}

/* Entry e of a list of word w, as stored. */
static inline void seg_sums_entry(seg_sums *x, uint64_t w, uint64_t e, uint32_t id,
                                  const unsigned char *vec, uint64_t vb)
{
    x->id[w] += id * ix_weight(e);
    x->vec[w] += ix_vec_value(vec, vb) * ix_weight(e);
}

/* gdim 0: layout 2, no global part; else layout 3 with the global part's
 * checksum gsum. */
static void bw_segment_head(bw *b, uint64_t n_img, uint64_t keys_bytes, uint64_t k, size_t vb,
                            const uint64_t *start, seg_sums *sums, uint64_t gdim, uint64_t gsum)
{
    unsigned char h[IX_SEG_HEADER];
    memset(h, 0, sizeof h);
    memcpy(h, gdim ? IX_SEG_MAGIC_V3 : IX_SEG_MAGIC, 8);
    if (gdim) {
        sf_put_u32(h + 52, (uint32_t)gdim);
        sf_put_u64(h + 56, gsum);
    }
    sf_put_u64(h + 8, n_img);
    sf_put_u64(h + 16, start[k]);
    sf_put_u64(h + 24, keys_bytes);
    sf_put_u64(h + 32, k);
    sf_put_u32(h + 40, (uint32_t)vb);
    sf_put_u64(h + 44, XXH64_digest(&sums->table));
    bw_write(b, h, sizeof h);
    for (uint64_t x = 0; x <= k; x++) { /* the sums of entry k are 0 (calloc) */
        bw_u64(b, start[x]);
        bw_u64(b, sums->id[x]);
        bw_u64(b, sums->vec[x]);
    }
    bw_pad(b);
}

/* Digest of what was written since the last call; starts a new part. */
static uint64_t bw_part(bw *b)
{
    uint64_t h = XXH64_digest(&b->hash);
    XXH64_reset(&b->hash, 0);
    return h;
}

/* ---- Header, slot, commit record ---- */

static void build_header(unsigned char *h, const sf_index_params *p,
                         const sf_index_codebook_id *cb, uint32_t vec_bytes)
{
    memset(h, 0, IX_HEADER_SIZE);
    memcpy(h, IX_MAGIC, 8);
    sf_put_u32(h + 8, IX_VERSION);
    sf_put_u32(h + 12, IX_HEADER_SIZE);
    sf_put_u32(h + 16, (p->asmk.binary ? IX_FLAG_BINARY : 0) | (p->asmk.use_idf ? IX_FLAG_IDF : 0));
    sf_put_u32(h + 20, (uint32_t)p->ma_database);
    uint32_t bits;
    memcpy(&bits, &p->asmk.alpha, 4);
    sf_put_u32(h + 24, bits);
    memcpy(&bits, &p->asmk.similarity_threshold, 4);
    sf_put_u32(h + 28, bits);
    sf_put_u64(h + 32, cb->k);
    sf_put_u32(h + 40, (uint32_t)cb->dim);
    sf_put_u32(h + 44, vec_bytes);
    sf_put_u64(h + 48, cb->checksum);
    sf_put_u64(h + 56, IX_DATA_START);
    sf_put_u64(h + IX_HEADER_SIZE - 8, XXH64(h, IX_HEADER_SIZE - 8, 0));
}

static void build_slot(unsigned char *s, uint64_t generation, uint64_t offset, uint64_t size,
                       uint64_t checksum)
{
    memset(s, 0, IX_SLOT_SIZE);
    memcpy(s, IX_SLOT_MAGIC, 8);
    sf_put_u64(s + 8, generation);
    sf_put_u64(s + 16, offset);
    sf_put_u64(s + 24, size);
    sf_put_u64(s + 32, checksum);
    sf_put_u64(s + IX_SLOT_SIZE - 8, XXH64(s, IX_SLOT_SIZE - 8, 0));
}

/* The contents of one commit record. */
typedef struct commit_in {
    uint64_t generation;
    const char *path; /* codebook hint */
    const ix_segment *const *segs;
    size_t n_segs;
    uint64_t n_slots, n_live;
    const uint64_t *live;
    const double *norm;
    const float *idf; /* k values, or NULL without idf */
    uint64_t k;
    uint64_t features; /* 0: none recorded */
} commit_in;

/* Serialise a commit record into a new buffer of *size bytes. */
static sf_status build_commit(const commit_in *c, unsigned char **out, uint64_t *size,
                              sf_error *err)
{
    size_t path_len = strlen(c->path);
    size_t live_words = (size_t)((c->n_slots + 63) / 64);
    size_t n = IX_COMMIT_FIXED + ((path_len + 7) & ~(size_t)7) + c->n_segs * IX_SEG_ENTRY +
               live_words * 8 + (size_t)c->n_slots * 8 +
               (c->idf ? ((size_t)c->k * 4 + 7) & ~(size_t)7 : 0);
    unsigned char *b = calloc(1, n);
    if (!b)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory for a %zu-byte commit record", n);
    memcpy(b, IX_COMMIT_MAGIC, 8);
    sf_put_u64(b + 8, c->generation);
    sf_put_u64(b + 16, c->n_segs);
    sf_put_u64(b + 24, c->n_slots);
    sf_put_u64(b + 32, c->n_live);
    sf_put_u32(b + 40, (c->idf ? IX_COMMIT_HAS_IDF : 0) | (c->features ? IX_COMMIT_HAS_FEATURES : 0));
    sf_put_u32(b + 44, (uint32_t)path_len);
    sf_put_u64(b + 48, c->features);
    unsigned char *p = b + IX_COMMIT_FIXED;
    memcpy(p, c->path, path_len);
    p += (path_len + 7) & ~(size_t)7;
    for (size_t i = 0; i < c->n_segs; i++, p += IX_SEG_ENTRY) {
        const ix_segment *s = c->segs[i];
        sf_put_u64(p, s->offset);
        sf_put_u64(p + 8, s->size);
        sf_put_u64(p + 16, s->checksum);
        sf_put_u64(p + 24, s->n_images);
        sf_put_u64(p + 32, s->n_entries);
        sf_put_u64(p + 40, s->slot_base);
    }
    for (size_t i = 0; i < live_words; i++, p += 8)
        sf_put_u64(p, c->live[i]);
    for (uint64_t i = 0; i < c->n_slots; i++, p += 8)
        sf_put_f64(p, c->norm[i]);
    for (uint64_t w = 0; c->idf && w < c->k; w++, p += 4) {
        uint32_t bits;
        memcpy(&bits, &c->idf[w], 4);
        sf_put_u32(p, bits);
    }
    *out = b;
    *size = n;
    return SF_OK;
}

/* ---- Creation ---- */

static sf_status check_params(const char *path, const sf_index_params *p,
                              const sf_index_codebook_id *cb, sf_error *err)
{
    if (cb->k == 0 || cb->k > IX_MAX_WORDS || cb->dim == 0 || cb->dim > 65536)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: codebook of %llu x %llu (at most %d words of 65536 "
                            "dimensions)", path, (unsigned long long)cb->k,
                            (unsigned long long)cb->dim, IX_MAX_WORDS);
    if (p->asmk.binary && cb->dim > 2048)
        return sf_error_set(err, SF_ERR_UNSUPPORTED,
                            "%s: binary vectors of %llu dimensions (at most 2048)", path,
                            (unsigned long long)cb->dim);
    if (p->ma_database < 1 || p->ma_database > 64 || (uint64_t)p->ma_database > cb->k)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: %d nearest words per database descriptor (1..64, at most k)",
                            path, p->ma_database);
    if (!isfinite(p->asmk.alpha) || isnan(p->asmk.similarity_threshold))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: alpha %g and threshold %g must be numbers", path,
                            (double)p->asmk.alpha, (double)p->asmk.similarity_threshold);
    return SF_OK;
}

static uint32_t vec_bytes_of(const sf_index_params *p, uint64_t dim)
{
    return (uint32_t)(p->asmk.binary ? 4 * sf_asmk_packed_size((size_t)dim) : 4 * dim);
}

/* Write a whole index file (header, slot 0 -> commit, one optional
 * segment written by fill) to fd.  Used by create and compact. */
typedef sf_status (*fill_fn)(void *ctx, int fd, uint64_t at, ix_segment *seg, sf_error *err);

static sf_status write_file(int fd, const char *name, const sf_index_params *p,
                            const sf_index_codebook_id *cb, commit_in *c, fill_fn fill,
                            void *ctx, sf_error *err)
{
    unsigned char head[IX_DATA_START];
    memset(head, 0, sizeof head);
    build_header(head, p, cb, vec_bytes_of(p, cb->dim));
    uint64_t end = IX_DATA_START;
    ix_segment seg;
    const ix_segment *segp = &seg;
    memset(&seg, 0, sizeof seg);
    sf_status st = SF_OK;
    if (fill) {
        seg.offset = IX_DATA_START;
        seg.slot_base = 0;
        st = fill(ctx, fd, IX_DATA_START, &seg, err);
        end = ix_align(seg.offset + seg.size);
        c->segs = &segp;
        c->n_segs = seg.n_images ? 1 : 0;
        if (!seg.n_images)
            end = IX_DATA_START;
    }
    unsigned char *rec = NULL;
    uint64_t rec_size = 0;
    if (st == SF_OK)
        st = build_commit(c, &rec, &rec_size, err);
    if (st == SF_OK) {
        build_slot(head + IX_SLOT0, c->generation, end, rec_size, XXH64(rec, (size_t)rec_size, 0));
        st = pwrite_all(fd, rec, (size_t)rec_size, end, name, err);
    }
    if (st == SF_OK)
        st = pwrite_all(fd, head, sizeof head, 0, name, err);
    if (st == SF_OK && ftruncate(fd, (off_t)(end + rec_size)) != 0)
        st = sf_error_set(err, SF_ERR_IO, "%s: ftruncate: %s", name, strerror(errno));
    free(rec);
    return st;
}

sf_status sf_index_create(const char *path, const sf_index_params *params,
                          const sf_index_codebook_id *codebook, const char *codebook_path,
                          sf_error *err)
{
    sf_index_params p = *params;
    p.asmk.binary = p.asmk.binary != 0;
    p.asmk.use_idf = p.asmk.use_idf != 0;
    sf_status st = check_params(path, &p, codebook, err);
    if (st != SF_OK)
        return st;
    if (!codebook_path)
        codebook_path = "";
    if (strlen(codebook_path) > IX_MAX_PATH)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: codebook path longer than %d bytes",
                            path, IX_MAX_PATH);
    size_t tlen = strlen(path) + 64;
    char *tmp = malloc(tlen);
    float *idf = NULL;
    if (!tmp)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    snprintf(tmp, tlen, "%s.create-%ld.tmp", path, (long)getpid());
    sf_temp_remove_stale(path);
    int slot = sf_temp_register(tmp);
    if (p.asmk.use_idf) {
        idf = malloc((size_t)codebook->k * sizeof *idf);
        if (!idf) {
            free(tmp);
            return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        }
        for (uint64_t w = 0; w < codebook->k; w++)
            idf[w] = 1.0f;
    }
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        st = sf_error_set(err, SF_ERR_IO, "%s: %s", tmp, strerror(errno));
    } else {
        uint64_t none = 0;
        commit_in c = { .generation = 1, .path = codebook_path, .live = &none, .norm = NULL,
                        .idf = idf, .k = codebook->k };
        st = write_file(fd, tmp, &p, codebook, &c, NULL, NULL, err);
        if (st == SF_OK)
            st = sync_fd(fd, tmp, 0, err);
        close(fd);
        /* link() rather than rename(): it will not replace an existing index. */
        if (st == SF_OK && link(tmp, path) != 0)
            st = sf_error_set(err, errno == EEXIST ? SF_ERR_INVALID_ARGUMENT : SF_ERR_IO,
                              "%s: %s", path,
                              errno == EEXIST ? "already exists" : strerror(errno));
        unlink(tmp);
        if (st == SF_OK)
            st = sync_dir(path, 0, err);
    }
    sf_temp_unregister(slot);
    free(tmp);
    free(idf);
    return st;
}

/* ---- Writer ---- */

void sf_index_writer_options_default(sf_index_writer_options *opt)
{
    opt->no_wait = 0;
    opt->stage_bytes = 0;
    opt->accept_rollback = 0;
}

typedef struct new_image {
    uint64_t key_off; /* in nkeys */
    uint32_t key_len;
    uint32_t n_vectors;
    int has_global; /* its global descriptor is (staged, or in its segment) */
} new_image;

/* Hash table entry: key hash and id + 1 (0 empty, UINT64_MAX deleted). */
typedef struct slot_ref {
    uint64_t hash;
    uint64_t ref;
} slot_ref;
#define REF_DELETED UINT64_MAX

struct sf_index_writer {
    char *path;
    int fd;
    uint64_t features; /* recorded by the next commit */
    int has_codebook;
    sf_index_codebook_id codebook;
    size_t stage_bytes;
    int broken; /* a failed write: the file tail is unknown until reopened */
    int not_durable; /* the last commit is in place but its sync failed */

    sf_index cur; /* the committed state, mapped */
    int cur_slot; /* which slot holds it */
    unsigned char head[IX_DATA_START];
    uint64_t end; /* where the next segment goes */

    /* Segments written since the last commit. */
    ix_segment *new_segs;
    size_t n_new_segs, new_segs_cap;

    /* Images added since the last commit: ids cur.n_slots + i. */
    new_image *nimg;
    size_t n_nimg, nimg_cap, n_flushed;
    char *nkeys;
    size_t nkeys_len, nkeys_cap;

    /* Liveness of every id, committed and new. */
    uint64_t *live;
    size_t live_cap; /* in words */
    uint64_t n_live;

    /* Live keys. */
    slot_ref *tab;
    size_t tab_cap, tab_used;

    /* Staged entries of the images not yet in a segment. */
    uint32_t *st_word, *st_img;
    unsigned char *st_vecs;
    size_t st_n, st_cap;

    /* Global descriptors: their dimension (0 while none is held), the
     * live images without one, and those of the images not yet in a
     * segment (gdim floats each, in image order; rows of images without
     * one unused). */
    uint64_t gdim, g_missing;
    float *st_glob;
    size_t st_glob_cap;

    int dirty;
};

static uint64_t n_ids(const sf_index_writer *w) { return w->cur.n_slots + w->n_nimg; }

static sf_status key_of(const sf_index_writer *w, uint64_t id, const char **key, size_t *len,
                        sf_error *err)
{
    if (id >= w->cur.n_slots) {
        const new_image *n = &w->nimg[id - w->cur.n_slots];
        *key = w->nkeys + n->key_off;
        *len = n->key_len;
        return SF_OK;
    }
    const ix_segment *s = ix_segment_of(&w->cur, id);
    if (!s)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: image %llu has no segment", w->path,
                            (unsigned long long)id);
    uint32_t l, nv;
    sf_status st = ix_image_entry(&w->cur, s, id - s->slot_base, key, &l, &nv, err);
    *len = l;
    return st;
}

/* Find key: *pos is its table position (or where to insert it), returns
 * its id + 1 or 0. */
static sf_status tab_find(const sf_index_writer *w, const char *key, size_t len, uint64_t hash,
                          size_t *pos, uint64_t *ref, sf_error *err)
{
    size_t mask = w->tab_cap - 1, i = (size_t)hash & mask, insert = SIZE_MAX;
    for (;; i = (i + 1) & mask) {
        const slot_ref *e = &w->tab[i];
        if (e->ref == 0) {
            *pos = insert != SIZE_MAX ? insert : i;
            *ref = 0;
            return SF_OK;
        }
        if (e->ref == REF_DELETED) {
            if (insert == SIZE_MAX)
                insert = i;
            continue;
        }
        if (e->hash != hash)
            continue;
        const char *k;
        size_t kl;
        sf_status st = key_of(w, e->ref - 1, &k, &kl, err);
        if (st != SF_OK)
            return st;
        if (kl == len && memcmp(k, key, len) == 0) {
            *pos = i;
            *ref = e->ref;
            return SF_OK;
        }
    }
}

/* Room for one more key, rehashing when 3/4 full (tombstones count). */
static sf_status tab_reserve(sf_index_writer *w, sf_error *err)
{
    if (w->tab_cap && (w->tab_used + 1) * 4 <= w->tab_cap * 3)
        return SF_OK;
    size_t cap = w->tab_cap ? w->tab_cap : 1024;
    while ((w->n_live + 1) * 2 > cap)
        cap *= 2;
    slot_ref *t = calloc(cap, sizeof *t);
    if (!t)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for %zu keys", w->path, cap);
    size_t used = 0;
    for (size_t i = 0; i < w->tab_cap; i++) {
        slot_ref e = w->tab[i];
        if (e.ref == 0 || e.ref == REF_DELETED)
            continue;
        size_t j = (size_t)e.hash & (cap - 1);
        while (t[j].ref)
            j = (j + 1) & (cap - 1);
        t[j] = e;
        used++;
    }
    free(w->tab);
    w->tab = t;
    w->tab_cap = cap;
    w->tab_used = used;
    return SF_OK;
}

static sf_status live_reserve(sf_index_writer *w, uint64_t ids, sf_error *err)
{
    size_t words = (size_t)((ids + 63) / 64);
    if (words <= w->live_cap)
        return SF_OK;
    size_t cap = w->live_cap ? w->live_cap * 2 : 64;
    while (cap < words)
        cap *= 2;
    uint64_t *l = realloc(w->live, cap * sizeof *l);
    if (!l)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", w->path);
    memset(l + w->live_cap, 0, (cap - w->live_cap) * sizeof *l);
    w->live = l;
    w->live_cap = cap;
    return SF_OK;
}

static void set_live(sf_index_writer *w, uint64_t id, int on)
{
    uint64_t bit = UINT64_C(1) << (id & 63);
    if (on)
        w->live[id >> 6] |= bit;
    else
        w->live[id >> 6] &= ~bit;
}

/* Map [0, end) of the file and parse it as the committed state. */
static sf_status load_committed(sf_index_writer *w, sf_error *err)
{
    unsigned char *head = w->head;
    ssize_t n = pread(w->fd, head, IX_DATA_START, 0);
    struct stat sb;
    if (n < 0 || fstat(w->fd, &sb) != 0)
        return sf_error_set(err, SF_ERR_IO, "%s: %s", w->path, strerror(errno));
    if (n < IX_DATA_START)
        return sf_error_set(err, SF_ERR_TRUNCATED, "%s: too short for an index", w->path);
    sf_index probe;
    memset(&probe, 0, sizeof probe);
    probe.name = w->path;
    ix_slot_pick pick;
    sf_status st = ix_parse_header(&probe, head, err);
    if (st == SF_OK)
        st = ix_pick_slot(&probe, head, (uint64_t)sb.st_size, &pick, err);
    if (st != SF_OK)
        return st;
    uint64_t end = pick.offset + pick.size;
    if (end > SIZE_MAX)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: too large to map", w->path);
    void *m = mmap(NULL, (size_t)end, PROT_READ, MAP_SHARED, w->fd, 0);
    if (m == MAP_FAILED)
        return sf_error_set(err, SF_ERR_IO, "%s: mmap: %s", w->path, strerror(errno));
    ix_release(&w->cur);
    w->cur.name = strdup(w->path);
    w->cur.map = m;
    w->cur.map_size = (size_t)end;
    if (!w->cur.name)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    st = ix_parse(&w->cur, m, end, head, err);
    if (st != SF_OK)
        return st;
    w->cur.file_size = (uint64_t)sb.st_size;
    w->cur_slot = pick.which; /* the other one is written next */
    w->end = ix_align(end);
    w->gdim = ix_global_held(&w->cur, &w->g_missing);
    return SF_OK;
}

/* Whether id's global descriptor is held. */
static int id_has_global(const sf_index_writer *w, uint64_t id)
{
    if (id >= w->cur.n_slots)
        return w->nimg[id - w->cur.n_slots].has_global;
    const ix_segment *s = ix_segment_of(&w->cur, id);
    return s && s->global;
}

/* Live bitmap and key table from the committed state. */
static sf_status index_keys(sf_index_writer *w, sf_error *err)
{
    sf_status st = live_reserve(w, w->cur.n_slots + 1, err); /* never NULL */
    if (st != SF_OK)
        return st;
    memset(w->live, 0, w->live_cap * sizeof *w->live);
    memcpy(w->live, w->cur.live, (size_t)((w->cur.n_slots + 63) / 64) * 8);
    w->n_live = w->cur.n_live;
    free(w->tab);
    w->tab = NULL;
    w->tab_cap = w->tab_used = 0;
    for (uint64_t id = 0; id < w->cur.n_slots; id++) {
        if (!ix_live(w->live, id))
            continue;
        const char *k;
        size_t kl;
        size_t pos;
        uint64_t ref;
        if ((st = tab_reserve(w, err)) != SF_OK || (st = key_of(w, id, &k, &kl, err)) != SF_OK)
            return st;
        uint64_t h = XXH64(k, kl, 0);
        if ((st = tab_find(w, k, kl, h, &pos, &ref, err)) != SF_OK)
            return st;
        if (ref)
            return sf_error_set(err, SF_ERR_FORMAT, "%s: key " SF_KEY_FMT " is live twice (ids %llu "
                                "and %llu)", w->path, SF_KEY_ARGS(k, kl),
                                (unsigned long long)(ref - 1), (unsigned long long)id);
        if (w->tab[pos].ref == 0)
            w->tab_used++;
        w->tab[pos].hash = h;
        w->tab[pos].ref = id + 1;
    }
    return SF_OK;
}

/* A damaged slot that may have held a newer commit is refused unless the
 * loss is accepted: the writer would cut off that commit's data.  Either
 * way, one the writer goes on with is cleared, so that it reads as never
 * written until the next commit fills it. */
static sf_status settle_slots(sf_index_writer *w, int accept_rollback, sf_error *err)
{
    sf_index_slot_state s;
    sf_error why;
    if (sf_index_check_slots(&w->cur, &s, &why) == SF_OK)
        return SF_OK;
    if (s.newer_lost && !accept_rollback)
        return sf_error_set(err, SF_ERR_CHECKSUM,
                            "%s; writing would discard it for good (--accept-rollback: go on "
                            "from generation %llu)", why.message,
                            (unsigned long long)w->cur.generation);
    static const unsigned char zero[IX_SLOT_SIZE];
    sf_status st = pwrite_all(w->fd, zero, sizeof zero, s.damaged ? IX_SLOT1 : IX_SLOT0,
                              w->path, err);
    if (st == SF_OK)
        st = sync_fd(w->fd, w->path, 0, err);
    if (st == SF_OK)
        w->cur.damaged_slot = -1;
    return st;
}

static void reset_pending(sf_index_writer *w)
{
    w->n_new_segs = 0;
    w->n_nimg = w->n_flushed = 0;
    w->nkeys_len = 0;
    w->st_n = 0;
    w->dirty = 0;
}

sf_status sf_index_writer_open(const char *path, const sf_index_codebook_id *codebook,
                               const sf_index_writer_options *opt, sf_index_writer **out,
                               sf_error *err)
{
    *out = NULL;
    sf_index_writer_options o;
    if (opt)
        o = *opt;
    else
        sf_index_writer_options_default(&o);
    sf_index_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }
    w->fd = -1;
    w->stage_bytes = o.stage_bytes ? o.stage_bytes : DEFAULT_STAGE_BYTES;
    sf_status st = SF_OK;
    /* Lock, then make sure the file locked is still the one at path: a
     * compaction may have replaced it while we waited. */
    for (;;) {
        w->fd = open(path, O_RDWR | O_CLOEXEC);
        if (w->fd < 0) {
            st = sf_error_set(err, errno == ENOENT ? SF_ERR_NOT_FOUND : SF_ERR_IO, "%s: %s",
                              path, strerror(errno));
            break;
        }
        int r;
        while ((r = flock(w->fd, LOCK_EX | (o.no_wait ? LOCK_NB : 0))) != 0 && errno == EINTR)
            ;
        if (r != 0) {
            st = errno == EWOULDBLOCK
                     ? sf_error_set(err, SF_ERR_IO, "%s: locked by another writer", path)
                     : sf_error_set(err, SF_ERR_IO, "%s: flock: %s", path, strerror(errno));
            break;
        }
        struct stat a, b;
        if (fstat(w->fd, &a) != 0) {
            st = sf_error_set(err, SF_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            break;
        close(w->fd);
        w->fd = -1;
    }
    if (st == SF_OK)
        st = load_committed(w, err);
    if (st == SF_OK && codebook) {
        st = sf_index_check_codebook(&w->cur, codebook, err);
        w->codebook = *codebook;
        w->has_codebook = 1;
    }
    if (st == SF_OK)
        st = index_keys(w, err);
    /* Before anything is written: the bytes cut off next may be the data
     * of a commit whose slot was damaged. */
    if (st == SF_OK)
        st = settle_slots(w, o.accept_rollback, err);
    if (st == SF_OK) {
        /* Bytes past the last commit are what a killed writer left. */
        struct stat sb;
        if (fstat(w->fd, &sb) == 0 && (uint64_t)sb.st_size > w->cur.commit_offset +
                                                                 w->cur.commit_size &&
            ftruncate(w->fd, (off_t)(w->cur.commit_offset + w->cur.commit_size)) != 0)
            st = sf_error_set(err, SF_ERR_IO, "%s: ftruncate: %s", path, strerror(errno));
        size_t tlen = strlen(path) + 32;
        char *tmp = malloc(tlen);
        if (tmp) {
            snprintf(tmp, tlen, "%s.compact.tmp", path);
            unlink(tmp); /* left by a compaction that was killed */
            free(tmp);
        }
    }
    if (st != SF_OK) {
        sf_index_writer_free(w);
        return st;
    }
    w->features = w->cur.features;
    *out = w;
    return SF_OK;
}

uint64_t sf_index_writer_features(const sf_index_writer *w)
{
    return w->features;
}

void sf_index_writer_set_features(sf_index_writer *w, uint64_t features)
{
    w->features = features;
}

int sf_index_writer_not_durable(const sf_index_writer *w)
{
    return w->not_durable;
}

void sf_index_writer_free(sf_index_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd); /* releases the lock */
    ix_release(&w->cur);
    free(w->path);
    free(w->new_segs);
    free(w->nimg);
    free(w->nkeys);
    free(w->live);
    free(w->tab);
    free(w->st_word);
    free(w->st_img);
    free(w->st_vecs);
    free(w->st_glob);
    free(w);
}

const sf_index_params *sf_index_writer_params(const sf_index_writer *w) { return &w->cur.params; }
size_t sf_index_writer_n_images(const sf_index_writer *w) { return (size_t)w->n_live; }

/* ---- Writing a segment ---- */

static sf_status flush_segment(sf_index_writer *w, sf_error *err)
{
    const uint64_t k = w->cur.codebook.k, vb = w->cur.vec_bytes;
    const size_t n_img = w->n_nimg - w->n_flushed;
    if (n_img == 0)
        return SF_OK;
    const new_image *imgs = w->nimg + w->n_flushed;
    const uint64_t key_base = imgs[0].key_off;
    const uint64_t keys_bytes = w->nkeys_len - key_base;
    const size_t n = w->st_n;
    /* A global part only when every image has one: a segment either
     * answers for all its images or for none. */
    size_t with_global = 0;
    for (size_t i = 0; i < n_img; i++)
        with_global += imgs[i].has_global != 0;
    const uint64_t gdim = with_global == n_img ? w->gdim : 0;
    const size_t gbytes = (size_t)(n_img * gdim * 4);
    uint64_t gsum = 0;
    if (gdim) {
        static const unsigned char zero[IX_ALIGN];
        XXH64_state_t gh;
        XXH64_reset(&gh, 0);
        XXH64_update(&gh, w->st_glob, gbytes);
        XXH64_update(&gh, zero, (size_t)(ix_align(gbytes) - gbytes));
        gsum = XXH64_digest(&gh);
    }

    uint64_t *start = calloc((size_t)k + 1, sizeof *start);
    uint32_t *perm = malloc((n ? n : 1) * sizeof *perm);
    unsigned char *buf = malloc(WRITE_BUFFER);
    seg_sums sums;
    if (!seg_sums_init(&sums, k) || !start || !perm || !buf) {
        seg_sums_free(&sums);
        free(start);
        free(perm);
        free(buf);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for a segment", w->path);
    }
    /* Counting sort by word, stable: each list ascends in image order. */
    for (size_t e = 0; e < n; e++)
        start[w->st_word[e] + 1]++;
    for (uint64_t x = 0; x < k; x++)
        start[x + 1] += start[x];
    for (size_t e = 0; e < n; e++)
        perm[start[w->st_word[e]]++] = (uint32_t)e;
    for (uint64_t x = k; x > 0; x--) /* back to list starts */
        start[x] = start[x - 1];
    start[0] = 0;
    for (uint64_t x = 0; x < k; x++)
        for (uint64_t e = start[x]; e < start[x + 1]; e++)
            seg_sums_entry(&sums, x, e, w->st_img[perm[e]], w->st_vecs + (size_t)perm[e] * vb,
                           vb);
    for (size_t i = 0; i < n_img; i++) {
        unsigned char t[IX_IMAGE_ENTRY];
        image_entry(t, imgs[i].key_off - key_base, imgs[i].key_len, imgs[i].n_vectors);
        seg_sums_table(&sums, t, sizeof t);
    }
    seg_sums_table_pad(&sums);
    seg_sums_table(&sums, w->nkeys + key_base, (size_t)keys_bytes);
    seg_sums_table_pad(&sums);

    ix_segment seg;
    memset(&seg, 0, sizeof seg);
    seg.offset = w->end;
    seg.n_images = n_img;
    seg.n_entries = n;
    seg.slot_base = w->cur.n_slots + w->n_flushed;
    ix_seg_layout L;
    ix_seg_layout_compute(gdim ? 3 : 2, k, n_img, n, keys_bytes, vb, gdim, UINT64_C(1) << 62,
                          &L);
    seg.size = L.size;

    bw b;
    bw_init(&b, w->fd, w->path, seg.offset, buf, err);
    bw_segment_head(&b, n_img, keys_bytes, k, vb, start, &sums, gdim, gsum);
    seg_sums_free(&sums);
    for (size_t i = 0; i < n_img; i++) {
        unsigned char t[IX_IMAGE_ENTRY];
        image_entry(t, imgs[i].key_off - key_base, imgs[i].key_len, imgs[i].n_vectors);
        bw_write(&b, t, sizeof t);
    }
    bw_pad(&b);
    bw_write(&b, w->nkeys + key_base, (size_t)keys_bytes);
    bw_pad(&b);
    uint64_t part[3];
    part[0] = bw_part(&b);
    if (crash_wanted(2)) {
        bw_flush(&b);
        _exit(86);
    }
    for (size_t e = 0; e < n; e++) {
        unsigned char t[4];
        sf_put_u32(t, w->st_img[perm[e]]);
        bw_write(&b, t, 4);
    }
    bw_pad(&b);
    part[1] = bw_part(&b);
    for (size_t e = 0; e < n; e++)
        bw_write(&b, w->st_vecs + (size_t)perm[e] * vb, (size_t)vb);
    bw_pad(&b);
    if (gdim) {
        if (crash_wanted(15)) {
            bw_flush(&b);
            _exit(86);
        }
        bw_write(&b, w->st_glob, gbytes);
        bw_pad(&b);
    }
    part[2] = bw_part(&b);
    bw_flush(&b);
    free(start);
    free(perm);
    free(buf);
    if (b.st != SF_OK) {
        w->broken = 1;
        return b.st;
    }
    seg.checksum = ix_combine_parts(part);

    if (w->n_new_segs == w->new_segs_cap) {
        size_t cap = w->new_segs_cap ? 2 * w->new_segs_cap : 4;
        ix_segment *s = realloc(w->new_segs, cap * sizeof *s);
        if (!s)
            return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", w->path);
        w->new_segs = s;
        w->new_segs_cap = cap;
    }
    w->new_segs[w->n_new_segs++] = seg;
    w->end = ix_align(seg.offset + seg.size);
    if (!gdim && with_global) /* their descriptors are not kept */
        for (size_t i = 0; i < n_img; i++)
            if (w->nimg[w->n_flushed + i].has_global) {
                w->nimg[w->n_flushed + i].has_global = 0;
                if (ix_live(w->live, w->cur.n_slots + w->n_flushed + i))
                    w->g_missing++;
            }
    w->n_flushed = w->n_nimg;
    w->st_n = 0;
    return SF_OK;
}

/* ---- Staging changes ---- */

static sf_status check_key(const sf_index_writer *w, const char *key, sf_error *err)
{
    size_t len = strlen(key);
    if (len == 0 || len > IX_MAX_KEY)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: keys have 1 to %d bytes",
                            w->path, IX_MAX_KEY);
    return SF_OK;
}

static sf_status usable(const sf_index_writer *w, sf_error *err)
{
    if (w->broken)
        return sf_error_set(err, SF_ERR_IO, "%s: an earlier write or reload failed; reopen the "
                            "index", w->path);
    return SF_OK;
}

/* Forget key's live image, if any; *had says whether there was one. */
static sf_status drop_key(sf_index_writer *w, const char *key, size_t len, uint64_t hash,
                          int *had, sf_error *err)
{
    size_t pos;
    uint64_t ref;
    *had = 0;
    if (w->tab_cap == 0)
        return SF_OK;
    sf_status st = tab_find(w, key, len, hash, &pos, &ref, err);
    if (st != SF_OK || !ref)
        return st;
    set_live(w, ref - 1, 0);
    w->n_live--;
    if (!id_has_global(w, ref - 1))
        w->g_missing--;
    w->tab[pos].ref = REF_DELETED;
    *had = 1;
    return SF_OK;
}

static sf_status grow(void **p, size_t *cap, size_t need, size_t elem, const char *path,
                      sf_error *err)
{
    if (need <= *cap)
        return SF_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    if (c > SIZE_MAX / elem)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", path);
    void *q = realloc(*p, c * elem);
    if (!q)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", path);
    *p = q;
    *cap = c;
    return SF_OK;
}

sf_status sf_index_writer_add(sf_index_writer *w, const char *key, const sf_asmk_agg *agg,
                              int *replaced, sf_error *err)
{
    return sf_index_writer_add_global(w, key, agg, NULL, 0, replaced, err);
}

sf_status sf_index_writer_add_global(sf_index_writer *w, const char *key,
                                     const sf_asmk_agg *agg, const float *global,
                                     size_t gdim, int *replaced, sf_error *err)
{
    if (replaced)
        *replaced = 0;
    sf_status st = usable(w, err);
    if (st != SF_OK || (st = check_key(w, key, err)) != SF_OK)
        return st;
    if (!global)
        gdim = 0;
    if (global && (gdim == 0 || gdim > IX_MAX_GLOBAL_DIM))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: %s: a global descriptor of %zu (1..%d)", w->path, key, gdim,
                            IX_MAX_GLOBAL_DIM);
    if (global && w->gdim && gdim != w->gdim)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: %s: a global descriptor of %zu for an index whose global "
                            "descriptors have %llu", w->path, key, gdim,
                            (unsigned long long)w->gdim);
    /* Staying silent would end the global stage of every later search. */
    if (!global && w->gdim && w->g_missing == 0 && w->n_live > 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: %s: no global descriptor, and every image of the index has "
                            "one (sf-lit --global)", w->path, key);
    if (!w->has_codebook)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: the writer was opened without a codebook", w->path);
    const sf_index_params *p = &w->cur.params;
    if (agg->n > 0 && (agg->dim != w->cur.codebook.dim || (agg->binary != 0) != p->asmk.binary ||
                       !agg->words || (agg->binary ? !agg->packed : !agg->vectors)))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: %s: %s vectors of dimension %zu for a %s index of dimension %llu",
                            w->path, key, agg->binary ? "binary" : "float", agg->dim,
                            p->asmk.binary ? "binary" : "float",
                            (unsigned long long)w->cur.codebook.dim);
    if (agg->n > UINT32_MAX)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: %s: %zu vectors", w->path, key, agg->n);
    for (size_t i = 0; i < agg->n; i++)
        if (agg->words[i] < 0 || (uint64_t)agg->words[i] >= w->cur.codebook.k ||
            (i > 0 && agg->words[i] <= agg->words[i - 1]))
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                "%s: %s: words must ascend within 0..%llu (vector %zu has %ld)",
                                w->path, key, (unsigned long long)w->cur.codebook.k - 1, i,
                                (long)agg->words[i]);
    /* A segment's images are numbered by uint32 and so are its entries
     * (the sort permutation): write one out before either overflows. */
    if (w->st_n + agg->n > UINT32_MAX || w->n_nimg - w->n_flushed >= UINT32_MAX) {
        if ((st = flush_segment(w, err)) != SF_OK)
            return st;
    }
    const size_t len = strlen(key), vb = (size_t)w->cur.vec_bytes, n = agg->n;
    const uint64_t id = n_ids(w);
    /* Reserve everything, then change state: a failure leaves it as it was. */
    if ((st = grow((void **)&w->nimg, &w->nimg_cap, w->n_nimg + 1, sizeof *w->nimg, w->path,
                   err)) != SF_OK ||
        (st = grow((void **)&w->nkeys, &w->nkeys_cap, w->nkeys_len + len, 1, w->path, err)) !=
            SF_OK ||
        (st = live_reserve(w, id + 1, err)) != SF_OK || (st = tab_reserve(w, err)) != SF_OK)
        return st;
    size_t cap = w->st_cap;
    if ((st = grow((void **)&w->st_word, &cap, w->st_n + n, 4, w->path, err)) != SF_OK)
        return st;
    cap = w->st_cap;
    if ((st = grow((void **)&w->st_img, &cap, w->st_n + n, 4, w->path, err)) != SF_OK)
        return st;
    cap = w->st_cap;
    if ((st = grow((void **)&w->st_vecs, &cap, w->st_n + n, vb, w->path, err)) != SF_OK)
        return st;
    w->st_cap = cap;
    if (gdim && (st = grow((void **)&w->st_glob, &w->st_glob_cap, w->n_nimg - w->n_flushed + 1,
                           gdim * sizeof(float), w->path, err)) != SF_OK)
        return st;

    uint64_t hash = XXH64(key, len, 0);
    int had;
    if ((st = drop_key(w, key, len, hash, &had, err)) != SF_OK)
        return st;
    if (replaced)
        *replaced = had;
    size_t pos;
    uint64_t ref;
    if ((st = tab_find(w, key, len, hash, &pos, &ref, err)) != SF_OK)
        return st;
    if (w->tab[pos].ref == 0)
        w->tab_used++;
    w->tab[pos].hash = hash;
    w->tab[pos].ref = id + 1;

    new_image *im = &w->nimg[w->n_nimg++];
    im->key_off = w->nkeys_len;
    im->key_len = (uint32_t)len;
    im->n_vectors = (uint32_t)n;
    im->has_global = global != NULL;
    if (global) {
        memcpy(w->st_glob + (w->n_nimg - 1 - w->n_flushed) * gdim, global, gdim * sizeof(float));
        w->gdim = gdim;
    } else {
        w->g_missing++;
    }
    memcpy(w->nkeys + w->nkeys_len, key, len);
    w->nkeys_len += len;
    set_live(w, id, 1);
    w->n_live++;
    const uint32_t local = (uint32_t)(w->n_nimg - 1 - w->n_flushed);
    for (size_t i = 0; i < n; i++) {
        w->st_word[w->st_n + i] = (uint32_t)agg->words[i];
        w->st_img[w->st_n + i] = local;
    }
    if (n)
        memcpy(w->st_vecs + w->st_n * vb,
               agg->binary ? (const void *)agg->packed : (const void *)agg->vectors, n * vb);
    w->st_n += n;
    w->dirty = 1;
    if (w->st_n * (vb + 8) + (w->n_nimg - w->n_flushed) * w->gdim * 4 >= w->stage_bytes)
        return flush_segment(w, err);
    return SF_OK;
}

static sf_status add_desc(sf_index_writer *w, const sf_asmk_codebook *codebook, const char *key,
                          const float *desc, size_t n, const float *global, size_t gdim,
                          int *replaced, sf_error *err);

sf_status sf_index_writer_add_descriptors(sf_index_writer *w, const sf_asmk_codebook *codebook,
                                          const char *key, const float *desc, size_t n,
                                          int *replaced, sf_error *err)
{
    return add_desc(w, codebook, key, desc, n, NULL, 0, replaced, err);
}

static sf_status add_desc(sf_index_writer *w, const sf_asmk_codebook *codebook, const char *key,
                          const float *desc, size_t n, const float *global, size_t gdim,
                          int *replaced, sf_error *err)
{
    if (replaced)
        *replaced = 0;
    if (sf_asmk_codebook_size(codebook) != w->cur.codebook.k ||
        sf_asmk_codebook_dim(codebook) != w->cur.codebook.dim)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: a %zu x %zu codebook for an index built with %llu x %llu",
                            w->path, sf_asmk_codebook_size(codebook),
                            sf_asmk_codebook_dim(codebook),
                            (unsigned long long)w->cur.codebook.k,
                            (unsigned long long)w->cur.codebook.dim);
    const int ma = w->cur.params.ma_database;
    if (n > SIZE_MAX / 4 / (size_t)ma)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: %s: %zu descriptors", w->path, key, n);
    sf_asmk_agg agg;
    sf_status st = sf_asmk_quantize_aggregate(codebook, desc, n, ma, w->cur.params.asmk.binary,
                                              &agg, err);
    if (st == SF_OK)
        st = sf_index_writer_add_global(w, key, &agg, global, gdim, replaced, err);
    sf_asmk_agg_release(&agg);
    return st;
}

sf_status sf_index_writer_add_image(sf_index_writer *w, const sf_asmk_codebook *codebook,
                                    const sf_stream_image *img, int allow_mismatch,
                                    int *replaced, sf_error *err)
{
    if (replaced)
        *replaced = 0;
    const uint64_t held = w->features;
    sf_status st = SF_OK;
    if (!allow_mismatch)
        st = held ? sf_provenance_check_features(img, held, "the index", err)
                  : sf_provenance_check_stage(img, SF_STAGE_LIT, 0, err);
    if (st != SF_OK)
        return st;
    const sf_record *desc = sf_stream_image_find(img, SF_KIND_LOCAL_DESC);
    if (!desc)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "no local_desc record (the output of sf-lit)");
    if (desc->dtype != SF_DTYPE_F32 || desc->ndim != 2 || desc->shape[1] != w->cur.codebook.dim)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "local_desc is not a K x %llu float32 array "
                            "(made for another codebook?)",
                            (unsigned long long)w->cur.codebook.dim);
    const sf_record *g = sf_stream_image_find(img, SF_KIND_GLOBAL);
    if (g && (g->dtype != SF_DTYPE_F32 || g->ndim != 1 || g->shape[0] == 0))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "global is not one float32 vector");
    st = add_desc(w, codebook, img->key, desc->data, (size_t)desc->shape[0],
                  g ? g->data : NULL, g ? (size_t)g->shape[0] : 0, replaced, err);
    /* The first image says what the index holds from now on. */
    if (st == SF_OK && !held && img->has_provenance && img->provenance.stage == SF_STAGE_LIT)
        w->features = sf_provenance_features(&img->provenance);
    return st;
}

sf_status sf_index_writer_remove(sf_index_writer *w, const char *key, sf_error *err)
{
    sf_status st = usable(w, err);
    if (st != SF_OK || (st = check_key(w, key, err)) != SF_OK)
        return st;
    size_t len = strlen(key);
    int had;
    st = drop_key(w, key, len, XXH64(key, len, 0), &had, err);
    if (st != SF_OK)
        return st;
    if (!had)
        return sf_error_set(err, SF_ERR_NOT_FOUND, "%s: no image '%s'", w->path, key);
    w->dirty = 1;
    return SF_OK;
}

/* ---- Commit ---- */

/* Every segment, committed and new, bound to a mapping of [0, end). */
typedef struct all_segs {
    void *map;
    size_t map_size;
    ix_segment *segs;
    const ix_segment **ptrs;
    size_t n;
} all_segs;

static void all_segs_free(all_segs *a)
{
    if (a->map)
        munmap(a->map, a->map_size);
    free(a->segs);
    free(a->ptrs);
    memset(a, 0, sizeof *a);
}

static sf_status all_segs_map(sf_index_writer *w, all_segs *a, sf_error *err)
{
    memset(a, 0, sizeof *a);
    a->n = w->cur.n_segments + w->n_new_segs;
    a->segs = malloc((a->n + 1) * sizeof *a->segs);
    a->ptrs = malloc((a->n + 1) * sizeof *a->ptrs);
    if (!a->segs || !a->ptrs) {
        all_segs_free(a);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", w->path);
    }
    memcpy(a->segs, w->cur.segs, w->cur.n_segments * sizeof *a->segs);
    if (w->n_new_segs)
        memcpy(a->segs + w->cur.n_segments, w->new_segs, w->n_new_segs * sizeof *a->segs);
    for (size_t i = 0; i < a->n; i++)
        a->ptrs[i] = &a->segs[i];
    if (w->n_new_segs == 0)
        return SF_OK; /* the committed mapping covers them all */
    a->map_size = (size_t)w->end;
    void *m = mmap(NULL, a->map_size, PROT_READ, MAP_SHARED, w->fd, 0);
    if (m == MAP_FAILED) {
        a->map = NULL;
        all_segs_free(a);
        return sf_error_set(err, SF_ERR_IO, "%s: mmap: %s", w->path, strerror(errno));
    }
    a->map = m;
    for (size_t i = 0; i < a->n; i++)
        if (!ix_segment_bind(&a->segs[i], (const unsigned char *)m + a->segs[i].offset,
                             w->cur.codebook.k, w->cur.vec_bytes)) {
            all_segs_free(a);
            return sf_error_set(err, SF_ERR_FORMAT, "%s: segment %zu does not read back",
                                w->path, i);
        }
    return SF_OK;
}

/* idf over the live images and the norms they give, in the order
 * sf_asmk_ivf_finalize adds them: word by word, ascending. */
static sf_status compute_idf_norms(const sf_index_writer *w, const all_segs *a, uint64_t n_slots,
                                   float *idf, double *norm, sf_error *err)
{
    const uint64_t k = w->cur.codebook.k;
    for (uint64_t w_ = 0; w_ < k; w_++) {
        uint64_t count = 0;
        for (size_t i = 0; i < a->n; i++) {
            const ix_segment *s = &a->segs[i];
            uint64_t e0, e1;
            sf_status st = ix_word_range(&w->cur, s, w_, &e0, &e1, err);
            if (st == SF_OK) /* norms are computed from them: not from damage */
                st = ix_check_list(&w->cur, s, w_, 0, err);
            if (st != SF_OK)
                return st;
            for (uint64_t e = e0; e < e1; e++) {
                uint32_t id = s->ids[e];
                if (id >= s->n_images)
                    return sf_error_set(err, SF_ERR_FORMAT, "%s: segment %zu: bad image id",
                                        w->path, i);
                count += (uint64_t)ix_live(w->live, s->slot_base + id);
            }
        }
        idf[w_] = ix_idf(w->n_live, count);
        double add = idf[w_];
        for (size_t i = 0; i < a->n; i++) {
            const ix_segment *s = &a->segs[i];
            uint64_t e0, e1;
            ix_word_range(&w->cur, s, w_, &e0, &e1, err);
            for (uint64_t e = e0; e < e1; e++)
                norm[s->slot_base + s->ids[e]] += add;
        }
    }
    for (uint64_t m = 0; m < n_slots; m++)
        if (!ix_live(w->live, m))
            norm[m] = 0.0;
    return SF_OK;
}

sf_status sf_index_writer_commit(sf_index_writer *w, sf_error *err)
{
    sf_status st = usable(w, err);
    w->not_durable = 0;
    if (st != SF_OK || !w->dirty)
        return st;
    crash_point(1);
    if ((st = flush_segment(w, err)) != SF_OK)
        return st;
    crash_point(3);

    const uint64_t n_slots = n_ids(w);
    double *norm = calloc((size_t)n_slots + 1, sizeof *norm);
    float *idf = NULL;
    all_segs a;
    memset(&a, 0, sizeof a);
    if (!norm)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", w->path);
    st = all_segs_map(w, &a, err);
    if (st == SF_OK && w->cur.params.asmk.use_idf) {
        idf = malloc((size_t)w->cur.codebook.k * sizeof *idf);
        if (!idf)
            st = sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", w->path);
        else
            st = compute_idf_norms(w, &a, n_slots, idf, norm, err);
    } else if (st == SF_OK) {
        for (uint64_t m = 0; m < n_slots; m++) {
            if (!ix_live(w->live, m))
                continue;
            norm[m] = m < w->cur.n_slots ? w->cur.norm[m]
                                         : (double)w->nimg[m - w->cur.n_slots].n_vectors;
        }
    }
    unsigned char *rec = NULL;
    uint64_t rec_size = 0;
    if (st == SF_OK) {
        commit_in c = { .generation = w->cur.generation + 1,
                        .path = w->cur.codebook_path,
                        .segs = a.ptrs,
                        .n_segs = a.n,
                        .n_slots = n_slots,
                        .n_live = w->n_live,
                        .live = w->live,
                        .norm = norm,
                        .idf = idf,
                        .k = w->cur.codebook.k,
                        .features = w->features };
        st = build_commit(&c, &rec, &rec_size, err);
    }
    all_segs_free(&a);
    free(norm);
    free(idf);
    if (st != SF_OK) {
        free(rec);
        return st;
    }

    const uint64_t at = w->end;
    const uint64_t gen = w->cur.generation + 1;
    if (crash_wanted(4)) {
        pwrite_all(w->fd, rec, (size_t)rec_size / 2, at, w->path, err);
        _exit(86);
    }
    st = pwrite_all(w->fd, rec, (size_t)rec_size, at, w->path, err);
    unsigned char slot[IX_SLOT_SIZE];
    build_slot(slot, gen, at, rec_size, XXH64(rec, (size_t)rec_size, 0));
    free(rec);
    crash_point(5);
    if (st == SF_OK)
        st = sync_fd(w->fd, w->path, 5, err);
    crash_point(6);
    const uint64_t slot_at = w->cur_slot ? IX_SLOT0 : IX_SLOT1;
    if (crash_wanted(7)) {
        pwrite_all(w->fd, slot, IX_SLOT_SIZE / 2, slot_at, w->path, err);
        _exit(86);
    }
    if (st == SF_OK)
        st = pwrite_all(w->fd, slot, IX_SLOT_SIZE, slot_at, w->path, err);
    crash_point(8);
    if (st == SF_OK && (sync_fails(8) || fdatasync(w->fd) != 0)) {
        /* Readers see the new slot already; a crash may still lose it. */
        w->not_durable = 1;
        st = sf_error_set(err, SF_ERR_IO, "%s: generation %llu is committed (readers see it) "
                          "but may not be durable: fdatasync: %s", w->path,
                          (unsigned long long)gen, strerror(errno));
    }
    crash_point(9);
    if (st != SF_OK) {
        /* Unless not_durable, the slot is not in place (a failed write of
         * it leaves a damaged one): readers see the old commit.  The
         * file's tail is unknown. */
        w->broken = 1;
        return st;
    }
    reset_pending(w);
    /* The commit is done and durable, whatever happens next; a writer that
     * cannot take it up again is only unusable. */
    sf_error ignored;
    if (load_committed(w, &ignored) != SF_OK)
        w->broken = 1;
    return SF_OK;
}

/* ---- Compaction ---- */

typedef struct compact_ctx {
    sf_index_writer *w;
    uint32_t *new_id; /* per old id: its new id (live ones) */
    uint64_t n_vectors;
} compact_ctx;

/* The live images of the committed state as one segment at `at`. */
static sf_status compact_fill(void *vctx, int fd, uint64_t at, ix_segment *seg, sf_error *err)
{
    compact_ctx *c = vctx;
    sf_index *x = &c->w->cur;
    const uint64_t k = x->codebook.k, vb = x->vec_bytes;
    uint64_t keys_bytes = 0, n_img = 0;
    uint64_t *start = calloc((size_t)k + 1, sizeof *start);
    unsigned char *buf = malloc(WRITE_BUFFER);
    seg_sums sums;
    if (!seg_sums_init(&sums, k) || !start || !buf) {
        seg_sums_free(&sums);
        free(start);
        free(buf);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", c->w->path);
    }
    sf_status st = SF_OK;
    c->n_vectors = 0;
    for (uint64_t m = 0; m < x->n_slots && st == SF_OK; m++) {
        if (!ix_live(x->live, m))
            continue;
        sf_index_image im;
        st = sf_index_get_image(x, (size_t)m, &im, err);
        if (st != SF_OK)
            break;
        unsigned char t[IX_IMAGE_ENTRY];
        image_entry(t, keys_bytes, (uint32_t)im.key_len, im.n_vectors);
        seg_sums_table(&sums, t, sizeof t);
        c->new_id[m] = (uint32_t)n_img++;
        keys_bytes += im.key_len;
        c->n_vectors += im.n_vectors;
    }
    seg_sums_table_pad(&sums);
    for (uint64_t m = 0; m < x->n_slots && st == SF_OK; m++) {
        if (!ix_live(x->live, m))
            continue;
        sf_index_image im;
        sf_index_get_image(x, (size_t)m, &im, err);
        seg_sums_table(&sums, im.key, im.key_len);
    }
    seg_sums_table_pad(&sums);
    /* Pass 1: live entries per word and their sums at their new places,
     * from lists checked against theirs (damage is not carried over into
     * a file whose checksums would vouch for it). */
    for (uint64_t w_ = 0; w_ < k && st == SF_OK; w_++) {
        uint64_t count = 0;
        for (size_t i = 0; i < x->n_segments && st == SF_OK; i++) {
            const ix_segment *s = &x->segs[i];
            uint64_t e0, e1;
            st = ix_word_range(x, s, w_, &e0, &e1, err);
            if (st == SF_OK)
                st = ix_check_list(x, s, w_, 1, err);
            for (uint64_t e = e0; st == SF_OK && e < e1; e++) {
                uint64_t old = s->slot_base + s->ids[e];
                if (s->ids[e] >= s->n_images)
                    st = sf_error_set(err, SF_ERR_FORMAT, "%s: segment %zu: bad image id",
                                      x->name, i);
                else if (ix_live(x->live, old))
                    seg_sums_entry(&sums, w_, start[w_] + count++, c->new_id[old],
                                   s->vecs + e * vb, vb);
            }
        }
        start[w_ + 1] = start[w_] + count;
    }
    if (st == SF_OK && start[k] != c->n_vectors)
        st = sf_error_set(err, SF_ERR_FORMAT,
                          "%s: the lists hold %llu entries of live images, the image table "
                          "%llu", x->name, (unsigned long long)start[k],
                          (unsigned long long)c->n_vectors);
    if (st != SF_OK) {
        seg_sums_free(&sums);
        free(start);
        free(buf);
        return st;
    }
    /* The global descriptors are carried over when every live image has
     * one, checked first like the lists. */
    const uint64_t gdim = sf_index_global_dim(x, NULL);
    uint64_t gsum = 0;
    if (gdim) {
        static const unsigned char zero[IX_ALIGN];
        XXH64_state_t gh;
        XXH64_reset(&gh, 0);
        for (size_t i = 0; i < x->n_segments && st == SF_OK; i++) {
            const ix_segment *s = &x->segs[i];
            for (uint64_t j = 0; j < s->n_images && st == SF_OK; j++)
                if (ix_live(x->live, s->slot_base + j) &&
                    (st = ix_check_global(x, s, err)) == SF_OK)
                    XXH64_update(&gh, s->global + j * gdim, (size_t)gdim * 4);
        }
        const uint64_t gbytes = n_img * gdim * 4;
        XXH64_update(&gh, zero, (size_t)(ix_align(gbytes) - gbytes));
        gsum = XXH64_digest(&gh);
    }
    if (st != SF_OK) {
        seg_sums_free(&sums);
        free(start);
        free(buf);
        return st;
    }
    seg->n_images = n_img;
    seg->n_entries = start[k];
    ix_seg_layout L;
    ix_seg_layout_compute(gdim ? 3 : 2, k, n_img, start[k], keys_bytes, vb, gdim,
                          UINT64_C(1) << 62, &L);
    seg->size = L.size;

    bw b;
    bw_init(&b, fd, c->w->path, at, buf, err);
    bw_segment_head(&b, n_img, keys_bytes, k, vb, start, &sums, gdim, gsum);
    seg_sums_free(&sums);
    uint64_t key_off = 0;
    for (uint64_t m = 0; m < x->n_slots; m++) {
        if (!ix_live(x->live, m))
            continue;
        sf_index_image im;
        sf_index_get_image(x, (size_t)m, &im, err);
        unsigned char t[IX_IMAGE_ENTRY];
        image_entry(t, key_off, (uint32_t)im.key_len, im.n_vectors);
        bw_write(&b, t, sizeof t);
        key_off += im.key_len;
    }
    bw_pad(&b);
    for (uint64_t m = 0; m < x->n_slots; m++) {
        if (!ix_live(x->live, m))
            continue;
        sf_index_image im;
        sf_index_get_image(x, (size_t)m, &im, err);
        bw_write(&b, im.key, im.key_len);
    }
    bw_pad(&b);
    uint64_t part[3];
    part[0] = bw_part(&b);
    /* Pass 2 and 3: ids, then vectors, in the same order. */
    for (int pass = 1; pass <= 2; pass++) {
        for (uint64_t w_ = 0; w_ < k; w_++)
            for (size_t i = 0; i < x->n_segments; i++) {
                const ix_segment *s = &x->segs[i];
                uint64_t e0, e1;
                ix_word_range(x, s, w_, &e0, &e1, err);
                for (uint64_t e = e0; e < e1; e++) {
                    uint64_t old = s->slot_base + s->ids[e];
                    if (!ix_live(x->live, old))
                        continue;
                    if (pass == 1) {
                        unsigned char t[4];
                        sf_put_u32(t, c->new_id[old]);
                        bw_write(&b, t, 4);
                    } else {
                        bw_write(&b, s->vecs + e * vb, (size_t)vb);
                    }
                }
            }
        bw_pad(&b);
        if (pass == 2 && gdim) {
            for (size_t i = 0; i < x->n_segments; i++) {
                const ix_segment *s = &x->segs[i];
                for (uint64_t j = 0; j < s->n_images; j++)
                    if (ix_live(x->live, s->slot_base + j))
                        bw_write(&b, s->global + j * gdim, (size_t)gdim * 4);
            }
            bw_pad(&b);
        }
        part[pass] = bw_part(&b);
        if (pass == 1 && crash_wanted(11)) {
            bw_flush(&b);
            _exit(86);
        }
    }
    bw_flush(&b);
    free(start);
    free(buf);
    if (b.st != SF_OK)
        return b.st;
    seg->checksum = ix_combine_parts(part);
    return SF_OK;
}

sf_status sf_index_writer_compact(sf_index_writer *w, sf_error *err)
{
    sf_status st = sf_index_writer_commit(w, err);
    if (st == SF_OK)
        st = usable(w, err);
    if (st != SF_OK)
        return st;
    sf_index *x = &w->cur;
    if (x->n_live > UINT32_MAX)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: %llu images in one segment", w->path,
                            (unsigned long long)x->n_live);
    size_t tlen = strlen(w->path) + 32;
    char *tmp = malloc(tlen);
    compact_ctx c = { .w = w, .new_id = malloc(((size_t)x->n_slots + 1) * sizeof(uint32_t)) };
    uint64_t *live = calloc((size_t)(x->n_live + 63) / 64 + 1, sizeof *live);
    double *norm = malloc(((size_t)x->n_live + 1) * sizeof *norm);
    if (!tmp || !c.new_id || !live || !norm) {
        free(tmp);
        free(c.new_id);
        free(live);
        free(norm);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", w->path);
    }
    snprintf(tmp, tlen, "%s.compact.tmp", w->path);
    int slot = sf_temp_register(tmp);
    /* Same live set: idf and every norm stay as they are. */
    uint64_t j = 0;
    for (uint64_t m = 0; m < x->n_slots; m++)
        if (ix_live(x->live, m))
            norm[j++] = x->norm[m];
    for (uint64_t i = 0; i < x->n_live; i++)
        live[i >> 6] |= UINT64_C(1) << (i & 63);
    commit_in ci = { .generation = x->generation + 1,
                     .path = x->codebook_path,
                     .n_slots = x->n_live,
                     .n_live = x->n_live,
                     .live = live,
                     .norm = norm,
                     .idf = x->idf,
                     .k = x->codebook.k,
                     .features = x->features };
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    struct stat sb;
    if (fd < 0)
        st = sf_error_set(err, SF_ERR_IO, "%s: %s", tmp, strerror(errno));
    else if (fstat(w->fd, &sb) == 0)
        (void)fchmod(fd, sb.st_mode & 07777); /* keep the index's permissions */
    if (st == SF_OK)
        st = write_file(fd, tmp, &x->params, &x->codebook, &ci, compact_fill, &c, err);
    crash_point(12);
    if (st == SF_OK)
        st = sync_fd(fd, tmp, 12, err);
    crash_point(13);
    /* Hold the new file's lock before it becomes the index, so that
     * writers waiting on the old file move over and wait again. */
    if (st == SF_OK && flock(fd, LOCK_EX | LOCK_NB) != 0)
        st = sf_error_set(err, SF_ERR_IO, "%s: flock: %s", tmp, strerror(errno));
    if (st == SF_OK && rename(tmp, w->path) != 0)
        st = sf_error_set(err, SF_ERR_IO, "%s: rename to %s: %s", tmp, w->path, strerror(errno));
    if (st != SF_OK) {
        if (fd >= 0)
            close(fd);
        unlink(tmp);
    } else {
        crash_point(14);
        sf_error why;
        st = sync_dir(w->path, 14, &why);
        close(w->fd);
        w->fd = fd;
        if (st != SF_OK) {
            /* Readers open the new file already; a crash may undo the rename. */
            w->not_durable = 1;
            w->broken = 1;
            sf_error_set(err, st, "%s: compacted (readers see it) but the rename may not be "
                         "durable: %s", w->path, why.message);
        } else {
            /* Done and durable; a writer that cannot take it up again is
             * only unusable. */
            sf_error ignored;
            if (load_committed(w, &ignored) != SF_OK || index_keys(w, &ignored) != SF_OK)
                w->broken = 1;
        }
    }
    sf_temp_unregister(slot);
    free(tmp);
    free(c.new_id);
    free(live);
    free(norm);
    return st;
}
