/* The .npy format inside libsf: npy.c writes and reads single arrays,
 * npy_stack.c builds stacked ones on them. */
#ifndef SF_NPY_INTERNAL_H
#define SF_NPY_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "sf_stream.h"

/* NumPy's own alignment, so the data can be memory-mapped. */
#define NPY_ALIGN 64
/* Magic, version and the u16 header length. */
#define NPY_PREAMBLE 10
/* Room for any header sf_npy_header writes (up to SF_STREAM_MAX_DIMS + 1
 * dims), a multiple of NPY_ALIGN. */
#define SF_NPY_HEADER_MAX 512

/* Write a format 1.0 header for an array of dtype and shape into header
 * (SF_NPY_HEADER_MAX bytes), padded with spaces to a multiple of 64 and to
 * at least min_total bytes (a multiple of 64, at most SF_NPY_HEADER_MAX).
 * Returns its size. */
size_t sf_npy_header(unsigned char *header, int dtype, unsigned ndim, const uint64_t *shape,
                     size_t min_total);

/* sf_npy_read without the data: out gets the dtype, shape and data_size
 * (data NULL), and fp is left at the first byte of the data. */
sf_status sf_npy_read_header(FILE *fp, const char *name, uint64_t max_bytes, sf_npy_array *out,
                             sf_error *err);

#endif
