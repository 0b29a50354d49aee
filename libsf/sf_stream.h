/* The sf feature stream: a sequence of self-describing, checksummed records
 * that every sf program reads and writes.  Byte layout: man/sf-stream.5.
 *
 * Records of one image are contiguous and share a key; the last one carries
 * SF_RECORD_LAST, so a reader knows an image is complete without waiting for
 * the next.  A writer that finished puts an end record last, counting its
 * images, so that a stream cut between two images is told from a whole one.
 * Concatenating streams gives a stream: each end closes the images since the
 * previous one, and the stream is whole when it ends with an end record. */
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
/* 2: end records and provenance.  Version 1 streams have neither and are
 * refused with a message saying so. */
#define SF_STREAM_VERSION 2
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
    SF_KIND_MATCH_SIMILARITY = 17, /* f32 [M] cosine similarity of each pair; index:
                                      the hit's position */
    SF_KIND_PROVENANCE = 18,    /* i64 [6] which stage made the image, from what:
                                   the fields of sf_provenance in order */
    SF_KIND_END = 19            /* i64 [1] images written since the previous end;
                                   key: the writing program.  Never part of an
                                   image: readers verify it and do not return it */
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

/* Fill rec: the key, kind, dtype and shape given, scale 1, index 0, no
 * flags, data_size from the shape. */
void sf_record_make(sf_record *rec, const char *key, int kind, int dtype, unsigned ndim,
                    const uint64_t *shape, const void *data);

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
/* Accept an input that stops without its end record, between images: a
 * piece of a stream, as `parallel --pipe` cuts one.  By default that is an
 * SF_ERR_TRUNCATED error at the end ("the program that wrote it stopped
 * early"). */
void sf_stream_reader_allow_partial(sf_stream_reader *reader, int allow);

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

/* How many images a reader of the stream in the regular file fd would meet
 * from the file's current offset to its end, counted ahead by walking the
 * record headers (each verified by its checksum; payloads are skipped, not
 * read), for progress reports.  The offset does not move.  *bytes (may be
 * NULL) receives the bytes from the offset to the end.  SF_ERR_UNSUPPORTED
 * when fd is not a regular file (a pipe cannot be read ahead),
 * SF_ERR_TOO_LARGE after max_records records (0: no limit), and
 * SF_ERR_FORMAT, SF_ERR_CHECKSUM or SF_ERR_TRUNCATED where a header is
 * broken: a reader will say why when it gets there. */
sf_status sf_stream_count_images(int fd, uint64_t max_records, uint64_t *images, uint64_t *bytes,
                                 sf_error *err);

/* ---- Whole images ---- */

/* Stages of the pipeline, as provenance records name them. */
typedef enum sf_stage {
    SF_STAGE_DECODE = 1,  /* sf-decode: the pyramid */
    SF_STAGE_EXTRACT = 2, /* sf-extract: backbone feature maps */
    SF_STAGE_LIT = 3      /* sf-lit: super-features and descriptors */
} sf_stage;

/* Where an image's numbers come from: the stage that wrote them and a
 * fingerprint of everything upstream that changes them.  Each stage copies
 * what it read and fills its own fields; 0 means "not done yet". */
typedef struct sf_provenance {
    uint64_t stage;            /* sf_stage */
    uint64_t decode;           /* sf_provenance_decode_settings */
    uint64_t extract_model;    /* sf_model_checksum of the backbone's model */
    uint64_t extract_settings; /* sf_provenance_compute_settings */
    uint64_t lit_model;        /* sf_model_checksum of the LIT's model */
    uint64_t lit_settings;     /* sf_provenance_compute_settings */
} sf_provenance;
#define SF_PROVENANCE_FIELDS 6

/* "decode", "extract", "lit"; NULL for another value. */
const char *sf_stage_name(uint64_t stage);
/* One fingerprint for everything that shaped an image's descriptors (all
 * fields of a LIT-stage provenance), the value an index records. */
uint64_t sf_provenance_features(const sf_provenance *p);
/* What a stage writes after reading an image made as `in`: `in` with the
 * stage's own fields (the model checksum and settings fingerprint of
 * SF_STAGE_EXTRACT or SF_STAGE_LIT) filled in. */
sf_provenance sf_provenance_after(const sf_provenance *in, sf_stage stage, uint64_t model,
                                  uint64_t settings);
/* The provenance record of an image; payload points into fields[]. */
void sf_provenance_record(sf_record *rec, const sf_provenance *p, const char *key,
                          uint64_t fields[SF_PROVENANCE_FIELDS]);
/* Fingerprints of the settings that change the numbers: the pyramid's
 * (long side, normalisation, scales; not the crop or the rotation, which
 * choose what is seen), and a network run's (precision, and the features
 * kept after LIT, 0 for the backbone). */
uint64_t sf_provenance_decode_settings(int size, const float mean[3], const float std[3],
                                       const double *scales, int n_scales);
uint64_t sf_provenance_compute_settings(int precision, int features_kept);

/* One image: all its records in stream order, whatever record closed it
 * (a skipped optional one included). */
typedef struct sf_stream_image {
    const char *key;
    size_t key_len;
    const sf_record *recs; /* owned by the reader, valid until its next read */
    size_t count;
    uint64_t number;       /* 0-based position among the stream's images */
    int has_provenance;
    sf_provenance provenance;
} sf_stream_image;

/* Read the next whole image into *img (NULL at a clean end).  Every record
 * is checked with sf_record_check_contents and the image as a whole (at
 * most one record of each single kind, per-feature records of equal
 * length, hit keys and scores in pairs).  An image that fails those checks
 * returns SF_ERR_INVALID_DATA with *img NULL and a message naming the
 * stream, the image and the reason; the reader then goes on with the next
 * image.  Any other error ends the stream, as with sf_stream_read_record.
 * Mix no calls of sf_stream_read_record with these. */
sf_status sf_stream_read_image(sf_stream_reader *reader, const sf_stream_image **img,
                               sf_error *err);
/* The first record of kind in img, or NULL. */
const sf_record *sf_stream_image_find(const sf_stream_image *img, int kind);

/* Is img what a stage may take as input: the output of stage `want`
 * (SF_STAGE_EXTRACT also made with model, when model is not 0)?
 * SF_ERR_MISMATCH naming the image and what it is otherwise. */
sf_status sf_provenance_check_stage(const sf_stream_image *img, sf_stage want, uint64_t model,
                                    sf_error *err);
/* Are img's descriptors made as `features` (an sf_provenance_features
 * value) says?  what names the other side in the message ("the index"). */
sf_status sf_provenance_check_features(const sf_stream_image *img, uint64_t features,
                                       const char *what, sf_error *err);

/* What a record of a known kind must hold, beyond sf_record_validate: its
 * dtype, its rank and dims, and finite values where the maths needs them
 * (descriptors, strengths, scales, scores).  SF_ERR_INVALID_DATA with the
 * key, the kind and the reason otherwise.  Every reader applies it. */
sf_status sf_record_check_contents(const sf_record *rec, sf_error *err);

/* Write the records of one image, the last one flagged SF_RECORD_LAST and
 * the others not, whatever their flags say. */
sf_status sf_stream_write_image(FILE *fp, const sf_record *recs, size_t count, sf_error *err);
/* Write the end record: writer names the program, images counts the images
 * it wrote.  A program writes it last, and only when it finished. */
sf_status sf_stream_write_end(FILE *fp, const char *writer, uint64_t images, sf_error *err);

/* ---- Values ---- */

/* Element i (below the element count) of rec's payload as a double: f16
 * widened exactly, i64 rounded to the nearest double; NaN for an unknown
 * dtype. */
double sf_record_element(const sf_record *rec, uint64_t i);

/* What the values of a record are, whatever its dtype. */
typedef struct sf_record_stats {
    uint64_t count;  /* elements */
    uint64_t n_nan;  /* elements that are NaN */
    double min, max; /* over the elements that are not NaN; NaN when none is */
    double mean;     /* over all elements, so NaN when one is NaN (or there
                        are none, or +inf and -inf meet) */
} sf_record_stats;

void sf_record_summarize(const sf_record *rec, sf_record_stats *out);

/* ---- Choosing images and records ---- */

/* Which images of a stream to keep, by key, and which of their records, by
 * kind and index.  An image is kept when any key or pattern selects it
 * (every image when there are none); a record of a kept image when it
 * passes both the kinds (every kind when none is given) and the index.
 * The provenance record describes the whole image: the index does not
 * apply to it.  Owned by the caller; sf_record_filter_free(NULL) does
 * nothing. */
typedef struct sf_record_filter sf_record_filter;

sf_status sf_record_filter_create(sf_record_filter **out, sf_error *err);
void sf_record_filter_free(sf_record_filter *filter);
/* Keep the images with this key (copied); SF_ERR_INVALID_ARGUMENT when it
 * is empty. */
sf_status sf_record_filter_add_key(sf_record_filter *filter, const char *key, sf_error *err);
/* Keep the images whose key matches this shell pattern (fnmatch without
 * flags, so '*' matches '/' too; copied). */
sf_status sf_record_filter_add_glob(sf_record_filter *filter, const char *glob, sf_error *err);
/* Keep the records of this kind (an sf_kind); SF_ERR_INVALID_ARGUMENT for
 * an unknown one. */
sf_status sf_record_filter_add_kind(sf_record_filter *filter, int kind, sf_error *err);
/* Keep only the records with this index. */
void sf_record_filter_set_index(sf_record_filter *filter, uint32_t index);
/* Does filter keep rec, a record of an image it keeps? */
int sf_record_filter_keeps_record(const sf_record_filter *filter, const sf_record *rec);
/* How many records of img filter keeps: 0 when it leaves the image out.
 * The provenance record counts only along with others, unless it is asked
 * for by kind or nothing is filtered out. */
size_t sf_record_filter_count(const sf_record_filter *filter, const sf_stream_image *img);

/* ---- Export ---- */

/* Write the payload of rec as a NumPy .npy file (format 1.0, little-endian,
 * C order), so that any outside tool can read what sf produced. */
sf_status sf_npy_write(FILE *fp, const sf_record *rec, sf_error *err);
/* Write rec as the .npy file path: whole or not at all (a temporary file
 * renamed into place), so a full disk or a signal leaves no truncated
 * file. */
sf_status sf_npy_save(const char *path, const sf_record *rec, sf_error *err);

/* Room for any name sf_npy_file_name writes, its NUL included. */
#define SF_NPY_NAME_SIZE 256
/* The file name rec is exported under: KEY.KIND.INDEX.npy, the key made
 * one safe file name: letters, digits, '-', '_', '+' and '.' are kept,
 * any other byte ('/' and non-ASCII included) becomes '_', a leading '.'
 * too, and the key is cut at 200 bytes. */
void sf_npy_file_name(const sf_record *rec, char name[SF_NPY_NAME_SIZE]);

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

/* ---- Stacked arrays ---- */

/* An export of many images to one directory: one .npy per record kind,
 * KIND.npy, holding the records of every image, and manifest.tsv, one line
 * per record (image number, key, kind, index, scale, first row, rows,
 * shape) saying where it is.  Records of global, source and provenance
 * are stacked along a new first axis (one row each; every record of the
 * kind must have the same shape); those of image, feature_map, attention
 * and pixels, whose shapes differ from scale to scale, are flattened and
 * put end to end (first and rows count elements); the others are rows
 * along the first axis (the other dims shared).  Layouts in detail:
 * sf-cat(1), STACKED ARRAYS.
 *
 * Every file is written beside its name and renamed into place at commit,
 * the manifest last; nothing is renamed when the writer is freed without
 * a commit.  Owned by the caller; free(NULL) does nothing. */
typedef struct sf_npy_stack_writer sf_npy_stack_writer;

/* dir must exist. */
sf_status sf_npy_stack_writer_create(const char *dir, sf_npy_stack_writer **out, sf_error *err);
/* Add the records of img that filter keeps (all when filter is NULL) as
 * the next image; an image of which none is kept is not counted.  Either
 * every kept record is added or none: a record that cannot join its
 * kind's array (another dtype or shape than the records before) gives
 * SF_ERR_INVALID_DATA naming the key and the kind, and the writer goes on.
 * A write error (SF_ERR_IO) ends the writer: every later call repeats it. */
sf_status sf_npy_stack_writer_add_image(sf_npy_stack_writer *w, const sf_stream_image *img,
                                        const sf_record_filter *filter, sf_error *err);
/* Images added so far. */
uint64_t sf_npy_stack_writer_images(const sf_npy_stack_writer *w);
/* Write the arrays' headers and rename every file into place. */
sf_status sf_npy_stack_writer_commit(sf_npy_stack_writer *w, sf_error *err);
void sf_npy_stack_writer_free(sf_npy_stack_writer *w);

/* Reading such a directory back, or one another tool wrote in the same
 * layout.  The manifest's header line names its columns, in any order;
 * key, kind, first and rows are needed, image, index (default 0), scale
 * (default 1) and shape (default: from the array) are optional, and other
 * columns are ignored.  Lines are grouped into images by the image column
 * (ascending, lines of an image in file order), or without one by runs of
 * lines with the same key.  f64 arrays of kinds stored as f32 are
 * narrowed. */
typedef struct sf_npy_stack_reader sf_npy_stack_reader;

/* Read dir/manifest.tsv and open the arrays it names, checking their
 * headers: SF_ERR_FORMAT with the file, line and reason for a manifest or
 * an array that cannot be read as one (nothing is then imported),
 * SF_ERR_NOT_FOUND for a missing one. */
sf_status sf_npy_stack_reader_open(const char *dir, sf_npy_stack_reader **out, sf_error *err);
/* The next image (*img NULL at the end), valid until the next call, its
 * records checked as sf_stream_read_image checks a stream's.  A bad image
 * (rows outside its array, a shape that does not match, NaN where the
 * kind needs finite values, ...) gives SF_ERR_INVALID_DATA naming the
 * manifest line, and the next call goes on with the next image. */
sf_status sf_npy_stack_reader_next(sf_npy_stack_reader *r, const sf_stream_image **img,
                                   sf_error *err);
void sf_npy_stack_reader_free(sf_npy_stack_reader *r);

/* The provenance of features made outside sf: stage lit, the model field
 * a fingerprint of name (the same name, the same fingerprint), the
 * settings 0.  Features imported under one name are taken as made alike,
 * and are refused alongside any others. */
sf_provenance sf_provenance_external(const char *name);

#ifdef __cplusplus
}
#endif
#endif
