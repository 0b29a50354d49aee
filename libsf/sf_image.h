/* Decoding image files into the tensors the FIRe network sees (spec
 * sections 1 and 2): sRGB RGB, Pillow-sized thumbnail, optional query crop,
 * ImageNet normalisation, and the bilinear multi-scale pyramid. */
#ifndef SF_IMAGE_H
#define SF_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_decode_options {
    int size;            /* long side limit; never enlarges */
    int autorotate;      /* apply EXIF orientation (the reference does not) */
    uint64_t max_pixels; /* refuse images with more pixels (from the header); 0 = no limit */
    uint64_t max_bytes;  /* refuse files longer than this (read whole first); 0 = no limit */
    int has_crop;        /* crop[] holds a query box x1, y1, x2, y2 in file pixels */
    double crop[4];
    /* Refuse images that would need more bytes of memory than this,
     * decoding them and building their pyramid at these scales
     * (sf_image_memory), estimated from the header before any pixel is
     * decoded; 0 = no limit.  scales may be NULL (n_scales 0): no pyramid. */
    uint64_t max_memory;
    const double *scales;
    int n_scales;
} sf_decode_options;

/* An 8-bit RGB image, rows top to bottom, H x W x 3. */
typedef struct sf_rgb_image {
    int width, height;
    uint8_t *pixels;     /* owned; release with sf_rgb_image_release */
    int source_width;    /* size of the decoded file (after autorotation) */
    int source_height;
} sf_rgb_image;

/* Start libvips once per process (thread-safe; later calls are no-ops). */
sf_status sf_image_library_init(sf_error *err);

/* Decode an image file, convert it to 8-bit sRGB RGB, crop and shrink it as
 * options say.  Errors name the file: missing, unreadable, not an image,
 * truncated, too large (SF_ERR_TOO_LARGE: more pixels than max_pixels, or
 * more memory than max_memory, both known from the header). */
sf_status sf_image_load_file(const char *path, const sf_decode_options *options,
                             sf_rgb_image *out, sf_error *err);
/* The same from an open file descriptor (a pipe, a FIFO, standard input):
 * read once, whole, up to options->max_bytes; name is used in messages. */
sf_status sf_image_load_fd(int fd, const char *name, const sf_decode_options *options,
                           sf_rgb_image *out, sf_error *err);
/* The same from memory; name is used in messages. */
sf_status sf_image_load_buffer(const void *data, size_t size, const char *name,
                               const sf_decode_options *options, sf_rgb_image *out,
                               sf_error *err);
void sf_rgb_image_release(sf_rgb_image *img);

/* A .npy file taken as an image already decoded, as the reference's own
 * tensors are fed through the pipeline: H x W x 3 uint8 pixels go to
 * out->pixels; a normalised 3 x H x W float32 tensor goes to *tensor
 * (malloc'd, the caller frees it) and out->pixels stays NULL.  Nothing is
 * resized: out's sizes, source size included, are the array's.  Sides of
 * 1 to 65536, at most 4 GiB of data.  Of options (may be NULL) only
 * max_memory and the scales are used: no more data than max_memory is
 * read, and the array with its pyramid must fit in it.  Errors name the
 * file; another array is SF_ERR_NOT_IMAGE, too much memory
 * SF_ERR_TOO_LARGE, a tensor with NaN or infinite values
 * SF_ERR_INVALID_DATA, and options asking for a crop
 * SF_ERR_INVALID_ARGUMENT (the array is taken as it is: no crop, no
 * resizing, no rotation). */
sf_status sf_image_load_npy(const char *path, const sf_decode_options *options,
                            sf_rgb_image *out, float **tensor, sf_error *err);

/* Bytes that decoding an image and building its pyramid take at the
 * most, as sf_image_load_* estimate them against options->max_memory:
 * the larger of
 *   while decoding: the file (file_bytes, read whole), the decoded image
 *   (source_bytes: width x height x bands x bytes per band of the file,
 *   counted in full although libvips keeps a large one in a temporary
 *   file), libvips' working buffers (VIPS_CONCURRENCY + 4 threads, each
 *   up to 64 rows of 3 float32 per pixel of source_width) and the output
 *   pixels twice (libvips' copy and ours);
 *   after: the output pixels and the pyramid at these scales
 *   (sf_pyramid_memory).
 * out_width x out_height is the image after cropping and shrinking.  Not
 * counted: the program itself (about 40 MB with libvips) and the buffers
 * a pyramid keeps from earlier images (at most SF_PYRAMID_KEEP_BYTES).
 * UINT64_MAX when that does not fit. */
uint64_t sf_image_memory(uint64_t file_bytes, uint64_t source_bytes, int source_width,
                         int out_width, int out_height, const double *scales, int n_scales);

/* Output size of Pillow's Image.thumbnail((max_side, max_side)) for a
 * width x height image: max_side is floored first, the aspect ratio is kept
 * with Pillow's rounding, nothing is enlarged.  Returns 1 when the image
 * is resized, 0 when it is kept as is. */
int sf_thumbnail_size(int width, int height, double max_side, int *out_width,
                      int *out_height);

/* Long side a query crop is shrunk to: size * max(crop) / max(full). */
double sf_crop_target_side(int size, double crop_w, double crop_h, int full_w,
                           int full_h);

/* (p/255 - mean[c]) / std[c] in float32, as torchvision computes it;
 * rgb is H x W x 3, out is 3 x H x W. */
void sf_image_normalize(const uint8_t *rgb, int width, int height,
                        const float mean[3], const float std[3], float *out);

/* Size of the pyramid level at scale s: floor(H*s), floor(W*s) in double. */
void sf_pyramid_level_size(int height, int width, double scale, int *out_height,
                           int *out_width);

/* Does every level of the pyramid of a height x width image at these
 * scales keep at least one pixel?  SF_ERR_INVALID_ARGUMENT naming the
 * first scale that does not, otherwise. */
sf_status sf_pyramid_check(int height, int width, const double *scales, int n_scales,
                           sf_error *err);

/* Bilinear resampling of a C x H x W tensor by scale, as PyTorch's
 * interpolate(scale_factor=s, mode='bilinear', align_corners=False) does it
 * without recomputing the scale factor.  out must hold C x H' x W' floats
 * (sf_pyramid_level_size).  Fails when a side would be 0, or out of memory
 * for its tables (12 bytes per output row and column). */
sf_status sf_pyramid_resize(const float *in, int channels, int height, int width,
                            double scale, float *out, sf_error *err);

/* The pyramid of one image at a time, as sf-decode writes it: the
 * normalised image at scale 1 (the base) and each level resized from it
 * (sf_pyramid_resize), one at a time in one buffer.  Its buffers are kept
 * from one image to the next, up to SF_PYRAMID_KEEP_BYTES
 * (sf_pyramid_clear). */
typedef struct sf_pyramid sf_pyramid;

/* Buffers a pyramid keeps for the next image after sf_pyramid_clear. */
#define SF_PYRAMID_KEEP_BYTES (UINT64_C(64) << 20)

/* Bytes a pyramid at these scales takes for a height x width base: the
 * base, the largest level other than scale 1 and its resampling tables.
 * Computed in double, so any size may be asked; UINT64_MAX when it does
 * not fit, 0 for an empty image. */
uint64_t sf_pyramid_memory(int height, int width, const double *scales, int n_scales);

/* scales (n_scales > 0 positive values) and the normalisation of
 * sf_pyramid_set_rgb are copied. */
sf_status sf_pyramid_create(const double *scales, int n_scales, const float mean[3],
                            const float std[3], sf_pyramid **out, sf_error *err);
void sf_pyramid_free(sf_pyramid *pyramid);

/* Make a width x height image the base: 8-bit H x W x 3 pixels, normalised
 * as sf_image_normalize does, or a normalised 3 x H x W tensor, copied.
 * Every level is checked first (sf_pyramid_check) and all the memory the
 * levels need is taken (sf_pyramid_memory), so that every failure comes
 * here, before any level is used; the pyramid then holds no image.  name
 * is used in messages. */
sf_status sf_pyramid_set_rgb(sf_pyramid *pyramid, const char *name, const uint8_t *rgb,
                             int width, int height, sf_error *err);
sf_status sf_pyramid_set_tensor(sf_pyramid *pyramid, const char *name, const float *tensor,
                                int width, int height, sf_error *err);

/* Level i (in the order of the scales given) of the image set last:
 * 3 x *height x *width floats owned by the pyramid, valid until the next
 * call.  At scale 1 it is the base itself.  Fails only when no image is
 * held or i is not 0 to n_scales - 1: a writer that took the image can
 * write all its levels. */
sf_status sf_pyramid_level(sf_pyramid *pyramid, int i, const float **data, int *height,
                           int *width, sf_error *err);

/* Done with the image held: forget it, and give back its buffers when they
 * take more than SF_PYRAMID_KEEP_BYTES, so that one large image does not
 * keep its memory through the rest of a batch. */
void sf_pyramid_clear(sf_pyramid *pyramid);

#ifdef __cplusplus
}
#endif
#endif
