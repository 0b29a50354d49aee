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
    SF_OPT_BACKEND,
    SF_OPT_BACKEND_PATH,
    SF_OPT_THREADS,
    SF_OPT_PRECISION,
    SF_OPT_ALLOW_MISMATCH,
    SF_OPT_FIRST_PROGRAM = 0x1100 /* programs number their own long-only options from here */
};
enum { SF_OPT_PROGRESS = 0x1080, SF_OPT_NO_PROGRESS };

/* Progress reports: shown on a terminal unless -q (auto), or as asked. */
enum { SF_CLI_PROGRESS_AUTO, SF_CLI_PROGRESS_ON, SF_CLI_PROGRESS_OFF };

typedef struct sf_cli {
    const char *prog;     /* "sf-decode" */
    const char *synopsis; /* "[OPTION]... FILE..." */
    const char *summary;  /* one line: what the program does */
    const char *options_help; /* program options, preformatted lines */
    int verbosity;        /* 0 quiet, 1 normal, 2 verbose */
    sf_config config;     /* defaults, then --config, then flags */
    int allow_mismatch;   /* --allow-mismatch: use input of another model anyway */
    int writes_stream;    /* stdout is a stream: sf_cli_finish ends it */
    int partial_input;    /* streams without their end are accepted */
    int all_inputs;       /* a missing input file is fatal, not one failure */
    uint64_t images_written;
    int reports_progress;     /* the program reports progress: --help lists the options */
    int progress_mode;        /* SF_CLI_PROGRESS_*: --progress, --no-progress */
    double progress_interval; /* --progress=S: seconds between updates; < 0: default */
    const char *progress_label; /* what the stream loops read ("database"); NULL: input */
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

/* sf_cli_getopt for programs whose options may come anywhere among their
 * operands (git style: `sf-index add -C cb.sfcb db.six a.sfs`): returns
 * the next option, or -1 at the end.  The operands met on the way are
 * gathered, in order, into argv[1 .. 1 + *n_operands) (slots getopt has
 * already passed, so nothing is allocated); after "--" everything is an
 * operand.  *n_operands starts at 0. */
int sf_cli_getopt_anywhere(sf_cli *cli, int argc, char **argv, const char *shortopts,
                           const struct option *longopts, int *n_operands);

/* Messages: "prog: text" on stderr, one line each. */
void sf_cli_error(const sf_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sf_cli_warn(const sf_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sf_cli_info(const sf_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the reason, then "Try 'prog --help'." and exit SF_EXIT_USAGE. */
_Noreturn void sf_cli_usage_error(const sf_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Out of memory where a program cannot go on: say so, exit SF_EXIT_FATAL. */
_Noreturn void sf_cli_out_of_memory(const sf_cli *cli);
/* malloc (of at least 1 byte) that ends the program when memory is out. */
void *sf_cli_xmalloc(const sf_cli *cli, size_t size);

/* Apply a config key from a flag; a bad value is a usage error. */
void sf_cli_set(sf_cli *cli, const char *key, const char *value);

/* Parse a whole decimal number in [min, max]; a bad one is a usage error. */
long long sf_cli_parse_int(const sf_cli *cli, const char *option, const char *text,
                           long long min, long long max);

/* Binary output must not go to a terminal: say so and exit SF_EXIT_USAGE. */
void sf_cli_refuse_terminal_output(const sf_cli *cli, FILE *fp);
/* The program writes a feature stream to stdout: refuse a terminal, and
 * have sf_cli_finish write the end record unless the program failed
 * fatally (its output then says it is incomplete). */
void sf_cli_stream_output(sf_cli *cli);

/* The outcome st of a write to stdout: a vanished reader ends the program
 * quietly the way SIGPIPE would, any other failure is fatal. */
void sf_cli_check_write(const sf_cli *cli, sf_status st, const sf_error *err);

/* Write one record to stdout; a vanished reader ends the program quietly the
 * way SIGPIPE would, any other failure is fatal. */
void sf_cli_write_record(sf_cli *cli, const sf_record *rec);

/* End the stream output (see sf_cli_stream_output), flush and close stdout;
 * on failure report it and return SF_EXIT_FATAL, else return status
 * unchanged.  Call as the last thing in main. */
int sf_cli_finish(sf_cli *cli, int status);

/* --allow-mismatch, for the programs that check provenance. */
#define SF_CLI_MISMATCH_LONGOPT { "allow-mismatch", no_argument, NULL, SF_OPT_ALLOW_MISMATCH }
#define SF_CLI_MISMATCH_HELP                                                 \
    "      --allow-mismatch use input made with another model or settings anyway\n"
/* The outcome of a provenance check (st, err) for an image of stream
 * `name`: 0 to go on (it passed, or --allow-mismatch: then a warning, once
 * per run), 1 when it is refused (reported). */
int sf_cli_provenance(sf_cli *cli, const char *name, sf_status st, const sf_error *err);

/* ---- programs that run the network (sf-extract, sf-lit) ---- */

#include "sf_model.h"
#include "sf_network.h"

/* Their common options, to put in a program's option table. */
#define SF_CLI_NETWORK_LONGOPTS                                              \
    { "model", required_argument, NULL, 'm' },                             \
    { "backend", required_argument, NULL, SF_OPT_BACKEND },                \
    { "backend-path", required_argument, NULL, SF_OPT_BACKEND_PATH },      \
    { "threads", required_argument, NULL, SF_OPT_THREADS },                \
    { "precision", required_argument, NULL, SF_OPT_PRECISION }
#define SF_CLI_NETWORK_SHORTOPTS "m:"
#define SF_CLI_NETWORK_HELP                                                  \
    "  -m, --model FILE     FIRe checkpoint: fire.pth or sf-model's native format\n" \
    "      --backend NAME   compute backend (default: $SF_BACKEND, else the best);\n" \
    "                       'list' shows the installed ones\n"                  \
    "      --backend-path DIRS  look for backends here first (colon-separated)\n" \
    "      --threads N      compute threads (default: all cores)\n"             \
    "      --precision P    f32 (the default) or bf16 (onednn, AVX512-BF16)\n"

typedef struct sf_cli_network {
    const char *backend_name;  /* NULL: $SF_BACKEND, then compute.backend */
    const char *backend_path;
    int precision;
    sf_model *model;
    sf_backend *backend;
    sf_network *net;
} sf_cli_network;

/* oneDNN's OpenMP threads spin while they wait; two sf programs sharing the
 * cores of a pipeline (sf-extract | sf-lit) then slow each other down many
 * times over.  Unless the user chose a policy, restart the program once with
 * OMP_WAIT_POLICY=PASSIVE: libgomp reads it when it is loaded, before main.
 * Call first thing in main. */
void sf_cli_prefer_passive_threads(char **argv);

/* Handle one of the network options; returns 1 if opt was one of them. */
int sf_cli_network_option(sf_cli *cli, sf_cli_network *nw, int opt, const char *arg);
/* Load the model and the backend and bind them; exits with a message on
 * failure.  `--backend list` prints the installed backends and exits 0. */
void sf_cli_network_open(sf_cli *cli, sf_cli_network *nw);
void sf_cli_network_close(sf_cli_network *nw);

/* ---- holding back one image's records ---- */

/* Records of the image being processed, owned copies, written out only
 * once the whole image succeeded so that a failure leaves no half image in
 * the output. */
typedef struct sf_cli_batch {
    sf_record *recs;
    size_t count, cap;
} sf_cli_batch;

/* Copy rec (key and payload) into the batch; exits on out of memory. */
void sf_cli_batch_add(const sf_cli *cli, sf_cli_batch *b, const sf_record *rec);
/* Add a record whose payload the batch takes over (malloc'd). */
void sf_cli_batch_add_owned(const sf_cli *cli, sf_cli_batch *b, const sf_record *rec, void *data);
/* The image's provenance record, first in the batch. */
void sf_cli_batch_add_provenance(const sf_cli *cli, sf_cli_batch *b, const char *key,
                                 const sf_provenance *p);
/* Write every record, the last one flagged as the image's last; then clear. */
void sf_cli_batch_flush(sf_cli *cli, sf_cli_batch *b);
void sf_cli_batch_clear(sf_cli_batch *b);
void sf_cli_batch_free(sf_cli_batch *b);

/* Open one input of a stream filter ("-" is stdin); on failure report it
 * ("prog: FILE: reason") and return NULL.  *name is what messages call it. */
FILE *sf_cli_open_input(const sf_cli *cli, const char *path, const char **name);
void sf_cli_close_input(FILE *fp);

/* The lines of a list file ("-": standard input) without their line ends
 * ("\n", "\r\n"), empty ones kept, in *n; free them with
 * sf_cli_free_lines.  NULL when the file cannot be opened or read, with
 * the reason in *why; out of memory exits. */
char **sf_cli_read_lines(const sf_cli *cli, const char *path, size_t *n, const char **why);
/* The keys a file names: the lines of a list, or, when the file is a
 * stream, the keys of its images, read whole (a stream without its end,
 * or an invalid image in it, is a failure with the reason in *why). */
char **sf_cli_read_keys(const sf_cli *cli, const char *path, size_t *n, const char **why);
void sf_cli_free_lines(char **lines, size_t n);

/* ---- the loops over the images of streams ---- */

/* Called for each valid image of a stream named name: returns SF_EXIT_OK,
 * SF_EXIT_FAILURE (this image failed and was reported; go on) or
 * SF_EXIT_FATAL (stop reading). */
typedef int (*sf_cli_image_fn)(void *ctx, const sf_stream_image *img, const char *name);

/* Every image of the stream at path ("-": stdin).  An invalid image is
 * reported and counts as a failure; an unreadable, corrupt or incomplete
 * stream (one without its end) is reported and fatal.  Returns the worst
 * status.  A consumer that commits something commits only after SF_EXIT_OK
 * or SF_EXIT_FAILURE. */
int sf_cli_each_image(sf_cli *cli, const char *path, sf_cli_image_fn fn, void *ctx);
/* The same over the operands argv[first..argc), or stdin when there are
 * none (not a terminal).  Both report progress over the images read, in
 * programs that set reports_progress (see sf_cli_progress_begin), labelled
 * with progress_label. */
int sf_cli_each_image_of(sf_cli *cli, int argc, char **argv, int first, sf_cli_image_fn fn,
                         void *ctx);

/* The hit lists of sf-match output in the operands (as
 * sf_cli_each_image_of reads them) joined into set, by query.  An image
 * without hit records means the input is not sf-match output: reported
 * and fatal, so that nothing is made from the rest. */
int sf_cli_read_hits(sf_cli *cli, int argc, char **argv, int first, sf_hit_set *set);

/* A filter turns each image into output records: it adds what it produces
 * to out and returns 0, or reports the problem and returns 1: that image
 * then produces nothing, the others go on. */
typedef int (*sf_cli_filter_fn)(void *ctx, const sf_stream_image *img, const char *name,
                                sf_cli_batch *out);

/* Run the filter over the operands argv[first..argc) or stdin, writing to
 * stdout.  Returns the exit status: 0, 1 (some images or files failed) or
 * 3 (a corrupt or incomplete stream). */
int sf_cli_run_filter(sf_cli *cli, int argc, char **argv, int first, sf_cli_filter_fn filter,
                      void *ctx);

/* ---- progress on long work (cmd/progress.c) ---- */

/* Will a report be shown: --progress, or else on a terminal (stderr),
 * without -q or --no-progress, and unless the input comes through a pipe
 * (then the program at the head of the pipeline reports). */
int sf_cli_progress_wanted(const sf_cli *cli, int input_is_pipe);
/* Begin a report (ending one under way) when it is wanted: "prog: [label ]
 * done/total unit (p%), rate, time left".  total, bytes_total: 0 when
 * unknown; then the share done comes from bytes, or is not shown.  The
 * clock starts here.  Draws the first line at once.  unit NULL: a step
 * that counts nothing ("prog: label"), shown until the end. */
void sf_cli_progress_begin(const sf_cli *cli, int input_is_pipe, const char *label,
                           const char *unit, uint64_t total, uint64_t bytes_total);
/* done units and bytes_done bytes so far; redrawn at most every interval. */
void sf_cli_progress_update(uint64_t done, uint64_t bytes_done);
/* Clear the line from the terminal, or write the closing line of a log. */
void sf_cli_progress_end(void);
/* Around a message printed while a report is under way. */
void sf_cli_progress_hide(void);
void sf_cli_progress_show(void);

#endif
