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

/* ---- bf16 products ---- */

/* n floats to bf16 as to_bf16 rounds them, 16 at a time.  Only the bf16
 * path calls this, and oneDNN enables it only on CPUs with AVX512-BF16
 * (which have AVX512F and BW). */
__attribute__((target("avx512f,avx512bw"))) static void row_to_bf16(const float *src, size_t n,
                                                                   uint16_t *dst)
{
    const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff);
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i quiet = _mm512_set1_epi32(0x40);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_loadu_si512(src + i);
        __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, abs_mask), inf);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(half, _mm512_and_si512(
                                                                 _mm512_srli_epi32(u, 16), one)));
        r = _mm512_srli_epi32(r, 16);
        r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), quiet);
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < n; i++)
        dst[i] = to_bf16(src[i]);
}

/* rows x cols of op(src) into dst (contiguous, bf16); src has ld floats a
 * row, and holds op(src) transposed when trans. */
static void pack_bf16(const float *src, int ld, int trans, int rows, int cols, uint16_t *dst)
{
    if (!trans) {
        for (int i = 0; i < rows; i++)
            row_to_bf16(src + (size_t)i * ld, (size_t)cols, dst + (size_t)i * cols);
        return;
    }
    /* Tiles, so that neither side strides through memory a whole row at
     * a time. */
    for (int i0 = 0; i0 < rows; i0 += 32)
        for (int j0 = 0; j0 < cols; j0 += 32)
            for (int j = j0; j < cols && j < j0 + 32; j++)
                for (int i = i0; i < rows && i < i0 + 32; i++)
                    dst[(size_t)i * cols + j] = to_bf16(src[(size_t)j * ld + i]);
}

static uint16_t *packed(const float *src, int ld, int trans, int rows, int cols)
{
    uint16_t *p = alloc_aligned(sizeof(uint16_t) * (size_t)rows * cols);
    if (p)
        pack_bf16(src, ld, trans, rows, cols, p);
    return p;
}

static sf_status lit_load_bf16(onednn_net *nt, sf_error *err)
{
    const int C = nt->C, D = nt->D, H2 = D / 2;
    nt->wqk16 = packed(nt->wqk, C, 0, D, C);      /* Q = LN(S) Wqk */
    nt->wv16 = packed(nt->wv, C, 0, D, C);        /* Vt = W_v Xn */
    nt->wvt16 = packed(nt->wv, C, 1, C, D);       /* S += Z W_v^T */
    nt->mlp0t16 = packed(nt->mlp0_w, D, 1, D, H2);
    nt->mlp2t16 = packed(nt->mlp2_w, H2, 1, H2, D);
    if (!nt->wqk16 || !nt->wv16 || !nt->wvt16 || !nt->mlp0t16 || !nt->mlp2t16)
        return sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
    return SF_OK;
}

static void mm_destroy(mmprim *p)
{
    dnnl_memory_destroy(p->a);
    dnnl_memory_destroy(p->b);
    dnnl_memory_destroy(p->c);
    dnnl_memory_destroy(p->scratch);
    dnnl_primitive_destroy(p->p);
    memset(p, 0, sizeof *p);
}

void lit_free(onednn_net *nt)
{
    for (int i = 0; i < nt->n_mm; i++)
        mm_destroy(&nt->mm[i]);
    nt->n_mm = 0;
    free(nt->wqk16);
    free(nt->wv16);
    free(nt->wvt16);
    free(nt->mlp0t16);
    free(nt->mlp2t16);
    free(nt->pack);
    free(nt->pack_scratch);
}

/* The matmul primitive for m x n x k (cached; the cache starts over when
 * full: a few image sizes each need a handful). */
static sf_status mm_get(onednn_net *nt, int m, int n, int k, int sum, int at, int bt,
                        mmprim **out, sf_error *err)
{
    for (int i = 0; i < nt->n_mm; i++) {
        mmprim *p = &nt->mm[i];
        if (p->m == m && p->n == n && p->k == k && p->sum == sum && p->at == at && p->bt == bt) {
            *out = p;
            return SF_OK;
        }
    }
    if (nt->n_mm == MAX_MM) {
        for (int i = 0; i < nt->n_mm; i++)
            mm_destroy(&nt->mm[i]);
        nt->n_mm = 0;
    }
    mmprim *p = &nt->mm[nt->n_mm];
    memset(p, 0, sizeof *p);
    sf_status st = SF_OK;
    dnnl_memory_desc_t amd, bmd, cmd;
    dnnl_dims_t ad = { m, k }, bd = { k, n }, cd = { m, n };
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    TRY_DNNL(dnnl_memory_desc_init_by_tag(&amd, 2, ad, dnnl_bf16, at ? dnnl_ba : dnnl_ab),
             "memory descriptor");
    TRY_DNNL(dnnl_memory_desc_init_by_tag(&bmd, 2, bd, dnnl_bf16, bt ? dnnl_ba : dnnl_ab),
             "memory descriptor");
    TRY_DNNL(dnnl_memory_desc_init_by_tag(&cmd, 2, cd, dnnl_f32, dnnl_ab), "memory descriptor");
    TRY_DNNL(dnnl_matmul_desc_init(&md, &amd, &bmd, NULL, &cmd), "matmul descriptor");
    TRY_DNNL(dnnl_primitive_attr_create(&attr), "primitive attributes");
    TRY_DNNL(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user),
             "scratchpad mode");
    if (sum) {
        TRY_DNNL(dnnl_post_ops_create(&po), "post-ops");
        TRY_DNNL(dnnl_post_ops_append_sum(po, 1.0f), "sum post-op");
        TRY_DNNL(dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
    }
    TRY_DNNL(dnnl_primitive_desc_create(&pd, &md, attr, nt->eng, NULL), "matmul");
    const dnnl_memory_desc_t *spd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if ((st = ensure(&nt->scratch, &nt->scratch_size, dnnl_memory_desc_get_size(spd), err)) != SF_OK)
        goto done;
    TRY_DNNL(dnnl_primitive_create(&p->p, pd), "matmul");
    TRY_DNNL(dnnl_memory_create(&p->a, &amd, nt->eng, DNNL_MEMORY_NONE), "memory");
    TRY_DNNL(dnnl_memory_create(&p->b, &bmd, nt->eng, DNNL_MEMORY_NONE), "memory");
    TRY_DNNL(dnnl_memory_create(&p->c, &cmd, nt->eng, DNNL_MEMORY_NONE), "memory");
    TRY_DNNL(dnnl_memory_create(&p->scratch, spd, nt->eng, DNNL_MEMORY_NONE), "memory");
    p->m = m;
    p->n = n;
    p->k = k;
    p->sum = sum;
    p->at = at;
    p->bt = bt;
    nt->n_mm++;
    *out = p;
done:
    if (st != SF_OK)
        mm_destroy(p);
    dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* C (m x n, contiguous) = op(A) op(B), or += with beta 1 (sgemm's
 * conventions), in bf16 with f32 sums.  a16/b16: the operands already
 * packed (m x k, k x n), or NULL to convert a/b here, as they are stored:
 * a transposed operand is described to oneDNN as such (tag ba) rather
 * than transposed here. */
static sf_status gemm16(onednn_net *nt, char ta, char tb, int m, int n, int k, const float *a,
                        const uint16_t *a16, int lda, const float *b, const uint16_t *b16,
                        int ldb, float beta, float *c, sf_error *err)
{
    sf_status st = SF_OK;
    const int at = !a16 && ta == 'T', bt = !b16 && tb == 'T';
    size_t na = a16 ? 0 : round_up(sizeof(uint16_t) * (size_t)m * k);
    size_t nb = b16 ? 0 : sizeof(uint16_t) * (size_t)k * n;
    uint16_t *buf;
    if (na + nb) {
        if ((st = ensure((void **)&nt->pack_scratch, &nt->pack_scratch_size, na + nb, err)) != SF_OK)
            return st;
        buf = nt->pack_scratch;
        if (!a16) {
            pack_bf16(a, lda, 0, at ? k : m, at ? m : k, buf);
            a16 = buf;
        }
        if (!b16) {
            uint16_t *bb = (uint16_t *)((char *)buf + na);
            pack_bf16(b, ldb, 0, bt ? n : k, bt ? k : n, bb);
            b16 = bb;
        }
    }
    mmprim *p;
    if ((st = mm_get(nt, m, n, k, beta != 0.0f, at, bt, &p, err)) != SF_OK)
        return st;
    TRY_DNNL(dnnl_memory_set_data_handle(p->a, (void *)a16), "memory");
    TRY_DNNL(dnnl_memory_set_data_handle(p->b, (void *)b16), "memory");
    TRY_DNNL(dnnl_memory_set_data_handle(p->c, c), "memory");
    TRY_DNNL(dnnl_memory_set_data_handle(p->scratch, nt->scratch), "memory");
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, p->a },
                                { DNNL_ARG_WEIGHTS, p->b },
                                { DNNL_ARG_DST, p->c },
                                { DNNL_ARG_SCRATCHPAD, p->scratch } };
    TRY_DNNL(dnnl_primitive_execute(p->p, nt->strm, 4, args), "matmul");
    TRY_DNNL(dnnl_stream_wait(nt->strm), "stream wait");
done:
    return st;
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
    return nt->bf16 ? lit_load_bf16(nt, err) : SF_OK;
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
/* LIT in bf16: the same steps as onednn_lit with the products in bf16
 * (f32 sums); LayerNorm, softmax, the normalisations, residuals and the
 * MLP's bias and ReLU stay f32.  norm_inputs is never folded into the
 * products here: folding subtracts mean_l qg_n from a product whose bf16
 * error scales with the uncentred X, so Xn is formed (C x L f32, then
 * bf16) and multiplied directly. */
static sf_status lit_bf16(onednn_net *nt, const float *features, int height, int width,
                          float *superfeatures, float *attention, sf_error *err)
{
    const int C = nt->C, D = nt->D, N = nt->N, H2 = D / 2;
    const int L = height * width;
    const int vpath = (size_t)L <= (size_t)nt->T * N;
    size_t need = (size_t)N * L + 2 * (size_t)L + (size_t)C * L + (vpath ? (size_t)D * L : 0);
    sf_status st = ensure((void **)&nt->arena, &nt->arena_size, sizeof(float) * need, err);
    if (st == SF_OK)
        st = ensure((void **)&nt->pack, &nt->pack_size,
                    sizeof(uint16_t) * ((size_t)C * L + (vpath ? (size_t)L * D : 0)), err);
    if (st != SF_OK)
        return st;
    float *A = nt->arena, *mean = A + (size_t)N * L, *rstd = mean + L;
    float *Xn = rstd + L, *Vt = Xn + (size_t)C * L;
    float *S = nt->lit_small, *tmp = S + (size_t)N * D, *U = tmp + (size_t)N * D;
    float *Q = U + (size_t)N * D, *Z = Q + (size_t)N * C, *hid = Z + (size_t)N * C;
    float *inv = hid + (size_t)N * H2;
    __m256 *acc = (__m256 *)((char *)nt->lit_small + lit_floats_bytes(N, C, D));
    double *rowsum = nt->rowsum, *m = rowsum + N;
    uint16_t *xn16 = nt->pack, *vtt16 = xn16 + (size_t)C * L;
    int prev = set_threads(nt);

    ln_stats(features, C, L, mean, rstd);
    ln_apply(features, C, L, mean, rstd, nt->ln_in_w, nt->ln_in_b, Xn);
    pack_bf16(Xn, L, 0, C, L, xn16);
    if (vpath) {
        /* Vt = W_v Xn (D x L), kept as Vt^T (L x D) for A V. */
        if ((st = gemm16(nt, 'N', 'N', D, L, C, NULL, nt->wv16, C, NULL, xn16, L, 0.0f, Vt,
                         err)) != SF_OK)
            goto done;
        pack_bf16(Vt, L, 1, L, D, vtt16);
    }
    memcpy(S, nt->templates, sizeof(float) * (size_t)N * D);
    for (int it = 0; it < nt->T; it++) {
        float *att = it == nt->T - 1 ? attention : NULL;
        ln_rows(S, N, D, nt->ln_t_w, nt->ln_t_b, tmp);
        if ((st = gemm16(nt, 'N', 'N', N, C, D, tmp, NULL, D, NULL, nt->wqk16, C, 0.0f, Q,
                         err)) != SF_OK ||
            (st = gemm16(nt, 'N', 'N', N, L, C, Q, NULL, C, NULL, xn16, L, 0.0f, A, err)) !=
                SF_OK)
            goto done;
        softmax_columns(A, N, L, NULL, att, rowsum, m, acc);
        for (int n = 0; n < N; n++)
            inv[n] = (float)(1.0 / rowsum[n]);
        if (vpath) {
            /* S += (A V) / column sums */
            if ((st = gemm16(nt, 'N', 'N', N, D, L, A, NULL, L, NULL, vtt16, D, 0.0f, U,
                             err)) != SF_OK)
                goto done;
            for (int n = 0; n < N; n++)
                for (int d = 0; d < D; d++)
                    S[(size_t)n * D + d] += U[(size_t)n * D + d] * inv[n];
        } else {
            /* Z^T = Xn A^T (C x N), over the column sums; S += Z W_v^T */
            if ((st = gemm16(nt, 'N', 'T', C, N, L, NULL, xn16, L, A, NULL, L, 0.0f, Z,
                             err)) != SF_OK)
                goto done;
            for (int c = 0; c < C; c++)
                for (int n = 0; n < N; n++)
                    Z[(size_t)c * N + n] *= inv[n];
            if ((st = gemm16(nt, 'T', 'N', N, D, C, Z, NULL, N, NULL, nt->wvt16, D, 1.0f, S,
                             err)) != SF_OK)
                goto done;
        }
        /* S += MLP(LN(S)) */
        ln_rows(S, N, D, nt->ln_m_w, nt->ln_m_b, tmp);
        if ((st = gemm16(nt, 'N', 'N', N, H2, D, tmp, NULL, D, NULL, nt->mlp0t16, H2, 0.0f, hid,
                         err)) != SF_OK)
            goto done;
        for (int n = 0; n < N; n++)
            for (int j = 0; j < H2; j++) {
                float v = hid[(size_t)n * H2 + j] + nt->mlp0_b[j];
                hid[(size_t)n * H2 + j] = v > 0 ? v : 0;
            }
        for (int n = 0; n < N; n++)
            memcpy(U + (size_t)n * D, nt->mlp2_b, sizeof(float) * (size_t)D);
        if ((st = gemm16(nt, 'N', 'N', N, D, H2, hid, NULL, H2, NULL, nt->mlp2t16, D, 1.0f, U,
                         err)) != SF_OK)
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

sf_status onednn_lit(void *handle, const float *features, int height, int width,
                     float *superfeatures, float *attention, sf_error *err)
{
    onednn_net *nt = handle;
    if (nt->bf16)
        return lit_bf16(nt, features, height, width, superfeatures, attention, err);
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
