/* The backbone's geometry, for libsf and the backends alike
 * (libsfbackend.la). */
#include "config.h"

#include <string.h>

#include "sf_network.h"

sf_status sf_backbone_layout_get(const sf_net_params *params, sf_backbone_layout *layout,
                                 sf_error *err)
{
    static const struct { const char *name; int bottleneck, b1, b2, b3; } known[] = {
        { "resnet18", 0, 2, 2, 2 },
        { "resnet34", 0, 3, 4, 6 },
        { "resnet50", 1, 3, 4, 6 },
        { "resnet101", 1, 3, 4, 23 },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(params->architecture, known[i].name) == 0) {
            layout->bottleneck = known[i].bottleneck;
            layout->blocks[0] = known[i].b1;
            layout->blocks[1] = known[i].b2;
            layout->blocks[2] = known[i].b3;
            layout->channels = known[i].bottleneck ? 1024 : 256;
            return SF_OK;
        }
    return sf_error_set(err, SF_ERR_UNSUPPORTED,
                        "architecture '%s' is not supported (resnet18, resnet34, resnet50, resnet101)",
                        params->architecture);
}

static int conv_out(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

sf_status sf_backbone_output_size(const sf_net_params *params, int height, int width,
                                  int stage, int *channels, int *out_height,
                                  int *out_width, sf_error *err)
{
    sf_backbone_layout layout;
    sf_status st = sf_backbone_layout_get(params, &layout, err);
    if (st != SF_OK)
        return st;
    if (stage < SF_STAGE_CONV1 || stage > SF_STAGE_LAYER3)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "no backbone stage %d", stage);
    int h = height, w = width, c = 64;
    if (h >= 1 && w >= 1) {
        h = conv_out(h, 7, 2, 3);
        w = conv_out(w, 7, 2, 3);
    }
    if (stage >= SF_STAGE_POOL) {
        h = conv_out(h, 3, 2, 1);
        w = conv_out(w, 3, 2, 1);
    }
    if (stage >= SF_STAGE_LAYER1)
        c = layout.bottleneck ? 256 : 64;
    for (int s = SF_STAGE_LAYER2; s <= stage; s++) {
        h = conv_out(h, 3, 2, 1);
        w = conv_out(w, 3, 2, 1);
        c *= 2;
    }
    if (height < 1 || width < 1 || h < 1 || w < 1)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "a %dx%d image is too small for the backbone", width, height);
    *channels = c;
    *out_height = h;
    *out_width = w;
    return SF_OK;
}
