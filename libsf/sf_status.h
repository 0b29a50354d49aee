/* Status codes and error reports shared by every libsf function. */
#ifndef SF_STATUS_H
#define SF_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Append-only: programs map these to exit codes and scripts may test them. */
typedef enum sf_status {
    SF_OK = 0,
    SF_ERR_NOMEM = 1,            /* out of memory */
    SF_ERR_IO = 2,               /* read or write failed (errno in message) */
    SF_ERR_FORMAT = 3,           /* input is malformed */
    SF_ERR_CHECKSUM = 4,         /* checksum mismatch */
    SF_ERR_TRUNCATED = 5,        /* input ends too early */
    SF_ERR_VERSION = 6,          /* unknown format version */
    SF_ERR_UNSUPPORTED = 7,      /* well-formed but not supported */
    SF_ERR_INVALID_ARGUMENT = 8, /* caller passed a bad value */
    SF_ERR_TOO_LARGE = 9,        /* a size exceeds a limit */
    SF_ERR_CONFIG = 10,          /* configuration file or key is wrong */
    SF_ERR_NOT_IMAGE = 11,       /* file is not a decodable image */
    SF_ERR_BROKEN_PIPE = 12,     /* the reader of our output went away */
    SF_ERR_NOT_FOUND = 13,       /* file or key does not exist */
    SF_ERR_BACKEND = 14,         /* compute backend missing or failed */
    SF_ERR_INVALID_DATA = 15,    /* a record's contents are wrong (shape, NaN) */
    SF_ERR_MISMATCH = 16         /* made by another model, settings or stage */
} sf_status;

/* Filled where a problem is found; callers pass it up unchanged.  The
 * message names the object (file, record, key) and the reason, without the
 * program name and without a trailing newline. */
typedef struct sf_error {
    sf_status status;
    char message[768];
} sf_error;

/* Static text for a status code ("checksum mismatch"). */
const char *sf_strerror(sf_status status);

/* Clear an error report. */
void sf_error_clear(sf_error *err);

/* Record a failure in err (which may be NULL) and return status, so library
 * code can write `return sf_error_set(err, SF_ERR_IO, "...", ...);`. */
sf_status sf_error_set(sf_error *err, sf_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
