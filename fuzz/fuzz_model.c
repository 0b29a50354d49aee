/* Fuzz target for the checkpoint readers (ZIP, pickle, net_params, tensor
 * checks, native format).  Besides not crashing or leaking: a failure
 * leaves no model and names the input; a success has every tensor of its
 * architecture with data.
 *
 * Mutating a pickle inside a ZIP breaks its CRC, so an input that starts
 * like a pickle (0x80) is wrapped here in a fresh archive with the storages
 * the corpus's pickles use: the pickle reader gets fuzzed directly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_internal.h"
#include "sf_model.h"
#include "zip_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct member {
    char name[32];
    const uint8_t *data;
    size_t size;
    uint32_t crc;
} member;

/* A stored ZIP of the members, without ZIP64. */
static uint8_t *zip(const member *m, size_t n, size_t *size)
{
    size_t total = 22;
    for (size_t i = 0; i < n; i++)
        total += 30 + 46 + 2 * strlen(m[i].name) + m[i].size;
    uint8_t *z = malloc(total), *p = z;
    uint32_t *offsets = malloc(n * sizeof *offsets);
    if (!z || !offsets)
        abort();
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(m[i].name);
        offsets[i] = (uint32_t)(p - z);
        memset(p, 0, 30);
        sf_put_u32(p, 0x04034b50);
        sf_put_u32(p + 14, m[i].crc);
        sf_put_u32(p + 18, (uint32_t)m[i].size);
        sf_put_u32(p + 22, (uint32_t)m[i].size);
        sf_put_u16(p + 26, (uint16_t)nl);
        memcpy(p + 30, m[i].name, nl);
        if (m[i].size)
            memcpy(p + 30 + nl, m[i].data, m[i].size);
        p += 30 + nl + m[i].size;
    }
    uint8_t *cd = p;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(m[i].name);
        memset(p, 0, 46);
        sf_put_u32(p, 0x02014b50);
        sf_put_u32(p + 16, m[i].crc);
        sf_put_u32(p + 20, (uint32_t)m[i].size);
        sf_put_u32(p + 24, (uint32_t)m[i].size);
        sf_put_u16(p + 28, (uint16_t)nl);
        sf_put_u32(p + 42, offsets[i]);
        memcpy(p + 46, m[i].name, nl);
        p += 46 + nl;
    }
    memset(p, 0, 22);
    sf_put_u32(p, 0x06054b50);
    sf_put_u16(p + 8, (uint16_t)n);
    sf_put_u16(p + 10, (uint16_t)n);
    sf_put_u32(p + 12, (uint32_t)(p - cd));
    sf_put_u32(p + 16, (uint32_t)(cd - z));
    *size = (size_t)(p + 22 - z);
    free(offsets);
    return z;
}

/* The pickle as archive/data.pkl, with the storages "shared" (zeros, as
 * many floats as the largest tensor of the corpus's ResNet-18) and
 * "0".."39" (one int64 each, for num_batches_tracked). */
#define SHARED_FLOATS (256 * 256 * 3 * 3)
static uint8_t *wrap_pickle(const uint8_t *pkl, size_t n, size_t *size)
{
    static const float shared[SHARED_FLOATS];
    static const uint8_t count[8] = { 7 };
    static uint32_t shared_crc, count_crc;
    if (!shared_crc) { /* computed once: they never change */
        shared_crc = sf_crc32(0, shared, sizeof shared);
        count_crc = sf_crc32(0, count, sizeof count);
    }
    member m[42];
    strcpy(m[0].name, "archive/data.pkl");
    m[0].data = pkl;
    m[0].size = n;
    m[0].crc = sf_crc32(0, pkl, n);
    strcpy(m[1].name, "archive/data/shared");
    m[1].data = (const uint8_t *)shared;
    m[1].size = sizeof shared;
    m[1].crc = shared_crc;
    for (int i = 0; i < 40; i++) {
        snprintf(m[2 + i].name, sizeof m[2 + i].name, "archive/data/%d", i);
        m[2 + i].data = count;
        m[2 + i].size = 8;
        m[2 + i].crc = count_crc;
    }
    return zip(m, 42, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sf_model *m = (sf_model *)&m;
    sf_error err;
    uint8_t *wrapped = NULL;
    if (size > 0 && data[0] == 0x80 && size < ((size_t)1 << 24))
        data = wrapped = wrap_pickle(data, size, &size);
    sf_status st = sf_model_load_buffer(&m, data, size, "fuzz", &err);
    free(wrapped);
    if (st != SF_OK) {
        if (m != NULL || err.status != st || strncmp(err.message, "fuzz: ", 6) != 0)
            abort();
        return 0;
    }
    const sf_net_params *p = sf_model_params(m);
    if (sf_net_params_backbone_channels(p) == 0 || sf_model_tensor_count(m) == 0)
        abort();
    volatile float sink = 0;
    for (size_t i = 0; i < sf_model_tensor_count(m); i++) {
        const sf_tensor *t = sf_model_tensor_at(m, i);
        if (!t->data || sf_model_tensor(m, t->name) != t)
            abort();
        /* Touch the first and last element of every tensor. */
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++)
            n *= (size_t)t->shape[d];
        sink += t->data[0] + t->data[n - 1];
    }
    (void)sink;
    sf_model_free(m);
    return 0;
}
