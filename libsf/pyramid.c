/* The pyramid of one image at a time (sf_image.h): the base and one level
 * buffer, both kept between images, so a batch allocates only when an
 * image is larger than every one before it. */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sf_internal.h"

struct sf_pyramid {
    double *scales;
    int n_scales;
    float mean[3], std[3];
    char *name;         /* of the image held, for messages */
    int height, width;  /* of the base; 0 when no image is held */
    float *base;        /* 3 x height x width */
    size_t base_cap;    /* floats */
    float *level;       /* the last level resized */
    size_t level_cap;
};

sf_status sf_pyramid_create(const double *scales, int n_scales, const float mean[3],
                            const float std[3], sf_pyramid **out, sf_error *err)
{
    *out = NULL;
    if (n_scales < 1)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "pyramid: no scales");
    for (int i = 0; i < n_scales; i++)
        if (!(scales[i] > 0) || !isfinite(scales[i]))
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "pyramid: scale %g", scales[i]);
    sf_pyramid *p = calloc(1, sizeof *p);
    if (p)
        p->scales = malloc((size_t)n_scales * sizeof *p->scales);
    if (!p || !p->scales) {
        free(p);
        return sf_error_set(err, SF_ERR_NOMEM, "pyramid: out of memory");
    }
    memcpy(p->scales, scales, (size_t)n_scales * sizeof *p->scales);
    p->n_scales = n_scales;
    memcpy(p->mean, mean, sizeof p->mean);
    memcpy(p->std, std, sizeof p->std);
    *out = p;
    return SF_OK;
}

void sf_pyramid_free(sf_pyramid *p)
{
    if (!p)
        return;
    free(p->scales);
    free(p->name);
    free(p->base);
    free(p->level);
    free(p);
}

static int reserve(float **buf, size_t *cap, size_t count)
{
    if (count <= *cap)
        return 0;
    size_t bytes = sf_mul_size(count, sizeof **buf);
    float *b = bytes ? realloc(*buf, bytes) : NULL;
    if (!b)
        return -1;
    *buf = b;
    *cap = count;
    return 0;
}

/* Take a width x height image: check its levels, size the buffers. */
static sf_status begin_image(sf_pyramid *p, const char *name, int width, int height,
                             sf_error *err)
{
    sf_error why;
    p->height = p->width = 0;
    if (width < 1 || height < 1)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: an image of %dx%d", name,
                            width, height);
    if (sf_pyramid_check(height, width, p->scales, p->n_scales, &why) != SF_OK)
        return sf_error_set(err, why.status, "%s: %s", name, why.message);
    size_t largest = 0;
    for (int i = 0; i < p->n_scales; i++) {
        int lh, lw;
        if ((double)height * p->scales[i] > INT_MAX || (double)width * p->scales[i] > INT_MAX)
            return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: too large (%dx%d) for scale %g",
                                name, width, height, p->scales[i]);
        sf_pyramid_level_size(height, width, p->scales[i], &lh, &lw);
        size_t count = 3 * (size_t)lh * (size_t)lw;
        if (p->scales[i] != 1.0 && count > largest)
            largest = count;
    }
    char *copy = strdup(name);
    if (!copy || reserve(&p->base, &p->base_cap, 3 * (size_t)height * (size_t)width) ||
        reserve(&p->level, &p->level_cap, largest)) {
        free(copy);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    }
    free(p->name);
    p->name = copy;
    p->height = height;
    p->width = width;
    return SF_OK;
}

sf_status sf_pyramid_set_rgb(sf_pyramid *p, const char *name, const uint8_t *rgb, int width,
                             int height, sf_error *err)
{
    sf_status st = begin_image(p, name, width, height, err);
    if (st == SF_OK)
        sf_image_normalize(rgb, width, height, p->mean, p->std, p->base);
    return st;
}

sf_status sf_pyramid_set_tensor(sf_pyramid *p, const char *name, const float *tensor,
                                int width, int height, sf_error *err)
{
    sf_status st = begin_image(p, name, width, height, err);
    if (st == SF_OK)
        memcpy(p->base, tensor, 3 * (size_t)height * (size_t)width * sizeof *p->base);
    return st;
}

sf_status sf_pyramid_level(sf_pyramid *p, int i, const float **data, int *height, int *width,
                           sf_error *err)
{
    sf_error why;
    *data = NULL;
    if (!p->height || i < 0 || i >= p->n_scales)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "pyramid: no level %d%s", i,
                            p->height ? "" : " (no image)");
    double s = p->scales[i];
    if (s == 1.0) {
        *data = p->base;
        *height = p->height;
        *width = p->width;
        return SF_OK;
    }
    if (sf_pyramid_resize(p->base, 3, p->height, p->width, s, p->level, &why) != SF_OK)
        return sf_error_set(err, why.status, "%s: scale %g: %s", p->name, s, why.message);
    sf_pyramid_level_size(p->height, p->width, s, height, width);
    *data = p->level;
    return SF_OK;
}
