/* Inside the oneDNN backend: the network's description and the functions
 * its files share.  Not installed; only the backend's files include it. */
#ifndef ONEDNN_INTERNAL_H
#define ONEDNN_INTERNAL_H

#include <dnnl.h>
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sf_backend_impl.h"

#define MAX_SHAPES 16
#define ALIGN 64

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

/* A bf16 matrix product of LIT: C (m x n, f32) = A (m x k) B (k x n), with
 * sum: C += instead; at, bt: A or B stored transposed (k x m, n x k). */
typedef struct mmprim {
    int m, n, k, sum, at, bt;
    dnnl_primitive_t p;
    dnnl_memory_t a, b, c, scratch;
} mmprim;

#define MAX_MM 64

typedef struct onednn_net {
    sf_net_params params;
    sf_backbone_layout layout;
    int threads;
    /* bfloat16 (--precision bf16): weights and activations in bf16,
     * accumulation and everything outside the products in f32.  es and
     * adt: the activations' element size and type. */
    int bf16;
    size_t es;
    dnnl_data_type_t adt;
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
    /* bf16: LIT's weights as the right-hand operands they are (k x n,
     * contiguous), the products' primitives, and packed operands. */
    uint16_t *wqk16, *wv16, *wvt16, *mlp0t16, *mlp2t16;
    mmprim mm[MAX_MM];
    int n_mm;
    uint16_t *pack;           /* per call: Xn and Vt^T */
    size_t pack_size;
    uint16_t *pack_scratch;   /* per product: the operands not packed yet */
    size_t pack_scratch_size;

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

#define TRY_DNNL(call, what)                        \
    do {                                            \
        dnnl_status_t s_ = (call);                  \
        if (s_ != dnnl_success) {                   \
            st = dnnl_fail(err, what, s_);          \
            goto done;                              \
        }                                           \
    } while (0)

/* float32 to bfloat16, rounding to nearest even (NaN stays NaN). */
static inline uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static inline size_t round_up(size_t n)
{
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

/* onednn.c: helpers, threads, tensors of the model */
sf_status dnnl_fail(sf_error *err, const char *what, dnnl_status_t s);
void *alloc_aligned(size_t bytes);
sf_status ensure(void **buf, size_t *size, size_t bytes, sf_error *err);
int set_threads(const onednn_net *nt);
void restore_threads(int prev);
const sf_tensor *need(const sf_backend_net *net, const char *name, size_t numel,
                      sf_error *err);

/* primitives.c: weights and the primitive cache */
sf_status conv_load(onednn_net *nt, const sf_backend_net *net, const char *wname,
                    const char *bnname, int cin, int cout, int k, int stride, conv *cv,
                    sf_error *err);
void conv_free(conv *cv);
sf_status conv_add_variant(onednn_net *nt, conv *cv, const dnnl_memory_desc_t *md,
                           wvar **out, sf_error *err);
wvar *conv_find_variant(const conv *cv, const dnnl_memory_desc_t *md);
void shape_clear(shape_cache *sc);
shape_cache *shape_get(onednn_net *nt, int h, int w);
sf_status prim_get(onednn_net *nt, shape_cache *sc, const prim_key *key, const conv *cv,
                   prim **out, sf_error *err);
sf_status prim_run(onednn_net *nt, prim *p, const void *src, void *dst, wvar *w,
                   const conv *cv, sf_error *err);

/* pipeline.c: the backbone */
void region_free(region *r);
sf_status onednn_backbone(void *handle, const float *image, int height, int width,
                          int stage, float *out, sf_error *err);

/* lit.c and lit_kernels.c: LIT */
sf_status lit_load(onednn_net *nt, const sf_backend_net *net, sf_error *err);
void lit_free(onednn_net *nt);
sf_status onednn_lit(void *handle, const float *features, int height, int width,
                     float *superfeatures, float *attention, sf_error *err);

/* lit_kernels.c: AVX2 + FMA, which onednn_score checks for */
#define KERNEL __attribute__((target("avx2,fma")))

KERNEL void ln_stats(const float *x, int c, int l, float *mean, float *rstd);
KERNEL void ln_apply(const float *x, int c, int l, const float *mean, const float *rstd,
                     const float *g, const float *b, float *y);
KERNEL void ln_rows(const float *x, int rows, int d, const float *g, const float *b, float *y);

/* norm_inputs folded into the logits (see onednn_lit). */
typedef struct lnfold {
    const float *mean, *rstd;  /* per location */
    const float *qg, *qb;      /* per template */
} lnfold;

KERNEL void softmax_columns(float *a, int n, int l, const lnfold *fold, float *att,
                            double *rowsum, double *m, __m256 *acc);
KERNEL void scale_rows(const float *a, int n, int l, const double *rowsum, float *dst);

#endif
