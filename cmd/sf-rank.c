/* sf-rank: turn the hit records of sf-match into rankings (TSV, CSV, JSON
 * Lines, the pairs files of 3-D reconstruction tools, or a stream), merging the lists that shards produced for the same query,
 * or evaluate them against an answer key.  The table of queries, ranking,
 * pairs, name matching and evaluation are libsf's (sf_hits.h, sf_eval.h);
 * this file parses options, reads inputs and prints. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sf_eval.h"
#include "sf_hits.h"

enum {
    OPT_NO_SELF = SF_OPT_FIRST_PROGRAM,
    OPT_GROUPS,
    OPT_GND,
    OPT_DB_LIST,
    OPT_QUERY_LIST,
    OPT_RECALL,
    OPT_PER_QUERY,
    OPT_ROOT,
};

static const struct option longopts[] = {
    { "top", required_argument, NULL, 'k' },
    { "format", required_argument, NULL, 'f' },
    { "no-self", no_argument, NULL, OPT_NO_SELF },
    { "groups", required_argument, NULL, OPT_GROUPS },
    { "gnd", required_argument, NULL, OPT_GND },
    { "db-list", required_argument, NULL, OPT_DB_LIST },
    { "query-list", required_argument, NULL, OPT_QUERY_LIST },
    { "recall", required_argument, NULL, OPT_RECALL },
    { "per-query", no_argument, NULL, OPT_PER_QUERY },
    { "root", required_argument, NULL, OPT_ROOT },
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    "Ranking:\n"
    "  -k, --top N          results per query (default 10; 0: all)\n"
    "  -f, --format F       tsv: query, rank, database key, score (the default)\n"
    "                       pairs: query and database key, each pair of images once\n"
    "                       stream: merged hit records, as sf-match writes them\n"
    "                       csv: as tsv, with a header (RFC 4180)\n"
    "                       jsonl: JSON Lines, an object per result\n"
    "                       colmap, hloc, kapture: pairs as those tools read them\n"
    "      --root DIR       colmap, hloc, kapture: names relative to DIR\n"
    "      --no-self        leave each query out of its own results\n"
    "\nEvaluation (prints a report instead of the rankings; all results are used\n"
    "unless -k is given):\n"
    "      --groups FILE    answer key of `file<TAB>group` lines\n"
    "      --gnd FILE       revisited Oxford/Paris ground truth (YAML), with\n"
    "      --db-list FILE   its database images, line i naming id i, and\n"
    "      --query-list FILE  its queries, line q naming query q\n"
    "      --recall LIST    recall at these ranks (default 1,5,10)\n"
    "      --per-query      also print every query's AP\n";

enum format {
    FORMAT_TSV,
    FORMAT_PAIRS,
    FORMAT_STREAM,
    FORMAT_CSV,
    FORMAT_JSONL,
    FORMAT_COLMAP,
    FORMAT_HLOC,
    FORMAT_KAPTURE
};

static const char *const format_names[] = { "tsv", "pairs", "stream", "csv", "jsonl",
                                            "colmap", "hloc", "kapture" };

/* ---- Output ---- */

/* Keys are written with tab, newline, CR and backslash escaped. */
static void put_key(const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\t': fputs("\\t", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        default: putchar(*s);
        }
    }
}

static void print_tsv(const sf_hit_set *set)
{
    for (size_t i = 0; i < sf_hit_set_count(set); i++) {
        const sf_hit_list *hits = sf_hit_set_hits(set, i);
        for (size_t j = 0; j < hits->count; j++) {
            put_key(sf_hit_set_key(set, i));
            printf("\t%zu\t", j + 1);
            put_key(hits->keys[j]);
            printf("\t%.9g\n", hits->scores[j]);
        }
    }
}

static void print_pairs(const sf_cli *cli, const sf_hit_set *set)
{
    sf_hit_pair *pairs;
    size_t n;
    sf_error err;
    if (sf_hit_set_pairs(set, &pairs, &n, &err) != SF_OK)
        sf_cli_out_of_memory(cli);
    for (size_t i = 0; i < n; i++) {
        put_key(pairs[i].a);
        putchar('\t');
        put_key(pairs[i].b);
        putchar('\n');
    }
    free(pairs);
}

/* The text form of a key made by make (CSV field, JSON string), or NULL
 * with the reason in err. */
static char *text_of(const sf_cli *cli, const char *key,
                     sf_status (*make)(const char *, char **, sf_error *), sf_error *err)
{
    char *t;
    sf_status st = make(key, &t, err);
    if (st == SF_ERR_NOMEM)
        sf_cli_out_of_memory(cli);
    return st == SF_OK ? t : NULL;
}

/* CSV (RFC 4180: a header, CRLF line ends, fields quoted as needed) or
 * JSON Lines.  Scores as in TSV; JSON has no NaN or infinity: null.  A
 * result whose keys cannot be written is left out, with one line. */
static int print_table(const sf_cli *cli, const sf_hit_set *set, int json)
{
    int status = SF_EXIT_OK;
    sf_status (*make)(const char *, char **, sf_error *) =
        json ? sf_text_json_string : sf_text_csv_field;
    if (!json)
        fputs("query,rank,key,score\r\n", stdout);
    for (size_t i = 0; i < sf_hit_set_count(set); i++) {
        const sf_hit_list *hits = sf_hit_set_hits(set, i);
        sf_error err;
        char *q = text_of(cli, sf_hit_set_key(set, i), make, &err);
        if (!q) {
            sf_cli_error(cli, "%s; its %zu results left out", err.message, hits->count);
            status = SF_EXIT_FAILURE;
            continue;
        }
        for (size_t j = 0; j < hits->count; j++) {
            char *k = text_of(cli, hits->keys[j], make, &err);
            if (!k) {
                char shown[256];
                sf_cli_error(cli, "%s; result %zu of %s left out", err.message, j + 1,
                             sf_text_printable(sf_hit_set_key(set, i), shown, sizeof shown));
                status = SF_EXIT_FAILURE;
                continue;
            }
            const double sc = hits->scores[j];
            if (!json)
                printf("%s,%zu,%s,%.9g\r\n", q, j + 1, k, sc);
            else if (isfinite(sc))
                printf("{\"query\":%s,\"rank\":%zu,\"key\":%s,\"score\":%.9g}\n", q, j + 1,
                       k, sc);
            else
                printf("{\"query\":%s,\"rank\":%zu,\"key\":%s,\"score\":null}\n", q, j + 1, k);
            free(k);
        }
        free(q);
    }
    return status;
}

/* The name of key in a pairs file, or NULL after saying why the pair of
 * a and b is left out. */
static const char *pair_name(const sf_cli *cli, sf_pairs_format f, const char *key,
                             const char *root, int field, const char *a, const char *b)
{
    const char *name;
    sf_error err;
    if (sf_pairs_name(f, key, root, field, &name, &err) != SF_OK) {
        char sa[256], sb[256];
        sf_cli_error(cli, "pair %s, %s left out: %s", sf_text_printable(a, sa, sizeof sa),
                     sf_text_printable(b, sb, sizeof sb), err.message);
        return NULL;
    }
    return name;
}

/* The pairs of -f pairs as COLMAP, hloc or kapture read them.  COLMAP:
 * `a b` as -f pairs orders them; hloc and kapture: `query hit` and
 * `query, hit, score` as first met (their readers take the query first).
 * A pair a name of which the format cannot hold is left out, with one
 * line, never written broken. */
static int print_tool_pairs(const sf_cli *cli, const sf_hit_set *set, enum format format,
                            const char *root)
{
    const sf_pairs_format f = format == FORMAT_COLMAP ? SF_PAIRS_COLMAP
                              : format == FORMAT_HLOC ? SF_PAIRS_HLOC
                                                      : SF_PAIRS_KAPTURE;
    sf_hit_pair *pairs;
    size_t n;
    sf_error err;
    if (sf_hit_set_pairs(set, &pairs, &n, &err) != SF_OK)
        sf_cli_out_of_memory(cli);
    if (f == SF_PAIRS_KAPTURE)
        fputs("# kapture format: 1.1\n# query_image, map_image, score\n", stdout);
    int status = SF_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        const sf_hit_pair *p = &pairs[i];
        const char *first = f == SF_PAIRS_COLMAP ? p->a : p->query;
        const char *second = f == SF_PAIRS_COLMAP ? p->b : p->hit;
        const char *x = pair_name(cli, f, first, root, 0, first, second);
        const char *y = x ? pair_name(cli, f, second, root, 1, first, second) : NULL;
        if (!y) {
            status = SF_EXIT_FAILURE;
            continue;
        }
        if (f == SF_PAIRS_KAPTURE)
            printf("%s, %s, %.9g\n", x, y, p->score);
        else
            printf("%s %s\n", x, y);
    }
    free(pairs);
    return status;
}

static void write_stream(sf_cli *cli, const sf_hit_set *set)
{
    for (size_t i = 0; i < sf_hit_set_count(set); i++) {
        sf_record kr, sr;
        char *blob;
        double *scores;
        sf_error err;
        if (sf_hit_list_to_records(sf_hit_set_hits(set, i), sf_hit_set_key(set, i), &kr, &sr,
                                   &blob, &scores, &err) != SF_OK)
            sf_cli_out_of_memory(cli);
        sf_cli_batch b = { 0 };
        sf_cli_batch_add_owned(cli, &b, &kr, blob);
        sf_cli_batch_add_owned(cli, &b, &sr, scores);
        sf_cli_batch_flush(cli, &b);
        sf_cli_batch_free(&b);
    }
}

/* ---- Evaluation ---- */

typedef struct eval_opts {
    const char *groups, *gnd, *db_list, *query_list;
    int recall_ks[SF_EVAL_MAX_RECALL];
    size_t n_recall;
    int per_query;
} eval_opts;

/* A list file's lines; NULL after reporting why not. */
static char **read_list(const sf_cli *cli, const char *path, size_t *n)
{
    const char *why;
    char **lines = sf_cli_read_lines(cli, path, n, &why);
    if (!lines)
        sf_cli_error(cli, "%s: %s", path, why);
    return lines;
}

static const char *const protocol_names[SF_EVAL_N_PROTOCOLS] = { "easy", "medium", "hard" };

/* The report of e; a groups key has no hard positives, so only Medium
 * (Easy equals it) is shown, named "groups". */
static int print_report(const sf_cli *cli, const eval_opts *o, const sf_eval_hits *e, int groups)
{
    sf_eval_report rep;
    sf_error err;
    if (sf_eval_report_compute(e->gnd, e->ranks, e->width, o->recall_ks, o->n_recall, &rep,
                               &err) != SF_OK) {
        sf_cli_error(cli, "evaluation: %s", err.message);
        return SF_EXIT_FATAL;
    }
    const int first = groups ? SF_EVAL_MEDIUM : 0, last = groups ? SF_EVAL_MEDIUM : 2;
    const size_t n_q = e->gnd->n_queries;
    if (o->per_query) {
        printf("# query\tprotocol\tAP\n");
        for (int p = first; p <= last; p++)
            for (size_t q = 0; q < n_q; q++) {
                put_key(e->row_names[q]);
                printf("\t%s\t%.6f\n", groups ? "groups" : protocol_names[p],
                       rep.aps[(size_t)p * n_q + q]);
            }
    }
    printf("# protocol\tqueries\tmAP");
    for (int k = 0; k < SF_EVAL_N_KAPPAS; k++)
        printf("\tmP@%d", sf_eval_kappas[k]);
    for (size_t k = 0; k < o->n_recall; k++)
        printf("\tR@%d", o->recall_ks[k]);
    putchar('\n');
    for (int p = first; p <= last; p++) {
        printf("%s\t%zu\t%.6f", groups ? "groups" : protocol_names[p],
               rep.summary.n_scored[p], rep.summary.map[p]);
        for (int k = 0; k < SF_EVAL_N_KAPPAS; k++)
            printf("\t%.6f", rep.summary.mpk[p][k]);
        for (size_t k = 0; k < o->n_recall; k++)
            printf("\t%.6f", rep.recall[p][k]);
        putchar('\n');
    }
    sf_eval_report_release(&rep);
    return SF_EXIT_OK;
}

/* Queries outside the key (distractors, database images searched too) are
 * no error: one line for them all. */
static void warn_unknown(const sf_cli *cli, const sf_eval_hits *e, const char *key_file)
{
    if (e->n_unknown)
        sf_cli_warn(cli, "%zu queries are not in %s (%s%s); left out", e->n_unknown, key_file,
                    e->first_unknown, e->n_unknown > 1 ? ", ..." : "");
}

static int evaluate_groups(const sf_cli *cli, const eval_opts *o, const sf_hit_set *set)
{
    sf_groups *g;
    sf_eval_hits *e;
    sf_error err;
    if (sf_groups_load_tsv(o->groups, &g, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return SF_EXIT_USAGE;
    }
    int status;
    if (sf_eval_hits_groups(set, g, o->groups, &e, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        status = err.status == SF_ERR_NOT_FOUND ? SF_EXIT_FAILURE : SF_EXIT_FATAL;
    } else {
        status = print_report(cli, o, e, 1);
        warn_unknown(cli, e, o->groups);
    }
    sf_eval_hits_free(e);
    sf_groups_free(g);
    return status;
}

static int evaluate_gnd(const sf_cli *cli, const eval_opts *o, const sf_hit_set *set)
{
    if (!o->db_list || !o->query_list)
        sf_cli_usage_error(cli, "--gnd needs --db-list and --query-list");
    sf_gnd *gnd;
    sf_error err;
    if (sf_gnd_load_yaml(o->gnd, &gnd, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return SF_EXIT_USAGE;
    }
    size_t n_db, n_q;
    char **db_names = read_list(cli, o->db_list, &n_db);
    char **q_names = db_names ? read_list(cli, o->query_list, &n_q) : NULL;
    if (!q_names) {
        sf_cli_free_lines(db_names, n_db);
        sf_gnd_free(gnd);
        return SF_EXIT_USAGE;
    }
    const sf_eval_list db = { (const char *const *)db_names, n_db, o->db_list };
    const sf_eval_list queries = { (const char *const *)q_names, n_q, o->query_list };
    sf_eval_hits *e;
    int status = SF_EXIT_OK;
    if (sf_eval_hits_gnd(set, gnd, o->gnd, &db, &queries, &e, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        status = err.status == SF_ERR_NOMEM ? SF_EXIT_FATAL : SF_EXIT_USAGE;
    } else {
        warn_unknown(cli, e, o->query_list);
        for (size_t q = 0; q < n_q; q++)
            if (e->no_hits[q]) {
                sf_cli_warn(cli, "%s: no results for this query (AP 0)", q_names[q]);
                status = SF_EXIT_FAILURE;
            }
        int st = print_report(cli, o, e, 0);
        if (st > status)
            status = st;
    }
    sf_eval_hits_free(e);
    sf_cli_free_lines(db_names, n_db);
    sf_cli_free_lines(q_names, n_q);
    sf_gnd_free(gnd);
    return status;
}

static void parse_recall(const sf_cli *cli, eval_opts *o, const char *text)
{
    o->n_recall = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long k = strtol(p, &end, 10);
        if (errno || end == p || k < 1 || k > 1000000000 || (*end && *end != ',') ||
            o->n_recall == SF_EVAL_MAX_RECALL)
            sf_cli_usage_error(cli, "--recall: '%s' is not a list of up to 16 ranks >= 1",
                               text);
        o->recall_ks[o->n_recall++] = (int)k;
        p = *end ? end + 1 : end;
    }
    if (o->n_recall == 0)
        sf_cli_usage_error(cli, "--recall: empty list");
}

int main(int argc, char **argv)
{
    sf_cli cli;
    sf_cli_init(&cli, "sf-rank", argc, argv);
    cli.reports_progress = 1;
    cli.synopsis = "[OPTION]... [HITS]...";
    cli.summary = "Rank, merge and evaluate the results of sf-match.";
    cli.options_help = options_help;
    sf_error err;
    sf_hit_set *set = NULL;
    if (sf_hit_set_create(&set, &err) != SF_OK)
        sf_cli_out_of_memory(&cli);
    eval_opts eo = { .recall_ks = { 1, 5, 10 }, .n_recall = 3 };
    enum format format = FORMAT_TSV;
    size_t top_k = 10;
    int top_given = 0, no_self = 0, recall_given = 0, c;
    const char *root = NULL;
    while ((c = sf_cli_getopt(&cli, argc, argv, "k:f:", longopts)) != -1) {
        switch (c) {
        case 'k':
            top_k = (size_t)sf_cli_parse_int(&cli, "--top", optarg, 0, 1000000000);
            top_given = 1;
            break;
        case 'f':
            for (c = 0; c <= FORMAT_KAPTURE && strcmp(optarg, format_names[c]) != 0; c++)
                ;
            if (c > FORMAT_KAPTURE)
                sf_cli_usage_error(&cli, "--format: '%s' is not tsv, csv, jsonl, pairs, colmap, "
                                   "hloc, kapture or stream%s", optarg,
                                   strcmp(optarg, "json") == 0 ? " (JSON Lines: jsonl)" : "");
            format = (enum format)c;
            break;
        case OPT_ROOT: root = optarg; break;
        case OPT_NO_SELF: no_self = 1; break;
        case OPT_GROUPS: eo.groups = optarg; break;
        case OPT_GND: eo.gnd = optarg; break;
        case OPT_DB_LIST: eo.db_list = optarg; break;
        case OPT_QUERY_LIST: eo.query_list = optarg; break;
        case OPT_RECALL:
            parse_recall(&cli, &eo, optarg);
            recall_given = 1;
            break;
        case OPT_PER_QUERY: eo.per_query = 1; break;
        default: sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    const int evaluating = eo.groups || eo.gnd;
    if (eo.groups && eo.gnd)
        sf_cli_usage_error(&cli, "--groups and --gnd: choose one answer key");
    if ((eo.db_list || eo.query_list) && !eo.gnd)
        sf_cli_usage_error(&cli, "--db-list and --query-list go with --gnd");
    if ((eo.per_query || recall_given) && !evaluating)
        sf_cli_usage_error(&cli, "%s goes with --groups or --gnd",
                           eo.per_query ? "--per-query" : "--recall");
    if (root && format != FORMAT_COLMAP && format != FORMAT_HLOC && format != FORMAT_KAPTURE)
        sf_cli_usage_error(&cli, "--root goes with -f colmap, hloc or kapture");
    if (evaluating && !top_given)
        top_k = 0;
    if (format == FORMAT_STREAM && !evaluating)
        sf_cli_stream_output(&cli);
    if (optind >= argc && isatty(STDIN_FILENO))
        sf_cli_usage_error(&cli, "no input: name hit streams (sf-match output) or pipe one in");

    cli.all_inputs = 1; /* a merge of part of the inputs would look whole */
    int status = sf_cli_read_hits(&cli, argc, argv, optind, set);
    if (status == SF_EXIT_FATAL) {
        /* A merge of part of the shards would look complete: print nothing. */
        sf_cli_error(&cli, "no output: an input could not be read");
    } else {
        if (sf_hit_set_rank(set, no_self, top_k, &err) != SF_OK)
            sf_cli_out_of_memory(&cli);
        int st = SF_EXIT_OK;
        if (eo.groups)
            st = evaluate_groups(&cli, &eo, set);
        else if (eo.gnd)
            st = evaluate_gnd(&cli, &eo, set);
        else if (format == FORMAT_TSV)
            print_tsv(set);
        else if (format == FORMAT_PAIRS)
            print_pairs(&cli, set);
        else if (format == FORMAT_CSV || format == FORMAT_JSONL)
            st = print_table(&cli, set, format == FORMAT_JSONL);
        else if (format == FORMAT_STREAM)
            write_stream(&cli, set);
        else
            st = print_tool_pairs(&cli, set, format, root);
        if (st > status)
            status = st;
    }
    sf_hit_set_free(set);
    return sf_cli_finish(&cli, status);
}
