/* The sf feature stream: a sequence of self-describing, checksummed records
 * that every sf program reads and writes.  Byte layout: man/sf-stream.5.
 *
 * Records of one image are contiguous and share a key; the last one carries
 * SF_RECORD_LAST, so a reader knows an image is complete without waiting for
 * the next.  Concatenating streams gives a stream. */
#ifndef SF_STREAM_H
#define SF_STREAM_H

#include <stdint.h>
#include <stdio.h>

#include "sf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* First bytes of every record; ASCII so that it can be passed to
 * `parallel --pipe --recstart`. */
#define SF_STREAM_MAGIC "#SF-REC\n"
#define SF_STREAM_MAGIC_SIZE 8
#define SF_STREAM_VERSION 1
#define SF_STREAM_MAX_DIMS 8
#define SF_STREAM_MAX_KEY 4096
/* Default limit on one payload; a reader never allocates more. */
#define SF_STREAM_DEFAULT_MAX_PAYLOAD (UINT64_C(1) << 31)

/* Element types.  Values are stored on disk: append only. */
typedef enum sf_dtype {
    SF_DTYPE_U8 = 1,
    SF_DTYPE_I16 = 2,
    SF_DTYPE_I32 = 3,
    SF_DTYPE_I64 = 4,
    SF_DTYPE_F16 = 5,
    SF_DTYPE_F32 = 6,
    SF_DTYPE_F64 = 7
} sf_dtype;
#define SF_DTYPE_COUNT 7

/* Record kinds.  Values are stored on disk: append only.  A kind with
 * SF_KIND_OPTIONAL set may be skipped by readers that do not know it;
 * an unknown kind without it is an error. */
typedef enum sf_kind {
    SF_KIND_IMAGE = 1,          /* f32 3 x H x W, normalised, one per scale */
    SF_KIND_FEATURE_MAP = 2,    /* f32 C x H x W backbone output, per scale */
    SF_KIND_SUPERFEATURES = 3,  /* f32 N x D LIT output, per scale */
    SF_KIND_ATTENTION = 4,      /* f32 N x H x W last LIT attention, per scale */
    SF_KIND_STRENGTH = 5,       /* f32 N super-feature strengths, per scale */
    SF_KIND_LOCAL_DESC = 6,     /* f32 K x d selected, reduced descriptors */
    SF_KIND_LOCAL_STRENGTH = 7, /* f32 K */
    SF_KIND_LOCAL_SCALE = 8,    /* f32 K scale each feature came from */
    SF_KIND_LOCAL_INDEX = 9,    /* i32 K template (super-feature) index */
    SF_KIND_GLOBAL = 10,        /* f32 d global descriptor */
    SF_KIND_PIXELS = 11,        /* u8 H x W x 3 resized sRGB image */
    SF_KIND_SOURCE = 12,        /* i64 [width, height] of the decoded file */
    SF_KIND_REDUCED = 13,       /* f32 N x d reduced super-features, per scale */
    /* Search results (sf-match, sf-rank): the record key is the query's. */
    SF_KIND_HIT_KEYS = 14,      /* u8 [bytes] database keys, each followed by a NUL,
                                   best first */
    SF_KIND_HIT_SCORES = 15,    /* f64 [n] their scores */
    SF_KIND_MATCH_PAIRS = 16,   /* i32 [M x 2] matched rows (query, database) of the
                                   local_desc records; index: the hit's position */
    SF_KIND_MATCH_SIMILARITY = 17 /* f32 [M] cosine similarity of each pair; index:
                                     the hit's position */
} sf_kind;
#define SF_KIND_OPTIONAL 0x8000u

/* Record flags. */
#define SF_RECORD_LAST 0x0001u  /* last record of its image */
#define SF_RECORD_KNOWN_FLAGS SF_RECORD_LAST

typedef struct sf_record {
    uint16_t kind;      /* sf_kind, possibly | SF_KIND_OPTIONAL */
    uint16_t flags;     /* SF_RECORD_* */
    uint8_t dtype;      /* sf_dtype */
    uint8_t ndim;       /* 0..SF_STREAM_MAX_DIMS; 0 means a scalar */
    uint32_t index;     /* position within the image, e.g. scale index */
    double scale;       /* pyramid scale, 1.0 when not applicable */
    uint64_t shape[SF_STREAM_MAX_DIMS];
    const char *key;    /* image key, UTF-8, NUL-terminated in memory */
    size_t key_len;     /* bytes, without the NUL */
    const void *data;   /* payload, element count = product of shape */
    uint64_t data_size; /* bytes; must equal count * sf_dtype_size(dtype) */
} sf_record;

/* Size in bytes of one element, 0 for an unknown type. */
size_t sf_dtype_size(int dtype);
/* "f32", "u8", ...; NULL for an unknown type. */
const char *sf_dtype_name(int dtype);
/* Parse a name written by sf_dtype_name; 0 if unknown. */
int sf_dtype_from_name(const char *name);
/* "image", "local_desc", ... (without the optional bit); NULL if unknown. */
const char *sf_kind_name(int kind);
/* Parse a name written by sf_kind_name; 0 if unknown. */
int sf_kind_from_name(const char *name);

/* Element count of a shape, or UINT64_MAX on overflow. */
uint64_t sf_shape_count(const uint64_t *shape, unsigned ndim);

/* Check that rec can be written: a known dtype, at most SF_STREAM_MAX_DIMS
 * dims, a key of 1..SF_STREAM_MAX_KEY bytes without NUL or the magic, a
 * readable kind, known flags, and a data_size equal to the element count
 * times the dtype size.  Returns SF_ERR_INVALID_ARGUMENT otherwise. */
sf_status sf_record_validate(const sf_record *rec, sf_error *err);

/* ---- Writing ---- */

/* Write one record to fp.  Handles short writes; a reader that went away
 * gives SF_ERR_BROKEN_PIPE (the caller decides how to exit).  Nothing is
 * written when rec is invalid.  Does not flush. */
sf_status sf_stream_write_record(FILE *fp, const sf_record *rec, sf_error *err);

/* ---- Reading ---- */

typedef struct sf_stream_reader sf_stream_reader;

/* Read records from fp (not closed by the reader).  name is used in error
 * messages ("photos.sfs", "<stdin>"). */
sf_status sf_stream_reader_create(sf_stream_reader **out, FILE *fp,
                                  const char *name, sf_error *err);
void sf_stream_reader_free(sf_stream_reader *reader);

/* Largest payload accepted (default SF_STREAM_DEFAULT_MAX_PAYLOAD). */
void sf_stream_reader_set_max_payload(sf_stream_reader *reader, uint64_t bytes);

/* Read the next record.  On success *rec points to a record owned by the
 * reader, valid until the next call; *rec is NULL at a clean end of stream.
 * Unknown optional kinds are skipped.  Errors name the stream, the record
 * number (0-based), the byte offset of the record and the reason, and leave
 * the reader unusable. */
sf_status sf_stream_read_record(sf_stream_reader *reader, const sf_record **rec,
                                sf_error *err);

/* Number of records returned so far, and the byte offset of the next one. */
uint64_t sf_stream_reader_records(const sf_stream_reader *reader);
uint64_t sf_stream_reader_offset(const sf_stream_reader *reader);
/* Number of images completed so far: records read with SF_RECORD_LAST,
 * skipped ones included.  A record returned when the count was n belongs
 * to image n (n - 1 once its own SF_RECORD_LAST is counted), so a caller can
 * see an image end even when its last record was a skipped optional one. */
uint64_t sf_stream_reader_images(const sf_stream_reader *reader);

/* ---- Export ---- */

/* Write the payload of rec as a NumPy .npy file (format 1.0, little-endian,
 * C order), so that any outside tool can read what sf produced. */
sf_status sf_npy_write(FILE *fp, const sf_record *rec, sf_error *err);

/* An array read from a .npy file. */
typedef struct sf_npy_array {
    uint8_t dtype;      /* sf_dtype */
    uint8_t ndim;
    uint64_t shape[SF_STREAM_MAX_DIMS];
    void *data;         /* malloc'd; free() it */
    uint64_t data_size;
} sf_npy_array;

/* Read a .npy file (format 1.0-3.0, little-endian, C order, one of the
 * stream's element types).  The header is checked against the file size
 * before anything is allocated; at most max_bytes of data are accepted. */
sf_status sf_npy_read(FILE *fp, const char *name, uint64_t max_bytes, sf_npy_array *out,
                      sf_error *err);

#ifdef __cplusplus
}
#endif
#endif
