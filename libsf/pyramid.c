/* The pyramid of one image at a time (sf_image.h): the base, one level
 * buffer and the resampling tables, kept between images up to
 * SF_PYRAMID_KEEP_BYTES (sf_pyramid_clear), so a batch of ordinary photos
 * allocates only when an image is larger than every one before it. */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "resize_internal.h"
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
    int *idx;           /* resampling tables (resize_internal.h) */
    size_t idx_cap;
    float *weights;
    size_t weights_cap;
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
    free(p->idx);
    free(p->weights);
    free(p);
}

/* Bytes of the buffers held. */
static uint64_t held_bytes(const sf_pyramid *p)
{
    return (uint64_t)p->base_cap * sizeof *p->base + (uint64_t)p->level_cap * sizeof *p->level +
           (uint64_t)p->idx_cap * sizeof *p->idx + (uint64_t)p->weights_cap * sizeof *p->weights;
}

void sf_pyramid_clear(sf_pyramid *p)
{
    p->height = p->width = 0;
    if (held_bytes(p) <= SF_PYRAMID_KEEP_BYTES)
        return;
    free(p->base);
    free(p->level);
    free(p->idx);
    free(p->weights);
    p->base = p->level = p->weights = NULL;
    p->idx = NULL;
    p->base_cap = p->level_cap = p->idx_cap = p->weights_cap = 0;
}

/* A buffer of at least count elements of size elem: buf itself when it is
 * large enough, otherwise a new one (NULL when out of memory) with *cap
 * updated.  Contents are not kept, and the old buffer is freed first, so
 * that the two are never held together. */
static void *reserve(void *buf, size_t *cap, size_t count, size_t elem)
{
    if (count <= *cap)
        return buf;
    free(buf);
    *cap = 0;
    size_t bytes = sf_mul_size(count, elem);
    void *b = bytes ? malloc(bytes) : NULL;
    if (b)
        *cap = count;
    return b;
}

uint64_t sf_pyramid_memory(int height, int width, const double *scales, int n_scales)
{
    if (height < 1 || width < 1)
        return 0;
    /* In double: a level of a huge scale may not fit in an int. */
    double level = 0, tables = 0;
    for (int i = 0; i < n_scales; i++) {
        if (scales[i] == 1.0)
            continue;
        double lh = floor((double)height * scales[i]), lw = floor((double)width * scales[i]);
        if (3 * lh * lw * sizeof(float) > level)
            level = 3 * lh * lw * sizeof(float);
        /* SF_RESIZE_INDEX_COUNT ints and SF_RESIZE_WEIGHT_COUNT floats */
        if ((lh + lw) * (2 * sizeof(int) + sizeof(float)) > tables)
            tables = (lh + lw) * (2 * sizeof(int) + sizeof(float));
    }
    double total = 3.0 * height * width * sizeof(float) + level + tables;
    return total < 0x1p63 ? (uint64_t)total : UINT64_MAX;
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
    size_t largest = 0, n_idx = 0, n_weights = 0;
    for (int i = 0; i < p->n_scales; i++) {
        int lh, lw;
        if ((double)height * p->scales[i] > INT_MAX || (double)width * p->scales[i] > INT_MAX)
            return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: too large (%dx%d) for scale %g",
                                name, width, height, p->scales[i]);
        sf_pyramid_level_size(height, width, p->scales[i], &lh, &lw);
        size_t count = 3 * (size_t)lh * (size_t)lw;
        if (p->scales[i] == 1.0)
            continue; /* the base itself */
        if (count > largest)
            largest = count;
        if (SF_RESIZE_INDEX_COUNT(lh, lw) > n_idx)
            n_idx = SF_RESIZE_INDEX_COUNT(lh, lw);
        if (SF_RESIZE_WEIGHT_COUNT(lh, lw) > n_weights)
            n_weights = SF_RESIZE_WEIGHT_COUNT(lh, lw);
    }
    /* Everything a level needs is taken here: once an image is set,
     * sf_pyramid_level cannot fail. */
    char *copy = strdup(name);
    p->base = reserve(p->base, &p->base_cap, 3 * (size_t)height * (size_t)width,
                      sizeof *p->base);
    p->level = reserve(p->level, &p->level_cap, largest, sizeof *p->level);
    p->idx = reserve(p->idx, &p->idx_cap, n_idx, sizeof *p->idx);
    p->weights = reserve(p->weights, &p->weights_cap, n_weights, sizeof *p->weights);
    if (!copy || !p->base || (largest && !p->level) || (n_idx && !p->idx) ||
        (n_weights && !p->weights)) {
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
    sf_resize_bilinear(p->base, 3, p->height, p->width, s, p->level, p->idx, p->weights);
    sf_pyramid_level_size(p->height, p->width, s, height, width);
    *data = p->level;
    return SF_OK;
}
