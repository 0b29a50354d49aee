/* sf-codebook: train the visual codebook of ASMK with k-means on a sample
 * of the local descriptors of feature streams, or describe a codebook
 * file.  Choosing and sampling descriptors, k-means and the file are
 * libsf's; this file reads the streams, checks provenance and reports. */
#include "config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define DEFAULT_MAX_SAMPLES 10000000LL

enum {
    OPT_ITERATIONS = SF_OPT_FIRST_PROGRAM,
    OPT_SEED,
    OPT_MAX_SAMPLES,
    OPT_SCALE,
    OPT_INFO,
    OPT_FROM_NPY,
    OPT_PLAN,
};

static const struct option longopts[] = {
    { "output", required_argument, NULL, 'o' },
    { "codebook-size", required_argument, NULL, 'k' },
    { "iterations", required_argument, NULL, OPT_ITERATIONS },
    { "seed", required_argument, NULL, OPT_SEED },
    { "threads", required_argument, NULL, SF_OPT_THREADS },
    { "max-samples", required_argument, NULL, OPT_MAX_SAMPLES },
    { "scale", required_argument, NULL, OPT_SCALE },
    { "info", no_argument, NULL, OPT_INFO },
    { "from-npy", required_argument, NULL, OPT_FROM_NPY },
    { "plan", required_argument, NULL, OPT_PLAN },
    { "model", required_argument, NULL, 'm' },
    SF_CLI_MISMATCH_LONGOPT,
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    "  -o, --output FILE    write the codebook here (required unless --info)\n"
    "  -k, --codebook-size N  visual words (default: the largest power of two with 32\n"
    "                       descriptors per word, at most 65536)\n"
    "      --iterations N   k-means iterations (default 10)\n"
    "      --seed N         seed of the sampling and of the k-means initialisation\n"
    "                       (default 0)\n"
    "      --threads N      compute threads (default: all cores)\n"
    "      --max-samples N  train on at most N descriptors, a uniform random sample\n"
    "                       of all of them (default 10000000)\n"
    "      --scale S        use only the descriptors extracted at scale S, as the\n"
    "                       official recipe does with 1 (default: all scales)\n"
    "      --info           describe the CODEBOOK files given as operands\n"
    "      --from-npy FILE  take the centroids from FILE (k x d, f32 or f64) instead\n"
    "                       of training; the STREAMs are the descriptors they are for\n"
    "      --plan IMAGES    read no stream: print the codebook size IMAGES images would\n"
    "                       get (at most IMAGES x features kept descriptors) and that\n"
    "                       number, or refuse a -k they cannot support\n"
    "  -m, --model FILE     --plan: the model whose features kept count (default:\n"
    "                       compute.model; not needed when features.keep is set)\n"
    SF_CLI_MISMATCH_HELP;

typedef struct trainer {
    sf_cli *cli;
    long long max_samples;
    double scale; /* --scale; 0: every descriptor */
    sf_kmeans_sampler *sampler;
    uint64_t images; /* read without a problem */
    uint64_t features; /* provenance of the first image: all must agree */
    struct timespec t0;
} trainer;

static double elapsed(const trainer *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->t0.tv_sec) + 1e-9 * (double)(now.tv_nsec - t->t0.tv_nsec);
}

/* One image into the sample; returns its exit status. */
static int sample_image(void *vctx, const sf_stream_image *img, const char *name)
{
    trainer *t = vctx;
    sf_error err;
    sf_status st = t->features
                       ? sf_provenance_check_features(img, t->features, "the first images", &err)
                       : sf_provenance_check_stage(img, SF_STAGE_LIT, 0, &err);
    if (sf_cli_provenance(t->cli, name, st, &err))
        return SF_EXIT_FAILURE;
    if (!t->features && img->has_provenance)
        t->features = sf_provenance_features(&img->provenance);
    st = sf_kmeans_sampler_add_image(t->sampler, img, t->scale, &err);
    if (st == SF_ERR_NOMEM) {
        sf_cli_error(t->cli, "%s", err.message);
        exit(SF_EXIT_FATAL);
    }
    if (st != SF_OK) {
        sf_cli_error(t->cli, "%s: %s", name, err.message);
        return SF_EXIT_FAILURE;
    }
    t->images++;
    return SF_EXIT_OK;
}

static void on_progress(void *ctx, int iteration, double inertia)
{
    trainer *t = ctx;
    sf_cli_info(t->cli, "iteration %d/%d: inertia %.9g (%.1f s)", iteration,
                t->cli->config.kmeans_iterations, inertia, elapsed(t));
    /* The clock of the report starts after the first assignment, which
     * iteration 0 reports: the rate is then that of whole iterations. */
    if (iteration == 0)
        sf_cli_progress_begin(t->cli, 0, "k-means", "iterations",
                              (uint64_t)t->cli->config.kmeans_iterations, 0);
    else
        sf_cli_progress_update((uint64_t)iteration, 0);
}

static int train(sf_cli *cli, trainer *t, const char *output)
{
    sf_error err;
    size_t n = 0, d = sf_kmeans_sampler_dim(t->sampler);
    const float *x = sf_kmeans_sampler_rows(t->sampler, &n);
    size_t k = (size_t)cli->config.codebook_size;
    if (n == 0) {
        sf_cli_error(cli, "no local descriptors in the input%s (local_desc records, written "
                          "by sf-lit)", t->scale > 0 ? " at the --scale given" : "");
        return SF_EXIT_FAILURE;
    }
    /* No -k (asmk.codebook_size 0): the size follows the data, libsf's rule. */
    if (k == 0) {
        k = sf_codebook_default_size(n);
        sf_cli_warn(cli, "codebook size %zu for %zu descriptors (the largest power of two "
                         "with %d descriptors per word, at most %d; -k to choose)",
                    k, n, SF_CODEBOOK_PER_WORD, SF_CODEBOOK_MAX_DEFAULT);
    }
    /* Refused before k-means starts, with the largest k that would work. */
    if (sf_codebook_check_size(k, n, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return SF_EXIT_FAILURE;
    }
    sf_cli_info(cli, "training %zu visual words on %zu of %llu descriptors (d = %zu) from "
                     "%llu images", k, n, (unsigned long long)sf_kmeans_sampler_seen(t->sampler),
                d, (unsigned long long)t->images);
    float *c = malloc(k * d * sizeof *c);
    if (!c)
        sf_cli_out_of_memory(cli);
    sf_kmeans_options opt = { .threads = cli->config.threads, .progress = on_progress,
                              .progress_ctx = t };
    double inertia = 0;
    clock_gettime(CLOCK_MONOTONIC, &t->t0);
    sf_cli_progress_begin(cli, 0, "k-means", "iterations",
                          (uint64_t)cli->config.kmeans_iterations, 0);
    sf_status st = sf_kmeans_train(x, n, d, k, cli->config.kmeans_iterations,
                                   cli->config.kmeans_seed, &opt, c, &inertia, &err);
    sf_cli_progress_end();
    if (st != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        free(c);
        return err.status == SF_ERR_NOMEM ? SF_EXIT_FATAL : SF_EXIT_FAILURE;
    }
    sf_codebook_training info = { .seed = cli->config.kmeans_seed, .samples = n,
                                  .iterations = cli->config.kmeans_iterations,
                                  .inertia = inertia, .features = t->features };
    int status = SF_EXIT_OK;
    if (sf_codebook_write(output, c, k, d, &info, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        status = SF_EXIT_FATAL;
    } else {
        sf_cli_info(cli, "wrote %s: %zu x %zu, inertia %.9g, checksum %016llx, %.2f s", output,
                    k, d, inertia, (unsigned long long)sf_codebook_checksum_data(c, k, d),
                    elapsed(t));
    }
    free(c);
    return status;
}

/* ---- --from-npy ---- */

typedef struct importer {
    sf_cli *cli;
    size_t dim;        /* the centroids' */
    uint64_t features; /* of the first image: all must agree */
    uint64_t images, descriptors;
    uint64_t wrong_dim; /* images with descriptors of another dimension */
} importer;

/* One image the centroids are for: made by sf-lit like the others, with
 * descriptors of their dimension. */
static int check_image(void *vctx, const sf_stream_image *img, const char *name)
{
    importer *im = vctx;
    sf_error err;
    sf_status st = im->features
                       ? sf_provenance_check_features(img, im->features, "the first images", &err)
                       : sf_provenance_check_stage(img, SF_STAGE_LIT, 0, &err);
    if (sf_cli_provenance(im->cli, name, st, &err))
        return SF_EXIT_FAILURE;
    if (!im->features && img->has_provenance)
        im->features = sf_provenance_features(&img->provenance);
    const sf_record *desc = sf_stream_image_find(img, SF_KIND_LOCAL_DESC);
    if (!desc)
        return SF_EXIT_OK;
    if (desc->shape[1] != im->dim) {
        /* Said once: every image would say the same. */
        if (!im->wrong_dim++)
            sf_cli_error(im->cli, "%s: '%s': descriptors of dimension %llu, the centroids "
                                  "have %zu", name, img->key,
                         (unsigned long long)desc->shape[1], im->dim);
        return SF_EXIT_FAILURE;
    }
    im->images++;
    im->descriptors += desc->shape[0];
    return SF_EXIT_OK;
}

/* The centroids of path as k x d float32, or NULL after saying why. */
static float *read_centroids(const sf_cli *cli, const char *path, size_t *k, size_t *d)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        sf_cli_error(cli, "%s: %s", path, strerror(errno));
        return NULL;
    }
    sf_npy_array a;
    sf_error err;
    sf_status st = sf_npy_read(fp, path, UINT64_C(1) << 36, &a, &err);
    fclose(fp);
    if (st != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return NULL;
    }
    int bad = 1;
    if (a.ndim != 2)
        sf_cli_error(cli, "%s: centroids must be a k x d array, this one has %u dimensions",
                     path, (unsigned)a.ndim);
    else if (a.dtype != SF_DTYPE_F32 && a.dtype != SF_DTYPE_F64)
        sf_cli_error(cli, "%s: centroids must be f32 or f64, not %s", path,
                     sf_dtype_name(a.dtype));
    else if (a.shape[0] < 1 || a.shape[1] < 1)
        sf_cli_error(cli, "%s: no centroids: k and d must be at least 1, this is %llu x %llu",
                     path, (unsigned long long)a.shape[0], (unsigned long long)a.shape[1]);
    else
        bad = 0;
    if (bad) {
        free(a.data);
        return NULL;
    }
    *k = (size_t)a.shape[0];
    *d = (size_t)a.shape[1];
    size_t n = *k * *d;
    float *c = a.data;
    if (a.dtype == SF_DTYPE_F64) {
        c = sf_cli_xmalloc(cli, n * sizeof *c);
        const double *v = a.data;
        for (size_t i = 0; i < n && c; i++) {
            if (isfinite(v[i]) && fabs(v[i]) > FLT_MAX) {
                sf_cli_error(cli, "%s: centroid %zu: %g is beyond float32", path, i / *d, v[i]);
                free(c);
                c = NULL;
                break;
            }
            c[i] = (float)v[i];
        }
        free(a.data);
        if (!c)
            return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(c[i])) {
            sf_cli_error(cli, "%s: centroid %zu has a non-finite value (%g)", path, i / *d,
                         (double)c[i]);
            free(c);
            return NULL;
        }
    return c;
}

static int import_npy(sf_cli *cli, const char *npy, int k_given, const char *output, int argc,
                      char **argv, int first)
{
    size_t k, d;
    float *c = read_centroids(cli, npy, &k, &d);
    if (!c)
        return SF_EXIT_FAILURE;
    if (k_given && (size_t)cli->config.codebook_size != k) {
        sf_cli_error(cli, "%s: %zu centroids, -k asks for %d", npy, k, cli->config.codebook_size);
        free(c);
        return SF_EXIT_FAILURE;
    }
    importer im = { .cli = cli, .dim = d };
    int status = sf_cli_each_image_of(cli, argc, argv, first, check_image, &im);
    if (status == SF_EXIT_OK && im.descriptors == 0) {
        sf_cli_error(cli, "no local descriptors in the input (local_desc records, written by "
                          "sf-lit): nothing says what the centroids are for");
        status = SF_EXIT_FAILURE;
    }
    if (status != SF_EXIT_OK) {
        sf_cli_error(cli, "no codebook written: some input failed (see above)");
        free(c);
        return status;
    }
    sf_codebook_training info = { .features = im.features };
    sf_error err;
    if (sf_codebook_write(output, c, k, d, &info, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        status = err.status == SF_ERR_INVALID_ARGUMENT || err.status == SF_ERR_TOO_LARGE
                     ? SF_EXIT_FAILURE : SF_EXIT_FATAL;
    } else {
        sf_cli_info(cli, "wrote %s: %zu x %zu from %s, checksum %016llx, for features %016llx "
                         "(checked on %llu descriptors of %llu images)", output, k, d, npy,
                    (unsigned long long)sf_codebook_checksum_data(c, k, d),
                    (unsigned long long)im.features, (unsigned long long)im.descriptors,
                    (unsigned long long)im.images);
    }
    free(c);
    return status;
}

/* --plan: the codebook size a collection of images would get, decided
 * before any of them is extracted.  Each image gives at most features.keep
 * descriptors (the model's own number unless a preset or flag sets it), so
 * a -k refused here would be refused after the extraction too. */
static int plan(sf_cli *cli, long long images, long long max_samples)
{
    sf_config *cfg = &cli->config;
    if (cfg->features_num == 0) {
        sf_model *model;
        sf_error err;
        if (!cfg->model[0])
            sf_cli_usage_error(cli, "--plan needs the features kept: give -m MODEL or "
                                    "features.keep");
        if (sf_model_load(&model, cfg->model, &err) != SF_OK) {
            sf_cli_error(cli, "%s", err.message);
            return SF_EXIT_FATAL;
        }
        sf_config_use_model(cfg, sf_model_params(model));
        sf_model_free(model);
    }
    uint64_t n = (uint64_t)images * (uint64_t)cfg->features_num;
    if (n > (uint64_t)max_samples)
        n = (uint64_t)max_samples;
    size_t k = cfg->codebook_size ? (size_t)cfg->codebook_size : sf_codebook_default_size(n);
    sf_error err;
    if (sf_codebook_check_size(k, n, &err) != SF_OK) {
        sf_cli_error(cli, "%lld images of at most %d super-features: %s", images,
                     cfg->features_num, err.message);
        return SF_EXIT_FAILURE;
    }
    printf("%zu\t%llu\n", k, (unsigned long long)n);
    return SF_EXIT_OK;
}

/* --info: describe each codebook; returns the exit status. */
static int info(const sf_cli *cli, int argc, char **argv, int first)
{
    int status = SF_EXIT_OK;
    for (int i = first; i < argc; i++) {
        sf_codebook *cb;
        sf_error err;
        if (sf_codebook_load(argv[i], &cb, &err) != SF_OK) {
            sf_cli_error(cli, "%s", err.message);
            status = SF_EXIT_FAILURE;
            continue;
        }
        const sf_codebook_training *tr = sf_codebook_get_training(cb);
        printf("file: %s\nversion: %d\nk: %zu\ndim: %zu\nchecksum: %016llx\nseed: %llu\n"
               "iterations: %d\nsamples: %llu\ninertia: %.17g\nfeatures: %016llx\n",
               argv[i], SF_CODEBOOK_VERSION, sf_codebook_size(cb), sf_codebook_dim(cb),
               (unsigned long long)sf_codebook_checksum(cb), (unsigned long long)tr->seed,
               tr->iterations, (unsigned long long)tr->samples, tr->inertia,
               (unsigned long long)tr->features);
        sf_codebook_free(cb);
    }
    return status;
}

int main(int argc, char **argv)
{
    sf_cli cli;
    sf_cli_init(&cli, "sf-codebook", argc, argv);
    cli.reports_progress = 1;
    cli.synopsis = "[OPTION]... -o CODEBOOK [STREAM]...\n"
                   "  or:  sf-codebook --from-npy CENTROIDS.npy -o CODEBOOK STREAM...\n"
                   "  or:  sf-codebook --info CODEBOOK...\n"
                   "  or:  sf-codebook --plan IMAGES [-m MODEL] [-k N]";
    cli.summary = "Train the ASMK visual codebook: k-means on the local descriptors\n"
                  "(local_desc records) of feature streams.  With no STREAM, or when\n"
                  "STREAM is -, read standard input.";
    cli.options_help = options_help;

    trainer t = { .cli = &cli, .max_samples = DEFAULT_MAX_SAMPLES };
    const char *output = NULL, *from_npy = NULL;
    int want_info = 0, k_given = 0;
    long long plan_images = -1;
    int c;
    while ((c = sf_cli_getopt(&cli, argc, argv, "o:k:m:", longopts)) != -1) {
        switch (c) {
        case 'o':
            if (!*optarg)
                sf_cli_usage_error(&cli, "--output needs a file name");
            output = optarg;
            break;
        case 'k':
            /* 0 means "follow the data" in a preset; as a flag it is a mistake. */
            sf_cli_parse_int(&cli, "-k", optarg, 1, SF_INDEX_MAX_WORDS);
            sf_cli_set(&cli, "asmk.codebook_size", optarg);
            k_given = 1;
            break;
        case SF_OPT_ALLOW_MISMATCH: cli.allow_mismatch = 1; break;
        case OPT_ITERATIONS: sf_cli_set(&cli, "asmk.kmeans_iterations", optarg); break;
        case OPT_SEED: sf_cli_set(&cli, "asmk.kmeans_seed", optarg); break;
        case SF_OPT_THREADS: sf_cli_set(&cli, "compute.threads", optarg); break;
        case OPT_MAX_SAMPLES:
            t.max_samples = sf_cli_parse_int(&cli, "--max-samples", optarg, 1, 1LL << 40);
            break;
        case OPT_SCALE: {
            char *end;
            errno = 0;
            t.scale = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(t.scale) || t.scale <= 0)
                sf_cli_usage_error(&cli, "--scale: expected a positive number, got '%s'",
                                   optarg);
            break;
        }
        case OPT_INFO: want_info = 1; break;
        case OPT_FROM_NPY:
            if (!*optarg)
                sf_cli_usage_error(&cli, "--from-npy needs a file name");
            from_npy = optarg;
            break;
        case OPT_PLAN:
            plan_images = sf_cli_parse_int(&cli, "--plan", optarg, 0, 1LL << 40);
            break;
        case 'm': sf_cli_set(&cli, "compute.model", optarg); break;
        default:
            sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    if (plan_images >= 0) {
        if (output || want_info || optind < argc)
            sf_cli_usage_error(&cli, "--plan reads and writes no file (drop -o, --info and "
                                     "the operands)");
        return sf_cli_finish(&cli, plan(&cli, plan_images, t.max_samples));
    }
    if (want_info) {
        if (output)
            sf_cli_usage_error(&cli, "--info describes codebooks; it writes none (drop -o)");
        if (from_npy)
            sf_cli_usage_error(&cli, "--info and --from-npy exclude each other");
        if (optind == argc)
            sf_cli_usage_error(&cli, "--info needs a CODEBOOK file");
        return sf_cli_finish(&cli, info(&cli, argc, argv, optind));
    }
    if (!output)
        sf_cli_usage_error(&cli, "no output: give -o CODEBOOK");
    if (from_npy) {
        if (optind == argc)
            sf_cli_usage_error(&cli, "--from-npy needs the STREAMs of the descriptors the "
                                     "centroids are for (their dimension and provenance are "
                                     "recorded and checked)");
        return sf_cli_finish(&cli, import_npy(&cli, from_npy, k_given, output, argc, argv,
                                              optind));
    }
    if (cli.config.codebook_size > t.max_samples)
        sf_cli_usage_error(&cli, "-k %d is more than --max-samples %lld: k-means needs at least "
                                 "one descriptor per visual word", cli.config.codebook_size,
                           t.max_samples);
    if (optind == argc && isatty(STDIN_FILENO))
        sf_cli_usage_error(&cli, "no input: name stream files or pipe a stream in");

    sf_error err;
    if (sf_kmeans_sampler_create((size_t)t.max_samples, 0, cli.config.kmeans_seed, &t.sampler,
                                 &err) != SF_OK) {
        sf_cli_error(&cli, "%s", err.message);
        return SF_EXIT_FATAL;
    }
    int status = sf_cli_each_image_of(&cli, argc, argv, optind, sample_image, &t);
    if (status != SF_EXIT_OK)
        sf_cli_error(&cli, "no codebook written: some input failed (see above)");
    else
        status = train(&cli, &t, output);
    sf_kmeans_sampler_free(t.sampler);
    return sf_cli_finish(&cli, status);
}
