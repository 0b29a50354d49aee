/* sf-model: inspect, validate, convert and create FIRe models. */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sf_model.h"

enum {
    OPT_TENSORS = SF_OPT_FIRST_PROGRAM,
    OPT_ARCH,
    OPT_T,
    OPT_N,
    OPT_DIM,
    OPT_REDUCTION,
    OPT_SEED,
};

static const struct option longopts[] = {
    { "tensors", no_argument, NULL, OPT_TENSORS },
    { "arch", required_argument, NULL, OPT_ARCH },
    { "T", required_argument, NULL, OPT_T },
    { "N", required_argument, NULL, OPT_N },
    { "dim", required_argument, NULL, OPT_DIM },
    { "reduction", required_argument, NULL, OPT_REDUCTION },
    { "seed", required_argument, NULL, OPT_SEED },
    { "output", required_argument, NULL, 'o' },
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    "Commands:\n"
    "  info MODEL...        print the parameters, parameter count and checksum\n"
    "  check MODEL...       validate only: exit 0 if every model loads, 1 if not\n"
    "  convert MODEL -o OUT write MODEL (PyTorch .pth or native) in the native format\n"
    "  random -o OUT        write a native model with random weights\n"
    "\n"
    "Options:\n"
    "      --tensors        info: also list every tensor with its shape, min, max, mean\n"
    "  -o, --output FILE    convert, random: the file to write\n"
    "      --arch NAME      random: resnet18, resnet34, resnet50 (default), resnet101\n"
    "      --T N            random: LIT iterations (default 6)\n"
    "      --N N            random: number of super-features (default 256)\n"
    "      --dim N          random: LIT dimension (default 1024)\n"
    "      --reduction N    random: reduced dimension, 0 for none (default 128)\n"
    "      --seed N         random: seed (default 0); the same seed gives the same model\n";

typedef struct opts {
    int tensors;
    const char *output;
    sf_net_params params;
    uint64_t seed;
    int random_set; /* a random-only option was given */
} opts;

static void print_floats(const char *key, const float *v, int n)
{
    printf("%s:", key);
    for (int i = 0; i < n; i++)
        printf(" %.7g", v[i]);
    printf("\n");
}

static void print_tensor(const sf_tensor *t)
{
    char shape[96];
    size_t o = (size_t)snprintf(shape, sizeof shape, "[");
    for (int d = 0; d < t->ndim; d++)
        o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%" PRId64, d ? "," : "", t->shape[d]);
    snprintf(shape + o, sizeof shape - o, "]");
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    double lo = n ? t->data[0] : 0, hi = lo, sum = 0;
    for (size_t i = 0; i < n; i++) {
        double v = t->data[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v;
    }
    printf("%-48s %-18s min %-13.6g max %-13.6g mean %.6g\n", t->name, shape, lo, hi,
           n ? sum / (double)n : 0.0);
}

static void print_info(const char *path, const sf_model *m, int tensors)
{
    const sf_net_params *p = sf_model_params(m);
    printf("file: %s\n", path);
    printf("architecture: %s\n", p->architecture);
    printf("skip_layer: %d\n", p->skip_layer);
    printf("backbone_channels: %d\n", sf_net_params_backbone_channels(p));
    printf("lit: T %d, N %d, dim %d\n", p->lit_T, p->lit_N, p->lit_dim);
    if (p->reduction_dim)
        printf("reduction: %d\n", p->reduction_dim);
    else
        printf("reduction: none\n");
    print_floats("mean", p->mean, 3);
    print_floats("std", p->std, 3);
    printf("image_size: %d\n", p->image_size);
    printf("features_num: %d\n", p->features_num);
    printf("scales:");
    for (int i = 0; i < p->n_scales; i++)
        printf(" %.9g", p->scales[i]);
    printf("\n");
    printf("parameters: %" PRIu64 "\n", sf_model_parameter_count(m));
    printf("tensors: %zu\n", sf_model_tensor_count(m));
    printf("checksum: %016" PRIx64 "\n", sf_model_checksum(m));
    if (tensors)
        for (size_t i = 0; i < sf_model_tensor_count(m); i++)
            print_tensor(sf_model_tensor_at(m, i));
}

/* info and check: every model, keep going after a bad one. */
static int run_each(const sf_cli *cli, int info, const opts *o, char **files, int n)
{
    int status = SF_EXIT_OK;
    if (n == 0)
        sf_cli_usage_error(cli, "%s: no MODEL given", info ? "info" : "check");
    for (int i = 0; i < n; i++) {
        sf_model *m;
        sf_error err;
        if (sf_model_load(&m, files[i], &err) != SF_OK) {
            sf_cli_error(cli, "%s", err.message);
            status = SF_EXIT_FAILURE;
            continue;
        }
        if (info) {
            if (i > 0)
                printf("\n");
            print_info(files[i], m, o->tensors);
        } else {
            sf_cli_info(cli, "%s: ok (%s, %" PRIu64 " parameters, checksum %016" PRIx64 ")",
                        files[i], sf_model_params(m)->architecture, sf_model_parameter_count(m),
                        sf_model_checksum(m));
        }
        sf_model_free(m);
    }
    return status;
}

static int save(const sf_cli *cli, const sf_model *m, const char *out)
{
    sf_error err;
    if (sf_model_save_native(m, out, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return SF_EXIT_FATAL;
    }
    sf_cli_info(cli, "%s: wrote %s, checksum %016" PRIx64, out, sf_model_params(m)->architecture,
                sf_model_checksum(m));
    return SF_EXIT_OK;
}

int main(int argc, char **argv)
{
    sf_cli cli;
    sf_cli_init(&cli, "sf-model", argc, argv);
    cli.synopsis = "COMMAND [OPTION]... [MODEL]...";
    cli.summary = "Inspect, check, convert and create FIRe models (PyTorch .pth or native).";
    cli.options_help = options_help;

    opts o = { 0 };
    sf_net_params_init(&o.params);
    /* Options may follow the command and the operands (git style). */
    int n_ops = 0, c;
    while ((c = sf_cli_getopt_anywhere(&cli, argc, argv, "o:", longopts, &n_ops)) != -1) {
        switch (c) {
        case OPT_TENSORS:
            o.tensors = 1;
            break;
        case 'o':
            o.output = optarg;
            break;
        case OPT_ARCH:
            if (strlen(optarg) >= sizeof o.params.architecture)
                sf_cli_usage_error(&cli, "--arch: unknown architecture '%s'", optarg);
            strcpy(o.params.architecture, optarg);
            o.random_set = 1;
            break;
        case OPT_T:
            o.params.lit_T = (int)sf_cli_parse_int(&cli, "--T", optarg, 1, 256);
            o.random_set = 1;
            break;
        case OPT_N:
            o.params.lit_N = (int)sf_cli_parse_int(&cli, "--N", optarg, 1, 8192);
            o.random_set = 1;
            break;
        case OPT_DIM:
            o.params.lit_dim = (int)sf_cli_parse_int(&cli, "--dim", optarg, 2, 8192);
            o.random_set = 1;
            break;
        case OPT_REDUCTION:
            o.params.reduction_dim = (int)sf_cli_parse_int(&cli, "--reduction", optarg, 0, 8192);
            o.random_set = 1;
            break;
        case OPT_SEED:
            o.seed = (uint64_t)sf_cli_parse_int(&cli, "--seed", optarg, 0, INT64_MAX);
            o.random_set = 1;
            break;
        default:
            sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    if (n_ops == 0)
        sf_cli_usage_error(&cli, "no command given (info, check, convert, random)");
    char **ops = argv + 1;
    const char *cmd = ops[0];
    char **files = ops + 1;
    int n_files = n_ops - 1, status;
    int is_info = strcmp(cmd, "info") == 0, is_check = strcmp(cmd, "check") == 0;
    int is_convert = strcmp(cmd, "convert") == 0, is_random = strcmp(cmd, "random") == 0;
    if (!is_info && !is_check && !is_convert && !is_random)
        sf_cli_usage_error(&cli, "unknown command '%s' (info, check, convert, random)", cmd);
    if (o.tensors && !is_info)
        sf_cli_usage_error(&cli, "--tensors applies to 'info' only");
    if (o.random_set && !is_random)
        sf_cli_usage_error(&cli, "--arch, --T, --N, --dim, --reduction and --seed apply to 'random' only");
    if (o.output && !is_convert && !is_random)
        sf_cli_usage_error(&cli, "--output applies to 'convert' and 'random' only");

    if (is_info || is_check) {
        status = run_each(&cli, is_info, &o, files, n_files);
    } else if (is_convert) {
        if (n_files != 1)
            sf_cli_usage_error(&cli, "convert: expected one MODEL, got %d", n_files);
        if (!o.output)
            sf_cli_usage_error(&cli, "convert: no output file (-o OUT)");
        sf_model *m;
        sf_error err;
        if (sf_model_load(&m, files[0], &err) != SF_OK) {
            sf_cli_error(&cli, "%s", err.message);
            status = SF_EXIT_FAILURE;
        } else {
            status = save(&cli, m, o.output);
            sf_model_free(m);
        }
    } else {
        if (n_files != 0)
            sf_cli_usage_error(&cli, "random: unexpected operand '%s'", files[0]);
        if (!o.output)
            sf_cli_usage_error(&cli, "random: no output file (-o OUT)");
        sf_model *m;
        sf_error err;
        sf_status st = sf_model_create_random(&m, &o.params, o.seed, &err);
        if (st == SF_ERR_NOMEM) {
            sf_cli_error(&cli, "%s", err.message);
            return sf_cli_finish(&cli, SF_EXIT_FATAL);
        }
        if (st != SF_OK) /* only the parameters can be wrong */
            sf_cli_usage_error(&cli, "%s", err.message);
        status = save(&cli, m, o.output);
        sf_model_free(m);
    }
    return sf_cli_finish(&cli, status);
}
