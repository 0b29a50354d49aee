/* sf-codebook: train the visual codebook of ASMK with k-means on a sample
 * of the local descriptors of feature streams, or describe a codebook
 * file.  Choosing and sampling descriptors, k-means and the file are
 * libsf's; this file reads the streams, checks provenance and reports. */
#include "config.h"

#include <errno.h>
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
    SF_CLI_MISMATCH_LONGOPT,
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    "  -o, --output FILE    write the codebook here (required unless --info)\n"
    "  -k, --codebook-size N  visual words (default 65536)\n"
    "      --iterations N   k-means iterations (default 10)\n"
    "      --seed N         seed of the sampling and of the k-means initialisation\n"
    "                       (default 0)\n"
    "      --threads N      compute threads (default: all cores)\n"
    "      --max-samples N  train on at most N descriptors, a uniform random sample\n"
    "                       of all of them (default 10000000)\n"
    "      --scale S        use only the descriptors extracted at scale S, as the\n"
    "                       official recipe does with 1 (default: all scales)\n"
    "      --info           describe the CODEBOOK files given as operands\n"
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
    if (n < k) {
        sf_cli_error(cli, "only %zu descriptors for %zu visual words: k-means needs at least "
                          "as many descriptors as words; use more images or a smaller -k",
                     n, k);
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
                                  .inertia = inertia };
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
               "iterations: %d\nsamples: %llu\ninertia: %.17g\n",
               argv[i], SF_CODEBOOK_VERSION, sf_codebook_size(cb), sf_codebook_dim(cb),
               (unsigned long long)sf_codebook_checksum(cb), (unsigned long long)tr->seed,
               tr->iterations, (unsigned long long)tr->samples, tr->inertia);
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
                   "  or:  sf-codebook --info CODEBOOK...";
    cli.summary = "Train the ASMK visual codebook: k-means on the local descriptors\n"
                  "(local_desc records) of feature streams.  With no STREAM, or when\n"
                  "STREAM is -, read standard input.";
    cli.options_help = options_help;

    trainer t = { .cli = &cli, .max_samples = DEFAULT_MAX_SAMPLES };
    const char *output = NULL;
    int want_info = 0;
    int c;
    while ((c = sf_cli_getopt(&cli, argc, argv, "o:k:", longopts)) != -1) {
        switch (c) {
        case 'o':
            if (!*optarg)
                sf_cli_usage_error(&cli, "--output needs a file name");
            output = optarg;
            break;
        case 'k': sf_cli_set(&cli, "asmk.codebook_size", optarg); break;
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
        default:
            sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    if (want_info) {
        if (output)
            sf_cli_usage_error(&cli, "--info describes codebooks; it writes none (drop -o)");
        if (optind == argc)
            sf_cli_usage_error(&cli, "--info needs a CODEBOOK file");
        return sf_cli_finish(&cli, info(&cli, argc, argv, optind));
    }
    if (!output)
        sf_cli_usage_error(&cli, "no output: give -o CODEBOOK");
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
