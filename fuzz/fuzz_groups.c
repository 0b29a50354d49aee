/* Fuzz target for the file<TAB>group answer-key reader (sf-rank --groups).
 * A failure leaves nothing and names the input on one line; what loads
 * holds unique, non-empty names without tabs or line ends, finds each file
 * at its place, writes back to a key that loads the same, and gives the
 * ground truth its documentation promises. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.tsv"
/* Bounds on the quadratic checks below. */
#define MAX_CHECKED 512

static int clean_name(const char *s)
{
    return *s && !strpbrk(s, "\t\n");
}

static void check_ground_truth(const sf_groups *g)
{
    size_t n = sf_groups_count(g);
    sf_gnd *gnd;
    sf_error err;
    if (sf_gnd_from_groups(g, NULL, n, &gnd, &err) != SF_OK || gnd->n_queries != n)
        abort();
    for (size_t q = 0; q < n; q++) {
        const sf_gnd_query *x = &gnd->queries[q];
        const char *group = sf_groups_group(g, q);
        /* The others of its group, in line order; none for single_*. */
        size_t want = 0;
        if (strncmp(group, "single_", 7) != 0)
            for (size_t i = 0; i < n; i++)
                if (i != q && strcmp(sf_groups_group(g, i), group) == 0) {
                    if (want >= x->n_easy)
                        abort();
                    want++;
                }
        if (x->n_easy != want || x->n_hard != 0 || x->n_junk != 1 || x->junk[0] != q)
            abort();
        for (size_t i = 0; i < x->n_easy; i++)
            if (x->easy[i] >= n || x->easy[i] == q
                || strcmp(sf_groups_group(g, x->easy[i]), group) != 0)
                abort();
    }

    /* Recall of a ranking that lists every file in line order. */
    uint32_t *ranks = malloc(n * n * sizeof *ranks);
    if (!ranks)
        abort();
    for (size_t q = 0; q < n; q++)
        for (size_t i = 0; i < n; i++)
            ranks[q * n + i] = (uint32_t)i;
    static const int ks[] = { 1, 2, 1000 };
    double recall[3];
    size_t counted;
    if (sf_eval_recall(g, ranks, n, n, NULL, ks, 3, recall, &counted, &err) != SF_OK
        || counted > n)
        abort();
    for (int k = 0; k < 3; k++)
        if (counted ? !(recall[k] >= 0 && recall[k] <= 1) : !isnan(recall[k]))
            abort();
    /* Every file is ranked, so every counted query finds a positive. */
    if (counted && recall[2] != 1)
        abort();
    free(ranks);
    sf_gnd_free(gnd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sf_groups *g = (sf_groups *)&g;
    sf_error err;
    sf_status st = sf_groups_parse_tsv(data, size, NAME, &g, &err);
    if (st != SF_OK) {
        if ((st != SF_ERR_FORMAT && st != SF_ERR_NOMEM) || g
            || !fuzz_message_ok(err.message, NAME))
            abort();
        return 0;
    }
    size_t n = sf_groups_count(g);
    if (n == 0 || sf_groups_file(g, n) || sf_groups_group(g, n))
        abort();
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    if (!fp)
        abort();
    for (size_t i = 0; i < n; i++) {
        const char *file = sf_groups_file(g, i), *group = sf_groups_group(g, i);
        if (!clean_name(file) || !clean_name(group) || sf_groups_find(g, file) != (long)i)
            abort();
        /* CRLF: the reader drops one CR, so a group that ends in one survives. */
        fprintf(fp, "%s\t%s\r\n", file, group);
    }
    if (fclose(fp) != 0)
        abort();
    sf_groups *again;
    if (sf_groups_parse_tsv(text, len, "written.tsv", &again, &err) != SF_OK
        || sf_groups_count(again) != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (strcmp(sf_groups_file(g, i), sf_groups_file(again, i)) != 0
            || strcmp(sf_groups_group(g, i), sf_groups_group(again, i)) != 0)
            abort();
    sf_groups_free(again);
    free(text);
    if (n <= MAX_CHECKED)
        check_ground_truth(g);
    sf_groups_free(g);
    return 0;
}
