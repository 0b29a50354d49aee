/* Files that appear whole or not at all: written beside the target and
 * renamed over it once complete, so that a reader never sees half a file
 * and rewriting a file that is still mapped does not truncate it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf_internal.h"

sf_status sf_atomic_file_open(sf_atomic_file *af, const char *path, sf_error *err)
{
    struct stat sb;
    memset(af, 0, sizeof *af);
    af->path = path;
    /* /dev/stdout and other non-regular targets cannot be renamed over. */
    af->direct = stat(path, &sb) == 0 && !S_ISREG(sb.st_mode);
    size_t tlen = strlen(path) + 32;
    int fd = -1;
    if (!(af->tmp = malloc(tlen)))
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory", path);
    if (af->direct) {
        snprintf(af->tmp, tlen, "%s", path);
        fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    } else {
        for (unsigned i = 0; i < 100 && fd < 0; i++) {
            snprintf(af->tmp, tlen, "%s.tmp%ld.%u", path, (long)getpid(), i);
            fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            if (fd < 0 && errno != EEXIST)
                break;
        }
    }
    af->fp = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!af->fp) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        sf_atomic_file_abort(af);
        return sf_error_set(err, SF_ERR_IO, "%s: %s", path, strerror(e));
    }
    return SF_OK;
}

sf_status sf_atomic_file_commit(sf_atomic_file *af, int ok, sf_error *err)
{
    int e = errno;
    if (ok && fflush(af->fp) != 0) {
        ok = 0;
        e = errno;
    }
    if (ok && !af->direct && fsync(fileno(af->fp)) != 0) {
        ok = 0;
        e = errno;
    }
    if (fclose(af->fp) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    af->fp = NULL;
    if (ok && !af->direct && rename(af->tmp, af->path) != 0) {
        ok = 0;
        e = errno;
    }
    const char *path = af->path;
    sf_atomic_file_abort(af);
    if (!ok)
        return sf_error_set(err, SF_ERR_IO, "%s: write failed: %s", path, strerror(e ? e : EIO));
    return SF_OK;
}

void sf_atomic_file_abort(sf_atomic_file *af)
{
    if (af->fp)
        fclose(af->fp);
    if (af->tmp && !af->direct)
        unlink(af->tmp); /* after a successful rename there is nothing left */
    free(af->tmp);
    memset(af, 0, sizeof *af);
}
