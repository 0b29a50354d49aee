/* Pictures of what sf found: the match picture of two images (lines
 * between matched super-features) and attention heat maps, drawn from the
 * records a stream holds (man/sf-draw.1 defines every geometric choice). */
#ifndef SF_DRAW_H
#define SF_DRAW_H

#include <stddef.h>
#include <stdint.h>

#include "sf_image.h"
#include "sf_status.h"
#include "sf_stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a super-feature's location is taken from its attention map (the
 * record of kind attention whose scale is the feature's local_scale, map
 * local_index), the map's h x w cells laid evenly over the pixels record's
 * W x H pixels so that cell (i, j) has its centre at
 * ((i + 0.5) W / w, (j + 0.5) H / h): */
typedef enum sf_draw_location {
    SF_DRAW_PEAK = 0,    /* the centre of the cell of highest attention
                            (the first in row order on a tie) */
    SF_DRAW_CENTROID = 1 /* the attention-weighted mean of the cell centres */
} sf_draw_location;

/* Where each local feature (row of local_desc) of img lies, in pixels of
 * its pixels record: xy[2k], xy[2k + 1] for row k (0 <= x <= W, 0 <= y <= H);
 * xy holds 2 * rows doubles (rows: the length of local_scale).  Needs the
 * records pixels, attention (one per scale, no two of one scale),
 * local_scale and local_index: SF_ERR_NOT_FOUND naming the image, the
 * missing kind and the program option that writes it otherwise;
 * SF_ERR_INVALID_DATA when a feature's scale has no attention record or
 * its index no map. */
sf_status sf_draw_locate(const sf_stream_image *img, sf_draw_location how, double *xy,
                         size_t rows, sf_error *err);
/* What a picture needs of an image, for sf_draw_check_image. */
#define SF_DRAW_NEED_PIXELS 1u    /* the pixels record (sf-decode --pixels) */
#define SF_DRAW_NEED_ATTENTION 2u /* attention records (sf-lit --attention) */
#define SF_DRAW_NEED_LOCAL 4u     /* local_scale and local_index (sf-lit) */
#define SF_DRAW_NEED_STRENGTH 8u  /* local_strength (sf-lit) */
/* Does img hold the records `needs` names?  SF_ERR_NOT_FOUND otherwise, in
 * one message naming the image, every kind missing and the program option
 * that writes it. */
sf_status sf_draw_check_image(const sf_stream_image *img, unsigned needs, sf_error *err);

/* Number of local features of img (the length of its local_scale
 * record); 0 with SF_ERR_NOT_FOUND in err when it has none. */
size_t sf_draw_local_count(const sf_stream_image *img, sf_error *err);

/* Colour of the ramp used for similarities and heat maps at t in [0, 1]
 * (clamped): dark blue, blue, cyan, green, yellow, red. */
void sf_draw_ramp(double t, uint8_t rgb[3]);

typedef struct sf_draw_match_options {
    sf_draw_location location;
    int height;           /* both images resized to this height; 0: as stored */
    int line_width;       /* pixels, >= 1 */
    int fixed_color;      /* nonzero: every line in color, not by similarity */
    uint8_t color[3];
    int has_range;        /* similarities lo..hi span the ramp; else the min
                             and max of the matches drawn */
    double lo, hi;
    size_t max_lines;     /* the most similar ones; 0: all */
} sf_draw_match_options;

/* The defaults: peak, stored height, width 2, by similarity, all lines. */
void sf_draw_match_options_init(sf_draw_match_options *o);

/* Gap in pixels between two images, or two panels, of a picture. */
#define SF_DRAW_GAP 8

/* The match picture of query image a and database image b: a on the left,
 * b to its right after SF_DRAW_GAP pixels, both top-aligned on a dark grey
 * canvas, and for each match (row i of pairs: local feature pairs[2i] of a
 * and pairs[2i + 1] of b, similarity sim[i]) a straight line between the
 * two locations (sf_draw_locate) with a filled disc of radius
 * line_width + 1 at each end, least similar first so that the most similar
 * lie on top.  pairs and sim are what sf-match --pairwise writes
 * (match_pairs, match_similarity); every row must be within both images'
 * local features, and when both images hold local_desc each similarity
 * must equal the cosine of the two descriptors (1e-3): the streams then
 * are the ones that were matched.  out->pixels is malloc'd. */
sf_status sf_draw_match(const sf_stream_image *a, const sf_stream_image *b,
                        const int32_t *pairs, const float *sim, size_t n_pairs,
                        const sf_draw_match_options *o, sf_rgb_image *out, sf_error *err);

typedef struct sf_draw_attention_options {
    sf_draw_location location;
    int height;          /* panels resized to this height; 0: as stored */
    const int *templates; /* show these templates' maps ... */
    size_t n_templates;
    double scale;        /* ... at this scale (0: the held scale nearest 1) */
    size_t strongest;    /* or those of the N strongest local features,
                            each at its own scale, when n_templates is 0 */
    int columns;         /* panels per row; 0: up to 4 */
    int mark;            /* ring the location of each strongest feature */
} sf_draw_attention_options;

void sf_draw_attention_options_init(sf_draw_attention_options *o);

/* The attention panels of one image: for each map shown, the image with
 * the map laid over it as a heat map (map value v, scaled so that the
 * map's largest is 1 and sampled bilinearly between cell centres, gives
 * (1 - 0.7 v) pixel + 0.7 v ramp(v)), panels left to right in rows of
 * `columns`, SF_DRAW_GAP pixels apart.  out->pixels is malloc'd. */
sf_status sf_draw_attention(const sf_stream_image *img, const sf_draw_attention_options *o,
                            sf_rgb_image *out, sf_error *err);

/* Save a picture as PNG or JPEG (quality 90), chosen by path's extension
 * (.png, .jpg, .jpeg, any case; SF_ERR_INVALID_ARGUMENT otherwise), whole
 * or not at all (a temporary file renamed into place). */
sf_status sf_draw_save(const sf_rgb_image *img, const char *path, sf_error *err);
/* Is path's extension one sf_draw_save writes? */
int sf_draw_format_known(const char *path);

#ifdef __cplusplus
}
#endif
#endif
