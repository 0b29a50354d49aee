/* Choosing images by key and records by kind and index: sf-cat's
 * selection, for any program that passes part of a stream on. */
#include "config.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "sf_internal.h"
#include "strtab_internal.h"

struct sf_record_filter {
    char **keys;     /* owned copies, in the order added */
    size_t n_keys, keys_cap;
    sf_strtab table; /* keys -> their index */
    char **globs;    /* owned copies */
    size_t n_globs, globs_cap;
    uint64_t kinds;  /* bit k set: keep kind k; 0: keep every kind */
    int has_index;
    uint32_t index;
};

sf_status sf_record_filter_create(sf_record_filter **out, sf_error *err)
{
    *out = calloc(1, sizeof **out);
    return *out ? SF_OK : sf_error_set(err, SF_ERR_NOMEM, "record filter: out of memory");
}

void sf_record_filter_free(sf_record_filter *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_keys; i++)
        free(f->keys[i]);
    for (size_t i = 0; i < f->n_globs; i++)
        free(f->globs[i]);
    free(f->keys);
    free(f->globs);
    sf_strtab_release(&f->table);
    free(f);
}

/* Append a copy of s to *list (n entries, room for *cap). */
static sf_status append_copy(char ***list, size_t *n, size_t *cap, const char *s, sf_error *err)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        char **l = realloc(*list, c * sizeof *l);
        if (!l)
            return sf_error_set(err, SF_ERR_NOMEM, "record filter: out of memory");
        *list = l;
        *cap = c;
    }
    char *copy = strdup(s);
    if (!copy)
        return sf_error_set(err, SF_ERR_NOMEM, "record filter: out of memory");
    (*list)[(*n)++] = copy;
    return SF_OK;
}

sf_status sf_record_filter_add_key(sf_record_filter *f, const char *key, sf_error *err)
{
    if (!*key)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "keys are never empty");
    sf_status st = append_copy(&f->keys, &f->n_keys, &f->keys_cap, key, err);
    if (st != SF_OK)
        return st;
    if (sf_strtab_added(&f->table, (const char *const *)f->keys, f->n_keys) != 0) {
        free(f->keys[--f->n_keys]);
        return sf_error_set(err, SF_ERR_NOMEM, "record filter: out of memory");
    }
    return SF_OK;
}

sf_status sf_record_filter_add_glob(sf_record_filter *f, const char *glob, sf_error *err)
{
    return append_copy(&f->globs, &f->n_globs, &f->globs_cap, glob, err);
}

sf_status sf_record_filter_add_kind(sf_record_filter *f, int kind, sf_error *err)
{
    if (kind <= 0 || kind >= 64 || !sf_kind_name(kind))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "unknown record kind %d", kind);
    f->kinds |= UINT64_C(1) << kind;
    return SF_OK;
}

void sf_record_filter_set_index(sf_record_filter *f, uint32_t index)
{
    f->has_index = 1;
    f->index = index;
}

static int keeps_image(const sf_record_filter *f, const sf_stream_image *img)
{
    if (f->n_keys == 0 && f->n_globs == 0)
        return 1;
    if (sf_strtab_find(&f->table, (const char *const *)f->keys, img->key, img->key_len) >= 0)
        return 1;
    for (size_t i = 0; i < f->n_globs; i++)
        if (fnmatch(f->globs[i], img->key, 0) == 0)
            return 1;
    return 0;
}

int sf_record_filter_keeps_record(const sf_record_filter *f, const sf_record *rec)
{
    unsigned kind = rec->kind & ~SF_KIND_OPTIONAL;
    if (f->kinds && (kind >= 64 || !(f->kinds & (UINT64_C(1) << kind))))
        return 0;
    /* Provenance describes the whole image, not one scale of it. */
    return kind == SF_KIND_PROVENANCE || !f->has_index || rec->index == f->index;
}

size_t sf_record_filter_count(const sf_record_filter *f, const sf_stream_image *img)
{
    size_t n = 0, prov = 0;
    if (!keeps_image(f, img))
        return 0;
    for (size_t i = 0; i < img->count; i++)
        if (sf_record_filter_keeps_record(f, &img->recs[i])) {
            if ((img->recs[i].kind & ~SF_KIND_OPTIONAL) == SF_KIND_PROVENANCE)
                prov++;
            else
                n++;
        }
    /* Provenance goes with what else of the image is kept; alone only when
     * asked for by kind, or when nothing at all is filtered out. */
    if (n || (f->kinds & (UINT64_C(1) << SF_KIND_PROVENANCE)) || (!f->kinds && !f->has_index))
        n += prov;
    return n;
}
