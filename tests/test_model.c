/* Models: the golden PyTorch checkpoints, the native format, random models,
 * and checkpoints that are wrong in every way the loader must refuse.
 *
 * The malformed checkpoints come from a small torch.save look-alike below
 * (a pickle writer and a ZIP writer, test-only), so that each case differs
 * from a valid checkpoint in exactly one respect.
 *
 * `test_model --write-corpus DIR` writes the small synthetic checkpoints of
 * fuzz/corpus/model. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf_model.h"
#include "testutil.h"

/* ---- Bytes ---- */

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put8(buf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}

static void putle(buf *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        put8(b, (unsigned)(v >> (8 * i)) & 0xff);
}

static uint64_t getle(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Byte-wise with its own table: independent of the library's CRC. */
static uint32_t crc32_simple(const unsigned char *p, size_t n)
{
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
            table[i] = c;
        }
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return ~c;
}

/* ---- ZIP writer ---- */

typedef struct zmember {
    char name[96];
    buf data;
    int method;
} zmember;

typedef struct zopts {
    int unaligned;   /* data at an odd offset (torch aligns to 64) */
    int no_zip64;    /* plain end record only (torch always adds ZIP64) */
    int zip64_extra; /* sizes and offsets in ZIP64 extra fields */
} zopts;

static unsigned char *zip_write(zmember *m, size_t n, const zopts *o, size_t *size)
{
    buf z = { 0 }, cd = { 0 };
    for (size_t i = 0; i < n; i++) {
        uint64_t local = z.n;
        size_t nlen = strlen(m[i].name);
        uint32_t crc = crc32_simple(m[i].data.p, m[i].data.n);
        /* Pad with an extra field (torch uses "FB") to place the data. */
        size_t at = z.n + 30 + nlen + 4, pad = 0;
        if (o->unaligned)
            pad = (at % 64 == 3) ? 0 : (64 + 3 - at % 64) % 64;
        else
            pad = (64 - at % 64) % 64;
        putle(&z, 0x04034b50, 4);
        putle(&z, 20, 2);
        putle(&z, 0, 2);
        putle(&z, (uint64_t)m[i].method, 2);
        putle(&z, 0, 4);
        putle(&z, crc, 4);
        putle(&z, m[i].data.n, 4);
        putle(&z, m[i].data.n, 4);
        putle(&z, nlen, 2);
        putle(&z, 4 + pad, 2);
        put(&z, m[i].name, nlen);
        putle(&z, 0x4246, 2);
        putle(&z, pad, 2);
        for (size_t k = 0; k < pad; k++)
            put8(&z, 'Z');
        put(&z, m[i].data.p, m[i].data.n);

        int x = o->zip64_extra;
        putle(&cd, 0x02014b50, 4);
        putle(&cd, 0x031e, 2);
        putle(&cd, x ? 45 : 20, 2);
        putle(&cd, 0, 2);
        putle(&cd, (uint64_t)m[i].method, 2);
        putle(&cd, 0, 4);
        putle(&cd, crc, 4);
        putle(&cd, x ? 0xffffffffu : m[i].data.n, 4);
        putle(&cd, x ? 0xffffffffu : m[i].data.n, 4);
        putle(&cd, nlen, 2);
        putle(&cd, x ? 28 : 0, 2);
        putle(&cd, 0, 2);
        putle(&cd, 0, 2);
        putle(&cd, 0, 2);
        putle(&cd, 0, 4);
        putle(&cd, x ? 0xffffffffu : local, 4);
        put(&cd, m[i].name, nlen);
        if (x) {
            putle(&cd, 1, 2);
            putle(&cd, 24, 2);
            putle(&cd, m[i].data.n, 8);
            putle(&cd, m[i].data.n, 8);
            putle(&cd, local, 8);
        }
    }
    uint64_t cd_at = z.n;
    put(&z, cd.p, cd.n);
    if (!o->no_zip64) {
        uint64_t rec = z.n;
        putle(&z, 0x06064b50, 4);
        putle(&z, 44, 8);
        putle(&z, 0x031e, 2);
        putle(&z, 45, 2);
        putle(&z, 0, 4);
        putle(&z, 0, 4);
        putle(&z, n, 8);
        putle(&z, n, 8);
        putle(&z, cd.n, 8);
        putle(&z, cd_at, 8);
        putle(&z, 0x07064b50, 4);
        putle(&z, 0, 4);
        putle(&z, rec, 8);
        putle(&z, 1, 4);
    }
    putle(&z, 0x06054b50, 4);
    putle(&z, 0, 2);
    putle(&z, 0, 2);
    putle(&z, n, 2);
    putle(&z, n, 2);
    putle(&z, cd.n, 4);
    putle(&z, cd_at, 4);
    putle(&z, 0, 2);
    free(cd.p);
    *size = z.n;
    return z.p;
}

/* ---- Pickle writer ---- */

typedef struct pw {
    buf b;
    int proto4;
    uint32_t memo;
} pw;

static void op(pw *w, unsigned c)
{
    put8(&w->b, c);
}

/* Memoize the value on top, as the real pickler does for containers. */
static void memo(pw *w)
{
    if (w->proto4) {
        op(w, 0x94);
    } else if (w->memo < 256) {
        op(w, 'q');
        op(w, w->memo);
    } else {
        op(w, 'r');
        putle(&w->b, w->memo, 4);
    }
    w->memo++;
}

static void pstr(pw *w, const char *s)
{
    size_t n = strlen(s);
    if (w->proto4 && n < 256) {
        op(w, 0x8c);
        op(w, (unsigned)n);
    } else {
        op(w, 'X');
        putle(&w->b, n, 4);
    }
    put(&w->b, s, n);
}

static void pint(pw *w, long long v)
{
    if (v >= 0 && v < 256) {
        op(w, 'K');
        op(w, (unsigned)v);
    } else if (v >= 0 && v < 65536) {
        op(w, 'M');
        putle(&w->b, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        op(w, 'J');
        putle(&w->b, (uint64_t)v, 4);
    } else {
        op(w, 0x8a);
        op(w, 8);
        putle(&w->b, (uint64_t)v, 8);
    }
}

static void pfloat(pw *w, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    op(w, 'G');
    for (int i = 7; i >= 0; i--)
        op(w, (unsigned)(u >> (8 * i)) & 0xff);
}

static void pglobal(pw *w, const char *mod, const char *name)
{
    if (w->proto4) {
        pstr(w, mod);
        pstr(w, name);
        op(w, 0x93);
    } else {
        op(w, 'c');
        put(&w->b, mod, strlen(mod));
        op(w, '\n');
        put(&w->b, name, strlen(name));
        op(w, '\n');
    }
    memo(w);
}

static void pordereddict(pw *w)
{
    pglobal(w, "collections", "OrderedDict");
    op(w, ')');
    op(w, 'R');
    memo(w);
}

/* ---- torch.save look-alike ---- */

typedef struct ckpt {
    int proto4;
    zopts zip;
    int shared;          /* every tensor a view of one storage "shared" of 0.5s */
    int expand;          /* every tensor a stride-0 view of a 1-element storage */
    int transpose;       /* lit.project_q.weight stored transposed (strided) */
    int no_counts;       /* without num_batches_tracked */
    int extras;          /* meta, scores (numpy objects), optimizer-like state */
    const char *prefix;  /* archive folder, default "archive" */
    const char *skip;    /* leave this tensor out */
    const char *extra;   /* add a tensor of this name */
    const char *reshape; /* give this tensor a wrong first dimension */
    const char *object;  /* make this entry a numpy array object */
    const char *as_double; /* store this tensor as float64 */
    const char *arch;    /* architecture string */
    int skip_layer;      /* when nonzero */
    int lit_T_as_str;
    int no_runtime;
    int minimal_runtime; /* runtime with mean_std only */
    int deflate_pickle;  /* mark data.pkl as deflated */
    int bad_opcode;      /* a 0xff opcode in the state_dict */
    int huge_string;     /* a BINUNICODE claiming 4 GB */
    int storage_oob;     /* first tensor offset past its storage */
    int drop_storage;    /* leave out the member of the first storage */
    long trunc_pickle;   /* when > 0: data.pkl cut to this many bytes */
} ckpt;

typedef struct writer {
    pw w;
    zmember *members;
    size_t n_members;
    const ckpt *c;
    const char *prefix;
    int storage_key;
} writer;

static zmember *new_member(writer *wr, const char *fmt, const char *arg)
{
    wr->members = realloc(wr->members, (wr->n_members + 1) * sizeof *wr->members);
    if (!wr->members)
        abort();
    zmember *m = &wr->members[wr->n_members++];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s/", wr->prefix);
    snprintf(m->name + strlen(m->name), sizeof m->name - strlen(m->name), fmt, arg);
    return m;
}

/* One state_dict entry: name, then _rebuild_tensor_v2(...). */
static void write_tensor(writer *wr, const char *name, int ndim, const int64_t *shape,
                         const int64_t *stride, int64_t offset, const char *storage_type,
                         const char *key, int64_t numel)
{
    pw *w = &wr->w;
    pstr(w, name);
    if (wr->c->object && strcmp(wr->c->object, name) == 0) {
        pglobal(w, "numpy.core.multiarray", "_reconstruct");
        op(w, '(');
        pglobal(w, "numpy", "ndarray");
        op(w, '(');
        pint(w, 0);
        op(w, 't');
        op(w, 'C');
        op(w, 1);
        op(w, 'b');
        op(w, 't');
        op(w, 'R');
        return;
    }
    if (w->proto4)
        pglobal(w, "torch._utils", "_rebuild_parameter");
    pglobal(w, "torch._utils", "_rebuild_tensor_v2");
    op(w, '(');
    op(w, '(');
    pstr(w, "storage");
    pglobal(w, "torch", storage_type);
    pstr(w, key);
    pstr(w, "cpu");
    pint(w, numel);
    op(w, 't');
    op(w, 'Q');
    pint(w, offset);
    op(w, '(');
    for (int d = 0; d < ndim; d++)
        pint(w, shape[d]);
    op(w, 't');
    op(w, '(');
    for (int d = 0; d < ndim; d++)
        pint(w, stride[d]);
    op(w, 't');
    op(w, 0x89);
    pordereddict(w);
    op(w, 't');
    op(w, 'R');
    if (w->proto4) { /* _rebuild_parameter(tensor, requires_grad, hooks) */
        op(w, 0x88);
        pordereddict(w);
        op(w, 0x87);
        op(w, 'R');
    }
}

static size_t tensor_numel(const sf_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void write_state_dict(writer *wr, const sf_model *m)
{
    const ckpt *c = wr->c;
    pw *w = &wr->w;
    char key[32];
    /* The shared storage is as large as the largest tensor: views that
     * need more (expanded tensors) are refused. */
    int64_t shared_numel = 1;
    for (size_t i = 0; i < sf_model_tensor_count(m); i++)
        if ((int64_t)tensor_numel(sf_model_tensor_at(m, i)) > shared_numel)
            shared_numel = (int64_t)tensor_numel(sf_model_tensor_at(m, i));
    if (c->shared || c->expand) {
        zmember *s = new_member(wr, "data/%s", "shared");
        float v = 0.5f;
        for (int64_t k = 0; k < (c->expand ? 1 : shared_numel); k++)
            put(&s->data, &v, 4);
    }
    for (size_t i = 0; i < sf_model_tensor_count(m); i++) {
        const sf_tensor *t = sf_model_tensor_at(m, i);
        if (c->skip && strcmp(c->skip, t->name) == 0)
            continue;
        int64_t shape[4], stride[4], numel = 1;
        memcpy(shape, t->shape, sizeof shape);
        if (c->reshape && strcmp(c->reshape, t->name) == 0)
            shape[0]++;
        for (int d = t->ndim - 1; d >= 0; d--) {
            stride[d] = numel;
            numel *= shape[d];
        }
        int dbl = c->as_double && strcmp(c->as_double, t->name) == 0;
        int64_t offset = (c->storage_oob && i == 0) ? numel : 0;
        if (c->expand) {
            for (int d = 0; d < t->ndim; d++)
                stride[d] = 0;
            write_tensor(wr, t->name, t->ndim, shape, stride, offset, "FloatStorage", "shared", 1);
        } else if (c->shared) {
            if (c->storage_oob && i == 0)
                offset = shared_numel;
            write_tensor(wr, t->name, t->ndim, shape, stride, offset, "FloatStorage", "shared",
                         shared_numel);
        } else {
            snprintf(key, sizeof key, "%d", wr->storage_key++);
            int tr = c->transpose && strcmp(t->name, "lit.project_q.weight") == 0;
            if (!(c->drop_storage && i == 0)) {
                zmember *s = new_member(wr, "data/%s", key);
                size_t n = tensor_numel(t);
                if (dbl) {
                    for (size_t k = 0; k < (size_t)numel; k++) {
                        double v = k < n ? t->data[k] : 0;
                        put(&s->data, &v, 8);
                    }
                } else if (tr) { /* stored as W^T, viewed back with strides (1, rows) */
                    int64_t r = t->shape[0], cols = t->shape[1];
                    for (int64_t a = 0; a < cols; a++)
                        for (int64_t b = 0; b < r; b++)
                            put(&s->data, &t->data[b * cols + a], 4);
                    stride[0] = 1;
                    stride[1] = r;
                } else {
                    put(&s->data, t->data, n * 4);
                    for (size_t k = n; k < (size_t)numel; k++)
                        put(&s->data, t->data, 4);
                }
            }
            write_tensor(wr, t->name, t->ndim, shape, stride, offset,
                         dbl ? "DoubleStorage" : "FloatStorage", key, numel);
        }
        if (i == 0 && c->bad_opcode)
            op(w, 0xff);
        if (!c->no_counts && ends_with(t->name, ".running_var")) {
            char nm[96];
            snprintf(nm, sizeof nm, "%.*s.num_batches_tracked",
                     (int)(strlen(t->name) - strlen(".running_var")), t->name);
            snprintf(key, sizeof key, "%d", wr->storage_key++);
            zmember *s = new_member(wr, "data/%s", key);
            putle(&s->data, 7, 8);
            write_tensor(wr, nm, 0, NULL, NULL, 0, "LongStorage", key, 1);
        }
    }
    if (c->extra) {
        int64_t shape[1] = { 2 }, stride[1] = { 1 };
        zmember *s = new_member(wr, "data/%s", "extra");
        float v[2] = { 1, 2 };
        put(&s->data, v, 8);
        write_tensor(wr, c->extra, 1, shape, stride, 0, "FloatStorage", "extra", 2);
    }
}

static void write_net_params(writer *wr, const sf_net_params *p)
{
    const ckpt *c = wr->c;
    pw *w = &wr->w;
    op(w, '}');
    memo(w);
    op(w, '(');
    pstr(w, "architecture");
    pstr(w, c->arch ? c->arch : p->architecture);
    pstr(w, "pretrained");
    op(w, 'N');
    pstr(w, "skip_layer");
    pint(w, c->skip_layer ? c->skip_layer : p->skip_layer);
    pstr(w, "dim_reduction");
    if (p->reduction_dim) {
        op(w, '}');
        pstr(w, "dim");
        pint(w, p->reduction_dim);
        op(w, 's');
    } else {
        op(w, 'N');
    }
    pstr(w, "lit");
    op(w, '}');
    op(w, '(');
    pstr(w, "T");
    if (c->lit_T_as_str)
        pstr(w, "6");
    else
        pint(w, p->lit_T);
    pstr(w, "N");
    pint(w, p->lit_N);
    pstr(w, "dim");
    pint(w, p->lit_dim);
    op(w, 'u');
    if (!c->no_runtime) {
        pstr(w, "runtime");
        op(w, '}');
        op(w, '(');
        pstr(w, "mean_std");
        op(w, ']');
        op(w, '(');
        for (int k = 0; k < 2; k++) {
            op(w, ']');
            op(w, '(');
            for (int j = 0; j < 3; j++)
                pfloat(w, k ? p->std[j] : p->mean[j]);
            op(w, 'e');
        }
        op(w, 'e');
        if (!c->minimal_runtime) {
            pstr(w, "image_size");
            pint(w, p->image_size);
            pstr(w, "features_num");
            pint(w, p->features_num);
            pstr(w, "scales");
            op(w, ']');
            op(w, '(');
            for (int i = 0; i < p->n_scales; i++)
                pfloat(w, p->scales[i]);
            op(w, 'e');
            pstr(w, "training_scales");
            op(w, ']');
            pint(w, 1);
            op(w, 'a');
        }
        op(w, 'u');
    }
    op(w, 'u');
}

/* Keys torch checkpoints carry besides the network, with objects the
 * loader must skip: numpy scalars, an optimizer state, a set. */
static void write_extras(writer *wr)
{
    pw *w = &wr->w;
    pstr(w, "epoch");
    pint(w, 100000);
    pstr(w, "_version");
    pstr(w, "fire/2021");
    pstr(w, "best_score");
    op(w, 'N');
    pstr(w, "scores");
    op(w, '}');
    pstr(w, "map");
    pglobal(w, "numpy.core.multiarray", "scalar");
    pglobal(w, "numpy", "dtype");
    pstr(w, "f8");
    op(w, 0x89);
    op(w, 0x88);
    op(w, 0x87);
    op(w, 'R');
    op(w, '(');
    pint(w, 3);
    pstr(w, "<");
    op(w, 'N');
    op(w, 'N');
    op(w, 'N');
    pint(w, -1);
    pint(w, -1);
    pint(w, 0);
    op(w, 't');
    op(w, 'b');
    op(w, 'C');
    op(w, 8);
    put(&w->b, "\0\0\0\0\0\0\xf0\x3f", 8);
    op(w, 0x86);
    op(w, 'R');
    op(w, 's');
    pstr(w, "optimizer");
    op(w, '}');
    op(w, '(');
    pstr(w, "state");
    op(w, '}');
    pstr(w, "param_groups");
    op(w, ']');
    op(w, '}');
    op(w, '(');
    pstr(w, "lr");
    pfloat(w, 1e-4);
    pstr(w, "params");
    op(w, '(');
    pint(w, 0);
    pint(w, 1);
    pint(w, -5);
    op(w, 'l');
    pstr(w, "nesterov");
    op(w, 'I');
    put(&w->b, "00\n", 3);
    pstr(w, "big");
    op(w, 'L');
    put(&w->b, "123456789012L\n", 14);
    op(w, 'u');
    op(w, 'a');
    op(w, 'u');
    if (w->proto4) {
        pstr(w, "tags");
        op(w, 0x8f);
        op(w, '(');
        pstr(w, "a");
        pstr(w, "b");
        op(w, 0x90);
    }
    pstr(w, "custom");
    pglobal(w, "argparse", "Namespace");
    op(w, ')');
    op(w, 0x81);
    op(w, '}');
    pstr(w, "x");
    pint(w, 1);
    op(w, 's');
    op(w, 'b');
}

/* The members of the archive: data.pkl first. */
static zmember *build_members(const sf_model *m, const ckpt *c, size_t *n_members)
{
    writer wr = { .c = c, .prefix = c->prefix ? c->prefix : "archive" };
    pw *w = &wr.w;
    w->proto4 = c->proto4;
    new_member(&wr, "%s", "data.pkl");
    op(w, 0x80);
    op(w, c->proto4 ? 4 : 2);
    if (c->proto4) { /* a frame over the rest, as protocol 4 writes */
        op(w, 0x95);
        putle(&w->b, 0, 8);
    }
    op(w, '}');
    memo(w);
    op(w, '(');
    if (c->extras)
        write_extras(&wr);
    pstr(w, "state_dict");
    pordereddict(w);
    op(w, '(');
    write_state_dict(&wr, m);
    op(w, 'u');
    /* the _metadata attribute of the OrderedDict: ignored */
    op(w, '}');
    pstr(w, "_metadata");
    op(w, '}');
    op(w, 's');
    op(w, 'b');
    if (c->huge_string) {
        op(w, 'X');
        putle(&w->b, 0xfffffff0u, 4);
    } else {
        pstr(w, "net_params");
        write_net_params(&wr, sf_model_params(m));
        op(w, 'u');
        op(w, '.');
    }
    if (c->proto4) { /* the frame length, now known */
        uint64_t len = w->b.n - 11;
        for (int i = 0; i < 8; i++)
            w->b.p[3 + i] = (unsigned char)(len >> (8 * i));
    }
    if (c->trunc_pickle > 0 && (size_t)c->trunc_pickle < w->b.n)
        w->b.n = (size_t)c->trunc_pickle;
    wr.members[0].data = w->b;
    if (c->deflate_pickle)
        wr.members[0].method = 8;
    zmember *ver = new_member(&wr, "%s", "version");
    put(&ver->data, "3\n", 2);
    *n_members = wr.n_members;
    return wr.members;
}

static void free_members(zmember *mem, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(mem[i].data.p);
    free(mem);
}

static unsigned char *make_ckpt(const sf_model *m, const ckpt *c, size_t *size)
{
    size_t n;
    zmember *mem = build_members(m, c, &n);
    unsigned char *z = zip_write(mem, n, &c->zip, size);
    free_members(mem, n);
    return z;
}

/* ---- Helpers ---- */

static sf_net_params small_params(void)
{
    sf_net_params p;
    sf_net_params_init(&p);
    strcpy(p.architecture, "resnet18");
    p.lit_T = 2;
    p.lit_N = 8;
    p.lit_dim = 16;
    p.reduction_dim = 8;
    p.image_size = 64;
    p.features_num = 50;
    p.n_scales = 2;
    p.scales[0] = 1.0;
    p.scales[1] = 0.5;
    return p;
}

static int params_equal(const sf_net_params *a, const sf_net_params *b)
{
    if (strcmp(a->architecture, b->architecture) || a->skip_layer != b->skip_layer
        || a->lit_T != b->lit_T || a->lit_N != b->lit_N || a->lit_dim != b->lit_dim
        || a->reduction_dim != b->reduction_dim || a->image_size != b->image_size
        || a->features_num != b->features_num || a->n_scales != b->n_scales)
        return 0;
    for (int i = 0; i < 3; i++)
        if (a->mean[i] != b->mean[i] || a->std[i] != b->std[i])
            return 0;
    for (int i = 0; i < a->n_scales; i++)
        if (a->scales[i] != b->scales[i])
            return 0;
    return 1;
}

/* Same names, shapes and bits in the same order. */
static int models_identical(const sf_model *a, const sf_model *b)
{
    if (sf_model_tensor_count(a) != sf_model_tensor_count(b)
        || !params_equal(sf_model_params(a), sf_model_params(b)))
        return 0;
    for (size_t i = 0; i < sf_model_tensor_count(a); i++) {
        const sf_tensor *x = sf_model_tensor_at(a, i), *y = sf_model_tensor_at(b, i);
        if (strcmp(x->name, y->name) || x->ndim != y->ndim
            || memcmp(x->shape, y->shape, sizeof x->shape)
            || memcmp(x->data, y->data, tensor_numel(x) * 4))
            return 0;
    }
    return 1;
}

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char path[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, name);
    return path[k];
}

static void write_file(const char *path, const void *d, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(d, 1, n, fp) != n || fclose(fp) != 0) {
        perror(path);
        exit(99);
    }
}

/* Loading must fail with status and a message that starts with the file
 * name and contains want (and want2 when given). */
static void expect_fail(const char *what, const void *d, size_t n, sf_status status,
                        const char *want, const char *want2)
{
    sf_model *m = (sf_model *)1;
    sf_error err;
    sf_error_clear(&err);
    sf_status st = sf_model_load_buffer(&m, d, n, "syn.pth", &err);
    CHECK(st == status, "%s: status %d (%s), expected %d; message: %s", what, st, sf_strerror(st),
          status, err.message);
    CHECK(m == NULL, "%s: model left set on failure", what);
    CHECK(strncmp(err.message, "syn.pth: ", 9) == 0, "%s: message does not name the file: %s", what,
          err.message);
    CHECK(!want || strstr(err.message, want), "%s: message lacks '%s': %s", what, want, err.message);
    CHECK(!want2 || strstr(err.message, want2), "%s: message lacks '%s': %s", what, want2,
          err.message);
    if (st == SF_OK)
        sf_model_free(m);
}

static sf_model *expect_load(const char *what, const void *d, size_t n)
{
    sf_model *m = NULL;
    sf_error err;
    sf_status st = sf_model_load_buffer(&m, d, n, "syn.pth", &err);
    CHECK(st == SF_OK, "%s: %s", what, st ? err.message : "");
    return st == SF_OK ? m : NULL;
}

/* ---- Golden checkpoints ---- */

/* Member data offset, found with the test's own ZIP walk. */
static size_t member_offset(const unsigned char *z, size_t n, const char *name)
{
    size_t e = n - 22;
    while (e > 0 && getle(z + e, 4) != 0x06054b50)
        e--;
    size_t cd = (size_t)getle(z + e + 16, 4), count = (size_t)getle(z + e + 10, 2);
    for (size_t i = 0; i < count; i++) {
        size_t nl = (size_t)getle(z + cd + 28, 2), xl = (size_t)getle(z + cd + 30, 2),
               cl = (size_t)getle(z + cd + 32, 2);
        if (nl == strlen(name) && memcmp(z + cd + 46, name, nl) == 0) {
            size_t local = (size_t)getle(z + cd + 42, 4);
            return local + 30 + (size_t)getle(z + local + 26, 2) + (size_t)getle(z + local + 28, 2);
        }
        cd += 46 + nl + xl + cl;
    }
    return 0;
}

static void test_golden(const char *dir, const char *set, const sf_net_params *want,
                        uint64_t n_params, size_t n_tensors, int64_t backbone)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/model.pth", dir, set);
    sf_model *m;
    sf_error err;
    sf_status st = sf_model_load(&m, path, &err);
    CHECK(st == SF_OK, "%s: %s", set, err.message);
    if (st)
        return;
    CHECK(params_equal(sf_model_params(m), want), "%s: net_params differ from the manifest", set);
    CHECK(sf_model_parameter_count(m) == n_params, "%s: %llu parameters, manifest says %llu", set,
          (unsigned long long)sf_model_parameter_count(m), (unsigned long long)n_params);
    CHECK(sf_model_tensor_count(m) == n_tensors, "%s: %zu tensors", set, sf_model_tensor_count(m));
    CHECK(sf_net_params_backbone_channels(sf_model_params(m)) == backbone, "%s: backbone channels",
          set);
    const sf_tensor *t = sf_model_tensor(m, "lit.templates_init");
    CHECK(t && t->ndim == 3 && t->shape[0] == 1 && t->shape[1] == want->lit_N
              && t->shape[2] == want->lit_dim,
          "%s: lit.templates_init is (1, N, dim)", set);
    t = sf_model_tensor(m, "lit.project_k.weight");
    CHECK(t && t->shape[0] == want->lit_dim && t->shape[1] == backbone, "%s: project_k shape", set);
    CHECK(sf_model_tensor(m, "features.1.num_batches_tracked") == NULL,
          "%s: num_batches_tracked is dropped", set);
    CHECK(sf_model_tensor(m, "no.such") == NULL, "%s: lookup of a missing name", set);
    /* The randomisation of the fixtures: BN weights U(0.5, 1.5), running
     * variances U(0.5, 2). */
    t = sf_model_tensor(m, "features.1.running_var");
    int in_range = t != NULL;
    for (size_t i = 0; t && i < tensor_numel(t); i++)
        in_range &= t->data[i] >= 0.5f && t->data[i] <= 2.0f;
    CHECK(in_range, "%s: running_var values in [0.5, 2]", set);

    /* Native round trip: same checksum, same bits; from a file and from memory. */
    const char *out = tmp_path("golden.sfm");
    st = sf_model_save_native(m, out, &err);
    CHECK(st == SF_OK, "%s: save: %s", set, err.message);
    sf_model *n = NULL;
    st = sf_model_load(&n, out, &err);
    CHECK(st == SF_OK, "%s: native load: %s", set, err.message);
    if (n) {
        CHECK(sf_model_checksum(n) == sf_model_checksum(m), "%s: native checksum differs", set);
        CHECK(models_identical(m, n), "%s: native tensors differ", set);
        CHECK(((uintptr_t)sf_model_tensor_at(n, 3)->data & 63) == 0, "%s: native data aligned",
              set);
        sf_model_free(n);
    }
    size_t size;
    void *bytes = tu_read_file(NULL, out, &size);
    st = sf_model_load_buffer(&n, bytes, size, "buffer", &err);
    CHECK(st == SF_OK, "%s: native from memory: %s", set, err.message);
    if (n) {
        CHECK(models_identical(m, n), "%s: native (memory) tensors differ", set);
        sf_model_free(n);
    }
    free(bytes);
    sf_model_free(m);
}

/* The file truncated at every 997th byte and at every byte of the central
 * directory and end records: each a clean error.  The file shrinks in
 * place, so nothing is copied. */
static void test_golden_truncated(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/r18-small/model.pth", dir);
    size_t size;
    unsigned char *d = tu_read_file(NULL, path, &size);
    const char *cut = tmp_path("cut.pth");
    write_file(cut, d, size);
    size_t e = size - 22;
    while (e > 0 && getle(d + e, 4) != 0x06054b50)
        e--;
    size_t cd = (size_t)getle(d + e + 16, 4);
    int failures = 0, tries = 0;
    for (size_t len = size; len-- > 0;) {
        if (len < cd && len % 997 != 0)
            continue;
        if (truncate(cut, (off_t)len) != 0) {
            perror(cut);
            exit(99);
        }
        sf_model *m = NULL;
        sf_error err;
        sf_status st = sf_model_load(&m, cut, &err);
        tries++;
        if (st == SF_OK || m || strncmp(err.message, cut, strlen(cut)) != 0) {
            if (failures++ < 5)
                fprintf(stderr, "truncated at %zu: status %d: %s\n", len, st, err.message);
            sf_model_free(m);
        }
    }
    CHECK(failures == 0, "%d of %d truncations loaded or gave a bad message", failures, tries);
    CHECK(tries > 12000, "tried %d truncations", tries);

    /* A flipped byte inside a tensor's storage: CRC mismatch naming it. */
    size_t at = member_offset(d, size, "model/data/0");
    CHECK(at > 0, "model/data/0 found");
    d[at + 100] ^= 0x20;
    expect_fail("flipped tensor byte", d, size, SF_ERR_CHECKSUM, "model/data/0", "CRC");
    d[at + 100] ^= 0x20;
    /* The pickle's member too. */
    at = member_offset(d, size, "model/data.pkl");
    d[at + 50] ^= 1;
    expect_fail("flipped pickle byte", d, size, SF_ERR_CHECKSUM, "model/data.pkl", NULL);
    free(d);
}

/* ---- Synthetic checkpoints ---- */

static void test_synthetic(void)
{
    sf_net_params p = small_params();
    sf_model *ref;
    sf_error err;
    CHECK(sf_model_create_random(&ref, &p, 42, &err) == SF_OK, "random: %s", err.message);
    size_t n;
    unsigned char *z;

    /* Valid variants: the same model whichever way it is written. */
    const struct {
        const char *what;
        ckpt c;
    } good[] = {
        { "protocol 2, ZIP64 end records", { 0 } },
        { "protocol 4, ZIP64 extra fields, other folder, parameters",
          { .proto4 = 1, .zip.zip64_extra = 1, .prefix = "fire_r18" } },
        { "no ZIP64", { .zip.no_zip64 = 1 } },
        { "unaligned storages", { .zip.unaligned = 1 } },
        { "transposed projection", { .transpose = 1 } },
        { "without num_batches_tracked", { .no_counts = 1 } },
        { "with optimizer, numpy scores and other objects", { .extras = 1 } },
        { "protocol 4 with extras", { .extras = 1, .proto4 = 1 } },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        z = make_ckpt(ref, &good[i].c, &n);
        sf_model *m = expect_load(good[i].what, z, n);
        if (m) {
            CHECK(sf_model_checksum(m) == sf_model_checksum(ref), "%s: checksum", good[i].what);
            CHECK(models_identical(m, ref), "%s: tensors differ", good[i].what);
            sf_model_free(m);
        }
        free(z);
    }

    /* Every tensor a view of one storage. */
    z = make_ckpt(ref, &(ckpt){ .shared = 1 }, &n);
    sf_model *m = expect_load("shared storage", z, n);
    if (m) {
        const sf_tensor *t = sf_model_tensor(m, "features.6.1.conv2.weight");
        int all = 1;
        for (size_t i = 0; i < tensor_numel(t); i++)
            all &= t->data[i] == 0.5f;
        CHECK(all, "views of a shared storage");
        sf_model_free(m);
    }
    free(z);

    /* Defaults where the official code has them; no reduction layer. */
    z = make_ckpt(ref, &(ckpt){ .shared = 1, .minimal_runtime = 1 }, &n);
    m = expect_load("runtime with mean_std only", z, n);
    if (m) {
        const sf_net_params *q = sf_model_params(m);
        CHECK(q->image_size == 1024 && q->features_num == 1000 && q->n_scales == 7
                  && q->scales[1] == 1.414,
              "runtime defaults");
        CHECK(q->mean[1] == 0.456f && q->std[2] == 0.225f, "mean_std read");
        sf_model_free(m);
    }
    free(z);
    sf_net_params p0 = p;
    p0.reduction_dim = 0;
    sf_model *ref0;
    CHECK(sf_model_create_random(&ref0, &p0, 1, &err) == SF_OK, "random without reduction");
    z = make_ckpt(ref0, &(ckpt){ .shared = 1 }, &n);
    m = expect_load("dim_reduction None", z, n);
    if (m) {
        CHECK(sf_model_params(m)->reduction_dim == 0, "no reduction");
        CHECK(sf_model_tensor(m, "dim_reduction.weight") == NULL, "no reduction tensor");
        sf_model_free(m);
    }
    free(z);
    /* A checkpoint without reduction is not one with reduction. */
    z = make_ckpt(ref, &(ckpt){ .shared = 1, .skip = "dim_reduction.weight" }, &n);
    expect_fail("missing reduction weight", z, n, SF_ERR_FORMAT, "'dim_reduction.weight'",
                "missing");
    free(z);
    sf_model_free(ref0);

    /* Each wrong in one respect. */
    const struct {
        const char *what;
        ckpt c;
        sf_status status;
        const char *want, *want2;
    } bad[] = {
        { "missing tensor", { .shared = 1, .skip = "lit.mlp.2.bias" }, SF_ERR_FORMAT,
          "'lit.mlp.2.bias'", "missing" },
        { "extra tensor", { .shared = 1, .extra = "lit.extra.weight" }, SF_ERR_FORMAT,
          "'lit.extra.weight'", "unexpected" },
        { "wrong shape", { .shared = 1, .reshape = "features.4.0.conv1.weight" }, SF_ERR_FORMAT,
          "'features.4.0.conv1.weight'", "[65, 64, 3, 3], expected [64, 64, 3, 3]" },
        { "resnet152", { .shared = 1, .arch = "resnet152" }, SF_ERR_UNSUPPORTED, "resnet152",
          "architecture" },
        { "vgg16", { .shared = 1, .arch = "vgg16" }, SF_ERR_UNSUPPORTED, "'vgg16'", NULL },
        { "long architecture", { .shared = 1, .arch = "resnet50resnet50resnet50resnet50resnet50" },
          SF_ERR_UNSUPPORTED, "architecture", NULL },
        { "skip_layer 2", { .shared = 1, .skip_layer = 2 }, SF_ERR_UNSUPPORTED, "'skip_layer' = 2",
          NULL },
        { "unknown opcode", { .shared = 1, .bad_opcode = 1 }, SF_ERR_UNSUPPORTED, "opcode 0xff",
          "archive/data.pkl offset " },
        { "unknown global", { .shared = 1, .object = "features.1.bias" }, SF_ERR_FORMAT,
          "'features.1.bias'", "numpy.core.multiarray._reconstruct" },
        { "deflated member", { .shared = 1, .deflate_pickle = 1 }, SF_ERR_UNSUPPORTED,
          "'archive/data.pkl'", "deflate" },
        { "huge string", { .shared = 1, .huge_string = 1 }, SF_ERR_TRUNCATED,
          "BINUNICODE of 4294967280 bytes", NULL },
        { "float64 tensor", { .as_double = "lit.norm_mlp.weight" }, SF_ERR_UNSUPPORTED,
          "'lit.norm_mlp.weight'", "float64" },
        { "lit.T a string", { .shared = 1, .lit_T_as_str = 1 }, SF_ERR_FORMAT, "'lit.T'",
          "got a str" },
        { "no runtime", { .shared = 1, .no_runtime = 1 }, SF_ERR_FORMAT, "'runtime'", NULL },
        { "offset past the storage", { .shared = 1, .storage_oob = 1 }, SF_ERR_FORMAT,
          "'features.0.weight'", "storage" },
        { "offset past the storage (own storage)", { .storage_oob = 1 }, SF_ERR_FORMAT,
          "'features.0.weight'", "storage" },
        { "storage member missing", { .drop_storage = 1 }, SF_ERR_FORMAT, "'archive/data/0'",
          "missing" },
        { "pickle cut short", { .shared = 1, .trunc_pickle = 3000 }, SF_ERR_TRUNCATED, NULL,
          NULL },
        { "expanded view", { .expand = 1 }, SF_ERR_UNSUPPORTED, "'features.0.weight'",
          "expanded views" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        z = make_ckpt(ref, &bad[i].c, &n);
        expect_fail(bad[i].what, z, n, bad[i].status, bad[i].want, bad[i].want2);
        free(z);
    }

    /* The pickle cut at every byte: always "truncated", never a crash. */
    for (int proto4 = 0; proto4 < 2; proto4++) {
        size_t nm;
        zmember *mem = build_members(ref, &(ckpt){ .shared = 1, .extras = 1, .proto4 = proto4 }, &nm);
        size_t full = mem[0].data.n, wrong = 0;
        for (size_t len = 0; len < full; len++) {
            /* the pickle fails before any storage is needed */
            mem[0].data.n = len;
            z = zip_write(mem, 1, &(zopts){ 0 }, &n);
            sf_model *mm = NULL;
            sf_status st = sf_model_load_buffer(&mm, z, n, "cut", &err);
            if (st != SF_ERR_TRUNCATED && wrong++ < 5)
                fprintf(stderr, "pickle cut at %zu: status %d: %s\n", len, st, err.message);
            sf_model_free(mm);
            free(z);
        }
        mem[0].data.n = full;
        z = zip_write(mem, nm, &(zopts){ 0 }, &n);
        sf_model *mm = expect_load("uncut pickle", z, n);
        sf_model_free(mm);
        free(z);
        CHECK(wrong == 0 && full > 10000, "protocol %d pickle cut at each of %zu bytes: %zu not "
              "reported as truncated", proto4 ? 4 : 2, full, wrong);
        free_members(mem, nm);
    }

    /* Every byte of the first directory entries and of the end records
     * flipped: any outcome but a crash; failures name the file. */
    z = make_ckpt(ref, &(ckpt){ .shared = 1 }, &n);
    size_t e = n - 22;
    size_t cd = (size_t)getle(z + e + 16, 4);
    int bad_msgs = 0;
    for (size_t i = cd; i < n; i++) {
        if (i == cd + 200)
            i = n - 98; /* ZIP64 end record, locator, end record */
        z[i] ^= 0xff;
        sf_model *mm = NULL;
        if (sf_model_load_buffer(&mm, z, n, "flip", &err) == SF_OK)
            sf_model_free(mm);
        else if (strncmp(err.message, "flip: ", 6) != 0)
            bad_msgs++;
        z[i] ^= 0xff;
    }
    CHECK(bad_msgs == 0, "flipped directory bytes: %d messages without the file name", bad_msgs);
    /* Flipped header bytes of the first local header. */
    for (size_t i = 0; i < 30; i++) {
        z[i] ^= 0x55;
        sf_model *mm = NULL;
        if (sf_model_load_buffer(&mm, z, n, "flip", &err) == SF_OK)
            sf_model_free(mm);
        z[i] ^= 0x55;
    }
    free(z);

    /* Not a checkpoint at all. */
    expect_fail("empty", "", 0, SF_ERR_TRUNCATED, "empty", NULL);
    expect_fail("legacy torch", "\x80\x02\x8a\x0a" "lZ\xfc\x9c" "F\xf9 j\xa8P\x19.", 16,
                SF_ERR_UNSUPPORTED, "legacy", NULL);
    expect_fail("text", "hello, world\n", 13, SF_ERR_FORMAT, "not a model", NULL);
    expect_fail("zip magic only", "PK\x03\x04", 4, SF_ERR_TRUNCATED, NULL, NULL);
    sf_model_free(ref);
}

/* Hand-written pickles for the opcodes the writer does not produce. */
static void test_pickle_opcodes(void)
{
    sf_net_params p = small_params();
    sf_model *ref;
    sf_error err;
    CHECK(sf_model_create_random(&ref, &p, 3, &err) == SF_OK, "random");
    /* Valid checkpoint, then replace its pickle with small programs. */
#define S(lit) lit, sizeof(lit) - 1
    const struct {
        const char *what;
        const char *pickle;
        size_t len;
        sf_status status;
        const char *want;
    } cases[] = {
        { "list root", S("\x80\x02]q\x00."), SF_ERR_FORMAT, "is a list, not a dict" },
        { "no state_dict", S("\x80\x02}."), SF_ERR_FORMAT, "'state_dict' is missing" },
        { "tuple without mark", S("\x80\x02t."), SF_ERR_FORMAT, "no MARK" },
        { "pop on empty", S("\x80\x02" "0."), SF_ERR_FORMAT, "underflow" },
        { "memo miss", S("\x80\x02h\x05."), SF_ERR_FORMAT, "memo index 5" },
        { "huge memo index", S("\x80\x02Nr\xff\xff\xff\x7f."), SF_ERR_TOO_LARGE, "memo index" },
        { "LONG1 too long", S("\x80\x02\x8a\x09" "123456789."), SF_ERR_TOO_LARGE, "9 bytes" },
        { "protocol 6", S("\x80\x06}."), SF_ERR_UNSUPPORTED, "protocol 6" },
        { "persid not storage", S("\x80\x02K\x01Q."), SF_ERR_UNSUPPORTED, "persistent id" },
        { "reduce of an int", S("\x80\x02K\x01)R."), SF_ERR_FORMAT, "not a global" },
        { "unknown storage type",
          S("\x80\x02(X\x07\x00\x00\x00storagectorch\nQStorage\nX\x01\x00\x00\x00" "0"
            "X\x03\x00\x00\x00" "cpuK\x01tQ."),
          SF_ERR_UNSUPPORTED, "torch.QStorage" },
        { "odd dict", S("\x80\x02(K\x01" "d."), SF_ERR_FORMAT, "odd" },
        { "append to dict", S("\x80\x02}K\x01" "a."), SF_ERR_FORMAT, "not a list" },
        { "text opcode", S("\x80\x02S'a'\n."), SF_ERR_UNSUPPORTED, "opcode 0x53 ('S')" },
        { "frame too long", S("\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00}."), SF_ERR_TRUNCATED,
          "FRAME" },
        { "global without newline", S("\x80\x02" "ctorch"), SF_ERR_TRUNCATED, "GLOBAL" },
        { "negative BINSTRING", S("\x80\x02T\xff\xff\xff\xff."), SF_ERR_FORMAT, "negative" },
        { "ints and memo",
          S("\x80\x02(I01\nI42\nL-7L\nJ\xff\xff\xff\xff\x8a\x00p3\ng3\n\x94h\x01tN."),
          SF_ERR_FORMAT, "is None, not a dict" },
        { "tensor with a bad size", S("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n(K\x01K\x00))\x89NtR."),
          SF_ERR_FORMAT, "not a storage" },
    };
#undef S
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zmember mem[1];
        memset(mem, 0, sizeof mem);
        strcpy(mem[0].name, "archive/data.pkl");
        put(&mem[0].data, cases[i].pickle, cases[i].len);
        size_t n;
        unsigned char *z = zip_write(mem, 1, &(zopts){ 0 }, &n);
        expect_fail(cases[i].what, z, n, cases[i].status, cases[i].want, NULL);
        free(z);
        free(mem[0].data.p);
    }
    sf_model_free(ref);
}

/* ---- Native format ---- */

static void test_native(void)
{
    sf_net_params p = small_params();
    sf_model *m;
    sf_error err;
    CHECK(sf_model_create_random(&m, &p, 5, &err) == SF_OK, "random");
    const char *path = tmp_path("small.sfm");
    CHECK(sf_model_save_native(m, path, &err) == SF_OK, "save: %s", err.message);
    size_t n;
    unsigned char *d = tu_read_file(NULL, path, &n);
    sf_model *r = expect_load("native", d, n);
    if (r) {
        CHECK(models_identical(m, r), "native round trip");
        CHECK(sf_model_checksum(m) == sf_model_checksum(r), "native checksum");
        sf_model_free(r);
    }
    /* Layout: magic, version, 64-aligned data that ends the file. */
    CHECK(memcmp(d, "SFMODEL\0", 8) == 0 && getle(d + 8, 4) == 1, "magic and version");
    CHECK(getle(d + 24, 8) % 64 == 0 && getle(d + 32, 8) == n, "data offset and size");

    unsigned char *c = malloc(n + 1);
    memcpy(c, d, n);
    c[n - 5] ^= 1; /* last tensor's data */
    const sf_tensor *last = sf_model_tensor_at(m, sf_model_tensor_count(m) - 1);
    expect_fail("native data flip", c, n, SF_ERR_CHECKSUM, last->name, "checksum");
    c[n - 5] ^= 1;
    c[70] ^= 1; /* net_params */
    expect_fail("native header flip", c, n, SF_ERR_CHECKSUM, "header checksum", NULL);
    c[70] ^= 1;
    c[8] = 2;
    expect_fail("native version 2", c, n, SF_ERR_VERSION, "version 2", NULL);
    c[8] = 1;
    c[n] = 0;
    expect_fail("native trailing byte", c, n + 1, SF_ERR_FORMAT, "bytes", NULL);
    size_t cuts[] = { 8, 100, 319, 320, 4000, n / 2, n - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_fail("native truncated", c, cuts[i], SF_ERR_TRUNCATED, NULL, NULL);
    free(c);
    free(d);
    sf_model_free(m);
}

/* ---- Random models ---- */

static void test_random(void)
{
    sf_net_params p = small_params();
    sf_model *a, *b, *c;
    sf_error err;
    CHECK(sf_model_create_random(&a, &p, 7, &err) == SF_OK, "random 7");
    CHECK(sf_model_create_random(&b, &p, 7, &err) == SF_OK, "random 7 again");
    CHECK(sf_model_create_random(&c, &p, 8, &err) == SF_OK, "random 8");
    CHECK(sf_model_checksum(a) == sf_model_checksum(b) && models_identical(a, b),
          "same seed, same model");
    CHECK(sf_model_checksum(a) != sf_model_checksum(c), "different seed, different model");
    /* The same bits on every machine: only integer arithmetic and one
     * rounding per value.  If this changes, random models changed. */
    CHECK(sf_model_checksum(a) == UINT64_C(0xb850d2e03d854a33), "random model checksum %016llx",
          (unsigned long long)sf_model_checksum(a));

    /* Distributions (loosely): kaiming fan_out for convs, U(0.5, 2) for
     * running variances, N(0, 1) templates. */
    const sf_tensor *t = sf_model_tensor(a, "features.6.1.conv2.weight");
    double s2 = 0;
    size_t k = tensor_numel(t);
    for (size_t i = 0; i < k; i++)
        s2 += (double)t->data[i] * t->data[i];
    double want = 2.0 / (256 * 9);
    CHECK(fabs(s2 / (double)k / want - 1) < 0.05, "conv variance %g, want %g", s2 / (double)k, want);
    t = sf_model_tensor(a, "features.6.1.bn2.running_var");
    double lo = 9, hi = -9;
    for (size_t i = 0; i < tensor_numel(t); i++) {
        lo = fmin(lo, t->data[i]);
        hi = fmax(hi, t->data[i]);
    }
    CHECK(lo >= 0.5 && hi <= 2.0 && hi - lo > 1.0, "running_var in [0.5, 2]: %g..%g", lo, hi);

    /* The official architecture: as many parameters as the r50 fixture. */
    sf_net_params off;
    sf_net_params_init(&off);
    sf_model *big;
    CHECK(sf_model_create_random(&big, &off, 0, &err) == SF_OK, "official random: %s", err.message);
    if (big) {
        /* model_num_parameters of golden/r50-fire/manifest.yaml */
        CHECK(sf_model_parameter_count(big) == 13138624, "resnet50 parameters %llu",
              (unsigned long long)sf_model_parameter_count(big));
        CHECK(sf_model_tensor_count(big) == 231, "resnet50 tensors %zu", sf_model_tensor_count(big));
        sf_model_free(big);
    }
    /* Bad parameters. */
    sf_net_params q = p;
    strcpy(q.architecture, "resnet152");
    sf_model *x = NULL;
    CHECK(sf_model_create_random(&x, &q, 0, &err) == SF_ERR_UNSUPPORTED && !x
              && strstr(err.message, "resnet152"),
          "random resnet152 refused: %s", err.message);
    q = p;
    q.lit_dim = 0;
    CHECK(sf_model_create_random(&x, &q, 0, &err) != SF_OK && strstr(err.message, "lit.dim"),
          "dim 0 refused: %s", err.message);
    q = p;
    q.skip_layer = 0;
    CHECK(sf_model_create_random(&x, &q, 0, &err) == SF_ERR_UNSUPPORTED
              && strstr(err.message, "skip_layer"),
          "skip_layer 0 refused: %s", err.message);
    sf_model_free(a);
    sf_model_free(b);
    sf_model_free(c);
}

static void test_params(void)
{
    sf_net_params p;
    sf_net_params_init(&p);
    CHECK(strcmp(p.architecture, "resnet50") == 0 && p.skip_layer == 1 && p.lit_T == 6
              && p.lit_N == 256 && p.lit_dim == 1024 && p.reduction_dim == 128
              && p.image_size == 1024 && p.features_num == 1000 && p.n_scales == 7
              && p.scales[6] == 0.25,
          "official defaults");
    CHECK(sf_net_params_backbone_channels(&p) == 1024, "resnet50: 1024 channels");
    strcpy(p.architecture, "resnet34");
    CHECK(sf_net_params_backbone_channels(&p) == 256, "resnet34: 256 channels");
    strcpy(p.architecture, "vgg16");
    CHECK(sf_net_params_backbone_channels(&p) == 0, "vgg16: unknown");
    sf_model_free(NULL);
}

/* ---- Corpus ---- */

static int write_corpus(const char *dir)
{
    sf_net_params p = small_params();
    sf_model *ref;
    sf_error err;
    if (sf_model_create_random(&ref, &p, 42, &err) != SF_OK)
        return 99;
    /* Archives: their tensors are stride-0 views (refused), which keeps
     * them small while the ZIP, pickle and net_params are read in full. */
    const struct {
        const char *name;
        ckpt c;
    } items[] = {
        { "zip-expanded.pth", { .expand = 1 } },
        { "zip-proto4-zip64extra.pth", { .expand = 1, .proto4 = 1, .zip.zip64_extra = 1 } },
        { "zip-extras-no-zip64.pth", { .expand = 1, .extras = 1, .zip.no_zip64 = 1 } },
        { "zip-unaligned.pth", { .expand = 1, .zip.unaligned = 1, .minimal_runtime = 1 } },
        { "zip-deflate.pth", { .expand = 1, .deflate_pickle = 1 } },
        { "zip-pickle-cut.pth", { .expand = 1, .extras = 1, .trunc_pickle = 1500 } },
    };
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        size_t n;
        unsigned char *z = make_ckpt(ref, &items[i].c, &n);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, items[i].name);
        write_file(path, z, n);
        free(z);
    }
    /* Bare pickles: fuzz_model wraps them in an archive with the storages
     * "shared" (589824 floats) and "0".."39", so valid ones load and
     * mutations reach every check. */
    const struct {
        const char *name;
        ckpt c;
    } pickles[] = {
        { "pickle-valid.pkl", { .shared = 1 } },
        { "pickle-proto4-extras.pkl", { .shared = 1, .proto4 = 1, .extras = 1 } },
        { "pickle-minimal-runtime.pkl", { .shared = 1, .minimal_runtime = 1, .no_counts = 1 } },
        { "pickle-missing-tensor.pkl", { .shared = 1, .skip = "lit.mlp.2.bias" } },
        { "pickle-extra-tensor.pkl", { .shared = 1, .extra = "lit.extra.weight" } },
        { "pickle-wrong-shape.pkl", { .shared = 1, .reshape = "features.4.0.conv1.weight" } },
        { "pickle-arch-vgg16.pkl", { .shared = 1, .arch = "vgg16" } },
        { "pickle-numpy-object.pkl", { .shared = 1, .object = "features.1.bias" } },
        { "pickle-expanded.pkl", { .expand = 1 } },
    };
    for (size_t i = 0; i < sizeof pickles / sizeof pickles[0]; i++) {
        size_t nm;
        zmember *mem = build_members(ref, &pickles[i].c, &nm);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, pickles[i].name);
        write_file(path, mem[0].data.p, mem[0].data.n);
        free_members(mem, nm);
    }
    /* A native header: the loader's first checks. */
    const char *tmp = tmp_path("corpus.sfm");
    if (sf_model_save_native(ref, tmp, &err) != SF_OK)
        return 99;
    size_t n;
    unsigned char *d = tu_read_file(NULL, tmp, &n);
    char path[4096];
    snprintf(path, sizeof path, "%s/native-header.sfm", dir);
    write_file(path, d, 8192);
    free(d);
    sf_model_free(ref);
    return 0;
}

static void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_model.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror(tmpdir);
        exit(99);
    }
}

static void remove_tmpdir(void)
{
    const char *names[] = { "golden.sfm", "cut.pth", "small.sfm", "corpus.sfm" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(tmp_path(names[i]));
    rmdir(tmpdir);
}

int main(int argc, char **argv)
{
    make_tmpdir();
    atexit(remove_tmpdir); /* also when the golden part skips */
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) {
        return write_corpus(argv[2]);
    }
    test_params();
    test_random();
    test_native();
    test_synthetic();
    test_pickle_opcodes();

    /* Without the fixtures the test skips: not if something failed already. */
    if (tu_failures)
        return tu_finish("test_model");
    const char *dir = tu_golden_dir();
    /* Expected values: parameters.init_network_kwargs and
     * model_num_parameters of golden/{r18-small,r50-fire}/manifest.yaml. */
    sf_net_params r18 = small_params();
    strcpy(r18.architecture, "resnet18");
    r18.lit_T = 3, r18.lit_N = 32, r18.lit_dim = 256, r18.reduction_dim = 64;
    r18.image_size = 256, r18.features_num = 100;
    sf_net_params def;
    sf_net_params_init(&def);
    r18.n_scales = def.n_scales;
    memcpy(r18.scales, def.scales, sizeof r18.scales);
    test_golden(dir, "r18-small", &r18, 3071488, 91, 256);
    sf_net_params r50 = def;
    r50.image_size = 192;
    test_golden(dir, "r50-fire", &r50, 13138624, 231, 1024);
    test_golden_truncated(dir);
    return tu_finish("test_model");
}
