/* A model bound to a backend, and the backbone's geometry. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "sf_backend_impl.h"
#include "sf_network.h"

const sf_backend_iface *sf_backend_iface_of(const sf_backend *backend);

struct sf_network {
    const sf_backend_iface *iface;
    const sf_model *model;
    void *handle;
};

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

static const sf_tensor *lookup(const void *model, const char *name)
{
    return sf_model_tensor(model, name);
}

sf_status sf_network_create(sf_network **out, sf_backend *backend, const sf_model *model,
                            const sf_network_options *options, sf_error *err)
{
    sf_backbone_layout layout;
    sf_status st = sf_backbone_layout_get(sf_model_params(model), &layout, err);
    if (st != SF_OK)
        return st;
    /* No backend computes in bfloat16 yet: refuse rather than silently run
     * float32 under a bf16 label. */
    if (options && options->precision != SF_PRECISION_F32)
        return sf_error_set(err, SF_ERR_UNSUPPORTED,
                            "backend %s has no bfloat16 path yet; use --precision f32",
                            sf_backend_name(backend));
    sf_network *net = calloc(1, sizeof *net);
    if (!net)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    net->iface = sf_backend_iface_of(backend);
    net->model = model;
    sf_backend_net desc = {
        .params = sf_model_params(model),
        .model = model,
        .tensor = lookup,
        .threads = options ? options->threads : 0,
        .precision = options ? options->precision : 0,
    };
    if ((st = net->iface->net_create(&desc, &net->handle, err)) != SF_OK) {
        free(net);
        return st;
    }
    *out = net;
    return SF_OK;
}

void sf_network_free(sf_network *net)
{
    if (!net)
        return;
    net->iface->net_free(net->handle);
    free(net);
}

const sf_net_params *sf_network_params(const sf_network *net)
{
    return sf_model_params(net->model);
}

sf_status sf_network_backbone(sf_network *net, const float *image, int height, int width,
                              int stage, float *out, sf_error *err)
{
    int c, h, w;
    sf_status st = sf_backbone_output_size(sf_network_params(net), height, width, stage, &c,
                                           &h, &w, err);
    if (st != SF_OK)
        return st;
    return net->iface->backbone(net->handle, image, height, width, stage, out, err);
}

sf_status sf_network_lit(sf_network *net, const float *features, int height, int width,
                         float *superfeatures, float *attention, sf_error *err)
{
    if (height < 1 || width < 1)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "empty %dx%d feature map", width, height);
    return net->iface->lit(net->handle, features, height, width, superfeatures, attention, err);
}
