/* Pairwise matching against the match_* cases of golden/r18-small.  The
 * expected answers are the correct distance-ratio results that
 * r18-small/manifest.yaml lists under match_diagnostics,
 * match_sf_diagnostics and match_syn_diagnostics
 * (distance_ratio_same_index_returned, distance_ratio_pairs_q_p), copied
 * here; the match_*_indices.i64 files hold the reference's output with its
 * index-division slip, which must not be reproduced. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_match.h"
#include "testutil.h"

struct pair {
    uint32_t q, p;
};

/* match_diagnostics */
static const uint32_t same_match[] = { 0, 40 };
static const struct pair pairs_match[] = {
    { 0, 0 },   { 41, 8 },  { 12, 9 },  { 8, 12 },  { 36, 14 }, { 18, 15 }, { 15, 21 },
    { 50, 28 }, { 19, 30 }, { 55, 33 }, { 40, 40 }, { 78, 42 }, { 44, 43 }, { 79, 44 },
    { 33, 47 }, { 34, 48 }, { 24, 49 }, { 59, 51 }, { 6, 52 },  { 60, 56 }, { 53, 59 },
    { 46, 60 }, { 45, 61 }, { 75, 65 }, { 37, 66 }, { 85, 69 }, { 87, 71 }, { 77, 73 },
    { 82, 75 }, { 14, 80 }, { 61, 82 }, { 49, 83 }, { 69, 84 }, { 48, 85 }, { 93, 86 },
    { 25, 97 },
};
/* match_sf_diagnostics: every template but 29 and 31; its
 * distance_ratio_pairs_q_p are the same templates paired with themselves. */
static const uint32_t same_sf[] = { 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
                                    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 30 };
#define N_SF (sizeof same_sf / sizeof *same_sf)
/* match_syn_diagnostics */
static const uint32_t same_syn[] = { 0, 1, 2, 3, 5, 6, 7, 8, 11 };
static const struct pair pairs_syn[] = {
    { 0, 0 }, { 1, 1 }, { 2, 2 },   { 3, 3 },  { 5, 5 },   { 6, 6 },
    { 7, 7 }, { 8, 8 }, { 10, 9 }, { 9, 10 }, { 11, 11 },
};

static double dot(const float *x, const float *y, size_t dim)
{
    double s = 0, nx = 0, ny = 0;
    for (size_t d = 0; d < dim; d++) {
        s += (double)x[d] * y[d];
        nx += (double)x[d] * x[d];
        ny += (double)y[d] * y[d];
    }
    return s / sqrt(nx) / sqrt(ny);
}

static void check_case(const char *dir, const char *prefix, size_t n, size_t dim,
                       const uint32_t *same, size_t n_same, const struct pair *pairs,
                       size_t n_pairs)
{
    char name[128];
    snprintf(name, sizeof name, "%s_q.f32", prefix);
    float *q = tu_read_array(dir, name, n * dim, sizeof(float));
    snprintf(name, sizeof name, "%s_p.f32", prefix);
    float *p = tu_read_array(dir, name, n * dim, sizeof(float));
    size_t size;
    snprintf(name, sizeof name, "%s_indices.i64", prefix);
    int64_t *slip = tu_read_file(dir, name, &size);
    size_t n_slip = size / 8;

    for (int normalize = 1; normalize >= 0; normalize--) {
        sf_match_options opt;
        sf_match_options_default(&opt);
        opt.normalize = normalize; /* the inputs are already unit rows */
        sf_match_list m;
        sf_error err;
        sf_error_clear(&err);

        /* Same template only. */
        opt.same_index = 1;
        sf_status st = sf_match_find(q, n, p, n, dim, &opt, &m, &err);
        CHECK(st == SF_OK, "%s: %s", prefix, err.message);
        int eq = m.count == n_same;
        for (size_t i = 0; eq && i < n_same; i++)
            eq = m.a[i] == same[i] && m.b[i] == same[i];
        CHECK(eq, "%s same-index (normalize %d): %zu matches, expected %zu", prefix, normalize,
              m.count, n_same);
        /* Where the slip changes the answer, ours must differ from it. */
        int slip_differs = n_slip != n_same;
        for (size_t i = 0; !slip_differs && i < n_same; i++)
            slip_differs = (int64_t)same[i] != slip[i];
        int like_slip = m.count == n_slip;
        for (size_t i = 0; like_slip && i < n_slip; i++)
            like_slip = (int64_t)m.b[i] == slip[i];
        if (slip_differs)
            CHECK(!like_slip, "%s: reproduces the reference's index-division slip", prefix);
        if (normalize)
            printf("%s: same-index %zu matches (%s), reference with slip %zu\n", prefix, m.count,
                   eq ? "equal" : "DIFFERENT", n_slip);
        sf_match_list_release(&m);

        /* Templates given as arrays: rows of p shuffled, each keeping its
         * template, must give the same pairs, moved with their rows. */
        uint32_t *perm = malloc(n * sizeof *perm);
        int32_t *ta = malloc(n * sizeof *ta), *tb = malloc(n * sizeof *tb);
        float *ps = malloc(n * dim * sizeof *ps);
        for (size_t j = 0; j < n; j++)
            perm[j] = (uint32_t)((j * 7 + 3) % n); /* 7 is prime to n here */
        for (size_t j = 0; j < n; j++) {
            ta[j] = (int32_t)j;
            tb[j] = (int32_t)perm[j];
            memcpy(ps + j * dim, p + perm[j] * dim, dim * sizeof *ps);
        }
        opt.a_template = ta;
        opt.b_template = tb;
        st = sf_match_find(q, n, ps, n, dim, &opt, &m, &err);
        CHECK(st == SF_OK, "%s: %s", prefix, err.message);
        size_t found = 0;
        int moved = 1;
        for (size_t i = 0; i < m.count; i++) {
            moved &= m.a[i] == perm[m.b[i]];
            for (size_t k = 0; k < n_same; k++)
                found += same[k] == m.a[i];
        }
        CHECK(m.count == n_same && found == n_same && moved,
              "%s template arrays (normalize %d): %zu matches, expected %zu", prefix, normalize,
              m.count, n_same);
        sf_match_list_release(&m);
        opt.a_template = opt.b_template = NULL;
        free(perm);
        free(ta);
        free(tb);
        free(ps);

        /* All mutual pairs. */
        opt.same_index = 0;
        st = sf_match_find(q, n, p, n, dim, &opt, &m, &err);
        CHECK(st == SF_OK, "%s: %s", prefix, err.message);
        eq = m.count == n_pairs;
        for (size_t i = 0; eq && i < n_pairs; i++)
            eq = m.a[i] == pairs[i].q && m.b[i] == pairs[i].p;
        CHECK(eq, "%s pairs (normalize %d): %zu pairs, expected %zu", prefix, normalize, m.count,
              n_pairs);
        double worst = 0;
        for (size_t i = 0; i < m.count; i++) {
            double c = dot(q + m.a[i] * dim, p + m.b[i] * dim, dim);
            worst = fmax(worst, fabs(c - m.similarity[i]));
        }
        CHECK(worst < 1e-6, "%s: similarity off by %g", prefix, worst);
        if (normalize)
            printf("%s: %zu pairs (%s), max |similarity - cosine| %.3g\n", prefix, m.count,
                   eq ? "equal" : "DIFFERENT", worst);
        sf_match_list_release(&m);
    }
    free(q);
    free(p);
    free(slip);
}

static void check_small(void)
{
    sf_match_list m;
    sf_error err;
    sf_error_clear(&err);
    float a[3 * 2] = { 1, 0, 0, 1, 0, 1 }; /* rows 1 and 2 identical */
    float b[2 * 2] = { 0, 2, 3, 0.1f };
    /* b[0] has two rows of a at distance 0: ambiguous, rejected.  b[1] has
     * a[0] near and the others far: kept. */
    CHECK(sf_match_find(a, 3, b, 2, 2, NULL, &m, &err) == SF_OK, "%s", err.message);
    CHECK(m.count == 1 && m.a[0] == 0 && m.b[0] == 1, "ties: %zu matches", m.count);
    sf_match_list_release(&m);
    sf_match_list_release(&m);

    /* One row in a: no second neighbour, the ratio test passes. */
    CHECK(sf_match_find(a, 1, b, 2, 2, NULL, &m, &err) == SF_OK && m.count == 1 &&
              m.b[0] == 1 && fabs(m.similarity[0] - 3 / sqrt(9.01)) < 1e-6,
          "single row: %zu", m.count);
    sf_match_list_release(&m);

    /* Empty sets. */
    CHECK(sf_match_find(a, 0, b, 2, 2, NULL, &m, &err) == SF_OK && m.count == 0, "empty a");
    CHECK(sf_match_find(a, 3, b, 0, 2, NULL, &m, &err) == SF_OK && m.count == 0, "empty b");

    float bad[2] = { NAN, 1 };
    CHECK(sf_match_find(bad, 1, b, 2, 2, NULL, &m, &err) == SF_ERR_INVALID_ARGUMENT,
          "NaN accepted");
    sf_match_options opt;
    sf_match_options_default(&opt);
    opt.ratio = NAN;
    CHECK(sf_match_find(a, 3, b, 2, 2, &opt, &m, &err) == SF_ERR_INVALID_ARGUMENT,
          "NaN ratio accepted");
}

int main(void)
{
    check_small();
    if (tu_failures) /* do not let a missing fixture turn this into a skip */
        return tu_finish("test_match");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/r18-small", tu_golden_dir());
    check_case(dir, "match", 100, 64, same_match, sizeof same_match / sizeof *same_match,
               pairs_match, sizeof pairs_match / sizeof *pairs_match);
    struct pair pairs_sf[N_SF];
    for (size_t i = 0; i < N_SF; i++)
        pairs_sf[i].q = pairs_sf[i].p = same_sf[i];
    check_case(dir, "match_sf", 32, 64, same_sf, N_SF, pairs_sf, N_SF);
    check_case(dir, "match_syn", 12, 16, same_syn, sizeof same_syn / sizeof *same_syn,
               pairs_syn, sizeof pairs_syn / sizeof *pairs_syn);
    return tu_finish("test_match");
}
