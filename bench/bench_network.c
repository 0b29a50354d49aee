/* Backbone + LIT throughput of one compute backend on a random model: the
 * official pyramid of a width x height image, seconds per image, peak RSS,
 * and GFLOP/s against this machine's peak measured in the same run (a
 * large dnnl_sgemm, and an FMA loop).  bench/extract.sh drives it.
 *
 * FLOPs are counted from the network's shapes as the spec computes them:
 * 2 Cin Cout k^2 Hout Wout per convolution; for LIT, K and V (2 L C D
 * each), then per iteration Q (2 N D^2), logits and A^T V (2 L N D each)
 * and the MLP (2 N D^2).  A backend that reassociates does fewer, so its
 * LIT rate is "effective". */
#include "config.h"

#include <dnnl.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sf_model.h"
#include "sf_network.h"

#define PYTORCH_SECONDS 9.1
#define PYTORCH_MB 1300.0

static const char *prog = "bench_network";

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: %s [OPTION]...\n"
            "Time the backbone and LIT of a compute backend on a random model.\n"
            "\n"
            "  --backend NAME        backend to load (default: the best one)\n"
            "  --backend-path DIRS   where to look for backends first\n"
            "  --arch NAME           resnet18, resnet34, resnet50 (default), resnet101\n"
            "  --width N, --height N image size before the pyramid (default 1024 x 640)\n"
            "  --scales LIST         comma-separated (default: the official seven)\n"
            "  --images N            images to time; the first includes set-up (default 3)\n"
            "  --threads N           0: all cores (default)\n"
            "  --bf16                bfloat16 precision where the backend has it\n"
            "  --no-peak             skip measuring the machine's peak\n"
            "  --help                this text\n",
            prog);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int conv_out(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

/* FLOPs of the backbone up to layer3 for an h x w input. */
static double backbone_flops(const sf_backbone_layout *lay, int h, int w)
{
    double f = 0;
#define CONV(cin, cout, k, oh, ow) (f += 2.0 * (cin) * (cout) * (k) * (k) * (double)(oh) * (ow))
    h = conv_out(h, 7, 2, 3);
    w = conv_out(w, 7, 2, 3);
    CONV(3, 64, 7, h, w);
    h = conv_out(h, 3, 2, 1);
    w = conv_out(w, 3, 2, 1);
    int in = 64;
    for (int layer = 0; layer < 3; layer++) {
        int width = 64 << layer, out = lay->bottleneck ? 4 * width : width;
        for (int i = 0; i < lay->blocks[layer]; i++) {
            int s = layer > 0 && i == 0 ? 2 : 1;
            int oh = conv_out(h, 3, s, 1), ow = conv_out(w, 3, s, 1);
            if (lay->bottleneck) {
                CONV(in, width, 1, h, w);
                CONV(width, width, 3, oh, ow);
                CONV(width, out, 1, oh, ow);
            } else {
                CONV(in, width, 3, oh, ow);
                CONV(width, width, 3, oh, ow);
            }
            if (s != 1 || in != out)
                CONV(in, out, 1, oh, ow);
            in = out;
            h = oh;
            w = ow;
        }
    }
#undef CONV
    return f;
}

static double lit_flops(const sf_net_params *p, int c, int l)
{
    double n = p->lit_N, d = p->lit_dim;
    return 4.0 * l * c * d + p->lit_T * (2 * n * d * d + 4.0 * l * n * d + 2 * n * d * d);
}

/* Best of three 2048^3 dnnl_sgemm runs, GFLOP/s. */
static double sgemm_peak(void)
{
    const int n = 2048;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n);
    float *c = malloc(sizeof(float) * n * n);
    double best = 0;
    if (a && b && c) {
        for (size_t i = 0; i < (size_t)n * n; i++) {
            a[i] = (float)(i % 13) * 1e-3f;
            b[i] = (float)(i % 7) * 1e-3f;
        }
        for (int r = 0; r < 4; r++) {
            double t = now();
            dnnl_sgemm('N', 'N', n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            t = now() - t;
            if (r > 0 && 2.0 * n * n * n / t > best)
                best = 2.0 * n * n * n / t;
        }
    }
    free(a);
    free(b);
    free(c);
    return best * 1e-9;
}

#ifdef HAVE_X86
/* One core's fused multiply-add peak: 12 independent chains (enough to
 * cover the latency) of the widest vectors this CPU has.  GFLOP/s. */
#define FMA12(fma)                                                                         \
    do {                                                                                   \
        a0 = fma(a0, m, c), a1 = fma(a1, m, c), a2 = fma(a2, m, c), a3 = fma(a3, m, c);     \
        a4 = fma(a4, m, c), a5 = fma(a5, m, c), a6 = fma(a6, m, c), a7 = fma(a7, m, c);     \
        a8 = fma(a8, m, c), a9 = fma(a9, m, c), a10 = fma(a10, m, c), a11 = fma(a11, m, c); \
    } while (0)

__attribute__((target("avx512f"))) static double fma_peak_512(long iters)
{
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2);
    __m512 a3 = _mm512_set1_ps(3), a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5);
    __m512 a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7), a8 = _mm512_set1_ps(8);
    __m512 a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    double t = now();
    for (long k = 0; k < iters; k++)
        FMA12(_mm512_fmadd_ps);
    t = now() - t;
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return iters * 12.0 * 32 / t * 1e-9;
}

__attribute__((target("avx2,fma"))) static double fma_peak_256(long iters)
{
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2);
    __m256 a3 = _mm256_set1_ps(3), a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5);
    __m256 a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7), a8 = _mm256_set1_ps(8);
    __m256 a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    double t = now();
    for (long k = 0; k < iters; k++)
        FMA12(_mm256_fmadd_ps);
    t = now() - t;
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    volatile float sink = out[0];
    (void)sink;
    return iters * 12.0 * 16 / t * 1e-9;
}

#endif

static double fma_peak(void);

/* Both peaks, measured in a child process so that neither its buffers nor
 * oneDNN's count in this process's peak RSS.  Call before anything here
 * has started OpenMP threads. */
static void measure_peaks(double *gemm, double *fma)
{
    int fd[2];
    double r[2] = { 0, 0 };
    pid_t pid = -1;
    if (pipe(fd) == 0 && (pid = fork()) == 0) {
        r[0] = sgemm_peak();
        r[1] = fma_peak();
        ssize_t n = write(fd[1], r, sizeof r);
        _exit(n == (ssize_t)sizeof r ? 0 : 1);
    }
    if (pid > 0) {
        close(fd[1]);
        if (read(fd[0], r, sizeof r) != (ssize_t)sizeof r)
            r[0] = r[1] = 0;
        close(fd[0]);
        waitpid(pid, NULL, 0);
    } else {
        r[0] = sgemm_peak();
        r[1] = fma_peak();
    }
    *gemm = r[0];
    *fma = r[1];
}

static double fma_peak(void)
{
#ifdef HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return fma_peak_512(100000000);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return fma_peak_256(100000000);
#endif
    return 0;
}

/* Resident MB now (Linux), or -1. */
static double rss_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double mb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            mb = atof(line + 6) / 1024;
    if (f)
        fclose(f);
    return mb;
}

static int parse_int(const char *s, const char *opt, int min)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < min || v > 1000000) {
        fprintf(stderr, "%s: bad value '%s' for %s\n", prog, s, opt);
        fprintf(stderr, "Try '%s --help'.\n", prog);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    const char *backend_name = NULL, *backend_path = NULL, *arch = "resnet50";
    int width = 1024, height = 640, images = 3, threads = 0, bf16 = 0, peak = 1;
    double scales[SF_MODEL_MAX_SCALES];
    int n_scales = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--bf16")) {
            bf16 = 1;
        } else if (!strcmp(a, "--no-peak")) {
            peak = 0;
        } else if (!v) {
            fprintf(stderr, "%s: %s: unknown option or missing value\n", prog, a);
            fprintf(stderr, "Try '%s --help'.\n", prog);
            return 2;
        } else {
            i++;
            if (!strcmp(a, "--backend"))
                backend_name = v;
            else if (!strcmp(a, "--backend-path"))
                backend_path = v;
            else if (!strcmp(a, "--arch"))
                arch = v;
            else if (!strcmp(a, "--width"))
                width = parse_int(v, a, 16);
            else if (!strcmp(a, "--height"))
                height = parse_int(v, a, 16);
            else if (!strcmp(a, "--images"))
                images = parse_int(v, a, 1);
            else if (!strcmp(a, "--threads"))
                threads = parse_int(v, a, 0);
            else if (!strcmp(a, "--scales")) {
                char *copy = strdup(v), *save = NULL;
                for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                    char *end;
                    double s = strtod(t, &end);
                    if (*end != '\0' || !(s > 0 && s <= 4) || n_scales == SF_MODEL_MAX_SCALES) {
                        fprintf(stderr, "%s: bad scale list '%s'\n", prog, v);
                        fprintf(stderr, "Try '%s --help'.\n", prog);
                        return 2;
                    }
                    scales[n_scales++] = s;
                }
                free(copy);
            } else {
                fprintf(stderr, "%s: %s: unknown option\n", prog, a);
                fprintf(stderr, "Try '%s --help'.\n", prog);
                return 2;
            }
        }
    }

    sf_error err;
    sf_error_clear(&err);
    sf_net_params params;
    sf_net_params_init(&params);
    snprintf(params.architecture, sizeof params.architecture, "%s", arch);
    int official = width == 1024 && height == 640 && !strcmp(arch, "resnet50") && !bf16;
    if (n_scales == 0) {
        n_scales = params.n_scales;
        memcpy(scales, params.scales, sizeof(double) * (size_t)n_scales);
    } else {
        official = 0;
    }
    sf_backbone_layout lay;
    sf_backend *backend = NULL;
    sf_model *model = NULL;
    sf_network *net = NULL;
    float *image = NULL, *features = NULL, *super = NULL, *attention = NULL;
    int status = 1;
    if (sf_backbone_layout_get(&params, &lay, &err) != SF_OK ||
        sf_backend_open(&backend, backend_name, backend_path, &err) != SF_OK ||
        sf_model_create_random(&model, &params, 1, &err) != SF_OK)
        goto fail;
    /* The machine's peak first, in a child process. */
    double gemm = 0, fma = 0;
    int cores = threads;
    if (cores <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cores = n > 0 ? (int)n : 1;
    }
    if (peak)
        measure_peaks(&gemm, &fma);
    sf_network_options opt = { threads, bf16 };
    double rss_model = rss_now(), t0 = now();
    if (sf_network_create(&net, backend, model, &opt, &err) != SF_OK)
        goto fail;
    double t_create = now() - t0, rss_net = rss_now();

    /* Buffers for the largest level, reused for all (as an extractor would). */
    size_t max_img = 0, max_feat = 0, max_att = 0;
    double fl_bb = 0, fl_lit = 0;
    int sizes[SF_MODEL_MAX_SCALES][2];
    for (int s = 0; s < n_scales; s++) {
        int h = (int)floor(height * scales[s]), w = (int)floor(width * scales[s]), c, fh, fw;
        if (sf_backbone_output_size(&params, h, w, SF_STAGE_LAYER3, &c, &fh, &fw, &err) != SF_OK)
            goto fail;
        sizes[s][0] = h;
        sizes[s][1] = w;
        if ((size_t)3 * h * w > max_img)
            max_img = (size_t)3 * h * w;
        if ((size_t)c * fh * fw > max_feat)
            max_feat = (size_t)c * fh * fw;
        if ((size_t)fh * fw > max_att)
            max_att = (size_t)fh * fw;
        fl_bb += backbone_flops(&lay, h, w);
        fl_lit += lit_flops(&params, c, fh * fw);
    }
    image = malloc(sizeof(float) * max_img);
    features = malloc(sizeof(float) * max_feat);
    super = malloc(sizeof(float) * (size_t)params.lit_N * params.lit_dim);
    attention = malloc(sizeof(float) * (size_t)params.lit_N * max_att);
    if (!image || !features || !super || !attention) {
        sf_error_set(&err, SF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < max_img; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        image[i] = (float)((double)(x >> 11) * (4.0 / 9007199254740992.0) - 2.0);
    }

    printf("%s: backend %s (%s), %s, %d x %d, %d scales, %d images, threads %d%s\n", prog,
           sf_backend_name(backend), sf_backend_path(backend), arch, width, height, n_scales,
           images, threads, bf16 ? ", bf16" : "");
    double best_bb = 0, best_lit = 0, first = 0;
    /* Per level, the best time over the images after the first: on a
     * shared machine their sum is the better estimate of the code's speed. */
    double lvl_bb[SF_MODEL_MAX_SCALES], lvl_lit[SF_MODEL_MAX_SCALES];
    for (int im = 0; im < images; im++) {
        double tb = 0, tl = 0;
        for (int s = 0; s < n_scales; s++) {
            int h = sizes[s][0], w = sizes[s][1], c, fh, fw;
            sf_backbone_output_size(&params, h, w, SF_STAGE_LAYER3, &c, &fh, &fw, &err);
            double t = now();
            if (sf_network_backbone(net, image, h, w, SF_STAGE_LAYER3, features, &err) != SF_OK)
                goto fail;
            double t2 = now();
            if (sf_network_lit(net, features, fh, fw, super, attention, &err) != SF_OK)
                goto fail;
            double t3 = now();
            if (im <= 1 || t2 - t < lvl_bb[s])
                lvl_bb[s] = t2 - t;
            if (im <= 1 || t3 - t2 < lvl_lit[s])
                lvl_lit[s] = t3 - t2;
            tb += t2 - t;
            tl += t3 - t2;
        }
        printf("  image %d: backbone %.3f s, LIT %.3f s, total %.3f s\n", im + 1, tb, tl, tb + tl);
        if (im == 0)
            first = tb + tl;
        /* The best image after the first (which creates the primitives). */
        if (images == 1 || im == 1 || (im > 1 && tb + tl < best_bb + best_lit)) {
            best_bb = tb;
            best_lit = tl;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = ru.ru_maxrss / 1024.0;
    double total = best_bb + best_lit;
    printf("  set-up %.3f s; first image %.3f s (primitives created)\n", t_create, first);
    printf("  resident: %.0f MB with the model, %.0f MB with the network\n", rss_model, rss_net);
    printf("  best image: %.3f s (backbone %.3f s, LIT %.3f s); peak RSS %.0f MB\n", total,
           best_bb, best_lit, rss);
    if (images > 2) {
        double sb = 0, sl = 0;
        for (int s = 0; s < n_scales; s++) {
            sb += lvl_bb[s];
            sl += lvl_lit[s];
        }
        printf("  best per level, summed: %.3f s (backbone %.3f s, LIT %.3f s)\n", sb + sl, sb, sl);
    }
    printf("  nominal FLOPs (a backend may do fewer: Winograd, reassociation):\n"
           "  backbone %.0f GFLOP: %.1f GFLOP/s; LIT %.0f GFLOP: %.1f GFLOP/s\n",
           fl_bb * 1e-9, fl_bb / best_bb * 1e-9, fl_lit * 1e-9, fl_lit / best_lit * 1e-9);
    if (peak)
        printf("  machine: dnnl_sgemm 2048^3 %.1f GFLOP/s; FMA peak %.1f GFLOP/s per core x %d = %.1f\n",
               gemm, fma, cores, fma * cores);
    if (gemm > 0)
        printf("  backbone %.0f%% and LIT %.0f%% of the dnnl_sgemm rate; %.0f%% and %.0f%% of the FMA peak\n",
               100 * fl_bb / best_bb * 1e-9 / gemm, 100 * fl_lit / best_lit * 1e-9 / gemm,
               100 * fl_bb / best_bb * 1e-9 / (fma * cores), 100 * fl_lit / best_lit * 1e-9 / (fma * cores));
    if (official)
        printf("  vs PyTorch (%.1f s, %.1f GB): %.2fx the speed, %.2fx less memory\n",
               PYTORCH_SECONDS, PYTORCH_MB / 1000, PYTORCH_SECONDS / total, PYTORCH_MB / rss);
    else
        printf("  (not the official 1024 x 640 pyramid: no comparison with PyTorch)\n");
    status = 0;
    goto done;
fail:
    fprintf(stderr, "%s: %s\n", prog, err.message);
done:
    free(image);
    free(features);
    free(super);
    free(attention);
    sf_network_free(net);
    sf_model_free(model);
    sf_backend_close(backend);
    return status;
}
