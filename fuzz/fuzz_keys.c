/* Fuzz target for key lists: the files sf-cat --keys-from, sf-index
 * remove --keys-from and sf-rank --db-list/--query-list read.  Splitting a
 * file into lines happens in cmd/cli_stream.c, outside libsf, in a dozen
 * lines mirrored here; what this target exercises is the library code that
 * the keys then reach:
 *
 *   - a key list that is a stream: its images' keys, read whole (the stream
 *     reader, with sf-cat's and sf-index's rule that any bad image fails
 *     the list);
 *   - the record filter that keeps the images with those keys, against a
 *     linear search;
 *   - the name table that matches hit keys to a list by path, file name or
 *     stem, against the documented rules applied one by one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Past this many keys, only the checks that are linear in them run. */
#define MAX_CHECKED 256

typedef struct keys {
    char **v;
    size_t n, cap;
} keys;

static void push(keys *k, const char *s, size_t len)
{
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 16;
        k->v = realloc(k->v, k->cap * sizeof *k->v);
        if (!k->v)
            abort();
    }
    char *copy = malloc(len + 1);
    if (!copy)
        abort();
    memcpy(copy, s, len);
    copy[len] = '\0';
    k->v[k->n++] = copy;
}

static void release(keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
}

/* As sf_cli_read_keys: lines without "\n" or "\r\n", cut at a NUL. */
static void split_lines(const uint8_t *d, size_t size, keys *k)
{
    const char *buf = (const char *)d;
    for (size_t at = 0; at < size;) {
        const char *nl = memchr(buf + at, '\n', size - at);
        size_t end = nl ? (size_t)(nl - buf) : size, l = end - at;
        while (l > 0 && buf[at + l - 1] == '\r')
            l--;
        push(k, buf + at, strnlen(buf + at, l));
        at = end + 1;
    }
}

/* The keys of a stream's images; 0 when the stream fails as a list. */
static int stream_keys(const uint8_t *d, size_t size, keys *k)
{
    FILE *fp = fmemopen((void *)d, size, "rb");
    sf_stream_reader *r;
    sf_error err;
    if (!fp || sf_stream_reader_create(&r, fp, "fuzz", &err) != SF_OK)
        abort();
    sf_stream_reader_set_max_payload(r, 1 << 20);
    const sf_stream_image *img;
    sf_status st;
    while ((st = sf_stream_read_image(r, &img, &err)) == SF_OK && img) {
        if (img->key_len == 0 || img->key_len > SF_STREAM_MAX_KEY
            || strlen(img->key) != img->key_len)
            abort();
        push(k, img->key, img->key_len);
    }
    sf_stream_reader_free(r);
    fclose(fp);
    if (st != SF_OK) {
        if (!fuzz_message_ok(err.message, "fuzz"))
            abort();
        return 0;
    }
    return 1;
}

static long first_equal(const keys *k, const char *s, size_t len)
{
    for (size_t i = 0; i < k->n; i++)
        if (strlen(k->v[i]) == len && memcmp(k->v[i], s, len) == 0)
            return (long)i;
    return -1;
}

/* sf_eval_names_find by its documentation: the whole key, else its last
 * path component, else that without its extension. */
static long reference_find(const keys *k, const char *key)
{
    long i = first_equal(k, key, strlen(key));
    if (i >= 0)
        return i;
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    if (base != key && (i = first_equal(k, base, strlen(base))) >= 0)
        return i;
    const char *dot = strrchr(base, '.');
    return dot && dot > base ? first_equal(k, base, (size_t)(dot - base)) : -1;
}

static void check_names(const keys *k)
{
    sf_eval_names *names;
    sf_error err;
    if (sf_eval_names_create((const char *const *)k->v, k->n, &names, &err) != SF_OK)
        abort();
    int linear = k->n <= MAX_CHECKED;
    for (size_t i = 0; i < k->n; i++) {
        long j = sf_eval_names_find(names, k->v[i]);
        if (j < 0 || (size_t)j > i || strcmp(k->v[j], k->v[i]) != 0)
            abort();
        if (!linear)
            continue;
        /* The name as a path with a directory and an extension. */
        size_t len = strlen(k->v[i]);
        char *path = malloc(len + 16);
        if (!path)
            abort();
        memcpy(path, "photos/", 7);
        memcpy(path + 7, k->v[i], len);
        memcpy(path + 7 + len, ".jpg", 5);
        if (sf_eval_names_find(names, path) != reference_find(k, path)
            || sf_eval_names_find(names, path + 7) != reference_find(k, path + 7))
            abort();
        free(path);
    }
    sf_eval_names_free(names);
}

/* sf-cat: the images whose keys the first half of the list names. */
static void check_filter(const keys *k)
{
    sf_record_filter *f;
    sf_error err;
    if (sf_record_filter_create(&f, &err) != SF_OK)
        abort();
    size_t half = k->n / 2, added = 0;
    for (size_t i = 0; i < half; i++)
        if (*k->v[i]) {
            if (sf_record_filter_add_key(f, k->v[i], &err) != SF_OK)
                abort();
            added++;
        }
    if (sf_record_filter_add_key(f, "", &err) != SF_ERR_INVALID_ARGUMENT)
        abort();
    for (size_t i = 0; i < k->n; i++) {
        if (!*k->v[i])
            continue;
        sf_record rec;
        sf_record_make(&rec, k->v[i], SF_KIND_GLOBAL, SF_DTYPE_F32, 0, NULL, NULL);
        sf_stream_image img = { .key = rec.key, .key_len = rec.key_len, .recs = &rec, .count = 1 };
        int kept = sf_record_filter_count(f, &img) == 1;
        int want = !added || i < half;
        if (!want && k->n <= MAX_CHECKED) {
            for (size_t j = 0; j < half && !want; j++)
                want = strcmp(k->v[j], k->v[i]) == 0;
        } else if (!want) {
            continue;
        }
        if (kept != want)
            abort();
    }
    sf_record_filter_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    keys k = { NULL, 0, 0 };
    int ok = 1;
    if (size >= SF_STREAM_MAGIC_SIZE && memcmp(data, SF_STREAM_MAGIC, SF_STREAM_MAGIC_SIZE) == 0)
        ok = stream_keys(data, size, &k);
    else
        split_lines(data, size, &k);
    if (ok) {
        check_names(&k);
        check_filter(&k);
    }
    release(&k);
    return 0;
}
