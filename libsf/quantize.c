/* Screened quantisation (quantize_internal.h).
 *
 * The sgemm path ranks word w of descriptor x by
 *     F_w = max(fl(fl(xn + cn_w) + p_w), 0),   p_w = -2 fl_dot(x, c_w),
 * ties to the smaller index, where xn, cn_w are the float32 squared norms
 * and fl_dot sums x_i c_i in dimension order with fused multiply-adds
 * starting from 0 (what oneDNN's sgemm does for dim <= 256, checked per
 * codebook by sf_gemm_tiny_exact).
 *
 * The screen: x and c are rounded to int8 with one scale each, sx for the
 * descriptors of a call, sc for the codebook (xh = sx qx, ch = sc qc), and
 * the exact integer I_w = qx.qc_w (AVX512-VNNI) gives, with
 * s = sx sc and N_w = an integer within 1 of cn_w / (2 s),
 *     S_w = xn - 2 s (I_w - N_w)          (real arithmetic).
 * Error bound, for every word (B below, per descriptor):
 *   with E_w = xn + cn_w - 2 x.c_w (real),
 *   |S_w - E_w| <= 2 s |N_w - cn_w / (2 s)| + 2 |x.c - xh.ch|
 *              <= 2 s + 2 (|x - xh| |c| + |xh| |c - ch|)      (Cauchy-Schwarz,
 *                 since x.c - xh.ch = (x - xh).c + xh.(c - ch));
 *   |fl_dot - x.c| <= g |x||c|, g = dim u / (1 - dim u), u = 2^-24
 *                 (recursive summation, one rounding per fused step);
 *   t = fl(xn + cn) = (xn + cn)(1 + d1), F = (t + p)(1 + d2), |d| <= u, so
 *   |F - E| <= u (xn + cn) + 2 g |x||c| + u ((xn + cn)(1 + u) + 2 |x||c| (1 + g))
 *           <= 2.01 u (xn + cn) + 2 g |x||c| + 2.01 u |x||c|.
 * With |c| <= cmax, |c - ch| <= emax, cn <= cnmax over the codebook, B is
 * the sum of those, times 1.01: the norms are summed and 2 sx sc is
 * formed in double (relative errors below 1e-13, and B >= 2 g |x||c| is
 * above 1e-5 |x||c|), which the 1 % more covers many times over; a
 * further 1e-30 covers products that underflow.
 *
 * max(., 0) moves values by at most as much as its argument moves, so
 * |max(S_w, 0) - F_w| <= B.  Let g5 be the ma-th smallest max(S, 0) and
 * M the ma words that have the smallest.  A word with
 * max(S_w, 0) > g5 + 2B has F_w > g5 + B >= F_m for every m in M: ma
 * words come strictly before it, whatever the ties.  So every word of the
 * answer is among the candidates max(S_w, 0) <= g5 + 2B, whose F the
 * re-check computes with the same float32 operations as the sgemm path
 * and ranks the same way: the same words, in the same order.
 *
 * The scan keeps, per descriptor, the ma largest I - N seen so far; its
 * threshold (from those) only rises, so a word it lets pass was a
 * candidate then, and one it drops is not one at the end.  The kernel
 * starts its sums at -N_w (and adds 128 qx_i per dimension since the
 * bytes it multiplies are unsigned: a per-descriptor constant), so a
 * word passes on one integer comparison. */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quantize_internal.h"
#include "sf_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_SCREEN 1
#endif

#ifdef HAVE_SCREEN

#define GROUP 16          /* words per vector */
#define TILE_GROUPS 3     /* vectors of words per kernel call */
#define TILE_ROWS 8       /* descriptors per kernel call */
#define TILE_WORDS (GROUP * TILE_GROUPS)
#define BLOCK_TILES 32    /* tiles of words per cache block: 192 kB at dim 128 */
#define MAX_MA 32
#define PAD_N (1 << 30)   /* N of a padding word: never passes */

struct sf_quant_screen {
    size_t k, dim, dim4;   /* dim4: dimensions / 4, rounded up */
    size_t k_pad;          /* k rounded up to TILE_WORDS */
    uint8_t *packed;       /* k_pad / GROUP groups of dim4 x GROUP x 4 bytes, qc + 128 */
    double sc;             /* codebook scale */
    double cmax, emax;     /* max |c|, max |c - sc qc| */
    double cnmax;          /* max cn */
};

static int cpu_ok(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma");
}

static int round_q(double v)
{
    double r = nearbyint(v);
    return r > 127 ? 127 : r < -127 ? -127 : (int)r;
}

sf_quant_screen *sf_quant_screen_create(const float *c, const float *norms, size_t k,
                                        size_t dim, int tiny_exact)
{
    if (!tiny_exact || dim > 256 || k > (size_t)INT32_MAX - TILE_WORDS || !cpu_ok())
        return NULL;
    sf_quant_screen *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->k = k;
    s->dim = dim;
    s->dim4 = (dim + 3) / 4;
    s->k_pad = (k + TILE_WORDS - 1) / TILE_WORDS * TILE_WORDS;
    s->packed = malloc(s->k_pad * s->dim4 * 4);
    if (!s->packed) {
        free(s);
        return NULL;
    }
    double amax = 0;
    for (size_t i = 0; i < k * dim; i++)
        amax = fabs(c[i]) > amax ? fabs(c[i]) : amax;
    s->sc = amax > 0 ? amax / 127 : 1;
    memset(s->packed, 128, s->k_pad * s->dim4 * 4);
    /* The rounding to q need not be the nearest: the bound uses the
     * residuals c - sc q as they come out. */
    const double inv = 1 / s->sc;
    for (size_t w = 0; w < k; w++) {
        const float *cw = c + w * dim;
        uint8_t *g = s->packed + (w / GROUP) * s->dim4 * GROUP * 4 + (w % GROUP) * 4;
        double n2 = 0, e2 = 0;
        for (size_t d = 0; d < dim; d++) {
            int q = round_q(cw[d] * inv);
            g[(d / 4) * GROUP * 4 + d % 4] = (uint8_t)(q + 128);
            double e = (double)cw[d] - s->sc * q;
            n2 += (double)cw[d] * cw[d];
            e2 += e * e;
        }
        s->cmax = sqrt(n2) > s->cmax ? sqrt(n2) : s->cmax;
        s->emax = sqrt(e2) > s->emax ? sqrt(e2) : s->emax;
        s->cnmax = norms[w] > s->cnmax ? norms[w] : s->cnmax;
    }
    return s;
}

void sf_quant_screen_free(sf_quant_screen *s)
{
    if (!s)
        return;
    free(s->packed);
    free(s);
}

/* One descriptor's state during the scan. */
typedef struct row_state {
    double xn, off, b;     /* xn; 128 sum qx (the kernel's constant); B */
    int32_t top[MAX_MA];   /* the ma largest scores seen, descending */
    int n_top;
    int32_t *cw, *ck;      /* candidates: words ascending, their scores */
    size_t n_cand, cap;
} row_state;

typedef struct screen_job {
    const sf_quant_screen *s;
    const float *c, *norms, *desc;
    size_t n, n_groups;    /* descriptors; groups of TILE_ROWS (the last padded) */
    int ma;
    double two_s;          /* 2 sx sc */
    const int8_t *xq;      /* n_groups * TILE_ROWS rows of dim4 * 4 */
    const int32_t *nneg;   /* -N_w, k_pad */
    row_state *rows;       /* n */
    int32_t *thr;          /* n_groups * TILE_ROWS: a word passes when its score >= thr */
    size_t threads;
    int32_t *words;
    sf_status *status;     /* per thread */
} screen_job;

/* The score (I - N + off) at or above which a word can be a candidate,
 * lowered by one against the rounding of this double arithmetic (scores
 * are below 2^31 in magnitude: the rounding is far below a unit). */
static int32_t row_threshold(const row_state *r, int ma, double two_s)
{
    if (r->n_top < ma)
        return INT32_MIN;
    double s5 = r->xn - two_s * ((double)r->top[ma - 1] - r->off);
    double t = (s5 > 0 ? s5 : 0) + 2 * r->b;
    double v = floor(r->off + (r->xn - t) / two_s) - 1;
    return v <= (double)INT32_MIN ? INT32_MIN : v >= (double)INT32_MAX ? INT32_MAX : (int32_t)v;
}

/* A word whose score passed: a candidate, and perhaps among the top.
 * -1: out of memory. */
static int row_offer(row_state *r, int ma, double two_s, int32_t w, int32_t score)
{
    if (r->n_cand == r->cap) {
        /* Drop those the threshold has since risen above; grow when that
         * frees less than half. */
        int32_t thr = row_threshold(r, ma, two_s);
        size_t m = 0;
        for (size_t i = 0; i < r->n_cand; i++)
            if (r->ck[i] >= thr) {
                r->cw[m] = r->cw[i];
                r->ck[m] = r->ck[i];
                m++;
            }
        r->n_cand = m;
        if (m >= r->cap / 2) {
            size_t cap = r->cap ? 2 * r->cap : 64;
            int32_t *cw = realloc(r->cw, cap * sizeof *cw);
            if (!cw)
                return -1;
            r->cw = cw;
            int32_t *ck = realloc(r->ck, cap * sizeof *ck);
            if (!ck)
                return -1;
            r->ck = ck;
            r->cap = cap;
        }
    }
    r->cw[r->n_cand] = w;
    r->ck[r->n_cand] = score;
    r->n_cand++;
    if (r->n_top < ma || score > r->top[ma - 1]) {
        int p = r->n_top < ma ? r->n_top++ : ma - 1;
        while (p > 0 && score > r->top[p - 1]) {
            r->top[p] = r->top[p - 1];
            p--;
        }
        r->top[p] = score;
    }
    return 0;
}

/* Scores of TILE_ROWS descriptors x TILE_WORDS words; pass[i] has bit j
 * set where word j passed row i's threshold as it was before this tile.
 * Offered in word order, each against the threshold as it has risen. */
static int tile_offer(screen_job *job, size_t row0, size_t w0, const int32_t *sc,
                      const uint64_t *pass)
{
    int32_t *thr = job->thr + row0;
    for (size_t i = 0; i < TILE_ROWS && row0 + i < job->n; i++) {
        row_state *r = &job->rows[row0 + i];
        for (uint64_t m = pass[i]; m; m &= m - 1) {
            const size_t j = (size_t)__builtin_ctzll(m);
            int32_t v = sc[i * TILE_WORDS + j];
            /* Padding words pass while a row has fewer than ma. */
            if (w0 + j >= job->s->k || v < thr[i])
                continue;
            if (row_offer(r, job->ma, job->two_s, (int32_t)(w0 + j), v) != 0)
                return -1;
            thr[i] = row_threshold(r, job->ma, job->two_s);
        }
    }
    return 0;
}

/* a + the four-byte dot products of the unsigned bytes of c with the
 * signed bytes of x, per lane.  Written in asm because GCC 12, given the
 * intrinsic, copies every one of the kernel's 24 sums to the stack on each
 * step of the dimension loop (a store per product, half the kernel's
 * time); with this it keeps them in registers, as clang does either way. */
__attribute__((target("avx512f,avx512vnni"))) static inline __m512i dot4(__m512i a, __m512i c,
                                                                         __m512i x)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(a) : "v"(c), "v"(x));
    return a;
}

#define ACC3(i) __m512i a##i##0 = n0, a##i##1 = n1, a##i##2 = n2
#define DOT3(i)                                                                              \
    do {                                                                                     \
        int32_t xv;                                                                          \
        memcpy(&xv, x + (i) * xs + 4 * d, 4);                                                \
        const __m512i b = _mm512_set1_epi32(xv);                                             \
        a##i##0 = dot4(a##i##0, v0, b);                                                      \
        a##i##1 = dot4(a##i##1, v1, b);                                                      \
        a##i##2 = dot4(a##i##2, v2, b);                                                      \
    } while (0)
/* Thresholds are read from memory here, not held in registers across the
 * loop: its 24 sums and 3 word vectors leave too few. */
#define CMP3(i)                                                                              \
    (pass[i] = (uint64_t)_mm512_cmpge_epi32_mask(a##i##0, _mm512_set1_epi32(thr[i])) |        \
               (uint64_t)_mm512_cmpge_epi32_mask(a##i##1, _mm512_set1_epi32(thr[i])) << 16 |  \
               (uint64_t)_mm512_cmpge_epi32_mask(a##i##2, _mm512_set1_epi32(thr[i])) << 32)
#define STORE3(i)                                                                            \
    do {                                                                                     \
        _mm512_storeu_si512(buf + (i) * TILE_WORDS, a##i##0);                                \
        _mm512_storeu_si512(buf + (i) * TILE_WORDS + GROUP, a##i##1);                        \
        _mm512_storeu_si512(buf + (i) * TILE_WORDS + 2 * GROUP, a##i##2);                    \
    } while (0)

/* Row groups g0 .. g1 - 1 against every word, a cache block of words at a
 * time.  Returns -1 when out of memory. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int scan_rows(screen_job *job,
                                                                             size_t g0,
                                                                             size_t g1)
{
    const sf_quant_screen *s = job->s;
    const size_t dim4 = s->dim4, xs = dim4 * 4, gbytes = dim4 * GROUP * 4;
    const size_t tiles = s->k_pad / TILE_WORDS;
    int32_t buf[TILE_ROWS * TILE_WORDS];
    for (size_t tb = 0; tb < tiles; tb += BLOCK_TILES) {
        const size_t te = tb + BLOCK_TILES < tiles ? tb + BLOCK_TILES : tiles;
        for (size_t rg = g0; rg < g1; rg++) {
            const int8_t *x = job->xq + rg * TILE_ROWS * xs;
            const int32_t *thr = job->thr + rg * TILE_ROWS;
            for (size_t t = tb; t < te; t++) {
                const uint8_t *c0 = s->packed + t * TILE_GROUPS * gbytes;
                const int32_t *nn = job->nneg + t * TILE_WORDS;
                const __m512i n0 = _mm512_loadu_si512(nn), n1 = _mm512_loadu_si512(nn + GROUP),
                              n2 = _mm512_loadu_si512(nn + 2 * GROUP);
                ACC3(0);
                ACC3(1);
                ACC3(2);
                ACC3(3);
                ACC3(4);
                ACC3(5);
                ACC3(6);
                ACC3(7);
                for (size_t d = 0; d < dim4; d++) {
                    const __m512i v0 = _mm512_loadu_si512(c0 + d * GROUP * 4),
                                  v1 = _mm512_loadu_si512(c0 + gbytes + d * GROUP * 4),
                                  v2 = _mm512_loadu_si512(c0 + 2 * gbytes + d * GROUP * 4);
                    DOT3(0);
                    DOT3(1);
                    DOT3(2);
                    DOT3(3);
                    DOT3(4);
                    DOT3(5);
                    DOT3(6);
                    DOT3(7);
                }
                uint64_t pass[TILE_ROWS];
                const uint64_t any = CMP3(0) | CMP3(1) | CMP3(2) | CMP3(3) | CMP3(4) |
                                     CMP3(5) | CMP3(6) | CMP3(7);
                if (!any)
                    continue;
                STORE3(0);
                STORE3(1);
                STORE3(2);
                STORE3(3);
                STORE3(4);
                STORE3(5);
                STORE3(6);
                STORE3(7);
                if (tile_offer(job, rg * TILE_ROWS, t * TILE_WORDS, buf, pass) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

/* The sgemm path's distance of up to 8 words at once (8 independent
 * chains): the dot product summed in dimension order with fused
 * multiply-adds from 0, doubled, then (xn + cn) + (-2 x.c), clamped at 0.
 * The doubling is exact, so a compiler fusing the last two steps gives the
 * same float. */
__attribute__((target("fma"))) static void exact_dists(const float *x, const float *const c[8],
                                                       size_t dim, float xn,
                                                       const float cn[8], float out[8])
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f,
          a7 = 0.0f;
    for (size_t d = 0; d < dim; d++) {
        const float xd = x[d];
        a0 = __builtin_fmaf(xd, c[0][d], a0);
        a1 = __builtin_fmaf(xd, c[1][d], a1);
        a2 = __builtin_fmaf(xd, c[2][d], a2);
        a3 = __builtin_fmaf(xd, c[3][d], a3);
        a4 = __builtin_fmaf(xd, c[4][d], a4);
        a5 = __builtin_fmaf(xd, c[5][d], a5);
        a6 = __builtin_fmaf(xd, c[6][d], a6);
        a7 = __builtin_fmaf(xd, c[7][d], a7);
    }
    const float a[8] = { a0, a1, a2, a3, a4, a5, a6, a7 };
    for (int j = 0; j < 8; j++) {
        float p = -2.0f * a[j];
        float dd = (xn + cn[j]) + p;
        out[j] = dd < 0.0f ? 0.0f : dd;
    }
}

/* keep_nearest of asmk.c: words offered in ascending order, only a
 * strictly smaller distance moves an entry. */
static void keep(float *dist, int32_t *ids, int ma, float d, int32_t id)
{
    if (!(d < dist[ma - 1]))
        return;
    int p = ma - 1;
    while (p > 0 && d < dist[p - 1]) {
        dist[p] = dist[p - 1];
        ids[p] = ids[p - 1];
        p--;
    }
    dist[p] = d;
    ids[p] = id;
}

/* The final candidates of a row, re-checked; 0 when all ma words were found. */
static int row_finish(const screen_job *job, size_t i)
{
    const row_state *r = &job->rows[i];
    const int ma = job->ma;
    const size_t dim = job->s->dim;
    const int32_t thr = row_threshold(r, ma, job->two_s);
    float best[MAX_MA];
    int32_t *out = job->words + i * (size_t)ma;
    for (int m = 0; m < ma; m++) {
        best[m] = INFINITY;
        out[m] = -1;
    }
    const float *x = job->desc + i * dim;
    const float xn = (float)r->xn;
    size_t j = 0;
    while (j < r->n_cand) {
        int32_t ids[8];
        int got = 0;
        for (; j < r->n_cand && got < 8; j++)
            if (r->ck[j] >= thr)
                ids[got++] = r->cw[j];
        if (!got)
            break;
        const float *c[8];
        float cn[8], d[8];
        for (int u = 0; u < 8; u++) {
            int32_t w = ids[u < got ? u : got - 1];
            c[u] = job->c + (size_t)w * dim;
            cn[u] = job->norms[w];
        }
        exact_dists(x, c, dim, xn, cn, d);
        for (int u = 0; u < got; u++)
            keep(best, out, ma, d[u], ids[u]);
    }
    return out[ma - 1] < 0 ? -1 : 0;
}

static void screen_worker(void *ctx, size_t index)
{
    screen_job *job = ctx;
    const size_t g0 = index * job->n_groups / job->threads;
    const size_t g1 = (index + 1) * job->n_groups / job->threads;
    sf_status st = SF_OK;
    if (scan_rows(job, g0, g1) != 0)
        st = SF_ERR_NOMEM;
    for (size_t i = g0 * TILE_ROWS; st == SF_OK && i < g1 * TILE_ROWS && i < job->n; i++)
        if (row_finish(job, i) != 0)
            st = SF_ERR_UNSUPPORTED;
    job->status[index] = st;
}

sf_status sf_quant_screen_run(const sf_quant_screen *s, const float *c, const float *norms,
                              const float *desc, size_t n, int ma, int32_t *words, sf_error *err)
{
    const size_t dim = s->dim, xs = s->dim4 * 4;
    if (ma < 1 || ma > MAX_MA || (size_t)ma > s->k || n == 0)
        return SF_ERR_UNSUPPORTED;
    double amax = 0;
    for (size_t i = 0; i < n * dim; i++) {
        if (!isfinite(desc[i]))
            return SF_ERR_UNSUPPORTED;
        amax = fabs(desc[i]) > amax ? fabs(desc[i]) : amax;
    }
    const double sx = amax > 0 ? amax / 127 : 1;
    screen_job job = { .s = s, .c = c, .norms = norms, .desc = desc, .n = n, .ma = ma,
                       .two_s = 2 * sx * s->sc, .words = words };
    job.n_groups = (n + TILE_ROWS - 1) / TILE_ROWS;
    size_t threads = (size_t)sf_threads_resolve(0);
    /* Below a few row groups per thread, threads cost more than they give. */
    if (threads > (job.n_groups + 3) / 4)
        threads = (job.n_groups + 3) / 4;
    job.threads = threads ? threads : 1;
    const size_t n_pad = job.n_groups * TILE_ROWS;
    int8_t *xq = calloc(n_pad, xs);
    int32_t *nneg = malloc(s->k_pad * sizeof *nneg);
    job.rows = calloc(n, sizeof *job.rows);
    job.thr = malloc(n_pad * sizeof *job.thr);
    job.status = calloc(job.threads, sizeof *job.status);
    sf_status st = SF_OK;
    if (!xq || !nneg || !job.rows || !job.thr || !job.status)
        st = sf_error_set(err, SF_ERR_NOMEM, "quantize: out of memory for %zu descriptors", n);
    /* N_w within 1 of cn_w / 2s (the bound allows 1): a product by the
     * reciprocal is off by far less than the other half. */
    const double inv2s = 1 / job.two_s;
    for (size_t w = 0; st == SF_OK && w < s->k_pad; w++) {
        if (w >= s->k) {
            nneg[w] = -PAD_N;
            continue;
        }
        double v = nearbyint((double)norms[w] * inv2s);
        if (!(fabs(v) <= PAD_N / 2))
            st = SF_ERR_UNSUPPORTED;
        else
            nneg[w] = -(int32_t)v;
    }
    const double u = 0x1p-24, g = (double)dim * u / (1 - (double)dim * u);
    for (size_t i = 0; st == SF_OK && i < n; i++) {
        const float *x = desc + i * dim;
        const float xn = sf_quant_sq_norm(x, dim);
        if (!isfinite(xn)) {
            st = SF_ERR_UNSUPPORTED;
            break;
        }
        double x2 = 0, e2 = 0, h2 = 0;
        long sum = 0;
        for (size_t d = 0; d < dim; d++) {
            int q = round_q(x[d] / sx);
            xq[i * xs + d] = (int8_t)q;
            sum += q;
            double h = sx * q, e = (double)x[d] - h;
            x2 += (double)x[d] * x[d];
            e2 += e * e;
            h2 += h * h;
        }
        const double xnorm = sqrt(x2);
        row_state *r = &job.rows[i];
        r->xn = xn;
        r->off = 128.0 * (double)sum;
        r->b = 1.01 * (job.two_s + 2 * (sqrt(e2) * s->cmax + sqrt(h2) * s->emax) +
                       2.01 * u * ((double)xn + s->cnmax) + 2 * g * xnorm * s->cmax +
                       2.01 * u * xnorm * s->cmax) +
               1e-30;
        job.thr[i] = INT32_MIN;
    }
    for (size_t i = n; st == SF_OK && i < n_pad; i++)
        job.thr[i] = INT32_MAX;
    if (st == SF_OK) {
        job.xq = xq;
        job.nneg = nneg;
        sf_threads_run(job.threads, screen_worker, &job);
        for (size_t t = 0; t < job.threads && st == SF_OK; t++)
            st = job.status[t];
        if (st == SF_ERR_NOMEM)
            sf_error_set(err, st, "quantize: out of memory for candidate words");
    }
    if (job.rows)
        for (size_t i = 0; i < n; i++) {
            free(job.rows[i].cw);
            free(job.rows[i].ck);
        }
    free(job.rows);
    free(job.thr);
    free(job.status);
    free(nneg);
    free(xq);
    return st;
}

#else /* no x86-64 intrinsics: the sgemm path serves alone */

sf_quant_screen *sf_quant_screen_create(const float *centroids, const float *norms, size_t k,
                                        size_t dim, int tiny_exact)
{
    (void)centroids;
    (void)norms;
    (void)k;
    (void)dim;
    (void)tiny_exact;
    return NULL;
}

void sf_quant_screen_free(sf_quant_screen *screen) { (void)screen; }

sf_status sf_quant_screen_run(const sf_quant_screen *screen, const float *centroids,
                              const float *norms, const float *desc, size_t n, int ma,
                              int32_t *words, sf_error *err)
{
    (void)screen;
    (void)centroids;
    (void)norms;
    (void)desc;
    (void)n;
    (void)ma;
    (void)words;
    (void)err;
    return SF_ERR_UNSUPPORTED;
}

#endif
