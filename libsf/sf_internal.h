/* Helpers shared inside libsf; not installed. */
#ifndef SF_INTERNAL_H
#define SF_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sf.h"

/* The stream and index formats are little-endian on disk. */
static inline void sf_put_u16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static inline void sf_put_u32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static inline void sf_put_u64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static inline uint16_t sf_get_u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
/* One load (and a byte swap on a big-endian CPU): GCC -O2 kept the
 * byte-at-a-time loop these were written as, a loop per directory
 * lookup in a search. */
static inline uint32_t sf_get_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}
static inline uint64_t sf_get_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}
static inline void sf_put_f64(unsigned char *p, double d) { uint64_t v; memcpy(&v, &d, 8); sf_put_u64(p, v); }
static inline double sf_get_f64(const unsigned char *p) { uint64_t v = sf_get_u64(p); double d; memcpy(&d, &v, 8); return d; }

/* The first len bytes of s made fit for a one-line message, as
 * sf_text_printable does (control characters and backslash escaped, bytes
 * that are not UTF-8 as \xHH, cut short with "..."); s may hold NULs. */
const char *sf_text_printable_n(const char *s, size_t len, char *buf, size_t size);

/* A key (any bytes, from a file) in a message: quoted, escaped, at most
 * about 250 bytes shown, in a buffer that lives for the call it is an
 * argument of. */
#define SF_KEY_SHOWN 256
#define SF_KEY_FMT "'%s'"
#define SF_KEY_ARGS(k, n) \
    sf_text_printable_n((const char *)(k), (size_t)(n), (char[SF_KEY_SHOWN]){ 0 }, SF_KEY_SHOWN)

/* The one ranking order of sf: a higher score first, NaN last, then the
 * lower id (database order, or the order results were met).  1 when
 * (sa, ia) ranks before (sb, ib). */
static inline int sf_rank_better(double sa, uint64_t ia, double sb, uint64_t ib)
{
    int na = isnan(sa), nb = isnan(sb);
    if (na != nb)
        return nb;
    if (!na && sa != sb)
        return sa > sb;
    return ia < ib;
}

/* The one way libsf copies a length-carrying text (a YAML scalar, a key, a
 * file's bytes) into a fixed buffer: at most len bytes and never more than
 * cap - 1, then a NUL.  Returns the bytes copied; callers that must not
 * truncate compare it with len.  cap must be at least 1. */
static inline size_t sf_copy_text(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

/* a * b, or 0 when it would wrap (callers never ask for 0). */
static inline size_t sf_mul_size(size_t a, size_t b)
{
    return a != 0 && b > SIZE_MAX / a ? 0 : a * b;
}

/* First e in [lo, hi) with a[e] >= v (a ascending), or hi. */
static inline uint64_t sf_lower_bound_u32(const uint32_t *a, uint64_t lo, uint64_t hi,
                                          uint32_t v)
{
    while (lo < hi) {
        uint64_t m = lo + (hi - lo) / 2;
        if (a[m] < v)
            lo = m + 1;
        else
            hi = m;
    }
    return lo;
}

/* The one rule for thread counts in sf: a count asked for (compute.threads,
 * --threads) is used as it is, up to 1024; 0 means one per core this
 * process may run on (its affinity mask, as OpenMP counts them).  libsf's
 * own workers and the backends all get their count from here. */
int sf_threads_resolve(int requested);

/* fn(ctx, i) for every i < count, each on a thread of its own; the
 * calling thread takes i = 0, and the indices of any thread that cannot
 * be started, so every call is made whatever happens.  Returns when all
 * have returned. */
void sf_threads_run(size_t count, void (*fn)(void *ctx, size_t index), void *ctx);

/* The table behind a loaded backend (backend.c), for network.c. */
struct sf_backend_iface;
const struct sf_backend_iface *sf_backend_iface_of(const sf_backend *backend);

/* Read the whole of fd, or of the file at path, into a 64-byte aligned
 * buffer (*data, free() it).  More than max_bytes (0: no limit) is
 * SF_ERR_TOO_LARGE.  regular_only refuses directories, pipes and devices
 * (SF_ERR_IO); otherwise a directory fails with EISDIR on reading.  A
 * missing file is SF_ERR_NOT_FOUND.  Messages start with name or path. */
sf_status sf_read_fd(int fd, const char *name, uint64_t max_bytes, void **data, size_t *size,
                     sf_error *err);
sf_status sf_read_file(const char *path, uint64_t max_bytes, int regular_only, void **data,
                       size_t *size, sf_error *err);

/* A file written beside its target and renamed into place on commit. */
typedef struct sf_atomic_file {
    FILE *fp;          /* write here */
    char *tmp;
    const char *path;
    int direct;        /* the target is not a regular file: written in place */
    int slot;          /* sf_temp_register's */
} sf_atomic_file;

/* Removes the temporary files of dead writers of path first (see
 * sf_temp_remove_stale), and registers its own (sf_temp_register). */
sf_status sf_atomic_file_open(sf_atomic_file *af, const char *path, sf_error *err);
/* ok: whether every write succeeded.  Flushes, syncs and renames; on any
 * failure the target is left as it was and the temporary file removed. */
sf_status sf_atomic_file_commit(sf_atomic_file *af, int ok, sf_error *err);
void sf_atomic_file_abort(sf_atomic_file *af);

/* Temporary files: every one is named PATH.tmpPID.N or PATH.create-PID.tmp
 * (PID: the writer's).  A registered one is removed by
 * sf_remove_temp_files, which a program calls from its signal handlers;
 * sf_temp_register returns its slot, or -1 when none is free (the file is
 * then only removed by the next writer, as a stale one). */
int sf_temp_register(const char *tmp);
void sf_temp_unregister(int slot);
/* Remove the temporary files of path whose writer is no longer running. */
void sf_temp_remove_stale(const char *path);

#endif
