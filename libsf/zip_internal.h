/* Read-only ZIP access over a buffer, for PyTorch checkpoints.  torch.save
 * stores every member uncompressed (method 0), so a member is a slice of
 * the buffer: nothing is inflated and nothing is copied. */
#ifndef SF_ZIP_INTERNAL_H
#define SF_ZIP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sf_status.h"

/* More members than any checkpoint has; bounds the central directory. */
#define SF_ZIP_MAX_ENTRIES ((size_t)1 << 20)

typedef struct sf_zip_entry {
    const char *name;      /* into the buffer, not NUL-terminated */
    size_t name_len;
    uint64_t size;         /* uncompressed size */
    uint64_t csize;        /* compressed size (equal to size when stored) */
    uint64_t local_offset; /* of the local header */
    uint32_t crc32;
    uint16_t method;
    uint16_t flags;
    int checked;           /* set once the local header and CRC passed */
} sf_zip_entry;

/* The buffer must outlive the archive; label prefixes every message. */
typedef struct sf_zip {
    const unsigned char *data;
    size_t size;
    const char *label;
    sf_zip_entry *entries; /* sorted by name, names unique */
    size_t n_entries;
} sf_zip;

/* Parse the end records and the central directory.  Members are not
 * touched until read. */
sf_status sf_zip_open(sf_zip *zip, const void *data, size_t size, const char *label,
                      sf_error *err);
/* Frees the entry table only; the buffer belongs to the caller. */
void sf_zip_close(sf_zip *zip);

/* NULL when no member has exactly this name. */
sf_zip_entry *sf_zip_find(const sf_zip *zip, const char *name, size_t name_len);

/* The bytes of a stored member, after checking its local header, bounds
 * and (the first time) its CRC-32.  Any other compression method is
 * SF_ERR_UNSUPPORTED. */
sf_status sf_zip_read(const sf_zip *zip, sf_zip_entry *entry, const unsigned char **data,
                      uint64_t *size, sf_error *err);

/* CRC-32 (ISO-HDLC, as ZIP uses): start with crc 0, feed chunks. */
uint32_t sf_crc32(uint32_t crc, const void *data, size_t len);

/* Copy name into buf (size n, n >= 8) for messages: printable ASCII kept,
 * other bytes as \xNN, shortened with "..." when long. */
const char *sf_zip_printable(char *buf, size_t n, const char *name, size_t len);

#endif
