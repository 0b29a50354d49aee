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

/* A copy of the last record kept but not yet written: whether it ends its
 * image is known only when the next record, or the end, arrives. */
typedef struct held {
    int valid;
    uint64_t image; /* image number within the file, from the reader */
    sf_record rec;
    char *key;
    size_t key_cap;
    void *data;
    size_t data_cap;
} held;

static const char options_help[] =
    "  -t, --text           print one line per record instead of the stream\n"
    "      --check          only check the streams; print nothing when they are valid\n"
    "      --list           print the key of each image, one per line\n"
    "      --npy DIR        write each record as DIR/KEY.KIND.INDEX.npy\n"
    "  -k, --key KEY        keep the images with this key (repeatable)\n"
    "      --key-file FILE  keep the images whose keys FILE lists, one per line\n"
    "      --match GLOB     keep the images whose key matches GLOB (repeatable)\n"
    "      --kind NAME      keep the records of this kind (repeatable)\n"
    "      --index N        keep the records with this index\n";

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
    { NULL, 0, NULL, 0 },
};

static _Noreturn void out_of_memory(const sf_cli *cli)
{
    sf_cli_error(cli, "out of memory");
    exit(SF_EXIT_FATAL);
}

/* ---- Filters ---- */

static void add_key(const sf_cli *cli, filter *f, const char *key, size_t len)
{
    if (len == 0)
        return;
    if (f->n_keys == f->keys_cap) {
        size_t cap = f->keys_cap ? 2 * f->keys_cap : 16;
        char **keys = realloc(f->keys, cap * sizeof *keys);
        if (!keys)
            out_of_memory(cli);
        f->keys = keys;
        f->keys_cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        out_of_memory(cli);
    memcpy(copy, key, len);
    copy[len] = '\0';
    f->keys[f->n_keys++] = copy;
}

static void add_key_file(const sf_cli *cli, filter *f, const char *path)
{
    const char *why;
    size_t n;
    char **lines = sf_cli_read_lines(cli, path, &n, &why);
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

static int keep_record(const filter *f, const sf_record *rec)
{
    unsigned kind = rec->kind & ~SF_KIND_OPTIONAL;
    if (f->kinds && (kind >= 32 || !(f->kinds & (UINT32_C(1) << kind))))
        return 0;
    if (f->has_index && rec->index != f->index)
        return 0;
    return keep_image(f, rec->key);
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

static void print_record(const sf_record *rec)
{
    print_key(rec->key, rec->key_len);
    printf("\t%s\tindex=%lu\tscale=%g\t%s\t", sf_kind_name(rec->kind),
           (unsigned long)rec->index, rec->scale, sf_dtype_name(rec->dtype));
    if (rec->ndim == 0)
        fputs("scalar", stdout);
    for (unsigned i = 0; i < rec->ndim; i++)
        printf(i ? "x%llu" : "%llu", (unsigned long long)rec->shape[i]);
    printf("\t%llu bytes\t", (unsigned long long)rec->data_size);
    print_stats(rec);
    fputs(rec->flags & SF_RECORD_LAST ? "\tlast\n" : "\t-\n", stdout);
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

/* ---- Stream output ---- */

static void hold(const sf_cli *cli, held *h, const sf_record *rec, uint64_t image)
{
    if (rec->key_len + 1 > h->key_cap) {
        char *key = realloc(h->key, rec->key_len + 1);
        if (!key)
            out_of_memory(cli);
        h->key = key;
        h->key_cap = rec->key_len + 1;
    }
    if (rec->data_size > h->data_cap) {
        void *data = realloc(h->data, (size_t)rec->data_size);
        if (!data)
            out_of_memory(cli);
        h->data = data;
        h->data_cap = (size_t)rec->data_size;
    }
    memcpy(h->key, rec->key, rec->key_len + 1);
    if (rec->data_size)
        memcpy(h->data, rec->data, (size_t)rec->data_size);
    h->rec = *rec;
    h->rec.key = h->key;
    h->rec.data = rec->data_size ? h->data : rec->data;
    h->image = image;
    h->valid = 1;
}

/* Write the held record, marked as the last of its image when it is. */
static void release(const sf_cli *cli, held *h, int last)
{
    if (!h->valid)
        return;
    if (last)
        h->rec.flags |= SF_RECORD_LAST;
    sf_cli_write_record(cli, &h->rec);
    h->valid = 0;
}

/* ---- Reading ---- */

/* Process one input; returns its exit status. */
static int cat_file(const sf_cli *cli, const options *o, const char *path, held *h)
{
    int is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "<stdin>" : path;
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    if (!fp) {
        sf_cli_error(cli, "%s: %s", name, strerror(errno));
        return SF_EXIT_FAILURE;
    }
    sf_error err;
    sf_stream_reader *reader;
    if (sf_stream_reader_create(&reader, fp, name, &err) != SF_OK)
        out_of_memory(cli);

    int status = SF_EXIT_OK;
    uint64_t listed = UINT64_MAX; /* image whose key --list printed last */
    for (;;) {
        const sf_record *rec;
        if (sf_stream_read_record(reader, &rec, &err) != SF_OK) {
            /* Close what was copied of the broken image so that the output
             * stays a valid stream; the exit status tells of the loss. */
            release(cli, h, 1);
            sf_cli_error(cli, "%s", err.message);
            status = SF_EXIT_FATAL;
            break;
        }
        if (!rec) {
            release(cli, h, 1); /* a clean end never leaves an image open */
            break;
        }
        uint64_t image = sf_stream_reader_images(reader) - (rec->flags & SF_RECORD_LAST ? 1 : 0);
        if (h->valid && h->image != image)
            release(cli, h, 1);
        if (!keep_record(&o->f, rec))
            continue;
        switch (o->mode) {
        case MODE_STREAM:
            release(cli, h, 0);
            if (rec->flags & SF_RECORD_LAST)
                sf_cli_write_record(cli, rec);
            else
                hold(cli, h, rec, image);
            break;
        case MODE_TEXT:
            print_record(rec);
            break;
        case MODE_LIST:
            if (image != listed) {
                print_key(rec->key, rec->key_len);
                putchar('\n');
                listed = image;
            }
            break;
        case MODE_NPY:
            if (!export_npy(cli, o->npy_dir, rec))
                status = SF_EXIT_FATAL;
            break;
        case MODE_CHECK:
            break;
        }
        /* A reader that went away stops the work; sf_cli_finish reports it. */
        if (status != SF_EXIT_OK || ferror(stdout))
            break;
    }
    sf_cli_info(cli, "%s: %llu records, %llu images, %llu bytes", name,
                (unsigned long long)sf_stream_reader_records(reader),
                (unsigned long long)sf_stream_reader_images(reader),
                (unsigned long long)sf_stream_reader_offset(reader));
    sf_stream_reader_free(reader);
    if (!is_stdin)
        fclose(fp);
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
                out_of_memory(&cli);
            o.f.globs = globs;
            o.f.globs[o.f.n_globs++] = optarg;
            break;
        }
        case OPT_KIND: add_kind(&cli, &o.f, optarg); break;
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
        sf_cli_refuse_terminal_output(&cli, stdout);
    if (o.mode == MODE_NPY)
        make_dir(&cli, o.npy_dir);

    static char *const stdin_only[] = { "-" };
    char *const *files = optind < argc ? argv + optind : stdin_only;
    int n_files = optind < argc ? argc - optind : 1;
    int status = SF_EXIT_OK;
    held h = { 0 };
    for (int i = 0; i < n_files; i++) {
        int st = cat_file(&cli, &o, files[i], &h);
        status = st > status ? st : status;
        if (ferror(stdout))
            break;
    }
    free(h.key);
    free(h.data);
    for (size_t i = 0; i < o.f.n_keys; i++)
        free(o.f.keys[i]);
    free(o.f.keys);
    free(o.f.globs);
    return sf_cli_finish(&cli, status);
}
