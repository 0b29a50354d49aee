/* The codebook file, all integers little-endian:
 *
 *   0    8  magic "SFCODEBK"
 *   8    4  version (1)
 *   12   4  header size H (128): the centroids start here
 *   16   8  k
 *   24   8  dimension d
 *   32   8  centroid bytes (k * d * 4)
 *   40   8  XXH64 (seed 0) of the centroid bytes: the content checksum
 *   48   8  k-means seed
 *   56   8  training vectors
 *   64   8  f64 final inertia
 *   72   4  k-means iterations
 *   76   8  features fingerprint of the descriptors (0: not recorded)
 *   84  36  zero
 *   120  8  XXH64 (seed 0) of bytes 0..120
 *   H       k x d float32, row-major; the file ends there
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "sf_codebook.h"
#include "sf_index.h"
#include "sf_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the codebook stores float32 in host byte order and needs a little-endian host"
#endif

#define HEADER_SUM_AT 120

struct sf_codebook {
    unsigned char *file; /* the whole file, 64-byte aligned */
    size_t k, dim;
    uint64_t checksum;
    sf_codebook_training training;
};

uint64_t sf_codebook_checksum_data(const float *centroids, size_t k, size_t dim)
{
    return XXH64(centroids, k * dim * sizeof(float), 0);
}

/* bad: the status of a zero size (a malformed file, or a caller's mistake). */
static sf_status check_shape(const char *name, uint64_t k, uint64_t dim, uint64_t *bytes,
                             sf_status bad, sf_error *err)
{
    if (k == 0 || dim == 0)
        return sf_error_set(err, bad, "%s: codebook of %llu centroids of dimension "
                                                "%llu", name, (unsigned long long)k,
                            (unsigned long long)dim);
    if (k > SF_INDEX_MAX_WORDS || dim > (UINT64_C(1) << 32)
        || k * dim > (SIZE_MAX - SF_CODEBOOK_HEADER_SIZE) / sizeof(float))
        return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: codebook of %llu x %llu is too large",
                            name, (unsigned long long)k, (unsigned long long)dim);
    *bytes = k * dim * sizeof(float);
    return SF_OK;
}

/* Every value finite, and every squared norm too in float32, in which
 * distances to the centroids are computed (|x|^2 - 2 x.c + |c|^2): one
 * that overflows would make every distance to it infinite. */
static sf_status check_finite(const char *name, const float *c, size_t k, size_t dim,
                              sf_status bad, sf_error *err)
{
    for (size_t j = 0; j < k; j++) {
        const float *row = c + j * dim;
        double norm = 0.0;
        for (size_t i = 0; i < dim; i++) {
            if (!isfinite(row[i]))
                return sf_error_set(err, bad, "%s: centroid %zu has a non-finite value", name, j);
            norm += (double)row[i] * row[i];
        }
        if (!isfinite((float)norm))
            return sf_error_set(err, bad, "%s: centroid %zu: its squared norm overflows float32 "
                                          "(values too large)", name, j);
    }
    return SF_OK;
}

/* ---- Writing ---- */

sf_status sf_codebook_write(const char *path, const float *centroids, size_t k, size_t dim,
                            const sf_codebook_training *training, sf_error *err)
{
    uint64_t bytes;
    sf_status st = check_shape(path, k, dim, &bytes, SF_ERR_INVALID_ARGUMENT, err);
    if (st == SF_OK)
        st = check_finite(path, centroids, k, dim, SF_ERR_INVALID_ARGUMENT, err);
    if (st != SF_OK)
        return st;
    static const sf_codebook_training none;
    if (!training)
        training = &none;
    if (!isfinite(training->inertia))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: the training inertia is not "
                                                          "finite", path);

    unsigned char h[SF_CODEBOOK_HEADER_SIZE] = { 0 };
    memcpy(h, SF_CODEBOOK_MAGIC, 8);
    sf_put_u32(h + 8, SF_CODEBOOK_VERSION);
    sf_put_u32(h + 12, SF_CODEBOOK_HEADER_SIZE);
    sf_put_u64(h + 16, k);
    sf_put_u64(h + 24, dim);
    sf_put_u64(h + 32, bytes);
    sf_put_u64(h + 40, sf_codebook_checksum_data(centroids, k, dim));
    sf_put_u64(h + 48, training->seed);
    sf_put_u64(h + 56, training->samples);
    sf_put_f64(h + 64, training->inertia);
    sf_put_u32(h + 72, (uint32_t)training->iterations);
    sf_put_u64(h + 76, training->features);
    sf_put_u64(h + HEADER_SUM_AT, XXH64(h, HEADER_SUM_AT, 0));

    /* Beside the target, then renamed over it: a reader (or an index
     * builder running meanwhile) never sees half a codebook. */
    sf_atomic_file af;
    if ((st = sf_atomic_file_open(&af, path, err)) != SF_OK)
        return st;
    errno = 0;
    int ok = fwrite(h, 1, sizeof h, af.fp) == sizeof h
             && fwrite(centroids, 1, (size_t)bytes, af.fp) == bytes;
    return sf_atomic_file_commit(&af, ok, err);
}

/* ---- Reading ---- */

/* Check the header of a file of size bytes and fill cb's fields from it;
 * the centroids are at d + SF_CODEBOOK_HEADER_SIZE. */
static sf_status parse_header(const unsigned char *d, size_t size, const char *name,
                              sf_codebook *cb, sf_error *err)
{
    if (size < 8 || memcmp(d, SF_CODEBOOK_MAGIC, 8) != 0) {
        if (size < 8 && memcmp(d, SF_CODEBOOK_MAGIC, size) == 0)
            return sf_error_set(err, SF_ERR_TRUNCATED, "%s: codebook header is cut off "
                                                       "(%zu bytes)", name, size);
        return sf_error_set(err, SF_ERR_FORMAT, "%s: not an sf codebook (bad magic; "
                                                "expected \"%s\")", name, SF_CODEBOOK_MAGIC);
    }
    if (size < 12)
        return sf_error_set(err, SF_ERR_TRUNCATED, "%s: codebook header is cut off (%zu bytes)",
                            name, size);
    uint32_t version = sf_get_u32(d + 8);
    if (version != SF_CODEBOOK_VERSION)
        return sf_error_set(err, SF_ERR_VERSION, "%s: codebook version %u (this library reads "
                                                 "version %d)", name, version,
                            SF_CODEBOOK_VERSION);
    if (size < SF_CODEBOOK_HEADER_SIZE)
        return sf_error_set(err, SF_ERR_TRUNCATED, "%s: codebook header is cut off (%zu of %d "
                                                   "bytes)", name, size, SF_CODEBOOK_HEADER_SIZE);
    if (XXH64(d, HEADER_SUM_AT, 0) != sf_get_u64(d + HEADER_SUM_AT))
        return sf_error_set(err, SF_ERR_CHECKSUM, "%s: codebook header checksum mismatch", name);
    if (sf_get_u32(d + 12) != SF_CODEBOOK_HEADER_SIZE)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: codebook header size %u (expected %d)", name,
                            sf_get_u32(d + 12), SF_CODEBOOK_HEADER_SIZE);
    uint64_t k = sf_get_u64(d + 16), dim = sf_get_u64(d + 24), bytes;
    sf_status st = check_shape(name, k, dim, &bytes, SF_ERR_FORMAT, err);
    if (st != SF_OK)
        return st;
    if (sf_get_u64(d + 32) != bytes)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: codebook data size %llu does not match "
                                                "%llu x %llu float32", name,
                            (unsigned long long)sf_get_u64(d + 32), (unsigned long long)k,
                            (unsigned long long)dim);
    uint64_t want = SF_CODEBOOK_HEADER_SIZE + bytes;
    if (size != want)
        return sf_error_set(err, size < want ? SF_ERR_TRUNCATED : SF_ERR_FORMAT,
                            "%s: codebook of %llu x %llu should be %llu bytes, the file has %zu",
                            name, (unsigned long long)k, (unsigned long long)dim,
                            (unsigned long long)want, size);
    cb->k = (size_t)k;
    cb->dim = (size_t)dim;
    cb->checksum = sf_get_u64(d + 40);
    cb->training.seed = sf_get_u64(d + 48);
    cb->training.samples = sf_get_u64(d + 56);
    cb->training.inertia = sf_get_f64(d + 64);
    cb->training.iterations = (int)sf_get_u32(d + 72);
    cb->training.features = sf_get_u64(d + 76);
    /* What the writer refuses: a training that overflowed. */
    if (!isfinite(cb->training.inertia))
        return sf_error_set(err, SF_ERR_FORMAT, "%s: codebook training inertia is %g "
                                                "(the training overflowed)", name,
                            cb->training.inertia);
    return SF_OK;
}

/* Takes ownership of file (size bytes, 64-byte aligned). */
static sf_status finish_load(unsigned char *file, size_t size, const char *name,
                             sf_codebook **out, sf_error *err)
{
    sf_codebook *cb = calloc(1, sizeof *cb);
    if (!cb) {
        free(file);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    }
    cb->file = file;
    sf_status st = parse_header(file, size, name, cb, err);
    if (st == SF_OK) {
        const float *c = (const float *)(file + SF_CODEBOOK_HEADER_SIZE);
        if (sf_codebook_checksum_data(c, cb->k, cb->dim) != cb->checksum)
            st = sf_error_set(err, SF_ERR_CHECKSUM,
                              "%s: codebook centroid checksum mismatch (the file is damaged)",
                              name);
        else
            st = check_finite(name, c, cb->k, cb->dim, SF_ERR_FORMAT, err);
    }
    if (st != SF_OK) {
        sf_codebook_free(cb);
        return st;
    }
    *out = cb;
    return SF_OK;
}

static unsigned char *alloc_file(size_t size)
{
    void *p = NULL;
    return posix_memalign(&p, 64, size ? size : 1) == 0 ? p : NULL;
}

sf_status sf_codebook_load_buffer(const void *data, size_t size, const char *name,
                                  sf_codebook **out, sf_error *err)
{
    *out = NULL;
    unsigned char *file = alloc_file(size);
    if (!file)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    if (size)
        memcpy(file, data, size);
    return finish_load(file, size, name, out, err);
}

sf_status sf_codebook_load(const char *path, sf_codebook **out, sf_error *err)
{
    *out = NULL;
    void *file;
    size_t size;
    sf_status st = sf_read_file(path, 0, 1, &file, &size, err);
    if (st != SF_OK)
        return st;
    return finish_load(file, size, path, out, err);
}

void sf_codebook_free(sf_codebook *cb)
{
    if (!cb)
        return;
    free(cb->file);
    free(cb);
}

size_t sf_codebook_size(const sf_codebook *cb)
{
    return cb->k;
}

size_t sf_codebook_dim(const sf_codebook *cb)
{
    return cb->dim;
}

const float *sf_codebook_centroids(const sf_codebook *cb)
{
    return (const float *)(cb->file + SF_CODEBOOK_HEADER_SIZE);
}

uint64_t sf_codebook_checksum(const sf_codebook *cb)
{
    return cb->checksum;
}

const sf_codebook_training *sf_codebook_get_training(const sf_codebook *cb)
{
    return &cb->training;
}

size_t sf_codebook_default_size(uint64_t n)
{
    if (n == 0)
        return 0;
    size_t k = 1;
    while (k < SF_CODEBOOK_MAX_DEFAULT && (uint64_t)k * 2 * SF_CODEBOOK_PER_WORD <= n)
        k *= 2;
    return k;
}

size_t sf_codebook_max_size(uint64_t n)
{
    return n < SF_INDEX_MAX_WORDS ? (size_t)n : SF_INDEX_MAX_WORDS;
}

sf_status sf_codebook_check_size(size_t k, uint64_t n, sf_error *err)
{
    if (k == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "a codebook of 0 visual words");
    if (n == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "no training descriptors for a codebook of %zu visual words", k);
    if (k <= sf_codebook_max_size(n))
        return SF_OK;
    if (k > SF_INDEX_MAX_WORDS)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%zu visual words: an index takes at most %d", k,
                            SF_INDEX_MAX_WORDS);
    return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                        "%zu visual words need at least %zu training descriptors (k-means "
                        "needs one per word), there are %llu: the largest codebook they can "
                        "train has %zu words; the default for them is %zu (one word per %d "
                        "descriptors)",
                        k, k, (unsigned long long)n, sf_codebook_max_size(n),
                        sf_codebook_default_size(n), SF_CODEBOOK_PER_WORD);
}
