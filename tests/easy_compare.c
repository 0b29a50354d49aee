/* easy_compare [-c PRESET] [-b BACKEND] MODEL STREAM: for every image of
 * STREAM (the output of sf-decode | sf-extract | sf-lit --global, keys
 * being the image files' paths), compute the image's features with
 * sf_extractor_run_file and with sf_extractor_run_buffer and compare them
 * with the stream's records bit for bit, and made_with with the image's
 * provenance.  Prints "same KEY COUNT" per image, a line per difference
 * on stderr; exit 0 when every image is the same, 1 otherwise, 2 on a
 * usage error, 3 when the model or the stream does not open. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sf.h"
#include "sf_internal.h"

static int same_record(const char *key, const char *how, const sf_stream_image *img, int kind,
                       const void *data, size_t count, size_t elem)
{
    const sf_record *rec = sf_stream_image_find(img, kind);
    if (!rec) {
        fprintf(stderr, "%s: %s: the stream has no %s record\n", key, how, sf_kind_name(kind));
        return 0;
    }
    if (rec->data_size != count * elem) {
        fprintf(stderr, "%s: %s: %s: %llu bytes in the stream, %zu from the API\n", key, how,
                sf_kind_name(kind), (unsigned long long)rec->data_size, count * elem);
        return 0;
    }
    if (count && memcmp(rec->data, data, count * elem) != 0) {
        fprintf(stderr, "%s: %s: %s differs\n", key, how, sf_kind_name(kind));
        return 0;
    }
    return 1;
}

static int same_features(const sf_stream_image *img, const char *how, const sf_features *f)
{
    const char *key = img->key;
    int ok = same_record(key, how, img, SF_KIND_LOCAL_DESC, f->desc, f->count * f->dim,
                         sizeof(float));
    ok &= same_record(key, how, img, SF_KIND_LOCAL_STRENGTH, f->strength, f->count,
                      sizeof(float));
    ok &= same_record(key, how, img, SF_KIND_LOCAL_SCALE, f->scale, f->count, sizeof(float));
    ok &= same_record(key, how, img, SF_KIND_LOCAL_INDEX, f->index, f->count, sizeof(int32_t));
    ok &= same_record(key, how, img, SF_KIND_GLOBAL, f->global, f->dim, sizeof(float));
    const sf_record *desc = sf_stream_image_find(img, SF_KIND_LOCAL_DESC);
    if (desc && desc->shape[1] != f->dim) {
        fprintf(stderr, "%s: %s: dimension %llu in the stream, %zu from the API\n", key, how,
                (unsigned long long)desc->shape[1], f->dim);
        ok = 0;
    }
    if (!img->has_provenance || sf_provenance_features(&img->provenance) != f->made_with) {
        fprintf(stderr, "%s: %s: made_with %016llx is not the stream's provenance\n", key, how,
                (unsigned long long)f->made_with);
        ok = 0;
    }
    return ok;
}

static int compare_image(sf_extractor *x, const sf_stream_image *img)
{
    sf_features f;
    sf_error err;
    int ok = 1;
    if (sf_extractor_run_file(x, img->key, &f, &err) != SF_OK) {
        fprintf(stderr, "run_file: %s\n", err.message);
        return 0;
    }
    ok &= same_features(img, "file", &f);
    size_t count = f.count;
    sf_features_release(&f);
    void *data;
    size_t size;
    if (sf_read_file(img->key, 0, 1, &data, &size, &err) != SF_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 0;
    }
    sf_status st = sf_extractor_run_buffer(x, data, size, img->key, &f, &err);
    free(data);
    if (st != SF_OK) {
        fprintf(stderr, "run_buffer: %s\n", err.message);
        return 0;
    }
    ok &= same_features(img, "buffer", &f);
    sf_features_release(&f);
    if (ok)
        printf("same %s %zu\n", img->key, count);
    return ok;
}

int main(int argc, char **argv)
{
    sf_extractor_options o;
    sf_extractor_options_init(&o);
    int c;
    while ((c = getopt(argc, argv, "b:c:")) != -1) {
        if (c == 'b')
            o.backend = optarg;
        else if (c == 'c')
            o.preset = optarg;
        else
            return 2;
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: easy_compare [-c PRESET] [-b BACKEND] MODEL STREAM\n");
        return 2;
    }
    o.model = argv[optind];
    sf_extractor *x;
    sf_error err;
    if (sf_extractor_open(&x, &o, &err) != SF_OK) {
        fprintf(stderr, "easy_compare: %s\n", err.message);
        return 3;
    }
    FILE *fp = fopen(argv[optind + 1], "rb");
    sf_stream_reader *r = NULL;
    if (!fp || sf_stream_reader_create(&r, fp, argv[optind + 1], &err) != SF_OK) {
        fprintf(stderr, "easy_compare: %s: cannot read\n", argv[optind + 1]);
        return 3;
    }
    const sf_stream_image *img;
    int failed = 0;
    size_t n = 0;
    sf_status st;
    while ((st = sf_stream_read_image(r, &img, &err)) == SF_OK && img) {
        failed |= !compare_image(x, img);
        n++;
    }
    if (st != SF_OK || n == 0) {
        fprintf(stderr, "easy_compare: %s\n", st != SF_OK ? err.message : "no images");
        failed = 1;
    }
    sf_stream_reader_free(r);
    fclose(fp);
    sf_extractor_free(x);
    return failed;
}
