#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "npy_internal.h"
#include "sf_internal.h"
#include "zip_internal.h"

/* NumPy's own alignment for format 1.0, so the data can be memory-mapped. */
#define NPY_ALIGN 64
/* Magic, version and the u16 header length. */
#define NPY_PREAMBLE 10

static const char *npy_descr(int dtype)
{
    switch (dtype) {
    case SF_DTYPE_U8: return "|u1";
    case SF_DTYPE_I16: return "<i2";
    case SF_DTYPE_I32: return "<i4";
    case SF_DTYPE_I64: return "<i8";
    case SF_DTYPE_F16: return "<f2";
    case SF_DTYPE_F32: return "<f4";
    case SF_DTYPE_F64: return "<f8";
    }
    return NULL;
}

size_t sf_npy_header(unsigned char *header, int dtype, unsigned ndim, const uint64_t *shape,
                     size_t min_total)
{
    /* The header is the repr of a Python dict; a 1-tuple needs its comma. */
    char dims[(SF_STREAM_MAX_DIMS + 1) * 22 + 4];
    size_t n = 0;
    dims[n++] = '(';
    for (unsigned i = 0; i < ndim; i++)
        n += (size_t)snprintf(dims + n, sizeof dims - n, i ? ", %llu" : "%llu",
                              (unsigned long long)shape[i]);
    if (ndim == 1)
        dims[n++] = ',';
    dims[n++] = ')';
    dims[n] = '\0';

    /* Longest case: 10 + ~40 + 9 dims of 20 digits: well under 64 KiB. */
    int dict = snprintf((char *)header + NPY_PREAMBLE, SF_NPY_HEADER_MAX - NPY_PREAMBLE,
                        "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                        npy_descr(dtype), dims);
    /* Pad with spaces to the alignment, the last byte being '\n'. */
    size_t total = NPY_PREAMBLE + (size_t)dict + 1;
    total = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    if (total < min_total)
        total = min_total;
    memset(header + NPY_PREAMBLE + dict, ' ', total - NPY_PREAMBLE - (size_t)dict - 1);
    header[total - 1] = '\n';
    memcpy(header, "\x93NUMPY\x01\x00", 8);
    sf_put_u16(header + 8, (uint16_t)(total - NPY_PREAMBLE));
    return total;
}

sf_status sf_npy_write(FILE *fp, const sf_record *rec, sf_error *err)
{
    sf_status st = sf_record_validate(rec, err);
    if (st != SF_OK)
        return st;
    unsigned char header[SF_NPY_HEADER_MAX];
    size_t total = sf_npy_header(header, rec->dtype, rec->ndim, rec->shape, 0);

    errno = 0;
    if (fwrite(header, 1, total, fp) != total
        || (rec->data_size
            && fwrite(rec->data, 1, (size_t)rec->data_size, fp) != rec->data_size)) {
        int e = errno ? errno : EIO;
        return sf_error_set(err, e == EPIPE ? SF_ERR_BROKEN_PIPE : SF_ERR_IO,
                            "writing .npy failed: %s", strerror(e));
    }
    return SF_OK;
}

void sf_npy_file_name(const sf_record *rec, char name[SF_NPY_NAME_SIZE])
{
    size_t len = rec->key_len > 200 ? 200 : rec->key_len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)rec->key[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                 || c == '-' || c == '_' || c == '+' || (c == '.' && i > 0);
        name[i] = ok ? (char)c : '_';
    }
    /* 200 + kind (at most "kind" and 5 digits) + index (10 digits) fit. */
    const char *kind = sf_kind_name(rec->kind);
    if (kind)
        snprintf(name + len, SF_NPY_NAME_SIZE - len, ".%s.%lu.npy", kind,
                 (unsigned long)rec->index);
    else
        snprintf(name + len, SF_NPY_NAME_SIZE - len, ".kind%u.%lu.npy", (unsigned)rec->kind,
                 (unsigned long)rec->index);
}

static int npy_dtype(const char *descr)
{
    for (int d = 1; d <= SF_DTYPE_COUNT; d++)
        if (strcmp(descr, npy_descr(d)) == 0)
            return d;
    if (strcmp(descr, "<u1") == 0)
        return SF_DTYPE_U8;
    return 0;
}

/* Value of 'key': in the header dict, as the text after it. */
static const char *npy_field(const char *dict, const char *key)
{
    const char *p = strstr(dict, key);
    if (!p)
        return NULL;
    p += strlen(key);
    while (*p == ' ')
        p++;
    return p;
}

sf_status sf_npy_read_header(FILE *fp, const char *name, uint64_t max_bytes, sf_npy_array *out,
                             sf_error *err)
{
    unsigned char pre[12];
    memset(out, 0, sizeof *out);
    if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: not a .npy file", name);
    size_t hlen;
    if (pre[6] == 1) {
        hlen = sf_get_u16(pre + 8);
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, fp) != 2)
            return sf_error_set(err, SF_ERR_TRUNCATED, "%s: truncated .npy header", name);
        hlen = sf_get_u32(pre + 8);
    } else {
        return sf_error_set(err, SF_ERR_VERSION, "%s: .npy format version %d", name, pre[6]);
    }
    char dict[4096];
    if (hlen >= sizeof dict)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: .npy header of %zu bytes", name, hlen);
    if (fread(dict, 1, hlen, fp) != hlen)
        return sf_error_set(err, SF_ERR_TRUNCATED, "%s: truncated .npy header", name);
    dict[hlen] = '\0';

    char descr[8] = "";
    const char *v = npy_field(dict, "'descr':");
    if (!v || sscanf(v, "'%7[^']'", descr) != 1 || !(out->dtype = (uint8_t)npy_dtype(descr))) {
        char shown[40]; /* the file's bytes, never a line break in a message */
        return sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: unsupported .npy element type '%s'",
                            name, sf_zip_printable(shown, sizeof shown, descr, strlen(descr)));
    }
    v = npy_field(dict, "'fortran_order':");
    if (!v || strncmp(v, "False", 5) != 0)
        return sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: Fortran-order arrays are not supported", name);
    v = npy_field(dict, "'shape':");
    if (!v || *v != '(')
        return sf_error_set(err, SF_ERR_FORMAT, "%s: .npy header has no shape", name);
    v++;
    for (;;) {
        while (*v == ' ' || *v == ',')
            v++;
        if (*v == ')')
            break;
        char *end;
        unsigned long long dim = strtoull(v, &end, 10);
        if (end == v || out->ndim == SF_STREAM_MAX_DIMS)
            return sf_error_set(err, SF_ERR_FORMAT, "%s: bad .npy shape", name);
        out->shape[out->ndim++] = dim;
        v = end;
    }
    uint64_t count = sf_shape_count(out->shape, out->ndim);
    size_t elem = sf_dtype_size(out->dtype);
    if (count == UINT64_MAX || count > max_bytes / elem)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: array larger than %llu bytes", name,
                            (unsigned long long)max_bytes);
    out->data_size = count * elem;
    /* A regular file must hold the data the header promises. */
    struct stat st;
    long here = ftell(fp);
    if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) && here >= 0 &&
        (uint64_t)(st.st_size - here) < out->data_size)
        return sf_error_set(err, SF_ERR_TRUNCATED, "%s: .npy data ends early (%llu of %llu bytes)",
                            name, (unsigned long long)(st.st_size - here),
                            (unsigned long long)out->data_size);
    return SF_OK;
}

sf_status sf_npy_read(FILE *fp, const char *name, uint64_t max_bytes, sf_npy_array *out,
                      sf_error *err)
{
    sf_status st = sf_npy_read_header(fp, name, max_bytes, out, err);
    if (st != SF_OK)
        return st;
    out->data = malloc(out->data_size ? (size_t)out->data_size : 1);
    if (!out->data)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    if (fread(out->data, 1, (size_t)out->data_size, fp) != out->data_size) {
        free(out->data);
        out->data = NULL;
        return sf_error_set(err, SF_ERR_TRUNCATED, "%s: .npy data ends early", name);
    }
    return SF_OK;
}

sf_status sf_npy_save(const char *path, const sf_record *rec, sf_error *err)
{
    sf_atomic_file af;
    sf_status st = sf_atomic_file_open(&af, path, err);
    if (st != SF_OK)
        return st;
    sf_error werr;
    st = sf_npy_write(af.fp, rec, &werr);
    sf_status cst = sf_atomic_file_commit(&af, st == SF_OK, err);
    if (st != SF_OK)
        return sf_error_set(err, st, "%s: %s", path, werr.message);
    return cst;
}
