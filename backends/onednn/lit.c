/* LIT: matrix products through dnnl_sgemm, reassociated to do fewer FLOPs
 * without changing the mathematics: the logits are Xn (LN(S) W_q^T W_k)^T,
 * so K is never formed (W_q^T W_k is computed once), and for large maps
 * A^T V is (A^T Xn) W_v^T, cheaper than forming V when L > T*N; there
 * norm_inputs is also folded into the products so that Xn is never
 * written (see onednn_lit).  Softmax, LayerNorm and the normalisations are
 * AVX2 loops. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onednn_internal.h"

/* Bytes of LIT's N-row float matrices (S, tmp, U: N x D; Q, Z: N x C;
 * hidden: N x D/2; qg, qb), vectors follow. */
static size_t lit_floats_bytes(int n, int c, int d)
{
    return round_up(sizeof(float) * (size_t)n * (3 * (size_t)d + 2 * (size_t)c + d / 2 + 2));
}

sf_status lit_load(onednn_net *nt, const sf_backend_net *net, sf_error *err)
{
    const int C = nt->C, D = nt->D, N = nt->N;
    const sf_tensor *t, *wq, *wk;
#define LIT(field, name, numel)                        \
    if (!(t = need(net, name, (size_t)(numel), err)))  \
        return SF_ERR_FORMAT;                          \
    nt->field = t->data;
    LIT(templates, "lit.templates_init", N * D);
    LIT(wv, "lit.project_v.weight", (size_t)D * C);
    LIT(mlp0_w, "lit.mlp.0.weight", (size_t)(D / 2) * D);
    LIT(mlp0_b, "lit.mlp.0.bias", D / 2);
    LIT(mlp2_w, "lit.mlp.2.weight", (size_t)D * (D / 2));
    LIT(mlp2_b, "lit.mlp.2.bias", D);
    LIT(ln_in_w, "lit.norm_inputs.weight", C);
    LIT(ln_in_b, "lit.norm_inputs.bias", C);
    LIT(ln_t_w, "lit.norm_templates.weight", D);
    LIT(ln_t_b, "lit.norm_templates.bias", D);
    LIT(ln_m_w, "lit.norm_mlp.weight", D);
    LIT(ln_m_b, "lit.norm_mlp.bias", D);
#undef LIT
    if (!(wq = need(net, "lit.project_q.weight", (size_t)D * D, err)) ||
        !(wk = need(net, "lit.project_k.weight", (size_t)D * C, err)))
        return SF_ERR_FORMAT;
    nt->wqk = alloc_aligned(sizeof(float) * (size_t)D * C);
    nt->lit_small = alloc_aligned(lit_floats_bytes(N, C, D) + 2 * (size_t)N * sizeof(__m256));
    nt->rowsum = malloc(2 * sizeof(double) * (size_t)N);
    if (!nt->wqk || !nt->lit_small || !nt->rowsum)
        return sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
    /* logits = Xn (LN(S) W_q^T D^-1/2)(W_k)... = Xn (LN(S) Wqk)^T with
     * Wqk[d, c] = sum_e W_q[e, d] W_k[e, c] / sqrt(D). */
    dnnl_status_t s = dnnl_sgemm('T', 'N', D, C, D, (float)(1.0 / sqrt((double)D)), wq->data, D,
                                 wk->data, C, 0.0f, nt->wqk, C);
    if (s != dnnl_success)
        return dnnl_fail(err, "sgemm", s);
    return SF_OK;
}

/* ---- LIT ---- */

static sf_status sgemm(char ta, char tb, int m, int n, int k, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc, sf_error *err)
{
    dnnl_status_t s = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    return s == dnnl_success ? SF_OK : dnnl_fail(err, "sgemm", s);
}

/* LIT (spec section 4).  For large maps norm_inputs is folded into the
 * products instead of writing Xn: with the location statistics mean_l and
 * rstd_l, and g, b the LayerNorm's weight and bias,
 *   (Q Xn)[n,l] = rstd_l ((Q diag(g)) X - mean_l qg_n) + qb_n,
 *     qg_n = sum_c Q[n,c] g_c,  qb_n = sum_c Q[n,c] b_c;
 *   (A Xn^T)[n,c] = g_c ((A diag(rstd)) X^T - m_n) + b_c sum_l A[n,l],
 *     m_n = sum_l A[n,l] rstd_l mean_l.
 * The cancellation in the subtractions is that of mean against spread in a
 * feature column, mild for the backbone's ReLU outputs. */
sf_status onednn_lit(void *handle, const float *features, int height, int width,
                     float *superfeatures, float *attention, sf_error *err)
{
    onednn_net *nt = handle;
    const int C = nt->C, D = nt->D, N = nt->N, H2 = D / 2;
    const int L = height * width;
    /* Small maps: form Xn and V = Xn W_v^T once.  Large ones: A^T V as
     * (A^T Xn) W_v^T, cheaper when L > T*N, with Xn folded. */
    const int vpath = (size_t)L <= (size_t)nt->T * N;
    size_t need = (size_t)N * L + 2 * (size_t)L + (vpath ? (size_t)(C + D) * L : 0);
    sf_status st = ensure((void **)&nt->arena, &nt->arena_size, sizeof(float) * need, err);
    if (st != SF_OK)
        return st;
    float *A = nt->arena, *mean = A + (size_t)N * L, *rstd = mean + L;
    float *Xn = rstd + L, *Vt = Xn + (size_t)C * L;
    float *S = nt->lit_small, *tmp = S + (size_t)N * D, *U = tmp + (size_t)N * D;
    float *Q = U + (size_t)N * D, *Z = Q + (size_t)N * C, *hid = Z + (size_t)N * C;
    float *qg = hid + (size_t)N * H2, *qb = qg + N;
    __m256 *acc = (__m256 *)((char *)nt->lit_small + lit_floats_bytes(N, C, D));
    double *rowsum = nt->rowsum, *m = rowsum + N;
    const float *g = nt->ln_in_w, *b = nt->ln_in_b;
    int prev = set_threads(nt);

    ln_stats(features, C, L, mean, rstd);
    if (vpath) {
        ln_apply(features, C, L, mean, rstd, g, b, Xn);
        if ((st = sgemm('N', 'N', D, L, C, nt->wv, C, Xn, L, 0.0f, Vt, L, err)) != SF_OK)
            goto done;
    }
    memcpy(S, nt->templates, sizeof(float) * (size_t)N * D);
    for (int it = 0; it < nt->T; it++) {
        float *att = it == nt->T - 1 ? attention : NULL;
        ln_rows(S, N, D, nt->ln_t_w, nt->ln_t_b, tmp);
        /* Q = LN(S) Wqk (N x C): the logits are Q Xn. */
        if ((st = sgemm('N', 'N', N, C, D, tmp, D, nt->wqk, C, 0.0f, Q, C, err)) != SF_OK)
            goto done;
        if (vpath) {
            if ((st = sgemm('N', 'N', N, L, C, Q, C, Xn, L, 0.0f, A, L, err)) != SF_OK)
                goto done;
            softmax_columns(A, N, L, NULL, att, rowsum, m, acc);
            /* S += (A V) / column sums */
            if ((st = sgemm('N', 'T', N, D, L, A, L, Vt, L, 0.0f, U, D, err)) != SF_OK)
                goto done;
            for (int n = 0; n < N; n++) {
                float inv = (float)(1.0 / rowsum[n]);
                float *s = S + (size_t)n * D;
                const float *u = U + (size_t)n * D;
                for (int d = 0; d < D; d++)
                    s[d] += u[d] * inv;
            }
        } else {
            for (int n = 0; n < N; n++) {
                float *q = Q + (size_t)n * C;
                double sg = 0, sb = 0;
                for (int c = 0; c < C; c++) {
                    sb += (double)q[c] * b[c];
                    q[c] *= g[c];
                    sg += q[c];
                }
                qg[n] = (float)sg;
                qb[n] = (float)sb;
            }
            if ((st = sgemm('N', 'N', N, L, C, Q, C, features, L, 0.0f, A, L, err)) != SF_OK)
                goto done;
            lnfold fold = { mean, rstd, qg, qb };
            softmax_columns(A, N, L, &fold, att, rowsum, m, acc);
            /* Z^T = X A^T (C x N; this way round threads better). */
            if ((st = sgemm('N', 'T', C, N, L, features, L, A, L, 0.0f, Z, N, err)) != SF_OK)
                goto done;
            /* Z = (A Xn^T) / column sums; S += Z W_v^T */
            for (int n = 0; n < N; n++) {
                qg[n] = (float)(1.0 / rowsum[n]);
                qb[n] = (float)m[n];
            }
            for (int c = 0; c < C; c++) {
                float *z = Z + (size_t)c * N;
                for (int n = 0; n < N; n++)
                    z[n] = g[c] * (z[n] - qb[n]) * qg[n] + b[c];
            }
            if ((st = sgemm('T', 'T', N, D, C, Z, N, nt->wv, C, 1.0f, S, D, err)) != SF_OK)
                goto done;
        }
        /* S += MLP(LN(S)) */
        ln_rows(S, N, D, nt->ln_m_w, nt->ln_m_b, tmp);
        if ((st = sgemm('N', 'T', N, H2, D, tmp, D, nt->mlp0_w, D, 0.0f, hid, H2, err)) != SF_OK)
            goto done;
        for (int n = 0; n < N; n++)
            for (int j = 0; j < H2; j++) {
                float v = hid[(size_t)n * H2 + j] + nt->mlp0_b[j];
                hid[(size_t)n * H2 + j] = v > 0 ? v : 0;
            }
        for (int n = 0; n < N; n++)
            memcpy(U + (size_t)n * D, nt->mlp2_b, sizeof(float) * (size_t)D);
        if ((st = sgemm('N', 'T', N, D, H2, hid, H2, nt->mlp2_w, H2, 1.0f, U, D, err)) != SF_OK)
            goto done;
        for (size_t i = 0; i < (size_t)N * D; i++)
            S[i] += U[i];
    }
    memcpy(superfeatures, S, sizeof(float) * (size_t)N * D);
    if (attention)
        scale_rows(attention, N, L, rowsum, attention);
done:
    restore_threads(prev);
    return st;
}
