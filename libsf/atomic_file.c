/* Files that appear whole or not at all: written beside the target and
 * renamed over it once complete, so that a reader never sees half a file
 * and rewriting a file that is still mapped does not truncate it. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf_internal.h"

/* ---- Temporary files in progress ---- */

/* Fixed slots: a signal handler may read them at any time, so nothing is
 * allocated and a slot is marked used only once its path is complete. */
#define TEMP_SLOTS 32
#define TEMP_PATH_MAX 4160
static char temp_path[TEMP_SLOTS][TEMP_PATH_MAX];
static volatile sig_atomic_t temp_used[TEMP_SLOTS];

int sf_temp_register(const char *tmp)
{
    size_t len = strlen(tmp);
    for (int i = 0; i < TEMP_SLOTS && len < TEMP_PATH_MAX; i++)
        if (!temp_used[i]) {
            memcpy(temp_path[i], tmp, len + 1);
            temp_used[i] = 1;
            return i;
        }
    return -1;
}

void sf_temp_unregister(int slot)
{
    if (slot >= 0 && slot < TEMP_SLOTS)
        temp_used[slot] = 0;
}

void sf_remove_temp_files(void)
{
    for (int i = 0; i < TEMP_SLOTS; i++)
        if (temp_used[i]) {
            unlink(temp_path[i]);
            temp_used[i] = 0;
        }
}

/* The writer's PID in name, a temporary file of base ("base.tmpPID.N",
 * "base.create-PID.tmp"), or 0. */
static long temp_owner(const char *name, const char *base, size_t blen)
{
    if (strncmp(name, base, blen) != 0)
        return 0;
    const char *p = name + blen, *tail;
    if (strncmp(p, ".tmp", 4) == 0) {
        p += 4;
        tail = ".";
    } else if (strncmp(p, ".create-", 8) == 0) {
        p += 8;
        tail = ".tmp";
    } else {
        return 0;
    }
    char *end;
    long pid = strtol(p, &end, 10);
    if (end == p || pid <= 0 || strncmp(end, tail, strlen(tail)) != 0)
        return 0;
    return pid;
}

void sf_temp_remove_stale(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dlen = slash ? (size_t)(slash - path) : 0, blen = strlen(base);
    char dir[TEMP_PATH_MAX], full[TEMP_PATH_MAX];
    if (dlen + 1 >= sizeof dir || blen == 0)
        return;
    sf_copy_text(dir, sizeof dir, slash ? path : ".", slash ? (dlen ? dlen : 1) : 1);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = temp_owner(e->d_name, base, blen);
        /* Only a writer that is gone: a live one may be writing it now. */
        if (pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH &&
            (size_t)snprintf(full, sizeof full, "%s/%s", dir, e->d_name) < sizeof full)
            unlink(full);
    }
    closedir(d);
}

/* ---- Files that appear whole ---- */

sf_status sf_atomic_file_open(sf_atomic_file *af, const char *path, sf_error *err)
{
    struct stat sb;
    memset(af, 0, sizeof *af);
    af->slot = -1;
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
        sf_temp_remove_stale(path);
        for (unsigned i = 0; i < 100 && fd < 0; i++) {
            snprintf(af->tmp, tlen, "%s.tmp%ld.%u", path, (long)getpid(), i);
            fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            if (fd < 0 && errno != EEXIST)
                break;
        }
        af->slot = fd >= 0 ? sf_temp_register(af->tmp) : -1;
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
    /* Test hook: a signal arriving with the file written but not renamed
     * (tests/temp_files.sh checks that nothing is left behind). */
    const char *hook = getenv("SF_TEST_SIGNAL_BEFORE_COMMIT");
    if (hook && !af->direct)
        raise(atoi(hook));
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
    if (af->tmp && !af->direct) {
        unlink(af->tmp); /* after a successful rename there is nothing left */
        sf_temp_unregister(af->slot);
    }
    free(af->tmp);
    memset(af, 0, sizeof *af);
}
