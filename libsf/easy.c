/* sf_easy.h: the calls of sf-decode, sf-extract, sf-lit and sf-match -i,
 * one image at a time, without a stream between them. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "sf_internal.h"
#include "sf_easy.h"

struct sf_extractor {
    sf_config config;
    sf_model *model;
    sf_backend *backend;
    sf_network *net;
    sf_lit_run *run;
    sf_pyramid *pyramid;
    sf_decode_options decode;
    int precision;
    int keep;
    size_t dim;
    float *fmap;        /* one scale's backbone output, kept between images */
    size_t fmap_floats;
    sf_provenance made; /* what sf-lit writes for every image */
};

void sf_extractor_options_init(sf_extractor_options *options)
{
    memset(options, 0, sizeof *options);
}

void sf_extractor_free(sf_extractor *x)
{
    if (!x)
        return;
    free(x->fmap);
    sf_pyramid_free(x->pyramid);
    sf_lit_run_free(x->run);
    sf_network_free(x->net);
    sf_backend_close(x->backend);
    sf_model_free(x->model);
    free(x);
}

/* The settings as the programs read them: the configuration, then the
 * preset on top. */
static sf_status extractor_settings(sf_extractor *x, const sf_extractor_options *o,
                                    sf_error *err)
{
    if (o->config)
        x->config = *o->config;
    else
        sf_config_init(&x->config);
    if (o->preset && sf_config_load_file(&x->config, o->preset, err) != SF_OK)
        return err->status;
    if (strcmp(x->config.precision, "f32") == 0)
        x->precision = SF_PRECISION_F32;
    else if (strcmp(x->config.precision, "bf16") == 0)
        x->precision = SF_PRECISION_BF16;
    else
        return sf_error_set(err, SF_ERR_CONFIG,
                            "compute.precision: expected f32 or bf16, got '%s'",
                            x->config.precision);
    const sf_config *c = &x->config;
    x->decode.size = c->image_size;
    x->decode.autorotate = c->autorotate;
    x->decode.max_pixels = c->max_pixels;
    x->decode.max_bytes = c->max_bytes;
    x->decode.max_memory = c->max_memory;
    x->decode.scales = c->scales;
    x->decode.n_scales = c->n_scales;
    return SF_OK;
}

sf_status sf_extractor_open(sf_extractor **out, const sf_extractor_options *options,
                            sf_error *err)
{
    sf_extractor_options none;
    if (!out)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "sf_extractor_open: out is NULL");
    *out = NULL;
    if (!options) {
        sf_extractor_options_init(&none);
        options = &none;
    }
    sf_extractor *x = calloc(1, sizeof *x);
    if (!x)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    sf_status st = extractor_settings(x, options, err);
    const char *model = options->model ? options->model : x->config.model;
    const char *backend =
        options->backend && *options->backend ? options->backend : x->config.backend;
    if (st == SF_OK && !*model)
        st = sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                          "no model: name a checkpoint (fire.pth, or sf-model random -o FILE)");
    if (st == SF_OK)
        st = sf_image_library_init(err);
    if (st == SF_OK)
        st = sf_model_load(&x->model, model, err);
    if (st == SF_OK) {
        /* Settings left at 0 take the model's, as sf-decode -m and sf-lit do. */
        sf_config_use_model(&x->config, sf_model_params(x->model));
        x->decode.size = x->config.image_size;
    }
    if (st == SF_OK)
        st = sf_backend_open(&x->backend, backend, options->backend_path, err);
    if (st == SF_OK) {
        sf_network_options no = { .threads = x->config.threads, .precision = x->precision };
        sf_error why;
        if ((st = sf_network_create(&x->net, x->backend, x->model, &no, &why)) != SF_OK)
            sf_error_set(err, st, "%s: %s", sf_backend_name(x->backend), why.message);
    }
    if (st == SF_OK)
        st = sf_lit_run_create(&x->run, x->net, x->model, 0, err);
    if (st == SF_OK)
        st = sf_pyramid_create(x->config.scales, x->config.n_scales, x->config.mean,
                               x->config.std, &x->pyramid, err);
    if (st != SF_OK) {
        sf_extractor_free(x);
        return st;
    }
    const sf_net_params *p = sf_model_params(x->model);
    x->keep = x->config.features_num > 0 ? x->config.features_num : p->features_num;
    x->dim = (size_t)sf_lit_run_reduced_dim(x->run);
    /* The provenance sf-decode | sf-extract | sf-lit give an image. */
    const sf_config *c = &x->config;
    sf_provenance d = { .stage = SF_STAGE_DECODE };
    d.decode = sf_provenance_decode_settings(c->image_size, c->mean, c->std, c->scales,
                                             c->n_scales);
    uint64_t sum = sf_model_checksum(x->model);
    sf_provenance e = sf_provenance_after(
        &d, SF_STAGE_EXTRACT, sum, sf_provenance_compute_settings(x->precision, SF_STAGE_LAYER3));
    x->made = sf_provenance_after(&e, SF_STAGE_LIT, sum,
                                  sf_provenance_compute_settings(x->precision, x->keep));
    *out = x;
    return SF_OK;
}

const sf_config *sf_extractor_config(const sf_extractor *x)
{
    return &x->config;
}

size_t sf_extractor_dim(const sf_extractor *x)
{
    return x->dim;
}

int sf_extractor_keep(const sf_extractor *x)
{
    return x->keep;
}

const char *sf_extractor_backend(const sf_extractor *x)
{
    return sf_backend_name(x->backend);
}

void sf_features_release(sf_features *f)
{
    if (!f)
        return;
    free(f->desc);
    memset(f, 0, sizeof *f);
}

/* One scale of the pyramid through the backbone (sf-extract) and LIT
 * (sf-lit). */
static sf_status run_level(sf_extractor *x, const char *name, int i, sf_error *err)
{
    const float *level;
    int h, w, c, oh, ow;
    double scale = x->config.scales[i];
    sf_error why;
    sf_status st = sf_pyramid_level(x->pyramid, i, &level, &h, &w, err);
    if (st != SF_OK)
        return st;
    if (h > 1 << 16 || w > 1 << 16)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: scale %g: larger than 65536 pixels a side",
                            name, scale);
    st = sf_backbone_output_size(sf_network_params(x->net), h, w, SF_STAGE_LAYER3, &c, &oh, &ow,
                                 &why);
    if (st != SF_OK)
        return sf_error_set(err, st, "%s: scale %g: %s", name, scale, why.message);
    size_t n = (size_t)c * (size_t)oh * (size_t)ow;
    if (n > x->fmap_floats) {
        float *f = realloc(x->fmap, n * sizeof *f);
        if (!f)
            return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for a %dx%dx%d feature map",
                                name, c, oh, ow);
        x->fmap = f;
        x->fmap_floats = n;
    }
    st = sf_network_backbone(x->net, level, h, w, SF_STAGE_LAYER3, x->fmap, &why);
    if (st != SF_OK)
        return sf_error_set(err, st, "%s: scale %g: %s", name, scale, why.message);
    sf_lit_scale ls;
    st = sf_lit_run_scale(x->run, x->fmap, c, oh, ow, scale, &ls, &why);
    if (st != SF_OK)
        return sf_error_set(err, st, "%s: scale %g: %s", name, scale, why.message);
    return SF_OK;
}

/* The selected features and the global descriptor, copied into one block
 * the caller owns. */
static sf_status copy_features(sf_extractor *x, const char *name, sf_features *out,
                               sf_error *err)
{
    sf_local_features lf;
    float *global = malloc(x->dim * sizeof *global);
    if (!global)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    sf_error why;
    sf_status st = sf_lit_run_select(x->run, x->keep, &lf, global, &why);
    if (st != SF_OK) {
        free(global);
        return sf_error_set(err, st, "%s: %s", name, why.message);
    }
    size_t k = (size_t)lf.count, d = (size_t)lf.dim;
    /* desc, strength, scale, index, global: all 4-byte elements. */
    size_t floats = k * d + 3 * k + x->dim;
    float *block = malloc((floats ? floats : 1) * sizeof *block);
    if (!block) {
        free(global);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for %zu features", name, k);
    }
    out->count = k;
    out->dim = d;
    out->desc = block;
    out->strength = block + k * d;
    out->scale = out->strength + k;
    out->index = (int32_t *)(void *)(out->scale + k);
    out->global = out->scale + 2 * k;
    memcpy(out->desc, lf.desc, k * d * sizeof(float));
    memcpy(out->strength, lf.strength, k * sizeof(float));
    memcpy(out->scale, lf.scale, k * sizeof(float));
    memcpy(out->index, lf.index, k * sizeof(int32_t));
    memcpy(out->global, global, x->dim * sizeof(float));
    out->made_with = sf_provenance_features(&x->made);
    free(global);
    return SF_OK;
}

/* img (or tensor, a .npy's normalised array) through the pyramid, the
 * network and the selection; both are released here. */
static sf_status run_image(sf_extractor *x, const char *name, sf_rgb_image *img, float *tensor,
                           sf_features *out, sf_error *err)
{
    sf_status st;
    if (tensor)
        st = sf_pyramid_set_tensor(x->pyramid, name, tensor, img->width, img->height, err);
    else
        st = sf_pyramid_set_rgb(x->pyramid, name, img->pixels, img->width, img->height, err);
    free(tensor);
    out->width = img->width;
    out->height = img->height;
    out->source_width = img->source_width;
    out->source_height = img->source_height;
    sf_rgb_image_release(img);
    sf_lit_run_reset(x->run);
    for (int i = 0; st == SF_OK && i < x->config.n_scales; i++)
        st = run_level(x, name, i, err);
    sf_pyramid_clear(x->pyramid);
    if (st == SF_OK)
        st = copy_features(x, name, out, err);
    sf_lit_run_reset(x->run);
    if (st != SF_OK)
        memset(out, 0, sizeof *out);
    return st;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

sf_status sf_extractor_run_file(sf_extractor *x, const char *path, sf_features *out,
                                sf_error *err)
{
    if (!out)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "sf_extractor_run_file: out is NULL");
    memset(out, 0, sizeof *out);
    if (!x || !path)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "sf_extractor_run_file: no extractor or no path");
    sf_rgb_image img;
    float *tensor = NULL;
    sf_status st = has_suffix(path, ".npy")
                       ? sf_image_load_npy(path, &x->decode, &img, &tensor, err)
                       : sf_image_load_file(path, &x->decode, &img, err);
    if (st != SF_OK)
        return st;
    return run_image(x, path, &img, tensor, out, err);
}

sf_status sf_extractor_run_buffer(sf_extractor *x, const void *data, size_t size,
                                  const char *name, sf_features *out, sf_error *err)
{
    if (!out)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "sf_extractor_run_buffer: out is NULL");
    memset(out, 0, sizeof *out);
    if (!name)
        name = "<buffer>";
    if (!x || (!data && size))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: sf_extractor_run_buffer: no extractor or no data", name);
    sf_rgb_image img;
    sf_status st = sf_image_load_buffer(data, size, name, &x->decode, &img, err);
    if (st != SF_OK)
        return st;
    return run_image(x, name, &img, NULL, out, err);
}

/* ---- Queries ---- */

struct sf_finder {
    sf_index *index;
    sf_codebook *codebook;
    sf_asmk_codebook *acb;
    sf_index_searcher *searcher;
    sf_search_options search;
    sf_search_result result;
    uint64_t features;
    char *path;
};

void sf_finder_options_init(sf_finder_options *options)
{
    memset(options, 0, sizeof *options);
}

void sf_finder_free(sf_finder *f)
{
    if (!f)
        return;
    sf_search_result_release(&f->result);
    sf_index_searcher_free(f->searcher);
    sf_asmk_codebook_free(f->acb);
    sf_codebook_free(f->codebook);
    sf_index_close(f->index);
    free(f->path);
    free(f);
}

/* What sf-match does with -i before its first query. */
static sf_status finder_setup(sf_finder *f, const char *path, const sf_finder_options *o,
                              sf_error *err)
{
    sf_status st = sf_index_open(path, &f->index, err);
    if (st != SF_OK)
        return st;
    const char *cb_path = o->codebook;
    if (!cb_path || !*cb_path) {
        cb_path = sf_index_codebook_path(f->index);
        if (!*cb_path)
            return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                "%s does not name its codebook: give one", path);
    }
    if ((st = sf_codebook_load(cb_path, &f->codebook, err)) != SF_OK)
        return st;
    sf_index_codebook_id id;
    sf_index_codebook_id_of(f->codebook, &id);
    if ((uint64_t)f->search.ma > id.k)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "ma %d: %s has %llu words",
                            f->search.ma, cb_path, (unsigned long long)id.k);
    if ((st = sf_index_check_codebook(f->index, &id, err)) != SF_OK)
        return st;
    sf_error why;
    if ((st = sf_asmk_codebook_create(sf_codebook_centroids(f->codebook), id.k, id.dim, &f->acb,
                                      &why)) != SF_OK)
        return sf_error_set(err, st, "%s: %s", cb_path, why.message);
    sf_index_search_options so;
    sf_index_search_options_default(&so);
    so.threads = o->threads;
    const sf_index *const shards[1] = { f->index };
    if ((st = sf_index_searcher_create(shards, 1, &so, &f->searcher, err)) != SF_OK)
        return st;
    f->search.searcher = f->searcher;
    f->search.codebook = f->acb;
    f->search.binary = sf_index_get_params(f->index)->asmk.binary;
    f->features = sf_index_features(f->index);
    return SF_OK;
}

sf_status sf_finder_open(sf_finder **out, const char *path, const sf_finder_options *options,
                         sf_error *err)
{
    sf_finder_options none;
    if (!out)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "sf_finder_open: out is NULL");
    *out = NULL;
    if (!path)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "sf_finder_open: no index path");
    if (!options) {
        sf_finder_options_init(&none);
        options = &none;
    }
    if (options->ma < 0 || options->ma > 64)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "%s: ma %d: expected 1 to 64 (0: 5)", path, options->ma);
    if (options->threads < 0)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: threads %d: expected 0 or more",
                            path, options->threads);
    sf_finder *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", path);
    }
    sf_search_options_default(&f->search);
    if (options->ma)
        f->search.ma = options->ma;
    sf_search_result_init(&f->result);
    sf_status st = finder_setup(f, path, options, err);
    if (st != SF_OK) {
        sf_finder_free(f);
        return st;
    }
    *out = f;
    return SF_OK;
}

size_t sf_finder_count(const sf_finder *f)
{
    return sf_index_n_images(f->index);
}

/* Swap the contents of two hit lists. */
static void swap_hits(sf_hit_list *a, sf_hit_list *b)
{
    sf_hit_list t = *a;
    *a = *b;
    *b = t;
}

sf_status sf_finder_query(sf_finder *f, const sf_features *q, size_t top_k, sf_hit_list *hits,
                          sf_error *err)
{
    if (!f || !q || !hits)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                            "sf_finder_query: no finder, features or hit list");
    sf_hit_list_clear(hits);
    if (q->count && (!q->desc || !q->dim))
        return sf_error_set(err, SF_ERR_INVALID_DATA, "query: %zu features without descriptors",
                            q->count);
    if (q->count && q->dim > SIZE_MAX / sizeof(float) / q->count)
        return sf_error_set(err, SF_ERR_INVALID_DATA, "query: %zu x %zu descriptors: too many",
                            q->count, q->dim);
    if (q->made_with && f->features && q->made_with != f->features)
        return sf_error_set(err, SF_ERR_MISMATCH,
                            "query: features made as %016llx, %s holds %016llx (another model "
                            "or other settings)",
                            (unsigned long long)q->made_with, f->path,
                            (unsigned long long)f->features);
    /* Nothing to match with: every image would score 0, none is a hit
     * (as sf_search_index has it). */
    if (q->count == 0)
        return SF_OK;
    /* The query as sf-match reads it from a stream: a local_desc record,
     * checked as every reader checks one. */
    uint64_t shape[2] = { q->count, q->dim };
    sf_record desc;
    sf_record_make(&desc, "query", SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, shape, q->desc);
    sf_status st = sf_record_check_contents(&desc, err);
    if (st != SF_OK)
        return st;
    sf_stream_image img = { .key = "query", .key_len = 5, .recs = &desc, .count = 1 };
    f->search.top_k = top_k;
    st = sf_search_index(&img, &f->search, &f->result, err);
    if (st != SF_OK)
        return st;
    swap_hits(hits, &f->result.hits);
    sf_hit_list_clear(&f->result.hits);
    return SF_OK;
}
