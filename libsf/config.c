#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "sf.h"
#include "sf_internal.h"

/* ---- the table of keys ----
 * Everything below (loader, sf_config_set, writer, suggestions) works from
 * this table, so a new setting is one line here plus its field and default. */

enum key_type {
    KEY_INT,     /* int, imin..imax */
    KEY_U64,     /* uint64_t, full range */
    KEY_DOUBLE,  /* double, see range below */
    KEY_BOOL,    /* int, 0 or 1 */
    KEY_FLOATS,  /* float[n], exactly n values */
    KEY_DOUBLES, /* double[], 1..n values, count in an int field */
    KEY_STRING   /* char[n], NUL-terminated */
};

struct key {
    const char *name;
    enum key_type type;
    size_t offset;
    long long imin, imax;   /* KEY_INT */
    double dmin, dmax;      /* numbers and list elements; infinite = unbounded */
    int dmin_open;          /* dmin itself is excluded */
    int nmin, nmax;         /* lists: value count; strings: nmax = buffer size */
    size_t count_offset;    /* KEY_DOUBLES: the int holding the count */
    const char *choices;    /* KEY_STRING: the values allowed, "a|b"; NULL: any */
    const char *meaning;
};

/* offsetof that refuses to compile when the field does not have type T, so
 * the table cannot silently disagree with the struct. */
#define OFF(f, T) (offsetof(sf_config, f) + 0 * sizeof(char[_Generic(((sf_config *)0)->f, T: 1)]))
#define LEN(f) ((int)(sizeof(((sf_config *)0)->f) / sizeof(((sf_config *)0)->f[0])))

#define INT(n, f, lo, hi, m) \
    { .name = n, .type = KEY_INT, .offset = OFF(f, int), .imin = lo, .imax = hi, .meaning = m }
#define U64(n, f, m) \
    { .name = n, .type = KEY_U64, .offset = OFF(f, uint64_t), .meaning = m }
#define DOUBLE(n, f, lo, lo_open, hi, m) \
    { .name = n, .type = KEY_DOUBLE, .offset = OFF(f, double), .dmin = lo, \
      .dmin_open = lo_open, .dmax = hi, .meaning = m }
#define BOOL(n, f, m) \
    { .name = n, .type = KEY_BOOL, .offset = OFF(f, int), .meaning = m }
#define FLOATS(n, f, lo, lo_open, hi, m) \
    { .name = n, .type = KEY_FLOATS, .offset = OFF(f, float *), .dmin = lo, \
      .dmin_open = lo_open, .dmax = hi, .nmin = LEN(f), .nmax = LEN(f), .meaning = m }
#define DOUBLES(n, f, count, lo, lo_open, hi, m) \
    { .name = n, .type = KEY_DOUBLES, .offset = OFF(f, double *), .dmin = lo, \
      .dmin_open = lo_open, .dmax = hi, .nmin = 1, .nmax = LEN(f), \
      .count_offset = OFF(count, int), .meaning = m }
#define STRING(n, f, m) \
    { .name = n, .type = KEY_STRING, .offset = OFF(f, char *), .nmax = LEN(f), .meaning = m }
/* A setting with a fixed set of values is refused where it is read, not
 * later by whichever program happens to use it. */
#define CHOICE(n, f, c, m) \
    { .name = n, .type = KEY_STRING, .offset = OFF(f, char *), .nmax = LEN(f), .choices = c, \
      .meaning = m }

static const struct key keys[] = {
    INT("image.size", image_size, 0, 65536,
        "long side in pixels that images are shrunk to, never enlarged; 0 = the model's own "
        "(1024 without a model)"),
    FLOATS("image.mean", mean, -HUGE_VAL, 0, HUGE_VAL,
           "per-channel R, G, B mean subtracted from pixels scaled to 0..1"),
    FLOATS("image.std", std, 0, 1, HUGE_VAL,
           "per-channel R, G, B standard deviation the pixels are divided by"),
    DOUBLES("image.scales", scales, n_scales, 0, 1, 16,
            "scale factors of the multi-scale pyramid, in order"),
    BOOL("image.autorotate", autorotate,
         "apply the EXIF orientation before resizing (the reference does not)"),
    U64("image.max_pixels", max_pixels,
        "refuse images with more pixels than this; 0 = no limit"),
    U64("image.max_bytes", max_bytes,
        "refuse image files longer than this many bytes; 0 = no limit"),
    U64("image.max_memory", max_memory,
        "refuse images whose decoding and pyramid need more bytes of memory; 0 = no limit"),
    INT("features.keep", features_num, 0, 1000000,
        "super-features kept per image, strongest over all scales; 0 = the model's own"),
    BOOL("features.global", global,
         "also compute the global descriptor"),
    STRING("compute.backend", backend,
           "compute backend to use; empty = the best one available"),
    INT("compute.threads", threads, 0, 1024,
        "worker threads; 0 = one per core"),
    STRING("compute.model", model,
           "FIRe checkpoint file; empty = the program's default"),
    CHOICE("compute.precision", precision, "f32|bf16",
           "f32, or bf16 (backbone and LIT products in bfloat16; onednn on AVX512-BF16)"),
    INT("asmk.codebook_size", codebook_size, 0, SF_INDEX_MAX_WORDS,
        "visual words in the k-means codebook; 0 = follow the number of descriptors "
        "(a power of two with 32 per word, at most 65536)"),
    INT("asmk.kmeans_iterations", kmeans_iterations, 1, 10000,
        "k-means iterations when training the codebook"),
    U64("asmk.kmeans_seed", kmeans_seed,
        "seed of the k-means initialisation"),
    INT("asmk.multiple_assignment_database", ma_database, 1, 64,
        "visual words each database descriptor is assigned to"),
    INT("asmk.multiple_assignment_query", ma_query, 1, 64,
        "visual words each query descriptor is assigned to"),
    BOOL("asmk.binary", binary,
         "binarise aggregated residuals (Hamming similarity) instead of L2-normalising"),
    /* The index stores alpha as a float: bounded here, it never turns
     * into infinity later. */
    DOUBLE("asmk.alpha", alpha, 0, 1, 1000,
           "exponent of the selectivity function u^alpha"),
    DOUBLE("asmk.threshold", threshold, -1, 0, 1,
           "similarities u below this contribute nothing"),
    BOOL("asmk.idf", idf,
         "weight visual words by inverse document frequency"),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

void sf_config_init(sf_config *cfg)
{
    static const double scales[] = { 2.0, 1.414, 1.0, 0.707, 0.5, 0.353, 0.25 };
    memset(cfg, 0, sizeof *cfg);
    cfg->image_size = 0; /* the model's runtime.image_size (sf_config_use_model) */
    cfg->mean[0] = 0.485f;
    cfg->mean[1] = 0.456f;
    cfg->mean[2] = 0.406f;
    cfg->std[0] = 0.229f;
    cfg->std[1] = 0.224f;
    cfg->std[2] = 0.225f;
    cfg->n_scales = (int)(sizeof scales / sizeof scales[0]);
    memcpy(cfg->scales, scales, sizeof scales);
    cfg->autorotate = 1;
    cfg->max_pixels = 178956970; /* Pillow's decompression-bomb limit */
    /* Files are read whole before decoding: this bounds the memory, and the
     * time an endless input (/dev/zero) takes before it fails. */
    cfg->max_bytes = UINT64_C(512) << 20;
    /* Estimated from the header before decoding (sf_image_memory): one
     * image with a pyramid of large scales cannot take the machine. */
    cfg->max_memory = UINT64_C(2) << 30;
    cfg->features_num = 0; /* the checkpoint's runtime.features_num */
    cfg->global = 0;
    cfg->threads = 0;
    strcpy(cfg->precision, "f32");
    cfg->codebook_size = 0; /* sf_codebook_default_size of the descriptors */
    cfg->kmeans_iterations = 10;
    cfg->kmeans_seed = 0;
    cfg->ma_database = 1;
    cfg->ma_query = 5;
    cfg->binary = 1;
    cfg->alpha = 3.0;
    cfg->threshold = 0.0;
    cfg->idf = 0;
}

void sf_config_use_model(sf_config *cfg, const struct sf_net_params *params)
{
    if (cfg->image_size == 0)
        cfg->image_size = params ? params->image_size : SF_CONFIG_DEFAULT_IMAGE_SIZE;
    if (cfg->features_num == 0 && params)
        cfg->features_num = params->features_num;
}

static void *field(sf_config *cfg, const struct key *k)
{
    return (char *)cfg + k->offset;
}

static const void *cfield(const sf_config *cfg, const struct key *k)
{
    return (const char *)cfg + k->offset;
}

static int *count_field(sf_config *cfg, const struct key *k)
{
    return (int *)(void *)((char *)cfg + k->count_offset);
}

static const struct key *find_key(const char *name, size_t len)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strlen(keys[i].name) == len && memcmp(keys[i].name, name, len) == 0)
            return &keys[i];
    return NULL;
}

/* A section is a proper dotted prefix of some key ("image" of
 * "image.size").  Returns a key whose name starts with it, or NULL. */
static const struct key *find_section(const char *name, size_t len)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strlen(keys[i].name) > len && memcmp(keys[i].name, name, len) == 0 &&
            keys[i].name[len] == '.')
            return &keys[i];
    return NULL;
}

/* ---- messages ---- */

/* Where a problem is: file and 1-based line, or file == NULL for
 * sf_config_set, whose messages carry the key only. */
struct where {
    const char *file;
    unsigned long line;
};

static sf_status config_error(const struct where *at, sf_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sf_status config_error(const struct where *at, sf_error *err, const char *fmt, ...)
{
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at && at->file)
        return sf_error_set(err, SF_ERR_CONFIG, "%s:%lu: %s", at->file, at->line, msg);
    return sf_error_set(err, SF_ERR_CONFIG, "%s", msg);
}

#define SHOW_MAX 48

/* User text quoted in a message: short, one line, no control bytes, so a
 * binary file cannot garble the terminal. */
static const char *show(char buf[SHOW_MAX + 8], const char *s, size_t len)
{
    size_t n = len;
    if (n > SHOW_MAX) {
        n = SHOW_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* do not cut a UTF-8 sequence in half */
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (char)(c < 0x20 || c == 0x7F ? '?' : c);
    }
    strcpy(buf + n, n < len ? "..." : "");
    return buf;
}

/* Optimal string alignment distance (Levenshtein plus transpositions),
 * bounded to short strings. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    enum { MAXLEN = 64 };
    size_t d[MAXLEN + 1][MAXLEN + 1];
    if (la > MAXLEN || lb > MAXLEN)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* The known name closest to an unknown one, written into out as
 * " (did you mean 'x'?)", or "" when nothing is close. */
static void suggest(const char *name, size_t len, char *out, size_t size)
{
    const char *best = NULL;
    size_t best_len = 0, best_d = 3;
    out[0] = '\0';
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *kn = keys[i].name;
        /* the key itself, then each of its sections */
        for (size_t kl = strlen(kn); kl > 0;) {
            size_t d = edit_distance(name, len, kn, kl);
            if (d < best_d) {
                best_d = d;
                best = kn;
                best_len = kl;
            }
            while (kl > 0 && kn[kl - 1] != '.')
                kl--;
            if (kl > 0)
                kl--;
        }
    }
    if (!best) {
        /* A key written without its section, or in the wrong one ("size"
         * or "compute.size" for "image.size"): compare the last parts. */
        const char *last = name;
        for (size_t i = 0; i < len; i++)
            if (name[i] == '.')
                last = name + i + 1;
        size_t last_len = len - (size_t)(last - name);
        for (size_t i = 0; i < N_KEYS; i++) {
            const char *dot = strrchr(keys[i].name, '.');
            const char *kl = dot ? dot + 1 : keys[i].name;
            size_t d = edit_distance(last, last_len, kl, strlen(kl));
            /* short words are all close to each other */
            if (d < best_d && d <= (last_len > 4 ? 2u : 1u)) {
                best_d = d;
                best = keys[i].name;
                best_len = strlen(best);
            }
        }
    }
    if (best)
        snprintf(out, size, " (did you mean '%.*s'?)", (int)best_len, best);
}

static sf_status unknown_key(const struct where *at, sf_error *err, const char *name, size_t len)
{
    char buf[SHOW_MAX + 8], hint[160];
    suggest(name, len, hint, sizeof hint);
    return config_error(at, err, "unknown key '%s'%s", show(buf, name, len), hint);
}

static const char *expected(const struct key *k)
{
    switch (k->type) {
    case KEY_INT: return "an integer";
    case KEY_U64: return "a non-negative integer";
    case KEY_DOUBLE: return "a number";
    case KEY_BOOL: return "true or false";
    case KEY_FLOATS:
    case KEY_DOUBLES: return "a list of numbers";
    case KEY_STRING: return "a string";
    }
    return "a value";
}

/* "(1..65536)", "(> 0)", "(> 0 and <= 16)" */
static void range_text(const struct key *k, char *out, size_t size)
{
    if (k->type == KEY_INT) {
        snprintf(out, size, "%lld..%lld", k->imin, k->imax);
    } else if (k->type == KEY_U64) {
        snprintf(out, size, "0..%" PRIu64, UINT64_MAX);
    } else if (isinf(k->dmin) && isinf(k->dmax)) {
        snprintf(out, size, "any finite number");
    } else if (isinf(k->dmax)) {
        snprintf(out, size, "%s %.17g", k->dmin_open ? ">" : ">=", k->dmin);
    } else if (k->dmin_open) {
        snprintf(out, size, "> %.17g and <= %.17g", k->dmin, k->dmax);
    } else {
        snprintf(out, size, "%.17g..%.17g", k->dmin, k->dmax);
    }
}

static sf_status out_of_range(const struct where *at, sf_error *err, const struct key *k,
                              const char *s, size_t len)
{
    char buf[SHOW_MAX + 8], range[96];
    range_text(k, range, sizeof range);
    return config_error(at, err, "%s: %s is out of range (%s)", k->name, show(buf, s, len), range);
}

/* ---- parsing values from text (shared by YAML and sf_config_set) ---- */

/* Decimal integer with an optional sign, the whole text.  Returns 0 on a
 * syntax error, 1 when *mag holds the magnitude, 2 when it overflows. */
static int parse_decimal(const char *s, size_t len, int *negative, uint64_t *mag)
{
    size_t i = 0;
    *negative = 0;
    *mag = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        *negative = s[i++] == '-';
    if (i == len)
        return 0;
    int overflow = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        unsigned digit = (unsigned)(s[i] - '0');
        if (*mag > (UINT64_MAX - digit) / 10)
            overflow = 1;
        else
            *mag = *mag * 10 + digit;
    }
    return overflow ? 2 : 1;
}

/* Decimal floating-point syntax only: no hex, inf or nan, no spaces. */
static int is_decimal_number(const char *s, size_t len)
{
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < len && s[i] == '.')
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (digits == 0)
        return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp_digits = 0;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            exp_digits++;
        if (exp_digits == 0)
            return 0;
    }
    return i == len;
}

/* A number for a KEY_DOUBLE key or one element of a list, checked against
 * the key's range as it will be stored (float or double). */
static sf_status parse_number(const struct key *k, const char *s, size_t len, double *out,
                              const struct where *at, sf_error *err)
{
    char small[64], buf[SHOW_MAX + 8];
    if (!is_decimal_number(s, len))
        return config_error(at, err, "%s: expected a number, got '%s'", k->name, show(buf, s, len));
    /* strtod needs a terminated string; the text may be a slice. */
    char *copy = len < sizeof small ? small : malloc(len + 1);
    if (!copy)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", k->name);
    sf_copy_text(copy, len + 1, s, len);
    char *end;
    double v = strtod(copy, &end);
    int complete = end == copy + len;
    if (copy != small)
        free(copy);
    if (!complete)
        return config_error(at, err, "%s: expected a number, got '%s'", k->name, show(buf, s, len));
    if (k->type == KEY_FLOATS) {
        /* Below this, rounding to float gives at most FLT_MAX. */
        if (fabs(v) >= 0x1.ffffffp+127)
            return config_error(at, err, "%s: %s is too large", k->name, show(buf, s, len));
        v = (float)v;
    }
    if (!isfinite(v))
        return config_error(at, err, "%s: %s is too large", k->name, show(buf, s, len));
    if (v < k->dmin || (k->dmin_open && v == k->dmin) || v > k->dmax)
        return out_of_range(at, err, k, s, len);
    *out = v;
    return SF_OK;
}

static int equals_nocase(const char *s, size_t len, const char *word)
{
    if (strlen(word) != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return 0;
    }
    return 1;
}

/* Whether s is one of the '|'-separated words of choices. */
static int is_choice(const char *choices, const char *s, size_t len)
{
    for (const char *c = choices;;) {
        size_t n = strcspn(c, "|");
        if (n == len && memcmp(c, s, len) == 0)
            return 1;
        if (!c[n])
            return 0;
        c += n + 1;
    }
}

/* Store the text of a scalar (non-list) key. */
static sf_status set_scalar(const struct key *k, sf_config *cfg, const char *s, size_t len,
                            const struct where *at, sf_error *err)
{
    char buf[SHOW_MAX + 8];
    int negative, r;
    uint64_t mag;
    switch (k->type) {
    case KEY_INT: {
        r = parse_decimal(s, len, &negative, &mag);
        if (r == 0)
            break;
        /* Ranges lie well inside int, so compare magnitudes. */
        if (r == 2 || (negative ? (k->imin >= 0 ? mag != 0 : mag > (uint64_t)-k->imin)
                                : mag > (uint64_t)k->imax))
            return out_of_range(at, err, k, s, len);
        long long v = negative ? -(long long)mag : (long long)mag;
        if (v < k->imin || v > k->imax)
            return out_of_range(at, err, k, s, len);
        *(int *)field(cfg, k) = (int)v;
        return SF_OK;
    }
    case KEY_U64:
        r = parse_decimal(s, len, &negative, &mag);
        if (r == 0)
            break;
        if (r == 2 || (negative && mag != 0))
            return out_of_range(at, err, k, s, len);
        *(uint64_t *)field(cfg, k) = mag;
        return SF_OK;
    case KEY_DOUBLE:
        return parse_number(k, s, len, (double *)field(cfg, k), at, err);
    case KEY_BOOL:
        if (equals_nocase(s, len, "true") || equals_nocase(s, len, "yes") ||
            equals_nocase(s, len, "on")) {
            *(int *)field(cfg, k) = 1;
            return SF_OK;
        }
        if (equals_nocase(s, len, "false") || equals_nocase(s, len, "no") ||
            equals_nocase(s, len, "off")) {
            *(int *)field(cfg, k) = 0;
            return SF_OK;
        }
        break;
    case KEY_STRING:
        if (memchr(s, '\0', len))
            return config_error(at, err, "%s: the value contains a NUL character", k->name);
        if (len >= (size_t)k->nmax)
            return config_error(at, err, "%s: the value is too long (at most %d bytes)",
                                k->name, k->nmax - 1);
        if (k->choices && !is_choice(k->choices, s, len))
            return config_error(at, err, "%s: expected one of %s, got '%s'", k->name,
                                k->choices, show(buf, s, len));
        sf_copy_text(field(cfg, k), (size_t)k->nmax, s, len);
        return SF_OK;
    case KEY_FLOATS:
    case KEY_DOUBLES:
        break; /* lists go through set_element */
    }
    return config_error(at, err, "%s: expected %s, got '%s'", k->name, expected(k),
                        show(buf, s, len));
}

/* Element i of a list key; the caller has checked i < nmax. */
static sf_status set_element(const struct key *k, sf_config *cfg, int i, const char *s,
                             size_t len, const struct where *at, sf_error *err)
{
    double v;
    sf_status st = parse_number(k, s, len, &v, at, err);
    if (st != SF_OK)
        return st;
    if (k->type == KEY_FLOATS)
        ((float *)field(cfg, k))[i] = (float)v;
    else
        ((double *)field(cfg, k))[i] = v;
    return SF_OK;
}

static sf_status too_many(const struct where *at, sf_error *err, const struct key *k)
{
    if (k->nmin == k->nmax)
        return config_error(at, err, "%s: expected %d values, got more", k->name, k->nmax);
    return config_error(at, err, "%s: too many values (at most %d)", k->name, k->nmax);
}

static sf_status set_count(const struct key *k, sf_config *cfg, int n, const struct where *at,
                           sf_error *err)
{
    if (n < k->nmin) {
        if (k->nmin == k->nmax)
            return config_error(at, err, "%s: expected %d values, got %d", k->name, k->nmax, n);
        return config_error(at, err, "%s: expected %d to %d values, got %d", k->name, k->nmin,
                            k->nmax, n);
    }
    if (k->type == KEY_DOUBLES)
        *count_field(cfg, k) = n;
    return SF_OK;
}

/* ---- the YAML loader ---- */

struct loader {
    yaml_parser_t parser;
    const char *data;
    size_t size;
    const char *name;
    sf_config work; /* committed to the caller's config only on success */
    sf_error *err;
    unsigned long key_line[N_KEYS]; /* where each key was set; 0 = not yet */
    struct {
        const struct key *key; /* a key inside the section */
        size_t len;            /* length of the section's name */
        unsigned long line;
    } sections[N_KEYS];
    size_t n_sections;
};

static unsigned long line_of(const yaml_event_t *ev)
{
    return (unsigned long)ev->start_mark.line + 1;
}

static sf_status syntax_error(struct loader *ld)
{
    yaml_parser_t *p = &ld->parser;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return sf_error_set(ld->err, SF_ERR_NOMEM, "%s: out of memory while reading YAML",
                            ld->name);
    if (p->error == YAML_READER_ERROR) {
        /* Encoding errors come with a byte offset rather than a mark. */
        unsigned long line = 1;
        for (size_t i = 0; i < p->problem_offset && i < ld->size; i++)
            line += ld->data[i] == '\n';
        /* problem_value is a byte for UTF-8 errors, a code point otherwise */
        if (p->problem_value != -1 && strstr(problem, "octet"))
            return sf_error_set(ld->err, SF_ERR_CONFIG, "%s:%lu: %s (byte 0x%02X)", ld->name,
                                line, problem, (unsigned)p->problem_value & 0xFFu);
        if (p->problem_value != -1)
            return sf_error_set(ld->err, SF_ERR_CONFIG, "%s:%lu: %s (U+%04X)", ld->name, line,
                                problem, (unsigned)p->problem_value);
        return sf_error_set(ld->err, SF_ERR_CONFIG, "%s:%lu: %s", ld->name, line, problem);
    }
    unsigned long line = (unsigned long)p->problem_mark.line + 1;
    if (p->context)
        return sf_error_set(ld->err, SF_ERR_CONFIG, "%s:%lu: %s (%s started at line %lu)",
                            ld->name, line, problem, p->context,
                            (unsigned long)p->context_mark.line + 1);
    return sf_error_set(ld->err, SF_ERR_CONFIG, "%s:%lu: %s", ld->name, line, problem);
}

static sf_status next_event(struct loader *ld, yaml_event_t *ev)
{
    if (yaml_parser_parse(&ld->parser, ev))
        return SF_OK;
    return syntax_error(ld);
}

/* Aliases and tags have no meaning in a settings file; refusing them keeps
 * "what you see is the value" true.  Anchors alone are harmless. */
static sf_status check_node(struct loader *ld, const yaml_event_t *ev)
{
    struct where at = { ld->name, line_of(ev) };
    const yaml_char_t *tag = NULL;
    char buf[SHOW_MAX + 8];
    if (ev->type == YAML_ALIAS_EVENT) {
        const char *a = (const char *)ev->data.alias.anchor;
        return config_error(&at, ld->err,
                            "aliases (*%s) are not supported; write the value out",
                            show(buf, a, strlen(a)));
    }
    if (ev->type == YAML_SCALAR_EVENT)
        tag = ev->data.scalar.tag;
    else if (ev->type == YAML_SEQUENCE_START_EVENT)
        tag = ev->data.sequence_start.tag;
    else if (ev->type == YAML_MAPPING_START_EVENT)
        tag = ev->data.mapping_start.tag;
    if (tag)
        return config_error(&at, ld->err, "tags (%s) are not supported",
                            show(buf, (const char *)tag, strlen((const char *)tag)));
    return SF_OK;
}

/* YAML's null: an empty or ~/null plain scalar. */
static int is_null(const yaml_event_t *ev)
{
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    return n == 0 || (n == 1 && s[0] == '~') || (n == 4 && (!memcmp(s, "null", 4) ||
                                                            !memcmp(s, "Null", 4) ||
                                                            !memcmp(s, "NULL", 4)));
}

static const char *describe(const yaml_event_t *ev, char *buf, size_t size)
{
    char tmp[SHOW_MAX + 8];
    if (ev->type == YAML_SEQUENCE_START_EVENT)
        return "a list";
    if (ev->type == YAML_MAPPING_START_EVENT)
        return "a mapping";
    if (ev->type == YAML_SCALAR_EVENT) {
        snprintf(buf, size, "'%s'", show(tmp, (const char *)ev->data.scalar.value,
                                         ev->data.scalar.length));
        return buf;
    }
    return "something else";
}

static sf_status parse_mapping(struct loader *ld, const char *prefix, size_t prefix_len);

static sf_status parse_list(struct loader *ld, const struct key *k, unsigned long line)
{
    struct where at = { ld->name, line };
    yaml_event_t ev;
    int n = 0;
    for (;;) {
        sf_status st = next_event(ld, &ev);
        if (st != SF_OK)
            return st;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return set_count(k, &ld->work, n, &at, ld->err);
        }
        struct where item = { ld->name, line_of(&ev) };
        st = check_node(ld, &ev);
        if (st == SF_OK && ev.type != YAML_SCALAR_EVENT) {
            char buf[80];
            st = config_error(&item, ld->err, "%s: expected a number, got %s", k->name,
                              describe(&ev, buf, sizeof buf));
        }
        if (st == SF_OK && n >= k->nmax)
            st = too_many(&item, ld->err, k);
        if (st == SF_OK)
            st = set_element(k, &ld->work, n++, (const char *)ev.data.scalar.value,
                             ev.data.scalar.length, &item, ld->err);
        yaml_event_delete(&ev);
        if (st != SF_OK)
            return st;
    }
}

static sf_status parse_value(struct loader *ld, const struct key *k)
{
    yaml_event_t ev;
    char buf[80];
    sf_status st = next_event(ld, &ev);
    if (st != SF_OK)
        return st;
    struct where at = { ld->name, line_of(&ev) };
    st = check_node(ld, &ev);
    if (st != SF_OK) {
        /* already reported */
    } else if (k->type == KEY_FLOATS || k->type == KEY_DOUBLES) {
        if (ev.type != YAML_SEQUENCE_START_EVENT)
            st = config_error(&at, ld->err, "%s: expected %s, got %s", k->name, expected(k),
                              describe(&ev, buf, sizeof buf));
    } else if (ev.type != YAML_SCALAR_EVENT) {
        st = config_error(&at, ld->err, "%s: expected %s, got %s", k->name, expected(k),
                          describe(&ev, buf, sizeof buf));
    } else if (k->type == KEY_STRING && is_null(&ev)) {
        st = set_scalar(k, &ld->work, "", 0, &at, ld->err);
    } else {
        st = set_scalar(k, &ld->work, (const char *)ev.data.scalar.value,
                        ev.data.scalar.length, &at, ld->err);
    }
    int is_list = ev.type == YAML_SEQUENCE_START_EVENT;
    yaml_event_delete(&ev);
    if (st == SF_OK && is_list)
        st = parse_list(ld, k, at.line);
    return st;
}

static sf_status parse_section(struct loader *ld, const char *name, size_t len)
{
    yaml_event_t ev;
    char buf[80], tmp[SHOW_MAX + 8];
    sf_status st = next_event(ld, &ev);
    if (st != SF_OK)
        return st;
    struct where at = { ld->name, line_of(&ev) };
    st = check_node(ld, &ev);
    int is_mapping = ev.type == YAML_MAPPING_START_EVENT;
    if (st == SF_OK && !is_mapping && !is_null(&ev)) /* "image:" alone is an empty section */
        st = config_error(&at, ld->err, "'%s' is a section: expected a mapping of its keys, got %s",
                          show(tmp, name, len), describe(&ev, buf, sizeof buf));
    yaml_event_delete(&ev);
    if (st == SF_OK && is_mapping)
        st = parse_mapping(ld, name, len);
    return st;
}

/* Entries of a mapping whose keys are relative to prefix ("" at the top). */
static sf_status parse_mapping(struct loader *ld, const char *prefix, size_t prefix_len)
{
    for (;;) {
        yaml_event_t ev;
        char full[256], buf[80], tmp[SHOW_MAX + 8];
        sf_status st = next_event(ld, &ev);
        if (st != SF_OK)
            return st;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return SF_OK;
        }
        struct where at = { ld->name, line_of(&ev) };
        st = check_node(ld, &ev);
        if (st == SF_OK && ev.type != YAML_SCALAR_EVENT)
            st = config_error(&at, ld->err, "expected a key name, got %s",
                              describe(&ev, buf, sizeof buf));
        size_t len = 0;
        int fits = 0;
        if (st == SF_OK) {
            const char *key = (const char *)ev.data.scalar.value;
            size_t key_len = ev.data.scalar.length;
            /* Keys nest: "image: {size: 1}" is "image.size".  A key that
             * does not fit, or holds a NUL, is unknown; only what fits is
             * copied, for the message. */
            len = sf_copy_text(full, sizeof full, prefix, prefix_len);
            if (prefix_len)
                len += sf_copy_text(full + len, sizeof full - len, ".", 1);
            fits = len + key_len < sizeof full && !memchr(key, '\0', key_len);
            len += sf_copy_text(full + len, sizeof full - len, key, key_len);
        }
        yaml_event_delete(&ev);
        if (st != SF_OK)
            return st;

        const struct key *k = fits ? find_key(full, len) : NULL;
        const struct key *section = fits && !k ? find_section(full, len) : NULL;
        if (k) {
            size_t i = (size_t)(k - keys);
            if (ld->key_line[i])
                return config_error(&at, ld->err, "duplicate key '%s' (first set at line %lu)",
                                    k->name, ld->key_line[i]);
            ld->key_line[i] = at.line;
            st = parse_value(ld, k);
        } else if (section) {
            for (size_t i = 0; i < ld->n_sections; i++)
                if (ld->sections[i].len == len &&
                    memcmp(ld->sections[i].key->name, full, len) == 0)
                    return config_error(&at, ld->err,
                                        "duplicate key '%s' (first set at line %lu)",
                                        show(tmp, full, len), ld->sections[i].line);
            /* Each section name is a distinct prefix of some key: the array cannot fill. */
            if (ld->n_sections < N_KEYS) {
                ld->sections[ld->n_sections].key = section;
                ld->sections[ld->n_sections].len = len;
                ld->sections[ld->n_sections].line = at.line;
                ld->n_sections++;
            }
            st = parse_section(ld, section->name, len);
        } else {
            st = unknown_key(&at, ld->err, full, len);
        }
        if (st != SF_OK)
            return st;
    }
}

static sf_status parse_stream(struct loader *ld)
{
    yaml_event_t ev;
    char buf[80];
    sf_status st = next_event(ld, &ev); /* stream start */
    if (st != SF_OK)
        return st;
    yaml_event_delete(&ev);

    if ((st = next_event(ld, &ev)) != SF_OK)
        return st;
    if (ev.type == YAML_STREAM_END_EVENT) { /* empty, or only comments */
        yaml_event_delete(&ev);
        return SF_OK;
    }
    yaml_event_delete(&ev); /* document start */

    if ((st = next_event(ld, &ev)) != SF_OK)
        return st;
    struct where at = { ld->name, line_of(&ev) };
    st = check_node(ld, &ev);
    int is_mapping = ev.type == YAML_MAPPING_START_EVENT;
    if (st == SF_OK && !is_mapping && !is_null(&ev))
        st = config_error(&at, ld->err, "expected a mapping of settings (key: value), got %s",
                          describe(&ev, buf, sizeof buf));
    yaml_event_delete(&ev);
    if (st == SF_OK && is_mapping)
        st = parse_mapping(ld, "", 0);
    if (st != SF_OK)
        return st;

    if ((st = next_event(ld, &ev)) != SF_OK) /* document end */
        return st;
    yaml_event_delete(&ev);
    if ((st = next_event(ld, &ev)) != SF_OK)
        return st;
    at.line = line_of(&ev);
    int more = ev.type != YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
    /* Later documents would silently override earlier ones. */
    if (more)
        return config_error(&at, ld->err, "only one YAML document is allowed");
    return SF_OK;
}

sf_status sf_config_load_buffer(sf_config *cfg, const char *data, size_t size,
                                const char *name, sf_error *err)
{
    if (!name)
        name = "<buffer>";
    if (!cfg || (!data && size))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: no configuration to load", name);
    struct loader *ld = calloc(1, sizeof *ld);
    if (!ld)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    if (!yaml_parser_initialize(&ld->parser)) {
        free(ld);
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    }
    ld->data = data ? data : "";
    ld->size = size;
    ld->name = name;
    ld->work = *cfg;
    ld->err = err;
    /* UTF-8 only: byte offsets then give the line of an encoding error. */
    yaml_parser_set_encoding(&ld->parser, YAML_UTF8_ENCODING);
    yaml_parser_set_input_string(&ld->parser, (const unsigned char *)ld->data, size);
    sf_status st = parse_stream(ld);
    if (st == SF_OK) {
        *cfg = ld->work;
        sf_error_clear(err);
    }
    yaml_parser_delete(&ld->parser);
    free(ld);
    return st;
}

/* Settings files are a few hundred bytes; the cap keeps a mistaken
 * --config /dev/zero from eating memory. */
#define MAX_FILE_SIZE (1u << 20)

sf_status sf_config_load_file(sf_config *cfg, const char *path, sf_error *err)
{
    if (!cfg || !path)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "no configuration file given");
    void *buf;
    size_t len;
    sf_status st = sf_read_file(path, MAX_FILE_SIZE - 1, 0, &buf, &len, err);
    if (st == SF_ERR_TOO_LARGE)
        return sf_error_set(err, st, "%s: too large for a settings file (1 MiB or more)", path);
    if (st != SF_OK)
        return st;
    st = sf_config_load_buffer(cfg, buf, len, path, err);
    free(buf);
    return st;
}

/* ---- sf_config_set ---- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_space((*s)[*len - 1]))
        (*len)--;
}

sf_status sf_config_set(sf_config *cfg, const char *key, const char *value, sf_error *err)
{
    char tmp[SHOW_MAX + 8];
    if (!cfg || !key || !value)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "no key or value given");
    size_t key_len = strlen(key);
    const struct key *k = find_key(key, key_len);
    if (!k) {
        const struct key *inside = find_section(key, key_len);
        if (inside)
            return config_error(NULL, err, "'%s' is a section, not a key; name one of its keys, "
                                           "as in '%s'", show(tmp, key, key_len), inside->name);
        return unknown_key(NULL, err, key, key_len);
    }

    sf_config work = *cfg;
    const char *s = value;
    size_t len = strlen(value);
    sf_status st;
    if (k->type == KEY_STRING) {
        st = set_scalar(k, &work, s, len, NULL, err); /* taken literally, spaces and all */
    } else if (k->type == KEY_FLOATS || k->type == KEY_DOUBLES) {
        trim(&s, &len);
        if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
            s++;
            len -= 2;
            trim(&s, &len);
        }
        int n = 0;
        st = SF_OK;
        /* Every comma separates two items, so "1,,2" and "1," fail on the
         * empty one; only a wholly empty value is an empty list. */
        while (st == SF_OK && len > 0) {
            const char *comma = memchr(s, ',', len);
            const char *item = s;
            size_t item_len = comma ? (size_t)(comma - s) : len;
            trim(&item, &item_len);
            if (n >= k->nmax)
                st = too_many(NULL, err, k);
            else
                st = set_element(k, &work, n++, item, item_len, NULL, err);
            if (!comma)
                break;
            len -= (size_t)(comma + 1 - s);
            s = comma + 1;
            if (len == 0 && st == SF_OK) /* a trailing comma */
                st = config_error(NULL, err, "%s: expected a number after the last comma",
                                  k->name);
        }
        if (st == SF_OK)
            st = set_count(k, &work, n, NULL, err);
    } else {
        trim(&s, &len);
        st = set_scalar(k, &work, s, len, NULL, err);
    }
    if (st == SF_OK) {
        *cfg = work;
        sf_error_clear(err);
    }
    return st;
}

/* ---- sf_config_write ---- */

/* The shortest decimal text that reads back, through the loader's own
 * conversion, to exactly v; "2.0" rather than "2" so it reads as a number. */
static void format_number(char *out, size_t size, double v, int as_float)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, v);
        double back = strtod(out, NULL);
        if (as_float ? (float)back == (float)v : back == v)
            break;
    }
    if (isfinite(v) && !strpbrk(out, ".eE"))
        strncat(out, ".0", size - strlen(out) - 1);
}

/* Length of the valid UTF-8 sequence at s holding a code point YAML may
 * carry (no surrogates, at most U+10FFFF), or 0. */
static size_t utf8_decode(const unsigned char *s, size_t len, unsigned long *cp)
{
    size_t n;
    unsigned long c, min;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        n = 2, c = s[0] & 0x1Fu, min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3, c = s[0] & 0x0Fu, min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4, c = s[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

static int is_utf8(const char *s)
{
    size_t len = strlen(s);
    unsigned long cp;
    for (size_t i = 0, n; i < len; i += n)
        if ((n = utf8_decode((const unsigned char *)s + i, len - i, &cp)) == 0)
            return 0;
    return 1;
}

/* A YAML double-quoted scalar.  Everything the YAML reader refuses or
 * treats as a line break is escaped by code point. */
static void write_string(FILE *fp, const char *s)
{
    size_t len = strlen(s);
    unsigned long cp;
    fputc('"', fp);
    for (size_t i = 0, n; i < len; i += n) {
        n = utf8_decode((const unsigned char *)s + i, len - i, &cp);
        if (n == 0) { /* not reached: the caller checked is_utf8 */
            n = 1;
            cp = (unsigned char)s[i];
        }
        if (cp == '"' || cp == '\\')
            fprintf(fp, "\\%c", (int)cp);
        else if (cp == '\t')
            fputs("\\t", fp);
        else if (cp == '\n')
            fputs("\\n", fp);
        else if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0))
            fprintf(fp, "\\x%02lX", cp);
        else if (cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF)
            fprintf(fp, "\\u%04lX", cp);
        else
            fwrite(s + i, 1, n, fp);
    }
    fputc('"', fp);
}

/* The YAML text of a number, boolean or list value. */
static void format_value(const struct key *k, const sf_config *cfg, char *out, size_t size)
{
    const void *p = cfield(cfg, k);
    char num[40];
    switch (k->type) {
    case KEY_INT:
        snprintf(out, size, "%d", *(const int *)p);
        break;
    case KEY_U64:
        snprintf(out, size, "%" PRIu64, *(const uint64_t *)p);
        break;
    case KEY_DOUBLE:
        format_number(out, size, *(const double *)p, 0);
        break;
    case KEY_BOOL:
        snprintf(out, size, "%s", *(const int *)p ? "true" : "false");
        break;
    case KEY_FLOATS:
    case KEY_DOUBLES: {
        int n = k->type == KEY_FLOATS ? k->nmax : *(const int *)(const void *)((const char *)cfg + k->count_offset);
        size_t len = (size_t)snprintf(out, size, "[");
        for (int j = 0; j < n && len < size; j++) {
            if (k->type == KEY_FLOATS)
                format_number(num, sizeof num, ((const float *)p)[j], 1);
            else
                format_number(num, sizeof num, ((const double *)p)[j], 0);
            len += (size_t)snprintf(out + len, size - len, "%s%s", j ? ", " : "", num);
        }
        if (len < size)
            snprintf(out + len, size - len, "]");
        break;
    }
    case KEY_STRING:
        out[0] = '\0';
        break;
    }
}

/* Whether cfg holds only values the loader accepts, so that what is written
 * reads back the same; the message names the first bad key. */
static sf_status check_writable(const sf_config *cfg, sf_error *err)
{
    char text[1024];
    sf_config scratch;
    sf_error why;
    sf_config_init(&scratch);
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        const void *p = cfield(cfg, k);
        if (k->type == KEY_DOUBLES) {
            int n = *(const int *)(const void *)((const char *)cfg + k->count_offset);
            if (n < k->nmin || n > k->nmax)
                return sf_error_set(err, SF_ERR_INVALID_ARGUMENT,
                                    "%s: %d values is out of range (%d..%d)", k->name, n,
                                    k->nmin, k->nmax);
        } else if (k->type == KEY_BOOL) {
            if (*(const int *)p != 0 && *(const int *)p != 1)
                return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: %d is not 0 or 1",
                                    k->name, *(const int *)p);
        } else if (k->type == KEY_STRING) {
            if (!memchr(p, '\0', (size_t)k->nmax))
                return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "%s: the value is not terminated",
                                    k->name);
            if (!is_utf8(p))
                return sf_error_set(err, SF_ERR_UNSUPPORTED,
                                    "%s: the value is not UTF-8, which YAML cannot hold", k->name);
            continue;
        }
        format_value(k, cfg, text, sizeof text);
        sf_status st = sf_config_set(&scratch, k->name, text, &why);
        if (st != SF_OK)
            return sf_error_set(err, st == SF_ERR_CONFIG ? SF_ERR_INVALID_ARGUMENT : st, "%s",
                                why.message);
    }
    return SF_OK;
}

sf_status sf_config_write(const sf_config *cfg, FILE *fp, sf_error *err)
{
    if (!cfg || !fp)
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "no configuration or file to write");
    /* Check first so a failure leaves no half-written file. */
    sf_status st = check_writable(cfg, err);
    if (st != SF_OK)
        return st;

    errno = 0;
    fputs("# sf settings; see sf-config(5).  Keys not given keep their defaults.\n", fp);
    size_t section_len = 0;
    const char *section = "";
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        const char *dot = strchr(k->name, '.');
        size_t len = dot ? (size_t)(dot - k->name) : 0;
        if (len != section_len || memcmp(section, k->name, len) != 0) {
            fprintf(fp, "\n%.*s:\n", (int)len, k->name);
            section = k->name;
            section_len = len;
        }
        const char *indent = len ? "  " : "";
        char range[96] = "", text[1024];
        if (k->type == KEY_INT || k->type == KEY_DOUBLE ||
            ((k->type == KEY_FLOATS || k->type == KEY_DOUBLES) && !isinf(k->dmin)))
            range_text(k, range, sizeof range);
        fprintf(fp, "%s# %s%s%s%s\n", indent, k->meaning, *range ? " (" : "", range,
                *range ? ")" : "");
        fprintf(fp, "%s%s: ", indent, k->name + (len ? len + 1 : 0));
        if (k->type == KEY_STRING) {
            write_string(fp, cfield(cfg, k));
        } else {
            format_value(k, cfg, text, sizeof text);
            fputs(text, fp);
        }
        fputc('\n', fp);
    }
    if (fflush(fp) != 0 || ferror(fp)) {
        int e = errno ? errno : EIO;
        return sf_error_set(err, e == EPIPE ? SF_ERR_BROKEN_PIPE : SF_ERR_IO,
                            "cannot write the settings: %s", strerror(e));
    }
    return SF_OK;
}
