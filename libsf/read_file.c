/* Reading a whole file into memory: one loop for every loader that takes
 * a file whole (settings, ground truths, answer keys, codebooks, models
 * from a pipe). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf_internal.h"

static sf_status grow(unsigned char **buf, size_t *cap, size_t len, size_t want,
                      const char *name, sf_error *err)
{
    /* 64-byte aligned, so that a codebook's or model's arrays can be used
     * in place. */
    void *bigger = NULL;
    if (posix_memalign(&bigger, 64, want ? want : 1) != 0)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", name);
    if (len)
        memcpy(bigger, *buf, len);
    free(*buf);
    *buf = bigger;
    *cap = want;
    return SF_OK;
}

sf_status sf_read_fd(int fd, const char *name, uint64_t max_bytes, void **data, size_t *size,
                     sf_error *err)
{
    *data = NULL;
    *size = 0;
    /* A regular file's size is known; a pipe grows as it comes.  One byte
     * more than the size sees a file that grew while being read. */
    struct stat sb;
    size_t cap = 0, len = 0, first = 1 << 16;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
        if (max_bytes && (uint64_t)sb.st_size > max_bytes)
            return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: larger than %llu bytes", name,
                                (unsigned long long)max_bytes);
        if ((uint64_t)sb.st_size < SIZE_MAX / 2)
            first = (size_t)sb.st_size + 1;
    }
    unsigned char *buf = NULL;
    sf_status st = grow(&buf, &cap, 0, first, name, err);
    while (st == SF_OK) {
        /* Past the limit by one byte is enough to know the input is too long. */
        size_t want = max_bytes && cap * 2 > max_bytes + 1 ? (size_t)max_bytes + 1 : cap * 2;
        if (len == cap && (want <= cap || (st = grow(&buf, &cap, len, want, name, err)) != SF_OK)) {
            if (st == SF_OK)
                st = sf_error_set(err, SF_ERR_TOO_LARGE, "%s: larger than %llu bytes", name,
                                  (unsigned long long)max_bytes);
            break;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            st = sf_error_set(err, SF_ERR_IO, "%s: %s", name, strerror(errno));
        else if (n == 0)
            break;
        else if ((len += (size_t)n) > max_bytes && max_bytes)
            st = sf_error_set(err, SF_ERR_TOO_LARGE, "%s: larger than %llu bytes", name,
                              (unsigned long long)max_bytes);
    }
    if (st != SF_OK) {
        free(buf);
        return st;
    }
    *data = buf;
    *size = len;
    return SF_OK;
}

sf_status sf_read_file(const char *path, uint64_t max_bytes, int regular_only, void **data,
                       size_t *size, sf_error *err)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sf_error_set(err, errno == ENOENT || errno == ENOTDIR ? SF_ERR_NOT_FOUND : SF_ERR_IO,
                            "%s: %s", path, strerror(errno));
    if (regular_only) {
        struct stat sb;
        const char *why = NULL;
        if (fstat(fd, &sb) != 0)
            why = strerror(errno);
        else if (S_ISDIR(sb.st_mode))
            why = strerror(EISDIR);
        else if (!S_ISREG(sb.st_mode))
            why = "not a regular file";
        if (why) {
            sf_status st = sf_error_set(err, SF_ERR_IO, "%s: %s", path, why);
            close(fd);
            return st;
        }
    }
    sf_status st = sf_read_fd(fd, path, max_bytes, data, size, err);
    close(fd);
    return st;
}
