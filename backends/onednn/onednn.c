/* The oneDNN backend (oneDNN 2.x C API, CPU engine).
 *
 * Backbone.  BatchNorm is folded into the convolutions at net_create; ReLU
 * and the residual addition are post-ops (sum into the shortcut, then
 * relu).  Activations are channels-last (nhwc) from the first layer to the
 * last, so that a band of rows is a contiguous slice, and the network runs
 * as a pull pipeline of bands: each stage (the stem, then every block)
 * computes a few output rows at a time, asking the stage before it for the
 * input rows those need.  No activation ever exists whole: each lives in a
 * window of rows (a "store", a ring buffer mapped twice so windows never
 * wrap), identity blocks work in place in their input's store, and
 * intermediates inside a block (and conv1's output) are band-sized.  At the
 * 2048 x 1280 level this keeps activations to ~35 MB where whole tensors
 * would need ~170 MB for layer1 alone.  Stride-1 3x3 convolutions use
 * oneDNN's Winograd kernels on nChw16c (the band is reordered in and out),
 * 2-3x faster than direct ones; the others are brgemm kernels on nhwc,
 * which run as fast as the jit ones on nChw16c here.
 *
 * Primitives depend on the band geometry, so they are created on first use
 * and cached per input size (LRU of MAX_SHAPES sizes); weights are
 * reordered once per format a primitive insists on.  One user-mode
 * scratchpad serves every primitive.
 *
 * LIT: matrix products through dnnl_sgemm, reassociated to do fewer FLOPs
 * without changing the mathematics: the logits are Xn (LN(S) W_q^T W_k)^T,
 * so K is never formed (W_q^T W_k is computed once), and for large maps
 * A^T V is (A^T Xn) W_v^T, cheaper than forming V when L > T*N; there
 * norm_inputs is also folded into the products so that Xn is never
 * written (see onednn_lit).  Softmax, LayerNorm and the normalisations are
 * AVX2 loops. */
#include "config.h"

#include <dnnl.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sf_backend_impl.h"

#define BN_EPS 1e-5
#define LN_EPS 1e-5f
#define MAX_SHAPES 16
/* Rows per band: about this many bytes of a block's output (tests build
 * with a tiny value to exercise many bands on small images). */
#ifndef BAND_BYTES
#define BAND_BYTES (2u << 20)
#endif
#define ALIGN 64

/* oneDNN here runs on OpenMP (libgomp, a dependency of libdnnl), so the
 * thread count is OpenMP's.  Weak: a oneDNN built on another runtime simply
 * leaves them NULL. */
extern void omp_set_num_threads(int n) __attribute__((weak));
extern int omp_get_max_threads(void) __attribute__((weak));
extern int omp_get_num_procs(void) __attribute__((weak));

/* ---- network description ---- */

/* Reordered weights in one memory format; a convolution keeps one per
 * format its primitives asked for (the first is made at net_create). */
typedef struct wvar {
    dnnl_memory_desc_t md;
    void *data;
    dnnl_memory_t mem;
    struct wvar *next;
} wvar;

typedef struct conv {
    int cin, cout, k, stride, pad;
    float *bias;              /* folded BatchNorm shift */
    dnnl_memory_t bias_mem;
    wvar *vars;
} conv;

typedef struct block {
    conv c1, c2, c3, down;    /* c3 unused in basic blocks */
    int has_down, stride;
    int cin, width, cout;
} block;

enum { OP_CONV = 1, OP_POOL, OP_REORDER };
enum { POST_RELU = 1, POST_SUM = 2 };

/* Everything a primitive depends on (weights excluded: several
 * convolutions of the same geometry share one primitive). */
typedef struct prim_key {
    int op, post, cin, cout, k, s, ih, iw, oh, ow, pt, pb, pl, pr;
} prim_key;

typedef struct prim {
    prim_key key;
    dnnl_primitive_t p;
    dnnl_memory_t src, dst, scratch;
    dnnl_memory_desc_t wmd;   /* the weights format a convolution expects */
    /* Winograd convolutions run on nChw16c: the band is reordered in and
     * out around them (cheap next to the 2-3x they save). */
    int wino;
    dnnl_primitive_t rin, rout;
    dnnl_memory_t bsrc, bdst;
    size_t bsrc_size;
} prim;

/* Primitives for one input size. */
typedef struct shape_cache {
    int h, w;                 /* 0: empty slot */
    uint64_t used;
    prim *prims;
    size_t n, cap;
} shape_cache;

/* Memory behind a streamed activation (see store). */
typedef struct region {
    char *base;
    size_t size;
    int mirrored;
} region;

typedef struct onednn_net {
    sf_net_params params;
    sf_backbone_layout layout;
    int threads;
    dnnl_engine_t eng;
    dnnl_stream_t strm;

    conv stem;
    block *blocks;
    int n_blocks;

    /* LIT */
    int C, D, N, T;
    const float *templates, *wv, *mlp0_w, *mlp0_b, *mlp2_w, *mlp2_b;
    const float *ln_in_w, *ln_in_b, *ln_t_w, *ln_t_b, *ln_m_w, *ln_m_b;
    float *wqk;               /* D x C: W_q^T W_k / sqrt(D) */
    float *lit_small;         /* LIT's N-row matrices */
    double *rowsum;           /* and sums: 2 x N */

    shape_cache shapes[MAX_SHAPES];
    uint64_t tick;

    /* Reused between calls, grown when a larger input needs more: the
     * stores' memory, the stages' private band buffers, LIT's work space
     * and the scratchpad. */
    region regions[4];
    float *arena;
    size_t arena_size;
    float *band;
    size_t band_size;
    void *scratch;
    size_t scratch_size;
    float *wino_buf;          /* a band in nChw16c, in and out */
    size_t wino_size;
} onednn_net;

static sf_status dnnl_fail(sf_error *err, const char *what, dnnl_status_t s)
{
    return sf_error_set(err, SF_ERR_BACKEND, "oneDNN: %s failed (status %d)", what, (int)s);
}

#define TRY_DNNL(call, what)                        \
    do {                                            \
        dnnl_status_t s_ = (call);                  \
        if (s_ != dnnl_success) {                   \
            st = dnnl_fail(err, what, s_);          \
            goto done;                              \
        }                                           \
    } while (0)

static void *alloc_aligned(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, ALIGN, bytes ? bytes : ALIGN) != 0)
        return NULL;
    return p;
}

static size_t round_up(size_t n)
{
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

/* Make *buf hold at least bytes (contents are not kept). */
static sf_status ensure(void **buf, size_t *size, size_t bytes, sf_error *err)
{
    if (*size >= bytes)
        return SF_OK;
    free(*buf);
    *buf = alloc_aligned(bytes);
    *size = *buf ? bytes : 0;
    if (!*buf)
        return sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory (%zu MB)",
                            bytes >> 20);
    return SF_OK;
}

/* ---- threads ---- */

static int set_threads(const onednn_net *nt)
{
    if (!omp_get_max_threads || !omp_set_num_threads)
        return 0;
    int prev = omp_get_max_threads();
    int want = nt->threads > 0 ? nt->threads : (omp_get_num_procs ? omp_get_num_procs() : prev);
    if (want != prev)
        omp_set_num_threads(want);
    return prev;
}

static void restore_threads(int prev)
{
    if (prev > 0 && omp_set_num_threads && omp_get_max_threads() != prev)
        omp_set_num_threads(prev);
}

/* ---- small oneDNN helpers ---- */

static sf_status md_nhwc(dnnl_memory_desc_t *md, int c, int h, int w, sf_error *err)
{
    dnnl_dims_t d = { 1, c, h, w };
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, dnnl_nhwc);
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
static sf_status conv_add_variant(onednn_net *nt, conv *cv, const dnnl_memory_desc_t *md,
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

static wvar *conv_find_variant(const conv *cv, const dnnl_memory_desc_t *md)
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
    if ((st = md_nhwc(&src, k->cin, k->ih, k->iw, err)) != SF_OK ||
        (st = md_nhwc(&dst, k->cout, k->oh, k->ow, err)) != SF_OK)
        return st;
    if (wmd)
        wei = *wmd;
    else
        TRY_DNNL(dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, dnnl_format_tag_any),
                 "memory descriptor");
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

static void shape_clear(shape_cache *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        prim_destroy(&sc->prims[i]);
    free(sc->prims);
    memset(sc, 0, sizeof *sc);
}

/* The cache for an h x w input, evicting the least recently used size. */
static shape_cache *shape_get(onednn_net *nt, int h, int w)
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
static sf_status prim_get(onednn_net *nt, shape_cache *sc, const prim_key *key, const conv *cv,
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
        if (key->k == 3 && key->s == 1 && key->post == POST_RELU && key->oh >= 4 &&
            wino_pd(nt, key, cv, &pd) == 0)
            p->wino = 1;
        else if ((st = conv_pd_choose(nt, key, cv, &pd, err)) != SF_OK)
            goto done;
        p->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    } else if (key->op == OP_POOL) {
        dnnl_pooling_desc_t d;
        dnnl_dims_t strides = { key->s, key->s }, kernel = { key->k, key->k };
        dnnl_dims_t pl = { key->pt, key->pl }, pr = { key->pb, key->pr };
        if ((st = md_nhwc(&src, key->cin, key->ih, key->iw, err)) != SF_OK ||
            (st = md_nhwc(&dst, key->cout, key->oh, key->ow, err)) != SF_OK)
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
        if ((st = md_nhwc(&src, key->cin, key->ih, key->iw, err)) != SF_OK)
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
            (st = md_nhwc(&src, key->cin, key->ih, key->iw, err)) != SF_OK ||
            (st = md_nhwc(&dst, key->cout, key->oh, key->ow, err)) != SF_OK ||
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


static sf_status prim_run(onednn_net *nt, prim *p, const void *src, void *dst, wvar *w,
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

/* ---- bands and the streaming pipeline ---- */

/* Input rows [lo, hi) and the zero padding above and below that give output
 * rows [y0, y1) of a k x k, stride s, padding p window over h input rows. */
static void band_rows(int y0, int y1, int k, int s, int p, int h, int *lo, int *hi, int *pt,
                      int *pb)
{
    int a = y0 * s - p, b = (y1 - 1) * s - p + k;
    *pt = a < 0 ? -a : 0;
    *pb = b > h ? b - h : 0;
    *lo = a < 0 ? 0 : a;
    *hi = b > h ? h : b;
}

static int conv_out(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

static int imin(int a, int b)
{
    return a < b ? a : b;
}

static int imax(int a, int b)
{
    return a > b ? a : b;
}

/* Output rows of a convolution over ih rows of src (already the right
 * rows), with pt/pb padding rows. */
static sf_status conv_band(onednn_net *nt, shape_cache *sc, conv *cv, int post, const float *src,
                           int ih, int iw, int pt, int pb, float *dst, int oh, int ow,
                           sf_error *err)
{
    prim_key key;
    memset(&key, 0, sizeof key);
    key.op = OP_CONV;
    key.post = post;
    key.cin = cv->cin;
    key.cout = cv->cout;
    key.k = cv->k;
    key.s = cv->stride;
    key.ih = ih;
    key.iw = iw;
    key.oh = oh;
    key.ow = ow;
    key.pt = pt;
    key.pb = pb;
    key.pl = cv->pad;
    key.pr = cv->pad;
    prim *p;
    sf_status st = prim_get(nt, sc, &key, cv, &p, err);
    if (st != SF_OK)
        return st;
    wvar *w = conv_find_variant(cv, &p->wmd);
    if (!w && (st = conv_add_variant(nt, cv, &p->wmd, &w, err)) != SF_OK)
        return st;
    return prim_run(nt, p, src, dst, w, cv, err);
}

/* rows x w pixels of c channels (nhwc) into rows [r0, r0 + rows) of a
 * c x h x w planar tensor. */
static sf_status to_planar(onednn_net *nt, shape_cache *sc, const float *src, int c, int rows,
                           int w, float *dst, int h, int r0, sf_error *err)
{
    prim_key key;
    memset(&key, 0, sizeof key);
    key.op = OP_REORDER;
    key.cin = c;
    key.ih = rows;
    key.iw = w;
    key.oh = h;
    prim *p;
    sf_status st = prim_get(nt, sc, &key, NULL, &p, err);
    if (st != SF_OK)
        return st;
    return prim_run(nt, p, src, dst + (size_t)r0 * w, NULL, NULL, err);
}

static int band_height(int rows, int w, int c)
{
    size_t per_row = (size_t)w * (size_t)c * sizeof(float);
    size_t b = BAND_BYTES / (per_row ? per_row : 1);
    if (b < 1)
        b = 1;
    return b > (size_t)rows ? rows : (int)b;
}

/* Rows of a private intermediate computed in order, keeping the last few
 * for the next band's window (the halo of a 3x3 convolution). */
typedef struct ring {
    float *buf;      /* NULL while planning */
    size_t row;      /* floats per row */
    int lo, hi;      /* rows held */
} ring;

/* Keep rows [lo, r->hi) at the front; returns the first row to compute.
 * The caller computes [that, hi) at ring_at(r, that) and sets r->hi = hi. */
static int ring_advance(ring *r, int lo)
{
    if (lo >= r->lo && lo < r->hi) {
        if (lo > r->lo && r->buf)
            memmove(r->buf, r->buf + (size_t)(lo - r->lo) * r->row,
                    sizeof(float) * (size_t)(r->hi - lo) * r->row);
        r->lo = lo;
    } else {
        r->lo = r->hi = lo;
    }
    return r->hi;
}

static float *ring_at(const ring *r, int row)
{
    return r->buf + (size_t)(row - r->lo) * r->row;
}

/* Memory behind a store, kept between calls.  Mirrored: the same pages
 * mapped twice back to back, so that any size bytes starting anywhere in
 * the first copy are contiguous -- a ring buffer whose windows never wrap. */
static size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

static void region_free(region *r)
{
    if (r->base) {
        if (r->mirrored)
            munmap(r->base, 2 * r->size);
        else
            free(r->base);
    }
    memset(r, 0, sizeof *r);
}

static int region_map_mirrored(region *r, size_t size)
{
#ifdef ONEDNN_NO_MIRROR /* tests: exercise the plain fallback */
    return 0;
#endif
    int fd = memfd_create("sf-onednn", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    char *base = MAP_FAILED;
    if (ftruncate(fd, (off_t)size) == 0)
        base = mmap(NULL, 2 * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base != MAP_FAILED &&
        (mmap(base, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED ||
         mmap(base + size, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) ==
             MAP_FAILED)) {
        munmap(base, 2 * size);
        base = MAP_FAILED;
    }
    close(fd);
    if (base == MAP_FAILED)
        return 0;
    r->base = base;
    r->size = size;
    r->mirrored = 1;
    return 1;
}

static sf_status region_ensure(region *r, size_t bytes, sf_error *err)
{
    if (r->size >= bytes)
        return SF_OK;
    region_free(r);
    size_t pg = page_size(), size = (bytes + pg - 1) / pg * pg;
    if (region_map_mirrored(r, size))
        return SF_OK;
    /* No memfd: a plain buffer, compacted when the window reaches its end. */
    if (!(r->base = alloc_aligned(size)))
        return sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory (%zu MB)",
                            size >> 20);
    r->size = size;
    return SF_OK;
}

/* image rows [lo, hi) (planar, 3 x h x w) as nhwc. */
static void image_rows_nhwc(const float *image, int h, int w, int lo, int hi, float *dst)
{
    size_t plane = (size_t)h * w;
    for (int y = lo; y < hi; y++) {
        const float *r0 = image + (size_t)y * w, *r1 = r0 + plane, *r2 = r1 + plane;
        float *d = dst + (size_t)(y - lo) * w * 3;
        for (int x = 0; x < w; x++) {
            d[3 * x] = r0[x];
            d[3 * x + 1] = r1[x];
            d[3 * x + 2] = r2[x];
        }
    }
}

/* One activation tensor streamed through a window of rows. */
typedef struct store {
    region *rg;
    size_t row;      /* bytes per row */
    int lo, hi;      /* plain regions: row lo sits at the start; rows < hi written */
    int peak;        /* planning: the most rows needed at once */
    int sink;        /* the pipeline's result is read from here */
} store;

static float *store_row(const store *s, int r)
{
    if (s->rg->mirrored)
        return (float *)(s->rg->base + (size_t)r * s->row % s->rg->size);
    return (float *)(s->rg->base + (size_t)(r - s->lo) * s->row);
}

/* A stage of the backbone: the stem (conv1 + max-pool) or one block. */
typedef struct pstage {
    block *bl;       /* NULL: the stem */
    store *in, *out; /* out == in: an identity block, computed in place */
    int h, w;        /* input size */
    int oh, ow, oc;
    int b;           /* output rows per band */
    int done;        /* output rows [0, done) are final */
    ring t1;         /* stem: conv1's rows; blocks: the 3x3 convolution's input */
} pstage;

typedef struct pipeline {
    onednn_net *nt;
    shape_cache *sc;
    const float *image;
    int ih, iw;      /* image */
    int h1, w1;      /* conv1 output */
    pstage *st;
    int n;
    store stores[4];
    int nstores;
    int sink_done;   /* rows of the result already delivered */
    float *t2, *staging;
    int dry;         /* planning: indices only, nothing computed */
} pipeline;

/* The lowest input row stage sg will still read. */
static int stage_need(const pstage *sg)
{
    const block *bl = sg->bl;
    int s = bl->stride, from_c1;
    if (bl->c3.cout)  /* bottleneck: c1 is 1x1 over the input rows */
        from_c1 = sg->t1.hi;
    else
        from_c1 = imax(0, sg->t1.hi * s - 1);
    return imin(from_c1, sg->done * s);
}

/* Rows of s that readers still need: from the lowest one up. */
static int store_keep(const pipeline *pl, const store *s)
{
    int keep = s->hi;
    for (int j = 1; j < pl->n; j++)
        if (pl->st[j].in == s)
            keep = imin(keep, stage_need(&pl->st[j]));
    if (s->sink)
        keep = imin(keep, pl->sink_done);
    return keep;
}

/* Make room to write rows up to y1 into s. */
static sf_status store_reserve(pipeline *pl, store *s, int y1, sf_error *err)
{
    int keep = store_keep(pl, s);
    if (y1 - keep > s->peak)
        s->peak = y1 - keep;
    if (pl->dry)
        return SF_OK;
    size_t cap = s->rg->size / s->row;
    if ((size_t)(y1 - keep) > cap)
        return sf_error_set(err, SF_ERR_BACKEND, "oneDNN backend: band plan exceeds its buffer");
    if (!s->rg->mirrored && (size_t)(y1 - s->lo) > cap) {
        if (s->hi > keep)
            memmove(s->rg->base, store_row(s, keep), (size_t)(s->hi - keep) * s->row);
        s->lo = keep;
    }
    return SF_OK;
}

static sf_status produce(pipeline *pl, int j, int rows, sf_error *err);

/* Pooled rows [y0, y1) of the stem. */
static sf_status stem_band(pipeline *pl, pstage *sg, int y0, int y1, sf_error *err)
{
    onednn_net *nt = pl->nt;
    int lo, hi, pt, pb;
    band_rows(y0, y1, 3, 2, 1, pl->h1, &lo, &hi, &pt, &pb);
    int first = ring_advance(&sg->t1, lo);
    sf_status st = store_reserve(pl, sg->out, y1, err);
    if (st != SF_OK || pl->dry)
        goto done;
    if (first < hi) {
        int ilo, ihi, ipt, ipb;
        band_rows(first, hi, 7, 2, 3, pl->ih, &ilo, &ihi, &ipt, &ipb);
        image_rows_nhwc(pl->image, pl->ih, pl->iw, ilo, ihi, pl->staging);
        if ((st = conv_band(nt, pl->sc, &nt->stem, POST_RELU, pl->staging, ihi - ilo, pl->iw, ipt,
                            ipb, ring_at(&sg->t1, first), hi - first, pl->w1, err)) != SF_OK)
            goto done;
    }
    prim_key key;
    memset(&key, 0, sizeof key);
    key.op = OP_POOL;
    key.cin = key.cout = 64;
    key.k = 3;
    key.s = 2;
    key.ih = hi - lo;
    key.iw = pl->w1;
    key.oh = y1 - y0;
    key.ow = sg->ow;
    key.pt = pt;
    key.pb = pb;
    key.pl = key.pr = 1;
    prim *p;
    if ((st = prim_get(nt, pl->sc, &key, NULL, &p, err)) == SF_OK)
        st = prim_run(nt, p, ring_at(&sg->t1, lo), store_row(sg->out, y0), NULL, NULL, err);
done:
    sg->t1.hi = hi;
    return st;
}

/* Output rows [y0, y1) of a residual block. */
static sf_status block_band(pipeline *pl, int j, int y0, int y1, sf_error *err)
{
    onednn_net *nt = pl->nt;
    pstage *sg = &pl->st[j];
    block *bl = sg->bl;
    const int bottleneck = bl->c3.cout != 0, s = bl->stride, rows = y1 - y0;
    int lo, hi, pt, pb, xlo = 0, xhi = 0, xpt = 0, xpb = 0, need;
    /* t1: the input rows of the 3x3 convolution that ends the branch
     * (bottleneck: c2 over c1's 1x1 output; basic: c2 over c1's 3x3). */
    if (bottleneck)
        band_rows(y0, y1, 3, s, 1, sg->h, &lo, &hi, &pt, &pb);
    else
        band_rows(y0, y1, 3, 1, 1, sg->oh, &lo, &hi, &pt, &pb);
    int first = ring_advance(&sg->t1, lo);
    if (bottleneck) {
        xlo = first;
        xhi = hi;
    } else if (first < hi) {
        band_rows(first, hi, 3, s, 1, sg->h, &xlo, &xhi, &xpt, &xpb);
    }
    need = imax(first < hi ? xhi : 0, (y1 - 1) * s + 1);
    sf_status st = produce(pl, j - 1, need, err);
    if (st == SF_OK && sg->out != sg->in)
        st = store_reserve(pl, sg->out, y1, err);
    if (st != SF_OK || pl->dry)
        goto done;
    if (first < hi) {
        const float *x = store_row(sg->in, xlo);
        if (bottleneck)
            st = conv_band(nt, pl->sc, &bl->c1, POST_RELU, x, xhi - xlo, sg->w, 0, 0,
                           ring_at(&sg->t1, first), hi - first, sg->w, err);
        else
            st = conv_band(nt, pl->sc, &bl->c1, POST_RELU, x, xhi - xlo, sg->w, xpt, xpb,
                           ring_at(&sg->t1, first), hi - first, sg->ow, err);
        if (st != SF_OK)
            goto done;
    }
    float *dst = store_row(sg->out, y0);
    if (bl->has_down &&
        (st = conv_band(nt, pl->sc, &bl->down, 0, store_row(sg->in, y0 * s), (rows - 1) * s + 1,
                        sg->w, 0, 0, dst, rows, sg->ow, err)) != SF_OK)
        goto done;
    /* The shortcut is in dst already (in place, or the downsample's). */
    if (bottleneck) {
        if ((st = conv_band(nt, pl->sc, &bl->c2, POST_RELU, ring_at(&sg->t1, lo), hi - lo, sg->w,
                            pt, pb, pl->t2, rows, sg->ow, err)) == SF_OK)
            st = conv_band(nt, pl->sc, &bl->c3, POST_SUM | POST_RELU, pl->t2, rows, sg->ow, 0, 0,
                           dst, rows, sg->ow, err);
    } else {
        st = conv_band(nt, pl->sc, &bl->c2, POST_SUM | POST_RELU, ring_at(&sg->t1, lo), hi - lo,
                       sg->ow, pt, pb, dst, rows, sg->ow, err);
    }
done:
    sg->t1.hi = hi;
    return st;
}

/* Make rows [0, rows) of stage j's output final. */
static sf_status produce(pipeline *pl, int j, int rows, sf_error *err)
{
    pstage *sg = &pl->st[j];
    if (rows > sg->oh)
        rows = sg->oh;
    while (sg->done < rows) {
        int y0 = sg->done, y1 = imin(sg->oh, y0 + sg->b);
        sf_status st = sg->bl ? block_band(pl, j, y0, y1, err) : stem_band(pl, sg, y0, y1, err);
        if (st != SF_OK)
            return st;
        if (sg->out->hi < y1)
            sg->out->hi = y1;
        sg->done = y1;
    }
    return SF_OK;
}

/* The stages up to the end of backbone stage `stage` (>= SF_STAGE_POOL),
 * their band sizes and the private buffers they need (bytes). */
static sf_status pipeline_init(pipeline *pl, onednn_net *nt, int height, int width, int stage,
                               size_t *band_bytes, sf_error *err)
{
    memset(pl, 0, sizeof *pl);
    pl->nt = nt;
    pl->ih = height;
    pl->iw = width;
    pl->h1 = conv_out(height, 7, 2, 3);
    pl->w1 = conv_out(width, 7, 2, 3);
    int nb = 0;
    for (int layer = 0; layer < 3 && stage >= SF_STAGE_LAYER1 + layer; layer++)
        nb += nt->layout.blocks[layer];
    pl->st = calloc((size_t)nb + 1, sizeof *pl->st);
    if (!pl->st)
        return sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
    pl->n = nb + 1;
    size_t priv = 0, t2 = 0;
    pstage *sg = &pl->st[0];
    sg->oh = conv_out(pl->h1, 3, 2, 1);
    sg->ow = conv_out(pl->w1, 3, 2, 1);
    sg->oc = 64;
    /* conv1's ring holds twice the pooled rows, at twice the width. */
    sg->b = band_height(sg->oh, 4 * sg->ow, 64);
    sg->t1.row = (size_t)pl->w1 * 64;
    priv += round_up(sizeof(float) * (size_t)imin(pl->h1, 2 * sg->b + 1) * sg->t1.row);
    size_t staging = sizeof(float) * (size_t)imin(height, 4 * sg->b + 7) * width * 3;
    pl->nstores = 1;
    sg->out = &pl->stores[0];
    sg->out->row = sizeof(float) * (size_t)sg->ow * 64;
    for (int j = 1; j < pl->n; j++) {
        pstage *prev = &pl->st[j - 1];
        sg = &pl->st[j];
        block *bl = &nt->blocks[j - 1];
        sg->bl = bl;
        sg->in = prev->out;
        sg->h = prev->oh;
        sg->w = prev->ow;
        sg->oh = conv_out(sg->h, 3, bl->stride, 1);
        sg->ow = conv_out(sg->w, 3, bl->stride, 1);
        sg->oc = bl->cout;
        sg->b = band_height(sg->oh, sg->ow, bl->cout);
        /* Winograd works on 4-row tiles. */
        if (bl->stride == 1 && sg->b > 4 && sg->b < sg->oh)
            sg->b &= ~3;
        if (bl->has_down) {
            sg->out = &pl->stores[pl->nstores++];
            sg->out->row = sizeof(float) * (size_t)sg->ow * bl->cout;
        } else {
            sg->out = sg->in;
        }
        int ring_rows;
        if (nt->layout.bottleneck) {
            ring_rows = imin(sg->h, (sg->b - 1) * bl->stride + 3);
            sg->t1.row = (size_t)sg->w * bl->width;
            size_t t = round_up(sizeof(float) * (size_t)sg->b * sg->ow * bl->width);
            if (t > t2)
                t2 = t;
        } else {
            ring_rows = imin(sg->oh, sg->b + 2);
            sg->t1.row = (size_t)sg->ow * bl->width;
        }
        priv += round_up(sizeof(float) * (size_t)ring_rows * sg->t1.row);
    }
    pl->st[pl->n - 1].out->sink = 1;
    *band_bytes = priv + t2 + round_up(staging);
    return SF_OK;
}

/* Back to the start, with the buffers carved from band (NULL: planning). */
static void pipeline_reset(pipeline *pl, char *band, int dry)
{
    pl->dry = dry;
    pl->sink_done = 0;
    for (int i = 0; i < pl->nstores; i++)
        pl->stores[i].lo = pl->stores[i].hi = 0;
    for (int j = 0; j < pl->n; j++) {
        pstage *sg = &pl->st[j];
        sg->done = 0;
        sg->t1.lo = sg->t1.hi = 0;
        sg->t1.buf = NULL;
        if (!band)
            continue;
        int rows;
        if (!sg->bl)
            rows = imin(pl->h1, 2 * sg->b + 1);
        else if (sg->bl->c3.cout)
            rows = imin(sg->h, (sg->b - 1) * sg->bl->stride + 3);
        else
            rows = imin(sg->oh, sg->b + 2);
        sg->t1.buf = (float *)band;
        band += round_up(sizeof(float) * (size_t)rows * sg->t1.row);
    }
    if (band) {
        pl->t2 = (float *)band;
        size_t t2 = 0;
        for (int j = 1; j < pl->n; j++)
            if (pl->st[j].bl->c3.cout) {
                size_t t = round_up(sizeof(float) * (size_t)pl->st[j].b * pl->st[j].ow *
                                    pl->st[j].bl->width);
                if (t > t2)
                    t2 = t;
            }
        pl->staging = (float *)(band + t2);
    }
}

/* Run the pipeline, delivering the last stage's rows to out (planar). */
static sf_status pipeline_run(pipeline *pl, float *out, sf_error *err)
{
    pstage *last = &pl->st[pl->n - 1];
    for (int r0 = 0; r0 < last->oh;) {
        int r1 = imin(last->oh, r0 + last->b);
        sf_status st = produce(pl, pl->n - 1, r1, err);
        if (st == SF_OK && !pl->dry)
            st = to_planar(pl->nt, pl->sc, store_row(last->out, r0), last->oc, r1 - r0, last->ow,
                           out, last->oh, r0, err);
        if (st != SF_OK)
            return st;
        pl->sink_done = r0 = r1;
    }
    return SF_OK;
}

/* ---- network creation ---- */

static const sf_tensor *need(const sf_backend_net *net, const char *name, size_t numel,
                             sf_error *err)
{
    const sf_tensor *t = net->tensor(net->model, name);
    if (!t) {
        sf_error_set(err, SF_ERR_FORMAT, "model has no tensor %s", name);
        return NULL;
    }
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    if (n != numel) {
        sf_error_set(err, SF_ERR_FORMAT, "tensor %s has %zu elements, expected %zu", name, n, numel);
        return NULL;
    }
    return t;
}

/* Fold BatchNorm bnname into the convolution wname and reorder the weights
 * into the format oneDNN prefers for a typical band. */
static sf_status conv_load(onednn_net *nt, const sf_backend_net *net, const char *wname,
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

static void conv_free(conv *cv)
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

static void onednn_free(void *handle)
{
    onednn_net *nt = handle;
    if (!nt)
        return;
    for (int i = 0; i < MAX_SHAPES; i++)
        shape_clear(&nt->shapes[i]);
    conv_free(&nt->stem);
    for (int i = 0; nt->blocks && i < nt->n_blocks; i++) {
        conv_free(&nt->blocks[i].c1);
        conv_free(&nt->blocks[i].c2);
        conv_free(&nt->blocks[i].c3);
        conv_free(&nt->blocks[i].down);
    }
    free(nt->blocks);
    free(nt->wqk);
    free(nt->lit_small);
    free(nt->rowsum);
    for (int i = 0; i < 4; i++)
        region_free(&nt->regions[i]);
    free(nt->arena);
    free(nt->band);
    free(nt->scratch);
    free(nt->wino_buf);
    if (nt->strm)
        dnnl_stream_destroy(nt->strm);
    if (nt->eng)
        dnnl_engine_destroy(nt->eng);
    free(nt);
}

/* Bytes of LIT's N-row float matrices (S, tmp, U: N x D; Q, Z: N x C;
 * hidden: N x D/2; qg, qb), vectors follow. */
static size_t lit_floats_bytes(int n, int c, int d)
{
    return round_up(sizeof(float) * (size_t)n * (3 * (size_t)d + 2 * (size_t)c + d / 2 + 2));
}

static sf_status lit_load(onednn_net *nt, const sf_backend_net *net, sf_error *err)
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

static sf_status onednn_create(const sf_backend_net *net, void **handle, sf_error *err)
{
    sf_backbone_layout layout;
    sf_status st = sf_backbone_layout_get(net->params, &layout, err);
    if (st != SF_OK)
        return st;
    if (net->params->lit_dim < 2 || net->params->lit_dim % 2 || net->params->lit_N < 1 ||
        net->params->lit_T < 1)
        return sf_error_set(err, SF_ERR_FORMAT, "bad LIT parameters (T %d, N %d, dim %d)",
                            net->params->lit_T, net->params->lit_N, net->params->lit_dim);
    onednn_net *nt = calloc(1, sizeof *nt);
    if (!nt)
        return sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
    nt->params = *net->params;
    nt->layout = layout;
    nt->threads = net->threads;
    nt->C = layout.channels;
    nt->D = net->params->lit_dim;
    nt->N = net->params->lit_N;
    nt->T = net->params->lit_T;
    int prev = set_threads(nt);
    TRY_DNNL(dnnl_engine_create(&nt->eng, dnnl_cpu, 0), "engine creation");
    TRY_DNNL(dnnl_stream_create(&nt->strm, nt->eng, dnnl_stream_default_flags), "stream creation");
    nt->n_blocks = layout.blocks[0] + layout.blocks[1] + layout.blocks[2];
    nt->blocks = calloc((size_t)nt->n_blocks, sizeof *nt->blocks);
    if (!nt->blocks) {
        st = sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
        goto done;
    }
    if ((st = conv_load(nt, net, "features.0.weight", "features.1", 3, 64, 7, 2, &nt->stem,
                        err)) != SF_OK)
        goto done;
    int in = 64, b = 0;
    for (int layer = 0; layer < 3; layer++) {
        int width = 64 << layer, out = layout.bottleneck ? width * 4 : width;
        for (int i = 0; i < layout.blocks[layer]; i++, b++) {
            block *bl = &nt->blocks[b];
            int stride = (layer > 0 && i == 0) ? 2 : 1;
            bl->stride = stride;
            bl->cin = in;
            bl->width = width;
            bl->cout = out;
            char w[128], bn[128];
#define PART(cv, name, bnname, cin, cout, k, s)                                          \
    snprintf(w, sizeof w, "features.%d.%d.%s.weight", layer + 4, i, name);              \
    snprintf(bn, sizeof bn, "features.%d.%d.%s", layer + 4, i, bnname);                  \
    if ((st = conv_load(nt, net, w, bn, cin, cout, k, s, cv, err)) != SF_OK)            \
        goto done;
            if (layout.bottleneck) {
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
    }
    st = lit_load(nt, net, err);
done:
    restore_threads(prev);
    if (st != SF_OK) {
        onednn_free(nt);
        return st;
    }
    *handle = nt;
    return SF_OK;
}

/* ---- backbone ---- */

/* conv1 alone, for the conv1 stage (tests): bands straight to out. */
static sf_status run_conv1(onednn_net *nt, shape_cache *sc, const float *image, int height,
                           int width, float *out, sf_error *err)
{
    int h1 = conv_out(height, 7, 2, 3), w1 = conv_out(width, 7, 2, 3);
    int b1 = band_height(h1, w1, 64);
    size_t outb = round_up(sizeof(float) * (size_t)b1 * w1 * 64);
    size_t stg = sizeof(float) * (size_t)imin(height, (b1 - 1) * 2 + 7) * width * 3;
    sf_status st = ensure((void **)&nt->band, &nt->band_size, outb + stg, err);
    float *band = nt->band, *staging = (float *)((char *)nt->band + outb);
    for (int r0 = 0; r0 < h1 && st == SF_OK; r0 += b1) {
        int r1 = imin(h1, r0 + b1), lo, hi, pt, pb;
        band_rows(r0, r1, 7, 2, 3, height, &lo, &hi, &pt, &pb);
        image_rows_nhwc(image, height, width, lo, hi, staging);
        st = conv_band(nt, sc, &nt->stem, POST_RELU, staging, hi - lo, width, pt, pb, band,
                       r1 - r0, w1, err);
        if (st == SF_OK)
            st = to_planar(nt, sc, band, 64, r1 - r0, w1, out, h1, r0, err);
    }
    return st;
}

static sf_status onednn_backbone(void *handle, const float *image, int height, int width,
                                 int stage, float *out, sf_error *err)
{
    onednn_net *nt = handle;
    int oc, oh, ow;
    sf_status st = sf_backbone_output_size(&nt->params, height, width, stage, &oc, &oh, &ow, err);
    if (st != SF_OK)
        return st;
    int prev = set_threads(nt);
    shape_cache *sc = shape_get(nt, height, width);
    pipeline pl;
    memset(&pl, 0, sizeof pl);
    if (stage == SF_STAGE_CONV1) {
        st = run_conv1(nt, sc, image, height, width, out, err);
        goto done;
    }
    /* Plan (indices only) to size the stores, then run. */
    size_t band = 0;
    if ((st = pipeline_init(&pl, nt, height, width, stage, &band, err)) != SF_OK)
        goto done;
    pl.sc = sc;
    pl.image = image;
    pipeline_reset(&pl, NULL, 1);
    if ((st = pipeline_run(&pl, out, err)) != SF_OK)
        goto done;
    if ((st = ensure((void **)&nt->band, &nt->band_size, band, err)) != SF_OK)
        goto done;
    for (int i = 0; i < pl.nstores; i++) {
        store *s = &pl.stores[i];
        s->rg = &nt->regions[i];
        if ((st = region_ensure(s->rg, (size_t)s->peak * s->row, err)) != SF_OK)
            goto done;
    }
    pipeline_reset(&pl, (char *)nt->band, 0);
    st = pipeline_run(&pl, out, err);
done:
    free(pl.st);
    if (st == SF_OK) {
        dnnl_status_t s = dnnl_stream_wait(nt->strm);
        if (s != dnnl_success)
            st = dnnl_fail(err, "stream wait", s);
    }
    restore_threads(prev);
    return st;
}

/* ---- LIT kernels (AVX2 + FMA; score() checks for them) ---- */

#define KERNEL __attribute__((target("avx2,fma")))

KERNEL static inline __m256 exp256(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    /* Taylor to r^6: |r| <= ln2/2 keeps the error near 1e-7. */
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

KERNEL static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Columns of 8 locations as one vector, the last one partial. */
KERNEL static inline __m256 load_part(const float *p, int n)
{
    if (n == 8)
        return _mm256_loadu_ps(p);
    float t[8] = { 0 };
    memcpy(t, p, sizeof(float) * (size_t)n);
    return _mm256_loadu_ps(t);
}

KERNEL static inline void store_part(float *p, __m256 v, int n)
{
    if (n == 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    float t[8];
    _mm256_storeu_ps(t, v);
    memcpy(p, t, sizeof(float) * (size_t)n);
}

/* Mean and 1/sqrt(var + eps) of each column of x (c x l, one column per
 * location), over its c rows: 8 columns at a time, so that each pass is a
 * sweep down the rows. */
KERNEL static void ln_stats(const float *x, int c, int l, float *mean, float *rstd)
{
    const __m256 inv_c = _mm256_set1_ps(1.0f / (float)c);
    for (int j = 0; j < l; j += 8) {
        int n = l - j < 8 ? l - j : 8;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        int i = 0;
        for (; i + 1 < c; i += 2) {
            s0 = _mm256_add_ps(s0, load_part(x + (size_t)i * l + j, n));
            s1 = _mm256_add_ps(s1, load_part(x + (size_t)(i + 1) * l + j, n));
        }
        if (i < c)
            s0 = _mm256_add_ps(s0, load_part(x + (size_t)i * l + j, n));
        __m256 mu = _mm256_mul_ps(_mm256_add_ps(s0, s1), inv_c);
        __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
        for (i = 0; i + 1 < c; i += 2) {
            __m256 d0 = _mm256_sub_ps(load_part(x + (size_t)i * l + j, n), mu);
            __m256 d1 = _mm256_sub_ps(load_part(x + (size_t)(i + 1) * l + j, n), mu);
            v0 = _mm256_fmadd_ps(d0, d0, v0);
            v1 = _mm256_fmadd_ps(d1, d1, v1);
        }
        if (i < c) {
            __m256 d0 = _mm256_sub_ps(load_part(x + (size_t)i * l + j, n), mu);
            v0 = _mm256_fmadd_ps(d0, d0, v0);
        }
        __m256 var = _mm256_mul_ps(_mm256_add_ps(v0, v1), inv_c);
        __m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f),
                                 _mm256_sqrt_ps(_mm256_add_ps(var, _mm256_set1_ps(LN_EPS))));
        store_part(mean + j, mu, n);
        store_part(rstd + j, r, n);
    }
}

/* y = LayerNorm over the rows of x (c x l) given ln_stats, g and b per row. */
KERNEL static void ln_apply(const float *x, int c, int l, const float *mean, const float *rstd,
                            const float *g, const float *b, float *y)
{
    for (int i = 0; i < c; i++) {
        const float *xr = x + (size_t)i * l;
        float *yr = y + (size_t)i * l;
        __m256 vg = _mm256_set1_ps(g[i]), vb = _mm256_set1_ps(b[i]);
        int j = 0;
        for (; j + 8 <= l; j += 8) {
            __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + j), _mm256_loadu_ps(mean + j)),
                                     _mm256_loadu_ps(rstd + j));
            _mm256_storeu_ps(yr + j, _mm256_fmadd_ps(v, vg, vb));
        }
        for (; j < l; j++)
            yr[j] = (xr[j] - mean[j]) * rstd[j] * g[i] + b[i];
    }
}

/* y = LayerNorm of each of the rows of x (rows x d). */
KERNEL static void ln_rows(const float *x, int rows, int d, const float *g, const float *b, float *y)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *yr = y + (size_t)r * d;
        __m256 s = _mm256_setzero_ps();
        int i = 0;
        for (; i + 8 <= d; i += 8)
            s = _mm256_add_ps(s, _mm256_loadu_ps(xr + i));
        float mu = hsum256(s);
        for (; i < d; i++)
            mu += xr[i];
        mu /= (float)d;
        __m256 vm = _mm256_set1_ps(mu), v = _mm256_setzero_ps();
        for (i = 0; i + 8 <= d; i += 8) {
            __m256 t = _mm256_sub_ps(_mm256_loadu_ps(xr + i), vm);
            v = _mm256_fmadd_ps(t, t, v);
        }
        float var = hsum256(v);
        for (; i < d; i++)
            var += (xr[i] - mu) * (xr[i] - mu);
        float rstd = 1.0f / sqrtf(var / (float)d + LN_EPS);
        __m256 vr = _mm256_set1_ps(rstd);
        for (i = 0; i + 8 <= d; i += 8) {
            __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), vm), vr);
            _mm256_storeu_ps(yr + i, _mm256_fmadd_ps(t, _mm256_loadu_ps(g + i), _mm256_loadu_ps(b + i)));
        }
        for (; i < d; i++)
            yr[i] = (xr[i] - mu) * rstd * g[i] + b[i];
    }
}

/* norm_inputs folded into the logits (see onednn_lit). */
typedef struct lnfold {
    const float *mean, *rstd;  /* per location */
    const float *qg, *qb;      /* per template */
} lnfold;

/* a (n x l): softmax down each column (over the n templates), + 1e-8;
 * rowsum[r] = the sum of row r (over locations).  att (optional) receives
 * the result too.  With fold, a holds G and the logits are
 * rstd_l (G[r][l] - mean_l qg_r) + qb_r; on return a holds the result times
 * rstd_l and m[r] = sum_l a[r][l] mean_l.  acc: 2n vectors of scratch. */
KERNEL static void softmax_columns(float *a, int n, int l, const lnfold *fold, float *att,
                                   double *rowsum, double *m, __m256 *acc)
{
    __m256 *acc_s = acc, *acc_m = acc + n;
    for (int r = 0; r < n; r++)
        rowsum[r] = m[r] = 0;
    /* 64 columns at a time: n x 64 floats stay in L2 across the passes. */
    for (int j0 = 0; j0 < l; j0 += 64) {
        int jn = l - j0 < 64 ? l - j0 : 64;
        for (int r = 0; r < n; r++)
            acc_s[r] = acc_m[r] = _mm256_setzero_ps();
        for (int j = j0; j < j0 + jn; j += 8) {
            int k = j0 + jn - j < 8 ? j0 + jn - j : 8;
            /* Lanes past the last column count for nothing. */
            __m256 valid = _mm256_cmp_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7),
                                         _mm256_set1_ps((float)k), _CMP_LT_OQ);
            __m256 vr = _mm256_setzero_ps(), vmu = _mm256_setzero_ps();
            if (fold) {
                vr = load_part(fold->rstd + j, k);
                vmu = load_part(fold->mean + j, k);
            }
            __m256 mx = _mm256_set1_ps(-INFINITY);
            for (int r = 0; r < n; r++) {
                float *p = a + (size_t)r * l + j;
                __m256 v = load_part(p, k);
                if (fold) {
                    v = _mm256_fnmadd_ps(vmu, _mm256_set1_ps(fold->qg[r]), v);
                    v = _mm256_fmadd_ps(vr, v, _mm256_set1_ps(fold->qb[r]));
                    store_part(p, v, k);
                }
                mx = _mm256_max_ps(mx, v);
            }
            __m256 sum = _mm256_setzero_ps();
            for (int r = 0; r < n; r++) {
                float *p = a + (size_t)r * l + j;
                __m256 e = exp256(_mm256_sub_ps(load_part(p, k), mx));
                sum = _mm256_add_ps(sum, e);
                store_part(p, e, k);
            }
            __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), sum);
            for (int r = 0; r < n; r++) {
                float *p = a + (size_t)r * l + j;
                __m256 v = _mm256_fmadd_ps(load_part(p, k), inv, _mm256_set1_ps(1e-8f));
                if (att)
                    store_part(att + (size_t)r * l + j, v, k);
                v = _mm256_and_ps(v, valid);
                acc_s[r] = _mm256_add_ps(acc_s[r], v);
                if (fold) {
                    v = _mm256_mul_ps(v, vr);
                    acc_m[r] = _mm256_fmadd_ps(v, vmu, acc_m[r]);
                }
                store_part(p, v, k);
            }
        }
        for (int r = 0; r < n; r++) {
            rowsum[r] += hsum256(acc_s[r]);
            if (fold)
                m[r] += hsum256(acc_m[r]);
        }
    }
}

/* dst = a (n x l) with row r divided by rowsum[r]. */
KERNEL static void scale_rows(const float *a, int n, int l, const double *rowsum, float *dst)
{
    for (int r = 0; r < n; r++) {
        __m256 inv = _mm256_set1_ps((float)(1.0 / rowsum[r]));
        const float *p = a + (size_t)r * l;
        float *q = dst + (size_t)r * l;
        int j = 0;
        for (; j + 8 <= l; j += 8)
            _mm256_storeu_ps(q + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), inv));
        for (; j < l; j++)
            q[j] = p[j] * (float)(1.0 / rowsum[r]);
    }
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
static sf_status onednn_lit(void *handle, const float *features, int height, int width,
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

/* ---- probe and table ---- */

static int onednn_score(char *why, size_t why_size)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        snprintf(why, why_size, "needs a CPU with AVX2 and FMA");
        return 0;
    }
    dnnl_engine_t eng = NULL;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) {
        snprintf(why, why_size, "oneDNN cannot create a CPU engine");
        return 0;
    }
    dnnl_engine_destroy(eng);
    return 100;
}

static const sf_backend_iface onednn_iface = {
    .abi_version = SF_BACKEND_ABI_VERSION,
    .struct_size = sizeof(sf_backend_iface),
    .name = "onednn",
    .description = "oneDNN convolutions (nhwc, fused BatchNorm/ReLU/residual) and sgemm LIT",
    .score = onednn_score,
    .net_create = onednn_create,
    .net_free = onednn_free,
    .backbone = onednn_backbone,
    .lit = onednn_lit,
};

__attribute__((visibility("default"))) const sf_backend_iface *sf_backend_init(void)
{
    return &onednn_iface;
}
