/* Stacked .npy export: one array per record kind holding the records of
 * every image, and a manifest that maps each record back to its image,
 * key, index and scale; and the way back, from such a directory (or one an
 * outside tool wrote) to the images of a stream.  Layouts: man/sf-cat.1
 * (STACKED ARRAYS). */
#include "config.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npy_internal.h"
#include "sf_internal.h"
#include "stream_internal.h"

/* The header every stacked array reserves: written last, once the number
 * of rows is known, and always this long, whatever the shape. */
#define STACK_HEADER 256
#define N_KINDS SF_KIND_END
#define MANIFEST "manifest.tsv"
static const char manifest_header[] = "image\tkey\tkind\tindex\tscale\tfirst\trows\tshape\n";

/* How the records of a kind are laid out in its array. */
typedef enum layout {
    LAYOUT_STACK = 1, /* one per image, one shape: a new first axis */
    LAYOUT_ROWS,      /* rows along the first axis, the other dims shared */
    LAYOUT_FLAT       /* shapes that differ per record: flattened, end to end */
} layout;

static layout kind_layout(int kind)
{
    switch (kind) {
    case SF_KIND_GLOBAL:
    case SF_KIND_SOURCE:
    case SF_KIND_PROVENANCE: return LAYOUT_STACK;
    case SF_KIND_IMAGE:
    case SF_KIND_FEATURE_MAP:
    case SF_KIND_ATTENTION:
    case SF_KIND_PIXELS: return LAYOUT_FLAT;
    default: return LAYOUT_ROWS;
    }
}

/* What an array holds so far: dtype and the dims its records share. */
typedef struct array_form {
    int set;
    uint8_t dtype;
    uint8_t ndim; /* the records' */
    uint64_t shape[SF_STREAM_MAX_DIMS];
    uint64_t rows; /* the array's first dim (elements for LAYOUT_FLAT) */
} array_form;

/* A shape as the manifest writes it, dims before `from` shown as N. */
static void shape_text(char *buf, const uint64_t *shape, unsigned ndim, unsigned from)
{
    size_t n = 0;
    buf[0] = '\0';
    if (ndim == 0)
        strcpy(buf, "scalar");
    for (unsigned i = 0; i < ndim; i++) {
        if (i < from)
            n += (size_t)sprintf(buf + n, i ? "xN" : "N");
        else
            n += (size_t)sprintf(buf + n, i ? "x%llu" : "%llu", (unsigned long long)shape[i]);
    }
}

/* Rows rec adds to its array, or why it does not fit the form (which it
 * then takes, if it had none). */
static sf_status fit(array_form *f, layout lay, const sf_record *rec, uint64_t *rows,
                     sf_error *err)
{
    const char *kind = sf_kind_name(rec->kind & ~(int)SF_KIND_OPTIONAL);
    if (lay == LAYOUT_ROWS && rec->ndim == 0)
        return sf_error_set(err, SF_ERR_INVALID_DATA, SF_KEY_FMT ": %s: a scalar, rows needed",
                            SF_KEY_ARGS(rec->key, rec->key_len), kind);
    if (lay == LAYOUT_STACK && rec->ndim >= SF_STREAM_MAX_DIMS)
        return sf_error_set(err, SF_ERR_INVALID_DATA, SF_KEY_FMT ": %s: %u dimensions, at most %d",
                            SF_KEY_ARGS(rec->key, rec->key_len), kind, (unsigned)rec->ndim,
                            SF_STREAM_MAX_DIMS - 1);
    *rows = lay == LAYOUT_STACK ? 1
            : lay == LAYOUT_ROWS ? rec->shape[0]
                                 : rec->data_size / sf_dtype_size(rec->dtype);
    unsigned from = lay == LAYOUT_ROWS ? 1 : 0;
    if (!f->set) {
        f->set = 1;
        f->dtype = rec->dtype;
        f->ndim = rec->ndim;
        memcpy(f->shape, rec->shape, sizeof f->shape);
    } else if (f->dtype != rec->dtype) {
        return sf_error_set(err, SF_ERR_INVALID_DATA, SF_KEY_FMT ": %s: %s, the other %s records "
                            "are %s", SF_KEY_ARGS(rec->key, rec->key_len), kind,
                            sf_dtype_name(rec->dtype), kind, sf_dtype_name(f->dtype));
    } else if (lay != LAYOUT_FLAT) {
        int same = f->ndim == rec->ndim;
        for (unsigned i = from; same && i < rec->ndim; i++)
            same = f->shape[i] == rec->shape[i];
        if (!same) {
            char mine[SF_STREAM_MAX_DIMS * 21 + 1], theirs[SF_STREAM_MAX_DIMS * 21 + 1];
            shape_text(mine, rec->shape, rec->ndim, from);
            shape_text(theirs, f->shape, f->ndim, from);
            return sf_error_set(err, SF_ERR_INVALID_DATA,
                                SF_KEY_FMT ": %s: shape %s, the %s records before are %s: in "
                                "one array they must agree%s", SF_KEY_ARGS(rec->key, rec->key_len),
                                kind, mine, kind, theirs,
                                lay == LAYOUT_ROWS ? " but in the first dimension" : "");
        }
    }
    if (*rows > UINT64_MAX / 2 - f->rows)
        return sf_error_set(err, SF_ERR_TOO_LARGE, SF_KEY_FMT ": %s: too many rows in all",
                            SF_KEY_ARGS(rec->key, rec->key_len), kind);
    f->rows += *rows;
    return SF_OK;
}

/* The array's shape as written: the first dim is the row count. */
static unsigned array_shape(const array_form *f, layout lay, uint64_t shape[SF_STREAM_MAX_DIMS + 1])
{
    shape[0] = f->rows;
    if (lay == LAYOUT_FLAT)
        return 1;
    if (lay == LAYOUT_STACK) {
        memcpy(shape + 1, f->shape, f->ndim * sizeof shape[0]);
        return f->ndim + 1u;
    }
    memcpy(shape + 1, f->shape + 1, (f->ndim - 1u) * sizeof shape[0]);
    return f->ndim;
}

static char *join_path(const char *dir, const char *name, sf_error *err)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) {
        sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The key as --text prints it: a tab-separated field on one line. */
static void put_key(FILE *fp, const char *key, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '\\')
            fputs("\\\\", fp);
        else if (c == '\t')
            fputs("\\t", fp);
        else if (c == '\n')
            fputs("\\n", fp);
        else if (c == '\r')
            fputs("\\r", fp);
        else if (c < 0x20 || c == 0x7f)
            fprintf(fp, "\\x%02x", c);
        else
            putc(c, fp);
    }
}

/* The shortest %g text that reads back as v exactly: 0.7071, not
 * 0.70709999999999995. */
static void shortest(char buf[32], double v)
{
    for (int digits = 6; digits < 17; digits++) {
        snprintf(buf, 32, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
    snprintf(buf, 32, "%.17g", v);
}

/* ---- Writing ---- */

typedef struct out_array {
    array_form form;
    sf_atomic_file af; /* keeps a pointer to path */
    char *path;
    int open;
} out_array;

struct sf_npy_stack_writer {
    char *dir;
    out_array arrays[N_KINDS];
    sf_atomic_file manifest;
    char *manifest_path;
    int manifest_open;
    uint64_t images;
    sf_status failed; /* an output failed: every later call repeats it */
    sf_error failure;
};

static sf_status writer_failed(sf_npy_stack_writer *w, sf_error *err)
{
    if (err)
        *err = w->failure;
    return w->failed;
}

static sf_status writer_fail(sf_npy_stack_writer *w, sf_error *err)
{
    w->failed = err->status;
    w->failure = *err;
    return w->failed;
}

sf_status sf_npy_stack_writer_create(const char *dir, sf_npy_stack_writer **out, sf_error *err)
{
    *out = NULL;
    sf_npy_stack_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }
    w->manifest_path = join_path(dir, MANIFEST, err);
    if (!w->manifest_path) {
        sf_npy_stack_writer_free(w);
        return SF_ERR_NOMEM;
    }
    sf_status st = sf_atomic_file_open(&w->manifest, w->manifest_path, err);
    if (st != SF_OK) {
        sf_npy_stack_writer_free(w);
        return st;
    }
    w->manifest_open = 1;
    fputs(manifest_header, w->manifest.fp);
    *out = w;
    return SF_OK;
}

static sf_status open_array(sf_npy_stack_writer *w, int kind, sf_error *err)
{
    out_array *a = &w->arrays[kind];
    char name[64];
    snprintf(name, sizeof name, "%s.npy", sf_kind_name(kind));
    if (!a->path && !(a->path = join_path(w->dir, name, err)))
        return SF_ERR_NOMEM;
    sf_status st = sf_atomic_file_open(&a->af, a->path, err);
    if (st != SF_OK)
        return st;
    a->open = 1;
    static const unsigned char zero[STACK_HEADER];
    if (fwrite(zero, 1, sizeof zero, a->af.fp) != sizeof zero)
        return sf_error_set(err, SF_ERR_IO, "%s/%s.npy: %s", w->dir, sf_kind_name(kind),
                            strerror(errno));
    return SF_OK;
}

sf_status sf_npy_stack_writer_add_image(sf_npy_stack_writer *w, const sf_stream_image *img,
                                        const sf_record_filter *filter, sf_error *err)
{
    if (w->failed)
        return writer_failed(w, err);
    /* Every record must fit before any is written, so that an image is
     * exported whole or not at all. */
    array_form forms[N_KINDS];
    for (int k = 0; k < N_KINDS; k++)
        forms[k] = w->arrays[k].form;
    size_t kept = 0;
    for (size_t i = 0; i < img->count; i++) {
        const sf_record *rec = &img->recs[i];
        if (filter && !sf_record_filter_keeps_record(filter, rec))
            continue;
        int kind = rec->kind & ~(int)SF_KIND_OPTIONAL;
        if (kind <= 0 || kind >= N_KINDS || !sf_kind_name(kind))
            return sf_error_set(err, SF_ERR_INVALID_DATA, SF_KEY_FMT ": record kind %u has no "
                                "array", SF_KEY_ARGS(rec->key, rec->key_len), (unsigned)rec->kind);
        sf_status st = sf_record_validate(rec, err);
        uint64_t rows;
        if (st == SF_OK)
            st = fit(&forms[kind], kind_layout(kind), rec, &rows, err);
        if (st != SF_OK)
            return st;
        kept++;
    }
    if (!kept)
        return SF_OK;

    uint64_t image = w->images;
    for (size_t i = 0; i < img->count; i++) {
        const sf_record *rec = &img->recs[i];
        if (filter && !sf_record_filter_keeps_record(filter, rec))
            continue;
        int kind = rec->kind & ~(int)SF_KIND_OPTIONAL;
        out_array *a = &w->arrays[kind];
        sf_status st = a->open ? SF_OK : open_array(w, kind, err);
        if (st != SF_OK)
            return writer_fail(w, err);
        uint64_t first = a->form.rows, rows;
        fit(&a->form, kind_layout(kind), rec, &rows, err); /* checked above */
        if (rec->data_size && fwrite(rec->data, 1, (size_t)rec->data_size, a->af.fp)
                                  != rec->data_size) {
            sf_error_set(err, SF_ERR_IO, "%s/%s.npy: %s", w->dir, sf_kind_name(kind),
                         strerror(errno));
            return writer_fail(w, err);
        }
        FILE *m = w->manifest.fp;
        fprintf(m, "%" PRIu64 "\t", image);
        put_key(m, rec->key, rec->key_len);
        char scale[32];
        shortest(scale, rec->scale);
        fprintf(m, "\t%s\t%" PRIu32 "\t%s\t%" PRIu64 "\t%" PRIu64 "\t", sf_kind_name(kind),
                rec->index, scale, first, rows);
        if (rec->ndim == 0)
            fputs("scalar", m);
        for (unsigned d = 0; d < rec->ndim; d++)
            fprintf(m, d ? "x%" PRIu64 : "%" PRIu64, rec->shape[d]);
        putc('\n', m);
    }
    w->images++;
    return SF_OK;
}

uint64_t sf_npy_stack_writer_images(const sf_npy_stack_writer *w)
{
    return w->images;
}

/* Everything written to fp on disk, so that renaming it can hardly fail. */
static int flush_sync(FILE *fp)
{
    return fflush(fp) == 0 && fsync(fileno(fp)) == 0;
}

sf_status sf_npy_stack_writer_commit(sf_npy_stack_writer *w, sf_error *err)
{
    if (w->failed)
        return writer_failed(w, err);
    /* First every header written and every file synced: a full disk then
     * fails here, with nothing renamed yet. */
    for (int k = 0; k < N_KINDS; k++) {
        out_array *a = &w->arrays[k];
        if (!a->open)
            continue;
        uint64_t shape[SF_STREAM_MAX_DIMS + 1];
        unsigned ndim = array_shape(&a->form, kind_layout(k), shape);
        unsigned char header[SF_NPY_HEADER_MAX];
        size_t total = sf_npy_header(header, a->form.dtype, ndim, shape, STACK_HEADER);
        errno = EOVERFLOW;
        if (total != STACK_HEADER || fflush(a->af.fp) != 0 || fseek(a->af.fp, 0, SEEK_SET) != 0
            || fwrite(header, 1, total, a->af.fp) != total || !flush_sync(a->af.fp)) {
            sf_error_set(err, SF_ERR_IO, "%s: write failed: %s", a->path, strerror(errno));
            return writer_fail(w, err);
        }
    }
    if (!flush_sync(w->manifest.fp)) {
        sf_error_set(err, SF_ERR_IO, "%s: write failed: %s", w->manifest_path, strerror(errno));
        return writer_fail(w, err);
    }
    /* Then the renames, the manifest last: it names what the arrays hold. */
    for (int k = 0; k < N_KINDS; k++) {
        out_array *a = &w->arrays[k];
        if (!a->open)
            continue;
        a->open = 0;
        if (sf_atomic_file_commit(&a->af, 1, err) != SF_OK)
            return writer_fail(w, err);
    }
    w->manifest_open = 0;
    if (sf_atomic_file_commit(&w->manifest, 1, err) != SF_OK)
        return writer_fail(w, err);
    w->failed = SF_ERR_INVALID_ARGUMENT;
    sf_error_set(&w->failure, w->failed, "%s: the export is already committed", w->dir);
    return SF_OK;
}

void sf_npy_stack_writer_free(sf_npy_stack_writer *w)
{
    if (!w)
        return;
    for (int k = 0; k < N_KINDS; k++) {
        if (w->arrays[k].open)
            sf_atomic_file_abort(&w->arrays[k].af);
        free(w->arrays[k].path);
    }
    if (w->manifest_open)
        sf_atomic_file_abort(&w->manifest);
    free(w->manifest_path);
    free(w->dir);
    free(w);
}

/* ---- Reading ---- */

/* One line of the manifest. */
typedef struct entry {
    uint64_t image;  /* the image column, or the run of keys it is in */
    uint64_t line;   /* 1-based, in the file */
    const char *key; /* into the manifest text, unescaped in place */
    size_t key_len;
    int kind;
    uint32_t index;
    double scale;
    uint64_t first, rows;
    int has_shape;
    uint8_t ndim;
    uint64_t shape[SF_STREAM_MAX_DIMS];
} entry;

typedef struct in_array {
    FILE *fp;
    sf_npy_array head; /* dtype, shape; no data */
    long long offset;  /* of the data in the file */
    char *path;
} in_array;

typedef struct slot {
    void *buf;
    size_t cap;
} slot;

struct sf_npy_stack_reader {
    char *manifest_path;
    char *text; /* the manifest, keys unescaped in place */
    entry *entries;
    size_t n_entries, next;
    in_array arrays[N_KINDS];
    uint64_t images;
    sf_record *recs;
    slot *slots;
    size_t cap;
    sf_stream_image img;
};

/* Columns found by name in the header line; -1 where absent. */
enum { COL_IMAGE, COL_KEY, COL_KIND, COL_INDEX, COL_SCALE, COL_FIRST, COL_ROWS, COL_SHAPE,
       N_COLS };
static const char *const col_names[N_COLS] = { "image", "key", "kind", "index", "scale",
                                               "first", "rows", "shape" };

/* Unescape a key written by put_key, in place; -1 on a bad escape. */
static long long unescape_key(char *s)
{
    char *out = s;
    for (const char *p = s; *p; p++) {
        if (*p != '\\') {
            *out++ = *p;
            continue;
        }
        p++;
        switch (*p) {
        case '\\': *out++ = '\\'; break;
        case 't': *out++ = '\t'; break;
        case 'n': *out++ = '\n'; break;
        case 'r': *out++ = '\r'; break;
        case 'x': {
            int v = 0;
            for (int i = 1; i <= 2; i++) {
                char c = p[i];
                int d = c >= '0' && c <= '9' ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                if (d < 0)
                    return -1;
                v = v * 16 + d;
            }
            if (v == 0)
                return -1;
            *out++ = (char)v;
            p += 2;
            break;
        }
        default: return -1;
        }
    }
    *out = '\0';
    return out - s;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *v)
{
    if (*s < '0' || *s > '9')
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end || x > max)
        return 0;
    *v = x;
    return 1;
}

static int parse_shape(const char *s, entry *e)
{
    e->ndim = 0;
    if (strcmp(s, "scalar") == 0)
        return 1;
    for (;;) {
        if (e->ndim == SF_STREAM_MAX_DIMS || *s < '0' || *s > '9')
            return 0;
        char *end;
        errno = 0;
        unsigned long long x = strtoull(s, &end, 10);
        if (errno)
            return 0;
        e->shape[e->ndim++] = x;
        if (!*end)
            return 1;
        if (*end != 'x')
            return 0;
        s = end + 1;
    }
}

/* Split line (NUL-terminated, no line end) at tabs into at most max fields. */
static size_t split_tabs(char *line, char **fields, size_t max)
{
    size_t n = 0;
    for (;;) {
        if (n < max)
            fields[n] = line;
        n++;
        char *tab = strchr(line, '\t');
        if (!tab)
            return n;
        *tab = '\0';
        line = tab + 1;
    }
}

#define MAX_FIELDS 64

static sf_status parse_entry(sf_npy_stack_reader *r, const int *col, char **f, size_t nf,
                             uint64_t line, entry *e, sf_error *err)
{
    const char *m = r->manifest_path;
#define BAD(...) sf_error_set(err, SF_ERR_FORMAT, "%s: line %llu: " __VA_ARGS__)
#define AT m, (unsigned long long)line
    for (int c = 0; c < N_COLS; c++)
        if (col[c] >= 0 && (size_t)col[c] >= nf)
            return BAD("%zu fields, the header names more", AT, nf);
    memset(e, 0, sizeof *e);
    e->line = line;
    e->scale = 1.0;
    char *key = f[col[COL_KEY]];
    long long klen = unescape_key(key);
    if (klen <= 0 || klen > SF_STREAM_MAX_KEY)
        return BAD("%s", AT, klen == 0 ? "empty key" : klen < 0 ? "bad escape in the key"
                                                                 : "key too long");
    e->key = key;
    e->key_len = (size_t)klen;
    e->kind = sf_kind_from_name(f[col[COL_KIND]]);
    if (!e->kind || e->kind >= N_KINDS)
        return BAD("unknown kind (expected a kind name: local_desc, global, ...)", AT);
    uint64_t v;
    if (col[COL_IMAGE] >= 0 && !parse_u64(f[col[COL_IMAGE]], UINT64_MAX, &e->image))
        return BAD("bad image number", AT);
    if (col[COL_INDEX] >= 0) {
        if (!parse_u64(f[col[COL_INDEX]], UINT32_MAX, &v))
            return BAD("bad index", AT);
        e->index = (uint32_t)v;
    }
    if (col[COL_SCALE] >= 0) {
        const char *s = f[col[COL_SCALE]];
        char *end;
        errno = 0;
        e->scale = strtod(s, &end);
        if (end == s || *end || errno == ERANGE || !isfinite(e->scale))
            return BAD("bad scale", AT);
    }
    if (!parse_u64(f[col[COL_FIRST]], UINT64_MAX, &e->first))
        return BAD("bad first", AT);
    if (!parse_u64(f[col[COL_ROWS]], UINT64_MAX, &e->rows))
        return BAD("bad rows", AT);
    if (col[COL_SHAPE] >= 0) {
        if (!parse_shape(f[col[COL_SHAPE]], e))
            return BAD("bad shape (expected dims joined by x, such as 100x128, or scalar)",
                       AT);
        e->has_shape = 1;
    }
#undef AT
#undef BAD
    return SF_OK;
}

static int by_image(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->image != y->image)
        return x->image < y->image ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

static sf_status parse_manifest(sf_npy_stack_reader *r, size_t size, sf_error *err)
{
    char *text = r->text;
    const char *m = r->manifest_path;
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += text[i] == '\n';
    if (memchr(text, '\0', size))
        return sf_error_set(err, SF_ERR_FORMAT, "%s: a NUL byte: not a manifest", m);
    r->entries = calloc(lines + 1, sizeof *r->entries);
    if (!r->entries)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", m);
    int col[N_COLS];
    for (int c = 0; c < N_COLS; c++)
        col[c] = -1;
    uint64_t line = 0, run = 0;
    int have_header = 0;
    char *p = text, *end = text + size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *next = nl ? nl + 1 : end;
        if (!nl)
            nl = end; /* text has a NUL at end */
        *nl = '\0';
        if (nl > p && nl[-1] == '\r')
            nl[-1] = '\0';
        line++;
        char *fields[MAX_FIELDS];
        char *this = p;
        p = next;
        if (!*this)
            continue;
        size_t nf = split_tabs(this, fields, MAX_FIELDS);
        if (nf > MAX_FIELDS)
            return sf_error_set(err, SF_ERR_FORMAT, "%s: line %llu: more than %d fields", m,
                                (unsigned long long)line, MAX_FIELDS);
        if (!have_header) {
            for (size_t i = 0; i < nf; i++)
                for (int c = 0; c < N_COLS; c++)
                    if (strcmp(fields[i], col_names[c]) == 0) {
                        if (col[c] >= 0)
                            return sf_error_set(err, SF_ERR_FORMAT, "%s: line %llu: column "
                                                "'%s' twice", m, (unsigned long long)line,
                                                col_names[c]);
                        col[c] = (int)i;
                    }
            static const int need[] = { COL_KEY, COL_KIND, COL_FIRST, COL_ROWS };
            for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
                if (col[need[i]] < 0)
                    return sf_error_set(err, SF_ERR_FORMAT, "%s: line %llu: the header names "
                                        "no '%s' column (it needs key, kind, first, rows)", m,
                                        (unsigned long long)line, col_names[need[i]]);
            have_header = 1;
            continue;
        }
        entry *e = &r->entries[r->n_entries];
        sf_status st = parse_entry(r, col, fields, nf, line, e, err);
        if (st != SF_OK)
            return st;
        /* Without an image column an image is a run of lines of one key. */
        if (col[COL_IMAGE] < 0) {
            const entry *prev = r->n_entries ? e - 1 : NULL;
            if (prev && (prev->key_len != e->key_len || memcmp(prev->key, e->key, e->key_len)))
                run++;
            e->image = run;
        }
        r->n_entries++;
    }
    if (!have_header)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: empty: no header line", m);
    qsort(r->entries, r->n_entries, sizeof *r->entries, by_image);
    return SF_OK;
}

/* Open the array of kind and check it can hold records of that kind. */
static sf_status open_in_array(sf_npy_stack_reader *r, const char *dir, int kind, sf_error *err)
{
    in_array *a = &r->arrays[kind];
    char name[64];
    snprintf(name, sizeof name, "%s.npy", sf_kind_name(kind));
    if (!(a->path = join_path(dir, name, err)))
        return SF_ERR_NOMEM;
    a->fp = fopen(a->path, "rb");
    if (!a->fp)
        return sf_error_set(err, errno == ENOENT ? SF_ERR_NOT_FOUND : SF_ERR_IO,
                            "%s: %s (the manifest names %s records)", a->path, strerror(errno),
                            sf_kind_name(kind));
    sf_status st = sf_npy_read_header(a->fp, a->path, UINT64_MAX / 2, &a->head, err);
    if (st != SF_OK)
        return st;
    a->offset = ftello(a->fp);
    layout lay = kind_layout(kind);
    if (a->head.ndim == 0 || (lay == LAYOUT_FLAT && a->head.ndim != 1))
        return sf_error_set(err, SF_ERR_FORMAT, "%s: %u dimensions; %s records need %s",
                            a->path, (unsigned)a->head.ndim, sf_kind_name(kind),
                            lay == LAYOUT_FLAT ? "1 (the records flattened, end to end)"
                                               : "at least 1 (the rows first)");
    int want = sf_kind_dtype(kind);
    if (a->head.dtype != want && !(want == SF_DTYPE_F32 && a->head.dtype == SF_DTYPE_F64))
        return sf_error_set(err, SF_ERR_FORMAT, "%s: %s; %s records are %s%s", a->path,
                            sf_dtype_name(a->head.dtype), sf_kind_name(kind),
                            sf_dtype_name(want), want == SF_DTYPE_F32 ? " (or f64, converted)"
                                                                      : "");
    return SF_OK;
}

sf_status sf_npy_stack_reader_open(const char *dir, sf_npy_stack_reader **out, sf_error *err)
{
    *out = NULL;
    sf_npy_stack_reader *r = calloc(1, sizeof *r);
    if (!r)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    sf_status st = SF_ERR_NOMEM;
    if (!(r->manifest_path = join_path(dir, MANIFEST, err)))
        goto fail;
    void *data;
    size_t size;
    st = sf_read_file(r->manifest_path, 0, 1, &data, &size, err);
    if (st != SF_OK)
        goto fail;
    /* One byte more for the NUL that ends the last line. */
    r->text = malloc(size + 1);
    if (!r->text) {
        free(data);
        st = sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", r->manifest_path);
        goto fail;
    }
    memcpy(r->text, data, size);
    r->text[size] = '\0';
    free(data);
    st = parse_manifest(r, size, err);
    for (size_t i = 0; st == SF_OK && i < r->n_entries; i++)
        if (!r->arrays[r->entries[i].kind].fp)
            st = open_in_array(r, dir, r->entries[i].kind, err);
    if (st != SF_OK)
        goto fail;
    *out = r;
    return SF_OK;
fail:
    sf_npy_stack_reader_free(r);
    return st;
}

/* The record e names, its data read into s. */
static sf_status read_entry(sf_npy_stack_reader *r, const entry *e, sf_record *rec, slot *s,
                            sf_error *err)
{
    const in_array *a = &r->arrays[e->kind];
    layout lay = kind_layout(e->kind);
    const char *kind = sf_kind_name(e->kind);
#define BAD(...) sf_error_set(err, SF_ERR_INVALID_DATA, "%s: line %llu: " SF_KEY_FMT ": %s: " \
                              __VA_ARGS__)
#define AT r->manifest_path, (unsigned long long)e->line, SF_KEY_ARGS(e->key, e->key_len), kind
    uint64_t dim0 = a->head.shape[0];
    if (e->first > dim0 || e->rows > dim0 - e->first)
        return BAD("rows %llu..%llu, the array has %llu", AT, (unsigned long long)e->first,
                   (unsigned long long)(e->first + e->rows), (unsigned long long)dim0);
    memset(rec, 0, sizeof *rec);
    /* The record's shape: from the array, or the manifest's, checked. */
    uint8_t ndim;
    uint64_t shape[SF_STREAM_MAX_DIMS];
    if (lay == LAYOUT_STACK) {
        if (e->rows != 1)
            return BAD("%llu rows; one per record in this array", AT,
                       (unsigned long long)e->rows);
        ndim = (uint8_t)(a->head.ndim - 1);
        memcpy(shape, a->head.shape + 1, ndim * sizeof shape[0]);
    } else if (lay == LAYOUT_ROWS) {
        ndim = a->head.ndim;
        memcpy(shape, a->head.shape, ndim * sizeof shape[0]);
        shape[0] = e->rows;
    } else {
        ndim = 1;
        shape[0] = e->rows;
    }
    if (e->has_shape) {
        int same = lay == LAYOUT_FLAT ? sf_shape_count(e->shape, e->ndim) == e->rows
                                      : e->ndim == ndim
                                            && !memcmp(e->shape, shape, ndim * sizeof shape[0]);
        if (!same)
            return BAD("the shape does not match %s", AT,
                       lay == LAYOUT_FLAT ? "the rows (its element count)"
                                          : "the array's and the rows");
        ndim = e->ndim;
        memcpy(shape, e->shape, ndim * sizeof shape[0]);
    }
    /* Bytes per unit of the first axis, in the file. */
    size_t elem = sf_dtype_size(a->head.dtype);
    uint64_t unit = lay == LAYOUT_FLAT ? 1 : sf_shape_count(a->head.shape + 1, a->head.ndim - 1u);
    uint64_t count = sf_shape_count(shape, ndim);
    if (count == UINT64_MAX || count > SF_STREAM_DEFAULT_MAX_PAYLOAD / 8)
        return BAD("too large for a record", AT);
    int widen = a->head.dtype == SF_DTYPE_F64 && sf_kind_dtype(e->kind) == SF_DTYPE_F32;
    size_t bytes = (size_t)count * elem;
    if (bytes > s->cap) {
        void *p = realloc(s->buf, bytes);
        if (!p)
            return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", r->manifest_path);
        s->buf = p;
        s->cap = bytes;
    }
    if (bytes && (fseeko(a->fp, (off_t)(a->offset + (long long)(e->first * unit * elem)),
                         SEEK_SET) != 0
                  || fread(s->buf, 1, bytes, a->fp) != bytes))
        return sf_error_set(err, SF_ERR_TRUNCATED, "%s: data ends early (rows %llu..%llu)",
                            a->path, (unsigned long long)e->first,
                            (unsigned long long)(e->first + e->rows));
    if (widen) {
        /* Narrowed in place, front to back: float i overwrites bytes of
         * doubles before i only.  A value beyond float32 becomes an
         * infinity, which the checks then refuse. */
        unsigned char *b = s->buf;
        for (uint64_t i = 0; i < count; i++) {
            double d;
            memcpy(&d, b + 8 * i, 8);
            float f = d > FLT_MAX ? INFINITY : d < -FLT_MAX ? -INFINITY : (float)d;
            memcpy(b + 4 * i, &f, 4);
        }
    }
    rec->kind = (uint16_t)e->kind;
    rec->dtype = widen ? SF_DTYPE_F32 : a->head.dtype;
    rec->ndim = ndim;
    memcpy(rec->shape, shape, ndim * sizeof shape[0]);
    rec->index = e->index;
    rec->scale = e->scale;
    rec->key = e->key;
    rec->key_len = e->key_len;
    rec->data = s->buf;
    rec->data_size = count * sf_dtype_size(rec->dtype);
#undef AT
#undef BAD
    return SF_OK;
}

sf_status sf_npy_stack_reader_next(sf_npy_stack_reader *r, const sf_stream_image **out,
                                   sf_error *err)
{
    *out = NULL;
    if (r->next >= r->n_entries)
        return SF_OK;
    size_t from = r->next, to = from;
    while (to < r->n_entries && r->entries[to].image == r->entries[from].image)
        to++;
    r->next = to;
    size_t n = to - from;
    if (n > r->cap) {
        sf_record *recs = realloc(r->recs, n * sizeof *recs);
        if (recs)
            r->recs = recs;
        slot *slots = recs ? realloc(r->slots, n * sizeof *slots) : NULL;
        if (!slots)
            return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", r->manifest_path);
        memset(slots + r->cap, 0, (n - r->cap) * sizeof *slots);
        r->slots = slots;
        r->cap = n;
    }
    const entry *e0 = &r->entries[from];
    for (size_t i = 0; i < n; i++) {
        const entry *e = &r->entries[from + i];
        if (e->key_len != e0->key_len || memcmp(e->key, e0->key, e->key_len) != 0)
            return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: line %llu: image %llu has "
                                "another key on line %llu", r->manifest_path,
                                (unsigned long long)e->line, (unsigned long long)e->image,
                                (unsigned long long)e0->line);
        sf_status st = read_entry(r, e, &r->recs[i], &r->slots[i], err);
        if (st != SF_OK)
            return st;
    }
    sf_stream_image *img = &r->img;
    img->key = e0->key;
    img->key_len = e0->key_len;
    img->recs = r->recs;
    img->count = n;
    img->number = r->images++;
    sf_error why;
    if (sf_stream_image_check(img, &why) != SF_OK)
        return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: line %llu: %s", r->manifest_path,
                            (unsigned long long)e0->line, why.message);
    *out = img;
    return SF_OK;
}

void sf_npy_stack_reader_free(sf_npy_stack_reader *r)
{
    if (!r)
        return;
    for (int k = 0; k < N_KINDS; k++) {
        if (r->arrays[k].fp)
            fclose(r->arrays[k].fp);
        free(r->arrays[k].path);
    }
    for (size_t i = 0; i < r->cap; i++)
        free(r->slots[i].buf);
    free(r->slots);
    free(r->recs);
    free(r->entries);
    free(r->text);
    free(r->manifest_path);
    free(r);
}
