/* Keys as text other tools read: CSV fields, JSON strings, the names of
 * the image-pair files of COLMAP, hloc and kapture.  What each grammar can
 * hold is decided here, once. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_hits.h"
#include "sf_internal.h"

sf_status sf_text_csv_field(const char *s, char **out, sf_error *err)
{
    const size_t len = strlen(s);
    size_t quotes = 0;
    int quote = len == 0;
    for (const char *p = s; *p; p++) {
        quotes += *p == '"';
        quote |= *p == '"' || *p == ',' || *p == '\r' || *p == '\n';
    }
    char *t = malloc(len + quotes + 3);
    if (!t)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory for a CSV field");
    char *w = t;
    if (quote)
        *w++ = '"';
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            *w++ = '"';
        *w++ = *p;
    }
    if (quote)
        *w++ = '"';
    *w = '\0';
    *out = t;
    return SF_OK;
}

/* The length (1..4) of the valid UTF-8 sequence at p, or 0; *cp gets the
 * code point.  p is NUL-terminated, so reading stops at its end. */
static int utf8_char(const unsigned char *p, unsigned long *cp)
{
    unsigned long c = p[0];
    int n;
    unsigned long min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2, c &= 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, c &= 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

/* The offset of the first byte of s that does not start a valid UTF-8
 * character, or -1 when s is valid. */
static long utf8_invalid_at(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned long cp;
    for (size_t i = 0; p[i];) {
        int n = utf8_char(p + i, &cp);
        if (!n)
            return (long)i;
        i += (size_t)n;
    }
    return -1;
}

const char *sf_text_printable_n(const char *s, size_t n_bytes, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    const unsigned char *p = (const unsigned char *)s;
    size_t w = 0, i = 0;
    unsigned long cp;
    while (i < n_bytes) {
        /* A character is decoded from a NUL-terminated copy, so that one
         * cut short by the end of s reads as bytes that are not UTF-8. */
        unsigned char ch[5] = { 0 };
        memcpy(ch, p + i, n_bytes - i < 4 ? n_bytes - i : 4);
        char piece[8];
        int n = utf8_char(ch, &cp), len;
        if (n == 1 && (cp < 0x20 || cp == 0x7F || cp == '\\')) {
            const char *e = cp == '\n' ? "\\n" : cp == '\t' ? "\\t" : cp == '\r' ? "\\r"
                          : cp == '\\' ? "\\\\" : NULL;
            len = e ? snprintf(piece, sizeof piece, "%s", e)
                    : snprintf(piece, sizeof piece, "\\x%02X", (unsigned)cp);
        } else if (n == 0) {
            len = snprintf(piece, sizeof piece, "\\x%02X", (unsigned)ch[0]);
            n = 1;
        } else {
            memcpy(piece, ch, (size_t)n);
            len = n;
        }
        /* Each piece leaves room for "..." and the NUL after it. */
        if (w + (size_t)len + 4 > size) {
            if (size >= 4) {
                memcpy(buf + w, "...", 3);
                w += 3;
            }
            break;
        }
        memcpy(buf + w, piece, (size_t)len);
        w += (size_t)len;
        i += (size_t)n;
    }
    buf[w] = '\0';
    return buf;
}

const char *sf_text_printable(const char *s, char *buf, size_t size)
{
    return sf_text_printable_n(s, strlen(s), buf, size);
}

sf_status sf_text_json_string(const char *s, char **out, sf_error *err)
{
    long bad = utf8_invalid_at(s);
    char shown[256];
    if (bad >= 0)
        return sf_error_set(err, SF_ERR_INVALID_DATA,
                            "%s: not valid UTF-8 (byte %ld), which a JSON string cannot hold",
                            sf_text_printable(s, shown, sizeof shown), bad + 1);
    const size_t len = strlen(s);
    char *t = malloc(6 * len + 3); /* \u00XX at most per byte */
    if (!t)
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory for a JSON string");
    char *w = t;
    *w++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *esc = NULL;
        switch (*p) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: break;
        }
        if (esc) {
            memcpy(w, esc, 2);
            w += 2;
        } else if (*p < 0x20) {
            static const char hex[] = "0123456789abcdef";
            memcpy(w, "\\u00", 4);
            w[4] = hex[*p >> 4];
            w[5] = hex[*p & 15];
            w += 6;
        } else {
            *w++ = (char)*p;
        }
    }
    *w++ = '"';
    *w = '\0';
    *out = t;
    return SF_OK;
}

/* ---- Names in pairs files ---- */

/* Python's str.isspace() (what str.split() and str.strip() use), of one
 * code point. */
static int py_space(unsigned long c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static int c_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static const char *const format_names[] = { "COLMAP's image_pairs.txt", "hloc's pairs file",
                                            "kapture's pairsfile" };

/* key with any leading "./" (and the slashes after it) left out. */
static const char *skip_dot(const char *s)
{
    while (s[0] == '.' && s[1] == '/') {
        s += 2;
        while (*s == '/')
            s++;
    }
    return s;
}

/* Whether name has a ".." path component. */
static int has_dotdot(const char *name)
{
    for (const char *p = name; (p = strstr(p, "..")) != NULL; p += 2)
        if ((p == name || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
            return 1;
    return 0;
}

/* Why name cannot be field `field` of a line of format, or NULL. */
static const char *grammar_problem(sf_pairs_format format, const char *name, int field,
                                   size_t base, char *why, size_t why_size)
{
    const char *fmt = format_names[format];
    if (format == SF_PAIRS_COLMAP) {
        for (const char *p = name; *p; p++)
            if (c_space(*p)) {
                snprintf(why, why_size, "holds %s, where %s splits or trims names",
                         *p == ' ' ? "a space" : "white space", fmt);
                return why;
            }
    } else {
        long bad = utf8_invalid_at(name);
        if (bad >= 0) {
            snprintf(why, why_size, "is not valid UTF-8 (byte %ld), which %s (read by Python "
                     "as text) cannot hold", (long)base + bad + 1, fmt);
            return why;
        }
        const unsigned char *p = (const unsigned char *)name;
        unsigned long cp = 0;
        size_t i = 0;
        int first = 1;
        while (p[i]) {
            int n = utf8_char(p + i, &cp);
            int at_end = p[i + (size_t)n] == '\0';
            if (format == SF_PAIRS_HLOC && py_space(cp)) {
                snprintf(why, why_size, "holds %s, where %s splits names",
                         cp == ' ' ? "a space" : "white space", fmt);
                return why;
            }
            if (format == SF_PAIRS_KAPTURE) {
                if (cp == ',') {
                    snprintf(why, why_size, "holds a comma, where %s splits fields", fmt);
                    return why;
                }
                if (cp == '\n' || cp == '\r') {
                    snprintf(why, why_size, "holds a line break, where %s ends a line", fmt);
                    return why;
                }
                if ((first || at_end) && py_space(cp)) {
                    snprintf(why, why_size, "starts or ends with white space, which %s strips",
                             fmt);
                    return why;
                }
            }
            first = 0;
            i += (size_t)n;
        }
    }
    if (field == 0 && name[0] == '#' && format != SF_PAIRS_HLOC) {
        snprintf(why, why_size, "starts with #, which makes the line a comment in %s", fmt);
        return why;
    }
    return NULL;
}

sf_status sf_pairs_name(sf_pairs_format format, const char *key, const char *root, int field,
                        const char **name, sf_error *err)
{
    *name = NULL;
    char shown[256], shown_root[256];
    const char *const k = sf_text_printable(key, shown, sizeof shown);
    if ((unsigned)format > SF_PAIRS_KAPTURE || (field != 0 && field != 1))
        return sf_error_set(err, SF_ERR_INVALID_ARGUMENT, "pairs: no format %d or field %d",
                            (int)format, field);
    const char *s = skip_dot(key);
    if (root) {
        sf_text_printable(root, shown_root, sizeof shown_root);
        const char *r = skip_dot(root);
        size_t rlen = strlen(r);
        while (rlen > 0 && r[rlen - 1] == '/')
            rlen--;
        if (rlen == 1 && r[0] == '.')
            rlen = 0;
        if (rlen == 0 && r[0] == '/') { /* the root folder: every absolute key */
            if (s[0] != '/')
                return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: not under the root %s",
                                    k, shown_root);
        } else if (rlen > 0) {
            if (strncmp(s, r, rlen) != 0 || s[rlen] != '/')
                return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: not under the root %s",
                                    k, shown_root);
            s += rlen;
        }
        while (*s == '/')
            s = skip_dot(s + 1);
    }
    if (s[0] == '/')
        return sf_error_set(err, SF_ERR_INVALID_DATA,
                            "%s: an absolute path, but %s names images relative to their "
                            "folder: give that folder as the root", k, format_names[format]);
    if (s[0] == '\0')
        return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: names the root folder itself", k);
    if (has_dotdot(s))
        return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: leaves the %s through '..'", k,
                            root ? "root" : "folder");
    char why[160];
    if (grammar_problem(format, s, field, (size_t)(s - key), why, sizeof why))
        return sf_error_set(err, SF_ERR_INVALID_DATA, "%s: %s", k, why);
    *name = s;
    return SF_OK;
}
