/* Fuzz target for the .npy reader (sf-decode takes a .npy file as an image
 * already decoded).  Each input is read twice: from a regular file, where
 * the header is checked against the file size before anything is
 * allocated, and from a stream without a size.  A failure leaves no data
 * and names the input on one line; a success returns exactly the bytes
 * after the header, and writing the array back gives a file that reads the
 * same and writes back to itself.  The file is also taken as an image, as
 * sf-decode takes it: that succeeds exactly for the two image layouts, and
 * under a memory limit gives the same image or fails as too large. */
#define _GNU_SOURCE /* memfd_create */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "sf.h"
#include "sf_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.npy"

static void check_failure(sf_status st, const sf_npy_array *a, const sf_error *err,
                          const char *name)
{
    if (st != SF_ERR_FORMAT && st != SF_ERR_VERSION && st != SF_ERR_TRUNCATED
        && st != SF_ERR_UNSUPPORTED && st != SF_ERR_TOO_LARGE && st != SF_ERR_NOMEM)
        abort();
    if (a->data || !fuzz_message_ok(err->message, name))
        abort();
}

/* What a successful read must satisfy, against the bytes it came from. */
static void check_array(const sf_npy_array *a, const uint8_t *data, size_t size,
                        uint64_t max_bytes)
{
    size_t elem = sf_dtype_size(a->dtype);
    if (!elem || a->ndim > SF_STREAM_MAX_DIMS || !a->data)
        abort();
    uint64_t count = sf_shape_count(a->shape, a->ndim);
    if (count == UINT64_MAX || a->data_size != count * elem || a->data_size > max_bytes)
        abort();
    /* The data follow the header: preamble (10 bytes, 12 from version 2)
     * and the header length it gives. */
    size_t hlen = data[6] == 1 ? (size_t)data[8] | (size_t)data[9] << 8
                               : (size_t)data[8] | (size_t)data[9] << 8
                                     | (size_t)data[10] << 16 | (size_t)data[11] << 24;
    size_t at = (data[6] == 1 ? 10 : 12) + hlen;
    if (at > size || a->data_size > size - at
        || (a->data_size && memcmp(a->data, data + at, (size_t)a->data_size) != 0))
        abort();
}

/* Write a as .npy into memory; NULL when the writer refuses it. */
static char *write_npy(const sf_npy_array *a, size_t *len)
{
    sf_record rec;
    memset(&rec, 0, sizeof rec);
    rec.kind = SF_KIND_GLOBAL;
    rec.dtype = a->dtype;
    rec.ndim = a->ndim;
    rec.scale = 1.0;
    memcpy(rec.shape, a->shape, sizeof rec.shape);
    rec.key = "k";
    rec.key_len = 1;
    rec.data = a->data;
    rec.data_size = a->data_size;
    char *out = NULL;
    FILE *fp = open_memstream(&out, len);
    sf_error err;
    if (!fp)
        abort();
    sf_status st = sf_npy_write(fp, &rec, &err);
    if (fclose(fp) != 0)
        abort();
    if (st != SF_OK) {
        /* Only a payload too large for memory may be refused. */
        if (st != SF_ERR_TOO_LARGE)
            abort();
        free(out);
        return NULL;
    }
    /* NumPy's alignment, so the data can be memory-mapped. */
    if (*len < 10 || (*len - a->data_size) % 64 != 0)
        abort();
    return out;
}

static int same_array(const sf_npy_array *a, const sf_npy_array *b)
{
    return a->dtype == b->dtype && a->ndim == b->ndim
           && memcmp(a->shape, b->shape, a->ndim * sizeof a->shape[0]) == 0
           && a->data_size == b->data_size
           && (!a->data_size || memcmp(a->data, b->data, (size_t)a->data_size) == 0);
}

static void round_trip(const sf_npy_array *a)
{
    size_t len;
    char *text = write_npy(a, &len);
    if (!text)
        return;
    FILE *fp = fmemopen(text, len, "rb");
    sf_npy_array b;
    sf_error err;
    if (!fp || sf_npy_read(fp, "written", UINT64_MAX, &b, &err) != SF_OK)
        abort();
    fclose(fp);
    if (!same_array(a, &b))
        abort();
    size_t len2;
    char *text2 = write_npy(&b, &len2);
    if (!text2 || len2 != len || memcmp(text, text2, len) != 0)
        abort();
    free(text2);
    free(b.data);
    free(text);
}

/* An image as sf_image_load_npy returns it: nothing, or the array a. */
static void check_image(sf_status st, const sf_rgb_image *img, const float *tensor,
                        const sf_error *err, const char *path, const sf_npy_array *a)
{
    if (st != SF_OK) {
        if (img->pixels || tensor || !fuzz_message_ok(err->message, path))
            abort();
        return;
    }
    int chw = a->dtype == SF_DTYPE_F32;
    uint64_t h = chw ? a->shape[1] : a->shape[0], w = chw ? a->shape[2] : a->shape[1];
    if ((uint64_t)img->width != w || (uint64_t)img->height != h
        || img->source_width != img->width || img->source_height != img->height
        || (chw ? (img->pixels || !tensor) : (!img->pixels || tensor)))
        abort();
    const void *got = chw ? (const void *)tensor : img->pixels;
    if (memcmp(got, a->data, (size_t)a->data_size) != 0)
        abort();
}

/* The file read by sf_image_load_npy, as the array a (st: how reading it
 * went): it must succeed exactly for pixels H x W x 3 u8 or a 3 x H x W
 * f32 tensor with sides 1..65536.  Under a memory limit it gives the same
 * image, or fails, too large. */
static void as_image(int fd, sf_status st, const sf_npy_array *a)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    sf_rgb_image img;
    float *tensor;
    sf_error err;
    sf_status ist = sf_image_load_npy(path, NULL, &img, &tensor, &err);
    check_image(ist, &img, tensor, &err, path, a);
    if (st != SF_OK) {
        if (ist != st)
            abort();
    } else {
        int chw = a->dtype == SF_DTYPE_F32 && a->ndim == 3 && a->shape[0] == 3;
        int hwc = a->dtype == SF_DTYPE_U8 && a->ndim == 3 && a->shape[2] == 3;
        uint64_t h = chw ? a->shape[1] : a->shape[0], w = chw ? a->shape[2] : a->shape[1];
        int fits = (chw || hwc) && h >= 1 && w >= 1 && h <= 65536 && w <= 65536;
        int finite = 1;
        for (uint64_t i = 0; fits && chw && finite && i < 3 * h * w; i++)
            finite = isfinite(((const float *)a->data)[i]);
        if (fits ? ist != (finite ? SF_OK : SF_ERR_INVALID_DATA) : ist != SF_ERR_NOT_IMAGE)
            abort();
    }

    static const double scales[] = { 1.0, 0.5 };
    sf_decode_options o;
    memset(&o, 0, sizeof o);
    o.max_memory = 1 << 16;
    o.scales = scales;
    o.n_scales = 2;
    sf_rgb_image limited;
    float *limited_tensor;
    sf_status lst = sf_image_load_npy(path, &o, &limited, &limited_tensor, &err);
    check_image(lst, &limited, limited_tensor, &err, path, a);
    if (lst == SF_OK ? ist != SF_OK : lst != ist && lst != SF_ERR_TOO_LARGE)
        abort();
    free(limited_tensor);
    sf_rgb_image_release(&limited);
    free(tensor);
    sf_rgb_image_release(&img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A regular file: the reader may trust fstat and accept up to 4 GiB
     * (sf-decode's bound), allocating no more than the file holds. */
    int fd = memfd_create("fuzz.npy", 0);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    FILE *fp = fdopen(fd, "rb");
    if (!fp)
        abort();
    rewind(fp);
    const uint64_t big = UINT64_C(1) << 32;
    sf_npy_array a;
    sf_error err;
    sf_status st = sf_npy_read(fp, NAME, big, &a, &err);
    if (st != SF_OK) {
        check_failure(st, &a, &err, NAME);
    } else {
        check_array(&a, data, size, big);
        round_trip(&a);
    }
    as_image(fd, st, &a);
    fclose(fp);
    if (st == SF_OK)
        free(a.data);

    /* No size to check against: only max_bytes bounds what is allocated,
     * so keep it small. */
    static uint8_t empty[1];
    const uint64_t small = 1 << 20;
    fp = fmemopen(size ? (void *)data : empty, size, "rb");
    if (!fp)
        abort();
    sf_npy_array b;
    sf_status st2 = sf_npy_read(fp, "stream", small, &b, &err);
    fclose(fp);
    if (st2 != SF_OK) {
        check_failure(st2, &b, &err, "stream");
        /* Only the size bounds may tell the two readings apart. */
        if (st == SF_OK && st2 != SF_ERR_TOO_LARGE && st2 != SF_ERR_NOMEM)
            abort();
    } else {
        check_array(&b, data, size, small);
        if (st != SF_OK)
            abort();
        free(b.data);
    }
    return 0;
}
