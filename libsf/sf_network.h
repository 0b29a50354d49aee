/* Running the FIRe network: compute backends (loaded with dlopen), the
 * backbone and LIT through them, and the cheap steps after LIT that libsf
 * does itself: strength, reduction, selection, global descriptor (spec
 * sections 3-5). */
#ifndef SF_NETWORK_H
#define SF_NETWORK_H

#include <stddef.h>
#include <stdint.h>

#include "sf_model.h"
#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- backbone geometry ---- */

/* Where the backbone stops: the outputs of torchvision's children. */
typedef enum sf_backbone_stage {
    SF_STAGE_CONV1 = 1,  /* conv1 + bn1 + relu, stride 2 */
    SF_STAGE_POOL = 2,   /* + max-pool, stride 4 */
    SF_STAGE_LAYER1 = 3,
    SF_STAGE_LAYER2 = 4, /* stride 8 */
    SF_STAGE_LAYER3 = 5  /* stride 16: the FIRe backbone output */
} sf_backbone_stage;

typedef enum sf_precision {
    SF_PRECISION_F32 = 0,
    SF_PRECISION_BF16 = 1  /* bfloat16 weights and activations, f32 accumulation */
} sf_precision;


typedef struct sf_backbone_layout {
    int bottleneck;   /* ResNet-50/101 */
    int blocks[3];    /* residual blocks in layer1..layer3 */
    int channels;     /* output channels of layer3 */
} sf_backbone_layout;

/* Fails with SF_ERR_UNSUPPORTED for an architecture sf cannot run. */
sf_status sf_backbone_layout_get(const sf_net_params *params, sf_backbone_layout *layout,
                                 sf_error *err);

/* Channels and size of a backbone stage's output (stage: 1 conv1 ...
 * 5 layer3, see sf_backbone_stage) for a height x width input.  Fails when
 * the input is too small to give a non-empty output. */
sf_status sf_backbone_output_size(const sf_net_params *params, int height, int width,
                                  int stage, int *channels, int *out_height,
                                  int *out_width, sf_error *err);

/* ---- backends ---- */

typedef struct sf_backend sf_backend;

typedef struct sf_backend_info {
    char name[64];
    char path[4096];
    char description[256];
    int score;            /* 0: cannot run here (see problem) */
    char problem[512];    /* why it cannot be used; empty when usable */
} sf_backend_info;

/* The directories searched, in order: search_path (a --backend-path flag,
 * colon-separated, may be NULL), then $SF_BACKEND_PATH, then the install
 * directory.  Writes at most max entries and the number found to *count. */
sf_status sf_backend_list(const char *search_path, sf_backend_info *infos, size_t max,
                          size_t *count, sf_error *err);

/* Load backend `name` ("reference", "onednn"), or the usable one with the
 * highest score when name is NULL or empty.  A missing module, a wrong ABI
 * version or a failed probe is an error that says which and where. */
sf_status sf_backend_open(sf_backend **out, const char *name, const char *search_path,
                          sf_error *err);
void sf_backend_close(sf_backend *backend);
const char *sf_backend_name(const sf_backend *backend);
const char *sf_backend_path(const sf_backend *backend);

/* ---- a model bound to a backend ---- */

typedef struct sf_network sf_network;

typedef struct sf_network_options {
    int threads;    /* 0: all cores */
    int precision;  /* 0 float32, 1 bfloat16 (where the backend has it) */
} sf_network_options;

/* The model must outlive the network. */
sf_status sf_network_create(sf_network **out, sf_backend *backend, const sf_model *model,
                            const sf_network_options *options, sf_error *err);
void sf_network_free(sf_network *net);
const sf_net_params *sf_network_params(const sf_network *net);

/* Run the backbone on a 3 x height x width image up to stage; out must hold
 * channels x h x w floats as sf_backbone_output_size gives them. */
sf_status sf_network_backbone(sf_network *net, const float *image, int height, int width,
                              int stage, float *out, sf_error *err);

/* LIT on a C x height x width feature map: superfeatures N x D, attention
 * N x (height*width) or NULL. */
sf_status sf_network_lit(sf_network *net, const float *features, int height, int width,
                         float *superfeatures, float *attention, sf_error *err);

/* ---- after LIT (no backend needed) ---- */

/* strength[n] = sqrt(sum_d S[n,d]^2 + 1e-10) */
void sf_superfeature_strength(const float *superfeatures, int n, int d, float *strength);

/* reduced[n] = W S[n] + b (W: out_dim x D); NULL weight copies S. */
void sf_superfeature_reduce(const float *superfeatures, int n, int d, const float *weight,
                            const float *bias, int out_dim, float *reduced);

/* Local features of one image, pooled over its scales. */
typedef struct sf_local_features {
    int count, dim;
    float *desc;      /* count x dim */
    float *strength;  /* count */
    float *scale;     /* count: the scale each came from */
    int32_t *index;   /* count: super-feature (template) index */
} sf_local_features;

/* Accumulates the reduced super-features of one image scale by scale and
 * keeps the strongest (spec section 5). */
typedef struct sf_selector sf_selector;
sf_status sf_selector_create(sf_selector **out, int dim, sf_error *err);
void sf_selector_free(sf_selector *sel);
void sf_selector_reset(sf_selector *sel);
sf_status sf_selector_add(sf_selector *sel, const float *reduced, const float *strength,
                          int n, double scale, sf_error *err);
/* Sort by strength descending (stable: scale order, then index, on ties)
 * and keep the first keep; result memory belongs to the selector until
 * the next reset. */
sf_status sf_selector_select(sf_selector *sel, int keep, sf_local_features *out,
                             sf_error *err);
/* g = l2n(sum over every added feature of reduced * strength), l2n(x) =
 * x / (||x|| + 1e-6); global must hold dim floats. */
void sf_selector_global(const sf_selector *sel, float *global);

/* ---- one image through the LIT stage ---- */

/* What LIT made of one scale, in buffers of the sf_lit_run, valid until
 * its next call. */
typedef struct sf_lit_scale {
    int n, dim, reduced_dim, height, width;
    const float *superfeatures; /* n x dim */
    const float *attention;     /* n x height x width, or NULL */
    const float *strength;      /* n */
    const float *reduced;       /* n x reduced_dim */
} sf_lit_scale;

/* LIT, strength, the model's reduction (when it has one) and selection,
 * scale by scale, for the network of model; with want_attention the
 * attention maps too. */
typedef struct sf_lit_run sf_lit_run;
sf_status sf_lit_run_create(sf_lit_run **out, sf_network *net, const sf_model *model,
                            int want_attention, sf_error *err);
void sf_lit_run_free(sf_lit_run *run);
/* Forget the scales given so far: the next image starts. */
void sf_lit_run_reset(sf_lit_run *run);
int sf_lit_run_reduced_dim(const sf_lit_run *run);
/* One scale's channels x height x width feature map (the backbone's
 * channels).  out describes what LIT made of it. */
sf_status sf_lit_run_scale(sf_lit_run *run, const float *features, int channels, int height,
                           int width, double scale, sf_lit_scale *out, sf_error *err);
/* The keep strongest features over the scales given since the reset
 * (memory of the run's until the next reset), and the global descriptor
 * into global (reduced_dim floats) unless it is NULL. */
sf_status sf_lit_run_select(sf_lit_run *run, int keep, sf_local_features *out, float *global,
                            sf_error *err);

#ifdef __cplusplus
}
#endif
#endif
