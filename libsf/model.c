#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "model_internal.h"
#include "pickle_internal.h"
#include "sf_internal.h"
#include "zip_internal.h"

/* ---- Parameters ---- */

static const double official_scales[] = { 2.0, 1.414, 1.0, 0.707, 0.5, 0.353, 0.25 };

void sf_net_params_init(sf_net_params *p)
{
    memset(p, 0, sizeof *p);
    strcpy(p->architecture, "resnet50");
    p->skip_layer = 1;
    p->lit_T = 6;
    p->lit_N = 256;
    p->lit_dim = 1024;
    p->reduction_dim = 128;
    p->mean[0] = 0.485f, p->mean[1] = 0.456f, p->mean[2] = 0.406f;
    p->std[0] = 0.229f, p->std[1] = 0.224f, p->std[2] = 0.225f;
    p->image_size = 1024;
    p->features_num = 1000;
    p->n_scales = (int)(sizeof official_scales / sizeof official_scales[0]);
    memcpy(p->scales, official_scales, sizeof official_scales);
}

/* torchvision ResNets: blocks per layer (layer1..3) and block type. */
static const struct arch {
    const char *name;
    int blocks[3];
    int bottleneck;
} archs[] = {
    { "resnet18", { 2, 2, 2 }, 0 },
    { "resnet34", { 3, 4, 6 }, 0 },
    { "resnet50", { 3, 4, 6 }, 1 },
    { "resnet101", { 3, 4, 23 }, 1 },
};

static const struct arch *find_arch(const char *name)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, name) == 0)
            return &archs[i];
    return NULL;
}

int sf_net_params_backbone_channels(const sf_net_params *p)
{
    const struct arch *a = find_arch(p->architecture);
    /* layer3 has 256 planes; a bottleneck expands them 4 times */
    return a ? (a->bottleneck ? 1024 : 256) : 0;
}

static sf_status range_error(const char *label, const char *key, double v, double lo, double hi,
                             sf_error *err)
{
    return sf_error_set(err, SF_ERR_FORMAT, "%s: net_params '%s' = %g is out of range (%g to %g)",
                        label, key, v, lo, hi);
}

sf_status sf_net_params_check(const sf_net_params *p, const char *label, sf_error *err)
{
    if (memchr(p->architecture, '\0', sizeof p->architecture) == NULL || !find_arch(p->architecture))
        return sf_error_set(err, SF_ERR_UNSUPPORTED,
                            "%s: net_params 'architecture' '%.31s' is not supported "
                            "(resnet18, resnet34, resnet50, resnet101)",
                            label, p->architecture);
    if (p->skip_layer != 1)
        return sf_error_set(err, SF_ERR_UNSUPPORTED,
                            "%s: net_params 'skip_layer' = %d is not supported (only 1: the backbone "
                            "ends after layer3)",
                            label, p->skip_layer);
    const struct {
        const char *key;
        int v, lo, hi;
    } ints[] = {
        { "lit.T", p->lit_T, 1, SF_MODEL_MAX_T },
        { "lit.N", p->lit_N, 1, SF_MODEL_MAX_N },
        { "lit.dim", p->lit_dim, 2, SF_MODEL_MAX_DIM },
        { "dim_reduction.dim", p->reduction_dim, 0, SF_MODEL_MAX_DIM },
        { "runtime.image_size", p->image_size, 1, 1 << 16 },
        { "runtime.features_num", p->features_num, 1, 1 << 24 },
        { "runtime.scales (count)", p->n_scales, 1, SF_MODEL_MAX_SCALES },
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].v < ints[i].lo || ints[i].v > ints[i].hi)
            return range_error(label, ints[i].key, ints[i].v, ints[i].lo, ints[i].hi, err);
    for (int i = 0; i < p->n_scales; i++)
        if (!(p->scales[i] > 0 && p->scales[i] <= 16))
            return range_error(label, "runtime.scales", p->scales[i], 0, 16, err);
    for (int c = 0; c < 3; c++) {
        if (!isfinite(p->mean[c]))
            return range_error(label, "runtime.mean_std", p->mean[c], -1e30, 1e30, err);
        if (!(p->std[c] > 0 && isfinite(p->std[c])))
            return range_error(label, "runtime.mean_std", p->std[c], 0, 1e30, err);
    }
    return SF_OK;
}

/* ---- Layout: the state_dict of the network, as torch names it ---- */

typedef struct layout_builder {
    sf_layout_entry *e;
    size_t n, cap;
} layout_builder;

static void add(layout_builder *b, int kind, int ndim, int64_t s0, int64_t s1, int64_t s2,
                int64_t s3, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static void add(layout_builder *b, int kind, int ndim, int64_t s0, int64_t s1, int64_t s2,
                int64_t s3, const char *fmt, ...)
{
    if (b->n >= b->cap)
        return; /* capacity is computed ahead; see sf_model_layout */
    sf_layout_entry *e = &b->e[b->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    e->kind = kind;
    e->ndim = ndim;
    int64_t s[4] = { s0, s1, s2, s3 };
    for (int i = 0; i < SF_MODEL_MAX_DIMS; i++)
        e->shape[i] = i < ndim ? s[i] : 0;
}

static void add_bn(layout_builder *b, int64_t c, const char *prefix)
{
    add(b, SF_LAYOUT_PARAM, 1, c, 0, 0, 0, "%s.weight", prefix);
    add(b, SF_LAYOUT_PARAM, 1, c, 0, 0, 0, "%s.bias", prefix);
    add(b, SF_LAYOUT_STAT, 1, c, 0, 0, 0, "%s.running_mean", prefix);
    add(b, SF_LAYOUT_STAT, 1, c, 0, 0, 0, "%s.running_var", prefix);
    add(b, SF_LAYOUT_COUNT, 0, 0, 0, 0, 0, "%s.num_batches_tracked", prefix);
}

static void add_conv(layout_builder *b, int64_t out, int64_t in, int64_t k, const char *fmt,
                     const char *prefix)
{
    char name[SF_LAYOUT_NAME_MAX];
    snprintf(name, sizeof name, fmt, prefix);
    add(b, SF_LAYOUT_PARAM, 4, out, in, k, k, "%s", name);
}

sf_status sf_model_layout(const sf_net_params *p, sf_layout_entry **out, size_t *n,
                          const char *label, sf_error *err)
{
    sf_status st = sf_net_params_check(p, label, err);
    if (st)
        return st;
    const struct arch *a = find_arch(p->architecture);
    /* Upper bound: stem 6, per block 3 convs + 3 BNs + downsample 6,
     * dim reduction 2, LIT 14. */
    size_t blocks = (size_t)(a->blocks[0] + a->blocks[1] + a->blocks[2]);
    layout_builder b = { .cap = 6 + blocks * 24 + 2 + 14 };
    b.e = calloc(b.cap, sizeof *b.e);
    if (!b.e)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", label);

    /* torchvision ResNet children: conv1, bn1, relu, maxpool, layer1..;
     * the FIRe backbone is an nn.Sequential of them, so layer1 is features.4. */
    add(&b, SF_LAYOUT_PARAM, 4, 64, 3, 7, 7, "features.0.weight");
    add_bn(&b, 64, "features.1");
    int64_t inplanes = 64, expansion = a->bottleneck ? 4 : 1;
    for (int li = 0; li < 3; li++) {
        int64_t planes = (int64_t)64 << li;
        for (int bi = 0; bi < a->blocks[li]; bi++) {
            char blk[32], sub[48];
            snprintf(blk, sizeof blk, "features.%d.%d", 4 + li, bi);
            int stride = (li > 0 && bi == 0) ? 2 : 1;
            if (a->bottleneck) {
                /* v1.5: the stride sits on conv2, which does not change shapes */
                add_conv(&b, planes, inplanes, 1, "%s.conv1.weight", blk);
                snprintf(sub, sizeof sub, "%s.bn1", blk);
                add_bn(&b, planes, sub);
                add_conv(&b, planes, planes, 3, "%s.conv2.weight", blk);
                snprintf(sub, sizeof sub, "%s.bn2", blk);
                add_bn(&b, planes, sub);
                add_conv(&b, planes * 4, planes, 1, "%s.conv3.weight", blk);
                snprintf(sub, sizeof sub, "%s.bn3", blk);
                add_bn(&b, planes * 4, sub);
            } else {
                add_conv(&b, planes, inplanes, 3, "%s.conv1.weight", blk);
                snprintf(sub, sizeof sub, "%s.bn1", blk);
                add_bn(&b, planes, sub);
                add_conv(&b, planes, planes, 3, "%s.conv2.weight", blk);
                snprintf(sub, sizeof sub, "%s.bn2", blk);
                add_bn(&b, planes, sub);
            }
            if (stride != 1 || inplanes != planes * expansion) {
                add_conv(&b, planes * expansion, inplanes, 1, "%s.downsample.0.weight", blk);
                snprintf(sub, sizeof sub, "%s.downsample.1", blk);
                add_bn(&b, planes * expansion, sub);
            }
            inplanes = planes * expansion;
        }
    }
    /* FIReNet registers dim_reduction (HOWNet) before lit. */
    int64_t D = p->lit_dim, C = inplanes;
    if (p->reduction_dim > 0) {
        add(&b, SF_LAYOUT_PARAM, 4, p->reduction_dim, D, 1, 1, "dim_reduction.weight");
        add(&b, SF_LAYOUT_PARAM, 1, p->reduction_dim, 0, 0, 0, "dim_reduction.bias");
    }
    /* templates_init is an nn.Parameter of shape (1, N, dim). */
    add(&b, SF_LAYOUT_PARAM, 3, 1, p->lit_N, D, 0, "lit.templates_init");
    add(&b, SF_LAYOUT_PARAM, 2, D, D, 0, 0, "lit.project_q.weight");
    add(&b, SF_LAYOUT_PARAM, 2, D, C, 0, 0, "lit.project_k.weight");
    add(&b, SF_LAYOUT_PARAM, 2, D, C, 0, 0, "lit.project_v.weight");
    add(&b, SF_LAYOUT_PARAM, 1, C, 0, 0, 0, "lit.norm_inputs.weight");
    add(&b, SF_LAYOUT_PARAM, 1, C, 0, 0, 0, "lit.norm_inputs.bias");
    add(&b, SF_LAYOUT_PARAM, 1, D, 0, 0, 0, "lit.norm_templates.weight");
    add(&b, SF_LAYOUT_PARAM, 1, D, 0, 0, 0, "lit.norm_templates.bias");
    add(&b, SF_LAYOUT_PARAM, 1, D, 0, 0, 0, "lit.norm_mlp.weight");
    add(&b, SF_LAYOUT_PARAM, 1, D, 0, 0, 0, "lit.norm_mlp.bias");
    add(&b, SF_LAYOUT_PARAM, 2, D / 2, D, 0, 0, "lit.mlp.0.weight");
    add(&b, SF_LAYOUT_PARAM, 1, D / 2, 0, 0, 0, "lit.mlp.0.bias");
    add(&b, SF_LAYOUT_PARAM, 2, D, D / 2, 0, 0, "lit.mlp.2.weight");
    add(&b, SF_LAYOUT_PARAM, 1, D, 0, 0, 0, "lit.mlp.2.bias");
    *out = b.e;
    *n = b.n;
    return SF_OK;
}

/* ---- The model object ---- */

size_t sf_tensor_numel(const sf_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

const char *sf_shape_string(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
    return buf;
}

sf_status sf_model_new(sf_model **out, const sf_net_params *p, const char *label, sf_error *err)
{
    sf_layout_entry *lay;
    size_t n_lay;
    *out = NULL;
    sf_status st = sf_model_layout(p, &lay, &n_lay, label, err);
    if (st)
        return st;
    sf_model *m = calloc(1, sizeof *m);
    size_t n = 0, name_bytes = 0;
    for (size_t i = 0; i < n_lay; i++)
        if (lay[i].kind != SF_LAYOUT_COUNT)
            n++, name_bytes += strlen(lay[i].name) + 1;
    if (m) {
        m->tensors = calloc(n, sizeof *m->tensors);
        m->kinds = calloc(n, sizeof *m->kinds);
        m->owned = calloc(n, sizeof *m->owned);
        m->names = malloc(name_bytes);
    }
    if (!m || !m->tensors || !m->kinds || !m->owned || !m->names) {
        free(lay);
        sf_model_free(m);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", label);
    }
    m->params = *p;
    m->n_tensors = n;
    char *q = m->names;
    for (size_t i = 0, j = 0; i < n_lay; i++) {
        if (lay[i].kind == SF_LAYOUT_COUNT)
            continue;
        size_t len = strlen(lay[i].name) + 1;
        memcpy(q, lay[i].name, len);
        m->tensors[j].name = q;
        m->tensors[j].ndim = lay[i].ndim;
        memcpy(m->tensors[j].shape, lay[i].shape, sizeof lay[i].shape);
        m->kinds[j] = lay[i].kind;
        q += len;
        j++;
    }
    free(lay);
    *out = m;
    return SF_OK;
}

long sf_model_find(const sf_model *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->n_tensors; i++)
        if (strncmp(m->tensors[i].name, name, len) == 0 && m->tensors[i].name[len] == '\0')
            return (long)i;
    return -1;
}

void sf_net_params_encode(const sf_net_params *p, unsigned char *out)
{
    memset(out, 0, SF_PARAMS_BYTES);
    size_t alen = strnlen(p->architecture, sizeof p->architecture - 1);
    memcpy(out, p->architecture, alen);
    const int ints[8] = { p->skip_layer, p->lit_T, p->lit_N, p->lit_dim, p->reduction_dim,
                          p->image_size, p->features_num, p->n_scales };
    for (int i = 0; i < 8; i++)
        sf_put_u32(out + 32 + 4 * i, (uint32_t)ints[i]);
    for (int c = 0; c < 3; c++) {
        uint32_t u;
        memcpy(&u, &p->mean[c], 4);
        sf_put_u32(out + 64 + 4 * c, u);
        memcpy(&u, &p->std[c], 4);
        sf_put_u32(out + 76 + 4 * c, u);
    }
    for (int i = 0; i < p->n_scales && i < SF_MODEL_MAX_SCALES; i++)
        sf_put_f64(out + 88 + 8 * i, p->scales[i]);
}

sf_status sf_net_params_decode(sf_net_params *p, const unsigned char *in, const char *label,
                               sf_error *err)
{
    memset(p, 0, sizeof *p);
    if (memchr(in, '\0', 32) == NULL)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: architecture name is not terminated", label);
    memcpy(p->architecture, in, 32);
    int *ints[8] = { &p->skip_layer, &p->lit_T, &p->lit_N, &p->lit_dim, &p->reduction_dim,
                     &p->image_size, &p->features_num, &p->n_scales };
    for (int i = 0; i < 8; i++)
        *ints[i] = (int)(int32_t)sf_get_u32(in + 32 + 4 * i);
    for (int c = 0; c < 3; c++) {
        uint32_t u = sf_get_u32(in + 64 + 4 * c);
        memcpy(&p->mean[c], &u, 4);
        u = sf_get_u32(in + 76 + 4 * c);
        memcpy(&p->std[c], &u, 4);
    }
    for (int i = 0; i < SF_MODEL_MAX_SCALES; i++)
        p->scales[i] = sf_get_f64(in + 88 + 8 * i);
    return SF_OK;
}

sf_status sf_model_seal(sf_model *m, sf_error *err)
{
    size_t *order = malloc(m->n_tensors * sizeof *order);
    if (!order)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m->n_tensors; i++)
        order[i] = i;
    /* Insertion sort (qsort has no context argument): a few hundred names,
     * already nearly sorted. */
    for (size_t i = 1; i < m->n_tensors; i++) {
        size_t v = order[i], j = i;
        while (j > 0 && strcmp(m->tensors[order[j - 1]].name, m->tensors[v].name) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    XXH64_state_t state;
    XXH64_reset(&state, 0);
    unsigned char buf[SF_PARAMS_BYTES];
    sf_net_params_encode(&m->params, buf);
    XXH64_update(&state, buf, sizeof buf);
    m->n_params = 0;
    for (size_t k = 0; k < m->n_tensors; k++) {
        const sf_tensor *t = &m->tensors[order[k]];
        XXH64_update(&state, t->name, strlen(t->name) + 1);
        sf_put_u32(buf, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++)
            sf_put_u64(buf + 4 + 8 * d, (uint64_t)t->shape[d]);
        XXH64_update(&state, buf, 4 + 8 * (size_t)t->ndim);
        size_t numel = sf_tensor_numel(t);
        XXH64_update(&state, t->data, numel * sizeof(float)); /* host is little-endian */
        if (m->kinds[order[k]] == SF_LAYOUT_PARAM)
            m->n_params += numel;
    }
    m->checksum = XXH64_digest(&state);
    free(order);
    return SF_OK;
}

void sf_model_free(sf_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; m->owned && i < m->n_tensors; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->tensors);
    free(m->kinds);
    free(m->names);
    if (m->base) {
        if (m->base_mapped)
            munmap(m->base, m->base_size);
        else
            free(m->base);
    }
    free(m);
}

const sf_net_params *sf_model_params(const sf_model *m) { return &m->params; }
size_t sf_model_tensor_count(const sf_model *m) { return m->n_tensors; }
uint64_t sf_model_parameter_count(const sf_model *m) { return m->n_params; }
uint64_t sf_model_checksum(const sf_model *m) { return m->checksum; }

const sf_tensor *sf_model_tensor_at(const sf_model *m, size_t i)
{
    return i < m->n_tensors ? &m->tensors[i] : NULL;
}

const sf_tensor *sf_model_tensor(const sf_model *m, const char *name)
{
    long i = name ? sf_model_find(m, name, strlen(name)) : -1;
    return i >= 0 ? &m->tensors[i] : NULL;
}

/* ---- net_params from the pickle ---- */

typedef struct pth_ctx {
    const char *name;      /* file name for messages */
    sf_pickle *pk;
    sf_zip *zip;
    const char *prefix;    /* archive folder: "model" in "model/data.pkl" */
    size_t prefix_len;
    sf_error *err;
} pth_ctx;

static sf_status type_error(pth_ctx *c, const char *key, const char *want, uint32_t id)
{
    char got[256];
    sf_pickle_describe(c->pk, id, got, sizeof got);
    return sf_error_set(c->err, SF_ERR_FORMAT, "%s: net_params '%s' must be %s, got %s", c->name,
                        key, want, got);
}

static sf_status missing_key(pth_ctx *c, const char *key)
{
    return sf_error_set(c->err, SF_ERR_FORMAT, "%s: net_params has no '%s'", c->name, key);
}

/* Integer at dict[key] into *out; absent keys keep *out when optional. */
static sf_status get_int(pth_ctx *c, uint32_t dict, const char *key, const char *path, int *out,
                         int required)
{
    uint32_t id = sf_pickle_dict_get(c->pk, dict, key);
    if (id == SF_PICKLE_NONE_ID)
        return required ? missing_key(c, path) : SF_OK;
    const sf_pvalue *v = sf_pickle_value(c->pk, id);
    if (v->kind != SF_PK_INT)
        return type_error(c, path, "an integer", id);
    if (v->u.i < -(1LL << 30) || v->u.i > (1LL << 30))
        return sf_error_set(c->err, SF_ERR_FORMAT, "%s: net_params '%s' = %lld is out of range",
                            c->name, path, (long long)v->u.i);
    *out = (int)v->u.i;
    return SF_OK;
}

static int get_number(const sf_pvalue *v, double *out)
{
    if (v->kind == SF_PK_FLOAT)
        *out = v->u.f;
    else if (v->kind == SF_PK_INT)
        *out = (double)v->u.i;
    else
        return 0;
    return 1;
}

/* A list or tuple of numbers, at most max of them. */
static sf_status get_numbers(pth_ctx *c, uint32_t id, const char *path, double *out, int max,
                             int *n)
{
    const sf_pvalue *v = sf_pickle_value(c->pk, id);
    if (v->kind != SF_PK_LIST && v->kind != SF_PK_TUPLE)
        return type_error(c, path, "a list of numbers", id);
    if (v->u.c.n > (uint32_t)max)
        return sf_error_set(c->err, SF_ERR_FORMAT, "%s: net_params '%s' has %u values (at most %d)",
                            c->name, path, v->u.c.n, max);
    for (uint32_t i = 0; i < v->u.c.n; i++)
        if (!get_number(sf_pickle_value(c->pk, v->u.c.items[i]), &out[i]))
            return type_error(c, path, "a list of numbers", v->u.c.items[i]);
    *n = (int)v->u.c.n;
    return SF_OK;
}

static sf_status get_dict(pth_ctx *c, uint32_t dict, const char *key, uint32_t *out)
{
    *out = sf_pickle_dict_get(c->pk, dict, key);
    if (*out == SF_PICKLE_NONE_ID)
        return missing_key(c, key);
    if (sf_pickle_value(c->pk, *out)->kind != SF_PK_DICT)
        return type_error(c, key, "a dict", *out);
    return SF_OK;
}

/* init_network(architecture, pretrained, skip_layer, dim_reduction, lit,
 * runtime) has no defaults, so those keys are required (dim_reduction may
 * be None or empty: no reduction layer).  Of runtime, only mean_std is read
 * from the network by the official evaluation; image_size, features_num and
 * scales come from its configuration, so they default to the official
 * values here. */
static sf_status parse_net_params(pth_ctx *c, uint32_t np, sf_net_params *p)
{
    sf_status st;
    sf_net_params_init(p);
    uint32_t id = sf_pickle_dict_get(c->pk, np, "architecture");
    if (id == SF_PICKLE_NONE_ID)
        return missing_key(c, "architecture");
    const sf_pvalue *v = sf_pickle_value(c->pk, id);
    if (v->kind != SF_PK_STR)
        return type_error(c, "architecture", "a string", id);
    if (v->u.s.n >= sizeof p->architecture || memchr(v->u.s.p, '\0', v->u.s.n)) {
        char nm[64];
        return sf_error_set(c->err, SF_ERR_UNSUPPORTED,
                            "%s: net_params 'architecture' '%s' is not supported "
                            "(resnet18, resnet34, resnet50, resnet101)",
                            c->name, sf_zip_printable(nm, sizeof nm, v->u.s.p, v->u.s.n));
    }
    memset(p->architecture, 0, sizeof p->architecture);
    sf_copy_text(p->architecture, sizeof p->architecture, v->u.s.p, v->u.s.n);
    if ((st = get_int(c, np, "skip_layer", "skip_layer", &p->skip_layer, 1)))
        return st;

    uint32_t lit, rt;
    if ((st = get_dict(c, np, "lit", &lit)) || (st = get_int(c, lit, "T", "lit.T", &p->lit_T, 1))
        || (st = get_int(c, lit, "N", "lit.N", &p->lit_N, 1))
        || (st = get_int(c, lit, "dim", "lit.dim", &p->lit_dim, 1)))
        return st;

    id = sf_pickle_dict_get(c->pk, np, "dim_reduction");
    if (id == SF_PICKLE_NONE_ID)
        return missing_key(c, "dim_reduction");
    v = sf_pickle_value(c->pk, id);
    p->reduction_dim = 0;
    if (v->kind == SF_PK_DICT && v->u.c.n > 0) {
        if ((st = get_int(c, id, "dim", "dim_reduction.dim", &p->reduction_dim, 1)))
            return st;
        if (p->reduction_dim <= 0)
            return sf_error_set(c->err, SF_ERR_FORMAT, "%s: net_params 'dim_reduction.dim' = %d",
                                c->name, p->reduction_dim);
    } else if (v->kind != SF_PK_NONE && v->kind != SF_PK_DICT) {
        return type_error(c, "dim_reduction", "a dict or None", id);
    }

    if ((st = get_dict(c, np, "runtime", &rt)))
        return st;
    id = sf_pickle_dict_get(c->pk, rt, "mean_std");
    if (id == SF_PICKLE_NONE_ID)
        return missing_key(c, "runtime.mean_std");
    v = sf_pickle_value(c->pk, id);
    if ((v->kind != SF_PK_LIST && v->kind != SF_PK_TUPLE) || v->u.c.n != 2)
        return type_error(c, "runtime.mean_std", "two lists of 3 numbers", id);
    for (int k = 0; k < 2; k++) {
        double vals[3];
        int n;
        if ((st = get_numbers(c, v->u.c.items[k], "runtime.mean_std", vals, 3, &n)))
            return st;
        if (n != 3)
            return type_error(c, "runtime.mean_std", "two lists of 3 numbers", id);
        for (int j = 0; j < 3; j++)
            (k ? p->std : p->mean)[j] = (float)vals[j];
    }
    if ((st = get_int(c, rt, "image_size", "runtime.image_size", &p->image_size, 0))
        || (st = get_int(c, rt, "features_num", "runtime.features_num", &p->features_num, 0)))
        return st;
    id = sf_pickle_dict_get(c->pk, rt, "scales");
    if (id != SF_PICKLE_NONE_ID
        && (st = get_numbers(c, id, "runtime.scales", p->scales, SF_MODEL_MAX_SCALES, &p->n_scales)))
        return st;
    return SF_OK;
}

/* ---- Tensors from the pickle ---- */

static sf_status tensor_error(pth_ctx *c, sf_status status, const char *tname, size_t tlen,
                              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static sf_status tensor_error(pth_ctx *c, sf_status status, const char *tname, size_t tlen,
                              const char *fmt, ...)
{
    char nm[160], msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sf_error_set(c->err, status, "%s: tensor '%s': %s", c->name,
                        sf_zip_printable(nm, sizeof nm, tname, tlen), msg);
}

/* The bytes of the storage behind a tensor, bounds-checked: the extent the
 * tensor addresses must lie within the declared storage, which must lie
 * within its zip member. */
static sf_status storage_bytes(pth_ctx *c, const char *tname, size_t tlen, const sf_ptensor *t,
                               int want_dtype, const unsigned char **bytes)
{
    const sf_pvalue *s = sf_pickle_value(c->pk, t->storage);
    if (s->dtype != want_dtype)
        return tensor_error(c, SF_ERR_UNSUPPORTED, tname, tlen, "stored as %s, expected %s",
                            sf_pdtype_name(s->dtype), sf_pdtype_name(want_dtype));
    for (uint32_t i = 0; i < s->u.st.key_n; i++) {
        unsigned char ch = (unsigned char)s->u.st.key[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '/')
            return tensor_error(c, SF_ERR_FORMAT, tname, tlen, "malformed storage key");
    }
    char member[160];
    int mlen = snprintf(member, sizeof member, "%.*s/data/%.*s", (int)c->prefix_len, c->prefix,
                        (int)s->u.st.key_n, s->u.st.key);
    if (mlen < 0 || (size_t)mlen >= sizeof member)
        return tensor_error(c, SF_ERR_FORMAT, tname, tlen, "storage key too long");
    sf_zip_entry *e = sf_zip_find(c->zip, member, (size_t)mlen);
    if (!e)
        return tensor_error(c, SF_ERR_FORMAT, tname, tlen, "its storage, zip member '%s', is missing",
                            member);
    const unsigned char *data;
    uint64_t size;
    sf_status st = sf_zip_read(c->zip, e, &data, &size, c->err);
    if (st)
        return st;
    uint64_t esize = sf_pdtype_size(s->dtype);
    if ((uint64_t)s->u.st.numel > size / esize)
        return tensor_error(c, SF_ERR_FORMAT, tname, tlen,
                            "storage of %lld elements but zip member '%s' holds only %llu bytes",
                            (long long)s->u.st.numel, member, (unsigned long long)size);
    /* Extent: offset + 1 + sum (size_i - 1) * stride_i, without overflow. */
    int empty = 0;
    uint64_t extent = (uint64_t)t->offset + 1;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t span;
        if (t->shape[d] == 0) {
            empty = 1;
            continue;
        }
        if (__builtin_mul_overflow((uint64_t)(t->shape[d] - 1), (uint64_t)t->stride[d], &span)
            || __builtin_add_overflow(extent, span, &extent))
            return tensor_error(c, SF_ERR_FORMAT, tname, tlen, "strides overflow");
    }
    if (!empty && extent > (uint64_t)s->u.st.numel)
        return tensor_error(c, SF_ERR_FORMAT, tname, tlen,
                            "reaches element %llu of a storage of %lld elements",
                            (unsigned long long)extent, (long long)s->u.st.numel);
    /* Expanded views (stride 0) would let a few bytes of file become
     * gigabytes of copies; torch.save never writes them for parameters. */
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++)
        if (__builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel))
            return tensor_error(c, SF_ERR_FORMAT, tname, tlen, "size overflows");
    if (numel > (uint64_t)s->u.st.numel)
        return tensor_error(c, SF_ERR_UNSUPPORTED, tname, tlen,
                            "has %llu elements but its storage only %lld (expanded views are not "
                            "supported)",
                            (unsigned long long)numel, (long long)s->u.st.numel);
    *bytes = data;
    return SF_OK;
}

static int is_contiguous(const sf_ptensor *t)
{
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect)
            return 0;
        expect *= t->shape[d];
    }
    return 1;
}

/* Set model tensor i from pickle tensor t (shape already checked). */
static sf_status fill_tensor(pth_ctx *c, sf_model *m, size_t i, const sf_ptensor *t)
{
    const char *tname = m->tensors[i].name;
    const unsigned char *bytes;
    sf_status st = storage_bytes(c, tname, strlen(tname), t, SF_PDT_F32, &bytes);
    if (st)
        return st;
    const float *src = (const float *)(const void *)bytes + t->offset;
    size_t numel = sf_tensor_numel(&m->tensors[i]);
    if (is_contiguous(t) && ((uintptr_t)src % sizeof(float)) == 0) {
        m->tensors[i].data = src;
        return SF_OK;
    }
    /* Strided or unaligned: gather a C-order copy, a row (the last
     * dimension) at a time. */
    float *dst = malloc(numel * sizeof *dst);
    if (!dst)
        return sf_error_set(c->err, SF_ERR_NOMEM, "%s: out of memory", c->name);
    int nd = t->ndim;
    int64_t idx[SF_PICKLE_MAX_NDIM] = { 0 };
    size_t inner = nd ? (size_t)t->shape[nd - 1] : 1;
    int64_t istride = nd ? t->stride[nd - 1] : 0;
    for (size_t row = 0; row < numel / inner; row++) {
        int64_t off = t->offset;
        for (int d = 0; d < nd - 1; d++)
            off += idx[d] * t->stride[d];
        const unsigned char *from = bytes + (size_t)off * sizeof(float);
        float *to = dst + row * inner;
        if (istride == 1) {
            memcpy(to, from, inner * sizeof(float));
        } else {
            for (size_t j = 0; j < inner; j++)
                memcpy(&to[j], from + j * (size_t)istride * sizeof(float), sizeof(float));
        }
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
    }
    m->owned[i] = dst;
    m->tensors[i].data = dst;
    return SF_OK;
}

static int layout_cmp(const void *a, const void *b)
{
    return strcmp(((const sf_layout_entry *)a)->name, ((const sf_layout_entry *)b)->name);
}

static sf_status fill_state_dict(pth_ctx *c, uint32_t sd, sf_model *m)
{
    sf_layout_entry *lay;
    size_t n_lay;
    sf_status st = sf_model_layout(&m->params, &lay, &n_lay, c->name, c->err);
    if (st)
        return st;
    qsort(lay, n_lay, sizeof *lay, layout_cmp);
    unsigned char *seen = calloc(n_lay ? n_lay : 1, 1);
    if (!seen) {
        free(lay);
        return sf_error_set(c->err, SF_ERR_NOMEM, "%s: out of memory", c->name);
    }
    const sf_pvalue *d = sf_pickle_value(c->pk, sd);
    for (uint32_t k = 0; k + 1 < d->u.c.n && !st; k += 2) {
        uint32_t key_id = d->u.c.items[k], val_id = d->u.c.items[k + 1];
        const sf_pvalue *key = sf_pickle_value(c->pk, key_id), *val = sf_pickle_value(c->pk, val_id);
        char desc[256], shp[96], want[96];
        if (key->kind != SF_PK_STR) {
            st = sf_error_set(c->err, SF_ERR_FORMAT, "%s: state_dict has a key that is %s", c->name,
                              sf_pickle_describe(c->pk, key_id, desc, sizeof desc));
            break;
        }
        const char *tn = key->u.s.p;
        size_t tl = key->u.s.n;
        sf_layout_entry probe;
        if (tl >= sizeof probe.name || memchr(tn, '\0', tl)) {
            st = tensor_error(c, SF_ERR_FORMAT, tn, tl,
                              "not part of the network (unexpected state_dict entry)");
            break;
        }
        sf_copy_text(probe.name, sizeof probe.name, tn, tl);
        sf_layout_entry *e = bsearch(&probe, lay, n_lay, sizeof *lay, layout_cmp);
        if (!e) {
            st = tensor_error(c, SF_ERR_FORMAT, tn, tl,
                              "not part of a %s FIRe network (unexpected state_dict entry)",
                              m->params.architecture);
            break;
        }
        if (seen[e - lay]++) {
            st = tensor_error(c, SF_ERR_FORMAT, tn, tl, "appears twice in state_dict");
            break;
        }
        if (val->kind != SF_PK_TENSOR) {
            st = tensor_error(c, SF_ERR_FORMAT, tn, tl, "expected a tensor, got %s",
                              sf_pickle_describe(c->pk, val_id, desc, sizeof desc));
            break;
        }
        const sf_ptensor *t = &c->pk->tensors[val->u.tensor];
        int same = t->ndim == e->ndim;
        for (int i = 0; same && i < e->ndim; i++)
            same = t->shape[i] == e->shape[i];
        if (!same) {
            st = tensor_error(c, SF_ERR_FORMAT, tn, tl, "shape %s, expected %s",
                              sf_shape_string(shp, sizeof shp, t->ndim, t->shape),
                              sf_shape_string(want, sizeof want, e->ndim, e->shape));
            break;
        }
        if (e->kind == SF_LAYOUT_COUNT) {
            /* Read (so its storage is checked) and dropped. */
            const unsigned char *bytes;
            st = storage_bytes(c, tn, tl, t, SF_PDT_I64, &bytes);
            continue;
        }
        long i = sf_model_find(m, e->name, strlen(e->name));
        st = fill_tensor(c, m, (size_t)i, t);
    }
    /* Missing: report the first in network order, and how many. */
    for (size_t i = 0; !st && i < m->n_tensors; i++) {
        if (m->tensors[i].data)
            continue;
        size_t missing = 0;
        for (size_t j = i; j < m->n_tensors; j++)
            missing += m->tensors[j].data == NULL;
        if (missing > 1)
            st = sf_error_set(c->err, SF_ERR_FORMAT,
                              "%s: tensor '%s': missing from state_dict (and %zu more)", c->name,
                              m->tensors[i].name, missing - 1);
        else
            st = sf_error_set(c->err, SF_ERR_FORMAT, "%s: tensor '%s': missing from state_dict",
                              c->name, m->tensors[i].name);
    }
    free(seen);
    free(lay);
    return st;
}

/* ---- The PyTorch checkpoint ---- */

static sf_status load_pth(sf_model **out, const unsigned char *data, size_t size, const char *name,
                          sf_error *err)
{
    sf_zip zip;
    sf_pickle pk;
    sf_model *m = NULL;
    char *label = NULL;
    memset(&pk, 0, sizeof pk);
    sf_status st = sf_zip_open(&zip, data, size, name, err);
    if (st)
        return st;

    /* torch.save puts everything under one folder named after the file it
     * first wrote ("model/", "archive/"): find its data.pkl. */
    sf_zip_entry *pkl = NULL;
    for (size_t i = 0; i < zip.n_entries; i++) {
        sf_zip_entry *e = &zip.entries[i];
        const char *slash = memchr(e->name, '/', e->name_len);
        if (slash && slash > e->name && (size_t)(e->name + e->name_len - slash) == 9
            && memcmp(slash, "/data.pkl", 9) == 0) {
            if (pkl) {
                st = sf_error_set(err, SF_ERR_FORMAT, "%s: the archive holds more than one data.pkl",
                                  name);
                goto done;
            }
            pkl = e;
        }
    }
    if (!pkl) {
        st = sf_error_set(err, SF_ERR_FORMAT,
                          "%s: no '<folder>/data.pkl' member: not a PyTorch checkpoint", name);
        goto done;
    }
    pth_ctx c = { .name = name, .pk = &pk, .zip = &zip, .prefix = pkl->name,
                  .prefix_len = pkl->name_len - 9, .err = err };
    if (c.prefix_len > 64) {
        st = sf_error_set(err, SF_ERR_FORMAT, "%s: archive folder name is too long", name);
        goto done;
    }

    /* torch >= 2.1 records the byte order of the storages. */
    char bo_name[96];
    int bo_len = snprintf(bo_name, sizeof bo_name, "%.*s/byteorder", (int)c.prefix_len, c.prefix);
    sf_zip_entry *bo = sf_zip_find(&zip, bo_name, (size_t)bo_len);
    const unsigned char *bytes;
    uint64_t nbytes;
    if (bo) {
        if ((st = sf_zip_read(&zip, bo, &bytes, &nbytes, err)))
            goto done;
        if (nbytes != 6 || memcmp(bytes, "little", 6) != 0) {
            st = sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: storages are not little-endian", name);
            goto done;
        }
    }

    if ((st = sf_zip_read(&zip, pkl, &bytes, &nbytes, err)))
        goto done;
    size_t llen = strlen(name) + pkl->name_len + 4;
    label = malloc(llen);
    if (!label) {
        st = sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    snprintf(label, llen, "%s: %.*s", name, (int)pkl->name_len, pkl->name);
    if ((st = sf_pickle_load(&pk, bytes, (size_t)nbytes, label, err)))
        goto done;

    const sf_pvalue *root = sf_pickle_value(&pk, pk.root);
    if (!root || root->kind != SF_PK_DICT) {
        char desc[256];
        st = sf_error_set(err, SF_ERR_FORMAT,
                          "%s: the checkpoint is %s, not a dict with state_dict and net_params",
                          name, sf_pickle_describe(&pk, pk.root, desc, sizeof desc));
        goto done;
    }
    uint32_t sd = sf_pickle_dict_get(&pk, pk.root, "state_dict");
    uint32_t np = sf_pickle_dict_get(&pk, pk.root, "net_params");
    char desc[256];
    if (sd == SF_PICKLE_NONE_ID || sf_pickle_value(&pk, sd)->kind != SF_PK_DICT) {
        st = sf_error_set(err, SF_ERR_FORMAT, "%s: 'state_dict' is %s, expected a dict", name,
                          sd == SF_PICKLE_NONE_ID ? "missing"
                                                  : sf_pickle_describe(&pk, sd, desc, sizeof desc));
        goto done;
    }
    if (np == SF_PICKLE_NONE_ID || sf_pickle_value(&pk, np)->kind != SF_PK_DICT) {
        st = sf_error_set(err, SF_ERR_FORMAT, "%s: 'net_params' is %s, expected a dict", name,
                          np == SF_PICKLE_NONE_ID ? "missing"
                                                  : sf_pickle_describe(&pk, np, desc, sizeof desc));
        goto done;
    }
    sf_net_params params;
    if ((st = parse_net_params(&c, np, &params)) || (st = sf_model_new(&m, &params, name, err))
        || (st = fill_state_dict(&c, sd, m)) || (st = sf_model_seal(m, err)))
        goto done;
    *out = m;
    m = NULL;
done:
    sf_model_free(m);
    sf_pickle_free(&pk);
    sf_zip_close(&zip);
    free(label);
    return st;
}

/* ---- Entry points ---- */

/* The model takes data (mapped or malloc'ed) on success. */
static sf_status load_any(sf_model **out, void *data, size_t size, int mapped, const char *name,
                          sf_error *err)
{
    const unsigned char *d = data;
    sf_status st;
    sf_model *m = NULL;
    if (size >= 8 && memcmp(d, SF_NATIVE_MAGIC, 8) == 0)
        st = sf_model_load_native_buffer(&m, d, size, name, err);
    else if (size >= 4 && memcmp(d, "PK\x03\x04", 4) == 0)
        st = load_pth(&m, d, size, name, err);
    else if (size >= 2 && d[0] == 0x80 && d[1] <= 5)
        st = sf_error_set(err, SF_ERR_UNSUPPORTED,
                          "%s: legacy (pre-1.6) PyTorch serialization is not supported; re-save "
                          "it with torch.save from torch 1.6 or later",
                          name);
    else if (size == 0)
        st = sf_error_set(err, SF_ERR_TRUNCATED, "%s: empty file", name);
    else
        st = sf_error_set(err, SF_ERR_FORMAT,
                          "%s: not a model (neither a PyTorch zip checkpoint nor an sf native model)",
                          name);
    if (st) {
        if (mapped)
            munmap(data, size);
        else
            free(data);
        return st;
    }
    m->base = data;
    m->base_size = size;
    m->base_mapped = mapped;
    *out = m;
    return SF_OK;
}

sf_status sf_model_load_buffer(sf_model **out, const void *data, size_t size, const char *name,
                               sf_error *err)
{
    *out = NULL;
    if (!name)
        name = "<memory>";
    if (!data && size)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: no data", name);
    /* A 64-byte aligned copy, so native tensors keep their alignment. */
    void *copy = NULL;
    if (posix_memalign(&copy, 64, size ? size : 1) != 0)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for %zu bytes", name, size);
    if (size)
        memcpy(copy, data, size);
    return load_any(out, copy, size, 0, name, err);
}

sf_status sf_model_load(sf_model **out, const char *path, sf_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sf_error_set(err, errno == ENOENT ? SF_ERR_NOT_FOUND : SF_ERR_IO, "%s: %s", path,
                            strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return sf_error_set(err, SF_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (S_ISREG(sb.st_mode) && sb.st_size > 0) {
        if ((uint64_t)sb.st_size > SIZE_MAX) {
            close(fd);
            return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: file too large", path);
        }
        size_t size = (size_t)sb.st_size;
        void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        int e = errno;
        close(fd);
        if (map == MAP_FAILED)
            return sf_error_set(err, SF_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        return load_any(out, map, size, 1, path, err);
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return sf_error_set(err, SF_ERR_IO, "%s: is a directory", path);
    }
    /* A pipe or an empty file: read what there is. */
    void *buf;
    size_t len;
    sf_status st = sf_read_fd(fd, path, 0, &buf, &len, err);
    close(fd);
    if (st != SF_OK)
        return st;
    return load_any(out, buf, len, 0, path, err);
}
