/* compare_arrays [--max-abs X] [--mean-abs X] [--rel X] GOT WANT
 * Compares two float32 arrays, each a raw .f32 file or a .npy file
 * ('<f4'), element by element; prints max and mean absolute difference and
 * max|a-b|/max|b|; exits 1 when a bound is exceeded or the sizes differ. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static float *load(const char *path, size_t *count)
{
    size_t size;
    unsigned char *buf = tu_read_file(NULL, path, &size);
    size_t off = 0;
    if (size >= 10 && memcmp(buf, "\x93NUMPY", 6) == 0) {
        size_t hlen = buf[6] == 1 ? (size_t)(buf[8] | buf[9] << 8) : (size_t)(buf[8] | buf[9] << 8 | buf[10] << 16 | (size_t)buf[11] << 24);
        off = (buf[6] == 1 ? 10 : 12) + hlen;
        if (off > size || !memmem(buf, off, "'<f4'", 5)) {
            fprintf(stderr, "%s: not a float32 .npy file\n", path);
            exit(99);
        }
    }
    if ((size - off) % 4) {
        fprintf(stderr, "%s: size is not a multiple of 4\n", path);
        exit(99);
    }
    *count = (size - off) / 4;
    float *data = malloc((size - off) + 4);
    memcpy(data, buf + off, size - off);
    free(buf);
    return data;
}

int main(int argc, char **argv)
{
    double max_abs = INFINITY, mean_abs = INFINITY, rel = INFINITY;
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--max-abs") == 0) max_abs = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--mean-abs") == 0) mean_abs = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--rel") == 0) rel = atof(argv[i + 1]);
        else break;
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: compare_arrays [--max-abs X] [--mean-abs X] [--rel X] GOT WANT\n");
        return 99;
    }
    size_t na, nb;
    float *a = load(argv[i], &na), *b = load(argv[i + 1], &nb);
    if (na != nb) {
        printf("%s: %zu elements, %s: %zu\n", argv[i], na, argv[i + 1], nb);
        return 1;
    }
    double sum = 0;
    for (size_t k = 0; k < na; k++)
        sum += fabs((double)a[k] - b[k]);
    double m = tu_max_abs_diff(a, b, na), r = tu_rel_error(a, b, na), mean = na ? sum / na : 0;
    printf("%zu elements: max abs %.6g, mean abs %.6g, rel %.6g\n", na, m, mean, r);
    free(a);
    free(b);
    return m <= max_abs && mean <= mean_abs && r <= rel ? 0 : 1;
}
