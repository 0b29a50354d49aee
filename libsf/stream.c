#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The streaming state is embedded rather than malloc'ed; its layout is part
 * of xxHash's stable ABI since 0.8, which configure requires. */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "sf_internal.h"
#include "stream_internal.h"

/* Payloads are copied between memory and disk as they are, and the format is
 * little-endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libsf stores payloads in host byte order and needs a little-endian host"
#endif

#define FIXED_SIZE SF_STREAM_FIXED_SIZE
#define MAX_HEADER SF_STREAM_MAX_HEADER
/* The reader grows its payload buffer at most this much ahead of the bytes
 * that actually arrived, so a lying payload_len costs no memory. */
#define READ_CHUNK ((size_t)1 << 20)

/* ---- Names ---- */

static const struct {
    const char *name;
    size_t size;
} dtypes[SF_DTYPE_COUNT + 1] = {
    [SF_DTYPE_U8] = { "u8", 1 },   [SF_DTYPE_I16] = { "i16", 2 },
    [SF_DTYPE_I32] = { "i32", 4 }, [SF_DTYPE_I64] = { "i64", 8 },
    [SF_DTYPE_F16] = { "f16", 2 }, [SF_DTYPE_F32] = { "f32", 4 },
    [SF_DTYPE_F64] = { "f64", 8 },
};

static const char *const kinds[] = {
    [SF_KIND_IMAGE] = "image",
    [SF_KIND_FEATURE_MAP] = "feature_map",
    [SF_KIND_SUPERFEATURES] = "superfeatures",
    [SF_KIND_ATTENTION] = "attention",
    [SF_KIND_STRENGTH] = "strength",
    [SF_KIND_LOCAL_DESC] = "local_desc",
    [SF_KIND_LOCAL_STRENGTH] = "local_strength",
    [SF_KIND_LOCAL_SCALE] = "local_scale",
    [SF_KIND_LOCAL_INDEX] = "local_index",
    [SF_KIND_GLOBAL] = "global",
    [SF_KIND_PIXELS] = "pixels",
    [SF_KIND_SOURCE] = "source",
    [SF_KIND_REDUCED] = "reduced",
    [SF_KIND_HIT_KEYS] = "hit_keys",
    [SF_KIND_HIT_SCORES] = "hit_scores",
    [SF_KIND_MATCH_PAIRS] = "match_pairs",
    [SF_KIND_MATCH_SIMILARITY] = "match_similarity",
    [SF_KIND_PROVENANCE] = "provenance",
    [SF_KIND_END] = "end",
};
#define N_KINDS (int)(sizeof kinds / sizeof kinds[0])

size_t sf_dtype_size(int dtype)
{
    return dtype > 0 && dtype <= SF_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

const char *sf_dtype_name(int dtype)
{
    return dtype > 0 && dtype <= SF_DTYPE_COUNT ? dtypes[dtype].name : NULL;
}

int sf_dtype_from_name(const char *name)
{
    for (int i = 1; name && i <= SF_DTYPE_COUNT; i++)
        if (strcmp(name, dtypes[i].name) == 0)
            return i;
    return 0;
}

const char *sf_kind_name(int kind)
{
    kind &= ~(int)SF_KIND_OPTIONAL;
    return kind > 0 && kind < N_KINDS ? kinds[kind] : NULL;
}

int sf_kind_from_name(const char *name)
{
    for (int i = 1; name && i < N_KINDS; i++)
        if (strcmp(name, kinds[i]) == 0)
            return i;
    return 0;
}

uint64_t sf_shape_count(const uint64_t *shape, unsigned ndim)
{
    uint64_t n = 1;
    for (unsigned i = 0; i < ndim; i++) {
        if (shape[i] != 0 && n > UINT64_MAX / shape[i])
            return UINT64_MAX;
        n *= shape[i];
    }
    return n;
}

void sf_record_make(sf_record *rec, const char *key, int kind, int dtype, unsigned ndim,
                    const uint64_t *shape, const void *data)
{
    memset(rec, 0, sizeof *rec);
    rec->kind = (uint16_t)kind;
    rec->dtype = (uint8_t)dtype;
    rec->ndim = (uint8_t)ndim;
    for (unsigned i = 0; i < ndim && i < SF_STREAM_MAX_DIMS; i++)
        rec->shape[i] = shape[i];
    rec->scale = 1.0;
    rec->key = key;
    rec->key_len = strlen(key);
    rec->data = data;
    rec->data_size = sf_shape_count(rec->shape, rec->ndim) * sf_dtype_size(dtype);
}

/* Payload bytes implied by a shape, or UINT64_MAX when that overflows.
 * (UINT64_MAX itself is never a valid size: it is odd and no dtype of size 1
 * reaches it without the count overflowing first.) */
static uint64_t payload_size(const uint64_t *shape, unsigned ndim, int dtype)
{
    uint64_t count = sf_shape_count(shape, ndim);
    uint64_t size = sf_dtype_size(dtype);
    if (count == UINT64_MAX || size == 0 || (count != 0 && count > UINT64_MAX / size))
        return UINT64_MAX;
    return count * size;
}

static int kind_is_readable(unsigned kind)
{
    return sf_kind_name((int)kind) != NULL || (kind & SF_KIND_OPTIONAL);
}

/* memmem without relying on _GNU_SOURCE. */
static int contains(const char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

sf_status sf_record_validate(const sf_record *rec, sf_error *err)
{
    if (!rec)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "no record");
    if (!rec->key || rec->key_len == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "record has an empty key");
    if (rec->key_len > SF_STREAM_MAX_KEY)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "key of %zu bytes is longer than %d", rec->key_len,
                            SF_STREAM_MAX_KEY);
    if (memchr(rec->key, '\0', rec->key_len))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "key contains a NUL byte");
    /* Tools that split streams at the magic (parallel --recstart) must not
     * find it inside a header. */
    if (contains(rec->key, rec->key_len, SF_STREAM_MAGIC, SF_STREAM_MAGIC_SIZE))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "key " SF_KEY_FMT " contains the record magic",
                            SF_KEY_ARGS(rec->key, rec->key_len));
    if (!kind_is_readable(rec->kind))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            SF_KEY_FMT ": unknown record kind %u without the optional bit",
                            SF_KEY_ARGS(rec->key, rec->key_len), (unsigned)rec->kind);
    if (rec->flags & ~SF_RECORD_KNOWN_FLAGS)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, SF_KEY_FMT ": unknown flags 0x%04x",
                            SF_KEY_ARGS(rec->key, rec->key_len), (unsigned)rec->flags);
    if (sf_dtype_size(rec->dtype) == 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, SF_KEY_FMT ": unknown dtype %u",
                            SF_KEY_ARGS(rec->key, rec->key_len), (unsigned)rec->dtype);
    if (rec->ndim > SF_STREAM_MAX_DIMS)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, SF_KEY_FMT ": %u dimensions, at most %d",
                            SF_KEY_ARGS(rec->key, rec->key_len), (unsigned)rec->ndim,
                            SF_STREAM_MAX_DIMS);
    uint64_t want = payload_size(rec->shape, rec->ndim, rec->dtype);
    if (want == UINT64_MAX)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, SF_KEY_FMT ": shape overflows 64 bits",
                            SF_KEY_ARGS(rec->key, rec->key_len));
    if (rec->data_size != want)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            SF_KEY_FMT ": data_size is %llu bytes, the shape needs %llu",
                            SF_KEY_ARGS(rec->key, rec->key_len), (unsigned long long)rec->data_size,
                            (unsigned long long)want);
    if (want > 0 && !rec->data)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, SF_KEY_FMT ": no data",
                            SF_KEY_ARGS(rec->key, rec->key_len));
    if (want > SIZE_MAX)
        return sf_error_set(err, SF_ERR_TOO_LARGE, SF_KEY_FMT ": payload does not fit in memory",
                            SF_KEY_ARGS(rec->key, rec->key_len));
    return SF_OK;
}

/* ---- Writing ---- */

/* Everything up to and including the header checksum; returns its size. */
static size_t encode_header(unsigned char *h, const sf_record *rec)
{
    memcpy(h, SF_STREAM_MAGIC, SF_STREAM_MAGIC_SIZE);
    sf_put_u16(h + 8, SF_STREAM_VERSION);
    sf_put_u16(h + 10, rec->kind);
    sf_put_u16(h + 12, rec->flags);
    h[14] = rec->dtype;
    h[15] = rec->ndim;
    sf_put_u32(h + 16, (uint32_t)rec->key_len);
    sf_put_u32(h + 20, rec->index);
    sf_put_f64(h + 24, rec->scale);
    sf_put_u64(h + 32, rec->data_size);
    size_t n = FIXED_SIZE;
    for (unsigned i = 0; i < rec->ndim; i++, n += 8)
        sf_put_u64(h + n, rec->shape[i]);
    memcpy(h + n, rec->key, rec->key_len);
    n += rec->key_len;
    sf_put_u32(h + n, XXH32(h, n, 0));
    return n + 4;
}

static sf_status write_failed(sf_error *err, const sf_record *rec)
{
    int e = errno ? errno : EIO;
    if (e == EPIPE)
        return sf_error_set(err, SF_ERR_BROKEN_PIPE, "write failed: %s", strerror(e));
    return sf_error_set(err, SF_ERR_IO, "write failed for " SF_KEY_FMT ": %s",
                        SF_KEY_ARGS(rec->key, rec->key_len), strerror(e));
}

sf_status sf_stream_write_record(FILE *fp, const sf_record *rec, sf_error *err)
{
    sf_status st = sf_record_validate(rec, err);
    if (st != SF_OK)
        return st;
    unsigned char header[MAX_HEADER];
    size_t hlen = encode_header(header, rec);
    XXH64_state_t state;
    XXH64_reset(&state, 0);
    XXH64_update(&state, header, hlen);
    if (rec->data_size)
        XXH64_update(&state, rec->data, (size_t)rec->data_size);
    unsigned char trailer[8];
    sf_put_u64(trailer, XXH64_digest(&state));

    /* fwrite retries short writes itself; a short count means an error. */
    errno = 0;
    if (fwrite(header, 1, hlen, fp) != hlen
        || (rec->data_size
            && fwrite(rec->data, 1, (size_t)rec->data_size, fp) != rec->data_size)
        || fwrite(trailer, 1, 8, fp) != 8)
        return write_failed(err, rec);
    return SF_OK;
}

/* ---- Reading ---- */

sf_status sf_stream_reader_create(sf_stream_reader **out, FILE *fp, const char *name,
                                  sf_error *err)
{
    *out = NULL;
    if (!fp)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "no input file");
    sf_stream_reader *r = calloc(1, sizeof *r);
    if (!r)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    r->name = strdup(name ? name : "<stream>");
    if (!r->name) {
        free(r);
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }
    r->fp = fp;
    r->max_payload = SF_STREAM_DEFAULT_MAX_PAYLOAD;
    *out = r;
    return SF_OK;
}

void sf_stream_reader_free(sf_stream_reader *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->slot_cap; i++)
        free(r->slots[i].buf);
    free(r->slots);
    free(r->image_recs);
    free(r->payload);
    free(r->name);
    free(r);
}

void sf_stream_reader_set_max_payload(sf_stream_reader *r, uint64_t bytes)
{
    r->max_payload = bytes;
}

uint64_t sf_stream_reader_records(const sf_stream_reader *r)
{
    return r->returned;
}

uint64_t sf_stream_reader_offset(const sf_stream_reader *r)
{
    return r->offset;
}

uint64_t sf_stream_reader_images(const sf_stream_reader *r)
{
    return r->images;
}

void sf_stream_reader_allow_partial(sf_stream_reader *r, int allow)
{
    r->allow_partial = allow != 0;
}


/* Fail the reader for good: "<name>: record <n> at byte <offset>: <reason>". */
__attribute__((format(printf, 4, 5)))
static sf_status fail(sf_stream_reader *r, uint64_t start, sf_status st, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    sf_error_set(&r->error, st, "%s: record %llu at byte %llu: %s", r->name,
                 (unsigned long long)r->seen, (unsigned long long)start, reason);
    r->failed = st;
    return st;
}

/* Read exactly n bytes.  Returns the count read; on a short count, ferror
 * tells an I/O error from the end of the input. */
static size_t read_bytes(sf_stream_reader *r, void *buf, size_t n)
{
    size_t got = fread(buf, 1, n, r->fp);
    r->offset += got;
    return got;
}

/* Why a read came up short, as a reason for fail(). */
static sf_status short_read(sf_stream_reader *r, uint64_t start, const char *what,
                            uint64_t got, uint64_t want)
{
    if (ferror(r->fp))
        return fail(r, start, SF_ERR_IO, "read failed in the %s: %s", what,
                    strerror(errno ? errno : EIO));
    return fail(r, start, SF_ERR_TRUNCATED, "truncated: %s ends after %llu of %llu bytes",
                what, (unsigned long long)got, (unsigned long long)want);
}

/* Read one record, verified, into r->rec.  Returns SF_OK with *skip set
 * when the record is of an unknown optional kind. */
static sf_status read_one(sf_stream_reader *r, int *skip, int *at_end)
{
    unsigned char *h = r->header;
    uint64_t start = r->offset;
    *at_end = 0;
    *skip = 0;
    r->last_closed = 0;

    errno = 0;
    size_t got = read_bytes(r, h, FIXED_SIZE);
    if (got == 0 && !ferror(r->fp)) {
        if (r->image_open)
            return fail(r, start, SF_ERR_TRUNCATED, "stream ends inside image " SF_KEY_FMT,
                        SF_KEY_ARGS(r->open_key, r->open_key_len));
        if (!r->allow_partial && start == 0)
            return fail(r, start, SF_ERR_TRUNCATED,
                        "empty input: not even the end record every writer puts last "
                        "(the program that should have written it failed)");
        if (!r->allow_partial && (r->since_end > 0 || r->ends == 0))
            return fail(r, start, SF_ERR_TRUNCATED,
                        "the stream stops after %llu images without its end record: "
                        "the program that wrote it stopped early",
                        (unsigned long long)r->since_end);
        *at_end = 1;
        return SF_OK;
    }
    if (got < FIXED_SIZE)
        return short_read(r, start, "record header", got, FIXED_SIZE);
    if (memcmp(h, SF_STREAM_MAGIC, SF_STREAM_MAGIC_SIZE) != 0)
        return fail(r, start, SF_ERR_FORMAT, "bad magic: not a feature stream record");

    /* ndim and key_len size the next read, so they are checked before the
     * header checksum can vouch for them; the bounds keep a lie harmless. */
    unsigned ndim = h[15];
    uint32_t key_len = sf_get_u32(h + 16);
    if (ndim > SF_STREAM_MAX_DIMS)
        return fail(r, start, SF_ERR_FORMAT, "%u dimensions, at most %d", ndim,
                    SF_STREAM_MAX_DIMS);
    if (key_len == 0 || key_len > SF_STREAM_MAX_KEY)
        return fail(r, start, SF_ERR_FORMAT, "key length %lu is not in 1..%d",
                    (unsigned long)key_len, SF_STREAM_MAX_KEY);
    size_t rest = 8 * ndim + key_len + 4;
    got = read_bytes(r, h + FIXED_SIZE, rest);
    if (got < rest)
        return short_read(r, start, "record header", FIXED_SIZE + got, FIXED_SIZE + rest);
    size_t hlen = FIXED_SIZE + rest;
    uint32_t stored32 = sf_get_u32(h + hlen - 4);
    uint32_t computed32 = XXH32(h, hlen - 4, 0);
    if (stored32 != computed32)
        return fail(r, start, SF_ERR_CHECKSUM,
                    "header checksum mismatch (stored 0x%08lx, computed 0x%08lx)",
                    (unsigned long)stored32, (unsigned long)computed32);

    /* From here on the header is what the writer wrote. */
    unsigned version = sf_get_u16(h + 8);
    unsigned kind = sf_get_u16(h + 10);
    unsigned flags = sf_get_u16(h + 12);
    unsigned dtype = h[14];
    uint64_t payload_len = sf_get_u64(h + 32);
    const char *key = (const char *)h + FIXED_SIZE + 8 * ndim;
    if (version == 1)
        return fail(r, start, SF_ERR_VERSION,
                    "stream version 1, from an sf without end records or provenance: "
                    "make it again with this sf");
    if (version != SF_STREAM_VERSION)
        return fail(r, start, SF_ERR_VERSION, "stream version %u, this reader knows %d",
                    version, SF_STREAM_VERSION);
    if (sf_dtype_size((int)dtype) == 0)
        return fail(r, start, SF_ERR_FORMAT, "unknown dtype %u", dtype);
    if (!kind_is_readable(kind))
        return fail(r, start, SF_ERR_UNSUPPORTED,
                    "unknown record kind %u that is not marked optional", kind);
    if (flags & ~SF_RECORD_KNOWN_FLAGS)
        return fail(r, start, SF_ERR_UNSUPPORTED, "unknown flags 0x%04x", flags);
    if (memchr(key, '\0', key_len))
        return fail(r, start, SF_ERR_FORMAT, "key contains a NUL byte");
    if (contains(key, key_len, SF_STREAM_MAGIC, SF_STREAM_MAGIC_SIZE))
        return fail(r, start, SF_ERR_FORMAT, "key contains the record magic");
    uint64_t shape[SF_STREAM_MAX_DIMS] = { 0 };
    for (unsigned i = 0; i < ndim; i++)
        shape[i] = sf_get_u64(h + FIXED_SIZE + 8 * i);
    uint64_t want = payload_size(shape, ndim, (int)dtype);
    if (want == UINT64_MAX)
        return fail(r, start, SF_ERR_FORMAT, "dims overflow 64 bits");
    if (payload_len != want)
        return fail(r, start, SF_ERR_FORMAT,
                    "payload_len %llu does not match the dims (%llu bytes)",
                    (unsigned long long)payload_len, (unsigned long long)want);
    if (payload_len > r->max_payload || payload_len > SIZE_MAX)
        return fail(r, start, SF_ERR_TOO_LARGE,
                    "payload of %llu bytes exceeds the limit of %llu",
                    (unsigned long long)payload_len, (unsigned long long)r->max_payload);

    XXH64_state_t state;
    XXH64_reset(&state, 0);
    XXH64_update(&state, h, hlen);
    /* Grow with the bytes that arrive, geometrically so that big payloads
     * are not copied over and over. */
    size_t done = 0, len = (size_t)payload_len;
    while (done < len) {
        size_t chunk = len - done < READ_CHUNK ? len - done : READ_CHUNK;
        if (done + chunk > r->payload_cap) {
            size_t cap = r->payload_cap * 2;
            if (cap < done + chunk)
                cap = done + chunk;
            if (cap > len)
                cap = len;
            unsigned char *p = realloc(r->payload, cap);
            if (!p)
                return fail(r, start, SF_ERR_NOMEM, "out of memory for a payload of %llu bytes",
                            (unsigned long long)payload_len);
            r->payload = p;
            r->payload_cap = cap;
        }
        got = read_bytes(r, r->payload + done, chunk);
        XXH64_update(&state, r->payload + done, got);
        done += got;
        if (got < chunk)
            return short_read(r, start, "payload", done, len);
    }
    unsigned char trailer[8];
    got = read_bytes(r, trailer, 8);
    if (got < 8)
        return short_read(r, start, "record checksum", got, 8);
    uint64_t stored64 = sf_get_u64(trailer);
    uint64_t computed64 = XXH64_digest(&state);
    if (stored64 != computed64)
        return fail(r, start, SF_ERR_CHECKSUM,
                    "checksum mismatch (stored 0x%016llx, computed 0x%016llx)",
                    (unsigned long long)stored64, (unsigned long long)computed64);

    if (kind == SF_KIND_END) {
        uint64_t count = payload_len == 8 ? sf_get_u64(r->payload) : 0;
        if (r->image_open)
            return fail(r, start, SF_ERR_FORMAT, "end record inside image " SF_KEY_FMT,
                        SF_KEY_ARGS(r->open_key, r->open_key_len));
        if (dtype != SF_DTYPE_I64 || ndim != 1 || shape[0] != 1 || flags != 0)
            return fail(r, start, SF_ERR_FORMAT, "malformed end record");
        if (count != r->since_end)
            return fail(r, start, SF_ERR_FORMAT,
                        "the end record of " SF_KEY_FMT " counts %llu images, the stream has %llu "
                        "since the previous end: images were lost, repeated or mixed",
                        SF_KEY_ARGS(key, key_len), (unsigned long long)count,
                        (unsigned long long)r->since_end);
        r->ends++;
        r->since_end = 0;
        r->seen++;
        *skip = 1;
        return SF_OK;
    }
    if (r->image_open && (key_len != r->open_key_len || memcmp(key, r->open_key, key_len) != 0))
        return fail(r, start, SF_ERR_FORMAT,
                    "image " SF_KEY_FMT " ends without its last record before " SF_KEY_FMT,
                    SF_KEY_ARGS(r->open_key, r->open_key_len), SF_KEY_ARGS(key, key_len));

    if (flags & SF_RECORD_LAST) {
        r->image_open = 0;
        r->images++;
        r->since_end++;
    } else if (!r->image_open) {
        r->image_open = 1;
        memcpy(r->open_key, key, key_len);
        r->open_key[key_len] = '\0';
        r->open_key_len = key_len;
    }
    r->seen++;
    r->last_closed = (flags & SF_RECORD_LAST) != 0;
    if (sf_kind_name((int)kind) == NULL) {
        *skip = 1;
        return SF_OK;
    }

    static const uint64_t empty; /* aligned stand-in for an empty payload */
    sf_record *rec = &r->rec;
    memset(rec, 0, sizeof *rec);
    rec->kind = (uint16_t)kind;
    rec->flags = (uint16_t)flags;
    rec->dtype = (uint8_t)dtype;
    rec->ndim = (uint8_t)ndim;
    rec->index = sf_get_u32(h + 20);
    rec->scale = sf_get_f64(h + 24);
    memcpy(rec->shape, shape, sizeof shape);
    memcpy(r->key, key, key_len);
    r->key[key_len] = '\0';
    rec->key = r->key;
    rec->key_len = key_len;
    rec->data = len ? (const void *)r->payload : (const void *)&empty;
    rec->data_size = payload_len;
    return SF_OK;
}

sf_status sf_stream_read_record(sf_stream_reader *r, const sf_record **out, sf_error *err)
{
    int closed;
    sf_status st;
    do
        st = sf_stream_next(r, out, &closed, err);
    while (st == SF_OK && !*out && closed);
    return st;
}

sf_status sf_stream_next(sf_stream_reader *r, const sf_record **out, int *closed, sf_error *err)
{
    *out = NULL;
    *closed = 0;
    for (;;) {
        if (r->failed) {
            if (err)
                *err = r->error;
            return r->failed;
        }
        if (r->ended)
            return SF_OK;
        int skip, at_end;
        if (read_one(r, &skip, &at_end) != SF_OK)
            continue; /* reports r->error */
        if (at_end) {
            r->ended = 1;
            return SF_OK;
        }
        if (!skip) {
            r->returned++;
            *out = &r->rec;
            *closed = r->last_closed;
            return SF_OK;
        }
        /* A skipped record may close an image whose other records came. */
        if (r->last_closed) {
            r->last_closed = 0;
            *closed = 1;
            return SF_OK;
        }
    }
}

void sf_stream_take_payload(sf_stream_reader *r, unsigned char **buf, size_t *cap)
{
    unsigned char *b = r->payload;
    size_t c = r->payload_cap;
    r->payload = *buf;
    r->payload_cap = *cap;
    *buf = b;
    *cap = c;
}

/* ---- Writing whole images and ends ---- */

sf_status sf_stream_write_image(FILE *fp, const sf_record *recs, size_t count, sf_error *err)
{
    for (size_t i = 0; i < count; i++) {
        sf_record r = recs[i];
        r.flags = (uint16_t)((r.flags & ~SF_RECORD_LAST) | (i + 1 == count ? SF_RECORD_LAST : 0));
        sf_status st = sf_stream_write_record(fp, &r, err);
        if (st != SF_OK)
            return st;
    }
    return SF_OK;
}

sf_status sf_stream_write_end(FILE *fp, const char *writer, uint64_t images, sf_error *err)
{
    const uint64_t one = 1;
    sf_record rec;
    sf_record_make(&rec, writer, SF_KIND_END, SF_DTYPE_I64, 1, &one, &images);
    return sf_stream_write_record(fp, &rec, err);
}

/* ---- Counting without reading ---- */

/* The first read of each header: enough for 8 dims and a 400-byte key. */
#define COUNT_READ 512

sf_status sf_stream_count_images(int fd, uint64_t max_records, uint64_t *images, uint64_t *bytes,
                                 sf_error *err)
{
    struct stat sb;
    *images = 0;
    if (bytes)
        *bytes = 0;
    if (fstat(fd, &sb) != 0)
        return sf_error_set(err, SF_ERR_IO, "fstat: %s", strerror(errno));
    off_t at = S_ISREG(sb.st_mode) ? lseek(fd, 0, SEEK_CUR) : -1;
    if (at < 0)
        return sf_error_set(err, SF_ERR_UNSUPPORTED, "not a regular file: cannot count ahead");
    uint64_t pos = (uint64_t)at, end = (uint64_t)sb.st_size, n = 0, records = 0;
    if (bytes)
        *bytes = end > pos ? end - pos : 0;
    unsigned char h[MAX_HEADER];
    while (pos < end) {
        if (max_records && records == max_records)
            return sf_error_set(err, SF_ERR_TOO_LARGE, "more than %llu records",
                                (unsigned long long)max_records);
        /* Most headers fit in a small read; a long key takes a second. */
        uint64_t left = end - pos;
        size_t want = left < COUNT_READ ? (size_t)left : COUNT_READ;
        ssize_t got = pread(fd, h, want, (off_t)pos);
        if (got < 0)
            return sf_error_set(err, SF_ERR_IO, "read failed at byte %llu: %s",
                                (unsigned long long)pos, strerror(errno));
        if ((size_t)got < FIXED_SIZE || memcmp(h, SF_STREAM_MAGIC, SF_STREAM_MAGIC_SIZE) != 0)
            return sf_error_set(err, SF_ERR_FORMAT, "no record header at byte %llu",
                                (unsigned long long)pos);
        unsigned ndim = h[15];
        uint32_t key_len = sf_get_u32(h + 16);
        if (ndim > SF_STREAM_MAX_DIMS || key_len == 0 || key_len > SF_STREAM_MAX_KEY)
            return sf_error_set(err, SF_ERR_FORMAT, "bad record header at byte %llu",
                                (unsigned long long)pos);
        size_t need = FIXED_SIZE + 8 * ndim + key_len + 4;
        if ((size_t)got < need && left >= need) {
            ssize_t more = pread(fd, h + got, need - (size_t)got, (off_t)(pos + (uint64_t)got));
            if (more < 0)
                return sf_error_set(err, SF_ERR_IO, "read failed at byte %llu: %s",
                                    (unsigned long long)pos, strerror(errno));
            got += more;
        }
        if ((size_t)got < need)
            return sf_error_set(err, SF_ERR_TRUNCATED, "record header at byte %llu ends "
                                "after the file", (unsigned long long)pos);
        size_t hlen = need;
        /* Only a header its checksum vouches for says how far to skip. */
        if (sf_get_u32(h + hlen - 4) != XXH32(h, hlen - 4, 0))
            return sf_error_set(err, SF_ERR_CHECKSUM, "header checksum mismatch at byte %llu",
                                (unsigned long long)pos);
        uint64_t payload = sf_get_u64(h + 32);
        if (payload > end || end - pos < hlen + 8 || payload > end - pos - hlen - 8)
            return sf_error_set(err, SF_ERR_TRUNCATED, "record at byte %llu ends after the "
                                "file", (unsigned long long)pos);
        if (sf_get_u16(h + 10) != SF_KIND_END && (sf_get_u16(h + 12) & SF_RECORD_LAST))
            n++;
        records++;
        pos += hlen + payload + 8;
    }
    *images = n;
    return SF_OK;
}
