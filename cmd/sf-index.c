/* sf-index: create, update and inspect an on-disk ASMK index.  The file,
 * its locking, its commits and what an image added must be are libsf's
 * (sf_index.h); this file reads feature streams and reports. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sf_codebook.h"
#include "sf_index.h"

enum {
    OPT_MA = SF_OPT_FIRST_PROGRAM,
    OPT_BINARY,
    OPT_NO_BINARY,
    OPT_IDF,
    OPT_NO_IDF,
    OPT_ALPHA,
    OPT_THRESHOLD,
    OPT_NO_WAIT,
    OPT_KEYS_FROM,
    OPT_ACCEPT_ROLLBACK,
};

/* add, remove, compact: the change is in place but may not be durable. */
#define EXIT_NOT_DURABLE 4

static const struct option longopts[] = {
    { "codebook", required_argument, NULL, 'C' },
    { "ma", required_argument, NULL, OPT_MA },
    { "binary", no_argument, NULL, OPT_BINARY },
    { "no-binary", no_argument, NULL, OPT_NO_BINARY },
    { "idf", no_argument, NULL, OPT_IDF },
    { "no-idf", no_argument, NULL, OPT_NO_IDF },
    { "alpha", required_argument, NULL, OPT_ALPHA },
    { "threshold", required_argument, NULL, OPT_THRESHOLD },
    { "no-wait", no_argument, NULL, OPT_NO_WAIT },
    SF_CLI_MISMATCH_LONGOPT,
    { "keys-from", required_argument, NULL, OPT_KEYS_FROM },
    { "accept-rollback", no_argument, NULL, OPT_ACCEPT_ROLLBACK },
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    "Commands:\n"
    "  create -C CODEBOOK INDEX  make an empty index for this codebook\n"
    "  add INDEX [STREAM]...     index the local descriptors of each image of the\n"
    "                            streams (default: stdin); a key already present is\n"
    "                            replaced; all the images become visible at once\n"
    "  remove INDEX [KEY]...     remove images by key\n"
    "  compact INDEX             rewrite the live images into one segment\n"
    "  info INDEX                sizes, counts and parameters\n"
    "  list INDEX                the key of each image, one per line\n"
    "  check INDEX               read everything and verify it, checksums included\n"
    "\nOptions:\n"
    "  -C, --codebook FILE  the codebook (create; add: default the one the index\n"
    "                       was created with)\n"
    "      --ma N           create: nearest words per database descriptor (default 1)\n"
    "      --binary, --no-binary  create: binary (default) or float residuals\n"
    "      --idf, --no-idf  create: weight words by idf (default no)\n"
    "      --alpha A        create: similarity exponent (default 3)\n"
    "      --threshold T    create: similarity threshold (default 0)\n"
    "      --no-wait        add, remove, compact: fail at once if another writer holds\n"
    "                       the index instead of waiting for it\n"
    "      --keys-from FILE remove: also the keys FILE lists, one per line ('-': stdin)\n"
    "      --accept-rollback  add, remove, compact: write to an index whose newest\n"
    "                       commit slot is damaged, going on from the older commit\n"
    "      --allow-mismatch add: images made with another model or settings than\n"
    "                       the index's, anyway\n";

enum command { CMD_NONE, CMD_CREATE, CMD_ADD, CMD_REMOVE, CMD_COMPACT, CMD_INFO, CMD_LIST,
               CMD_CHECK };

static const char *const command_names[] = { "", "create", "add", "remove", "compact",
                                             "info", "list", "check" };

typedef struct options {
    enum command cmd;
    const char *codebook;
    int no_wait;
    int accept_rollback;
    const char **key_files;
    size_t n_key_files;
    const char *create_only;
} options;

static void handle_option(sf_cli *cli, options *o, int c, const char *arg)
{
    switch (c) {
    case 'C': o->codebook = arg; return;
    case OPT_NO_WAIT: o->no_wait = 1; return;
    case OPT_ACCEPT_ROLLBACK: o->accept_rollback = 1; return;
    case SF_OPT_ALLOW_MISMATCH: cli->allow_mismatch = 1; return;
    case OPT_KEYS_FROM: {
        const char **k = realloc(o->key_files, (o->n_key_files + 1) * sizeof *k);
        if (!k)
            sf_cli_out_of_memory(cli);
        o->key_files = k;
        o->key_files[o->n_key_files++] = arg;
        return;
    }
    case OPT_MA:
        sf_cli_set(cli, "asmk.multiple_assignment_database", arg);
        o->create_only = "--ma";
        return;
    case OPT_BINARY:
    case OPT_NO_BINARY:
        sf_cli_set(cli, "asmk.binary", c == OPT_BINARY ? "true" : "false");
        o->create_only = c == OPT_BINARY ? "--binary" : "--no-binary";
        return;
    case OPT_IDF:
    case OPT_NO_IDF:
        sf_cli_set(cli, "asmk.idf", c == OPT_IDF ? "true" : "false");
        o->create_only = c == OPT_IDF ? "--idf" : "--no-idf";
        return;
    case OPT_ALPHA:
        sf_cli_set(cli, "asmk.alpha", arg);
        o->create_only = "--alpha";
        return;
    case OPT_THRESHOLD:
        sf_cli_set(cli, "asmk.threshold", arg);
        o->create_only = "--threshold";
        return;
    }
    sf_cli_usage_error(cli, "unexpected option");
}

static int report(const sf_cli *cli, const sf_error *err)
{
    sf_cli_error(cli, "%s", err->message);
    return SF_EXIT_FATAL;
}

/* A failed commit or compaction: exit 3 if it changed nothing. */
static int report_commit(const sf_cli *cli, const sf_index_writer *w, const sf_error *err)
{
    report(cli, err);
    return sf_index_writer_not_durable(w) ? EXIT_NOT_DURABLE : SF_EXIT_FATAL;
}

static sf_status open_writer(const options *o, const char *path,
                             const sf_index_codebook_id *codebook, sf_index_writer **w,
                             sf_error *err)
{
    sf_index_writer_options wo;
    sf_index_writer_options_default(&wo);
    wo.no_wait = o->no_wait;
    wo.accept_rollback = o->accept_rollback;
    return sf_index_writer_open(path, codebook, &wo, w, err);
}

/* ---- create ---- */

static int cmd_create(sf_cli *cli, const options *o, const char *path)
{
    if (!o->codebook)
        sf_cli_usage_error(cli, "create needs the codebook: -C CODEBOOK");
    sf_codebook *cb;
    sf_error err;
    if (sf_codebook_load(o->codebook, &cb, &err) != SF_OK)
        return report(cli, &err);
    sf_index_params p;
    sf_index_params_from_config(&p, &cli->config);
    sf_index_codebook_id id;
    sf_index_codebook_id_of(cb, &id);
    sf_codebook_free(cb);
    /* Remembered for `add`, which may run from another directory. */
    char *abs = realpath(o->codebook, NULL);
    sf_status st = sf_index_create(path, &p, &id, abs ? abs : o->codebook, &err);
    free(abs);
    if (st != SF_OK)
        return report(cli, &err);
    sf_cli_info(cli, "%s: created for a %llu x %llu codebook (%s%s, ma %d, alpha %g, "
                "threshold %g)", path, (unsigned long long)id.k, (unsigned long long)id.dim,
                p.asmk.binary ? "binary" : "float", p.asmk.use_idf ? ", idf" : "",
                p.ma_database, (double)p.asmk.alpha, (double)p.asmk.similarity_threshold);
    return SF_EXIT_OK;
}

/* ---- add ---- */

typedef struct adder {
    sf_cli *cli;
    sf_index_writer *w;
    sf_asmk_codebook *cb;
    uint64_t added, replaced;
} adder;

/* One image of the input: added, or reported and skipped. */
static int add_image(void *vctx, const sf_stream_image *img, const char *name)
{
    adder *a = vctx;
    sf_error err;
    int replaced;
    uint64_t held = sf_index_writer_features(a->w);
    size_t before = sf_index_writer_n_images(a->w);
    sf_status st = sf_index_writer_add_image(a->w, a->cb, img, 0, &replaced, &err);
    if (st == SF_ERR_MISMATCH) {
        if (sf_cli_provenance(a->cli, name, st, &err))
            return SF_EXIT_FAILURE;
        st = sf_index_writer_add_image(a->w, a->cb, img, 1, &replaced, &err);
    }
    if (st == SF_ERR_IO || st == SF_ERR_NOMEM) {
        sf_cli_error(a->cli, "%s", err.message);
        return SF_EXIT_FATAL;
    }
    if (st != SF_OK) {
        sf_cli_error(a->cli, "%s: %s: %s", name, img->key, err.message);
        return SF_EXIT_FAILURE;
    }
    if (!held && before > 0 && sf_index_writer_features(a->w))
        sf_cli_warn(a->cli, "the index does not say which model made its images (made by "
                    "an older sf); it records %016llx now",
                    (unsigned long long)sf_index_writer_features(a->w));
    a->added++;
    a->replaced += (uint64_t)replaced;
    if (replaced)
        sf_cli_info(a->cli, "%s: replaced", img->key);
    return SF_EXIT_OK;
}

/* The commit of an add writes every image added: long for a big input,
 * so it is reported (after the input was read, even through a pipe). */
static sf_status commit(const sf_cli *cli, adder *a, const char *path, sf_error *err)
{
    static char what[256];
    snprintf(what, sizeof what, "writing %llu images to %s", (unsigned long long)a->added,
             path);
    sf_cli_progress_begin(cli, 0, what, NULL, 0, 0);
    sf_status st = sf_index_writer_commit(a->w, err);
    sf_cli_progress_end();
    return st;
}

static sf_status load_codebook(const char *path, sf_codebook **cb, sf_asmk_codebook **acb,
                               sf_index_codebook_id *id, sf_error *err)
{
    sf_status st = sf_codebook_load(path, cb, err);
    if (st != SF_OK)
        return st;
    sf_index_codebook_id_of(*cb, id);
    return sf_asmk_codebook_create(sf_codebook_centroids(*cb), id->k, id->dim, acb, err);
}

/* A codebook that records the features it was made for (sf-codebook
 * since it does) ties the index to them: an index without images takes
 * them as its own, so its first image must match too; one that holds
 * other features is refused.  1 when the index may go on. */
static int codebook_features(sf_cli *cli, sf_index_writer *w, const sf_codebook *cb,
                             const char *cb_path)
{
    uint64_t want = sf_codebook_get_training(cb)->features;
    uint64_t held = sf_index_writer_features(w);
    if (!want || cli->allow_mismatch || held == want)
        return 1;
    if (!held) {
        sf_index_writer_set_features(w, want);
        return 1;
    }
    sf_cli_error(cli, "%s: made for features %016llx, the index holds features %016llx "
                      "(another model or settings); --allow-mismatch to use it anyway",
                 cb_path, (unsigned long long)want, (unsigned long long)held);
    return 0;
}

static int cmd_add(sf_cli *cli, const options *o, const char *path, int argc, char **argv)
{
    sf_error err;
    const char *cb_path = o->codebook;
    sf_index *idx = NULL;
    if (!cb_path) {
        if (sf_index_open(path, &idx, &err) != SF_OK)
            return report(cli, &err);
        cb_path = sf_index_codebook_path(idx);
        if (!*cb_path) {
            sf_index_close(idx);
            sf_cli_usage_error(cli, "%s does not name its codebook: give -C CODEBOOK", path);
        }
    }
    if (argc == 0 && isatty(STDIN_FILENO))
        sf_cli_usage_error(cli, "no input: name stream files or pipe a stream in");
    sf_codebook *cb = NULL;
    adder a = { .cli = cli };
    sf_index_codebook_id id;
    sf_status st = load_codebook(cb_path, &cb, &a.cb, &id, &err);
    sf_index_close(idx);
    if (st != SF_OK) {
        sf_codebook_free(cb);
        return report(cli, &err);
    }
    int status = SF_EXIT_OK;
    if (open_writer(o, path, &id, &a.w, &err) != SF_OK) {
        status = report(cli, &err);
    } else if (!codebook_features(cli, a.w, cb, cb_path)) {
        status = SF_EXIT_FAILURE;
    } else {
        cli->all_inputs = 1;
        int read = sf_cli_each_image_of(cli, argc, argv, 0, add_image, &a);
        /* All or nothing: an unreadable or incomplete input leaves the
         * index as it was. */
        if (read == SF_EXIT_FATAL) {
            sf_cli_error(cli, "%s: unchanged", path);
            status = SF_EXIT_FATAL;
        } else if (commit(cli, &a, path, &err) != SF_OK) {
            status = report_commit(cli, a.w, &err);
        } else {
            sf_cli_info(cli, "%s: added %llu images (%llu replaced), %zu in all", path,
                        (unsigned long long)a.added, (unsigned long long)a.replaced,
                        sf_index_writer_n_images(a.w));
            if (a.added == 0 && read == SF_EXIT_OK)
                sf_cli_warn(cli, "%s: no images in the input", path);
            status = read;
        }
    }
    sf_index_writer_free(a.w);
    sf_asmk_codebook_free(a.cb);
    sf_codebook_free(cb);
    return status;
}

/* ---- remove ---- */

static int remove_one(const sf_cli *cli, sf_index_writer *w, const char *key, int *missing,
                      uint64_t *removed)
{
    sf_error err;
    sf_status st = sf_index_writer_remove(w, key, &err);
    if (st == SF_OK) {
        (*removed)++;
        return 0;
    }
    sf_cli_error(cli, "%s", err.message);
    if (st == SF_ERR_NOT_FOUND || st == SF_ERR_INVALID_ARGUMENT) {
        *missing = 1;
        return 0;
    }
    return 1;
}

static int cmd_remove(sf_cli *cli, const options *o, const char *path, int argc, char **argv)
{
    if (argc == 0 && o->n_key_files == 0)
        sf_cli_usage_error(cli, "remove needs KEYs or --keys-from FILE");
    sf_index_writer *w;
    sf_error err;
    if (open_writer(o, path, NULL, &w, &err) != SF_OK)
        return report(cli, &err);
    int missing = 0, fatal = 0;
    uint64_t removed = 0;
    for (int i = 0; i < argc && !fatal; i++)
        fatal = remove_one(cli, w, argv[i], &missing, &removed);
    for (size_t f = 0; f < o->n_key_files && !fatal; f++) {
        const char *kf = o->key_files[f];
        const char *why;
        size_t n;
        char **lines = sf_cli_read_keys(cli, kf, &n, &why);
        if (!lines) {
            sf_cli_error(cli, "%s: %s", kf, why);
            fatal = 1;
            break;
        }
        for (size_t i = 0; i < n && !fatal; i++)
            if (*lines[i])
                fatal = remove_one(cli, w, lines[i], &missing, &removed);
        sf_cli_free_lines(lines, n);
    }
    int status;
    if (fatal) {
        sf_cli_error(cli, "%s: unchanged", path);
        status = SF_EXIT_FATAL;
    } else if (sf_index_writer_commit(w, &err) != SF_OK) {
        status = report_commit(cli, w, &err);
    } else {
        sf_cli_info(cli, "%s: removed %llu images, %zu left", path,
                    (unsigned long long)removed, sf_index_writer_n_images(w));
        status = missing ? SF_EXIT_FAILURE : SF_EXIT_OK;
    }
    sf_index_writer_free(w);
    return status;
}

/* ---- compact ---- */

static int cmd_compact(sf_cli *cli, const options *o, const char *path)
{
    sf_index_writer *w;
    sf_error err;
    if (open_writer(o, path, NULL, &w, &err) != SF_OK)
        return report(cli, &err);
    int status = SF_EXIT_OK;
    if (sf_index_writer_compact(w, &err) != SF_OK)
        status = report_commit(cli, w, &err);
    else
        sf_cli_info(cli, "%s: compacted, %zu images", path, sf_index_writer_n_images(w));
    sf_index_writer_free(w);
    return status;
}

/* ---- info, list, check ---- */

static int cmd_info(sf_cli *cli, const char *path)
{
    sf_index *idx;
    sf_error err;
    sf_index_info in;
    if (sf_index_open(path, &idx, &err) != SF_OK)
        return report(cli, &err);
    if (sf_index_get_info(idx, &in, &err) != SF_OK) {
        sf_index_close(idx);
        return report(cli, &err);
    }
    const sf_index_params *p = sf_index_get_params(idx);
    sf_index_codebook_id cb;
    sf_index_get_codebook(idx, &cb);
    printf("file: %s\n", path);
    printf("generation: %llu\n", (unsigned long long)in.generation);
    printf("images: %zu\n", in.n_images);
    printf("ids: %zu\n", in.n_ids);
    printf("vectors: %llu\n", (unsigned long long)in.n_vectors);
    printf("entries: %llu\n", (unsigned long long)in.n_entries);
    printf("words used: %zu of %llu\n", in.words_used, (unsigned long long)cb.k);
    printf("bytes: %llu\n", (unsigned long long)in.bytes);
    printf("bytes per image: %.0f\n", in.n_images ? (double)in.bytes / (double)in.n_images : 0.0);
    printf("segments: %zu\n", in.n_segments);
    size_t missing, gdim = sf_index_global_dim(idx, &missing);
    if (gdim)
        printf("global: %zu\n", gdim);
    else
        printf("global: none (%zu images without)\n", missing);
    printf("binary: %s\n", p->asmk.binary ? "true" : "false");
    printf("idf: %s\n", p->asmk.use_idf ? "true" : "false");
    printf("alpha: %.9g\n", (double)p->asmk.alpha);
    printf("threshold: %.9g\n", (double)p->asmk.similarity_threshold);
    printf("multiple assignment database: %d\n", p->ma_database);
    printf("codebook: %llu x %llu\n", (unsigned long long)cb.k, (unsigned long long)cb.dim);
    printf("codebook checksum: %016llx\n", (unsigned long long)cb.checksum);
    printf("codebook path: %s\n", sf_index_codebook_path(idx));
    if (sf_index_features(idx))
        printf("features: %016llx\n", (unsigned long long)sf_index_features(idx));
    else
        printf("features: not recorded\n");
    sf_index_slot_state slots;
    if (sf_index_check_slots(idx, &slots, &err) != SF_OK) {
        printf("damaged commit slot: %d (%s)\n", slots.damaged,
               slots.newer_lost ? "a newer commit may be lost" : "nothing lost");
        sf_cli_warn(cli, "%s", err.message);
    }
    sf_index_close(idx);
    return SF_EXIT_OK;
}

static int cmd_list(sf_cli *cli, const char *path)
{
    sf_index *idx;
    sf_error err;
    if (sf_index_open(path, &idx, &err) != SF_OK)
        return report(cli, &err);
    int status = SF_EXIT_OK;
    for (size_t id = 0; id < sf_index_n_ids(idx); id++) {
        if (!sf_index_is_live(idx, id))
            continue;
        sf_index_image im;
        if (sf_index_get_image(idx, id, &im, &err) != SF_OK) {
            status = report(cli, &err);
            break;
        }
        fwrite(im.key, 1, im.key_len, stdout);
        putchar('\n');
    }
    sf_index_close(idx);
    return status;
}

static int cmd_check(sf_cli *cli, const char *path)
{
    sf_index *idx;
    sf_error err;
    if (sf_index_open(path, &idx, &err) != SF_OK)
        return report(cli, &err);
    int status = SF_EXIT_OK;
    if (sf_index_verify(idx, &err) != SF_OK)
        status = report(cli, &err);
    else
        sf_cli_info(cli, "%s: ok, %zu images", path, sf_index_n_images(idx));
    sf_index_close(idx);
    return status;
}

int main(int argc, char **argv)
{
    sf_cli cli;
    options o;
    memset(&o, 0, sizeof o);
    sf_cli_init(&cli, "sf-index", argc, argv);
    cli.reports_progress = 1;
    cli.synopsis = "COMMAND [OPTION]... INDEX [ARG]...";
    cli.summary = "Create, update and inspect an ASMK index of feature streams.";
    cli.options_help = options_help;
    /* Options may come anywhere; "--" ends them (for keys that begin
     * with '-'). */
    int n_ops = 0, c;
    while ((c = sf_cli_getopt_anywhere(&cli, argc, argv, "C:", longopts, &n_ops)) != -1)
        handle_option(&cli, &o, c, optarg);
    char **ops = argv + 1;
    if (n_ops == 0)
        sf_cli_usage_error(&cli, "no command (create, add, remove, compact, info, list, check)");
    const char *name = ops[0];
    for (size_t i = 1; i < sizeof command_names / sizeof command_names[0]; i++)
        if (strcmp(name, command_names[i]) == 0)
            o.cmd = (enum command)i;
    if (o.cmd == CMD_NONE)
        sf_cli_usage_error(&cli, "unknown command '%s'", name);
    if (n_ops < 2)
        sf_cli_usage_error(&cli, "%s needs an INDEX", name);
    const char *path = ops[1];
    char **args = ops + 2;
    int n_args = n_ops - 2;

    if (o.create_only && o.cmd != CMD_CREATE)
        sf_cli_usage_error(&cli, "%s is an option of create (the index keeps its parameters)",
                           o.create_only);
    if (o.codebook && o.cmd != CMD_CREATE && o.cmd != CMD_ADD)
        sf_cli_usage_error(&cli, "-C is an option of create and add");
    if (o.no_wait && o.cmd != CMD_ADD && o.cmd != CMD_REMOVE && o.cmd != CMD_COMPACT)
        sf_cli_usage_error(&cli, "--no-wait is an option of add, remove and compact");
    if (o.accept_rollback && o.cmd != CMD_ADD && o.cmd != CMD_REMOVE && o.cmd != CMD_COMPACT)
        sf_cli_usage_error(&cli, "--accept-rollback is an option of add, remove and compact");
    if (o.n_key_files && o.cmd != CMD_REMOVE)
        sf_cli_usage_error(&cli, "--keys-from is an option of remove");
    if (n_args > 0 && o.cmd != CMD_ADD && o.cmd != CMD_REMOVE)
        sf_cli_usage_error(&cli, "%s takes one INDEX, got '%s' too", name, args[0]);

    int status;
    switch (o.cmd) {
    case CMD_CREATE: status = cmd_create(&cli, &o, path); break;
    case CMD_ADD: status = cmd_add(&cli, &o, path, n_args, args); break;
    case CMD_REMOVE: status = cmd_remove(&cli, &o, path, n_args, args); break;
    case CMD_COMPACT: status = cmd_compact(&cli, &o, path); break;
    case CMD_INFO: status = cmd_info(&cli, path); break;
    case CMD_LIST: status = cmd_list(&cli, path); break;
    default: status = cmd_check(&cli, path); break;
    }
    free(o.key_files);
    return sf_cli_finish(&cli, status);
}
