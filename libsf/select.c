/* After LIT: strength, reduction, selection across scales and the global
 * descriptor (spec section 5). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sf_network.h"

void sf_superfeature_strength(const float *superfeatures, int n, int d, float *strength)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) {
            double v = superfeatures[(size_t)i * d + k];
            s += v * v;
        }
        strength[i] = (float)sqrt(s + 1e-10);
    }
}

void sf_superfeature_reduce(const float *superfeatures, int n, int d, const float *weight,
                            const float *bias, int out_dim, float *reduced)
{
    for (int i = 0; i < n; i++) {
        const float *x = superfeatures + (size_t)i * d;
        if (!weight) {
            memcpy(reduced + (size_t)i * d, x, sizeof(float) * (size_t)d);
            continue;
        }
        for (int j = 0; j < out_dim; j++) {
            double s = bias ? bias[j] : 0.0;
            const float *w = weight + (size_t)j * d;
            for (int k = 0; k < d; k++)
                s += (double)w[k] * x[k];
            reduced[(size_t)i * out_dim + j] = (float)s;
        }
    }
}

struct sf_selector {
    int dim;
    int count, cap;
    float *desc, *strength, *scale;
    int32_t *index;
    int *order;
    sf_local_features out;
};

sf_status sf_selector_create(sf_selector **out, int dim, sf_error *err)
{
    if (dim < 1)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "descriptor dimension %d", dim);
    sf_selector *sel = calloc(1, sizeof *sel);
    if (!sel)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    sel->dim = dim;
    *out = sel;
    return SF_OK;
}

void sf_selector_free(sf_selector *sel)
{
    if (!sel)
        return;
    free(sel->desc);
    free(sel->strength);
    free(sel->scale);
    free(sel->index);
    free(sel->order);
    free(sel->out.desc);
    free(sel->out.strength);
    free(sel->out.scale);
    free(sel->out.index);
    free(sel);
}

void sf_selector_reset(sf_selector *sel)
{
    sel->count = 0;
}

static int grow(void **p, size_t elem, int cap)
{
    void *q = realloc(*p, elem * (size_t)cap);
    if (!q)
        return -1;
    *p = q;
    return 0;
}

sf_status sf_selector_add(sf_selector *sel, const float *reduced, const float *strength,
                          int n, double scale, sf_error *err)
{
    if (n < 0 || n > (1 << 24) || sel->count > (1 << 26) - n)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "too many super-features (%d more)", n);
    if (sel->count + n > sel->cap) {
        int cap = sel->cap ? sel->cap : 1024;
        while (cap < sel->count + n)
            cap *= 2;
        if (grow((void **)&sel->desc, sizeof(float) * (size_t)sel->dim, cap) ||
            grow((void **)&sel->strength, sizeof(float), cap) ||
            grow((void **)&sel->scale, sizeof(float), cap) ||
            grow((void **)&sel->index, sizeof(int32_t), cap) ||
            grow((void **)&sel->order, sizeof(int), cap))
            return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        sel->cap = cap;
    }
    memcpy(sel->desc + (size_t)sel->count * sel->dim, reduced,
           sizeof(float) * (size_t)n * sel->dim);
    for (int i = 0; i < n; i++) {
        sel->strength[sel->count + i] = strength[i];
        sel->scale[sel->count + i] = (float)scale;
        sel->index[sel->count + i] = i;
    }
    sel->count += n;
    return SF_OK;
}

static const float *sort_strength;

/* Descending strength; ties keep insertion order (scale order, then index). */
static int by_strength(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    float si = sort_strength[i], sj = sort_strength[j];
    if (si != sj)
        return si > sj ? -1 : 1;
    return (i > j) - (i < j);
}

sf_status sf_selector_select(sf_selector *sel, int keep, sf_local_features *out,
                             sf_error *err)
{
    int k = keep < sel->count ? keep : sel->count;
    if (k < 0)
        k = 0;
    for (int i = 0; i < sel->count; i++)
        sel->order[i] = i;
    sort_strength = sel->strength;
    qsort(sel->order, (size_t)sel->count, sizeof(int), by_strength);
    sf_local_features *o = &sel->out;
    size_t m = k > 0 ? (size_t)k : 1;
    if (grow((void **)&o->desc, sizeof(float) * (size_t)sel->dim, (int)m) ||
        grow((void **)&o->strength, sizeof(float), (int)m) ||
        grow((void **)&o->scale, sizeof(float), (int)m) ||
        grow((void **)&o->index, sizeof(int32_t), (int)m))
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    for (int r = 0; r < k; r++) {
        int i = sel->order[r];
        memcpy(o->desc + (size_t)r * sel->dim, sel->desc + (size_t)i * sel->dim,
               sizeof(float) * (size_t)sel->dim);
        o->strength[r] = sel->strength[i];
        o->scale[r] = sel->scale[i];
        o->index[r] = sel->index[i];
    }
    o->count = k;
    o->dim = sel->dim;
    *out = *o;
    return SF_OK;
}

void sf_selector_global(const sf_selector *sel, float *global)
{
    double *acc = calloc((size_t)sel->dim, sizeof(double));
    if (!acc) {
        /* Fall back to float accumulation rather than fail a void function. */
        memset(global, 0, sizeof(float) * (size_t)sel->dim);
        for (int i = 0; i < sel->count; i++)
            for (int d = 0; d < sel->dim; d++)
                global[d] += sel->desc[(size_t)i * sel->dim + d] * sel->strength[i];
    } else {
        for (int i = 0; i < sel->count; i++)
            for (int d = 0; d < sel->dim; d++)
                acc[d] += (double)sel->desc[(size_t)i * sel->dim + d] * sel->strength[i];
        for (int d = 0; d < sel->dim; d++)
            global[d] = (float)acc[d];
        free(acc);
    }
    double norm = 0;
    for (int d = 0; d < sel->dim; d++)
        norm += (double)global[d] * global[d];
    norm = sqrt(norm) + 1e-6;
    for (int d = 0; d < sel->dim; d++)
        global[d] = (float)(global[d] / norm);
}
