/* easy_compare [-c PRESET] [-b BACKEND] [-j THREADS] [-q INDEX -H HITS]
 *              MODEL STREAM
 * For every image of STREAM (the output of sf-decode | sf-extract |
 * sf-lit --global, keys being the image files' paths), compute the
 * image's features with sf_extractor_run_file and with
 * sf_extractor_run_buffer and compare them with the stream's records bit
 * for bit, and made_with with the image's provenance.  Prints "same KEY
 * COUNT" per image, a line per difference on stderr; exit 0 when every
 * image is the same, 1 otherwise, 2 on a usage error, 3 when the model or
 * the stream does not open.
 *   -j  THREADS threads do it at the same time, each with an extractor of
 *       its own (sf_easy.h says they may).
 *   -q  also query INDEX with each image's features (sf_finder_query, all
 *       hits) and compare keys and scores bit for bit with HITS, the
 *       output of sf-match -i INDEX -k 0 STREAM.
 * easy_compare -e [-c PRESET] MODEL INDEX PHOTO: the API's answers to
 * wrong input instead, one "ok:" or "FAIL:" line each. */
#include "config.h"

#include <pthread.h>
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

/* -q: an index and sf-match -i INDEX -k 0's output for the same images,
 * read along. */
static sf_finder *finder;
static sf_stream_reader *hits_reader;

/* The API's hits for f equal the next image of the hits stream, keys and
 * scores bit for bit. */
static int same_hits(const sf_stream_image *img, const sf_features *f)
{
    const sf_stream_image *h;
    sf_error err;
    if (sf_stream_read_image(hits_reader, &h, &err) != SF_OK || !h) {
        fprintf(stderr, "%s: no hits in the hits stream\n", img->key);
        return 0;
    }
    const sf_record *keys = sf_stream_image_find(h, SF_KIND_HIT_KEYS);
    const sf_record *scores = sf_stream_image_find(h, SF_KIND_HIT_SCORES);
    sf_hit_list want, got;
    sf_hit_list_init(&want);
    sf_hit_list_init(&got);
    int ok = strcmp(h->key, img->key) == 0 && keys && scores &&
             sf_hit_list_append_records(&want, keys, scores, &err) == SF_OK;
    if (!ok)
        fprintf(stderr, "%s: the hits stream has %s next\n", img->key, h->key);
    else if (sf_finder_query(finder, f, 0, &got, &err) != SF_OK) {
        fprintf(stderr, "%s: query: %s\n", img->key, err.message);
        ok = 0;
    } else if (got.count != want.count) {
        fprintf(stderr, "%s: %zu hits, sf-match found %zu\n", img->key, got.count, want.count);
        ok = 0;
    }
    for (size_t i = 0; ok && i < got.count; i++)
        if (strcmp(got.keys[i], want.keys[i]) != 0 ||
            memcmp(&got.scores[i], &want.scores[i], sizeof(double)) != 0) {
            fprintf(stderr, "%s: hit %zu is %s %.17g, sf-match's %s %.17g\n", img->key, i,
                    got.keys[i], got.scores[i], want.keys[i], want.scores[i]);
            ok = 0;
        }
    sf_hit_list_release(&want);
    sf_hit_list_release(&got);
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
    if (finder)
        ok &= same_hits(img, &f);
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

/* Every image of the stream at path against an extractor of its own:
 * 0 all the same, 1 some differ, 3 the model or the stream did not open. */
static int compare_stream(const sf_extractor_options *o, const char *path)
{
    sf_extractor *x;
    sf_error err;
    if (sf_extractor_open(&x, o, &err) != SF_OK) {
        fprintf(stderr, "easy_compare: %s\n", err.message);
        return 3;
    }
    FILE *fp = fopen(path, "rb");
    sf_stream_reader *r = NULL;
    if (!fp || sf_stream_reader_create(&r, fp, path, &err) != SF_OK) {
        fprintf(stderr, "easy_compare: %s: cannot read\n", path);
        if (fp)
            fclose(fp);
        sf_extractor_free(x);
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

/* ---- -e: what the API refuses, and how ---- */

static int n_failed;

static void expect(const char *what, sf_status got, sf_status want, const sf_error *err,
                   const char *needle)
{
    int ok = got == want && (!needle || strstr(err->message, needle));
    printf("%s: %s: %s\n", ok ? "ok" : "FAIL", what, got == SF_OK ? "ok" : err->message);
    if (got != want)
        printf("  status %d (%s), expected %d (%s)\n", got, sf_strerror(got), want,
               sf_strerror(want));
    n_failed += !ok;
}

static void is_true(const char *what, int cond)
{
    printf("%s: %s\n", cond ? "ok" : "FAIL", what);
    n_failed += !cond;
}

static int errors(const sf_extractor_options *o, const char *index, const char *photo)
{
    sf_extractor *x = (sf_extractor *)1;
    sf_finder *f = (sf_finder *)1;
    sf_features feat;
    sf_hit_list hits;
    sf_error err;
    sf_hit_list_init(&hits);

    /* Opening. */
    sf_extractor_options none;
    sf_extractor_options_init(&none);
    expect("extractor without a model", sf_extractor_open(&x, &none, &err),
           SF_ERR_INVALID_ARGUMENT, &err, "no model");
    is_true("a failed open leaves NULL", x == NULL);
    expect("extractor, options NULL (no model)", sf_extractor_open(&x, NULL, &err),
           SF_ERR_INVALID_ARGUMENT, &err, "no model");
    sf_extractor_options bad = *o;
    bad.model = "no-such-model.sfm";
    expect("a missing model", sf_extractor_open(&x, &bad, &err), SF_ERR_NOT_FOUND, &err,
           "no-such-model.sfm");
    bad = *o;
    bad.backend = "no-such-backend";
    expect("a missing backend", sf_extractor_open(&x, &bad, &err), SF_ERR_BACKEND, &err,
           "no-such-backend");
    bad = *o;
    bad.preset = "no-such-preset.yaml";
    expect("a missing preset", sf_extractor_open(&x, &bad, &err), SF_ERR_NOT_FOUND, &err,
           "no-such-preset.yaml");
    sf_config cfg;
    sf_config_init(&cfg);
    strcpy(cfg.precision, "f16");
    bad = *o;
    bad.config = &cfg;
    bad.preset = NULL;
    expect("a wrong precision", sf_extractor_open(&x, &bad, &err), SF_ERR_CONFIG, &err,
           "f16");
    expect("a missing index", sf_finder_open(&f, "no-such.six", NULL, &err), SF_ERR_NOT_FOUND,
           &err, "no-such.six");
    is_true("a failed finder open leaves NULL", f == NULL);
    sf_finder_options fo;
    sf_finder_options_init(&fo);
    fo.ma = 65;
    expect("ma 65", sf_finder_open(&f, index, &fo, &err), SF_ERR_INVALID_ARGUMENT, &err,
           "ma 65");
    fo.ma = 0;
    fo.codebook = "no-such.sfcb";
    expect("a missing codebook", sf_finder_open(&f, index, &fo, &err), SF_ERR_NOT_FOUND, &err,
           "no-such.sfcb");
    sf_extractor_free(NULL);
    sf_finder_free(NULL);
    sf_features_release(NULL);

    /* Images. */
    if (sf_extractor_open(&x, o, &err) != SF_OK || sf_finder_open(&f, index, NULL, &err) != SF_OK) {
        printf("FAIL: open: %s\n", err.message);
        return 1;
    }
    is_true("the descriptor dimension", sf_extractor_dim(x) > 0);
    is_true("the backend has a name", *sf_extractor_backend(x) != '\0');
    is_true("the settings are the preset's", sf_extractor_config(x)->image_size > 0);
    expect("a missing photo", sf_extractor_run_file(x, "no-such.jpg", &feat, &err),
           SF_ERR_NOT_FOUND, &err, "no-such.jpg");
    is_true("a failed run leaves the features empty", feat.desc == NULL && feat.count == 0);
    static const char junk[] = "not a photo at all";
    expect("bytes that are no image",
           sf_extractor_run_buffer(x, junk, sizeof junk, "junk-bytes", &feat, &err),
           SF_ERR_NOT_IMAGE, &err, "junk-bytes");
    expect("no bytes", sf_extractor_run_buffer(x, NULL, 0, NULL, &feat, &err), SF_ERR_NOT_IMAGE,
           &err, "<buffer>");
    expect("NULL data with a size", sf_extractor_run_buffer(x, NULL, 5, "x", &feat, &err),
           SF_ERR_INVALID_ARGUMENT, &err, NULL);
    /* The extractor goes on after failures. */
    expect("a photo after failures", sf_extractor_run_file(x, photo, &feat, &err), SF_OK, &err,
           NULL);
    is_true("features kept", feat.count > 0 && (int)feat.count <= sf_extractor_keep(x));
    is_true("features of the descriptor dimension", feat.dim == sf_extractor_dim(x));
    int descending = 1;
    for (size_t i = 1; i < feat.count; i++)
        descending &= feat.strength[i] <= feat.strength[i - 1];
    is_true("strongest first", descending);

    /* Queries. */
    expect("a query", sf_finder_query(f, &feat, 3, &hits, &err), SF_OK, &err, NULL);
    is_true("three hits", hits.count == 3 || hits.count == sf_finder_count(f));
    is_true("scores descend", hits.count < 2 || hits.scores[0] >= hits.scores[1]);
    sf_features q = feat;
    q.made_with ^= 1;
    expect("features of another model", sf_finder_query(f, &q, 3, &hits, &err),
           SF_ERR_MISMATCH, &err, "features made as");
    is_true("a refused query leaves no hits", hits.count == 0);
    q = feat;
    q.made_with = 0;
    expect("features of unknown making", sf_finder_query(f, &q, 0, &hits, &err), SF_OK, &err,
           NULL);
    is_true("top_k 0: every image", hits.count == sf_finder_count(f));
    q.dim = feat.dim / 2;
    q.count = 2 * feat.count;
    expect("descriptors of another dimension", sf_finder_query(f, &q, 3, &hits, &err),
           SF_ERR_INVALID_DATA, &err, NULL);
    float saved = feat.desc[0];
    feat.desc[0] = 0.0f / 0.0f;
    q = feat;
    expect("a NaN descriptor", sf_finder_query(f, &q, 3, &hits, &err), SF_ERR_INVALID_DATA,
           &err, NULL);
    feat.desc[0] = saved;
    q.desc = NULL;
    expect("features without descriptors", sf_finder_query(f, &q, 3, &hits, &err),
           SF_ERR_INVALID_DATA, &err, NULL);
    q = feat;
    q.count = 0;
    expect("no features", sf_finder_query(f, &q, 3, &hits, &err), SF_OK, &err, NULL);
    is_true("no features: no hits", hits.count == 0);
    expect("NULL features", sf_finder_query(f, NULL, 3, &hits, &err), SF_ERR_INVALID_ARGUMENT,
           &err, NULL);
    sf_features_release(&feat);
    is_true("released features are empty", feat.desc == NULL && feat.count == 0);
    sf_features_release(&feat);
    sf_hit_list_release(&hits);
    sf_finder_free(f);
    sf_extractor_free(x);
    printf("%d failed\n", n_failed);
    return n_failed != 0;
}

typedef struct job {
    pthread_t thread;
    const sf_extractor_options *options;
    const char *path;
    int status;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    j->status = compare_stream(j->options, j->path);
    return NULL;
}

int main(int argc, char **argv)
{
    sf_extractor_options o;
    sf_extractor_options_init(&o);
    int c, threads = 0, error_cases = 0;
    const char *index = NULL, *hits = NULL;
    while ((c = getopt(argc, argv, "b:c:ej:q:H:")) != -1) {
        if (c == 'e')
            error_cases = 1;
        else if (c == 'q')
            index = optarg;
        else if (c == 'H')
            hits = optarg;
        else if (c == 'b')
            o.backend = optarg;
        else if (c == 'c')
            o.preset = optarg;
        else if (c == 'j' && (threads = atoi(optarg)) >= 1 && threads <= 16)
            continue;
        else
            return 2;
    }
    if (error_cases && argc - optind == 3) {
        o.model = argv[optind];
        return errors(&o, argv[optind + 1], argv[optind + 2]);
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: easy_compare [-c PRESET] [-b BACKEND] [-j THREADS] "
                        "[-q INDEX -H HITS] MODEL STREAM\n       easy_compare -e [-c PRESET] MODEL INDEX PHOTO\n");
        return 2;
    }
    o.model = argv[optind];
    FILE *hits_fp = NULL;
    if (index) {
        sf_error err;
        if (!hits || !(hits_fp = fopen(hits, "rb")) ||
            sf_stream_reader_create(&hits_reader, hits_fp, hits, &err) != SF_OK ||
            sf_finder_open(&finder, index, NULL, &err) != SF_OK) {
            fprintf(stderr, "easy_compare: -q %s -H %s: cannot open\n", index,
                    hits ? hits : "(none)");
            return 3;
        }
    }
    if (!threads) {
        int status = compare_stream(&o, argv[optind + 1]);
        sf_finder_free(finder);
        sf_stream_reader_free(hits_reader);
        if (hits_fp)
            fclose(hits_fp);
        return status;
    }
    /* Extractors of their own in threads of their own, at the same time. */
    job jobs[16];
    int status = 0;
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){ .options = &o, .path = argv[optind + 1], .status = 3 };
        if (pthread_create(&jobs[i].thread, NULL, run_job, &jobs[i]) != 0) {
            fprintf(stderr, "easy_compare: cannot start a thread\n");
            threads = i;
            status = 3;
        }
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(jobs[i].thread, NULL);
        if (jobs[i].status > status)
            status = jobs[i].status;
    }
    return status;
}
