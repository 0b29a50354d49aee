/* The HTML report (sf_report.h): escaping, keys to files, the marks and
 * APs the page shows against an answer key, thumbnails, placeholders
 * and the hook for match pictures.  tests/report_html.sh checks the page
 * in a browser. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sf_eval.h"
#include "sf_hits.h"
#include "sf_report.h"
#include "testutil.h"

static void check_escape(void)
{
    char *e = sf_html_escape("a<b>&\"c'd\x01\te");
    CHECK(e && strcmp(e, "a&lt;b&gt;&amp;&#34;c&#39;d\xef\xbf\xbd\te") == 0, "escape: %s", e);
    free(e);
    e = sf_html_escape("");
    CHECK(e && !*e, "empty");
    free(e);
    e = sf_html_escape("photos/\xc3\xa9t\xc3\xa9.jpg");
    CHECK(e && strcmp(e, "photos/\xc3\xa9t\xc3\xa9.jpg") == 0, "UTF-8 passes: %s", e);
    free(e);
}

static void check_key_path(void)
{
    char *p;
    sf_error err;
    CHECK(sf_report_key_path("root", "a/b.jpg", &p, &err) == SF_OK && !strcmp(p, "root/a/b.jpg"),
          "relative key under a root");
    free(p);
    CHECK(sf_report_key_path("root/", "b.jpg", &p, &err) == SF_OK && !strcmp(p, "root/b.jpg"),
          "root with a slash");
    free(p);
    CHECK(sf_report_key_path("root", "/abs/b.jpg", &p, &err) == SF_OK && !strcmp(p, "/abs/b.jpg"),
          "absolute key");
    free(p);
    CHECK(sf_report_key_path(NULL, "b.jpg", &p, &err) == SF_OK && !strcmp(p, "b.jpg"), "no root");
    free(p);
    CHECK(sf_report_key_path("", "b.jpg", &p, &err) == SF_OK && !strcmp(p, "b.jpg"), "empty root");
    free(p);
    CHECK(sf_report_key_path("r", "", &p, &err) == SF_ERR_INVALID_ARGUMENT && !p, "empty key");
}

/* Append query q's list of n keys (scores descending from 1). */
static void add_list(sf_hit_set *set, const char *q, const char *const *keys, size_t n)
{
    sf_hit_list l;
    sf_error err;
    sf_hit_list_init(&l);
    for (size_t i = 0; i < n; i++)
        sf_hit_list_append(&l, keys[i], strlen(keys[i]), 1.0 - 0.125 * (double)i, &err);
    sf_record k, s;
    char *blob;
    double *sc;
    CHECK(sf_hit_list_to_records(&l, q, &k, &s, &blob, &sc, &err) == SF_OK, "records");
    CHECK(sf_hit_set_add_records(set, q, &k, &s, &err) == SF_OK, "%s", err.message);
    free(blob);
    free(sc);
    sf_hit_list_release(&l);
}

static char *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    if (size)
        *size = n;
    return buf;
}

/* The text of the element that starts at the first occurrence of start
 * in html, up to the next end. */
static int section_has(const char *html, const char *start, const char *end, const char *want)
{
    const char *s = strstr(html, start);
    const char *e = s ? strstr(s, end) : NULL;
    const char *w = s ? strstr(s, want) : NULL;
    return w && e && w < e;
}

static void check_page(const char *dir)
{
    sf_hit_set *set;
    sf_error err;
    CHECK(sf_hit_set_create(&set, &err) == SF_OK, "set");
    /* a and b are one group, c is single; x and the odd key are not in
     * the key, nor is query zzz. */
    const char *a[] = { "photos/a.jpg", "photos/c.jpg", "photos/b.jpg", "photos/x.jpg" };
    const char *b[] = { "photos/b.jpg", "photos/a.jpg" };
    const char *c[] = { "photos/c.jpg", "photos/x.jpg", "photos/a.jpg" };
    const char *z[] = { "<b>&\"it's\".jpg" };
    add_list(set, "photos/a.jpg", a, 4);
    add_list(set, "photos/b.jpg", b, 2);
    add_list(set, "photos/c.jpg", c, 3);
    add_list(set, "zzz", z, 1);
    CHECK(sf_hit_set_rank(set, 0, 0, &err) == SF_OK, "rank");
    sf_report *rep;
    CHECK(sf_report_create(set, 2, &rep, &err) == SF_OK, "%s", err.message);
    /* Queries and shown results, each once, in order: a c (a's) b (b's)
     * x (c's) zzz odd. */
    CHECK(sf_report_image_count(rep) == 6, "images: %zu", sf_report_image_count(rep));
    CHECK(!strcmp(sf_report_image_key(rep, 1), "photos/c.jpg") &&
              !strcmp(sf_report_image_key(rep, 3), "photos/x.jpg") &&
              !strcmp(sf_report_image_key(rep, 5), "<b>&\"it's\".jpg") &&
              sf_report_image_key(rep, 6) == NULL,
          "image order");
    const char key[] = "a.jpg\tg\nb.jpg\tg\nc.jpg\tsingle_c\n";
    sf_groups *g;
    CHECK(sf_groups_parse_tsv(key, sizeof key - 1, "key.tsv", &g, &err) == SF_OK, "groups");
    size_t n_unknown = 0;
    const char *first = NULL;
    CHECK(sf_report_evaluate_groups(rep, g, "key<1>.tsv", &n_unknown, &first, &err) == SF_OK,
          "%s", err.message);
    CHECK(n_unknown == 1 && first && !strcmp(first, "zzz"), "zzz is not in the key");

    const char *top = getenv("top_srcdir");
    char img[4096];
    snprintf(img, sizeof img, "%s/examples/images/box.png", top ? top : ".");
    sf_decode_options o = { .size = 64, .autorotate = 1, .max_pixels = 1 << 26 };
    CHECK(sf_report_thumbnail(rep, 0, img, dir, &o, &err) == SF_OK, "%s", err.message);
    CHECK(sf_report_thumbnail(rep, 1, "no/such/file.jpg", dir, &o, &err) == SF_ERR_NOT_FOUND &&
              strstr(err.message, "no/such/file.jpg"),
          "a missing file is named: %s", err.message);
    CHECK(sf_report_match_picture(rep, "photos/a.jpg", "photos/c.jpg", img, dir, &o, &err) ==
              SF_OK, "%s", err.message);
    CHECK(sf_report_match_picture(rep, "photos/a.jpg", "photos/b.jpg", img, dir, &o, &err) ==
              SF_ERR_NOT_FOUND, "b is not shown for a (top 2)");
    CHECK(sf_report_match_picture(rep, "nope", "photos/b.jpg", img, dir, &o, &err) ==
              SF_ERR_NOT_FOUND, "no such query");
    CHECK(sf_report_write_html(rep, dir, "A <title>", &err) == SF_OK, "%s", err.message);

    char path[4096];
    size_t size;
    snprintf(path, sizeof path, "%s/thumbs/000001.jpg", dir);
    unsigned char *jpg = (unsigned char *)slurp(path, &size);
    CHECK(jpg && size > 100 && jpg[0] == 0xff && jpg[1] == 0xd8, "thumbnail is a JPEG");
    free(jpg);
    snprintf(path, sizeof path, "%s/thumbs/000002.jpg", dir);
    CHECK(access(path, F_OK) != 0, "no thumbnail for the missing file");
    snprintf(path, sizeof path, "%s/matches/000001.png", dir);
    unsigned char *png = (unsigned char *)slurp(path, &size);
    CHECK(png && size > 8 && !memcmp(png, "\x89PNG", 4), "match picture is a PNG");
    free(png);

    snprintf(path, sizeof path, "%s/index.html", dir);
    char *html = slurp(path, NULL);
    CHECK(html != NULL, "index.html");
    if (!html)
        html = strdup("");
    CHECK(strstr(html, "<title>A &lt;title&gt;</title>") != NULL, "title escaped");
    CHECK(strstr(html, "key&lt;1&gt;.tsv") != NULL, "answer key file escaped");
    CHECK(strstr(html, "&lt;b&gt;&amp;&#34;it&#39;s&#34;.jpg") && !strstr(html, "<b>"),
          "keys escaped");
    CHECK(!strstr(html, "<script"), "no script");
    /* box.png is 324x223: 64 on the long side. */
    CHECK(strstr(html, "<img src=\"thumbs/000001.jpg\" width=\"64\" height=\"44\"") != NULL,
          "thumbnail size");
    CHECK(section_has(html, "id=\"q1\"", "</section>", "data-ap=\"0.250000\""),
          "AP of a over its whole list: b at rank 2 after the query and c");
    CHECK(section_has(html, "id=\"q1\"", "</section>", "<li class=\"hit ignored\">") &&
              section_has(html, "id=\"q1\"", "</section>", "<li class=\"hit wrong\">") &&
              !section_has(html, "id=\"q1\"", "</section>", "hit right"),
          "a: itself, then c wrong; b is past the top 2");
    CHECK(section_has(html, "id=\"q1\"", "</section>", "<a href=\"matches/000001.png\">"),
          "the match picture of a and c is linked");
    CHECK(section_has(html, "id=\"q1\"", "</section>", "<div class=\"missing\""),
          "c has a placeholder");
    CHECK(section_has(html, "id=\"q2\"", "</section>", "data-ap=\"1.000000\"") &&
              section_has(html, "id=\"q2\"", "</section>", "<li class=\"hit right\">"),
          "b finds a");
    CHECK(section_has(html, "id=\"q2\"", "</section>",
                      "<a href=\"#q1\">photos/a.jpg</a>"),
          "a result that is a query links to its results");
    CHECK(section_has(html, "id=\"q3\"", "</section>", "nothing else in its group") &&
              !section_has(html, "id=\"q3\"", "</section>", "data-ap"),
          "c is single: no AP");
    CHECK(section_has(html, "id=\"q3\"", "</section>", "<li class=\"hit unknown\">"),
          "x is not in the key");
    CHECK(section_has(html, "id=\"q4\"", "</section>", "not in the answer key") &&
              section_has(html, "id=\"q4\"", "</section>", "<li class=\"hit unmarked\">"),
          "zzz is not in the key");
    CHECK(strstr(html, "data-map=\"0.625000\"") && strstr(html, "over 2 queries"),
          "mAP of a and b");
    free(html);
    sf_groups_free(g);

    /* A key that names no query. */
    const char other[] = "k.jpg\tg\n";
    CHECK(sf_groups_parse_tsv(other, sizeof other - 1, "other.tsv", &g, &err) == SF_OK, "groups");
    CHECK(sf_report_evaluate_groups(rep, g, "other.tsv", NULL, NULL, &err) == SF_ERR_NOT_FOUND,
          "no query in the key");
    sf_groups_free(g);
    sf_report_free(rep);

    /* Everything shown (top 0), no key: no marks, no AP. */
    CHECK(sf_report_create(set, 0, &rep, &err) == SF_OK, "%s", err.message);
    CHECK(sf_report_image_count(rep) == 6, "all six images");
    CHECK(sf_report_write_html(rep, dir, NULL, &err) == SF_OK, "%s", err.message);
    html = slurp(path, NULL);
    CHECK(html && strstr(html, "<title>sf report</title>") && !strstr(html, "hit right") &&
              !strstr(html, "hit wrong") && !strstr(html, "AP"),
          "no key, no marks");
    free(html);
    sf_report_free(rep);
    sf_hit_set_free(set);
    sf_report_free(NULL);
}

int main(void)
{
    char dir[] = "/tmp/test_report.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 99;
    }
    check_escape();
    check_key_path();
    check_page(dir);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("could not remove %s\n", dir);
    return tu_finish("test_report");
}
