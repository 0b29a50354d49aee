/* Fuzz target for the codebook reader (sf-index and sf-match load the
 * codebook they are given).  A failure leaves no codebook and names the
 * input on one line; a success describes exactly the bytes it came from,
 * and writing it gives back those bytes, but for the reserved ones.
 *
 * The header and centroid checksums would stop almost every mutation at
 * the door, so each input is tried twice: as it is, and with both
 * recomputed so that the checks behind them get exercised. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "check.h"
#include "sf.h"
#include "sf_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.cbk"
#define H SF_CODEBOOK_HEADER_SIZE
/* Where the header checksum is, the reserved bytes before it, and the
 * features fingerprint before those. */
#define HEADER_SUM_AT 120
#define RESERVED_AT 84
#define FEATURES_AT 76

static void check_failure(sf_status st, const sf_codebook *cb, const sf_error *err,
                          const char *name)
{
    if (st != SF_ERR_FORMAT && st != SF_ERR_VERSION && st != SF_ERR_TRUNCATED
        && st != SF_ERR_CHECKSUM && st != SF_ERR_TOO_LARGE && st != SF_ERR_NOMEM)
        abort();
    if (cb || !fuzz_message_ok(err->message, name))
        abort();
}

/* A directory for the round trip's file, on tmpfs where there is one:
 * the writer syncs what it writes. */
static char dir[256];

static void remove_dir(void)
{
    if (dir[0])
        rmdir(dir);
}

static const char *scratch_path(void)
{
    static char path[300];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        if (!t || !*t)
            t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof dir, "%s/sf-fuzz-codebook-XXXXXX", t);
        if (!mkdtemp(dir))
            abort();
        atexit(remove_dir);
        snprintf(path, sizeof path, "%s/cb", dir);
    }
    return path;
}

static void check_codebook(const sf_codebook *cb, const uint8_t *d, size_t size)
{
    size_t k = sf_codebook_size(cb), dim = sf_codebook_dim(cb);
    const float *c = sf_codebook_centroids(cb);
    if (k == 0 || dim == 0 || k != sf_get_u64(d + 16) || dim != sf_get_u64(d + 24)
        || size != H + k * dim * sizeof(float) || ((uintptr_t)c & 63) != 0
        || memcmp(c, d + H, k * dim * sizeof(float)) != 0)
        abort();
    if (sf_codebook_checksum(cb) != sf_get_u64(d + 40)
        || sf_codebook_checksum(cb) != sf_codebook_checksum_data(c, k, dim))
        abort();
    for (size_t i = 0; i < k * dim; i++)
        if (!isfinite(c[i]))
            abort();
    const sf_codebook_training *t = sf_codebook_get_training(cb);
    double inertia = sf_get_f64(d + 64);
    if (t->seed != sf_get_u64(d + 48) || t->samples != sf_get_u64(d + 56)
        || memcmp(&t->inertia, &inertia, sizeof inertia) != 0
        || (uint32_t)t->iterations != sf_get_u32(d + 72) || t->features != sf_get_u64(d + FEATURES_AT))
        abort();

    /* Written out, it is the input with the reserved bytes zeroed. */
    const char *path = scratch_path();
    sf_error err;
    if (sf_codebook_write(path, c, k, dim, t, &err) != SF_OK)
        abort();
    uint8_t *want = malloc(size), *got = malloc(size + 1);
    FILE *fp = fopen(path, "rb");
    if (!want || !got || !fp)
        abort();
    memcpy(want, d, size);
    memset(want + RESERVED_AT, 0, HEADER_SUM_AT - RESERVED_AT);
    sf_put_u64(want + HEADER_SUM_AT, XXH64(want, HEADER_SUM_AT, 0));
    if (fread(got, 1, size + 1, fp) != size || memcmp(got, want, size) != 0)
        abort();
    fclose(fp);
    /* And the file loads by its path to the same codebook. */
    sf_codebook *again;
    if (sf_codebook_load(path, &again, &err) != SF_OK || sf_codebook_size(again) != k
        || sf_codebook_dim(again) != dim || sf_codebook_checksum(again) != sf_codebook_checksum(cb)
        || memcmp(sf_codebook_centroids(again), c, k * dim * sizeof(float)) != 0)
        abort();
    sf_codebook_free(again);
    unlink(path);
    free(want);
    free(got);
}

static void try_load(const uint8_t *d, size_t size)
{
    sf_codebook *cb = (sf_codebook *)&cb;
    sf_error err;
    sf_status st = sf_codebook_load_buffer(d, size, NAME, &cb, &err);
    if (st != SF_OK) {
        check_failure(st, cb, &err, NAME);
        return;
    }
    check_codebook(cb, d, size);
    sf_codebook_free(cb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t empty[1];
    try_load(size ? data : empty, size);
    if (size < H || size > (64u << 20))
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    sf_put_u64(copy + 40, XXH64(copy + H, size - H, 0));
    sf_put_u64(copy + HEADER_SUM_AT, XXH64(copy, HEADER_SUM_AT, 0));
    try_load(copy, size);
    free(copy);
    return 0;
}
