/* A hash table from strings to their index in an array of strings that
 * the caller owns (and may move: the array is passed at each call).  Equal
 * strings resolve to the first of them.  Not installed. */
#ifndef SF_STRTAB_INTERNAL_H
#define SF_STRTAB_INTERNAL_H

#include <stddef.h>

typedef struct sf_strtab {
    size_t *slots; /* index + 1; 0: empty.  At most half full. */
    size_t mask;
} sf_strtab;

/* FNV-1a of len bytes: keys are short names, not adversarial input. */
size_t sf_strhash(const char *s, size_t len);

/* A table of names[0..n); 0, or -1 out of memory (t is then empty). */
int sf_strtab_build(sf_strtab *t, const char *const *names, size_t n);
/* names[n - 1] was just appended: enter it, growing the table when it
 * gets over half full.  0, or -1 out of memory (t is then unchanged,
 * without names[n - 1]). */
int sf_strtab_added(sf_strtab *t, const char *const *names, size_t n);
/* The first index of a name equal to the len bytes at s, or -1. */
long sf_strtab_find(const sf_strtab *t, const char *const *names, const char *s, size_t len);
void sf_strtab_release(sf_strtab *t);

#endif
