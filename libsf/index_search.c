/* Searching one or more ASMK index files (shards) as one.
 *
 * Bit-exactness with sf_asmk_ivf_search: each image's score is the sum,
 * in query order, of float32(idf * u^alpha) / sqrt(norm) rounded to float32,
 * accumulated in float64, then divided by sqrt(q_norm).  The per-entry
 * value for the binary kernel depends only on the Hamming distance h, so
 * powf(u_h, alpha) and "kept" are tabulated per h by running
 * sf_asmk_score_word_binary itself on one synthetic entry per distance;
 * the float kernel is called directly.
 *
 * Work is split by image, never by word, so that each image's additions
 * keep their order: threads take contiguous ranges of ids, and within a
 * range, tiles of images are scored one after the other, each over every
 * query word, continuing each list where the previous tile stopped (lists
 * ascend by image).  The loop over a list is memory-bound: no branch per
 * entry beyond the end-of-piece test, prefetching ahead of short pieces.
 * Vectorising it with AVX-512 gathers and scatters measured slower; eight
 * entries at a time with VPOPCNTQ, the table in registers and no gather
 * measured no faster, and neither did a product by the norm's reciprocal
 * (exact but for a re-check near float midpoints) in place of the
 * division: the loop waits on memory, not on arithmetic.
 *
 * Nothing read is trusted unchecked (sf-index(5), WHAT READERS CHECK):
 * each piece, once scored and still in cache, is summed as the list sums
 * are defined, and the query fails unless the pieces of every list it
 * read add up to the list's sums. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "index_internal.h"
#include "topk_internal.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Below this many list entries a query runs on the calling thread. */
#define PARALLEL_MIN_ENTRIES 200000
/* How many query words ahead to prefetch directory entries and list heads. */
#define PREFETCH_DIR 32
#define PREFETCH_LIST 8
#define PREFETCH_ENTRIES 64
/* Candidates ahead whose place in a long list is fetched early when a few
 * images are scored alone. */
#define SUBSET_PREFETCH 8
/* Images per tile: 16 bytes each of score and norm, 2 MiB: measured best
 * at 1M images (32768, which fits L2, splits the lists into too many
 * pieces). */
#define TILE_IMAGES 131072
/* Binary kernel, in tiles of more than CELL_PREFETCH_MIN images (whose
 * cells outgrow half of a 1 MiB L2): entries ahead whose image's cell is
 * fetched early, and bytes ahead in a list piece's vectors (a quarter as
 * far in its ids), since lists are many and short and the hardware's
 * stream detection starts late on each.  Measured at 100k images: 12 %
 * faster; in smaller tiles the extra work costs more than it saves. */
#define CELL_PREFETCH_MIN 32768
#define CELL_AHEAD 32
#define STREAM_AHEAD 1024

/* An image's running score beside its norm: one cache line fetched per
 * entry instead of two. */
typedef struct {
    double score;
    double ns;
} cell;

/* Score entries 0, 1, ... of a list piece while their image is in
 * [a, a + len); returns how many it scored. */
typedef size_t (*bin_kernel)(const uint32_t *q, const unsigned char *vecs, const uint32_t *ids,
                             size_t n, size_t n_u32, uint32_t a, uint32_t len, const float *tab,
                             const uint64_t *keep, size_t prefetch_min, cell *cells);

struct sf_index_searcher {
    const sf_index **shards;
    size_t n_shards;
    uint64_t *base; /* n_shards + 1: first global id of each shard */
    sf_index_params params;
    uint64_t k, dim, vec_bytes, n_u32;
    int threads;
    int explicit_threads;
    uint64_t tile;
    double *scores; /* for searches that return hits */
    float *pw;      /* binary: powf(u_h, alpha) for h = 0..bits */
    uint64_t *keep; /* binary: all ones where u_h >= threshold, else 0 */
    bin_kernel kernel;
    uint64_t *key_table; /* open addressing: global id + 1, 0 empty */
    uint64_t key_mask;
    /* Segments of all shards numbered in a row: shard sh's first is
     * seg_base[sh].  checked: per such segment, kw words of k bits, set
     * for the lists this searcher has checked against their sums; each
     * list is checked when first read, its bytes trusted after that. */
    size_t *seg_base;
    size_t n_segs, kw;
    uint64_t *checked;
    int skip_checks; /* ix_searcher_skip_checks */
    size_t prefetch_min; /* CELL_PREFETCH_MIN, or ix_searcher_prefetch_min's */
};

void ix_searcher_skip_checks(sf_index_searcher *s, int skip) { s->skip_checks = skip; }

void ix_searcher_prefetch_min(sf_index_searcher *s, size_t images) { s->prefetch_min = images; }

static int list_checked(const sf_index_searcher *s, size_t seg, uint64_t w)
{
    return s->skip_checks || (int)((s->checked[seg * s->kw + (w >> 6)] >> (w & 63)) & 1);
}

static void set_list_checked(sf_index_searcher *s, size_t seg, uint64_t w)
{
    s->checked[seg * s->kw + (w >> 6)] |= UINT64_C(1) << (w & 63);
}

void sf_index_search_options_default(sf_index_search_options *opt)
{
    opt->threads = 0;
    opt->allow_local_idf = 0;
    opt->tile = 0;
}

/* ---- Kernels ----
 *
 * A list piece is scored from its start up to the first entry whose image
 * is outside [a, a + len): lists ascend, so that is where the next image
 * tile begins (in a damaged list it only ends the piece early).  No other
 * branch per entry: an unkept similarity adds +0.0, which leaves a sum
 * exactly as skipping it does (scores start at +0.0 and never become
 * -0.0). */

/* x where *mask is all ones, +0.0 where it is 0, without a branch (a NaN
 * x too); on x86 without moving x out of its vector register. */
static inline __attribute__((always_inline)) double masked(double x, const uint64_t *mask)
{
#ifdef __SSE2__
    __m128d m = _mm_castsi128_pd(_mm_loadl_epi64((const __m128i *)(const void *)mask));
    return _mm_cvtsd_f64(_mm_and_pd(_mm_set_sd(x), m));
#else
    uint64_t bits;
    memcpy(&bits, &x, 8);
    bits &= *mask;
    memcpy(&x, &bits, 8);
    return x;
#endif
}

/* Add to cell c an entry at Hamming distance h. */
static inline __attribute__((always_inline)) void
cell_add(cell *c, unsigned h, const float *tab, const uint64_t *keep)
{
    double x = (double)(float)((double)tab[h] / c->ns);
    c->score += masked(x, &keep[h]);
}

/* One 128-bit entry: v its vector, c its image's cell. */
static inline __attribute__((always_inline)) void
bin_entry128(uint64_t q0, uint64_t q1, const unsigned char *v, const float *tab,
             const uint64_t *keep, cell *c)
{
    uint64_t v0, v1;
    memcpy(&v0, v, 8);
    memcpy(&v1, v + 8, 8);
    cell_add(c, (unsigned)__builtin_popcountll(q0 ^ v0) + (unsigned)__builtin_popcountll(q1 ^ v1),
             tab, keep);
}

static inline __attribute__((always_inline)) size_t
bin_body(const uint32_t *q, const unsigned char *vecs, const uint32_t *ids, size_t n,
         size_t n_u32, uint32_t a, uint32_t len, const float *tab, const uint64_t *keep,
         size_t prefetch_min, cell *cells)
{
    size_t e = 0;
    if (n_u32 == 4) {
        uint64_t q0, q1;
        memcpy(&q0, q, 8);
        memcpy(&q1, q + 2, 8);
        /* While CELL_AHEAD more entries of the list exist: fetch ahead the
         * cell of the entry that far on (its own where that one lies past
         * the tile), and the piece's bytes. */
        const size_t n_far = len > prefetch_min && n > CELL_AHEAD ? n - CELL_AHEAD : 0;
        for (; e < n_far; e++) {
            uint32_t i = ids[e] - a;
            if (i >= len)
                return e;
            uint32_t f = ids[e + CELL_AHEAD] - a;
            __builtin_prefetch(&cells[f < len ? f : i], 1);
            if ((e & 3) == 0)
                __builtin_prefetch(vecs + 16 * e + STREAM_AHEAD);
            if ((e & 15) == 0)
                __builtin_prefetch(ids + e + STREAM_AHEAD / 4);
            bin_entry128(q0, q1, vecs + 16 * e, tab, keep, &cells[i]);
        }
        for (; e < n; e++) {
            uint32_t i = ids[e] - a;
            if (i >= len)
                break;
            bin_entry128(q0, q1, vecs + 16 * e, tab, keep, &cells[i]);
        }
        return e;
    }
    const size_t vb = 4 * n_u32;
    for (; e < n; e++) {
        uint32_t i = ids[e] - a;
        if (i >= len)
            break;
        const unsigned char *v = vecs + vb * e;
        unsigned h = 0;
        for (size_t t = 0; t < n_u32; t++) {
            uint32_t x;
            memcpy(&x, v + 4 * t, 4);
            h += (unsigned)__builtin_popcount(q[t] ^ x);
        }
        cell_add(&cells[i], h, tab, keep);
    }
    return e;
}

static size_t bin_generic(const uint32_t *q, const unsigned char *vecs, const uint32_t *ids,
                          size_t n, size_t n_u32, uint32_t a, uint32_t len, const float *tab,
                          const uint64_t *keep, size_t prefetch_min, cell *cells)
{
    return bin_body(q, vecs, ids, n, n_u32, a, len, tab, keep, prefetch_min, cells);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("popcnt"))) static size_t
bin_popcnt(const uint32_t *q, const unsigned char *vecs, const uint32_t *ids, size_t n,
           size_t n_u32, uint32_t a, uint32_t len, const float *tab, const uint64_t *keep,
           size_t prefetch_min, cell *cells)
{
    return bin_body(q, vecs, ids, n, n_u32, a, len, tab, keep, prefetch_min, cells);
}
#endif

static bin_kernel pick_kernel(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("popcnt"))
        return bin_popcnt;
#endif
    return bin_generic;
}

/* The per-distance values, from the library's own kernel. */
static void tabulate(const sf_asmk_params *p, size_t n_u32, float *pw, uint64_t *keep)
{
    uint32_t zero[64] = { 0 }, v[64] = { 0 };
    const uint32_t id = 0;
    const double one = 1.0, nan = NAN;
    for (size_t h = 0; h <= 32 * n_u32; h++) {
        for (size_t t = 0; t < n_u32; t++) {
            size_t bits = h > 32 * t ? h - 32 * t : 0;
            v[t] = bits >= 32 ? UINT32_MAX : (uint32_t)((UINT64_C(1) << bits) - 1);
        }
        double s = 0.0;
        sf_asmk_score_word_binary(zero, v, &id, 1, n_u32, 1.0f, &one, p, &s);
        pw[h] = (float)s;
        /* Kept entries add x / NaN = NaN; skipped ones leave 0. */
        s = 0.0;
        sf_asmk_score_word_binary(zero, v, &id, 1, n_u32, 1.0f, &nan, p, &s);
        keep[h] = isnan(s) ? UINT64_MAX : 0;
    }
}

/* ---- Searcher ---- */

static int same_float(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

sf_status sf_index_searcher_create(const sf_index *const *shards, size_t n_shards,
                                   const sf_index_search_options *opt,
                                   sf_index_searcher **out, sf_error *err)
{
    *out = NULL;
    sf_index_search_options o;
    if (opt)
        o = *opt;
    else
        sf_index_search_options_default(&o);
    if (n_shards == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "search: no index given");
    const sf_index *first = shards[0];
    const sf_index_params *p0 = &first->params;
    for (size_t i = 1; i < n_shards; i++) {
        const sf_index *x = shards[i];
        const sf_index_params *p = &x->params;
        if (p->asmk.binary != p0->asmk.binary || p->asmk.use_idf != p0->asmk.use_idf ||
            !same_float(p->asmk.alpha, p0->asmk.alpha) ||
            !same_float(p->asmk.similarity_threshold, p0->asmk.similarity_threshold) ||
            p->ma_database != p0->ma_database)
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                "search: %s and %s were built with different parameters",
                                first->name, x->name);
        if (x->codebook.k != first->codebook.k || x->codebook.dim != first->codebook.dim ||
            x->codebook.checksum != first->codebook.checksum)
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                "search: %s and %s were built with different codebooks",
                                first->name, x->name);
    }
    if (p0->asmk.use_idf && n_shards > 1 && !o.allow_local_idf)
        return sf_error_set(err, SF_ERR_UNSUPPORTED,
                            "search: %s and %zu more shards use idf, which each shard computes "
                            "over its own images: their scores do not combine into those of "
                            "one index", first->name, n_shards - 1);

    sf_index_searcher *s = calloc(1, sizeof *s);
    if (!s)
        return sf_error_set(err, SF_ERR_NOMEM, "search: out of memory");
    s->n_shards = n_shards;
    s->params = *p0;
    s->k = first->codebook.k;
    s->dim = first->codebook.dim;
    s->vec_bytes = first->vec_bytes;
    s->n_u32 = sf_asmk_packed_size((size_t)s->dim);
    s->shards = malloc(n_shards * sizeof *s->shards);
    s->base = malloc((n_shards + 1) * sizeof *s->base);
    if (!s->shards || !s->base) {
        sf_index_searcher_free(s);
        return sf_error_set(err, SF_ERR_NOMEM, "search: out of memory");
    }
    s->seg_base = malloc((n_shards + 1) * sizeof *s->seg_base);
    if (!s->seg_base) {
        sf_index_searcher_free(s);
        return sf_error_set(err, SF_ERR_NOMEM, "search: out of memory");
    }
    s->base[0] = 0;
    s->seg_base[0] = 0;
    for (size_t i = 0; i < n_shards; i++) {
        s->shards[i] = shards[i];
        s->base[i + 1] = s->base[i] + shards[i]->n_slots;
        s->seg_base[i + 1] = s->seg_base[i] + shards[i]->n_segments;
    }
    s->n_segs = s->seg_base[n_shards];
    s->kw = (size_t)(s->k + 63) / 64;
    if (s->n_segs > SIZE_MAX / sizeof(uint64_t) / (s->kw + 1) ||
        !(s->checked = calloc(s->n_segs * s->kw + 1, sizeof *s->checked))) {
        sf_index_searcher_free(s);
        return sf_error_set(err, SF_ERR_NOMEM, "search: out of memory");
    }
    if (s->base[n_shards] > SIZE_MAX / sizeof(double)) {
        sf_index_searcher_free(s);
        return sf_error_set(err, SF_ERR_TOO_LARGE, "search: too many images");
    }
    if (s->params.asmk.binary) {
        if (s->n_u32 > 64) {
            unsigned long long dim = s->dim;
            sf_index_searcher_free(s);
            return sf_error_set(err, SF_ERR_UNSUPPORTED,
                                "search: binary vectors of %llu dimensions (at most 2048)", dim);
        }
        s->pw = malloc((32 * s->n_u32 + 1) * sizeof *s->pw);
        s->keep = malloc((32 * s->n_u32 + 1) * sizeof *s->keep);
        if (!s->pw || !s->keep) {
            sf_index_searcher_free(s);
            return sf_error_set(err, SF_ERR_NOMEM, "search: out of memory");
        }
        tabulate(&s->params.asmk, s->n_u32, s->pw, s->keep);
        s->kernel = pick_kernel();
    }
    s->threads = sf_threads_resolve(o.threads);
    s->explicit_threads = o.threads > 0;
    s->tile = o.tile ? o.tile : TILE_IMAGES;
    s->prefetch_min = CELL_PREFETCH_MIN;
    if (s->threads > 256)
        s->threads = 256;
    *out = s;
    return SF_OK;
}

void sf_index_searcher_free(sf_index_searcher *s)
{
    if (!s)
        return;
    free(s->shards);
    free(s->base);
    free(s->scores);
    free(s->pw);
    free(s->keep);
    free(s->key_table);
    free(s->seg_base);
    free(s->checked);
    free(s);
}

size_t sf_index_searcher_n_ids(const sf_index_searcher *s) { return (size_t)s->base[s->n_shards]; }

/* ---- One query ---- */

typedef struct job {
    const sf_index_searcher *s;
    const sf_asmk_agg *q;
    const double *qdiv; /* per shard: sqrt(q_norm), or 0 for no division */
    double *scores;
    uint64_t lo, hi;    /* global ids of this job */
    float *tab;         /* binary with idf: per-word values */
    cell *cells;        /* binary: the images of one tile */
    uint32_t *tmp;      /* float kernel: ids of one range */
    size_t tmp_cap;
    uint64_t *next, *end; /* per query word and segment: the list piece left */
    size_t cursor_cap;
    /* Over the lists it reads (those not checked before): the weighted
     * sums of the entries it scored, less those the lists' directory
     * entries give, for the lists it starts.  Between them the jobs read
     * each list whole once, so the totals of all jobs are 0 unless some
     * list differs from its sums (see list_weight). */
    uint64_t d; /* of ids and vectors together: ix_entries_sum_of */
    sf_status st;
    sf_error err;
} job;

/* The same, starting from a guess and galloping outwards: the images of a
 * list are spread evenly, so the guess is close and the search reads a
 * few neighbouring cache lines instead of log2(n) scattered ones. */
static uint64_t lower_bound_from(const uint32_t *ids, uint64_t lo, uint64_t hi, uint32_t v,
                                 uint64_t g)
{
    if (lo >= hi)
        return lo;
    if (g >= hi)
        g = hi - 1;
    if (g < lo)
        g = lo;
    uint64_t l, r, step = 1;
    if (ids[g] < v) { /* the answer is in (g, hi] */
        l = g + 1;
        r = l + step < hi ? l + step : hi;
        while (r < hi && ids[r - 1] < v) {
            l = r;
            step *= 2;
            r = hi - l > step ? l + step : hi;
        }
    } else { /* in [lo, g] */
        r = g;
        l = r - lo > step ? r - step : lo;
        while (l > lo && ids[l] >= v) {
            r = l;
            step *= 2;
            l = r - lo > step ? r - step : lo;
        }
    }
    return sf_lower_bound_u32(ids, l, r, v);
}

/* Start loading what a later query word will need: PREFETCH_DIR words
 * ahead its directory entry, PREFETCH_LIST words ahead the head of its
 * list piece (the hardware streams the rest of a long one). */
static void prefetch_dir(const ix_segment *seg, uint64_t w)
{
    __builtin_prefetch(seg->dir + seg->dir_stride * w);
}

/* The first entries of [e, end) of a list. */
static void prefetch_piece(const ix_segment *seg, uint64_t e, uint64_t end, uint64_t vec_bytes)
{
    uint64_t n = end - e < PREFETCH_ENTRIES ? end - e : PREFETCH_ENTRIES;
    const unsigned char *ids = (const unsigned char *)(seg->ids + e);
    const unsigned char *vecs = seg->vecs + e * vec_bytes;
    for (uint64_t off = 0; off < 4 * n; off += 64)
        __builtin_prefetch(ids + off);
    for (uint64_t off = 0; off < vec_bytes * n; off += 64)
        __builtin_prefetch(vecs + off);
}

static void prefetch_list(const ix_segment *seg, uint64_t w, uint32_t a, uint64_t vec_bytes)
{
    uint64_t o0 = ix_dir_start(seg, w), o1 = ix_dir_start(seg, w + 1);
    if (o0 >= o1 || o1 > seg->n_entries)
        return;
    uint64_t n_img = seg->n_images ? seg->n_images : 1;
    uint64_t g = o0 + (uint64_t)((double)(o1 - o0) * a / (double)n_img);
    if (g >= o1)
        g = o1 - 1;
    prefetch_piece(seg, g, o1, vec_bytes);
}

/* An odd multiplier per list (word w of the segment numbered g among all
 * shards'), so that differences in several lists do not cancel out in a
 * job's totals (entries moved from one list to the next would, with equal
 * weights) except by chance. */
static uint64_t list_weight(uint64_t w, size_t g)
{
    return 2 * ((w + 1) * UINT64_C(0x9E3779B97F4A7C15) + (uint64_t)g * UINT64_C(0xD6E8FEB86659FD93)) + 1;
}

/* Add the sums of the n entries from e0 just scored (still in cache) with
 * weight r, unless r is 0: a list already checked, or without sums. */
static void add_sums(job *j, const ix_segment *seg, uint64_t e0, size_t n, uint64_t r)
{
    if (r == 0 || n == 0)
        return;
    j->d += r * ix_entries_sum_of(seg->ids, seg->vecs, e0, e0 + n, j->s->vec_bytes);
}

/* Score the entries of images [a, b) (numbered in the segment) of word
 * qi's list in seg, continuing where the previous tile stopped: *next and
 * *end (UINT64_MAX: not located yet) hold the rest of the list. */
static sf_status score_range(job *j, const sf_index *idx, const ix_segment *seg, size_t qi,
                             uint32_t a, uint32_t b, double *out, cell *cells, const float *tab,
                             float idf, uint64_t *next, uint64_t *end, uint64_t r)
{
    const sf_index_searcher *s = j->s;
    if (*next == UINT64_MAX) {
        uint64_t o0, o1;
        sf_status st = ix_word_range(idx, seg, (uint64_t)j->q->words[qi], &o0, &o1, &j->err);
        if (st != SF_OK)
            return st;
        /* The first tile of a job that starts inside the segment searches;
         * the others go on from there. */
        uint64_t g = o0 + (uint64_t)((double)(o1 - o0) * a / (double)seg->n_images);
        *next = a == 0 ? o0 : lower_bound_from(seg->ids, o0, o1, a, g);
        *end = o1;
        if (a == 0 && r != 0) { /* this job starts the list: it owes its sums */
            uint64_t w = (uint64_t)j->q->words[qi];
            j->d -= r * (ix_dir_id_sum(seg, w) + ix_dir_vec_sum(seg, w));
        }
    }
    const uint64_t e0 = *next;
    const size_t n = (size_t)(*end - e0);
    if (n == 0)
        return SF_OK;
    const unsigned char *vecs = seg->vecs + e0 * s->vec_bytes;
    const uint32_t *ids = seg->ids + e0;
    if (s->params.asmk.binary) {
        size_t m = s->kernel(j->q->packed + qi * s->n_u32, vecs, ids, n, (size_t)s->n_u32, a,
                             b - a, tab, s->keep, s->prefetch_min, cells);
        add_sums(j, seg, e0, m, r);
        *next += m;
        return SF_OK;
    }
    size_t m = 0;
    while (m < n && ids[m] - a < b - a)
        m++;
    if (m == 0)
        return SF_OK;
    if (m > j->tmp_cap) {
        uint32_t *t = realloc(j->tmp, m * sizeof *t);
        if (!t)
            return sf_error_set(&j->err, SF_ERR_NOMEM, "search: out of memory");
        j->tmp = t;
        j->tmp_cap = m;
    }
    for (size_t e = 0; e < m; e++)
        j->tmp[e] = ids[e] - a;
    const double *ns = idx->norm_sqrt + seg->slot_base + a;
    sf_asmk_score_word_float(j->q->vectors + qi * s->dim, (const float *)(const void *)vecs,
                             j->tmp, m, (size_t)s->dim, idf, ns, &s->params.asmk, out);
    add_sums(j, seg, e0, m, r);
    *next += m;
    return SF_OK;
}

static void run_job(job *j)
{
    const sf_index_searcher *s = j->s;
    const size_t bits = 32 * s->n_u32;
    /* The binary kernel's cells start at 0 and are copied out whole. */
    if (!j->cells && j->hi > j->lo)
        memset(j->scores + j->lo, 0, (size_t)(j->hi - j->lo) * sizeof(double));
    for (size_t sh = 0; sh < s->n_shards && j->st == SF_OK; sh++) {
        const sf_index *idx = s->shards[sh];
        uint64_t gb = s->base[sh];
        uint64_t lo = j->lo > gb ? j->lo - gb : 0;
        uint64_t hi = j->hi - gb < idx->n_slots ? j->hi - gb : idx->n_slots;
        if (j->hi <= gb || lo >= hi)
            continue;
        /* Image tiles small enough that their scores and norms stay in
         * the core's cache while every query word's entries for them are
         * added; each list is still read once, a piece per tile. */
        const size_t nq = j->q->n, ns = idx->n_segments;
        if (nq * ns > j->cursor_cap) {
            free(j->next);
            free(j->end);
            j->next = malloc(nq * ns * sizeof *j->next);
            j->end = malloc(nq * ns * sizeof *j->end);
            j->cursor_cap = nq * ns;
            if (!j->next || !j->end) {
                j->cursor_cap = 0;
                j->st = sf_error_set(&j->err, SF_ERR_NOMEM, "search: out of memory");
                break;
            }
        }
        for (size_t c = 0; c < nq * ns; c++)
            j->next[c] = UINT64_MAX;
        for (uint64_t t0 = lo; t0 < hi && j->st == SF_OK; t0 += s->tile) {
            uint64_t t1 = hi - t0 > s->tile ? t0 + s->tile : hi;
            if (j->cells)
                for (uint64_t m = t0; m < t1; m++)
                    j->cells[m - t0] = (cell){ 0.0, idx->norm_sqrt[m] };
            for (size_t qi = 0; qi < nq && j->st == SF_OK; qi++) {
                size_t w = (size_t)j->q->words[qi];
                float idf = idx->idf ? idx->idf[w] : 1.0f;
                const float *tab = s->pw;
                if (s->params.asmk.binary && idx->idf) {
                    for (size_t h = 0; h <= bits; h++)
                        j->tab[h] = s->pw[h] * idf;
                    tab = j->tab;
                }
                for (size_t g = 0; g < ns && j->st == SF_OK; g++) {
                    const ix_segment *seg = &idx->segs[g];
                    uint64_t sb = seg->slot_base, se = sb + seg->n_images;
                    uint64_t a = t0 > sb ? t0 : sb, b = t1 < se ? t1 : se;
                    if (a >= b)
                        continue;
                    if (t0 == lo && qi + PREFETCH_DIR < nq)
                        prefetch_dir(seg, (uint64_t)j->q->words[qi + PREFETCH_DIR]);
                    if (qi + PREFETCH_LIST < nq) {
                        size_t c = (qi + PREFETCH_LIST) * ns + g;
                        if (j->next[c] == UINT64_MAX)
                            prefetch_list(seg, (uint64_t)j->q->words[qi + PREFETCH_LIST],
                                          (uint32_t)(a - sb), s->vec_bytes);
                        else if (j->next[c] < j->end[c])
                            prefetch_piece(seg, j->next[c], j->end[c], s->vec_bytes);
                    }
                    const size_t flat = s->seg_base[sh] + g;
                    uint64_t r = seg->version >= 2 && !list_checked(s, flat, w)
                                     ? list_weight(w, flat)
                                     : 0;
                    j->st = score_range(j, idx, seg, qi, (uint32_t)(a - sb),
                                        (uint32_t)(b - sb), j->scores + gb + a,
                                        j->cells ? j->cells + (a - t0) : NULL, tab, idf,
                                        &j->next[qi * ns + g], &j->end[qi * ns + g], r);
                }
            }
            if (j->cells)
                for (uint64_t m = t0; m < t1; m++)
                    j->scores[gb + m] = j->cells[m - t0].score;
        }
        if (j->st != SF_OK) /* the scores are not all written: the query fails */
            break;
        for (uint64_t m = lo; m < hi; m++) {
            double *x = &j->scores[gb + m];
            if (!ix_live(idx->live, m))
                *x = NAN;
            else if (j->qdiv[sh] > 0.0)
                *x /= j->qdiv[sh];
        }
    }
}

static void job_thread(void *jobs, size_t t)
{
    run_job((job *)jobs + t);
}

static sf_status check_query(const sf_index_searcher *s, const sf_asmk_agg *q, sf_error *err)
{
    if (q->n == 0)
        return SF_OK;
    if (q->dim != s->dim || (q->binary != 0) != (s->params.asmk.binary != 0) ||
        (q->binary ? !q->packed : !q->vectors) || !q->words)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "search: %s query vectors of dimension %zu for a %s index of "
                            "dimension %llu", q->binary ? "binary" : "float", q->dim,
                            s->params.asmk.binary ? "binary" : "float",
                            (unsigned long long)s->dim);
    for (size_t i = 0; i < q->n; i++)
        if (q->words[i] < 0 || (uint64_t)q->words[i] >= s->k)
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                "search: query vector %zu has word %ld outside 0..%llu", i,
                                (long)q->words[i], (unsigned long long)s->k - 1);
    return SF_OK;
}

/* Per shard: sqrt of the query's normaliser (its vectors, or the sum of
 * their idf), or 0 for none. */
static void query_divisors(const sf_index_searcher *s, const sf_asmk_agg *q, double *qdiv)
{
    for (size_t sh = 0; sh < s->n_shards; sh++) {
        const sf_index *idx = s->shards[sh];
        double q_norm = 0.0;
        for (size_t i = 0; i < q->n; i++)
            q_norm += idx->idf ? idx->idf[q->words[i]] : 1.0f;
        qdiv[sh] = q_norm > 0.0 ? sqrt(q_norm) : 0.0;
    }
}

/* Rough number of list entries the query visits, to decide on threads. */
static uint64_t estimate_work(const sf_index_searcher *s, const sf_asmk_agg *q)
{
    uint64_t total = 0;
    for (size_t sh = 0; sh < s->n_shards; sh++) {
        const sf_index *idx = s->shards[sh];
        for (size_t g = 0; g < idx->n_segments; g++)
            for (size_t i = 0; i < q->n; i++) {
                uint64_t w = (uint64_t)q->words[i];
                uint64_t a = ix_dir_start(&idx->segs[g], w), b = ix_dir_start(&idx->segs[g], w + 1);
                total += b > a ? b - a : 0;
            }
    }
    return total;
}

/* The jobs' totals are 0 when every list read matches its sums.  If not,
 * each list is checked alone to name the damaged one.  Then the lists
 * are marked checked for the searcher's next queries. */
static sf_status check_sums(sf_index_searcher *s, const sf_asmk_agg *q, const job *jobs,
                            int nt, sf_error *err)
{
    uint64_t d = 0;
    for (int t = 0; t < nt; t++)
        d += jobs[t].d;
    for (size_t sh = 0; sh < s->n_shards; sh++) {
        const sf_index *idx = s->shards[sh];
        for (size_t g = 0; g < idx->n_segments; g++) {
            const size_t flat = s->seg_base[sh] + g;
            for (size_t qi = 0; qi < q->n; qi++) {
                uint64_t w = (uint64_t)q->words[qi];
                if (d == 0)
                    set_list_checked(s, flat, w);
                else if (!list_checked(s, flat, w)) {
                    sf_status st = ix_check_list(idx, &idx->segs[g], w, 1, err);
                    if (st != SF_OK)
                        return st;
                }
            }
        }
    }
    if (d != 0) /* each list matches, yet they were misread */
        return sf_error_set(err, SF_ERR_CHECKSUM,
                            "%s: the lists a search read do not add up to their checksums "
                            "(the index is damaged)", s->shards[0]->name);
    return SF_OK;
}

sf_status sf_index_searcher_scores(sf_index_searcher *s, const sf_asmk_agg *q, double *scores,
                                   sf_error *err)
{
    sf_status st = check_query(s, q, err);
    if (st != SF_OK)
        return st;
    const uint64_t total = s->base[s->n_shards];
    double *qdiv = malloc(s->n_shards * sizeof *qdiv);
    if (!qdiv)
        return sf_error_set(err, SF_ERR_NOMEM, "search: out of memory");
    query_divisors(s, q, qdiv);

    /* Threads asked for are used; by default only where they pay. */
    int nt = s->threads;
    if (!s->explicit_threads && ((uint64_t)nt > total / 4096 ||
                                 estimate_work(s, q) < PARALLEL_MIN_ENTRIES))
        nt = 1;
    if ((uint64_t)nt > total)
        nt = (int)total;
    if (nt < 1)
        nt = 1;
    job *jobs = calloc((size_t)nt, sizeof *jobs);
    st = SF_OK;
    if (!jobs)
        st = sf_error_set(err, SF_ERR_NOMEM, "search: out of memory");
    for (int t = 0; st == SF_OK && t < nt; t++) {
        job *j = &jobs[t];
        j->s = s;
        j->q = q;
        j->qdiv = qdiv;
        j->scores = scores;
        j->lo = total * (uint64_t)t / (uint64_t)nt;
        j->hi = total * (uint64_t)(t + 1) / (uint64_t)nt;
        if (s->params.asmk.binary) {
            uint64_t span = j->hi - j->lo < s->tile ? j->hi - j->lo : s->tile;
            j->tab = malloc((32 * s->n_u32 + 1) * sizeof *j->tab);
            j->cells = malloc((size_t)(span ? span : 1) * sizeof *j->cells);
            if (!j->tab || !j->cells)
                st = sf_error_set(err, SF_ERR_NOMEM, "search: out of memory");
        }
    }
    if (st == SF_OK)
        sf_threads_run((size_t)nt, job_thread, jobs);
    for (int t = 0; jobs && t < nt; t++) {
        if (st == SF_OK && jobs[t].st != SF_OK) {
            st = jobs[t].st;
            if (err)
                *err = jobs[t].err;
        }
    }
    if (st == SF_OK)
        st = check_sums(s, q, jobs, nt, err);
    for (int t = 0; jobs && t < nt; t++) {
        free(jobs[t].tab);
        free(jobs[t].cells);
        free(jobs[t].tmp);
        free(jobs[t].next);
        free(jobs[t].end);
    }
    free(jobs);
    free(qdiv);
    return st;
}

/* ---- A few images ---- */

static size_t shard_of(const sf_index_searcher *s, uint64_t gid)
{
    size_t lo = 0, hi = s->n_shards;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->base[mid] <= gid)
            lo = mid;
        else
            hi = mid;
    }
    while (lo + 1 < s->n_shards && gid >= s->base[lo + 1])
        lo++;
    return lo;
}

/* Add word qi's entry for image local (segment-local) at list position e
 * to *acc, with the arithmetic of the full search. */
static void score_entry(const sf_index_searcher *s, const sf_index *idx, const ix_segment *seg,
                        const sf_asmk_agg *q, size_t qi, const float *tab, float idf,
                        uint64_t e, uint32_t local, double *acc)
{
    const double *ns = idx->norm_sqrt + seg->slot_base + local;
    const unsigned char *vec = seg->vecs + e * s->vec_bytes;
    if (s->params.asmk.binary) {
        cell c = { *acc, *ns };
        s->kernel(q->packed + qi * s->n_u32, vec, &seg->ids[e], 1, (size_t)s->n_u32, local, 1,
                  tab, s->keep, s->prefetch_min, &c);
        *acc = c.score;
    } else {
        const uint32_t zero = 0;
        sf_asmk_score_word_float(q->vectors + qi * s->dim, (const float *)(const void *)vec,
                                 &zero, 1, (size_t)s->dim, idf, ns, &s->params.asmk, acc);
    }
}

/* The live candidates loc[0 .. n) of one segment (ascending, local ids)
 * against each query word's list, in query order, so that each image
 * adds up as run_job adds it.  A list short next to the candidates is
 * read through alongside them; a longer one is galloped through from
 * candidate to candidate; in a much longer one each candidate is looked
 * up from where its image should be, a probe or two. */
static sf_status score_segment(sf_index_searcher *s, const sf_index *idx,
                               const ix_segment *seg, size_t flat, const sf_asmk_agg *q,
                               const uint32_t *loc, size_t n, float *tab, double *acc,
                               sf_error *err)
{
    const size_t bits = 32 * s->n_u32;
    for (size_t qi = 0; qi < q->n; qi++) {
        uint64_t o0, o1, w = (uint64_t)q->words[qi];
        sf_status st = ix_word_range(idx, seg, w, &o0, &o1, err);
        if (st != SF_OK)
            return st;
        /* Only a few entries are read, but where depends on the rest:
         * the whole list is checked, once per searcher. */
        if (!list_checked(s, flat, w)) {
            st = ix_check_list(idx, seg, w, 1, err);
            if (st != SF_OK)
                return st;
            set_list_checked(s, flat, w);
        }
        if (o0 == o1)
            continue;
        float idf = idx->idf ? idx->idf[q->words[qi]] : 1.0f;
        const float *t = s->pw;
        if (s->params.asmk.binary && idx->idf) {
            for (size_t h = 0; h <= bits; h++)
                tab[h] = s->pw[h] * idf;
            t = tab;
        }
        const uint32_t *ids = seg->ids;
        uint64_t e = o0;
        size_t c = 0;
        if (o1 - o0 <= 8 * (uint64_t)n) {
            while (e < o1 && c < n) {
                if (ids[e] < loc[c])
                    e++;
                else if (ids[e] > loc[c])
                    c++;
                else {
                    score_entry(s, idx, seg, q, qi, t, idf, e, loc[c], &acc[c]);
                    e++;
                    c++;
                }
            }
        } else if (o1 - o0 <= 64 * (uint64_t)n) {
            /* Gallop from one candidate to the next, a few lines on. */
            for (; c < n && e < o1; c++) {
                e = lower_bound_from(ids, e, o1, loc[c], e);
                if (e < o1 && ids[e] == loc[c])
                    score_entry(s, idx, seg, q, qi, t, idf, e, loc[c], &acc[c]);
            }
        } else {
            /* Far apart: images spread evenly over a list, so each search
             * starts where its image should be, fetched a few candidates
             * ahead; the searches do not wait on each other. */
            const double per_image = (double)(o1 - o0) / (double)seg->n_images;
            for (size_t p = 0; p < n && p < SUBSET_PREFETCH; p++)
                __builtin_prefetch(ids + o0 + (uint64_t)(per_image * loc[p]));
            for (; c < n; c++) {
                if (c + SUBSET_PREFETCH < n)
                    __builtin_prefetch(ids + o0 +
                                       (uint64_t)(per_image * loc[c + SUBSET_PREFETCH]));
                uint64_t g = o0 + (uint64_t)(per_image * loc[c]);
                e = lower_bound_from(ids, o0, o1, loc[c], g);
                if (e < o1 && ids[e] == loc[c])
                    score_entry(s, idx, seg, q, qi, t, idf, e, loc[c], &acc[c]);
            }
        }
    }
    return SF_OK;
}

typedef struct subset_item {
    uint64_t gid;
    size_t pos; /* in the caller's list */
} subset_item;

static int by_gid(const void *a, const void *b)
{
    const subset_item *x = a, *y = b;
    if (x->gid != y->gid)
        return x->gid < y->gid ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

sf_status sf_index_searcher_scores_subset(sf_index_searcher *s, const sf_asmk_agg *q,
                                          const size_t *global_ids, size_t n, double *scores,
                                          sf_error *err)
{
    sf_status st = check_query(s, q, err);
    if (st != SF_OK)
        return st;
    const uint64_t total = s->base[s->n_shards];
    for (size_t i = 0; i < n; i++)
        if ((uint64_t)global_ids[i] >= total)
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                "search: image %zu of %llu", global_ids[i],
                                (unsigned long long)total);
    if (n == 0)
        return SF_OK;
    double *qdiv = malloc(s->n_shards * sizeof *qdiv);
    float *tab = malloc((32 * s->n_u32 + 1) * sizeof *tab);
    subset_item *item = malloc(n * sizeof *item);
    uint32_t *loc = malloc(n * sizeof *loc);
    double *acc = malloc(n * sizeof *acc);
    size_t *first = malloc(n * sizeof *first); /* item index of each distinct live image */
    if (!qdiv || !tab || !item || !loc || !acc || !first) {
        st = sf_error_set(err, SF_ERR_NOMEM, "search: out of memory");
        goto done;
    }
    query_divisors(s, q, qdiv);
    for (size_t i = 0; i < n; i++)
        item[i] = (subset_item){ global_ids[i], i };
    qsort(item, n, sizeof *item, by_gid);
    /* Runs of candidates in one segment, each image once. */
    for (size_t a = 0; a < n && st == SF_OK;) {
        const size_t sh = shard_of(s, item[a].gid);
        const sf_index *idx = s->shards[sh];
        const ix_segment *seg = ix_segment_of(idx, item[a].gid - s->base[sh]);
        if (!seg) {
            st = sf_error_set(err, SF_ERR_FORMAT, "%s: image %llu has no segment", idx->name,
                              (unsigned long long)(item[a].gid - s->base[sh]));
            break;
        }
        const uint64_t g0 = s->base[sh] + seg->slot_base, g1 = g0 + seg->n_images;
        size_t b = a, m = 0;
        for (; b < n && item[b].gid < g1; b++) {
            uint64_t slot = item[b].gid - s->base[sh];
            if (!ix_live(idx->live, slot)) {
                scores[item[b].pos] = NAN;
                continue;
            }
            if (m > 0 && item[first[m - 1]].gid == item[b].gid)
                continue; /* the same image again: copied below */
            first[m] = b;
            loc[m] = (uint32_t)(item[b].gid - g0);
            acc[m] = 0.0;
            m++;
        }
        st = score_segment(s, idx, seg, s->seg_base[sh] + (size_t)(seg - idx->segs), q, loc, m,
                           tab, acc, err);
        for (size_t j = 0; j < m && st == SF_OK; j++) {
            double v = qdiv[sh] > 0.0 ? acc[j] / qdiv[sh] : acc[j];
            for (size_t i = first[j]; i < b && item[i].gid == item[first[j]].gid; i++)
                scores[item[i].pos] = v;
        }
        a = b;
    }
done:
    free(qdiv);
    free(tab);
    free(item);
    free(loc);
    free(acc);
    free(first);
    return st;
}

static uint64_t key_hash(const char *key, size_t len)
{
    return (uint64_t)XXH3_64bits(key, len);
}

static sf_status build_key_table(sf_index_searcher *s, sf_error *err)
{
    uint64_t live = 0;
    for (size_t sh = 0; sh < s->n_shards; sh++)
        live += s->shards[sh]->n_live;
    uint64_t size = 16;
    while (size < 2 * live)
        size *= 2;
    s->key_table = calloc((size_t)size, sizeof *s->key_table);
    if (!s->key_table)
        return sf_error_set(err, SF_ERR_NOMEM, "search: out of memory for %llu keys",
                            (unsigned long long)live);
    s->key_mask = size - 1;
    for (size_t sh = 0; sh < s->n_shards; sh++) {
        const sf_index *idx = s->shards[sh];
        for (uint64_t m = 0; m < idx->n_slots; m++) {
            if (!ix_live(idx->live, m))
                continue;
            sf_index_image im;
            sf_status st = sf_index_get_image(idx, (size_t)m, &im, err);
            if (st != SF_OK) {
                free(s->key_table);
                s->key_table = NULL;
                return st;
            }
            uint64_t h = key_hash(im.key, im.key_len) & s->key_mask;
            while (s->key_table[h])
                h = (h + 1) & s->key_mask;
            s->key_table[h] = s->base[sh] + m + 1;
        }
    }
    return SF_OK;
}

sf_status sf_index_searcher_key(const sf_index_searcher *s, size_t global_id, const char **key,
                                size_t *key_len, sf_error *err)
{
    if ((uint64_t)global_id >= s->base[s->n_shards])
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "search: no image %zu", global_id);
    size_t sh = shard_of(s, global_id);
    sf_index_image im;
    sf_status st = sf_index_get_image(s->shards[sh], (size_t)(global_id - s->base[sh]), &im, err);
    if (st == SF_OK) {
        *key = im.key;
        *key_len = im.key_len;
    }
    return st;
}

sf_status sf_index_searcher_find(sf_index_searcher *s, const char *key, size_t key_len,
                                 size_t *global_id, sf_error *err)
{
    if (!s->key_table) {
        sf_status st = build_key_table(s, err);
        if (st != SF_OK)
            return st;
    }
    /* The first shard holding the key was inserted first, so it is met
     * first along the probe sequence. */
    for (uint64_t h = key_hash(key, key_len) & s->key_mask; s->key_table[h];
         h = (h + 1) & s->key_mask) {
        const char *k;
        size_t len;
        size_t gid = (size_t)(s->key_table[h] - 1);
        sf_status st = sf_index_searcher_key(s, gid, &k, &len, err);
        if (st != SF_OK)
            return st;
        if (len == key_len && memcmp(k, key, len) == 0) {
            *global_id = gid;
            return SF_OK;
        }
    }
    return sf_error_set(err, SF_ERR_NOT_FOUND, "no image " SF_KEY_FMT " in the index",
                        SF_KEY_ARGS(key, key_len));
}

sf_status sf_index_searcher_search(sf_index_searcher *s, const sf_asmk_agg *q, size_t top_k,
                                   sf_index_hit *hits, size_t *n_hits, sf_error *err)
{
    *n_hits = 0;
    const uint64_t total = s->base[s->n_shards];
    if (!s->scores && total > 0) {
        s->scores = malloc((size_t)total * sizeof *s->scores);
        if (!s->scores)
            return sf_error_set(err, SF_ERR_NOMEM, "search: out of memory for %llu scores",
                                (unsigned long long)total);
    }
    sf_status st = sf_index_searcher_scores(s, q, s->scores, err);
    if (st != SF_OK || top_k == 0)
        return st;
    sf_scored *heap = malloc((top_k < total ? top_k : total + 1) * sizeof *heap);
    if (!heap)
        return sf_error_set(err, SF_ERR_NOMEM, "search: out of memory for %zu hits", top_k);
    size_t n = 0;
    for (size_t sh = 0; sh < s->n_shards; sh++) {
        const sf_index *idx = s->shards[sh];
        for (uint64_t m = 0; m < idx->n_slots; m++) {
            if (!ix_live(idx->live, m))
                continue;
            sf_scored c = { s->scores[s->base[sh] + m], s->base[sh] + m };
            sf_topk_offer(heap, &n, top_k, c);
        }
    }
    sf_topk_sort(heap, n);
    for (size_t i = 0; i < n; i++) {
        sf_scored c = heap[i];
        size_t sh = 0;
        while (c.id >= s->base[sh + 1])
            sh++;
        sf_index_hit *hit = &hits[i];
        hit->shard = sh;
        hit->global_id = (size_t)c.id;
        hit->id = (size_t)(c.id - s->base[sh]);
        hit->score = c.score;
        sf_index_image im;
        st = sf_index_get_image(s->shards[sh], hit->id, &im, err);
        if (st != SF_OK)
            break;
        hit->key = im.key;
        hit->key_len = im.key_len;
    }
    free(heap);
    if (st == SF_OK)
        *n_hits = n;
    return st;
}

sf_status sf_index_search_scores(const sf_index *const *shards, size_t n_shards,
                                 const sf_asmk_agg *query, const sf_index_search_options *opt,
                                 double *scores, sf_error *err)
{
    sf_index_searcher *s;
    sf_status st = sf_index_searcher_create(shards, n_shards, opt, &s, err);
    if (st != SF_OK)
        return st;
    st = sf_index_searcher_scores(s, query, scores, err);
    sf_index_searcher_free(s);
    return st;
}

sf_status sf_index_search(const sf_index *const *shards, size_t n_shards,
                          const sf_asmk_agg *query, const sf_index_search_options *opt,
                          size_t top_k, sf_index_hit *hits, size_t *n_hits, sf_error *err)
{
    *n_hits = 0;
    sf_index_searcher *s;
    sf_status st = sf_index_searcher_create(shards, n_shards, opt, &s, err);
    if (st != SF_OK)
        return st;
    st = sf_index_searcher_search(s, query, top_k, hits, n_hits, err);
    sf_index_searcher_free(s);
    return st;
}
