/* Writes variants of one real photo that exercise the decoder: EXIF
 * orientation, palette, 16-bit, grey, alpha, CMYK and the other formats,
 * plus damaged copies.  Used by tests/decode_batch.sh and decode_formats.sh.
 *   make_photo_variants PHOTO OUTDIR */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

static void die(const char *what)
{
    fprintf(stderr, "make_photo_variants: %s: %s\n", what, vips_error_buffer());
    exit(99);
}

static void save(VipsImage *img, const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (vips_image_write_to_file(img, path, NULL))
        die(path);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_photo_variants PHOTO OUTDIR\n");
        return 99;
    }
    if (VIPS_INIT(argv[0]))
        die("init");
    const char *dir = argv[2];
    VipsImage *src = vips_image_new_from_file(argv[1], "access", VIPS_ACCESS_RANDOM, NULL);
    VipsImage *rgb, *rot, *rot_copy, *grey, *grey16, *rgb16, *alpha, *rgba, *cmyk, *cmyk_i;
    if (!src)
        die(argv[1]);
    if (vips_colourspace(src, &rgb, VIPS_INTERPRETATION_sRGB, NULL))
        die("srgb");
    save(rgb, dir, "plain.png");

    /* Stored rotated a quarter turn clockwise, tagged "rotate 90 CW to
     * display" (orientation 6 means the camera was turned; the viewer turns
     * the pixels back): decoding with autorotation must give plain.png. */
    if (vips_rot(rgb, &rot, VIPS_ANGLE_D270, NULL) || vips_copy(rot, &rot_copy, NULL))
        die("rot");
    vips_image_set_int(rot_copy, VIPS_META_ORIENTATION, 6);
    save(rot_copy, dir, "exif6.jpg[Q=98]");

    save(rgb, dir, "palette.png[palette]");
    if (vips_colourspace(rgb, &grey, VIPS_INTERPRETATION_B_W, NULL))
        die("grey");
    save(grey, dir, "grey.png");
    if (vips_colourspace(rgb, &rgb16, VIPS_INTERPRETATION_RGB16, NULL) ||
        vips_colourspace(grey, &grey16, VIPS_INTERPRETATION_GREY16, NULL))
        die("16-bit");
    save(rgb16, dir, "rgb16.png");
    save(grey16, dir, "grey16.png");
    if (vips_black(&alpha, rgb->Xsize, rgb->Ysize, NULL))
        die("alpha");
    VipsImage *a2;
    if (vips_linear1(alpha, &a2, 1.0, 200.0, "uchar", TRUE, NULL) ||
        vips_bandjoin2(rgb, a2, &rgba, NULL))
        die("rgba");
    save(rgba, dir, "alpha.png");
    if (vips_icc_transform(rgb, &cmyk, "cmyk", NULL) == 0 &&
        vips_copy(cmyk, &cmyk_i, "interpretation", VIPS_INTERPRETATION_CMYK, NULL) == 0)
        save(cmyk_i, dir, "cmyk.jpg");
    else
        vips_error_clear(); /* no CMYK profile available: the test notices the missing file */
    save(rgb, dir, "photo.webp");
    save(rgb, dir, "photo.tif");
    save(rgb, dir, "photo.gif");
    /* Two frames, the second the negative of the first: only frame 1 counts. */
    VipsImage *neg, *frames[2], *anim;
    if (vips_invert(rgb, &neg, NULL))
        die("invert");
    frames[0] = rgb;
    frames[1] = neg;
    if (vips_arrayjoin(frames, &anim, 2, "across", 1, NULL))
        die("arrayjoin");
    vips_image_set_int(anim, VIPS_META_PAGE_HEIGHT, rgb->Ysize);
    vips_image_set_int(anim, "n-pages", 2);
    save(anim, dir, "anim.gif");
    save(rgb, dir, "photo.jpg[Q=90]");
    /* HEIF/AVIF only where this libvips can write it. */
    char path[4096];
    snprintf(path, sizeof path, "%s/photo.avif", dir);
    if (vips_image_write_to_file(rgb, path, NULL))
        vips_error_clear();
    return 0;
}
