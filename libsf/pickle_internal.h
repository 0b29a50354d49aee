/* A reader for the pickles torch.save writes.  It builds a tree of plain
 * values and never executes anything: a global is only a name, and calling
 * one (REDUCE, NEWOBJ) gives a known structure for the few callables a
 * checkpoint needs (OrderedDict, tensor rebuilding) and an opaque object
 * for every other. */
#ifndef SF_PICKLE_INTERNAL_H
#define SF_PICKLE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sf_status.h"

/* Limits: generous for any checkpoint, small enough that a hostile pickle
 * costs bounded memory.  Every value is also paid for by input bytes. */
#define SF_PICKLE_MAX_VALUES ((uint32_t)1 << 22)
#define SF_PICKLE_MAX_STACK ((uint32_t)1 << 20)
#define SF_PICKLE_MAX_MARKS ((uint32_t)1 << 16)
#define SF_PICKLE_MAX_MEMO ((uint32_t)1 << 20)
#define SF_PICKLE_MAX_ITEMS ((uint32_t)1 << 24)
#define SF_PICKLE_MAX_LINE 1024
#define SF_PICKLE_MAX_NDIM 8

#define SF_PICKLE_NONE_ID UINT32_MAX /* "no value", e.g. a missing dict key */

typedef enum sf_pkind {
    SF_PK_NONE,
    SF_PK_BOOL,
    SF_PK_INT,
    SF_PK_FLOAT,
    SF_PK_STR,
    SF_PK_BYTES,
    SF_PK_TUPLE,
    SF_PK_LIST,    /* also sets and frozensets */
    SF_PK_DICT,    /* items hold key, value, key, value, ... */
    SF_PK_GLOBAL,  /* a module.name reference, never resolved */
    SF_PK_OBJECT,  /* the result of calling an unknown global: opaque */
    SF_PK_STORAGE, /* a torch storage (persistent id) */
    SF_PK_TENSOR,
    SF_PK_MARK     /* internal */
} sf_pkind;

/* Element types of torch storages. */
typedef enum sf_pdtype {
    SF_PDT_F32 = 1, SF_PDT_F64, SF_PDT_F16, SF_PDT_BF16, SF_PDT_I64, SF_PDT_I32, SF_PDT_I16,
    SF_PDT_I8, SF_PDT_U8, SF_PDT_BOOL, SF_PDT_C64, SF_PDT_C128
} sf_pdtype;

typedef struct sf_ptensor {
    uint32_t storage;   /* value id of an SF_PK_STORAGE */
    int ndim;
    int64_t offset;     /* in elements */
    int64_t shape[SF_PICKLE_MAX_NDIM];
    int64_t stride[SF_PICKLE_MAX_NDIM];
} sf_ptensor;

typedef struct sf_pvalue {
    uint8_t kind;       /* sf_pkind */
    uint8_t dtype;      /* storages: sf_pdtype */
    size_t offset;      /* of the opcode that made the value, for messages */
    union {
        int64_t i;      /* int, bool */
        double f;
        struct { const char *p; size_t n; } s; /* str, bytes: into the pickle */
        struct { uint32_t *items; uint32_t n, cap; } c; /* tuple, list, dict */
        struct { const char *mod, *name; uint32_t mod_n, name_n; } g; /* global, object */
        struct { const char *key; uint32_t key_n; int64_t numel; } st; /* storage */
        uint32_t tensor; /* index into sf_pickle.tensors */
    } u;
} sf_pvalue;

typedef struct sf_pickle {
    const unsigned char *data; /* must outlive the pickle */
    size_t size;
    const char *label;
    sf_pvalue *values;
    uint32_t n_values, cap_values;
    sf_ptensor *tensors;
    uint32_t n_tensors, cap_tensors;
    uint32_t root;
} sf_pickle;

/* Read one pickle (up to STOP).  On failure the message is
 * "<label> offset N: reason".  Free with sf_pickle_free even on failure. */
sf_status sf_pickle_load(sf_pickle *pk, const void *data, size_t size, const char *label,
                         sf_error *err);
void sf_pickle_free(sf_pickle *pk);

static inline const sf_pvalue *sf_pickle_value(const sf_pickle *pk, uint32_t id)
{
    return id < pk->n_values ? &pk->values[id] : NULL;
}

/* Value of the last item of dict whose key is the string key, or
 * SF_PICKLE_NONE_ID. */
uint32_t sf_pickle_dict_get(const sf_pickle *pk, uint32_t dict, const char *key);
/* Whether v is a str equal to s. */
int sf_pickle_str_eq(const sf_pvalue *v, const char *s);
/* Short type description for messages ("int", "str", "object numpy.dtype"). */
const char *sf_pickle_describe(const sf_pickle *pk, uint32_t id, char *buf, size_t n);
/* Bytes per element of a storage dtype, and its torch name. */
size_t sf_pdtype_size(int dtype);
const char *sf_pdtype_name(int dtype);

#endif
