/* Fuzz target for the stacked-array reader (sf-cat --from-npy): the input
 * is the manifest, read against fixed arrays of every layout (rows,
 * stacked, flattened, f64 narrowed to f32).  Opening fails with one line
 * naming a file of the directory, or every image comes out checked: each
 * a valid image whose records carry its key, or a one-line refusal of that
 * image after which the reader goes on. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "sf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];

static void remove_dir(void)
{
    static const char *const names[] = { "manifest.tsv", "local_desc.npy", "local_scale.npy",
                                         "global.npy", "image.npy", "provenance.npy" };
    char path[300];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void write_file(const char *name, const void *data, size_t size)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp) != 0)
        abort();
}

static void write_array(const char *name, int dtype, unsigned ndim, const uint64_t *shape,
                        const void *values)
{
    sf_record rec;
    sf_record_make(&rec, "k", SF_KIND_GLOBAL, dtype, ndim, shape, values);
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sf_error err;
    if (sf_npy_save(path, &rec, &err) != SF_OK)
        abort();
}

/* The arrays, once: 6 rows of 2-d descriptors with their scales, 3 f64
 * global descriptors, 30 image elements, 2 provenance rows. */
static void make_arrays(void)
{
    const char *t = getenv("TMPDIR");
    if (!t || !*t)
        t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/sf-fuzz-npy-stack-XXXXXX", t);
    if (!mkdtemp(dir))
        abort();
    atexit(remove_dir);
    float desc[12], scale[6] = { 1, 1, 0.5f, 2, 1, 0.25f }, image[30];
    for (int i = 0; i < 12; i++)
        desc[i] = (float)i - 5.5f;
    for (int i = 0; i < 30; i++)
        image[i] = (float)i / 7;
    double global[6] = { 1, 0, 0, 1, 3e300, 1 }; /* row 2: beyond f32 */
    int64_t prov[12] = { 3, 1, 2, 3, 4, 5, 9, 0, 0, 0, 0, 0 }; /* row 1: no such stage */
    write_array("local_desc.npy", SF_DTYPE_F32, 2, (const uint64_t[]){ 6, 2 }, desc);
    write_array("local_scale.npy", SF_DTYPE_F32, 1, (const uint64_t[]){ 6 }, scale);
    write_array("global.npy", SF_DTYPE_F64, 2, (const uint64_t[]){ 3, 2 }, global);
    write_array("image.npy", SF_DTYPE_F32, 1, (const uint64_t[]){ 30 }, image);
    write_array("provenance.npy", SF_DTYPE_I64, 2, (const uint64_t[]){ 2, 6 }, prov);
}

static int one_of(sf_status st, const sf_status *ok, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (st == ok[i])
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0])
        make_arrays();
    write_file("manifest.tsv", data, size);
    sf_npy_stack_reader *r;
    sf_error err;
    sf_status st = sf_npy_stack_reader_open(dir, &r, &err);
    if (st != SF_OK) {
        static const sf_status ok[] = { SF_ERR_FORMAT, SF_ERR_NOT_FOUND, SF_ERR_TOO_LARGE,
                                        SF_ERR_NOMEM };
        /* Every message names a file of the directory, on one line. */
        if (r || !one_of(st, ok, sizeof ok / sizeof ok[0])
            || strncmp(err.message, dir, strlen(dir)) != 0 || strchr(err.message, '\n'))
            abort();
        return 0;
    }
    for (;;) {
        const sf_stream_image *img;
        st = sf_npy_stack_reader_next(r, &img, &err);
        if (st == SF_ERR_INVALID_DATA) {
            if (img || strncmp(err.message, dir, strlen(dir)) != 0 || strchr(err.message, '\n'))
                abort();
            continue;
        }
        if (st != SF_OK) {
            static const sf_status ok[] = { SF_ERR_TRUNCATED, SF_ERR_NOMEM };
            if (!one_of(st, ok, sizeof ok / sizeof ok[0]))
                abort();
            break;
        }
        if (!img)
            break;
        if (img->count == 0)
            abort();
        for (size_t i = 0; i < img->count; i++) {
            const sf_record *rec = &img->recs[i];
            if (rec->key_len != img->key_len || memcmp(rec->key, img->key, img->key_len) != 0
                || sf_record_check_contents(rec, &err) != SF_OK)
                abort();
        }
    }
    sf_npy_stack_reader_free(r);
    return 0;
}
