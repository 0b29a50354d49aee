/* What a compute backend implements: the one libsf header a backend
 * includes.  Not installed: backends are built with sf.  A backend is a
 * shared object exporting one symbol, sf_backend_init, that returns a
 * table of functions; libsf checks the ABI version, asks the backend
 * whether it can run here, and never links it directly.
 *
 * Nor does a backend link libsf: of the library it may call only
 * sf_error_set (and the rest of sf_status.h), sf_backbone_layout_get and
 * sf_backbone_output_size, which it gets, hidden, from the convenience
 * library libsf/libsfbackend.la. */
#ifndef SF_BACKEND_IMPL_H
#define SF_BACKEND_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "sf_model.h"
#include "sf_network.h"
#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bump on any change to the structures below; libsf refuses other values.
 * The install directory carries it (pkglibdir/backends-<ABI>). */
#define SF_BACKEND_ABI_VERSION 2

/* The network a backend builds: parameters and a way to find tensors by
 * their state_dict name.  Everything stays valid until net_free. */
typedef struct sf_backend_net {
    const sf_net_params *params;
    const void *model;
    const sf_tensor *(*tensor)(const void *model, const char *name); /* NULL if absent */
    int threads;           /* 0: all cores */
    int precision;         /* sf_precision */
} sf_backend_net;

typedef struct sf_backend_iface {
    uint32_t abi_version;  /* SF_BACKEND_ABI_VERSION */
    uint32_t struct_size;  /* sizeof(sf_backend_iface) */
    const char *name;      /* "reference", "onednn" */
    const char *description;

    /* Optional (NULL: can always run).  0 means it cannot run on this
     * machine, with the reason in why; higher scores are preferred when the
     * user names no backend. */
    int (*score)(char *why, size_t why_size);

    /* Prepare the network (fold, reorder, allocate) once. */
    sf_status (*net_create)(const sf_backend_net *net, void **handle, sf_error *err);
    void (*net_free)(void *handle);

    /* image: 3 x height x width, normalised.  out: C x h x w of the stage,
     * sized by the caller with sf_backbone_output_size(). */
    sf_status (*backbone)(void *handle, const float *image, int height, int width,
                          int stage, float *out, sf_error *err);

    /* features: C x height x width (the backbone output).  superfeatures:
     * N x D.  attention: N x (height*width) of the last iteration, or NULL
     * when the caller does not want it. */
    sf_status (*lit)(void *handle, const float *features, int height, int width,
                     float *superfeatures, float *attention, sf_error *err);

    /* The precisions net_create accepts besides float32: bit
     * (1u << SF_PRECISION_x) each.  0: float32 only, and libsf refuses the
     * others before net_create.  A backend that has the bit may still
     * refuse at net_create (a CPU without the instructions). */
    uint32_t precisions;
} sf_backend_iface;

typedef const sf_backend_iface *(*sf_backend_init_fn)(void);

/* Exported by every backend (visibility default, C linkage). */
const sf_backend_iface *sf_backend_init(void);

#ifdef __cplusplus
}
#endif
#endif
