/* The network against the published reference (golden r18-small and
 * r50-fire), for every backend: backbone stages, per-scale feature maps,
 * LIT templates and attention, strengths, reductions, the selected local
 * features and the global descriptor.  The golden input.f32 is fed, so
 * decoding differences do not mix in.
 *   test_network [BACKEND...]   (default: reference onednn) */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sf.h"
#include "sf_model.h"
#include "sf_network.h"
#include "testutil.h"

typedef struct fixture {
    const char *set;
    int height, width; /* of input.f32, from the manifest */
} fixture;

static const fixture fixtures[] = {
    { "r18-small", 160, 256 },
    { "r50-fire", 120, 192 },
};

static char dir[2048];

static int exists(const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* Golden array `name` with exactly count floats (else the test fails). */
static float *golden(const char *name, size_t count)
{
    size_t size;
    float *data = tu_read_file(dir, name, &size);
    CHECK(size == count * sizeof(float), "%s: %zu bytes, expected %zu floats", name, size, count);
    if (size != count * sizeof(float)) {
        free(data);
        return NULL;
    }
    return data;
}

/* max|a-b|/max|b| <= tol, printed for the record. */
static void compare(const char *backend, const char *what, const float *got, const float *want,
                    size_t n, double tol)
{
    if (!want)
        return;
    double rel = tu_rel_error(got, want, n);
    printf("  %-10s %-22s rel %.2e%s\n", backend, what, rel, rel <= tol ? "" : "  <-- over");
    CHECK(rel <= tol, "%s %s/%s: relative error %.3g > %g", backend, dir, what, rel, tol);
}

/* rows x cols -> cols x rows */
static float *transpose(const float *in, int rows, int cols)
{
    float *out = malloc(sizeof(float) * (size_t)rows * cols);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            out[(size_t)c * rows + r] = in[(size_t)r * cols + c];
    return out;
}

static void check_selection(const char *backend, const sf_local_features *lf, int keep, double tol)
{
    size_t ns;
    float *strength = tu_read_file(dir, "local_strength.f32", &ns);
    int K = (int)(ns / sizeof(float)), d = lf->dim;
    float *desc = golden("local_desc.f32", (size_t)K * d);
    float *scales = golden("local_scales.f32", (size_t)K);
    size_t nl;
    int32_t *locs = tu_read_file(dir, "local_locs.i32", &nl);
    CHECK(K == keep && lf->count == K && nl == (size_t)K * 2 * sizeof(int32_t),
          "%s: %d kept, golden %d, keep %d", backend, lf->count, K, keep);
    if (!desc || !scales || lf->count != K || nl != (size_t)K * 2 * sizeof(int32_t))
        goto done;
    /* Features are keyed by (scale, template index); the reference stores
     * the scale as float16 (1.414 -> 1.4140625) and the index as y. */
    double boundary = strength[K - 1], worst_desc = 0, worst_strength = 0;
    int matched = 0, swapped = 0;
    for (int i = 0; i < K; i++) {
        int found = -1;
        for (int j = 0; j < K && found < 0; j++)
            if (locs[2 * j + 1] == lf->index[i] && fabs(scales[j] - lf->scale[i]) < 2e-3)
                found = j;
        if (found < 0) {
            /* Only a feature at the selection boundary may differ. */
            double gap = fabs(lf->strength[i] - boundary) / boundary;
            CHECK(gap < 1e-5, "%s: feature (scale %g, index %d, strength %.7g) not selected by the reference; "
                  "boundary %.7g", backend, lf->scale[i], lf->index[i], lf->strength[i], boundary);
            swapped++;
            continue;
        }
        matched++;
        double md = 0, mx = 0;
        for (int k = 0; k < d; k++) {
            md = fmax(md, fabs(lf->desc[(size_t)i * d + k] - desc[(size_t)found * d + k]));
            mx = fmax(mx, fabs(desc[(size_t)found * d + k]));
        }
        worst_desc = fmax(worst_desc, md / mx);
        worst_strength = fmax(worst_strength, fabs(lf->strength[i] - strength[found]) / strength[found]);
    }
    printf("  %-10s selection: %d of %d matched, %d boundary swaps, desc rel %.2e, strength rel %.2e\n",
           backend, matched, K, swapped, worst_desc, worst_strength);
    CHECK(worst_desc <= tol && worst_strength <= tol, "%s: selected features differ: desc %.3g strength %.3g",
          backend, worst_desc, worst_strength);
    /* Order: strengths descending. */
    for (int i = 1; i < lf->count; i++)
        CHECK(lf->strength[i - 1] >= lf->strength[i], "%s: selection not sorted at %d", backend, i);
done:
    free(strength); free(desc); free(scales); free(locs);
}

static void run_fixture(const char *backend_name, sf_backend *backend, const fixture *fx, double tol)
{
    sf_model *model;
    sf_network *net;
    sf_error err;
    char path[4096];
    snprintf(dir, sizeof dir, "%s/%s", tu_golden_dir(), fx->set);
    snprintf(path, sizeof path, "%s/model.pth", dir);
    printf("%s with the %s backend\n", fx->set, backend_name);
    if (sf_model_load(&model, path, &err) != SF_OK) {
        CHECK(0, "%s", err.message);
        return;
    }
    sf_network_options opt = { 0 };
    if (sf_network_create(&net, backend, model, &opt, &err) != SF_OK) {
        CHECK(0, "%s: %s", backend_name, err.message);
        sf_model_free(model);
        return;
    }
    const sf_net_params *p = sf_model_params(model);
    int H = fx->height, W = fx->width, c, h, w;
    float *input = golden("input.f32", (size_t)3 * H * W);
    if (!input)
        goto out;

    /* Backbone stages at scale 1.0 (stage_* hold them where the set has them). */
    static const char *stages[] = { "stage_conv1", "stage_pool", "stage_layer1", "stage_layer2", "stage_layer3" };
    for (int s = SF_STAGE_CONV1; s <= SF_STAGE_LAYER3; s++) {
        char name[64];
        snprintf(name, sizeof name, "%s.f32", stages[s - 1]);
        if (!exists(name))
            continue;
        sf_backbone_output_size(p, H, W, s, &c, &h, &w, &err);
        float *out = malloc(sizeof(float) * (size_t)c * h * w);
        CHECK(sf_network_backbone(net, input, H, W, s, out, &err) == SF_OK, "%s", err.message);
        float *want = golden(name, (size_t)c * h * w);
        compare(backend_name, name, out, want, (size_t)c * h * w, tol);
        free(out);
        free(want);
    }

    /* Every scale: pyramid level, backbone, LIT, strength, reduction. */
    sf_selector *sel;
    sf_selector_create(&sel, p->reduction_dim, &err);
    const sf_tensor *rw = sf_model_tensor(model, "dim_reduction.weight");
    const sf_tensor *rb = sf_model_tensor(model, "dim_reduction.bias");
    int N = p->lit_N, D = p->lit_dim, d = p->reduction_dim;
    for (int i = 0; i < p->n_scales; i++) {
        int lh, lw;
        char name[64];
        sf_pyramid_level_size(H, W, p->scales[i], &lh, &lw);
        float *level = malloc(sizeof(float) * 3 * (size_t)lh * lw);
        sf_pyramid_resize(input, 3, H, W, p->scales[i], level, &err);
        sf_backbone_output_size(p, lh, lw, SF_STAGE_LAYER3, &c, &h, &w, &err);
        size_t L = (size_t)h * w;
        float *fm = malloc(sizeof(float) * (size_t)c * L);
        CHECK(sf_network_backbone(net, level, lh, lw, SF_STAGE_LAYER3, fm, &err) == SF_OK, "%s", err.message);
        snprintf(name, sizeof name, "s%d_backbone.f32", i);
        if (exists(name)) {
            float *want = golden(name, (size_t)c * L);
            compare(backend_name, name, fm, want, (size_t)c * L, tol);
            free(want);
        }
        float *S = malloc(sizeof(float) * (size_t)N * D), *A = malloc(sizeof(float) * (size_t)N * L);
        float *st = malloc(sizeof(float) * (size_t)N), *red = malloc(sizeof(float) * (size_t)N * d);
        CHECK(sf_network_lit(net, fm, h, w, S, A, &err) == SF_OK, "%s", err.message);
        sf_superfeature_strength(S, N, D, st);
        sf_superfeature_reduce(S, N, D, rw->data, rb->data, d, red);
        float *St = transpose(S, N, D), *redt = transpose(red, N, d);
        snprintf(name, sizeof name, "s%d_templates.f32", i);
        float *want = golden(name, (size_t)D * N);
        compare(backend_name, name, St, want, (size_t)D * N, tol);
        free(want);
        snprintf(name, sizeof name, "s%d_attn.f32", i);
        want = golden(name, (size_t)N * L);
        compare(backend_name, name, A, want, (size_t)N * L, tol);
        free(want);
        snprintf(name, sizeof name, "s%d_strength.f32", i);
        want = golden(name, (size_t)N);
        compare(backend_name, name, st, want, (size_t)N, tol);
        free(want);
        snprintf(name, sizeof name, "s%d_reduced.f32", i);
        want = golden(name, (size_t)d * N);
        compare(backend_name, name, redt, want, (size_t)d * N, tol);
        free(want);
        sf_selector_add(sel, red, st, N, p->scales[i], &err);
        free(level); free(fm); free(S); free(A); free(st); free(red); free(St); free(redt);
    }
    sf_local_features lf;
    CHECK(sf_selector_select(sel, p->features_num, &lf, &err) == SF_OK, "%s", err.message);
    check_selection(backend_name, &lf, p->features_num, tol);
    float *g = malloc(sizeof(float) * (size_t)d), *gw = golden("global.f32", (size_t)d);
    sf_selector_global(sel, g);
    if (gw) {
        double dotp = 0, na = 0, nb = 0;
        for (int k = 0; k < d; k++) {
            dotp += (double)g[k] * gw[k];
            na += (double)g[k] * g[k];
            nb += (double)gw[k] * gw[k];
        }
        double cosine = dotp / sqrt(na * nb);
        printf("  %-10s global cosine %.7f\n", backend_name, cosine);
        CHECK(cosine >= 0.9999, "%s: global descriptor cosine %.6f < 0.9999", backend_name, cosine);
    }
    free(g); free(gw);
    sf_selector_free(sel);
out:
    free(input);
    sf_network_free(net);
    sf_model_free(model);
}

int main(int argc, char **argv)
{
    static const char *defaults[] = { "reference", "onednn" };
    const char **names = argc > 1 ? (const char **)argv + 1 : defaults;
    int count = argc > 1 ? argc - 1 : 2;
    tu_golden_dir();
    for (int b = 0; b < count; b++) {
        sf_backend *backend;
        sf_error err;
        if (sf_backend_open(&backend, names[b], NULL, &err) != SF_OK) {
            CHECK(0, "%s", err.message);
            continue;
        }
        /* The bounds: the oracle within 1e-4, others within 1e-3. */
        double tol = strcmp(names[b], "reference") == 0 ? 1e-4 : 1e-3;
        for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++)
            run_fixture(names[b], backend, &fixtures[f], tol);
        sf_backend_close(backend);
    }
    return tu_finish("test_network");
}
