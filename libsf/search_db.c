/* A database of images held in memory for pairwise or global search. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

sf_status sf_search_db_create(sf_search_kind kind, const sf_search_options *options,
                              sf_search_db **out, sf_error *err)
{
    *out = NULL;
    if (kind != SF_SEARCH_PAIRWISE && kind != SF_SEARCH_GLOBAL)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "search: unknown database kind %d",
                            (int)kind);
    sf_search_db *db = calloc(1, sizeof *db);
    if (!db)
        return sf_error_set(err, SF_ERR_NOMEM, "search: out of memory");
    db->kind = kind;
    db->need_templates = kind == SF_SEARCH_PAIRWISE && options && options->match.same_index;
    *out = db;
    return SF_OK;
}

void sf_search_db_free(sf_search_db *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->count; i++) {
        free(db->keys[i]);
        if (db->local) {
            free(db->local[i].desc);
            free(db->local[i].tmpl);
        }
    }
    free(db->keys);
    free(db->local);
    free(db->global);
    free(db);
}

size_t sf_search_db_count(const sf_search_db *db)
{
    return db->count;
}

const char *sf_search_db_key(const sf_search_db *db, size_t id)
{
    return id < db->count ? db->keys[id] : NULL;
}

/* Room for one more image (and, for a global database, its dim floats). */
static int grow(sf_search_db *db, size_t dim)
{
    if (db->count < db->cap)
        return 0;
    size_t cap = db->cap ? 2 * db->cap : 64;
    char **keys = realloc(db->keys, cap * sizeof *keys);
    if (!keys)
        return -1;
    db->keys = keys;
    if (db->kind == SF_SEARCH_PAIRWISE) {
        sf_search_local *l = realloc(db->local, cap * sizeof *l);
        if (!l)
            return -1;
        db->local = l;
    } else {
        size_t floats = sf_mul_size(cap, dim);
        float *g = floats ? realloc(db->global, floats * sizeof *g) : NULL;
        if (!g)
            return -1;
        db->global = g;
    }
    db->cap = cap;
    return 0;
}

static void *copy_of(const sf_record *rec)
{
    void *p = malloc(rec->data_size ? (size_t)rec->data_size : 1);
    if (p && rec->data_size)
        memcpy(p, rec->data, (size_t)rec->data_size);
    return p;
}

const sf_record *sf_search_db_record(const sf_search_db *db, sf_search_kind kind,
                                     const sf_stream_image *img, const char *tail, sf_error *err)
{
    const int local = db->kind == SF_SEARCH_PAIRWISE;
    if (kind && db->kind != kind) {
        sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "search: not a %s database",
                     local ? "global" : "pairwise");
        return NULL;
    }
    const sf_record *rec = sf_stream_image_find(img, local ? SF_KIND_LOCAL_DESC : SF_KIND_GLOBAL);
    if (!rec)
        sf_error_set(err, SF_ERR_INVALID_DATA,
                     local ? "%s: no local_desc record (the output of sf-lit)"
                           : "%s: no global record (sf-lit --global)",
                     img->key);
    else if (db->dim && rec->shape[local ? 1 : 0] != db->dim)
        sf_error_set(err, SF_ERR_INVALID_DATA,
                     local ? "%s: local_desc is not one K x %zu float32 array%s"
                           : "%s: global is not one float32 vector of %zu%s",
                     img->key, db->dim, tail);
    else
        return rec;
    return NULL;
}

sf_status sf_search_db_add(sf_search_db *db, const sf_stream_image *img, sf_error *err)
{
    const char *key = img->key;
    const sf_record *rec = sf_search_db_record(db, 0, img, "", err);
    if (!rec)
        return err->status;
    /* Refused here rather than failing every query. */
    if (db->need_templates && !sf_stream_image_find(img, SF_KIND_LOCAL_INDEX))
        return sf_error_set(err, SF_ERR_INVALID_DATA,
                            "%s: --same-template needs a local_index record", key);
    const size_t dim = (size_t)rec->shape[db->kind == SF_SEARCH_PAIRWISE ? 1 : 0];
    if (grow(db, dim) != 0)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", key);
    char *k = strdup(key);
    if (!k)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", key);
    if (db->kind == SF_SEARCH_PAIRWISE) {
        const sf_record *tmpl = sf_stream_image_find(img, SF_KIND_LOCAL_INDEX);
        sf_search_local l = { copy_of(rec), tmpl ? copy_of(tmpl) : NULL, (size_t)rec->shape[0] };
        if (!l.desc || (tmpl && !l.tmpl)) {
            free(l.desc);
            free(l.tmpl);
            free(k);
            return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", key);
        }
        db->local[db->count] = l;
    } else {
        memcpy(db->global + db->count * dim, rec->data, dim * sizeof(float));
    }
    db->dim = dim;
    db->keys[db->count++] = k;
    return SF_OK;
}
