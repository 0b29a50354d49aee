#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sf_internal.h"

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

sf_status sf_npy_write(FILE *fp, const sf_record *rec, sf_error *err)
{
    sf_status st = sf_record_validate(rec, err);
    if (st != SF_OK)
        return st;

    /* The header is the repr of a Python dict; a 1-tuple needs its comma. */
    char shape[SF_STREAM_MAX_DIMS * 22 + 4];
    size_t n = 0;
    shape[n++] = '(';
    for (unsigned i = 0; i < rec->ndim; i++)
        n += (size_t)snprintf(shape + n, sizeof shape - n, i ? ", %llu" : "%llu",
                              (unsigned long long)rec->shape[i]);
    if (rec->ndim == 1)
        shape[n++] = ',';
    shape[n++] = ')';
    shape[n] = '\0';

    /* Longest case: 10 + ~40 + 8 dims of 20 digits: well under 64 KiB. */
    unsigned char header[NPY_PREAMBLE + 512];
    int dict = snprintf((char *)header + NPY_PREAMBLE, sizeof header - NPY_PREAMBLE,
                        "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                        npy_descr(rec->dtype), shape);
    /* Pad with spaces to the alignment, the last byte being '\n'. */
    size_t total = NPY_PREAMBLE + (size_t)dict + 1;
    total = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    memset(header + NPY_PREAMBLE + dict, ' ', total - NPY_PREAMBLE - (size_t)dict - 1);
    header[total - 1] = '\n';
    memcpy(header, "\x93NUMPY\x01\x00", 8);
    sf_put_u16(header + 8, (uint16_t)(total - NPY_PREAMBLE));

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
