/* sf_draw on synthetic images whose answers are known by construction:
 * locations (peak and centroid) at every scale, what an image must hold,
 * pairs that do not belong to the images, the ramp, and the lines drawn. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"
#include "testutil.h"

/* An image of W x H pixels with 2 templates at scales 1 (4 x 5 cells) and
 * 0.5 (2 x 3 cells), 3 local features: (scale 1, template 1),
 * (0.5, 0), (1, 0). */
#define W 100
#define H 80
static uint8_t pixels[H * W * 3];
static float att1[2 * 4 * 5], att05[2 * 2 * 3];
static float scales[3] = { 1.0f, 0.5f, 1.0f }, strengths[3] = { 3, 2, 1 };
static int32_t templates[3] = { 1, 0, 0 };
static float desc[3 * 2] = { 1, 0, 0, 1, 0.6f, 0.8f };
static sf_record recs[8];

static sf_stream_image make_image(const char *key, size_t drop_kind)
{
    memset(att1, 0, sizeof att1);
    memset(att05, 0, sizeof att05);
    /* Template 1 at scale 1: all weight in cell (i=3, j=2). */
    att1[20 + 2 * 5 + 3] = 1;
    /* Template 0 at scale 1: half in (0, 0), half in (4, 3). */
    att1[0] = 0.5f;
    att1[3 * 5 + 4] = 0.5f;
    /* Template 0 at scale 0.5: peak in (2, 1), a little in (0, 0). */
    att05[1 * 3 + 2] = 0.9f;
    att05[0] = 0.1f;
    for (size_t i = 0; i < sizeof pixels; i++)
        pixels[i] = (uint8_t)(i * 7);
    uint64_t sp[3] = { H, W, 3 }, s1[3] = { 2, 4, 5 }, s05[3] = { 2, 2, 3 }, k[1] = { 3 },
             kd[2] = { 3, 2 };
    size_t n = 0;
    sf_record_make(&recs[n++], key, SF_KIND_PIXELS, SF_DTYPE_U8, 3, sp, pixels);
    sf_record_make(&recs[n], key, SF_KIND_ATTENTION, SF_DTYPE_F32, 3, s1, att1);
    recs[n++].scale = 1.0;
    sf_record_make(&recs[n], key, SF_KIND_ATTENTION, SF_DTYPE_F32, 3, s05, att05);
    recs[n].scale = 0.5;
    recs[n++].index = 1;
    sf_record_make(&recs[n++], key, SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, kd, desc);
    sf_record_make(&recs[n++], key, SF_KIND_LOCAL_STRENGTH, SF_DTYPE_F32, 1, k, strengths);
    sf_record_make(&recs[n++], key, SF_KIND_LOCAL_SCALE, SF_DTYPE_F32, 1, k, scales);
    sf_record_make(&recs[n++], key, SF_KIND_LOCAL_INDEX, SF_DTYPE_I32, 1, k, templates);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (recs[i].kind != drop_kind)
            recs[m++] = recs[i];
    sf_stream_image img;
    memset(&img, 0, sizeof img);
    img.key = key;
    img.key_len = strlen(key);
    img.recs = recs;
    img.count = m;
    return img;
}

static int near(double a, double b)
{
    return fabs(a - b) < 1e-4; /* float weights */
}

static void test_locate(void)
{
    sf_stream_image img = make_image("a", 0);
    double xy[6];
    sf_error err;
    CHECK(sf_draw_locate(&img, SF_DRAW_PEAK, xy, 3, &err) == SF_OK, "%s", err.message);
    /* Cells of W/w = 20 by H/h = 20 pixels at scale 1; 33.3 by 40 at 0.5. */
    CHECK(near(xy[0], 3.5 * 20) && near(xy[1], 2.5 * 20), "peak of (1, t1): %g %g", xy[0], xy[1]);
    CHECK(near(xy[2], 2.5 * W / 3.0) && near(xy[3], 1.5 * H / 2.0), "peak of (0.5, t0): %g %g",
          xy[2], xy[3]);
    CHECK(near(xy[4], 0.5 * 20) && near(xy[5], 0.5 * 20), "first of a tie: %g %g", xy[4], xy[5]);
    CHECK(sf_draw_locate(&img, SF_DRAW_CENTROID, xy, 3, &err) == SF_OK, "%s", err.message);
    CHECK(near(xy[4], (0.5 * 10 + 0.5 * 90)) && near(xy[5], 0.5 * 10 + 0.5 * 70),
          "centroid of the tie: %g %g", xy[4], xy[5]);
    CHECK(near(xy[2], (0.9 * 2.5 + 0.1 * 0.5) * W / 3.0) && near(xy[3], (0.9 * 1.5 + 0.1 * 0.5) * H / 2.0),
          "centroid at 0.5: %g %g", xy[2], xy[3]);
    CHECK(sf_draw_locate(&img, SF_DRAW_PEAK, xy, 2, &err) == SF_ERR_INVALID_ARGUMENT,
          "a wrong row count is refused");

    /* A feature whose scale has no map, or whose template has none. */
    scales[1] = 0.25f;
    CHECK(sf_draw_locate(&img, SF_DRAW_PEAK, xy, 3, &err) == SF_ERR_INVALID_DATA &&
              strstr(err.message, "no attention record of scale 0.25 (it holds 1, 0.5)"),
          "missing scale: %s", err.message);
    scales[1] = 0.5f;
    templates[0] = 2;
    CHECK(sf_draw_locate(&img, SF_DRAW_PEAK, xy, 3, &err) == SF_ERR_INVALID_DATA &&
              strstr(err.message, "template 2"), "template out of range: %s", err.message);
    templates[0] = 1;
    /* f16-rounded scales still find their maps. */
    scales[1] = 0.50024414f;
    CHECK(sf_draw_locate(&img, SF_DRAW_PEAK, xy, 3, &err) == SF_OK, "%s", err.message);
    scales[1] = 0.5f;
}

static void test_needs(void)
{
    sf_error err;
    sf_stream_image img = make_image("a", SF_KIND_PIXELS);
    double xy[6];
    CHECK(sf_draw_check_image(&img, SF_DRAW_NEED_PIXELS | SF_DRAW_NEED_ATTENTION, &err) ==
              SF_ERR_NOT_FOUND &&
              strcmp(err.message, "'a': no pixels record (sf-decode --pixels writes it)") == 0,
          "%s", err.message);
    CHECK(sf_draw_locate(&img, SF_DRAW_PEAK, xy, 3, &err) == SF_ERR_NOT_FOUND, "locate");
    img = make_image("b", SF_KIND_ATTENTION);
    CHECK(sf_draw_check_image(&img, SF_DRAW_NEED_PIXELS | SF_DRAW_NEED_ATTENTION |
                                        SF_DRAW_NEED_LOCAL, &err) == SF_ERR_NOT_FOUND &&
              strstr(err.message, "no attention record (sf-lit --attention writes it)"),
          "%s", err.message);
    img = make_image("c", SF_KIND_LOCAL_STRENGTH);
    CHECK(sf_draw_check_image(&img, SF_DRAW_NEED_LOCAL, &err) == SF_OK, "local is enough");
    CHECK(sf_draw_check_image(&img, SF_DRAW_NEED_STRENGTH, &err) == SF_ERR_NOT_FOUND &&
              strstr(err.message, "no local_strength record (sf-lit writes it)"), "%s",
          err.message);
    sf_draw_attention_options o;
    sf_draw_attention_options_init(&o);
    o.strongest = 2;
    sf_rgb_image pic;
    CHECK(sf_draw_attention(&img, &o, &pic, &err) == SF_ERR_NOT_FOUND, "strongest without "
          "strengths");
}

static void test_match(void)
{
    sf_error err;
    /* a and b are the same synthetic image; rows 0-2 and 2-1: cos 0.6 and 0.8. */
    sf_stream_image a = make_image("a", 0);
    sf_stream_image b = a;
    int32_t pairs[4] = { 0, 2, 2, 1 };
    float sim[2] = { 0.6f, 0.8f };
    sf_draw_match_options o;
    sf_draw_match_options_init(&o);
    o.fixed_color = 1;
    o.color[0] = 255;
    o.color[1] = 0;
    o.color[2] = 255;
    sf_rgb_image pic;
    CHECK(sf_draw_match(&a, &b, pairs, sim, 2, &o, &pic, &err) == SF_OK, "%s", err.message);
    CHECK(pic.width == 2 * W + SF_DRAW_GAP && pic.height == H, "size %dx%d", pic.width,
          pic.height);
    /* The ends of match 0: (70, 50) on the left, (10, 10) on the right. */
    const uint8_t *p = pic.pixels + 3 * (50 * (size_t)pic.width + 70);
    const uint8_t *q = pic.pixels + 3 * (10 * (size_t)pic.width + W + SF_DRAW_GAP + 10);
    CHECK(p[0] == 255 && p[1] == 0 && p[2] == 255, "left end coloured");
    CHECK(q[0] == 255 && q[1] == 0 && q[2] == 255, "right end coloured");
    /* Far from both lines, the photo. */
    const uint8_t *r = pic.pixels + 3 * (75 * (size_t)pic.width + 2);
    CHECK(memcmp(r, pixels + 3 * (75 * W + 2), 3) == 0, "photo untouched away from lines");
    /* The gap is background. */
    const uint8_t *g = pic.pixels + 3 * (70 * (size_t)pic.width + W + 4);
    CHECK(g[0] == 48 && g[1] == 48 && g[2] == 48, "gap");
    sf_rgb_image_release(&pic);

    sim[1] = 0.5f;
    CHECK(sf_draw_match(&a, &b, pairs, sim, 2, &o, &pic, &err) == SF_ERR_MISMATCH &&
              strstr(err.message, "not the ones that were matched"), "wrong similarity: %s",
          err.message);
    sim[1] = 0.8f;
    pairs[3] = 3;
    CHECK(sf_draw_match(&a, &b, pairs, sim, 2, &o, &pic, &err) == SF_ERR_MISMATCH,
          "row out of range: %s", err.message);
    pairs[3] = 1;
    o.line_width = 0;
    CHECK(sf_draw_match(&a, &b, pairs, sim, 2, &o, &pic, &err) == SF_ERR_INVALID_ARGUMENT,
          "line width 0");
}

static void test_ramp(void)
{
    uint8_t c[3];
    sf_draw_ramp(0, c);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 128, "0: dark blue");
    sf_draw_ramp(0.5, c);
    CHECK(c[0] == 0 && c[1] == 255 && c[2] == 128, "0.5: between cyan and green %d %d %d", c[0],
          c[1], c[2]);
    sf_draw_ramp(1, c);
    CHECK(c[0] == 255 && c[1] == 0 && c[2] == 0, "1: red");
    sf_draw_ramp(7, c);
    CHECK(c[0] == 255 && c[1] == 0 && c[2] == 0, "clamped above");
    sf_draw_ramp(NAN, c);
    CHECK(c[2] == 128, "NaN: the low end");
    CHECK(sf_draw_format_known("a.PNG") && sf_draw_format_known("b.jpeg") &&
              !sf_draw_format_known("c.gif") && !sf_draw_format_known("d.png/x"),
          "formats by extension");
}

int main(void)
{
    test_locate();
    test_needs();
    test_match();
    test_ramp();
    return tu_finish("test_draw");
}
