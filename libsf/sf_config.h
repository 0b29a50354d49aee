/* Settings shared by all programs: defaults, YAML presets, overrides.
 * Keys are dotted paths ("image.size"); man/sf-config.5 lists them all. */
#ifndef SF_CONFIG_H
#define SF_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_CONFIG_MAX_SCALES 16
#define SF_CONFIG_MAX_STRING 1024

typedef struct sf_config {
    /* image: decoding and the multi-scale pyramid (spec sections 1-2) */
    int image_size;                        /* image.size: long side; 0 = the model's (1024) */
    float mean[3];                         /* image.mean */
    float std[3];                          /* image.std */
    double scales[SF_CONFIG_MAX_SCALES];   /* image.scales */
    int n_scales;
    int autorotate;                        /* image.autorotate: apply EXIF orientation */
    uint64_t max_pixels;                   /* image.max_pixels: refuse larger files */
    uint64_t max_bytes;                    /* image.max_bytes: read no more of a file */
    uint64_t max_memory;                   /* image.max_memory: refuse images needing more */

    /* features: selection of local super-features (spec section 5) */
    int features_num;                      /* features.keep: 0 = the model's runtime.features_num */
    int global;                            /* features.global: also emit the global descriptor */

    /* compute */
    char backend[SF_CONFIG_MAX_STRING];    /* compute.backend: "" = best available */
    int threads;                           /* compute.threads: 0 = all cores */
    char model[SF_CONFIG_MAX_STRING];      /* compute.model: checkpoint path */
    char precision[8];                     /* compute.precision: "f32" or "bf16" */

    /* asmk: codebook and index (spec section 7) */
    int codebook_size;                     /* asmk.codebook_size: 0 = sf_codebook_default_size */
    int kmeans_iterations;                 /* asmk.kmeans_iterations: 10 */
    uint64_t kmeans_seed;                  /* asmk.kmeans_seed */
    int ma_database;                       /* asmk.multiple_assignment_database: 1 */
    int ma_query;                          /* asmk.multiple_assignment_query: 5 */
    int binary;                            /* asmk.binary: true */
    double alpha;                          /* asmk.alpha: 3.0 */
    double threshold;                      /* asmk.threshold: 0.0 */
    int idf;                               /* asmk.idf: false */
} sf_config;

/* The official FIRe evaluation settings. */
void sf_config_init(sf_config *cfg);

/* image.size when neither the model, a preset nor a flag gives one. */
#define SF_CONFIG_DEFAULT_IMAGE_SIZE 1024

struct sf_net_params;
/* Settings left at 0 take the model's own values: image.size its
 * runtime.image_size, features.keep its runtime.features_num.  So the
 * precedence is model < preset < flags, decided here once for every
 * program.  params may be NULL (no model): image.size 0 then becomes
 * SF_CONFIG_DEFAULT_IMAGE_SIZE and features.keep stays 0. */
void sf_config_use_model(sf_config *cfg, const struct sf_net_params *params);

/* Apply a YAML preset on top of cfg.  Unknown keys, wrong types and values
 * out of range are errors naming the file, the line and the key; cfg is left
 * unchanged on error. */
sf_status sf_config_load_file(sf_config *cfg, const char *path, sf_error *err);
/* The same from memory; name is used in messages. */
sf_status sf_config_load_buffer(sf_config *cfg, const char *data, size_t size,
                                const char *name, sf_error *err);

/* Set one key from text, as a command-line flag would ("image.size", "512";
 * lists are comma-separated: "2,1,0.5").  Same checks as the YAML loader. */
sf_status sf_config_set(sf_config *cfg, const char *key, const char *value,
                        sf_error *err);

/* Write cfg as YAML that sf_config_load_file reads back to the same values. */
sf_status sf_config_write(const sf_config *cfg, FILE *fp, sf_error *err);

#ifdef __cplusplus
}
#endif
#endif
