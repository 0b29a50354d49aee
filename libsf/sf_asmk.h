/* ASMK search (spec section 7): quantisation against a visual codebook,
 * per-word aggregation of residuals, and an in-memory inverted file that
 * scores query images against database images.
 *
 * The per-word scoring kernels are public so that an on-disk index can
 * score its own (mmap'ed) lists with exactly the same arithmetic. */
#ifndef SF_ASMK_H
#define SF_ASMK_H

#include <stddef.h>
#include <stdint.h>

#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Build and search parameters.  Defaults are those of the official
 * evaluation: binary kernel, no idf, threshold 0, alpha 3. */
typedef struct sf_asmk_params {
    int binary;                 /* 1: sign-packed residuals; 0: L2-normalised floats */
    int use_idf;                /* weight words by log(n_images/count)^2 */
    float similarity_threshold; /* entries with similarity below it are ignored */
    float alpha;                /* exponent applied to the kept similarities */
} sf_asmk_params;

void sf_asmk_params_default(sf_asmk_params *params);

/* ---- Codebook and quantisation ---- */

typedef struct sf_asmk_codebook sf_asmk_codebook;

/* Copy k x dim centroids (row-major).  Fails on k == 0, dim == 0, k beyond
 * INT32_MAX or non-finite values.  *out is owned by the caller. */
sf_status sf_asmk_codebook_create(const float *centroids, size_t k, size_t dim,
                                  sf_asmk_codebook **out, sf_error *err);
void sf_asmk_codebook_free(sf_asmk_codebook *codebook);
size_t sf_asmk_codebook_size(const sf_asmk_codebook *codebook);
size_t sf_asmk_codebook_dim(const sf_asmk_codebook *codebook);
/* The k x dim centroids, owned by the codebook. */
const float *sf_asmk_codebook_centroids(const sf_asmk_codebook *codebook);

/* The ma nearest centroids (L2) of each of the n descriptors (n x dim),
 * nearest first, into words (n x ma); equal distances go to the lower
 * centroid index.  Distances are |x|^2 + |c|^2 - 2 x.c in float32, as
 * blocked matrix products (oneDNN sgemm) on up to one thread per online
 * core; a descriptor gets the same words whatever the batch size and the
 * thread count.  On CPUs with AVX512-VNNI an int8 screen with a proven
 * error bound finds the candidates first and only they are measured in
 * float32: the same words, faster.  1 <= ma <= k. */
sf_status sf_asmk_codebook_quantize(const sf_asmk_codebook *codebook, const float *desc,
                                    size_t n, int ma, int32_t *words, sf_error *err);

/* How the nearest words are found; every method gives the same words. */
typedef enum sf_asmk_quant_method {
    SF_ASMK_QUANT_AUTO = 0,   /* the screen where it runs, else sgemm */
    SF_ASMK_QUANT_SGEMM = 1,  /* float32 distances to every word (oneDNN sgemm) */
    SF_ASMK_QUANT_SCREEN = 2  /* int8 screen (AVX512-VNNI) with an error bound, candidates
                               * re-checked in float32; SF_ERR_UNSUPPORTED on a CPU without
                               * it or a codebook it cannot serve exactly */
} sf_asmk_quant_method;

/* sf_asmk_codebook_quantize by the given method (AUTO is what it uses).
 * SCREEN falls back to sgemm for descriptors outside its bound's reach
 * (non-finite values, ma > 32). */
sf_status sf_asmk_codebook_quantize_with(const sf_asmk_codebook *codebook, const float *desc,
                                         size_t n, int ma, sf_asmk_quant_method method,
                                         int32_t *words, sf_error *err);

/* ---- Aggregation ---- */

/* uint32 words per packed binary vector: 32 dimensions each. */
size_t sf_asmk_packed_size(size_t dim);

/* Signs of v (bit set when v[i] > 0) packed most significant bit first:
 * dimension i is bit 31 - i%32 of out[i/32]; a trailing partial word is
 * left-aligned (its low bits are 0).  On disk each uint32 is little-endian,
 * so byte 0 of a word holds dimensions 24..31, dimension 24 in its top bit. */
void sf_asmk_pack_signs(const float *v, size_t dim, uint32_t *out);

/* The aggregated vectors of one image, one per distinct visual word. */
typedef struct sf_asmk_agg {
    size_t n;          /* number of aggregated vectors */
    size_t dim;        /* descriptor dimension */
    int binary;        /* which of packed / vectors is filled */
    int32_t *words;    /* n visual words, ascending */
    uint32_t *packed;  /* binary: n x sf_asmk_packed_size(dim) */
    float *vectors;    /* otherwise: n x dim, each R/(|R| + 1e-6) */
} sf_asmk_agg;

/* R_w = sum of (x - c_w) over the descriptors with w among their ma words
 * (words as sf_asmk_codebook_quantize writes them, n x ma; a word listed
 * twice for one descriptor counts once), summed in float32 in descriptor
 * order as the reference does.  out's arrays are owned by the caller:
 * release them with sf_asmk_agg_release, also after a failure. */
sf_status sf_asmk_aggregate(const sf_asmk_codebook *codebook, const float *desc, size_t n,
                            const int32_t *words, int ma, int binary, sf_asmk_agg *out,
                            sf_error *err);
void sf_asmk_agg_release(sf_asmk_agg *agg);

/* Quantise each descriptor to its ma nearest words, then aggregate: what
 * an image goes through before it is added to an index or searched.  out
 * is always safe to release. */
sf_status sf_asmk_quantize_aggregate(const sf_asmk_codebook *codebook, const float *desc,
                                     size_t n, int ma, int binary, sf_asmk_agg *out,
                                     sf_error *err);

/* ---- Per-word scoring kernels ----
 *
 * Score one query vector against the count database entries of one visual
 * word: for entry e of image m = image_ids[e] with similarity u >= the
 * threshold, add float32(idf * u^alpha) / norm_sqrt[m] (rounded to float32
 * again) to scores[m].  Binary: u = 1 - 2*hamming/(32*n_u32), vecs is
 * count x n_u32; float: u = dot product, vecs is count x dim.  image_ids
 * must index scores and norm_sqrt.  The arithmetic follows the reference:
 * per-word values in float32, accumulation in float64. */
void sf_asmk_score_word_binary(const uint32_t *qvec, const uint32_t *vecs,
                               const uint32_t *image_ids, size_t count, size_t n_u32,
                               float idf, const double *norm_sqrt,
                               const sf_asmk_params *params, double *scores);
void sf_asmk_score_word_float(const float *qvec, const float *vecs, const uint32_t *image_ids,
                              size_t count, size_t dim, float idf, const double *norm_sqrt,
                              const sf_asmk_params *params, double *scores);

/* ---- In-memory inverted file ---- */

typedef struct sf_asmk_ivf sf_asmk_ivf;

/* An empty index over the k x dim codebook (copied).  params may be NULL
 * for the defaults. */
sf_status sf_asmk_ivf_create(const float *centroids, size_t k, size_t dim,
                             const sf_asmk_params *params, sf_asmk_ivf **out, sf_error *err);
void sf_asmk_ivf_free(sf_asmk_ivf *ivf);

/* The index's codebook, for sf_asmk_codebook_quantize / sf_asmk_aggregate. */
const sf_asmk_codebook *sf_asmk_ivf_codebook(const sf_asmk_ivf *ivf);
const sf_asmk_params *sf_asmk_ivf_params(const sf_asmk_ivf *ivf);

/* Add the aggregated vectors of database image image_id (copied).  Each id
 * can be added once; ids need not be consecutive: n_images becomes the
 * largest id + 1 and missing ids score 0.  agg must match the index's
 * kernel (binary or not) and dimension. */
sf_status sf_asmk_ivf_add(sf_asmk_ivf *ivf, uint32_t image_id, const sf_asmk_agg *agg,
                          sf_error *err);
/* Quantise (ma nearest words, 1 for a database image officially),
 * aggregate and add n descriptors of one image. */
sf_status sf_asmk_ivf_add_descriptors(sf_asmk_ivf *ivf, uint32_t image_id, const float *desc,
                                      size_t n, int ma, sf_error *err);

/* Compute idf and the per-image normalisers.  Required after the last add
 * and before searching; adding again requires another call. */
sf_status sf_asmk_ivf_finalize(sf_asmk_ivf *ivf, sf_error *err);

size_t sf_asmk_ivf_n_images(const sf_asmk_ivf *ivf);
/* Per visual word (k values): 1.0 without idf or for an empty word. */
const float *sf_asmk_ivf_idf(const sf_asmk_ivf *ivf);
/* Per image (n_images values): the number of its aggregated vectors, or
 * the sum of their idf.  Valid after sf_asmk_ivf_finalize. */
const double *sf_asmk_ivf_norm_factor(const sf_asmk_ivf *ivf);
/* The list of visual word w: count entries, their image ids and vectors
 * (uint32 x packed size when binary, float x dim otherwise).  Pointers
 * are valid until the next add or free. */
sf_status sf_asmk_ivf_word(const sf_asmk_ivf *ivf, size_t word, const uint32_t **image_ids,
                           const void **vecs, size_t *count, sf_error *err);

/* Score every database image for the query's aggregated vectors:
 * scores has sf_asmk_ivf_n_images entries.  The result is
 * sum_w idf[w] u^alpha / sqrt(norm[m]) / sqrt(q_norm), where q_norm counts
 * every query vector (sum of idf with idf on; an empty word has idf 1). */
sf_status sf_asmk_ivf_search(const sf_asmk_ivf *ivf, const sf_asmk_agg *query, double *scores,
                             sf_error *err);
/* Quantise, aggregate and search n query descriptors (ma = 5 officially). */
sf_status sf_asmk_ivf_search_descriptors(const sf_asmk_ivf *ivf, const float *desc, size_t n,
                                         int ma, double *scores, sf_error *err);

/* Image ids by descending score into order (n entries); equal scores in
 * ascending id, NaN last. */
sf_status sf_asmk_rank(const double *scores, size_t n, uint32_t *order, sf_error *err);

#ifdef __cplusplus
}
#endif
#endif
