/* Pictures drawn from stream records: where super-features lie (from their
 * attention maps), match pictures and attention heat maps.  Everything is
 * drawn in plain memory; libvips only resizes photos and encodes files. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <vips/vips.h>

#include "sf_draw.h"
#include "sf_internal.h"

#define KEY_FMT SF_KEY_FMT
#define KEY_ARGS(img) SF_KEY_ARGS((img)->key, (img)->key_len)

/* ---- What an image offers ---- */

/* The record of kind in img, or SF_ERR_NOT_FOUND saying which program
 * option writes it. */
static const sf_record *need(const sf_stream_image *img, int kind, const char *writer,
                             sf_error *err)
{
    const sf_record *rec = sf_stream_image_find(img, kind);
    if (!rec)
        sf_error_set(err, SF_ERR_NOT_FOUND, KEY_FMT ": no %s record (%s writes it)",
                     KEY_ARGS(img), sf_kind_name(kind), writer);
    return rec;
}

#define WRITES_PIXELS "sf-decode --pixels"
#define WRITES_ATTENTION "sf-lit --attention"
#define WRITES_LOCAL "sf-lit"

/* Scales agree when they differ by less than this, relatively: the
 * features' f32 scales, and f16-rounded ones, against the records' f64. */
#define SCALE_TOLERANCE 1e-3

static int same_scale(double a, double b)
{
    return fabs(a - b) <= SCALE_TOLERANCE * fabs(b);
}

/* The attention record of img at this scale; NULL with a message naming
 * the scales held otherwise.  Two of one scale are refused: which map a
 * feature came from would be a guess. */
static const sf_record *attention_at(const sf_stream_image *img, double scale, sf_error *err)
{
    const sf_record *found = NULL;
    char held[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < img->count; i++) {
        const sf_record *r = &img->recs[i];
        if ((r->kind & ~(int)SF_KIND_OPTIONAL) != SF_KIND_ATTENTION)
            continue;
        if (len < sizeof held - 32)
            len += (size_t)snprintf(held + len, sizeof held - len, "%s%g", len ? ", " : "",
                                    r->scale);
        if (!same_scale(r->scale, scale))
            continue;
        if (found) {
            sf_error_set(err, SF_ERR_INVALID_DATA, KEY_FMT ": two attention records of "
                         "scale %g", KEY_ARGS(img), scale);
            return NULL;
        }
        found = r;
    }
    if (!found) {
        if (!len)
            need(img, SF_KIND_ATTENTION, WRITES_ATTENTION, err);
        else
            sf_error_set(err, SF_ERR_INVALID_DATA, KEY_FMT ": no attention record of "
                         "scale %g (it holds %s)", KEY_ARGS(img), scale, held);
    }
    return found;
}

/* Every record kind of `kinds` that img lacks, in one message. */
static sf_status need_all(const sf_stream_image *img, const int *kinds, size_t n, sf_error *err)
{
    char text[600];
    size_t len = 0, missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (sf_stream_image_find(img, kinds[i]))
            continue;
        const char *writer = kinds[i] == SF_KIND_PIXELS      ? WRITES_PIXELS
                             : kinds[i] == SF_KIND_ATTENTION ? WRITES_ATTENTION
                                                             : WRITES_LOCAL;
        if (len < sizeof text - 100)
            len += (size_t)snprintf(text + len, sizeof text - len, "%sno %s record (%s writes "
                                    "it)", missing ? ", " : "", sf_kind_name(kinds[i]), writer);
        missing++;
    }
    if (missing)
        return sf_error_set(err, SF_ERR_NOT_FOUND, KEY_FMT ": %s", KEY_ARGS(img), text);
    return SF_OK;
}

sf_status sf_draw_check_image(const sf_stream_image *img, unsigned needs, sf_error *err)
{
    int kinds[5];
    size_t n = 0;
    if (needs & SF_DRAW_NEED_PIXELS)
        kinds[n++] = SF_KIND_PIXELS;
    if (needs & SF_DRAW_NEED_ATTENTION)
        kinds[n++] = SF_KIND_ATTENTION;
    if (needs & SF_DRAW_NEED_LOCAL) {
        kinds[n++] = SF_KIND_LOCAL_SCALE;
        kinds[n++] = SF_KIND_LOCAL_INDEX;
    }
    if (needs & SF_DRAW_NEED_STRENGTH)
        kinds[n++] = SF_KIND_LOCAL_STRENGTH;
    return need_all(img, kinds, n, err);
}

size_t sf_draw_local_count(const sf_stream_image *img, sf_error *err)
{
    const sf_record *s = need(img, SF_KIND_LOCAL_SCALE, WRITES_LOCAL, err);
    return s ? (size_t)s->shape[0] : 0;
}

/* Where the map's weight lies, in cells: (i, j) fractional column and row
 * of the centre of the cell chosen, or of the weighted mean. */
static sf_status map_point(const float *m, size_t h, size_t w, sf_draw_location how,
                           double *ci, double *cj)
{
    size_t n = h * w;
    if (how == SF_DRAW_CENTROID) {
        double s = 0, si = 0, sj = 0;
        for (size_t k = 0; k < n; k++) {
            double v = m[k];
            s += v;
            si += v * ((double)(k % w) + 0.5);
            sj += v * ((double)(k / w) + 0.5);
        }
        if (!(s > 0))
            return SF_ERR_INVALID_DATA;
        *ci = si / s;
        *cj = sj / s;
        return SF_OK;
    }
    size_t best = 0;
    for (size_t k = 1; k < n; k++)
        if (m[k] > m[best])
            best = k;
    *ci = (double)(best % w) + 0.5;
    *cj = (double)(best / w) + 0.5;
    return SF_OK;
}

sf_status sf_draw_locate(const sf_stream_image *img, sf_draw_location how, double *xy,
                         size_t rows, sf_error *err)
{
    const sf_record *px = need(img, SF_KIND_PIXELS, WRITES_PIXELS, err);
    const sf_record *sc = px ? need(img, SF_KIND_LOCAL_SCALE, WRITES_LOCAL, err) : NULL;
    const sf_record *ix = sc ? need(img, SF_KIND_LOCAL_INDEX, WRITES_LOCAL, err) : NULL;
    if (!ix)
        return err->status;
    if (sc->shape[0] != rows || ix->shape[0] != rows)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, KEY_FMT ": %llu local features, "
                            "not %zu", KEY_ARGS(img), (unsigned long long)sc->shape[0], rows);
    const double W = (double)px->shape[1], H = (double)px->shape[0];
    const float *scale = sc->data;
    const int32_t *index = ix->data;
    const sf_record *att = NULL;
    for (size_t k = 0; k < rows; k++) {
        if (!att || !same_scale(att->scale, scale[k])) {
            att = attention_at(img, scale[k], err);
            if (!att)
                return err->status;
        }
        size_t h = (size_t)att->shape[1], w = (size_t)att->shape[2];
        if (index[k] < 0 || (uint64_t)index[k] >= att->shape[0])
            return sf_error_set(err, SF_ERR_INVALID_DATA, KEY_FMT ": local feature %zu is "
                                "of template %ld, but the attention record of scale %g holds "
                                "%llu maps", KEY_ARGS(img), k, (long)index[k], att->scale,
                                (unsigned long long)att->shape[0]);
        const float *m = (const float *)att->data + (size_t)index[k] * h * w;
        double ci, cj;
        if (map_point(m, h, w, how, &ci, &cj) != SF_OK)
            return sf_error_set(err, SF_ERR_INVALID_DATA, KEY_FMT ": map %ld of scale %g "
                                "has no positive weight", KEY_ARGS(img), (long)index[k],
                                att->scale);
        xy[2 * k] = ci * W / (double)w;
        xy[2 * k + 1] = cj * H / (double)h;
    }
    return SF_OK;
}

/* ---- Colours ---- */

void sf_draw_ramp(double t, uint8_t rgb[3])
{
    static const double stops[6][3] = {
        { 0, 0, 128 }, { 0, 0, 255 }, { 0, 255, 255 }, { 0, 255, 0 }, { 255, 255, 0 },
        { 255, 0, 0 },
    };
    if (!(t > 0))
        t = 0;
    if (t > 1)
        t = 1;
    double p = t * 5;
    int i = (int)p;
    if (i > 4)
        i = 4;
    double f = p - i;
    for (int c = 0; c < 3; c++)
        rgb[c] = (uint8_t)lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]));
}

/* ---- A canvas ---- */

typedef struct canvas {
    int w, h;
    uint8_t *p;
} canvas;

static void put(canvas *c, int x, int y, const uint8_t rgb[3])
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return;
    memcpy(c->p + 3 * ((size_t)y * (size_t)c->w + (size_t)x), rgb, 3);
}

/* Every pixel whose centre lies within r of (cx, cy). */
static void disc(canvas *c, double cx, double cy, double r, const uint8_t rgb[3])
{
    int x0 = (int)floor(cx - r), x1 = (int)ceil(cx + r);
    int y0 = (int)floor(cy - r), y1 = (int)ceil(cy + r);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
            if (dx * dx + dy * dy <= r * r)
                put(c, x, y, rgb);
        }
}

/* A line of this width: discs of half the width every quarter pixel,
 * the pixel under each point of the segment at least. */
static void line(canvas *c, double x0, double y0, double x1, double y1, int width,
                 const uint8_t rgb[3])
{
    double len = hypot(x1 - x0, y1 - y0);
    int steps = (int)ceil(len * 4) + 1;
    double r = width / 2.0;
    for (int s = 0; s <= steps; s++) {
        double t = (double)s / steps, x = x0 + t * (x1 - x0), y = y0 + t * (y1 - y0);
        put(c, (int)floor(x), (int)floor(y), rgb);
        disc(c, x, y, r, rgb);
    }
}

/* Copy a w x h RGB image into the canvas at (x, y). */
static void blit(canvas *c, const uint8_t *src, int w, int h, int x, int y)
{
    for (int j = 0; j < h; j++)
        memcpy(c->p + 3 * ((size_t)(y + j) * (size_t)c->w + (size_t)x),
               src + 3 * (size_t)j * (size_t)w, 3 * (size_t)w);
}

#define BACKGROUND 48
/* The largest picture drawn, in pixels: 2^28 (768 MiB of RGB). */
#define MAX_CANVAS ((uint64_t)1 << 28)

static sf_status canvas_make(canvas *c, uint64_t w, uint64_t h, sf_error *err)
{
    if (w == 0 || h == 0 || w > INT32_MAX || h > INT32_MAX || w * h > MAX_CANVAS)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "a picture of %llux%llu pixels is too "
                            "large (at most %llu pixels)", (unsigned long long)w,
                            (unsigned long long)h, (unsigned long long)MAX_CANVAS);
    c->w = (int)w;
    c->h = (int)h;
    c->p = malloc((size_t)(w * h * 3));
    if (!c->p)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory for a %dx%d picture", c->w, c->h);
    memset(c->p, BACKGROUND, (size_t)(w * h * 3));
    return SF_OK;
}

/* ---- Photos ---- */

/* The pixels record of img at this height (0: as stored): *out points to
 * the record's pixels, or to *owned, malloc'd. */
static sf_status photo(const sf_stream_image *img, int height, const uint8_t **out, int *w,
                       int *h, uint8_t **owned, sf_error *err)
{
    *owned = NULL;
    const sf_record *px = need(img, SF_KIND_PIXELS, WRITES_PIXELS, err);
    if (!px)
        return err->status;
    int sw = (int)px->shape[1], sh = (int)px->shape[0];
    if (px->shape[1] > INT32_MAX || px->shape[0] > INT32_MAX)
        return sf_error_set(err, SF_ERR_TOO_LARGE, KEY_FMT ": pixels too large", KEY_ARGS(img));
    if (height <= 0 || height == sh) {
        *out = px->data;
        *w = sw;
        *h = sh;
        return SF_OK;
    }
    double f = (double)height / sh;
    double nw = floor(sw * f + 0.5);
    if (nw < 1)
        nw = 1;
    if (nw * height > (double)MAX_CANVAS)
        return sf_error_set(err, SF_ERR_TOO_LARGE, KEY_FMT ": %d pixels high would be %.0f "
                            "wide, too large", KEY_ARGS(img), height, nw);
    sf_status st = sf_image_library_init(err);
    if (st != SF_OK)
        return st;
    VipsImage *in = vips_image_new_from_memory(px->data, (size_t)px->data_size, sw, sh, 3,
                                               VIPS_FORMAT_UCHAR);
    VipsImage *r = NULL, *c = NULL;
    if (!in || vips_resize(in, &r, nw / sw, "vscale", (double)height / sh, NULL) ||
        vips_embed(r, &c, 0, 0, (int)nw, height, "extend", VIPS_EXTEND_COPY, NULL)) {
        if (in)
            g_object_unref(in);
        if (r)
            g_object_unref(r);
        st = sf_error_set(err, SF_ERR_UNSUPPORTED, KEY_FMT ": cannot resize the pixels: %s",
                          KEY_ARGS(img), vips_error_buffer());
        vips_error_clear();
        return st;
    }
    g_object_unref(in);
    g_object_unref(r);
    size_t size = 0;
    void *data = vips_image_write_to_memory(c, &size);
    g_object_unref(c);
    if (!data || size != (size_t)nw * (size_t)height * 3) {
        g_free(data);
        return sf_error_set(err, SF_ERR_NOMEM, KEY_FMT ": out of memory resizing the pixels",
                            KEY_ARGS(img));
    }
    *owned = malloc(size);
    if (!*owned) {
        g_free(data);
        return sf_error_set(err, SF_ERR_NOMEM, KEY_FMT ": out of memory", KEY_ARGS(img));
    }
    memcpy(*owned, data, size);
    g_free(data);
    *out = *owned;
    *w = (int)nw;
    *h = height;
    return SF_OK;
}

/* ---- The match picture ---- */

void sf_draw_match_options_init(sf_draw_match_options *o)
{
    memset(o, 0, sizeof *o);
    o->location = SF_DRAW_PEAK;
    o->line_width = 2;
}

/* Locations of all local features of img, malloc'd in *xy. */
static sf_status locate_all(const sf_stream_image *img, sf_draw_location how, double **xy,
                            size_t *rows, sf_error *err)
{
    static const int kinds[] = { SF_KIND_PIXELS, SF_KIND_ATTENTION, SF_KIND_LOCAL_SCALE,
                                 SF_KIND_LOCAL_INDEX };
    *xy = NULL;
    *rows = 0;
    if (need_all(img, kinds, sizeof kinds / sizeof kinds[0], err) != SF_OK)
        return err->status;
    *rows = sf_draw_local_count(img, err);
    if (!*rows)
        return sf_stream_image_find(img, SF_KIND_LOCAL_SCALE) ? SF_OK : err->status;
    *xy = malloc(*rows * 2 * sizeof **xy);
    if (!*xy)
        return sf_error_set(err, SF_ERR_NOMEM, KEY_FMT ": out of memory", KEY_ARGS(img));
    sf_status st = sf_draw_locate(img, how, *xy, *rows, err);
    if (st != SF_OK) {
        free(*xy);
        *xy = NULL;
    }
    return st;
}

static double cosine(const float *a, const float *b, size_t d)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < d; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

/* Do pairs and sim belong to these images: rows in range, and the
 * similarities those of their descriptors (when both hold them)? */
static sf_status check_pairs(const sf_stream_image *a, size_t na, const sf_stream_image *b,
                             size_t nb, const int32_t *pairs, const float *sim, size_t n,
                             sf_error *err)
{
    const sf_record *da = sf_stream_image_find(a, SF_KIND_LOCAL_DESC);
    const sf_record *db = sf_stream_image_find(b, SF_KIND_LOCAL_DESC);
    int descs = da && db && da->shape[1] == db->shape[1] && da->shape[0] == na &&
                db->shape[0] == nb;
    for (size_t i = 0; i < n; i++) {
        int32_t ra = pairs[2 * i], rb = pairs[2 * i + 1];
        if (ra < 0 || (size_t)ra >= na || rb < 0 || (size_t)rb >= nb)
            return sf_error_set(err, SF_ERR_MISMATCH, "match %zu pairs local features %ld "
                                "and %ld, but " KEY_FMT " has %zu and " KEY_FMT " %zu: the "
                                "feature streams are not the ones that were matched", i,
                                (long)ra, (long)rb, KEY_ARGS(a), na, KEY_ARGS(b), nb);
        if (!isfinite(sim[i]))
            return sf_error_set(err, SF_ERR_INVALID_DATA, "match %zu has similarity %g", i,
                                (double)sim[i]);
        if (descs) {
            size_t d = (size_t)da->shape[1];
            double c = cosine((const float *)da->data + (size_t)ra * d,
                              (const float *)db->data + (size_t)rb * d, d);
            if (fabs(c - sim[i]) > 1e-3)
                return sf_error_set(err, SF_ERR_MISMATCH, "match %zu (local features %ld of "
                                    KEY_FMT ", %ld of " KEY_FMT ") has similarity %.4f, but "
                                    "their descriptors give %.4f: the feature streams are not "
                                    "the ones that were matched", i, (long)ra, KEY_ARGS(a),
                                    (long)rb, KEY_ARGS(b), (double)sim[i], c);
        }
    }
    return SF_OK;
}

typedef struct ranked {
    float sim;
    size_t i;
} ranked;

static int by_similarity(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->sim != b->sim)
        return a->sim < b->sim ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

sf_status sf_draw_match(const sf_stream_image *a, const sf_stream_image *b,
                        const int32_t *pairs, const float *sim, size_t n_pairs,
                        const sf_draw_match_options *o, sf_rgb_image *out, sf_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->line_width < 1 || o->line_width > 64 || o->height < 0 ||
        (o->has_range && !(o->hi > o->lo)))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "draw: bad options (line width "
                            "%d, height %d)", o->line_width, o->height);
    double *xa = NULL, *xb = NULL;
    uint8_t *own_a = NULL, *own_b = NULL;
    ranked *order = NULL;
    canvas c = { 0, 0, NULL };
    size_t na, nb;
    const uint8_t *pa, *pb;
    int wa, ha, wb, hb;
    sf_status st = locate_all(a, o->location, &xa, &na, err);
    if (st == SF_OK)
        st = locate_all(b, o->location, &xb, &nb, err);
    if (st == SF_OK)
        st = check_pairs(a, na, b, nb, pairs, sim, n_pairs, err);
    if (st == SF_OK)
        st = photo(a, o->height, &pa, &wa, &ha, &own_a, err);
    if (st == SF_OK)
        st = photo(b, o->height, &pb, &wb, &hb, &own_b, err);
    if (st == SF_OK)
        st = canvas_make(&c, (uint64_t)wa + SF_DRAW_GAP + (uint64_t)wb,
                         (uint64_t)(ha > hb ? ha : hb), err);
    if (st == SF_OK && !(order = malloc((n_pairs ? n_pairs : 1) * sizeof *order)))
        st = sf_error_set(err, SF_ERR_NOMEM, "out of memory for %zu matches", n_pairs);
    if (st != SF_OK)
        goto done;
    blit(&c, pa, wa, ha, 0, 0);
    blit(&c, pb, wb, hb, wa + SF_DRAW_GAP, 0);
    for (size_t i = 0; i < n_pairs; i++)
        order[i] = (ranked){ sim[i], i };
    qsort(order, n_pairs, sizeof *order, by_similarity);
    size_t first = o->max_lines && o->max_lines < n_pairs ? n_pairs - o->max_lines : 0;
    double lo = o->lo, hi = o->hi;
    if (!o->has_range && n_pairs > first) {
        lo = order[first].sim;
        hi = order[n_pairs - 1].sim;
    }
    /* Pixels of the stored image per pixel drawn, for each side. */
    const sf_record *ra = sf_stream_image_find(a, SF_KIND_PIXELS);
    const sf_record *rb = sf_stream_image_find(b, SF_KIND_PIXELS);
    double fa = (double)wa / (double)ra->shape[1], ga = (double)ha / (double)ra->shape[0];
    double fb = (double)wb / (double)rb->shape[1], gb = (double)hb / (double)rb->shape[0];
    for (size_t k = first; k < n_pairs; k++) {
        size_t i = order[k].i;
        uint8_t rgb[3];
        if (o->fixed_color)
            memcpy(rgb, o->color, 3);
        else
            sf_draw_ramp(hi > lo ? (sim[i] - lo) / (hi - lo) : 1.0, rgb);
        const double *p = xa + 2 * (size_t)pairs[2 * i], *q = xb + 2 * (size_t)pairs[2 * i + 1];
        double x0 = p[0] * fa, y0 = p[1] * ga;
        double x1 = wa + SF_DRAW_GAP + q[0] * fb, y1 = q[1] * gb;
        line(&c, x0, y0, x1, y1, o->line_width, rgb);
        disc(&c, x0, y0, o->line_width + 1, rgb);
        disc(&c, x1, y1, o->line_width + 1, rgb);
    }
    out->width = out->source_width = c.w;
    out->height = out->source_height = c.h;
    out->pixels = c.p;
    c.p = NULL;
done:
    free(c.p);
    free(order);
    free(own_a);
    free(own_b);
    free(xa);
    free(xb);
    return st;
}

/* ---- Attention panels ---- */

void sf_draw_attention_options_init(sf_draw_attention_options *o)
{
    memset(o, 0, sizeof *o);
    o->location = SF_DRAW_PEAK;
}

/* The held attention scale nearest 1 (by ratio). */
static const sf_record *nearest_one(const sf_stream_image *img)
{
    const sf_record *best = NULL;
    for (size_t i = 0; i < img->count; i++) {
        const sf_record *r = &img->recs[i];
        if ((r->kind & ~(int)SF_KIND_OPTIONAL) == SF_KIND_ATTENTION && r->scale > 0 &&
            (!best || fabs(log(r->scale)) < fabs(log(best->scale))))
            best = r;
    }
    return best;
}

/* One panel: photo (w x h) under map m (mh x mw), at (x0, y0). */
static void heat_panel(canvas *c, const uint8_t *photo_px, int w, int h, const float *m,
                       size_t mh, size_t mw, int x0, int y0)
{
    float top = 0;
    for (size_t k = 0; k < mh * mw; k++)
        if (m[k] > top)
            top = m[k];
    for (int y = 0; y < h; y++) {
        double v = (y + 0.5) * (double)mh / h - 0.5;
        if (v < 0)
            v = 0;
        if (v > (double)mh - 1)
            v = (double)mh - 1;
        size_t j0 = (size_t)v, j1 = j0 + 1 < mh ? j0 + 1 : j0;
        double fy = v - (double)j0;
        for (int x = 0; x < w; x++) {
            double u = (x + 0.5) * (double)mw / w - 0.5;
            if (u < 0)
                u = 0;
            if (u > (double)mw - 1)
                u = (double)mw - 1;
            size_t i0 = (size_t)u, i1 = i0 + 1 < mw ? i0 + 1 : i0;
            double fx = u - (double)i0;
            double val = (1 - fy) * ((1 - fx) * m[j0 * mw + i0] + fx * m[j0 * mw + i1]) +
                         fy * ((1 - fx) * m[j1 * mw + i0] + fx * m[j1 * mw + i1]);
            double t = top > 0 ? val / top : 0;
            if (t < 0)
                t = 0;
            if (t > 1)
                t = 1;
            uint8_t ramp[3], px[3];
            sf_draw_ramp(t, ramp);
            const uint8_t *s = photo_px + 3 * ((size_t)y * (size_t)w + (size_t)x);
            for (int k = 0; k < 3; k++)
                px[k] = (uint8_t)lround((1 - 0.7 * t) * s[k] + 0.7 * t * ramp[k]);
            put(c, x0 + x, y0 + y, px);
        }
    }
}

/* Rows of img's local features by descending strength (stable). */
typedef struct strong {
    float s;
    size_t row;
} strong;

static int by_strength(const void *pa, const void *pb)
{
    const strong *a = pa, *b = pb;
    if (a->s != b->s)
        return a->s > b->s ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

sf_status sf_draw_attention(const sf_stream_image *img, const sf_draw_attention_options *o,
                            sf_rgb_image *out, sf_error *err)
{
    memset(out, 0, sizeof *out);
    size_t n = o->n_templates ? o->n_templates : o->strongest;
    if (n == 0 || n > 4096 || o->columns < 0 || o->height < 0 || o->scale < 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "draw: no maps to show, or bad "
                            "options");
    const sf_record **maps = calloc(n, sizeof *maps);
    size_t *which = calloc(n, sizeof *which);
    double *xy = NULL;
    strong *rank = NULL;
    uint8_t *own = NULL;
    canvas c = { 0, 0, NULL };
    sf_status st = SF_OK;
    if (!maps || !which) {
        st = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        goto done;
    }
    static const int kinds[] = { SF_KIND_PIXELS, SF_KIND_ATTENTION, SF_KIND_LOCAL_SCALE,
                                 SF_KIND_LOCAL_INDEX, SF_KIND_LOCAL_STRENGTH };
    if (need_all(img, kinds, o->n_templates ? 2 : 5, err) != SF_OK) {
        st = err->status;
        goto done;
    }
    if (o->n_templates) {
        const sf_record *att = o->scale > 0 ? attention_at(img, o->scale, err) : nearest_one(img);
        if (!att) {
            if (!(o->scale > 0))
                need(img, SF_KIND_ATTENTION, WRITES_ATTENTION, err);
            st = err->status;
            goto done;
        }
        for (size_t k = 0; k < n; k++) {
            if (o->templates[k] < 0 || (uint64_t)o->templates[k] >= att->shape[0]) {
                st = sf_error_set(err, SF_ERR_INVALID_ARGUMENT, KEY_FMT ": no template %d "
                                  "(the attention record of scale %g holds %llu maps)",
                                  KEY_ARGS(img), o->templates[k], att->scale,
                                  (unsigned long long)att->shape[0]);
                goto done;
            }
            maps[k] = att;
            which[k] = (size_t)o->templates[k];
        }
    } else {
        size_t rows = 0;
        const sf_record *strength = need(img, SF_KIND_LOCAL_STRENGTH, WRITES_LOCAL, err);
        if (!strength || (st = locate_all(img, o->location, &xy, &rows, err)) != SF_OK) {
            st = err->status;
            goto done;
        }
        if (rows < n) {
            st = sf_error_set(err, SF_ERR_INVALID_ARGUMENT, KEY_FMT ": %zu local features, "
                              "fewer than the %zu asked for", KEY_ARGS(img), rows, n);
            goto done;
        }
        rank = malloc(rows * sizeof *rank);
        if (!rank) {
            st = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
            goto done;
        }
        const float *s = strength->data;
        for (size_t r = 0; r < rows; r++)
            rank[r] = (strong){ s[r], r };
        qsort(rank, rows, sizeof *rank, by_strength);
        const float *scale = sf_stream_image_find(img, SF_KIND_LOCAL_SCALE)->data;
        const int32_t *index = sf_stream_image_find(img, SF_KIND_LOCAL_INDEX)->data;
        for (size_t k = 0; k < n; k++) {
            maps[k] = attention_at(img, scale[rank[k].row], err); /* found by locate_all */
            which[k] = (size_t)index[rank[k].row];
        }
    }
    const uint8_t *px;
    int w, h;
    if ((st = photo(img, o->height, &px, &w, &h, &own, err)) != SF_OK)
        goto done;
    int cols = o->columns ? o->columns : (n < 4 ? (int)n : 4);
    if ((size_t)cols > n)
        cols = (int)n;
    int rows_n = (int)((n + (size_t)cols - 1) / (size_t)cols);
    if ((st = canvas_make(&c, (uint64_t)cols * (uint64_t)w + (uint64_t)(cols - 1) * SF_DRAW_GAP,
                          (uint64_t)rows_n * (uint64_t)h + (uint64_t)(rows_n - 1) * SF_DRAW_GAP,
                          err)) != SF_OK)
        goto done;
    const sf_record *pr = sf_stream_image_find(img, SF_KIND_PIXELS);
    double fx = (double)w / (double)pr->shape[1], fy = (double)h / (double)pr->shape[0];
    static const uint8_t white[3] = { 255, 255, 255 }, black[3] = { 0, 0, 0 };
    for (size_t k = 0; k < n; k++) {
        size_t mh = (size_t)maps[k]->shape[1], mw = (size_t)maps[k]->shape[2];
        int x0 = (int)(k % (size_t)cols) * (w + SF_DRAW_GAP);
        int y0 = (int)(k / (size_t)cols) * (h + SF_DRAW_GAP);
        heat_panel(&c, px, w, h, (const float *)maps[k]->data + which[k] * mh * mw, mh, mw,
                   x0, y0);
        if (o->mark && xy) {
            /* A ring: black, then white inside, so that it shows on any heat. */
            const double *p = xy + 2 * rank[k].row;
            double cx = x0 + p[0] * fx, cy = y0 + p[1] * fy;
            for (int y = (int)floor(cy) - 8; y <= (int)ceil(cy) + 8; y++)
                for (int x = (int)floor(cx) - 8; x <= (int)ceil(cx) + 8; x++) {
                    double d = hypot(x + 0.5 - cx, y + 0.5 - cy);
                    if (x >= x0 && x < x0 + w && y >= y0 && y < y0 + h)
                        if (d >= 5 && d <= 7.5)
                            put(&c, x, y, d <= 6 ? white : black);
                }
        }
    }
    out->width = out->source_width = c.w;
    out->height = out->source_height = c.h;
    out->pixels = c.p;
    c.p = NULL;
done:
    free(c.p);
    free(own);
    free(rank);
    free(xy);
    free(maps);
    free(which);
    return st;
}

/* ---- Files ---- */

static const char *format_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash))
        return NULL;
    if (strcasecmp(dot, ".png") == 0)
        return ".png";
    if (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0)
        return ".jpg";
    return NULL;
}

int sf_draw_format_known(const char *path)
{
    return format_of(path) != NULL;
}

sf_status sf_draw_save(const sf_rgb_image *img, const char *path, sf_error *err)
{
    const char *fmt = format_of(path);
    if (!fmt)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: not a .png, .jpg or .jpeg "
                            "file name", path);
    if (!img->pixels || img->width <= 0 || img->height <= 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: no picture", path);
    sf_status st = sf_image_library_init(err);
    if (st != SF_OK)
        return st;
    size_t size = (size_t)img->width * (size_t)img->height * 3;
    VipsImage *in = vips_image_new_from_memory(img->pixels, size, img->width, img->height, 3,
                                               VIPS_FORMAT_UCHAR);
    VipsImage *srgb = NULL;
    void *buf = NULL;
    size_t len = 0;
    int failed = !in || vips_copy(in, &srgb, "interpretation", VIPS_INTERPRETATION_sRGB, NULL);
    if (!failed)
        failed = strcmp(fmt, ".png") == 0
                     ? vips_pngsave_buffer(srgb, &buf, &len, "strip", TRUE, NULL)
                     : vips_jpegsave_buffer(srgb, &buf, &len, "Q", 90, "strip", TRUE, NULL);
    if (srgb)
        g_object_unref(srgb);
    if (in)
        g_object_unref(in);
    if (failed) {
        char detail[256];
        const char *vb = vips_error_buffer();
        sf_copy_text(detail, sizeof detail, vb, strcspn(vb, "\n"));
        vips_error_clear();
        return sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: cannot encode the picture (%s)",
                            path, detail);
    }
    sf_atomic_file af;
    st = sf_atomic_file_open(&af, path, err);
    if (st == SF_OK) {
        int ok = fwrite(buf, 1, len, af.fp) == len;
        st = sf_atomic_file_commit(&af, ok, err);
    }
    g_free(buf);
    return st;
}
