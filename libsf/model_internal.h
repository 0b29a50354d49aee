/* Shared by model.c (checkpoints), model_native.c and model_random.c. */
#ifndef SF_MODEL_INTERNAL_H
#define SF_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sf_model.h"

/* Tensors are used in place from the file, and the formats are
 * little-endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libsf maps little-endian model files in place and needs a little-endian host"
#endif

/* What a state_dict entry is. */
enum {
    SF_LAYOUT_PARAM,  /* learnable: counted by sf_model_parameter_count */
    SF_LAYOUT_STAT,   /* BatchNorm running_mean / running_var */
    SF_LAYOUT_COUNT   /* num_batches_tracked: int64 scalar, accepted and dropped */
};

#define SF_LAYOUT_NAME_MAX 64

typedef struct sf_layout_entry {
    char name[SF_LAYOUT_NAME_MAX];
    int kind;
    int ndim;
    int64_t shape[SF_MODEL_MAX_DIMS];
} sf_layout_entry;

/* Parameters outside these are refused (they also bound every allocation
 * a random model makes). */
#define SF_MODEL_MAX_T 256
#define SF_MODEL_MAX_N 8192
#define SF_MODEL_MAX_DIM 8192
#define SF_MODEL_MAX_TENSORS 4096

/* Size of the encoded net_params (native header, checksum input). */
#define SF_PARAMS_BYTES 256

struct sf_model {
    sf_net_params params;
    size_t n_tensors;
    sf_tensor *tensors;   /* in layout order; names point into names */
    int *kinds;           /* SF_LAYOUT_PARAM or SF_LAYOUT_STAT per tensor */
    float **owned;        /* per tensor: its data when the model allocated it, else NULL */
    char *names;
    void *base;           /* the file the other tensors point into */
    size_t base_size;
    int base_mapped;      /* base came from mmap (else malloc, or none) */
    uint64_t checksum;
    uint64_t n_params;
};

/* Check params (label names the source in messages). */
sf_status sf_net_params_check(const sf_net_params *p, const char *label, sf_error *err);

/* Every state_dict entry of the network, in the order torch writes them.
 * *out is malloc'ed. */
sf_status sf_model_layout(const sf_net_params *p, sf_layout_entry **out, size_t *n,
                          const char *label, sf_error *err);

/* A model whose tensors (weights and running statistics) have names and
 * shapes from the layout and no data yet. */
sf_status sf_model_new(sf_model **out, const sf_net_params *p, const char *label, sf_error *err);

/* Index of the tensor called name (len bytes), or -1. */
long sf_model_find(const sf_model *m, const char *name, size_t len);

/* Compute the checksum and parameter count once every tensor has data. */
sf_status sf_model_seal(sf_model *m, sf_error *err);

/* Fixed little-endian encoding of net_params, SF_PARAMS_BYTES long. */
void sf_net_params_encode(const sf_net_params *p, unsigned char *out);
/* Its inverse; does not validate (sf_model_new does). */
sf_status sf_net_params_decode(sf_net_params *p, const unsigned char *in, const char *label,
                               sf_error *err);

size_t sf_tensor_numel(const sf_tensor *t);
/* "[64, 3, 7, 7]" */
const char *sf_shape_string(char *buf, size_t n, int ndim, const int64_t *shape);

/* The native loader; tensors point into data, which the caller keeps. */
sf_status sf_model_load_native_buffer(sf_model **out, const unsigned char *data, size_t size,
                                      const char *name, sf_error *err);

#define SF_NATIVE_MAGIC "SFMODEL\0"

#endif
