/* sf-draw: pictures of what sf found.  `match` draws the matched
 * super-features of a query and one of its hits (sf-match --pairwise
 * output) between the two photos; `attention` draws an image's attention
 * maps as heat maps.  Locating and drawing are libsf's (sf_draw.h); this
 * file finds the images in the streams and writes the picture. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
    OPT_LOCATION = SF_OPT_FIRST_PROGRAM,
    OPT_HEIGHT,
    OPT_QUERY,
    OPT_HIT,
    OPT_COLOR,
    OPT_RANGE,
    OPT_MAX_LINES,
    OPT_LINE_WIDTH,
    OPT_TEMPLATES,
    OPT_STRONGEST,
    OPT_SCALE,
    OPT_COLUMNS,
    OPT_MARK,
};

static const struct option longopts[] = {
    { "output", required_argument, NULL, 'o' },
    { "location", required_argument, NULL, OPT_LOCATION },
    { "height", required_argument, NULL, OPT_HEIGHT },
    { "query", required_argument, NULL, OPT_QUERY },
    { "hit", required_argument, NULL, OPT_HIT },
    { "color", required_argument, NULL, OPT_COLOR },
    { "range", required_argument, NULL, OPT_RANGE },
    { "max-lines", required_argument, NULL, OPT_MAX_LINES },
    { "line-width", required_argument, NULL, OPT_LINE_WIDTH },
    { "key", required_argument, NULL, 'k' },
    { "templates", required_argument, NULL, OPT_TEMPLATES },
    { "strongest", required_argument, NULL, OPT_STRONGEST },
    { "scale", required_argument, NULL, OPT_SCALE },
    { "columns", required_argument, NULL, OPT_COLUMNS },
    { "mark", no_argument, NULL, OPT_MARK },
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    "Commands:\n"
    "  match MATCHES FEATURES...  the matches of a query and one of its hits, from\n"
    "                       sf-match --pairwise output MATCHES, between the two photos\n"
    "  attention FEATURES...      one image's attention maps as heat maps\n"
    "\n"
    "  -o, --output FILE    the picture: .png or .jpg (required)\n"
    "      --location HOW   peak (default) or centroid of a super-feature's attention\n"
    "      --height N       resize the photos to N pixels high (default: as stored)\n"
    "match:\n"
    "      --query KEY      the query image (default: the first in MATCHES with hits)\n"
    "      --hit KEY        its hit to draw (default: the best other than itself)\n"
    "      --color RRGGBB   draw every line in this colour, not by similarity\n"
    "      --range LO,HI    similarities spanning the colour ramp (default: those drawn)\n"
    "      --max-lines N    draw only the N most similar matches\n"
    "      --line-width N   line width in pixels (default 2)\n"
    "attention:\n"
    "  -k, --key KEY        the image (default: the first of the streams)\n"
    "      --templates LIST the maps of these templates, e.g. 0,3,7 ...\n"
    "      --scale S        ... at this scale (default: the one nearest 1)\n"
    "      --strongest N    or those of the N strongest super-features (default 8)\n"
    "      --columns N      panels per row (default: up to 4)\n"
    "      --mark           ring each strongest super-feature's location\n";

typedef struct options {
    const char *output;
    sf_draw_match_options match;
    sf_draw_attention_options att;
    int *templates;
    const char *query, *hit, *key;
    const char *match_only, *attention_only; /* an option given, for usage errors */
} options;

/* ---- Parsing ---- */

static double parse_double(const sf_cli *cli, const char *option, const char *text)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v))
        sf_cli_usage_error(cli, "%s: expected a number, got '%s'", option, text);
    return v;
}

static void parse_color(const sf_cli *cli, const char *text, uint8_t rgb[3])
{
    if (text[0] == '#')
        text++;
    unsigned v = 0;
    size_t n = strspn(text, "0123456789abcdefABCDEF");
    if (n != 6 || text[6] || sscanf(text, "%6x", &v) != 1)
        sf_cli_usage_error(cli, "--color: expected RRGGBB in hexadecimal, got '%s'", text);
    rgb[0] = (uint8_t)(v >> 16);
    rgb[1] = (uint8_t)(v >> 8);
    rgb[2] = (uint8_t)v;
}

static void parse_range(const sf_cli *cli, const char *text, sf_draw_match_options *m)
{
    char *end;
    m->lo = strtod(text, &end);
    if (end == text || *end != ',' || !isfinite(m->lo))
        sf_cli_usage_error(cli, "--range: expected LO,HI, got '%s'", text);
    const char *h = end + 1;
    m->hi = strtod(h, &end);
    if (end == h || *end || !isfinite(m->hi) || !(m->hi > m->lo))
        sf_cli_usage_error(cli, "--range: expected LO,HI with LO < HI, got '%s'", text);
    m->has_range = 1;
}

static void parse_templates(const sf_cli *cli, const char *text, options *o)
{
    size_t n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    free(o->templates);
    o->templates = sf_cli_xmalloc(cli, n * sizeof *o->templates);
    const char *p = text;
    for (size_t i = 0; i < n; i++) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || (*end != ',' && *end) || v < 0 || v > 1000000)
            sf_cli_usage_error(cli, "--templates: expected template numbers separated by "
                                    "commas, got '%s'", text);
        o->templates[i] = (int)v;
        p = end + 1;
    }
    o->att.templates = o->templates;
    o->att.n_templates = n;
}

static void handle_option(sf_cli *cli, options *o, int c, const char *arg)
{
    const char *name = NULL;
    for (const struct option *l = longopts; l->name; l++)
        if (l->val == c)
            name = l->name;
    switch (c) {
    case 'o':
        if (!sf_draw_format_known(arg))
            sf_cli_usage_error(cli, "--output: '%s' does not end in .png, .jpg or .jpeg", arg);
        o->output = arg;
        return;
    case OPT_LOCATION:
        if (strcmp(arg, "peak") == 0)
            o->match.location = o->att.location = SF_DRAW_PEAK;
        else if (strcmp(arg, "centroid") == 0)
            o->match.location = o->att.location = SF_DRAW_CENTROID;
        else
            sf_cli_usage_error(cli, "--location: expected peak or centroid, got '%s'", arg);
        return;
    case OPT_HEIGHT:
        o->match.height = o->att.height =
            (int)sf_cli_parse_int(cli, "--height", arg, 1, 65536);
        return;
    case OPT_QUERY: o->query = arg; break;
    case OPT_HIT: o->hit = arg; break;
    case OPT_COLOR:
        parse_color(cli, arg, o->match.color);
        o->match.fixed_color = 1;
        break;
    case OPT_RANGE: parse_range(cli, arg, &o->match); break;
    case OPT_MAX_LINES:
        o->match.max_lines = (size_t)sf_cli_parse_int(cli, "--max-lines", arg, 1, INT32_MAX);
        break;
    case OPT_LINE_WIDTH:
        o->match.line_width = (int)sf_cli_parse_int(cli, "--line-width", arg, 1, 64);
        break;
    case 'k': o->key = arg; o->attention_only = "--key"; return;
    case OPT_TEMPLATES: parse_templates(cli, arg, o); o->attention_only = "--templates"; return;
    case OPT_STRONGEST:
        o->att.strongest = (size_t)sf_cli_parse_int(cli, "--strongest", arg, 1, 4096);
        o->attention_only = "--strongest";
        return;
    case OPT_SCALE:
        o->att.scale = parse_double(cli, "--scale", arg);
        if (!(o->att.scale > 0))
            sf_cli_usage_error(cli, "--scale: expected a positive scale, got '%s'", arg);
        o->attention_only = "--scale";
        return;
    case OPT_COLUMNS:
        o->att.columns = (int)sf_cli_parse_int(cli, "--columns", arg, 1, 4096);
        o->attention_only = "--columns";
        return;
    case OPT_MARK: o->att.mark = 1; o->attention_only = "--mark"; return;
    default: sf_cli_usage_error(cli, "unexpected option");
    }
    /* The options of match only. */
    static char flag[32];
    snprintf(flag, sizeof flag, "--%s", name ? name : "?");
    o->match_only = flag;
}

/* ---- Finding images in streams ---- */

/* One image wanted from the streams: a copy of its records, with the
 * stream it came from. */
typedef struct wanted {
    const char *key; /* NULL: the first image */
    char *key_copy;
    const char *stream;
    sf_cli_batch recs;
    int found;
    unsigned needs;  /* SF_DRAW_NEED_*, or 0 for the matches stream */
} wanted;

typedef struct gather {
    sf_cli *cli;
    wanted *w;
    size_t n;
} gather;

static int is_hits_image(const sf_stream_image *img)
{
    return sf_stream_image_find(img, SF_KIND_HIT_KEYS) != NULL;
}

static int gather_image(void *ctx, const sf_stream_image *img, const char *name)
{
    gather *g = ctx;
    for (size_t i = 0; i < g->n; i++) {
        wanted *w = &g->w[i];
        if (w->found)
            continue;
        if (w->key ? (strlen(w->key) != img->key_len || memcmp(w->key, img->key, img->key_len))
                   : (w->needs == 0 && !is_hits_image(img)))
            continue;
        if (!w->key) {
            w->key_copy = strdup(img->key);
            if (!w->key_copy)
                sf_cli_out_of_memory(g->cli);
            w->key = w->key_copy;
        }
        for (size_t r = 0; r < img->count; r++)
            sf_cli_batch_add(g->cli, &w->recs, &img->recs[r]);
        w->stream = strcmp(name, "<stdin>") == 0 ? "<stdin>" : name;
        w->found = 1;
    }
    return SF_EXIT_OK;
}

static sf_stream_image as_image(const wanted *w)
{
    sf_stream_image img;
    memset(&img, 0, sizeof img);
    img.key = w->key;
    img.key_len = strlen(w->key);
    img.recs = w->recs.recs;
    img.count = w->recs.count;
    return img;
}

/* The status for a library failure: out of memory or I/O ends the run. */
static int failure(sf_status st)
{
    return st == SF_ERR_NOMEM || st == SF_ERR_IO ? SF_EXIT_FATAL : SF_EXIT_FAILURE;
}

static int worst(int a, int b)
{
    return a > b ? a : b;
}

static int save(sf_cli *cli, const options *o, sf_rgb_image *pic, int status)
{
    sf_error err;
    if (sf_draw_save(pic, o->output, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        sf_rgb_image_release(pic);
        return SF_EXIT_FATAL;
    }
    sf_cli_info(cli, "wrote %s (%dx%d)", o->output, pic->width, pic->height);
    sf_rgb_image_release(pic);
    return status;
}

/* Is each feature image there and does it hold what the picture needs? */
static int check_found(sf_cli *cli, wanted *w, size_t n)
{
    int status = SF_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        sf_error err;
        if (!w[i].found) {
            if (w[i].key)
                sf_cli_error(cli, "'%s' is in none of the feature streams", w[i].key);
            else
                sf_cli_error(cli, "the feature streams hold no image");
            status = SF_EXIT_FAILURE;
            continue;
        }
        sf_stream_image img = as_image(&w[i]);
        if (sf_draw_check_image(&img, w[i].needs, &err) != SF_OK) {
            sf_cli_error(cli, "%s: %s", w[i].stream, err.message);
            status = SF_EXIT_FAILURE;
        }
    }
    return status;
}

/* ---- match ---- */

/* The hit to draw: its position among the query's hits, or -1 (reported). */
static long choose_hit(sf_cli *cli, const options *o, const wanted *q, const char **hit_key)
{
    sf_stream_image img = as_image(q);
    const sf_record *keys = sf_stream_image_find(&img, SF_KIND_HIT_KEYS);
    size_t lists = 0;
    for (size_t i = 0; i < img.count; i++)
        lists += (img.recs[i].kind & ~(int)SF_KIND_OPTIONAL) == SF_KIND_HIT_KEYS;
    if (lists > 1) {
        sf_cli_error(cli, "%s: '%s' holds %zu hit lists; sf-rank merges them", q->stream,
                     q->key, lists);
        return -1;
    }
    const char *p = keys->data, *end = p + keys->data_size;
    long pos = 0;
    size_t n = 0;
    for (const char *k = p; k < end; k += strlen(k) + 1)
        n++;
    for (const char *k = p; k < end; k += strlen(k) + 1, pos++) {
        if (o->hit ? strcmp(k, o->hit) == 0 : strcmp(k, q->key) != 0) {
            *hit_key = k;
            return pos;
        }
    }
    if (o->hit)
        sf_cli_error(cli, "%s: '%s' is not among the %zu hits of '%s' (sf-match -k and "
                     "--min-matches choose them)", q->stream, o->hit, n, q->key);
    else
        sf_cli_error(cli, "%s: '%s' has no hit other than itself", q->stream, q->key);
    return -1;
}

/* The match records of hit `pos`: pairs and similarities of equal length. */
static int find_pairs(sf_cli *cli, const wanted *q, long pos, const sf_record **pairs,
                      const sf_record **sim)
{
    *pairs = *sim = NULL;
    for (size_t i = 0; i < q->recs.count; i++) {
        const sf_record *r = &q->recs.recs[i];
        int kind = r->kind & ~(int)SF_KIND_OPTIONAL;
        if (r->index != (uint32_t)pos)
            continue;
        if (kind == SF_KIND_MATCH_PAIRS && !*pairs)
            *pairs = r;
        else if (kind == SF_KIND_MATCH_SIMILARITY && !*sim)
            *sim = r;
    }
    if (!*pairs || !*sim) {
        sf_cli_error(cli, "%s: '%s': no %s record for hit %ld (sf-match --pairwise writes "
                     "them, unless --no-pairs)", q->stream, q->key,
                     *pairs ? "match_similarity" : "match_pairs", pos + 1);
        return 0;
    }
    if ((*pairs)->shape[0] != (*sim)->shape[0]) {
        sf_cli_error(cli, "%s: '%s': hit %ld has %llu match pairs but %llu similarities",
                     q->stream, q->key, pos + 1, (unsigned long long)(*pairs)->shape[0],
                     (unsigned long long)(*sim)->shape[0]);
        return 0;
    }
    return 1;
}

static int cmd_match(sf_cli *cli, options *o, int n_ops, char **ops)
{
    if (o->attention_only)
        sf_cli_usage_error(cli, "%s is an option of attention", o->attention_only);
    if (n_ops < 1)
        sf_cli_usage_error(cli, "match needs a MATCHES stream (sf-match --pairwise output) "
                                "and FEATURES streams");
    if (n_ops < 2)
        sf_cli_usage_error(cli, "match needs FEATURES streams after %s (the images, with "
                                "pixels and attention records)", ops[0]);
    int stdin_uses = 0;
    for (int i = 0; i < n_ops; i++)
        stdin_uses += strcmp(ops[i], "-") == 0;
    if (stdin_uses > 1)
        sf_cli_usage_error(cli, "standard input (-) can be read only once");

    wanted q = { .key = o->query };
    gather g = { cli, &q, 1 };
    int status = sf_cli_each_image(cli, ops[0], gather_image, &g);
    if (status == SF_EXIT_FATAL)
        goto out_q;
    if (!q.found) {
        if (o->query)
            sf_cli_error(cli, "%s: no image '%s'", ops[0], o->query);
        else
            sf_cli_error(cli, "%s: no image with hits (sf-match writes them)", ops[0]);
        status = SF_EXIT_FAILURE;
        goto out_q;
    }
    sf_stream_image qi = as_image(&q);
    if (!sf_stream_image_find(&qi, SF_KIND_HIT_KEYS)) {
        sf_cli_error(cli, "%s: '%s': no hit_keys record (sf-match writes it)", q.stream, q.key);
        status = SF_EXIT_FAILURE;
        goto out_q;
    }
    const char *hit_key = NULL;
    long pos = choose_hit(cli, o, &q, &hit_key);
    const sf_record *pairs, *sim;
    if (pos < 0 || !find_pairs(cli, &q, pos, &pairs, &sim)) {
        status = SF_EXIT_FAILURE;
        goto out_q;
    }

    const unsigned needs = SF_DRAW_NEED_PIXELS | SF_DRAW_NEED_ATTENTION | SF_DRAW_NEED_LOCAL;
    wanted w[2] = { { .key = q.key, .needs = needs }, { .key = hit_key, .needs = needs } };
    g = (gather){ cli, w, 2 };
    for (int i = 1; i < n_ops && status != SF_EXIT_FATAL; i++)
        status = worst(status, sf_cli_each_image(cli, ops[i], gather_image, &g));
    if (status != SF_EXIT_FATAL) {
        int s = check_found(cli, w, 2);
        if (s != SF_EXIT_OK) {
            status = worst(status, s);
        } else {
            sf_stream_image a = as_image(&w[0]), b = as_image(&w[1]);
            sf_rgb_image pic;
            sf_error err;
            sf_status st = sf_draw_match(&a, &b, pairs->data, sim->data,
                                         (size_t)pairs->shape[0], &o->match, &pic, &err);
            if (st != SF_OK) {
                sf_cli_error(cli, "%s: %s", ops[0], err.message);
                status = worst(status, failure(st));
            } else {
                sf_cli_info(cli, "'%s' and '%s': %llu matches", q.key, hit_key,
                            (unsigned long long)pairs->shape[0]);
                status = save(cli, o, &pic, status);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        sf_cli_batch_free(&w[i].recs);
out_q:
    sf_cli_batch_free(&q.recs);
    free(q.key_copy);
    return status;
}

/* ---- attention ---- */

static int cmd_attention(sf_cli *cli, options *o, int n_ops, char **ops)
{
    if (o->match_only)
        sf_cli_usage_error(cli, "%s is an option of match", o->match_only);
    if (o->att.n_templates && o->att.strongest)
        sf_cli_usage_error(cli, "--templates and --strongest exclude each other");
    if (o->att.scale > 0 && !o->att.n_templates)
        sf_cli_usage_error(cli, "--scale goes with --templates (the strongest super-features "
                                "each come with their own scale)");
    if (o->att.mark && o->att.n_templates)
        sf_cli_usage_error(cli, "--mark goes with --strongest (a template has no location)");
    if (!o->att.n_templates && !o->att.strongest)
        o->att.strongest = 8;
    unsigned needs = SF_DRAW_NEED_PIXELS | SF_DRAW_NEED_ATTENTION;
    if (!o->att.n_templates)
        needs |= SF_DRAW_NEED_LOCAL | SF_DRAW_NEED_STRENGTH;
    wanted w = { .key = o->key, .needs = needs };
    gather g = { cli, &w, 1 };
    static char *stdin_only[] = { "sf-draw", "-" };
    int status = n_ops ? sf_cli_each_image_of(cli, n_ops + 1, ops - 1, 1, gather_image, &g)
                       : sf_cli_each_image_of(cli, 2, stdin_only, 1, gather_image, &g);
    if (status != SF_EXIT_FATAL) {
        int s = check_found(cli, &w, 1);
        if (s != SF_EXIT_OK) {
            status = worst(status, s);
        } else {
            sf_stream_image img = as_image(&w);
            sf_rgb_image pic;
            sf_error err;
            sf_status st = sf_draw_attention(&img, &o->att, &pic, &err);
            if (st != SF_OK) {
                sf_cli_error(cli, "%s: %s", w.stream, err.message);
                status = worst(status, failure(st));
            } else {
                status = save(cli, o, &pic, status);
            }
        }
    }
    sf_cli_batch_free(&w.recs);
    free(w.key_copy);
    return status;
}

int main(int argc, char **argv)
{
    sf_cli cli;
    options o;
    memset(&o, 0, sizeof o);
    sf_draw_match_options_init(&o.match);
    sf_draw_attention_options_init(&o.att);
    sf_cli_init(&cli, "sf-draw", argc, argv);
    cli.synopsis = "match|attention -o PICTURE [OPTION]... STREAM...";
    cli.summary = "Draw matched super-features between two photos, or attention heat maps.";
    cli.options_help = options_help;
    /* Options may come anywhere; "--" ends them. */
    int n_ops = 0, c;
    while ((c = sf_cli_getopt_anywhere(&cli, argc, argv, "o:k:", longopts, &n_ops)) != -1)
        handle_option(&cli, &o, c, optarg);
    char **ops = argv + 1;
    if (n_ops == 0)
        sf_cli_usage_error(&cli, "no command (match, attention)");
    const char *cmd = ops[0];
    if (strcmp(cmd, "match") != 0 && strcmp(cmd, "attention") != 0)
        sf_cli_usage_error(&cli, "unknown command '%s' (match, attention)", cmd);
    if (!o.output)
        sf_cli_usage_error(&cli, "%s needs -o PICTURE (.png or .jpg)", cmd);
    int status = strcmp(cmd, "match") == 0 ? cmd_match(&cli, &o, n_ops - 1, ops + 1)
                                           : cmd_attention(&cli, &o, n_ops - 1, ops + 1);
    free(o.templates);
    return sf_cli_finish(&cli, status);
}
