#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sf_match.h"

void sf_match_options_default(sf_match_options *options)
{
    options->ratio = 0.9;
    options->same_index = 0;
    options->normalize = 1;
    options->a_template = NULL;
    options->b_template = NULL;
}

void sf_match_list_release(sf_match_list *list)
{
    if (!list)
        return;
    free(list->a);
    free(list->b);
    free(list->similarity);
    memset(list, 0, sizeof *list);
}

/* Rows of x as doubles, L2-normalised like torch's F.normalize when asked;
 * *sq gets each row's squared norm afterwards. */
static int load_rows(const float *x, size_t n, size_t dim, int normalize, double *out, double *sq)
{
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * dim;
        double *o = out + i * dim;
        double s = 0.0;
        for (size_t d = 0; d < dim; d++) {
            if (!isfinite(r[d]))
                return 0;
            o[d] = r[d];
            s += o[d] * o[d];
        }
        if (normalize) {
            double norm = sqrt(s);
            double div = norm > 1e-12 ? norm : 1e-12;
            s = 0.0;
            for (size_t d = 0; d < dim; d++) {
                o[d] /= div;
                s += o[d] * o[d];
            }
        }
        sq[i] = s;
    }
    return 1;
}

sf_status sf_match_find(const float *a, size_t na, const float *b, size_t nb, size_t dim,
                        const sf_match_options *options, sf_match_list *out, sf_error *err)
{
    memset(out, 0, sizeof *out);
    sf_match_options opt;
    if (options)
        opt = *options;
    else
        sf_match_options_default(&opt);
    if (!(opt.ratio >= 0.0))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "match: ratio %g must be >= 0",
                            opt.ratio);
    if (na == 0 || nb == 0)
        return SF_OK;
    if (dim == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "match: descriptors of dimension 0");
    if (na > UINT32_MAX || nb > UINT32_MAX || na > SIZE_MAX / sizeof(double) / dim ||
        nb > SIZE_MAX / sizeof(double) / dim)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "match: %zu x %zu rows of dimension %zu", na,
                            nb, dim);

    double *ra = malloc(na * dim * sizeof *ra);
    double *rb = malloc(nb * dim * sizeof *rb);
    double *bt = malloc(nb * dim * sizeof *bt); /* b transposed: dim x nb */
    double *sa = malloc(na * sizeof *sa);
    double *sb = malloc(nb * sizeof *sb);
    double *acc = malloc(nb * sizeof *acc);
    size_t *row_best = malloc(na * sizeof *row_best);   /* nearest j of each i */
    size_t *col_best = malloc(nb * sizeof *col_best);   /* nearest i of each j */
    double *col_d1 = malloc(nb * sizeof *col_d1);       /* its squared distance */
    double *col_d2 = malloc(nb * sizeof *col_d2);       /* second-nearest, squared */
    sf_status st = SF_OK;
    if (!ra || !rb || !bt || !sa || !sb || !acc || !row_best || !col_best || !col_d1 || !col_d2) {
        st = sf_error_set(err, SF_ERR_NOMEM, "match: out of memory for %zu x %zu rows", na, nb);
        goto done;
    }
    if (!load_rows(a, na, dim, opt.normalize, ra, sa) ||
        !load_rows(b, nb, dim, opt.normalize, rb, sb)) {
        st = sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "match: descriptors are not finite");
        goto done;
    }
    for (size_t j = 0; j < nb; j++) {
        for (size_t d = 0; d < dim; d++)
            bt[d * nb + j] = rb[j * dim + d];
        col_best[j] = SIZE_MAX;
        col_d1[j] = col_d2[j] = INFINITY;
    }

    /* One row of the distance matrix at a time: the inner loop runs over
     * contiguous columns of b^T, a vectorisable matrix-product row. */
    for (size_t i = 0; i < na; i++) {
        memset(acc, 0, nb * sizeof *acc);
        const double *x = ra + i * dim;
        for (size_t d = 0; d < dim; d++) {
            const double xd = x[d];
            const double *col = bt + d * nb;
            for (size_t j = 0; j < nb; j++)
                acc[j] += xd * col[j];
        }
        double best = INFINITY;
        size_t best_j = 0;
        for (size_t j = 0; j < nb; j++) {
            double d2 = sa[i] + sb[j] - 2.0 * acc[j];
            if (d2 < 0.0)
                d2 = 0.0;
            /* strict comparisons: on ties the lower index stays */
            if (d2 < best) {
                best = d2;
                best_j = j;
            }
            if (d2 < col_d1[j]) {
                col_d2[j] = col_d1[j];
                col_d1[j] = d2;
                col_best[j] = i;
            } else if (d2 < col_d2[j]) {
                col_d2[j] = d2;
            }
        }
        row_best[i] = best_j;
    }

    /* Two passes over the columns: count the kept pairs, then fill them. */
    size_t n = 0;
    for (int fill = 0; fill < 2; fill++) {
        if (fill) {
            if (n == 0)
                break;
            out->a = malloc(n * sizeof *out->a);
            out->b = malloc(n * sizeof *out->b);
            out->similarity = malloc(n * sizeof *out->similarity);
            if (!out->a || !out->b || !out->similarity) {
                sf_match_list_release(out);
                st = sf_error_set(err, SF_ERR_NOMEM, "match: out of memory for %zu pairs", n);
                goto done;
            }
            n = 0;
        }
        for (size_t j = 0; j < nb; j++) {
            size_t i = col_best[j];
            int other_template = opt.a_template && opt.b_template
                                     ? opt.a_template[i] != opt.b_template[j]
                                     : i != j;
            if (row_best[i] != j || (opt.same_index && other_template))
                continue; /* not mutual, or another template */
            double d1 = sqrt(col_d1[j]), d2 = sqrt(col_d2[j]);
            /* No second neighbour (d2 infinite) passes; two at distance 0
             * are ambiguous and fail. */
            if (!(d2 > 0.0) || !(d1 / d2 <= opt.ratio))
                continue;
            if (fill) {
                out->a[n] = (uint32_t)i;
                out->b[n] = (uint32_t)j;
                out->similarity[n] = (float)(1.0 - col_d1[j] / 2.0);
            }
            n++;
        }
    }
    out->count = n;

done:
    free(ra);
    free(rb);
    free(bt);
    free(sa);
    free(sb);
    free(acc);
    free(row_best);
    free(col_best);
    free(col_d1);
    free(col_d2);
    return st;
}
