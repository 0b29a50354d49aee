/* A heap whose root is the worst kept candidate: "better" is the order. */
#include "config.h"

#include "topk_internal.h"

static int better(const sf_scored *x, const sf_scored *y)
{
    return sf_rank_better(x->score, x->id, y->score, y->id);
}

static void swap(sf_scored *h, size_t i, size_t j)
{
    sf_scored t = h[i];
    h[i] = h[j];
    h[j] = t;
}

static void sift_down(sf_scored *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(&h[w], &h[l]))
            w = l;
        if (r < n && better(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        swap(h, i, w);
        i = w;
    }
}

/* The rest of sf_topk_offer, for a candidate that is kept. */
void sf_topk_insert(sf_scored *heap, size_t *n, size_t k, sf_scored c)
{
    if (*n < k) {
        size_t i = (*n)++;
        heap[i] = c;
        while (i > 0 && better(&heap[(i - 1) / 2], &heap[i])) {
            swap(heap, i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
    } else {
        heap[0] = c;
        sift_down(heap, *n, 0);
    }
}

void sf_topk_sort(sf_scored *heap, size_t n)
{
    /* The worst goes last, then the worst of the rest before it. */
    for (size_t i = n; i-- > 1;) {
        swap(heap, 0, i);
        sift_down(heap, i, 0);
    }
}

void sf_scored_sort(sf_scored *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, n, i);
    sf_topk_sort(a, n);
}
