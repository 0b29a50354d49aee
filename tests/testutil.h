/* Small helpers for the C tests: checks that count, fixtures, exit codes.
 * Exit status follows automake: 0 pass, 1 fail, 77 skip, 99 hard error. */
#ifndef SF_TESTUTIL_H
#define SF_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

extern int tu_failures;
extern int tu_checks;

#define CHECK(cond, ...) tu_check((cond) != 0, __FILE__, __LINE__, #cond, __VA_ARGS__)
void tu_check(int ok, const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Directory of the golden fixtures (SF_GOLDEN_DIR).  When it is missing the
 * test skips (exit 77), except under CI=true, where it fails. */
const char *tu_golden_dir(void);
/* Same for the photos of shared/datasets/fetch_photos.sh (SF_PHOTOS_DIR). */
const char *tu_photos_dir(void);
/* Skip, or fail under CI=true, with a reason. */
_Noreturn void tu_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Read dir/name (or name alone when dir is NULL); exits 99 if it cannot.
 * *size gets the byte count. */
void *tu_read_file(const char *dir, const char *name, size_t *size);

/* tu_read_file for a fixture array that must hold exactly count elements
 * of elem bytes; exits 99 otherwise. */
void *tu_read_array(const char *dir, const char *name, size_t count, size_t elem);

/* Rows [*first, *first + *count) of image id in a column of image ids
 * where each image's rows are contiguous. */
void tu_rows_of(const int64_t *ids, size_t n, int64_t id, size_t *first, size_t *count);

/* max|a-b| / max|b| (0/0 counts as 0). */
double tu_rel_error(const float *a, const float *b, size_t n);
double tu_max_abs_diff(const float *a, const float *b, size_t n);

/* Test data that is the same on every machine: splitmix64 from *state,
 * and a standard normal from it (Box-Muller). */
uint64_t tu_rnd(uint64_t *state);
float tu_rnd_normal(uint64_t *state);

/* Print the summary line and return the exit status. */
int tu_finish(const char *name);

/* Test streams as sf-lit writes them: a provenance record (stage lit,
 * fixed fingerprints) first in each image, and an end record counting the
 * images last; tu_close_stream writes the end and closes fp (stdout is
 * only flushed).  Both return 0, or 99 after printing why. */
#include <stdio.h>
int tu_write_provenance(FILE *fp, const char *key);
int tu_close_stream(FILE *fp, uint64_t images);

#endif
