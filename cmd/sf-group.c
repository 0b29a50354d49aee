/* sf-group: group the images of sf-match's results whose pair scores pass
 * a threshold (duplicates, views of one place), written as the
 * `file<TAB>group` lines that sf-rank --groups reads; or, with an answer
 * key, the scores of true and false pairs and the pairwise precision and
 * recall of the grouping, to choose the threshold.  The graph, its
 * components and the comparison are libsf's (sf_hits.h, sf_eval.h). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sf_eval.h"
#include "sf_hits.h"

enum {
    OPT_MUTUAL = SF_OPT_FIRST_PROGRAM,
    OPT_GROUPS,
};

static const struct option longopts[] = {
    { "mode", required_argument, NULL, 'm' },
    { "threshold", required_argument, NULL, 't' },
    { "mutual", no_argument, NULL, OPT_MUTUAL },
    { "groups", required_argument, NULL, OPT_GROUPS },
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    "Grouping (the hits do not say what their scores are: give -m or -t):\n"
    "  -m, --mode MODE      the sf-match mode that made the hits, for its default\n"
    "                       threshold: asmk (-i), matches (--pairwise) or cosine\n"
    "                       (--global without -i)\n"
    "  -t, --threshold T    join two images when their pair scores at least T\n"
    "      --mutual         join only images that found each other, by the lower\n"
    "                       of their two scores (default: either found the other)\n"
    "      --groups FILE    compare with an answer key of `file<TAB>group` lines:\n"
    "                       print the scores of the pairs it groups and of the\n"
    "                       others, and the pairwise precision and recall of the\n"
    "                       grouping at thresholds around them, instead of groups\n";

/* The default thresholds, measured on the 67 multiview photos (see
 * sf-group(1)): the score above which a pair is most likely one place. */
static const struct {
    const char *name;
    double threshold;
} modes[] = {
    { "asmk", 0.055 },
    { "matches", 945 },
    { "cosine", 0.99996 },
};


/* ---- The groups ---- */

typedef struct member {
    size_t group, image;
} member;

static int by_group(const void *x, const void *y)
{
    const member *a = x, *b = y;
    if (a->group != b->group)
        return a->group < b->group ? -1 : 1;
    return a->image < b->image ? -1 : a->image > b->image;
}

/* `file<TAB>group` for every image, group by group, images in the order
 * met; groups of one image are named single_N so that sf-rank --groups
 * gives them no partner. */
static int print_groups(const sf_cli *cli, const sf_hit_graph *graph, const size_t *group,
                        size_t n_groups)
{
    const size_t n = sf_hit_graph_count(graph);
    member *m = sf_cli_xmalloc(cli, (n ? n : 1) * sizeof *m);
    size_t *size = calloc(n_groups ? n_groups : 1, sizeof *size);
    if (!size)
        sf_cli_out_of_memory(cli);
    for (size_t i = 0; i < n; i++) {
        m[i] = (member){ group[i], i };
        size[group[i]]++;
    }
    qsort(m, n, sizeof *m, by_group);
    int status = SF_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        const char *key = sf_hit_graph_key(graph, m[i].image);
        sf_error err;
        if (sf_groups_check_file(key, &err) != SF_OK) {
            sf_cli_error(cli, "%s; left out", err.message);
            status = SF_EXIT_FAILURE;
            continue;
        }
        printf("%s\t%s_%zu\n", key, size[m[i].group] > 1 ? "group" : "single",
               m[i].group + 1);
    }
    free(size);
    free(m);
    return status;
}

/* ---- Against an answer key ---- */

static int by_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void print_scores(const char *label, const double *v, size_t n, uint64_t missing)
{
    static const double ps[] = { 0, 0.05, 0.25, 0.5, 0.75, 0.95, 1 };
    printf("%s\t%zu\t%llu", label, n, (unsigned long long)missing);
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++)
        printf("\t%.6g", sf_quantile_sorted(v, n, ps[i]));
    putchar('\n');
}

/* The grouping at threshold t, compared with the key: one line. */
static int print_at(const sf_cli *cli, const char *label, const sf_groups *key,
                    const sf_hit_graph *graph, sf_group_rule rule, double t, size_t *group,
                    double *f1)
{
    size_t n_groups;
    sf_group_eval e;
    sf_error err;
    if (sf_hit_graph_group(graph, t, rule, group, &n_groups, &err) != SF_OK ||
        sf_group_evaluate(key, graph, group, &e, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return SF_EXIT_FATAL;
    }
    const double p = e.precision, r = e.recall;
    *f1 = p + r > 0 ? 2 * p * r / (p + r) : isnan(p) || isnan(r) ? NAN : 0;
    printf("%s\t%.6g\t%zu\t%llu\t%llu\t%llu\t%.6f\t%.6f\t%.6f\n", label, t, n_groups,
           (unsigned long long)e.found_pairs, (unsigned long long)e.correct_pairs,
           (unsigned long long)e.true_pairs, p, r, *f1);
    return SF_EXIT_OK;
}

static int report(const sf_cli *cli, const char *key_file, const sf_hit_graph *graph,
                  sf_group_rule rule, double threshold)
{
    sf_groups *key;
    sf_error err;
    if (sf_groups_load_tsv(key_file, &key, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return SF_EXIT_USAGE;
    }
    const size_t n = sf_hit_graph_count(graph);
    size_t *group = sf_cli_xmalloc(cli, (n ? n : 1) * sizeof *group);
    double *same = NULL, *other = NULL;
    size_t n_same, n_other;
    uint64_t same_missing, other_missing;
    sf_group_eval e;
    int status = SF_EXIT_OK;
    if (sf_hit_graph_group(graph, threshold, rule, group, &(size_t){ 0 }, &err) != SF_OK ||
        sf_group_evaluate(key, graph, group, &e, &err) != SF_OK ||
        sf_group_scores(key, graph, rule, &same, &n_same, &same_missing, &other, &n_other,
                        &other_missing, &err) != SF_OK) {
        if (err.status == SF_ERR_NOMEM)
            sf_cli_out_of_memory(cli);
        sf_cli_error(cli, "%s", err.message);
        status = SF_EXIT_FATAL;
        goto done;
    }
    if (e.n_named == 0 && n > 0) {
        char shown[256];
        sf_cli_error(cli, "no image is in %s (the first is %s)", key_file,
                     sf_text_printable(e.first_unknown, shown, sizeof shown));
        status = SF_EXIT_FAILURE;
        goto done;
    }
    if (e.n_unknown) {
        char shown[256];
        sf_cli_warn(cli, "%zu images are not in %s (%s%s); left out", e.n_unknown, key_file,
                    sf_text_printable(e.first_unknown, shown, sizeof shown),
                    e.n_unknown > 1 ? ", ..." : "");
    }
    if (e.n_key_missing)
        sf_cli_warn(cli, "%zu files of %s are in no hit list; left out", e.n_key_missing,
                    key_file);
    printf("# rule\t%s\n", rule == SF_GROUP_MUTUAL ? "mutual" : "either");
    printf("# pairs\tscored\tunscored\tmin\tq05\tq25\tmedian\tq75\tq95\tmax\n");
    print_scores("same", same, n_same, same_missing);
    print_scores("different", other, n_other, other_missing);
    /* Thresholds worth trying: where the true pairs' scores lie, and the
     * top of the others'. */
    double tries[32];
    size_t n_tries = 0;
    for (int i = 1; i < 20; i++)
        tries[n_tries++] = sf_quantile_sorted(same, n_same, i / 20.0);
    static const double top[] = { 0.5, 0.9, 0.95, 0.99, 1 };
    for (size_t i = 0; i < sizeof top / sizeof *top; i++)
        tries[n_tries++] = sf_quantile_sorted(other, n_other, top[i]);
    tries[n_tries++] = threshold;
    qsort(tries, n_tries, sizeof *tries, by_double);
    printf("# threshold\tvalue\tgroups\tfound\tcorrect\ttrue\tprecision\trecall\tF1\n");
    double best_f1 = -1, best_t = threshold, f1;
    for (size_t i = 0; i < n_tries && status == SF_EXIT_OK; i++) {
        if (isnan(tries[i]) || (i > 0 && tries[i] == tries[i - 1]))
            continue;
        status = print_at(cli, "try", key, graph, rule, tries[i], group, &f1);
        if (f1 > best_f1) {
            best_f1 = f1;
            best_t = tries[i];
        }
    }
    if (status == SF_EXIT_OK)
        status = print_at(cli, "best", key, graph, rule, best_t, group, &f1);
    if (status == SF_EXIT_OK)
        status = print_at(cli, "used", key, graph, rule, threshold, group, &f1);
done:
    free(same);
    free(other);
    free(group);
    sf_groups_free(key);
    return status;
}

int main(int argc, char **argv)
{
    sf_cli cli;
    sf_cli_init(&cli, "sf-group", argc, argv);
    cli.synopsis = "(-m MODE | -t THRESHOLD) [OPTION]... [HITS]...";
    cli.summary = "Group the images that sf-match found together (duplicates, one place).";
    cli.options_help = options_help;
    sf_error err;
    sf_hit_set *set = NULL;
    const char *key_file = NULL;
    double threshold = NAN;
    int mode = -1, c;
    sf_group_rule rule = SF_GROUP_EITHER;
    while ((c = sf_cli_getopt(&cli, argc, argv, "m:t:", longopts)) != -1) {
        switch (c) {
        case 'm':
            for (mode = 0; mode < 3 && strcmp(optarg, modes[mode].name) != 0; mode++)
                ;
            if (mode == 3)
                sf_cli_usage_error(&cli, "--mode: '%s' is not asmk, matches or cosine", optarg);
            break;
        case 't': {
            char *end;
            threshold = strtod(optarg, &end);
            if (end == optarg || *end || !isfinite(threshold))
                sf_cli_usage_error(&cli, "--threshold: '%s' is not a number", optarg);
            break;
        }
        case OPT_MUTUAL: rule = SF_GROUP_MUTUAL; break;
        case OPT_GROUPS: key_file = optarg; break;
        default: sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    if (isnan(threshold)) {
        if (mode < 0)
            sf_cli_usage_error(&cli, "give --mode (asmk, matches, cosine) or --threshold: hit "
                               "records do not say what their scores are");
        threshold = modes[mode].threshold;
    }
    if (optind >= argc && isatty(STDIN_FILENO))
        sf_cli_usage_error(&cli, "no input: name hit streams (sf-match output) or pipe one in");
    if (sf_hit_set_create(&set, &err) != SF_OK)
        sf_cli_out_of_memory(&cli);

    cli.all_inputs = 1; /* groups of part of the results would look whole */
    int status = sf_cli_read_hits(&cli, argc, argv, optind, set);
    sf_hit_graph *graph = NULL;
    if (status == SF_EXIT_FATAL) {
        sf_cli_error(&cli, "no output: an input could not be read");
    } else {
        if (sf_hit_graph_create(set, &graph, &err) != SF_OK)
            sf_cli_out_of_memory(&cli);
        int st;
        if (key_file) {
            st = report(&cli, key_file, graph, rule, threshold);
        } else {
            const size_t n = sf_hit_graph_count(graph);
            size_t *group = sf_cli_xmalloc(&cli, (n ? n : 1) * sizeof *group), n_groups;
            if (sf_hit_graph_group(graph, threshold, rule, group, &n_groups, &err) != SF_OK)
                sf_cli_out_of_memory(&cli);
            st = print_groups(&cli, graph, group, n_groups);
            free(group);
        }
        if (st > status)
            status = st;
    }
    sf_hit_graph_free(graph);
    sf_hit_set_free(set);
    return sf_cli_finish(&cli, status);
}
