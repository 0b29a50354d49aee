#include "config.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* text with control characters (C0, DEL, and C1 as UTF-8) as \n, \t,
 * \r or \xHH, into a buffer of 4 strlen(text) + 1 bytes.  Backslashes
 * stay: the library's messages have escaped theirs already. */
static char *one_line(const char *text)
{
    size_t len = strlen(text);
    char *out = malloc(4 * len + 1), *w = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
            w += sprintf(w, "\\x%02X", p[1]);
            p++;
        } else if (*p == '\n' || *p == '\t' || *p == '\r') {
            *w++ = '\\';
            *w++ = *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r';
        } else if (*p < 0x20 || *p == 0x7F) {
            w += sprintf(w, "\\x%02X", *p);
        } else {
            *w++ = (char)*p;
        }
    }
    *w = '\0';
    return out;
}

/* One line whatever the message holds: keys and names come from files
 * and may carry newlines or terminal control bytes. */
static void vmessage(const sf_cli *cli, const char *fmt, va_list ap)
{
    char small[1024], *text = small;
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n >= (int)sizeof small && (text = malloc((size_t)n + 1)) != NULL)
        vsnprintf(text, (size_t)n + 1, fmt, again);
    va_end(again);
    if (!text)
        text = small; /* out of memory: the message cut short */
    char *shown = one_line(text);
    sf_cli_progress_hide();
    fprintf(stderr, "%s: %s\n", cli->prog, shown ? shown : text);
    sf_cli_progress_show();
    free(shown);
    if (text != small)
        free(text);
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

/* A signal that ends the program first removes what libsf was writing,
 * then ends it as the signal would have. */
static void on_fatal_signal(int sig)
{
    sf_remove_temp_files();
    sf_cli_progress_hide(); /* write(2) only: safe here */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void remove_temp_files_on_signals(void)
{
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        /* A signal the caller ignores (nohup) stays ignored. */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

void sf_cli_init(sf_cli *cli, const char *prog, int argc, char **argv)
{
    remove_temp_files_on_signals();
    memset(cli, 0, sizeof *cli);
    cli->prog = prog;
    cli->verbosity = 1;
    cli->progress_interval = -1;
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
           "  -v, --verbose        print progress details\n");
    if (cli->reports_progress)
        printf("      --progress[=S]   report progress even off a terminal: a line every S\n"
               "                       seconds (default 10; on a terminal, redrawn in place)\n"
               "      --no-progress    never report progress\n");
    printf("  -h, --help           show this help and exit\n"
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
    { "progress", optional_argument, NULL, SF_OPT_PROGRESS },
    { "no-progress", no_argument, NULL, SF_OPT_NO_PROGRESS },
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
        case SF_OPT_PROGRESS:
            cli->progress_mode = SF_CLI_PROGRESS_ON;
            if (optarg) {
                char *end;
                errno = 0;
                double s = strtod(optarg, &end);
                if (errno || end == optarg || *end || !(s >= 0 && s <= 86400))
                    sf_cli_usage_error(cli, "--progress=S: expected seconds from 0 to 86400, "
                                       "got '%s'", optarg);
                cli->progress_interval = s;
            }
            break;
        case SF_OPT_NO_PROGRESS:
            cli->progress_mode = SF_CLI_PROGRESS_OFF;
            break;
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

void sf_cli_out_of_memory(const sf_cli *cli)
{
    sf_cli_error(cli, "out of memory");
    exit(SF_EXIT_FATAL);
}

void *sf_cli_xmalloc(const sf_cli *cli, size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        sf_cli_out_of_memory(cli);
    return p;
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

void sf_cli_check_write(const sf_cli *cli, sf_status st, const sf_error *err)
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
    sf_cli_check_write(cli, sf_stream_write_record(stdout, rec, &err), &err);
    cli->images_written += (rec->flags & SF_RECORD_LAST) != 0;
}

int sf_cli_finish(sf_cli *cli, int status)
{
    /* A fatal failure leaves the output without its end, so that whatever
     * reads it knows it is incomplete. */
    if (cli->writes_stream && status != SF_EXIT_FATAL && !ferror(stdout)) {
        sf_error err;
        sf_cli_check_write(cli, sf_stream_write_end(stdout, cli->prog, cli->images_written, &err),
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
