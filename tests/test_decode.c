/* Decoding the golden photo: sizes equal Pillow's, pixels differ only by
 * resampling (libvips' Lanczos vs Pillow's), crop case included.  And
 * .npy files taken as images. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf.h"
#include "testutil.h"

static void compare(const char *dir, const char *jpg, const sf_decode_options *opt,
                    const char *thumb, const char *input, int h, int w)
{
    sf_rgb_image img;
    sf_error err;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, jpg);
    sf_status st = sf_image_load_file(path, opt, &img, &err);
    CHECK(st == SF_OK, "%s", err.message);
    if (st != SF_OK)
        return;
    CHECK(img.width == w && img.height == h, "%s: %dx%d, Pillow gives %dx%d", thumb, img.width,
          img.height, w, h);
    CHECK(img.source_width == 640 && img.source_height == 400, "source %dx%d",
          img.source_width, img.source_height);
    if (img.width == w && img.height == h) {
        size_t nu, nf, n = (size_t)w * h * 3;
        unsigned char *want_u8 = tu_read_file(dir, thumb, &nu);
        float *want = tu_read_file(dir, input, &nf);
        double sum_u8 = 0;
        int max_u8 = 0;
        for (size_t i = 0; i < n && nu == n; i++) {
            int d = abs((int)img.pixels[i] - (int)want_u8[i]);
            sum_u8 += d;
            if (d > max_u8)
                max_u8 = d;
        }
        sf_config cfg;
        sf_config_init(&cfg);
        float *got = malloc(n * sizeof(float));
        sf_image_normalize(img.pixels, w, h, cfg.mean, cfg.std, got);
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += fabs((double)got[i] - want[i]);
        double maxd = tu_max_abs_diff(got, want, n);
        printf("%s vs Pillow: pixels max %d mean %.3f levels; tensor max %.4f mean %.5f\n",
               thumb, max_u8, sum_u8 / n, maxd, sum / n);
        /* Two Lanczos-3 implementations on the same photo: a few levels at
         * edges, well under one level on average.  A wrong channel order,
         * offset or filter shows as tens of levels. */
        CHECK(sum_u8 / n < 0.5, "%s: mean difference %.3f levels", thumb, sum_u8 / n);
        CHECK(max_u8 <= 16, "%s: max difference %d levels", thumb, max_u8);
        free(got);
        free(want);
        free(want_u8);
    }
    sf_rgb_image_release(&img);
}

/* Write count elements of data as a .npy file dir/name; returns the path. */
static const char *write_npy(const char *dir, const char *name, int dtype, unsigned ndim,
                             const uint64_t *shape, const void *data)
{
    static char path[4096];
    sf_record rec = { .kind = SF_KIND_IMAGE, .dtype = (uint8_t)dtype, .ndim = (uint8_t)ndim,
                      .key = "k", .key_len = 1, .data = data };
    sf_error err;
    memcpy(rec.shape, shape, ndim * sizeof *shape);
    rec.data_size = sf_shape_count(shape, ndim) * sf_dtype_size(dtype);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || sf_npy_write(fp, &rec, &err) != SF_OK || fclose(fp) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(99);
    }
    return path;
}

/* .npy files as images: a float32 tensor, uint8 pixels, and the refusals. */
static void test_npy(void)
{
    char dir[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_decode.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror(dir);
        exit(99);
    }
    sf_rgb_image img;
    float *tensor;
    sf_error err;
    float chw[3 * 2 * 5];
    uint8_t hwc[2 * 5 * 3];
    for (int i = 0; i < 30; i++) {
        chw[i] = (float)i / 7 - 2;
        hwc[i] = (uint8_t)(8 * i);
    }

    const char *path = write_npy(dir, "f32.npy", SF_DTYPE_F32, 3, (uint64_t[]){ 3, 2, 5 }, chw);
    CHECK(sf_image_load_npy(path, NULL, &img, &tensor, &err) == SF_OK, "%s", err.message);
    CHECK(img.width == 5 && img.height == 2 && img.source_width == 5 &&
              img.source_height == 2 && !img.pixels, "f32: %dx%d", img.width, img.height);
    CHECK(tensor && memcmp(tensor, chw, sizeof chw) == 0, "f32: the tensor as stored");
    free(tensor);

    path = write_npy(dir, "u8.npy", SF_DTYPE_U8, 3, (uint64_t[]){ 2, 5, 3 }, hwc);
    CHECK(sf_image_load_npy(path, NULL, &img, &tensor, &err) == SF_OK, "%s", err.message);
    CHECK(img.width == 5 && img.height == 2 && img.source_width == 5 &&
              img.source_height == 2 && !tensor, "u8: %dx%d", img.width, img.height);
    CHECK(img.pixels && memcmp(img.pixels, hwc, sizeof hwc) == 0, "u8: the pixels as stored");
    sf_rgb_image_release(&img);

    /* The memory limit: the array and its pyramid, and the array alone
     * (refused from the header, before it is read). */
    const double x16[] = { 16 };
    uint64_t need = sizeof hwc + sf_pyramid_memory(2, 5, x16, 1);
    sf_decode_options lim = { .max_memory = need, .scales = x16, .n_scales = 1 };
    CHECK(sf_image_load_npy(path, &lim, &img, &tensor, &err) == SF_OK, "npy within %llu bytes: "
          "%s", (unsigned long long)need, err.message);
    sf_rgb_image_release(&img);
    lim.max_memory = need - 1;
    CHECK(sf_image_load_npy(path, &lim, &img, &tensor, &err) == SF_ERR_TOO_LARGE &&
              !img.pixels && !tensor && strstr(err.message, "u8.npy: needs about ") &&
              strstr(err.message, "more than --max-memory"),
          "npy over the limit: %s", err.message);
    lim.max_memory = 20;
    CHECK(sf_image_load_npy(path, &lim, &img, &tensor, &err) == SF_ERR_TOO_LARGE &&
              !img.pixels && strstr(err.message, "u8.npy: needs more memory than --max-memory "
                                                 "(20 bytes)"),
          "npy data over the limit: %s", err.message);

    /* Other types and layouts are not images. */
    const struct { const char *name; int dtype; uint64_t shape[3]; } bad[] = {
        { "hwc_f32.npy", SF_DTYPE_F32, { 2, 5, 3 } },
        { "chw_u8.npy", SF_DTYPE_U8, { 3, 2, 5 } },
        { "four.npy", SF_DTYPE_F32, { 4, 2, 3 } },
        { "f64.npy", SF_DTYPE_F64, { 3, 1, 1 } },
        { "empty.npy", SF_DTYPE_F32, { 3, 0, 5 } },
    };
    static double zeros[30];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        path = write_npy(dir, bad[i].name, bad[i].dtype, 3, bad[i].shape, zeros);
        CHECK(sf_image_load_npy(path, NULL, &img, &tensor, &err) == SF_ERR_NOT_IMAGE &&
                  !img.pixels && !tensor, "%s accepted", bad[i].name);
        CHECK(strstr(err.message, path) && strstr(err.message, "expected a 3 x H x W float32 "
                                                               "tensor or H x W x 3 uint8"),
              "%s: %s", bad[i].name, err.message);
    }
    path = write_npy(dir, "flat.npy", SF_DTYPE_U8, 1, (uint64_t[]){ 30 }, hwc);
    CHECK(sf_image_load_npy(path, NULL, &img, &tensor, &err) == SF_ERR_NOT_IMAGE, "1-d accepted");
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/missing.npy", dir);
    CHECK(sf_image_load_npy(missing, NULL, &img, &tensor, &err) == SF_ERR_NOT_FOUND, "missing file");
    CHECK(strstr(err.message, "missing.npy: No such file") != NULL, "%s", err.message);
    path = write_npy(dir, "cut.npy", SF_DTYPE_U8, 3, (uint64_t[]){ 2, 5, 3 }, hwc);
    if (truncate(path, 100) != 0)
        exit(99);
    CHECK(sf_image_load_npy(path, NULL, &img, &tensor, &err) == SF_ERR_TRUNCATED, "cut file");
    CHECK(strstr(err.message, "cut.npy") != NULL, "%s", err.message);

    const char *names[] = { "f32.npy", "u8.npy", "hwc_f32.npy", "chw_u8.npy", "four.npy",
                            "f64.npy", "empty.npy", "flat.npy", "cut.npy" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        remove(p);
    }
    rmdir(dir);
}

int main(void)
{
    test_npy();
    const char *golden = tu_golden_dir();
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/r18-small", golden);
    sf_decode_options opt = { .size = 256, .autorotate = 1 };
    /* Shapes from r18-small/manifest.yaml. */
    compare(dir, "input.jpg", &opt, "thumb.u8", "input.f32", 160, 256);
    opt.has_crop = 1;
    opt.crop[0] = 101; opt.crop[1] = 47; opt.crop[2] = 434; opt.crop[3] = 311;
    compare(dir, "input.jpg", &opt, "crop_thumb.u8", "crop_input.f32", 105, 133);

    /* Size 1024 does not enlarge the 640x400 photo. */
    sf_decode_options big = { .size = 1024, .autorotate = 1 };
    sf_rgb_image img;
    sf_error err;
    char path[4096];
    snprintf(path, sizeof path, "%s/input.jpg", dir);
    CHECK(sf_image_load_file(path, &big, &img, &err) == SF_OK, "%s", err.message);
    CHECK(img.width == 640 && img.height == 400, "size 1024: %dx%d", img.width, img.height);
    sf_rgb_image_release(&img);
    /* Decoded at full size it is the file's own pixels: compare with Pillow's decode. */
    size_t nd;
    unsigned char *decoded = tu_read_file(dir, "decoded.u8", &nd);
    CHECK(sf_image_load_file(path, &big, &img, &err) == SF_OK, "%s", err.message);
    if (img.pixels && nd == (size_t)640 * 400 * 3) {
        double sum = 0;
        for (size_t i = 0; i < nd; i++)
            sum += abs((int)img.pixels[i] - (int)decoded[i]);
        printf("decoded.u8 vs libvips decode: mean %.4f levels\n", sum / nd);
        CHECK(sum / nd < 0.5, "JPEG decode differs from libjpeg's by %.3f levels on average", sum / nd);
    }
    sf_rgb_image_release(&img);
    free(decoded);

    /* The size limit is checked from the header. */
    sf_decode_options small = { .size = 256, .max_pixels = 1000 };
    CHECK(sf_image_load_file(path, &small, &img, &err) == SF_ERR_TOO_LARGE, "max_pixels ignored");
    CHECK(strstr(err.message, "too large") != NULL, "message: %s", err.message);
    /* So is the memory limit: the estimate of sf_image_memory, exactly. */
    struct stat sb;
    const double scales[] = { 2, 1, 0.5 }, x16[] = { 16 };
    if (stat(path, &sb) != 0)
        exit(99);
    uint64_t need = sf_image_memory((uint64_t)sb.st_size, 640 * 400 * 3, 640, 256, 160,
                                    scales, 3);
    CHECK(need >= (uint64_t)sb.st_size + 640 * 400 * 3 + 2 * 256 * 160 * 3 &&
              need >= 256 * 160 * 3 + sf_pyramid_memory(160, 256, scales, 3),
          "sf_image_memory: %llu bytes", (unsigned long long)need);
    sf_decode_options mem = { .size = 256, .max_memory = need, .scales = scales, .n_scales = 3 };
    CHECK(sf_image_load_file(path, &mem, &img, &err) == SF_OK, "within %llu bytes: %s",
          (unsigned long long)need, err.message);
    sf_rgb_image_release(&img);
    mem.max_memory = need - 1;
    CHECK(sf_image_load_file(path, &mem, &img, &err) == SF_ERR_TOO_LARGE && !img.pixels,
          "one byte short of %llu", (unsigned long long)need);
    CHECK(strstr(err.message, "input.jpg: needs about ") &&
              strstr(err.message, "of memory, more than --max-memory ("), "message: %s",
          err.message);
    /* The pyramid counts: 640x400 at scale 16 is 10240x6400, 750 MiB of
     * float32; a crop shrinks it. */
    sf_decode_options x16opt = { .size = 1024, .max_memory = UINT64_C(700) << 20,
                                 .scales = x16, .n_scales = 1 };
    CHECK(sf_image_load_file(path, &x16opt, &img, &err) == SF_ERR_TOO_LARGE &&
              strstr(err.message, "needs about 75"), "scale 16: %s", err.message);
    x16opt.has_crop = 1;
    x16opt.crop[2] = 320;
    x16opt.crop[3] = 200;
    CHECK(sf_image_load_file(path, &x16opt, &img, &err) == SF_OK && img.width == 320,
          "scale 16 of a quarter: %s", err.message);
    sf_rgb_image_release(&img);
    CHECK(sf_image_memory(1, 1, 1, 65536, 65536, x16, 1) > (UINT64_C(3) << 40) &&
              sf_image_memory(0, 0, 0, 1, 1, NULL, 0) < 100,
          "sf_image_memory of extreme sizes");
    /* A box outside the image is refused. */
    sf_decode_options outside = { .size = 256, .has_crop = 1, .crop = { 0, 0, 641, 10 } };
    CHECK(sf_image_load_file(path, &outside, &img, &err) == SF_ERR_INVALID_ARGUMENT, "box outside accepted");
    /* Not images. */
    CHECK(sf_image_load_file("/nonexistent/x.jpg", &opt, &img, &err) == SF_ERR_NOT_FOUND, "missing file");
    CHECK(strstr(err.message, "No such file") != NULL, "message: %s", err.message);
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    CHECK(sf_image_load_file(path, &opt, &img, &err) == SF_ERR_NOT_IMAGE, "yaml accepted as image");
    CHECK(strstr(err.message, "not an image") != NULL, "message: %s", err.message);
    return tu_finish("test_decode");
}
