/* sf-decode: image files in, feature stream out (normalised pyramid). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

enum {
    OPT_SCALES = SF_OPT_FIRST_PROGRAM,
    OPT_CROP,
    OPT_AUTOROTATE,
    OPT_NO_AUTOROTATE,
    OPT_MAX_PIXELS,
    OPT_MAX_BYTES,
    OPT_MAX_MEMORY,
    OPT_PIXELS,
};

static const struct option longopts[] = {
    { "size", required_argument, NULL, 's' },
    { "model", required_argument, NULL, 'm' },
    { "directory", required_argument, NULL, 'C' },
    { "scales", required_argument, NULL, OPT_SCALES },
    { "crop", required_argument, NULL, OPT_CROP },
    { "autorotate", no_argument, NULL, OPT_AUTOROTATE },
    { "no-autorotate", no_argument, NULL, OPT_NO_AUTOROTATE },
    { "max-pixels", required_argument, NULL, OPT_MAX_PIXELS },
    { "max-bytes", required_argument, NULL, OPT_MAX_BYTES },
    { "max-memory", required_argument, NULL, OPT_MAX_MEMORY },
    { "pixels", no_argument, NULL, OPT_PIXELS },
    { "null", no_argument, NULL, '0' },
    { NULL, 0, NULL, 0 },
};

static const char options_help[] =
    "  -s, --size N         shrink the long side to at most N pixels (default: the\n"
    "                       model's image size, else 1024)\n"
    "  -m, --model FILE     take the defaults (image size) from this checkpoint\n"
    "  -C, --directory DIR  read the image files from DIR, once the settings and the\n"
    "                       model are read; keys stay the names given\n"
    "      --scales LIST    pyramid scales, comma-separated (default 2,1.414,1,0.707,0.5,0.353,0.25)\n"
    "      --crop X1,Y1,X2,Y2  crop every image to this query box first\n"
    "      --no-autorotate  ignore EXIF orientation, as the reference does\n"
    "      --autorotate     turn photos upright from EXIF orientation (default)\n"
    "      --max-pixels N   refuse images with more than N pixels (0: no limit)\n"
    "      --max-bytes N    refuse files longer than N bytes (default 512 MiB; 0: no limit)\n"
    "      --max-memory N   refuse images needing more than N bytes of memory to decode\n"
    "                       with their pyramid (default 2 GiB; 0: no limit)\n"
    "      --pixels         also write the resized 8-bit RGB image\n"
    "  -0, --null           file names on stdin are NUL-separated (find -print0)\n";

typedef struct decoder {
    sf_cli *cli;
    sf_decode_options options;
    int write_pixels;
    sf_provenance provenance; /* the same for every image */
    sf_pyramid *pyramid;      /* reused between images */
} decoder;

static void emit(decoder *d, const char *key, uint16_t kind, uint8_t dtype, unsigned ndim,
                 const uint64_t *shape, const void *data, uint32_t index, double scale, int last)
{
    sf_record rec;
    sf_record_make(&rec, key, kind, dtype, ndim, shape, data);
    rec.flags = last ? SF_RECORD_LAST : 0;
    rec.index = index;
    rec.scale = scale;
    sf_cli_write_record(d->cli, &rec);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A level whose record is larger than any stream reader takes
 * (SF_STREAM_DEFAULT_MAX_PAYLOAD) would make the stream unreadable: it is
 * the image's failure, found before its first record.  Returns 0 or -1. */
static int check_record_sizes(decoder *d, const char *path, int height, int width)
{
    const sf_config *cfg = &d->cli->config;
    for (int i = 0; i < cfg->n_scales; i++) {
        /* In double, as any size may be asked; truncation is floor here. */
        double lh = (double)(uint64_t)((double)height * cfg->scales[i]);
        double lw = (double)(uint64_t)((double)width * cfg->scales[i]);
        double bytes = 3 * sizeof(float) * lh * lw;
        if (bytes > (double)SF_STREAM_DEFAULT_MAX_PAYLOAD) {
            sf_cli_error(d->cli, "%s: scale %g makes a %.0fx%.0f level of %.0f MiB, more than "
                                 "a stream record holds (%llu MiB)",
                         path, cfg->scales[i], lw, lh, bytes / 1048576,
                         (unsigned long long)(SF_STREAM_DEFAULT_MAX_PAYLOAD >> 20));
            return -1;
        }
    }
    return 0;
}

/* Decode one file and write its records; returns SF_EXIT_OK, SF_EXIT_FAILURE
 * (this file failed, nothing written) or SF_EXIT_FATAL (the stream holds
 * part of the image: the batch must stop without its end record). */
static int decode_one(decoder *d, const char *path)
{
    const sf_config *cfg = &d->cli->config;
    sf_error err;
    sf_rgb_image img;
    float *tensor = NULL;
    int64_t dummy[2] = { 0, 0 };
    sf_record probe = { .kind = SF_KIND_SOURCE, .dtype = SF_DTYPE_I64, .ndim = 1,
                        .shape = { 2 }, .key = path, .key_len = strlen(path),
                        .data = dummy, .data_size = sizeof dummy };
    /* A key the stream cannot carry is this file's failure, not a crash later. */
    if (sf_record_validate(&probe, &err) != SF_OK) {
        sf_cli_error(d->cli, "%s: cannot be used as a key (%s)", path, err.message);
        return SF_EXIT_FAILURE;
    }
    /* A .npy file is an image already decoded (sf_image_load_npy). */
    /* "-": the image itself on standard input.  Every input is read once,
     * so FIFOs and process substitutions work too. */
    sf_status st;
    if (strcmp(path, "-") == 0)
        st = sf_image_load_fd(STDIN_FILENO, path, &d->options, &img, &err);
    else if (has_suffix(path, ".npy"))
        st = sf_image_load_npy(path, &d->options, &img, &tensor, &err);
    else
        st = sf_image_load_file(path, &d->options, &img, &err);
    int h = img.height, w = img.width;
    /* Everything that can fail for an image fails here, before its first
     * record: the memory limit (from the header, in the loader), the size
     * of every record, every level's size and every buffer the levels need
     * (in the pyramid). */
    if (st != SF_OK)
        sf_cli_error(d->cli, "%s", err.message);
    else if (check_record_sizes(d, path, h, w) != 0)
        st = SF_ERR_TOO_LARGE;
    else {
        if (tensor)
            st = sf_pyramid_set_tensor(d->pyramid, path, tensor, w, h, &err);
        else
            st = sf_pyramid_set_rgb(d->pyramid, path, img.pixels, w, h, &err);
        if (st != SF_OK)
            sf_cli_error(d->cli, "%s", err.message);
    }
    free(tensor);
    if (st != SF_OK) {
        sf_rgb_image_release(&img);
        return SF_EXIT_FAILURE;
    }
    uint64_t fields[SF_PROVENANCE_FIELDS];
    sf_record prov;
    sf_provenance_record(&prov, &d->provenance, path, fields);
    sf_cli_write_record(d->cli, &prov);
    int64_t source[2] = { img.source_width, img.source_height };
    uint64_t shape[3] = { 2 };
    emit(d, path, SF_KIND_SOURCE, SF_DTYPE_I64, 1, shape, source, 0, 1.0, 0);
    if (d->write_pixels && img.pixels) {
        uint64_t pshape[3] = { (uint64_t)h, (uint64_t)w, 3 };
        emit(d, path, SF_KIND_PIXELS, SF_DTYPE_U8, 3, pshape, img.pixels, 0, 1.0, 0);
    }
    sf_rgb_image_release(&img);
    for (int i = 0; i < cfg->n_scales; i++) {
        const float *level;
        int lh, lw;
        /* Cannot fail once the image is set (sf_pyramid_level); were it
         * to, records of this image are already out, and the stream must
         * end without its end record so that readers know it is cut. */
        if (sf_pyramid_level(d->pyramid, i, &level, &lh, &lw, &err) != SF_OK) {
            sf_cli_error(d->cli, "%s", err.message);
            return SF_EXIT_FATAL;
        }
        uint64_t ishape[3] = { 3, (uint64_t)lh, (uint64_t)lw };
        emit(d, path, SF_KIND_IMAGE, SF_DTYPE_F32, 3, ishape, level, (uint32_t)i,
             cfg->scales[i], i == cfg->n_scales - 1);
    }
    sf_pyramid_clear(d->pyramid);
    sf_cli_info(d->cli, "%s: %dx%d, %d scales", path, w, h, cfg->n_scales);
    return SF_EXIT_OK;
}

/* Read the next name from a list on stdin, newline- or NUL-separated. */
static char *next_name(FILE *fp, int delim, char **buf, size_t *cap)
{
    for (;;) {
        ssize_t n = getdelim(buf, cap, delim, fp);
        if (n < 0)
            return NULL;
        if (n > 0 && (*buf)[n - 1] == delim)
            (*buf)[--n] = '\0';
        if (delim == '\n' && n > 0 && (*buf)[n - 1] == '\r')
            (*buf)[--n] = '\0';
        if (n > 0)
            return *buf;
    }
}

/* The names next_name will return from the regular file fd, counted
 * ahead without moving its offset; 0 when fd is not one (a pipe). */
static uint64_t count_names(int fd, int delim)
{
    struct stat sb;
    off_t at;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (at = lseek(fd, 0, SEEK_CUR)) < 0)
        return 0;
    char buf[65536];
    uint64_t n = 0;
    size_t len = 0; /* of the name being read */
    int cr = 0;     /* it ends in '\r' so far */
    ssize_t got;
    while ((got = pread(fd, buf, sizeof buf, at)) > 0) {
        for (ssize_t i = 0; i < got; i++) {
            if (buf[i] != delim) {
                len++;
                cr = buf[i] == '\r';
                continue;
            }
            /* As next_name: one '\r' before a newline is part of the end. */
            n += len > (size_t)(delim == '\n' && cr);
            len = 0;
            cr = 0;
        }
        at += got;
    }
    return n + (len > (size_t)(delim == '\n' && cr));
}

static int parse_crop(const char *text, double box[4])
{
    char *end;
    const char *p = text;
    for (int i = 0; i < 4; i++) {
        errno = 0;
        box[i] = strtod(p, &end);
        if (errno || end == p)
            return -1;
        p = end;
        if (i < 3) {
            if (*p != ',')
                return -1;
            p++;
        }
    }
    return *p == '\0' ? 0 : -1;
}

/* image.size 0 (no preset or flag set it): the model's, when one is
 * named (-m, compute.model), else the built-in 1024.  The model is read
 * only when it is needed. */
static void use_model(sf_cli *cli)
{
    sf_model *model = NULL;
    sf_error err;
    if (cli->config.image_size == 0 && cli->config.model[0] &&
        sf_model_load(&model, cli->config.model, &err) != SF_OK) {
        sf_cli_error(cli, "%s", err.message);
        exit(SF_EXIT_FATAL);
    }
    sf_config_use_model(&cli->config, model ? sf_model_params(model) : NULL);
    if (model)
        sf_cli_info(cli, "image size %d from the model %s", cli->config.image_size,
                    cli->config.model);
    sf_model_free(model);
}

int main(int argc, char **argv)
{
    sf_cli cli;
    decoder d;
    int nul = 0, c;
    const char *directory = NULL;
    sf_cli_init(&cli, "sf-decode", argc, argv);
    cli.reports_progress = 1;
    cli.synopsis = "[OPTION]... [FILE]...";
    cli.summary = "Decode images into a normalised multi-scale feature stream on stdout.\n"
                  "With no FILE, read file names from stdin, one per line.";
    cli.options_help = options_help;
    memset(&d, 0, sizeof d);
    d.cli = &cli;
    while ((c = sf_cli_getopt(&cli, argc, argv, "s:m:C:0", longopts)) != -1) {
        switch (c) {
        case 's': sf_cli_set(&cli, "image.size", optarg); break;
        case 'm': sf_cli_set(&cli, "compute.model", optarg); break;
        case 'C':
            if (!*optarg)
                sf_cli_usage_error(&cli, "--directory needs a directory name");
            directory = optarg;
            break;
        case OPT_SCALES: sf_cli_set(&cli, "image.scales", optarg); break;
        case OPT_CROP:
            if (parse_crop(optarg, d.options.crop))
                sf_cli_usage_error(&cli, "--crop expects X1,Y1,X2,Y2, got '%s'", optarg);
            d.options.has_crop = 1;
            break;
        case OPT_AUTOROTATE: sf_cli_set(&cli, "image.autorotate", "true"); break;
        case OPT_NO_AUTOROTATE: sf_cli_set(&cli, "image.autorotate", "false"); break;
        case OPT_MAX_PIXELS: sf_cli_set(&cli, "image.max_pixels", optarg); break;
        case OPT_MAX_BYTES: sf_cli_set(&cli, "image.max_bytes", optarg); break;
        case OPT_MAX_MEMORY: sf_cli_set(&cli, "image.max_memory", optarg); break;
        case OPT_PIXELS: d.write_pixels = 1; break;
        case '0': nul = 1; break;
        default: sf_cli_usage_error(&cli, "unexpected option");
        }
    }
    use_model(&cli);
    /* After the settings and the model: their paths are the caller's. */
    if (directory && chdir(directory) != 0) {
        sf_cli_error(&cli, "%s: %s", directory, strerror(errno));
        return SF_EXIT_FATAL;
    }
    d.options.size = cli.config.image_size;
    d.options.autorotate = cli.config.autorotate;
    d.options.max_pixels = cli.config.max_pixels;
    d.options.max_bytes = cli.config.max_bytes;
    d.options.max_memory = cli.config.max_memory;
    d.options.scales = cli.config.scales;
    d.options.n_scales = cli.config.n_scales;
    if (optind == argc && isatty(STDIN_FILENO))
        sf_cli_usage_error(&cli, "no input files (name them, or list them on stdin)");
    sf_cli_stream_output(&cli);
    d.provenance.stage = SF_STAGE_DECODE;
    d.provenance.decode = sf_provenance_decode_settings(cli.config.image_size, cli.config.mean,
                                                        cli.config.std, cli.config.scales,
                                                        cli.config.n_scales);
    sf_error err;
    if (sf_image_library_init(&err) != SF_OK ||
        sf_pyramid_create(cli.config.scales, cli.config.n_scales, cli.config.mean,
                          cli.config.std, &d.pyramid, &err) != SF_OK) {
        sf_cli_error(&cli, "%s", err.message);
        return SF_EXIT_FATAL;
    }

    /* sf-decode heads its pipeline: it reports for the stages after it,
     * which wait on it (a pipe holds a fraction of one image). */
    int status = SF_EXIT_OK, st;
    uint64_t done = 0;
    if (optind < argc) {
        sf_cli_progress_begin(&cli, 0, NULL, "images", (uint64_t)(argc - optind), 0);
        for (int i = optind; i < argc && status != SF_EXIT_FATAL; i++) {
            if ((st = decode_one(&d, argv[i])) != SF_EXIT_OK)
                status = st;
            sf_cli_progress_update(++done, 0);
        }
    } else {
        char *buf = NULL;
        size_t cap = 0;
        const char *name;
        if (sf_cli_progress_wanted(&cli, 0))
            sf_cli_progress_begin(&cli, 0, NULL, "images",
                                  count_names(STDIN_FILENO, nul ? '\0' : '\n'), 0);
        while (status != SF_EXIT_FATAL &&
               (name = next_name(stdin, nul ? '\0' : '\n', &buf, &cap)) != NULL) {
            if ((st = decode_one(&d, name)) != SF_EXIT_OK)
                status = st;
            sf_cli_progress_update(++done, 0);
        }
        if (status != SF_EXIT_FATAL && ferror(stdin)) {
            sf_cli_error(&cli, "<stdin>: read failed: %s", strerror(errno));
            status = SF_EXIT_FAILURE;
        }
        free(buf);
    }
    sf_cli_progress_end();
    sf_pyramid_free(d.pyramid);
    return sf_cli_finish(&cli, status);
}
