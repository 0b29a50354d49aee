/* The best k of many (score, id) candidates, and sorting candidates, in
 * the one ranking order of sf (sf_rank_better).  Used by every search that
 * ranks: the index's top k, the global scan, pairwise and re-ranking. */
#ifndef SF_TOPK_INTERNAL_H
#define SF_TOPK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sf_internal.h"

typedef struct sf_scored {
    double score;
    uint64_t id; /* unique among the candidates: the order is then total */
} sf_scored;

/* Keep c if it is among the k best offered so far.  heap holds the *n <= k
 * kept, the worst at its root, so that a candidate worse than every kept
 * one costs one comparison, here, inline. */
void sf_topk_insert(sf_scored *heap, size_t *n, size_t k, sf_scored c);
static inline void sf_topk_offer(sf_scored *heap, size_t *n, size_t k, sf_scored c)
{
    if (*n < k || (k > 0 && sf_rank_better(c.score, c.id, heap[0].score, heap[0].id)))
        sf_topk_insert(heap, n, k, c);
}
/* Sort the n candidates of such a heap, best first. */
void sf_topk_sort(sf_scored *heap, size_t n);
/* Sort any n candidates, best first. */
void sf_scored_sort(sf_scored *a, size_t n);

#endif
