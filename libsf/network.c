/* A model bound to a backend. */
#include "config.h"

#include <stdlib.h>

#include "sf_backend_impl.h"
#include "sf_internal.h"

struct sf_network {
    const sf_backend_iface *iface;
    const sf_model *model;
    void *handle;
};

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
    const sf_backend_iface *iface = sf_backend_iface_of(backend);
    int precision = options ? options->precision : SF_PRECISION_F32;
    /* A backend computes in what it declares, or is not asked to: never
     * float32 under a bf16 label. */
    if (precision != SF_PRECISION_F32 &&
        (precision != SF_PRECISION_BF16 || !(iface->precisions & (1u << precision))))
        return sf_error_set(err, SF_ERR_UNSUPPORTED,
                            precision == SF_PRECISION_BF16
                                ? "backend %s has no bfloat16 path; use --precision f32 "
                                  "(the onednn backend has one)"
                                : "backend %s: unknown precision",
                            sf_backend_name(backend));
    sf_network *net = calloc(1, sizeof *net);
    if (!net)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    net->iface = iface;
    net->model = model;
    sf_backend_net desc = {
        .params = sf_model_params(model),
        .model = model,
        .tensor = lookup,
        .threads = sf_threads_resolve(options ? options->threads : 0),
        .precision = precision,
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
