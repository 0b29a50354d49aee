#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_internal.h"
#include "zip_internal.h"

/* Record signatures and fixed sizes (APPNOTE 4.3). */
#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define LOCAL_SIZE 30
#define CENTRAL_SIZE 46
#define EOCD_SIZE 22
#define EOCD64_SIZE 56
#define LOCATOR64_SIZE 20
#define MAX_COMMENT 65535

/* ---- CRC-32 ---- */

/* Slicing-by-8: eight 256-entry tables, so the 52 MB official model checks
 * in tens of milliseconds rather than a quarter second. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t sf_crc32(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ sf_get_u32(p);
        uint32_t hi = sf_get_u32(p + 4);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff]
            ^ crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24]
            ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff]
            ^ crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- Helpers ---- */

const char *sf_zip_printable(char *buf, size_t n, const char *name, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (o + 8 >= n) { /* room for "\xNN" or "..." and the NUL */
            memcpy(buf + o, "...", 4);
            return buf;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
    }
    buf[o] = '\0';
    return buf;
}

/* a + b <= limit without overflow. */
static int fits(uint64_t a, uint64_t b, uint64_t limit)
{
    return a <= limit && b <= limit - a;
}

static int entry_cmp(const void *a, const void *b)
{
    const sf_zip_entry *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

/* ---- End records ---- */

typedef struct cd_location {
    uint64_t offset, size, count;
    uint64_t end; /* where the central directory must end (an end record) */
} cd_location;

static sf_status find_eocd(const sf_zip *zip, size_t *at, sf_error *err)
{
    const unsigned char *d = zip->data;
    if (zip->size < EOCD_SIZE)
        return sf_error_set(err, SF_ERR_TRUNCATED,
                            "%s: %zu bytes is too short for a ZIP archive", zip->label, zip->size);
    /* The comment is at most 64 KiB, so the record is within that of the
     * end; it must end exactly where its comment says, which rules out the
     * signature bytes turning up inside a comment or tensor data. */
    size_t last = zip->size - EOCD_SIZE;
    size_t first = last > MAX_COMMENT ? last - MAX_COMMENT : 0;
    for (size_t pos = last + 1; pos-- > first;) {
        if (d[pos] == 'P' && sf_get_u32(d + pos) == SIG_EOCD
            && pos + EOCD_SIZE + sf_get_u16(d + pos + 20) == zip->size) {
            *at = pos;
            return SF_OK;
        }
    }
    return sf_error_set(err, SF_ERR_TRUNCATED,
                        "%s: no ZIP end of central directory record (truncated or not a ZIP archive)",
                        zip->label);
}

static sf_status locate_cd(const sf_zip *zip, cd_location *cd, sf_error *err)
{
    const unsigned char *d = zip->data;
    size_t eocd = 0;
    sf_status st = find_eocd(zip, &eocd, err);
    if (st)
        return st;
    const unsigned char *e = d + eocd;
    uint16_t disk = sf_get_u16(e + 4), cd_disk = sf_get_u16(e + 6);
    uint16_t n_disk = sf_get_u16(e + 8), n_total = sf_get_u16(e + 10);
    uint32_t cd_size = sf_get_u32(e + 12), cd_off = sf_get_u32(e + 16);
    int saturated = n_disk == 0xffff || n_total == 0xffff || cd_size == 0xffffffffu
                    || cd_off == 0xffffffffu;

    if (eocd >= LOCATOR64_SIZE && sf_get_u32(d + eocd - LOCATOR64_SIZE) == SIG_LOCATOR64) {
        /* ZIP64 (torch writes it for every archive): its record wins. */
        const unsigned char *l = d + eocd - LOCATOR64_SIZE;
        uint64_t rec = sf_get_u64(l + 8);
        if (sf_get_u32(l + 4) != 0 || sf_get_u32(l + 16) > 1)
            return sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: multi-disk ZIP archives are not supported",
                                zip->label);
        if (!fits(rec, EOCD64_SIZE, eocd - LOCATOR64_SIZE))
            return sf_error_set(err, SF_ERR_FORMAT,
                                "%s: ZIP64 end record offset %llu is outside the archive", zip->label,
                                (unsigned long long)rec);
        const unsigned char *z = d + rec;
        if (sf_get_u32(z) != SIG_EOCD64)
            return sf_error_set(err, SF_ERR_FORMAT, "%s: bad ZIP64 end record signature at offset %llu",
                                zip->label, (unsigned long long)rec);
        if (sf_get_u32(z + 16) != 0 || sf_get_u32(z + 20) != 0)
            return sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: multi-disk ZIP archives are not supported",
                                zip->label);
        uint64_t c_disk = sf_get_u64(z + 24);
        cd->count = sf_get_u64(z + 32);
        cd->size = sf_get_u64(z + 40);
        cd->offset = sf_get_u64(z + 48);
        cd->end = rec;
        if (c_disk != cd->count)
            return sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: multi-disk ZIP archives are not supported",
                                zip->label);
    } else {
        if (saturated)
            return sf_error_set(err, SF_ERR_FORMAT,
                                "%s: ZIP end record needs ZIP64 but the ZIP64 locator is missing",
                                zip->label);
        if (disk != 0 || cd_disk != 0 || n_disk != n_total)
            return sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: multi-disk ZIP archives are not supported",
                                zip->label);
        cd->count = n_total;
        cd->size = cd_size;
        cd->offset = cd_off;
        cd->end = eocd;
    }
    if (!fits(cd->offset, cd->size, cd->end))
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: ZIP central directory (offset %llu, %llu bytes) lies outside the archive",
                            zip->label, (unsigned long long)cd->offset, (unsigned long long)cd->size);
    /* Each entry takes at least CENTRAL_SIZE bytes, so the count cannot
     * make us allocate more than the directory's size justifies. */
    if (cd->count > cd->size / CENTRAL_SIZE)
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: ZIP central directory claims %llu entries in %llu bytes", zip->label,
                            (unsigned long long)cd->count, (unsigned long long)cd->size);
    if (cd->count > SF_ZIP_MAX_ENTRIES)
        return sf_error_set(err, SF_ERR_TOO_LARGE, "%s: ZIP archive has %llu members (limit %zu)",
                            zip->label, (unsigned long long)cd->count, SF_ZIP_MAX_ENTRIES);
    return SF_OK;
}

/* ---- Central directory ---- */

/* Fill the fields that the central entry saturated from its ZIP64 extra
 * field (APPNOTE 4.5.3: present values come in a fixed order). */
static sf_status read_zip64_extra(const sf_zip *zip, sf_zip_entry *e, const unsigned char *x,
                                  size_t xlen, int need_size, int need_csize, int need_off,
                                  sf_error *err)
{
    char nm[128];
    while (xlen >= 4) {
        uint16_t id = sf_get_u16(x), len = sf_get_u16(x + 2);
        if (len > xlen - 4)
            break;
        if (id == 0x0001) {
            const unsigned char *v = x + 4;
            size_t left = len;
            if (need_size) {
                if (left < 8)
                    goto short_field;
                e->size = sf_get_u64(v), v += 8, left -= 8;
            }
            if (need_csize) {
                if (left < 8)
                    goto short_field;
                e->csize = sf_get_u64(v), v += 8, left -= 8;
            }
            if (need_off) {
                if (left < 8)
                    goto short_field;
                e->local_offset = sf_get_u64(v);
            }
            return SF_OK;
        }
        x += 4 + (size_t)len;
        xlen -= 4 + (size_t)len;
    }
    if (!need_size && !need_csize && !need_off)
        return SF_OK;
short_field:
    return sf_error_set(err, SF_ERR_FORMAT, "%s: zip member '%s': missing or short ZIP64 extra field",
                        zip->label, sf_zip_printable(nm, sizeof nm, e->name, e->name_len));
}

sf_status sf_zip_open(sf_zip *zip, const void *data, size_t size, const char *label,
                      sf_error *err)
{
    memset(zip, 0, sizeof *zip);
    zip->data = data;
    zip->size = size;
    zip->label = label ? label : "<zip>";

    cd_location cd = { 0 };
    sf_status st = locate_cd(zip, &cd, err);
    if (st)
        return st;
    sf_zip_entry *entries = calloc(cd.count ? (size_t)cd.count : 1, sizeof *entries);
    if (!entries)
        return sf_error_set(err, SF_ERR_NOMEM, "%s: out of memory for %llu zip entries", zip->label,
                            (unsigned long long)cd.count);

    const unsigned char *p = zip->data + cd.offset;
    size_t left = (size_t)cd.size;
    for (size_t i = 0; i < cd.count; i++) {
        sf_zip_entry *e = &entries[i];
        if (left < CENTRAL_SIZE || sf_get_u32(p) != SIG_CENTRAL) {
            st = sf_error_set(err, SF_ERR_FORMAT, "%s: ZIP central directory entry %zu is damaged",
                              zip->label, i);
            goto fail;
        }
        size_t nlen = sf_get_u16(p + 28), xlen = sf_get_u16(p + 30), clen = sf_get_u16(p + 32);
        if (CENTRAL_SIZE + nlen + xlen + clen > left) {
            st = sf_error_set(err, SF_ERR_FORMAT,
                              "%s: ZIP central directory entry %zu runs past the directory",
                              zip->label, i);
            goto fail;
        }
        e->flags = sf_get_u16(p + 8);
        e->method = sf_get_u16(p + 10);
        e->crc32 = sf_get_u32(p + 16);
        e->csize = sf_get_u32(p + 20);
        e->size = sf_get_u32(p + 24);
        e->local_offset = sf_get_u32(p + 42);
        e->name = (const char *)p + CENTRAL_SIZE;
        e->name_len = nlen;
        st = read_zip64_extra(zip, e, p + CENTRAL_SIZE + nlen, xlen, e->size == 0xffffffffu,
                              e->csize == 0xffffffffu, e->local_offset == 0xffffffffu, err);
        if (st)
            goto fail;
        if (sf_get_u16(p + 34) != 0 && sf_get_u16(p + 34) != 0xffff) {
            st = sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: multi-disk ZIP archives are not supported",
                              zip->label);
            goto fail;
        }
        p += CENTRAL_SIZE + nlen + xlen + clen;
        left -= CENTRAL_SIZE + nlen + xlen + clen;
    }
    qsort(entries, (size_t)cd.count, sizeof *entries, entry_cmp);
    for (size_t i = 1; i < cd.count; i++) {
        if (entry_cmp(&entries[i - 1], &entries[i]) == 0) {
            char nm[128];
            st = sf_error_set(err, SF_ERR_FORMAT, "%s: zip member '%s' appears twice", zip->label,
                              sf_zip_printable(nm, sizeof nm, entries[i].name, entries[i].name_len));
            goto fail;
        }
    }
    zip->entries = entries;
    zip->n_entries = (size_t)cd.count;
    return SF_OK;
fail:
    free(entries);
    return st;
}

void sf_zip_close(sf_zip *zip)
{
    if (zip) {
        free(zip->entries);
        zip->entries = NULL;
        zip->n_entries = 0;
    }
}

sf_zip_entry *sf_zip_find(const sf_zip *zip, const char *name, size_t name_len)
{
    size_t lo = 0, hi = zip->n_entries;
    sf_zip_entry key = { .name = name, .name_len = name_len };
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = entry_cmp(&key, &zip->entries[mid]);
        if (c == 0)
            return &zip->entries[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static const char *method_name(unsigned m)
{
    switch (m) {
    case 8: return " (deflate)";
    case 9: return " (deflate64)";
    case 12: return " (bzip2)";
    case 14: return " (lzma)";
    case 93: return " (zstd)";
    case 95: return " (xz)";
    }
    return "";
}

sf_status sf_zip_read(const sf_zip *zip, sf_zip_entry *e, const unsigned char **data,
                      uint64_t *size, sf_error *err)
{
    char nm[128];
    sf_zip_printable(nm, sizeof nm, e->name, e->name_len);
    if (e->flags & 1)
        return sf_error_set(err, SF_ERR_UNSUPPORTED, "%s: zip member '%s' is encrypted", zip->label, nm);
    if (e->method != 0)
        return sf_error_set(err, SF_ERR_UNSUPPORTED,
                            "%s: zip member '%s' uses compression method %u%s; only stored members "
                            "(method 0, as torch.save writes) are supported",
                            zip->label, nm, e->method, method_name(e->method));
    if (e->csize != e->size)
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: zip member '%s' is stored but its sizes differ (%llu vs %llu)",
                            zip->label, nm, (unsigned long long)e->csize, (unsigned long long)e->size);
    if (!fits(e->local_offset, LOCAL_SIZE, zip->size))
        return sf_error_set(err, SF_ERR_TRUNCATED,
                            "%s: zip member '%s': local header at offset %llu is past the end",
                            zip->label, nm, (unsigned long long)e->local_offset);
    const unsigned char *l = zip->data + e->local_offset;
    if (sf_get_u32(l) != SIG_LOCAL)
        return sf_error_set(err, SF_ERR_FORMAT, "%s: zip member '%s': bad local header signature",
                            zip->label, nm);
    size_t nlen = sf_get_u16(l + 26), xlen = sf_get_u16(l + 28);
    uint64_t start = e->local_offset + LOCAL_SIZE; /* cannot overflow: checked above */
    if (!fits(start, (uint64_t)nlen + xlen, zip->size))
        return sf_error_set(err, SF_ERR_TRUNCATED, "%s: zip member '%s': local header is cut off",
                            zip->label, nm);
    /* The local name must agree with the directory, or two readers could
     * disagree about which bytes a member is. */
    if (nlen != e->name_len || memcmp(l + LOCAL_SIZE, e->name, nlen) != 0)
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: zip member '%s': local header names a different file", zip->label, nm);
    if (sf_get_u16(l + 8) != e->method)
        return sf_error_set(err, SF_ERR_FORMAT,
                            "%s: zip member '%s': local header disagrees on the compression method",
                            zip->label, nm);
    start += nlen + xlen;
    if (!fits(start, e->size, zip->size))
        return sf_error_set(err, SF_ERR_TRUNCATED,
                            "%s: zip member '%s' (%llu bytes at offset %llu) runs past the end of the "
                            "file",
                            zip->label, nm, (unsigned long long)e->size, (unsigned long long)start);
    if (!e->checked) {
        uint32_t crc = sf_crc32(0, zip->data + start, (size_t)e->size);
        if (crc != e->crc32)
            return sf_error_set(err, SF_ERR_CHECKSUM,
                                "%s: zip member '%s': CRC-32 mismatch (stored %08x, computed %08x)",
                                zip->label, nm, e->crc32, crc);
        e->checked = 1;
    }
    *data = zip->data + start;
    *size = e->size;
    return SF_OK;
}
