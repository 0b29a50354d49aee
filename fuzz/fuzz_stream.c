/* Fuzz target for the stream reader, by records and by images.  Besides not
 * crashing or leaking, it checks that the encoding is canonical (writing a
 * record that was read gives back exactly the bytes it came from), that
 * every error is sticky and names the stream, and that an image returned
 * holds only valid records of its key; and that a stream read whole is
 * counted ahead (sf_stream_count_images) to the images the reader met. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sf.h"

/* Counting ahead over data must agree with a reader that read it whole. */
static void check_count(const uint8_t *data, size_t size, uint64_t images)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return; /* no memfd on this kernel: nothing to check */
    uint64_t n, bytes;
    sf_error err;
    if ((size && write(fd, data, size) != (ssize_t)size) || lseek(fd, 0, SEEK_SET) != 0 ||
        sf_stream_count_images(fd, 0, &n, &bytes, &err) != SF_OK || n != images ||
        bytes != size)
        abort();
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t empty[1];
    FILE *fp = fmemopen(size ? (void *)data : empty, size, "rb");
    if (!fp)
        return 0;
    char *out = NULL;
    size_t out_len = 0;
    FILE *copy = open_memstream(&out, &out_len);
    FILE *npy = fopen("/dev/null", "wb");
    sf_stream_reader *reader;
    sf_error err;
    if (!copy || !npy || sf_stream_reader_create(&reader, fp, "fuzz", &err) != SF_OK)
        abort();
    /* Small enough to explore the limit, large enough for real records. */
    sf_stream_reader_set_max_payload(reader, 1 << 20);

    for (;;) {
        const sf_record *rec;
        sf_status st = sf_stream_read_record(reader, &rec, &err);
        if (st != SF_OK) {
            sf_error again;
            if (strncmp(err.message, "fuzz: record ", 13) != 0
                || sf_stream_read_record(reader, &rec, &again) != st || rec
                || strcmp(again.message, err.message) != 0)
                abort();
            break;
        }
        if (!rec)
            break;
        if (rec->key[rec->key_len] != '\0' || strlen(rec->key) != rec->key_len)
            abort();
        size_t before = out_len;
        if (sf_stream_write_record(copy, rec, &err) != SF_OK || fflush(copy) != 0)
            abort();
        size_t n = out_len - before;
        uint64_t end = sf_stream_reader_offset(reader);
        if (n > end || memcmp(out + before, data + end - n, n) != 0)
            abort();
        if (sf_npy_write(npy, rec, &err) != SF_OK)
            abort();
    }
    sf_stream_reader_free(reader);
    fclose(fp);

    /* The same bytes as whole images: invalid images fail alone, and the
     * records of a returned image all carry its key. */
    fp = fmemopen(size ? (void *)data : empty, size, "rb");
    if (!fp || sf_stream_reader_create(&reader, fp, "fuzz", &err) != SF_OK)
        abort();
    sf_stream_reader_set_max_payload(reader, 1 << 20);
    for (;;) {
        const sf_stream_image *img;
        sf_status st = sf_stream_read_image(reader, &img, &err);
        if (st == SF_ERR_INVALID_DATA) {
            if (img || strncmp(err.message, "fuzz: ", 6) != 0)
                abort();
            continue;
        }
        if (st == SF_OK && !img)
            check_count(data, size, sf_stream_reader_images(reader));
        if (st != SF_OK || !img)
            break;
        for (size_t i = 0; i < img->count; i++)
            if (img->recs[i].key_len != img->key_len ||
                memcmp(img->recs[i].key, img->key, img->key_len) != 0 ||
                sf_record_check_contents(&img->recs[i], &err) != SF_OK)
                abort();
    }
    sf_stream_reader_free(reader);
    fclose(fp);
    fclose(copy);
    fclose(npy);
    free(out);
    return 0;
}
