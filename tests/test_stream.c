/* The feature stream: round trips, validation, corruption, truncation,
 * grouping, limits and .npy export.
 *
 * `test_stream --write-sample NAME FILE` writes one of the sample streams
 * that tests/stream_cli.sh feeds to sf-cat (basic, optional, big). */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The header-only build: the tests reseal hand-edited records without
 * depending on how libsf links libxxhash. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "sf.h"
#include "sf_internal.h"
#include "testutil.h"

/* ---- Helpers ---- */

static sf_record mkrec(const char *key, unsigned kind, int dtype, unsigned ndim,
                       const uint64_t *shape, const void *data, unsigned flags)
{
    sf_record r;
    memset(&r, 0, sizeof r);
    r.kind = (uint16_t)kind;
    r.flags = (uint16_t)flags;
    r.dtype = (uint8_t)dtype;
    r.ndim = (uint8_t)ndim;
    r.scale = 1.0;
    for (unsigned i = 0; i < ndim && i < SF_STREAM_MAX_DIMS; i++)
        r.shape[i] = shape[i];
    r.key = key;
    r.key_len = strlen(key);
    r.data = data;
    r.data_size = sf_shape_count(shape, ndim) * sf_dtype_size(dtype);
    return r;
}

/* A growing in-memory stream. */
typedef struct mem {
    char *buf;
    size_t len;
    FILE *fp;
} mem;

static void mem_open(mem *m)
{
    m->buf = NULL;
    m->len = 0;
    m->fp = open_memstream(&m->buf, &m->len);
    if (!m->fp) {
        perror("open_memstream");
        exit(99);
    }
}

static void mem_close(mem *m)
{
    if (fclose(m->fp) != 0) {
        perror("fclose");
        exit(99);
    }
    m->fp = NULL;
}

static sf_status put(mem *m, const sf_record *r)
{
    sf_error err;
    sf_status st = sf_stream_write_record(m->fp, r, &err);
    CHECK(st == SF_OK, "writing '%s': %s", r->key, err.message);
    return st;
}

/* Records read back, deep-copied. */
typedef struct got {
    sf_record rec;
    char *key;
    unsigned char *data;
    int aligned; /* data was suitably aligned for any dtype */
} got;

typedef struct result {
    sf_status status;
    sf_error err;
    got *recs;
    size_t n;
    uint64_t images, offset;
} result;

static void result_free(result *res)
{
    for (size_t i = 0; i < res->n; i++) {
        free(res->recs[i].key);
        free(res->recs[i].data);
    }
    free(res->recs);
    memset(res, 0, sizeof *res);
}

/* Read a whole stream from memory. */
static result read_all(const void *buf, size_t len, uint64_t max_payload)
{
    static char empty[1];
    result res;
    memset(&res, 0, sizeof res);
    sf_error_clear(&res.err);
    FILE *fp = fmemopen(len ? (void *)buf : empty, len, "rb");
    if (!fp) {
        perror("fmemopen");
        exit(99);
    }
    sf_stream_reader *r;
    if (sf_stream_reader_create(&r, fp, "mem.sfs", &res.err) != SF_OK) {
        fprintf(stderr, "%s\n", res.err.message);
        exit(99);
    }
    if (max_payload)
        sf_stream_reader_set_max_payload(r, max_payload);
    /* Record-level tests write no end record; test_ends checks ends. */
    sf_stream_reader_allow_partial(r, 1);
    for (;;) {
        const sf_record *rec;
        res.status = sf_stream_read_record(r, &rec, &res.err);
        if (res.status != SF_OK || !rec)
            break;
        res.recs = realloc(res.recs, (res.n + 1) * sizeof *res.recs);
        got *g = &res.recs[res.n++];
        g->rec = *rec;
        g->key = malloc(rec->key_len + 1);
        memcpy(g->key, rec->key, rec->key_len + 1);
        g->data = malloc(rec->data_size + 1);
        memcpy(g->data, rec->data, (size_t)rec->data_size);
        g->aligned = ((uintptr_t)rec->data % 8) == 0 && rec->key[rec->key_len] == '\0';
    }
    if (res.status != SF_OK) {
        /* Errors are sticky: the next call repeats the first one. */
        const sf_record *rec = (const sf_record *)&res; /* must be reset to NULL */
        sf_error again;
        sf_status st = sf_stream_read_record(r, &rec, &again);
        CHECK(st == res.status && rec == NULL && strcmp(again.message, res.err.message) == 0,
              "second read after '%s' gave %d '%s'", res.err.message, st, again.message);
    }
    res.images = sf_stream_reader_images(r);
    res.offset = sf_stream_reader_offset(r);
    CHECK(sf_stream_reader_records(r) == res.n, "records() %llu, read %zu",
          (unsigned long long)sf_stream_reader_records(r), res.n);
    sf_stream_reader_free(r);
    fclose(fp);
    return res;
}

static int same_record(const sf_record *a, const got *g)
{
    const sf_record *b = &g->rec;
    if (a->kind != b->kind || a->flags != b->flags || a->dtype != b->dtype
        || a->ndim != b->ndim || a->index != b->index || memcmp(&a->scale, &b->scale, 8) != 0
        || a->key_len != b->key_len || memcmp(a->key, g->key, a->key_len) != 0
        || a->data_size != b->data_size
        || (a->data_size && memcmp(a->data, g->data, (size_t)a->data_size) != 0))
        return 0;
    for (unsigned i = 0; i < SF_STREAM_MAX_DIMS; i++)
        if (b->shape[i] != (i < a->ndim ? a->shape[i] : 0))
            return 0;
    return 1;
}

/* Recompute both checksums of the single record at buf, after a test has
 * edited its header on purpose. */
static void reseal(unsigned char *buf, size_t len)
{
    unsigned ndim = buf[15];
    size_t hlen = 40 + 8 * ndim + sf_get_u32(buf + 16);
    sf_put_u32(buf + hlen, XXH32(buf, hlen, 0));
    sf_put_u64(buf + len - 8, XXH64(buf, len - 8, 0));
}

static void fill(void *data, size_t n, unsigned seed)
{
    unsigned char *p = data;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (unsigned char)(x >> 24);
    }
}

/* ---- Names ---- */

static void test_names(void)
{
    static const char *const dnames[] = { NULL, "u8", "i16", "i32", "i64", "f16", "f32", "f64" };
    static const size_t dsizes[] = { 0, 1, 2, 4, 8, 2, 4, 8 };
    for (int d = 1; d <= SF_DTYPE_COUNT; d++) {
        CHECK(sf_dtype_name(d) && strcmp(sf_dtype_name(d), dnames[d]) == 0, "dtype %d", d);
        CHECK(sf_dtype_size(d) == dsizes[d], "dtype %d size %zu", d, sf_dtype_size(d));
        CHECK(sf_dtype_from_name(dnames[d]) == d, "from name %s", dnames[d]);
    }
    CHECK(sf_dtype_name(0) == NULL && sf_dtype_name(8) == NULL && sf_dtype_size(8) == 0, "bad dtype");
    CHECK(sf_dtype_from_name("f128") == 0 && sf_dtype_from_name(NULL) == 0, "bad dtype name");

    static const char *const knames[] = { NULL, "image", "feature_map", "superfeatures",
        "attention", "strength", "local_desc", "local_strength", "local_scale",
        "local_index", "global", "pixels", "source", "reduced", "hit_keys", "hit_scores",
        "match_pairs", "match_similarity", "provenance", "end" };
    for (int k = 1; k <= 19; k++) {
        CHECK(sf_kind_name(k) && strcmp(sf_kind_name(k), knames[k]) == 0, "kind %d", k);
        CHECK(sf_kind_from_name(knames[k]) == k, "kind name %s", knames[k]);
    }
    CHECK(sf_kind_name(SF_KIND_GLOBAL | SF_KIND_OPTIONAL)
          && strcmp(sf_kind_name(SF_KIND_GLOBAL | SF_KIND_OPTIONAL), "global") == 0,
          "optional bit ignored by sf_kind_name");
    CHECK(sf_kind_name(0) == NULL && sf_kind_name(20) == NULL && sf_kind_name(0x8123) == NULL,
          "unknown kinds");
    CHECK(sf_kind_from_name("Image") == 0 && sf_kind_from_name("") == 0, "bad kind names");

    uint64_t s[3] = { 3, 4, 5 };
    CHECK(sf_shape_count(s, 3) == 60 && sf_shape_count(s, 0) == 1, "shape count");
    uint64_t big[3] = { UINT64_C(1) << 32, UINT64_C(1) << 32, 0 };
    CHECK(sf_shape_count(big, 2) == UINT64_MAX, "overflow");
    CHECK(sf_shape_count(big, 3) == UINT64_MAX, "overflow before a zero dim");
    uint64_t z[3] = { 0, UINT64_C(1) << 40, UINT64_C(1) << 40 };
    CHECK(sf_shape_count(z, 3) == 0, "zero dim first");
}

/* ---- Round trips ---- */

static void test_round_trip(void)
{
    static const unsigned kinds[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0x8123,
                                      SF_KIND_GLOBAL | SF_KIND_OPTIONAL };
    enum { N_KINDS = sizeof kinds / sizeof kinds[0] };
    enum { MAX_RECS = N_KINDS * SF_DTYPE_COUNT * (SF_STREAM_MAX_DIMS + 1) };
    sf_record *recs = calloc(MAX_RECS, sizeof *recs);
    char (*keys)[32] = calloc(MAX_RECS, 32);
    void **datas = calloc(MAX_RECS, sizeof *datas);
    size_t n = 0, expected_images = 0;
    mem m;
    mem_open(&m);
    /* One image per kind and dtype; its records run through every ndim, the
     * last one flagged.  The optional unknown kind 0x8123 carries the LAST
     * flag of its images, so the reader must count them while skipping. */
    for (size_t k = 0; k < N_KINDS; k++)
        for (int d = 1; d <= SF_DTYPE_COUNT; d++) {
            for (unsigned nd = 0; nd <= SF_STREAM_MAX_DIMS; nd++) {
                uint64_t shape[SF_STREAM_MAX_DIMS];
                for (unsigned i = 0; i < nd; i++)
                    shape[i] = 1 + (i + nd + (unsigned)d) % 3;
                if (nd == 2 && d == SF_DTYPE_I32)
                    shape[1] = 0; /* an empty payload */
                snprintf(keys[n], 32, "img-%04x-%s", kinds[k], sf_dtype_name(d));
                size_t bytes = (size_t)(sf_shape_count(shape, nd) * sf_dtype_size(d));
                datas[n] = malloc(bytes + 1);
                fill(datas[n], bytes, (unsigned)n);
                recs[n] = mkrec(keys[n], kinds[k], d, nd, shape, datas[n],
                                nd == SF_STREAM_MAX_DIMS ? SF_RECORD_LAST : 0);
                recs[n].index = nd;
                recs[n].scale = 1.0 / (nd + 1);
                put(&m, &recs[n]);
                n++;
            }
            expected_images++;
        }
    mem_close(&m);

    result res = read_all(m.buf, m.len, 0);
    CHECK(res.status == SF_OK, "round trip: %s", res.err.message);
    size_t j = 0, mismatches = 0, misaligned = 0;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].kind == 0x8123)
            continue; /* skipped by the reader */
        if (j < res.n && !same_record(&recs[i], &res.recs[j]))
            mismatches++;
        if (j < res.n && !res.recs[j].aligned)
            misaligned++;
        j++;
    }
    CHECK(res.n == j, "read %zu records, expected %zu", res.n, j);
    CHECK(mismatches == 0, "%zu records differ after the round trip", mismatches);
    CHECK(misaligned == 0, "%zu records with misaligned data or unterminated key", misaligned);
    CHECK(res.images == expected_images, "images %llu, expected %zu",
          (unsigned long long)res.images, expected_images);
    CHECK(res.offset == m.len, "offset %llu, stream %zu", (unsigned long long)res.offset, m.len);
    result_free(&res);

    /* Rewriting what was read gives back the same bytes: the encoding is
     * canonical (checked without the skipped kind). */
    mem a, b;
    mem_open(&a);
    for (size_t i = 0; i < n; i++)
        if (recs[i].kind != 0x8123)
            put(&a, &recs[i]);
    mem_close(&a);
    res = read_all(a.buf, a.len, 0);
    mem_open(&b);
    for (size_t i = 0; i < res.n; i++) {
        res.recs[i].rec.key = res.recs[i].key;
        res.recs[i].rec.data = res.recs[i].data;
        put(&b, &res.recs[i].rec);
    }
    mem_close(&b);
    CHECK(a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0, "rewritten stream differs");
    result_free(&res);
    free(a.buf);
    free(b.buf);

    for (size_t i = 0; i < n; i++)
        free(datas[i]);
    free(datas);
    free(keys);
    free(recs);
    free(m.buf);
}

/* Read every image of buf with sf_stream_read_image, strictly (ends
 * required); returns the status of the first failure, counting images and
 * invalid ones. */
static sf_status read_images(const void *buf, size_t len, size_t *images, size_t *invalid,
                             sf_error *err)
{
    static char empty[1];
    FILE *fp = fmemopen(len ? (void *)buf : empty, len, "rb");
    sf_stream_reader *r;
    if (!fp || sf_stream_reader_create(&r, fp, "mem.sfs", err) != SF_OK)
        exit(99);
    sf_status st, first = SF_OK;
    *images = *invalid = 0;
    for (;;) {
        const sf_stream_image *img;
        st = sf_stream_read_image(r, &img, err);
        if (st == SF_ERR_INVALID_DATA) {
            (*invalid)++;
            first = first ? first : st;
            continue;
        }
        if (st != SF_OK || !img)
            break;
        (*images)++;
    }
    sf_stream_reader_free(r);
    fclose(fp);
    return st != SF_OK ? st : first;
}

/* End records: a whole stream ends with one; cuts at image boundaries,
 * lost ends and wrong counts are errors; concatenation stays a stream. */
static void test_ends(void)
{
    float v[2] = { 1, 2 };
    uint64_t two = 2;
    sf_error err;
    mem m;
    mem_open(&m);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        sf_record r = mkrec(key, SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &two, v, SF_RECORD_LAST);
        put(&m, &r);
    }
    size_t body = (size_t)ftell(m.fp);
    CHECK(sf_stream_write_end(m.fp, "writer", 3, &err) == SF_OK, "write end");
    mem_close(&m);
    size_t images, invalid;
    CHECK(read_images(m.buf, m.len, &images, &invalid, &err) == SF_OK && images == 3,
          "whole stream: %s", err.message);
    CHECK(read_images(m.buf, body, &images, &invalid, &err) == SF_ERR_TRUNCATED &&
              images == 3 && strstr(err.message, "stops after 3 images without its end"),
          "cut at an image boundary: %s", err.message);
    CHECK(read_images(m.buf, 0, &images, &invalid, &err) == SF_ERR_TRUNCATED &&
              strstr(err.message, "empty input"), "empty input: %s", err.message);
    /* a + a is whole; a without its end + a is not (the second end counts 3). */
    char *two_streams = malloc(2 * m.len);
    memcpy(two_streams, m.buf, m.len);
    memcpy(two_streams + m.len, m.buf, m.len);
    CHECK(read_images(two_streams, 2 * m.len, &images, &invalid, &err) == SF_OK && images == 6,
          "concatenation: %s", err.message);
    memcpy(two_streams + body, m.buf, m.len);
    CHECK(read_images(two_streams, body + m.len, &images, &invalid, &err) == SF_ERR_FORMAT &&
              strstr(err.message, "counts 3 images, the stream has 6"),
          "a lost end inside a concatenation: %s", err.message);
    /* An end record inside an image. */
    free(m.buf);
    mem_open(&m);
    sf_record open = mkrec("open", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &two, v, 0);
    put(&m, &open);
    CHECK(sf_stream_write_end(m.fp, "writer", 0, &err) == SF_OK, "write end");
    mem_close(&m);
    CHECK(read_images(m.buf, m.len, &images, &invalid, &err) == SF_ERR_FORMAT &&
              strstr(err.message, "end record inside image 'open'"),
          "end inside an image: %s", err.message);
    free(two_streams);
    free(m.buf);
}

/* sf_stream_read_image: images closed by a skipped record, the contents
 * checks, and the reader going on after an invalid image. */
static void test_images(void)
{
    float g[2] = { 1, 2 }, bad[2] = { 1, NAN }, d4[4] = { 1, 2, 3, 4 };
    uint64_t two = 2, d22[2] = { 2, 2 }, three = 3;
    sf_error err;
    mem m;
    mem_open(&m);
    /* "a" is closed by a record of a kind this reader does not know. */
    sf_record r = mkrec("a", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &two, g, 0);
    put(&m, &r);
    r = mkrec("a", 0x8123, SF_DTYPE_F32, 1, &two, g, SF_RECORD_LAST);
    put(&m, &r);
    r = mkrec("nan", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &two, bad, SF_RECORD_LAST);
    put(&m, &r);
    r = mkrec("rows", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, d22, d4, 0);
    put(&m, &r);
    r = mkrec("rows", SF_KIND_LOCAL_SCALE, SF_DTYPE_F32, 1, &three, d4, SF_RECORD_LAST);
    put(&m, &r);
    r = mkrec("f64", SF_KIND_GLOBAL, SF_DTYPE_F64, 1, &two, d4, SF_RECORD_LAST);
    put(&m, &r);
    r = mkrec("b", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &two, g, SF_RECORD_LAST);
    put(&m, &r);
    CHECK(sf_stream_write_end(m.fp, "w", 5, &err) == SF_OK, "end");
    mem_close(&m);
    FILE *fp = fmemopen(m.buf, m.len, "rb");
    sf_stream_reader *rd;
    CHECK(fp && sf_stream_reader_create(&rd, fp, "mem.sfs", &err) == SF_OK, "reader");
    const sf_stream_image *img;
    CHECK(sf_stream_read_image(rd, &img, &err) == SF_OK && img && img->count == 1 &&
              !strcmp(img->key, "a") && img->number == 0,
          "image closed by a skipped record");
    CHECK(sf_stream_read_image(rd, &img, &err) == SF_ERR_INVALID_DATA && !img &&
              strstr(err.message, "'nan': global: 1 NaN or infinite values"),
          "NaN: %s", err.message);
    CHECK(sf_stream_read_image(rd, &img, &err) == SF_ERR_INVALID_DATA &&
              strstr(err.message, "local_scale has 3 entries for 2 local_desc rows"),
          "per-feature lengths: %s", err.message);
    CHECK(sf_stream_read_image(rd, &img, &err) == SF_ERR_INVALID_DATA &&
              strstr(err.message, "global: f64, not f32"), "dtype: %s", err.message);
    CHECK(sf_stream_read_image(rd, &img, &err) == SF_OK && img && !strcmp(img->key, "b") &&
              sf_stream_image_find(img, SF_KIND_GLOBAL) && !img->has_provenance,
          "the reader goes on after invalid images");
    CHECK(sf_stream_read_image(rd, &img, &err) == SF_OK && !img, "clean end: %s", err.message);
    sf_stream_reader_free(rd);
    fclose(fp);
    free(m.buf);

    /* Provenance: parsed, and what each stage accepts. */
    sf_provenance p = { SF_STAGE_EXTRACT, 11, 22, 33, 0, 0 };
    uint64_t fields[SF_PROVENANCE_FIELDS];
    mem_open(&m);
    sf_provenance_record(&r, &p, "p", fields);
    put(&m, &r);
    r = mkrec("p", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &two, g, SF_RECORD_LAST);
    put(&m, &r);
    CHECK(sf_stream_write_end(m.fp, "w", 1, &err) == SF_OK, "end");
    mem_close(&m);
    fp = fmemopen(m.buf, m.len, "rb");
    CHECK(fp && sf_stream_reader_create(&rd, fp, "mem.sfs", &err) == SF_OK, "reader");
    CHECK(sf_stream_read_image(rd, &img, &err) == SF_OK && img && img->has_provenance &&
              img->provenance.extract_model == 22 && img->provenance.stage == SF_STAGE_EXTRACT,
          "provenance parsed");
    CHECK(img && sf_provenance_check_stage(img, SF_STAGE_EXTRACT, 22, &err) == SF_OK,
          "the right model passes");
    CHECK(img && sf_provenance_check_stage(img, SF_STAGE_EXTRACT, 23, &err) == SF_ERR_MISMATCH &&
              strstr(err.message, "feature maps of model 0000000000000016, this model is "
                                  "0000000000000017"), "another model: %s", err.message);
    CHECK(img && sf_provenance_check_stage(img, SF_STAGE_LIT, 0, &err) == SF_ERR_MISMATCH &&
              strstr(err.message, "a stage is missing"), "a missing stage: %s", err.message);
    CHECK(img && sf_provenance_check_features(img, 5, "the index", &err) == SF_ERR_MISMATCH,
          "features of another stage");
    sf_stream_reader_free(rd);
    fclose(fp);
    free(m.buf);
    p.stage = SF_STAGE_LIT;
    p.lit_model = 22;
    sf_provenance q = p;
    CHECK(sf_provenance_features(&p) == sf_provenance_features(&q), "features fingerprint");
    q.lit_settings = 1;
    CHECK(sf_provenance_features(&p) != sf_provenance_features(&q), "settings change it");
    const float mean[3] = { 0.485f, 0.456f, 0.406f }, std[3] = { 0.229f, 0.224f, 0.225f };
    const double sc1[2] = { 1, 0.5 }, sc2[2] = { 1, 0.25 };
    CHECK(sf_provenance_decode_settings(1024, mean, std, sc1, 2) !=
              sf_provenance_decode_settings(1024, mean, std, sc2, 2) &&
              sf_provenance_decode_settings(1024, mean, std, sc1, 2) !=
              sf_provenance_decode_settings(512, mean, std, sc1, 2),
          "decode settings fingerprints");
}

static void test_keys(void)
{
    static char longest[SF_STREAM_MAX_KEY + 2];
    memset(longest, 'k', SF_STREAM_MAX_KEY);
    const char *ok_keys[] = { "a", longest, "caf\xc3\xa9/\xe5\x86\x99\xe7\x9c\x9f.jpg",
                              "tab\there", "line\nbreak", "#SF-REC", "  spaces  " };
    float v = 1.5f;
    uint64_t one = 1;
    for (size_t i = 0; i < sizeof ok_keys / sizeof ok_keys[0]; i++) {
        mem m;
        mem_open(&m);
        sf_record r = mkrec(ok_keys[i], SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &one, &v, SF_RECORD_LAST);
        put(&m, &r);
        mem_close(&m);
        result res = read_all(m.buf, m.len, 0);
        CHECK(res.status == SF_OK && res.n == 1 && same_record(&r, &res.recs[0]),
              "key %zu: %s", i, res.err.message);
        result_free(&res);
        free(m.buf);
    }
}

/* ---- Validation ---- */

static void test_writer_rejects(void)
{
    float data[8] = { 0 };
    uint64_t shape[9] = { 2, 4, 1, 1, 1, 1, 1, 1, 1 };
    static char too_long[SF_STREAM_MAX_KEY + 2];
    memset(too_long, 'k', SF_STREAM_MAX_KEY + 1);
    struct {
        const char *what;
        sf_record r;
    } bad[16];
    int n = 0;
    sf_record good = mkrec("k", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, shape, data, 0);
#define BAD(desc, field, value) \
    do { bad[n].what = desc; bad[n].r = good; bad[n].r.field = value; n++; } while (0)
    BAD("dtype 0", dtype, 0);
    BAD("dtype 8", dtype, 8);
    BAD("ndim 9", ndim, 9);
    BAD("empty key", key_len, 0);
    BAD("NULL key", key, NULL);
    BAD("key too long", key, too_long);
    bad[n - 1].r.key_len = SF_STREAM_MAX_KEY + 1;
    BAD("NUL in key", key, "a\0b");
    bad[n - 1].r.key_len = 3;
    BAD("magic in key", key, "x#SF-REC\ny");
    bad[n - 1].r.key_len = 10;
    BAD("data_size too small", data_size, 31);
    BAD("data_size too large", data_size, 33);
    BAD("unknown flag", flags, 0x0002);
    BAD("unknown kind", kind, 0x7fff);
    BAD("kind 0", kind, 0);
    BAD("no data", data, NULL);
    BAD("overflowing shape", shape[0], UINT64_C(1) << 62);
#undef BAD
    for (int i = 0; i < n; i++) {
        mem m;
        mem_open(&m);
        sf_error err;
        sf_error_clear(&err);
        sf_status st = sf_stream_write_record(m.fp, &bad[i].r, &err);
        sf_status vst = sf_record_validate(&bad[i].r, NULL);
        mem_close(&m);
        CHECK(st == SF_ERR_INVALID_ARGUMENT && vst == st, "%s: status %d", bad[i].what, st);
        CHECK(m.len == 0, "%s: %zu bytes written", bad[i].what, m.len);
        CHECK(err.message[0] != '\0', "%s: no message", bad[i].what);
        free(m.buf);
    }
    CHECK(sf_record_validate(&good, NULL) == SF_OK, "the good record is valid");
    CHECK(sf_record_validate(NULL, NULL) == SF_ERR_INVALID_ARGUMENT, "NULL record");
}

static void test_write_errors(void)
{
    float v = 0;
    uint64_t one = 1;
    sf_record r = mkrec("k", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &one, &v, SF_RECORD_LAST);
    sf_error err;

    FILE *ro = fopen("/dev/null", "r");
    setvbuf(ro, NULL, _IONBF, 0);
    CHECK(sf_stream_write_record(ro, &r, &err) == SF_ERR_IO, "write to a read-only file");
    fclose(ro);

    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(99);
    }
    close(fds[0]);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    FILE *w = fdopen(fds[1], "w");
    setvbuf(w, NULL, _IONBF, 0);
    sf_status st = sf_stream_write_record(w, &r, &err);
    CHECK(st == SF_ERR_BROKEN_PIPE, "write to a closed pipe: %d %s", st, err.message);
    fclose(w);
    signal(SIGPIPE, old);
}

/* ---- Damage ---- */

/* One image of three records with different dtypes: a few hundred bytes. */
static void small_stream(mem *m, sf_record recs[3])
{
    static float img[6] = { -1, 0.5f, 2, 3, 4, 5.25f };
    static uint16_t half[4] = { 0x3c00, 0xc000, 0x0000, 0x7bff };
    static double glob[3] = { 0.25, -0.5, 1 };
    uint64_t s1[2] = { 2, 3 }, s2[2] = { 2, 2 }, s3[1] = { 3 };
    mem_open(m);
    recs[0] = mkrec("img", SF_KIND_IMAGE, SF_DTYPE_F32, 2, s1, img, 0);
    recs[1] = mkrec("img", SF_KIND_LOCAL_DESC, SF_DTYPE_F16, 2, s2, half, 0);
    recs[2] = mkrec("img", SF_KIND_GLOBAL, SF_DTYPE_F64, 1, s3, glob, SF_RECORD_LAST);
    recs[1].index = 7;
    recs[1].scale = 0.5;
    for (int i = 0; i < 3; i++)
        put(m, &recs[i]);
    mem_close(m);
}

static void test_corruption(void)
{
    mem m;
    sf_record recs[3];
    small_stream(&m, recs);
    CHECK(m.len > 150 && m.len < 400, "small stream is %zu bytes", m.len);

    result res = read_all(m.buf, m.len, 0);
    CHECK(res.status == SF_OK && res.n == 3, "the intact stream reads: %s", res.err.message);
    for (size_t i = 0; i < res.n && i < 3; i++)
        CHECK(same_record(&recs[i], &res.recs[i]), "record %zu", i);
    CHECK(res.images == 1, "one image");
    result_free(&res);

    static const unsigned char patterns[] = { 0x01, 0x80, 0xff, 0x10 };
    unsigned char *copy = malloc(m.len);
    size_t silent = 0, cases = 0;
    for (size_t pos = 0; pos < m.len; pos++)
        for (size_t p = 0; p < sizeof patterns; p++) {
            memcpy(copy, m.buf, m.len);
            copy[pos] ^= patterns[p];
            res = read_all(copy, m.len, 0);
            cases++;
            if (res.status == SF_OK) {
                silent++;
                fprintf(stderr, "byte %zu ^ 0x%02x went unnoticed\n", pos, patterns[p]);
            } else if (strncmp(res.err.message, "mem.sfs: record ", 16) != 0) {
                silent++;
                fprintf(stderr, "byte %zu: message '%s'\n", pos, res.err.message);
            } else if (pos >= 8 && pos < 63 && pos != 15 && (pos < 16 || pos > 19)
                       && !strstr(res.err.message, "header checksum mismatch")) {
                /* Header fields other than ndim and key_len must be caught
                 * by the header checksum, before they are trusted. */
                silent++;
                fprintf(stderr, "byte %zu: not a header checksum error: '%s'\n", pos,
                        res.err.message);
            }
            result_free(&res);
        }
    CHECK(silent == 0, "%zu of %zu corruptions unnoticed", silent, cases);

    /* Every proper prefix is truncated, and says so. */
    size_t wrong = 0;
    for (size_t len = 1; len < m.len; len++) {
        res = read_all(m.buf, len, 0);
        if (res.status != SF_ERR_TRUNCATED) {
            wrong++;
            fprintf(stderr, "prefix %zu: status %d '%s'\n", len, res.status, res.err.message);
        }
        result_free(&res);
    }
    CHECK(wrong == 0, "%zu of %zu truncations not reported as such", wrong, m.len - 1);

    res = read_all(m.buf, 0, 0);
    CHECK(res.status == SF_OK && res.n == 0 && res.images == 0, "empty stream is valid");
    result_free(&res);
    free(copy);
    free(m.buf);
}

static void test_messages(void)
{
    mem m;
    sf_record recs[3];
    small_stream(&m, recs);
    /* Offset of the third record: the first two are 40 + 16 + 3 + 4 + 24 + 8
     * and 40 + 16 + 3 + 4 + 8 + 8 bytes. */
    size_t third = 95 + 79;
    m.buf[m.len - 1] ^= 0x01; /* the stored record checksum */
    result res = read_all(m.buf, m.len, 0);
    char want[128];
    snprintf(want, sizeof want, "mem.sfs: record 2 at byte %zu: checksum mismatch (stored 0x",
             third);
    CHECK(res.status == SF_ERR_CHECKSUM && strncmp(res.err.message, want, strlen(want)) == 0,
          "message '%s', wanted '%s...'", res.err.message, want);
    CHECK(res.n == 2, "the two good records came first (%zu)", res.n);
    result_free(&res);
    m.buf[m.len - 1] ^= 0x01;

    res = read_all(m.buf, third, 0);
    CHECK(res.status == SF_ERR_TRUNCATED
          && strcmp(res.err.message, "mem.sfs: record 2 at byte 174: stream ends inside image 'img'") == 0,
          "message '%s'", res.err.message);
    result_free(&res);

    m.buf[0] = 'X';
    res = read_all(m.buf, m.len, 0);
    CHECK(res.status == SF_ERR_FORMAT
          && strcmp(res.err.message, "mem.sfs: record 0 at byte 0: bad magic: not a feature stream record") == 0,
          "message '%s'", res.err.message);
    result_free(&res);
    free(m.buf);
}

/* Edit a header field of a one-record stream and reseal it, so that only
 * the semantic checks can catch the change. */
static void test_resealed(void)
{
    float data[4] = { 1, 2, 3, 4 };
    uint64_t shape[2] = { 2, 2 };
    sf_record r = mkrec("key", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, shape, data, SF_RECORD_LAST);
    mem m;
    mem_open(&m);
    put(&m, &r);
    mem_close(&m);
    CHECK(m.len == 40 + 16 + 3 + 4 + 16 + 8, "record size %zu", m.len);

    struct {
        const char *what;
        size_t off, width;
        uint64_t value;
        sf_status want;
    } edits[] = {
        { "version 3", 8, 2, 3, SF_ERR_VERSION },
        { "version 1", 8, 2, 1, SF_ERR_VERSION },
        { "version 0", 8, 2, 0, SF_ERR_VERSION },
        { "unknown kind", 10, 2, 0x7fff, SF_ERR_UNSUPPORTED },
        { "kind 0", 10, 2, 0, SF_ERR_UNSUPPORTED },
        { "unknown flag", 12, 2, 3, SF_ERR_UNSUPPORTED },
        { "dtype 0", 14, 1, 0, SF_ERR_FORMAT },
        { "dtype 8", 14, 1, 8, SF_ERR_FORMAT },
        { "payload_len", 32, 8, 15, SF_ERR_FORMAT },
        { "dim", 40, 8, 3, SF_ERR_FORMAT },
        { "huge dims", 40, 8, UINT64_C(1) << 62, SF_ERR_FORMAT },
        { "NUL in key", 57, 1, 0, SF_ERR_FORMAT },
        { "optional kind", 10, 2, 0x8123, SF_OK },
        { "optional known kind", 10, 2, 0x8001, SF_OK },
    };
    unsigned char *copy = malloc(m.len);
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        memcpy(copy, m.buf, m.len);
        for (size_t b = 0; b < edits[i].width; b++)
            copy[edits[i].off + b] = (unsigned char)(edits[i].value >> (8 * b));
        reseal(copy, m.len);
        result res = read_all(copy, m.len, 0);
        CHECK(res.status == edits[i].want, "%s: status %d, wanted %d: %s", edits[i].what,
              res.status, edits[i].want, res.err.message);
        if (edits[i].value == 0x8123)
            CHECK(res.n == 0 && res.images == 1, "optional record skipped, image counted");
        if (edits[i].value == 0x8001)
            CHECK(res.n == 1 && res.recs[0].rec.kind == 0x8001, "optional known kind returned");
        result_free(&res);
    }
    free(copy);
    free(m.buf);

    /* A key the writer refuses is refused by the reader too, so that any
     * record read can be written back. */
    r = mkrec("a_SF-REC\nb", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, shape, data, SF_RECORD_LAST);
    mem_open(&m);
    put(&m, &r);
    mem_close(&m);
    m.buf[57] = '#';
    reseal((unsigned char *)m.buf, m.len);
    result res = read_all(m.buf, m.len, 0);
    CHECK(res.status == SF_ERR_FORMAT && strstr(res.err.message, "magic"),
          "magic in a key: %d %s", res.status, res.err.message);
    result_free(&res);
    free(m.buf);
}

static void test_grouping(void)
{
    float v = 0;
    uint64_t one = 1;
    sf_record a0 = mkrec("a", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &one, &v, 0);
    sf_record a1 = mkrec("a", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &one, &v, SF_RECORD_LAST);
    sf_record b1 = mkrec("b", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &one, &v, SF_RECORD_LAST);
    sf_record opt = mkrec("a", 0x8123, SF_DTYPE_F32, 1, &one, &v, SF_RECORD_LAST);

    mem m;
    mem_open(&m);
    put(&m, &a0);
    put(&m, &b1);
    mem_close(&m);
    result res = read_all(m.buf, m.len, 0);
    CHECK(res.status == SF_ERR_FORMAT
          && strstr(res.err.message, "record 1 at byte 65: image 'a' ends without its last record before 'b'"),
          "message '%s'", res.err.message);
    CHECK(res.n == 1, "first record returned");
    result_free(&res);
    free(m.buf);

    /* The same key twice in a row is two images when the first is closed;
     * a skipped optional record can close one. */
    mem_open(&m);
    put(&m, &a1);
    put(&m, &a0);
    put(&m, &opt);
    put(&m, &a1);
    put(&m, &b1);
    mem_close(&m);
    res = read_all(m.buf, m.len, 0);
    CHECK(res.status == SF_OK && res.n == 4 && res.images == 4, "status %d n %zu images %llu: %s",
          res.status, res.n, (unsigned long long)res.images, res.err.message);
    result_free(&res);
    free(m.buf);

    /* Concatenated streams read as one. */
    mem s1, s2;
    sf_record recs[3];
    small_stream(&s1, recs);
    mem_open(&s2);
    put(&s2, &b1);
    mem_close(&s2);
    char *both = malloc(s1.len + s2.len);
    memcpy(both, s1.buf, s1.len);
    memcpy(both + s1.len, s2.buf, s2.len);
    res = read_all(both, s1.len + s2.len, 0);
    CHECK(res.status == SF_OK && res.n == 4 && res.images == 2, "concatenation");
    if (res.n == 4)
        CHECK(same_record(&recs[0], &res.recs[0]) && same_record(&b1, &res.recs[3]),
              "concatenated records");
    result_free(&res);
    /* ... but not inside an open image. */
    memcpy(both, s1.buf, s1.len - 87);
    memcpy(both + s1.len - 87, s2.buf, s2.len);
    res = read_all(both, s1.len - 87 + s2.len, 0);
    CHECK(res.status == SF_ERR_FORMAT, "stream cut inside an image then another: %d", res.status);
    result_free(&res);
    free(both);
    free(s1.buf);
    free(s2.buf);
}

static void test_limits(void)
{
    mem m;
    sf_record recs[3];
    small_stream(&m, recs);
    result res = read_all(m.buf, m.len, 24);
    CHECK(res.status == SF_OK && res.n == 3, "payload equal to the limit: %s", res.err.message);
    result_free(&res);
    res = read_all(m.buf, m.len, 23);
    CHECK(res.status == SF_ERR_TOO_LARGE && res.n == 0 && strstr(res.err.message, "exceeds"),
          "payload over the limit: %d %s", res.status, res.err.message);
    result_free(&res);
    free(m.buf);

    /* A sealed header claiming 4 TiB, then a few bytes: the reader must see
     * the truncation, not try to allocate the claim (that would fail with
     * SF_ERR_NOMEM, or abort under a sanitizer). */
    uint64_t shape[2] = { UINT64_C(1) << 20, UINT64_C(1) << 19 };
    double dummy = 0;
    sf_record r = mkrec("huge", SF_KIND_FEATURE_MAP, SF_DTYPE_F64, 2, shape, &dummy, SF_RECORD_LAST);
    unsigned char buf[40 + 16 + 4 + 4 + 1000];
    memcpy(buf, SF_STREAM_MAGIC, 8);
    sf_put_u16(buf + 8, SF_STREAM_VERSION);
    sf_put_u16(buf + 10, r.kind);
    sf_put_u16(buf + 12, r.flags);
    buf[14] = r.dtype;
    buf[15] = 2;
    sf_put_u32(buf + 16, 4);
    sf_put_u32(buf + 20, 0);
    sf_put_f64(buf + 24, 1.0);
    sf_put_u64(buf + 32, r.data_size);
    sf_put_u64(buf + 40, shape[0]);
    sf_put_u64(buf + 48, shape[1]);
    memcpy(buf + 56, "huge", 4);
    sf_put_u32(buf + 60, XXH32(buf, 60, 0));
    memset(buf + 64, 0x5a, 1000);
    CHECK(r.data_size == UINT64_C(1) << 42, "claim is 4 TiB");
    res = read_all(buf, sizeof buf, UINT64_C(1) << 43);
    CHECK(res.status == SF_ERR_TRUNCATED && strstr(res.err.message, "payload ends after 1000 of"),
          "huge claim: %d %s", res.status, res.err.message);
    result_free(&res);
    /* Under the default limit the same record is refused outright. */
    res = read_all(buf, sizeof buf, 0);
    CHECK(res.status == SF_ERR_TOO_LARGE, "huge claim, default limit: %d", res.status);
    result_free(&res);
}

/* ---- .npy ---- */

static void npy_case(const char *what, int dtype, unsigned ndim, const uint64_t *shape,
                     const char *dict)
{
    unsigned char data[64];
    fill(data, sizeof data, 3);
    sf_record r = mkrec("k", SF_KIND_GLOBAL, dtype, ndim, shape, data, 0);
    mem m;
    mem_open(&m);
    sf_error err;
    sf_status st = sf_npy_write(m.fp, &r, &err);
    mem_close(&m);
    CHECK(st == SF_OK, "%s: %s", what, err.message);
    size_t dlen = strlen(dict), hlen = (10 + dlen + 1 + 63) / 64 * 64;
    CHECK(m.len == hlen + r.data_size, "%s: file of %zu bytes, wanted %zu", what, m.len,
          (size_t)(hlen + r.data_size));
    if (m.len != hlen + r.data_size) {
        free(m.buf);
        return;
    }
    const unsigned char *p = (const unsigned char *)m.buf;
    CHECK(memcmp(p, "\x93NUMPY\x01\x00", 8) == 0, "%s: magic", what);
    CHECK(sf_get_u16(p + 8) == hlen - 10, "%s: header_len %u", what, sf_get_u16(p + 8));
    CHECK(memcmp(p + 10, dict, dlen) == 0, "%s: dict '%.*s'", what, (int)dlen, p + 10);
    int pad_ok = p[hlen - 1] == '\n';
    for (size_t i = 10 + dlen; i < hlen - 1; i++)
        pad_ok &= p[i] == ' ';
    CHECK(pad_ok, "%s: padding", what);
    CHECK(memcmp(p + hlen, data, (size_t)r.data_size) == 0, "%s: data", what);
    free(m.buf);
}

static void test_npy(void)
{
    uint64_t s32[2] = { 3, 2 }, s5[1] = { 5 }, s3d[3] = { 2, 1, 4 };
    npy_case("f32 3x2", SF_DTYPE_F32, 2, s32,
             "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }");
    npy_case("u8 5", SF_DTYPE_U8, 1, s5,
             "{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }");
    npy_case("f64 scalar", SF_DTYPE_F64, 0, NULL,
             "{'descr': '<f8', 'fortran_order': False, 'shape': (), }");
    npy_case("i16", SF_DTYPE_I16, 3, s3d,
             "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 1, 4), }");
    npy_case("i32", SF_DTYPE_I32, 1, s5, "{'descr': '<i4', 'fortran_order': False, 'shape': (5,), }");
    npy_case("i64", SF_DTYPE_I64, 1, s5, "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }");
    npy_case("f16", SF_DTYPE_F16, 1, s5, "{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }");

    /* The exact bytes of one header. */
    float d[6] = { 0 };
    sf_record r = mkrec("k", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, s32, d, 0);
    mem m;
    mem_open(&m);
    sf_npy_write(m.fp, &r, NULL);
    mem_close(&m);
    static const char want[] =
        "\x93NUMPY\x01\x00\x76\x00"
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"
        "                                                          \n";
    CHECK(m.len == 128 + 24 && sizeof want - 1 == 128 && memcmp(m.buf, want, 128) == 0,
          "npy header bytes");
    free(m.buf);

    uint64_t big[8] = { UINT64_C(1) << 60, 0, 7, 7, 7, 7, 7, 7 };
    r = mkrec("k", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 8, big, d, 0);
    mem_open(&m);
    sf_status st = sf_npy_write(m.fp, &r, NULL);
    mem_close(&m);
    CHECK(st == SF_OK && m.len % 64 == 0 && m.len <= 256, "8-d empty array header: %zu", m.len);
    free(m.buf);

    r.dtype = 0;
    mem_open(&m);
    st = sf_npy_write(m.fp, &r, NULL);
    mem_close(&m);
    CHECK(st == SF_ERR_INVALID_ARGUMENT && m.len == 0, "npy refuses an invalid record");
    free(m.buf);
}

/* ---- Samples for the shell tests ---- */

/* ---- Values, export names, filters ---- */

static void test_values(void)
{
    /* f16: 1, -2, the smallest subnormal, 65504, inf, NaN. */
    static const uint16_t h[6] = { 0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0x7e00 };
    uint64_t s6 = 6;
    sf_record r = mkrec("k", SF_KIND_GLOBAL, SF_DTYPE_F16, 1, &s6, h, 0);
    CHECK(sf_record_element(&r, 0) == 1 && sf_record_element(&r, 1) == -2 &&
              sf_record_element(&r, 2) == ldexp(1, -24) && sf_record_element(&r, 3) == 65504 &&
              isinf(sf_record_element(&r, 4)) && isnan(sf_record_element(&r, 5)),
          "f16 elements");
    sf_record_stats st;
    sf_record_summarize(&r, &st);
    CHECK(st.count == 6 && st.n_nan == 1 && st.min == -2 && isinf(st.max) && isnan(st.mean),
          "f16 stats: %llu %llu %g %g %g", (unsigned long long)st.count,
          (unsigned long long)st.n_nan, st.min, st.max, st.mean);

    static const int16_t i16[2] = { -300, 7 };
    static const int64_t i64[3] = { -5, 0, INT64_C(1) << 53 };
    static const uint8_t u8[2] = { 255, 1 };
    static const double f64[2] = { 0.25, -0.75 };
    uint64_t s2 = 2, s3 = 3;
    r = mkrec("k", SF_KIND_GLOBAL, SF_DTYPE_I16, 1, &s2, i16, 0);
    sf_record_summarize(&r, &st);
    CHECK(st.min == -300 && st.max == 7 && st.mean == -146.5 && st.n_nan == 0, "i16 stats");
    r = mkrec("k", SF_KIND_GLOBAL, SF_DTYPE_I64, 1, &s3, i64, 0);
    CHECK(sf_record_element(&r, 2) == 9007199254740992.0, "i64 element");
    r = mkrec("k", SF_KIND_GLOBAL, SF_DTYPE_U8, 1, &s2, u8, 0);
    sf_record_summarize(&r, &st);
    CHECK(st.min == 1 && st.max == 255 && st.mean == 128, "u8 stats");
    r = mkrec("k", SF_KIND_GLOBAL, SF_DTYPE_F64, 1, &s2, f64, 0);
    sf_record_summarize(&r, &st);
    CHECK(st.min == -0.75 && st.max == 0.25 && st.mean == -0.25, "f64 stats");

    /* Only NaN: no min or max; nothing at all: no mean either. */
    float nan2[2] = { NAN, NAN };
    r = mkrec("k", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &s2, nan2, 0);
    sf_record_summarize(&r, &st);
    CHECK(st.count == 2 && st.n_nan == 2 && isnan(st.min) && isnan(st.max) && isnan(st.mean),
          "all NaN");
    uint64_t s0 = 0;
    r = mkrec("k", SF_KIND_GLOBAL, SF_DTYPE_I32, 1, &s0, NULL, 0);
    sf_record_summarize(&r, &st);
    CHECK(st.count == 0 && st.n_nan == 0 && isnan(st.min) && isnan(st.mean), "empty");
}

static void test_npy_names(void)
{
    static char long_key[400];
    memset(long_key, 'a', sizeof long_key - 1);
    const struct { const char *key; unsigned kind; uint32_t index; const char *want; } c[] = {
        { "photo.jpg", SF_KIND_LOCAL_DESC, 0, "photo.jpg.local_desc.0.npy" },
        { ".hidden", SF_KIND_IMAGE, 4294967295u, "_hidden.image.4294967295.npy" },
        { "dir/b c+d-e_f", SF_KIND_GLOBAL, 1, "dir_b_c+d-e_f.global.1.npy" },
        { "caf\xc3\xa9", SF_KIND_SOURCE, 2, "caf__.source.2.npy" },
        { "opt", 0x8000 | SF_KIND_GLOBAL, 0, "opt.global.0.npy" },
        { "new", 0x8123, 0, "new.kind33059.0.npy" },
    };
    char name[SF_NPY_NAME_SIZE];
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        sf_record r = mkrec(c[i].key, c[i].kind, SF_DTYPE_F32, 0, NULL, NULL, 0);
        r.index = c[i].index;
        sf_npy_file_name(&r, name);
        CHECK(strcmp(name, c[i].want) == 0, "npy name of '%s': '%s'", c[i].key, name);
    }
    sf_record r = mkrec(long_key, SF_KIND_MATCH_SIMILARITY, SF_DTYPE_F32, 0, NULL, NULL, 0);
    r.index = 4294967295u;
    sf_npy_file_name(&r, name);
    CHECK(strlen(name) == 200 + strlen(".match_similarity.4294967295.npy") &&
              strspn(name, "a") == 200, "a long key is cut at 200 bytes: %zu", strlen(name));
}

/* The image of recs[0..n) as sf_stream_read_image gives it. */
static sf_stream_image image_of(const sf_record *recs, size_t n)
{
    sf_stream_image img;
    memset(&img, 0, sizeof img);
    img.key = recs[0].key;
    img.key_len = recs[0].key_len;
    img.recs = recs;
    img.count = n;
    return img;
}

static void test_filter(void)
{
    float v[2] = { 1, 2 };
    uint64_t s2 = 2;
    sf_provenance p = { SF_STAGE_LIT, 1, 2, 3, 4, 5 };
    uint64_t fields[SF_PROVENANCE_FIELDS];
    sf_record a[4], b[2];
    sf_provenance_record(&a[0], &p, "dir/a.jpg", fields);
    a[1] = mkrec("dir/a.jpg", SF_KIND_IMAGE, SF_DTYPE_F32, 1, &s2, v, 0);
    a[2] = mkrec("dir/a.jpg", SF_KIND_IMAGE, SF_DTYPE_F32, 1, &s2, v, 0);
    a[2].index = 1;
    a[3] = mkrec("dir/a.jpg", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &s2, v, SF_RECORD_LAST);
    b[0] = mkrec("b.png", SF_KIND_IMAGE, SF_DTYPE_F32, 1, &s2, v, 0);
    b[1] = mkrec("b.png", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &s2, v, SF_RECORD_LAST);
    sf_stream_image ia = image_of(a, 4), ib = image_of(b, 2);
    sf_error err;
    sf_record_filter *f;

    CHECK(sf_record_filter_create(&f, &err) == SF_OK, "create");
    CHECK(sf_record_filter_count(f, &ia) == 4 && sf_record_filter_count(f, &ib) == 2,
          "an empty filter keeps everything");
    /* --index: the provenance stays, whatever its index. */
    a[0].index = 9;
    sf_record_filter_set_index(f, 1);
    CHECK(sf_record_filter_count(f, &ia) == 2 && sf_record_filter_keeps_record(f, &a[0]) &&
              !sf_record_filter_keeps_record(f, &a[1]) && sf_record_filter_keeps_record(f, &a[2]),
          "index");
    CHECK(sf_record_filter_count(f, &ib) == 0, "an image without that index is left out");
    CHECK(sf_record_filter_add_kind(f, SF_KIND_GLOBAL, &err) == SF_OK, "kind");
    CHECK(sf_record_filter_count(f, &ia) == 0, "kind and index both apply");
    sf_record_filter_free(f);

    /* --kind: a kind not given drops the provenance too. */
    sf_record_filter_create(&f, &err);
    CHECK(sf_record_filter_add_kind(f, SF_KIND_GLOBAL, &err) == SF_OK &&
              sf_record_filter_add_kind(f, SF_KIND_IMAGE, &err) == SF_OK, "kinds");
    CHECK(sf_record_filter_count(f, &ia) == 3 && !sf_record_filter_keeps_record(f, &a[0]),
          "kinds: provenance left out");
    CHECK(sf_record_filter_add_kind(f, SF_KIND_PROVENANCE, &err) == SF_OK &&
              sf_record_filter_count(f, &ia) == 4, "kinds: provenance asked for");
    CHECK(sf_record_filter_add_kind(f, 0, &err) == SF_ERR_INVALID_ARGUMENT &&
              sf_record_filter_add_kind(f, 999, &err) == SF_ERR_INVALID_ARGUMENT &&
              sf_record_filter_add_kind(f, 0x8000 | SF_KIND_IMAGE, &err) ==
                  SF_ERR_INVALID_ARGUMENT, "unknown kinds refused");
    sf_record_filter_free(f);

    /* Keys and patterns: any of them selects an image. */
    sf_record_filter_create(&f, &err);
    CHECK(sf_record_filter_add_key(f, "", &err) == SF_ERR_INVALID_ARGUMENT, "empty key");
    CHECK(sf_record_filter_add_key(f, "b.png", &err) == SF_OK, "key");
    CHECK(sf_record_filter_count(f, &ia) == 0 && sf_record_filter_count(f, &ib) == 2, "by key");
    CHECK(sf_record_filter_add_glob(f, "*a.*", &err) == SF_OK, "glob");
    CHECK(sf_record_filter_count(f, &ia) == 4 && sf_record_filter_count(f, &ib) == 2,
          "by key or pattern ('*' matches '/')");
    sf_record_filter_free(f);
    sf_record_filter_create(&f, &err);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK(sf_record_filter_add_key(f, key, &err) == SF_OK, "key %d", i);
    }
    sf_record_filter_add_key(f, "dir/a.jpg", &err);
    sf_record_filter_add_key(f, "dir/a.jpg", &err);
    CHECK(sf_record_filter_count(f, &ia) == 4 && sf_record_filter_count(f, &ib) == 0,
          "many keys");
    sf_record_filter_free(f);
    sf_record_filter_free(NULL);
}

static int write_sample(const char *name, const char *path)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        return 99;
    }
    sf_error err;
    sf_status st = SF_OK;
#define PUT(r) do { if (st == SF_OK) st = sf_stream_write_record(fp, &(r), &err); } while (0)
    if (strcmp(name, "basic") == 0) {
        static const int64_t src1[2] = { 640, 480 }, src2[2] = { 10, 20 };
        static const int32_t idx[3] = { 0, 5, 7 };
        static const float strength[2] = { 1, -2 };
        static const float glob2[2] = { -2, 2 };
        float img0[12], img1[3] = { 1, 2, 3 }, desc[8], glob[4] = { 0.5f, 0.5f, 0.5f, 0.5f };
        uint8_t pix[12];
        for (int i = 0; i < 12; i++) {
            img0[i] = (float)i * 0.5f - 1;
            pix[i] = (uint8_t)i;
        }
        for (int i = 0; i < 8; i++)
            desc[i] = (float)i / 4;
        uint64_t s2[1] = { 2 }, s322[3] = { 3, 2, 2 }, s311[3] = { 3, 1, 1 }, s42[2] = { 4, 2 },
                 s4[1] = { 4 }, s3[1] = { 3 }, s223[3] = { 2, 2, 3 };
        sf_record r = mkrec("photo.jpg", SF_KIND_SOURCE, SF_DTYPE_I64, 1, s2, src1, 0);
        PUT(r);
        r = mkrec("photo.jpg", SF_KIND_IMAGE, SF_DTYPE_F32, 3, s322, img0, 0);
        PUT(r);
        r = mkrec("photo.jpg", SF_KIND_IMAGE, SF_DTYPE_F32, 3, s311, img1, 0);
        r.index = 1;
        r.scale = 0.5;
        PUT(r);
        r = mkrec("photo.jpg", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, s42, desc, 0);
        PUT(r);
        r = mkrec("photo.jpg", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, s4, glob, SF_RECORD_LAST);
        PUT(r);
        r = mkrec("dir/b c.png", SF_KIND_SOURCE, SF_DTYPE_I64, 1, s2, src2, 0);
        PUT(r);
        r = mkrec("dir/b c.png", SF_KIND_LOCAL_INDEX, SF_DTYPE_I32, 1, s3, idx, 0);
        PUT(r);
        r = mkrec("dir/b c.png", SF_KIND_STRENGTH, SF_DTYPE_F32, 1, s2, strength, 0);
        PUT(r);
        r = mkrec("dir/b c.png", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, s2, glob2, SF_RECORD_LAST);
        PUT(r);
        r = mkrec("x", SF_KIND_PIXELS, SF_DTYPE_U8, 3, s223, pix, SF_RECORD_LAST);
        PUT(r);
        if (st == SF_OK)
            st = sf_stream_write_end(fp, "test_stream", 3, &err);
    } else if (strcmp(name, "optional") == 0) {
        /* Image "a" ends with a record of a kind sf does not know. */
        static const float g[2] = { 1, 3 };
        uint64_t s2[1] = { 2 };
        sf_record r = mkrec("a", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, s2, g, 0);
        PUT(r);
        r = mkrec("a", 0x8123, SF_DTYPE_F32, 1, s2, g, SF_RECORD_LAST);
        PUT(r);
        r = mkrec("a", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, s2, g, SF_RECORD_LAST);
        PUT(r);
        uint64_t s12[2] = { 1, 2 };
        r = mkrec("b", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, s12, g, 0);
        PUT(r);
        r = mkrec("b", SF_KIND_GLOBAL, SF_DTYPE_F32, 1, s2, g, SF_RECORD_LAST);
        PUT(r);
        if (st == SF_OK)
            st = sf_stream_write_end(fp, "test_stream", 3, &err);
    } else if (strcmp(name, "big") == 0) {
        /* Enough to fill any pipe buffer. */
        size_t n = (size_t)1 << 18;
        float *data = calloc(n, sizeof *data);
        uint64_t s[3] = { 1, 512, n / 512 };
        for (int i = 0; i < 8; i++) {
            sf_record r = mkrec("big", SF_KIND_FEATURE_MAP, SF_DTYPE_F32, 3, s, data,
                                i == 7 ? SF_RECORD_LAST : 0);
            r.index = (uint32_t)i;
            PUT(r);
        }
        if (st == SF_OK)
            st = sf_stream_write_end(fp, "test_stream", 1, &err);
        free(data);
    } else {
        fprintf(stderr, "unknown sample '%s' (basic, optional, big)\n", name);
        fclose(fp);
        return 99;
    }
#undef PUT
    if (fclose(fp) != 0 || st != SF_OK) {
        fprintf(stderr, "%s: %s\n", path, st != SF_OK ? err.message : strerror(errno));
        return 99;
    }
    return 0;
}

/* --rewrite MODE IN OUT: copy a stream image by image (ends rewritten),
 * changing it for the command-line tests:
 *   optional  every image gets a last record of a kind no reader knows,
 *             so that a skipped record closes it;
 *   nan, inf  the first value of the first local_desc and global record of
 *             the first image becomes NaN or +infinity. */
static int rewrite(const char *mode, const char *in, const char *out)
{
    FILE *fi = fopen(in, "rb"), *fo = fopen(out, "wb");
    sf_stream_reader *r;
    sf_error err;
    if (!fi || !fo || sf_stream_reader_create(&r, fi, in, &err) != SF_OK) {
        perror(in);
        return 99;
    }
    int optional = strcmp(mode, "optional") == 0;
    float poison = strcmp(mode, "nan") == 0 ? NAN : INFINITY;
    const sf_stream_image *img;
    uint64_t n = 0;
    sf_status st;
    while ((st = sf_stream_read_image(r, &img, &err)) == SF_OK && img) {
        sf_record recs[256];
        void *copies[256] = { 0 };
        size_t count = img->count < 255 ? img->count : 255;
        for (size_t i = 0; i < count; i++) {
            recs[i] = img->recs[i];
            int kind = recs[i].kind;
            if (!optional && n == 0 && (kind == SF_KIND_LOCAL_DESC || kind == SF_KIND_GLOBAL)) {
                copies[i] = malloc((size_t)recs[i].data_size);
                memcpy(copies[i], recs[i].data, (size_t)recs[i].data_size);
                ((float *)copies[i])[0] = poison;
                recs[i].data = copies[i];
            }
        }
        float extra = 1;
        uint64_t one = 1;
        if (optional)
            recs[count++] = mkrec(img->key, 0x8123, SF_DTYPE_F32, 1, &one, &extra, 0);
        st = sf_stream_write_image(fo, recs, count, &err);
        for (size_t i = 0; i < count; i++)
            free(copies[i]);
        if (st != SF_OK)
            break;
        n++;
    }
    if (st == SF_OK)
        st = sf_stream_write_end(fo, "test_stream", n, &err);
    sf_stream_reader_free(r);
    fclose(fi);
    if (fclose(fo) != 0 || st != SF_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 99;
    }
    return 0;
}

/* --upgrade IN OUT: a version 1 stream (fuzz seeds) as version 2: each
 * record whose checksums held gets the new version and is resealed, damaged
 * ones keep their damage; a stream read whole gets its end record. */
static int upgrade(const char *in, const char *out)
{
    size_t len;
    unsigned char *buf = tu_read_file(NULL, in, &len);
    size_t off = 0;
    uint64_t images = 0;
    int whole = 1, open = 0;
    while (off + 40 <= len && memcmp(buf + off, SF_STREAM_MAGIC, 8) == 0) {
        unsigned char *h = buf + off;
        size_t hlen = 40 + 8 * (size_t)h[15] + sf_get_u32(h + 16);
        uint64_t plen = sf_get_u64(h + 32);
        if (h[15] > 8 || hlen + 4 > len - off)
            break;
        if (plen > len - off - hlen - 4 || hlen + 12 + plen > len - off) {
            /* Cut short on purpose: only the header can be brought up. */
            int sound = sf_get_u32(h + hlen) == XXH32(h, hlen, 0);
            sf_put_u16(h + 8, SF_STREAM_VERSION);
            if (sound)
                sf_put_u32(h + hlen, XXH32(h, hlen, 0));
            whole = 0;
            break;
        }
        size_t rlen = hlen + 12 + (size_t)plen;
        int sound = sf_get_u32(h + hlen) == XXH32(h, hlen, 0) &&
                    sf_get_u64(h + rlen - 8) == XXH64(h, rlen - 8, 0);
        sf_put_u16(h + 8, SF_STREAM_VERSION);
        if (sound)
            reseal(h, rlen);
        whole &= sound;
        open = !(sf_get_u16(h + 12) & SF_RECORD_LAST);
        images += !open;
        off += rlen;
    }
    FILE *fp = fopen(out, "wb");
    sf_error err;
    if (!fp || fwrite(buf, 1, len, fp) != len)
        return 99;
    if (whole && !open && off == len && sf_stream_write_end(fp, "test_stream", images, &err))
        return 99;
    free(buf);
    return fclose(fp) == 0 ? 0 : 99;
}

/* sf_stream_count_images: the images a reader meets, counted ahead from
 * the headers; what it refuses. */
static void test_count(void)
{
    float v[2] = { 1, 2 };
    uint64_t two = 2, images = 99, bytes = 0;
    sf_error err;
    FILE *fp = tmpfile();
    CHECK(fp != NULL, "tmpfile");
    if (!fp)
        return;
    for (int i = 0; i < 5; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        sf_record a = mkrec(key, SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &two, v, 0);
        sf_record b = mkrec(key, SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &two, v, SF_RECORD_LAST);
        /* An unknown optional kind closes image 3: it is an image all the same. */
        if (i == 3)
            b.kind = 0x8000u | 999;
        CHECK(sf_stream_write_record(fp, &a, &err) == SF_OK &&
                  sf_stream_write_record(fp, &b, &err) == SF_OK, "write: %s", err.message);
        if (i == 1)
            CHECK(sf_stream_write_end(fp, "w", 2, &err) == SF_OK, "end");
    }
    CHECK(sf_stream_write_end(fp, "w", 3, &err) == SF_OK, "end");
    fflush(fp);
    int fd = fileno(fp);
    long size = ftell(fp);
    CHECK(lseek(fd, 0, SEEK_SET) == 0, "rewind");
    CHECK(sf_stream_count_images(fd, 0, &images, &bytes, &err) == SF_OK && images == 5 &&
              bytes == (uint64_t)size, "5 images in %llu bytes, got %llu in %llu: %s",
          (unsigned long long)size, (unsigned long long)images, (unsigned long long)bytes,
          err.message);
    CHECK(lseek(fd, 0, SEEK_CUR) == 0, "the offset does not move");
    CHECK(sf_stream_count_images(fd, 12, &images, NULL, &err) == SF_OK && images == 5,
          "12 records, a limit of 12: %s", err.message);
    CHECK(sf_stream_count_images(fd, 5, &images, NULL, &err) == SF_ERR_TOO_LARGE,
          "a limit on records");
    /* From the current offset: after the first image's two records. */
    sf_stream_reader *r;
    const sf_record *rec;
    FILE *in = fdopen(dup(fd), "rb");
    sf_stream_reader_create(&r, in, "count", &err);
    sf_stream_read_record(r, &rec, &err);
    sf_stream_read_record(r, &rec, &err);
    uint64_t off = sf_stream_reader_offset(r);
    sf_stream_reader_free(r);
    fclose(in);
    CHECK(lseek(fd, (off_t)off, SEEK_SET) == (off_t)off, "seek");
    CHECK(sf_stream_count_images(fd, 0, &images, &bytes, &err) == SF_OK && images == 4 &&
              bytes == (uint64_t)size - off, "4 images from the second: %llu",
          (unsigned long long)images);
    /* A cut file, and a damaged header. */
    CHECK(ftruncate(fd, size - 3) == 0, "truncate");
    CHECK(lseek(fd, 0, SEEK_SET) == 0, "rewind");
    CHECK(sf_stream_count_images(fd, 0, &images, NULL, &err) == SF_ERR_TRUNCATED,
          "cut: %s", err.message);
    unsigned char c = 'X';
    CHECK(pwrite(fd, &c, 1, (off_t)off + 20) == 1, "damage");
    CHECK(sf_stream_count_images(fd, 0, &images, NULL, &err) == SF_ERR_CHECKSUM &&
              strstr(err.message, "header checksum"), "damaged header: %s", err.message);
    fclose(fp);
    /* Keys longer than the first read of a header. */
    fp = tmpfile();
    char *key = malloc(SF_STREAM_MAX_KEY + 1);
    memset(key, 'k', SF_STREAM_MAX_KEY);
    key[SF_STREAM_MAX_KEY] = '\0';
    for (int i = 0; i < 3; i++) {
        key[0] = (char)('a' + i);
        key[SF_STREAM_MAX_KEY - 1000 * i] = '\0';
        sf_record a = mkrec(key, SF_KIND_GLOBAL, SF_DTYPE_F32, 1, &two, v, SF_RECORD_LAST);
        CHECK(sf_stream_write_record(fp, &a, &err) == SF_OK, "write: %s", err.message);
    }
    CHECK(sf_stream_write_end(fp, "w", 3, &err) == SF_OK, "end");
    fflush(fp);
    CHECK(lseek(fileno(fp), 0, SEEK_SET) == 0, "rewind");
    CHECK(sf_stream_count_images(fileno(fp), 0, &images, NULL, &err) == SF_OK && images == 3,
          "long keys: %llu: %s", (unsigned long long)images, err.message);
    free(key);
    fclose(fp);
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    CHECK(sf_stream_count_images(p[0], 0, &images, NULL, &err) == SF_ERR_UNSUPPORTED,
          "a pipe cannot be counted ahead");
    close(p[0]);
    close(p[1]);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--write-sample") == 0)
        return write_sample(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "--upgrade") == 0)
        return upgrade(argv[2], argv[3]);
    if (argc == 5 && strcmp(argv[1], "--rewrite") == 0)
        return rewrite(argv[2], argv[3], argv[4]);
    if (argc != 1) {
        fprintf(stderr, "usage: test_stream [--write-sample basic|optional|big FILE]\n");
        return 99;
    }
    test_names();
    test_round_trip();
    test_keys();
    test_writer_rejects();
    test_write_errors();
    test_corruption();
    test_messages();
    test_resealed();
    test_grouping();
    test_limits();
    test_npy();
    test_values();
    test_npy_names();
    test_filter();
    test_ends();
    test_images();
    test_count();
    return tu_finish("test_stream");
}
