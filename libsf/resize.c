/* Sizes and resampling that must match the reference number for number:
 * Pillow's thumbnail size rule, torchvision's normalisation and PyTorch's
 * bilinear interpolate (spec sections 1 and 2). */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "resize_internal.h"
#include "sf.h"

/* Pillow's round_aspect: floor or ceil, whichever gives the aspect ratio
 * closer to the original (floor on a tie), at least 1.  key_x chooses how
 * Pillow measures the error for the side being derived. */
static int round_aspect(double number, double aspect, double other, int deriving_width)
{
    double lo = floor(number), hi = ceil(number);
    double e_lo, e_hi;
    if (deriving_width) { /* key: |aspect - n / y| */
        e_lo = fabs(aspect - lo / other);
        e_hi = fabs(aspect - hi / other);
    } else {              /* key: 0 if n == 0 else |aspect - x / n| */
        e_lo = lo == 0 ? 0 : fabs(aspect - other / lo);
        e_hi = hi == 0 ? 0 : fabs(aspect - other / hi);
    }
    double n = e_hi < e_lo ? hi : lo;
    return n < 1 ? 1 : (int)n;
}

int sf_thumbnail_size(int width, int height, double max_side, int *out_width,
                      int *out_height)
{
    double side = floor(max_side);
    *out_width = width;
    *out_height = height;
    if (side < 1 || width < 1 || height < 1)
        return 0;
    if (side >= width && side >= height)
        return 0; /* never enlarge */
    double aspect = (double)width / (double)height;
    int x = (int)side, y = (int)side;
    if (side / side >= aspect) /* Pillow compares x / y with the aspect */
        x = round_aspect(side * aspect, aspect, side, 1);
    else
        y = round_aspect(side / aspect, aspect, side, 0);
    *out_width = x;
    *out_height = y;
    return x != width || y != height;
}

double sf_crop_target_side(int size, double crop_w, double crop_h, int full_w, int full_h)
{
    double crop_long = crop_w > crop_h ? crop_w : crop_h;
    double full_long = full_w > full_h ? full_w : full_h;
    return full_long > 0 ? (double)size * crop_long / full_long : 0;
}

void sf_image_normalize(const uint8_t *rgb, int width, int height,
                        const float mean[3], const float std[3], float *out)
{
    size_t plane = (size_t)width * (size_t)height;
    for (int c = 0; c < 3; c++) {
        float *dst = out + (size_t)c * plane;
        const uint8_t *src = rgb + c;
        /* Two float32 roundings, as ToTensor then Normalize do it. */
        for (size_t i = 0; i < plane; i++)
            dst[i] = ((float)src[3 * i] / 255.0f - mean[c]) / std[c];
    }
}

void sf_pyramid_level_size(int height, int width, double scale, int *out_height,
                           int *out_width)
{
    *out_height = (int)floor((double)height * scale);
    *out_width = (int)floor((double)width * scale);
}

/* Source index and weight of every output position along one axis:
 * src = r * (i + 0.5) - 0.5, clamped at 0.  The float32 ratio times a
 * position loses 1e-5 near the far edge of a 1000-pixel axis, which the
 * reference does not; the position is therefore computed in double. */
static void axis_weights(int in, int out, float ratio, int *i0, int *i1, float *l1)
{
    for (int i = 0; i < out; i++) {
        double src = (double)ratio * ((double)i + 0.5) - 0.5;
        if (src < 0)
            src = 0;
        int lo = (int)src;
        if (lo > in - 1)
            lo = in - 1;
        i0[i] = lo;
        i1[i] = lo < in - 1 ? lo + 1 : lo;
        l1[i] = (float)(src - (double)lo);
    }
}

sf_status sf_pyramid_check(int height, int width, const double *scales, int n_scales,
                           sf_error *err)
{
    for (int i = 0; i < n_scales; i++) {
        int lh, lw;
        sf_pyramid_level_size(height, width, scales[i], &lh, &lw);
        if (lh < 1 || lw < 1)
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "too small (%dx%d) for scale %g",
                                width, height, scales[i]);
    }
    return SF_OK;
}

void sf_resize_bilinear(const float *in, int channels, int height, int width, double scale,
                        float *out, int *idx, float *weights)
{
    int oh, ow;
    sf_pyramid_level_size(height, width, scale, &oh, &ow);
    /* The ratio comes from the requested scale, rounded to float once. */
    float ratio = (float)(1.0 / scale);
    int *y0 = idx, *y1 = y0 + oh, *x0 = y1 + oh, *x1 = x0 + ow;
    float *ly = weights, *lx = ly + oh;
    axis_weights(height, oh, ratio, y0, y1, ly);
    axis_weights(width, ow, ratio, x0, x1, lx);
    size_t in_plane = (size_t)height * (size_t)width, out_plane = (size_t)oh * (size_t)ow;
    for (int c = 0; c < channels; c++) {
        const float *src = in + (size_t)c * in_plane;
        float *dst = out + (size_t)c * out_plane;
        for (int y = 0; y < oh; y++) {
            const float *r0 = src + (size_t)y0[y] * (size_t)width;
            const float *r1 = src + (size_t)y1[y] * (size_t)width;
            float wy1 = ly[y], wy0 = 1.0f - wy1;
            for (int x = 0; x < ow; x++) {
                float wx1 = lx[x], wx0 = 1.0f - wx1;
                dst[(size_t)y * (size_t)ow + (size_t)x] =
                    wy0 * (wx0 * r0[x0[x]] + wx1 * r0[x1[x]]) +
                    wy1 * (wx0 * r1[x0[x]] + wx1 * r1[x1[x]]);
            }
        }
    }
}

sf_status sf_pyramid_resize(const float *in, int channels, int height, int width,
                            double scale, float *out, sf_error *err)
{
    int oh, ow;
    if (!(scale > 0) || channels < 1 || height < 1 || width < 1)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "cannot resample a %dx%dx%d tensor by %g", channels, height,
                            width, scale);
    sf_pyramid_level_size(height, width, scale, &oh, &ow);
    if (oh < 1 || ow < 1)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "scale %g makes a %dx%d image empty", scale, width, height);
    int *idx = malloc(SF_RESIZE_INDEX_COUNT(oh, ow) * sizeof *idx);
    float *weights = malloc(SF_RESIZE_WEIGHT_COUNT(oh, ow) * sizeof *weights);
    sf_status st = SF_OK;
    if (idx && weights)
        sf_resize_bilinear(in, channels, height, width, scale, out, idx, weights);
    else
        st = sf_error_set(err, SF_ERR_NOMEM, "out of memory resampling a %dx%d image", ow, oh);
    free(idx);
    free(weights);
    return st;
}
