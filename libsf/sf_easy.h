/* The short way in: a model opened once, an image file or buffer turned
 * into its super-features and global descriptor, and an index queried
 * with them.  Made of the calls the programs make (sf-decode, sf-extract,
 * sf-lit, sf-match -i), with the same settings, so that it gives their
 * numbers bit for bit.  man: sf_easy(3).
 *
 * Threads: a handle is used by one thread at a time; different handles
 * may be used at the same time by different threads.  Nothing here
 * prints, exits, or reads the environment other than SF_BACKEND_PATH
 * (sf_backend_open). */
#ifndef SF_EASY_H
#define SF_EASY_H

#include <stddef.h>
#include <stdint.h>

#include "sf_config.h"
#include "sf_hits.h"
#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Images to features ---- */

/* A model bound to a compute backend, with the decoding and selection
 * settings of a configuration. */
typedef struct sf_extractor sf_extractor;

typedef struct sf_extractor_options {
    /* The checkpoint: fire.pth, or a native copy (sf-model convert).
     * NULL: the configuration's compute.model. */
    const char *model;
    /* "reference", "onednn", ...; NULL or "": the configuration's
     * compute.backend, and when that is empty too the usable backend with
     * the highest score. */
    const char *backend;
    /* Directories searched for backends before $SF_BACKEND_PATH and the
     * install directory (colon-separated), or NULL. */
    const char *backend_path;
    /* Settings: image.*, features.*, compute.* (sf-config(5)).  NULL: the
     * official ones (sf_config_init).  Copied. */
    const sf_config *config;
    /* A YAML preset applied on top of config, as --config FILE, or NULL. */
    const char *preset;
} sf_extractor_options;

/* All NULL: the official settings, the configuration's model. */
void sf_extractor_options_init(sf_extractor_options *options);

/* Load the model, open the backend, set up the network.  Errors name the
 * file or the backend and say why; *out is NULL then. */
sf_status sf_extractor_open(sf_extractor **out, const sf_extractor_options *options,
                            sf_error *err);
/* NULL does nothing. */
void sf_extractor_free(sf_extractor *extractor);

/* The settings in use (the preset applied); owned by the extractor. */
const sf_config *sf_extractor_config(const sf_extractor *extractor);
/* Dimension of the descriptors and of the global descriptor. */
size_t sf_extractor_dim(const sf_extractor *extractor);
/* Super-features kept per image: features.keep, else the model's own
 * number. */
int sf_extractor_keep(const sf_extractor *extractor);
/* The backend's name ("onednn"). */
const char *sf_extractor_backend(const sf_extractor *extractor);

/* The super-features of one image, strongest first, as sf-lit --global
 * writes them (local_desc, local_strength, local_scale, local_index,
 * global records).  The arrays are the caller's: one block, freed by
 * sf_features_release. */
typedef struct sf_features {
    size_t count;          /* super-features kept (at most the keep number) */
    size_t dim;            /* descriptor dimension */
    float *desc;           /* count x dim, row after row, L2-normalised */
    float *strength;       /* count, descending */
    float *scale;          /* count: the pyramid scale each came from */
    int32_t *index;        /* count: the template (super-feature) index */
    float *global;         /* dim: the global descriptor */
    int width, height;     /* the image the network saw (after shrinking) */
    int source_width;      /* the decoded file (after rotation) */
    int source_height;
    /* What made the descriptors (model, settings): an index holds the
     * same value for its images (sf_index_features), and sf_finder_query
     * refuses descriptors made otherwise. */
    uint64_t made_with;
} sf_features;

/* Decode the image file at path (any format libvips reads; a .npy file is
 * taken as an image already decoded, as sf-decode takes it) and compute
 * its features into *out, which the caller releases.  Errors name the
 * file; *out is empty then. */
sf_status sf_extractor_run_file(sf_extractor *extractor, const char *path, sf_features *out,
                                sf_error *err);
/* The same for an image file's bytes in memory; name is used in
 * messages. */
sf_status sf_extractor_run_buffer(sf_extractor *extractor, const void *data, size_t size,
                                  const char *name, sf_features *out, sf_error *err);

/* Free the arrays and empty *features; an empty one, or NULL, is left
 * as it is. */
void sf_features_release(sf_features *features);

/* ---- Features to matching images ---- */

/* An ASMK index (sf-index(5)) opened for queries, with its codebook. */
typedef struct sf_finder sf_finder;

typedef struct sf_finder_options {
    const char *codebook; /* NULL: the codebook the index names */
    int ma;               /* nearest words per query descriptor; 0: 5 */
    int threads;          /* search threads; 0: all cores where it pays */
} sf_finder_options;

/* All 0: the index's codebook, the official settings. */
void sf_finder_options_init(sf_finder_options *options);

/* Open the index at path (options may be NULL).  Its last committed state
 * is searched; open again to see later additions. */
sf_status sf_finder_open(sf_finder **out, const char *path, const sf_finder_options *options,
                         sf_error *err);
/* NULL does nothing. */
void sf_finder_free(sf_finder *finder);
/* Live images in the index. */
size_t sf_finder_count(const sf_finder *finder);

/* The top_k images (0: all) of the index that best match features, best
 * first, as sf-match -i ranks them, into hits (sf_hit_list_init'ed by the
 * caller; its earlier contents are replaced).  Features made another way
 * than the index's images (made_with differs, both known) are
 * SF_ERR_MISMATCH; features of another dimension than the codebook, or
 * with values that are not finite, SF_ERR_INVALID_DATA. */
sf_status sf_finder_query(sf_finder *finder, const sf_features *features, size_t top_k,
                          sf_hit_list *hits, sf_error *err);

#ifdef __cplusplus
}
#endif
#endif
