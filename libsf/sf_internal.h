/* Helpers shared inside libsf; not installed. */
#ifndef SF_INTERNAL_H
#define SF_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "sf.h"

/* The stream and index formats are little-endian on disk. */
static inline void sf_put_u16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static inline void sf_put_u32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static inline void sf_put_u64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static inline uint16_t sf_get_u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t sf_get_u32(const unsigned char *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = (v << 8) | p[i]; return v; }
static inline uint64_t sf_get_u64(const unsigned char *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = (v << 8) | p[i]; return v; }
static inline void sf_put_f64(unsigned char *p, double d) { uint64_t v; memcpy(&v, &d, 8); sf_put_u64(p, v); }
static inline double sf_get_f64(const unsigned char *p) { uint64_t v = sf_get_u64(p); double d; memcpy(&d, &v, 8); return d; }

#endif
