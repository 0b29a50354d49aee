/* Image files to 8-bit RGB with libvips: the part of spec section 1 that
 * touches files.  Sizes follow Pillow exactly; pixels follow libvips'
 * Lanczos-3, which is close to (not bit-identical with) Pillow's. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#include "sf_internal.h"

static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static int vips_init_failed;

/* libvips reports problems through its error buffer, which we turn into
 * messages; its GLib warnings would add stray lines to our one-line-per-
 * file contract, so they are dropped. */
static void drop_vips_warning(const gchar *domain, GLogLevelFlags level,
                              const gchar *message, gpointer data)
{
}

static void start_vips(void)
{
    if (VIPS_INIT("sf") != 0) {
        vips_init_failed = 1;
        return;
    }
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, drop_vips_warning, NULL);
    /* Every file is decoded once: caching operations only costs memory. */
    vips_cache_set_max(0);
}

sf_status sf_image_library_init(sf_error *err)
{
    pthread_once(&vips_once, start_vips);
    if (vips_init_failed)
        return sf_error_set(err, SF_ERR_UNSUPPORTED, "libvips failed to start: %s",
                            vips_error_buffer());
    return SF_OK;
}

/* First line of libvips' error buffer, without the "vipsload: " style
 * prefix noise trimmed only where it is a bare operation name. */
static sf_status vips_failure(sf_error *err, sf_status status, const char *name,
                              const char *what)
{
    char detail[512];
    const char *buf = vips_error_buffer();
    sf_copy_text(detail, sizeof detail, buf, strcspn(buf, "\n"));
    vips_error_clear();
    if (detail[0])
        return sf_error_set(err, status, "%s: %s (%s)", name, what, detail);
    return sf_error_set(err, status, "%s: %s", name, what);
}

/* Any colour space libvips knows, any band count and depth -> 3-band uchar
 * sRGB.  Alpha is dropped, not composited, as Pillow's convert('RGB') does;
 * 16-bit images are scaled to 8 bits (Pillow would clip them). */
static int to_srgb8(VipsImage *in, VipsImage **out)
{
    VipsImage *t[4] = { NULL, NULL, NULL, NULL };
    VipsImage *cur = in;
    int rc = 0;
    g_object_ref(cur);
    if (!vips_colourspace_issupported(cur)) {
        /* Unknown interpretation: read the first bands as grey or RGB. */
        VipsInterpretation guess = cur->Bands >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
        if (cur->BandFmt == VIPS_FORMAT_USHORT)
            guess = cur->Bands >= 3 ? VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_GREY16;
        if (vips_copy(cur, &t[0], "interpretation", guess, NULL)) { rc = -1; goto done; }
        g_object_unref(cur);
        cur = t[0];
        t[0] = NULL;
    }
    if (vips_colourspace(cur, &t[1], VIPS_INTERPRETATION_sRGB, NULL)) { rc = -1; goto done; }
    g_object_unref(cur);
    cur = t[1];
    t[1] = NULL;
    if (cur->Bands > 3) {
        if (vips_extract_band(cur, &t[2], 0, "n", 3, NULL)) { rc = -1; goto done; }
        g_object_unref(cur);
        cur = t[2];
        t[2] = NULL;
    } else if (cur->Bands < 3) {
        VipsImage *bands[3] = { cur, cur, cur };
        if (vips_bandjoin(bands, &t[2], 3, NULL)) { rc = -1; goto done; }
        g_object_unref(cur);
        cur = t[2];
        t[2] = NULL;
    }
    if (cur->BandFmt != VIPS_FORMAT_UCHAR) {
        if (vips_cast(cur, &t[3], VIPS_FORMAT_UCHAR, NULL)) { rc = -1; goto done; }
        g_object_unref(cur);
        cur = t[3];
        t[3] = NULL;
    }
done:
    for (int i = 0; i < 4; i++)
        if (t[i])
            g_object_unref(t[i]);
    if (rc) {
        g_object_unref(cur);
        return -1;
    }
    *out = cur;
    return 0;
}

/* Rows of float32 RGB each libvips thread may hold per pixel of the source
 * width, and threads counted beyond VIPS_CONCURRENCY: about twice what
 * shrinking 60000 x 1500 and 8000 x 6000 images measured, with 1 to 16
 * threads. */
#define VIPS_ROWS_PER_THREAD 64
#define VIPS_EXTRA_THREADS 4

uint64_t sf_image_memory(uint64_t file_bytes, uint64_t source_bytes, int source_width,
                         int out_width, int out_height, const double *scales, int n_scales)
{
    /* In double, saturated at the end: the sizes asked about may be absurd. */
    double threads = (double)vips_concurrency_get() + VIPS_EXTRA_THREADS;
    double work = threads * (source_width > 0 ? source_width : 0) * 3 * sizeof(float) *
                  VIPS_ROWS_PER_THREAD;
    double pixels = 3.0 * (out_width > 0 ? out_width : 0) * (out_height > 0 ? out_height : 0);
    double decoding = (double)file_bytes + (double)source_bytes + work + 2 * pixels;
    uint64_t pyramid = scales && n_scales > 0
                           ? sf_pyramid_memory(out_height, out_width, scales, n_scales)
                           : 0;
    double after = pixels + (double)pyramid;
    double most = decoding > after ? decoding : after;
    return pyramid == UINT64_MAX || most >= 0x1p63 ? UINT64_MAX : (uint64_t)most;
}

/* A size for messages: MiB, or bytes below one. */
static void format_bytes(char *buf, size_t size, uint64_t bytes, int round_up)
{
    const uint64_t mib = UINT64_C(1) << 20;
    if (bytes == UINT64_MAX)
        snprintf(buf, size, "more than 2^63 bytes");
    else if (bytes % mib == 0 || bytes >= 16 * mib)
        snprintf(buf, size, "%llu MiB",
                 (unsigned long long)(bytes / mib + (round_up && bytes % mib != 0)));
    else
        snprintf(buf, size, "%llu bytes", (unsigned long long)bytes);
}

/* need 0: not known, only that it is more. */
static sf_status too_much_memory(sf_error *err, const char *name, uint64_t need, uint64_t limit)
{
    char n[64], l[64];
    format_bytes(n, sizeof n, need, 1);
    format_bytes(l, sizeof l, limit, 0);
    if (!need)
        return sf_error_set(err, SF_ERR_TOO_LARGE,
                            "%s: needs more memory than --max-memory (%s)", name, l);
    return sf_error_set(err, SF_ERR_TOO_LARGE,
                        "%s: needs about %s of memory, more than --max-memory (%s)", name, n, l);
}

/* Replace *img by op's output, dropping the old reference. */
#define STEP(img, call)                          \
    do {                                         \
        VipsImage *next_ = NULL;                 \
        if (call) goto vips_failed;              \
        g_object_unref(img);                     \
        (img) = next_;                           \
    } while (0)

/* img: the file's header, file_bytes long (held while decoding).  All
 * the sizes are planned from the header first, so that every limit is
 * checked before a pixel is decoded. */
static sf_status decode(VipsImage *img, uint64_t file_bytes, const char *name,
                        const sf_decode_options *opt, sf_rgb_image *out, sf_error *err)
{
    sf_status st;
    int w = img->Xsize, h = img->Ysize;
    if (opt->max_pixels && (uint64_t)w * (uint64_t)h > opt->max_pixels) {
        st = sf_error_set(err, SF_ERR_TOO_LARGE,
                          "%s: image too large (%dx%d = %llu pixels, --max-pixels is %llu)",
                          name, w, h, (unsigned long long)w * (unsigned long long)h,
                          (unsigned long long)opt->max_pixels);
        g_object_unref(img);
        return st;
    }
    /* EXIF orientations 5 to 8 turn the image a quarter. */
    int orientation = opt->autorotate ? vips_image_get_orientation(img) : 1;
    int rw = orientation >= 5 ? h : w, rh = orientation >= 5 ? w : h;
    out->source_width = rw;
    out->source_height = rh;

    double target = opt->size;
    double x1 = 0, y1 = 0, x2 = rw, y2 = rh;
    if (opt->has_crop) {
        /* PIL's crop rounds the box to integers (Python round: half to even). */
        x1 = nearbyint(opt->crop[0]), y1 = nearbyint(opt->crop[1]);
        x2 = nearbyint(opt->crop[2]), y2 = nearbyint(opt->crop[3]);
        if (!(x1 >= 0 && y1 >= 0 && x2 <= rw && y2 <= rh && x2 > x1 && y2 > y1)) {
            st = sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                              "%s: crop box %g,%g,%g,%g is not inside the %dx%d image",
                              name, opt->crop[0], opt->crop[1], opt->crop[2], opt->crop[3], rw,
                              rh);
            g_object_unref(img);
            return st;
        }
        target = sf_crop_target_side(opt->size, x2 - x1, y2 - y1, rw, rh);
    }
    int cw = (int)(x2 - x1), ch = (int)(y2 - y1);
    int nw, nh;
    int resize = sf_thumbnail_size(cw, ch, target, &nw, &nh);
    if (opt->max_memory) {
        uint64_t source = (uint64_t)w * (uint64_t)h * (uint64_t)img->Bands *
                          vips_format_sizeof(img->BandFmt);
        uint64_t need = sf_image_memory(file_bytes, source, w > rw ? w : rw, nw, nh,
                                        opt->scales, opt->n_scales);
        if (need > opt->max_memory) {
            st = too_much_memory(err, name, need, opt->max_memory);
            g_object_unref(img);
            return st;
        }
    }

    if (orientation > 1)
        STEP(img, vips_autorot(img, &next_, NULL));
    if (img->Xsize != rw || img->Ysize != rh) { /* the plan above must hold */
        st = sf_error_set(err, SF_ERR_NOT_IMAGE, "%s: turned upright, the %dx%d image is "
                                                 "%dx%d, not %dx%d", name, w, h, img->Xsize,
                          img->Ysize, rw, rh);
        g_object_unref(img);
        return st;
    }
    if (opt->has_crop)
        STEP(img, vips_crop(img, &next_, (int)x1, (int)y1, cw, ch, NULL));
    STEP(img, to_srgb8(img, &next_));

    if (resize) {
        STEP(img, vips_resize(img, &next_, (double)nw / cw, "vscale", (double)nh / ch,
                              "kernel", VIPS_KERNEL_LANCZOS3, NULL));
        /* libvips rounds its own output size; Pillow's size is the contract. */
        if (img->Xsize != nw || img->Ysize != nh) {
            if (img->Xsize >= nw && img->Ysize >= nh)
                STEP(img, vips_crop(img, &next_, 0, 0, nw, nh, NULL));
            else
                STEP(img, vips_embed(img, &next_, 0, 0, nw, nh, "extend", VIPS_EXTEND_COPY, NULL));
        }
    }
    size_t size = 0;
    void *pixels = vips_image_write_to_memory(img, &size);
    if (!pixels)
        goto vips_failed;
    if (size != (size_t)nw * (size_t)nh * 3) {
        g_free(pixels);
        g_object_unref(img);
        return sf_error_set(err, SF_ERR_NOT_IMAGE, "%s: decoder returned %zu bytes for %dx%d",
                            name, size, nw, nh);
    }
    /* Hand back malloc'd memory so callers free it with free(). */
    out->pixels = malloc(size);
    if (!out->pixels) {
        g_free(pixels);
        g_object_unref(img);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    }
    memcpy(out->pixels, pixels, size);
    g_free(pixels);
    out->width = nw;
    out->height = nh;
    g_object_unref(img);
    return SF_OK;

vips_failed:
    g_object_unref(img);
    return vips_failure(err, SF_ERR_NOT_IMAGE, name, "cannot decode image");
}

/* The file is opened and read once, whole, then decoded from memory:
 * FIFOs, pipes and process substitutions work like files, and an endless
 * input stops at max_bytes. */
sf_status sf_image_load_file(const char *path, const sf_decode_options *options,
                             sf_rgb_image *out, sf_error *err)
{
    struct stat st;
    memset(out, 0, sizeof *out);
    if (stat(path, &st) != 0)
        return sf_error_set(err, errno == ENOENT ? SF_ERR_NOT_FOUND : SF_ERR_IO, "%s: %s",
                            path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return sf_error_set(err, SF_ERR_IO, "%s: is a directory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sf_error_set(err, SF_ERR_IO, "%s: %s", path, strerror(errno));
    sf_status status = sf_image_load_fd(fd, path, options, out, err);
    close(fd);
    return status;
}

sf_status sf_image_load_fd(int fd, const char *name, const sf_decode_options *options,
                           sf_rgb_image *out, sf_error *err)
{
    void *data;
    size_t size;
    memset(out, 0, sizeof *out);
    sf_status status = sf_image_library_init(err);
    if (status == SF_OK)
        status = sf_read_fd(fd, name, options->max_bytes, &data, &size, err);
    if (status != SF_OK)
        return status;
    if (size == 0)
        status = sf_error_set(err, SF_ERR_NOT_IMAGE, "%s: not an image (empty file)", name);
    else
        status = sf_image_load_buffer(data, size, name, options, out, err);
    free(data);
    return status;
}

sf_status sf_image_load_buffer(const void *data, size_t size, const char *name,
                               const sf_decode_options *options, sf_rgb_image *out,
                               sf_error *err)
{
    sf_status status;
    memset(out, 0, sizeof *out);
    if ((status = sf_image_library_init(err)) != SF_OK)
        return status;
    if (size == 0)
        return sf_error_set(err, SF_ERR_NOT_IMAGE, "%s: not an image (empty)", name);
    if (!vips_foreign_find_load_buffer(data, size)) {
        vips_error_clear();
        return sf_error_set(err, SF_ERR_NOT_IMAGE, "%s: not an image (unknown format)", name);
    }
    VipsImage *img = vips_image_new_from_buffer(data, size, "", "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    if (!img)
        return vips_failure(err, SF_ERR_NOT_IMAGE, name, "not an image");
    return decode(img, size, name, options, out, err);
}

/* Bounds on what a stray .npy file makes us allocate. */
#define NPY_MAX_BYTES (UINT64_C(1) << 32)
#define NPY_MAX_SIDE 65536

sf_status sf_image_load_npy(const char *path, const sf_decode_options *options,
                            sf_rgb_image *out, float **tensor, sf_error *err)
{
    memset(out, 0, sizeof *out);
    *tensor = NULL;
    /* Cropping a tensor already sized would give a query other than the
     * one asked for: refused rather than ignored. */
    if (options && options->has_crop)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: a query crop does not apply to "
                                                          "a .npy file (an image already "
                                                          "decoded and sized)", path);
    uint64_t limit = options ? options->max_memory : 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return sf_error_set(err, errno == ENOENT ? SF_ERR_NOT_FOUND : SF_ERR_IO, "%s: %s",
                            path, strerror(errno));
    /* The data alone must fit in the memory limit: checked from the header
     * before it is read. */
    sf_npy_array a;
    sf_status st = sf_npy_read(fp, path, limit && limit < NPY_MAX_BYTES ? limit : NPY_MAX_BYTES,
                               &a, err);
    fclose(fp);
    if (st == SF_ERR_TOO_LARGE && limit && limit < NPY_MAX_BYTES)
        return too_much_memory(err, path, 0, limit);
    if (st != SF_OK)
        return st;
    int chw = a.dtype == SF_DTYPE_F32 && a.ndim == 3 && a.shape[0] == 3;
    int hwc = a.dtype == SF_DTYPE_U8 && a.ndim == 3 && a.shape[2] == 3;
    uint64_t h = chw ? a.shape[1] : a.shape[0], w = chw ? a.shape[2] : a.shape[1];
    if (!(chw || hwc) || h < 1 || w < 1 || h > NPY_MAX_SIDE || w > NPY_MAX_SIDE) {
        free(a.data);
        return sf_error_set(err, SF_ERR_NOT_IMAGE, "%s: expected a 3 x H x W float32 tensor "
                                                   "or H x W x 3 uint8 pixels", path);
    }
    if (limit) {
        /* The array stays while its pyramid is built. */
        uint64_t pyramid = options->scales && options->n_scales > 0
                               ? sf_pyramid_memory((int)h, (int)w, options->scales,
                                                   options->n_scales)
                               : 0;
        uint64_t need = pyramid == UINT64_MAX ? UINT64_MAX : a.data_size + pyramid;
        if (need > limit) {
            free(a.data);
            return too_much_memory(err, path, need, limit);
        }
    }
    if (chw) {
        /* The network would turn one NaN into a whole image of them. */
        const float *v = a.data;
        uint64_t bad = 0, n = 3 * h * w;
        for (uint64_t i = 0; i < n; i++)
            bad += !isfinite(v[i]);
        if (bad) {
            free(a.data);
            return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: %llu NaN or infinite values in "
                                                          "the tensor", path,
                                (unsigned long long)bad);
        }
    }
    out->width = out->source_width = (int)w;
    out->height = out->source_height = (int)h;
    if (chw)
        *tensor = a.data;
    else
        out->pixels = a.data;
    return SF_OK;
}

void sf_rgb_image_release(sf_rgb_image *img)
{
    if (img) {
        free(img->pixels);
        img->pixels = NULL;
    }
}
