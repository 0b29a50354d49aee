/* What oneDNN runs: the convolutions' weights, with BatchNorm folded in,
 * and the primitives.
 *
 * Primitives depend on the band geometry, so they are created on first use
 * and cached per input size (LRU of MAX_SHAPES sizes); weights are
 * reordered once per format a primitive insists on.  One user-mode
 * scratchpad serves every primitive. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onednn_internal.h"

#define BN_EPS 1e-5

/* ---- small oneDNN helpers ---- */

/* An activation: the network's activation type (f32 or bf16), nhwc. */
static sf_status md_nhwc(const onednn_net *nt, dnnl_memory_desc_t *md, int c, int h, int w,
                         sf_error *err)
{
    dnnl_dims_t d = { 1, c, h, w };
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(md, 4, d, nt->adt, dnnl_nhwc);
    return s == dnnl_success ? SF_OK : dnnl_fail(err, "memory descriptor", s);
}

/* One-off reorder between two buffers (weights at net_create). */
static sf_status reorder_once(onednn_net *nt, const dnnl_memory_desc_t *from, const void *src,
                              const dnnl_memory_desc_t *to, void *dst, sf_error *err)
{
    sf_status st = SF_OK;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    dnnl_memory_t ms = NULL, md = NULL;
    TRY_DNNL(dnnl_reorder_primitive_desc_create(&pd, from, nt->eng, to, nt->eng, NULL),
             "weights reorder descriptor");
    TRY_DNNL(dnnl_primitive_create(&p, pd), "weights reorder");
    TRY_DNNL(dnnl_memory_create(&ms, from, nt->eng, (void *)src), "memory");
    TRY_DNNL(dnnl_memory_create(&md, to, nt->eng, dst), "memory");
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, ms }, { DNNL_ARG_TO, md } };
    TRY_DNNL(dnnl_primitive_execute(p, nt->strm, 2, args), "weights reorder");
    TRY_DNNL(dnnl_stream_wait(nt->strm), "stream wait");
done:
    dnnl_memory_destroy(ms);
    dnnl_memory_destroy(md);
    dnnl_primitive_destroy(p);
    dnnl_primitive_desc_destroy(pd);
    return st;
}

/* Add a weights variant in format md, reordered from the first one. */
sf_status conv_add_variant(onednn_net *nt, conv *cv, const dnnl_memory_desc_t *md,
                           wvar **out, sf_error *err)
{
    wvar *v = calloc(1, sizeof *v);
    if (!v)
        return sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
    v->md = *md;
    v->data = alloc_aligned(dnnl_memory_desc_get_size(md));
    sf_status st = SF_OK;
    if (!v->data) {
        free(v);
        return sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
    }
    if (md->format_kind == dnnl_format_kind_wino) {
        /* oneDNN reorders into Winograd formats from plain ones only. */
        dnnl_memory_desc_t plain;
        dnnl_dims_t wd = { cv->cout, cv->cin, cv->k, cv->k };
        void *tmp = NULL;
        if (dnnl_memory_desc_init_by_tag(&plain, 4, wd, dnnl_f32, dnnl_oihw) != dnnl_success ||
            !(tmp = alloc_aligned(dnnl_memory_desc_get_size(&plain)))) {
            st = sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
            goto done;
        }
        if ((st = reorder_once(nt, &cv->vars->md, cv->vars->data, &plain, tmp, err)) == SF_OK)
            st = reorder_once(nt, &plain, tmp, md, v->data, err);
        free(tmp);
        if (st != SF_OK)
            goto done;
    } else if ((st = reorder_once(nt, &cv->vars->md, cv->vars->data, md, v->data, err)) != SF_OK) {
        goto done;
    }
    TRY_DNNL(dnnl_memory_create(&v->mem, md, nt->eng, v->data), "memory");
    /* Append: the first variant stays the source of later ones. */
    wvar **tail = &cv->vars;
    while (*tail)
        tail = &(*tail)->next;
    *tail = v;
    *out = v;
    return SF_OK;
done:
    free(v->data);
    free(v);
    return st;
}

wvar *conv_find_variant(const conv *cv, const dnnl_memory_desc_t *md)
{
    for (wvar *v = cv->vars; v; v = v->next)
        if (dnnl_memory_desc_equal(&v->md, md))
            return v;
    return NULL;
}

static sf_status conv_pd(onednn_net *nt, const prim_key *k, const dnnl_memory_desc_t *wmd,
                         dnnl_primitive_desc_t *pd, sf_error *err)
{
    sf_status st = SF_OK;
    dnnl_memory_desc_t src, dst, wei, bias;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_dims_t wd = { k->cout, k->cin, k->k, k->k }, bd = { k->cout };
    dnnl_dims_t strides = { k->s, k->s }, pl = { k->pt, k->pl }, pr = { k->pb, k->pr };
    dnnl_convolution_desc_t cd;
    *pd = NULL;
    if ((st = md_nhwc(nt, &src, k->cin, k->ih, k->iw, err)) != SF_OK ||
        (st = md_nhwc(nt, &dst, k->cout, k->oh, k->ow, err)) != SF_OK)
        return st;
    if (wmd)
        wei = *wmd;
    else
        TRY_DNNL(dnnl_memory_desc_init_by_tag(&wei, 4, wd, nt->bf16 ? dnnl_bf16 : dnnl_f32,
                                              dnnl_format_tag_any),
                 "memory descriptor");
    /* The bias stays f32 in bf16 too (oneDNN adds it to the f32 sums). */
    TRY_DNNL(dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x), "memory descriptor");
    TRY_DNNL(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                dnnl_convolution_direct, &src, &wei, &bias,
                                                &dst, strides, pl, pr),
             "convolution descriptor");
    TRY_DNNL(dnnl_primitive_attr_create(&attr), "primitive attributes");
    TRY_DNNL(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user),
             "scratchpad mode");
    TRY_DNNL(dnnl_post_ops_create(&po), "post-ops");
    if (k->post & POST_SUM)
        TRY_DNNL(dnnl_post_ops_append_sum(po, 1.0f), "sum post-op");
    if (k->post & POST_RELU)
        TRY_DNNL(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f),
                 "relu post-op");
    TRY_DNNL(dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
    TRY_DNNL(dnnl_primitive_desc_create(pd, &cd, attr, nt->eng, NULL), "convolution");
done:
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

static const char *impl_name(const_dnnl_primitive_desc_t pd)
{
    const char *s = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success || !s)
        return "";
    return s;
}

/* The primitive descriptor for a convolution: the format oneDNN prefers for
 * this geometry, unless the weights we already hold serve the same
 * implementation (then no second copy of the weights is made). */
static sf_status conv_pd_choose(onednn_net *nt, const prim_key *k, const conv *cv,
                                dnnl_primitive_desc_t *out, sf_error *err)
{
    dnnl_primitive_desc_t any = NULL, forced = NULL;
    sf_status st = conv_pd(nt, k, NULL, &any, err);
    if (st != SF_OK)
        return st;
    const dnnl_memory_desc_t *pref = dnnl_primitive_desc_query_md(any, dnnl_query_weights_md, 0);
    if (!cv->vars || conv_find_variant(cv, pref)) {
        *out = any;
        return SF_OK;
    }
    sf_error ignore;
    if (conv_pd(nt, k, &cv->vars->md, &forced, &ignore) == SF_OK &&
        strcmp(impl_name(forced), impl_name(any)) == 0) {
        dnnl_primitive_desc_destroy(any);
        *out = forced;
        return SF_OK;
    }
    dnnl_primitive_desc_destroy(forced);
    *out = any;
    return SF_OK;
}

/* A Winograd convolution for a 3x3, stride 1, ReLU-only key.  Its weights
 * are 4x the direct ones and their blocking depends on the problem size,
 * so a convolution keeps one Winograd copy: shapes that cannot use it run
 * direct.  Fails quietly (returns nonzero) where oneDNN has none. */
static int wino_pd(onednn_net *nt, const prim_key *k, const conv *cv, dnnl_primitive_desc_t *out)
{
    dnnl_memory_desc_t src, dst, wei, bias;
    dnnl_dims_t sd = { 1, k->cin, k->ih, k->iw }, dd = { 1, k->cout, k->oh, k->ow };
    dnnl_dims_t wd = { k->cout, k->cin, 3, 3 }, bd = { k->cout };
    dnnl_dims_t strides = { 1, 1 }, pl = { k->pt, k->pl }, pr = { k->pb, k->pr };
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    int ok = 0;
    *out = NULL;
    if (dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_nChw16c) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_nChw16c) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x) != dnnl_success ||
        dnnl_primitive_attr_create(&attr) != dnnl_success ||
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success ||
        dnnl_post_ops_create(&po) != dnnl_success ||
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f) != dnnl_success ||
        dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success)
        goto done;
    const wvar *v = cv->vars;
    while (v && v->md.format_kind != dnnl_format_kind_wino)
        v = v->next;
    if (v)
        wei = v->md;
    else if (dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, dnnl_format_tag_any) !=
             dnnl_success)
        goto done;
    dnnl_convolution_desc_t cd;
    ok = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_winograd,
                                            &src, &wei, &bias, &dst, strides, pl,
                                            pr) == dnnl_success &&
         dnnl_primitive_desc_create(out, &cd, attr, nt->eng, NULL) == dnnl_success;
done:
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return ok ? 0 : -1;
}

static void prim_destroy(prim *p)
{
    dnnl_memory_destroy(p->src);
    dnnl_memory_destroy(p->dst);
    dnnl_memory_destroy(p->scratch);
    dnnl_memory_destroy(p->bsrc);
    dnnl_memory_destroy(p->bdst);
    dnnl_primitive_destroy(p->p);
    dnnl_primitive_destroy(p->rin);
    dnnl_primitive_destroy(p->rout);
}

void shape_clear(shape_cache *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        prim_destroy(&sc->prims[i]);
    free(sc->prims);
    memset(sc, 0, sizeof *sc);
}

/* The cache for an h x w input, evicting the least recently used size. */
shape_cache *shape_get(onednn_net *nt, int h, int w)
{
    shape_cache *victim = &nt->shapes[0];
    for (int i = 0; i < MAX_SHAPES; i++) {
        shape_cache *sc = &nt->shapes[i];
        if (sc->h == h && sc->w == w) {
            sc->used = ++nt->tick;
            return sc;
        }
        if (sc->used < victim->used)
            victim = sc;
    }
    shape_clear(victim);
    victim->h = h;
    victim->w = w;
    victim->used = ++nt->tick;
    return victim;
}

/* A reorder primitive (no scratchpad needed for these layouts). */
static sf_status reorder_prim(onednn_net *nt, const dnnl_memory_desc_t *from,
                              const dnnl_memory_desc_t *to, dnnl_primitive_t *out, sf_error *err)
{
    sf_status st = SF_OK;
    dnnl_primitive_desc_t pd = NULL;
    TRY_DNNL(dnnl_reorder_primitive_desc_create(&pd, from, nt->eng, to, nt->eng, NULL),
             "reorder descriptor");
    TRY_DNNL(dnnl_primitive_create(out, pd), "reorder");
done:
    dnnl_primitive_desc_destroy(pd);
    return st;
}

/* Find or create the primitive for key (cv: the convolution, for OP_CONV). */
sf_status prim_get(onednn_net *nt, shape_cache *sc, const prim_key *key, const conv *cv,
                   prim **out, sf_error *err)
{
    for (size_t i = 0; i < sc->n; i++)
        if (memcmp(&sc->prims[i].key, key, sizeof *key) == 0) {
            *out = &sc->prims[i];
            return SF_OK;
        }
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 64;
        prim *p = realloc(sc->prims, cap * sizeof *p);
        if (!p)
            return sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
        sc->prims = p;
        sc->cap = cap;
    }
    prim *p = &sc->prims[sc->n];
    memset(p, 0, sizeof *p);
    p->key = *key;
    sf_status st = SF_OK;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_memory_desc_t src, dst;
    if (key->op == OP_CONV) {
        /* oneDNN has no bf16 Winograd: bf16 runs direct (twice the f32 rate). */
        if (!nt->bf16 && key->k == 3 && key->s == 1 && key->post == POST_RELU && key->oh >= 4 &&
            wino_pd(nt, key, cv, &pd) == 0)
            p->wino = 1;
        else if ((st = conv_pd_choose(nt, key, cv, &pd, err)) != SF_OK)
            goto done;
        p->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    } else if (key->op == OP_POOL) {
        dnnl_pooling_desc_t d;
        dnnl_dims_t strides = { key->s, key->s }, kernel = { key->k, key->k };
        dnnl_dims_t pl = { key->pt, key->pl }, pr = { key->pb, key->pr };
        if ((st = md_nhwc(nt, &src, key->cin, key->ih, key->iw, err)) != SF_OK ||
            (st = md_nhwc(nt, &dst, key->cout, key->oh, key->ow, err)) != SF_OK)
            goto done;
        TRY_DNNL(dnnl_pooling_forward_desc_init(&d, dnnl_forward_inference, dnnl_pooling_max,
                                                &src, &dst, strides, kernel, pl, pr),
                 "pooling descriptor");
        TRY_DNNL(dnnl_primitive_attr_create(&attr), "primitive attributes");
        TRY_DNNL(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user),
                 "scratchpad mode");
        TRY_DNNL(dnnl_primitive_desc_create(&pd, &d, attr, nt->eng, NULL), "pooling");
    } else {
        /* nhwc rows -> the same rows of a C x oh x iw planar tensor. */
        dnnl_dims_t dims = { 1, key->cin, key->ih, key->iw };
        dnnl_dims_t strides = { (dnnl_dim_t)key->cin * key->oh * key->iw,
                                (dnnl_dim_t)key->oh * key->iw, key->iw, 1 };
        if ((st = md_nhwc(nt, &src, key->cin, key->ih, key->iw, err)) != SF_OK)
            goto done;
        TRY_DNNL(dnnl_memory_desc_init_by_strides(&dst, 4, dims, dnnl_f32, strides),
                 "memory descriptor");
        TRY_DNNL(dnnl_primitive_attr_create(&attr), "primitive attributes");
        TRY_DNNL(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user),
                 "scratchpad mode");
        TRY_DNNL(dnnl_reorder_primitive_desc_create(&pd, &src, nt->eng, &dst, nt->eng, attr),
                 "reorder descriptor");
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *spd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if ((st = ensure(&nt->scratch, &nt->scratch_size, dnnl_memory_desc_get_size(spd), err)) != SF_OK)
        goto done;
    if (p->wino) {
        TRY_DNNL(dnnl_memory_create(&p->bsrc, smd, nt->eng, DNNL_MEMORY_NONE), "memory");
        TRY_DNNL(dnnl_memory_create(&p->bdst, dmd, nt->eng, DNNL_MEMORY_NONE), "memory");
        p->bsrc_size = round_up(dnnl_memory_desc_get_size(smd));
        if ((st = ensure((void **)&nt->wino_buf, &nt->wino_size,
                         p->bsrc_size + dnnl_memory_desc_get_size(dmd), err)) != SF_OK ||
            (st = md_nhwc(nt, &src, key->cin, key->ih, key->iw, err)) != SF_OK ||
            (st = md_nhwc(nt, &dst, key->cout, key->oh, key->ow, err)) != SF_OK ||
            (st = reorder_prim(nt, &src, smd, &p->rin, err)) != SF_OK ||
            (st = reorder_prim(nt, dmd, &dst, &p->rout, err)) != SF_OK)
            goto done;
        smd = &src;
        dmd = &dst;
    }
    TRY_DNNL(dnnl_primitive_create(&p->p, pd), key->op == OP_CONV ? "convolution"
                                                : key->op == OP_POOL ? "pooling" : "reorder");
    TRY_DNNL(dnnl_memory_create(&p->src, smd, nt->eng, DNNL_MEMORY_NONE), "memory");
    TRY_DNNL(dnnl_memory_create(&p->dst, dmd, nt->eng, DNNL_MEMORY_NONE), "memory");
    TRY_DNNL(dnnl_memory_create(&p->scratch, spd, nt->eng, DNNL_MEMORY_NONE), "memory");
    sc->n++;
    *out = p;
done:
    if (st != SF_OK)
        prim_destroy(p);
    dnnl_primitive_attr_destroy(attr);
    dnnl_primitive_desc_destroy(pd);
    return st;
}


sf_status prim_run(onednn_net *nt, prim *p, const void *src, void *dst, wvar *w,
                   const conv *cv, sf_error *err)
{
    sf_status st = SF_OK;
    dnnl_exec_arg_t args[5];
    int n = 0;
    TRY_DNNL(dnnl_memory_set_data_handle(p->src, (void *)src), "memory");
    TRY_DNNL(dnnl_memory_set_data_handle(p->dst, dst), "memory");
    TRY_DNNL(dnnl_memory_set_data_handle(p->scratch, nt->scratch), "memory");
    if (p->wino) {
        TRY_DNNL(dnnl_memory_set_data_handle(p->bsrc, nt->wino_buf), "memory");
        TRY_DNNL(dnnl_memory_set_data_handle(p->bdst, (char *)nt->wino_buf + p->bsrc_size),
                 "memory");
        dnnl_exec_arg_t rin[2] = { { DNNL_ARG_FROM, p->src }, { DNNL_ARG_TO, p->bsrc } };
        dnnl_exec_arg_t conv_args[5] = { { DNNL_ARG_SRC, p->bsrc },
                                         { DNNL_ARG_WEIGHTS, w->mem },
                                         { DNNL_ARG_BIAS, cv->bias_mem },
                                         { DNNL_ARG_DST, p->bdst },
                                         { DNNL_ARG_SCRATCHPAD, p->scratch } };
        dnnl_exec_arg_t rout[2] = { { DNNL_ARG_FROM, p->bdst }, { DNNL_ARG_TO, p->dst } };
        TRY_DNNL(dnnl_primitive_execute(p->rin, nt->strm, 2, rin), "reorder");
        TRY_DNNL(dnnl_primitive_execute(p->p, nt->strm, 5, conv_args), "convolution");
        TRY_DNNL(dnnl_primitive_execute(p->rout, nt->strm, 2, rout), "reorder");
        goto done;
    }
    if (p->key.op == OP_REORDER) {
        args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_FROM, p->src };
        args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_TO, p->dst };
    } else {
        args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, p->src };
        args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_DST, p->dst };
    }
    args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, p->scratch };
    if (w) {
        args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, w->mem };
        args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_BIAS, cv->bias_mem };
    }
    TRY_DNNL(dnnl_primitive_execute(p->p, nt->strm, n, args),
             p->key.op == OP_CONV ? "convolution" : p->key.op == OP_POOL ? "pooling" : "reorder");
done:
    return st;
}

/* ---- convolution weights ---- */

/* Fold BatchNorm bnname into the convolution wname and reorder the weights
 * into the format oneDNN prefers for a typical band. */
sf_status conv_load(onednn_net *nt, const sf_backend_net *net, const char *wname,
                    const char *bnname, int cin, int cout, int k, int stride, conv *cv,
                    sf_error *err)
{
    cv->cin = cin;
    cv->cout = cout;
    cv->k = k;
    cv->stride = stride;
    cv->pad = k / 2;
    size_t per_out = (size_t)cin * k * k;
    const sf_tensor *w = need(net, wname, (size_t)cout * per_out, err), *t[4];
    if (!w)
        return SF_ERR_FORMAT;
    static const char *parts[4] = { "weight", "bias", "running_mean", "running_var" };
    for (int i = 0; i < 4; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.%s", bnname, parts[i]);
        if (!(t[i] = need(net, name, (size_t)cout, err)))
            return SF_ERR_FORMAT;
    }
    sf_status st = SF_OK;
    dnnl_primitive_desc_t pd = NULL;
    float *plain = malloc(sizeof(float) * (size_t)cout * per_out);
    cv->bias = malloc(sizeof(float) * (size_t)cout);
    if (!plain || !cv->bias) {
        st = sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
        goto done;
    }
    for (int o = 0; o < cout; o++) {
        double scale = t[0]->data[o] / sqrt((double)t[3]->data[o] + BN_EPS);
        cv->bias[o] = (float)(t[1]->data[o] - t[2]->data[o] * scale);
        for (size_t i = 0; i < per_out; i++)
            plain[(size_t)o * per_out + i] = (float)(w->data[(size_t)o * per_out + i] * scale);
    }
    dnnl_memory_desc_t bmd, pmd;
    dnnl_dims_t bd = { cout }, wd = { cout, cin, k, k };
    TRY_DNNL(dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x), "memory descriptor");
    TRY_DNNL(dnnl_memory_create(&cv->bias_mem, &bmd, nt->eng, cv->bias), "memory");
    TRY_DNNL(dnnl_memory_desc_init_by_tag(&pmd, 4, wd, dnnl_f32, dnnl_oihw), "memory descriptor");
    /* A representative band: 8 output rows, 64 (stem: 320) columns. */
    prim_key key;
    memset(&key, 0, sizeof key);
    key.op = OP_CONV;
    key.post = POST_RELU;
    key.cin = cin;
    key.cout = cout;
    key.k = k;
    key.s = stride;
    key.ow = cin == 3 ? 320 : 64;
    key.oh = 8;
    key.iw = key.ow * stride;
    key.ih = (key.oh - 1) * stride + k;
    key.pl = key.pr = k / 2;
    if ((st = conv_pd(nt, &key, NULL, &pd, err)) != SF_OK)
        goto done;
    wvar *v = calloc(1, sizeof *v);
    if (!v) {
        st = sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
        goto done;
    }
    cv->vars = v;
    v->md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (!(v->data = alloc_aligned(dnnl_memory_desc_get_size(&v->md)))) {
        st = sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
        goto done;
    }
    if ((st = reorder_once(nt, &pmd, plain, &v->md, v->data, err)) != SF_OK)
        goto done;
    TRY_DNNL(dnnl_memory_create(&v->mem, &v->md, nt->eng, v->data), "memory");
done:
    dnnl_primitive_desc_destroy(pd);
    free(plain);
    return st;
}

void conv_free(conv *cv)
{
    wvar *v = cv->vars;
    while (v) {
        wvar *next = v->next;
        dnnl_memory_destroy(v->mem);
        free(v->data);
        free(v);
        v = next;
    }
    dnnl_memory_destroy(cv->bias_mem);
    free(cv->bias);
}
