/* The bilinear resampling of sf_pyramid_resize with its index and weight
 * tables supplied by the caller, so that a pyramid can take every buffer
 * a level needs before it writes anything.  Not installed. */
#ifndef SF_RESIZE_INTERNAL_H
#define SF_RESIZE_INTERNAL_H

#include <stddef.h>

/* Table entries a level of out_height x out_width needs: ints in idx,
 * floats in weights. */
#define SF_RESIZE_INDEX_COUNT(out_height, out_width) \
    (2 * ((size_t)(out_height) + (size_t)(out_width)))
#define SF_RESIZE_WEIGHT_COUNT(out_height, out_width) \
    ((size_t)(out_height) + (size_t)(out_width))

/* sf_pyramid_resize for a level whose sides (sf_pyramid_level_size) are
 * at least 1, which the caller has checked: it cannot fail. */
void sf_resize_bilinear(const float *in, int channels, int height, int width, double scale,
                        float *out, int *idx, float *weights);

#endif
