/* The reference backend: plain C that follows spec sections 3 and 4 line
 * by line.  It is the oracle the other backends are tested against, so it
 * favours being obviously right over being fast: BatchNorm is applied as
 * written (not folded), convolutions are direct loops, LIT sums run in
 * double. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_backend_impl.h"

#define BN_EPS 1e-5
#define LN_EPS 1e-5

typedef struct batchnorm {
    float *scale; /* gamma / sqrt(var + eps) */
    float *shift; /* beta - mean * scale */
} batchnorm;

typedef struct conv {
    const float *weight; /* out x in x k x k */
    int in, out, k, stride, pad;
    batchnorm bn;
} conv;

typedef struct block {
    conv c1, c2, c3;     /* c3 unused in basic blocks */
    int has_down;
    conv down;
} block;

typedef struct layernorm {
    const float *weight, *bias;
    int size;
} layernorm;

typedef struct reference_net {
    sf_net_params params;
    int bottleneck;
    conv stem;
    block *blocks;       /* layer1..layer3, in order */
    int layer_blocks[3];
    int n_blocks;
    int channels;        /* backbone output channels */
    /* LIT */
    const float *templates, *wq, *wk, *wv, *mlp0_w, *mlp0_b, *mlp2_w, *mlp2_b;
    layernorm norm_inputs, norm_templates, norm_mlp;
} reference_net;

static const sf_tensor *need(const sf_backend_net *net, const char *name, sf_error *err)
{
    const sf_tensor *t = net->tensor(net->model, name);
    if (!t)
        sf_error_set(err, SF_ERR_FORMAT, "model has no tensor %s", name);
    return t;
}

static sf_status load_bn(const sf_backend_net *net, const char *prefix, int channels,
                         batchnorm *bn, sf_error *err)
{
    char name[256];
    const sf_tensor *t[4];
    static const char *parts[4] = { "weight", "bias", "running_mean", "running_var" };
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, parts[i]);
        if (!(t[i] = need(net, name, err)))
            return SF_ERR_FORMAT;
    }
    bn->scale = malloc(sizeof(float) * (size_t)channels);
    bn->shift = malloc(sizeof(float) * (size_t)channels);
    if (!bn->scale || !bn->shift)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    for (int c = 0; c < channels; c++) {
        double s = t[0]->data[c] / sqrt((double)t[3]->data[c] + BN_EPS);
        bn->scale[c] = (float)s;
        bn->shift[c] = (float)(t[1]->data[c] - t[2]->data[c] * s);
    }
    return SF_OK;
}

static sf_status load_conv(const sf_backend_net *net, const char *wname, const char *bnname,
                           int in, int out, int k, int stride, conv *cv, sf_error *err)
{
    const sf_tensor *w = need(net, wname, err);
    if (!w)
        return SF_ERR_FORMAT;
    cv->weight = w->data;
    cv->in = in;
    cv->out = out;
    cv->k = k;
    cv->stride = stride;
    cv->pad = k / 2;
    return load_bn(net, bnname, out, &cv->bn, err);
}

static void free_bn(batchnorm *bn)
{
    free(bn->scale);
    free(bn->shift);
}

static void reference_free(void *handle)
{
    reference_net *rn = handle;
    if (!rn)
        return;
    free_bn(&rn->stem.bn);
    for (int i = 0; i < rn->n_blocks; i++) {
        free_bn(&rn->blocks[i].c1.bn);
        free_bn(&rn->blocks[i].c2.bn);
        free_bn(&rn->blocks[i].c3.bn);
        free_bn(&rn->blocks[i].down.bn);
    }
    free(rn->blocks);
    free(rn);
}

static sf_status load_ln(const sf_backend_net *net, const char *prefix, int size, layernorm *ln,
                         sf_error *err)
{
    char name[128];
    const sf_tensor *w, *b;
    snprintf(name, sizeof name, "lit.%s.weight", prefix);
    if (!(w = need(net, name, err)))
        return SF_ERR_FORMAT;
    snprintf(name, sizeof name, "lit.%s.bias", prefix);
    if (!(b = need(net, name, err)))
        return SF_ERR_FORMAT;
    ln->weight = w->data;
    ln->bias = b->data;
    ln->size = size;
    return SF_OK;
}

static sf_status reference_create(const sf_backend_net *net, void **handle, sf_error *err)
{
    sf_backbone_layout layout;
    sf_status st = sf_backbone_layout_get(net->params, &layout, err);
    if (st != SF_OK)
        return st;
    reference_net *rn = calloc(1, sizeof *rn);
    if (!rn)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    rn->params = *net->params;
    rn->bottleneck = layout.bottleneck;
    rn->channels = layout.channels;
    rn->n_blocks = layout.blocks[0] + layout.blocks[1] + layout.blocks[2];
    rn->blocks = calloc((size_t)rn->n_blocks, sizeof *rn->blocks);
    if (!rn->blocks) {
        free(rn);
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }
    if ((st = load_conv(net, "features.0.weight", "features.1", 3, 64, 7, 2, &rn->stem, err)) != SF_OK)
        goto fail;
    int in = 64, b = 0;
    for (int layer = 0; layer < 3; layer++) {
        int width = 64 << layer, out = rn->bottleneck ? width * 4 : width;
        for (int i = 0; i < layout.blocks[layer]; i++, b++) {
            block *bl = &rn->blocks[b];
            int stride = (layer > 0 && i == 0) ? 2 : 1;
            char w[128], bn[128];
#define PART(cv, name, bnname, cin, cout, k, s)                                         \
    snprintf(w, sizeof w, "features.%d.%d.%s.weight", layer + 4, i, name);             \
    snprintf(bn, sizeof bn, "features.%d.%d.%s", layer + 4, i, bnname);                 \
    if ((st = load_conv(net, w, bn, cin, cout, k, s, cv, err)) != SF_OK)                \
        goto fail;
            if (rn->bottleneck) {
                /* v1.5: the stride sits on the 3x3 convolution. */
                PART(&bl->c1, "conv1", "bn1", in, width, 1, 1);
                PART(&bl->c2, "conv2", "bn2", width, width, 3, stride);
                PART(&bl->c3, "conv3", "bn3", width, out, 1, 1);
            } else {
                PART(&bl->c1, "conv1", "bn1", in, width, 3, stride);
                PART(&bl->c2, "conv2", "bn2", width, width, 3, 1);
            }
            if (stride != 1 || in != out) {
                bl->has_down = 1;
                PART(&bl->down, "downsample.0", "downsample.1", in, out, 1, stride);
            }
#undef PART
            in = out;
        }
        rn->layer_blocks[layer] = layout.blocks[layer];
    }
    const sf_tensor *t;
    int D = net->params->lit_dim;
#define LIT(field, name)                                 \
    if (!(t = need(net, name, err))) {                   \
        st = SF_ERR_FORMAT;                              \
        goto fail;                                       \
    }                                                    \
    rn->field = t->data;
    LIT(templates, "lit.templates_init");
    LIT(wq, "lit.project_q.weight");
    LIT(wk, "lit.project_k.weight");
    LIT(wv, "lit.project_v.weight");
    LIT(mlp0_w, "lit.mlp.0.weight");
    LIT(mlp0_b, "lit.mlp.0.bias");
    LIT(mlp2_w, "lit.mlp.2.weight");
    LIT(mlp2_b, "lit.mlp.2.bias");
#undef LIT
    if ((st = load_ln(net, "norm_inputs", rn->channels, &rn->norm_inputs, err)) != SF_OK ||
        (st = load_ln(net, "norm_templates", D, &rn->norm_templates, err)) != SF_OK ||
        (st = load_ln(net, "norm_mlp", D, &rn->norm_mlp, err)) != SF_OK)
        goto fail;
    *handle = rn;
    return SF_OK;
fail:
    reference_free(rn);
    return st;
}

/* ---- backbone ---- */

static int conv_out(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

/* out = BN(conv(in)), then ReLU when relu is set. */
static void conv_forward(const conv *cv, const float *in, int h, int w, float *out, int relu)
{
    int oh = conv_out(h, cv->k, cv->stride, cv->pad), ow = conv_out(w, cv->k, cv->stride, cv->pad);
    size_t oplane = (size_t)oh * (size_t)ow, iplane = (size_t)h * (size_t)w;
    for (int o = 0; o < cv->out; o++) {
        float *dst = out + (size_t)o * oplane;
        memset(dst, 0, sizeof(float) * oplane);
        for (int c = 0; c < cv->in; c++) {
            const float *src = in + (size_t)c * iplane;
            for (int ky = 0; ky < cv->k; ky++) {
                for (int kx = 0; kx < cv->k; kx++) {
                    float wt = cv->weight[(((size_t)o * cv->in + c) * cv->k + ky) * cv->k + kx];
                    /* Output columns whose input column x*s - pad + kx is inside the image. */
                    int x0 = 0, x1 = ow;
                    while (x0 < ow && x0 * cv->stride - cv->pad + kx < 0)
                        x0++;
                    while (x1 > x0 && (x1 - 1) * cv->stride - cv->pad + kx >= w)
                        x1--;
                    for (int y = 0; y < oh; y++) {
                        int iy = y * cv->stride - cv->pad + ky;
                        if (iy < 0 || iy >= h)
                            continue;
                        const float *row = src + (size_t)iy * (size_t)w - cv->pad + kx;
                        float *orow = dst + (size_t)y * (size_t)ow;
                        if (cv->stride == 1)
                            for (int x = x0; x < x1; x++)
                                orow[x] += wt * row[x];
                        else
                            for (int x = x0; x < x1; x++)
                                orow[x] += wt * row[x * cv->stride];
                    }
                }
            }
        }
        float s = cv->bn.scale[o], b = cv->bn.shift[o];
        for (size_t i = 0; i < oplane; i++) {
            float v = dst[i] * s + b;
            dst[i] = relu && v < 0 ? 0 : v;
        }
    }
}

/* 3x3, stride 2, padding 1 with -inf. */
static void maxpool(const float *in, int c, int h, int w, float *out)
{
    int oh = conv_out(h, 3, 2, 1), ow = conv_out(w, 3, 2, 1);
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                float m = -INFINITY;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int iy = 2 * y - 1 + ky, ix = 2 * x - 1 + kx;
                        if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
                            float v = in[((size_t)ch * h + iy) * w + ix];
                            if (v > m)
                                m = v;
                        }
                    }
                out[((size_t)ch * oh + y) * ow + x] = m;
            }
}

/* One residual block: relu(branch(x) + shortcut(x)).  Returns the output
 * size through *h, *w. */
static sf_status block_forward(const reference_net *rn, const block *bl, const float *in,
                               int *h, int *w, float *out, sf_error *err)
{
    int stride = rn->bottleneck ? bl->c2.stride : bl->c1.stride;
    int oh = conv_out(*h, 3, stride, 1), ow = conv_out(*w, 3, stride, 1);
    int width = bl->c1.out, cout = rn->bottleneck ? bl->c3.out : bl->c2.out;
    size_t big = (size_t)width * (size_t)(*h) * (size_t)(*w);
    float *t1 = malloc(sizeof(float) * big), *t2 = malloc(sizeof(float) * big);
    float *shortcut = NULL;
    if (bl->has_down)
        shortcut = malloc(sizeof(float) * (size_t)cout * (size_t)oh * (size_t)ow);
    if (!t1 || !t2 || (bl->has_down && !shortcut)) {
        free(t1); free(t2); free(shortcut);
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory in the backbone");
    }
    if (rn->bottleneck) {
        conv_forward(&bl->c1, in, *h, *w, t1, 1);
        conv_forward(&bl->c2, t1, *h, *w, t2, 1);
        conv_forward(&bl->c3, t2, oh, ow, out, 0);
    } else {
        conv_forward(&bl->c1, in, *h, *w, t1, 1);
        conv_forward(&bl->c2, t1, oh, ow, out, 0);
    }
    const float *sc = in;
    if (bl->has_down) {
        conv_forward(&bl->down, in, *h, *w, shortcut, 0);
        sc = shortcut;
    }
    size_t n = (size_t)cout * (size_t)oh * (size_t)ow;
    for (size_t i = 0; i < n; i++) {
        float v = out[i] + sc[i];
        out[i] = v > 0 ? v : 0;
    }
    free(t1); free(t2); free(shortcut);
    *h = oh;
    *w = ow;
    return SF_OK;
}

static sf_status reference_backbone(void *handle, const float *image, int height, int width,
                                    int stage, float *out, sf_error *err)
{
    const reference_net *rn = handle;
    int h = conv_out(height, 7, 2, 3), w = conv_out(width, 7, 2, 3);
    /* Two ping-pong buffers as large as the largest stage output (with a
     * very thin image a later stage can be the largest). */
    size_t cap = 0;
    for (int s = SF_STAGE_CONV1; s <= SF_STAGE_LAYER3; s++) {
        int sc, sh, sw;
        sf_status sst = sf_backbone_output_size(&rn->params, height, width, s, &sc, &sh, &sw, err);
        if (sst != SF_OK)
            return sst;
        size_t n = (size_t)sc * (size_t)sh * (size_t)sw;
        if (n > cap)
            cap = n;
    }
    float *a = malloc(sizeof(float) * cap), *b = malloc(sizeof(float) * cap);
    sf_status st = SF_OK;
    if (!a || !b) {
        st = sf_error_set(err, SF_ERR_NOMEM, "out of memory in the backbone");
        goto done;
    }
    conv_forward(&rn->stem, image, height, width, a, 1);
    int c = 64;
    if (stage == SF_STAGE_CONV1) {
        memcpy(out, a, sizeof(float) * (size_t)c * h * w);
        goto done;
    }
    maxpool(a, c, h, w, b);
    h = conv_out(h, 3, 2, 1);
    w = conv_out(w, 3, 2, 1);
    float *cur = b, *next = a;
    if (stage == SF_STAGE_POOL) {
        memcpy(out, cur, sizeof(float) * (size_t)c * h * w);
        goto done;
    }
    int bi = 0;
    for (int layer = 0; layer < 3; layer++) {
        for (int i = 0; i < rn->layer_blocks[layer]; i++, bi++) {
            const block *bl = &rn->blocks[bi];
            if ((st = block_forward(rn, bl, cur, &h, &w, next, err)) != SF_OK)
                goto done;
            c = rn->bottleneck ? bl->c3.out : bl->c2.out;
            float *t = cur;
            cur = next;
            next = t;
        }
        if (stage == SF_STAGE_LAYER1 + layer) {
            memcpy(out, cur, sizeof(float) * (size_t)c * h * w);
            goto done;
        }
    }
done:
    free(a);
    free(b);
    return st;
}

/* ---- LIT (spec section 4) ---- */

static void layernorm_rows(const layernorm *ln, const float *in, int rows, float *out)
{
    for (int r = 0; r < rows; r++) {
        const float *x = in + (size_t)r * ln->size;
        double mu = 0, var = 0;
        for (int i = 0; i < ln->size; i++)
            mu += x[i];
        mu /= ln->size;
        for (int i = 0; i < ln->size; i++)
            var += (x[i] - mu) * (x[i] - mu);
        var /= ln->size; /* biased, as torch.nn.LayerNorm */
        double inv = 1.0 / sqrt(var + LN_EPS);
        for (int i = 0; i < ln->size; i++)
            out[(size_t)r * ln->size + i] = (float)((x[i] - mu) * inv * ln->weight[i] + ln->bias[i]);
    }
}

/* sum x[i] * y[i] in double.  Four partial sums keep the adder busy; the
 * order of additions differs from a single chain by far less than the
 * tolerances the reference is held to. */
static double dot(const float *x, const float *y, int k)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= k; i += 4) {
        s0 += (double)x[i] * y[i];
        s1 += (double)x[i + 1] * y[i + 1];
        s2 += (double)x[i + 2] * y[i + 2];
        s3 += (double)x[i + 3] * y[i + 3];
    }
    for (; i < k; i++)
        s0 += (double)x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

/* out (rows x n) = in (rows x k) W^T (W is n x k) [+ bias] */
static void linear(const float *in, int rows, int k, const float *W, const float *bias, int n,
                   float *out)
{
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++)
            out[(size_t)r * n + j] =
                (float)((bias ? bias[j] : 0.0) + dot(in + (size_t)r * k, W + (size_t)j * k, k));
}

static sf_status reference_lit(void *handle, const float *features, int height, int width,
                               float *superfeatures, float *attention, sf_error *err)
{
    const reference_net *rn = handle;
    const int C = rn->channels, D = rn->params.lit_dim, N = rn->params.lit_N;
    const int L = height * width, H2 = D / 2;
    float *X = malloc(sizeof(float) * (size_t)L * C);
    float *K = malloc(sizeof(float) * (size_t)L * D), *V = malloc(sizeof(float) * (size_t)L * D);
    float *S = malloc(sizeof(float) * (size_t)N * D), *P = malloc(sizeof(float) * (size_t)N * D);
    float *Q = malloc(sizeof(float) * (size_t)N * D), *A = malloc(sizeof(float) * (size_t)L * N);
    float *hid = malloc(sizeof(float) * (size_t)N * H2), *tmp = malloc(sizeof(float) * (size_t)N * D);
    double *logits = malloc(sizeof(double) * (size_t)N), *acc = malloc(sizeof(double) * (size_t)D);
    sf_status st = SF_OK;
    if (!X || !K || !V || !S || !P || !Q || !A || !hid || !tmp || !logits || !acc) {
        st = sf_error_set(err, SF_ERR_NOMEM, "out of memory in LIT");
        goto done;
    }
    /* X: one row per location (l = y*W + x). */
    for (int l = 0; l < L; l++)
        for (int c = 0; c < C; c++)
            X[(size_t)l * C + c] = features[(size_t)c * L + l];
    layernorm_rows(&rn->norm_inputs, X, L, X);
    linear(X, L, C, rn->wk, NULL, D, K);
    linear(X, L, C, rn->wv, NULL, D, V);
    memcpy(S, rn->templates, sizeof(float) * (size_t)N * D);
    const double qscale = 1.0 / sqrt((double)D);
    for (int it = 0; it < rn->params.lit_T; it++) {
        memcpy(P, S, sizeof(float) * (size_t)N * D);
        layernorm_rows(&rn->norm_templates, S, N, tmp);
        linear(tmp, N, D, rn->wq, NULL, D, Q);
        for (size_t i = 0; i < (size_t)N * D; i++)
            Q[i] = (float)(Q[i] * qscale);
        /* Softmax over the templates at each location. */
        for (int l = 0; l < L; l++) {
            double mx = -INFINITY, sum = 0;
            for (int n = 0; n < N; n++) {
                double s = dot(K + (size_t)l * D, Q + (size_t)n * D, D);
                logits[n] = s;
                if (s > mx)
                    mx = s;
            }
            for (int n = 0; n < N; n++)
                sum += (logits[n] = exp(logits[n] - mx));
            for (int n = 0; n < N; n++)
                A[(size_t)l * N + n] = (float)(logits[n] / sum + 1e-8);
        }
        /* Then each template's attention sums to 1 over the locations. */
        for (int n = 0; n < N; n++) {
            double col = 0;
            for (int l = 0; l < L; l++)
                col += A[(size_t)l * N + n];
            for (int l = 0; l < L; l++)
                A[(size_t)l * N + n] = (float)(A[(size_t)l * N + n] / col);
        }
        /* S = P + A^T V, a row of S at a time so that V is read in order. */
        for (int n = 0; n < N; n++) {
            for (int d = 0; d < D; d++)
                acc[d] = P[(size_t)n * D + d];
            for (int l = 0; l < L; l++) {
                double a = A[(size_t)l * N + n];
                const float *v = V + (size_t)l * D;
                for (int d = 0; d < D; d++)
                    acc[d] += a * v[d];
            }
            for (int d = 0; d < D; d++)
                S[(size_t)n * D + d] = (float)acc[d];
        }
        /* S = S + MLP(LN(S)) */
        layernorm_rows(&rn->norm_mlp, S, N, tmp);
        linear(tmp, N, D, rn->mlp0_w, rn->mlp0_b, H2, hid);
        for (size_t i = 0; i < (size_t)N * H2; i++)
            if (hid[i] < 0)
                hid[i] = 0;
        linear(hid, N, H2, rn->mlp2_w, rn->mlp2_b, D, tmp);
        for (size_t i = 0; i < (size_t)N * D; i++)
            S[i] += tmp[i];
    }
    memcpy(superfeatures, S, sizeof(float) * (size_t)N * D);
    if (attention)
        for (int n = 0; n < N; n++)
            for (int l = 0; l < L; l++)
                attention[(size_t)n * L + l] = A[(size_t)l * N + n];
done:
    free(X); free(K); free(V); free(S); free(P); free(Q); free(A); free(hid); free(tmp);
    free(logits);
    free(acc);
    return st;
}

static const sf_backend_iface reference_iface = {
    .abi_version = SF_BACKEND_ABI_VERSION,
    .struct_size = sizeof(sf_backend_iface),
    .name = "reference",
    .description = "plain C, the numerical oracle (slow)",
    .score = NULL,
    .net_create = reference_create,
    .net_free = reference_free,
    .backbone = reference_backbone,
    .lit = reference_lit,
};

__attribute__((visibility("default"))) const sf_backend_iface *sf_backend_init(void)
{
    return &reference_iface;
}
