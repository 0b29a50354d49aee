/* embed: search an sf index with photos from a program of your own.
 *
 *   cc -o embed embed.c $(pkg-config --cflags --libs sf)
 *   ./embed [-b BACKEND] [-c PRESET] [-k TOP] [-m] MODEL INDEX PHOTO...
 *
 * For each photo, its super-features (sf_extractor_run_file, or with -m
 * sf_extractor_run_buffer on the file's bytes), then the TOP best images
 * of the index (sf_finder_query), printed as sf-rank prints them:
 * photo, rank, image, score, tab-separated.  The same lines as
 *
 *   sf-decode PHOTO... | sf-extract -m MODEL | sf-lit -m MODEL |
 *       sf-match -i INDEX -k TOP | sf-rank -k TOP
 *
 * A photo that fails is reported on stderr and the others go on; the exit
 * status is then 1 (2: usage, 3: the model or the index did not open). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sf.h>

/* The whole of a file, as a program holding photos in memory has them. */
static void *read_whole(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    if (ferror(fp)) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *size = n;
    return buf;
}

static int search_one(sf_extractor *x, sf_finder *f, const char *photo, int from_memory,
                      size_t top)
{
    sf_features feat;
    sf_error err;
    sf_status st;
    if (from_memory) {
        size_t size;
        void *data = read_whole(photo, &size);
        if (!data) {
            fprintf(stderr, "embed: %s: cannot read\n", photo);
            return 1;
        }
        st = sf_extractor_run_buffer(x, data, size, photo, &feat, &err);
        free(data);
    } else {
        st = sf_extractor_run_file(x, photo, &feat, &err);
    }
    if (st != SF_OK) {
        fprintf(stderr, "embed: %s\n", err.message);
        return 1;
    }
    sf_hit_list hits;
    sf_hit_list_init(&hits);
    st = sf_finder_query(f, &feat, top, &hits, &err);
    if (st == SF_OK)
        for (size_t i = 0; i < hits.count; i++)
            printf("%s\t%zu\t%s\t%.9g\n", photo, i + 1, hits.keys[i], hits.scores[i]);
    else
        fprintf(stderr, "embed: %s: %s\n", photo, err.message);
    sf_hit_list_release(&hits);
    sf_features_release(&feat);
    return st != SF_OK;
}

int main(int argc, char **argv)
{
    sf_extractor_options xo;
    sf_extractor_options_init(&xo);
    size_t top = 100;
    int from_memory = 0, c;
    while ((c = getopt(argc, argv, "b:c:k:m")) != -1) {
        switch (c) {
        case 'b': xo.backend = optarg; break;
        case 'c': xo.preset = optarg; break;
        case 'k': top = strtoul(optarg, NULL, 10); break;
        case 'm': from_memory = 1; break;
        default: return 2;
        }
    }
    if (argc - optind < 3) {
        fprintf(stderr, "usage: embed [-b BACKEND] [-c PRESET] [-k TOP] [-m] MODEL INDEX "
                        "PHOTO...\n");
        return 2;
    }
    xo.model = argv[optind];
    sf_extractor *x = NULL;
    sf_finder *f = NULL;
    sf_error err;
    if (sf_extractor_open(&x, &xo, &err) != SF_OK ||
        sf_finder_open(&f, argv[optind + 1], NULL, &err) != SF_OK) {
        fprintf(stderr, "embed: %s\n", err.message);
        sf_extractor_free(x);
        return 3;
    }
    int failed = 0;
    for (int i = optind + 2; i < argc; i++)
        failed |= search_one(x, f, argv[i], from_memory, top);
    sf_finder_free(f);
    sf_extractor_free(x);
    if (fclose(stdout) != 0) {
        perror("embed: stdout");
        return 3;
    }
    return failed;
}
