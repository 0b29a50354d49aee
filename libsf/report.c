/* The HTML report of rankings: which images the page shows, what the
 * answer key says of them, their thumbnails and the page itself. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <vips/vips.h>

#include "sf_internal.h"
#include "sf_report.h"
#include "strtab_internal.h"

/* One result on the page. */
typedef struct report_hit {
    size_t image;    /* index into the images */
    double score;
    sf_report_mark mark;
    size_t match;    /* number of its match picture (matches/NNNNNN.png); 0: none */
} report_hit;

typedef struct report_query {
    size_t image;
    size_t n_hits;   /* shown */
    size_t n_all;    /* in its whole list */
    report_hit *hits;
    int evaluated;   /* the answer key names it: ap holds its AP (NaN: no positives) */
    double ap;
    size_t n_positives;
} report_query;

typedef struct report_image {
    int width, height; /* of its thumbnail; 0 until one is written */
    char *failure;     /* why there is none, once tried and failed */
} report_image;

struct sf_report {
    const sf_hit_set *set;
    size_t top_k;
    size_t n_queries;
    report_query *queries;
    /* The images, each key once: keys are borrowed from the set. */
    const char **keys;
    report_image *images;
    size_t n_images, cap_images;
    sf_strtab table;
    /* The answer key, once evaluated. */
    int evaluated;
    char *groups_file;
    double map;
    size_t n_scored;
    size_t n_matches;
};

/* The index of key among the images, entered when new; -1 out of memory. */
static long image_of(sf_report *r, const char *key)
{
    long i = sf_strtab_find(&r->table, r->keys, key, strlen(key));
    if (i >= 0)
        return i;
    if (r->n_images == r->cap_images) {
        size_t cap = r->cap_images ? 2 * r->cap_images : 64;
        const char **keys = realloc(r->keys, cap * sizeof *keys);
        if (!keys)
            return -1;
        r->keys = keys;
        report_image *images = realloc(r->images, cap * sizeof *images);
        if (!images)
            return -1;
        r->images = images;
        r->cap_images = cap;
    }
    r->keys[r->n_images] = key;
    memset(&r->images[r->n_images], 0, sizeof r->images[0]);
    r->n_images++;
    if (sf_strtab_added(&r->table, r->keys, r->n_images) != 0) {
        r->n_images--;
        return -1;
    }
    return (long)(r->n_images - 1);
}

sf_status sf_report_create(const sf_hit_set *set, size_t top_k, sf_report **out, sf_error *err)
{
    *out = NULL;
    sf_report *r = calloc(1, sizeof *r);
    const size_t n = sf_hit_set_count(set);
    if (r) {
        r->set = set;
        r->top_k = top_k;
        r->map = NAN;
        r->queries = calloc(n ? n : 1, sizeof *r->queries);
    }
    if (!r || !r->queries || sf_strtab_build(&r->table, NULL, 0) != 0)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        report_query *q = &r->queries[i];
        const sf_hit_list *list = sf_hit_set_hits(set, i);
        long img = image_of(r, sf_hit_set_key(set, i));
        if (img < 0)
            goto nomem;
        q->image = (size_t)img;
        q->ap = NAN;
        q->n_all = list->count;
        q->n_hits = top_k && top_k < list->count ? top_k : list->count;
        q->hits = calloc(q->n_hits ? q->n_hits : 1, sizeof *q->hits);
        r->n_queries = i + 1;
        if (!q->hits)
            goto nomem;
        for (size_t j = 0; j < q->n_hits; j++) {
            if ((img = image_of(r, list->keys[j])) < 0)
                goto nomem;
            q->hits[j].image = (size_t)img;
            q->hits[j].score = list->scores[j];
        }
    }
    *out = r;
    return SF_OK;
nomem:
    sf_report_free(r);
    return sf_error_set(err, SF_ERR_NOMEM, "report: out of memory for %zu queries", n);
}

void sf_report_free(sf_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_queries; i++)
        free(r->queries[i].hits);
    free(r->queries);
    for (size_t i = 0; i < r->n_images; i++)
        free(r->images[i].failure);
    free(r->images);
    free(r->keys);
    sf_strtab_release(&r->table);
    free(r->groups_file);
    free(r);
}

size_t sf_report_image_count(const sf_report *r)
{
    return r->n_images;
}

const char *sf_report_image_key(const sf_report *r, size_t i)
{
    return i < r->n_images ? r->keys[i] : NULL;
}

/* ---- The answer key ---- */

static int has_id(const uint32_t *ids, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return 1;
    return 0;
}

/* Under the Medium protocol, which is plain AP over the group for a key
 * made from groups: positives easy and hard, junk left out. */
static sf_report_mark mark_of(const sf_gnd_query *g, uint32_t id)
{
    if (id == SF_EVAL_NO_ID)
        return SF_REPORT_UNKNOWN;
    if (has_id(g->easy, g->n_easy, id) || has_id(g->hard, g->n_hard, id))
        return SF_REPORT_RIGHT;
    if (has_id(g->junk, g->n_junk, id))
        return SF_REPORT_IGNORED;
    return SF_REPORT_WRONG;
}

sf_status sf_report_evaluate_groups(sf_report *r, const sf_groups *groups,
                                    const char *groups_file, size_t *n_unknown,
                                    const char **first_unknown, sf_error *err)
{
    sf_eval_hits *e;
    sf_status st = sf_eval_hits_groups(r->set, groups, groups_file, &e, err);
    if (st != SF_OK)
        return st;
    const int ks[1] = { 1 };
    sf_eval_report rep;
    st = sf_eval_report_compute(e->gnd, e->ranks, e->width, ks, 1, &rep, err);
    char *file = st == SF_OK ? strdup(groups_file) : NULL;
    if (st == SF_OK && !file)
        st = sf_error_set(err, SF_ERR_NOMEM, "report: out of memory");
    if (st != SF_OK) {
        sf_eval_report_release(&rep); /* zeroed when compute failed */
        sf_eval_hits_free(e);
        return st;
    }
    for (size_t q = 0; q < r->n_queries; q++) {
        r->queries[q].evaluated = 0;
        r->queries[q].ap = NAN;
        for (size_t j = 0; j < r->queries[q].n_hits; j++)
            r->queries[q].hits[j].mark = SF_REPORT_UNMARKED;
    }
    const size_t rows = e->gnd->n_queries;
    for (size_t row = 0; row < rows; row++) {
        long i = sf_hit_set_find(r->set, e->row_names[row]);
        if (i < 0 || (size_t)i >= r->n_queries)
            continue; /* cannot be: rows are queries of the set */
        report_query *q = &r->queries[i];
        const sf_gnd_query *g = &e->gnd->queries[row];
        q->evaluated = 1;
        q->ap = rep.aps[(size_t)SF_EVAL_MEDIUM * rows + row];
        q->n_positives = g->n_easy + g->n_hard;
        /* The rows hold the whole lists in the set's order: the page
         * shows the first n_hits of them. */
        for (size_t j = 0; j < q->n_hits && j < e->width; j++)
            q->hits[j].mark = mark_of(g, e->ranks[row * e->width + j]);
    }
    r->evaluated = 1;
    r->map = rep.summary.map[SF_EVAL_MEDIUM];
    r->n_scored = rep.summary.n_scored[SF_EVAL_MEDIUM];
    free(r->groups_file);
    r->groups_file = file;
    if (n_unknown)
        *n_unknown = e->n_unknown;
    if (first_unknown)
        *first_unknown = e->first_unknown;
    sf_eval_report_release(&rep);
    sf_eval_hits_free(e);
    return SF_OK;
}

/* ---- Files ---- */

sf_status sf_report_key_path(const char *root, const char *key, char **path, sf_error *err)
{
    *path = NULL;
    if (!*key)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "an empty key names no file");
    int join = root && *root && key[0] != '/';
    size_t rl = join ? strlen(root) : 0, kl = strlen(key);
    char *p = malloc(rl + kl + 2);
    if (!p)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", key);
    if (join) {
        memcpy(p, root, rl);
        if (root[rl - 1] != '/')
            p[rl++] = '/';
    }
    memcpy(p + rl, key, kl + 1);
    *path = p;
    return SF_OK;
}

/* dir/sub, made when missing. */
static sf_status make_dir(const char *dir, const char *sub, sf_error *err)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, sub) >= (int)sizeof path)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: path too long", dir);
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return sf_error_set(err, SF_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return sf_error_set(err, SF_ERR_IO, "%s: not a directory", path);
    return SF_OK;
}

/* Write the pixels of img to path as JPEG (png 0) or PNG (png 1).  The
 * file is encoded in memory and written by us, so that no part of the
 * path is read as libvips save options. */
static sf_status save_rgb(const sf_rgb_image *img, const char *path, int png, sf_error *err)
{
    VipsImage *v = vips_image_new_from_memory(img->pixels,
                                              (size_t)img->width * (size_t)img->height * 3,
                                              img->width, img->height, 3, VIPS_FORMAT_UCHAR);
    void *buf = NULL;
    size_t len = 0;
    int rc = -1;
    if (v) {
        rc = png ? vips_pngsave_buffer(v, &buf, &len, "compression", 6, "strip", TRUE, NULL)
                 : vips_jpegsave_buffer(v, &buf, &len, "Q", 85, "strip", TRUE, NULL);
        g_object_unref(v);
    }
    if (rc != 0) {
        sf_status st = sf_error_set(err, SF_ERR_IO, "%s: cannot encode: %s", path,
                                    vips_error_buffer());
        vips_error_clear();
        return st;
    }
    sf_atomic_file af;
    sf_status st = sf_atomic_file_open(&af, path, err);
    if (st == SF_OK)
        st = sf_atomic_file_commit(&af, fwrite(buf, 1, len, af.fp) == len, err);
    g_free(buf);
    return st;
}

/* Decode file and write it as dir/sub/NNNNNN.ext; its size in *w, *h. */
static sf_status convert(const char *file, const sf_decode_options *options, int size,
                         const char *dir, const char *sub, size_t number, int png, int *w,
                         int *h, sf_error *err)
{
    sf_decode_options o = *options;
    o.size = size;
    o.has_crop = 0;
    o.scales = NULL;
    o.n_scales = 0;
    sf_rgb_image img;
    sf_status st = sf_image_load_file(file, &o, &img, err);
    if (st != SF_OK)
        return st;
    char path[4096];
    if ((st = make_dir(dir, sub, err)) == SF_OK &&
        snprintf(path, sizeof path, "%s/%s/%06zu.%s", dir, sub, number, png ? "png" : "jpg") >=
            (int)sizeof path)
        st = sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: path too long", dir);
    if (st == SF_OK)
        st = save_rgb(&img, path, png, err);
    if (st == SF_OK) {
        *w = img.width;
        *h = img.height;
    }
    sf_rgb_image_release(&img);
    return st;
}

sf_status sf_report_thumbnail(sf_report *r, size_t i, const char *file, const char *dir,
                              const sf_decode_options *options, sf_error *err)
{
    if (i >= r->n_images)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "report: no image %zu", i);
    report_image *img = &r->images[i];
    free(img->failure);
    img->failure = NULL;
    img->width = img->height = 0;
    int w = 0, h = 0;
    sf_status st = convert(file, options, options->size, dir, "thumbs", i + 1, 0, &w, &h, err);
    if (st == SF_OK) {
        img->width = w;
        img->height = h;
    } else {
        /* Out of memory for the reason: the placeholder says less. */
        img->failure = strdup(err ? err->message : sf_strerror(st));
    }
    return st;
}

sf_status sf_report_match_picture(sf_report *r, const char *query, const char *hit,
                                  const char *picture_file, const char *dir,
                                  const sf_decode_options *options, sf_error *err)
{
    long qi = sf_hit_set_find(r->set, query);
    report_hit *target = NULL;
    if (qi >= 0 && (size_t)qi < r->n_queries) {
        const report_query *q = &r->queries[qi];
        for (size_t j = 0; j < q->n_hits && !target; j++)
            if (strcmp(r->keys[q->hits[j].image], hit) == 0)
                target = &q->hits[j];
    }
    if (!target)
        return sf_error_set(err, SF_ERR_NOT_FOUND,
                            "%s: the report shows no result %s for query %s", picture_file,
                            hit, query);
    size_t number = target->match ? target->match : r->n_matches + 1;
    int w, h;
    /* A picture is shown as it is: a side of 2^20 never shrinks one the
     * limits let through. */
    sf_status st = convert(picture_file, options, options->size > 0 ? options->size : 1 << 20,
                           dir, "matches", number, 1, &w, &h, err);
    if (st == SF_OK && !target->match)
        target->match = ++r->n_matches;
    return st;
}

/* ---- The page ---- */

char *sf_html_escape(const char *s)
{
    size_t n = 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += *p == '&' ? 5 : *p == '<' || *p == '>' ? 4 : *p == '"' || *p == '\'' ? 5
             : (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') || *p == 0x7f ? 3
                                                                                   : 1;
    char *out = malloc(n), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&#34;"; break;
        case '\'': rep = "&#39;"; break;
        default:
            if ((*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') || *p == 0x7f)
                rep = "\xef\xbf\xbd"; /* U+FFFD in UTF-8 */
        }
        if (rep) {
            size_t l = strlen(rep);
            memcpy(o, rep, l);
            o += l;
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
}

typedef struct page {
    FILE *fp;
    int nomem;
    size_t *query_of; /* per image: 1 + the query it is, 0 when none */
} page;

/* fputs of s escaped. */
static void put_text(page *pg, const char *s)
{
    char *e = sf_html_escape(s);
    if (!e) {
        pg->nomem = 1;
        return;
    }
    fputs(e, pg->fp);
    free(e);
}

static void put_number(page *pg, const char *fmt, double v)
{
    if (isnan(v))
        fputs("&#8211;", pg->fp); /* an en dash: no number */
    else
        fprintf(pg->fp, fmt, v);
}

static const char style[] =
    "body{font-family:sans-serif;margin:1em 2em;color:#222;background:#fff}\n"
    "h1{font-size:1.5em}h2{font-size:1.1em;margin:0 0 .3em;word-break:break-all}\n"
    "table.summary{border-collapse:collapse;margin-bottom:1.5em}\n"
    "table.summary td,table.summary th{border:1px solid #ccc;padding:.2em .6em;text-align:left}\n"
    "td.num,th.num{text-align:right}\n"
    "section.query{border-top:2px solid #888;padding:.8em 0;clear:both}\n"
    "p.ap{margin:.2em 0 .6em;color:#444}\n"
    "div.row{display:flex;flex-wrap:wrap;align-items:flex-start;gap:.6em}\n"
    "figure{margin:0;padding:4px;border:3px solid #ddd;max-width:12em}\n"
    "figure.query-image{border-color:#36c;background:#eef3ff}\n"
    "li.right figure{border-color:#2a2;background:#efe}\n"
    "li.wrong figure{border-color:#c22;background:#fee}\n"
    "li.ignored figure{border-color:#999;border-style:dashed}\n"
    "li.unknown figure{border-color:#c90;border-style:dotted}\n"
    "ol.hits{display:flex;flex-wrap:wrap;gap:.6em;list-style:none;margin:0;padding:0}\n"
    "figcaption{font-size:.8em;word-break:break-all}\n"
    "span.rank::before{content:\"#\"}span.score::before{content:\"score \"}\n"
    "span.mark{font-weight:bold}li.right span.mark{color:#161}li.wrong span.mark{color:#a11}\n"
    "div.missing{display:flex;align-items:center;justify-content:center;text-align:center;"
    "width:10em;height:7em;background:#eee;color:#a11;font-size:.8em;overflow:hidden}\n";

static void put_image(page *pg, const sf_report *r, size_t i)
{
    const report_image *img = &r->images[i];
    if (img->width > 0) {
        fprintf(pg->fp, "<img src=\"thumbs/%06zu.jpg\" width=\"%d\" height=\"%d\" alt=\"", i + 1,
                img->width, img->height);
        put_text(pg, r->keys[i]);
        fputs("\">", pg->fp);
    } else {
        fputs("<div class=\"missing\" title=\"", pg->fp);
        put_text(pg, img->failure ? img->failure : "no thumbnail made");
        fputs("\">no picture</div>", pg->fp);
    }
}

static const char *const mark_class[] = { "unmarked", "right", "wrong", "ignored", "unknown" };
static const char *const mark_text[] = { "", "\xe2\x9c\x93 right", "\xe2\x9c\x97 wrong",
                                         "itself", "? not in the key" };

static void put_query(page *pg, const sf_report *r, size_t qi)
{
    const report_query *q = &r->queries[qi];
    FILE *fp = pg->fp;
    fprintf(fp, "<section class=\"query\" id=\"q%zu\"", qi + 1);
    if (q->evaluated && !isnan(q->ap))
        fprintf(fp, " data-ap=\"%.6f\"", q->ap);
    fprintf(fp, ">\n<h2>Query %zu: <span class=\"key\">", qi + 1);
    put_text(pg, r->keys[q->image]);
    fputs("</span></h2>\n<p class=\"ap\">", fp);
    if (r->evaluated) {
        if (!q->evaluated)
            fputs("not in the answer key", fp);
        else if (isnan(q->ap))
            fputs("AP &#8211;: nothing else in its group", fp);
        else
            fprintf(fp, "AP %.4f (%zu relevant)", q->ap, q->n_positives);
        fputs("; ", fp);
    }
    if (q->n_hits < q->n_all)
        fprintf(fp, "top %zu of %zu results", q->n_hits, q->n_all);
    else
        fprintf(fp, "%zu result%s", q->n_all, q->n_all == 1 ? "" : "s");
    fputs("</p>\n<div class=\"row\">\n<figure class=\"query-image\">", fp);
    put_image(pg, r, q->image);
    fputs("<figcaption>query</figcaption></figure>\n<ol class=\"hits\">\n", fp);
    for (size_t j = 0; j < q->n_hits; j++) {
        const report_hit *h = &q->hits[j];
        fprintf(fp, "<li class=\"hit %s\"><figure>", mark_class[h->mark]);
        if (h->match)
            fprintf(fp, "<a href=\"matches/%06zu.png\">", h->match);
        put_image(pg, r, h->image);
        if (h->match)
            fputs("</a>", fp);
        fprintf(fp, "<figcaption><span class=\"rank\">%zu</span>", j + 1);
        if (h->mark != SF_REPORT_UNMARKED)
            fprintf(fp, " <span class=\"mark\">%s</span>", mark_text[h->mark]);
        fputs(" <span class=\"score\">", fp);
        put_number(pg, "%.6g", h->score);
        fputs("</span><br><span class=\"key\">", fp);
        /* A result that is a query too links to its own results. */
        size_t other = pg->query_of ? pg->query_of[h->image] : 0;
        if (other)
            fprintf(fp, "<a href=\"#q%zu\">", other);
        put_text(pg, r->keys[h->image]);
        fputs(other ? "</a></span>" : "</span>", fp);
        if (h->match)
            fprintf(fp, "<br><a class=\"match\" href=\"matches/%06zu.png\">matches</a>", h->match);
        fputs("</figcaption></figure></li>\n", fp);
    }
    fputs("</ol>\n</div>\n</section>\n", fp);
}

static void put_page(page *pg, const sf_report *r, const char *title)
{
    FILE *fp = pg->fp;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"generator\" content=\"sf-report\">\n<title>", fp);
    put_text(pg, title);
    fprintf(fp, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", style);
    put_text(pg, title);
    fputs("</h1>\n<table class=\"summary\">\n", fp);
    fprintf(fp, "<tr><th>queries</th><td class=\"num\">%zu</td></tr>\n", r->n_queries);
    if (r->top_k)
        fprintf(fp, "<tr><th>results shown</th><td class=\"num\">top %zu</td></tr>\n",
                r->top_k);
    if (r->evaluated) {
        fputs("<tr><th>answer key</th><td class=\"num\">", fp);
        put_text(pg, r->groups_file);
        fputs("</td></tr>\n<tr><th>mAP</th><td class=\"num\" id=\"map\"", fp);
        if (!isnan(r->map))
            fprintf(fp, " data-map=\"%.6f\"", r->map);
        fputc('>', fp);
        put_number(pg, "%.4f", r->map);
        fprintf(fp, " over %zu queries</td></tr>\n", r->n_scored);
    }
    fputs("</table>\n", fp);
    if (r->n_queries) {
        fputs("<table class=\"summary\" id=\"queries\">\n<tr><th>#</th><th>query</th>", fp);
        if (r->evaluated)
            fputs("<th class=\"num\">AP</th>", fp);
        fputs("</tr>\n", fp);
        for (size_t i = 0; i < r->n_queries; i++) {
            const report_query *q = &r->queries[i];
            fprintf(fp, "<tr><td class=\"num\">%zu</td><td><a href=\"#q%zu\">", i + 1, i + 1);
            put_text(pg, r->keys[q->image]);
            fputs("</a></td>", fp);
            if (r->evaluated) {
                fputs("<td class=\"num\">", fp);
                if (q->evaluated)
                    put_number(pg, "%.4f", q->ap);
                fputs("</td>", fp);
            }
            fputs("</tr>\n", fp);
        }
        fputs("</table>\n", fp);
    }
    for (size_t i = 0; i < r->n_queries; i++)
        put_query(pg, r, i);
    fputs("</body>\n</html>\n", fp);
}

sf_status sf_report_write_html(const sf_report *r, const char *dir, const char *title,
                               sf_error *err)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/index.html", dir) >= (int)sizeof path)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: path too long", dir);
    sf_atomic_file af;
    sf_status st = sf_atomic_file_open(&af, path, err);
    if (st != SF_OK)
        return st;
    page pg = { af.fp, 0, calloc(r->n_images ? r->n_images : 1, sizeof(size_t)) };
    if (!pg.query_of)
        pg.nomem = 1;
    for (size_t i = r->n_queries; i-- > 0 && pg.query_of;)
        pg.query_of[r->queries[i].image] = i + 1; /* the first query of a key */
    if (!pg.nomem)
        put_page(&pg, r, title ? title : "sf report");
    free(pg.query_of);
    if (pg.nomem) {
        sf_atomic_file_abort(&af);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", path);
    }
    return sf_atomic_file_commit(&af, !ferror(af.fp), err);
}
