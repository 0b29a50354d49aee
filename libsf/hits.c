/* Search results: one query's list (building, (de)serialising, ranking)
 * and the set of every query's list. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sf_hits.h"
#include "sf_internal.h"
#include "strtab_internal.h"

void sf_hit_list_init(sf_hit_list *list)
{
    memset(list, 0, sizeof *list);
}

void sf_hit_list_clear(sf_hit_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->keys[i]);
    list->count = 0;
}

void sf_hit_list_release(sf_hit_list *list)
{
    if (!list)
        return;
    sf_hit_list_clear(list);
    free(list->keys);
    free(list->scores);
    sf_hit_list_init(list);
}

static sf_status reserve(sf_hit_list *list, size_t more, sf_error *err)
{
    if (list->count + more <= list->cap)
        return SF_OK;
    size_t cap = list->cap ? list->cap : 16;
    while (cap < list->count + more)
        cap *= 2;
    char **k = realloc(list->keys, cap * sizeof *k);
    if (k)
        list->keys = k;
    double *s = k ? realloc(list->scores, cap * sizeof *s) : NULL;
    if (!s)
        return sf_error_set(err, SF_ERR_NOMEM, "hits: out of memory for %zu hits",
                            list->count + more);
    list->scores = s;
    list->cap = cap;
    return SF_OK;
}

sf_status sf_hit_list_append(sf_hit_list *list, const char *key, size_t key_len, double score,
                             sf_error *err)
{
    if (key_len == 0 || key_len > SF_STREAM_MAX_KEY || memchr(key, '\0', key_len))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "hits: a key must have 1..%d bytes and no NUL", SF_STREAM_MAX_KEY);
    sf_status st = reserve(list, 1, err);
    if (st != SF_OK)
        return st;
    char *copy = malloc(key_len + 1);
    if (!copy)
        return sf_error_set(err, SF_ERR_NOMEM, "hits: out of memory");
    memcpy(copy, key, key_len);
    copy[key_len] = '\0';
    list->keys[list->count] = copy;
    list->scores[list->count] = score;
    list->count++;
    return SF_OK;
}

sf_status sf_hit_list_append_records(sf_hit_list *list, const sf_record *keys,
                                     const sf_record *scores, sf_error *err)
{
    const char *q = keys->key;
    if ((keys->kind & ~SF_KIND_OPTIONAL) != SF_KIND_HIT_KEYS || keys->dtype != SF_DTYPE_U8 ||
        keys->ndim != 1)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: hit_keys is not a u8 byte string", q);
    if ((scores->kind & ~SF_KIND_OPTIONAL) != SF_KIND_HIT_SCORES ||
        scores->dtype != SF_DTYPE_F64 || scores->ndim != 1)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: hit_scores is not a f64 vector", q);
    if (keys->data_size != keys->shape[0] || scores->data_size != scores->shape[0] * 8)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: hit records' sizes do not match their "
                            "shapes", q);
    const char *p = keys->data;
    const size_t size = (size_t)keys->data_size, n = (size_t)scores->shape[0];
    if (size > 0 && p[size - 1] != '\0')
        return sf_error_set(err, SF_ERR_FORMAT, "%s: hit_keys does not end with a NUL", q);
    size_t n_keys = 0;
    for (size_t i = 0; i < size; i++)
        n_keys += p[i] == '\0';
    if (n_keys != n)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: %zu hit keys for %zu scores", q, n_keys, n);
    sf_status st = reserve(list, n, err);
    const double *s = scores->data;
    for (size_t i = 0, off = 0; i < n && st == SF_OK; i++) {
        size_t len = strlen(p + off);
        double score;
        memcpy(&score, s + i, sizeof score); /* the payload may be unaligned */
        st = sf_hit_list_append(list, p + off, len, score, err);
        if (st == SF_ERR_INVALID_ARGUMENT)
            st = sf_error_set(err, SF_ERR_FORMAT, "%s: hit %zu has an empty or too long key",
                              q, i);
        off += len + 1;
    }
    return st;
}

sf_status sf_hit_list_to_records(const sf_hit_list *list, const char *query_key,
                                 sf_record *keys, sf_record *scores, char **keys_blob,
                                 double **scores_copy, sf_error *err)
{
    size_t size = 0;
    for (size_t i = 0; i < list->count; i++)
        size += strlen(list->keys[i]) + 1;
    char *blob = malloc(size ? size : 1);
    double *sc = malloc(list->count ? list->count * sizeof *sc : 1);
    if (!blob || !sc) {
        free(blob);
        free(sc);
        return sf_error_set(err, SF_ERR_NOMEM, "hits: out of memory");
    }
    for (size_t i = 0, off = 0; i < list->count; i++) {
        size_t len = strlen(list->keys[i]) + 1;
        memcpy(blob + off, list->keys[i], len);
        off += len;
        sc[i] = list->scores[i];
    }
    const uint64_t n_bytes = size;
    sf_record_make(keys, query_key, SF_KIND_HIT_KEYS, SF_DTYPE_U8, 1, &n_bytes, blob);
    *scores = *keys;
    scores->kind = SF_KIND_HIT_SCORES;
    scores->dtype = SF_DTYPE_F64;
    scores->shape[0] = list->count;
    scores->data = sc;
    scores->data_size = list->count * sizeof *sc;
    *keys_blob = blob;
    *scores_copy = sc;
    return SF_OK;
}

typedef struct ranked {
    double score;
    size_t pos;
    const char *key;
} ranked;

static int by_score(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    return sf_rank_better(x->score, x->pos, y->score, y->pos) ? -1
           : sf_rank_better(y->score, y->pos, x->score, x->pos);
}

static int by_key(const void *a, const void *b)
{
    const ranked *x = *(const ranked *const *)a, *y = *(const ranked *const *)b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

sf_status sf_hit_list_rank(sf_hit_list *list, const char *exclude, size_t top_k, sf_error *err)
{
    const size_t n = list->count;
    if (n == 0)
        return SF_OK;
    ranked *r = malloc(n * sizeof *r);
    ranked **byk = malloc(n * sizeof *byk);
    char **keys = malloc(n * sizeof *keys);
    if (!r || !byk || !keys) {
        free(r);
        free(byk);
        free(keys);
        return sf_error_set(err, SF_ERR_NOMEM, "hits: out of memory for ranking %zu hits", n);
    }
    for (size_t i = 0; i < n; i++)
        r[i] = (ranked){ list->scores[i], i, list->keys[i] };
    qsort(r, n, sizeof *r, by_score);
    /* Duplicates: after ranking, each key's first place is its best; pos
     * now holds the rank so that sorting by key then pos finds it. */
    for (size_t i = 0; i < n; i++) {
        r[i].pos = i;
        byk[i] = &r[i];
    }
    qsort(byk, n, sizeof *byk, by_key);
    for (size_t i = 1; i < n; i++)
        if (strcmp(byk[i]->key, byk[i - 1]->key) == 0)
            byk[i]->pos = SIZE_MAX; /* a worse copy */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        int keep = r[i].pos != SIZE_MAX && !(exclude && strcmp(r[i].key, exclude) == 0) &&
                   (top_k == 0 || kept < top_k);
        if (keep) {
            keys[kept] = (char *)r[i].key;
            list->scores[kept] = r[i].score;
            kept++;
        } else {
            free((char *)r[i].key);
        }
    }
    memcpy(list->keys, keys, kept * sizeof *keys);
    list->count = kept;
    free(r);
    free(byk);
    free(keys);
    return SF_OK;
}

/* ---- The set of queries ---- */

struct sf_hit_set {
    size_t n, cap;
    char **keys;         /* n owned query keys, in the order first met */
    sf_hit_list *lists;  /* n lists, lists[i] of keys[i] */
    sf_strtab table;     /* key -> index */
};

sf_status sf_hit_set_create(sf_hit_set **out, sf_error *err)
{
    *out = calloc(1, sizeof **out);
    return *out ? SF_OK : sf_error_set(err, SF_ERR_NOMEM, "hits: out of memory");
}

void sf_hit_set_free(sf_hit_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++) {
        free(set->keys[i]);
        sf_hit_list_release(&set->lists[i]);
    }
    free(set->keys);
    free(set->lists);
    sf_strtab_release(&set->table);
    free(set);
}

size_t sf_hit_set_count(const sf_hit_set *set)
{
    return set->n;
}

const char *sf_hit_set_key(const sf_hit_set *set, size_t i)
{
    return i < set->n ? set->keys[i] : NULL;
}

const sf_hit_list *sf_hit_set_hits(const sf_hit_set *set, size_t i)
{
    return i < set->n ? &set->lists[i] : NULL;
}

long sf_hit_set_find(const sf_hit_set *set, const char *key)
{
    return sf_strtab_find(&set->table, (const char *const *)set->keys, key, strlen(key));
}

/* The list of query key, made empty at the end when new; NULL out of memory. */
static sf_hit_list *list_of(sf_hit_set *set, const char *key)
{
    long i = sf_hit_set_find(set, key);
    if (i >= 0)
        return &set->lists[i];
    if (set->n == set->cap) {
        size_t cap = set->cap ? 2 * set->cap : 64;
        sf_hit_list *l = realloc(set->lists, cap * sizeof *l);
        if (l)
            set->lists = l;
        char **k = l ? realloc(set->keys, cap * sizeof *k) : NULL;
        if (!k)
            return NULL;
        set->keys = k;
        set->cap = cap;
    }
    char *copy = strdup(key);
    if (!copy)
        return NULL;
    set->keys[set->n] = copy;
    sf_hit_list_init(&set->lists[set->n]);
    set->n++;
    if (sf_strtab_added(&set->table, (const char *const *)set->keys, set->n) != 0) {
        set->n--;
        free(copy);
        return NULL;
    }
    return &set->lists[set->n - 1];
}

sf_status sf_hit_set_add_records(sf_hit_set *set, const char *query_key, const sf_record *keys,
                                 const sf_record *scores, sf_error *err)
{
    sf_hit_list *list = list_of(set, query_key);
    if (!list)
        return sf_error_set(err, SF_ERR_NOMEM, "hits: out of memory for query %s", query_key);
    sf_record named = *keys;
    named.key = query_key;
    named.key_len = strlen(query_key);
    const size_t before = list->count;
    sf_status st = sf_hit_list_append_records(list, &named, scores, err);
    if (st != SF_OK)
        while (list->count > before)
            free(list->keys[--list->count]);
    return st;
}

sf_status sf_hit_set_rank(sf_hit_set *set, int exclude_self, size_t top_k, sf_error *err)
{
    sf_status st = SF_OK;
    for (size_t i = 0; i < set->n && st == SF_OK; i++)
        st = sf_hit_list_rank(&set->lists[i], exclude_self ? set->keys[i] : NULL, top_k, err);
    return st;
}

static size_t pair_hash(sf_hit_pair p)
{
    return sf_strhash(p.a, strlen(p.a)) * 31 + sf_strhash(p.b, strlen(p.b));
}

sf_status sf_hit_set_pairs(const sf_hit_set *set, sf_hit_pair **pairs, size_t *n_pairs,
                           sf_error *err)
{
    *pairs = NULL;
    *n_pairs = 0;
    size_t total = 0, size = 16;
    for (size_t i = 0; i < set->n; i++)
        total += set->lists[i].count;
    while (size < 2 * total)
        size *= 2;
    sf_hit_pair *out = malloc((total ? total : 1) * sizeof *out);
    size_t *slots = calloc(size, sizeof *slots); /* index in out + 1; 0: empty */
    if (!out || !slots) {
        free(out);
        free(slots);
        return sf_error_set(err, SF_ERR_NOMEM, "hits: out of memory for %zu pairs", total);
    }
    size_t n = 0;
    for (size_t i = 0; i < set->n; i++)
        for (size_t j = 0; j < set->lists[i].count; j++) {
            const char *q = set->keys[i], *hit = set->lists[i].keys[j];
            int c = strcmp(q, hit);
            if (c == 0)
                continue;
            sf_hit_pair p = { c < 0 ? q : hit, c < 0 ? hit : q, q, hit,
                              set->lists[i].scores[j] };
            size_t h = pair_hash(p) & (size - 1);
            while (slots[h] && (strcmp(out[slots[h] - 1].a, p.a) != 0 ||
                                strcmp(out[slots[h] - 1].b, p.b) != 0))
                h = (h + 1) & (size - 1);
            if (!slots[h]) { /* the first time this pair is met */
                out[n++] = p;
                slots[h] = n;
            }
        }
    free(slots);
    *pairs = out;
    *n_pairs = n;
    return SF_OK;
}
