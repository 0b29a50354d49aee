/* bf16 extraction against f32 on the golden models (onednn backend): the
 * selected local features (top features_num: 1000 for r50-fire, 100 for
 * r18-small) overlap >= 95 %, the global descriptor's cosine >= 0.999.
 * The golden input.f32 (120 x 192 and 160 x 256, every scale of the
 * model) is the image.  Skips on a CPU without AVX512-BF16 (the backend
 * refuses bf16 there; tests/network_cli.sh checks that refusal). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"
#include "sf_model.h"
#include "sf_network.h"
#include "testutil.h"

typedef struct fixture {
    const char *set;
    int height, width; /* of input.f32 */
} fixture;

static const fixture fixtures[] = {
    { "r18-small", 160, 256 },
    { "r50-fire", 120, 192 },
};

typedef struct result {
    int count, dim;
    float *scale;
    int32_t *index;
    float *global;
} result;

/* Every scale of input through net; the selection and the global
 * descriptor into r.  0 on success. */
static int extract(sf_network *net, const sf_model *model, const float *input, int H, int W,
                   result *r)
{
    const sf_net_params *p = sf_model_params(model);
    sf_error err;
    sf_lit_run *run;
    if (sf_lit_run_create(&run, net, model, 0, &err) != SF_OK) {
        CHECK(0, "%s", err.message);
        return -1;
    }
    int ok = 1;
    for (int i = 0; i < p->n_scales && ok; i++) {
        int lh, lw, c, h, w;
        sf_pyramid_level_size(H, W, p->scales[i], &lh, &lw);
        float *level = malloc(sizeof(float) * 3 * (size_t)lh * lw);
        ok = sf_pyramid_resize(input, 3, H, W, p->scales[i], level, &err) == SF_OK &&
             sf_backbone_output_size(p, lh, lw, SF_STAGE_LAYER3, &c, &h, &w, &err) == SF_OK;
        float *fm = ok ? malloc(sizeof(float) * (size_t)c * h * w) : NULL;
        sf_lit_scale out;
        ok = ok && sf_network_backbone(net, level, lh, lw, SF_STAGE_LAYER3, fm, &err) == SF_OK &&
             sf_lit_run_scale(run, fm, c, h, w, p->scales[i], &out, &err) == SF_OK;
        CHECK(ok, "scale %d: %s", i, err.message);
        free(level);
        free(fm);
    }
    sf_local_features lf;
    r->dim = sf_lit_run_reduced_dim(run);
    r->global = malloc(sizeof(float) * (size_t)r->dim);
    if (ok && sf_lit_run_select(run, p->features_num, &lf, r->global, &err) != SF_OK) {
        CHECK(0, "%s", err.message);
        ok = 0;
    }
    if (ok) {
        r->count = lf.count;
        r->scale = malloc(sizeof(float) * (size_t)lf.count);
        r->index = malloc(sizeof(int32_t) * (size_t)lf.count);
        memcpy(r->scale, lf.scale, sizeof(float) * (size_t)lf.count);
        memcpy(r->index, lf.index, sizeof(int32_t) * (size_t)lf.count);
    }
    sf_lit_run_free(run);
    return ok ? 0 : -1;
}

static void result_free(result *r)
{
    free(r->scale);
    free(r->index);
    free(r->global);
}

static int run_fixture(sf_backend *backend, const fixture *fx)
{
    char dir[2048], path[4096];
    sf_model *model;
    sf_error err;
    snprintf(dir, sizeof dir, "%s/%s", tu_golden_dir(), fx->set);
    snprintf(path, sizeof path, "%s/model.pth", dir);
    if (sf_model_load(&model, path, &err) != SF_OK) {
        CHECK(0, "%s", err.message);
        return 0;
    }
    size_t size;
    float *input = tu_read_file(dir, "input.f32", &size);
    CHECK(size == sizeof(float) * 3 * (size_t)fx->height * fx->width, "%s: input.f32 size", fx->set);
    result r[2];
    memset(r, 0, sizeof r);
    int skipped = 0;
    for (int prec = 0; prec < 2; prec++) {
        sf_network *net;
        sf_network_options opt = { .precision = prec ? SF_PRECISION_BF16 : SF_PRECISION_F32 };
        if (sf_network_create(&net, backend, model, &opt, &err) != SF_OK) {
            if (prec && strstr(err.message, "AVX512-BF16")) {
                skipped = 1;
                printf("%s\n", err.message);
                break;
            }
            CHECK(0, "%s: %s", fx->set, err.message);
            break;
        }
        extract(net, model, input, fx->height, fx->width, &r[prec]);
        sf_network_free(net);
    }
    if (!skipped && r[0].count && r[1].count) {
        const sf_net_params *p = sf_model_params(model);
        CHECK(r[0].count == p->features_num && r[1].count == p->features_num,
              "%s: kept %d (f32) and %d (bf16), want %d", fx->set, r[0].count, r[1].count,
              p->features_num);
        int common = 0;
        for (int i = 0; i < r[1].count; i++)
            for (int j = 0; j < r[0].count; j++)
                if (r[0].index[j] == r[1].index[i] && r[0].scale[j] == r[1].scale[i]) {
                    common++;
                    break;
                }
        double overlap = (double)common / p->features_num;
        double dot = 0, na = 0, nb = 0;
        for (int k = 0; k < r[0].dim; k++) {
            dot += (double)r[0].global[k] * r[1].global[k];
            na += (double)r[0].global[k] * r[0].global[k];
            nb += (double)r[1].global[k] * r[1].global[k];
        }
        double cosine = dot / sqrt(na * nb);
        printf("%-10s bf16 vs f32: top-%d overlap %.4f (%d common), global cosine %.6f\n",
               fx->set, p->features_num, overlap, common, cosine);
        CHECK(overlap >= 0.95, "%s: top-%d overlap %.4f < 0.95", fx->set, p->features_num,
              overlap);
        CHECK(cosine >= 0.999, "%s: global cosine %.6f < 0.999", fx->set, cosine);
    }
    result_free(&r[0]);
    result_free(&r[1]);
    free(input);
    sf_model_free(model);
    return skipped;
}

int main(void)
{
    tu_golden_dir();
    sf_backend *backend;
    sf_error err;
    if (sf_backend_open(&backend, "onednn", NULL, &err) != SF_OK) {
        CHECK(0, "%s", err.message);
        return tu_finish("test_bf16");
    }
    int skipped = 0;
    for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++)
        skipped += run_fixture(backend, &fixtures[f]);
    sf_backend_close(backend);
    if (skipped) {
        printf("SKIP: no AVX512-BF16 here\n");
        return 77;
    }
    return tu_finish("test_bf16");
}
