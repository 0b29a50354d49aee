/* sf-cat: read feature streams, check them, and write them back out as a
 * stream, as text, as a key list or as .npy files.  Reading and checking is
 * libsf's; this file chooses records and prints them. */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

enum mode { MODE_STREAM, MODE_TEXT, MODE_CHECK, MODE_LIST, MODE_NPY };

enum {
    OPT_KEY_FILE = SF_OPT_FIRST_PROGRAM,
    OPT_MATCH,
    OPT_KIND,
    OPT_INDEX,
    OPT_NPY,
    OPT_LIST,
    OPT_CHECK,
    OPT_PARTIAL,
};

typedef struct filter {
    char **keys; /* sorted, for bsearch */
    size_t n_keys, keys_cap;
    const char **globs;
    size_t n_globs;
    uint32_t kinds;  /* bit k set: keep kind k; 0: keep every kind */
    int has_index;
    uint32_t index;
} filter;

typedef struct options {
    enum mode mode;
    const char *npy_dir;
    filter f;
} options;

static const char options_help[] =
    "  -t, --text           print one line per record instead of the stream\n"
    "      --check          only check the streams; print nothing when they are valid\n"
    "      --list           print the key of each image, one per line\n"
    "      --npy DIR        write each record as DIR/KEY.KIND.INDEX.npy\n"
    "  -k, --key KEY        keep the images with this key (repeatable)\n"
    "      --key-file FILE  keep the images whose keys FILE lists, one per line\n"
    "      --match GLOB     keep the images whose key matches GLOB (repeatable)\n"
    "      --kind NAME      keep the records of this kind (repeatable)\n"
    "      --index N        keep the records with this index\n"
    "      --partial        accept a stream without its end (a piece of one)\n";

static const struct option longopts[] = {
    { "text", no_argument, NULL, 't' },
    { "check", no_argument, NULL, OPT_CHECK },
    { "list", no_argument, NULL, OPT_LIST },
    { "npy", required_argument, NULL, OPT_NPY },
    { "key", required_argument, NULL, 'k' },
    { "key-file", required_argument, NULL, OPT_KEY_FILE },
    { "match", required_argument, NULL, OPT_MATCH },
    { "kind", required_argument, NULL, OPT_KIND },
    { "index", required_argument, NULL, OPT_INDEX },
    { "partial", no_argument, NULL, OPT_PARTIAL },
    { NULL, 0, NULL, 0 },
};

/* ---- Filters ---- */

static void add_key(const sf_cli *cli, filter *f, const char *key, size_t len)
{
    if (len == 0)
        return;
    if (f->n_keys == f->keys_cap) {
        size_t cap = f->keys_cap ? 2 * f->keys_cap : 16;
        char **keys = realloc(f->keys, cap * sizeof *keys);
        if (!keys)
            sf_cli_out_of_memory(cli);
        f->keys = keys;
        f->keys_cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        sf_cli_out_of_memory(cli);
    memcpy(copy, key, len);
    copy[len] = '\0';
    f->keys[f->n_keys++] = copy;
}

static void add_key_file(const sf_cli *cli, filter *f, const char *path)
{
    const char *why;
    size_t n;
    char **lines = sf_cli_read_keys(cli, path, &n, &why);
    if (!lines)
        sf_cli_usage_error(cli, "%s: %s", path, why);
    for (size_t i = 0; i < n; i++)
        add_key(cli, f, lines[i], strlen(lines[i]));
    sf_cli_free_lines(lines, n);
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int keep_image(const filter *f, const char *key)
{
    if (f->n_keys == 0 && f->n_globs == 0)
        return 1;
    if (f->n_keys && bsearch(&key, f->keys, f->n_keys, sizeof *f->keys, compare_keys))
        return 1;
    for (size_t i = 0; i < f->n_globs; i++)
        if (fnmatch(f->globs[i], key, 0) == 0)
            return 1;
    return 0;
}

/* The image's key already passed keep_image.  Provenance stays with
 * whatever else of the image is kept (see want_provenance). */
static int keep_record(const filter *f, const sf_record *rec)
{
    unsigned kind = rec->kind & ~SF_KIND_OPTIONAL;
    if (f->kinds && (kind >= 32 || !(f->kinds & (UINT32_C(1) << kind))))
        return 0;
    return !f->has_index || rec->index == f->index;
}

static void add_kind(const sf_cli *cli, filter *f, const char *name)
{
    int kind = sf_kind_from_name(name);
    if (kind <= 0 || kind >= 32)
        sf_cli_usage_error(cli, "--kind: unknown record kind '%s' (known: image, "
                                "feature_map, superfeatures, attention, strength, "
                                "local_desc, local_strength, local_scale, local_index, "
                                "global, pixels, source)", name);
    f->kinds |= UINT32_C(1) << kind;
}

/* ---- Text output ---- */

/* Keys are arbitrary bytes but for NUL; escape what would break a
 * tab-separated line. */
static void print_key(const char *key, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '\\')
            fputs("\\\\", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

static double half_to_double(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp(mant, -24);
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexp(mant + 1024, exp - 25);
    return h & 0x8000 ? -v : v;
}

static double element(const sf_record *rec, uint64_t i)
{
    const unsigned char *p = rec->data;
    switch (rec->dtype) {
    case SF_DTYPE_U8: return p[i];
    case SF_DTYPE_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case SF_DTYPE_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case SF_DTYPE_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
    case SF_DTYPE_F16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return half_to_double(v); }
    case SF_DTYPE_F32: { float v; memcpy(&v, p + 4 * i, 4); return v; }
    case SF_DTYPE_F64: { double v; memcpy(&v, p + 8 * i, 8); return v; }
    }
    return NAN;
}

static void print_stats(const sf_record *rec)
{
    uint64_t n = rec->data_size / sf_dtype_size(rec->dtype), counted = 0;
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        double v = element(rec, i);
        sum += v;
        if (isnan(v))
            continue;
        counted++;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    if (n == 0)
        fputs("min=- max=- mean=-", stdout);
    else if (counted == 0)
        fputs("min=nan max=nan mean=nan", stdout);
    else
        printf("min=%g max=%g mean=%g", lo, hi, sum / (double)n);
}

static void print_provenance(const sf_record *rec)
{
    const int64_t *v = rec->data;
    printf("stage=%s decode=%016llx extract_model=%016llx extract_settings=%016llx "
           "lit_model=%016llx lit_settings=%016llx", sf_stage_name((uint64_t)v[0]),
           (unsigned long long)v[1], (unsigned long long)v[2], (unsigned long long)v[3],
           (unsigned long long)v[4], (unsigned long long)v[5]);
}

/* last: the record ends its image as printed. */
static void print_record(const sf_record *rec, int last)
{
    print_key(rec->key, rec->key_len);
    printf("\t%s\tindex=%lu\tscale=%g\t%s\t", sf_kind_name(rec->kind),
           (unsigned long)rec->index, rec->scale, sf_dtype_name(rec->dtype));
    if (rec->ndim == 0)
        fputs("scalar", stdout);
    for (unsigned i = 0; i < rec->ndim; i++)
        printf(i ? "x%llu" : "%llu", (unsigned long long)rec->shape[i]);
    printf("\t%llu bytes\t", (unsigned long long)rec->data_size);
    if (rec->kind == SF_KIND_PROVENANCE)
        print_provenance(rec);
    else
        print_stats(rec);
    fputs(last ? "\tlast\n" : "\t-\n", stdout);
}

/* ---- .npy export ---- */

/* Key as one safe file name: letters, digits, '-', '_', '.' and '+' are
 * kept, anything else (including '/' and non-ASCII bytes) becomes '_', a
 * leading '.' too, and the name is cut at 200 bytes. */
static void safe_name(char *out, const char *key, size_t len)
{
    if (len > 200)
        len = 200;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                 || c == '-' || c == '_' || c == '+' || (c == '.' && i > 0);
        out[i] = ok ? (char)c : '_';
    }
    out[len] = '\0';
}

static int export_npy(const sf_cli *cli, const char *dir, const sf_record *rec)
{
    char name[256], path[4096];
    safe_name(name, rec->key, rec->key_len);
    snprintf(path, sizeof path, "%s/%s.%s.%lu.npy", dir, name, sf_kind_name(rec->kind),
             (unsigned long)rec->index);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        sf_cli_error(cli, "%s: %s", path, strerror(errno));
        return 0;
    }
    sf_error err;
    sf_status st = sf_npy_write(fp, rec, &err);
    errno = 0;
    int closed = fclose(fp) == 0;
    if (st != SF_OK) {
        sf_cli_error(cli, "%s: %s", path, err.message);
        return 0;
    }
    if (!closed) {
        sf_cli_error(cli, "%s: %s", path, strerror(errno ? errno : EIO));
        return 0;
    }
    sf_cli_info(cli, "wrote %s", path);
    return 1;
}

static void make_dir(const sf_cli *cli, const char *dir)
{
    struct stat st;
    if (mkdir(dir, 0777) == 0 || (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return;
    sf_cli_error(cli, "%s: cannot create directory: %s", dir,
                 errno == EEXIST ? "Not a directory" : strerror(errno));
    exit(SF_EXIT_FATAL);
}

/* ---- Reading ---- */

typedef struct cat {
    sf_cli *cli;
    const options *o;
    sf_cli_batch out;
} cat;

/* One image: its kept records, in the mode's form. */
static int cat_image(void *vctx, const sf_stream_image *img, const char *name)
{
    cat *c = vctx;
    const options *o = c->o;
    (void)name;
    if (!keep_image(&o->f, img->key))
        return SF_EXIT_OK;
    size_t kept = 0;
    for (size_t i = 0; i < img->count; i++)
        kept += img->recs[i].kind != SF_KIND_PROVENANCE && keep_record(&o->f, &img->recs[i]);
    /* Provenance describes the image: it goes first wherever a part of it
     * goes, unless --kind leaves it out. */
    int show_prov = sf_stream_image_find(img, SF_KIND_PROVENANCE) &&
                    (!o->f.kinds || (o->f.kinds & (UINT32_C(1) << SF_KIND_PROVENANCE)));
    if (!kept && !show_prov)
        return SF_EXIT_OK;
    if (o->mode == MODE_LIST) {
        print_key(img->key, img->key_len);
        putchar('\n');
        return SF_EXIT_OK;
    }
    int status = SF_EXIT_OK;
    size_t printed = 0, total = kept + (size_t)show_prov;
    for (size_t i = 0; i < img->count; i++) {
        const sf_record *rec = &img->recs[i];
        if (rec->kind == SF_KIND_PROVENANCE) {
            if (!show_prov)
                continue;
        } else if (!keep_record(&o->f, rec)) {
            continue;
        }
        switch (o->mode) {
        case MODE_STREAM: sf_cli_batch_add(c->cli, &c->out, rec); break;
        case MODE_TEXT: print_record(rec, ++printed == total); break;
        case MODE_NPY:
            if (!export_npy(c->cli, o->npy_dir, rec))
                status = SF_EXIT_FATAL;
            break;
        case MODE_LIST:
        case MODE_CHECK: break;
        }
    }
    if (o->mode == MODE_STREAM)
        sf_cli_batch_flush(c->cli, &c->out);
    return status;
}

static void set_mode(const sf_cli *cli, options *o, enum mode mode)
{
    if (o->mode != MODE_STREAM && o->mode != mode)
        sf_cli_usage_error(cli, "--text, --check, --list and --npy exclude each other");
    o->mode = mode;
}

int main(int argc, char **argv)
{
    sf_cli cli;
    sf_cli_init(&cli, "sf-cat", argc, argv);
    cli.synopsis = "[OPTION]... [FILE]...";
    cli.summary = "Check feature streams and print, filter, concatenate or export them.\n"
                  "With no FILE, or when FILE is -, read standard input.";
    cli.options_help = options_help;

    options o = { .mode = MODE_STREAM };
    int c;
    while ((c = sf_cli_getopt(&cli, argc, argv, "tk:", longopts)) != -1) {
        switch (c) {
        case 't': set_mode(&cli, &o, MODE_TEXT); break;
        case OPT_CHECK: set_mode(&cli, &o, MODE_CHECK); break;
        case OPT_LIST: set_mode(&cli, &o, MODE_LIST); break;
        case OPT_NPY:
            set_mode(&cli, &o, MODE_NPY);
            if (!*optarg)
                sf_cli_usage_error(&cli, "--npy needs a directory");
            o.npy_dir = optarg;
            break;
        case 'k':
            if (!*optarg)
                sf_cli_usage_error(&cli, "--key: keys are never empty");
            add_key(&cli, &o.f, optarg, strlen(optarg));
            break;
        case OPT_KEY_FILE: add_key_file(&cli, &o.f, optarg); break;
        case OPT_MATCH: {
            const char **globs = realloc(o.f.globs, (o.f.n_globs + 1) * sizeof *globs);
            if (!globs)
                sf_cli_out_of_memory(&cli);
            o.f.globs = globs;
            o.f.globs[o.f.n_globs++] = optarg;
            break;
        }
        case OPT_KIND: add_kind(&cli, &o.f, optarg); break;
        case OPT_PARTIAL: cli.partial_input = 1; break;
        case OPT_INDEX:
            o.f.index = (uint32_t)sf_cli_parse_int(&cli, "--index", optarg, 0, UINT32_MAX);
            o.f.has_index = 1;
            break;
        default:
            sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    if (o.f.n_keys)
        qsort(o.f.keys, o.f.n_keys, sizeof *o.f.keys, compare_keys);
    if (o.mode == MODE_STREAM)
        sf_cli_stream_output(&cli);
    if (o.mode == MODE_NPY)
        make_dir(&cli, o.npy_dir);

    static char *stdin_only[] = { "sf-cat", "-" };
    cat run = { &cli, &o, { 0 } };
    int status = optind < argc ? sf_cli_each_image_of(&cli, argc, argv, optind, cat_image, &run)
                               : sf_cli_each_image_of(&cli, 2, stdin_only, 1, cat_image, &run);
    sf_cli_batch_free(&run.out);
    for (size_t i = 0; i < o.f.n_keys; i++)
        free(o.f.keys[i]);
    free(o.f.keys);
    free(o.f.globs);
    return sf_cli_finish(&cli, status);
}
