/* One image through the LIT stage: each scale's feature map through LIT,
 * strength and reduction into the selector, then the strongest features
 * over all scales and the global descriptor (spec sections 4 and 5). */
#include "config.h"

#include <stdlib.h>

#include "sf_internal.h"

struct sf_lit_run {
    sf_network *net;
    int N, D, d, C;
    const float *red_w, *red_b; /* NULL when the model has no reduction */
    int want_attention;
    sf_selector *selector;
    float *sf, *strength, *reduced, *attn;
    size_t attn_cap;
    int scales; /* added since the reset */
};

sf_status sf_lit_run_create(sf_lit_run **out, sf_network *net, const sf_model *model,
                            int want_attention, sf_error *err)
{
    *out = NULL;
    const sf_net_params *p = sf_network_params(net);
    sf_backbone_layout layout;
    sf_status st = sf_backbone_layout_get(p, &layout, err);
    if (st != SF_OK)
        return st;
    sf_lit_run *r = calloc(1, sizeof *r);
    if (!r)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    const sf_tensor *rw = sf_model_tensor(model, "dim_reduction.weight");
    const sf_tensor *rb = sf_model_tensor(model, "dim_reduction.bias");
    r->net = net;
    r->C = layout.channels;
    r->N = p->lit_N;
    r->D = p->lit_dim;
    r->d = rw ? p->reduction_dim : r->D;
    r->red_w = rw ? rw->data : NULL;
    r->red_b = rb ? rb->data : NULL;
    r->want_attention = want_attention;
    r->sf = malloc(sizeof(float) * (size_t)r->N * (size_t)r->D);
    r->strength = malloc(sizeof(float) * (size_t)r->N);
    r->reduced = malloc(sizeof(float) * (size_t)r->N * (size_t)r->d);
    if (!r->sf || !r->strength || !r->reduced) {
        sf_lit_run_free(r);
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }
    st = sf_selector_create(&r->selector, r->d, err);
    if (st != SF_OK) {
        sf_lit_run_free(r);
        return st;
    }
    *out = r;
    return SF_OK;
}

void sf_lit_run_free(sf_lit_run *r)
{
    if (!r)
        return;
    sf_selector_free(r->selector);
    free(r->sf);
    free(r->strength);
    free(r->reduced);
    free(r->attn);
    free(r);
}

void sf_lit_run_reset(sf_lit_run *r)
{
    sf_selector_reset(r->selector);
    r->scales = 0;
}

int sf_lit_run_reduced_dim(const sf_lit_run *r)
{
    return r->d;
}

sf_status sf_lit_run_scale(sf_lit_run *r, const float *features, int channels, int height,
                           int width, double scale, sf_lit_scale *out, sf_error *err)
{
    /* LIT's weights fix the channels; a map of other channels or absurd
     * size was made by another model (provenance says which). */
    if (channels != r->C || height < 1 || width < 1 || height > 1 << 14 || width > 1 << 14)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "feature map of %d x %d x %d, LIT takes %d x H x W", channels, height,
                            width, r->C);
    size_t L = (size_t)height * (size_t)width;
    if (r->want_attention && L * (size_t)r->N > r->attn_cap) {
        float *a = realloc(r->attn, L * (size_t)r->N * sizeof(float));
        if (!a)
            return sf_error_set(err, SF_ERR_NOMEM, "out of memory for the attention maps");
        r->attn = a;
        r->attn_cap = L * (size_t)r->N;
    }
    sf_status st = sf_network_lit(r->net, features, height, width, r->sf,
                                  r->want_attention ? r->attn : NULL, err);
    if (st != SF_OK)
        return st;
    sf_superfeature_strength(r->sf, r->N, r->D, r->strength);
    sf_superfeature_reduce(r->sf, r->N, r->D, r->red_w, r->red_b, r->d, r->reduced);
    st = sf_selector_add(r->selector, r->reduced, r->strength, r->N, scale, err);
    if (st != SF_OK)
        return st;
    r->scales++;
    *out = (sf_lit_scale){ .n = r->N, .dim = r->D, .reduced_dim = r->d, .height = height,
                           .width = width, .superfeatures = r->sf,
                           .attention = r->want_attention ? r->attn : NULL,
                           .strength = r->strength, .reduced = r->reduced };
    return SF_OK;
}

sf_status sf_lit_run_select(sf_lit_run *r, int keep, sf_local_features *out, float *global,
                            sf_error *err)
{
    if (r->scales == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "no feature map to select from");
    sf_status st = sf_selector_select(r->selector, keep, out, err);
    if (st == SF_OK && global)
        sf_selector_global(r->selector, global);
    return st;
}
