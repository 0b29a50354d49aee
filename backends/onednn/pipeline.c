/* Backbone.  BatchNorm is folded into the convolutions at net_create; ReLU
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
 * which run as fast as the jit ones on nChw16c here. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "onednn_internal.h"

/* Rows per band: about this many bytes of a block's output (tests build
 * with a tiny value to exercise many bands on small images).  In bf16 that
 * is twice the rows of float32: taller bands run the convolutions a few
 * per cent faster, at the float32 network's memory. */
#ifndef BAND_BYTES
#define BAND_BYTES (2u << 20)
#endif

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
static sf_status conv_band(onednn_net *nt, shape_cache *sc, conv *cv, int post, const void *src,
                           int ih, int iw, int pt, int pb, void *dst, int oh, int ow,
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
static sf_status to_planar(onednn_net *nt, shape_cache *sc, const void *src, int c, int rows,
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

static int band_height(int rows, int w, int c, size_t es)
{
    size_t per_row = (size_t)w * (size_t)c * es;
    size_t b = BAND_BYTES / (per_row ? per_row : 1);
    if (b < 1)
        b = 1;
    return b > (size_t)rows ? rows : (int)b;
}

/* Rows of a private intermediate computed in order, keeping the last few
 * for the next band's window (the halo of a 3x3 convolution). */
typedef struct ring {
    char *buf;       /* NULL while planning */
    size_t row;      /* bytes per row */
    int lo, hi;      /* rows held */
} ring;

/* Keep rows [lo, r->hi) at the front; returns the first row to compute.
 * The caller computes [that, hi) at ring_at(r, that) and sets r->hi = hi. */
static int ring_advance(ring *r, int lo)
{
    if (lo >= r->lo && lo < r->hi) {
        if (lo > r->lo && r->buf)
            memmove(r->buf, r->buf + (size_t)(lo - r->lo) * r->row,
                    (size_t)(r->hi - lo) * r->row);
        r->lo = lo;
    } else {
        r->lo = r->hi = lo;
    }
    return r->hi;
}

static void *ring_at(const ring *r, int row)
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

void region_free(region *r)
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

/* image rows [lo, hi) (planar, 3 x h x w) as nhwc, in float32 or (bf16)
 * bfloat16. */
static void image_rows_nhwc(const float *image, int h, int w, int lo, int hi, void *dst,
                            int bf16)
{
    size_t plane = (size_t)h * w;
    for (int y = lo; y < hi; y++) {
        const float *r0 = image + (size_t)y * w, *r1 = r0 + plane, *r2 = r1 + plane;
        if (bf16) {
            uint16_t *d = (uint16_t *)dst + (size_t)(y - lo) * w * 3;
            for (int x = 0; x < w; x++) {
                d[3 * x] = to_bf16(r0[x]);
                d[3 * x + 1] = to_bf16(r1[x]);
                d[3 * x + 2] = to_bf16(r2[x]);
            }
            continue;
        }
        float *d = (float *)dst + (size_t)(y - lo) * w * 3;
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

static void *store_row(const store *s, int r)
{
    if (s->rg->mirrored)
        return s->rg->base + (size_t)r * s->row % s->rg->size;
    return s->rg->base + (size_t)(r - s->lo) * s->row;
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
    char *t2, *staging;
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
        image_rows_nhwc(pl->image, pl->ih, pl->iw, ilo, ihi, pl->staging, nt->bf16);
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
        const void *x = store_row(sg->in, xlo);
        if (bottleneck)
            st = conv_band(nt, pl->sc, &bl->c1, POST_RELU, x, xhi - xlo, sg->w, 0, 0,
                           ring_at(&sg->t1, first), hi - first, sg->w, err);
        else
            st = conv_band(nt, pl->sc, &bl->c1, POST_RELU, x, xhi - xlo, sg->w, xpt, xpb,
                           ring_at(&sg->t1, first), hi - first, sg->ow, err);
        if (st != SF_OK)
            goto done;
    }
    void *dst = store_row(sg->out, y0);
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
    const size_t es = nt->es;
    sg->b = band_height(sg->oh, 4 * sg->ow, 64, es);
    sg->t1.row = es * (size_t)pl->w1 * 64;
    priv += round_up((size_t)imin(pl->h1, 2 * sg->b + 1) * sg->t1.row);
    size_t staging = es * (size_t)imin(height, 4 * sg->b + 7) * width * 3;
    pl->nstores = 1;
    sg->out = &pl->stores[0];
    sg->out->row = es * (size_t)sg->ow * 64;
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
        sg->b = band_height(sg->oh, sg->ow, bl->cout, es);
        /* Winograd works on 4-row tiles. */
        if (bl->stride == 1 && sg->b > 4 && sg->b < sg->oh)
            sg->b &= ~3;
        if (bl->has_down) {
            sg->out = &pl->stores[pl->nstores++];
            sg->out->row = es * (size_t)sg->ow * bl->cout;
        } else {
            sg->out = sg->in;
        }
        int ring_rows;
        if (nt->layout.bottleneck) {
            ring_rows = imin(sg->h, (sg->b - 1) * bl->stride + 3);
            sg->t1.row = es * (size_t)sg->w * bl->width;
            size_t t = round_up(es * (size_t)sg->b * sg->ow * bl->width);
            if (t > t2)
                t2 = t;
        } else {
            ring_rows = imin(sg->oh, sg->b + 2);
            sg->t1.row = es * (size_t)sg->ow * bl->width;
        }
        priv += round_up((size_t)ring_rows * sg->t1.row);
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
        sg->t1.buf = band;
        band += round_up((size_t)rows * sg->t1.row);
    }
    if (band) {
        pl->t2 = band;
        size_t t2 = 0;
        for (int j = 1; j < pl->n; j++)
            if (pl->st[j].bl->c3.cout) {
                size_t t = round_up(pl->nt->es * (size_t)pl->st[j].b * pl->st[j].ow *
                                    pl->st[j].bl->width);
                if (t > t2)
                    t2 = t;
            }
        pl->staging = band + t2;
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

/* ---- backbone ---- */

/* conv1 alone, for the conv1 stage (tests): bands straight to out. */
static sf_status run_conv1(onednn_net *nt, shape_cache *sc, const float *image, int height,
                           int width, float *out, sf_error *err)
{
    int h1 = conv_out(height, 7, 2, 3), w1 = conv_out(width, 7, 2, 3);
    int b1 = band_height(h1, w1, 64, nt->es);
    size_t outb = round_up(nt->es * (size_t)b1 * w1 * 64);
    size_t stg = nt->es * (size_t)imin(height, (b1 - 1) * 2 + 7) * width * 3;
    sf_status st = ensure((void **)&nt->band, &nt->band_size, outb + stg, err);
    char *band = (char *)nt->band, *staging = band + outb;
    for (int r0 = 0; r0 < h1 && st == SF_OK; r0 += b1) {
        int r1 = imin(h1, r0 + b1), lo, hi, pt, pb;
        band_rows(r0, r1, 7, 2, 3, height, &lo, &hi, &pt, &pb);
        image_rows_nhwc(image, height, width, lo, hi, staging, nt->bf16);
        st = conv_band(nt, sc, &nt->stem, POST_RELU, staging, hi - lo, width, pt, pb, band,
                       r1 - r0, w1, err);
        if (st == SF_OK)
            st = to_planar(nt, sc, band, 64, r1 - r0, w1, out, h1, r0, err);
    }
    return st;
}

sf_status onednn_backbone(void *handle, const float *image, int height, int width,
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
