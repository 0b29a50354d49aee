/* The multi-scale pyramid against the reference's F.interpolate output
 * (golden r18-small s{i}_resized), fed the golden input.f32; and the
 * sf_pyramid object that sf-decode writes levels from. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"
#include "testutil.h"

/* sf_pyramid gives, level after level, what sf_pyramid_resize gives from
 * the same base, the base itself at scale 1; images of other sizes reuse
 * it; a level too small fails when the image is set. */
static void test_object(const sf_config *cfg, const float *input, int h, int w)
{
    sf_pyramid *p;
    sf_error err;
    const float *level;
    int lh, lw;
    CHECK(sf_pyramid_create(cfg->scales, cfg->n_scales, cfg->mean, cfg->std, &p, &err) == SF_OK,
          "%s", err.message);
    CHECK(sf_pyramid_level(p, 0, &level, &lh, &lw, &err) == SF_ERR_INVALID_ARGUMENT,
          "a level without an image");
    /* The top-left corner of the golden input, then the whole: smaller, larger. */
    int sizes[2][2] = { { 40, 56 }, { h, w } };
    for (int k = 0; k < 2; k++) {
        int sh = sizes[k][0], sw = sizes[k][1];
        float *base = malloc((size_t)3 * sh * sw * sizeof *base);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < sh; y++)
                memcpy(base + ((size_t)c * sh + y) * sw, input + ((size_t)c * h + y) * w,
                       (size_t)sw * sizeof *base);
        CHECK(sf_pyramid_set_tensor(p, "corner", base, sw, sh, &err) == SF_OK, "%s",
              err.message);
        for (int i = 0; i < cfg->n_scales; i++) {
            int eh, ew;
            sf_pyramid_level_size(sh, sw, cfg->scales[i], &eh, &ew);
            float *want = malloc((size_t)3 * eh * ew * sizeof *want);
            sf_pyramid_resize(base, 3, sh, sw, cfg->scales[i], want, &err);
            CHECK(sf_pyramid_level(p, i, &level, &lh, &lw, &err) == SF_OK, "%s", err.message);
            CHECK(lh == eh && lw == ew, "level %d: %dx%d, not %dx%d", i, lw, lh, ew, eh);
            CHECK(lh == eh && lw == ew &&
                      memcmp(level, want, (size_t)3 * eh * ew * sizeof *want) == 0,
                  "level %d (scale %g) differs from sf_pyramid_resize", i, cfg->scales[i]);
            free(want);
        }
        free(base);
    }
    CHECK(sf_pyramid_level(p, cfg->n_scales, &level, &lh, &lw, &err) ==
              SF_ERR_INVALID_ARGUMENT, "level %d of %d", cfg->n_scales, cfg->n_scales);

    /* Pixels are normalised as sf_image_normalize does. */
    uint8_t rgb[4 * 6 * 3];
    float want[3 * 4 * 6];
    for (size_t i = 0; i < sizeof rgb; i++)
        rgb[i] = (uint8_t)(37 * i);
    sf_image_normalize(rgb, 6, 4, cfg->mean, cfg->std, want);
    const double scales[] = { 0.5, 1 };
    sf_pyramid *q;
    CHECK(sf_pyramid_create(scales, 2, cfg->mean, cfg->std, &q, &err) == SF_OK, "%s",
          err.message);
    CHECK(sf_pyramid_set_rgb(q, "px", rgb, 6, 4, &err) == SF_OK, "%s", err.message);
    CHECK(sf_pyramid_level(q, 1, &level, &lh, &lw, &err) == SF_OK && lh == 4 && lw == 6 &&
              memcmp(level, want, sizeof want) == 0, "scale 1 of pixels");
    CHECK(sf_pyramid_level(q, 0, &level, &lh, &lw, &err) == SF_OK && lh == 2 && lw == 3,
          "scale 0.5 of pixels: %dx%d", lw, lh);

    /* A level without pixels: the image's failure, named, and no image held. */
    CHECK(sf_pyramid_set_rgb(q, "thin.png", rgb, 6, 1, &err) == SF_ERR_INVALID_ARGUMENT,
          "a 6x1 image at scale 0.5");
    CHECK(strcmp(err.message, "thin.png: too small (6x1) for scale 0.5") == 0, "%s",
          err.message);
    CHECK(sf_pyramid_level(q, 1, &level, &lh, &lw, &err) == SF_ERR_INVALID_ARGUMENT,
          "a level after a failed image");
    CHECK(sf_pyramid_set_rgb(q, "none", rgb, 0, 4, &err) == SF_ERR_INVALID_ARGUMENT,
          "an empty image");

    const double bad[] = { 1, 0 };
    sf_pyramid *r = (sf_pyramid *)1;
    CHECK(sf_pyramid_create(bad, 2, cfg->mean, cfg->std, &r, &err) ==
              SF_ERR_INVALID_ARGUMENT && !r, "scale 0 accepted");
    CHECK(sf_pyramid_create(scales, 0, cfg->mean, cfg->std, &r, &err) ==
              SF_ERR_INVALID_ARGUMENT && !r, "no scales accepted");
    sf_pyramid_free(q);
    sf_pyramid_free(p);
    sf_pyramid_free(NULL);
}

/* What a pyramid takes: the base, the largest level other than scale 1
 * and its tables; any size may be asked. */
static void test_memory(const sf_config *cfg)
{
    const double x16[] = { 16 }, one[] = { 1 }, some[] = { 0.5, 1, 2, 0.25 };
    uint64_t base = 3 * 480 * 640 * 4;
    CHECK(sf_pyramid_memory(480, 640, x16, 1) ==
              base + UINT64_C(3) * 7680 * 10240 * 4 + (7680 + 10240) * 12,
          "640x480 at scale 16: %llu", (unsigned long long)sf_pyramid_memory(480, 640, x16, 1));
    CHECK(sf_pyramid_memory(480, 640, one, 1) == base, "scale 1 is the base");
    CHECK(sf_pyramid_memory(480, 640, some, 4) ==
              base + UINT64_C(3) * 960 * 1280 * 4 + (960 + 1280) * 12, "the largest level");
    CHECK(sf_pyramid_memory(0, 640, x16, 1) == 0, "an empty image");
    CHECK(sf_pyramid_memory(2000000000, 2000000000, x16, 1) == UINT64_MAX, "saturates");

    /* After sf_pyramid_clear no image is held; the next one is taken as
     * before, larger (buffers given back) or smaller (kept). */
    sf_pyramid *p;
    sf_error err;
    const float *level;
    int lh, lw;
    static uint8_t rgb[3 * 1200 * 1000];
    const double scales[] = { 4, 1 };
    CHECK(sf_pyramid_create(scales, 2, cfg->mean, cfg->std, &p, &err) == SF_OK, "%s",
          err.message);
    int sizes[][2] = { { 1000, 1200 }, { 30, 20 }, { 1000, 1200 } };
    for (int k = 0; k < 3; k++) {
        CHECK(sf_pyramid_set_rgb(p, "x", rgb, sizes[k][1], sizes[k][0], &err) == SF_OK, "%s",
              err.message);
        CHECK(sf_pyramid_level(p, 0, &level, &lh, &lw, &err) == SF_OK &&
                  lh == 4 * sizes[k][0] && lw == 4 * sizes[k][1] && level[0] == level[1],
              "image %d: level %dx%d", k, lw, lh);
        sf_pyramid_clear(p);
        CHECK(sf_pyramid_level(p, 1, &level, &lh, &lw, &err) == SF_ERR_INVALID_ARGUMENT,
              "image %d: a level after sf_pyramid_clear", k);
    }
    sf_pyramid_free(p);
}

int main(void)
{
    const char *golden = tu_golden_dir();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/r18-small", golden);
    /* r18-small/manifest.yaml: input 3x160x256, the official seven scales. */
    const int h = 160, w = 256;
    sf_config cfg;
    sf_config_init(&cfg);
    CHECK(cfg.n_scales == 7, "default scales: %d", cfg.n_scales);
    size_t n;
    float *input = tu_read_file(dir, "input.f32", &n);
    CHECK(n == (size_t)3 * h * w * sizeof(float), "input.f32 has %zu bytes", n);
    for (int i = 0; i < cfg.n_scales && n == (size_t)3 * h * w * sizeof(float); i++) {
        char name[64];
        size_t wn;
        int lh, lw;
        snprintf(name, sizeof name, "s%d_resized.f32", i);
        float *want = tu_read_file(dir, name, &wn);
        sf_pyramid_level_size(h, w, cfg.scales[i], &lh, &lw);
        size_t count = (size_t)3 * lh * lw;
        CHECK(wn == count * sizeof(float), "%s: %zu bytes, expected 3x%dx%d", name, wn, lh, lw);
        if (wn == count * sizeof(float)) {
            float *got = malloc(wn);
            sf_error err;
            sf_status st = sf_pyramid_resize(input, 3, h, w, cfg.scales[i], got, &err);
            CHECK(st == SF_OK, "%s: %s", name, err.message);
            double d = tu_max_abs_diff(got, want, count);
            printf("scale %-6g %3dx%-3d max abs diff %.3g\n", cfg.scales[i], lw, lh, d);
            CHECK(d <= 1e-5, "%s: max abs diff %g > 1e-5", name, d);
            free(got);
        }
        free(want);
    }
    if (n == (size_t)3 * h * w * sizeof(float))
        test_object(&cfg, input, h, w);
    free(input);
    test_memory(&cfg);

    /* Refuses sizes that make no sense. */
    float one = 0, out[4];
    sf_error err;
    CHECK(sf_pyramid_resize(&one, 1, 1, 1, 0.5, out, &err) == SF_ERR_INVALID_ARGUMENT, "empty level accepted");
    CHECK(sf_pyramid_resize(&one, 1, 1, 1, -1, out, &err) == SF_ERR_INVALID_ARGUMENT, "negative scale accepted");
    return tu_finish("test_pyramid");
}
