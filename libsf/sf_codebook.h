/* The visual codebook file written by sf-codebook: k x d float32 centroids
 * with their training parameters, versioned and checksummed.  Byte layout:
 * man/sf-codebook.1 (FILE FORMAT).
 *
 * The content checksum (XXH64 of the centroid bytes) identifies a
 * codebook: an index stores it and refuses to be searched or extended with
 * another codebook. */
#ifndef SF_CODEBOOK_H
#define SF_CODEBOOK_H

#include <stddef.h>
#include <stdint.h>

#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_CODEBOOK_MAGIC "SFCODEBK"
#define SF_CODEBOOK_VERSION 1
/* Bytes before the centroids in a version 1 file; a multiple of 64. */
#define SF_CODEBOOK_HEADER_SIZE 128

/* How the centroids were made; informational, kept in the file. */
typedef struct sf_codebook_training {
    uint64_t seed;    /* k-means seed */
    uint64_t samples; /* training vectors */
    int iterations;   /* k-means iterations */
    double inertia;   /* final sum of squared distances to the centroids */
    uint64_t features; /* sf_provenance_features of the descriptors it was made
                          for (trained on, or checked against on import);
                          0: not recorded (a codebook of an older sf) */
} sf_codebook_training;

typedef struct sf_codebook sf_codebook;

/* How big a codebook the training data supports, decided here for every
 * caller (sf-codebook, the sf-search driver, presets with
 * asmk.codebook_size 0).  The default size for n training descriptors is
 * the largest power of two k with at least SF_CODEBOOK_PER_WORD
 * descriptors per word (k * 32 <= n), at most SF_CODEBOOK_MAX_DEFAULT
 * (the official 65536), and 1 when n < 64; 0 when n == 0. */
#define SF_CODEBOOK_PER_WORD 32
#define SF_CODEBOOK_MAX_DEFAULT 65536
size_t sf_codebook_default_size(uint64_t n);
/* The largest codebook n descriptors can train at all: k-means needs one
 * descriptor per word, and an index takes at most SF_INDEX_MAX_WORDS
 * words.  0 when n == 0. */
size_t sf_codebook_max_size(uint64_t n);
/* SF_OK when n descriptors can train k words; else SF_ERR_INVALID_ARGUMENT
 * with a message giving the largest k that would work and the default. */
sf_status sf_codebook_check_size(size_t k, uint64_t n, sf_error *err);

/* XXH64 (seed 0) of k x dim float32 centroids as stored: little-endian,
 * row-major.  Equals sf_codebook_checksum of a file holding them. */
uint64_t sf_codebook_checksum_data(const float *centroids, size_t k, size_t dim);

/* Write a codebook file.  It is written beside path under a temporary
 * name, synced and renamed over path, so that readers see either the old
 * file or the whole new one; when path exists and is not a regular file
 * (a pipe, /dev/null) it is written to directly.  training may be NULL
 * (all zero).  Fails on k == 0, dim == 0, k beyond INT32_MAX, non-finite
 * values, a centroid whose squared norm overflows float32 (no distance to
 * it could be computed) or a non-finite inertia. */
sf_status sf_codebook_write(const char *path, const float *centroids, size_t k, size_t dim,
                            const sf_codebook_training *training, sf_error *err);

/* Read and check a codebook file: magic, version, header checksum, sizes
 * against the file length, the centroids' checksum, and what the writer
 * refuses (a file made elsewhere, or by a training that overflowed):
 * non-finite values, squared norms or inertia.  Each failure names the
 * file and the reason (SF_ERR_FORMAT, SF_ERR_VERSION, SF_ERR_TRUNCATED,
 * SF_ERR_CHECKSUM, SF_ERR_IO, SF_ERR_NOT_FOUND).  *out is owned by the
 * caller. */
sf_status sf_codebook_load(const char *path, sf_codebook **out, sf_error *err);
/* The same from the size bytes at data (copied); name is used in messages. */
sf_status sf_codebook_load_buffer(const void *data, size_t size, const char *name,
                                  sf_codebook **out, sf_error *err);
void sf_codebook_free(sf_codebook *codebook);

size_t sf_codebook_size(const sf_codebook *codebook); /* k */
size_t sf_codebook_dim(const sf_codebook *codebook);
/* k x dim centroids, 64-byte aligned, owned by the codebook. */
const float *sf_codebook_centroids(const sf_codebook *codebook);
uint64_t sf_codebook_checksum(const sf_codebook *codebook);
const sf_codebook_training *sf_codebook_get_training(const sf_codebook *codebook);

#ifdef __cplusplus
}
#endif
#endif
