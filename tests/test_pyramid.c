/* The multi-scale pyramid against the reference's F.interpolate output
 * (golden r18-small s{i}_resized), fed the golden input.f32. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "sf.h"
#include "testutil.h"

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
    free(input);

    /* Refuses sizes that make no sense. */
    float one = 0, out[4];
    sf_error err;
    CHECK(sf_pyramid_resize(&one, 1, 1, 1, 0.5, out, &err) == SF_ERR_INVALID_ARGUMENT, "empty level accepted");
    CHECK(sf_pyramid_resize(&one, 1, 1, 1, -1, out, &err) == SF_ERR_INVALID_ARGUMENT, "negative scale accepted");
    return tu_finish("test_pyramid");
}
