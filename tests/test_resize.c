/* Thumbnail sizes against a table that Pillow itself produced
 * (tests/data/thumbnail_sizes.tsv), and query-crop target sizes. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"
#include "testutil.h"

int main(void)
{
    const char *srcdir = getenv("top_srcdir");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/thumbnail_sizes.tsv", srcdir ? srcdir : ".");
    FILE *fp = fopen(path, "r");
    if (!fp) {
        perror(path);
        return 99;
    }
    char line[256];
    int rows = 0;
    while (fgets(line, sizeof line, fp)) {
        int w, h, ew, eh, ow, oh;
        double side;
        if (line[0] == '#')
            continue;
        if (sscanf(line, "%d %d %lf %d %d", &w, &h, &side, &ew, &eh) != 5) {
            fprintf(stderr, "bad line: %s", line);
            return 99;
        }
        int resized = sf_thumbnail_size(w, h, side, &ow, &oh);
        CHECK(ow == ew && oh == eh, "%dx%d into %g: got %dx%d, Pillow %dx%d", w, h, side, ow, oh, ew, eh);
        CHECK(resized == (ow != w || oh != h), "%dx%d into %g: resized flag %d", w, h, side, resized);
        rows++;
    }
    fclose(fp);
    CHECK(rows > 400, "only %d rows in %s", rows, path);

    /* The golden crop case: box (101,47,434,311) in a 640x400 image at size 256. */
    double target = sf_crop_target_side(256, 434 - 101, 311 - 47, 640, 400);
    CHECK(fabs(target - 133.2) < 1e-9, "crop target %g", target);
    int ow, oh;
    sf_thumbnail_size(434 - 101, 311 - 47, target, &ow, &oh);
    CHECK(ow == 133 && oh == 105, "crop thumbnail %dx%d", ow, oh);

    /* Pyramid level sizes: floor(H*s) computed in double. */
    int lh, lw;
    sf_pyramid_level_size(160, 256, 1.414, &lh, &lw);
    CHECK(lh == 226 && lw == 361, "level 1.414: %dx%d", lw, lh);
    sf_pyramid_level_size(160, 256, 0.353, &lh, &lw);
    CHECK(lh == 56 && lw == 90, "level 0.353: %dx%d", lw, lh);
    return tu_finish("test_resize");
}
