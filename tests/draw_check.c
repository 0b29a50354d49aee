/* Checks sf-draw's pictures against the streams they were drawn from,
 * computing every location and every heat-map pixel here, from the
 * definitions in sf-draw(1), without libsf's drawing code:
 *
 *   draw_check size PICTURE
 *       print "WIDTH HEIGHT"
 *   draw_check match FEATURES MATCHES QUERY HIT PICTURE RRGGBB LINE_WIDTH
 *       a picture drawn with --color RRGGBB (peak locations, stored size):
 *       its size, the colour at both ends and the middle of every match,
 *       and the photos untouched away from the lines
 *   draw_check attention FEATURES KEY PICTURE COLUMNS strongest N
 *   draw_check attention FEATURES KEY PICTURE COLUMNS templates SCALE T1,T2,...
 *       every panel's pixels (a sample of them) against the heat-map formula
 *
 * Prints what it found; exits 0 when all holds, 1 otherwise, 2 on bad
 * input. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"

#define GAP 8
#define BACKGROUND 48

typedef struct rec {
    int kind;
    uint32_t index;
    double scale;
    uint64_t shape[3];
    void *data;
} rec;

typedef struct image {
    char *key;
    rec *recs;
    size_t n;
} image;

static void die(const char *what)
{
    fprintf(stderr, "draw_check: %s\n", what);
    exit(2);
}

/* The first image with this key in the stream at path, records copied. */
static image load_image(const char *path, const char *key)
{
    image out = { 0 };
    FILE *fp = fopen(path, "rb");
    sf_stream_reader *r;
    sf_error err;
    if (!fp || sf_stream_reader_create(&r, fp, path, &err) != SF_OK)
        die(path);
    const sf_stream_image *img;
    while (sf_stream_read_image(r, &img, &err) == SF_OK && img) {
        if (strcmp(img->key, key) != 0)
            continue;
        out.key = strdup(key);
        out.recs = calloc(img->count, sizeof *out.recs);
        out.n = img->count;
        for (size_t i = 0; i < img->count; i++) {
            const sf_record *s = &img->recs[i];
            rec *d = &out.recs[i];
            d->kind = s->kind & ~(int)SF_KIND_OPTIONAL;
            d->index = s->index;
            d->scale = s->scale;
            memcpy(d->shape, s->shape, sizeof d->shape);
            d->data = malloc(s->data_size + 1);
            memcpy(d->data, s->data, s->data_size);
        }
        break;
    }
    sf_stream_reader_free(r);
    fclose(fp);
    if (!out.key) {
        fprintf(stderr, "draw_check: %s: no image %s\n", path, key);
        exit(2);
    }
    return out;
}

static void free_image(image *img)
{
    for (size_t i = 0; i < img->n; i++)
        free(img->recs[i].data);
    free(img->recs);
    free(img->key);
}

static const rec *find(const image *img, int kind, long index)
{
    for (size_t i = 0; i < img->n; i++)
        if (img->recs[i].kind == kind && (index < 0 || img->recs[i].index == (uint32_t)index))
            return &img->recs[i];
    return NULL;
}

static const rec *attention_at(const image *img, double scale)
{
    for (size_t i = 0; i < img->n; i++)
        if (img->recs[i].kind == SF_KIND_ATTENTION &&
            fabs(img->recs[i].scale - scale) <= 1e-6 * scale)
            return &img->recs[i];
    die("no attention record at a feature's scale");
    return NULL;
}

typedef struct picture {
    int w, h;
    uint8_t *p;
} picture;

static picture load_picture(const char *path)
{
    sf_decode_options o;
    memset(&o, 0, sizeof o);
    o.size = 1 << 20;
    sf_rgb_image img;
    sf_error err;
    if (sf_image_load_file(path, &o, &img, &err) != SF_OK)
        die(err.message);
    return (picture){ img.width, img.height, img.pixels };
}

static const uint8_t *at(const picture *p, int x, int y)
{
    return p->p + 3 * ((size_t)y * (size_t)p->w + (size_t)x);
}

/* Peak location of local feature k in pixels of the pixels record. */
static void peak(const image *img, size_t k, double *x, double *y)
{
    const rec *px = find(img, SF_KIND_PIXELS, -1);
    const float *scale = find(img, SF_KIND_LOCAL_SCALE, -1)->data;
    const int32_t *index = find(img, SF_KIND_LOCAL_INDEX, -1)->data;
    const rec *a = attention_at(img, scale[k]);
    size_t h = a->shape[1], w = a->shape[2];
    const float *m = (const float *)a->data + (size_t)index[k] * h * w;
    size_t best = 0;
    for (size_t i = 0; i < h * w; i++)
        if (m[i] > m[best])
            best = i;
    *x = ((double)(best % w) + 0.5) * (double)px->shape[1] / (double)w;
    *y = ((double)(best / w) + 0.5) * (double)px->shape[0] / (double)h;
}

/* Distance from (px, py) to the segment a-b. */
static double seg_dist(double px, double py, double ax, double ay, double bx, double by)
{
    double dx = bx - ax, dy = by - ay, l2 = dx * dx + dy * dy;
    double t = l2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / l2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return hypot(px - (ax + t * dx), py - (ay + t * dy));
}

static double luma_stddev(const picture *p)
{
    double s = 0, s2 = 0, n = (double)p->w * p->h;
    for (size_t i = 0; i < (size_t)p->w * (size_t)p->h; i++) {
        double l = 0.299 * p->p[3 * i] + 0.587 * p->p[3 * i + 1] + 0.114 * p->p[3 * i + 2];
        s += l;
        s2 += l * l;
    }
    return sqrt(s2 / n - (s / n) * (s / n));
}

static int check_match(char **argv)
{
    image a = load_image(argv[2], argv[4]), b = load_image(argv[2], argv[5]);
    image m = load_image(argv[3], argv[4]);
    picture pic = load_picture(argv[6]);
    unsigned color;
    if (sscanf(argv[7], "%6x", &color) != 1)
        die("bad colour");
    uint8_t rgb[3] = { (uint8_t)(color >> 16), (uint8_t)(color >> 8), (uint8_t)color };
    double width = atof(argv[8]);
    /* The hit's position. */
    const rec *keys = find(&m, SF_KIND_HIT_KEYS, -1);
    long pos = -1, i = 0;
    for (const char *k = keys->data; k < (const char *)keys->data + keys->shape[0];
         k += strlen(k) + 1, i++)
        if (strcmp(k, argv[5]) == 0) {
            pos = i;
            break;
        }
    if (pos < 0)
        die("the hit is not in the matches stream");
    const rec *pairs = find(&m, SF_KIND_MATCH_PAIRS, pos);
    size_t n = pairs->shape[0];
    const int32_t *pr = pairs->data;
    const rec *pa = find(&a, SF_KIND_PIXELS, -1), *pb = find(&b, SF_KIND_PIXELS, -1);
    int wa = (int)pa->shape[1], ha = (int)pa->shape[0];
    int wb = (int)pb->shape[1], hb = (int)pb->shape[0];
    int fails = 0;
    int want_w = wa + GAP + wb, want_h = ha > hb ? ha : hb;
    printf("picture %dx%d, expected %dx%d\n", pic.w, pic.h, want_w, want_h);
    if (pic.w != want_w || pic.h != want_h) {
        free(pic.p);
        free_image(&a);
        free_image(&b);
        free_image(&m);
        return 1;
    }
    double *seg = malloc((n ? n : 1) * 4 * sizeof *seg);
    size_t ends_ok = 0, mids_ok = 0;
    for (size_t j = 0; j < n; j++) {
        double *s = seg + 4 * j;
        peak(&a, (size_t)pr[2 * j], &s[0], &s[1]);
        peak(&b, (size_t)pr[2 * j + 1], &s[2], &s[3]);
        s[2] += wa + GAP;
        double pts[3][2] = { { s[0], s[1] }, { s[2], s[3] },
                             { (s[0] + s[2]) / 2, (s[1] + s[3]) / 2 } };
        for (int e = 0; e < 3; e++) {
            int ok = memcmp(at(&pic, (int)floor(pts[e][0]), (int)floor(pts[e][1])), rgb, 3) == 0;
            if (e < 2)
                ends_ok += ok;
            else
                mids_ok += ok;
        }
    }
    printf("matches %zu: ends in the colour %zu of %zu, middles %zu of %zu\n", n, ends_ok,
           2 * n, mids_ok, n);
    fails += ends_ok != 2 * n || mids_ok != n;
    /* Away from every line and disc, the photos (or the background) as
     * stored, every pixel. */
    size_t checked = 0, differ = 0;
    const double margin = width / 2 + 1.5, disc_margin = width + 1 + 1.5;
    for (int y = 0; y < pic.h; y++)
        for (int x = 0; x < pic.w; x++) {
            double cx = x + 0.5, cy = y + 0.5;
            int near = 0;
            for (size_t j = 0; j < n && !near; j++) {
                const double *s = seg + 4 * j;
                near = seg_dist(cx, cy, s[0], s[1], s[2], s[3]) <= margin ||
                       hypot(cx - s[0], cy - s[1]) <= disc_margin ||
                       hypot(cx - s[2], cy - s[3]) <= disc_margin;
            }
            if (near)
                continue;
            uint8_t want[3] = { BACKGROUND, BACKGROUND, BACKGROUND };
            if (x < wa && y < ha)
                memcpy(want, (const uint8_t *)pa->data + 3 * ((size_t)y * wa + x), 3);
            else if (x >= wa + GAP && y < hb)
                memcpy(want, (const uint8_t *)pb->data + 3 * ((size_t)y * wb + x - wa - GAP), 3);
            checked++;
            differ += memcmp(at(&pic, x, y), want, 3) != 0;
        }
    printf("pixels away from the lines: %zu, differing from the photos: %zu\n", checked, differ);
    fails += differ != 0 || checked == 0;
    double sd = luma_stddev(&pic);
    printf("luma standard deviation %.1f\n", sd);
    fails += sd < 10;
    free(seg);
    free(pic.p);
    free_image(&a);
    free_image(&b);
    free_image(&m);
    return fails != 0;
}

/* The ramp of sf-draw(1): dark blue, blue, cyan, green, yellow, red at
 * 0, 0.2, ..., 1. */
static void ramp(double t, double out[3])
{
    static const double s[6][3] = { { 0, 0, 128 }, { 0, 0, 255 }, { 0, 255, 255 },
                                     { 0, 255, 0 }, { 255, 255, 0 }, { 255, 0, 0 } };
    int i = (int)(t * 5);
    if (i > 4)
        i = 4;
    double f = t * 5 - i;
    for (int c = 0; c < 3; c++)
        out[c] = s[i][c] + f * (s[i + 1][c] - s[i][c]);
}

static int check_attention(int argc, char **argv)
{
    image img = load_image(argv[2], argv[3]);
    picture pic = load_picture(argv[4]);
    int cols = atoi(argv[5]);
    const rec *px = find(&img, SF_KIND_PIXELS, -1);
    int w = (int)px->shape[1], h = (int)px->shape[0];
    const float *maps[256];
    size_t mh[256], mw[256], n = 0;
    if (strcmp(argv[6], "strongest") == 0 && argc == 8) {
        n = (size_t)atoi(argv[7]);
        const rec *sr = find(&img, SF_KIND_LOCAL_STRENGTH, -1);
        const float *s = sr->data, *scale = find(&img, SF_KIND_LOCAL_SCALE, -1)->data;
        const int32_t *index = find(&img, SF_KIND_LOCAL_INDEX, -1)->data;
        size_t rows = sr->shape[0];
        char *used = calloc(rows, 1);
        for (size_t k = 0; k < n && k < 256; k++) {
            size_t best = rows;
            for (size_t r = 0; r < rows; r++)
                if (!used[r] && (best == rows || s[r] > s[best]))
                    best = r;
            used[best] = 1;
            const rec *a = attention_at(&img, scale[best]);
            mh[k] = a->shape[1];
            mw[k] = a->shape[2];
            maps[k] = (const float *)a->data + (size_t)index[best] * mh[k] * mw[k];
        }
        free(used);
    } else if (strcmp(argv[6], "templates") == 0 && argc == 9) {
        const rec *a = attention_at(&img, atof(argv[7]));
        for (char *p = argv[8]; *p && n < 256; n++) {
            long t = strtol(p, &p, 10);
            mh[n] = a->shape[1];
            mw[n] = a->shape[2];
            maps[n] = (const float *)a->data + (size_t)t * mh[n] * mw[n];
            if (*p == ',')
                p++;
        }
    } else {
        die("attention: strongest N, or templates SCALE LIST");
    }
    int rows = (int)((n + (size_t)cols - 1) / (size_t)cols);
    int want_w = cols * w + (cols - 1) * GAP, want_h = rows * h + (rows - 1) * GAP;
    printf("picture %dx%d, expected %dx%d (%zu panels)\n", pic.w, pic.h, want_w, want_h, n);
    int fail = pic.w != want_w || pic.h != want_h;
    size_t checked = 0, differ = 0, hot = 0, worst = 0;
    const uint8_t *photo = px->data;
    for (size_t k = 0; k < n && !fail; k++) {
        int x0 = (int)(k % (size_t)cols) * (w + GAP), y0 = (int)(k / (size_t)cols) * (h + GAP);
        float top = 0;
        for (size_t i = 0; i < mh[k] * mw[k]; i++)
            top = maps[k][i] > top ? maps[k][i] : top;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                /* Bilinear between cell centres, clamped at the borders. */
                double u = fmin(fmax((x + 0.5) * mw[k] / w - 0.5, 0), mw[k] - 1.0);
                double v = fmin(fmax((y + 0.5) * mh[k] / h - 0.5, 0), mh[k] - 1.0);
                size_t i0 = (size_t)u, j0 = (size_t)v;
                size_t i1 = i0 + 1 < mw[k] ? i0 + 1 : i0, j1 = j0 + 1 < mh[k] ? j0 + 1 : j0;
                double fu = u - i0, fv = v - j0;
                const float *m = maps[k];
                double val = (1 - fv) * ((1 - fu) * m[j0 * mw[k] + i0] + fu * m[j0 * mw[k] + i1]) +
                             fv * ((1 - fu) * m[j1 * mw[k] + i0] + fu * m[j1 * mw[k] + i1]);
                double t = top > 0 ? fmin(fmax(val / top, 0), 1) : 0;
                double r[3];
                ramp(t, r);
                const uint8_t *got = at(&pic, x0 + x, y0 + y);
                const uint8_t *src = photo + 3 * ((size_t)y * w + x);
                int bad = 0;
                for (int c = 0; c < 3; c++) {
                    double want = (1 - 0.7 * t) * src[c] + 0.7 * t * r[c];
                    double d = fabs(got[c] - want);
                    bad |= d > 1.5;
                    if (d > worst)
                        worst = (size_t)d;
                }
                checked++;
                differ += bad;
                hot += t > 0.5;
            }
    }
    printf("panel pixels %zu, differing from the heat-map formula %zu (worst by %zu), "
           "hot (t > 0.5) %zu\n", checked, differ, worst, hot);
    double sd = luma_stddev(&pic);
    printf("luma standard deviation %.1f\n", sd);
    free(pic.p);
    free_image(&img);
    return fail || differ != 0 || hot < n || sd < 10;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "size") == 0) {
        picture p = load_picture(argv[2]);
        printf("%d %d\n", p.w, p.h);
        free(p.p);
        return 0;
    }
    if (argc == 9 && strcmp(argv[1], "match") == 0)
        return check_match(argv);
    if (argc >= 8 && strcmp(argv[1], "attention") == 0)
        return check_attention(argc, argv);
    die("usage: see the comment at the top of tests/draw_check.c");
    return 2;
}
