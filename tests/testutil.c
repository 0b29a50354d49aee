#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

int tu_failures;
int tu_checks;

void tu_check(int ok, const char *file, int line, const char *expr, const char *fmt, ...)
{
    tu_checks++;
    if (ok)
        return;
    tu_failures++;
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: %s: ", file, line, expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void tu_skip(const char *fmt, ...)
{
    va_list ap;
    const char *ci = getenv("CI");
    int in_ci = ci && strcmp(ci, "true") == 0;
    fprintf(stderr, in_ci ? "FAIL (CI=true, data required): " : "SKIP: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(in_ci ? 1 : 77);
}

static const char *data_dir(const char *var, const char *probe)
{
    const char *dir = getenv(var);
    char path[4096];
    struct stat st;
    if (!dir || !*dir)
        tu_skip("%s is not set", var);
    snprintf(path, sizeof path, "%s/%s", dir, probe);
    if (stat(path, &st) != 0)
        tu_skip("%s: %s not found (set %s)", dir, probe, var);
    return dir;
}

const char *tu_golden_dir(void)
{
    return data_dir("SF_GOLDEN_DIR", "r18-small/manifest.yaml");
}

const char *tu_photos_dir(void)
{
    return data_dir("SF_PHOTOS_DIR", "multiview/groups.tsv");
}

void *tu_read_file(const char *dir, const char *name, size_t *size)
{
    char path[4096];
    if (dir)
        snprintf(path, sizeof path, "%s/%s", dir, name);
    else
        snprintf(path, sizeof path, "%s", name);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        exit(99);
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, fp) != (size_t)n)) {
        fprintf(stderr, "%s: read failed\n", path);
        exit(99);
    }
    fclose(fp);
    *size = (size_t)n;
    return buf;
}

double tu_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

double tu_rel_error(const float *a, const float *b, size_t n)
{
    double mb = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(b[i]) > mb)
            mb = fabs(b[i]);
    double d = tu_max_abs_diff(a, b, n);
    if (mb == 0)
        return d == 0 ? 0 : INFINITY;
    return d / mb;
}

uint64_t tu_rnd(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

float tu_rnd_normal(uint64_t *state)
{
    double u = (double)((tu_rnd(state) >> 11) + 1) / 9007199254740993.0; /* (0, 1] */
    double v = (double)(tu_rnd(state) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

int tu_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}

void *tu_read_array(const char *dir, const char *name, size_t count, size_t elem)
{
    size_t size;
    void *p = tu_read_file(dir, name, &size);
    if (size != count * elem) {
        fprintf(stderr, "%s/%s: %zu bytes, expected %zu\n", dir ? dir : ".", name, size,
                count * elem);
        exit(99);
    }
    return p;
}

void tu_rows_of(const int64_t *ids, size_t n, int64_t id, size_t *first, size_t *count)
{
    size_t i = 0;
    while (i < n && ids[i] != id)
        i++;
    *first = i;
    while (i < n && ids[i] == id)
        i++;
    *count = i - *first;
}
