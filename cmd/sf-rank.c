/* sf-rank: turn the hit records of sf-match into rankings (TSV, pairs or
 * a stream), merging the lists that shards produced for the same query,
 * or evaluate them against an answer key.  Ranking and evaluation are
 * libsf's (sf_hits.h, sf_eval.h); this file reads, matches names, prints. */
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
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    "Ranking:\n"
    "  -k, --top N          results per query (default 10; 0: all)\n"
    "  -f, --format F       tsv: query, rank, database key, score (the default)\n"
    "                       pairs: query and database key, each pair of images once\n"
    "                       stream: merged hit records, as sf-match writes them\n"
    "      --no-self        leave each query out of its own results\n"
    "\nEvaluation (prints a report instead of the rankings; all results are used\n"
    "unless -k is given):\n"
    "      --groups FILE    answer key of `file<TAB>group` lines\n"
    "      --gnd FILE       revisited Oxford/Paris ground truth (YAML), with\n"
    "      --db-list FILE   its database images, line i naming id i, and\n"
    "      --query-list FILE  its queries, line q naming query q\n"
    "      --recall LIST    recall at these ranks (default 1,5,10)\n"
    "      --per-query      also print every query's AP\n";

enum format { FORMAT_TSV, FORMAT_PAIRS, FORMAT_STREAM };

/* ---- A string -> index hash table ---- */

typedef struct name_table {
    size_t *slots; /* index + 1, 0 empty */
    size_t mask;
    const char *const *names;
} name_table;

/* FNV-1a: table keys are short names, not adversarial input. */
static size_t name_hash(const char *s, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * UINT64_C(1099511628211);
    return (size_t)(h ^ (h >> 32));
}

static int table_init(name_table *t, const char *const *names, size_t n)
{
    size_t size = 16;
    while (size < 2 * n)
        size *= 2;
    t->slots = calloc(size, sizeof *t->slots);
    t->mask = size - 1;
    t->names = names;
    if (!t->slots)
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t h = name_hash(names[i], strlen(names[i])) & t->mask;
        while (t->slots[h])
            h = (h + 1) & t->mask;
        t->slots[h] = i + 1;
    }
    return 0;
}

/* The first name equal to the len bytes at s, or -1. */
static long table_find(const name_table *t, const char *s, size_t len)
{
    for (size_t h = name_hash(s, len) & t->mask; t->slots[h]; h = (h + 1) & t->mask) {
        const char *n = t->names[t->slots[h] - 1];
        if (strlen(n) == len && memcmp(n, s, len) == 0)
            return (long)(t->slots[h] - 1);
    }
    return -1;
}

/* A stream key against a list of names: the key itself, else its last
 * path component, else that without its extension.  Lets an answer key
 * name `graf1.png` or `all_souls_000013` while the stream says
 * `photos/graf1.png` or `jpg/all_souls_000013.jpg`. */
static long find_name(const name_table *t, const char *key)
{
    size_t len = strlen(key);
    long i = table_find(t, key, len);
    if (i >= 0)
        return i;
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    size_t blen = len - (size_t)(base - key);
    if (base != key && (i = table_find(t, base, blen)) >= 0)
        return i;
    const char *dot = memchr(base, '.', blen) ? strrchr(base, '.') : NULL;
    if (dot && dot > base)
        return table_find(t, base, (size_t)(dot - base));
    return -1;
}

/* ---- Reading hit streams ---- */

typedef struct query {
    char *key;
    sf_hit_list hits;
} query;

typedef struct ranker {
    sf_cli *cli;
    query *queries;
    size_t n, cap;
    char **keys; /* the queries' keys, for the table */
    name_table table;
} ranker;

static _Noreturn void out_of_memory(const sf_cli *cli)
{
    sf_cli_error(cli, "out of memory");
    exit(SF_EXIT_FATAL);
}

static query *query_for(ranker *r, const char *key)
{
    long i = r->table.slots ? table_find(&r->table, key, strlen(key)) : -1;
    if (i >= 0)
        return &r->queries[i];
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        query *q = realloc(r->queries, r->cap * sizeof *q);
        if (q)
            r->queries = q;
        char **k = q ? realloc(r->keys, r->cap * sizeof *k) : NULL;
        if (!k)
            out_of_memory(r->cli);
        r->keys = k;
    }
    query *q = &r->queries[r->n];
    if (!(q->key = strdup(key)))
        out_of_memory(r->cli);
    sf_hit_list_init(&q->hits);
    r->keys[r->n++] = q->key;
    r->table.names = (const char *const *)r->keys;
    /* Keep the table at most half full; rebuilding doubles it. */
    if (!r->table.slots || 2 * r->n > r->table.mask + 1) {
        free(r->table.slots);
        if (table_init(&r->table, (const char *const *)r->keys, r->n) != 0)
            out_of_memory(r->cli);
    } else {
        size_t h = name_hash(q->key, strlen(q->key)) & r->table.mask;
        while (r->table.slots[h])
            h = (h + 1) & r->table.mask;
        r->table.slots[h] = r->n;
    }
    return q;
}

/* One image of an input: its hit lists join its query's.  An image without
 * hits means the input is not sf-match output: fatal, so that nothing is
 * printed from the rest. */
static int read_hits(void *vctx, const sf_stream_image *img, const char *name)
{
    ranker *r = vctx;
    const sf_record *keys = NULL;
    int pairs = 0;
    sf_error err;
    for (size_t i = 0; i < img->count; i++) {
        const sf_record *rec = &img->recs[i];
        if (rec->kind == SF_KIND_HIT_KEYS) {
            keys = rec;
            continue;
        }
        if (rec->kind != SF_KIND_HIT_SCORES)
            continue;
        /* sf_stream_read_image checked that keys come before their scores. */
        sf_record named = *keys;
        named.key = rec->key;
        query *q = query_for(r, rec->key);
        size_t before = q->hits.count;
        if (sf_hit_list_append_records(&q->hits, &named, rec, &err) != SF_OK) {
            if (err.status == SF_ERR_NOMEM)
                out_of_memory(r->cli);
            sf_cli_error(r->cli, "%s: %s", name, err.message);
            /* Keep what the query had before this bad pair. */
            while (q->hits.count > before)
                free(q->hits.keys[--q->hits.count]);
            return SF_EXIT_FAILURE;
        }
        pairs++;
    }
    if (pairs == 0) {
        sf_cli_error(r->cli, "%s: %s: no hit records: not the output of sf-match", name,
                     img->key);
        return SF_EXIT_FATAL;
    }
    return SF_EXIT_OK;
}

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

static void print_tsv(const ranker *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const query *q = &r->queries[i];
        for (size_t j = 0; j < q->hits.count; j++) {
            put_key(q->key);
            printf("\t%zu\t", j + 1);
            put_key(q->hits.keys[j]);
            printf("\t%.9g\n", q->hits.scores[j]);
        }
    }
}

typedef struct pair {
    const char *a, *b; /* a < b */
    size_t pos;        /* order met */
} pair;

static int by_pair(const void *x, const void *y)
{
    const pair *p = x, *q = y;
    int c = strcmp(p->a, q->a);
    if (!c)
        c = strcmp(p->b, q->b);
    return c ? c : (p->pos > q->pos) - (p->pos < q->pos);
}

/* Each unordered pair of different images once, in the order first met. */
static void print_pairs(const sf_cli *cli, const ranker *r)
{
    size_t total = 0;
    for (size_t i = 0; i < r->n; i++)
        total += r->queries[i].hits.count;
    pair *all = malloc((total ? total : 1) * sizeof *all);
    pair *sorted = malloc((total ? total : 1) * sizeof *sorted);
    unsigned char *keep = calloc(total ? total : 1, 1);
    if (!all || !sorted || !keep)
        out_of_memory(cli);
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        const query *q = &r->queries[i];
        for (size_t j = 0; j < q->hits.count; j++) {
            const char *a = q->key, *b = q->hits.keys[j];
            int c = strcmp(a, b);
            if (c == 0)
                continue;
            all[n] = c < 0 ? (pair){ a, b, n } : (pair){ b, a, n };
            n++;
        }
    }
    memcpy(sorted, all, n * sizeof *all);
    qsort(sorted, n, sizeof *sorted, by_pair);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(sorted[i].a, sorted[i - 1].a) != 0 ||
            strcmp(sorted[i].b, sorted[i - 1].b) != 0)
            keep[sorted[i].pos] = 1;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i])
            continue;
        put_key(all[i].a);
        putchar('\t');
        put_key(all[i].b);
        putchar('\n');
    }
    free(all);
    free(sorted);
    free(keep);
}

static void write_stream(sf_cli *cli, const ranker *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const query *q = &r->queries[i];
        sf_record kr, sr;
        char *blob;
        double *scores;
        sf_error err;
        if (sf_hit_list_to_records(&q->hits, q->key, &kr, &sr, &blob, &scores, &err) != SF_OK)
            out_of_memory(cli);
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
    int recall_ks[16];
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

/* Row r of ranks (width entries): the ids of query q's hits by name,
 * SF_EVAL_NO_ID for names the database does not list and as padding. */
static void fill_row(const name_table *db, const query *q, uint32_t *row, size_t width)
{
    size_t j = 0;
    for (; q && j < q->hits.count; j++) {
        long id = find_name(db, q->hits.keys[j]);
        row[j] = id >= 0 ? (uint32_t)id : SF_EVAL_NO_ID;
    }
    for (; j < width; j++)
        row[j] = SF_EVAL_NO_ID;
}

static const char *const protocol_names[SF_EVAL_N_PROTOCOLS] = { "easy", "medium", "hard" };

static void print_report(const eval_opts *o, const sf_gnd *gnd, const uint32_t *ranks,
                         size_t width, const char *const *row_names, int groups)
{
    sf_eval_revisited res;
    double *aps = malloc(3 * (gnd->n_queries ? gnd->n_queries : 1) * sizeof *aps);
    sf_error err;
    if (!aps || sf_eval_revisited_compute(gnd, ranks, width, &res, aps, NULL, &err) != SF_OK) {
        fprintf(stderr, "sf-rank: evaluation: %s\n", aps ? err.message : "out of memory");
        exit(SF_EXIT_FATAL);
    }
    if (o->per_query) {
        printf("# query\tprotocol\tAP\n");
        for (int p = groups ? SF_EVAL_MEDIUM : 0; p < (groups ? SF_EVAL_MEDIUM + 1 : 3); p++)
            for (size_t q = 0; q < gnd->n_queries; q++) {
                put_key(row_names[q]);
                printf("\t%s\t%.6f\n", groups ? "groups" : protocol_names[p],
                       aps[(size_t)p * gnd->n_queries + q]);
            }
    }
    printf("# protocol\tqueries\tmAP");
    for (int k = 0; k < SF_EVAL_N_KAPPAS; k++)
        printf("\tmP@%d", sf_eval_kappas[k]);
    for (size_t k = 0; k < o->n_recall; k++)
        printf("\tR@%d", o->recall_ks[k]);
    putchar('\n');
    for (int p = 0; p < SF_EVAL_N_PROTOCOLS; p++) {
        /* A groups key has no hard positives: Easy equals Medium. */
        if (groups && p != SF_EVAL_MEDIUM)
            continue;
        double recall[16];
        if (sf_eval_revisited_recall(gnd, (sf_eval_protocol)p, ranks, width, o->recall_ks,
                                     o->n_recall, recall, NULL, &err) != SF_OK) {
            fprintf(stderr, "sf-rank: evaluation: %s\n", err.message);
            exit(SF_EXIT_FATAL);
        }
        printf("%s\t%zu\t%.6f", groups ? "groups" : protocol_names[p], res.n_scored[p],
               res.map[p]);
        for (int k = 0; k < SF_EVAL_N_KAPPAS; k++)
            printf("\t%.6f", res.mpk[p][k]);
        for (size_t k = 0; k < o->n_recall; k++)
            printf("\t%.6f", recall[k]);
        putchar('\n');
    }
    free(aps);
}

static int evaluate_groups(const sf_cli *cli, const eval_opts *o, const ranker *r)
{
    sf_groups *g;
    sf_error err;
    if (sf_groups_load_tsv(o->groups, &g, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return SF_EXIT_USAGE;
    }
    const size_t n_files = sf_groups_count(g);
    const char **names = malloc((n_files ? n_files : 1) * sizeof *names);
    if (!names)
        out_of_memory(cli);
    for (size_t i = 0; i < n_files; i++)
        names[i] = sf_groups_file(g, i);
    name_table db;
    if (table_init(&db, names, n_files) != 0)
        out_of_memory(cli);
    size_t width = 1, rows = 0, unknown = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->queries[i].hits.count > width)
            width = r->queries[i].hits.count;
    uint32_t *qids = malloc((r->n ? r->n : 1) * sizeof *qids);
    uint32_t *ranks = malloc((r->n ? r->n : 1) * width * sizeof *ranks);
    const char **row_names = malloc((r->n ? r->n : 1) * sizeof *row_names);
    if (!qids || !ranks || !row_names)
        out_of_memory(cli);
    const char *first_unknown = NULL;
    for (size_t i = 0; i < r->n; i++) {
        long f = find_name(&db, r->queries[i].key);
        if (f < 0) {
            if (!unknown++)
                first_unknown = r->queries[i].key;
            continue;
        }
        qids[rows] = (uint32_t)f;
        row_names[rows] = r->queries[i].key;
        fill_row(&db, &r->queries[i], ranks + rows * width, width);
        rows++;
    }
    sf_gnd *gnd;
    int status = SF_EXIT_OK;
    if (rows == 0 && r->n > 0) {
        /* Nothing to evaluate: most likely the keys and the answer key
         * name different things. */
        sf_cli_error(cli, "no query is in %s (the first is %s)", o->groups, first_unknown);
        status = SF_EXIT_FAILURE;
        unknown = 0;
    } else if (sf_gnd_from_groups(g, qids, rows, &gnd, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        status = SF_EXIT_FATAL;
    } else {
        print_report(o, gnd, ranks, width, row_names, 1);
        sf_gnd_free(gnd);
    }
    /* Queries outside the key (distractors searched too) are not an error. */
    if (unknown)
        sf_cli_warn(cli, "%zu queries are not in %s (%s%s); left out", unknown, o->groups,
                    first_unknown, unknown > 1 ? ", ..." : "");
    free(db.slots);
    free(names);
    free(qids);
    free(ranks);
    free(row_names);
    sf_groups_free(g);
    return status;
}

static int evaluate_gnd(const sf_cli *cli, const eval_opts *o, const ranker *r)
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
    int status = SF_EXIT_OK;
    if (n_q != gnd->n_queries) {
        sf_cli_error(cli, "%s names %zu queries, %s has %zu", o->query_list, n_q, o->gnd,
                     gnd->n_queries);
        status = SF_EXIT_USAGE;
    }
    for (size_t q = 0; q < gnd->n_queries && status == SF_EXIT_OK; q++) {
        const sf_gnd_query *g = &gnd->queries[q];
        const uint32_t *sets[3] = { g->easy, g->hard, g->junk };
        size_t ns[3] = { g->n_easy, g->n_hard, g->n_junk };
        for (int s = 0; s < 3; s++)
            for (size_t i = 0; i < ns[s]; i++)
                if (sets[s][i] >= n_db) {
                    sf_cli_error(cli, "%s: query %zu lists image %lu; %s has %zu", o->gnd, q,
                                 (unsigned long)sets[s][i], o->db_list, n_db);
                    status = SF_EXIT_USAGE;
                    s = 3;
                    break;
                }
    }
    name_table db, qt;
    if (table_init(&db, (const char *const *)db_names, n_db) != 0 ||
        table_init(&qt, (const char *const *)q_names, n_q) != 0)
        out_of_memory(cli);
    const query **of_query = calloc(n_q ? n_q : 1, sizeof *of_query);
    if (!of_query)
        out_of_memory(cli);
    size_t unknown = 0;
    const char *first_unknown = NULL;
    for (size_t i = 0; i < r->n && status == SF_EXIT_OK; i++) {
        long q = find_name(&qt, r->queries[i].key);
        if (q >= 0)
            of_query[q] = &r->queries[i];
        else if (!unknown++)
            first_unknown = r->queries[i].key;
    }
    /* One line, as with --groups: the database images searched too are no error. */
    if (unknown)
        sf_cli_warn(cli, "%zu queries are not in %s (%s%s); left out", unknown, o->query_list,
                    first_unknown, unknown > 1 ? ", ..." : "");
    if (status == SF_EXIT_OK) {
        size_t width = 1;
        for (size_t q = 0; q < n_q; q++) {
            if (!of_query[q]) {
                sf_cli_warn(cli, "%s: no results for this query (AP 0)", q_names[q]);
                status = SF_EXIT_FAILURE;
            } else if (of_query[q]->hits.count > width) {
                width = of_query[q]->hits.count;
            }
        }
        uint32_t *ranks = malloc((n_q ? n_q : 1) * width * sizeof *ranks);
        if (!ranks)
            out_of_memory(cli);
        for (size_t q = 0; q < n_q; q++)
            fill_row(&db, of_query[q], ranks + q * width, width);
        print_report(o, gnd, ranks, width, (const char *const *)q_names, 0);
        free(ranks);
    }
    free(of_query);
    free(db.slots);
    free(qt.slots);
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
            o->n_recall == sizeof o->recall_ks / sizeof o->recall_ks[0])
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
    cli.synopsis = "[OPTION]... [HITS]...";
    cli.summary = "Rank, merge and evaluate the results of sf-match.";
    cli.options_help = options_help;
    ranker r;
    memset(&r, 0, sizeof r);
    r.cli = &cli;
    eval_opts eo = { .recall_ks = { 1, 5, 10 }, .n_recall = 3 };
    enum format format = FORMAT_TSV;
    size_t top_k = 10;
    int top_given = 0, no_self = 0, recall_given = 0, c;
    while ((c = sf_cli_getopt(&cli, argc, argv, "k:f:", longopts)) != -1) {
        switch (c) {
        case 'k':
            top_k = (size_t)sf_cli_parse_int(&cli, "--top", optarg, 0, 1000000000);
            top_given = 1;
            break;
        case 'f':
            if (strcmp(optarg, "tsv") == 0)
                format = FORMAT_TSV;
            else if (strcmp(optarg, "pairs") == 0)
                format = FORMAT_PAIRS;
            else if (strcmp(optarg, "stream") == 0)
                format = FORMAT_STREAM;
            else
                sf_cli_usage_error(&cli, "--format: '%s' is not tsv, pairs or stream", optarg);
            break;
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
    if (evaluating && !top_given)
        top_k = 0;
    if (format == FORMAT_STREAM && !evaluating)
        sf_cli_stream_output(&cli);
    if (optind >= argc && isatty(STDIN_FILENO))
        sf_cli_usage_error(&cli, "no input: name hit streams (sf-match output) or pipe one in");

    cli.all_inputs = 1; /* a merge of part of the inputs would look whole */
    int status = sf_cli_each_image_of(&cli, argc, argv, optind, read_hits, &r);
    if (status == SF_EXIT_FATAL) {
        /* A merge of part of the shards would look complete: print nothing. */
        sf_cli_error(&cli, "no output: an input could not be read");
    } else {
        for (size_t i = 0; i < r.n; i++) {
            sf_error err;
            if (sf_hit_list_rank(&r.queries[i].hits, no_self ? r.queries[i].key : NULL, top_k,
                                 &err) != SF_OK)
                out_of_memory(&cli);
        }
        int st = SF_EXIT_OK;
        if (eo.groups)
            st = evaluate_groups(&cli, &eo, &r);
        else if (eo.gnd)
            st = evaluate_gnd(&cli, &eo, &r);
        else if (format == FORMAT_TSV)
            print_tsv(&r);
        else if (format == FORMAT_PAIRS)
            print_pairs(&cli, &r);
        else
            write_stream(&cli, &r);
        if (st > status)
            status = st;
    }
    for (size_t i = 0; i < r.n; i++) {
        free(r.queries[i].key);
        sf_hit_list_release(&r.queries[i].hits);
    }
    free(r.queries);
    free(r.keys);
    free(r.table.slots);
    return sf_cli_finish(&cli, status);
}
