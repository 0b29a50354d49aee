/* compare_arrays [--max-abs X] [--mean-abs X] [--rel X] [--min-cosine X]
 *                [--transpose R,C] [--sorted] GOT WANT
 * Compares two float32 arrays, each a raw .f32 file or a .npy file
 * ('<f4'), element by element; prints max and mean absolute difference,
 * max|a-b|/max|b| and the cosine similarity; exits 1 when a bound is
 * exceeded or the sizes differ.  --transpose reads GOT as R x C and
 * compares its transpose; --sorted compares the values in sorted order. */
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

static int by_value(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    double max_abs = INFINITY, mean_abs = INFINITY, rel = INFINITY, min_cos = -INFINITY;
    int i = 1, rows = 0, cols = 0, sorted = 0;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--sorted") == 0) { sorted = 1; continue; }
        if (i + 1 >= argc) break;
        if (strcmp(argv[i], "--max-abs") == 0) max_abs = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--mean-abs") == 0) mean_abs = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--rel") == 0) rel = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--min-cosine") == 0) min_cos = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--transpose") == 0) {
            if (sscanf(argv[i + 1], "%d,%d", &rows, &cols) != 2) break;
        } else break;
        i++;
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
    if (rows > 0 && (size_t)rows * (size_t)cols == na) {
        float *t = malloc(na * sizeof(float) + 4);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                t[(size_t)c * rows + r] = a[(size_t)r * cols + c];
        free(a);
        a = t;
    } else if (rows > 0) {
        printf("--transpose %d,%d does not match %zu elements\n", rows, cols, na);
        return 1;
    }
    if (sorted) {
        qsort(a, na, sizeof(float), by_value);
        qsort(b, nb, sizeof(float), by_value);
    }
    double sum = 0, dot = 0, aa = 0, bb = 0;
    for (size_t k = 0; k < na; k++) {
        sum += fabs((double)a[k] - b[k]);
        dot += (double)a[k] * b[k];
        aa += (double)a[k] * a[k];
        bb += (double)b[k] * b[k];
    }
    double cosine = aa > 0 && bb > 0 ? dot / sqrt(aa * bb) : (aa == bb ? 1 : 0);
    double m = tu_max_abs_diff(a, b, na), r = tu_rel_error(a, b, na), mean = na ? sum / na : 0;
    printf("%zu elements: max abs %.6g, mean abs %.6g, rel %.6g, cosine %.7f\n", na, m, mean, r,
           cosine);
    free(a);
    free(b);
    return m <= max_abs && mean <= mean_abs && r <= rel && cosine >= min_cos ? 0 : 1;
}
