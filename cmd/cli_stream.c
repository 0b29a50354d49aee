/* Streams in and out of the programs: one image's records held back until
 * it succeeded, the inputs, list files, and the loops over images. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ---- holding back one image's records ---- */

static void batch_push(const sf_cli *cli, sf_cli_batch *b, const sf_record *rec, void *data)
{
    if (b->count == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        sf_record *r = realloc(b->recs, cap * sizeof *r);
        if (!r)
            sf_cli_out_of_memory(cli);
        b->recs = r;
        b->cap = cap;
    }
    sf_record *dst = &b->recs[b->count++];
    *dst = *rec;
    dst->key = strdup(rec->key);
    dst->data = data;
    if (!dst->key)
        sf_cli_out_of_memory(cli);
}

void sf_cli_batch_add(const sf_cli *cli, sf_cli_batch *b, const sf_record *rec)
{
    void *copy = sf_cli_xmalloc(cli, (size_t)rec->data_size);
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
        sf_cli_check_write(cli, sf_stream_write_image(stdout, b->recs, b->count, &err), &err);
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


/* The whole of path ("-": stdin) in *buf (NUL-terminated), or -1 with
 * the reason in *why. */
static int slurp(const sf_cli *cli, const char *path, char **buf, size_t *len, const char **why)
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!fp) {
        *why = strerror(errno);
        return -1;
    }
    size_t cap = 4096;
    *buf = sf_cli_xmalloc(cli, cap);
    *len = 0;
    size_t got;
    errno = 0;
    while ((got = fread(*buf + *len, 1, cap - 1 - *len, fp)) > 0) {
        *len += got;
        if (cap - 1 - *len == 0) {
            char *b = realloc(*buf, 2 * cap);
            if (!b)
                sf_cli_out_of_memory(cli);
            *buf = b;
            cap *= 2;
        }
    }
    int failed = ferror(fp), e = errno;
    if (fp != stdin)
        fclose(fp);
    (*buf)[*len] = '\0';
    if (failed) {
        *why = e ? strerror(e) : "read failed";
        free(*buf);
        return -1;
    }
    return 0;
}

static void push_line(const sf_cli *cli, char ***lines, size_t *n, size_t *cap, const char *s,
                      size_t len)
{
    if (*n == *cap) {
        *cap = *cap < 256 ? 256 : 2 * *cap;
        char **l = realloc(*lines, *cap * sizeof *l);
        if (!l)
            sf_cli_out_of_memory(cli);
        *lines = l;
    }
    char *copy = sf_cli_xmalloc(cli, len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    (*lines)[(*n)++] = copy;
}

/* The lines of buf; NUL bytes end a line's text as they always did. */
static char **split_lines(const sf_cli *cli, const char *buf, size_t len, size_t *n)
{
    /* Not NULL for an empty file: NULL means failure. */
    char **lines = sf_cli_xmalloc(cli, sizeof *lines);
    size_t cap = 1;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len, l = end - at;
        /* Lists written on other systems end lines with "\r\n". */
        while (l > 0 && buf[at + l - 1] == '\r')
            l--;
        push_line(cli, &lines, n, &cap, buf + at, strnlen(buf + at, l));
        at = end + 1;
    }
    return lines;
}

char **sf_cli_read_lines(const sf_cli *cli, const char *path, size_t *n, const char **why)
{
    char *buf;
    size_t len;
    *n = 0;
    if (slurp(cli, path, &buf, &len, why) != 0)
        return NULL;
    char **lines = split_lines(cli, buf, len, n);
    free(buf);
    return lines;
}

char **sf_cli_read_keys(const sf_cli *cli, const char *path, size_t *n, const char **why)
{
    static sf_error err;
    char *buf;
    size_t len;
    *n = 0;
    if (slurp(cli, path, &buf, &len, why) != 0)
        return NULL;
    if (len < SF_STREAM_MAGIC_SIZE || memcmp(buf, SF_STREAM_MAGIC, SF_STREAM_MAGIC_SIZE) != 0) {
        char **lines = split_lines(cli, buf, len, n);
        free(buf);
        return lines;
    }
    /* A stream: the keys of its images, and only if it is whole. */
    FILE *fp = fmemopen(buf, len, "rb");
    sf_stream_reader *r = NULL;
    char **keys = sf_cli_xmalloc(cli, sizeof *keys);
    size_t cap = 1;
    const sf_stream_image *img;
    sf_status st = fp ? sf_stream_reader_create(&r, fp, strcmp(path, "-") ? path : "<stdin>", &err)
                      : sf_error_set(&err, SF_ERR_NOMEM, "%s: %s", path, strerror(errno));
    while (st == SF_OK && (st = sf_stream_read_image(r, &img, &err)) == SF_OK && img)
        push_line(cli, &keys, n, &cap, img->key, img->key_len);
    sf_stream_reader_free(r);
    if (fp)
        fclose(fp);
    free(buf);
    if (st != SF_OK) {
        *why = err.message;
        sf_cli_free_lines(keys, *n);
        *n = 0;
        return NULL;
    }
    return keys;
}

void sf_cli_free_lines(char **lines, size_t n)
{
    for (size_t i = 0; lines && i < n; i++)
        free(lines[i]);
    free(lines);
}

/* Images and bytes of the inputs read before the one being read, for the
 * progress report of the loops below. */
static uint64_t done_images, done_bytes;

/* Counting ahead reads one header per record: past this many records in
 * a file, or this many seconds in all, the report goes by bytes instead. */
#define COUNT_AHEAD_RECORDS ((uint64_t)1 << 20)
#define COUNT_AHEAD_SECONDS 1.0

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
            sf_cli_progress_update(done_images + sf_stream_reader_images(reader),
                                   done_bytes + sf_stream_reader_offset(reader));
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
        sf_cli_progress_update(done_images + sf_stream_reader_images(reader),
                               done_bytes + sf_stream_reader_offset(reader));
        if (s == SF_EXIT_FATAL || ferror(stdout))
            break;
    }
    sf_cli_info(cli, "%s: %llu records, %llu images, %llu bytes", name,
                (unsigned long long)sf_stream_reader_records(reader),
                (unsigned long long)sf_stream_reader_images(reader),
                (unsigned long long)sf_stream_reader_offset(reader));
    done_images += sf_stream_reader_images(reader);
    done_bytes += sf_stream_reader_offset(reader);
    sf_stream_reader_free(reader);
    return status;
}

static int each_path(sf_cli *cli, const char *path, sf_cli_image_fn fn, void *ctx)
{
    const char *name;
    FILE *fp = sf_cli_open_input(cli, path, &name);
    if (!fp)
        return cli->all_inputs ? SF_EXIT_FATAL : SF_EXIT_FAILURE;
    int status = each_image(cli, fp, name, fn, ctx);
    sf_cli_close_input(fp);
    return status;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Begin the report of a loop over the streams paths[0..n) ("-": stdin), or
 * stdin alone when n is 0: images and bytes to read, as far as they can
 * be known ahead (regular files), and whether a pipe brings them. */
static void begin_progress(sf_cli *cli, char **paths, int n)
{
    int pipe = 0, known = 1;
    uint64_t images = 0, bytes = 0;
    const int count = n ? n : 1;
    for (int i = 0; i < count; i++) {
        int is_stdin = n == 0 || strcmp(paths[i], "-") == 0;
        struct stat sb;
        off_t at = 0;
        if (is_stdin ? fstat(STDIN_FILENO, &sb) != 0 : stat(paths[i], &sb) != 0) {
            known = 0; /* said when the loop gets there */
            continue;
        }
        pipe |= S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode);
        if (is_stdin && S_ISREG(sb.st_mode))
            at = lseek(STDIN_FILENO, 0, SEEK_CUR);
        if (S_ISREG(sb.st_mode) && at >= 0)
            bytes += (uint64_t)(sb.st_size > at ? sb.st_size - at : 0);
        else
            known = 0;
    }
    if (!sf_cli_progress_wanted(cli, pipe))
        return;
    /* Images, when every input can be counted ahead in time. */
    int images_known = known;
    double t0 = seconds();
    for (int i = 0; i < count && images_known; i++) {
        int is_stdin = n == 0 || strcmp(paths[i], "-") == 0;
        int fd = is_stdin ? STDIN_FILENO : open(paths[i], O_RDONLY | O_CLOEXEC);
        uint64_t im = 0;
        sf_error err;
        if (fd < 0 || seconds() - t0 > COUNT_AHEAD_SECONDS ||
            sf_stream_count_images(fd, COUNT_AHEAD_RECORDS, &im, NULL, &err) != SF_OK)
            images_known = 0;
        images += im;
        if (fd >= 0 && !is_stdin)
            close(fd);
    }
    done_images = done_bytes = 0;
    sf_cli_progress_begin(cli, pipe, cli->progress_label, "images", images_known ? images : 0,
                          known ? bytes : 0);
}

int sf_cli_each_image(sf_cli *cli, const char *path, sf_cli_image_fn fn, void *ctx)
{
    char *paths[1] = { (char *)path };
    begin_progress(cli, paths, 1);
    int status = each_path(cli, path, fn, ctx);
    sf_cli_progress_end();
    return status;
}

int sf_cli_each_image_of(sf_cli *cli, int argc, char **argv, int first, sf_cli_image_fn fn,
                         void *ctx)
{
    int status = SF_EXIT_OK;
    if (first >= argc) {
        if (isatty(STDIN_FILENO))
            sf_cli_usage_error(cli, "no input: name stream files or pipe a stream in");
        begin_progress(cli, NULL, 0);
        status = each_image(cli, stdin, "<stdin>", fn, ctx);
        sf_cli_progress_end();
        return status;
    }
    begin_progress(cli, argv + first, argc - first);
    for (int i = first; i < argc; i++) {
        int st = each_path(cli, argv[i], fn, ctx);
        if (st > status)
            status = st;
        if (ferror(stdout))
            break;
    }
    sf_cli_progress_end();
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

/* ---- hit streams ---- */

typedef struct hits_reader {
    sf_cli *cli;
    sf_hit_set *set;
} hits_reader;

static int read_hits(void *vctx, const sf_stream_image *img, const char *name)
{
    hits_reader *r = vctx;
    const sf_record *keys = NULL;
    int lists = 0;
    sf_error err;
    for (size_t i = 0; i < img->count; i++) {
        const sf_record *rec = &img->recs[i];
        if (rec->kind == SF_KIND_HIT_KEYS) {
            keys = rec;
            continue;
        }
        if (rec->kind != SF_KIND_HIT_SCORES)
            continue;
        /* sf_stream_read_image checked that keys come before their scores. */
        if (sf_hit_set_add_records(r->set, rec->key, keys, rec, &err) != SF_OK) {
            if (err.status == SF_ERR_NOMEM)
                sf_cli_out_of_memory(r->cli);
            sf_cli_error(r->cli, "%s: %s", name, err.message);
            return SF_EXIT_FAILURE;
        }
        lists++;
    }
    if (lists == 0) {
        char shown[256];
        sf_cli_error(r->cli, "%s: %s: no hit records: not the output of sf-match", name,
                     sf_text_printable(img->key, shown, sizeof shown));
        return SF_EXIT_FATAL;
    }
    return SF_EXIT_OK;
}

int sf_cli_read_hits(sf_cli *cli, int argc, char **argv, int first, sf_hit_set *set)
{
    hits_reader r = { cli, set };
    return sf_cli_each_image_of(cli, argc, argv, first, read_hits, &r);
}
