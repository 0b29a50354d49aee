/* Checks shared by the fuzz targets. */
#ifndef SF_FUZZ_CHECK_H
#define SF_FUZZ_CHECK_H

#include <string.h>

/* What every error message must be: about the input it names ("NAME: ..."
 * or "NAME:LINE: ...") and one line, as the programs print it. */
static inline int fuzz_message_ok(const char *message, const char *name)
{
    size_t n = strlen(name);
    return strncmp(message, name, n) == 0 && message[n] == ':' && !strchr(message, '\n');
}

#endif
