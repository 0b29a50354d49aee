/* The native model format: everything the loader needs in one header,
 * then the float32 tensors 64-byte aligned so that they are used straight
 * from a read-only mapping of the file.
 *
 *   0    8  magic "SFMODEL\0"
 *   8    4  version (1)
 *   12   4  tensor count n
 *   16   8  header size H: bytes 0..H are covered by the header checksum
 *   24   8  data offset (H + 8 rounded up to 64)
 *   32   8  file size
 *   40  24  zero
 *   64 256  net_params (sf_net_params_encode)
 *   320  n * 64  index: per tensor
 *            u32 name offset (in the string table), u16 name length,
 *            u8 ndim, u8 dtype (1 = float32), i64 shape[4],
 *            u64 data offset, u64 data bytes, u64 XXH64 of the data
 *   ...  string table: names, each followed by NUL
 *   H    8  XXH64 of bytes 0..H
 *   data: tensors in index order, each at a multiple of 64, zero padding
 *
 * All integers little-endian.  The loader checks the header checksum and
 * every tensor's checksum (XXH64 runs at memory speed: a few milliseconds
 * for the official model), so a damaged file is never used. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "model_internal.h"
#include "sf_internal.h"

#define NATIVE_VERSION 1
#define PARAMS_AT 64
#define INDEX_AT (PARAMS_AT + SF_PARAMS_BYTES)
#define ENTRY_SIZE 64
#define DTYPE_F32 1

static uint64_t align64(uint64_t v)
{
    return (v + 63) & ~(uint64_t)63;
}

sf_status sf_model_save_native(const sf_model *m, const char *path, sf_error *err)
{
    size_t n = m->n_tensors, names = 0;
    for (size_t i = 0; i < n; i++)
        names += strlen(m->tensors[i].name) + 1;
    uint64_t hsize = INDEX_AT + (uint64_t)n * ENTRY_SIZE + names;
    uint64_t data_at = align64(hsize + 8);
    unsigned char *h = calloc(1, (size_t)data_at);
    if (!h)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", path);

    memcpy(h, SF_NATIVE_MAGIC, 8);
    sf_put_u32(h + 8, NATIVE_VERSION);
    sf_put_u32(h + 12, (uint32_t)n);
    sf_put_u64(h + 16, hsize);
    sf_put_u64(h + 24, data_at);
    sf_net_params_encode(&m->params, h + PARAMS_AT);
    uint64_t off = data_at, name_off = 0;
    unsigned char *strings = h + INDEX_AT + n * ENTRY_SIZE;
    for (size_t i = 0; i < n; i++) {
        const sf_tensor *t = &m->tensors[i];
        unsigned char *e = h + INDEX_AT + i * ENTRY_SIZE;
        size_t len = strlen(t->name);
        uint64_t bytes = (uint64_t)sf_tensor_numel(t) * sizeof(float);
        sf_put_u32(e, (uint32_t)name_off);
        sf_put_u16(e + 4, (uint16_t)len);
        e[6] = (unsigned char)t->ndim;
        e[7] = DTYPE_F32;
        for (int d = 0; d < t->ndim; d++)
            sf_put_u64(e + 8 + 8 * d, (uint64_t)t->shape[d]);
        sf_put_u64(e + 40, off);
        sf_put_u64(e + 48, bytes);
        sf_put_u64(e + 56, XXH64(t->data, (size_t)bytes, 0));
        memcpy(strings + name_off, t->name, len + 1);
        name_off += len + 1;
        off = align64(off + bytes);
    }
    /* The file ends right after the last tensor, without padding. */
    uint64_t file_size = n ? sf_get_u64(h + INDEX_AT + (n - 1) * ENTRY_SIZE + 40)
                                 + sf_get_u64(h + INDEX_AT + (n - 1) * ENTRY_SIZE + 48)
                           : data_at;
    sf_put_u64(h + 32, file_size);
    sf_put_u64(h + hsize, XXH64(h, (size_t)hsize, 0));

    /* Written beside the target and renamed over it, so that a reader
     * never sees half a model and `convert m.sfm -o m.sfm` does not
     * truncate the file its tensors are mapped from. */
    sf_atomic_file af;
    sf_status st = sf_atomic_file_open(&af, path, err);
    if (st != SF_OK) {
        free(h);
        return st;
    }
    static const unsigned char zeros[64];
    errno = 0;
    int ok = fwrite(h, 1, (size_t)data_at, af.fp) == data_at;
    uint64_t pos = data_at;
    for (size_t i = 0; ok && i < n; i++) {
        const unsigned char *e = h + INDEX_AT + i * ENTRY_SIZE;
        uint64_t at = sf_get_u64(e + 40), bytes = sf_get_u64(e + 48);
        ok = fwrite(zeros, 1, (size_t)(at - pos), af.fp) == at - pos
             && fwrite(m->tensors[i].data, 1, (size_t)bytes, af.fp) == bytes;
        pos = at + bytes;
    }
    free(h);
    return sf_atomic_file_commit(&af, ok, err);
}

sf_status sf_model_load_native_buffer(sf_model **out, const unsigned char *d, size_t size,
                                      const char *name, sf_error *err)
{
    *out = NULL;
    if (size < INDEX_AT)
        return sf_error_set(err, SF_ERR_TRUNCATED, "%s: native model header is cut off (%zu bytes)",
                            name, size);
    uint32_t version = sf_get_u32(d + 8), n = sf_get_u32(d + 12);
    if (version != NATIVE_VERSION)
        return sf_error_set(err, SF_ERR_VERSION, "%s: native model version %u (this library reads %d)",
                            name, version, NATIVE_VERSION);
    uint64_t hsize = sf_get_u64(d + 16), data_at = sf_get_u64(d + 24), file_size = sf_get_u64(d + 32);
    if (n > SF_MODEL_MAX_TENSORS)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: native model claims %u tensors", name, n);
    if (hsize < INDEX_AT + (uint64_t)n * ENTRY_SIZE || hsize > (uint64_t)1 << 30
        || data_at != align64(hsize + 8))
        return sf_error_set(err, SF_ERR_FORMAT, "%s: native model header sizes are inconsistent", name);
    if (file_size != size)
        return sf_error_set(err, file_size > size ? SF_ERR_TRUNCATED : SF_ERR_FORMAT,
                            "%s: native model should be %llu bytes, the file has %zu", name,
                            (unsigned long long)file_size, size);
    if (hsize + 8 > size)
        return sf_error_set(err, SF_ERR_TRUNCATED, "%s: native model header is cut off", name);
    if (XXH64(d, (size_t)hsize, 0) != sf_get_u64(d + hsize))
        return sf_error_set(err, SF_ERR_CHECKSUM, "%s: native model header checksum mismatch", name);

    sf_net_params p;
    sf_model *m = NULL;
    sf_status st = sf_net_params_decode(&p, d + PARAMS_AT, name, err);
    if (st || (st = sf_model_new(&m, &p, name, err)))
        return st;
    const char *strings = (const char *)d + INDEX_AT + (size_t)n * ENTRY_SIZE;
    size_t strings_len = (size_t)hsize - (INDEX_AT + (size_t)n * ENTRY_SIZE);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = d + INDEX_AT + (size_t)i * ENTRY_SIZE;
        uint32_t noff = sf_get_u32(e);
        uint16_t nlen = sf_get_u16(e + 4);
        if ((uint64_t)noff + nlen >= strings_len || strings[noff + nlen] != '\0'
            || memchr(strings + noff, '\0', nlen)) {
            st = sf_error_set(err, SF_ERR_FORMAT, "%s: native model index entry %u has a bad name",
                              name, i);
            break;
        }
        const char *tn = strings + noff;
        long k = sf_model_find(m, tn, nlen);
        if (k < 0) {
            st = sf_error_set(err, SF_ERR_FORMAT,
                              "%s: tensor '%.*s': not part of a %s FIRe network", name,
                              nlen > 120 ? 120 : (int)nlen, tn, p.architecture);
            break;
        }
        sf_tensor *t = &m->tensors[k];
        if (t->data) {
            st = sf_error_set(err, SF_ERR_FORMAT, "%s: tensor '%s': appears twice", name, t->name);
            break;
        }
        int same = e[6] == t->ndim;
        int64_t shape[SF_MODEL_MAX_DIMS] = { 0 };
        for (int dd = 0; dd < SF_MODEL_MAX_DIMS; dd++) {
            shape[dd] = (int64_t)sf_get_u64(e + 8 + 8 * dd);
            if (dd < t->ndim && shape[dd] != t->shape[dd])
                same = 0;
        }
        if (!same) {
            char a[96], b[96];
            st = sf_error_set(err, SF_ERR_FORMAT, "%s: tensor '%s': shape %s, expected %s", name,
                              t->name,
                              sf_shape_string(a, sizeof a, e[6] > 4 ? 4 : e[6], shape),
                              sf_shape_string(b, sizeof b, t->ndim, t->shape));
            break;
        }
        if (e[7] != DTYPE_F32) {
            st = sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: tensor '%s': unknown data type %u", name,
                              t->name, e[7]);
            break;
        }
        uint64_t at = sf_get_u64(e + 40), bytes = sf_get_u64(e + 48);
        if (bytes != (uint64_t)sf_tensor_numel(t) * sizeof(float) || at % 64 || at < data_at
            || at > size || bytes > size - at) {
            st = sf_error_set(err, SF_ERR_FORMAT, "%s: tensor '%s': data lies outside the file",
                              name, t->name);
            break;
        }
        if (XXH64(d + at, (size_t)bytes, 0) != sf_get_u64(e + 56)) {
            st = sf_error_set(err, SF_ERR_CHECKSUM, "%s: tensor '%s': checksum mismatch", name,
                              t->name);
            break;
        }
        t->data = (const float *)(const void *)(d + at);
    }
    for (size_t i = 0; !st && i < m->n_tensors; i++)
        if (!m->tensors[i].data)
            st = sf_error_set(err, SF_ERR_FORMAT, "%s: tensor '%s': missing", name,
                              m->tensors[i].name);
    if (!st)
        st = sf_model_seal(m, err);
    if (st) {
        sf_model_free(m);
        return st;
    }
    *out = m;
    return SF_OK;
}
