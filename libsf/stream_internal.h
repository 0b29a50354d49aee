/* Shared by stream.c (records) and stream_image.c (whole images): the
 * reader's state. */
#ifndef SF_STREAM_INTERNAL_H
#define SF_STREAM_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "sf_stream.h"

/* Fixed part of a record header, before the dims. */
#define SF_STREAM_FIXED_SIZE 40
/* Largest header: fixed part, dims, key and the header checksum. */
#define SF_STREAM_MAX_HEADER (SF_STREAM_FIXED_SIZE + 8 * SF_STREAM_MAX_DIMS + SF_STREAM_MAX_KEY + 4)

/* One record of the image being assembled, with a payload buffer it owns. */
typedef struct sf_stream_slot {
    unsigned char *buf;
    size_t cap;
} sf_stream_slot;

struct sf_stream_reader {
    FILE *fp;
    char *name;
    uint64_t max_payload;
    uint64_t offset;    /* bytes consumed so far */
    uint64_t seen;      /* records read, skipped ones included: numbers messages */
    uint64_t returned;  /* records handed to the caller */
    uint64_t images;    /* records read with SF_RECORD_LAST, skipped ones included */
    uint64_t since_end; /* images closed since the last end record */
    uint64_t ends;      /* end records read */
    int allow_partial;  /* a missing end is not an error */
    int last_closed;    /* the record just read carried SF_RECORD_LAST */
    int ended;          /* clean end of stream reached */
    sf_status failed;   /* first error, repeated by every later call */
    sf_error error;

    /* The image being read: its key while its last record has not come. */
    int image_open;
    char open_key[SF_STREAM_MAX_KEY + 1];
    size_t open_key_len;

    unsigned char header[SF_STREAM_MAX_HEADER];
    char key[SF_STREAM_MAX_KEY + 1];
    unsigned char *payload;
    size_t payload_cap;
    sf_record rec;

    /* sf_stream_read_image: the records of the image it returns. */
    sf_stream_slot *slots;
    sf_record *image_recs;
    size_t slot_cap;
    char image_key[SF_STREAM_MAX_KEY + 1];
    uint64_t image_number;
    sf_stream_image image;
};

/* sf_stream_read_record that also says, with *closed, when the record just
 * read (returned, or skipped: then *rec is NULL) closed its image. */
sf_status sf_stream_next(sf_stream_reader *r, const sf_record **rec, int *closed, sf_error *err);
/* Swap the reader's payload buffer with *buf (capacity *cap), so that the
 * caller keeps the payload of the record just read without copying it. */
void sf_stream_take_payload(sf_stream_reader *r, unsigned char **buf, size_t *cap);

/* The element type a known kind's records must have (0 for another kind). */
int sf_kind_dtype(int kind);
/* The checks sf_stream_read_image applies, for an image assembled
 * elsewhere (an import): every record valid (sf_record_validate,
 * sf_record_check_contents) and the image as a whole; fills its
 * provenance fields.  SF_ERR_INVALID_ARGUMENT or SF_ERR_INVALID_DATA with
 * the reason otherwise. */
sf_status sf_stream_image_check(sf_stream_image *img, sf_error *err);

#endif
