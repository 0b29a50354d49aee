/* Random-weight models, drawn the way the golden fixtures were: the
 * torchvision / nn.Linear initialisations, with BatchNorm, LayerNorm and
 * the reduction randomised and the LIT projections scaled up so that
 * attention is far from uniform.
 *
 * Every value is computed with exact integer arithmetic followed by one
 * rounded multiplication, so the same seed gives the same bits on every
 * machine, whatever its libm or its use of fused multiply-add.  Normal
 * draws are therefore Irwin-Hall sums of 12 uniforms (mean 0, variance 1,
 * bounded by 6): close enough to a Gaussian for initial weights. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "rng_internal.h"

typedef sf_rng rng;

/* One independent stream per tensor, keyed by its name, so a tensor's
 * values do not depend on which other tensors the network has. */
static void rng_init(rng *r, uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    sf_rng_from_splitmix(r, seed ^ sf_splitmix64(&h));
}

/* Approximately N(0, 1): (sum of 12 uniform 32-bit integers - 6 (2^32 - 1))
 * / 2^32, computed exactly. */
static double normal(rng *r)
{
    int64_t sum = 0;
    for (int i = 0; i < 6; i++) {
        uint64_t v = sf_rng_next(r);
        sum += (int64_t)(v & 0xffffffffu) + (int64_t)(v >> 32);
    }
    return (double)(2 * sum - 12 * (int64_t)0xffffffff) * 0x1p-33;
}

/* Uniform on [0, 1) in multiples of 2^-32, exact. */
static double uniform01(rng *r)
{
    return (double)(sf_rng_next(r) >> 32) * 0x1p-32;
}

enum dist { NORMAL, UNIFORM_PM, UNIFORM_05_15, UNIFORM_05_2 };

static void fill(float *x, size_t n, rng *r, enum dist d, double a)
{
    for (size_t i = 0; i < n; i++) {
        switch (d) {
        case NORMAL:
            x[i] = (float)(normal(r) * a);
            break;
        case UNIFORM_PM: /* a * (2u - 1), the bracket exact */
            x[i] = (float)((double)(2 * (int64_t)(sf_rng_next(r) >> 32) - (int64_t)0xffffffff) * 0x1p-32 * a);
            break;
        case UNIFORM_05_15:
            x[i] = (float)(0.5 + uniform01(r));
            break;
        case UNIFORM_05_2:
            x[i] = (float)(0.5 + 1.5 * uniform01(r));
            break;
        }
    }
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Distribution of one tensor (see the file comment). */
static void pick(const sf_tensor *t, const sf_model *m, enum dist *d, double *a)
{
    const char *nm = t->name;
    if (strcmp(nm, "lit.templates_init") == 0) {
        *d = NORMAL, *a = 1.0;
    } else if (strcmp(nm, "lit.project_q.weight") == 0 || strcmp(nm, "lit.project_k.weight") == 0) {
        *d = NORMAL, *a = 2.0 / sqrt((double)t->shape[1]);
    } else if (strcmp(nm, "lit.project_v.weight") == 0) {
        *d = NORMAL, *a = 1.0 / sqrt((double)t->shape[1]);
    } else if (strncmp(nm, "lit.mlp.", 8) == 0) {
        /* nn.Linear default: U(+-1/sqrt(fan_in)) for weight and bias */
        int64_t fan_in = strcmp(nm, "lit.mlp.0.bias") == 0   ? m->params.lit_dim
                         : strcmp(nm, "lit.mlp.2.bias") == 0 ? m->params.lit_dim / 2
                                                             : t->shape[1];
        *d = UNIFORM_PM, *a = 1.0 / sqrt((double)fan_in);
    } else if (strcmp(nm, "dim_reduction.weight") == 0) {
        *d = NORMAL, *a = 1.0 / sqrt((double)t->shape[1]);
    } else if (t->ndim == 4) {
        /* torchvision ResNet: kaiming_normal_(mode='fan_out', relu) */
        *d = NORMAL, *a = sqrt(2.0 / (double)(t->shape[0] * t->shape[2] * t->shape[3]));
    } else if (ends_with(nm, ".running_var")) {
        *d = UNIFORM_05_2, *a = 0;
    } else if (ends_with(nm, ".weight")) { /* BatchNorm and LayerNorm scales */
        *d = UNIFORM_05_15, *a = 0;
    } else { /* biases and running means */
        *d = NORMAL, *a = 0.1;
    }
}

sf_status sf_model_create_random(sf_model **out, const sf_net_params *params, uint64_t seed,
                                 sf_error *err)
{
    sf_model *m;
    *out = NULL;
    sf_status st = sf_model_new(&m, params, "random model", err);
    if (st)
        return st;
    for (size_t i = 0; i < m->n_tensors; i++) {
        sf_tensor *t = &m->tensors[i];
        size_t n = sf_tensor_numel(t);
        float *x = malloc(n * sizeof *x);
        if (!x) {
            sf_model_free(m);
            return sf_error_set(err, SF_ERR_NOMEM, "random model: out of memory");
        }
        m->owned[i] = x;
        t->data = x;
        rng r;
        enum dist d;
        double a;
        rng_init(&r, seed, t->name);
        pick(t, m, &d, &a);
        fill(x, n, &r, d, a);
    }
    if ((st = sf_model_seal(m, err))) {
        sf_model_free(m);
        return st;
    }
    *out = m;
    return SF_OK;
}
