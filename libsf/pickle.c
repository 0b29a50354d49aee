#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pickle_internal.h"
#include "sf_internal.h"
#include "zip_internal.h"

/* Reader state: the value stack with a separate stack of mark positions,
 * and the memo mapping indices to value ids (0 = unset, else id + 1). */
typedef struct reader {
    sf_pickle *pk;
    sf_error *err;
    const unsigned char *p, *end;
    size_t op;          /* offset of the current opcode */
    uint32_t *stack;
    uint32_t sp, stack_cap;
    uint32_t *marks;
    uint32_t n_marks, marks_cap;
    uint32_t *memo;
    uint32_t memo_cap, memo_count;
} reader;

static const struct {
    const char *name;
    size_t size;
} pdtypes[] = {
    [SF_PDT_F32] = { "float32", 4 }, [SF_PDT_F64] = { "float64", 8 },
    [SF_PDT_F16] = { "float16", 2 }, [SF_PDT_BF16] = { "bfloat16", 2 },
    [SF_PDT_I64] = { "int64", 8 },   [SF_PDT_I32] = { "int32", 4 },
    [SF_PDT_I16] = { "int16", 2 },   [SF_PDT_I8] = { "int8", 1 },
    [SF_PDT_U8] = { "uint8", 1 },    [SF_PDT_BOOL] = { "bool", 1 },
    [SF_PDT_C64] = { "complex64", 8 }, [SF_PDT_C128] = { "complex128", 16 },
};

/* torch.<Name>Storage globals as torch.save names them. */
static const struct {
    const char *name;
    int dtype;
} storage_types[] = {
    { "FloatStorage", SF_PDT_F32 },  { "DoubleStorage", SF_PDT_F64 },
    { "HalfStorage", SF_PDT_F16 },   { "BFloat16Storage", SF_PDT_BF16 },
    { "LongStorage", SF_PDT_I64 },   { "IntStorage", SF_PDT_I32 },
    { "ShortStorage", SF_PDT_I16 },  { "CharStorage", SF_PDT_I8 },
    { "ByteStorage", SF_PDT_U8 },    { "BoolStorage", SF_PDT_BOOL },
    { "ComplexFloatStorage", SF_PDT_C64 }, { "ComplexDoubleStorage", SF_PDT_C128 },
    { "UntypedStorage", SF_PDT_U8 }, /* torch >= 2: sizes in bytes */
};

size_t sf_pdtype_size(int dtype)
{
    return dtype >= SF_PDT_F32 && dtype <= SF_PDT_C128 ? pdtypes[dtype].size : 0;
}

const char *sf_pdtype_name(int dtype)
{
    return dtype >= SF_PDT_F32 && dtype <= SF_PDT_C128 ? pdtypes[dtype].name : "?";
}

/* ---- Errors ---- */

static sf_status fail(reader *r, sf_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static sf_status fail(reader *r, sf_status st, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sf_error_set(r->err, st, "%s offset %zu: %s", r->pk->label, r->op, msg);
}

static sf_status nomem(reader *r)
{
    return fail(r, SF_ERR_NOMEM, "out of memory");
}

/* ---- Growing arrays (doubling; the limit is checked by the caller) ---- */

static int grow(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    uint64_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, (size_t)c * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = (uint32_t)(c > UINT32_MAX ? UINT32_MAX : c);
    return 0;
}

/* ---- Values ---- */

static sf_status new_value(reader *r, int kind, uint32_t *id)
{
    sf_pickle *pk = r->pk;
    if (pk->n_values >= SF_PICKLE_MAX_VALUES)
        return fail(r, SF_ERR_TOO_LARGE, "more than %u values", SF_PICKLE_MAX_VALUES);
    if (grow((void **)&pk->values, &pk->cap_values, pk->n_values + 1, sizeof *pk->values))
        return nomem(r);
    *id = pk->n_values++;
    sf_pvalue *v = &pk->values[*id];
    memset(v, 0, sizeof *v);
    v->kind = (uint8_t)kind;
    v->offset = r->op;
    return SF_OK;
}

static sf_status add_item(reader *r, uint32_t container, uint32_t item)
{
    sf_pvalue *v = &r->pk->values[container];
    if (v->u.c.n >= SF_PICKLE_MAX_ITEMS)
        return fail(r, SF_ERR_TOO_LARGE, "container with more than %u items", SF_PICKLE_MAX_ITEMS);
    if (grow((void **)&v->u.c.items, &v->u.c.cap, v->u.c.n + 1, sizeof(uint32_t)))
        return nomem(r);
    v->u.c.items[v->u.c.n++] = item;
    return SF_OK;
}

/* ---- Stack ---- */

static sf_status push(reader *r, uint32_t id)
{
    if (r->sp >= SF_PICKLE_MAX_STACK)
        return fail(r, SF_ERR_TOO_LARGE, "stack deeper than %u", SF_PICKLE_MAX_STACK);
    if (grow((void **)&r->stack, &r->stack_cap, r->sp + 1, sizeof *r->stack))
        return nomem(r);
    r->stack[r->sp++] = id;
    return SF_OK;
}

/* Bottom of the current frame: values above the last mark. */
static uint32_t frame_base(const reader *r)
{
    return r->n_marks ? r->marks[r->n_marks - 1] : 0;
}

static sf_status pop(reader *r, uint32_t *id)
{
    if (r->sp <= frame_base(r))
        return fail(r, SF_ERR_FORMAT, "stack underflow");
    *id = r->stack[--r->sp];
    return SF_OK;
}

static sf_status top(reader *r, uint32_t *id)
{
    if (r->sp <= frame_base(r))
        return fail(r, SF_ERR_FORMAT, "stack underflow");
    *id = r->stack[r->sp - 1];
    return SF_OK;
}

/* Remove the top frame; its values are stack[*base .. sp) until the next push. */
static sf_status pop_mark(reader *r, uint32_t *base)
{
    if (!r->n_marks)
        return fail(r, SF_ERR_FORMAT, "no MARK on the stack");
    *base = r->marks[--r->n_marks];
    return SF_OK;
}

/* ---- Input ---- */

static sf_status need(reader *r, size_t n, const char *what)
{
    if ((size_t)(r->end - r->p) < n)
        return fail(r, SF_ERR_TRUNCATED, "%s needs %zu bytes, %zu left", what, n,
                    (size_t)(r->end - r->p));
    return SF_OK;
}

/* A text argument ending in '\n' (not included), of bounded length. */
static sf_status read_line(reader *r, const char **s, size_t *n, const char *what)
{
    size_t left = (size_t)(r->end - r->p);
    size_t lim = left < SF_PICKLE_MAX_LINE ? left : SF_PICKLE_MAX_LINE;
    const unsigned char *nl = memchr(r->p, '\n', lim);
    if (!nl)
        return fail(r, left < SF_PICKLE_MAX_LINE ? SF_ERR_TRUNCATED : SF_ERR_TOO_LARGE,
                    "%s: no end of line within %zu bytes", what, lim);
    *s = (const char *)r->p;
    *n = (size_t)(nl - r->p);
    r->p = nl + 1;
    return SF_OK;
}

static sf_status push_string(reader *r, int kind, uint64_t len, const char *what)
{
    if (len > (uint64_t)(r->end - r->p))
        return fail(r, SF_ERR_TRUNCATED, "%s of %llu bytes, only %zu left", what,
                    (unsigned long long)len, (size_t)(r->end - r->p));
    uint32_t id = 0;
    sf_status st = new_value(r, kind, &id);
    if (st)
        return st;
    r->pk->values[id].u.s.p = (const char *)r->p;
    r->pk->values[id].u.s.n = (size_t)len;
    r->p += len;
    return push(r, id);
}

static sf_status push_int(reader *r, int kind, int64_t v)
{
    uint32_t id = 0;
    sf_status st = new_value(r, kind, &id);
    if (st)
        return st;
    r->pk->values[id].u.i = v;
    return push(r, id);
}

/* Little-endian two's complement of n bytes (LONG1/LONG4), at most 8. */
static sf_status push_long(reader *r, uint64_t n)
{
    if (n > 8)
        return fail(r, SF_ERR_TOO_LARGE, "integer of %llu bytes does not fit 64 bits",
                    (unsigned long long)n);
    sf_status st = need(r, (size_t)n, "LONG");
    if (st)
        return st;
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++)
        u |= (uint64_t)r->p[i] << (8 * i);
    if (n > 0 && n < 8 && (r->p[n - 1] & 0x80))
        u |= ~(uint64_t)0 << (8 * n);
    r->p += n;
    int64_t v;
    memcpy(&v, &u, sizeof v);
    return push_int(r, SF_PK_INT, v);
}

/* INT / LONG text forms: "I01\n" and "I00\n" are the booleans. */
static sf_status push_text_int(reader *r, int is_long)
{
    const char *s;
    size_t n;
    sf_status st = read_line(r, &s, &n, is_long ? "LONG" : "INT");
    if (st)
        return st;
    if (!is_long && n == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1'))
        return push_int(r, SF_PK_BOOL, s[1] == '1');
    if (is_long && n > 0 && s[n - 1] == 'L')
        n--;
    char buf[32], shown[160];
    if (n == 0 || n >= sizeof buf)
        return fail(r, SF_ERR_FORMAT, "bad integer text");
    sf_copy_text(buf, sizeof buf, s, n);
    char *endp;
    errno = 0;
    long long v = strtoll(buf, &endp, 10);
    if (errno || *endp != '\0')
        return fail(r, SF_ERR_FORMAT, "bad or too large integer text '%s'",
                    sf_zip_printable(shown, sizeof shown, buf, n));
    return push_int(r, SF_PK_INT, v);
}

static sf_status memo_put(reader *r, uint64_t index)
{
    uint32_t id = 0;
    sf_status st = top(r, &id);
    if (st)
        return st;
    if (index >= SF_PICKLE_MAX_MEMO)
        return fail(r, SF_ERR_TOO_LARGE, "memo index %llu exceeds the limit %u",
                    (unsigned long long)index, SF_PICKLE_MAX_MEMO);
    uint32_t old_cap = r->memo_cap;
    if (grow((void **)&r->memo, &r->memo_cap, (uint32_t)index + 1, sizeof *r->memo))
        return nomem(r);
    if (r->memo_cap > old_cap)
        memset(r->memo + old_cap, 0, (size_t)(r->memo_cap - old_cap) * sizeof *r->memo);
    if (!r->memo[index])
        r->memo_count++;
    r->memo[index] = id + 1;
    return SF_OK;
}

static sf_status memo_get(reader *r, uint64_t index)
{
    if (index >= r->memo_cap || !r->memo[index])
        return fail(r, SF_ERR_FORMAT, "memo index %llu was never stored", (unsigned long long)index);
    return push(r, r->memo[index] - 1);
}

static sf_status text_index(reader *r, uint64_t *index, const char *what)
{
    const char *s;
    size_t n;
    sf_status st = read_line(r, &s, &n, what);
    if (st)
        return st;
    uint64_t v = 0;
    if (n == 0 || n > 9)
        return fail(r, SF_ERR_FORMAT, "%s: bad memo index", what);
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return fail(r, SF_ERR_FORMAT, "%s: bad memo index", what);
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *index = v;
    return SF_OK;
}

/* ---- Containers ---- */

/* A new container holding stack[base..sp), which is then dropped. */
static sf_status collect(reader *r, int kind, uint32_t base)
{
    uint32_t id = 0;
    sf_status st = new_value(r, kind, &id);
    if (st)
        return st;
    uint32_t n = r->sp - base;
    if (n) {
        sf_pvalue *v = &r->pk->values[id];
        v->u.c.items = malloc((size_t)n * sizeof(uint32_t));
        if (!v->u.c.items)
            return nomem(r);
        memcpy(v->u.c.items, r->stack + base, (size_t)n * sizeof(uint32_t));
        v->u.c.n = v->u.c.cap = n;
    }
    r->sp = base;
    return push(r, id);
}

/* Add stack[base..sp) to the container below them (APPENDS, SETITEMS,
 * ADDITEMS).  Items sent to an opaque object are dropped: it stays opaque. */
static sf_status extend(reader *r, uint32_t base, int want_kind, const char *what)
{
    uint32_t n = r->sp - base;
    r->sp = base;
    uint32_t target = 0;
    sf_status st = top(r, &target);
    if (st)
        return st;
    sf_pvalue *t = &r->pk->values[target];
    if (t->kind == SF_PK_OBJECT)
        return SF_OK;
    if (t->kind != want_kind)
        return fail(r, SF_ERR_FORMAT, "%s on a value that is not a %s", what,
                    want_kind == SF_PK_DICT ? "dict" : "list");
    if (want_kind == SF_PK_DICT && n % 2)
        return fail(r, SF_ERR_FORMAT, "%s with an odd number of items", what);
    for (uint32_t i = 0; i < n; i++)
        if ((st = add_item(r, target, r->stack[base + i])))
            return st;
    return SF_OK;
}

/* ---- Globals and calls ---- */

static sf_status push_global(reader *r, const char *mod, size_t mod_n, const char *name,
                             size_t name_n)
{
    uint32_t id = 0;
    sf_status st = new_value(r, SF_PK_GLOBAL, &id);
    if (st)
        return st;
    sf_pvalue *v = &r->pk->values[id];
    v->u.g.mod = mod;
    v->u.g.mod_n = (uint32_t)mod_n;
    v->u.g.name = name;
    v->u.g.name_n = (uint32_t)name_n;
    return push(r, id);
}

static int global_is(const sf_pvalue *g, const char *mod, const char *name)
{
    return g->u.g.mod_n == strlen(mod) && memcmp(g->u.g.mod, mod, g->u.g.mod_n) == 0
           && g->u.g.name_n == strlen(name) && memcmp(g->u.g.name, name, g->u.g.name_n) == 0;
}

/* An opaque result of calling callable (a global or another object). */
static sf_status push_object(reader *r, uint32_t callable)
{
    uint32_t id = 0;
    sf_status st = new_value(r, SF_PK_OBJECT, &id);
    if (st)
        return st;
    const sf_pvalue *c = &r->pk->values[callable];
    r->pk->values[id].u.g = c->u.g;
    return push(r, id);
}

static const sf_pvalue *item(const reader *r, const sf_pvalue *tuple, uint32_t i)
{
    return &r->pk->values[tuple->u.c.items[i]];
}

/* Tuple of non-negative ints into out; returns its length or -1. */
static int int_tuple(const reader *r, const sf_pvalue *t, int64_t *out, int max)
{
    if (t->kind != SF_PK_TUPLE || t->u.c.n > (uint32_t)max)
        return -1;
    for (uint32_t i = 0; i < t->u.c.n; i++) {
        const sf_pvalue *v = item(r, t, i);
        if (v->kind != SF_PK_INT || v->u.i < 0)
            return -1;
        out[i] = v->u.i;
    }
    return (int)t->u.c.n;
}

/* torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
 * requires_grad, backward_hooks[, metadata]) */
static sf_status rebuild_tensor(reader *r, const sf_pvalue *args)
{
    sf_pickle *pk = r->pk;
    if (args->kind != SF_PK_TUPLE || args->u.c.n < 4 || args->u.c.n > 7)
        return fail(r, SF_ERR_FORMAT, "_rebuild_tensor_v2 expects 6 or 7 arguments");
    const sf_pvalue *storage = item(r, args, 0), *offset = item(r, args, 1);
    if (storage->kind != SF_PK_STORAGE)
        return fail(r, SF_ERR_FORMAT, "_rebuild_tensor_v2: first argument is not a storage");
    if (offset->kind != SF_PK_INT || offset->u.i < 0)
        return fail(r, SF_ERR_FORMAT, "_rebuild_tensor_v2: bad storage offset");
    sf_ptensor t = { .storage = args->u.c.items[0], .offset = offset->u.i };
    int nd = int_tuple(r, item(r, args, 2), t.shape, SF_PICKLE_MAX_NDIM);
    int ns = int_tuple(r, item(r, args, 3), t.stride, SF_PICKLE_MAX_NDIM);
    if (nd < 0 || ns != nd)
        return fail(r, SF_ERR_FORMAT,
                    "_rebuild_tensor_v2: size and stride must be tuples of the same length, at most "
                    "%d non-negative integers",
                    SF_PICKLE_MAX_NDIM);
    t.ndim = nd;
    if (pk->n_tensors >= SF_PICKLE_MAX_VALUES)
        return fail(r, SF_ERR_TOO_LARGE, "too many tensors");
    if (grow((void **)&pk->tensors, &pk->cap_tensors, pk->n_tensors + 1, sizeof *pk->tensors))
        return nomem(r);
    uint32_t id = 0;
    sf_status st = new_value(r, SF_PK_TENSOR, &id);
    if (st)
        return st;
    pk->tensors[pk->n_tensors] = t;
    pk->values[id].u.tensor = pk->n_tensors++;
    return push(r, id);
}

/* REDUCE / NEWOBJ: callable(*args) for the allow-listed callables only. */
static sf_status call(reader *r, uint32_t callable, uint32_t args_id)
{
    const sf_pvalue *c = &r->pk->values[callable], *args = &r->pk->values[args_id];
    if (c->kind == SF_PK_OBJECT)
        return push_object(r, callable);
    if (c->kind != SF_PK_GLOBAL)
        return fail(r, SF_ERR_FORMAT, "calling a value that is not a global");
    if (args->kind != SF_PK_TUPLE)
        return fail(r, SF_ERR_FORMAT, "call arguments are not a tuple");
    if (global_is(c, "collections", "OrderedDict") && args->u.c.n == 0) {
        uint32_t id = 0;
        sf_status st = new_value(r, SF_PK_DICT, &id);
        return st ? st : push(r, id);
    }
    if (global_is(c, "torch._utils", "_rebuild_tensor_v2"))
        return rebuild_tensor(r, args);
    if (global_is(c, "torch._utils", "_rebuild_parameter")
        || global_is(c, "torch._utils", "_rebuild_parameter_with_state")) {
        if (args->u.c.n < 1 || item(r, args, 0)->kind != SF_PK_TENSOR)
            return fail(r, SF_ERR_FORMAT, "_rebuild_parameter: first argument is not a tensor");
        return push(r, args->u.c.items[0]);
    }
    return push_object(r, callable);
}

/* BINPERSID: ('storage', torch.<T>Storage, key, location, numel). */
static sf_status persistent_load(reader *r, uint32_t pid_id)
{
    const sf_pvalue *pid = &r->pk->values[pid_id];
    if (pid->kind != SF_PK_TUPLE || pid->u.c.n != 5 || !sf_pickle_str_eq(item(r, pid, 0), "storage"))
        return fail(r, SF_ERR_UNSUPPORTED,
                    "persistent id is not a torch storage reference ('storage', type, key, location, "
                    "size)");
    const sf_pvalue *type = item(r, pid, 1), *key = item(r, pid, 2), *loc = item(r, pid, 3),
                    *numel = item(r, pid, 4);
    if (type->kind != SF_PK_GLOBAL || key->kind != SF_PK_STR || loc->kind != SF_PK_STR
        || numel->kind != SF_PK_INT || numel->u.i < 0)
        return fail(r, SF_ERR_FORMAT, "malformed torch storage reference");
    if (key->u.s.n == 0 || key->u.s.n > 64)
        return fail(r, SF_ERR_FORMAT, "storage key of %zu bytes", key->u.s.n);
    int dtype = 0;
    int is_torch = (type->u.g.mod_n == 5 && memcmp(type->u.g.mod, "torch", 5) == 0)
                   || (type->u.g.mod_n == 13 && memcmp(type->u.g.mod, "torch.storage", 13) == 0);
    for (size_t i = 0; is_torch && i < sizeof storage_types / sizeof storage_types[0]; i++)
        if (type->u.g.name_n == strlen(storage_types[i].name)
            && memcmp(type->u.g.name, storage_types[i].name, type->u.g.name_n) == 0)
            dtype = storage_types[i].dtype;
    if (!dtype) {
        char m[80], n[80];
        return fail(r, SF_ERR_UNSUPPORTED, "unsupported storage type %s.%s",
                    sf_zip_printable(m, sizeof m, type->u.g.mod, type->u.g.mod_n),
                    sf_zip_printable(n, sizeof n, type->u.g.name, type->u.g.name_n));
    }
    if ((uint64_t)numel->u.i > (uint64_t)INT64_MAX / sf_pdtype_size(dtype))
        return fail(r, SF_ERR_TOO_LARGE, "storage of %lld elements", (long long)numel->u.i);
    uint32_t id = 0;
    sf_status st = new_value(r, SF_PK_STORAGE, &id);
    if (st)
        return st;
    sf_pvalue *v = &r->pk->values[id];
    pid = &r->pk->values[pid_id]; /* new_value may have moved the array */
    key = item(r, pid, 2);
    numel = item(r, pid, 4);
    v->dtype = (uint8_t)dtype;
    v->u.st.key = key->u.s.p;
    v->u.st.key_n = (uint32_t)key->u.s.n;
    v->u.st.numel = numel->u.i;
    return push(r, id);
}

/* ---- The loop ---- */

static sf_status step(reader *r, int *done)
{
    sf_status st;
    uint32_t a = 0, b = 0, base = 0;
    r->op = (size_t)(r->p - r->pk->data);
    if (r->p >= r->end)
        return fail(r, SF_ERR_TRUNCATED, "pickle ends without STOP");
    unsigned char opc = *r->p++;
    switch (opc) {
    case 0x80: /* PROTO */
        if ((st = need(r, 1, "PROTO")))
            return st;
        if (*r->p > 5)
            return fail(r, SF_ERR_UNSUPPORTED, "pickle protocol %u (at most 5 is supported)", *r->p);
        r->p++;
        return SF_OK;
    case 0x95: /* FRAME: framing is only a read-ahead hint */
        if ((st = need(r, 8, "FRAME")))
            return st;
        if (sf_get_u64(r->p) > (uint64_t)(r->end - r->p - 8))
            return fail(r, SF_ERR_TRUNCATED, "FRAME of %llu bytes runs past the end",
                        (unsigned long long)sf_get_u64(r->p));
        r->p += 8;
        return SF_OK;
    case '.': /* STOP */
        if ((st = pop(r, &a)))
            return st;
        r->pk->root = a;
        *done = 1;
        return SF_OK;
    case '(': /* MARK */
        if (r->n_marks >= SF_PICKLE_MAX_MARKS)
            return fail(r, SF_ERR_TOO_LARGE, "more than %u nested marks", SF_PICKLE_MAX_MARKS);
        if (grow((void **)&r->marks, &r->marks_cap, r->n_marks + 1, sizeof *r->marks))
            return nomem(r);
        r->marks[r->n_marks++] = r->sp;
        return SF_OK;
    case '0': /* POP: a value, or the mark when the frame is empty */
        if (r->n_marks && r->sp == frame_base(r)) {
            r->n_marks--;
            return SF_OK;
        }
        return pop(r, &a);
    case '1': /* POP_MARK */
        if ((st = pop_mark(r, &base)))
            return st;
        r->sp = base;
        return SF_OK;
    case '2': /* DUP */
        if ((st = top(r, &a)))
            return st;
        return push(r, a);
    case '}': /* EMPTY_DICT */
        return collect(r, SF_PK_DICT, r->sp);
    case ']': /* EMPTY_LIST */
        return collect(r, SF_PK_LIST, r->sp);
    case ')': /* EMPTY_TUPLE */
        return collect(r, SF_PK_TUPLE, r->sp);
    case 0x8f: /* EMPTY_SET */
        return collect(r, SF_PK_LIST, r->sp);
    case 't': /* TUPLE */
    case 'l': /* LIST */
    case 0x91: /* FROZENSET */
        if ((st = pop_mark(r, &base)))
            return st;
        return collect(r, opc == 't' ? SF_PK_TUPLE : SF_PK_LIST, base);
    case 'd': /* DICT */
        if ((st = pop_mark(r, &base)))
            return st;
        if ((r->sp - base) % 2)
            return fail(r, SF_ERR_FORMAT, "DICT with an odd number of items");
        return collect(r, SF_PK_DICT, base);
    case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
        uint32_t n = (uint32_t)(opc - 0x84);
        if (r->sp - frame_base(r) < n)
            return fail(r, SF_ERR_FORMAT, "stack underflow");
        return collect(r, SF_PK_TUPLE, r->sp - n);
    }
    case 'a': /* APPEND */
        if (r->sp - frame_base(r) < 2)
            return fail(r, SF_ERR_FORMAT, "stack underflow");
        return extend(r, r->sp - 1, SF_PK_LIST, "APPEND");
    case 'e': /* APPENDS */
    case 0x90: /* ADDITEMS */
        if ((st = pop_mark(r, &base)))
            return st;
        return extend(r, base, SF_PK_LIST, opc == 'e' ? "APPENDS" : "ADDITEMS");
    case 's': /* SETITEM */
        if (r->sp - frame_base(r) < 3)
            return fail(r, SF_ERR_FORMAT, "stack underflow");
        return extend(r, r->sp - 2, SF_PK_DICT, "SETITEM");
    case 'u': /* SETITEMS */
        if ((st = pop_mark(r, &base)))
            return st;
        return extend(r, base, SF_PK_DICT, "SETITEMS");
    case 'J': /* BININT */
        if ((st = need(r, 4, "BININT")))
            return st;
        a = sf_get_u32(r->p);
        r->p += 4;
        return push_int(r, SF_PK_INT, (int32_t)a);
    case 'K': /* BININT1 */
        if ((st = need(r, 1, "BININT1")))
            return st;
        return push_int(r, SF_PK_INT, *r->p++);
    case 'M': /* BININT2 */
        if ((st = need(r, 2, "BININT2")))
            return st;
        a = sf_get_u16(r->p);
        r->p += 2;
        return push_int(r, SF_PK_INT, a);
    case 0x8a: /* LONG1 */
        if ((st = need(r, 1, "LONG1")))
            return st;
        return push_long(r, *r->p++);
    case 0x8b: /* LONG4 */
        if ((st = need(r, 4, "LONG4")))
            return st;
        a = sf_get_u32(r->p);
        r->p += 4;
        if (a & 0x80000000u)
            return fail(r, SF_ERR_FORMAT, "LONG4 with a negative length");
        return push_long(r, a);
    case 'I': /* INT */
        return push_text_int(r, 0);
    case 'L': /* LONG */
        return push_text_int(r, 1);
    case 'G': { /* BINFLOAT: big-endian */
        if ((st = need(r, 8, "BINFLOAT")))
            return st;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = (u << 8) | r->p[i];
        r->p += 8;
        uint32_t id = 0;
        if ((st = new_value(r, SF_PK_FLOAT, &id)))
            return st;
        memcpy(&r->pk->values[id].u.f, &u, sizeof u);
        return push(r, id);
    }
    case 0x88: /* NEWTRUE */
        return push_int(r, SF_PK_BOOL, 1);
    case 0x89: /* NEWFALSE */
        return push_int(r, SF_PK_BOOL, 0);
    case 'N': /* NONE */
        return push_int(r, SF_PK_NONE, 0);
    case 'X': /* BINUNICODE */
        if ((st = need(r, 4, "BINUNICODE")))
            return st;
        a = sf_get_u32(r->p);
        r->p += 4;
        return push_string(r, SF_PK_STR, a, "BINUNICODE");
    case 0x8c: /* SHORT_BINUNICODE */
        if ((st = need(r, 1, "SHORT_BINUNICODE")))
            return st;
        a = *r->p++;
        return push_string(r, SF_PK_STR, a, "SHORT_BINUNICODE");
    case 0x8d: /* BINUNICODE8 */
    case 0x8e: { /* BINBYTES8 */
        if ((st = need(r, 8, opc == 0x8d ? "BINUNICODE8" : "BINBYTES8")))
            return st;
        uint64_t n = sf_get_u64(r->p);
        r->p += 8;
        return push_string(r, opc == 0x8d ? SF_PK_STR : SF_PK_BYTES, n,
                           opc == 0x8d ? "BINUNICODE8" : "BINBYTES8");
    }
    case 'T': /* BINSTRING (Python 2 str, read as text) */
        if ((st = need(r, 4, "BINSTRING")))
            return st;
        a = sf_get_u32(r->p);
        r->p += 4;
        if (a & 0x80000000u)
            return fail(r, SF_ERR_FORMAT, "BINSTRING with a negative length");
        return push_string(r, SF_PK_STR, a, "BINSTRING");
    case 'U': /* SHORT_BINSTRING */
        if ((st = need(r, 1, "SHORT_BINSTRING")))
            return st;
        a = *r->p++;
        return push_string(r, SF_PK_STR, a, "SHORT_BINSTRING");
    case 'B': /* BINBYTES */
        if ((st = need(r, 4, "BINBYTES")))
            return st;
        a = sf_get_u32(r->p);
        r->p += 4;
        return push_string(r, SF_PK_BYTES, a, "BINBYTES");
    case 'C': /* SHORT_BINBYTES */
        if ((st = need(r, 1, "SHORT_BINBYTES")))
            return st;
        a = *r->p++;
        return push_string(r, SF_PK_BYTES, a, "SHORT_BINBYTES");
    case 'q': /* BINPUT */
        if ((st = need(r, 1, "BINPUT")))
            return st;
        return memo_put(r, *r->p++);
    case 'r': /* LONG_BINPUT */
        if ((st = need(r, 4, "LONG_BINPUT")))
            return st;
        a = sf_get_u32(r->p);
        r->p += 4;
        return memo_put(r, a);
    case 0x94: /* MEMOIZE */
        return memo_put(r, r->memo_count);
    case 'p': { /* PUT */
        uint64_t idx;
        if ((st = text_index(r, &idx, "PUT")))
            return st;
        return memo_put(r, idx);
    }
    case 'h': /* BINGET */
        if ((st = need(r, 1, "BINGET")))
            return st;
        return memo_get(r, *r->p++);
    case 'j': /* LONG_BINGET */
        if ((st = need(r, 4, "LONG_BINGET")))
            return st;
        a = sf_get_u32(r->p);
        r->p += 4;
        return memo_get(r, a);
    case 'g': { /* GET */
        uint64_t idx;
        if ((st = text_index(r, &idx, "GET")))
            return st;
        return memo_get(r, idx);
    }
    case 'c': { /* GLOBAL "module\nname\n" */
        const char *mod, *name;
        size_t mod_n, name_n;
        if ((st = read_line(r, &mod, &mod_n, "GLOBAL")) || (st = read_line(r, &name, &name_n, "GLOBAL")))
            return st;
        return push_global(r, mod, mod_n, name, name_n);
    }
    case 0x93: { /* STACK_GLOBAL */
        if ((st = pop(r, &b)) || (st = pop(r, &a)))
            return st;
        const sf_pvalue *mod = &r->pk->values[a], *name = &r->pk->values[b];
        if (mod->kind != SF_PK_STR || name->kind != SF_PK_STR || mod->u.s.n > SF_PICKLE_MAX_LINE
            || name->u.s.n > SF_PICKLE_MAX_LINE)
            return fail(r, SF_ERR_FORMAT, "STACK_GLOBAL needs two short strings");
        return push_global(r, mod->u.s.p, mod->u.s.n, name->u.s.p, name->u.s.n);
    }
    case 'R': /* REDUCE */
    case 0x81: /* NEWOBJ */
        if ((st = pop(r, &b)) || (st = pop(r, &a)))
            return st;
        return call(r, a, b);
    case 0x92: /* NEWOBJ_EX: cls, args, kwargs */
        if ((st = pop(r, &b)) || (st = pop(r, &b)) || (st = pop(r, &a)))
            return st;
        if (r->pk->values[a].kind != SF_PK_GLOBAL && r->pk->values[a].kind != SF_PK_OBJECT)
            return fail(r, SF_ERR_FORMAT, "calling a value that is not a global");
        return push_object(r, a);
    case 'b': /* BUILD: the state only sets attributes we do not model */
        if ((st = pop(r, &a)))
            return st;
        return top(r, &a);
    case 'Q': /* BINPERSID */
        if ((st = pop(r, &a)))
            return st;
        return persistent_load(r, a);
    }
    if (opc >= 0x20 && opc < 0x7f)
        return fail(r, SF_ERR_UNSUPPORTED, "unsupported pickle opcode 0x%02x ('%c')", opc, opc);
    return fail(r, SF_ERR_UNSUPPORTED, "unsupported pickle opcode 0x%02x", opc);
}

sf_status sf_pickle_load(sf_pickle *pk, const void *data, size_t size, const char *label,
                         sf_error *err)
{
    memset(pk, 0, sizeof *pk);
    pk->data = data;
    pk->size = size;
    pk->label = label ? label : "<pickle>";
    pk->root = SF_PICKLE_NONE_ID;
    reader r = { .pk = pk, .err = err, .p = data, .end = (const unsigned char *)data + size };
    sf_status st = SF_OK;
    int done = 0;
    while (!done && !st)
        st = step(&r, &done);
    free(r.stack);
    free(r.marks);
    free(r.memo);
    return st;
}

void sf_pickle_free(sf_pickle *pk)
{
    if (!pk)
        return;
    for (uint32_t i = 0; i < pk->n_values; i++) {
        int k = pk->values[i].kind;
        if (k == SF_PK_TUPLE || k == SF_PK_LIST || k == SF_PK_DICT)
            free(pk->values[i].u.c.items);
    }
    free(pk->values);
    free(pk->tensors);
    memset(pk, 0, sizeof *pk);
}

/* ---- Queries ---- */

int sf_pickle_str_eq(const sf_pvalue *v, const char *s)
{
    return v && v->kind == SF_PK_STR && v->u.s.n == strlen(s) && memcmp(v->u.s.p, s, v->u.s.n) == 0;
}

uint32_t sf_pickle_dict_get(const sf_pickle *pk, uint32_t dict, const char *key)
{
    const sf_pvalue *d = sf_pickle_value(pk, dict);
    if (!d || d->kind != SF_PK_DICT)
        return SF_PICKLE_NONE_ID;
    for (uint32_t i = d->u.c.n; i >= 2; i -= 2)
        if (sf_pickle_str_eq(&pk->values[d->u.c.items[i - 2]], key))
            return d->u.c.items[i - 1];
    return SF_PICKLE_NONE_ID;
}

const char *sf_pickle_describe(const sf_pickle *pk, uint32_t id, char *buf, size_t n)
{
    static const char *const names[] = {
        [SF_PK_NONE] = "None",     [SF_PK_BOOL] = "a bool",     [SF_PK_INT] = "an int",
        [SF_PK_FLOAT] = "a float", [SF_PK_STR] = "a str",       [SF_PK_BYTES] = "bytes",
        [SF_PK_TUPLE] = "a tuple", [SF_PK_LIST] = "a list",     [SF_PK_DICT] = "a dict",
        [SF_PK_GLOBAL] = "a global", [SF_PK_OBJECT] = "an object", [SF_PK_STORAGE] = "a storage",
        [SF_PK_TENSOR] = "a tensor", [SF_PK_MARK] = "a mark",
    };
    const sf_pvalue *v = sf_pickle_value(pk, id);
    if (!v) {
        snprintf(buf, n, "nothing");
        return buf;
    }
    if (v->kind == SF_PK_OBJECT || v->kind == SF_PK_GLOBAL) {
        char m[96], nm[96];
        /* Objects are never built: name the global that would have made it. */
        snprintf(buf, n, v->kind == SF_PK_OBJECT ? "an object of %s.%s (an unsupported global)"
                                                 : "the global %s.%s",
                 sf_zip_printable(m, sizeof m, v->u.g.mod, v->u.g.mod_n),
                 sf_zip_printable(nm, sizeof nm, v->u.g.name, v->u.g.name_n));
        return buf;
    }
    snprintf(buf, n, "%s", names[v->kind]);
    return buf;
}
