/* sf-cat: read feature streams, check them, and write them back out as a
 * stream, as text, as a key list or as .npy files (one per record, or one
 * per kind with a manifest); or read such stacked arrays back into a
 * stream.  Reading, checking and choosing records (sf_record_filter) and
 * the stacked layout are libsf's; this file prints them. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

enum mode { MODE_STREAM, MODE_TEXT, MODE_CHECK, MODE_LIST, MODE_NPY, MODE_STACK, MODE_FROM_NPY };

enum {
    OPT_KEY_FILE = SF_OPT_FIRST_PROGRAM,
    OPT_MATCH,
    OPT_KIND,
    OPT_INDEX,
    OPT_NPY,
    OPT_LIST,
    OPT_CHECK,
    OPT_PARTIAL,
    OPT_NPY_STACK,
    OPT_FROM_NPY,
    OPT_FEATURES,
};

typedef struct options {
    enum mode mode;
    const char *npy_dir;
    const char *features; /* --features: provenance of imported images without one */
    sf_record_filter *f;
} options;

static const char options_help[] =
    "  -t, --text           print one line per record instead of the stream\n"
    "      --check          only check the streams; print nothing when they are valid\n"
    "      --list           print the key of each image, one per line\n"
    "      --npy DIR        write each record as DIR/KEY.KIND.INDEX.npy\n"
    "      --npy-stack DIR  write one DIR/KIND.npy per kind, every image's records\n"
    "                       stacked, and DIR/manifest.tsv saying which rows are whose\n"
    "      --from-npy       the operands are such directories: write their images\n"
    "                       as a stream\n"
    "      --features NAME  with --from-npy: images without a provenance record get\n"
    "                       one naming features made outside sf as NAME\n"
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
    { "npy-stack", required_argument, NULL, OPT_NPY_STACK },
    { "from-npy", no_argument, NULL, OPT_FROM_NPY },
    { "features", required_argument, NULL, OPT_FEATURES },
    { "key", required_argument, NULL, 'k' },
    { "key-file", required_argument, NULL, OPT_KEY_FILE },
    { "match", required_argument, NULL, OPT_MATCH },
    { "kind", required_argument, NULL, OPT_KIND },
    { "index", required_argument, NULL, OPT_INDEX },
    { "partial", no_argument, NULL, OPT_PARTIAL },
    { NULL, 0, NULL, 0 },
};

/* ---- Filters ---- */

/* The outcome of a change to the filter that can only run out of memory. */
static void filter_built(const sf_cli *cli, sf_status st)
{
    if (st != SF_OK)
        sf_cli_out_of_memory(cli);
}

static void add_key_file(const sf_cli *cli, sf_record_filter *f, const char *path)
{
    const char *why;
    size_t n;
    char **lines = sf_cli_read_keys(cli, path, &n, &why);
    if (!lines)
        sf_cli_usage_error(cli, "%s: %s", path, why);
    for (size_t i = 0; i < n; i++)
        if (*lines[i])
            filter_built(cli, sf_record_filter_add_key(f, lines[i], NULL));
    sf_cli_free_lines(lines, n);
}

static void add_kind(const sf_cli *cli, sf_record_filter *f, const char *name)
{
    if (sf_record_filter_add_kind(f, sf_kind_from_name(name), NULL) != SF_OK)
        sf_cli_usage_error(cli, "--kind: unknown record kind '%s' (known: image, "
                                "feature_map, superfeatures, attention, strength, "
                                "local_desc, local_strength, local_scale, local_index, "
                                "global, pixels, source)", name);
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

static void print_stats(const sf_record *rec)
{
    sf_record_stats st;
    sf_record_summarize(rec, &st);
    if (st.count == 0)
        fputs("min=- max=- mean=-", stdout);
    else if (st.n_nan == st.count)
        fputs("min=nan max=nan mean=nan", stdout);
    else
        printf("min=%g max=%g mean=%g", st.min, st.max, st.mean);
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

static int export_npy(const sf_cli *cli, const char *dir, const sf_record *rec)
{
    char name[SF_NPY_NAME_SIZE], path[4096];
    sf_npy_file_name(rec, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sf_error err;
    if (sf_npy_save(path, rec, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
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
    sf_npy_stack_writer *stack;
} cat;

/* --npy-stack: the kept records of one image into the arrays. */
static int stack_image(cat *c, const sf_stream_image *img, const char *name)
{
    sf_error err;
    sf_status st = sf_npy_stack_writer_add_image(c->stack, img, c->o->f, &err);
    if (st == SF_OK)
        return SF_EXIT_OK;
    if (st == SF_ERR_INVALID_DATA) {
        sf_cli_error(c->cli, "%s: %s", name, err.message);
        return SF_EXIT_FAILURE;
    }
    sf_cli_error(c->cli, "%s", err.message);
    return SF_EXIT_FATAL;
}

/* One image: its kept records, in the mode's form. */
static int cat_image(void *vctx, const sf_stream_image *img, const char *name)
{
    cat *c = vctx;
    const options *o = c->o;
    (void)name;
    size_t total = sf_record_filter_count(o->f, img);
    if (!total)
        return SF_EXIT_OK;
    if (o->mode == MODE_LIST) {
        print_key(img->key, img->key_len);
        putchar('\n');
        return SF_EXIT_OK;
    }
    if (o->mode == MODE_STACK)
        return stack_image(c, img, name);
    int status = SF_EXIT_OK;
    size_t printed = 0;
    for (size_t i = 0; i < img->count; i++) {
        const sf_record *rec = &img->recs[i];
        if (!sf_record_filter_keeps_record(o->f, rec))
            continue;
        switch (o->mode) {
        case MODE_STREAM: sf_cli_batch_add(c->cli, &c->out, rec); break;
        case MODE_TEXT: print_record(rec, ++printed == total); break;
        case MODE_NPY:
            if (!export_npy(c->cli, o->npy_dir, rec))
                status = SF_EXIT_FATAL;
            break;
        case MODE_LIST:
        case MODE_CHECK:
        case MODE_STACK:
        case MODE_FROM_NPY: break;
        }
    }
    if (o->mode == MODE_STREAM)
        sf_cli_batch_flush(c->cli, &c->out);
    return status;
}

/* --npy-stack: rename the arrays into place, unless an input could not
 * be read to its end (then the directory is left as it was). */
static int finish_stack(cat *c, int status)
{
    sf_error err;
    if (status == SF_EXIT_FATAL)
        sf_cli_error(c->cli, "%s: nothing exported (see above)", c->o->npy_dir);
    else if (sf_npy_stack_writer_commit(c->stack, &err) != SF_OK) {
        sf_cli_error(c->cli, "%s", err.message);
        status = SF_EXIT_FATAL;
    } else {
        sf_cli_info(c->cli, "%s: %llu images", c->o->npy_dir,
                    (unsigned long long)sf_npy_stack_writer_images(c->stack));
    }
    sf_npy_stack_writer_free(c->stack);
    c->stack = NULL;
    return status;
}

/* --from-npy: one directory's images into the stream; its exit status. */
static int import_dir(cat *c, const char *dir)
{
    const options *o = c->o;
    sf_error err;
    sf_npy_stack_reader *r;
    sf_status st = sf_npy_stack_reader_open(dir, &r, &err);
    if (st != SF_OK) {
        sf_cli_error(c->cli, "%s", err.message);
        return st == SF_ERR_NOMEM ? SF_EXIT_FATAL : SF_EXIT_FAILURE;
    }
    int status = SF_EXIT_OK;
    sf_record *recs = NULL;
    size_t cap = 0;
    for (;;) {
        const sf_stream_image *img;
        st = sf_npy_stack_reader_next(r, &img, &err);
        if (st == SF_ERR_INVALID_DATA) {
            sf_cli_error(c->cli, "%s", err.message);
            status = SF_EXIT_FAILURE;
            continue;
        }
        if (st != SF_OK) {
            sf_cli_error(c->cli, "%s", err.message);
            status = SF_EXIT_FATAL;
            break;
        }
        if (!img)
            break;
        /* An image without provenance gets --features' first, so that the
         * filters see it as any other record. */
        sf_stream_image with = *img;
        sf_provenance p;
        sf_record prov;
        uint64_t fields[SF_PROVENANCE_FIELDS];
        if (o->features && !img->has_provenance) {
            if (img->count + 1 > cap) {
                cap = img->count + 1;
                free(recs);
                recs = sf_cli_xmalloc(c->cli, cap * sizeof *recs);
            }
            p = sf_provenance_external(o->features);
            sf_provenance_record(&prov, &p, img->key, fields);
            recs[0] = prov;
            memcpy(recs + 1, img->recs, img->count * sizeof *recs);
            with.recs = recs;
            with.count = img->count + 1;
            with.has_provenance = 1;
            with.provenance = p;
        }
        if (!sf_record_filter_count(o->f, &with))
            continue;
        for (size_t i = 0; i < with.count; i++)
            if (sf_record_filter_keeps_record(o->f, &with.recs[i]))
                sf_cli_batch_add(c->cli, &c->out, &with.recs[i]);
        sf_cli_batch_flush(c->cli, &c->out);
    }
    free(recs);
    sf_npy_stack_reader_free(r);
    return status;
}

static int import_dirs(cat *c, int argc, char **argv, int first)
{
    int status = SF_EXIT_OK;
    for (int i = first; i < argc; i++) {
        int s = import_dir(c, argv[i]);
        if (s > status)
            status = s;
    }
    return status;
}

static void set_mode(const sf_cli *cli, options *o, enum mode mode)
{
    if (o->mode != MODE_STREAM && o->mode != mode)
        sf_cli_usage_error(cli, "--text, --check, --list, --npy, --npy-stack and --from-npy "
                                "exclude each other");
    o->mode = mode;
}

int main(int argc, char **argv)
{
    sf_cli cli;
    sf_cli_init(&cli, "sf-cat", argc, argv);
    cli.synopsis = "[OPTION]... [FILE]...\n"
                   "  or:  sf-cat --from-npy [OPTION]... DIR...";
    cli.summary = "Check feature streams and print, filter, concatenate or export them.\n"
                  "With no FILE, or when FILE is -, read standard input.";
    cli.options_help = options_help;

    options o = { .mode = MODE_STREAM };
    filter_built(&cli, sf_record_filter_create(&o.f, NULL));
    int c;
    while ((c = sf_cli_getopt(&cli, argc, argv, "tk:", longopts)) != -1) {
        switch (c) {
        case 't': set_mode(&cli, &o, MODE_TEXT); break;
        case OPT_CHECK: set_mode(&cli, &o, MODE_CHECK); break;
        case OPT_LIST: set_mode(&cli, &o, MODE_LIST); break;
        case OPT_NPY:
        case OPT_NPY_STACK:
            set_mode(&cli, &o, c == OPT_NPY ? MODE_NPY : MODE_STACK);
            if (!*optarg)
                sf_cli_usage_error(&cli, "%s needs a directory",
                                   c == OPT_NPY ? "--npy" : "--npy-stack");
            o.npy_dir = optarg;
            break;
        case OPT_FROM_NPY: set_mode(&cli, &o, MODE_FROM_NPY); break;
        case OPT_FEATURES:
            if (!*optarg)
                sf_cli_usage_error(&cli, "--features needs a name");
            o.features = optarg;
            break;
        case 'k':
            if (!*optarg)
                sf_cli_usage_error(&cli, "--key: keys are never empty");
            filter_built(&cli, sf_record_filter_add_key(o.f, optarg, NULL));
            break;
        case OPT_KEY_FILE: add_key_file(&cli, o.f, optarg); break;
        case OPT_MATCH: filter_built(&cli, sf_record_filter_add_glob(o.f, optarg, NULL)); break;
        case OPT_KIND: add_kind(&cli, o.f, optarg); break;
        case OPT_PARTIAL: cli.partial_input = 1; break;
        case OPT_INDEX:
            sf_record_filter_set_index(o.f, (uint32_t)sf_cli_parse_int(&cli, "--index", optarg, 0,
                                                                        UINT32_MAX));
            break;
        default:
            sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    if (o.features && o.mode != MODE_FROM_NPY)
        sf_cli_usage_error(&cli, "--features names imported features: it needs --from-npy");
    if (o.mode == MODE_FROM_NPY && optind == argc)
        sf_cli_usage_error(&cli, "--from-npy needs a DIR written by --npy-stack (or in its "
                                 "layout)");
    if (o.mode == MODE_STREAM || o.mode == MODE_FROM_NPY)
        sf_cli_stream_output(&cli);
    if (o.mode == MODE_NPY || o.mode == MODE_STACK)
        make_dir(&cli, o.npy_dir);

    static char *stdin_only[] = { "sf-cat", "-" };
    cat run = { &cli, &o, { 0 }, NULL };
    int status;
    if (o.mode == MODE_FROM_NPY) {
        status = import_dirs(&run, argc, argv, optind);
    } else {
        sf_error err;
        if (o.mode == MODE_STACK && sf_npy_stack_writer_create(o.npy_dir, &run.stack, &err)
                                        != SF_OK) {
            sf_cli_error(&cli, "%s", err.message);
            sf_record_filter_free(o.f);
            return sf_cli_finish(&cli, SF_EXIT_FATAL);
        }
        status = optind < argc ? sf_cli_each_image_of(&cli, argc, argv, optind, cat_image, &run)
                               : sf_cli_each_image_of(&cli, 2, stdin_only, 1, cat_image, &run);
        if (run.stack)
            status = finish_stack(&run, status);
    }
    sf_cli_batch_free(&run.out);
    sf_record_filter_free(o.f);
    return sf_cli_finish(&cli, status);
}
