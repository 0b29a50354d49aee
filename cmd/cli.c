#include "config.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void vmessage(const sf_cli *cli, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", cli->prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int sf_cli_getopt_anywhere(sf_cli *cli, int argc, char **argv, const char *shortopts,
                           const struct option *longopts, int *n_operands)
{
    for (;;) {
        int before = optind;
        int c = sf_cli_getopt(cli, argc, argv, shortopts, longopts);
        if (c != -1)
            return c;
        /* getopt stopped at "--" (which it consumed), an operand, or the end.
         * Operand k goes to argv[1 + k]: never beyond the slot it came from. */
        if (optind > before && strcmp(argv[optind - 1], "--") == 0) {
            while (optind < argc)
                argv[1 + (*n_operands)++] = argv[optind++];
            return -1;
        }
        if (optind >= argc)
            return -1;
        argv[1 + (*n_operands)++] = argv[optind++];
    }
}

void sf_cli_error(const sf_cli *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(cli, fmt, ap);
    va_end(ap);
}

void sf_cli_warn(const sf_cli *cli, const char *fmt, ...)
{
    va_list ap;
    if (cli->verbosity < 1)
        return;
    va_start(ap, fmt);
    vmessage(cli, fmt, ap);
    va_end(ap);
}

void sf_cli_info(const sf_cli *cli, const char *fmt, ...)
{
    va_list ap;
    if (cli->verbosity < 2)
        return;
    va_start(ap, fmt);
    vmessage(cli, fmt, ap);
    va_end(ap);
}

void sf_cli_usage_error(const sf_cli *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(cli, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help'.\n", cli->prog);
    exit(SF_EXIT_USAGE);
}

static void load_config(sf_cli *cli, const char *path)
{
    sf_error err;
    if (sf_config_load_file(&cli->config, path, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        exit(SF_EXIT_USAGE);
    }
}

void sf_cli_init(sf_cli *cli, const char *prog, int argc, char **argv)
{
    memset(cli, 0, sizeof *cli);
    cli->prog = prog;
    cli->verbosity = 1;
    sf_config_init(&cli->config);
    /* Presets first, whatever their position, so that flags override them. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (strncmp(a, "--config=", 9) == 0)
            load_config(cli, a + 9);
        else if ((strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) && i + 1 < argc)
            load_config(cli, argv[++i]);
        else if (strncmp(a, "-c", 2) == 0 && a[2] != '\0' && a[1] != '-')
            load_config(cli, a + 2);
    }
}

static void print_help(const sf_cli *cli)
{
    printf("Usage: %s %s\n%s\n\n", cli->prog, cli->synopsis, cli->summary);
    if (cli->options_help && *cli->options_help)
        printf("%s", cli->options_help);
    printf("  -c, --config FILE    read settings from a YAML preset (flags override it)\n"
           "      --set KEY=VALUE  override one setting (see sf(7) for the keys)\n"
           "  -q, --quiet          print errors only\n"
           "  -v, --verbose        print progress details\n"
           "  -h, --help           show this help and exit\n"
           "  -V, --version        show the version and exit\n"
           "\nExit status: 0 success, 1 some inputs failed, 2 usage error, 3 fatal error.\n"
           "Full documentation: man %s\n", cli->prog);
}

static const struct option common_longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "set", required_argument, NULL, SF_OPT_SET },
    { "quiet", no_argument, NULL, 'q' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
};
#define N_COMMON (sizeof common_longopts / sizeof common_longopts[0])

int sf_cli_getopt(sf_cli *cli, int argc, char **argv, const char *shortopts,
                  const struct option *longopts)
{
    /* Built once per process: the program's options followed by the common ones. */
    static struct option merged[64];
    static char shorts[128];
    if (merged[0].name == NULL) {
        size_t n = 0;
        for (const struct option *o = longopts; o && o->name; o++)
            if (n < 64 - N_COMMON - 1)
                merged[n++] = *o;
        for (size_t i = 0; i < N_COMMON; i++)
            merged[n++] = common_longopts[i];
        snprintf(shorts, sizeof shorts, "+%sc:qvhV", shortopts ? shortopts : "");
        opterr = 0;
    }
    for (;;) {
        int c = getopt_long(argc, argv, shorts, merged, NULL);
        switch (c) {
        case 'c':
            break; /* already loaded by sf_cli_init */
        case SF_OPT_SET: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                sf_cli_usage_error(cli, "--set expects KEY=VALUE, got '%s'", optarg);
            *eq = '\0';
            sf_cli_set(cli, optarg, eq + 1);
            *eq = '=';
            break;
        }
        case 'q':
            cli->verbosity = 0;
            break;
        case 'v':
            cli->verbosity = 2;
            break;
        case 'h':
            print_help(cli);
            exit(fflush(stdout) == 0 ? SF_EXIT_OK : SF_EXIT_FATAL);
        case 'V':
            printf("%s (sf) %s\n", cli->prog, sf_version());
            exit(fflush(stdout) == 0 ? SF_EXIT_OK : SF_EXIT_FATAL);
        case '?':
            if (optopt && optopt < 0x100 && optopt != '?')
                sf_cli_usage_error(cli, "invalid option or missing argument: -%c", optopt);
            sf_cli_usage_error(cli, "invalid option or missing argument: %s", argv[optind - 1]);
        case ':':
            sf_cli_usage_error(cli, "option needs an argument: %s", argv[optind - 1]);
        default:
            return c;
        }
    }
}

void sf_cli_set(sf_cli *cli, const char *key, const char *value)
{
    sf_error err;
    if (sf_config_set(&cli->config, key, value, &err) != SF_OK)
        sf_cli_usage_error(cli, "%s", err.message);
}

long long sf_cli_parse_int(const sf_cli *cli, const char *option, const char *text,
                           long long min, long long max)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min || v > max)
        sf_cli_usage_error(cli, "%s: expected a whole number from %lld to %lld, got '%s'",
                           option, min, max, text);
    return v;
}

void sf_cli_refuse_terminal_output(const sf_cli *cli, FILE *fp)
{
    if (isatty(fileno(fp))) {
        sf_cli_error(cli, "refusing to write a binary feature stream to a terminal; "
                          "redirect it to a file (> out.sfs) or pipe it (| sf-cat --text)");
        exit(SF_EXIT_USAGE);
    }
}

/* The reader went away: end as SIGPIPE would have ended us (git does the
 * same), so pipelines like `sf-decode ... | head -c 100` stay quiet. */
static _Noreturn void die_of_broken_pipe(void)
{
    signal(SIGPIPE, SIG_DFL);
    raise(SIGPIPE);
    _exit(128 + SIGPIPE);
}

void sf_cli_stream_output(sf_cli *cli)
{
    sf_cli_refuse_terminal_output(cli, stdout);
    cli->writes_stream = 1;
}

static void check_write(const sf_cli *cli, sf_status st, const sf_error *err)
{
    if (st == SF_ERR_BROKEN_PIPE)
        die_of_broken_pipe();
    if (st != SF_OK) {
        sf_cli_error(cli, "<stdout>: %s", err->message);
        exit(SF_EXIT_FATAL);
    }
}

void sf_cli_write_record(sf_cli *cli, const sf_record *rec)
{
    sf_error err;
    check_write(cli, sf_stream_write_record(stdout, rec, &err), &err);
    cli->images_written += (rec->flags & SF_RECORD_LAST) != 0;
}

int sf_cli_finish(sf_cli *cli, int status)
{
    /* A fatal failure leaves the output without its end, so that whatever
     * reads it knows it is incomplete. */
    if (cli->writes_stream && status != SF_EXIT_FATAL && !ferror(stdout)) {
        sf_error err;
        check_write(cli, sf_stream_write_end(stdout, cli->prog, cli->images_written, &err),
                    &err);
    }
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno == EPIPE)
            die_of_broken_pipe();
        sf_cli_error(cli, "<stdout>: write failed: %s", strerror(errno ? errno : EIO));
        return SF_EXIT_FATAL;
    }
    if (fclose(stdout) != 0 && errno != EBADF) {
        if (errno == EPIPE)
            die_of_broken_pipe();
        sf_cli_error(cli, "<stdout>: close failed: %s", strerror(errno));
        return SF_EXIT_FATAL;
    }
    return status;
}

/* ---- programs that run the network ---- */

void sf_cli_prefer_passive_threads(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* No /proc: go on with spinning threads, slower only under contention. */
}

int sf_cli_network_option(sf_cli *cli, sf_cli_network *nw, int opt, const char *arg)
{
    switch (opt) {
    case 'm':
        sf_cli_set(cli, "compute.model", arg);
        return 1;
    case SF_OPT_BACKEND:
        nw->backend_name = arg;
        return 1;
    case SF_OPT_BACKEND_PATH:
        nw->backend_path = arg;
        return 1;
    case SF_OPT_THREADS:
        sf_cli_set(cli, "compute.threads", arg);
        return 1;
    case SF_OPT_PRECISION:
        if (strcmp(arg, "f32") == 0)
            nw->precision = SF_PRECISION_F32;
        else if (strcmp(arg, "bf16") == 0)
            nw->precision = SF_PRECISION_BF16;
        else
            sf_cli_usage_error(cli, "--precision: expected f32 or bf16, got '%s'", arg);
        return 1;
    }
    return 0;
}

static void list_backends(sf_cli *cli, const sf_cli_network *nw)
{
    sf_backend_info infos[32];
    size_t n = 0;
    sf_error err;
    if (sf_backend_list(nw->backend_path, infos, 32, &n, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        exit(SF_EXIT_FATAL);
    }
    for (size_t i = 0; i < n && i < 32; i++)
        printf("%s\t%s\t%s\t%s\n", infos[i].name,
               infos[i].score > 0 ? "usable" : "unusable",
               infos[i].score > 0 ? infos[i].description : infos[i].problem, infos[i].path);
    if (n == 0)
        sf_cli_error(cli, "no backend installed (searched --backend-path, $SF_BACKEND_PATH, "
                          "and %s)", SF_PKGLIBDIR);
    exit(sf_cli_finish(cli, n ? SF_EXIT_OK : SF_EXIT_FAILURE));
}

void sf_cli_network_open(sf_cli *cli, sf_cli_network *nw)
{
    sf_error err;
    const char *name = nw->backend_name;
    if (!name)
        name = getenv("SF_BACKEND");
    if (!name || !*name)
        name = cli->config.backend;
    if (strcmp(name, "list") == 0)
        list_backends(cli, nw);
    if (!cli->config.model[0])
        sf_cli_usage_error(cli, "no model: give -m FILE (fire.pth, or sf-model random -o FILE)");
    if (sf_model_load(&nw->model, cli->config.model, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        exit(SF_EXIT_FATAL);
    }
    if (sf_backend_open(&nw->backend, name, nw->backend_path, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        exit(SF_EXIT_FATAL);
    }
    sf_network_options opt = { .threads = cli->config.threads, .precision = nw->precision };
    if (sf_network_create(&nw->net, nw->backend, nw->model, &opt, &err) != SF_OK) {
        sf_cli_error(cli, "%s: %s", sf_backend_name(nw->backend), err.message);
        exit(SF_EXIT_FATAL);
    }
    sf_cli_info(cli, "model %s, backend %s (%s)", cli->config.model, sf_backend_name(nw->backend),
                sf_backend_path(nw->backend));
}

void sf_cli_network_close(sf_cli_network *nw)
{
    sf_network_free(nw->net);
    sf_backend_close(nw->backend);
    sf_model_free(nw->model);
    nw->net = NULL;
    nw->backend = NULL;
    nw->model = NULL;
}

/* ---- holding back one image's records ---- */

static void batch_push(const sf_cli *cli, sf_cli_batch *b, const sf_record *rec, void *data)
{
    if (b->count == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        sf_record *r = realloc(b->recs, cap * sizeof *r);
        if (!r) {
            sf_cli_error(cli, "out of memory");
            exit(SF_EXIT_FATAL);
        }
        b->recs = r;
        b->cap = cap;
    }
    sf_record *dst = &b->recs[b->count++];
    *dst = *rec;
    dst->key = strdup(rec->key);
    dst->data = data;
    if (!dst->key) {
        sf_cli_error(cli, "out of memory");
        exit(SF_EXIT_FATAL);
    }
}

void sf_cli_batch_add(const sf_cli *cli, sf_cli_batch *b, const sf_record *rec)
{
    void *copy = malloc(rec->data_size ? rec->data_size : 1);
    if (!copy) {
        sf_cli_error(cli, "%s: out of memory", rec->key);
        exit(SF_EXIT_FATAL);
    }
    memcpy(copy, rec->data, rec->data_size);
    batch_push(cli, b, rec, copy);
}

void sf_cli_batch_add_owned(const sf_cli *cli, sf_cli_batch *b, const sf_record *rec, void *data)
{
    batch_push(cli, b, rec, data);
}

void sf_cli_batch_add_provenance(const sf_cli *cli, sf_cli_batch *b, const char *key,
                                 const sf_provenance *p)
{
    uint64_t fields[SF_PROVENANCE_FIELDS];
    sf_record rec;
    sf_provenance_record(&rec, p, key, fields);
    sf_cli_batch_add(cli, b, &rec);
    /* First: a reader sees where the image comes from before its data. */
    sf_record added = b->recs[b->count - 1];
    memmove(b->recs + 1, b->recs, (b->count - 1) * sizeof *b->recs);
    b->recs[0] = added;
}

void sf_cli_batch_flush(sf_cli *cli, sf_cli_batch *b)
{
    if (b->count) {
        sf_error err;
        check_write(cli, sf_stream_write_image(stdout, b->recs, b->count, &err), &err);
        cli->images_written++;
    }
    sf_cli_batch_clear(b);
}

int sf_cli_provenance(sf_cli *cli, const char *name, sf_status st, const sf_error *err)
{
    static int warned;
    if (st == SF_OK)
        return 0;
    if (cli->allow_mismatch) {
        if (!warned++)
            sf_cli_warn(cli, "%s: %s (used anyway: --allow-mismatch)", name, err->message);
        return 0;
    }
    sf_cli_error(cli, "%s: %s (--allow-mismatch uses it anyway)", name, err->message);
    return 1;
}

void sf_cli_batch_clear(sf_cli_batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        free((void *)b->recs[i].key);
        free((void *)b->recs[i].data);
    }
    b->count = 0;
}

void sf_cli_batch_free(sf_cli_batch *b)
{
    sf_cli_batch_clear(b);
    free(b->recs);
    b->recs = NULL;
    b->cap = 0;
}

FILE *sf_cli_open_input(const sf_cli *cli, const char *path, const char **name)
{
    if (strcmp(path, "-") == 0) {
        *name = "<stdin>";
        return stdin;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp)
        sf_cli_error(cli, "%s: %s", path, strerror(errno));
    *name = path;
    return fp;
}

void sf_cli_close_input(FILE *fp)
{
    if (fp && fp != stdin)
        fclose(fp);
}

static _Noreturn void lines_out_of_memory(const sf_cli *cli)
{
    sf_cli_error(cli, "out of memory");
    exit(SF_EXIT_FATAL);
}

char **sf_cli_read_lines(const sf_cli *cli, const char *path, size_t *n, const char **why)
{
    *n = 0;
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!fp) {
        *why = strerror(errno);
        return NULL;
    }
    /* Not NULL for an empty file: NULL means failure. */
    char **lines = malloc(sizeof *lines), *line = NULL;
    size_t cap = 1, lcap = 0;
    if (!lines)
        lines_out_of_memory(cli);
    ssize_t len;
    errno = 0;
    while ((len = getline(&line, &lcap, fp)) >= 0) {
        /* Lists written on other systems end lines with "\r\n". */
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (*n == cap) {
            cap = cap < 256 ? 256 : 2 * cap;
            char **l = realloc(lines, cap * sizeof *l);
            if (!l)
                lines_out_of_memory(cli);
            lines = l;
        }
        if (!(lines[(*n)++] = strdup(line)))
            lines_out_of_memory(cli);
    }
    int failed = ferror(fp), e = errno;
    free(line);
    if (fp != stdin)
        fclose(fp);
    if (failed) {
        *why = e ? strerror(e) : "read failed";
        sf_cli_free_lines(lines, *n);
        *n = 0;
        return NULL;
    }
    return lines;
}

void sf_cli_free_lines(char **lines, size_t n)
{
    for (size_t i = 0; lines && i < n; i++)
        free(lines[i]);
    free(lines);
}

static int each_image(sf_cli *cli, FILE *fp, const char *name, sf_cli_image_fn fn, void *ctx)
{
    sf_stream_reader *reader;
    sf_error err;
    int status = SF_EXIT_OK;
    if (sf_stream_reader_create(&reader, fp, name, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        return SF_EXIT_FATAL;
    }
    sf_stream_reader_allow_partial(reader, cli->partial_input);
    for (;;) {
        const sf_stream_image *img;
        sf_status st = sf_stream_read_image(reader, &img, &err);
        if (st == SF_ERR_INVALID_DATA) {
            sf_cli_error(cli, "%s", err.message);
            status = SF_EXIT_FAILURE;
            continue;
        }
        if (st != SF_OK) {
            sf_cli_error(cli, "%s", err.message);
            status = SF_EXIT_FATAL;
            break;
        }
        if (!img)
            break;
        int s = fn(ctx, img, name);
        if (s > status)
            status = s;
        if (s == SF_EXIT_FATAL || ferror(stdout))
            break;
    }
    sf_cli_info(cli, "%s: %llu records, %llu images, %llu bytes", name,
                (unsigned long long)sf_stream_reader_records(reader),
                (unsigned long long)sf_stream_reader_images(reader),
                (unsigned long long)sf_stream_reader_offset(reader));
    sf_stream_reader_free(reader);
    return status;
}

int sf_cli_each_image(sf_cli *cli, const char *path, sf_cli_image_fn fn, void *ctx)
{
    const char *name;
    FILE *fp = sf_cli_open_input(cli, path, &name);
    if (!fp)
        return cli->all_inputs ? SF_EXIT_FATAL : SF_EXIT_FAILURE;
    int status = each_image(cli, fp, name, fn, ctx);
    sf_cli_close_input(fp);
    return status;
}

int sf_cli_each_image_of(sf_cli *cli, int argc, char **argv, int first, sf_cli_image_fn fn,
                         void *ctx)
{
    if (first >= argc) {
        if (isatty(STDIN_FILENO))
            sf_cli_usage_error(cli, "no input: name stream files or pipe a stream in");
        return each_image(cli, stdin, "<stdin>", fn, ctx);
    }
    int status = SF_EXIT_OK;
    for (int i = first; i < argc; i++) {
        int st = sf_cli_each_image(cli, argv[i], fn, ctx);
        if (st > status)
            status = st;
        if (ferror(stdout))
            break;
    }
    return status;
}

typedef struct filter_run {
    sf_cli *cli;
    sf_cli_filter_fn fn;
    void *ctx;
    sf_cli_batch out;
} filter_run;

static int filter_image(void *vrun, const sf_stream_image *img, const char *name)
{
    filter_run *run = vrun;
    int failed = run->fn(run->ctx, img, name, &run->out);
    if (!failed)
        sf_cli_batch_flush(run->cli, &run->out);
    sf_cli_batch_clear(&run->out);
    return failed ? SF_EXIT_FAILURE : SF_EXIT_OK;
}

int sf_cli_run_filter(sf_cli *cli, int argc, char **argv, int first, sf_cli_filter_fn filter,
                      void *ctx)
{
    filter_run run = { cli, filter, ctx, { 0 } };
    int status = sf_cli_each_image_of(cli, argc, argv, first, filter_image, &run);
    sf_cli_batch_free(&run.out);
    return status;
}
