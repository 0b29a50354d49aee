/* Image files to 8-bit RGB with libvips: the part of spec section 1 that
 * touches files.  Sizes follow Pillow exactly; pixels follow libvips'
 * Lanczos-3, which is close to (not bit-identical with) Pillow's. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

/* Replace *img by op's output, dropping the old reference. */
#define STEP(img, call)                          \
    do {                                         \
        VipsImage *next_ = NULL;                 \
        if (call) goto vips_failed;              \
        g_object_unref(img);                     \
        (img) = next_;                           \
    } while (0)

static sf_status decode(VipsImage *img, const char *name, const sf_decode_options *opt,
                        sf_rgb_image *out, sf_error *err)
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
    if (opt->autorotate && vips_image_get_orientation(img) > 1)
        STEP(img, vips_autorot(img, &next_, NULL));
    w = img->Xsize;
    h = img->Ysize;
    out->source_width = w;
    out->source_height = h;

    double target = opt->size;
    if (opt->has_crop) {
        /* PIL's crop rounds the box to integers (Python round: half to even). */
        double x1 = nearbyint(opt->crop[0]), y1 = nearbyint(opt->crop[1]);
        double x2 = nearbyint(opt->crop[2]), y2 = nearbyint(opt->crop[3]);
        if (!(x1 >= 0 && y1 >= 0 && x2 <= w && y2 <= h && x2 > x1 && y2 > y1)) {
            st = sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                              "%s: crop box %g,%g,%g,%g is not inside the %dx%d image",
                              name, opt->crop[0], opt->crop[1], opt->crop[2], opt->crop[3], w, h);
            g_object_unref(img);
            return st;
        }
        target = sf_crop_target_side(opt->size, x2 - x1, y2 - y1, w, h);
        STEP(img, vips_crop(img, &next_, (int)x1, (int)y1, (int)(x2 - x1), (int)(y2 - y1), NULL));
        w = img->Xsize;
        h = img->Ysize;
    }
    STEP(img, to_srgb8(img, &next_));

    int nw, nh;
    if (sf_thumbnail_size(w, h, target, &nw, &nh)) {
        STEP(img, vips_resize(img, &next_, (double)nw / w, "vscale", (double)nh / h,
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
    return decode(img, name, options, out, err);
}

/* Bounds on what a stray .npy file makes us allocate. */
#define NPY_MAX_BYTES (UINT64_C(1) << 32)
#define NPY_MAX_SIDE 65536

sf_status sf_image_load_npy(const char *path, sf_rgb_image *out, float **tensor,
                            sf_error *err)
{
    memset(out, 0, sizeof *out);
    *tensor = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return sf_error_set(err, errno == ENOENT ? SF_ERR_NOT_FOUND : SF_ERR_IO, "%s: %s",
                            path, strerror(errno));
    sf_npy_array a;
    sf_status st = sf_npy_read(fp, path, NPY_MAX_BYTES, &a, err);
    fclose(fp);
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
