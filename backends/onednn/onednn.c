/* The oneDNN backend (oneDNN 2.x C API, CPU engine): the network's
 * creation, its threads and the table.  primitives.c holds the weights
 * and the primitives, pipeline.c the backbone, lit.c and lit_kernels.c
 * LIT. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onednn_internal.h"

/* oneDNN here runs on OpenMP (libgomp, a dependency of libdnnl), so the
 * thread count is OpenMP's.  Weak: a oneDNN built on another runtime simply
 * leaves them NULL. */
extern void omp_set_num_threads(int n) __attribute__((weak));
extern int omp_get_max_threads(void) __attribute__((weak));
extern int omp_get_num_procs(void) __attribute__((weak));

sf_status dnnl_fail(sf_error *err, const char *what, dnnl_status_t s)
{
    return sf_error_set(err, SF_ERR_BACKEND, "oneDNN: %s failed (status %d)", what, (int)s);
}

void *alloc_aligned(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, ALIGN, bytes ? bytes : ALIGN) != 0)
        return NULL;
    return p;
}

/* Make *buf hold at least bytes (contents are not kept). */
sf_status ensure(void **buf, size_t *size, size_t bytes, sf_error *err)
{
    if (*size >= bytes)
        return SF_OK;
    free(*buf);
    *buf = alloc_aligned(bytes);
    *size = *buf ? bytes : 0;
    if (!*buf)
        return sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory (%zu MB)",
                            bytes >> 20);
    return SF_OK;
}

/* ---- threads ---- */

int set_threads(const onednn_net *nt)
{
    if (!omp_get_max_threads || !omp_set_num_threads)
        return 0;
    int prev = omp_get_max_threads();
    int want = nt->threads > 0 ? nt->threads : (omp_get_num_procs ? omp_get_num_procs() : prev);
    if (want != prev)
        omp_set_num_threads(want);
    return prev;
}

void restore_threads(int prev)
{
    if (prev > 0 && omp_set_num_threads && omp_get_max_threads() != prev)
        omp_set_num_threads(prev);
}

/* ---- network creation ---- */

const sf_tensor *need(const sf_backend_net *net, const char *name, size_t numel,
                      sf_error *err)
{
    const sf_tensor *t = net->tensor(net->model, name);
    if (!t) {
        sf_error_set(err, SF_ERR_FORMAT, "model has no tensor %s", name);
        return NULL;
    }
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    if (n != numel) {
        sf_error_set(err, SF_ERR_FORMAT, "tensor %s has %zu elements, expected %zu", name, n, numel);
        return NULL;
    }
    return t;
}

static void onednn_free(void *handle)
{
    onednn_net *nt = handle;
    if (!nt)
        return;
    for (int i = 0; i < MAX_SHAPES; i++)
        shape_clear(&nt->shapes[i]);
    conv_free(&nt->stem);
    for (int i = 0; nt->blocks && i < nt->n_blocks; i++) {
        conv_free(&nt->blocks[i].c1);
        conv_free(&nt->blocks[i].c2);
        conv_free(&nt->blocks[i].c3);
        conv_free(&nt->blocks[i].down);
    }
    free(nt->blocks);
    lit_free(nt);
    free(nt->wqk);
    free(nt->lit_small);
    free(nt->rowsum);
    for (int i = 0; i < 4; i++)
        region_free(&nt->regions[i]);
    free(nt->arena);
    free(nt->band);
    free(nt->scratch);
    free(nt->wino_buf);
    if (nt->strm)
        dnnl_stream_destroy(nt->strm);
    if (nt->eng)
        dnnl_engine_destroy(nt->eng);
    free(nt);
}

static sf_status onednn_create(const sf_backend_net *net, void **handle, sf_error *err)
{
    sf_backbone_layout layout;
    sf_status st = sf_backbone_layout_get(net->params, &layout, err);
    if (st != SF_OK)
        return st;
    if (net->params->lit_dim < 2 || net->params->lit_dim % 2 || net->params->lit_N < 1 ||
        net->params->lit_T < 1)
        return sf_error_set(err, SF_ERR_FORMAT, "bad LIT parameters (T %d, N %d, dim %d)",
                            net->params->lit_T, net->params->lit_N, net->params->lit_dim);
    onednn_net *nt = calloc(1, sizeof *nt);
    if (!nt)
        return sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
    nt->params = *net->params;
    nt->layout = layout;
    nt->threads = net->threads;
    nt->C = layout.channels;
    nt->D = net->params->lit_dim;
    nt->N = net->params->lit_N;
    nt->T = net->params->lit_T;
    nt->bf16 = net->precision == SF_PRECISION_BF16;
    nt->es = nt->bf16 ? sizeof(uint16_t) : sizeof(float);
    nt->adt = nt->bf16 ? dnnl_bf16 : dnnl_f32;
    if (net->precision != SF_PRECISION_F32 && !nt->bf16) {
        free(nt);
        return sf_error_set(err, SF_ERR_UNSUPPORTED, "oneDNN backend: unknown precision %d",
                            net->precision);
    }
    /* bf16 only where the CPU multiplies in it: oneDNN would otherwise
     * emulate it (or fall back to reference kernels), slower than f32.
     * oneDNN's view honours DNNL_MAX_CPU_ISA, which the tests use. */
    if (nt->bf16 && (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) !=
                        dnnl_cpu_isa_avx512_core_bf16) {
        free(nt);
        return sf_error_set(err, SF_ERR_UNSUPPORTED,
                            "--precision bf16 needs a CPU with AVX512-BF16 (oneDNN finds none "
                            "here); use --precision f32");
    }
    int prev = set_threads(nt);
    TRY_DNNL(dnnl_engine_create(&nt->eng, dnnl_cpu, 0), "engine creation");
    TRY_DNNL(dnnl_stream_create(&nt->strm, nt->eng, dnnl_stream_default_flags), "stream creation");
    nt->n_blocks = layout.blocks[0] + layout.blocks[1] + layout.blocks[2];
    nt->blocks = calloc((size_t)nt->n_blocks, sizeof *nt->blocks);
    if (!nt->blocks) {
        st = sf_error_set(err, SF_ERR_NOMEM, "oneDNN backend: out of memory");
        goto done;
    }
    if ((st = conv_load(nt, net, "features.0.weight", "features.1", 3, 64, 7, 2, &nt->stem,
                        err)) != SF_OK)
        goto done;
    int in = 64, b = 0;
    for (int layer = 0; layer < 3; layer++) {
        int width = 64 << layer, out = layout.bottleneck ? width * 4 : width;
        for (int i = 0; i < layout.blocks[layer]; i++, b++) {
            block *bl = &nt->blocks[b];
            int stride = (layer > 0 && i == 0) ? 2 : 1;
            bl->stride = stride;
            bl->cin = in;
            bl->width = width;
            bl->cout = out;
            char w[128], bn[128];
#define PART(cv, name, bnname, cin, cout, k, s)                                          \
    snprintf(w, sizeof w, "features.%d.%d.%s.weight", layer + 4, i, name);              \
    snprintf(bn, sizeof bn, "features.%d.%d.%s", layer + 4, i, bnname);                  \
    if ((st = conv_load(nt, net, w, bn, cin, cout, k, s, cv, err)) != SF_OK)            \
        goto done;
            if (layout.bottleneck) {
                /* v1.5: the stride sits on the 3x3 convolution. */
                PART(&bl->c1, "conv1", "bn1", in, width, 1, 1);
                PART(&bl->c2, "conv2", "bn2", width, width, 3, stride);
                PART(&bl->c3, "conv3", "bn3", width, out, 1, 1);
            } else {
                PART(&bl->c1, "conv1", "bn1", in, width, 3, stride);
                PART(&bl->c2, "conv2", "bn2", width, width, 3, 1);
            }
            if (stride != 1 || in != out) {
                bl->has_down = 1;
                PART(&bl->down, "downsample.0", "downsample.1", in, out, 1, stride);
            }
#undef PART
            in = out;
        }
    }
    st = lit_load(nt, net, err);
done:
    restore_threads(prev);
    if (st != SF_OK) {
        onednn_free(nt);
        return st;
    }
    *handle = nt;
    return SF_OK;
}

/* ---- probe and table ---- */

static int onednn_score(char *why, size_t why_size)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        snprintf(why, why_size, "needs a CPU with AVX2 and FMA");
        return 0;
    }
    dnnl_engine_t eng = NULL;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) {
        snprintf(why, why_size, "oneDNN cannot create a CPU engine");
        return 0;
    }
    dnnl_engine_destroy(eng);
    return 100;
}

static const sf_backend_iface onednn_iface = {
    .abi_version = SF_BACKEND_ABI_VERSION,
    .struct_size = sizeof(sf_backend_iface),
    .name = "onednn",
    .description = "oneDNN convolutions (nhwc, fused BatchNorm/ReLU/residual) and sgemm LIT",
    .score = onednn_score,
    .net_create = onednn_create,
    .net_free = onednn_free,
    .backbone = onednn_backbone,
    .lit = onednn_lit,
    .precisions = 1u << SF_PRECISION_BF16,
};

__attribute__((visibility("default"))) const sf_backend_iface *sf_backend_init(void)
{
    return &onednn_iface;
}
