/* String -> index hash table: open addressing, linear probing. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strtab_internal.h"

size_t sf_strhash(const char *s, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * UINT64_C(1099511628211);
    return (size_t)(h ^ (h >> 32));
}

static void enter(sf_strtab *t, const char *name, size_t index)
{
    size_t h = sf_strhash(name, strlen(name)) & t->mask;
    while (t->slots[h])
        h = (h + 1) & t->mask;
    t->slots[h] = index + 1;
}

int sf_strtab_build(sf_strtab *t, const char *const *names, size_t n)
{
    size_t size = 16;
    while (size < 2 * n)
        size *= 2;
    t->slots = calloc(size, sizeof *t->slots);
    t->mask = t->slots ? size - 1 : 0;
    if (!t->slots)
        return -1;
    /* In index order, so that the first of equal names comes first in
     * its probe sequence. */
    for (size_t i = 0; i < n; i++)
        enter(t, names[i], i);
    return 0;
}

int sf_strtab_added(sf_strtab *t, const char *const *names, size_t n)
{
    if (t->slots && 2 * n <= t->mask + 1) {
        enter(t, names[n - 1], n - 1);
        return 0;
    }
    sf_strtab bigger;
    if (sf_strtab_build(&bigger, names, n) != 0)
        return -1;
    sf_strtab_release(t);
    *t = bigger;
    return 0;
}

long sf_strtab_find(const sf_strtab *t, const char *const *names, const char *s, size_t len)
{
    if (!t->slots)
        return -1;
    for (size_t h = sf_strhash(s, len) & t->mask; t->slots[h]; h = (h + 1) & t->mask) {
        const char *n = names[t->slots[h] - 1];
        if (strncmp(n, s, len) == 0 && n[len] == '\0')
            return (long)(t->slots[h] - 1);
    }
    return -1;
}

void sf_strtab_release(sf_strtab *t)
{
    free(t->slots);
    t->slots = NULL;
    t->mask = 0;
}
