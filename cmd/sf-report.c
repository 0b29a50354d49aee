/* sf-report: an HTML report of the results of sf-match, in one folder
 * that a browser opens as it is: each query, its first results with
 * thumbnails and scores, and with an answer key which results are right
 * and each query's AP.  The page, the marks and the thumbnails are
 * libsf's (sf_report.h); this file parses options, reads inputs, maps
 * keys to files and says what failed. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "sf_report.h"

enum {
    OPT_NO_SELF = SF_OPT_FIRST_PROGRAM,
    OPT_GROUPS,
    OPT_ROOT,
    OPT_TITLE,
    OPT_THUMB_SIZE,
    OPT_MATCHES,
};

static const struct option longopts[] = {
    { "output", required_argument, NULL, 'o' },
    { "top", required_argument, NULL, 'k' },
    { "no-self", no_argument, NULL, OPT_NO_SELF },
    { "groups", required_argument, NULL, OPT_GROUPS },
    { "root", required_argument, NULL, OPT_ROOT },
    { "title", required_argument, NULL, OPT_TITLE },
    { "thumb-size", required_argument, NULL, OPT_THUMB_SIZE },
    { "matches", required_argument, NULL, OPT_MATCHES },
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    "  -o, --output DIR     write the report into DIR (made if missing):\n"
    "                       DIR/index.html, DIR/thumbs/, DIR/matches/\n"
    "  -k, --top N          results shown per query (default 10; 0: all)\n"
    "      --no-self        leave each query out of its own results\n"
    "      --groups FILE    answer key of `file<TAB>group` lines: mark right and\n"
    "                       wrong results, show each query's AP and the mAP\n"
    "      --root DIR       image files are DIR/KEY (default: the keys themselves)\n"
    "      --title TEXT     the page's title (default: sf report)\n"
    "      --thumb-size N   long side of the thumbnails in pixels (default 200)\n"
    "      --matches FILE   pictures of matches, `query<TAB>result<TAB>picture`\n"
    "                       lines: each shown result links to its picture\n";

/* ---- The parts of the report ---- */

typedef struct settings {
    const char *dir, *root, *title, *groups, *matches;
    sf_decode_options decode;
} settings;

/* The answer key: a key that cannot be read is a usage error, as with
 * sf-rank; one that names no query is a failure, and the page is made
 * without marks. */
static int evaluate(const sf_cli *cli, const settings *s, sf_report *rep)
{
    sf_groups *g;
    sf_error err;
    if (sf_groups_load_tsv(s->groups, &g, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return SF_EXIT_USAGE;
    }
    size_t n_unknown = 0;
    const char *first = NULL;
    int status = SF_EXIT_OK;
    if (sf_report_evaluate_groups(rep, g, s->groups, &n_unknown, &first, &err) != SF_OK) {
        if (err.status == SF_ERR_NOMEM)
            sf_cli_out_of_memory(cli);
        sf_cli_error(cli, "%s", err.message);
        status = SF_EXIT_FAILURE;
    } else if (n_unknown) {
        sf_cli_warn(cli, "%zu queries are not in %s (%s%s); shown without marks", n_unknown,
                    s->groups, first, n_unknown > 1 ? ", ..." : "");
    }
    sf_groups_free(g);
    return status;
}

/* A thumbnail of every image; one that cannot be made is reported, with
 * its key when the file has another name, and the page shows a
 * placeholder. */
static int thumbnails(const sf_cli *cli, const settings *s, sf_report *rep)
{
    int status = SF_EXIT_OK;
    for (size_t i = 0; i < sf_report_image_count(rep); i++) {
        const char *key = sf_report_image_key(rep, i);
        char *file;
        sf_error err;
        sf_status st = sf_report_key_path(s->root, key, &file, &err);
        if (st == SF_OK)
            st = sf_report_thumbnail(rep, i, file, s->dir, &s->decode, &err);
        if (st == SF_ERR_NOMEM)
            sf_cli_out_of_memory(cli);
        if (st != SF_OK) {
            if (file && strcmp(file, key) != 0)
                sf_cli_error(cli, "key %s: %s", key, err.message);
            else
                sf_cli_error(cli, "%s", err.message);
            status = SF_EXIT_FAILURE;
        }
        free(file);
    }
    return status;
}

/* The pictures of matches the lines of the --matches list name, each
 * line checked. */
static int match_pictures(const sf_cli *cli, const settings *s, sf_report *rep, char **lines,
                          size_t n)
{
    int status = SF_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        char *q = lines[i];
        if (!*q || *q == '#')
            continue;
        char *h = strchr(q, '\t');
        char *pic = h ? strchr(h + 1, '\t') : NULL;
        if (!pic || strchr(pic + 1, '\t') || h == q || pic == h + 1 || !pic[1]) {
            sf_cli_error(cli, "%s: line %zu: not `query<TAB>result<TAB>picture`", s->matches,
                         i + 1);
            status = SF_EXIT_FAILURE;
            continue;
        }
        *h++ = '\0';
        *pic++ = '\0';
        sf_error err;
        sf_status st = sf_report_match_picture(rep, q, h, pic, s->dir, &s->decode, &err);
        if (st == SF_ERR_NOMEM)
            sf_cli_out_of_memory(cli);
        if (st != SF_OK) {
            sf_cli_error(cli, "%s: line %zu: %s", s->matches, i + 1, err.message);
            status = SF_EXIT_FAILURE;
        }
    }
    return status;
}

/* DIR, made when missing (its parent must exist). */
static int make_output_dir(const sf_cli *cli, const char *dir)
{
    struct stat st;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        sf_cli_error(cli, "%s: %s", dir, strerror(errno));
        return SF_EXIT_FATAL;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        sf_cli_error(cli, "%s: not a directory", dir);
        return SF_EXIT_FATAL;
    }
    return SF_EXIT_OK;
}

static int worse(int a, int b)
{
    return a > b ? a : b;
}

int main(int argc, char **argv)
{
    sf_cli cli;
    sf_cli_init(&cli, "sf-report", argc, argv);
    cli.synopsis = "-o DIR [OPTION]... [HITS]...";
    cli.summary = "Write an HTML report with thumbnails of the results of sf-match.";
    cli.options_help = options_help;
    settings s = { 0 };
    size_t top_k = 10;
    int thumb = 200, no_self = 0, c;
    while ((c = sf_cli_getopt(&cli, argc, argv, "o:k:", longopts)) != -1) {
        switch (c) {
        case 'o': s.dir = optarg; break;
        case 'k': top_k = (size_t)sf_cli_parse_int(&cli, "--top", optarg, 0, 1000000000); break;
        case OPT_NO_SELF: no_self = 1; break;
        case OPT_GROUPS: s.groups = optarg; break;
        case OPT_ROOT: s.root = optarg; break;
        case OPT_TITLE: s.title = optarg; break;
        case OPT_THUMB_SIZE:
            thumb = (int)sf_cli_parse_int(&cli, "--thumb-size", optarg, 16, 4096);
            break;
        case OPT_MATCHES: s.matches = optarg; break;
        default: sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    if (!s.dir || !*s.dir)
        sf_cli_usage_error(&cli, "no output folder: give -o DIR");
    if (s.root && *s.root) {
        struct stat st;
        if (stat(s.root, &st) != 0)
            sf_cli_usage_error(&cli, "--root: %s: %s", s.root, strerror(errno));
        if (!S_ISDIR(st.st_mode))
            sf_cli_usage_error(&cli, "--root: %s: not a directory", s.root);
    }
    if (optind >= argc && isatty(STDIN_FILENO))
        sf_cli_usage_error(&cli, "no input: name hit streams (sf-match output) or pipe one in");
    /* Lists that cannot be read are usage errors, as sf-rank's answer
     * key is: found before anything is written. */
    char **match_lines = NULL;
    size_t n_match_lines = 0;
    if (s.matches) {
        const char *why;
        match_lines = sf_cli_read_lines(&cli, s.matches, &n_match_lines, &why);
        if (!match_lines) {
            sf_cli_error(&cli, "%s: %s", s.matches, why);
            return sf_cli_finish(&cli, SF_EXIT_USAGE);
        }
    }
    s.decode.size = thumb;
    s.decode.autorotate = 1; /* thumbnails are for people: upright */
    s.decode.max_pixels = cli.config.max_pixels;
    s.decode.max_bytes = cli.config.max_bytes;
    s.decode.max_memory = cli.config.max_memory;

    sf_error err;
    sf_hit_set *set = NULL;
    if (sf_hit_set_create(&set, &err) != SF_OK)
        sf_cli_out_of_memory(&cli);
    cli.all_inputs = 1; /* a report of part of the inputs would look whole */
    int status = sf_cli_read_hits(&cli, argc, argv, optind, set);
    sf_report *rep = NULL;
    if (status == SF_EXIT_FATAL) {
        sf_cli_error(&cli, "no report: an input could not be read");
    } else {
        /* All results stay ranked, so that APs are over whole lists. */
        if (sf_hit_set_rank(set, no_self, 0, &err) != SF_OK ||
            sf_report_create(set, top_k, &rep, &err) != SF_OK)
            sf_cli_out_of_memory(&cli);
        if (s.groups)
            status = worse(status, evaluate(&cli, &s, rep));
        if (status != SF_EXIT_USAGE) {
            int st = make_output_dir(&cli, s.dir);
            if (st == SF_EXIT_OK) {
                st = thumbnails(&cli, &s, rep);
                if (match_lines)
                    st = worse(st, match_pictures(&cli, &s, rep, match_lines, n_match_lines));
                if (sf_report_write_html(rep, s.dir, s.title, &err) != SF_OK) {
                    if (err.status == SF_ERR_NOMEM)
                        sf_cli_out_of_memory(&cli);
                    sf_cli_error(&cli, "%s", err.message);
                    st = SF_EXIT_FATAL;
                } else {
                    sf_cli_info(&cli, "%s/index.html: %zu queries, %zu images", s.dir,
                                sf_hit_set_count(set), sf_report_image_count(rep));
                }
            }
            status = worse(status, st);
        }
    }
    sf_cli_free_lines(match_lines, n_match_lines);
    sf_report_free(rep);
    sf_hit_set_free(set);
    return sf_cli_finish(&cli, status);
}
