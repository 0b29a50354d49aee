/* The numbers a record holds, read whatever their element type: what an
 * inspector prints about a record without knowing its kind. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "sf_internal.h"

/* IEEE 754 binary16: 1 sign bit, 5 exponent bits (bias 15), 10 fraction
 * bits; exponent 0 is subnormal, 31 infinity or NaN. */
static double half_to_double(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp(mant, -24);
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexp(mant + 1024, exp - 25);
    return h & 0x8000 ? -v : v;
}

double sf_record_element(const sf_record *rec, uint64_t i)
{
    const unsigned char *p = rec->data;
    switch (rec->dtype) {
    case SF_DTYPE_U8: return p[i];
    case SF_DTYPE_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case SF_DTYPE_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case SF_DTYPE_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
    case SF_DTYPE_F16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return half_to_double(v); }
    case SF_DTYPE_F32: { float v; memcpy(&v, p + 4 * i, 4); return v; }
    case SF_DTYPE_F64: { double v; memcpy(&v, p + 8 * i, 8); return v; }
    }
    return NAN;
}

void sf_record_summarize(const sf_record *rec, sf_record_stats *out)
{
    size_t size = sf_dtype_size(rec->dtype);
    uint64_t n = size ? rec->data_size / size : 0, n_nan = 0;
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        double v = sf_record_element(rec, i);
        sum += v; /* NaN included: it makes the mean NaN */
        if (isnan(v)) {
            n_nan++;
            continue;
        }
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    out->count = n;
    out->n_nan = n_nan;
    out->min = n_nan < n ? lo : NAN;
    out->max = n_nan < n ? hi : NAN;
    out->mean = n ? sum / (double)n : NAN;
}
