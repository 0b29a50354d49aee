/* sf-extract: image records in, backbone feature maps out. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_STAGE = SF_OPT_FIRST_PROGRAM, OPT_KEEP_IMAGES };

static const struct option longopts[] = {
    SF_CLI_NETWORK_LONGOPTS,
    SF_CLI_MISMATCH_LONGOPT,
    { "stage", required_argument, NULL, OPT_STAGE },
    { "keep-images", no_argument, NULL, OPT_KEEP_IMAGES },
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    SF_CLI_NETWORK_HELP
    SF_CLI_MISMATCH_HELP
    "      --stage NAME     stop the backbone after conv1, pool, layer1, layer2 or\n"
    "                       layer3 (default: layer3, what LIT reads)\n"
    "      --keep-images    also pass the image records through\n";

typedef struct extractor {
    sf_cli *cli;
    sf_cli_network nw;
    int stage;
    int keep_images;
} extractor;

static int on_record(extractor *x, const sf_record *rec, sf_cli_batch *out)
{
    if (rec->kind == SF_KIND_PROVENANCE)
        return 0; /* replaced by this stage's */
    if (rec->kind != SF_KIND_IMAGE) {
        sf_cli_batch_add(x->cli, out, rec);
        return 0;
    }
    if (rec->shape[1] > 1 << 16 || rec->shape[2] > 1 << 16) {
        sf_cli_error(x->cli, "%s: image record %u is larger than 65536 pixels a side",
                     rec->key, rec->index);
        return 1;
    }
    int h = (int)rec->shape[1], w = (int)rec->shape[2], c, oh, ow;
    sf_error err;
    if (sf_backbone_output_size(sf_network_params(x->nw.net), h, w, x->stage, &c, &oh, &ow,
                                &err) != SF_OK) {
        sf_cli_error(x->cli, "%s: scale %g: %s", rec->key, rec->scale, err.message);
        return 1;
    }
    size_t n = (size_t)c * (size_t)oh * (size_t)ow;
    float *features = malloc(n * sizeof(float));
    if (!features) {
        sf_cli_error(x->cli, "%s: out of memory for a %dx%dx%d feature map", rec->key, c, oh, ow);
        return 1;
    }
    if (sf_network_backbone(x->nw.net, rec->data, h, w, x->stage, features, &err) != SF_OK) {
        sf_cli_error(x->cli, "%s: scale %g: %s", rec->key, rec->scale, err.message);
        free(features);
        return 1;
    }
    if (x->keep_images)
        sf_cli_batch_add(x->cli, out, rec);
    sf_record fm = *rec;
    fm.kind = SF_KIND_FEATURE_MAP;
    fm.shape[0] = (uint64_t)c;
    fm.shape[1] = (uint64_t)oh;
    fm.shape[2] = (uint64_t)ow;
    fm.data_size = n * sizeof(float);
    sf_cli_batch_add_owned(x->cli, out, &fm, features);
    sf_cli_info(x->cli, "%s: scale %g: %dx%d -> %dx%dx%d", rec->key, rec->scale, w, h, c, oh, ow);
    return 0;
}

static int on_image(void *vctx, const sf_stream_image *img, const char *name, sf_cli_batch *out)
{
    extractor *x = vctx;
    sf_error err;
    sf_status st = sf_provenance_check_stage(img, SF_STAGE_DECODE, 0, &err);
    if (sf_cli_provenance(x->cli, name, st, &err))
        return 1;
    sf_provenance p = sf_provenance_after(
        &img->provenance, SF_STAGE_EXTRACT, sf_model_checksum(x->nw.model),
        sf_provenance_compute_settings(x->nw.precision, x->stage));
    sf_cli_batch_add_provenance(x->cli, out, img->key, &p);
    for (size_t i = 0; i < img->count; i++)
        if (on_record(x, &img->recs[i], out))
            return 1;
    return 0;
}

static int parse_stage(const char *name)
{
    static const char *names[] = { "conv1", "pool", "layer1", "layer2", "layer3" };
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0)
            return SF_STAGE_CONV1 + i;
    return 0;
}

int main(int argc, char **argv)
{
    sf_cli cli;
    extractor x;
    int c;
    memset(&x, 0, sizeof x);
    x.cli = &cli;
    x.stage = SF_STAGE_LAYER3;
    sf_cli_prefer_passive_threads(argv);
    sf_cli_init(&cli, "sf-extract", argc, argv);
    cli.reports_progress = 1;
    cli.synopsis = "-m MODEL [OPTION]... [STREAM]...";
    cli.summary = "Run the FIRe backbone on every image record of a feature stream (from\n"
                  "sf-decode) and write its feature maps; other records pass through.";
    cli.options_help = options_help;
    while ((c = sf_cli_getopt(&cli, argc, argv, SF_CLI_NETWORK_SHORTOPTS, longopts)) != -1) {
        if (sf_cli_network_option(&cli, &x.nw, c, optarg))
            continue;
        switch (c) {
        case OPT_STAGE:
            if (!(x.stage = parse_stage(optarg)))
                sf_cli_usage_error(&cli, "--stage: expected conv1, pool, layer1, layer2 or layer3, got '%s'", optarg);
            break;
        case OPT_KEEP_IMAGES: x.keep_images = 1; break;
        case SF_OPT_ALLOW_MISMATCH: cli.allow_mismatch = 1; break;
        default: sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    sf_cli_network_open(&cli, &x.nw);
    sf_cli_stream_output(&cli);
    int status = sf_cli_run_filter(&cli, argc, argv, optind, on_image, &x);
    sf_cli_network_close(&x.nw);
    return sf_cli_finish(&cli, status);
}
