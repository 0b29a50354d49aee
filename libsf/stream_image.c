/* Whole images out of a stream, and what each record kind must hold: the
 * one place that decides what a valid image is, for every program. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sf_internal.h"
#include "stream_internal.h"

/* ---- One record ---- */

typedef struct kind_rule {
    uint8_t dtype;
    uint8_t ndim;
    uint8_t finite;   /* every value finite: the maths uses them */
    uint8_t nonempty; /* every dim > 0 */
    uint8_t single;   /* at most one per image */
    uint8_t dim0;     /* exact first dim, 0 when free */
    uint8_t dim_last; /* exact last dim, 0 when free */
} kind_rule;

static const kind_rule rules[] = {
    [SF_KIND_IMAGE] = { SF_DTYPE_F32, 3, 1, 1, 0, 3, 0 },
    [SF_KIND_FEATURE_MAP] = { SF_DTYPE_F32, 3, 1, 1, 0, 0, 0 },
    [SF_KIND_SUPERFEATURES] = { SF_DTYPE_F32, 2, 1, 1, 0, 0, 0 },
    [SF_KIND_ATTENTION] = { SF_DTYPE_F32, 3, 1, 1, 0, 0, 0 },
    [SF_KIND_STRENGTH] = { SF_DTYPE_F32, 1, 1, 1, 0, 0, 0 },
    [SF_KIND_LOCAL_DESC] = { SF_DTYPE_F32, 2, 1, 1, 1, 0, 0 },
    [SF_KIND_LOCAL_STRENGTH] = { SF_DTYPE_F32, 1, 1, 0, 1, 0, 0 },
    [SF_KIND_LOCAL_SCALE] = { SF_DTYPE_F32, 1, 1, 0, 1, 0, 0 },
    [SF_KIND_LOCAL_INDEX] = { SF_DTYPE_I32, 1, 0, 0, 1, 0, 0 },
    [SF_KIND_GLOBAL] = { SF_DTYPE_F32, 1, 1, 1, 1, 0, 0 },
    [SF_KIND_PIXELS] = { SF_DTYPE_U8, 3, 0, 1, 0, 0, 3 },
    [SF_KIND_SOURCE] = { SF_DTYPE_I64, 1, 0, 1, 1, 2, 0 },
    [SF_KIND_REDUCED] = { SF_DTYPE_F32, 2, 1, 1, 0, 0, 0 },
    [SF_KIND_HIT_KEYS] = { SF_DTYPE_U8, 1, 0, 0, 0, 0, 0 },
    [SF_KIND_HIT_SCORES] = { SF_DTYPE_F64, 1, 1, 0, 0, 0, 0 },
    [SF_KIND_MATCH_PAIRS] = { SF_DTYPE_I32, 2, 0, 0, 0, 0, 2 },
    [SF_KIND_MATCH_SIMILARITY] = { SF_DTYPE_F32, 1, 1, 0, 0, 0, 0 },
    [SF_KIND_PROVENANCE] = { SF_DTYPE_I64, 1, 0, 1, 1, SF_PROVENANCE_FIELDS, 0 },
};
#define N_RULES (int)(sizeof rules / sizeof rules[0])

static uint64_t count_nonfinite(const sf_record *rec)
{
    uint64_t n = 0, count = rec->data_size / sf_dtype_size(rec->dtype);
    if (rec->dtype == SF_DTYPE_F32) {
        const float *v = rec->data;
        for (uint64_t i = 0; i < count; i++)
            n += !isfinite(v[i]);
    } else if (rec->dtype == SF_DTYPE_F64) {
        const double *v = rec->data;
        for (uint64_t i = 0; i < count; i++)
            n += !isfinite(v[i]);
    }
    return n;
}

sf_status sf_record_check_contents(const sf_record *rec, sf_error *err)
{
    int kind = rec->kind & ~(int)SF_KIND_OPTIONAL;
    const char *name = sf_kind_name(kind);
    if (kind <= 0 || kind >= N_RULES || !rules[kind].dtype)
        return SF_OK; /* unknown optional kinds and end records: nothing to say */
    const kind_rule *k = &rules[kind];
#define BAD(...) sf_error_set(err, SF_ERR_INVALID_DATA, SF_KEY_FMT ": %s: " __VA_ARGS__)
#define KEY SF_KEY_ARGS(rec->key, rec->key_len), name
    if (rec->dtype != k->dtype)
        return BAD("%s, not %s", KEY, sf_dtype_name(rec->dtype), sf_dtype_name(k->dtype));
    if (rec->ndim != k->ndim)
        return BAD("%u dimensions, not %u", KEY, (unsigned)rec->ndim, (unsigned)k->ndim);
    for (unsigned i = 0; k->nonempty && i < rec->ndim; i++)
        if (rec->shape[i] == 0)
            return BAD("empty (dimension %u is 0)", KEY, i);
    if (k->dim0 && rec->shape[0] != k->dim0)
        return BAD("first dimension %llu, not %u", KEY, (unsigned long long)rec->shape[0],
                   (unsigned)k->dim0);
    if (k->dim_last && rec->shape[rec->ndim - 1] != k->dim_last)
        return BAD("last dimension %llu, not %u", KEY,
                   (unsigned long long)rec->shape[rec->ndim - 1], (unsigned)k->dim_last);
    if (k->finite) {
        uint64_t bad = count_nonfinite(rec);
        if (bad)
            return BAD("%llu NaN or infinite values", KEY, (unsigned long long)bad);
    }
    if (kind == SF_KIND_LOCAL_SCALE) {
        const float *v = rec->data;
        for (uint64_t i = 0; i < rec->shape[0]; i++)
            if (!(v[i] > 0))
                return BAD("scale %g is not positive", KEY, (double)v[i]);
    }
    if (kind == SF_KIND_HIT_KEYS && rec->data_size &&
        ((const char *)rec->data)[rec->data_size - 1] != '\0')
        return BAD("the last key does not end with a NUL", KEY);
    if (kind == SF_KIND_PROVENANCE) {
        const int64_t *v = rec->data;
        if (!sf_stage_name((uint64_t)v[0]))
            return BAD("unknown stage %lld", KEY, (long long)v[0]);
    }
#undef KEY
#undef BAD
    return SF_OK;
}

/* ---- One image ---- */

static uint64_t count_keys(const sf_record *rec)
{
    uint64_t n = 0;
    const char *p = rec->data;
    for (uint64_t i = 0; i < rec->data_size; i++)
        n += p[i] == '\0';
    return n;
}

/* The checks that need the whole image. */
static sf_status check_image(const sf_stream_image *img, sf_error *err)
{
    unsigned seen[N_RULES] = { 0 };
    const sf_record *keys = NULL;
    uint64_t rows = 0;
    int have_rows = 0;
#define BAD(...) sf_error_set(err, SF_ERR_INVALID_DATA, SF_KEY_FMT ": " __VA_ARGS__)
#define KEY SF_KEY_ARGS(img->key, img->key_len)
    for (size_t i = 0; i < img->count; i++) {
        const sf_record *rec = &img->recs[i];
        int kind = rec->kind & ~(int)SF_KIND_OPTIONAL;
        if (kind <= 0 || kind >= N_RULES)
            continue;
        if (rules[kind].single && seen[kind])
            return BAD("more than one %s record", KEY, sf_kind_name(kind));
        seen[kind]++;
        if (kind == SF_KIND_LOCAL_DESC) {
            rows = rec->shape[0];
            have_rows = 1;
        }
        if (kind == SF_KIND_HIT_KEYS) {
            if (keys)
                return BAD("hit_keys without hit_scores", KEY);
            keys = rec;
        } else if (kind == SF_KIND_HIT_SCORES) {
            if (!keys)
                return BAD("hit_scores without hit_keys", KEY);
            if (count_keys(keys) != rec->shape[0])
                return BAD("%llu hit keys for %llu scores", KEY,
                           (unsigned long long)count_keys(keys),
                           (unsigned long long)rec->shape[0]);
            keys = NULL;
        }
    }
    if (keys)
        return BAD("hit_keys without hit_scores", KEY);
    for (size_t i = 0; have_rows && i < img->count; i++) {
        const sf_record *rec = &img->recs[i];
        int kind = rec->kind & ~(int)SF_KIND_OPTIONAL;
        if ((kind == SF_KIND_LOCAL_STRENGTH || kind == SF_KIND_LOCAL_SCALE ||
             kind == SF_KIND_LOCAL_INDEX) && rec->shape[0] != rows)
            return BAD("%s has %llu entries for %llu local_desc rows", KEY, sf_kind_name(kind),
                       (unsigned long long)rec->shape[0], (unsigned long long)rows);
    }
#undef KEY
#undef BAD
    return SF_OK;
}

static int grow_slots(sf_stream_reader *r, size_t need)
{
    if (need <= r->slot_cap)
        return 0;
    size_t cap = r->slot_cap ? 2 * r->slot_cap : 16;
    while (cap < need)
        cap *= 2;
    sf_stream_slot *s = realloc(r->slots, cap * sizeof *s);
    if (!s)
        return -1;
    memset(s + r->slot_cap, 0, (cap - r->slot_cap) * sizeof *s);
    r->slots = s;
    sf_record *recs = realloc(r->image_recs, cap * sizeof *recs);
    if (!recs)
        return -1;
    r->image_recs = recs;
    r->slot_cap = cap;
    return 0;
}

sf_status sf_stream_read_image(sf_stream_reader *r, const sf_stream_image **out, sf_error *err)
{
    *out = NULL;
    size_t n = 0;
    sf_error problem;
    problem.status = SF_OK;
    for (;;) {
        const sf_record *rec;
        int closed;
        sf_status st = sf_stream_next(r, &rec, &closed, err);
        if (st != SF_OK)
            return st;
        if (!rec && !closed)
            return SF_OK; /* the end: sf_stream_next verified it */
        if (rec) {
            if (grow_slots(r, n + 1) != 0)
                return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", r->name);
            sf_record *dst = &r->image_recs[n];
            *dst = *rec;
            if (rec->data_size) {
                sf_stream_take_payload(r, &r->slots[n].buf, &r->slots[n].cap);
                dst->data = r->slots[n].buf;
            }
            if (n == 0) {
                memcpy(r->image_key, rec->key, rec->key_len + 1);
                r->image.key = r->image_key;
                r->image.key_len = rec->key_len;
            }
            dst->key = r->image_key;
            n++;
            if (problem.status == SF_OK)
                sf_record_check_contents(dst, &problem);
        }
        if (!closed)
            continue;
        uint64_t number = r->image_number++;
        if (n == 0)
            continue; /* nothing but kinds this reader does not know */
        sf_stream_image *img = &r->image;
        img->recs = r->image_recs;
        img->count = n;
        img->number = number;
        img->has_provenance = 0;
        memset(&img->provenance, 0, sizeof img->provenance);
        if (problem.status == SF_OK)
            check_image(img, &problem);
        if (problem.status != SF_OK)
            return sf_error_set(err, problem.status, "%s: %s", r->name, problem.message);
        const sf_record *p = sf_stream_image_find(img, SF_KIND_PROVENANCE);
        if (p) {
            const int64_t *v = p->data;
            uint64_t *f = &img->provenance.stage;
            for (int i = 0; i < SF_PROVENANCE_FIELDS; i++)
                f[i] = (uint64_t)v[i];
            img->has_provenance = 1;
        }
        *out = img;
        return SF_OK;
    }
}

const sf_record *sf_stream_image_find(const sf_stream_image *img, int kind)
{
    for (size_t i = 0; img && i < img->count; i++)
        if ((img->recs[i].kind & ~(int)SF_KIND_OPTIONAL) == kind)
            return &img->recs[i];
    return NULL;
}

int sf_kind_dtype(int kind)
{
    kind &= ~(int)SF_KIND_OPTIONAL;
    return kind > 0 && kind < N_RULES ? rules[kind].dtype : 0;
}

sf_status sf_stream_image_check(sf_stream_image *img, sf_error *err)
{
    img->has_provenance = 0;
    memset(&img->provenance, 0, sizeof img->provenance);
    for (size_t i = 0; i < img->count; i++) {
        sf_status st = sf_record_validate(&img->recs[i], err);
        if (st == SF_OK)
            st = sf_record_check_contents(&img->recs[i], err);
        if (st != SF_OK)
            return st;
    }
    sf_status st = check_image(img, err);
    if (st != SF_OK)
        return st;
    const sf_record *p = sf_stream_image_find(img, SF_KIND_PROVENANCE);
    if (p) {
        const int64_t *v = p->data;
        uint64_t *f = &img->provenance.stage;
        for (int i = 0; i < SF_PROVENANCE_FIELDS; i++)
            f[i] = (uint64_t)v[i];
        img->has_provenance = 1;
    }
    return SF_OK;
}
