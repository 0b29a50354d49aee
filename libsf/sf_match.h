/* Pairwise matching of the super-features of two images (spec section 6):
 * mutual nearest neighbours under the Euclidean distance of L2-normalised
 * descriptors, filtered by the distance ratio test, optionally only
 * between the same LIT template. */
#ifndef SF_MATCH_H
#define SF_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_match_options {
    double ratio;    /* keep when d(j,i) / d(j,i2) <= ratio (0.9) */
    int same_index;  /* keep only pairs from the same template: equal
                        a_template/b_template values, or equal rows when
                        those are NULL (one row per template) */
    int normalize;   /* L2-normalise the rows first: x / max(|x|, 1e-12) (1) */
    const int32_t *a_template; /* na template indexes (local_index), or NULL */
    const int32_t *b_template; /* nb template indexes, or NULL */
} sf_match_options;

void sf_match_options_default(sf_match_options *options);

/* Matched pairs, ordered by index in b.  Arrays owned by the caller:
 * release with sf_match_list_release. */
typedef struct sf_match_list {
    size_t count;
    uint32_t *a;       /* row in a */
    uint32_t *b;       /* row in b */
    float *similarity; /* cosine similarity 1 - d^2/2 */
} sf_match_list;

/* Match the rows of a (na x dim) and b (nb x dim).  Pair (i, j) is kept
 * when i is the nearest row of a to b[j], j the nearest row of b to a[i]
 * (ties: lower index), and d(j,i) / d(j,i2) <= ratio with i2 the
 * second-nearest row of a to b[j] (no second row: the test passes; both
 * distances 0: it fails).  Distances come from |x|^2 + |y|^2 - 2 x.y,
 * clamped at 0, in double precision.  options may be NULL for the
 * defaults.  Either set may be empty (no matches). */
sf_status sf_match_find(const float *a, size_t na, const float *b, size_t nb, size_t dim,
                        const sf_match_options *options, sf_match_list *out, sf_error *err);
void sf_match_list_release(sf_match_list *list);

#ifdef __cplusplus
}
#endif
#endif
