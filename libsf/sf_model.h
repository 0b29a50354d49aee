/* FIRe models: the official PyTorch checkpoint (fire.pth, read without
 * Python and without executing anything), a native format that loads with
 * mmap, and random-weight models for demos and tests (spec section 9). */
#ifndef SF_MODEL_H
#define SF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_MODEL_MAX_SCALES 16
#define SF_MODEL_MAX_DIMS 4

/* net_params of the checkpoint, as init_network receives them. */
typedef struct sf_net_params {
    char architecture[32];   /* "resnet18", "resnet34", "resnet50", "resnet101" */
    int skip_layer;          /* 1: the backbone ends after layer3 (the only one supported) */
    int lit_T, lit_N, lit_dim;
    int reduction_dim;       /* dim_reduction.dim; 0 = no reduction layer */
    float mean[3], std[3];   /* runtime.mean_std */
    int image_size;          /* runtime.image_size */
    int features_num;        /* runtime.features_num */
    double scales[SF_MODEL_MAX_SCALES]; /* runtime.scales */
    int n_scales;
} sf_net_params;

/* One float32 parameter, C order.  Memory belongs to the model.  Shapes
 * are those of the checkpoint: lit.templates_init is [1, N, dim]. */
typedef struct sf_tensor {
    const char *name;        /* state_dict name, e.g. "features.4.0.conv1.weight" */
    int ndim;
    int64_t shape[SF_MODEL_MAX_DIMS];
    const float *data;
} sf_tensor;

typedef struct sf_model sf_model;

/* Load a checkpoint: a PyTorch zip archive (torch.save, official layout) or
 * the native format, told apart by their first bytes.  The model is checked
 * against its architecture: every tensor the network needs is present with
 * its shape, and no unknown tensor is.  Errors name the file and the part
 * (zip member, pickle offset, tensor name) and the reason. */
sf_status sf_model_load(sf_model **out, const char *path, sf_error *err);
/* The same from memory (copied); name is used in messages. */
sf_status sf_model_load_buffer(sf_model **out, const void *data, size_t size,
                               const char *name, sf_error *err);
void sf_model_free(sf_model *model);

/* A model with the architecture of params and random weights drawn from
 * seed (the same seed gives the same model on every machine), scaled so
 * that activations stay in a sensible range through the network. */
sf_status sf_model_create_random(sf_model **out, const sf_net_params *params,
                                 uint64_t seed, sf_error *err);

/* Write the native format: a header, the parameters and an index, tensors
 * 64-byte aligned so that loading maps the file instead of reading it. */
sf_status sf_model_save_native(const sf_model *model, const char *path, sf_error *err);

const sf_net_params *sf_model_params(const sf_model *model);
/* Tensors in state_dict order (features, dim_reduction, lit), whatever the
 * order in the file; num_batches_tracked entries are not kept. */
size_t sf_model_tensor_count(const sf_model *model);
const sf_tensor *sf_model_tensor_at(const sf_model *model, size_t i);
/* NULL when absent. */
const sf_tensor *sf_model_tensor(const sf_model *model, const char *name);
/* Number of learnable parameters, as sum(p.numel() for p in
 * net.parameters()) counts them: BatchNorm running statistics and
 * num_batches_tracked excluded.  This is the manifests' model_num_parameters
 * (3071488 for golden/r18-small, 13138624 for r50-fire). */
uint64_t sf_model_parameter_count(const sf_model *model);
/* XXH64 over the net_params and every tensor's name, shape and data in
 * name order: equal for a checkpoint and its native conversion.  (Exactly:
 * the 256-byte native encoding of the params, then per tensor its name with
 * the NUL, ndim as u32, the dims as u64, the float32 data; little-endian.) */
uint64_t sf_model_checksum(const sf_model *model);

/* Official defaults: ResNet-50, T 6, N 256, dim 1024, reduction 128,
 * image size 1024, 1000 features, the seven official scales. */
void sf_net_params_init(sf_net_params *params);
/* Output channels of the truncated backbone (256 or 1024). */
int sf_net_params_backbone_channels(const sf_net_params *params);

#ifdef __cplusplus
}
#endif
#endif
