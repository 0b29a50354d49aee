/* Fuzz target for the ground-truth YAML reader (sf-rank --gnd).  A failure
 * leaves no ground truth and names the input on one line; what loads
 * writes out as YAML that loads back the same, and evaluates to numbers in
 * range under every protocol (AP and P@k only where no id is in two lists
 * of its query: the reference lets those pass 1, and so does libsf). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.yaml"

static void write_ids(FILE *fp, const char *key, const uint32_t *ids, size_t n)
{
    fprintf(fp, "  %s: [", key);
    for (size_t i = 0; i < n; i++)
        fprintf(fp, i ? ", %lu" : "%lu", (unsigned long)ids[i]);
    fputs("]\n", fp);
}

static char *write_gnd(const sf_gnd *g, size_t *len)
{
    char *text = NULL;
    FILE *fp = open_memstream(&text, len);
    if (!fp)
        abort();
    fputs(g->n_queries ? "" : "[]\n", fp);
    for (size_t q = 0; q < g->n_queries; q++) {
        const sf_gnd_query *x = &g->queries[q];
        fputs("-\n", fp);
        write_ids(fp, "easy", x->easy, x->n_easy);
        write_ids(fp, "hard", x->hard, x->n_hard);
        write_ids(fp, "junk", x->junk, x->n_junk);
        if (x->has_bbx)
            fprintf(fp, "  bbx: [%.17g, %.17g, %.17g, %.17g]\n", x->bbx[0], x->bbx[1],
                    x->bbx[2], x->bbx[3]);
    }
    if (fclose(fp) != 0)
        abort();
    return text;
}

static int same_ids(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static int same_gnd(const sf_gnd *a, const sf_gnd *b)
{
    if (a->n_queries != b->n_queries)
        return 0;
    for (size_t q = 0; q < a->n_queries; q++) {
        const sf_gnd_query *x = &a->queries[q], *y = &b->queries[q];
        if (!same_ids(x->easy, x->n_easy, y->easy, y->n_easy)
            || !same_ids(x->hard, x->n_hard, y->hard, y->n_hard)
            || !same_ids(x->junk, x->n_junk, y->junk, y->n_junk) || x->has_bbx != y->has_bbx
            || (x->has_bbx && memcmp(x->bbx, y->bbx, sizeof x->bbx) != 0))
            return 0;
    }
    return 1;
}

static int in_unit(double v)
{
    return isnan(v) || (v >= 0 && v <= 1);
}

static int cmp_tagged(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Does an id of q sit in two of its lists?  Then, as in the reference, it
 * is a positive that is also ignored, and AP and P@k can pass 1. */
static int overlaps(const sf_gnd_query *q)
{
    size_t n = q->n_easy + q->n_hard + q->n_junk, at = 0;
    uint64_t *t = malloc((n ? n : 1) * sizeof *t);
    if (!t)
        abort();
    for (size_t i = 0; i < q->n_easy; i++)
        t[at++] = (uint64_t)q->easy[i] << 2;
    for (size_t i = 0; i < q->n_hard; i++)
        t[at++] = (uint64_t)q->hard[i] << 2 | 1;
    for (size_t i = 0; i < q->n_junk; i++)
        t[at++] = (uint64_t)q->junk[i] << 2 | 2;
    qsort(t, n, sizeof *t, cmp_tagged);
    int found = 0;
    for (size_t i = 1; i < n && !found; i++)
        found = t[i] >> 2 == t[i - 1] >> 2 && (t[i] & 3) != (t[i - 1] & 3);
    free(t);
    return found;
}

/* Rank a small database for every query (each row a rotation of the ids,
 * padded with SF_EVAL_NO_ID) and check what comes out. */
static void evaluate(const sf_gnd *g)
{
    uint32_t max_id = 0;
    int bounded = 1;
    for (size_t q = 0; q < g->n_queries; q++) {
        const sf_gnd_query *x = &g->queries[q];
        bounded = bounded && !overlaps(x);
        for (size_t i = 0; i < x->n_easy; i++)
            max_id = x->easy[i] > max_id ? x->easy[i] : max_id;
        for (size_t i = 0; i < x->n_hard; i++)
            max_id = x->hard[i] > max_id ? x->hard[i] : max_id;
    }
    size_t n_db = max_id < 64 ? (size_t)max_id + 1 : 64, width = n_db + 1;
    if (g->n_queries > 4096)
        return;
    uint32_t *ranks = malloc((g->n_queries ? g->n_queries : 1) * width * sizeof *ranks);
    if (!ranks)
        abort();
    for (size_t q = 0; q < g->n_queries; q++) {
        for (size_t i = 0; i < n_db; i++)
            ranks[q * width + i] = (uint32_t)((i + q) % n_db);
        ranks[q * width + n_db] = SF_EVAL_NO_ID;
    }
    static const int ks[] = { 1, 5, 100 };
    sf_eval_report rep;
    sf_error err;
    if (sf_eval_report_compute(g, ranks, width, ks, 3, &rep, &err) != SF_OK)
        abort();
    for (int p = 0; p < SF_EVAL_N_PROTOCOLS; p++) {
        if (rep.summary.n_scored[p] > g->n_queries)
            abort();
        for (int k = 0; k < 3; k++)
            if (!in_unit(rep.recall[p][k]) || (k && rep.recall[p][k] < rep.recall[p][k - 1]))
                abort();
        if (!bounded)
            continue;
        if (!in_unit(rep.summary.map[p]))
            abort();
        for (int k = 0; k < SF_EVAL_N_KAPPAS; k++)
            if (!in_unit(rep.summary.mpk[p][k]))
                abort();
        for (size_t q = 0; q < g->n_queries; q++)
            if (!in_unit(rep.aps[(size_t)p * g->n_queries + q]))
                abort();
    }
    sf_eval_report_release(&rep);
    free(ranks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sf_gnd *g = (sf_gnd *)&g;
    sf_error err;
    sf_status st = sf_gnd_parse_yaml(data, size, NAME, &g, &err);
    if (st != SF_OK) {
        if ((st != SF_ERR_FORMAT && st != SF_ERR_NOMEM) || g
            || !fuzz_message_ok(err.message, NAME))
            abort();
        return 0;
    }
    size_t len;
    char *text = write_gnd(g, &len);
    sf_gnd *again;
    if (sf_gnd_parse_yaml(text, len, "written.yaml", &again, &err) != SF_OK
        || !same_gnd(g, again))
        abort();
    sf_gnd_free(again);
    free(text);
    evaluate(g);
    sf_gnd_free(g);
    return 0;
}
