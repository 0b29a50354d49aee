/* Provenance: which stage made an image's numbers and from what, so that a
 * stage refuses input made with another model or settings instead of
 * computing garbage from it. */
#include "config.h"

#include <string.h>

#include <xxhash.h>

#include "sf_internal.h"

static const char *const stage_names[] = {
    [SF_STAGE_DECODE] = "decode",
    [SF_STAGE_EXTRACT] = "extract",
    [SF_STAGE_LIT] = "lit",
};

const char *sf_stage_name(uint64_t stage)
{
    return stage >= SF_STAGE_DECODE && stage <= SF_STAGE_LIT ? stage_names[stage] : NULL;
}

/* Fields are hashed as little-endian u64 so that every host agrees. */
static uint64_t hash_u64s(const uint64_t *v, size_t n, uint64_t seed)
{
    unsigned char buf[8 * 64];
    for (size_t i = 0; i < n; i++)
        sf_put_u64(buf + 8 * i, v[i]);
    return XXH64(buf, 8 * n, seed);
}

static uint64_t f64_bits(double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    return v;
}

uint64_t sf_provenance_features(const sf_provenance *p)
{
    const uint64_t v[SF_PROVENANCE_FIELDS] = { p->stage, p->decode, p->extract_model,
                                               p->extract_settings, p->lit_model,
                                               p->lit_settings };
    return hash_u64s(v, SF_PROVENANCE_FIELDS, 0x5346454154u /* "SFEAT" */);
}

void sf_provenance_record(sf_record *rec, const sf_provenance *p, const char *key,
                          uint64_t fields[SF_PROVENANCE_FIELDS])
{
    const uint64_t n = SF_PROVENANCE_FIELDS;
    memcpy(fields, &p->stage, SF_PROVENANCE_FIELDS * sizeof fields[0]);
    sf_record_make(rec, key, SF_KIND_PROVENANCE, SF_DTYPE_I64, 1, &n, fields);
}

sf_provenance sf_provenance_after(const sf_provenance *in, sf_stage stage, uint64_t model,
                                  uint64_t settings)
{
    sf_provenance p = *in;
    p.stage = (uint64_t)stage;
    if (stage == SF_STAGE_EXTRACT) {
        p.extract_model = model;
        p.extract_settings = settings;
    } else if (stage == SF_STAGE_LIT) {
        p.lit_model = model;
        p.lit_settings = settings;
    }
    return p;
}

uint64_t sf_provenance_decode_settings(int size, const float mean[3], const float std[3],
                                       const double *scales, int n_scales)
{
    uint64_t v[8 + 64];
    size_t n = 0;
    v[n++] = (uint64_t)size;
    for (int c = 0; c < 3; c++) {
        v[n++] = f64_bits(mean[c]);
        v[n++] = f64_bits(std[c]);
    }
    v[n++] = (uint64_t)n_scales;
    for (int i = 0; i < n_scales && i < 64; i++)
        v[n++] = f64_bits(scales[i]);
    return hash_u64s(v, n, 0x534445434fu /* "SDECO" */);
}

uint64_t sf_provenance_compute_settings(int precision, int features_kept)
{
    const uint64_t v[2] = { (uint64_t)precision, (uint64_t)features_kept };
    return hash_u64s(v, 2, 0x53434f4d50u /* "SCOMP" */);
}

sf_status sf_provenance_check_stage(const sf_stream_image *img, sf_stage want, uint64_t model,
                                    sf_error *err)
{
    static const char *const made_by[] = {
        [SF_STAGE_DECODE] = "sf-decode",
        [SF_STAGE_EXTRACT] = "sf-extract",
        [SF_STAGE_LIT] = "sf-lit",
    };
    if (!img->has_provenance)
        return sf_error_set(err, SF_ERR_MISMATCH,
                            SF_KEY_FMT ": no provenance record, so nothing says which stage and "
                            "model made it", SF_KEY_ARGS(img->key, img->key_len));
    const sf_provenance *p = &img->provenance;
    if (p->stage != (uint64_t)want)
        return sf_error_set(err, SF_ERR_MISMATCH,
                            SF_KEY_FMT ": the output of %s, where the output of %s is needed%s",
                            SF_KEY_ARGS(img->key, img->key_len), made_by[p->stage], made_by[want],
                            p->stage < (uint64_t)want ? " (a stage is missing)" : "");
    if (want == SF_STAGE_EXTRACT && model && p->extract_model != model)
        return sf_error_set(err, SF_ERR_MISMATCH,
                            SF_KEY_FMT ": feature maps of model %016llx, this model is %016llx",
                            SF_KEY_ARGS(img->key, img->key_len),
                            (unsigned long long)p->extract_model, (unsigned long long)model);
    return SF_OK;
}

sf_status sf_provenance_check_features(const sf_stream_image *img, uint64_t features,
                                       const char *what, sf_error *err)
{
    sf_status st = sf_provenance_check_stage(img, SF_STAGE_LIT, 0, err);
    if (st != SF_OK)
        return st;
    uint64_t mine = sf_provenance_features(&img->provenance);
    if (mine != features)
        return sf_error_set(err, SF_ERR_MISMATCH,
                            SF_KEY_FMT ": features %016llx, %s holds features %016llx "
                            "(another model or settings)",
                            SF_KEY_ARGS(img->key, img->key_len), (unsigned long long)mine, what,
                            (unsigned long long)features);
    return SF_OK;
}

sf_provenance sf_provenance_external(const char *name)
{
    sf_provenance p;
    memset(&p, 0, sizeof p);
    p.stage = SF_STAGE_LIT;
    p.lit_model = XXH64(name, strlen(name), 0x5345585445u /* "SEXTE" */);
    return p;
}
