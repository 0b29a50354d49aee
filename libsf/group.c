/* Groups of images from hits: the graph of the pairs found together, its
 * connected components above a score, and how they compare with an
 * answer key. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sf_eval.h"
#include "sf_hits.h"
#include "strtab_internal.h"

struct sf_hit_graph {
    size_t n, cap;
    char **keys;             /* n owned keys */
    unsigned char *is_query; /* n flags */
    sf_strtab table;         /* key -> image */
    size_t n_edges, edge_cap;
    sf_hit_edge *edges;
    size_t *slots;           /* edge index + 1 by (a, b); 0: empty; at most half full */
    size_t slot_mask;
};

void sf_hit_graph_free(sf_hit_graph *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++)
        free(g->keys[i]);
    free(g->keys);
    free(g->is_query);
    sf_strtab_release(&g->table);
    free(g->edges);
    free(g->slots);
    free(g);
}

size_t sf_hit_graph_count(const sf_hit_graph *g)
{
    return g->n;
}

const char *sf_hit_graph_key(const sf_hit_graph *g, size_t i)
{
    return i < g->n ? g->keys[i] : NULL;
}

int sf_hit_graph_is_query(const sf_hit_graph *g, size_t i)
{
    return i < g->n && g->is_query[i];
}

size_t sf_hit_graph_n_edges(const sf_hit_graph *g)
{
    return g->n_edges;
}

const sf_hit_edge *sf_hit_graph_edges(const sf_hit_graph *g)
{
    return g->edges;
}

/* The image of key, added when new; -1 out of memory. */
static long image_of(sf_hit_graph *g, const char *key)
{
    long i = sf_strtab_find(&g->table, (const char *const *)g->keys, key, strlen(key));
    if (i >= 0)
        return i;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 64;
        char **k = realloc(g->keys, cap * sizeof *k);
        if (k)
            g->keys = k;
        unsigned char *q = k ? realloc(g->is_query, cap) : NULL;
        if (!q)
            return -1;
        g->is_query = q;
        g->cap = cap;
    }
    char *copy = strdup(key);
    if (!copy)
        return -1;
    g->keys[g->n] = copy;
    g->is_query[g->n] = 0;
    g->n++;
    if (sf_strtab_added(&g->table, (const char *const *)g->keys, g->n) != 0) {
        free(g->keys[--g->n]);
        return -1;
    }
    return (long)g->n - 1;
}

static size_t edge_hash(size_t a, size_t b)
{
    uint64_t h = (uint64_t)a * 0x9E3779B97F4A7C15u ^ ((uint64_t)b + 0x632BE59BD9B4E019u);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9u;
    return (size_t)(h ^ h >> 32);
}

/* Room for one more edge, the slots kept at most half full; -1 out of memory. */
static int edge_reserve(sf_hit_graph *g)
{
    if (g->n_edges == g->edge_cap) {
        size_t cap = g->edge_cap ? 2 * g->edge_cap : 256;
        sf_hit_edge *e = realloc(g->edges, cap * sizeof *e);
        if (!e)
            return -1;
        g->edges = e;
        g->edge_cap = cap;
    }
    if (2 * (g->n_edges + 1) > g->slot_mask + 1 || !g->slots) {
        size_t size = g->slots ? 2 * (g->slot_mask + 1) : 512;
        size_t *slots = calloc(size, sizeof *slots);
        if (!slots)
            return -1;
        for (size_t i = 0; i < g->n_edges; i++) {
            size_t h = edge_hash(g->edges[i].a, g->edges[i].b) & (size - 1);
            while (slots[h])
                h = (h + 1) & (size - 1);
            slots[h] = i + 1;
        }
        free(g->slots);
        g->slots = slots;
        g->slot_mask = size - 1;
    }
    return 0;
}

/* The edge of images a < b, added when new; NULL out of memory. */
static sf_hit_edge *edge_of(sf_hit_graph *g, size_t a, size_t b)
{
    if (edge_reserve(g) != 0)
        return NULL;
    size_t h = edge_hash(a, b) & g->slot_mask;
    while (g->slots[h]) {
        sf_hit_edge *e = &g->edges[g->slots[h] - 1];
        if (e->a == a && e->b == b)
            return e;
        h = (h + 1) & g->slot_mask;
    }
    sf_hit_edge *e = &g->edges[g->n_edges++];
    *e = (sf_hit_edge){ a, b, NAN, NAN };
    g->slots[h] = g->n_edges;
    return e;
}

sf_status sf_hit_graph_create(const sf_hit_set *set, sf_hit_graph **out, sf_error *err)
{
    *out = NULL;
    sf_hit_graph *g = calloc(1, sizeof *g);
    if (!g)
        return sf_error_set(err, SF_ERR_NOMEM, "groups: out of memory");
    const size_t n_q = sf_hit_set_count(set);
    int ok = 1;
    /* Queries first, so that images are numbered as the queries were met. */
    for (size_t i = 0; i < n_q && ok; i++) {
        long q = image_of(g, sf_hit_set_key(set, i));
        ok = q >= 0;
        if (ok)
            g->is_query[q] = 1;
    }
    for (size_t i = 0; i < n_q && ok; i++) {
        const size_t q = (size_t)image_of(g, sf_hit_set_key(set, i)); /* met above */
        const sf_hit_list *l = sf_hit_set_hits(set, i);
        for (size_t j = 0; j < l->count && ok; j++) {
            long h = image_of(g, l->keys[j]);
            ok = h >= 0;
            if (!ok || (size_t)h == q)
                continue;
            const size_t a = q < (size_t)h ? q : (size_t)h, b = q < (size_t)h ? (size_t)h : q;
            sf_hit_edge *e = edge_of(g, a, b);
            ok = e != NULL;
            if (ok) {
                double *s = a == q ? &e->ab : &e->ba;
                *s = fmax(*s, l->scores[j]); /* NaN only when both are */
            }
        }
    }
    if (!ok) {
        sf_hit_graph_free(g);
        return sf_error_set(err, SF_ERR_NOMEM, "groups: out of memory for the pairs of %zu "
                            "queries", n_q);
    }
    *out = g;
    return SF_OK;
}

double sf_hit_edge_score(const sf_hit_edge *e, sf_group_rule rule)
{
    if (rule == SF_GROUP_MUTUAL)
        return isnan(e->ab) || isnan(e->ba) ? NAN : fmin(e->ab, e->ba);
    return fmax(e->ab, e->ba);
}

static size_t find_root(size_t *parent, size_t i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

sf_status sf_hit_graph_group(const sf_hit_graph *g, double threshold, sf_group_rule rule,
                             size_t *group, size_t *n_groups, sf_error *err)
{
    const size_t n = g->n;
    size_t *parent = malloc((n ? n : 1) * sizeof *parent);
    if (!parent)
        return sf_error_set(err, SF_ERR_NOMEM, "groups: out of memory for %zu images", n);
    for (size_t i = 0; i < n; i++)
        parent[i] = i;
    for (size_t k = 0; k < g->n_edges; k++) {
        const sf_hit_edge *e = &g->edges[k];
        if (!(sf_hit_edge_score(e, rule) >= threshold)) /* NaN never joins */
            continue;
        size_t ra = find_root(parent, e->a), rb = find_root(parent, e->b);
        /* The lower image becomes the root, so roots are first members. */
        if (ra < rb)
            parent[rb] = ra;
        else if (rb < ra)
            parent[ra] = rb;
    }
    /* A root is the first image of its component: numbering images in
     * order numbers components by their first image. */
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = find_root(parent, i);
        group[i] = r == i ? count++ : group[r];
    }
    *n_groups = count;
    free(parent);
    return SF_OK;
}

/* ---- Against an answer key ---- */

/* The key's file and true group of each image: file[i] (-1: not named)
 * and truth[i] (-1: no partner: not named, or single_*). */
typedef struct named {
    long *file, *truth;
    size_t n_true_groups;
    sf_group_eval counts; /* n_named, n_unknown, first_unknown, n_key_missing, true_pairs */
} named;

static void named_release(named *m)
{
    free(m->file);
    free(m->truth);
}

static uint64_t pairs_of(uint64_t c)
{
    return c * (c - (c > 0)) / 2;
}

static sf_status name_images(const sf_groups *key, const sf_hit_graph *g, named *m,
                             sf_error *err)
{
    memset(m, 0, sizeof *m);
    const size_t n = g->n, n_files = sf_groups_count(key);
    const char **files = malloc((n_files ? n_files : 1) * sizeof *files);
    const char **gnames = malloc((n_files ? n_files : 1) * sizeof *gnames);
    long *gid = malloc((n_files ? n_files : 1) * sizeof *gid);
    unsigned char *met = calloc(n_files ? n_files : 1, 1);
    uint64_t *per_group = calloc(n_files ? n_files : 1, sizeof *per_group);
    m->file = malloc((n ? n : 1) * sizeof *m->file);
    m->truth = malloc((n ? n : 1) * sizeof *m->truth);
    sf_eval_names *names = NULL;
    sf_strtab groups_tab = { 0 };
    sf_status st = SF_OK;
    if (!files || !gnames || !gid || !met || !per_group || !m->file || !m->truth)
        st = sf_error_set(err, SF_ERR_NOMEM, "groups: out of memory for %zu files", n_files);
    /* Each file's group as a number; single_* groups have none. */
    size_t n_gnames = 0;
    for (size_t f = 0; f < n_files && st == SF_OK; f++) {
        files[f] = sf_groups_file(key, f);
        const char *gname = sf_groups_group(key, f);
        if (strncmp(gname, "single_", 7) == 0) {
            gid[f] = -1;
            continue;
        }
        long id = sf_strtab_find(&groups_tab, gnames, gname, strlen(gname));
        if (id < 0) {
            gnames[n_gnames++] = gname;
            if (sf_strtab_added(&groups_tab, gnames, n_gnames) != 0)
                st = sf_error_set(err, SF_ERR_NOMEM, "groups: out of memory");
            id = (long)n_gnames - 1;
        }
        gid[f] = id;
    }
    if (st == SF_OK)
        st = sf_eval_names_create(files, n_files, &names, err);
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        long f = sf_eval_names_find(names, g->keys[i]);
        m->file[i] = f;
        m->truth[i] = f >= 0 ? gid[f] : -1;
        if (f < 0) {
            if (!m->counts.n_unknown++)
                m->counts.first_unknown = g->keys[i];
            continue;
        }
        m->counts.n_named++;
        met[f] = 1;
        if (gid[f] >= 0)
            per_group[gid[f]]++;
    }
    for (size_t f = 0; f < n_files && st == SF_OK; f++)
        m->counts.n_key_missing += !met[f];
    for (size_t k = 0; k < n_gnames && st == SF_OK; k++)
        m->counts.true_pairs += pairs_of(per_group[k]);
    m->n_true_groups = n_gnames;
    sf_eval_names_free(names);
    sf_strtab_release(&groups_tab);
    free(files);
    free(gnames);
    free(gid);
    free(met);
    free(per_group);
    if (st != SF_OK)
        named_release(m);
    return st;
}

typedef struct two {
    size_t found, truth;
} two;

static int by_two(const void *x, const void *y)
{
    const two *a = x, *b = y;
    if (a->found != b->found)
        return a->found < b->found ? -1 : 1;
    return a->truth < b->truth ? -1 : a->truth > b->truth;
}

sf_status sf_group_evaluate(const sf_groups *key, const sf_hit_graph *g, const size_t *group,
                            sf_group_eval *out, sf_error *err)
{
    memset(out, 0, sizeof *out);
    named m;
    sf_status st = name_images(key, g, &m, err);
    if (st != SF_OK)
        return st;
    const size_t n = g->n;
    two *t = malloc((n ? n : 1) * sizeof *t);
    if (!t) {
        named_release(&m);
        return sf_error_set(err, SF_ERR_NOMEM, "groups: out of memory for %zu images", n);
    }
    /* Sorted by (found group, true group): runs of equal found groups
     * count the pairs found, runs of both the pairs found correctly. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (m.file[i] >= 0)
            t[k++] = (two){ group[i], m.truth[i] >= 0 ? (size_t)m.truth[i] : SIZE_MAX };
    qsort(t, k, sizeof *t, by_two);
    *out = m.counts;
    for (size_t i = 0, j; i < k; i = j) {
        for (j = i; j < k && t[j].found == t[i].found; j++)
            ;
        out->found_pairs += pairs_of(j - i);
        for (size_t a = i, b; a < j; a = b) {
            for (b = a; b < j && t[b].truth == t[a].truth; b++)
                ;
            if (t[a].truth != SIZE_MAX)
                out->correct_pairs += pairs_of(b - a);
        }
    }
    out->precision = out->found_pairs ? (double)out->correct_pairs / (double)out->found_pairs
                                      : NAN;
    out->recall = out->true_pairs ? (double)out->correct_pairs / (double)out->true_pairs : NAN;
    free(t);
    named_release(&m);
    return SF_OK;
}

static int by_value(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

sf_status sf_group_scores(const sf_groups *key, const sf_hit_graph *g, sf_group_rule rule,
                          double **same, size_t *n_same, uint64_t *same_missing,
                          double **other, size_t *n_other, uint64_t *other_missing,
                          sf_error *err)
{
    *same = *other = NULL;
    *n_same = *n_other = 0;
    *same_missing = *other_missing = 0;
    named m;
    sf_status st = name_images(key, g, &m, err);
    if (st != SF_OK)
        return st;
    const size_t ne = g->n_edges;
    double *s = malloc((ne ? ne : 1) * sizeof *s), *o = malloc((ne ? ne : 1) * sizeof *o);
    if (!s || !o) {
        free(s);
        free(o);
        named_release(&m);
        return sf_error_set(err, SF_ERR_NOMEM, "groups: out of memory for %zu pairs", ne);
    }
    uint64_t same_held = 0;
    for (size_t k = 0; k < ne; k++) {
        const sf_hit_edge *e = &g->edges[k];
        if (m.file[e->a] < 0 || m.file[e->b] < 0)
            continue;
        const int is_same = m.truth[e->a] >= 0 && m.truth[e->a] == m.truth[e->b];
        const double v = sf_hit_edge_score(e, rule);
        same_held += is_same;
        if (isnan(v))
            *(is_same ? same_missing : other_missing) += 1;
        else if (is_same)
            s[(*n_same)++] = v;
        else
            o[(*n_other)++] = v;
    }
    *same_missing += m.counts.true_pairs - same_held;
    qsort(s, *n_same, sizeof *s, by_value);
    qsort(o, *n_other, sizeof *o, by_value);
    *same = s;
    *other = o;
    named_release(&m);
    return SF_OK;
}

double sf_quantile_sorted(const double *v, size_t n, double p)
{
    if (n == 0)
        return NAN;
    p = p < 0 ? 0 : p > 1 ? 1 : p;
    const double x = p * (double)(n - 1);
    const size_t i = (size_t)x;
    if (i + 1 >= n)
        return v[n - 1];
    return v[i] + (x - (double)i) * (v[i + 1] - v[i]);
}

sf_status sf_groups_check_file(const char *file, sf_error *err)
{
    char shown[256];
    const char *why = !file[0]              ? "is empty"
                      : strchr(file, '\t') ? "holds a tab"
                      : strchr(file, '\n') ? "holds a line feed"
                      : file[0] == '#'      ? "starts with #, which makes the line a comment"
                                            : NULL;
    if (why)
        return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: %s: it cannot be written as a "
                            "file<TAB>group line", sf_text_printable(file, shown, sizeof shown),
                            why);
    return SF_OK;
}
