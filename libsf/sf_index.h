/* The on-disk ASMK index (spec section 7): an inverted file that can grow
 * by nightly additions, shrink by removals, and be searched in place
 * through mmap by any number of readers while one writer updates it.
 * Byte layout and commit protocol: man/sf-index.5.
 *
 * An index holds images under unique keys.  Each image has an id, its
 * position in the index (0 .. sf_index_n_ids - 1); removing or replacing an
 * image leaves its id unused until sf_index_writer_compact renumbers.
 * Scores equal those of an in-memory sf_asmk_ivf holding the live images
 * bit for bit. */
#ifndef SF_INDEX_H
#define SF_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "sf_asmk.h"
#include "sf_codebook.h"
#include "sf_config.h"
#include "sf_status.h"
#include "sf_stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fixed when the index is created. */
typedef struct sf_index_params {
    sf_asmk_params asmk; /* kernel (binary), idf, threshold, alpha */
    int ma_database;     /* nearest words per database descriptor (1 officially) */
} sf_index_params;

/* The official evaluation settings (sf_asmk_params_default, ma 1). */
void sf_index_params_default(sf_index_params *params);
/* The index parameters of a configuration (the asmk.* keys). */
void sf_index_params_from_config(sf_index_params *params, const sf_config *config);

/* The most visual words an index is made for: the bound of
 * asmk.codebook_size (sf-config(5)).  Opening refuses a header that claims
 * more. */
#define SF_INDEX_MAX_WORDS 16777216

/* Which codebook an index was built with.  The checksum is the codebook
 * file's content checksum; the index only compares it. */
typedef struct sf_index_codebook_id {
    uint64_t k;        /* number of visual words */
    uint64_t dim;      /* descriptor dimension */
    uint64_t checksum;
} sf_index_codebook_id;

/* The identity of a loaded codebook, as an index records it. */
void sf_index_codebook_id_of(const sf_codebook *codebook, sf_index_codebook_id *id);

/* Create an empty index at path; fails with SF_ERR_INVALID_ARGUMENT if path
 * exists.  The file appears complete or not at all.  codebook_path (may be
 * NULL) is remembered as a hint for later additions. */
sf_status sf_index_create(const char *path, const sf_index_params *params,
                          const sf_index_codebook_id *codebook, const char *codebook_path,
                          sf_error *err);

/* ---- Reading ---- */

typedef struct sf_index sf_index;

/* Open the last committed state of an index, read-only.  Reads the header
 * and the commit record (about 9 bytes per image) and maps the rest; the
 * lists of a visual word are read when a query needs them.  Later commits
 * by a writer are not seen: open again to see them.  The handle may be
 * shared by threads; *out is owned by the caller. */
sf_status sf_index_open(const char *path, sf_index **out, sf_error *err);
/* The same over an index file image in memory (copied); name is used in
 * messages. */
sf_status sf_index_open_memory(const void *data, size_t size, const char *name,
                               sf_index **out, sf_error *err);
void sf_index_close(sf_index *index);

const sf_index_params *sf_index_get_params(const sf_index *index);
void sf_index_get_codebook(const sf_index *index, sf_index_codebook_id *out);
/* The codebook path given at creation, or "". */
const char *sf_index_codebook_path(const sf_index *index);
/* The fingerprint (sf_provenance_features) of the features its images were
 * made with, recorded by the first addition; 0 when none is recorded (an
 * empty index, or one written before sf recorded it). */
uint64_t sf_index_features(const sf_index *index);
/* SF_OK if codebook is the index's own, else SF_ERR_INVALID_ARGUMENT
 * naming both. */
sf_status sf_index_check_codebook(const sf_index *index, const sf_index_codebook_id *codebook,
                                  sf_error *err);

/* Number of ids, removed images included, and of live images. */
size_t sf_index_n_ids(const sf_index *index);
size_t sf_index_n_images(const sf_index *index);
int sf_index_is_live(const sf_index *index, size_t id);

typedef struct sf_index_image {
    const char *key; /* key_len bytes, not NUL-terminated, owned by the index */
    size_t key_len;
    uint32_t n_vectors; /* aggregated vectors (visual words) */
    double norm;        /* normaliser: n_vectors, or the sum of their idf */
    int live;           /* 0 once removed or replaced */
} sf_index_image;

sf_status sf_index_get_image(const sf_index *index, size_t id, sf_index_image *out,
                             sf_error *err);
/* The id of the live image with this key (a scan: O(images)), or
 * SF_ERR_NOT_FOUND. */
sf_status sf_index_find(const sf_index *index, const char *key, size_t *id, sf_error *err);

typedef struct sf_index_info {
    uint64_t generation;  /* commits since creation */
    size_t n_segments;
    size_t n_ids, n_images;
    uint64_t n_vectors;   /* aggregated vectors of the live images */
    uint64_t n_entries;   /* stored list entries, removed images included */
    size_t words_used;    /* visual words with a stored entry */
    uint64_t bytes;       /* size of the committed index */
} sf_index_info;

/* The two commit slots.  Opening uses the valid one with the highest
 * generation; a slot whose bytes fail their checksum is passed over, and
 * if it held the newest commit the index reads as it was one commit
 * earlier (a rollback). */
typedef struct sf_index_slot_state {
    int damaged;    /* -1: neither slot is damaged (a slot never written is
                       not); else the slot, 0 or 1, that fails its checksum */
    int newer_lost; /* damaged, and the file holds data past the commit in
                       use: the slot may have held a newer commit, lost now,
                       or one whose writer died while writing the slot */
    uint64_t lost_generation; /* newer_lost: the generation the slot claims,
                                 when it is the next one; else 0 */
} sf_index_slot_state;

/* SF_OK when neither slot is damaged; else SF_ERR_CHECKSUM with a message
 * naming the slot, the generation in use and whether a newer commit may
 * have been lost.  state may be NULL. */
sf_status sf_index_check_slots(const sf_index *index, sf_index_slot_state *state,
                               sf_error *err);

/* Counts and sizes; reads every segment's directory (8 bytes per word). */
sf_status sf_index_get_info(const sf_index *index, sf_index_info *out, sf_error *err);

/* Read everything and check it: the commit slots (sf_index_check_slots),
 * segment checksums, list order and ids, vector counts, unique keys, and
 * that the stored norms and idf are those the lists give. */
sf_status sf_index_verify(const sf_index *index, sf_error *err);

/* ---- Searching ----
 *
 * Several indexes (shards) are searched as one: their ids follow each
 * other in the order given, so global id = the number of ids of the shards
 * before + id.  With idf off a shard's scores do not depend on the other
 * shards, so results of shards searched on different machines merge
 * exactly by score.  With idf on each shard has its own idf and norms: the
 * scores differ from those of one index holding every image, and searching
 * more than one shard is refused unless allow_local_idf is set. */

typedef struct sf_index_search_options {
    int threads;         /* worker threads; 0: one per online core, where the
                            query is large enough to gain from them */
    int allow_local_idf; /* with idf, accept scores computed with per-shard idf */
    size_t tile;         /* images scored together, for tuning and tests
                            (0: 131072) */
} sf_index_search_options;

void sf_index_search_options_default(sf_index_search_options *opt);

typedef struct sf_index_hit {
    size_t shard;     /* position in the list of indexes */
    size_t id;        /* image id within that shard */
    size_t global_id; /* id across the shards */
    double score;
    const char *key;  /* key_len bytes, not NUL-terminated, owned by the shard */
    size_t key_len;
} sf_index_hit;

/* Reusable search state over a fixed list of open indexes (which must
 * outlive it): checks that they agree (kernel, parameters, codebook) and
 * keeps the score buffer between queries.  One query at a time. */
typedef struct sf_index_searcher sf_index_searcher;

sf_status sf_index_searcher_create(const sf_index *const *shards, size_t n_shards,
                                   const sf_index_search_options *opt,
                                   sf_index_searcher **out, sf_error *err);
void sf_index_searcher_free(sf_index_searcher *searcher);
/* Total number of ids over the shards. */
size_t sf_index_searcher_n_ids(const sf_index_searcher *searcher);

/* Score every id for the query's aggregated vectors (sf_asmk_aggregate
 * with the index's kernel, ma 5 officially).  scores has
 * sf_index_searcher_n_ids entries; removed ids get NaN (sf_asmk_rank puts
 * them last). */
sf_status sf_index_searcher_scores(sf_index_searcher *searcher, const sf_asmk_agg *query,
                                   double *scores, sf_error *err);
/* The top_k live images by descending score (equal scores by ascending
 * global id), into hits[0 .. *n_hits). */
sf_status sf_index_searcher_search(sf_index_searcher *searcher, const sf_asmk_agg *query,
                                   size_t top_k, sf_index_hit *hits, size_t *n_hits,
                                   sf_error *err);

/* Score only the n images global_ids (live or not, any order) for the
 * query, into scores[0 .. n): each equals, bit for bit, what
 * sf_index_searcher_scores gives that image; a removed image gets NaN.
 * Costs a binary search per query word and image instead of a pass over
 * every list: the way to re-rank a short list of candidates (from a
 * global-descriptor search) in an index too large to score whole. */
sf_status sf_index_searcher_scores_subset(sf_index_searcher *searcher, const sf_asmk_agg *query,
                                          const size_t *global_ids, size_t n, double *scores,
                                          sf_error *err);

/* The global id of the live image with this key in any shard (the first
 * shard holding it), or SF_ERR_NOT_FOUND.  The first call reads every
 * key once into a hash table (about 16 bytes per image). */
sf_status sf_index_searcher_find(sf_index_searcher *searcher, const char *key, size_t key_len,
                                 size_t *global_id, sf_error *err);
/* The key of a global id (owned by its shard). */
sf_status sf_index_searcher_key(const sf_index_searcher *searcher, size_t global_id,
                                const char **key, size_t *key_len, sf_error *err);

/* One-shot forms of sf_index_searcher_scores and _search. */
sf_status sf_index_search_scores(const sf_index *const *shards, size_t n_shards,
                                 const sf_asmk_agg *query, const sf_index_search_options *opt,
                                 double *scores, sf_error *err);
sf_status sf_index_search(const sf_index *const *shards, size_t n_shards,
                          const sf_asmk_agg *query, const sf_index_search_options *opt,
                          size_t top_k, sf_index_hit *hits, size_t *n_hits, sf_error *err);

/* ---- Global descriptors (the first stage of a global search) ----
 *
 * An index may hold one f32 global descriptor per image (sf-lit --global),
 * added with the image (sf_index_writer_add_global, _add_image) and kept
 * through removals and compaction.  It has a global stage when every live
 * image has one, all of one dimension: then its live images can be ranked
 * by global descriptor in place, with no stream to read. */

/* The dimension of the global stage; 0 when there is none.  *missing (may
 * be NULL) gets the number of live images without a global descriptor. */
size_t sf_index_global_dim(const sf_index *index, size_t *missing);

/* Image id's global descriptor (global_dim floats, owned by the index),
 * checked against its checksum; SF_ERR_NOT_FOUND when it has none. */
sf_status sf_index_global_get(const sf_index *index, size_t id, const float **global,
                              sf_error *err);

/* Rank the live images by the dot product of their global descriptors
 * with query (dim floats), exactly in fp32 as sf_search_global ranks a
 * stream database: the best top_k (0: all) into hits (room for
 * min(top_k, live images)), best first, equal scores by ascending id.
 * threads as sf_index_search_options (0: all cores where it pays).
 * Refuses (SF_ERR_INVALID_ARGUMENT) an index without a global stage and a
 * query of another dimension; every global part read is checked against
 * its checksum first (once per process; SF_ERR_CHECKSUM). */
sf_status sf_index_global_search(const sf_index *index, const float *query, size_t dim,
                                 size_t top_k, int threads, sf_index_hit *hits, size_t *n_hits,
                                 sf_error *err);

/* ---- Writing ----
 *
 * One writer at a time holds an exclusive lock (flock) on the index.
 * Changes are staged and become visible, all together, at
 * sf_index_writer_commit; a writer killed at any point leaves the last
 * commit intact.  Readers are never blocked. */

typedef struct sf_index_writer sf_index_writer;

typedef struct sf_index_writer_options {
    int no_wait;         /* fail at once if another writer holds the lock */
    size_t stage_bytes;  /* vectors held in memory before a segment is written
                            out (uncommitted); 0: 256 MiB */
    int accept_rollback; /* open even when a damaged commit slot may have
                            held a newer commit (sf_index_slot_state), and
                            discard what it pointed to */
} sf_index_writer_options;

void sf_index_writer_options_default(sf_index_writer_options *opt);

/* Lock and open the index for updates.  codebook is needed to add images
 * (NULL allows only removals and compaction) and must be the index's.
 * Refuses (SF_ERR_CHECKSUM) an index whose damaged commit slot may have
 * held a newer commit than the one in use, unless opt->accept_rollback:
 * writing would cut off that commit's data for good.  Otherwise a damaged
 * slot is cleared (it held nothing newer, or the loss is accepted). */
sf_status sf_index_writer_open(const char *path, const sf_index_codebook_id *codebook,
                               const sf_index_writer_options *opt, sf_index_writer **out,
                               sf_error *err);
/* Discard uncommitted changes and release the lock. */
void sf_index_writer_free(sf_index_writer *writer);

const sf_index_params *sf_index_writer_params(const sf_index_writer *writer);
/* Live images, counting staged changes. */
size_t sf_index_writer_n_images(const sf_index_writer *writer);

/* Stage an image: agg from sf_asmk_aggregate with the index's kernel and
 * dimension, words ascending.  A key already present (committed or staged)
 * is replaced; *replaced (may be NULL) says so.  Keys are 1..4096 bytes
 * without NUL. */
sf_status sf_index_writer_add(sf_index_writer *writer, const char *key, const sf_asmk_agg *agg,
                              int *replaced, sf_error *err);
/* Quantise n descriptors (n x dim) with the index's ma_database,
 * aggregate and stage them.  codebook must hold the index's centroids. */
sf_status sf_index_writer_add_descriptors(sf_index_writer *writer,
                                          const sf_asmk_codebook *codebook, const char *key,
                                          const float *desc, size_t n, int *replaced,
                                          sf_error *err);
/* Stage an image of a feature stream (sf-lit's output), checking first
 * what it must be:
 * - made as the index's images were: its provenance matches the features
 *   fingerprint the index holds (sf_provenance_check_features), or, when
 *   the index holds none yet, says it is the output of sf-lit.  Otherwise
 *   SF_ERR_MISMATCH naming the image, unless allow_mismatch is set;
 * - with a local_desc record, K x the codebook's dimension, float32:
 *   SF_ERR_INVALID_ARGUMENT otherwise, with a message that leaves naming
 *   the image to the caller, as those of sf_index_writer_add_descriptors
 *   do.
 * Its global record, when it has one, is staged with it
 * (sf_index_writer_add_global and its refusals).
 * The first image staged with an sf-lit provenance, in an index that
 * holds no fingerprint, records its own (sf_index_writer_features).  An
 * image these checks refuse changes nothing. */
sf_status sf_index_writer_add_image(sf_index_writer *writer, const sf_asmk_codebook *codebook,
                                    const sf_stream_image *img, int allow_mismatch,
                                    int *replaced, sf_error *err);
/* sf_index_writer_add with the image's global descriptor (global_dim
 * floats; global NULL and global_dim 0: none).  Refused
 * (SF_ERR_INVALID_ARGUMENT, nothing staged): a dimension other than the
 * global descriptors the index holds; and an image without one while every
 * live image has one (it would end the index's global stage).  An image
 * without one in an index whose images have none is staged as before. */
sf_status sf_index_writer_add_global(sf_index_writer *writer, const char *key,
                                     const sf_asmk_agg *agg, const float *global,
                                     size_t global_dim, int *replaced, sf_error *err);
/* Stage the removal of a live image; SF_ERR_NOT_FOUND if there is none. */
sf_status sf_index_writer_remove(sf_index_writer *writer, const char *key, sf_error *err);
/* The features fingerprint the index holds (sf_index_features of the
 * committed state until set), and the one the next commit records.
 * sf_index_writer_add_image compares it with the images it adds and
 * records it; a caller staging aggregated vectors or descriptors does
 * that itself (sf_provenance_check_features). */
uint64_t sf_index_writer_features(const sf_index_writer *writer);
void sf_index_writer_set_features(sf_index_writer *writer, uint64_t features);

/* Publish the staged changes atomically (write, fsync, switch the commit
 * record).  With idf on this reads every list once to recompute idf and
 * norms.  On failure the index is as it was, unless
 * sf_index_writer_not_durable says otherwise. */
sf_status sf_index_writer_commit(sf_index_writer *writer, sf_error *err);

/* Commit, then rewrite the live images into a single segment in a new
 * file that atomically replaces the index (rename).  Ids are renumbered
 * in order; scores do not change.  Needs free space for the new copy. */
sf_status sf_index_writer_compact(sf_index_writer *writer, sf_error *err);

/* After sf_index_writer_commit or _compact failed: nonzero when the change
 * was made all the same (the new commit slot, or the compacted file, is in
 * place and readers see it) but making it durable failed (fdatasync or
 * fsync of the directory), so that a crash may still undo it; the writer
 * is then unusable.  0: the index is as it was before the call. */
int sf_index_writer_not_durable(const sf_index_writer *writer);

#ifdef __cplusplus
}
#endif
#endif
