/* L2 k-means for training the visual codebook of ASMK (spec section 7),
 * and a seeded reservoir that samples the training descriptors.
 *
 * Distances are |x|^2 - 2 x.c + |c|^2 in float32, the products computed by
 * oneDNN's sgemm over blocks of rows and centroids, so memory stays bounded
 * whatever n and k are.  On a given processor, results depend only on the
 * data and the seed, not on the thread count: every row is computed the
 * same way whichever thread handles it, and sums are taken in a fixed
 * order. */
#ifndef SF_KMEANS_H
#define SF_KMEANS_H

#include <stddef.h>
#include <stdint.h>

#include "sf_status.h"
#include "sf_stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called once with iteration 0 (the inertia of the initial centroids),
 * then after each of the iterations with the inertia of the updated
 * centroids; the last call reports the final inertia. */
typedef void (*sf_kmeans_progress_fn)(void *ctx, int iteration, double inertia);

typedef struct sf_kmeans_options {
    int threads;                    /* 0: one per online core */
    sf_kmeans_progress_fn progress; /* may be NULL */
    void *progress_ctx;
} sf_kmeans_options;

/* Train k centroids on the n x d rows of x (row-major float32) into
 * centroids (k x d, the caller's buffer).
 *
 * Initialisation: the rows at k distinct positions drawn at random from
 * seed (equal rows may make equal centroids).  Then `iterations` Lloyd
 * steps: each moves every centroid to the mean of its rows (summed in
 * double) and assigns every row to its nearest centroid again; ties go to
 * the lower centroid index.
 *
 * Empty clusters: like faiss, a centroid left without rows is re-seeded by
 * splitting a big cluster with a small symmetric perturbation.  Here the
 * largest clusters donate first, each at most once per iteration; the
 * donor's centroid c becomes c - e and the empty one c + e, with
 * e = (f - c)/1024 where f is the donor's row farthest from it, so the
 * next assignment divides the donor's rows by a hyperplane through their
 * mean (faiss picks donors at random by size and perturbs every dimension
 * by a relative +-1/1024, which can leave all rows on one side).  A
 * cluster needs two rows and a farthest row away from its centroid to
 * donate; an empty cluster left over keeps its centroid and is retried at
 * the next iteration.
 *
 * inertia (may be NULL) receives the sum over rows of the squared distance
 * to the nearest final centroid.  Needs 1 <= k <= n, k <= INT32_MAX,
 * iterations >= 0 and finite values (SF_ERR_INVALID_ARGUMENT otherwise).
 * Distances are float32: a row whose squared norm overflows it (values
 * beyond about 1.8e19 / sqrt(d)), or any distance, centroid norm or
 * inertia that is not finite, is SF_ERR_INVALID_DATA, and no result is
 * given.  opt may be NULL for the defaults.  Allocates about 8n + 8kd
 * bytes, and 8 MiB per thread. */
sf_status sf_kmeans_train(const float *x, size_t n, size_t d, size_t k, int iterations,
                          uint64_t seed, const sf_kmeans_options *opt, float *centroids,
                          double *inertia, sf_error *err);

/* Nearest of the k centroids (k x d) of each of the n rows: its index into
 * assign (n entries) and, when dist is not NULL, the squared distance,
 * computed as in training (float32, clamped at 0).  Ties go to the lower
 * index.  threads as in sf_kmeans_options.  Non-finite values are
 * SF_ERR_INVALID_ARGUMENT; a centroid norm or distance that overflows
 * float32 is SF_ERR_INVALID_DATA. */
sf_status sf_kmeans_assign(const float *x, size_t n, size_t d, const float *centroids,
                           size_t k, int threads, int32_t *assign, float *dist,
                           sf_error *err);

/* ---- Sampling the training set ---- */

/* A uniform random sample of at most max_rows rows of dimension d out of
 * all the rows added (reservoir sampling, algorithm R): while fewer than
 * max_rows rows were seen it keeps them all, in order.  The sample depends
 * only on the seed and the sequence of rows.  Memory grows with the sample,
 * up to max_rows x d floats.  d may be 0 at creation: the first image
 * offered (sf_kmeans_sampler_add_image) sets it, and no rows are taken
 * before. */
typedef struct sf_kmeans_sampler sf_kmeans_sampler;

sf_status sf_kmeans_sampler_create(size_t max_rows, size_t d, uint64_t seed,
                                   sf_kmeans_sampler **out, sf_error *err);
void sf_kmeans_sampler_free(sf_kmeans_sampler *sampler);

/* Offer n rows (n x d floats, copied as needed); refused while d is 0. */
sf_status sf_kmeans_sampler_add(sf_kmeans_sampler *sampler, const float *rows, size_t n,
                                sf_error *err);

/* Relative tolerance of the scale filter of sf_kmeans_sampler_add_image:
 * scales are stored as float32 and typed with a few digits. */
#define SF_KMEANS_SCALE_TOLERANCE 1e-3

/* Offer the descriptors of one image of a feature stream: the rows of its
 * local_desc record (float32 K x d), in order.  With scale > 0 only the
 * rows whose local_scale value is within SF_KMEANS_SCALE_TOLERANCE * scale
 * of scale are offered, as if they were the only ones.  An image without
 * local_desc offers nothing.  The first local_desc record seen sets d when
 * the sampler has none yet; later ones must have it.  Errors name the
 * image by its key: SF_ERR_INVALID_DATA (a record of the wrong type, or,
 * when filtering, no local_scale record or one of another length),
 * SF_ERR_MISMATCH (descriptors of another dimension), SF_ERR_TOO_LARGE (a
 * dimension beyond 2^20); no row of the image is added then.  On
 * SF_ERR_NOMEM some may have been. */
sf_status sf_kmeans_sampler_add_image(sf_kmeans_sampler *sampler, const sf_stream_image *img,
                                      double scale, sf_error *err);
/* The sample: *n rows of d floats, owned by the sampler, valid until the
 * next add or free. */
const float *sf_kmeans_sampler_rows(const sf_kmeans_sampler *sampler, size_t *n);
/* d; 0 while no image has set it. */
size_t sf_kmeans_sampler_dim(const sf_kmeans_sampler *sampler);
/* Number of rows offered so far. */
uint64_t sf_kmeans_sampler_seen(const sf_kmeans_sampler *sampler);

#ifdef __cplusplus
}
#endif
#endif
