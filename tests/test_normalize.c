/* ImageNet normalisation must reproduce torchvision bit for bit when fed
 * the same 8-bit pixels (golden thumb.u8 -> input.f32). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "sf.h"
#include "testutil.h"

static void check_pair(const char *dir, const char *u8, const char *f32, int h, int w)
{
    size_t nu, nf;
    unsigned char *rgb = tu_read_file(dir, u8, &nu);
    float *want = tu_read_file(dir, f32, &nf);
    CHECK(nu == (size_t)h * w * 3 && nf == (size_t)h * w * 3 * sizeof(float),
          "%s/%s sizes %zu/%zu", u8, f32, nu, nf);
    if (nu == (size_t)h * w * 3 && nf == nu * sizeof(float)) {
        sf_config cfg;
        sf_config_init(&cfg);
        float *got = malloc(nf);
        sf_image_normalize(rgb, w, h, cfg.mean, cfg.std, got);
        double d = tu_max_abs_diff(got, want, nu);
        printf("%s -> %s: max abs diff %g\n", u8, f32, d);
        CHECK(d == 0, "%s: max abs diff %g, want bit-identical", f32, d);
        free(got);
    }
    free(rgb);
    free(want);
}

int main(void)
{
    const char *golden = tu_golden_dir();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/r18-small", golden);
    /* Shapes from r18-small/manifest.yaml (thumb 160x256, crop_thumb 105x133). */
    check_pair(dir, "thumb.u8", "input.f32", 160, 256);
    check_pair(dir, "crop_thumb.u8", "crop_input.f32", 105, 133);
    return tu_finish("test_normalize");
}
