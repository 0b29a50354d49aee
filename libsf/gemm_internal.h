/* Blocked distance products: the one place libsf calls oneDNN (backends
 * aside).  Not installed. */
#ifndef SF_GEMM_INTERNAL_H
#define SF_GEMM_INTERNAL_H

#include <stddef.h>

#include "sf_status.h"

/* sgemm's rounding depends on the shape it is given: oneDNN 2.6 sums each
 * dot product in dimension order with fused multiply-adds (dimensions up
 * to 256), but with fewer than 16 rows or 2 columns it switches to
 * kernels that sum in another order.  Tiles of at least these sizes give
 * a row the same products in every tile. */
#define SF_GEMM_MIN_ROWS 16
#define SF_GEMM_MIN_COLS 16

/* The cross term of squared distances, -2 x c^T, of n rows x against k
 * rows c (both dim wide, row-major), tile by tile: one sgemm call per row
 * block (row_block rows, the last one shorter) and column block
 * (col_block columns; the last of the col_blocks takes every column left,
 * so it may be wider).  A row's products therefore depend on the tiling
 * only, never on the threads.
 *
 * The work is cut into units, a row block against a part (parts equal
 * ranges of the column blocks), shared among up to `threads` threads, the
 * calling one included; each sgemm runs single-threaded.  For every unit a
 * worker calls begin, then tile for each column block in order with the
 * rows x cols products (row-major, cols wide, valid until the next call),
 * then end.  Callbacks of different units run concurrently. */
typedef struct sf_gemm_tiles {
    const float *x, *c;
    size_t n, k, dim;
    size_t row_block, col_block, col_blocks, parts;
    /* Row blocks shorter than SF_GEMM_MIN_ROWS go to sgemm zero-padded to
     * that many rows, or with tiny to an exact small kernel (where
     * sf_gemm_tiny_exact says it is exact): the products of a row are then
     * the same alone or among thousands.  0 leaves short blocks as they
     * are. */
    int pad_short, tiny;
    int threads;       /* at most; at least one runs */
    const char *what;  /* starts error messages: "quantize" */
    void *ctx;
    void (*begin)(void *ctx, size_t r0, size_t rows, size_t part);  /* may be NULL */
    void (*tile)(void *ctx, size_t r0, size_t rows, size_t part, size_t c0, size_t cols,
                 const float *prod);
    void (*end)(void *ctx, size_t r0, size_t rows, size_t part);    /* may be NULL */
} sf_gemm_tiles;

sf_status sf_gemm_tiles_run(const sf_gemm_tiles *tiles, sf_error *err);

/* Whether the small kernel for short row blocks gives sgemm's products
 * bit for bit on this machine for these k x dim centroids. */
int sf_gemm_tiny_exact(const float *c, size_t k, size_t dim);

#endif
