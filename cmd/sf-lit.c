/* sf-lit: backbone feature maps in, super-features out (LIT, strength,
 * reduction, selection over the scales of each image, global descriptor). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
    OPT_KEEP = SF_OPT_FIRST_PROGRAM,
    OPT_GLOBAL,
    OPT_SUPERFEATURES,
    OPT_ATTENTION,
    OPT_STRENGTH,
    OPT_REDUCED,
};

static const struct option longopts[] = {
    SF_CLI_NETWORK_LONGOPTS,
    SF_CLI_MISMATCH_LONGOPT,
    { "keep", required_argument, NULL, OPT_KEEP },
    { "global", no_argument, NULL, OPT_GLOBAL },
    { "superfeatures", no_argument, NULL, OPT_SUPERFEATURES },
    { "attention", no_argument, NULL, OPT_ATTENTION },
    { "strength", no_argument, NULL, OPT_STRENGTH },
    { "reduced", no_argument, NULL, OPT_REDUCED },
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    SF_CLI_NETWORK_HELP
    SF_CLI_MISMATCH_HELP
    "      --keep N         keep the N strongest super-features per image\n"
    "                       (default: the model's own number, 1000 for fire.pth)\n"
    "      --global         also write the global descriptor\n"
    "      --superfeatures  also write each scale's LIT output (N x D)\n"
    "      --attention      also write each scale's attention maps (N x H x W)\n"
    "      --strength       also write each scale's strengths (N)\n"
    "      --reduced        also write each scale's reduced super-features (N x d)\n";

typedef struct lit_filter {
    sf_cli *cli;
    sf_cli_network nw;
    sf_lit_run *run;
    int keep;
    int global, want_sf, want_attn, want_strength, want_reduced;
    float *gbuf;
} lit_filter;

/* A copy of data as a new record of this image. */
static void emit(lit_filter *f, sf_cli_batch *out, const sf_record *like, uint16_t kind,
                 uint8_t dtype, unsigned ndim, const uint64_t *shape, const void *data)
{
    sf_record r = *like;
    r.kind = kind;
    r.dtype = dtype;
    r.ndim = (uint8_t)ndim;
    memset(r.shape, 0, sizeof r.shape);
    memcpy(r.shape, shape, ndim * sizeof shape[0]);
    r.data = data;
    r.data_size = sf_shape_count(shape, ndim) * sf_dtype_size(dtype);
    sf_cli_batch_add(f->cli, out, &r);
}

static int on_record(lit_filter *f, const char *name, const sf_record *rec, sf_cli_batch *out)
{
    sf_error err;
    if (rec->kind == SF_KIND_IMAGE || rec->kind == SF_KIND_PROVENANCE)
        return 0; /* pixels are of no use after the backbone */
    if (rec->kind != SF_KIND_FEATURE_MAP) {
        sf_cli_batch_add(f->cli, out, rec);
        return 0;
    }
    sf_lit_scale ls;
    if (sf_lit_run_scale(f->run, rec->data, (int)rec->shape[0], (int)rec->shape[1],
                         (int)rec->shape[2], rec->scale, &ls, &err) != SF_OK) {
        sf_cli_error(f->cli, "%s: %s: scale %g: %s", name, rec->key, rec->scale, err.message);
        return 1;
    }
    uint64_t nd[2] = { (uint64_t)ls.n, (uint64_t)ls.dim };
    uint64_t nr[2] = { (uint64_t)ls.n, (uint64_t)ls.reduced_dim };
    uint64_t na[3] = { (uint64_t)ls.n, (uint64_t)ls.height, (uint64_t)ls.width };
    uint64_t n1[1] = { (uint64_t)ls.n };
    if (f->want_sf)
        emit(f, out, rec, SF_KIND_SUPERFEATURES, SF_DTYPE_F32, 2, nd, ls.superfeatures);
    if (f->want_attn)
        emit(f, out, rec, SF_KIND_ATTENTION, SF_DTYPE_F32, 3, na, ls.attention);
    if (f->want_strength)
        emit(f, out, rec, SF_KIND_STRENGTH, SF_DTYPE_F32, 1, n1, ls.strength);
    if (f->want_reduced)
        emit(f, out, rec, SF_KIND_REDUCED, SF_DTYPE_F32, 2, nr, ls.reduced);
    return 0;
}

static int on_image_end(lit_filter *f, const char *key, sf_cli_batch *out)
{
    sf_local_features lf;
    sf_error err;
    if (sf_lit_run_select(f->run, f->keep, &lf, f->global ? f->gbuf : NULL, &err) != SF_OK) {
        sf_cli_error(f->cli, "%s: %s", key, err.message);
        return 1;
    }
    sf_record like = { .key = key, .key_len = strlen(key), .scale = 1.0 };
    uint64_t kd[2] = { (uint64_t)lf.count, (uint64_t)lf.dim }, k1[1] = { (uint64_t)lf.count };
    emit(f, out, &like, SF_KIND_LOCAL_DESC, SF_DTYPE_F32, 2, kd, lf.desc);
    emit(f, out, &like, SF_KIND_LOCAL_STRENGTH, SF_DTYPE_F32, 1, k1, lf.strength);
    emit(f, out, &like, SF_KIND_LOCAL_SCALE, SF_DTYPE_F32, 1, k1, lf.scale);
    emit(f, out, &like, SF_KIND_LOCAL_INDEX, SF_DTYPE_I32, 1, k1, lf.index);
    if (f->global) {
        uint64_t gd[1] = { (uint64_t)sf_lit_run_reduced_dim(f->run) };
        emit(f, out, &like, SF_KIND_GLOBAL, SF_DTYPE_F32, 1, gd, f->gbuf);
    }
    return 0;
}

static int on_image(void *vctx, const sf_stream_image *img, const char *name, sf_cli_batch *out)
{
    lit_filter *f = vctx;
    sf_error err;
    sf_status st = sf_provenance_check_stage(img, SF_STAGE_EXTRACT, sf_model_checksum(f->nw.model),
                                             &err);
    if (sf_cli_provenance(f->cli, name, st, &err))
        return 1;
    if (!sf_stream_image_find(img, SF_KIND_FEATURE_MAP)) {
        sf_cli_error(f->cli, "%s: %s: no feature_map record (the output of sf-extract)", name,
                     img->key);
        return 1;
    }
    sf_provenance p = sf_provenance_after(&img->provenance, SF_STAGE_LIT,
                                          sf_model_checksum(f->nw.model),
                                          sf_provenance_compute_settings(f->nw.precision, f->keep));
    sf_cli_batch_add_provenance(f->cli, out, img->key, &p);
    sf_lit_run_reset(f->run);
    int failed = 0;
    for (size_t i = 0; i < img->count && !failed; i++)
        failed = on_record(f, name, &img->recs[i], out);
    if (!failed)
        failed = on_image_end(f, img->key, out);
    return failed;
}

int main(int argc, char **argv)
{
    sf_cli cli;
    lit_filter f;
    int c;
    memset(&f, 0, sizeof f);
    f.cli = &cli;
    f.keep = -1;
    sf_cli_prefer_passive_threads(argv);
    sf_cli_init(&cli, "sf-lit", argc, argv);
    cli.reports_progress = 1;
    cli.synopsis = "-m MODEL [OPTION]... [STREAM]...";
    cli.summary = "Turn the backbone feature maps of a stream (from sf-extract) into FIRe\n"
                  "super-features: LIT on each scale, then the strongest over all scales.";
    cli.options_help = options_help;
    while ((c = sf_cli_getopt(&cli, argc, argv, SF_CLI_NETWORK_SHORTOPTS, longopts)) != -1) {
        if (sf_cli_network_option(&cli, &f.nw, c, optarg))
            continue;
        switch (c) {
        case OPT_KEEP: sf_cli_set(&cli, "features.keep", optarg); break;
        case OPT_GLOBAL: sf_cli_set(&cli, "features.global", "true"); break;
        case OPT_SUPERFEATURES: f.want_sf = 1; break;
        case OPT_ATTENTION: f.want_attn = 1; break;
        case OPT_STRENGTH: f.want_strength = 1; break;
        case OPT_REDUCED: f.want_reduced = 1; break;
        case SF_OPT_ALLOW_MISMATCH: cli.allow_mismatch = 1; break;
        default: sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    sf_cli_network_open(&cli, &f.nw);
    sf_cli_stream_output(&cli);

    const sf_net_params *p = sf_model_params(f.nw.model);
    sf_error err;
    sf_config_use_model(&cli.config, p);
    f.keep = cli.config.features_num;
    f.global = cli.config.global;
    if (sf_lit_run_create(&f.run, f.nw.net, f.nw.model, f.want_attn, &err) != SF_OK) {
        sf_cli_error(&cli, "%s", err.message);
        return SF_EXIT_FATAL;
    }
    if (!(f.gbuf = malloc(sizeof(float) * (size_t)sf_lit_run_reduced_dim(f.run)))) {
        sf_cli_error(&cli, "out of memory");
        return SF_EXIT_FATAL;
    }
    sf_cli_info(&cli, "LIT T=%d N=%d dim=%d, reduction to %d, keeping %d", p->lit_T, p->lit_N,
                p->lit_dim, sf_lit_run_reduced_dim(f.run), f.keep);
    int status = sf_cli_run_filter(&cli, argc, argv, optind, on_image, &f);
    sf_lit_run_free(f.run);
    free(f.gbuf);
    sf_cli_network_close(&f.nw);
    return sf_cli_finish(&cli, status);
}
