#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sf.h"

const char *sf_strerror(sf_status status)
{
    switch (status) {
    case SF_OK: return "success";
    case SF_ERR_NOMEM: return "out of memory";
    case SF_ERR_IO: return "input/output error";
    case SF_ERR_FORMAT: return "malformed data";
    case SF_ERR_CHECKSUM: return "checksum mismatch";
    case SF_ERR_TRUNCATED: return "truncated data";
    case SF_ERR_VERSION: return "unknown format version";
    case SF_ERR_UNSUPPORTED: return "unsupported";
    case SF_ERR_INVALID_ARGUMENT: return "invalid argument";
    case SF_ERR_TOO_LARGE: return "size exceeds a limit";
    case SF_ERR_CONFIG: return "configuration error";
    case SF_ERR_NOT_IMAGE: return "not an image";
    case SF_ERR_BROKEN_PIPE: return "broken pipe";
    case SF_ERR_NOT_FOUND: return "not found";
    case SF_ERR_BACKEND: return "backend error";
    case SF_ERR_INVALID_DATA: return "invalid record contents";
    case SF_ERR_MISMATCH: return "made by another model or settings";
    }
    return "unknown error";
}

void sf_error_clear(sf_error *err)
{
    if (err) {
        err->status = SF_OK;
        err->message[0] = '\0';
    }
}

sf_status sf_error_set(sf_error *err, sf_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->status = status;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

const char *sf_version(void)
{
    return PACKAGE_VERSION;
}
