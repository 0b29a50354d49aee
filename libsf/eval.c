#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "sf_eval.h"
#include "sf_internal.h"
#include "zip_internal.h"

const int sf_eval_kappas[SF_EVAL_N_KAPPAS] = { 1, 5, 10 };

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sorted, duplicate-free copy of ids; returns its length. */
static size_t sorted_set(const uint32_t *ids, size_t n, uint32_t *out)
{
    if (n == 0)
        return 0;
    if (out != ids) /* in place is allowed; memcpy onto itself is not */
        memcpy(out, ids, n * sizeof *ids);
    qsort(out, n, sizeof *out, cmp_u32);
    size_t m = 1;
    for (size_t i = 1; i < n; i++)
        if (out[i] != out[m - 1])
            out[m++] = out[i];
    return m;
}

static long find_u32(const uint32_t *set, size_t n, uint32_t id)
{
    size_t i = (size_t)sf_lower_bound_u32(set, 0, n, id);
    return i < n && set[i] == id ? (long)i : -1;
}

/* ---- One ranking ---- */

sf_status sf_eval_ranking(const uint32_t *ranking, size_t n_ranked, const uint32_t *positives,
                          size_t n_positives, const uint32_t *ignored, size_t n_ignored,
                          const int *ks, size_t n_ks, double *ap, double *pk, sf_error *err)
{
    for (size_t i = 0; i < n_ks; i++)
        if (ks[i] < 1)
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "precision at %d: k must be >= 1",
                                ks[i]);
    if (n_positives == 0) {
        *ap = NAN;
        for (size_t i = 0; i < n_ks; i++)
            pk[i] = NAN;
        return SF_OK;
    }
    /* pos and ign are sorted sets; found marks positives already ranked;
     * at[j] is the 1-based, ignore-adjusted position of the j-th positive. */
    uint32_t *pos = malloc(n_positives * sizeof *pos);
    uint32_t *ign = malloc((n_ignored ? n_ignored : 1) * sizeof *ign);
    unsigned char *found = calloc(n_positives, 1);
    size_t *at = malloc(n_positives * sizeof *at);
    if (!pos || !ign || !found || !at) {
        free(pos);
        free(ign);
        free(found);
        free(at);
        return sf_error_set(err, SF_ERR_NOMEM, "evaluation: out of memory");
    }
    size_t np = sorted_set(positives, n_positives, pos);
    size_t nj = sorted_set(ignored, n_ignored, ign);

    size_t n_found = 0, ignored_before = 0;
    double sum = 0.0;
    for (size_t i = 0; i < n_ranked; i++) {
        long p = find_u32(pos, np, ranking[i]);
        if (p >= 0 && !found[p]) {
            found[p] = 1;
            size_t r = i - ignored_before; /* 0-based rank once ignored ids are gone */
            double j = (double)n_found;
            double p0 = r == 0 ? 1.0 : j / (double)r;
            double p1 = (j + 1.0) / (double)(r + 1);
            sum += (p0 + p1) / 2.0;
            at[n_found++] = r + 1;
        }
        /* Counted after the positive test: an id in both lists moves only
         * the positives behind it, as the reference's junk shift does. */
        if (nj && find_u32(ign, nj, ranking[i]) >= 0)
            ignored_before++;
    }
    *ap = sum / (double)np;
    for (size_t i = 0; i < n_ks; i++) {
        if (n_found == 0) {
            pk[i] = 0.0;
            continue;
        }
        size_t kq = at[n_found - 1] < (size_t)ks[i] ? at[n_found - 1] : (size_t)ks[i];
        size_t c = 0;
        while (c < n_found && at[c] <= kq)
            c++;
        pk[i] = (double)c / (double)kq;
    }
    free(pos);
    free(ign);
    free(found);
    free(at);
    return SF_OK;
}

/* ---- Revisited Oxford / Paris ---- */

void sf_gnd_free(sf_gnd *gnd)
{
    if (!gnd)
        return;
    for (size_t i = 0; i < gnd->n_queries; i++) {
        free(gnd->queries[i].easy);
        free(gnd->queries[i].hard);
        free(gnd->queries[i].junk);
    }
    free(gnd->queries);
    free(gnd);
}

static size_t concat(uint32_t *out, const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    if (na)
        memcpy(out, a, na * sizeof *a);
    if (nb)
        memcpy(out + na, b, nb * sizeof *b);
    return na + nb;
}

static size_t protocol_sets(const sf_gnd_query *g, sf_eval_protocol proto, uint32_t *positives,
                            uint32_t *ignored, size_t *n_ignored)
{
    size_t np;
    if (proto == SF_EVAL_EASY) {
        np = concat(positives, g->easy, g->n_easy, NULL, 0);
        *n_ignored = concat(ignored, g->junk, g->n_junk, g->hard, g->n_hard);
    } else if (proto == SF_EVAL_MEDIUM) {
        np = concat(positives, g->easy, g->n_easy, g->hard, g->n_hard);
        *n_ignored = concat(ignored, g->junk, g->n_junk, NULL, 0);
    } else {
        np = concat(positives, g->hard, g->n_hard, NULL, 0);
        *n_ignored = concat(ignored, g->junk, g->n_junk, g->easy, g->n_easy);
    }
    return np;
}

sf_status sf_eval_revisited_compute(const sf_gnd *gnd, const uint32_t *ranks, size_t n_ranked,
                                    sf_eval_revisited *out, double *aps, double *pks,
                                    sf_error *err)
{
    memset(out, 0, sizeof *out);
    size_t most = 1;
    for (size_t q = 0; q < gnd->n_queries; q++) {
        const sf_gnd_query *g = &gnd->queries[q];
        size_t n = g->n_easy + g->n_hard + g->n_junk;
        if (n > most)
            most = n;
    }
    uint32_t *positives = malloc(most * sizeof *positives);
    uint32_t *ignored = malloc(most * sizeof *ignored);
    if (!positives || !ignored) {
        free(positives);
        free(ignored);
        return sf_error_set(err, SF_ERR_NOMEM, "evaluation: out of memory");
    }
    sf_status st = SF_OK;
    for (int proto = 0; proto < SF_EVAL_N_PROTOCOLS && st == SF_OK; proto++) {
        double sum_ap = 0.0, sum_pk[SF_EVAL_N_KAPPAS] = { 0 };
        size_t scored = 0;
        for (size_t q = 0; q < gnd->n_queries; q++) {
            const sf_gnd_query *g = &gnd->queries[q];
            size_t nj, np = protocol_sets(g, (sf_eval_protocol)proto, positives, ignored, &nj);
            double ap, pk[SF_EVAL_N_KAPPAS];
            st = sf_eval_ranking(ranks + q * n_ranked, n_ranked, positives, np, ignored, nj,
                                 sf_eval_kappas, SF_EVAL_N_KAPPAS, &ap, pk, err);
            if (st != SF_OK)
                break;
            if (aps)
                aps[(size_t)proto * gnd->n_queries + q] = ap;
            if (pks)
                for (int k = 0; k < SF_EVAL_N_KAPPAS; k++)
                    pks[((size_t)proto * gnd->n_queries + q) * SF_EVAL_N_KAPPAS + (size_t)k] =
                        pk[k];
            if (np == 0)
                continue; /* no positives: left out of the mean */
            scored++;
            sum_ap += ap;
            for (int k = 0; k < SF_EVAL_N_KAPPAS; k++)
                sum_pk[k] += pk[k];
        }
        out->n_scored[proto] = scored;
        out->map[proto] = scored ? sum_ap / (double)scored : NAN;
        for (int k = 0; k < SF_EVAL_N_KAPPAS; k++)
            out->mpk[proto][k] = scored ? sum_pk[k] / (double)scored : NAN;
    }
    free(positives);
    free(ignored);
    return st;
}

/* recall[j] from the count of queries with a positive within ks[j]. */
static void recall_means(const size_t *hits, size_t n_ks, size_t counted, double *recall,
                         size_t *n_counted)
{
    for (size_t j = 0; j < n_ks; j++)
        recall[j] = counted ? (double)hits[j] / (double)counted : NAN;
    if (n_counted)
        *n_counted = counted;
}

sf_status sf_eval_revisited_recall(const sf_gnd *gnd, sf_eval_protocol protocol,
                                   const uint32_t *ranks, size_t n_ranked, const int *ks,
                                   size_t n_ks, double *recall, size_t *n_counted, sf_error *err)
{
    if ((int)protocol < 0 || (int)protocol >= SF_EVAL_N_PROTOCOLS)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "recall: no protocol %d",
                            (int)protocol);
    for (size_t i = 0; i < n_ks; i++)
        if (ks[i] < 1)
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "recall at %d: k must be >= 1",
                                ks[i]);
    size_t most = 1;
    for (size_t q = 0; q < gnd->n_queries; q++) {
        const sf_gnd_query *g = &gnd->queries[q];
        size_t n = g->n_easy + g->n_hard + g->n_junk;
        if (n > most)
            most = n;
    }
    uint32_t *pos = malloc(most * sizeof *pos), *ign = malloc(most * sizeof *ign);
    size_t *hits = calloc(n_ks ? n_ks : 1, sizeof *hits);
    if (!pos || !ign || !hits) {
        free(pos);
        free(ign);
        free(hits);
        return sf_error_set(err, SF_ERR_NOMEM, "recall: out of memory");
    }
    size_t counted = 0;
    for (size_t q = 0; q < gnd->n_queries; q++) {
        size_t ni, np = protocol_sets(&gnd->queries[q], protocol, pos, ign, &ni);
        np = sorted_set(pos, np, pos);
        ni = sorted_set(ign, ni, ign);
        if (np == 0)
            continue;
        counted++;
        const uint32_t *row = ranks + q * n_ranked;
        size_t p = 0, first = SIZE_MAX;
        for (size_t i = 0; i < n_ranked; i++) {
            if (find_u32(pos, np, row[i]) >= 0) {
                first = p;
                break;
            }
            if (find_u32(ign, ni, row[i]) < 0)
                p++;
        }
        for (size_t j = 0; j < n_ks; j++)
            hits[j] += first < (size_t)ks[j];
    }
    recall_means(hits, n_ks, counted, recall, n_counted);
    free(pos);
    free(ign);
    free(hits);
    return SF_OK;
}

/* ---- Reading whole files ---- */


/* ---- Ground truth YAML ---- */

struct gnd_loader {
    yaml_parser_t parser;
    const char *name;
    sf_error *err;
};

static unsigned long ev_line(const yaml_event_t *ev)
{
    return (unsigned long)ev->start_mark.line + 1;
}

static sf_status gnd_next(struct gnd_loader *ld, yaml_event_t *ev)
{
    if (yaml_parser_parse(&ld->parser, ev)) {
        if (ev->type == YAML_ALIAS_EVENT) {
            unsigned long line = ev_line(ev);
            yaml_event_delete(ev);
            return sf_error_set(ld->err, SF_ERR_FORMAT,
                                "%s:%lu: aliases are not supported; write the ids out", ld->name,
                                line);
        }
        return SF_OK;
    }
    yaml_parser_t *p = &ld->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return sf_error_set(ld->err, SF_ERR_NOMEM, "%s: out of memory while reading YAML",
                            ld->name);
    return sf_error_set(ld->err, SF_ERR_FORMAT, "%s:%lu: %s", ld->name,
                        (unsigned long)p->problem_mark.line + 1,
                        p->problem ? p->problem : "malformed YAML");
}

static const char *ev_what(const yaml_event_t *ev, char *buf, size_t size)
{
    switch (ev->type) {
    case YAML_SEQUENCE_START_EVENT: return "a list";
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SCALAR_EVENT: {
        /* Quoted from the file: escaped, so that a message stays one line. */
        char shown[200];
        size_t n = ev->data.scalar.length > 40 ? 40 : ev->data.scalar.length;
        snprintf(buf, size, "'%s'",
                 sf_zip_printable(shown, sizeof shown, (const char *)ev->data.scalar.value, n));
        return buf;
    }
    case YAML_STREAM_END_EVENT:
    case YAML_DOCUMENT_END_EVENT: return "the end of the document";
    default: return "something else";
    }
}

static int ev_is_null(const yaml_event_t *ev)
{
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    return n == 0 || (n == 1 && s[0] == '~') ||
           (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

/* A database id: a plain decimal integer 0 .. UINT32_MAX. */
static int parse_id(const yaml_event_t *ev, uint32_t *out)
{
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    if (n == 0 || n > 10)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return 0;
    *out = (uint32_t)v;
    return 1;
}

static sf_status parse_id_list(struct gnd_loader *ld, size_t qi, const char *key, uint32_t **ids,
                               size_t *n)
{
    yaml_event_t ev;
    char buf[64];
    sf_status st = gnd_next(ld, &ev);
    if (st != SF_OK)
        return st;
    if (ev_is_null(&ev)) {
        yaml_event_delete(&ev);
        return SF_OK;
    }
    if (ev.type != YAML_SEQUENCE_START_EVENT) {
        st = sf_error_set(ld->err, SF_ERR_FORMAT,
                          "%s:%lu: query %zu: '%s' must be a list of database ids, got %s",
                          ld->name, ev_line(&ev), qi, key, ev_what(&ev, buf, sizeof buf));
        yaml_event_delete(&ev);
        return st;
    }
    yaml_event_delete(&ev);
    size_t cap = 0;
    for (;;) {
        st = gnd_next(ld, &ev);
        if (st != SF_OK)
            return st;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return SF_OK;
        }
        uint32_t id;
        if (!parse_id(&ev, &id)) {
            st = sf_error_set(ld->err, SF_ERR_FORMAT,
                              "%s:%lu: query %zu: '%s' holds %s, not a database id "
                              "(an integer 0..%lu)",
                              ld->name, ev_line(&ev), qi, key, ev_what(&ev, buf, sizeof buf),
                              (unsigned long)UINT32_MAX);
            yaml_event_delete(&ev);
            return st;
        }
        yaml_event_delete(&ev);
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint32_t *p = realloc(*ids, nc * sizeof *p);
            if (!p)
                return sf_error_set(ld->err, SF_ERR_NOMEM, "%s: out of memory", ld->name);
            *ids = p;
            cap = nc;
        }
        (*ids)[(*n)++] = id;
    }
}

static sf_status parse_bbx(struct gnd_loader *ld, size_t qi, sf_gnd_query *q, unsigned long line)
{
    yaml_event_t ev;
    char buf[64];
    sf_status st = gnd_next(ld, &ev);
    if (st != SF_OK)
        return st;
    int is_list = ev.type == YAML_SEQUENCE_START_EVENT;
    if (!is_list)
        st = sf_error_set(ld->err, SF_ERR_FORMAT,
                          "%s:%lu: query %zu: 'bbx' must be a list x1, y1, x2, y2, got %s",
                          ld->name, ev_line(&ev), qi, ev_what(&ev, buf, sizeof buf));
    yaml_event_delete(&ev);
    int n = 0;
    while (st == SF_OK) {
        st = gnd_next(ld, &ev);
        if (st != SF_OK)
            break;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            if (n != 4)
                st = sf_error_set(ld->err, SF_ERR_FORMAT,
                                  "%s:%lu: query %zu: 'bbx' has %d values, expected 4",
                                  ld->name, line, qi, n);
            break;
        }
        char tmp[64];
        char *end = NULL;
        double v = 0;
        int ok = ev.type == YAML_SCALAR_EVENT && ev.data.scalar.length > 0 &&
                 ev.data.scalar.length < sizeof tmp;
        if (ok) {
            sf_copy_text(tmp, sizeof tmp, (const char *)ev.data.scalar.value,
                         ev.data.scalar.length);
            errno = 0;
            v = strtod(tmp, &end);
            ok = *end == '\0' && errno == 0 && isfinite(v) && n < 4;
        }
        if (!ok)
            st = sf_error_set(ld->err, SF_ERR_FORMAT,
                              "%s:%lu: query %zu: 'bbx' value %s is not %s", ld->name,
                              ev_line(&ev), qi, ev_what(&ev, buf, sizeof buf),
                              n < 4 ? "a finite number" : "expected (4 values only)");
        else
            q->bbx[n++] = v;
        yaml_event_delete(&ev);
    }
    if (st == SF_OK)
        q->has_bbx = 1;
    return st;
}

static sf_status parse_query(struct gnd_loader *ld, size_t qi, sf_gnd_query *q,
                             unsigned long line)
{
    static const char *const names[] = { "easy", "hard", "junk", "bbx" };
    unsigned long seen[4] = { 0, 0, 0, 0 };
    char buf[64];
    for (;;) {
        yaml_event_t ev;
        sf_status st = gnd_next(ld, &ev);
        if (st != SF_OK)
            return st;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            for (int i = 0; i < 3; i++)
                if (!seen[i])
                    return sf_error_set(ld->err, SF_ERR_FORMAT,
                                        "%s:%lu: query %zu: '%s' is missing (write %s: [] "
                                        "when empty)",
                                        ld->name, line, qi, names[i], names[i]);
            return SF_OK;
        }
        unsigned long kline = ev_line(&ev);
        int key = -1;
        if (ev.type == YAML_SCALAR_EVENT)
            for (int i = 0; i < 4; i++)
                if (ev.data.scalar.length == strlen(names[i]) &&
                    !memcmp(ev.data.scalar.value, names[i], ev.data.scalar.length))
                    key = i;
        if (key < 0) {
            st = sf_error_set(ld->err, SF_ERR_FORMAT,
                              "%s:%lu: query %zu: unknown key %s (expected easy, hard, junk "
                              "or bbx)",
                              ld->name, kline, qi, ev_what(&ev, buf, sizeof buf));
            yaml_event_delete(&ev);
            return st;
        }
        yaml_event_delete(&ev);
        if (seen[key])
            return sf_error_set(ld->err, SF_ERR_FORMAT,
                                "%s:%lu: query %zu: duplicate key '%s' (first at line %lu)",
                                ld->name, kline, qi, names[key], seen[key]);
        seen[key] = kline;
        if (key == 0)
            st = parse_id_list(ld, qi, "easy", &q->easy, &q->n_easy);
        else if (key == 1)
            st = parse_id_list(ld, qi, "hard", &q->hard, &q->n_hard);
        else if (key == 2)
            st = parse_id_list(ld, qi, "junk", &q->junk, &q->n_junk);
        else
            st = parse_bbx(ld, qi, q, kline);
        if (st != SF_OK)
            return st;
    }
}

static sf_status parse_gnd(struct gnd_loader *ld, sf_gnd *gnd)
{
    yaml_event_t ev;
    char buf[64];
    size_t cap = 0;
    sf_status st = gnd_next(ld, &ev); /* stream start */
    if (st != SF_OK)
        return st;
    yaml_event_delete(&ev);
    st = gnd_next(ld, &ev);
    if (st != SF_OK)
        return st;
    int has_doc = ev.type == YAML_DOCUMENT_START_EVENT;
    yaml_event_delete(&ev);
    if (!has_doc)
        return sf_error_set(ld->err, SF_ERR_FORMAT,
                            "%s: empty; expected a list of queries with easy, hard and junk",
                            ld->name);
    st = gnd_next(ld, &ev);
    if (st != SF_OK)
        return st;
    if (ev.type != YAML_SEQUENCE_START_EVENT) {
        st = sf_error_set(ld->err, SF_ERR_FORMAT,
                          "%s:%lu: expected a list of queries (- easy: [...]), got %s", ld->name,
                          ev_line(&ev), ev_what(&ev, buf, sizeof buf));
        yaml_event_delete(&ev);
        return st;
    }
    yaml_event_delete(&ev);
    for (;;) {
        st = gnd_next(ld, &ev);
        if (st != SF_OK)
            return st;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        unsigned long line = ev_line(&ev);
        if (ev.type != YAML_MAPPING_START_EVENT) {
            st = sf_error_set(ld->err, SF_ERR_FORMAT,
                              "%s:%lu: query %zu: expected a mapping with easy, hard and junk, "
                              "got %s",
                              ld->name, line, gnd->n_queries, ev_what(&ev, buf, sizeof buf));
            yaml_event_delete(&ev);
            return st;
        }
        yaml_event_delete(&ev);
        if (gnd->n_queries == cap) {
            size_t nc = cap ? cap * 2 : 64;
            sf_gnd_query *p = realloc(gnd->queries, nc * sizeof *p);
            if (!p)
                return sf_error_set(ld->err, SF_ERR_NOMEM, "%s: out of memory", ld->name);
            gnd->queries = p;
            cap = nc;
        }
        sf_gnd_query *q = &gnd->queries[gnd->n_queries++];
        memset(q, 0, sizeof *q);
        st = parse_query(ld, gnd->n_queries - 1, q, line);
        if (st != SF_OK)
            return st;
    }
    st = gnd_next(ld, &ev); /* document end */
    if (st != SF_OK)
        return st;
    yaml_event_delete(&ev);
    st = gnd_next(ld, &ev);
    if (st != SF_OK)
        return st;
    int more = ev.type != YAML_STREAM_END_EVENT;
    unsigned long line = ev_line(&ev);
    yaml_event_delete(&ev);
    if (more)
        return sf_error_set(ld->err, SF_ERR_FORMAT,
                            "%s:%lu: a second YAML document; the ground truth is one list",
                            ld->name, line);
    return SF_OK;
}

sf_status sf_gnd_parse_yaml(const void *data, size_t size, const char *name, sf_gnd **out,
                            sf_error *err)
{
    *out = NULL;
    struct gnd_loader ld;
    ld.name = name;
    ld.err = err;
    sf_gnd *gnd = calloc(1, sizeof *gnd);
    if (!gnd || !yaml_parser_initialize(&ld.parser)) {
        free(gnd);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    }
    yaml_parser_set_input_string(&ld.parser, data, size);
    sf_status st = parse_gnd(&ld, gnd);
    yaml_parser_delete(&ld.parser);
    if (st != SF_OK) {
        sf_gnd_free(gnd);
        return st;
    }
    *out = gnd;
    return SF_OK;
}

sf_status sf_gnd_load_yaml(const char *path, sf_gnd **out, sf_error *err)
{
    void *data;
    size_t size;
    *out = NULL;
    sf_status st = sf_read_file(path, 0, 0, &data, &size, err);
    if (st != SF_OK)
        return st;
    st = sf_gnd_parse_yaml(data, size, path, out, err);
    free(data);
    return st;
}

/* ---- Groups ---- */

struct sf_groups {
    size_t n;
    char **files;
    char **groups;
    unsigned long *lines;
};

void sf_groups_free(sf_groups *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++) {
        free(g->files[i]);
        free(g->groups[i]);
    }
    free(g->files);
    free(g->groups);
    free(g->lines);
    free(g);
}

size_t sf_groups_count(const sf_groups *g) { return g->n; }
const char *sf_groups_file(const sf_groups *g, size_t i) { return i < g->n ? g->files[i] : NULL; }
const char *sf_groups_group(const sf_groups *g, size_t i) { return i < g->n ? g->groups[i] : NULL; }

long sf_groups_find(const sf_groups *g, const char *file)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->files[i], file) == 0)
            return (long)i;
    return -1;
}

struct keyed {
    const char *s;
    size_t i;
};

static int cmp_keyed(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

sf_status sf_groups_parse_tsv(const void *data, size_t size, const char *name, sf_groups **out,
                              sf_error *err)
{
    *out = NULL;
    sf_groups *g = calloc(1, sizeof *g);
    if (!g)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    const char *s = data, *end = s + size;
    size_t cap = 0;
    unsigned long line = 0;
    sf_status st = SF_OK;
    while (s < end && st == SF_OK) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        line++;
        const char *next = nl ? nl + 1 : end;
        if (e > s && e[-1] == '\r')
            e--;
        if (e == s || s[0] == '#') {
            s = next;
            continue;
        }
        if (memchr(s, '\0', (size_t)(e - s))) {
            st = sf_error_set(err, SF_ERR_FORMAT, "%s:%lu: contains a NUL byte", name, line);
            break;
        }
        const char *tab = memchr(s, '\t', (size_t)(e - s));
        if (!tab) {
            st = sf_error_set(err, SF_ERR_FORMAT, "%s:%lu: expected file<TAB>group, found no tab",
                              name, line);
            break;
        }
        if (memchr(tab + 1, '\t', (size_t)(e - tab - 1))) {
            st = sf_error_set(err, SF_ERR_FORMAT,
                              "%s:%lu: expected file<TAB>group, found more than one tab", name,
                              line);
            break;
        }
        if (tab == s || tab + 1 == e) {
            st = sf_error_set(err, SF_ERR_FORMAT, "%s:%lu: empty %s name", name, line,
                              tab == s ? "file" : "group");
            break;
        }
        if (g->n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **f = realloc(g->files, nc * sizeof *f);
            if (f)
                g->files = f;
            char **gr = realloc(g->groups, nc * sizeof *gr);
            if (gr)
                g->groups = gr;
            unsigned long *l = realloc(g->lines, nc * sizeof *l);
            if (l)
                g->lines = l;
            if (!f || !gr || !l) {
                st = sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
                break;
            }
            cap = nc;
        }
        g->files[g->n] = dup_n(s, (size_t)(tab - s));
        g->groups[g->n] = dup_n(tab + 1, (size_t)(e - tab - 1));
        g->lines[g->n] = line;
        g->n++;
        if (!g->files[g->n - 1] || !g->groups[g->n - 1])
            st = sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
        s = next;
    }
    if (st == SF_OK && g->n == 0)
        st = sf_error_set(err, SF_ERR_FORMAT, "%s: no file<TAB>group lines", name);
    if (st == SF_OK) {
        struct keyed *k = malloc(g->n * sizeof *k);
        if (!k) {
            st = sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
        } else {
            for (size_t i = 0; i < g->n; i++) {
                k[i].s = g->files[i];
                k[i].i = i;
            }
            qsort(k, g->n, sizeof *k, cmp_keyed);
            for (size_t i = 1; i < g->n && st == SF_OK; i++)
                if (strcmp(k[i].s, k[i - 1].s) == 0)
                    st = sf_error_set(err, SF_ERR_FORMAT,
                                      "%s:%lu: file '%s' is listed twice (first at line %lu)",
                                      name, g->lines[k[i].i], k[i].s, g->lines[k[i - 1].i]);
            free(k);
        }
    }
    if (st != SF_OK) {
        /* entries whose copy failed are NULL; free(NULL) is fine */
        sf_groups_free(g);
        return st;
    }
    *out = g;
    return SF_OK;
}

sf_status sf_groups_load_tsv(const char *path, sf_groups **out, sf_error *err)
{
    void *data;
    size_t size;
    *out = NULL;
    sf_status st = sf_read_file(path, 0, 0, &data, &size, err);
    if (st != SF_OK)
        return st;
    st = sf_groups_parse_tsv(data, size, path, out, err);
    free(data);
    return st;
}

/* The files sorted by group, then by line (*sorted), and for file i the
 * run [lo[i], hi[i]) of *sorted that is its group.  -1: out of memory. */
static int group_runs(const sf_groups *groups, struct keyed **sorted, size_t **lo, size_t **hi)
{
    const size_t n = groups->n;
    *sorted = malloc((n ? n : 1) * sizeof **sorted);
    *lo = malloc((n ? n : 1) * sizeof **lo);
    *hi = malloc((n ? n : 1) * sizeof **hi);
    if (!*sorted || !*lo || !*hi) {
        free(*sorted);
        free(*lo);
        free(*hi);
        return -1;
    }
    struct keyed *k = *sorted;
    for (size_t i = 0; i < n; i++) {
        k[i].s = groups->groups[i];
        k[i].i = i;
    }
    qsort(k, n, sizeof *k, cmp_keyed);
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a + 1; b < n && strcmp(k[b].s, k[a].s) == 0; b++)
            ;
        for (size_t c = a; c < b; c++) {
            (*lo)[k[c].i] = a;
            (*hi)[k[c].i] = b;
        }
    }
    return 0;
}

sf_status sf_gnd_from_groups(const sf_groups *groups, const uint32_t *query_ids,
                             size_t n_queries, sf_gnd **out, sf_error *err)
{
    *out = NULL;
    const size_t n = groups->n;
    if (!query_ids && n_queries != n)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "groups: %zu queries for %zu files",
                            n_queries, n);
    for (size_t r = 0; query_ids && r < n_queries; r++)
        if (query_ids[r] >= n)
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                "groups: query %zu is file %lu of %zu", r,
                                (unsigned long)query_ids[r], n);
    struct keyed *by_group;
    size_t *lo, *hi;
    sf_gnd *g = calloc(1, sizeof *g);
    if (!g || !(g->queries = calloc(n_queries ? n_queries : 1, sizeof *g->queries)) ||
        group_runs(groups, &by_group, &lo, &hi) != 0) {
        if (g)
            free(g->queries);
        free(g);
        return sf_error_set(err, SF_ERR_NOMEM, "groups: out of memory");
    }
    sf_status st = SF_OK;
    g->n_queries = n_queries;
    for (size_t r = 0; r < n_queries; r++) {
        size_t qf = query_ids ? query_ids[r] : r;
        sf_gnd_query *q = &g->queries[r];
        int single = strncmp(groups->groups[qf], "single_", 7) == 0;
        size_t m = single ? 0 : hi[qf] - lo[qf] - 1;
        q->easy = malloc((m ? m : 1) * sizeof *q->easy);
        q->junk = malloc(sizeof *q->junk);
        if (!q->easy || !q->junk) {
            st = sf_error_set(err, SF_ERR_NOMEM, "groups: out of memory");
            break;
        }
        for (size_t c = lo[qf]; c < hi[qf] && !single; c++)
            if (by_group[c].i != qf)
                q->easy[q->n_easy++] = (uint32_t)by_group[c].i;
        q->junk[0] = (uint32_t)qf;
        q->n_junk = 1;
    }
    free(by_group);
    free(lo);
    free(hi);
    if (st != SF_OK) {
        sf_gnd_free(g);
        return st;
    }
    *out = g;
    return SF_OK;
}

sf_status sf_eval_recall(const sf_groups *groups, const uint32_t *ranks, size_t n_rows,
                         size_t n_ranked, const uint32_t *query_ids, const int *ks, size_t n_ks,
                         double *recall, size_t *n_counted, sf_error *err)
{
    const size_t n = groups->n;
    for (size_t i = 0; i < n_ks; i++)
        if (ks[i] < 1)
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "recall at %d: k must be >= 1",
                                ks[i]);
    if (!query_ids && n_rows > n)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "recall: %zu ranking rows for %zu files", n_rows, n);
    /* A file's group is its run [lo, hi); its size tells a group of one
     * (a file without partner), treated like single_*. */
    struct keyed *k;
    size_t *lo, *hi;
    size_t *hits = calloc(n_ks ? n_ks : 1, sizeof *hits);
    if (!hits || group_runs(groups, &k, &lo, &hi) != 0) {
        free(hits);
        return sf_error_set(err, SF_ERR_NOMEM, "recall: out of memory");
    }
    sf_status st = SF_OK;
    size_t counted = 0;
    for (size_t r = 0; r < n_rows && st == SF_OK; r++) {
        size_t q = query_ids ? query_ids[r] : r;
        if (q >= n) {
            st = sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                              "recall: row %zu is for query %zu of %zu files", r, q, n);
            break;
        }
        if (strncmp(groups->groups[q], "single_", 7) == 0 || hi[q] - lo[q] < 2)
            continue;
        const uint32_t *row = ranks + r * n_ranked;
        size_t first = SIZE_MAX, p = 0;
        for (size_t i = 0; i < n_ranked; i++) {
            if (row[i] >= n) {
                st = sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                  "recall: row %zu, rank %zu: id %lu outside 0..%zu", r, i,
                                  (unsigned long)row[i], n - 1);
                break;
            }
            if (row[i] == q)
                continue; /* the query itself is not a result */
            if (lo[row[i]] == lo[q]) {
                first = p;
                break;
            }
            p++;
        }
        if (st != SF_OK)
            break;
        counted++;
        for (size_t j = 0; j < n_ks; j++)
            hits[j] += first < (size_t)ks[j];
    }
    if (st == SF_OK) {
        recall_means(hits, n_ks, counted, recall, n_counted);
    }
    free(k);
    free(lo);
    free(hi);
    free(hits);
    return st;
}
