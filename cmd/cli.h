/* The command-line skeleton every sf program shares: common options,
 * messages prefixed with the program name, exit codes, output checks. */
#ifndef SF_CLI_H
#define SF_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "sf.h"

/* Exit codes: documented in every man page, never renumbered. */
enum {
    SF_EXIT_OK = 0,      /* everything succeeded */
    SF_EXIT_FAILURE = 1, /* some inputs failed; the others were processed */
    SF_EXIT_USAGE = 2,   /* bad command line or configuration */
    SF_EXIT_FATAL = 3    /* could not go on: unreadable stream, write error, no memory */
};

/* Identifiers of the common long options, above any char value. */
enum {
    SF_OPT_CONFIG = 0x1000,
    SF_OPT_SET,
    SF_OPT_FIRST_PROGRAM /* programs number their own long-only options from here */
};

typedef struct sf_cli {
    const char *prog;     /* "sf-decode" */
    const char *synopsis; /* "[OPTION]... FILE..." */
    const char *summary;  /* one line: what the program does */
    const char *options_help; /* program options, preformatted lines */
    int verbosity;        /* 0 quiet, 1 normal, 2 verbose */
    sf_config config;     /* defaults, then --config, then flags */
} sf_cli;

/* Start a program: sets the name used in messages, the config defaults, and
 * loads every --config FILE found on the command line so later flags override
 * it.  A bad config exits with SF_EXIT_USAGE. */
void sf_cli_init(sf_cli *cli, const char *prog, int argc, char **argv);

/* getopt_long over the program's options plus the common ones (-h, -V, -q,
 * -v, -c/--config, --set KEY=VALUE), which it handles itself.  Returns the
 * next program option as getopt_long does, or -1 at the end; optind is left
 * at the first operand.  Usage errors exit with SF_EXIT_USAGE. */
int sf_cli_getopt(sf_cli *cli, int argc, char **argv, const char *shortopts,
                  const struct option *longopts);

/* Messages: "prog: text" on stderr, one line each. */
void sf_cli_error(const sf_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sf_cli_warn(const sf_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sf_cli_info(const sf_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the reason, then "Try 'prog --help'." and exit SF_EXIT_USAGE. */
_Noreturn void sf_cli_usage_error(const sf_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Apply a config key from a flag; a bad value is a usage error. */
void sf_cli_set(sf_cli *cli, const char *key, const char *value);

/* Parse a whole decimal number in [min, max]; a bad one is a usage error. */
long long sf_cli_parse_int(const sf_cli *cli, const char *option, const char *text,
                           long long min, long long max);

/* Binary output must not go to a terminal: say so and exit SF_EXIT_USAGE. */
void sf_cli_refuse_terminal_output(const sf_cli *cli, FILE *fp);

/* Write one record to stdout; a vanished reader ends the program quietly the
 * way SIGPIPE would, any other failure is fatal. */
void sf_cli_write_record(const sf_cli *cli, const sf_record *rec);

/* Flush and close stdout; on failure report it and return SF_EXIT_FATAL,
 * else return status unchanged.  Call as the last thing in main. */
int sf_cli_finish(const sf_cli *cli, int status);

#endif
