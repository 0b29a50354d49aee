/* Shared by index_read.c and index_write.c: the on-disk layout of the ASMK
 * index (man/sf-index.5) and the parsed view of one committed state. */
#ifndef SF_INDEX_INTERNAL_H
#define SF_INDEX_INTERNAL_H

#include <stdint.h>

#include "sf_index.h"
#include "sf_internal.h"

/* ---- Layout ---- */

#define IX_MAGIC "SFASMKIX"
#define IX_VERSION 1
#define IX_HEADER_SIZE 512
/* Two commit slots, each in its own 512-byte sector so that a torn write of
 * one never touches the other. */
#define IX_SLOT0 512
#define IX_SLOT1 1024
#define IX_SLOT_SIZE 64
#define IX_DATA_START 1536
#define IX_SLOT_MAGIC "SFIXSLOT"
#define IX_COMMIT_MAGIC "SFIXCMT1"
#define IX_COMMIT_FIXED 64
/* Segments of layout 1 have no list checksums; they are read (verified
 * whole when the index is opened) and no longer written. */
#define IX_SEG_MAGIC "SFIXSEG2"
#define IX_SEG_MAGIC_V1 "SFIXSEG1"
/* Layout 3: layout 2 plus a global part (one f32 vector per image) after
 * the vectors; written only for segments whose images all have one, so
 * that an index without global descriptors stays byte for byte as before. */
#define IX_SEG_MAGIC_V3 "SFIXSEG3"
#define IX_MAX_GLOBAL_DIM 65536
#define IX_SEG_HEADER 64
#define IX_SEG_ENTRY 48   /* one segment in the commit record */
#define IX_IMAGE_ENTRY 16 /* one image in a segment's table */
/* A directory entry: the list's first entry, u64; in layout 2 followed by
 * its id sum and vector sum, u64 each, in the same cache line or the
 * next, so that a search gets them with the bounds it reads anyway. */
#define IX_DIR_ENTRY_V1 8
#define IX_DIR_ENTRY 24
#define IX_ALIGN 64
#define IX_MAX_KEY 4096
#define IX_MAX_PATH 4096
/* k is not bounded by the file: an index without segments holds nothing
 * k-sized.  So no code may allocate or loop over k words before the file
 * has shown k-sized data (a segment's directory, the idf table). */
#define IX_MAX_WORDS SF_INDEX_MAX_WORDS

#define IX_FLAG_BINARY 1u
#define IX_FLAG_IDF 2u
#define IX_COMMIT_HAS_IDF 1u
#define IX_COMMIT_HAS_FEATURES 2u

/* Round up to IX_ALIGN; callers keep v far below UINT64_MAX. */
static inline uint64_t ix_align(uint64_t v) { return (v + IX_ALIGN - 1) & ~(uint64_t)(IX_ALIGN - 1); }

/* Offsets of the parts of a segment, relative to its start. */
typedef struct ix_seg_layout {
    uint64_t dir;    /* k + 1 entries, one list per word: IX_DIR_ENTRY bytes */
    uint64_t images; /* n_images x IX_IMAGE_ENTRY */
    uint64_t keys;   /* keys_bytes */
    uint64_t ids;    /* n_entries u32, image number within the segment */
    uint64_t vecs;   /* n_entries x vec_bytes */
    uint64_t global; /* layout 3: n_images x global dim f32 */
    uint64_t size;   /* whole segment */
} ix_seg_layout;

/* 0 when the sizes overflow or exceed limit. */
int ix_seg_layout_compute(int version, uint64_t k, uint64_t n_images, uint64_t n_entries,
                          uint64_t keys_bytes, uint64_t vec_bytes, uint64_t global_dim,
                          uint64_t limit, ix_seg_layout *out);

/* ---- List checksums (layout 2) ----
 *
 * Each list has two: one of its image numbers and one of its vectors, so
 * that a reader checks exactly the part it reads, piece by piece in any
 * order.  Both are sums modulo 2^64 over the list's entries, each entry's
 * value times the odd weight 2e + 1, e being the entry's position in the
 * segment.  An entry's value is its image number, or for the vectors the
 * sum modulo 2^64 of the vector's little-endian u64 words (and of its
 * last u32 word when the size is not a multiple of 8).  An odd weight is
 * invertible modulo 2^64, so any change to one word of an entry (every
 * single-byte flip) changes the sum; moved entries or list bounds change
 * it too, except by chance; two words of one vector trading places do
 * not.  Cheap enough to run over every entry a search scores: XXH64 over
 * the same bytes made searches 4 times slower, weights per u32 word 12 %. */

static inline uint64_t ix_vec_value(const unsigned char *v, uint64_t vec_bytes)
{
    uint64_t x = 0, j = 0;
    for (; j + 8 <= vec_bytes; j += 8)
        x += sf_get_u64(v + j);
    if (j < vec_bytes) /* vector sizes are multiples of 4 */
        x += sf_get_u32(v + j);
    return x;
}

static inline uint64_t ix_weight(uint64_t e) { return 2 * e + 1; }

/* Sums over entries [e0, e1) of the ids (arrays that start the
 * numbering: a segment's).  ix_entries_sum_of: of the ids and vectors
 * together (each entry's id and vector value added, then weighted), which
 * a search checks against a list's id sum plus vector sum with half the
 * products; a change to any one word still shows.  The vectors' sum alone
 * is the difference of the two. */
uint64_t ix_ids_sum_of(const uint32_t *ids, uint64_t e0, uint64_t e1);
uint64_t ix_entries_sum_of(const uint32_t *ids, const unsigned char *vecs, uint64_t e0,
                           uint64_t e1, uint64_t vec_bytes);

/* ---- Parsed index ---- */

typedef struct ix_segment {
    uint64_t offset, size, checksum;
    uint64_t n_images, n_entries, keys_bytes;
    uint64_t slot_base; /* id of its first image */
    int version;        /* its layout: 1, 2 or 3 */
    /* Layout 2: XXH64 of the image table and keys, from its header, and
     * whether this process has checked it (0 no, 1 yes; set atomically by
     * whichever reader first needs them, on a const index). */
    uint64_t table_sum;
    int table_checked;
    const unsigned char *base;
    const unsigned char *dir;    /* k + 1 entries of dir_stride bytes */
    uint64_t dir_stride;         /* IX_DIR_ENTRY, or IX_DIR_ENTRY_V1 */
    const unsigned char *images;
    const char *keys;
    const uint32_t *ids;
    const unsigned char *vecs;
    /* Layout 3: the global part, its dimension and XXH64 (from the
     * header), checked once per process as the table is. */
    const float *global;
    uint64_t global_dim, global_sum;
    int global_checked;
} ix_segment;

struct sf_index {
    char *name;
    /* The mapping (or copy) covers [0, size): the header and everything up
     * to the end of the commit record. */
    const unsigned char *data;
    uint64_t size;
    void *map;        /* munmap on close, or NULL */
    size_t map_size;
    void *copy;       /* free on close, or NULL */

    sf_index_params params;
    sf_index_codebook_id codebook;
    uint32_t flags;
    uint64_t vec_bytes;
    char *codebook_path;

    uint64_t generation;
    /* The other slot when its bytes fail their checksum but are not all
     * zero (a slot never written is zero), else -1; with its generation
     * field, unchecked.  file_size: the whole file's, to tell whether data
     * follows the commit in use. */
    int damaged_slot;
    uint64_t damaged_generation;
    uint64_t file_size;
    uint64_t features; /* sf_provenance_features of its images; 0: not recorded */
    uint64_t commit_offset, commit_size;
    size_t n_segments;
    ix_segment *segs;
    uint64_t n_slots, n_live;
    const uint64_t *live; /* bitmap, n_slots bits */
    const double *norm;   /* n_slots */
    const float *idf;     /* k, or NULL without idf */
    double *norm_sqrt;    /* n_slots + 1 (the last is 1.0, a safe target) */
};

/* Parse data[0, size) as an index file, taking the header and the commit
 * slots from head (its first IX_DATA_START bytes; NULL: from data).  idx
 * needs its name set and nothing else.  On failure idx may hold partial
 * allocations: ix_release it. */
sf_status ix_parse(sf_index *idx, const unsigned char *data, uint64_t size,
                   const unsigned char *head, sf_error *err);
/* Read the header and choose the newest valid slot from the first
 * IX_DATA_START bytes. */
sf_status ix_parse_header(sf_index *idx, const unsigned char *head, sf_error *err);

typedef struct ix_slot_pick {
    int which; /* the valid slot with the highest generation */
    uint64_t generation, offset, size, checksum;
    int damaged; /* as sf_index.damaged_slot */
    uint64_t damaged_generation;
} ix_slot_pick;
sf_status ix_pick_slot(const sf_index *idx, const unsigned char *head, uint64_t file_size,
                       ix_slot_pick *pick, sf_error *err);
void ix_release(sf_index *idx);

static inline int ix_live(const uint64_t *bits, uint64_t i) { return (int)((bits[i >> 6] >> (i & 63)) & 1); }

/* Point s (offset, size, n_images and n_entries set) at its bytes h,
 * checking its header and sizes; 0 if they do not match. */
int ix_segment_bind(ix_segment *s, const unsigned char *h, uint64_t k, uint64_t vec_bytes);

/* The entries [*first, *end) of word w in segment s, checked against the
 * segment's entry count. */
sf_status ix_word_range(const sf_index *idx, const ix_segment *s, uint64_t w, uint64_t *first,
                        uint64_t *end, sf_error *err);
/* Word w's entry in s's directory: its list's first entry; in layout 2,
 * the list's id sum and vector sum. */
static inline uint64_t ix_dir_start(const ix_segment *s, uint64_t w)
{
    return sf_get_u64(s->dir + s->dir_stride * w);
}
static inline uint64_t ix_dir_id_sum(const ix_segment *s, uint64_t w)
{
    return sf_get_u64(s->dir + IX_DIR_ENTRY * w + 8);
}
static inline uint64_t ix_dir_vec_sum(const ix_segment *s, uint64_t w)
{
    return sf_get_u64(s->dir + IX_DIR_ENTRY * w + 16);
}

/* Sum of entries [e0, e1) of s: of their image numbers. */
static inline uint64_t ix_ids_sum(const ix_segment *s, uint64_t e0, uint64_t e1)
{
    return ix_ids_sum_of(s->ids, e0, e1);
}
/* Check word w's list in s against its sums: its image numbers, and its
 * vectors too when vectors is set.  Layout 1 segments have none (they
 * were verified whole on opening). */
sf_status ix_check_list(const sf_index *idx, const ix_segment *s, uint64_t w, int vectors,
                        sf_error *err);
sf_status ix_list_mismatch(const sf_index *idx, const ix_segment *s, uint64_t w, sf_error *err);
/* For bench_index only (not exported): make searcher s skip the list
 * checks, to measure what they cost against the same index in the same
 * process. */
void ix_searcher_skip_checks(sf_index_searcher *s, int skip);
/* Tests: fetch ahead in the binary kernel from tiles of this many images
 * on (normally only in large ones), so that small indexes take that path. */
void ix_searcher_prefetch_min(sf_index_searcher *s, size_t images);

/* Check s's image table and keys against their checksum, once per process. */
sf_status ix_check_table(const sf_index *idx, const ix_segment *s, sf_error *err);

/* Check s's global part against its checksum, once per process. */
sf_status ix_check_global(const sf_index *idx, const ix_segment *s, sf_error *err);

/* The global dimension of the first segment holding live images and
 * global descriptors (0: none); *missing: the live images without one. */
uint64_t ix_global_held(const sf_index *idx, uint64_t *missing);

/* Segment holding id, and the image's table entry. */
const ix_segment *ix_segment_of(const sf_index *idx, uint64_t id);
sf_status ix_image_entry(const sf_index *idx, const ix_segment *s, uint64_t local,
                         const char **key, uint32_t *key_len, uint32_t *n_vectors,
                         sf_error *err);

/* XXH64 of a segment as stored: the hash of the hashes of its three parts
 * (everything before the ids, the ids, the vectors), so that a writer can
 * fill the parts in any order. */
uint64_t ix_combine_parts(const uint64_t part[3]);

/* idf of a word with count live entries among n_live images, as
 * sf_asmk_ivf_finalize computes it. */
float ix_idf(uint64_t n_live, uint64_t count);

#endif
